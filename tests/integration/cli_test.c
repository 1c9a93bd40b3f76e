/*
 * cli_test.c - the `strata` program end to end, run as a user runs it: the
 * built executable ($STRATA_EXE, set by tests/meson.build; else found beside
 * this test in the build tree) on small generated inputs and on siftsmall.
 * Checks exit statuses (0 / 1 / 2), the one-line messages, the stable JSON
 * keys other programs parse, and that recall is measured, not assumed.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "segment.h"
#include "strata.h"
#include "t_cli.h"
#include "t_support.h"

#define DIM 16
#define N_BASE 500
#define N_QUERY 50


static size_t count_lines(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* A temp dir holding base.fvecs (N_BASE x DIM) and queries.fvecs (N_QUERY x DIM). */
static struct t_dir make_inputs(void)
{
	struct t_dir d = t_dir_new();
	char p[1024];
	float *base = t_random_vectors(N_BASE, DIM, 1);
	float *q = t_random_vectors(N_QUERY, DIM, 2);
	t_write_fvecs(t_path(&d, "base.fvecs", p, sizeof p), base, N_BASE, DIM);
	t_write_fvecs(t_path(&d, "queries.fvecs", p, sizeof p), q, N_QUERY, DIM);
	free(base);
	free(q);
	return d;
}

/* make_inputs() plus a database "db" built from base.fvecs. */
static struct t_dir make_db(void)
{
	struct t_dir d = make_inputs();
	char db[1024], in[1024];
	t_path(&d, "db", db, sizeof db);
	t_path(&d, "base.fvecs", in, sizeof in);
	struct t_run *r = t_run(&d, "build", db, "--input", in, "--threads", "2", "--quiet", NULL);
	cr_assert_eq(r->status, 0, "build: %s%s", r->out, r->err);
	cr_assert(strstr(r->out, "built"), "%s", r->out);
	cr_assert_eq(r->err[0], '\0', "--quiet printed: %s", r->err);
	free(r);
	return d;
}

/* ---- usage ----------------------------------------------------------------------- */

Test(cli, help_and_version_exit_zero)
{
	struct t_dir d = t_dir_new();
	static const char *const cmds[] = {"build", "query", "inspect", "verify"};
	for (size_t i = 0; i < 4; i++) {
		struct t_run *r = t_run(&d, cmds[i], "--help", NULL);
		cr_assert_eq(r->status, 0, "%s --help", cmds[i]);
		cr_assert(strstr(r->out, "usage: strata"), "%s", r->out);
		free(r);
	}
	struct t_run *r = t_run(&d, "--help", NULL);
	cr_assert_eq(r->status, 0);
	cr_assert(strstr(r->out, "verify"));
	free(r);
	r = t_run(&d, "--version", NULL);
	cr_assert_eq(r->status, 0);
	cr_assert(strstr(r->out, strata_version()), "%s", r->out);
	free(r);
	t_dir_free(&d);
}

/* A usage error is one problem line naming the command, then the hint, and status 2. */
static void expect_usage(const struct t_dir *d, struct t_run *r, const char *cmd, const char *needle)
{
	char prefix[64];
	snprintf(prefix, sizeof prefix, "strata %s: ", cmd);
	cr_assert_eq(r->status, 2, "status %d: %s", r->status, r->err);
	cr_assert_eq(strncmp(r->err, prefix, strlen(prefix)), 0, "%s", r->err);
	cr_assert(strstr(r->err, needle), "'%s' lacks '%s'", r->err, needle);
	cr_assert_eq(count_lines(r->err), 2, "%s", r->err);
	cr_assert(strstr(r->err, "--help"));
	cr_assert_eq(r->out[0], '\0');
	(void)d;
	free(r);
}

