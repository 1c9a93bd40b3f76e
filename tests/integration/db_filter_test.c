/*
 * db_filter_test.c - filtered search keeps its recall at every selectivity.
 * On SIFT 10k (../shared/data) with random allow-lists passing 100%, 50%, 10%,
 * 1%, 0.1% and 0.01% of the vectors, recall@10 at the default ef against
 * brute force over the passing subset stays above a floor; a filter passing
 * nothing gives the empty result; the filter forms (allow-list, bitmap,
 * deny-list, callback) agree; and filters work across several segments,
 * together with real deletes, superseding writes and unflushed memtable rows,
 * with background merges off and on.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

static bool in_bits(uint64_t id, void *ctx)
{
	const uint64_t *bits = ctx;
	return (bits[id / 64] >> (id % 64)) & 1;
}

/*
 * One passing set of ids 0..n-1 in the four forms a filter can take: the
 * sorted allow-list itself, a bitmap, the complement as a deny-list, and a
 * callback (on the bitmap).
 */
enum { FORM_ALLOW, FORM_BITMAP, FORM_DENY, FORM_CALLBACK, FORMS };

struct forms {
	const uint64_t *pass;
	size_t m, n;
	uint64_t *bits;
	uint64_t *deny;
	size_t nd;
};

static struct forms forms_new(const uint64_t *pass, size_t m, size_t n)
{
	struct forms f = {.pass = pass, .m = m, .n = n};
	f.bits = calloc(n / 64 + 1, sizeof *f.bits);
	f.deny = malloc((n ? n : 1) * sizeof *f.deny);
	cr_assert(f.bits && f.deny);
	for (size_t i = 0; i < m; i++)
		f.bits[pass[i] / 64] |= 1ull << (pass[i] % 64);
	for (size_t i = 0; i < n; i++)
		if (!in_bits(i, f.bits))
			f.deny[f.nd++] = i;
	return f;
}

static void forms_free(struct forms *f)
{
	free(f->bits);
	free(f->deny);
}

/* Default search options with the filter in form `form`. */
static strata_search_options forms_options(const struct forms *f, int form)
{
	strata_search_options so;
	strata_search_options_default(&so);
	if (form == FORM_ALLOW)
		so.allow_ids = f->pass, so.allow_count = f->m;
	if (form == FORM_BITMAP)
		so.allow_bitmap = f->bits, so.allow_bitmap_bits = f->n;
	if (form == FORM_DENY)
		so.deny_ids = f->deny, so.deny_count = f->nd;
	if (form == FORM_CALLBACK)
		so.filter = in_bits, so.filter_ctx = f->bits;
	return so;
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
		struct forms f = forms_new(pass, m, n);
		for (int form = 0; form < FORMS; form++) {
			strata_search_options so = forms_options(&f, form);
			so.threads = 2;
			cr_assert_eq(strata_search(db, s.q.f, s.q.rows, k, &so, found, NULL), 0);
			check_passing(found, s.q.rows * k, pass, m);
			double r = filtered_recall(&s, pass, m, found, k);
			fprintf(stderr, "selectivity %.3f form %d: recall@10 %.4f\n", sel[t], form, r);
			cr_assert_geq(r, FLOOR, "selectivity %g form %d: recall %.4f", sel[t], form, r);
		}
		forms_free(&f);
		free(pass);
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
 * Two segments made by hand: the halves of SIFT built separately and both
 * segment files named in one manifest, without deletes or a memtable (the
 * write path's own segments are in the tests below). Filtered answers must
 * match brute force over the passing subset of the union.
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
 * answered by the graph walk (checked through the stats), its beam narrowed
 * at 50% and widened at 20% (plan_beam_factor in engine/search.c), and must
 * keep its recall against brute force over the passing subset.
 */
Test(db_filter, filtered_walk_keeps_recall_on_50k_vectors, .timeout = 600)
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
		struct forms f = forms_new(pass, m, n);
		/* The walk tests an allow-list by a call, a bitmap inline, a callback by a call. */
		for (int form = 0; form < FORMS; form++) {
			if (form == FORM_DENY)
				continue; /* a list, as the allow-list */
			strata_search_options so = forms_options(&f, form);
			struct strata_stats a, b;
			strata_stats(db, &a);
			for (size_t i = 0; i < nq; i++) /* one query per call, as most users call it */
				cr_assert_eq(strata_search(db, q + i * dim, 1, k, &so, found + i * k, NULL), 0);
			strata_stats(db, &b);
			cr_assert_eq(b.filtered_graph - a.filtered_graph, nq, "share %.2f form %d was not walked",
			             sel[t], form);
			check_passing(found, nq * k, pass, m);
			double r = filtered_recall(&s, pass, m, found, k);
			fprintf(stderr, "50k vectors, share %.2f, form %d: recall@10 %.4f, %.0f distances/query\n",
			        sel[t], form, r, (double)(b.distance_evals - a.distance_evals) / nq);
			cr_assert_geq(r, FLOOR, "share %.2f form %d: recall %.4f", sel[t], form, r);
		}
		forms_free(&f);
		free(pass);
	}
	free(found);
	strata_close(db);
	t_dir_free(&d);
	free(v);
	free(q);
}

