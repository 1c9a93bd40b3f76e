/*
 * db_open_test.c - opening is O(1) in the number of vectors: it touches the
 * manifest and each segment's header and section table, not the vectors or
 * the graph. Measured by the page faults an open takes (a count, not a time,
 * so the test is deterministic): they must not grow with the database.
 * Also: opening read-only needs no write permission and writes nothing.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "strata.h"
#include "t_support.h"

static long faults_now(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_minflt + ru.ru_majflt;
}

static long faults_of_open(const char *dir)
{
	strata_db *db;
	/* Warm the allocator and code paths once so the measured open counts only its own work. */
	cr_assert_eq(strata_open(dir, NULL, STRATA_READONLY, &db), 0);
	strata_close(db);
	long before = faults_now();
	cr_assert_eq(strata_open(dir, NULL, STRATA_READONLY, &db), 0);
	long after = faults_now();
	strata_close(db);
	return after - before;
}

static void build_random(const char *dir, size_t n, uint32_t dim)
{
	float *v = t_random_vectors(n, dim, n);
	strata_options o;
	strata_options_default(&o);
	o.dim = dim;
	o.M = 8;
	o.ef_construction = 20; /* graph quality is irrelevant here: only the size matters */
	cr_assert_eq(strata_build(dir, &o, NULL, v, n), 0, "%s", strata_last_error_detail());
	free(v);
}

Test(db_open, page_faults_of_open_do_not_grow_with_size, .timeout = 300)
{
	struct t_dir d = t_dir_new();
	char small[600], large[600];
	t_path(&d, "small", small, sizeof small);
	t_path(&d, "large", large, sizeof large);
	build_random(small, 1000, 64);
	build_random(large, 100000, 64); /* ~36 MB of node records */
	long fs = faults_of_open(small), fl = faults_of_open(large);
	fprintf(stderr, "page faults during open: 1k vectors %ld, 100k vectors %ld\n", fs, fl);
	/* 100x the vectors may cost a handful of extra faults (allocator), never ~9,000 pages. */
	cr_assert_leq(fl, fs + 16, "open of 100k vectors took %ld faults, of 1k %ld", fl, fs);
	t_dir_free(&d);
}

Test(db_open, readonly_open_needs_no_write_permission_and_writes_nothing, .timeout = 60)
{
	if (geteuid() == 0)
		cr_skip_test("root ignores permission bits; run as a normal user to check this");
	struct t_dir d = t_dir_new();
	char dir[600];
	t_path(&d, "db", dir, sizeof dir);
	build_random(dir, 200, 8);
	chmod(dir, 0555);
	strata_db *db;
	cr_assert_eq(strata_open(dir, NULL, STRATA_READONLY, &db), 0, "%s", strata_last_error_detail());
	strata_close(db);
	cr_assert_neq(strata_open(dir, NULL, 0, &db), 0, "a writer must need write permission");
	chmod(dir, 0755);
	t_dir_free(&d);
}

Test(db_open, readonly_open_leaves_the_directory_unchanged, .timeout = 60)
{
	struct t_dir d = t_dir_new();
	char dir[600], lock[700];
	t_path(&d, "db", dir, sizeof dir);
	build_random(dir, 200, 8);
	strata_db *db;
	cr_assert_eq(strata_open(dir, NULL, STRATA_READONLY, &db), 0);
	strata_close(db);
	snprintf(lock, sizeof lock, "%s/LOCK", dir);
	cr_assert_neq(access(lock, F_OK), 0, "a read-only open created %s", lock);
	t_dir_free(&d);
}
