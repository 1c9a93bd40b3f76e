/*
 * cmd_dump.c - `strata dump FILE [--node N] [--level L] [--ids] [--limit N]`:
 * print the structure of a segment, manifest, bundle, WAL or deletion file
 * record by record, node by node, for debugging damaged files. Manual: strata.1,
 * section "dump". Layouts: FORMAT.md.
 *
 * Dump reads the raw bytes with the layouts of FORMAT.md, not through the
 * validators alone: seg_check() refuses a segment whose section table is
 * gone, but the header and every node before the damage are still worth
 * seeing. So every field is printed with its offset, every checksum is
 * recomputed and marked "ok" or "BAD", every bound is compared with the
 * file's size before it is read, and where nothing more can be read the dump
 * says "stops at offset X: why". A truncated segment whose table is lost is
 * read with the v1 writer's placement (sections in kind order from 128,
 * 64-aligned), which the output says it assumes. A WAL file is listed record
 * by record; past damage the listing resumes at the next valid record, and
 * the bytes skipped are shown as such. A torn tail is shown but is not
 * damage (a crash leaves one; recovery cuts it), as in `strata verify`.
 * Exit status: 0 when everything read checked out, 1 when damage was shown.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bundle.h"
#include "cli.h"
#include "cli_files.h"
#include "le.h"
#include "manifest.h"
#include "segment.h"
#include "tombstone.h"
#include "wal_record.h"
#include "xsum.h"

#define CMD "dump"
#define ULL(x) ((unsigned long long)(x))

static const char usage_text[] =
	"usage: strata dump FILE [--node N] [--level L] [--ids] [--limit N]\n"
	"\n"
	"Print the structure of a segment, manifest, bundle, WAL or deletion FILE,\n"
	"field by field with offsets, recomputing every checksum (ok / BAD). Damaged\n"
	"files are read as far as the damage allows; the dump says where it stops\n"
	"and why.\n"
	"\n"
	"segment files:\n"
	"  (default)    header, section table, sections, then the first nodes\n"
	"  --node N     node N in full: id, level, vector, neighbours on every layer\n"
	"  --level L    every node on layer L with its neighbour list\n"
	"  --ids        the id of every node\n"
	"  --limit N    at most N nodes (default 10 for the overview, 0 = all)\n"
	"\n"
	"WAL files (wal-*.log): the header, then every record: offset, LSN, type,\n"
	"count and ids (the first 8 of each record unless --ids); --limit N shows\n"
	"the first N records.\n"
	"deletion files (del-*.del): the header, then the deleted node numbers (the\n"
	"first 100 unless --ids or --limit N).\n"
	"\n"
	"Exit status: 0 when everything read checked out, 1 when damage was found.\n"
	"  -h, --help   this text\n";

struct dump {
	const uint8_t *b;
	size_t len;
	unsigned bad; /* damage shown */
};

