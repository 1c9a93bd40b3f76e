/*
 * hnsw_compact.c - hnsw_graph_compact(): a new graph in the segment layout
 * (format/segment.h: upper-layer nodes first) over the nodes of a view that
 * a drop bitmap keeps. Used by the flush (incremental memtable graph ->
 * segment) and by segment merges (a segment minus its tombstones).
 *
 * Dropping nodes from an HNSW graph and leaving the rest as they were loses
 * recall merge after merge (Lucene's experience): every list that pointed at
 * a dropped node loses an edge, and nodes reachable only through dropped
 * ones fall out of the graph. So a list that lost a neighbour is rebuilt
 * from the surviving neighbours plus the surviving neighbours of each dropped
 * neighbour (one hop through it, on the same layer), reduced with the
 * selection heuristic (Malkov & Yashunin, algorithm 4, keeping pruned
 * connections to fill the list) to M0 or M. Lists that
 * lost nothing are copied, renumbered, in their order, so a compaction that
 * drops nothing gives the source graph back.
 *
 * The source view is read only, and each new node's lists are written by
 * one worker alone: the workers need no locks. The view is trusted no
 * further than hnsw_search trusts it (it may be a segment that passed only
 * seg_check): counts, neighbour ids and upper-layer memberships are checked
 * before use, and the output satisfies seg_verify whatever the input was.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "hnsw.h"
#include "hnsw_internal.h"
#include "le.h"
#include "segment.h"

/* New nodes a worker claims at a time: few enough to balance, many enough to not contend. */
#define COMPACT_CHUNK 256u

struct compact {
	const struct hnsw_view *v;
	const uint64_t *drop;
	const uint8_t *old_level;  /* level of each old node, checked against SEG_LEVEL_MAX */
	const uint32_t *old_of_new;
	const uint32_t *new_of_old;/* SEG_NO_NODE for dropped nodes */
	struct hnsw_graph *g;
	uint32_t new_count;
	_Atomic uint32_t next;     /* first new node not yet claimed */
	_Atomic int failed;        /* first error of any worker; the others stop */
};

struct compact_worker {
	struct compact *c;
	uint32_t *seen;            /* seen[old] == stamp: already a candidate for this list */
	uint32_t stamp;
	struct hnsw_hit *cand;     /* candidates: (distance to the base, old node) */
	struct hnsw_hit *sel;
	uint32_t *dropped;         /* the dropped neighbours of the list being repaired */
	int rc;
};

static inline bool is_dropped(const uint64_t *drop, uint32_t node)
{
	return drop && (drop[node / 64] >> (node % 64) & 1);
}

static uint32_t level_of(const struct hnsw_view *v, uint32_t node)
{
	return node < v->upper_count ? le_load32(v->upper_index + (size_t)node * SEG_UPPER_ENTRY_SIZE)
	                             : 0;
}

/* The old list of `node` on `level`, checked: count within the layer's cap. */
static int old_list(const struct compact *c, uint32_t node, uint32_t level, const uint32_t **out)
{
	const struct hnsw_view *v = c->v;
	const uint32_t *l;
	uint32_t cap;
	if (level == 0) {
		l = hnsw_links0(v, node);
		cap = v->M0;
	} else {
		l = hnsw_links_upper(v, node, level);
		if (!l)
			return ERR_CORRUPT("compact: node %u has no list on layer %u", node, level);
		cap = v->M;
	}
	if (l[0] > cap)
		return ERR_CORRUPT("compact: node %u lists %u neighbours on layer %u (cap %u)", node,
		                   l[0], level, cap);
	*out = l;
	return 0;
}

/* A neighbour read from a list on `level`: inside the graph and living on that layer. */
static int check_nbr(const struct compact *c, uint32_t from, uint32_t x, uint32_t level)
{
	if (x >= c->v->count)
		return ERR_CORRUPT("compact: node %u links to %u on layer %u, beyond the %u nodes", from,
		                   x, level, c->v->count);
	if (c->old_level[x] < level)
		return ERR_CORRUPT("compact: node %u links to %u on layer %u, which it does not reach",
		                   from, x, level);
	return 0;
}

/* A fresh mark for w->seen; every 2^32 marks the array is cleared. */
static uint32_t next_stamp(struct compact_worker *w)
{
	if (++w->stamp == 0) {
		memset(w->seen, 0, (size_t)w->c->v->count * sizeof *w->seen);
		w->stamp = 1;
	}
	return w->stamp;
}

