// bench.cc - strata-bench: strata against hnswlib, same data, same parameters,
// same thread count, in one run.
//
// For every real dataset of ../shared/data (see its README.md):
//   - build time (wall) of both at --threads (default 1), and once more with
//     every core (time only);
//   - recall@10 against the dataset's ground truth and single-thread QPS, one
//     query per call, for a list of ef values; the query set is repeated until
//     a timing lasts >= --min-time and the best of --runs timings is kept; the
//     two engines alternate, run by run, so drifts of the machine hit both;
//   - QPS at equal recall (0.90, 0.95, 0.99), linear in recall between the
//     neighbouring ef points of each curve;
//   - index bytes on disk, open/load time and heap bytes held after opening.
// Then open time against size, on random 128-d vectors (a cheap graph for
// both: M 8, ef_construction 20, every core, so 1M vectors build in minutes).
//
// strata is reached only through its public API (engine/strata.h); hnswlib
// only through bench.h (hnsw_side.cc). Nothing here favours either side: same
// M, ef_construction, seed, threads, k, ef, and hnswlib is compiled with
// -O3 -march=native so it takes its widest SIMD path.
#include <algorithm>
#include <chrono>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <ftw.h>
#include <time.h>
#include <malloc.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "bench.h"
#include "report.h"
#include "strata.h"

#ifndef STRATA_SOURCE_ROOT
#define STRATA_SOURCE_ROOT "."
#endif

using namespace bench;

