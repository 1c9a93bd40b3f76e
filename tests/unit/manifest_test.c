/*
 * manifest_test.c - the MANIFEST codec and its atomic replacement
 * (format/manifest.c, FORMAT.md "Manifest"): round trips, every truncation,
 * every byte change, hostile fields behind recomputed checksums (refused
 * before any allocation), and commit/load on a real directory.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "failpoint.h"
#include "fio.h"
#include "le.h"
#include "manifest.h"
#include "t_support.h"
#include "xsum.h"

static struct mf_segment segs3[3] = {
	{.seq = 4, .count = 1000, .file_size = 81920, .header_xxh3 = 0x1122334455667788ull, .tomb_gen = 0, .level = 0},
	{.seq = 1, .count = 7, .file_size = 1216, .header_xxh3 = 0xfeedfacecafebeefull, .tomb_gen = 3, .level = 2},
	{.seq = 9, .count = 0, .file_size = 288, .header_xxh3 = 42, .tomb_gen = 0, .level = 1},
};

static struct mf_manifest sample(uint32_t nseg)
{
	struct mf_manifest m = {
		.dim = 128, .metric = STRATA_METRIC_COSINE, .M = 16, .ef_construction = 200,
		.ef_search = 64, .generation = 17, .next_seq = 10, .checkpoint_lsn = 123456789,
		.segment_count = nseg, .segments = nseg ? segs3 : NULL,
	};
	for (int i = 0; i < 16; i++)
		m.db_uuid[i] = (uint8_t)(0xA0 + i);
	return m;
}

static void encode(const struct mf_manifest *m, uint8_t **b, size_t *len)
{
	int rc = mf_encode(m, b, len);
	cr_assert_eq(rc, 0, "mf_encode: %s", err_detail());
}

static void assert_same(const struct mf_manifest *a, const struct mf_manifest *b)
{
	cr_assert_eq(a->dim, b->dim);
	cr_assert_eq(a->metric, b->metric);
	cr_assert_eq(a->M, b->M);
	cr_assert_eq(a->ef_construction, b->ef_construction);
	cr_assert_eq(a->ef_search, b->ef_search);
	cr_assert_eq(a->generation, b->generation);
	cr_assert_eq(a->next_seq, b->next_seq);
	cr_assert_eq(memcmp(a->db_uuid, b->db_uuid, 16), 0);
	cr_assert_eq(a->checkpoint_lsn, b->checkpoint_lsn);
	cr_assert_eq(a->segment_count, b->segment_count);
	for (uint32_t i = 0; i < a->segment_count; i++) {
		const struct mf_segment *x = &a->segments[i], *y = &b->segments[i];
		cr_assert_eq(x->seq, y->seq, "entry %u", i);
		cr_assert_eq(x->count, y->count);
		cr_assert_eq(x->file_size, y->file_size);
		cr_assert_eq(x->header_xxh3, y->header_xxh3);
		cr_assert_eq(x->tomb_gen, y->tomb_gen);
		cr_assert_eq(x->level, y->level);
	}
}

static uint8_t *exact_copy(const uint8_t *src, size_t len)
{
	uint8_t *p = malloc(len ? len : 1);
	cr_assert_not_null(p);
	memcpy(p, src, len);
	return p;
}

static void reseal(uint8_t *b, size_t len)
{
	le_store64(b + MF_OFF_BODY_XXH3, xsum64(b + MF_HEADER_SIZE, len - MF_HEADER_SIZE));
	le_store64(b + MF_OFF_HEADER_XXH3, xsum64(b, MF_OFF_HEADER_XXH3));
}

static int decode_rc(const uint8_t *b, size_t len)
{
	struct mf_manifest m;
	int rc = mf_decode(b, len, &m);
	if (rc == 0)
		mf_free(&m);
	return rc;
}

Test(manifest, round_trip_keeps_every_field_and_entry_order)
{
	for (uint32_t n = 0; n <= 3; n++) {
		struct mf_manifest m = sample(n), back;
		uint8_t *b;
		size_t len;
		encode(&m, &b, &len);
		cr_assert_eq(len, MF_HEADER_SIZE + MF_ENTRY_SIZE * n);
		cr_assert_eq(memcmp(b, "STRATMAN", 8), 0);
		int rc = mf_decode(b, len, &back);
		cr_assert_eq(rc, 0, "n=%u: %s", n, err_detail());
		assert_same(&m, &back);
		mf_free(&back);
		cr_assert_null(back.segments);
		free(b);
	}
}

Test(manifest, every_truncation_is_refused_as_truncated)
{
	struct mf_manifest m = sample(3);
	uint8_t *b;
	size_t len;
	encode(&m, &b, &len);
	for (size_t l = 0; l < len; l++) {
		uint8_t *p = exact_copy(b, l);
		int rc = decode_rc(p, l);
		cr_assert_eq(rc, STRATA_ETRUNCATED, "length %zu: rc %d (%s)", l, rc, err_detail());
		free(p);
	}
	cr_assert_eq(decode_rc(NULL, 0), STRATA_ETRUNCATED);
	free(b);
}

Test(manifest, trailing_bytes_are_refused)
{
	struct mf_manifest m = sample(1);
	uint8_t *b;
	size_t len;
	encode(&m, &b, &len);
	uint8_t *p = calloc(1, len + 64);
	memcpy(p, b, len);
	cr_assert_eq(decode_rc(p, len + 1), STRATA_ECORRUPT);
	cr_assert_eq(decode_rc(p, len + 64), STRATA_ECORRUPT);
	free(p);
	free(b);
}

Test(manifest, every_byte_change_is_refused)
{
	struct mf_manifest m = sample(3);
	uint8_t *b;
	size_t len;
	encode(&m, &b, &len);
	const uint8_t patterns[] = {0xFF, 0x01, 0x80};
	for (size_t i = 0; i < len; i++) {
		for (size_t k = 0; k < sizeof patterns; k++) {
			uint8_t *p = exact_copy(b, len);
			p[i] ^= patterns[k];
			int want = i < 8 ? STRATA_ENOTDB : i < 12 ? STRATA_EVERSION : i < 16 ? STRATA_ECORRUPT
			                                                                      : STRATA_ECHECKSUM;
			int rc = decode_rc(p, len);
			cr_assert_eq(rc, want, "byte %zu ^ 0x%02x: rc %d (%s)", i, patterns[k], rc, err_detail());
			free(p);
		}
	}
	free(b);
}

Test(manifest, hostile_segment_count_is_refused_before_allocation)
{
	struct mf_manifest m = sample(2);
	uint8_t *b;
	size_t len;
	encode(&m, &b, &len);
	const uint32_t counts[] = {0xFFFFFFFFu, MF_SEGMENTS_MAX + 1, 0x80000000u};
	for (size_t c = 0; c < 3; c++) {
		uint8_t *p = exact_copy(b, len);
		le_store32(p + MF_OFF_SEGMENT_COUNT, counts[c]);
		reseal(p, len);
		int rc = decode_rc(p, len);
		cr_assert_eq(rc, STRATA_ECORRUPT, "count %u: rc %d (%s)", counts[c], rc, err_detail());
		cr_assert(strstr(err_detail(), "segment_count"), "detail: %s", err_detail());
		free(p);
	}
	/* Within the limit but more entries than bytes: truncated, still before allocating. */
	uint8_t *p = exact_copy(b, len);
	le_store32(p + MF_OFF_SEGMENT_COUNT, MF_SEGMENTS_MAX);
	reseal(p, len);
	cr_assert_eq(decode_rc(p, len), STRATA_ETRUNCATED, "%s", err_detail());
	free(p);
	free(b);
}

