/*
 * segment_test.c - the segment file (format/segment_*.c, FORMAT.md "Segment
 * file"): round trips of synthetic but valid graphs, the worked example of
 * FORMAT.md byte for byte, and the refusal of damaged and hostile files:
 * every truncation, every single-byte change of the header and section
 * table, every byte of every section, and crafted files whose checksums were
 * recomputed so that only the structure is wrong.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "failpoint.h"
#include "le.h"
#include "segment.h"
#include "t_support.h"
#include "xsum.h"

/* ---- a synthetic graph in file layout --------------------------------------- */

struct tg {
	struct seg_write_input in;
	uint8_t *nodes, *upper_index, *upper_links;
	uint64_t *ids;
	uint32_t *level; /* per node; 0 below upper_count */
};

static uint64_t mix64(uint64_t x)
{
	/* splitmix64's finaliser: a bijection, so distinct inputs give distinct ids. */
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 31;
	return x;
}

static uint64_t rnd(uint64_t *s)
{
	*s += 0x9e3779b97f4a7c15ull;
	return mix64(*s);
}

/* The id of node i in graphs made here; id_of(i) for i >= count is absent. */
static uint64_t id_of(uint64_t seed, uint64_t i)
{
	return mix64(i ^ (seed << 32)) | 1; /* | 1 keeps it odd, never equal to an even probe */
}

static uint32_t *links0(struct tg *g, uint64_t node)
{
	return (uint32_t *)(void *)(g->nodes + node * g->in.stride + 4ull * g->in.dim);
}

static uint32_t *links_up(struct tg *g, uint64_t node, uint32_t level)
{
	uint64_t first = le_load64(g->upper_index + node * 16 + 8);
	return (uint32_t *)(void *)(g->upper_links + (first + level - 1) * seg_upper_block_size(g->in.M));
}

/* Pick up to `want` distinct values of cand[0..n) into out (shuffles cand). */
static uint32_t pick(uint64_t *s, uint32_t *cand, uint32_t n, uint32_t want, uint32_t *out)
{
	uint32_t k = want < n ? want : n;
	for (uint32_t i = 0; i < k; i++) {
		uint32_t j = i + (uint32_t)(rnd(s) % (n - i));
		uint32_t t = cand[i];
		cand[i] = cand[j];
		cand[j] = t;
		out[i] = cand[i];
	}
	return k;
}

/*
 * A valid random graph: `upper` nodes on layers 1..max_level numbered first,
 * neighbours random but valid, unused neighbour slots filled with garbage
 * (as the engine's builder leaves them: readers must ignore them).
 */
static struct tg tg_make(uint32_t dim, uint32_t M, uint64_t count, uint64_t upper, uint32_t max_level,
                         uint64_t seed)
{
	struct tg g;
	memset(&g, 0, sizeof g);
	uint64_t s = seed;
	uint32_t M0 = 2 * M;
	if (upper == 0)
		max_level = 0;
	g.in = (struct seg_write_input){
		.dim = dim, .metric = STRATA_METRIC_L2, .M = M, .ef_construction = 100,
		.max_level = max_level, .count = count, .stride = (uint32_t)seg_stride_for(dim, M0),
		.upper_count = upper, .seed = seed,
	};
	g.level = calloc(count + 1, sizeof *g.level);
	g.ids = calloc(count + 1, sizeof *g.ids);
	g.nodes = calloc(count + 1, g.in.stride);
	g.upper_index = calloc(upper + 1, 16);
	cr_assert(g.level && g.ids && g.nodes && g.upper_index);
	for (uint64_t i = 0; i < upper; i++)
		g.level[i] = 1 + (uint32_t)(rnd(&s) % max_level);
	g.in.entry = count ? (uint32_t)(upper ? rnd(&s) % upper : rnd(&s) % count) : SEG_NO_NODE;
	if (upper)
		g.level[g.in.entry] = max_level;
	uint64_t blocks = 0;
	for (uint64_t i = 0; i < upper; i++) {
		le_store32(g.upper_index + i * 16, g.level[i]);
		le_store64(g.upper_index + i * 16 + 8, blocks);
		blocks += g.level[i];
	}
	g.in.upper_blocks = blocks;
	g.upper_links = calloc(blocks + 1, seg_upper_block_size(M));
	cr_assert(g.upper_links);

	float *v = t_random_vectors(count ? count : 1, dim, seed);
	uint32_t *cand = malloc((count + 1) * sizeof *cand);
	uint32_t *chosen = malloc((M0 + 1) * sizeof *chosen);
	cr_assert(cand && chosen);
	for (uint64_t i = 0; i < count; i++) {
		memcpy(g.nodes + i * g.in.stride, v + i * dim, 4ull * dim);
		uint32_t n = 0;
		for (uint64_t j = 0; j < count; j++)
			if (j != i)
				cand[n++] = (uint32_t)j;
		uint32_t *l = links0(&g, i);
		uint32_t k = pick(&s, cand, n, (uint32_t)(rnd(&s) % (M0 + 1)), chosen);
		l[0] = k;
		for (uint32_t j = 0; j < M0; j++)
			l[1 + j] = j < k ? chosen[j] : 0xdead0000u + j;
		g.ids[i] = id_of(seed, i);
	}
	for (uint64_t i = 0; i < upper; i++) {
		for (uint32_t lv = 1; lv <= g.level[i]; lv++) {
			uint32_t n = 0;
			for (uint64_t j = 0; j < upper; j++)
				if (j != i && g.level[j] >= lv)
					cand[n++] = (uint32_t)j;
			uint32_t *l = links_up(&g, i, lv);
			uint32_t k = pick(&s, cand, n, (uint32_t)(rnd(&s) % (M + 1)), chosen);
			l[0] = k;
			for (uint32_t j = 0; j < M; j++)
				l[1 + j] = j < k ? chosen[j] : 0xbeef0000u + j;
		}
	}
	free(v);
	free(cand);
	free(chosen);
	g.in.nodes = g.nodes;
	g.in.upper_index = g.upper_index;
	g.in.upper_links = g.upper_links;
	g.in.ids = g.ids;
	return g;
}

