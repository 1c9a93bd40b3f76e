"""strata.hnswlib_compat.Index: every method and property of hnswlib.Index, its shapes,
dtypes and exceptions, checked against numpy brute force and real data."""
import gc
import os
import pickle
import subprocess
import sys
import threading
import unittest

import numpy as np

import strata
from strata import hnswlib_compat as hnswlib
from support import brute_force, glove, recall, siftsmall, tmpdir

RNG = np.random.default_rng(11)


def rand(n, dim, seed=None):
    rng = RNG if seed is None else np.random.default_rng(seed)
    return rng.random((n, dim), dtype=np.float32)


def make(dim=8, n=0, space="l2", max_elements=1000, **kw):
    p = hnswlib.Index(space=space, dim=dim)
    p.init_index(max_elements=max_elements, **kw)
    data = rand(n, dim) - 0.5  # centred: ip on all-positive data leaves nodes unreachable
    if n:
        p.add_items(data)
    return p, data


class ConstructionTest(unittest.TestCase):
    def test_properties_before_and_after_init(self):
        p = hnswlib.Index(space="cosine", dim=5)
        self.assertEqual((p.space, p.dim, p.M, p.ef_construction, p.max_elements,
                          p.element_count, p.ef), ("cosine", 5, 0, 0, 0, 0, 10))
        self.assertEqual(p.num_threads, strata.cpu_count())
        self.assertEqual(repr(p), "<strata.hnswlib_compat.Index(space='cosine', dim=5)>")
        p.init_index(max_elements=100, M=12, ef_construction=80, random_seed=3)
        self.assertEqual((p.M, p.ef_construction, p.max_elements, p.element_count),
                         (12, 80, 100, 0))
        self.assertEqual((p.get_max_elements(), p.get_current_count()), (100, 0))

    def test_bad_space_and_dim(self):
        with self.assertRaisesRegex(RuntimeError, "Space name must be one of l2, ip, or cosine"):
            hnswlib.Index(space="hamming", dim=4)
        for dim in (0, -1, 70000, 2.5):
            with self.assertRaises(ValueError):
                hnswlib.Index(space="l2", dim=dim)

    def test_init_twice_and_use_before_init(self):
        p = hnswlib.Index("l2", 4)
        for call in (lambda: p.add_items(rand(1, 4)), lambda: p.knn_query(rand(1, 4)),
                     lambda: p.get_items([0]), p.get_ids_list, lambda: p.mark_deleted(0),
                     lambda: p.unmark_deleted(0), lambda: p.resize_index(5),
                     lambda: p.save_index(os.path.join(tmpdir(self), "x")),
                     p.get_max_elements, p.get_current_count):
            with self.assertRaises(RuntimeError):
                call()
        p.init_index(10)
        with self.assertRaisesRegex(RuntimeError, "already initiated"):
            p.init_index(10)

    def test_init_arguments(self):
        p = hnswlib.Index("l2", 4)
        with self.assertRaises(TypeError):
            p.init_index(-1)
        with self.assertRaises(ValueError):
            p.init_index(10, M=1)
        with self.assertRaises(ValueError):
            p.init_index(10, M=1000)

    def test_set_ef_and_num_threads(self):
        p, _ = make()
        p.set_ef(77)
        self.assertEqual(p.ef, 77)
        p.ef = 12
        self.assertEqual(p.ef, 12)
        p.set_num_threads(3)
        self.assertEqual(p.num_threads, 3)
        p.num_threads = 1
        self.assertEqual(p.num_threads, 1)
        with self.assertRaises(TypeError):
            p.set_ef(-5)

    def test_close_removes_the_private_directory(self):
        p, _ = make(n=10)
        d = p._res.private_dir
        self.assertTrue(os.path.isdir(d))
        p.close()
        self.assertFalse(os.path.exists(d))
        self.assertEqual(p.element_count, 0)
        q, _ = make(n=10)
        d = q._res.private_dir
        del q
        gc.collect()
        self.assertFalse(os.path.exists(d))


