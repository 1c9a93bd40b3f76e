/*
 * db_concurrency_test.c - strata under threads (suite 'concurrency'; the
 * TSan build of tools/scripts/test.sh runs it to find data races).
 *
 *   - Many threads searching one handle at once, each in its own order, with
 *     and without a filter, interleaved with get and stats, get exactly the
 *     answers of the same searches run one by one on one thread (strata.h:
 *     "any number of threads may search one handle at once").
 *   - Batch searches with threads = 0..8 and more threads than queries, and
 *     several such batches at once, give those answers too ("answers do not
 *     depend on sopts->threads").
 *   - Parallel builds (threads 2..4) make graphs that pass the full check
 *     (STRATA_VERIFY runs seg_verify on every edge) with good recall against
 *     brute force; the floor is below what is measured (0.998-0.999 at ef 64).
 *   - Below the API, hnsw_build with 4 threads, then hnsw_search from 8
 *     threads at once on that one graph, each with its own scratch: the same
 *     hits as one thread.
 * Answers are compared bit for bit: ids and distances.
 *
 * A plain program, not a Criterion test: Criterion cannot start under
 * ThreadSanitizer (its inheritable arena fails to map: Criterion issue #274),
 * and this file exists to be run under TSan. Exit 0 = pass, 1 = fail.
 */
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "hnsw.h"
#include "strata.h"

#define N_VEC 3000
#define DIM 16
#define NQ 120
#define K 10
#define N_THREADS 8
#define RECALL_FLOOR 0.95

static int failures;

/* Record a failure and go on: one run reports every broken property. */
static bool check(bool ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool check(bool ok, const char *fmt, ...)
{
	if (ok)
		return true;
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "FAIL: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	failures++;
	return false;
}

static void die(const char *what)
{
	fprintf(stderr, "db_concurrency: %s: %s\n", what, strata_last_error_detail());
	exit(1);
}

/* ---- test data ------------------------------------------------------------------- */

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static float *random_vectors(size_t n, uint64_t seed)
{
	float *v = malloc(n * DIM * sizeof *v);
	if (!v)
		die("malloc");
	for (size_t i = 0; i < n * DIM; i++)
		v[i] = (float)((splitmix(&seed) >> 40) * (1.0 / 16777216.0));
	return v;
}

/* Exact k nearest rows by squared l2, in double, ties to the lower row. */
static void brute_force(const float *v, const float *q, uint32_t *out)
{
	double *d = malloc(N_VEC * sizeof *d);
	if (!d)
		die("malloc");
	for (size_t qi = 0; qi < NQ; qi++) {
		for (size_t i = 0; i < N_VEC; i++) {
			double s = 0;
			for (size_t j = 0; j < DIM; j++) {
				double t = (double)q[qi * DIM + j] - v[i * DIM + j];
				s += t * t;
			}
			d[i] = s;
		}
		for (size_t r = 0; r < K; r++) { /* K passes of selection: K is small */
			size_t best = SIZE_MAX;
			for (size_t i = 0; i < N_VEC; i++) {
				bool taken = false;
				for (size_t p = 0; p < r; p++)
					taken |= out[qi * K + p] == i;
				if (!taken && (best == SIZE_MAX || d[i] < d[best]))
					best = i;
			}
			out[qi * K + r] = (uint32_t)best;
		}
	}
	free(d);
}

static double recall(const uint64_t *found, const uint32_t *truth)
{
	size_t hit = 0;
	for (size_t qi = 0; qi < NQ; qi++)
		for (size_t i = 0; i < K; i++)
			for (size_t j = 0; j < K; j++)
				hit += found[qi * K + i] == truth[qi * K + j];
	return (double)hit / (NQ * K);
}

static char tmp_root[512];

static void tmp_dir(char *out, size_t len, const char *name)
{
	if (!tmp_root[0]) {
		const char *base = getenv("STRATA_TEST_TMP");
		if (!base || !*base)
			base = "/tmp";
		mkdir(base, 0755);
		snprintf(tmp_root, sizeof tmp_root, "%s/strata-conc-XXXXXX", base);
		if (!mkdtemp(tmp_root)) {
			perror(tmp_root);
			exit(1);
		}
	}
	snprintf(out, len, "%s/%s", tmp_root, name);
}

static void rm_db(const char *dir)
{
	char cmd[1200];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "warning: could not remove %s\n", dir);
}