struct mf_case {
	const char *what;
	unsigned off; /* absolute offset */
	unsigned width;
	uint64_t value;
	const char *needle;
};

Test(manifest, hostile_fields_behind_valid_checksums_are_refused)
{
	const unsigned e1 = MF_HEADER_SIZE + MF_ENTRY_SIZE; /* second entry */
	const struct mf_case cases[] = {
		{"header_size 64", MF_OFF_HEADER_SIZE, 4, 64, "header_size"},
		{"dim 0", MF_OFF_DIM, 4, 0, "dim"},
		{"dim 65537", MF_OFF_DIM, 4, STRATA_DIM_MAX + 1, "dim"},
		{"metric 3", MF_OFF_METRIC, 4, 3, "metric"},
		{"M 1", MF_OFF_M, 4, 1, "M 1"},
		{"M 257", MF_OFF_M, 4, STRATA_M_MAX + 1, "M 257"},
		{"ef_construction 0", MF_OFF_EF_CONSTRUCTION, 4, 0, "ef_construction"},
		{"ef_search 0", MF_OFF_EF_SEARCH, 4, 0, "ef_search"},
		{"ef_search huge", MF_OFF_EF_SEARCH, 4, STRATA_EF_MAX + 1, "ef_search"},
		{"seq == next_seq", e1 + MF_ENT_SEQ, 8, 10, "next_seq"},
		{"seq 2^64-1", e1 + MF_ENT_SEQ, 8, UINT64_MAX, "next_seq"},
		{"duplicate seq", e1 + MF_ENT_SEQ, 8, 4, "twice"},
		{"entry flags", e1 + MF_ENT_FLAGS, 4, 1, "flags"},
		{"entry reserved low", e1 + MF_ENT_RESERVED, 8, 1, "reserved"},
		{"entry reserved high", e1 + MF_ENT_RESERVED + 8, 8, 1ull << 63, "reserved"},
	};
	struct mf_manifest m = sample(3);
	uint8_t *b;
	size_t len;
	encode(&m, &b, &len);
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		uint8_t *p = exact_copy(b, len);
		if (cases[c].width == 4)
			le_store32(p + cases[c].off, (uint32_t)cases[c].value);
		else
			le_store64(p + cases[c].off, cases[c].value);
		reseal(p, len);
		int rc = decode_rc(p, len);
		cr_assert_eq(rc, STRATA_ECORRUPT, "%s: rc %d (%s)", cases[c].what, rc, err_detail());
		cr_assert(strstr(err_detail(), cases[c].needle), "%s: detail \"%s\" lacks \"%s\"",
		          cases[c].what, err_detail(), cases[c].needle);
		free(p);
	}
	free(b);
}