Test(cli, bad_arguments_exit_two_with_one_line)
{
	struct t_dir d = t_dir_new();
	expect_usage(&d, t_run(&d, "query", "db", "--input", "q.fvecs", "--bogus", NULL), "query",
	             "unknown option '--bogus'");
	expect_usage(&d, t_run(&d, "query", "db", "--input", "q.fvecs", "--k", "ten", NULL), "query",
	             "--k");
	expect_usage(&d, t_run(&d, "query", "db", "--input", "q.fvecs", "--k", NULL), "query",
	             "needs a value");
	expect_usage(&d, t_run(&d, "query", "db", "--input", "q.fvecs", "--k", "0", NULL), "query",
	             "--k must be in");
	expect_usage(&d, t_run(&d, "query", "db", NULL), "query", "--input");
	expect_usage(&d, t_run(&d, "build", "db", "--input", "x.fvecs", "--metric", "hamming", NULL),
	             "build", "unknown metric 'hamming'");
	expect_usage(&d, t_run(&d, "build", "db", "--input", "x.fvecs", "--M", "-3", NULL), "build",
	             "--M");
	expect_usage(&d, t_run(&d, "build", "--input", "x.fvecs", NULL), "build", "DIR");
	expect_usage(&d, t_run(&d, "verify", "a", "b", NULL), "verify", "unexpected argument 'b'");
	expect_usage(&d, t_run(&d, "inspect", "--json=yes", "db", NULL), "inspect", "takes no value");
	struct t_run *r = t_run(&d, "frobnicate", NULL);
	cr_assert_eq(r->status, 2);
	cr_assert(strstr(r->err, "unknown command 'frobnicate'"), "%s", r->err);
	free(r);
	r = t_run(&d, NULL);
	cr_assert_eq(r->status, 2);
	free(r);
	t_dir_free(&d);
}

/* ---- build + query -------------------------------------------------------------------- */

Test(cli, build_then_query_exact_json_reports_recall)
{
	struct t_dir d = make_db();
	char db[1024], q[1024];
	t_path(&d, "db", db, sizeof db);
	t_path(&d, "queries.fvecs", q, sizeof q);
	struct t_run *r = t_run(&d, "query", db, "--input", q, "--truth", "exact", "--ef", "64",
	                    "--threads", "2", "--json", NULL);
	cr_assert_eq(r->status, 0, "%s", r->err);
	cr_assert_eq(count_lines(r->out), 1, "one JSON object on one line: %s", r->out);
	cr_assert_eq(r->out[0], '{');
	cr_assert_eq(t_json_num(r->out, "k"), 10);
	cr_assert_eq(t_json_num(r->out, "ef"), 64);
	cr_assert_eq(t_json_num(r->out, "queries"), N_QUERY);
	double recall = t_json_num(r->out, "recall");
	cr_assert(recall > 0.9 && recall <= 1.0, "recall %f: %s", recall, r->out);
	cr_assert(t_json_num(r->out, "qps") > 0);
	double mean = t_json_num(r->out, "latency_us_mean"), p99 = t_json_num(r->out, "latency_us_p99");
	cr_assert(mean > 0 && p99 >= mean * 0.5, "mean %f p99 %f", mean, p99);
	free(r);

	/* --batch reports the same keys. */
	r = t_run(&d, "query", db, "--input", q, "--truth", "exact", "--batch", "--json", NULL);
	cr_assert_eq(r->status, 0, "%s", r->err);
	cr_assert(t_json_num(r->out, "recall") > 0.8);
	cr_assert(t_json_has(r->out, "latency_us_p99"));
	free(r);

	/* Without a truth: no recall key in JSON. */
	r = t_run(&d, "query", db, "--input", q, "--json", "--limit", "2", NULL);
	cr_assert_eq(r->status, 0, "%s", r->err);
	cr_assert(!t_json_has(r->out, "recall"), "%s", r->out);
	cr_assert_eq(t_json_num(r->out, "queries"), 2);
	free(r);
	t_dir_free(&d);
}

Test(cli, query_prints_one_line_per_query)
{
	struct t_dir d = make_db();
	char db[1024], q[1024];
	t_path(&d, "db", db, sizeof db);
	t_path(&d, "queries.fvecs", q, sizeof q);
	struct t_run *r = t_run(&d, "query", db, "--input", q, "--k", "5", "--limit", "3", NULL);
	cr_assert_eq(r->status, 0, "%s", r->err);
	cr_assert_eq(count_lines(r->out), 3, "%s", r->out);
	char *save, *line = strtok_r(r->out, "\n", &save);
	for (int i = 0; i < 3; i++, line = strtok_r(NULL, "\n", &save)) {
		char want[16];
		snprintf(want, sizeof want, "q%d: ", i);
		cr_assert_eq(strncmp(line, want, strlen(want)), 0, "%s", line);
		size_t pairs = 0;
		for (const char *p = line + strlen(want); *p; p++)
			pairs += *p == ':';
		cr_assert_eq(pairs, 5, "%s", line);
	}
	free(r);
	t_dir_free(&d);
}

