/*
 * t_plain.h - what the plain (non-Criterion) concurrency test programs share:
 * they must run under ThreadSanitizer, which Criterion's runner does not
 * suit. A failure counter and CHECK that reports and counts instead of
 * aborting (every thread keeps going, main returns the verdict), the
 * splitmix64 generator, and the end-of-run check of a database's content
 * against the final state the writers kept. Header-only: each program is one
 * translation unit.
 */
#ifndef STRATA_T_PLAIN_H
#define STRATA_T_PLAIN_H

#include <math.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "strata.h"

static atomic_int t_failures;

#define T_CHECK(cond, ...)                                                                      \
	do {                                                                                         \
		if (!(cond)) {                                                                           \
			fprintf(stderr, __VA_ARGS__);                                                        \
			fputc('\n', stderr);                                                                 \
			atomic_fetch_add(&t_failures, 1);                                                    \
		}                                                                                        \
	} while (0)

static inline uint64_t t_rng(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/*
 * Ids 0..n-1: each holds vecs[id * dim ..] exactly when live[id], else is
 * absent; and a search with ef above n finds the brute-force nearest of the
 * point (5, 5, ...). dim at most 64.
 */
static inline void t_check_final(strata_db *db, const float *vecs, const bool *live, uint64_t n,
                                 uint32_t dim, const char *when)
{
	float v[64], q[64];
	for (uint64_t id = 0; id < n; id++) {
		int rc = strata_get(db, id, v);
		if (!live[id]) {
			T_CHECK(rc == STRATA_ENOTFOUND, "%s: id %llu should be deleted (rc %d)", when,
			        (unsigned long long)id, rc);
			continue;
		}
		T_CHECK(rc == 0 && memcmp(v, vecs + id * dim, dim * sizeof *v) == 0,
		        "%s: id %llu lost its last write", when, (unsigned long long)id);
	}
	double best = INFINITY;
	for (uint32_t j = 0; j < dim; j++)
		q[j] = 5;
	for (uint64_t id = 0; id < n; id++) {
		if (!live[id])
			continue;
		double dd = 0;
		for (uint32_t j = 0; j < dim; j++)
			dd += ((double)q[j] - vecs[id * dim + j]) * ((double)q[j] - vecs[id * dim + j]);
		if (dd < best)
			best = dd;
	}
	strata_search_options so;
	strata_search_options_default(&so);
	so.ef = (uint32_t)(4 * n);
	uint64_t ids[1];
	float d[1];
	T_CHECK(strata_search(db, q, 1, 1, &so, ids, d) == 0, "%s: final search failed", when);
	T_CHECK(n == 0 || fabs(d[0] - best) <= 1e-3, "%s: nearest at %g, brute force %g", when, d[0],
	        best);
}

#endif /* STRATA_T_PLAIN_H */
