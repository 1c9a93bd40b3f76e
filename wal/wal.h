/*
 * wal.h - the write-ahead log: what engine/ (and the inspect/verify tools)
 * may call. Files and records are laid out as format/wal_record.h and
 * FORMAT.md section 10 say; this module adds the policy: group commit,
 * durability modes, rotation, recovery of a torn tail, removal of old files.
 *
 * Durability invariants (tests cite them as W1..W5):
 *   W1  wal_append under STRATA_SYNC_ALWAYS returns 0 only once the record
 *       and every record before it are on stable storage (fdatasync done).
 *   W2  records are laid in the files in LSN order, LSNs consecutive (+1)
 *       within and across files.
 *   W3  a file is whole and synced before the next file is created (zeros
 *       written ahead of its records are cut off first); a new
 *       file, its header and its directory entry are synced before the first
 *       record goes to it. So only the newest file can have a torn tail.
 *   W4  after a failed write or fsync the log is failed for good: every later
 *       append/sync/rotate returns that error (STRATA_EFSYNC for an fsync).
 *       The failed batch's bytes are cut from the file (best effort), so
 *       recovery does not bring back a record whose append returned an error.
 *   W5  recovery cuts the newest file's torn tail (or its zeros written
 *       ahead) back to its last whole record and refuses any other damage
 *       with the file and byte offset.
 *
 * How the engine drives it:
 *   open:   mf_load -> wal_recover(after_lsn = checkpoint_lsn, apply into the
 *           memtable) -> wal_open(max(rec.next_lsn, checkpoint_lsn + 1))
 *           (rec.next_lsn is 0 when there are no files: use checkpoint_lsn + 1);
 *   write:  wal_append (one record per batch, split at walrec_*_max_n rows),
 *           then apply to the memtable;
 *   freeze: wal_rotate, so the frozen memtable's records end a file;
 *   flush:  segment written, manifest committed with checkpoint_lsn = the
 *           frozen memtable's last LSN -> wal_remove_upto(checkpoint_lsn);
 *   close:  wal_close (syncs unless the log failed).
 * Thread-safety: wal_append, wal_sync, wal_rotate, wal_last_lsn,
 * wal_remove_upto and wal_stats may be called from any threads at once;
 * wal_close only when no other call is running.
 */
#ifndef STRATA_WAL_H
#define STRATA_WAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "wal_record.h"

struct wal; /* opaque: one writer of one database directory */

enum wal_io { WAL_IO_AUTO = 0, WAL_IO_URING, WAL_IO_PWRITE };

struct wal_config {
	const char *dir;            /* database directory; copied by wal_open */
	uint8_t db_uuid[16];
	uint32_t dim;
	int sync_mode;              /* STRATA_SYNC_ALWAYS / _INTERVAL / _NONE (engine/strata.h) */
	uint32_t sync_interval_ms;  /* STRATA_SYNC_INTERVAL; 0 is taken as 1 */
	uint64_t file_bytes;        /* rotate: start a new file once the current one passes this (0: 64 MiB) */
	bool no_prealloc;           /* no zeros written ahead of the records (wal_internal.h says why
	                               they are); env STRATA_WAL_PREALLOC=off does the same */
	enum wal_io io;             /* AUTO: io_uring if it works, else pwrite+fdatasync;
	                               env STRATA_WAL_IO=pwrite|uring overrides AUTO. URING
	                               falls back to pwrite the same way when the kernel refuses */
};

struct wal_recovery {
	uint32_t files; uint64_t records, bytes, last_lsn;  /* last_lsn: highest whole record seen (0 if none) */
	uint64_t records_applied;                           /* lsn > after_lsn */
	uint64_t torn_bytes;        /* bytes cut (or, read-only, ignored) from the newest file's tail */
	char torn_file[64];         /* its name, "" if none */
	double seconds;             /* wall time of the replay (stats report it) */
	/* Added: the LSN the next record must carry to continue the log (last whole
	   record + 1, or the first LSN of a newest file without records); 0 if no files. */
	uint64_t next_lsn;
	uint32_t torn_headers;      /* newest files whose header was torn: removed (or ignored) */
	uint64_t zero_bytes;        /* zeros written ahead after the newest file's last record: cut
	                               like a torn tail (read-only: ignored), but not a tear */
};

typedef int (*wal_apply_fn)(void *ctx, uint64_t lsn, unsigned type, const uint8_t *payload, size_t len);

/*
 * Replay every whole record with lsn > after_lsn, in LSN order, through fn
 * (a non-zero return from fn stops and is returned). `payload` is 8-aligned
 * and valid during the call only; `len` is walrec.payload_len, for
 * walrec_upsert_view / walrec_delete_view. The payload structure (and an
 * upsert's dim) has been checked before fn sees it.
 *
 * LSNs must be consecutive (+1) across records and files; a gap is
 * corruption, except between files wholly at or below after_lsn + 1 (a log
 * reopened at the manifest's checkpoint). The first file must start at or
 * below after_lsn + 1 (else records after the checkpoint are missing).
 * The newest file's torn or corrupt tail (no valid record after the damage)
 * is cut back to the last whole record (ftruncate + fsync; with readonly=true
 * only ignored) and reported; so are zeros after its last record (written
 * ahead by the writer's preparer), reported apart as zero_bytes; damage followed by a valid record, or damage in
 * a file that is not the newest, is STRATA_ECORRUPT / STRATA_ECHECKSUM with a
 * detail naming the file and byte offset. A header of a file from another
 * database (uuid) or dim: STRATA_ECORRUPT naming the file. A newest file whose
 * header itself is torn (shorter than 64 bytes, or nothing but zero bytes) is
 * a crash during creation: removed (not readonly) / ignored. No files: 0 with
 * zero counts. *out is filled on success (and as far as known on failure).
 * Also STRATA_EIO, STRATA_ENOMEM, STRATA_ENOTDB, STRATA_EVERSION, STRATA_EINVAL.
 */
