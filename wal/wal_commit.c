/*
 * wal_commit.c - group commit: one leader at a time writes every record
 * queued so far in one write (and, when anyone needs it, one fdatasync),
 * rotates files, and wakes the waiters; the INTERVAL timer thread.
 *
 * Invariants kept here (wal.h): W1 (durable_lsn only moves after a sync of
 * everything up to it), W2 (one leader; a batch is the queue's records in LSN
 * order, written at the end of the current file), W3 (wal_switch syncs the old
 * file before it creates the new one), W4 (any failure is stored in
 * w->failed, and the failed batch's bytes are cut back off the file).
 * It must never retry a failed write or fsync.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "fio.h"
#include "wal_internal.h"

/* A drained queue buffer larger than this is freed rather than kept as the spare. */
#define WAL_SPARE_KEEP (8u << 20)
/* A leader waits for more records at most this share of the last sync's time, and this long. */
#define WAL_GATHER_SHARE 8u
#define WAL_GATHER_MAX_NS 1000000ull

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/*
 * Before a leader takes the queue for a synced batch: when the last sync
 * served more writers than have queued now, the missing ones are most likely
 * the last group, between their return and their next append. Without a
 * wait, groups alternate (half the writers per fdatasync, measured: 4.3 of 8).
 * Waiting for them a fraction of a sync (Postgres' commit_delay, adaptive)
 * lets one fdatasync serve them all; a lone writer never waits (target 1).
 * mu held; the caller holds the leader role meanwhile.
 */
static void wal_gather(struct wal *w)
{
	if (w->gather_target <= w->q_records || w->sync_ns == 0)
		return;
	uint64_t wait = w->sync_ns / WAL_GATHER_SHARE;
	if (wait > WAL_GATHER_MAX_NS)
		wait = WAL_GATHER_MAX_NS;
	uint64_t end = mono_ns() + wait;
	struct timespec ts = {.tv_sec = (time_t)(end / 1000000000ull), .tv_nsec = (long)(end % 1000000000ull)};
	while (w->q_records < w->gather_target && !w->failed && !w->stopping) {
		if (pthread_cond_timedwait(&w->append_cv, &w->mu, &ts) == ETIMEDOUT)
			break;
	}
}

int wal_failed(struct wal *w)
{
	return err_set(w->failed, "%s", w->failed_detail);
}

/* Cut the file back to `off` after a failed batch (best effort, W4); keeps the detail of the failure. */
static void wal_cut(struct wal *w, uint64_t off)
{
	char saved[ERR_DETAIL_MAX];
	snprintf(saved, sizeof saved, "%s", err_detail());
	fio_ftruncate(w->fd, off, w->path);
	err_set(STRATA_EIO, "%s", saved); /* err_set keeps only the text; the code is the caller's */
}

/*
 * Leader, mu released: sync the current file when it holds unsynced records
 * (W3), then create the next file, starting at first_lsn, and make it current.
 */
static int wal_switch(struct wal *w, uint64_t first_lsn, bool sync_old, bool *synced_out)
{
	int rc;
	if (wal_prep_hold(w)) {
		/* Zeros were written ahead: the file must end at its last record (W3), durably. */
		if ((rc = fio_ftruncate(w->fd, w->write_off, w->path)))
			return rc;
		sync_old = true;
	}
	if (sync_old) {
		if ((rc = wal_iob_write(&w->iob, w->fd, NULL, 0, 0, true, w->path)))
			return rc;
		*synced_out = true;
	}
	int fd = -1;
	if ((rc = wal_file_create(w->dir, w->cfg.db_uuid, w->cfg.dim, first_lsn, &fd)))
		return rc;
	char name[WAL_FILE_NAME_LEN + 1];
	walrec_file_name(first_lsn, name, sizeof name);
	fio_close(w->fd); /* synced: nothing a failed close could lose */
	w->fd = fd;
	wal_path_join(w->path, sizeof w->path, w->dir, name); /* fits: wal_file_create joined it */
	w->file_first_lsn = first_lsn;
	w->write_off = WAL_FILE_HEADER_SIZE;
	wal_prep_release(w);
	return 0;
}

