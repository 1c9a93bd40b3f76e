/*
 * cmd_query.c - `strata query DIR --input QUERIES ...`: search a database and
 * print the neighbours, or, given a ground truth, report recall@k, queries
 * per second and per-query latency. Manual: strata.1, section "query".
 *
 * Measurement rules (the JSON keys are parsed by other programs, so their
 * names and meaning are stable):
 *   - only the strata_search() calls are timed; reading files, the truth and
 *     the recall count are not;
 *   - one query per call unless --batch, so latency is per query; with --batch
 *     one call answers every query, per-query latency cannot be observed and
 *     both latency keys hold the call's time divided by the query count;
 *   - qps = queries / wall time of the search phase (all threads together).
 *
 * `--truth exact` computes the true neighbours by brute force over the
 * database's own stored vectors, read through format/ (manifest, then each
 * segment's node records and ids), with the engine's distance kernels.
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "distance.h"
#include "le.h"
#include "manifest.h"
#include "segment.h"
#include "strata.h"
#include "vecio.h"

#define CMD "query"
#define THREADS_MAX 4096

static const char usage_text[] =
	"usage: strata query DIR --input QUERIES [options]\n"
	"\n"
	"Search the database in DIR (opened read-only) with the vectors in QUERIES\n"
	"(.fvecs, .bvecs or .npy). Without --truth, print one line per query:\n"
	"  q<i>: id:distance id:distance ...\n"
	"With --truth, report recall@k, queries per second and latency instead.\n"
	"\n"
	"options:\n"
	"  --input FILE        the queries (required)\n"
	"  --k N               neighbours per query (default 10)\n"
	"  --ef N              search beam width (default 50; raised to k if smaller)\n"
	"  --threads N         search threads (default 1)\n"
	"  --truth FILE.ivecs  ground truth: row i holds the row numbers of query i's\n"
	"                      nearest base vectors (for databases built without --ids)\n"
	"  --truth exact       compute the truth by brute force over the stored vectors\n"
	"  --batch             one strata_search call for all queries (default: one per query)\n"
	"  --filter-ids FILE   only ids listed in FILE (text, one id per line) may be returned;\n"
	"                      --truth exact then searches the same subset\n"
	"  --limit N           use only the first N queries\n"
	"  --json              print one JSON object: k, ef, queries, recall (with a\n"
	"                      truth), qps, latency_us_mean, latency_us_p99, ...\n"
	"  -h, --help          this text\n";

/* ---- exact neighbours from the segment files ------------------------------------- */

struct bf_seg {
	const uint8_t *map;
	size_t len;
	struct seg_info info;
};

struct bf_db {
	struct mf_manifest mf;
	struct bf_seg *segs;
	uint32_t nseg;
	dist_fn dist;
};

static void bf_close(struct bf_db *b)
{
	for (uint32_t i = 0; i < b->nseg; i++)
		cli_unmap_file(b->segs[i].map, b->segs[i].len);
	free(b->segs);
	mf_free(&b->mf);
	memset(b, 0, sizeof *b);
}

