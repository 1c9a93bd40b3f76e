# Tutorial 4: delete a batch, then reuse its room for new elements.
# This is hnswlib code: only the import line says strata.
from strata import hnswlib_compat as hnswlib

import numpy as np

dim = 16
batch = 1000

labels1, data1 = np.arange(0, batch), np.float32(np.random.random((batch, dim)))
labels2, data2 = np.arange(batch, 2 * batch), np.float32(np.random.random((batch, dim)))
labels3, data3 = np.arange(2 * batch, 3 * batch), np.float32(np.random.random((batch, dim)))

index = hnswlib.Index(space='l2', dim=dim)
index.init_index(max_elements=2 * batch, ef_construction=200, M=16, allow_replace_deleted=True)
index.set_ef(10)
index.set_num_threads(2)

index.add_items(data1, labels1)
index.add_items(data2, labels2)  # the index is full now

for label in labels2:
    index.mark_deleted(label)

# Full, but the deleted elements' room can be taken over.
index.add_items(data3, labels3, replace_deleted=True)
print("elements:", index.get_current_count(), "of", index.get_max_elements())
