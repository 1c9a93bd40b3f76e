/*
 * hnsw.h - HNSW graphs (Malkov & Yashunin, 2016/2018): build (hnsw_build.c),
 * incremental growth for the memtable (hnsw_build.c), compaction with repair
 * (hnsw_compact.c) and search (hnsw_search.c) over one representation,
 * `struct hnsw_view`, which is the segment file's layout (format/segment.h).
 * A view points either into a mapped segment file or into a graph on the
 * heap, so the search code that builds the graph is the code that serves it.
 *
 * The search trusts nothing in the view beyond what seg_check() established
 * (sizes of the arrays): every neighbour id is compared with `count` before
 * it is followed, and a list count above M0/M is an error, so a graph damaged
 * behind a valid header yields STRATA_ECORRUPT, never an out-of-bounds read.
 */
#ifndef STRATA_HNSW_H
#define STRATA_HNSW_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "distance.h"
#include "strata.h"

struct hnsw_view {
	const uint8_t *nodes;       /* count records of `stride` bytes */
	const uint8_t *upper_index; /* upper_count x 16 bytes: u32 level, u32 0, u64 first_block */
	const uint8_t *upper_links; /* upper_blocks x (4 + 4*M) bytes */
	uint64_t upper_count;
	uint64_t upper_blocks;
	size_t stride;
	size_t links_off;           /* = 4 * dim: the u32 nbr_count after the vector */
	uint32_t count;
	uint32_t dim;
	uint32_t M;
	uint32_t M0;
	uint32_t max_level;
	uint32_t entry;             /* meaningless when count == 0 */
	strata_metric metric;
	dist_fn dist;
	/*
	 * NULL for every view except hnsw_graph_view_live's: then one spinlock
	 * per node, held while the search copies that node's lists, and
	 * neighbours >= count (rows appended after the view was taken) are
	 * skipped rather than refused.
	 */
	atomic_uchar *locks;
};

static inline const float *hnsw_vec(const struct hnsw_view *v, uint32_t node)
{
	return (const float *)(const void *)(v->nodes + (size_t)node * v->stride);
}

/* Load a node's whole vector into the cache ahead of its distance (lists of scattered nodes). */
static inline void hnsw_prefetch_vec(const struct hnsw_view *v, uint32_t node)
{
	const char *p = (const char *)hnsw_vec(v, node);
	for (size_t off = 0; off < (size_t)v->dim * sizeof(float); off += 64)
		__builtin_prefetch(p + off);
}

static inline const uint32_t *hnsw_links0(const struct hnsw_view *v, uint32_t node)
{
	return (const uint32_t *)(const void *)(v->nodes + (size_t)node * v->stride + v->links_off);
}

/*
 * Distances order the heaps, which need a total order. A NaN distance (a
 * segment's NaN vector that only the full verify would catch, or inner
 * products of huge finite vectors overflowing to inf - inf) counts as
 * infinitely far: such a node is never preferred and results stay sorted.
 */
static inline float hnsw_dist_ordered(float d)
{
	return d == d ? d : __builtin_inff();
}

/*
 * The adjacency block of `node` on `level` >= 1: [u32 count][u32 nbr[M]],
 * or NULL when the view says the node does not live on that level or the
 * block lies outside the upper links (damaged file).
 */
const uint32_t *hnsw_links_upper(const struct hnsw_view *v, uint32_t node, uint32_t level);

struct seg_info;

/*
 * A view of the graph of a segment that seg_check() accepted (format/segment.h).
 * Reads only `info`; the view points into info's buffer and lives as long as it.
 */
void hnsw_view_from_segment(const struct seg_info *info, struct hnsw_view *v_out);

/* One result: graph node and its distance to the query. */
struct hnsw_hit {
	float dist;
	uint32_t node;
};

/* Per-thread search scratch: visited marks and heaps. Grows as needed. */
struct hnsw_scratch;
struct hnsw_scratch *hnsw_scratch_new(void);
void hnsw_scratch_free(struct hnsw_scratch *s);

/* Optional filter on graph nodes (node index, not the caller's id). */
typedef bool (*hnsw_accept_fn)(uint32_t node, void *ctx);

