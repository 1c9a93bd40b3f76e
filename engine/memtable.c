/*
 * memtable.c - fresh writes, searchable at once (see memtable.h).
 *
 * Concurrency: writers append rows and change the id map under mt->lock;
 * ids[row] and lsns[row] are written before hnsw_graph_append publishes the
 * row (release), so a reader that saw the row count sees them. Dead bits are
 * atomic words: any writer may set one (a newer write of the id lands in
 * another memtable) without the lock. The indexer inserts rows into the graph
 * under the graph's own node locks, concurrently with searches.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bigmem.h"
#include "err.h"
#include "memtable.h"

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	return x ^ (x >> 33);
}

static size_t dead_bytes(size_t capacity)
{
	return (capacity / 64 + 1) * sizeof(uint64_t);
}

int mt_new(const struct hnsw_build_params *p, size_t capacity, struct memtable **out)
{
	struct memtable *mt = calloc(1, sizeof *mt);
	if (!mt)
		return err_set(STRATA_ENOMEM, "memtable");
	atomic_init(&mt->refs, 1);
	mt->dim = p->dim;
	mt->capacity = capacity;
	pthread_mutex_init(&mt->lock, NULL);
	pthread_mutex_init(&mt->index_lock, NULL);
	mt->map_cap = 1024;
	mt->ids = big_zalloc(capacity * sizeof *mt->ids);
	mt->lsns = big_zalloc(capacity * sizeof *mt->lsns);
	mt->dead = big_zalloc(dead_bytes(capacity));
	mt->map = big_zalloc_now(mt->map_cap * sizeof *mt->map);
	if (!mt->ids || !mt->lsns || !mt->dead || !mt->map) {
		mt_unref(mt);
		return err_set(STRATA_ENOMEM, "memtable of %zu rows", capacity);
	}
	int rc = hnsw_graph_new(p, capacity, &mt->g);
	if (rc) {
		mt_unref(mt);
		return rc;
	}
	*out = mt;
	return 0;
}

void mt_ref(struct memtable *mt)
{
	atomic_fetch_add_explicit(&mt->refs, 1, memory_order_relaxed);
}

void mt_unref(struct memtable *mt)
{
	if (!mt || atomic_fetch_sub_explicit(&mt->refs, 1, memory_order_acq_rel) != 1)
		return;
	if (mt->g)
		hnsw_graph_free(mt->g);
	big_free(mt->ids, mt->capacity * sizeof *mt->ids);
	big_free(mt->lsns, mt->capacity * sizeof *mt->lsns);
	big_free(mt->dead, dead_bytes(mt->capacity));
	big_free(mt->map, mt->map_cap * sizeof *mt->map);
	for (struct mt_anchors *a = atomic_load_explicit(&mt->anchors, memory_order_acquire), *o; a;
	     a = o) {
		o = a->older;
		big_free(a->head, (size_t)a->seg_count * sizeof *a->head);
		big_free(a->next, mt->capacity * MT_ANCHOR_LINKS * sizeof *a->next);
		free(a);
	}
	pthread_mutex_destroy(&mt->lock);
	pthread_mutex_destroy(&mt->index_lock);
	free(mt);
}

size_t mt_rows(const struct memtable *mt)
{
	return hnsw_graph_appended(mt->g);
}

uint64_t mt_live(const struct memtable *mt)
{
	return mt_rows(mt) - atomic_load_explicit(&mt->dead_n, memory_order_relaxed);
}

uint64_t mt_bytes(struct memtable *mt)
{
	size_t rows = mt_rows(mt);
	struct hnsw_view v;
	hnsw_graph_view_live(mt->g, &v);
	pthread_mutex_lock(&mt->lock);
	size_t map_cap = mt->map_cap;
	pthread_mutex_unlock(&mt->lock);
	return (uint64_t)rows * (v.stride + 16) + (uint64_t)map_cap * sizeof *mt->map;
}

/* The slot of `id`: its own, or the empty one where it would go. Lock held (or frozen). */
static struct mt_slot *map_slot(const struct memtable *mt, uint64_t id)
{
	size_t mask = mt->map_cap - 1, i = mix64(id) & mask;
	while (mt->map[i].used && mt->map[i].id != id)
		i = (i + 1) & mask;
	return &mt->map[i];
}

