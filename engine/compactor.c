/*
 * compactor.c - the compactor thread of a writable handle: which segments to
 * merge (size-tiered policy, tombstone rewrites), the merge itself with the
 * largest input's graph reused, its commit, strata_compact, and the grace
 * period of the files a commit replaced. Lifecycle and invariants C1-C4:
 * compactor.h. Files: FORMAT.md sections 2 and 4.
 *
 * Why a merge reuses a graph: building the merged graph from nothing costs as
 * much as building every input again. The largest input already holds a good
 * graph over most of the rows, so the merge compacts it (its deleted nodes
 * dropped and the lists that pointed at them repaired, hnsw_graph_compact)
 * and inserts only the other inputs' rows into it (hnsw_graph_new_seeded).
 *
 * Why the persisted deletion files decide what a merge drops: a tombstone set
 * in memory may come from a write not yet durable (STRATA_SYNC_NONE or
 * _INTERVAL); if the merged segment left that row out and the write were then
 * lost in a crash, the old row would be lost with it. Such rows are kept and
 * carry their in-memory tombstone into the merged segment (C1, C2).
 *
 * Never: hold mf_lock or write_lock while building a graph or writing a
 * segment; delete a file a committed manifest still names.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "compactor.h"
#include "db.h"
#include "err.h"
#include "failpoint.h"
#include "fio.h"
#include "hnsw.h"
#include "le.h"
#include "segment.h"
#include "tombstone.h"

#define TIER_BASE 4096u               /* live vectors: below TIER_BASE x F is tier 0 */
#define GRACE_NS 1000000000ull        /* replaced files outlive their commit by 1 s */
#define IDLE_WAIT_MS 500              /* the thread looks for work at least this often */
#define WATCH_MS 100                  /* how often a background merge is checked for falling behind */
#define STARVED_WINDOW_NS 1000000000ull /* over which a merge's CPU share is measured */
#define RETRY_MIN_MS 1000u            /* after a failed background merge ... */
#define RETRY_MAX_MS 60000u           /* ... back off, doubling up to this */
#define MERGE_FACTOR_DEFAULT 4u
#define MERGE_FACTOR_MAX 64u
#define TOMB_PCT_DEFAULT 20u
#define MERGE_INTO_LARGEST_MAX 1000u  /* percent: the others ten times the largest */
#define BACKGROUND_NICE 10            /* the fallback of lower_priority() */

struct retired {
	char name[TOMB_NAME_LEN + 1];
	uint64_t at_ns;
};

struct compactor {
	pthread_t thread;
	bool started;
	pthread_mutex_t lock;      /* everything below that is not atomic */
	pthread_cond_t cond;       /* work for the thread */
	/*
	 * Held for the whole of a merge: one at a time, whether the background
	 * thread runs it or strata_compact in its caller's thread.
	 */
	pthread_mutex_t merge_lock;
	bool stopping;
	bool poked;
	_Atomic int cancel;        /* compactor_stop: a running merge gives up */
	/*
	 * What a running merge tests: set by compactor_halt, and by the thread
	 * when it gives up a starved background merge to run it again at normal
	 * priority (background_step).
	 */
	_Atomic int merge_cancel;
	_Atomic bool running;
	struct retired *retired;
	size_t n_retired, cap_retired;
	uint64_t retry_at_ns;
	uint32_t retry_ms;
	/* policy, from the handle's options */
	uint32_t factor;
	uint64_t max_live;
	uint32_t max_segs; /* 0: no bound */
	uint32_t absorb_pct; /* merge_into_largest_pct; 0: off */
	uint32_t tomb_pct;
	uint32_t threads;
	bool background;
	/* stats */
	_Atomic uint64_t merges, errors, reused, inserted, bytes, ns;
	_Atomic uint64_t escalated; /* idle merges given up to run at normal priority */
	_Atomic int last_error;
};

/* Where a row of a merged segment comes from: input `in`, node `node`. */
struct merge_src {
	uint32_t in;
	uint32_t node;
};

static uint64_t clock_ns(clockid_t clock)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t now_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

static inline bool bit_get(const uint64_t *b, uint64_t i)
{
	return b && (b[i / 64] >> (i % 64) & 1);
}

static inline void bit_set(uint64_t *b, uint64_t i)
{
	b[i / 64] |= 1ull << (i % 64);
}

static inline bool tomb_get(const struct db_segment *s, uint32_t node)
{
	return (atomic_load_explicit(&s->tomb[node / 64], memory_order_relaxed) >> (node % 64)) & 1;
}

static uint32_t factor_of(const strata_db *db)
{
	uint32_t f = db->opts.merge_factor;
	return f >= 2 && f <= MERGE_FACTOR_MAX ? f : MERGE_FACTOR_DEFAULT;
}

uint32_t compactor_tier(const strata_db *db, uint64_t live)
{
	uint64_t f = factor_of(db);
	uint32_t t = 0;
	for (uint64_t bound = TIER_BASE * f; live >= bound && t < 63; bound *= f)
		t++;
	return t;
}

/* Vectors a merge would keep: the node count minus the persisted deletions. */
static uint64_t seg_live_persisted(const struct db_segment *s)
{
	return s->info.count - atomic_load(&s->tomb_saved);
}

/* ---- policy ------------------------------------------------------------------ */

struct merge_job {
	uint32_t n;
	struct db_segment **in; /* referenced; oldest first (the version's order) */
	bool full;
};

static void job_release(struct merge_job *j)
{
	for (uint32_t i = 0; i < j->n; i++)
		db_segment_unref(j->in[i]);
	free(j->in);
	j->in = NULL;
	j->n = 0;
}

static int cmp_live(const void *a, const void *b)
{
	uint64_t x = seg_live_persisted(*(struct db_segment *const *)a);
	uint64_t y = seg_live_persisted(*(struct db_segment *const *)b);
	return x < y ? -1 : x > y;
}

