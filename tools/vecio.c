/*
 * vecio.c - parsers for the vector, ground-truth and id files of the
 * `strata` program (see vecio.h for the formats and the error contract).
 *
 * Every size read from a file is checked against the real length before it
 * drives a loop or an allocation: a 12-byte file that claims 2^31 rows costs
 * nothing. Nothing here prints or exits; the caller owns the message.
 */
#include "vecio.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "strata.h"

#define NPY_MAGIC "\x93NUMPY"
#define NPY_MAGIC_LEN 6
#define NPY_DESCR_MAX 32
#define NPY_NDIM_MAX 8

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define VECIO_HOST_LE 1
#else
#define VECIO_HOST_LE 0
#endif

static int fail(char *err, size_t err_len, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t err_len, int rc, const char *fmt, ...)
{
	if (err && err_len) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, err_len, fmt, ap);
		va_end(ap);
	}
	return rc;
}

static uint32_t ld32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t ld64(const uint8_t *p)
{
	return (uint64_t)ld32(p) | (uint64_t)ld32(p + 4) << 32;
}

static float ldf32(const uint8_t *p)
{
	uint32_t u = ld32(p);
	float f;
	memcpy(&f, &u, sizeof f);
	return f;
}

/* Row `r` of n x dim floats must be finite; the message names the first bad component. */
static int check_finite_row(const float *row, uint32_t dim, size_t r, char *err, size_t err_len)
{
	for (uint32_t j = 0; j < dim; j++) {
		if (!isfinite(row[j]))
			return fail(err, err_len, STRATA_ENONFINITE, "row %zu, component %u is %s", r, j,
			            isnan(row[j]) ? "NaN" : "infinite");
	}
	return 0;
}

/* ---- TEXMEX (.fvecs, .bvecs, .ivecs) ------------------------------------------ */

/*
 * Check every row header of a TEXMEX file whose components are `esize` bytes:
 * same dim in every row, no partial row at the end. Fills rows and dim.
 */
static int texmex_scan(const uint8_t *buf, size_t len, size_t esize, const char *ext,
                       size_t *rows_out, uint32_t *dim_out, char *err, size_t err_len)
{
	if (len == 0)
		return fail(err, err_len, STRATA_EINVAL, "the file is empty");
	if (len < 4)
		return fail(err, err_len, STRATA_ETRUNCATED,
		            "row 0 is truncated: %zu bytes, shorter than its 4-byte header", len);
	int32_t d = (int32_t)ld32(buf);
	if (d <= 0 || (uint32_t)d > STRATA_DIM_MAX)
		return fail(err, err_len, STRATA_EDIM,
		            "row 0 has dimension %d, outside 1..%u (is this really a .%s file?)", d,
		            STRATA_DIM_MAX, ext);
	size_t rec = 4 + (size_t)d * esize;
	size_t r = 0;
	for (size_t off = 0; off < len; off += rec, r++) {
		size_t left = len - off;
		if (left < 4)
			return fail(err, err_len, STRATA_ETRUNCATED,
			            "row %zu is truncated: %zu of %zu bytes", r, left, rec);
		int32_t dr = (int32_t)ld32(buf + off);
		if (dr != d)
			return fail(err, err_len, STRATA_EDIM,
			            "row %zu has dimension %d, but row 0 has %d (byte offset %zu)", r, dr,
			            d, off);
		if (left < rec)
			return fail(err, err_len, STRATA_ETRUNCATED,
			            "row %zu is truncated: %zu of %zu bytes", r, left, rec);
	}
	*rows_out = r;
	*dim_out = (uint32_t)d;
	return 0;
}

/* rows x cols elements of esize bytes, with every multiplication checked. */
static int alloc_matrix(size_t rows, uint32_t cols, size_t esize, void **out, char *err,
                        size_t err_len)
{
	size_t n;
	if (__builtin_mul_overflow(rows, (size_t)cols, &n) || __builtin_mul_overflow(n, esize, &n))
		return fail(err, err_len, STRATA_ELIMIT, "%zu x %u values do not fit in memory", rows,
		            cols);
	*out = malloc(n ? n : 1);
	if (!*out)
		return fail(err, err_len, STRATA_ENOMEM, "no memory for %zu x %u values", rows, cols);
	return 0;
}

