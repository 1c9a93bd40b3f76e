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
 * corpus/tombstone/ deletion files of 0, 1, 63, 64, 65 and 200 nodes with
 *                   none, all, every third and scattered nodes deleted.
 * corpus/bundle/    bundles (zstd level 1..19, one thread) of the golden
 *                   database, of two of the built ones, of a database with
 *                   no segment and of one naming the golden segment twice.
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
 * them (before any allocation is sized from them) in every build; deletion
 * files claiming 2^32-2 or 2^64-1 nodes or deleted nodes; bundles claiming
 * 2^20 entries, 2^64-1 raw bytes, a frame of 2^64-1 bytes, and a frame that
 * inflates to 16 MiB under a declared 160; a MANIFEST checkpoint and a WAL
 * file's first LSN past the largest LSN (2^63-1).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include "bundle.h"
#include "le.h"
#include "manifest.h"
#include "segment.h"
#include "strata.h"
#include "tombstone.h"
#include "wal.h"
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

static void tombstone_seeds(void)
{
	static const uint64_t counts[] = {0, 1, 63, 64, 65, 200};
	static const char *const pats[] = {"none", "all", "third", "scattered"};
	for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
		for (int p = 0; p < 4; p++) {
			uint64_t n = counts[c], bits[4] = {0, 0, 0, 0};
			if (n == 0 && p > 0)
				continue;
			for (uint64_t i = 0; i < n; i++)
				if (p == 1 || (p == 2 && i % 3 == 0) || (p == 3 && (i * 2654435761u) % 7 == 0))
					bits[i / 64] |= 1ull << (i % 64);
			uint8_t *buf;
			size_t len;
			if (tomb_encode(c + 1, 0x0123456789abcdefull * (c + 1), (uint64_t)p + 1, bits, n, &buf,
			                &len) != 0)
				die("tomb_encode", strata_last_error_detail());
			char name[64];
			snprintf(name, sizeof name, "n%llu-%s.del", (unsigned long long)n, pats[p]);
			write_seed("tombstone", name, buf, len);
			free(buf);
		}
	}
}

/* The bytes bundle_write makes of `files` (through a regular file, so written in place). */
static uint8_t *pack_files(const struct bundle_file *files, uint32_t count, const uint8_t uuid[16],
                           int level, size_t *len_out)
{
	char path[] = "/tmp/strata-seed-bundle-XXXXXX";
	int fd = mkstemp(path);
	if (fd < 0)
		die(path, strerror(errno));
	struct bundle_pack_opts o = {.level = level, .threads = 1};
	if (bundle_write(fd, path, files, count, uuid, &o, NULL) != 0)
		die(path, strata_last_error_detail());
	close(fd);
	uint8_t *b = read_all(path, len_out);
	unlink(path);
	return b;
}

/* Pack the database in `dir` as bundle seed `name`. */
static void pack_dir(const char *dir, const char *target, const char *name, int level)
{
	struct bundle_snapshot snap;
	if (bundle_snapshot_open(dir, &snap) != 0)
		die(dir, strata_last_error_detail());
	size_t len;
	uint8_t *b = pack_files(snap.files, snap.count, snap.db_uuid, level, &len);
	bundle_snapshot_free(&snap);
	write_seed(target, name, b, len);
	free(b);
}

static void copy_file(const char *from, const char *to)
{
	size_t len;
	uint8_t *b = read_all(from, &len);
	FILE *f = fopen(to, "wb");
	if (!f || fwrite(b, 1, len, f) != len || fclose(f) != 0)
		die(to, strerror(errno));
	free(b);
}

/* Remove a flat directory of files. */
static void remove_dir(const char *dir)
{
	static const char *const names[] = {MF_FILE_NAME, "seg-0000000000000001.seg",
	                                    "seg-0000000000000002.seg", "LOCK"};
	char p[4200];
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		snprintf(p, sizeof p, "%s/%s", dir, names[i]);
		unlink(p);
	}
	rmdir(dir);
}

