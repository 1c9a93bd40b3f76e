/*
 * hnsw_search.c - k-nearest-neighbour search over a `struct hnsw_view`
 * (greedy descent through the upper layers, then a beam search of width ef on
 * layer 0: Malkov & Yashunin, algorithms 2 and 5).
 *
 * The view may point into a file mapped from anywhere, so this file trusts
 * only the array sizes that seg_check() proved: every neighbour id is checked
 * against `count` (and, on upper layers, `upper_count`) before it is followed,
 * and a list count above M0 / M is refused. Damage behind a valid header thus
 * ends the search with STRATA_ECORRUPT, never with an out-of-bounds read.
 *
 * A live view (hnsw_graph_view_live) is searched while insertions run: each
 * list is copied under its node's spinlock, as the builder writes it.
 *
 * It must never allocate per query beyond the scratch's first growth, and the
 * answer depends only on the view, the query, k, ef and the filter (and, for
 * a live view, on how far the concurrent insertions have got).
 */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "hnsw.h"
#include "hnsw_internal.h"
#include "le.h"
#include "segment.h"

void hnsw_view_from_segment(const struct seg_info *in, struct hnsw_view *v)
{
	v->nodes = in->nodes;
	v->upper_index = in->upper_index;
	v->upper_links = in->upper_links;
	v->upper_count = in->upper_count;
	v->upper_blocks = in->upper_blocks;
	v->stride = in->stride;
	v->links_off = 4 * (size_t)in->dim;
	v->count = (uint32_t)in->count;
	v->dim = in->dim;
	v->M = in->M;
	v->M0 = in->M0;
	v->max_level = in->max_level;
	v->entry = in->entry;
	v->metric = (strata_metric)in->metric;
	v->dist = dist_for_metric(v->metric);
	v->locks = NULL;
}

struct hnsw_scratch *hnsw_scratch_new(void)
{
	return calloc(1, sizeof(struct hnsw_scratch));
}

void hnsw_scratch_free(struct hnsw_scratch *s)
{
	if (!s)
		return;
	free(s->tags);
	free(s->cand.a);
	free(s->top.a);
	free(s->kbest.a);
	free(s->list);
	free(s);
}

int hnsw_heap_reserve(struct hnsw_heap *h, size_t cap)
{
	if (h->cap >= cap)
		return 0;
	size_t want = h->cap ? h->cap : 64;
	while (want < cap)
		want *= 2;
	struct hnsw_hit *a = realloc(h->a, want * sizeof *a);
	if (!a)
		return STRATA_ENOMEM;
	h->a = a;
	h->cap = want;
	return 0;
}

int hnsw_scratch_prepare(struct hnsw_scratch *s, uint32_t count, uint32_t ef)
{
	if (s->tags_len < count) {
		/* Grow with headroom so a database that grows does not realloc per query. */
		size_t want = (size_t)count + count / 4 + 1024;
		uint16_t *t = calloc(want, sizeof *t);
		if (!t)
			return err_set(STRATA_ENOMEM, "search scratch: %zu visit marks", want);
		free(s->tags);
		s->tags = t;
		s->tags_len = want;
		s->epoch = 0;
	}
	/* 16-bit epochs: one memset every 65535 searches, as hnswlib's visited lists do. */
	if (++s->epoch == 0) {
		memset(s->tags, 0, s->tags_len * sizeof *s->tags);
		s->epoch = 1;
	}
	/* The candidate heap can hold every pushed node at once in the worst case,
	 * but is bounded in practice by ef times the degree; grow on demand. */
	if (hnsw_heap_reserve(&s->top, (size_t)ef + 2) || hnsw_heap_reserve(&s->cand, (size_t)ef * 2 + 64))
		return err_set(STRATA_ENOMEM, "search scratch: heaps for ef %u", ef);
	s->cand.n = 0;
	s->top.n = 0;
	return 0;
}

/* ---- graph access ---------------------------------------------------------- */

