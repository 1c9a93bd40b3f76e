"""The native API: strata.open / strata.build and Database, checked against numpy brute force."""
import gc
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import threading
import unittest

import numpy as np

import strata
from strata import _lib
from strata.database import as_ids, as_matrix
from support import brute_force, recall, siftsmall, tmpdir

RNG = np.random.default_rng(7)


def rand(n, dim, seed=None):
    rng = RNG if seed is None else np.random.default_rng(seed)
    return rng.random((n, dim), dtype=np.float32)


class OpenCloseTest(unittest.TestCase):
    def test_create_write_close_reopen_read_only(self):
        path = os.path.join(tmpdir(self), "db")
        v = rand(50, 8)
        with strata.open(path, dim=8, metric="l2") as db:
            self.assertEqual((db.dim, db.metric, db.readonly, db.closed), (8, "l2", False, False))
            db.upsert(np.arange(50), v)
            self.assertEqual(len(db), 50)
            db.flush()
        self.assertTrue(db.closed)
        with strata.open(path, readonly=True) as ro:
            self.assertEqual((ro.dim, ro.metric, ro.readonly), (8, "l2", True))
            np.testing.assert_array_equal(ro.get(np.arange(50)), v)
            with self.assertRaises(strata.ReadOnly) as cm:
                ro.upsert(1, v[0])
            self.assertEqual(cm.exception.code, -7)

    def test_unflushed_writes_survive_close_and_reopen(self):
        path = os.path.join(tmpdir(self), "db")
        v = rand(20, 4)
        db = strata.open(path, dim=4, sync="none")
        db.upsert(np.arange(20), v)
        db.close()                                   # syncs the WAL; the memtable is replayed
        with strata.open(path) as db:
            np.testing.assert_array_equal(db.get(np.arange(20)), v)
            self.assertEqual(db.stats()["replay_records"], 1)

    def test_schema_is_checked_and_taken_from_the_database(self):
        path = os.path.join(tmpdir(self), "db")
        strata.open(path, dim=6, metric="cosine").close()
        with strata.open(path) as db:                # dim and metric from the database
            self.assertEqual((db.dim, db.metric), (6, "cosine"))
        with strata.open(path, dim=6) as db:         # dim stated, metric not: no EMETRIC
            self.assertEqual(db.metric, "cosine")
        with self.assertRaises(strata.DimensionError) as cm:
            strata.open(path, dim=7)
        self.assertEqual(cm.exception.code, -2)
        self.assertIsInstance(cm.exception, ValueError)
        with self.assertRaises(strata.MetricError) as cm:
            strata.open(path, dim=6, metric="l2")
        self.assertEqual(cm.exception.code, -3)
        self.assertIn("metric", cm.exception.detail)

    def test_missing_database_without_create_is_not_found(self):
        d = tmpdir(self)
        for kw in ({"create": False}, {"readonly": True}):
            with self.assertRaises(strata.NotFound) as cm:
                strata.open(os.path.join(d, "nothing"), dim=4, **kw)
            self.assertEqual(cm.exception.code, -4)
            self.assertTrue(cm.exception.detail)
        self.assertFalse(os.path.exists(os.path.join(d, "nothing", "MANIFEST")))

    def test_creating_needs_a_dim(self):
        with self.assertRaises(strata.Error) as cm:
            strata.open(os.path.join(tmpdir(self), "db"))
        self.assertIn(cm.exception.code, (-1, -2))

    def test_damaged_files_raise_data_errors(self):
        path = os.path.join(tmpdir(self), "db")
        strata.build(path, rand(300, 8))
        with strata.open(path, readonly=True, verify=True) as db:
            self.assertEqual(len(db), 300)
        seg = os.path.join(path, [n for n in os.listdir(path) if n.endswith(".seg")][0])
        with open(seg, "r+b") as f:                  # one byte of the vectors flipped
            f.seek(os.path.getsize(seg) // 2)
            b = f.read(1)
            f.seek(-1, os.SEEK_CUR)
            f.write(bytes([b[0] ^ 0x40]))
        with self.assertRaises(strata.DataError) as cm:
            strata.open(path, readonly=True, verify=True)
        self.assertTrue(-79 <= cm.exception.code <= -60)
        self.assertIn(".seg", cm.exception.detail)
        with open(seg, "r+b") as f:                  # its magic
            f.write(b"NOTASEG!")
        with self.assertRaises(strata.NotADatabase) as cm:
            strata.open(path, readonly=True)
        self.assertEqual(cm.exception.code, -60)

    def test_second_writer_is_busy(self):
        path = os.path.join(tmpdir(self), "db")
        with strata.open(path, dim=4):
            with self.assertRaises(strata.Busy) as cm:
                strata.open(path, dim=4)
            self.assertEqual(cm.exception.code, -6)
            strata.open(path, readonly=True).close()  # readers are welcome

    def test_bad_options(self):
        path = os.path.join(tmpdir(self), "db")
        with self.assertRaises(TypeError):
            strata.open(path, dim=4, bogus=1)
        with self.assertRaises(strata.InvalidArgument):
            strata.open(path, dim=4, sync="sometimes")
        with self.assertRaises(strata.InvalidArgument):
            strata.open(path, dim=4, M=1)
        with self.assertRaises(strata.InvalidArgument):
            strata.open(path, dim=-3)
        with self.assertRaises(strata.InvalidArgument):
            strata.open(path, dim=4, merge_into_largest_pct=1001)
        with self.assertRaises(strata.InvalidArgument):
            strata.open(path, dim=4, merge_factor=1)
        with self.assertRaises(strata.MetricError):
            strata.open(path, dim=4, metric="hamming")

    def test_calls_after_close_raise_closed(self):
        db = strata.open(os.path.join(tmpdir(self), "db"), dim=4)
        db.close()
        db.close()  # harmless
        for call in (lambda: db.search(rand(1, 4), 1), lambda: db.upsert(1, rand(1, 4)),
                     lambda: db.get(1), db.flush, db.stats, lambda: db.delete([1])):
            with self.assertRaises(strata.Closed) as cm:
                call()
            self.assertIsInstance(cm.exception, strata.InvalidArgument)
            self.assertEqual(cm.exception.code, -1)

    def test_garbage_collected_database_releases_its_lock(self):
        path = os.path.join(tmpdir(self), "db")
        db = strata.open(path, dim=4)
        db.upsert(1, rand(1, 4))
        del db
        gc.collect()
        with strata.open(path, dim=4) as again:     # not Busy: the handle was closed
            self.assertEqual(len(again), 1)

    def test_close_waits_for_searches_in_progress(self):
        base = rand(20000, 32, seed=1)
        path = os.path.join(tmpdir(self), "db")
        strata.build(path, base)
        db = strata.open(path, readonly=True)
        errors, results = [], []

        def searcher():
            try:
                results.append(db.search(base[:2000], k=10, threads=1)[0])
            except strata.Closed:
                pass  # started after close: refused cleanly
            except BaseException as e:  # noqa: B036
                errors.append(e)

        threads = [threading.Thread(target=searcher) for _ in range(4)]
        for t in threads:
            t.start()
        db.close()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        for r in results:
            self.assertEqual(r.shape, (2000, 10))


class WriteReadTest(unittest.TestCase):
    def setUp(self):
        self.db = strata.open(os.path.join(tmpdir(self), "db"), dim=16, sync="none")
        self.addCleanup(self.db.close)

    def test_get_lookup_contains(self):
        v = rand(100, 16)
        ids = np.arange(1000, 1100, dtype=np.int64)
        self.db.upsert(ids, v)
        np.testing.assert_array_equal(self.db.get(ids[::-1]), v[::-1])
        one = self.db.get(1005)
        self.assertEqual(one.shape, (16,))
        np.testing.assert_array_equal(one, v[5])
        got, found = self.db.lookup([1000, 7, 1099])
        self.assertEqual(found.tolist(), [True, False, True])
        np.testing.assert_array_equal(got[1], np.zeros(16, np.float32))
        np.testing.assert_array_equal(got[2], v[99])
        self.assertEqual(self.db.contains([7, 1001]).tolist(), [False, True])
        self.assertTrue(self.db.contains(1001))
        self.assertIn(1001, self.db)
        self.assertNotIn(7, self.db)
        self.assertNotIn(-1, self.db)
        with self.assertRaises(strata.NotFound) as cm:
            self.db.get([1000, 7])
        self.assertEqual(cm.exception.code, -4)
        self.assertIn("ids[1] = 7", cm.exception.detail)
        self.assertIsInstance(cm.exception, LookupError)

    def test_upsert_replaces_and_delete_removes_everywhere(self):
        v = rand(300, 16)
        self.db.upsert(np.arange(300), v)
        self.db.flush()                               # ids 0..299 in a segment
        w = rand(100, 16)
        self.db.upsert(np.arange(100), w)             # superseded in the memtable
        self.db.delete([5, 150, 299, 12345])          # segment + memtable ids, and an absent one
        st = self.db.stats()
        self.assertEqual(st["vectors"], 297)
        self.assertEqual(len(self.db), 297)
        expect = v.copy()
        expect[:100] = w
        alive = np.setdiff1d(np.arange(300), [5, 150, 299])
        np.testing.assert_array_equal(self.db.get(alive), expect[alive])
        self.assertFalse(self.db.contains([5, 150, 299]).any())
        ids, d = self.db.search(expect[alive], k=1, ef=200)
        np.testing.assert_array_equal(ids[:, 0], alive)  # each vector finds itself
        np.testing.assert_allclose(d[:, 0], 0, atol=1e-3)
        self.db.flush()
        self.assertEqual(self.db.stats()["vectors"], 297)
        np.testing.assert_array_equal(self.db.get(alive), expect[alive])

    def test_cosine_stores_normalised_vectors(self):
        db = strata.open(os.path.join(tmpdir(self), "cos"), dim=4, metric="cosine")
        self.addCleanup(db.close)
        db.upsert([1, 2], [[3, 4, 0, 0], [0, 0, 0, 2]])
        np.testing.assert_allclose(db.get([1, 2]), [[.6, .8, 0, 0], [0, 0, 0, 1]], rtol=1e-6)

    def test_bad_writes(self):
        with self.assertRaises(strata.DimensionError):
            self.db.upsert([1], rand(1, 15))
        with self.assertRaises(strata.DimensionError):
            self.db.upsert([1], np.zeros((1, 2, 16), np.float32))
        with self.assertRaises(strata.InvalidArgument):
            self.db.upsert([1, 2], rand(1, 16))
        with self.assertRaises(strata.InvalidArgument):
            self.db.upsert([-1], rand(1, 16))
        with self.assertRaises(strata.InvalidArgument):
            self.db.upsert([1.5], rand(1, 16))
        with self.assertRaises(strata.InvalidArgument) as cm:   # refused by the C library
            self.db.upsert([strata.NO_ID], rand(1, 16))
        self.assertTrue(cm.exception.detail)
        bad = rand(2, 16)
        bad[1, 3] = np.nan
        with self.assertRaises(strata.NonFinite) as cm:
            self.db.upsert([1, 2], bad)
        self.assertEqual(cm.exception.code, -8)
        self.assertEqual(len(self.db), 0)            # nothing changed

    def test_large_ids_and_id_dtypes(self):
        big = 2**64 - 2
        self.db.upsert(np.array([big, 2**63], dtype=np.uint64), rand(2, 16))
        self.db.upsert([2**63 + 5, 7], rand(2, 16))  # Python ints beyond int64
        self.db.upsert(np.array([9], dtype=np.uint8), rand(1, 16))
        self.assertTrue(self.db.contains([big, 2**63, 2**63 + 5, 7, 9]).all())
        ids, _ = self.db.search(self.db.get(big), k=1, ef=50)
        self.assertEqual(int(ids[0, 0]), big)

    def test_no_copy_for_c_ordered_float32_and_uint64(self):
        v = rand(10, 16)
        ids = np.arange(10, dtype=np.uint64)
        self.assertIs(as_matrix(v, 16), v)
        self.assertIs(as_ids(ids), ids)
        strided = np.asfortranarray(rand(10, 16))
        m = as_matrix(strided, 16)
        self.assertTrue(m.flags.c_contiguous)
        np.testing.assert_array_equal(m, strided)
        self.db.upsert(ids[::-1], strided[::-1])     # non-contiguous views work
        np.testing.assert_array_equal(self.db.get(ids), strided)

    def test_get_many_in_one_call(self):
        v = rand(5000, 16)
        self.db.upsert(np.arange(5000), v)
        perm = RNG.permutation(5000)
        np.testing.assert_array_equal(self.db.get(perm), v[perm])


class SearchTest(unittest.TestCase):
    def test_exact_on_small_sets_for_every_metric(self):
        for metric in ("l2", "ip", "cosine"):
            with self.subTest(metric=metric):
                base = rand(400, 12, seed=2) - 0.5
                q = rand(25, 12, seed=3) - 0.5
                ids = np.arange(400, dtype=np.uint64) * 3 + 11
                with strata.open(os.path.join(tmpdir(self), metric), dim=12,
                                 metric=metric) as db:
                    db.upsert(ids, base)
                    got, d = db.search(q, k=10, ef=400)
                    self.assertEqual((got.dtype, d.dtype, got.shape), (np.uint64, np.float32,
                                                                        (25, 10)))
                    want, wd = brute_force(base, q, 10, metric, ids)
                    np.testing.assert_array_equal(got, want)
                    np.testing.assert_allclose(d, wd, atol=2e-5)

    def test_siftsmall_recall_against_truth_and_brute_force(self):
        base, queries, truth = siftsmall()
        path = os.path.join(tmpdir(self), "sift")
        strata.build(path, base, M=16, ef_construction=200)
        bf_ids, _ = brute_force(base, queries, 10, "l2")
        self.assertEqual(recall(bf_ids, truth[:, :10]), 1.0)  # the file agrees with numpy
        with strata.open(path, readonly=True) as db:
            self.assertEqual(len(db), 10000)
            ids, d = db.search(queries, k=10, ef=64)
            r = recall(ids, bf_ids)
            self.assertGreaterEqual(r, 0.97, "recall@10 at ef 64: %.4f" % r)
            # The distances returned are the true distances of the ids returned.
            exact = ((base[ids.astype(np.int64)] - queries[:, None, :]) ** 2).sum(-1)
            np.testing.assert_allclose(d, exact, rtol=1e-4)
            self.assertTrue((np.diff(d, axis=1) >= 0).all())
            low, _ = db.search(queries, k=10, ef=10)
            high, _ = db.search(queries, k=10, ef=256)
            self.assertLessEqual(recall(low, bf_ids), recall(high, bf_ids))
            self.assertGreaterEqual(recall(high, bf_ids), 0.99)

    def test_answers_do_not_depend_on_threads(self):
        base = rand(5000, 24, seed=4)
        q = rand(300, 24, seed=5)
        path = os.path.join(tmpdir(self), "db")
        strata.build(path, base)
        with strata.open(path, readonly=True) as db:
            ref = db.search(q, k=7, ef=32, threads=1)
            for t in (0, 2, 3, 16, None):
                got = db.search(q, k=7, ef=32, threads=t)
                np.testing.assert_array_equal(got[0], ref[0])
                np.testing.assert_array_equal(got[1], ref[1])

    def test_one_query_and_empty_batches(self):
        with strata.open(os.path.join(tmpdir(self), "db"), dim=4) as db:
            db.upsert([1, 2, 3], np.eye(3, 4, dtype=np.float32))
            ids, d = db.search([1, 0, 0, 0], k=2)
            self.assertEqual(ids.shape, (1, 2))
            self.assertEqual(int(ids[0, 0]), 1)
            ids, d = db.search(np.empty((0, 4), np.float32), k=3)
            self.assertEqual((ids.shape, d.shape), ((0, 3), (0, 3)))

    def test_slots_beyond_what_exists(self):
        with strata.open(os.path.join(tmpdir(self), "db"), dim=4) as db:
            db.upsert([1, 2], rand(2, 4))
            ids, d = db.search(rand(3, 4), k=5)
            self.assertTrue((ids[:, 2:] == strata.NO_ID).all())
            self.assertTrue(np.isinf(d[:, 2:]).all())
            self.assertTrue((ids[:, :2] != strata.NO_ID).all())

    def test_bad_searches(self):
        with strata.open(os.path.join(tmpdir(self), "db"), dim=4) as db:
            db.upsert([1], rand(1, 4))
            for kw in ({"k": 0}, {"k": -1}, {"k": strata.K_MAX + 1}, {"k": 2.0},
                       {"ef": strata.EF_MAX + 1}, {"threads": -1}):
                with self.subTest(**kw), self.assertRaises(strata.InvalidArgument):
                    db.search(rand(1, 4), **{"k": 1, **kw})
            with self.assertRaises(strata.DimensionError):
                db.search(rand(1, 5), k=1)
            q = rand(2, 4)
            q[1, 0] = np.inf
            with self.assertRaises(strata.NonFinite) as cm:
                db.search(q, k=1)
            self.assertTrue(cm.exception.detail)


class FilterTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.base = rand(600, 8, seed=6)
        cls.q = rand(20, 8, seed=7)
        cls.dir = tempfile.mkdtemp(dir=os.environ.get("STRATA_TEST_TMP"))
        cls.db = strata.open(os.path.join(cls.dir, "db"), dim=8)
        cls.db.upsert(np.arange(600), cls.base)

    @classmethod
    def tearDownClass(cls):
        cls.db.close()
        shutil.rmtree(cls.dir)

    def expect(self, passing, k=5):
        passing = np.asarray(sorted(passing), dtype=np.uint64)
        return brute_force(self.base[passing.astype(np.int64)], self.q, k, "l2", passing)[0]

    def check(self, flt, passing, k=5):
        ids, _ = self.db.search(self.q, k=k, ef=600, filter=flt)
        np.testing.assert_array_equal(ids, self.expect(passing, k))

    def test_allow_list_mask_deny_and_callable(self):
        even = [i for i in range(600) if i % 2 == 0]
        self.check(even, even)                                   # array-like: allowed ids
        self.check(np.array(even[::-1] + even[:5]), even)        # unsorted, duplicated
        mask = np.zeros(600, bool)
        mask[::3] = True
        self.check(mask, range(0, 600, 3))                       # boolean mask by id
        self.check(lambda i: i % 5 == 1, range(1, 600, 5))       # callable
        self.check(strata.Filter(deny=range(0, 300)), range(300, 600))
        f = strata.Filter(allow=range(100, 200), deny=range(150, 600), mask=mask,
                          fn=lambda i: i != 102)
        want = [i for i in range(100, 150) if i % 3 == 0 and i != 102]
        self.check(f, want)
        self.check(f, want)                                      # a Filter is reusable

    def test_few_passing_ids_fill_the_rest_with_no_id(self):
        ids, d = self.db.search(self.q, k=5, filter=[3, 4])
        self.assertTrue((ids[:, 2:] == strata.NO_ID).all())
        self.assertEqual(set(ids[:, :2].ravel().tolist()), {3, 4})
        ids, _ = self.db.search(self.q, k=5, filter=[])         # nothing passes
        self.assertTrue((ids == strata.NO_ID).all())

    def test_callable_errors_are_raised_after_the_search(self):
        def bad(i):
            raise KeyError("boom %d" % i)
        with self.assertRaises(KeyError):
            self.db.search(self.q, k=3, filter=bad)

    def test_callable_from_many_threads(self):
        calls = []
        ids, _ = self.db.search(np.repeat(self.q, 20, axis=0), k=3, threads=4,
                                filter=lambda i: calls.append(i) or i % 2 == 1)
        self.assertTrue((ids % 2 == 1).all())
        self.assertGreater(len(calls), 0)


class FlushCompactStatsTest(unittest.TestCase):
    def test_stats_fields(self):
        with strata.open(os.path.join(tmpdir(self), "db"), dim=4) as db:
            db.upsert(np.arange(10), rand(10, 4))
            st = db.stats()
            self.assertEqual(set(st), {f[0] for f in _lib.Stats._fields_})
            self.assertEqual((st["dim"], st["metric"], st["vectors"], st["readonly"]),
                             (4, "l2", 10, False))
            self.assertEqual(st["upserts"], 10)
            db.flush()
            st = db.stats()
            self.assertEqual((st["segments"], st["memtable_vectors"], st["flushes"]), (1, 0, 1))

    @unittest.skipUnless(strata.has_compact(), "the loaded libstrata has no strata_compact")
    def test_compact_merges_every_segment_into_one(self):
        # Size tiers alone (merge factor 4) leave three small segments as they are.
        with strata.open(os.path.join(tmpdir(self), "db"), dim=4, merge_into_largest_pct=0) as db:
            v = rand(30, 4)
            for part in range(3):
                db.upsert(np.arange(part * 10, part * 10 + 10), v[part * 10:part * 10 + 10])
                db.flush()
            db.delete([0, 15])
            self.assertEqual(db.stats()["segments"], 3)
            db.compact()
            self.assertEqual(db.stats()["segments"], 1)
            alive = np.setdiff1d(np.arange(30), [0, 15])
            np.testing.assert_array_equal(db.get(alive), v[alive])
            self.assertEqual(len(db), 28)

    @unittest.skipIf(strata.has_compact(), "the loaded libstrata has strata_compact")
    def test_compact_without_the_function_says_so(self):
        with strata.open(os.path.join(tmpdir(self), "db"), dim=4) as db:
            with self.assertRaises(strata.Unsupported) as cm:
                db.compact()
            self.assertIsInstance(cm.exception, NotImplementedError)
            self.assertIn("strata_compact", str(cm.exception))


class BuildTest(unittest.TestCase):
    def test_build_with_ids_and_errors(self):
        d = tmpdir(self)
        v = rand(100, 6)
        ids = np.arange(100) * 7
        strata.build(os.path.join(d, "a"), v, ids=ids, metric="ip", M=8, ef_construction=50)
        with strata.open(os.path.join(d, "a"), readonly=True) as db:
            self.assertEqual((db.metric, db.M, db.ef_construction, len(db)), ("ip", 8, 50, 100))
            np.testing.assert_array_equal(db.get(ids), v)
        with self.assertRaises(strata.AlreadyExists) as cm:
            strata.build(os.path.join(d, "a"), v)
        self.assertEqual(cm.exception.code, -5)
        with self.assertRaises(strata.DuplicateId) as cm:
            strata.build(os.path.join(d, "b"), v[:3], ids=[1, 2, 1])
        self.assertEqual(cm.exception.code, -9)
        self.assertFalse(os.path.exists(os.path.join(d, "b")))
        with self.assertRaises(strata.DimensionError):
            strata.build(os.path.join(d, "c"), v[0])
        with self.assertRaises(TypeError):
            strata.build(os.path.join(d, "c"), v, sync="none")


class ErrorClassTest(unittest.TestCase):
    def test_bands_and_unknown_codes(self):
        self.assertIsInstance(strata.error_for(-1), strata.UsageError)
        self.assertIsInstance(strata.error_for(-22), strata.ResourceError)
        self.assertIsInstance(strata.error_for(-41), strata.IOError)
        self.assertIsInstance(strata.error_for(-63), strata.DataError)
        for code, band in ((-15, strata.UsageError), (-30, strata.ResourceError),
                           (-55, strata.IOError), (-70, strata.DataError), (-200, strata.Error)):
            e = strata.error_for(code, "x")
            self.assertIs(type(e), band)
            self.assertEqual(e.code, code)
        self.assertIsInstance(strata.error_for(-20), MemoryError)

    def test_str_pickle_and_fields(self):
        e = strata.error_for(-62, "seg-1.seg: bad edge")
        self.assertEqual((e.code, e.name, e.detail), (-62, "STRATA_ECORRUPT", "seg-1.seg: bad edge"))
        self.assertIn("STRATA_ECORRUPT (-62)", str(e))
        self.assertIn("bad edge", str(e))
        e2 = pickle.loads(pickle.dumps(e))
        self.assertEqual((type(e2), e2.code, e2.detail), (strata.Corrupt, -62, e.detail))
        u = pickle.loads(pickle.dumps(strata.Unsupported("why")))
        self.assertEqual((u.code, u.detail), (None, "why"))


class LibraryDiscoveryTest(unittest.TestCase):
    def run_python(self, env_lib):
        env = dict(os.environ)
        env.pop("STRATA_LIB", None)
        if env_lib is not None:
            env["STRATA_LIB"] = env_lib
        return subprocess.run([sys.executable, "-c", "import strata; print(strata.library_path())"],
                              env=env, capture_output=True, text=True)

    def test_strata_lib_is_used_and_a_bad_one_is_an_import_error(self):
        r = self.run_python(_lib.path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.strip(), _lib.path)
        r = self.run_python("/nonexistent/libstrata.so")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("ImportError", r.stderr)
        self.assertIn("STRATA_LIB=/nonexistent/libstrata.so", r.stderr)

    def test_without_strata_lib_the_installed_or_build_tree_library_is_found(self):
        r = self.run_python(None)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(os.path.exists(r.stdout.strip()) or "libstrata.so" in r.stdout)


if __name__ == "__main__":
    unittest.main()
