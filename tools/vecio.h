/*
 * vecio.h - reading the vector files the `strata` program takes as input:
 *
 *   .fvecs  TEXMEX: per row an int32 dim, then dim float32      (vectors)
 *   .bvecs  TEXMEX: per row an int32 dim, then dim uint8 -> float (vectors)
 *   .ivecs  TEXMEX: per row an int32 dim, then dim int32        (ground truth)
 *   .npy    NumPy format 1.0/2.0/3.0, 2-D, C order, dtype '<f4' (vectors)
 *   ids     text, one decimal id per line, or .npy '<i8'/'<u8' (1-D or n x 1)
 *
 * Input is untrusted: every length is checked against the file's real size
 * before it drives a loop or an allocation, every row's dim header is checked,
 * and every component must be finite. Parsers take (buf, len) so tests and
 * fuzzers can feed them bytes; the *_load functions map a file and call them.
 *
 * Errors: a negative STRATA_E* code (ENOTFOUND/EPERM/EIO for the file itself,
 * ETRUNCATED, EDIM, ECORRUPT, EINVAL for an unsupported layout or dtype,
 * ENONFINITE, ENOMEM) and one sentence in `err` (without the file name,
 * which the caller prefixes): "row 17 is truncated: 200 of 516 bytes".
 */
#ifndef STRATA_VECIO_H
#define STRATA_VECIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VECIO_ERR_MAX 256

enum vecio_format {
	VECIO_AUTO = 0, /* from the content (npy magic), then the extension */
	VECIO_FVECS,
	VECIO_BVECS,
	VECIO_NPY
};

/* A row-major float matrix; `data` is valid until vecio_mat_free(). */
struct vecio_mat {
	const float *data;
	size_t rows;
	uint32_t dim;
	/* private */
	float *owned;  /* heap copy, or NULL when data points into the mapping */
	void *map;     /* the file's mapping, kept while data points into it */
	size_t map_len;
};

/* A row-major int32 matrix (.ivecs). */
struct vecio_imat {
	int32_t *data;
	size_t rows;
	uint32_t cols;
};

/* Which format `path` holds, from its first bytes and then its extension;
 * VECIO_AUTO if neither tells. */
enum vecio_format vecio_format_guess(const char *path, const uint8_t *head, size_t head_len);

/* Name of a format for messages ("fvecs" ...). */
const char *vecio_format_name(enum vecio_format fmt);

/* Decode vectors from buf[0..len) into a heap copy. fmt may not be VECIO_AUTO. */
int vecio_decode(const uint8_t *buf, size_t len, enum vecio_format fmt, struct vecio_mat *out,
                 char *err, size_t err_len);

/*
 * Read the vectors of file `path` (fmt VECIO_AUTO: guess). The file is
 * mapped; .npy data that is suitably aligned is used in place, other formats
 * are copied into one row-major buffer.
 */
int vecio_load(const char *path, enum vecio_format fmt, struct vecio_mat *out, char *err,
               size_t err_len);

void vecio_mat_free(struct vecio_mat *m);

/* Decode / read an .ivecs file (every row the same length, at least 1). */
int vecio_ivecs_decode(const uint8_t *buf, size_t len, struct vecio_imat *out, char *err,
                       size_t err_len);
int vecio_ivecs_load(const char *path, struct vecio_imat *out, char *err, size_t err_len);
void vecio_imat_free(struct vecio_imat *m);

/*
 * Decode ids: .npy (detected by its magic) of dtype '<i8' (no negative
 * values) or '<u8', shape (n,) or (n, 1); otherwise text with one decimal id
 * per line (surrounding blanks and a final newline allowed, nothing else).
 * STRATA_NO_ID (2^64-1) is refused. The count must equal `rows`.
 * *ids_out is malloc'd (caller frees).
 */
int vecio_ids_decode(const uint8_t *buf, size_t len, size_t rows, uint64_t **ids_out, char *err,
                     size_t err_len);
int vecio_ids_load(const char *path, size_t rows, uint64_t **ids_out, char *err, size_t err_len);

/*
 * A list of ids of any length (a filter's allow-list): text, one decimal id
 * per line, as vecio_ids_decode reads it. An empty file is the empty list.
 * Returned sorted ascending without duplicates; *ids_out is malloc'd.
 */
int vecio_id_list_load(const char *path, uint64_t **ids_out, size_t *n_out, char *err,
                       size_t err_len);

#endif /* STRATA_VECIO_H */