/*
 * Of the n candidates in sel (in the version's order), keep `keep` (NULL:
 * none; else one of them, counted first) and the `want` smallest others by
 * live vectors, fewer where their sum would pass max_live. Writes the kept
 * ones back to sel in the version's order (the merge's dedup relies on it:
 * the newest input wins); returns their count, 0 when fewer than two remain.
 * tmp holds n entries.
 */
static uint32_t keep_smallest(const struct compactor *c, struct db_segment **sel, uint32_t n,
                              uint32_t want, const struct db_segment *keep, struct db_segment **tmp)
{
	uint32_t nt = 0;
	for (uint32_t i = 0; i < n; i++)
		if (sel[i] != keep)
			tmp[nt++] = sel[i];
	qsort(tmp, nt, sizeof *tmp, cmp_live);
	uint64_t sum = keep ? seg_live_persisted(keep) : 0;
	uint32_t k = 0;
	while (k < want && k < nt &&
	       (!c->max_live || sum + seg_live_persisted(tmp[k]) <= c->max_live))
		sum += seg_live_persisted(tmp[k++]);
	uint32_t m = 0;
	for (uint32_t i = 0; i < n; i++) {
		bool take = sel[i] == keep;
		for (uint32_t j = 0; j < k && !take; j++)
			take = sel[i] == tmp[j];
		if (take)
			sel[m++] = sel[i];
	}
	return m >= 2 ? m : 0;
}

/*
 * The tier merge of version `v`'s tier t, if it is due: the segments of that
 * tier (at most 2F, oldest first), cut to max_live (smallest first) and kept
 * only if at least two remain, in sel in the version's order; returns their
 * count. sel holds 2F entries, tmp as many.
 */
static uint32_t tier_pick(const struct compactor *c, const strata_db *db, const struct db_version *v,
                          uint32_t t, struct db_segment **sel, struct db_segment **tmp)
{
	uint32_t n = 0;
	for (uint32_t i = 0; i < v->nseg && n < 2 * c->factor; i++)
		if (compactor_tier(db, seg_live_persisted(v->segs[i])) == t)
			sel[n++] = v->segs[i];
	if (n < c->factor)
		return 0;
	return c->max_live ? keep_smallest(c, sel, n, n, NULL, tmp) : n;
}

/*
 * The merge down to max_segments, if it is due: the nseg - max_segs + 1
 * smallest segments of `v` (so that the bound holds after it), as many of
 * them as fit in max_live, kept only if at least two, in sel in the
 * version's order; returns their count. sel and tmp hold v->nseg entries.
 */
static uint32_t bound_pick(const struct compactor *c, const struct db_version *v,
                           struct db_segment **sel, struct db_segment **tmp)
{
	if (!c->max_segs || v->nseg <= c->max_segs)
		return 0;
	memcpy(sel, v->segs, v->nseg * sizeof *sel);
	return keep_smallest(c, sel, v->nseg, v->nseg - c->max_segs + 1, NULL, tmp);
}

/*
 * The merge into the largest segment, if it is due: when the other segments
 * of `v` hold together absorb_pct% of the largest's live vectors, all of
 * them with the largest, cut to max_live (the largest kept, the others
 * smallest first), kept only if at least two, in sel in the version's order;
 * returns their count. With `before_newest`, of the segments before the
 * newest only (merges_behind: was it due before the last flush or merge?).
 * sel and tmp hold v->nseg entries.
 */
static uint32_t absorb_pick(const struct compactor *c, const struct db_version *v, bool before_newest,
                            struct db_segment **sel, struct db_segment **tmp)
{
	uint32_t nseg = v->nseg - (before_newest && v->nseg);
	if (!c->absorb_pct || nseg < 2)
		return 0;
	struct db_segment *big = NULL;
	uint64_t big_live = 0, others = 0;
	for (uint32_t i = 0; i < nseg; i++) {
		uint64_t live = seg_live_persisted(v->segs[i]);
		if (!big || live > big_live) {
			others += big_live;
			big = v->segs[i];
			big_live = live;
		} else {
			others += live;
		}
	}
	if (others * 100 < (uint64_t)c->absorb_pct * big_live)
		return 0;
	if (c->max_live && big_live >= c->max_live)
		return 0;
	memcpy(sel, v->segs, nseg * sizeof *sel);
	return keep_smallest(c, sel, nseg, nseg, big, tmp);
}

static bool needs_rewrite(const struct compactor *c, const struct db_segment *s)
{
	uint64_t dead = atomic_load(&s->tomb_saved);
	return dead > 0 && dead * 100 >= (uint64_t)c->tomb_pct * s->info.count;
}

/* The highest tier any segment of `v` is in (0 with none). */
static uint32_t top_tier(const strata_db *db, const struct db_version *v)
{
	uint32_t top = 0;
	for (uint32_t i = 0; i < v->nseg; i++) {
		uint32_t t = compactor_tier(db, seg_live_persisted(v->segs[i]));
		if (t > top)
			top = t;
	}
	return top;
}

/*
 * The next background job for version `v` (job->n = 0: nothing due), and the
 * number of jobs due in *pending_out (may be NULL). The merge into the
 * largest comes first, then tier merges, lowest tier first: they also drop
 * the deleted rows of their inputs; then the merge down to max_segments,
 * then rewrites.
 */
