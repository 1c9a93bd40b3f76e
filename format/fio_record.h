/*
 * fio_record.h - power-loss simulation in the I/O seam (test builds only).
 *
 * A SIGKILL leaves the page cache intact, so a kill test cannot see a missing
 * fsync. The recorder can: while it runs, every mutating call of fio.h on a
 * file or directory under `root` (and every io_uring write and sync reported
 * through fio_note_write/fio_note_sync) is applied to an in-memory model that
 * keeps, beside what the process sees, what a disk that lost power would keep:
 *
 *   - a file's durable content is its content at its last completed fsync or
 *     fdatasync (empty for a file never synced);
 *   - a directory's durable entries (which names exist and which file or
 *     directory each refers to) change only when the directory itself is
 *     fsynced (fio_fsync_dir, or fio_fsync of a descriptor of it): creations,
 *     renames and unlinks not followed by that sync are undone.
 *
 * That is POSIX's promise and nothing more (journalling file systems usually
 * keep more); code that is correct under it is correct on any of them.
 *
 * Lifecycle (one recorder per process):
 *
 *   idle --fio_record_start--> recording --(nth op, fio_record_crash_after)--> dead
 *     ^                            |                                              |
 *     +------ fio_record_stop -----+------------- fio_record_powerloss -----------+
 *                                  (powerloss also from recording: the tree on disk
 *                                   is rewritten to the model's durable state)
 *
 * In the dead state every later mutating call under `root` fails with
 * STRATA_EIO and changes nothing, on disk or in the model, as if the machine
 * had stopped; reads, opens without O_CREAT/O_TRUNC and closes still work.
 * A call failed by an armed failpoint (failpoint.h) never reaches the
 * recorder: it is neither counted nor recorded.
 *
 * Use in a test (tests/unit/fio_record_test.c, tests/fault/db_powerloss_test.c):
 *
 *   for (uint64_t n = 1;; n++) {             // crash point n = 1, 2, ...
 *       fio_record_start(dir);
 *       fio_record_set_tear(FIO_TEAR_BYTE, seed(n));   // print it on failure
 *       fio_record_crash_after(n);
 *       rc = workload(dir);                  // sees STRATA_EIO from op n on
 *       bool crashed = fio_record_crashed();
 *       fio_record_powerloss();              // dir now holds what a reboot finds
 *       check(dir, rc);                      // reopen; acknowledged work is there
 *       if (!crashed)
 *           break;                           // the workload ran to its end
 *   }
 *
 * Limits: the root directory itself must stay where it is; hard links and
 * symbolic links under it are not modelled (fio_record_start refuses them);
 * a file or directory renamed in from outside `root` is taken as durable
 * content under a name that is not yet durable. Content is held in memory:
 * meant for test-sized databases.
 *
 * Thread-safe: one mutex, held across each recorded call under `root` so the
 * model sees the calls in the order the file system did.
 *
 * Compiled only when STRATA_FAILPOINTS is 1; otherwise the seam hooks at the
 * end of this file are inline no-ops and cost nothing.
 */
#ifndef STRATA_FIO_RECORD_H
#define STRATA_FIO_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* How a write cut by the simulated power loss leaves the disk. */
enum fio_tear {
	FIO_TEAR_NONE,   /* the crashing write leaves nothing */
	FIO_TEAR_SECTOR, /* a prefix ending at a 512-byte boundary of the file survives (maybe none) */
	FIO_TEAR_BYTE,   /* a prefix of any length shorter than the write survives */
};

#define FIO_RECORD_SECTOR_SIZE 512

#if STRATA_FAILPOINTS

/*
 * Start recording the tree under `root` (an existing directory). What exists
 * there now is taken as durable: names and file contents are read in.
 * Resets the op counter, the crash point and the tear mode.
 * Returns 0, STRATA_EINVAL (already recording, `root` not a directory, or a
 * symbolic link, hard link or special file under it; detail says which),
 * STRATA_ENOMEM or STRATA_EIO.
 */
int fio_record_start(const char *root);

