// filter_bench.cc - strata-filter-bench: filtered search at every selectivity,
// strata against post-filtering and against hnswlib's filtered search, on the
// same data and graph parameters, in one run (issue "Filtered search ...").
//
// For each selectivity (100%, 50%, 10%, 1%, 0.1%, 0.01%) a random allow-list
// is drawn (fixed seed) and the exact answer computed by brute force over the
// passing vectors. Then, single-threaded, one query per call:
//   strata        strata_search with the filter as a bitmap of ids built once
//                 (allow_bitmap: the counterpart of a functor the user builds
//                 once), default ef (the database's); also swept over ef;
//   post-filter   strata_search k = 1000, ef = 1000, then keep the first 10
//                 passing ids (the approach that collapses at low selectivity);
//   hnswlib       the filtered traversal of hnswlib: the packaged hnswlib
//                 (0.6.2) predates its filter functor (0.7), but its deletion
//                 marks drive exactly the traversal the functor does (a marked
//                 node is walked through and never enters the results), so the
//                 non-passing ids are marked deleted for the duration of the
//                 selectivity and unmarked after. Swept over ef; the table gives
//                 hnswlib's QPS interpolated at strata's recall.
// Recall is measured once per setting (it is deterministic). The QPS that are
// compared are timed together: strata at its default ef alternates, round
// after round, with hnswlib at the two ef values whose recall brackets
// strata's; for the equal-recall column, both engines' brackets of each recall
// level are timed the same way. Load from other jobs that comes and goes thus
// falls on both alike; each run keeps its best round (ann-benchmarks' rule).
//
// Usage: strata-filter-bench [--data DIR] [--markdown] [--min-seconds S] [--clock wall|cpu]
//                            [--selectivity LIST] [--curves]
//   --selectivity 0.5,0.1   only these shares (default: all six above)
//   --curves                also print both ef sweeps, point by point
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpedantic"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-variable"
#include <hnswlib/hnswlib.h>
#pragma GCC diagnostic pop

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <thread>

#include <time.h>
#include <vector>

#include <unistd.h>

#include "strata.h"

