// sift.h - what the write-path benchmarks share (tools/bench/ingest_bench.cc,
// compact_bench.cc): the SIFT rows they write (real ones from ../shared/data,
// then synthetic SIFT-like ones), exact truth, recall, timing, and the strata
// calls every part makes. Benchmark code: it dies on errors (with the
// program's name) instead of returning them.
#ifndef STRATA_BENCH_SIFT_H
#define STRATA_BENCH_SIFT_H

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "bench.h"
#include "strata.h"

namespace bench {

constexpr uint32_t K = 10;
constexpr uint32_t kM = 16, kEfc = 200; // the issues' graph parameters, both engines
constexpr uint64_t kSeed = 100;

// Set by main(): the name in error messages.
extern const char *g_prog;

[[noreturn]] void die(const std::string &msg);
// die() with the library's error and detail unless rc is 0.
void check_strata(int rc, const char *what);
double now_s();                 // monotonic seconds
double thread_cpu_s();          // CPU seconds of the calling thread
std::string loadavg();          // "/proc/loadavg"'s first three figures
uint64_t mix64(uint64_t z);     // splitmix64's finaliser
struct strata_stats stats_of(strata_db *db);

// How rows past the real ones are made (--synthetic).
//  spread: a real row moved toward three of its ten nearest real rows by
//    random shares (together up to 3/4 of the way), rounded and clamped to
//    [0, 255]: new rows fill the space between real neighbours, so a larger
//    set is denser, as a larger sample of real SIFT is.
//  copies: a real row plus integer noise in [-8, 8], clamped (the benchmarks'
//    rows before the eighth session; README figures older than it used
//    them): clusters of near-copies of the 10,000 real rows, whose top 10
//    out of a million are 10 of ~100 near-equal copies - hard for any graph
//    (recall@10 ~0.50 at ef 64 compacted). With either kind a subset costs a
//    search more distance computations than the whole (README-figures, Data).
enum class Synthetic { Spread, Copies };
// Parses "spread" or "copies"; false otherwise.
bool parse_synthetic(const std::string &s, Synthetic &out);
const char *synthetic_name(Synthetic how);

// The rows every part writes: the largest SIFT set of the data folder, and if
// more rows are needed than it has, synthetic SIFT-like rows after them
// (Synthetic); reports must say so (synthetic_note).
struct Data {
	std::string name;     // the dataset folder used
	Mat base, query;      // base.rows >= rows_needed
	Mat truth;            // the dataset's ground truth, valid for its own base only
	size_t real_rows = 0; // rows read from the file; rows past these are synthetic
	Synthetic synthetic = Synthetic::Spread;
};
Data load_sift(const std::string &data_dir, size_t rows_needed,
               Synthetic how = Synthetic::Spread);
// "rows past N are synthetic (...)" for a report of n rows; "" if none is.
std::string synthetic_note(const Data &data, size_t n);
// " + synthetic rows (spread)" for a title of n rows; "" if none is.
std::string synthetic_tag(const Data &data, size_t n);

// Exact top-10 (ids = row numbers) of each query over base rows [0, n), or
// over the rows listed in `rows` when it is not empty, on `threads` threads.
std::vector<uint64_t> brute_force_top10(const Mat &base, size_t n, const Mat &q, unsigned threads,
                                        const std::vector<uint64_t> &rows = {});
double recall_at_10(const std::vector<uint64_t> &found, const std::vector<uint64_t> &truth,
                    size_t nq);

// Options with the graph parameters above, 128-d l2, `threads` build threads.
strata_options base_opts(unsigned threads);
// A new database at dir (whatever was there is removed first).
strata_db *open_fresh(const std::string &dir, const strata_options &o);
// Single-thread QPS of one query per call at `ef` over q, repeated for `secs`.
double search_loop(strata_db *db, const Mat &q, uint32_t ef, double secs);
// The k = 10 answers of every query at `ef` (one call, one thread).
std::vector<uint64_t> search_all(strata_db *db, const Mat &q, uint32_t ef);

} // namespace bench

#endif // STRATA_BENCH_SIFT_H
