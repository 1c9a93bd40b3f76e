/*
 * hnsw_test.c - the graph builder's invariants (degrees, no self-loops, upper
 * layers consistent, entry point on the top layer), search quality against
 * brute force, and the search's refusal to follow damaged edges; compaction
 * with repair of built graphs (hnsw_graph_compact): identity when nothing is
 * dropped, recall after drops against a fresh build, valid segments, damage.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hnsw.h"
#include "hnsw_t.h"
#include "le.h"
#include "t_support.h"

static struct hnsw_graph *build(const float *v, size_t n, uint32_t dim, uint32_t M, uint32_t threads)
{
	struct hnsw_build_params p = {
		.dim = dim,
		.metric = STRATA_METRIC_L2,
		.M = M,
		.ef_construction = 100,
		.threads = threads,
		.seed = 42,
	};
	struct hnsw_graph *g = NULL;
	cr_assert_eq(hnsw_build(&p, v, n, &g), 0);
	return g;
}

static uint32_t level_of(const struct hnsw_view *v, uint32_t node)
{
	return node < v->upper_count ? le_load32(v->upper_index + (size_t)node * 16) : 0;
}

static void check_invariants(const struct hnsw_view *v)
{
	for (uint32_t i = 0; i < v->count; i++) {
		const uint32_t *l = hnsw_links0(v, i);
		cr_assert_leq(l[0], v->M0, "node %u: %u neighbours on layer 0", i, l[0]);
		for (uint32_t j = 1; j <= l[0]; j++) {
			cr_assert_lt(l[j], v->count);
			cr_assert_neq(l[j], i, "self loop at node %u", i);
		}
		for (uint32_t lv = 1; lv <= level_of(v, i); lv++) {
			const uint32_t *u = hnsw_links_upper(v, i, lv);
			cr_assert_not_null(u);
			cr_assert_leq(u[0], v->M);
			for (uint32_t j = 1; j <= u[0]; j++) {
				cr_assert_neq(u[j], i);
				cr_assert_geq(level_of(v, u[j]), lv, "node %u links to %u on layer %u", i, u[j], lv);
			}
		}
		/* Upper-layer nodes come first. */
		cr_assert_eq(i < v->upper_count, level_of(v, i) > 0);
	}
	if (v->count)
		cr_assert_eq(level_of(v, v->entry), v->max_level);
}

Test(hnsw, graph_invariants_hold_one_and_two_threads)
{
	float *x = t_random_vectors(3000, 12, 1);
	for (uint32_t threads = 1; threads <= 2; threads++) {
		struct hnsw_graph *g = build(x, 3000, 12, 6, threads);
		struct hnsw_view v;
		hnsw_graph_view(g, &v);
		cr_assert_eq(v.count, 3000);
		cr_assert_gt(v.upper_count, 0);
		check_invariants(&v);
		hnsw_graph_free(g);
	}
	free(x);
}

Test(hnsw, search_matches_brute_force_with_wide_beam)
{
	const size_t n = 1500, nq = 50, dim = 10, k = 10;
	float *x = t_random_vectors(n, dim, 2), *q = t_random_vectors(nq, dim, 3);
	struct hnsw_graph *g = build(x, n, dim, 8, 1);
	struct hnsw_view v;
	hnsw_graph_view(g, &v);
	uint32_t *truth = malloc(nq * k * sizeof *truth);
	t_brute_force(x, n, q, nq, dim, STRATA_METRIC_L2, k, truth);
	uint64_t *found = malloc(nq * k * sizeof *found);
	struct hnsw_scratch *s = hnsw_scratch_new();
	struct hnsw_hit hits[10];
	uint64_t evals = 0;
	/* Map nodes back to rows: node_of_row is a permutation. */
	uint32_t *row_of = malloc(n * sizeof *row_of);
	for (size_t r = 0; r < n; r++)
		row_of[hnsw_graph_node_of_row(g, r)] = (uint32_t)r;
	for (size_t i = 0; i < nq; i++) {
		uint32_t got = 0;
		cr_assert_eq(hnsw_search(&v, q + i * dim, k, 400, NULL, NULL, s, hits, &got, &evals), 0);
		cr_assert_eq(got, k);
		for (size_t j = 0; j < k; j++) {
			found[i * k + j] = row_of[hits[j].node];
			if (j)
				cr_assert_leq(hits[j - 1].dist, hits[j].dist, "results not sorted");
		}
	}
	double r = t_recall(found, nq, k, truth, k);
	cr_assert_geq(r, 0.999, "recall %.4f with ef 400 over 1500 nodes", r);
	cr_assert_gt(evals, 0);
	hnsw_scratch_free(s);
	hnsw_graph_free(g);
	free(x), free(q), free(truth), free(found), free(row_of);
}

