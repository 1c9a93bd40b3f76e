/*
 * vecio_test.c - the `strata` program's input parsers (tools/vecio.c):
 * .fvecs/.bvecs/.ivecs rows, .npy headers and dtypes, id files. Every
 * malformed input must be refused with its code and a message that names
 * the row, line or dtype; none may crash or over-read (run under ASan in CI).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../tools/vecio.h" /* tools/ has no include directory of its own in tests */
#include "strata.h"
#include "t_support.h"

/* ---- builders ------------------------------------------------------------------ */

/* Test inputs are small: a fixed buffer keeps them simple and leak-free. */
struct buf {
	uint8_t p[4096];
	size_t len;
};

static void put(struct buf *b, const void *src, size_t n)
{
	cr_assert(b->len + n <= sizeof b->p);
	memcpy(b->p + b->len, src, n);
	b->len += n;
}

static void put_i32(struct buf *b, int32_t v)
{
	put(b, &v, 4);
}

/* rows x dim fvecs with value r * 100 + j, or bvecs (uint8 of the same, mod 256). */
static struct buf texmex(size_t rows, int32_t dim, int bytes)
{
	struct buf b = {0};
	for (size_t r = 0; r < rows; r++) {
		put_i32(&b, dim);
		for (int32_t j = 0; j < dim; j++) {
			if (bytes) {
				uint8_t u = (uint8_t)((r * 100 + (size_t)j) % 256);
				put(&b, &u, 1);
			} else {
				float f = (float)(r * 100 + (size_t)j);
				put(&b, &f, 4);
			}
		}
	}
	return b;
}

/* An .npy file: magic, version, the dict padded to a multiple of 64, then data. */
static struct buf npy(int major, const char *dict, const void *data, size_t data_len)
{
	struct buf b = {0};
	size_t pre = major == 1 ? 10 : 12;
	size_t hlen = strlen(dict) + 1; /* + '\n' */
	size_t total = (pre + hlen + 63) / 64 * 64;
	hlen = total - pre;
	uint8_t head[12] = {0x93, 'N', 'U', 'M', 'P', 'Y', (uint8_t)major, 0};
	if (major == 1) {
		head[8] = (uint8_t)hlen;
		head[9] = (uint8_t)(hlen >> 8);
	} else {
		uint32_t h = (uint32_t)hlen;
		memcpy(head + 8, &h, 4);
	}
	put(&b, head, pre);
	put(&b, dict, strlen(dict));
	for (size_t i = strlen(dict); i < hlen - 1; i++)
		put(&b, " ", 1);
	put(&b, "\n", 1);
	if (data_len)
		put(&b, data, data_len);
	return b;
}

static float *floats(size_t n)
{
	float *f = malloc(n * sizeof *f);
	for (size_t i = 0; i < n; i++)
		f[i] = (float)i * 0.5f;
	return f;
}

static char err[VECIO_ERR_MAX];

static int decode(struct buf b, enum vecio_format fmt, struct vecio_mat *m)
{
	err[0] = '\0';
	return vecio_decode(b.p, b.len, fmt, m, err, sizeof err);
}

#define assert_err(rc_, want_, needle_)                                                       \
	do {                                                                                      \
		cr_assert_eq((rc_), (want_), "rc %d, want %d (%s)", (rc_), (want_), err);             \
		cr_assert(strstr(err, (needle_)), "message '%s' lacks '%s'", err, (needle_));         \
	} while (0)

/* ---- .fvecs / .bvecs ----------------------------------------------------------------- */

Test(vecio, fvecs_rows_decode_in_order)
{
	struct vecio_mat m;
	cr_assert_eq(decode(texmex(3, 4, 0), VECIO_FVECS, &m), 0, "%s", err);
	cr_assert_eq(m.rows, 3);
	cr_assert_eq(m.dim, 4);
	cr_assert_eq(m.data[2 * 4 + 3], 203.0f);
	vecio_mat_free(&m);
}

Test(vecio, bvecs_components_become_floats)
{
	struct vecio_mat m;
	cr_assert_eq(decode(texmex(3, 200, 1), VECIO_BVECS, &m), 0, "%s", err);
	cr_assert_eq(m.rows, 3);
	cr_assert_eq(m.dim, 200);
	cr_assert_eq(m.data[2 * 200 + 199], (float)((200 + 199) % 256));
	vecio_mat_free(&m);
}

Test(vecio, empty_file_is_refused)
{
	struct vecio_mat m;
	struct buf b = {0};
	assert_err(decode(b, VECIO_FVECS, &m), STRATA_EINVAL, "empty");
}

