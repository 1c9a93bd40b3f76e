/*
 * cli_ship_test.c - `strata pack`, `unpack`, `tune` and `dump` end to end, run
 * as a user runs them: the built program ($STRATA_EXE) on a small generated
 * database, through files and pipes. Checks the round trip (identical search
 * answers), that verify and inspect read bundles without unpacking, that a
 * killed unpack leaves no directory, the tune table, JSON keys, CSV and an
 * SVG that is well-formed XML with one point per measurement, and dump on
 * sound and damaged files.
 */
#include <criterion/criterion.h>
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "strata.h"
#include "t_cli.h"
#include "t_support.h"
#include "t_writer.h"

#define DIM 16
#define N_BASE 600
#define N_QUERY 40



/* base.fvecs (N_BASE random rows, seed 11) and queries.fvecs (N_QUERY, seed 12) in a new dir. */
static struct t_dir make_inputs(void)
{
	struct t_dir d = t_dir_new();
	char p[1024];
	float *base = t_random_vectors(N_BASE, DIM, 11);
	float *q = t_random_vectors(N_QUERY, DIM, 12);
	t_write_fvecs(t_path(&d, "base.fvecs", p, sizeof p), base, N_BASE, DIM);
	t_write_fvecs(t_path(&d, "queries.fvecs", p, sizeof p), q, N_QUERY, DIM);
	free(base);
	free(q);
	return d;
}

/* base.fvecs, queries.fvecs and a database "db" built from the base. */
static struct t_dir make_db(void)
{
	struct t_dir d = make_inputs();
	char p[1024], db[1024];
	t_path(&d, "base.fvecs", p, sizeof p);
	struct t_run *r = t_run(&d, "build", t_path(&d, "db", db, sizeof db), "--input", p, "--M", "8",
	                    "--threads", "1", "--quiet", NULL);
	cr_assert_eq(r->status, 0, "build: %s", r->err);
	free(r);
	return d;
}

