/*
 * db_steps_test.c - a crash between two named steps (failpoint.h, fp_step):
 * at every passage of every named step of a write workload - a log file
 * created, a group of records written or synced, deletion files, a segment, a
 * MANIFEST written, renamed, committed, an old log file removed - the writer
 * dies, and the database is reopened with STRATA_VERIFY and checked:
 *   - every acknowledged upsert and delete holds, bit for bit;
 *   - the call in flight is wholly applied or wholly absent;
 *   - the reopened database takes writes and flushes again.
 * Two ways to die at a step (enum fp_crash):
 *   - process crash: the workload runs in a fork()ed child that _exit()s at
 *     the step, as a SIGKILL would (the page cache survives);
 *   - power loss: the recorder of format/fio_record.h kills every later I/O,
 *     and what no fsync covered is discarded before the reopen.
 * A first run traces the steps the workload passes; then one crash run per
 * (step, passage) and way. The WAL uses its pwrite backend (the step between
 * a group's write and its fdatasync exists only there, and the recorder sees
 * io_uring writes only after they completed). Suite 'crash'; skipped in builds
 * without failpoints.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "strata.h"
#include "../fault/t_fault.h"
#include "t_support.h"

#if STRATA_FAILPOINTS
#include "fio_record.h"
#include "t_workload.h"

#define MAX_STEPS 64

static struct t_workload wl;

static void ack_pipe(void *ctx, int i)
{
	int fd = *(int *)ctx;
	if (write(fd, &i, sizeof i) != (ssize_t)sizeof i)
		_exit(3);
}

/* A fresh database directory, created and closed (the crash runs start from it). */
static void fresh_db(struct t_dir *d, char *dir, size_t len)
{
	*d = t_dir_new_mem();
	t_path(d, "db", dir, len);
	strata_options o = t_wl_options();
	strata_db *db;
	cr_assert_eq(strata_open(dir, &o, STRATA_CREATE, &db), 0, "%s", strata_last_error_detail());
	cr_assert_eq(strata_close(db), 0);
}

struct step_count {
	const char *name;
	int n;
};

/* Trace a clean run: the named steps, with how often each is passed. */
static int trace_steps(struct step_count *out)
{
	struct t_dir d;
	char dir[700];
	fresh_db(&d, dir, sizeof dir);
	fp_disarm_all();
	fp_trace_start();
	struct t_wl_acks a = {0};
	int end = t_wl_run_dir(&wl, dir, t_wl_ack_mem, &a);
	static const char *trace[FP_TRACE_MAX];
	int n = fp_trace_get(trace, FP_TRACE_MAX);
	fp_disarm_all();
	cr_assert_eq(end, T_WL_OPS, "the clean run failed at op %d: %s", end, strata_last_error_detail());
	cr_assert(n <= FP_TRACE_MAX);
	t_wl_check_reopen(&wl, dir, T_WL_OPS, "clean run");
	t_dir_free(&d);
	int kinds = 0;
	for (int i = 0; i < n; i++) {
		int k;
		for (k = 0; k < kinds && strcmp(out[k].name, trace[i]); k++)
			;
		if (k == kinds) {
			cr_assert(kinds < MAX_STEPS);
			out[kinds++] = (struct step_count){trace[i], 0};
		}
		out[k].n++;
	}
	return kinds;
}

/* Die as a process at passage `nth` of `step`; returns whether the crash happened. */
static bool crash_exit(const char *step, int nth)
{
	struct t_dir d;
	char dir[700], what[200];
	snprintf(what, sizeof what, "process crash at %s #%d", step, nth);
	fresh_db(&d, dir, sizeof dir);
	int p[2];
	cr_assert_eq(pipe(p), 0);
	fflush(NULL);
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		fp_disarm_all();
		fp_arm_crash(step, nth, FP_CRASH_EXIT);
		int end = t_wl_run_dir(&wl, dir, ack_pipe, &p[1]);
		t_child_exit(end == T_WL_OPS ? 0 : 1);
	}
	close(p[1]);
	int i, acked = 0;
	while (read(p[0], &i, sizeof i) == (ssize_t)sizeof i)
		if (i == acked)
			acked = i + 1;
	close(p[0]);
	int status;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status), "%s: the child died of signal %d", what, WTERMSIG(status));
	int code = WEXITSTATUS(status);
	cr_assert(code == FP_CRASH_EXIT_CODE || code == 0, "%s: a write failed without a crash (exit %d)",
	          what, code);
	t_wl_check_reopen(&wl, dir, acked, what);
	t_dir_free(&d);
	return code == FP_CRASH_EXIT_CODE;
}

/* Lose power at passage `nth` of `step`; returns whether the crash happened. */
static bool crash_power(const char *step, int nth, enum fio_tear tear)
{
	struct t_dir d;
	char dir[700], what[200];
	snprintf(what, sizeof what, "power loss at %s #%d (tear %d)", step, nth, (int)tear);
	fresh_db(&d, dir, sizeof dir);
	cr_assert_eq(fio_record_start(dir), 0, "%s", strata_last_error_detail());
	fio_record_set_tear(tear, (uint64_t)nth * 131 + strlen(step));
	fp_disarm_all();
	fp_arm_crash(step, nth, FP_CRASH_POWER);
	struct t_wl_acks a = {0};
	int end = t_wl_run_dir(&wl, dir, t_wl_ack_mem, &a);
	bool crashed = fp_crashed();
	fp_disarm_all();
	cr_assert(crashed || end == T_WL_OPS, "%s: op %d failed without a crash: %s", what, end,
	          strata_last_error_detail());
	cr_assert_eq(fio_record_powerloss(), 0, "%s: %s", what, strata_last_error_detail());
	t_wl_check_reopen(&wl, dir, a.n, what);
	t_dir_free(&d);
	return crashed;
}

