/*
 * failpoint.h - named places in the I/O seam where tests inject failures.
 *
 * Two kinds:
 *   - sites (enum fp_site): every call of one kind in fio.c (and the io_uring
 *     backend of wal/) can be made to fail with an errno, a short write, ...;
 *   - named steps (fp_step): the points between two I/O calls of a
 *     multi-file protocol where a crash leaves it half done, e.g.
 *     "atomic.renamed" (fio_write_file_atomic: the new file has its name,
 *     the directory is not synced yet). A test arms a crash at the nth
 *     passage of a step (fp_arm_crash) and checks what a reopen finds.
 *
 * Compiled in only when the build sets STRATA_FAILPOINTS=1 (meson option
 * `failpoints`, on in test builds); in release builds fp_inject() is an
 * inline 0 and fp_step() an inline no-op: they cost nothing.
 *
 * The steps, "<protocol>.<what is done>" (grep fp_step for the places):
 *   atomic.tmp_synced        fio_write_file_atomic: <name>.tmp written and fsynced, not renamed
 *   atomic.renamed           ... renamed over <name>, directory not synced
 *   segment.synced           seg_write: the segment file written and fsynced, not closed/checked
 *   wal.file_written         wal_file_create: a new log file's header written, not synced
 *   wal.file_synced          ... the file synced, its directory entry not
 *   wal.records_written      pwrite backend: a group of records written, not fdatasynced
 *   wal.records_synced       a group synced, its writers not yet told (not acknowledged)
 *   wal.file_removed         wal_remove_upto: an old log file unlinked, directory not synced
 *   wal.tail_cut             recovery: a torn tail truncated, the cut not synced
 *   flush.writing_segment    engine flush: the frozen memtable compacted, its segment not written
 *   flush.segment_written    ... the new segment written (outside the manifest lock)
 *   flush.deletion_files_written  ... under it, the changed segments' deletion files written
 *   flush.dir_synced         ... directory synced, MANIFEST not committed
 *   flush.manifest_committed ... MANIFEST committed, the flushed WAL files still there
 *   merge.segment_written    compactor: the merged segment written, nothing committed
 *   merge.deletion_file_written  ... its deletion file written, MANIFEST not committed
 *   merge.manifest_committed ... MANIFEST committed, the in-memory switch not yet made
 *   retired.deleting         compactor: replaced files about to be deleted (cleanup only)
 */
#ifndef STRATA_FAILPOINT_H
#define STRATA_FAILPOINT_H

#include <stdbool.h>

enum fp_site {
	FP_OPEN,
	FP_READ,
	FP_WRITE,      /* error, or a short write when armed with FP_SHORT */
	FP_FSYNC,
	FP_RENAME,
	FP_MMAP,
	FP_MKDIR,
	FP_UNLINK,
	FP_PREALLOC,   /* wal/'s preparer: a zero write (+ its sync) ahead of the records */
	FP_SITE_COUNT
};

/* Pseudo-errno for FP_WRITE: write only half of the request, then report success of that part. */
#define FP_SHORT 100000

/* How an armed step crashes (fp_arm_crash). */
enum fp_crash {
	/*
	 * _exit(FP_CRASH_EXIT_CODE) at once, as a SIGKILL would: what reached
	 * the page cache stays. For a workload run in a fork()ed child.
	 */
	FP_CRASH_EXIT,
	/*
	 * The machine loses power here: the power-loss recorder (fio_record.h,
	 * which must be recording) kills every later mutating call (STRATA_EIO),
	 * and fio_record_powerloss() then leaves on disk only what was synced.
	 */
	FP_CRASH_POWER,
};
#define FP_CRASH_EXIT_CODE 86

#if STRATA_FAILPOINTS
/* 0, or the -errno (or -FP_SHORT) a test armed for this call. */
int fp_inject(enum fp_site site);
/* Make the nth (1-based) call at `site` from now on return -errno_value. */
void fp_arm(enum fp_site site, int nth, int errno_value);
/* Same, but every call from the nth on fails (a full disk stays full). */
void fp_arm_sticky(enum fp_site site, int nth, int errno_value);
/* How many calls `site` has seen since it was armed. */
int fp_hits(enum fp_site site);
/* Disarm every site and step, zero every counter, stop tracing. */
void fp_disarm_all(void);

/* The code passes the named step `name` (a string literal: kept by address). */
void fp_step(const char *name);
/* Crash `how` at the nth (1-based) passage of step `name` from now on. One step armed at a time. */
void fp_arm_crash(const char *name, int nth, enum fp_crash how);
/* True once the armed crash happened (FP_CRASH_POWER; FP_CRASH_EXIT never returns). */
bool fp_crashed(void);
/*
 * Record the steps passed from now on, in order, up to FP_TRACE_MAX
 * (later ones are counted, not kept), and every failure an armed site
 * injects as the pseudo-step FP_INJECTED, so a test can tell between which
 * steps it happened. fp_trace_get copies at most `max` names to names_out
 * and returns how many entries were traced in all.
 */
#define FP_TRACE_MAX 4096
#define FP_INJECTED "fp.injected"
void fp_trace_start(void);
int fp_trace_get(const char **names_out, int max);
#else
static inline int fp_inject(enum fp_site site)
{
	(void)site;
	return 0;
}
static inline void fp_step(const char *name)
{
	(void)name;
}
#endif

#endif /* STRATA_FAILPOINT_H */
