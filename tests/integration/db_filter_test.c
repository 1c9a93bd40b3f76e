/*
 * db_filter_test.c - filtered search keeps its recall at every selectivity.
 * On SIFT 10k (../shared/data) with random allow-lists passing 100%, 50%, 10%,
 * 1%, 0.1% and 0.01% of the vectors, recall@10 at the default ef against
 * brute force over the passing subset stays above a floor; a filter passing
 * nothing gives the empty result; the filter forms (allow-list, bitmap,
 * deny-list, callback) agree; and filters work across several segments.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "manifest.h"
#include "strata.h"
#include "t_support.h"

#define FLOOR 0.95

struct sift {
	struct t_mat base, q;
};

static struct sift load_sift(void)
{
	char bp[1024], qp[1024];
	t_data_path("siftsmall/siftsmall_base.fvecs", bp, sizeof bp);
	t_data_path("siftsmall/siftsmall_query.fvecs", qp, sizeof qp);
	struct sift s = {t_read_fvecs(bp, 0), t_read_fvecs(qp, 0)};
	return s;
}

static void build(const char *dir, const float *v, size_t n, uint32_t dim, const uint64_t *ids)
{
	strata_options o;
	strata_options_default(&o);
	o.dim = dim;
	o.threads = 2;
	int rc = strata_build(dir, &o, ids, v, n);
	cr_assert_eq(rc, 0, "build: %s", strata_last_error_detail());
}

/* A random sorted subset of 0..n-1 with `m` ids (seeded). */
static uint64_t *random_subset(size_t n, size_t m, uint64_t seed)
{
	uint64_t *all = malloc(n * sizeof *all);
	for (size_t i = 0; i < n; i++)
		all[i] = i;
	uint64_t s = seed;
	for (size_t i = 0; i < m; i++) { /* partial Fisher-Yates */
		s = s * 6364136223846793005ull + 1442695040888963407ull;
		size_t j = i + (size_t)((s >> 33) % (n - i));
		uint64_t t = all[i];
		all[i] = all[j];
		all[j] = t;
	}
	uint64_t *sub = calloc(m ? m : 1, sizeof *sub);
	for (size_t i = 0; i < m; i++)
		sub[i] = all[i];
	free(all);
	for (size_t i = 1; i < m; i++) /* insertion sort is fine for the sizes here */
		for (size_t j = i; j > 0 && sub[j - 1] > sub[j]; j--) {
			uint64_t t = sub[j];
			sub[j] = sub[j - 1];
			sub[j - 1] = t;
		}
	return sub;
}

/* Recall@k of `found` against brute force restricted to the sorted id subset `pass`. */
static double filtered_recall(const struct sift *s, const uint64_t *pass, size_t m, const uint64_t *found,
                              uint32_t k)
{
	size_t dim = s->base.dim;
	float *sub = calloc((m ? m : 1) * dim, sizeof *sub);
	for (size_t i = 0; i < m; i++)
		memcpy(sub + i * dim, s->base.f + pass[i] * dim, dim * sizeof *sub);
	size_t want = m < k ? m : k;
	uint32_t *truth = malloc(s->q.rows * k * sizeof *truth);
	t_brute_force(sub, m, s->q.f, s->q.rows, dim, STRATA_METRIC_L2, k, truth);
	size_t hit = 0;
	for (size_t q = 0; q < s->q.rows; q++) {
		for (uint32_t i = 0; i < k; i++) {
			uint64_t id = found[q * k + i];
			if (i >= want) {
				cr_assert_eq(id, STRATA_NO_ID, "slot %u of %zu passing", i, m);
				continue;
			}
			for (size_t j = 0; j < want; j++)
				if (pass[truth[q * k + j]] == id) {
					hit++;
					break;
				}
		}
	}
	free(sub);
	free(truth);
	return want ? (double)hit / (double)(s->q.rows * want) : 1.0;
}