const uint32_t *hnsw_links_upper(const struct hnsw_view *v, uint32_t node, uint32_t level)
{
	if (node >= v->upper_count || level == 0)
		return NULL;
	const uint8_t *e = v->upper_index + (size_t)node * 16;
	uint32_t node_level = le_load32(e);
	uint64_t first = le_load64(e + 8);
	if (level > node_level || first >= v->upper_blocks || level - 1 >= v->upper_blocks - first)
		return NULL;
	size_t block = 4 + 4 * (size_t)v->M;
	return (const uint32_t *)(const void *)(v->upper_links + (first + level - 1) * block);
}

/*
 * The search is written once and instantiated four times (hnsw_search_filtered):
 * `live` and `filtered` are compile-time constants in each, so the segment
 * path carries no test of v->locks in its loops and the unfiltered walk no
 * filter code. The live path (hnsw_graph_view_live) copies each
 * list under its node's lock before reading it and skips neighbours >= count
 * (rows appended after the view was taken); the segment path reads the
 * lists in place and refuses such neighbours as corruption.
 */
#define HNSW_ALWAYS_INLINE static inline __attribute__((always_inline))

/* Copy the list at l (its node locked by the caller) into buf; false if its count exceeds max. */
HNSW_ALWAYS_INLINE bool list_copy_locked(const uint32_t *l, uint32_t max, uint32_t *buf)
{
	uint32_t n = l[0];
	if (n > max)
		return false;
	memcpy(buf, l, (1 + (size_t)n) * sizeof *buf);
	return true;
}

void hnsw_trace_free(struct hnsw_trace *t)
{
	free(t->best.a);
	*t = (struct hnsw_trace){0};
}

/*
 * Every node the walk queues goes into the trace, unsorted (a store; a heap
 * kept per distance cost the walk ~15%); the `want` closest are picked once
 * at the end (trace_keep_best). A node not queued was farther than the
 * beam's ef-th best then, so for want <= ef none is missed; dead nodes are
 * queued like the others.
 */
HNSW_ALWAYS_INLINE int trace_offer(struct hnsw_trace *t, float d, uint32_t x)
{
	if (t->best.n == t->best.cap && hnsw_heap_reserve(&t->best, t->best.n + 1))
		return err_set(STRATA_ENOMEM, "search trace of %zu nodes", t->best.n + 1);
	t->best.a[t->best.n++] = (struct hnsw_hit){d, x};
	return 0;
}

/*
 * Keep the trace's `want` closest: a quickselect with a three-way partition
 * (so that equal distances, duplicate vectors, cannot make it quadratic).
 * Invariant: a[0..lo) <= a[lo..hi) <= a[hi..n), and lo < want < hi.
 */
static void trace_keep_best(struct hnsw_trace *t)
{
	struct hnsw_hit *a = t->best.a;
	size_t lo = 0, hi = t->best.n, want = t->want;
	if (hi <= want)
		return;
	while (lo < want && want < hi) {
		float p = a[lo + (hi - lo) / 2].dist;
		size_t lt = lo, i = lo, gt = hi;
		while (i < gt) {
			struct hnsw_hit x = a[i];
			if (x.dist < p) {
				a[i++] = a[lt];
				a[lt++] = x;
			} else if (x.dist > p) {
				a[i] = a[--gt];
				a[gt] = x;
			} else {
				i++;
			}
		}
		/* a[lo..lt) < p, a[lt..gt) == p (or unordered: NaN), a[gt..hi) > p */
		if (want <= lt)
			hi = lt;
		else if (want >= gt)
			lo = gt;
		else
			break;
	}
	t->best.n = want;
}