static void bad(struct dump *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A line about damage: counted, and marked so that grep finds it. */
static void bad(struct dump *d, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("  BAD: ", stdout);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	d->bad++;
}

static void stops(struct dump *d, uint64_t off, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void stops(struct dump *d, uint64_t off, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf("  stops at offset %llu: ", ULL(off));
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	d->bad++;
}

/* [off, off + size) lies inside the file. */
static bool in_file(const struct dump *d, uint64_t off, uint64_t size)
{
	return off <= d->len && size <= d->len - off;
}

/*
 * Print one u32/u64 field at `off` if it is in the file, without ending the
 * line (the caller may add a note); false (and a stop) if it is not.
 */
static bool field_open(struct dump *d, uint64_t off, unsigned size, const char *name, uint64_t *v)
{
	if (!in_file(d, off, size)) {
		stops(d, off, "the file ends (%zu bytes) inside field %s", d->len, name);
		return false;
	}
	*v = size == 4 ? le_load32(d->b + off) : le_load64(d->b + off);
	if (strstr(name, "xxh3"))
		printf("  @%-6llu %-16s 0x%016llx", ULL(off), name, ULL(*v));
	else
		printf("  @%-6llu %-16s %llu", ULL(off), name, ULL(*v));
	return true;
}

static bool field(struct dump *d, uint64_t off, unsigned size, const char *name, uint64_t *v)
{
	if (!field_open(d, off, size, name, v))
		return false;
	putchar('\n');
	return true;
}

/* A stored checksum over [from, from + n): ok or BAD. */
static void sum_line(struct dump *d, uint64_t at, const char *name, uint64_t from, uint64_t n)
{
	if (!in_file(d, at, 8)) {
		stops(d, at, "the file ends inside %s", name);
		return;
	}
	uint64_t stored = le_load64(d->b + at);
	if (!in_file(d, from, n)) {
		printf("  @%-6llu %-16s 0x%016llx  not checked: covers [%llu, +%llu), beyond the file\n",
		       ULL(at), name, ULL(stored), ULL(from), ULL(n));
		d->bad++;
		return;
	}
	uint64_t got = xsum64(d->b + from, (size_t)n);
	if (got == stored) {
		printf("  @%-6llu %-16s 0x%016llx  ok\n", ULL(at), name, ULL(stored));
	} else {
		printf("  @%-6llu %-16s 0x%016llx  BAD: computed 0x%016llx\n", ULL(at), name, ULL(stored),
		       ULL(got));
		d->bad++;
	}
}

static bool magic_line(struct dump *d, uint64_t off, uint64_t want, const char *text)
{
	if (!in_file(d, off, 8)) {
		stops(d, off, "the file ends before the magic \"%s\"", text);
		return false;
	}
	uint64_t m = le_load64(d->b + off);
	char show[9];
	for (int i = 0; i < 8; i++)
		show[i] = d->b[off + (uint64_t)i] >= 0x20 && d->b[off + (uint64_t)i] < 0x7f
		          ? (char)d->b[off + (uint64_t)i] : '.';
	show[8] = '\0';
	printf("  @%-6llu %-16s \"%s\"  %s\n", ULL(off), "magic", show, m == want ? "ok" : "BAD");
	if (m != want)
		d->bad++;
	return m == want;
}

/* ---- segment ------------------------------------------------------------------------------- */

struct seg_raw {
	uint64_t dim, metric, M, M0, max_level, count, entry, stride, section_count, flags;
	uint64_t table_off, file_size, upper_count, upper_blocks;
	bool header_whole;
	struct {
		bool known;   /* from the table, or assumed */
		bool readable;
		uint64_t off, size;
	} sec[SEG_SEC_KIND_MAX + 1];
};

static uint64_t sat_mul(uint64_t a, uint64_t b)
{
	return a && b > UINT64_MAX / a ? UINT64_MAX : a * b;
}

/* What the header implies a section's size is (FORMAT.md 3.2). */
static uint64_t seg_expected_size(const struct seg_raw *s, uint32_t kind)
{
	switch (kind) {
	case SEG_SEC_NODES: return sat_mul(s->count, s->stride);
	case SEG_SEC_UPPER_INDEX: return sat_mul(s->upper_count, SEG_UPPER_ENTRY_SIZE);
	case SEG_SEC_UPPER_LINKS: return sat_mul(s->upper_blocks, seg_upper_block_size((uint32_t)s->M));
	case SEG_SEC_IDS: return sat_mul(s->count, 8);
	case SEG_SEC_ID_INDEX: return sat_mul(s->count, SEG_ID_INDEX_ENTRY_SIZE);
	default: return 0;
	}
}

static bool seg_header(struct dump *d, struct seg_raw *s)
{
	static const struct {
		unsigned off, size;
		const char *name;
	} f[] = {
		{SEG_OFF_VERSION, 4, "version"}, {SEG_OFF_HEADER_SIZE, 4, "header_size"},
		{SEG_OFF_DIM, 4, "dim"}, {SEG_OFF_METRIC, 4, "metric"}, {SEG_OFF_M, 4, "M"},
		{SEG_OFF_M0, 4, "M0"}, {SEG_OFF_EF_CONSTRUCTION, 4, "ef_construction"},
		{SEG_OFF_MAX_LEVEL, 4, "max_level"}, {SEG_OFF_COUNT, 8, "count"},
		{SEG_OFF_ENTRY, 4, "entry"}, {SEG_OFF_STRIDE, 4, "stride"},
		{SEG_OFF_SECTION_COUNT, 4, "section_count"}, {SEG_OFF_FLAGS, 4, "flags"},
		{SEG_OFF_TABLE_OFF, 8, "table_off"}, {SEG_OFF_FILE_SIZE, 8, "file_size"},
		{SEG_OFF_UPPER_COUNT, 8, "upper_count"}, {SEG_OFF_UPPER_BLOCKS, 8, "upper_blocks"},
		{SEG_OFF_SEED, 8, "seed"}, {SEG_OFF_TABLE_XXH3, 8, "table_xxh3"},
		{SEG_OFF_RESERVED, 8, "reserved"},
	};
	uint64_t *dst[SEG_OFF_HEADER_XXH3 + 1] = {0};
	uint64_t ignore;
	dst[SEG_OFF_DIM] = &s->dim;
	dst[SEG_OFF_METRIC] = &s->metric;
	dst[SEG_OFF_M] = &s->M;
	dst[SEG_OFF_M0] = &s->M0;
	dst[SEG_OFF_MAX_LEVEL] = &s->max_level;
	dst[SEG_OFF_COUNT] = &s->count;
	dst[SEG_OFF_ENTRY] = &s->entry;
	dst[SEG_OFF_STRIDE] = &s->stride;
	dst[SEG_OFF_SECTION_COUNT] = &s->section_count;
	dst[SEG_OFF_FLAGS] = &s->flags;
	dst[SEG_OFF_TABLE_OFF] = &s->table_off;
	dst[SEG_OFF_FILE_SIZE] = &s->file_size;
	dst[SEG_OFF_UPPER_COUNT] = &s->upper_count;
	dst[SEG_OFF_UPPER_BLOCKS] = &s->upper_blocks;
	printf("header [0, %u)\n", SEG_HEADER_SIZE);
	magic_line(d, 0, SEG_MAGIC, "STRATSEG");
	for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
		uint64_t *out = dst[f[i].off] ? dst[f[i].off] : &ignore;
		if (!field_open(d, f[i].off, f[i].size, f[i].name, out))
			return false;
		if (f[i].off == SEG_OFF_METRIC)
			printf(" (%s)", cli_metric_name((uint32_t)*out));
		putchar('\n');
	}
	sum_line(d, SEG_OFF_HEADER_XXH3, "header_xxh3", 0, SEG_OFF_HEADER_XXH3);
	s->header_whole = true;
	if (s->file_size != d->len)
		bad(d, "file_size %llu, the file has %zu bytes%s", ULL(s->file_size), d->len,
		    s->file_size > d->len ? " (truncated)" : "");
	if (s->dim < 1 || s->dim > STRATA_DIM_MAX || s->M < STRATA_M_MIN || s->M > STRATA_M_MAX ||
	    s->M0 != 2 * s->M || s->stride < seg_node_raw_size((uint32_t)s->dim, (uint32_t)s->M0)) {
		bad(d, "dim %llu, M %llu, M0 %llu or stride %llu out of range: node records cannot "
		       "be located", ULL(s->dim), ULL(s->M), ULL(s->M0), ULL(s->stride));
		return false;
	}
	return true;
}

/* The section table, or the v1 writer's placement when the table is not in the file. */
static void seg_table(struct dump *d, struct seg_raw *s)
{
	uint64_t tsize = sat_mul(s->section_count, SEG_SECTION_ENTRY_SIZE);
	printf("section table [%llu, +%llu)\n", ULL(s->table_off), ULL(tsize));
	if (s->section_count == 0 || s->section_count > 64 || !in_file(d, s->table_off, tsize)) {
		stops(d, s->table_off, "the table (%llu entries) is not inside the file (%zu bytes)",
		      ULL(s->section_count), d->len);
		printf("  assuming the v1 writer's layout: sections in kind order from %u, each "
		       "64-aligned\n", SEG_HEADER_SIZE);
		uint64_t off = SEG_HEADER_SIZE;
		for (uint32_t k = 1; k <= SEG_SEC_KIND_MAX; k++) {
			s->sec[k].known = true;
			s->sec[k].off = off;
			s->sec[k].size = seg_expected_size(s, k);
			uint64_t end = off + s->sec[k].size < off ? UINT64_MAX : off + s->sec[k].size;
			off = end > UINT64_MAX - 63 ? UINT64_MAX : (end + 63) / 64 * 64;
		}
		return;
	}
	sum_line(d, SEG_OFF_TABLE_XXH3, "table_xxh3", s->table_off, tsize);
	for (uint64_t i = 0; i < s->section_count; i++) {
		const uint8_t *e = d->b + s->table_off + i * SEG_SECTION_ENTRY_SIZE;
		uint32_t kind = le_load32(e), flags = le_load32(e + 4);
		uint64_t off = le_load64(e + 8), size = le_load64(e + 16), x = le_load64(e + 24);
		printf("  #%llu @%-6llu kind %u (%s), flags %u, off %llu, size %llu, xxh3 0x%016llx\n",
		       ULL(i), ULL(s->table_off + i * SEG_SECTION_ENTRY_SIZE), kind,
		       seg_section_name(kind), flags, ULL(off), ULL(size), ULL(x));
		if (kind < 1 || kind > SEG_SEC_KIND_MAX) {
			bad(d, "entry %llu: kind %u is not 1..5", ULL(i), kind);
			continue;
		}
		if (s->sec[kind].known)
			bad(d, "entry %llu: a second %s section", ULL(i), seg_section_name(kind));
		s->sec[kind].known = true;
		s->sec[kind].off = off;
		s->sec[kind].size = size;
	}
}

static void seg_sections(struct dump *d, struct seg_raw *s)
{
	printf("sections\n");
	for (uint32_t k = 1; k <= SEG_SEC_KIND_MAX; k++) {
		if (!s->sec[k].known) {
			bad(d, "no %s section", seg_section_name(k));
			continue;
		}
		uint64_t off = s->sec[k].off, size = s->sec[k].size, want = seg_expected_size(s, k);
		printf("  %-12s [%llu, +%llu)", seg_section_name(k), ULL(off), ULL(size));
		if (size != want)
			printf("  BAD: the header implies %llu bytes", ULL(want));
		if (!in_file(d, off, size)) {
			printf("  BAD: beyond the file's %zu bytes", d->len);
			d->bad++;
		} else if (size == want) {
			s->sec[k].readable = true;
		}
		if (size != want)
			d->bad++;
		putchar('\n');
	}
	/* Section checksums, when the table (and its checksums) exist. */
	if (s->section_count && s->section_count <= 64 &&
	    in_file(d, s->table_off, sat_mul(s->section_count, SEG_SECTION_ENTRY_SIZE))) {
		for (uint64_t i = 0; i < s->section_count; i++) {
			const uint8_t *e = d->b + s->table_off + i * SEG_SECTION_ENTRY_SIZE;
			uint32_t kind = le_load32(e);
			uint64_t off = le_load64(e + 8), size = le_load64(e + 16), x = le_load64(e + 24);
			if (!in_file(d, off, size))
				continue;
			uint64_t got = xsum64(d->b + off, (size_t)size);
			printf("  %-12s xxh3 0x%016llx  %s", seg_section_name(kind), ULL(x),
			       got == x ? "ok\n" : "BAD: computed ");
			if (got != x) {
				printf("0x%016llx\n", ULL(got));
				d->bad++;
			}
		}
	}
}

/* Node `i`'s record, if the NODES section and the record are readable. */
static const uint8_t *seg_node(const struct dump *d, const struct seg_raw *s, uint64_t i)
{
	if (!s->sec[SEG_SEC_NODES].known || i >= s->count)
		return NULL;
	uint64_t off = s->sec[SEG_SEC_NODES].off + i * s->stride;
	return in_file(d, off, s->stride) ? d->b + off : NULL;
}

/* Print a neighbour list, marking neighbours that do not exist. */
static void nbr_list(struct dump *d, const uint8_t *p, uint64_t cap, uint64_t limit_node)
{
	uint32_t n = le_load32(p);
	printf("%u neighbour%s:", n, n == 1 ? "" : "s");
	if (n > cap) {
		printf(" BAD: more than %llu\n", ULL(cap));
		d->bad++;
		return;
	}
	for (uint32_t j = 0; j < n; j++) {
		uint32_t v = le_load32(p + 4 + 4ull * j);
		printf(" %u", v);
		if (v >= limit_node) {
			printf("(BAD: >= %llu)", ULL(limit_node));
			d->bad++;
		}
	}
	putchar('\n');
}

/* Level and first block of upper node i, or level 0. false if unreadable. */
static bool seg_level(const struct dump *d, const struct seg_raw *s, uint64_t i, uint32_t *level,
                      uint64_t *first)
{
	*level = 0;
	*first = 0;
	if (i >= s->upper_count)
		return true;
	uint64_t off = s->sec[SEG_SEC_UPPER_INDEX].off + i * SEG_UPPER_ENTRY_SIZE;
	if (!s->sec[SEG_SEC_UPPER_INDEX].known || !in_file(d, off, SEG_UPPER_ENTRY_SIZE))
		return false;
	*level = le_load32(d->b + off);
	*first = le_load64(d->b + off + 8);
	return true;
}

static const uint8_t *seg_block(const struct dump *d, const struct seg_raw *s, uint64_t block)
{
	uint64_t bs = seg_upper_block_size((uint32_t)s->M);
	if (!s->sec[SEG_SEC_UPPER_LINKS].known || block >= s->upper_blocks)
		return NULL;
	uint64_t off = s->sec[SEG_SEC_UPPER_LINKS].off + block * bs;
	return in_file(d, off, bs) ? d->b + off : NULL;
}

static bool seg_id(const struct dump *d, const struct seg_raw *s, uint64_t i, uint64_t *id)
{
	uint64_t off = s->sec[SEG_SEC_IDS].off + 8 * i;
	if (!s->sec[SEG_SEC_IDS].known || i >= s->count || !in_file(d, off, 8))
		return false;
	*id = le_load64(d->b + off);
	return true;
}

/* One line per node: id, level, layer-0 list. */
static bool seg_node_line(struct dump *d, const struct seg_raw *s, uint64_t i)
{
	const uint8_t *rec = seg_node(d, s, i);
	if (!rec) {
		stops(d, s->sec[SEG_SEC_NODES].off + i * s->stride, "node %llu's record is not in the "
		      "file", ULL(i));
		return false;
	}
	uint64_t id;
	uint32_t level;
	uint64_t first;
	printf("  node %llu", ULL(i));
	if (seg_id(d, s, i, &id))
		printf(", id %llu", ULL(id));
	else
		printf(", id (not in the file)");
	if (seg_level(d, s, i, &level, &first))
		printf(", level %u", level);
	printf("%s, layer 0: ", i == s->entry ? " (entry)" : "");
	nbr_list(d, rec + 4 * s->dim, s->M0, s->count);
	return true;
}

static void seg_node_full(struct dump *d, const struct seg_raw *s, uint64_t i)
{
	printf("node %llu\n", ULL(i));
	if (i >= s->count) {
		bad(d, "the segment has %llu nodes", ULL(s->count));
		return;
	}
	const uint8_t *rec = seg_node(d, s, i);
	uint64_t id;
	if (seg_id(d, s, i, &id))
		printf("  id        %llu\n", ULL(id));
	else
		bad(d, "its id is not in the file");
	if (!rec) {
		stops(d, s->sec[SEG_SEC_NODES].off + i * s->stride, "its record is not in the file");
		return;
	}
	printf("  record    [%llu, +%llu)%s\n", ULL(s->sec[SEG_SEC_NODES].off + i * s->stride),
	       ULL(s->stride), i == s->entry ? "  (the entry point)" : "");
	printf("  vector   ");
	for (uint64_t c = 0; c < s->dim; c++) {
		float f;
		memcpy(&f, rec + 4 * c, 4);
		if (c && c % 8 == 0)
			printf("\n           ");
		printf(" %g", (double)f);
		if (!isfinite(f)) {
			printf("(BAD)");
			d->bad++;
		}
	}
	printf("\n  layer 0   ");
	nbr_list(d, rec + 4 * s->dim, s->M0, s->count);
	uint32_t level;
	uint64_t first;
	if (!seg_level(d, s, i, &level, &first)) {
		stops(d, s->sec[SEG_SEC_UPPER_INDEX].off, "its upper index entry is not in the file");
		return;
	}
	if (level > s->max_level) {
		bad(d, "level %u above max_level %llu", level, ULL(s->max_level));
		return;
	}
	for (uint32_t l = 1; l <= level; l++) {
		const uint8_t *blk = seg_block(d, s, first + l - 1);
		printf("  layer %-3u ", l);
		if (!blk) {
			printf("block %llu is not in the file\n", ULL(first + l - 1));
			d->bad++;
			continue;
		}
		nbr_list(d, blk, s->M, s->upper_count);
	}
}

static void seg_level_dump(struct dump *d, const struct seg_raw *s, uint32_t L, uint64_t limit)
{
	printf("layer %u\n", L);
	uint64_t shown = 0, n = L == 0 ? s->count : s->upper_count;
	for (uint64_t i = 0; i < n && (!limit || shown < limit); i++) {
		if (L == 0) {
			if (!seg_node_line(d, s, i))
				return;
			shown++;
			continue;
		}
		uint32_t level;
		uint64_t first;
		if (!seg_level(d, s, i, &level, &first)) {
			stops(d, s->sec[SEG_SEC_UPPER_INDEX].off + i * SEG_UPPER_ENTRY_SIZE,
			      "upper index entry %llu is not in the file", ULL(i));
			return;
		}
		if (level < L)
			continue;
		const uint8_t *blk = seg_block(d, s, first + L - 1);
		printf("  node %llu%s: ", ULL(i), i == s->entry ? " (entry)" : "");
		if (!blk) {
			printf("block %llu is not in the file\n", ULL(first + L - 1));
			d->bad++;
			continue;
		}
		nbr_list(d, blk, s->M, s->upper_count);
		shown++;
	}
	if (limit && shown == limit)
		printf("  ... (--limit %llu reached)\n", ULL(limit));
}

struct dump_opts {
	bool have_node, have_level, ids;
	uint64_t node;
	uint32_t level;
	uint64_t limit;
	bool limit_given;
};

static void dump_segment(struct dump *d, const struct dump_opts *o)
{
	struct seg_raw s;
	memset(&s, 0, sizeof s);
	if (!seg_header(d, &s))
		return;
	seg_table(d, &s);
	seg_sections(d, &s);
	if (o->have_node) {
		seg_node_full(d, &s, o->node);
	} else if (o->have_level) {
		seg_level_dump(d, &s, o->level, o->limit_given ? o->limit : 0);
	} else if (o->ids) {
		printf("ids\n");
		uint64_t limit = o->limit_given ? o->limit : 0;
		for (uint64_t i = 0; i < s.count && (!limit || i < limit); i++) {
			uint64_t id;
			if (!seg_id(d, &s, i, &id)) {
				stops(d, s.sec[SEG_SEC_IDS].off + 8 * i, "node %llu's id is not in the file",
				      ULL(i));
				break;
			}
			printf("  node %llu: id %llu%s\n", ULL(i), ULL(id),
			       id == STRATA_NO_ID ? "  BAD: the no-id marker" : "");
			d->bad += id == STRATA_NO_ID;
		}
	} else {
		uint64_t limit = o->limit_given ? o->limit : 10;
		printf("nodes (%llu; --node N, --level L, --ids for more)\n", ULL(s.count));
		uint64_t i = 0;
		for (; i < s.count && (!limit || i < limit); i++)
			if (!seg_node_line(d, &s, i))
				break;
		if (i < s.count && limit && i == limit)
			printf("  ... %llu more (--limit 0 for all)\n", ULL(s.count - i));
	}
}

/* ---- manifest --------------------------------------------------------------------------------- */

static void dump_manifest(struct dump *d)
{
	static const struct {
		unsigned off, size;
		const char *name;
	} f[] = {
		{MF_OFF_VERSION, 4, "version"}, {MF_OFF_HEADER_SIZE, 4, "header_size"},
		{MF_OFF_DIM, 4, "dim"}, {MF_OFF_METRIC, 4, "metric"}, {MF_OFF_M, 4, "M"},
		{MF_OFF_EF_CONSTRUCTION, 4, "ef_construction"}, {MF_OFF_EF_SEARCH, 4, "ef_search"},
		{MF_OFF_SEGMENT_COUNT, 4, "segment_count"}, {MF_OFF_GENERATION, 8, "generation"},
		{MF_OFF_NEXT_SEQ, 8, "next_seq"},
	};
	uint64_t v, count = 0;
	printf("header [0, %u)\n", MF_HEADER_SIZE);
	magic_line(d, 0, MF_MAGIC, "STRATMAN");
	for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
		if (!field_open(d, f[i].off, f[i].size, f[i].name, &v))
			return;
		if (f[i].off == MF_OFF_METRIC)
			printf(" (%s)", cli_metric_name((uint32_t)v));
		putchar('\n');
		if (f[i].off == MF_OFF_SEGMENT_COUNT)
			count = v;
	}
	if (!in_file(d, MF_OFF_DB_UUID, 16)) {
		stops(d, MF_OFF_DB_UUID, "the file ends inside db_uuid");
		return;
	}
	printf("  @%-6u %-16s ", MF_OFF_DB_UUID, "db_uuid");
	for (int i = 0; i < 16; i++)
		printf("%02x", d->b[MF_OFF_DB_UUID + i]);
	putchar('\n');
	if (!field(d, MF_OFF_CHECKPOINT_LSN, 8, "checkpoint_lsn", &v))
		return;
	uint64_t body = sat_mul(count, MF_ENTRY_SIZE);
	sum_line(d, MF_OFF_BODY_XXH3, "body_xxh3", MF_HEADER_SIZE, body);
	sum_line(d, MF_OFF_HEADER_XXH3, "header_xxh3", 0, MF_OFF_HEADER_XXH3);
	if (count > MF_SEGMENTS_MAX)
		bad(d, "segment_count %llu is above %u", ULL(count), MF_SEGMENTS_MAX);
	if (MF_HEADER_SIZE + body != d->len && count <= MF_SEGMENTS_MAX)
		bad(d, "%zu bytes, but %llu entries make %llu", d->len, ULL(count),
		    ULL(MF_HEADER_SIZE + body));
	printf("entries\n");
	for (uint64_t i = 0; i < count; i++) {
		uint64_t off = MF_HEADER_SIZE + i * MF_ENTRY_SIZE;
		if (!in_file(d, off, MF_ENTRY_SIZE)) {
			stops(d, off, "entry %llu is not in the file (%zu bytes)", ULL(i), d->len);
			return;
		}
		const uint8_t *e = d->b + off;
		char name[MF_SEGMENT_NAME_LEN + 1];
		mf_segment_name(le_load64(e + MF_ENT_SEQ), name, sizeof name);
		printf("  #%llu @%-6llu seq %llu (%s), count %llu, file_size %llu, header_xxh3 "
		       "0x%016llx, tomb_gen %llu, level %u, flags %u\n",
		       ULL(i), ULL(off), ULL(le_load64(e + MF_ENT_SEQ)), name,
		       ULL(le_load64(e + MF_ENT_COUNT)), ULL(le_load64(e + MF_ENT_FILE_SIZE)),
		       ULL(le_load64(e + MF_ENT_HEADER_XXH3)), ULL(le_load64(e + MF_ENT_TOMB_GEN)),
		       le_load32(e + MF_ENT_LEVEL), le_load32(e + MF_ENT_FLAGS));
		if (le_load32(e + MF_ENT_FLAGS) || le_load64(e + MF_ENT_RESERVED) ||
		    le_load64(e + MF_ENT_RESERVED + 8))
			bad(d, "entry %llu: flags or reserved bytes are not zero", ULL(i));
	}
}

