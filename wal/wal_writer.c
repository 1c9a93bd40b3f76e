/*
 * wal_writer.c - the WAL writer's entry points (wal.h): open a new file,
 * append (encode the record into the queue and wait as the sync mode says),
 * sync, rotate, remove old files, stats, close.
 *
 * The batching itself is wal_commit.c's. This file owns the struct wal's
 * lifetime. It must never hand out an LSN for a record that is not queued,
 * and never let an append that failed leave its record in the queue.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "fio.h"
#include "wal_internal.h"

#define WAL_FILE_BYTES_DEFAULT (64ull << 20)

static int wal_config_check(const struct wal_config *c)
{
	if (!c || !c->dir || !c->dir[0])
		return err_set(STRATA_EINVAL, "wal: no configuration or directory");
	if (c->dim < 1 || c->dim > STRATA_DIM_MAX)
		return err_set(STRATA_EDIM, "wal: dim %u is outside 1..%u", c->dim, STRATA_DIM_MAX);
	if (c->sync_mode != STRATA_SYNC_ALWAYS && c->sync_mode != STRATA_SYNC_INTERVAL &&
	    c->sync_mode != STRATA_SYNC_NONE)
		return err_set(STRATA_EINVAL, "wal: sync_mode %d is unknown", c->sync_mode);
	if (c->io != WAL_IO_AUTO && c->io != WAL_IO_URING && c->io != WAL_IO_PWRITE)
		return err_set(STRATA_EINVAL, "wal: io %d is unknown", (int)c->io);
	return 0;
}

static void wal_free(struct wal *w)
{
	if (!w)
		return;
	if (w->fd >= 0)
		fio_close(w->fd);
	wal_iob_fini(&w->iob);
	pthread_cond_destroy(&w->timer_cv);
	pthread_cond_destroy(&w->append_cv);
	pthread_cond_destroy(&w->prep_cv);
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
	free(w->q);
	free(w->spare);
	free(w->dir);
	free(w);
}

int wal_open(const struct wal_config *c, uint64_t next_lsn, struct wal **out)
{
	int rc = wal_config_check(c);
	if (rc)
		return rc;
	if (!out || next_lsn == 0)
		return err_set(STRATA_EINVAL, "wal_open: next_lsn 0 (LSNs start at 1) or no out");
	if (next_lsn > WAL_LSN_MAX)
		return err_set(STRATA_ELIMIT, "wal_open: next_lsn %llu: LSNs end at 2^63-1",
		               (unsigned long long)next_lsn);
	*out = NULL;
	struct wal *w = calloc(1, sizeof *w);
	if (!w)
		return err_set(STRATA_ENOMEM, "wal_open");
	w->fd = -1;
	w->cfg = *c;
	if (!w->cfg.file_bytes)
		w->cfg.file_bytes = WAL_FILE_BYTES_DEFAULT;
	w->dir = strdup(c->dir);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	pthread_cond_init(&w->timer_cv, &ca);
	pthread_cond_init(&w->append_cv, &ca);
	pthread_cond_init(&w->prep_cv, NULL);
	pthread_condattr_destroy(&ca);
	if (!w->dir) {
		wal_free(w);
		return err_set(STRATA_ENOMEM, "wal_open");
	}
	w->cfg.dir = w->dir;

	/* Files are named by first LSN and only ever follow each other (W2). */
	uint64_t *lsns = NULL;
	size_t n = 0;
	if ((rc = wal_files_list(w->dir, &lsns, &n)))
		goto fail;
	uint64_t newest = n ? lsns[n - 1] : 0;
	free(lsns);
	if (newest > next_lsn) {
		rc = err_set(STRATA_EINVAL, "wal_open: next_lsn %llu is below the newest WAL file's "
		             "first LSN %llu", (unsigned long long)next_lsn, (unsigned long long)newest);
		goto fail;
	}
	if ((rc = wal_file_create(w->dir, c->db_uuid, c->dim, next_lsn, &w->fd)))
		goto fail;
	char name[WAL_FILE_NAME_LEN + 1];
	walrec_file_name(next_lsn, name, sizeof name);
	wal_path_join(w->path, sizeof w->path, w->dir, name);
	w->file_first_lsn = w->cur_first_lsn = next_lsn;
	w->write_off = WAL_FILE_HEADER_SIZE;
	w->next_lsn = next_lsn;
	w->written_lsn = w->durable_lsn = w->sync_want = next_lsn - 1;
	wal_iob_init(&w->iob, c->io);
	w->st.io_uring = w->iob.uring;

	w->st.files = (uint32_t)n + (newest != next_lsn); /* the new one, unless it replaced */

	if ((rc = wal_prep_start(w)))
		goto fail;
	if (c->sync_mode == STRATA_SYNC_INTERVAL) {
		if (pthread_create(&w->timer, NULL, wal_timer_main, w) != 0) {
			rc = err_set(STRATA_ENOMEM, "wal_open: cannot start the sync timer thread");
			goto fail;
		}
		w->timer_on = true;
	}
	*out = w;
	return 0;
