/*
 * manifest.h - the MANIFEST file: which segment files make up the database,
 * with the database's fixed parameters. FORMAT.md, section "Manifest".
 *
 *   manifest := header(96) entry(64)*segment_count
 *
 * It is small (O(segments)), read whole into memory, and replaced atomically
 * (write MANIFEST.tmp, fsync, rename over MANIFEST, fsync the directory).
 */
#ifndef STRATA_MANIFEST_H
#define STRATA_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#define MF_MAGIC 0x4e414d5441525453ull /* "STRATMAN" as a little-endian u64 */
/*
 * Version 2 gives checkpoint_lsn and tomb_gen their meaning (WAL files and
 * deletion files exist); a version-1 manifest is read as version 2 with both
 * zero. A version-1 reader refuses a version-2 manifest rather than ignore
 * writes it cannot see.
 */
#define MF_VERSION 2u
#define MF_VERSION_MIN 1u
#define MF_HEADER_SIZE 96u
#define MF_ENTRY_SIZE 64u
#define MF_SEGMENTS_MAX 65536u
#define MF_FILE_NAME "MANIFEST"
#define MF_SEGMENT_NAME_FMT "seg-%016llx.seg" /* from the entry's seq */
#define MF_SEGMENT_NAME_LEN 24                 /* "seg-" + 16 hex + ".seg" */

enum {
	MF_OFF_MAGIC = 0,
	MF_OFF_VERSION = 8,
	MF_OFF_HEADER_SIZE = 12,
	MF_OFF_DIM = 16,
	MF_OFF_METRIC = 20,
	MF_OFF_M = 24,
	MF_OFF_EF_CONSTRUCTION = 28,
	MF_OFF_EF_SEARCH = 32,
	MF_OFF_SEGMENT_COUNT = 36,
	MF_OFF_GENERATION = 40,
	MF_OFF_NEXT_SEQ = 48,
	MF_OFF_DB_UUID = 56,        /* 16 random bytes made at creation */
	MF_OFF_CHECKPOINT_LSN = 72, /* 0 in databases without a WAL */
	MF_OFF_BODY_XXH3 = 80,      /* xxh3-64 of all entries */
	MF_OFF_HEADER_XXH3 = 88     /* xxh3-64 of bytes 0..87 */
};

enum {
	MF_ENT_SEQ = 0,          /* u64: segment file name number */
	MF_ENT_COUNT = 8,        /* u64: nodes in the segment */
	MF_ENT_FILE_SIZE = 16,   /* u64: the segment file's exact size */
	MF_ENT_HEADER_XXH3 = 24, /* u64: the segment's header checksum (binds this entry to that file) */
	MF_ENT_TOMB_GEN = 32,    /* u64: deletion file generation, 0 = none (v1 writers: 0) */
	MF_ENT_LEVEL = 40,       /* u32: compaction tier (v1 writers: 0) */
	MF_ENT_FLAGS = 44,       /* u32: 0 */
	MF_ENT_RESERVED = 48     /* 16 bytes, zero */
};

struct mf_segment {
	uint64_t seq;
	uint64_t count;
	uint64_t file_size;
	uint64_t header_xxh3;
	uint64_t tomb_gen;
	uint32_t level;
};

struct mf_manifest {
	uint32_t dim;
	uint32_t metric;
	uint32_t M;
	uint32_t ef_construction;
	uint32_t ef_search;
	uint64_t generation;
	uint64_t next_seq;
	uint8_t db_uuid[16];
	uint64_t checkpoint_lsn;
	uint32_t segment_count;
	struct mf_segment *segments; /* segment_count entries; owned (mf_free) */
};

/*
 * Decode a manifest held in buf[0..len). Checks magic, version, header size,
 * both checksums, parameter ranges (dim, metric, M), that the length is
 * exactly header + entries, reserved bytes zero, and that sequence numbers
 * are distinct and below next_seq. Allocates out->segments.
 * Returns 0, STRATA_ENOTDB, STRATA_EVERSION, STRATA_ETRUNCATED,
 * STRATA_ECHECKSUM, STRATA_ECORRUPT or STRATA_ENOMEM.
 */
int mf_decode(const uint8_t *buf, size_t len, struct mf_manifest *out);

/*
 * Encode `mf` into a malloc'd buffer. Returns 0, STRATA_ENOMEM, STRATA_EINVAL
 * (null segments with segment_count > 0) or STRATA_ELIMIT (more than
 * MF_SEGMENTS_MAX segments: never write what mf_decode() refuses).
 */
int mf_encode(const struct mf_manifest *mf, uint8_t **buf_out, size_t *len_out);

/* Encode and atomically replace dir/MANIFEST. */
int mf_commit(const char *dir, const struct mf_manifest *mf);

/*
 * Read and decode dir/MANIFEST. STRATA_ENOTFOUND when it does not exist; a
 * file larger than any valid manifest is STRATA_ECORRUPT without being read.
 * Otherwise the codes of fio_read_file() and mf_decode().
 */
int mf_load(const char *dir, struct mf_manifest *out);

void mf_free(struct mf_manifest *mf);

/* Write the file name of segment `seq` into buf (at least MF_SEGMENT_NAME_LEN + 1 bytes). */
void mf_segment_name(uint64_t seq, char *buf, size_t buf_len);

#endif /* STRATA_MANIFEST_H */
