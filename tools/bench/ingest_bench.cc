// ingest_bench.cc - strata-ingest-bench: the write path's figures (issue 3),
// each printed beside the target, with hnswlib in the same run where
// the issue compares with it. It prints figures; it never passes or fails.
//
//   1. Acknowledged upserts per second, 128-d SIFT rows, STRATA_SYNC_ALWAYS:
//      (a) one writer, one vector per call; (b) 8 writers, one vector per call
//      (group commit); (c) one writer, batches of 1,000, while the memtable has
//      room. Beside each: WAL fdatasyncs per second (stats wal_fsyncs), and
//      the disk's own limit, a loop of 4 KiB pwrite + fdatasync on a file in
//      the database's file system; whether the WAL used io_uring; and a bare
//      group commit (threads, a mutex, pwrite + fdatasync, no database) with
//      1 and 8 threads, so the ratio (b) / (a) has the pattern's own beside it.
//   2. Sustained ingestion of --n SIFT rows end to end (upserts in batches,
//      SYNC_ALWAYS, default memtable limits so flushes happen, strata_flush at
//      the end included) against hnswlib's parallel addPoint with the same M,
//      ef_construction, seed and thread count; then recall@10 of both.
//   3. Open time with a WAL of --replay-n one-vector records never flushed
//      (written with SYNC_NONE and raised memtable limits): wall time of
//      strata_open, replay MB/s from stats replay_bytes / replay_seconds.
//   4. Search QPS (one thread, one query per call) on the database of 2 while
//      one writer upserts continuously, against the same data after
//      strata_flush with no writer.
//
// strata is reached only through engine/strata.h; hnswlib through bench.h
// (hnsw_side.cc); datasets through vecs.cc, read in place from ../shared/data
// (or --data), never copied. How to run it: README-figures.md.
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
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


// ---- configuration ---------------------------------------------------------

struct Config {
	std::string data_dir = STRATA_SOURCE_ROOT "/../shared/data";
	Synthetic synthetic = Synthetic::Spread;
	std::string tmp_base = "/tmp";
	size_t n = 1000000;        // part 2: vectors ingested
	size_t replay_n = 1000000; // part 3: WAL records replayed at open
	unsigned threads = 0;      // part 2: build threads of both engines (0: every core)
	double seconds = 3;        // parts 1 and 4: length of each timed loop
	double disk_seconds = 1;   // part 1: the raw fdatasync loops
	size_t batch = 1000;       // parts 1c, 2, 4: vectors per strata_upsert
	unsigned writers = 8;      // part 1b
	std::vector<unsigned> efs = {64, 128, 256};
	unsigned parts = 15;       // bit mask: 1, 2, 4, 8 (part 4 searches part 2's database)
	bool quick = false;
	std::string json_file;
	std::string cmdline;
};

// ---- the figures: printed as tables, also kept for --json ------------------

struct Report {
	std::vector<Table> tables;
	std::vector<std::pair<std::string, double>> json; // key -> value (< 0: not measured)
	std::vector<std::pair<std::string, std::string>> json_str;

	void num(const std::string &key, double v) { json.emplace_back(key, v); }
	void str(const std::string &key, const std::string &v) { json_str.emplace_back(key, v); }
};

Table figure_table(const std::string &title)
{
	Table t;
	t.title = title;
	t.head = {"figure", "measured", "target", "beside it"};
	t.right = {false, true, false, false};
	return t;
}

std::string rate(double per_s)
{
	if (!(per_s >= 0))
		return "n/a";
	if (per_s >= 100)
		return fmt("%.0f/s", per_s);
	return fmt("%.1f/s", per_s);
}

std::string ratio_str(double a, double b)
{
	if (!(a > 0) || !(b > 0))
		return "n/a";
	return fmt("%.2f", a / b);
}

// ---- part 1: acknowledged upserts per second -----------------------------------

// The disk's own limit: 4 KiB pwrite + fdatasync in a loop for `secs`, in the
// directory that holds the databases. `append`: each write extends the file
// (as a WAL without preallocation does, so the size changes and fdatasync
// also writes metadata); else the same block is rewritten.
double raw_fdatasync_rate(const std::string &dir, double secs, bool append)
{
	std::string path = dir + "/fdatasync-probe";
	int fd = open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		die("cannot create " + path + ": " + strerror(errno));
	char buf[4096];
	memset(buf, 0xa5, sizeof buf);
	if (!append && (pwrite(fd, buf, sizeof buf, 0) != (ssize_t)sizeof buf || fdatasync(fd) != 0))
		die(path + ": write failed: " + strerror(errno));
	size_t ops = 0;
	double t0 = now_s(), el = 0;
	do {
		off_t off = append ? (off_t)(ops * sizeof buf) : 0;
		if (pwrite(fd, buf, sizeof buf, off) != (ssize_t)sizeof buf || fdatasync(fd) != 0)
			die(path + ": write failed: " + strerror(errno));
		ops++;
		el = now_s() - t0;
	} while (el < secs);
	close(fd);
	unlink(path.c_str());
	return (double)ops / el;
}

