/*
 * fio.c - the one file I/O seam of strata (fio.h): thin wrappers over the
 * POSIX calls that map errno to STRATA_E* codes, name the path in the error
 * detail, and pass through the failpoints of failpoint.h first.
 *
 * Failpoint sites: open -> FP_OPEN, pread and read -> FP_READ, pwrite and
 * write_all -> FP_WRITE (FP_SHORT: write half, then fail with EIO, a torn
 * write), fsync and fdatasync -> FP_FSYNC, rename -> FP_RENAME, mmap ->
 * FP_MMAP, mkdir and mkdtemp -> FP_MKDIR, unlink and rmdir -> FP_UNLINK. Composite calls (fsync_dir,
 * read_file, write_file_atomic) fail through the calls they are made of.
 * close, fstat and munmap have no site. ftruncate shares FP_WRITE.
 *
 * In test builds each mutating call is also bracketed by fio_rec_begin/end
 * (fio_record.h), the power-loss recorder; a call the recorder declares dead
 * (the simulated machine lost power) fails with STRATA_EIO and does nothing.
 *
 * It must never print, retry a failed fsync (the page cache may already have
 * dropped the dirty data: reporting is the only honest answer), or leave a
 * temporary file behind on a failure it can clean up.
 */
#include "fio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "err.h"
#include "failpoint.h"
#include "fio_record.h"

#define FIO_PATH_MAX 4096
#define FIO_CHUNK_MAX (1u << 30) /* Linux moves at most ~2 GiB per call anyway */

static const char *fio_errstr(int e)
{
	return e == FP_SHORT ? "short write (injected)" : strerror(e);
}

/* Record a failed `op` on `path` with the code for -neg_errno; returns the code. */
static int fio_fail(int neg_errno, const char *op, const char *path)
{
	return err_set(err_from_errno(neg_errno), "%s %s: %s", op, path ? path : "(fd)",
	               fio_errstr(-neg_errno));
}

/* The recorder's simulated machine is off: the call did nothing. */
static int fio_dead(const char *op, const char *path)
{
	return err_set(STRATA_EIO, "%s %s: power lost (simulated)", op, path ? path : "(fd)");
}

int fio_open(const char *path, int flags, mode_t mode, int *fd_out)
{
	int rc = fp_inject(FP_OPEN);
	if (rc)
		return fio_fail(rc, "open", path);
	struct fio_rec_op op = {.kind = FIO_REC_OPEN, .path = path, .flags = flags};
	if (fio_rec_begin(&op))
		return fio_dead("open", path);
	int fd;
	do
		fd = open(path, flags | O_CLOEXEC, mode);
	while (fd < 0 && errno == EINTR);
	int e = errno;
	op.fd = fd;
	fio_rec_end(&op, fd < 0 ? -e : 0, 0);
	if (fd < 0)
		return fio_fail(-e, "open", path);
	*fd_out = fd;
	return 0;
}

int fio_close(int fd)
{
	struct fio_rec_op op = {.kind = FIO_REC_CLOSE, .fd = fd};
	fio_rec_begin(&op); /* never dead: a close changes nothing durable */
	/* Linux releases the descriptor even when close() reports EINTR: never retry. */
	int r = close(fd), e = errno;
	fio_rec_end(&op, r ? -e : 0, 0);
	if (r != 0 && e != EINTR)
		return err_set(err_from_errno(-e), "close fd %d: %s", fd, strerror(e));
	return 0;
}

static bool fio_span_ok(size_t len, uint64_t off)
{
	return off <= (uint64_t)INT64_MAX && (uint64_t)len <= (uint64_t)INT64_MAX - off;
}

int fio_pwrite_all(int fd, const void *buf, size_t len, uint64_t off, const char *path)
{
	int inj = fp_inject(FP_WRITE);
	size_t todo = len;
	if (inj == -FP_SHORT)
		todo = len / 2; /* a torn write: the first half lands, then the device "fails" */
	else if (inj)
		return fio_fail(inj, "write", path);
	if (!fio_span_ok(len, off))
		return err_set(STRATA_ELIMIT, "write %s: %zu bytes at offset %llu pass the largest file offset",
		               path, len, (unsigned long long)off);
	struct fio_rec_op op = {.kind = FIO_REC_PWRITE, .fd = fd, .buf = buf, .len = len, .off = off};
	if (fio_rec_begin(&op))
		return fio_dead("write", path);

	const uint8_t *p = buf;
	size_t done = 0;
	int rc = 0;
	while (done < todo) {
		size_t chunk = todo - done < FIO_CHUNK_MAX ? todo - done : FIO_CHUNK_MAX;
		ssize_t n = pwrite(fd, p + done, chunk, (off_t)(off + done));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = fio_fail(-errno, "write", path);
			break;
		}
		if (n == 0) {
			rc = err_set(STRATA_EIO, "write %s: no progress at offset %llu", path,
			             (unsigned long long)(off + done));
			break;
		}
		done += (size_t)n;
	}
	fio_rec_end(&op, rc, done); /* what landed counts, even when the call fails */
	if (rc)
		return rc;
	if (inj == -FP_SHORT)
		return err_set(STRATA_EIO, "write %s: torn write (injected): %zu of %zu bytes at offset %llu",
		               path, todo, len, (unsigned long long)off);
	return 0;
}

