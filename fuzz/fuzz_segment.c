/*
 * fuzz_segment.c - any byte string given to the segment reader is either
 * rejected with a data error and a detail, or opens; what opens can be
 * verified, searched and looked up by id without leaving the buffer.
 *
 * Properties checked on every input (FZ_ASSERT aborts, the fuzzer reports):
 *   - seg_check / seg_verify / hnsw_search / seg_id_find return 0 or a data
 *     error (STRATA_IS_DATA_ERROR), and every failure sets a detail;
 *   - the search runs on whatever seg_check() accepted, verified or not (a
 *     database opens without STRATA_VERIFY, so search must survive a graph
 *     that is damaged behind a valid header): every hit is a node < count,
 *     passes the filter, appears once, carries the distance of its vector,
 *     and the hits are sorted closest first;
 *   - on a segment that seg_verify() accepted, nothing may be reported as
 *     corrupt afterwards: search returns 0 and finds at least the entry point,
 *     and seg_id_find maps the id of node i back to node i.
 * With -Dfuzz_no_checksums=true (the *_nock executables) the checksums pass,
 * so mutations reach the structure behind them.
 *
 * A NaN distance (a non-finite stored vector behind a valid header, or, with
 * the ip metric, finite products overflowing to +inf and -inf) counts as +inf
 * in the engine (hnsw_dist_ordered), so hits stay sorted; the inputs that first
 * showed hits out of order are in tests/fuzz-regress/segment/search-unsorted-*.
 */
#include "fuzz_helpers.h"
#include "hnsw.h"
#include "le.h"
#include "segment.h"

#define FZ_K_MAX 16u
#define FZ_EF_MAX 64u

static struct hnsw_scratch *fz_scratch;

struct fz_filter {
	uint32_t mod;
	uint32_t skip;
};

/* Rejects nodes whose index is `skip` modulo `mod`: a filter that walks through nodes. */
static bool fz_accept(uint32_t node, void *ctx)
{
	const struct fz_filter *f = ctx;
	return node % f->mod != f->skip;
}

static void fz_search_one(const struct hnsw_view *v, bool verified, const float *q, uint32_t k,
                          uint32_t ef, const struct fz_filter *filter)
{
	struct hnsw_hit hits[FZ_K_MAX];
	uint32_t n = UINT32_MAX;
	uint64_t evals = 0;
	err_clear();
	int rc = hnsw_search(v, q, k, ef, filter ? fz_accept : NULL, (void *)filter, fz_scratch, hits,
	                     &n, &evals);
	if (rc) {
		FZ_ASSERT_DATA_ERROR(rc, "hnsw_search");
		FZ_ASSERT(!verified, "hnsw_search says %d on a segment that seg_verify accepted", rc);
		return;
	}
	FZ_ASSERT(n <= k, "%u hits for k = %u", n, k);
	if (verified && !filter && v->count > 0)
		FZ_ASSERT(n >= 1, "no hit in a verified graph of %u nodes (the entry point is one)",
		          v->count);
	for (uint32_t i = 0; i < n; i++) {
		FZ_ASSERT(hits[i].node < v->count, "hit %u is node %u, count %u", i, hits[i].node,
		          v->count);
		if (filter)
			FZ_ASSERT(fz_accept(hits[i].node, (void *)filter), "hit %u (node %u) fails the filter",
			          i, hits[i].node);
		float d = hnsw_dist_ordered(v->dist(q, hnsw_vec(v, hits[i].node), v->dim));
		FZ_ASSERT(fz_same_float(d, hits[i].dist), "hit %u (node %u): distance %g, recomputed %g",
		          i, hits[i].node, (double)hits[i].dist, (double)d);
		if (i > 0)
			FZ_ASSERT(!(hits[i].dist < hits[i - 1].dist), "hits %u and %u out of order (%g < %g)",
			          i - 1, i, (double)hits[i].dist, (double)hits[i - 1].dist);
		for (uint32_t j = 0; j < i; j++)
			FZ_ASSERT(hits[j].node != hits[i].node, "node %u returned twice", hits[i].node);
	}
}