/* Map every segment of the database and check its structure (seg_check). */
static int bf_open(const char *dir, struct bf_db *b)
{
	memset(b, 0, sizeof *b);
	int rc = mf_load(dir, &b->mf);
	if (rc != 0)
		return cli_fail(CMD, "reading the manifest for --truth exact", rc);
	b->segs = calloc(b->mf.segment_count ? b->mf.segment_count : 1, sizeof *b->segs);
	if (!b->segs) {
		mf_free(&b->mf);
		return cli_error(CMD, "out of memory");
	}
	for (uint32_t i = 0; i < b->mf.segment_count; i++) {
		const struct mf_segment *e = &b->mf.segments[i];
		char name[MF_SEGMENT_NAME_LEN + 1], path[4096], err[256];
		mf_segment_name(e->seq, name, sizeof name);
		snprintf(path, sizeof path, "%s/%s", dir, name);
		if (e->tomb_gen != 0) {
			bf_close(b);
			return cli_error(CMD, "%s has deletions; --truth exact cannot read deletion files "
			                      "in this version", name);
		}
		struct bf_seg *s = &b->segs[b->nseg];
		rc = cli_map_file(path, &s->map, &s->len, err, sizeof err);
		if (rc != 0) {
			bf_close(b);
			return cli_error(CMD, "%s: %s", path, err);
		}
		b->nseg++;
		rc = seg_check(s->map, s->len, &s->info);
		if (rc != 0) {
			bf_close(b);
			return cli_fail(CMD, name, rc);
		}
		if (s->info.dim != b->mf.dim || s->info.metric != b->mf.metric) {
			bf_close(b);
			return cli_error(CMD, "%s: dim %u / metric %u differ from the manifest's %u / %u",
			                 name, s->info.dim, s->info.metric, b->mf.dim, b->mf.metric);
		}
	}
	b->dist = dist_for_metric((strata_metric)b->mf.metric);
	if (!b->dist) {
		bf_close(b);
		return cli_error(CMD, "no distance kernel for metric %u", b->mf.metric);
	}
	return 0;
}

struct hit {
	float dist;
	uint64_t id;
};

/* a is worse than b: farther, or as far with a larger id (ties broken by lower id). */
static bool hit_worse(const struct hit *a, const struct hit *b)
{
	return a->dist > b->dist || (a->dist == b->dist && a->id > b->id);
}

/* Max-heap of the k best so far, the worst at the root. */
static void heap_push(struct hit *h, size_t *n, size_t k, struct hit x)
{
	size_t i;
	if (*n < k) {
		i = (*n)++;
		while (i > 0 && hit_worse(&x, &h[(i - 1) / 2])) {
			h[i] = h[(i - 1) / 2];
			i = (i - 1) / 2;
		}
		h[i] = x;
		return;
	}
	if (!hit_worse(&h[0], &x))
		return;
	i = 0;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= *n)
			break;
		if (c + 1 < *n && hit_worse(&h[c + 1], &h[c]))
			c++;
		if (!hit_worse(&h[c], &x))
			break;
		h[i] = h[c];
		i = c;
	}
	h[i] = x;
}

static int hit_cmp(const void *pa, const void *pb)
{
	const struct hit *a = pa, *b = pb;
	return hit_worse(a, b) ? 1 : hit_worse(b, a) ? -1 : 0;
}

struct bf_job {
	const struct bf_db *db;
	const float *queries;
	size_t nq;
	uint32_t dim;
	uint32_t k;
	uint64_t *truth; /* nq * k ids, STRATA_NO_ID where fewer exist */
	const uint64_t *allow; /* sorted allow-list (--filter-ids), or NULL */
	size_t n_allow;
	_Atomic size_t next;
	bool failed;
};

static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

static void *bf_worker(void *arg)
{
	struct bf_job *j = arg;
	struct hit *heap = malloc((size_t)j->k * sizeof *heap);
	float *q = malloc((size_t)j->dim * sizeof *q);
	if (!heap || !q) {
		j->failed = true;
		free(heap);
		free(q);
		return NULL;
	}
	bool cosine = j->db->mf.metric == STRATA_METRIC_COSINE;
	for (;;) {
		size_t qi = atomic_fetch_add(&j->next, 1);
		if (qi >= j->nq)
			break;
		memcpy(q, j->queries + qi * j->dim, (size_t)j->dim * sizeof *q);
		if (cosine) /* stored vectors are normalised on write; the query must be too */
			dist_normalize(q, j->dim);
		size_t n = 0;
		for (uint32_t s = 0; s < j->db->nseg; s++) {
			const struct seg_info *in = &j->db->segs[s].info;
			for (uint64_t i = 0; i < in->count; i++) {
				const float *v = (const float *)(const void *)(in->nodes + i * in->stride);
				uint64_t id = le_load64(in->ids + i * 8);
				if (j->allow && !bsearch(&id, j->allow, j->n_allow, sizeof id, u64_cmp))
					continue;
				struct hit h = {j->db->dist(q, v, j->dim), id};
				heap_push(heap, &n, j->k, h);
			}
		}
		qsort(heap, n, sizeof *heap, hit_cmp);
		uint64_t *out = j->truth + qi * j->k;
		for (size_t i = 0; i < j->k; i++)
			out[i] = i < n ? heap[i].id : STRATA_NO_ID;
	}
	free(heap);
	free(q);
	return NULL;
}