static void bundle_seeds(const char *tmp, const char *golden)
{
	char dir[4096], p[4200], q[4200];
	pack_dir(golden, "bundle", "golden-l3.bundle", 3);
	pack_dir(golden, "bundle", "golden-l19.bundle", 19);

	/* Built databases, with a fixed uuid so every run writes the same bytes. */
	static const struct build_spec specs[] = {
		{"b-l2-d2-n0", 2, STRATA_METRIC_L2, 2, 0, 0},
		{"b-ip-d3-n10-m3-ids", 3, STRATA_METRIC_IP, 3, 10, 1},
	};
	for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
		const struct build_spec *s = &specs[i];
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
		for (size_t j = 0; j < s->n; j++)
			ids[j] = 1000000007ull * (j + 1);
		if (strata_build(dir, &o, s->custom_ids ? ids : NULL, v, s->n) != 0)
			die(s->name, strata_last_error_detail());
		free(v);
		snprintf(p, sizeof p, "%s/" MF_FILE_NAME, dir);
		struct mf_manifest mf = decode_file(p);
		memset(mf.db_uuid, 0x5a, sizeof mf.db_uuid);
		if (mf_commit(dir, &mf) != 0)
			die(dir, strata_last_error_detail());
		mf_free(&mf);
		snprintf(p, sizeof p, "%s.bundle", s->name + 2);
		pack_dir(dir, "bundle", p, 1 + (int)i);
		remove_dir(dir);
	}

	/* The golden segment twice (seq 1 and 2), and no segment at all. */
	snprintf(p, sizeof p, "%s/" MF_FILE_NAME, golden);
	struct mf_manifest mf = decode_file(p);
	struct mf_segment segs[2] = {mf.segments[0], mf.segments[0]};
	segs[1].seq = 2;
	struct mf_manifest v = mf;
	v.segments = segs;
	v.segment_count = 2;
	v.next_seq = 3;
	snprintf(dir, sizeof dir, "%s/two", tmp);
	if (mkdir(dir, 0755) != 0)
		die(dir, strerror(errno));
	for (int s = 1; s <= 2; s++) {
		snprintf(p, sizeof p, "%s/seg-0000000000000001.seg", golden);
		snprintf(q, sizeof q, "%s/seg-000000000000000%d.seg", dir, s);
		copy_file(p, q);
	}
	if (mf_commit(dir, &v) != 0)
		die(dir, strata_last_error_detail());
	pack_dir(dir, "bundle", "golden-segment-twice.bundle", 3);
	remove_dir(dir);
	snprintf(dir, sizeof dir, "%s/none", tmp);
	if (mkdir(dir, 0755) != 0)
		die(dir, strerror(errno));
	v.segment_count = 0;
	if (mf_commit(dir, &v) != 0)
		die(dir, strata_last_error_detail());
	pack_dir(dir, "bundle", "no-segment.bundle", 3);
	remove_dir(dir);
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

/* A manifest with its u32 (width 4) or u64 header field at `off` replaced and both checksums right. */
static void mf_limit(const uint8_t *mf, size_t len, const char *target, const char *name,
                     size_t off, int width, uint64_t value)
{
	uint8_t *b = malloc(len);
	if (!b)
		die(name, "out of memory");
	memcpy(b, mf, len);
	if (width == 4)
		le_store32(b + off, (uint32_t)value);
	else
		le_store64(b + off, value);
	le_store64(b + MF_OFF_BODY_XXH3, xsum64(b + MF_HEADER_SIZE, len - MF_HEADER_SIZE));
	le_store64(b + MF_OFF_HEADER_XXH3, xsum64(b, MF_OFF_HEADER_XXH3));
	write_seed(target, name, b, len);
	free(b);
}

