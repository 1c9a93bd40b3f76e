/*
 * db_write_fault_test.c - the write path under injected I/O failures (suite
 * 'fault', needs -Dfailpoints=true): upserts, deletes, flushes (segment,
 * deletion files, MANIFEST, WAL removal) and a close/reopen, through the
 * workload of tests/support/t_workload.h.
 *
 * For every fault class of t_fault.h (short write, EIO on write and read,
 * ENOSPC, fsync failure, mmap, open and rename failures, ...) the nth call at
 * its site fails, n = 1, 2, ... until the workload runs untouched. Each time:
 *   - the call that met the failure returns the precise code (the injected
 *     errno mapped; a failed fsync of the WAL is STRATA_EFSYNC) and a detail
 *     naming the failure;
 *   - from then on the handle refuses every write with that code, even with
 *     the fault gone (no retry-and-pretend), and says why in its stats
 *     (write_error, write_error_detail); searches still answer;
 *   - after a reopen, every acknowledged write holds, the call in flight is
 *     whole or absent, write_error is 0 and writes and flushes work again.
 * The one failure a writer may swallow is a failed unlink of a file it no
 * longer needs (a flushed WAL file, an old deletion file, a merged-away
 * segment): replay skips what is left, the next writer open deletes it.
 * strata_compact (op 32) is the exception to "writes stop": a merge that
 * fails before its manifest commit changed nothing, so the call returns the
 * code and the handle keeps taking writes. Each class prints how many calls
 * it failed.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strata.h"
#include "t_fault.h"
#include "t_support.h"
#include "t_workload.h"

#if STRATA_FAILPOINTS
static struct t_workload wl;

/* What the detail of a failure injected as `err` must contain. */
static const char *t_err_text(int err)
{
	return err == FP_SHORT ? "torn write" : strerror(err);
}

/* The handle refuses every kind of write with `want` and says why; reads still work. */
static void t_assert_refuses(strata_db *db, int want, int err, const char *what)
{
	float v[T_WL_DIM];
	uint64_t id = 3;
	t_wl_vec(id, 999, v);
	int rc = strata_upsert(db, &id, v, 1);
	cr_assert_eq(rc, want, "%s: upsert after the failure: %d (%s)", what, rc,
	             strata_last_error_detail());
	cr_assert(strstr(strata_last_error_detail(), t_err_text(err)),
	          "%s: the refusal does not say why: %s", what, strata_last_error_detail());
	cr_assert_eq(strata_delete(db, &id, 1), want, "%s: delete after the failure", what);
	cr_assert_eq(strata_flush(db), want, "%s: flush after the failure", what);
	int src = strata_sync(db);
	cr_assert(src == want || src == 0, "%s: sync after the failure: %d", what, src);
	struct strata_stats st;
	cr_assert_eq(strata_stats(db, &st), 0);
	cr_assert_eq(st.write_error, want, "%s: stats write_error %d, want %d", what, st.write_error,
	             want);
	cr_assert(strstr(st.write_error_detail, t_err_text(err)),
	          "%s: stats write_error_detail does not say why: \"%s\"", what, st.write_error_detail);
	uint64_t ids[3];
	float d[3];
	rc = strata_search(db, v, 1, 3, NULL, ids, d);
	cr_assert_eq(rc, 0, "%s: search after a write failure: %s", what, strata_last_error_detail());
}

