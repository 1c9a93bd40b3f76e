/*
 * hnsw_internal.h - pieces shared by hnsw_search.c, hnsw_build.c and
 * hnsw_compact.c only: the graph object, the per-node spinlocks, the
 * per-thread scratch, the two binary heaps of the beam search and the
 * neighbour-selection heuristic.
 */
#ifndef STRATA_HNSW_INTERNAL_H
#define STRATA_HNSW_INTERNAL_H

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hnsw.h"
#include "segment.h"
#include "strata.h"

struct hnsw_scratch {
	uint16_t *tags;   /* visit marks: tags[node] == epoch means visited in this search */
	size_t tags_len;
	uint16_t epoch;
	struct hnsw_heap cand; /* min-heap: nodes still to expand */
	struct hnsw_heap top;  /* max-heap: best ef nodes so far */
	struct hnsw_heap kbest;/* max-heap: best k nodes so far (bounded searches only) */
	uint32_t *list;        /* a neighbour list copied under its lock (live views only) */
	size_t list_len;
};

/*
 * The entry point and the top level change together (an insertion that
 * raises the top layer), and a live view must never see one without the
 * other: they share one atomic word, entry in the low half.
 */
#define HNSW_EP_NONE ((uint64_t)SEG_NO_NODE)
static inline uint64_t hnsw_ep_pack(uint32_t entry, uint32_t level)
{
	return (uint64_t)entry | (uint64_t)level << 32;
}

/*
 * A graph: built whole by hnsw_build, grown row by row (hnsw_graph_new,
 * _append, _index), or made by hnsw_graph_compact. `v` describes it in the
 * segment layout, except that an incremental graph's upper index has one
 * entry per node (level 0 for nodes without upper layers), since node = row.
 */
struct hnsw_graph {
	struct hnsw_view v;     /* v.locks is always NULL; views get g->locks explicitly */
	uint8_t *nodes;
	uint8_t *upper_index;
	uint8_t *upper_links;
	uint32_t *node_of_row;  /* NULL: node = row (incremental and compacted graphs) */
	uint8_t *level_of_node; /* NULL for compacted graphs */
	atomic_uchar *locks;    /* one spinlock per node; NULL when building with one thread */
	pthread_mutex_t global; /* held by an insertion that raises the top layer */
	_Atomic uint64_t ep;    /* hnsw_ep_pack(entry, max_level), HNSW_EP_NONE when empty */
	struct hnsw_build_params p;
	size_t n;               /* rows to insert: all of them, or `upto` of hnsw_graph_index */
	_Atomic size_t next_row;
	_Atomic size_t done;
	pthread_mutex_t progress_lock;
	size_t progress_step;
	_Atomic int failed;     /* first error of any worker; others stop */

	/* Incremental graphs only (capacity > 0); the arrays are mapped lazily zeroed. */
	size_t capacity;
	_Atomic size_t appended;  /* rows [0, appended) hold their vectors (release/acquire) */
	_Atomic size_t indexed;   /* rows [0, indexed) are fully inserted */
	atomic_uchar *row_done;   /* row_done[r]: row r fully inserted (advances `indexed`) */
	uint64_t rng;             /* level generator; advanced by hnsw_graph_append only */
	uint64_t blocks_cap;      /* upper blocks reserved */
	uint64_t blocks_used;     /* upper blocks handed out, in append order */
	bool mapped;              /* arrays come from mmap (free with munmap) */
	bool append_raw;          /* appended vectors are stored as given (already normalised) */
	const _Atomic int *cancel;/* non-NULL and set: workers stop with HNSW_ECANCELED */
};

/* Allocate an empty graph object with its mutexes ready (NULL on ENOMEM). */
struct hnsw_graph *hnsw_graph_alloc(void);

/*
 * Per-node spinlocks, shared by the builder and the live-view search: a
 * list is read or written only while its node's lock is held, which is
 * what makes a search concurrent with insertions race-free (hnswlib holds
 * a mutex per list the same way; one byte per node instead of 40).
 */
static inline void hnsw_node_lock(atomic_uchar *locks, uint32_t node)
{
	atomic_uchar *l = &locks[node];
	while (atomic_exchange_explicit(l, 1, memory_order_acquire)) {
		while (atomic_load_explicit(l, memory_order_relaxed))
			sched_yield();
	}
}

