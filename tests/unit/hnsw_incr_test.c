/*
 * hnsw_incr_test.c - the memtable's incremental graph (hnsw_graph_new,
 * _append, _index, _view_live): rows appended and indexed in chunks give the
 * recall of a one-shot hnsw_build, the indexed watermark and the capacity
 * limits behave, and the flush path (hnsw_graph_compact of an incremental
 * graph) gives a valid segment with the same answers.
 * Searches concurrent with appends and indexing: hnsw_live_test.c (TSan).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hnsw_t.h"

static struct hnsw_build_params params(uint32_t dim, uint32_t M, uint32_t threads)
{
	return (struct hnsw_build_params){
		.dim = dim,
		.metric = STRATA_METRIC_L2,
		.M = M,
		.ef_construction = 100,
		.threads = threads,
		.seed = 42,
	};
}

/* Append all n rows and index them `chunk` at a time (indexing lags one chunk behind). */
static struct hnsw_graph *grow(const struct hnsw_build_params *p, const float *x, size_t n,
                               size_t capacity, size_t chunk)
{
	struct hnsw_graph *g = NULL;
	cr_assert_eq(hnsw_graph_new(p, capacity, &g), 0, "%s", err_detail());
	for (size_t r = 0; r < n; r++) {
		uint32_t row;
		cr_assert_eq(hnsw_graph_append(g, x + r * p->dim, &row), 0);
		cr_assert_eq(row, r);
		if ((r + 1) % chunk == 0 && r + 1 >= 2 * chunk) {
			cr_assert_eq(hnsw_graph_index(g, r + 1 - chunk), 0, "%s", err_detail());
			cr_assert_eq(hnsw_graph_indexed(g), r + 1 - chunk);
		}
	}
	cr_assert_eq(hnsw_graph_appended(g), n);
	cr_assert_eq(hnsw_graph_index(g, n), 0, "%s", err_detail());
	cr_assert_eq(hnsw_graph_indexed(g), n);
	return g;
}

/* Recall@10 of the incremental graph vs a one-shot build over the same rows, same ef. */
static void compare_with_build(const float *x, size_t n, const float *q, size_t nq, size_t dim,
                               uint32_t M, uint32_t threads, uint32_t ef, const char *what)
{
	const uint32_t k = 10;
	uint32_t *truth = malloc(nq * k * sizeof *truth);
	t_brute_force(x, n, q, nq, dim, STRATA_METRIC_L2, k, truth);
	struct hnsw_build_params p = params((uint32_t)dim, M, threads);

	struct hnsw_graph *b = NULL;
	cr_assert_eq(hnsw_build(&p, x, n, &b), 0);
	struct hnsw_view bv;
	hnsw_graph_view(b, &bv);
	uint32_t *row_of = malloc(n * sizeof *row_of);
	for (size_t r = 0; r < n; r++)
		row_of[hnsw_graph_node_of_row(b, r)] = (uint32_t)r;
	double r_build = t_view_recall(&bv, row_of, q, nq, dim, k, ef, truth, k);

	struct hnsw_graph *g = grow(&p, x, n, n + 1000, 500);
	struct hnsw_view gv, lv;
	hnsw_graph_view(g, &gv);
	hnsw_graph_view_live(g, &lv);
	cr_assert_eq(gv.count, n);
	cr_assert_null(gv.locks);
	cr_assert_not_null(lv.locks);
	t_check_invariants(&gv, false);
	for (size_t r = 0; r < n; r++)
		cr_assert_eq(hnsw_graph_node_of_row(g, r), r);
	double r_incr = t_view_recall(&gv, NULL, q, nq, dim, k, ef, truth, k);
	double r_live = t_view_recall(&lv, NULL, q, nq, dim, k, ef, truth, k);
	fprintf(stderr, "%s: recall@10 at ef %u: one-shot build %.4f, incremental %.4f (live view %.4f)\n",
	        what, ef, r_build, r_incr, r_live);
	cr_assert_geq(r_incr, r_build - 0.01, "%s: incremental %.4f vs build %.4f", what, r_incr,
	              r_build);
	cr_assert_eq(r_live, r_incr, "a quiescent live view answers as the plain view");
	hnsw_graph_free(g);
	hnsw_graph_free(b);
	free(row_of);
	free(truth);
}

Test(hnsw_incr, random_rows_in_chunks_match_one_shot_build)
{
	float *x = t_random_vectors(4000, 16, 11), *q = t_random_vectors(200, 16, 12);
	compare_with_build(x, 4000, q, 200, 16, 8, 1, 24, "random 4000x16");
	compare_with_build(x, 4000, q, 200, 16, 8, 2, 24, "random 4000x16, 2 threads");
	free(x), free(q);
}