Test(vecio, truncated_last_row_names_the_row)
{
	struct vecio_mat m;
	struct buf b = texmex(3, 8, 0);
	b.len -= 5;
	assert_err(decode(b, VECIO_FVECS, &m), STRATA_ETRUNCATED, "row 2 is truncated");
}

Test(vecio, partial_row_header_is_truncation)
{
	struct vecio_mat m;
	struct buf b = texmex(2, 8, 0);
	put(&b, "\x08\x00", 2);
	assert_err(decode(b, VECIO_FVECS, &m), STRATA_ETRUNCATED, "row 2");
	b = texmex(1, 8, 0);
	b.len = 3;
	assert_err(decode(b, VECIO_FVECS, &m), STRATA_ETRUNCATED, "row 0");
}

Test(vecio, bvecs_truncated_is_refused)
{
	struct vecio_mat m;
	struct buf b = texmex(4, 16, 1);
	b.len -= 1;
	assert_err(decode(b, VECIO_BVECS, &m), STRATA_ETRUNCATED, "row 3");
}

Test(vecio, inconsistent_dims_name_the_row)
{
	struct vecio_mat m;
	struct buf b = texmex(2, 4, 0);
	struct buf c = texmex(1, 5, 0);
	put(&b, c.p, c.len);
	assert_err(decode(b, VECIO_FVECS, &m), STRATA_EDIM, "row 2 has dimension 5, but row 0 has 4");
}

Test(vecio, zero_negative_and_absurd_dims_are_refused)
{
	struct vecio_mat m;
	struct buf b = {0};
	put_i32(&b, 0);
	assert_err(decode(b, VECIO_FVECS, &m), STRATA_EDIM, "dimension 0");
	b = (struct buf){0};
	put_i32(&b, -3);
	put_i32(&b, 0);
	assert_err(decode(b, VECIO_FVECS, &m), STRATA_EDIM, "dimension -3");
	/* A huge dim must be refused before it sizes anything. */
	b = (struct buf){0};
	put_i32(&b, 1 << 30);
	put_i32(&b, 0);
	assert_err(decode(b, VECIO_FVECS, &m), STRATA_EDIM, "outside 1..65536");
}

Test(vecio, nan_and_inf_name_row_and_component)
{
	struct vecio_mat m;
	struct buf b = texmex(5, 4, 0);
	float nan = NAN, inf = INFINITY;
	memcpy(b.p + 3 * 20 + 4 + 2 * 4, &nan, 4);
	assert_err(decode(b, VECIO_FVECS, &m), STRATA_ENONFINITE, "row 3, component 2 is NaN");
	b = texmex(5, 4, 0);
	memcpy(b.p + 1 * 20 + 4, &inf, 4);
	assert_err(decode(b, VECIO_FVECS, &m), STRATA_ENONFINITE, "row 1, component 0 is infinite");
}

Test(vecio, ivecs_decode_and_truncation)
{
	struct buf b = {0};
	for (int r = 0; r < 3; r++) {
		put_i32(&b, 2);
		put_i32(&b, r);
		put_i32(&b, -r);
	}
	struct vecio_imat im;
	cr_assert_eq(vecio_ivecs_decode(b.p, b.len, &im, err, sizeof err), 0, "%s", err);
	cr_assert_eq(im.rows, 3);
	cr_assert_eq(im.cols, 2);
	cr_assert_eq(im.data[5], -2);
	vecio_imat_free(&im);
	cr_assert_eq(vecio_ivecs_decode(b.p, b.len - 2, &im, err, sizeof err), STRATA_ETRUNCATED);
}

/* ---- .npy -------------------------------------------------------------------------- */

Test(vecio, npy_f4_v1_and_v2_decode)
{
	float *f = floats(12);
	for (int major = 1; major <= 3; major++) {
		struct vecio_mat m;
		struct buf b = npy(major, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }",
		                   f, 48);
		cr_assert_eq(decode(b, VECIO_NPY, &m), 0, "v%d: %s", major, err);
		cr_assert_eq(m.rows, 3);
		cr_assert_eq(m.dim, 4);
		cr_assert_eq(m.data[11], 5.5f);
		vecio_mat_free(&m);
	}
	free(f);
}

Test(vecio, npy_key_order_and_spacing_do_not_matter)
{
	float *f = floats(6);
	struct vecio_mat m;
	struct buf b = npy(1, "{\"shape\":(2,3),\"fortran_order\":False,\"descr\":\"<f4\"}", f, 24);
	cr_assert_eq(decode(b, VECIO_NPY, &m), 0, "%s", err);
	cr_assert_eq(m.rows, 2);
	cr_assert_eq(m.dim, 3);
	vecio_mat_free(&m);
	free(f);
}

