// bench.h - pieces shared by the files of strata-bench (tools/bench/).
//
// The benchmark compares strata (through its public C API only, engine/strata.h)
// with hnswlib (header-only C++, libhnswlib-dev) on the same data, the same
// graph parameters and the same thread count, in one run. hnswlib is reached
// only through the small interface below, implemented in hnsw_side.cc, the one
// translation unit that includes hnswlib (its headers define non-inline
// functions, so a second including file would not link).
#ifndef STRATA_BENCH_H
#define STRATA_BENCH_H

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace bench {

// ---- vector files (vecs.cc) ------------------------------------------------

struct Mat {
	std::vector<float> f;   // .fvecs
	std::vector<int32_t> i; // .ivecs
	size_t rows = 0, dim = 0;
};

// Read a TEXMEX .fvecs (ints false) or .ivecs (ints true) file: per row an
// int32 dimension d, then d 4-byte values. At most `max_rows` rows are read
// (0: all). Every row must have the first row's dimension. On failure returns
// false with a sentence naming the file in err_out; out is then unspecified.
bool read_vecs(const std::string &path, bool ints, Mat &out, std::string &err_out,
               size_t max_rows = 0);

// ---- the hnswlib side (hnsw_side.cc) -------------------------------------

struct HnswIndex; // an hnswlib::HierarchicalNSW<float> with its space

// A new empty index over `dim` floats. `ip` selects InnerProductSpace
// (1 - dot), else L2Space (squared Euclidean).
HnswIndex *hnsw_new(size_t dim, bool ip, size_t max_elements, size_t M, size_t ef_construction,
                    size_t seed);
// addPoint(row r, label r) for every row, on `threads` threads pulling rows
// from a shared atomic counter (hnswlib's own ParallelFor, examples and
// Python binding).
void hnsw_add_all(HnswIndex *h, const float *rows, size_t n, size_t dim, unsigned threads);
void hnsw_save(HnswIndex *h, const std::string &path);
HnswIndex *hnsw_load(const std::string &path, size_t dim, bool ip);
void hnsw_set_ef(HnswIndex *h, size_t ef);
// searchKnn(query, k); labels closest first into labels_out[0..k) (missing: UINT64_MAX).
void hnsw_search(const HnswIndex *h, const float *query, size_t k, uint64_t *labels_out);
void hnsw_free(HnswIndex *h);
// Which distance code hnswlib was compiled with ("AVX512", "AVX", "SSE", "scalar").
const char *hnsw_simd_path();

} // namespace bench

#endif // STRATA_BENCH_H