static int alloc_floats(size_t rows, uint32_t dim, float **out, char *err, size_t err_len)
{
	void *p = NULL;
	int rc = alloc_matrix(rows, dim, sizeof(float), &p, err, err_len);
	*out = p;
	return rc;
}

static int decode_texmex_vectors(const uint8_t *buf, size_t len, bool bytes,
                                 struct vecio_mat *out, char *err, size_t err_len)
{
	size_t rows;
	uint32_t dim;
	size_t esize = bytes ? 1 : 4;
	int rc = texmex_scan(buf, len, esize, bytes ? "bvecs" : "fvecs", &rows, &dim, err, err_len);
	if (rc != 0)
		return rc;
	float *v;
	rc = alloc_floats(rows, dim, &v, err, err_len);
	if (rc != 0)
		return rc;
	size_t rec = 4 + (size_t)dim * esize;
	for (size_t r = 0; r < rows; r++) {
		const uint8_t *src = buf + r * rec + 4;
		float *dst = v + r * dim;
		if (bytes) {
			for (uint32_t j = 0; j < dim; j++)
				dst[j] = (float)src[j];
			continue;
		}
#if VECIO_HOST_LE
		memcpy(dst, src, (size_t)dim * 4);
#else
		for (uint32_t j = 0; j < dim; j++)
			dst[j] = ldf32(src + 4 * j);
#endif
		rc = check_finite_row(dst, dim, r, err, err_len);
		if (rc != 0) {
			free(v);
			return rc;
		}
	}
	out->data = v;
	out->owned = v;
	out->rows = rows;
	out->dim = dim;
	return 0;
}

int vecio_ivecs_decode(const uint8_t *buf, size_t len, struct vecio_imat *out, char *err,
                       size_t err_len)
{
	size_t rows;
	uint32_t cols;
	int rc = texmex_scan(buf, len, 4, "ivecs", &rows, &cols, err, err_len);
	if (rc != 0)
		return rc;
	void *mem;
	rc = alloc_matrix(rows, cols, sizeof(int32_t), &mem, err, err_len);
	if (rc != 0)
		return rc;
	int32_t *v = mem;
	size_t rec = 4 + (size_t)cols * 4;
	for (size_t r = 0; r < rows; r++) {
		const uint8_t *src = buf + r * rec + 4;
		for (uint32_t j = 0; j < cols; j++)
			v[r * cols + j] = (int32_t)ld32(src + 4 * j);
	}
	out->data = v;
	out->rows = rows;
	out->cols = cols;
	return 0;
}

void vecio_imat_free(struct vecio_imat *m)
{
	if (!m)
		return;
	free(m->data);
	memset(m, 0, sizeof *m);
}

/* ---- .npy -------------------------------------------------------------------------- */

struct npy_header {
	char descr[NPY_DESCR_MAX];
	bool structured; /* descr is a list: a record dtype */
	bool fortran;
	int ndim;
	uint64_t shape[NPY_NDIM_MAX];
	bool have_descr, have_fortran, have_shape;
	size_t data_off;
};

struct npy_lexer {
	const char *p;
	const char *end;
};

static void lx_ws(struct npy_lexer *lx)
{
	while (lx->p < lx->end && (*lx->p == ' ' || *lx->p == '\t' || *lx->p == '\n' || *lx->p == '\r'))
		lx->p++;
}

static bool lx_eat(struct npy_lexer *lx, char c)
{
	lx_ws(lx);
	if (lx->p < lx->end && *lx->p == c) {
		lx->p++;
		return true;
	}
	return false;
}

static bool lx_word(struct npy_lexer *lx, const char *w)
{
	size_t n = strlen(w);
	lx_ws(lx);
	if ((size_t)(lx->end - lx->p) >= n && memcmp(lx->p, w, n) == 0) {
		lx->p += n;
		return true;
	}
	return false;
}

/* A quoted Python string literal (no escapes appear in numpy headers). */
static bool lx_string(struct npy_lexer *lx, const char **s_out, size_t *len_out)
{
	lx_ws(lx);
	if (lx->p >= lx->end || (*lx->p != '\'' && *lx->p != '"'))
		return false;
	char q = *lx->p++;
	const char *s = lx->p;
	while (lx->p < lx->end && *lx->p != q)
		lx->p++;
	if (lx->p >= lx->end)
		return false;
	*s_out = s;
	*len_out = (size_t)(lx->p - s);
	lx->p++;
	return true;
}

