/*
 * search.c - strata_search(): a batch of queries over every segment of the
 * database, each searched in place on its mapping, merged into one top-k.
 *
 * Determinism: each segment's answer depends only on its graph, the query and
 * the plan (which depends only on the filter); the merge orders by
 * (distance, id). So the result does not depend on the number of threads or
 * on the order in which segments are visited.
 *
 * Filters are applied inside the graph walk: filtered-out nodes keep the graph
 * connected but never enter the results. Before the queries run, each segment
 * gets a plan from the share of its vectors that pass (filter_plan()):
 *   - exact, for an allow-list small next to the segment: its ids are looked
 *     up in the segment's id index, giving the passing nodes themselves;
 *   - estimated otherwise, by testing an evenly spaced sample of nodes.
 * Few passing vectors: the segment is answered by an exact scan of them (a
 * walk would visit more nodes than pass). Many: the graph walk, with ef
 * widened as the share falls, since the beam fills with passing nodes more
 * slowly. See plan_choose() for the cost model.
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "err.h"
#include "hnsw.h"
#include "le.h"

/* Nodes tested to estimate the passing share of a segment. */
#define PLAN_SAMPLE 256u
/* An allow-list this short is resolved to nodes up front whatever the plan. */
#define PLAN_RESOLVE_MAX 4096u
/* Below this passing share the walk widens ef (see plan_choose). */
#define PLAN_WIDEN_BELOW 0.3
/* Largest factor by which a low passing share widens ef. */
#define PLAN_EF_WIDEN_MAX 8.0

enum plan_mode { PLAN_GRAPH, PLAN_SCAN_LIST, PLAN_NONE };

struct seg_plan {
	enum plan_mode mode;
	uint32_t ef;
	uint32_t *nodes;       /* the passing nodes, when resolved (always for PLAN_SCAN_LIST) */
	size_t n_nodes;
	uint8_t *node_bits;    /* exact allow-list resolved: bit per node, for the graph walk */
	double share;          /* passing share, exact or estimated */
};

/* The caller's filters, plus what the search derived from them once per call. */
struct filter {
	const strata_search_options *so;
	uint64_t *allow_bits;  /* the allow-list as a bit per id, when its ids are dense enough */
	uint64_t allow_bits_n;
};

struct filter_ctx {
	const uint8_t *ids;    /* the segment's IDS section */
	const struct filter *flt;
	const uint8_t *node_bits;
};

static bool sorted_has(const uint64_t *a, size_t n, uint64_t id)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (a[mid] < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && a[lo] == id;
}

/* Every filter but the allow-list, on a caller id. */
static bool id_passes_rest(const strata_search_options *so, uint64_t id)
{
	if (so->allow_bitmap &&
	    (id >= so->allow_bitmap_bits || !((so->allow_bitmap[id / 64] >> (id % 64)) & 1)))
		return false;
	if (so->deny_ids && sorted_has(so->deny_ids, so->deny_count, id))
		return false;
	return !so->filter || so->filter(id, so->filter_ctx);
}

static bool id_passes(const struct filter *f, uint64_t id)
{
	if (f->allow_bits) {
		if (id >= f->allow_bits_n || !((f->allow_bits[id / 64] >> (id % 64)) & 1))
			return false;
	} else if (f->so->allow_ids && !sorted_has(f->so->allow_ids, f->so->allow_count, id)) {
		return false;
	}
	return id_passes_rest(f->so, id);
}

static bool accept_node(uint32_t node, void *arg)
{
	const struct filter_ctx *f = arg;
	if (f->node_bits) /* allow-list and the other filters already applied per node */
		return (f->node_bits[node / 8] >> (node % 8)) & 1;
	return id_passes(f->flt, le_load64(f->ids + (size_t)node * 8));
}

static bool has_filter(const strata_search_options *so)
{
	return so->allow_ids || so->allow_bitmap || so->deny_ids || so->filter;
}

/*
 * Cost model, per query, in distance computations. A filtered graph walk
 * keeps going until ef passing nodes are in its beam, so it visits about
 * ef / share nodes; measured, it computes ~20 distances per unit of
 * ef / share (SIFT 10k and random 100k). That longer walk alone keeps recall
 * at or above the unfiltered recall down to a share of about 0.3 (measured on
 * random 100k: 0.83 unfiltered, 0.94 at 0.5, 0.97 at 0.3); below it, ef is
 * widened by sqrt(PLAN_WIDEN_BELOW / share), at most PLAN_EF_WIDEN_MAX times.
 * An exact scan computes one distance per passing node, plus, when the passing
 * nodes are not known yet, the cost of finding them once for the batch
 * (resolve_cost, already divided by the number of queries).
 */
