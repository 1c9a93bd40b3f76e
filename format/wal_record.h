/*
 * wal_record.h - the byte layout of write-ahead log files: the 64-byte file
 * header and the framing of one record. FORMAT.md, section 10 "WAL".
 *
 *   wal file := file_header(64) record*
 *   record   := header(16) payload zero_padding(0..7) xxh3(8)   (total_len % 8 == 0)
 *
 * A pure codec over caller buffers: no I/O and no policy. What a torn tail
 * is, and what to do with it, is wal/wal_reader.c's business; this file only
 * says whether the bytes at an offset are a whole valid record, a prefix of
 * one (need more bytes) or not a record.
 */
#ifndef STRATA_WAL_RECORD_H
#define STRATA_WAL_RECORD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define WAL_MAGIC 0x4c41575441525453ull /* "STRATWAL" as a little-endian u64 */
#define WAL_VERSION 1u
#define WAL_FILE_HEADER_SIZE 64u
#define WAL_RECORD_HEADER_SIZE 16u
#define WAL_RECORD_TRAILER_SIZE 8u
#define WAL_RECORD_MIN 24u                 /* header + trailer, empty payload */
#define WAL_RECORD_MAX (256u << 20)        /* 256 MiB: bigger batches are split by the caller */
#define WAL_RECORD_TAIL_MAX 15u            /* padding (0..7) + trailer */
#define WAL_PAYLOAD_PREFIX_SIZE 8u         /* u32 n + u32 dim (upsert) or reserved (delete) */
#define WAL_FILE_NAME_FMT "wal-%016llx.log" /* from the file's first LSN */
#define WAL_FILE_NAME_LEN 24                /* "wal-" + 16 hex + ".log" */
/*
 * The largest LSN (FORMAT.md 10.1): 2^63 - 1, so that "the next LSN" never
 * wraps (a billion records a second would take 292 years to get there). A
 * file header, record or manifest checkpoint beyond it is corrupt.
 */
#define WAL_LSN_MAX ((1ull << 63) - 1)

enum walrec_type {
	WAL_REC_UPSERT = 1, /* payload: u32 n, u32 dim, u64 ids[n], f32 vectors[n*dim] */
	WAL_REC_DELETE = 2  /* payload: u32 n, u32 reserved 0, u64 ids[n] */
};

/* File header field offsets (FORMAT.md 10.2). */
enum {
	WAL_OFF_MAGIC = 0,
	WAL_OFF_VERSION = 8,
	WAL_OFF_HEADER_SIZE = 12,
	WAL_OFF_DB_UUID = 16,   /* 16 bytes: the manifest's db_uuid */
	WAL_OFF_FIRST_LSN = 32, /* the LSN of the file's first record (also in its name) */
	WAL_OFF_DIM = 40,
	WAL_OFF_FLAGS = 44,     /* 0 */
	WAL_OFF_RESERVED = 48,  /* 8 bytes, zero */
	WAL_OFF_HEADER_XXH3 = 56
};

/* Record header field offsets, from the record's first byte (FORMAT.md 10.3). */
enum {
	WALREC_OFF_TOTAL_LEN = 0, /* u32: header + payload + padding + trailer */
	WALREC_OFF_TYPE = 4,      /* u8 */
	WALREC_OFF_FLAGS = 5,     /* u8, 0 */
	WALREC_OFF_RESERVED = 6,  /* u16, 0 */
	WALREC_OFF_LSN = 8        /* u64, >= 1 */
};

struct walrec_file_header {
	uint8_t db_uuid[16];
	uint64_t first_lsn;
	uint32_t dim;
};

/* Encode a file header into out[0..64). */
void walrec_file_header_encode(const struct walrec_file_header *h, uint8_t out[WAL_FILE_HEADER_SIZE]);

/*
 * Decode the file header in buf[0..len). Checks, in order: magic
 * (STRATA_ENOTDB), length >= 64 (STRATA_ETRUNCATED), version (STRATA_EVERSION),
 * header_size == 64, checksum (STRATA_ECHECKSUM), flags and reserved zero,
 * first_lsn >= 1, dim in 1..STRATA_DIM_MAX (STRATA_ECORRUPT). The caller
 * compares uuid and dim with its own database's.
 */
int walrec_file_header_decode(const uint8_t *buf, size_t len, struct walrec_file_header *out);

