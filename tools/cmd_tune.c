/*
 * cmd_tune.c - `strata tune`: measure recall against latency, the way every
 * HNSW guide tells users to tune, without writing the harness themselves.
 * Manual: strata.1, section "tune".
 *
 *   strata tune DIR --queries FILE ...     sweep ef over an existing database
 *   strata tune --grid M=8,16 ef_construction=100,200 --input BASE --queries FILE ...
 *                                          build each combination, then sweep each
 *
 * Measurement rules (shared with query through cli_timed_search): one query
 * per strata_search() call, only those calls timed, on --threads threads
 * (default 1, so latency is one core's); qps = queries / wall time of the
 * pass; mean, p50 and p99 over the per-query latencies. Each ef is measured
 * --repeat times (default 3) and the fastest pass is reported, as
 * ann-benchmarks does: on a shared machine the slower passes measure the
 * neighbours. --clock cpu times each call by its thread's CPU clock instead
 * (qps = queries / summed CPU time per thread), which preemption does not
 * inflate. Before the sweep one untimed pass at the largest ef brings the
 * database's pages into memory, so the first ef is not charged for page
 * faults.
 *
 * Ground truth: an .ivecs file (row numbers, for databases built without
 * --ids), or exact (default): brute force over the stored vectors with the
 * SIMD kernels on all cores (cli_exact_truth). With --cache-truth the exact
 * truth is kept beside the queries file, as
 *     <queries without extension>.truth-k<k>-<16 hex>.ivecs
 * where the hex is the xxh3-64 of (database identity, the queries' bytes,
 * their count and dim, the metric, k); a database's identity is its
 * MANIFEST's db_uuid and generation (a new build or any commit changes it),
 * a grid's is the xxh3-64 of the (sampled) base vectors it builds from. A
 * cached file that cannot be read is recomputed and replaced.
 */
#include <dirent.h>
#include <errno.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "cli_chart.h"
#include "fio.h"
#include "le.h"
#include "manifest.h"
#include "strata.h"
#include "vecio.h"
#include "xsum.h"

#define CMD "tune"
#define LIST_MAX 64

static const char usage_text[] =
	"usage: strata tune DIR --queries FILE [options]\n"
	"       strata tune --grid M=8,16,32 ef_construction=100,200,400 --input BASE\n"
	"                   --queries FILE [--sample N] [options]\n"
	"\n"
	"Sweep the search beam width ef and report, per ef, recall@k, mean / p50 / p99\n"
	"latency and queries per second; name the smallest ef that reaches the target\n"
	"recall. With --grid, build the database for each combination of M and\n"
	"ef_construction from BASE (or a random sample of it) and report build time,\n"
	"index size, and the ef needed for the target with its QPS.\n"
	"\n"
	"options:\n"
	"  --queries FILE        query vectors (.fvecs, .bvecs, .npy) (required)\n"
	"  --truth FILE.ivecs    ground truth (row numbers; databases built without --ids)\n"
	"  --truth exact         brute force over the stored vectors (default)\n"
	"  --cache-truth         keep the exact truth beside the queries file and reuse it\n"
	"  --k N                 neighbours per query (default 10)\n"
	"  --ef LIST             ef values, comma-separated\n"
	"                        (default 10,16,24,32,48,64,96,128,192,256,384,512)\n"
	"  --target-recall R     the recall to reach, 0 < R <= 1 (default 0.95)\n"
	"  --threads N           search threads (default 1: per-query latency on one core)\n"
	"  --repeat N            passes per ef; the fastest is reported (default 3)\n"
	"  --clock wall|cpu      time searches by the wall clock (default) or by the\n"
	"                        searching thread's CPU time (steady on a busy machine)\n"
	"  --limit N             use only the first N queries\n"
	"  --svg FILE            write the recall / latency chart\n"
	"  --csv FILE            write every measured point\n"
	"  --json                print one JSON object instead of the tables\n"
	"  --quiet               no progress on stderr\n"
	"grid options:\n"
	"  --grid AXIS AXIS      M=LIST and/or ef_construction=LIST (the other defaults to\n"
	"                        16 / 200)\n"
	"  --input FILE          base vectors to build from (required with --grid)\n"
	"  --sample N            build from N rows drawn at random (seeded) from BASE\n"
	"  --metric l2|ip|cosine distance (default l2)\n"
	"  --build-threads N     build threads, 0 = all cores (default 0)\n"
	"  --seed N              level and sample seed (default 100)\n"
	"  --work DIR            build the databases in DIR and keep them (default: a\n"
	"                        temporary directory, removed at the end)\n"
	"  -h, --help            this text\n";

static const uint32_t default_efs[] = {10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512};

struct point {
	uint32_t ef;
	double recall, mean_us, p50_us, p99_us, qps;
};

struct combo {
	uint32_t M, efc;
	double build_s;
	uint64_t bytes;
	struct point pts[LIST_MAX];
	size_t n;
	int best; /* index of the smallest ef reaching the target, or -1 */
};