static int policy_pick(const struct compactor *c, const strata_db *db, const struct db_version *v,
                       struct merge_job *job, uint32_t *pending_out)
{
	uint32_t pending = 0;
	/*
	 * Three areas of 2F + nseg: the chosen merge, the merges counted after it,
	 * qsort scratch (a tier merge takes at most 2F, the bound's at most nseg).
	 */
	size_t area = 2 * (size_t)c->factor + v->nseg;
	struct db_segment **sel = calloc(3 * area, sizeof *sel);
	if (!sel)
		return err_set(STRATA_ENOMEM, "compaction policy");
	struct db_segment **tmp = sel + 2 * area;
	struct db_segment *rewrite = NULL;
	uint32_t chosen = 0;
	if (job)
		job->n = 0;
	/* It takes every segment the tier merges would (and the largest): first. */
	chosen = absorb_pick(c, v, false, sel, tmp);
	if (chosen)
		pending++;
	uint32_t max_tier = top_tier(db, v);
	for (uint32_t t = 0; v->nseg && t <= max_tier; t++) {
		uint32_t n = tier_pick(c, db, v, t, sel + (chosen ? area : 0), tmp);
		if (!n)
			continue;
		pending++;
		if (!chosen)
			chosen = n;
	}
	uint32_t n_bound = bound_pick(c, v, sel + (chosen ? area : 0), tmp);
	if (n_bound) {
		pending++;
		if (!chosen)
			chosen = n_bound;
	}
	for (uint32_t i = 0; i < v->nseg; i++) {
		if (!needs_rewrite(c, v->segs[i]))
			continue;
		pending++;
		if (!rewrite)
			rewrite = v->segs[i];
	}
	if (!chosen && rewrite) {
		sel[0] = rewrite;
		chosen = 1;
	}
	int rc = 0;
	if (job && chosen) {
		job->in = calloc(chosen, sizeof *job->in);
		if (!job->in) {
			rc = err_set(STRATA_ENOMEM, "compaction policy");
		} else {
			for (uint32_t i = 0; i < chosen; i++) {
				atomic_fetch_add_explicit(&sel[i]->refs, 1, memory_order_relaxed);
				job->in[i] = sel[i];
			}
			job->n = chosen;
		}
	}
	free(sel);
	if (pending_out)
		*pending_out = pending;
	return rc;
}

/* ---- retired files ------------------------------------------------------------- */

static void delete_file(strata_db *db, const char *name)
{
	char *p = db_path(db, name);
	if (p)
		fio_discard(p);
	free(p);
}

void compactor_retire(strata_db *db, const char *name)
{
	struct compactor *c = db->compactor;
	if (!c) {
		delete_file(db, name);
		return;
	}
	pthread_mutex_lock(&c->lock);
	if (c->n_retired == c->cap_retired) {
		size_t cap = c->cap_retired ? 2 * c->cap_retired : 16;
		struct retired *r = realloc(c->retired, cap * sizeof *r);
		if (!r) {
			pthread_mutex_unlock(&c->lock);
			delete_file(db, name); /* no room to wait: readers retry their open */
			return;
		}
		c->retired = r;
		c->cap_retired = cap;
	}
	struct retired *r = &c->retired[c->n_retired++];
	snprintf(r->name, sizeof r->name, "%s", name);
	r->at_ns = now_ns();
	pthread_mutex_unlock(&c->lock);
}

/* Delete the retired files whose grace period is over (all with `all`). c->lock held. */
static void sweep_retired(strata_db *db, struct compactor *c, bool all)
{
	uint64_t now = now_ns();
	size_t keep = 0;
	for (size_t i = 0; i < c->n_retired; i++) {
		if (all || now - c->retired[i].at_ns >= GRACE_NS) {
			fp_step("retired.deleting");
			delete_file(db, c->retired[i].name);
			continue;
		}
		c->retired[keep++] = c->retired[i];
	}
	c->n_retired = keep;
}

/* ---- the merge ------------------------------------------------------------------ */

struct merge_out {
	struct mf_segment e;       /* the merged segment's entry (seq 0: the result is empty) */
	struct db_segment *seg;    /* opened, not yet installed */
	struct merge_src *src;     /* per merged node */
	uint64_t reused, inserted;
};

static void merge_out_free(struct merge_out *o)
{
	db_segment_unref(o->seg);
	free(o->src);
	memset(o, 0, sizeof *o);
}

/*
 * The rows each input contributes: not in its persisted deletion file, and
 * not an id that a newer input holds live too (the newest copy wins; after a
 * clean history this never happens, but a merge must not duplicate an id).
 * drop[i] receives the bitmap of input i's rows left out.
 */
static int merge_drops(strata_db *db, const struct merge_job *job, uint64_t **drop)
{
	pthread_mutex_lock(&db->mf_lock); /* tomb_disk is replaced under it */
	int rc = 0;
	for (uint32_t i = 0; i < job->n && !rc; i++) {
		const struct db_segment *s = job->in[i];
		size_t words = (size_t)(s->info.count / 64 + 1);
		drop[i] = s->tomb_disk ? db_bits_dup(s->tomb_disk, words) : calloc(words, sizeof **drop);
		if (!drop[i])
			rc = err_set(STRATA_ENOMEM, "merge: deletion bitmaps");
	}
	pthread_mutex_unlock(&db->mf_lock);
	for (uint32_t i = 0; i + 1 < job->n && !rc; i++) {
		const struct db_segment *s = job->in[i];
		for (uint32_t node = 0; node < s->info.count && !rc; node++) {
			if (bit_get(drop[i], node))
				continue;
			uint64_t id = le_load64(s->info.ids + (size_t)node * 8);
			for (uint32_t j = i + 1; j < job->n; j++) {
				uint32_t x;
				int r = seg_id_find(&job->in[j]->info, id, &x);
				if (r == STRATA_ENOTFOUND)
					continue;
				if (r) {
					rc = err_prefix(r, job->in[j]->name);
					break;
				}
				if (!bit_get(drop[j], x)) {
					bit_set(drop[i], node);
					break;
				}
			}
		}
	}
	return rc;
}

/*
 * The merged segment's anchors (memtable.h, seg_anchors) when every input
 * hangs under one segment, so that it is still reached through that segment's
 * walk; NULL otherwise, and when out of memory (it is then walked).
 */
