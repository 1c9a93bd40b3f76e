/*
 * bundle.h - the shipping bundle, version 2: a whole database in one file,
 * each file of it a zstd frame, with a trailing index. Table of contents of
 * bundle.c (the codec: header, entry, index and footer layouts, the
 * streaming reader and the writer) and bundle_db.c (what makes a bundle a
 * database: the consistent snapshot that pack reads, unpack into a
 * directory, verify in memory).
 *
 * Version 2 carries deletion files (kind 4) and WAL files (kind 3) beside
 * the MANIFEST and its segments; its layout is version 1's. Readers read
 * both versions; in a version-1 bundle kinds 3 and 4 and a MANIFEST naming
 * deletion files are refused (STRATA_EVERSION), as version-1 readers did.
 *
 * The byte layout is specified in FORMAT.md, section "Bundle file"; the
 * constants below are its numbers and are never renumbered.
 *
 *   bundle := header(64) (entry_header(128) zstd_frame)* index(136 x n) footer(64)
 *
 * Two ways in, one set of rules:
 *   - streaming from the front (bundle_reader_*), for `strata unpack -` from
 *     a pipe: the header says how many entries follow, every entry header
 *     says how many compressed bytes its frame has; the index and footer at
 *     the end are checked against what was read;
 *   - random access (bundle_index_decode), for listing: footer, index and
 *     every entry header are checked without decompressing anything.
 * Neither trusts a byte: names, sizes, counts and checksums are checked
 * before they drive a path, an allocation or a loop, and decompression stops
 * at the declared size + 1 byte (a zip bomb costs one byte of output).
 */
#ifndef STRATA_BUNDLE_H
#define STRATA_BUNDLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "segment.h"

#define BUNDLE_MAGIC 0x444e425441525453ull        /* "STRATBND" as a little-endian u64 */
#define BUNDLE_ENTRY_MAGIC 0x544e455441525453ull  /* "STRATENT" */
#define BUNDLE_FOOTER_MAGIC 0x5254465441525453ull /* "STRATFTR" */
#define BUNDLE_VERSION 2u     /* what the writer writes */
#define BUNDLE_VERSION_MIN 1u /* the oldest version readers read */
#define BUNDLE_HEADER_SIZE 64u
#define BUNDLE_ENTRY_SIZE 128u
#define BUNDLE_INDEX_ENTRY_SIZE 136u /* u64 entry offset + a copy of the entry header */
#define BUNDLE_FOOTER_SIZE 64u
#define BUNDLE_NAME_FIELD 64u        /* name bytes, zero padded */
#define BUNDLE_NAME_MAX 63u
#define BUNDLE_ENTRIES_MAX (1u << 20)

/* Header field offsets (FORMAT.md, table "Bundle header"). */
enum {
	BUNDLE_OFF_MAGIC = 0,
	BUNDLE_OFF_VERSION = 8,
	BUNDLE_OFF_HEADER_SIZE = 12,
	BUNDLE_OFF_FLAGS = 16,
	BUNDLE_OFF_ENTRY_COUNT = 20,
	BUNDLE_OFF_TOTAL_RAW = 24,
	BUNDLE_OFF_LEVEL = 32,   /* i32: zstd level the writer used; informational */
	BUNDLE_OFF_RESERVED = 36,
	BUNDLE_OFF_DB_UUID = 40, /* 16 bytes: the MANIFEST's db_uuid */
	BUNDLE_OFF_HEADER_XXH3 = 56
};

/* Entry header field offsets (FORMAT.md, table "Entry header"). */
enum {
	BUNDLE_ENT_MAGIC = 0,
	BUNDLE_ENT_ORDINAL = 8,
	BUNDLE_ENT_KIND = 12,
	BUNDLE_ENT_FLAGS = 16,
	BUNDLE_ENT_NAME_LEN = 20,
	BUNDLE_ENT_RAW_SIZE = 24,
	BUNDLE_ENT_FRAME_SIZE = 32,
	BUNDLE_ENT_RAW_XXH3 = 40,
	BUNDLE_ENT_FRAME_XXH3 = 48,
	BUNDLE_ENT_NAME = 56,
	BUNDLE_ENT_HEADER_XXH3 = 120
};