static strata_options opts(uint32_t threads)
{
	strata_options o;
	strata_options_default(&o);
	o.dim = DIM;
	o.M = 12;
	o.ef_construction = 100;
	o.threads = threads;
	return o;
}

/* ---- the shared handle ---------------------------------------------------------- */

static bool filter_fn(uint64_t id, void *ctx)
{
	(void)ctx;
	return id % 3 != 0;
}

struct fixture {
	char dir[700];
	float *v;
	float *q;
	strata_db *db;
	uint64_t ref_ids[NQ * K]; /* one query per call, one thread */
	float ref_d[NQ * K];
	uint64_t fref_ids[NQ * K]; /* the same with the filter */
	float fref_d[NQ * K];
};

static void one_by_one(struct fixture *f, bool filtered, uint64_t *ids, float *d)
{
	strata_search_options so;
	strata_search_options_default(&so);
	if (filtered)
		so.filter = filter_fn;
	for (size_t i = 0; i < NQ; i++)
		if (strata_search(f->db, f->q + i * DIM, 1, K, &so, ids + i * K, d + i * K) != 0)
			die("reference search");
}

static void fixture_init(struct fixture *f)
{
	tmp_dir(f->dir, sizeof f->dir, "db");
	f->v = random_vectors(N_VEC, 42);
	f->q = random_vectors(NQ, 99);
	/* Stored vectors, moved a little: near neighbours exist, answers are not trivial. */
	for (size_t i = 0; i < NQ; i++)
		for (size_t j = 0; j < DIM; j++)
			f->q[i * DIM + j] = f->v[(i * 17 % N_VEC) * DIM + j] + 0.05f * (f->q[i * DIM + j] - 0.5f);
	strata_options o = opts(1);
	if (strata_build(f->dir, &o, NULL, f->v, N_VEC) != 0)
		die("build");
	if (strata_open(f->dir, NULL, STRATA_READONLY, &f->db) != 0)
		die("open");
	one_by_one(f, false, f->ref_ids, f->ref_d);
	one_by_one(f, true, f->fref_ids, f->fref_d);
}

static void fixture_fini(struct fixture *f)
{
	strata_close(f->db);
	rm_db(f->dir);
	free(f->v);
	free(f->q);
}

struct searcher {
	struct fixture *f;
	int idx;
	atomic_int *go;
	int mismatches;
	int errors;
	char first[256];
};

static void *searcher_main(void *arg)
{
	struct searcher *s = arg;
	struct fixture *f = s->f;
	bool filtered = s->idx % 2 == 1;
	strata_search_options so;
	strata_search_options_default(&so);
	if (filtered)
		so.filter = filter_fn;
	while (!atomic_load(s->go)) /* start together: the most overlap */
		;
	for (int round = 0; round < 3; round++) {
		for (size_t j = 0; j < NQ; j++) {
			size_t i = (j * (size_t)(2 * s->idx + 1) + (size_t)s->idx * 7) % NQ; /* own order */
			uint64_t ids[K];
			float d[K], got[DIM];
			if (strata_search(f->db, f->q + i * DIM, 1, K, &so, ids, d) != 0) {
				if (!s->errors++)
					snprintf(s->first, sizeof s->first, "query %zu: %s", i,
					         strata_last_error_detail());
				continue;
			}
			const uint64_t *want_ids = (filtered ? f->fref_ids : f->ref_ids) + i * K;
			const float *want_d = (filtered ? f->fref_d : f->ref_d) + i * K;
			if ((memcmp(ids, want_ids, sizeof ids) || memcmp(d, want_d, sizeof d)) &&
			    !s->mismatches++)
				snprintf(s->first, sizeof s->first, "query %zu: first id %llu, want %llu", i,
				         (unsigned long long)ids[0], (unsigned long long)want_ids[0]);
			/* Readers of other kinds on the same handle meanwhile. */
			if (strata_get(f->db, ids[0], got) != 0 && !s->errors++)
				snprintf(s->first, sizeof s->first, "get %llu: %s", (unsigned long long)ids[0],
				         strata_last_error_detail());
			struct strata_stats st;
			if (strata_stats(f->db, &st) != 0 && !s->errors++)
				snprintf(s->first, sizeof s->first, "stats failed");
		}
	}
	return NULL;
}