/* --filter-ids: only listed ids come back, and --truth exact measures the filtered recall. */
Test(cli, query_filter_ids_returns_only_listed_ids)
{
	struct t_dir d = make_db();
	char db[1024], q[1024], f[1024], e[1024];
	t_path(&d, "db", db, sizeof db);
	t_path(&d, "queries.fvecs", q, sizeof q);
	FILE *fp = fopen(t_path(&d, "ids.txt", f, sizeof f), "w");
	for (int id = 3; id < N_BASE; id += 10) /* 50 of 500, out of order, with a duplicate */
		fprintf(fp, "%d\n", N_BASE - id);
	fprintf(fp, "%d\n", N_BASE - 3);
	fclose(fp);
	struct t_run *r = t_run(&d, "query", db, "--input", q, "--k", "5", "--filter-ids", f, NULL);
	cr_assert_eq(r->status, 0, "%s", r->err);
	char *save, *line = strtok_r(r->out, "\n", &save);
	for (; line; line = strtok_r(NULL, "\n", &save)) {
		for (const char *p = strchr(line, ' '); p; p = strchr(p + 1, ' ')) {
			long id = strtol(p + 1, NULL, 10);
			cr_assert_eq((N_BASE - id) % 10, 3, "id %ld is not in the filter: %s", id, line);
		}
	}
	free(r);
	r = t_run(&d, "query", db, "--input", q, "--filter-ids", f, "--truth", "exact", "--json", NULL);
	cr_assert_eq(r->status, 0, "%s", r->err);
	cr_assert_geq(t_json_num(r->out, "recall"), 0.95, "%s", r->out);
	free(r);
	/* An empty list passes nothing: every slot is empty. */
	t_write_file(t_path(&d, "empty.txt", e, sizeof e), "", 0);
	r = t_run(&d, "query", db, "--input", q, "--k", "3", "--limit", "2", "--filter-ids", e, NULL);
	cr_assert_eq(r->status, 0, "%s", r->err);
	cr_assert_str_eq(r->out, "q0:\nq1:\n", "empty slots are not printed: %s", r->out);
	free(r);
	t_write_file(e, "12\nnope\n", 9);
	r = t_run(&d, "query", db, "--input", q, "--filter-ids", e, NULL);
	cr_assert_eq(r->status, 1);
	cr_assert(strstr(r->err, "line 2"), "%s", r->err);
	free(r);
	t_dir_free(&d);
}

Test(cli, query_refuses_queries_of_another_dim)
{
	struct t_dir d = make_db();
	char db[1024], q[1024];
	t_path(&d, "db", db, sizeof db);
	float *v = t_random_vectors(3, DIM + 1, 3);
	t_write_fvecs(t_path(&d, "q17.fvecs", q, sizeof q), v, 3, DIM + 1);
	free(v);
	struct t_run *r = t_run(&d, "query", db, "--input", q, NULL);
	cr_assert_eq(r->status, 1);
	cr_assert(strstr(r->err, "dim 17") && strstr(r->err, "dim 16"), "%s", r->err);
	free(r);
	t_dir_free(&d);
}