/* Greedy walk on one upper layer: move to any closer neighbour until none is. */
HNSW_ALWAYS_INLINE int descend_layer(const struct hnsw_view *v, const float *q, uint32_t level,
                                     uint32_t *cur, float *cur_dist, uint64_t *evals,
                                     uint32_t *buf, const bool live)
{
	for (int changed = 1; changed;) {
		changed = 0;
		const uint32_t *l = hnsw_links_upper(v, *cur, level);
		if (!l)
			return ERR_CORRUPT("graph: node %u has no list on layer %u", *cur, level);
		if (live) {
			hnsw_node_lock(v->locks, *cur);
			bool ok = list_copy_locked(l, v->M, buf);
			hnsw_node_unlock(v->locks, *cur);
			if (!ok)
				return ERR_CORRUPT("graph: node %u lists too many neighbours on layer %u",
				                   *cur, level);
			l = buf;
		}
		uint32_t n = l[0];
		if (n > v->M)
			return ERR_CORRUPT("graph: node %u lists %u neighbours on layer %u (M = %u)", *cur,
			                   n, level, v->M);
		for (uint32_t j = 1; j <= n; j++) {
			uint32_t c = l[j];
			if (c >= v->upper_count) {
				if (live)
					continue;
				return ERR_CORRUPT("graph: node %u links to %u on layer %u, beyond the %llu "
				                   "upper-layer nodes",
				                   *cur, c, level, (unsigned long long)v->upper_count);
			}
			float d = hnsw_dist_ordered(v->dist(q, hnsw_vec(v, c), v->dim));
			(*evals)++;
			if (d < *cur_dist) {
				*cur_dist = d;
				*cur = c;
				changed = 1;
			}
		}
	}
	return 0;
}

static inline void prefetch_node(const struct hnsw_view *v, uint32_t node)
{
	const char *p = (const char *)v->nodes + (size_t)node * v->stride;
	__builtin_prefetch(p, 0, 3);
	__builtin_prefetch(p + 64, 0, 3);
}

static inline bool bit_get(const uint64_t *bits, uint64_t i)
{
	return (bits[i / 64] >> (i % 64)) & 1;
}

/* Does `node` pass filter f? Inlined into the walk: the tests of unset parts predict well. */
HNSW_ALWAYS_INLINE bool filter_pass(const struct hnsw_filter *f, uint32_t node)
{
	if (f->dead &&
	    ((atomic_load_explicit(&f->dead[node / 64], memory_order_relaxed) >> (node % 64)) & 1))
		return false;
	if (f->node_bits && !bit_get(f->node_bits, node))
		return false;
	if (f->id_bits) {
		uint64_t id = le_load64(f->ids + (size_t)node * 8);
		if (id >= f->id_bits_n || !bit_get(f->id_bits, id))
			return false;
	}
	return !f->accept || f->accept(node, f->accept_ctx);
}

/*
 * A bounded search (hnsw_search_bounded) narrows its beam to max(k, this):
 * with k = 1 a beam of one is a greedy walk, which misses the query's own
 * neighbourhood in a graph it barely enters (measured: 0.97 instead of 1.0
 * self-recall at k = 1 over two sources of 4000).
 */
#define HNSW_BOUNDED_BEAM_MIN 10u

/*
 * Beam search on layer 0 from `ep`. Nodes the filter rejects still enter the
 * candidate queue, so the walk goes through them, but never `top`.
 * `bounded`: past both `limit` and the walk's own nb-th best (nb = max(k,
 * HNSW_BOUNDED_BEAM_MIN)), the beam narrows from ef to nb (see hnsw.h).
 */
