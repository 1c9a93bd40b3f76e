/*
 * segment_reader.c - the constant-time check of a segment file held in
 * memory (seg_check), id lookup (seg_id_find) and section names.
 * Spec: FORMAT.md, "Segment file" and its "Reader obligations", whose order
 * and error codes this file follows check by check.
 *
 * It reads the 128-byte header and the section table and nothing else, so
 * opening costs the same for ten vectors or a billion. It must never read
 * outside buf[0..len), allocate, or trust a field before it is checked: a
 * hostile header may hold 2^64-1 in any field, so every sum and product
 * below is overflow-checked (the subtraction forms `size > end - off` are
 * the idiom). Graph edges, vectors and ids are segment_verify.c's job.
 */
#include <assert.h>
#include <stdbool.h>
#include <string.h>

#include "err.h"
#include "le.h"
#include "segment.h"
#include "xsum.h"

static_assert(SEG_OFF_HEADER_XXH3 + 8 == SEG_HEADER_SIZE, "the header checksum ends the header");
static_assert(SEG_OFF_RESERVED + 8 == SEG_OFF_HEADER_XXH3, "header fields are contiguous");
static_assert(SEG_SEC_KIND_MAX == 5, "v1 has exactly five sections");
static_assert(SEG_HEADER_SIZE % SEG_SECTION_ALIGN == 0, "the first section may follow the header directly");
static_assert(SEG_COUNT_MAX < SEG_NO_NODE, "SEG_NO_NODE is never a node");

/* Data errors carry their check's origin in debug and fuzz builds. */
#define SEG_FAIL(rc, ...) err_set_at((rc), __FILE__, __LINE__, __VA_ARGS__)

#define ULL(x) ((unsigned long long)(x))

static bool mul_ok(uint64_t a, uint64_t b, uint64_t *out)
{
	if (a != 0 && b > UINT64_MAX / a)
		return false;
	*out = a * b;
	return true;
}

const char *seg_section_name(uint32_t kind)
{
	switch (kind) {
	case SEG_SEC_NODES:
		return "nodes";
	case SEG_SEC_UPPER_INDEX:
		return "upper index";
	case SEG_SEC_UPPER_LINKS:
		return "upper links";
	case SEG_SEC_IDS:
		return "ids";
	case SEG_SEC_ID_INDEX:
		return "id index";
	default:
		return "unknown";
	}
}

int seg_params_check(const struct seg_info *g)
{
	if (g->dim < 1 || g->dim > STRATA_DIM_MAX)
		return ERR_CORRUPT("header: dim %u is outside 1..%u", g->dim, STRATA_DIM_MAX);
	if (g->metric > 2)
		return ERR_CORRUPT("header: metric %u is not 0 (l2), 1 (ip) or 2 (cosine)", g->metric);
	if (g->M < STRATA_M_MIN || g->M > STRATA_M_MAX)
		return ERR_CORRUPT("header: M %u is outside %u..%u", g->M, STRATA_M_MIN, STRATA_M_MAX);
	if (g->M0 != 2 * g->M)
		return ERR_CORRUPT("header: M0 %u is not 2*M (M = %u)", g->M0, g->M);
	if (g->count > SEG_COUNT_MAX)
		return ERR_CORRUPT("header: count %llu is above %llu", ULL(g->count), ULL(SEG_COUNT_MAX));

	uint64_t raw = seg_node_raw_size(g->dim, g->M0);
	if (g->stride % SEG_STRIDE_ALIGN != 0 || g->stride < raw || g->stride > raw + 64)
		return ERR_CORRUPT("header: stride %u is not a multiple of %u in %llu..%llu "
		                   "(dim %u, M0 %u)",
		                   g->stride, SEG_STRIDE_ALIGN, ULL(raw), ULL(raw + 64), g->dim, g->M0);
	if (g->max_level > SEG_LEVEL_MAX)
		return ERR_CORRUPT("header: max_level %u is above %u", g->max_level, SEG_LEVEL_MAX);
	if (g->upper_count > g->count)
		return ERR_CORRUPT("header: upper_count %llu is above count %llu", ULL(g->upper_count),
		                   ULL(g->count));
	if ((g->upper_count == 0) != (g->max_level == 0))
		return ERR_CORRUPT("header: upper_count %llu with max_level %u (zero only together)",
		                   ULL(g->upper_count), g->max_level);

	uint64_t blocks_max;
	if (!mul_ok(g->upper_count, g->max_level, &blocks_max) || g->upper_blocks < g->upper_count ||
	    g->upper_blocks > blocks_max)
		return ERR_CORRUPT("header: upper_blocks %llu is outside upper_count..upper_count*max_level "
		                   "(%llu, max_level %u)",
		                   ULL(g->upper_blocks), ULL(g->upper_count), g->max_level);

	if (g->count == 0) {
		if (g->entry != SEG_NO_NODE)
			return ERR_CORRUPT("header: entry %u in an empty segment (must be 0x%x)", g->entry,
			                   SEG_NO_NODE);
	} else if (g->entry >= g->count) {
		return ERR_CORRUPT("header: entry %u is not below count %llu", g->entry, ULL(g->count));
	} else if (g->max_level > 0 && g->entry >= g->upper_count) {
		return ERR_CORRUPT("header: entry %u is not an upper-layer node (upper_count %llu, "
		                   "max_level %u)",
		                   g->entry, ULL(g->upper_count), g->max_level);
	}
	return 0;
}