/* Room in the map for `want` entries at most 3/4 full. Lock held. */
static int map_fit(struct memtable *mt, size_t want)
{
	size_t cap = mt->map_cap;
	while (want * 4 >= cap * 3)
		cap *= 2;
	if (cap == mt->map_cap)
		return 0;
	struct mt_slot *old = mt->map;
	size_t old_cap = mt->map_cap;
	struct mt_slot *n = big_zalloc_now(cap * sizeof *n);
	if (!n)
		return err_set(STRATA_ENOMEM, "memtable id map of %zu slots", cap);
	mt->map = n;
	mt->map_cap = cap;
	for (size_t i = 0; i < old_cap; i++)
		if (old[i].used)
			*map_slot(mt, old[i].id) = old[i];
	big_free(old, old_cap * sizeof *old);
	return 0;
}

/*
 * Measured (perf, batches of 1,000 128-d vectors into a fresh memtable):
 * about half of the writer thread's CPU was the kernel clearing fresh (huge)
 * pages in its page faults (in a virtual machine, with the host backing them
 * too). As many rows ahead as are appended already: a small database stays
 * small; a busy one keeps tens of MiB ready.
 */
#define MT_PREFAULT_MAX_ROWS 65536u

/* Rows [*from, *to) to make present now; false when enough are ready ahead. */
static bool prefault_range(const struct memtable *mt, size_t *from_out, size_t *to_out)
{
	size_t rows = hnsw_graph_appended(mt->g);
	size_t to = rows + (rows < MT_PREFAULT_MAX_ROWS ? rows : MT_PREFAULT_MAX_ROWS);
	if (to > mt->capacity)
		to = mt->capacity;
	size_t from = atomic_load_explicit(&mt->prefaulted, memory_order_relaxed);
	if (from < rows)
		from = rows; /* the writer got there first */
	*from_out = from;
	*to_out = to;
	/* Not a page at a time: once half of what should be ready ahead is missing. */
	return to > from && (to - from) * 2 >= to - rows;
}

bool mt_prefault_due(const struct memtable *mt)
{
	size_t from, to;
	return prefault_range(mt, &from, &to);
}

void mt_prefault(struct memtable *mt)
{
	size_t from, to;
	if (!prefault_range(mt, &from, &to))
		return;
	hnsw_graph_prefault(mt->g, from, to);
	big_populate(mt->ids, from * sizeof *mt->ids, to * sizeof *mt->ids);
	big_populate(mt->lsns, from * sizeof *mt->lsns, to * sizeof *mt->lsns);
	atomic_store_explicit(&mt->prefaulted, to, memory_order_relaxed);
}

int mt_reserve(struct memtable *mt, size_t rows, size_t keys)
{
	pthread_mutex_lock(&mt->lock);
	int rc = 0;
	if (mt_rows(mt) + mt->reserved + rows > mt->capacity)
		rc = STRATA_ELIMIT;
	else
		rc = map_fit(mt, mt->map_n + mt->reserved_keys + keys);
	if (!rc) {
		mt->reserved += rows;
		mt->reserved_keys += keys;
	}
	pthread_mutex_unlock(&mt->lock);
	return rc;
}

void mt_unreserve(struct memtable *mt, size_t rows, size_t keys)
{
	pthread_mutex_lock(&mt->lock);
	mt->reserved -= rows < mt->reserved ? rows : mt->reserved;
	mt->reserved_keys -= keys < mt->reserved_keys ? keys : mt->reserved_keys;
	pthread_mutex_unlock(&mt->lock);
}

static void kill_row(struct memtable *mt, uint32_t row)
{
	uint64_t bit = 1ull << (row % 64);
	uint64_t was = atomic_fetch_or_explicit(&mt->dead[row / 64], bit, memory_order_relaxed);
	if (!(was & bit))
		atomic_fetch_add_explicit(&mt->dead_n, 1, memory_order_relaxed);
}