HNSW_ALWAYS_INLINE int search_layer0(const struct hnsw_view *v, const float *q, uint32_t ep,
                                     float ep_dist, uint32_t ef, const struct hnsw_filter *filter,
                                     struct hnsw_scratch *s, uint64_t *evals_io, const bool live,
                                     const bool filtered, const bool bounded, uint32_t k,
                                     float limit, struct hnsw_trace *trace)
{
	uint16_t *tags = s->tags;
	const uint16_t epoch = s->epoch;
	struct hnsw_heap *cand = &s->cand, *top = &s->top, *kbest = &s->kbest;
	const uint32_t nb = k > HNSW_BOUNDED_BEAM_MIN ? k : HNSW_BOUNDED_BEAM_MIN;
	const uint32_t count = v->count, M0 = v->M0;
	/*
	 * Locals, not v->...: the heap stores below may alias the view's fields as
	 * far as the compiler knows, which made it reload them on every step.
	 */
	const uint8_t *const nodes = v->nodes;
	const size_t stride = v->stride, links_off = v->links_off, dim = v->dim;
	const dist_fn dist = v->dist;
	atomic_uchar *const locks = v->locks;
	uint32_t *const buf = s->list;
	/* A copy, for the same reason: the filter's fields stay in registers. */
	struct hnsw_filter fl = {0};
	if (filtered)
		fl = *filter;
	float bound = ep_dist;
	uint64_t evals = 0; /* counted here, in a register: through the pointer, a load and a store each */
	int rc;

	tags[ep] = epoch;
	if (trace && (rc = trace_offer(trace, ep_dist, ep)))
		goto out;
	if (bounded)
		kbest->n = 0;
	if ((rc = hnsw_heap_push_min(cand, (struct hnsw_hit){ep_dist, ep})))
		goto out;
	if (!filtered || filter_pass(&fl, ep)) {
		if ((rc = hnsw_heap_push_max(top, (struct hnsw_hit){ep_dist, ep})) ||
		    (bounded && (rc = hnsw_heap_push_max(kbest, (struct hnsw_hit){ep_dist, ep}))))
			goto out;
	} else {
		bound = __builtin_inff();
	}

	while (cand->n) {
		struct hnsw_hit c = cand->a[0];
		if (c.dist > bound && top->n >= ef)
			break;
		/*
		 * Bounded: beyond the caller's limit nothing can be an answer, so past
		 * both the limit and this walk's own nb-th best the beam narrows from
		 * ef to nb. A graph with nothing competitive is thus walked as with
		 * ef = nb (it still reaches the query's neighbourhood, so what it does
		 * hold that beats the limit is found); one that has competes at ef.
		 */
		if (bounded && kbest->n >= nb && c.dist > limit && c.dist > kbest->a[0].dist)
			break;
		hnsw_heap_pop_min(cand);
		const uint32_t *l = (const uint32_t *)(const void *)(nodes + (size_t)c.node * stride + links_off);
		if (live) {
			hnsw_node_lock(locks, c.node);
			bool ok = list_copy_locked(l, M0, buf);
			hnsw_node_unlock(locks, c.node);
			if (!ok) {
				rc = ERR_CORRUPT("graph: node %u lists too many neighbours on layer 0", c.node);
				goto out;
			}
			l = buf;
		}
		uint32_t n = l[0];
		if (n > M0) {
			rc = ERR_CORRUPT("graph: node %u lists %u neighbours on layer 0 (M0 = %u)", c.node,
			                 n, M0);
			goto out;
		}
		if (n && l[1] < count) {
			__builtin_prefetch(tags + l[1]);
			prefetch_node(v, l[1]);
		}
		for (uint32_t j = 1; j <= n; j++) {
			uint32_t x = l[j];
			if (x >= count) {
				if (live)
					continue;
				rc = ERR_CORRUPT("graph: node %u links to %u on layer 0, beyond the %u nodes",
				                 c.node, x, count);
				goto out;
			}
			if (j < n && l[j + 1] < count) {
				__builtin_prefetch(tags + l[j + 1]);
				prefetch_node(v, l[j + 1]);
			}
			if (tags[x] == epoch)
				continue;
			tags[x] = epoch;
			float d = hnsw_dist_ordered(
			        dist(q, (const float *)(const void *)(nodes + (size_t)x * stride), dim));
			evals++;
			if (top->n < ef || d < bound) {
				if (trace && (rc = trace_offer(trace, d, x)))
					goto out;
				if ((rc = hnsw_heap_push_min(cand, (struct hnsw_hit){d, x})))
					goto out;
				/* The next node to expand: its list is read next, not its vector. */
				__builtin_prefetch(nodes + (size_t)cand->a[0].node * stride + links_off, 0, 3);
				if (!filtered || filter_pass(&fl, x)) {
					if (top->n < ef) {
						if ((rc = hnsw_heap_push_max(top, (struct hnsw_hit){d, x})))
							goto out;
					} else {
						hnsw_heap_replace_max(top, (struct hnsw_hit){d, x});
					}
					bound = top->a[0].dist;
					if (bounded) {
						if (kbest->n < nb) {
							if ((rc = hnsw_heap_push_max(kbest, (struct hnsw_hit){d, x})))
								goto out;
						} else if (d < kbest->a[0].dist) {
							hnsw_heap_replace_max(kbest, (struct hnsw_hit){d, x});
						}
					}
				}
			}
		}
	}
	rc = 0;
out:
	*evals_io += evals;
	return rc;
}