/* ---- filters over a database written through the write path ------------- */

/*
 * What the database should hold: for each id of 0..n_ids-1, whether it is
 * live and its current vector. Vectors are SIFT base rows, or rows moved a
 * little (superseding writes), kept in `own`.
 */
struct live_model {
	size_t n_ids, dim;
	bool *live;
	const float **vec;
	float *own;      /* n_ids * dim: the superseding vectors */
};

static struct live_model model_new(size_t n_ids, size_t dim)
{
	struct live_model m = {.n_ids = n_ids, .dim = dim};
	m.live = calloc(n_ids, sizeof *m.live);
	m.vec = calloc(n_ids, sizeof *m.vec);
	m.own = calloc(n_ids * dim, sizeof *m.own);
	cr_assert(m.live && m.vec && m.own);
	return m;
}

static void model_free(struct live_model *m)
{
	free(m->live);
	free(m->vec);
	free(m->own);
}

static uint64_t next_rand(uint64_t *s)
{
	*s = *s * 6364136223846793005ull + 1442695040888963407ull;
	return *s >> 33;
}

static void db_upsert_one(strata_db *db, struct live_model *m, uint64_t id, const float *v)
{
	cr_assert_eq(strata_upsert(db, &id, v, 1), 0, "upsert %llu: %s", (unsigned long long)id,
	             strata_last_error_detail());
	m->live[id] = true;
	m->vec[id] = v;
}

/* Upsert ids [from, to) with the base rows of the same number, in one call. */
static void db_upsert_rows(strata_db *db, struct live_model *m, const struct sift *s, size_t from,
                           size_t to)
{
	uint64_t *ids = malloc((to - from) * sizeof *ids);
	for (size_t i = from; i < to; i++) {
		ids[i - from] = i;
		m->live[i] = true;
		m->vec[i] = s->base.f + i * s->base.dim;
	}
	cr_assert_eq(strata_upsert(db, ids, s->base.f + from * s->base.dim, to - from), 0, "%s",
	             strata_last_error_detail());
	free(ids);
}

/* Supersede id with its own row (or another) moved by a small seeded offset. */
static void db_supersede(strata_db *db, struct live_model *m, const struct sift *s, uint64_t id,
                         uint64_t *rs)
{
	float *v = m->own + id * m->dim;
	const float *from = s->base.f + (next_rand(rs) % s->base.rows) * s->base.dim;
	for (size_t j = 0; j < m->dim; j++)
		v[j] = from[j] + (float)(next_rand(rs) % 9) - 4.0f;
	db_upsert_one(db, m, id, v);
}

/* Delete every id of [from, to) with probability pct / 100; returns the count. */
static size_t db_delete_some(strata_db *db, struct live_model *m, size_t from, size_t to,
                             unsigned pct, uint64_t *rs)
{
	uint64_t *ids = malloc((to - from) * sizeof *ids);
	size_t n = 0;
	for (size_t i = from; i < to; i++)
		if (next_rand(rs) % 100 < pct) {
			ids[n++] = i;
			m->live[i] = false;
			m->vec[i] = NULL;
		}
	cr_assert_eq(strata_delete(db, ids, n), 0, "%s", strata_last_error_detail());
	free(ids);
	return n;
}

static double l2(const float *a, const float *b, size_t dim)
{
	double d = 0;
	for (size_t j = 0; j < dim; j++)
		d += ((double)a[j] - b[j]) * ((double)a[j] - b[j]);
	return d;
}

/* Brute force over the live vectors whose ids pass (pass_bits over ids). */
struct live_truth {
	uint64_t *ids;    /* the live passing ids, ascending */
	size_t n;
	uint32_t *rows;   /* nq x k: indexes into ids, nearest first */
};