/* ---- bundle ------------------------------------------------------------------------------------ */

/* One entry header at `off` (in the file); false if it is not an entry header. */
static bool bundle_entry_show(struct dump *d, uint64_t off, uint32_t i, uint32_t version,
                              struct bundle_entry *e)
{
	const uint8_t *h = d->b + off;
	int rc = bundle_entry_decode(h, version, e);
	uint32_t nlen = le_load32(h + BUNDLE_ENT_NAME_LEN);
	char name[4 * BUNDLE_NAME_FIELD + 1];
	size_t o = 0;
	for (uint32_t k = 0; k < BUNDLE_NAME_FIELD && k < nlen; k++) {
		uint8_t c = h[BUNDLE_ENT_NAME + k];
		if (c >= 0x20 && c < 0x7f)
			name[o++] = (char)c;
		else
			o += (size_t)snprintf(name + o, sizeof name - o, "\\x%02x", c);
	}
	name[o] = '\0';
	printf("  entry %u @%llu: ordinal %u, kind %u (%s), name \"%s\", raw %llu bytes, frame %llu "
	       "bytes\n", i, ULL(off), le_load32(h + BUNDLE_ENT_ORDINAL), le_load32(h + BUNDLE_ENT_KIND),
	       bundle_kind_name(le_load32(h + BUNDLE_ENT_KIND)), name,
	       ULL(le_load64(h + BUNDLE_ENT_RAW_SIZE)), ULL(le_load64(h + BUNDLE_ENT_FRAME_SIZE)));
	if (rc != 0) {
		bad(d, "entry header: %s: %s", strata_strerror(rc), strata_last_error_detail());
		return le_load64(h) == BUNDLE_ENTRY_MAGIC;
	}
	printf("    raw_xxh3 0x%016llx, header_xxh3 0x%016llx ok\n", ULL(e->raw_xxh3),
	       ULL(e->header_xxh3));
	uint64_t fo = off + BUNDLE_ENTRY_SIZE;
	if (!in_file(d, fo, e->frame_size)) {
		printf("    frame [%llu, +%llu): BAD: beyond the file's %zu bytes\n", ULL(fo),
		       ULL(e->frame_size), d->len);
		d->bad++;
		return true;
	}
	uint64_t got = xsum64(d->b + fo, (size_t)e->frame_size);
	printf("    frame [%llu, +%llu) xxh3 0x%016llx  %s", ULL(fo), ULL(e->frame_size),
	       ULL(e->frame_xxh3), got == e->frame_xxh3 ? "ok" : "BAD: computed ");
	if (got != e->frame_xxh3) {
		printf("0x%016llx", ULL(got));
		d->bad++;
	}
	printf(" (ratio %.2f)\n", e->frame_size ? (double)e->raw_size / (double)e->frame_size : 0.0);
	return true;
}

