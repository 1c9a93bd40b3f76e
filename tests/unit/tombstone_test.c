/*
 * tombstone_test.c - the deletion file codec and its atomic write
 * (format/tombstone.c, FORMAT.md section 9 "Deletion file"): round trips at
 * the word boundaries, the worked example's bytes, every truncation, every
 * byte change, every field made wrong behind recomputed checksums, a file
 * bound to another segment or generation, write/load on a real directory,
 * and a failure at every I/O call of a write.
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
#include "t_support.h"
#include "tombstone.h"
#include "xsum.h"

#define SEQ 7ull
#define SEGX 0x0123456789abcdefull
#define GEN 3ull

/* A bitmap of `count` bits with pattern p: 0 none, 1 all, 2 every third, 3 pseudo-random. */
static uint64_t *bitmap(uint64_t count, int p)
{
	uint64_t words = tomb_words(count);
	uint64_t *b = calloc(words ? words : 1, sizeof *b);
	cr_assert_not_null(b);
	uint64_t s = 0x9e3779b97f4a7c15ull ^ count;
	for (uint64_t i = 0; i < count; i++) {
		s = s * 6364136223846793005ull + 1442695040888963407ull;
		bool on = p == 1 || (p == 2 && i % 3 == 0) || (p == 3 && (s >> 61) == 0);
		if (on)
			b[i / 64] |= 1ull << (i % 64);
	}
	return b;
}

static uint64_t popcount(const uint64_t *b, uint64_t count)
{
	uint64_t n = 0;
	for (uint64_t i = 0; i < count; i++)
		n += (b[i / 64] >> (i % 64)) & 1;
	return n;
}

static void encode(const uint64_t *bits, uint64_t count, uint8_t **b, size_t *len)
{
	int rc = tomb_encode(SEQ, SEGX, GEN, bits, count, b, len);
	cr_assert_eq(rc, 0, "tomb_encode(%llu): %s", (unsigned long long)count, err_detail());
}

static int decode_rc(const uint8_t *b, size_t len, uint64_t count)
{
	uint64_t *bits = NULL, deleted = 0;
	int rc = tomb_decode(b, len, SEQ, SEGX, GEN, count, &bits, &deleted);
	if (rc == 0)
		free(bits);
	return rc;
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
	le_store64(b + TOMB_OFF_BODY_XXH3, xsum64(b + TOMB_HEADER_SIZE, len - TOMB_HEADER_SIZE));
	le_store64(b + TOMB_OFF_HEADER_XXH3, xsum64(b, TOMB_OFF_HEADER_XXH3));
}

Test(tombstone, round_trip_at_word_boundaries_and_big)
{
	const uint64_t counts[] = {0, 1, 2, 63, 64, 65, 127, 128, 129, 1000, 1000003};
	for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
		uint64_t count = counts[c];
		for (int p = 0; p < 4; p++) {
			uint64_t *in = bitmap(count, p), *out = NULL, deleted = 0;
			uint8_t *b;
			size_t len;
			encode(in, count, &b, &len);
			cr_assert_eq(len, TOMB_HEADER_SIZE + 8 * ((count + 63) / 64), "count %llu",
			             (unsigned long long)count);
			cr_assert_eq(len, tomb_file_size(count));
			cr_assert_eq(memcmp(b, "STRATDEL", 8), 0);
			int rc = tomb_decode(b, len, SEQ, SEGX, GEN, count, &out, &deleted);
			cr_assert_eq(rc, 0, "count %llu pattern %d: %s", (unsigned long long)count, p,
			             err_detail());
			cr_assert_eq(deleted, popcount(in, count));
			cr_assert_eq(le_load64(b + TOMB_OFF_DELETED), deleted);
			if (p == 1)
				cr_assert_eq(deleted, count);
			if (count)
				cr_assert_eq(memcmp(in, out, tomb_words(count) * 8), 0, "count %llu pattern %d",
				             (unsigned long long)count, p);
			else
				cr_assert_eq(out[0], 0, "count 0 still gets one zero word");
			free(in);
			free(out);
			free(b);
		}
	}
}

