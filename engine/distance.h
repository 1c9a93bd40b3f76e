/*
 * distance.h - distance kernels: a scalar reference and SIMD versions
 * (distance_avx2.c, distance_avx512.c), chosen once at run time from the CPU.
 *
 * Conventions (hnswlib's): l2 = squared Euclidean; ip = 1 - dot;
 * cosine = 1 - dot over vectors normalised on write (dist_normalize), so the
 * cosine kernel is the ip kernel. Every dim >= 1 works, not only multiples of
 * the vector width. The environment variable STRATA_SIMD=scalar|avx2|avx512
 * caps the choice (tests and benchmarks use it to compare paths).
 */
#ifndef STRATA_DISTANCE_H
#define STRATA_DISTANCE_H

#include <stddef.h>
#include <stdint.h>

#include "strata.h"

typedef float (*dist_fn)(const float *a, const float *b, size_t dim);

enum dist_isa {
	DIST_SCALAR = 0,
	DIST_AVX2 = 1,   /* AVX2 + FMA */
	DIST_AVX512 = 2, /* AVX-512F */
	DIST_ISA_COUNT
};

/* The best ISA this CPU supports, capped by STRATA_SIMD. Cached after the first call. */
enum dist_isa dist_best_isa(void);

/* True if the CPU can run kernels of `isa`. */
int dist_isa_supported(enum dist_isa isa);

const char *dist_isa_name(enum dist_isa isa);

/*
 * The ISA named `s` ("scalar", "avx2", "avx512": STRATA_SIMD's values).
 * Returns 0 and sets *isa_out, or -1 (s NULL or unknown; *isa_out untouched).
 */
int dist_isa_parse(const char *s, enum dist_isa *isa_out);

/*
 * The best ISA this CPU supports, capped by `cap` (a STRATA_SIMD value; NULL
 * or unknown = no cap). dist_best_isa() is this of getenv("STRATA_SIMD"),
 * computed once. Exposed for tests.
 */
enum dist_isa dist_isa_choose(const char *cap);

/* The distance function of `metric` for `isa` (NULL if isa is unsupported by this CPU or build). */
dist_fn dist_get(strata_metric metric, enum dist_isa isa);

/* Same, for the best ISA. */
dist_fn dist_for_metric(strata_metric metric);

/* Raw kernels, exposed for tests and for the brute-force reference. */
float dist_l2sq_scalar(const float *a, const float *b, size_t dim);
float dist_ip_scalar(const float *a, const float *b, size_t dim); /* 1 - dot */
float dist_l2sq_avx2(const float *a, const float *b, size_t dim);
float dist_ip_avx2(const float *a, const float *b, size_t dim);
float dist_l2sq_avx512(const float *a, const float *b, size_t dim);
float dist_ip_avx512(const float *a, const float *b, size_t dim);

/*
 * Scale v to unit length in place (cosine metric). A zero vector stays zero
 * (its cosine distance to anything is then 1, as in hnswlib).
 */
void dist_normalize(float *v, size_t dim);

#endif /* STRATA_DISTANCE_H */