/* Skip any value numpy might write for a key we do not know: balanced brackets and strings. */
static bool lx_skip_value(struct npy_lexer *lx)
{
	int depth = 0;
	lx_ws(lx);
	while (lx->p < lx->end) {
		char c = *lx->p;
		if (c == '\'' || c == '"') {
			const char *s;
			size_t n;
			if (!lx_string(lx, &s, &n))
				return false;
			continue;
		}
		if (depth == 0 && (c == ',' || c == '}'))
			return true;
		if (c == '(' || c == '[' || c == '{')
			depth++;
		else if (c == ')' || c == ']' || c == '}')
			depth--;
		if (depth < 0)
			return false;
		lx->p++;
	}
	return false;
}

static bool lx_shape(struct npy_lexer *lx, struct npy_header *h)
{
	if (!lx_eat(lx, '('))
		return false;
	h->ndim = 0;
	for (;;) {
		if (lx_eat(lx, ')'))
			return true;
		lx_ws(lx);
		if (lx->p >= lx->end || !isdigit((unsigned char)*lx->p))
			return false;
		uint64_t v = 0;
		while (lx->p < lx->end && isdigit((unsigned char)*lx->p)) {
			unsigned d = (unsigned)(*lx->p++ - '0');
			if (v > (UINT64_MAX - d) / 10)
				return false;
			v = v * 10 + d;
		}
		if (lx->p < lx->end && *lx->p == 'L') /* Python 2 long literal */
			lx->p++;
		if (h->ndim >= NPY_NDIM_MAX)
			return false;
		h->shape[h->ndim++] = v;
		if (!lx_eat(lx, ',')) {
			return lx_eat(lx, ')');
		}
	}
}

/* Magic, version, header length and the header's dict literal. */
static int npy_header_parse(const uint8_t *buf, size_t len, struct npy_header *h, char *err,
                            size_t err_len)
{
	memset(h, 0, sizeof *h);
	if (len < NPY_MAGIC_LEN || memcmp(buf, NPY_MAGIC, NPY_MAGIC_LEN) != 0)
		return fail(err, err_len, STRATA_ECORRUPT, "not a .npy file (no \\x93NUMPY magic)");
	if (len < 10)
		return fail(err, err_len, STRATA_ETRUNCATED, "npy header is truncated (%zu bytes)", len);
	unsigned major = buf[6], minor = buf[7];
	size_t hstart, hlen;
	if (major == 1) {
		hstart = 10;
		hlen = (size_t)buf[8] | (size_t)buf[9] << 8;
	} else if (major == 2 || major == 3) {
		if (len < 12)
			return fail(err, err_len, STRATA_ETRUNCATED, "npy header is truncated (%zu bytes)",
			            len);
		hstart = 12;
		hlen = ld32(buf + 8);
	} else {
		return fail(err, err_len, STRATA_EINVAL, "npy format version %u.%u is not supported",
		            major, minor);
	}
	if (hlen > len - hstart)
		return fail(err, err_len, STRATA_ETRUNCATED,
		            "npy header claims %zu bytes, but only %zu follow", hlen, len - hstart);
	h->data_off = hstart + hlen;

	struct npy_lexer lx = {(const char *)buf + hstart, (const char *)buf + hstart + hlen};
	if (!lx_eat(&lx, '{'))
		goto malformed;
	for (;;) {
		if (lx_eat(&lx, '}'))
			break;
		const char *key;
		size_t klen;
		if (!lx_string(&lx, &key, &klen) || !lx_eat(&lx, ':'))
			goto malformed;
		if (klen == 5 && memcmp(key, "descr", 5) == 0) {
			const char *s;
			size_t n;
			lx_ws(&lx);
			if (lx.p < lx.end && *lx.p == '[') {
				h->structured = true;
				if (!lx_skip_value(&lx))
					goto malformed;
			} else if (lx_string(&lx, &s, &n)) {
				if (n >= NPY_DESCR_MAX)
					n = NPY_DESCR_MAX - 1;
				memcpy(h->descr, s, n);
				h->descr[n] = '\0';
			} else {
				goto malformed;
			}
			h->have_descr = true;
		} else if (klen == 13 && memcmp(key, "fortran_order", 13) == 0) {
			if (lx_word(&lx, "True"))
				h->fortran = true;
			else if (lx_word(&lx, "False"))
				h->fortran = false;
			else
				goto malformed;
			h->have_fortran = true;
		} else if (klen == 5 && memcmp(key, "shape", 5) == 0) {
			if (!lx_shape(&lx, h))
				goto malformed;
			h->have_shape = true;
		} else if (!lx_skip_value(&lx)) {
			goto malformed;
		}
		if (lx_eat(&lx, ','))
			continue;
		if (lx_eat(&lx, '}'))
			break;
		goto malformed;
	}
	if (!h->have_descr)
		return fail(err, err_len, STRATA_ECORRUPT, "npy header has no 'descr' (dtype)");
	if (!h->have_shape)
		return fail(err, err_len, STRATA_ECORRUPT, "npy header has no 'shape'");
	if (!h->have_fortran)
		return fail(err, err_len, STRATA_ECORRUPT, "npy header has no 'fortran_order'");
	return 0;
malformed:
	return fail(err, err_len, STRATA_ECORRUPT,
	            "malformed npy header near byte %zu (expected a dict with 'descr', "
	            "'fortran_order' and 'shape')",
	            hstart + (size_t)(lx.p - (const char *)buf - hstart));
}