/*
 * Write the new list of old node o on `level` into `dst`
 * ([u32 count][u32 nbr...], zeroed beforehand).
 */
static int build_list(struct compact_worker *w, uint32_t o, uint32_t level, uint32_t *dst)
{
	const struct compact *c = w->c;
	const struct hnsw_view *v = c->v;
	uint32_t cap = level ? v->M : v->M0;
	const uint32_t *l;
	int rc = old_list(c, o, level, &l);
	if (rc)
		return rc;
	const uint32_t stamp = next_stamp(w);
	w->seen[o] = stamp; /* never its own neighbour */
	uint32_t k = 0, nd = 0;
	for (uint32_t j = 1; j <= l[0]; j++) {
		uint32_t x = l[j];
		if ((rc = check_nbr(c, o, x, level)))
			return rc;
		if (w->seen[x] == stamp)
			continue;
		w->seen[x] = stamp;
		if (is_dropped(c->drop, x))
			w->dropped[nd++] = x;
		else
			w->cand[k++] = (struct hnsw_hit){0, x};
	}
	if (nd == 0) {
		/* Nothing lost: the list as it was, renumbered. */
		for (uint32_t j = 0; j < k; j++)
			dst[1 + j] = c->new_of_old[w->cand[j].node];
		dst[0] = k;
		return 0;
	}
	for (uint32_t i = 0; i < nd; i++) {
		const uint32_t *dl;
		if ((rc = old_list(c, w->dropped[i], level, &dl)))
			return rc;
		for (uint32_t j = 1; j <= dl[0]; j++) {
			uint32_t y = dl[j];
			if ((rc = check_nbr(c, w->dropped[i], y, level)))
				return rc;
			if (w->seen[y] == stamp)
				continue;
			w->seen[y] = stamp;
			if (!is_dropped(c->drop, y))
				w->cand[k++] = (struct hnsw_hit){0, y};
		}
	}
	const float *base = hnsw_vec(v, o);
	for (uint32_t j = 0; j < k; j++)
		w->cand[j].dist = hnsw_dist_ordered(v->dist(base, hnsw_vec(v, w->cand[j].node), v->dim));
	qsort(w->cand, k, sizeof *w->cand, hnsw_hit_cmp);
	uint32_t n = hnsw_select_heuristic(v, w->cand, k, cap, w->sel);
	for (uint32_t j = 0; j < n; j++)
		dst[1 + j] = c->new_of_old[w->sel[j].node];
	/*
	 * Algorithm 4 with keepPrunedConnections: fill the list up to its cap with
	 * the nearest candidates the heuristic passed over. A list built by
	 * insertions is full (back-links fill it past what the heuristic alone
	 * keeps); a repaired list pruned to the heuristic's choice alone is much
	 * sparser, and recall measurably lower (see hnsw_incr_test.c).
	 */
	if (n < cap && n < k) {
		const uint32_t chosen = next_stamp(w);
		for (uint32_t j = 0; j < n; j++)
			w->seen[w->sel[j].node] = chosen;
		for (uint32_t j = 0; j < k && n < cap; j++)
			if (w->seen[w->cand[j].node] != chosen)
				dst[1 + n++] = c->new_of_old[w->cand[j].node];
	}
	dst[0] = n;
	return 0;
}

/* Fill new node nn: its record (vector, layer-0 list) and its upper blocks. */
static int fill_node(struct compact_worker *w, uint32_t nn)
{
	const struct compact *c = w->c;
	const struct hnsw_view *v = c->v;
	struct hnsw_graph *g = c->g;
	uint32_t o = c->old_of_new[nn];
	uint8_t *rec = g->nodes + (size_t)nn * g->v.stride;
	memset(rec, 0, g->v.stride);
	memcpy(rec, hnsw_vec(v, o), (size_t)v->dim * sizeof(float));
	int rc = build_list(w, o, 0, (uint32_t *)(void *)(rec + g->v.links_off));
	if (rc)
		return rc;
	uint32_t L = c->old_level[o];
	if (L == 0)
		return 0;
	uint64_t first = le_load64(g->upper_index + (size_t)nn * SEG_UPPER_ENTRY_SIZE + 8);
	size_t block = (size_t)seg_upper_block_size(v->M);
	for (uint32_t level = 1; level <= L; level++) {
		uint32_t *dst = (uint32_t *)(void *)(g->upper_links + (first + level - 1) * block);
		memset(dst, 0, block);
		if ((rc = build_list(w, o, level, dst)))
			return rc;
	}
	return 0;
}