static double plan_choose(struct seg_plan *p, uint32_t count, uint32_t ef, double resolve_cost)
{
	double share = p->share;
	double widen = share >= PLAN_WIDEN_BELOW
	                       ? 1.0
	                       : fmin(PLAN_EF_WIDEN_MAX, sqrt(PLAN_WIDEN_BELOW / fmax(share, 1e-9)));
	double ef_eff = ef * widen;
	double graph = 20.0 * ef_eff / fmax(share, 1.0 / (count + 1.0));
	if (graph > 20.0 * count)
		graph = 20.0 * count; /* a walk cannot visit more than everything */
	double scan = share * count + resolve_cost;
	if (scan <= graph) {
		p->mode = PLAN_SCAN_LIST;
	} else {
		p->mode = PLAN_GRAPH;
		p->ef = ef_eff > STRATA_EF_MAX ? STRATA_EF_MAX : (uint32_t)ef_eff;
	}
	return graph;
}

/* Append a passing node, growing the list (capacity in *cap). */
static int plan_add_node(struct seg_plan *p, size_t *cap, uint32_t node)
{
	if (p->n_nodes == *cap) {
		size_t want = *cap ? *cap * 2 : 256;
		uint32_t *n = realloc(p->nodes, want * sizeof *n);
		if (!n)
			return err_set(STRATA_ENOMEM, "filter plan of %zu nodes", want);
		p->nodes = n;
		*cap = want;
	}
	p->nodes[p->n_nodes++] = node;
	return 0;
}

/*
 * The passing nodes of the segment, ascending by id. An allow-list is joined
 * with the segment's id index (both sorted): by binary search per listed id
 * when the list is short, by one merge pass when it is long. Without an
 * allow-list every node is tested.
 */
static int plan_resolve(const struct db_segment *seg, const strata_search_options *so,
                        struct seg_plan *p)
{
	uint32_t count = (uint32_t)seg->info.count;
	size_t cap = 0;
	p->n_nodes = 0;
	if (!so->allow_ids) {
		for (uint32_t node = 0; node < count; node++) {
			if (id_passes_rest(so, le_load64(seg->info.ids + (size_t)node * 8)) &&
			    plan_add_node(p, &cap, node))
				return STRATA_ENOMEM;
		}
		return 0;
	}
	/* A binary search step misses the cache; a merge step streams: ~4x apart. */
	double log_n = log2((double)count + 2);
	bool merge = 4.0 * so->allow_count * log_n > (double)so->allow_count + count;
	const uint8_t *idx = seg->info.id_index;
	size_t j = 0;
	for (size_t i = 0; i < so->allow_count; i++) {
		uint64_t id = so->allow_ids[i];
		if (i && id == so->allow_ids[i - 1])
			continue;
		uint32_t node;
		if (merge) {
			while (j < count && le_load64(idx + j * 16) < id)
				j++;
			if (j == count)
				break;
			if (le_load64(idx + j * 16) != id)
				continue;
			node = le_load32(idx + j * 16 + 8);
			if (node >= count)
				return err_set(STRATA_ECORRUPT, "%s: id index entry %zu names node %u of %u",
				               seg->name, j, node, count);
		} else {
			int rc = seg_id_find(&seg->info, id, &node);
			if (rc == STRATA_ENOTFOUND)
				continue;
			if (rc)
				return err_prefix(rc, seg->name);
		}
		if (id_passes_rest(so, id) && plan_add_node(p, &cap, node))
			return STRATA_ENOMEM;
	}
	return 0;
}

