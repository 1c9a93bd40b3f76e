/*
 * segment.h - the segment file, version 1: one immutable HNSW graph with its
 * vectors and ids. Table of contents of segment_writer.c (encode),
 * segment_reader.c (constant-time structural check, id lookup) and
 * segment_verify.c (full check of every checksum and edge).
 *
 * The byte layout is specified in FORMAT.md, section "Segment file"; the
 * constants below are its numbers and are never renumbered.
 *
 *   segment := header(128) section* section_table
 *
 * Node numbering: the writer numbers nodes so that the `upper_count` nodes
 * that live on layers >= 1 come first (0 .. upper_count-1). Node i's upper
 * index entry is therefore entry i: an O(1) lookup with no table to build
 * at open time.
 *
 * A node record (stride bytes, in the NODES section) keeps what one visit of
 * the layer-0 search touches together, as hnswlib does in memory:
 *
 *   f32 vector[dim] | u32 nbr_count | u32 nbr[M0] | zero padding to stride
 */
#ifndef STRATA_SEGMENT_H
#define STRATA_SEGMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SEG_MAGIC 0x4745535441525453ull /* "STRATSEG" read as a little-endian u64 */
#define SEG_VERSION 1u
#define SEG_HEADER_SIZE 128u
#define SEG_SECTION_ENTRY_SIZE 32u
#define SEG_SECTION_ALIGN 64u       /* every section starts at a multiple of this */
#define SEG_STRIDE_ALIGN 16u        /* node stride is a multiple of this */
#define SEG_UPPER_ENTRY_SIZE 16u    /* u32 level, u32 reserved, u64 first_block */
#define SEG_ID_INDEX_ENTRY_SIZE 16u /* u64 id, u32 node, u32 reserved */
#define SEG_LEVEL_MAX 64u
#define SEG_COUNT_MAX 0xFFFFFFFEull /* node indices are u32; 0xFFFFFFFF means none */
#define SEG_NO_NODE 0xFFFFFFFFu

/* Header field offsets (FORMAT.md, table "Segment header"). */
enum {
	SEG_OFF_MAGIC = 0,
	SEG_OFF_VERSION = 8,
	SEG_OFF_HEADER_SIZE = 12,
	SEG_OFF_DIM = 16,
	SEG_OFF_METRIC = 20,
	SEG_OFF_M = 24,
	SEG_OFF_M0 = 28,
	SEG_OFF_EF_CONSTRUCTION = 32,
	SEG_OFF_MAX_LEVEL = 36,
	SEG_OFF_COUNT = 40,
	SEG_OFF_ENTRY = 48,
	SEG_OFF_STRIDE = 52,
	SEG_OFF_SECTION_COUNT = 56,
	SEG_OFF_FLAGS = 60,
	SEG_OFF_TABLE_OFF = 64,
	SEG_OFF_FILE_SIZE = 72,
	SEG_OFF_UPPER_COUNT = 80,
	SEG_OFF_UPPER_BLOCKS = 88,
	SEG_OFF_SEED = 96,
	SEG_OFF_TABLE_XXH3 = 104,
	SEG_OFF_RESERVED = 112,
	SEG_OFF_HEADER_XXH3 = 120
};

/* Section kinds (u32 in the section table). Each appears exactly once in v1. */
enum seg_section_kind {
	SEG_SEC_NODES = 1,       /* count x stride: vector, layer-0 adjacency */
	SEG_SEC_UPPER_INDEX = 2, /* upper_count x 16: level and first block of node i */
	SEG_SEC_UPPER_LINKS = 3, /* upper_blocks x (4 + 4*M): u32 nbr_count, u32 nbr[M] */
	SEG_SEC_IDS = 4,         /* count x u64: the caller's id of node i */
	SEG_SEC_ID_INDEX = 5,    /* count x 16: (id, node) sorted by id, ids distinct */
	SEG_SEC_KIND_MAX = 5
};

struct seg_section {
	uint64_t off;
	uint64_t size;
	uint64_t xxh3;
};

/* What seg_check() learned; pointers point into the caller's buffer. */
struct seg_info {
	const uint8_t *base;
	size_t len;
	uint32_t version;
	uint32_t dim;
	uint32_t metric;
	uint32_t M;
	uint32_t M0;
	uint32_t ef_construction;
	uint32_t max_level;
	uint32_t entry;        /* SEG_NO_NODE when count == 0 */
	uint64_t count;
	uint32_t stride;
	uint64_t upper_count;
	uint64_t upper_blocks;
	uint64_t seed;
	uint64_t header_xxh3;
	struct seg_section sec[SEG_SEC_KIND_MAX + 1]; /* indexed by kind; [0] unused */
	const uint8_t *nodes;
	const uint8_t *upper_index;
	const uint8_t *upper_links;
	const uint8_t *ids;
	const uint8_t *id_index;
};