class AddQueryTest(unittest.TestCase):
    def test_shapes_dtypes_and_exact_answers(self):
        for space in ("l2", "ip", "cosine"):
            with self.subTest(space=space):
                p, data = make(dim=10, n=300, space=space)
                p.set_ef(300)
                q = rand(17, 10) - 0.3
                labels, dists = p.knn_query(q, k=6)
                self.assertEqual((labels.shape, labels.dtype, dists.shape, dists.dtype),
                                 ((17, 6), np.uint64, (17, 6), np.float32))
                want, wd = brute_force(data, q, 6, space)
                np.testing.assert_array_equal(labels, want)
                np.testing.assert_allclose(dists, wd, atol=2e-5)
                one, _ = p.knn_query(q[0])                       # 1-D, default k=1
                self.assertEqual(one.shape, (1, 1))
                self.assertEqual(int(one[0, 0]), int(want[0, 0]))
                l64, _ = p.knn_query(q.astype(np.float64), k=6)  # any dtype: cast to float32
                np.testing.assert_array_equal(l64, labels)

    def test_default_labels_continue_across_calls(self):
        p, _ = make(dim=4)
        p.add_items(rand(3, 4))
        p.add_items(rand(2, 4))
        self.assertEqual(p.get_ids_list(), [0, 1, 2, 3, 4])
        p.add_items(rand(1, 4), [100])
        p.add_items(rand(1, 4))                  # hnswlib: cur_l counts rows added, here 6
        self.assertEqual(p.get_ids_list(), [0, 1, 2, 3, 4, 6, 100])

    def test_update_existing_labels(self):
        p, data = make(dim=4, n=20)
        new = rand(2, 4)
        p.add_items(new, [3, 7])
        self.assertEqual(p.element_count, 20)
        np.testing.assert_array_equal(p.get_items([3, 7]), new)
        p.add_items(np.stack([new[0], new[1]]), [9, 9])   # same label twice: the last row wins
        np.testing.assert_array_equal(p.get_items([9])[0], new[1])

    def test_input_shape_errors(self):
        p, _ = make(dim=4, n=5)
        with self.assertRaisesRegex(RuntimeError, "Wrong dimensionality of the vectors"):
            p.add_items(rand(2, 5))
        with self.assertRaisesRegex(RuntimeError, "Number of dimensions 3"):
            p.add_items(np.zeros((1, 2, 4), np.float32))
        with self.assertRaisesRegex(RuntimeError, "does not match the input data vector shape"):
            p.add_items(rand(3, 4), [1, 2])
        with self.assertRaisesRegex(RuntimeError, "Wrong dimensionality of the vectors"):
            p.knn_query(rand(2, 3))
        with self.assertRaises(RuntimeError):
            p.knn_query(np.zeros((1, 1, 4)))
        p.add_items(rand(1, 4), 50)              # one row, a scalar label
        self.assertIn(50, p.get_ids_list())
        with self.assertRaises(ValueError):
            p.add_items(rand(1, 4), [-3])
        with self.assertRaises(strata.NonFinite):
            p.add_items(np.full((1, 4), np.nan, np.float32))

    def test_max_elements_is_checked_before_anything_is_added(self):
        p, _ = make(dim=4, n=8, max_elements=10)
        with self.assertRaisesRegex(RuntimeError, "exceeds the specified limit"):
            p.add_items(rand(3, 4))
        self.assertEqual(p.element_count, 8)
        p.add_items(rand(2, 4), [0, 1])          # updates do not count
        p.add_items(rand(2, 4))
        self.assertEqual(p.element_count, 10)

    def test_k_beyond_live_elements(self):
        p, _ = make(dim=4, n=5)
        with self.assertRaisesRegex(RuntimeError, "Cannot return the results in a contiguous 2D "
                                                  "array. Probably ef or M is too small"):
            p.knn_query(rand(2, 4), k=6)
        p.mark_deleted(0)
        with self.assertRaises(RuntimeError):
            p.knn_query(rand(2, 4), k=5)         # 4 live elements
        labels, _ = p.knn_query(rand(2, 4), k=4)
        self.assertNotIn(0, labels)
        e, _ = p.knn_query(rand(3, 4), k=0)
        self.assertEqual(e.shape, (3, 0))
        e, _ = p.knn_query(np.empty((0, 4), np.float32), k=2)
        self.assertEqual(e.shape, (0, 2))
        with self.assertRaises(TypeError):
            p.knn_query(rand(1, 4), k=-1)
        empty, _ = make(dim=4)
        with self.assertRaises(RuntimeError):
            empty.knn_query(rand(1, 4))

    def test_filter(self):
        p, data = make(dim=6, n=400)
        p.set_ef(400)
        q = rand(10, 6)
        labels, _ = p.knn_query(q, k=3, num_threads=1, filter=lambda label: label % 2 == 0)
        even = np.arange(0, 400, 2)
        np.testing.assert_array_equal(labels, brute_force(data[even], q, 3, "l2", even)[0])
        labels, _ = p.knn_query(q, k=2, filter=np.arange(10, 20))   # strata's array filter
        self.assertTrue(((labels >= 10) & (labels < 20)).all())
        with self.assertRaisesRegex(RuntimeError, "contiguous 2D array"):
            p.knn_query(q, k=3, filter=lambda label: label < 2)

    def test_answers_do_not_depend_on_threads(self):
        p, _ = make(dim=16, n=3000, max_elements=5000)
        p.add_items(rand(1500, 16))               # incremental, after the bulk-built first batch
        q = rand(400, 16)
        ref = p.knn_query(q, k=5, num_threads=1)
        for t in (-1, 2, 4):
            got = p.knn_query(q, k=5, num_threads=t)
            np.testing.assert_array_equal(got[0], ref[0])
            np.testing.assert_array_equal(got[1], ref[1])

    def test_recall_and_ef_sweep_on_sift_and_glove(self):
        for name, (base, queries), space in (("sift", siftsmall()[:2], "l2"),
                                             ("glove", glove(), "cosine")):
            with self.subTest(data=name):
                queries = queries[:200]
                truth, _ = brute_force(base, queries, 10, space)
                p = hnswlib.Index(space=space, dim=base.shape[1])
                p.init_index(max_elements=len(base), ef_construction=200, M=16)
                half = len(base) // 2
                p.add_items(base[:half])           # bulk-built
                p.add_items(base[half:])           # upserted, indexed by the memtable graph
                recalls = []
                for ef in (10, 20, 50, 100, 200):
                    p.set_ef(ef)
                    labels, _ = p.knn_query(queries, k=10)
                    recalls.append(recall(labels, truth))
                for lo, hi in zip(recalls, recalls[1:]):
                    self.assertLessEqual(lo, hi + 0.01, recalls)
                self.assertGreaterEqual(recalls[-1], 0.98, recalls)


