/*
 * hnsw_t.h - checks shared by the graph tests (hnsw_test.c, hnsw_incr_test.c):
 * structural invariants of a view, recall of a view against brute-force
 * truth, and the segment round trip (seg_write, seg_check, seg_verify).
 * Test-only code, included by Criterion programs.
 */
#ifndef STRATA_HNSW_T_H
#define STRATA_HNSW_T_H

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "hnsw.h"
#include "le.h"
#include "segment.h"
#include "t_support.h"

static inline uint32_t t_level_of(const struct hnsw_view *v, uint32_t node)
{
	return node < v->upper_count ? le_load32(v->upper_index + (size_t)node * 16) : 0;
}

/*
 * Degrees within M0/M, neighbours inside the graph, no self-loops, upper
 * neighbours living on that layer, entry on the top layer. `segment_layout`:
 * also upper-layer nodes first (not true of an incremental graph's view).
 */
static inline void t_check_invariants(const struct hnsw_view *v, bool segment_layout)
{
	for (uint32_t i = 0; i < v->count; i++) {
		const uint32_t *l = hnsw_links0(v, i);
		cr_assert_leq(l[0], v->M0, "node %u: %u neighbours on layer 0", i, l[0]);
		for (uint32_t j = 1; j <= l[0]; j++) {
			cr_assert_lt(l[j], v->count);
			cr_assert_neq(l[j], i, "self loop at node %u", i);
		}
		for (uint32_t lv = 1; lv <= t_level_of(v, i); lv++) {
			const uint32_t *u = hnsw_links_upper(v, i, lv);
			cr_assert_not_null(u);
			cr_assert_leq(u[0], v->M);
			for (uint32_t j = 1; j <= u[0]; j++) {
				cr_assert_neq(u[j], i);
				cr_assert_geq(t_level_of(v, u[j]), lv, "node %u links to %u on layer %u", i,
				              u[j], lv);
			}
		}
		if (segment_layout)
			cr_assert_eq(i < v->upper_count, t_level_of(v, i) > 0);
	}
	if (v->count)
		cr_assert_eq(t_level_of(v, v->entry), v->max_level);
}

/*
 * Mean recall@k of hnsw_search over the view at beam width ef; map[node]
 * gives the row number used in `truth` (nq x truth_k rows), NULL = node.
 */
static inline double t_view_recall(const struct hnsw_view *v, const uint32_t *map, const float *q,
                                   size_t nq, size_t dim, uint32_t k, uint32_t ef,
                                   const uint32_t *truth, size_t truth_k)
{
	uint64_t *found = malloc(nq * k * sizeof *found);
	struct hnsw_hit *hits = malloc(k * sizeof *hits);
	struct hnsw_scratch *s = hnsw_scratch_new();
	cr_assert(found && hits && s);
	uint64_t evals = 0;
	for (size_t i = 0; i < nq; i++) {
		uint32_t got = 0;
		cr_assert_eq(hnsw_search(v, q + i * dim, k, ef, NULL, NULL, s, hits, &got, &evals), 0,
		             "%s", err_detail());
		for (uint32_t j = 0; j < k; j++)
			found[i * k + j] = j < got ? (map ? map[hits[j].node] : hits[j].node) : UINT64_MAX;
	}
	double r = t_recall(found, nq, k, truth, truth_k);
	hnsw_scratch_free(s);
	free(hits);
	free(found);
	return r;
}

/*
 * Write the graph as a segment (ids[node], distinct), then read it back
 * with seg_check and seg_verify: both must accept it.
 */
static inline void t_seg_roundtrip(const struct hnsw_graph *g, const uint64_t *ids)
{
	struct hnsw_view v;
	hnsw_graph_view(g, &v);
	struct seg_write_input in = {
		.dim = v.dim,
		.metric = (uint32_t)v.metric,
		.M = v.M,
		.ef_construction = 100,
		.max_level = v.max_level,
		.entry = v.count ? v.entry : SEG_NO_NODE,
		.count = v.count,
		.stride = (uint32_t)v.stride,
		.upper_count = v.upper_count,
		.upper_blocks = v.upper_blocks,
		.seed = 1,
		.nodes = v.nodes,
		.upper_index = v.upper_index,
		.upper_links = v.upper_links,
		.ids = ids,
	};
	struct t_dir d = t_dir_new();
	char path[1024];
	t_path(&d, "graph.seg", path, sizeof path);
	uint64_t x;
	cr_assert_eq(seg_write(path, &in, &x), 0, "seg_write: %s", err_detail());
	struct t_blob b = t_read_file(path);
	cr_assert_not_null(b.data);
	struct seg_info info;
	cr_assert_eq(seg_check(b.data, b.len, &info), 0, "seg_check: %s", err_detail());
	cr_assert_eq(seg_verify(&info), 0, "seg_verify: %s", err_detail());
	cr_assert_eq(info.count, v.count);
	free(b.data);
	t_dir_free(&d);
}

/* siftsmall base (first max_rows rows, 0 = all) and queries; skips the test when missing. */
static inline void t_sift(size_t max_rows, struct t_mat *base, struct t_mat *queries)
{
	char p[1024];
	*base = t_read_fvecs(t_data_path("siftsmall/siftsmall_base.fvecs", p, sizeof p), max_rows);
	*queries = t_read_fvecs(t_data_path("siftsmall/siftsmall_query.fvecs", p, sizeof p), 0);
}

#endif /* STRATA_HNSW_T_H */