void mt_apply_upsert(struct memtable *mt, uint64_t lsn, const uint64_t *ids, const float *vecs,
                     size_t n, bool *applied)
{
	pthread_mutex_lock(&mt->lock);
	for (size_t i = 0; i < n; i++) {
		mt->reserved--;
		mt->reserved_keys--;
		struct mt_slot *sl = map_slot(mt, ids[i]);
		if (sl->used && sl->lsn > lsn) {
			if (applied)
				applied[i] = false;
			continue;
		}
		uint32_t row = (uint32_t)mt_rows(mt);
		mt->ids[row] = ids[i];
		mt->lsns[row] = lsn;
		uint32_t got;
		hnsw_graph_append(mt->g, vecs + i * mt->dim, &got); /* room was reserved */
		if (sl->used && sl->row != MT_NO_ROW)
			kill_row(mt, sl->row);
		if (!sl->used) {
			sl->used = 1;
			sl->id = ids[i];
			mt->map_n++;
		}
		sl->lsn = lsn;
		sl->row = row;
		if (applied)
			applied[i] = true;
	}
	if (lsn > mt->max_lsn)
		mt->max_lsn = lsn;
	pthread_mutex_unlock(&mt->lock);
}

void mt_apply_delete(struct memtable *mt, uint64_t lsn, const uint64_t *ids, size_t n, bool *applied)
{
	pthread_mutex_lock(&mt->lock);
	for (size_t i = 0; i < n; i++) {
		mt->reserved_keys--;
		if (applied)
			applied[i] = true;
		struct mt_slot *sl = map_slot(mt, ids[i]);
		if (sl->used && sl->lsn > lsn) {
			if (applied)
				applied[i] = false;
			continue;
		}
		if (sl->used && sl->row != MT_NO_ROW)
			kill_row(mt, sl->row);
		if (!sl->used) {
			sl->used = 1;
			sl->id = ids[i];
			mt->map_n++;
		}
		sl->lsn = lsn;
		sl->row = MT_NO_ROW;
	}
	mt->deletes++;
	if (lsn > mt->max_lsn)
		mt->max_lsn = lsn;
	pthread_mutex_unlock(&mt->lock);
}

void mt_kill_id(struct memtable *mt, uint64_t id)
{
	pthread_mutex_lock(&mt->lock);
	struct mt_slot *sl = map_slot(mt, id);
	if (sl->used && sl->row != MT_NO_ROW)
		kill_row(mt, sl->row);
	pthread_mutex_unlock(&mt->lock);
}

uint32_t mt_find(struct memtable *mt, uint64_t id, uint64_t *lsn_out)
{
	pthread_mutex_lock(&mt->lock);
	struct mt_slot *sl = map_slot(mt, id);
	uint32_t row = sl->used ? sl->row : MT_NO_ROW;
	uint64_t lsn = sl->used ? sl->lsn : 0;
	pthread_mutex_unlock(&mt->lock);
	if (row != MT_NO_ROW && mt_is_dead(mt, row))
		row = MT_NO_ROW;
	if (lsn_out)
		*lsn_out = lsn;
	return row;
}

bool mt_needs_index(const struct memtable *mt)
{
	return hnsw_graph_indexed(mt->g) < hnsw_graph_appended(mt->g);
}

int mt_index(struct memtable *mt, size_t max_rows)
{
	pthread_mutex_lock(&mt->index_lock);
	size_t upto = hnsw_graph_appended(mt->g), from = hnsw_graph_indexed(mt->g);
	if (max_rows && upto - from > max_rows)
		upto = from + max_rows;
	int rc = from >= upto ? 0 : hnsw_graph_index(mt->g, upto);
	pthread_mutex_unlock(&mt->index_lock);
	return rc;
}

struct accept_wrap {
	const struct memtable *mt;
	mt_accept_fn accept;
	void *ctx;
};

static bool accept_row(uint32_t row, void *arg)
{
	const struct accept_wrap *w = arg;
	if (mt_is_dead(w->mt, row))
		return false;
	return !w->accept || w->accept(w->mt, row, w->ctx);
}