static struct seg_anchors *merge_anchors(const struct merge_job *job, const struct merge_out *out)
{
	uint32_t n = job->n;
	const struct seg_anchors **in = calloc(n, sizeof *in);
	uint32_t **out_of = calloc(n, sizeof *out_of);
	struct seg_anchors *m = NULL;
	if (!in || !out_of)
		goto out;
	for (uint32_t i = 0; i < n; i++) {
		in[i] = atomic_load_explicit(&job->in[i]->anchors, memory_order_acquire);
		if (!in[i] || in[i]->seg_seq != in[0]->seg_seq)
			goto out;
	}
	for (uint32_t i = 0; i < n; i++) {
		uint32_t count = job->in[i]->info.count;
		if (!(out_of[i] = malloc((count ? count : 1) * sizeof *out_of[i])))
			goto out;
		for (uint32_t x = 0; x < count; x++)
			out_of[i][x] = UINT32_MAX;
	}
	for (uint32_t j = 0; j < out->e.count; j++)
		out_of[out->src[j].in][out->src[j].node] = j;
	(void)seg_anchors_merge(in, (const uint32_t *const *)out_of, n, &m);
out:
	for (uint32_t i = 0; out_of && i < n; i++)
		free(out_of[i]);
	free(out_of);
	free(in);
	return m;
}

/*
 * Build and write the merged segment of job's inputs, and open it; nothing is
 * committed. Returns 0, HNSW_ECANCELED, or an error (the file is removed).
 */
static int merge_build(strata_db *db, struct compactor *c, const struct merge_job *job,
                       struct merge_out *out)
{
	uint32_t n = job->n;
	uint64_t **drop = calloc(n, sizeof *drop);
	struct hnsw_graph *gl = NULL, *g = NULL, *gf = NULL;
	uint32_t *oon_l = NULL, *oon_f = NULL;
	uint64_t *ids = NULL, *node_ids = NULL;
	struct merge_src *src = NULL;
	char *path = NULL;
	int rc = drop ? merge_drops(db, job, drop) : err_set(STRATA_ENOMEM, "merge");
	if (rc)
		goto out;

	/* The largest input (by rows kept) lends its graph. */
	uint64_t total = 0, best = 0;
	uint32_t L = 0;
	for (uint32_t i = 0; i < n; i++) {
		const struct db_segment *s = job->in[i];
		uint64_t live = 0;
		for (uint64_t w = 0; w < s->info.count / 64 + 1; w++)
			live += (uint64_t)__builtin_popcountll(drop[i][w]);
		live = s->info.count - live;
		total += live;
		if (live > best || i == 0) {
			best = live;
			L = i;
		}
	}
	if (total > SEG_COUNT_MAX) {
		rc = err_set(STRATA_ELIMIT, "merge of %llu vectors: a segment holds at most %llu",
		             (unsigned long long)total, (unsigned long long)SEG_COUNT_MAX);
		goto out;
	}
	if (total == 0)
		goto out; /* every row is deleted: the inputs just go */

	struct hnsw_build_params p = db->gp;
	p.threads = c->threads;
	p.seed = db->opts.seed ^ (atomic_load(&db->next_seq) * 0x9e3779b97f4a7c15ull);
	p.progress = NULL;
	if (job->full && db->opts.progress) { /* strata_compact reports through the handle's callback */
		p.progress = db->opts.progress;
		p.progress_ctx = db->opts.progress_ctx;
	}
	const struct db_segment *big = job->in[L];
	if ((rc = hnsw_graph_compact(&big->view, drop[L], c->threads, &gl, &oon_l)))
		goto out;
	struct hnsw_view lv;
	hnsw_graph_view(gl, &lv);
	ids = malloc((size_t)total * sizeof *ids);
	src = malloc((size_t)total * sizeof *src);
	if (!ids || !src) {
		rc = err_set(STRATA_ENOMEM, "merge of %llu vectors", (unsigned long long)total);
		goto out;
	}
	if ((rc = hnsw_graph_new_seeded(&p, (size_t)total, &lv, &g)))
		goto out;
	for (uint32_t r = 0; r < lv.count; r++) {
		ids[r] = le_load64(big->info.ids + (size_t)oon_l[r] * 8);
		src[r] = (struct merge_src){L, oon_l[r]};
	}
	out->reused = lv.count;
	hnsw_graph_free(gl);
	gl = NULL;
	for (uint32_t i = 0; i < n; i++) {
		if (i == L)
			continue;
		const struct db_segment *s = job->in[i];
		for (uint32_t node = 0; node < s->info.count; node++) {
			if (bit_get(drop[i], node))
				continue;
			uint32_t row;
			if ((rc = hnsw_graph_append(g, hnsw_vec(&s->view, node), &row)))
				goto out;
			ids[row] = le_load64(s->info.ids + (size_t)node * 8);
			src[row] = (struct merge_src){i, node};
		}
	}
	out->inserted = total - out->reused;
	hnsw_graph_set_cancel(g, &c->merge_cancel);
	if ((rc = hnsw_graph_index(g, (size_t)total)))
		goto out;

