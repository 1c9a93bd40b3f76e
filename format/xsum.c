/*
 * xsum.c - xxh3-64 (seed 0) over byte spans, the checksum of every strata
 * file (FORMAT.md, "Conventions"), from the system libxxhash.
 *
 * Owns the one comparison of a stored checksum (xsum_ok, xsum_match), which
 * fuzz builds (STRATA_FUZZ_NO_CHECKSUMS=1) turn into "always equal" so that
 * fuzzers reach the structure behind the checksums. It never reads outside [buf, buf+len).
 */
#include "xsum.h"

#include <xxhash.h>

#include "strata.h"

uint64_t xsum64(const void *buf, size_t len)
{
	return (uint64_t)XXH3_64bits(len ? buf : "", len);
}

int xsum_begin(struct xsum_state *st)
{
	XXH3_state_t *s = XXH3_createState();
	if (!s) {
		st->impl = NULL;
		return STRATA_ENOMEM;
	}
	XXH3_64bits_reset(s);
	st->impl = s;
	return 0;
}

void xsum_update(struct xsum_state *st, const void *buf, size_t len)
{
	if (st->impl && len)
		XXH3_64bits_update(st->impl, buf, len);
}

uint64_t xsum_end(struct xsum_state *st)
{
	uint64_t h = 0;
	if (st->impl) {
		h = (uint64_t)XXH3_64bits_digest(st->impl);
		XXH3_freeState(st->impl);
		st->impl = NULL;
	}
	return h;
}

bool xsum_ok(const void *buf, size_t len, uint64_t stored)
{
#if STRATA_FUZZ_NO_CHECKSUMS
	(void)buf;
	(void)len;
	(void)stored;
	return true;
#else
	return xsum64(buf, len) == stored;
#endif
}

bool xsum_match(uint64_t computed, uint64_t stored)
{
#if STRATA_FUZZ_NO_CHECKSUMS
	(void)computed;
	(void)stored;
	return true;
#else
	return computed == stored;
#endif
}
