/*
 * make_seeds.c - writes the seed corpora of the fuzz harnesses from small
 * valid files, so the committed corpus can be regenerated and explained:
 *
 *   build/fuzz/make_seeds fuzz/corpus tests/golden/v1/tiny
 *
 * corpus/segment/   segments made by strata_build (threads 1, fixed seeds:
 *                   the same bytes every run) over tiny inputs: empty, one
 *                   vector, graphs with and without upper layers, each metric
 *                   and a few M; a few KB in all.
 * corpus/manifest/  the manifests of those builds, and encoded variants: no
 *                   segment, several, every field away from its default.
 * corpus/db_open/   manifests for fuzz_db_open, which puts the golden v1
 *                   segment under the names of seq 1, 2 and 3: the golden
 *                   MANIFEST, and the same naming two and three copies, with
 *                   other ef_search values, or none.
 * Manifests get a fixed uuid (strata_build draws a random one) so that every
 * run writes the same bytes. Existing files of the same name are replaced;
 * other files in the directories (fuzzer finds someone kept) are left alone.
 *
 *   build/fuzz/make_seeds --limits tests/fuzz-regress tests/golden/v1/tiny
 *
 * writes instead the hostile files of issue 5's "resource limits" into
 * <dir>/<target>/: headers claiming 2^40 vectors, a dim of 2^31, a level count
 * of 10^6, a section longer than the file, a manifest of 65537 segments, ...
 * each with valid checksums, so that the checks behind the checksums refuse
 * them (before any allocation is sized from them) in every build.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "le.h"
#include "manifest.h"
#include "segment.h"
#include "strata.h"
#include "xsum.h"

static const char *out_root;

static void die(const char *what, const char *detail)
{
	fprintf(stderr, "make_seeds: %s: %s\n", what, detail);
	exit(1);
}

static uint8_t *read_all(const char *path, size_t *len_out)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		die(path, strerror(errno));
	size_t cap = 1 << 16, len = 0;
	uint8_t *b = malloc(cap);
	while (b) {
		len += fread(b + len, 1, cap - len, f);
		if (len < cap)
			break;
		cap *= 2;
		uint8_t *nb = realloc(b, cap);
		if (!nb)
			free(b);
		b = nb;
	}
	fclose(f);
	if (!b)
		die(path, "out of memory");
	*len_out = len;
	return b;
}

static void write_seed(const char *target, const char *name, const void *data, size_t len)
{
	char dir[4096], path[4200];
	snprintf(dir, sizeof dir, "%s/%s", out_root, target);
	if (mkdir(out_root, 0755) != 0 && errno != EEXIST)
		die(out_root, strerror(errno));
	if (mkdir(dir, 0755) != 0 && errno != EEXIST)
		die(dir, strerror(errno));
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0)
		die(path, strerror(errno));
	printf("%s (%zu bytes)\n", path, len);
}

static void write_manifest(const char *target, const char *name, const struct mf_manifest *mf)
{
	uint8_t *buf;
	size_t len;
	if (mf_encode(mf, &buf, &len) != 0)
		die(name, strata_last_error_detail());
	write_seed(target, name, buf, len);
	free(buf);
}

static struct mf_manifest decode_file(const char *path)
{
	size_t len;
	uint8_t *b = read_all(path, &len);
	struct mf_manifest mf;
	if (mf_decode(b, len, &mf) != 0)
		die(path, strata_last_error_detail());
	free(b);
	return mf;
}

/* Deterministic vectors in [-1, 1). */
static float *vectors(size_t n, uint32_t dim, uint64_t seed)
{
	float *v = malloc((n ? n : 1) * dim * sizeof *v);
	if (!v)
		die("vectors", "out of memory");
	for (size_t i = 0; i < n * dim; i++) {
		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		v[i] = (float)(seed >> 40) / (float)(1u << 23) - 1.0f;
	}
	return v;
}

struct build_spec {
	const char *name;
	uint32_t dim;
	strata_metric metric;
	uint32_t M;
	size_t n;
	int custom_ids;
};