/* Footer field offsets (FORMAT.md, table "Footer"). */
enum {
	BUNDLE_FTR_MAGIC = 0,
	BUNDLE_FTR_ENTRY_COUNT = 8,
	BUNDLE_FTR_FLAGS = 12,
	BUNDLE_FTR_INDEX_OFF = 16,
	BUNDLE_FTR_INDEX_XXH3 = 24,
	BUNDLE_FTR_TOTAL_RAW = 32,
	BUNDLE_FTR_BUNDLE_SIZE = 40,
	BUNDLE_FTR_HEADER_XXH3 = 48,
	BUNDLE_FTR_FOOTER_XXH3 = 56
};

/*
 * What kind of database file an entry holds; the kind fixes which names are
 * allowed. Kinds 3 and 4 exist from version 2 on: a version-1 bundle holding
 * one is refused with STRATA_EVERSION (version-1 readers reserved them so).
 */
enum bundle_kind {
	BUNDLE_KIND_MANIFEST = 1, /* the name "MANIFEST" */
	BUNDLE_KIND_SEGMENT = 2,  /* "seg-" + 16 lowercase hex digits + ".seg" */
	BUNDLE_KIND_WAL = 3,      /* "wal-" + 16 lowercase hex digits + ".log" (version 2) */
	BUNDLE_KIND_DELETION = 4  /* "del-" + 16 hex + "-" + 16 hex + ".del" (version 2) */
};

#define BUNDLE_LEVEL_MIN 1
#define BUNDLE_LEVEL_MAX 19     /* 20..22 need windows beyond what readers accept by default */
#define BUNDLE_LEVEL_DEFAULT 3

/* Returned by bundle_reader_next() after the last entry, index and footer checked out. */
#define BUNDLE_END 1

struct bundle_header {
	uint32_t version;
	uint32_t entry_count;
	uint64_t total_raw_bytes;
	int32_t level;
	uint8_t db_uuid[16];
	uint64_t header_xxh3;
};

struct bundle_entry {
	uint64_t off;          /* where its entry header starts in the bundle */
	uint32_t ordinal;
	uint32_t kind;
	char name[BUNDLE_NAME_MAX + 1]; /* NUL-terminated */
	uint64_t raw_size;
	uint64_t frame_size;
	uint64_t raw_xxh3;
	uint64_t frame_xxh3;
	uint64_t header_xxh3;
};

struct bundle_footer {
	uint32_t entry_count;
	uint64_t index_off;
	uint64_t index_xxh3;
	uint64_t total_raw_bytes;
	uint64_t bundle_size;
	uint64_t header_xxh3;
};

/* ---- the codec: fixed-size records ------------------------------------------------ */

/*
 * Decode and check a bundle header from buf[0..len) (obligations H1-H7 of
 * FORMAT.md). Returns 0, STRATA_ENOTDB, STRATA_ETRUNCATED, STRATA_EVERSION,
 * STRATA_ECHECKSUM or STRATA_ECORRUPT.
 */
int bundle_header_decode(const uint8_t *buf, size_t len, struct bundle_header *out);

/*
 * Decode and check one entry header (128 bytes at buf; obligations E1-E8) of
 * a bundle of `version` (the header's): magic, checksum, flags, the kind
 * (kinds 3 and 4 only from version 2 on), the name's bytes and its pattern
 * for the kind. Position, duplicates and sizes against the header are the
 * caller's (the reader's) checks. out->off is set to 0. Returns 0,
 * STRATA_ECORRUPT, STRATA_ECHECKSUM or STRATA_EVERSION (kind 3 or 4 in a
 * version-1 bundle).
 */
int bundle_entry_decode(const uint8_t *buf, uint32_t version, struct bundle_entry *out);

/*
 * True when `name` (NUL-terminated) is a name an entry of `kind` (1..4) may
 * carry: 1..63 bytes of printable ASCII without '/', '\\' or "..", matching
 * the kind's pattern. Sets the error detail (why not) when false.
 */
bool bundle_name_ok(uint32_t kind, const char *name);

/* Name of a kind for messages ("manifest", "segment", "wal", "deletion", "unknown"). */
const char *bundle_kind_name(uint32_t kind);

/*
 * Decode and check the 64-byte footer at buf (magic, checksum, flags only;
 * the cross-checks against the header and the file are the caller's).
 * Returns 0, STRATA_ECORRUPT or STRATA_ECHECKSUM.
 */