namespace {

constexpr uint32_t K = 10; // recall@10, k = 10 for both engines

// ---- small helpers ---------------------------------------------------------

double now_s()
{
	return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
	    .count();
}

// The clock of the search timings: wall time (default), or with --clock cpu the
// CPU time of the searching thread, which leaves out the time the thread was
// not running (a shared machine), not what other processes do to the caches.
bool g_cpu_clock = false;

double search_clock_s()
{
	if (!g_cpu_clock)
		return now_s();
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

std::string loadavg()
{
	std::ifstream in("/proc/loadavg");
	std::string a, b, c;
	in >> a >> b >> c;
	return a + " " + b + " " + c;
}

[[noreturn]] void die(const std::string &msg)
{
	fprintf(stderr, "strata-bench: %s\n", msg.c_str());
	exit(1);
}

void check_strata(int rc, const char *what)
{
	if (rc != 0)
		die(fmt("%s: %s (%s)", what, strata_strerror(rc), strata_last_error_detail()));
}

// Heap bytes in use: malloc'ed arena bytes plus malloc's own mmapped blocks.
int64_t heap_bytes()
{
	struct mallinfo2 m = mallinfo2();
	return (int64_t)(m.uordblks + m.hblkhd);
}

double median(std::vector<double> v)
{
	if (v.empty())
		return -1;
	std::sort(v.begin(), v.end());
	size_t n = v.size();
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

uint64_t g_tree_bytes;
int sum_file(const char *, const struct stat *st, int type, struct FTW *)
{
	if (type == FTW_F)
		g_tree_bytes += (uint64_t)st->st_size;
	return 0;
}

uint64_t tree_bytes(const std::string &path)
{
	g_tree_bytes = 0;
	struct stat st;
	if (stat(path.c_str(), &st) != 0)
		return 0;
	if (S_ISREG(st.st_mode))
		return (uint64_t)st.st_size;
	nftw(path.c_str(), sum_file, 16, FTW_PHYS);
	return g_tree_bytes;
}

// Page-cache control of the files of one index (a file or a directory tree):
// warm reads every byte once; cold writes back and drops the cached pages of
// these files only (posix_fadvise DONTNEED), nothing else of the machine.
bool g_cold;
int cache_one(const char *p, const struct stat *, int type, struct FTW *)
{
	if (type != FTW_F)
		return 0;
	int fd = open(p, O_RDONLY);
	if (fd < 0)
		return 0;
	if (g_cold) {
		fsync(fd);
		posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	} else {
		static char buf[1 << 20];
		while (read(fd, buf, sizeof buf) > 0) {
		}
	}
	close(fd);
	return 0;
}

void page_cache(const std::string &path, bool cold)
{
	g_cold = cold;
	nftw(path.c_str(), cache_one, 16, FTW_PHYS);
}

int rm_one(const char *p, const struct stat *, int, struct FTW *)
{
	return remove(p);
}

void rm_tree(const std::string &path)
{
	nftw(path.c_str(), rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

std::string human_bytes(double b)
{
	if (b < 0)
		return "-" + human_bytes(-b);
	if (b < 1024)
		return fmt("%.0f B", b);
	if (b < 1024.0 * 1024)
		return fmt("%.1f KiB", b / 1024);
	if (b < 1024.0 * 1024 * 1024)
		return fmt("%.1f MiB", b / (1024.0 * 1024));
	return fmt("%.2f GiB", b / (1024.0 * 1024 * 1024));
}

std::string human_time(double s)
{
	if (s < 1e-3)
		return fmt("%.0f us", s * 1e6);
	if (s < 1)
		return fmt("%.1f ms", s * 1e3);
	return fmt("%.2f s", s);
}

std::string ratio(double a, double b)
{
	if (!(a > 0) || !(b > 0))
		return "n/a";
	double r = a / b;
	return r >= 0.095 ? fmt("%.2f", r) : fmt("%.2g", r);
}

// ---- vector files ------------------------------------------------------------

// bench::read_vecs (vecs.cc), or die with its message.
Mat read_vecs(const std::string &path, bool ints)
{
	Mat m;
	std::string err;
	if (!bench::read_vecs(path, ints, m, err))
		die(err);
	return m;
}

// As hnswlib's Python binding normalises for its 'cosine' space.
void normalize(float *v, size_t dim)
{
	float norm = 0.0f;
	for (size_t i = 0; i < dim; i++)
		norm += v[i] * v[i];
	norm = 1.0f / (std::sqrt(norm) + 1e-30f);
	for (size_t i = 0; i < dim; i++)
		v[i] *= norm;
}

// splitmix64 uniform floats in [0,1): the open-time rows' random vectors.
std::vector<float> random_vectors(size_t n, size_t dim, uint64_t seed)
{
	std::vector<float> v(n * dim);
	uint64_t s = seed;
	for (auto &x : v) {
		uint64_t z = (s += 0x9e3779b97f4a7c15ull);
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
		z ^= z >> 31;
		x = (float)((double)(z >> 40) * 0x1.0p-24);
	}
	return v;
}

// ---- configuration -------------------------------------------------------------

struct Config {
	std::string data_dir = STRATA_SOURCE_ROOT "/../shared/data";
	std::string tmp_base = "/tmp";
	std::vector<std::string> only; // dataset names (empty: all)
	unsigned threads = 1;
	unsigned all_threads = 1;
	bool parallel_build = true;
	uint32_t M = 16, ef_construction = 200;
	uint64_t seed = 100;
	std::vector<unsigned> efs = {10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512};
	double min_time = 0.3;
	size_t repeat = 0; // 0: calibrate to min_time
	int runs = 3;
	int build_runs = 1;
	std::vector<size_t> open_sizes = {10000, 100000, 1000000};
	uint32_t open_M = 8, open_efc = 20;
	bool quick = false;
	enum { TEXT, MARKDOWN, JSON } format = TEXT;
	std::string md_file, json_file; // extra copies
	std::string cmdline;
	std::string load_start, load_end; // /proc/loadavg around the run
};

struct DatasetSpec {
	const char *name, *base, *query, *truth;
	strata_metric metric;
	const char *note;
};

const DatasetSpec kDatasets[] = {
    {"siftsmall", "siftsmall/siftsmall_base.fvecs", "siftsmall/siftsmall_query.fvecs",
     "siftsmall/siftsmall_groundtruth.ivecs", STRATA_METRIC_L2, ""},
    {"bigann10k", "bigann10k/bigann10k_base.fvecs", "bigann10k/bigann10k_query.fvecs",
     "bigann10k/bigann10k_groundtruth.ivecs", STRATA_METRIC_L2,
     "its 100 queries are base rows 0..99 (in-sample: each query's nearest neighbour is itself)"},
    {"mnist-784-test10k", "mnist-784-test10k/mnist_base.fvecs",
     "mnist-784-test10k/mnist_query.fvecs", "mnist-784-test10k/mnist_groundtruth.ivecs",
     STRATA_METRIC_L2, ""},
    {"glove-twitter-25d-12k", "glove-twitter-25d-12k/glove25_base.fvecs",
     "glove-twitter-25d-12k/glove25_query.fvecs", "glove-twitter-25d-12k/glove25_groundtruth.ivecs",
     STRATA_METRIC_COSINE, ""},
    {"word2vec-googlenews-300d-8k", "word2vec-googlenews-300d-8k/w2v300_base.fvecs",
     "word2vec-googlenews-300d-8k/w2v300_query.fvecs",
     "word2vec-googlenews-300d-8k/w2v300_groundtruth.ivecs", STRATA_METRIC_COSINE, ""},
};

const char *metric_name(strata_metric m)
{
	return m == STRATA_METRIC_L2 ? "l2" : m == STRATA_METRIC_IP ? "ip" : "cosine";
}

// ---- results -------------------------------------------------------------------

struct CurvePoint {
	unsigned ef;
	double recall;
	double qps;
};

struct EngineResult {
	double build_s = -1;     // at cfg.threads
	double build_all_s = -1; // at every core
	double save_s = -1;      // hnswlib saveIndex (strata_build writes as it goes)
	uint64_t disk_bytes = 0;
	double open_s = -1;      // median
	int opens = 0;
	int64_t heap_after_open = 0;
	std::vector<CurvePoint> curve;
};

struct DatasetResult {
	const DatasetSpec *spec;
	size_t n = 0, dim = 0, nq = 0;
	EngineResult s, h; // strata, hnswlib
};

struct OpenRow {
	size_t n = 0;
	EngineResult s, h;
	double s_first_query_s = -1, h_first_query_s = -1; // open/load + 1 query, warm cache
	double s_cold_s = -1, h_cold_s = -1;                 // the same after evicting the files
};

const double kTargets[] = {0.90, 0.95, 0.99};

// QPS where the curve first reaches `target`, linear in recall between the
// last point below it and the first at or above. -1: never reached.
// *lower_bound: the first (smallest-ef) point is already above the target,
// so the true figure may be higher than the one returned.
double qps_at(const std::vector<CurvePoint> &c, double target, bool *lower_bound)
{
	*lower_bound = false;
	for (size_t i = 0; i < c.size(); i++) {
		if (c[i].recall >= target) {
			if (i == 0) {
				*lower_bound = true;
				return c[0].qps;
			}
			const CurvePoint &a = c[i - 1], &b = c[i];
			double t = (target - a.recall) / (b.recall - a.recall);
			return a.qps + t * (b.qps - a.qps);
		}
	}
	return -1;
}

// ---- the timed loops ---------------------------------------------------------------

// One pass of single queries through strata; ids_out: nq * K.
double strata_pass(strata_db *db, const float *q, size_t nq, size_t dim, unsigned ef, size_t reps,
                   uint64_t *ids_out)
{
	strata_search_options so;
	strata_search_options_default(&so);
	so.ef = ef;
	so.threads = 1;
	float dists[K];
	double t0 = search_clock_s();
	for (size_t r = 0; r < reps; r++)
		for (size_t i = 0; i < nq; i++)
			check_strata(strata_search(db, q + i * dim, 1, K, &so, ids_out + i * K, dists),
			             "strata_search");
	return search_clock_s() - t0;
}

// Same through hnswlib. For cosine the query is copied and normalised per call,
// as hnswlib's own Python binding does (strata normalises inside its search).
double hnsw_pass(HnswIndex *h, const float *q, size_t nq, size_t dim, bool cosine, unsigned ef,
                 size_t reps, uint64_t *ids_out)
{
	hnsw_set_ef(h, ef);
	std::vector<float> buf(dim);
	double t0 = search_clock_s();
	for (size_t r = 0; r < reps; r++) {
		for (size_t i = 0; i < nq; i++) {
			const float *qi = q + i * dim;
			if (cosine) {
				memcpy(buf.data(), qi, dim * sizeof(float));
				normalize(buf.data(), dim);
				qi = buf.data();
			}
			hnsw_search(h, qi, K, ids_out + i * K);
		}
	}
	return search_clock_s() - t0;
}

double recall_at_k(const std::vector<uint64_t> &found, const Mat &truth, size_t nq)
{
	size_t hit = 0;
	for (size_t q = 0; q < nq; q++) {
		const int32_t *t = truth.i.data() + q * truth.dim;
		for (size_t j = 0; j < K; j++) {
			uint64_t id = found[q * K + j];
			for (size_t g = 0; g < K; g++)
				if ((uint64_t)(int64_t)t[g] == id) {
					hit++;
					break;
				}
		}
	}
	return (double)hit / (double)(nq * K);
}

size_t reps_for(const Config &cfg, double one_pass_s)
{
	if (cfg.repeat)
		return cfg.repeat;
	if (one_pass_s <= 0)
		return 1000;
	double r = std::ceil(cfg.min_time / one_pass_s);
	return r < 1 ? 1 : (size_t)r;
}

void measure_curves(const Config &cfg, strata_db *db, HnswIndex *h, const Mat &q, const Mat &truth,
                    bool cosine, DatasetResult &res)
{
	size_t nq = q.rows, dim = q.dim;
	std::vector<uint64_t> ids(nq * K);
	for (unsigned ef : cfg.efs) {
		// First pass: the answers (recall) and a calibration of the repeat count.
		double ts = strata_pass(db, q.f.data(), nq, dim, ef, 1, ids.data());
		double rs = recall_at_k(ids, truth, nq);
		double th = hnsw_pass(h, q.f.data(), nq, dim, cosine, ef, 1, ids.data());
		double rh = recall_at_k(ids, truth, nq);
		size_t reps_s = reps_for(cfg, ts), reps_h = reps_for(cfg, th);
		double best_s = 1e300, best_h = 1e300;
		for (int run = 0; run < cfg.runs; run++) {
			best_s = std::min(best_s,
			                  strata_pass(db, q.f.data(), nq, dim, ef, reps_s, ids.data()) / reps_s);
			best_h = std::min(
			    best_h, hnsw_pass(h, q.f.data(), nq, dim, cosine, ef, reps_h, ids.data()) / reps_h);
		}
		res.s.curve.push_back({ef, rs, (double)nq / best_s});
		res.h.curve.push_back({ef, rh, (double)nq / best_h});
		fprintf(stderr, "  ef %4u  strata recall %.4f QPS %9.0f | hnswlib recall %.4f QPS %9.0f\n", ef,
		        rs, (double)nq / best_s, rh, (double)nq / best_h);
	}
}

// ---- one dataset ---------------------------------------------------------------------

strata_options strata_opts(uint32_t dim, strata_metric metric, uint32_t M, uint32_t efc,
                           unsigned threads, uint64_t seed)
{
	strata_options o;
	strata_options_default(&o);
	o.dim = dim;
	o.metric = metric;
	o.M = M;
	o.ef_construction = efc;
	o.threads = threads;
	o.seed = seed;
	return o;
}

// A one-thread build runs wholly on the calling thread (both engines), so it is
// timed with the search clock (--clock cpu: its CPU time, which leaves out
// strata's fsync waits); builds on several threads are always timed by the wall.
double build_clock_s(unsigned threads)
{
	return threads <= 1 ? search_clock_s() : now_s();
}

double strata_build_timed(const std::string &dir, const strata_options &o, const float *v, size_t n)
{
	double t0 = build_clock_s(o.threads);
	check_strata(strata_build(dir.c_str(), &o, nullptr, v, n), "strata_build");
	return build_clock_s(o.threads) - t0;
}

HnswIndex *hnsw_build_timed(const float *v, size_t n, size_t dim, bool ip, uint32_t M, uint32_t efc,
                            unsigned threads, uint64_t seed, double *secs_out)
{
	double t0 = build_clock_s(threads);
	HnswIndex *h = hnsw_new(dim, ip, n, M, efc, seed);
	hnsw_add_all(h, v, n, dim, threads);
	*secs_out = build_clock_s(threads) - t0;
	return h;
}

// Median open time of `times` opens and closes; heap held by one open handle.
void strata_open_stats(const std::string &dir, int times, EngineResult &r, strata_db **keep_out)
{
	std::vector<double> t;
	for (int i = 0; i < times; i++) {
		strata_db *db = nullptr;
		double t0 = now_s();
		check_strata(strata_open(dir.c_str(), nullptr, STRATA_READONLY, &db), "strata_open");
		t.push_back(now_s() - t0);
		strata_close(db);
	}
	r.open_s = median(t);
	r.opens = times;
	int64_t h0 = heap_bytes();
	check_strata(strata_open(dir.c_str(), nullptr, STRATA_READONLY, keep_out), "strata_open");
	r.heap_after_open = heap_bytes() - h0;
}

HnswIndex *hnsw_load_stats(const std::string &file, size_t dim, bool ip, int times, EngineResult &r)
{
	std::vector<double> t;
	for (int i = 0; i < times; i++) {
		double t0 = now_s();
		HnswIndex *h = hnsw_load(file, dim, ip);
		t.push_back(now_s() - t0);
		hnsw_free(h);
	}
	r.open_s = median(t);
	r.opens = times;
	int64_t h0 = heap_bytes();
	HnswIndex *h = hnsw_load(file, dim, ip);
	r.heap_after_open = heap_bytes() - h0;
	return h;
}

DatasetResult run_dataset(const Config &cfg, const DatasetSpec &ds, const std::string &tmp)
{
	DatasetResult res;
	res.spec = &ds;
	Mat base = read_vecs(cfg.data_dir + "/" + ds.base, false);
	Mat q = read_vecs(cfg.data_dir + "/" + ds.query, false);
	Mat truth = read_vecs(cfg.data_dir + "/" + ds.truth, true);
	if (q.dim != base.dim || truth.rows < q.rows || truth.dim < K)
		die(std::string(ds.name) + ": query/truth shapes do not match the base");
	res.n = base.rows;
	res.dim = base.dim;
	res.nq = q.rows;
	const bool cosine = ds.metric == STRATA_METRIC_COSINE;
	const bool ip = ds.metric != STRATA_METRIC_L2;
	fprintf(stderr, "%s: %zu x %zu, %s, %zu queries\n", ds.name, res.n, res.dim,
	        metric_name(ds.metric), res.nq);

	// hnswlib has no cosine space: normalise the base ourselves and use
	// InnerProductSpace, as hnswlib's Python binding does. strata gets the raw
	// vectors and normalises on write.
	std::vector<float> hbase;
	const float *hv = base.f.data();
	if (cosine) {
		hbase = base.f;
		for (size_t r = 0; r < res.n; r++)
			normalize(hbase.data() + r * res.dim, res.dim);
		hv = hbase.data();
	}

	const std::string sdir = tmp + "/" + ds.name + ".strata";
	const std::string hfile = tmp + "/" + ds.name + ".hnsw";

	// Builds at cfg.threads: the indexes that are searched.
	strata_options o = strata_opts((uint32_t)res.dim, ds.metric, cfg.M, cfg.ef_construction,
	                               cfg.threads, cfg.seed);
	HnswIndex *h = nullptr;
	for (int run = 0; run < cfg.build_runs; run++) {
		// Best of build_runs, alternating; the last build of each is the one searched.
		if (run)
			rm_tree(sdir);
		double ts = strata_build_timed(sdir, o, base.f.data(), res.n);
		hnsw_free(h);
		double th;
		h = hnsw_build_timed(hv, res.n, res.dim, ip, cfg.M, cfg.ef_construction, cfg.threads,
		                     cfg.seed, &th);
		res.s.build_s = run ? std::min(res.s.build_s, ts) : ts;
		res.h.build_s = run ? std::min(res.h.build_s, th) : th;
	}
	double t0 = now_s();
	hnsw_save(h, hfile);
	res.h.save_s = now_s() - t0;
	hnsw_free(h);
	fprintf(stderr, "  build (%u thread%s): strata %.2f s, hnswlib %.2f s (+ save %.3f s)\n",
	        cfg.threads, cfg.threads == 1 ? "" : "s", res.s.build_s, res.h.build_s, res.h.save_s);

	// Builds with every core: time only.
	if (cfg.parallel_build && cfg.all_threads != cfg.threads) {
		const std::string sdir2 = tmp + "/" + ds.name + ".strata-mt";
		o.threads = cfg.all_threads;
		res.s.build_all_s = strata_build_timed(sdir2, o, base.f.data(), res.n);
		rm_tree(sdir2);
		HnswIndex *h2 = hnsw_build_timed(hv, res.n, res.dim, ip, cfg.M, cfg.ef_construction,
		                                 cfg.all_threads, cfg.seed, &res.h.build_all_s);
		hnsw_free(h2);
		fprintf(stderr, "  build (%u threads): strata %.2f s, hnswlib %.2f s\n", cfg.all_threads,
		        res.s.build_all_s, res.h.build_all_s);
	}
	hbase.clear();
	hbase.shrink_to_fit();

	res.s.disk_bytes = tree_bytes(sdir);
	res.h.disk_bytes = tree_bytes(hfile);

	strata_db *db = nullptr;
	strata_open_stats(sdir, 21, res.s, &db);
	h = hnsw_load_stats(hfile, res.dim, ip, 5, res.h);

	measure_curves(cfg, db, h, q, truth, cosine, res);

	hnsw_free(h);
	check_strata(strata_close(db), "strata_close");
	rm_tree(sdir);
	rm_tree(hfile);
	return res;
}

// ---- open time against size -----------------------------------------------------------

OpenRow run_open_size(const Config &cfg, size_t n, const std::string &tmp)
{
	OpenRow row;
	row.n = n;
	const size_t dim = 128;
	const std::string sdir = tmp + fmt("/open-%zu.strata", n);
	const std::string hfile = tmp + fmt("/open-%zu.hnsw", n);
	fprintf(stderr, "open time, %zu x %zu random vectors (M %u, ef_construction %u, %u threads)\n", n,
	        dim, cfg.open_M, cfg.open_efc, cfg.all_threads);
	{
		std::vector<float> v = random_vectors(n, dim, 42);
		strata_options o = strata_opts((uint32_t)dim, STRATA_METRIC_L2, cfg.open_M, cfg.open_efc,
		                               cfg.all_threads, cfg.seed);
		row.s.build_all_s = strata_build_timed(sdir, o, v.data(), n);
		HnswIndex *h = hnsw_build_timed(v.data(), n, dim, false, cfg.open_M, cfg.open_efc,
		                                cfg.all_threads, cfg.seed, &row.h.build_all_s);
		double t0 = now_s();
		hnsw_save(h, hfile);
		row.h.save_s = now_s() - t0;
		hnsw_free(h);
	}
	fprintf(stderr, "  build: strata %.2f s, hnswlib %.2f s (+ save %.2f s)\n", row.s.build_all_s,
	        row.h.build_all_s, row.h.save_s);
	row.s.disk_bytes = tree_bytes(sdir);
	row.h.disk_bytes = tree_bytes(hfile);
	std::vector<float> query = random_vectors(1, dim, 7);
	uint64_t ids[K];

	// Open + one query (ef 64) on a fresh handle: what a process that starts,
	// answers and exits pays.
	auto strata_first = [&]() {
		strata_search_options so;
		strata_search_options_default(&so);
		so.ef = 64;
		float d[K];
		strata_db *db = nullptr;
		double t0 = now_s();
		check_strata(strata_open(sdir.c_str(), nullptr, STRATA_READONLY, &db), "strata_open");
		check_strata(strata_search(db, query.data(), 1, K, &so, ids, d), "strata_search");
		double t = now_s() - t0;
		strata_close(db);
		return t;
	};
	auto hnsw_first = [&]() {
		double t0 = now_s();
		HnswIndex *h = hnsw_load(hfile, dim, false);
		hnsw_set_ef(h, 64);
		hnsw_search(h, query.data(), K, ids);
		double t = now_s() - t0;
		hnsw_free(h);
		return t;
	};

	// Warm: both indexes wholly in the page cache.
	page_cache(sdir, false);
	page_cache(hfile, false);
	strata_db *db = nullptr;
	strata_open_stats(sdir, 21, row.s, &db);
	check_strata(strata_close(db), "strata_close");
	row.s_first_query_s = strata_first();
	int loads = n >= 1000000 ? 3 : 5;
	HnswIndex *h = hnsw_load_stats(hfile, dim, false, loads, row.h);
	hnsw_free(h);
	row.h_first_query_s = hnsw_first();

	// Cold: the files' pages dropped from the cache first.
	page_cache(sdir, true);
	row.s_cold_s = strata_first();
	page_cache(hfile, true);
	row.h_cold_s = hnsw_first();

	fprintf(stderr, "  open: strata %.0f us (heap %lld B), hnswlib load %.1f ms (heap %lld B)\n",
	        row.s.open_s * 1e6, (long long)row.s.heap_after_open, row.h.open_s * 1e3,
	        (long long)row.h.heap_after_open);
	fprintf(stderr, "  open+1st query: warm strata %.2f ms, hnswlib %.1f ms; cold strata %.2f ms, "
	        "hnswlib %.1f ms\n", row.s_first_query_s * 1e3, row.h_first_query_s * 1e3,
	        row.s_cold_s * 1e3, row.h_cold_s * 1e3);
	rm_tree(sdir);
	rm_tree(hfile);
	return row;
}

// ---- the machine ---------------------------------------------------------------------------

std::string cpu_model()
{
	std::ifstream in("/proc/cpuinfo");
	std::string line;
	while (std::getline(in, line)) {
		if (line.rfind("model name", 0) == 0) {
			size_t c = line.find(':');
			if (c != std::string::npos)
				return line.substr(c + 2);
		}
	}
	return "unknown";
}

std::string cpu_flags()
{
	std::string f;
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx2"))
		f += " avx2";
	if (__builtin_cpu_supports("fma"))
		f += " fma";
	if (__builtin_cpu_supports("avx512f"))
		f += " avx512f";
	if (__builtin_cpu_supports("avx512bw"))
		f += " avx512bw";
	if (__builtin_cpu_supports("avx512dq"))
		f += " avx512dq";
	if (__builtin_cpu_supports("avx512vl"))
		f += " avx512vl";
	return f.empty() ? " none" : f;
}

// strata picks its kernels at run time (engine/distance.c): the best of
// avx512 (AVX-512F), avx2 (AVX2+FMA), scalar, capped by STRATA_SIMD. The
// public API does not report the choice; this repeats the rule.
std::string strata_isa()
{
	__builtin_cpu_init();
	int best = __builtin_cpu_supports("avx512f")                                        ? 2
	           : (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) ? 1
	                                                                                 : 0;
	const char *env = getenv("STRATA_SIMD");
	int cap = 2;
	if (env && strcmp(env, "scalar") == 0)
		cap = 0;
	else if (env && strcmp(env, "avx2") == 0)
		cap = 1;
	static const char *names[] = {"scalar", "avx2", "avx512"};
	std::string s = names[std::min(best, cap)];
	if (env)
		s += fmt(" (STRATA_SIMD=%s)", env);
	return s;
}

std::vector<std::string> machine_lines(const Config &cfg)
{
	struct utsname u;
	uname(&u);
	std::vector<std::string> l;
	l.push_back("command: " + cfg.cmdline);
	l.push_back(fmt("cpu: %s, %u logical cores; flags:%s", cpu_model().c_str(), cfg.all_threads,
	                cpu_flags().c_str()));
	l.push_back(fmt("os: %s %s %s; load average at start %s, at end %s", u.sysname, u.release,
	                u.machine, cfg.load_start.c_str(),
	                cfg.load_end.empty() ? "-" : cfg.load_end.c_str()));
	l.push_back(fmt("search timings: %s, best of %d runs of >= %.2f s each (or --repeat); "
	                "builds: best of %d, %s at 1 thread, wall clock on more",
	                g_cpu_clock ? "CPU time of the searching thread (--clock cpu)" : "wall clock",
	                cfg.runs, cfg.min_time, cfg.build_runs,
	                g_cpu_clock ? "CPU time" : "wall clock"));
	l.push_back(fmt("strata %s, distance kernels: %s", strata_version(), strata_isa().c_str()));
	l.push_back(fmt("hnswlib (header-only, compiled with " __VERSION__
	                " -O3 -march=native): %s distance code",
	                hnsw_simd_path()));
	return l;
}

// ---- rendering ---------------------------------------------------------------------------------

std::string qps_cell(double qps)
{
	return qps < 0 ? "n/a" : fmt("%.0f", qps);
}

std::vector<Table> dataset_tables(const Config &cfg, const DatasetResult &r)
{
	std::vector<Table> out;
	std::string th = fmt("%u thread%s", cfg.threads, cfg.threads == 1 ? "" : "s");

	Table a;
	a.title = fmt("%s: %zu vectors x %zu dims, %s, %zu queries, recall@10 (M %u, ef_construction %u)",
	              r.spec->name, r.n, r.dim, metric_name(r.spec->metric), r.nq, cfg.M,
	              cfg.ef_construction);
	a.head = {"measure", "strata", "hnswlib", "strata/hnswlib"};
	a.right = {false, true, true, true};
	double hb = r.h.build_s + r.h.save_s;
	a.rows.push_back({"build, " + th + " (hnswlib: + saveIndex)", fmt("%.2f s", r.s.build_s),
	                  fmt("%.2f s + %.2f s", r.h.build_s, r.h.save_s), ratio(r.s.build_s, hb)});
	if (r.s.build_all_s > 0)
		a.rows.push_back({fmt("build, %u threads (hnswlib: no save)", cfg.all_threads),
		                  fmt("%.2f s", r.s.build_all_s), fmt("%.2f s", r.h.build_all_s),
		                  ratio(r.s.build_all_s, r.h.build_all_s)});
	a.rows.push_back({"index on disk", human_bytes((double)r.s.disk_bytes),
	                  human_bytes((double)r.h.disk_bytes),
	                  ratio((double)r.s.disk_bytes, (double)r.h.disk_bytes)});
	a.rows.push_back({"open (read-only) / loadIndex, median", human_time(r.s.open_s),
	                  human_time(r.h.open_s), ratio(r.s.open_s, r.h.open_s)});
	a.rows.push_back({"heap held after open", human_bytes((double)r.s.heap_after_open),
	                  human_bytes((double)r.h.heap_after_open), ""});
	if (r.spec->note[0])
		a.notes.push_back(std::string("note: ") + r.spec->note + ".");
	a.notes.push_back(g_cpu_clock && cfg.threads <= 1
	                      ? "1-thread builds in CPU time: strata_build's includes writing its "
	                        "files (not the fsync waits); hnswlib's build is in memory, its "
	                        "saveIndex time (wall) is added."
	                      : "strata_build's time includes writing and fsyncing its files; "
	                        "hnswlib's build is in memory, its saveIndex time is added.");
	out.push_back(a);

	Table c;
	c.title = fmt("%s: recall@10 and QPS, 1 thread, one query per call", r.spec->name);
	c.head = {"ef", "strata recall", "strata QPS", "hnswlib recall", "hnswlib QPS",
	          "QPS strata/hnswlib"};
	c.right = {true, true, true, true, true, true};
	for (size_t i = 0; i < r.s.curve.size(); i++) {
		const CurvePoint &s = r.s.curve[i], &h = r.h.curve[i];
		c.rows.push_back({fmt("%u", s.ef), fmt("%.4f", s.recall), fmt("%.0f", s.qps),
		                  fmt("%.4f", h.recall), fmt("%.0f", h.qps), ratio(s.qps, h.qps)});
	}
	out.push_back(c);

	Table e;
	e.title = fmt("%s: QPS at equal recall@10 (linear in recall between ef points)", r.spec->name);
	e.head = {"recall", "strata QPS", "hnswlib QPS", "strata/hnswlib"};
	e.right = {true, true, true, true};
	bool any_lb = false;
	for (double t : kTargets) {
		bool lbs, lbh;
		double qs = qps_at(r.s.curve, t, &lbs), qh = qps_at(r.h.curve, t, &lbh);
		any_lb = any_lb || lbs || lbh;
		e.rows.push_back({fmt("%.2f", t), (lbs ? ">=" : "") + qps_cell(qs),
		                  (lbh ? ">=" : "") + qps_cell(qh),
		                  (lbs || lbh) ? "(" + ratio(qs, qh) + ")" : ratio(qs, qh)});
	}
	if (any_lb)
		e.notes.push_back(fmt(">=: the curve is above this recall already at ef %u, its smallest "
		                      "point; the ratio in parentheses is not at equal recall.",
		                      cfg.efs.front()));
	out.push_back(e);
	return out;
}

Table summary_table(const std::vector<DatasetResult> &all)
{
	Table t;
	t.title = "Summary: strata/hnswlib (above 1: strata faster for QPS; for build, above 1: strata "
	          "slower)";
	t.head = {"dataset", "QPS @0.90", "QPS @0.95", "QPS @0.99", "build time"};
	t.right = {false, true, true, true, true};
	for (const auto &r : all) {
		std::vector<std::string> row = {r.spec->name};
		for (double tg : kTargets) {
			bool a, b;
			double qs = qps_at(r.s.curve, tg, &a), qh = qps_at(r.h.curve, tg, &b);
			row.push_back((a || b) ? "(" + ratio(qs, qh) + ")" : ratio(qs, qh));
		}
		row.push_back(ratio(r.s.build_s, r.h.build_s + r.h.save_s));
		t.rows.push_back(row);
	}
	return t;
}

std::vector<Table> open_tables(const Config &cfg, const std::vector<OpenRow> &rows)
{
	Table t;
	t.title = fmt("Open time against size: random 128-d vectors, l2; a cheap graph for both "
	              "(M %u, ef_construction %u, %u threads) so that 1M builds in minutes",
	              cfg.open_M, cfg.open_efc, cfg.all_threads);
	t.head = {"vectors", "strata open", "hnswlib loadIndex", "open+1st query: strata",
	          "hnswlib", "cold open+1st query: strata", "hnswlib"};
	t.right = std::vector<bool>(t.head.size(), true);
	for (const auto &r : rows)
		t.rows.push_back({fmt("%zu", r.n), human_time(r.s.open_s), human_time(r.h.open_s),
		                  human_time(r.s_first_query_s), human_time(r.h_first_query_s),
		                  human_time(r.s_cold_s), human_time(r.h_cold_s)});
	t.notes.push_back("open: median of 21 strata_open(READONLY)+strata_close; loadIndex: median "
	                  "of 5 (3 at 1M); both with the files in the page cache (read once before).");
	t.notes.push_back("open+1st query: a fresh handle answers one query (k 10, ef 64). Cold: the "
	                  "index files' pages were dropped first (fsync + posix_fadvise DONTNEED).");

	Table u;
	u.title = "Same indexes: build, size and memory";
	u.head = {"vectors", "strata build", "hnswlib build+save", "strata on disk", "hnswlib file",
	          "strata heap after open", "hnswlib heap after load"};
	u.right = std::vector<bool>(u.head.size(), true);
	for (const auto &r : rows)
		u.rows.push_back({fmt("%zu", r.n), fmt("%.1f s", r.s.build_all_s),
		                  fmt("%.1f s", r.h.build_all_s + r.h.save_s),
		                  human_bytes((double)r.s.disk_bytes), human_bytes((double)r.h.disk_bytes),
		                  human_bytes((double)r.s.heap_after_open),
		                  human_bytes((double)r.h.heap_after_open)});
	u.notes.push_back("heap: mallinfo2() in-use bytes (arena + mmapped chunks) before and after "
	                  "the open, in this process; strata's mapped file pages are not heap (they "
	                  "are shared page cache, counted in RSS as they are touched).");
	return {t, u};
}

void render_all(FILE *out, bool markdown, const Config &cfg, const std::vector<DatasetResult> &all,
                const std::vector<OpenRow> &open_rows)
{
	auto render = [&](const Table &t) {
		if (markdown)
			render_markdown(out, t);
		else
			render_text(out, t);
	};
	std::vector<std::string> m = machine_lines(cfg);
	if (markdown) {
		fputs("```\n", out);
		for (const auto &l : m)
			fprintf(out, "%s\n", l.c_str());
		fputs("```\n\n", out);
	} else {
		for (const auto &l : m)
			fprintf(out, "%s\n", l.c_str());
		fputs("\n", out);
	}
	if (!all.empty())
		render(summary_table(all));
	for (const auto &r : all)
		for (const auto &t : dataset_tables(cfg, r))
			render(t);
	if (!open_rows.empty())
		for (const auto &t : open_tables(cfg, open_rows))
			render(t);
}

void render_engine_json(FILE *out, const EngineResult &e, bool curve)
{
	fprintf(out,
	        "{\"build_s\": %s, \"build_all_threads_s\": %s, \"save_s\": %s, \"disk_bytes\": %llu, "
	        "\"open_s_median\": %s, \"opens\": %d, \"heap_after_open_bytes\": %lld",
	        json_num(e.build_s).c_str(), json_num(e.build_all_s).c_str(), json_num(e.save_s).c_str(),
	        (unsigned long long)e.disk_bytes, json_num(e.open_s).c_str(), e.opens,
	        (long long)e.heap_after_open);
	if (curve) {
		fputs(", \"curve\": [", out);
		for (size_t i = 0; i < e.curve.size(); i++)
			fprintf(out, "%s{\"ef\": %u, \"recall\": %.4f, \"qps\": %.1f}", i ? ", " : "",
			        e.curve[i].ef, e.curve[i].recall, e.curve[i].qps);
		fputs("], \"qps_at_recall\": {", out);
		for (size_t i = 0; i < 3; i++) {
			bool lb;
			double q = qps_at(e.curve, kTargets[i], &lb);
			fprintf(out, "%s\"%.2f\": %s", i ? ", " : "", kTargets[i], json_num(q).c_str());
		}
		fputs("}", out);
	}
	fputs("}", out);
}

void render_json(FILE *out, const Config &cfg, const std::vector<DatasetResult> &all,
                 const std::vector<OpenRow> &open_rows)
{
	fputs("{\n  \"machine\": [", out);
	std::vector<std::string> m = machine_lines(cfg);
	for (size_t i = 0; i < m.size(); i++)
		fprintf(out, "%s%s", i ? ", " : "", json_str(m[i]).c_str());
	fprintf(out,
	        "],\n  \"params\": {\"M\": %u, \"ef_construction\": %u, \"threads\": %u, \"k\": %u, "
	        "\"seed\": %llu, \"runs\": %d, \"min_time_s\": %g, \"clock\": \"%s\"},\n"
	        "  \"datasets\": [",
	        cfg.M, cfg.ef_construction, cfg.threads, K, (unsigned long long)cfg.seed, cfg.runs,
	        cfg.min_time, g_cpu_clock ? "cpu" : "wall");
	for (size_t i = 0; i < all.size(); i++) {
		const auto &r = all[i];
		fprintf(out, "%s\n    {\"name\": %s, \"metric\": \"%s\", \"n\": %zu, \"dim\": %zu, "
		             "\"queries\": %zu, \"note\": %s,\n     \"strata\": ",
		        i ? "," : "", json_str(r.spec->name).c_str(), metric_name(r.spec->metric), r.n,
		        r.dim, r.nq, json_str(r.spec->note).c_str());
		render_engine_json(out, r.s, true);
		fputs(",\n     \"hnswlib\": ", out);
		render_engine_json(out, r.h, true);
		fputs("}", out);
	}
	fprintf(out, "\n  ],\n  \"open_time\": {\"M\": %u, \"ef_construction\": %u, \"threads\": %u, "
	             "\"dim\": 128, \"rows\": [",
	        cfg.open_M, cfg.open_efc, cfg.all_threads);
	for (size_t i = 0; i < open_rows.size(); i++) {
		const auto &r = open_rows[i];
		fprintf(out, "%s\n    {\"n\": %zu, \"strata_first_query_s\": %s, "
		             "\"hnswlib_first_query_s\": %s, \"strata_cold_first_query_s\": %s, "
		             "\"hnswlib_cold_first_query_s\": %s,\n     \"strata\": ",
		        i ? "," : "", r.n, json_num(r.s_first_query_s).c_str(),
		        json_num(r.h_first_query_s).c_str(), json_num(r.s_cold_s).c_str(),
		        json_num(r.h_cold_s).c_str());
		render_engine_json(out, r.s, false);
		fputs(",\n     \"hnswlib\": ", out);
		render_engine_json(out, r.h, false);
		fputs("}", out);
	}
	fputs("\n  ]}\n}\n", out);
}

// ---- arguments ----------------------------------------------------------------------------------

void usage(FILE *f)
{
	fputs("usage: strata-bench [options]\n"
	      "  --data DIR            datasets folder (default: <repo>/../shared/data)\n"
	      "  --datasets a,b        only these datasets (default: all five)\n"
	      "  --threads N           build threads of the compared builds (default 1)\n"
	      "  --no-parallel-build   skip the extra builds with every core\n"
	      "  --M N                 graph degree (default 16)\n"
	      "  --ef-construction N   (default 200)\n"
	      "  --ef LIST             ef values of the curves (default 10,16,...,512)\n"
	      "  --min-time S          seconds per timing, by repeating the query set (default 0.3)\n"
	      "  --repeat N            repeat the query set N times instead\n"
	      "  --runs N              timings per point, best kept (default 3)\n"
	      "  --build-runs N        builds per dataset at --threads, best kept (default 1)\n"
	      "  --clock wall|cpu      search timings by wall clock (default) or by the CPU\n"
	      "                        time of the searching thread (a busy shared machine)\n"
	      "  --open-sizes LIST     sizes of the open-time rows (default 10000,100000,1000000;\n"
	      "                        0 for none)\n"
	      "  --quick               fewer ef points, shorter timings, no 1M open row (smoke run)\n"
	      "  --markdown[=FILE]     markdown tables (on stdout, or also into FILE)\n"
	      "  --json[=FILE]         JSON (on stdout, or also into FILE)\n"
	      "  --tmp DIR             scratch directory (default /tmp)\n",
	      f);
}

std::vector<std::string> split(const std::string &s)
{
	std::vector<std::string> out;
	size_t p = 0;
	while (p <= s.size()) {
		size_t c = s.find(',', p);
		if (c == std::string::npos)
			c = s.size();
		if (c > p)
			out.push_back(s.substr(p, c - p));
		p = c + 1;
	}
	return out;
}

unsigned long parse_num(const std::string &s, const char *flag)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s.c_str(), &end, 10);
	if (s.empty() || *end || errno)
		die(fmt("%s: not a number: %s", flag, s.c_str()));
	return v;
}

Config parse_args(int argc, char **argv)
{
	Config c;
	unsigned hw = std::thread::hardware_concurrency();
	c.all_threads = hw ? hw : 1;
	for (int i = 0; i < argc; i++)
		c.cmdline += (i ? " " : "") + std::string(argv[i]);
	bool ef_set = false, sizes_set = false, time_set = false;
	for (int i = 1; i < argc; i++) {
		std::string a = argv[i];
		auto val = [&]() -> std::string {
			if (i + 1 >= argc)
				die(a + " needs a value");
			return argv[++i];
		};
		if (a == "--help" || a == "-h") {
			usage(stdout);
			exit(0);
		} else if (a == "--data") {
			c.data_dir = val();
		} else if (a == "--datasets") {
			c.only = split(val());
		} else if (a == "--threads") {
			c.threads = (unsigned)parse_num(val(), "--threads");
			if (c.threads == 0)
				c.threads = c.all_threads;
		} else if (a == "--no-parallel-build") {
			c.parallel_build = false;
		} else if (a == "--M") {
			c.M = (uint32_t)parse_num(val(), "--M");
		} else if (a == "--ef-construction") {
			c.ef_construction = (uint32_t)parse_num(val(), "--ef-construction");
		} else if (a == "--ef") {
			c.efs.clear();
			for (const auto &s : split(val()))
				c.efs.push_back((unsigned)parse_num(s, "--ef"));
			ef_set = true;
		} else if (a == "--min-time") {
			c.min_time = atof(val().c_str());
			time_set = true;
		} else if (a == "--repeat") {
			c.repeat = parse_num(val(), "--repeat");
		} else if (a == "--build-runs") {
			c.build_runs = (int)parse_num(val(), "--build-runs");
			if (c.build_runs < 1)
				c.build_runs = 1;
		} else if (a == "--runs") {
			c.runs = (int)parse_num(val(), "--runs");
		} else if (a == "--open-sizes") {
			c.open_sizes.clear();
			for (const auto &s : split(val())) {
				size_t n = parse_num(s, "--open-sizes");
				if (n)
					c.open_sizes.push_back(n);
			}
			sizes_set = true;
		} else if (a == "--quick") {
			c.quick = true;
		} else if (a == "--markdown") {
			c.format = Config::MARKDOWN;
		} else if (a.rfind("--markdown=", 0) == 0) {
			c.md_file = a.substr(11);
		} else if (a == "--json") {
			c.format = Config::JSON;
		} else if (a.rfind("--json=", 0) == 0) {
			c.json_file = a.substr(7);
		} else if (a == "--clock") {
			std::string v = val();
			if (v != "wall" && v != "cpu")
				die("--clock: wall or cpu");
			g_cpu_clock = v == "cpu";
		} else if (a == "--tmp") {
			c.tmp_base = val();
		} else {
			usage(stderr);
			die("unknown option " + a);
		}
	}
	if (c.quick) {
		if (!ef_set)
			c.efs = {16, 32, 64, 128, 256};
		if (!time_set)
			c.min_time = 0.1;
		if (!sizes_set)
			c.open_sizes = {10000, 100000};
	}
	if (c.efs.empty() || c.runs < 1 || c.M < 2)
		die("nothing to measure (empty --ef, --runs 0 or --M < 2)");
	std::sort(c.efs.begin(), c.efs.end());
	return c;
}

} // namespace

int main(int argc, char **argv)
{
	Config cfg = parse_args(argc, argv);
	cfg.load_start = loadavg();

	std::string tmpl = cfg.tmp_base + "/strata-bench-XXXXXX";
	std::vector<char> tb(tmpl.begin(), tmpl.end());
	tb.push_back('\0');
	if (!mkdtemp(tb.data()))
		die("mkdtemp " + tmpl + ": " + strerror(errno));
	const std::string tmp = tb.data();

	for (const auto &l : machine_lines(cfg))
		fprintf(stderr, "%s\n", l.c_str());

	std::vector<DatasetResult> all;
	for (const auto &ds : kDatasets) {
		if (!cfg.only.empty() && std::find(cfg.only.begin(), cfg.only.end(), ds.name) == cfg.only.end())
			continue;
		if (access((cfg.data_dir + "/" + ds.base).c_str(), R_OK) != 0) {
			fprintf(stderr, "%s: not found under %s, skipped\n", ds.name, cfg.data_dir.c_str());
			continue;
		}
		all.push_back(run_dataset(cfg, ds, tmp));
	}
	std::vector<OpenRow> open_rows;
	for (size_t n : cfg.open_sizes)
		open_rows.push_back(run_open_size(cfg, n, tmp));
	rm_tree(tmp);
	cfg.load_end = loadavg();

	if (cfg.format == Config::JSON)
		render_json(stdout, cfg, all, open_rows);
	else
		render_all(stdout, cfg.format == Config::MARKDOWN, cfg, all, open_rows);
	if (!cfg.md_file.empty()) {
		FILE *f = fopen(cfg.md_file.c_str(), "w");
		if (!f)
			die("cannot write " + cfg.md_file);
		render_all(f, true, cfg, all, open_rows);
		fclose(f);
	}
	if (!cfg.json_file.empty()) {
		FILE *f = fopen(cfg.json_file.c_str(), "w");
		if (!f)
			die("cannot write " + cfg.json_file);
		render_json(f, cfg, all, open_rows);
		fclose(f);
	}
	return 0;
}
