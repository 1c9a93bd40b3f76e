/*
 * db_model_test.c - model-based test of the write path: long random
 * sequences of upsert / delete / get / search / flush / close+reopen on small
 * dimensions, each checked against a plain in-memory reference.
 *
 * Checked after every step that reads: exact membership and the exact vector
 * for strata_get; for searches with ef above the number of vectors, the
 * brute-force answer over the reference (distances equal, ids equal up to
 * ties); stats' live vector count. Small memtables make flushes happen by
 * themselves along the way, and a merge factor of 2 (with max_segments 0, 1
 * or 2, and merge_into_largest_pct 0 or 50, by seed) makes the compactor
 * merge and rewrite segments under the sequence's feet (strata_compact is
 * one of the steps too); reopening checks that WAL replay, the segments and
 * the deletion files give back the same content.
 *
 * The seed of a failing run is printed; STRATA_MODEL_SEED reruns it, and
 * STRATA_MODEL_STEPS lengthens the runs (default 1500 steps per seed).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strata.h"
#include "t_support.h"

#define MAX_IDS 400

struct model {
	uint32_t dim;
	strata_metric metric;
	uint32_t max_segments; /* per seed: 0 (size tiers only), 1 or 2 */
	uint32_t into_largest; /* merge_into_largest_pct, per seed: 0 or 50 */
	bool live[MAX_IDS];
	float vec[MAX_IDS][8];
};

static uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static float rng_float(uint64_t *s)
{
	/* Coarse values make exact distance ties likely: the merge's tie order gets exercised. */
	return (float)(rng_next(s) % 17) / 4.0f - 2.0f;
}

static void normalise(float *v, uint32_t dim)
{
	double n = 0;
	for (uint32_t j = 0; j < dim; j++)
		n += (double)v[j] * v[j];
	if (n > 0)
		for (uint32_t j = 0; j < dim; j++)
			v[j] = (float)(v[j] / sqrt(n));
}

static double dist(const struct model *m, const float *a, const float *b)
{
	double d = 0;
	if (m->metric == STRATA_METRIC_L2) {
		for (uint32_t j = 0; j < m->dim; j++)
			d += ((double)a[j] - b[j]) * ((double)a[j] - b[j]);
		return d;
	}
	float qa[8], qb[8];
	memcpy(qa, a, sizeof qa);
	memcpy(qb, b, sizeof qb);
	if (m->metric == STRATA_METRIC_COSINE) {
		normalise(qa, m->dim);
		normalise(qb, m->dim);
	}
	for (uint32_t j = 0; j < m->dim; j++)
		d += (double)qa[j] * qb[j];
	return 1.0 - d;
}

static strata_db *open_db(const char *dir, const struct model *m, unsigned flags, uint64_t mt_max)
{
	strata_options o;
	strata_options_default(&o);
	o.dim = m->dim;
	o.metric = m->metric;
	o.M = 8;
	o.ef_construction = 64;
	o.threads = 1;
	o.memtable_max_vectors = mt_max;
	o.sync_mode = STRATA_SYNC_NONE; /* durability is the crash tests' job; this one is about content */
	o.merge_factor = 2;             /* background merges and rewrites all along the way */
	o.max_segments = m->max_segments;
	o.merge_into_largest_pct = m->into_largest;
	o.tombstone_pct = 15;
	strata_db *db = NULL;
	int rc = strata_open(dir, &o, flags, &db);
	cr_assert_eq(rc, 0, "open: %s: %s", strata_strerror(rc), strata_last_error_detail());
	return db;
}

static void check_get(strata_db *db, const struct model *m, uint64_t seed, int step)
{
	float out[8];
	for (uint64_t id = 0; id < MAX_IDS; id++) {
		int rc = strata_get(db, id, out);
		if (!m->live[id]) {
			cr_assert_eq(rc, STRATA_ENOTFOUND, "seed %llu step %d: get(%llu) = %d, want absent",
			             (unsigned long long)seed, step, (unsigned long long)id, rc);
			continue;
		}
		cr_assert_eq(rc, 0, "seed %llu step %d: get(%llu) = %d (%s), want present",
		             (unsigned long long)seed, step, (unsigned long long)id, rc,
		             strata_last_error_detail());
		float want[8];
		memcpy(want, m->vec[id], sizeof want);
		if (m->metric == STRATA_METRIC_COSINE)
			normalise(want, m->dim);
		for (uint32_t j = 0; j < m->dim; j++)
			cr_assert(fabsf(out[j] - want[j]) <= 1e-5f, "seed %llu step %d: get(%llu)[%u] = %g, want %g",
			          (unsigned long long)seed, step, (unsigned long long)id, j, out[j], want[j]);
	}
}