static void tg_free(struct tg *g)
{
	free(g->nodes);
	free(g->upper_index);
	free(g->upper_links);
	free(g->ids);
	free(g->level);
}

/* Write g with seg_write and read the file back whole. */
static struct t_blob tg_file(struct tg *g, uint64_t *hx_out)
{
	struct t_dir d = t_dir_new();
	char path[600];
	t_path(&d, "seg-0000000000000001.seg", path, sizeof path);
	uint64_t hx = 0;
	int rc = seg_write(path, &g->in, &hx);
	cr_assert_eq(rc, 0, "seg_write: %s: %s", strata_strerror(rc), err_detail());
	struct t_blob b = t_read_file(path);
	cr_assert_not_null(b.data);
	t_dir_free(&d);
	if (hx_out)
		*hx_out = hx;
	return b;
}

/* The small segment most damage tests start from. */
static struct t_blob small_file(void)
{
	struct tg g = tg_make(4, 2, 10, 3, 2, 7);
	struct t_blob b = tg_file(&g, NULL);
	tg_free(&g);
	return b;
}

/* A copy in a buffer of exactly `len` bytes, so ASan sees any read past it. */
static uint8_t *exact_copy(const uint8_t *src, size_t len)
{
	uint8_t *p = malloc(len ? len : 1);
	cr_assert_not_null(p);
	memcpy(p, src, len);
	return p;
}

/* ---- recomputing checksums (to reach the structure behind them) ------------ */

static void reseal_header(uint8_t *b)
{
	le_store64(b + SEG_OFF_HEADER_XXH3, xsum64(b, SEG_OFF_HEADER_XXH3));
}

static void reseal_table(uint8_t *b)
{
	uint64_t toff = le_load64(b + SEG_OFF_TABLE_OFF);
	le_store64(b + SEG_OFF_TABLE_XXH3, xsum64(b + toff, 5 * SEG_SECTION_ENTRY_SIZE));
	reseal_header(b);
}

static void reseal_all(uint8_t *b)
{
	uint64_t toff = le_load64(b + SEG_OFF_TABLE_OFF);
	for (int i = 0; i < 5; i++) {
		uint8_t *e = b + toff + i * SEG_SECTION_ENTRY_SIZE;
		le_store64(e + 24, xsum64(b + le_load64(e + 8), le_load64(e + 16)));
	}
	reseal_table(b);
}

/* The table entry of section `kind` in a well-formed file. */
static uint8_t *entry_of(uint8_t *b, uint32_t kind)
{
	uint64_t toff = le_load64(b + SEG_OFF_TABLE_OFF);
	for (int i = 0; i < 5; i++)
		if (le_load32(b + toff + i * SEG_SECTION_ENTRY_SIZE) == kind)
			return b + toff + i * SEG_SECTION_ENTRY_SIZE;
	cr_assert_fail("no section %u", kind);
	return NULL;
}

static uint8_t *section(uint8_t *b, uint32_t kind)
{
	return b + le_load64(entry_of(b, kind) + 8);
}

static int check_rc(const uint8_t *b, size_t len)
{
	struct seg_info info;
	return seg_check(b, len, &info);
}

/* seg_check passes, then seg_verify gives `want` with a detail containing `needle`. */
static void expect_verify(const uint8_t *b, size_t len, int want, const char *needle)
{
	struct seg_info info;
	int rc = seg_check(b, len, &info);
	cr_assert_eq(rc, 0, "seg_check: %s", err_detail());
	rc = seg_verify(&info);
	cr_assert_eq(rc, want, "seg_verify gave %d (%s), wanted %d", rc, err_detail(), want);
	if (needle)
		cr_assert(strstr(err_detail(), needle), "detail \"%s\" lacks \"%s\"", err_detail(), needle);
}

/* ---- round trips ------------------------------------------------------------- */

static void round_trip(uint32_t dim, uint32_t M, uint64_t count, uint64_t upper, uint32_t max_level)
{
	struct tg g = tg_make(dim, M, count, upper, max_level, 1000 + dim);
	uint64_t hx;
	struct t_blob b = tg_file(&g, &hx);
	struct seg_info info;
	int rc = seg_check(b.data, b.len, &info);
	cr_assert_eq(rc, 0, "seg_check: %s", err_detail());
	rc = seg_verify(&info);
	cr_assert_eq(rc, 0, "seg_verify: %s", err_detail());

	cr_assert_eq(info.header_xxh3, hx);
	cr_assert_eq(info.version, SEG_VERSION);
	cr_assert_eq(info.dim, dim);
	cr_assert_eq(info.metric, g.in.metric);
	cr_assert_eq(info.M, M);
	cr_assert_eq(info.M0, 2 * M);
	cr_assert_eq(info.ef_construction, g.in.ef_construction);
	cr_assert_eq(info.max_level, g.in.max_level);
	cr_assert_eq(info.entry, g.in.entry);
	cr_assert_eq(info.count, count);
	cr_assert_eq(info.stride, g.in.stride);
	cr_assert_eq(info.upper_count, g.in.upper_count);
	cr_assert_eq(info.upper_blocks, g.in.upper_blocks);
	cr_assert_eq(info.seed, g.in.seed);
	cr_assert_eq(info.len, b.len);
	cr_assert_eq(memcmp(info.nodes, g.nodes, count * g.in.stride), 0);
	cr_assert_eq(memcmp(info.upper_index, g.upper_index, g.in.upper_count * 16), 0);
	cr_assert_eq(memcmp(info.upper_links, g.upper_links,
	                    g.in.upper_blocks * seg_upper_block_size(M)), 0);
	cr_assert_eq(memcmp(info.ids, g.ids, count * 8), 0);
	for (int k = 1; k <= 5; k++)
		cr_assert_eq(info.sec[k].off % SEG_SECTION_ALIGN, 0);

	for (uint64_t i = 0; i < count; i++) {
		float f;
		memcpy(&f, info.nodes + i * info.stride + 4 * (dim - 1), 4);
		cr_assert_eq(memcmp(&f, g.nodes + i * g.in.stride + 4 * (dim - 1), 4), 0);
		uint32_t node = SEG_NO_NODE;
		rc = seg_id_find(&info, g.ids[i], &node);
		cr_assert_eq(rc, 0, "id of node %llu: %s", (unsigned long long)i, err_detail());
		cr_assert_eq(node, i);
	}
	for (uint64_t i = count; i < count + 100; i++) {
		uint32_t node = 77;
		cr_assert_eq(seg_id_find(&info, id_of(1000 + dim, i), &node), STRATA_ENOTFOUND);
		cr_assert_eq(seg_id_find(&info, id_of(1000 + dim, i) - 1, &node), STRATA_ENOTFOUND);
		cr_assert_eq(node, 77, "a miss must not write the output");
	}
	cr_assert_eq(seg_id_find(&info, 0, &(uint32_t){0}), STRATA_ENOTFOUND);
	cr_assert_eq(seg_id_find(&info, UINT64_MAX, &(uint32_t){0}), STRATA_ENOTFOUND);
	free(b.data);
	tg_free(&g);
}

