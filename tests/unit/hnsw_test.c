/*
 * hnsw_test.c - the graph builder's invariants (degrees, no self-loops, upper
 * layers consistent, entry point on the top layer), search quality against
 * brute force, and the search's refusal to follow damaged edges.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "hnsw.h"
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