struct tune {
	const char *queries_path, *truth_s, *svg, *csv;
	bool json, cache, quiet, cpu_clock;
	uint32_t k, threads, repeat;
	double target;
	uint32_t efs[LIST_MAX];
	size_t nef;
	const float *q;
	size_t nq;
	size_t q_rows;    /* rows in the queries file (nq may be fewer: --limit) */
	uint32_t dim;
	uint32_t metric;
	uint64_t vectors;
	uint64_t checkpoint_lsn; /* of the searched handle, for the exact truth; UINT64_MAX: a grid's own build */
	const char *what; /* DIR, or the base file of a grid */
};

static int u32_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

/* "10,16,32" into sorted distinct values in lo..hi. Returns 0 or a usage error. */
static int parse_list(const char *opt, const char *s, uint32_t lo, uint32_t hi, uint32_t *out,
                      size_t *n_out)
{
	size_t n = 0;
	const char *p = s;
	while (*p) {
		char *end;
		if (*p < '0' || *p > '9')
			return cli_usage_error(CMD, "%s needs comma-separated numbers, not '%s'", opt, s);
		unsigned long long v = strtoull(p, &end, 10);
		if (v < lo || v > hi)
			return cli_usage_error(CMD, "%s values must be in %u..%u, not %llu", opt, lo, hi, v);
		if (n == LIST_MAX)
			return cli_usage_error(CMD, "%s takes at most %u values", opt, LIST_MAX);
		out[n++] = (uint32_t)v;
		if (*end == ',')
			end++;
		else if (*end)
			return cli_usage_error(CMD, "%s needs comma-separated numbers, not '%s'", opt, s);
		p = end;
	}
	if (n == 0)
		return cli_usage_error(CMD, "%s needs at least one value", opt);
	qsort(out, n, sizeof *out, u32_cmp);
	size_t m = 0;
	for (size_t i = 0; i < n; i++)
		if (m == 0 || out[m - 1] != out[i])
			out[m++] = out[i];
	*n_out = m;
	return 0;
}

/* ---- ground truth ---------------------------------------------------------------------------- */

static uint64_t queries_hash(const struct tune *t)
{
	return xsum64(t->q, t->nq * t->dim * sizeof(float));
}

/* The cache file's path for identity `ident` (see the file comment). */
static void cache_path(const struct tune *t, uint64_t ident, char *out, size_t len)
{
	char d[4096], b[4096];
	snprintf(d, sizeof d, "%s", t->queries_path);
	snprintf(b, sizeof b, "%s", t->queries_path);
	char *base = basename(b);
	char *dot = strrchr(base, '.');
	if (dot && dot != base)
		*dot = '\0';
	uint8_t key[8 + 8 + 8 + 4 + 4 + 4];
	le_store64(key, ident);
	le_store64(key + 8, queries_hash(t));
	le_store64(key + 16, (uint64_t)t->nq);
	le_store32(key + 24, t->dim);
	le_store32(key + 28, t->metric);
	le_store32(key + 32, t->k);
	snprintf(out, len, "%s/%s.truth-k%u-%016llx.ivecs", dirname(d), base, t->k,
	         (unsigned long long)xsum64(key, sizeof key));
}

/* Write the truth as .ivecs through the atomic-replace path. 0, or a note and -1. */
static int cache_write(const char *path, const uint64_t *truth, size_t nq, uint32_t k)
{
	size_t row = 4 + 4 * (size_t)k;
	uint8_t *buf = malloc(nq > 0 ? nq * row : 1);
	if (!buf)
		return -1;
	for (size_t q = 0; q < nq; q++) {
		le_store32(buf + q * row, k);
		for (uint32_t i = 0; i < k; i++) {
			uint64_t id = truth[q * k + i];
			if (id != STRATA_NO_ID && id > INT32_MAX) {
				fprintf(stderr, "strata tune: note: id %llu does not fit an .ivecs file; the "
				                "truth is not cached\n", (unsigned long long)id);
				free(buf);
				return -1;
			}
			le_store32(buf + q * row + 4 + 4 * i, id == STRATA_NO_ID ? UINT32_MAX : (uint32_t)id);
		}
	}
	char d[4096], b[4096];
	snprintf(d, sizeof d, "%s", path);
	snprintf(b, sizeof b, "%s", path);
	int rc = fio_write_file_atomic(dirname(d), basename(b), buf, nq * row);
	free(buf);
	if (rc != 0) {
		fprintf(stderr, "strata tune: note: the truth is not cached: %s: %s\n", strata_strerror(rc),
		        strata_last_error_detail());
		return -1;
	}
	return 0;
}

/*
 * The truth for the queries against the database in `dir`: from --truth
 * FILE, or exact (cached when asked). `ident` is the cache identity.
 */