Test(segment, round_trip_dim7_and_dim16)
{
	round_trip(7, 4, 200, 12, 3);
	round_trip(16, 4, 200, 20, 4);
}

Test(segment, round_trip_layer0_only_and_single_node)
{
	round_trip(5, 3, 50, 0, 0);
	round_trip(3, 2, 1, 0, 0);
	round_trip(3, 2, 2, 1, 1);
}

Test(segment, round_trip_large_degree_and_dim)
{
	round_trip(300, 32, 70, 8, 2);
}

Test(segment, empty_segment_round_trips)
{
	struct tg g = tg_make(8, 4, 0, 0, 0, 3);
	cr_assert_eq(g.in.entry, SEG_NO_NODE);
	struct t_blob b = tg_file(&g, NULL);
	struct seg_info info;
	cr_assert_eq(seg_check(b.data, b.len, &info), 0, "%s", err_detail());
	cr_assert_eq(seg_verify(&info), 0, "%s", err_detail());
	cr_assert_eq(info.count, 0);
	cr_assert_eq(info.entry, SEG_NO_NODE);
	cr_assert_eq(info.max_level, 0);
	cr_assert_eq(b.len, SEG_HEADER_SIZE + 5 * SEG_SECTION_ENTRY_SIZE);
	uint32_t node;
	cr_assert_eq(seg_id_find(&info, 5, &node), STRATA_ENOTFOUND);
	free(b.data);
	tg_free(&g);
}

/* FORMAT.md, "Worked example": dim 4, M 2, three nodes, node 0 on layer 1. */
Test(segment, format_md_worked_example_byte_counts)
{
	struct tg g = tg_make(4, 2, 3, 1, 1, 11);
	struct t_blob b = tg_file(&g, NULL);
	struct seg_info info;
	cr_assert_eq(seg_check(b.data, b.len, &info), 0, "%s", err_detail());
	cr_assert_eq(info.stride, 48);
	cr_assert_eq(info.entry, 0);
	cr_assert_eq(info.sec[SEG_SEC_NODES].off, 128);
	cr_assert_eq(info.sec[SEG_SEC_NODES].size, 144);
	cr_assert_eq(info.sec[SEG_SEC_UPPER_INDEX].off, 320);
	cr_assert_eq(info.sec[SEG_SEC_UPPER_INDEX].size, 16);
	cr_assert_eq(info.sec[SEG_SEC_UPPER_LINKS].off, 384);
	cr_assert_eq(info.sec[SEG_SEC_UPPER_LINKS].size, 12);
	cr_assert_eq(info.sec[SEG_SEC_IDS].off, 448);
	cr_assert_eq(info.sec[SEG_SEC_IDS].size, 24);
	cr_assert_eq(info.sec[SEG_SEC_ID_INDEX].off, 512);
	cr_assert_eq(info.sec[SEG_SEC_ID_INDEX].size, 48);
	cr_assert_eq(le_load64(b.data + SEG_OFF_TABLE_OFF), 576);
	cr_assert_eq(b.len, 736);
	cr_assert_eq(memcmp(b.data, "STRATSEG", 8), 0);
	free(b.data);
	tg_free(&g);
}

/* ---- damage: truncation and byte changes ----------------------------------- */

Test(segment, every_truncation_is_refused_as_truncated)
{
	struct t_blob b = small_file();
	for (size_t len = 0; len < b.len; len++) {
		uint8_t *p = exact_copy(b.data, len);
		int rc = check_rc(p, len);
		cr_assert_eq(rc, STRATA_ETRUNCATED, "length %zu of %zu: rc %d (%s)", len, b.len, rc,
		             err_detail());
		free(p);
	}
	cr_assert_eq(check_rc(NULL, 0), STRATA_ETRUNCATED);
	free(b.data);
}

Test(segment, trailing_bytes_are_refused)
{
	struct t_blob b = small_file();
	uint8_t *p = calloc(1, b.len + 64);
	memcpy(p, b.data, b.len);
	cr_assert_eq(check_rc(p, b.len + 1), STRATA_ECORRUPT);
	cr_assert_eq(check_rc(p, b.len + 64), STRATA_ECORRUPT);
	free(p);
	free(b.data);
}

