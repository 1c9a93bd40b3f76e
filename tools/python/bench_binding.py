#!/usr/bin/python3
"""How much the Python binding costs: one batch of queries through hnswlib_compat.knn_query
and through strata.Database.search, against the same batch through strata_search in C.

    /usr/bin/python3 tools/python/bench_binding.py [--repeat 30] [--rounds 5]

Builds a database from SIFT 10k (../shared/data/siftsmall, M 16, ef_construction
200) in a temporary directory, then alternates, round after round: the C program
strata-bench-search (built by meson in build/tools/python/) running the batch
--repeat times, then Database.search and Index.knn_query (after load_index of
the same directory) each --repeat times. Every call is timed around the whole
batch (wall clock, or with --clock cpu the process's CPU time); the C side times strata_search alone, the Python sides the
whole method call (argument checks, conversions, output arrays, ctypes). It
prints the median and the best time per batch of each, and the ratios
binding / C, for one search thread and for all of them, and for a batch of one
query (where the fixed cost of a call shows). It checks that all three
returned the same ids. A benchmark: it prints figures and asserts nothing.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402

import strata  # noqa: E402
from strata import hnswlib_compat  # noqa: E402


def read_fvecs(path):
    raw = np.fromfile(path, dtype=np.int32)
    return raw.reshape(-1, raw[0] + 1)[:, 1:].copy().view(np.float32)


def fnv(ids):
    """FNV-1a over the ids' little-endian bytes, as strata-bench-search prints it."""
    h = 14695981039346656037
    for b in np.ascontiguousarray(ids, dtype="<u8").tobytes():
        h = ((h ^ b) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h


def run_c(exe, db, queries_path, k, ef, threads, repeat, clock):
    out = subprocess.run([exe, db, queries_path, str(k), str(ef), str(threads), str(repeat),
                          clock], check=True, capture_output=True, text=True).stdout.split("\n")
    times = [float(line.split()[1]) for line in out if line.startswith("run ")]
    digest = int(next(line.split()[1] for line in out if line.startswith("ids_fnv ")))
    return times, digest


def time_calls(fn, repeat, clock):
    now = time.process_time if clock == "cpu" else time.perf_counter
    fn()  # warm
    times = []
    for _ in range(repeat):
        t0 = now()
        result = fn()
        times.append(now() - t0)
    return times, result


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=os.environ.get("STRATA_DATA",
                                                     os.path.join(ROOT, "..", "shared", "data")))
    ap.add_argument("--c-bench", default=os.path.join(ROOT, "build", "tools", "python",
                                                      "strata-bench-search"))
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--ef", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=30, help="timed batches per round and side")
    ap.add_argument("--rounds", type=int, default=5, help="alternations of C and Python")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="wall clock, or the process's CPU time (all threads; steadier when "
                         "other jobs share the machine)")
    args = ap.parse_args()

    sift = os.path.join(args.data, "siftsmall")
    base = read_fvecs(os.path.join(sift, "siftsmall_base.fvecs"))
    qpath = os.path.join(sift, "siftsmall_query.fvecs")
    queries = read_fvecs(qpath)
    if not os.access(args.c_bench, os.X_OK):
        sys.exit("no %s: build it (ninja -C build) or pass --c-bench" % args.c_bench)

    tmp = tempfile.mkdtemp(prefix="strata-bench-binding-")
    dbpath = os.path.join(tmp, "sift10k.db")
    strata.build(dbpath, base, M=16, ef_construction=200)
    one_path = os.path.join(tmp, "one_query.fvecs")
    np.concatenate([np.array([[128]], np.int32), queries[:1].view(np.int32)], axis=1).tofile(
        one_path)

    db = strata.open(dbpath, readonly=True)
    index = hnswlib_compat.Index(space="l2", dim=128)
    index.load_index(dbpath)
    index.set_ef(args.ef)
    cores = strata.cpu_count()
    print("strata %s (%s), Python %s, numpy %s; SIFT 10k, k %d, ef %d; %d CPUs"
          % (strata.library_version(), strata.library_path(), sys.version.split()[0],
             np.__version__, args.k, args.ef, cores))
    print("%d rounds x %d timed batches per side; %s seconds per batch; ratio = Python / C\n"
          % (args.rounds, args.repeat, "CPU" if args.clock == "cpu" else "wall-clock"))
    print("%-34s %12s %12s %9s %9s" % ("", "median", "best", "ratio med", "ratio best"))

    cases = [("batch of 100 queries, 1 thread", qpath, queries, 1),
             ("batch of 100 queries, %d threads" % cores, qpath, queries, cores),
             ("batch of 1 query", one_path, queries[:1], 1)]
    for title, path, q, threads in cases:
        c_t, n_t, h_t = [], [], []
        same = True
        for _ in range(args.rounds):
            t, c_digest = run_c(args.c_bench, dbpath, path, args.k, args.ef, threads, args.repeat,
                                args.clock)
            c_t += t
            t, (ids, _) = time_calls(lambda: db.search(q, k=args.k, ef=args.ef, threads=threads),
                                     args.repeat, args.clock)
            n_t += t
            same = same and fnv(ids) == c_digest
            t, (labels, _) = time_calls(lambda: index.knn_query(q, k=args.k,
                                                                num_threads=threads),
                                        args.repeat, args.clock)
            h_t += t
            same = same and fnv(labels) == c_digest
        c_med, c_best = statistics.median(c_t), min(c_t)
        print(title)
        for name, ts in (("  C strata_search", c_t), ("  Python Database.search", n_t),
                         ("  Python Index.knn_query", h_t)):
            med, best = statistics.median(ts), min(ts)
            print("%-34s %12.6f %12.6f %9.3f %9.3f" % (name, med, best, med / c_med,
                                                       best / c_best))
        print("  same ids from all three: %s" % ("yes" if same else "NO"))
    db.close()
    index.close()
    subprocess.run(["rm", "-rf", tmp], check=False)


if __name__ == "__main__":
    main()