/* Insert (dist,row) into the sorted out[0..*n) of at most k hits. */
static void topk_insert(struct hnsw_hit *out, uint32_t *n, uint32_t k, float d, uint32_t row)
{
	if (*n == k && !(d < out[k - 1].dist))
		return;
	uint32_t i = *n < k ? (*n)++ : k - 1;
	while (i > 0 && out[i - 1].dist > d) {
		out[i] = out[i - 1];
		i--;
	}
	out[i].dist = d;
	out[i].node = row;
}

int mt_search(struct memtable *mt, const float *query, uint32_t k, uint32_t ef, float limit,
              mt_accept_fn accept, void *ctx, const uint32_t *rows, size_t n_rows, bool scan_all,
              struct hnsw_scratch *s, struct hnsw_hit *out, uint32_t *n_out, uint64_t *evals)
{
	struct accept_wrap w = {.mt = mt, .accept = accept, .ctx = ctx};
	struct hnsw_view v;
	/* The row count first: every row below it has its vector, id and LSN in place. */
	size_t appended = hnsw_graph_appended(mt->g);
	size_t indexed = hnsw_graph_indexed(mt->g);
	hnsw_graph_view_live(mt->g, &v);
	*n_out = 0;
	uint64_t e = 0;
	if (rows || scan_all) {
		size_t n = rows ? n_rows : appended;
		for (size_t i = 0; i < n; i++) {
			uint32_t row = rows ? rows[i] : (uint32_t)i;
			if (row >= appended || !accept_row(row, &w))
				continue;
			float d = hnsw_dist_ordered(v.dist(query, hnsw_vec(&v, row), v.dim));
			e++;
			topk_insert(out, n_out, k, d, row);
		}
		*evals += e;
		return 0;
	}
	if (indexed > appended)
		indexed = appended;
	if (indexed > 0) {
		struct hnsw_filter f = {.accept = accept_row, .accept_ctx = &w};
		int rc = hnsw_search_bounded(&v, query, k, ef, limit, &f, s, out, n_out, evals);
		if (rc)
			return rc;
	}
	/* The tail the indexer has not reached: exact. A row both walked and scanned appears once. */
	for (size_t r = indexed; r < appended; r++) {
		uint32_t row = (uint32_t)r;
		if (!accept_row(row, &w))
			continue;
		bool seen = false;
		for (uint32_t j = 0; j < *n_out && !seen; j++)
			seen = out[j].node == row;
		if (seen)
			continue;
		float d = hnsw_dist_ordered(v.dist(query, hnsw_vec(&v, row), v.dim));
		e++;
		topk_insert(out, n_out, k, d, row);
	}
	*evals += e;
	return 0;
}

/* ---- anchors ------------------------------------------------------------------- */

int anchor_nearest(const struct hnsw_view *seg, const _Atomic uint64_t *dead, const float *x,
                   struct hnsw_scratch *s, struct hnsw_hit near[MT_ANCHOR_LINKS], uint32_t *n)
{
	struct hnsw_filter f = {.dead = dead};
	uint64_t evals = 0;
	return hnsw_search_bounded(seg, x, MT_ANCHOR_LINKS, MT_ANCHOR_EF, __builtin_inff(),
	                           dead ? &f : NULL, s, near, n, &evals);
}