/* FORMAT.md 9.5: 65 nodes, nodes 0, 3 and 64 deleted, is 96 bytes, laid out as listed there. */
Test(tombstone, worked_example_bytes)
{
	uint64_t bits[2] = {0x9, 0x1};
	uint8_t *b;
	size_t len;
	cr_assert_eq(tomb_encode(1, 0x1122334455667788ull, 2, bits, 65, &b, &len), 0);
	cr_assert_eq(len, 96);
	static const uint8_t head[16] = {0x53, 0x54, 0x52, 0x41, 0x54, 0x44, 0x45, 0x4c,
	                                 1, 0, 0, 0, 80, 0, 0, 0};
	cr_assert_eq(memcmp(b, head, 16), 0);
	cr_assert_eq(le_load64(b + 16), 1);
	cr_assert_eq(le_load64(b + 24), 0x1122334455667788ull);
	cr_assert_eq(le_load64(b + 32), 65);
	cr_assert_eq(le_load64(b + 40), 3);
	cr_assert_eq(le_load64(b + 48), 2);
	cr_assert_eq(le_load64(b + 56), 0, "flags and reserved");
	cr_assert_eq(le_load64(b + 64), xsum64(b + 80, 16));
	cr_assert_eq(le_load64(b + 72), xsum64(b, 72));
	static const uint8_t body[16] = {0x09, 0, 0, 0, 0, 0, 0, 0, 0x01, 0, 0, 0, 0, 0, 0, 0};
	cr_assert_eq(memcmp(b + 80, body, 16), 0);
	free(b);

	/* count 0: the header alone, its body_xxh3 the xxh3 of zero bytes. */
	cr_assert_eq(tomb_encode(1, 2, 3, NULL, 0, &b, &len), 0);
	cr_assert_eq(len, 80);
	cr_assert_eq(le_load64(b + TOMB_OFF_BODY_XXH3), 0x2d06800538d394c2ull);
	free(b);
}

Test(tombstone, file_names)
{
	char buf[TOMB_NAME_LEN + 1];
	tomb_file_name(1, 2, buf, sizeof buf);
	cr_assert_str_eq(buf, "del-0000000000000001-0000000000000002.del");
	cr_assert_eq(strlen(buf), TOMB_NAME_LEN);
	tomb_file_name(0xfedcba9876543210ull, UINT64_MAX, buf, sizeof buf);
	cr_assert_str_eq(buf, "del-fedcba9876543210-ffffffffffffffff.del");
	char small[9];
	tomb_file_name(1, 2, small, sizeof small);
	cr_assert_str_eq(small, "del-0000");
	tomb_file_name(1, 2, NULL, 0); /* nothing to write into: nothing happens */
}

Test(tombstone, every_truncation_is_refused_as_truncated)
{
	uint64_t *in = bitmap(130, 3);
	uint8_t *b;
	size_t len;
	encode(in, 130, &b, &len);
	for (size_t l = 0; l < len; l++) {
		uint8_t *p = exact_copy(b, l);
		int rc = decode_rc(p, l, 130);
		cr_assert_eq(rc, STRATA_ETRUNCATED, "length %zu: rc %d (%s)", l, rc, err_detail());
		cr_assert(strstr(err_detail(), "deletion file"), "detail: %s", err_detail());
		free(p);
	}
	cr_assert_eq(decode_rc(NULL, 0, 130), STRATA_ETRUNCATED);
	free(in);
	free(b);
}

Test(tombstone, trailing_bytes_are_refused)
{
	uint64_t *in = bitmap(64, 2);
	uint8_t *b;
	size_t len;
	encode(in, 64, &b, &len);
	uint8_t *p = calloc(1, len + 8);
	memcpy(p, b, len);
	cr_assert_eq(decode_rc(p, len + 1, 64), STRATA_ECORRUPT);
	cr_assert_eq(decode_rc(p, len + 8, 64), STRATA_ECORRUPT, "a whole extra zero word");
	free(p);
	free(in);
	free(b);
}

Test(tombstone, every_byte_change_is_refused)
{
	uint64_t *in = bitmap(100, 3);
	uint8_t *b;
	size_t len;
	encode(in, 100, &b, &len);
	const uint8_t patterns[] = {0xFF, 0x01, 0x80};
	for (size_t i = 0; i < len; i++) {
		for (size_t k = 0; k < sizeof patterns; k++) {
			uint8_t *p = exact_copy(b, len);
			p[i] ^= patterns[k];
			int want = i < 8 ? STRATA_ENOTDB : i < 12 ? STRATA_EVERSION : i < 16 ? STRATA_ECORRUPT
			                                                                      : STRATA_ECHECKSUM;
			int rc = decode_rc(p, len, 100);
			cr_assert_eq(rc, want, "byte %zu ^ 0x%02x: rc %d (%s)", i, patterns[k], rc, err_detail());
			free(p);
		}
	}
	free(in);
	free(b);
}