/* Exact k nearest ids of every query, over `threads` threads. */
static int exact_truth(const char *dir, const float *queries, size_t nq, uint32_t dim, uint32_t k,
                       uint32_t threads, const uint64_t *allow, size_t n_allow,
                       uint64_t **truth_out)
{
	struct bf_db b;
	int rc = bf_open(dir, &b);
	if (rc != 0)
		return rc;
	struct bf_job j = {.db = &b, .queries = queries, .nq = nq, .dim = dim, .k = k,
	                   .allow = allow, .n_allow = n_allow};
	j.truth = malloc(nq * k * sizeof *j.truth);
	if (!j.truth) {
		bf_close(&b);
		return cli_error(CMD, "out of memory for the exact truth");
	}
	atomic_init(&j.next, 0);
	if (threads > nq)
		threads = (uint32_t)(nq ? nq : 1);
	pthread_t tid[THREADS_MAX];
	uint32_t started = 0;
	for (uint32_t t = 1; t < threads; t++) {
		if (pthread_create(&tid[started], NULL, bf_worker, &j) != 0)
			break; /* fewer threads only make it slower */
		started++;
	}
	bf_worker(&j);
	for (uint32_t t = 0; t < started; t++)
		pthread_join(tid[t], NULL);
	bf_close(&b);
	if (j.failed) {
		free(j.truth);
		return cli_error(CMD, "out of memory computing the exact truth");
	}
	*truth_out = j.truth;
	return 0;
}

/* ---- timed searches ------------------------------------------------------------------ */

struct search_job {
	strata_db *db;
	const float *queries;
	size_t nq;
	uint32_t dim;
	uint32_t k;
	uint32_t ef;
	const uint64_t *allow; /* sorted allow-list, or NULL */
	size_t n_allow;
	uint64_t *ids;
	float *dists;
	double *lat_us; /* per query */
	_Atomic size_t next;
	_Atomic int rc;
};

static void *search_worker(void *arg)
{
	struct search_job *j = arg;
	strata_search_options so;
	strata_search_options_default(&so);
	so.ef = j->ef;
	so.threads = 1;
	so.allow_ids = j->allow;
	so.allow_count = j->n_allow;
	for (;;) {
		size_t qi = atomic_fetch_add(&j->next, 1);
		if (qi >= j->nq || atomic_load(&j->rc) != 0)
			break;
		double t0 = cli_now();
		int rc = strata_search(j->db, j->queries + qi * j->dim, 1, j->k, &so,
		                       j->ids + qi * j->k, j->dists + qi * j->k);
		j->lat_us[qi] = (cli_now() - t0) * 1e6;
		if (rc != 0) {
			int zero = 0;
			/* Keep the first failure, and its detail: print it from this thread. */
			if (atomic_compare_exchange_strong(&j->rc, &zero, rc))
				cli_fail(CMD, NULL, rc);
			break;
		}
	}
	return NULL;
}

static int dbl_cmp(const void *pa, const void *pb)
{
	double a = *(const double *)pa, b = *(const double *)pb;
	return (a > b) - (a < b);
}

/* ---- the command ------------------------------------------------------------------------- */

struct query_result {
	double wall_s;
	double lat_mean_us;
	double lat_p99_us;
	double recall; /* NAN without a truth */
};

