/*
 * memtable.h - the fresh writes of a database: vectors that are in the WAL but
 * not yet in a segment, kept searchable.
 *
 * A memtable is an incremental HNSW graph (engine/hnsw.h, node = row in arrival
 * order) plus, per row, its id, the LSN of the write that made it and a dead
 * bit (superseded by a newer write of the id, or deleted). Rows are appended
 * by writers under `lock` and inserted into the graph by the indexer thread
 * in the background, so an acknowledged write costs a copy, not a graph
 * insertion. Searches walk the indexed rows and scan the short unindexed tail
 * exactly (memtable_search), which keeps read-your-writes cheap.
 *
 * An id map (open addressing) holds the newest LSN seen for every id written
 * to this memtable, deletes included, so that writes applied out of LSN order
 * by concurrent writers still let the newest win.
 *
 * Lifecycle: active (appends) -> frozen (read-only but for dead bits, being
 * flushed) -> released when the last snapshot that holds it lets go.
 */
#ifndef STRATA_MEMTABLE_H
#define STRATA_MEMTABLE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hnsw.h"

#define MT_NO_ROW UINT32_MAX

struct mt_slot {
	uint64_t id;
	uint64_t lsn;  /* of the newest write of id applied here */
	uint32_t row;  /* its row, or MT_NO_ROW after a delete */
	uint32_t used;
};

/*
 * Anchors: every indexed row hung under its nearest live node of one segment
 * (the database's largest), found by a short walk of that segment's graph
 * (mt_anchor, the indexer). A search that walks that segment first then
 * finds the memtable's rows near the query among the rows hung under the
 * nodes its walk expanded (mt_search_anchored), a few dozen distances, where
 * a walk of the memtable's own graph costs a descent and a beam of its own
 * (measured: tools/bench/anchor_bench.cc, README issue 4). One generation per
 * segment anchored to: a merge that makes another segment the largest starts
 * a new one from row 0. A search may hold a generation while the indexer
 * replaces it, so generations are freed with the memtable, and after
 * MT_ANCHOR_GENS of them the memtable anchors no more (searches walk).
 */
#define MT_ANCHOR_GENS 4
/*
 * Rows not hung yet are scanned exactly; when more of them than this are in
 * the graph already, its walk (a descent and a beam, ~200-250 distances) is
 * the cheaper way to the memtable's rows.
 */
#define MT_ANCHOR_LAG_MAX 128
/*
 * Each row hangs under its this many nearest segment nodes: under one, a
 * query's neighbour hangs where the walk did not go often enough to cost
 * recall on real data (siftsmall, 8,000 + 2,000 rows, ef 64: 0.957 under one
 * node, 0.992 under four, 0.995 under six, the memtable's own walk 0.998;
 * near-copies of segment rows do not show it).
 */
#define MT_ANCHOR_LINKS 6
/* The walk of the segment that finds a row's nodes: a narrow beam (~190 distances on SIFT). */
#define MT_ANCHOR_EF 8u
/*
 * A search looks under the max(ef, this) segment nodes closest to the query
 * that its walk met (hnsw_search_traced): at a small ef the nodes the walk
 * keeps are too few to hold the rows near the query.
 */
#define MT_ANCHOR_TRACE_MIN 64u
/* Lists of rows under nodes a search follows side by side (mt_search_anchored). */
#define MT_ANCHOR_CHAINS 16

struct mt_anchors {
	uint64_t seg_seq;          /* the segment's manifest sequence number: never reused */
	uint32_t seg_count;        /* its nodes */
	/*
	 * Links: link row * MT_ANCHOR_LINKS + j hangs the row under its j-th
	 * nearest node. head[node]: 1 + the node's last link (0: none); next[link]:
	 * 1 + the link hung before it under the same node.
	 */
	_Atomic uint32_t *head;    /* [seg_count] */
	uint32_t *next;            /* [capacity * MT_ANCHOR_LINKS] */
	_Atomic size_t anchored;   /* rows [0, anchored) are hung (stored with release) */
	struct mt_anchors *older;  /* the generation it replaced */
};

struct memtable {
	_Atomic int refs;
	struct hnsw_graph *g;
	uint32_t dim;
	size_t capacity;          /* rows */
	uint64_t *ids;            /* [capacity]: written before the row is appended */
	uint64_t *lsns;           /* [capacity] */
	_Atomic uint64_t *dead;   /* capacity bits */
	_Atomic uint64_t dead_n;

	pthread_mutex_t lock;     /* writers; and id-map readers */
	pthread_mutex_t index_lock; /* one hnsw_graph_index at a time (indexer, flusher) */
	struct mt_slot *map;
	size_t map_cap;           /* a power of two */
	size_t map_n;
	size_t reserved;          /* rows promised to writers still to apply */
	size_t reserved_keys;     /* id-map entries promised likewise */
	uint64_t max_lsn;
	uint64_t deletes;         /* delete records applied (a memtable of deletes only still flushes) */
	_Atomic size_t prefaulted; /* rows [0, prefaulted) of the arrays are present (mt_prefault) */
	_Atomic(struct mt_anchors *) anchors; /* the current generation (set by the indexer only) */
	uint32_t anchor_gens;      /* generations made (indexer only) */
};