// The group-commit pattern alone, to set (b) / (a) beside what the pattern gets here:
// `threads` threads each queue a record of `rec` bytes and wait until a leader
// (whichever waiter finds none) has written the whole queue with one pwrite
// and one fdatasync. The leader first waits for its group as strata's WAL does
// (wal_gather: for as many records as the last sync served, at most an eighth
// of that sync's time). No database, nothing else running; the file is written
// and synced beforehand, so records overwrite (as the WAL does with its zeros
// ahead). Returns records per second; *per_sync: records per fdatasync.
double bare_group_commit(const std::string &dir, unsigned threads, size_t rec, double secs,
                         double *per_sync)
{
	std::string path = dir + "/group-commit-probe";
	int fd = open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		die("cannot create " + path + ": " + strerror(errno));
	const size_t file_bytes = 64u << 20;
	std::vector<char> zeros(1u << 20, 0);
	for (size_t off = 0; off < file_bytes; off += zeros.size())
		if (pwrite(fd, zeros.data(), zeros.size(), (off_t)off) != (ssize_t)zeros.size())
			die(path + ": write failed: " + strerror(errno));
	if (fdatasync(fd) != 0)
		die(path + ": fdatasync failed: " + strerror(errno));

	std::mutex mu;
	std::condition_variable cv, appended;
	std::vector<char> queue, batch;
	uint64_t next = 1, durable = 0, syncs = 0, queued = 0, gather_target = 0;
	std::chrono::nanoseconds last_sync{0};
	size_t write_off = 0;
	bool leading = false;
	std::atomic<bool> stop(false);
	std::atomic<uint64_t> done(0);
	auto worker = [&]() {
		std::vector<char> record(rec, 0x5a);
		uint64_t mine = 0;
		while (!stop.load(std::memory_order_relaxed)) {
			std::unique_lock<std::mutex> lk(mu);
			queue.insert(queue.end(), record.begin(), record.end());
			queued++;
			appended.notify_one();
			uint64_t me = next++;
			while (durable < me) {
				if (leading) {
					cv.wait(lk);
					continue;
				}
				leading = true;
				if (queued < gather_target)
					appended.wait_for(lk, last_sync / 8, [&] { return queued >= gather_target; });
				batch.swap(queue);
				queue.clear();
				uint64_t group = queued;
				queued = 0;
				uint64_t upto = next - 1;
				size_t off = write_off % (file_bytes - batch.size());
				write_off += batch.size();
				lk.unlock();
				auto t0 = std::chrono::steady_clock::now();
				if (pwrite(fd, batch.data(), batch.size(), (off_t)off) != (ssize_t)batch.size() ||
				    fdatasync(fd) != 0)
					die(path + ": write failed: " + strerror(errno));
				auto took = std::chrono::steady_clock::now() - t0;
				lk.lock();
				last_sync = std::chrono::duration_cast<std::chrono::nanoseconds>(took);
				gather_target = group + queued; // this group and whoever queued during its sync
				durable = upto;
				syncs++;
				leading = false;
				cv.notify_all();
			}
			mine++;
		}
		done.fetch_add(mine);
	};
	double t0 = now_s();
	std::vector<std::thread> pool;
	for (unsigned i = 0; i < threads; i++)
		pool.emplace_back(worker);
	std::this_thread::sleep_for(std::chrono::duration<double>(secs));
	stop = true;
	for (auto &t : pool)
		t.join();
	double el = now_s() - t0;
	close(fd);
	unlink(path.c_str());
	*per_sync = syncs ? (double)done.load() / (double)syncs : 0;
	return (double)done.load() / el;
}

struct WriteRun {
	double vectors_per_s = -1, fsyncs_per_s = -1;
	uint64_t vectors = 0, fsyncs = 0, stalls = 0, stall_ms = 0, wal_bytes = 0;
	double secs = 0;
	double unstalled_per_s = -1; // (c): batches during which no writer waited for room
	double cpu_s = 0;            // CPU time of the whole process (every thread) over the loop
	bool io_uring = false;
};

// CPU seconds used so far by the whole process: every thread, strata's own too.
double process_cpu_s()
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