/* Mean recall@k: the share of each query's k true neighbours that were found. */
static double recall_of(const uint64_t *found, size_t nq, uint32_t k, const uint64_t *truth)
{
	double sum = 0;
	for (size_t q = 0; q < nq; q++) {
		size_t hit = 0, want = 0;
		for (uint32_t i = 0; i < k; i++) {
			uint64_t t = truth[q * k + i];
			if (t == STRATA_NO_ID)
				continue;
			want++;
			for (uint32_t j = 0; j < k; j++) {
				if (found[q * k + j] == t) {
					hit++;
					break;
				}
			}
		}
		sum += want ? (double)hit / (double)want : 1.0;
	}
	return nq ? sum / (double)nq : NAN;
}

/* Row numbers of the first k neighbours of each query, from an .ivecs truth. */
static int file_truth(const char *path, size_t nq, uint32_t k, bool limited, uint64_t **truth_out)
{
	char err[VECIO_ERR_MAX];
	struct vecio_imat m;
	if (vecio_ivecs_load(path, &m, err, sizeof err) != 0)
		return cli_error(CMD, "%s: %s", path, err);
	int rc = 0;
	if (m.rows < nq || (!limited && m.rows != nq)) {
		rc = cli_error(CMD, "%s: %zu truth rows for %zu queries", path, m.rows, nq);
	} else if (m.cols < k) {
		rc = cli_error(CMD, "%s: the truth holds %u neighbours per query, fewer than --k %u",
		               path, m.cols, k);
	} else if (!(*truth_out = malloc(nq * k * sizeof **truth_out))) {
		rc = cli_error(CMD, "out of memory");
	} else {
		for (size_t q = 0; q < nq; q++)
			for (uint32_t i = 0; i < k; i++) {
				int32_t t = m.data[q * m.cols + i];
				(*truth_out)[q * k + i] = t < 0 ? STRATA_NO_ID : (uint64_t)t;
			}
	}
	vecio_imat_free(&m);
	return rc;
}

static void print_neighbours(const uint64_t *ids, const float *dists, size_t nq, uint32_t k)
{
	for (size_t q = 0; q < nq; q++) {
		printf("q%zu:", q);
		for (uint32_t i = 0; i < k; i++) {
			if (ids[q * k + i] == STRATA_NO_ID)
				continue;
			printf(" %llu:%.6g", (unsigned long long)ids[q * k + i], dists[q * k + i]);
		}
		putchar('\n');
	}
}

static void print_json(const char *dir, const struct strata_stats *st, size_t nq, uint32_t k,
                       uint32_t ef, uint32_t threads, bool batch, const char *truth,
                       const struct query_result *r, const uint64_t *ids, const float *dists)
{
	struct cli_json j;
	cli_json_init(&j, stdout);
	cli_json_obj_begin(&j, NULL);
	cli_json_str(&j, "dir", dir);
	cli_json_u64(&j, "k", k);
	cli_json_u64(&j, "ef", ef);
	cli_json_u64(&j, "queries", nq);
	cli_json_u64(&j, "threads", threads);
	cli_json_bool(&j, "batch", batch);
	cli_json_str(&j, "metric", cli_metric_name(st->metric));
	cli_json_u64(&j, "dim", st->dim);
	cli_json_u64(&j, "vectors", st->vectors);
	if (truth) {
		cli_json_str(&j, "truth", truth);
		cli_json_f64(&j, "recall", r->recall);
	}
	cli_json_f64(&j, "qps", r->wall_s > 0 ? (double)nq / r->wall_s : NAN);
	cli_json_f64(&j, "latency_us_mean", r->lat_mean_us);
	cli_json_f64(&j, "latency_us_p99", r->lat_p99_us);
	cli_json_f64(&j, "search_seconds", r->wall_s);
	if (!truth) {
		cli_json_arr_begin(&j, "results");
		for (size_t q = 0; q < nq; q++) {
			cli_json_arr_begin(&j, NULL);
			for (uint32_t i = 0; i < k; i++) {
				if (ids[q * k + i] == STRATA_NO_ID)
					continue;
				cli_json_obj_begin(&j, NULL);
				cli_json_u64(&j, "id", ids[q * k + i]);
				cli_json_f64(&j, "dist", dists[q * k + i]);
				cli_json_obj_end(&j);
			}
			cli_json_arr_end(&j);
		}
		cli_json_arr_end(&j);
	}
	cli_json_obj_end(&j);
}