/* The data after the header must be exactly rows * cols * esize bytes. */
static int npy_data_check(const struct npy_header *h, size_t len, uint64_t rows, uint64_t cols,
                          size_t esize, char *err, size_t err_len)
{
	uint64_t need;
	if (__builtin_mul_overflow(rows, cols, &need) || __builtin_mul_overflow(need, esize, &need))
		return fail(err, err_len, STRATA_ELIMIT, "shape %llu x %llu is too large",
		            (unsigned long long)rows, (unsigned long long)cols);
	size_t have = len - h->data_off;
	if (have < need)
		return fail(err, err_len, STRATA_ETRUNCATED,
		            "npy data is truncated: %zu of %llu bytes", have, (unsigned long long)need);
	if (have > need)
		return fail(err, err_len, STRATA_ECORRUPT,
		            "%llu unexpected bytes after the array's data",
		            (unsigned long long)(have - need));
	return 0;
}

static int decode_npy_vectors(const uint8_t *buf, size_t len, bool borrow, struct vecio_mat *out,
                              char *err, size_t err_len)
{
	struct npy_header h;
	int rc = npy_header_parse(buf, len, &h, err, err_len);
	if (rc != 0)
		return rc;
	if (h.structured)
		return fail(err, err_len, STRATA_EINVAL,
		            "dtype is a structured (record) type; vectors must be '<f4' (float32)");
	if (strcmp(h.descr, "<f4") != 0)
		return fail(err, err_len, STRATA_EINVAL,
		            "dtype '%s' is not supported; vectors must be '<f4' (little-endian "
		            "float32): convert with a.astype('<f4')",
		            h.descr);
	if (h.fortran)
		return fail(err, err_len, STRATA_EINVAL,
		            "fortran_order (column-major) arrays are not supported; save "
		            "np.ascontiguousarray(a)");
	if (h.ndim != 2)
		return fail(err, err_len, STRATA_EINVAL,
		            "the array has %d dimension(s); vectors need a 2-D array (rows, dim)", h.ndim);
	uint64_t rows = h.shape[0], dim = h.shape[1];
	if (rows == 0)
		return fail(err, err_len, STRATA_EINVAL, "the array holds no vectors (shape (0, %llu))",
		            (unsigned long long)dim);
	if (dim == 0 || dim > STRATA_DIM_MAX)
		return fail(err, err_len, STRATA_EDIM, "dimension %llu is outside 1..%u",
		            (unsigned long long)dim, STRATA_DIM_MAX);
	rc = npy_data_check(&h, len, rows, dim, 4, err, err_len);
	if (rc != 0)
		return rc;
	const uint8_t *src = buf + h.data_off;
	if (borrow && VECIO_HOST_LE && ((uintptr_t)src % _Alignof(float)) == 0) {
		const float *v = (const float *)(const void *)src;
		for (size_t r = 0; r < rows; r++) {
			rc = check_finite_row(v + r * dim, (uint32_t)dim, r, err, err_len);
			if (rc != 0)
				return rc;
		}
		out->data = v;
		out->owned = NULL;
	} else {
		float *v;
		rc = alloc_floats((size_t)rows, (uint32_t)dim, &v, err, err_len);
		if (rc != 0)
			return rc;
		for (size_t i = 0; i < rows * dim; i++)
			v[i] = ldf32(src + 4 * i);
		for (size_t r = 0; r < rows && rc == 0; r++)
			rc = check_finite_row(v + r * dim, (uint32_t)dim, r, err, err_len);
		if (rc != 0) {
			free(v);
			return rc;
		}
		out->data = v;
		out->owned = v;
	}
	out->rows = (size_t)rows;
	out->dim = (uint32_t)dim;
	return 0;
}