/* One run with the nth call at ft's site failing. Returns false once the workload ran untouched. */
static bool t_write_fault_run(const struct t_fault *ft, int n, int *swallowed)
{
	char what[160];
	snprintf(what, sizeof what, "%s n=%d", ft->name, n);
	struct t_dir d = t_dir_new_mem();
	char dir[700];
	t_path(&d, "db", dir, sizeof dir);
	strata_options o = t_wl_options();
	strata_db *db = NULL;
	cr_assert_eq(strata_open(dir, &o, STRATA_CREATE, &db), 0, "%s", strata_last_error_detail());

	struct t_wl_acks a = {0};
	int rc = 0;
	t_fault_arm(ft, n);
	fp_trace_start();
	int end = t_wl_run(&wl, dir, &db, t_wl_ack_mem, &a, &rc);
	bool hit = fp_hits(ft->site) >= n;
	static const char *trace[FP_TRACE_MAX];
	int traced = fp_trace_get(trace, FP_TRACE_MAX);
	char detail[1024];
	snprintf(detail, sizeof detail, "%s", strata_last_error_detail());
	/* A full disk stays full while the refusals are checked; other faults are gone by then. */
	if (!ft->sticky)
		fp_disarm_all();
	cr_assert_eq(end, a.n, "%s: acknowledged ops are not a prefix", what);

	if (end == T_WL_OPS) {
		/*
		 * Untouched, or a swallowed failure: only while a committed flush
		 * removes what it made unneeded (flushed WAL files, old deletion
		 * files: wal_remove_upto and the discards after it), which replay
		 * skips if it stays; or the unlink of a segment a crashed flush may
		 * have left under the name about to be written (if there is one, the
		 * O_EXCL create then fails and says so).
		 */
		if (hit) {
			const char *before = "(none)";
			for (int i = 0; i < traced && i < FP_TRACE_MAX; i++) {
				if (strcmp(trace[i], FP_INJECTED) == 0)
					break;
				before = trace[i];
			}
			bool cleanup = !strcmp(before, "flush.manifest_committed") ||
			               !strcmp(before, "wal.file_removed") ||
			               !strcmp(before, "retired.deleting") ||
			               (ft->site == FP_UNLINK && !strcmp(before, "flush.writing_segment"));
			cr_assert(cleanup, "%s: a failure after step %s was swallowed: every op succeeded", what,
			          before);
		}
		fp_disarm_all();
		*swallowed += hit;
		cr_assert_eq(strata_close(db), 0, "%s: close: %s", what, strata_last_error_detail());
		t_wl_check_reopen(&wl, dir, T_WL_OPS, what);
		t_dir_free(&d);
		return hit;
	}
	cr_assert(hit, "%s: op %d failed, with nothing injected: %d %s", what, end, rc, detail);
	cr_assert(rc == ft->want || (ft->site == FP_FSYNC && rc == STRATA_EFSYNC),
	          "%s: op %d (kind %d) returned %d (%s), want %d", what, end, (int)wl.ops[end].kind, rc,
	          detail, ft->want);
	cr_assert(strstr(detail, t_err_text(ft->err)), "%s: the detail does not say what failed: %s",
	          what, detail);
	struct strata_stats st = {0};
	if (db && wl.ops[end].kind == T_WL_COMPACT && strata_stats(db, &st) == 0 && !st.write_error) {
		/*
		 * The merge failed before its manifest commit: nothing changed, and
		 * the handle takes writes as before (a failed commit, uncertain on
		 * disk, stops writes like a failed flush: the branch below).
		 */
		fp_disarm_all(); /* a disk kept full would refuse the WAL append, rightly */
		float v[T_WL_DIM];
		uint64_t id = 3;
		t_wl_vec(id, 999, v);
		cr_assert_eq(strata_upsert(db, &id, v, 1), 0, "%s: a write after a failed merge: %s", what,
		             strata_last_error_detail());
		cr_assert_eq(strata_close(db), 0, "%s: close after a failed merge: %s", what,
		             strata_last_error_detail());
		db = NULL;
		/* The write just made is beyond the workload's model: check the rest on a copy of the model. */
		t_wl_check_reopen_except(&wl, dir, end, id, what);
		t_dir_free(&d);
		return true;
	}
	if (db) {
		/* NULL when the failure hit the close or open of the reopen op: nothing to refuse with. */
		t_assert_refuses(db, rc, ft->err, what);
		int crc = strata_close(db);
		cr_assert(crc == 0 || crc == rc, "%s: close after the failure: %d", what, crc);
	}
	fp_disarm_all();
	t_wl_check_reopen(&wl, dir, end, what);
	t_dir_free(&d);
	return true;
}
#endif

