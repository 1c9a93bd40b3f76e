/*
 * write.c - the write path: strata_upsert / strata_delete (WAL append, then
 * memtable apply), strata_sync, strata_flush, the indexer and flusher
 * threads, and WAL replay at open.
 *
 * Ordering, per write: reserve memtable room -> WAL append (durable per the
 * sync mode) -> apply to the memtable and hide older copies (tombstones in
 * segments, dead bits in the frozen memtable). The caller holds write_lock
 * shared throughout, so a freeze (exclusive) sees every logged record applied:
 * the frozen memtable plus the segments then hold exactly the records up to
 * the checkpoint LSN, and tombstone snapshots taken at the freeze match it.
 *
 * Flush (flusher thread): finish indexing the frozen memtable, compact its
 * graph without the rows dead as of the checkpoint, write the segment
 * (fsynced), the changed deletion files, fsync the directory, commit the
 * manifest with the checkpoint, then switch the version and remove the WAL
 * files wholly at or below the checkpoint. A crash anywhere before the
 * manifest commit leaves the old manifest and the WAL: replay rebuilds the
 * same content; after it, the new files are named and the WAL past the
 * checkpoint still replays on top.
 */
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>

#include "compactor.h"
#include "db.h"
#include "err.h"
#include "failpoint.h"
#include "fio.h"
#include "seg_hang.h"
#include "tombstone.h"
#include "wal.h"
#include "wal_record.h"

/* Rows per WAL record: an upsert call larger than this is logged as several records. */
#define CHUNK_ROWS 16384u

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void deadline_in(struct timespec *ts, long ms)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_nsec += ms * 1000000L;
	ts->tv_sec += ts->tv_nsec / 1000000000L;
	ts->tv_nsec %= 1000000000L;
}

/*
 * The WAL failed with `rc` (the current error detail says how): every later
 * write returns it, and stats report it (write_error, write_error_detail).
 * The first failure wins; it is published after its detail. Returns rc.
 */
static int db_fail(strata_db *db, int rc)
{
	int no = 0;
	if (atomic_compare_exchange_strong(&db->fail_claimed, &no, 1)) {
		snprintf(db->fail_detail, sizeof db->fail_detail, "%s", err_detail());
		atomic_store(&db->failed, rc);
	}
	return rc;
}

static int write_refused(strata_db *db)
{
	int f = atomic_load(&db->failed);
	if (f)
		return err_set(f, "the WAL failed earlier (%s); the database accepts no more writes "
		                  "(reopen it to recover what was acknowledged)", db->fail_detail);
	pthread_mutex_lock(&db->flush_lock);
	int rc = db->bg_error;
	if (rc)
		err_set(rc, "a flush failed earlier: %s", db->bg_detail);
	pthread_mutex_unlock(&db->flush_lock);
	return rc;
}

/* ---- apply ------------------------------------------------------------------ */

static void raise_lsn(_Atomic uint64_t *a, uint64_t lsn)
{
	uint64_t cur = atomic_load_explicit(a, memory_order_relaxed);
	while (cur < lsn && !atomic_compare_exchange_weak_explicit(a, &cur, lsn, memory_order_relaxed,
	                                                           memory_order_relaxed))
		;
}

static void seg_kill(struct db_segment *s, uint32_t node)
{
	uint64_t bit = 1ull << (node % 64);
	uint64_t was = atomic_fetch_or_explicit(&s->tomb[node / 64], bit, memory_order_relaxed);
	if (!(was & bit))
		atomic_fetch_add_explicit(&s->tomb_n, 1, memory_order_relaxed);
}

/*
 * Every copy of ids[i] older than the write just applied to the active
 * memtable goes: the frozen memtable's and the segments'. Everything there is
 * older than anything in the active memtable (the freeze saw to it).
 */
static void hide_older(struct db_version *v, const uint64_t *ids, size_t n, const bool *applied)
{
	for (size_t i = 0; i < n; i++) {
		if (!applied[i])
			continue;
		if (v->frozen)
			mt_kill_id(v->frozen, ids[i]);
		for (uint32_t j = 0; j < v->nseg; j++) {
			uint32_t node;
			if (seg_id_find(&v->segs[j]->info, ids[i], &node) == 0)
				seg_kill(v->segs[j], node);
		}
	}
}

/* Apply one logged record to the current version; room was reserved. write_lock held (shared). */
static void apply(strata_db *db, uint64_t lsn, unsigned type, const uint64_t *ids, const float *vecs,
                  size_t n, bool *applied)
{
	struct db_version *v = db->cur;
	if (type == WAL_REC_UPSERT) {
		mt_apply_upsert(v->active, lsn, ids, vecs, n, applied);
		atomic_fetch_add_explicit(&db->upserts, n, memory_order_relaxed);
	} else {
		mt_apply_delete(v->active, lsn, ids, n, applied);
		atomic_fetch_add_explicit(&db->deletes, n, memory_order_relaxed);
	}
	hide_older(v, ids, n, applied);
	raise_lsn(&db->applied_lsn, lsn);
}

/* ---- freeze and flush ----------------------------------------------------------- */

static int new_memtable(strata_db *db, size_t capacity, struct memtable **out)
{
	return mt_new(&db->gp, capacity, out);
}

