/*
 * search.c - strata_search(): a batch of queries over every segment of the
 * database, each searched in place on its mapping, merged into one top-k.
 *
 * Sources (segments and memtables) are searched largest first, each walk
 * bounded by the k-th best distance of the ones before it
 * (hnsw_search_bounded): a segment with nothing competitive is left after a
 * beam of k instead of ef. Determinism: the order is fixed per pinned version
 * (live counts, ties by position), each source's answer depends only on its
 * graph, the query, the plan (which depends only on the filter, the
 * tombstones and the batch size) and that bound, and the merge orders by
 * (distance, id). So the result does not depend on the number of threads,
 * nor on anything but the version searched.
 *
 * Filters are applied inside the graph walk: filtered-out nodes keep the graph
 * connected but never enter the results. Before the queries run, each segment
 * gets a plan from the share of its vectors that pass (plan_segment()):
 *   - exact, for an allow-list small next to the segment: its ids are looked
 *     up in the segment's id index, giving the passing nodes themselves;
 *   - estimated otherwise, by testing an evenly spaced sample of nodes.
 * Few passing vectors: the segment is answered by an exact scan of them (a
 * walk would visit more nodes than pass). Many: the graph walk, its beam
 * sized by the share (plan_beam_factor()), the filter tested inline by the
 * walk or resolved to a bit per node for a large batch. See plan_choose() for
 * the cost model.
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
/* The walk's beam, by passing share (see plan_beam_factor): narrowed from here up to 1, */
#define PLAN_NARROW_BELOW 0.5
/* ... back to ef at this share, and widened below it. */
#define PLAN_WIDEN_BELOW 0.3
/* Past this k the running bound across segments is not kept (its upkeep is O(k) per hit). */
#define BOUND_K_MAX 256u
/* Largest factor by which a low passing share widens ef. */
#define PLAN_EF_WIDEN_MAX 8.0

enum plan_mode { PLAN_GRAPH, PLAN_SCAN_LIST, PLAN_NONE };

struct seg_plan {
	enum plan_mode mode;
	uint32_t ef;
	uint32_t *nodes;       /* the passing nodes, when resolved (always for PLAN_SCAN_LIST) */
	size_t n_nodes;
	uint64_t *node_bits;   /* the passing nodes as a bit per node, for the graph walk */
	double share;          /* passing share, exact or estimated */
	const struct seg_anchors *leaves; /* its nodes hang under the first source's: no walk */
};

/* The caller's filters, plus what the search derived from them once per call. */
struct filter {
	const strata_search_options *so;
	uint64_t *allow_bits;  /* the allow-list as a bit per id, when its ids are dense enough */
	uint64_t allow_bits_n;
};