static int get_truth(const struct tune *t, const char *dir, uint64_t ident, uint64_t **truth_out)
{
	if (t->truth_s && strcmp(t->truth_s, "exact") != 0)
		return cli_file_truth(CMD, t->truth_s, t->nq, t->k, t->nq < t->q_rows, truth_out);
	char path[4096];
	if (t->cache) {
		cache_path(t, ident, path, sizeof path);
		if (access(path, R_OK) == 0) {
			if (cli_file_truth(CMD, path, t->nq, t->k, false, truth_out) == 0) {
				if (!t->quiet)
					fprintf(stderr, "truth: cached %s\n", path);
				return 0;
			}
			fprintf(stderr, "strata tune: note: recomputing the cached truth %s\n", path);
		}
	}
	uint32_t threads = (uint32_t)sysconf(_SC_NPROCESSORS_ONLN);
	double t0 = cli_now();
	int rc = cli_exact_truth(CMD, dir, t->checkpoint_lsn, t->q, t->nq, t->dim, t->k,
	                         threads ? threads : 1, NULL, 0, truth_out);
	if (rc != 0)
		return rc;
	if (!t->quiet)
		fprintf(stderr, "truth: exact, %zu queries x %llu vectors on %u threads in %.2f s\n",
		        t->nq, (unsigned long long)t->vectors, threads, cli_now() - t0);
	if (t->cache && cache_write(path, *truth_out, t->nq, t->k) == 0 && !t->quiet)
		fprintf(stderr, "truth: cached as %s\n", path);
	return 0;
}

/* ---- the sweep --------------------------------------------------------------------------------- */

static int sweep(const struct tune *t, strata_db *db, const uint64_t *truth, struct combo *c)
{
	uint64_t *ids = malloc(t->nq * t->k * sizeof *ids);
	float *dists = malloc(t->nq * t->k * sizeof *dists);
	int rc = CLI_EXIT_FAIL;
	if (!ids || !dists) {
		cli_error(CMD, "out of memory for %zu x %u results", t->nq, t->k);
		goto out;
	}
	struct cli_search_result r;
	struct cli_search_spec spec = {.k = t->k, .ef = t->efs[t->nef - 1], .threads = t->threads,
	                               .cpu_clock = t->cpu_clock};
	/* Untimed: fault the pages in at the widest ef before anything is measured. */
	if (cli_timed_search(CMD, db, t->q, t->nq, t->dim, &spec, ids, dists, &r) != 0)
		goto out;
	c->n = 0;
	c->best = -1;
	for (size_t i = 0; i < t->nef; i++) {
		struct point *p = &c->pts[c->n++];
		p->ef = spec.ef = t->efs[i];
		/* Best of --repeat passes: the one least disturbed by everything else on the machine. */
		for (uint32_t rep = 0; rep < t->repeat; rep++) {
			if (cli_timed_search(CMD, db, t->q, t->nq, t->dim, &spec, ids, dists, &r) != 0)
				goto out;
			double secs = t->cpu_clock ? r.busy_s : r.wall_s;
			double qps = secs > 0 ? (double)t->nq / secs : 0;
			if (rep == 0 || qps > p->qps) {
				p->qps = qps;
				p->mean_us = r.lat_mean_us;
				p->p50_us = r.lat_p50_us;
				p->p99_us = r.lat_p99_us;
			}
		}
		p->recall = cli_recall(ids, t->nq, t->k, truth);
		if (c->best < 0 && p->recall >= t->target)
			c->best = (int)i;
	}
	rc = 0;
out:
	free(ids);
	free(dists);
	return rc;
}

static void print_points(const struct tune *t, const struct combo *c)
{
	char rk[16];
	snprintf(rk, sizeof rk, "recall@%u", t->k);
	printf("  %6s  %9s  %9s  %9s  %9s  %10s\n", "ef", rk, "mean us", "p50 us", "p99 us", "QPS");
	for (size_t i = 0; i < c->n; i++) {
		const struct point *p = &c->pts[i];
		printf("  %6u  %9.4f  %9.1f  %9.1f  %9.1f  %10.0f%s\n", p->ef, p->recall, p->mean_us,
		       p->p50_us, p->p99_us, p->qps, (int)i == c->best ? "  <- target" : "");
	}
}

static void print_best(const struct tune *t, const struct combo *c)
{
	if (c->best >= 0) {
		const struct point *p = &c->pts[c->best];
		printf("target recall %.4g: smallest ef %u (recall %.4f, %.0f QPS, mean %.1f us, p99 "
		       "%.1f us)\n", t->target, p->ef, p->recall, p->qps, p->mean_us, p->p99_us);
		return;
	}
	const struct point *top = &c->pts[0];
	for (size_t i = 1; i < c->n; i++)
		if (c->pts[i].recall > top->recall)
			top = &c->pts[i];
	printf("target recall %.4g: not reached; best recall %.4f at ef %u (try larger --ef values%s)\n",
	       t->target, top->recall, top->ef, c->M ? "" : " or a database built with larger M");
}