static void build_one(const char *tmp, const struct build_spec *s)
{
	char dir[4096], path[4200];
	snprintf(dir, sizeof dir, "%s/%s", tmp, s->name);
	strata_options o;
	strata_options_default(&o);
	o.dim = s->dim;
	o.metric = s->metric;
	o.M = s->M;
	o.ef_construction = 16;
	o.threads = 1;
	o.seed = 7;
	float *v = vectors(s->n, s->dim, s->n * 31 + s->dim);
	uint64_t ids[64];
	for (size_t i = 0; i < s->n && i < 64; i++)
		ids[i] = s->custom_ids ? 1000000007ull * (i + 1) : i;
	if (strata_build(dir, &o, s->custom_ids ? ids : NULL, v, s->n) != 0)
		die(s->name, strata_last_error_detail());
	free(v);

	size_t len;
	char name[256];
	snprintf(path, sizeof path, "%s/seg-0000000000000001.seg", dir);
	uint8_t *seg = read_all(path, &len);
	snprintf(name, sizeof name, "%s.seg", s->name);
	write_seed("segment", name, seg, len);
	free(seg);
	unlink(path);

	snprintf(path, sizeof path, "%s/" MF_FILE_NAME, dir);
	struct mf_manifest mf = decode_file(path);
	memset(mf.db_uuid, 0x5a, sizeof mf.db_uuid);
	snprintf(name, sizeof name, "%s.manifest", s->name);
	write_manifest("manifest", name, &mf);
	mf_free(&mf);
	unlink(path);
	rmdir(dir);
}

static void manifest_variants(void)
{
	struct mf_segment segs[4] = {
		{.seq = 1, .count = 10, .file_size = 1344, .header_xxh3 = 0x0123456789abcdefull},
		{.seq = 4, .count = 0, .file_size = 288, .header_xxh3 = 0xfedcba9876543210ull,
		 .tomb_gen = 2, .level = 1},
		{.seq = 2, .count = 100000, .file_size = 1u << 30, .header_xxh3 = 1, .level = 3},
		{.seq = 9, .count = 1, .file_size = 512, .header_xxh3 = 2, .tomb_gen = 7},
	};
	struct mf_manifest mf = {
		.dim = 3,
		.metric = STRATA_METRIC_IP,
		.M = 8,
		.ef_construction = 100,
		.ef_search = 50,
		.generation = 12,
		.next_seq = 10,
		.checkpoint_lsn = 77,
		.segment_count = 0,
		.segments = segs,
	};
	memset(mf.db_uuid, 0xa5, sizeof mf.db_uuid);
	write_manifest("manifest", "empty-db.manifest", &mf);
	mf.segment_count = 4;
	mf.metric = STRATA_METRIC_COSINE;
	write_manifest("manifest", "four-segments.manifest", &mf);
	mf.segment_count = 1;
	mf.dim = STRATA_DIM_MAX;
	mf.M = STRATA_M_MAX;
	mf.ef_construction = STRATA_EF_MAX;
	mf.ef_search = STRATA_EF_MAX;
	mf.generation = UINT64_MAX;
	mf.next_seq = UINT64_MAX;
	write_manifest("manifest", "limits.manifest", &mf);
}

static void db_open_seeds(const char *golden)
{
	char path[4200];
	snprintf(path, sizeof path, "%s/" MF_FILE_NAME, golden);
	size_t len;
	uint8_t *raw = read_all(path, &len);
	write_seed("db_open", "golden.manifest", raw, len); /* as shipped, its own uuid */
	free(raw);

	struct mf_manifest mf = decode_file(path);
	if (mf.segment_count != 1)
		die(path, "the golden database should have one segment");
	struct mf_segment segs[3];
	for (int i = 0; i < 3; i++) {
		segs[i] = mf.segments[0];
		segs[i].seq = (uint64_t)i + 1;
	}
	struct mf_manifest v = mf;
	v.segments = segs;
	v.next_seq = 4;
	v.segment_count = 2;
	write_manifest("db_open", "two-copies.manifest", &v);
	v.segment_count = 3;
	v.ef_search = 1;
	write_manifest("db_open", "three-copies-ef1.manifest", &v);
	v.segment_count = 0;
	write_manifest("db_open", "no-segment.manifest", &v);
	v.segment_count = 1;
	segs[0].seq = 3;
	v.ef_search = 500;
	v.generation = 99;
	write_manifest("db_open", "seq3-ef500.manifest", &v);
	mf_free(&mf);
}

