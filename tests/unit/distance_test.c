/*
 * distance_test.c - the SIMD kernels agree with the scalar reference for
 * every dim that matters (1..70 all, the common embedding sizes and their
 * neighbours), on unaligned pointers and mixed-sign, mixed-magnitude data;
 * dist_normalize; the choice of ISA and its STRATA_SIMD cap.
 *
 * A kernel the CPU cannot run is skipped, never called.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "distance.h"

static const size_t extra_dims[] = {
	100, 127, 128, 129, 255, 256, 300, 512, 768, 784, 960, 1024, 1536, 4096,
};

#define MAX_DIM 4096

static uint64_t rng_state;

static uint64_t rng_next(void)
{
	/* splitmix64 */
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Uniform in [-1, 1). */
static float rng_unit(void)
{
	return (float)((double)(rng_next() >> 11) * 0x1.0p-53 * 2.0 - 1.0);
}

/* Mixed sign, magnitudes spanning ~1e-3 .. 1e3. */
static void fill_mixed(float *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		float scale = powf(10.0f, (float)(int)(rng_next() % 7) - 3.0f);
		v[i] = rng_unit() * scale;
	}
}

/* Reference values in double, to judge the float kernels' error fairly. */
static void ref_double(const float *a, const float *b, size_t dim, double *l2_out,
                       double *dot_out, double *mag_out)
{
	double l2 = 0, dot = 0, mag = 0;
	for (size_t i = 0; i < dim; i++) {
		double d = (double)a[i] - (double)b[i];
		l2 += d * d;
		dot += (double)a[i] * (double)b[i];
		mag += fabs((double)a[i] * (double)b[i]);
	}
	*l2_out = l2;
	*dot_out = dot;
	*mag_out = mag;
}

/*
 * The float kernels reassociate sums: their error is bounded by a few ulps
 * times the sum of magnitudes (not the result, which may cancel to ~0).
 */
static void check_close(float got, float want, double mag, const char *what, size_t dim,
                        enum dist_isa isa)
{
	double tol = 1e-4 * fabs((double)want) + 1e-5 * mag + 1e-6;
	cr_assert(fabs((double)got - (double)want) <= tol,
	          "%s %s dim %zu: got %.9g want %.9g (tol %.3g)", dist_isa_name(isa), what, dim,
	          (double)got, (double)want, tol);
}

static void check_isa(enum dist_isa isa)
{
	if (!dist_isa_supported(isa))
		cr_skip_test("CPU lacks %s", dist_isa_name(isa));
	dist_fn l2 = dist_get(STRATA_METRIC_L2, isa);
	dist_fn ip = dist_get(STRATA_METRIC_IP, isa);
	dist_fn cs = dist_get(STRATA_METRIC_COSINE, isa);
	cr_assert_not_null(l2);
	cr_assert_not_null(ip);
	cr_assert(cs == ip, "cosine must use the ip kernel");

	/* +1 float: every load is unaligned for both 32- and 64-byte vectors. */
	float *abuf = malloc((MAX_DIM + 16) * sizeof(float));
	float *bbuf = malloc((MAX_DIM + 16) * sizeof(float));
	cr_assert(abuf && bbuf);
	rng_state = 12345 + (uint64_t)isa;

	size_t ndims = 70 + sizeof extra_dims / sizeof extra_dims[0];
	for (size_t t = 0; t < ndims; t++) {
		size_t dim = t < 70 ? t + 1 : extra_dims[t - 70];
		for (int rep = 0; rep < 4; rep++) {
			float *a = abuf + 1 + (rep & 1);
			float *b = bbuf + 1 + (rep >> 1);
			fill_mixed(a, dim);
			fill_mixed(b, dim);
			double l2d, dotd, mag;
			ref_double(a, b, dim, &l2d, &dotd, &mag);
			double l2mag = 0;
			for (size_t i = 0; i < dim; i++) {
				double d = (double)a[i] - (double)b[i];
				l2mag += d * d;
			}
			float sl2 = dist_l2sq_scalar(a, b, dim);
			float sip = dist_ip_scalar(a, b, dim);
			/* The scalar reference is itself right ... */
			check_close(sl2, (float)l2d, l2mag, "scalar l2 vs double", dim, DIST_SCALAR);
			check_close(sip, (float)(1.0 - dotd), mag + 1.0, "scalar ip vs double", dim,
			            DIST_SCALAR);
			/* ... and the kernel under test agrees with it. */
			check_close(l2(a, b, dim), sl2, l2mag, "l2", dim, isa);
			check_close(ip(a, b, dim), sip, mag + 1.0, "ip", dim, isa);
			/* Symmetry and identity. */
			check_close(l2(b, a, dim), sl2, l2mag, "l2 swapped", dim, isa);
			cr_assert_eq(l2(a, a, dim), 0.0f, "%s l2(a,a) dim %zu", dist_isa_name(isa), dim);
		}
		/* The last element alone must count (tail handling). */
		float *a = abuf + 1, *b = bbuf + 1;
		memset(a, 0, dim * sizeof(float));
		memset(b, 0, dim * sizeof(float));
		a[dim - 1] = 3.0f;
		b[dim - 1] = -1.0f;
		cr_assert_eq(l2(a, b, dim), 16.0f, "%s l2 tail dim %zu", dist_isa_name(isa), dim);
		cr_assert_eq(ip(a, b, dim), 4.0f, "%s ip tail dim %zu", dist_isa_name(isa), dim);
		/* Lanes past dim must not be read as data: poison them. */
		a[dim] = 1e30f;
		b[dim] = -1e30f;
		cr_assert_eq(l2(a, b, dim), 16.0f, "%s l2 past-end dim %zu", dist_isa_name(isa), dim);
		cr_assert_eq(ip(a, b, dim), 4.0f, "%s ip past-end dim %zu", dist_isa_name(isa), dim);
	}
	free(abuf);
	free(bbuf);
}