struct tomb_case {
	const char *what;
	unsigned off;
	unsigned width;
	uint64_t value;
	int want;
	const char *needle;
};

/* Every field wrong, with both checksums recomputed: the checks behind the checksums catch it. */
Test(tombstone, every_field_wrong_behind_valid_checksums)
{
	const uint64_t count = 100;
	const unsigned last = TOMB_HEADER_SIZE + 8; /* second (last) word: bits 64..99 */
	const struct tomb_case cases[] = {
		{"magic", TOMB_OFF_MAGIC, 8, 0x4745535441525453ull, STRATA_ENOTDB, "magic"},
		{"version 2", TOMB_OFF_VERSION, 4, 2, STRATA_EVERSION, "version 2"},
		{"version 0", TOMB_OFF_VERSION, 4, 0, STRATA_EVERSION, "version 0"},
		{"header_size 64", TOMB_OFF_HEADER_SIZE, 4, 64, STRATA_ECORRUPT, "header_size"},
		{"header_size 88", TOMB_OFF_HEADER_SIZE, 4, 88, STRATA_ECORRUPT, "header_size"},
		{"flags", TOMB_OFF_FLAGS, 4, 1, STRATA_ECORRUPT, "flags"},
		{"reserved", TOMB_OFF_RESERVED, 4, 0x80000000u, STRATA_ECORRUPT, "reserved"},
		{"other segment seq", TOMB_OFF_SEG_SEQ, 8, SEQ + 1, STRATA_ECORRUPT, "seq 8"},
		{"other segment file", TOMB_OFF_SEG_HEADER_XXH3, 8, SEGX ^ 1, STRATA_ECORRUPT, "header xxh3"},
		{"other generation", TOMB_OFF_GEN, 8, GEN + 1, STRATA_ECORRUPT, "generation 4"},
		{"generation 0", TOMB_OFF_GEN, 8, 0, STRATA_ECORRUPT, "generation 0"},
		{"count + 1", TOMB_OFF_COUNT, 8, count + 1, STRATA_ECORRUPT, "node count 101"},
		{"count - 1", TOMB_OFF_COUNT, 8, count - 1, STRATA_ECORRUPT, "node count 99"},
		{"count 2^64-1", TOMB_OFF_COUNT, 8, UINT64_MAX, STRATA_ECORRUPT, "node count"},
		{"deleted > count", TOMB_OFF_DELETED, 8, count + 1, STRATA_ECORRUPT, "above the node count"},
		{"deleted 2^64-1", TOMB_OFF_DELETED, 8, UINT64_MAX, STRATA_ECORRUPT, "above the node count"},
		{"deleted off by one", TOMB_OFF_DELETED, 8, 0, STRATA_ECORRUPT, "bits set"},
		{"bit 100 set", last, 8, 1ull << 36, STRATA_ECORRUPT, "beyond node count 100"},
		{"bit 127 set", last, 8, 1ull << 63, STRATA_ECORRUPT, "beyond node count 100"},
	};
	uint64_t *in = bitmap(count, 1); /* all deleted: the tail cases add a bit beyond */
	uint8_t *b;
	size_t len;
	encode(in, count, &b, &len);
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		uint8_t *p = exact_copy(b, len);
		if (cases[c].off == last)
			le_store64(p + last, le_load64(p + last) | cases[c].value);
		else if (cases[c].width == 4)
			le_store32(p + cases[c].off, (uint32_t)cases[c].value);
		else
			le_store64(p + cases[c].off, cases[c].value);
		reseal(p, len);
		uint64_t *out = (uint64_t *)(uintptr_t)0x5a5a, deleted = 777;
		int rc = tomb_decode(p, len, SEQ, SEGX, GEN, count, &out, &deleted);
		cr_assert_eq(rc, cases[c].want, "%s: rc %d (%s)", cases[c].what, rc, err_detail());
		cr_assert(strstr(err_detail(), cases[c].needle), "%s: detail \"%s\" lacks \"%s\"",
		          cases[c].what, err_detail(), cases[c].needle);
		cr_assert(out == (uint64_t *)(uintptr_t)0x5a5a && deleted == 777,
		          "%s: outputs written on failure", cases[c].what);
		free(p);
	}
	free(in);
	free(b);
}

