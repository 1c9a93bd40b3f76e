"""strata: an embeddable, memory-mapped vector search engine (HNSW), from Python.

The native API::

    import numpy as np
    import strata

    with strata.open("vectors.db", dim=128, metric="l2") as db:   # created if absent
        db.upsert(np.arange(1000), np.random.rand(1000, 128))      # durable when it returns
        ids, dists = db.search(np.random.rand(5, 128), k=10)       # (5, 10) uint64 / float32
        db.delete([3, 4])
        vecs = db.get([1, 2])                                      # (2, 128) float32
        db.flush()

    strata.build("shipped.db", vectors)                  # offline bulk build, one segment
    db = strata.open("shipped.db", readonly=True)        # O(1) open: mapped, not loaded

hnswlib code runs unchanged on strata through :mod:`strata.hnswlib_compat`
(``from strata import hnswlib_compat as hnswlib``).

The binding is pure Python over libstrata through ctypes (see strata._lib for
how the library is found: $STRATA_LIB, the installed library, the build tree);
numpy is its only dependency. Every error of the C library is raised as a
subclass of :class:`strata.Error` carrying the C code (see strata.errors).
"""

from . import _lib
from .database import Database, Filter, build, cpu_count, open  # noqa: A004
from .errors import *  # noqa: F401,F403
from .errors import __all__ as _errors_all

NO_ID = _lib.NO_ID          # the id of result slots beyond what exists (distance +inf)
DIM_MAX = _lib.DIM_MAX
K_MAX = _lib.K_MAX
EF_MAX = _lib.EF_MAX
METRICS = tuple(_lib.METRICS)

__version__ = "0.1.0"


def library_version():
    """The version string of the loaded C library ("MAJOR.MINOR.PATCH")."""
    return _lib.version()


def library_path():
    """The file the C library was loaded from."""
    return _lib.path


def has_compact():
    """Whether the loaded C library has strata_compact (Database.compact works)."""
    return _lib.strata_compact is not None


__all__ = ["open", "build", "Database", "Filter", "cpu_count", "NO_ID", "DIM_MAX", "K_MAX",
           "EF_MAX", "METRICS", "library_version", "library_path", "has_compact",
           "hnswlib_compat"] + [n for n in _errors_all if n not in ("error_for", "check")]


def __getattr__(name):
    # `strata.hnswlib_compat` without an explicit import of the submodule.
    if name == "hnswlib_compat":
        import importlib
        return importlib.import_module(".hnswlib_compat", __name__)
    raise AttributeError("module 'strata' has no attribute %r" % name)
