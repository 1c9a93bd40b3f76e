// anchor_bench.cc - strata-anchor-bench: a database as written, its
// memtable's rows found through the segment's graph (the engine's anchors,
// engine/memtable.h) against a walk of the memtable's own graph (issue 4's
// QPS target). It prints figures; it never passes or fails.
//
// The state measured is part 4 of strata-compact-bench, the best a compactor
// can keep while rows arrive: every row but the memtable's in one segment.
// Three ways to search it, with the engine's own graph and memtable code
// (through anchor_core.c), in memory, on one thread:
//   compacted  all rows in one graph, one walk;
//   walked     the segment walked at ef, then the memtable's graph walked
//              bounded by the segment's 10th best (engine/search.c before
//              anchors; still its way when anchors cannot serve);
//   anchored   each memtable row hung under its MT_ANCHOR_LINKS nearest
//              segment nodes (mt_anchor, a walk of the segment at ef
//              MT_ANCHOR_EF); the segment walked at ef and the rows hung under
//              the nodes it expanded evaluated (engine/search.c now).
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "anchor_core.h"
#include "bench.h"
#include "report.h"
#include "sift.h"

using namespace bench;

namespace {

#ifndef STRATA_SOURCE_ROOT
#define STRATA_SOURCE_ROOT "."
#endif

struct Config {
	std::string data_dir = STRATA_SOURCE_ROOT "/../shared/data";
	Synthetic synthetic = Synthetic::Spread;
	size_t n = 400000;    // rows in all
	size_t memtable = 0;  // the memtable's rows (0: n / 8)
	unsigned threads = 2; // graph builds
	double seconds = 1;   // per QPS point
	std::string cmdline;
};

void usage(FILE *out)
{
	fputs("usage: strata-anchor-bench [options]\n"
	      "  --quick        small sizes: a smoke run (seconds)\n"
	      "  --n N          rows in all (default 400000)\n"
	      "  --memtable M   of them, the memtable's (default N / 8)\n"
	      "  --threads T    threads of the graph builds (default 2)\n"
	      "  --seconds S    per QPS point (default 1)\n"
	      "  --data DIR     datasets folder (default ../shared/data of the source tree)\n"
	      "  --synthetic S  rows past the real ones: spread (default) or copies (sift.h)\n",
	      out);
}

size_t count_arg(const char *opt, const char *v)
{
	char *end = nullptr;
	unsigned long long x = strtoull(v, &end, 10);
	if (!*v || *end || x == 0)
		die(std::string(opt) + ": not a positive count: " + v);
	return (size_t)x;
}

Config parse_args(int argc, char **argv)
{
	Config c;
	for (int i = 0; i < argc; i++)
		c.cmdline += (i ? " " : "") + std::string(argv[i]);
	for (int i = 1; i < argc; i++) {
		std::string a = argv[i];
		auto value = [&]() -> const char * {
			if (i + 1 >= argc)
				die(a + ": needs a value");
			return argv[++i];
		};
		if (a == "--help" || a == "-h") {
			usage(stdout);
			exit(0);
		} else if (a == "--quick") {
			c.n = 20000;
			c.seconds = 0.2;
		} else if (a == "--n") {
			c.n = count_arg("--n", value());
		} else if (a == "--memtable") {
			c.memtable = count_arg("--memtable", value());
		} else if (a == "--threads") {
			c.threads = (unsigned)count_arg("--threads", value());
		} else if (a == "--seconds") {
			c.seconds = atof(value());
			if (!(c.seconds > 0))
				die("--seconds: not a positive number");
		} else if (a == "--data") {
			c.data_dir = value();
		} else if (a == "--synthetic") {
			if (!parse_synthetic(value(), c.synthetic))
				die("--synthetic: spread or copies");
		} else {
			usage(stderr);
			die("unknown option " + a);
		}
	}
	return c;
}

} // namespace

int main(int argc, char **argv)
{
	g_prog = "strata-anchor-bench";
	Config cfg = parse_args(argc, argv);
	const size_t n = cfg.n, m = cfg.memtable ? cfg.memtable : n / 8;
	if (m == 0 || m >= n)
		die(fmt("the memtable's rows (%zu) must be between 1 and --n (%zu)", m, n));
	std::string load_start = loadavg();
	Data data = load_sift(cfg.data_dir, n, cfg.synthetic);
	printf("strata-anchor-bench: %s\n", cfg.cmdline.c_str());
	printf("data %s (%zu real rows, synthetic rows after them: %s); load average at start %s\n\n",
	       data.name.c_str(), data.real_rows, synthetic_name(data.synthetic), load_start.c_str());
	fflush(stdout);
	std::vector<uint64_t> truth = brute_force_top10(data.base, n, data.query, 2);
	const std::vector<uint32_t> efs = {10, 32, 64, 128};
	std::vector<anchor_point> pts(3 * efs.size());
	anchor_costs costs;
	char err[256];
	if (anchor_measure(data.base.f.data(), n - m, m, (uint32_t)data.base.dim, data.query.f.data(),
	                   data.query.rows, truth.data(), efs.data(), efs.size(), cfg.threads,
	                   cfg.seconds, pts.data(), &costs, err, sizeof err))
		die(err);

	Table t;
	t.title = fmt("Memtable rows anchored in the segment's graph: %zu segment rows + %zu memtable "
	              "rows, against all %zu in one graph (%s%s)",
	              n - m, m, n, data.name.c_str(), synthetic_tag(data, n).c_str());
	t.head = {"ef", "way", "evals/query", "recall@10", "QPS", "evals: compacted / this",
	          "QPS: this / compacted"};
	t.right = {true, false, true, true, true, true, true};
	const char *names[3] = {"compacted", "walked", "anchored"};
	for (size_t i = 0; i < efs.size(); i++) {
		const anchor_point &c = pts[3 * i];
		for (int w = 0; w < 3; w++) {
			const anchor_point &p = pts[3 * i + w];
			t.rows.push_back({w ? "" : fmt("%u", efs[i]), names[w], fmt("%.0f", p.evals),
			                  fmt("%.4f", p.recall), fmt("%.0f", p.qps),
			                  w ? fmt("%.2f", c.evals / p.evals) : "",
			                  w ? fmt("%.2f", p.qps / c.qps) : ""});
		}
	}
	t.notes.push_back("M 16, ef_construction 200, l2, k 10; one thread, one query per call, " +
	                  fmt("%.1f s per QPS point; in memory (no mmap, no database around it)",
	                      cfg.seconds));
	t.notes.push_back(fmt("builds (%u threads): segment %.1f s, all rows %.1f s, memtable graph "
	                      "%.1f s; hanging its %zu rows (one thread): %.2f s",
	                      cfg.threads, costs.build_segment_s, costs.build_all_s,
	                      costs.build_memtable_s, m, costs.anchor_s));
	t.notes.push_back(fmt("anchored, ef %u: %.1f memtable rows evaluated per query under the nodes "
	                      "the segment's walk met closest to it",
	                      efs.back(), costs.leaves_per_query));
	render_text(stdout, t);
	printf("\nload average at end %s\n", loadavg().c_str());
	return 0;
}