static struct live_truth live_truth_new(const struct sift *s, const struct live_model *m,
                                        const uint64_t *pass_bits, uint32_t k)
{
	size_t dim = m->dim;
	struct live_truth t = {.ids = malloc((m->n_ids + 1) * sizeof *t.ids),
	                       .rows = malloc(s->q.rows * k * sizeof *t.rows)};
	float *vec = malloc((m->n_ids + 1) * dim * sizeof *vec);
	for (size_t id = 0; id < m->n_ids; id++)
		if (m->live[id] && ((pass_bits[id / 64] >> (id % 64)) & 1)) {
			t.ids[t.n] = id;
			memcpy(vec + t.n * dim, m->vec[id], dim * sizeof *vec);
			t.n++;
		}
	t_brute_force(vec, t.n, s->q.f, s->q.rows, dim, STRATA_METRIC_L2, k, t.rows);
	free(vec);
	return t;
}

static void live_truth_free(struct live_truth *t)
{
	free(t->ids);
	free(t->rows);
}

/*
 * Check one filtered answer (nq x k ids and distances) against the model:
 * every id live, passing, once per query, reported at the distance of its
 * current vector (an old copy of a superseded id would not be); slots beyond
 * the live passing count empty. Returns recall@k against the brute force.
 */
static double check_answer(const struct sift *s, const struct live_model *m,
                           const uint64_t *pass_bits, const struct live_truth *t,
                           const uint64_t *ids, const float *dists, uint32_t k, const char *what)
{
	size_t dim = m->dim, nq = s->q.rows;
	size_t want = t->n < k ? t->n : k, hit = 0;
	for (size_t q = 0; q < nq; q++) {
		const float *qv = s->q.f + q * dim;
		for (uint32_t i = 0; i < k; i++) {
			uint64_t id = ids[q * k + i];
			if (i >= want) {
				cr_assert_eq(id, STRATA_NO_ID, "%s: query %zu slot %u of %zu live passing", what, q,
				             i, t->n);
				cr_assert(isinf(dists[q * k + i]));
				continue;
			}
			if (id == STRATA_NO_ID)
				continue; /* a miss: counted by recall */
			cr_assert(id < m->n_ids && m->live[id], "%s: id %llu is deleted or was never written",
			          what, (unsigned long long)id);
			cr_assert((pass_bits[id / 64] >> (id % 64)) & 1, "%s: id %llu does not pass", what,
			          (unsigned long long)id);
			double d = l2(qv, m->vec[id], dim);
			cr_assert(fabs(dists[q * k + i] - d) <= 1e-4 * (1 + d),
			          "%s: id %llu at %g, its current vector is at %g (an old copy?)", what,
			          (unsigned long long)id, dists[q * k + i], d);
			for (uint32_t j = 0; j < i; j++)
				cr_assert_neq(ids[q * k + j], id, "%s: id %llu twice", what, (unsigned long long)id);
			for (size_t j = 0; j < want; j++)
				if (t->ids[t->rows[q * k + j]] == id) {
					hit++;
					break;
				}
		}
	}
	return want ? (double)hit / (double)(nq * want) : 1.0;
}

/* Wait until the memtable's background indexer has inserted every row (answers are then stable). */
static void wait_indexed(strata_db *db)
{
	for (int i = 0; i < 3000; i++) {
		struct strata_stats st;
		strata_stats(db, &st);
		if (st.memtable_unindexed == 0 && !st.flush_pending && !st.compaction_running)
			return;
		nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
	}
	cr_assert_fail("the memtable was not indexed within 30 s");
}

/*
 * Filtered searches at every selectivity of the issue, over the id universe
 * (deleted ids included, so the filters name dead vectors too), in the four
 * forms; each checked by check_answer and for recall. With `stable` (nothing
 * changes the database meanwhile) the answers with 1, 2 and 3 threads must
 * be identical, ids and distances.
 */