static uint64_t *bits_copy(_Atomic uint64_t *src, size_t words)
{
	uint64_t *b = malloc((words ? words : 1) * sizeof *b);
	if (b)
		for (size_t i = 0; i < words; i++)
			b[i] = atomic_load_explicit(&src[i], memory_order_relaxed);
	return b;
}

/*
 * Freeze the active memtable: it becomes the frozen one (the flusher writes
 * it), a new one takes writes. Waits while an earlier flush is still running
 * (back-pressure). Nothing logged since the last checkpoint: nothing to do.
 * `capacity`: rows of the new memtable (0 = the configured size).
 */
static int freeze(strata_db *db, size_t capacity)
{
	pthread_mutex_lock(&db->flush_lock);
	uint64_t t0 = 0;
	while (db->checkpoint_pending && !db->bg_error && !db->stopping) {
		if (!t0) {
			t0 = now_ns();
			atomic_fetch_add_explicit(&db->write_stalls, 1, memory_order_relaxed);
		}
		pthread_cond_wait(&db->flush_cond, &db->flush_lock);
	}
	if (t0)
		atomic_fetch_add_explicit(&db->stall_ns, now_ns() - t0, memory_order_relaxed);
	int rc = db->bg_error;
	if (rc || db->stopping) {
		if (rc)
			err_set(rc, "a flush failed earlier: %s", db->bg_detail);
		pthread_mutex_unlock(&db->flush_lock);
		return rc ? rc : err_set(STRATA_EINVAL, "the database is closing");
	}
	struct memtable *fresh = NULL;
	if ((rc = new_memtable(db, capacity ? capacity : db->mt_capacity, &fresh))) {
		pthread_mutex_unlock(&db->flush_lock);
		return rc;
	}

	pthread_rwlock_wrlock(&db->write_lock);
	struct db_version *cur = db->cur;
	uint64_t last = atomic_load(&db->applied_lsn);
	struct db_version *nv = NULL;
	uint64_t *drop = NULL;
	if (last <= atomic_load(&db->checkpoint_lsn)) {
		rc = 0; /* nothing new since the last flush */
		goto out;
	}
	size_t rows = mt_rows(cur->active);
	drop = bits_copy(cur->active->dead, rows / 64 + 1);
	nv = db_version_new(cur->nseg);
	if (!drop || !nv) {
		rc = err_set(STRATA_ENOMEM, "freezing the memtable");
		goto out;
	}
	/* Rotate first: files before the new one then hold only records up to `last`. */
	if (db->wal && (rc = wal_rotate(db->wal))) {
		db_fail(db, rc);
		goto out;
	}
	for (uint32_t i = 0; i < cur->nseg; i++) {
		struct db_segment *s = cur->segs[i];
		atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
		nv->segs[i] = s;
		uint64_t n = atomic_load(&s->tomb_n);
		free(s->tomb_snap);
		s->tomb_snap = NULL;
		if (n != atomic_load(&s->tomb_saved)) {
			s->tomb_snap = bits_copy(s->tomb, (size_t)(s->info.count / 64 + 1));
			s->tomb_snap_n = n;
			if (!s->tomb_snap) {
				rc = err_set(STRATA_ENOMEM, "tombstone snapshot");
				goto out;
			}
		}
	}
	nv->nseg = cur->nseg;
	mt_ref(cur->active);
	nv->frozen = cur->active;
	nv->active = fresh;
	fresh = NULL;
	free(db->frozen_drop);
	db->frozen_drop = drop;
	drop = NULL;
	db->checkpoint_pending = last;
	db_install(db, nv);
	nv = NULL;
out:
	pthread_rwlock_unlock(&db->write_lock);
	if (nv)
		db_unpin(db, nv);
	mt_unref(fresh);
	free(drop);
	if (!rc) {
		pthread_cond_broadcast(&db->work_cond);
		pthread_cond_broadcast(&db->index_cond);
	}
	pthread_mutex_unlock(&db->flush_lock);
	return rc;
}

/* The frozen memtable, without the rows dead at the freeze, as segment `seq`. */
static int write_frozen(strata_db *db, struct memtable *fz, const uint64_t *drop, uint64_t seq,
                        struct mf_segment *e, uint32_t **old_of_new_out, bool *empty)
{
	size_t rows = mt_rows(fz);
	struct hnsw_view v;
	hnsw_graph_view(fz->g, &v); /* frozen and fully indexed: no locks needed */
	v.count = (uint32_t)rows;
	struct hnsw_graph *g = NULL;
	uint32_t *old_of_new = NULL;
	uint64_t *node_ids = NULL;
	char *path = NULL;
	int rc = hnsw_graph_compact(&v, drop, db->gp.threads, &g, &old_of_new);
	if (rc)
		return rc;
	struct hnsw_view gv;
	hnsw_graph_view(g, &gv);
	*empty = gv.count == 0;
	if (*empty)
		goto out;
	node_ids = malloc((size_t)gv.count * sizeof *node_ids);
	char name[MF_SEGMENT_NAME_LEN + 1];
	mf_segment_name(seq, name, sizeof name);
	path = db_path(db, name);
	if (!node_ids || !path) {
		rc = err_set(STRATA_ENOMEM, "flush of %u vectors", gv.count);
		goto out;
	}
	for (uint32_t i = 0; i < gv.count; i++)
		node_ids[i] = fz->ids[old_of_new[i]];
	fp_step("flush.writing_segment");
	fio_discard(path); /* a file of a flush that crashed before its commit */
	rc = db_write_graph(path, db->dim, db->metric, db->M, db->ef_construction, db->opts.seed, &gv,
	                    node_ids, gv.count, &e->header_xxh3, &e->file_size);
	if (rc)
		goto out;
	e->seq = seq;
	e->count = gv.count;
	e->tomb_gen = 0;
	e->level = compactor_tier(db, gv.count);
	atomic_fetch_add_explicit(&db->flush_bytes, e->file_size, memory_order_relaxed);
out:
	free(path);
	free(node_ids);
	hnsw_graph_free(g);
	if (rc || *empty) {
		free(old_of_new);
		old_of_new = NULL;
	}
	*old_of_new_out = old_of_new;
	return rc;
}