Test(db_write_fault, every_io_failure_stops_writes_until_reopen_and_loses_nothing, .timeout = 900)
{
	T_NEED_FAILPOINTS();
#if STRATA_FAILPOINTS
	setenv("STRATA_WAL_IO", "pwrite", 1); /* the same calls in the same order every run */
	/* ... which the WAL's preparer thread would interleave with its own (its failures: wal_test). */
	setenv("STRATA_WAL_PREALLOC", "off", 1);
	t_wl_make(&wl);
	for (size_t f = 0; f < T_FAULT_COUNT; f++) {
		const struct t_fault *ft = &t_faults[f];
		int n, swallowed = 0;
		for (n = 1; t_write_fault_run(ft, n, &swallowed); n++)
			;
		fprintf(stderr, "fault: write path %-22s %3d calls, each failure -> %s%s\n", ft->name,
		        n - 1, strata_strerror(ft->want), swallowed ? " (or ignored: cleanup after a commit)" : "");
	}
#endif
}

/*
 * The case spelled out: the fsync of an acknowledged-path write fails
 * once. The caller gets STRATA_EFSYNC; the handle then refuses writes with it
 * and stats say why, even though the next fsync would succeed; a reopen
 * recovers every acknowledged write and takes writes again.
 */
Test(db_write_fault, fsync_failure_makes_writes_fail_until_reopen, .timeout = 120)
{
	T_NEED_FAILPOINTS();
#if STRATA_FAILPOINTS
	for (int io = 0; io < 2; io++) {
		setenv("STRATA_WAL_IO", io ? "uring" : "pwrite", 1);
		struct t_dir d = t_dir_new_mem();
		char dir[700];
		t_path(&d, "db", dir, sizeof dir);
		strata_options o = t_wl_options();
		o.wal_file_bytes = 1 << 20;
		strata_db *db;
		cr_assert_eq(strata_open(dir, &o, STRATA_CREATE, &db), 0, "%s", strata_last_error_detail());
		float v[T_WL_DIM];
		for (uint64_t id = 0; id < 5; id++) {
			t_wl_vec(id, 1, v);
			cr_assert_eq(strata_upsert(db, &id, v, 1), 0);
		}
		fp_arm(FP_FSYNC, 1, EIO);
		uint64_t id = 5;
		t_wl_vec(id, 1, v);
		int rc = strata_upsert(db, &id, v, 1);
		fp_disarm_all();
		cr_assert_eq(rc, STRATA_EFSYNC, "%s: upsert with a failing fsync: %d (%s)",
		             io ? "uring" : "pwrite", rc, strata_last_error_detail());
		cr_assert(strstr(strata_last_error_detail(), "sync"), "%s", strata_last_error_detail());
		t_assert_refuses(db, STRATA_EFSYNC, EIO, io ? "uring" : "pwrite");
		strata_close(db);

		cr_assert_eq(strata_open(dir, &o, 0, &db), 0, "%s", strata_last_error_detail());
		struct strata_stats st;
		cr_assert_eq(strata_stats(db, &st), 0);
		cr_assert_eq(st.write_error, 0);
		cr_assert_eq(st.write_error_detail[0], '\0');
		for (uint64_t i = 0; i < 5; i++)
			cr_assert(t_wl_holds(db, i, 1), "acknowledged id %llu lost", (unsigned long long)i);
		/* Id 5's record was written before its sync failed: whether it is back is not promised. */
		id = 6;
		t_wl_vec(id, 1, v);
		cr_assert_eq(strata_upsert(db, &id, v, 1), 0, "%s", strata_last_error_detail());
		cr_assert_eq(strata_close(db), 0);
		t_dir_free(&d);
	}
#endif
}