class ItemsTest(unittest.TestCase):
    def test_get_items(self):
        p, data = make(dim=4, n=10)
        items = p.get_items([2, 5])
        self.assertEqual((items.dtype, items.shape), (np.float32, (2, 4)))
        np.testing.assert_array_equal(items, data[[2, 5]])
        lst = p.get_items(np.array([2]), return_type="list")
        self.assertIsInstance(lst, list)
        self.assertEqual(lst, [data[2].tolist()])
        self.assertEqual(p.get_items().shape, (0, 4))
        with self.assertRaisesRegex(ValueError, 'return_type should be "numpy" or "list"'):
            p.get_items([1], return_type="tuple")
        with self.assertRaisesRegex(ValueError, "get_items accepts a list of indices"):
            p.get_items(3)
        with self.assertRaisesRegex(RuntimeError, "Label not found"):
            p.get_items([1, 99])

    def test_cosine_get_items_are_normalised(self):
        p = hnswlib.Index("cosine", 2)
        p.init_index(5)
        p.add_items([[3, 4]])
        np.testing.assert_allclose(p.get_items([0]), [[0.6, 0.8]], rtol=1e-6)

    def test_get_ids_list(self):
        p, _ = make(dim=4)
        p.add_items(rand(3, 4), [30, 10, 20])
        ids = p.get_ids_list()
        self.assertEqual(ids, [10, 20, 30])
        self.assertIsInstance(ids[0], int)