/* Section sizes the header implies, by kind; false if one overflows. */
static bool seg_expected_sizes(const struct seg_info *g, uint64_t size[SEG_SEC_KIND_MAX + 1])
{
	size[0] = 0;
	return mul_ok(g->count, g->stride, &size[SEG_SEC_NODES]) &&
	       mul_ok(g->upper_count, SEG_UPPER_ENTRY_SIZE, &size[SEG_SEC_UPPER_INDEX]) &&
	       mul_ok(g->upper_blocks, seg_upper_block_size(g->M), &size[SEG_SEC_UPPER_LINKS]) &&
	       mul_ok(g->count, 8, &size[SEG_SEC_IDS]) &&
	       mul_ok(g->count, SEG_ID_INDEX_ENTRY_SIZE, &size[SEG_SEC_ID_INDEX]);
}

/* Reader obligations 1-5 (FORMAT.md): the fixed fields before any size is trusted. */
static int seg_check_header(const uint8_t *buf, size_t len, struct seg_info *g)
{
	if (len >= 8 && le_load64(buf + SEG_OFF_MAGIC) != SEG_MAGIC)
		return SEG_FAIL(STRATA_ENOTDB, "header: magic 0x%016llx is not \"STRATSEG\"",
		                ULL(le_load64(buf + SEG_OFF_MAGIC)));
	if (len < SEG_HEADER_SIZE)
		return SEG_FAIL(STRATA_ETRUNCATED, "%zu bytes, shorter than the %u-byte header", len,
		                SEG_HEADER_SIZE);
	g->version = le_load32(buf + SEG_OFF_VERSION);
	if (g->version != SEG_VERSION)
		return SEG_FAIL(STRATA_EVERSION, "header: version %u (this build reads version %u)",
		                g->version, SEG_VERSION);
	uint32_t header_size = le_load32(buf + SEG_OFF_HEADER_SIZE);
	if (header_size != SEG_HEADER_SIZE)
		return ERR_CORRUPT("header: header_size %u is not %u", header_size, SEG_HEADER_SIZE);
	g->header_xxh3 = le_load64(buf + SEG_OFF_HEADER_XXH3);
	if (!xsum_ok(buf, SEG_OFF_HEADER_XXH3, g->header_xxh3))
		return SEG_FAIL(STRATA_ECHECKSUM, "header: xxh3 0x%016llx stored, 0x%016llx computed",
		                ULL(g->header_xxh3), ULL(xsum64(buf, SEG_OFF_HEADER_XXH3)));
	uint64_t file_size = le_load64(buf + SEG_OFF_FILE_SIZE);
	if (file_size != len)
		return SEG_FAIL(len < file_size ? STRATA_ETRUNCATED : STRATA_ECORRUPT,
		                "header: file_size %llu, but the file has %zu bytes", ULL(file_size), len);
	return 0;
}