// `writers` threads upsert one vector per call (ids disjoint per thread) for `secs`.
WriteRun single_vector_writers(const Config &cfg, const Data &data, const std::string &dir,
                               unsigned writers)
{
	strata_db *db = open_fresh(dir, base_opts(cfg.threads));
	struct strata_stats s0 = stats_of(db);
	std::atomic<bool> stop(false);
	std::atomic<uint64_t> done(0);
	double cpu0 = process_cpu_s();
	auto writer = [&](unsigned w) {
		uint64_t mine = 0;
		for (uint64_t i = 0; !stop.load(std::memory_order_relaxed); i++) {
			uint64_t id = ((uint64_t)w << 40) | i;
			const float *v = data.base.f.data() + ((w * 7919 + i) % data.base.rows) * 128;
			check_strata(strata_upsert(db, &id, v, 1), "strata_upsert");
			mine++;
		}
		done.fetch_add(mine);
	};
	double t0 = now_s();
	std::vector<std::thread> pool;
	for (unsigned w = 0; w < writers; w++)
		pool.emplace_back(writer, w);
	std::this_thread::sleep_for(std::chrono::duration<double>(cfg.seconds));
	stop = true;
	for (auto &t : pool)
		t.join();
	double el = now_s() - t0;
	double cpu = process_cpu_s() - cpu0; // before the close: its indexing is not the loop's
	struct strata_stats s1 = stats_of(db);
	check_strata(strata_close(db), "strata_close");
	WriteRun r;
	r.secs = el;
	r.cpu_s = cpu;
	r.vectors = done.load();
	r.fsyncs = s1.wal_fsyncs - s0.wal_fsyncs;
	r.wal_bytes = s1.wal_bytes - s0.wal_bytes;
	r.vectors_per_s = (double)r.vectors / el;
	r.fsyncs_per_s = (double)r.fsyncs / el;
	r.stalls = s1.write_stalls - s0.write_stalls;
	r.stall_ms = s1.write_stall_ms - s0.write_stall_ms;
	r.io_uring = s1.wal_io_uring;
	return r;
}

// One writer, batches of cfg.batch, for cfg.seconds or until 200,000 vectors
// (well inside the default memtable limits, so no flush is due). Batches
// during which the writer waited for room (the indexer's back-pressure) are
// counted apart, so the figure "while the memtable has room" is visible.
WriteRun batch_writer(const Config &cfg, const Data &data, const std::string &dir)
{
	const size_t limit = 200000;
	// A burst "while the memtable has room": room for the whole burst before the
	// indexer's back-pressure starts (the default, 4096, favours searches instead).
	strata_options o = base_opts(cfg.threads);
	o.memtable_max_unindexed = limit + cfg.batch;
	strata_db *db = open_fresh(dir, o);
	struct strata_stats s0 = stats_of(db);
	std::vector<uint64_t> ids(cfg.batch);
	uint64_t next = 0, free_vectors = 0, stalls_before = s0.write_stalls;
	double free_secs = 0;
	double t0 = now_s(), el = 0;
	do {
		for (auto &id : ids)
			id = next++;
		size_t row = (size_t)(ids[0] % data.base.rows);
		if (row + cfg.batch > data.base.rows)
			row = 0;
		double b0 = now_s();
		check_strata(strata_upsert(db, ids.data(), data.base.f.data() + row * 128, cfg.batch),
		             "strata_upsert");
		double b1 = now_s();
		uint64_t stalls = stats_of(db).write_stalls;
		if (stalls == stalls_before) {
			free_vectors += cfg.batch;
			free_secs += b1 - b0;
		}
		stalls_before = stalls;
		el = now_s() - t0;
	} while (el < cfg.seconds && next < limit);
	struct strata_stats s1 = stats_of(db);
	check_strata(strata_close(db), "strata_close");
	WriteRun r;
	r.secs = el;
	r.vectors = next;
	r.fsyncs = s1.wal_fsyncs - s0.wal_fsyncs;
	r.vectors_per_s = (double)next / el;
	r.fsyncs_per_s = (double)r.fsyncs / el;
	r.stalls = s1.write_stalls - s0.write_stalls;
	r.stall_ms = s1.write_stall_ms - s0.write_stall_ms;
	r.unstalled_per_s = free_secs > 0 ? (double)free_vectors / free_secs : -1;
	r.io_uring = s1.wal_io_uring;
	return r;
}