static int anchor_rows(struct memtable *mt, uint64_t seg_seq, const struct hnsw_view *seg,
                       const _Atomic uint64_t *seg_dead, struct hnsw_scratch *s, size_t max_rows,
                       bool *progress)
{
	struct mt_anchors *a = atomic_load_explicit(&mt->anchors, memory_order_relaxed);
	if (!a || a->seg_seq != seg_seq) {
		/* Links are numbered in 32 bits. */
		if (mt->anchor_gens >= MT_ANCHOR_GENS || seg->count == 0 ||
		    mt->capacity >= UINT32_MAX / MT_ANCHOR_LINKS)
			return 0;
		struct mt_anchors *n = calloc(1, sizeof *n);
		if (n) {
			n->head = big_zalloc((size_t)seg->count * sizeof *n->head);
			n->next = big_zalloc(mt->capacity * MT_ANCHOR_LINKS * sizeof *n->next);
		}
		if (!n || !n->head || !n->next) {
			if (n) {
				big_free(n->head, (size_t)seg->count * sizeof *n->head);
				big_free(n->next, mt->capacity * MT_ANCHOR_LINKS * sizeof *n->next);
			}
			free(n);
			return err_set(STRATA_ENOMEM, "memtable anchors for %u segment nodes", seg->count);
		}
		n->seg_seq = seg_seq;
		n->seg_count = seg->count;
		n->older = a;
		atomic_store_explicit(&mt->anchors, n, memory_order_release);
		mt->anchor_gens++;
		a = n;
	}
	size_t from = atomic_load_explicit(&a->anchored, memory_order_relaxed);
	size_t upto = hnsw_graph_appended(mt->g); /* its graph need not hold a row to hang it */
	if (upto <= from)
		return 0;
	if (max_rows && upto - from > max_rows)
		upto = from + max_rows;
	struct hnsw_view v;
	hnsw_graph_view_live(mt->g, &v);
	size_t row = from;
	for (; row < upto; row++) {
		struct hnsw_hit h[MT_ANCHOR_LINKS];
		uint32_t n = 0;
		int rc = anchor_nearest(seg, seg_dead, hnsw_vec(&v, (uint32_t)row), s, h, &n);
		if (rc == STRATA_ENOMEM && row == from)
			return rc;
		/* A corrupt graph (searches refuse it too) or no live node: the rest stay unanchored. */
		if (rc || n == 0)
			break;
		for (uint32_t j = 0; j < n; j++) {
			uint32_t link = (uint32_t)row * MT_ANCHOR_LINKS + j;
			/* Before the head's release store: a search that finds the link reads its next. */
			a->next[link] = atomic_load_explicit(&a->head[h[j].node], memory_order_relaxed);
			atomic_store_explicit(&a->head[h[j].node], link + 1, memory_order_release);
		}
	}
	atomic_store_explicit(&a->anchored, row, memory_order_release);
	*progress = row > from;
	return 0;
}

int mt_anchor(struct memtable *mt, uint64_t seg_seq, const struct hnsw_view *seg,
              const _Atomic uint64_t *seg_dead, struct hnsw_scratch *s, size_t max_rows,
              bool *progress)
{
	bool hung = false;
	/* The indexer and a flush finishing the memtable it has just frozen. */
	pthread_mutex_lock(&mt->index_lock);
	int rc = anchor_rows(mt, seg_seq, seg, seg_dead, s, max_rows, &hung);
	pthread_mutex_unlock(&mt->index_lock);
	if (progress)
		*progress = hung;
	return rc;
}

const struct mt_anchors *mt_anchors_for(struct memtable *mt, uint64_t seg_seq)
{
	const struct mt_anchors *a = atomic_load_explicit(&mt->anchors, memory_order_acquire);
	return a && a->seg_seq == seg_seq ? a : NULL;
}

struct seg_anchors *seg_anchors_new(uint64_t seg_seq, uint32_t seg_count, size_t leaves,
                                    enum seg_anchors_from from)
{
	if (leaves > UINT32_MAX)
		return NULL; /* links are numbered in 32 bits: such a segment stays walked */
	struct seg_anchors *c = calloc(1, sizeof *c);
	if (c) {
		c->seg_seq = seg_seq;
		c->seg_count = seg_count;
		c->from = from;
		c->start = malloc(((size_t)seg_count + 1) * sizeof *c->start);
		c->leaf = malloc((leaves ? leaves : 1) * sizeof *c->leaf);
	}
	if (!c || !c->start || !c->leaf) {
		seg_anchors_free(c);
		return NULL;
	}
	return c;
}