Test(hnsw_incr, sift_rows_in_chunks_match_one_shot_build)
{
	struct t_mat base, queries;
	t_sift(5000, &base, &queries);
	compare_with_build(base.f, base.rows, queries.f, queries.rows, base.dim, 16, 2, 16,
	                   "siftsmall 5000");
	t_mat_free(&base), t_mat_free(&queries);
}

Test(hnsw_incr, capacity_is_a_limit_and_nothing_changes)
{
	struct hnsw_build_params p = params(4, 4, 1);
	struct hnsw_graph *g = NULL;
	cr_assert_eq(hnsw_graph_new(&p, 100, &g), 0);
	float *x = t_random_vectors(101, 4, 5);
	uint32_t row = 7;
	for (size_t r = 0; r < 100; r++)
		cr_assert_eq(hnsw_graph_append(g, x + r * 4, &row), 0);
	cr_assert_eq(hnsw_graph_append(g, x + 400, &row), STRATA_ELIMIT);
	cr_assert_eq(row, 99, "row_out untouched on failure");
	cr_assert_eq(hnsw_graph_appended(g), 100);
	cr_assert_eq(hnsw_graph_index(g, 101), STRATA_EINVAL, "beyond the rows appended");
	cr_assert_eq(hnsw_graph_indexed(g), 0);
	cr_assert_eq(hnsw_graph_index(g, 100), 0);
	cr_assert_eq(hnsw_graph_indexed(g), 100);
	cr_assert_eq(hnsw_graph_index(g, 50), 0, "already indexed: nothing to do");
	cr_assert_eq(hnsw_graph_indexed(g), 100);
	struct hnsw_view v;
	hnsw_graph_view(g, &v);
	t_check_invariants(&v, false);
	/* Exact scan and graph search agree on a graph this small at a wide beam. */
	struct hnsw_scratch *s = hnsw_scratch_new();
	struct hnsw_hit a[5], b[5];
	uint32_t na, nb;
	uint64_t evals = 0;
	cr_assert_eq(hnsw_search(&v, x + 400, 5, 100, NULL, NULL, s, a, &na, &evals), 0);
	cr_assert_eq(hnsw_scan(&v, x + 400, 5, NULL, 0, NULL, NULL, s, b, &nb, &evals), 0);
	cr_assert_eq(na, 5);
	cr_assert_eq(nb, 5);
	for (int i = 0; i < 5; i++)
		cr_assert_eq(a[i].node, b[i].node);
	hnsw_scratch_free(s);
	hnsw_graph_free(g);

	cr_assert_eq(hnsw_graph_new(&p, 0, &g), STRATA_EINVAL);
	cr_assert_eq(hnsw_graph_new(&p, (size_t)SEG_COUNT_MAX + 1, &g), STRATA_ELIMIT);
	struct hnsw_build_params bad = params(4, 1, 1);
	cr_assert_eq(hnsw_graph_new(&bad, 10, &g), STRATA_EINVAL);
	free(x);
}

Test(hnsw_incr, upper_reserve_lasts_to_capacity_at_smallest_M)
{
	/*
	 * M = 2 is the tallest graph there is (half the rows have upper layers,
	 * one block per row on average): the reserve must still last to capacity,
	 * so that capacity, not the reserve, is the limit a memtable meets.
	 */
	struct hnsw_build_params p = params(2, 2, 1);
	struct hnsw_graph *g = NULL;
	const size_t cap = 20000;
	cr_assert_eq(hnsw_graph_new(&p, cap, &g), 0);
	float v[2] = {0.5f, 0.25f};
	uint32_t row;
	size_t n = 0;
	int rc;
	while ((rc = hnsw_graph_append(g, v, &row)) == 0)
		n++;
	cr_assert_eq(rc, STRATA_ELIMIT);
	cr_assert_eq(n, cap, "the reserve held for %zu rows of M = 2", cap);
	hnsw_graph_free(g);
}