Test(hnsw, damaged_edges_are_refused_not_followed)
{
	const size_t n = 400, dim = 8;
	float *x = t_random_vectors(n, dim, 4);
	struct hnsw_graph *g = build(x, n, dim, 4, 1);
	struct hnsw_view v;
	hnsw_graph_view(g, &v);
	struct hnsw_scratch *s = hnsw_scratch_new();
	struct hnsw_hit hits[5];
	uint32_t got;
	uint64_t evals = 0;
	/* The test owns the graph: damage it in place the way a bad file would. */
	uint32_t *l0 = (uint32_t *)(uintptr_t)hnsw_links0(&v, v.entry);
	uint32_t saved = l0[1];
	l0[1] = (uint32_t)n + 5;
	int rc = hnsw_search(&v, x, 5, 400, NULL, NULL, s, hits, &got, &evals);
	cr_assert_eq(rc, STRATA_ECORRUPT);
	l0[1] = saved;
	uint32_t saved_count = l0[0];
	l0[0] = v.M0 + 1;
	cr_assert_eq(hnsw_search(&v, x, 5, 400, NULL, NULL, s, hits, &got, &evals), STRATA_ECORRUPT);
	l0[0] = saved_count;
	cr_assert_eq(hnsw_search(&v, x, 5, 400, NULL, NULL, s, hits, &got, &evals), 0);
	if (v.max_level > 0) {
		uint32_t *u = (uint32_t *)(uintptr_t)hnsw_links_upper(&v, v.entry, v.max_level);
		cr_assert_not_null(u);
		u[0] = 1;
		u[1] = (uint32_t)v.upper_count; /* a node that does not live on upper layers */
		cr_assert_eq(hnsw_search(&v, x, 5, 40, NULL, NULL, s, hits, &got, &evals), STRATA_ECORRUPT);
	}
	struct hnsw_view bad = v;
	bad.entry = bad.count;
	cr_assert_eq(hnsw_search(&bad, x, 5, 40, NULL, NULL, s, hits, &got, &evals), STRATA_ECORRUPT);
	hnsw_scratch_free(s);
	hnsw_graph_free(g);
	free(x);
}

Test(hnsw, empty_and_single_node_graphs)
{
	float one[4] = {1, 2, 3, 4};
	struct hnsw_graph *g = build(one, 1, 4, 4, 1);
	struct hnsw_view v;
	hnsw_graph_view(g, &v);
	struct hnsw_scratch *s = hnsw_scratch_new();
	struct hnsw_hit hits[3];
	uint32_t got;
	uint64_t evals = 0;
	cr_assert_eq(hnsw_search(&v, one, 3, 10, NULL, NULL, s, hits, &got, &evals), 0);
	cr_assert_eq(got, 1);
	cr_assert_eq(hits[0].node, 0);
	hnsw_graph_free(g);
	g = build(one, 0, 4, 4, 2);
	hnsw_graph_view(g, &v);
	cr_assert_eq(hnsw_search(&v, one, 3, 10, NULL, NULL, s, hits, &got, &evals), 0);
	cr_assert_eq(got, 0);
	hnsw_graph_free(g);
	hnsw_scratch_free(s);
}

/* ---- hnsw_graph_compact over built graphs (segment merges) ------------------------- */