fail:
	wal_prep_stop(w);
	/* The new file holds no record: remove it, so that a retry can make it again. */
	if (w->fd >= 0) {
		fio_close(w->fd);
		w->fd = -1;
		fio_discard(w->path);
	}
	wal_free(w);
	return rc;
}

/* Room for `more` bytes in the queue (mu held). */
static int wal_queue_reserve(struct wal *w, size_t more)
{
	if (w->q_cap - w->q_len >= more)
		return 0;
	size_t cap = w->q_cap ? w->q_cap : 64 * 1024;
	while (cap - w->q_len < more)
		cap *= 2;
	uint8_t *q = realloc(w->q, cap);
	if (!q)
		return err_set(STRATA_ENOMEM, "wal: queue of %zu bytes", cap);
	w->q = q;
	w->q_cap = cap;
	return 0;
}

int wal_append(struct wal *w, unsigned type, const struct iovec *iov, int iovcnt, uint64_t *lsn_out)
{
	if (!w || !lsn_out || iovcnt < 0 || (iovcnt > 0 && !iov))
		return err_set(STRATA_EINVAL, "wal_append: null handle, output or iovecs");
	uint8_t hdr[WAL_RECORD_HEADER_SIZE], tail[WAL_RECORD_TAIL_MAX];
	size_t tail_len;
	uint32_t total;

	pthread_mutex_lock(&w->mu);
	int rc;
	if (w->failed) {
		rc = wal_failed(w);
		goto out;
	}
	uint64_t lsn = w->next_lsn;
	if (lsn > WAL_LSN_MAX) {
		rc = err_set(STRATA_ELIMIT, "wal_append: LSNs end at 2^63-1: the log is used up");
		goto out;
	}
	/*
	 * Encoded under the lock: the checksum covers the LSN, and LSNs must be
	 * laid in the queue in order. xxh3 runs at memory speed; the copy below
	 * is the one copy of the payload (no second one for the encoding).
	 */
	if ((rc = walrec_encode(type, lsn, iov, iovcnt, hdr, tail, &tail_len, &total)))
		goto out;
	if ((rc = wal_queue_reserve(w, total)))
		goto out;
	uint8_t *p = w->q + w->q_len;
	memcpy(p, hdr, sizeof hdr);
	p += sizeof hdr;
	for (int i = 0; i < iovcnt; i++) {
		if (iov[i].iov_len)
			memcpy(p, iov[i].iov_base, iov[i].iov_len);
		p += iov[i].iov_len;
	}
	memcpy(p, tail, tail_len);
	w->q_len += total;
	w->q_records++;
	w->next_lsn++;
	w->st.appends++;
	pthread_cond_signal(&w->append_cv);
	rc = wal_wait(w, lsn, w->cfg.sync_mode == STRATA_SYNC_ALWAYS);
	if (rc == 0)
		*lsn_out = lsn;
out:
	pthread_mutex_unlock(&w->mu);
	return rc;
}