/* A sound file refused when it is not the one the manifest entry and segment expect. */
Test(tombstone, wrong_segment_binding_is_refused)
{
	uint64_t *in = bitmap(65, 2), *out;
	uint64_t deleted;
	uint8_t *b;
	size_t len;
	encode(in, 65, &b, &len);
	cr_assert_eq(tomb_decode(b, len, SEQ, SEGX, GEN, 65, &out, &deleted), 0);
	free(out);
	struct {
		uint64_t seq, x, gen, count;
		const char *needle;
	} w[] = {
		{SEQ + 1, SEGX, GEN, 65, "segment seq 7, expected 8"},
		{SEQ, SEGX + 1, GEN, 65, "another file of seq 7"},
		{SEQ, SEGX, GEN + 1, 65, "generation 3, expected 4"},
		{SEQ, SEGX, GEN, 64, "node count 65, the segment has 64"},
		{SEQ, SEGX, GEN, 128, "node count 65, the segment has 128"},
	};
	for (size_t i = 0; i < sizeof w / sizeof w[0]; i++) {
		int rc = tomb_decode(b, len, w[i].seq, w[i].x, w[i].gen, w[i].count, &out, &deleted);
		cr_assert_eq(rc, STRATA_ECORRUPT, "case %zu: rc %d", i, rc);
		cr_assert(strstr(err_detail(), w[i].needle), "case %zu: detail \"%s\"", i, err_detail());
	}
	free(in);
	free(b);
}

Test(tombstone, arguments_no_file_can_match_are_invalid)
{
	uint64_t *out, deleted, bits[2] = {0, 0};
	uint8_t *b = NULL;
	size_t len = 0;
	cr_assert_eq(tomb_encode(SEQ, SEGX, 0, bits, 65, &b, &len), STRATA_EINVAL, "gen 0");
	cr_assert_eq(tomb_encode(SEQ, SEGX, GEN, NULL, 1, &b, &len), STRATA_EINVAL);
	cr_assert_eq(tomb_encode(SEQ, SEGX, GEN, bits, TOMB_COUNT_MAX + 1, &b, &len), STRATA_ELIMIT);
	bits[1] = 1ull << 1; /* node 65 of 65 */
	cr_assert_eq(tomb_encode(SEQ, SEGX, GEN, bits, 65, &b, &len), STRATA_EINVAL);
	cr_assert(strstr(err_detail(), "beyond"), "detail: %s", err_detail());
	cr_assert_null(b, "outputs written on failure");
	cr_assert_eq(len, 0);
	bits[1] = 1; /* node 64: fine */
	cr_assert_eq(tomb_encode(SEQ, SEGX, GEN, bits, 65, &b, &len), 0);
	cr_assert_eq(tomb_decode(b, len, SEQ, SEGX, 0, 65, &out, &deleted), STRATA_EINVAL);
	cr_assert_eq(tomb_decode(b, len, SEQ, SEGX, GEN, TOMB_COUNT_MAX + 1, &out, &deleted),
	             STRATA_EINVAL);
	cr_assert_eq(tomb_decode(NULL, 5, SEQ, SEGX, GEN, 65, &out, &deleted), STRATA_EINVAL);
	cr_assert_eq(tomb_decode(b, len, SEQ, SEGX, GEN, 65, NULL, &deleted), STRATA_EINVAL);
	cr_assert_eq(tomb_decode(b, len, SEQ, SEGX, GEN, 65, &out, &deleted), 0);
	cr_assert_eq(deleted, 1);
	cr_assert_eq(out[1], 1);
	free(out);
	free(b);
}