	/* Segment layout (upper-layer nodes first), then the file. */
	struct hnsw_view gv;
	hnsw_graph_view(g, &gv);
	if ((rc = hnsw_graph_compact(&gv, NULL, c->threads, &gf, &oon_f)))
		goto out;
	hnsw_graph_free(g);
	g = NULL;
	struct hnsw_view fv;
	hnsw_graph_view(gf, &fv);
	node_ids = malloc((size_t)fv.count * sizeof *node_ids);
	out->src = malloc((size_t)fv.count * sizeof *out->src);
	if (!node_ids || !out->src) {
		rc = err_set(STRATA_ENOMEM, "merge of %u vectors", fv.count);
		goto out;
	}
	for (uint32_t i = 0; i < fv.count; i++) {
		node_ids[i] = ids[oon_f[i]];
		out->src[i] = src[oon_f[i]];
	}
	struct mf_segment *e = &out->e;
	e->seq = atomic_fetch_add(&db->next_seq, 1);
	char name[MF_SEGMENT_NAME_LEN + 1];
	mf_segment_name(e->seq, name, sizeof name);
	if (!(path = db_path(db, name))) {
		rc = err_set(STRATA_ENOMEM, "merge");
		goto out;
	}
	rc = db_write_graph(path, db->dim, db->metric, db->M, db->ef_construction, p.seed, &fv,
	                    node_ids, fv.count, &e->header_xxh3, &e->file_size);
	if (rc)
		goto out;
	fp_step("merge.segment_written");
	atomic_fetch_add(&c->bytes, e->file_size);
	e->count = fv.count;
	e->tomb_gen = 0;
	e->level = compactor_tier(db, fv.count);
	if (atomic_load(&c->merge_cancel)) {
		rc = HNSW_ECANCELED;
		goto out;
	}
	if (!(rc = db_segment_open(db, e, &out->seg))) {
		db_segment_warm(out->seg);
		atomic_store_explicit(&out->seg->anchors, merge_anchors(job, out), memory_order_relaxed);
	}
out:
	if (rc && path && out->e.seq)
		fio_discard(path); /* never named by a manifest: nobody else knows it */
	if (rc)
		merge_out_free(out);
	for (uint32_t i = 0; drop && i < n; i++)
		free(drop[i]);
	free(drop);
	hnsw_graph_free(gl);
	hnsw_graph_free(g);
	hnsw_graph_free(gf);
	free(oon_l);
	free(oon_f);
	free(ids);
	free(node_ids);
	free(src);
	free(path);
	return rc;
}

/*
 * Commit a built merge (C2, C3): the merged segment's deletion file, the
 * manifest without the inputs and with the merged segment in the newest
 * input's place, then the version to match. The inputs' files go to the
 * retired list. A failure before the manifest rename changes nothing; a
 * failed manifest commit stops writes (the state on disk is uncertain).
 */
static int merge_commit(strata_db *db, struct compactor *c, const struct merge_job *job,
                        struct merge_out *mo)
{
	struct db_segment *M = mo->seg; /* NULL: the merge kept nothing */
	uint64_t count = M ? M->info.count : 0;
	size_t words = (size_t)(count / 64 + 1);
	uint64_t *mdisk = calloc(words, sizeof *mdisk);
	uint64_t *msnap = calloc(words, sizeof *msnap);
	struct mf_manifest nm = {0};
	struct db_version *nv = NULL;
	uint64_t gen = 0; /* the merged segment's deletion file, once written */
	int rc = 0;
	if (!mdisk || !msnap) {
		free(mdisk);
		free(msnap);
		return err_set(STRATA_ENOMEM, "merge commit");
	}

	pthread_mutex_lock(&db->mf_lock);
	struct db_version *cv = db_pin(db);
	uint32_t newest = 0;
	for (uint32_t i = 0; i < job->n; i++) {
		uint32_t pos = db_version_pos(cv, job->in[i]);
		if (pos == UINT32_MAX) { /* only this thread removes segments: a bug, not a race */
			rc = err_set(STRATA_EINVAL, "merge commit: input %s is gone", job->in[i]->name);
			goto unlock;
		}
		if (pos > newest)
			newest = pos;
	}
	uint64_t n_disk = 0;
	for (uint64_t node = 0; node < count; node++) {
		const struct merge_src *s = &mo->src[node];
		if (bit_get(job->in[s->in]->tomb_disk, s->node)) {
			bit_set(mdisk, node);
			n_disk++;
		}
	}
	if (n_disk) {
		gen = atomic_fetch_add(&db->next_seq, 1);
		if ((rc = tomb_write(db->dir, mo->e.seq, mo->e.header_xxh3, gen, mdisk, count)))
			goto unlock;
		fp_step("merge.deletion_file_written");
		atomic_fetch_add(&c->bytes, tomb_file_size(count));
	}
	mo->e.tomb_gen = gen;
	if (M)
		M->entry.tomb_gen = gen;

	uint32_t nseg = cv->nseg - job->n + (M ? 1 : 0);
	nm = db->mf;
	nm.segments = calloc(nseg ? nseg : 1, sizeof *nm.segments);
	nv = db_version_new(nseg);
	if (!nm.segments || !nv) {
		rc = err_set(STRATA_ENOMEM, "merge commit");
		goto unlock;
	}
	nm.segment_count = 0;
	for (uint32_t i = 0; i < cv->nseg; i++) {
		struct db_segment *s = cv->segs[i];
		if (i == newest && M)
			nm.segments[nm.segment_count++] = mo->e;
		bool input = false;
		for (uint32_t j = 0; j < job->n; j++)
			input |= job->in[j] == s;
		if (input)
			continue;
		nm.segments[nm.segment_count++] = db->mf.segments[i];
	}
	assert(nm.segment_count == nseg);
	if ((rc = fio_fsync_dir(db->dir)))
		goto unlock;
	nm.generation++;
	nm.next_seq = atomic_load(&db->next_seq);
	if ((rc = mf_commit(db->dir, &nm))) {
		/* The rename may have happened: the merged file must stay, writes stop. */
		db_fail_writes(db, rc);
		mo->e.seq = 0;
		gen = 0;
		goto unlock;
	}
	fp_step("merge.manifest_committed");