/*
 * Commit a flush: under mf_lock, a manifest derived from the current one (a
 * merge may have replaced segments since the freeze) with the deletion files
 * of the segments whose tombstones changed before the freeze, the new
 * segment `e` (unless `empty`) and the checkpoint; then the version to match.
 * *old_gens_out lists the deletion files it made obsolete (seq, gen pairs).
 */
static int flush_commit(strata_db *db, struct memtable *fz, const struct mf_segment *e, bool empty,
                        const uint32_t *old_of_new, struct seg_anchors **carried,
                        uint64_t **old_gens_out, uint32_t *n_old_out)
{
	struct mf_manifest nm = {0};
	struct db_segment *newseg = NULL;
	uint64_t *old = NULL; /* pairs (seg seq, old gen) */
	uint32_t n_old = 0;
	int rc = 0;
	pthread_mutex_lock(&db->mf_lock);
	struct db_version *cv = db_pin(db);
	nm = db->mf;
	nm.segments = calloc((size_t)cv->nseg + 1, sizeof *nm.segments);
	old = calloc(2 * ((size_t)cv->nseg + 1), sizeof *old);
	if (!nm.segments || !old) {
		rc = err_set(STRATA_ENOMEM, "flush");
		goto done;
	}
	assert(cv->nseg == db->mf.segment_count);
	nm.segment_count = cv->nseg;
	uint64_t tomb_bytes = 0;
	for (uint32_t i = 0; i < cv->nseg; i++) {
		struct db_segment *s = cv->segs[i];
		assert(s->entry.seq == db->mf.segments[i].seq);
		nm.segments[i] = s->entry;
		if (!s->tomb_snap)
			continue;
		/* Generations share the counter with segment seqs: never reused. */
		uint64_t gen = atomic_fetch_add(&db->next_seq, 1);
		rc = tomb_write(db->dir, s->entry.seq, s->entry.header_xxh3, gen, s->tomb_snap,
		                s->info.count);
		if (rc)
			goto done;
		tomb_bytes += tomb_file_size(s->info.count);
		if (s->entry.tomb_gen) {
			old[2 * n_old] = s->entry.seq;
			old[2 * n_old + 1] = s->entry.tomb_gen;
			n_old++;
		}
		nm.segments[i].tomb_gen = gen;
	}
	fp_step("flush.deletion_files_written");
	atomic_fetch_add_explicit(&db->flush_bytes, tomb_bytes, memory_order_relaxed);
	if (!empty)
		nm.segments[nm.segment_count++] = *e;
	if ((rc = fio_fsync_dir(db->dir)))
		goto done;
	fp_step("flush.dir_synced");
	nm.checkpoint_lsn = db->checkpoint_pending;
	nm.generation++;
	nm.next_seq = atomic_load(&db->next_seq);
	if ((rc = mf_commit(db->dir, &nm)))
		goto done;
	fp_step("flush.manifest_committed");
	if (!empty && (rc = db_segment_open(db, e, &newseg)))
		goto done; /* committed but unreadable: the next open reports it */
	if (newseg) {
		db_segment_warm(newseg);
		atomic_store_explicit(&newseg->anchors, *carried, memory_order_relaxed); /* not searched yet */
		*carried = NULL;
	}

	/* Switch: the new segment replaces the frozen memtable. */
	pthread_rwlock_wrlock(&db->write_lock);
	struct db_version *cur = db->cur;
	struct db_version *nv = db_version_new(cur->nseg + 1);
	if (!nv) {
		pthread_rwlock_unlock(&db->write_lock);
		rc = err_set(STRATA_ENOMEM, "flush");
		goto done;
	}
	for (uint32_t i = 0; i < cur->nseg; i++) {
		struct db_segment *s = cur->segs[i];
		atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
		nv->segs[nv->nseg++] = s;
		s->entry.tomb_gen = nm.segments[i].tomb_gen;
		if (s->tomb_snap) {
			atomic_store(&s->tomb_saved, s->tomb_snap_n);
			free(s->tomb_disk);
			s->tomb_disk = s->tomb_snap;
			s->tomb_snap = NULL;
		}
	}
	if (newseg) {
		/* Rows killed after the freeze (newer writes): tombstones, saved by the next flush. */
		for (uint32_t i = 0; i < (uint32_t)newseg->info.count; i++)
			if (mt_is_dead(fz, old_of_new[i]))
				seg_kill(newseg, i);
		nv->segs[nv->nseg++] = newseg;
		newseg = NULL;
	}
	mt_ref(cur->active);
	nv->active = cur->active;
	mf_free(&db->mf);
	db->mf = nm;
	nm.segments = NULL;
	atomic_store(&db->checkpoint_lsn, db->mf.checkpoint_lsn);
	db_install(db, nv);
	pthread_rwlock_unlock(&db->write_lock);
done:
	db_unpin(db, cv);
	pthread_mutex_unlock(&db->mf_lock);
	free(nm.segments);
	db_segment_unref(newseg);
	if (rc) {
		free(old);
		old = NULL;
		n_old = 0;
	}
	*old_gens_out = old;
	*n_old_out = n_old;
	return rc;
}

