"""hnswlib's Python ``Index`` on strata: change the import, keep the code.

::

    from strata import hnswlib_compat as hnswlib      # was: import hnswlib

    p = hnswlib.Index(space="l2", dim=128)
    p.init_index(max_elements=10000, ef_construction=200, M=16)
    p.add_items(data, ids)
    p.set_ef(50)
    labels, distances = p.knn_query(queries, k=10)    # uint64 (n, k), float32 (n, k)
    p.save_index("index.strata")                      # a strata database directory
    q = hnswlib.Index(space="l2", dim=128)
    q.load_index("index.strata")                      # O(1): mapped, not read

Every method and property of ``hnswlib.Index`` that hnswlib 0.8's README lists is here, with
its argument names, defaults, return shapes and dtypes, and the exception
types (and messages) hnswlib raises for the same misuse: RuntimeError for k
beyond the live elements, a full index, an unknown label, an uninitialised
index; ValueError for a bad ``get_items`` argument.

How it works: an Index owns a private strata database in a temporary
directory (``$TMPDIR/strata-hnswlib-*``, removed when the Index is closed or
garbage-collected), written with ``sync='none'`` (hnswlib is not durable
either: nothing is fsynced until save_index). add_items upserts into it;
the first batch added to an empty Index is bulk-built on ``num_threads``
threads instead. knn_query is one strata_search over the whole batch.

Where strata differs from hnswlib, and what this layer does about it:

* save_index(path) writes a strata database **directory** at ``path`` (not a
  single file): the segment files, the MANIFEST and ``hnswlib-compat.npz`` (the
  labels, the marked-deleted elements with their vectors, max_elements). Any
  strata tool or ``strata.open(path)`` reads it; ``strata pack`` ships it as
  one file (a bundle carries the database files only: an index loaded from an
  unpacked bundle has no marked-deleted elements to unmark, and rebuilds its
  label list from the database, see get_ids_list). An existing ``path`` is
  replaced only if it is a strata database directory (or an empty
  directory), atomically where the file system allows; a regular file there
  (say an old hnswlib ``.bin``) is never overwritten: RuntimeError.
* load_index(path) opens the directory read-only in O(1) (nothing is read
  into memory) and serves knn_query from the mapped files; the first change
  (add_items, mark_deleted, ...) copies the database into the Index's private
  directory, so ``path`` is never modified behind save_index's back (hnswlib
  semantics). A directory whose write-ahead log may hold unflushed writes
  (written by strata.open) is copied and its log replayed at load.
  ``load_index`` also reads hnswlib's own index files (the ``.bin`` that
  hnswlib's save_index writes): the vectors, labels and deletion marks are
  imported into a new strata graph (built on all cores), so an existing
  hnswlib index is migrated by loading it here and saving it again.
* The metric is fixed when a strata database is created: loading a database
  into an Index of another space raises RuntimeError (hnswlib keeps the data
  and changes the distance function).
* mark_deleted removes the element from the database (searches, get_items and
  strata.open() readers no longer see it) and keeps its vector in the Index,
  so unmark_deleted restores it. Marked elements still count in
  element_count / get_current_count and get_ids_list, as in hnswlib.
* add_items checks max_elements for the whole batch before writing anything
  (hnswlib adds elements up to the limit, then raises). Vectors holding NaN or
  infinity are refused (strata.NonFinite, a ValueError); hnswlib stores them.
  Labels must be integers 0..2**64-2 (hnswlib wraps negative numbers).
* add_items returns once every element is in the graph, as hnswlib's does, so
  later knn_query answers do not depend on timing.
* M must be within 2..256 (strata's limits) and dim within 1..65536.
* Thread safety is wider than hnswlib's: knn_query, get_items and the other
  reads may run in any number of threads (in parallel, the GIL is released)
  while add_items / mark_deleted / resize_index / save_index are serialised
  against them.
* Failures hnswlib cannot have (a full disk, a damaged file) raise strata.Error
  subclasses with the C error code.
* Pickling (and ``Index(index)``, ``Index(params)``) carries the database files
  themselves, so the copy answers exactly as the original.
* get_ids_list returns the labels sorted ascending (hnswlib: hash order).
* hnswlib's BFIndex (brute force) is not provided.
"""

import fcntl
import io
import os
import shutil
import sys
import tempfile
import time
import weakref

