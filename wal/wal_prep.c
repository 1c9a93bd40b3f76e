/*
 * wal_prep.c - the preparer: a thread that writes zeros (and syncs them)
 * ahead of the records of the current WAL file, so that a leader's
 * fdatasync covers an overwrite, not an append (wal_internal.h: why, and the
 * protocol with the leader).
 *
 * It has its own descriptor of the file, so that an error a failed writeback
 * reports reaches the leader's descriptor too (the kernel reports it once per
 * open file description). Its writes bypass fio.c (a test's counted
 * failpoints stay the leader's) and report themselves to the power-loss
 * recorder (fio_note_write / fio_note_sync); failpoint FP_PREALLOC fails them.
 * A failure only ends preallocation: records go on being appended. It must
 * never write below zero_end, nor to a file the leader holds (prep_held).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "failpoint.h"
#include "fio.h"
#include "wal_internal.h"

/* Zeros kept ahead start at the first and double (up to the second) each time a batch outruns them. */
#define WAL_PREP_AHEAD_MIN (256u << 10)
#define WAL_PREP_AHEAD_MAX (16u << 20)
/* One write + sync: big enough to keep ahead of 100 MB/s of records, small enough that a waiting leader waits little. */
#define WAL_PREP_CHUNK (2u << 20)
#define WAL_PREP_ALIGN 4096u

static bool wal_prep_wanted(const struct wal_config *c)
{
	if (c->no_prealloc || c->sync_mode == STRATA_SYNC_NONE)
		return false;
	const char *e = getenv("STRATA_WAL_PREALLOC");
	return !(e && strcmp(e, "off") == 0);
}

/* Bytes to zero at zero_end now (mu held): 0 when there is nothing to do. */
static uint64_t wal_prep_due(const struct wal *w)
{
	if (w->prep_held || w->prep_failed || w->failed || w->data_end == 0)
		return 0;
	uint64_t want_end = w->data_end + w->prep_ahead;
	if (want_end > w->cfg.file_bytes)
		want_end = w->cfg.file_bytes; /* the file ends (rotates) about there */
	if (want_end <= w->zero_end)
		return 0;
	/* Not a sliver at a time: once half of what is ahead is used up (or up to the file's end). */
	if (want_end - w->zero_end < w->prep_ahead / 2 && want_end < w->cfg.file_bytes)
		return 0;
	uint64_t n = want_end - w->zero_end;
	if (n > WAL_PREP_CHUNK)
		n = WAL_PREP_CHUNK;
	/* Chunks end on a page boundary: the next one covers whole pages. */
	uint64_t end = (w->zero_end + n + WAL_PREP_ALIGN - 1) / WAL_PREP_ALIGN * WAL_PREP_ALIGN;
	return end - w->zero_end;
}

/*
 * What the zeros are written from: never written to, so its pages stay the
 * kernel's shared zero page (no memory of ours, no allocation).
 */
static uint8_t wal_zeros[256u << 10];