Test(hnsw_compact, keeping_all_gives_the_same_graph_byte_for_byte)
{
	const size_t n = 3000, dim = 12;
	float *x = t_random_vectors(n, dim, 21), *q = t_random_vectors(50, dim, 22);
	struct hnsw_graph *g = build(x, n, dim, 8, 2);
	struct hnsw_view v, cv;
	hnsw_graph_view(g, &v);
	struct hnsw_graph *c = NULL;
	uint32_t *old_of_new = NULL;
	cr_assert_eq(hnsw_graph_compact(&v, NULL, 2, &c, &old_of_new), 0, "%s", err_detail());
	hnsw_graph_view(c, &cv);
	/* A segment-layout source keeps its numbering: new node i is old node i. */
	for (uint32_t i = 0; i < n; i++)
		cr_assert_eq(old_of_new[i], i);
	cr_assert_eq(cv.count, v.count);
	cr_assert_eq(cv.entry, v.entry);
	cr_assert_eq(cv.max_level, v.max_level);
	cr_assert_eq(cv.upper_count, v.upper_count);
	cr_assert_eq(cv.upper_blocks, v.upper_blocks);
	cr_assert_eq(memcmp(cv.nodes, v.nodes, n * v.stride), 0);
	cr_assert_eq(memcmp(cv.upper_index, v.upper_index, v.upper_count * 16), 0);
	cr_assert_eq(memcmp(cv.upper_links, v.upper_links, v.upper_blocks * (4 + 4 * v.M)), 0);
	/* And so the same answers. */
	struct hnsw_scratch *s = hnsw_scratch_new();
	for (size_t i = 0; i < 50; i++) {
		struct hnsw_hit a[10], b[10];
		uint32_t na, nb;
		uint64_t evals = 0;
		cr_assert_eq(hnsw_search(&v, q + i * dim, 10, 20, NULL, NULL, s, a, &na, &evals), 0);
		cr_assert_eq(hnsw_search(&cv, q + i * dim, 10, 20, NULL, NULL, s, b, &nb, &evals), 0);
		cr_assert_eq(na, nb);
		cr_assert_eq(memcmp(a, b, na * sizeof *a), 0);
	}
	hnsw_scratch_free(s);
	free(old_of_new);
	hnsw_graph_free(c);
	hnsw_graph_free(g);
	free(x), free(q);
}