static void threads_searching_one_handle(struct fixture *f)
{
	struct strata_stats before, after;
	strata_stats(f->db, &before);
	pthread_t t[N_THREADS];
	struct searcher s[N_THREADS];
	atomic_int go = 0;
	for (int i = 0; i < N_THREADS; i++) {
		s[i] = (struct searcher){.f = f, .idx = i, .go = &go};
		if (pthread_create(&t[i], NULL, searcher_main, &s[i]) != 0)
			die("pthread_create");
	}
	atomic_store(&go, 1);
	for (int i = 0; i < N_THREADS; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < N_THREADS; i++) {
		check(s[i].errors == 0, "searchers: thread %d: %d errors, first: %s", i, s[i].errors,
		      s[i].first);
		check(s[i].mismatches == 0, "searchers: thread %d: %d answers differ from one thread, "
		      "first: %s", i, s[i].mismatches, s[i].first);
	}
	/* The counters are atomics: none of the searches may be lost. */
	strata_stats(f->db, &after);
	check(after.searches - before.searches == (uint64_t)N_THREADS * 3 * NQ,
	      "searchers: stats count %llu searches, %d were made",
	      (unsigned long long)(after.searches - before.searches), N_THREADS * 3 * NQ);
}

static bool batch_equals_reference(struct fixture *f, uint32_t threads, bool filtered)
{
	uint64_t ids[NQ * K];
	float d[NQ * K];
	strata_search_options so;
	strata_search_options_default(&so);
	so.threads = threads;
	if (filtered)
		so.filter = filter_fn;
	if (!check(strata_search(f->db, f->q, NQ, K, &so, ids, d) == 0, "batch threads %u: %s",
	           threads, strata_last_error_detail()))
		return false;
	return check(memcmp(ids, filtered ? f->fref_ids : f->ref_ids, sizeof ids) == 0 &&
	                 memcmp(d, filtered ? f->fref_d : f->ref_d, sizeof d) == 0,
	             "batch threads %u%s: answers differ from one-by-one searches", threads,
	             filtered ? " (filtered)" : "");
}

static void batches_with_threads(struct fixture *f)
{
	const uint32_t counts[] = {0, 1, 2, 3, 4, 8, NQ + 5};
	for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
		batch_equals_reference(f, counts[i], false);
		batch_equals_reference(f, counts[i], true);
	}
}

struct batcher {
	struct fixture *f;
	uint32_t threads;
	bool filtered;
};

static void *batcher_main(void *arg)
{
	struct batcher *b = arg;
	for (int r = 0; r < 3; r++)
		batch_equals_reference(b->f, b->threads, b->filtered);
	return NULL;
}

static void concurrent_batches(struct fixture *f)
{
	pthread_t t[4];
	struct batcher b[4];
	for (int i = 0; i < 4; i++) {
		b[i] = (struct batcher){.f = f, .threads = 2 + (uint32_t)i % 3, .filtered = i % 2};
		if (pthread_create(&t[i], NULL, batcher_main, &b[i]) != 0)
			die("pthread_create");
	}
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
}

/* ---- parallel builds ---------------------------------------------------------------- */

