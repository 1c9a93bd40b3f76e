/*
 * wal_uring.c - the WAL's I/O backend: one write (+ fdatasync) per batch,
 * through io_uring (a write SQE linked to an fsync SQE, one submission, both
 * completions awaited) or through the fio seam (fio_pwrite_all +
 * fio_fdatasync).
 *
 * io_uring is used when it works: a ring that cannot be made (ENOSYS, EPERM
 * under seccomp) or a first operation that says -EINVAL / -EOPNOTSUPP makes
 * the backend fall back to pwrite for good, silently (wal_stats says which).
 * The io_uring path bypasses the seam, so it calls the seam's failpoints
 * itself (same sites, same effects) and reports completed writes and syncs to
 * fio_note_write / fio_note_sync for the power-loss recorder. It must never
 * retry a failed fsync (W4): the caller fails the log.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "failpoint.h"
#include "fio.h"
#include "wal_internal.h"

#ifndef STRATA_HAVE_URING
#define STRATA_HAVE_URING 0
#endif

#if STRATA_HAVE_URING
#include <liburing.h>
#endif

#define WAL_URING_ENTRIES 8

#if STRATA_FAILPOINTS
static _Atomic bool wal_quirk_refuse, wal_quirk_short;

void wal_uring_test_quirks(bool refuse_first, bool short_writes)
{
	wal_quirk_refuse = refuse_first;
	wal_quirk_short = short_writes;
}
#endif

static enum wal_io wal_io_choice(enum wal_io io)
{
	if (io != WAL_IO_AUTO)
		return io;
	const char *e = getenv("STRATA_WAL_IO");
	if (e && strcmp(e, "pwrite") == 0)
		return WAL_IO_PWRITE;
	if (e && strcmp(e, "uring") == 0)
		return WAL_IO_URING;
	return WAL_IO_AUTO;
}

void wal_iob_init(struct wal_iob *b, enum wal_io io)
{
	memset(b, 0, sizeof *b);
	if (wal_io_choice(io) == WAL_IO_PWRITE)
		return;
#if STRATA_HAVE_URING
	struct io_uring *r = calloc(1, sizeof *r);
	if (!r)
		return;
	if (io_uring_queue_init(WAL_URING_ENTRIES, r, 0) != 0) {
		free(r); /* ENOSYS, EPERM (seccomp), ENOMEM (memlock): pwrite it is */
		return;
	}
	b->ring = r;
	b->uring = true;
#endif
}

void wal_iob_fini(struct wal_iob *b)
{
#if STRATA_HAVE_URING
	if (b->ring) {
		io_uring_queue_exit(b->ring);
		free(b->ring);
	}
#endif
	memset(b, 0, sizeof *b);
}

static int wal_pwrite_path(int fd, const void *buf, size_t len, uint64_t off, bool sync,
                           const char *path)
{
	int rc = len ? fio_pwrite_all(fd, buf, len, off, path) : 0;
	if (rc)
		return rc;
	if (len)
		fp_step("wal.records_written");
	if (sync && fio_fdatasync(fd, path) != 0)
		return err_prefix(STRATA_EFSYNC, "wal");
	return 0;
}

#if STRATA_HAVE_URING

/* An -errno from a first io_uring operation that means "this kernel cannot", not "the disk failed". */
static bool wal_uring_unsupported(const struct wal_iob *b, int res)
{
	return !b->proven && (res == -EINVAL || res == -EOPNOTSUPP);
}

/*
 * Submit a write of buf[0..len) at off (len > 0), linked to an fdatasync when
 * `sync`, and reap both completions. *wres: the write's result; *sres: the
 * sync's (-ECANCELED when a short write broke the link; 1 when not asked).
 * Returns 0 or a -errno of the ring itself.
 */
static int wal_uring_submit(struct wal_iob *b, int fd, const void *buf, size_t len, uint64_t off,
                            bool sync, int *wres, int *sres)
{
	struct io_uring *r = b->ring;
	*wres = 0;
	*sres = 1;
	int want = 0;
	if (len) {
		struct io_uring_sqe *s = io_uring_get_sqe(r);
		if (!s)
			return -EBUSY;
		unsigned n = (unsigned)len;
#if STRATA_FAILPOINTS
		if (wal_quirk_short && n > 1)
			n = n / 2 > 4096 ? n - 4096 : n / 2 + 1; /* what a kernel may do */
#endif
		io_uring_prep_write(s, fd, buf, n, off);
		s->user_data = 1;
		if (sync)
			s->flags |= IOSQE_IO_LINK;
		want++;
	}
	if (sync) {
		struct io_uring_sqe *s = io_uring_get_sqe(r);
		if (!s)
			return -EBUSY;
		io_uring_prep_fsync(s, fd, IORING_FSYNC_DATASYNC);
		s->user_data = 2;
		want++;
	}
	int rc;
	/* Submit both; a partial submit leaves the rest queued for the next call. */
	for (int sent = 0, tries = 0; sent < want; tries++) {
		rc = io_uring_submit(r);
		if (rc == -EINTR || rc == -EAGAIN || (rc == 0 && tries < 100))
			continue;
		if (rc < 0)
			return sent ? -EIO : rc; /* with one op in flight, never report "unsupported" */
		if (rc == 0)
			return -EIO;
		sent += rc;
	}
#if STRATA_FAILPOINTS
	if (wal_quirk_refuse && !b->proven) {
		/* Reap what was submitted, then answer as a kernel without this opcode would. */
		for (int got = 0; got < want;) {
			struct io_uring_cqe *c;
			if (io_uring_wait_cqe(r, &c) == 0) {
				io_uring_cqe_seen(r, c);
				got++;
			}
		}
		return -EINVAL;
	}
#endif
	for (int got = 0; got < want;) {
		struct io_uring_cqe *c;
		rc = io_uring_wait_cqe(r, &c);
		if (rc == -EINTR || rc == -EAGAIN)
			continue;
		if (rc < 0)
			return rc;
		if (c->user_data == 1)
			*wres = c->res;
		else
			*sres = c->res;
		io_uring_cqe_seen(r, c);
		got++;
	}
	return 0;
}

