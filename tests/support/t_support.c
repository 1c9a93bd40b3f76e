/*
 * t_support.c - see t_support.h. Test code: failures here abort the test
 * process with a message (Criterion reports the crash), they are never
 * expected outcomes.
 */
#include "t_support.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "wal_record.h"

#if STRATA_COVERAGE
void __gcov_dump(void); /* libgcov's: write the counters now */
#endif

_Noreturn void t_child_exit(int code)
{
#if STRATA_COVERAGE
	__gcov_dump();
#endif
	_exit(code);
}

static void t_die(const char *what, const char *path)
{
	fprintf(stderr, "t_support: %s: %s: %s\n", what, path, strerror(errno));
	abort();
}

struct t_dir t_dir_new(void)
{
	return t_dir_new_in(getenv("STRATA_TEST_TMP"));
}

struct t_dir t_dir_new_mem(void)
{
	struct stat st;
	return t_dir_new_in(stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm"
	                                                                       : getenv("STRATA_TEST_TMP"));
}

struct t_dir t_dir_new_in(const char *base)
{
	struct t_dir d;
	if (!base || !*base)
		base = "/tmp";
	mkdir(base, 0755);
	snprintf(d.path, sizeof d.path, "%s/strata-t-XXXXXX", base);
	if (!mkdtemp(d.path))
		t_die("mkdtemp", d.path);
	return d;
}

static int t_rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

void t_rmtree(const char *path)
{
	nftw(path, t_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

void t_dir_free(struct t_dir *d)
{
	t_rmtree(d->path);
}

const char *t_path(const struct t_dir *d, const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s", d->path, name);
	return buf;
}

struct t_blob t_read_file(const char *path)
{
	struct t_blob b = {0};
	FILE *f = fopen(path, "rb");
	if (!f)
		return b;
	fseek(f, 0, SEEK_END);
	long sz = ftell(f);
	fseek(f, 0, SEEK_SET);
	b.data = malloc(sz > 0 ? (size_t)sz : 1);
	b.len = (size_t)sz;
	if (!b.data || fread(b.data, 1, b.len, f) != b.len)
		t_die("read", path);
	fclose(f);
	return b;
}

void t_write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0)
		t_die("write", path);
}

const char *t_data_path(const char *rel, char *buf, size_t len)
{
	const char *base = getenv("STRATA_DATA");
	if (!base || !*base)
		base = "../shared/data";
	snprintf(buf, len, "%s/%s", base, rel);
	if (access(buf, R_OK) != 0)
		cr_skip_test("dataset %s not found (set STRATA_DATA)", buf);
	return buf;
}

static struct t_mat t_read_vecs(const char *path, size_t max_rows, int is_float)
{
	struct t_mat m = {0};
	struct t_blob b = t_read_file(path);
	if (!b.data)
		t_die("open", path);
	int32_t d;
	memcpy(&d, b.data, 4);
	if (d <= 0)
		t_die("bad dim", path);
	size_t rec = 4 + 4 * (size_t)d;
	size_t rows = b.len / rec;
	if (max_rows && rows > max_rows)
		rows = max_rows;
	m.rows = rows;
	m.dim = (size_t)d;
	void *dst = malloc(rows * m.dim * 4);
	if (!dst)
		t_die("malloc", path);
	for (size_t r = 0; r < rows; r++)
		memcpy((uint8_t *)dst + r * m.dim * 4, b.data + r * rec + 4, m.dim * 4);
	if (is_float)
		m.f = dst;
	else
		m.i = dst;
	free(b.data);
	return m;
}

struct t_mat t_read_fvecs(const char *path, size_t max_rows)
{
	return t_read_vecs(path, max_rows, 1);
}

struct t_mat t_read_ivecs(const char *path, size_t max_rows)
{
	return t_read_vecs(path, max_rows, 0);
}

void t_mat_free(struct t_mat *m)
{
	free(m->f);
	free(m->i);
	m->f = NULL;
	m->i = NULL;
}

