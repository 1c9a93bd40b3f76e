/*
 * le.h - little-endian loads and stores for every on-disk integer.
 *
 * All strata files are little-endian (FORMAT.md, "Conventions"). Codecs use
 * these helpers on byte buffers so that an unaligned or hostile buffer can
 * never cause an unaligned access trap. Search reads the mapped node records
 * in place as native u32/f32, which is why the build refuses big-endian hosts.
 */
#ifndef STRATA_LE_H
#define STRATA_LE_H

#include <stdint.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "strata searches mapped files in place and supports little-endian hosts only"
#endif

static inline uint32_t le_load32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, sizeof v);
	return v;
}

static inline uint64_t le_load64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof v);
	return v;
}

static inline void le_store32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, sizeof v);
}

static inline void le_store64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, sizeof v);
}

/*
 * Whether the f32 stored at p is finite, tested on its bits (exponent not all
 * ones): a build with -ffast-math may assume no infinities and fold isfinite()
 * to true, and a file's bytes must be judged the same by every build.
 */
static inline int le_f32_finite(const uint8_t *p)
{
	return (le_load32(p) & 0x7f800000u) != 0x7f800000u;
}

#endif /* STRATA_LE_H */