/* A deletion file of `count` nodes with its u64 header field at `off` replaced, resealed. */
static void tomb_limit(const char *name, uint64_t count, size_t off, uint64_t value)
{
	uint64_t bits[2] = {0x5, 0x0};
	uint8_t *b;
	size_t len;
	if (tomb_encode(3, 0xabcdefull, 2, bits, count, &b, &len) != 0)
		die(name, strata_last_error_detail());
	if (off)
		le_store64(b + off, value);
	else
		le_store64(b + len - 8, le_load64(b + len - 8) | value); /* the last word */
	le_store64(b + TOMB_OFF_BODY_XXH3, xsum64(b + TOMB_HEADER_SIZE, len - TOMB_HEADER_SIZE));
	le_store64(b + TOMB_OFF_HEADER_XXH3, xsum64(b, TOMB_OFF_HEADER_XXH3));
	write_seed("tombstone", name, b, len);
	free(b);
}

/*
 * After a bundle's header or entry headers were edited: every checksum and
 * copy made right again (entry header checksums, their index copies, the
 * index checksum, the footer's copies of the header fields, its checksum).
 * The index is walked with the footer's entry count as written.
 */
static void bnd_reseal(uint8_t *b, size_t len)
{
	uint8_t *f = b + len - BUNDLE_FOOTER_SIZE;
	uint32_t count = le_load32(f + BUNDLE_FTR_ENTRY_COUNT);
	uint8_t *idx = b + le_load64(f + BUNDLE_FTR_INDEX_OFF);
	for (uint32_t i = 0; i < count; i++) {
		uint8_t *ie = idx + (size_t)i * BUNDLE_INDEX_ENTRY_SIZE;
		uint8_t *e = b + le_load64(ie);
		le_store64(e + BUNDLE_ENT_HEADER_XXH3, xsum64(e, BUNDLE_ENT_HEADER_XXH3));
		memcpy(ie + 8, e, BUNDLE_ENTRY_SIZE);
	}
	le_store64(b + BUNDLE_OFF_HEADER_XXH3, xsum64(b, BUNDLE_OFF_HEADER_XXH3));
	le_store64(f + BUNDLE_FTR_INDEX_XXH3, xsum64(idx, (size_t)count * BUNDLE_INDEX_ENTRY_SIZE));
	le_store32(f + BUNDLE_FTR_ENTRY_COUNT, le_load32(b + BUNDLE_OFF_ENTRY_COUNT));
	le_store64(f + BUNDLE_FTR_TOTAL_RAW, le_load64(b + BUNDLE_OFF_TOTAL_RAW));
	le_store64(f + BUNDLE_FTR_HEADER_XXH3, le_load64(b + BUNDLE_OFF_HEADER_XXH3));
	le_store64(f + BUNDLE_FTR_FOOTER_XXH3, xsum64(f, BUNDLE_FTR_FOOTER_XXH3));
}

/* The golden bundle with one header field (entry < 0) or entry header field replaced. */
static void bnd_limit(const uint8_t *bnd, size_t len, const char *name, int entry, size_t off,
                      int width, uint64_t value, uint64_t total_add)
{
	uint8_t *b = malloc(len);
	if (!b)
		die(name, "out of memory");
	memcpy(b, bnd, len);
	uint8_t *p = b;
	if (entry >= 0) {
		const uint8_t *idx = b + le_load64(b + len - BUNDLE_FOOTER_SIZE + BUNDLE_FTR_INDEX_OFF);
		p = b + le_load64(idx + (size_t)entry * BUNDLE_INDEX_ENTRY_SIZE);
	}
	if (width == 4)
		le_store32(p + off, (uint32_t)value);
	else
		le_store64(p + off, value);
	le_store64(b + BUNDLE_OFF_TOTAL_RAW, le_load64(b + BUNDLE_OFF_TOTAL_RAW) + total_add);
	bnd_reseal(b, len);
	write_seed("bundle", name, b, len);
	free(b);
}