/* The code FORMAT.md's reader obligations give for a change of byte `i`. */
static int code_for_header_byte(size_t i)
{
	if (i < 8)
		return STRATA_ENOTDB;
	if (i < 12)
		return STRATA_EVERSION;
	if (i < 16)
		return STRATA_ECORRUPT;
	return STRATA_ECHECKSUM;
}

Test(segment, every_header_and_table_byte_change_is_caught_by_check)
{
	struct t_blob b = small_file();
	uint64_t toff = le_load64(b.data + SEG_OFF_TABLE_OFF);
	const uint8_t patterns[] = {0xFF, 0x01, 0x80, 0x10};
	for (size_t i = 0; i < b.len; i++) {
		if (i >= SEG_HEADER_SIZE && i < toff)
			continue;
		for (size_t k = 0; k < sizeof patterns; k++) {
			uint8_t *p = exact_copy(b.data, b.len);
			p[i] ^= patterns[k];
			int rc = check_rc(p, b.len);
			int want = i < SEG_HEADER_SIZE ? code_for_header_byte(i) : STRATA_ECHECKSUM;
			cr_assert_eq(rc, want, "byte %zu ^ 0x%02x: rc %d (%s), wanted %d", i, patterns[k], rc,
			             err_detail(), want);
			free(p);
		}
	}
	free(b.data);
}

Test(segment, every_section_byte_change_is_caught_by_verify)
{
	struct t_blob b = small_file();
	struct seg_info info;
	cr_assert_eq(seg_check(b.data, b.len, &info), 0);
	for (uint32_t kind = 1; kind <= SEG_SEC_KIND_MAX; kind++) {
		const struct seg_section *s = &info.sec[kind];
		cr_assert_gt(s->size, 0);
		for (uint64_t o = s->off; o < s->off + s->size; o++) {
			uint8_t *p = exact_copy(b.data, b.len);
			p[o] ^= (o & 1) ? 0xFF : 0x01;
			expect_verify(p, b.len, STRATA_ECHECKSUM, seg_section_name(kind));
			free(p);
		}
	}
	free(b.data);
}

Test(segment, padding_between_sections_is_checked_by_verify)
{
	struct t_blob b = small_file();
	struct seg_info info;
	cr_assert_eq(seg_check(b.data, b.len, &info), 0);
	uint64_t toff = le_load64(b.data + SEG_OFF_TABLE_OFF);
	size_t gaps = 0;
	for (uint64_t o = SEG_HEADER_SIZE; o < toff; o++) {
		bool in_section = false;
		for (uint32_t k = 1; k <= 5; k++)
			in_section |= o >= info.sec[k].off && o < info.sec[k].off + info.sec[k].size;
		if (in_section)
			continue;
		gaps++;
		uint8_t *p = exact_copy(b.data, b.len);
		p[o] = 0x5a;
		expect_verify(p, b.len, STRATA_ECORRUPT, "padding");
		free(p);
	}
	cr_assert_gt(gaps, 0, "the small file was meant to have padding");
	free(b.data);
}

/* ---- hostile headers and tables with valid checksums ------------------------- */

struct hdr_case {
	const char *what;
	unsigned off;
	unsigned width; /* 4 or 8 */
	uint64_t value;
	int want;
	const char *needle;
};

