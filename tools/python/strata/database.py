"""The native API: strata.open() / strata.build() and the Database handle.

A Database wraps one ``strata_db *``. Every batch call hands numpy arrays to
the C library as they are when they already are C-ordered float32 (vectors)
or uint64 (ids); otherwise it converts once (``np.asarray`` / ``astype``),
never element by element in Python. Outputs are allocated once per call and
filled by C.

Threads: a Database may be used from any number of Python threads at once.
The C calls release the GIL, so searches of several threads run in parallel.
close() waits for the calls in progress, then releases the handle; calls after
it raise :class:`strata.Closed`.
"""

import os
import threading
import weakref
from ctypes import byref, c_void_p

import numpy as np

from . import _lib
from .errors import (Closed, DimensionError, InvalidArgument, MetricError, NotFound, Unsupported,
                     check, error_for)

__all__ = ["open", "build", "Database", "Filter", "cpu_count", "ClosingContext"]


def _affinity_cpus():
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


_CPUS = _affinity_cpus()


def cpu_count():
    """CPUs this process may run on (its affinity mask when strata was imported), at least 1."""
    return _CPUS


# ---- argument conversion (shared with hnswlib_compat) ----------------------------------


def as_ids(ids, what="ids"):
    """``ids`` as a 1-D C-contiguous uint64 array (a scalar becomes one id), copied only if needed.

    Integers only: bools, floats and strings are refused (InvalidArgument), and
    so are negative values and values above 2**64 - 1.
    """
    arr = np.asarray(ids)
    if arr.dtype.kind == "f" and not isinstance(ids, np.ndarray):
        arr = np.array(ids, dtype=object)  # numpy made floats of ints beyond int64: keep them exact
    if arr.ndim == 0:
        arr = arr.reshape(1)
    elif arr.ndim != 1:
        raise InvalidArgument(detail="%s must be one id or a 1-D array of ids, not a %d-D array"
                              % (what, arr.ndim))
    if arr.dtype == np.uint64:
        return arr if arr.flags.c_contiguous else np.ascontiguousarray(arr)
    if arr.size == 0:
        return np.empty(0, np.uint64)
    kind = arr.dtype.kind
    if kind == "u":
        return arr.astype(np.uint64)
    if kind == "i":
        low = arr.min()
        if low < 0:
            raise InvalidArgument(detail="%s: %d is negative; ids are 0..2**64-2" % (what, low))
        return arr.astype(np.uint64)
    if kind == "O":  # Python ints beyond int64 mixed with others: rare, checked one by one
        vals = arr.tolist()
        for v in vals:
            if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < 2**64:
                raise InvalidArgument(detail="%s: %r is not an id (an integer 0..2**64-2)"
                                      % (what, v))
        return np.array(vals, dtype=np.uint64)
    raise InvalidArgument(detail="%s must be integers, not %s" % (what, arr.dtype))


def as_matrix(x, dim, what="vectors"):
    """``x`` as a C-ordered float32 (n, dim) array; a 1-D vector of length dim is one row.

    No copy when ``x`` already is a C-contiguous float32 2-D array.
    """
    arr = x if isinstance(x, np.ndarray) and x.dtype == np.float32 else np.asarray(x, np.float32)
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    elif arr.ndim != 2:
        raise DimensionError(detail="%s must be a 1-D vector or a 2-D array, not %d-D"
                             % (what, arr.ndim))
    if arr.shape[1] != dim:
        raise DimensionError(detail="%s have %d components; the database's dim is %d"
                             % (what, arr.shape[1], dim))
    if not arr.flags.c_contiguous:
        arr = np.ascontiguousarray(arr)
    return arr