static void check_passing(const uint64_t *found, size_t n, const uint64_t *pass, size_t m)
{
	for (size_t i = 0; i < n; i++) {
		if (found[i] == STRATA_NO_ID)
			continue;
		bool ok = false;
		for (size_t j = 0; j < m && !ok; j++)
			ok = pass[j] == found[i];
		cr_assert(ok, "id %llu does not pass the filter", (unsigned long long)found[i]);
	}
}

Test(db_filter, recall_holds_at_every_selectivity, .timeout = 300)
{
	struct sift s = load_sift();
	struct t_dir d = t_dir_new();
	char dir[600];
	t_path(&d, "db", dir, sizeof dir);
	build(dir, s.base.f, s.base.rows, (uint32_t)s.base.dim, NULL);
	strata_db *db;
	cr_assert_eq(strata_open(dir, NULL, STRATA_READONLY, &db), 0);
	static const double sel[] = {1.0, 0.5, 0.1, 0.01, 0.001, 0.0001};
	const uint32_t k = 10;
	uint64_t *found = malloc(s.q.rows * k * sizeof *found);
	for (size_t t = 0; t < sizeof sel / sizeof *sel; t++) {
		size_t m = (size_t)(sel[t] * s.base.rows + 0.5);
		uint64_t *pass = random_subset(s.base.rows, m, 1000 + t);
		strata_search_options so;
		strata_search_options_default(&so); /* default ef */
		so.allow_ids = pass;
		so.allow_count = m;
		struct strata_stats before, after;
		strata_stats(db, &before);
		cr_assert_eq(strata_search(db, s.q.f, s.q.rows, k, &so, found, NULL), 0, "%s",
		             strata_last_error_detail());
		strata_stats(db, &after);
		check_passing(found, s.q.rows * k, pass, m);
		double r = filtered_recall(&s, pass, m, found, k);
		double evals = (double)(after.distance_evals - before.distance_evals) / s.q.rows;
		fprintf(stderr, "selectivity %7.4f%% (%5zu ids): recall@10 %.4f, %.0f distances/query, %s\n",
		        sel[t] * 100, m, r, evals,
		        after.filtered_scans > before.filtered_scans ? "exact scan" : "graph");
		cr_assert_geq(r, FLOOR, "selectivity %g: recall %.4f", sel[t], r);
		free(pass);
	}
	/* A filter that passes nothing: the empty result, not an error. */
	strata_search_options so;
	strata_search_options_default(&so);
	uint64_t none = 0;
	so.allow_ids = &none;
	so.allow_count = 0;
	cr_assert_eq(strata_search(db, s.q.f, 3, k, &so, found, NULL), 0);
	for (size_t i = 0; i < 3 * k; i++)
		cr_assert_eq(found[i], STRATA_NO_ID);
	free(found);
	strata_close(db);
	t_dir_free(&d);
	t_mat_free(&s.base);
	t_mat_free(&s.q);
}

struct cb_set {
	const uint64_t *ids;
	size_t n;
};