Test(segment, hostile_header_fields_are_refused_by_check)
{
	const struct hdr_case cases[] = {
		{"version 2", SEG_OFF_VERSION, 4, 2, STRATA_EVERSION, "version"},
		{"header_size 64", SEG_OFF_HEADER_SIZE, 4, 64, STRATA_ECORRUPT, "header_size"},
		{"dim 0", SEG_OFF_DIM, 4, 0, STRATA_ECORRUPT, "dim"},
		{"dim 2^31", SEG_OFF_DIM, 4, 1ull << 31, STRATA_ECORRUPT, "dim"},
		{"metric 3", SEG_OFF_METRIC, 4, 3, STRATA_ECORRUPT, "metric"},
		{"M 1", SEG_OFF_M, 4, 1, STRATA_ECORRUPT, "M 1"},
		{"M 2^31", SEG_OFF_M, 4, 1ull << 31, STRATA_ECORRUPT, "M "},
		{"M0 5", SEG_OFF_M0, 4, 5, STRATA_ECORRUPT, "M0"},
		{"count 2^40", SEG_OFF_COUNT, 8, 1ull << 40, STRATA_ECORRUPT, "count"},
		{"count 2^64-1", SEG_OFF_COUNT, 8, UINT64_MAX, STRATA_ECORRUPT, "count"},
		{"count 11", SEG_OFF_COUNT, 8, 11, STRATA_ECORRUPT, "section"},
		{"stride 47", SEG_OFF_STRIDE, 4, 47, STRATA_ECORRUPT, "stride"},
		{"stride 32", SEG_OFF_STRIDE, 4, 32, STRATA_ECORRUPT, "stride"},
		{"stride 2^32-16", SEG_OFF_STRIDE, 4, 0xFFFFFFF0u, STRATA_ECORRUPT, "stride"},
		{"max_level 65", SEG_OFF_MAX_LEVEL, 4, 65, STRATA_ECORRUPT, "max_level"},
		{"max_level 0", SEG_OFF_MAX_LEVEL, 4, 0, STRATA_ECORRUPT, "max_level"},
		{"upper_count 11", SEG_OFF_UPPER_COUNT, 8, 11, STRATA_ECORRUPT, "upper_count"},
		{"upper_count 0", SEG_OFF_UPPER_COUNT, 8, 0, STRATA_ECORRUPT, "upper_count"},
		{"upper_blocks 2^64-1", SEG_OFF_UPPER_BLOCKS, 8, UINT64_MAX, STRATA_ECORRUPT, "upper_blocks"},
		{"upper_blocks 2", SEG_OFF_UPPER_BLOCKS, 8, 2, STRATA_ECORRUPT, "upper_blocks"},
		{"entry 10 (= count)", SEG_OFF_ENTRY, 4, 10, STRATA_ECORRUPT, "entry"},
		{"entry 3 (layer 0 only)", SEG_OFF_ENTRY, 4, 3, STRATA_ECORRUPT, "entry"},
		{"entry none", SEG_OFF_ENTRY, 4, SEG_NO_NODE, STRATA_ECORRUPT, "entry"},
		{"flags 1", SEG_OFF_FLAGS, 4, 1, STRATA_ECORRUPT, "flags"},
		{"reserved", SEG_OFF_RESERVED, 8, 1, STRATA_ECORRUPT, "reserved"},
		{"file_size +64", SEG_OFF_FILE_SIZE, 8, 0, STRATA_ETRUNCATED, "file_size"},
		{"file_size 2^64-1", SEG_OFF_FILE_SIZE, 8, UINT64_MAX, STRATA_ETRUNCATED, "file_size"},
		{"file_size 128", SEG_OFF_FILE_SIZE, 8, 128, STRATA_ECORRUPT, "file_size"},
		{"table at 2^64-64", SEG_OFF_TABLE_OFF, 8, UINT64_MAX - 63, STRATA_ECORRUPT, "section table"},
		{"table at 64", SEG_OFF_TABLE_OFF, 8, 64, STRATA_ECORRUPT, "section table"},
		{"table unaligned", SEG_OFF_TABLE_OFF, 8, 0, STRATA_ECORRUPT, "section table"},
		{"section_count 2^32-1", SEG_OFF_SECTION_COUNT, 4, 0xFFFFFFFFu, STRATA_ECORRUPT, "section table"},
		{"section_count 4", SEG_OFF_SECTION_COUNT, 4, 4, STRATA_ECORRUPT, "follow the section table"},
	};
	struct t_blob b = small_file();
	cr_assert_eq(le_load32(b.data + SEG_OFF_MAX_LEVEL), 2);
	cr_assert_eq(le_load64(b.data + SEG_OFF_UPPER_COUNT), 3);
	cr_assert_eq(le_load64(b.data + SEG_OFF_COUNT), 10);
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		const struct hdr_case *h = &cases[c];
		uint8_t *p = exact_copy(b.data, b.len);
		uint64_t v = h->value;
		if (!strcmp(h->what, "file_size +64"))
			v = b.len + 64;
		if (!strcmp(h->what, "table unaligned"))
			v = le_load64(p + SEG_OFF_TABLE_OFF) + 8;
		if (!strcmp(h->what, "entry 3 (layer 0 only)"))
			cr_assert_eq(le_load32(p + SEG_OFF_ENTRY) < 3, true);
		if (h->width == 4)
			le_store32(p + h->off, (uint32_t)v);
		else
			le_store64(p + h->off, v);
		reseal_header(p);
		int rc = check_rc(p, b.len);
		cr_assert_eq(rc, h->want, "%s: rc %d (%s), wanted %d", h->what, rc, err_detail(), h->want);
		cr_assert(strstr(err_detail(), h->needle), "%s: detail \"%s\" lacks \"%s\"", h->what,
		          err_detail(), h->needle);
		free(p);
	}
	free(b.data);
}

Test(segment, hostile_section_tables_are_refused_by_check)
{
	struct t_blob b = small_file();
	uint64_t toff = le_load64(b.data + SEG_OFF_TABLE_OFF);
	for (int c = 0; c < 12; c++) {
		uint8_t *p = exact_copy(b.data, b.len);
		uint8_t *ids = entry_of(p, SEG_SEC_IDS), *nodes = entry_of(p, SEG_SEC_NODES);
		const char *needle = NULL;
		switch (c) {
		case 0: /* section longer than the file */
			le_store64(ids + 16, UINT64_MAX - 10);
			needle = "run past";
			break;
		case 1: /* offset far beyond the file */
			le_store64(ids + 8, UINT64_MAX - 63);
			needle = "run past";
			break;
		case 2: /* overlapping: IDS placed on NODES */
			le_store64(ids + 8, le_load64(nodes + 8));
			needle = "overlaps";
			break;
		case 3: /* overlapping by one 64-byte step */
			le_store64(ids + 8, le_load64(nodes + 8) + 64);
			needle = "overlaps";
			break;
		case 4: /* kind 0 */
			le_store32(ids, 0);
			needle = "kind";
			break;
		case 5: /* kind 6 */
			le_store32(ids, 6);
			needle = "kind";
			break;
		case 6: /* a kind twice */
			le_store32(ids, SEG_SEC_NODES);
			needle = "twice";
			break;
		case 7: /* entry flags */
			le_store32(ids + 4, 1);
			needle = "flags";
			break;
		case 8: /* unaligned offset */
			le_store64(ids + 8, le_load64(ids + 8) + 4);
			needle = "multiple";
			break;
		case 9: /* inside the header */
			le_store64(ids + 8, 64);
			needle = "below";
			break;
		case 10: /* size other than the header implies */
			le_store64(ids + 16, le_load64(ids + 16) - 8);
			needle = "implies";
			break;
		case 11: /* ends inside the table */
			le_store64(ids + 8, toff - 64 + 0);
			needle = "run past";
			break;
		}
		reseal_table(p);
		int rc = check_rc(p, b.len);
		cr_assert_eq(rc, STRATA_ECORRUPT, "case %d: rc %d (%s)", c, rc, err_detail());
		cr_assert(strstr(err_detail(), needle), "case %d: detail \"%s\" lacks \"%s\"", c,
		          err_detail(), needle);
		free(p);
	}
	free(b.data);
}

/* ---- hostile section contents with valid checksums: seg_verify's job ---------- */

struct tweak {
	const char *what;
	void (*apply)(uint8_t *b, const struct seg_info *in);
	const char *needle;
};