/* Run and time the searches; fills r (not recall). Returns an exit status. */
static int run_searches(strata_db *db, const float *queries, size_t nq, uint32_t dim, uint32_t k,
                        uint32_t ef, uint32_t threads, bool batch, const uint64_t *allow,
                        size_t n_allow, uint64_t *ids, float *dists, struct query_result *r)
{
	if (batch) {
		strata_search_options so;
		strata_search_options_default(&so);
		so.ef = ef;
		so.threads = threads;
		so.allow_ids = allow;
		so.allow_count = n_allow;
		double t0 = cli_now();
		int rc = strata_search(db, queries, nq, k, &so, ids, dists);
		r->wall_s = cli_now() - t0;
		if (rc != 0)
			return cli_fail(CMD, NULL, rc);
		r->lat_mean_us = r->lat_p99_us = r->wall_s * 1e6 / (double)nq;
		return 0;
	}
	struct search_job j = {.db = db, .queries = queries, .nq = nq, .dim = dim, .k = k, .ef = ef,
	                       .allow = allow, .n_allow = n_allow, .ids = ids, .dists = dists};
	atomic_init(&j.next, 0);
	atomic_init(&j.rc, 0);
	j.lat_us = malloc(nq * sizeof *j.lat_us);
	if (!j.lat_us)
		return cli_error(CMD, "out of memory");
	if (threads > nq)
		threads = (uint32_t)nq;
	pthread_t tid[THREADS_MAX];
	uint32_t started = 0;
	double t0 = cli_now();
	for (uint32_t t = 1; t < threads; t++) {
		if (pthread_create(&tid[started], NULL, search_worker, &j) != 0)
			break;
		started++;
	}
	search_worker(&j);
	for (uint32_t t = 0; t < started; t++)
		pthread_join(tid[t], NULL);
	r->wall_s = cli_now() - t0;
	if (atomic_load(&j.rc) != 0) {
		free(j.lat_us);
		return CLI_EXIT_FAIL;
	}
	double sum = 0;
	for (size_t i = 0; i < nq; i++)
		sum += j.lat_us[i];
	qsort(j.lat_us, nq, sizeof *j.lat_us, dbl_cmp);
	size_t p99 = (size_t)ceil(0.99 * (double)nq);
	r->lat_mean_us = sum / (double)nq;
	r->lat_p99_us = j.lat_us[p99 ? p99 - 1 : 0];
	free(j.lat_us);
	return 0;
}