/*
 * The frozen memtable's rows as anchors of the segment they are flushed to
 * (memtable.h, seg_anchors), the rows the indexer had not hung yet hung now,
 * or NULL: none hung, or their segment merged away since. Out of memory too:
 * the flushed segment is then walked, as any other.
 */
static struct seg_anchors *anchors_carry(const struct db_version *v, struct memtable *fz,
                                         const uint32_t *old_of_new, uint32_t n)
{
	const struct mt_anchors *a = atomic_load_explicit(&fz->anchors, memory_order_acquire);
	const struct db_segment *under = NULL;
	for (uint32_t i = 0; a && i < v->nseg && !under; i++)
		if (v->segs[i]->entry.seq == a->seg_seq)
			under = v->segs[i];
	if (!under)
		return NULL;
	struct hnsw_scratch *hs = hnsw_scratch_new();
	struct seg_anchors *c = NULL;
	if (hs && mt_anchor(fz, under->entry.seq, &under->view, under->tomb, hs, 0, NULL) == 0)
		(void)mt_anchors_carry(fz, old_of_new, n, &c);
	hnsw_scratch_free(hs);
	return c;
}

/* Flush the frozen memtable (flusher thread, or replay before the threads start). */
static int flush_frozen(strata_db *db)
{
	struct db_version *v = db_pin(db);
	struct memtable *fz = v->frozen;
	uint32_t *old_of_new = NULL;
	uint64_t *old_gens = NULL;
	uint32_t n_old = 0;
	struct seg_anchors *carried = NULL;
	bool empty = true;
	int rc = 0;
	if (!fz)
		goto done;
	if ((rc = mt_index(fz, 0)))
		goto done;
	struct mf_segment e = {0};
	uint64_t seq = atomic_fetch_add(&db->next_seq, 1);
	if ((rc = write_frozen(db, fz, db->frozen_drop, seq, &e, &old_of_new, &empty)))
		goto done;
	fp_step("flush.segment_written");
	if (!empty && db->anchors)
		carried = anchors_carry(v, fz, old_of_new, (uint32_t)e.count);
	if ((rc = flush_commit(db, fz, &e, empty, old_of_new, &carried, &old_gens, &n_old)))
		goto done;

	atomic_fetch_add_explicit(&db->flushes, 1, memory_order_relaxed);
	if (db->wal)
		wal_remove_upto(db->wal, atomic_load(&db->checkpoint_lsn)); /* failure leaves files replay skips */
	for (uint32_t i = 0; i < n_old; i++) {
		char name[TOMB_NAME_LEN + 1];
		tomb_file_name(old_gens[2 * i], old_gens[2 * i + 1], name, sizeof name);
		compactor_retire(db, name);
	}
	compactor_poke(db);
done:
	seg_anchors_free(carried);
	free(old_gens);
	free(old_of_new);
	db_unpin(db, v);
	return rc;
}

void db_fail_writes(strata_db *db, int rc)
{
	pthread_mutex_lock(&db->flush_lock);
	if (!db->bg_error) {
		db->bg_error = rc;
		snprintf(db->bg_detail, sizeof db->bg_detail, "%s", err_detail());
	}
	pthread_cond_broadcast(&db->flush_cond);
	pthread_mutex_unlock(&db->flush_lock);
}

static void *flusher_main(void *arg)
{
	strata_db *db = arg;
	pthread_setname_np(pthread_self(), "strata-flush");
	pthread_mutex_lock(&db->flush_lock);
	while (!db->stopping) {
		if (db->checkpoint_pending && !db->bg_error) {
			pthread_mutex_unlock(&db->flush_lock);
			int rc = flush_frozen(db);
			pthread_mutex_lock(&db->flush_lock);
			if (rc) {
				db->bg_error = rc;
				snprintf(db->bg_detail, sizeof db->bg_detail, "%s", err_detail());
			} else {
				db->checkpoint_pending = 0;
			}
			pthread_cond_broadcast(&db->flush_cond);
			continue;
		}
		if (db->prefault_pending) {
			db->prefault_pending = false;
			pthread_mutex_unlock(&db->flush_lock);
			struct db_version *v = db_pin(db);
			mt_prefault(v->active);
			db_unpin(db, v);
			pthread_mutex_lock(&db->flush_lock);
			continue;
		}
		pthread_cond_wait(&db->work_cond, &db->flush_lock);
	}
	pthread_mutex_unlock(&db->flush_lock);
	return NULL;
}