static void json_points(struct cli_json *j, const struct combo *c)
{
	cli_json_arr_begin(j, "points");
	for (size_t i = 0; i < c->n; i++) {
		const struct point *p = &c->pts[i];
		cli_json_obj_begin(j, NULL);
		cli_json_u64(j, "ef", p->ef);
		cli_json_f64(j, "recall", p->recall);
		cli_json_f64(j, "latency_us_mean", p->mean_us);
		cli_json_f64(j, "latency_us_p50", p->p50_us);
		cli_json_f64(j, "latency_us_p99", p->p99_us);
		cli_json_f64(j, "qps", p->qps);
		cli_json_obj_end(j);
	}
	cli_json_arr_end(j);
	if (c->best >= 0) {
		cli_json_u64(j, "best_ef", c->pts[c->best].ef);
		cli_json_f64(j, "best_recall", c->pts[c->best].recall);
		cli_json_f64(j, "best_qps", c->pts[c->best].qps);
		cli_json_f64(j, "best_latency_us_p99", c->pts[c->best].p99_us);
	} else {
		cli_json_null(j, "best_ef");
	}
}

static void json_common(struct cli_json *j, const struct tune *t)
{
	cli_json_u64(j, "vectors", t->vectors);
	cli_json_u64(j, "dim", t->dim);
	cli_json_str(j, "metric", cli_metric_name(t->metric));
	cli_json_str(j, "queries_file", t->queries_path);
	cli_json_u64(j, "queries", t->nq);
	cli_json_u64(j, "k", t->k);
	cli_json_u64(j, "threads", t->threads);
	cli_json_u64(j, "repeat", t->repeat);
	cli_json_str(j, "clock", t->cpu_clock ? "cpu" : "wall");
	cli_json_str(j, "truth", t->truth_s ? t->truth_s : "exact");
	cli_json_f64(j, "target_recall", t->target);
}

static int write_csv(const struct tune *t, const struct combo *cs, size_t n, bool grid)
{
	FILE *f = fopen(t->csv, "w");
	if (!f)
		return cli_error(CMD, "%s: %s", t->csv, strerror(errno));
	if (grid)
		fputs("M,ef_construction,build_seconds,index_bytes,", f);
	fputs("ef,recall,latency_us_mean,latency_us_p50,latency_us_p99,qps\n", f);
	for (size_t c = 0; c < n; c++)
		for (size_t i = 0; i < cs[c].n; i++) {
			const struct point *p = &cs[c].pts[i];
			if (grid)
				fprintf(f, "%u,%u,%.3f,%llu,", cs[c].M, cs[c].efc, cs[c].build_s,
				        (unsigned long long)cs[c].bytes);
			fprintf(f, "%u,%.6f,%.2f,%.2f,%.2f,%.1f\n", p->ef, p->recall, p->mean_us, p->p50_us,
			        p->p99_us, p->qps);
		}
	if (fclose(f) != 0)
		return cli_error(CMD, "%s: %s", t->csv, strerror(errno));
	return 0;
}

static int write_svg(const struct tune *t, const struct combo *cs, size_t n, bool grid)
{
	struct cli_chart_series *ser = calloc(n, sizeof *ser);
	struct cli_chart_point *pts = calloc(n * LIST_MAX, sizeof *pts);
	if (!ser || !pts) {
		free(ser);
		free(pts);
		return cli_error(CMD, "out of memory");
	}
	size_t total = 0;
	for (size_t c = 0; c < n; c++) {
		struct cli_chart_point *p = pts + c * LIST_MAX;
		for (size_t i = 0; i < cs[c].n; i++) {
			p[i].x = cs[c].pts[i].mean_us;
			p[i].y = cs[c].pts[i].recall;
			snprintf(p[i].label, sizeof p[i].label, "%u", cs[c].pts[i].ef);
		}
		ser[c].pts = p;
		ser[c].n = cs[c].n;
		total += cs[c].n;
		char sz[32];
		if (grid)
			snprintf(ser[c].name, sizeof ser[c].name, "M=%u, efc=%u (%.1f s, %s)", cs[c].M,
			         cs[c].efc, cs[c].build_s, cli_fmt_bytes(cs[c].bytes, sz, sizeof sz));
		else
			snprintf(ser[c].name, sizeof ser[c].name, "%s", t->what);
	}
	char title[512], subtitle[512], ylab[32], target[64];
	snprintf(title, sizeof title, "strata tune: recall@%u vs latency%s", t->k,
	         grid ? " per M / ef_construction" : "");
	const char *slash = strrchr(t->what, '/');
	const char *truth = t->truth_s ? t->truth_s : "exact";
	const char *tslash = strrchr(truth, '/');
	snprintf(subtitle, sizeof subtitle, "%s: %llu vectors, dim %u, %s; %zu queries, %u search "
	         "thread%s, truth %s; best of %u, %s clock", slash && slash[1] ? slash + 1 : t->what,
	         (unsigned long long)t->vectors, t->dim, cli_metric_name(t->metric), t->nq, t->threads,
	         t->threads == 1 ? "" : "s", tslash ? tslash + 1 : truth, t->repeat,
	         t->cpu_clock ? "cpu" : "wall");
	snprintf(ylab, sizeof ylab, "recall@%u", t->k);
	snprintf(target, sizeof target, "target %.4g", t->target);
	struct cli_chart ch = {
		.title = title,
		.subtitle = subtitle,
		.x_label = t->cpu_clock ? "mean CPU time per query (microseconds, log scale)"
		                        : "mean latency per query (microseconds, log scale)",
		.y_label = ylab,
		.target_y = t->target,
		.target_label = target,
		.point_label = "ef (search beam width)",
	};
	int status = 0;
	FILE *f = fopen(t->svg, "w");
	if (!f) {
		status = cli_error(CMD, "%s: %s", t->svg, strerror(errno));
	} else {
		int rc = cli_chart_svg(f, &ch, ser, n);
		if (fclose(f) != 0 || rc != 0)
			status = cli_error(CMD, "%s: could not write the chart", t->svg);
		else if (!t->quiet)
			fprintf(stderr, "chart: %s (%zu points)\n", t->svg, total);
	}
	free(ser);
	free(pts);
	return status;
}