static inline void hnsw_node_unlock(atomic_uchar *locks, uint32_t node)
{
	atomic_store_explicit(&locks[node], 0, memory_order_release);
}

/*
 * Algorithm 4 (the neighbour-selection heuristic, without extending or
 * keeping pruned candidates, as hnswlib): walk `cand` (n, sorted by distance
 * to the base) and keep a candidate only if it is closer to the base than to
 * every one kept so far. Writes at most m to sel; returns how many.
 */
uint32_t hnsw_select_heuristic(const struct hnsw_view *v, const struct hnsw_hit *cand, uint32_t n,
                               uint32_t m, struct hnsw_hit *sel);

/* qsort order of hits: distance, then node. */
int hnsw_hit_cmp(const void *a, const void *b);

/* Make `s` ready for a search over `count` nodes with beam width ef: new epoch, empty heaps. */
int hnsw_scratch_prepare(struct hnsw_scratch *s, uint32_t count, uint32_t ef);

/* Grow h to hold at least cap hits. 0 or STRATA_ENOMEM. */
int hnsw_heap_reserve(struct hnsw_heap *h, size_t cap);

/*
 * The heaps are on the hot path of every search and build step (a third of
 * the time at large ef, by perf), so they are inline here.
 */
/* ---- binary heaps: `cand` is a min-heap, `top` a max-heap on dist ------- */

static inline int hnsw_hit_less(struct hnsw_hit a, struct hnsw_hit b)
{
	/* Ties on distance are broken by node index so results are deterministic. */
	return a.dist < b.dist || (a.dist == b.dist && a.node < b.node);
}

static inline int hnsw_heap_push_min(struct hnsw_heap *h, struct hnsw_hit x)
{
	if (h->n == h->cap && hnsw_heap_reserve(h, h->n + 1))
		return STRATA_ENOMEM;
	size_t i = h->n++;
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (!hnsw_hit_less(x, h->a[p]))
			break;
		h->a[i] = h->a[p];
		i = p;
	}
	h->a[i] = x;
	return 0;
}

static inline struct hnsw_hit hnsw_heap_pop_min(struct hnsw_heap *h)
{
	struct hnsw_hit top = h->a[0];
	struct hnsw_hit last = h->a[--h->n];
	size_t i = 0, n = h->n;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= n)
			break;
		if (c + 1 < n && hnsw_hit_less(h->a[c + 1], h->a[c]))
			c++;
		if (!hnsw_hit_less(h->a[c], last))
			break;
		h->a[i] = h->a[c];
		i = c;
	}
	if (n)
		h->a[i] = last;
	return top;
}

static inline int hnsw_heap_push_max(struct hnsw_heap *h, struct hnsw_hit x)
{
	if (h->n == h->cap && hnsw_heap_reserve(h, h->n + 1))
		return STRATA_ENOMEM;
	size_t i = h->n++;
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (!hnsw_hit_less(h->a[p], x))
			break;
		h->a[i] = h->a[p];
		i = p;
	}
	h->a[i] = x;
	return 0;
}

static inline struct hnsw_hit hnsw_heap_pop_max(struct hnsw_heap *h)
{
	struct hnsw_hit top = h->a[0];
	struct hnsw_hit last = h->a[--h->n];
	size_t i = 0, n = h->n;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= n)
			break;
		if (c + 1 < n && hnsw_hit_less(h->a[c], h->a[c + 1]))
			c++;
		if (!hnsw_hit_less(last, h->a[c]))
			break;
		h->a[i] = h->a[c];
		i = c;
	}
	if (n)
		h->a[i] = last;
	return top;
}

/* Replace the root of a full max-heap by x (x must not be worse) and sift it down. */
static inline void hnsw_heap_replace_max(struct hnsw_heap *h, struct hnsw_hit x)
{
	size_t i = 0, n = h->n;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= n)
			break;
		if (c + 1 < n && hnsw_hit_less(h->a[c], h->a[c + 1]))
			c++;
		if (!hnsw_hit_less(x, h->a[c]))
			break;
		h->a[i] = h->a[c];
		i = c;
	}
	h->a[i] = x;
}

#endif /* STRATA_HNSW_INTERNAL_H */