/*
 * The indexer (and the graph workers it starts, which inherit the policy)
 * runs under SCHED_BATCH: the same CPU share as any thread, so it is never
 * starved, but a writer or query that wakes up is not kept waiting for the
 * end of the indexer's time slice. A writer sleeps in every fdatasync, and
 * with the indexer's two threads on both cores it waited milliseconds per
 * batch to get a core back. Measured on 2 cores (runs alternated, noisy):
 * batches of 1,000 SIFT rows 178-193k -> 275-323k vectors/s in a small
 * driver, 143-171k -> 172-208k in strata-ingest-bench; one vector per call
 * 2.3-2.5k -> 2.7-3.1k. SCHED_IDLE did better still for writers but could
 * starve the indexer (writers then stall on back-pressure for good) and
 * leave a node lock held by a thread that never runs. Best effort: if
 * refused, the indexer runs as before.
 */
static void indexer_policy(void)
{
	struct sched_param sp = {0};
	pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp);
}

/*
 * The indexer works in rounds of at most this many rows and looks for
 * strata_close between them: a close must not wait for the indexing of a
 * whole memtable (after replaying a long WAL) that it throws away.
 * Measured, closing right after replaying 1M records at ef_construction 20:
 * 11.7 s with one round for all of them, 0.01 s in rounds. A round is well
 * under a second of work.
 */
#define INDEX_ROUND_ROWS 2048
/* Anchoring a row is ~1/15 of its insertion: rounds of as many rows' worth of time. */
#define ANCHOR_ROUND_ROWS (15 * INDEX_ROUND_ROWS)

/*
 * Hang the active memtable's appended rows under the segment searches walk
 * first (search.c's order: most live vectors, ties to the earlier one), one
 * round of rows; whether any row was hung. Not while the memtable is the
 * larger: it is then searched first and its anchors would go unused.
 */
static bool anchor_round(const strata_db *db, struct db_version *v, struct hnsw_scratch *hs)
{
	struct memtable *mt = v->active;
	if (!db->anchors)
		return false;
	uint64_t big_live;
	const struct db_segment *big = db_largest(v, &big_live);
	if (!mt || !hs || !big || big_live < mt_live(mt))
		return false;
	bool progress = false;
	/* Out of memory: no anchors, and searches walk the memtable's graph as before. */
	(void)mt_anchor(mt, big->entry.seq, &big->view, big->tomb, hs, ANCHOR_ROUND_ROWS, &progress);
	return progress;
}

static void *indexer_main(void *arg)
{
	strata_db *db = arg;
	struct hnsw_scratch *anchor_hs = hnsw_scratch_new(); /* NULL: no anchors */
	struct seg_hang hang = {0};
	indexer_policy();
	pthread_setname_np(pthread_self(), "strata-index"); /* its graph workers inherit the name */
	for (;;) {
		pthread_mutex_lock(&db->flush_lock);
		bool stop = db->stopping;
		pthread_mutex_unlock(&db->flush_lock);
		if (stop)
			break;
		struct db_version *v = db_pin(db);
		/* Anchors first: a row costs them a short walk, the graph a full insertion. */
		bool anchored = anchor_round(db, v, anchor_hs);
		bool work = mt_needs_index(v->active);
		if (work && mt_index(v->active, INDEX_ROUND_ROWS) != 0)
			work = false; /* out of memory for scratch: the tail stays scanned exactly */
		work = work || anchored;
		/* Segments last: searches walk them meanwhile, as before anchors (seg_hang.c). */
		if (!work && db->anchors && anchor_hs)
			work = seg_hang_round(&hang, v, anchor_hs, ANCHOR_ROUND_ROWS);
		pthread_mutex_lock(&db->flush_lock);
		pthread_cond_broadcast(&db->flush_cond);
		if (!work && !db->stopping) {
			/*
			 * Say so, then look again: a writer appends its rows, then reads
			 * the flag (write_record), so either it signals or its rows are
			 * seen here. (A freeze meanwhile broadcasts.) The timeout is a
			 * backstop only.
			 */
			atomic_store_explicit(&db->indexer_waiting, true, memory_order_relaxed);
			atomic_thread_fence(memory_order_seq_cst);
			if (!mt_needs_index(v->active)) {
				struct timespec ts;
				deadline_in(&ts, 20);
				pthread_cond_timedwait(&db->index_cond, &db->flush_lock, &ts);
			}
			atomic_store_explicit(&db->indexer_waiting, false, memory_order_relaxed);
		}
		pthread_mutex_unlock(&db->flush_lock);
		db_unpin(db, v);
	}
	seg_hang_drop(&hang);
	hnsw_scratch_free(anchor_hs);
	return NULL;
}

/* ---- writes ----------------------------------------------------------------- */

static void wait_for_indexer(strata_db *db)
{
	uint64_t t0 = now_ns();
	atomic_fetch_add_explicit(&db->write_stalls, 1, memory_order_relaxed);
	pthread_mutex_lock(&db->flush_lock);
	pthread_cond_broadcast(&db->index_cond);
	struct timespec ts;
	deadline_in(&ts, 50);
	pthread_cond_timedwait(&db->flush_cond, &db->flush_lock, &ts);
	pthread_mutex_unlock(&db->flush_lock);
	atomic_fetch_add_explicit(&db->stall_ns, now_ns() - t0, memory_order_relaxed);
}

