// compact_bench.cc - strata-compact-bench: the compactor's figures (issue 4),
// each printed beside the target. It prints figures; it never passes
// or fails.
//
//   1. Merge with graph reuse against a build from nothing: two segments of
//      --merge-n / 2 SIFT rows each, merged by strata_compact (the larger
//      input's graph kept, the other's rows inserted), against strata_build of
//      the same --merge-n rows; both on one thread, CPU time of that thread
//      (and wall time); recall@10 of both at several ef (the set's queries and
//      900 held-out synthetic rows). Then half of the rows
//      deleted and compacted, against a fresh build of the survivors.
//   2. Query latency while a background merge runs, against idle: one search
//      thread (one query per call, ef 64) and one writer (batches, a fixed
//      rate) throughout; the merge is the background one (SCHED_IDLE) that two
//      segments of one size tier start.
//   3. An ingestion of --n rows in batches by one writer thread with default
//      options (background merges on), into an empty database or (--base N)
//      one that starts as N rows built into one segment (the state after a
//      full compaction or a bulk build: one segment large against the
//      memtable): every tenth, the segment count, tiers,
//      merges, write amplification and the search QPS measured meanwhile (the
//      writer keeps writing), each beside the QPS of a reference built from
//      all the rows before the ingestion and searched the second after (the
//      machine's speed drifts over minutes) and, with --same-rows-ref, beside
//      that of a reference holding the rows written by that sample (the
//      target's "the same data as one compacted segment": the all-rows
//      reference holds up to ten times the rows of an early sample, and a
//      graph's cost per query changes with its size); at the end, the QPS and recall of
//      the database as written against the same data after strata_compact
//      (one segment), at ef 64 and over an ef sweep (QPS at equal recall).
//   4. The floor of a database as written: the best a compactor can keep
//      while rows arrive is every row but the memtable's in one segment. Rows
//      [0, n - m) compacted into one segment and rows [n - m, n) in the
//      memtable (m = --memtable, else n / 8), against all n compacted:
//      distance evaluations per query (stats distance_evals: a count, not a
//      timing), recall and QPS over ef.
//
// strata through engine/strata.h only; SIFT rows through sift.h (real rows of
// ../shared/data, then synthetic SIFT-like ones, which the report says).
#include <algorithm>
#include <atomic>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include "bench.h"
#include "report.h"
#include "sift.h"
#include "strata.h"

#ifndef STRATA_SOURCE_ROOT
#define STRATA_SOURCE_ROOT "."
#endif

using namespace bench;