static size_t count(const char *s, const char *needle)
{
	size_t n = 0;
	for (const char *p = s; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

static bool no_temporaries(const char *parent, const char *base)
{
	char prefix[256];
	snprintf(prefix, sizeof prefix, ".%s.unpack-", base);
	DIR *d = opendir(parent);
	struct dirent *e;
	bool clean = true;
	while ((e = readdir(d)))
		clean &= strncmp(e->d_name, prefix, strlen(prefix)) != 0;
	closedir(d);
	return clean;
}

/* ---- pack / unpack ---------------------------------------------------------------------------- */

Test(cli_ship, pack_unpack_round_trip_answers_the_same)
{
	struct t_dir d = make_db();
	char db[1024], b[1024], db2[1024], q[1024];
	t_path(&d, "db", db, sizeof db);
	t_path(&d, "db.strata", b, sizeof b);
	t_path(&d, "db2", db2, sizeof db2);
	t_path(&d, "queries.fvecs", q, sizeof q);
	struct t_run *r = t_run(&d, "pack", db, b, "--level", "5", "--threads", "2", NULL);
	cr_assert_eq(r->status, 0, "%s", r->err);
	cr_assert(strstr(r->err, "packed") && strstr(r->err, "2 files"), "%s", r->err);
	cr_assert_eq(r->out[0], '\0', "pack printed on stdout: %s", r->out);
	free(r);
	r = t_run(&d, "unpack", b, db2, NULL);
	cr_assert_eq(r->status, 0, "%s", r->err);
	cr_assert(strstr(r->err, "every checksum and segment verified"), "%s", r->err);
	free(r);
	r = t_run(&d, "verify", db2, NULL);
	cr_assert_eq(r->status, 0, "%s%s", r->out, r->err);
	free(r);
	r = t_run(&d, "query", db, "--input", q, "--ef", "40", NULL);
	cr_assert_eq(r->status, 0);
	struct t_run *r2 = t_run(&d, "query", db2, "--input", q, "--ef", "40", NULL);
	cr_assert_eq(r2->status, 0);
	cr_assert_str_eq(r2->out, r->out, "the unpacked database answers differently");
	cr_assert_eq(count(r2->out, "\n"), N_QUERY);
	free(r);
	free(r2);
	t_dir_free(&d);
}

Test(cli_ship, pack_to_stdout_and_unpack_from_stdin)
{
	struct t_dir d = make_db();
	char db[1024], b[1024], piped[1024], db3[1024], json_db[1024];
	t_path(&d, "db", db, sizeof db);
	t_path(&d, "file.strata", b, sizeof b);
	t_path(&d, "piped.strata", piped, sizeof piped);
	t_path(&d, "db3", db3, sizeof db3);
	struct t_run *r = t_run(&d, "pack", db, b, "--json", "--quiet", NULL);
	cr_assert_eq(r->status, 0, "%s", r->err);
	cr_assert(t_json_num(r->out, "raw_bytes") > t_json_num(r->out, "bundle_bytes") * 0.5);
	cr_assert(t_json_has(r->out, "mb_per_s") && t_json_has(r->out, "ratio"), "%s", r->out);
	free(r);
	r = t_run_io(&d, NULL, piped, "pack", db, "-", NULL);
	cr_assert_eq(r->status, 0, "%s", r->err);
	free(r);
	struct t_blob x = t_read_file(b), y = t_read_file(piped);
	cr_assert_eq(x.len, y.len);
	cr_assert_eq(memcmp(x.data, y.data, x.len), 0, "stdout and a file got different bundles");
	free(x.data);
	free(y.data);
	r = t_run_io(&d, piped, NULL, "unpack", "-", db3, "--json", NULL);
	cr_assert_eq(r->status, 0, "%s", r->err);
	cr_assert_eq(t_json_num(r->out, "vectors"), N_BASE, "%s", r->out);
	cr_assert_eq(t_json_num(r->out, "files"), 2);
	free(r);
	/* --json needs a file: stdout carries the bundle. */
	r = t_run(&d, "pack", db, "-", "--json", NULL);
	cr_assert_eq(r->status, 2);
	free(r);
	t_path(&d, "x.strata", json_db, sizeof json_db);
	r = t_run(&d, "pack", t_path(&d, "nope", db3, sizeof db3), json_db, NULL);
	cr_assert_eq(r->status, 1);
	cr_assert(access(json_db, F_OK) != 0, "a failed pack left its output");
	free(r);
	t_dir_free(&d);
}

Test(cli_ship, verify_and_inspect_read_a_bundle_without_unpacking)
{
	struct t_dir d = make_db();
	char db[1024], b[1024], bad[1024], out[1024];
	t_path(&d, "db", db, sizeof db);
	t_path(&d, "db.strata", b, sizeof b);
	struct t_run *r = t_run(&d, "pack", db, b, "--quiet", NULL);
	cr_assert_eq(r->status, 0);
	free(r);
	r = t_run(&d, "verify", b, NULL);
	cr_assert_eq(r->status, 0, "%s%s", r->out, r->err);
	cr_assert(strstr(r->out, "OK:") && strstr(r->out, "bundle"), "%s", r->out);
	free(r);
	r = t_run(&d, "verify", b, "--json", NULL);
	cr_assert(strstr(r->out, "\"ok\": true"), "%s", r->out);
	cr_assert_eq(t_json_num(r->out, "vectors"), N_BASE);
	free(r);
	r = t_run(&d, "inspect", b, NULL);
	cr_assert_eq(r->status, 0, "%s", r->err);
	cr_assert(strstr(r->out, "bundle") && strstr(r->out, "seg-0000000000000001.seg") &&
	          strstr(r->out, "MANIFEST") && strstr(r->out, "dim 16"), "%s", r->out);
	free(r);
	r = t_run(&d, "inspect", b, "--json", NULL);
	cr_assert_eq(r->status, 0);
	cr_assert(strstr(r->out, "\"kind\": \"bundle\""), "%s", r->out);
	cr_assert_eq(t_json_num(r->out, "files"), 2);
	cr_assert_eq(t_json_num(r->out, "vectors"), N_BASE);
	cr_assert(t_json_has(r->out, "entries") && t_json_has(r->out, "compressed_bytes"), "%s", r->out);
	free(r);

	/* One byte flipped in the segment's frame: verify and unpack refuse, nothing is written. */
	struct t_blob x = t_read_file(b);
	x.data[x.len / 2] ^= 0x01;
	t_write_file(t_path(&d, "bad.strata", bad, sizeof bad), x.data, x.len);
	free(x.data);
	r = t_run(&d, "verify", bad, NULL);
	cr_assert_eq(r->status, 1);
	cr_assert(strstr(r->out, "DAMAGED") && strstr(r->out, "checksum"), "%s", r->out);
	free(r);
	r = t_run(&d, "unpack", bad, t_path(&d, "out", out, sizeof out), NULL);
	cr_assert_eq(r->status, 1);
	cr_assert(strstr(r->err, "seg-0000000000000001.seg") && strstr(r->err, "nothing was written"),
	          "%s", r->err);
	cr_assert(access(out, F_OK) != 0);
	cr_assert(no_temporaries(d.path, "out"));
	free(r);
	t_dir_free(&d);
}

Test(cli_ship, a_killed_unpack_leaves_no_directory)
{
	struct t_dir d = make_db();
	char db[1024], b[1024], out[1024], err_path[1024];
	t_path(&d, "db", db, sizeof db);
	t_path(&d, "db.strata", b, sizeof b);
	t_path(&d, "out", out, sizeof out);
	t_path(&d, "unpack-err.txt", err_path, sizeof err_path);
	struct t_run *r = t_run(&d, "pack", db, b, "--quiet", "--level", "1", NULL);
	cr_assert_eq(r->status, 0);
	free(r);
	struct t_blob x = t_read_file(b);

	/* `strata unpack - out` reading from a slow pipe: half the bundle, then SIGKILL. */
	int p[2];
	cr_assert_eq(pipe(p), 0);
	fflush(NULL);
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		close(p[1]);
		dup2(p[0], 0);
		int e = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		dup2(e, 2);
		execl(t_strata_exe(), "strata", "unpack", "-", out, (char *)NULL);
		_exit(127);
	}
	close(p[0]);
	cr_assert_eq(write(p[1], x.data, x.len / 2), (ssize_t)(x.len / 2));
	bool started = false;
	for (int i = 0; i < 500 && !started; i++) {
		started = !no_temporaries(d.path, "out");
		if (!started)
			usleep(10000);
	}
	cr_assert(started, "unpack never made its temporary directory");
	kill(pid, SIGKILL);
	int ws;
	waitpid(pid, &ws, 0);
	close(p[1]);
	cr_assert(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL);
	cr_assert(access(out, F_OK) != 0, "a killed unpack left %s", out);

	/* The next unpack to the same place removes the abandoned temporary and succeeds. */
	r = t_run(&d, "unpack", b, out, NULL);
	cr_assert_eq(r->status, 0, "%s", r->err);
	cr_assert(strstr(r->err, "removed 1 temporary directory"), "%s", r->err);
	cr_assert(no_temporaries(d.path, "out"));
	free(r);

	/* SIGTERM while it waits on a stalled pipe: it stops and cleans up. */
	char out2[1024];
	t_path(&d, "out2", out2, sizeof out2);
	cr_assert_eq(pipe(p), 0);
	pid = fork();
	if (pid == 0) {
		close(p[1]);
		dup2(p[0], 0);
		int e = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		dup2(e, 2);
		execl(t_strata_exe(), "strata", "unpack", "-", out2, (char *)NULL);
		_exit(127);
	}
	close(p[0]);
	cr_assert_eq(write(p[1], x.data, x.len / 2), (ssize_t)(x.len / 2));
	started = false;
	for (int i = 0; i < 500 && !started; i++) {
		started = !no_temporaries(d.path, "out2");
		if (!started)
			usleep(10000);
	}
	cr_assert(started);
	kill(pid, SIGTERM);
	waitpid(pid, &ws, 0);
	close(p[1]);
	cr_assert(WIFEXITED(ws) && WEXITSTATUS(ws) == 1, "status %d", ws);
	cr_assert(access(out2, F_OK) != 0);
	cr_assert(no_temporaries(d.path, "out2"), "SIGTERM left the temporary directory");
	char err[4096];
	t_slurp(err_path, err, sizeof err);
	cr_assert(strstr(err, "interrupted by signal"), "%s", err);
	free(x.data);
	t_dir_free(&d);
}

/* ---- pack of writable databases ------------------------------------------------------------- */

/* `strata` commands that must succeed, in order: each row is its words, NULL-terminated. */
#define STEP_WORDS 10
static void run_steps(const struct t_dir *d, const char *const steps[][STEP_WORDS], size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const char *const *c = steps[i];
		struct t_run *r = t_run(d, c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9]);
		cr_assert_eq(r->status, 0, "%s: %s", c[0], r->err);
		free(r);
	}
}