Test(cli, ids_file_gives_the_returned_ids)
{
	struct t_dir d = make_inputs();
	char db[1024], in[1024], ids[1024];
	t_path(&d, "db", db, sizeof db);
	t_path(&d, "base.fvecs", in, sizeof in);
	size_t cap = N_BASE * 24, len = 0;
	char *text = malloc(cap);
	cr_assert_not_null(text);
	for (size_t i = 0; i < N_BASE; i++)
		len += (size_t)snprintf(text + len, cap - len, "%zu\n", 1000000 + i * 3);
	t_write_file(t_path(&d, "ids.txt", ids, sizeof ids), text, len);
	free(text);
	struct t_run *r = t_run(&d, "build", db, "--input", in, "--ids", ids, "--quiet", NULL);
	cr_assert_eq(r->status, 0, "%s", r->err);
	free(r);
	/* Each base vector's nearest neighbour is itself, under its own id. */
	r = t_run(&d, "query", db, "--input", in, "--k", "1", "--ef", "32", "--limit", "4", NULL);
	cr_assert_eq(r->status, 0, "%s", r->err);
	cr_assert(strstr(r->out, "q0: 1000000:0"), "%s", r->out);
	cr_assert(strstr(r->out, "q3: 1000009:0"), "%s", r->out);
	free(r);

	/* One id short: refused before building, with both counts. */
	t_write_file(ids, "1\n2\n", 4);
	t_rmtree(db);
	r = t_run(&d, "build", db, "--input", in, "--ids", ids, "--quiet", NULL);
	cr_assert_eq(r->status, 1);
	cr_assert(strstr(r->err, "2 ids for 500 vectors"), "%s", r->err);
	cr_assert_eq(count_lines(r->err), 1, "%s", r->err);
	free(r);
	t_dir_free(&d);
}

/* ---- refused inputs ----------------------------------------------------------------------- */

Test(cli, npy_float64_is_refused_naming_the_dtype)
{
	struct t_dir d = t_dir_new();
	char p[1024], db[1024];
	const char dict[] = "{'descr': '<f8', 'fortran_order': False, 'shape': (4, 2), }";
	uint8_t file[128 + 64] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, 118, 0};
	memset(file + 10, ' ', 118);
	memcpy(file + 10, dict, sizeof dict - 1);
	file[127] = '\n';
	t_write_file(t_path(&d, "v.npy", p, sizeof p), file, 128 + 64);
	struct t_run *r = t_run(&d, "build", t_path(&d, "db", db, sizeof db), "--input", p, NULL);
	cr_assert_eq(r->status, 1, "%s", r->err);
	cr_assert(strstr(r->err, "'<f8'"), "%s", r->err);
	cr_assert_eq(strncmp(r->err, "strata build: ", 14), 0, "%s", r->err);
	cr_assert_eq(count_lines(r->err), 1, "%s", r->err);
	cr_assert(access(db, F_OK) != 0, "a refused build must leave nothing");
	free(r);
	t_dir_free(&d);
}

Test(cli, nan_in_input_is_refused_with_the_row)
{
	struct t_dir d = t_dir_new();
	char p[1024], db[1024];
	float *v = t_random_vectors(300, DIM, 4);
	v[123 * DIM + 5] = NAN;
	t_write_fvecs(t_path(&d, "v.fvecs", p, sizeof p), v, 300, DIM);
	free(v);
	struct t_run *r = t_run(&d, "build", t_path(&d, "db", db, sizeof db), "--input", p, NULL);
	cr_assert_eq(r->status, 1);
	cr_assert(strstr(r->err, "row 123"), "%s", r->err);
	cr_assert(strstr(r->err, "NaN"), "%s", r->err);
	free(r);
	t_dir_free(&d);
}

Test(cli, truncated_and_empty_inputs_are_refused)
{
	struct t_dir d = make_inputs();
	char p[1024], db[1024], e[1024];
	t_path(&d, "db", db, sizeof db);
	struct t_blob b = t_read_file(t_path(&d, "base.fvecs", p, sizeof p));
	t_write_file(p, b.data, b.len - 7);
	free(b.data);
	struct t_run *r = t_run(&d, "build", db, "--input", p, NULL);
	cr_assert_eq(r->status, 1);
	cr_assert(strstr(r->err, "row 499 is truncated"), "%s", r->err);
	free(r);
	t_write_file(t_path(&d, "empty.fvecs", e, sizeof e), "", 0);
	r = t_run(&d, "build", db, "--input", e, NULL);
	cr_assert_eq(r->status, 1);
	cr_assert(strstr(r->err, "empty"), "%s", r->err);
	free(r);
	t_dir_free(&d);
}

