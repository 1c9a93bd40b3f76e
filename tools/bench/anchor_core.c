/*
 * anchor_core.c - see anchor_core.h. The segment and the compacted graph are
 * built by hnsw_build and searched as segments are; the memtable is the
 * engine's own (engine/memtable.h): rows applied, indexed by mt_index and
 * hung by mt_anchor, searched by mt_search (walk) or mt_search_anchored.
 */
#include "anchor_core.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hnsw.h"
#include "memtable.h"

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

struct setup {
	struct hnsw_view all, seg;
	uint32_t *row_all, *row_seg; /* node -> row of `base` */
	struct memtable *mt;         /* row r = base row n_seg + r (its id) */
	const struct mt_anchors *anchors;
	struct hnsw_trace trace;
	struct mt_seen seen;
	struct hnsw_scratch *s;
	struct hnsw_hit hits[K];
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
	uint32_t want = ef > MT_ANCHOR_TRACE_MIN ? ef : MT_ANCHOR_TRACE_MIN;
	int rc = w == WAY_ANCHORED ? hnsw_search_traced(&st->seg, q, K, ef, want, NULL, st->s,
	                                                  &st->trace, st->hits, &n, evals)
	                           : hnsw_search_bounded(&st->seg, q, K, ef, INFINITY, NULL, st->s,
	                                                 st->hits, &n, evals);
	if (rc)
		return -1;
	for (uint32_t i = 0; i < n; i++)
		best_add(b, st->hits[i].dist, st->row_seg[st->hits[i].node]);
	bool used = false;
	if (w == WAY_ANCHORED &&
	    (mt_search_anchored(st->mt, st->anchors, q, K, st->trace.best.a, st->trace.best.n, SIZE_MAX,
	                        &st->seen, st->hits, &n, evals, &used) ||
	     !used))
		return -1;
	if (w == WAY_WRITTEN &&
	    mt_search(st->mt, q, K, ef, b->n == K ? b->dist[K - 1] : INFINITY, NULL, NULL, NULL, 0,
	              false, st->s, st->hits, &n, evals))
		return -1;
	for (uint32_t i = 0; i < n; i++)
		best_add(b, st->hits[i].dist, st->mt->ids[st->hits[i].node]);
	return 0;
}

static int build(const struct hnsw_build_params *p, const float *v, size_t n,
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
		(*rows)[hnsw_graph_node_of_row(*g, r)] = (uint32_t)r;
	return 0;
}

/* The engine's memtable over rows [n_seg, n_seg + n_mt): applied, indexed, then hung. */
static int fill_memtable(struct setup *st, const struct hnsw_build_params *p, const float *v,
                         size_t n_seg, size_t n_mt, struct anchor_costs *c)
{
	uint64_t *ids = malloc(n_mt * sizeof *ids);
	if (!ids || mt_new(p, n_mt, &st->mt) || mt_reserve(st->mt, n_mt, n_mt)) {
		free(ids);
		return -1;
	}
	for (size_t i = 0; i < n_mt; i++)
		ids[i] = n_seg + i;
	mt_apply_upsert(st->mt, 1, ids, v, n_mt, NULL);
	free(ids);
	double t0 = now_s();
	if (mt_index(st->mt, 0))
		return -1;
	c->build_memtable_s = now_s() - t0;
	t0 = now_s();
	bool progress = false;
	if (mt_anchor(st->mt, 1, &st->seg, NULL, st->s, 0, &progress) || !progress)
		return -1;
	c->anchor_s = now_s() - t0;
	st->anchors = mt_anchors_for(st->mt, 1);
	return st->anchors && atomic_load(&st->anchors->anchored) == n_mt ? 0 : -1;
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
	struct hnsw_graph *g_all = NULL, *g_seg = NULL;
	int rc = -1;
	memset(costs, 0, sizeof *costs);
	if (n_seg == 0 || n_mt == 0 || n_seg + n_mt > UINT32_MAX) {
		rc = fail(err, err_len, "need rows in both parts (%zu + %zu)", n_seg, n_mt);
		goto out;
	}
	if (!(st.s = hnsw_scratch_new())) {
		rc = fail(err, err_len, "out of memory");
		goto out;
	}
	if (build(&p, base, n_seg, &g_seg, &st.seg, &st.row_seg, &costs->build_segment_s) ||
	    build(&p, base, n_seg + n_mt, &g_all, &st.all, &st.row_all, &costs->build_all_s)) {
		rc = fail(err, err_len, "building the graphs failed (out of memory?)");
		goto out;
	}
	if (fill_memtable(&st, &p, base + n_seg * dim, n_seg, n_mt, costs)) {
		rc = fail(err, err_len, "filling, indexing or anchoring the memtable failed");
		goto out;
	}
	uint64_t leaves = 0;
	for (size_t i = 0; i < n_ef; i++)
		for (int w = WAY_COMPACTED; w <= WAY_ANCHORED; w++) {
			if (measure(&st, (enum way)w, queries, nq, dim, truth, efs[i], secs,
			            &out[3 * i + w])) {
				rc = fail(err, err_len, "a search failed at ef %u", efs[i]);
				goto out;
			}
		}
	/* Rows evaluated under the expanded nodes at the largest ef: anchored minus the segment's walk. */
	for (size_t i = 0; i < nq; i++) {
		uint32_t n = 0;
		if (hnsw_search_traced(&st.seg, queries + i * dim, K, efs[n_ef - 1], efs[n_ef - 1], NULL,
		                       st.s, &st.trace, st.hits, &n, &leaves)) {
			rc = fail(err, err_len, "a search failed");
			goto out;
		}
	}
	costs->leaves_per_query = out[3 * (n_ef - 1) + WAY_ANCHORED].evals - (double)leaves / (double)nq;
	rc = 0;
out:
	mt_unref(st.mt);
	hnsw_graph_free(g_all);
	hnsw_graph_free(g_seg);
	hnsw_trace_free(&st.trace);
	mt_seen_free(&st.seen);
	hnsw_scratch_free(st.s);
	free(st.row_all);
	free(st.row_seg);
	return rc;
}