static bool exists_in(const char *dir, const char *prefix)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	bool found = false;
	while ((e = readdir(d)))
		found |= strncmp(e->d_name, prefix, strlen(prefix)) == 0;
	closedir(d);
	return found;
}

/* Every id of `ids` is live in both or in neither, with the same vector; returns how many are live. */
static size_t same_gets(strata_db *a, strata_db *b, const uint64_t *ids, size_t n)
{
	size_t live = 0;
	float va[DIM], vb[DIM];
	for (size_t i = 0; i < n; i++) {
		int ra = strata_get(a, ids[i], va), rb = strata_get(b, ids[i], vb);
		cr_assert_eq(ra, rb, "id %llu: %d and %d", (unsigned long long)ids[i], ra, rb);
		if (ra == 0) {
			cr_assert_eq(memcmp(va, vb, sizeof va), 0, "id %llu differs", (unsigned long long)ids[i]);
			live++;
		}
	}
	return live;
}

/*
 * A database written through the WAL (import, flush, delete, import) and
 * closed with writes not yet in segments: pack flushes it first, the bundle
 * carries the deletion file, and the copy answers like the original.
 */
Test(cli_ship, pack_flushes_unflushed_writes_and_carries_deletion_files)
{
	struct t_dir d = make_inputs();
	char db[1024], b[1024], db2[1024], base[1024], q[1024];
	t_path(&d, "base.fvecs", base, sizeof base);
	t_path(&d, "queries.fvecs", q, sizeof q);
	t_path(&d, "db", db, sizeof db);
	t_path(&d, "db.strata", b, sizeof b);
	t_path(&d, "db2", db2, sizeof db2);
	const char *const steps[][STEP_WORDS] = {
		{"create", db, "--dim", "16", "--M", "8", NULL},
		{"import", db, "--input", base, "--quiet", NULL},
		{"flush", db, NULL},
		{"delete", db, "--ids", "3,4,5,100,599", NULL},
		{"import", db, "--input", q, "--start-id", "10000", "--quiet", NULL},
	};
	run_steps(&d, steps, sizeof steps / sizeof steps[0]);
	struct t_run *r = t_run(&d, "pack", db, b, "--json", NULL);
	cr_assert_eq(r->status, 0, "%s", r->err);
	cr_assert(strstr(r->err, "flushed") && strstr(r->err, "2 WAL record(s) into segments"), "%s",
	          r->err);
	cr_assert(strstr(r->out, "\"flushed\": true"), "%s", r->out);
	cr_assert_eq(t_json_num(r->out, "deletion_files"), 1, "%s", r->out);
	cr_assert_eq(t_json_num(r->out, "wal_records"), 0, "all flushed: %s", r->out);
	cr_assert_eq(t_json_num(r->out, "vectors"), N_BASE - 5 + N_QUERY, "%s", r->out);
	free(r);
	r = t_run(&d, "inspect", b, NULL);
	cr_assert_eq(r->status, 0, "%s", r->err);
	cr_assert(strstr(r->out, "deletion  del-") && strstr(r->out, "format version 2"), "%s", r->out);
	free(r);
	r = t_run(&d, "unpack", b, db2, NULL);
	cr_assert_eq(r->status, 0, "%s", r->err);
	cr_assert(strstr(r->err, "1 deletion file(s) checked"), "%s", r->err);
	free(r);
	r = t_run(&d, "verify", db2, NULL);
	cr_assert_eq(r->status, 0, "%s%s", r->out, r->err);
	free(r);

	/* The same answers, and the same vector (or none) for every id. */
	r = t_run(&d, "query", db, "--input", q, "--ef", "40", NULL);
	struct t_run *r2 = t_run(&d, "query", db2, "--input", q, "--ef", "40", NULL);
	cr_assert_eq(r->status, 0, "%s", r->err);
	cr_assert_eq(r2->status, 0, "%s", r2->err);
	cr_assert_str_eq(r2->out, r->out, "the unpacked database answers differently");
	free(r);
	free(r2);
	strata_db *a, *c;
	cr_assert_eq(strata_open(db, NULL, STRATA_READONLY, &a), 0);
	cr_assert_eq(strata_open(db2, NULL, STRATA_READONLY | STRATA_VERIFY, &c), 0, "%s",
	             strata_last_error_detail());
	uint64_t ids[N_BASE + N_QUERY + 2];
	for (size_t i = 0; i < N_BASE; i++)
		ids[i] = i;
	for (size_t i = 0; i < N_QUERY; i++)
		ids[N_BASE + i] = 10000 + i;
	ids[N_BASE + N_QUERY] = 9999;
	ids[N_BASE + N_QUERY + 1] = 10000 + N_QUERY;
	cr_assert_eq(same_gets(a, c, ids, N_BASE + N_QUERY + 2), N_BASE - 5 + N_QUERY);
	float vec[DIM];
	cr_assert_eq(strata_get(c, 100, vec), STRATA_ENOTFOUND, "a deleted id");
	struct strata_stats st;
	strata_stats(c, &st);
	cr_assert_eq(st.vectors, N_BASE - 5 + N_QUERY);
	strata_close(a);
	strata_close(c);
	t_dir_free(&d);
}