int cmd_query(int argc, char **argv)
{
	const char *input = NULL, *truth_s = NULL, *filter_s = NULL;
	uint32_t k = 10, ef = 50, threads = 1;
	uint64_t limit = 0;
	bool batch = false, json = false, help = false;
	const struct cli_opt opts[] = {
		{"--input", NULL, CLI_OPT_STR, &input, 0, 0},
		{"--k", NULL, CLI_OPT_U32, &k, 1, STRATA_K_MAX},
		{"--ef", NULL, CLI_OPT_U32, &ef, 1, STRATA_EF_MAX},
		{"--threads", NULL, CLI_OPT_U32, &threads, 1, THREADS_MAX},
		{"--truth", NULL, CLI_OPT_STR, &truth_s, 0, 0},
		{"--batch", NULL, CLI_OPT_FLAG, &batch, 0, 0},
		{"--filter-ids", NULL, CLI_OPT_STR, &filter_s, 0, 0},
		{"--limit", NULL, CLI_OPT_U64, &limit, 1, UINT64_MAX},
		{"--json", NULL, CLI_OPT_FLAG, &json, 0, 0},
		{NULL, NULL, CLI_OPT_FLAG, NULL, 0, 0},
	};
	const char *pos[1];
	size_t npos;
	int rc = cli_parse(CMD, argc, argv, opts, pos, 1, &npos, &help);
	if (rc != 0)
		return rc;
	if (help) {
		fputs(usage_text, stdout);
		return CLI_EXIT_OK;
	}
	if (npos == 0)
		return cli_usage_error(CMD, "missing the database directory DIR");
	if (!input)
		return cli_usage_error(CMD, "missing required option --input FILE");
	const char *dir = pos[0];

	strata_db *db = NULL;
	rc = strata_open(dir, NULL, STRATA_READONLY, &db);
	if (rc != 0)
		return cli_fail(CMD, dir, rc);
	struct strata_stats st;
	strata_stats(db, &st);

	char err[VECIO_ERR_MAX];
	struct vecio_mat qm = {0};
	uint64_t *truth = NULL, *ids = NULL, *allow = NULL;
	size_t n_allow = 0;
	float *dists = NULL;
	int status = CLI_EXIT_FAIL;
	if (vecio_load(input, VECIO_AUTO, &qm, err, sizeof err) != 0) {
		cli_error(CMD, "%s: %s", input, err);
		goto out;
	}
	if (qm.dim != st.dim) {
		cli_error(CMD, "%s: queries have dim %u, the database has dim %u", input, qm.dim, st.dim);
		goto out;
	}
	if (filter_s) {
		if (vecio_id_list_load(filter_s, &allow, &n_allow, err, sizeof err) != 0) {
			cli_error(CMD, "%s: %s", filter_s, err);
			goto out;
		}
		if (truth_s && strcmp(truth_s, "exact") != 0)
			fprintf(stderr, "strata query: note: %s was computed without the filter; recall "
			                "against it is not the filtered recall (use --truth exact)\n", truth_s);
	}
	size_t nq = qm.rows;
	if (limit && limit < nq)
		nq = (size_t)limit;
	if (truth_s && strcmp(truth_s, "exact") == 0) {
		if (exact_truth(dir, qm.data, nq, qm.dim, k, threads, allow, filter_s ? n_allow : 0,
		                &truth) != 0)
			goto out;
	} else if (truth_s) {
		if (file_truth(truth_s, nq, k, nq < qm.rows, &truth) != 0)
			goto out;
	}
	ids = malloc(nq * k * sizeof *ids);
	dists = malloc(nq * k * sizeof *dists);
	if (!ids || !dists) {
		cli_error(CMD, "out of memory for %zu x %u results", nq, k);
		goto out;
	}
	struct query_result r = {.recall = NAN};
	/* An empty --filter-ids file passes nothing: a non-NULL list of 0 ids. */
	if ((status = run_searches(db, qm.data, nq, qm.dim, k, ef, threads, batch,
	                           filter_s ? allow : NULL, n_allow, ids, dists, &r)))
		goto out;
	if (truth)
		r.recall = recall_of(ids, nq, k, truth);
	double qps = r.wall_s > 0 ? (double)nq / r.wall_s : 0.0;
	if (json) {
		print_json(dir, &st, nq, k, ef, threads, batch, truth_s, &r, ids, dists);
	} else if (truth) {
		printf("queries %zu, k %u, ef %u, threads %u, %s\n", nq, k, ef, threads,
		       batch ? "one batch call" : "one query per call");
		printf("recall@%u  %.4f  (truth: %s)\n", k, r.recall, truth_s);
		printf("qps        %.0f\n", qps);
		printf("latency    mean %.1f us, p99 %.1f us%s\n", r.lat_mean_us, r.lat_p99_us,
		       batch ? " (batch time / queries)" : "");
	} else {
		print_neighbours(ids, dists, nq, k);
		fprintf(stderr, "%zu queries, k %u, ef %u: %.0f qps, latency mean %.1f us, p99 %.1f us\n",
		        nq, k, ef, qps, r.lat_mean_us, r.lat_p99_us);
	}
	status = CLI_EXIT_OK;
out:
	free(ids);
	free(dists);
	free(truth);
	free(allow);
	vecio_mat_free(&qm);
	strata_close(db);
	return status;
}