int bundle_footer_decode(const uint8_t *buf, struct bundle_footer *out);

/* ---- random access: list without decompressing ------------------------------------ */

struct bundle_index {
	struct bundle_header hdr;
	struct bundle_footer ftr;
	uint32_t count;
	struct bundle_entry *entries; /* count entries, owned (bundle_index_free) */
};

/*
 * Decode the header, footer and index of a whole bundle held in buf[0..len)
 * and check that they describe exactly the bytes between them: entries start
 * at 64 and follow each other without gaps, the last ends where the index
 * starts, names are valid and distinct, raw sizes add up. Frames are not
 * read. Allocates out->entries (bounded by len / 136).
 * Returns 0 or a data error (with the detail), or STRATA_ENOMEM.
 */
int bundle_index_decode(const uint8_t *buf, size_t len, struct bundle_index *out);
void bundle_index_free(struct bundle_index *idx);

/* ---- streaming reader --------------------------------------------------------------- */

/*
 * Where a reader gets its bytes: read up to `len` bytes into `buf`; return
 * how many (0 only at the end of the input) or a negative STRATA_E* code
 * with the detail set. A short count is not the end.
 */
struct bundle_source {
	int64_t (*read)(void *ctx, uint8_t *buf, size_t len);
	void *ctx;
};

/* A source over a buffer (tests, fuzzers, mapped files). `m` must outlive the source. */
struct bundle_mem {
	const uint8_t *buf;
	size_t len;
	size_t pos;
};
void bundle_source_mem(struct bundle_mem *m, const uint8_t *buf, size_t len,
                       struct bundle_source *out);

/* A source over a file descriptor (a pipe, stdin), read through fio. */
struct bundle_fd {
	int fd;
	const char *name; /* for messages */
};
void bundle_source_fd(struct bundle_fd *f, int fd, const char *name, struct bundle_source *out);

struct bundle_reader;

/*
 * Start reading a bundle: reads and checks the header. On success
 * *reader_out reads entries in order. Returns 0, a data error, STRATA_ENOMEM
 * or the source's error.
 */
int bundle_reader_new(const struct bundle_source *src, struct bundle_reader **reader_out);
const struct bundle_header *bundle_reader_header(const struct bundle_reader *r);

/*
 * Move to the next entry: checks its header (ordinal, distinct name, raw
 * sizes within the header's total) and fills *e. If the previous entry was
 * not read to its end, the rest of its frame is skipped (its frame checksum
 * is still checked, its raw checksum is not). After the last entry it reads
 * the index and footer, checks them against everything read, checks that
 * nothing follows, and returns BUNDLE_END.
 * Returns 0, BUNDLE_END or a negative code; after a failure every call fails.
 */
int bundle_reader_next(struct bundle_reader *r, struct bundle_entry *e);

/*
 * Decompress the current entry's next bytes into buf[0..cap): *n_out is how
 * many (0 at the entry's end, once its frame checksum, size and raw checksum
 * have checked out). Never produces more than raw_size bytes in total:
 * output beyond the declared size is detected at the first extra byte.
 * Returns 0 or a negative code (STRATA_ECHECKSUM when the frame's checksum
 * disagrees, whatever zstd said; STRATA_ECORRUPT for a frame that is not one
 * whole zstd frame of exactly raw_size bytes; STRATA_ETRUNCATED).
 */
int bundle_reader_read(struct bundle_reader *r, uint8_t *buf, size_t cap, size_t *n_out);

/* Bytes consumed from the source so far. */
uint64_t bundle_reader_offset(const struct bundle_reader *r);

void bundle_reader_free(struct bundle_reader *r);

/* ---- writer ------------------------------------------------------------------------------ */

/* One file to pack: its name and kind, and its bytes (mapped or in memory). */
struct bundle_file {
	uint32_t kind;
	char name[BUNDLE_NAME_MAX + 1];
	const uint8_t *data;
	uint64_t size;
};

struct bundle_pack_opts {
	int level;           /* BUNDLE_LEVEL_MIN..MAX; 0 = BUNDLE_LEVEL_DEFAULT */
	uint32_t threads;    /* zstd worker threads; 0 or 1 = compress on the calling thread */
	const char *spill_dir; /* see bundle_write(); NULL = $TMPDIR or /tmp */
};

