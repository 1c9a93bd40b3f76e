# Tutorial 3: a search that only returns the labels a function accepts.
# This is hnswlib code: only the import line says strata.
from strata import hnswlib_compat as hnswlib

import numpy as np

dim = 16
num_elements = 6000

data = np.float32(np.random.random((num_elements, dim)))

index = hnswlib.Index(space='l2', dim=dim)
index.init_index(max_elements=num_elements, ef_construction=100, M=16)
index.set_ef(10)
index.set_num_threads(2)
index.add_items(data, ids=np.arange(num_elements))


def only_even(label):
    return label % 2 == 0


# A Python filter is called for every candidate: one thread is the fast choice.
labels, distances = index.knn_query(data, k=1, num_threads=1, filter=only_even)
print("all labels even:", bool(np.all(labels % 2 == 0)))