/*
 * Make the `nth_op` mutating op (1-based, counted since fio_record_start, as
 * fio_record_ops() counts them) and every one after it fail as if the
 * machine died. 0 disarms. If `nth_op` is already past, the next op dies.
 * Mutating ops: write, fsync, fdatasync, ftruncate, rename, unlink, discard,
 * mkdir, mkdtemp, rmdir, open that creates or truncates, and the io_uring
 * writes and syncs of fio_note_write/fio_note_sync.
 */
void fio_record_crash_after(uint64_t nth_op);

/*
 * When the op that dies is a write, let a prefix of it reach the durable
 * content of its file (on top of what was durable: later unsynced writes are
 * still lost). The prefix length is drawn from `seed` (splitmix64), so a
 * failure reproduces from the printed seed.
 */
void fio_record_set_tear(enum fio_tear tear, uint64_t seed);

/* Mutating ops under `root` recorded since fio_record_start (the dying op not included). */
uint64_t fio_record_ops(void);

/* True once the crash point was reached (a later op under `root` died). */
bool fio_record_crashed(void);

/*
 * Bytes of the dying write that fio_record_set_tear kept; 0 if none, or no
 * write died. For tests that check the tear itself.
 */
size_t fio_record_torn_len(void);

/*
 * Stop recording and rewrite the tree under `root` to its durable state, what
 * a machine that lost power would find on reboot: everything under `root` is
 * removed, then the durable names are recreated with their durable contents
 * (a file with two durable names gets two hard links). The database can then
 * be reopened normally. The caller closes its descriptors and mappings of
 * files under `root` first, or at least never uses them again.
 * Returns 0, STRATA_EINVAL (not recording), STRATA_ENOMEM (the model could not
 * keep up: the recorder ran out of memory or a file grew past its limit) or
 * STRATA_EIO (the tree could not be rewritten; detail says where).
 */
int fio_record_powerloss(void);

/* Stop recording and forget the model; the files stay as they are. */
void fio_record_stop(void);

#endif /* STRATA_FAILPOINTS */

/*
 * ---- Seam side: used by fio.c only. ----
 *
 * A mutating call under `root` is bracketed: fio_rec_begin() before the system
 * call (0: go ahead; STRATA_EIO: the machine is dead, do nothing), then
 * fio_rec_end() exactly once with what really happened. Between the two the
 * recorder's lock may be held, so nothing in between may call back into fio.
 */
enum fio_rec_kind {
	FIO_REC_OPEN,      /* path, flags; end: fd */
	FIO_REC_CLOSE,     /* fd */
	FIO_REC_PWRITE,    /* fd, buf, len, off; end: bytes that landed */
	FIO_REC_WRITE,     /* fd, buf, len at the current position; end: bytes that landed */
	FIO_REC_FSYNC,     /* fd (file: content durable; directory: entries durable) */
	FIO_REC_FTRUNCATE, /* fd, off = new length */
	FIO_REC_RENAME,    /* path -> path2 */
	FIO_REC_UNLINK,    /* path (also rmdir and discard) */
	FIO_REC_MKDIR,     /* path (mkdtemp: the template, read again at end) */
};

struct fio_rec_op {
	enum fio_rec_kind kind;
	int fd;
	int flags;
	const char *path;
	const char *path2;
	const void *buf;
	size_t len;
	uint64_t off;
	/* The recorder's own, filled by fio_rec_begin. */
	bool held;      /* the lock is held: the op concerns the model */
	void *node;     /* struct rec_node of the fd, if known */
	bool creates;   /* open: the path did not exist in the model */
	char *canon;    /* malloc'd canonical forms of path and path2, or NULL */
	char *canon2;
};

#if STRATA_FAILPOINTS
int fio_rec_begin(struct fio_rec_op *op);
/* rc: the call's result (0 = done). landed: bytes of a write that reached the file. */
void fio_rec_end(struct fio_rec_op *op, int rc, size_t landed);
#else
static inline int fio_rec_begin(struct fio_rec_op *op)
{
	(void)op;
	return 0;
}
static inline void fio_rec_end(struct fio_rec_op *op, int rc, size_t landed)
{
	(void)op;
	(void)rc;
	(void)landed;
}
#endif

#endif /* STRATA_FIO_RECORD_H */