static void dump_bundle(struct dump *d)
{
	uint64_t v, count = 0, version = 0;
	printf("header [0, %u)\n", BUNDLE_HEADER_SIZE);
	magic_line(d, 0, BUNDLE_MAGIC, "STRATBND");
	if (!field(d, BUNDLE_OFF_VERSION, 4, "version", &version) ||
	    !field(d, BUNDLE_OFF_HEADER_SIZE, 4, "header_size", &v) ||
	    !field(d, BUNDLE_OFF_FLAGS, 4, "flags", &v) ||
	    !field(d, BUNDLE_OFF_ENTRY_COUNT, 4, "entry_count", &count) ||
	    !field(d, BUNDLE_OFF_TOTAL_RAW, 8, "total_raw_bytes", &v) ||
	    !field(d, BUNDLE_OFF_LEVEL, 4, "level", &v) ||
	    !field(d, BUNDLE_OFF_RESERVED, 4, "reserved", &v))
		return;
	if (in_file(d, BUNDLE_OFF_DB_UUID, 16)) {
		printf("  @%-6u %-16s ", BUNDLE_OFF_DB_UUID, "db_uuid");
		for (int i = 0; i < 16; i++)
			printf("%02x", d->b[BUNDLE_OFF_DB_UUID + i]);
		putchar('\n');
	}
	sum_line(d, BUNDLE_OFF_HEADER_XXH3, "header_xxh3", 0, BUNDLE_OFF_HEADER_XXH3);

	/* From the front, as a pipe reader would. */
	printf("entries, from the front\n");
	uint64_t off = BUNDLE_HEADER_SIZE;
	uint32_t i = 0;
	for (; i < count; i++) {
		if (!in_file(d, off, BUNDLE_ENTRY_SIZE)) {
			stops(d, off, "entry %u's header is not in the file (%zu bytes)", i, d->len);
			break;
		}
		struct bundle_entry e;
		if (!bundle_entry_show(d, off, i, (uint32_t)version, &e)) {
			stops(d, off, "no entry header here: the following offsets cannot be known from "
			      "the front");
			break;
		}
		uint64_t fs = le_load64(d->b + off + BUNDLE_ENT_FRAME_SIZE);
		if (fs > d->len - off - BUNDLE_ENTRY_SIZE) {
			stops(d, off + BUNDLE_ENTRY_SIZE, "entry %u's frame runs past the end of the file", i);
			break;
		}
		off += BUNDLE_ENTRY_SIZE + fs;
	}

	/* From the back, as a lister would. */
	printf("footer and index, from the back\n");
	if (d->len < BUNDLE_HEADER_SIZE + BUNDLE_FOOTER_SIZE) {
		stops(d, d->len, "no room for a footer");
		return;
	}
	uint64_t fo = d->len - BUNDLE_FOOTER_SIZE;
	if (!magic_line(d, fo, BUNDLE_FOOTER_MAGIC, "STRATFTR")) {
		stops(d, fo, "the last 64 bytes are not a footer: the bundle is truncated or its end is "
		      "damaged");
		return;
	}
	uint64_t index_off, bsize, hx;
	uint64_t isize = sat_mul(count, BUNDLE_INDEX_ENTRY_SIZE);
	if (!field(d, fo + BUNDLE_FTR_ENTRY_COUNT, 4, "entry_count", &v))
		return;
	if (v != count)
		bad(d, "the footer says %llu entries, the header %llu", ULL(v), ULL(count));
	if (!field(d, fo + BUNDLE_FTR_FLAGS, 4, "flags", &v) ||
	    !field(d, fo + BUNDLE_FTR_INDEX_OFF, 8, "index_off", &index_off))
		return;
	sum_line(d, fo + BUNDLE_FTR_INDEX_XXH3, "index_xxh3", index_off, isize);
	if (!field(d, fo + BUNDLE_FTR_TOTAL_RAW, 8, "total_raw_bytes", &v) ||
	    !field(d, fo + BUNDLE_FTR_BUNDLE_SIZE, 8, "bundle_size", &bsize) ||
	    !field_open(d, fo + BUNDLE_FTR_HEADER_XXH3, 8, "header_xxh3", &hx))
		return;
	bool same = in_file(d, BUNDLE_OFF_HEADER_XXH3, 8) && hx == le_load64(d->b + BUNDLE_OFF_HEADER_XXH3);
	printf("  %s\n", same ? "(the header's: ok)" : "BAD: not the header's checksum");
	d->bad += !same;
	sum_line(d, fo + BUNDLE_FTR_FOOTER_XXH3, "footer_xxh3", fo, BUNDLE_FTR_FOOTER_XXH3);
	if (bsize != d->len)
		bad(d, "bundle_size %llu, the file has %zu bytes", ULL(bsize), d->len);
	if (!in_file(d, index_off, isize)) {
		stops(d, index_off, "the index (%llu entries) is not inside the file", ULL(count));
		return;
	}
	for (uint64_t k = 0; k < count; k++) {
		const uint8_t *ie = d->b + index_off + k * BUNDLE_INDEX_ENTRY_SIZE;
		struct bundle_entry e;
		uint64_t eo = le_load64(ie);
		int rc = bundle_entry_decode(ie + 8, (uint32_t)version, &e);
		printf("  index %llu: entry at %llu, %s", ULL(k), ULL(eo),
		       rc == 0 ? e.name : "(a damaged copy)");
		if (rc == 0 && in_file(d, eo, BUNDLE_ENTRY_SIZE) &&
		    memcmp(d->b + eo, ie + 8, BUNDLE_ENTRY_SIZE) == 0)
			printf(", matches the entry header there\n");
		else {
			printf("  BAD: %s\n", rc ? strata_last_error_detail()
			                         : "differs from the entry header at that offset");
			d->bad++;
		}
	}
}

