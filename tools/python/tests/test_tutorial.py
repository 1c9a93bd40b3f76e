"""hnswlib tutorials, written as plain hnswlib code, run on strata with only the import changed.

Each script of tests/tutorial/ is hnswlib code whose one strata line is
``from strata import hnswlib_compat as hnswlib`` (checked below: put back
``import hnswlib`` and nothing else names strata). Each runs in a fresh
namespace and working directory, with numpy's global generator seeded; its
results are then checked here against numpy brute force. The README's Python
example is run the same way, so the documentation cannot rot.
"""
import contextlib
import io
import os
import re
import unittest

import numpy as np

from support import DATA, brute_force, data_path, read_vecs, tmpdir

HERE = os.path.dirname(os.path.abspath(__file__))
IMPORT = "from strata import hnswlib_compat as hnswlib"
README = os.path.join(HERE, "..", "..", "..", "README.md")


def run_script(test, source, seed=1234):
    """Execute ``source`` in a new namespace in a temporary working directory."""
    cwd = os.getcwd()
    os.chdir(tmpdir(test))
    np.random.seed(seed)
    ns = {"__name__": "__main__"}
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(source, "<tutorial>", "exec"), ns)
    finally:
        os.chdir(cwd)
    ns["_stdout"] = out.getvalue()
    return ns


def tutorial(test, name):
    with open(os.path.join(HERE, "tutorial", name)) as f:
        source = f.read()
    # Only the import line names strata: with `import hnswlib` it is hnswlib's own code.
    self_check = source.replace(IMPORT, "import hnswlib")
    test.assertEqual(source.count(IMPORT), 1, name)
    test.assertIsNone(re.search(r"\bstrata\b", self_check.split("\n", 3)[3]),
                      "%s names strata outside its import" % name)
    return run_script(test, source)


class TutorialTest(unittest.TestCase):
    def test_t1_build_query_pickle(self):
        ns = tutorial(self, "t1_build_query_pickle.py")
        vectors, labels = ns["vectors"], ns["labels"]
        self.assertEqual((labels.shape, labels.dtype, ns["distances"].dtype),
                         ((5000, 1), np.uint64, np.float32))
        self.assertGreaterEqual(np.mean(labels.reshape(-1) == ns["ids"]), 0.99)
        c = ns["index_copy"]
        self.assertEqual((c.space, c.dim, c.M, c.ef_construction, c.element_count,
                          c.max_elements, c.ef), ("l2", 64, 16, 200, 5000, 5000, 50))
        np.testing.assert_array_equal(ns["copy_labels"], labels)
        np.testing.assert_array_equal(ns["copy_distances"], ns["distances"])
        q = vectors[:200] + 0.01
        want, _ = brute_force(vectors, q, 5, "l2")
        got, _ = ns["index"].knn_query(q, k=5)
        self.assertGreaterEqual(np.mean([len(set(a) & set(b)) / 5 for a, b in zip(got, want)]),
                                0.95)

    def test_t2_two_batches_save_load(self):
        ns = tutorial(self, "t2_two_batches_save_load.py")
        self.assertGreaterEqual(ns["recall_first"], 0.99)
        self.assertGreaterEqual(ns["recall_both"], 0.99)
        index = ns["index"]
        self.assertEqual((index.element_count, index.max_elements), (8000, 8000))
        np.testing.assert_array_equal(index.get_items(np.arange(8000)), ns["data"])

    def test_t3_filter(self):
        ns = tutorial(self, "t3_filter.py")
        labels, data = ns["labels"], ns["data"]
        self.assertTrue((labels % 2 == 0).all())
        even = np.arange(0, 6000, 2)
        self.assertGreaterEqual(np.mean(labels[even, 0] == even), 0.99)  # even rows: themselves
        want, _ = brute_force(data[even], data[1:200:2], 1, "l2", even)  # odd rows: nearest even
        self.assertGreaterEqual(np.mean(labels[1:200:2] == want), 0.9)

    def test_t4_replace_deleted(self):
        ns = tutorial(self, "t4_replace_deleted.py")
        index = ns["index"]
        self.assertEqual((index.get_current_count(), index.get_max_elements()), (2000, 2000))
        self.assertEqual(index.get_ids_list(), list(range(1000)) + list(range(2000, 3000)))
        np.testing.assert_array_equal(index.get_items(ns["labels3"]), ns["data3"])
        index.set_ef(100)
        found, _ = index.knn_query(ns["data3"], k=1)
        self.assertGreaterEqual(np.mean(found[:, 0] == ns["labels3"]), 0.99)
        self.assertFalse(np.isin(index.knn_query(ns["data2"], k=5)[0], ns["labels2"]).any())

    def test_t5_sift_workflow(self):
        data_path("siftsmall/siftsmall_base.fvecs")  # skips without the dataset
        os.environ["ANN_DATA"] = DATA
        ns = tutorial(self, "t5_sift_workflow.py")
        truth_file = read_vecs(data_path("siftsmall/siftsmall_groundtruth.ivecs"), np.int32)
        np.testing.assert_array_equal(ns["truth"], truth_file[:, :10])  # the script's brute force
        recall = ns["recall"]
        efs = sorted(recall)
        for lo, hi in zip(efs, efs[1:]):
            self.assertLessEqual(recall[lo], recall[hi] + 0.005, recall)
        self.assertGreaterEqual(recall[160], 0.99, recall)
        self.assertGreaterEqual(recall[10], 0.8, recall)
        self.assertTrue(ns["identical"])
        self.assertIn("identical answers after save and load: True", ns["_stdout"])


class ReadmeTest(unittest.TestCase):
    def test_readme_python_example_runs(self):
        with open(README) as f:
            text = f.read()
        section = text[text.index("\n## Python"):]
        blocks = re.findall(r"```python\n(.*?)```", section, re.S)
        self.assertTrue(blocks, "no ```python block in README.md's Python section")
        ns = run_script(self, blocks[0])
        self.assertIn("hnswlib", ns)


if __name__ == "__main__":
    unittest.main()
