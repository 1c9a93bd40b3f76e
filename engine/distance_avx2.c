/*
 * distance_avx2.c - l2 and ip kernels for AVX2 + FMA, 8 floats per vector.
 *
 * This file is compiled without -march flags: only the target attribute on
 * each function enables AVX2/FMA, and distance.c calls these functions only
 * after the CPU said it has both. Without a compiler that knows the target
 * (non-x86, non-GCC-compatible), the functions still exist and run the scalar
 * kernels, so the library links everywhere.
 *
 * Speed: four independent accumulators (32 floats per iteration) hide the
 * FMA latency (4 cycles, 2 per cycle on recent cores); hnswlib's AVX path
 * uses one accumulator and separate mul + add. The tail of a dim that is not
 * a multiple of 8 is one masked load (vmaskmovps does not fault on the
 * masked-out lanes), so dim 1..7 and every tail cost one step, no scalar loop.
 * Unaligned input is fine (loadu).
 *
 * Contract: distance.h.
 */
#include "distance.h"

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)

#include <immintrin.h>

#define DIST_AVX2 __attribute__((target("avx2,fma")))

/* tail_mask + 8 - r: the first r lanes all-ones, the rest zero (1 <= r <= 7). */
static const int32_t tail_mask[16] = {
	-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0,
};

static inline DIST_AVX2 float hsum256(__m256 v)
{
	__m128 lo = _mm256_castps256_ps128(v);
	__m128 hi = _mm256_extractf128_ps(v, 1);
	lo = _mm_add_ps(lo, hi);
	__m128 sh = _mm_movehl_ps(lo, lo);
	lo = _mm_add_ps(lo, sh);
	sh = _mm_shuffle_ps(lo, lo, 0x55);
	lo = _mm_add_ss(lo, sh);
	return _mm_cvtss_f32(lo);
}

DIST_AVX2 float dist_l2sq_avx2(const float *a, const float *b, size_t dim)
{
	__m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
	__m256 s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
	size_t i = 0;
	for (; i + 32 <= dim; i += 32) {
		__m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
		__m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8));
		__m256 d2 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16));
		__m256 d3 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24));
		s0 = _mm256_fmadd_ps(d0, d0, s0);
		s1 = _mm256_fmadd_ps(d1, d1, s1);
		s2 = _mm256_fmadd_ps(d2, d2, s2);
		s3 = _mm256_fmadd_ps(d3, d3, s3);
	}
	for (; i + 8 <= dim; i += 8) {
		__m256 d = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
		s0 = _mm256_fmadd_ps(d, d, s0);
	}
	if (i < dim) {
		__m256i m = _mm256_loadu_si256((const __m256i *)(const void *)(tail_mask + 8 - (dim - i)));
		__m256 d = _mm256_sub_ps(_mm256_maskload_ps(a + i, m), _mm256_maskload_ps(b + i, m));
		s1 = _mm256_fmadd_ps(d, d, s1);
	}
	return hsum256(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
}

DIST_AVX2 float dist_ip_avx2(const float *a, const float *b, size_t dim)
{
	__m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
	__m256 s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
	size_t i = 0;
	for (; i + 32 <= dim; i += 32) {
		s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
		s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
		s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
		s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
	}
	for (; i + 8 <= dim; i += 8)
		s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
	if (i < dim) {
		__m256i m = _mm256_loadu_si256((const __m256i *)(const void *)(tail_mask + 8 - (dim - i)));
		s1 = _mm256_fmadd_ps(_mm256_maskload_ps(a + i, m), _mm256_maskload_ps(b + i, m), s1);
	}
	return 1.0f - hsum256(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
}

#else /* no x86 target attributes: keep the symbols, run the reference */

float dist_l2sq_avx2(const float *a, const float *b, size_t dim)
{
	return dist_l2sq_scalar(a, b, dim);
}

float dist_ip_avx2(const float *a, const float *b, size_t dim)
{
	return dist_ip_scalar(a, b, dim);
}

#endif
