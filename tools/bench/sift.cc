// sift.cc - the shared pieces of the write-path benchmarks (sift.h).
#include "sift.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>
#include <utility>

#include <sys/stat.h>
#include <time.h>

#include "report.h"

namespace bench {

const char *g_prog = "strata-bench";

[[noreturn]] void die(const std::string &msg)
{
	fprintf(stderr, "%s: %s\n", g_prog, msg.c_str());
	exit(1);
}

void check_strata(int rc, const char *what)
{
	if (rc != 0)
		die(fmt("%s: %s (%s)", what, strata_strerror(rc), strata_last_error_detail()));
}

double now_s()
{
	return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
	    .count();
}

double thread_cpu_s()
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

std::string loadavg()
{
	std::ifstream in("/proc/loadavg");
	std::string a, b, c;
	in >> a >> b >> c;
	return a + " " + b + " " + c;
}

uint64_t mix64(uint64_t z)
{
	z += 0x9e3779b97f4a7c15ull;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

struct strata_stats stats_of(strata_db *db)
{
	struct strata_stats st;
	check_strata(strata_stats(db, &st), "strata_stats");
	return st;
}

bool parse_synthetic(const std::string &s, Synthetic &out)
{
	if (s == "spread")
		out = Synthetic::Spread;
	else if (s == "copies")
		out = Synthetic::Copies;
	else
		return false;
	return true;
}

const char *synthetic_name(Synthetic how)
{
	return how == Synthetic::Spread ? "spread" : "copies";
}

std::string synthetic_note(const Data &data, size_t n)
{
	if (n <= data.real_rows)
		return "";
	return fmt("rows past %zu are synthetic (--synthetic %s: %s)", data.real_rows,
	           synthetic_name(data.synthetic),
	           data.synthetic == Synthetic::Spread
	               ? "a real row moved toward three of its ten nearest real rows"
	               : "a real row plus integer noise in [-8, 8]");
}

std::string synthetic_tag(const Data &data, size_t n)
{
	return n <= data.real_rows ? "" : fmt(" + synthetic rows (%s)", synthetic_name(data.synthetic));
}

// Squared l2 with 16 running sums, which the compiler vectorises (a single
// float sum it may not reorder).
static float l2sq_16(const float *a, const float *b, size_t dim)
{
	float acc[16] = {0};
	size_t j = 0;
	for (; j + 16 <= dim; j += 16)
		for (size_t l = 0; l < 16; l++) {
			float t = a[j + l] - b[j + l];
			acc[l] += t * t;
		}
	float d = 0;
	for (; j < dim; j++)
		d += (a[j] - b[j]) * (a[j] - b[j]);
	for (size_t l = 0; l < 16; l++)
		d += acc[l];
	return d;
}

constexpr size_t kSpreadNear = 10, kSpreadPick = 3;
constexpr double kSpreadMax = 0.75;

static double unit_of(uint64_t h)
{
	return (double)(h >> 11) / 9007199254740992.0; // [0, 1), 53 bits
}

// Each real row's kSpreadNear nearest real rows (exact; ties to the lower row).
static std::vector<uint32_t> real_neighbours(const Mat &base, size_t real)
{
	std::vector<uint32_t> near(real * kSpreadNear);
	std::atomic<size_t> next(0);
	auto work = [&]() {
		std::vector<std::pair<float, uint32_t>> best;
		for (size_t a; (a = next.fetch_add(1)) < real;) {
			best.assign(kSpreadNear, {INFINITY, 0});
			const float *va = base.f.data() + a * base.dim;
			for (size_t b = 0; b < real; b++) {
				if (b == a)
					continue;
				float d = l2sq_16(va, base.f.data() + b * base.dim, base.dim);
				if (d >= best.back().first)
					continue;
				size_t p = kSpreadNear - 1;
				while (p > 0 && best[p - 1].first > d) {
					best[p] = best[p - 1];
					p--;
				}
				best[p] = {d, (uint32_t)b};
			}
			for (size_t i = 0; i < kSpreadNear; i++)
				near[a * kSpreadNear + i] = best[i].second;
		}
	};
	std::vector<std::thread> pool;
	for (unsigned t = 0; t < std::max(1u, std::thread::hardware_concurrency()); t++)
		pool.emplace_back(work);
	for (auto &t : pool)
		t.join();
	return near;
}

static void synth_spread(Mat &base, size_t rows)
{
	const size_t real = base.rows, dim = base.dim;
	if (real <= kSpreadNear)
		die(fmt("--synthetic spread needs more than %zu real rows", kSpreadNear));
	std::vector<uint32_t> near = real_neighbours(base, real);
	base.f.resize(rows * dim);
	for (size_t r = real; r < rows; r++) {
		uint64_t h = mix64(r ^ 0x5eedull);
		const size_t a = h % real;
		uint32_t pick[kSpreadPick];
		double w[kSpreadPick], sum = 0;
		for (size_t i = 0; i < kSpreadPick; i++) {
			bool taken;
			do { // distinct neighbours
				h = mix64(h);
				pick[i] = near[a * kSpreadNear + h % kSpreadNear];
				taken = false;
				for (size_t j = 0; j < i; j++)
					taken |= pick[j] == pick[i];
			} while (taken);
			w[i] = unit_of(mix64(h ^ 0x77));
			sum += w[i];
		}
		const double share = kSpreadMax * unit_of(mix64(h ^ 0x99)) / (sum > 0 ? sum : 1);
		const float *va = base.f.data() + a * dim;
		float *dst = base.f.data() + r * dim;
		for (size_t j = 0; j < dim; j++) {
			double x = va[j];
			for (size_t i = 0; i < kSpreadPick; i++)
				x += share * w[i] * (base.f[pick[i] * dim + j] - va[j]);
			dst[j] = (float)std::min(255.0, std::max(0.0, std::round(x)));
		}
	}
	base.rows = rows;
}

static void synth_copies(Mat &base, size_t rows)
{
	const size_t real = base.rows, dim = base.dim;
	base.f.resize(rows * dim);
	for (size_t r = real; r < rows; r++) {
		const float *src = base.f.data() + (mix64(r) % real) * dim;
		float *dst = base.f.data() + r * dim;
		uint64_t h = mix64(r ^ 0x5eedull);
		for (size_t j = 0; j < dim; j++) {
			if (j % 12 == 0)
				h = mix64(h);
			int noise = (int)((h >> (5 * (j % 12))) % 17) - 8;
			dst[j] = std::min(255.0f, std::max(0.0f, src[j] + (float)noise));
		}
	}
	base.rows = rows;
}

Data load_sift(const std::string &data_dir, size_t rows_needed, Synthetic how)
{
	// Standard names of ANN_SIFT1M (TEXMEX) first, then the 10k set.
	struct Cand {
		const char *dir, *base, *query, *truth;
	};
	const Cand cands[] = {
	    {"sift", "sift_base.fvecs", "sift_query.fvecs", "sift_groundtruth.ivecs"},
	    {"sift1m", "sift_base.fvecs", "sift_query.fvecs", "sift_groundtruth.ivecs"},
	    {"siftsmall", "siftsmall_base.fvecs", "siftsmall_query.fvecs",
	     "siftsmall_groundtruth.ivecs"},
	};
	for (const Cand &c : cands) {
		std::string d = data_dir + "/" + c.dir + "/";
		struct stat st;
		if (stat((d + c.base).c_str(), &st) != 0)
			continue;
		Data data;
		data.name = c.dir;
		std::string err;
		if (!read_vecs(d + c.base, false, data.base, err, rows_needed) ||
		    !read_vecs(d + c.query, false, data.query, err) ||
		    !read_vecs(d + c.truth, true, data.truth, err))
			die(err);
		if (data.base.dim != 128 || data.query.dim != 128)
			die(d + ": not 128-d SIFT rows");
		data.real_rows = data.base.rows;
		data.synthetic = how;
		if (data.base.rows < rows_needed) {
			if (how == Synthetic::Spread)
				synth_spread(data.base, rows_needed);
			else
				synth_copies(data.base, rows_needed);
		}
		return data;
	}
	die("no SIFT set under " + data_dir + " (looked for sift/, sift1m/, siftsmall/); give --data DIR");
}

std::vector<uint64_t> brute_force_top10(const Mat &base, size_t n, const Mat &q, unsigned threads,
                                        const std::vector<uint64_t> &rows)
{
	std::vector<uint64_t> out(q.rows * K);
	std::atomic<size_t> next(0);
	size_t count = rows.empty() ? n : rows.size();
	auto work = [&]() {
		std::vector<std::pair<float, uint64_t>> best;
		for (;;) {
			size_t qi = next.fetch_add(1);
			if (qi >= q.rows)
				break;
			const float *qv = q.f.data() + qi * q.dim;
			best.assign(K, {INFINITY, STRATA_NO_ID});
			for (size_t i = 0; i < count; i++) {
				uint64_t r = rows.empty() ? i : rows[i];
				float d = l2sq_16(base.f.data() + r * base.dim, qv, base.dim);
				if (d < best[K - 1].first) {
					size_t p = K - 1;
					while (p > 0 && best[p - 1].first > d) {
						best[p] = best[p - 1];
						p--;
					}
					best[p] = {d, r};
				}
			}
			for (size_t i = 0; i < K; i++)
				out[qi * K + i] = best[i].second;
		}
	};
	std::vector<std::thread> pool;
	for (unsigned t = 0; t < std::max(1u, threads); t++)
		pool.emplace_back(work);
	for (auto &t : pool)
		t.join();
	return out;
}

double recall_at_10(const std::vector<uint64_t> &found, const std::vector<uint64_t> &truth,
                    size_t nq)
{
	size_t hit = 0;
	for (size_t qi = 0; qi < nq; qi++)
		for (size_t j = 0; j < K; j++)
			for (size_t g = 0; g < K; g++)
				if (truth[qi * K + g] == found[qi * K + j]) {
					hit++;
					break;
				}
	return (double)hit / (double)(nq * K);
}

strata_options base_opts(unsigned threads)
{
	strata_options o;
	strata_options_default(&o);
	o.dim = 128;
	o.metric = STRATA_METRIC_L2;
	o.M = kM;
	o.ef_construction = kEfc;
	o.threads = threads;
	o.seed = kSeed;
	return o;
}

strata_db *open_fresh(const std::string &dir, const strata_options &o)
{
	std::error_code ec;
	std::filesystem::remove_all(dir, ec);
	strata_db *db = nullptr;
	check_strata(strata_open(dir.c_str(), &o, STRATA_CREATE, &db), "strata_open (create)");
	return db;
}

double search_loop(strata_db *db, const Mat &q, uint32_t ef, double secs)
{
	strata_search_options so;
	strata_search_options_default(&so);
	so.ef = ef;
	uint64_t ids[K];
	float dists[K];
	size_t done = 0;
	double t0 = now_s(), el = 0;
	do {
		for (size_t i = 0; i < q.rows; i++)
			check_strata(strata_search(db, q.f.data() + i * q.dim, 1, K, &so, ids, dists),
			             "strata_search");
		done += q.rows;
		el = now_s() - t0;
	} while (el < secs);
	return (double)done / el;
}

std::vector<uint64_t> search_all(strata_db *db, const Mat &q, uint32_t ef)
{
	strata_search_options so;
	strata_search_options_default(&so);
	so.ef = ef;
	std::vector<uint64_t> ids(q.rows * K);
	check_strata(strata_search(db, q.f.data(), q.rows, K, &so, ids.data(), nullptr), "strata_search");
	return ids;
}

} // namespace bench
