/*
 * fuzz_helpers.h - what the harnesses of fuzz/ share: the assertion that turns
 * a broken property into a crash the fuzzer reports, a generator that derives
 * parameters (k, ef, query values) from the input bytes, and aligned copies.
 *
 * Harness code, never library code: it may abort (that is how a fuzzer learns
 * of a finding) and it runs the same under libFuzzer, AFL++ (through its
 * libFuzzer driver) and fuzz/regress_driver.c (plain meson tests).
 */
#ifndef STRATA_FUZZ_HELPERS_H
#define STRATA_FUZZ_HELPERS_H

#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "strata.h"

#ifndef STRATA_FUZZ_NO_CHECKSUMS
#define STRATA_FUZZ_NO_CHECKSUMS 0
#endif

/* Both entry points a libFuzzer harness may define (the driver calls them too). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* A property of the code under test does not hold: say which, then crash. */
#define FZ_ASSERT(cond, ...)                                                                   \
	do {                                                                                       \
		if (!(cond)) {                                                                         \
			fprintf(stderr, "%s:%d: FZ_ASSERT(%s) failed: ", __FILE__, __LINE__, #cond);      \
			fprintf(stderr, __VA_ARGS__);                                                      \
			fprintf(stderr, "\n  last error detail: %s\n", err_detail());                     \
			abort();                                                                           \
		}                                                                                      \
	} while (0)

/* A library call failed: its code must be a data error, and it must have said why. */
#define FZ_ASSERT_DATA_ERROR(rc, what)                                                         \
	do {                                                                                       \
		int fz_rc_ = (rc);                                                                     \
		FZ_ASSERT(STRATA_IS_DATA_ERROR(fz_rc_), "%s returned %d (%s), not a data error", what, \
		          fz_rc_, strata_strerror(fz_rc_));                                            \
		FZ_ASSERT(err_detail()[0] != '\0', "%s returned %d without a detail", what, fz_rc_);   \
	} while (0)

/*
 * Parameters of a run (k, ef, which node, query noise). Every byte of a valid
 * file is meaningful and trailing bytes make it invalid, so they are not read
 * from a part of the input: a splitmix64 stream seeded with the hash of the
 * whole input gives each mutation its own parameters, reproducibly.
 */
struct fz_rng {
	uint64_t s;
};

static inline struct fz_rng fz_rng_of(const uint8_t *data, size_t size)
{
	uint64_t h = 0x9e3779b97f4a7c15ull ^ size;
	for (size_t i = 0; i < size; i++)
		h = (h ^ data[i]) * 0x100000001b3ull; /* FNV-1a: no dependency on the code under test */
	return (struct fz_rng){h};
}

static inline uint64_t fz_u64(struct fz_rng *r)
{
	uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static inline uint32_t fz_u32(struct fz_rng *r)
{
	return (uint32_t)(fz_u64(r) >> 32);
}

/* A finite float: any bit pattern but the non-finite ones (those become 0). */
static inline float fz_float(struct fz_rng *r)
{
	uint32_t bits = fz_u32(r);
	float f;
	memcpy(&f, &bits, sizeof f);
	return isfinite(f) ? f : 0.0f;
}

/*
 * A 64-byte aligned private copy of the input. Segment files are mapped (page
 * aligned) in real use and the search reads node records in place as f32/u32,
 * so the harness hands the reader the same alignment. posix_memalign keeps the
 * exact size, so ASan still catches a read one byte past the end.
 */
static inline uint8_t *fz_aligned_copy(const uint8_t *data, size_t size)
{
	void *p = NULL;
	if (posix_memalign(&p, 64, size ? size : 1) != 0) {
		fprintf(stderr, "fuzz: out of memory copying %zu bytes\n", size);
		abort();
	}
	if (size)
		memcpy(p, data, size);
	return p;
}

/* Distances are compared by their bits, so a NaN equals the same NaN. */
static inline bool fz_same_float(float a, float b)
{
	return memcmp(&a, &b, sizeof a) == 0 || (isnan(a) && isnan(b));
}

#endif /* STRATA_FUZZ_HELPERS_H */