class DeleteTest(unittest.TestCase):
    def test_mark_and_unmark(self):
        p, data = make(dim=6, n=200)
        p.set_ef(200)
        q = data[[5, 6]]
        p.mark_deleted(5)
        self.assertEqual(p.element_count, 200)          # still counted, as in hnswlib
        self.assertIn(5, p.get_ids_list())
        labels, _ = p.knn_query(q, k=3)
        self.assertNotIn(5, labels)
        self.assertEqual(int(labels[1, 0]), 6)
        with self.assertRaisesRegex(RuntimeError, "Label not found"):
            p.get_items([5])
        with self.assertRaisesRegex(RuntimeError, "already deleted"):
            p.mark_deleted(5)
        with self.assertRaisesRegex(RuntimeError, "Label not found"):
            p.mark_deleted(12345)
        with self.assertRaisesRegex(RuntimeError, "is not deleted"):
            p.unmark_deleted(6)
        with self.assertRaisesRegex(RuntimeError, "Label not found"):
            p.unmark_deleted(12345)
        p.unmark_deleted(5)
        np.testing.assert_array_equal(p.get_items([5])[0], data[5])  # with its vector
        labels, _ = p.knn_query(q, k=1)
        self.assertEqual(int(labels[0, 0]), 5)

    def test_adding_a_deleted_label_revives_it(self):
        p, _ = make(dim=4, n=5)
        p.mark_deleted(2)
        v = rand(1, 4)
        p.add_items(v, [2])
        np.testing.assert_array_equal(p.get_items([2]), v)
        self.assertEqual(p.element_count, 5)
        p.mark_deleted(2)                                # deletable again

    def test_replace_deleted(self):
        p, _ = make(dim=4, n=10, max_elements=10)
        with self.assertRaisesRegex(RuntimeError, "Replacement of deleted elements is disabled"):
            p.add_items(rand(1, 4), [50], replace_deleted=True)
        r = hnswlib.Index("l2", 4)
        r.init_index(max_elements=10, allow_replace_deleted=True)
        r.add_items(rand(10, 4))
        for label in (1, 3, 5):
            r.mark_deleted(label)
        with self.assertRaisesRegex(RuntimeError, "exceeds the specified limit"):
            r.add_items(rand(1, 4), [50])               # full: the deleted still count
        with self.assertRaisesRegex(RuntimeError, "Can't use addPoint to update deleted"):
            r.add_items(rand(1, 4), [3])
        new = rand(2, 4)
        r.add_items(new, [50, 51], replace_deleted=True)
        self.assertEqual(r.element_count, 10)
        ids = r.get_ids_list()
        self.assertTrue({50, 51} <= set(ids))
        self.assertEqual(len(set(ids) & {1, 3, 5}), 1)  # two deleted slots were reused
        np.testing.assert_array_equal(r.get_items([50, 51]), new)
        with self.assertRaisesRegex(RuntimeError, "exceeds the specified limit"):
            r.add_items(rand(2, 4), [60, 61], replace_deleted=True)
        r.add_items(rand(1, 4), [60], replace_deleted=True)
        self.assertEqual(r.element_count, 10)
        self.assertFalse(set(r.get_ids_list()) & {1, 3, 5})

    def test_resize_index(self):
        p, _ = make(dim=4, n=10, max_elements=10)
        with self.assertRaisesRegex(RuntimeError, "Cannot resize"):
            p.resize_index(9)
        p.resize_index(20)
        self.assertEqual((p.max_elements, p.get_max_elements()), (20, 20))
        p.add_items(rand(10, 4))
        self.assertEqual(p.get_current_count(), 20)