int fio_pread_all(int fd, void *buf, size_t len, uint64_t off, const char *path)
{
	int inj = fp_inject(FP_READ);
	if (inj)
		return fio_fail(inj, "read", path);
	if (!fio_span_ok(len, off))
		return err_set(STRATA_ELIMIT, "read %s: %zu bytes at offset %llu pass the largest file offset",
		               path, len, (unsigned long long)off);

	uint8_t *p = buf;
	size_t done = 0;
	while (done < len) {
		size_t chunk = len - done < FIO_CHUNK_MAX ? len - done : FIO_CHUNK_MAX;
		ssize_t n = pread(fd, p + done, chunk, (off_t)(off + done));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return fio_fail(-errno, "read", path);
		}
		if (n == 0)
			return err_set(STRATA_ETRUNCATED, "read %s: the file ends at %llu, %zu bytes wanted at %llu",
			               path, (unsigned long long)(off + done), len, (unsigned long long)off);
		done += (size_t)n;
	}
	return 0;
}

int fio_read(int fd, void *buf, size_t len, size_t *n_out, const char *path)
{
	int inj = fp_inject(FP_READ);
	if (inj)
		return fio_fail(inj, "read", path);
	if (len > FIO_CHUNK_MAX)
		len = FIO_CHUNK_MAX;
	ssize_t n;
	do
		n = read(fd, buf, len);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return fio_fail(-errno, "read", path);
	*n_out = (size_t)n;
	return 0;
}

int fio_write_all(int fd, const void *buf, size_t len, const char *path)
{
	int inj = fp_inject(FP_WRITE);
	size_t todo = len;
	if (inj == -FP_SHORT)
		todo = len / 2;
	else if (inj)
		return fio_fail(inj, "write", path);
	struct fio_rec_op op = {.kind = FIO_REC_WRITE, .fd = fd, .buf = buf, .len = len};
	if (fio_rec_begin(&op))
		return fio_dead("write", path);
	const uint8_t *p = buf;
	size_t done = 0;
	int rc = 0;
	while (done < todo) {
		size_t chunk = todo - done < FIO_CHUNK_MAX ? todo - done : FIO_CHUNK_MAX;
		ssize_t n = write(fd, p + done, chunk);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = fio_fail(-errno, "write", path);
			break;
		}
		if (n == 0) {
			rc = err_set(STRATA_EIO, "write %s: no progress after %zu bytes", path, done);
			break;
		}
		done += (size_t)n;
	}
	fio_rec_end(&op, rc, done);
	if (rc)
		return rc;
	if (inj == -FP_SHORT)
		return err_set(STRATA_EIO, "write %s: torn write (injected): %zu of %zu bytes", path,
		               todo, len);
	return 0;
}

/* fsync or fdatasync, retried on EINTR, through the failpoints and the recorder. */
static int fio_sync_call(int fd, const char *path, int (*call)(int), const char *what)
{
	int inj = fp_inject(FP_FSYNC);
	if (inj)
		return fio_fail(inj, what, path);
	struct fio_rec_op op = {.kind = FIO_REC_FSYNC, .fd = fd};
	if (fio_rec_begin(&op))
		return fio_dead(what, path);
	int r;
	do
		r = call(fd);
	while (r != 0 && errno == EINTR);
	int e = errno;
	fio_rec_end(&op, r ? -e : 0, 0);
	return r ? fio_fail(-e, what, path) : 0;
}

int fio_fsync(int fd, const char *path)
{
	return fio_sync_call(fd, path, fsync, "fsync");
}

int fio_fdatasync(int fd, const char *path)
{
	return fio_sync_call(fd, path, fdatasync, "fdatasync");
}

int fio_file_size(int fd, uint64_t *size_out, const char *path)
{
	struct stat st;
	if (fstat(fd, &st) != 0)
		return fio_fail(-errno, "stat", path);
	*size_out = st.st_size > 0 ? (uint64_t)st.st_size : 0;
	return 0;
}