/* ---- WAL file ---------------------------------------------------------------------------- */

struct wal_dump {
	struct dump *d;
	const struct dump_opts *o;
	uint64_t expect_off; /* where the next record should start */
	uint64_t shown;      /* records printed */
	uint64_t seen;       /* records walked */
};

static void wal_gap(struct wal_dump *w, uint64_t to, const char *what)
{
	printf("  @%-6llu BAD: %llu bytes up to offset %llu are not %s\n", ULL(w->expect_off),
	       ULL(to - w->expect_off), ULL(to), what);
	w->d->bad++;
}

static int wal_record_show(void *ctx, uint64_t off, const struct walrec *rec)
{
	struct wal_dump *w = ctx;
	if (off != w->expect_off)
		wal_gap(w, off, "valid records in sequence (the listing resumes at the next valid record)");
	w->expect_off = off + rec->total_len;
	w->seen++;
	if (w->o->limit_given && w->o->limit && w->shown >= w->o->limit)
		return 0;
	w->shown++;
	uint32_t n = le_load32(rec->payload);
	bool up = rec->type == WAL_REC_UPSERT;
	printf("  @%-6llu lsn %llu %s n %u", ULL(off), ULL(rec->lsn), up ? "upsert" : "delete", n);
	if (up)
		printf(" dim %u", le_load32(rec->payload + 4));
	printf(", %u bytes, xxh3 ok, ids", rec->total_len);
	uint32_t show = w->o->ids ? n : (n < 8 ? n : 8);
	for (uint32_t i = 0; i < show; i++)
		printf(" %llu", ULL(le_load64(rec->payload + WAL_PAYLOAD_PREFIX_SIZE + 8 * (size_t)i)));
	if (show < n)
		printf(" ... (%u more)", n - show);
	putchar('\n');
	return 0;
}

