# Tutorial 1: build an index, query it, copy it with pickle.
# This is hnswlib code: only the import line says strata.
from strata import hnswlib_compat as hnswlib
import pickle

import numpy as np

dim = 64
num_elements = 5000

vectors = np.float32(np.random.random((num_elements, dim)))
ids = np.arange(num_elements)

index = hnswlib.Index(space='l2', dim=dim)
index.init_index(max_elements=num_elements, ef_construction=200, M=16)
index.add_items(vectors, ids)
index.set_ef(50)

# Every element's nearest neighbour should be itself.
labels, distances = index.knn_query(vectors, k=1)
print("self recall:", np.mean(labels.reshape(-1) == ids))

index_copy = pickle.loads(pickle.dumps(index))
print("space=%s dim=%d M=%d ef_construction=%d"
      % (index_copy.space, index_copy.dim, index_copy.M, index_copy.ef_construction))
print("elements=%d capacity=%d ef=%d"
      % (index_copy.element_count, index_copy.max_elements, index_copy.ef))
copy_labels, copy_distances = index_copy.knn_query(vectors, k=1)