Test(tombstone, write_then_load_on_a_directory)
{
	struct t_dir d = t_dir_new();
	char p[600], name[TOMB_NAME_LEN + 5]; /* + ".tmp" */
	uint64_t *in = bitmap(1000, 3), *out, deleted;
	cr_assert_eq(tomb_write(d.path, SEQ, SEGX, GEN, in, 1000), 0, "%s", err_detail());
	tomb_file_name(SEQ, GEN, name, sizeof name);
	struct t_blob f = t_read_file(t_path(&d, name, p, sizeof p));
	cr_assert_not_null(f.data, "%s not written", name);
	cr_assert_eq(f.len, tomb_file_size(1000));
	free(f.data);
	strcat(name, ".tmp");
	cr_assert_neq(access(t_path(&d, name, p, sizeof p), F_OK), 0, "temporary left behind");

	cr_assert_eq(tomb_load(d.path, SEQ, SEGX, GEN, 1000, &out, &deleted), 0, "%s", err_detail());
	cr_assert_eq(memcmp(in, out, tomb_words(1000) * 8), 0);
	cr_assert_eq(deleted, popcount(in, 1000));
	free(out);

	/* The next generation is another file; the previous one stays as it was. */
	in[0] ^= 1;
	cr_assert_eq(tomb_write(d.path, SEQ, SEGX, GEN + 1, in, 1000), 0, "%s", err_detail());
	cr_assert_eq(tomb_load(d.path, SEQ, SEGX, GEN + 1, 1000, &out, &deleted), 0);
	cr_assert_eq(out[0], in[0]);
	free(out);
	cr_assert_eq(tomb_load(d.path, SEQ, SEGX, GEN, 1000, &out, &deleted), 0);
	cr_assert_eq(out[0], in[0] ^ 1);
	free(out);
	free(in);
	t_dir_free(&d);
}

Test(tombstone, load_refuses_missing_damaged_renamed_and_oversized_files)
{
	struct t_dir d = t_dir_new();
	char p[600], q[600], name[TOMB_NAME_LEN + 1];
	uint64_t *in = bitmap(200, 2), *out, deleted;

	/* Named by the manifest but absent: corrupt, and the detail says which file. */
	cr_assert_eq(tomb_load(d.path, SEQ, SEGX, GEN, 200, &out, &deleted), STRATA_ECORRUPT);
	cr_assert(strstr(err_detail(), "del-0000000000000007-0000000000000003.del") &&
	              strstr(err_detail(), "missing"), "detail: %s", err_detail());

	cr_assert_eq(tomb_write(d.path, SEQ, SEGX, GEN, in, 200), 0, "%s", err_detail());
	tomb_file_name(SEQ, GEN, name, sizeof name);
	t_path(&d, name, p, sizeof p);
	struct t_blob f = t_read_file(p);

	/* A bit flipped on disk. */
	f.data[TOMB_HEADER_SIZE + 3] ^= 0x10;
	t_write_file(p, f.data, f.len);
	cr_assert_eq(tomb_load(d.path, SEQ, SEGX, GEN, 200, &out, &deleted), STRATA_ECHECKSUM);
	cr_assert(strstr(err_detail(), name) && strstr(err_detail(), "bitmap xxh3"), "detail: %s",
	          err_detail());
	f.data[TOMB_HEADER_SIZE + 3] ^= 0x10;

	/* Cut short. */
	t_write_file(p, f.data, f.len - 1);
	cr_assert_eq(tomb_load(d.path, SEQ, SEGX, GEN, 200, &out, &deleted), STRATA_ETRUNCATED);
	cr_assert(strstr(err_detail(), name), "detail: %s", err_detail());

	/* Copied under the name of another generation: its header says which it is. */
	t_write_file(p, f.data, f.len);
	tomb_file_name(SEQ, GEN + 5, name, sizeof name);
	t_write_file(t_path(&d, name, q, sizeof q), f.data, f.len);
	cr_assert_eq(tomb_load(d.path, SEQ, SEGX, GEN + 5, 200, &out, &deleted), STRATA_ECORRUPT);
	cr_assert(strstr(err_detail(), "generation 3, expected 8"), "detail: %s", err_detail());

	/* One byte longer than any valid file for 200 nodes: refused without reading it. */
	int fd = open(p, O_WRONLY | O_APPEND);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, "", 1), 1);
	close(fd);
#if STRATA_FAILPOINTS
	fp_arm(FP_READ, 1, EIO); /* a read would fail with EIO, not ECORRUPT */
#endif
	cr_assert_eq(tomb_load(d.path, SEQ, SEGX, GEN, 200, &out, &deleted), STRATA_ECORRUPT);
	cr_assert(strstr(err_detail(), "larger than"), "detail: %s", err_detail());