int wal_recover(const struct wal_config *c, uint64_t after_lsn, bool readonly,
                wal_apply_fn fn, void *ctx, struct wal_recovery *out);

/*
 * Start writing: creates a new file whose first LSN is next_lsn (after
 * recovery: last_lsn+1, or the manifest's checkpoint+1 if larger), fsyncs it
 * and the directory. A file of that name holding no record (left by an open
 * that appended nothing) is replaced; one holding records gives STRATA_EEXIST.
 * Under STRATA_SYNC_INTERVAL starts the timer thread. Returns 0, STRATA_EINVAL,
 * STRATA_EEXIST, STRATA_ENOMEM, STRATA_ENOSPC, STRATA_EIO, STRATA_EFSYNC.
 */
int wal_open(const struct wal_config *c, uint64_t next_lsn, struct wal **out);

/*
 * Append one record (payload = concatenation of iov) and return its LSN in
 * *lsn_out. Thread-safe. SYNC_ALWAYS: returns after the record is on stable
 * storage; concurrent callers share one write + fdatasync (group commit: a
 * leader writes every record queued so far in one write and one fdatasync,
 * then wakes the followers). INTERVAL: returns after the write; a timer
 * thread syncs at most sync_interval_ms later. NONE: returns after the write
 * (page cache). LSNs increase in the order records are laid in the file. If a
 * write or fsync fails, the log is failed for good (W4). Rotation happens
 * inside append when the file passes file_bytes (W3).
 * Returns 0, STRATA_EINVAL (type, iov), STRATA_ELIMIT (record over
 * WAL_RECORD_MAX: nothing changed), STRATA_ENOMEM, or the sticky failure.
 */
int wal_append(struct wal *w, unsigned type, const struct iovec *iov, int iovcnt, uint64_t *lsn_out);
int wal_sync(struct wal *w);          /* everything appended so far durable */
int wal_rotate(struct wal *w);        /* next record goes to a new file (the engine calls this when it freezes a memtable) */
uint64_t wal_last_lsn(struct wal *w); /* LSN of the last appended record (next_lsn - 1 before any) */
/* Delete the files all of whose records have lsn <= lsn (never the current file); fsync dir. */
int wal_remove_upto(struct wal *w, uint64_t lsn);
struct wal_stats {
	uint64_t appends, records, bytes, fsyncs, writes, max_group;
	uint32_t files;
	bool io_uring;
	/* Preallocation (wal_internal.h): zero bytes written ahead, batches that waited for it,
	   and whether it stopped after a failed zero write or sync (the log goes on without). */
	uint64_t prealloc_bytes, prealloc_waits;
	bool prealloc_on, prealloc_failed;
};
void wal_stats(struct wal *w, struct wal_stats *out);
/* Sync (unless failed) and free. Returns the sync's result (or the sticky failure). */
int wal_close(struct wal *w);

/*
 * Inspect/verify tooling: list and check the WAL files of `dir` in LSN order
 * without applying or changing anything. fn is called once per file named
 * wal-<16 hex>.log; a non-zero return from fn stops and is returned.
 * db_uuid NULL / dim 0: accept any; checkpoint_lsn as wal_recover's after_lsn
 * (the manifest's). Every file is checked (as wal_recover would in readonly
 * mode, continuity with the previous file included; after a damaged file the
 * next one starts a new run); the
 * result is 0 when all are fine (a torn tail in the newest file is fine: it
 * would be cut), else the first file's error (the detail of the last).
 */
struct wal_file_info {
	char name[64];
	uint64_t first_lsn;       /* from the header (the name's when the header is bad) */
	uint64_t records;         /* whole valid records before any damage */
	uint64_t last_lsn;        /* of the last of them, 0 if none */
	uint64_t size_bytes;      /* the file's size */
	uint64_t valid_bytes;     /* header + whole records */
	uint64_t torn_bytes;      /* newest file: what recovery would cut as a torn tail */
	uint64_t zero_bytes;      /* newest file: zeros after the last record (written ahead, 10.6): recovery cuts them too */
	bool newest;
	bool torn_header;         /* newest file of a crash during creation: recovery removes it */
	int error;                /* 0 or the STRATA_E* code of this file's damage */
	char detail[256];         /* error detail ("" if none) */
};
typedef int (*wal_scan_fn)(void *ctx, const struct wal_file_info *f);
int wal_scan_dir(const char *dir, const uint8_t *db_uuid, uint32_t dim, uint64_t checkpoint_lsn,
                 wal_scan_fn fn, void *ctx);

#endif /* STRATA_WAL_H */