Test(cli, build_refuses_a_non_empty_directory)
{
	struct t_dir d = make_db();
	char db[1024], in[1024];
	t_path(&d, "db", db, sizeof db);
	t_path(&d, "base.fvecs", in, sizeof in);
	struct t_run *r = t_run(&d, "build", db, "--input", in, "--quiet", NULL);
	cr_assert_eq(r->status, 1);
	cr_assert(strstr(r->err, "not empty"), "%s", r->err);
	free(r);
	t_dir_free(&d);
}

/* ---- inspect, verify ------------------------------------------------------------------------ */

Test(cli, inspect_json_has_the_stable_keys)
{
	struct t_dir d = make_db();
	char db[1024];
	t_path(&d, "db", db, sizeof db);
	struct t_run *r = t_run(&d, "inspect", db, "--json", NULL);
	cr_assert_eq(r->status, 0, "%s", r->err);
	cr_assert_eq(count_lines(r->out), 1, "%s", r->out);
	cr_assert_eq(t_json_num(r->out, "dim"), DIM);
	cr_assert(strstr(r->out, "\"metric\": \"l2\""), "%s", r->out);
	cr_assert_eq(t_json_num(r->out, "vectors"), N_BASE);
	cr_assert(strstr(r->out, "\"segments\": [{"), "%s", r->out);
	static const char *const keys[] = {"name", "max_level", "levels", "sections", "file_bytes",
	                                   "nodes", "ids", "id_index", "upper_index"};
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
		cr_assert(t_json_has(r->out, keys[i]), "no '%s': %s", keys[i], r->out);
	free(r);

	r = t_run(&d, "inspect", db, NULL);
	cr_assert_eq(r->status, 0, "%s", r->err);
	cr_assert(strstr(r->out, "levels") && strstr(r->out, "L0: "), "%s", r->out);
	free(r);
	t_dir_free(&d);
}

/* Offset of the middle of the NODES section of the database's one segment. */
static uint64_t nodes_middle(const char *seg_path)
{
	struct t_blob b = t_read_file(seg_path);
	cr_assert(b.data);
	struct seg_info info;
	cr_assert_eq(seg_check(b.data, b.len, &info), 0);
	uint64_t off = info.sec[SEG_SEC_NODES].off + info.sec[SEG_SEC_NODES].size / 2;
	free(b.data);
	return off;
}

Test(cli, verify_passes_a_sound_db_and_finds_a_flipped_node_byte)
{
	struct t_dir d = make_db();
	char db[1024], seg[1100];
	t_path(&d, "db", db, sizeof db);
	struct t_run *r = t_run(&d, "verify", db, NULL);
	cr_assert_eq(r->status, 0, "%s%s", r->out, r->err);
	cr_assert_eq(strncmp(r->out, "OK: ", 4), 0, "%s", r->out);
	free(r);

	snprintf(seg, sizeof seg, "%s/seg-0000000000000001.seg", db);
	uint64_t off = nodes_middle(seg);
	struct t_blob b = t_read_file(seg);
	b.data[off] ^= 0x40;
	t_write_file(seg, b.data, b.len);
	free(b.data);

	r = t_run(&d, "verify", db, NULL);
	cr_assert_eq(r->status, 1, "%s", r->out);
	cr_assert(strstr(r->out, "DAMAGED: seg-0000000000000001.seg"), "%s", r->out);
	cr_assert(strstr(r->out, "nodes"), "the section is named: %s", r->out);
	free(r);
	r = t_run(&d, "verify", db, "--json", NULL);
	cr_assert_eq(r->status, 1);
	cr_assert(strstr(r->out, "\"ok\": false"), "%s", r->out);
	cr_assert(t_json_has(r->out, "problems"));
	free(r);
	/* The segment alone is damaged too; inspect (structure only) still describes it. */
	r = t_run(&d, "verify", seg, NULL);
	cr_assert_eq(r->status, 1, "%s", r->out);
	free(r);
	r = t_run(&d, "inspect", seg, "--json", NULL);
	cr_assert_eq(r->status, 0, "%s", r->err);
	cr_assert_eq(t_json_num(r->out, "vectors"), N_BASE);
	free(r);
	t_dir_free(&d);
}

