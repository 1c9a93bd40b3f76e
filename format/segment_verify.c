/*
 * segment_verify.c - the full check of a segment that passed seg_check():
 * every section checksum, then every byte of structure (FORMAT.md, "Segment
 * file", "What verify adds").
 *
 * It trusts only what seg_check() proved (the header's parameters, and that
 * each section has exactly the size they imply and lies inside the file) and
 * checks everything else before relying on it. O(file size) time, O(1)
 * memory: nothing is allocated, so a hostile count cannot make it allocate.
 * It must never read outside the sections seg_check() bounded.
 */
#include <stdbool.h>

#include "err.h"
#include "le.h"
#include "segment.h"
#include "xsum.h"

#define ULL(x) ((unsigned long long)(x))
#define SEC(kind) (kind), seg_section_name(kind)

/* Checksums first: a damaged section is reported as damage, not as nonsense structure. */
static int verify_checksums(const struct seg_info *in)
{
	for (uint32_t k = 1; k <= SEG_SEC_KIND_MAX; k++) {
		const struct seg_section *s = &in->sec[k];
		const uint8_t *p = in->base + s->off;
		if (!xsum_ok(p, (size_t)s->size, s->xxh3))
			return err_set_at(STRATA_ECHECKSUM, __FILE__, __LINE__,
			                  "section %u (%s): xxh3 0x%016llx stored, 0x%016llx computed", SEC(k),
			                  ULL(s->xxh3), ULL(xsum64(p, (size_t)s->size)));
	}
	return 0;
}

static int zero_span(const struct seg_info *in, uint64_t from, uint64_t to)
{
	for (uint64_t o = from; o < to; o++)
		if (in->base[o] != 0)
			return ERR_CORRUPT("byte %llu, between sections, is 0x%02x (padding must be zero)",
			                   ULL(o), in->base[o]);
	return 0;
}

/* Bytes not covered by the header, a section or the table are padding and must be zero. */
static int verify_padding(const struct seg_info *in)
{
	uint32_t order[SEG_SEC_KIND_MAX];
	for (uint32_t i = 0; i < SEG_SEC_KIND_MAX; i++) {
		uint32_t k = i + 1, j = i;
		for (; j > 0 && in->sec[order[j - 1]].off > in->sec[k].off; j--)
			order[j] = order[j - 1];
		order[j] = k;
	}
	uint64_t table_off = le_load64(in->base + SEG_OFF_TABLE_OFF);
	uint64_t cur = SEG_HEADER_SIZE;
	int rc;
	for (uint32_t i = 0; i < SEG_SEC_KIND_MAX; i++) {
		const struct seg_section *s = &in->sec[order[i]];
		if (s->off > cur && (rc = zero_span(in, cur, s->off)))
			return rc;
		if (s->off + s->size > cur)
			cur = s->off + s->size;
	}
	return zero_span(in, cur, table_off);
}

/*
 * Layer 0. Vectors are tested by their bits (le_f32_finite), not with isfinite().
 * Slots nbr[nbr_count..M0-1] are unused and unspecified (FORMAT.md): the
 * builder prunes lists in place and leaves old ids there.
 */
static int verify_nodes(const struct seg_info *in)
{
	const uint64_t raw = seg_node_raw_size(in->dim, in->M0);
	for (uint64_t i = 0; i < in->count; i++) {
		const uint8_t *rec = in->nodes + (size_t)i * in->stride;
		for (uint32_t j = 0; j < in->dim; j++) {
			if (!le_f32_finite(rec + 4 * (size_t)j))
				return ERR_CORRUPT("section %u (%s): node %llu, component %u is not finite "
				                   "(bits 0x%08x)",
				                   SEC(SEG_SEC_NODES), ULL(i), j, le_load32(rec + 4 * (size_t)j));
		}
		const uint8_t *links = rec + 4 * (size_t)in->dim;
		uint32_t n = le_load32(links);
		if (n > in->M0)
			return ERR_CORRUPT("section %u (%s): node %llu has %u layer-0 neighbours, above M0 %u",
			                   SEC(SEG_SEC_NODES), ULL(i), n, in->M0);
		for (uint32_t j = 0; j < n; j++) {
			uint32_t v = le_load32(links + 4 + 4 * (size_t)j);
			if (v >= in->count)
				return ERR_CORRUPT("section %u (%s): node %llu, neighbour %u is node %u, not below "
				                   "count %llu",
				                   SEC(SEG_SEC_NODES), ULL(i), j, v, ULL(in->count));
			if (v == i)
				return ERR_CORRUPT("section %u (%s): node %llu lists itself as neighbour %u",
				                   SEC(SEG_SEC_NODES), ULL(i), j);
		}
		for (uint64_t b = raw; b < in->stride; b++)
			if (rec[b] != 0)
				return ERR_CORRUPT("section %u (%s): node %llu, padding byte %llu is 0x%02x",
				                   SEC(SEG_SEC_NODES), ULL(i), ULL(b), rec[b]);
	}
	return 0;
}

static uint32_t upper_level(const struct seg_info *in, uint64_t node)
{
	return le_load32(in->upper_index + (size_t)node * SEG_UPPER_ENTRY_SIZE);
}