/*
 * What a filtered walk lets into its results, in a form the walk tests
 * inline (no call per node for the common filters): a node passes when every
 * part that is set passes. The walk tests only the nodes it would put into
 * its results, so a filter costs per candidate, not per distance.
 */
struct hnsw_filter {
	/* Bit per node (word node / 64): set = rejected. Read relaxed: set meanwhile (tombstones). */
	const _Atomic uint64_t *dead;
	/* Bit per node: set = passes (the other filters resolved to nodes once for a batch). */
	const uint64_t *node_bits;
	/*
	 * Bit per id: a node passes when its id (little-endian u64 at ids + 8 * node)
	 * is < id_bits_n and has its bit set.
	 */
	const uint64_t *id_bits;
	uint64_t id_bits_n;
	const uint8_t *ids;
	/* Anything else: a call per tested node. */
	hnsw_accept_fn accept;
	void *accept_ctx;
};

/*
 * k nearest nodes of `query` (already normalised for cosine): greedy descent
 * through the upper layers, then a beam search of width max(ef, k) on layer 0.
 * A view whose entry is SEG_NO_NODE (an incremental graph with nothing
 * indexed yet; seg_check refuses it for a non-empty segment) has no hits.
 * Nodes that `accept` rejects are walked through but never enter the results.
 * Writes up to k hits to out (closest first) and their number to *n_out;
 * adds the distance computations made to *dist_evals.
 * Returns 0, STRATA_ECORRUPT (an edge or list count outside the graph) or
 * STRATA_ENOMEM.
 */
int hnsw_search(const struct hnsw_view *v, const float *query, uint32_t k, uint32_t ef,
                hnsw_accept_fn accept, void *accept_ctx, struct hnsw_scratch *s,
                struct hnsw_hit *out, uint32_t *n_out, uint64_t *dist_evals);

/* hnsw_search with a filter (NULL = none) given as struct hnsw_filter. */
int hnsw_search_filtered(const struct hnsw_view *v, const float *query, uint32_t k, uint32_t ef,
                         const struct hnsw_filter *filter, struct hnsw_scratch *s,
                         struct hnsw_hit *out, uint32_t *n_out, uint64_t *dist_evals);

/*
 * hnsw_search_filtered with a `limit`: the caller already holds k results no farther
 * than it (from other segments of the same query), so a node beyond it can
 * never be among the answers. The layer-0 beam then stops at the first
 * candidate beyond both the limit and its own max(k, 10)-th best, not at its
 * ef-th best: a graph with nothing competitive is walked as with ef = k (reaching
 * the query's neighbourhood, so what it holds below the limit is found), one
 * with answers below the limit as with ef (Lucene's multi-segment collectors
 * share their bar in the same spirit). limit = +inf: hnsw_search exactly.
 */
int hnsw_search_bounded(const struct hnsw_view *v, const float *query, uint32_t k, uint32_t ef,
                        float limit, const struct hnsw_filter *filter, struct hnsw_scratch *s,
                        struct hnsw_hit *out, uint32_t *n_out, uint64_t *dist_evals);

/* A binary heap of hits (hnsw_internal.h has its operations). */
struct hnsw_heap {
	struct hnsw_hit *a;
	size_t n;
	size_t cap;
};

/*
 * The `want` layer-0 nodes closest to the query among those a search queued
 * (hnsw_search_traced), dead ones included, in best.a[0..best.n), unordered
 * (the heap's fields hold a plain array here). The caller owns it.
 */
struct hnsw_trace {
	struct hnsw_heap best;
	uint32_t want;
};
void hnsw_trace_free(struct hnsw_trace *t);

/*
 * hnsw_search_filtered of a segment's view (not a live one: STRATA_EINVAL)
 * that also keeps in `trace` the `want` closest layer-0 nodes it queued: the
 * query's neighbourhood as this graph sees it, dead nodes included (a walk
 * goes through them), at no extra distance (for want <= ef exactly the want
 * closest it computed; for a larger want the nodes past the beam's bound
 * when met are not queued, so not kept). The memtable's anchored rows hang
 * under such nodes (memtable.h, mt_search_anchored).
 */