/* ---- vectors: dispatch ----------------------------------------------------------------- */

static bool has_ext(const char *path, const char *ext)
{
	size_t n = strlen(path), e = strlen(ext);
	return n > e && strcasecmp(path + n - e, ext) == 0;
}

enum vecio_format vecio_format_guess(const char *path, const uint8_t *head, size_t head_len)
{
	if (head && head_len >= NPY_MAGIC_LEN && memcmp(head, NPY_MAGIC, NPY_MAGIC_LEN) == 0)
		return VECIO_NPY;
	if (has_ext(path, ".fvecs"))
		return VECIO_FVECS;
	if (has_ext(path, ".bvecs"))
		return VECIO_BVECS;
	if (has_ext(path, ".npy"))
		return VECIO_NPY;
	return VECIO_AUTO;
}

const char *vecio_format_name(enum vecio_format fmt)
{
	switch (fmt) {
	case VECIO_FVECS: return "fvecs";
	case VECIO_BVECS: return "bvecs";
	case VECIO_NPY: return "npy";
	default: return "unknown";
	}
}

static int decode_any(const uint8_t *buf, size_t len, enum vecio_format fmt, bool borrow,
                      struct vecio_mat *out, char *err, size_t err_len)
{
	memset(out, 0, sizeof *out);
	switch (fmt) {
	case VECIO_FVECS: return decode_texmex_vectors(buf, len, false, out, err, err_len);
	case VECIO_BVECS: return decode_texmex_vectors(buf, len, true, out, err, err_len);
	case VECIO_NPY: return decode_npy_vectors(buf, len, borrow, out, err, err_len);
	default:
		return fail(err, err_len, STRATA_EINVAL,
		            "unknown vector file format (expected .fvecs, .bvecs or .npy)");
	}
}

int vecio_decode(const uint8_t *buf, size_t len, enum vecio_format fmt, struct vecio_mat *out,
                 char *err, size_t err_len)
{
	return decode_any(buf, len, fmt, false, out, err, err_len);
}

void vecio_mat_free(struct vecio_mat *m)
{
	if (!m)
		return;
	free(m->owned);
	if (m->map)
		munmap(m->map, m->map_len);
	memset(m, 0, sizeof *m);
}

/* ---- files --------------------------------------------------------------------------- */

static int map_file(const char *path, void **map_out, size_t *len_out, char *err, size_t err_len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		int rc = e == ENOENT ? STRATA_ENOTFOUND
		         : (e == EACCES || e == EPERM) ? STRATA_EPERM
		                                        : STRATA_EIO;
		return fail(err, err_len, rc, "%s", strerror(e));
	}
	struct stat st;
	if (fstat(fd, &st) != 0) {
		int e = errno;
		close(fd);
		return fail(err, err_len, STRATA_EIO, "%s", strerror(e));
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return fail(err, err_len, STRATA_EINVAL, "not a regular file");
	}
	*len_out = (size_t)st.st_size;
	*map_out = NULL;
	if (st.st_size == 0) {
		close(fd);
		return 0;
	}
	void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	int e = errno;
	close(fd);
	if (m == MAP_FAILED)
		return fail(err, err_len, e == ENOMEM ? STRATA_ENOMEM : STRATA_EIO, "mmap: %s",
		            strerror(e));
	madvise(m, (size_t)st.st_size, MADV_SEQUENTIAL);
	*map_out = m;
	return 0;
}