static uint8_t *node_rec(uint8_t *b, const struct seg_info *in, uint64_t i)
{
	return b + in->sec[SEG_SEC_NODES].off + i * in->stride;
}

static uint8_t *node_links(uint8_t *b, const struct seg_info *in, uint64_t i)
{
	return node_rec(b, in, i) + 4ull * in->dim;
}

static uint8_t *upper_entry(uint8_t *b, const struct seg_info *in, uint64_t i)
{
	return b + in->sec[SEG_SEC_UPPER_INDEX].off + i * 16;
}

static uint8_t *upper_block(uint8_t *b, const struct seg_info *in, uint64_t node, uint32_t level)
{
	uint64_t first = le_load64(upper_entry(b, in, node) + 8);
	return b + in->sec[SEG_SEC_UPPER_LINKS].off + (first + level - 1) * seg_upper_block_size(in->M);
}

static void tw_nbr_out_of_range(uint8_t *b, const struct seg_info *in)
{
	le_store32(node_links(b, in, 5), 1);
	le_store32(node_links(b, in, 5) + 4, (uint32_t)in->count);
}
static void tw_nbr_huge(uint8_t *b, const struct seg_info *in)
{
	le_store32(node_links(b, in, 5), 1);
	le_store32(node_links(b, in, 5) + 4, 0xFFFFFFFFu);
}
static void tw_self_loop(uint8_t *b, const struct seg_info *in)
{
	le_store32(node_links(b, in, 5), 2);
	le_store32(node_links(b, in, 5) + 4, 4);
	le_store32(node_links(b, in, 5) + 8, 5);
}
static void tw_too_many(uint8_t *b, const struct seg_info *in)
{
	le_store32(node_links(b, in, 5), in->M0 + 1);
}
static void tw_count_huge(uint8_t *b, const struct seg_info *in)
{
	le_store32(node_links(b, in, 9), 0xFFFFFFFFu);
}
static void tw_nan(uint8_t *b, const struct seg_info *in)
{
	float f = NAN;
	memcpy(node_rec(b, in, 3) + 4, &f, 4);
}
static void tw_inf(uint8_t *b, const struct seg_info *in)
{
	float f = -INFINITY;
	memcpy(node_rec(b, in, 0), &f, 4);
}
static void tw_node_padding(uint8_t *b, const struct seg_info *in)
{
	node_rec(b, in, 2)[in->stride - 1] = 1;
}
static void tw_level0(uint8_t *b, const struct seg_info *in)
{
	le_store32(upper_entry(b, in, 1), 0);
}
static void tw_level_high(uint8_t *b, const struct seg_info *in)
{
	le_store32(upper_entry(b, in, 1), in->max_level + 1);
}
static void tw_upper_reserved(uint8_t *b, const struct seg_info *in)
{
	le_store32(upper_entry(b, in, 2) + 4, 1);
}
static void tw_first_block(uint8_t *b, const struct seg_info *in)
{
	le_store64(upper_entry(b, in, 2) + 8, UINT64_MAX);
}
static void tw_entry_level(uint8_t *b, const struct seg_info *in)
{
	/* Swap the entry's level with a lower one and renumber the blocks: the
	 * index stays consistent, only the entry is no longer on the top layer. */
	uint8_t *e = upper_entry(b, in, in->entry);
	cr_assert_eq(le_load32(e), in->max_level);
	for (uint64_t n = 0; n < in->upper_count; n++) {
		uint8_t *o = upper_entry(b, in, n);
		uint32_t lo = le_load32(o);
		if (lo == in->max_level)
			continue;
		le_store32(e, lo);
		le_store32(o, in->max_level);
		uint64_t first = 0;
		for (uint64_t i = 0; i < in->upper_count; i++) {
			le_store64(upper_entry(b, in, i) + 8, first);
			first += le_load32(upper_entry(b, in, i));
		}
		return;
	}
	cr_assert_fail("the small graph has no node below max_level");
}
static void tw_upper_too_many(uint8_t *b, const struct seg_info *in)
{
	le_store32(upper_block(b, in, 0, 1), in->M + 1);
}
static void tw_upper_not_upper(uint8_t *b, const struct seg_info *in)
{
	le_store32(upper_block(b, in, 0, 1), 1);
	le_store32(upper_block(b, in, 0, 1) + 4, (uint32_t)in->upper_count);
}
static void tw_upper_self(uint8_t *b, const struct seg_info *in)
{
	le_store32(upper_block(b, in, 1, 1), 1);
	le_store32(upper_block(b, in, 1, 1) + 4, 1);
}
static void tw_upper_low_level(uint8_t *b, const struct seg_info *in)
{
	/* On level 2, name a node that only reaches level 1. */
	for (uint32_t n = 0; n < in->upper_count; n++) {
		if (le_load32(upper_entry(b, in, n)) == 1) {
			le_store32(upper_block(b, in, in->entry, 2), 1);
			le_store32(upper_block(b, in, in->entry, 2) + 4, n);
			return;
		}
	}
	cr_assert_fail("the small graph has no level-1 node");
}
static void tw_id_max(uint8_t *b, const struct seg_info *in)
{
	le_store64(b + in->sec[SEG_SEC_IDS].off + 8 * 4, UINT64_MAX);
}
static void tw_index_unsorted(uint8_t *b, const struct seg_info *in)
{
	uint8_t *x = b + in->sec[SEG_SEC_ID_INDEX].off, t[16];
	memcpy(t, x, 16);
	memcpy(x, x + 16, 16);
	memcpy(x + 16, t, 16);
}
static void tw_duplicate_ids(uint8_t *b, const struct seg_info *in)
{
	/* Node 1 takes node 0's id in IDS; the index still names the old one. */
	uint8_t *ids = b + in->sec[SEG_SEC_IDS].off;
	memcpy(ids + 8, ids, 8);
}
static void tw_duplicate_index(uint8_t *b, const struct seg_info *in)
{
	uint8_t *x = b + in->sec[SEG_SEC_ID_INDEX].off;
	memcpy(x + 16, x, 16);
}
static void tw_index_node(uint8_t *b, const struct seg_info *in)
{
	le_store32(b + in->sec[SEG_SEC_ID_INDEX].off + 16 * 3 + 8, (uint32_t)in->count);
}
static void tw_index_reserved(uint8_t *b, const struct seg_info *in)
{
	le_store32(b + in->sec[SEG_SEC_ID_INDEX].off + 16 * 3 + 12, 1);
}
static void tw_index_wrong_node(uint8_t *b, const struct seg_info *in)
{
	uint8_t *e = b + in->sec[SEG_SEC_ID_INDEX].off + 16 * 3;
	le_store32(e + 8, (le_load32(e + 8) + 1) % (uint32_t)in->count);
}

