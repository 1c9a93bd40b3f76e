/*
 * seg_hang.c - hanging a segment's nodes under the largest segment's, in the
 * background (the indexer thread, when the memtable leaves it nothing to do).
 *
 * A flush carries its memtable's anchors to the segment it makes, and a merge
 * of such segments carries theirs (memtable.h, seg_anchors). What they cannot
 * cover: segments opened from disk (anchors live in memory only), merges of
 * inputs hung under different segments or none, and segments whose anchors
 * name a segment that a merge replaced since (the new largest segment's walk
 * meets none of those nodes). Those are walked by every search until a
 * segment is hung here: each live node under its MT_ANCHOR_LINKS nearest live
 * nodes of the largest segment, by the same short walk the memtable's rows
 * get (~1/6 of a graph insertion), in rounds so that the memtable's own work
 * and a close never wait long. The set replaced stays with the segment until
 * it goes: a search may be using it.
 */
#include <stdlib.h>

#include "db.h"
#include "err.h"
#include "seg_hang.h"

/* Sets of anchors a segment may make: a bound on the memory replaced sets hold. */
#define SEG_HANG_GENS 4u

static uint32_t generations(const struct seg_anchors *a)
{
	uint32_t n = 0;
	for (; a; a = a->older)
		n++;
	return n;
}

void seg_hang_drop(struct seg_hang *h)
{
	if (h->seg) {
		db_segment_unref(h->seg);
		db_segment_unref(h->under);
	}
	free(h->near);
	h->seg = h->under = NULL;
	h->near = NULL;
	h->done = 0;
}

/*
 * A segment of v that searches walk although it could hang under `under`:
 * no larger (under, db_largest's pick, comes first in searches' order among
 * equals: flushes of full memtables make segments of equal size), live nodes,
 * not hung under it, generations left. NULL when none.
 */
static struct db_segment *pick(const struct seg_hang *h, const struct db_version *v,
                               const struct db_segment *under, uint64_t under_live)
{
	for (uint32_t i = 0; i < v->nseg; i++) {
		struct db_segment *s = v->segs[i];
		uint64_t live = db_segment_live(s);
		if (s == under || live == 0 || live > under_live ||
		    (s->entry.seq == h->failed_seq && under->entry.seq == h->failed_under))
			continue;
		const struct seg_anchors *a = atomic_load_explicit(&s->anchors, memory_order_acquire);
		if ((!a || a->seg_seq != under->entry.seq) && generations(a) < SEG_HANG_GENS)
			return s;
	}
	return NULL;
}

/* The links found, as a set under h->under, published on h->seg. */
static int publish(struct seg_hang *h)
{
	const uint32_t count = h->seg->info.count, under_count = h->under->info.count;
	const size_t links = (size_t)count * MT_ANCHOR_LINKS;
	size_t used = 0;
	for (size_t l = 0; l < links; l++)
		used += h->near[l] != UINT32_MAX;
	struct seg_anchors *c = seg_anchors_new(h->under->entry.seq, under_count, used, SEG_ANCHORS_HUNG);
	if (!c)
		return err_set(STRATA_ENOMEM, "anchors of %u segment nodes", count);
	/* Counting sort by the node hung under: start[] counts, then offsets, then the leaves. */
	for (uint32_t j = 0; j <= under_count; j++)
		c->start[j] = 0;
	for (size_t l = 0; l < links; l++)
		if (h->near[l] != UINT32_MAX)
			c->start[h->near[l] + 1]++;
	for (uint32_t j = 0; j < under_count; j++)
		c->start[j + 1] += c->start[j];
	for (size_t l = 0; l < links; l++)
		if (h->near[l] != UINT32_MAX)
			c->leaf[c->start[h->near[l]]++] = (uint32_t)(l / MT_ANCHOR_LINKS);
	for (uint32_t j = under_count; j > 0; j--) /* each start[j] now holds where j + 1 begins */
		c->start[j] = c->start[j - 1];
	c->start[0] = 0;
	c->older = atomic_load_explicit(&h->seg->anchors, memory_order_relaxed);
	atomic_store_explicit(&h->seg->anchors, c, memory_order_release);
	return 0;
}

bool seg_hang_round(struct seg_hang *h, const struct db_version *v, struct hnsw_scratch *hs,
                    uint32_t max_nodes)
{
	uint64_t under_live;
	struct db_segment *under = db_largest(v, &under_live);
	/* Hung under a segment no longer the largest, or for one merged away: start again. */
	if (h->seg && (h->under != under || db_version_pos(v, h->seg) == UINT32_MAX))
		seg_hang_drop(h);
	if (!h->seg) {
		struct db_segment *s = under ? pick(h, v, under, under_live) : NULL;
		if (!s)
			return false;
		size_t links = (size_t)s->info.count * MT_ANCHOR_LINKS;
		if (!(h->near = malloc(links * sizeof *h->near)))
			return false; /* out of memory: the segment stays walked */
		for (size_t l = 0; l < links; l++)
			h->near[l] = UINT32_MAX;
		atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&under->refs, 1, memory_order_relaxed);
		h->seg = s;
		h->under = under;
		h->done = 0;
	}
	const struct db_segment *s = h->seg;
	uint32_t upto = s->info.count - h->done > max_nodes ? h->done + max_nodes : s->info.count;
	for (; h->done < upto; h->done++) {
		if (seg_is_dead(s, h->done))
			continue; /* never returned: nothing to find it by */
		struct hnsw_hit near[MT_ANCHOR_LINKS];
		uint32_t n = 0;
		int rc = anchor_nearest(&under->view, under->tomb, hnsw_vec(&s->view, h->done), hs, near, &n);
		if (rc || n == 0) {
			/* A node reached through no node would never be found: the segment stays walked. */
			if (rc != STRATA_ENOMEM) {
				h->failed_seq = s->entry.seq;
				h->failed_under = under->entry.seq;
			}
			seg_hang_drop(h);
			return false;
		}
		for (uint32_t j = 0; j < n; j++)
			h->near[(size_t)h->done * MT_ANCHOR_LINKS + j] = near[j].node;
	}
	if (h->done == s->info.count) {
		int rc = publish(h); /* out of memory: the segment stays walked */
		seg_hang_drop(h);
		return rc == 0;
	}
	return true;
}