/* Drop a share of a built siftsmall graph: recall vs a fresh build, no dangling edge, valid segment. */
static void drop_share_of_sift(double share, uint64_t seed)
{
	struct t_mat base, queries;
	t_sift(0, &base, &queries);
	const size_t n = base.rows, dim = base.dim, nq = queries.rows;
	const uint32_t k = 10, ef = 16;
	struct hnsw_build_params p = {
		.dim = (uint32_t)dim, .metric = STRATA_METRIC_L2, .M = 16, .ef_construction = 100,
		.threads = 2, .seed = 42,
	};
	struct hnsw_graph *g = NULL;
	cr_assert_eq(hnsw_build(&p, base.f, n, &g), 0);
	struct hnsw_view v;
	hnsw_graph_view(g, &v);

	/* Drop by row, so the survivors are the same whatever the node numbering. */
	uint64_t *drop = calloc((n + 63) / 64, sizeof *drop);
	bool *row_dropped = calloc(n, 1);
	size_t kept = 0;
	uint64_t rng = seed;
	for (size_t r = 0; r < n; r++) {
		rng = rng * 6364136223846793005ull + 1442695040888963407ull;
		if ((double)(rng >> 11) * 0x1.0p-53 < share) {
			uint32_t node = hnsw_graph_node_of_row(g, r);
			drop[node / 64] |= 1ull << (node % 64);
			row_dropped[r] = true;
		} else {
			kept++;
		}
	}
	uint32_t *row_of_node = malloc(n * sizeof *row_of_node);
	for (size_t r = 0; r < n; r++)
		row_of_node[hnsw_graph_node_of_row(g, r)] = (uint32_t)r;

	struct hnsw_graph *c = NULL;
	uint32_t *old_of_new = NULL;
	cr_assert_eq(hnsw_graph_compact(&v, drop, 2, &c, &old_of_new), 0, "%s", err_detail());
	struct hnsw_view cv;
	hnsw_graph_view(c, &cv);
	cr_assert_eq(cv.count, kept);
	t_check_invariants(&cv, true);
	/* No edge reaches a dropped node: every neighbour is a new node, whose old node survives. */
	for (uint32_t i = 0; i < cv.count; i++) {
		cr_assert_not(row_dropped[row_of_node[old_of_new[i]]]);
		if (i && (t_level_of(&cv, i) > 0) == (t_level_of(&cv, i - 1) > 0))
			cr_assert_gt(old_of_new[i], old_of_new[i - 1], "order kept within each class");
	}

	float *sx = malloc(kept * dim * sizeof *sx);
	uint32_t *kept_of_row = malloc(n * sizeof *kept_of_row);
	for (size_t r = 0, j = 0; r < n; r++) {
		if (row_dropped[r])
			continue;
		memcpy(sx + j * dim, base.f + r * dim, dim * sizeof *sx);
		kept_of_row[r] = (uint32_t)j++;
	}
	uint32_t *truth = malloc(nq * k * sizeof *truth);
	t_brute_force(sx, kept, queries.f, nq, dim, STRATA_METRIC_L2, k, truth);
	uint32_t *map_c = malloc(kept * sizeof *map_c);
	for (size_t i = 0; i < kept; i++)
		map_c[i] = kept_of_row[row_of_node[old_of_new[i]]];
	double r_c = t_view_recall(&cv, map_c, queries.f, nq, dim, k, ef, truth, k);

	struct hnsw_graph *f = NULL;
	cr_assert_eq(hnsw_build(&p, sx, kept, &f), 0);
	struct hnsw_view fv;
	hnsw_graph_view(f, &fv);
	uint32_t *map_f = malloc(kept * sizeof *map_f);
	for (size_t j = 0; j < kept; j++)
		map_f[hnsw_graph_node_of_row(f, j)] = (uint32_t)j;
	double r_f = t_view_recall(&fv, map_f, queries.f, nq, dim, k, ef, truth, k);

	fprintf(stderr, "compact of built siftsmall, %.0f%% dropped: recall@10 at ef %u: compacted "
	        "%.4f, fresh build over survivors %.4f\n", share * 100, ef, r_c, r_f);
	cr_assert_geq(r_c, r_f - 0.01, "compacted %.4f vs fresh %.4f", r_c, r_f);

	uint64_t *ids = malloc(kept * sizeof *ids);
	for (size_t i = 0; i < kept; i++)
		ids[i] = row_of_node[old_of_new[i]];
	t_seg_roundtrip(c, ids);

	free(ids), free(map_f), free(map_c), free(truth), free(kept_of_row), free(sx),
	        free(row_of_node), free(row_dropped), free(drop), free(old_of_new);
	hnsw_graph_free(f);
	hnsw_graph_free(c);
	hnsw_graph_free(g);
	t_mat_free(&base), t_mat_free(&queries);
}

Test(hnsw_compact, dropping_10_percent_of_sift_keeps_recall)
{
	drop_share_of_sift(0.10, 5);
}

Test(hnsw_compact, dropping_50_percent_of_sift_keeps_recall)
{
	drop_share_of_sift(0.50, 6);
}

