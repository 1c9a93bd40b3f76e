/*
 * wal_internal.h - what the files of wal/ share and nothing outside wal/
 * includes: the writer's state (struct wal), the file helpers (wal_files.c),
 * the I/O backend (wal_uring.c) and the commit machinery (wal_commit.c).
 *
 * Writer lifecycle (the functions making each transition):
 *
 *   wal_open ──> OPEN ──wal_append/wal_sync/wal_rotate──> OPEN
 *                  │  a write, fsync or file creation fails (wal_lead)
 *                  v
 *                FAILED (w->failed != 0: every later call returns it)
 *   OPEN/FAILED ──wal_close──> freed
 *
 * Inside OPEN, at most one thread is the leader (w->leader): it alone
 * touches the current file (fd, write_off, path, file_first_lsn) and the I/O
 * backend, with w->mu released; everybody else queues records under w->mu
 * and waits on w->cv.
 */
#ifndef STRATA_WAL_INTERNAL_H
#define STRATA_WAL_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "failpoint.h"
#include "wal.h"

#define WAL_PATH_MAX 4096

/* ---- wal_files.c ------------------------------------------------------- */

/* dir/name into buf. Returns 0 or STRATA_EINVAL (too long). */
int wal_path_join(char *buf, size_t len, const char *dir, const char *name);

/*
 * The first LSNs of the files named wal-<16 hex>.log in `dir`, ascending, in
 * a malloc'd array (*lsns_out NULL when there are none). A missing directory
 * is STRATA_ENOTFOUND. Returns 0, STRATA_ENOMEM or an I/O code.
 */
int wal_files_list(const char *dir, uint64_t **lsns_out, size_t *n_out);

/*
 * Create dir/wal-<first_lsn>.log holding the file header, fsync it and the
 * directory (W3). An existing file of that name with no record (64 bytes or
 * fewer) is replaced; one with records gives STRATA_EEXIST. A failed fsync
 * is STRATA_EFSYNC. On failure nothing is left behind. *fd_out is O_WRONLY.
 */
int wal_file_create(const char *dir, const uint8_t db_uuid[16], uint32_t dim, uint64_t first_lsn,
                    int *fd_out);

/* ---- wal_uring.c: the I/O backend -------------------------------------- */

struct wal_iob {
	bool uring;  /* io_uring in use; false: fio_pwrite_all + fio_fdatasync */
	bool proven; /* an io_uring operation completed: -EINVAL is an error, not "unsupported" */
	void *ring;  /* struct io_uring *, when uring */
};

/* Choose the backend (env STRATA_WAL_IO overrides WAL_IO_AUTO). Never fails: falls back. */
void wal_iob_init(struct wal_iob *b, enum wal_io io);
void wal_iob_fini(struct wal_iob *b);

/*
 * Write buf[0..len) at `off` of fd (short writes completed), then, if `sync`,
 * fdatasync it (len may be 0: only the sync). Returns 0, the write's code
 * (STRATA_EIO, STRATA_ENOSPC, ...) or STRATA_EFSYNC; the detail names path.
 * Failpoints FP_WRITE and FP_FSYNC apply on both paths.
 */
int wal_iob_write(struct wal_iob *b, int fd, const void *buf, size_t len, uint64_t off, bool sync,
                  const char *path);

#if STRATA_FAILPOINTS
/*
 * Tests only (failpoint builds): make the io_uring backend behave as a kernel
 * may: refuse its first operation with -EINVAL (the fallback to pwrite), and
 * complete every write SQE short (half of it, at most 4 KiB less), so that the
 * completion loop and the broken link to the fsync are exercised.
 */
void wal_uring_test_quirks(bool refuse_first, bool short_writes);
#endif

/* ---- wal_prep.c: zeros written ahead of the records ---------------------- */

/*
 * Why: on ext4 (and most file systems) an fdatasync after an append must
 * commit the file's new size and block allocation through the journal; after
 * an overwrite of blocks already written it need not. Measured on this
 * project's VM (bare loop, one write + fdatasync each): 552-byte records
 * 3,800 -> 5,200 a second, 512 KiB 1,050 -> 1,450. So a preparer thread keeps
 * the current file written with zeros (and synced) ahead of the records; a
 * zero tail is a clean end of the log (FORMAT.md 10.6). Only under
 * STRATA_SYNC_ALWAYS and _INTERVAL: without syncs there is nothing to gain.
 *
 * Protocol (all under mu): [zero_end, ...) is what the preparer may zero next;
 * below zero_end the file holds records or zeros. The preparer zeroes one
 * chunk at zero_end with prep_busy set and mu released; a leader whose batch
 * would reach past zero_end while it is busy waits for it (prealloc_waits),
 * otherwise moves zero_end to its batch's end itself. wal_prep_hold stops the
 * preparer before a file is cut or closed (rotation, close).
 */