static void bundle_limits(const char *golden)
{
	struct bundle_snapshot snap;
	if (bundle_snapshot_open(golden, &snap) != 0)
		die(golden, strata_last_error_detail());
	size_t len;
	uint8_t *b = pack_files(snap.files, snap.count, snap.db_uuid, 3, &len);
	uint64_t seg_raw = snap.files[1].size;

	bnd_limit(b, len, "entry-count-2p20.bundle", -1, BUNDLE_OFF_ENTRY_COUNT, 4,
	          BUNDLE_ENTRIES_MAX, 0);
	bnd_limit(b, len, "total-raw-u64-max.bundle", -1, BUNDLE_OFF_TOTAL_RAW, 8, UINT64_MAX, 0);
	bnd_limit(b, len, "segment-frame-size-u64-max.bundle", 1, BUNDLE_ENT_FRAME_SIZE, 8,
	          UINT64_MAX, 0);
	bnd_limit(b, len, "segment-raw-size-2p40.bundle", 1, BUNDLE_ENT_RAW_SIZE, 8, 1ull << 40,
	          (1ull << 40) - seg_raw);
	free(b);

	/* A "MANIFEST" of 16 MiB of zeros, then declared as 160 bytes: decompression stops at 161. */
	size_t big = 16u << 20;
	uint8_t *zeros = calloc(1, big);
	if (!zeros)
		die("zeros", "out of memory");
	struct bundle_file bomb = {.kind = BUNDLE_KIND_MANIFEST, .data = zeros, .size = big};
	snprintf(bomb.name, sizeof bomb.name, "%s", MF_FILE_NAME);
	b = pack_files(&bomb, 1, snap.db_uuid, 19, &len);
	free(zeros);
	bnd_limit(b, len, "manifest-inflates-16mib-declared-160.bundle", 0, BUNDLE_ENT_RAW_SIZE, 8,
	          160, 160 - (uint64_t)big);
	free(b);
	bundle_snapshot_free(&snap);
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
	mf_limit(mf, mf_len, "manifest", "segment-count-65537.manifest", MF_OFF_SEGMENT_COUNT, 4,
	         MF_SEGMENTS_MAX + 1);
	mf_limit(mf, mf_len, "manifest", "segment-count-u32-max.manifest", MF_OFF_SEGMENT_COUNT, 4,
	         UINT32_MAX);
	mf_limit(mf, mf_len, "manifest", "dim-2p31.manifest", MF_OFF_DIM, 4, 1u << 31);
	mf_limit(mf, mf_len, "manifest", "m-1.manifest", MF_OFF_M, 4, 1);
	/* The next LSN after these would wrap (fuzz_wal found a writer open then failing with EINVAL). */
	mf_limit(mf, mf_len, "manifest", "checkpoint-lsn-u64-max.manifest", MF_OFF_CHECKPOINT_LSN, 8,
	         UINT64_MAX);
	mf_limit(mf, mf_len, "db_open", "checkpoint-lsn-2p63.manifest", MF_OFF_CHECKPOINT_LSN, 8,
	         1ull << 63);
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

	tomb_limit("count-2p32-2-header-only.del", 0, TOMB_OFF_COUNT, TOMB_COUNT_MAX);
	tomb_limit("count-u64-max.del", 65, TOMB_OFF_COUNT, UINT64_MAX);
	tomb_limit("deleted-u64-max.del", 65, TOMB_OFF_DELETED, UINT64_MAX);
	tomb_limit("deleted-not-popcount.del", 65, TOMB_OFF_DELETED, 3);
	tomb_limit("bit-beyond-count-65.del", 65, 0, 1ull << 1);
	bundle_limits(golden);
	free(seg);
	free(mf);
}

/*
 * corpus/wal/: WAL files made by the real writer (wal_open/wal_append) for
 * fuzz_wal.c's database (its uuid and dim 3, so odd row counts pad): a header
 * alone, mixed upserts and deletes from LSN 1 and from LSN 1000, the same cut
 * inside its last record, and a torn (zero) header.
 */
static const uint8_t wal_seed_uuid[16] = {0x57, 0x41, 0x4c, 0x2d, 0x66, 0x75, 0x7a, 0x7a,
                                          0x2d, 0x73, 0x65, 0x65, 0x64, 0x2d, 0x30, 0x31};

