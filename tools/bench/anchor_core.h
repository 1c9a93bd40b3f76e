/*
 * anchor_core.h - the measuring half of strata-anchor-bench (anchor_bench.cc):
 * three ways to search the same rows with the engine's own HNSW code
 * (engine/hnsw.h), counted and timed. C, because the engine's internal
 * headers are C11; plain types here, so that the C++ driver can call it.
 */
#ifndef STRATA_BENCH_ANCHOR_CORE_H
#define STRATA_BENCH_ANCHOR_CORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One way of searching at one ef: means per query over the query set. */
struct anchor_point {
	double evals;  /* distance evaluations */
	double recall; /* recall@10 against the exact truth over all rows */
	double qps;    /* one thread, one query per call, `secs` of repeats */
};

struct anchor_costs {
	double build_segment_s, build_all_s; /* hnsw_build, wall, `threads` threads */
	double build_memtable_s;  /* mt_index of every memtable row, wall, `threads` threads */
	double anchor_s;          /* mt_anchor of every memtable row, one thread */
	double leaves_per_query;  /* at the largest ef: memtable rows evaluated under the nodes */
};

/*
 * Rows [0, n_seg) of `base` (dim floats each, l2) form the segment graph,
 * rows [n_seg, n_seg + n_mt) the engine's memtable (indexed and anchored),
 * all of them the compacted graph (M 16, ef_construction 200, as the issues).
 * For each ef in efs[0..n_ef):
 *   out[3 * i + 0]: the compacted graph, one walk at ef;
 *   out[3 * i + 1]: as written, walked: the segment at ef, then the
 *                   memtable's own graph bounded by the segment's 10th best
 *                   (mt_search), as engine/search.c did before anchors;
 *   out[3 * i + 2]: as written, anchored: the segment walked at ef (traced),
 *                   then the memtable rows hung under the nodes it expanded
 *                   (mt_search_anchored), as engine/search.c does now.
 * truth: 10 row numbers per query. Returns 0, or -1 with a sentence in err.
 */
int anchor_measure(const float *base, size_t n_seg, size_t n_mt, uint32_t dim, const float *queries,
                   size_t nq, const uint64_t *truth, const uint32_t *efs, size_t n_ef,
                   uint32_t threads, double secs, struct anchor_point *out,
                   struct anchor_costs *costs, char *err, size_t err_len);

#ifdef __cplusplus
}
#endif

#endif /* STRATA_BENCH_ANCHOR_CORE_H */