Test(cli_ship, pack_of_a_database_with_nothing_unflushed_does_not_open_it_for_writing)
{
	struct t_dir d = make_db();
	char db[1024], b[1024];
	t_path(&d, "db", db, sizeof db);
	struct t_run *r = t_run(&d, "pack", db, t_path(&d, "db.strata", b, sizeof b), NULL);
	cr_assert_eq(r->status, 0, "%s", r->err);
	cr_assert(!strstr(r->err, "flushed") && !strstr(r->err, "note"), "%s", r->err);
	free(r);
	cr_assert(!exists_in(db, "LOCK") && !exists_in(db, "wal-"), "pack changed a built database");
	t_dir_free(&d);
}

/*
 * `strata pack` while another process holds the writer's lock and keeps
 * writing, flushing and merging: pack says so, packs the last flushed state
 * with the WAL after it, and the copy holds exactly the writer's state after
 * some prefix of its acknowledged writes (at least those acknowledged before
 * pack started), with the WAL records replayed by unpack into a segment.
 */
Test(cli_ship, pack_beside_a_live_writer_packs_a_prefix_of_its_writes_and_says_so, .timeout = 300)
{
	struct t_dir d = t_dir_new();
	char db[1024], b[1024], db2[1024];
	t_path(&d, "live", db, sizeof db);
	t_path(&d, "live.strata", b, sizeof b);
	t_path(&d, "copy", db2, sizeof db2);
	struct t_writer w;
	t_writer_start(&w, db, DIM, 300);
	uint64_t lo = t_writer_acked(&w);
	struct t_run *r = t_run(&d, "pack", db, b, NULL);
	uint64_t hi = t_writer_acked(&w) + 1;
	t_writer_stop(&w);
	cr_assert_eq(r->status, 0, "%s", r->err);
	cr_assert(strstr(r->err, "note: another process is writing") &&
	          strstr(r->err, "packed its last flushed state"), "%s", r->err);
	cr_assert(strstr(r->err, "WAL record(s) after it") && strstr(r->err, "unpack replays them"),
	          "%s", r->err);
	free(r);
	r = t_run(&d, "verify", b, NULL);
	cr_assert_eq(r->status, 0, "%s%s", r->out, r->err);
	free(r);
	r = t_run(&d, "unpack", b, db2, "--json", NULL);
	cr_assert_eq(r->status, 0, "%s", r->err);
	cr_assert(t_json_num(r->out, "replayed_records") > 0, "%s", r->out);
	cr_assert_eq(t_json_num(r->out, "replayed_records"), t_json_num(r->out, "wal_records"), "%s",
	             r->out);
	free(r);
	r = t_run(&d, "verify", db2, NULL);
	cr_assert_eq(r->status, 0, "%s%s", r->out, r->err);
	free(r);
	/* Replayed into segments: a read-only open sees every write the bundle carried. */
	strata_db *c;
	cr_assert_eq(strata_open(db2, NULL, STRATA_READONLY | STRATA_VERIFY, &c), 0, "%s",
	             strata_last_error_detail());
	uint64_t p = t_writer_check_prefix(c, DIM, lo, hi);
	cr_log_info("the copy holds the state after call %llu (acknowledged: %llu before pack, %llu "
	            "after)", (unsigned long long)p, (unsigned long long)lo,
	            (unsigned long long)hi - 1);
	strata_close(c);
	t_dir_free(&d);
}

/*
 * --truth exact over a database with deletion files: the truth is over the
 * live vectors. The queries are stored vectors, half of them deleted: a truth
 * that kept deleted vectors would rank each deleted query's own vector first
 * (distance 0), which no search returns.
 */
Test(cli_ship, exact_truth_skips_deleted_vectors)
{
	struct t_dir d = make_inputs();
	char db[1024], base[1024], q[1024];
	float *v = t_random_vectors(N_BASE, DIM, 11); /* base.fvecs's rows */
	t_path(&d, "base.fvecs", base, sizeof base);
	t_write_fvecs(t_path(&d, "stored.fvecs", q, sizeof q), v, 20, DIM); /* rows 0..19 */
	t_path(&d, "db", db, sizeof db);
	const char *const steps[][STEP_WORDS] = {
		{"create", db, "--dim", "16", "--M", "8", NULL},
		{"import", db, "--input", base, "--quiet", NULL},
		{"flush", db, NULL},
		{"delete", db, "--ids", "0,1,2,3,4,5,6,7,8,9", NULL},
		{"flush", db, NULL},
	};
	run_steps(&d, steps, sizeof steps / sizeof steps[0]);
	cr_assert(exists_in(db, "del-"), "the deletions are in a deletion file");
	/* The search at ef = every vector is exact: brute force over the live rows agrees. */
	strata_db *h;
	cr_assert_eq(strata_open(db, NULL, STRATA_READONLY, &h), 0);
	strata_search_options so;
	strata_search_options_default(&so);
	so.ef = N_BASE;
	uint64_t got[20 * 10];
	cr_assert_eq(strata_search(h, v, 20, 10, &so, got, NULL), 0);
	strata_close(h);
	uint32_t truth[20 * 10];
	t_brute_force(v + 10 * DIM, N_BASE - 10, v, 20, DIM, STRATA_METRIC_L2, 10, truth);
	for (size_t i = 0; i < 20 * 10; i++)
		cr_assert_eq(got[i], truth[i] + 10, "query %zu rank %zu", i / 10, i % 10);
	free(v);
	/* So --truth exact must give recall 1 at that ef, in query and in tune. */
	struct t_run *r = t_run(&d, "query", db, "--input", q, "--truth", "exact", "--ef", "600",
	                        "--json", NULL);
	cr_assert_eq(r->status, 0, "%s", r->err);
	cr_assert_eq(t_json_num(r->out, "recall"), 1.0, "%s", r->out);
	free(r);
	r = t_run(&d, "tune", db, "--queries", q, "--truth", "exact", "--ef", "600", "--repeat", "1",
	          "--json", NULL);
	cr_assert_eq(r->status, 0, "%s", r->err);
	cr_assert_eq(t_json_num(r->out, "recall"), 1.0, "%s", r->out);
	free(r);
	/* With a filter: the allowed ids include deleted ones, which must still not count. */
	char ids[1024];
	const char *allow = "0\n1\n12\n13\n14\n";
	t_write_file(t_path(&d, "ids.txt", ids, sizeof ids), allow, strlen(allow));
	r = t_run(&d, "query", db, "--input", q, "--truth", "exact", "--ef", "600", "--k", "3",
	          "--filter-ids", ids, "--json", NULL);
	cr_assert_eq(r->status, 0, "%s", r->err);
	cr_assert_eq(t_json_num(r->out, "recall"), 1.0, "%s", r->out);
	free(r);
	t_dir_free(&d);
}