int vecio_load(const char *path, enum vecio_format fmt, struct vecio_mat *out, char *err,
               size_t err_len)
{
	void *map = NULL;
	size_t len = 0;
	memset(out, 0, sizeof *out);
	int rc = map_file(path, &map, &len, err, err_len);
	if (rc != 0)
		return rc;
	if (fmt == VECIO_AUTO)
		fmt = vecio_format_guess(path, map, len);
	if (fmt == VECIO_AUTO) {
		if (map)
			munmap(map, len);
		return fail(err, err_len, STRATA_EINVAL,
		            "cannot tell the format: expected a .fvecs, .bvecs or .npy file");
	}
	if (len == 0)
		return fail(err, err_len, STRATA_EINVAL, "the file is empty");
	rc = decode_any(map, len, fmt, true, out, err, err_len);
	if (rc == 0 && out->owned == NULL) {
		out->map = map; /* the data lives in the mapping */
		out->map_len = len;
		return 0;
	}
	munmap(map, len);
	return rc;
}

int vecio_ivecs_load(const char *path, struct vecio_imat *out, char *err, size_t err_len)
{
	void *map = NULL;
	size_t len = 0;
	memset(out, 0, sizeof *out);
	int rc = map_file(path, &map, &len, err, err_len);
	if (rc != 0)
		return rc;
	rc = vecio_ivecs_decode(map, len, out, err, err_len);
	if (map)
		munmap(map, len);
	return rc;
}

/* ---- ids --------------------------------------------------------------------------- */

static int decode_npy_ids(const uint8_t *buf, size_t len, size_t rows, uint64_t **ids_out,
                          char *err, size_t err_len)
{
	struct npy_header h;
	int rc = npy_header_parse(buf, len, &h, err, err_len);
	if (rc != 0)
		return rc;
	bool is_signed;
	if (!h.structured && strcmp(h.descr, "<i8") == 0)
		is_signed = true;
	else if (!h.structured && strcmp(h.descr, "<u8") == 0)
		is_signed = false;
	else
		return fail(err, err_len, STRATA_EINVAL,
		            "dtype '%s' is not supported; ids must be '<i8' (int64) or '<u8' (uint64)",
		            h.structured ? "structured" : h.descr);
	if (!(h.ndim == 1 || (h.ndim == 2 && h.shape[1] == 1)))
		return fail(err, err_len, STRATA_EINVAL,
		            "ids must be a 1-D array (or n x 1), not %d-D with %llu columns", h.ndim,
		            (unsigned long long)(h.ndim >= 2 ? h.shape[1] : 0));
	uint64_t n = h.shape[0];
	rc = npy_data_check(&h, len, n, 1, 8, err, err_len);
	if (rc != 0)
		return rc;
	if (n != rows)
		return fail(err, err_len, STRATA_EINVAL, "%llu ids for %zu vectors",
		            (unsigned long long)n, rows);
	uint64_t *ids = malloc((size_t)(n ? n : 1) * sizeof *ids);
	if (!ids)
		return fail(err, err_len, STRATA_ENOMEM, "no memory for %llu ids", (unsigned long long)n);
	const uint8_t *src = buf + h.data_off;
	for (size_t i = 0; i < n; i++) {
		uint64_t v = ld64(src + 8 * i);
		if (is_signed && (int64_t)v < 0) {
			free(ids);
			return fail(err, err_len, STRATA_EINVAL, "id %zu is negative (%lld)", i,
			            (long long)(int64_t)v);
		}
		if (v == STRATA_NO_ID) {
			free(ids);
			return fail(err, err_len, STRATA_EINVAL,
			            "id %zu is 18446744073709551615, which is reserved (STRATA_NO_ID)", i);
		}
		ids[i] = v;
	}
	*ids_out = ids;
	return 0;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

static int decode_text_ids(const uint8_t *buf, size_t len, size_t rows, uint64_t **ids_out,
                           char *err, size_t err_len)
{
	const char *p = (const char *)buf, *end = p + len;
	uint64_t *ids = malloc((rows ? rows : 1) * sizeof *ids);
	if (!ids)
		return fail(err, err_len, STRATA_ENOMEM, "no memory for %zu ids", rows);
	size_t n = 0, line = 0;
	int rc = 0;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		line++;
		const char *s = p, *e = le;
		while (s < e && is_blank(*s))
			s++;
		while (e > s && is_blank(e[-1]))
			e--;
		p = nl ? nl + 1 : end;
		if (s == e) {
			/* Blank lines may only end the file. */
			const char *q = p;
			while (q < end && (is_blank(*q) || *q == '\n'))
				q++;
			if (q == end)
				break;
			rc = fail(err, err_len, STRATA_EINVAL, "line %zu is empty", line);
			goto out;
		}
		int shown = (int)(e - s > 40 ? 40 : e - s);
		if (*s == '-') {
			rc = fail(err, err_len, STRATA_EINVAL, "line %zu: negative id '%.*s'", line, shown, s);
			goto out;
		}
		uint64_t v = 0;
		for (const char *q = s; q < e; q++) {
			if (*q < '0' || *q > '9') {
				rc = fail(err, err_len, STRATA_EINVAL, "line %zu: '%.*s' is not a decimal id",
				          line, shown, s);
				goto out;
			}
			unsigned d = (unsigned)(*q - '0');
			if (v > (UINT64_MAX - d) / 10) {
				rc = fail(err, err_len, STRATA_EINVAL,
				          "line %zu: id '%.*s' is beyond 2^64-2 (18446744073709551614)", line,
				          shown, s);
				goto out;
			}
			v = v * 10 + d;
		}
		if (v == STRATA_NO_ID) {
			rc = fail(err, err_len, STRATA_EINVAL,
			          "line %zu: id 18446744073709551615 is reserved (STRATA_NO_ID)", line);
			goto out;
		}
		if (n >= rows) {
			rc = fail(err, err_len, STRATA_EINVAL, "line %zu: more ids than the %zu vectors",
			          line, rows);
			goto out;
		}
		ids[n++] = v;
	}
	if (n != rows) {
		rc = fail(err, err_len, STRATA_EINVAL, "%zu ids for %zu vectors", n, rows);
		goto out;
	}
	*ids_out = ids;
	return 0;
out:
	free(ids);
	return rc;
}