Test(distance, scalar_matches_double_reference)
{
	check_isa(DIST_SCALAR);
}

Test(distance, avx2_matches_scalar)
{
	check_isa(DIST_AVX2);
}

Test(distance, avx512_matches_scalar)
{
	check_isa(DIST_AVX512);
}

Test(distance, ip_convention_is_one_minus_dot)
{
	float a[3] = {1, 2, 3}, b[3] = {4, -5, 6};
	for (int isa = 0; isa < DIST_ISA_COUNT; isa++) {
		dist_fn ip = dist_get(STRATA_METRIC_IP, (enum dist_isa)isa);
		dist_fn l2 = dist_get(STRATA_METRIC_L2, (enum dist_isa)isa);
		if (!ip)
			continue;
		cr_assert_float_eq(ip(a, b, 3), 1.0f - 12.0f, 1e-6);
		cr_assert_float_eq(l2(a, b, 3), 9.0f + 49.0f + 9.0f, 1e-6);
	}
}

Test(distance, normalize_gives_unit_norm)
{
	rng_state = 777;
	float *v = malloc((MAX_DIM + 1) * sizeof(float));
	cr_assert_not_null(v);
	for (size_t dim = 1; dim <= MAX_DIM; dim = dim < 70 ? dim + 1 : dim * 2) {
		fill_mixed(v, dim);
		dist_normalize(v, dim);
		double ss = 0;
		for (size_t i = 0; i < dim; i++)
			ss += (double)v[i] * (double)v[i];
		cr_assert(fabs(sqrt(ss) - 1.0) < 1e-6, "dim %zu norm %.9g", dim, sqrt(ss));
		/* ip with itself is ~0 for every ISA (cosine distance of a vector to itself). */
		for (int isa = 0; isa < DIST_ISA_COUNT; isa++) {
			dist_fn ip = dist_get(STRATA_METRIC_COSINE, (enum dist_isa)isa);
			if (ip)
				cr_assert(fabsf(ip(v, v, dim)) < 1e-5f, "isa %d dim %zu", isa, dim);
		}
	}
	/* Huge and tiny components: no overflow or underflow to zero. */
	float big[4] = {3e38f, 3e38f, -3e38f, 3e38f};
	dist_normalize(big, 4);
	for (int i = 0; i < 4; i++)
		cr_assert_float_eq(fabsf(big[i]), 0.5f, 1e-6);
	float tiny[2] = {3e-39f, 4e-39f}; /* subnormal */
	dist_normalize(tiny, 2);
	cr_assert_float_eq(tiny[0], 0.6f, 1e-6);
	cr_assert_float_eq(tiny[1], 0.8f, 1e-6);
	free(v);
}

Test(distance, normalize_leaves_zero_vector_zero)
{
	float z[17] = {0};
	dist_normalize(z, 17);
	for (int i = 0; i < 17; i++)
		cr_assert_eq(z[i], 0.0f);
	float nz[3] = {-0.0f, 0.0f, -0.0f};
	dist_normalize(nz, 3);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(nz[i], 0.0f);
}

