/*
 * hnsw_build.c - builds an HNSW graph (Malkov & Yashunin, algorithms 1 and 4)
 * directly in the segment file's layout (format/segment.h), so that writing
 * the segment is a copy and the search code serves the graph it built.
 *
 * Levels are drawn for every row up front from the seed (mult = 1/ln M), which
 * fixes the node numbering (upper-layer nodes first) before any insertion.
 * Rows are then inserted in row order by `threads` workers, each neighbour
 * list guarded by its own spinlock (as hnswlib guards each list with a mutex);
 * a node that raises the top layer holds the global lock for its insertion.
 * With one thread there is no locking and the graph depends only on the input
 * and the seed: the byte-reproducibility the tests check.
 *
 * Never: read a list without its lock while other workers run; grow a list
 * beyond M0 (layer 0) or M (upper layers).
 */
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "distance.h"
#include "err.h"
#include "hnsw.h"
#include "hnsw_internal.h"
#include "le.h"
#include "segment.h"

struct hnsw_graph {
	struct hnsw_view v;
	uint8_t *nodes;
	uint8_t *upper_index;
	uint8_t *upper_links;
	uint32_t *node_of_row;
	uint8_t *level_of_node;
	atomic_uchar *locks;   /* one spinlock per node; NULL when building with one thread */
	pthread_mutex_t global;/* held by an insertion that raises the top layer */
	_Atomic uint32_t entry;
	_Atomic uint32_t max_level;
	struct hnsw_build_params p;
	size_t n;
	_Atomic size_t next_row;
	_Atomic size_t done;
	pthread_mutex_t progress_lock;
	size_t progress_step;
	_Atomic int failed;    /* first error of any worker; others stop */
};

/* Per-worker buffers. */
struct build_worker {
	struct hnsw_graph *g;
	struct hnsw_scratch s;
	struct hnsw_hit *cand;  /* sorted candidates for the heuristic */
	struct hnsw_hit *sel;   /* selected neighbours */
	uint32_t *list;         /* a copy of one neighbour list */
	int rc;
};

static inline void node_lock(struct hnsw_graph *g, uint32_t node)
{
	if (!g->locks)
		return;
	atomic_uchar *l = &g->locks[node];
	while (atomic_exchange_explicit(l, 1, memory_order_acquire)) {
		while (atomic_load_explicit(l, memory_order_relaxed))
			sched_yield();
	}
}

static inline void node_unlock(struct hnsw_graph *g, uint32_t node)
{
	if (g->locks)
		atomic_store_explicit(&g->locks[node], 0, memory_order_release);
}

/* Mutable list of `node` on `level`: [u32 count][u32 ids...]. */
static uint32_t *list_of(struct hnsw_graph *g, uint32_t node, uint32_t level)
{
	if (level == 0)
		return (uint32_t *)(void *)(g->nodes + (size_t)node * g->v.stride + g->v.links_off);
	uint64_t first = le_load64(g->upper_index + (size_t)node * 16 + 8);
	return (uint32_t *)(void *)(g->upper_links + (first + level - 1) * (4 + 4 * (size_t)g->p.M));
}

/* Copy a list under its lock into buf (buf[0] = count). */
static void list_copy(struct hnsw_graph *g, uint32_t node, uint32_t level, uint32_t *buf)
{
	node_lock(g, node);
	const uint32_t *l = list_of(g, node, level);
	memcpy(buf, l, (1 + (size_t)l[0]) * sizeof *buf);
	node_unlock(g, node);
}

static inline float vdist(const struct hnsw_graph *g, const float *q, uint32_t node)
{
	return hnsw_dist_ordered(g->v.dist(q, hnsw_vec(&g->v, node), g->v.dim));
}