int vecio_ids_decode(const uint8_t *buf, size_t len, size_t rows, uint64_t **ids_out, char *err,
                     size_t err_len)
{
	if (len >= NPY_MAGIC_LEN && memcmp(buf, NPY_MAGIC, NPY_MAGIC_LEN) == 0)
		return decode_npy_ids(buf, len, rows, ids_out, err, err_len);
	return decode_text_ids(buf, len, rows, ids_out, err, err_len);
}

int vecio_ids_load(const char *path, size_t rows, uint64_t **ids_out, char *err, size_t err_len)
{
	void *map = NULL;
	size_t len = 0;
	int rc = map_file(path, &map, &len, err, err_len);
	if (rc != 0)
		return rc;
	if (len == 0)
		return fail(err, err_len, STRATA_EINVAL, "the file is empty (0 ids for %zu vectors)", rows);
	if (has_ext(path, ".npy") && (len < NPY_MAGIC_LEN || memcmp(map, NPY_MAGIC, NPY_MAGIC_LEN) != 0))
		rc = fail(err, err_len, STRATA_ECORRUPT, "not a .npy file (no \\x93NUMPY magic)");
	else
		rc = vecio_ids_decode(map, len, rows, ids_out, err, err_len);
	munmap(map, len);
	return rc;
}

static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

int vecio_id_list_load(const char *path, uint64_t **ids_out, size_t *n_out, char *err,
                       size_t err_len)
{
	void *mapping = NULL;
	size_t len = 0;
	int rc = map_file(path, &mapping, &len, err, err_len);
	if (rc != 0)
		return rc;
	const uint8_t *map = mapping;
	size_t lines = 0;
	for (size_t i = 0; i < len; i++)
		lines += map[i] == '\n';
	if (len && map[len - 1] != '\n')
		lines++;
	uint64_t *ids = NULL;
	if (lines == 0) {
		ids = malloc(sizeof *ids);
		rc = ids ? 0 : fail(err, err_len, STRATA_ENOMEM, "no memory");
	} else {
		rc = decode_text_ids(map, len, lines, &ids, err, err_len);
	}
	if (mapping)
		munmap(mapping, len);
	if (rc != 0)
		return rc;
	qsort(ids, lines, sizeof *ids, u64_cmp);
	size_t n = 0;
	for (size_t i = 0; i < lines; i++)
		if (n == 0 || ids[i] != ids[n - 1])
			ids[n++] = ids[i];
	*ids_out = ids;
	*n_out = n;
	return 0;
}