static int plan_segment(const struct db_segment *seg, const struct filter *flt, uint32_t ef,
                        size_t nq, struct seg_plan *p)
{
	const strata_search_options *so = flt->so;
	uint32_t count = (uint32_t)seg->info.count;
	memset(p, 0, sizeof *p);
	p->mode = PLAN_GRAPH;
	p->ef = ef;
	p->share = 1.0;
	if (!has_filter(so) || count == 0)
		return 0;

	int rc;
	if (so->allow_ids && so->allow_count <= PLAN_RESOLVE_MAX) {
		/* Short allow-list: the passing nodes exactly, for a few lookups. */
		if ((rc = plan_resolve(seg, so, p)))
			return rc;
		p->share = (double)p->n_nodes / count;
		plan_choose(p, count, ef, 0.0);
	} else {
		/* Estimate from evenly spaced nodes: deterministic, so the plan is too. */
		uint32_t n = count < PLAN_SAMPLE ? count : PLAN_SAMPLE, pass = 0;
		for (uint32_t i = 0; i < n; i++) {
			uint32_t node = (uint32_t)((uint64_t)i * count / n);
			pass += id_passes(flt, le_load64(seg->info.ids + (size_t)node * 8));
		}
		p->share = (double)pass / n;
		/* Finding the passing nodes: a merge with the allow-list, or a test of every node. */
		double merge = (double)so->allow_count + count;
		double resolve = so->allow_ids ? 0.05 * merge : 0.25 * count;
		double graph = plan_choose(p, count, ef, resolve / (double)nq);
		/*
		 * A walk tests the nodes it meets against the allow-list by binary
		 * search (~1/8 of a distance each, about one test per two distances);
		 * one merge pass over the list and the id index (~1/10 of a distance
		 * per step) turns that into a bit per node. Worth it when the batch
		 * walks enough: (A + N) / 10 < nq * graph / 8.
		 */
		bool resolve_for_walk = p->mode == PLAN_GRAPH && so->allow_ids && !flt->allow_bits &&
		                        merge < 1.25 * (double)nq * graph;
		if ((p->mode == PLAN_SCAN_LIST || resolve_for_walk) && (rc = plan_resolve(seg, so, p)))
			return rc;
	}
	if (p->mode == PLAN_SCAN_LIST && p->n_nodes == 0)
		p->mode = PLAN_NONE;
	if (p->mode == PLAN_GRAPH && p->n_nodes) {
		/* The walk tests nodes, not ids: a bit per node answers in O(1). */
		p->node_bits = calloc((size_t)count / 8 + 1, 1);
		if (!p->node_bits)
			return err_set(STRATA_ENOMEM, "filter plan of %u nodes", count);
		for (size_t i = 0; i < p->n_nodes; i++)
			p->node_bits[p->nodes[i] / 8] |= (uint8_t)(1u << (p->nodes[i] % 8));
	}
	return 0;
}

static void plans_free(struct seg_plan *plans, uint32_t n)
{
	if (!plans)
		return;
	for (uint32_t i = 0; i < n; i++) {
		free(plans[i].nodes);
		free(plans[i].node_bits);
	}
	free(plans);
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
	const struct filter *flt;
	const struct seg_plan *plans; /* one per segment; NULL when there is no filter */
	uint64_t *ids_out;
	float *dists_out;
};