Test(vecio, npy_other_dtypes_are_refused_by_name)
{
	static const char *const dtypes[] = {"<f8", "<i4", "|u1", ">f4", "<f2"};
	for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++) {
		char dict[128];
		snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (2, 2), }",
		         dtypes[i]);
		uint8_t data[64] = {0};
		struct vecio_mat m;
		char want[32];
		snprintf(want, sizeof want, "dtype '%s'", dtypes[i]);
		assert_err(decode(npy(1, dict, data, 32), VECIO_NPY, &m), STRATA_EINVAL, want);
	}
}

Test(vecio, npy_structured_dtype_is_refused)
{
	struct vecio_mat m;
	struct buf b = npy(1, "{'descr': [('a', '<f4'), ('b', '<f4')], 'fortran_order': False, "
	                      "'shape': (2,), }",
	                   "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 16);
	assert_err(decode(b, VECIO_NPY, &m), STRATA_EINVAL, "structured");
}

Test(vecio, npy_fortran_order_is_refused)
{
	float *f = floats(4);
	struct vecio_mat m;
	struct buf b = npy(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", f, 16);
	assert_err(decode(b, VECIO_NPY, &m), STRATA_EINVAL, "fortran_order");
	free(f);
}

Test(vecio, npy_shapes_other_than_2d_are_refused)
{
	float *f = floats(8);
	struct vecio_mat m;
	assert_err(decode(npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (8,), }", f, 32),
	                  VECIO_NPY, &m),
	           STRATA_EINVAL, "1 dimension");
	assert_err(decode(npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2, 2), }",
	                      f, 32),
	                  VECIO_NPY, &m),
	           STRATA_EINVAL, "3 dimension");
	assert_err(decode(npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 4), }", f, 0),
	                  VECIO_NPY, &m),
	           STRATA_EINVAL, "no vectors");
	assert_err(decode(npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 0), }", f, 0),
	                  VECIO_NPY, &m),
	           STRATA_EDIM, "dimension 0");
	free(f);
}

Test(vecio, npy_malformed_headers_are_refused)
{
	static const char *const bad[] = {
		"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2) ",  /* no closing brace */
		"'descr': '<f4', 'fortran_order': False, 'shape': (2, 2)}",   /* no opening brace */
		"{'descr': '<f4', 'fortran_order': Maybe, 'shape': (2, 2)}",  /* not a bool */
		"{'descr': '<f4', 'fortran_order': False, 'shape': (2, x)}",  /* not a number */
		"{'descr': '<f4, 'fortran_order': False, 'shape': (2, 2)}",   /* unbalanced quote */
		"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999, 2)}",
		"{'descr': '<f4' 'fortran_order': False, 'shape': (2, 2)}",   /* missing comma */
		"garbage",
	};
	float *f = floats(4);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct vecio_mat m;
		assert_err(decode(npy(1, bad[i], f, 16), VECIO_NPY, &m), STRATA_ECORRUPT,
		           "malformed npy header");
	}
	struct vecio_mat m;
	assert_err(decode(npy(1, "{'fortran_order': False, 'shape': (2, 2)}", f, 16), VECIO_NPY, &m),
	           STRATA_ECORRUPT, "'descr'");
	assert_err(decode(npy(1, "{'descr': '<f4', 'fortran_order': False}", f, 16), VECIO_NPY, &m),
	           STRATA_ECORRUPT, "'shape'");
	free(f);
}

Test(vecio, npy_lengths_are_checked_against_the_file)
{
	float *f = floats(4);
	struct vecio_mat m;
	const char *dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }";
	/* Header length beyond the file. */
	struct buf b = npy(1, dict, f, 16);
	b.p[8] = 0xff;
	b.p[9] = 0x7f;
	assert_err(decode(b, VECIO_NPY, &m), STRATA_ETRUNCATED, "header claims");
	/* Data shorter than the shape says. */
	b = npy(1, dict, f, 16);
	b.len -= 3;
	assert_err(decode(b, VECIO_NPY, &m), STRATA_ETRUNCATED, "truncated: 13 of 16");
	/* Bytes after the data. */
	b = npy(1, dict, f, 16);
	put(&b, "xx", 2);
	assert_err(decode(b, VECIO_NPY, &m), STRATA_ECORRUPT, "2 unexpected bytes");
	/* A shape whose byte count overflows. */
	assert_err(decode(npy(1, "{'descr': '<f4', 'fortran_order': False, "
	                         "'shape': (9223372036854775807, 65536), }", f, 16),
	                  VECIO_NPY, &m),
	           STRATA_ELIMIT, "too large");
	/* Shorter than the magic, and an unknown version. */
	b = npy(1, dict, f, 16);
	b.len = 9;
	assert_err(decode(b, VECIO_NPY, &m), STRATA_ETRUNCATED, "truncated");
	b = npy(1, dict, f, 16);
	b.p[6] = 9;
	assert_err(decode(b, VECIO_NPY, &m), STRATA_EINVAL, "version 9");
	free(f);
}