/* ---- --limits: hostile headers with valid checksums ------------------------------ */

static void seg_reseal(uint8_t *b)
{
	/* The table as written (five entries), whatever the header now claims. */
	uint64_t table_off = le_load64(b + SEG_OFF_TABLE_OFF);
	le_store64(b + SEG_OFF_TABLE_XXH3,
	           xsum64(b + table_off, (size_t)SEG_SEC_KIND_MAX * SEG_SECTION_ENTRY_SIZE));
	le_store64(b + SEG_OFF_HEADER_XXH3, xsum64(b, SEG_OFF_HEADER_XXH3));
}

/* The golden segment with one u32 or u64 header field replaced, resealed. */
static void seg_limit(const uint8_t *seg, size_t len, const char *name, size_t off, int width,
                      uint64_t value)
{
	uint8_t *b = malloc(len);
	if (!b)
		die(name, "out of memory");
	memcpy(b, seg, len);
	if (width == 4)
		le_store32(b + off, (uint32_t)value);
	else
		le_store64(b + off, value);
	seg_reseal(b);
	write_seed("segment", name, b, len);
	free(b);
}

/* The golden segment with section `kind`'s table entry (size or offset) replaced. */
static void seg_section_limit(const uint8_t *seg, size_t len, const char *name, uint32_t kind,
                              size_t field, uint64_t value)
{
	uint8_t *b = malloc(len);
	if (!b)
		die(name, "out of memory");
	memcpy(b, seg, len);
	uint64_t table_off = le_load64(b + SEG_OFF_TABLE_OFF);
	for (uint32_t i = 0; i < SEG_SEC_KIND_MAX; i++) {
		uint8_t *e = b + table_off + (size_t)i * SEG_SECTION_ENTRY_SIZE;
		if (le_load32(e) == kind)
			le_store64(e + field, value);
	}
	seg_reseal(b);
	write_seed("segment", name, b, len);
	free(b);
}

/* A manifest with its header field at `off` replaced and both checksums right. */
static void mf_limit(const uint8_t *mf, size_t len, const char *target, const char *name,
                     size_t off, uint32_t value)
{
	uint8_t *b = malloc(len);
	if (!b)
		die(name, "out of memory");
	memcpy(b, mf, len);
	le_store32(b + off, value);
	le_store64(b + MF_OFF_BODY_XXH3, xsum64(b + MF_HEADER_SIZE, len - MF_HEADER_SIZE));
	le_store64(b + MF_OFF_HEADER_XXH3, xsum64(b, MF_OFF_HEADER_XXH3));
	write_seed(target, name, b, len);
	free(b);
}