void part1(const Config &cfg, const Data &data, const std::string &work, Report &rep)
{
	fprintf(stderr, "part 1: acknowledged upserts, SYNC_ALWAYS, %.1f s per loop\n", cfg.seconds);
	double raw_append = raw_fdatasync_rate(work, cfg.disk_seconds, true);
	double raw_over = raw_fdatasync_rate(work, cfg.disk_seconds, false);
	fprintf(stderr, "  disk: %.0f appending / %.0f rewriting 4 KiB pwrite+fdatasync per s\n",
	        raw_append, raw_over);
	WriteRun a = single_vector_writers(cfg, data, work + "/p1a", 1);
	fprintf(stderr, "  (a) %.0f vectors/s, %.0f fdatasyncs/s\n", a.vectors_per_s, a.fsyncs_per_s);
	WriteRun b = single_vector_writers(cfg, data, work + "/p1b", cfg.writers);
	fprintf(stderr, "  (b) %.0f vectors/s, %.0f fdatasyncs/s\n", b.vectors_per_s, b.fsyncs_per_s);
	// Right after (a) and (b), with (a)'s WAL bytes per record: the same records, the same minutes.
	const size_t rec = a.vectors ? (size_t)(a.wal_bytes / a.vectors) : 552;
	double bare1_per_sync = 0, baren_per_sync = 0;
	double bare1 = bare_group_commit(work, 1, rec, cfg.disk_seconds, &bare1_per_sync);
	double baren = bare_group_commit(work, cfg.writers, rec, cfg.disk_seconds, &baren_per_sync);
	fprintf(stderr, "  bare group commit: %.0f/s with 1 thread, %.0f/s with %u\n", bare1, baren,
	        cfg.writers);
	WriteRun c = batch_writer(cfg, data, work + "/p1c");
	fprintf(stderr, "  (c) %.0f vectors/s, %.0f fdatasyncs/s\n", c.vectors_per_s, c.fsyncs_per_s);

	Table t = figure_table("1. Acknowledged upserts per second, 128-d SIFT rows, STRATA_SYNC_ALWAYS");
	auto beside = [](const WriteRun &r) {
		return fmt("%s WAL fdatasyncs (%.1f vectors each); %llu vectors in %.2f s",
		           rate(r.fsyncs_per_s).c_str(), r.fsyncs ? (double)r.vectors / r.fsyncs : 0.0,
		           (unsigned long long)r.vectors, r.secs);
	};
	t.rows.push_back({"(a) 1 writer, 1 vector per call", rate(a.vectors_per_s), "", beside(a)});
	t.rows.push_back({fmt("(b) %u writers, 1 vector per call", cfg.writers), rate(b.vectors_per_s),
	                  fmt(">= 5x (a): %s", ratio_str(b.vectors_per_s, a.vectors_per_s).c_str()),
	                  beside(b)});
	t.rows.push_back({fmt("(c) 1 writer, batches of %zu", cfg.batch), rate(c.vectors_per_s),
	                  ">= 200000/s while the memtable has room", beside(c)});
	t.rows.push_back({"(c) batches that did not wait for room", rate(c.unstalled_per_s),
	                  ">= 200000/s",
	                  fmt("%llu writes waited, %llu ms in all (write_stalls, write_stall_ms)",
	                      (unsigned long long)c.stalls, (unsigned long long)c.stall_ms)});
	t.rows.push_back({"disk: 4 KiB pwrite+fdatasync, appending", rate(raw_append), "the disk's limit",
	                  "a file in the databases' file system, " + work});
	t.rows.push_back({"disk: 4 KiB pwrite+fdatasync, same block", rate(raw_over), "", ""});
	t.rows.push_back({"bare group commit, 1 thread", rate(bare1), "", ""});
	t.rows.push_back({fmt("bare group commit, %u threads", cfg.writers), rate(baren),
	                  fmt("%u / 1 thread: %s", cfg.writers, ratio_str(baren, bare1).c_str()),
	                  fmt("%.1f records per fdatasync", baren_per_sync)});
	t.notes.push_back("(c) runs with memtable_max_unindexed = 200000 + one batch: the burst fits "
	                  "before back-pressure (default 4096: searches scan at most that many fresh vectors)");
	t.notes.push_back(fmt("bare group commit: the pattern alone, no database: threads queue %zu-byte "
	                      "records under a mutex, a leader waits for its group as the WAL does, writes "
	                      "the queue (pwrite) and fdatasyncs, the others wait on a condition variable: "
	                      "what the pattern's ratio is on this machine, beside (b) / (a)",
	                      rec));
	t.notes.push_back(fmt("WAL through io_uring (stats wal_io_uring): %s",
	                      a.io_uring ? "yes" : "no (pwrite + fdatasync)"));
	if (a.vectors && b.vectors) {
		double us_a = a.cpu_s / (double)a.vectors * 1e6, us_b = b.cpu_s / (double)b.vectors * 1e6;
		t.notes.push_back(fmt("process CPU (every thread: writers, WAL, indexer) per acknowledged vector: "
		                      "(a) %.0f us, (b) %.0f us; at (b)'s cost, 5x (a)'s rate needs %.1f "
		                      "cores busy, this machine has %u",
		                      us_a, us_b, 5 * a.vectors_per_s * us_b / 1e6,
		                      std::thread::hardware_concurrency()));
	}
	if (a.stalls || b.stalls)
		t.notes.push_back(fmt("(a)/(b) writes that waited for room: %llu / %llu",
		                      (unsigned long long)a.stalls, (unsigned long long)b.stalls));
	rep.tables.push_back(t);

	rep.num("upsert_1writer_per_s", a.vectors_per_s);
	rep.num("upsert_1writer_fsyncs_per_s", a.fsyncs_per_s);
	rep.num("upsert_writers", cfg.writers);
	rep.num("upsert_nwriters_per_s", b.vectors_per_s);
	rep.num("upsert_nwriters_fsyncs_per_s", b.fsyncs_per_s);
	rep.num("upsert_1writer_cpu_us_per_vector", a.vectors ? a.cpu_s / (double)a.vectors * 1e6 : -1);
	rep.num("upsert_nwriters_cpu_us_per_vector", b.vectors ? b.cpu_s / (double)b.vectors * 1e6 : -1);
	rep.num("upsert_batch_per_s", c.vectors_per_s);
	rep.num("upsert_batch_fsyncs_per_s", c.fsyncs_per_s);
	rep.num("upsert_batch_unstalled_per_s", c.unstalled_per_s);
	rep.num("upsert_batch_stalls", (double)c.stalls);
	rep.num("disk_fdatasync_append_per_s", raw_append);
	rep.num("disk_fdatasync_rewrite_per_s", raw_over);
	rep.num("bare_group_commit_1thread_per_s", bare1);
	rep.num("bare_group_commit_nthreads_per_s", baren);
	rep.num("wal_io_uring", a.io_uring ? 1 : 0);
}