/* Write the name of the file whose first LSN is `first_lsn` (buf of at least WAL_FILE_NAME_LEN + 1). */
void walrec_file_name(uint64_t first_lsn, char *buf, size_t buf_len);

/* 0 and the LSN if `name` is exactly "wal-" + 16 lowercase hex digits + ".log"; else -1. */
int walrec_file_name_parse(const char *name, uint64_t *first_lsn_out);

/* Bytes of a record with a payload of `payload_len` bytes (padding and trailer included). */
uint64_t walrec_total_len(uint64_t payload_len);

/*
 * Frame a record around the caller's payload iov[0..iovcnt) without copying
 * it: fills hdr (16 bytes) and tail (the zero padding then the checksum,
 * *tail_len_out = 8..15 bytes). The record on disk is hdr, iov..., tail.
 * Returns 0, STRATA_EINVAL (unknown type, lsn 0, iovcnt < 0, a null base
 * with a length) or STRATA_ELIMIT (longer than WAL_RECORD_MAX), and on
 * failure writes nothing. Payload structure is not checked here (see
 * walrec_payload_check).
 */
int walrec_encode(unsigned type, uint64_t lsn, const struct iovec *iov, int iovcnt,
                  uint8_t hdr[WAL_RECORD_HEADER_SIZE], uint8_t tail[WAL_RECORD_TAIL_MAX],
                  size_t *tail_len_out, uint32_t *total_len_out);

/* One framed record, pointing into the decoded buffer. */
struct walrec {
	uint32_t total_len;
	unsigned type;
	uint64_t lsn;
	const uint8_t *payload;
	size_t payload_len; /* total_len - 24: the payload and its 0..7 zero padding bytes */
};

/* walrec_decode(): buf[off..len) is a prefix of a record; read more and call again. */
#define WALREC_MORE 1

/*
 * Decode the record starting at buf[off] (buf[off..len) is what is known of
 * the file from there). Returns:
 *   0            a whole record whose header fields and checksum are valid:
 *                *out filled;
 *   WALREC_MORE  fewer bytes than the record needs: out->total_len is the
 *                length the header claims (0 when fewer than 16 bytes are known);
 *   STRATA_ECORRUPT  a header field is invalid (total_len outside 24..256 MiB
 *                or not a multiple of 8, unknown type, flags or reserved not
 *                zero, lsn 0); STRATA_ECHECKSUM  the trailer does not match.
 * Errors set the detail (without the offset: the caller knows where buf starts in its file). The payload's own structure is
 * checked by walrec_payload_check (or the views), not here.
 */
int walrec_decode(const uint8_t *buf, size_t len, size_t off, struct walrec *out);

/*
 * The payload rules of FORMAT.md 10.4 for `type`: exact length from n (and
 * dim) with fewer than 8 zero padding bytes after it, reserved zero, dim in
 * 1..STRATA_DIM_MAX. `len` is walrec.payload_len. Returns 0 or STRATA_ECORRUPT.
 */
int walrec_payload_check(unsigned type, const uint8_t *payload, size_t len);

/*
 * Views of a payload (walrec.payload, walrec.payload_len): counts and
 * pointers into it, after walrec_payload_check, and (upsert) its dim must be
 * `dim`. Pointers are as aligned as the payload (8-aligned when the file
 * buffer is). Returns 0 or STRATA_ECORRUPT; outputs written only on success.
 */
int walrec_upsert_view(const uint8_t *payload, size_t len, uint32_t dim, uint32_t *n,
                       const uint64_t **ids, const float **vecs);
int walrec_delete_view(const uint8_t *payload, size_t len, uint32_t *n, const uint64_t **ids);

/* Payload builders: the 8-byte prefix to put before ids (and vectors) in the iov. */
void walrec_upsert_prefix(uint32_t n, uint32_t dim, uint8_t out[WAL_PAYLOAD_PREFIX_SIZE]);
void walrec_delete_prefix(uint32_t n, uint8_t out[WAL_PAYLOAD_PREFIX_SIZE]);

/* Payload sizes, and the most rows one record may carry (>= 1 for any valid dim). */
uint64_t walrec_upsert_payload_len(uint64_t n, uint32_t dim);
uint64_t walrec_delete_payload_len(uint64_t n);
uint32_t walrec_upsert_max_n(uint32_t dim);
uint32_t walrec_delete_max_n(void);

#endif /* STRATA_WAL_RECORD_H */
