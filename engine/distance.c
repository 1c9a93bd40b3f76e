/*
 * distance.c - the scalar reference kernels, dist_normalize, and the run-time
 * choice of kernel (CPU features, capped by the STRATA_SIMD environment
 * variable). The SIMD kernels live in distance_avx2.c and distance_avx512.c,
 * one file per ISA, each compiled without -march flags: only their target
 * attributes enable the instructions, so nothing here may call them before
 * dist_isa_supported() said yes.
 *
 * The scalar kernels are the reference the tests compare the SIMD ones with;
 * they stay simple loops (four partial sums so that -O3 can vectorise them
 * with the baseline SSE2 without -ffast-math).
 *
 * Contract: distance.h. Never prints, never aborts.
 */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "distance.h"

/* The SIMD files compile real kernels only on x86 with GCC-compatible compilers
 * (target attributes); elsewhere they fall back to the scalar ones, and this
 * file reports the ISA as unsupported. Keep in step with distance_avx*.c. */
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#define DIST_HAVE_X86_SIMD 1
#else
#define DIST_HAVE_X86_SIMD 0
#endif

/* ---- scalar reference kernels ------------------------------------------ */

float dist_l2sq_scalar(const float *a, const float *b, size_t dim)
{
	float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
	size_t i = 0;
	for (; i + 4 <= dim; i += 4) {
		float d0 = a[i] - b[i];
		float d1 = a[i + 1] - b[i + 1];
		float d2 = a[i + 2] - b[i + 2];
		float d3 = a[i + 3] - b[i + 3];
		s0 += d0 * d0;
		s1 += d1 * d1;
		s2 += d2 * d2;
		s3 += d3 * d3;
	}
	for (; i < dim; i++) {
		float d = a[i] - b[i];
		s0 += d * d;
	}
	return (s0 + s1) + (s2 + s3);
}

float dist_ip_scalar(const float *a, const float *b, size_t dim)
{
	float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
	size_t i = 0;
	for (; i + 4 <= dim; i += 4) {
		s0 += a[i] * b[i];
		s1 += a[i + 1] * b[i + 1];
		s2 += a[i + 2] * b[i + 2];
		s3 += a[i + 3] * b[i + 3];
	}
	for (; i < dim; i++)
		s0 += a[i] * b[i];
	return 1.0f - ((s0 + s1) + (s2 + s3));
}

void dist_normalize(float *v, size_t dim)
{
	/* The norm in double: no overflow for any finite float input of any
	 * dim below 2^64, and the last bit of the unit vector is right. */
	double ss = 0.0;
	for (size_t i = 0; i < dim; i++)
		ss += (double)v[i] * (double)v[i];
	if (!(ss > 0.0))
		return; /* a zero vector stays zero */
	double inv = 1.0 / sqrt(ss);
	for (size_t i = 0; i < dim; i++)
		v[i] = (float)((double)v[i] * inv);
}

/* ---- choice of ISA ------------------------------------------------------ */

static const char *const isa_names[DIST_ISA_COUNT] = {
	[DIST_SCALAR] = "scalar",
	[DIST_AVX2] = "avx2",
	[DIST_AVX512] = "avx512",
};

const char *dist_isa_name(enum dist_isa isa)
{
	if ((unsigned)isa >= DIST_ISA_COUNT)
		return "unknown";
	return isa_names[isa];
}

int dist_isa_parse(const char *s, enum dist_isa *isa_out)
{
	if (!s)
		return -1;
	for (int i = 0; i < DIST_ISA_COUNT; i++) {
		if (strcmp(s, isa_names[i]) == 0) {
			*isa_out = (enum dist_isa)i;
			return 0;
		}
	}
	return -1;
}

int dist_isa_supported(enum dist_isa isa)
{
	switch (isa) {
	case DIST_SCALAR:
		return 1;
#if DIST_HAVE_X86_SIMD
	case DIST_AVX2:
		return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
	case DIST_AVX512:
		return __builtin_cpu_supports("avx512f");
#endif
	default:
		return 0;
	}
}

enum dist_isa dist_isa_choose(const char *cap)
{
	enum dist_isa best = DIST_SCALAR;
	for (int i = DIST_ISA_COUNT - 1; i > DIST_SCALAR; i--) {
		if (dist_isa_supported((enum dist_isa)i)) {
			best = (enum dist_isa)i;
			break;
		}
	}
	enum dist_isa c;
	if (dist_isa_parse(cap, &c) == 0 && c < best) {
		/* A cap above what the CPU can do is no cap; below it, the cap wins.
		 * The ISAs are nested (AVX-512F machines here all have AVX2+FMA),
		 * but check anyway and fall back further if not. */
		best = c;
		while (best > DIST_SCALAR && !dist_isa_supported(best))
			best = (enum dist_isa)(best - 1);
	}
	return best;
}

/* -1 until the first call decides; racing first calls compute the same value. */
static _Atomic int best_isa_cached = -1;

enum dist_isa dist_best_isa(void)
{
	int v = atomic_load_explicit(&best_isa_cached, memory_order_acquire);
	if (v < 0) {
		v = (int)dist_isa_choose(getenv("STRATA_SIMD"));
		atomic_store_explicit(&best_isa_cached, v, memory_order_release);
	}
	return (enum dist_isa)v;
}

dist_fn dist_get(strata_metric metric, enum dist_isa isa)
{
	if ((unsigned)isa >= DIST_ISA_COUNT || !dist_isa_supported(isa))
		return NULL;
	static const dist_fn l2[DIST_ISA_COUNT] = {
		[DIST_SCALAR] = dist_l2sq_scalar,
		[DIST_AVX2] = dist_l2sq_avx2,
		[DIST_AVX512] = dist_l2sq_avx512,
	};
	static const dist_fn ip[DIST_ISA_COUNT] = {
		[DIST_SCALAR] = dist_ip_scalar,
		[DIST_AVX2] = dist_ip_avx2,
		[DIST_AVX512] = dist_ip_avx512,
	};
	switch (metric) {
	case STRATA_METRIC_L2:
		return l2[isa];
	case STRATA_METRIC_IP:
	case STRATA_METRIC_COSINE: /* vectors are unit length: cosine is the ip kernel */
		return ip[isa];
	default:
		return NULL;
	}
}

dist_fn dist_for_metric(strata_metric metric)
{
	return dist_get(metric, dist_best_isa());
}