Test(segment, hostile_structure_is_refused_by_verify)
{
	const struct tweak tweaks[] = {
		{"neighbour == count", tw_nbr_out_of_range, "not below count"},
		{"neighbour 2^32-1", tw_nbr_huge, "not below count"},
		{"self loop", tw_self_loop, "itself"},
		{"nbr_count M0+1", tw_too_many, "above M0"},
		{"nbr_count 2^32-1", tw_count_huge, "above M0"},
		{"NaN component", tw_nan, "not finite"},
		{"-Inf component", tw_inf, "not finite"},
		{"node padding", tw_node_padding, "padding"},
		{"upper level 0", tw_level0, "level 0"},
		{"upper level > max", tw_level_high, "outside 1..max_level"},
		{"upper reserved", tw_upper_reserved, "reserved"},
		{"first_block 2^64-1", tw_first_block, "block"},
		{"entry below max_level", tw_entry_level, "entry node"},
		{"upper count M+1", tw_upper_too_many, "above M"},
		{"upper neighbour on layer 0 only", tw_upper_not_upper, "not an upper-layer node"},
		{"upper self loop", tw_upper_self, "itself"},
		{"upper neighbour below the level", tw_upper_low_level, "only reaches level"},
		{"id UINT64_MAX", tw_id_max, "UINT64_MAX"},
		{"id index unsorted", tw_index_unsorted, "ascending"},
		{"duplicate ids in IDS", tw_duplicate_ids, "whose id is"},
		{"duplicate ids in the index", tw_duplicate_index, "ascending"},
		{"index node == count", tw_index_node, "not below count"},
		{"index reserved", tw_index_reserved, "reserved"},
		{"index names the wrong node", tw_index_wrong_node, "whose id is"},
	};
	struct t_blob b = small_file();
	struct seg_info in;
	cr_assert_eq(seg_check(b.data, b.len, &in), 0);
	cr_assert_eq(seg_verify(&in), 0, "%s", err_detail());
	cr_assert_gt(in.stride, seg_node_raw_size(in.dim, in.M0), "the small file needs node padding");
	cr_assert_eq(in.max_level, 2);
	for (size_t c = 0; c < sizeof tweaks / sizeof tweaks[0]; c++) {
		uint8_t *p = exact_copy(b.data, b.len);
		tweaks[c].apply(p, &in);
		cr_assert_neq(memcmp(p, b.data, b.len), 0, "%s changed nothing", tweaks[c].what);
		reseal_all(p);
		struct seg_info pi;
		int rc = seg_check(p, b.len, &pi);
		cr_assert_eq(rc, 0, "%s: seg_check must not look at sections: %s", tweaks[c].what,
		             err_detail());
		rc = seg_verify(&pi);
		cr_assert_eq(rc, STRATA_ECORRUPT, "%s: rc %d (%s)", tweaks[c].what, rc, err_detail());
		cr_assert(strstr(err_detail(), tweaks[c].needle), "%s: detail \"%s\" lacks \"%s\"",
		          tweaks[c].what, err_detail(), tweaks[c].needle);
		free(p);
	}
	free(b.data);
}

Test(segment, id_find_never_returns_a_node_the_file_cannot_back)
{
	struct tg g = tg_make(4, 2, 10, 3, 2, 7);
	struct t_blob b = tg_file(&g, NULL);
	struct seg_info in;
	cr_assert_eq(seg_check(b.data, b.len, &in), 0);
	uint8_t *p = exact_copy(b.data, b.len);
	uint8_t *e = section(p, SEG_SEC_ID_INDEX) + 16 * 4;
	uint64_t id = le_load64(e);
	le_store32(e + 8, 0xFFFFFFFFu);
	reseal_all(p);
	struct seg_info pi;
	cr_assert_eq(seg_check(p, b.len, &pi), 0);
	uint32_t node = 12345;
	cr_assert_eq(seg_id_find(&pi, id, &node), STRATA_ECORRUPT);
	cr_assert_eq(node, 12345);
	/* A node in range whose IDS entry holds another id. */
	le_store32(e + 8, (le_load32(section(b.data, SEG_SEC_ID_INDEX) + 16 * 4 + 8) + 1) % 10);
	reseal_all(p);
	cr_assert_eq(seg_check(p, b.len, &pi), 0);
	cr_assert_eq(seg_id_find(&pi, id, &node), STRATA_ECORRUPT);
	cr_assert_eq(node, 12345);
	/* An unsorted index: lookups may miss but stay in bounds (ASan watches). */
	for (int i = 0; i < 10; i++)
		le_store64(section(p, SEG_SEC_ID_INDEX) + 16 * i, mix64((uint64_t)i));
	reseal_all(p);
	cr_assert_eq(seg_check(p, b.len, &pi), 0);
	for (int i = 0; i < 10; i++) {
		int rc = seg_id_find(&pi, g.ids[i], &node);
		cr_assert(rc == STRATA_ENOTFOUND || rc == STRATA_ECORRUPT || (rc == 0 && node < 10));
	}
	free(p);
	free(b.data);
	tg_free(&g);
}