#if STRATA_FAILPOINTS
	cr_assert_eq(fp_hits(FP_READ), 0, "the oversized file was read");
	fp_disarm_all();
#endif
	/* Huge (sparse): the same, in no time. */
	fd = open(p, O_WRONLY);
	cr_assert_eq(ftruncate(fd, (off_t)1 << 40), 0);
	close(fd);
	cr_assert_eq(tomb_load(d.path, SEQ, SEGX, GEN, 200, &out, &deleted), STRATA_ECORRUPT);

	t_write_file(p, "SQLite format 3\0", 16);
	cr_assert_eq(tomb_load(d.path, SEQ, SEGX, GEN, 200, &out, &deleted), STRATA_ENOTDB);
	t_write_file(p, "", 0);
	cr_assert_eq(tomb_load(d.path, SEQ, SEGX, GEN, 200, &out, &deleted), STRATA_ETRUNCATED);
	cr_assert_eq(tomb_load(d.path, SEQ, SEGX, 0, 200, &out, &deleted), STRATA_EINVAL);
	free(f.data);
	free(in);
	t_dir_free(&d);
}

/*
 * Whatever I/O call of a write fails, the failure is reported with an I/O
 * code, no temporary is left, the previous generation is untouched, and the
 * new file is either absent or whole (only the directory sync failed).
 */
Test(tombstone, write_fault_at_every_io_call)
{
#if STRATA_FAILPOINTS
	const enum fp_site sites[] = {FP_OPEN, FP_WRITE, FP_FSYNC, FP_RENAME};
	const int errs[] = {EIO, ENOSPC, FP_SHORT, EACCES};
	uint64_t *old = bitmap(300, 1), *in = bitmap(300, 3), *out, deleted;
	char name[TOMB_NAME_LEN + 6], p[600];
	int failures = 0;
	for (size_t s = 0; s < sizeof sites / sizeof sites[0]; s++) {
		for (size_t e = 0; e < sizeof errs / sizeof errs[0]; e++) {
			if (errs[e] == FP_SHORT && sites[s] != FP_WRITE)
				continue;
			for (int n = 1;; n++) {
				struct t_dir d = t_dir_new();
				cr_assert_eq(tomb_write(d.path, SEQ, SEGX, 1, old, 300), 0);
				fp_disarm_all();
				fp_arm(sites[s], n, errs[e]);
				int rc = tomb_write(d.path, SEQ, SEGX, 2, in, 300);
				bool hit = fp_hits(sites[s]) >= n;
				fp_disarm_all();

				cr_assert_eq(tomb_load(d.path, SEQ, SEGX, 1, 300, &out, &deleted), 0,
				             "site %d n %d: the previous generation: %s", sites[s], n, err_detail());
				cr_assert_eq(deleted, 300);
				free(out);
				tomb_file_name(SEQ, 2, name, sizeof name);
				strcat(name, ".tmp");
				cr_assert_neq(access(t_path(&d, name, p, sizeof p), F_OK), 0,
				              "site %d n %d: %s left behind", sites[s], n, name);
				int lrc = tomb_load(d.path, SEQ, SEGX, 2, 300, &out, &deleted);
				if (lrc == 0) {
					cr_assert_eq(memcmp(out, in, tomb_words(300) * 8), 0);
					free(out);
				} else {
					cr_assert_eq(lrc, STRATA_ECORRUPT, "site %d n %d: new file half there: %d (%s)",
					             sites[s], n, lrc, err_detail());
					cr_assert(strstr(err_detail(), "missing"), "%s", err_detail());
					cr_assert_neq(rc, 0, "a successful write must be visible");
				}
				t_dir_free(&d);
				if (!hit) {
					cr_assert_eq(rc, 0, "site %d n %d: %s", sites[s], n, err_detail());
					break;
				}
				cr_assert(rc < 0 && !STRATA_IS_DATA_ERROR(rc), "site %d n %d: rc %d", sites[s], n, rc);
				failures++;
			}
		}
	}
	cr_assert_geq(failures, 10, "the failpoints were never reached");
	free(old);
	free(in);
#else
	cr_skip_test("built without failpoints (-Dfailpoints=true)");
#endif
}