static bool in_set(uint64_t id, void *ctx)
{
	const struct cb_set *c = ctx;
	size_t lo = 0, hi = c->n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (c->ids[mid] < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < c->n && c->ids[lo] == id;
}

static bool reject_all(uint64_t id, void *ctx)
{
	(void)id;
	(void)ctx;
	return false;
}

Test(db_filter, allow_list_bitmap_deny_list_and_callback_agree, .timeout = 300)
{
	struct sift s = load_sift();
	struct t_dir d = t_dir_new();
	char dir[600];
	t_path(&d, "db", dir, sizeof dir);
	build(dir, s.base.f, s.base.rows, (uint32_t)s.base.dim, NULL);
	strata_db *db;
	cr_assert_eq(strata_open(dir, NULL, STRATA_READONLY, &db), 0);
	const uint32_t k = 10;
	size_t n = s.base.rows;
	uint64_t *found = malloc(s.q.rows * k * sizeof *found);
	static const double sel[] = {0.3, 0.05, 0.005};
	for (size_t t = 0; t < 3; t++) {
		size_t m = (size_t)(sel[t] * n);
		uint64_t *pass = random_subset(n, m, 77 + t);
		uint64_t *bitmap = calloc(n / 64 + 1, 8);
		for (size_t i = 0; i < m; i++)
			bitmap[pass[i] / 64] |= 1ull << (pass[i] % 64);
		uint64_t *deny = malloc(n * sizeof *deny);
		size_t nd = 0;
		for (size_t i = 0; i < n; i++)
			if (!((bitmap[i / 64] >> (i % 64)) & 1))
				deny[nd++] = i;
		struct cb_set cb = {pass, m};
		for (int form = 0; form < 4; form++) {
			strata_search_options so;
			strata_search_options_default(&so);
			so.threads = 2;
			if (form == 0)
				so.allow_ids = pass, so.allow_count = m;
			if (form == 1)
				so.allow_bitmap = bitmap, so.allow_bitmap_bits = n;
			if (form == 2)
				so.deny_ids = deny, so.deny_count = nd;
			if (form == 3)
				so.filter = in_set, so.filter_ctx = &cb;
			cr_assert_eq(strata_search(db, s.q.f, s.q.rows, k, &so, found, NULL), 0);
			check_passing(found, s.q.rows * k, pass, m);
			double r = filtered_recall(&s, pass, m, found, k);
			fprintf(stderr, "selectivity %.3f form %d: recall@10 %.4f\n", sel[t], form, r);
			cr_assert_geq(r, FLOOR, "selectivity %g form %d: recall %.4f", sel[t], form, r);
		}
		free(pass), free(bitmap), free(deny);
	}
	/* A callback that rejects everything: empty result. */
	strata_search_options so;
	strata_search_options_default(&so);
	so.filter = reject_all;
	cr_assert_eq(strata_search(db, s.q.f, 2, k, &so, found, NULL), 0);
	for (size_t i = 0; i < 2 * k; i++)
		cr_assert_eq(found[i], STRATA_NO_ID);
	free(found);
	strata_close(db);
	t_dir_free(&d);
	t_mat_free(&s.base);
	t_mat_free(&s.q);
}

/*
 * Two segments: build the halves of SIFT separately and name both segment
 * files in one manifest (as the flush of the ingestion issue will). Filtered
 * answers must equal brute force over the passing subset of the union.
 */
Test(db_filter, filters_across_two_segments, .timeout = 300)
{
	struct sift s = load_sift();
	size_t n = s.base.rows, half = n / 2, dim = s.base.dim;
	struct t_dir d = t_dir_new();
	char a[600], b[600], from[800], to[800];
	t_path(&d, "a", a, sizeof a);
	t_path(&d, "b", b, sizeof b);
	uint64_t *ids = malloc(n * sizeof *ids);
	for (size_t i = 0; i < n; i++)
		ids[i] = i;
	build(a, s.base.f, half, (uint32_t)dim, ids);
	build(b, s.base.f + half * dim, n - half, (uint32_t)dim, ids + half);
	struct mf_manifest ma, mb;
	cr_assert_eq(mf_load(a, &ma), 0);
	cr_assert_eq(mf_load(b, &mb), 0);
	snprintf(from, sizeof from, "%s/seg-0000000000000001.seg", b);
	snprintf(to, sizeof to, "%s/seg-0000000000000002.seg", a);
	cr_assert_eq(rename(from, to), 0);
	struct mf_segment segs[2] = {ma.segments[0], mb.segments[0]};
	segs[1].seq = 2;
	struct mf_manifest m2 = ma;
	m2.segments = segs;
	m2.segment_count = 2;
	m2.next_seq = 3;
	m2.generation++;
	cr_assert_eq(mf_commit(a, &m2), 0);
	mf_free(&ma);
	mf_free(&mb);

	strata_db *db;
	cr_assert_eq(strata_open(a, NULL, STRATA_READONLY | STRATA_VERIFY, &db), 0, "%s",
	             strata_last_error_detail());
	struct strata_stats st;
	strata_stats(db, &st);
	cr_assert_eq(st.segments, 2);
	cr_assert_eq(st.vectors, n);
	const uint32_t k = 10;
	uint64_t *found = malloc(s.q.rows * k * sizeof *found);
	static const double sel[] = {1.0, 0.2, 0.01};
	for (size_t t = 0; t < 3; t++) {
		size_t m = (size_t)(sel[t] * n);
		uint64_t *pass = random_subset(n, m, 500 + t);
		strata_search_options so;
		strata_search_options_default(&so);
		if (sel[t] < 1.0)
			so.allow_ids = pass, so.allow_count = m;
		cr_assert_eq(strata_search(db, s.q.f, s.q.rows, k, &so, found, NULL), 0);
		check_passing(found, s.q.rows * k, pass, m);
		double r = filtered_recall(&s, pass, m, found, k);
		fprintf(stderr, "two segments, selectivity %.2f: recall@10 %.4f\n", sel[t], r);
		cr_assert_geq(r, FLOOR);
		free(pass);
	}
	free(found);
	free(ids);
	strata_close(db);
	t_dir_free(&d);
	t_mat_free(&s.base);
	t_mat_free(&s.q);
}

/*
 * Shares between "scan" and "unfiltered": on 50k vectors a 20-50% filter is
 * answered by the graph walk with widened ef (checked through the stats), and
 * must keep its recall against brute force over the passing subset.
 */
Test(db_filter, widened_walk_keeps_recall_on_50k_vectors, .timeout = 600)
{
	const size_t n = 50000, dim = 16, nq = 60;
	const uint32_t k = 10;
	float *v = t_random_vectors(n, dim, 31), *q = t_random_vectors(nq, dim, 32);
	struct t_dir d = t_dir_new();
	char dir[600];
	t_path(&d, "db", dir, sizeof dir);
	strata_options o;
	strata_options_default(&o);
	o.dim = dim;
	o.ef_construction = 100;
	cr_assert_eq(strata_build(dir, &o, NULL, v, n), 0, "%s", strata_last_error_detail());
	strata_db *db;
	cr_assert_eq(strata_open(dir, NULL, STRATA_READONLY, &db), 0);
	struct sift s = {{.f = v, .rows = n, .dim = dim}, {.f = q, .rows = nq, .dim = dim}};
	uint64_t *found = malloc(nq * k * sizeof *found);
	static const double sel[] = {0.5, 0.3, 0.2};
	for (size_t t = 0; t < 3; t++) {
		size_t m = (size_t)(sel[t] * n);
		uint64_t *pass = random_subset(n, m, 900 + t);
		strata_search_options so;
		strata_search_options_default(&so);
		so.allow_ids = pass;
		so.allow_count = m;
		struct strata_stats a, b;
		strata_stats(db, &a);
		for (size_t i = 0; i < nq; i++) /* one query per call, as most users call it */
			cr_assert_eq(strata_search(db, q + i * dim, 1, k, &so, found + i * k, NULL), 0);
		strata_stats(db, &b);
		cr_assert_eq(b.filtered_graph - a.filtered_graph, nq, "share %.2f was not walked", sel[t]);
		check_passing(found, nq * k, pass, m);
		double r = filtered_recall(&s, pass, m, found, k);
		fprintf(stderr, "50k vectors, share %.2f: recall@10 %.4f, %.0f distances/query (walk)\n",
		        sel[t], r, (double)(b.distance_evals - a.distance_evals) / nq);
		cr_assert_geq(r, FLOOR, "share %.2f: recall %.4f", sel[t], r);
		free(pass);
	}
	free(found);
	strata_close(db);
	t_dir_free(&d);
	free(v);
	free(q);
}
