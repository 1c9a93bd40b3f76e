/*
 * hnsw_internal.h - pieces shared by hnsw_search.c and hnsw_build.c only:
 * the per-thread scratch and the two binary heaps of the beam search.
 */
#ifndef STRATA_HNSW_INTERNAL_H
#define STRATA_HNSW_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "hnsw.h"
#include "strata.h"

struct hnsw_heap {
	struct hnsw_hit *a;
	size_t n;
	size_t cap;
};

struct hnsw_scratch {
	uint16_t *tags;   /* visit marks: tags[node] == epoch means visited in this search */
	size_t tags_len;
	uint16_t epoch;
	struct hnsw_heap cand; /* min-heap: nodes still to expand */
	struct hnsw_heap top;  /* max-heap: best ef nodes so far */
};

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
