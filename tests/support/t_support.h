/*
 * t_support.h - helpers shared by the Criterion tests: temporary directories,
 * the real datasets of ../shared/data, random vectors, brute-force truth.
 * Test-only code; it may abort on its own failures (never the library's).
 */
#ifndef STRATA_T_SUPPORT_H
#define STRATA_T_SUPPORT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "strata.h"

/* A fresh empty directory under $STRATA_TEST_TMP (or /tmp); removed by t_dir_free. */
struct t_dir {
	char path[512];
};
struct t_dir t_dir_new(void);
/* The same in memory (/dev/shm when there is one): for tests of content, not of
 * durability, whose many fsyncs would otherwise cost ~6 ms each on a real disk. */
struct t_dir t_dir_new_mem(void);
struct t_dir t_dir_new_in(const char *base);
void t_dir_free(struct t_dir *d);
/* path/name into buf (static per call site is not safe: pass a buffer). */
const char *t_path(const struct t_dir *d, const char *name, char *buf, size_t len);

/*
 * End a fork()ed child at once (_exit: no atexit handlers, no stdio flush),
 * but first write its coverage counters when the build measures coverage
 * (-Db_coverage=true, STRATA_COVERAGE=1), so that what the child ran counts.
 */
_Noreturn void t_child_exit(int code);

/* Remove a file tree (rm -rf). */
void t_rmtree(const char *path);

/* A file read whole; NULL data if it does not exist. */
struct t_blob {
	uint8_t *data;
	size_t len;
};
struct t_blob t_read_file(const char *path);
void t_write_file(const char *path, const void *data, size_t len);

/*
 * Path of a dataset file relative to ../shared/data ($STRATA_DATA), e.g.
 * "siftsmall/siftsmall_base.fvecs". If it is missing the test is skipped
 * (Criterion skip), so the suite runs without the datasets too.
 */
const char *t_data_path(const char *rel, char *buf, size_t len);

/* A matrix of float32 rows read from .fvecs, or int32 rows from .ivecs. */
struct t_mat {
	float *f;     /* rows * dim, for fvecs */
	int32_t *i;   /* rows * dim, for ivecs */
	size_t rows;
	size_t dim;
};
struct t_mat t_read_fvecs(const char *path, size_t max_rows); /* max_rows 0 = all */
struct t_mat t_read_ivecs(const char *path, size_t max_rows);
void t_mat_free(struct t_mat *m);

/* n * dim uniform floats in [0,1) from a fixed seed (splitmix64). */
float *t_random_vectors(size_t n, size_t dim, uint64_t seed);

/*
 * Exact k nearest of each query by brute force in double precision, with
 * strata's metric conventions (cosine normalises both sides). Ties are broken
 * by lower row. out: nq * k row numbers.
 */
void t_brute_force(const float *base, size_t n, const float *queries, size_t nq, size_t dim,
                   strata_metric metric, size_t k, uint32_t *out);

/* Mean recall@k of found ids (nq * k, as row numbers/ids) against truth (nq * truth_k). */
double t_recall(const uint64_t *found, size_t nq, size_t k, const uint32_t *truth, size_t truth_k);

/*
 * One WAL record (FORMAT.md 10.3) framed by format/'s walrec_encode around
 * the payload iov[0..iovcnt): a malloc'd buffer of *len_out bytes.
 */
uint8_t *t_wal_record(unsigned type, uint64_t lsn, const struct iovec *iov, int iovcnt,
                      size_t *len_out);

#endif /* STRATA_T_SUPPORT_H */