def as_count(value, what, low, high):
    """An integer argument in [low, high] (InvalidArgument otherwise)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidArgument(detail="%s must be an integer, not %r" % (what, value))
    value = int(value)
    if not low <= value <= high:
        raise InvalidArgument(detail="%s = %d is outside %d..%d" % (what, value, low, high))
    return value


# ---- a readers/writer lock: calls share it, close() takes it alone ---------------------


class RWLock:
    """Many shared holders or one exclusive holder; a waiting exclusive holder goes first.

    Not reentrant: a thread holding it must not ask for it again.
    """

    def __init__(self):
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0

    def acquire_shared(self):
        with self._cond:
            while self._writer or self._writers_waiting:
                self._cond.wait()
            self._readers += 1

    def release_shared(self):
        with self._cond:
            self._readers -= 1
            if self._readers == 0 and self._writers_waiting:
                self._cond.notify_all()

    def acquire_exclusive(self):
        with self._cond:
            self._writers_waiting += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._writers_waiting -= 1
            self._writer = True

    def release_exclusive(self):
        with self._cond:
            self._writer = False
            self._cond.notify_all()


# ---- filters ---------------------------------------------------------------------------


class Filter:
    """A search filter, prepared once and reusable across searches.

    A result id must pass every part that is given:

    allow: ids that may be returned (any integer array-like; sorted and
           de-duplicated here once).
    deny:  ids that must not be returned.
    mask:  a boolean array: id ``i`` passes when ``i < len(mask)`` and ``mask[i]``
           (packed here into the C library's bitmap; cheapest for dense ids).
    fn:    a Python callable ``fn(id) -> bool``. The library calls it from its
           search threads; each call takes the GIL, so a callable filter is far
           slower than the array forms and gains nothing from threads. An
           exception raised by ``fn`` stops letting ids through and is raised
           again by the search once it returns.

    Filters act inside the graph walk (rejected vectors are walked through,
    never returned), so recall does not collapse when few ids pass.
    """

    __slots__ = ("allow", "deny", "bitmap", "bitmap_bits", "fn")

    def __init__(self, allow=None, deny=None, mask=None, fn=None):
        self.allow = None if allow is None else np.unique(as_ids(allow, "allow"))
        self.deny = None if deny is None else np.unique(as_ids(deny, "deny"))
        self.bitmap = None
        self.bitmap_bits = 0
        if mask is not None:
            m = np.asarray(mask)
            if m.dtype != np.bool_ or m.ndim != 1:
                raise InvalidArgument(detail="mask must be a 1-D boolean array")
            packed = np.packbits(m, bitorder="little")
            words = np.zeros((packed.size + 7) // 8 * 8, np.uint8)
            words[:packed.size] = packed
            self.bitmap = words.view("<u8")
            self.bitmap_bits = m.size
        if fn is not None and not callable(fn):
            raise InvalidArgument(detail="fn must be callable")
        self.fn = fn

    @classmethod
    def of(cls, obj):
        """None, a Filter, a callable, a boolean mask or an array-like of allowed ids."""
        if obj is None or isinstance(obj, cls):
            return obj
        if callable(obj):
            return cls(fn=obj)
        if isinstance(obj, np.ndarray) and obj.dtype == np.bool_:
            return cls(mask=obj)
        return cls(allow=obj)

    def apply(self, so):
        """Set the fields of SearchOptions ``so``; returns what must outlive the call."""
        if self.allow is not None:
            so.allow_ids = self.allow.ctypes.data if self.allow.size else _EMPTY_IDS.ctypes.data
            so.allow_count = self.allow.size
        if self.deny is not None and self.deny.size:
            so.deny_ids = self.deny.ctypes.data
            so.deny_count = self.deny.size
        if self.bitmap is not None:
            so.allow_bitmap = self.bitmap.ctypes.data
            so.allow_bitmap_bits = self.bitmap_bits
        if self.fn is None:
            return None
        call = _FilterCall(self.fn)
        so.filter = call.c_fn
        return call


_EMPTY_IDS = np.zeros(1, np.uint64)  # allow_ids non-NULL with count 0: nothing passes


class _FilterCall:
    """The C callback of one search around a Python callable; keeps its first exception."""

    def __init__(self, fn):
        self.error = None

        def trampoline(id_, _ctx):
            if self.error is not None:
                return False
            try:
                return bool(fn(id_))
            except BaseException as e:  # noqa: B036 - re-raised by the search
                self.error = e
                return False

        self.c_fn = _lib.FILTER_FN(trampoline)


# ---- options ---------------------------------------------------------------------------

_U32 = 2**32 - 1
_U64 = 2**64 - 1
_OPTION_RANGES = {
    "M": (_lib.M_MIN, _lib.M_MAX),
    "ef_construction": (1, _U32),
    "ef_search": (0, _lib.EF_MAX),
    "threads": (0, _U32),
    "seed": (0, _U64),
    "sync_interval_ms": (0, _U32),
    "memtable_max_vectors": (1, _U64),
    "memtable_max_bytes": (1, _U64),
    "wal_file_bytes": (1, _U64),
    "memtable_max_unindexed": (1, _U64),
    "merge_factor": (2, 64),
    "max_segment_vectors": (0, _U64),
    "max_segments": (0, _U32),
    "merge_into_largest_pct": (0, 1000),
    "tombstone_pct": (1, 100),
    "compaction_threads": (0, _U32),
}


def metric_code(metric):
    if isinstance(metric, str) and metric in _lib.METRICS:
        return _lib.METRICS[metric]
    if isinstance(metric, (int, np.integer)) and not isinstance(metric, bool) \
            and int(metric) in _lib.METRIC_NAMES:
        return int(metric)
    raise MetricError(detail="metric %r: use 'l2', 'ip' or 'cosine'" % (metric,))


_BUILD_OPTIONS = ("M", "ef_construction", "ef_search", "threads", "seed")


def make_options(dim=0, metric=None, options=None, caller="open", allowed=None):
    """strata_options from the defaults, dim, metric and keyword options (names in ``allowed``)."""
    opts = _lib.Options()
    _lib.strata_options_default(byref(opts))
    opts.dim = as_count(dim, "dim", 0, _lib.DIM_MAX) if dim else 0
    if metric is not None:
        opts.metric = metric_code(metric)
    for name, value in (options or {}).items():
        if allowed is not None and name not in allowed:
            raise TypeError("%s() got an unexpected keyword argument %r" % (caller, name))
        if name == "sync":
            if value not in _lib.SYNC_MODES:
                raise InvalidArgument(detail="sync=%r: use 'always', 'interval' or 'none'"
                                      % (value,))
            opts.sync_mode = _lib.SYNC_MODES[value]
        elif name in _OPTION_RANGES:
            setattr(opts, name, as_count(value, name, *_OPTION_RANGES[name]))
        else:
            raise TypeError("%s() got an unexpected keyword argument %r" % (caller, name))
    return opts


# ---- open / build ----------------------------------------------------------------------


def _open_raw(path_b, opts, flags):
    handle = c_void_p()
    check(_lib.strata_open(path_b, byref(opts), flags, byref(handle)))
    return handle.value


def open(path, dim=None, metric=None, create=True, readonly=False, verify=False, **options):  # noqa: A001
    """Open (or create) the database in directory ``path``; returns a :class:`Database`.

    dim, metric: the schema. To create a database, ``dim`` is required and
        ``metric`` is ``'l2'`` (default), ``'ip'`` or ``'cosine'``. For an
        existing database they may be omitted (taken from it); when given they
        are checked against it (DimensionError / MetricError).
    create: create an empty database if ``path`` holds none (else NotFound).
    readonly: no writes, no lock, no write permission needed; many processes
        may share the directory with one writer, and the handle sees the last
        flushed state. A read-only open never creates (``create`` is ignored).
    verify: also check every checksum and every graph edge (O(size)).
    options: M, ef_construction (fixed at creation), ef_search (this handle's
        default beam width), threads, seed, and the write options of this
        handle: sync ('always' (default): a write returns once durable;
        'interval'; 'none': only at flush/sync/close), sync_interval_ms,
        memtable_max_vectors, memtable_max_bytes, wal_file_bytes,
        memtable_max_unindexed; and its compactor's: merge_factor,
        max_segment_vectors, max_segments, merge_into_largest_pct,
        tombstone_pct, compaction_threads. See engine/strata.h for each.

    Raises a strata.Error subclass (NotFound, Busy, DimensionError, Corrupt ...).
    """
    path = os.fspath(path)
    path_b = os.fsencode(path)
    flags = _lib.READONLY if readonly else (_lib.CREATE if create else 0)
    if verify:
        flags |= _lib.VERIFY
    if dim is not None and metric is None:
        # A stated dim with an unstated metric: open what is there and compare
        # dim here (the C library compares the metric whenever dim is given);
        # create with the default metric only when there is nothing.
        opts = make_options(0, None, options)
        try:
            handle = _open_raw(path_b, opts, flags & ~_lib.CREATE)
        except NotFound:
            if not flags & _lib.CREATE:
                raise
            opts = make_options(dim, "l2", options)
            handle = _open_raw(path_b, opts, flags)
        db = Database(handle, path, readonly)
        if db.dim != dim:
            db.close()
            raise DimensionError(detail="%s: the database has dim %d, dim=%d was asked"
                                 % (path, db.dim, dim))
        return db
    opts = make_options(dim or 0, metric, options)
    return Database(_open_raw(path_b, opts, flags), path, readonly)


def build(path, vectors, ids=None, metric="l2", **options):
    """Bulk-build a new database in directory ``path`` (absent or empty) from ``vectors``.

    vectors: (n, dim) floats; ids: n distinct integers, or None for 0..n-1.
    options: M, ef_construction, ef_search, threads (build threads; 0 = all
    cores), seed. One segment, no WAL: the fastest way to make a database to
    ship. Nothing is left at ``path`` if it fails. Open it with strata.open().
    """
    arr = np.asarray(vectors, np.float32) if not (
        isinstance(vectors, np.ndarray) and vectors.dtype == np.float32) else vectors
    if arr.ndim != 2:
        raise DimensionError(detail="vectors must be a 2-D array (n, dim), not %d-D" % arr.ndim)
    vec = as_matrix(arr, arr.shape[1])
    opts = make_options(vec.shape[1], metric, options, caller="build", allowed=_BUILD_OPTIONS)
    if ids is not None:
        ids = as_ids(ids)
        if ids.size != vec.shape[0]:
            raise InvalidArgument(detail="%d ids for %d vectors" % (ids.size, vec.shape[0]))
    check(_lib.strata_build(os.fsencode(os.fspath(path)), byref(opts),
                            None if ids is None else ids.ctypes.data, vec.ctypes.data,
                            vec.shape[0]))


class _Handle:
    """The strata_db pointer, shared by a Database and its finalizer (None once closed)."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def close(self):
        """weakref.finalize callback: a Database dropped (or left open at exit) without close()."""
        h, self.value = self.value, None
        if h is not None:
            _lib.strata_close(h)


_STATS_FIELDS = [f[0] for f in _lib.Stats._fields_]


class ClosingContext:
    """``with obj:`` closes obj at the end (Database, hnswlib_compat.Index)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Database(ClosingContext):
    """An open strata database. Create with :func:`strata.open`.

    Usable as a context manager (``with strata.open(...) as db:``); closed on
    exit. A Database that is garbage-collected (or left open at interpreter
    exit) is closed then, which syncs its write-ahead log.
    """

    def __init__(self, handle, path, readonly):
        self._handle = _Handle(handle)
        self._lock = RWLock()
        self._finalizer = weakref.finalize(self, _Handle.close, self._handle)
        self.path = path
        self.readonly = bool(readonly)
        st = self._raw_stats(handle)
        self.dim = st.dim
        self.metric = _lib.METRIC_NAMES.get(st.metric, st.metric)
        self.M = st.M
        self.ef_construction = st.ef_construction
        self.ef_search = st.ef_search

    # -- handle use: shared while a call runs; close() waits for them ------------------

    def _enter(self):
        self._lock.acquire_shared()
        h = self._handle.value
        if h is None:
            self._lock.release_shared()
            raise Closed(detail="%s: the database is closed" % self.path)
        return h

    def _leave(self):
        self._lock.release_shared()

    def _run(self, fn, *args):
        """check(fn(handle, *args)) while holding the handle."""
        h = self._enter()
        try:
            check(fn(h, *args))
        finally:
            self._leave()

    @property
    def closed(self):
        return self._handle.value is None

    def close(self):
        """Close the database: waits for calls in progress; later calls raise Closed.

        A writable handle syncs its write-ahead log (writes made with
        sync='none'/'interval' are durable once close returns). Closing twice is
        harmless.
        """
        self._lock.acquire_exclusive()
        try:
            h, self._handle.value = self._handle.value, None
            if h is None:
                return
            self._finalizer.detach()
            check(_lib.strata_close(h))
        finally:
            self._lock.release_exclusive()

    def __repr__(self):
        state = "closed" if self.closed else ("read-only" if self.readonly else "writable")
        return "<strata.Database %r dim=%d metric=%s %s>" % (self.path, self.dim, self.metric,
                                                              state)

    # -- writes -------------------------------------------------------------------------

    def upsert(self, ids, vectors):
        """Insert or replace ``vectors[i]`` under ``ids[i]``; newest write wins.

        ids: one id or n ids (integers 0..2**64-2); vectors: (n, dim) or one
        (dim,) vector. Durable when it returns under sync='always' (default);
        visible to every later search at once.
        """
        ids = as_ids(ids)
        vec = as_matrix(vectors, self.dim)
        if ids.size != vec.shape[0]:
            raise InvalidArgument(detail="%d ids for %d vectors" % (ids.size, vec.shape[0]))
        self._run(_lib.strata_upsert, ids.ctypes.data, vec.ctypes.data, ids.size)

    def delete(self, ids):
        """Delete ``ids`` (one id or many); absent ids are ignored."""
        ids = as_ids(ids)
        self._run(_lib.strata_delete, ids.ctypes.data, ids.size)

    def flush(self):
        """Write the fresh vectors and deletions into segment files now; waits for it."""
        self._run(_lib.strata_flush)

    def sync(self):
        """Make every acknowledged write durable (for sync='none' / 'interval')."""
        self._run(_lib.strata_sync)

    def compact(self):
        """Merge every segment into one and wait for it (strata_compact).

        Raises strata.Unsupported when the loaded C library has no
        strata_compact (built before the compactor existed).
        """
        fn = _lib.strata_compact
        if fn is None:
            raise Unsupported(detail="%s has no strata_compact: this library was built without "
                                     "the compactor; rebuild strata or point STRATA_LIB at a newer "
                                     "libstrata" % _lib.path)
        self._run(fn)

    # -- reads --------------------------------------------------------------------------

    def _get_many(self, ids, vectors_out, found_out):
        self._run(_lib.strata_get_many, ids.ctypes.data, ids.size,
                  None if vectors_out is None else vectors_out.ctypes.data,
                  None if found_out is None else found_out.ctypes.data)

    def get(self, ids):
        """The stored vectors of ``ids``: (n, dim) float32, or (dim,) for one scalar id.

        Every id must exist (NotFound names the first missing one); see lookup()
        for the tolerant form. With the cosine metric these are the normalised
        vectors.
        """
        scalar = np.ndim(ids) == 0
        arr = as_ids(ids)
        out = np.empty((arr.size, self.dim), np.float32)
        self._get_many(arr, out, None)
        return out[0] if scalar else out

    def lookup(self, ids):
        """(vectors, found): like get(), but a missing id gives found[i] False and a zero row."""
        arr = as_ids(ids)
        out = np.empty((arr.size, self.dim), np.float32)
        found = np.empty(arr.size, np.uint8)
        self._get_many(arr, out, found)
        return out, found.view(np.bool_)

    def contains(self, ids):
        """Whether each id is in the database: a bool array (a bool for one scalar id)."""
        scalar = np.ndim(ids) == 0
        arr = as_ids(ids)
        found = np.empty(arr.size, np.uint8)
        self._get_many(arr, None, found)
        found = found.view(np.bool_)
        return bool(found[0]) if scalar else found

    def __contains__(self, id_):
        try:
            return self.contains(id_)
        except InvalidArgument:
            return False

    def __len__(self):
        return self.stats()["vectors"]

    def search(self, queries, k=10, ef=None, filter=None, threads=None):  # noqa: A002
        """The k nearest live vectors of each query: (ids, distances), both (nq, k).

        queries: (nq, dim) or one (dim,) vector (then nq = 1). ids are uint64,
        distances float32, closest first; slots beyond what exists (or passes
        the filter) hold strata.NO_ID and +inf. Distances follow hnswlib: l2 is
        the squared distance, ip 1 - dot, cosine 1 - cosine similarity.
        ef: beam width (None: the handle's default; raised to k if smaller).
        filter: None, a strata.Filter, a callable id -> bool, a boolean mask
            indexed by id, or an array-like of allowed ids (see Filter).
        threads: threads for the batch (None: every CPU this process may use,
            one for small batches). Answers do not depend on it.
        """
        q = as_matrix(queries, self.dim, "queries")
        if type(k) is not int or not 1 <= k <= _lib.K_MAX:  # (fast path first: a plain int)
            k = as_count(k, "k", 1, _lib.K_MAX)
        nq = q.shape[0]
        so = _lib.SearchOptions()
        _lib.strata_search_options_default(byref(so))
        if ef is not None:
            so.ef = ef if type(ef) is int and 0 <= ef <= _lib.EF_MAX else \
                as_count(ef, "ef", 0, _lib.EF_MAX)
        if threads is None:
            threads = _CPUS if nq > 4 * _CPUS else 1  # threads cost more than tiny batches
        so.threads = threads if type(threads) is int and 0 <= threads <= _U32 else \
            as_count(threads, "threads", 0, _U32)
        flt = call = None
        if filter is not None:
            flt = Filter.of(filter)  # holds the arrays so.allow_ids etc. point into: keep it
            call = flt.apply(so)
        # One buffer for both outputs: one address to take (ids, then distances).
        n = nq * k
        buf = np.empty(n * 12, np.uint8)
        ids_out = buf[:n * 8].view(np.uint64).reshape(nq, k)
        dists_out = buf[n * 8:].view(np.float32).reshape(nq, k)
        out = buf.ctypes.data
        h = self._enter()
        try:
            rc = _lib.strata_search(h, q.ctypes.data, nq, k, byref(so), out, out + n * 8)
            detail = _lib.last_error_detail() if rc else ""
        finally:
            self._leave()
        del flt  # only now may the filter's arrays go
        if call is not None and call.error is not None:
            raise call.error
        if rc:
            raise error_for(rc, detail)
        return ids_out, dists_out

    @staticmethod
    def _raw_stats(h):
        st = _lib.Stats()
        check(_lib.strata_stats(h, byref(st)))
        return st

    def stats(self):
        """A dict of the handle's counters (struct strata_stats; metric as its name)."""
        h = self._enter()
        try:
            st = self._raw_stats(h)
        finally:
            self._leave()
        out = {name: getattr(st, name) for name in _STATS_FIELDS}
        out["metric"] = _lib.METRIC_NAMES.get(out["metric"], out["metric"])
        return out