static void check_search(strata_db *db, const struct model *m, uint64_t *rs, uint64_t seed, int step)
{
	enum { K = 10 };
	float q[8];
	for (uint32_t j = 0; j < m->dim; j++)
		q[j] = rng_float(rs) + 0.125f;
	uint64_t ids[K];
	float d[K];
	strata_search_options so;
	strata_search_options_default(&so);
	so.ef = 1000; /* above the number of vectors: the walk sees them all */
	int rc = strata_search(db, q, 1, K, &so, ids, d);
	cr_assert_eq(rc, 0, "search: %s", strata_last_error_detail());
	/* Reference: all live distances, sorted. */
	double ref[MAX_IDS];
	size_t n = 0;
	for (uint64_t id = 0; id < MAX_IDS; id++)
		if (m->live[id])
			ref[n++] = dist(m, q, m->vec[id]);
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && ref[j - 1] > ref[j]; j--) {
			double t = ref[j];
			ref[j] = ref[j - 1];
			ref[j - 1] = t;
		}
	for (size_t i = 0; i < K; i++) {
		if (i >= n) {
			cr_assert_eq(ids[i], STRATA_NO_ID, "seed %llu step %d: slot %zu should be empty",
			             (unsigned long long)seed, step, i);
			continue;
		}
		cr_assert_neq(ids[i], STRATA_NO_ID, "seed %llu step %d: slot %zu empty, %zu live",
		              (unsigned long long)seed, step, i, n);
		cr_assert(ids[i] < MAX_IDS && m->live[ids[i]], "seed %llu step %d: result %llu is not live",
		          (unsigned long long)seed, step, (unsigned long long)ids[i]);
		double want = ref[i];
		cr_assert(fabs(d[i] - want) <= 1e-3 * (1 + fabs(want)),
		          "seed %llu step %d: rank %zu distance %g, brute force %g",
		          (unsigned long long)seed, step, i, d[i], want);
		double mine = dist(m, q, m->vec[ids[i]]);
		cr_assert(fabs(mine - d[i]) <= 1e-3 * (1 + fabs(mine)),
		          "seed %llu step %d: id %llu reported at %g, is at %g", (unsigned long long)seed,
		          step, (unsigned long long)ids[i], d[i], mine);
		for (size_t j = 0; j < i; j++)
			cr_assert_neq(ids[j], ids[i], "seed %llu step %d: id %llu twice",
			              (unsigned long long)seed, step, (unsigned long long)ids[i]);
	}
}