/* The steps failpoint.h documents that this workload must pass. */
static const char *const expected_steps[] = {
	"atomic.tmp_synced", "atomic.renamed", "segment.synced", "wal.file_written",
	"wal.file_synced", "wal.records_written", "wal.records_synced", "wal.file_removed",
	"flush.writing_segment", "flush.segment_written", "flush.deletion_files_written",
	"flush.dir_synced", "flush.manifest_committed", "merge.segment_written",
	"merge.manifest_committed", "retired.deleting", /* merge.deletion_file_written: only when
	                                                  rows are deleted during a merge */
};
#endif

Test(db_steps, crash_at_every_named_step_keeps_acknowledged_writes, .timeout = 900)
{
	T_NEED_FAILPOINTS();
#if STRATA_FAILPOINTS
	setenv("STRATA_WAL_IO", "pwrite", 1);
	t_wl_make(&wl);
	struct step_count steps[MAX_STEPS];
	int kinds = trace_steps(steps);
	for (size_t e = 0; e < sizeof expected_steps / sizeof *expected_steps; e++) {
		bool seen = false;
		for (int k = 0; k < kinds; k++)
			seen |= strcmp(steps[k].name, expected_steps[e]) == 0;
		cr_assert(seen, "the workload never passes step %s", expected_steps[e]);
	}
	int runs = 0, crashes = 0;
	for (int k = 0; k < kinds; k++) {
		for (int nth = 1; nth <= steps[k].n; nth++) {
			crashes += crash_exit(steps[k].name, nth);
			crashes += crash_power(steps[k].name, nth, (enum fio_tear)(nth % 3));
			runs += 2;
		}
		printf("step %-30s passed %3d times: a process crash and a power loss at each held\n",
		       steps[k].name, steps[k].n);
	}
	/* Steps come in a fixed order here (flushes are waited for): each armed crash happens. */
	cr_assert_eq(crashes, runs, "%d of %d armed crashes did not happen", runs - crashes, runs);
#endif
}

/*
 * Recovery's own protocol: a torn tail is cut (ftruncate) and the cut synced.
 * A crash between the two leaves the tail cut or not; the next open cuts it
 * (again) and every whole record is there.
 */
Test(db_steps, crash_between_tail_cut_and_its_sync_recovers, .timeout = 120)
{
	T_NEED_FAILPOINTS();
#if STRATA_FAILPOINTS
	setenv("STRATA_WAL_IO", "pwrite", 1);
	for (int way = 0; way < 2; way++) {
		struct t_dir d;
		char dir[700];
		fresh_db(&d, dir, sizeof dir);
		/* Ten acknowledged upserts, then the log's last bytes torn off. */
		strata_options o = t_wl_options();
		o.wal_file_bytes = 1 << 20;
		strata_db *db;
		cr_assert_eq(strata_open(dir, &o, 0, &db), 0);
		for (int i = 0; i < 10; i++) {
			uint64_t id = (uint64_t)i;
			float v[T_WL_DIM];
			t_wl_vec(id, 1, v);
			cr_assert_eq(strata_upsert(db, &id, v, 1), 0);
		}
		cr_assert_eq(strata_close(db), 0);
		char wal[800];
		t_path(&d, "db/wal-0000000000000001.log", wal, sizeof wal);
		struct t_blob b = t_read_file(wal);
		cr_assert(b.data && b.len > 100, "%s", wal);
		t_write_file(wal, b.data, b.len - 5);
		free(b.data);

		if (way == 0) {
			fflush(NULL);
			pid_t pid = fork();
			cr_assert(pid >= 0);
			if (pid == 0) {
				fp_arm_crash("wal.tail_cut", 1, FP_CRASH_EXIT);
				strata_db *c;
				strata_open(dir, &o, 0, &c);
				_exit(0);
			}
			int status;
			cr_assert_eq(waitpid(pid, &status, 0), pid);
			cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == FP_CRASH_EXIT_CODE,
			          "the open did not reach the tail cut (status %d)", status);
		} else {
			cr_assert_eq(fio_record_start(dir), 0);
			fp_arm_crash("wal.tail_cut", 1, FP_CRASH_POWER);
			strata_db *c = NULL;
			int rc = strata_open(dir, &o, 0, &c);
			cr_assert(fp_crashed(), "the open did not reach the tail cut");
			cr_assert_neq(rc, 0, "an open whose cut could not be synced succeeded");
			fp_disarm_all();
			cr_assert_eq(fio_record_powerloss(), 0, "%s", strata_last_error_detail());
		}
		struct strata_stats st;
		cr_assert_eq(strata_open(dir, &o, STRATA_VERIFY, &db), 0, "%s", strata_last_error_detail());
		cr_assert_eq(strata_stats(db, &st), 0);
		/* The power loss undid the unsynced cut: cut again. The process crash kept it. */
		cr_assert_eq(st.replay_torn_bytes != 0, way == 1, "torn bytes %llu",
		             (unsigned long long)st.replay_torn_bytes);
		for (uint64_t id = 0; id < 9; id++)
			cr_assert(t_wl_holds(db, id, 1), "whole record of id %llu lost", (unsigned long long)id);
		cr_assert(t_wl_holds(db, 9, 0), "the torn record came back");
		cr_assert_eq(strata_close(db), 0);
		t_dir_free(&d);
	}
#endif
}
