/*
 * cli_files.h - reading one WAL file or one deletion file held in memory, for
 * inspect, verify and dump (tools/strata.1), when the file is named alone
 * rather than as part of a database directory.
 *
 * A database directory's WAL is checked by wal/ itself (wal_scan_dir,
 * wal_recover), which knows which file is the newest and what the manifest's
 * checkpoint is. A file given alone has no such context, so these helpers
 * apply the rules of FORMAT.md that one file can show on its own: its header,
 * each record's framing and checksum (format/wal_record.h), the payload
 * structure, LSNs consecutive within the file; and the tail rule as if the
 * file were the newest: damage that no valid record follows is a torn tail,
 * damage followed by a valid record is corruption. Deletion files are decoded
 * against the binding their own header states (the segment cannot be asked).
 * Nothing here prints or exits; every input byte sequence gives a result.
 */
#ifndef STRATA_CLI_FILES_H
#define STRATA_CLI_FILES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wal_record.h"

#define CLI_FILES_DETAIL_MAX 768

/* What one WAL file holds. */
struct cli_wal_file {
	bool header_ok;                  /* hdr is valid */
	struct walrec_file_header hdr;
	uint64_t records;                /* whole valid records before the first damage */
	uint64_t upserts, deletes;       /* of them, by type */
	uint64_t upsert_rows, delete_rows;
	uint64_t first_lsn, last_lsn;    /* of those records, 0 if none */
	uint64_t valid_bytes;            /* header + those records */
	uint64_t damage_off;             /* offset of the first damage, 0 if none */
	uint64_t next_valid_off;         /* a valid record after the damage, 0 if none found */
	bool torn;                       /* damage with nothing valid after it: a torn tail */
	uint64_t torn_bytes;             /* its length (what recovery cuts in the newest file) */
	uint64_t zero_bytes;             /* zeros after the last record (written ahead, FORMAT.md 10.6): a clean end */
	int error;                       /* 0, or the STRATA_E* code of damage that is not a torn tail */
	char detail[CLI_FILES_DETAIL_MAX]; /* of the first damage, torn or not ("" if none) */
};

/*
 * Called for each whole valid record, in file order, with its file offset.
 * `rec` points into the caller's buffer. A non-zero return stops the walk and
 * is returned by cli_wal_walk.
 */
typedef int (*cli_wal_rec_fn)(void *ctx, uint64_t off, const struct walrec *rec);

/*
 * Walk the WAL file buf[0..len). Records up to the first damage go to fn (may
 * be NULL). With `resync`, the walk goes on at the next valid record after a
 * damage (for dump), and records found there go to fn too, though the counts
 * in *out stop at the first damage. LSNs must increase by one from the
 * header's first_lsn; a record that breaks the sequence, a payload that
 * breaks FORMAT.md's rules or an upsert of another dim is damage followed by
 * a valid record (not a torn write: its checksum matched).
 * The search for a valid record after damage hashes at most twice the bytes
 * left plus 64 MiB; past that, the damage is reported as not a torn tail.
 * Returns 0 or fn's non-zero result; damage is reported in *out only.
 */
int cli_wal_walk(const uint8_t *buf, size_t len, bool resync, cli_wal_rec_fn fn, void *ctx,
                 struct cli_wal_file *out);

/* What one deletion file holds. */
struct cli_tomb_file {
	bool header_read;      /* the header was whole: the fields below are its values */
	uint64_t seg_seq, seg_header_xxh3, count, deleted, gen;
	bool name_checked;     /* the file name parsed as del-<seq>-<gen>.del */
	bool name_matches;     /* ... and agrees with the header */
	uint64_t *bits;        /* the bitmap (malloc'd, cli_tomb_file_free) when error is 0 */
	int error;             /* 0 or the STRATA_E* code of tomb_decode() */
	char detail[CLI_FILES_DETAIL_MAX];
};

/*
 * Decode buf[0..len) as a deletion file, expecting the binding its own header
 * states (every other check of tomb_decode() applies). `name` (the file's
 * base name, may be NULL) is compared with the header's seq and generation;
 * a mismatch sets error STRATA_ECORRUPT. Never fails otherwise: results are in *out.
 */
void cli_tomb_check(const uint8_t *buf, size_t len, const char *name, struct cli_tomb_file *out);
void cli_tomb_file_free(struct cli_tomb_file *t);

/* 0 and the numbers if `name` is exactly del-<16 hex>-<16 hex>.del; else -1. */
int cli_tomb_name_parse(const char *name, uint64_t *seg_seq_out, uint64_t *gen_out);

/* The base name of a path (what follows its last '/'). */
const char *cli_base_name(const char *path);

#endif /* STRATA_CLI_FILES_H */