namespace {

constexpr size_t kHeldOut = 900; // part 1: synthetic query rows beyond the data set's own

struct Config {
	std::string data_dir = STRATA_SOURCE_ROOT "/../shared/data";
	Synthetic synthetic = Synthetic::Spread;
	std::string tmp_base = "/tmp";
	size_t merge_n = 100000;   // part 1: rows of the merged segment
	size_t latency_n = 100000; // part 2: rows of the two segments together
	size_t n = 1000000;        // part 3: rows ingested
	size_t base = 0;           // part 3: rows built into the database before the ingestion
	double seconds = 5;        // part 2: idle phase; parts 2, 3: QPS loops use 1 s
	double write_rate = 2000;  // part 2: writer vectors per second
	double ingest_rate = 0;    // part 3: writer vectors per second (0: as fast as it can)
	uint64_t memtable = 0;     // part 3: memtable_max_vectors (0: the default)
	uint32_t merge_factor = 0; // part 3: merge_factor (0: the default)
	uint32_t max_segments = 0; // part 3: max_segments (0: the default)
	int64_t into_largest = -1; // part 3: merge_into_largest_pct (-1: the default)
	bool same_rows_ref = false; // part 3: a reference per sample holding that sample's rows
	unsigned parts = 15;       // bit mask: 1, 2, 4, 8
	bool quick = false;
	std::string cmdline;
};

void usage(FILE *out)
{
	fputs("usage: strata-compact-bench [options]\n"
	      "  --quick          small sizes: a smoke run (one or two minutes), part 3 with\n"
	      "                   --same-rows-ref\n"
	      "  --merge-n N      part 1: rows of the merge (two segments of N/2; default 100000)\n"
	      "  --latency-n N    part 2: rows of the two segments (default 100000)\n"
	      "  --n N            part 3: rows ingested (default 1000000)\n"
	      "  --base N         part 3: the database starts as N rows built into one segment\n"
	      "                   (strata_build), the ingestion adds --n rows after them\n"
	      "                   (default 0: it starts empty)\n"
	      "  --seconds S      part 2: length of the idle phase (default 5)\n"
	      "  --write-rate R   part 2: vectors per second the writer upserts (default 2000)\n"
	      "  --ingest-rate R  part 3: vectors per second of the ingestion (default 0: as fast\n"
	      "                   as acknowledgements come; then the writer outruns the graph\n"
	      "                   indexer and every search also scans up to memtable_max_unindexed\n"
	      "                   fresh vectors exactly)\n"
	      "  --memtable N     part 3: memtable_max_vectors (default: the library's, 1,000,000,\n"
	      "                   though 256 MiB of memtable_max_bytes comes first at 128-d);\n"
	      "                   part 4: the memtable's rows (default --n / 8)\n"
	      "  --merge-factor F part 3: merge_factor (default: the library's)\n"
	      "  --max-segments S part 3: max_segments (default: the library's, no bound)\n"
	      "  --into-largest P part 3: merge_into_largest_pct (default: the library's)\n"
	      "  --same-rows-ref  part 3: also a reference per sample holding the rows written\n"
	      "                   by then (base + that tenth of --n), built into one segment\n"
	      "                   before the ingestion (nine builds: minutes at 1,000,000 rows)\n"
	      "  --parts LIST     which parts to run, e.g. 1,3 (default 1,2,3,4)\n"
	      "  --data DIR       the datasets folder (default <source>/../shared/data)\n"
	      "  --synthetic S    rows past the real ones: spread (default) or copies (sift.h)\n"
	      "  --tmp DIR        where the databases are made (default /tmp)\n"
	      "Figures and the issue's targets go to stdout, progress to stderr.\n",
	      out);
}

Config parse_args(int argc, char **argv)
{
	Config c;
	bool merge_set = false, lat_set = false, n_set = false, secs_set = false;
	for (int i = 0; i < argc; i++)
		c.cmdline += (i ? " " : "") + std::string(argv[i]);
	for (int i = 1; i < argc; i++) {
		Opt opt = split_opt(argv[i]);
		const std::string &a = opt.name;
		auto val = [&]() -> const char * {
			if (opt.has_value)
				return opt.value.c_str();
			if (i + 1 >= argc)
				die(a + " needs a value");
			return argv[++i];
		};
		auto num = [&](const char *s) -> size_t {
			char *end;
			unsigned long long v = strtoull(s, &end, 10);
			if (*s == 0 || *end != 0)
				die(a + ": not a number: " + s);
			return (size_t)v;
		};
		if (a == "--help" || a == "-h") {
			usage(stdout);
			exit(0);
		} else if (a == "--quick") {
			c.quick = true;
		} else if (a == "--merge-n") {
			c.merge_n = num(val());
			merge_set = true;
		} else if (a == "--latency-n") {
			c.latency_n = num(val());
			lat_set = true;
		} else if (a == "--n") {
			c.n = num(val());
			n_set = true;
		} else if (a == "--base") {
			c.base = num(val());
		} else if (a == "--seconds") {
			c.seconds = strtod(val(), nullptr);
			secs_set = true;
		} else if (a == "--write-rate") {
			c.write_rate = strtod(val(), nullptr);
		} else if (a == "--ingest-rate") {
			c.ingest_rate = strtod(val(), nullptr);
		} else if (a == "--memtable") {
			c.memtable = strtoull(val(), nullptr, 10);
		} else if (a == "--merge-factor") {
			c.merge_factor = (uint32_t)num(val());
		} else if (a == "--max-segments") {
			c.max_segments = (uint32_t)num(val());
		} else if (a == "--into-largest") {
			c.into_largest = (int64_t)num(val());
		} else if (a == "--same-rows-ref") {
			c.same_rows_ref = true;
		} else if (a == "--parts") {
			if (!parse_parts(val(), 4, c.parts))
				die(std::string("--parts: not a part list: ") + argv[i]);
		} else if (a == "--data") {
			c.data_dir = val();
		} else if (a == "--synthetic") {
			if (!parse_synthetic(val(), c.synthetic))
				die("--synthetic: spread or copies");
		} else if (a == "--tmp") {
			c.tmp_base = val();
		} else {
			usage(stderr);
			die("unknown option " + a);
		}
	}
	if (c.quick) {
		if (!merge_set)
			c.merge_n = 10000;
		if (!lat_set)
			c.latency_n = 10000;
		if (!n_set)
			c.n = 40000;
		if (!secs_set)
			c.seconds = 1;
		c.same_rows_ref = true; // its nine builds are small here, and the smoke test covers them
	}
	if (c.merge_n < 4 || c.latency_n < 4 || c.n < 1000 || !(c.seconds > 0) || !(c.write_rate > 0))
		die("sizes, --seconds and --write-rate must be positive (--n at least 1000)");
	return c;
}

void note(const std::string &s)
{
	fprintf(stderr, "[%s] %s\n", loadavg().c_str(), s.c_str());
}

// Upsert rows [from, to) of the data with ids = row numbers, in batches.
void upsert_rows(strata_db *db, const Data &d, size_t from, size_t to, size_t batch = 1000)
{
	std::vector<uint64_t> ids(batch);
	for (size_t at = from; at < to; at += batch) {
		size_t n = std::min(batch, to - at);
		for (size_t i = 0; i < n; i++)
			ids[i] = at + i;
		check_strata(strata_upsert(db, ids.data(), d.base.f.data() + at * 128, n), "strata_upsert");
	}
}

std::string ms(double s)
{
	return fmt("%.2f s", s);
}

// ---- part 1 ---------------------------------------------------------------------

/*
 * Part 1's queries: the dataset's, then kHeldOut rows made like the synthetic
 * ones but never inserted. A recall difference of 0.01 is 10 results of
 * 1,000 for the dataset's 100 queries alone: noise; of 10,000 it is not.
 */
Mat part1_queries(const Data &data)
{
	Mat q = data.query;
	const float *held = data.base.f.data() + data.base.rows * data.base.dim;
	q.f.insert(q.f.end(), held, held + kHeldOut * data.base.dim);
	q.rows += kHeldOut;
	return q;
}

void part1(const Config &cfg, const Data &data, const std::string &work)
{
	const Mat queries = part1_queries(data);
	const size_t n = cfg.merge_n, half = n / 2;
	note(fmt("part 1: two segments of %zu rows", half));
	strata_options o = base_opts(1);
	o.disable_background_merges = true;
	o.compaction_threads = 1;
	o.memtable_max_vectors = half + 16;
	o.sync_mode = STRATA_SYNC_NONE;
	std::string dir = work + "/p1";
	strata_db *db = open_fresh(dir, o);
	upsert_rows(db, data, 0, half);
	check_strata(strata_flush(db), "strata_flush");
	upsert_rows(db, data, half, n);
	check_strata(strata_flush(db), "strata_flush");
	struct strata_stats st = stats_of(db);
	if (st.segments != 2)
		die(fmt("part 1: %u segments before the merge, want 2", st.segments));
	note("part 1: strata_compact (one thread)");
	double w0 = now_s(), c0 = thread_cpu_s();
	check_strata(strata_compact(db), "strata_compact");
	double merge_cpu = thread_cpu_s() - c0, merge_wall = now_s() - w0;
	st = stats_of(db);

	note("part 1: strata_build of the union (one thread)");
	std::string bdir = work + "/p1-build";
	std::error_code ec;
	std::filesystem::remove_all(bdir, ec);
	w0 = now_s();
	c0 = thread_cpu_s();
	check_strata(strata_build(bdir.c_str(), &o, nullptr, data.base.f.data(), n), "strata_build");
	double build_cpu = thread_cpu_s() - c0, build_wall = now_s() - w0;
	strata_db *bdb = nullptr;
	check_strata(strata_open(bdir.c_str(), nullptr, STRATA_READONLY, &bdb), "strata_open");

	std::vector<uint64_t> truth = brute_force_top10(data.base, n, queries, 2);
	Table t;
	t.title = fmt("1. Merging two segments of %zu rows (%s%s; %zu queries: the set's %zu + %zu "
	              "held-out synthetic rows), one thread",
	              half, data.name.c_str(), synthetic_tag(data, n).c_str(),
	              queries.rows, data.query.rows, kHeldOut);
	t.head = {"", "merge with reuse", "build from nothing", "ratio", "target"};
	t.right = {false, true, true, true, false};
	t.rows.push_back({"CPU time", ms(merge_cpu), ms(build_cpu), fmt("%.2f", merge_cpu / build_cpu),
	                  "<= 0.60"});
	t.rows.push_back({"wall time", ms(merge_wall), ms(build_wall), fmt("%.2f", merge_wall / build_wall),
	                  ""});
	t.rows.push_back({"nodes reused / inserted",
	                  fmt("%" PRIu64 " / %" PRIu64, st.merge_reused_nodes, st.merge_inserted_nodes),
	                  fmt("0 / %zu", n), "", ""});
	for (uint32_t ef : {16u, 32u, 64u, 128u}) {
		double rm = recall_at_10(search_all(db, queries, ef), truth, queries.rows);
		double rb = recall_at_10(search_all(bdb, queries, ef), truth, queries.rows);
		t.rows.push_back({fmt("recall@10, ef %u", ef), fmt("%.4f", rm), fmt("%.4f", rb),
		                  fmt("%+.4f", rm - rb), ""});
	}
	strata_close(bdb);

	// Half deleted, then compacted: the rewrite's graph (deleted nodes dropped,
	// lists repaired) against a fresh build of the survivors.
	note("part 1: delete half, compact, build the survivors");
	std::vector<uint64_t> dead, kept;
	std::vector<float> kv;
	for (size_t r = 0; r < n; r++) {
		if (mix64(r ^ 0xdeadull) % 2) {
			dead.push_back(r);
		} else {
			kept.push_back(r);
			kv.insert(kv.end(), data.base.f.begin() + r * 128, data.base.f.begin() + (r + 1) * 128);
		}
	}
	check_strata(strata_delete(db, dead.data(), dead.size()), "strata_delete");
	w0 = now_s();
	c0 = thread_cpu_s();
	check_strata(strata_compact(db), "strata_compact");
	double rw_cpu = thread_cpu_s() - c0;
	std::string fdir = work + "/p1-fresh";
	std::filesystem::remove_all(fdir, ec);
	c0 = thread_cpu_s();
	check_strata(strata_build(fdir.c_str(), &o, kept.data(), kv.data(), kept.size()), "strata_build");
	double fb_cpu = thread_cpu_s() - c0;
	check_strata(strata_open(fdir.c_str(), nullptr, STRATA_READONLY, &bdb), "strata_open");
	std::vector<uint64_t> truth2 = brute_force_top10(data.base, n, queries, 2, kept);
	t.rows.push_back({fmt("after deleting %zu: CPU time", dead.size()), ms(rw_cpu), ms(fb_cpu),
	                  fmt("%.2f", rw_cpu / fb_cpu), ""});
	for (uint32_t ef : {16u, 32u, 64u, 128u}) {
		double rm = recall_at_10(search_all(db, queries, ef), truth2, queries.rows);
		double rb = recall_at_10(search_all(bdb, queries, ef), truth2, queries.rows);
		t.rows.push_back({fmt("  recall@10, ef %u", ef), fmt("%.4f", rm), fmt("%.4f", rb),
		                  fmt("%+.4f", rm - rb), ">= -0.01"});
	}
	t.notes.push_back("merge: strata_compact of the two segments (the larger one's graph compacted,");
	t.notes.push_back("the other's rows inserted, the file written); build: strata_build of the same rows.");
	t.notes.push_back("After the deletes, compact rewrites the one segment without them (lists repaired).");
	strata_close(bdb);
	check_strata(strata_close(db), "strata_close");
	render_text(stdout, t);
	fflush(stdout);
	std::filesystem::remove_all(dir, ec);
	std::filesystem::remove_all(bdir, ec);
	std::filesystem::remove_all(fdir, ec);
}

// ---- part 2 ---------------------------------------------------------------------

struct Lat {
	double at, us;
};

double pct(std::vector<double> v, double p)
{
	if (v.empty())
		return NAN;
	std::sort(v.begin(), v.end());
	size_t i = (size_t)std::min((double)v.size() - 1, std::floor(p * (double)v.size()));
	return v[i];
}

/*
 * One search thread and one writer on `db` until stop(): latencies of the
 * queries that finished while phase_on() held, and the writer's progress.
 */
struct Load {
	std::atomic<bool> stop{false};
	std::vector<Lat> lats;
	std::atomic<size_t> written{0};
	std::thread searcher, writer;