/* Chunks below 2 GiB: a write SQE's length is 32-bit, and Linux moves at most ~2 GiB per call. */
#define WAL_URING_CHUNK (1u << 30)

/* Returns 0, a STRATA_E* code, or 1: io_uring refused a first operation, fall back. */
static int wal_uring_write(struct wal_iob *b, int fd, const uint8_t *buf, size_t len, uint64_t off,
                           bool sync, const char *path)
{
	size_t todo = len;
	int winj = len ? fp_inject(FP_WRITE) : 0;
	if (winj == -FP_SHORT) {
		todo = len / 2; /* a torn write, as fio_pwrite_all makes it; no sync follows */
		sync = false;
	} else if (winj)
		return err_set(err_from_errno(winj), "write %s: %s", path, strerror(-winj));
	int sinj = 0;
	if (sync && winj == 0) {
		sinj = fp_inject(FP_FSYNC);
		if (sinj)
			sync = false; /* write, then report the injected sync failure */
	}

	size_t done = 0;
	bool synced = !sync;
	while (done < todo || !synced) {
		size_t chunk = todo - done < WAL_URING_CHUNK ? todo - done : WAL_URING_CHUNK;
		bool with_sync = !synced && done + chunk == todo;
		if (!chunk && !with_sync)
			break;
		int wres, sres;
		int rc = wal_uring_submit(b, fd, buf + done, chunk, off + done, with_sync, &wres, &sres);
		if (rc == -EBUSY || rc == -ENOMEM || rc == -ENXIO || rc == -EBADF || rc == -EFAULT)
			return err_set(STRATA_EIO, "write %s: io_uring: %s", path, strerror(-rc));
		if (rc < 0)
			return wal_uring_unsupported(b, rc) ? 1
			       : err_set(err_from_errno(rc), "write %s: io_uring: %s", path, strerror(-rc));
		if (chunk) {
			if (wres == -EINTR || wres == -EAGAIN)
				continue; /* nothing written: resubmit the same chunk */
			if (wres < 0)
				return wal_uring_unsupported(b, wres)
				       ? 1
				       : err_set(err_from_errno(wres), "write %s: %s", path, strerror(-wres));
			if (wres == 0)
				return err_set(STRATA_EIO, "write %s: no progress at offset %llu", path,
				               (unsigned long long)(off + done));
			b->proven = true;
			fio_note_write(fd, buf + done, (size_t)wres, off + done);
			done += (size_t)wres;
		}
		if (with_sync) {
			if (sres == -ECANCELED || sres == -EINTR || sres == -EAGAIN)
				continue; /* a short write broke the link: the sync goes with the rest */
			if (sres < 0) {
				if (wal_uring_unsupported(b, sres))
					return 1;
				return err_set(STRATA_EFSYNC, "wal: fdatasync %s: %s", path, strerror(-sres));
			}
			b->proven = true;
			fio_note_sync(fd);
			synced = true;
		}
	}
	if (winj == -FP_SHORT)
		return err_set(STRATA_EIO, "write %s: torn write (injected): %zu of %zu bytes at offset %llu",
		               path, todo, len, (unsigned long long)off);
	if (sinj)
		return err_set(STRATA_EFSYNC, "wal: fdatasync %s: %s", path, strerror(-sinj));
	return 0;
}

#endif /* STRATA_HAVE_URING */

int wal_iob_write(struct wal_iob *b, int fd, const void *buf, size_t len, uint64_t off, bool sync,
                  const char *path)
{
	if (!len && !sync)
		return 0;
#if STRATA_HAVE_URING
	if (b->uring) {
		int rc = wal_uring_write(b, fd, buf, len, off, sync, path);
		if (rc <= 0)
			return rc;
		/*
		 * The kernel refused the very first operation before doing anything
		 * (old kernel, restricted ring): pwrite for good, and redo it there.
		 * Whatever a refused write may have moved is rewritten at the same offset.
		 */
		io_uring_queue_exit(b->ring);
		free(b->ring);
		b->ring = NULL;
		b->uring = false;
	}
#else
	(void)b;
#endif
	return wal_pwrite_path(fd, buf, len, off, sync, path);
}