static void fz_search(const struct seg_info *info, bool verified, struct fz_rng *cur)
{
	struct hnsw_view v;
	hnsw_view_from_segment(info, &v);
	if (v.count == 0) {
		/* An empty segment answers nothing, whatever the query. */
		float q = 0.0f;
		struct hnsw_hit h[1];
		uint32_t n = 1;
		uint64_t evals = 0;
		FZ_ASSERT(hnsw_search(&v, &q, 1, 1, NULL, NULL, fz_scratch, h, &n, &evals) == 0 && n == 0,
		          "search of an empty segment");
		return;
	}
	float *q = malloc((size_t)v.dim * sizeof *q);
	FZ_ASSERT(q != NULL, "query of dim %u", v.dim);
	for (int round = 0; round < 3; round++) {
		uint32_t k = 1 + (fz_u32(cur) & 0xff) % FZ_K_MAX;
		uint32_t ef = (fz_u32(cur) & 0xff) % FZ_EF_MAX; /* below k is legal: it is raised to k */
		uint32_t node = fz_u32(cur) % v.count;
		const float *x = hnsw_vec(&v, node);
		for (uint32_t j = 0; j < v.dim; j++) {
			/* Round 0: a stored vector as is; then perturbed by input-derived values. */
			float base = isfinite(x[j]) ? x[j] : 0.0f;
			q[j] = round == 0 ? base : base + fz_float(cur) * 1e-3f;
			if (!isfinite(q[j]))
				q[j] = 0.0f;
		}
		struct fz_filter f = {.mod = 2 + (fz_u32(cur) & 0xff) % 5, .skip = 0};
		f.skip = (fz_u32(cur) & 0xff) % f.mod;
		fz_search_one(&v, verified, q, k, ef, round == 2 ? &f : NULL);
	}
	free(q);
}

static void fz_ids(const struct seg_info *info, bool verified, struct fz_rng *cur)
{
	for (int i = 0; i < 3; i++) {
		uint64_t want = fz_u64(cur);
		uint32_t expect = SEG_NO_NODE;
		if (info->count > 0 && i < 2) {
			/* The stored id of some node: present in any index that verify accepted. */
			expect = (uint32_t)(want % info->count);
			want = le_load64(info->ids + (size_t)expect * 8);
		}
		uint32_t node = SEG_NO_NODE;
		err_clear();
		int rc = seg_id_find(info, want, &node);
		if (rc == 0) {
			FZ_ASSERT(node < info->count, "seg_id_find gave node %u, count %llu", node,
			          (unsigned long long)info->count);
			FZ_ASSERT(le_load64(info->ids + (size_t)node * 8) == want,
			          "seg_id_find maps id %llu to node %u, whose id differs",
			          (unsigned long long)want, node);
		} else if (rc != STRATA_ENOTFOUND) {
			FZ_ASSERT_DATA_ERROR(rc, "seg_id_find");
		}
		if (verified && expect != SEG_NO_NODE)
			FZ_ASSERT(rc == 0 && node == expect,
			          "verified segment: id %llu of node %u gives rc %d node %u",
			          (unsigned long long)want, expect, rc, node);
		if (verified)
			FZ_ASSERT(rc == 0 || rc == STRATA_ENOTFOUND, "verified segment: seg_id_find says %d",
			          rc);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!fz_scratch) {
		fz_scratch = hnsw_scratch_new();
		FZ_ASSERT(fz_scratch != NULL, "scratch");
	}
	uint8_t *buf = fz_aligned_copy(data, size);
	struct seg_info info;
	err_clear();
	int rc = seg_check(buf, size, &info);
	if (rc) {
		FZ_ASSERT_DATA_ERROR(rc, "seg_check");
		free(buf);
		return 0;
	}
	FZ_ASSERT(info.base == buf && info.len == size, "seg_info does not describe the buffer");

	err_clear();
	rc = seg_verify(&info);
	if (rc)
		FZ_ASSERT_DATA_ERROR(rc, "seg_verify");
	bool verified = rc == 0;

	struct fz_rng cur = fz_rng_of(data, size);
	fz_search(&info, verified, &cur);
	fz_ids(&info, verified, &cur);
	free(buf);
	return 0;
}