int mt_anchors_carry(struct memtable *mt, const uint32_t *old_of_new, uint32_t n,
                     struct seg_anchors **out)
{
	*out = NULL;
	const struct mt_anchors *a = atomic_load_explicit(&mt->anchors, memory_order_acquire);
	size_t rows = mt_rows(mt);
	if (!a || atomic_load_explicit(&a->anchored, memory_order_acquire) < rows || n == 0)
		return 0;
	uint32_t *node_of = malloc((rows ? rows : 1) * sizeof *node_of);
	struct seg_anchors *c = seg_anchors_new(a->seg_seq, a->seg_count, (size_t)n * MT_ANCHOR_LINKS,
	                                        SEG_ANCHORS_FLUSH);
	if (!node_of || !c) {
		free(node_of);
		seg_anchors_free(c);
		return err_set(STRATA_ENOMEM, "anchors of a flushed memtable (%u nodes)", n);
	}
	for (size_t r = 0; r < rows; r++)
		node_of[r] = UINT32_MAX; /* dropped by the flush: dead at the freeze */
	for (uint32_t i = 0; i < n; i++)
		node_of[old_of_new[i]] = i;
	uint32_t at = 0;
	for (uint32_t node = 0; node < a->seg_count; node++) {
		c->start[node] = at;
		for (uint32_t l = atomic_load_explicit(&a->head[node], memory_order_relaxed); l;
		     l = a->next[l - 1]) {
			uint32_t leaf = node_of[(l - 1) / MT_ANCHOR_LINKS];
			if (leaf != UINT32_MAX)
				c->leaf[at++] = leaf;
		}
	}
	c->start[a->seg_count] = at;
	free(node_of);
	*out = c;
	return 0;
}

int seg_anchors_merge(const struct seg_anchors *const *in, const uint32_t *const *out_of, uint32_t n,
                      struct seg_anchors **out)
{
	*out = NULL;
	size_t leaves = 0;
	for (uint32_t i = 0; i < n; i++) {
		if (!in[i] || in[i]->seg_seq != in[0]->seg_seq)
			return 0;
		leaves += in[i]->start[in[i]->seg_count];
	}
	if (n == 0)
		return 0;
	struct seg_anchors *c = seg_anchors_new(in[0]->seg_seq, in[0]->seg_count, leaves,
	                                        SEG_ANCHORS_MERGE);
	if (!c)
		return err_set(STRATA_ENOMEM, "anchors of a merged segment (%zu links)", leaves);
	uint32_t at = 0;
	for (uint32_t node = 0; node < c->seg_count; node++) {
		c->start[node] = at;
		for (uint32_t i = 0; i < n; i++)
			for (uint32_t l = in[i]->start[node]; l < in[i]->start[node + 1]; l++) {
				uint32_t leaf = out_of[i][in[i]->leaf[l]];
				if (leaf != UINT32_MAX)
					c->leaf[at++] = leaf;
			}
	}
	c->start[c->seg_count] = at;
	*out = c;
	return 0;
}

void seg_anchors_free(struct seg_anchors *a)
{
	for (struct seg_anchors *o; a; a = o) {
		o = a->older;
		free(a->start);
		free(a->leaf);
		free(a);
	}
}

void mt_seen_free(struct mt_seen *seen)
{
	free(seen->tags);
	free(seen->rows);
	*seen = (struct mt_seen){0};
}

int mt_seen_fit(struct mt_seen *seen, size_t n)
{
	if (n < seen->rows_cap)
		return 0;
	size_t want = seen->rows_cap ? seen->rows_cap * 2 : 256;
	uint32_t *r = realloc(seen->rows, want * sizeof *r);
	if (!r)
		return err_set(STRATA_ENOMEM, "search scratch: %zu rows met under anchors", want);
	seen->rows = r;
	seen->rows_cap = want;
	return 0;
}

int mt_seen_prepare(struct mt_seen *seen, size_t rows)
{
	if (seen->len < rows) {
		size_t want = rows + rows / 4 + 1024;
		uint32_t *t = calloc(want, sizeof *t);
		if (!t)
			return err_set(STRATA_ENOMEM, "search scratch: %zu memtable marks", want);
		free(seen->tags);
		seen->tags = t;
		seen->len = want;
		seen->epoch = 0;
	}
	if (++seen->epoch == 0) {
		memset(seen->tags, 0, seen->len * sizeof *seen->tags);
		seen->epoch = 1;
	}
	return 0;
}

