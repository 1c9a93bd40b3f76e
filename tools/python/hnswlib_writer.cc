// hnswlib_writer.cc - writes an index file with hnswlib itself (libhnswlib-dev),
// so the Python tests can check that hnswlib_compat.Index.load_index imports
// real hnswlib files: vectors, labels and deletion marks.
//
//   strata-hnswlib-writer OUT SPACE DIM M EF_CONSTRUCTION MAX_ELEMENTS VECTORS LABELS [DELETED]
//
// VECTORS: raw little-endian float32, n * DIM; LABELS: raw uint64, n;
// DELETED: raw uint64 labels to mark deleted. SPACE: l2, ip or cosine (for
// cosine the vectors are normalised first, as hnswlib's Python binding does).
// Test tool: exits 1 with a message on any failure. Never installed.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

// hnswlib's headers are not warning-clean; from /usr/include (a system directory)
// their warnings are not reported, so -Werror holds for this file.
#include <hnswlib/hnswlib.h>

template <typename T> static std::vector<T> read_raw(const char *path)
{
	std::ifstream in(path, std::ios::binary);
	if (!in) {
		std::fprintf(stderr, "cannot read %s\n", path);
		std::exit(1);
	}
	std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
	std::vector<T> out(bytes.size() / sizeof(T));
	std::memcpy(out.data(), bytes.data(), out.size() * sizeof(T));
	return out;
}

int main(int argc, char **argv)
{
	if (argc != 9 && argc != 10) {
		std::fprintf(stderr, "usage: %s OUT SPACE DIM M EF_CONSTRUCTION MAX_ELEMENTS VECTORS "
		                     "LABELS [DELETED]\n", argv[0]);
		return 1;
	}
	std::string space = argv[2];
	size_t dim = std::strtoul(argv[3], nullptr, 10);
	size_t M = std::strtoul(argv[4], nullptr, 10);
	size_t efc = std::strtoul(argv[5], nullptr, 10);
	size_t max_elements = std::strtoul(argv[6], nullptr, 10);
	std::vector<float> vecs = read_raw<float>(argv[7]);
	std::vector<uint64_t> labels = read_raw<uint64_t>(argv[8]);
	if (dim == 0 || vecs.size() != labels.size() * dim) {
		std::fprintf(stderr, "%zu floats for %zu labels of dim %zu\n", vecs.size(), labels.size(), dim);
		return 1;
	}
	hnswlib::L2Space l2(dim);
	hnswlib::InnerProductSpace ip(dim);
	hnswlib::SpaceInterface<float> *s = space == "l2" ? static_cast<hnswlib::SpaceInterface<float> *>(&l2)
	                                                  : static_cast<hnswlib::SpaceInterface<float> *>(&ip);
	try {
		hnswlib::HierarchicalNSW<float> index(s, max_elements, M, efc, 100);
		for (size_t i = 0; i < labels.size(); i++) {
			float *v = &vecs[i * dim];
			if (space == "cosine") {
				double n = 0;
				for (size_t j = 0; j < dim; j++)
					n += (double)v[j] * v[j];
				for (size_t j = 0; j < dim; j++)
					v[j] = (float)(v[j] / (std::sqrt(n) + 1e-30));
			}
			index.addPoint(v, (hnswlib::labeltype)labels[i]);
		}
		if (argc == 10)
			for (uint64_t l : read_raw<uint64_t>(argv[9]))
				index.markDelete((hnswlib::labeltype)l);
		index.saveIndex(argv[1]);
	} catch (const std::exception &e) {
		std::fprintf(stderr, "hnswlib: %s\n", e.what());
		return 1;
	}
	return 0;
}
