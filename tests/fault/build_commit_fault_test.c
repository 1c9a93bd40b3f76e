/*
 * build_commit_fault_test.c - the last I/O of strata_build(): after the
 * temporary directory is renamed onto the target, the parent directory is
 * opened and fsynced so the new name is durable. If that fails the call
 * returns STRATA_EIO (the name may not survive a crash) and, as strata.h
 * promises, leaves nothing behind: the database is taken back out, so a
 * retry of the same build succeeds. (Found by this test: build.c used to
 * leave the database in place.)
 */
#include <criterion/criterion.h>
#include <limits.h>
#include <stdlib.h>

#include "strata.h"
#include "t_fault.h"
#include "t_support.h"

#define N_VEC 200
#define DIM 8

Test(build_commit_fault, failed_sync_of_the_parent_after_the_rename_leaves_nothing)
{
	T_NEED_FAILPOINTS();
#if STRATA_FAILPOINTS
	float *v = t_random_vectors(N_VEC, DIM, 5);
	strata_options o;
	strata_options_default(&o);
	o.dim = DIM;
	o.M = 4;
	o.ef_construction = 32;
	o.threads = 1;
	/* The parent's sync is the last open and the last fsync of a build. */
	const enum fp_site sites[] = {FP_OPEN, FP_FSYNC};
	for (size_t s = 0; s < sizeof sites / sizeof sites[0]; s++) {
		struct t_dir d = t_dir_new();
		char target[700];
		t_path(&d, "db", target, sizeof target);
		fp_disarm_all();
		fp_arm(sites[s], INT_MAX, EIO); /* counts calls, fails none */
		cr_assert_eq(strata_build(target, &o, NULL, v, N_VEC), 0);
		int last = fp_hits(sites[s]);
		t_rmtree(target);

		fp_arm(sites[s], last, EIO);
		int rc = strata_build(target, &o, NULL, v, N_VEC);
		fp_disarm_all();
		cr_assert_eq(rc, STRATA_EIO, "site %d, call %d: rc %d (%s)", sites[s], last, rc,
		             strata_last_error_detail());
		cr_assert(!t_exists(target),
		          "site %d, call %d (the parent's sync): the build failed, yet %s exists",
		          sites[s], last, target);
		cr_assert_eq(strata_build(target, &o, NULL, v, N_VEC), 0, "retry: %s",
		             strata_last_error_detail());
		t_dir_free(&d);
	}
	free(v);
#endif
}