struct bundle_pack_stats {
	uint32_t entries;
	uint64_t raw_bytes;
	uint64_t bundle_bytes;
	uint32_t threads;    /* zstd workers actually used (0: none, single-threaded) */
};

/*
 * Write a bundle of `files` (the first must be the MANIFEST) to `fd`.
 * A regular file is written in place (pwrite, from its current offset): each
 * entry header is written after its frame, once the frame's size and
 * checksum are known. Anything else (a pipe) is written strictly in order:
 * each frame is first compressed into a spill buffer (memory up to 64 MiB,
 * beyond that an unlinked temporary file in spill_dir), then its header and
 * frame are written. `name` names fd in messages. Never writes what
 * bundle_reader refuses: names, kinds and counts are checked first.
 * Returns 0, STRATA_EINVAL, STRATA_ELIMIT, STRATA_ENOMEM, STRATA_ENOSPC,
 * STRATA_EIO or STRATA_EPERM.
 */
int bundle_write(int fd, const char *name, const struct bundle_file *files, uint32_t count,
                 const uint8_t db_uuid[16], const struct bundle_pack_opts *opts,
                 struct bundle_pack_stats *stats_out);

/* ---- databases (bundle_db.c) ------------------------------------------------------------ */

/* One segment of a snapshot, in MANIFEST order. */
struct bundle_snap_seg {
	struct seg_info info;    /* seg_check of the mapped file (pointers into files[]) */
	uint64_t *deleted;       /* its deletion file's bitmap (tomb_words(count) words, owned), or NULL */
	uint64_t n_deleted;      /* bits set in it */
};

/*
 * One consistent state of a database, as pack reads it (FORMAT.md 8.11):
 * the MANIFEST's bytes read once, every file those bytes name opened (each
 * segment mapped and held to its entry: size, header checksum, count, dim,
 * metric, M, and seg_check; each deletion file read and decoded against its
 * segment's entry), and, with BUNDLE_SNAP_WAL, the WAL records after the
 * MANIFEST's checkpoint as they are on disk: the files from the one holding
 * checkpoint_lsn + 1 on, each cut after its last whole record, LSNs checked
 * to continue from the checkpoint. A writer may flush and merge meanwhile:
 * files are opened after the MANIFEST is read, and a file it names that is
 * gone, or WAL records after its checkpoint that are gone, under a MANIFEST
 * whose generation has changed since, mean a commit came between: the
 * snapshot starts over (a bounded number of times). Once open, a file's bytes
 * stay readable when the writer deletes it. Takes no lock and writes nothing.
 */
#define BUNDLE_SNAP_WAL 1u /* also read the WAL after the checkpoint */

struct bundle_snapshot {
	uint8_t *manifest;        /* MANIFEST bytes, owned */
	size_t manifest_len;
	uint8_t db_uuid[16];
	uint32_t dim;
	uint32_t metric;
	uint64_t generation;      /* the MANIFEST's */
	uint64_t checkpoint_lsn;  /* the MANIFEST's */
	uint32_t segments;        /* segments the MANIFEST names */
	uint64_t vectors;         /* live vectors in them: the segment counts minus the deleted */
	uint64_t deleted;         /* nodes the deletion files mark deleted */
	uint32_t deletion_files;
	struct bundle_snap_seg *segs; /* `segments` entries, MANIFEST order */
	/* the WAL (BUNDLE_SNAP_WAL) */
	uint32_t wal_files;       /* WAL files in files[] */
	uint64_t wal_bytes;       /* their bytes, as packed */
	uint64_t wal_records;     /* records with an LSN above checkpoint_lsn: writes not in segments */
	uint64_t wal_first_lsn, wal_last_lsn; /* of those records; 0 if none */
	uint64_t wal_cut_bytes;   /* bytes after the newest file's last whole record, left out */
	uint32_t retries;         /* times a concurrent commit made the snapshot start over */
	/*
	 * What a bundle of this state holds, in bundle order: the MANIFEST, its
	 * segments (mapped) and deletion files in MANIFEST order, then the WAL
	 * files in LSN order (in memory, each cut after its last whole record).
	 */
	struct bundle_file *files;
	uint32_t count;
};
int bundle_snapshot_take(const char *dir, unsigned flags, struct bundle_snapshot *out);
/* bundle_snapshot_take(dir, BUNDLE_SNAP_WAL, out): everything pack packs. */
int bundle_snapshot_open(const char *dir, struct bundle_snapshot *out);
void bundle_snapshot_free(struct bundle_snapshot *s);