class SaveLoadTest(unittest.TestCase):
    def test_round_trip_gives_identical_answers(self):
        d = tmpdir(self)
        path = os.path.join(d, "index.bin")
        p, data = make(dim=12, n=2000, max_elements=3000, space="ip")
        p.add_items(rand(500, 12))
        p.mark_deleted(7)
        p.set_ef(40)
        p.save_index(path)
        self.assertTrue(os.path.isfile(os.path.join(path, "MANIFEST")))
        self.assertTrue(os.path.isfile(os.path.join(path, hnswlib.META_NAME)))
        q = rand(100, 12)
        ref = p.knn_query(q, k=10)
        r = hnswlib.Index(space="ip", dim=12)
        r.load_index(path)
        self.assertEqual((r.element_count, r.max_elements, r.M, r.ef_construction, r.ef),
                         (2500, 3000, 16, 200, 10))          # ef is not saved (hnswlib)
        r.set_ef(40)
        got = r.knn_query(q, k=10)
        np.testing.assert_array_equal(got[0], ref[0])
        np.testing.assert_array_equal(got[1], ref[1])
        self.assertEqual(r.get_ids_list(), p.get_ids_list())
        with self.assertRaisesRegex(RuntimeError, "Label not found"):
            r.get_items([7])
        r.unmark_deleted(7)                                   # the mark survived, with its vector
        np.testing.assert_array_equal(r.get_items([7])[0], data[7])
        with strata.open(path, readonly=True) as db:          # a plain strata database
            self.assertEqual(len(db), 2499)                   # without the marked element

    def test_load_is_read_only_until_the_first_change(self):
        path = os.path.join(tmpdir(self), "idx")
        p, data = make(dim=4, n=100, max_elements=100)
        p.save_index(path)
        before = sorted(os.listdir(path))
        r = hnswlib.Index("l2", 4)
        r.load_index(path, max_elements=200)
        self.assertTrue(r._res.db.readonly)
        self.assertIsNone(r._res.private_dir)
        r.add_items(rand(50, 4))
        self.assertFalse(r._res.db.readonly)
        self.assertEqual(r.element_count, 150)
        self.assertEqual(sorted(os.listdir(path)), before)   # the saved index is untouched
        with strata.open(path, readonly=True) as db:
            self.assertEqual(len(db), 100)
        r.mark_deleted(3)
        again = hnswlib.Index("l2", 4)
        again.load_index(path)
        self.assertEqual(again.element_count, 100)
        np.testing.assert_array_equal(again.get_items([3]), data[[3]])

    def test_a_loaded_directory_replaced_underneath(self):
        path = os.path.join(tmpdir(self), "idx")
        p, _ = make(dim=4, n=10)
        p.save_index(path)
        r = hnswlib.Index("l2", 4)
        r.load_index(path)                     # read in place, labels not read yet
        p.add_items(rand(5, 4))
        p.save_index(path)                     # replaces the directory r reads
        self.assertEqual(r.get_ids_list(), list(range(10)))   # r's labels, from its open file
        self.assertEqual(r.knn_query(rand(3, 4), k=10)[0].shape, (3, 10))  # still mapped
        with self.assertRaises(strata.Busy) as cm:            # copying it now would mix states
            r.add_items(rand(1, 4))
        self.assertIn("changed on disk", cm.exception.detail)
        self.assertEqual(r.element_count, 10)

    def test_max_elements_on_load(self):
        path = os.path.join(tmpdir(self), "idx")
        p, _ = make(dim=4, n=10, max_elements=50)
        p.save_index(path)
        for asked, want in ((0, 50), (5, 50), (10, 10), (80, 80)):
            r = hnswlib.Index("l2", 4)
            r.load_index(path, max_elements=asked)
            self.assertEqual(r.max_elements, want, asked)

    def test_save_replaces_a_saved_index_and_nothing_else(self):
        d = tmpdir(self)
        path = os.path.join(d, "idx")
        p, _ = make(dim=4, n=10)
        p.save_index(path)
        p.add_items(rand(5, 4))
        p.save_index(path)                                    # replaced
        r = hnswlib.Index("l2", 4)
        r.load_index(path)
        self.assertEqual(r.element_count, 15)
        old_file = os.path.join(d, "old.bin")
        with open(old_file, "wb") as f:
            f.write(b"hnswlib bytes")
        with self.assertRaisesRegex(RuntimeError, "not a directory"):
            p.save_index(old_file)
        with open(old_file, "rb") as f:
            self.assertEqual(f.read(), b"hnswlib bytes")
        other = os.path.join(d, "photos")
        os.mkdir(other)
        open(os.path.join(other, "cat.jpg"), "wb").close()
        with self.assertRaisesRegex(RuntimeError, "not a strata database"):
            p.save_index(other)
        self.assertEqual(os.listdir(other), ["cat.jpg"])
        self.assertEqual([n for n in os.listdir(d) if n.startswith(".")], [])  # no temporaries

    def test_save_refuses_a_database_open_for_writing(self):
        path = os.path.join(tmpdir(self), "db")
        p, _ = make(dim=4, n=10)
        with strata.open(path, dim=4):
            with self.assertRaises(strata.Busy):
                p.save_index(path)

    def test_save_onto_the_loaded_directory(self):
        path = os.path.join(tmpdir(self), "idx")
        p, _ = make(dim=4, n=10, max_elements=10)
        p.save_index(path)
        r = hnswlib.Index("l2", 4)
        r.load_index(path)
        r.resize_index(40)
        r.save_index(path)                                    # unchanged data: metadata only
        s = hnswlib.Index("l2", 4)
        s.load_index(path)
        self.assertEqual(s.max_elements, 40)
        r.add_items(rand(3, 4))
        r.save_index(path)
        s = hnswlib.Index("l2", 4)
        s.load_index(path)
        self.assertEqual(s.element_count, 13)

    def test_load_errors(self):
        d = tmpdir(self)
        r = hnswlib.Index("l2", 4)
        with self.assertRaisesRegex(RuntimeError, "Cannot open file"):
            r.load_index(os.path.join(d, "missing"))
        path = os.path.join(d, "idx")
        p, _ = make(dim=4, n=10)
        p.save_index(path)
        with self.assertRaisesRegex(RuntimeError, "fixes the metric"):
            hnswlib.Index("cosine", 4).load_index(path)
        with self.assertRaisesRegex(RuntimeError, "dim"):
            hnswlib.Index("l2", 5).load_index(path)
        junk = os.path.join(d, "junk.bin")
        with open(junk, "wb") as f:
            f.write(os.urandom(50))
        with self.assertRaisesRegex(RuntimeError, "corrupted or unsupported"):
            r.load_index(junk)
        empty = os.path.join(d, "emptydir")
        os.mkdir(empty)
        with self.assertRaisesRegex(RuntimeError, "Cannot open index"):
            r.load_index(empty)

    def test_load_into_an_initialised_index_warns_and_replaces(self):
        path = os.path.join(tmpdir(self), "idx")
        p, _ = make(dim=4, n=10)
        p.save_index(path)
        r, _ = make(dim=4, n=3)
        old = r._res.private_dir
        code = ("import sys; sys.path[:0] = %r\nfrom strata import hnswlib_compat as h\n"
                "r = h.Index('l2', 4); r.init_index(5)\nr.load_index(%r)\n"
                "print(r.element_count)" % (sys.path[:3], path))
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        self.assertEqual(out.stdout.strip(), "10", out.stderr)
        self.assertIn("Calling load_index for an already inited index", out.stderr)
        r.load_index(path)
        self.assertEqual(r.element_count, 10)
        self.assertFalse(os.path.exists(old))

    def test_plain_strata_databases(self):
        d = tmpdir(self)
        v = rand(50, 4)
        strata.build(os.path.join(d, "dense"), v)            # ids 0..49
        r = hnswlib.Index("l2", 4)
        r.load_index(os.path.join(d, "dense"))
        self.assertEqual((r.element_count, r.max_elements), (50, 50))
        self.assertEqual(r.get_ids_list(), list(range(50)))
        np.testing.assert_array_equal(r.get_items([4]), v[[4]])
        strata.build(os.path.join(d, "sparse"), v, ids=np.arange(50) * 10)
        s = hnswlib.Index("l2", 4)
        s.load_index(os.path.join(d, "sparse"))
        labels, _ = s.knn_query(v[[3]], k=1)
        self.assertEqual(int(labels[0, 0]), 30)
        with self.assertRaisesRegex(RuntimeError, "no call that lists the ids"):
            s.get_ids_list()
        s.save_index(os.path.join(d, "sparse2"))              # still saveable, labels unknown
        # A database with unflushed writes in its log: loaded with them.
        path = os.path.join(d, "wal")
        with strata.open(path, dim=4, sync="none") as db:
            db.upsert(np.arange(7), v[:7])
        t = hnswlib.Index("l2", 4)
        t.load_index(path)
        self.assertEqual(t.element_count, 7)
        self.assertEqual(t.get_ids_list(), list(range(7)))
        np.testing.assert_array_equal(t.get_items([6]), v[[6]])