/*
 * A memtable for up to `capacity` rows, graph built with `p` (whose
 * `threads` the indexer uses). Returns 0, STRATA_ENOMEM or STRATA_ELIMIT.
 * The new memtable holds one reference.
 */
int mt_new(const struct hnsw_build_params *p, size_t capacity, struct memtable **out);
void mt_ref(struct memtable *mt);
void mt_unref(struct memtable *mt);

/*
 * Promise `rows` rows and `keys` id-map entries to a writer before its WAL
 * record is written, so that applying the record cannot fail. Returns 0,
 * STRATA_ELIMIT (full: freeze it) or STRATA_ENOMEM.
 */
int mt_reserve(struct memtable *mt, size_t rows, size_t keys);
/* Give back a reservation that a failed write will not use. */
void mt_unreserve(struct memtable *mt, size_t rows, size_t keys);

/*
 * Off the write path (the flusher thread): make the pages the next appends
 * will write present now, as many rows ahead as the memtable holds already
 * (at most MT_PREFAULT_MAX_ROWS): a writer appending a batch otherwise pays
 * the kernel's zeroing of fresh pages itself. One caller at a time.
 */
void mt_prefault(struct memtable *mt);
/* Whether mt_prefault has work (cheap: a writer asks after each batch). */
bool mt_prefault_due(const struct memtable *mt);

/*
 * Apply an upsert of rows ids[0..n) with vectors (normalised already for
 * cosine) at `lsn`, using rows reserved by mt_reserve. A row whose id has a
 * newer write here is skipped. `superseded` (may be NULL) receives, per input
 * row, whether it was applied (the caller then hides older copies elsewhere).
 * n rows and n keys were reserved.
 */
void mt_apply_upsert(struct memtable *mt, uint64_t lsn, const uint64_t *ids, const float *vecs,
                     size_t n, bool *applied);
/* Apply deletes at `lsn` (n keys reserved); `applied` as above. */
void mt_apply_delete(struct memtable *mt, uint64_t lsn, const uint64_t *ids, size_t n, bool *applied);

/* Mark the live row of `id` dead (a newer write lives elsewhere). Thread-safe. */
void mt_kill_id(struct memtable *mt, uint64_t id);

/* The live row of `id`, or MT_NO_ROW (deleted or absent); *lsn_out its write's LSN (0 if unknown). */
uint32_t mt_find(struct memtable *mt, uint64_t id, uint64_t *lsn_out);

static inline bool mt_is_dead(const struct memtable *mt, uint32_t row)
{
	return (atomic_load_explicit(&mt->dead[row / 64], memory_order_relaxed) >> (row % 64)) & 1;
}

size_t mt_rows(const struct memtable *mt);
/* Live rows: appended minus dead. */
uint64_t mt_live(const struct memtable *mt);
/* Bytes the memtable holds (graph records, ids, map). */
uint64_t mt_bytes(struct memtable *mt);

/*
 * Insert the appended rows into the graph (indexer thread / flush): all of
 * them, or with max_rows > 0 at most that many (the next ones in order).
 */
int mt_index(struct memtable *mt, size_t max_rows);
bool mt_needs_index(const struct memtable *mt);

/* Accept a row (filters of the caller); NULL = all live rows. */
typedef bool (*mt_accept_fn)(const struct memtable *mt, uint32_t row, void *ctx);

/*
 * k nearest live rows of `query` that `accept` passes: a beam search of width
 * ef over the indexed rows plus an exact scan of the rows appended after them.
 * `rows` (may be NULL): search exactly these rows instead (a resolved
 * allow-list, or scan_all: every row). `limit`: as hnsw_search_bounded's,
 * for the walk (+inf: none). Results, closest first, in
 * out[0..*n_out) (out holds k; hit.node is the row).
 */
int mt_search(struct memtable *mt, const float *query, uint32_t k, uint32_t ef, float limit,
              mt_accept_fn accept, void *ctx, const uint32_t *rows, size_t n_rows, bool scan_all,
              struct hnsw_scratch *s, struct hnsw_hit *out, uint32_t *n_out, uint64_t *evals);

/*
 * The indexer (one thread): hang appended rows (indexed in the graph or not)
 * under their MT_ANCHOR_LINKS nearest live nodes of segment `seg_seq` (graph `seg`, tombstones `seg_dead`,
 * may be NULL), at most max_rows of them (0: all), starting a generation
 * when the current one is for another segment. *progress (may be NULL): whether
 * a row was hung. A segment with no live node near a row stops the generation
 * at that row: the rows from there on are scanned exactly, or walked.
 * Returns 0 or STRATA_ENOMEM (nothing changed).
 */
