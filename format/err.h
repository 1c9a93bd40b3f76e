/*
 * err.h - error detail for the calling thread.
 *
 * Codes are the public STRATA_E* values (engine/strata.h). Beside the code,
 * the failing layer writes one sentence into a thread-local buffer that
 * strata_last_error_detail() returns: which file, offset, row or field.
 * ERR_CORRUPT() additionally records the source file:line in debug and fuzz
 * builds (STRATA_ERR_ORIGIN), so tests and `strata verify -v` can tell which
 * check fired.
 */
#ifndef STRATA_ERR_H
#define STRATA_ERR_H

#include "strata.h"

#define ERR_DETAIL_MAX 512

/* 1 when ERR_CORRUPT()/err_set_at() prefix the detail with "file.c:line: ". */
#ifndef STRATA_ERR_ORIGIN
#if !defined(NDEBUG) || (defined(STRATA_FUZZ_NO_CHECKSUMS) && STRATA_FUZZ_NO_CHECKSUMS)
#define STRATA_ERR_ORIGIN 1
#else
#define STRATA_ERR_ORIGIN 0
#endif
#endif

/* Record `rc` with a printf-style detail; returns rc so callers can `return err_set(...)`. */
int err_set(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Same, with the source position of the check prepended in debug builds. */
int err_set_at(int rc, const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Prefix the current detail with "<prefix>: " (e.g. the file name). Returns rc. */
int err_prefix(int rc, const char *prefix);

/* Forget the detail (at the start of each public call). */
void err_clear(void);

/* The current thread's detail ("" if none). */
const char *err_detail(void);

/* Map an -errno from the I/O seam to a STRATA_E* code. */
int err_from_errno(int neg_errno);

#define ERR_CORRUPT(...) err_set_at(STRATA_ECORRUPT, __FILE__, __LINE__, __VA_ARGS__)

#endif /* STRATA_ERR_H */