/* Log and apply one record of n rows (upsert: vecs non-NULL). */
static int write_record(strata_db *db, unsigned type, const uint64_t *ids, const float *vecs, size_t n,
                        bool *applied)
{
	size_t rows = type == WAL_REC_UPSERT ? n : 0;
	for (;;) {
		int rc = write_refused(db);
		if (rc)
			return rc;
		pthread_rwlock_rdlock(&db->write_lock);
		struct memtable *mt = db->cur->active;
		if (rows && mt_rows(mt) - hnsw_graph_indexed(mt->g) > db->tail_max && db->threads_started) {
			pthread_rwlock_unlock(&db->write_lock);
			wait_for_indexer(db);
			continue;
		}
		rc = mt_reserve(mt, rows, n);
		if (rc == STRATA_ELIMIT) {
			pthread_rwlock_unlock(&db->write_lock);
			if ((rc = freeze(db, 0)))
				return rc;
			continue;
		}
		if (rc) {
			pthread_rwlock_unlock(&db->write_lock);
			return rc;
		}
		uint32_t head[2] = {(uint32_t)n, type == WAL_REC_UPSERT ? db->dim : 0};
		struct iovec iov[3] = {
			{.iov_base = head, .iov_len = sizeof head},
			{.iov_base = (void *)ids, .iov_len = n * sizeof *ids},
			{.iov_base = (void *)vecs, .iov_len = rows * db->dim * sizeof(float)},
		};
		uint64_t lsn;
		rc = wal_append(db->wal, type, iov, rows ? 3 : 2, &lsn);
		if (rc) {
			mt_unreserve(mt, rows, n);
			db_fail(db, rc);
			pthread_rwlock_unlock(&db->write_lock);
			return rc;
		}
		apply(db, lsn, type, ids, vecs, n, applied);
		bool prefault = rows && mt_prefault_due(mt);
		pthread_rwlock_unlock(&db->write_lock);
		if (prefault) {
			pthread_mutex_lock(&db->flush_lock);
			db->prefault_pending = true;
			pthread_cond_broadcast(&db->work_cond);
			pthread_mutex_unlock(&db->flush_lock);
		}
		atomic_thread_fence(memory_order_seq_cst); /* the rows before the flag: indexer_main */
		if (rows && atomic_load_explicit(&db->indexer_waiting, memory_order_relaxed)) {
			pthread_mutex_lock(&db->flush_lock);
			pthread_cond_signal(&db->index_cond);
			pthread_mutex_unlock(&db->flush_lock);
		}
		return 0;
	}
}

static int check_writable(strata_db *db, const char *what)
{
	if (!db)
		return err_set(STRATA_EINVAL, "%s: null database", what);
	if (db->flags & STRATA_READONLY)
		return err_set(STRATA_EREADONLY, "%s: the database is open read-only", what);
	return 0;
}

static int check_ids(const uint64_t *ids, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (ids[i] == STRATA_NO_ID)
			return err_set(STRATA_EINVAL, "id at index %zu is STRATA_NO_ID (reserved)", i);
	return 0;
}

static size_t chunk_rows(strata_db *db)
{
	size_t c = CHUNK_ROWS;
	size_t cap = db->mt_capacity / 2 ? db->mt_capacity / 2 : 1;
	size_t by_size = (WAL_RECORD_MAX - 4096) / ((size_t)db->dim * 4 + 8);
	if (c > cap)
		c = cap;
	if (c > by_size)
		c = by_size;
	return c ? c : 1;
}

int strata_upsert(strata_db *db, const uint64_t *ids, const float *vectors, size_t n)
{
	err_clear();
	int rc = check_writable(db, "strata_upsert");
	if (rc)
		return rc;
	if (n == 0)
		return 0;
	if (!ids || !vectors)
		return err_set(STRATA_EINVAL, "strata_upsert: %zu vectors but a null array", n);
	if ((rc = check_ids(ids, n)))
		return rc;
	const uint32_t dim = db->dim;
	for (size_t r = 0; r < n; r++)
		for (uint32_t j = 0; j < dim; j++)
			if (!isfinite(vectors[r * dim + j]))
				return err_set(STRATA_ENONFINITE, "vector %zu, component %u is not finite", r, j);
	size_t chunk = chunk_rows(db);
	size_t m = n < chunk ? n : chunk;
	bool cosine = db->metric == STRATA_METRIC_COSINE;
	float *norm = cosine ? malloc(m * dim * sizeof *norm) : NULL;
	bool *applied = malloc(m * sizeof *applied);
	if ((cosine && !norm) || !applied) {
		free(norm);
		free(applied);
		return err_set(STRATA_ENOMEM, "strata_upsert of %zu vectors", n);
	}
	for (size_t off = 0; off < n && !rc; off += m) {
		size_t cnt = n - off < m ? n - off : m;
		const float *v = vectors + off * dim;
		if (cosine) {
			memcpy(norm, v, cnt * dim * sizeof *norm);
			for (size_t r = 0; r < cnt; r++)
				dist_normalize(norm + r * dim, dim);
			v = norm;
		}
		rc = write_record(db, WAL_REC_UPSERT, ids + off, v, cnt, applied);
	}
	free(norm);
	free(applied);
	return rc;
}