/* ---- the writer's refusals ---------------------------------------------------- */

static bool exists(const char *path)
{
	return access(path, F_OK) == 0;
}

Test(segment, write_refuses_duplicate_ids_and_leaves_no_file)
{
	struct tg g = tg_make(6, 3, 40, 4, 2, 5);
	g.ids[31] = g.ids[7];
	struct t_dir d = t_dir_new();
	char path[600];
	t_path(&d, "dup.seg", path, sizeof path);
	int rc = seg_write(path, &g.in, NULL);
	cr_assert_eq(rc, STRATA_EDUPLICATE, "rc %d (%s)", rc, err_detail());
	cr_assert(strstr(err_detail(), "nodes 7 and 31"), "detail: %s", err_detail());
	cr_assert(!exists(path));

	g.ids[31] = UINT64_MAX;
	rc = seg_write(path, &g.in, NULL);
	cr_assert_eq(rc, STRATA_EINVAL, "rc %d (%s)", rc, err_detail());
	cr_assert(!exists(path));
	t_dir_free(&d);
	tg_free(&g);
}

Test(segment, write_refuses_bad_input_without_creating_a_file)
{
	struct tg g = tg_make(6, 3, 40, 4, 2, 5);
	struct t_dir d = t_dir_new();
	char path[600];
	t_path(&d, "bad.seg", path, sizeof path);
	struct seg_write_input ok = g.in;
	struct seg_write_input bad[12];
	for (int i = 0; i < 12; i++)
		bad[i] = ok;
	bad[0].dim = 0;
	bad[1].stride += 16;
	bad[2].M = 1;
	bad[3].M = 0x80000001u;
	bad[4].metric = 9;
	bad[5].entry = 39; /* not an upper node */
	bad[6].upper_count = 41;
	bad[7].upper_blocks = 1000;
	bad[8].max_level = 0;
	bad[9].nodes = NULL;
	bad[10].count = SEG_COUNT_MAX + 1;
	bad[11].upper_links = NULL;
	for (int i = 0; i < 12; i++) {
		int rc = seg_write(path, &bad[i], NULL);
		cr_assert_eq(rc, STRATA_EINVAL, "case %d: rc %d (%s)", i, rc, err_detail());
		cr_assert(!exists(path), "case %d left a file", i);
	}
	cr_assert_eq(seg_write(NULL, &ok, NULL), STRATA_EINVAL);
	cr_assert_eq(seg_write(path, NULL, NULL), STRATA_EINVAL);
	t_dir_free(&d);
	tg_free(&g);
}

Test(segment, write_never_replaces_an_existing_file)
{
	struct tg g = tg_make(6, 3, 40, 4, 2, 5);
	struct t_dir d = t_dir_new();
	char path[600];
	t_path(&d, "x.seg", path, sizeof path);
	t_write_file(path, "keep", 4);
	int rc = seg_write(path, &g.in, NULL);
	cr_assert_eq(rc, STRATA_EEXIST, "rc %d (%s)", rc, err_detail());
	struct t_blob b = t_read_file(path);
	cr_assert_eq(b.len, 4);
	cr_assert_eq(memcmp(b.data, "keep", 4), 0);
	free(b.data);
	t_dir_free(&d);
	tg_free(&g);
}

Test(segment, section_names)
{
	cr_assert_str_eq(seg_section_name(SEG_SEC_NODES), "nodes");
	cr_assert_str_eq(seg_section_name(SEG_SEC_UPPER_INDEX), "upper index");
	cr_assert_str_eq(seg_section_name(SEG_SEC_UPPER_LINKS), "upper links");
	cr_assert_str_eq(seg_section_name(SEG_SEC_IDS), "ids");
	cr_assert_str_eq(seg_section_name(SEG_SEC_ID_INDEX), "id index");
	cr_assert_str_eq(seg_section_name(0), "unknown");
	cr_assert_str_eq(seg_section_name(99), "unknown");
}

/* Every failing I/O call of seg_write reaches the caller and leaves no file. */
Test(segment, write_fault_at_every_io_call_is_reported_and_cleaned_up)
{
#if STRATA_FAILPOINTS
	struct tg g = tg_make(6, 3, 40, 4, 2, 5);
	struct t_dir d = t_dir_new();
	char path[600];
	t_path(&d, "f.seg", path, sizeof path);
	const struct {
		enum fp_site site;
		int err;
		int want;
	} faults[] = {
		{FP_OPEN, EACCES, STRATA_EPERM}, {FP_WRITE, ENOSPC, STRATA_ENOSPC},
		{FP_WRITE, FP_SHORT, STRATA_EIO}, {FP_FSYNC, EIO, STRATA_EIO},
		{FP_MMAP, ENOMEM, STRATA_ENOMEM}, {FP_READ, EIO, STRATA_EIO},
	};
	for (size_t f = 0; f < sizeof faults / sizeof faults[0]; f++) {
		for (int n = 1;; n++) {
			fp_disarm_all();
			fp_arm(faults[f].site, n, faults[f].err);
			int rc = seg_write(path, &g.in, NULL);
			bool hit = fp_hits(faults[f].site) >= n;
			fp_disarm_all();
			if (!hit) {
				cr_assert_eq(rc, 0, "site %d untouched at n=%d: %s", faults[f].site, n, err_detail());
				cr_assert(exists(path));
				cr_assert_eq(unlink(path), 0);
				break;
			}
			cr_assert_eq(rc, faults[f].want, "site %d n=%d: rc %d (%s)", faults[f].site, n, rc,
			             err_detail());
			cr_assert(!exists(path), "site %d n=%d left a file", faults[f].site, n);
		}
	}
	t_dir_free(&d);
	tg_free(&g);
#else
	cr_skip_test("built without failpoints (-Dfailpoints=true)");
#endif
}