static void dump_wal(struct dump *d, const struct dump_opts *o)
{
	uint64_t v;
	printf("header [0, %u)\n", WAL_FILE_HEADER_SIZE);
	magic_line(d, 0, WAL_MAGIC, "STRATWAL");
	if (!field(d, WAL_OFF_VERSION, 4, "version", &v) ||
	    !field(d, WAL_OFF_HEADER_SIZE, 4, "header_size", &v))
		return;
	if (!in_file(d, WAL_OFF_DB_UUID, 16)) {
		stops(d, WAL_OFF_DB_UUID, "the file ends inside db_uuid");
		return;
	}
	printf("  @%-6u %-16s ", WAL_OFF_DB_UUID, "db_uuid");
	for (int i = 0; i < 16; i++)
		printf("%02x", d->b[WAL_OFF_DB_UUID + i]);
	putchar('\n');
	if (!field(d, WAL_OFF_FIRST_LSN, 8, "first_lsn", &v) || !field(d, WAL_OFF_DIM, 4, "dim", &v) ||
	    !field(d, WAL_OFF_FLAGS, 4, "flags", &v) || !field(d, WAL_OFF_RESERVED, 8, "reserved", &v))
		return;
	sum_line(d, WAL_OFF_HEADER_XXH3, "header_xxh3", 0, WAL_OFF_HEADER_XXH3);

	struct cli_wal_file wf;
	struct wal_dump w = {.d = d, .o = o, .expect_off = WAL_FILE_HEADER_SIZE};
	printf("records\n");
	cli_wal_walk(d->b, d->len, true, wal_record_show, &w, &wf);
	if (!wf.header_ok) {
		stops(d, 0, "%s", wf.detail);
		return;
	}
	if (w.shown < w.seen)
		printf("  ... %llu more record(s) not shown (--limit)\n", ULL(w.seen - w.shown));
	if (w.expect_off < d->len) {
		if (wf.torn && wf.damage_off == w.expect_off)
			printf("  @%-6llu torn tail: %llu bytes that are not a whole record (a crash during a "
			       "write; recovery cuts them if this is the newest file)\n",
			       ULL(w.expect_off), ULL(d->len - w.expect_off));
		else
			wal_gap(&w, d->len, "records");
	}
	printf("%llu whole record(s) before any damage", ULL(wf.records));
	if (wf.records)
		printf(" (lsn %llu..%llu)", ULL(wf.first_lsn), ULL(wf.last_lsn));
	printf(": %llu upsert(s) of %llu vectors, %llu delete(s) of %llu ids\n", ULL(wf.upserts),
	       ULL(wf.upsert_rows), ULL(wf.deletes), ULL(wf.delete_rows));
	if (wf.error)
		bad(d, "first damage: %s", wf.detail);
}

