# Tutorial 5: the whole workflow on SIFT 10k (real data): build, query, sweep ef
# with recall against brute force, save, load, and check the answers are the same.
# This is hnswlib code: only the import line says strata. ANN_DATA names the
# folder of the datasets (siftsmall/siftsmall_base.fvecs ...).
from strata import hnswlib_compat as hnswlib
import os

import numpy as np


def read_fvecs(path):
    raw = np.fromfile(path, dtype=np.int32)
    dim = raw[0]
    return raw.reshape(-1, dim + 1)[:, 1:].copy().view(np.float32)


sift = os.path.join(os.environ["ANN_DATA"], "siftsmall")
base = read_fvecs(os.path.join(sift, "siftsmall_base.fvecs"))
queries = read_fvecs(os.path.join(sift, "siftsmall_query.fvecs"))
k = 10

# The exact answers, by brute force in double precision.
b, q = base.astype(np.float64), queries.astype(np.float64)
exact = (q ** 2).sum(1)[:, None] - 2 * q @ b.T + (b ** 2).sum(1)[None, :]
truth = np.argsort(exact, axis=1, kind="stable")[:, :k]

index = hnswlib.Index(space='l2', dim=base.shape[1])
index.init_index(max_elements=len(base), ef_construction=200, M=16)
index.add_items(base, np.arange(len(base)))

recall = {}
for ef in (10, 20, 40, 80, 160):
    index.set_ef(ef)
    labels, distances = index.knn_query(queries, k=k)
    recall[ef] = np.mean([len(set(found) & set(true)) / k for found, true in zip(labels, truth)])
    print("ef %4d  recall@%d %.4f" % (ef, k, recall[ef]))

index.save_index("sift10k.index")
loaded = hnswlib.Index(space='l2', dim=base.shape[1])
loaded.load_index("sift10k.index")

identical = True
for ef in recall:
    index.set_ef(ef)
    loaded.set_ef(ef)
    before, d_before = index.knn_query(queries, k=k)
    after, d_after = loaded.knn_query(queries, k=k)
    identical = identical and np.array_equal(before, after) and np.array_equal(d_before, d_after)
print("identical answers after save and load:", identical)