static void *compact_main(void *arg)
{
	struct compact_worker *w = arg;
	struct compact *c = w->c;
	for (;;) {
		if (atomic_load_explicit(&c->failed, memory_order_relaxed))
			break;
		uint32_t from = atomic_fetch_add(&c->next, COMPACT_CHUNK);
		if (from >= c->new_count)
			break;
		uint32_t to = c->new_count - from < COMPACT_CHUNK ? c->new_count : from + COMPACT_CHUNK;
		for (uint32_t nn = from; nn < to; nn++) {
			int rc = fill_node(w, nn);
			if (rc) {
				w->rc = rc;
				int zero = 0;
				atomic_compare_exchange_strong(&c->failed, &zero, rc);
				return NULL;
			}
		}
	}
	return NULL;
}

static int worker_init(struct compact_worker *w, struct compact *c)
{
	memset(w, 0, sizeof *w);
	w->c = c;
	size_t m0 = c->v->M0;
	size_t ncand = m0 + m0 * m0 + 1; /* the list, and the list of each of its neighbours */
	w->seen = calloc(c->v->count ? c->v->count : 1, sizeof *w->seen);
	w->cand = malloc(ncand * sizeof *w->cand);
	w->sel = malloc(ncand * sizeof *w->sel);
	w->dropped = malloc((m0 + 1) * sizeof *w->dropped);
	return (w->seen && w->cand && w->sel && w->dropped) ? 0 : STRATA_ENOMEM;
}

static void worker_fini(struct compact_worker *w)
{
	free(w->seen);
	free(w->cand);
	free(w->sel);
	free(w->dropped);
}

/* Run `threads` workers over all new nodes, the caller being one. */
static int run_compact(struct compact *c, uint32_t threads)
{
	struct compact_worker *ws = calloc(threads, sizeof *ws);
	pthread_t *tids = calloc(threads, sizeof *tids);
	uint32_t ready = 0;
	int rc = STRATA_ENOMEM;
	if (!ws || !tids)
		goto out;
	for (; ready < threads; ready++) {
		if (worker_init(&ws[ready], c)) {
			ready++;
			goto out;
		}
	}
	uint32_t started = 0;
	for (uint32_t t = 1; t < threads; t++) {
		if (pthread_create(&tids[t], NULL, compact_main, &ws[t]) != 0)
			break;
		started = t;
	}
	compact_main(&ws[0]);
	for (uint32_t t = 1; t <= started; t++)
		pthread_join(tids[t], NULL);
	rc = atomic_load(&c->failed);
out:
	for (uint32_t t = 0; ws && t < ready; t++)
		worker_fini(&ws[t]);
	free(ws);
	free(tids);
	if (rc == STRATA_ENOMEM)
		err_set(rc, "compacting a graph of %u nodes", c->v->count);
	return rc;
}

/*
 * Number the survivors (upper-layer nodes first, old order kept within each
 * class), lay out the new upper index, choose the entry point.
 */
static int plan(struct compact *c, uint8_t *old_level, uint32_t *new_of_old, uint32_t *old_of_new,
                struct hnsw_graph *g)
{
	const struct hnsw_view *v = c->v;
	uint32_t n_upper = 0, n_all = 0, top = 0;
	for (uint32_t i = 0; i < v->count; i++) {
		uint32_t L = level_of(v, i);
		if (L > SEG_LEVEL_MAX)
			return ERR_CORRUPT("compact: node %u has level %u, above %u", i, L, SEG_LEVEL_MAX);
		old_level[i] = (uint8_t)L;
		if (is_dropped(c->drop, i))
			continue;
		n_all++;
		if (L) {
			n_upper++;
			if (L > top)
				top = L;
		}
	}
	uint32_t next_upper = 0, next_low = n_upper;
	for (uint32_t i = 0; i < v->count; i++) {
		if (is_dropped(c->drop, i)) {
			new_of_old[i] = SEG_NO_NODE;
			continue;
		}
		uint32_t nn = old_level[i] ? next_upper++ : next_low++;
		new_of_old[i] = nn;
		old_of_new[nn] = i;
	}
	c->new_count = n_all;