/* ---- deletion file ------------------------------------------------------------------------- */

static void dump_tomb(struct dump *d, const char *path, const struct dump_opts *o)
{
	uint64_t v, seq, count, deleted;
	printf("header [0, %u)\n", TOMB_HEADER_SIZE);
	magic_line(d, 0, TOMB_MAGIC, "STRATDEL");
	if (!field(d, TOMB_OFF_VERSION, 4, "version", &v) ||
	    !field(d, TOMB_OFF_HEADER_SIZE, 4, "header_size", &v) ||
	    !field_open(d, TOMB_OFF_SEG_SEQ, 8, "seg_seq", &seq))
		return;
	char name[MF_SEGMENT_NAME_LEN + 1];
	mf_segment_name(seq, name, sizeof name);
	printf(" (%s)\n", name);
	if (!field(d, TOMB_OFF_SEG_HEADER_XXH3, 8, "seg_header_xxh3", &v) ||
	    !field(d, TOMB_OFF_COUNT, 8, "count", &count) ||
	    !field(d, TOMB_OFF_DELETED, 8, "deleted", &deleted) ||
	    !field(d, TOMB_OFF_GEN, 8, "generation", &v) || !field(d, TOMB_OFF_FLAGS, 4, "flags", &v) ||
	    !field(d, TOMB_OFF_RESERVED, 4, "reserved", &v))
		return;
	uint64_t body = count <= TOMB_COUNT_MAX ? 8 * tomb_words(count) : UINT64_MAX;
	sum_line(d, TOMB_OFF_BODY_XXH3, "body_xxh3", TOMB_HEADER_SIZE, body);
	sum_line(d, TOMB_OFF_HEADER_XXH3, "header_xxh3", 0, TOMB_OFF_HEADER_XXH3);
	if (count > TOMB_COUNT_MAX) {
		stops(d, TOMB_OFF_COUNT, "count %llu is above %llu", ULL(count), ULL(TOMB_COUNT_MAX));
		return;
	}
	if (d->len != TOMB_HEADER_SIZE + body)
		bad(d, "%zu bytes, but %llu nodes make %llu", d->len, ULL(count),
		    ULL(TOMB_HEADER_SIZE + body));
	printf("bitmap [%u, +%llu)\n", TOMB_HEADER_SIZE, ULL(body));
	uint64_t limit = o->ids ? 0 : o->limit_given ? o->limit : 100;
	uint64_t set = 0, shown = 0, beyond = 0;
	printf("  deleted nodes:");
	for (uint64_t i = 0; i < 64 * tomb_words(count); i++) {
		uint64_t off = TOMB_HEADER_SIZE + 8 * (i / 64);
		if (!in_file(d, off, 8))
			break;
		if (!(le_load64(d->b + off) >> (i % 64) & 1))
			continue;
		if (i >= count) {
			beyond++;
			continue;
		}
		set++;
		if (!limit || shown < limit) {
			printf(" %llu", ULL(i));
			shown++;
		}
	}
	if (shown < set)
		printf(" ... (%llu more)", ULL(set - shown));
	putchar('\n');
	if (d->len < TOMB_HEADER_SIZE + body) {
		uint64_t whole = (d->len - TOMB_HEADER_SIZE) / 8;
		stops(d, TOMB_HEADER_SIZE + 8 * whole, "the file ends inside the bitmap, after %llu of "
		      "its %llu words: nodes from %llu on are not shown", ULL(whole),
		      ULL(tomb_words(count)), ULL(64 * whole));
	}
	if (beyond)
		bad(d, "%llu bit(s) set at or beyond count %llu", ULL(beyond), ULL(count));
	if (set != deleted)
		bad(d, "%llu bits set, the header says deleted %llu", ULL(set), ULL(deleted));
	else
		printf("  %llu bits set = deleted: ok\n", ULL(set));
	struct cli_tomb_file t;
	cli_tomb_check(d->b, d->len, cli_base_name(path), &t);
	if (t.error && !d->bad)
		bad(d, "%s", t.detail);
	cli_tomb_file_free(&t);
}