int fio_ftruncate(int fd, uint64_t len, const char *path)
{
	int inj = fp_inject(FP_WRITE);
	if (inj)
		return fio_fail(inj == -FP_SHORT ? -EIO : inj, "truncate", path);
	if (len > (uint64_t)INT64_MAX)
		return err_set(STRATA_ELIMIT, "truncate %s: length %llu passes the largest file offset", path,
		               (unsigned long long)len);
	struct fio_rec_op op = {.kind = FIO_REC_FTRUNCATE, .fd = fd, .off = len};
	if (fio_rec_begin(&op))
		return fio_dead("truncate", path);
	int r;
	do
		r = ftruncate(fd, (off_t)len);
	while (r != 0 && errno == EINTR);
	int e = errno;
	fio_rec_end(&op, r ? -e : 0, 0);
	return r ? fio_fail(-e, "truncate", path) : 0;
}

int fio_rename(const char *from, const char *to)
{
	int inj = fp_inject(FP_RENAME);
	struct fio_rec_op op = {.kind = FIO_REC_RENAME, .path = from, .path2 = to};
	if (!inj && fio_rec_begin(&op))
		return err_set(STRATA_EIO, "rename %s to %s: power lost (simulated)", from, to);
	int e = inj ? -inj : rename(from, to) != 0 ? errno : 0;
	if (!inj)
		fio_rec_end(&op, -e, 0);
	if (e)
		return err_set(err_from_errno(-e), "rename %s to %s: %s", from, to, fio_errstr(e));
	return 0;
}

int fio_unlink(const char *path)
{
	int inj = fp_inject(FP_UNLINK);
	if (inj)
		return fio_fail(inj, "unlink", path);
	struct fio_rec_op op = {.kind = FIO_REC_UNLINK, .path = path};
	if (fio_rec_begin(&op))
		return fio_dead("unlink", path);
	int r = unlink(path), e = errno;
	fio_rec_end(&op, r ? -e : 0, 0);
	return r ? fio_fail(-e, "unlink", path) : 0;
}

int fio_discard(const char *path)
{
	int inj = fp_inject(FP_UNLINK);
	if (inj)
		return err_from_errno(inj);
	struct fio_rec_op op = {.kind = FIO_REC_UNLINK, .path = path};
	if (fio_rec_begin(&op))
		return STRATA_EIO;
	int r = unlink(path), e = errno;
	fio_rec_end(&op, r ? -e : 0, 0);
	if (r != 0 && e != ENOENT)
		return err_from_errno(-e);
	return 0;
}

int fio_mkdir(const char *path, mode_t mode)
{
	int inj = fp_inject(FP_MKDIR);
	if (inj)
		return fio_fail(inj, "mkdir", path);
	struct fio_rec_op op = {.kind = FIO_REC_MKDIR, .path = path};
	if (fio_rec_begin(&op))
		return fio_dead("mkdir", path);
	int r = mkdir(path, mode), e = errno;
	fio_rec_end(&op, r ? -e : 0, 0);
	return r ? fio_fail(-e, "mkdir", path) : 0;
}

int fio_rmdir(const char *path)
{
	int inj = fp_inject(FP_UNLINK);
	if (inj)
		return fio_fail(inj, "rmdir", path);
	struct fio_rec_op op = {.kind = FIO_REC_UNLINK, .path = path};
	if (fio_rec_begin(&op))
		return fio_dead("rmdir", path);
	int r = rmdir(path), e = errno;
	fio_rec_end(&op, r ? -e : 0, 0);
	return r ? fio_fail(-e, "rmdir", path) : 0;
}

int fio_mkdtemp(char *tmpl)
{
	int inj = fp_inject(FP_MKDIR);
	if (inj)
		return fio_fail(inj, "mkdtemp", tmpl);
	struct fio_rec_op op = {.kind = FIO_REC_MKDIR, .path = tmpl};
	if (fio_rec_begin(&op))
		return fio_dead("mkdtemp", tmpl);
	bool ok = mkdtemp(tmpl) != NULL;
	int e = errno;
	fio_rec_end(&op, ok ? 0 : -e, 0);
	return ok ? 0 : fio_fail(-e, "mkdtemp", tmpl);
}

int fio_free_bytes(const char *path, uint64_t *bytes_out)
{
	struct statvfs sv;
	if (statvfs(path, &sv) != 0)
		return fio_fail(-errno, "statvfs", path);
	uint64_t f = (uint64_t)sv.f_frsize ? (uint64_t)sv.f_frsize : (uint64_t)sv.f_bsize;
	uint64_t blocks = (uint64_t)sv.f_bavail;
	*bytes_out = blocks > UINT64_MAX / (f ? f : 1) ? UINT64_MAX : blocks * f;
	return 0;
}

int fio_fsync_dir(const char *dir)
{
	int fd = -1;
	int rc = fio_open(dir, O_RDONLY | O_DIRECTORY, 0, &fd);
	if (rc)
		return rc;
	rc = fio_fsync(fd, dir);
	int rc2 = fio_close(fd);
	return rc ? rc : rc2;
}

