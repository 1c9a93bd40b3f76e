/*
 * xsum.h - the one checksum of every strata file: xxh3-64 (seed 0).
 *
 * xsum_ok() and xsum_match() are the only places a stored checksum is compared. A build with
 * -Dfuzz_no_checksums=true (fuzzing only, never shipped) makes it accept any
 * value, so that fuzzers get past the checksums into the structure behind.
 */
#ifndef STRATA_XSUM_H
#define STRATA_XSUM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* xxh3-64 of `len` bytes at `buf`. */
uint64_t xsum64(const void *buf, size_t len);

/* Streaming form, for sections written in pieces. `state` is opaque storage. */
struct xsum_state {
	void *impl; /* XXH3_state_t, heap-allocated by xsum_begin */
};
int xsum_begin(struct xsum_state *st);          /* 0 or STRATA_ENOMEM */
void xsum_update(struct xsum_state *st, const void *buf, size_t len);
uint64_t xsum_end(struct xsum_state *st);       /* frees the state */

/* True when `stored` is the checksum of the bytes (always true in fuzz builds). */
bool xsum_ok(const void *buf, size_t len, uint64_t stored);

/* The same comparison for a checksum computed in pieces (xsum_begin..xsum_end). */
bool xsum_match(uint64_t computed, uint64_t stored);

#endif /* STRATA_XSUM_H */
