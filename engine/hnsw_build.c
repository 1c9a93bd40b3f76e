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
 * The memtable's incremental graph (hnsw_graph_new/_append/_index) uses the
 * same insertion with node = row: levels are drawn at append time from the
 * same generator (row r gets the level hnsw_build would give it), upper
 * blocks are handed out in append order from a reserve, and the locks are
 * always on, because searches (hnsw_graph_view_live) read the lists while
 * the indexer writes them. A row's vector, level and upper-index entry are
 * written once, before `appended` is released, and never change after.
 *
 * Never: read a list without its lock while other workers or live searches
 * run; grow a list beyond M0 (layer 0) or M (upper layers); publish an entry
 * point before its node is linked on every layer.
 */
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "bigmem.h"
#include "distance.h"
#include "err.h"
#include "hnsw.h"
#include "hnsw_internal.h"
#include "le.h"
#include "segment.h"

/* Per-worker buffers. */
struct build_worker {
	struct hnsw_graph *g;
	struct hnsw_scratch s;
	struct hnsw_hit *cand;  /* sorted candidates for the heuristic */
	struct hnsw_hit *sel;   /* selected neighbours */
	uint32_t *list;         /* a copy of one neighbour list */
	struct hnsw_hit *chosen;/* q's chosen neighbours on every layer, for the back-links */
	int rc;
};

static inline void node_lock(struct hnsw_graph *g, uint32_t node)
{
	if (g->locks)
		hnsw_node_lock(g->locks, node);
}

static inline void node_unlock(struct hnsw_graph *g, uint32_t node)
{
	if (g->locks)
		hnsw_node_unlock(g->locks, node);
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

uint32_t hnsw_select_heuristic(const struct hnsw_view *v, const struct hnsw_hit *cand, uint32_t n,
                               uint32_t m, struct hnsw_hit *sel)
{
	if (n <= m) {
		memcpy(sel, cand, n * sizeof *sel);
		return n;
	}
	uint32_t k = 0;
	for (uint32_t i = 0; i < n && k < m; i++) {
		const float *e = hnsw_vec(v, cand[i].node);
		int good = 1;
		for (uint32_t j = 0; j < k; j++) {
			if (hnsw_dist_ordered(v->dist(e, hnsw_vec(v, sel[j].node), v->dim)) < cand[i].dist) {
				good = 0;
				break;
			}
		}
		if (good)
			sel[k++] = cand[i];
	}
	return k;
}

int hnsw_hit_cmp(const void *a, const void *b)
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
	qsort(w->cand, n + 1, sizeof *w->cand, hnsw_hit_cmp);
	uint32_t k = hnsw_select_heuristic(&g->v, w->cand, n + 1, cap, w->sel);
	for (uint32_t j = 0; j < k; j++)
		l[1 + j] = w->sel[j].node;
	/* Slots past the count are unspecified by FORMAT.md; write zeros, not stale ids. */
	for (uint32_t j = k; j < n; j++)
		l[1 + j] = 0;
	l[0] = k;
	node_unlock(g, s);
}

/*
 * Choose q's neighbours on `level` from the search result in w->s.top and
 * write q's own list; the choice (closest first) goes to `chosen` for the
 * back-links, which insert() adds later. Returns how many were chosen.
 */
static uint32_t connect(struct build_worker *w, uint32_t q, uint32_t level, struct hnsw_hit *chosen)
{
	struct hnsw_graph *g = w->g;
	struct hnsw_heap *top = &w->s.top;
	uint32_t n = (uint32_t)top->n;
	for (uint32_t i = n; i > 0; i--)
		w->cand[i - 1] = hnsw_heap_pop_max(top);
	uint32_t k = hnsw_select_heuristic(&g->v, w->cand, n, g->p.M, w->sel);

	node_lock(g, q);
	uint32_t *l = list_of(g, q, level);
	for (uint32_t j = 0; j < k; j++)
		l[1 + j] = w->sel[j].node;
	l[0] = k;
	node_unlock(g, q);
	memcpy(chosen, w->sel, k * sizeof *chosen);
	return k;
}