/* ---- tune ------------------------------------------------------------------------------------ */

/* XML 1.0 well-formedness, as far as the chart uses it: nesting, quoting, entities. */
static bool entity_ok(const char **pp)
{
	const char *p = *pp + 1;
	static const char *const names[] = {"amp;", "lt;", "gt;", "quot;", "apos;"};
	for (size_t i = 0; i < 5; i++)
		if (strncmp(p, names[i], strlen(names[i])) == 0) {
			*pp = p + strlen(names[i]) - 1;
			return true;
		}
	if (*p == '#') {
		p++;
		bool hex = *p == 'x';
		p += hex;
		const char *q = p;
		while (hex ? isxdigit((unsigned char)*p) : isdigit((unsigned char)*p))
			p++;
		if (p > q && *p == ';') {
			*pp = p;
			return true;
		}
	}
	return false;
}

static size_t name_len(const char *p)
{
	size_t n = 0;
	while (isalnum((unsigned char)p[n]) || p[n] == '-' || p[n] == '_' || p[n] == ':' || p[n] == '.')
		n++;
	return n;
}

static bool xml_well_formed(const char *s, char *why, size_t why_len)
{
	const char *stack[64];
	size_t lens[64];
	int depth = 0;
	bool root = false;
	const char *p = s;
	if (strncmp(p, "<?xml", 5) == 0) {
		p = strstr(p, "?>");
		if (!p)
			return snprintf(why, why_len, "unterminated declaration"), false;
		p += 2;
	}
	for (; *p; p++) {
		if (*p == '&') {
			if (!entity_ok(&p))
				return snprintf(why, why_len, "bad entity at %ld", (long)(p - s)), false;
			continue;
		}
		if (*p != '<') {
			if (depth == 0 && !isspace((unsigned char)*p))
				return snprintf(why, why_len, "text outside the root at %ld", (long)(p - s)), false;
			continue;
		}
		if (p[1] == '/') {
			size_t n = name_len(p + 2);
			if (depth == 0 || n != lens[depth - 1] || strncmp(p + 2, stack[depth - 1], n) != 0)
				return snprintf(why, why_len, "mismatched end tag at %ld", (long)(p - s)), false;
			p += 2 + n;
			while (isspace((unsigned char)*p))
				p++;
			if (*p != '>')
				return snprintf(why, why_len, "bad end tag at %ld", (long)(p - s)), false;
			depth--;
			continue;
		}
		size_t n = name_len(p + 1);
		if (n == 0 || (depth == 0 && root))
			return snprintf(why, why_len, "bad or second root tag at %ld", (long)(p - s)), false;
		root = true;
		const char *tag = p + 1;
		p += 1 + n;
		for (;;) {
			while (isspace((unsigned char)*p))
				p++;
			if (p[0] == '/' && p[1] == '>') {
				p++;
				break;
			}
			if (*p == '>') {
				if (depth == 64)
					return snprintf(why, why_len, "too deep"), false;
				stack[depth] = tag;
				lens[depth++] = n;
				break;
			}
			size_t an = name_len(p);
			if (an == 0 || p[an] != '=' || (p[an + 1] != '"' && p[an + 1] != '\''))
				return snprintf(why, why_len, "bad attribute at %ld", (long)(p - s)), false;
			char quote = p[an + 1];
			p += an + 2;
			for (; *p && *p != quote; p++) {
				if (*p == '<' || (*p == '&' && !entity_ok(&p)))
					return snprintf(why, why_len, "bad attribute value at %ld", (long)(p - s)), false;
			}
			if (!*p)
				return snprintf(why, why_len, "unterminated attribute"), false;
			p++;
		}
	}
	if (depth != 0 || !root)
		return snprintf(why, why_len, "%d unclosed tag(s)", depth), false;
	return true;
}

Test(cli_ship, the_xml_checker_catches_what_it_should)
{
	char why[128];
	cr_assert(xml_well_formed("<?xml version=\"1.0\"?>\n<a x=\"1\"><b/>t &amp; u</a>\n", why,
	                          sizeof why), "%s", why);
	cr_assert(!xml_well_formed("<a><b></a>", why, sizeof why));
	cr_assert(!xml_well_formed("<a x=1></a>", why, sizeof why));
	cr_assert(!xml_well_formed("<a>x & y</a>", why, sizeof why));
	cr_assert(!xml_well_formed("<a></a><b></b>", why, sizeof why));
}