/* Bytes of one node record before padding. */
static inline uint64_t seg_node_raw_size(uint32_t dim, uint32_t M0)
{
	return 4ull * dim + 4ull + 4ull * M0;
}

/* The stride the v1 writer uses: raw size rounded up to SEG_STRIDE_ALIGN. */
static inline uint64_t seg_stride_for(uint32_t dim, uint32_t M0)
{
	uint64_t raw = seg_node_raw_size(dim, M0);
	return (raw + SEG_STRIDE_ALIGN - 1) / SEG_STRIDE_ALIGN * SEG_STRIDE_ALIGN;
}

/* Bytes of one upper-layer adjacency block. */
static inline uint64_t seg_upper_block_size(uint32_t M)
{
	return 4ull + 4ull * M;
}

/*
 * Cheap structural check of a whole segment file held in buf[0..len): header,
 * header checksum, section table and its checksum, every section's bounds,
 * alignment and size against the header's counts, and that nothing overlaps.
 * Time and memory independent of the vector count; reads only the header and
 * the section table. Fills *info on success.
 *
 * Returns 0, STRATA_ENOTDB (magic), STRATA_EVERSION, STRATA_ETRUNCATED,
 * STRATA_ECHECKSUM or STRATA_ECORRUPT, with the detail set.
 */
int seg_check(const uint8_t *buf, size_t len, struct seg_info *info);

/*
 * Full verification after seg_check(): every section checksum, every
 * adjacency list (counts <= M0/M, neighbours < count, no self-loops, upper
 * neighbours present on that layer), the upper index (levels, block
 * numbering), the entry point, vectors finite, ids distinct and
 * not UINT64_MAX, id index sorted and consistent with IDS.
 * O(file size). Returns 0 or a data error with the detail set.
 */
int seg_verify(const struct seg_info *info);

/*
 * The rules of seg_check() on the graph parameters alone (dim, metric, M, M0,
 * count, stride, max_level, upper_count, upper_blocks, entry), without the
 * file: shared with seg_write() so that the writer refuses what the reader
 * would. Reads only those fields of *g. Returns 0 or STRATA_ECORRUPT.
 */
int seg_params_check(const struct seg_info *g);

/*
 * Find the node holding `id` via the id index (binary search). Safe on a file
 * that only passed seg_check(): a node number that is out of range, or whose
 * IDS entry is not `id`, gives STRATA_ECORRUPT and is never returned.
 * Returns 0, STRATA_ENOTFOUND or STRATA_ECORRUPT.
 */
int seg_id_find(const struct seg_info *info, uint64_t id, uint32_t *node_out);

/*
 * Everything the writer needs, in file layout already (the builder keeps its
 * graph in this layout so that writing is a copy). `nodes` holds count records
 * of `stride` bytes; `upper_index` upper_count entries of 16 bytes;
 * `upper_links` upper_blocks blocks; `ids` count u64. The writer makes the id
 * index itself (sorting needs O(count) scratch memory).
 */
struct seg_write_input {
	uint32_t dim;
	uint32_t metric;
	uint32_t M;
	uint32_t ef_construction;
	uint32_t max_level;
	uint32_t entry;
	uint64_t count;
	uint32_t stride;
	uint64_t upper_count;
	uint64_t upper_blocks;
	uint64_t seed;
	const uint8_t *nodes;
	const uint8_t *upper_index;
	const uint8_t *upper_links;
	const uint64_t *ids;
};

/*
 * Write a complete segment file at `path` (created, must not exist), fsync
 * it, then map it back and seg_check() it (the writer pairs its output with
 * the reader's validator; debug builds also seg_verify() it). The directory entry is not synced: the caller
 * renames or syncs the directory. On failure the file is removed.
 * Returns 0, STRATA_EDUPLICATE (two nodes with one id), STRATA_EINVAL,
 * STRATA_ENOMEM, STRATA_ENOSPC, STRATA_EIO or STRATA_EEXIST.
 */
int seg_write(const char *path, const struct seg_write_input *in, uint64_t *header_xxh3_out);

/* Name of the section kind for messages ("nodes", "upper index", ...). */
const char *seg_section_name(uint32_t kind);

#endif /* STRATA_SEGMENT_H */