static int verify_upper_index(const struct seg_info *in)
{
	uint64_t blocks = 0;
	for (uint64_t i = 0; i < in->upper_count; i++) {
		const uint8_t *e = in->upper_index + (size_t)i * SEG_UPPER_ENTRY_SIZE;
		uint32_t level = le_load32(e);
		uint32_t reserved = le_load32(e + 4);
		uint64_t first = le_load64(e + 8);
		if (level < 1 || level > in->max_level)
			return ERR_CORRUPT("section %u (%s): node %llu has level %u, outside 1..max_level %u",
			                   SEC(SEG_SEC_UPPER_INDEX), ULL(i), level, in->max_level);
		if (reserved != 0)
			return ERR_CORRUPT("section %u (%s): node %llu, reserved field 0x%x is not zero",
			                   SEC(SEG_SEC_UPPER_INDEX), ULL(i), reserved);
		if (first != blocks)
			return ERR_CORRUPT("section %u (%s): node %llu starts at block %llu, expected %llu "
			                   "(the sum of the levels before it)",
			                   SEC(SEG_SEC_UPPER_INDEX), ULL(i), ULL(first), ULL(blocks));
		blocks += level; /* <= 64 * 2^32: no overflow */
	}
	if (blocks != in->upper_blocks)
		return ERR_CORRUPT("section %u (%s): the levels sum to %llu blocks, the header says "
		                   "upper_blocks %llu",
		                   SEC(SEG_SEC_UPPER_INDEX), ULL(blocks), ULL(in->upper_blocks));
	if (in->max_level > 0 && upper_level(in, in->entry) != in->max_level)
		return ERR_CORRUPT("section %u (%s): entry node %u has level %u, not max_level %u",
		                   SEC(SEG_SEC_UPPER_INDEX), in->entry, upper_level(in, in->entry),
		                   in->max_level);
	return 0;
}

/* Needs verify_upper_index(): block numbers and levels are trusted from here on. */
static int verify_upper_links(const struct seg_info *in)
{
	const uint64_t bsize = seg_upper_block_size(in->M);
	for (uint64_t i = 0; i < in->upper_count; i++) {
		const uint8_t *e = in->upper_index + (size_t)i * SEG_UPPER_ENTRY_SIZE;
		uint32_t level = le_load32(e);
		uint64_t first = le_load64(e + 8);
		for (uint32_t l = 1; l <= level; l++) {
			const uint8_t *blk = in->upper_links + (size_t)((first + l - 1) * bsize);
			uint32_t n = le_load32(blk);
			if (n > in->M)
				return ERR_CORRUPT("section %u (%s): node %llu has %u neighbours on level %u, "
				                   "above M %u",
				                   SEC(SEG_SEC_UPPER_LINKS), ULL(i), n, l, in->M);
			for (uint32_t j = 0; j < n; j++) {
				uint32_t v = le_load32(blk + 4 + 4 * (size_t)j);
				if (v >= in->upper_count)
					return ERR_CORRUPT("section %u (%s): node %llu, level %u, neighbour %u is node "
					                   "%u, not an upper-layer node (upper_count %llu)",
					                   SEC(SEG_SEC_UPPER_LINKS), ULL(i), l, j, v,
					                   ULL(in->upper_count));
				if (v == i)
					return ERR_CORRUPT("section %u (%s): node %llu lists itself on level %u",
					                   SEC(SEG_SEC_UPPER_LINKS), ULL(i), l);
				if (upper_level(in, v) < l)
					return ERR_CORRUPT("section %u (%s): node %llu, level %u, neighbour %u is node "
					                   "%u, which only reaches level %u",
					                   SEC(SEG_SEC_UPPER_LINKS), ULL(i), l, j, v,
					                   upper_level(in, v));
			}
		}
	}
	return 0;
}

/* Strictly increasing ids, each naming a node whose IDS entry is that id: a bijection. */
static int verify_ids(const struct seg_info *in)
{
	for (uint64_t i = 0; i < in->count; i++)
		if (le_load64(in->ids + (size_t)i * 8) == UINT64_MAX)
			return ERR_CORRUPT("section %u (%s): node %llu has id UINT64_MAX (reserved: no id)",
			                   SEC(SEG_SEC_IDS), ULL(i));
	uint64_t prev = 0;
	for (uint64_t i = 0; i < in->count; i++) {
		const uint8_t *e = in->id_index + (size_t)i * SEG_ID_INDEX_ENTRY_SIZE;
		uint64_t id = le_load64(e);
		uint32_t node = le_load32(e + 8);
		uint32_t reserved = le_load32(e + 12);
		if (i > 0 && id <= prev)
			return ERR_CORRUPT("section %u (%s): entry %llu has id %llu after %llu (ids must be "
			                   "distinct and ascending)",
			                   SEC(SEG_SEC_ID_INDEX), ULL(i), ULL(id), ULL(prev));
		if (node >= in->count)
			return ERR_CORRUPT("section %u (%s): entry %llu names node %u, not below count %llu",
			                   SEC(SEG_SEC_ID_INDEX), ULL(i), node, ULL(in->count));
		if (reserved != 0)
			return ERR_CORRUPT("section %u (%s): entry %llu, reserved field 0x%x is not zero",
			                   SEC(SEG_SEC_ID_INDEX), ULL(i), reserved);
		uint64_t stored = le_load64(in->ids + (size_t)node * 8);
		if (stored != id)
			return ERR_CORRUPT("section %u (%s): entry %llu maps id %llu to node %u, whose id is "
			                   "%llu",
			                   SEC(SEG_SEC_ID_INDEX), ULL(i), ULL(id), node, ULL(stored));
		prev = id;
	}
	return 0;
}

int seg_verify(const struct seg_info *info)
{
	int rc;
	if (!info || !info->base)
		return err_set(STRATA_EINVAL, "seg_verify: no checked segment");
	if ((rc = verify_checksums(info)) || (rc = verify_padding(info)) ||
	    (rc = verify_nodes(info)) || (rc = verify_upper_index(info)) ||
	    (rc = verify_upper_links(info)) || (rc = verify_ids(info)))
		return rc;
	return 0;
}
