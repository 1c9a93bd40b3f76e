// hnsw_side.cc - the hnswlib half of strata-bench: the only file that includes
// hnswlib. It is compiled with -O3 -march=native (tools/bench/meson.build) so
// that hnswlib takes its best SIMD path (it picks SSE/AVX/AVX-512 code at
// compile time from __SSE__/__AVX__/__AVX512F__, not at run time).
//
// hnswlib's headers are not warning-clean under -Wall -Wextra -Wpedantic
// (unused static functions and parameters, sign comparisons). They normally
// live in /usr/include, a system directory whose warnings the compiler
// suppresses anyway; the pragmas below silence them also when hnswlib comes
// from a non-system include path. Our own code is outside the pragmas.
#include <atomic>
#include <cstdint>
#include <stdexcept>
#include <thread>
#include <vector>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wunused-variable"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wpedantic"
#pragma GCC diagnostic ignored "-Wextra"
#include <hnswlib/hnswlib.h>
#pragma GCC diagnostic pop

#include "bench.h"

namespace bench {

struct HnswIndex {
	hnswlib::SpaceInterface<float> *space = nullptr;
	hnswlib::HierarchicalNSW<float> *alg = nullptr;
};

static hnswlib::SpaceInterface<float> *make_space(size_t dim, bool ip)
{
	if (ip)
		return new hnswlib::InnerProductSpace(dim);
	return new hnswlib::L2Space(dim);
}

HnswIndex *hnsw_new(size_t dim, bool ip, size_t max_elements, size_t M, size_t ef_construction,
                    size_t seed)
{
	auto *h = new HnswIndex;
	h->space = make_space(dim, ip);
	h->alg = new hnswlib::HierarchicalNSW<float>(h->space, max_elements, M, ef_construction, seed);
	return h;
}

void hnsw_add_all(HnswIndex *h, const float *rows, size_t n, size_t dim, unsigned threads)
{
	if (threads <= 1) {
		for (size_t r = 0; r < n; r++)
			h->alg->addPoint(rows + r * dim, r);
		return;
	}
	// As hnswlib's ParallelFor: each thread takes the next row from one counter.
	std::atomic<size_t> next(0);
	std::vector<std::thread> pool;
	for (unsigned t = 0; t < threads; t++) {
		pool.emplace_back([&]() {
			for (;;) {
				size_t r = next.fetch_add(1);
				if (r >= n)
					break;
				h->alg->addPoint(rows + r * dim, r);
			}
		});
	}
	for (auto &th : pool)
		th.join();
}

void hnsw_save(HnswIndex *h, const std::string &path)
{
	h->alg->saveIndex(path);
}

HnswIndex *hnsw_load(const std::string &path, size_t dim, bool ip)
{
	auto *h = new HnswIndex;
	h->space = make_space(dim, ip);
	h->alg = new hnswlib::HierarchicalNSW<float>(h->space, path);
	return h;
}

void hnsw_set_ef(HnswIndex *h, size_t ef)
{
	h->alg->setEf(ef);
}

void hnsw_search(const HnswIndex *h, const float *query, size_t k, uint64_t *labels_out)
{
	auto pq = h->alg->searchKnn(query, k);
	size_t n = pq.size();
	for (size_t i = n; i < k; i++)
		labels_out[i] = UINT64_MAX;
	// The queue's top is the farthest: fill from the back.
	while (!pq.empty()) {
		labels_out[--n] = (uint64_t)pq.top().second;
		pq.pop();
	}
}

void hnsw_free(HnswIndex *h)
{
	if (!h)
		return;
	delete h->alg;
	delete h->space;
	delete h;
}

const char *hnsw_simd_path()
{
#if defined(USE_AVX512)
	return "AVX512";
#elif defined(USE_AVX)
	return "AVX";
#elif defined(USE_SSE)
	return "SSE";
#else
	return "scalar";
#endif
}

} // namespace bench