static int insert(struct build_worker *w, uint32_t q)
{
	struct hnsw_graph *g = w->g;
	uint32_t L = g->level_of_node[q];
	const float *qv = hnsw_vec(&g->v, q);
	int holds_global = 0;

	if (g->locks)
		pthread_mutex_lock(&g->global);
	uint64_t ep_word = atomic_load(&g->ep);
	if (ep_word == HNSW_EP_NONE) {
		/* The first node becomes the entry point, with nothing to link to. */
		atomic_store(&g->ep, hnsw_ep_pack(q, L));
		if (g->locks)
			pthread_mutex_unlock(&g->global);
		return 0;
	}
	uint32_t ep = (uint32_t)ep_word;
	uint32_t top_level = (uint32_t)(ep_word >> 32);
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
	uint32_t first[SEG_LEVEL_MAX + 1], count[SEG_LEVEL_MAX + 1];
	uint32_t used = 0;
	for (int64_t level = start; level >= 0; level--) {
		if ((rc = search_layer(w, qv, ep, g->p.ef_construction, (uint32_t)level)))
			break;
		first[level] = used;
		count[level] = connect(w, q, (uint32_t)level, w->chosen + used);
		if (count[level])
			ep = w->chosen[used].node;
		used += count[level];
	}
	/*
	 * Back-links bottom-up, once q's own lists are written on every layer: a
	 * search that reaches q on some layer (through a back-link) then finds
	 * q's lists below it complete, instead of a node with nothing under it
	 * that ends the search there. Each layer's back-links touch that layer's
	 * lists only, so the graph is the one a top-down order builds.
	 */
	for (uint32_t level = 0; !rc && level <= start; level++)
		for (uint32_t j = 0; j < count[level]; j++)
			link_back(w, w->chosen[first[level] + j].node, q,
			          w->chosen[first[level] + j].dist, level);
	/* Published only once q is linked on every layer: searches start from whole nodes. */
	if (!rc && L > top_level)
		atomic_store(&g->ep, hnsw_ep_pack(q, L));
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

/*
 * Incremental graphs: row r is fully inserted; advance `indexed` over every
 * finished row. Workers finish out of order, so whoever finishes the row at
 * the watermark carries it forward; the seq_cst pairing (store done[r], load
 * indexed) against (CAS indexed, load done[r + 1]) means no finished row is
 * left behind by two workers each missing the other's step.
 */
static void mark_row_done(struct hnsw_graph *g, size_t row)
{
	atomic_store(&g->row_done[row], 1);
	size_t r = atomic_load(&g->indexed);
	while (r < g->n && atomic_load(&g->row_done[r])) {
		if (atomic_compare_exchange_weak(&g->indexed, &r, r + 1))
			r++;
	}
}

static void *worker_main(void *arg)
{
	struct build_worker *w = arg;
	struct hnsw_graph *g = w->g;
	for (;;) {
		if (atomic_load_explicit(&g->failed, memory_order_relaxed))
			break;
		if (g->cancel && atomic_load_explicit(g->cancel, memory_order_relaxed)) {
			int expected = 0;
			atomic_compare_exchange_strong(&g->failed, &expected, HNSW_ECANCELED);
			break;
		}
		size_t row = atomic_fetch_add(&g->next_row, 1);
		if (row >= g->n)
			break;
		/* A row past the watermark may be in already (an earlier call that failed). */
		if (g->row_done && atomic_load(&g->row_done[row]))
			continue;
		int rc = insert(w, g->node_of_row ? g->node_of_row[row] : (uint32_t)row);
		if (rc) {
			w->rc = rc;
			atomic_store(&g->failed, rc);
			break;
		}
		if (g->row_done)
			mark_row_done(g, row);
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
	w->chosen = malloc((SEG_LEVEL_MAX + 1) * (size_t)g->p.M * sizeof *w->chosen);
	return (w->cand && w->sel && w->list && w->chosen) ? 0 : STRATA_ENOMEM;
}

static void worker_fini(struct build_worker *w)
{
	free(w->s.tags);
	free(w->s.cand.a);
	free(w->s.top.a);
	free(w->s.list);
	free(w->cand);
	free(w->sel);
	free(w->list);
	free(w->chosen);
}

/*
 * Insert rows [next_row, g->n) with `threads` workers, the calling thread
 * being one. Returns 0 or the first worker's error (STRATA_ENOMEM).
 */
static int run_workers(struct hnsw_graph *g, uint32_t threads)
{
	struct build_worker *workers = calloc(threads, sizeof *workers);
	pthread_t *tids = calloc(threads, sizeof *tids);
	int rc = STRATA_ENOMEM;
	uint32_t ready = 0;
	if (!workers || !tids)
		goto out;
	for (; ready < threads; ready++)
		if (worker_init(&workers[ready], g)) {
			ready++;
			goto out;
		}
	atomic_store(&g->failed, 0);
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
out:
	for (uint32_t t = 0; workers && t < ready; t++)
		worker_fini(&workers[t]);
	free(workers);
	free(tids);
	return rc;
}

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/*
 * The level of the next row: floor(-ln(u) * mult), mult = 1/ln M, capped at
 * SEG_LEVEL_MAX. hnsw_build and hnsw_graph_append draw the same sequence from
 * the same seed, so row r gets the same level either way.
 */
static uint32_t draw_level(uint64_t *rng, double mult)
{
	double u = (double)(splitmix64(rng) >> 11) * 0x1.0p-53;
	if (u <= 0)
		u = 0x1.0p-53;
	double lv = -log(u) * mult;
	return lv >= SEG_LEVEL_MAX ? SEG_LEVEL_MAX : (uint32_t)lv;
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
		uint32_t level = draw_level(&rng, mult);
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

struct hnsw_graph *hnsw_graph_alloc(void)
{
	struct hnsw_graph *g = calloc(1, sizeof *g);
	if (!g)
		return NULL;
	pthread_mutex_init(&g->global, NULL);
	pthread_mutex_init(&g->progress_lock, NULL);
	atomic_init(&g->ep, HNSW_EP_NONE);
	g->v.entry = SEG_NO_NODE;
	return g;
}

/* The view fields that follow from the parameters alone. */
static void view_init(struct hnsw_view *v, const struct hnsw_build_params *p)
{
	v->dim = p->dim;
	v->M = p->M;
	v->M0 = 2 * p->M;
	v->metric = p->metric;
	v->dist = dist_for_metric(p->metric);
	v->stride = (size_t)seg_stride_for(p->dim, v->M0);
	v->links_off = 4 * (size_t)p->dim;
	v->entry = SEG_NO_NODE;
}

int hnsw_build(const struct hnsw_build_params *p, const float *vectors, size_t n,
               struct hnsw_graph **g_out)
{
	if (n > SEG_COUNT_MAX)
		return err_set(STRATA_ELIMIT, "%zu vectors: a segment holds at most %llu", n,
		               (unsigned long long)SEG_COUNT_MAX);
	struct hnsw_graph *g = hnsw_graph_alloc();
	if (!g)
		return STRATA_ENOMEM;
	int rc = STRATA_ENOMEM;
	uint32_t threads = p->threads ? p->threads : 1;
	if (threads > n)
		threads = n ? (uint32_t)n : 1;

	g->p = *p;
	g->n = n;
	g->progress_step = n / 200 ? n / 200 : 1;
	view_init(&g->v, p);
	g->v.count = (uint32_t)n;
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
		if (!g->locks) {
			rc = STRATA_ENOMEM;
			goto fail;
		}
	}
	rc = 0;
	if (n > 0) {
		atomic_store(&g->next_row, 0);
		rc = run_workers(g, threads);
	}
	if (rc)
		goto fail;
	uint64_t ep = atomic_load(&g->ep);
	g->v.entry = (uint32_t)ep;
	g->v.max_level = n ? (uint32_t)(ep >> 32) : 0;
	free(g->locks);
	g->locks = NULL;
	*g_out = g;
	return 0;

fail:
	hnsw_graph_free(g);
	if (rc == STRATA_ENOMEM)
		err_set(rc, "building a graph of %zu vectors of dim %u", n, p->dim);
	return rc;
}

/* ---- incremental graphs -------------------------------------------------- */

static size_t upper_block_bytes(const struct hnsw_graph *g)
{
	return (size_t)seg_upper_block_size(g->p.M);
}

int hnsw_graph_new(const struct hnsw_build_params *p, size_t capacity, struct hnsw_graph **g_out)
{
	if (capacity == 0 || p->dim == 0 || p->M < 2)
		return err_set(STRATA_EINVAL, "incremental graph: capacity %zu, dim %u, M %u", capacity,
		               p->dim, p->M);
	if (capacity > SEG_COUNT_MAX)
		return err_set(STRATA_ELIMIT, "incremental graph of %zu rows: at most %llu", capacity,
		               (unsigned long long)SEG_COUNT_MAX);
	struct hnsw_graph *g = hnsw_graph_alloc();
	if (!g)
		return err_set(STRATA_ENOMEM, "incremental graph");
	g->p = *p;
	g->mapped = true;
	g->capacity = capacity;
	g->rng = p->seed;
	view_init(&g->v, p);
	/* The builder's own searches see every slot; views narrow count to the rows appended. */
	g->v.count = (uint32_t)capacity;
	g->v.upper_count = capacity;
	/*
	 * A row has upper layers with probability 1/M and E[level] = 1/(M - 1):
	 * twice the expected block count, plus room for a few unlucky tall nodes.
	 * The pages are mapped lazily, so the margin costs address space only.
	 */
	g->blocks_cap = 2 * (uint64_t)capacity / (p->M - 1) + 16 * SEG_LEVEL_MAX;
	g->nodes = big_zalloc(capacity * g->v.stride);
	g->upper_index = big_zalloc(capacity * SEG_UPPER_ENTRY_SIZE);
	g->upper_links = big_zalloc(g->blocks_cap * upper_block_bytes(g));
	g->level_of_node = big_zalloc(capacity);
	g->locks = big_zalloc(capacity * sizeof *g->locks);
	g->row_done = big_zalloc(capacity * sizeof *g->row_done);
	if (!g->nodes || !g->upper_index || !g->upper_links || !g->level_of_node || !g->locks ||
	    !g->row_done) {
		hnsw_graph_free(g);
		return err_set(STRATA_ENOMEM, "incremental graph of %zu rows of dim %u", capacity, p->dim);
	}
	g->v.nodes = g->nodes;
	g->v.upper_index = g->upper_index;
	g->v.upper_links = g->upper_links;
	g->v.upper_blocks = g->blocks_cap;
	*g_out = g;
	return 0;
}

void hnsw_graph_prefault(struct hnsw_graph *g, size_t from, size_t to)
{
	if (to > g->capacity)
		to = g->capacity;
	if (to <= from)
		return;
	big_populate(g->nodes, from * g->v.stride, to * g->v.stride);
	big_populate(g->upper_index, from * SEG_UPPER_ENTRY_SIZE, to * SEG_UPPER_ENTRY_SIZE);
	big_populate(g->level_of_node, from, to);
	big_populate(g->locks, from * sizeof *g->locks, to * sizeof *g->locks);
	big_populate(g->row_done, from * sizeof *g->row_done, to * sizeof *g->row_done);
}

int hnsw_graph_append(struct hnsw_graph *g, const float *vec, uint32_t *row_out)
{
	/* Only this function stores `appended`, and one caller at a time: relaxed is enough here. */
	size_t row = atomic_load_explicit(&g->appended, memory_order_relaxed);
	if (row >= g->capacity)
		return err_set(STRATA_ELIMIT, "incremental graph full: %zu rows", g->capacity);
	uint64_t rng = g->rng;
	uint32_t level = draw_level(&rng, 1.0 / log((double)g->p.M));
	if (level > g->blocks_cap - g->blocks_used)
		return err_set(STRATA_ELIMIT, "incremental graph: upper-layer reserve of %llu blocks "
		               "used up after %zu rows", (unsigned long long)g->blocks_cap, row);
	uint8_t *rec = g->nodes + row * g->v.stride;
	memcpy(rec, vec, (size_t)g->p.dim * sizeof(float));
	if (g->p.metric == STRATA_METRIC_COSINE && !g->append_raw)
		dist_normalize((float *)(void *)rec, g->p.dim);
	g->level_of_node[row] = (uint8_t)level;
	le_store32(g->upper_index + row * SEG_UPPER_ENTRY_SIZE, level);
	le_store64(g->upper_index + row * SEG_UPPER_ENTRY_SIZE + 8, level ? g->blocks_used : 0);
	g->blocks_used += level;
	g->rng = rng;
	atomic_store_explicit(&g->appended, row + 1, memory_order_release);
	*row_out = (uint32_t)row;
	return 0;
}

size_t hnsw_graph_appended(const struct hnsw_graph *g)
{
	return atomic_load_explicit(&((struct hnsw_graph *)(uintptr_t)g)->appended,
	                            memory_order_acquire);
}

size_t hnsw_graph_indexed(const struct hnsw_graph *g)
{
	return atomic_load_explicit(&((struct hnsw_graph *)(uintptr_t)g)->indexed,
	                            memory_order_acquire);
}

int hnsw_graph_index(struct hnsw_graph *g, size_t upto)
{
	if (!g->capacity)
		return err_set(STRATA_EINVAL, "hnsw_graph_index: not an incremental graph");
	size_t appended = hnsw_graph_appended(g);
	if (upto > appended)
		return err_set(STRATA_EINVAL, "hnsw_graph_index: up to row %zu, but %zu appended", upto,
		               appended);
	size_t from = hnsw_graph_indexed(g);
	if (upto <= from)
		return 0;
	g->n = upto;
	atomic_store(&g->next_row, from);
	atomic_store(&g->done, from);
	g->progress_step = (upto - from) / 200 ? (upto - from) / 200 : 1;
	uint32_t threads = g->p.threads ? g->p.threads : 1;
	if (threads > upto - from)
		threads = (uint32_t)(upto - from);
	int rc = run_workers(g, threads);
	if (rc == HNSW_ECANCELED)
		return rc;
	if (rc)
		return err_set(rc, "indexing rows %zu..%zu of an incremental graph", from, upto);
	return 0;
}

void hnsw_graph_set_cancel(struct hnsw_graph *g, const _Atomic int *flag)
{
	g->cancel = flag;
}

int hnsw_graph_new_seeded(const struct hnsw_build_params *p, size_t capacity,
                          const struct hnsw_view *seed, struct hnsw_graph **g_out)
{
	if (seed->count > capacity || seed->dim != p->dim || seed->M != p->M ||
	    seed->metric != p->metric)
		return err_set(STRATA_EINVAL, "seeded graph: %u seed nodes of dim %u M %u for capacity "
		               "%zu, dim %u, M %u", seed->count, seed->dim, seed->M, capacity, p->dim,
		               p->M);
	if (capacity == 0 || seed->upper_count > seed->count ||
	    seed->upper_blocks > (uint64_t)seed->upper_count * SEG_LEVEL_MAX)
		return err_set(STRATA_EINVAL, "seeded graph: capacity %zu, seed of %u nodes, %llu upper",
		               capacity, seed->count, (unsigned long long)seed->upper_count);
	/*
	 * The seed's own blocks plus the usual reserve for the rows still to come.
	 * Built through hnsw_graph_new's sizing rule with the extra blocks added.
	 */
	struct hnsw_graph *g;
	int rc = hnsw_graph_new(p, capacity, &g);
	if (rc)
		return rc;
	uint64_t need = seed->upper_blocks + 2 * (uint64_t)(capacity - seed->count) / (p->M - 1) +
	                16 * SEG_LEVEL_MAX;
	if (need > g->blocks_cap) {
		big_free(g->upper_links, g->blocks_cap * upper_block_bytes(g));
		g->blocks_cap = need;
		g->upper_links = big_zalloc(need * upper_block_bytes(g));
		g->v.upper_links = g->upper_links;
		g->v.upper_blocks = need;
		if (!g->upper_links) {
			g->blocks_cap = 0;
			hnsw_graph_free(g);
			return err_set(STRATA_ENOMEM, "seeded graph: %llu upper blocks",
			               (unsigned long long)need);
		}
	}
	g->append_raw = true;
	uint32_t n = seed->count;
	if (n) {
		/* Same parameters, same layout: the seed's records are this graph's rows 0..n-1. */
		memcpy(g->nodes, seed->nodes, (size_t)n * g->v.stride);
		memcpy(g->upper_index, seed->upper_index, (size_t)seed->upper_count * SEG_UPPER_ENTRY_SIZE);
		memcpy(g->upper_links, seed->upper_links, seed->upper_blocks * upper_block_bytes(g));
		for (uint32_t i = 0; i < seed->upper_count; i++) {
			uint32_t level = le_load32(seed->upper_index + (size_t)i * SEG_UPPER_ENTRY_SIZE);
			uint64_t first = le_load64(seed->upper_index + (size_t)i * SEG_UPPER_ENTRY_SIZE + 8);
			if (level == 0 || level > SEG_LEVEL_MAX || first + level > seed->upper_blocks) {
				hnsw_graph_free(g);
				return ERR_CORRUPT("seeded graph: node %u has level %u at block %llu of %llu", i,
				                   level, (unsigned long long)first,
				                   (unsigned long long)seed->upper_blocks);
			}
			g->level_of_node[i] = (uint8_t)level;
		}
		for (uint32_t i = 0; i < n; i++)
			atomic_store_explicit(&g->row_done[i], 1, memory_order_relaxed);
		g->blocks_used = seed->upper_blocks;
		atomic_store(&g->ep, hnsw_ep_pack(seed->entry, seed->max_level));
		atomic_store(&g->indexed, n);
		atomic_store_explicit(&g->appended, n, memory_order_release);
	}
	*g_out = g;
	return 0;
}

void hnsw_graph_view_live(struct hnsw_graph *g, struct hnsw_view *v_out)
{
	*v_out = g->v;
	/*
	 * The entry point first, then the row count: the entry was appended
	 * before it was inserted, so it is below the count read after it.
	 */
	uint64_t ep = atomic_load(&g->ep);
	size_t n = hnsw_graph_appended(g);
	v_out->count = (uint32_t)n;
	v_out->upper_count = n;
	v_out->entry = (uint32_t)ep;
	v_out->max_level = ep == HNSW_EP_NONE ? 0 : (uint32_t)(ep >> 32);
	v_out->locks = g->locks;
}

void hnsw_graph_free(struct hnsw_graph *g)
{
	if (!g)
		return;
	pthread_mutex_destroy(&g->global);
	pthread_mutex_destroy(&g->progress_lock);
	if (g->mapped) {
		big_free(g->nodes, g->capacity * g->v.stride);
		big_free(g->upper_index, g->capacity * SEG_UPPER_ENTRY_SIZE);
		big_free(g->upper_links, g->blocks_cap * upper_block_bytes(g));
		big_free(g->level_of_node, g->capacity);
		big_free(g->locks, g->capacity * sizeof *g->locks);
		big_free(g->row_done, g->capacity * sizeof *g->row_done);
	} else {
		free(g->nodes);
		free(g->upper_index);
		free(g->upper_links);
		free(g->level_of_node);
		free(g->locks);
	}
	free(g->node_of_row);
	free(g);
}

void hnsw_graph_view(const struct hnsw_graph *g, struct hnsw_view *v_out)
{
	if (g->capacity) {
		hnsw_graph_view_live((struct hnsw_graph *)(uintptr_t)g, v_out);
		v_out->locks = NULL;
		return;
	}
	*v_out = g->v;
}

uint32_t hnsw_graph_node_of_row(const struct hnsw_graph *g, size_t row)
{
	return g->node_of_row ? g->node_of_row[row] : (uint32_t)row;
}