/* Descent and layer-0 beam; the result is in s->top. */
HNSW_ALWAYS_INLINE int search_graph(const struct hnsw_view *v, const float *query, uint32_t ef,
                                    const struct hnsw_filter *filter, struct hnsw_scratch *s,
                                    uint64_t *evals, const bool live, const bool filtered,
                                    const bool bounded, uint32_t k, float limit,
                                    struct hnsw_trace *trace)
{
	int rc;
	uint32_t cur = v->entry;
	float cur_dist = hnsw_dist_ordered(v->dist(query, hnsw_vec(v, cur), v->dim));
	(*evals)++;
	for (uint32_t level = v->max_level; level >= 1; level--) {
		if ((rc = descend_layer(v, query, level, &cur, &cur_dist, evals, s->list, live)))
			return rc;
	}
	return search_layer0(v, query, cur, cur_dist, ef, filter, s, evals, live, filtered, bounded, k,
	                     limit, trace);
}

/*
 * Four instances: segment or live view, with or without a filter, so that
 * neither the unfiltered walk carries the filter's tests in its loop nor the
 * segment walk the live view's locking. Each is its own function (noinline):
 * inlined together into one, the unfiltered segment walk ran 7-10% slower
 * (register allocation and layout of the shared body).
 */
#define HNSW_NOINLINE __attribute__((noinline))

HNSW_NOINLINE static int search_segment(const struct hnsw_view *v, const float *query, uint32_t ef,
                                        struct hnsw_scratch *s, uint64_t *evals)
{
	return search_graph(v, query, ef, NULL, s, evals, false, false, false, 0, 0, NULL);
}

HNSW_NOINLINE static int search_segment_filtered(const struct hnsw_view *v, const float *query,
                                                 uint32_t ef, const struct hnsw_filter *filter,
                                                 struct hnsw_scratch *s, uint64_t *evals)
{
	return search_graph(v, query, ef, filter, s, evals, false, true, false, 0, 0, NULL);
}

/* The first source of a search whose memtable rows hang under its nodes (search.c). */
HNSW_NOINLINE static int search_segment_traced(const struct hnsw_view *v, const float *query,
                                               uint32_t ef, const struct hnsw_filter *filter,
                                               struct hnsw_scratch *s, uint64_t *evals,
                                               struct hnsw_trace *trace)
{
	if (filter)
		return search_graph(v, query, ef, filter, s, evals, false, true, false, 0, 0, trace);
	return search_graph(v, query, ef, NULL, s, evals, false, false, false, 0, 0, trace);
}

/* The later sources of a multi-source search (search.c), filtered or not. */
HNSW_NOINLINE static int search_segment_bounded(const struct hnsw_view *v, const float *query,
                                                uint32_t k, uint32_t ef, float limit,
                                                const struct hnsw_filter *filter,
                                                struct hnsw_scratch *s, uint64_t *evals)
{
	if (filter)
		return search_graph(v, query, ef, filter, s, evals, false, true, true, k, limit, NULL);
	return search_graph(v, query, ef, NULL, s, evals, false, false, true, k, limit, NULL);
}

