"""Helpers of the Python tests: temporary directories, the real datasets, brute force.

Exact answers come from numpy brute force in float64 with strata's (and
hnswlib's) conventions: l2 is the squared distance, ip is 1 - dot, cosine is
1 - cosine similarity (both sides normalised). Ties are broken by lower id.
"""
import os
import shutil
import tempfile
import unittest

import numpy as np

DATA = os.environ.get("STRATA_DATA") or os.path.join(
    os.path.dirname(__file__), "..", "..", "..", "..", "shared", "data")


def tmpdir(test):
    """A fresh directory removed when ``test`` (a TestCase) ends."""
    base = os.environ.get("STRATA_TEST_TMP")
    if base:
        os.makedirs(base, exist_ok=True)
    d = tempfile.mkdtemp(prefix="pytest-", dir=base)
    test.addCleanup(shutil.rmtree, d, True)
    return d


def data_path(rel, test=None):
    """Path of a dataset file under ../shared/data; skips ``test`` when it is missing."""
    p = os.path.join(DATA, rel)
    if not os.path.exists(p):
        raise unittest.SkipTest("dataset %s is missing" % p)
    return p


def read_vecs(path, dtype):
    """An .fvecs (dtype float32) or .ivecs (int32) file as a (rows, dim) array."""
    raw = np.fromfile(path, dtype=np.int32)
    dim = int(raw[0])
    rows = raw.reshape(-1, dim + 1)
    assert (rows[:, 0] == dim).all(), path
    return np.ascontiguousarray(rows[:, 1:]).view(dtype)


def siftsmall():
    """(base, queries, truth) of siftsmall: 10000 x 128, 100 x 128, 100 x 100 row numbers."""
    d = "siftsmall/"
    return (read_vecs(data_path(d + "siftsmall_base.fvecs"), np.float32),
            read_vecs(data_path(d + "siftsmall_query.fvecs"), np.float32),
            read_vecs(data_path(d + "siftsmall_groundtruth.ivecs"), np.int32))


def glove():
    """(base, queries) of glove-twitter-25d-12k (cosine)."""
    d = "glove-twitter-25d-12k/"
    return (read_vecs(data_path(d + "glove25_base.fvecs"), np.float32),
            read_vecs(data_path(d + "glove25_query.fvecs"), np.float32))


def distances(base, queries, metric):
    """(nq, n) float64 distance matrix."""
    b = np.asarray(base, np.float64)
    q = np.asarray(queries, np.float64)
    if metric == "l2":
        return (q * q).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * q @ b.T
    if metric == "ip":
        return 1 - q @ b.T
    bn = b / np.linalg.norm(b, axis=1, keepdims=True)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    return 1 - qn @ bn.T


def brute_force(base, queries, k, metric, ids=None):
    """(ids, dists) of the exact k nearest, ties by lower id; ids default to row numbers."""
    d = distances(base, queries, metric)
    ids = np.arange(len(base), dtype=np.uint64) if ids is None else np.asarray(ids, np.uint64)
    order = np.lexsort((np.broadcast_to(ids, d.shape), d), axis=1)[:, :k]
    return ids[order], np.take_along_axis(d, order, axis=1)


def recall(found, truth):
    """Mean share of each row of ``truth`` (k columns) found in the same row of ``found``."""
    k = truth.shape[1]
    hits = sum(len(set(f[:k].tolist()) & set(t.tolist())) for f, t in zip(found, truth))
    return hits / truth.size
