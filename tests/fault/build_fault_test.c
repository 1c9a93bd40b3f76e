/*
 * build_fault_test.c - strata_build() under injected I/O failures (suite
 * 'fault', needs -Dfailpoints=true).
 *
 * For every fault class of t_fault.h the nth call at its site fails, for
 * n = 1, 2, ... until a build runs untouched (STYLE snippet 6). Each failed
 * build must:
 *   - return the precise code (the injected errno mapped by err_from_errno;
 *     a torn write is STRATA_EIO), with a non-empty error detail;
 *   - leak no descriptor;
 *   - leave neither the target directory nor the temporary ".<name>.tmp-*"
 *     beside it (strata.h: "a failed build leaves nothing behind");
 *   - not stop the next build into the same target from succeeding.
 * The one failure that comes after the rename - syncing the parent directory -
 * cannot leave "nothing": tested apart in build_commit_fault_test.c.
 * When the cleanup itself fails (unlink/rmdir refused), the documented outcome
 * holds: the caller gets the first failure, and at most the temporary
 * directory is left, never a database under the target name.
 */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "strata.h"
#include "t_fault.h"
#include "t_support.h"

#define N_VEC 300
#define DIM 8

#if STRATA_FAILPOINTS
static float *t_vectors(void)
{
	return t_random_vectors(N_VEC, DIM, 11);
}

static strata_options t_opts(void)
{
	strata_options o;
	strata_options_default(&o);
	o.dim = DIM;
	o.M = 4;
	o.ef_construction = 32;
	o.threads = 1;
	return o;
}

/* The database at `dir` opens with STRATA_VERIFY and holds N_VEC vectors. */
static void t_assert_sound_db(const char *dir)
{
	strata_db *db = NULL;
	int rc = strata_open(dir, NULL, STRATA_READONLY | STRATA_VERIFY, &db);
	cr_assert_eq(rc, 0, "open %s: %d %s", dir, rc, strata_last_error_detail());
	struct strata_stats st;
	cr_assert_eq(strata_stats(db, &st), 0);
	cr_assert_eq(st.vectors, N_VEC);
	strata_close(db);
}

/* True if the failed call was the sync of the parent after the rename (see the header). */
static bool t_after_rename(const char *target)
{
	return t_exists(target);
}
#endif

Test(build_fault, every_io_failure_is_reported_and_leaves_nothing)
{
	T_NEED_FAILPOINTS();
#if STRATA_FAILPOINTS
	float *v = t_vectors();
	strata_options o = t_opts();
	for (size_t f = 0; f < T_FAULT_COUNT; f++) {
		const struct t_fault *ft = &t_faults[f];
		int after_rename = 0;
		for (int n = 1;; n++) {
			struct t_dir d = t_dir_new();
			char target[700];
			t_path(&d, "db", target, sizeof target);
			int fds = t_fd_count();

			t_fault_arm(ft, n);
			int rc = strata_build(target, &o, NULL, v, N_VEC);
			bool hit = fp_hits(ft->site) >= n;
			fp_disarm_all();
			char detail[1024];
			snprintf(detail, sizeof detail, "%s", strata_last_error_detail());

			cr_assert_eq(t_fd_count(), fds, "%s n=%d: descriptors leaked", ft->name, n);
			if (!hit) {
				cr_assert_eq(rc, 0, "%s: untouched at n=%d, yet rc %d (%s)", ft->name, n, rc,
				             detail);
				t_assert_sound_db(target);
				fprintf(stderr, "fault: strata_build %-22s %2d calls, each failure -> %s%s\n",
				        ft->name, n - 1, strata_strerror(ft->want),
				        after_rename ? " (1 after the rename: build_commit_fault)" : "");
				t_dir_free(&d);
				break;
			}
			cr_assert_eq(rc, ft->want, "%s n=%d: rc %d (%s), want %d", ft->name, n, rc, detail,
			             ft->want);
			cr_assert(detail[0] != '\0', "%s n=%d: no error detail", ft->name, n);
			cr_assert_eq(t_entries_with_prefix(d.path, ".db.tmp-", NULL, 0), 0,
			             "%s n=%d: the temporary directory was left behind", ft->name, n);
			if (t_after_rename(target)) {
				/* The parent's sync failed after the rename: complete, but not nothing. */
				after_rename++;
				t_assert_sound_db(target);
			} else {
				/* Nothing behind, and the same build then succeeds. */
				cr_assert_eq(strata_build(target, &o, NULL, v, N_VEC), 0,
				             "%s n=%d: the next build fails: %s", ft->name, n,
				             strata_last_error_detail());
				t_assert_sound_db(target);
			}
			t_dir_free(&d);
		}
	}
	free(v);
#endif
}

/*
 * Cleanup that fails: a write fails, then every unlink and rmdir does too.
 * The caller hears of the write (the first failure), not of the cleanup; the
 * target does not exist; the temporary directory is what is left (build.c:
 * "a failed or killed build leaves at most that temporary directory"); and a
 * new build into the target succeeds beside it.
 */
Test(build_fault, failed_cleanup_leaves_only_the_temporary_directory)
{
	T_NEED_FAILPOINTS();
#if STRATA_FAILPOINTS
	float *v = t_vectors();
	strata_options o = t_opts();
	for (int n = 1; n <= 3; n++) {
		struct t_dir d = t_dir_new();
		char target[700], tmpname[256];
		t_path(&d, "db", target, sizeof target);
		fp_disarm_all();
		fp_arm(FP_WRITE, n, EIO);
		fp_arm_sticky(FP_UNLINK, 1, EBUSY);
		int rc = strata_build(target, &o, NULL, v, N_VEC);
		bool cleanup_tried = fp_hits(FP_UNLINK) > 0;
		fp_disarm_all();
		cr_assert_eq(rc, STRATA_EIO, "n=%d: rc %d (%s)", n, rc, strata_last_error_detail());
		cr_assert(strstr(strata_last_error_detail(), "write"),
		          "n=%d: the detail should name the failed write, not the cleanup: %s", n,
		          strata_last_error_detail());
		cr_assert(cleanup_tried, "n=%d: no cleanup was attempted", n);
		cr_assert(!t_exists(target), "n=%d: a database under the target name", n);
		cr_assert_eq(t_entries_with_prefix(d.path, ".db.tmp-", tmpname, sizeof tmpname), 1,
		             "n=%d: the temporary directory should be what is left", n);
		cr_assert_eq(strata_build(target, &o, NULL, v, N_VEC), 0, "n=%d: next build: %s", n,
		             strata_last_error_detail());
		t_assert_sound_db(target);
		t_dir_free(&d);
	}
	free(v);
#endif
}