/* Write `len` zeros at `off` of fd and fdatasync (mu released). 0 or -errno. */
static int wal_prep_write(int fd, uint64_t off, uint64_t len)
{
	int inj = fp_inject(FP_PREALLOC);
	if (inj)
		return inj;
	const uint8_t *zeros = wal_zeros;
	for (uint64_t done = 0; done < len;) {
		size_t want = len - done < sizeof wal_zeros ? (size_t)(len - done) : sizeof wal_zeros;
		ssize_t n = pwrite(fd, zeros, want, (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		fio_note_write(fd, zeros, (size_t)n, off + done);
		done += (uint64_t)n;
	}
	int r;
	do
		r = fdatasync(fd);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	fio_note_sync(fd);
	return 0;
}

static void *wal_prep_main(void *arg)
{
	struct wal *w = arg;
	pthread_setname_np(pthread_self(), "strata-walprep");
	int fd = -1;
	uint64_t fd_gen = 0;
	pthread_mutex_lock(&w->mu);
	while (!w->stopping && !w->prep_failed) {
		uint64_t len = wal_prep_due(w);
		if (!len && fd >= 0 && fd_gen != w->prep_gen) {
			/* The file is no longer the newest: let go of it (it may be deleted after a flush). */
			pthread_mutex_unlock(&w->mu);
			fio_close(fd);
			fd = -1;
			pthread_mutex_lock(&w->mu);
			continue;
		}
		if (!len) {
			pthread_cond_wait(&w->prep_cv, &w->mu);
			continue;
		}
		if (fd < 0 || fd_gen != w->prep_gen) {
			/* A new file: open it with mu released, then check it is still the current one. */
			char path[WAL_PATH_MAX];
			uint64_t gen = w->prep_gen;
			memcpy(path, w->prep_path, sizeof path);
			pthread_mutex_unlock(&w->mu);
			if (fd >= 0)
				fio_close(fd);
			fd = -1;
			int rc = fio_open(path, O_WRONLY, 0, &fd);
			pthread_mutex_lock(&w->mu);
			if (rc) {
				w->prep_failed = true;
				break;
			}
			fd_gen = gen;
			continue;
		}
		uint64_t off = w->zero_end;
		w->prep_busy = true;
		pthread_mutex_unlock(&w->mu);
		int rc = wal_prep_write(fd, off, len);
		pthread_mutex_lock(&w->mu);
		w->prep_busy = false;
		if (rc) {
			w->prep_failed = true; /* the leader's own sync will meet a device error, if it was one */
		} else {
			w->zero_end = off + len; /* nobody moved it: a leader reaching past off waited */
			w->st.prealloc_bytes += len;
		}
		pthread_cond_broadcast(&w->cv);
	}
	pthread_mutex_unlock(&w->mu);
	if (fd >= 0)
		fio_close(fd);
	return NULL;
}

int wal_prep_start(struct wal *w)
{
	w->prep_ahead = WAL_PREP_AHEAD_MIN;
	w->zero_end = w->write_off;
	memcpy(w->prep_path, w->path, sizeof w->prep_path);
	if (!wal_prep_wanted(&w->cfg))
		return 0;
	if (pthread_create(&w->prep_thread, NULL, wal_prep_main, w) != 0)
		return err_set(STRATA_ENOMEM, "wal_open: cannot start the preallocation thread");
	w->prep_on = true;
	w->st.prealloc_on = true;
	return 0;
}

void wal_prep_stop(struct wal *w)
{
	if (!w->prep_on)
		return;
	pthread_mutex_lock(&w->mu);
	w->stopping = true;
	pthread_cond_broadcast(&w->prep_cv);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->prep_thread, NULL);
	w->prep_on = false;
}

void wal_prep_claim(struct wal *w, uint64_t off, uint64_t end)
{
	if (!w->prep_on)
		return;
	pthread_mutex_lock(&w->mu);
	if (end > w->zero_end && w->prep_busy) {
		w->st.prealloc_waits++;
		while (w->prep_busy)
			pthread_cond_wait(&w->cv, &w->mu);
	}
	if (end > w->zero_end) {
		/* Outrun: this batch appends. Keep more ahead from now on (not for a file's first batch). */
		if (off > WAL_FILE_HEADER_SIZE && w->prep_ahead < WAL_PREP_AHEAD_MAX)
			w->prep_ahead *= 2;
		w->zero_end = end;
	}
	w->data_end = end;
	if (wal_prep_due(w))
		pthread_cond_signal(&w->prep_cv);
	pthread_mutex_unlock(&w->mu);
}

bool wal_prep_hold(struct wal *w)
{
	pthread_mutex_lock(&w->mu);
	w->prep_held = true;
	while (w->prep_busy)
		pthread_cond_wait(&w->cv, &w->mu);
	/* Also once the preparer is stopped (close): zeros it wrote before are still there. */
	bool tail = w->zero_end > w->write_off;
	pthread_mutex_unlock(&w->mu);
	return tail;
}

void wal_prep_release(struct wal *w)
{
	pthread_mutex_lock(&w->mu);
	memcpy(w->prep_path, w->path, sizeof w->prep_path);
	w->prep_gen++;
	w->zero_end = w->write_off;
	w->data_end = 0; /* nothing claimed in the new file yet: the preparer waits for a batch */
	w->prep_held = false;
	pthread_cond_signal(&w->prep_cv); /* to let go of the old file */
	pthread_mutex_unlock(&w->mu);
}