import numpy as np

from . import _dircopy, _lib
from .database import ClosingContext, RWLock, as_ids, cpu_count
from .database import open as _open
from .database import build as _build
from .errors import Busy, Error

__all__ = ["Index"]

META_NAME = "hnswlib-compat.npz"
META_VERSION = 1
SER_VERSION = 1            # version of the pickled state of this module
_SPACES = ("l2", "ip", "cosine")
_DEFAULT_EF = 10           # hnswlib's default ef (and the ef after load_index)
_BULK_MIN = 1024           # a first batch at least this large is bulk-built
_INDEX_WAIT_S = 10.0       # give up waiting for the indexer after this long without progress

_MSG_NOT_INIT = "Index is not initialized: call init_index() or load_index() first"
_MSG_LIMIT = "The number of elements exceeds the specified limit"
_MSG_NOT_FOUND = "Label not found"
_MSG_KNN = "Cannot return the results in a contiguous 2D array. Probably ef or M is too small"


def _data_rows(data, dim):
    """hnswlib's view of input vectors: float32, 1-D (one row) or 2-D, C-ordered."""
    arr = data if isinstance(data, np.ndarray) and data.dtype == np.float32 else \
        np.asarray(data, dtype=np.float32)
    if arr.ndim not in (1, 2):
        raise RuntimeError("Input vector data wrong shape. Number of dimensions %d. "
                           "Data must be a 1D or 2D array." % arr.ndim)
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    if arr.shape[1] != dim:
        raise RuntimeError("Wrong dimensionality of the vectors")
    return arr if arr.flags.c_contiguous else np.ascontiguousarray(arr)