class HnswlibFileTest(unittest.TestCase):
    """load_index of files written by hnswlib itself (libhnswlib-dev, via strata-hnswlib-writer)."""

    def write(self, d, space, data, labels, deleted=(), max_elements=None):
        exe = os.environ.get("STRATA_HNSWLIB_WRITER")
        if not exe:
            self.skipTest("strata-hnswlib-writer was not built (no hnswlib header)")
        data.astype(np.float32).tofile(os.path.join(d, "v.f32"))
        np.asarray(labels, np.uint64).tofile(os.path.join(d, "l.u64"))
        args = [exe, os.path.join(d, "index.bin"), space, str(data.shape[1]), "16", "100",
                str(max_elements or len(data)), os.path.join(d, "v.f32"), os.path.join(d, "l.u64")]
        if len(deleted):
            np.asarray(deleted, np.uint64).tofile(os.path.join(d, "del.u64"))
            args.append(os.path.join(d, "del.u64"))
        subprocess.run(args, check=True)
        return os.path.join(d, "index.bin")

    def test_import_vectors_labels_and_deletion_marks(self):
        for space in ("l2", "cosine"):
            with self.subTest(space=space):
                d = tmpdir(self)
                data = rand(500, 8) - 0.5
                labels = np.arange(500) * 3 + 1
                path = self.write(d, space, data, labels, deleted=[4, 31], max_elements=700)
                r = hnswlib.Index(space, 8)
                r.load_index(path)
                self.assertEqual((r.element_count, r.max_elements, r.M), (500, 700, 16))
                self.assertEqual(r.get_ids_list(), sorted(labels.tolist()))
                want = data if space == "l2" else data / np.linalg.norm(data, axis=1,
                                                                        keepdims=True)
                np.testing.assert_allclose(r.get_items(labels[5:8]), want[5:8], rtol=1e-6)
                with self.assertRaisesRegex(RuntimeError, "Label not found"):
                    r.get_items([4])
                r.set_ef(500)
                q = rand(20, 8) - 0.5
                got, _ = r.knn_query(q, k=5)
                alive = ~np.isin(labels, [4, 31])
                np.testing.assert_array_equal(
                    got, brute_force(data[alive], q, 5, space, labels[alive])[0])
                r.unmark_deleted(31)
                self.assertEqual(int(r.knn_query(want[10], k=1)[0][0, 0]), 31)
                r.save_index(os.path.join(d, "migrated"))      # hnswlib -> strata
                m = hnswlib.Index(space, 8)
                m.load_index(os.path.join(d, "migrated"))
                self.assertEqual(m.element_count, 500)

    def test_wrong_dim_is_refused(self):
        d = tmpdir(self)
        path = self.write(d, "l2", rand(10, 8), np.arange(10))
        with self.assertRaisesRegex(RuntimeError, "corrupted or unsupported.*dim"):
            hnswlib.Index("l2", 9).load_index(path)
        with open(path, "r+b") as f:                           # cut short
            f.truncate(200)
        with self.assertRaisesRegex(RuntimeError, "do not fit"):
            hnswlib.Index("l2", 8).load_index(path)