static int search_segment(const struct batch *b, struct db_scratch *s, uint32_t i, const float *query,
                          uint32_t *n, uint64_t *evals)
{
	const struct db_segment *seg = &b->db->segs[i];
	if (!b->plans)
		return hnsw_search(&seg->view, query, b->k, b->ef, NULL, NULL, s->hs, s->hits, n, evals);
	const struct seg_plan *p = &b->plans[i];
	struct filter_ctx f = {.ids = seg->info.ids, .flt = b->flt, .node_bits = p->node_bits};
	switch (p->mode) {
	case PLAN_NONE:
		*n = 0;
		return 0;
	case PLAN_SCAN_LIST:
		return hnsw_scan(&seg->view, query, b->k, p->nodes, p->n_nodes, NULL, NULL, s->hs, s->hits,
		                 n, evals);
	case PLAN_GRAPH:
		break;
	}
	return hnsw_search(&seg->view, query, b->k, p->ef, accept_node, &f, s->hs, s->hits, n, evals);
}

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
	for (uint32_t i = 0; i < db->nseg; i++) {
		uint32_t n = 0;
		if ((rc = search_segment(b, s, i, query, &n, &evals))) {
			err_prefix(rc, db->segs[i].name);
			break;
		}
		const uint8_t *ids = db->segs[i].info.ids;
		for (uint32_t j = 0; j < n; j++) {
			s->merged[n_merged].dist = s->hits[j].dist;
			s->merged[n_merged].id = le_load64(ids + (size_t)s->hits[j].node * 8);
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

static int check_sorted(const uint64_t *a, size_t n, const char *what)
{
	if (n && !a)
		return err_set(STRATA_EINVAL, "%s: count %zu with a null array", what, n);
	for (size_t i = 1; i < n; i++)
		if (a[i] < a[i - 1])
			return err_set(STRATA_EINVAL, "%s is not sorted at index %zu", what, i);
	return 0;
}

static int run_batch(const struct batch *b, size_t nq, uint32_t threads)
{
	if (threads > nq)
		threads = nq ? (uint32_t)nq : 1;
	if (threads <= 1)
		return run_range(b, 0, nq);
	struct worker *w = calloc(threads, sizeof *w);
	pthread_t *t = calloc(threads, sizeof *t);
	int rc = 0;
	if (!w || !t) {
		rc = err_set(STRATA_ENOMEM, "search threads");
		goto out;
	}
	size_t per = (nq + threads - 1) / threads;
	uint32_t started = 0;
	for (uint32_t i = 0; i < threads; i++) {
		w[i].b = b;
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
		w[i].rc = run_range(b, w[i].from, w[i].to);
	w[0].rc = run_range(b, w[0].from, w[0].to);
	for (uint32_t i = 1; i <= started; i++)
		pthread_join(t[i], NULL);
	for (uint32_t i = 0; i < threads && !rc; i++) {
		if (w[i].rc) {
			rc = w[i].rc;
			if (i >= 1 && i <= started)
				err_set(rc, "%s", w[i].detail);
		}
	}
out:
	free(w);
	free(t);
	return rc;
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
	int rc;
	if ((rc = check_sorted(sopts->allow_ids, sopts->allow_count, "allow_ids")) ||
	    (rc = check_sorted(sopts->deny_ids, sopts->deny_count, "deny_ids")))
		return rc;
	if (sopts->allow_bitmap_bits && !sopts->allow_bitmap)
		return err_set(STRATA_EINVAL, "allow_bitmap_bits %llu with a null bitmap",
		               (unsigned long long)sopts->allow_bitmap_bits);

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

	/* One plan per segment for the whole batch: the filter is the same for every query. */
	struct filter flt = {.so = sopts};
	b.flt = &flt;
	struct seg_plan *plans = NULL;
	if (has_filter(sopts) && nq > 0) {
		/*
		 * A long allow-list of dense ids (row numbers, say) becomes a bit per
		 * id: one pass over the list and a bitmap of at most 8 bytes per
		 * listed or stored vector, then O(1) tests instead of binary searches.
		 */
		if (sopts->allow_count > PLAN_RESOLVE_MAX) {
			uint64_t max_id = sopts->allow_ids[sopts->allow_count - 1];
			if (max_id / 64 < (uint64_t)sopts->allow_count + db->vectors) {
				flt.allow_bits_n = max_id + 1;
				flt.allow_bits = calloc(max_id / 64 + 1, sizeof *flt.allow_bits);
				if (!flt.allow_bits)
					return err_set(STRATA_ENOMEM, "allow-list bitmap");
				for (size_t i = 0; i < sopts->allow_count; i++)
					flt.allow_bits[sopts->allow_ids[i] / 64] |= 1ull << (sopts->allow_ids[i] % 64);
			}
		}
		plans = calloc(db->nseg ? db->nseg : 1, sizeof *plans);
		if (!plans) {
			free(flt.allow_bits);
			return err_set(STRATA_ENOMEM, "filter plans");
		}
		for (uint32_t i = 0; i < db->nseg; i++) {
			if ((rc = plan_segment(&db->segs[i], &flt, b.ef, nq, &plans[i]))) {
				plans_free(plans, db->nseg);
				free(flt.allow_bits);
				return rc;
			}
			atomic_fetch_add_explicit(plans[i].mode == PLAN_GRAPH ? &db->filtered_graph
			                                                       : &db->filtered_scans,
			                          nq, memory_order_relaxed);
		}
		b.plans = plans;
	}
	rc = run_batch(&b, nq, sopts->threads ? sopts->threads : 1);
	plans_free(plans, db->nseg);
	free(flt.allow_bits);
	if (!rc) {
		atomic_fetch_add_explicit(&db->searches, nq, memory_order_relaxed);
		atomic_fetch_add_explicit(&db->segments_searched, nq * db->nseg, memory_order_relaxed);
	}
	return rc;
}