	/* The in-memory switch: tombstones carried over as of this instant (C2). */
	pthread_rwlock_wrlock(&db->write_lock);
	struct db_version *cur = db->cur;
	bool snap = false;
	for (uint32_t i = 0; i < job->n; i++)
		snap |= job->in[i]->tomb_snap != NULL;
	if (M) {
		uint64_t n_mem = 0, n_snap = 0;
		for (uint64_t node = 0; node < count; node++) {
			const struct merge_src *s = &mo->src[node];
			const struct db_segment *in = job->in[s->in];
			if (tomb_get(in, s->node)) {
				atomic_store_explicit(&M->tomb[node / 64],
				                      atomic_load_explicit(&M->tomb[node / 64], memory_order_relaxed) |
				                              1ull << (node % 64),
				                      memory_order_relaxed);
				n_mem++;
			}
			/* A freeze since the last flush: its flush persists the bits as of the freeze. */
			if (snap && bit_get(in->tomb_snap ? in->tomb_snap : in->tomb_disk, s->node)) {
				bit_set(msnap, node);
				n_snap++;
			}
		}
		atomic_store(&M->tomb_n, n_mem);
		atomic_store(&M->tomb_saved, n_disk);
		M->tomb_disk = mdisk;
		mdisk = NULL;
		if (snap) {
			M->tomb_snap = msnap;
			M->tomb_snap_n = n_snap;
			msnap = NULL;
		}
	}
	for (uint32_t i = 0; i < cur->nseg; i++) {
		struct db_segment *s = cur->segs[i];
		if (i == newest && M) {
			nv->segs[nv->nseg++] = M;
			mo->seg = NULL; /* the version holds it now */
		}
		bool input = false;
		for (uint32_t j = 0; j < job->n; j++)
			input |= job->in[j] == s;
		if (input) {
			/* Its files go when its last reader lets go (db_segment_unref), plus the grace. */
			atomic_store(&s->retired, true);
			continue;
		}
		atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
		nv->segs[nv->nseg++] = s;
	}
	if (cur->frozen)
		mt_ref(cur->frozen);
	nv->frozen = cur->frozen;
	if (cur->active)
		mt_ref(cur->active);
	nv->active = cur->active;
	mf_free(&db->mf);
	db->mf = nm;
	nm.segments = NULL;
	db_install(db, nv);
	nv = NULL;
	pthread_rwlock_unlock(&db->write_lock);
unlock:
	db_unpin(db, cv);
	pthread_mutex_unlock(&db->mf_lock);
	if (rc && gen) { /* written for a commit that did not happen */
		char name[TOMB_NAME_LEN + 1];
		tomb_file_name(mo->e.seq, gen, name, sizeof name);
		delete_file(db, name);
	}
	if (nv)
		db_unpin(db, nv);
	free(nm.segments);
	free(mdisk);
	free(msnap);
	return rc;
}

/*
 * After merge_build (its code in rc): the commit, or the cleanup of what was
 * built. Returns 0, HNSW_ECANCELED or an error.
 */
static int merge_finish(strata_db *db, struct compactor *c, struct merge_job *job,
                        struct merge_out *mo_in, int rc, uint64_t t0)
{
	struct merge_out mo = *mo_in;
	if (!rc && atomic_load(&c->merge_cancel))
		rc = HNSW_ECANCELED;
	if (!rc)
		rc = merge_commit(db, c, job, &mo);
	if (rc && rc != HNSW_ECANCELED && mo.e.seq && mo.seg) {
		/* Built but not committed (an error before the manifest rename). */
		char name[MF_SEGMENT_NAME_LEN + 1];
		mf_segment_name(mo.e.seq, name, sizeof name);
		bool named = false;
		pthread_mutex_lock(&db->mf_lock);
		for (uint32_t i = 0; i < db->mf.segment_count; i++)
			named |= db->mf.segments[i].seq == mo.e.seq;
		pthread_mutex_unlock(&db->mf_lock);
		if (!named)
			delete_file(db, name);
	}
	if (rc == HNSW_ECANCELED && mo.e.seq) {
		char name[MF_SEGMENT_NAME_LEN + 1];
		mf_segment_name(mo.e.seq, name, sizeof name);
		delete_file(db, name);
	}
	if (!rc) {
		atomic_fetch_add(&c->merges, 1);
		atomic_fetch_add(&c->reused, mo.reused);
		atomic_fetch_add(&c->inserted, mo.inserted);
		atomic_fetch_add(&c->ns, now_ns() - t0);
	}
	merge_out_free(&mo);
	atomic_store(&c->running, false);
	return rc;
}

/* Run one job to its commit. Returns 0, HNSW_ECANCELED or an error. */
static int merge_run(strata_db *db, struct compactor *c, struct merge_job *job)
{
	uint64_t t0 = now_ns();
	struct merge_out mo = {0};
	atomic_store(&c->running, true);
	int rc = merge_build(db, c, job, &mo);
	return merge_finish(db, c, job, &mo, rc, t0);
}

/* strata_compact's merge: every segment of the current version. */
static int full_merge(strata_db *db, struct compactor *c)
{
	struct db_version *v = db_pin(db);
	struct merge_job job = {.full = true};
	int rc = 0;
	if (v->nseg == 0 || (v->nseg == 1 && atomic_load(&v->segs[0]->tomb_saved) == 0))
		goto out; /* one segment without persisted deletions: nothing to gain */
	job.in = calloc(v->nseg, sizeof *job.in);
	if (!job.in) {
		rc = err_set(STRATA_ENOMEM, "compact");
		goto out;
	}
	for (uint32_t i = 0; i < v->nseg; i++) {
		atomic_fetch_add_explicit(&v->segs[i]->refs, 1, memory_order_relaxed);
		job.in[job.n++] = v->segs[i];
	}
	db_unpin(db, v);
	v = NULL;
	rc = merge_run(db, c, &job);
out:
	job_release(&job);
	db_unpin(db, v);
	return rc;
}

/*
 * Background merges yield the CPU to queries and writes: a merge runs on a
 * thread of its own (and the graph workers it starts, which inherit its
 * policy) under SCHED_IDLE, so it gets a core only when no query, write or
 * indexing wants it. Nice +10 was measured not to be enough: on 2 cores a
 * search thread's p99 latency went from 0.2 ms to 4.4 ms during a merge (the
 * merge thread still got whole time slices on the searcher's core). Best
 * effort: if SCHED_IDLE is refused, nice +10.
 */
static void lower_priority(void)
{
	struct sched_param sp = {0};
	if (pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp) == 0)
		return;
	errno = 0;
	int nice_now = getpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid));
	if (errno == 0 && nice_now < BACKGROUND_NICE)
		setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), BACKGROUND_NICE);
}