static uint64_t t_splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

float *t_random_vectors(size_t n, size_t dim, uint64_t seed)
{
	float *v = malloc(n * dim * sizeof *v + 1);
	if (!v)
		t_die("malloc", "random vectors");
	uint64_t s = seed;
	for (size_t i = 0; i < n * dim; i++)
		v[i] = (float)((t_splitmix(&s) >> 40) * (1.0 / 16777216.0));
	return v;
}

struct t_cand {
	double d;
	uint32_t row;
};

static int t_cand_cmp(const void *a, const void *b)
{
	const struct t_cand *x = a, *y = b;
	if (x->d != y->d)
		return x->d < y->d ? -1 : 1;
	return x->row < y->row ? -1 : (x->row > y->row);
}

void t_brute_force(const float *base, size_t n, const float *queries, size_t nq, size_t dim,
                   strata_metric metric, size_t k, uint32_t *out)
{
	struct t_cand *c = malloc(n * sizeof *c + 1);
	double *bnorm = malloc(n * sizeof *bnorm + 1);
	if (!c || !bnorm)
		t_die("malloc", "brute force");
	for (size_t i = 0; i < n; i++) {
		double s = 0;
		for (size_t j = 0; j < dim; j++)
			s += (double)base[i * dim + j] * base[i * dim + j];
		bnorm[i] = sqrt(s);
	}
	for (size_t q = 0; q < nq; q++) {
		const float *x = queries + q * dim;
		double qn = 0;
		for (size_t j = 0; j < dim; j++)
			qn += (double)x[j] * x[j];
		qn = sqrt(qn);
		for (size_t i = 0; i < n; i++) {
			const float *y = base + i * dim;
			double acc = 0;
			if (metric == STRATA_METRIC_L2) {
				for (size_t j = 0; j < dim; j++) {
					double t = (double)x[j] - y[j];
					acc += t * t;
				}
			} else {
				for (size_t j = 0; j < dim; j++)
					acc += (double)x[j] * y[j];
				if (metric == STRATA_METRIC_COSINE)
					acc = (qn > 0 && bnorm[i] > 0) ? acc / (qn * bnorm[i]) : 0;
				acc = 1.0 - acc;
			}
			c[i].d = acc;
			c[i].row = (uint32_t)i;
		}
		qsort(c, n, sizeof *c, t_cand_cmp);
		for (size_t i = 0; i < k; i++)
			out[q * k + i] = i < n ? c[i].row : UINT32_MAX;
	}
	free(c);
	free(bnorm);
}

double t_recall(const uint64_t *found, size_t nq, size_t k, const uint32_t *truth, size_t truth_k)
{
	size_t hit = 0;
	for (size_t q = 0; q < nq; q++)
		for (size_t i = 0; i < k; i++)
			for (size_t j = 0; j < k && j < truth_k; j++)
				if (found[q * k + i] == truth[q * truth_k + j]) {
					hit++;
					break;
				}
	return nq ? (double)hit / (double)(nq * k) : 1.0;
}

uint8_t *t_wal_record(unsigned type, uint64_t lsn, const struct iovec *iov, int iovcnt,
                      size_t *len_out)
{
	uint8_t hdr[WAL_RECORD_HEADER_SIZE], tail[WAL_RECORD_TAIL_MAX];
	size_t tl;
	uint32_t total;
	int rc = walrec_encode(type, lsn, iov, iovcnt, hdr, tail, &tl, &total);
	cr_assert_eq(rc, 0, "walrec_encode: %s", err_detail());
	uint8_t *b = malloc(total);
	uint8_t *p = b;
	memcpy(p, hdr, sizeof hdr);
	p += sizeof hdr;
	for (int i = 0; i < iovcnt; i++) {
		memcpy(p, iov[i].iov_base, iov[i].iov_len);
		p += iov[i].iov_len;
	}
	memcpy(p, tail, tl);
	cr_assert_eq((size_t)(p + tl - b), total);
	*len_out = total;
	return b;
}
