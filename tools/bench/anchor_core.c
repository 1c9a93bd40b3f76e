/*
 * anchor_core.c - see anchor_core.h. Everything is in memory: graphs built by
 * hnsw_build, searched by hnsw_search_bounded exactly as a segment and a
 * memtable are (the memtable's graph here is a built one, not the live
 * incremental one, which walks the same way).
 */
#include "anchor_core.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hnsw.h"

/* Anchoring: the nearest segment node of a memtable row, from a walk at this ef. */
#define ANCHOR_EF 8u
#define K 10u

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int fail(char *err, size_t len, const char *f, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t len, const char *f, ...)
{
	va_list ap;
	va_start(ap, f);
	vsnprintf(err, len, f, ap);
	va_end(ap);
	return -1;
}

/* A query's k best (distance, row) so far, distinct rows, closest first. */
struct best {
	float dist[K];
	uint64_t row[K];
	uint32_t n;
};

static void best_add(struct best *b, float d, uint64_t row)
{
	if (b->n == K && !(d < b->dist[K - 1]))
		return;
	uint32_t i = b->n < K ? b->n++ : K - 1;
	for (; i > 0 && b->dist[i - 1] > d; i--) {
		b->dist[i] = b->dist[i - 1];
		b->row[i] = b->row[i - 1];
	}
	b->dist[i] = d;
	b->row[i] = row;
}

static double hits_of(const struct best *b, const uint64_t *truth)
{
	uint32_t h = 0;
	for (uint32_t i = 0; i < b->n; i++)
		for (uint32_t j = 0; j < K; j++)
			h += b->row[i] == truth[j];
	return (double)h / K;
}

/* What one search needs: the graphs, their node -> row maps and the anchors. */
struct setup {
	struct hnsw_view all, seg, mt;
	uint32_t *row_all, *row_seg, *row_mt; /* node -> row of `base` */
	uint32_t *leaf_start;                 /* [seg count + 1]: CSR of memtable nodes per segment node */
	uint32_t *leaf;
	uint32_t *seen;                       /* per memtable node: the query's epoch when evaluated */
	uint32_t epoch;
	struct hnsw_scratch *s;
	struct hnsw_hit *hits;                /* room for the largest ef */
};

enum way { WAY_COMPACTED, WAY_WRITTEN, WAY_ANCHORED };

static int search_way(struct setup *st, enum way w, const float *q, uint32_t ef, struct best *b,
                      uint64_t *evals)
{
	uint32_t n = 0;
	b->n = 0;
	if (w == WAY_COMPACTED) {
		if (hnsw_search_bounded(&st->all, q, K, ef, INFINITY, NULL, st->s, st->hits, &n, evals))
			return -1;
		for (uint32_t i = 0; i < n; i++)
			best_add(b, st->hits[i].dist, st->row_all[st->hits[i].node]);
		return 0;
	}
	/* Anchored: the segment's ef best, whose leaves are evaluated; else its k best. */
	uint32_t want = w == WAY_ANCHORED ? ef : K;
	if (hnsw_search_bounded(&st->seg, q, want, ef, INFINITY, NULL, st->s, st->hits, &n, evals))
		return -1;
	for (uint32_t i = 0; i < n && i < K; i++)
		best_add(b, st->hits[i].dist, st->row_seg[st->hits[i].node]);
	if (w == WAY_WRITTEN) {
		float limit = b->n == K ? b->dist[K - 1] : INFINITY;
		if (hnsw_search_bounded(&st->mt, q, K, ef, limit, NULL, st->s, st->hits, &n, evals))
			return -1;
		for (uint32_t i = 0; i < n; i++)
			best_add(b, st->hits[i].dist, st->row_mt[st->hits[i].node]);
		return 0;
	}
	uint32_t epoch = ++st->epoch;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t node = st->hits[i].node;
		for (uint32_t z = st->leaf_start[node]; z < st->leaf_start[node + 1]; z++) {
			uint32_t m = st->leaf[z];
			if (st->seen[m] == epoch)
				continue;
			st->seen[m] = epoch;
			float d = hnsw_dist_ordered(st->mt.dist(q, hnsw_vec(&st->mt, m), st->mt.dim));
			(*evals)++;
			best_add(b, d, st->row_mt[m]);
		}
	}
	return 0;
}

static int build(const struct hnsw_build_params *p, const float *v, size_t n, uint32_t row0,
                 struct hnsw_graph **g, struct hnsw_view *view, uint32_t **rows, double *secs)
{
	double t0 = now_s();
	if (hnsw_build(p, v, n, g))
		return -1;
	*secs = now_s() - t0;
	hnsw_graph_view(*g, view);
	if (!(*rows = malloc(n * sizeof **rows)))
		return -1;
	for (size_t r = 0; r < n; r++)
		(*rows)[hnsw_graph_node_of_row(*g, r)] = row0 + (uint32_t)r;
	return 0;
}