int fio_mmap_ro(int fd, size_t len, const char *path, const void **addr_out)
{
	int inj = fp_inject(FP_MMAP);
	if (inj)
		return fio_fail(inj, "mmap", path);
	if (len == 0) {
		*addr_out = NULL; /* mmap refuses a zero length; there is nothing to map */
		return 0;
	}
	void *p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return fio_fail(-errno, "mmap", path);
	*addr_out = p;
	return 0;
}

void fio_munmap(const void *addr, size_t len)
{
	if (addr && len)
		munmap((void *)(uintptr_t)addr, len);
}

int fio_read_file(const char *path, size_t max_len, uint8_t **buf_out, size_t *len_out)
{
	int fd = -1;
	uint8_t *buf = NULL;
	uint64_t size;
	int rc = fio_open(path, O_RDONLY, 0, &fd);
	if (rc)
		return rc;
	if ((rc = fio_file_size(fd, &size, path)))
		goto fail;
	/* Refuse before allocating: the size comes from a file that may be hostile. */
	if (size > max_len) {
		rc = err_set(STRATA_ELIMIT, "%s: %llu bytes, more than the %zu this file may hold", path,
		             (unsigned long long)size, max_len);
		goto fail;
	}
	buf = malloc(size ? (size_t)size : 1);
	if (!buf) {
		rc = err_set(STRATA_ENOMEM, "%s: %llu bytes", path, (unsigned long long)size);
		goto fail;
	}
	if ((rc = fio_pread_all(fd, buf, (size_t)size, 0, path)))
		goto fail;
	fio_close(fd); /* read-only: nothing a failed close could lose */
	*buf_out = buf;
	*len_out = (size_t)size;
	return 0;
fail:
	free(buf);
	if (fd >= 0)
		fio_close(fd);
	return rc;
}

static int fio_join(char *buf, size_t len, const char *dir, const char *name, const char *suffix)
{
	int n = snprintf(buf, len, "%s/%s%s", dir, name, suffix);
	if (n < 0 || (size_t)n >= len)
		return err_set(STRATA_EINVAL, "%s/%s%s: path too long", dir, name, suffix);
	return 0;
}

int fio_write_file_atomic(const char *dir, const char *name, const void *buf, size_t len)
{
	char tmp[FIO_PATH_MAX], dst[FIO_PATH_MAX];
	int fd = -1;
	bool renamed = false;
	int rc;

	if ((rc = fio_join(tmp, sizeof tmp, dir, name, ".tmp")) ||
	    (rc = fio_join(dst, sizeof dst, dir, name, "")))
		return rc;
	/* O_TRUNC: a .tmp left by a crash is stale by definition and is overwritten. */
	if ((rc = fio_open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644, &fd)))
		return rc;
	if ((rc = fio_pwrite_all(fd, buf, len, 0, tmp)) || (rc = fio_fsync(fd, tmp)))
		goto fail;
	fp_step("atomic.tmp_synced");
	rc = fio_close(fd);
	fd = -1;
	if (rc || (rc = fio_rename(tmp, dst)))
		goto fail;
	renamed = true;
	fp_step("atomic.renamed");
	/* The new contents are in place but durable only once the directory is synced. */
	if ((rc = fio_fsync_dir(dir)))
		goto fail;
	return 0;
fail:
	if (fd >= 0)
		fio_close(fd);
	if (!renamed)
		fio_discard(tmp);
	return rc;
}

int fio_dir_free_for(const char *dir)
{
	struct stat st;
	if (stat(dir, &st) != 0)
		return errno == ENOENT ? 0 : err_set(err_from_errno(-errno), "%s: %s", dir, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return err_set(STRATA_EEXIST, "%s exists and is not a directory", dir);
	DIR *d = opendir(dir);
	if (!d)
		return err_set(err_from_errno(-errno), "%s: %s", dir, strerror(errno));
	struct dirent *e;
	int rc = 0;
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
			rc = err_set(STRATA_EEXIST, "%s exists and is not empty", dir);
			break;
		}
	}
	closedir(d);
	return rc;
}

/*
 * The write or sync already happened (io_uring); the recorder only learns of
 * it. If the simulated machine is dead by now, the recorder drops it: what
 * reached the page cache after the power loss is not on the disk.
 */
void fio_note_write(int fd, const void *buf, size_t len, uint64_t off)
{
	struct fio_rec_op op = {.kind = FIO_REC_PWRITE, .fd = fd, .buf = buf, .len = len, .off = off};
	if (fio_rec_begin(&op) == 0)
		fio_rec_end(&op, 0, len);
}

void fio_note_sync(int fd)
{
	struct fio_rec_op op = {.kind = FIO_REC_FSYNC, .fd = fd};
	if (fio_rec_begin(&op) == 0)
		fio_rec_end(&op, 0, 0);
}