/* Algorithm 2 on one layer with beam width ef, starting from ep; result in w->s.top. */
static int search_layer(struct build_worker *w, const float *q, uint32_t ep, uint32_t ef,
                        uint32_t level)
{
	struct hnsw_graph *g = w->g;
	struct hnsw_scratch *s = &w->s;
	int rc = hnsw_scratch_prepare(s, g->v.count, ef);
	if (rc)
		return rc;
	float d = vdist(g, q, ep);
	s->tags[ep] = s->epoch;
	if ((rc = hnsw_heap_push_min(&s->cand, (struct hnsw_hit){d, ep})) ||
	    (rc = hnsw_heap_push_max(&s->top, (struct hnsw_hit){d, ep})))
		return rc;
	float bound = d;
	while (s->cand.n) {
		struct hnsw_hit c = s->cand.a[0];
		if (c.dist > bound && s->top.n >= ef)
			break;
		hnsw_heap_pop_min(&s->cand);
		list_copy(g, c.node, level, w->list);
		uint32_t n = w->list[0];
		for (uint32_t j = 1; j <= n; j++) {
			uint32_t x = w->list[j];
			if (j < n)
				__builtin_prefetch(g->nodes + (size_t)w->list[j + 1] * g->v.stride);
			if (s->tags[x] == s->epoch)
				continue;
			s->tags[x] = s->epoch;
			float dx = vdist(g, q, x);
			if (s->top.n < ef || dx < bound) {
				if ((rc = hnsw_heap_push_min(&s->cand, (struct hnsw_hit){dx, x})))
					return rc;
				if (s->top.n < ef) {
					if ((rc = hnsw_heap_push_max(&s->top, (struct hnsw_hit){dx, x})))
						return rc;
				} else {
					hnsw_heap_replace_max(&s->top, (struct hnsw_hit){dx, x});
				}
				bound = s->top.a[0].dist;
			}
		}
	}
	return 0;
}

/*
 * Algorithm 4 (the neighbour-selection heuristic, without extending or
 * keeping pruned candidates, as hnswlib): walk `cand` (n, sorted by distance
 * to the base) and keep a candidate only if it is closer to the base than to
 * every one kept so far. Writes at most m to sel; returns how many.
 */
static uint32_t select_heuristic(const struct hnsw_graph *g, const struct hnsw_hit *cand, uint32_t n,
                                 uint32_t m, struct hnsw_hit *sel)
{
	if (n <= m) {
		memcpy(sel, cand, n * sizeof *sel);
		return n;
	}
	uint32_t k = 0;
	for (uint32_t i = 0; i < n && k < m; i++) {
		const float *e = hnsw_vec(&g->v, cand[i].node);
		int good = 1;
		for (uint32_t j = 0; j < k; j++) {
			if (hnsw_dist_ordered(g->v.dist(e, hnsw_vec(&g->v, sel[j].node), g->v.dim)) <
			    cand[i].dist) {
				good = 0;
				break;
			}
		}
		if (good)
			sel[k++] = cand[i];
	}
	return k;
}

static int hit_cmp(const void *a, const void *b)
{
	const struct hnsw_hit *x = a, *y = b;
	if (x->dist != y->dist)
		return x->dist < y->dist ? -1 : 1;
	return (x->node > y->node) - (x->node < y->node);
}

/* Add q to neighbour s's list on `level`, pruning it with the heuristic when full. */
static void link_back(struct build_worker *w, uint32_t s, uint32_t q, float dq, uint32_t level)
{
	struct hnsw_graph *g = w->g;
	uint32_t cap = level ? g->p.M : 2 * g->p.M;
	node_lock(g, s);
	uint32_t *l = list_of(g, s, level);
	uint32_t n = l[0];
	for (uint32_t j = 1; j <= n; j++) {
		if (l[j] == q) {
			node_unlock(g, s);
			return;
		}
	}
	if (n < cap) {
		l[1 + n] = q;
		l[0] = n + 1;
		node_unlock(g, s);
		return;
	}
	const float *sv = hnsw_vec(&g->v, s);
	w->cand[0] = (struct hnsw_hit){dq, q};
	for (uint32_t j = 0; j < n; j++)
		w->cand[1 + j] = (struct hnsw_hit){vdist(g, sv, l[1 + j]), l[1 + j]};
	qsort(w->cand, n + 1, sizeof *w->cand, hit_cmp);
	uint32_t k = select_heuristic(g, w->cand, n + 1, cap, w->sel);
	for (uint32_t j = 0; j < k; j++)
		l[1 + j] = w->sel[j].node;
	/* Slots past the count are unspecified by FORMAT.md; write zeros, not stale ids. */
	for (uint32_t j = k; j < n; j++)
		l[1 + j] = 0;
	l[0] = k;
	node_unlock(g, s);
}