static void check_filters(strata_db *db, const struct sift *s, const struct live_model *m,
                          bool stable, const char *phase)
{
	static const double sel[] = {1.0, 0.5, 0.1, 0.01, 0.001, 0.0001};
	const uint32_t k = 10;
	size_t nq = s->q.rows, n = m->n_ids;
	uint64_t *ids = malloc(nq * k * sizeof *ids), *ids2 = malloc(nq * k * sizeof *ids2);
	float *d = malloc(nq * k * sizeof *d), *d2 = malloc(nq * k * sizeof *d2);
	char what[160];
	for (size_t t = 0; t < sizeof sel / sizeof *sel; t++) {
		size_t cnt = (size_t)(sel[t] * n + 0.5);
		if (cnt == 0)
			cnt = 1;
		uint64_t *pass = random_subset(n, cnt, 4000 + t);
		struct forms f = forms_new(pass, cnt, n);
		const uint64_t *bits = f.bits;
		struct live_truth truth = live_truth_new(s, m, bits, k);
		for (int form = 0; form < FORMS; form++) {
			strata_search_options so = forms_options(&f, form); /* default ef */
			snprintf(what, sizeof what, "%s, selectivity %g, form %d", phase, sel[t], form);
			cr_assert_eq(strata_search(db, s->q.f, nq, k, &so, ids, d), 0, "%s: %s", what,
			             strata_last_error_detail());
			double r = check_answer(s, m, bits, &truth, ids, d, k, what);
			if (form == FORM_ALLOW)
				fprintf(stderr, "%s: recall@10 %.4f\n", what, r);
			cr_assert_geq(r, FLOOR, "%s: recall %.4f", what, r);
			if (form == FORM_BITMAP) {
				/* One query per call: no batch to resolve the bitmap to nodes for, so the
				 * walk tests ids against it (and tombstones) inline. */
				for (size_t q = 0; q < nq; q++)
					cr_assert_eq(strata_search(db, s->q.f + q * s->q.dim, 1, k, &so, ids2 + q * k,
					                           d2 + q * k),
					             0);
				double r1 = check_answer(s, m, bits, &truth, ids2, d2, k, what);
				cr_assert_geq(r1, FLOOR, "%s, one query per call: recall %.4f", what, r1);
			}
			for (uint32_t threads = 2; stable && threads <= 3; threads++) {
				so.threads = threads;
				cr_assert_eq(strata_search(db, s->q.f, nq, k, &so, ids2, d2), 0);
				cr_assert(memcmp(ids, ids2, nq * k * sizeof *ids) == 0 &&
				                  memcmp(d, d2, nq * k * sizeof *d) == 0,
				          "%s: the answer with %u threads differs from 1 thread", what, threads);
			}
		}
		live_truth_free(&truth);
		forms_free(&f);
		free(pass);
	}
	/* Filters that pass nothing live: an empty list, and only deleted ids. */
	strata_search_options so;
	strata_search_options_default(&so);
	uint64_t none = 0, *dead = malloc(n * sizeof *dead);
	size_t n_dead = 0;
	for (size_t i = 0; i < n; i++)
		if (!m->live[i])
			dead[n_dead++] = i;
	cr_assert_gt(n_dead, 0);
	for (int f = 0; f < 2; f++) {
		so.allow_ids = f == 0 ? &none : dead;
		so.allow_count = f == 0 ? 0 : n_dead;
		cr_assert_eq(strata_search(db, s->q.f, nq, k, &so, ids, d), 0, "%s", strata_last_error_detail());
		for (size_t i = 0; i < nq * k; i++)
			cr_assert(ids[i] == STRATA_NO_ID && isinf(d[i]), "%s: %s filter returned %llu", phase,
			          f == 0 ? "empty" : "deleted-only", (unsigned long long)ids[i]);
	}
	free(dead);
	free(ids), free(ids2), free(d), free(d2);
}

static strata_db *open_rw(const char *dir, uint32_t dim, bool merges, unsigned flags)
{
	strata_options o;
	strata_options_default(&o);
	o.dim = dim;
	o.ef_construction = 100;
	o.threads = 2;
	o.sync_mode = STRATA_SYNC_NONE; /* content, not durability */
	o.disable_background_merges = !merges;
	o.merge_factor = 2;             /* with merges on, two segments of a tier already merge */
	strata_db *db = NULL;
	int rc = strata_open(dir, &o, flags, &db);
	cr_assert_eq(rc, 0, "open: %s", strata_last_error_detail());
	return db;
}

/*
 * Writes SIFT through the write path in the shape that matters to filters:
 *   segment 1: ids 0..3999; segment 2: ids 4000..7999 (each flushed);
 *   then ~15% of 0..7999 deleted and ~10% superseded with moved vectors,
 *   flushed: deletion files for segments 1 and 2, the new copies in segment 3;
 *   then, unflushed (memtable): ids 8000..9999, some of them deleted again,
 *   some segment ids superseded or deleted once more.
 */