HNSW_NOINLINE static int search_live(const struct hnsw_view *v, const float *query, uint32_t k,
                                     uint32_t ef, float limit, const struct hnsw_filter *filter,
                                     struct hnsw_scratch *s, uint64_t *evals)
{
	/* One list at a time is copied: M0 >= M, so 1 + M0 words hold any of them. */
	size_t need = 1 + (size_t)v->M0;
	if (s->list_len < need) {
		uint32_t *l = realloc(s->list, need * sizeof *l);
		if (!l)
			return err_set(STRATA_ENOMEM, "search scratch: list of %zu", need);
		s->list = l;
		s->list_len = need;
	}
	bool bounded = limit < __builtin_inff();
	if (filter && bounded)
		return search_graph(v, query, ef, filter, s, evals, true, true, true, k, limit, NULL);
	if (filter)
		return search_graph(v, query, ef, filter, s, evals, true, true, false, 0, 0, NULL);
	if (bounded)
		return search_graph(v, query, ef, NULL, s, evals, true, false, true, k, limit, NULL);
	return search_graph(v, query, ef, NULL, s, evals, true, false, false, 0, 0, NULL);
}

/*
 * The k best hits of the beam (the max-heap `top`), closest first, into out:
 * one pass that keeps them sorted by insertion, from the heap's leaves (its
 * smaller hits) up, so that once k are in most hits fail the first test.
 * Popping the ef - k worst instead took most of the 7.7% perf put outside
 * the walk at ef 128, unfiltered.
 */
static uint32_t beam_best(const struct hnsw_heap *top, uint32_t k, struct hnsw_hit *out)
{
	uint32_t n = 0;
	for (size_t i = top->n; i > 0; i--) {
		struct hnsw_hit h = top->a[i - 1];
		if (n == k && !hnsw_hit_less(h, out[k - 1]))
			continue;
		uint32_t j = n < k ? n++ : k - 1;
		for (; j > 0 && hnsw_hit_less(h, out[j - 1]); j--)
			out[j] = out[j - 1];
		out[j] = h;
	}
	return n;
}

int hnsw_search_filtered(const struct hnsw_view *v, const float *query, uint32_t k, uint32_t ef,
                         const struct hnsw_filter *filter, struct hnsw_scratch *s,
                         struct hnsw_hit *out, uint32_t *n_out, uint64_t *dist_evals)
{
	return hnsw_search_bounded(v, query, k, ef, __builtin_inff(), filter, s, out, n_out,
	                           dist_evals);
}

/*
 * What every search does first: nothing to find (1: no hits), ef raised to k,
 * the entry point checked, the scratch sized. 0: go on; < 0: an error.
 */
static int search_begin(const struct hnsw_view *v, uint32_t k, uint32_t *ef,
                        struct hnsw_scratch *s, uint32_t *n_out)
{
	*n_out = 0;
	if (v->count == 0 || k == 0 || v->entry == SEG_NO_NODE)
		return 1;
	if (*ef < k)
		*ef = k;
	if (v->entry >= v->count)
		return ERR_CORRUPT("graph: entry point %u beyond the %u nodes", v->entry, v->count);
	return hnsw_scratch_prepare(s, v->count, *ef);
}

int hnsw_search_bounded(const struct hnsw_view *v, const float *query, uint32_t k, uint32_t ef,
                        float limit, const struct hnsw_filter *filter, struct hnsw_scratch *s,
                        struct hnsw_hit *out, uint32_t *n_out, uint64_t *dist_evals)
{
	int rc = search_begin(v, k, &ef, s, n_out);
	if (rc)
		return rc > 0 ? 0 : rc;
	bool bounded = limit < __builtin_inff();
	if (bounded && hnsw_heap_reserve(&s->kbest, (size_t)(k > HNSW_BOUNDED_BEAM_MIN
	                                                          ? k
	                                                          : HNSW_BOUNDED_BEAM_MIN) + 1))
		return err_set(STRATA_ENOMEM, "search scratch: heap for k %u", k);