Test(cli_ship, tune_prints_the_table_json_csv_and_a_chart)
{
	struct t_dir d = make_db();
	char db[1024], q[1024], svg[1024], csv[1024];
	t_path(&d, "db", db, sizeof db);
	t_path(&d, "queries.fvecs", q, sizeof q);
	t_path(&d, "chart.svg", svg, sizeof svg);
	t_path(&d, "points.csv", csv, sizeof csv);
	struct t_run *r = t_run(&d, "tune", db, "--queries", q, "--ef", "10,20,40,80", "--repeat", "1",
	                    "--svg", svg, "--csv", csv, NULL);
	cr_assert_eq(r->status, 0, "%s", r->err);
	cr_assert(strstr(r->out, "recall@10") && strstr(r->out, "p99 us") && strstr(r->out, "QPS"),
	          "%s", r->out);
	cr_assert(strstr(r->out, "target recall 0.95: "), "%s", r->out);
	cr_assert_eq(count(r->out, "\n"), 1 + 1 + 4 + 1, "header, column names, 4 rows, target: %s",
	             r->out);
	free(r);

	struct t_blob c = t_read_file(csv);
	char *text = calloc(1, c.len + 1);
	memcpy(text, c.data, c.len);
	cr_assert_eq(count(text, "\n"), 5, "%s", text);
	cr_assert_eq(strncmp(text, "ef,recall,latency_us_mean,latency_us_p50,latency_us_p99,qps\n", 60),
	             0, "%s", text);
	free(text);
	free(c.data);

	struct t_blob s = t_read_file(svg);
	char *xml = calloc(1, s.len + 1);
	memcpy(xml, s.data, s.len);
	char why[128];
	cr_assert(xml_well_formed(xml, why, sizeof why), "chart.svg is not well-formed: %s", why);
	cr_assert(strstr(xml, "<svg") && strstr(xml, "recall@10") && strstr(xml, "microseconds"));
	cr_assert_eq(count(xml, "class=\"pt\""), 4, "one point per ef");
	cr_assert(strstr(xml, ">80<"), "points are labelled by their ef");
	free(xml);
	free(s.data);

	r = t_run(&d, "tune", db, "--queries", q, "--ef", "10,40", "--repeat", "1", "--json",
	        "--target-recall", "0.5", "--clock", "cpu", NULL);
	cr_assert_eq(r->status, 0, "%s", r->err);
	cr_assert_eq(count(r->out, "\n"), 1, "one JSON line: %s", r->out);
	static const char *const keys[] = {"dir", "vectors", "dim", "metric", "queries", "k",
	                                   "target_recall", "truth", "clock", "points", "ef", "recall",
	                                   "latency_us_mean", "latency_us_p50", "latency_us_p99",
	                                   "qps", "best_ef", "best_qps"};
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
		cr_assert(t_json_has(r->out, keys[i]), "no key %s: %s", keys[i], r->out);
	cr_assert_eq(t_json_num(r->out, "best_ef"), 10, "%s", r->out);
	cr_assert_eq(t_json_num(r->out, "vectors"), N_BASE);
	free(r);
	t_dir_free(&d);
}

Test(cli_ship, tune_caches_the_exact_truth_beside_the_queries)
{
	struct t_dir d = make_db();
	char db[1024], q[1024];
	t_path(&d, "db", db, sizeof db);
	t_path(&d, "queries.fvecs", q, sizeof q);
	struct t_run *r = t_run(&d, "tune", db, "--queries", q, "--ef", "20", "--repeat", "1",
	                    "--cache-truth", NULL);
	cr_assert_eq(r->status, 0, "%s", r->err);
	cr_assert(strstr(r->err, "cached as") && strstr(r->err, "queries.truth-k10-"), "%s", r->err);
	free(r);
	r = t_run(&d, "tune", db, "--queries", q, "--ef", "20", "--repeat", "1", "--cache-truth", NULL);
	cr_assert_eq(r->status, 0);
	cr_assert(strstr(r->err, "truth: cached"), "the second run recomputed: %s", r->err);
	free(r);
	/* A truth file is the same truth: recall is the same figure. */
	r = t_run(&d, "tune", db, "--queries", q, "--ef", "20", "--repeat", "1", "--json", NULL);
	double exact = t_json_num(r->out, "recall");
	free(r);
	DIR *dh = opendir(d.path);
	struct dirent *e;
	char cache[1024] = "";
	while ((e = readdir(dh)))
		if (strncmp(e->d_name, "queries.truth-k10-", 18) == 0)
			t_path(&d, e->d_name, cache, sizeof cache);
	closedir(dh);
	cr_assert(cache[0]);
	r = t_run(&d, "tune", db, "--queries", q, "--ef", "20", "--repeat", "1", "--json", "--truth",
	        cache, NULL);
	cr_assert_eq(r->status, 0, "%s", r->err);
	cr_assert_eq(t_json_num(r->out, "recall"), exact);
	free(r);
	t_dir_free(&d);
}

Test(cli_ship, tune_grid_builds_each_combination, .timeout = 240)
{
	struct t_dir d = make_db();
	char base[1024], q[1024], svg[1024];
	t_path(&d, "base.fvecs", base, sizeof base);
	t_path(&d, "queries.fvecs", q, sizeof q);
	t_path(&d, "grid.svg", svg, sizeof svg);
	struct t_run *r = t_run(&d, "tune", "--grid", "M=4,8", "ef_construction=40", "--input", base,
	                    "--queries", q, "--sample", "400", "--ef", "10,20,40", "--repeat", "1",
	                    "--svg", svg, "--json", NULL);
	cr_assert_eq(r->status, 0, "%s", r->err);
	cr_assert(t_json_has(r->out, "combinations") && t_json_has(r->out, "build_seconds") &&
	          t_json_has(r->out, "index_bytes") && t_json_has(r->out, "best_ef"), "%s", r->out);
	cr_assert_eq(count(r->out, "\"ef_construction\": 40"), 2, "%s", r->out);
	cr_assert_eq(t_json_num(r->out, "vectors"), 400);
	free(r);
	struct t_blob s = t_read_file(svg);
	char *xml = calloc(1, s.len + 1);
	memcpy(xml, s.data, s.len);
	char why[128];
	cr_assert(xml_well_formed(xml, why, sizeof why), "%s", why);
	cr_assert_eq(count(xml, "class=\"pt\""), 6, "two curves of three points");
	cr_assert(strstr(xml, "M=4, efc=40") && strstr(xml, "M=8, efc=40"), "a legend entry per curve");
	free(xml);
	free(s.data);

	r = t_run(&d, "tune", "--grid", "M=4", "--input", base, "--queries", q, "--sample", "300",
	        "--ef", "20", "--repeat", "1", NULL);
	cr_assert_eq(r->status, 0, "%s", r->err);
	cr_assert(strstr(r->out, "summary") && strstr(r->out, "ef_construction"), "%s", r->out);
	free(r);
	t_dir_free(&d);
}