struct filter_ctx {
	const struct db_segment *seg;
	const struct filter *flt;
	const uint64_t *node_bits; /* every filter resolved to nodes, or NULL */
	bool filtered;
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

static bool bit_has(const uint64_t *bits, uint64_t n_bits, uint64_t id)
{
	return id < n_bits && ((bits[id / 64] >> (id % 64)) & 1);
}

/* The deny-list and the callback, on a caller id. */
static bool id_passes_deny_fn(const strata_search_options *so, uint64_t id)
{
	if (so->deny_ids && sorted_has(so->deny_ids, so->deny_count, id))
		return false;
	return !so->filter || so->filter(id, so->filter_ctx);
}

/* Every filter but the allow-list, on a caller id. */
static bool id_passes_rest(const strata_search_options *so, uint64_t id)
{
	if (so->allow_bitmap && !bit_has(so->allow_bitmap, so->allow_bitmap_bits, id))
		return false;
	return id_passes_deny_fn(so, id);
}

/* The allow-list alone (true when there is none). */
static bool id_in_allow_list(const struct filter *f, uint64_t id)
{
	if (f->allow_bits)
		return bit_has(f->allow_bits, f->allow_bits_n, id);
	return !f->so->allow_ids || sorted_has(f->so->allow_ids, f->so->allow_count, id);
}

static bool id_passes(const struct filter *f, uint64_t id)
{
	return id_in_allow_list(f, id) && id_passes_rest(f->so, id);
}

/*
 * The filters the walk does not test inline (hnsw_filter takes tombstones,
 * node bits and the allow bitmap): allow-list, deny-list, callback.
 */
static bool accept_node_rest(uint32_t node, void *arg)
{
	const struct filter_ctx *f = arg;
	uint64_t id = le_load64(f->seg->info.ids + (size_t)node * 8);
	return id_in_allow_list(f->flt, id) && id_passes_deny_fn(f->flt->so, id);
}

/* A scanned list is filtered already: only deletes that came after the plan remain to test. */
static bool accept_live(uint32_t node, void *arg)
{
	return !seg_is_dead(arg, node);
}

/* Every test a walk makes, for an exact scan of all nodes: tombstones and filters. */
static bool accept_node_all(uint32_t node, void *arg)
{
	const struct filter_ctx *f = arg;
	if (seg_is_dead(f->seg, node))
		return false;
	if (f->node_bits)
		return (f->node_bits[node / 64] >> (node % 64)) & 1;
	return !f->filtered || id_passes(f->flt, le_load64(f->seg->info.ids + (size_t)node * 8));
}

static bool accept_row(const struct memtable *mt, uint32_t row, void *arg)
{
	return id_passes(arg, mt->ids[row]);
}

static bool has_filter(const strata_search_options *so)
{
	return so->allow_ids || so->allow_bitmap || so->deny_ids || so->filter;
}

/*
 * The beam a filtered walk gets, as a factor of ef, for a passing share s.
 * The walk keeps ef *passing* nodes in its beam, so it goes on longer than an
 * unfiltered walk with the same ef: measured at ef 64, 1.5-1.8x the distance
 * computations at s = 0.5 and 2.2-2.7x at s = 0.3 on SIFT, GloVe-25 and
 * word2vec-300 (10k each) and random 64-d 100k, for a recall above the
 * unfiltered recall at that ef. Narrowing the beam to ef * sqrt(s) brings
 * recall back to about the unfiltered recall of ef (within 0.01 on those
 * sets at ef 10-128, 0.001 at ef 64) for about 0.8x of the work at s = 0.5;
 * ef * s would lose recall (tools/bench/README-figures.md, "Filtered search").
 * The narrowing applies from PLAN_NARROW_BELOW (s = 1, a filter passing
 * everything, keeps ef); between it and PLAN_WIDEN_BELOW the factor returns
 * linearly to 1, and below, where the passing nodes thin out, it grows as
 * sqrt(PLAN_WIDEN_BELOW / s), at most PLAN_EF_WIDEN_MAX. The narrowing thus
 * leaves the beam of low shares as it was.
 */
static double plan_beam_factor(double share)
{
	if (share >= PLAN_NARROW_BELOW)
		return sqrt(fmin(share, 1.0));
	if (share >= PLAN_WIDEN_BELOW)
		return 1.0 - (1.0 - sqrt(PLAN_NARROW_BELOW)) * (share - PLAN_WIDEN_BELOW) /
		                     (PLAN_NARROW_BELOW - PLAN_WIDEN_BELOW);
	return fmin(PLAN_EF_WIDEN_MAX, sqrt(PLAN_WIDEN_BELOW / fmax(share, 1e-12)));
}

/*
 * Cost model, per query, in distance computations. A filtered graph walk
 * keeps going until its beam holds ef' = ef * plan_beam_factor(share) passing
 * nodes, so it visits about ef' / share nodes; the model charges ~20 distances
 * per unit of ef' / share (fitted on SIFT 10k and random 100k; it
 * overestimates easy sets such as SIFT 10k about 2x, which errs towards the
 * walk's rival, the exact scan, whose recall is 1). An exact scan computes one
 * distance per passing node, plus, when the passing nodes are not known yet,
 * the cost of finding them once for the batch (resolve_cost, already divided
 * by the number of queries).
 */
static double plan_choose(struct seg_plan *p, uint32_t count, uint32_t ef, double resolve_cost)
{
	double share = p->share;
	double ef_eff = fmax(1.0, round(ef * plan_beam_factor(share)));
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

/* What the walk pays to test one node against the filter, in distance computations. */
static double walk_test_cost(const strata_search_options *so)
{
	if (so->allow_ids || so->deny_ids || so->filter)
		return 1.0 / 8; /* a call (accept_node_rest): a binary search, the caller's callback */
	return 1.0 / 40;    /* an allow bitmap, inline */
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
	if (count == 0)
		return 0;
	/* Tombstoned nodes are filtered out like any other: fewer live ones widen the walk. */
	double live = 1.0 - (double)atomic_load_explicit(&seg->tomb_n, memory_order_relaxed) / count;
	if (!has_filter(so)) {
		if (live < 1.0) {
			p->share = live;
			plan_choose(p, count, ef, 0.25 * count / (double)nq);
			if (p->mode == PLAN_SCAN_LIST) { /* nearly all deleted: scan the live ones */
				size_t cap = 0;
				for (uint32_t node = 0; node < count; node++)
					if (!seg_is_dead(seg, node) && plan_add_node(p, &cap, node))
						return STRATA_ENOMEM;
				if (p->n_nodes == 0)
					p->mode = PLAN_NONE;
			}
		}
		return 0;
	}

	int rc;
	if (so->allow_ids && so->allow_count <= PLAN_RESOLVE_MAX) {
		/* Short allow-list: the passing nodes exactly, for a few lookups. */
		if ((rc = plan_resolve(seg, so, p)))
			return rc;
		p->share = (double)p->n_nodes / count * live;
		plan_choose(p, count, ef, 0.0);
	} else {
		/*
		 * Estimate from evenly spaced nodes: deterministic, so the plan is too.
		 * A quarter of the sample first: when most pass, the walk is the plan
		 * whatever the exact share, and a one-query call should not pay for
		 * the rest (measured: 0.4 us of a 4.4 us query at ef 10). Fewer pass:
		 * the whole sample, since scan-or-walk and the widening depend on it.
		 */
		uint32_t n = count < PLAN_SAMPLE ? count : PLAN_SAMPLE, pass = 0;
		uint32_t first = n / 4 ? n / 4 : n;
		for (uint32_t i = 0; i < first; i++) {
			uint32_t node = (uint32_t)((uint64_t)i * count / first);
			pass += id_passes(flt, le_load64(seg->info.ids + (size_t)node * 8));
		}
		if ((double)pass / first < 0.4 && first < n) {
			pass = 0;
			for (uint32_t i = 0; i < n; i++) {
				uint32_t node = (uint32_t)((uint64_t)i * count / n);
				pass += id_passes(flt, le_load64(seg->info.ids + (size_t)node * 8));
			}
		} else {
			n = first;
		}
		p->share = (double)pass / n * live;
		/* Finding the passing nodes: a merge with the allow-list, or a test of every node. */
		double merge = (double)so->allow_count + count;
		double resolve = so->allow_ids ? 0.05 * merge : 0.25 * count;
		double graph = plan_choose(p, count, ef, resolve / (double)nq);
		/*
		 * A walk tests about one node per two distances (walk_test_cost
		 * each); a bit per node found once for the batch makes a test one
		 * load. Worth it when the batch walks enough:
		 * resolve < nq * graph / 2 * test.
		 */
		bool resolve_for_walk = p->mode == PLAN_GRAPH &&
		                        resolve < (double)nq * graph / 2 * walk_test_cost(so);
		if ((p->mode == PLAN_SCAN_LIST || resolve_for_walk) && (rc = plan_resolve(seg, so, p)))
			return rc;
		if (resolve_for_walk && p->n_nodes == 0)
			p->mode = PLAN_NONE; /* nothing here passes */
	}
	if (p->mode == PLAN_SCAN_LIST && p->n_nodes == 0)
		p->mode = PLAN_NONE;
	if (p->mode == PLAN_GRAPH && p->n_nodes) {
		/* The walk tests nodes, not ids: a bit per node answers in O(1). */
		p->node_bits = calloc((size_t)count / 64 + 1, sizeof *p->node_bits);
		if (!p->node_bits)
			return err_set(STRATA_ENOMEM, "filter plan of %u nodes", count);
		for (size_t i = 0; i < p->n_nodes; i++)
			p->node_bits[p->nodes[i] / 64] |= 1ull << (p->nodes[i] % 64);
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

/* How a memtable is searched for a batch: like a segment's plan, over rows. */
struct mt_plan {
	enum plan_mode mode;
	uint32_t ef;
	uint32_t *rows;        /* PLAN_SCAN_LIST: the rows to scan (a resolved allow-list), or NULL = all */
	size_t n_rows;
};

struct batch {
	strata_db *db;
	struct db_version *v;
	const float *queries;
	uint32_t k;
	uint32_t ef;
	const strata_search_options *so;
	const struct filter *flt;
	const struct seg_plan *plans; /* one per segment */
	struct mt_plan mtp[2];        /* active, frozen */
	/* Per memtable: its rows hang under the first source's nodes (mt_search_anchored), or NULL. */
	const struct mt_anchors *anchors[2];
	bool traced;                  /* the first source's walk keeps its nodes: anchors use them */
	uint32_t *order;              /* sources, largest first: segment i, or nseg + m for mtp[m] */
	uint32_t n_sources;
	uint64_t *ids_out;
	float *dists_out;
};

/*
 * A memtable's plan: a short allow-list is resolved through the id map to
 * rows, scanned exactly; other filters are estimated on a sample of rows and
 * choose, as for a segment, between an exact scan and a widened walk.
 */
static int plan_memtable(struct memtable *mt, const struct filter *flt, uint32_t ef, struct mt_plan *p)
{
	const strata_search_options *so = flt->so;
	memset(p, 0, sizeof *p);
	p->mode = PLAN_GRAPH;
	p->ef = ef;
	size_t rows = mt_rows(mt);
	if (!has_filter(so) || rows == 0)
		return 0;
	if (so->allow_ids && so->allow_count <= PLAN_RESOLVE_MAX) {
		p->mode = PLAN_SCAN_LIST;
		p->rows = malloc((so->allow_count ? so->allow_count : 1) * sizeof *p->rows);
		if (!p->rows)
			return err_set(STRATA_ENOMEM, "memtable plan");
		for (size_t i = 0; i < so->allow_count; i++) {
			uint32_t row = mt_find(mt, so->allow_ids[i], NULL);
			if (row != MT_NO_ROW)
				p->rows[p->n_rows++] = row;
		}
		if (p->n_rows == 0)
			p->mode = PLAN_NONE;
		return 0;
	}
	uint32_t n = rows < PLAN_SAMPLE ? (uint32_t)rows : PLAN_SAMPLE, pass = 0;
	for (uint32_t i = 0; i < n; i++)
		pass += id_passes(flt, mt->ids[(size_t)i * rows / n]);
	struct seg_plan sp = {.share = (double)pass / n};
	plan_choose(&sp, (uint32_t)rows, ef, 0.0);
	p->mode = sp.mode;
	p->ef = sp.mode == PLAN_GRAPH ? sp.ef : ef;
	return 0; /* PLAN_SCAN_LIST with rows NULL: every row, exactly */
}

/*
 * trace: non-NULL for the first source when a memtable's rows hang under its
 * nodes (b->anchors; never with a filter, never an exact scan): the walk also
 * keeps the nodes it met closest to the query.
 */
static int search_segment(const struct batch *b, struct db_scratch *s, uint32_t i, const float *query,
                          float limit, uint32_t *n, uint64_t *evals, struct hnsw_trace *trace)
{
	const struct db_segment *seg = b->v->segs[i];
	const struct seg_plan *p = &b->plans[i];
	bool filtered = has_filter(b->so);
	bool tombs = atomic_load_explicit(&seg->tomb_n, memory_order_relaxed) != 0;
	switch (p->mode) {
	case PLAN_NONE:
		*n = 0;
		return 0;
	case PLAN_SCAN_LIST:
		return hnsw_scan(&seg->view, query, b->k, p->nodes, p->n_nodes, tombs ? accept_live : NULL,
		                 (void *)seg, s->hs, s->hits, n, evals);
	case PLAN_GRAPH:
		break;
	}
	/*
	 * A beam as wide as the graph: an exact scan, as promised. A walk would
	 * compute as many distances but reach only the nodes linked from the
	 * entry, and after deletions and repairs a graph need not link them all.
	 */
	if (p->ef >= seg->info.count) {
		struct filter_ctx all = {.seg = seg, .flt = b->flt, .node_bits = p->node_bits,
		                         .filtered = filtered};
		return hnsw_scan(&seg->view, query, b->k, NULL, 0,
		                 (filtered || tombs) ? accept_node_all : NULL, &all, s->hs, s->hits, n,
		                 evals);
	}
	if (trace) {
		struct hnsw_filter dead = {.dead = seg->tomb};
		uint32_t want = p->ef > MT_ANCHOR_TRACE_MIN ? p->ef : MT_ANCHOR_TRACE_MIN;
		return hnsw_search_traced(&seg->view, query, b->k, p->ef, want, tombs ? &dead : NULL,
		                          s->hs, trace, s->hits, n, evals);
	}
	if (!filtered && !tombs)
		return hnsw_search_bounded(&seg->view, query, b->k, p->ef, limit, NULL, s->hs, s->hits,
		                           n, evals);
	/*
	 * The walk tests tombstones, a per-node bitmap and an allow bitmap over
	 * ids inline; only the other filters (allow-list not resolved to nodes,
	 * deny-list, callback) cost a call per tested node.
	 */
	struct filter_ctx f = {.seg = seg, .flt = b->flt};
	struct hnsw_filter hf = {.dead = tombs ? seg->tomb : NULL};
	if (filtered && p->node_bits) {
		hf.node_bits = p->node_bits; /* every filter, resolved */
	} else if (filtered) {
		const strata_search_options *so = b->so;
		if (so->allow_bitmap) {
			hf.id_bits = so->allow_bitmap;
			hf.id_bits_n = so->allow_bitmap_bits;
			hf.ids = seg->info.ids;
		}
		if (so->allow_ids || so->deny_ids || so->filter) {
			hf.accept = accept_node_rest;
			hf.accept_ctx = &f;
		}
	}
	return hnsw_search_bounded(&seg->view, query, b->k, p->ef, limit, &hf, s->hs, s->hits, n,
	                           evals);
}

/*
 * A segment whose nodes hang under the first source's (plan leaves): its
 * live nodes hung under the nodes that source's walk met closest to the
 * query, each once, searched exactly; walked instead when they are more than
 * max_nodes (leaves_budget).
 */
static int search_leaves(const struct batch *b, struct db_scratch *s, uint32_t i, const float *query,
                         float limit, size_t max_nodes, uint32_t *n, uint64_t *evals)
{
	const struct db_segment *seg = b->v->segs[i];
	const struct seg_anchors *a = b->plans[i].leaves;
	struct mt_seen *seen = &s->seen;
	int rc = mt_seen_prepare(seen, seg->info.count);
	if (rc)
		return rc;
	const struct hnsw_hit *near = s->trace.best.a;
	size_t n_near = s->trace.best.n, n_nodes = 0;
	/* Scattered loads, each likely a miss: all issued before the first is waited on. */
	for (size_t j = 0; j < n_near; j++)
		if (near[j].node < a->seg_count)
			__builtin_prefetch(&a->start[near[j].node]);
	for (size_t j = 0; j < n_near; j++)
		if (near[j].node < a->seg_count)
			__builtin_prefetch(&a->leaf[a->start[near[j].node]]);
	/* Every leaf, its mark loaded ahead; then each once, live ones kept (in place). */
	size_t n_leaves = 0;
	for (size_t j = 0; j < n_near; j++) {
		uint32_t under = near[j].node;
		if (under >= a->seg_count)
			continue;
		for (uint32_t l = a->start[under]; l < a->start[under + 1]; l++) {
			uint32_t node = a->leaf[l];
			__builtin_prefetch(&seen->tags[node]);
			if (n_leaves == seen->rows_cap && (rc = mt_seen_fit(seen, n_leaves)))
				return rc;
			seen->rows[n_leaves++] = node;
		}
	}
	for (size_t l = 0; l < n_leaves; l++) {
		uint32_t node = seen->rows[l];
		if (seen->tags[node] == seen->epoch)
			continue;
		seen->tags[node] = seen->epoch;
		if (!seg_is_dead(seg, node))
			seen->rows[n_nodes++] = node;
	}
	if (n_nodes > max_nodes)
		return search_segment(b, s, i, query, limit, n, evals, NULL);
	return hnsw_scan(&seg->view, query, b->k, seen->rows, n_nodes, NULL, NULL, s->hs, s->hits, n,
	                 evals);
}

static int search_memtable(const struct batch *b, struct db_scratch *s, struct memtable *mt,
                           const struct mt_plan *p, const float *query, float limit, uint32_t *n,
                           uint64_t *evals)
{
	mt_accept_fn acc = has_filter(b->so) ? accept_row : NULL;
	void *ctx = (void *)b->flt;
	if (p->mode == PLAN_NONE) {
		*n = 0;
		return 0;
	}
	if (p->mode == PLAN_SCAN_LIST)
		return mt_search(mt, query, b->k, p->ef, limit, acc, ctx, p->rows, p->n_rows,
		                 p->rows == NULL, s->hs, s->hits, n, evals);
	if (p->ef >= mt_rows(mt)) /* as for segments: a beam as wide as the graph, an exact scan */
		return mt_search(mt, query, b->k, p->ef, __builtin_inff(), acc, ctx, NULL, 0, true,
		                 s->hs, s->hits, n, evals);
	return mt_search(mt, query, b->k, p->ef, limit, acc, ctx, NULL, 0, false, s->hs, s->hits, n,
	                 evals);
}

static int merge_in(struct db_scratch *s, size_t *n_merged, uint32_t n, const uint64_t *id_of,
                    const uint8_t *le_ids)
{
	for (uint32_t j = 0; j < n; j++) {
		uint32_t node = s->hits[j].node;
		s->merged[*n_merged].dist = s->hits[j].dist;
		s->merged[*n_merged].id = id_of ? id_of[node] : le_load64(le_ids + (size_t)node * 8);
		(*n_merged)++;
	}
	return 0;
}

/*
 * Fold a source's results into s->best (the k best of distinct ids so far,
 * sorted); returns the k-th best distance, +inf while fewer than k. Distinct
 * ids: a row met twice (memtable walk and tail) must not tighten the bound.
 */
static float best_update(struct db_scratch *s, size_t *n_best, uint32_t k, const struct db_result *r,
                         size_t n)
{
	struct db_result *best = s->best;
	for (size_t i = 0; i < n; i++) {
		if (*n_best == k && !(r[i].dist < best[k - 1].dist))
			continue;
		bool dup = false;
		for (size_t j = 0; j < *n_best && !dup; j++)
			dup = best[j].id == r[i].id;
		if (dup)
			continue;
		size_t at = *n_best < k ? (*n_best)++ : k - 1;
		while (at > 0 && best[at - 1].dist > r[i].dist) {
			best[at] = best[at - 1];
			at--;
		}
		best[at] = r[i];
	}
	return *n_best == k ? best[k - 1].dist : __builtin_inff();
}

/*
 * The most rows hung under the first source's nodes that a search evaluates
 * for one other source, rather than walk that source's graph: a share of the
 * first walk's distance computations. Rows hang under MT_ANCHOR_LINKS nodes,
 * so those met grow with the source's size relative to the first's, while a
 * walk of it, bounded by the k-th distance found, costs a share of the first
 * walk. Measured on siftsmall (first segment s rows, the other 10,000 - s, ef
 * 64; the first walk 620-650): s = 5,000: 339 rows hung against a walk of
 * 265; 6,000: 210 / 210; 6,667: 153 / 192; 8,000: 78 / 171.
 */
static size_t leaves_budget(uint64_t first_walk)
{
	return (size_t)(first_walk * 35 / 100);
}

static int search_one(const struct batch *b, struct db_scratch *s, size_t q)
{
	strata_db *db = b->db;
	const struct db_version *v = b->v;
	const uint32_t dim = db->dim, k = b->k;
	const float *query = b->queries + q * dim;
	for (uint32_t j = 0; j < dim; j++)
		if (!isfinite(query[j]))
			return err_set(STRATA_ENONFINITE, "query %zu, component %u is not finite", q, j);
	if (db->metric == STRATA_METRIC_COSINE) {
		memcpy(s->query, query, dim * sizeof *query);
		dist_normalize(s->query, dim);
		query = s->query;
	}

	size_t n_merged = 0;
	uint64_t evals = 0;
	int rc = 0;
	uint32_t sources = 0;
	/*
	 * Sources largest first, each walk bounded by the k-th best distance the
	 * earlier ones found (hnsw_search_bounded): a later segment with nothing
	 * competitive costs a few steps, not a full beam. The order depends only
	 * on the pinned version, so the answer does not depend on threads.
	 */
	size_t n_best = 0;
	float limit = __builtin_inff();
	struct memtable *mts[2] = {v->active, v->frozen};
	size_t budget = 0; /* leaves_budget, after the first source */
	uint64_t first_evals = 0;
	for (uint32_t o = 0; o < b->n_sources && !rc; o++) {
		uint32_t src = b->order[o], n = 0;
		size_t from = n_merged;
		if (src < v->nseg) {
			if (b->plans[src].leaves)
				rc = search_leaves(b, s, src, query, limit, budget, &n, &evals);
			else
				rc = search_segment(b, s, src, query, limit, &n, &evals,
				                    o == 0 && b->traced ? &s->trace : NULL);
			if (rc) {
				err_prefix(rc, v->segs[src]->name);
				break;
			}
			merge_in(s, &n_merged, n, NULL, v->segs[src]->info.ids);
		} else {
			uint32_t m = src - v->nseg;
			struct memtable *mt = mts[m];
			bool used = false;
			if (b->anchors[m])
				rc = mt_search_anchored(mt, b->anchors[m], query, k, s->trace.best.a,
				                        s->trace.best.n, budget, &s->seen, s->hits, &n, &evals,
				                        &used);
			if (!rc && !used)
				rc = search_memtable(b, s, mt, &b->mtp[m], query, limit, &n, &evals);
			if (rc)
				break;
			merge_in(s, &n_merged, n, mt->ids, NULL);
		}
		sources++;
		if (o == 0) {
			first_evals = evals;
			budget = leaves_budget(evals);
		}
		if (k <= BOUND_K_MAX)
			limit = best_update(s, &n_best, k, s->merged + from, n_merged - from);
	}
	atomic_fetch_add_explicit(&db->dist_evals, evals, memory_order_relaxed);
	atomic_fetch_add_explicit(&db->dist_evals_first, first_evals, memory_order_relaxed);
	if (rc)
		return rc;
	if (sources > 1)
		qsort(s->merged, n_merged, sizeof *s->merged, result_cmp);
	/*
	 * One id twice: a row met both by the walk and by the tail scan, or an old
	 * copy seen before the write that superseded it hid it. The closest stays.
	 */
	size_t out = 0;
	for (size_t i = 0; i < n_merged && out < k; i++) {
		bool dup = false;
		for (size_t j = 0; j < out && !dup; j++)
			dup = s->merged[j].id == s->merged[i].id;
		if (!dup)
			s->merged[out++] = s->merged[i];
	}
	for (uint32_t i = 0; i < k; i++) {
		bool have = i < out;
		if (b->ids_out)
			b->ids_out[q * k + i] = have ? s->merged[i].id : STRATA_NO_ID;
		if (b->dists_out)
			b->dists_out[q * k + i] = have ? s->merged[i].dist : INFINITY;
	}
	return 0;
}

static int scratch_fit(const struct batch *b, struct db_scratch *s, uint32_t k)
{
	strata_db *db = b->db;
	size_t seg = (size_t)b->v->nseg + 2;
	if (grow((void **)&s->hits, &s->hits_cap, k, sizeof *s->hits) ||
	    grow((void **)&s->merged, &s->merged_cap, (size_t)k * seg, sizeof *s->merged) ||
	    grow((void **)&s->best, &s->best_cap, k, sizeof *s->best) ||
	    grow((void **)&s->query, &s->query_cap, db->dim, sizeof *s->query))
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
	int rc = scratch_fit(b, s, b->k);
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

struct source_size {
	uint64_t live;
	uint32_t src;
};

static int source_cmp(const void *a, const void *c)
{
	const struct source_size *x = a, *y = c;
	if (x->live != y->live)
		return x->live > y->live ? -1 : 1;
	return x->src < y->src ? -1 : x->src > y->src;
}

/* b->order: every segment and memtable, most live vectors first (ties: version order). */
static int order_sources(struct batch *b)
{
	const struct db_version *v = b->v;
	struct memtable *mts[2] = {v->active, v->frozen};
	uint32_t n = v->nseg + 2;
	struct source_size *sz = calloc(n, sizeof *sz);
	b->order = calloc(n, sizeof *b->order);
	if (!sz || !b->order) {
		free(sz);
		return err_set(STRATA_ENOMEM, "search order");
	}
	uint32_t m = 0;
	for (uint32_t i = 0; i < v->nseg; i++) {
		const struct db_segment *seg = v->segs[i];
		sz[m++] = (struct source_size){db_segment_live(seg), i};
	}
	for (uint32_t i = 0; i < 2; i++)
		if (mts[i])
			sz[m++] = (struct source_size){mt_live(mts[i]), v->nseg + i};
	qsort(sz, m, sizeof *sz, source_cmp);
	for (uint32_t i = 0; i < m; i++)
		b->order[i] = sz[i].src;
	b->n_sources = m;
	free(sz);
	return 0;
}

/*
 * b->anchors, plans' leaves: a memtable's rows, or a flushed memtable's
 * segment nodes, are found through the first source's walk when that source
 * is the segment they hang under, walked (not scanned), and no filter applies
 * (a filter narrows the beam and the leaves with it); the memtable or segment
 * must be walked too, not scanned. Otherwise its own graph is walked.
 */
static void plan_anchors(struct batch *b, struct seg_plan *plans)
{
	const struct db_version *v = b->v;
	if (b->n_sources < 2 || b->order[0] >= v->nseg || has_filter(b->so))
		return;
	const struct db_segment *first = v->segs[b->order[0]];
	const struct seg_plan *p = &b->plans[b->order[0]];
	if (p->mode != PLAN_GRAPH || p->ef >= first->info.count)
		return;
	struct memtable *mts[2] = {v->active, v->frozen};
	for (int m = 0; m < 2; m++) {
		if (mts[m] && b->mtp[m].mode == PLAN_GRAPH && b->mtp[m].ef < mt_rows(mts[m]))
			b->anchors[m] = mt_anchors_for(mts[m], first->entry.seq);
		b->traced = b->traced || b->anchors[m];
	}
	for (uint32_t i = 0; i < v->nseg; i++) {
		const struct seg_anchors *a = atomic_load_explicit(&v->segs[i]->anchors, memory_order_acquire);
		struct seg_plan *sp = &plans[i];
		if (a && a->seg_seq == first->entry.seq && sp->mode == PLAN_GRAPH &&
		    sp->ef < v->segs[i]->info.count)
			sp->leaves = a;
		b->traced = b->traced || sp->leaves;
	}
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
	struct db_version *v = db_pin(db);
	b.v = v;
	uint64_t vectors = 0;
	for (uint32_t i = 0; i < v->nseg; i++)
		vectors += v->segs[i]->info.count;
	struct seg_plan *plans = calloc(v->nseg ? v->nseg : 1, sizeof *plans);
	if (!plans) {
		db_unpin(db, v);
		return err_set(STRATA_ENOMEM, "search plans");
	}
	b.plans = plans;
	/*
	 * A long allow-list of dense ids (row numbers, say) becomes a bit per
	 * id: one pass over the list and a bitmap of at most 8 bytes per
	 * listed or stored vector, then O(1) tests instead of binary searches.
	 */
	if (has_filter(sopts) && nq > 0 && sopts->allow_count > PLAN_RESOLVE_MAX) {
		uint64_t max_id = sopts->allow_ids[sopts->allow_count - 1];
		if (max_id / 64 < (uint64_t)sopts->allow_count + vectors) {
			flt.allow_bits_n = max_id + 1;
			flt.allow_bits = calloc(max_id / 64 + 1, sizeof *flt.allow_bits);
			if (!flt.allow_bits) {
				rc = err_set(STRATA_ENOMEM, "allow-list bitmap");
				goto out;
			}
			for (size_t i = 0; i < sopts->allow_count; i++)
				flt.allow_bits[sopts->allow_ids[i] / 64] |= 1ull << (sopts->allow_ids[i] % 64);
		}
	}
	for (uint32_t i = 0; i < v->nseg && nq > 0; i++) {
		if ((rc = plan_segment(v->segs[i], &flt, b.ef, nq, &plans[i])))
			goto out;
		if (has_filter(sopts))
			atomic_fetch_add_explicit(plans[i].mode == PLAN_GRAPH ? &db->filtered_graph
			                                                       : &db->filtered_scans,
			                          nq, memory_order_relaxed);
	}
	struct memtable *mts[2] = {v->active, v->frozen};
	for (int m = 0; m < 2 && nq > 0; m++)
		if (mts[m] && (rc = plan_memtable(mts[m], &flt, b.ef, &b.mtp[m])))
			goto out;
	if ((rc = order_sources(&b)))
		goto out;
	plan_anchors(&b, plans);
	rc = run_batch(&b, nq, sopts->threads ? sopts->threads : 1);
	if (!rc) {
		atomic_fetch_add_explicit(&db->searches, nq, memory_order_relaxed);
		atomic_fetch_add_explicit(&db->segments_searched, nq * v->nseg, memory_order_relaxed);
	}
out:
	free(b.order);
	free(b.mtp[0].rows);
	free(b.mtp[1].rows);
	plans_free(plans, v->nseg);
	free(flt.allow_bits);
	db_unpin(db, v);
	return rc;
}
