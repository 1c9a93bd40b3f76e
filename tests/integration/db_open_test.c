/*
 * db_open_test.c - opening is O(1) in the number of vectors: it touches the
 * manifest and each segment's header and section table, not the vectors or
 * the graph. Measured by the page faults an open takes (a count, not a time,
 * so the test is deterministic): they must not grow with the database.
 * Also: opening read-only needs no write permission and writes nothing; a
 * writer's background threads carry names, the indexer runs as SCHED_BATCH,
 * and strata_close leaves none of them behind.
 */
#include <criterion/criterion.h>
#include <sys/wait.h>
#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* How many threads of this process are named `name` (/proc/self/task/T/comm); *tid_out: one of them. */
static int threads_named(const char *name, pid_t *tid_out)
{
	DIR *d = opendir("/proc/self/task");
	cr_assert(d, "/proc/self/task: %s", strerror(errno));
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char path[300], comm[64] = {0};
		snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
		FILE *f = fopen(path, "r");
		if (!f)
			continue; /* the thread ended meanwhile */
		if (fgets(comm, sizeof comm, f)) {
			comm[strcspn(comm, "\n")] = 0;
			if (strcmp(comm, name) == 0) {
				if (tid_out)
					*tid_out = (pid_t)atoi(e->d_name);
				n++;
			}
		}
		fclose(f);
	}
	closedir(d);
	return n;
}

static void *try_batch(void *arg)
{
	struct sched_param sp = {0};
	*(int *)arg = pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp);
	return NULL;
}

Test(db_open, a_writer_names_its_threads_runs_its_indexer_as_batch_and_close_ends_them,
     .timeout = 60)
{
	int can = -1;
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, try_batch, &can), 0);
	pthread_join(t, NULL);
	if (can != 0)
		cr_skip_test("SCHED_BATCH is refused here: %s", strerror(can));
	struct t_dir d = t_dir_new();
	char dir[600];
	t_path(&d, "db", dir, sizeof dir);
	strata_options o;
	strata_options_default(&o);
	o.dim = 4;
	strata_db *db;
	cr_assert_eq(strata_open(dir, &o, STRATA_CREATE, &db), 0, "%s", strata_last_error_detail());
	/* Each thread names itself once it runs (the indexer after taking its policy): wait for that. */
	const char *names[] = {"strata-index", "strata-flush", "strata-compact", "strata-walprep"};
	const int nnames = 4;
	for (int i = 0; i < 10000; i++) {
		int seen = 0;
		for (int j = 0; j < nnames; j++)
			seen += threads_named(names[j], NULL) > 0;
		if (seen == nnames)
			break;
		usleep(1000);
	}
	pid_t indexer = 0;
	cr_assert_geq(threads_named("strata-index", &indexer), 1);
	cr_assert_eq(threads_named("strata-flush", NULL), 1);
	cr_assert_eq(threads_named("strata-compact", NULL), 1);
	cr_assert_eq(threads_named("strata-walprep", NULL), 1); /* the WAL's zeros ahead (SYNC_ALWAYS) */
	cr_assert_eq(sched_getscheduler(indexer), SCHED_BATCH, "the indexer's policy is %d",
	             sched_getscheduler(indexer));
	cr_assert_eq(strata_close(db), 0, "%s", strata_last_error_detail());
	for (int j = 0; j < nnames; j++)
		cr_assert_eq(threads_named(names[j], NULL), 0, "a %s thread outlived strata_close", names[j]);
	t_dir_free(&d);
}