Test(manifest, decode_writes_nothing_on_failure)
{
	struct mf_manifest m = sample(2);
	uint8_t *b;
	size_t len;
	encode(&m, &b, &len);
	b[MF_HEADER_SIZE] ^= 1;
	struct mf_manifest out;
	memset(&out, 0x5c, sizeof out);
	cr_assert_eq(mf_decode(b, len, &out), STRATA_ECHECKSUM);
	cr_assert_eq(out.dim, 0x5c5c5c5cu);
	free(b);
}

Test(manifest, encode_refuses_what_decode_would)
{
	struct mf_manifest m = sample(0);
	uint8_t *b = NULL;
	size_t len = 0;
	m.segment_count = MF_SEGMENTS_MAX + 1;
	m.segments = segs3;
	cr_assert_eq(mf_encode(&m, &b, &len), STRATA_ELIMIT);
	m.segments = NULL;
	m.segment_count = 1;
	cr_assert_eq(mf_encode(&m, &b, &len), STRATA_EINVAL);
	cr_assert_null(b);
}

Test(manifest, commit_replaces_atomically_and_load_reads_it_back)
{
	struct t_dir d = t_dir_new();
	char p[600];
	struct mf_manifest a = sample(1), bm = sample(3), got;
	bm.generation = 18;

	cr_assert_eq(mf_load(d.path, &got), STRATA_ENOTFOUND);
	cr_assert(strstr(err_detail(), "MANIFEST"), "detail: %s", err_detail());

	cr_assert_eq(mf_commit(d.path, &a), 0, "%s", err_detail());
	cr_assert_eq(mf_load(d.path, &got), 0, "%s", err_detail());
	assert_same(&a, &got);
	mf_free(&got);

	/* A stale MANIFEST.tmp from a crash is simply overwritten. */
	t_write_file(t_path(&d, "MANIFEST.tmp", p, sizeof p), "garbage from a crash", 20);
	cr_assert_eq(mf_commit(d.path, &bm), 0, "%s", err_detail());
	cr_assert_eq(mf_load(d.path, &got), 0, "%s", err_detail());
	assert_same(&bm, &got);
	mf_free(&got);
	cr_assert_neq(access(t_path(&d, "MANIFEST.tmp", p, sizeof p), F_OK), 0, "MANIFEST.tmp left behind");
	t_dir_free(&d);
}