/*
 * Merges are falling behind when some tier holds more than F segments the
 * policy could merge, or more than max_segments + 1 segments exist and some
 * of them could be merged, or the merge into the largest was due before the
 * newest segment came: a merge was due and another flush came before it was
 * done. On a machine kept busy all the time an idle-priority merge never
 * runs, and segments (each a graph walk per query) pile up without end; so
 * then merges run at normal priority and take their share of the CPU.
 */
static bool merges_behind(const struct compactor *c, const strata_db *db, const struct db_version *v)
{
	size_t area = 2 * (size_t)c->factor + v->nseg;
	struct db_segment **sel = calloc(2 * area, sizeof *sel);
	if (!sel)
		return false;
	uint32_t max_tier = top_tier(db, v);
	bool behind = (c->max_segs && v->nseg > 1 && v->nseg - 1 > c->max_segs &&
	               bound_pick(c, v, sel, sel + area) != 0) ||
	              absorb_pick(c, v, true, sel, sel + area) != 0;
	for (uint32_t t = 0; v->nseg && t <= max_tier && !behind; t++)
		behind = tier_pick(c, db, v, t, sel, sel + area) > c->factor;
	free(sel);
	return behind;
}

struct bg_merge {
	strata_db *db;
	struct compactor *c;
	struct merge_job *job;
	bool idle;
	int rc;
	struct merge_out mo;
};

static void *bg_merge_main(void *arg)
{
	struct bg_merge *m = arg;
	pthread_setname_np(pthread_self(), "strata-merge");
	if (m->idle)
		lower_priority();
	m->rc = merge_build(m->db, m->c, m->job, &m->mo);
	return NULL;
}

/*
 * Build a background merge on its own thread, idle or not, and watch it: an
 * idle merge is given up (and the next step runs it at normal priority) as
 * soon as merges fall behind. The commit runs here, at normal priority: it
 * takes the manifest and write locks, and a starved idle thread holding them
 * would stall every writer. Returns merge_run's codes.
 */
static int run_watched(strata_db *db, struct compactor *c, struct merge_job *job, bool idle,
                       bool *escalated)
{
	struct bg_merge m = {.db = db, .c = c, .job = job, .idle = idle};
	pthread_t t;
	uint64_t t0 = now_ns();
	*escalated = false;
	pthread_mutex_lock(&c->lock);
	atomic_store(&c->merge_cancel, c->stopping); /* under the lock compactor_halt takes */
	pthread_mutex_unlock(&c->lock);
	atomic_store(&c->running, true);
	if (pthread_create(&t, NULL, bg_merge_main, &m) != 0) {
		m.idle = false; /* no thread: this one, at its normal priority */
		bg_merge_main(&m);
		return merge_finish(db, c, job, &m.mo, m.rc, t0);
	}
	/*
	 * Starved: the merge thread got less than a quarter of a core over the
	 * last second. An idle merge that is getting CPU is left to finish, even
	 * when behind: starting it again would throw its work away.
	 */
	clockid_t cpu_clock;
	bool have_clock = pthread_getcpuclockid(t, &cpu_clock) == 0;
	uint64_t win_wall = now_ns(), win_cpu = have_clock ? clock_ns(cpu_clock) : 0;
	bool starved = !have_clock;
	for (;;) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += WATCH_MS * 1000000L;
		ts.tv_sec += ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		if (pthread_timedjoin_np(t, NULL, &ts) == 0)
			break;
		if (!idle || *escalated)
			continue;
		uint64_t wall = now_ns();
		if (have_clock && wall - win_wall >= STARVED_WINDOW_NS) {
			uint64_t cpu = clock_ns(cpu_clock);
			starved = (cpu - win_cpu) * 4 < wall - win_wall;
			win_wall = wall;
			win_cpu = cpu;
		}
		if (!starved)
			continue;
		struct db_version *v = db_pin(db);
		bool behind = merges_behind(c, db, v);
		db_unpin(db, v);
		if (behind) {
			*escalated = true;
			atomic_store(&c->merge_cancel, 1);
		}
	}
	return merge_finish(db, c, job, &m.mo, m.rc, t0);
}

/* One background job if the policy has one. Returns true when it ran one. */
static bool background_step(strata_db *db, struct compactor *c)
{
	pthread_mutex_lock(&c->merge_lock);
	struct db_version *v = db_pin(db);
	struct merge_job job = {0};
	int rc = policy_pick(c, db, v, &job, NULL);
	bool idle = !merges_behind(c, db, v), escalated = false;
	db_unpin(db, v);
	if (!rc && job.n)
		rc = run_watched(db, c, &job, idle, &escalated);
	pthread_mutex_unlock(&c->merge_lock);
	bool none = !rc && job.n == 0;
	job_release(&job);
	if (none)
		return false;
	if (escalated && rc == HNSW_ECANCELED) {
		atomic_fetch_add(&c->escalated, 1);
		return true; /* again at once: now behind, so at normal priority */
	}
	pthread_mutex_lock(&c->lock);
	if (rc && rc != HNSW_ECANCELED) {
		atomic_fetch_add(&c->errors, 1);
		atomic_store(&c->last_error, rc);
		c->retry_ms = c->retry_ms ? c->retry_ms * 2 : RETRY_MIN_MS;
		if (c->retry_ms > RETRY_MAX_MS)
			c->retry_ms = RETRY_MAX_MS;
		c->retry_at_ns = now_ns() + (uint64_t)c->retry_ms * 1000000ull;
	} else {
		c->retry_ms = 0;
	}
	pthread_mutex_unlock(&c->lock);
	return rc == 0;
}