/* Link q on `level` to the best of the search result in w->s.top; returns the closest as next entry. */
static uint32_t connect(struct build_worker *w, uint32_t q, uint32_t level)
{
	struct hnsw_graph *g = w->g;
	struct hnsw_heap *top = &w->s.top;
	uint32_t n = (uint32_t)top->n;
	for (uint32_t i = n; i > 0; i--)
		w->cand[i - 1] = hnsw_heap_pop_max(top);
	uint32_t k = select_heuristic(g, w->cand, n, g->p.M, w->sel);

	node_lock(g, q);
	uint32_t *l = list_of(g, q, level);
	for (uint32_t j = 0; j < k; j++)
		l[1 + j] = w->sel[j].node;
	l[0] = k;
	node_unlock(g, q);

	/* w->sel is reused by link_back: keep the selection in w->list meanwhile. */
	uint32_t *chosen = w->list;
	float *dists = (float *)(void *)(w->list + 2 * g->p.M + 1);
	for (uint32_t j = 0; j < k; j++) {
		chosen[j] = w->sel[j].node;
		dists[j] = w->sel[j].dist;
	}
	for (uint32_t j = 0; j < k; j++)
		link_back(w, chosen[j], q, dists[j], level);
	return k ? chosen[0] : q;
}

static int insert(struct build_worker *w, uint32_t q)
{
	struct hnsw_graph *g = w->g;
	uint32_t L = g->level_of_node[q];
	const float *qv = hnsw_vec(&g->v, q);
	int holds_global = 0;

	if (g->locks)
		pthread_mutex_lock(&g->global);
	uint32_t top_level = atomic_load(&g->max_level);
	uint32_t ep = atomic_load(&g->entry);
	if (L > top_level && g->locks)
		holds_global = 1;
	else if (g->locks)
		pthread_mutex_unlock(&g->global);

	float ep_dist = vdist(g, qv, ep);
	for (uint32_t level = top_level; level > L; level--) {
		for (int changed = 1; changed;) {
			changed = 0;
			list_copy(g, ep, level, w->list);
			for (uint32_t j = 1; j <= w->list[0]; j++) {
				float d = vdist(g, qv, w->list[j]);
				if (d < ep_dist) {
					ep_dist = d;
					ep = w->list[j];
					changed = 1;
				}
			}
		}
	}
	int rc = 0;
	uint32_t start = L < top_level ? L : top_level;
	for (int64_t level = start; level >= 0; level--) {
		if ((rc = search_layer(w, qv, ep, g->p.ef_construction, (uint32_t)level)))
			break;
		ep = connect(w, q, (uint32_t)level);
	}
	if (!rc && L > top_level) {
		atomic_store(&g->entry, q);
		atomic_store(&g->max_level, L);
	}
	if (holds_global)
		pthread_mutex_unlock(&g->global);
	return rc;
}

static void report_progress(struct hnsw_graph *g)
{
	size_t done = atomic_fetch_add(&g->done, 1) + 1;
	if (!g->p.progress || (done % g->progress_step != 0 && done != g->n))
		return;
	pthread_mutex_lock(&g->progress_lock);
	g->p.progress(done, g->n, g->p.progress_ctx);
	pthread_mutex_unlock(&g->progress_lock);
}

static void *worker_main(void *arg)
{
	struct build_worker *w = arg;
	struct hnsw_graph *g = w->g;
	for (;;) {
		if (atomic_load_explicit(&g->failed, memory_order_relaxed))
			break;
		size_t row = atomic_fetch_add(&g->next_row, 1);
		if (row >= g->n)
			break;
		int rc = insert(w, g->node_of_row[row]);
		if (rc) {
			w->rc = rc;
			atomic_store(&g->failed, rc);
			break;
		}
		report_progress(g);
	}
	return NULL;
}

