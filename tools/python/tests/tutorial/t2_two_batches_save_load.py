# Tutorial 2: add a first batch, save, load with a larger capacity, add the rest.
# This is hnswlib code: only the import line says strata.
from strata import hnswlib_compat as hnswlib

import numpy as np

dim = 16
num_elements = 8000

data = np.float32(np.random.random((num_elements, dim)))
first, second = data[:num_elements // 2], data[num_elements // 2:]

index = hnswlib.Index(space='l2', dim=dim)
index.init_index(max_elements=num_elements // 2, ef_construction=100, M=16)
index.set_ef(10)
index.set_num_threads(2)

index.add_items(first)
labels, distances = index.knn_query(first, k=1)
recall_first = np.mean(labels.reshape(-1) == np.arange(len(first)))
print("recall, first batch:", recall_first)

index.save_index("first_half.bin")
del index

index = hnswlib.Index(space='l2', dim=dim)
index.load_index("first_half.bin", max_elements=num_elements)  # room for the second batch
index.add_items(second)
labels, distances = index.knn_query(data, k=1)
recall_both = np.mean(labels.reshape(-1) == np.arange(num_elements))
print("recall, both batches:", recall_both)