static void wal_seed_file(const char *tmp, uint64_t first, int records, size_t cut, const char *name)
{
	struct wal_config c = {.dir = tmp, .dim = 3, .sync_mode = STRATA_SYNC_NONE, .io = WAL_IO_PWRITE};
	memcpy(c.db_uuid, wal_seed_uuid, 16);
	struct wal *w;
	if (wal_open(&c, first, &w) != 0)
		die("wal_open", strata_last_error_detail());
	for (int k = 0; k < records; k++) {
		uint8_t pre[8];
		uint64_t ids[4];
		float v[12];
		uint32_t n = (uint32_t)(k % 4);
		for (uint32_t i = 0; i < 4; i++)
			ids[i] = (uint64_t)k * 10 + i;
		for (uint32_t i = 0; i < 12; i++)
			v[i] = (float)k - (float)i * 0.5f;
		struct iovec iov[3] = {{pre, 8}, {ids, n * 8u}, {v, n * 12u}};
		unsigned type = k % 3 == 2 ? WAL_REC_DELETE : WAL_REC_UPSERT;
		if (type == WAL_REC_DELETE)
			walrec_delete_prefix(n, pre);
		else
			walrec_upsert_prefix(n, 3, pre);
		uint64_t lsn;
		if (wal_append(w, type, iov, type == WAL_REC_DELETE ? 2 : 3, &lsn) != 0)
			die("wal_append", strata_last_error_detail());
	}
	if (wal_close(w) != 0)
		die("wal_close", strata_last_error_detail());
	char fname[WAL_FILE_NAME_LEN + 1], path[4200];
	walrec_file_name(first, fname, sizeof fname);
	snprintf(path, sizeof path, "%s/%s", tmp, fname);
	size_t len;
	uint8_t *b = read_all(path, &len);
	write_seed("wal", name, b, len > cut ? len - cut : 0);
	free(b);
	unlink(path);
}

static void wal_seeds(const char *tmp)
{
	wal_seed_file(tmp, 1, 0, 0, "empty-first1.log");
	wal_seed_file(tmp, 1, 12, 0, "mixed-12.log");
	wal_seed_file(tmp, 1000, 7, 0, "mixed-7-first1000.log");
	wal_seed_file(tmp, 1, 5, 5, "torn-tail-5.log");
	uint8_t zero[64] = {0};
	write_seed("wal", "torn-header-zeros.log", zero, sizeof zero);
}

/* --limits: a WAL file whose header claims first_lsn 2^63 (past WAL_LSN_MAX), resealed. */
static void wal_limits(void)
{
	char tmp[] = "/tmp/strata-seeds-XXXXXX";
	if (!mkdtemp(tmp))
		die("mkdtemp", strerror(errno));
	struct wal_config c = {.dir = tmp, .dim = 3, .sync_mode = STRATA_SYNC_NONE, .io = WAL_IO_PWRITE};
	memcpy(c.db_uuid, wal_seed_uuid, 16);
	struct wal *w;
	if (wal_open(&c, 1, &w) != 0 || wal_close(w) != 0)
		die("wal_open", strata_last_error_detail());
	char fname[WAL_FILE_NAME_LEN + 1], path[4200];
	walrec_file_name(1, fname, sizeof fname);
	snprintf(path, sizeof path, "%s/%s", tmp, fname);
	size_t len;
	uint8_t *b = read_all(path, &len);
	le_store64(b + WAL_OFF_FIRST_LSN, 1ull << 63);
	le_store64(b + WAL_OFF_HEADER_XXH3, xsum64(b, WAL_OFF_HEADER_XXH3));
	write_seed("wal", "first-lsn-2p63.log", b, len);
	free(b);
	unlink(path);
	rmdir(tmp);
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "--limits") == 0) {
		out_root = argv[2];
		limits(argv[3]);
		wal_limits();
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
	tombstone_seeds();
	bundle_seeds(tmp, argv[2]);
	wal_seeds(tmp);
	rmdir(tmp);
	return 0;
}