def _size(value, what):
    """A size_t argument: pybind11 refuses negatives and non-integers with TypeError."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise TypeError("%s must be a non-negative integer, not %r" % (what, value))
    return int(value)


class _LabelLog:
    """Every label of the Index, live and marked deleted: for get_ids_list and save_index.

    Appends are O(batch); the sorted array is rebuilt when asked for (and when
    many batches have piled up). ``loader`` defers reading the saved labels
    until they are needed, so that load_index stays O(1).
    """

    def __init__(self, labels=None, loader=None):
        self._loader = loader
        self._base = None if loader is not None else (
            np.unique(as_ids(labels)) if labels is not None else np.empty(0, np.uint64))
        self._added = []
        self._removed = []

    def add(self, labels):
        if labels.size:
            self._added.append(np.array(labels, dtype=np.uint64))
            if len(self._added) > 256:
                self.array()

    def remove(self, labels):
        if len(labels):
            self._removed.append(np.asarray(labels, dtype=np.uint64))

    def array(self):
        if self._base is None:
            self._base, self._loader = np.unique(as_ids(self._loader())), None
        if self._added or self._removed:
            base = np.unique(np.concatenate([self._base] + self._added))
            if self._removed:
                base = np.setdiff1d(base, np.concatenate(self._removed), assume_unique=False)
            self._base, self._added, self._removed = base, [], []
        return self._base


def _npy_rows(npz, name):
    """Rows of member ``name`` of an open NpzFile, from its header alone."""
    with npz.zip.open(name + ".npy") as f:
        version = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) \
            else np.lib.format.read_array_header_2_0
        shape = read(f)[0]
    if len(shape) != 1:
        raise ValueError("%s has shape %s" % (name, shape))
    return shape[0]


class _Resources:
    """What an Index must release: its Database, the private directory it owns, and
    the metadata file of a loaded index while its labels are not read yet."""

    def __init__(self):
        self.db = None
        self.private_dir = None
        self.meta = None
        self.source_manifest = None  # MANIFEST bytes of a directory read in place

    def release(self):
        db, self.db = self.db, None
        meta, self.meta = self.meta, None
        self.source_manifest = None
        try:
            if meta is not None:
                meta.close()
            if db is not None:
                db.close()
        finally:
            d, self.private_dir = self.private_dir, None
            if d is not None:
                shutil.rmtree(d, ignore_errors=True)


class Index(ClosingContext):
    """hnswlib.Index on a strata database. See the module documentation for the differences.

    Index(space, dim); Index(params) from the dict of a pickled state;
    Index(index) a copy of another Index.
    """

    def __init__(self, *args, **kwargs):
        self._lock = RWLock()
        self._res = _Resources()
        self._finalizer = weakref.finalize(self, _Resources.release, self._res)
        self._inited = False
        self._ef = _DEFAULT_EF
        self._num_threads = cpu_count()
        self._max_elements = 0
        self._seed = 100
        self._allow_replace = False
        self._cur_l = 0
        self._deleted = {}
        self._labels = None
        if len(args) + len(kwargs) == 1 and (
                (args and isinstance(args[0], (dict, Index))) or
                set(kwargs) <= {"params", "index"}):
            src = args[0] if args else kwargs.get("params", kwargs.get("index"))
            state = src.__getstate__() if isinstance(src, Index) else src
            self.__setstate__(state, _fresh=False)
            return
        space, dim = self._space_dim(*args, **kwargs)
        if space not in _SPACES:
            raise RuntimeError("Space name must be one of l2, ip, or cosine.")
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or \
                not 1 <= dim <= _lib.DIM_MAX:
            raise ValueError("dim must be an integer in 1..%d, not %r" % (_lib.DIM_MAX, dim))
        self._space = space
        self._dim = int(dim)

    @staticmethod
    def _space_dim(space, dim):
        return space, dim

    # ---- properties (hnswlib's names) -------------------------------------------------

    @property
    def space(self):
        return self._space

    @property
    def dim(self):
        return self._dim

    @property
    def M(self):  # noqa: N802 (hnswlib's name)
        return self._res.db.M if self._inited else 0

    @property
    def ef_construction(self):
        return self._res.db.ef_construction if self._inited else 0

    @property
    def ef(self):
        return self._ef

    @ef.setter
    def ef(self, value):
        self.set_ef(value)

    @property
    def num_threads(self):
        return self._num_threads

    @num_threads.setter
    def num_threads(self, value):
        self.set_num_threads(value)

    @property
    def max_elements(self):
        return self._max_elements if self._inited else 0

    @property
    def element_count(self):
        if not self._inited:
            return 0
        self._lock.acquire_shared()
        try:
            return self._count()
        finally:
            self._lock.release_shared()

    def get_max_elements(self):
        self._require_init()
        return self._max_elements

    def get_current_count(self):
        self._require_init()
        return self.element_count

    def __repr__(self):
        return "<strata.hnswlib_compat.Index(space='%s', dim=%d)>" % (self._space, self._dim)

    # ---- lifecycle --------------------------------------------------------------------

    def _require_init(self):
        if not self._inited:
            raise RuntimeError(_MSG_NOT_INIT)

    def _count(self):
        """Elements, live and marked deleted (hnswlib's cur_element_count). Lock held."""
        return self._res.db.stats()["vectors"] + len(self._deleted)

    def _private_dir(self):
        return tempfile.mkdtemp(prefix="strata-hnswlib-")

    def _open_private(self, path, create, M=16, ef_construction=200):  # noqa: N803
        return _open(path, dim=self._dim, metric=self._space, create=create, M=M,
                     ef_construction=ef_construction, seed=self._seed, sync="none",
                     threads=self._num_threads if self._num_threads > 0 else 0)

    def init_index(self, max_elements, M=16, ef_construction=200, random_seed=100,  # noqa: N803
                   allow_replace_deleted=False):
        """A new empty index for up to max_elements elements."""
        max_elements = _size(max_elements, "max_elements")
        M = _size(M, "M")  # noqa: N806
        ef_construction = _size(ef_construction, "ef_construction")
        random_seed = _size(random_seed, "random_seed")
        if not _lib.M_MIN <= M <= _lib.M_MAX:
            raise ValueError("M = %d: strata supports %d..%d" % (M, _lib.M_MIN, _lib.M_MAX))
        if ef_construction < 1:
            raise ValueError("ef_construction must be at least 1")
        self._lock.acquire_exclusive()
        try:
            if self._inited:
                raise RuntimeError("The index is already initiated.")
            self._seed = random_seed
            d = self._private_dir()
            try:
                db = self._open_private(d, True, M, ef_construction)
            except BaseException:
                shutil.rmtree(d, ignore_errors=True)
                raise
            self._res.db, self._res.private_dir = db, d
            self._max_elements = max_elements
            self._allow_replace = bool(allow_replace_deleted)
            self._cur_l = 0
            self._deleted = {}
            self._labels = _LabelLog()
            self._inited = True
        finally:
            self._lock.release_exclusive()

    def close(self):
        """Release the database and remove the private directory now (not in hnswlib).

        The Index is uninitialised afterwards; load_index or init_index may be
        called on it again. Garbage collection does the same.
        """
        self._lock.acquire_exclusive()
        try:
            self._res.release()
            self._inited = False
        finally:
            self._lock.release_exclusive()

    def set_ef(self, ef):
        """Beam width of knn_query (raised to k when smaller)."""
        ef = _size(ef, "ef")
        if ef > _lib.EF_MAX:
            raise ValueError("ef = %d: strata supports at most %d" % (ef, _lib.EF_MAX))
        self._ef = ef

    def set_num_threads(self, num_threads):
        """Default threads of add_items (bulk build) and knn_query; <= 0: all CPUs."""
        if isinstance(num_threads, bool) or not isinstance(num_threads, (int, np.integer)):
            raise TypeError("num_threads must be an integer")
        self._num_threads = int(num_threads)

    def _threads(self, num_threads, rows):
        n = num_threads if num_threads > 0 else self._num_threads
        if n <= 0:
            n = cpu_count()
        return 1 if rows <= n * 4 else n  # as hnswlib: threads cost more than small batches

    # ---- writes -----------------------------------------------------------------------

    def _ensure_writable(self):
        """Before the first change of a loaded index: copy it into a private directory."""
        db = self._res.db
        if not db.readonly:
            return
        d = self._private_dir()
        try:
            _dircopy.snapshot(db.path, _dircopy.DirSink(d), expect=self._res.source_manifest)
            new = self._open_private(d, False)
        except BaseException:
            shutil.rmtree(d, ignore_errors=True)
            raise
        old = self._res.db
        self._res.db, self._res.private_dir, self._res.source_manifest = new, d, None
        old.close()

    def _wait_indexed(self):
        """Until the background indexer has every fresh vector in the graph (see module doc)."""
        db = self._res.db
        last, since, pause = None, time.monotonic(), 0.0002
        while True:
            left = db.stats()["memtable_unindexed"]
            if left == 0:
                return
            now = time.monotonic()
            if left != last:
                last, since = left, now
            elif now - since > _INDEX_WAIT_S:
                return  # no progress (out of memory?): the tail stays searched exactly
            time.sleep(pause)
            pause = min(pause * 2, 0.005)

    def _bulk_load(self, labels, vectors, threads):
        """The first batch of an empty Index: one multi-threaded build instead of upserts."""
        res, db = self._res, self._res.db
        M, efc, d = db.M, db.ef_construction, res.private_dir  # noqa: N806
        db.close()
        res.db = None
        shutil.rmtree(d)
        try:
            _build(d, vectors, labels, metric=self._space, M=M, ef_construction=efc,
                   seed=self._seed, threads=threads)
        finally:
            os.makedirs(d, exist_ok=True)  # an empty directory if the build failed
            res.db = self._open_private(d, True, M, efc)

    def add_items(self, data, ids=None, num_threads=-1, replace_deleted=False):
        """Insert (or update) the rows of data under ids (default: consecutive labels)."""
        self._require_init()
        rows_arr = _data_rows(data, self._dim)
        rows = rows_arr.shape[0]
        if ids is not None:
            id_arr = np.asarray(ids)
            if not ((id_arr.ndim == 1 and id_arr.shape[0] == rows) or
                    (id_arr.ndim == 0 and rows == 1)):
                raise RuntimeError("The input label shape %d does not match the input data "
                                   "vector shape %d" % (id_arr.ndim, rows))
            labels = as_ids(id_arr, "ids")
        else:
            labels = np.arange(self._cur_l, self._cur_l + rows, dtype=np.uint64)
        if rows == 0:
            return
        if replace_deleted and not self._allow_replace:
            raise RuntimeError("Replacement of deleted elements is disabled in constructor")
        # Rows sharing a label: the last one wins, as hnswlib's sequential updates.
        uniq, first_rev = np.unique(labels[::-1], return_index=True)
        if uniq.size != rows:
            keep = np.sort(rows - 1 - first_rev)
            labels, rows_arr = labels[keep], rows_arr[keep]
        self._lock.acquire_exclusive()
        try:
            self._add_locked(labels, rows_arr, num_threads, replace_deleted)
            self._cur_l += rows
        finally:
            self._lock.release_exclusive()

    def _add_locked(self, labels, vectors, num_threads, replace_deleted):
        db = self._res.db
        live = db.contains(labels)
        if self._deleted:
            dead_keys = np.fromiter(self._deleted, dtype=np.uint64, count=len(self._deleted))
            was_deleted = np.isin(labels, dead_keys)
        else:
            was_deleted = np.zeros(labels.size, bool)
        if was_deleted.any() and self._allow_replace and not replace_deleted:
            raise RuntimeError("Can't use addPoint to update deleted elements if replacement "
                               "of deleted elements is enabled.")
        new = labels[~live & ~was_deleted]
        vacancies = []
        if replace_deleted and new.size:
            batch = set(labels[was_deleted].tolist())
            vacancies = [lab for lab in self._deleted if lab not in batch][:new.size]
        if self._count() + new.size - len(vacancies) > self._max_elements:
            raise RuntimeError(_MSG_LIMIT)
        self._ensure_writable()
        db = self._res.db
        if self._count() == 0 and labels.size >= _BULK_MIN:
            self._bulk_load(labels, vectors, self._threads(num_threads, 1 << 30))
        else:
            db.upsert(labels, vectors)
            self._wait_indexed()
        for lab in labels[was_deleted].tolist():
            del self._deleted[lab]          # updated: live again (hnswlib unmarks it)
        for lab in vacancies:
            del self._deleted[lab]          # replaced: gone for good
        if self._labels is not None:
            self._labels.remove(vacancies)
            self._labels.add(new)

    def _one_label(self, label):
        return int(as_ids(_size(label, "label"), "label")[0])

    def mark_deleted(self, label):
        """Hide an element from knn_query and get_items; unmark_deleted brings it back."""
        self._require_init()
        label = self._one_label(label)
        self._lock.acquire_exclusive()
        try:
            if label in self._deleted:
                raise RuntimeError("The requested to delete element is already deleted")
            vec, found = self._res.db.lookup([label])
            if not found[0]:
                raise RuntimeError(_MSG_NOT_FOUND)
            self._ensure_writable()
            self._res.db.delete([label])
            self._deleted[label] = vec[0].copy()
        finally:
            self._lock.release_exclusive()

    def unmark_deleted(self, label):
        """Restore an element marked deleted, with its vector."""
        self._require_init()
        label = self._one_label(label)
        self._lock.acquire_exclusive()
        try:
            vec = self._deleted.get(label)
            if vec is None:
                if self._res.db.contains(label):
                    raise RuntimeError("The requested to undelete element is not deleted")
                raise RuntimeError(_MSG_NOT_FOUND)
            self._ensure_writable()
            self._res.db.upsert([label], vec)
            self._wait_indexed()
            del self._deleted[label]
        finally:
            self._lock.release_exclusive()

    def resize_index(self, new_size):
        """Change max_elements (not below the current count)."""
        self._require_init()
        new_size = _size(new_size, "new_size")
        self._lock.acquire_exclusive()
        try:
            if new_size < self._count():
                raise RuntimeError("Cannot resize, max element is less than the current "
                                   "number of elements")
            self._max_elements = new_size
        finally:
            self._lock.release_exclusive()

    # ---- reads ------------------------------------------------------------------------

    def knn_query(self, data, k=1, num_threads=-1, filter=None):  # noqa: A002
        """(labels, distances) of the k nearest elements of each row: uint64 and float32 (n, k).

        filter: a callable label -> bool (as hnswlib), or anything strata's
        search takes (a strata.Filter, a boolean mask, an array of labels).
        RuntimeError when some row has fewer than k elements to return.
        """
        self._require_init()
        q = _data_rows(data, self._dim)
        k = _size(k, "k")
        rows = q.shape[0]
        if rows == 0 or k == 0:
            return np.empty((rows, k), np.uint64), np.empty((rows, k), np.float32)
        if k > _lib.K_MAX:
            raise RuntimeError("%s (k = %d is beyond strata's limit of %d)"
                               % (_MSG_KNN, k, _lib.K_MAX))
        threads = self._threads(num_threads, rows)
        self._lock.acquire_shared()
        try:
            labels, dists = self._res.db.search(q, k, ef=self._ef, filter=filter,
                                                threads=threads)
        finally:
            self._lock.release_shared()
        last = labels[:, -1]  # slots fill in order: a row short of k ends in NO_ID
        if (_lib.NO_ID in last.tolist()) if rows <= 64 else (last == _lib.NO_ID).any():
            raise RuntimeError(_MSG_KNN)
        return labels, dists

    def get_items(self, ids=None, return_type="numpy"):
        """The vectors of ids: a float32 (n, dim) array, or a list of lists."""
        if return_type not in ("numpy", "list"):
            raise ValueError('return_type should be "numpy" or "list"')
        self._require_init()
        if ids is None:
            labels = np.empty(0, np.uint64)
        else:
            arr = np.asarray(ids)
            if arr.ndim == 0:
                raise ValueError("get_items accepts a list of indices and returns a list of "
                                 "vectors")
            labels = as_ids(arr, "ids")
        self._lock.acquire_shared()
        try:
            vecs, found = self._res.db.lookup(labels)
        finally:
            self._lock.release_shared()
        if not found.all():
            raise RuntimeError(_MSG_NOT_FOUND)
        return vecs.tolist() if return_type == "list" else vecs

    def get_ids_list(self):
        """Every label, live and marked deleted, ascending."""
        self._require_init()
        self._lock.acquire_exclusive()  # may rebuild the label log
        try:
            return self._label_array().tolist()
        finally:
            self._lock.release_exclusive()

    def _label_array(self):
        if self._labels is None:
            self._labels = self._recover_labels()
        return self._labels.array()

    def _recover_labels(self):
        """Labels of a database saved without them (strata build, a bundle): 0..n-1 only."""
        live = self._res.db.stats()["vectors"]
        dense = np.arange(live, dtype=np.uint64)
        if not self._deleted and self._res.db.contains(dense).all():
            return _LabelLog(dense)
        raise RuntimeError("%s carries no label list (it was not written by save_index) and "
                           "its ids are not 0..n-1: strata has no call that lists the ids of a "
                           "database" % self._res.db.path)

    # ---- save / load ------------------------------------------------------------------

    def _meta_bytes(self):
        """hnswlib-compat.npz: what the database does not hold."""
        keys = np.fromiter(self._deleted, dtype=np.uint64, count=len(self._deleted))
        vecs = np.stack(list(self._deleted.values())) if self._deleted \
            else np.empty((0, self._dim), np.float32)
        arrays = dict(version=np.array(META_VERSION),
                      max_elements=np.array(self._max_elements, np.uint64),
                      space=np.array(self._space), deleted_labels=keys,
                      deleted_vectors=vecs.astype(np.float32))
        labels = self._known_labels()
        if labels is not None:
            arrays["labels"] = labels
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        return buf.getvalue()

    def _known_labels(self):
        """The label array, or None when the database's ids cannot be listed (see get_ids_list)."""
        try:
            return self._label_array()
        except RuntimeError:
            return None

    def save_index(self, path_to_index):
        """Write the index as a strata database directory at path_to_index (see module doc)."""
        self._require_init()
        target = os.path.abspath(os.fspath(path_to_index))
        self._lock.acquire_exclusive()
        try:
            db = self._res.db
            if not db.readonly:
                db.flush()
            meta = self._meta_bytes()
            if os.path.abspath(db.path) == target:  # loaded from here, unchanged since
                tmp = os.path.join(target, "." + META_NAME + ".tmp")
                _dircopy.write_file(tmp, meta)
                os.rename(tmp, os.path.join(target, META_NAME))
                _dircopy._fsync_path(target, directory=True)
                return
            _check_target(target)
            parent, base = os.path.split(target)
            tmp = tempfile.mkdtemp(dir=parent, prefix="." + base + ".save-")
            try:
                _dircopy.snapshot(db.path, _dircopy.DirSink(tmp),
                                  expect=self._res.source_manifest)
                _dircopy.write_file(os.path.join(tmp, META_NAME), meta)
                _dircopy.replace_dir(tmp, target)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        finally:
            self._lock.release_exclusive()

    def load_index(self, path_to_index, max_elements=0, allow_replace_deleted=False):
        """Load a directory written by save_index (or any strata database, or an hnswlib file)."""
        max_elements = _size(max_elements, "max_elements")
        path = os.path.abspath(os.fspath(path_to_index))
        self._lock.acquire_exclusive()
        try:
            if self._inited:
                print("Warning: Calling load_index for an already inited index. Old index is "
                      "being deallocated.", file=sys.stderr)
                self._res.release()
                self._inited = False
            if os.path.isfile(path):
                self._import_hnswlib_file(path, max_elements)
            elif os.path.isdir(path):
                self._load_dir(path)
            else:
                raise RuntimeError("Cannot open file: %s" % path)
            count = self._count()
            if max_elements < count:
                max_elements = max(self._max_elements, count)
            self._max_elements = max_elements
            self._allow_replace = bool(allow_replace_deleted)
            self._cur_l = count
            self._ef = _DEFAULT_EF
            self._inited = True
        except BaseException:
            self._res.release()
            raise
        finally:
            self._lock.release_exclusive()

    def _load_dir(self, path):
        try:
            if _dircopy.has_wal(path):
                d = self._private_dir()
                self._res.private_dir = d
                _dircopy.snapshot(path, _dircopy.DirSink(d), include_wal=True)
                self._res.db = _open(d, create=False, sync="none")
            else:
                self._res.db, self._res.source_manifest = _open_pinned(path)
        except Error as e:
            raise RuntimeError("Cannot open index %s: %s" % (path, e)) from e
        db = self._res.db
        if db.metric != self._space or db.dim != self._dim:
            raise RuntimeError("%s holds a '%s' database of dim %d; this Index is '%s' of dim %d "
                               "(strata fixes the metric and dim when a database is created)"
                               % (path, db.metric, db.dim, self._space, self._dim))
        self._seed = 100
        self._deleted, self._labels, self._max_elements = {}, None, 0
        meta_path = os.path.join(path, META_NAME)
        if os.path.exists(meta_path):
            self._read_meta(meta_path)

    def _read_meta(self, meta_path):
        """hnswlib-compat.npz. The label list is only counted here and read when needed
        (from this open file, so a later save over the directory cannot change it)."""
        z = None
        try:
            z = np.load(meta_path, allow_pickle=False)  # an NpzFile: members read on access
            if int(z["version"]) != META_VERSION:
                raise ValueError("version %d" % int(z["version"]))
            n_labels = _npy_rows(z, "labels") if "labels" in z.files else None
            keys = z["deleted_labels"].astype(np.uint64)
            vecs = z["deleted_vectors"].astype(np.float32)
            saved_max = int(z["max_elements"])
        except (OSError, KeyError, ValueError) as e:
            if z is not None:
                z.close()
            raise RuntimeError("Index seems to be corrupted or unsupported: %s: %s"
                               % (meta_path, e)) from e
        self._res.meta = z
        if vecs.shape != (keys.size, self._dim):
            raise RuntimeError("Index seems to be corrupted or unsupported: %s: deleted vectors "
                               "of shape %s" % (meta_path, vecs.shape))
        db = self._res.db
        # Trust the label list only if it still describes the database (it may have been
        # changed through strata.open since): every live id counted, no deleted one live.
        live = db.stats()["vectors"]
        keys_live = db.contains(keys) if keys.size else np.zeros(0, bool)
        deleted = {int(k): v for k, v, alive in zip(keys.tolist(), vecs, keys_live) if not alive}
        if n_labels is not None and n_labels == live + len(deleted) and not keys_live.any():
            def load():
                try:
                    return z["labels"]
                finally:
                    z.close()
                    self._res.meta = None
            self._labels = _LabelLog(loader=load)
        else:
            z.close()
            self._res.meta = None
        self._deleted = deleted
        self._max_elements = saved_max

    def _import_hnswlib_file(self, path, max_elements):
        from . import _hnswlib_file
        try:
            info = _hnswlib_file.read(path, self._dim)
        except (OSError, ValueError) as e:
            raise RuntimeError("Index seems to be corrupted or unsupported: %s: %s"
                               % (path, e)) from e
        d = self._private_dir()
        self._res.private_dir = d
        shutil.rmtree(d)
        live = ~info.deleted
        self._seed = 100
        if live.any():
            _build(d, info.vectors[live], info.labels[live], metric=self._space, M=info.M,
                   ef_construction=info.ef_construction, seed=self._seed, threads=0)
        os.makedirs(d, exist_ok=True)
        self._res.db = self._open_private(d, True, info.M, info.ef_construction)
        self._deleted = {int(k): v.copy() for k, v in
                         zip(info.labels[~live].tolist(), info.vectors[~live])}
        self._labels = _LabelLog(info.labels)
        self._max_elements = info.max_elements

    # ---- pickling -----------------------------------------------------------------------

    def __getstate__(self):
        state = {"ser_version": SER_VERSION, "space": self._space, "dim": self._dim,
                 "index_inited": self._inited, "ef": self._ef, "num_threads": self._num_threads,
                 "seed": self._seed}
        if not self._inited:
            return state
        self._lock.acquire_exclusive()
        try:
            db = self._res.db
            if not db.readonly:
                db.flush()
            sink = _dircopy.MemorySink()
            _dircopy.snapshot(db.path, sink, expect=self._res.source_manifest)
            state.update(max_elements=self._max_elements, cur_l=self._cur_l,
                         allow_replace_deleted=self._allow_replace,
                         labels=self._known_labels(),
                         deleted_labels=np.fromiter(self._deleted, np.uint64, len(self._deleted)),
                         deleted_vectors=(np.stack(list(self._deleted.values()))
                                          if self._deleted else
                                          np.empty((0, self._dim), np.float32)),
                         files=sink.files)
        finally:
            self._lock.release_exclusive()
        return state

    def __setstate__(self, state, _fresh=True):
        if _fresh:  # unpickling: __init__ did not run
            Index.__init__(self, state["space"], state["dim"])
        if state.get("ser_version") != SER_VERSION:
            raise RuntimeError("Unpickle Error: Invalid serialization version!")
        self._space, self._dim = state["space"], int(state["dim"])
        if self._space not in _SPACES:
            raise RuntimeError("Space name must be one of l2, ip, or cosine.")
        self._ef = int(state["ef"])
        self._num_threads = int(state["num_threads"])
        self._seed = int(state["seed"])
        if not state["index_inited"]:
            return
        d = self._private_dir()
        try:
            _dircopy.write_files(d, state["files"])
            db = self._open_private(d, False)
        except BaseException:
            shutil.rmtree(d, ignore_errors=True)
            raise
        self._res.db, self._res.private_dir = db, d
        self._max_elements = int(state["max_elements"])
        self._cur_l = int(state["cur_l"])
        self._allow_replace = bool(state["allow_replace_deleted"])
        labels = state.get("labels")
        self._labels = _LabelLog(labels) if labels is not None else None
        self._deleted = {int(k): np.asarray(v, np.float32).copy() for k, v in
                         zip(np.asarray(state["deleted_labels"]).tolist(),
                             state["deleted_vectors"])}
        self._inited = True


def _open_pinned(path):
    """A read-only Database of ``path`` and the MANIFEST bytes it was opened at.

    Later copies of the directory (the first change, save_index, pickling) must
    find the same MANIFEST: a directory replaced meanwhile is refused, not mixed
    with this Index's labels and deletion marks.
    """
    manifest = os.path.join(path, _dircopy.MANIFEST)
    for _ in range(8):
        try:
            with open(manifest, "rb") as f:
                before = f.read()
        except FileNotFoundError:
            before = None  # strata.open says what is wrong
        db = _open(path, readonly=True)
        with open(manifest, "rb") as f:
            if f.read() == before:
                return db, before
        db.close()
    raise Busy(detail="%s kept changing while it was opened" % path)


def _check_target(target):
    """save_index replaces a strata database directory or an empty directory, nothing else."""
    if not os.path.lexists(target):
        return
    if not os.path.isdir(target) or os.path.islink(target):
        raise RuntimeError("%s exists and is not a directory: strata saves an index as a "
                           "database directory and does not overwrite other files" % target)
    names = os.listdir(target)
    if names and _dircopy.MANIFEST not in names:
        raise RuntimeError("%s exists and is not a strata database: not replaced" % target)
    lock = os.path.join(target, "LOCK")
    if os.path.exists(lock):
        fd = os.open(lock, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Busy(detail="%s is open for writing by a process: not replaced" % target) \
                from None
        finally:
            os.close(fd)  # releases the lock