Test(hnsw_incr, nothing_indexed_searches_empty_and_scans_rows)
{
	struct hnsw_build_params p = params(3, 4, 1);
	struct hnsw_graph *g = NULL;
	cr_assert_eq(hnsw_graph_new(&p, 10, &g), 0);
	struct hnsw_view v;
	hnsw_graph_view_live(g, &v);
	struct hnsw_scratch *s = hnsw_scratch_new();
	struct hnsw_hit h[2];
	uint32_t n = 9;
	uint64_t evals = 0;
	float q[3] = {1, 2, 3};
	cr_assert_eq(hnsw_search(&v, q, 2, 10, NULL, NULL, s, h, &n, &evals), 0);
	cr_assert_eq(n, 0);
	uint32_t row;
	cr_assert_eq(hnsw_graph_append(g, q, &row), 0);
	hnsw_graph_view_live(g, &v);
	cr_assert_eq(v.count, 1);
	cr_assert_eq(hnsw_search(&v, q, 2, 10, NULL, NULL, s, h, &n, &evals), 0);
	cr_assert_eq(n, 0, "appended but not indexed: the graph has nothing yet");
	cr_assert_eq(hnsw_scan(&v, q, 2, NULL, 0, NULL, NULL, s, h, &n, &evals), 0);
	cr_assert_eq(n, 1);
	cr_assert_eq(h[0].node, 0);
	cr_assert_eq(hnsw_graph_index(g, 1), 0);
	hnsw_graph_view_live(g, &v);
	cr_assert_eq(hnsw_search(&v, q, 2, 10, NULL, NULL, s, h, &n, &evals), 0);
	cr_assert_eq(n, 1);
	hnsw_scratch_free(s);
	hnsw_graph_free(g);
}

/* ---- the flush path: compaction of an incremental graph ---------------------------- */

static void flush_checks(double drop_share)
{
	struct t_mat base, queries;
	t_sift(0, &base, &queries);
	const size_t n = base.rows, dim = base.dim, nq = queries.rows;
	const uint32_t k = 10, ef = 16;
	struct hnsw_build_params p = params((uint32_t)dim, 16, 2);
	struct hnsw_graph *g = grow(&p, base.f, n, n, 1000);
	struct hnsw_view gv;
	hnsw_graph_view(g, &gv);

	uint64_t *drop = calloc((n + 63) / 64, sizeof *drop);
	uint64_t rng = 77;
	size_t kept = 0;
	for (size_t i = 0; i < n; i++) {
		rng = rng * 6364136223846793005ull + 1442695040888963407ull;
		if ((double)(rng >> 11) * 0x1.0p-53 < drop_share)
			drop[i / 64] |= 1ull << (i % 64);
		else
			kept++;
	}
	struct hnsw_graph *c = NULL;
	uint32_t *old_of_new = NULL;
	cr_assert_eq(hnsw_graph_compact(&gv, drop_share > 0 ? drop : NULL, 2, &c, &old_of_new), 0,
	             "%s", err_detail());
	struct hnsw_view cv;
	hnsw_graph_view(c, &cv);
	cr_assert_eq(cv.count, kept);
	t_check_invariants(&cv, true);
	for (uint32_t i = 0; i < cv.count; i++) {
		uint32_t o = old_of_new[i];
		cr_assert_eq(drop[o / 64] >> (o % 64) & 1, 0, "new node %u is dropped node %u", i, o);
		if (i && (t_level_of(&cv, i) > 0) == (t_level_of(&cv, i - 1) > 0))
			cr_assert_gt(o, old_of_new[i - 1], "order kept within each class");
	}

	/* Survivors as their own matrix, for the truth and the fresh build. */
	float *sx = malloc(kept * dim * sizeof *sx);
	uint32_t *row_of_kept = malloc(kept * sizeof *row_of_kept);
	uint32_t *kept_of_row = malloc(n * sizeof *kept_of_row);
	for (size_t i = 0, j = 0; i < n; i++) {
		if (drop[i / 64] >> (i % 64) & 1)
			continue;
		memcpy(sx + j * dim, base.f + i * dim, dim * sizeof *sx);
		row_of_kept[j] = (uint32_t)i;
		kept_of_row[i] = (uint32_t)j++;
	}
	uint32_t *truth = malloc(nq * k * sizeof *truth);
	t_brute_force(sx, kept, queries.f, nq, dim, STRATA_METRIC_L2, k, truth);
	/* Compacted node -> index among the survivors, the numbering of `truth`. */
	uint32_t *map_c = malloc(kept * sizeof *map_c);
	for (size_t i = 0; i < kept; i++)
		map_c[i] = kept_of_row[old_of_new[i]];
	double r_c = t_view_recall(&cv, map_c, queries.f, nq, dim, k, ef, truth, k);

	struct hnsw_graph *f = NULL;
	cr_assert_eq(hnsw_build(&p, sx, kept, &f), 0);
	struct hnsw_view fv;
	hnsw_graph_view(f, &fv);
	uint32_t *map_f = malloc(kept * sizeof *map_f);
	for (size_t j = 0; j < kept; j++)
		map_f[hnsw_graph_node_of_row(f, j)] = (uint32_t)j;
	double r_f = t_view_recall(&fv, map_f, queries.f, nq, dim, k, ef, truth, k);
	fprintf(stderr, "flush of incremental siftsmall, %.0f%% dropped: recall@10 at ef %u: "
	        "compacted %.4f, fresh build over survivors %.4f\n", drop_share * 100, ef, r_c, r_f);
	cr_assert_geq(r_c, r_f - 0.01, "compacted %.4f vs fresh %.4f", r_c, r_f);

	uint64_t *ids = malloc(kept * sizeof *ids);
	for (size_t i = 0; i < kept; i++)
		ids[i] = 1000000 + old_of_new[i];
	t_seg_roundtrip(c, ids);

	free(ids), free(map_f), free(map_c), free(truth), free(sx), free(row_of_kept),
	        free(kept_of_row), free(drop), free(old_of_new);
	hnsw_graph_free(f);
	hnsw_graph_free(c);
	hnsw_graph_free(g);
	t_mat_free(&base), t_mat_free(&queries);
}