class PickleTest(unittest.TestCase):
    def test_round_trip(self):
        p, data = make(dim=8, n=1500, max_elements=2000, space="cosine", M=8)
        p.add_items(rand(100, 8))
        p.mark_deleted(11)
        p.set_ef(33)
        p.set_num_threads(2)
        c = pickle.loads(pickle.dumps(p))
        self.assertEqual((c.space, c.dim, c.M, c.ef_construction, c.ef, c.num_threads,
                          c.max_elements, c.element_count),
                         ("cosine", 8, 8, 200, 33, 2, 2000, 1600))
        q = rand(50, 8)
        a, b = p.knn_query(q, k=5), c.knn_query(q, k=5)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
        self.assertEqual(c.get_ids_list(), p.get_ids_list())
        c.unmark_deleted(11)                        # the copy is independent of the original
        c.add_items(rand(5, 8))
        self.assertEqual((c.element_count, p.element_count), (1605, 1600))
        with self.assertRaises(RuntimeError):
            p.get_items([11])
        self.assertNotEqual(c._res.private_dir, p._res.private_dir)

    def test_uninitialised_and_constructor_forms(self):
        u = pickle.loads(pickle.dumps(hnswlib.Index("ip", 3)))
        self.assertEqual((u.space, u.dim, u.max_elements), ("ip", 3, 0))
        p, _ = make(dim=4, n=20)
        for c in (hnswlib.Index(p), hnswlib.Index(p.__getstate__()),
                  hnswlib.Index(params=p.__getstate__())):
            self.assertEqual(c.element_count, 20)
            np.testing.assert_array_equal(c.get_items([3]), p.get_items([3]))
        bad = p.__getstate__()
        bad["ser_version"] = 99
        with self.assertRaisesRegex(RuntimeError, "Unpickle Error"):
            hnswlib.Index(bad)


class ThreadsTest(unittest.TestCase):
    def test_queries_run_while_items_are_added(self):
        p, data = make(dim=8, n=2000, max_elements=4000)
        errors = []
        stop = threading.Event()

        def reader():
            try:
                while not stop.is_set():
                    labels, _ = p.knn_query(data[:50], k=3)
                    assert labels.shape == (50, 3)
            except BaseException as e:  # noqa: B036
                errors.append(e)

        threads = [threading.Thread(target=reader) for _ in range(3)]
        for t in threads:
            t.start()
        for i in range(10):
            p.add_items(rand(100, 8))
            p.mark_deleted(i)
        stop.set()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        self.assertEqual(p.element_count, 3000)


if __name__ == "__main__":
    unittest.main()
