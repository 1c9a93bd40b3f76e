/*
 * hnsw_internal.h - pieces shared by hnsw_search.c and hnsw_build.c only:
 * the per-thread scratch and the two binary heaps of the beam search.
 */
#ifndef STRATA_HNSW_INTERNAL_H
#define STRATA_HNSW_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "hnsw.h"

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

int hnsw_heap_push_min(struct hnsw_heap *h, struct hnsw_hit x);
struct hnsw_hit hnsw_heap_pop_min(struct hnsw_heap *h);
int hnsw_heap_push_max(struct hnsw_heap *h, struct hnsw_hit x);
struct hnsw_hit hnsw_heap_pop_max(struct hnsw_heap *h);

#endif /* STRATA_HNSW_INTERNAL_H */