	void start(strata_db *db, const Data &data, const Config &cfg, size_t first_row, uint64_t first_id)
	{
		searcher = std::thread([this, db, &data]() {
			strata_search_options so;
			strata_search_options_default(&so);
			so.ef = 64;
			uint64_t ids[K];
			float d[K];
			for (size_t i = 0; !stop.load(); i++) {
				const float *q = data.query.f.data() + (i % data.query.rows) * 128;
				double t0 = now_s();
				check_strata(strata_search(db, q, 1, K, &so, ids, d), "strata_search");
				double t1 = now_s();
				lats.push_back({t1, (t1 - t0) * 1e6});
			}
		});
		writer = std::thread([this, db, &data, &cfg, first_row, first_id]() {
			std::vector<uint64_t> ids(100);
			size_t span = data.base.rows - first_row - 100;
			double t0 = now_s();
			size_t done = 0;
			while (!stop.load()) {
				double wait = t0 + (double)(done + 100) / cfg.write_rate - now_s();
				if (wait > 0)
					usleep((useconds_t)(wait * 1e6));
				for (size_t i = 0; i < 100; i++)
					ids[i] = first_id + done + i;
				size_t row = first_row + done % span;
				check_strata(strata_upsert(db, ids.data(), data.base.f.data() + row * 128, 100),
				             "strata_upsert");
				done += 100;
				written.store(done);
			}
		});
	}
	void finish()
	{
		stop.store(true);
		searcher.join();
		writer.join();
	}
	std::vector<double> between(double from, double to) const
	{
		std::vector<double> v;
		for (const Lat &l : lats)
			if (l.at >= from && l.at < to)
				v.push_back(l.us);
		return v;
	}
};

/*
 * The same database state in both phases: segments A and B of one size tier
 * (plus the writer's rows). Phase 1, merges off: idle. Phase 2, reopened with
 * merge factor 2: the background merge of A and B starts at once and the
 * phase lasts while it runs, at most --seconds, the idle phase's length (the
 * memtable grows the same way in both).
 */
void part2(const Config &cfg, const Data &data, const std::string &work)
{
	const size_t n = cfg.latency_n, half = n / 2;
	const size_t writer_first_row = n; /* the writer's rows come after the segments' */
	std::string dir = work + "/p2";
	strata_options o = base_opts(0);
	o.disable_background_merges = true;
	o.sync_mode = STRATA_SYNC_NONE;
	o.memtable_max_vectors = half + 16;
	note(fmt("part 2: segments A and B of %zu rows", half));
	strata_db *db = open_fresh(dir, o);
	upsert_rows(db, data, 0, half);
	check_strata(strata_flush(db), "strata_flush");
	upsert_rows(db, data, half, 2 * half);
	check_strata(strata_flush(db), "strata_flush");
	check_strata(strata_close(db), "strata_close");

	o.sync_mode = STRATA_SYNC_ALWAYS;
	o.memtable_max_vectors = 4 * n;
	check_strata(strata_open(dir.c_str(), &o, 0, &db), "strata_open");
	note(fmt("part 2: idle phase, %.0f s", cfg.seconds));
	Load idle;
	idle.start(db, data, cfg, writer_first_row, 10000000);
	usleep(500000); /* let both settle */
	double idle_from = now_s();
	usleep((useconds_t)(cfg.seconds * 1e6));
	double idle_to = now_s();
	idle.finish();
	check_strata(strata_flush(db), "strata_flush"); /* the writer's rows: a small segment apart */
	check_strata(strata_close(db), "strata_close");

	o.disable_background_merges = false;
	o.merge_factor = 2;
	check_strata(strata_open(dir.c_str(), &o, 0, &db), "strata_open");
	note("part 2: the background merge of A and B");
	Load busy;
	busy.start(db, data, cfg, writer_first_row, 20000000);
	double merge_from = 0, merge_to = 0, deadline = now_s() + cfg.seconds + 10;
	for (;;) {
		struct strata_stats st = stats_of(db);
		double t = now_s();
		if (st.compaction_running && !merge_from)
			merge_from = t;
		if (merge_from && (!st.compaction_running || t - merge_from >= cfg.seconds)) {
			merge_to = t;
			break;
		}
		if (!merge_from && (st.merges > 0 || t > deadline))
			die("part 2: the merge was never seen running");
		usleep(2000);
	}
	busy.finish();
	struct strata_stats st = stats_of(db);
	std::vector<double> a = idle.between(idle_from, idle_to), m = busy.between(merge_from, merge_to);
	Table t;
	t.title = fmt("2. Query latency during a background merge of two segments of %zu rows vs idle", half);
	t.head = {"", "idle", "merge running", "ratio", "target"};
	t.right = {false, true, true, true, false};
	t.rows.push_back({"queries", fmt("%zu", a.size()), fmt("%zu", m.size()), "", ""});
	t.rows.push_back({"p50 latency", fmt("%.1f us", pct(a, 0.5)), fmt("%.1f us", pct(m, 0.5)),
	                  fmt("%.2f", pct(m, 0.5) / pct(a, 0.5)), ""});
	t.rows.push_back({"p99 latency", fmt("%.1f us", pct(a, 0.99)), fmt("%.1f us", pct(m, 0.99)),
	                  fmt("%.2f", pct(m, 0.99) / pct(a, 0.99)), "<= 2.00"});
	t.notes.push_back(fmt("the same segments in both phases; one search thread (ef 64, k 10, one query "
	                      "per call) and one writer (%.0f vectors/s, batches of 100, SYNC_ALWAYS);",
	                      cfg.write_rate));
	t.notes.push_back(fmt("merge phase: %.1f s measured (%s), merge under SCHED_IDLE on %u cores; "
	                      "%" PRIu64 " merge(s) committed, %u segment(s) at the end",
	                      merge_to - merge_from,
	                      st.merges ? "the whole merge" : "the merge had not finished: cut",
	                      std::thread::hardware_concurrency(), st.merges, st.segments));
	check_strata(strata_close(db), "strata_close");
	render_text(stdout, t);
	fflush(stdout);
	std::error_code ec;
	std::filesystem::remove_all(dir, ec);
}

// ---- part 3 ---------------------------------------------------------------------

struct Point {
	uint32_t ef;
	double recall, qps;
};

std::vector<Point> ef_sweep(strata_db *db, const Mat &q, const std::vector<uint64_t> &truth)
{
	std::vector<Point> out;
	for (uint32_t ef : {10u, 16u, 24u, 32u, 48u, 64u, 96u, 128u, 192u, 256u})
		out.push_back({ef, recall_at_10(search_all(db, q, ef), truth, q.rows),
		               search_loop(db, q, ef, 1.0)});
	return out;
}

// QPS where the curve (recall rising with ef) reaches `recall`; NaN outside it.
double qps_at_recall(const std::vector<Point> &curve, double recall)
{
	for (size_t i = 0; i < curve.size(); i++) {
		if (curve[i].recall < recall)
			continue;
		if (curve[i].recall == recall || i == 0)
			return curve[i].recall == recall ? curve[i].qps : NAN;
		const Point &a = curve[i - 1], &b = curve[i];
		double f = (recall - a.recall) / (b.recall - a.recall);
		return a.qps + f * (b.qps - a.qps);
	}
	return NAN;
}

/*
 * QPS at `ef` as the median of `runs` loops of 1 s, with the slowest and
 * fastest: on this shared machine one 2 s loop on the same segment measured
 * anywhere from 10k to 18k QPS within a minute.
 */
struct Spread {
	double median, lo, hi;
};

Spread qps_spread(strata_db *db, const Mat &q, uint32_t ef, int runs)
{
	std::vector<double> v;
	for (int i = 0; i < runs; i++)
		v.push_back(search_loop(db, q, ef, 1.0));
	std::sort(v.begin(), v.end());
	return {v[v.size() / 2], v.front(), v.back()};
}

std::string tiers_of(const struct strata_stats &st)
{
	std::string s;
	for (int i = 0; i < 8; i++)
		if (st.tier_segments[i])
			s += fmt("%sT%d:%u", s.empty() ? "" : " ", i, st.tier_segments[i]);
	return s.empty() ? "-" : s;
}

void part3(const Config &cfg, const Data &data, const std::string &work)
{
	const size_t n = cfg.n, base = cfg.base, total = base + n;
	std::string dir = work + "/p3";
	strata_options o = base_opts(0); // defaults: memtable limits, merge factor, SYNC_ALWAYS
	o.memtable_max_vectors = cfg.memtable;
	if (cfg.merge_factor)
		o.merge_factor = cfg.merge_factor;
	o.max_segments = cfg.max_segments;
	if (cfg.into_largest >= 0)
		o.merge_into_largest_pct = (uint32_t)cfg.into_largest;
	/*
	 * A reference beside the database as written: all base + n rows built into
	 * one segment before the ingestion, searched right after each sample. The
	 * same query loop minutes apart measured 10k-18k QPS on this shared
	 * machine; one second apart, the two figures see the same machine.
	 */
	note(fmt("part 3: the reference, all %zu rows built into one segment", total));
	std::string ref_dir = work + "/p3-ref";
	strata_options ro = base_opts(0);
	check_strata(strata_build(ref_dir.c_str(), &ro, nullptr, data.base.f.data(), total),
	             "strata_build");
	strata_db *ref = nullptr;
	check_strata(strata_open(ref_dir.c_str(), nullptr, STRATA_READONLY, &ref), "strata_open");
	search_loop(ref, data.query, 64, 1.0); // warm: else its first sample pays the page faults
	/* The same-rows references: sample `step` (1..9) holds base + n * step / 10 rows. */
	auto same_dir = [&](int step) { return work + fmt("/p3-ref-%d", step); };
	if (cfg.same_rows_ref)
		for (int step = 1; step < 10; step++) {
			size_t rows = base + n * (size_t)step / 10;
			note(fmt("part 3: the same-rows reference of sample %d, %zu rows", step, rows));
			check_strata(strata_build(same_dir(step).c_str(), &ro, nullptr, data.base.f.data(),
			                          rows),
			             "strata_build");
		}
	strata_db *db = nullptr;
	if (base) {
		note(fmt("part 3: the database's first %zu rows built into one segment", base));
		check_strata(strata_build(dir.c_str(), &ro, nullptr, data.base.f.data(), base),
		             "strata_build");
		check_strata(strata_open(dir.c_str(), &o, 0, &db), "strata_open");
		search_loop(db, data.query, 64, 1.0); // warm, as the reference
	} else {
		db = open_fresh(dir, o);
	}
	std::atomic<size_t> written(0);
	std::atomic<bool> stop_writer(false);
	note(fmt("part 3: ingesting %zu rows", n));
	double t0 = now_s();
	std::thread writer([&]() {
		std::vector<uint64_t> ids(1000);
		double w0 = now_s();
		for (size_t at = 0; at < n && !stop_writer.load(); at += 1000) {
			size_t m = std::min<size_t>(1000, n - at);
			if (cfg.ingest_rate > 0) {
				double wait = w0 + (double)at / cfg.ingest_rate - now_s();
				if (wait > 0)
					usleep((useconds_t)(wait * 1e6));
			}
			for (size_t i = 0; i < m; i++)
				ids[i] = base + at + i;
			check_strata(strata_upsert(db, ids.data(), data.base.f.data() + (base + at) * 128, m),
			             "strata_upsert");
			written.store(at + m);
		}
	});
	std::string options = cfg.memtable ? fmt("memtable_max_vectors %" PRIu64, cfg.memtable)
	                                   : std::string("default memtable");
	if (cfg.merge_factor)
		options += fmt(", merge_factor %u", cfg.merge_factor);
	if (cfg.max_segments)
		options += fmt(", max_segments %u", cfg.max_segments);
	if (cfg.into_largest >= 0)
		options += fmt(", merge_into_largest_pct %u", o.merge_into_largest_pct);
	Table t;
	t.title = fmt("3. Ingesting %zu rows (%s%s) in batches of 1,000%s, %s, %s", n,
	              data.name.c_str(), synthetic_tag(data, total).c_str(),
	              base ? fmt(" into a database of %zu rows built into one segment", base).c_str()
	                   : "",
	              options.c_str(),
	              cfg.ingest_rate > 0 ? fmt("%.0f vectors/s", cfg.ingest_rate).c_str()
	                                  : "as fast as acknowledged");
	t.head = {"rows", "time", "segments", "tiers", "memtable", "unindexed", "merges",
	          "write ampl.", "QPS (ef 64)", "reference", "ratio",
	          "evals: written (first source) / ref."};
	t.right = {true, true, true, false, true, true, true, true, true, true, true, true};
	if (cfg.same_rows_ref) {
		t.head.insert(t.head.end(), {"same rows", "ratio", "evals"});
		t.right.insert(t.right.end(), {true, true, true});
	}
	/*
	 * Distance computations per query since the last call: what a search cost,
	 * apart from the machine; and of them, the first source's (the largest
	 * segment or memtable, searched first).
	 */
	double first_per_query = 0;
	auto evals_per_query = [&first_per_query](strata_db *h, struct strata_stats &last) {
		struct strata_stats now = stats_of(h);
		double queries = (double)std::max<uint64_t>(1, now.searches - last.searches);
		double e = (double)(now.distance_evals - last.distance_evals) / queries;
		first_per_query = (double)(now.distance_evals_first - last.distance_evals_first) / queries;
		last = now;
		return e;
	};
	struct strata_stats ev_db = stats_of(db), ev_ref = stats_of(ref);
	std::vector<double> qps_writing, qps_ref, ratios, qps_same, ratios_same;
	for (int step = 1; step <= 10; step++) {
		size_t mark = n * (size_t)step / 10;
		while (written.load() < mark)
			usleep(20000);
		struct strata_stats st = stats_of(db);
		evals_per_query(db, ev_db);
		evals_per_query(ref, ev_ref);
		double q = step < 10 ? search_loop(db, data.query, 64, 1.0) : NAN;
		double e_db = evals_per_query(db, ev_db), e_first = first_per_query;
		double qr = step < 10 ? search_loop(ref, data.query, 64, 1.0) : NAN;
		double e_ref = evals_per_query(ref, ev_ref);
		double qs = NAN, e_same = NAN;
		if (cfg.same_rows_ref && step < 10) {
			strata_db *same = nullptr;
			check_strata(strata_open(same_dir(step).c_str(), nullptr, STRATA_READONLY, &same),
			             "strata_open");
			search_loop(same, data.query, 64, 0.5); // warm, as the others were
			struct strata_stats ev_same = stats_of(same);
			qs = search_loop(same, data.query, 64, 1.0);
			e_same = evals_per_query(same, ev_same);
			check_strata(strata_close(same), "strata_close");
			qps_same.push_back(qs);
			ratios_same.push_back(q / qs);
		}
		if (step < 10) {
			qps_writing.push_back(q);
			qps_ref.push_back(qr);
			ratios.push_back(q / qr);
		}
		t.rows.push_back({fmt("%zu", base + mark), fmt("%.0f s", now_s() - t0), fmt("%u", st.segments),
		                  tiers_of(st), fmt("%" PRIu64, st.memtable_vectors),
		                  fmt("%" PRIu64, st.memtable_unindexed),
		                  fmt("%" PRIu64, st.merges), fmt("%.2f", st.write_amplification),
		                  step < 10 ? fmt("%.0f", q) : "(done)",
		                  step < 10 ? fmt("%.0f", qr) : "",
		                  step < 10 ? fmt("%.2f", ratios.back()) : "",
		                  step < 10 ? fmt("%.0f (%.0f) / %.0f", e_db, e_first, e_ref) : ""});
		if (cfg.same_rows_ref)
			t.rows.back().insert(t.rows.back().end(),
			                     {step < 10 ? fmt("%.0f", qs) : "",
			                      step < 10 ? fmt("%.2f", q / qs) : "",
			                      step < 10 ? fmt("%.0f", e_same) : ""});
		note(fmt("part 3: %zu rows", base + mark));
	}
	writer.join();
	double ingest_s = now_s() - t0;
	/*
	 * Idle: the indexer has caught up and no flush or merge runs (else the
	 * QPS below would include their CPU and the exact scan of fresh rows).
	 */
	double idle0 = now_s();
	struct strata_stats st_end = stats_of(db);
	for (; st_end.memtable_unindexed || st_end.flush_pending || st_end.compaction_running;
	     st_end = stats_of(db))
		usleep(50000);
	double idle_wait_s = now_s() - idle0;
	Spread qps_as_written = qps_spread(db, data.query, 64, 5);
	note("part 3: truth over all rows");
	std::vector<uint64_t> truth = brute_force_top10(data.base, total, data.query, 2);
	double rec_written = recall_at_10(search_all(db, data.query, 64), truth, data.query.rows);
	note("part 3: ef sweep as written");
	std::vector<Point> sweep_written = ef_sweep(db, data.query, truth);
	note("part 3: strata_compact");
	double c0 = now_s();
	check_strata(strata_compact(db), "strata_compact");
	double compact_s = now_s() - c0;
	struct strata_stats st_c = stats_of(db);
	Spread qps_compacted = qps_spread(db, data.query, 64, 5);
	double rec_compacted = recall_at_10(search_all(db, data.query, 64), truth, data.query.rows);
	note("part 3: ef sweep compacted");
	std::vector<Point> sweep_compacted = ef_sweep(db, data.query, truth);
	double qps_mean = 0, ref_mean = 0;
	for (size_t i = 0; i < qps_writing.size(); i++) {
		qps_mean += qps_writing[i] / (double)qps_writing.size();
		ref_mean += qps_ref[i] / (double)qps_ref.size();
	}
	double rec_ref = recall_at_10(search_all(ref, data.query, 64), truth, data.query.rows);
	check_strata(strata_close(ref), "strata_close");
	t.notes.push_back(fmt("ingestion %.0f s (%.0f vectors/s acknowledged); write amplification "
	                      "%.2f = (WAL %.0f MB + flushes %.0f MB + merges %.0f MB) / %.0f MB of vectors",
	                      ingest_s, (double)n / ingest_s, st_end.write_amplification,
	                      (double)st_end.wal_bytes / 1e6, (double)st_end.flush_bytes / 1e6,
	                      (double)st_end.compaction_bytes / 1e6, (double)st_end.ingest_bytes / 1e6));
	t.notes.push_back(fmt("QPS while written (mean of the 9 samples above): %.0f; as written, idle "
	                      "(%u segments + %" PRIu64 " memtable rows, %.1f s after the last write): "
	                      "%.0f (median of five 1 s runs, %.0f-%.0f), recall@10 %.4f",
	                      qps_mean, st_end.segments, st_end.memtable_vectors, idle_wait_s,
	                      qps_as_written.median, qps_as_written.lo, qps_as_written.hi,
	                      rec_written));
	t.notes.push_back(fmt("after strata_compact (%.0f s): %u segment, QPS %.0f (median of five 1 s "
	                      "runs, %.0f-%.0f), recall@10 %.4f",
	                      compact_s, st_c.segments, qps_compacted.median, qps_compacted.lo,
	                      qps_compacted.hi, rec_compacted));
	t.notes.push_back(fmt("ratio QPS while written / compacted: %.2f (target >= 0.80); as written "
	                      "idle / compacted: %.2f",
	                      qps_mean / qps_compacted.median,
	                      qps_as_written.median / qps_compacted.median));
	t.notes.push_back(fmt("reference (all %zu rows built by strata_build into one segment, recall@10 "
	                      "%.4f at ef 64), each 1 s right after the sample beside it: mean %.0f;",
	                      total, rec_ref, ref_mean));
	t.notes.push_back(fmt("ratio QPS while written / reference measured beside it: %.2f "
	                      "(target >= 0.80)",
	                      qps_mean / ref_mean));
	/* Less swayed than the ratio of means by a lucky or unlucky single second. */
	std::sort(ratios.begin(), ratios.end());
	if (!ratios.empty())
		t.notes.push_back(fmt("per-sample ratio written / reference: median %.2f, range %.2f-%.2f",
		                      ratios[ratios.size() / 2], ratios.front(), ratios.back()));
	if (!qps_same.empty()) {
		double same_mean = 0;
		for (double x : qps_same)
			same_mean += x / (double)qps_same.size();
		std::sort(ratios_same.begin(), ratios_same.end());
		t.notes.push_back(fmt("same-rows references (each sample's rows built by strata_build into "
		                      "one segment before the ingestion), 1 s after the all-rows one: mean %.0f;",
		                      same_mean));
		t.notes.push_back(fmt("ratio QPS while written / same rows measured beside it: %.2f (target "
		                      ">= 0.80); per sample: median %.2f, range %.2f-%.2f",
		                      qps_mean / same_mean, ratios_same[ratios_same.size() / 2],
		                      ratios_same.front(), ratios_same.back()));
	}
	check_strata(strata_close(db), "strata_close");
	render_text(stdout, t);

	// More graphs walked at one ef find more: compare QPS at equal recall too.
	Table e;
	e.title = fmt("3b. The same data idle: as written (%u segments + %" PRIu64
	              " memtable rows) against compacted (1 segment), over ef",
	              st_end.segments, st_end.memtable_vectors);
	e.head = {"ef", "written recall", "written QPS", "compacted recall", "compacted QPS",
	          "compacted QPS at written's recall", "ratio at equal recall"};
	e.right = {true, true, true, true, true, true, true};
	for (size_t i = 0; i < sweep_written.size(); i++) {
		const Point &w = sweep_written[i], &c = sweep_compacted[i];
		double at = qps_at_recall(sweep_compacted, w.recall);
		e.rows.push_back({fmt("%u", w.ef), fmt("%.4f", w.recall), fmt("%.0f", w.qps),
		                  fmt("%.4f", c.recall), fmt("%.0f", c.qps),
		                  std::isnan(at) ? "(out of range)" : fmt("%.0f", at),
		                  std::isnan(at) ? "" : fmt("%.2f", w.qps / at)});
	}
	e.notes.push_back("QPS of one query per call on one thread, 1 s per point, wall clock; the");
	e.notes.push_back("compacted QPS at a recall is interpolated linearly between its two ef points");
	e.notes.push_back("whose recall brackets it.");
	render_text(stdout, e);
	fflush(stdout);
	std::error_code ec;
	std::filesystem::remove_all(dir, ec);
	std::filesystem::remove_all(ref_dir, ec);
	for (int step = 1; cfg.same_rows_ref && step < 10; step++)
		std::filesystem::remove_all(same_dir(step), ec);
}

// ---- part 4 ---------------------------------------------------------------------

struct FloorPoint {
	double evals, recall, qps;
};

// Distance evaluations per query (one pass over the queries), recall and QPS at `ef`.
FloorPoint floor_point(strata_db *db, const Mat &q, const std::vector<uint64_t> &truth, uint32_t ef)
{
	struct strata_stats s0 = stats_of(db);
	std::vector<uint64_t> found = search_all(db, q, ef);
	struct strata_stats s1 = stats_of(db);
	return {(double)(s1.distance_evals - s0.distance_evals) / (double)q.rows,
	        recall_at_10(found, truth, q.rows), search_loop(db, q, ef, 1.0)};
}

void part4(const Config &cfg, const Data &data, const std::string &work)
{
	const size_t n = cfg.n, m = cfg.memtable ? (size_t)cfg.memtable : n / 8;
	if (m == 0 || m >= n)
		die(fmt("part 4: the memtable's rows (%zu) must be between 1 and --n (%zu)", m, n));
	std::string dir = work + "/p4";
	strata_options o = base_opts(0);
	o.disable_background_merges = true;
	o.memtable_max_vectors = m;
	o.sync_mode = STRATA_SYNC_NONE;
	strata_db *db = open_fresh(dir, o);
	note(fmt("part 4: %zu rows into one segment", n - m));
	upsert_rows(db, data, 0, n - m);
	check_strata(strata_compact(db), "strata_compact");
	note(fmt("part 4: %zu rows into the memtable", m));
	upsert_rows(db, data, n - m, n);
	struct strata_stats st = stats_of(db);
	for (; st.memtable_unindexed; st = stats_of(db))
		usleep(50000);
	if (st.segments != 1 || st.memtable_vectors != m)
		die(fmt("part 4: %u segments and %" PRIu64 " memtable rows, want 1 and %zu", st.segments,
		        st.memtable_vectors, m));
	note("part 4: truth over all rows");
	std::vector<uint64_t> truth = brute_force_top10(data.base, n, data.query, 2);
	const uint32_t efs[] = {10, 32, 64, 128, 256};
	std::vector<FloorPoint> written, compacted;
	for (uint32_t ef : efs)
		written.push_back(floor_point(db, data.query, truth, ef));
	note("part 4: strata_compact");
	check_strata(strata_compact(db), "strata_compact");
	for (uint32_t ef : efs)
		compacted.push_back(floor_point(db, data.query, truth, ef));
	check_strata(strata_close(db), "strata_close");

	Table t;
	t.title = fmt("4. The floor as written: one segment of %zu rows + %zu memtable rows, against "
	              "all %zu compacted (%s%s)",
	              n - m, m, n, data.name.c_str(), synthetic_tag(data, n).c_str());
	t.head = {"ef", "evals/query written", "compacted", "ratio", "recall written", "compacted",
	          "QPS written", "compacted", "ratio"};
	t.right = {true, true, true, true, true, true, true, true, true};
	for (size_t i = 0; i < written.size(); i++) {
		const FloorPoint &w = written[i], &c = compacted[i];
		t.rows.push_back({fmt("%u", efs[i]), fmt("%.0f", w.evals), fmt("%.0f", c.evals),
		                  fmt("%.2f", c.evals / w.evals), fmt("%.4f", w.recall),
		                  fmt("%.4f", c.recall), fmt("%.0f", w.qps), fmt("%.0f", c.qps),
		                  fmt("%.2f", w.qps / c.qps)});
	}
	t.notes.push_back("ratio: compacted evaluations / written (what QPS would be if a query cost its");
	t.notes.push_back("distance evaluations), then measured QPS written / compacted; one query per");
	t.notes.push_back("call on one thread, 1 s per point; the memtable's rows are found under the");
	t.notes.push_back("segment nodes the walk met (anchors, memtable.h), or its graph is walked with");
	t.notes.push_back("the segment's k-th best distance as bound (search.c), as in any database as written");
	render_text(stdout, t);
	fflush(stdout);
	std::error_code ec;
	std::filesystem::remove_all(dir, ec);
}

} // namespace