static void *compactor_main(void *arg)
{
	strata_db *db = arg;
	struct compactor *c = db->compactor;
	pthread_setname_np(pthread_self(), "strata-compact");
	pthread_mutex_lock(&c->lock);
	while (!c->stopping) {
		sweep_retired(db, c, false);
		if (c->background && now_ns() >= c->retry_at_ns) {
			pthread_mutex_unlock(&c->lock);
			bool ran = background_step(db, c);
			pthread_mutex_lock(&c->lock);
			if (ran)
				continue;
		}
		if (!c->poked && !c->stopping) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += IDLE_WAIT_MS * 1000000L;
			ts.tv_sec += ts.tv_nsec / 1000000000L;
			ts.tv_nsec %= 1000000000L;
			pthread_cond_timedwait(&c->cond, &c->lock, &ts);
		}
		c->poked = false;
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

int compactor_check_options(const strata_options *o)
{
	if (o->merge_factor == 1 || o->merge_factor > MERGE_FACTOR_MAX)
		return err_set(STRATA_EINVAL, "merge_factor %u is outside 2..%u", o->merge_factor,
		               MERGE_FACTOR_MAX);
	if (o->tombstone_pct > 100)
		return err_set(STRATA_EINVAL, "tombstone_pct %u is above 100", o->tombstone_pct);
	if (o->merge_into_largest_pct > MERGE_INTO_LARGEST_MAX)
		return err_set(STRATA_EINVAL, "merge_into_largest_pct %u is above %u",
		               o->merge_into_largest_pct, MERGE_INTO_LARGEST_MAX);
	return 0;
}

int compactor_start(strata_db *db)
{
	const strata_options *o = &db->opts;
	struct compactor *c = calloc(1, sizeof *c);
	if (!c)
		return err_set(STRATA_ENOMEM, "compactor");
	pthread_mutex_init(&c->lock, NULL);
	pthread_mutex_init(&c->merge_lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	c->factor = factor_of(db);
	c->max_live = o->max_segment_vectors;
	c->max_segs = o->max_segments;
	c->absorb_pct = o->merge_into_largest_pct;
	c->tomb_pct = o->tombstone_pct ? o->tombstone_pct : TOMB_PCT_DEFAULT;
	c->threads = o->compaction_threads ? o->compaction_threads : 1;
	c->background = !o->disable_background_merges;
	db->compactor = c;
	if (pthread_create(&c->thread, NULL, compactor_main, db) != 0) {
		db->compactor = NULL;
		pthread_cond_destroy(&c->cond);
		pthread_mutex_destroy(&c->merge_lock);
		pthread_mutex_destroy(&c->lock);
		free(c);
		return err_set(STRATA_ENOMEM, "starting the compactor thread");
	}
	c->started = true;
	return 0;
}

void compactor_halt(strata_db *db)
{
	struct compactor *c = db->compactor;
	if (!c || !c->started)
		return;
	atomic_store(&c->cancel, 1);
	atomic_store(&c->merge_cancel, 1);
	pthread_mutex_lock(&c->lock);
	c->stopping = true;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	pthread_join(c->thread, NULL);
	c->started = false;
}

void compactor_free(strata_db *db)
{
	struct compactor *c = db->compactor;
	if (!c)
		return;
	compactor_halt(db);
	sweep_retired(db, c, true);
	db->compactor = NULL;
	free(c->retired);
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->merge_lock);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

void compactor_poke(strata_db *db)
{
	struct compactor *c = db->compactor;
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	c->poked = true;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

int strata_compact(strata_db *db)
{
	err_clear();
	if (!db)
		return err_set(STRATA_EINVAL, "strata_compact: null database");
	if (db->flags & STRATA_READONLY)
		return err_set(STRATA_EREADONLY, "strata_compact: the database is open read-only");
	int rc = strata_flush(db);
	if (rc)
		return rc;
	struct compactor *c = db->compactor;
	if (!c)
		return err_set(STRATA_EINVAL, "strata_compact: the handle has no compactor");
	pthread_mutex_lock(&c->merge_lock); /* waits for a background merge to finish */
	pthread_mutex_lock(&c->lock);
	atomic_store(&c->merge_cancel, c->stopping); /* not a background merge's give-up */
	pthread_mutex_unlock(&c->lock);
	rc = full_merge(db, c);
	pthread_mutex_unlock(&c->merge_lock);
	if (rc == HNSW_ECANCELED)
		rc = err_set(STRATA_EINVAL, "compact: the database is being closed");
	return rc;
}

void compactor_stats(strata_db *db, struct strata_stats *out)
{
	struct db_version *v = db_pin(db);
	for (uint32_t i = 0; i < v->nseg; i++) {
		uint32_t t = compactor_tier(db, seg_live_persisted(v->segs[i]));
		out->tier_segments[t < 7 ? t : 7]++;
	}
	struct compactor *c = db->compactor;
	if (c) {
		uint32_t pending = 0;
		if (c->background && policy_pick(c, db, v, NULL, &pending) == 0)
			out->compaction_pending = pending;
		out->compaction_running = atomic_load(&c->running);
		out->merges_behind = merges_behind(c, db, v);
		out->merges_escalated = atomic_load(&c->escalated);
		out->merges = atomic_load(&c->merges);
		out->merge_errors = atomic_load(&c->errors);
		out->last_merge_error = atomic_load(&c->last_error);
		out->merge_seconds = (double)atomic_load(&c->ns) / 1e9;
		out->merge_reused_nodes = atomic_load(&c->reused);
		out->merge_inserted_nodes = atomic_load(&c->inserted);
		out->compaction_bytes = atomic_load(&c->bytes);
		pthread_mutex_lock(&c->lock);
		out->obsolete_files = (uint32_t)c->n_retired;
		pthread_mutex_unlock(&c->lock);
	}
	db_unpin(db, v);
	out->ingest_bytes = out->upserts * (uint64_t)db->dim * sizeof(float);
	if (out->ingest_bytes)
		out->write_amplification =
		        (double)(out->wal_bytes + out->flush_bytes + out->compaction_bytes) /
		        (double)out->ingest_bytes;
}