/* What an unpack or verify found; filled as far as it got, also on failure. */
struct bundle_db_stats {
	uint32_t version;         /* the bundle's format version */
	uint32_t entries;         /* entries read and checked in full */
	uint64_t raw_bytes;       /* their raw bytes */
	uint64_t bundle_bytes;    /* bytes consumed from the source */
	uint32_t segments;        /* segments the MANIFEST names */
	uint64_t vectors;         /* live vectors they hold: counts minus deleted nodes */
	uint64_t deleted;         /* nodes the deletion files mark deleted */
	uint32_t deletion_files;  /* deletion files the MANIFEST names */
	uint32_t wal_files;       /* WAL files read and checked */
	uint64_t wal_records;     /* their records above the MANIFEST's checkpoint_lsn */
	uint64_t wal_first_lsn, wal_last_lsn; /* of those records; 0 if none */
	uint64_t checkpoint_lsn;  /* the MANIFEST's */
	uint32_t dim;
	uint32_t metric;
	uint32_t stale_removed;   /* unpack: stale temporary directories removed */
	char failed_entry[BUNDLE_NAME_MAX + 1]; /* the entry being read when it failed, or "" */
};

/*
 * Called by bundle_unpack() once every entry and rule has checked out, with
 * the temporary directory holding the whole database, before it is synced
 * and renamed to the target: it may change that database (strata unpack
 * replays the WAL files into segments there). A non-zero return (a
 * STRATA_E* code, detail set) fails the unpack, which then removes the
 * temporary directory as for any failure.
 */
typedef int (*bundle_finish_fn)(const char *tmp_dir, const struct bundle_db_stats *st, void *ctx);

struct bundle_unpack_opts {
	uint64_t max_bytes;       /* largest total raw size accepted; 0 = BUNDLE_UNPACK_MAX_DEFAULT */
	bool skip_space_check;    /* do not compare the declared size with free space (tests) */
	bundle_finish_fn finish;  /* may be NULL */
	void *finish_ctx;
};
#define BUNDLE_UNPACK_MAX_DEFAULT (1ull << 40) /* 1 TiB */

/*
 * Called after each entry has been read and checked in full; may be NULL.
 * Must not call back into the reader.
 */
typedef void (*bundle_entry_fn)(const struct bundle_entry *e, void *ctx);

/*
 * Unpack a database bundle read from `src` into the directory `dir`, which
 * must not exist or be empty (STRATA_EEXIST). Everything is written into a
 * temporary directory beside `dir` (".<name>.unpack-XXXXXX", locked with
 * flock while in use) and renamed to `dir` only after every checksum, every
 * name, the MANIFEST against the files, every segment in full (seg_check +
 * seg_verify), every deletion file against its segment and every WAL record
 * have checked out (and opts->finish returned 0), so a failed or interrupted
 * unpack leaves nothing under `dir`. Temporary directories of interrupted
 * unpacks of `dir` (unlocked) are removed first.
 * Returns 0, a data error, STRATA_EEXIST, STRATA_ELIMIT (declared size over
 * the limit), STRATA_ENOSPC (over the free space), STRATA_EIO, STRATA_EPERM,
 * STRATA_ENOMEM, or the source's error; the detail names the entry.
 */
int bundle_unpack(const struct bundle_source *src, const char *dir,
                  const struct bundle_unpack_opts *opts, bundle_entry_fn on_entry, void *ctx,
                  struct bundle_db_stats *stats_out);

/*
 * The checks of bundle_unpack() without writing anything: each entry is
 * decompressed into memory (one at a time; entries larger than
 * max_entry_bytes are refused with STRATA_ELIMIT) and checked like unpack
 * checks it. Returns what bundle_unpack() would, save the file-system codes.
 */
int bundle_verify(const struct bundle_source *src, uint64_t max_entry_bytes,
                  bundle_entry_fn on_entry, void *ctx, struct bundle_db_stats *stats_out);

#endif /* STRATA_BUNDLE_H */