Test(manifest, load_refuses_damage_and_oversized_files)
{
	struct t_dir d = t_dir_new();
	char p[600];
	struct mf_manifest a = sample(2), got;
	cr_assert_eq(mf_commit(d.path, &a), 0, "%s", err_detail());
	struct t_blob b = t_read_file(t_path(&d, "MANIFEST", p, sizeof p));
	b.data[b.len - 1] ^= 0x40;
	t_write_file(p, b.data, b.len);
	cr_assert_eq(mf_load(d.path, &got), STRATA_ECHECKSUM);
	free(b.data);

	/* Larger than any valid manifest: refused without reading it in. */
	int fd = open(p, O_WRONLY | O_TRUNC);
	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, (off_t)(MF_HEADER_SIZE + MF_ENTRY_SIZE * (MF_SEGMENTS_MAX + 1ull))), 0);
	close(fd);
	cr_assert_eq(mf_load(d.path, &got), STRATA_ECORRUPT, "%s", err_detail());

	t_write_file(p, "", 0);
	cr_assert_eq(mf_load(d.path, &got), STRATA_ETRUNCATED);
	t_write_file(p, "SQLite format 3\0", 16);
	cr_assert_eq(mf_load(d.path, &got), STRATA_ENOTDB);
	t_dir_free(&d);
}

Test(manifest, segment_names)
{
	char buf[MF_SEGMENT_NAME_LEN + 1];
	mf_segment_name(1, buf, sizeof buf);
	cr_assert_str_eq(buf, "seg-0000000000000001.seg");
	mf_segment_name(0xfedcba9876543210ull, buf, sizeof buf);
	cr_assert_str_eq(buf, "seg-fedcba9876543210.seg");
	cr_assert_eq(strlen(buf), MF_SEGMENT_NAME_LEN);
	char small[8];
	mf_segment_name(1, small, sizeof small);
	cr_assert_str_eq(small, "seg-000");
}

/* Whatever I/O call of a commit fails, the directory holds the old or the new manifest, whole. */
Test(manifest, commit_fault_at_every_io_call_leaves_old_or_new)
{
#if STRATA_FAILPOINTS
	const enum fp_site sites[] = {FP_OPEN, FP_WRITE, FP_FSYNC, FP_RENAME};
	const int errs[] = {EIO, ENOSPC, FP_SHORT, EACCES};
	struct mf_manifest a = sample(1), bm = sample(3), got;
	bm.generation = 99;
	for (size_t s = 0; s < sizeof sites / sizeof sites[0]; s++) {
		for (size_t e = 0; e < sizeof errs / sizeof errs[0]; e++) {
			if (errs[e] == FP_SHORT && sites[s] != FP_WRITE)
				continue;
			for (int n = 1;; n++) {
				struct t_dir d = t_dir_new();
				cr_assert_eq(mf_commit(d.path, &a), 0);
				fp_disarm_all();
				fp_arm(sites[s], n, errs[e]);
				int rc = mf_commit(d.path, &bm);
				bool hit = fp_hits(sites[s]) >= n;
				fp_disarm_all();
				cr_assert_eq(mf_load(d.path, &got), 0, "site %d n %d: %s", sites[s], n, err_detail());
				cr_assert(got.generation == 17 || got.generation == 99);
				if (rc)
					cr_assert(STRATA_IS_DATA_ERROR(rc) == false && rc < 0);
				if (got.generation == 17)
					cr_assert_neq(rc, 0, "a successful commit must be visible");
				mf_free(&got);
				char p[600];
				cr_assert_neq(access(t_path(&d, "MANIFEST.tmp", p, sizeof p), F_OK), 0);
				t_dir_free(&d);
				if (!hit) {
					cr_assert_eq(rc, 0);
					break;
				}
				cr_assert_neq(rc, 0, "site %d n %d: the failure was swallowed", sites[s], n);
			}
		}
	}
#else
	cr_skip_test("built without failpoints (-Dfailpoints=true)");
#endif
}
