/*
 * err.c - the error detail of the calling thread, the errno mapping of the
 * I/O seam, and the public strata_strerror() / strata_last_error_detail().
 *
 * Owns one thread-local buffer of ERR_DETAIL_MAX bytes. It must never
 * allocate, print, or fail: it runs on every error path, including
 * out-of-memory ones. Codes and their meaning: engine/strata.h.
 */
#include "err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char err_buf[ERR_DETAIL_MAX];

/*
 * Format into a scratch buffer first: callers legitimately pass the current
 * detail as an argument (err_set(rc, "%s", err_detail())), and vsnprintf
 * into its own source is undefined.
 */
static void err_write(const char *origin_file, int origin_line, const char *fmt, va_list ap)
{
	char tmp[ERR_DETAIL_MAX];
	size_t n = 0;

	tmp[0] = '\0';
	if (origin_file) {
		const char *base = strrchr(origin_file, '/');
		int w = snprintf(tmp, sizeof tmp, "%s:%d: ", base ? base + 1 : origin_file,
		                 origin_line);
		n = w < 0 ? 0 : (size_t)w < sizeof tmp ? (size_t)w : sizeof tmp - 1;
	}
	vsnprintf(tmp + n, sizeof tmp - n, fmt, ap);
	memcpy(err_buf, tmp, sizeof err_buf);
}

int err_set(int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	err_write(NULL, 0, fmt, ap);
	va_end(ap);
	return rc;
}

int err_set_at(int rc, const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
#if STRATA_ERR_ORIGIN
	err_write(file, line, fmt, ap);
#else
	(void)file;
	(void)line;
	err_write(NULL, 0, fmt, ap);
#endif
	va_end(ap);
	return rc;
}

/* Append `s` to dst[0..n) within ERR_DETAIL_MAX, truncating; returns the new length. */
static size_t err_append(char *dst, size_t n, const char *s)
{
	size_t room = ERR_DETAIL_MAX - 1 - n;
	size_t k = strlen(s);
	if (k > room)
		k = room;
	memcpy(dst + n, s, k);
	dst[n + k] = '\0';
	return n + k;
}

int err_prefix(int rc, const char *prefix)
{
	char tmp[ERR_DETAIL_MAX];
	size_t n;
	if (!prefix || !*prefix)
		return rc;
	n = err_append(tmp, 0, prefix);
	if (err_buf[0]) {
		n = err_append(tmp, n, ": ");
		err_append(tmp, n, err_buf);
	}
	memcpy(err_buf, tmp, sizeof err_buf);
	return rc;
}

void err_clear(void)
{
	err_buf[0] = '\0';
}

const char *err_detail(void)
{
	return err_buf;
}

int err_from_errno(int neg_errno)
{
	/* Tolerate a positive errno too: the sign is a convention, not a contract with the OS. */
	int e = neg_errno < 0 ? -neg_errno : neg_errno;

	switch (e) {
	case 0:
		return STRATA_OK;
	case ENOENT:
		return STRATA_ENOTFOUND;
	case EEXIST:
		return STRATA_EEXIST;
	case EACCES:
	case EPERM:
	case EROFS:
		return STRATA_EPERM;
	case ENOSPC:
	case EDQUOT:
		return STRATA_ENOSPC;
	case ENOMEM:
		return STRATA_ENOMEM;
	case EFBIG:
		return STRATA_ELIMIT;
	default:
		return STRATA_EIO;
	}
}

STRATA_API const char *strata_strerror(int rc)
{
	switch (rc) {
	case STRATA_OK:
		return "success";
	case STRATA_EINVAL:
		return "invalid argument";
	case STRATA_EDIM:
		return "vector dimension differs from the database's or is out of range";
	case STRATA_EMETRIC:
		return "metric differs from the database's or is unknown";
	case STRATA_ENOTFOUND:
		return "not found";
	case STRATA_EEXIST:
		return "already exists";
	case STRATA_EBUSY:
		return "another writer holds the database";
	case STRATA_EREADONLY:
		return "the database is open read-only";
	case STRATA_ENONFINITE:
		return "a vector holds NaN or infinity";
	case STRATA_EDUPLICATE:
		return "the same id appears twice";
	case STRATA_ENOMEM:
		return "out of memory";
	case STRATA_ELIMIT:
		return "a count or size beyond what strata supports";
	case STRATA_ENOSPC:
		return "no space left on the device";
	case STRATA_EIO:
		return "input/output error";
	case STRATA_EFSYNC:
		return "sync to stable storage failed; the database refuses further writes";
	case STRATA_EPERM:
		return "permission denied";
	case STRATA_ENOTDB:
		return "not a strata file (wrong magic)";
	case STRATA_EVERSION:
		return "a file format version this build cannot read";
	case STRATA_ECORRUPT:
		return "file structure is corrupt";
	case STRATA_ECHECKSUM:
		return "checksum mismatch: the file is damaged";
	case STRATA_ETRUNCATED:
		return "the file is shorter than its header says (truncated)";
	default:
		return "unknown error";
	}
}

STRATA_API const char *strata_last_error_detail(void)
{
	return err_buf;
}