	uint64_t evals = 0;
	if (v->locks)
		rc = search_live(v, query, k, ef, limit, filter, s, &evals);
	else if (bounded)
		rc = search_segment_bounded(v, query, k, ef, limit, filter, s, &evals);
	else if (filter)
		rc = search_segment_filtered(v, query, ef, filter, s, &evals);
	else
		rc = search_segment(v, query, ef, s, &evals);
	if (rc)
		goto out;

	*n_out = beam_best(&s->top, k, out);
	s->top.n = 0;
out:
	*dist_evals += evals;
	return rc;
}

int hnsw_search_traced(const struct hnsw_view *v, const float *query, uint32_t k, uint32_t ef,
                       uint32_t want, const struct hnsw_filter *filter, struct hnsw_scratch *s,
                       struct hnsw_trace *trace, struct hnsw_hit *out, uint32_t *n_out,
                       uint64_t *dist_evals)
{
	trace->best.n = 0;
	trace->want = want;
	if (hnsw_heap_reserve(&trace->best, (size_t)ef * 16 + 64))
		return err_set(STRATA_ENOMEM, "search trace for ef %u", ef);
	if (v->locks)
		return err_set(STRATA_EINVAL, "a traced search of a live graph");
	int rc = search_begin(v, k, &ef, s, n_out);
	if (rc)
		return rc > 0 ? 0 : rc;
	uint64_t evals = 0;
	rc = search_segment_traced(v, query, ef, filter, s, &evals, trace);
	if (!rc) {
		*n_out = beam_best(&s->top, k, out);
		trace_keep_best(trace);
	}
	s->top.n = 0;
	*dist_evals += evals;
	return rc;
}

int hnsw_search(const struct hnsw_view *v, const float *query, uint32_t k, uint32_t ef,
                hnsw_accept_fn accept, void *accept_ctx, struct hnsw_scratch *s,
                struct hnsw_hit *out, uint32_t *n_out, uint64_t *dist_evals)
{
	struct hnsw_filter f = {.accept = accept, .accept_ctx = accept_ctx};
	return hnsw_search_filtered(v, query, k, ef, accept ? &f : NULL, s, out, n_out, dist_evals);
}

int hnsw_scan(const struct hnsw_view *v, const float *query, uint32_t k, const uint32_t *nodes,
              size_t n, hnsw_accept_fn accept, void *accept_ctx, struct hnsw_scratch *s,
              struct hnsw_hit *out, uint32_t *n_out, uint64_t *dist_evals)
{
	*n_out = 0;
	if (k == 0)
		return 0;
	int rc = hnsw_scratch_prepare(s, 0, k);
	if (rc)
		return rc;
	struct hnsw_heap *top = &s->top;
	size_t total = nodes ? n : v->count;
	uint64_t evals = 0;
	for (size_t i = 0; i < total; i++) {
		uint32_t x = nodes ? nodes[i] : (uint32_t)i;
		/* A list's vectors are scattered: loaded ahead of use (sequential ones the CPU foresees). */
		if (nodes && i + 2 < total && nodes[i + 2] < v->count)
			hnsw_prefetch_vec(v, nodes[i + 2]);
		if (x >= v->count)
			return ERR_CORRUPT("scan: node %u beyond the %u nodes", x, v->count);
		if (accept && !accept(x, accept_ctx))
			continue;
		float d = hnsw_dist_ordered(v->dist(query, hnsw_vec(v, x), v->dim));
		evals++;
		struct hnsw_hit h = {d, x};
		if (top->n < k) {
			if ((rc = hnsw_heap_push_max(top, h)))
				return rc;
		} else if (hnsw_hit_less(h, top->a[0])) {
			hnsw_heap_replace_max(top, h);
		}
	}
	uint32_t got = (uint32_t)top->n;
	for (uint32_t i = got; i > 0; i--)
		out[i - 1] = hnsw_heap_pop_max(top);
	*n_out = got;
	*dist_evals += evals;
	return 0;
}