/* ---- one database ---------------------------------------------------------------------------------- */

static int tune_dir(struct tune *t, const char *dir)
{
	strata_db *db = NULL;
	int rc = strata_open(dir, NULL, STRATA_READONLY, &db);
	if (rc != 0)
		return cli_fail(CMD, dir, rc);
	struct strata_stats st;
	strata_stats(db, &st);
	t->metric = st.metric;
	t->vectors = st.vectors;
	t->checkpoint_lsn = st.checkpoint_lsn;
	t->what = dir;
	if (t->dim != st.dim) {
		strata_close(db);
		return cli_error(CMD, "%s: queries have dim %u, the database has dim %u",
		                 t->queries_path, t->dim, st.dim);
	}
	struct mf_manifest mf;
	uint8_t idb[24] = {0};
	if (mf_load(dir, &mf) == 0) {
		memcpy(idb, mf.db_uuid, 16);
		le_store64(idb + 16, mf.generation);
		mf_free(&mf);
	}
	uint64_t *truth = NULL;
	struct combo *c = calloc(1, sizeof *c);
	int status = CLI_EXIT_FAIL;
	if (!c) {
		cli_error(CMD, "out of memory");
		goto out;
	}
	if (get_truth(t, dir, xsum64(idb, sizeof idb), &truth) != 0)
		goto out;
	if (sweep(t, db, truth, c) != 0)
		goto out;
	if (t->json) {
		struct cli_json j;
		cli_json_init(&j, stdout);
		cli_json_obj_begin(&j, NULL);
		cli_json_str(&j, "dir", dir);
		json_common(&j, t);
		json_points(&j, c);
		cli_json_obj_end(&j);
	} else {
		printf("tune %s: %llu vectors, dim %u, %s; %zu queries, k %u, %u search thread%s, truth "
		       "%s; best of %u, %s clock\n", dir, (unsigned long long)t->vectors, t->dim,
		       cli_metric_name(t->metric), t->nq, t->k, t->threads, t->threads == 1 ? "" : "s",
		       t->truth_s ? t->truth_s : "exact", t->repeat, t->cpu_clock ? "cpu" : "wall");
		print_points(t, c);
		print_best(t, c);
	}
	if ((t->csv && write_csv(t, c, 1, false) != 0) || (t->svg && write_svg(t, c, 1, false) != 0))
		goto out;
	status = CLI_EXIT_OK;
out:
	free(c);
	free(truth);
	strata_close(db);
	return status;
}

/* ---- the grid ------------------------------------------------------------------------------------ */

struct grid {
	uint32_t Ms[LIST_MAX], efcs[LIST_MAX];
	size_t nM, nefc;
	const char *input, *work;
	uint64_t sample, seed;
	strata_metric metric;
	uint32_t build_threads;
};

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

/* `n` distinct rows of `rows`, drawn with `seed`, in ascending order (partial Fisher-Yates). */
static uint64_t *sample_rows(size_t rows, size_t n, uint64_t seed)
{
	uint64_t *perm = malloc(rows * sizeof *perm);
	if (!perm)
		return NULL;
	for (size_t i = 0; i < rows; i++)
		perm[i] = i;
	uint64_t s = seed;
	for (size_t i = 0; i < n; i++) {
		size_t j = i + (size_t)(splitmix64(&s) % (rows - i));
		uint64_t x = perm[i];
		perm[i] = perm[j];
		perm[j] = x;
	}
	qsort(perm, n, sizeof *perm, u64_cmp);
	return perm;
}