int wal_lead(struct wal *w, bool force_rotate)
{
	w->leader = true;
	if (w->cfg.sync_mode == STRATA_SYNC_ALWAYS && !force_rotate && w->q_records)
		wal_gather(w);
	/* Take the queue; appends fill the spare meanwhile. */
	uint8_t *buf = w->q;
	size_t len = w->q_len, buf_cap = w->q_cap;
	uint64_t nrec = w->q_records;
	uint64_t written_before = w->written_lsn, durable_before = w->durable_lsn;
	uint64_t upto = w->next_lsn - 1;
	w->q = w->spare;
	w->q_cap = w->spare_cap;
	w->q_len = 0;
	w->q_records = 0;
	w->spare = NULL;
	w->spare_cap = 0;
	bool do_sync = (len && w->cfg.sync_mode == STRATA_SYNC_ALWAYS) || w->sync_want > durable_before;
	bool had_records = written_before >= w->file_first_lsn;
	bool rotate_first = len && had_records && w->write_off >= w->cfg.file_bytes;
	pthread_mutex_unlock(&w->mu);

	int rc = 0;
	bool synced_before = false, wrote = false, synced = false, synced_after = false;
	uint64_t fsyncs = 0, files = 0;
	if (rotate_first) {
		rc = wal_switch(w, written_before + 1, written_before > durable_before, &synced_before);
		fsyncs += synced_before;
		files += rc == 0;
		had_records = false;
	}
	uint64_t t_sync = 0;
	if (!rc && (len || do_sync)) {
		uint64_t off = w->write_off;
		if (len)
			wal_prep_claim(w, off, off + len);
		t_sync = do_sync ? mono_ns() : 0;
		rc = wal_iob_write(&w->iob, w->fd, buf, len, off, do_sync, w->path);
		t_sync = do_sync ? mono_ns() - t_sync : 0;
		if (rc == 0 && len && do_sync)
			fp_step("wal.records_synced"); /* durable, nobody told yet */
		if (rc == 0) {
			w->write_off += len;
			wrote = len > 0;
			synced = do_sync;
			fsyncs += do_sync;
		} else if (len) {
			wal_cut(w, off);
		}
	}
	uint64_t written_now = wrote ? upto : written_before;
	if (!rc && force_rotate && (wrote || had_records)) {
		bool durable = synced || (synced_before && !wrote) || durable_before >= written_now;
		rc = wal_switch(w, written_now + 1, !durable, &synced_after);
		fsyncs += synced_after;
		files += rc == 0;
	}

	pthread_mutex_lock(&w->mu);
	if (synced_before && w->durable_lsn < written_before)
		w->durable_lsn = written_before;
	if (wrote) {
		w->written_lsn = upto;
		w->st.writes++;
		w->st.bytes += len;
		w->st.records += nrec;
		if (nrec > w->st.max_group)
			w->st.max_group = nrec;
	}
	if (synced || synced_after)
		w->durable_lsn = w->written_lsn;
	if (synced && nrec) {
		/* This group, plus whoever queued during its sync: the writers to wait for next time. */
		w->gather_target = nrec + w->q_records;
		w->sync_ns = t_sync;
	}
	w->st.fsyncs += fsyncs;
	w->st.files += (uint32_t)files;
	w->st.io_uring = w->iob.uring;
	if (files)
		w->cur_first_lsn = w->file_first_lsn;
	if (rc && !w->failed) {
		w->failed = rc;
		snprintf(w->failed_detail, sizeof w->failed_detail, "%s", err_detail());
	}
	/* Keep one drained buffer as the spare, unless a huge batch made it huge. */
	if (!w->spare && buf_cap <= WAL_SPARE_KEEP) {
		w->spare = buf;
		w->spare_cap = buf_cap;
	} else {
		free(buf);
	}
	w->leader = false;
	pthread_cond_broadcast(&w->cv);
	return rc;
}

int wal_wait(struct wal *w, uint64_t lsn, bool durable)
{
	for (;;) {
		if ((durable ? w->durable_lsn : w->written_lsn) >= lsn)
			return 0;
		if (w->failed)
			return wal_failed(w);
		if (durable && w->sync_want < lsn)
			w->sync_want = lsn;
		if (!w->leader) {
			wal_lead(w, false); /* its result is in w->failed or the LSNs: loop */
			continue;
		}
		pthread_cond_wait(&w->cv, &w->mu);
	}
}

void *wal_timer_main(void *arg)
{
	struct wal *w = arg;
	pthread_setname_np(pthread_self(), "strata-walsync");
	uint32_t ms = w->cfg.sync_interval_ms ? w->cfg.sync_interval_ms : 1;
	pthread_mutex_lock(&w->mu);
	while (!w->stopping) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += ms / 1000;
		ts.tv_nsec += (long)(ms % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		int r = 0;
		while (!w->stopping && r != ETIMEDOUT)
			r = pthread_cond_timedwait(&w->timer_cv, &w->mu, &ts);
		if (w->stopping)
			break;
		if (!w->failed && w->written_lsn > w->durable_lsn)
			wal_wait(w, w->written_lsn, true); /* a failure stays in w->failed for the writers */
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}