	g->upper_index = calloc(n_upper ? n_upper : 1, SEG_UPPER_ENTRY_SIZE);
	if (!g->upper_index)
		return STRATA_ENOMEM;
	uint64_t blocks = 0;
	for (uint32_t nn = 0; nn < n_upper; nn++) {
		uint32_t L = old_level[old_of_new[nn]];
		le_store32(g->upper_index + (size_t)nn * SEG_UPPER_ENTRY_SIZE, L);
		le_store64(g->upper_index + (size_t)nn * SEG_UPPER_ENTRY_SIZE + 8, blocks);
		blocks += L;
	}
	g->upper_links = calloc(blocks ? blocks : 1, (size_t)seg_upper_block_size(v->M));
	size_t nodes_bytes = (n_all ? n_all : 1) * g->v.stride;
	g->nodes = aligned_alloc(64, (nodes_bytes + 63) / 64 * 64);
	if (!g->upper_links || !g->nodes)
		return STRATA_ENOMEM;
	g->v.count = n_all;
	g->v.upper_count = n_upper;
	g->v.upper_blocks = blocks;
	g->v.max_level = top;
	g->v.nodes = g->nodes;
	g->v.upper_index = g->upper_index;
	g->v.upper_links = g->upper_links;

	/* The old entry if it survives on the top layer, else the first node there. */
	uint32_t e = SEG_NO_NODE;
	if (v->entry < v->count && new_of_old[v->entry] != SEG_NO_NODE && old_level[v->entry] == top)
		e = new_of_old[v->entry];
	for (uint32_t nn = 0; e == SEG_NO_NODE && nn < n_all; nn++)
		if (old_level[old_of_new[nn]] == top)
			e = nn;
	g->v.entry = e;
	atomic_store(&g->ep, e == SEG_NO_NODE ? HNSW_EP_NONE : hnsw_ep_pack(e, top));
	return 0;
}

int hnsw_graph_compact(const struct hnsw_view *v, const uint64_t *drop, uint32_t threads,
                       struct hnsw_graph **g_out, uint32_t **old_of_new_out)
{
	if (v->M < STRATA_M_MIN || v->M0 < v->M || v->dim == 0)
		return ERR_CORRUPT("compact: view with M %u, M0 %u, dim %u", v->M, v->M0, v->dim);
	struct hnsw_graph *g = hnsw_graph_alloc();
	size_t n = v->count ? v->count : 1;
	uint8_t *old_level = malloc(n);
	uint32_t *new_of_old = malloc(n * sizeof *new_of_old);
	uint32_t *old_of_new = malloc(n * sizeof *old_of_new);
	int rc = STRATA_ENOMEM;
	if (!g || !old_level || !new_of_old || !old_of_new)
		goto fail;
	g->p = (struct hnsw_build_params){
		.dim = v->dim, .metric = v->metric, .M = v->M, .threads = threads ? threads : 1,
	};
	g->v.dim = v->dim;
	g->v.M = v->M;
	g->v.M0 = v->M0;
	g->v.metric = v->metric;
	g->v.dist = v->dist;
	g->v.stride = (size_t)seg_stride_for(v->dim, v->M0);
	g->v.links_off = 4 * (size_t)v->dim;

	struct compact c = {
		.v = v, .drop = drop, .old_level = old_level, .old_of_new = old_of_new,
		.new_of_old = new_of_old, .g = g,
	};
	if ((rc = plan(&c, old_level, new_of_old, old_of_new, g)))
		goto fail;
	g->n = c.new_count;
	if (c.new_count) {
		uint32_t t = threads ? threads : 1;
		uint32_t chunks = (c.new_count + COMPACT_CHUNK - 1) / COMPACT_CHUNK;
		if (t > chunks)
			t = chunks;
		if ((rc = run_compact(&c, t)))
			goto fail;
	}
	free(old_level);
	free(new_of_old);
	*g_out = g;
	*old_of_new_out = old_of_new;
	return 0;
fail:
	if (rc == STRATA_ENOMEM)
		err_set(rc, "compacting a graph of %u nodes", v->count);
	hnsw_graph_free(g);
	free(old_level);
	free(new_of_old);
	free(old_of_new);
	return rc;
}