Test(cli_ship, usage_errors_exit_two)
{
	struct t_dir d = t_dir_new();
	const char *const cases[][8] = {
		{"pack", NULL},
		{"pack", "db", NULL},
		{"pack", "db", "o.strata", "--level", "30", NULL},
		{"unpack", "b.strata", NULL},
		{"unpack", "b", "d", "--max-bytes", "x", NULL},
		{"tune", "db", NULL},
		{"tune", "db", "--queries", "q", "--target-recall", "1.5", NULL},
		{"tune", "db", "--queries", "q", "--ef", "10,,20", NULL},
		{"tune", "--grid", "K=3", "--input", "b", "--queries", "q", NULL},
		{"tune", "--grid", "M=8", "--queries", "q", NULL},
		{"dump", NULL},
		{"dump", "f", "--node", "x", NULL},
		{"dump", "f", "--node", "1", "--ids", NULL},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const char *const *c = cases[i];
		struct t_run *r = t_run(&d, c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]);
		cr_assert_eq(r->status, 2, "case %zu (%s %s): %d %s", i, c[0], c[1] ? c[1] : "", r->status,
		             r->err);
		cr_assert(strstr(r->err, "--help"), "%s", r->err);
		free(r);
	}
	static const char *const cmds[] = {"pack", "unpack", "tune", "dump"};
	for (size_t i = 0; i < 4; i++) {
		struct t_run *r = t_run(&d, cmds[i], "--help", NULL);
		cr_assert_eq(r->status, 0);
		cr_assert(strstr(r->out, "usage: strata"), "%s", r->out);
		free(r);
	}
	t_dir_free(&d);
}

/* ---- dump ---------------------------------------------------------------------------------- */

Test(cli_ship, dump_shows_sound_files_and_says_where_damage_stops_it)
{
	struct t_dir d = make_db();
	char db[1024], seg[1200], mf[1200], b[1024], cut[1024], badmf[1024], cutb[1024];
	t_path(&d, "db", db, sizeof db);
	snprintf(seg, sizeof seg, "%s/seg-0000000000000001.seg", db);
	snprintf(mf, sizeof mf, "%s/MANIFEST", db);
	t_path(&d, "db.strata", b, sizeof b);
	struct t_run *r = t_run(&d, "pack", db, b, "--quiet", NULL);
	free(r);

	const char *sound[] = {seg, mf, b};
	for (size_t i = 0; i < 3; i++) {
		r = t_run(&d, "dump", sound[i], NULL);
		cr_assert_eq(r->status, 0, "%s: %s%s", sound[i], r->out, r->err);
		cr_assert(!strstr(r->out, "BAD") && strstr(r->out, "header_xxh3") && strstr(r->out, "ok"),
		          "%s", r->out);
		free(r);
	}
	r = t_run(&d, "dump", seg, "--node", "0", NULL);
	cr_assert_eq(r->status, 0);
	cr_assert(strstr(r->out, "node 0") && strstr(r->out, "vector") && strstr(r->out, "layer 0"),
	          "%s", r->out);
	free(r);
	r = t_run(&d, "dump", seg, "--ids", "--limit", "3", NULL);
	cr_assert_eq(r->status, 0);
	/* Nodes are numbered upper layers first (FORMAT.md 3.4): node i's id is the caller's. */
	cr_assert(strstr(r->out, "node 0: id ") && strstr(r->out, "node 2: id "), "%s", r->out);
	cr_assert(!strstr(r->out, "node 3: id "), "--limit 3: %s", r->out);
	free(r);
	r = t_run(&d, "dump", seg, "--level", "0", "--limit", "5", NULL);
	cr_assert_eq(r->status, 0);
	cr_assert_eq(count(r->out, "  node "), 5, "%s", r->out);
	free(r);
	r = t_run(&d, "dump", b, "--level", "0", NULL);
	cr_assert_eq(r->status, 2, "--level on a bundle is a usage error");
	free(r);

	/* A truncated segment: the table is gone, but the header and the first nodes still show. */
	struct t_blob s = t_read_file(seg);
	t_write_file(t_path(&d, "cut.seg", cut, sizeof cut), s.data, s.len / 2);
	r = t_run(&d, "dump", cut, NULL);
	cr_assert_eq(r->status, 1);
	cr_assert(strstr(r->out, "stops at offset") && strstr(r->out, "assuming the v1 writer"),
	          "%s", r->out);
	cr_assert(strstr(r->out, "  node 0,"), "nodes before the damage are shown: %s", r->out);
	cr_assert(strstr(r->out, "truncated"), "%s", r->out);
	free(r);
	free(s.data);

	/* A manifest with a flipped byte: the field shows, its checksum is BAD. */
	struct t_blob m = t_read_file(mf);
	m.data[100] ^= 0x01;
	t_write_file(t_path(&d, "MANIFEST.bad", badmf, sizeof badmf), m.data, m.len);
	free(m.data);
	r = t_run(&d, "dump", badmf, NULL);
	cr_assert_eq(r->status, 1);
	cr_assert(strstr(r->out, "body_xxh3") && strstr(r->out, "BAD"), "%s", r->out);
	cr_assert(strstr(r->out, "seq "), "the entry still shows: %s", r->out);
	free(r);

	/* A truncated bundle: entries from the front until the cut, and no footer. */
	struct t_blob bb = t_read_file(b);
	t_write_file(t_path(&d, "cut.strata", cutb, sizeof cutb), bb.data, bb.len - 100);
	free(bb.data);
	r = t_run(&d, "dump", cutb, NULL);
	cr_assert_eq(r->status, 1);
	cr_assert(strstr(r->out, "entry 0 @64") && strstr(r->out, "MANIFEST"), "%s", r->out);
	cr_assert(strstr(r->out, "not a footer"), "%s", r->out);
	free(r);
	t_dir_free(&d);
}