Test(hnsw_compact, dropping_the_entry_point_and_everything)
{
	const size_t n = 500, dim = 6;
	float *x = t_random_vectors(n, dim, 31);
	struct hnsw_graph *g = build(x, n, dim, 4, 1);
	struct hnsw_view v;
	hnsw_graph_view(g, &v);
	size_t words = (n + 63) / 64;
	uint64_t *drop = calloc(words, sizeof *drop);
	drop[v.entry / 64] |= 1ull << (v.entry % 64);
	struct hnsw_graph *c = NULL;
	uint32_t *map = NULL;
	cr_assert_eq(hnsw_graph_compact(&v, drop, 1, &c, &map), 0);
	struct hnsw_view cv;
	hnsw_graph_view(c, &cv);
	cr_assert_eq(cv.count, n - 1);
	cr_assert_neq(map[cv.entry], v.entry);
	t_check_invariants(&cv, true);
	uint64_t *ids = malloc(n * sizeof *ids);
	for (size_t i = 0; i < cv.count; i++)
		ids[i] = map[i];
	t_seg_roundtrip(c, ids);
	free(map);
	hnsw_graph_free(c);

	/* Every node dropped: an empty graph, still a valid segment, searches find nothing. */
	memset(drop, 0xff, words * sizeof *drop);
	cr_assert_eq(hnsw_graph_compact(&v, drop, 2, &c, &map), 0);
	hnsw_graph_view(c, &cv);
	cr_assert_eq(cv.count, 0);
	cr_assert_eq(cv.entry, SEG_NO_NODE);
	t_seg_roundtrip(c, ids);
	struct hnsw_scratch *s = hnsw_scratch_new();
	struct hnsw_hit h[3];
	uint32_t got = 7;
	uint64_t evals = 0;
	cr_assert_eq(hnsw_search(&cv, x, 3, 10, NULL, NULL, s, h, &got, &evals), 0);
	cr_assert_eq(got, 0);
	hnsw_scratch_free(s);
	free(map);
	hnsw_graph_free(c);

	/* Keep only layer-0 nodes: the top level falls to 0 and the entry is one of them. */
	memset(drop, 0, words * sizeof *drop);
	for (uint32_t i = 0; i < v.upper_count; i++)
		drop[i / 64] |= 1ull << (i % 64);
	cr_assert_eq(hnsw_graph_compact(&v, drop, 2, &c, &map), 0);
	hnsw_graph_view(c, &cv);
	cr_assert_eq(cv.count, n - v.upper_count);
	cr_assert_eq(cv.max_level, 0);
	cr_assert_eq(cv.upper_count, 0);
	t_check_invariants(&cv, true);
	for (size_t i = 0; i < cv.count; i++)
		ids[i] = map[i];
	t_seg_roundtrip(c, ids);
	free(map);
	hnsw_graph_free(c);
	free(ids), free(drop), free(x);
	hnsw_graph_free(g);
}

Test(hnsw_compact, damaged_source_is_refused_not_followed)
{
	const size_t n = 400, dim = 8;
	float *x = t_random_vectors(n, dim, 41);
	struct hnsw_graph *g = build(x, n, dim, 4, 1);
	struct hnsw_view v;
	hnsw_graph_view(g, &v);
	uint64_t drop[7] = {0x5555555555555555ull, 0, 0, 0, 0, 0, 0};
	struct hnsw_graph *c = (struct hnsw_graph *)1;
	uint32_t *map = (uint32_t *)1;
	uint32_t *l0 = (uint32_t *)(uintptr_t)hnsw_links0(&v, 70);
	uint32_t saved = l0[1];
	l0[1] = (uint32_t)n + 3; /* a neighbour beyond the graph */
	cr_assert_eq(hnsw_graph_compact(&v, NULL, 1, &c, &map), STRATA_ECORRUPT);
	l0[1] = saved;
	saved = l0[0];
	l0[0] = v.M0 + 1; /* a count above M0 */
	cr_assert_eq(hnsw_graph_compact(&v, drop, 2, &c, &map), STRATA_ECORRUPT);
	l0[0] = saved;
	if (v.max_level > 0) {
		/* An upper-layer link to a node that does not live there. */
		uint32_t *u = (uint32_t *)(uintptr_t)hnsw_links_upper(&v, v.entry, 1);
		uint32_t s0 = u[0], s1 = u[1];
		u[0] = 1;
		u[1] = (uint32_t)n - 1;
		cr_assert_eq(hnsw_graph_compact(&v, NULL, 1, &c, &map), STRATA_ECORRUPT);
		u[0] = s0, u[1] = s1;
	}
	cr_assert_eq(c, (struct hnsw_graph *)1, "outputs untouched on failure");
	cr_assert_eq(map, (uint32_t *)1);
	cr_assert_eq(hnsw_graph_compact(&v, drop, 2, &c, &map), 0);
	free(map);
	hnsw_graph_free(c);
	hnsw_graph_free(g);
	free(x);
}