int main(int argc, char **argv)
{
	g_prog = "strata-compact-bench";
	Config cfg = parse_args(argc, argv);
	std::string load_start = loadavg();
	size_t rows = std::max({cfg.merge_n, cfg.latency_n + 200000, cfg.base + cfg.n});
	Data data = load_sift(cfg.data_dir, rows + kHeldOut, cfg.synthetic);
	data.base.rows = rows; // the rows past it are part 1's held-out queries
	std::string work = cfg.tmp_base + fmt("/strata-compact-bench.%d", (int)getpid());
	std::error_code ec;
	std::filesystem::create_directories(work, ec);
	if (ec)
		die("cannot create " + work + ": " + ec.message());
	printf("strata-compact-bench: %s\n", cfg.cmdline.c_str());
	printf("strata %s; %u cores; data %s (%zu real rows, synthetic rows after them: %s); load "
	       "average at start %s\n\n",
	       strata_version(), std::thread::hardware_concurrency(), data.name.c_str(), data.real_rows,
	       synthetic_name(data.synthetic), load_start.c_str());
	fflush(stdout);
	if (cfg.parts & 1)
		part1(cfg, data, work);
	if (cfg.parts & 2)
		part2(cfg, data, work);
	if (cfg.parts & 4)
		part3(cfg, data, work);
	if (cfg.parts & 8)
		part4(cfg, data, work);
	printf("load average at end %s\n", loadavg().c_str());
	std::filesystem::remove_all(work, ec);
	return 0;
}