// ---- part 2: sustained ingestion against hnswlib --------------------------------

struct Ingested {
	strata_db *db = nullptr; // kept open for part 4
	std::vector<uint64_t> truth;
};

Ingested part2(const Config &cfg, const Data &data, const std::string &work, Report &rep)
{
	const size_t n = cfg.n, dim = 128;
	fprintf(stderr, "part 2: ingest %zu vectors, batches of %zu, %u threads\n", n, cfg.batch,
	        cfg.threads);
	Ingested out;
	strata_options o = base_opts(cfg.threads);
	out.db = open_fresh(work + "/p2", o);
	std::vector<uint64_t> ids(cfg.batch);
	double t0 = now_s(), next_report = t0 + 30;
	for (size_t at = 0; at < n; at += cfg.batch) {
		size_t m = std::min(cfg.batch, n - at);
		for (size_t i = 0; i < m; i++)
			ids[i] = at + i;
		check_strata(strata_upsert(out.db, ids.data(), data.base.f.data() + at * dim, m),
		             "strata_upsert");
		if (now_s() > next_report) {
			fprintf(stderr, "  strata: %zu acknowledged after %.0f s\n", at + m, now_s() - t0);
			next_report += 30;
		}
	}
	double t_acked = now_s() - t0;
	check_strata(strata_flush(out.db), "strata_flush");
	double t_strata = now_s() - t0;
	struct strata_stats st = stats_of(out.db);
	fprintf(stderr, "  strata: %.1f s (all acknowledged at %.1f s)\n", t_strata, t_acked);

	double h0 = now_s();
	HnswIndex *h = hnsw_new(dim, false, n, kM, kEfc, kSeed);
	hnsw_add_all(h, data.base.f.data(), n, dim, cfg.threads);
	double t_hnsw = now_s() - h0;
	fprintf(stderr, "  hnswlib: %.1f s\n", t_hnsw);

	// Ground truth: the dataset's own when these n rows are exactly its base.
	const Mat &q = data.query;
	std::string truth_from;
	if (n == data.real_rows && data.truth.rows >= q.rows && data.truth.dim >= K) {
		out.truth.resize(q.rows * K);
		for (size_t qi = 0; qi < q.rows; qi++)
			for (size_t j = 0; j < K; j++)
				out.truth[qi * K + j] = (uint64_t)data.truth.i[qi * data.truth.dim + j];
		truth_from = "the dataset's ground truth";
	} else {
		out.truth = brute_force_top10(data.base, n, q, cfg.threads);
		truth_from = "exact brute force over the ingested rows";
	}

	Table t = figure_table(fmt("2. Sustained ingestion of %zu vectors (%s%s), %u threads, M %u, "
	                           "ef_construction %u",
	                           n, data.name.c_str(),
	                           n > data.real_rows ? fmt(" + %zu synthetic (%s)", n - data.real_rows,
	                                                    synthetic_name(data.synthetic)).c_str()
	                                              : "",
	                           cfg.threads, kM, kEfc));
	double rs = (double)n / t_strata, rh = (double)n / t_hnsw;
	t.rows.push_back({"strata: upsert + flush, end to end", rate(rs), "",
	                  fmt("%.1f s (all acknowledged at %.1f s); %llu flushes, %u segments, %llu "
	                      "fdatasyncs, %llu waits for room (%.1f s)",
	                      t_strata, t_acked, (unsigned long long)st.flushes, st.segments,
	                      (unsigned long long)st.wal_fsyncs, (unsigned long long)st.write_stalls,
	                      (double)st.write_stall_ms / 1e3)});
	t.rows.push_back({"hnswlib: addPoint on all threads", rate(rh), "", fmt("%.1f s", t_hnsw)});
	t.rows.push_back({"strata / hnswlib rate", ratio_str(rs, rh), ">= 0.9", ""});

	std::vector<uint64_t> found(q.rows * K);
	strata_search_options so;
	strata_search_options_default(&so);
	for (unsigned ef : cfg.efs) {
		so.ef = ef;
		float dists[K];
		for (size_t qi = 0; qi < q.rows; qi++)
			check_strata(strata_search(out.db, q.f.data() + qi * dim, 1, K, &so,
			                           found.data() + qi * K, dists),
			             "strata_search");
		double recall_s = recall_at_10(found, out.truth, q.rows);
		hnsw_set_ef(h, ef);
		for (size_t qi = 0; qi < q.rows; qi++)
			hnsw_search(h, q.f.data() + qi * dim, K, found.data() + qi * K);
		double recall_h = recall_at_10(found, out.truth, q.rows);
		t.rows.push_back({fmt("recall@10 at ef %u: strata / hnswlib", ef),
		                  fmt("%.4f / %.4f", recall_s, recall_h), "", ""});
		rep.num(fmt("recall_ef%u_strata", ef), recall_s);
		rep.num(fmt("recall_ef%u_hnswlib", ef), recall_h);
	}
	t.notes.push_back(fmt("recall over the %zu queries of %s, against %s", q.rows,
	                      data.name.c_str(), truth_from.c_str()));
	if (n > data.real_rows)
		t.notes.push_back(synthetic_note(data, n) +
		                  fmt(": no larger SIFT set in %s", cfg.data_dir.c_str()));
	rep.tables.push_back(t);
	hnsw_free(h);

	rep.num("ingest_n", (double)n);
	rep.num("ingest_synthetic_rows", (double)(n > data.real_rows ? n - data.real_rows : 0));
	rep.num("ingest_strata_per_s", rs);
	rep.num("ingest_strata_s", t_strata);
	rep.num("ingest_strata_acked_s", t_acked);
	rep.num("ingest_strata_flushes", (double)st.flushes);
	rep.num("ingest_hnswlib_per_s", rh);
	rep.num("ingest_hnswlib_s", t_hnsw);
	rep.num("ingest_ratio", rs / rh);
	return out;
}

