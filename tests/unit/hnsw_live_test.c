/*
 * hnsw_live_test.c - searches through hnsw_graph_view_live while one thread
 * appends rows and another indexes them (2 workers), as the memtable does.
 * A plain program, not Criterion, so that it runs under ThreadSanitizer
 * (suite 'concurrency': tools/scripts/test.sh builds it with
 * -Db_sanitize=thread); any data race fails the run there.
 *
 * Checked on every search: return code 0, hits sorted and inside the view,
 * each hit's distance the true distance of its row; at the end, recall@10 of
 * the live view equals that of the quiescent graph, and every row is indexed.
 * STRATA_LONG=1 runs ten times longer.
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "hnsw.h"

#define DIM 16
#define K 10
#define SEARCHERS 2

static int failures;

static void check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "FAIL: %s (%s)\n", what, err_detail());
		failures++;
	}
}

static float *random_vectors(size_t n, uint64_t seed)
{
	float *v = malloc(n * DIM * sizeof *v);
	if (!v)
		abort();
	for (size_t i = 0; i < n * DIM; i++) {
		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		v[i] = (float)(seed >> 40) / (float)(1 << 24);
	}
	return v;
}

struct shared {
	struct hnsw_graph *g;
	const float *x;
	size_t n;
	const float *q;
	size_t nq;
	atomic_int stop;
};

struct searcher {
	struct shared *sh;
	unsigned long searches;
	int bad;
};

static void *appender_main(void *arg)
{
	struct shared *sh = arg;
	for (size_t r = 0; r < sh->n; r++) {
		uint32_t row;
		if (hnsw_graph_append(sh->g, sh->x + r * DIM, &row) != 0 || row != r) {
			fprintf(stderr, "FAIL: append of row %zu\n", r);
			abort();
		}
	}
	return NULL;
}

static void *indexer_main(void *arg)
{
	struct shared *sh = arg;
	for (;;) {
		size_t upto = hnsw_graph_appended(sh->g);
		if (hnsw_graph_index(sh->g, upto) != 0) {
			fprintf(stderr, "FAIL: index to %zu: %s\n", upto, err_detail());
			abort();
		}
		if (upto == sh->n)
			break;
	}
	return NULL;
}

static void *searcher_main(void *arg)
{
	struct searcher *s = arg;
	struct shared *sh = s->sh;
	struct hnsw_scratch *sc = hnsw_scratch_new();
	if (!sc)
		abort();
	for (size_t i = 0; !atomic_load(&sh->stop); i = (i + 1) % sh->nq) {
		/* Rows below `indexed` were whole before the view was taken. */
		size_t indexed = hnsw_graph_indexed(sh->g);
		struct hnsw_view v;
		hnsw_graph_view_live(sh->g, &v);
		struct hnsw_hit hits[K], tail[K];
		uint32_t n = 0, nt = 0;
		uint64_t evals = 0;
		const float *q = sh->q + i * DIM;
		int rc = hnsw_search(&v, q, K, 32, NULL, NULL, sc, hits, &n, &evals);
		if (rc != 0) {
			fprintf(stderr, "search: %d %s\n", rc, err_detail());
			s->bad++;
			continue;
		}
		/* The unindexed tail, as the memtable scans it. */
		if (indexed < v.count) {
			uint32_t nodes[64];
			size_t m = v.count - indexed < 64 ? v.count - indexed : 64;
			for (size_t j = 0; j < m; j++)
				nodes[j] = (uint32_t)(indexed + j);
			if (hnsw_scan(&v, q, K, nodes, m, NULL, NULL, sc, tail, &nt, &evals) != 0)
				s->bad++;
		}
		for (uint32_t j = 0; j < n; j++) {
			if (hits[j].node >= v.count || (j && hits[j].dist < hits[j - 1].dist)) {
				fprintf(stderr, "hit %u: node %u of %u, unsorted\n", j, hits[j].node, v.count);
				s->bad++;
			} else if (hits[j].dist != v.dist(q, hnsw_vec(&v, hits[j].node), DIM)) {
				fprintf(stderr, "hit %u: node %u: wrong distance\n", j, hits[j].node);
				s->bad++;
			}
		}
		if (indexed >= K && n < K) {
			fprintf(stderr, "only %u hits with %zu rows indexed\n", n, indexed);
			s->bad++;
		} /* at least K rows fully in the graph: a beam of 32 finds K */
		s->searches++;
	}
	hnsw_scratch_free(sc);
	return NULL;
}

static double recall(const struct hnsw_view *v, const float *q, size_t nq)
{
	struct hnsw_scratch *sc = hnsw_scratch_new();
	size_t hit = 0;
	for (size_t i = 0; i < nq; i++) {
		struct hnsw_hit h[K], t[K];
		uint32_t nh = 0, nt = 0;
		uint64_t evals = 0;
		check(hnsw_search(v, q + i * DIM, K, 32, NULL, NULL, sc, h, &nh, &evals) == 0, "search");
		check(hnsw_scan(v, q + i * DIM, K, NULL, 0, NULL, NULL, sc, t, &nt, &evals) == 0, "scan");
		for (uint32_t a = 0; a < nh; a++)
			for (uint32_t b = 0; b < nt; b++)
				hit += h[a].node == t[b].node;
	}
	hnsw_scratch_free(sc);
	return (double)hit / (double)(nq * K);
}

int main(void)
{
	const char *long_mode = getenv("STRATA_LONG");
	size_t n = long_mode && *long_mode == '1' ? 40000 : 4000;
	const size_t nq = 64;
	float *x = random_vectors(n, 1), *q = random_vectors(nq, 2);
	struct hnsw_build_params p = {
		.dim = DIM, .metric = STRATA_METRIC_L2, .M = 8, .ef_construction = 64,
		.threads = 2, .seed = 9,
	};
	struct shared sh = {.x = x, .n = n, .q = q, .nq = nq};
	check(hnsw_graph_new(&p, n, &sh.g) == 0, "hnsw_graph_new");
	if (failures)
		return 1;

	pthread_t ta, ti, ts[SEARCHERS];
	struct searcher s[SEARCHERS];
	for (int i = 0; i < SEARCHERS; i++) {
		s[i] = (struct searcher){.sh = &sh};
		if (pthread_create(&ts[i], NULL, searcher_main, &s[i]) != 0)
			abort();
	}
	if (pthread_create(&ta, NULL, appender_main, &sh) != 0 ||
	    pthread_create(&ti, NULL, indexer_main, &sh) != 0)
		abort();
	pthread_join(ta, NULL);
	pthread_join(ti, NULL);
	atomic_store(&sh.stop, 1);
	unsigned long total = 0;
	for (int i = 0; i < SEARCHERS; i++) {
		pthread_join(ts[i], NULL);
		check(s[i].bad == 0, "searcher saw a bad answer");
		total += s[i].searches;
	}
	check(hnsw_graph_indexed(sh.g) == n, "every row indexed");

	struct hnsw_view live, plain;
	hnsw_graph_view_live(sh.g, &live);
	hnsw_graph_view(sh.g, &plain);
	double rl = recall(&live, q, nq), rp = recall(&plain, q, nq);
	check(rl == rp, "live and plain views answer alike once quiet");
	check(rp >= 0.9, "recall@10 of the grown graph at ef 32");
	printf("%zu rows appended and indexed under %lu concurrent searches; recall@10 %.4f\n", n,
	       total, rp);
	hnsw_graph_free(sh.g);
	free(x), free(q);
	return failures ? 1 : 0;
}