static void limits(const char *golden)
{
	char path[4200];
	size_t seg_len, mf_len;
	snprintf(path, sizeof path, "%s/seg-0000000000000001.seg", golden);
	uint8_t *seg = read_all(path, &seg_len);
	snprintf(path, sizeof path, "%s/" MF_FILE_NAME, golden);
	uint8_t *mf = read_all(path, &mf_len);

	seg_limit(seg, seg_len, "count-2p40.seg", SEG_OFF_COUNT, 8, 1ull << 40);
	seg_limit(seg, seg_len, "count-u64-max.seg", SEG_OFF_COUNT, 8, UINT64_MAX);
	seg_limit(seg, seg_len, "dim-2p31.seg", SEG_OFF_DIM, 4, 1ull << 31);
	seg_limit(seg, seg_len, "max-level-1e6.seg", SEG_OFF_MAX_LEVEL, 4, 1000000);
	seg_limit(seg, seg_len, "upper-blocks-2p62.seg", SEG_OFF_UPPER_BLOCKS, 8, 1ull << 62);
	seg_limit(seg, seg_len, "stride-u32-max.seg", SEG_OFF_STRIDE, 4, UINT32_MAX);
	seg_limit(seg, seg_len, "section-count-2p31.seg", SEG_OFF_SECTION_COUNT, 4, 1ull << 31);
	seg_limit(seg, seg_len, "entry-beyond-count.seg", SEG_OFF_ENTRY, 4, 100);
	seg_section_limit(seg, seg_len, "nodes-section-longer-than-file.seg", SEG_SEC_NODES, 16,
	                  1ull << 40);
	seg_section_limit(seg, seg_len, "ids-section-offset-u64-max.seg", SEG_SEC_IDS, 8,
	                  UINT64_MAX - 63);

	/* The header alone checks out; the length then cannot match 65537 entries. */
	mf_limit(mf, mf_len, "manifest", "segment-count-65537.manifest", MF_OFF_SEGMENT_COUNT,
	         MF_SEGMENTS_MAX + 1);
	mf_limit(mf, mf_len, "manifest", "segment-count-u32-max.manifest", MF_OFF_SEGMENT_COUNT,
	         UINT32_MAX);
	mf_limit(mf, mf_len, "manifest", "dim-2p31.manifest", MF_OFF_DIM, 1u << 31);
	mf_limit(mf, mf_len, "manifest", "m-1.manifest", MF_OFF_M, 1);
	/* Beside the golden segment: entries that do not describe it. */
	struct mf_manifest m = decode_file(path);
	struct mf_manifest v = m;
	struct mf_segment e = m.segments[0];
	v.segments = &e;
	e.file_size += 64;
	write_manifest("db_open", "entry-file-size-off-by-64.manifest", &v);
	e = m.segments[0];
	e.count = 1ull << 40;
	write_manifest("db_open", "entry-count-2p40.manifest", &v);
	e = m.segments[0];
	e.header_xxh3 ^= 1;
	write_manifest("db_open", "entry-other-header-xxh3.manifest", &v);
	e = m.segments[0];
	e.seq = 4;
	v.next_seq = 5;
	write_manifest("db_open", "entry-names-missing-seq4.manifest", &v);
	v.next_seq = m.next_seq;
	e = m.segments[0];
	v.dim = m.dim + 1;
	write_manifest("db_open", "dim-differs-from-segment.manifest", &v);
	mf_free(&m);
	free(seg);
	free(mf);
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "--limits") == 0) {
		out_root = argv[2];
		limits(argv[3]);
		return 0;
	}
	if (argc != 3) {
		fprintf(stderr, "usage: %s <corpus dir, e.g. fuzz/corpus> <golden db, e.g. "
		                "tests/golden/v1/tiny>\n"
		                "       %s --limits <regression dir, e.g. tests/fuzz-regress> <golden db>\n",
		        argv[0], argv[0]);
		return 2;
	}
	out_root = argv[1];
	char tmp[] = "/tmp/strata-seeds-XXXXXX";
	if (!mkdtemp(tmp))
		die("mkdtemp", strerror(errno));

	static const struct build_spec specs[] = {
		{"l2-d2-n0", 2, STRATA_METRIC_L2, 2, 0, 0},
		{"l2-d1-n1", 1, STRATA_METRIC_L2, 2, 1, 0},
		{"l2-d2-n6-m2", 2, STRATA_METRIC_L2, 2, 6, 0},
		{"ip-d3-n10-m3-ids", 3, STRATA_METRIC_IP, 3, 10, 1},
		{"cos-d2-n16-m2", 2, STRATA_METRIC_COSINE, 2, 16, 0},
		{"l2-d4-n12-m4", 4, STRATA_METRIC_L2, 4, 12, 1},
	};
	for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++)
		build_one(tmp, &specs[i]);
	manifest_variants();
	db_open_seeds(argv[2]);
	rmdir(tmp);
	return 0;
}