namespace {

double now()
{
	return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// The clock of the search timings: wall time (default), or with --clock cpu the
// calling thread's CPU time, which other processes on a busy machine do not
// inflate (every search here runs on the calling thread).
bool g_cpu_clock = false;

double search_clock()
{
	if (!g_cpu_clock)
		return now();
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

std::vector<float> read_fvecs(const std::string &path, size_t &n, size_t &dim)
{
	FILE *f = fopen(path.c_str(), "rb");
	if (!f) {
		fprintf(stderr, "strata-filter-bench: cannot open %s\n", path.c_str());
		exit(1);
	}
	fseek(f, 0, SEEK_END);
	long size = ftell(f);
	fseek(f, 0, SEEK_SET);
	int32_t d = 0;
	if (fread(&d, 4, 1, f) != 1 || d <= 0) {
		fprintf(stderr, "strata-filter-bench: %s: bad header\n", path.c_str());
		exit(1);
	}
	dim = (size_t)d;
	n = (size_t)size / (4 + 4 * dim);
	std::vector<float> v(n * dim);
	fseek(f, 0, SEEK_SET);
	for (size_t i = 0; i < n; i++) {
		int32_t dd;
		if (fread(&dd, 4, 1, f) != 1 || fread(&v[i * dim], 4, dim, f) != dim) {
			fprintf(stderr, "strata-filter-bench: %s: truncated\n", path.c_str());
			exit(1);
		}
	}
	fclose(f);
	return v;
}

struct Curve {
	std::vector<double> recall, qps;
};

using Run = std::function<void(size_t)>;

// Where a curve reaches `target` recall: between points lo and hi, at
// fraction t (linear in recall); lo = hi = 0 when its smallest ef is already
// there (that point is then compared, at a higher recall); !ok if never.
struct Bracket {
	bool ok;
	size_t lo, hi;
	double t;
};

Bracket bracket(const Curve &c, double target)
{
	for (size_t i = 0; i < c.recall.size(); i++) {
		if (c.recall[i] >= target) {
			if (i == 0)
				return {true, 0, 0, 0.0};
			return {true, i - 1, i, (target - c.recall[i - 1]) / (c.recall[i] - c.recall[i - 1])};
		}
	}
	return {false, 0, 0, 0.0};
}

// Run `one(q)` over all queries until min_s has passed; queries per second.
template <typename F> double qps_once(size_t nq, double min_s, const F &one)
{
	size_t done = 0;
	double t0 = search_clock(), el = 0;
	do {
		for (size_t q = 0; q < nq; q++)
			one(q);
		done += nq;
		el = search_clock() - t0;
	} while (el < min_s);
	return done / el;
}

// The best of 3 rounds of qps_once.
template <typename F> double time_qps(size_t nq, double min_s, F one)
{
	double best = 0;
	for (int round = 0; round < 3; round++)
		best = std::max(best, qps_once(nq, min_s, one));
	return best;
}

// Several runs timed in turn, round after round (`rounds` rounds of at least
// min_s each), so that load from other jobs falls on all alike; the best QPS
// of each.
std::vector<double> time_alternating(size_t nq, double min_s, int rounds,
                                     const std::vector<Run> &runs)
{
	std::vector<double> best(runs.size(), 0.0);
	for (int round = 0; round < rounds; round++)
		for (size_t i = 0; i < runs.size(); i++)
			best[i] = std::max(best[i], qps_once(nq, min_s, runs[i]));
	return best;
}

double recall_of(const std::vector<uint64_t> &found, const std::vector<uint64_t> &truth, size_t nq,
                 size_t k)
{
	double sum = 0;
	for (size_t q = 0; q < nq; q++) {
		size_t want = 0, hit = 0;
		for (size_t i = 0; i < k; i++) {
			uint64_t t = truth[q * k + i];
			if (t == UINT64_MAX)
				continue;
			want++;
			for (size_t j = 0; j < k; j++)
				if (found[q * k + j] == t) {
					hit++;
					break;
				}
		}
		sum += want ? (double)hit / want : 1.0;
	}
	return sum / nq;
}

} // namespace

int main(int argc, char **argv)
{
	std::string data = std::string(STRATA_SOURCE_ROOT) + "/../shared/data";
	bool markdown = false, curves = false;
	double min_s = 0.3;
	int rounds = 7;
	std::vector<double> sel = {1.0, 0.5, 0.1, 0.01, 0.001, 0.0001};
	for (int i = 1; i < argc; i++) {
		std::string a = argv[i];
		if (a == "--data" && i + 1 < argc)
			data = argv[++i];
		else if (a == "--markdown")
			markdown = true;
		else if (a == "--min-seconds" && i + 1 < argc)
			min_s = atof(argv[++i]);
		else if (a == "--curves")
			curves = true;
		else if (a == "--rounds" && i + 1 < argc && atoi(argv[i + 1]) > 0)
			rounds = atoi(argv[++i]);
		else if (a == "--selectivity" && i + 1 < argc) {
			sel.clear();
			for (const char *p = argv[++i]; *p;) {
				char *end;
				double v = strtod(p, &end);
				if (end == p || !(v > 0 && v <= 1)) {
					fprintf(stderr, "strata-filter-bench: --selectivity wants shares in (0, 1]\n");
					return 2;
				}
				sel.push_back(v);
				p = *end == ',' ? end + 1 : end;
			}
		} else if (a == "--clock" && i + 1 < argc && (std::string(argv[i + 1]) == "cpu" ||
		                                           std::string(argv[i + 1]) == "wall"))
			g_cpu_clock = std::string(argv[++i]) == "cpu";
		else {
			bool help = a == "--help" || a == "-h";
			fprintf(help ? stdout : stderr,
			        "usage: strata-filter-bench [--data DIR] [--markdown] [--min-seconds S] "
			        "[--clock wall|cpu] [--selectivity LIST] [--curves] [--rounds N]\n"
			        "  --data DIR          datasets folder holding siftsmall/ (default ../shared/data)\n"
			        "  --markdown          the table as Markdown\n"
			        "  --min-seconds S     a timing runs the queries for at least S s (default 0.3);\n"
			        "                      S/2 per round of the default-ef comparison, S/3 per\n"
			        "                      round of the equal-recall ones and of --curves\n"
			        "  --clock wall|cpu    time with the wall clock (default) or the searching thread's\n"
			        "                      CPU time, for a machine shared with other jobs\n"
			        "  --selectivity LIST  comma-separated shares in (0, 1] (default\n"
			        "                      1,0.5,0.1,0.01,0.001,0.0001)\n"
			        "  --curves            also print both ef sweeps point by point, with QPS\n"
			        "  --rounds N          rounds of the alternating timings behind the ratios\n"
			        "                      (default 7; best of them per run)\n");
			return help ? 0 : 2;
		}
	}
	size_t n, dim, nq, qdim;
	std::vector<float> base = read_fvecs(data + "/siftsmall/siftsmall_base.fvecs", n, dim);
	std::vector<float> queries = read_fvecs(data + "/siftsmall/siftsmall_query.fvecs", nq, qdim);
	const size_t k = 10, M = 16, efc = 200;
	unsigned threads = std::max(1u, std::thread::hardware_concurrency());

	char dir[] = "/tmp/strata-filter-bench-XXXXXX";
	if (!mkdtemp(dir))
		return 1;
	std::string db_dir = std::string(dir) + "/db";
	strata_options o;
	strata_options_default(&o);
	o.dim = (uint32_t)dim;
	o.M = M;
	o.ef_construction = efc;
	o.threads = threads;
	int rc = strata_build(db_dir.c_str(), &o, nullptr, base.data(), n);
	strata_db *db = nullptr;
	if (rc == 0)
		rc = strata_open(db_dir.c_str(), nullptr, STRATA_READONLY, &db);
	if (rc != 0) {
		fprintf(stderr, "strata: %s: %s\n", strata_strerror(rc), strata_last_error_detail());
		return 1;
	}
	hnswlib::L2Space space(dim);
	hnswlib::HierarchicalNSW<float> h(&space, n, M, efc, 100);
	{
		std::vector<std::thread> ts;
		std::atomic<size_t> next{0};
		for (unsigned t = 0; t < threads; t++)
			ts.emplace_back([&] {
				for (size_t i; (i = next++) < n;)
					h.addPoint(&base[i * dim], i);
			});
		for (auto &t : ts)
			t.join();
	}

	printf("strata-filter-bench: siftsmall (%zu x %zu, %zu queries), M %zu, ef_construction %zu, "
	       "k %zu, single-thread QPS (%s clock), one query per call; strata at its default ef (%u)\n",
	       n, dim, nq, M, efc, k, g_cpu_clock ? "thread CPU" : "wall", o.ef_search);
	printf("hnswlib %s filtered traversal via deletion marks (0.6.2 has no filter functor; same "
	       "walk), swept over ef\n\n",
	       "0.6.2");
	if (markdown)
		printf("| selectivity | passing | strata recall (default ef) | strata QPS | post-filter recall | "
		       "post-filter QPS | hnswlib QPS at strata's recall (its ef) | strata / hnswlib | "
		       "min over recall 0.90/0.95/0.99 of strata / hnswlib QPS (both ef-swept) |\n"
		       "|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
	else
		printf("%11s %8s | %13s %10s | %11s %10s | %20s %8s | %-10s | %s\n", "selectivity",
		       "passing", "strata recall", "QPS", "post recall", "QPS", "hnswlib QPS@r", "max r",
		       "ratio", "equal-recall ratio (worst)");

	static const size_t efs[] = {10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 1024, 2048};
	uint64_t rng = 2026;
	for (double s : sel) {
		// The passing ids: a seeded random subset.
		std::vector<uint64_t> ids(n);
		for (size_t i = 0; i < n; i++)
			ids[i] = i;
		size_t m = std::max<size_t>(1, (size_t)std::llround(s * n));
		for (size_t i = 0; i < m; i++) {
			rng = rng * 6364136223846793005ull + 1442695040888963407ull;
			std::swap(ids[i], ids[i + (rng >> 33) % (n - i)]);
		}
		std::vector<uint64_t> pass(ids.begin(), ids.begin() + m);
		std::sort(pass.begin(), pass.end());
		std::vector<char> passes(n, 0);
		for (uint64_t id : pass)
			passes[id] = 1;

		// Exact truth over the passing vectors (double precision, ties by lower id).
		std::vector<uint64_t> truth(nq * k, UINT64_MAX);
		for (size_t q = 0; q < nq; q++) {
			std::vector<std::pair<double, uint64_t>> d;
			d.reserve(m);
			for (uint64_t id : pass) {
				double acc = 0;
				for (size_t j = 0; j < dim; j++) {
					double t = (double)queries[q * dim + j] - base[id * dim + j];
					acc += t * t;
				}
				d.emplace_back(acc, id);
			}
			size_t top = std::min(k, d.size());
			std::partial_sort(d.begin(), d.begin() + top, d.end());
			for (size_t i = 0; i < top; i++)
				truth[q * k + i] = d[i].second;
		}

		// strata: the filter as a bitmap of ids, built once.
		strata_search_options so;
		strata_search_options_default(&so);
		std::vector<uint64_t> bitmap(n / 64 + 1, 0);
		for (uint64_t id : pass)
			bitmap[id / 64] |= 1ull << (id % 64);
		so.allow_bitmap = bitmap.data();
		so.allow_bitmap_bits = n;
		std::vector<uint64_t> found(nq * k), hf(nq * k);
		auto strata_at = [&](uint32_t ef) -> Run {
			return [&, ef](size_t q) {
				strata_search_options o2 = so;
				o2.ef = ef;
				strata_search(db, &queries[q * dim], 1, k, &o2, &found[q * k], nullptr);
			};
		};
		auto hnsw_at = [&](size_t ef) -> Run {
			return [&, ef](size_t q) {
				h.setEf(ef);
				auto r = h.searchKnn(&queries[q * dim], k);
				size_t i = r.size();
				for (size_t j = i; j < k; j++)
					hf[q * k + j] = UINT64_MAX;
				while (!r.empty()) {
					hf[q * k + --i] = r.top().second;
					r.pop();
				}
			};
		};
		// Recall is deterministic: one untimed pass gives it.
		auto recall_run = [&](const Run &run, std::vector<uint64_t> &out) {
			for (size_t q = 0; q < nq; q++)
				run(q);
			return recall_of(out, truth, nq, k);
		};
		double s_rec = recall_run(strata_at(0), found);

		// Post-filtering: fetch 1,000 unfiltered, keep the first k that pass.
		strata_search_options po;
		strata_search_options_default(&po);
		po.ef = 1000;
		std::vector<uint64_t> wide(1000), post(nq * k);
		double p_qps = time_qps(nq, min_s, [&](size_t q) {
			strata_search(db, &queries[q * dim], 1, 1000, &po, wide.data(), nullptr);
			size_t got = 0;
			for (size_t i = 0; i < 1000 && got < k; i++)
				if (wide[i] != STRATA_NO_ID && passes[wide[i]])
					post[q * k + got++] = wide[i];
			for (; got < k; got++)
				post[q * k + got] = STRATA_NO_ID;
		});
		double p_rec = recall_of(post, truth, nq, k);

		// hnswlib's filtered traversal: the non-passing ids marked deleted meanwhile.
		for (size_t i = 0; i < n; i++)
			if (!passes[i])
				h.markDelete(i);
		// Both swept over the same ef values (recall; QPS for --curves, each
		// point timed in rounds alternating between the two engines).
		Curve sc, hc;
		for (size_t ef : efs) {
			sc.recall.push_back(recall_run(strata_at((uint32_t)ef), found));
			hc.recall.push_back(recall_run(hnsw_at(ef), hf));
			if (curves) {
				auto q = time_alternating(nq, min_s / 3, 3, {strata_at((uint32_t)ef), hnsw_at(ef)});
				sc.qps.push_back(q[0]);
				hc.qps.push_back(q[1]);
			}
		}
		if (curves) {
			printf("%s  ef sweep at %.2f%%: ef, strata recall / QPS, hnswlib recall / QPS\n",
			       markdown ? "<!--" : "", s * 100);
			for (size_t i = 0; i < sc.recall.size(); i++)
				printf("    %5zu  %.4f %8.0f   %.4f %8.0f\n", efs[i], sc.recall[i], sc.qps[i],
				       hc.recall[i], hc.qps[i]);
			if (markdown)
				printf("-->\n");
		}

		// strata at its default ef against hnswlib at the same recall: the
		// two hnswlib ef values that bracket strata's recall, timed in rounds
		// alternating with strata's (so that the ratio does not depend on
		// when each was timed), interpolated linearly in recall.
		Bracket hb = bracket(hc, s_rec);
		double h_max = *std::max_element(hc.recall.begin(), hc.recall.end());
		double s_qps, h_qps = NAN;
		if (hb.ok) {
			auto q = time_alternating(nq, min_s / 2, rounds,
			                          {strata_at(0), hnsw_at(efs[hb.lo]), hnsw_at(efs[hb.hi])});
			s_qps = q[0];
			h_qps = q[1] + hb.t * (q[2] - q[1]);
		} else {
			s_qps = time_qps(nq, min_s, strata_at(0));
		}
		char ratio[32] = "n/a (never reaches)";
		if (hb.ok)
			snprintf(ratio, sizeof ratio, "%.2fx", s_qps / h_qps);
		// Equal recall, both swept: at each recall level both reach, the two
		// brackets timed together the same way; the worst ratio is shown.
		double worst = INFINITY, worst_at = NAN;
		for (double target : {0.90, 0.95, 0.99}) {
			Bracket sb = bracket(sc, target), tb = bracket(hc, target);
			if (!sb.ok || !tb.ok)
				continue;
			auto q = time_alternating(nq, min_s / 3, rounds,
			                          {strata_at((uint32_t)efs[sb.lo]), strata_at((uint32_t)efs[sb.hi]),
			                           hnsw_at(efs[tb.lo]), hnsw_at(efs[tb.hi])});
			double a = q[0] + sb.t * (q[1] - q[0]), hq = q[2] + tb.t * (q[3] - q[2]);
			if (a / hq < worst) {
				worst = a / hq;
				worst_at = target;
			}
		}
		for (size_t i = 0; i < n; i++)
			if (!passes[i])
				h.unmarkDelete(i);
		char eq[48] = "n/a";
		if (!std::isinf(worst))
			snprintf(eq, sizeof eq, "%.2fx (at %.2f)", worst, worst_at);
		std::string h_cell = "max recall " + std::to_string(h_max);
		if (hb.ok) {
			h_cell = std::to_string((long)h_qps) + " (ef " + std::to_string(efs[hb.lo]);
			if (hb.lo != hb.hi)
				h_cell += "-" + std::to_string(efs[hb.hi]);
			h_cell += ")";
		}
		if (markdown)
			printf("| %.2f%% | %zu | %.4f | %.0f | %.4f | %.0f | %s | %s | %s |\n", s * 100, m, s_rec,
			       s_qps, p_rec, p_qps, h_cell.c_str(), ratio, eq);
		else
			printf("%10.2f%% %8zu | %13.4f %10.0f | %11.4f %10.0f | %20s %8.4f | %-10s | %s\n",
			       s * 100, m, s_rec, s_qps, p_rec, p_qps, h_cell.c_str(), h_max, ratio, eq);
		fflush(stdout);
	}
	strata_close(db);
	std::string rm = std::string("rm -rf ") + dir;
	if (system(rm.c_str()) != 0)
		fprintf(stderr, "strata-filter-bench: could not remove %s\n", dir);
	return 0;
}