Test(distance, get_is_null_only_for_unsupported_isa)
{
	cr_assert(dist_isa_supported(DIST_SCALAR));
	for (int isa = 0; isa < DIST_ISA_COUNT; isa++) {
		for (int m = STRATA_METRIC_L2; m <= STRATA_METRIC_COSINE; m++) {
			dist_fn f = dist_get((strata_metric)m, (enum dist_isa)isa);
			if (dist_isa_supported((enum dist_isa)isa))
				cr_assert_not_null(f, "isa %d metric %d", isa, m);
			else
				cr_assert_null(f, "isa %d metric %d", isa, m);
		}
	}
	cr_assert_null(dist_get(STRATA_METRIC_L2, DIST_ISA_COUNT));
	cr_assert_null(dist_get((strata_metric)99, DIST_SCALAR));
	/* The best ISA is supported and is what dist_for_metric uses. */
	enum dist_isa best = dist_best_isa();
	cr_assert(dist_isa_supported(best));
	cr_assert(dist_for_metric(STRATA_METRIC_L2) == dist_get(STRATA_METRIC_L2, best));
	cr_assert(dist_for_metric(STRATA_METRIC_COSINE) == dist_get(STRATA_METRIC_IP, best));
}

Test(distance, isa_names_and_parse)
{
	cr_assert_str_eq(dist_isa_name(DIST_SCALAR), "scalar");
	cr_assert_str_eq(dist_isa_name(DIST_AVX2), "avx2");
	cr_assert_str_eq(dist_isa_name(DIST_AVX512), "avx512");
	cr_assert_str_eq(dist_isa_name(DIST_ISA_COUNT), "unknown");
	enum dist_isa isa = DIST_ISA_COUNT;
	cr_assert_eq(dist_isa_parse("avx2", &isa), 0);
	cr_assert_eq(isa, DIST_AVX2);
	cr_assert_eq(dist_isa_parse("scalar", &isa), 0);
	cr_assert_eq(isa, DIST_SCALAR);
	cr_assert_eq(dist_isa_parse("AVX9", &isa), -1);
	cr_assert_eq(dist_isa_parse(NULL, &isa), -1);
	cr_assert_eq(isa, DIST_SCALAR);
}

/* The best ISA the CPU can run, with no cap. */
static enum dist_isa cpu_best(void)
{
	return dist_isa_supported(DIST_AVX512) ? DIST_AVX512
	       : dist_isa_supported(DIST_AVX2) ? DIST_AVX2
	                                       : DIST_SCALAR;
}

Test(distance, cap_choice)
{
	enum dist_isa top = cpu_best();
	cr_assert_eq(dist_isa_choose(NULL), top);
	cr_assert_eq(dist_isa_choose("bogus"), top);
	cr_assert_eq(dist_isa_choose("scalar"), DIST_SCALAR);
	cr_assert_eq(dist_isa_choose("avx512"), top); /* a cap above the CPU is no cap */
	enum dist_isa a2 = dist_isa_choose("avx2");
	cr_assert(a2 <= DIST_AVX2 && a2 <= top && dist_isa_supported(a2));
	if (dist_isa_supported(DIST_AVX2))
		cr_assert_eq(a2, DIST_AVX2);
}

/* Criterion runs each test in its own process: the cache starts empty here. */
Test(distance, env_cap_scalar_is_respected)
{
	cr_assert_eq(setenv("STRATA_SIMD", "scalar", 1), 0);
	cr_assert_eq(dist_best_isa(), DIST_SCALAR);
	cr_assert(dist_for_metric(STRATA_METRIC_L2) == dist_l2sq_scalar);
	/* Read once: later changes do not move it. */
	cr_assert_eq(setenv("STRATA_SIMD", "avx512", 1), 0);
	cr_assert_eq(dist_best_isa(), DIST_SCALAR);
}

Test(distance, env_cap_avx2_is_respected)
{
	if (!dist_isa_supported(DIST_AVX2))
		cr_skip_test("CPU lacks avx2");
	cr_assert_eq(setenv("STRATA_SIMD", "avx2", 1), 0);
	cr_assert_eq(dist_best_isa(), DIST_AVX2);
	cr_assert(dist_for_metric(STRATA_METRIC_IP) == dist_ip_avx2);
}