int hnsw_search_traced(const struct hnsw_view *v, const float *query, uint32_t k, uint32_t ef,
                       uint32_t want, const struct hnsw_filter *filter, struct hnsw_scratch *s,
                       struct hnsw_trace *trace, struct hnsw_hit *out, uint32_t *n_out,
                       uint64_t *dist_evals);

/*
 * Exact k nearest of `query` among `nodes[0..n)` (or among all nodes when
 * nodes is NULL) that `accept` passes (NULL = all): the answer for a filter
 * so selective that a graph walk would visit more nodes than pass it.
 * Node ids in `nodes` must be < count (STRATA_ECORRUPT otherwise).
 * Same outputs as hnsw_search.
 */
int hnsw_scan(const struct hnsw_view *v, const float *query, uint32_t k, const uint32_t *nodes,
              size_t n, hnsw_accept_fn accept, void *accept_ctx, struct hnsw_scratch *s,
              struct hnsw_hit *out, uint32_t *n_out, uint64_t *dist_evals);

struct hnsw_build_params {
	uint32_t dim;
	strata_metric metric;
	uint32_t M;
	uint32_t ef_construction;
	uint32_t threads;  /* >= 1 */
	uint64_t seed;
	strata_progress_fn progress;
	void *progress_ctx;
};

/* A graph under construction, kept in the segment layout (see top of file). */
struct hnsw_graph;

/*
 * Build a graph over n vectors (row-major, n * dim floats, finite, already
 * normalised for cosine). Row r becomes node hnsw_graph_node_of_row(g, r):
 * nodes are numbered so that the nodes on upper layers come first.
 * With threads = 1 the result depends only on the input and the seed.
 * Returns 0, STRATA_ENOMEM or STRATA_ELIMIT (n beyond SEG_COUNT_MAX).
 */
int hnsw_build(const struct hnsw_build_params *p, const float *vectors, size_t n,
               struct hnsw_graph **g_out);

void hnsw_graph_free(struct hnsw_graph *g);

/* A view of the built graph (valid while g lives). */
void hnsw_graph_view(const struct hnsw_graph *g, struct hnsw_view *v_out);

/* Node index of input row `row` (row itself for incremental and compacted graphs). */
uint32_t hnsw_graph_node_of_row(const struct hnsw_graph *g, size_t row);

/* ---- incremental graph (the memtable's): node = row, in arrival order ----
 *
 * One appender and one indexer at a time (the caller serialises each; they
 * may be different threads and run concurrently), any number of searchers
 * through hnsw_graph_view_live. hnsw_graph_free only when all have stopped.
 */

/*
 * An empty graph for up to `capacity` rows with the parameters `p` (copied).
 * The arrays for `capacity` records are mapped lazily zeroed, so untouched
 * pages cost nothing. Levels are drawn at append time from a generator
 * seeded with p->seed; upper-layer blocks come from a reserve of twice the
 * expected share (capacity / (M - 1)) plus a margin.
 * Returns 0, STRATA_EINVAL (capacity 0, M < 2, dim 0),
 * STRATA_ELIMIT (capacity beyond SEG_COUNT_MAX) or STRATA_ENOMEM.
 */
int hnsw_graph_new(const struct hnsw_build_params *p, size_t capacity, struct hnsw_graph **g_out);

/*
 * Store the next row's vector (dim floats, finite; normalised here for
 * cosine) and draw its level. One caller at a time. The row becomes visible
 * to hnsw_graph_appended() readers with release order. Returns 0 or
 * STRATA_ELIMIT when capacity or the upper reserve is exhausted (nothing
 * changed; the caller then freezes the memtable).
 */
int hnsw_graph_append(struct hnsw_graph *g, const float *vec, uint32_t *row_out);

/* Rows appended so far (acquire: their vectors are readable). */
size_t hnsw_graph_appended(const struct hnsw_graph *g);

/*
 * Make the pages of rows [from, to) of the per-row arrays present (to capped
 * at the capacity), off the writer's path: an append there then takes no
 * page fault. Safe beside appends, indexing and searches. No-op for graphs
 * that are not incremental.
 */
void hnsw_graph_prefault(struct hnsw_graph *g, size_t from, size_t to);