Test(hnsw_incr, flush_keeping_all_answers_as_the_memtable_graph)
{
	struct t_mat base, queries;
	t_sift(0, &base, &queries);
	const size_t n = base.rows, dim = base.dim;
	struct hnsw_build_params p = params((uint32_t)dim, 16, 2);
	struct hnsw_graph *g = grow(&p, base.f, n, n + 10, 1000);
	struct hnsw_view gv, cv;
	hnsw_graph_view(g, &gv);
	struct hnsw_graph *c = NULL;
	uint32_t *old_of_new = NULL;
	cr_assert_eq(hnsw_graph_compact(&gv, NULL, 2, &c, &old_of_new), 0, "%s", err_detail());
	hnsw_graph_view(c, &cv);
	cr_assert_eq(cv.count, n);
	cr_assert_eq(cv.max_level, gv.max_level);
	cr_assert_eq(old_of_new[cv.entry], gv.entry);
	t_check_invariants(&cv, true);
	/* The same graph renumbered: every list maps back to the source list. */
	for (uint32_t i = 0; i < cv.count; i++) {
		uint32_t o = old_of_new[i];
		const uint32_t *a = hnsw_links0(&cv, i), *b = hnsw_links0(&gv, o);
		cr_assert_eq(a[0], b[0]);
		for (uint32_t j = 1; j <= a[0]; j++)
			cr_assert_eq(old_of_new[a[j]], b[j]);
		cr_assert_eq(t_level_of(&cv, i), t_level_of(&gv, o));
	}
	/* Identical answers: same distances in the same order (ties may swap nodes). */
	struct hnsw_scratch *s = hnsw_scratch_new();
	for (size_t i = 0; i < queries.rows; i++) {
		struct hnsw_hit a[10], b[10];
		uint32_t na, nb;
		uint64_t evals = 0;
		const float *q = queries.f + i * dim;
		cr_assert_eq(hnsw_search(&cv, q, 10, 32, NULL, NULL, s, a, &na, &evals), 0);
		cr_assert_eq(hnsw_search(&gv, q, 10, 32, NULL, NULL, s, b, &nb, &evals), 0);
		cr_assert_eq(na, nb);
		for (uint32_t j = 0; j < na; j++) {
			cr_assert_eq(a[j].dist, b[j].dist, "query %zu hit %u", i, j);
			if (j + 1 < na && a[j].dist != a[j + 1].dist && (j == 0 || a[j - 1].dist != a[j].dist))
				cr_assert_eq(old_of_new[a[j].node], b[j].node);
		}
	}
	hnsw_scratch_free(s);
	uint64_t *ids = malloc(n * sizeof *ids);
	for (size_t i = 0; i < n; i++)
		ids[i] = old_of_new[i];
	t_seg_roundtrip(c, ids);
	free(ids), free(old_of_new);
	hnsw_graph_free(c);
	hnsw_graph_free(g);
	t_mat_free(&base), t_mat_free(&queries);
}

Test(hnsw_incr, flush_dropping_10_percent_keeps_recall)
{
	flush_checks(0.10);
}

Test(hnsw_incr, flush_dropping_50_percent_keeps_recall)
{
	flush_checks(0.50);
}