static void run_model(uint64_t seed, strata_metric metric, uint32_t dim, int steps)
{
	struct t_dir dir = t_dir_new_mem(); /* content, not durability: the crash tests do that */
	struct model m = {.dim = dim, .metric = metric};
	uint64_t rs = seed;
	uint64_t mt_max = 16 + rng_next(&rs) % 100;
	m.max_segments = (uint32_t)(seed % 3);
	m.into_largest = seed / 3 % 2 ? 50 : 0;
	strata_db *db = open_db(dir.path, &m, STRATA_CREATE, mt_max);
	for (int step = 0; step < steps; step++) {
		unsigned op = (unsigned)(rng_next(&rs) % 100);
		if (op < 45) { /* upsert a batch */
			size_t n = 1 + rng_next(&rs) % 12;
			uint64_t ids[12];
			float vecs[12 * 8];
			for (size_t i = 0; i < n; i++) {
				ids[i] = rng_next(&rs) % MAX_IDS;
				for (uint32_t j = 0; j < dim; j++)
					vecs[i * dim + j] = rng_float(&rs);
				if (metric == STRATA_METRIC_COSINE && vecs[i * dim] == 0)
					vecs[i * dim] = 1; /* a zero vector has no direction */
			}
			int rc = strata_upsert(db, ids, vecs, n);
			cr_assert_eq(rc, 0, "seed %llu step %d: upsert: %s", (unsigned long long)seed, step,
			             strata_last_error_detail());
			for (size_t i = 0; i < n; i++) { /* later in the batch wins */
				m.live[ids[i]] = true;
				memcpy(m.vec[ids[i]], vecs + i * dim, dim * sizeof(float));
			}
		} else if (op < 65) {
			size_t n = 1 + rng_next(&rs) % 6;
			uint64_t ids[6];
			for (size_t i = 0; i < n; i++)
				ids[i] = rng_next(&rs) % MAX_IDS;
			int rc = strata_delete(db, ids, n);
			cr_assert_eq(rc, 0, "seed %llu step %d: delete: %s", (unsigned long long)seed, step,
			             strata_last_error_detail());
			for (size_t i = 0; i < n; i++)
				m.live[ids[i]] = false;
		} else if (op < 80) {
			check_search(db, &m, &rs, seed, step);
		} else if (op < 88) {
			check_get(db, &m, seed, step);
		} else if (op < 93) {
			int rc = strata_flush(db);
			cr_assert_eq(rc, 0, "seed %llu step %d: flush: %s", (unsigned long long)seed, step,
			             strata_last_error_detail());
		} else if (op < 95) {
			int rc = strata_compact(db);
			cr_assert_eq(rc, 0, "seed %llu step %d: compact: %s", (unsigned long long)seed, step,
			             strata_last_error_detail());
			struct strata_stats st;
			cr_assert_eq(strata_stats(db, &st), 0);
			cr_assert(st.segments <= 2, "seed %llu step %d: %u segments after compact",
			          (unsigned long long)seed, step, st.segments); /* a background flush may add one */
		} else if (op < 97) {
			cr_assert_eq(strata_close(db), 0);
			mt_max = 16 + rng_next(&rs) % 100;
			db = open_db(dir.path, &m, 0, mt_max);
			check_get(db, &m, seed, step);
		} else {
			/* A read-only reader beside the writer sees the flushed state: flush, then compare. */
			cr_assert_eq(strata_flush(db), 0, "%s", strata_last_error_detail());
			strata_db *ro = open_db(dir.path, &m, STRATA_READONLY, mt_max);
			check_get(ro, &m, seed, step);
			check_search(ro, &m, &rs, seed, step);
			strata_close(ro);
		}
		if (step % 50 == 0) {
			struct strata_stats st;
			cr_assert_eq(strata_stats(db, &st), 0);
			uint64_t live = 0;
			for (size_t i = 0; i < MAX_IDS; i++)
				live += m.live[i];
			cr_assert_eq(st.vectors, live, "seed %llu step %d: stats say %llu live, model %llu",
			             (unsigned long long)seed, step, (unsigned long long)st.vectors,
			             (unsigned long long)live);
		}
	}
	check_get(db, &m, seed, steps);
	cr_assert_eq(strata_close(db), 0);
	db = open_db(dir.path, &m, STRATA_VERIFY, mt_max);
	check_get(db, &m, seed, steps + 1);
	check_search(db, &m, &rs, seed, steps + 1);
	strata_close(db);
	t_dir_free(&dir);
}

static int steps_default(void)
{
	const char *s = getenv("STRATA_MODEL_STEPS");
	return s ? atoi(s) : 1500;
}

static void run_seeds(strata_metric metric, uint32_t dim, uint64_t first, int count)
{
	const char *fixed = getenv("STRATA_MODEL_SEED");
	if (fixed) {
		run_model(strtoull(fixed, NULL, 0), metric, dim, steps_default());
		return;
	}
	for (int i = 0; i < count; i++)
		run_model(first + (uint64_t)i, metric, dim, steps_default());
}

Test(db_model, l2_dim4) { run_seeds(STRATA_METRIC_L2, 4, 1000, 4); }
Test(db_model, cosine_dim3) { run_seeds(STRATA_METRIC_COSINE, 3, 2000, 2); }
Test(db_model, ip_dim8) { run_seeds(STRATA_METRIC_IP, 8, 3000, 2); }