int seg_check(const uint8_t *buf, size_t len, struct seg_info *info)
{
	struct seg_info g;
	int rc;

	memset(&g, 0, sizeof g);
	if (!buf && len)
		return err_set(STRATA_EINVAL, "seg_check: null buffer of %zu bytes", len);
	if (!buf)
		return SEG_FAIL(STRATA_ETRUNCATED, "0 bytes, shorter than the %u-byte header",
		                SEG_HEADER_SIZE);
	if ((rc = seg_check_header(buf, len, &g)))
		return rc;

	g.base = buf;
	g.len = len;
	g.dim = le_load32(buf + SEG_OFF_DIM);
	g.metric = le_load32(buf + SEG_OFF_METRIC);
	g.M = le_load32(buf + SEG_OFF_M);
	g.M0 = le_load32(buf + SEG_OFF_M0);
	g.ef_construction = le_load32(buf + SEG_OFF_EF_CONSTRUCTION);
	g.max_level = le_load32(buf + SEG_OFF_MAX_LEVEL);
	g.count = le_load64(buf + SEG_OFF_COUNT);
	g.entry = le_load32(buf + SEG_OFF_ENTRY);
	g.stride = le_load32(buf + SEG_OFF_STRIDE);
	g.upper_count = le_load64(buf + SEG_OFF_UPPER_COUNT);
	g.upper_blocks = le_load64(buf + SEG_OFF_UPPER_BLOCKS);
	g.seed = le_load64(buf + SEG_OFF_SEED);
	if ((rc = seg_params_check(&g)))
		return rc;

	uint32_t flags = le_load32(buf + SEG_OFF_FLAGS);
	if (flags != 0)
		return ERR_CORRUPT("header: flags 0x%x (v1 defines none)", flags);
	uint64_t reserved = le_load64(buf + SEG_OFF_RESERVED);
	if (reserved != 0)
		return ERR_CORRUPT("header: reserved 0x%016llx is not zero", ULL(reserved));

	/* The section table: where the header says, exactly the end of the file. */
	uint64_t table_off = le_load64(buf + SEG_OFF_TABLE_OFF);
	uint32_t section_count = le_load32(buf + SEG_OFF_SECTION_COUNT);
	uint64_t table_size = (uint64_t)section_count * SEG_SECTION_ENTRY_SIZE; /* < 2^37 */
	if (table_off < SEG_HEADER_SIZE || table_off % SEG_SECTION_ALIGN != 0)
		return ERR_CORRUPT("header: section table offset %llu is below %u or not a multiple of %u",
		                   ULL(table_off), SEG_HEADER_SIZE, SEG_SECTION_ALIGN);
	if (table_off > len || table_size > len - table_off)
		return ERR_CORRUPT("header: section table (%u entries at offset %llu) runs past the "
		                   "end of the file at %zu",
		                   section_count, ULL(table_off), len);
	if (table_off + table_size != len)
		return ERR_CORRUPT("header: %llu bytes follow the section table (it must end the file)",
		                   ULL(len - table_off - table_size));
	uint64_t table_xxh3 = le_load64(buf + SEG_OFF_TABLE_XXH3);
	if (!xsum_ok(buf + table_off, (size_t)table_size, table_xxh3))
		return SEG_FAIL(STRATA_ECHECKSUM, "section table: xxh3 0x%016llx stored, 0x%016llx computed",
		                ULL(table_xxh3), ULL(xsum64(buf + table_off, (size_t)table_size)));
	if (section_count != SEG_SEC_KIND_MAX)
		return ERR_CORRUPT("header: section_count %u is not %u", section_count, SEG_SEC_KIND_MAX);

	uint64_t want[SEG_SEC_KIND_MAX + 1];
	if (!seg_expected_sizes(&g, want))
		return ERR_CORRUPT("header: section sizes overflow 64 bits");

	bool seen[SEG_SEC_KIND_MAX + 1] = {false};
	for (uint32_t i = 0; i < section_count; i++) {
		const uint8_t *e = buf + table_off + (size_t)i * SEG_SECTION_ENTRY_SIZE;
		uint32_t kind = le_load32(e + 0);
		uint32_t eflags = le_load32(e + 4);
		uint64_t off = le_load64(e + 8);
		uint64_t size = le_load64(e + 16);
		if (kind < 1 || kind > SEG_SEC_KIND_MAX)
			return ERR_CORRUPT("section table entry %u: kind %u is not 1..%u", i, kind,
			                   SEG_SEC_KIND_MAX);
		const char *name = seg_section_name(kind);
		if (seen[kind])
			return ERR_CORRUPT("section table entry %u: section %u (%s) appears twice", i, kind,
			                   name);
		seen[kind] = true;
		if (eflags != 0)
			return ERR_CORRUPT("section %u (%s): flags 0x%x (v1 defines none)", kind, name, eflags);
		if (off % SEG_SECTION_ALIGN != 0 || off < SEG_HEADER_SIZE)
			return ERR_CORRUPT("section %u (%s): offset %llu is below %u or not a multiple of %u",
			                   kind, name, ULL(off), SEG_HEADER_SIZE, SEG_SECTION_ALIGN);
		if (off > table_off || size > table_off - off)
			return ERR_CORRUPT("section %u (%s): %llu bytes at offset %llu run past the section "
			                   "table at %llu",
			                   kind, name, ULL(size), ULL(off), ULL(table_off));
		if (size != want[kind])
			return ERR_CORRUPT("section %u (%s): %llu bytes, the header implies %llu (count %llu, "
			                   "stride %u, upper_count %llu, upper_blocks %llu, M %u)",
			                   kind, name, ULL(size), ULL(want[kind]), ULL(g.count), g.stride,
			                   ULL(g.upper_count), ULL(g.upper_blocks), g.M);
		g.sec[kind] = (struct seg_section){.off = off, .size = size, .xxh3 = le_load64(e + 24)};
	}

	/* All bounds are <= table_off <= len now, so the sums below cannot overflow. */
	for (uint32_t a = 1; a <= SEG_SEC_KIND_MAX; a++) {
		for (uint32_t b = a + 1; b <= SEG_SEC_KIND_MAX; b++) {
			const struct seg_section *x = &g.sec[a], *y = &g.sec[b];
			if (x->size && y->size && x->off < y->off + y->size && y->off < x->off + x->size)
				return ERR_CORRUPT("section %u (%s) at %llu+%llu overlaps section %u (%s) at "
				                   "%llu+%llu",
				                   a, seg_section_name(a), ULL(x->off), ULL(x->size), b,
				                   seg_section_name(b), ULL(y->off), ULL(y->size));
		}
	}

	g.nodes = buf + g.sec[SEG_SEC_NODES].off;
	g.upper_index = buf + g.sec[SEG_SEC_UPPER_INDEX].off;
	g.upper_links = buf + g.sec[SEG_SEC_UPPER_LINKS].off;
	g.ids = buf + g.sec[SEG_SEC_IDS].off;
	g.id_index = buf + g.sec[SEG_SEC_ID_INDEX].off;
	*info = g;
	return 0;
}