int mt_anchor(struct memtable *mt, uint64_t seg_seq, const struct hnsw_view *seg,
              const _Atomic uint64_t *seg_dead, struct hnsw_scratch *s, size_t max_rows,
              bool *progress);

/* The current anchor generation if it is for segment seg_seq, else NULL. */
const struct mt_anchors *mt_anchors_for(struct memtable *mt, uint64_t seg_seq);

/*
 * A segment's nodes hung under the nodes of a larger segment, so searches
 * reach them through that segment's walk instead of a walk of their own
 * (README, issue 4): carried over from a flushed memtable's anchors, from a
 * merge's inputs', or hung in the background by the indexer (seg_hang.c).
 * Immutable once built; leaf[start[j] .. start[j + 1]) are the nodes hung
 * under node j of segment seg_seq.
 */
struct seg_anchors {
	uint64_t seg_seq;    /* the segment hung under */
	uint32_t seg_count;  /* its nodes */
	uint32_t *start;     /* [seg_count + 1] */
	uint32_t *leaf;      /* [start[seg_count]]: nodes of the segment hung */
	struct seg_anchors *older; /* the set it replaced (seg_hang.c): freed with it */
	/* Which way it was made (the three are told apart by tests and a debugger only). */
	enum seg_anchors_from { SEG_ANCHORS_FLUSH, SEG_ANCHORS_MERGE, SEG_ANCHORS_HUNG } from;
};

/*
 * The frozen memtable's current generation as anchors of the segment it was
 * flushed to (node i = row old_of_new[i], n nodes), when every row is hung;
 * *out NULL otherwise (no generation, or rows left unhung). 0 or
 * STRATA_ENOMEM. Frozen memtable, after its last mt_anchor.
 */
int mt_anchors_carry(struct memtable *mt, const uint32_t *old_of_new, uint32_t n,
                     struct seg_anchors **out);
/*
 * The anchors of a merge's output, when its n inputs all hang under one
 * segment: input i's node x is output node out_of[i][x] (UINT32_MAX: left
 * out). *out NULL when they do not. 0 or STRATA_ENOMEM.
 */
int seg_anchors_merge(const struct seg_anchors *const *in, const uint32_t *const *out_of, uint32_t n,
                      struct seg_anchors **out);
/*
 * An empty set under segment seg_seq (seg_count nodes) with room for `leaves`
 * links, made by `from`, or NULL (no memory, or more links than 32 bits number).
 */
struct seg_anchors *seg_anchors_new(uint64_t seg_seq, uint32_t seg_count, size_t leaves,
                                    enum seg_anchors_from from);
/* Free a set of anchors and the older ones it replaced. */
void seg_anchors_free(struct seg_anchors *a);
/*
 * The MT_ANCHOR_LINKS nearest live nodes of segment graph `seg` (tombstones
 * `dead`, may be NULL) to vector x, by a walk at ef MT_ANCHOR_EF, in
 * near[0..*n). 0, STRATA_ENOMEM or STRATA_ECORRUPT.
 */
int anchor_nearest(const struct hnsw_view *seg, const _Atomic uint64_t *dead, const float *x,
                   struct hnsw_scratch *s, struct hnsw_hit near[MT_ANCHOR_LINKS], uint32_t *n);

/* Per-search marks of the rows met (a row hangs under several nodes): the caller's scratch. */
struct mt_seen {
	uint32_t *tags;
	size_t len;
	uint32_t epoch;
	uint32_t *rows;  /* the rows met, before their distances */
	size_t rows_cap;
};
void mt_seen_free(struct mt_seen *seen);
/* A new epoch of marks for items [0, n): none is marked. 0 or STRATA_ENOMEM. */
int mt_seen_prepare(struct mt_seen *seen, size_t n);
/* Room for one more item in seen->rows[0, n). 0 or STRATA_ENOMEM. */
int mt_seen_fit(struct mt_seen *seen, size_t n);

/*
 * The k nearest live rows of `query` (unfiltered) among the rows of `a` hung
 * under nodes[0..n_nodes).node (the nodes a walk of a's segment met closest
 * to the query: hnsw_search_traced), plus an exact scan of the rows appended after the
 * anchored ones. When the anchors trail the graph by more than
 * MT_ANCHOR_LAG_MAX rows, or more than max_rows hung rows are met (a walk
 * would cost less), *used is false and no distance is computed: the caller
 * walks instead (mt_search). Results as mt_search's; STRATA_ENOMEM (marks).
 */
int mt_search_anchored(struct memtable *mt, const struct mt_anchors *a, const float *query,
                       uint32_t k, const struct hnsw_hit *nodes, size_t n_nodes, size_t max_rows,
                       struct mt_seen *seen, struct hnsw_hit *out, uint32_t *n_out, uint64_t *evals,
                       bool *used);

#endif /* STRATA_MEMTABLE_H */
