/*
 * search.c - strata_search(): a batch of queries over every segment of the
 * database, each searched in place on its mapping, merged into one top-k.
 *
 * Determinism: each segment's answer depends only on its graph and the query;
 * the merge orders by (distance, id), so the result does not depend on the
 * number of threads or on the order in which segments are visited.
 *
 * Filters (allow-list and/or callback) are applied inside the graph walk:
 * filtered-out nodes keep the graph connected but never enter the results.
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "err.h"
#include "hnsw.h"
#include "le.h"

struct filter_ctx {
	const uint8_t *ids;        /* the segment's IDS section */
	const uint64_t *allow;
	size_t allow_n;
	strata_filter_fn fn;
	void *fn_ctx;
};

static bool id_allowed(const uint64_t *allow, size_t n, uint64_t id)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (allow[mid] < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && allow[lo] == id;
}

static bool accept_node(uint32_t node, void *arg)
{
	const struct filter_ctx *f = arg;
	uint64_t id = le_load64(f->ids + (size_t)node * 8);
	if (f->allow && !id_allowed(f->allow, f->allow_n, id))
		return false;
	return !f->fn || f->fn(id, f->fn_ctx);
}

static int grow(void **p, size_t *cap, size_t want, size_t elem)
{
	if (*cap >= want)
		return 0;
	void *n = realloc(*p, want * elem);
	if (!n)
		return STRATA_ENOMEM;
	*p = n;
	*cap = want;
	return 0;
}

static int result_cmp(const void *a, const void *b)
{
	const struct db_result *x = a, *y = b;
	if (x->dist != y->dist)
		return x->dist < y->dist ? -1 : 1;
	return (x->id > y->id) - (x->id < y->id);
}

struct batch {
	strata_db *db;
	const float *queries;
	uint32_t k;
	uint32_t ef;
	const strata_search_options *so;
	uint64_t *ids_out;
	float *dists_out;
};

static int search_one(const struct batch *b, struct db_scratch *s, size_t q)
{
	strata_db *db = b->db;
	const uint32_t dim = db->mf.dim, k = b->k;
	const float *query = b->queries + q * dim;
	for (uint32_t j = 0; j < dim; j++)
		if (!isfinite(query[j]))
			return err_set(STRATA_ENONFINITE, "query %zu, component %u is not finite", q, j);
	if (db->mf.metric == STRATA_METRIC_COSINE) {
		memcpy(s->query, query, dim * sizeof *query);
		dist_normalize(s->query, dim);
		query = s->query;
	}

	size_t n_merged = 0;
	uint64_t evals = 0;
	int rc = 0;
	/* An allow-list of no ids passes nothing: the empty result, without a walk. */
	uint32_t nseg = (b->so->allow_ids && b->so->allow_count == 0) ? 0 : db->nseg;
	for (uint32_t i = 0; i < nseg; i++) {
		const struct db_segment *seg = &db->segs[i];
		struct filter_ctx f = {
			.ids = seg->info.ids,
			.allow = b->so->allow_ids,
			.allow_n = b->so->allow_count,
			.fn = b->so->filter,
			.fn_ctx = b->so->filter_ctx,
		};
		bool filtered = f.allow || f.fn;
		uint32_t n = 0;
		rc = hnsw_search(&seg->view, query, k, b->ef, filtered ? accept_node : NULL, &f, s->hs,
		                 s->hits, &n, &evals);
		if (rc) {
			err_prefix(rc, seg->name);
			break;
		}
		for (uint32_t j = 0; j < n; j++) {
			s->merged[n_merged].dist = s->hits[j].dist;
			s->merged[n_merged].id = le_load64(seg->info.ids + (size_t)s->hits[j].node * 8);
			n_merged++;
		}
	}
	atomic_fetch_add_explicit(&db->dist_evals, evals, memory_order_relaxed);
	if (rc)
		return rc;
	if (db->nseg > 1)
		qsort(s->merged, n_merged, sizeof *s->merged, result_cmp);
	for (uint32_t i = 0; i < k; i++) {
		bool have = i < n_merged;
		if (b->ids_out)
			b->ids_out[q * k + i] = have ? s->merged[i].id : STRATA_NO_ID;
		if (b->dists_out)
			b->dists_out[q * k + i] = have ? s->merged[i].dist : INFINITY;
	}
	return 0;
}

static int scratch_fit(strata_db *db, struct db_scratch *s, uint32_t k)
{
	size_t seg = db->nseg ? db->nseg : 1;
	if (grow((void **)&s->hits, &s->hits_cap, k, sizeof *s->hits) ||
	    grow((void **)&s->merged, &s->merged_cap, (size_t)k * seg, sizeof *s->merged) ||
	    grow((void **)&s->query, &s->query_cap, db->mf.dim, sizeof *s->query))
		return err_set(STRATA_ENOMEM, "search buffers for k = %u", k);
	return 0;
}