static int worker_init(struct build_worker *w, struct hnsw_graph *g)
{
	memset(w, 0, sizeof *w);
	w->g = g;
	size_t m0 = 2 * (size_t)g->p.M;
	size_t ncand = (g->p.ef_construction > m0 ? g->p.ef_construction : m0) + 2;
	w->cand = malloc(ncand * sizeof *w->cand);
	w->sel = malloc(ncand * sizeof *w->sel);
	w->list = malloc((2 * m0 + 2) * sizeof *w->list);
	return (w->cand && w->sel && w->list) ? 0 : STRATA_ENOMEM;
}

static void worker_fini(struct build_worker *w)
{
	free(w->s.tags);
	free(w->s.cand.a);
	free(w->s.top.a);
	free(w->cand);
	free(w->sel);
	free(w->list);
}

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Draw levels, number nodes upper-layer first (stable by row), lay out the upper index. */
static int plan_levels(struct hnsw_graph *g)
{
	size_t n = g->n;
	uint8_t *row_level = malloc(n ? n : 1);
	if (!row_level)
		return STRATA_ENOMEM;
	double mult = 1.0 / log((double)g->p.M);
	uint64_t rng = g->p.seed;
	size_t per_level[SEG_LEVEL_MAX + 1] = {0};
	for (size_t r = 0; r < n; r++) {
		double u = (double)(splitmix64(&rng) >> 11) * 0x1.0p-53;
		if (u <= 0)
			u = 0x1.0p-53;
		double lv = -log(u) * mult;
		uint32_t level = lv >= SEG_LEVEL_MAX ? SEG_LEVEL_MAX : (uint32_t)lv;
		row_level[r] = (uint8_t)level;
		per_level[level]++;
	}
	/* Counting sort, highest level first: first node index of each level. */
	size_t start[SEG_LEVEL_MAX + 1];
	size_t at = 0;
	for (int l = SEG_LEVEL_MAX; l >= 0; l--) {
		start[l] = at;
		at += per_level[l];
	}
	g->v.upper_count = n - per_level[0];
	for (size_t r = 0; r < n; r++) {
		uint32_t node = (uint32_t)start[row_level[r]]++;
		g->node_of_row[r] = node;
		g->level_of_node[node] = row_level[r];
	}
	free(row_level);

	g->upper_index = calloc(g->v.upper_count ? g->v.upper_count : 1, SEG_UPPER_ENTRY_SIZE);
	if (!g->upper_index)
		return STRATA_ENOMEM;
	uint64_t blocks = 0;
	for (size_t node = 0; node < g->v.upper_count; node++) {
		le_store32(g->upper_index + node * 16, g->level_of_node[node]);
		le_store64(g->upper_index + node * 16 + 8, blocks);
		blocks += g->level_of_node[node];
	}
	g->v.upper_blocks = blocks;
	size_t block = 4 + 4 * (size_t)g->p.M;
	g->upper_links = calloc(blocks ? blocks : 1, block);
	return g->upper_links ? 0 : STRATA_ENOMEM;
}

int hnsw_build(const struct hnsw_build_params *p, const float *vectors, size_t n,
               struct hnsw_graph **g_out)
{
	if (n > SEG_COUNT_MAX)
		return err_set(STRATA_ELIMIT, "%zu vectors: a segment holds at most %llu", n,
		               (unsigned long long)SEG_COUNT_MAX);
	struct hnsw_graph *g = calloc(1, sizeof *g);
	if (!g)
		return STRATA_ENOMEM;
	int rc = STRATA_ENOMEM;
	struct build_worker *workers = NULL;
	pthread_t *tids = NULL;
	uint32_t threads = p->threads ? p->threads : 1;
	if (threads > n)
		threads = n ? (uint32_t)n : 1;