Test(vecio, npy_nan_names_the_row)
{
	float *f = floats(12);
	f[9] = NAN;
	struct vecio_mat m;
	struct buf b = npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }", f, 48);
	assert_err(decode(b, VECIO_NPY, &m), STRATA_ENONFINITE, "row 2, component 1 is NaN");
	free(f);
}

/* ---- files ---------------------------------------------------------------------------- */

Test(vecio, load_guesses_the_format_and_maps_npy_in_place)
{
	struct t_dir d = t_dir_new();
	char p[1024];
	float *f = floats(4 * 16);
	struct buf b = npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 16), }", f,
	                   4 * 16 * 4);
	/* The extension says fvecs; the magic wins. */
	t_write_file(t_path(&d, "v.fvecs", p, sizeof p), b.p, b.len);
	struct vecio_mat m;
	cr_assert_eq(vecio_load(p, VECIO_AUTO, &m, err, sizeof err), 0, "%s", err);
	cr_assert_eq(m.rows, 4);
	cr_assert_eq(m.dim, 16);
	cr_assert_eq(m.data[63], 31.5f);
	cr_assert_null(m.owned, "aligned npy data should be used in place");
	vecio_mat_free(&m);

	b = texmex(7, 3, 1);
	t_write_file(t_path(&d, "v.bvecs", p, sizeof p), b.p, b.len);
	cr_assert_eq(vecio_load(p, VECIO_AUTO, &m, err, sizeof err), 0, "%s", err);
	cr_assert_eq(m.rows, 7);
	vecio_mat_free(&m);
	t_write_file(t_path(&d, "v.txt", p, sizeof p), b.p, b.len);
	assert_err(vecio_load(p, VECIO_AUTO, &m, err, sizeof err), STRATA_EINVAL, "format");

	t_write_file(t_path(&d, "empty.fvecs", p, sizeof p), "", 0);
	assert_err(vecio_load(p, VECIO_AUTO, &m, err, sizeof err), STRATA_EINVAL, "empty");
	assert_err(vecio_load(t_path(&d, "missing.fvecs", p, sizeof p), VECIO_AUTO, &m, err,
	                      sizeof err),
	           STRATA_ENOTFOUND, "No such file");
	assert_err(vecio_load(d.path, VECIO_FVECS, &m, err, sizeof err), STRATA_EINVAL,
	           "not a regular file");
	free(f);
	t_dir_free(&d);
}

/* ---- ids ------------------------------------------------------------------------------ */

static int ids_text(const char *text, size_t rows, uint64_t **ids)
{
	err[0] = '\0';
	*ids = NULL;
	return vecio_ids_decode((const uint8_t *)text, strlen(text), rows, ids, err, sizeof err);
}

Test(vecio, text_ids_decode_with_blanks_and_crlf)
{
	uint64_t *ids;
	cr_assert_eq(ids_text("7\n  42 \r\n18446744073709551614\n0\n\n \n", 4, &ids), 0, "%s", err);
	cr_assert_eq(ids[0], 7);
	cr_assert_eq(ids[1], 42);
	cr_assert_eq(ids[2], 18446744073709551614ull);
	cr_assert_eq(ids[3], 0);
	free(ids);
	cr_assert_eq(ids_text("1\n2", 2, &ids), 0, "no final newline: %s", err);
	free(ids);
}