Test(cli, inspect_and_verify_survive_truncated_and_foreign_files)
{
	struct t_dir d = make_db();
	char db[1024], seg[1100], mf[1100], junk[1024];
	t_path(&d, "db", db, sizeof db);
	snprintf(seg, sizeof seg, "%s/seg-0000000000000001.seg", db);
	snprintf(mf, sizeof mf, "%s/MANIFEST", db);
	struct t_run *r = t_run(&d, "verify", mf, NULL);
	cr_assert_eq(r->status, 0, "%s", r->out);
	free(r);

	struct t_blob b = t_read_file(seg);
	t_write_file(seg, b.data, b.len / 3);
	free(b.data);
	r = t_run(&d, "inspect", db, NULL);
	cr_assert_eq(r->status, 1, "%s", r->out);
	cr_assert(strstr(r->out, "error"), "%s", r->out);
	cr_assert(strstr(r->out, "dim 16"), "the manifest part is still described: %s", r->out);
	free(r);
	r = t_run(&d, "inspect", db, "--json", NULL);
	cr_assert_eq(r->status, 1);
	cr_assert(strstr(r->out, "\"ok\": false"), "%s", r->out);
	cr_assert_eq(t_json_num(r->out, "dim"), DIM);
	free(r);
	r = t_run(&d, "verify", db, NULL);
	cr_assert_eq(r->status, 1, "%s", r->out);
	cr_assert(strstr(r->out, "DAMAGED"), "%s", r->out);
	free(r);

	t_write_file(t_path(&d, "junk.bin", junk, sizeof junk), "hello, world", 12);
	r = t_run(&d, "inspect", junk, NULL);
	cr_assert_eq(r->status, 1);
	cr_assert(strstr(r->err, "not a strata"), "%s", r->err);
	free(r);
	r = t_run(&d, "verify", junk, NULL);
	cr_assert_eq(r->status, 1);
	free(r);
	r = t_run(&d, "verify", t_path(&d, "nothing-here", junk, sizeof junk), NULL);
	cr_assert_eq(r->status, 1);
	free(r);
	t_dir_free(&d);
}

/* ---- real data -------------------------------------------------------------------------- */

Test(cli, siftsmall_recall_against_its_ground_truth)
{
	char base[1024], q[1024], gt[1024], db[1024];
	t_data_path("siftsmall/siftsmall_base.fvecs", base, sizeof base);
	t_data_path("siftsmall/siftsmall_query.fvecs", q, sizeof q);
	t_data_path("siftsmall/siftsmall_groundtruth.ivecs", gt, sizeof gt);
	struct t_dir d = t_dir_new();
	t_path(&d, "db", db, sizeof db);
	struct t_run *r = t_run(&d, "build", db, "--input", base, "--threads", "2", "--quiet", NULL);
	cr_assert_eq(r->status, 0, "%s", r->err);
	cr_assert(strstr(r->out, "10000 vectors, dim 128"), "%s", r->out);
	free(r);
	r = t_run(&d, "query", db, "--input", q, "--truth", gt, "--ef", "100", "--json", NULL);
	cr_assert_eq(r->status, 0, "%s", r->err);
	double recall = t_json_num(r->out, "recall");
	cr_assert(recall >= 0.98, "recall@10 %.4f at ef 100 on siftsmall", recall);
	cr_assert_eq(t_json_num(r->out, "queries"), 100);
	free(r);
	/* The exact truth over the stored vectors agrees with the dataset's. */
	r = t_run(&d, "query", db, "--input", q, "--truth", "exact", "--ef", "100", "--json", NULL);
	cr_assert_eq(r->status, 0, "%s", r->err);
	cr_assert(fabs(t_json_num(r->out, "recall") - recall) < 0.01, "%s", r->out);
	free(r);
	/* The truth needs k columns. */
	r = t_run(&d, "query", db, "--input", q, "--truth", gt, "--k", "101", NULL);
	cr_assert_eq(r->status, 1);
	cr_assert(strstr(r->err, "fewer than --k 101"), "%s", r->err);
	free(r);
	t_dir_free(&d);
}
