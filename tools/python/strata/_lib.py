"""The C library through ctypes: finding libstrata, the mirrored structs, the prototypes.

This module owns every ctypes declaration of the binding and nothing else: no
policy, no numpy. The structs mirror engine/strata.h field by field, in order
and type; tools/python/tests/test_abi.py compares their sizes and offsets (and
the constants below) against a C program compiled from the header, so a drift
fails a test instead of corrupting memory.

Where the library comes from, first match wins:
  1. the file named by the environment variable STRATA_LIB (nothing else is
     tried when it is set: a wrong path is an ImportError, not a fallback);
  2. the installed library: ``libstrata.so.0`` through the dynamic loader's
     search path, then ``ctypes.util.find_library("strata")``;
  3. the build tree of the source checkout this package sits in:
     ``<repo>/build/engine/libstrata.so``, then any ``<repo>/build*/engine/``.
A candidate that lacks a function the binding requires is skipped (an older
installed library), with the reason kept for the ImportError.

Every function of libstrata is called through ctypes.CDLL, which releases the
GIL for the duration of the call: searches and writes of several Python
threads run in parallel in C.
"""

import ctypes
import ctypes.util
import glob
import os

from ctypes import (CFUNCTYPE, POINTER, Structure, c_bool, c_char_p, c_double, c_int, c_size_t,
                    c_uint32, c_uint64, c_void_p)

# ---- constants of engine/strata.h (checked against the header by test_abi.py) ----

CODE_NAMES = {
    0: "STRATA_OK",
    -1: "STRATA_EINVAL", -2: "STRATA_EDIM", -3: "STRATA_EMETRIC", -4: "STRATA_ENOTFOUND",
    -5: "STRATA_EEXIST", -6: "STRATA_EBUSY", -7: "STRATA_EREADONLY", -8: "STRATA_ENONFINITE",
    -9: "STRATA_EDUPLICATE",
    -20: "STRATA_ENOMEM", -21: "STRATA_ELIMIT", -22: "STRATA_ENOSPC",
    -40: "STRATA_EIO", -41: "STRATA_EFSYNC", -42: "STRATA_EPERM",
    -60: "STRATA_ENOTDB", -61: "STRATA_EVERSION", -62: "STRATA_ECORRUPT",
    -63: "STRATA_ECHECKSUM", -64: "STRATA_ETRUNCATED",
}
CODES = {name: code for code, name in CODE_NAMES.items()}

NO_ID = 2**64 - 1
DIM_MAX = 65536
M_MIN = 2
M_MAX = 256
K_MAX = 100000
EF_MAX = 1000000

CREATE = 1 << 0
READONLY = 1 << 1
VERIFY = 1 << 2

METRICS = {"l2": 0, "ip": 1, "cosine": 2}
METRIC_NAMES = {v: k for k, v in METRICS.items()}
SYNC_MODES = {"always": 0, "interval": 1, "none": 2}

# ---- structs ---------------------------------------------------------------------

PROGRESS_FN = CFUNCTYPE(None, c_uint64, c_uint64, c_void_p)
FILTER_FN = CFUNCTYPE(c_bool, c_uint64, c_void_p)


class Options(Structure):
    """struct strata_options"""
    _fields_ = [
        ("dim", c_uint32),
        ("metric", c_int),  # strata_metric: an enum, int-sized
        ("M", c_uint32),
        ("ef_construction", c_uint32),
        ("ef_search", c_uint32),
        ("threads", c_uint32),
        ("seed", c_uint64),
        ("progress", PROGRESS_FN),
        ("progress_ctx", c_void_p),
        ("sync_mode", c_int),  # strata_sync_mode
        ("sync_interval_ms", c_uint32),
        ("memtable_max_vectors", c_uint64),
        ("memtable_max_bytes", c_uint64),
        ("wal_file_bytes", c_uint64),
        ("memtable_max_unindexed", c_uint64),
        ("merge_factor", c_uint32),
        ("max_segment_vectors", c_uint64),
        ("max_segments", c_uint32),
        ("merge_into_largest_pct", c_uint32),
        ("tombstone_pct", c_uint32),
        ("compaction_threads", c_uint32),
        ("disable_background_merges", c_bool),
    ]


class SearchOptions(Structure):
    """struct strata_search_options"""
    _fields_ = [
        ("ef", c_uint32),
        ("threads", c_uint32),
        ("allow_ids", c_void_p),
        ("allow_count", c_size_t),
        ("allow_bitmap", c_void_p),
        ("allow_bitmap_bits", c_uint64),
        ("deny_ids", c_void_p),
        ("deny_count", c_size_t),
        ("filter", FILTER_FN),
        ("filter_ctx", c_void_p),
    ]