/* A database directory holds regular files only: remove them, then it. */
static void remove_db(const char *dir)
{
	DIR *d = opendir(dir);
	if (d) {
		struct dirent *e;
		while ((e = readdir(d))) {
			char p[4096];
			if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
			    snprintf(p, sizeof p, "%s/%s", dir, e->d_name) < (int)sizeof p)
				unlink(p);
		}
		closedir(d);
	}
	rmdir(dir);
}

static int tune_grid(struct tune *t, const struct grid *g)
{
	char err[VECIO_ERR_MAX];
	struct vecio_mat base = {0};
	float *sampled = NULL;
	uint64_t *ids = NULL, *truth = NULL;
	struct combo *cs = NULL;
	char work[4096];
	bool own_work = !g->work;
	int status = CLI_EXIT_FAIL;

	if (vecio_load(g->input, VECIO_AUTO, &base, err, sizeof err) != 0)
		return cli_error(CMD, "%s: %s", g->input, err);
	if (base.dim != t->dim) {
		cli_error(CMD, "%s: vectors have dim %u, the queries dim %u", g->input, base.dim, t->dim);
		goto out;
	}
	const float *vecs = base.data;
	size_t n = base.rows;
	if (g->sample && g->sample < base.rows) {
		ids = sample_rows(base.rows, (size_t)g->sample, g->seed);
		sampled = malloc((size_t)g->sample * base.dim * sizeof *sampled);
		if (!ids || !sampled) {
			cli_error(CMD, "out of memory for a sample of %llu", (unsigned long long)g->sample);
			goto out;
		}
		n = (size_t)g->sample;
		for (size_t i = 0; i < n; i++)
			memcpy(sampled + i * base.dim, base.data + ids[i] * base.dim,
			       base.dim * sizeof *sampled);
		vecs = sampled;
	}
	t->metric = (uint32_t)g->metric;
	t->vectors = n;
	t->what = g->input;
	/* The grid's identity is its data: every combination holds the same vectors and ids. */
	uint8_t idb[16];
	le_store64(idb, xsum64(vecs, n * t->dim * sizeof *vecs));
	le_store64(idb + 8, ids ? xsum64(ids, n * sizeof *ids) : 0);
	uint64_t ident = xsum64(idb, sizeof idb);

	if (own_work) {
		const char *tmpdir = getenv("TMPDIR");
		snprintf(work, sizeof work, "%s/strata-tune-XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp");
		if (!mkdtemp(work)) {
			cli_error(CMD, "%s: %s", work, strerror(errno));
			goto out;
		}
	} else {
		snprintf(work, sizeof work, "%s", g->work);
		if (mkdir(work, 0755) != 0 && errno != EEXIST) {
			cli_error(CMD, "%s: %s", work, strerror(errno));
			goto out;
		}
	}
	size_t ncombo = g->nM * g->nefc;
	cs = calloc(ncombo, sizeof *cs);
	if (!cs) {
		cli_error(CMD, "out of memory");
		goto out;
	}
	for (size_t a = 0; a < g->nM; a++) {
		for (size_t b = 0; b < g->nefc; b++) {
			struct combo *c = &cs[a * g->nefc + b];
			c->M = g->Ms[a];
			c->efc = g->efcs[b];
			char dir[4096 + 64];
			snprintf(dir, sizeof dir, "%s/M%u-efc%u", work, c->M, c->efc);
			strata_options o;
			strata_options_default(&o);
			o.dim = t->dim;
			o.metric = g->metric;
			o.M = c->M;
			o.ef_construction = c->efc;
			o.threads = g->build_threads;
			o.seed = g->seed;
			if (!t->quiet)
				fprintf(stderr, "building M=%u ef_construction=%u over %zu vectors ...", c->M,
				        c->efc, n);
			double t0 = cli_now();
			int rc = strata_build(dir, &o, ids, vecs, n);
			c->build_s = cli_now() - t0;
			if (rc != 0) {
				if (!t->quiet)
					fputc('\n', stderr);
				cli_fail(CMD, dir, rc);
				goto out;
			}
			cli_dir_bytes(dir, &c->bytes);
			if (!t->quiet)
				fprintf(stderr, " %.2f s\n", c->build_s);
			if (!truth && get_truth(t, dir, ident, &truth) != 0)
				goto out;
			strata_db *db = NULL;
			if ((rc = strata_open(dir, NULL, STRATA_READONLY, &db)) != 0) {
				cli_fail(CMD, dir, rc);
				goto out;
			}
			rc = sweep(t, db, truth, c);
			strata_close(db);
			if (own_work)
				remove_db(dir);
			if (rc != 0)
				goto out;
		}
	}
	if (t->json) {
		struct cli_json j;
		cli_json_init(&j, stdout);
		cli_json_obj_begin(&j, NULL);
		cli_json_str(&j, "input", g->input);
		if (g->sample && g->sample < base.rows)
			cli_json_u64(&j, "sample", g->sample);
		json_common(&j, t);
		cli_json_arr_begin(&j, "combinations");
		for (size_t i = 0; i < ncombo; i++) {
			cli_json_obj_begin(&j, NULL);
			cli_json_u64(&j, "M", cs[i].M);
			cli_json_u64(&j, "ef_construction", cs[i].efc);
			cli_json_f64(&j, "build_seconds", cs[i].build_s);
			cli_json_u64(&j, "index_bytes", cs[i].bytes);
			json_points(&j, &cs[i]);
			cli_json_obj_end(&j);
		}
		cli_json_arr_end(&j);
		cli_json_obj_end(&j);
	} else {
		printf("tune --grid %s: %zu vectors%s, dim %u, %s; %zu queries, k %u, %u search thread%s, "
		       "truth %s; best of %u, %s clock\n", g->input, n, ids ? " (random sample)" : "",
		       t->dim, cli_metric_name(t->metric), t->nq, t->k, t->threads,
		       t->threads == 1 ? "" : "s", t->truth_s ? t->truth_s : "exact", t->repeat,
		       t->cpu_clock ? "cpu" : "wall");
		for (size_t i = 0; i < ncombo; i++) {
			printf("M %u, ef_construction %u: built in %.2f s, %.1f MiB\n", cs[i].M, cs[i].efc,
			       cs[i].build_s, (double)cs[i].bytes / 1048576.0);
			print_points(t, &cs[i]);
		}
		printf("summary (target recall %.4g)\n", t->target);
		printf("  %4s  %15s  %8s  %9s  %8s  %8s  %10s  %9s\n", "M", "ef_construction", "build s",
		       "size MiB", "ef", "recall", "QPS", "p99 us");
		for (size_t i = 0; i < ncombo; i++) {
			printf("  %4u  %15u  %8.2f  %9.1f", cs[i].M, cs[i].efc, cs[i].build_s,
			       (double)cs[i].bytes / 1048576.0);
			if (cs[i].best >= 0) {
				const struct point *p = &cs[i].pts[cs[i].best];
				printf("  %8u  %8.4f  %10.0f  %9.1f\n", p->ef, p->recall, p->qps, p->p99_us);
			} else {
				printf("  %8s  %8s  %10s  %9s\n", "-", "-", "-", "-");
			}
		}
	}
	if ((t->csv && write_csv(t, cs, ncombo, true) != 0) ||
	    (t->svg && write_svg(t, cs, ncombo, true) != 0))
		goto out;
	status = CLI_EXIT_OK;
out:
	if (own_work && cs)
		rmdir(work);
	free(cs);
	free(truth);
	free(ids);
	free(sampled);
	vecio_mat_free(&base);
	return status;
}