// ---- part 3: open time with a long WAL -------------------------------------------

void drop_cache_of_tree(const std::string &dir)
{
	std::error_code ec;
	for (const auto &e : std::filesystem::recursive_directory_iterator(dir, ec)) {
		if (!e.is_regular_file())
			continue;
		int fd = open(e.path().c_str(), O_RDONLY);
		if (fd < 0)
			continue;
		fdatasync(fd);
		posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
		close(fd);
	}
}

void part3(const Config &cfg, const Data &data, const std::string &work, Report &rep)
{
	const size_t m = cfg.replay_n;
	fprintf(stderr, "part 3: WAL of %zu one-vector records, SYNC_NONE, no flush\n", m);
	// A cheap graph (ef_construction 20) only to keep the writing short: writers
	// wait for the background indexer, and replay itself builds no graph.
	strata_options o = base_opts(cfg.threads);
	o.ef_construction = 20;
	o.sync_mode = STRATA_SYNC_NONE;
	o.memtable_max_vectors = (uint64_t)m * 2 + 1024;
	o.memtable_max_bytes = (uint64_t)64 << 30;
	std::string dir = work + "/p3";
	strata_db *db = open_fresh(dir, o);
	double t0 = now_s();
	for (size_t i = 0; i < m; i++) {
		uint64_t id = i;
		check_strata(strata_upsert(db, &id, data.base.f.data() + (i % data.base.rows) * 128, 1),
		             "strata_upsert");
	}
	double t_write = now_s() - t0;
	struct strata_stats sw = stats_of(db);
	double c0 = now_s();
	check_strata(strata_close(db), "strata_close");
	double t_close = now_s() - c0;
	if (sw.flushes != 0)
		die(fmt("part 3: %llu flushes happened although the memtable limits were raised",
		        (unsigned long long)sw.flushes));
	fprintf(stderr, "  wrote %.0f MB of WAL in %.1f s, close %.2f s\n", (double)sw.wal_bytes / 1e6,
	        t_write, t_close);

	Table t = figure_table(fmt("3. Open with a WAL of %zu un-flushed one-vector records", m));
	for (int cold = 0; cold < 2; cold++) {
		if (cold)
			drop_cache_of_tree(dir);
		double o0 = now_s();
		check_strata(strata_open(dir.c_str(), &o, 0, &db), "strata_open");
		double t_open = now_s() - o0;
		struct strata_stats so = stats_of(db);
		double c1 = now_s();
		check_strata(strata_close(db), "strata_close");
		double t_close2 = now_s() - c1;
		double mbps = so.replay_seconds > 0 ? (double)so.replay_bytes / 1e6 / so.replay_seconds : -1;
		const char *which = cold ? "cold" : "warm";
		t.rows.push_back({cold ? "open, WAL not in the page cache: wall" : "open, WAL in the page cache: wall",
		                  fmt("%.3f s", t_open), "",
		                  fmt("%llu records, %.0f MB replayed in %.3f s (stats); close after: %.2f s",
		                      (unsigned long long)so.replay_records, (double)so.replay_bytes / 1e6,
		                      so.replay_seconds, t_close2)});
		t.rows.push_back({fmt("replay rate (%s)", which), fmt("%.0f MB/s", mbps), "",
		                  fmt("%.0f records/s", so.replay_seconds > 0
		                                            ? (double)so.replay_records / so.replay_seconds
		                                            : -1.0)});
		rep.num(fmt("open_%s_s", which), t_open);
		rep.num(fmt("replay_%s_mb_per_s", which), mbps);
		rep.num(fmt("replay_%s_records", which), (double)so.replay_records);
		rep.num(fmt("replay_%s_bytes", which), (double)so.replay_bytes);
		rep.num(fmt("replay_%s_s", which), so.replay_seconds);
		fprintf(stderr, "  open (%s): %.3f s, replay %.0f MB/s\n", which, t_open, mbps);
	}
	t.notes.push_back(fmt("written with SYNC_NONE in %.1f s (%.0f MB of WAL, ef_construction 20 to "
	                      "keep that short), closed (WAL synced) in %.2f s",
	                      t_write, (double)sw.wal_bytes / 1e6, t_close));
	rep.tables.push_back(t);
	std::error_code ec;
	std::filesystem::remove_all(dir, ec);
}

