"""Reading the vectors, labels and deletion marks out of an index file written by hnswlib.

hnswlib's ``HierarchicalNSW::saveIndex`` writes (native byte order, 64-bit
size_t; strata builds only on little-endian 64-bit hosts, as hnswlib's files
are written on them):

    offsetLevel0 u64, max_elements u64, cur_element_count u64,
    size_data_per_element u64, label_offset u64, offsetData u64,
    maxlevel i32, enterpoint_node u32, maxM u64, maxM0 u64, M u64,
    mult f64, ef_construction u64                                   (96 bytes)
    level 0: cur_element_count records of size_data_per_element bytes:
        u32 link count (its byte 2 holds the deletion mark, bit 0),
        maxM0 u32 neighbours, dim f32 components, u64 label
    then the upper-layer link lists (not read: strata builds its own graph).

The file is untrusted: every size is checked against the others and against
the file's length before a byte of the records is read, and nothing is
allocated from an unchecked field. Only the fields strata needs are taken.
"""

import os
from collections import namedtuple

import numpy as np

HEADER = np.dtype([
    ("offset_level0", "<u8"), ("max_elements", "<u8"), ("count", "<u8"),
    ("size_data_per_element", "<u8"), ("label_offset", "<u8"), ("offset_data", "<u8"),
    ("max_level", "<i4"), ("enterpoint", "<u4"), ("max_M", "<u8"), ("max_M0", "<u8"),
    ("M", "<u8"), ("mult", "<f8"), ("ef_construction", "<u8"),
])
assert HEADER.itemsize == 96

HnswlibFile = namedtuple("HnswlibFile", "labels vectors deleted M ef_construction max_elements")

_M_MIN, _M_MAX = 2, 256  # strata's limits (engine/strata.h)


def read(path, dim):
    """The content of hnswlib index file ``path`` holding ``dim``-dimensional vectors.

    Raises ValueError naming the first inconsistency.
    """
    size = os.path.getsize(path)
    if size < HEADER.itemsize:
        raise ValueError("%d bytes: shorter than hnswlib's 96-byte header" % size)
    h = np.fromfile(path, dtype=HEADER, count=1)[0]
    count = int(h["count"])
    m0 = int(h["max_M0"])
    per = int(h["size_data_per_element"])
    links0 = 4 + 4 * m0
    if int(h["offset_level0"]) != 0:
        raise ValueError("offsetLevel0 %d, expected 0" % h["offset_level0"])
    if m0 == 0 or m0 > 1 << 16:
        raise ValueError("maxM0 %d out of range" % m0)
    if int(h["offset_data"]) != links0:
        raise ValueError("offsetData %d, expected %d for maxM0 %d" % (h["offset_data"], links0, m0))
    if int(h["label_offset"]) != links0 + 4 * dim:
        raise ValueError("label offset %d does not fit vectors of dim %d (is the Index's dim "
                         "right?)" % (h["label_offset"], dim))
    if per != links0 + 4 * dim + 8:
        raise ValueError("record size %d does not fit dim %d and maxM0 %d" % (per, dim, m0))
    if count > int(h["max_elements"]):
        raise ValueError("%d elements, above max_elements %d" % (count, h["max_elements"]))
    if count > (size - HEADER.itemsize) // per:
        raise ValueError("%d elements of %d bytes do not fit in the file's %d bytes"
                         % (count, per, size))
    records = np.fromfile(path, dtype=np.uint8, count=count * per,
                          offset=HEADER.itemsize).reshape(count, per)
    vectors = np.ascontiguousarray(records[:, links0:links0 + 4 * dim]).view("<f4")
    labels = np.ascontiguousarray(records[:, links0 + 4 * dim:per]).view("<u8").reshape(count)
    deleted = (records[:, 2] & 1).astype(bool)
    if np.unique(labels).size != count:
        raise ValueError("a label appears twice")
    M = min(max(int(h["M"]), _M_MIN), _M_MAX)  # noqa: N806
    efc = max(1, min(int(h["ef_construction"]), 1 << 31))
    return HnswlibFile(labels.astype(np.uint64), vectors.reshape(count, dim).astype(np.float32),
                       deleted, M, efc, int(h["max_elements"]))