int wal_sync(struct wal *w)
{
	if (!w)
		return err_set(STRATA_EINVAL, "wal_sync: null handle");
	pthread_mutex_lock(&w->mu);
	int rc = w->failed ? wal_failed(w) : wal_wait(w, w->next_lsn - 1, true);
	pthread_mutex_unlock(&w->mu);
	return rc;
}

int wal_rotate(struct wal *w)
{
	if (!w)
		return err_set(STRATA_EINVAL, "wal_rotate: null handle");
	pthread_mutex_lock(&w->mu);
	while (w->leader && !w->failed)
		pthread_cond_wait(&w->cv, &w->mu);
	int rc = w->failed ? wal_failed(w) : wal_lead(w, true);
	pthread_mutex_unlock(&w->mu);
	return rc;
}

uint64_t wal_last_lsn(struct wal *w)
{
	pthread_mutex_lock(&w->mu);
	uint64_t v = w->next_lsn - 1;
	pthread_mutex_unlock(&w->mu);
	return v;
}

int wal_remove_upto(struct wal *w, uint64_t lsn)
{
	if (!w)
		return err_set(STRATA_EINVAL, "wal_remove_upto: null handle");
	pthread_mutex_lock(&w->mu);
	uint64_t cur = w->cur_first_lsn;
	pthread_mutex_unlock(&w->mu);

	uint64_t *lsns = NULL;
	size_t n = 0;
	int rc = wal_files_list(w->dir, &lsns, &n);
	if (rc)
		return rc;
	uint32_t removed = 0;
	/* File i holds LSNs lsns[i] .. lsns[i+1]-1 (W2): only files before the current one. */
	for (size_t i = 0; i + 1 < n && lsns[i] < cur && !rc; i++) {
		if (lsns[i + 1] - 1 > lsn)
			break;
		char name[WAL_FILE_NAME_LEN + 1], path[WAL_PATH_MAX];
		walrec_file_name(lsns[i], name, sizeof name);
		if (!(rc = wal_path_join(path, sizeof path, w->dir, name)) && !(rc = fio_unlink(path))) {
			removed++;
			fp_step("wal.file_removed");
		}
	}
	free(lsns);
	if (removed) {
		int rc2 = fio_fsync_dir(w->dir);
		if (!rc)
			rc = rc2;
		pthread_mutex_lock(&w->mu);
		w->st.files = w->st.files > removed ? w->st.files - removed : 0;
		pthread_mutex_unlock(&w->mu);
	}
	return rc;
}

void wal_stats(struct wal *w, struct wal_stats *out)
{
	pthread_mutex_lock(&w->mu);
	*out = w->st;
	out->prealloc_failed = w->prep_failed;
	pthread_mutex_unlock(&w->mu);
}

int wal_close(struct wal *w)
{
	if (!w)
		return 0;
	pthread_mutex_lock(&w->mu);
	w->stopping = true;
	pthread_cond_broadcast(&w->timer_cv);
	pthread_mutex_unlock(&w->mu);
	if (w->timer_on)
		pthread_join(w->timer, NULL);
	wal_prep_stop(w);

	pthread_mutex_lock(&w->mu);
	int rc = w->failed ? wal_failed(w) : wal_wait(w, w->next_lsn - 1, true);
	while (w->leader)
		pthread_cond_wait(&w->cv, &w->mu);
	pthread_mutex_unlock(&w->mu);
	/*
	 * A clean close leaves no zeros after the last record (after a crash,
	 * recovery cuts them). Best effort: a tail left behind is still a clean
	 * end of the log, and every record is already synced.
	 */
	if (rc == 0 && w->zero_end > w->write_off &&
	    fio_ftruncate(w->fd, w->write_off, w->path) == 0)
		fio_fdatasync(w->fd, w->path);
	wal_free(w);
	return rc;
}