static void parallel_builds(const float *v, const float *q)
{
	uint32_t truth[NQ * K];
	brute_force(v, q, truth);
	for (uint32_t threads = 2; threads <= 4; threads++) {
		char dir[700], name[32];
		snprintf(name, sizeof name, "build-%u", threads);
		tmp_dir(dir, sizeof dir, name);
		strata_options o = opts(threads);
		if (!check(strata_build(dir, &o, NULL, v, N_VEC) == 0, "build threads %u: %s", threads,
		           strata_last_error_detail()))
			continue;
		strata_db *db;
		/* STRATA_VERIFY: every checksum, every edge, the upper index, ids (seg_verify). */
		if (!check(strata_open(dir, NULL, STRATA_READONLY | STRATA_VERIFY, &db) == 0,
		           "build threads %u: the graph fails verification: %s", threads,
		           strata_last_error_detail()))
			continue;
		uint64_t ids[NQ * K];
		strata_search_options so;
		strata_search_options_default(&so);
		so.ef = 64;
		check(strata_search(db, q, NQ, K, &so, ids, NULL) == 0, "search: %s",
		      strata_last_error_detail());
		double r = recall(ids, truth);
		printf("build with %u threads: recall@%d %.4f at ef 64\n", threads, K, r);
		check(r >= RECALL_FLOOR, "build threads %u: recall@%d %.4f below %.2f", threads, K, r,
		      RECALL_FLOOR);
		strata_close(db);
		rm_db(dir);
	}
}

/* ---- hnsw below the API ------------------------------------------------------------- */

struct graph_searcher {
	const struct hnsw_view *view;
	const float *q;
	const struct hnsw_hit *ref;
	const uint32_t *ref_n;
	int mismatches;
};

static void *graph_searcher_main(void *arg)
{
	struct graph_searcher *g = arg;
	struct hnsw_scratch *s = hnsw_scratch_new();
	if (!s)
		return NULL;
	for (size_t i = 0; i < NQ; i++) {
		struct hnsw_hit hits[K];
		uint32_t n = 0;
		uint64_t evals = 0;
		int rc = hnsw_search(g->view, g->q + i * DIM, K, 50, NULL, NULL, s, hits, &n, &evals);
		if (rc || n != g->ref_n[i] || memcmp(hits, g->ref + i * K, n * sizeof *hits))
			g->mismatches++;
	}
	hnsw_scratch_free(s);
	return NULL;
}

static void hnsw_threads(const float *v, const float *q)
{
	struct hnsw_build_params p = {
		.dim = DIM, .metric = STRATA_METRIC_L2, .M = 12, .ef_construction = 100,
		.threads = 4, .seed = 100,
	};
	struct hnsw_graph *g;
	if (!check(hnsw_build(&p, v, N_VEC, &g) == 0, "hnsw_build with 4 threads"))
		return;
	struct hnsw_view view;
	hnsw_graph_view(g, &view);
	static struct hnsw_hit ref[NQ * K];
	static uint32_t ref_n[NQ];
	struct hnsw_scratch *s = hnsw_scratch_new();
	for (size_t i = 0; s && i < NQ; i++) {
		uint64_t evals = 0;
		check(hnsw_search(&view, q + i * DIM, K, 50, NULL, NULL, s, ref + i * K, &ref_n[i],
		                  &evals) == 0, "hnsw_search query %zu", i);
		check(ref_n[i] == K, "hnsw_search query %zu: %u hits", i, ref_n[i]);
	}
	hnsw_scratch_free(s);
	pthread_t t[N_THREADS];
	struct graph_searcher gs[N_THREADS];
	for (int i = 0; i < N_THREADS; i++) {
		gs[i] = (struct graph_searcher){.view = &view, .q = q, .ref = ref, .ref_n = ref_n};
		if (pthread_create(&t[i], NULL, graph_searcher_main, &gs[i]) != 0)
			die("pthread_create");
	}
	for (int i = 0; i < N_THREADS; i++) {
		pthread_join(t[i], NULL);
		check(gs[i].mismatches == 0, "hnsw_search from thread %d: %d answers differ", i,
		      gs[i].mismatches);
	}
	hnsw_graph_free(g);
}

int main(void)
{
	struct fixture *f = calloc(1, sizeof *f);
	if (!f)
		die("calloc");
	fixture_init(f);
	threads_searching_one_handle(f);
	batches_with_threads(f);
	concurrent_batches(f);
	float *q = random_vectors(NQ, 7);
	parallel_builds(f->v, q);
	hnsw_threads(f->v, q);
	free(q);
	fixture_fini(f);
	rm_db(tmp_root);
	printf("db_concurrency: %s (%d failures)\n", failures ? "FAIL" : "ok", failures);
	free(f);
	return failures ? 1 : 0;
}