int seg_id_find(const struct seg_info *info, uint64_t id, uint32_t *node_out)
{
	/* On a file only seg_check()ed the index may be unsorted: the search then
	 * misses or lands anywhere, but stays inside the section, whose size
	 * seg_check() tied to count. */
	uint64_t lo = 0, hi = info->count;
	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;
		const uint8_t *e = info->id_index + (size_t)mid * SEG_ID_INDEX_ENTRY_SIZE;
		uint64_t v = le_load64(e);
		if (v < id) {
			lo = mid + 1;
		} else if (v > id) {
			hi = mid;
		} else {
			uint32_t node = le_load32(e + 8);
			if (node >= info->count)
				return ERR_CORRUPT("section %u (%s): entry %llu names node %u, count is %llu",
				                   SEG_SEC_ID_INDEX, seg_section_name(SEG_SEC_ID_INDEX),
				                   ULL(mid), node, ULL(info->count));
			uint64_t stored = le_load64(info->ids + (size_t)node * 8);
			if (stored != id)
				return ERR_CORRUPT("section %u (%s): entry %llu maps id %llu to node %u, whose id "
				                   "is %llu",
				                   SEG_SEC_ID_INDEX, seg_section_name(SEG_SEC_ID_INDEX),
				                   ULL(mid), ULL(id), node, ULL(stored));
			*node_out = node;
			return 0;
		}
	}
	return err_set(STRATA_ENOTFOUND, "id %llu is not in this segment", ULL(id));
}