struct worker {
	const struct batch *b;
	size_t from, to;
	int rc;
	char detail[ERR_DETAIL_MAX];
};

static int run_range(const struct batch *b, size_t from, size_t to)
{
	struct db_scratch *s = db_scratch_get(b->db);
	if (!s)
		return err_set(STRATA_ENOMEM, "search scratch");
	int rc = scratch_fit(b->db, s, b->k);
	for (size_t q = from; !rc && q < to; q++)
		rc = search_one(b, s, q);
	db_scratch_put(b->db, s);
	return rc;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	w->rc = run_range(w->b, w->from, w->to);
	if (w->rc) /* the detail lives in this thread: carry it to the caller's */
		memcpy(w->detail, err_detail(), sizeof w->detail);
	return NULL;
}

static int check_allow_list(const strata_search_options *so)
{
	if (so->allow_count && !so->allow_ids)
		return err_set(STRATA_EINVAL, "allow_count %zu with a null allow_ids", so->allow_count);
	for (size_t i = 1; i < so->allow_count; i++)
		if (so->allow_ids[i] < so->allow_ids[i - 1])
			return err_set(STRATA_EINVAL, "allow_ids is not sorted at index %zu", i);
	return 0;
}

int strata_search(strata_db *db, const float *queries, size_t nq, uint32_t k,
                  const strata_search_options *sopts, uint64_t *ids_out, float *dists_out)
{
	err_clear();
	if (!db)
		return err_set(STRATA_EINVAL, "strata_search: null database");
	if (k == 0 || k > STRATA_K_MAX)
		return err_set(STRATA_EINVAL, "k = %u is outside 1..%u", k, STRATA_K_MAX);
	if (nq > 0 && !queries)
		return err_set(STRATA_EINVAL, "%zu queries but a null pointer", nq);
	strata_search_options defaults;
	if (!sopts) {
		strata_search_options_default(&defaults);
		sopts = &defaults;
	}
	if (sopts->ef > STRATA_EF_MAX)
		return err_set(STRATA_EINVAL, "ef = %u is above %u", sopts->ef, STRATA_EF_MAX);
	int rc = check_allow_list(sopts);
	if (rc)
		return rc;
	struct batch b = {
		.db = db,
		.queries = queries,
		.k = k,
		.ef = sopts->ef ? sopts->ef : db->ef_search,
		.so = sopts,
		.ids_out = ids_out,
		.dists_out = dists_out,
	};
	if (b.ef < k)
		b.ef = k;

	uint32_t threads = sopts->threads ? sopts->threads : 1;
	if (threads > nq)
		threads = nq ? (uint32_t)nq : 1;
	if (threads <= 1) {
		rc = run_range(&b, 0, nq);
	} else {
		struct worker *w = calloc(threads, sizeof *w);
		pthread_t *t = calloc(threads, sizeof *t);
		if (!w || !t) {
			free(w);
			free(t);
			return err_set(STRATA_ENOMEM, "search threads");
		}
		size_t per = (nq + threads - 1) / threads;
		uint32_t started = 0;
		for (uint32_t i = 0; i < threads; i++) {
			w[i].b = &b;
			w[i].from = i * per < nq ? i * per : nq;
			w[i].to = (i + 1) * per < nq ? (i + 1) * per : nq;
		}
		for (uint32_t i = 1; i < threads; i++) {
			if (pthread_create(&t[i], NULL, worker_main, &w[i]) != 0)
				break;
			started = i;
		}
		/* Ranges whose thread did not start run here, so nothing is skipped. */
		for (uint32_t i = started + 1; i < threads; i++)
			w[i].rc = run_range(&b, w[i].from, w[i].to);
		w[0].rc = run_range(&b, w[0].from, w[0].to);
		for (uint32_t i = 1; i <= started; i++)
			pthread_join(t[i], NULL);
		rc = 0;
		for (uint32_t i = 0; i < threads && !rc; i++) {
			if (w[i].rc) {
				rc = w[i].rc;
				if (i >= 1 && i <= started)
					err_set(rc, "%s", w[i].detail);
			}
		}
		free(w);
		free(t);
	}
	if (!rc) {
		atomic_fetch_add_explicit(&db->searches, nq, memory_order_relaxed);
		atomic_fetch_add_explicit(&db->segments_searched, nq * db->nseg, memory_order_relaxed);
	}
	return rc;
}