/* Each memtable node hung under its nearest segment node: a CSR by segment node. */
static int anchor_all(struct setup *st, struct anchor_costs *c)
{
	uint32_t ns = st->seg.count, nm = st->mt.count;
	uint32_t *to = malloc((size_t)nm * sizeof *to);
	st->leaf_start = calloc((size_t)ns + 1, sizeof *st->leaf_start);
	st->leaf = malloc((size_t)nm * sizeof *st->leaf);
	st->seen = calloc(nm, sizeof *st->seen);
	if (!to || !st->leaf_start || !st->leaf || !st->seen) {
		free(to);
		return -1;
	}
	uint64_t evals = 0;
	double t0 = now_s();
	for (uint32_t m = 0; m < nm; m++) {
		uint32_t n = 0;
		if (hnsw_search_bounded(&st->seg, hnsw_vec(&st->mt, m), 1, ANCHOR_EF, INFINITY, NULL,
		                        st->s, st->hits, &n, &evals) ||
		    n != 1) {
			free(to);
			return -1;
		}
		to[m] = st->hits[0].node;
		st->leaf_start[to[m] + 1]++;
	}
	c->anchor_s = now_s() - t0;
	c->anchor_evals_per_row = (double)evals / nm;
	for (uint32_t i = 0; i < ns; i++)
		st->leaf_start[i + 1] += st->leaf_start[i];
	uint32_t *fill = calloc(ns, sizeof *fill);
	if (!fill) {
		free(to);
		return -1;
	}
	for (uint32_t m = 0; m < nm; m++)
		st->leaf[st->leaf_start[to[m]] + fill[to[m]]++] = m;
	free(fill);
	free(to);
	return 0;
}

static int measure(struct setup *st, enum way w, const float *queries, size_t nq, uint32_t dim,
                   const uint64_t *truth, uint32_t ef, double secs, struct anchor_point *out)
{
	struct best b;
	uint64_t evals = 0;
	double hits = 0;
	for (size_t i = 0; i < nq; i++) {
		if (search_way(st, w, queries + i * dim, ef, &b, &evals))
			return -1;
		hits += hits_of(&b, truth + i * K);
	}
	out->evals = (double)evals / (double)nq;
	out->recall = hits / (double)nq;
	size_t done = 0;
	double t0 = now_s(), el;
	do {
		for (size_t i = 0; i < nq; i++)
			if (search_way(st, w, queries + i * dim, ef, &b, &evals))
				return -1;
		done += nq;
		el = now_s() - t0;
	} while (el < secs);
	out->qps = (double)done / el;
	return 0;
}

int anchor_measure(const float *base, size_t n_seg, size_t n_mt, uint32_t dim, const float *queries,
                   size_t nq, const uint64_t *truth, const uint32_t *efs, size_t n_ef,
                   uint32_t threads, double secs, struct anchor_point *out,
                   struct anchor_costs *costs, char *err, size_t err_len)
{
	struct hnsw_build_params p = {.dim = dim, .metric = STRATA_METRIC_L2, .M = 16,
	                              .ef_construction = 200, .threads = threads, .seed = 100};
	struct setup st = {0};
	struct hnsw_graph *g_all = NULL, *g_seg = NULL, *g_mt = NULL;
	uint32_t ef_max = ANCHOR_EF;
	for (size_t i = 0; i < n_ef; i++)
		ef_max = efs[i] > ef_max ? efs[i] : ef_max;
	int rc = -1;
	memset(costs, 0, sizeof *costs);
	if (n_seg == 0 || n_mt == 0 || n_seg + n_mt > UINT32_MAX) {
		rc = fail(err, err_len, "need rows in both parts (%zu + %zu)", n_seg, n_mt);
		goto out;
	}
	if (!(st.s = hnsw_scratch_new()) || !(st.hits = malloc(ef_max * sizeof *st.hits))) {
		rc = fail(err, err_len, "out of memory");
		goto out;
	}
	if (build(&p, base, n_seg, 0, &g_seg, &st.seg, &st.row_seg, &costs->build_segment_s) ||
	    build(&p, base + n_seg * dim, n_mt, (uint32_t)n_seg, &g_mt, &st.mt, &st.row_mt,
	          &costs->build_memtable_s) ||
	    build(&p, base, n_seg + n_mt, 0, &g_all, &st.all, &st.row_all, &costs->build_all_s)) {
		rc = fail(err, err_len, "building the graphs failed (out of memory?)");
		goto out;
	}
	if (anchor_all(&st, costs)) {
		rc = fail(err, err_len, "anchoring the memtable rows failed");
		goto out;
	}
	for (size_t i = 0; i < n_ef; i++)
		for (int w = WAY_COMPACTED; w <= WAY_ANCHORED; w++)
			if (measure(&st, (enum way)w, queries, nq, dim, truth, efs[i], secs, &out[3 * i + w])) {
				rc = fail(err, err_len, "a search failed at ef %u", efs[i]);
				goto out;
			}
	/* Leaves per query at the largest ef: the anchored walk's evaluations past the segment's. */
	costs->leaves_per_query = out[3 * (n_ef - 1) + WAY_ANCHORED].evals;
	{
		uint64_t seg_evals = 0;
		for (size_t i = 0; i < nq; i++) {
			uint32_t n = 0;
			if (hnsw_search_bounded(&st.seg, queries + i * dim, efs[n_ef - 1], efs[n_ef - 1],
			                        INFINITY, NULL, st.s, st.hits, &n, &seg_evals)) {
				rc = fail(err, err_len, "a search failed");
				goto out;
			}
		}
		costs->leaves_per_query -= (double)seg_evals / (double)nq;
	}
	rc = 0;
out:
	hnsw_graph_free(g_all);
	hnsw_graph_free(g_seg);
	hnsw_graph_free(g_mt);
	hnsw_scratch_free(st.s);
	free(st.hits);
	free(st.row_all);
	free(st.row_seg);
	free(st.row_mt);
	free(st.leaf_start);
	free(st.leaf);
	free(st.seen);
	return rc;
}