int strata_delete(strata_db *db, const uint64_t *ids, size_t n)
{
	err_clear();
	int rc = check_writable(db, "strata_delete");
	if (rc)
		return rc;
	if (n == 0)
		return 0;
	if (!ids)
		return err_set(STRATA_EINVAL, "strata_delete: %zu ids but a null array", n);
	if ((rc = check_ids(ids, n)))
		return rc;
	size_t m = n < 65536 ? n : 65536;
	bool *applied = malloc(m * sizeof *applied);
	if (!applied)
		return err_set(STRATA_ENOMEM, "strata_delete of %zu ids", n);
	for (size_t off = 0; off < n && !rc; off += m) {
		size_t cnt = n - off < m ? n - off : m;
		rc = write_record(db, WAL_REC_DELETE, ids + off, NULL, cnt, applied);
	}
	free(applied);
	return rc;
}

int strata_sync(strata_db *db)
{
	err_clear();
	int rc = check_writable(db, "strata_sync");
	if (rc)
		return rc;
	if ((rc = write_refused(db)))
		return rc;
	rc = wal_sync(db->wal);
	return rc ? db_fail(db, rc) : 0;
}

int db_flush_now(strata_db *db)
{
	int rc = freeze(db, 0);
	if (rc)
		return rc;
	pthread_mutex_lock(&db->flush_lock);
	while (db->checkpoint_pending && !db->bg_error && !db->stopping)
		pthread_cond_wait(&db->flush_cond, &db->flush_lock);
	rc = db->bg_error;
	if (rc)
		err_set(rc, "flush failed: %s", db->bg_detail);
	pthread_mutex_unlock(&db->flush_lock);
	return rc;
}

int strata_flush(strata_db *db)
{
	err_clear();
	int rc = check_writable(db, "strata_flush");
	if (rc)
		return rc;
	if ((rc = write_refused(db)))
		return rc;
	/* The records in the segment must be durable first: the WAL files go after the flush. */
	if ((rc = wal_sync(db->wal)))
		return db_fail(db, rc);
	return db_flush_now(db);
}

/* ---- open: cleanup, replay, threads ------------------------------------------- */

/*
 * Files a crash left behind: temporaries, segment files the manifest does not
 * name (a flush or merge that never committed, inputs of a merge that did),
 * deletion files no manifest entry names. Only the writer removes them (it
 * holds the lock); a read-only reader that raced us retries its open.
 */
static void remove_leftovers(strata_db *db)
{
	DIR *d = opendir(db->dir);
	if (!d)
		return;
	struct dirent *ent;
	while ((ent = readdir(d))) {
		const char *n = ent->d_name;
		unsigned long long a, b;
		bool drop = false;
		size_t len = strlen(n);
		if (len > 4 && !strcmp(n + len - 4, ".tmp"))
			drop = true;
		else if (sscanf(n, "seg-%16llx.seg", &a) == 1 && len == MF_SEGMENT_NAME_LEN) {
			/* A flush or merge that never committed, or an input a merge replaced. */
			drop = true;
			for (uint32_t i = 0; i < db->mf.segment_count; i++)
				if (db->mf.segments[i].seq == a)
					drop = false;
		} else if (sscanf(n, "del-%16llx-%16llx.del", &a, &b) == 2) {
			drop = true;
			for (uint32_t i = 0; i < db->mf.segment_count; i++)
				if (db->mf.segments[i].seq == a && db->mf.segments[i].tomb_gen == b)
					drop = false;
		}
		if (!drop)
			continue;
		char *p = db_path(db, n);
		if (p)
			fio_discard(p);
		free(p);
	}
	closedir(d);
}

static int replay_apply(void *ctx, uint64_t lsn, unsigned type, const uint8_t *payload, size_t len)
{
	strata_db *db = ctx;
	uint32_t n = 0;
	const uint64_t *ids = NULL;
	const float *vecs = NULL;
	int rc;
	if (type == WAL_REC_UPSERT)
		rc = walrec_upsert_view(payload, len, db->mf.dim, &n, &ids, &vecs);
	else if (type == WAL_REC_DELETE)
		rc = walrec_delete_view(payload, len, &n, &ids);
	else
		return err_set(STRATA_ECORRUPT, "WAL record %llu has unknown type %u",
		               (unsigned long long)lsn, type);
	if (rc)
		return rc;
	bool *applied = malloc((n ? n : 1) * sizeof *applied);
	if (!applied)
		return err_set(STRATA_ENOMEM, "replay");
	size_t rows = type == WAL_REC_UPSERT ? n : 0;
	for (;;) {
		struct memtable *mt = db->cur->active;
		if (rows > mt->capacity && mt_rows(mt) == 0 && mt->deletes == 0) {
			/* A record bigger than this handle's memtable (written with other options). */
			struct memtable *big;
			if ((rc = new_memtable(db, rows, &big)))
				break;
			db->cur->active = big;
			mt_unref(mt);
			mt = big;
		}
		rc = mt_reserve(mt, rows, n);
		if (rc != STRATA_ELIMIT)
			break;
		/* Full: flush it now (no threads yet), into a memtable big enough for this record. */
		size_t cap = rows > db->mt_capacity ? rows : 0;
		if ((rc = freeze(db, cap)) || (rc = flush_frozen(db)))
			break;
		db->checkpoint_pending = 0;
	}
	if (!rc)
		apply(db, lsn, type, ids, vecs, n, applied);
	free(applied);
	return rc;
}