// ---- part 4: search while writing ------------------------------------------------

// Single queries (k 10, ef 64) cycling over the query set until `stop` or
// `secs` has passed; queries per second.
void part4(const Config &cfg, const Data &data, strata_db *db, Report &rep)
{
	fprintf(stderr, "part 4: search while writing, %.1f s per phase\n", cfg.seconds);
	const size_t n = cfg.n;
	std::atomic<bool> stop(false);
	std::atomic<uint64_t> written(0);
	std::thread writer([&]() {
		std::vector<uint64_t> ids(cfg.batch);
		uint64_t next = n;
		while (!stop.load(std::memory_order_relaxed)) {
			for (auto &id : ids)
				id = next++;
			size_t row = (size_t)((next - cfg.batch) % data.base.rows);
			if (row + cfg.batch > data.base.rows)
				row = 0;
			check_strata(strata_upsert(db, ids.data(), data.base.f.data() + row * 128, cfg.batch),
			             "strata_upsert");
			written.fetch_add(cfg.batch);
		}
	});
	struct strata_stats s0 = stats_of(db);
	double w0 = now_s();
	double qps_writing = search_loop(db, data.query, 64, cfg.seconds);
	struct strata_stats s1 = stats_of(db);
	stop = true;
	writer.join();
	double w_el = now_s() - w0;
	double f0 = now_s();
	check_strata(strata_flush(db), "strata_flush");
	double t_flush = now_s() - f0;
	struct strata_stats s2 = stats_of(db);
	double qps_flushed = search_loop(db, data.query, 64, cfg.seconds);
	fprintf(stderr, "  %.0f QPS writing, %.0f flushed\n", qps_writing, qps_flushed);

	Table t = figure_table("4. Search QPS (1 thread, k 10, ef 64) on a database being written to");
	t.rows.push_back({"search while 1 writer upserts", fmt("%.0f QPS", qps_writing), "",
	                  fmt("writer: %llu vectors in %.1f s, batches of %zu, SYNC_ALWAYS; at the end "
	                      "of the phase %llu in the memtable, %llu of them unindexed",
	                      (unsigned long long)written.load(), w_el, cfg.batch,
	                      (unsigned long long)s1.memtable_vectors,
	                      (unsigned long long)s1.memtable_unindexed)});
	t.rows.push_back({"the same data flushed, search only", fmt("%.0f QPS", qps_flushed), "",
	                  fmt("strata_flush took %.2f s; %u segments, %llu vectors", t_flush, s2.segments,
	                      (unsigned long long)s2.vectors)});
	t.rows.push_back({"writing / flushed", ratio_str(qps_writing, qps_flushed), "", ""});
	t.notes.push_back(fmt("distance evaluations per query: %.0f while writing, %.0f flushed",
	                      s1.searches > s0.searches ? (double)(s1.distance_evals - s0.distance_evals) /
	                                                      (double)(s1.searches - s0.searches)
	                                                : -1.0,
	                      [&]() {
		                      struct strata_stats s3 = stats_of(db);
		                      return s3.searches > s2.searches
		                                 ? (double)(s3.distance_evals - s2.distance_evals) /
		                                       (double)(s3.searches - s2.searches)
		                                 : -1.0;
	                      }()));
	rep.tables.push_back(t);
	rep.num("search_writing_qps", qps_writing);
	rep.num("search_flushed_qps", qps_flushed);
	rep.num("search_ratio", qps_writing / qps_flushed);
	rep.num("search_writer_vectors", (double)written.load());
}

// ---- main ------------------------------------------------------------------------

void usage(FILE *out)
{
	fputs("usage: strata-ingest-bench [options]\n"
	      "  --quick          small sizes and short loops: a smoke run (seconds)\n"
	      "  --n N            vectors ingested in part 2 (default 1000000)\n"
	      "  --replay-n N     WAL records replayed at open in part 3 (default 1000000)\n"
	      "  --data DIR       the datasets folder (default <source>/../shared/data)\n"
	      "  --synthetic S    rows past the real ones: spread (default) or copies (sift.h)\n"
	      "  --threads T      build threads of both engines (default: every core)\n"
	      "  --seconds S      length of each timed loop of parts 1 and 4 (default 3)\n"
	      "  --batch B        vectors per upsert call in parts 1c, 2, 4 (default 1000)\n"
	      "  --tmp DIR        where the databases are made (default /tmp); its file\n"
	      "                   system is the one whose fdatasync rate is measured\n"
	      "  --json FILE      also write the figures as JSON to FILE\n"
	      "  --parts LIST     which parts to run, e.g. 1,3 (default 1,2,3,4; 4 runs 2 too)\n"
	      "The figures and the issue's targets go to stdout, progress to stderr.\n",
	      out);
}

size_t parse_num(const char *s, const char *flag)
{
	char *end = nullptr;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= 0) || v > 1e12)
		die(fmt("%s: not a number: %s", flag, s));
	return (size_t)v;
}