/*
 * Insert rows [hnsw_graph_indexed(g), upto) into the graph with p->threads
 * workers (1 = the calling thread). One caller at a time; safe while other
 * threads search the graph through hnsw_graph_view_live and while rows are
 * appended. Returns 0, STRATA_EINVAL (upto beyond hnsw_graph_appended) or
 * STRATA_ENOMEM (the rows inserted so far stay inserted).
 */
int hnsw_graph_index(struct hnsw_graph *g, size_t upto);

/* Largest r such that every row < r is fully inserted (the rest need an exact scan). */
size_t hnsw_graph_indexed(const struct hnsw_graph *g);

/*
 * A view for searching while insertions run, valid while g lives: it
 * carries the per-node locks, so that hnsw_search copies each neighbour list
 * under its lock (as hnswlib does). count = upper_count = the rows appended
 * when the view was taken (hnsw_scan may scan any of them); the entry point
 * and top level are read together, atomically, at the same moment. The
 * graph search may return rows at or beyond hnsw_graph_indexed() (being
 * inserted): a caller that also scans that tail must drop duplicates.
 * For an incremental graph with no concurrent indexer, hnsw_graph_view gives
 * the same without locks (count = rows appended).
 */
void hnsw_graph_view_live(struct hnsw_graph *g, struct hnsw_view *v_out);

/* Returned by hnsw_graph_index when the cancel flag was raised; never leaves the engine. */
#define HNSW_ECANCELED (-1000)

/*
 * Stop hnsw_graph_index early when *flag becomes non-zero (checked between
 * rows): it returns HNSW_ECANCELED, the rows inserted so far stay inserted.
 * `flag` must outlive the graph's indexing; NULL turns the check off.
 */
void hnsw_graph_set_cancel(struct hnsw_graph *g, const _Atomic int *flag);

/*
 * An incremental graph for up to `capacity` rows whose first seed->count rows
 * are the graph of `seed` (a view in segment layout, e.g. a compacted segment:
 * upper-layer nodes first), copied with their vectors, levels and lists, and
 * already indexed; its entry point is the seed's. Rows appended later are
 * stored as given (no normalisation: they come from segments, normalised
 * already) and inserted by hnsw_graph_index. This is how a merge reuses the
 * largest input's graph instead of building from nothing.
 * The seed is trusted as hnsw_graph_compact's output is: its upper index is
 * checked (levels, blocks), its lists are not.
 * Returns 0, STRATA_EINVAL (parameters differ, seed larger than capacity),
 * STRATA_ECORRUPT, STRATA_ELIMIT or STRATA_ENOMEM.
 */
int hnsw_graph_new_seeded(const struct hnsw_build_params *p, size_t capacity,
                          const struct hnsw_view *seed, struct hnsw_graph **g_out);

/* ---- compaction with repair (hnsw_compact.c) --------------------------- */

/*
 * A new, tight graph in segment layout (upper-layer nodes first) over the
 * nodes of `v` that `drop` keeps: drop is a bitmap over v's nodes (bit
 * i % 64 of drop[i / 64] set = drop node i; NULL = keep all). Neighbour
 * lists that pointed at dropped nodes are repaired: candidates = the
 * surviving neighbours plus the surviving neighbours of each dropped
 * neighbour (one hop), reduced with the selection heuristic to M0 / M and
 * filled up to M0 / M with the nearest candidates it passed over (algorithm
 * 4's keepPrunedConnections); lists without dropped neighbours are kept as
 * they are. The entry point is kept,
 * or replaced by the first surviving node of the highest surviving level.
 * Kept node order is preserved within each class (upper nodes, then layer-0
 * nodes). *old_of_new_out (malloc'd, one entry per new node; free it) maps
 * new node -> old node. `threads` workers (0 counts as 1). All dropped: an
 * empty graph. `v` must not change meanwhile (no live view). The result's
 * hnsw_graph_view can be written with seg_write.
 * `v` is trusted no further than hnsw_search trusts it: list counts above
 * M0/M, neighbours outside the graph and upper-layer links to nodes without
 * that layer give STRATA_ECORRUPT. Returns 0, STRATA_ECORRUPT or STRATA_ENOMEM.
 */
int hnsw_graph_compact(const struct hnsw_view *v, const uint64_t *drop, uint32_t threads,
                       struct hnsw_graph **g_out, uint32_t **old_of_new_out);

#endif /* STRATA_HNSW_H */