int cmd_dump(int argc, char **argv)
{
	struct dump_opts o = {0};
	const char *node_s = NULL, *level_s = NULL;
	bool help = false;
	const struct cli_opt opts[] = {
		{"--node", NULL, CLI_OPT_STR, &node_s, 0, 0},
		{"--level", NULL, CLI_OPT_STR, &level_s, 0, 0},
		{"--ids", NULL, CLI_OPT_FLAG, &o.ids, 0, 0},
		{"--limit", NULL, CLI_OPT_U64, &o.limit, 0, UINT64_MAX},
		{NULL, NULL, CLI_OPT_FLAG, NULL, 0, 0},
	};
	const char *pos[1];
	size_t npos;
	uint64_t sentinel = UINT64_MAX;
	o.limit = sentinel;
	int rc = cli_parse(CMD, argc, argv, opts, pos, 1, &npos, &help);
	if (rc != 0)
		return rc;
	if (help) {
		fputs(usage_text, stdout);
		return CLI_EXIT_OK;
	}
	if (npos == 0)
		return cli_usage_error(CMD, "missing the FILE to dump");
	o.limit_given = o.limit != sentinel;
	char *end;
	if (node_s) {
		o.node = strtoull(node_s, &end, 10);
		if (*end || node_s[0] == '-' || !*node_s)
			return cli_usage_error(CMD, "--node needs a node number, not '%s'", node_s);
		o.have_node = true;
	}
	if (level_s) {
		unsigned long l = strtoul(level_s, &end, 10);
		if (*end || level_s[0] == '-' || !*level_s || l > SEG_LEVEL_MAX)
			return cli_usage_error(CMD, "--level must be in 0..%u, not '%s'", SEG_LEVEL_MAX,
			                       level_s);
		o.level = (uint32_t)l;
		o.have_level = true;
	}
	if (o.have_node + o.have_level + o.ids > 1)
		return cli_usage_error(CMD, "--node, --level and --ids are one at a time");

	const char *path = pos[0];
	struct dump d = {0};
	char err[256];
	if ((rc = cli_map_file(path, &d.b, &d.len, err, sizeof err)) != 0)
		return cli_error(CMD, "%s: %s", path, err);
	uint64_t magic = d.len >= 8 ? le_load64(d.b) : 0;
	bool segment = magic == SEG_MAGIC;
	int status = CLI_EXIT_OK;
	bool wal = magic == WAL_MAGIC || walrec_file_name_parse(cli_base_name(path), &(uint64_t){0}) == 0;
	bool tomb = magic == TOMB_MAGIC;
	if (!segment && (o.have_node || o.have_level)) {
		status = cli_usage_error(CMD, "--node and --level apply to segment files");
		goto out;
	}
	if (!segment && !wal && !tomb && o.ids) {
		status = cli_usage_error(CMD, "--ids applies to segment, WAL and deletion files");
		goto out;
	}
	if (segment) {
		printf("segment %s, %zu bytes\n", path, d.len);
		dump_segment(&d, &o);
	} else if (magic == MF_MAGIC) {
		printf("manifest %s, %zu bytes\n", path, d.len);
		dump_manifest(&d);
	} else if (magic == BUNDLE_MAGIC) {
		printf("bundle %s, %zu bytes\n", path, d.len);
		dump_bundle(&d);
	} else if (wal) {
		printf("wal %s, %zu bytes\n", path, d.len);
		dump_wal(&d, &o);
	} else if (tomb) {
		printf("deletions %s, %zu bytes\n", path, d.len);
		dump_tomb(&d, path, &o);
	} else {
		status = cli_error(CMD, "%s: not a strata segment, manifest, bundle, WAL or deletion file "
		                        "(first 8 bytes: no strata magic)", path);
		goto out;
	}
	if (d.bad) {
		printf("%u problem(s) shown\n", d.bad);
		status = CLI_EXIT_FAIL;
	}
out:
	cli_unmap_file(d.b, d.len);
	return status;
}