Test(vecio, text_ids_refuse_junk_negative_overflow_and_reserved)
{
	uint64_t *ids;
	assert_err(ids_text("1\n2x\n3\n", 3, &ids), STRATA_EINVAL, "line 2: '2x' is not a decimal id");
	assert_err(ids_text("1\n0x10\n", 2, &ids), STRATA_EINVAL, "line 2");
	assert_err(ids_text("1\n2\n-5\n", 3, &ids), STRATA_EINVAL, "line 3: negative id '-5'");
	assert_err(ids_text("18446744073709551616\n", 1, &ids), STRATA_EINVAL, "line 1: id");
	assert_err(ids_text("99999999999999999999999\n", 1, &ids), STRATA_EINVAL, "beyond");
	assert_err(ids_text("18446744073709551615\n", 1, &ids), STRATA_EINVAL, "reserved");
	assert_err(ids_text("1\n\n2\n", 2, &ids), STRATA_EINVAL, "line 2 is empty");
	assert_err(ids_text("1 2\n", 1, &ids), STRATA_EINVAL, "not a decimal id");
}

Test(vecio, text_ids_count_must_match)
{
	uint64_t *ids;
	assert_err(ids_text("1\n2\n", 3, &ids), STRATA_EINVAL, "2 ids for 3 vectors");
	assert_err(ids_text("1\n2\n3\n4\n", 3, &ids), STRATA_EINVAL, "more ids than the 3 vectors");
	assert_err(ids_text("", 3, &ids), STRATA_EINVAL, "0 ids for 3 vectors");
}

static int ids_npy(const char *dict, const void *data, size_t len, size_t rows, uint64_t **ids)
{
	struct buf b = npy(1, dict, data, len);
	err[0] = '\0';
	return vecio_ids_decode(b.p, b.len, rows, ids, err, sizeof err);
}

Test(vecio, npy_ids_int64_and_uint64)
{
	int64_t s[3] = {5, 0, INT64_MAX};
	uint64_t *ids;
	cr_assert_eq(ids_npy("{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }", s, 24, 3,
	                     &ids),
	             0, "%s", err);
	cr_assert_eq(ids[2], (uint64_t)INT64_MAX);
	free(ids);
	uint64_t u[3] = {1, UINT64_MAX - 1, 3};
	cr_assert_eq(ids_npy("{'descr': '<u8', 'fortran_order': False, 'shape': (3, 1), }", u, 24, 3,
	                     &ids),
	             0, "%s", err);
	cr_assert_eq(ids[1], UINT64_MAX - 1);
	free(ids);
}

Test(vecio, npy_ids_refuse_negative_wrong_dtype_shape_and_count)
{
	int64_t s[3] = {5, -1, 7};
	uint64_t *ids;
	assert_err(ids_npy("{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }", s, 24, 3,
	                   &ids),
	           STRATA_EINVAL, "id 1 is negative");
	assert_err(ids_npy("{'descr': '<i4', 'fortran_order': False, 'shape': (6,), }", s, 24, 6,
	                   &ids),
	           STRATA_EINVAL, "dtype '<i4'");
	assert_err(ids_npy("{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }", s, 24, 3,
	                   &ids),
	           STRATA_EINVAL, "dtype '<f8'");
	assert_err(ids_npy("{'descr': '<u8', 'fortran_order': False, 'shape': (1, 3), }", s, 24, 1,
	                   &ids),
	           STRATA_EINVAL, "1-D");
	assert_err(ids_npy("{'descr': '<u8', 'fortran_order': False, 'shape': (3,), }", s, 24, 4,
	                   &ids),
	           STRATA_EINVAL, "3 ids for 4 vectors");
	uint64_t r[1] = {UINT64_MAX};
	assert_err(ids_npy("{'descr': '<u8', 'fortran_order': False, 'shape': (1,), }", r, 8, 1,
	                   &ids),
	           STRATA_EINVAL, "reserved");
	assert_err(ids_npy("{'descr': '<u8', 'fortran_order': False, 'shape': (3,), }", s, 20, 3,
	                   &ids),
	           STRATA_ETRUNCATED, "truncated");
}

Test(vecio, ids_load_checks_npy_extension_and_empty_file)
{
	struct t_dir d = t_dir_new();
	char p[1024];
	uint64_t *ids = NULL;
	t_write_file(t_path(&d, "ids.npy", p, sizeof p), "1\n2\n", 4);
	assert_err(vecio_ids_load(p, 2, &ids, err, sizeof err), STRATA_ECORRUPT, "not a .npy file");
	t_write_file(t_path(&d, "ids.txt", p, sizeof p), "1\n2\n", 4);
	cr_assert_eq(vecio_ids_load(p, 2, &ids, err, sizeof err), 0, "%s", err);
	cr_assert_eq(ids[1], 2);
	free(ids);
	t_write_file(t_path(&d, "empty.txt", p, sizeof p), "", 0);
	assert_err(vecio_ids_load(p, 2, &ids, err, sizeof err), STRATA_EINVAL, "empty");
	t_dir_free(&d);
}