static void write_layers(strata_db *db, const struct sift *s, struct live_model *m)
{
	uint64_t rs = 12345;
	db_upsert_rows(db, m, s, 0, 4000);
	cr_assert_eq(strata_flush(db), 0, "%s", strata_last_error_detail());
	db_upsert_rows(db, m, s, 4000, 8000);
	cr_assert_eq(strata_flush(db), 0, "%s", strata_last_error_detail());
	cr_assert_gt(db_delete_some(db, m, 0, 8000, 15, &rs), 0);
	for (uint64_t id = 0; id < 8000; id++)
		if (next_rand(&rs) % 10 == 0)
			db_supersede(db, m, s, id, &rs); /* deleted ones come back, live ones move */
	cr_assert_eq(strata_flush(db), 0, "%s", strata_last_error_detail());
	db_upsert_rows(db, m, s, 8000, 10000);
	cr_assert_gt(db_delete_some(db, m, 8000, 10000, 20, &rs), 0); /* deleted memtable rows */
	for (uint64_t id = 0; id < 8000; id += 37) /* segment rows superseded in the memtable */
		db_supersede(db, m, s, id, &rs);
	db_delete_some(db, m, 0, 8000, 3, &rs); /* and more segment rows deleted */
	for (uint64_t id = 8001; id < 10000; id += 53) /* memtable rows superseded in the memtable */
		db_supersede(db, m, s, id, &rs);
}

/* A database written by write_layers, with its model. */
struct layered {
	struct sift s;
	struct t_dir d;
	struct live_model m;
	strata_db *db;
};

static struct layered layered_new(bool merges)
{
	struct layered l = {.s = load_sift(), .d = t_dir_new_mem()};
	l.m = model_new(l.s.base.rows, l.s.base.dim);
	l.db = open_rw(l.d.path, (uint32_t)l.s.base.dim, merges, STRATA_CREATE);
	write_layers(l.db, &l.s, &l.m);
	return l;
}

static void layered_free(struct layered *l)
{
	cr_assert_eq(strata_close(l->db), 0);
	model_free(&l->m);
	t_dir_free(&l->d);
	t_mat_free(&l->s.base);
	t_mat_free(&l->s.q);
}

Test(db_filter, filters_with_deletes_memtable_and_flushed_segments, .timeout = 600)
{
	struct layered l = layered_new(false);
	strata_db *db = l.db;
	struct sift s = l.s;
	struct live_model m = l.m;
	wait_indexed(db);
	struct strata_stats st;
	strata_stats(db, &st);
	cr_assert_eq(st.segments, 3, "segments: %u", st.segments);
	cr_assert_gt(st.tombstones, 0);
	cr_assert_gt(st.memtable_vectors, 0);
	cr_assert_eq(st.merges, 0);
	check_filters(db, &s, &m, true, "live handle");

	/* Reopened: the deletion files are read back and the memtable replayed from the WAL. */
	cr_assert_eq(strata_close(db), 0);
	db = l.db = open_rw(l.d.path, (uint32_t)s.base.dim, false, 0);
	wait_indexed(db);
	strata_stats(db, &st);
	cr_assert_eq(st.segments, 3);
	cr_assert_gt(st.tombstones, 0);
	check_filters(db, &s, &m, true, "reopened");

	/* Everything flushed: four segments, no memtable. */
	cr_assert_eq(strata_flush(db), 0);
	strata_stats(db, &st);
	cr_assert_eq(st.segments, 4);
	cr_assert_eq(st.memtable_vectors, 0);
	check_filters(db, &s, &m, true, "all flushed");
	layered_free(&l);
}

Test(db_filter, filters_while_background_merges_run, .timeout = 600)
{
	struct layered l = layered_new(true);
	strata_db *db = l.db;
	struct sift s = l.s;
	struct live_model m = l.m;
	/* Three segments of one tier with merge_factor 2: the compactor merges by itself. */
	struct strata_stats st;
	for (int i = 0; i < 6000; i++) {
		strata_stats(db, &st);
		if (st.merges > 0)
			break;
		nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
	}
	cr_assert_gt(st.merges, 0, "no background merge within 60 s");
	/* Merges may still run meanwhile: the answers must be right, though not stable. */
	check_filters(db, &s, &m, false, "merges running");
	cr_assert_eq(strata_flush(db), 0);
	check_filters(db, &s, &m, false, "flushed, merges running");
	cr_assert_eq(strata_compact(db), 0, "%s", strata_last_error_detail());
	wait_indexed(db);
	strata_stats(db, &st);
	fprintf(stderr, "merges: %llu, segments after compact: %u\n", (unsigned long long)st.merges,
	        st.segments);
	cr_assert_geq(st.merges, 2, "the background compactor and strata_compact both merged");
	cr_assert_eq(st.segments, 1);
	cr_assert_eq(st.tombstones, 0);
	check_filters(db, &s, &m, true, "compacted");
	layered_free(&l);
}