/* Start the preparer when the sync mode and STRATA_WAL_PREALLOC allow it (wal_open). */
int wal_prep_start(struct wal *w);
/* Stop and join it (wal_close; mu not held). */
void wal_prep_stop(struct wal *w);
/*
 * Leader, mu not held: the next batch goes to [off, end) of the current file.
 * Waits while the preparer zeroes a range the batch reaches, and asks it for
 * more when the zeros ahead run short.
 */
void wal_prep_claim(struct wal *w, uint64_t off, uint64_t end);
/*
 * Leader (or close), mu not held: keep the preparer off the current file
 * (waiting for a running chunk); returns true when the file holds zeros past
 * write_off, which the caller cuts off before the file may end (W3).
 */
bool wal_prep_hold(struct wal *w);
/* After a switch to a new file (mu not held): the preparer may work on it. */
void wal_prep_release(struct wal *w);

/* ---- the writer (wal_writer.c, wal_commit.c) ---------------------------- */

struct wal {
	struct wal_config cfg;
	char *dir; /* owned copy of cfg.dir */

	pthread_mutex_t mu;
	pthread_cond_t cv;       /* leader done, or leader role free */
	pthread_cond_t timer_cv; /* wakes the INTERVAL timer thread to stop */
	pthread_t timer;
	bool timer_on;
	bool stopping;

	/* Leader-owned: only the leader (or wal_open/wal_close alone) touches these. */
	int fd;
	char path[WAL_PATH_MAX];
	uint64_t file_first_lsn;
	uint64_t write_off;
	struct wal_iob iob;

	/* Under mu. */
	bool leader;
	uint8_t *q;              /* encoded records written_lsn+1 (or in flight) .. next_lsn-1 */
	size_t q_len, q_cap;
	uint64_t q_records;
	uint8_t *spare;          /* the other buffer (the leader writes from one while the queue fills) */
	size_t spare_cap;
	uint64_t next_lsn;       /* the LSN the next append gets */
	uint64_t written_lsn;    /* every record <= it is in the file */
	uint64_t durable_lsn;    /* every record <= it is synced */
	uint64_t sync_want;      /* a waiter wants durable_lsn >= it */
	/*
	 * Group commit gathering (wal_wait): writers seen around the last sync
	 * (its group plus those that queued during it), and how long that sync
	 * took. A new leader waits a fraction of a sync for that many records.
	 */
	uint64_t gather_target;
	uint64_t sync_ns;
	pthread_cond_t append_cv; /* a record was queued (monotonic clock) */
	/* The preparer (wal_prep.c). prep_thread/prep_on: set by wal_open only. */
	pthread_t prep_thread;
	bool prep_on;
	pthread_cond_t prep_cv;  /* wakes the preparer */
	bool prep_busy;          /* it is zeroing [zero_end, ...) with mu released */
	bool prep_held;          /* a switch or close is under way: it starts nothing */
	bool prep_failed;        /* a zero write or sync failed: no more preallocation */
	uint64_t prep_gen;       /* the current file's number: bumped at each switch */
	char prep_path[WAL_PATH_MAX]; /* the current file, for the preparer's own descriptor */
	uint64_t data_end;       /* the end of the last batch claimed */
	uint64_t zero_end;       /* the file is written (records or zeros) up to here */
	uint64_t prep_ahead;     /* zeros to keep ahead of data_end; doubles when outrun */
	uint64_t cur_first_lsn;  /* first LSN of the current file (a copy for wal_remove_upto) */
	int failed;              /* W4: sticky */
	char failed_detail[ERR_DETAIL_MAX]; /* its detail, for every thread that meets it */
	struct wal_stats st;
};

/*
 * Wait (mu held) until record `lsn` is written (durable: and synced), leading
 * the next batch when no one else does. Returns 0 once it is, else the
 * sticky failure.
 */
int wal_wait(struct wal *w, uint64_t lsn, bool durable);

/*
 * Be the leader once (mu held, no leader): write the queue, sync when asked,
 * rotate first when the current file passed file_bytes, and after when
 * force_rotate (and the current file holds records). Returns 0 or the error
 * that failed the log.
 */
int wal_lead(struct wal *w, bool force_rotate);

/* The sticky failure, with its detail set in the calling thread (mu held). */
int wal_failed(struct wal *w);

/* INTERVAL mode: the thread that syncs written records every sync_interval_ms. */
void *wal_timer_main(void *arg);

#endif /* STRATA_WAL_INTERNAL_H */