/* One "KEY=LIST" grid axis. */
static int grid_axis(struct grid *g, const char *spec)
{
	if (strncmp(spec, "M=", 2) == 0)
		return parse_list("--grid M", spec + 2, STRATA_M_MIN, STRATA_M_MAX, g->Ms, &g->nM);
	if (strncmp(spec, "ef_construction=", 16) == 0)
		return parse_list("--grid ef_construction", spec + 16, 1, STRATA_EF_MAX, g->efcs,
		                  &g->nefc);
	return cli_usage_error(CMD, "--grid takes M=LIST and ef_construction=LIST, not '%s'", spec);
}

int cmd_tune(int argc, char **argv)
{
	struct tune t = {.k = 10, .threads = 1, .repeat = 3, .target = 0.95,
	                 .checkpoint_lsn = UINT64_MAX};
	struct grid g = {.seed = 100, .metric = STRATA_METRIC_L2};
	const char *ef_s = NULL, *target_s = NULL, *grid_s = NULL, *metric_s = NULL, *clock_s = NULL;
	uint64_t limit = 0;
	bool help = false;
	const struct cli_opt opts[] = {
		{"--queries", NULL, CLI_OPT_STR, &t.queries_path, 0, 0},
		{"--truth", NULL, CLI_OPT_STR, &t.truth_s, 0, 0},
		{"--cache-truth", NULL, CLI_OPT_FLAG, &t.cache, 0, 0},
		{"--k", NULL, CLI_OPT_U32, &t.k, 1, STRATA_K_MAX},
		{"--ef", NULL, CLI_OPT_STR, &ef_s, 0, 0},
		{"--target-recall", NULL, CLI_OPT_STR, &target_s, 0, 0},
		{"--threads", NULL, CLI_OPT_U32, &t.threads, 1, CLI_THREADS_MAX},
		{"--repeat", NULL, CLI_OPT_U32, &t.repeat, 1, 1000},
		{"--clock", NULL, CLI_OPT_STR, &clock_s, 0, 0},
		{"--limit", NULL, CLI_OPT_U64, &limit, 1, UINT64_MAX},
		{"--svg", NULL, CLI_OPT_STR, &t.svg, 0, 0},
		{"--csv", NULL, CLI_OPT_STR, &t.csv, 0, 0},
		{"--json", NULL, CLI_OPT_FLAG, &t.json, 0, 0},
		{"--quiet", "-q", CLI_OPT_FLAG, &t.quiet, 0, 0},
		{"--grid", NULL, CLI_OPT_STR, &grid_s, 0, 0},
		{"--input", NULL, CLI_OPT_STR, &g.input, 0, 0},
		{"--sample", NULL, CLI_OPT_U64, &g.sample, 1, UINT64_MAX},
		{"--metric", NULL, CLI_OPT_STR, &metric_s, 0, 0},
		{"--build-threads", NULL, CLI_OPT_U32, &g.build_threads, 0, CLI_THREADS_MAX},
		{"--seed", NULL, CLI_OPT_U64, &g.seed, 0, UINT64_MAX},
		{"--work", NULL, CLI_OPT_STR, &g.work, 0, 0},
		{NULL, NULL, CLI_OPT_FLAG, NULL, 0, 0},
	};
	const char *pos[4];
	size_t npos;
	int rc = cli_parse(CMD, argc, argv, opts, pos, 4, &npos, &help);
	if (rc != 0)
		return rc;
	if (help) {
		fputs(usage_text, stdout);
		return CLI_EXIT_OK;
	}
	bool grid = grid_s != NULL;
	if (grid) {
		if ((rc = grid_axis(&g, grid_s)) != 0)
			return rc;
		for (size_t i = 0; i < npos; i++)
			if ((rc = grid_axis(&g, pos[i])) != 0)
				return rc;
		if (!g.nM)
			g.Ms[g.nM++] = 16;
		if (!g.nefc)
			g.efcs[g.nefc++] = 200;
		if (!g.input)
			return cli_usage_error(CMD, "--grid needs --input BASE (the vectors to build from)");
		if (metric_s && cli_metric_parse(metric_s, &g.metric) != 0)
			return cli_usage_error(CMD, "unknown metric '%s' (expected l2, ip or cosine)",
			                       metric_s);
		if (g.sample && t.truth_s && strcmp(t.truth_s, "exact") != 0)
			return cli_usage_error(CMD, "--sample needs --truth exact: a truth file describes the "
			                            "whole BASE");
	} else {
		if (npos == 0)
			return cli_usage_error(CMD, "missing the database directory DIR (or --grid)");
		if (npos > 1)
			return cli_usage_error(CMD, "unexpected argument '%s'", pos[1]);
		if (g.input || g.sample || metric_s || g.work)
			return cli_usage_error(CMD, "--input, --sample, --metric and --work go with --grid");
	}
	if (!t.queries_path)
		return cli_usage_error(CMD, "missing required option --queries FILE");
	if (t.cache && t.truth_s && strcmp(t.truth_s, "exact") != 0)
		return cli_usage_error(CMD, "--cache-truth caches the exact truth; --truth is a file");
	if (ef_s) {
		if ((rc = parse_list("--ef", ef_s, 1, STRATA_EF_MAX, t.efs, &t.nef)) != 0)
			return rc;
	} else {
		t.nef = sizeof default_efs / sizeof default_efs[0];
		memcpy(t.efs, default_efs, sizeof default_efs);
	}
	if (clock_s) {
		if (strcmp(clock_s, "cpu") != 0 && strcmp(clock_s, "wall") != 0)
			return cli_usage_error(CMD, "--clock is wall or cpu, not '%s'", clock_s);
		t.cpu_clock = strcmp(clock_s, "cpu") == 0;
	}
	if (target_s) {
		char *end;
		t.target = strtod(target_s, &end);
		if (*end || !(t.target > 0 && t.target <= 1))
			return cli_usage_error(CMD, "--target-recall must be in (0, 1], not '%s'", target_s);
	}
	/* ef below k is raised to k by the search: measure what is searched, once. */
	size_t m = 0;
	for (size_t i = 0; i < t.nef; i++) {
		uint32_t ef = t.efs[i] < t.k ? t.k : t.efs[i];
		if (m == 0 || t.efs[m - 1] != ef)
			t.efs[m++] = ef;
	}
	t.nef = m;

	char err[VECIO_ERR_MAX];
	struct vecio_mat qm = {0};
	if (vecio_load(t.queries_path, VECIO_AUTO, &qm, err, sizeof err) != 0)
		return cli_error(CMD, "%s: %s", t.queries_path, err);
	t.q = qm.data;
	t.dim = qm.dim;
	t.q_rows = qm.rows;
	t.nq = limit && limit < qm.rows ? (size_t)limit : qm.rows;
	int status = grid ? tune_grid(&t, &g) : tune_dir(&t, pos[0]);
	vecio_mat_free(&qm);
	return status;
}
