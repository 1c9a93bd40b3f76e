// vecs.cc - reading the TEXMEX .fvecs / .ivecs files of ../shared/data for the
// benchmarks of tools/bench (declared in bench.h). Shared so that each bench
// program reads datasets the same way; datasets are read in place, never copied.
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "bench.h"
#include "report.h"

namespace bench {

bool read_vecs(const std::string &path, bool ints, Mat &out, std::string &err_out, size_t max_rows)
{
	FILE *f = fopen(path.c_str(), "rb");
	if (!f) {
		err_out = "cannot open " + path + ": " + strerror(errno);
		return false;
	}
	bool ok = false;
	int32_t d = 0;
	long size = -1;
	size_t rec = 0, rows = 0;
	std::vector<char> row;
	if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
		err_out = path + ": cannot find its size";
		goto done;
	}
	if (fread(&d, 4, 1, f) != 1) {
		err_out = path + ": empty";
		goto done;
	}
	if (d <= 0 || d > 1 << 20) {
		err_out = path + fmt(": bad dimension %d", d);
		goto done;
	}
	rec = 4 + 4 * (size_t)d;
	if ((size_t)size % rec != 0) {
		err_out = path + ": size is not a whole number of rows";
		goto done;
	}
	rows = (size_t)size / rec;
	if (max_rows && rows > max_rows)
		rows = max_rows;
	out.dim = (size_t)d;
	out.rows = rows;
	out.f.clear();
	out.i.clear();
	if (ints)
		out.i.resize(rows * out.dim);
	else
		out.f.resize(rows * out.dim);
	rewind(f);
	row.resize(rec);
	for (size_t r = 0; r < rows; r++) {
		int32_t dr;
		if (fread(row.data(), 1, rec, f) != rec) {
			err_out = path + fmt(": short read at row %zu", r);
			goto done;
		}
		memcpy(&dr, row.data(), 4);
		if (dr != d) {
			err_out = path + fmt(": row %zu has dimension %d, not %d", r, dr, d);
			goto done;
		}
		void *dst = ints ? (void *)(out.i.data() + r * out.dim) : (void *)(out.f.data() + r * out.dim);
		memcpy(dst, row.data() + 4, 4 * out.dim);
	}
	ok = true;
done:
	fclose(f);
	return ok;
}

} // namespace bench