class Stats(Structure):
    """struct strata_stats"""
    _fields_ = [
        ("dim", c_uint32),
        ("metric", c_int),
        ("M", c_uint32),
        ("ef_construction", c_uint32),
        ("ef_search", c_uint32),
        ("segments", c_uint32),
        ("vectors", c_uint64),
        ("max_level", c_uint32),
        ("mapped_bytes", c_uint64),
        ("file_bytes", c_uint64),
        ("searches", c_uint64),
        ("segments_searched", c_uint64),
        ("distance_evals", c_uint64),
        ("distance_evals_first", c_uint64),
        ("filtered_graph", c_uint64),
        ("filtered_scans", c_uint64),
        ("readonly", c_bool),
        ("tombstones", c_uint64),
        ("memtable_vectors", c_uint64),
        ("memtable_bytes", c_uint64),
        ("memtable_unindexed", c_uint64),
        ("flush_pending", c_bool),
        ("upserts", c_uint64),
        ("deletes", c_uint64),
        ("flushes", c_uint64),
        ("write_stalls", c_uint64),
        ("write_stall_ms", c_uint64),
        ("checkpoint_lsn", c_uint64),
        ("last_lsn", c_uint64),
        ("wal_files", c_uint32),
        ("wal_bytes", c_uint64),
        ("wal_fsyncs", c_uint64),
        ("wal_io_uring", c_bool),
        ("replay_records", c_uint64),
        ("replay_bytes", c_uint64),
        ("replay_torn_bytes", c_uint64),
        ("replay_seconds", c_double),
        ("write_error", c_int),
        ("write_error_detail", ctypes.c_char * 256),
        ("tier_segments", c_uint32 * 8),
        ("compaction_pending", c_uint32),
        ("compaction_running", c_bool),
        ("merges", c_uint64),
        ("merge_errors", c_uint64),
        ("last_merge_error", c_int),
        ("merge_seconds", c_double),
        ("merge_reused_nodes", c_uint64),
        ("merge_inserted_nodes", c_uint64),
        ("ingest_bytes", c_uint64),
        ("flush_bytes", c_uint64),
        ("compaction_bytes", c_uint64),
        ("write_amplification", c_double),
        ("obsolete_files", c_uint32),
        ("merges_behind", c_bool),
        ("merges_escalated", c_uint64),
    ]


# ---- prototypes ------------------------------------------------------------------
# Array arguments are declared c_void_p and passed as integer addresses
# (numpy's arr.ctypes.data): the cheapest conversion ctypes has.

_VP = c_void_p
_REQUIRED = {
    "strata_options_default": (None, [POINTER(Options)]),
    "strata_open": (c_int, [c_char_p, POINTER(Options), ctypes.c_uint, POINTER(c_void_p)]),
    "strata_close": (c_int, [_VP]),
    "strata_build": (c_int, [c_char_p, POINTER(Options), _VP, _VP, c_size_t]),
    "strata_search_options_default": (None, [POINTER(SearchOptions)]),
    "strata_search": (c_int, [_VP, _VP, c_size_t, c_uint32, POINTER(SearchOptions), _VP, _VP]),
    "strata_get": (c_int, [_VP, c_uint64, _VP]),
    "strata_get_many": (c_int, [_VP, _VP, c_size_t, _VP, _VP]),
    "strata_stats": (c_int, [_VP, POINTER(Stats)]),
    "strata_upsert": (c_int, [_VP, _VP, _VP, c_size_t]),
    "strata_delete": (c_int, [_VP, _VP, c_size_t]),
    "strata_sync": (c_int, [_VP]),
    "strata_flush": (c_int, [_VP]),
    "strata_strerror": (c_char_p, [c_int]),
    "strata_last_error_detail": (c_char_p, []),
    "strata_version": (c_char_p, []),
}
# Bound when the library has them; the binding says so when a call needs a missing one.
_OPTIONAL = {
    # Full merge into one segment; waits for it (issue 4).
    "strata_compact": (c_int, [_VP]),
}

def _declare(lib, name, proto):
    fn = getattr(lib, name)
    fn.restype, fn.argtypes = proto
    return fn


def _mtime(path):
    try:
        return os.path.getmtime(path)
    except OSError:  # a dangling link (a build relinking it): last
        return 0.0


def _candidates():
    """(description, loader) pairs in the documented order."""
    env = os.environ.get("STRATA_LIB")
    if env:
        return [("STRATA_LIB=" + env, env)], True
    out = [("installed libstrata.so.0", "libstrata.so.0")]
    found = ctypes.util.find_library("strata")
    if found and found != "libstrata.so.0":
        out.append(("installed " + found, found))
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))))
    paths = [os.path.join(repo, "build", "engine", "libstrata.so")]
    others = sorted(glob.glob(os.path.join(repo, "build*", "engine", "libstrata.so")),
                    key=lambda p: -_mtime(p))  # the newest build first
    paths += [p for p in others if p not in paths]
    out += [("build tree " + p, p) for p in paths if os.path.exists(p)]
    return out, False


def _load():
    tried = []
    cands, explicit = _candidates()
    for what, path in cands:
        try:
            lib = ctypes.CDLL(path)
        except OSError as e:
            tried.append("%s: %s" % (what, e))
            continue
        missing = [n for n in _REQUIRED if not hasattr(lib, n)]
        if missing:
            tried.append("%s: lacks %s (older than this binding)" % (what, ", ".join(missing)))
            continue
        return lib, path
    hint = "" if explicit else (
        "; build it (meson setup build && ninja -C build), install it, or set STRATA_LIB "
        "to the path of libstrata.so")
    raise ImportError("strata: no usable C library (%s)%s" % ("; ".join(tried) or "none found",
                                                               hint))


lib, path = _load()
for _name, _proto in _REQUIRED.items():
    globals()[_name] = _declare(lib, _name, _proto)
for _name, _proto in _OPTIONAL.items():
    globals()[_name] = _declare(lib, _name, _proto) if hasattr(lib, _name) else None


def strerror(code):
    return strata_strerror(code).decode("utf-8", "replace")  # noqa: F821 (declared above)


def last_error_detail():
    return strata_last_error_detail().decode("utf-8", "replace")  # noqa: F821


def version():
    return strata_version().decode("ascii", "replace")  # noqa: F821
