/*
 * tombstone.h - deletion files: which nodes of one segment are deleted.
 * FORMAT.md, section 9 "Deletion file".
 *
 *   deletion_file := header(80) bitmap(8 x ceil(count / 64))
 *
 * A segment is never rewritten. Deletions of its nodes live in a small
 * versioned file, del-<16 hex seg seq>-<16 hex gen>.del, named by the
 * manifest entry's tomb_gen (manifest.h, MF_ENT_TOMB_GEN; 0 = none). The
 * header binds the file to one segment file (its seq, its header checksum
 * and its node count) and to its generation, so a file copied or renamed
 * under another name, or left beside a rewritten segment, is refused rather
 * than applied to the wrong nodes. A new generation is a new file, written
 * whole (fio_write_file_atomic) before the manifest that names it commits.
 */
#ifndef STRATA_TOMBSTONE_H
#define STRATA_TOMBSTONE_H

#include <stddef.h>
#include <stdint.h>

#define TOMB_MAGIC 0x4c45445441525453ull /* "STRATDEL" as a little-endian u64 */
#define TOMB_VERSION 1u
#define TOMB_HEADER_SIZE 80u
#define TOMB_COUNT_MAX 0xFFFFFFFEull /* = SEG_COUNT_MAX: node numbers are u32 */
#define TOMB_NAME_FMT "del-%016llx-%016llx.del" /* segment seq, generation */
#define TOMB_NAME_LEN 41                         /* "del-" + 16 + "-" + 16 + ".del" */

/* Header field offsets (FORMAT.md 9.1). */
enum {
	TOMB_OFF_MAGIC = 0,
	TOMB_OFF_VERSION = 8,
	TOMB_OFF_HEADER_SIZE = 12,
	TOMB_OFF_SEG_SEQ = 16,         /* u64: the segment's seq (its file name number) */
	TOMB_OFF_SEG_HEADER_XXH3 = 24, /* u64: the segment's header_xxh3: binds to that file */
	TOMB_OFF_COUNT = 32,           /* u64: nodes in the segment = bits in the bitmap */
	TOMB_OFF_DELETED = 40,         /* u64: bits set */
	TOMB_OFF_GEN = 48,             /* u64: generation, >= 1, as in the file name */
	TOMB_OFF_FLAGS = 56,           /* u32: 0 */
	TOMB_OFF_RESERVED = 60,        /* u32: 0 */
	TOMB_OFF_BODY_XXH3 = 64,       /* u64: xxh3 of the bitmap */
	TOMB_OFF_HEADER_XXH3 = 72      /* u64: xxh3 of bytes 0..71 */
};

/* u64 words of a bitmap of `count` bits (0 for count 0). */
static inline uint64_t tomb_words(uint64_t count)
{
	return count / 64 + (count % 64 != 0);
}

/* The exact size of the deletion file of a segment of `count` nodes. */
static inline uint64_t tomb_file_size(uint64_t count)
{
	return TOMB_HEADER_SIZE + 8 * tomb_words(count);
}

/*
 * Write the file name of generation `gen` of segment `seg_seq`'s deletions
 * into buf, NUL-terminated and cut to buf_len (TOMB_NAME_LEN + 1 bytes hold
 * it whole). Cannot fail.
 */
void tomb_file_name(uint64_t seg_seq, uint64_t gen, char *buf, size_t buf_len);

/*
 * Encode the deletion file of segment (seg_seq, seg_header_xxh3) with `count`
 * nodes: bit i of bits[i / 64] set = node i deleted (tomb_words(count)
 * words; may be NULL when count is 0). On success *buf_out is a malloc'd
 * buffer of *len_out = tomb_file_size(count) bytes, the caller's to free().
 * Never encodes what tomb_decode() refuses: returns STRATA_EINVAL for gen 0,
 * null pointers, or a bit set at or beyond `count`; STRATA_ELIMIT for count
 * above TOMB_COUNT_MAX; STRATA_ENOMEM. Outputs are written only on success.
 */
int tomb_encode(uint64_t seg_seq, uint64_t seg_header_xxh3, uint64_t gen, const uint64_t *bits,
                uint64_t count, uint8_t **buf_out, size_t *len_out);

/*
 * Decode the deletion file held in buf[0..len) and check it against what the
 * caller expects from the manifest entry and the segment: seg_seq,
 * seg_header_xxh3, gen and count must all equal the header's (a file of
 * another segment, another version of this segment, or another generation
 * is STRATA_ECORRUPT). Checks, in FORMAT.md 9.4's order: magic (ENOTDB),
 * length of the header (ETRUNCATED), version (EVERSION), header size,
 * header checksum (ECHECKSUM), flags and reserved, the binding, deleted <=
 * count, the exact length (ETRUNCATED / ECORRUPT), body checksum, no bit at
 * or beyond count, popcount = deleted.
 * On success *bits_out is a malloc'd bitmap of max(1, tomb_words(count))
 * words (the caller's to free()) and *deleted_out the number of bits set.
 * Returns 0, STRATA_ENOTDB, STRATA_EVERSION, STRATA_ETRUNCATED,
 * STRATA_ECHECKSUM, STRATA_ECORRUPT, STRATA_ENOMEM, or STRATA_EINVAL (null
 * pointers, gen 0 or count above TOMB_COUNT_MAX expected: no valid file
 * matches those). Outputs are written only on success.
 */
int tomb_decode(const uint8_t *buf, size_t len, uint64_t seg_seq, uint64_t seg_header_xxh3,
                uint64_t gen, uint64_t count, uint64_t **bits_out, uint64_t *deleted_out);

/*
 * Encode and write dir/del-<seg_seq>-<gen>.del atomically (through
 * <name>.tmp: write, fsync, rename, fsync the directory). The caller commits
 * a manifest naming `gen` only after this returned 0.
 * Returns 0, the codes of tomb_encode(), or the I/O codes of
 * fio_write_file_atomic() (STRATA_EIO, STRATA_ENOSPC, STRATA_EPERM, ...),
 * after which no <name>.tmp is left and the file may or may not exist.
 */
int tomb_write(const char *dir, uint64_t seg_seq, uint64_t seg_header_xxh3, uint64_t gen,
               const uint64_t *bits, uint64_t count);

/*
 * Read and decode dir/del-<seg_seq>-<gen>.del, expecting the binding given
 * (as tomb_decode()). A missing file is STRATA_ECORRUPT: it is only looked
 * for when a manifest names it. A file larger than tomb_file_size(count) is
 * STRATA_ECORRUPT without being read. Otherwise the codes of
 * fio_read_file() and tomb_decode(); every detail names the file.
 */
int tomb_load(const char *dir, uint64_t seg_seq, uint64_t seg_header_xxh3, uint64_t gen,
              uint64_t count, uint64_t **bits_out, uint64_t *deleted_out);

#endif /* STRATA_TOMBSTONE_H */