/*
 * dump of a version-2 bundle (deletion and WAL entries), and of WAL and
 * deletion files cut short or damaged: as far as the bytes go, then where
 * and why it stops.
 */
Test(cli_ship, dump_shows_wal_and_deletion_files_and_where_their_damage_stops_it, .timeout = 120)
{
	struct t_dir d = make_inputs();
	char db[1024], base[1024], b[1024], wal[1400], del[1400], cut[1024];
	t_path(&d, "base.fvecs", base, sizeof base);
	t_path(&d, "db", db, sizeof db);
	char dead[512] = "0"; /* ids 0..99: a sixth of the nodes, so some among the first 64 */
	for (int i = 1; i < 100; i++)
		snprintf(dead + strlen(dead), sizeof dead - strlen(dead), ",%d", i);
	const char *const steps[][STEP_WORDS] = {
		{"create", db, "--dim", "16", "--M", "8", NULL},
		{"import", db, "--input", base, "--quiet", NULL},
		{"flush", db, NULL},
		{"delete", db, "--ids", dead, NULL},
		{"flush", db, NULL},
		{"import", db, "--input", base, "--start-id", "5000", "--batch", "100", "--quiet", NULL},
	};
	run_steps(&d, steps, sizeof steps / sizeof steps[0]);
	DIR *dh = opendir(db);
	struct dirent *e;
	wal[0] = del[0] = '\0';
	while ((e = readdir(dh))) {
		struct stat st;
		char p[1400];
		snprintf(p, sizeof p, "%s/%s", db, e->d_name);
		if (!strncmp(e->d_name, "del-", 4))
			snprintf(del, sizeof del, "%s", p);
		if (!strncmp(e->d_name, "wal-", 4) && stat(p, &st) == 0 && st.st_size > 64)
			snprintf(wal, sizeof wal, "%s", p);
	}
	closedir(dh);
	cr_assert(wal[0] && del[0], "a WAL file with records and a deletion file");

	/* The files whole. */
	struct t_run *r = t_run(&d, "dump", wal, NULL);
	cr_assert_eq(r->status, 0, "%s%s", r->out, r->err);
	cr_assert(strstr(r->out, "upsert n 100") && strstr(r->out, "6 whole record(s)"), "%s", r->out);
	free(r);
	r = t_run(&d, "dump", del, NULL);
	cr_assert_eq(r->status, 0, "%s%s", r->out, r->err);
	cr_assert(strstr(r->out, "deleted nodes:") && strstr(r->out, "100 bits set = deleted: ok"), "%s",
	          r->out);
	free(r);

	/* A WAL file cut inside its header, then inside a record. */
	struct t_blob w = t_read_file(wal);
	t_write_file(t_path(&d, "wal-00000000000000aa.log", cut, sizeof cut), w.data, 40);
	r = t_run(&d, "dump", cut, NULL);
	cr_assert_eq(r->status, 1, "%s", r->out);
	cr_assert(strstr(r->out, "first_lsn") && strstr(r->out, "stops at offset 40") &&
	          strstr(r->out, "inside field dim"), "%s", r->out);
	free(r);
	size_t rec = (w.len - 64) / 6; /* six records of 100 vectors, equal in size */
	t_write_file(cut, w.data, 64 + 2 * rec + rec / 2);
	r = t_run(&d, "dump", cut, NULL);
	cr_assert(strstr(r->out, "2 whole record(s)") && strstr(r->out, "torn tail"), "%s", r->out);
	free(r);
	/* A record damaged in the middle: the listing resumes after it, and says what it skipped. */
	w.data[64 + rec + 200] ^= 0x10;
	t_write_file(cut, w.data, w.len);
	r = t_run(&d, "dump", cut, NULL);
	cr_assert_eq(r->status, 1, "%s", r->out);
	cr_assert(strstr(r->out, "BAD") && strstr(r->out, "1 whole record(s) before any damage"), "%s",
	          r->out);
	free(r);
	free(w.data);

	/* A deletion file cut inside its header, then inside its bitmap. */
	struct t_blob t = t_read_file(del);
	t_write_file(t_path(&d, "del-0000000000000001-0000000000000002.del", cut, sizeof cut), t.data,
	             50);
	r = t_run(&d, "dump", cut, NULL);
	cr_assert_eq(r->status, 1, "%s", r->out);
	cr_assert(strstr(r->out, "deleted") && strstr(r->out, "stops at offset 48"), "%s", r->out);
	free(r);
	t_write_file(cut, t.data, 88);
	r = t_run(&d, "dump", cut, NULL);
	cr_assert_eq(r->status, 1, "%s", r->out);
	cr_assert(strstr(r->out, "stops at offset 88: the file ends inside the bitmap, after 1 of its "
	                         "10 words"), "%s", r->out);
	/* The deleted nodes of the first word, which the cut left whole, are still listed. */
	char first[256] = "deleted nodes:";
	uint64_t word0;
	memcpy(&word0, t.data + 80, 8);
	for (int bit = 0; bit < 64; bit++)
		if (word0 >> bit & 1)
			snprintf(first + strlen(first), sizeof first - strlen(first), " %d", bit);
	cr_assert(word0 != 0, "100 of 600 ids deleted, none among nodes 0..63?");
	cr_assert(strstr(r->out, first), "'%s' not in: %s", first, r->out);
	free(r);
	free(t.data);

	/* The version-2 bundle of that database lists every kind of entry. */
	r = t_run(&d, "pack", db, t_path(&d, "db.strata", b, sizeof b), "--quiet", NULL);
	cr_assert_eq(r->status, 0, "%s", r->err);
	free(r);
	r = t_run(&d, "dump", b, NULL);
	cr_assert_eq(r->status, 0, "%s", r->out);
	cr_assert(strstr(r->out, "version          2") && strstr(r->out, "kind 4 (deletion)") &&
	          strstr(r->out, "kind 2 (segment)") && !strstr(r->out, "BAD"), "%s", r->out);
	free(r);
	t_dir_free(&d);
}
