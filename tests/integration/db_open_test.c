/*
 * db_open_test.c - opening is O(1) in the number of vectors: it touches the
 * manifest and each segment's header and section table, not the vectors or
 * the graph. Measured by the page faults an open takes (a count, not a time,
 * so the test is deterministic): they must not grow with the database.
 * Also: opening read-only needs no write permission and writes nothing.
 */
#include <criterion/criterion.h>
#include <sys/wait.h>
#include <grp.h>
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

/*
 * The checks run in a child process; as root (CI containers), the child first
 * becomes `nobody` (uid/gid 65534), since root ignores permission bits.
 * Exit status: 0 ok, 1 read-only open failed, 2 the writer open succeeded,
 * 3 the privileges could not be dropped.
 */
static int readonly_checks_as_user(const char *dir)
{
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		if (geteuid() == 0 && (setgroups(0, NULL) != 0 || setgid(65534) != 0 || setuid(65534) != 0))
			_exit(3);
		strata_db *db;
		if (strata_open(dir, NULL, STRATA_READONLY, &db) != 0) {
			fprintf(stderr, "read-only open: %s\n", strata_last_error_detail());
			_exit(1);
		}
		float q[8] = {0};
		uint64_t ids[3];
		if (strata_search(db, q, 1, 3, NULL, ids, NULL) != 0)
			_exit(1);
		strata_close(db);
		if (strata_open(dir, NULL, 0, &db) == 0)
			_exit(2);
		_exit(0);
	}
	int st;
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 99;
}

Test(db_open, readonly_open_needs_no_write_permission_and_writes_nothing, .timeout = 60)
{
	struct t_dir d = t_dir_new();
	chmod(d.path, 0755); /* mkdtemp made it 0700: the unprivileged child must get in */
	char dir[600];
	t_path(&d, "db", dir, sizeof dir);
	build_random(dir, 200, 8);
	chmod(dir, 0555);
	int rc = readonly_checks_as_user(dir);
	chmod(dir, 0755);
	if (rc == 3)
		cr_skip_test("cannot drop root privileges to check permission bits");
	cr_assert_neq(rc, 1, "a read-only open needed write permission");
	cr_assert_neq(rc, 2, "a writer opened a directory it may not write");
	cr_assert_eq(rc, 0, "child status %d", rc);
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