Config parse_args(int argc, char **argv)
{
	Config c;
	bool n_set = false, replay_set = false, seconds_set = false;
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
		if (a == "--help" || a == "-h") {
			usage(stdout);
			exit(0);
		} else if (a == "--quick") {
			c.quick = true;
		} else if (a == "--n") {
			c.n = parse_num(val(), "--n");
			n_set = true;
		} else if (a == "--replay-n") {
			c.replay_n = parse_num(val(), "--replay-n");
			replay_set = true;
		} else if (a == "--data") {
			c.data_dir = val();
		} else if (a == "--synthetic") {
			if (!parse_synthetic(val(), c.synthetic))
				die("--synthetic: spread or copies");
		} else if (a == "--threads") {
			c.threads = (unsigned)parse_num(val(), "--threads");
		} else if (a == "--seconds") {
			c.seconds = strtod(val(), nullptr);
			seconds_set = true;
		} else if (a == "--batch") {
			c.batch = parse_num(val(), "--batch");
		} else if (a == "--tmp") {
			c.tmp_base = val();
		} else if (a == "--parts") {
			if (!parse_parts(val(), 4, c.parts))
				die(std::string("--parts: not a part list: ") + argv[i]);
		} else if (a == "--json") {
			c.json_file = val();
		} else {
			usage(stderr);
			die("unknown option " + a);
		}
	}
	if (c.quick) {
		if (!n_set)
			c.n = 10000;
		if (!replay_set)
			c.replay_n = 20000;
		if (!seconds_set)
			c.seconds = 0.3;
		c.disk_seconds = 0.2;
	}
	if (c.threads == 0)
		c.threads = std::max(1u, std::thread::hardware_concurrency());
	if (c.n < 1 || c.replay_n < 1 || c.batch < 1 || !(c.seconds > 0))
		die("--n, --replay-n, --batch and --seconds must be positive");
	return c;
}

void write_json(const Config &cfg, const Report &rep)
{
	FILE *f = fopen(cfg.json_file.c_str(), "w");
	if (!f)
		die("cannot write " + cfg.json_file + ": " + strerror(errno));
	fputs("{\n", f);
	for (const auto &kv : rep.json_str)
		fprintf(f, "  %s: %s,\n", json_str(kv.first).c_str(), json_str(kv.second).c_str());
	for (size_t i = 0; i < rep.json.size(); i++)
		fprintf(f, "  %s: %s%s\n", json_str(rep.json[i].first).c_str(),
		        json_num(rep.json[i].second).c_str(), i + 1 < rep.json.size() ? "," : "");
	fputs("}\n", f);
	if (fclose(f) != 0)
		die("cannot write " + cfg.json_file);
}

} // namespace

int main(int argc, char **argv)
{
	g_prog = "strata-ingest-bench";
	Config cfg = parse_args(argc, argv);
	std::string load_start = loadavg();
	Data data = load_sift(cfg.data_dir, cfg.n, cfg.synthetic);
	if (cfg.batch > data.base.rows)
		die(fmt("--batch %zu is larger than the %zu rows at hand", cfg.batch, data.base.rows));

	std::string work = cfg.tmp_base + fmt("/strata-ingest-bench.%d", (int)getpid());
	std::error_code ec;
	std::filesystem::create_directories(work, ec);
	if (ec)
		die("cannot create " + work + ": " + ec.message());

	Report rep;
	rep.str("command", cfg.cmdline);
	rep.str("strata_version", strata_version());
	rep.str("dataset", data.name);
	rep.str("load_start", load_start);
	rep.num("threads", cfg.threads);

	if (cfg.parts & 1)
		part1(cfg, data, work, rep);
	if (cfg.parts & (2 | 8)) {
		Ingested ing = part2(cfg, data, work, rep);
		if (cfg.parts & 8)
			part4(cfg, data, ing.db, rep);
		check_strata(strata_close(ing.db), "strata_close");
		std::filesystem::remove_all(work + "/p2", ec);
	}
	if (cfg.parts & 4)
		part3(cfg, data, work, rep);
	std::string load_end = loadavg();
	rep.str("load_end", load_end);

	printf("strata-ingest-bench: %s\n", cfg.cmdline.c_str());
	printf("strata %s; %u cores, --threads %u; data %s (%s); databases in %s\n", strata_version(),
	       std::thread::hardware_concurrency(), cfg.threads, data.name.c_str(),
	       cfg.data_dir.c_str(), cfg.tmp_base.c_str());
	printf("load average at start %s, at end %s\n\n", load_start.c_str(), load_end.c_str());
	// Parts run in the order 1, 2, 4, 3 (4 reuses 2's database); print by number.
	std::stable_sort(rep.tables.begin(), rep.tables.end(),
	                 [](const Table &a, const Table &b) { return a.title < b.title; });
	for (const Table &t : rep.tables)
		render_text(stdout, t);
	if (!cfg.json_file.empty())
		write_json(cfg, rep);
	std::filesystem::remove_all(work, ec);
	return 0;
}