static size_t memtable_capacity(const strata_db *db)
{
	const strata_options *o = &db->opts;
	size_t stride = ((size_t)db->mf.dim * 4 + 4 + (size_t)db->mf.M * 8 + 15) & ~(size_t)15;
	uint64_t rows = o->memtable_max_vectors ? o->memtable_max_vectors : 1000000;
	uint64_t bytes = o->memtable_max_bytes ? o->memtable_max_bytes : (256ull << 20);
	uint64_t by_bytes = bytes / (stride + 40);
	if (rows > by_bytes)
		rows = by_bytes;
	if (rows < 16)
		rows = 16;
	if (rows > SEG_COUNT_MAX)
		rows = SEG_COUNT_MAX;
	return (size_t)rows;
}

static void wal_config_of(const strata_db *db, struct wal_config *c)
{
	memset(c, 0, sizeof *c);
	c->dir = db->dir;
	memcpy(c->db_uuid, db->mf.db_uuid, sizeof c->db_uuid);
	c->dim = db->mf.dim;
	c->sync_mode = (int)db->opts.sync_mode;
	c->sync_interval_ms = db->opts.sync_interval_ms ? db->opts.sync_interval_ms : 100;
	c->file_bytes = db->opts.wal_file_bytes ? db->opts.wal_file_bytes : (64ull << 20);
	c->io = WAL_IO_AUTO;
}

int db_writer_start(strata_db *db)
{
	if ((unsigned)db->opts.sync_mode > STRATA_SYNC_NONE)
		return err_set(STRATA_EINVAL, "unknown sync_mode %d", (int)db->opts.sync_mode);
	int rc = compactor_check_options(&db->opts);
	if (rc)
		return rc;
	db->gp = (struct hnsw_build_params){
		.dim = db->mf.dim,
		.metric = (strata_metric)db->mf.metric,
		.M = db->mf.M,
		.ef_construction = db->mf.ef_construction,
		.threads = db->opts.threads ? db->opts.threads : db_cpu_count(),
		.seed = db->opts.seed,
	};
	db->mt_capacity = memtable_capacity(db);
	db->tail_max = db->opts.memtable_max_unindexed ? db->opts.memtable_max_unindexed : 4096;
	/*
	 * Not for inner product: a row's "nearest" nodes by inner product are the
	 * few of largest norm, not its neighbourhood, so rows would pile under them.
	 */
	const char *anchors = getenv("STRATA_MEMTABLE_ANCHORS");
	db->anchors = db->mf.metric != STRATA_METRIC_IP && !(anchors && strcmp(anchors, "off") == 0);
	struct memtable *mt;
	rc = new_memtable(db, db->mt_capacity, &mt);
	if (rc)
		return rc;
	db->cur->active = mt;
	remove_leftovers(db);

	struct wal_config c;
	wal_config_of(db, &c);
	struct wal_recovery rec;
	atomic_store(&db->applied_lsn, db->mf.checkpoint_lsn);
	rc = wal_recover(&c, db->mf.checkpoint_lsn, false, replay_apply, db, &rec);
	if (rc)
		return rc;
	db->replay_records = rec.records_applied;
	db->replay_bytes = rec.bytes;
	db->replay_torn_bytes = rec.torn_bytes;
	db->replay_seconds = rec.seconds;
	uint64_t next = rec.last_lsn > db->mf.checkpoint_lsn ? rec.last_lsn : db->mf.checkpoint_lsn;
	if ((rc = wal_open(&c, next + 1, &db->wal)))
		return rc;
	wal_remove_upto(db->wal, db->mf.checkpoint_lsn);

	if (pthread_create(&db->flusher, NULL, flusher_main, db) != 0)
		return err_set(STRATA_ENOMEM, "starting the flusher thread");
	if (pthread_create(&db->indexer, NULL, indexer_main, db) != 0) {
		pthread_mutex_lock(&db->flush_lock);
		db->stopping = true;
		pthread_cond_broadcast(&db->work_cond);
		pthread_mutex_unlock(&db->flush_lock);
		pthread_join(db->flusher, NULL);
		return err_set(STRATA_ENOMEM, "starting the indexer thread");
	}
	db->threads_started = true;
	return compactor_start(db);
}

void db_writer_stop(strata_db *db)
{
	/* The compactor first: it may wait for flushes, never the other way round. */
	compactor_halt(db);
	if (!db->threads_started) {
		compactor_free(db);
		return;
	}
	pthread_mutex_lock(&db->flush_lock);
	db->stopping = true;
	pthread_cond_broadcast(&db->work_cond);
	pthread_cond_broadcast(&db->index_cond);
	pthread_cond_broadcast(&db->flush_cond);
	pthread_mutex_unlock(&db->flush_lock);
	pthread_join(db->indexer, NULL);
	pthread_join(db->flusher, NULL);
	db->threads_started = false;
	compactor_free(db); /* after the flusher: it retires files until it stops */
}