	g->p = *p;
	g->n = n;
	g->progress_step = n / 200 ? n / 200 : 1;
	pthread_mutex_init(&g->global, NULL);
	pthread_mutex_init(&g->progress_lock, NULL);
	uint32_t M0 = 2 * p->M;
	g->v.dim = p->dim;
	g->v.M = p->M;
	g->v.M0 = M0;
	g->v.metric = p->metric;
	g->v.dist = dist_for_metric(p->metric);
	g->v.count = (uint32_t)n;
	g->v.stride = (size_t)seg_stride_for(p->dim, M0);
	g->v.links_off = 4 * (size_t)p->dim;
	g->node_of_row = malloc((n ? n : 1) * sizeof *g->node_of_row);
	g->level_of_node = malloc(n ? n : 1);
	/* 64-byte alignment: vectors sit at the start of each record, aligned for SIMD. */
	size_t nodes_bytes = (n ? n : 1) * g->v.stride;
	g->nodes = aligned_alloc(64, (nodes_bytes + 63) / 64 * 64);
	if (!g->node_of_row || !g->level_of_node || !g->nodes)
		goto fail;
	if ((rc = plan_levels(g)))
		goto fail;

	for (size_t r = 0; r < n; r++) {
		uint8_t *rec = g->nodes + (size_t)g->node_of_row[r] * g->v.stride;
		memset(rec, 0, g->v.stride);
		memcpy(rec, vectors + r * p->dim, (size_t)p->dim * sizeof(float));
		if (p->metric == STRATA_METRIC_COSINE)
			dist_normalize((float *)(void *)rec, p->dim);
	}
	g->v.nodes = g->nodes;
	g->v.upper_index = g->upper_index;
	g->v.upper_links = g->upper_links;

	if (threads > 1) {
		g->locks = calloc(n, sizeof *g->locks);
		if (!g->locks)
			goto fail_nomem;
	}
	workers = calloc(threads, sizeof *workers);
	tids = calloc(threads, sizeof *tids);
	if (!workers || !tids)
		goto fail_nomem;
	for (uint32_t t = 0; t < threads; t++)
		if (worker_init(&workers[t], g))
			goto fail_workers;

	rc = 0;
	if (n > 0) {
		/* The first row becomes the entry point with nothing to link to. */
		uint32_t first = g->node_of_row[0];
		atomic_store(&g->entry, first);
		atomic_store(&g->max_level, g->level_of_node[first]);
		atomic_store(&g->next_row, 1);
		report_progress(g);
		uint32_t started = 0;
		for (uint32_t t = 1; t < threads; t++) {
			if (pthread_create(&tids[t], NULL, worker_main, &workers[t]) != 0)
				break;
			started = t;
		}
		worker_main(&workers[0]);
		for (uint32_t t = 1; t <= started; t++)
			pthread_join(tids[t], NULL);
		rc = atomic_load(&g->failed);
	}
	g->v.entry = n ? atomic_load(&g->entry) : SEG_NO_NODE;
	g->v.max_level = atomic_load(&g->max_level);
	for (uint32_t t = 0; t < threads; t++)
		worker_fini(&workers[t]);
	free(workers);
	free(tids);
	if (rc)
		goto fail;
	free(g->locks);
	g->locks = NULL;
	*g_out = g;
	return 0;

fail_workers:
	for (uint32_t t = 0; t < threads; t++)
		worker_fini(&workers[t]);
fail_nomem:
	free(workers);
	free(tids);
	rc = STRATA_ENOMEM;
fail:
	hnsw_graph_free(g);
	if (rc == STRATA_ENOMEM)
		err_set(rc, "building a graph of %zu vectors of dim %u", n, p->dim);
	return rc;
}

void hnsw_graph_free(struct hnsw_graph *g)
{
	if (!g)
		return;
	pthread_mutex_destroy(&g->global);
	pthread_mutex_destroy(&g->progress_lock);
	free(g->nodes);
	free(g->upper_index);
	free(g->upper_links);
	free(g->node_of_row);
	free(g->level_of_node);
	free(g->locks);
	free(g);
}

void hnsw_graph_view(const struct hnsw_graph *g, struct hnsw_view *v_out)
{
	*v_out = g->v;
}

uint32_t hnsw_graph_node_of_row(const struct hnsw_graph *g, size_t row)
{
	return g->node_of_row[row];
}