int mt_search_anchored(struct memtable *mt, const struct mt_anchors *a, const float *query,
                       uint32_t k, const struct hnsw_hit *nodes, size_t n_nodes, size_t max_rows,
                       struct mt_seen *seen, struct hnsw_hit *out, uint32_t *n_out, uint64_t *evals,
                       bool *used)
{
	/* The row count first, as mt_search: every row below it is complete. */
	size_t appended = hnsw_graph_appended(mt->g);
	size_t indexed = hnsw_graph_indexed(mt->g);
	size_t anchored = atomic_load_explicit(&a->anchored, memory_order_acquire);
	*n_out = 0;
	*used = false;
	if (anchored > appended)
		anchored = appended;
	if (anchored + MT_ANCHOR_LAG_MAX < indexed)
		return 0;
	int rc = mt_seen_prepare(seen, anchored);
	if (rc)
		return rc;
	struct hnsw_view v;
	hnsw_graph_view_live(mt->g, &v);
	uint32_t *tags = seen->tags, epoch = seen->epoch;
	uint64_t e = 0;
	/* The rows first, then their distances: scattered vectors, loaded ahead of use. */
	for (size_t i = 0; i < n_nodes; i++)
		if (nodes[i].node < a->seg_count)
			__builtin_prefetch(&a->head[nodes[i].node]);
	/*
	 * A node's list is a chain of dependent loads, each likely a cache miss:
	 * MT_ANCHOR_CHAINS lists are followed a step at a time in turn, so the
	 * loads of one round do not wait on each other.
	 */
	size_t n_rows = 0;
	for (size_t from = 0; from < n_nodes; from += MT_ANCHOR_CHAINS) {
		uint32_t link[MT_ANCHOR_CHAINS];
		size_t chains = 0;
		for (size_t i = from; i < n_nodes && i < from + MT_ANCHOR_CHAINS; i++) {
			uint32_t node = nodes[i].node, l;
			if (node < a->seg_count &&
			    (l = atomic_load_explicit(&a->head[node], memory_order_acquire)))
				link[chains++] = l;
		}
		while (chains) {
			for (size_t c = 0; c < chains;) {
				uint32_t l = link[c], row = (l - 1) / MT_ANCHOR_LINKS, next = a->next[l - 1];
				if (next) {
					__builtin_prefetch(&a->next[next - 1]);
					__builtin_prefetch(&tags[(next - 1) / MT_ANCHOR_LINKS]);
					link[c++] = next;
				} else {
					link[c] = link[--chains];
				}
				/*
				 * Rows hung after `anchored` was read may head the list: they are
				 * the tail's, skipped here, but the links after them are not.
				 */
				if (row >= anchored || tags[row] == epoch)
					continue;
				tags[row] = epoch;
				if (mt_is_dead(mt, row))
					continue;
				if ((rc = mt_seen_fit(seen, n_rows)))
					return rc;
				seen->rows[n_rows++] = row;
				__builtin_prefetch(hnsw_vec(&v, row));
			}
		}
	}
	if (n_rows > max_rows)
		return 0;
	*used = true;
	for (size_t i = 0; i < n_rows; i++) {
		uint32_t row = seen->rows[i];
		if (i + 2 < n_rows)
			hnsw_prefetch_vec(&v, seen->rows[i + 2]);
		float d = hnsw_dist_ordered(v.dist(query, hnsw_vec(&v, row), v.dim));
		e++;
		topk_insert(out, n_out, k, d, row);
	}
	/* The rows not hung yet, exactly (none of them was met above). */
	for (size_t r = anchored; r < appended; r++) {
		uint32_t row = (uint32_t)r;
		if (mt_is_dead(mt, row))
			continue;
		float d = hnsw_dist_ordered(v.dist(query, hnsw_vec(&v, row), v.dim));
		e++;
		topk_insert(out, n_out, k, d, row);
	}
	*evals += e;
	return 0;
}
