/*
 * bundle.c - the bundle codec (bundle.h; FORMAT.md, "Bundle file"): the
 * fixed-size records, the random-access index check, the streaming reader
 * and the writer.
 *
 * Owns the bundle's byte layout and its reader obligations, which the
 * functions below check in the order and with the codes FORMAT.md lists
 * (H1-H7 header, E1-E8 entry header, A1-A11 random access, R1-R9 stream,
 * T1-T11 index and footer after a stream). It must never read outside the
 * bytes it was handed, allocate by an unchecked field, decompress past an
 * entry's declared size + 1 byte, or write a bundle its own reader refuses.
 * It does not know what a manifest or a segment holds: bundle_db.c does.
 */
#include "bundle.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "err.h"
#include "fio.h"
#include "le.h"
#include "xsum.h"

#define ULL(x) ((unsigned long long)(x))
#define B_FAIL(rc, ...) err_set_at((rc), __FILE__, __LINE__, __VA_ARGS__)

static_assert(BUNDLE_OFF_HEADER_XXH3 + 8 == BUNDLE_HEADER_SIZE, "the checksum ends the header");
static_assert(BUNDLE_ENT_NAME + BUNDLE_NAME_FIELD == BUNDLE_ENT_HEADER_XXH3, "name field size");
static_assert(BUNDLE_ENT_HEADER_XXH3 + 8 == BUNDLE_ENTRY_SIZE, "the checksum ends an entry header");
static_assert(BUNDLE_FTR_FOOTER_XXH3 + 8 == BUNDLE_FOOTER_SIZE, "the checksum ends the footer");
static_assert(BUNDLE_INDEX_ENTRY_SIZE == 8 + BUNDLE_ENTRY_SIZE, "index entry = offset + header copy");
static_assert(BUNDLE_NAME_MAX < BUNDLE_NAME_FIELD, "a name leaves at least one zero byte");

#define IN_BUF_SIZE (256u << 10)   /* reader's input buffer */
#define OUT_BUF_SIZE (1u << 20)    /* writer's output chunk */
#define SPILL_MEM_MAX (64u << 20)  /* frames up to this bound are spilled to memory */

/* ---- names --------------------------------------------------------------------------- */

const char *bundle_kind_name(uint32_t kind)
{
	switch (kind) {
	case BUNDLE_KIND_MANIFEST: return "manifest";
	case BUNDLE_KIND_SEGMENT: return "segment";
	case BUNDLE_KIND_WAL: return "wal";
	case BUNDLE_KIND_DELETION: return "deletion";
	default: return "unknown";
	}
}

/* `raw[0..n)` for a message: printable bytes as is, others as \xNN. */
static const char *name_show(const uint8_t *raw, size_t n, char *out, size_t out_len)
{
	size_t o = 0;
	for (size_t i = 0; i < n && o + 5 < out_len; i++) {
		if (raw[i] >= 0x20 && raw[i] < 0x7f && raw[i] != '\\')
			out[o++] = (char)raw[i];
		else
			o += (size_t)snprintf(out + o, out_len - o, "\\x%02x", raw[i]);
	}
	out[o] = '\0';
	return out;
}

static bool is_lower_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

/*
 * raw[0..n) is `prefix` + lowercase hex + `suffix` (4 bytes each), with a
 * '-' at `dash` (0: none) among the hex digits.
 */
static bool hex_between(const uint8_t *raw, size_t n, const char *prefix, const char *suffix,
                        size_t dash)
{
	if (memcmp(raw, prefix, 4) != 0 || memcmp(raw + n - 4, suffix, 4) != 0)
		return false;
	for (size_t i = 4; i < n - 4; i++)
		if (!(i == dash ? raw[i] == '-' : is_lower_hex((char)raw[i])))
			return false;
	return true;
}

/* E7 and E8: the name's bytes, then its pattern for the kind. 0 or ECORRUPT. */
static int name_check(uint32_t kind, const uint8_t *raw, size_t n)
{
	char show[4 * BUNDLE_NAME_FIELD + 8];
	if (n == 0)
		return B_FAIL(STRATA_ECORRUPT, "an empty name");
	if (n > BUNDLE_NAME_MAX)
		return B_FAIL(STRATA_ECORRUPT, "a name of %zu bytes (at most %u)", n, BUNDLE_NAME_MAX);
	name_show(raw, n, show, sizeof show);
	if (raw[0] == '/')
		return B_FAIL(STRATA_ECORRUPT, "name '%s' is absolute", show);
	for (size_t i = 0; i < n; i++) {
		if (raw[i] == '/' || raw[i] == '\\')
			return B_FAIL(STRATA_ECORRUPT, "name '%s' holds a path separator", show);
		if (raw[i] < 0x21 || raw[i] > 0x7e)
			return B_FAIL(STRATA_ECORRUPT, "name '%s' holds byte 0x%02x (printable ASCII only)",
			              show, raw[i]);
	}
	for (size_t i = 0; i + 1 < n; i++)
		if (raw[i] == '.' && raw[i + 1] == '.')
			return B_FAIL(STRATA_ECORRUPT, "name '%s' holds '..'", show);
	bool ok = false;
	const char *pattern = "";
	switch (kind) {
	case BUNDLE_KIND_MANIFEST:
		pattern = "\"MANIFEST\"";
		ok = n == 8 && memcmp(raw, "MANIFEST", 8) == 0;
		break;
	case BUNDLE_KIND_SEGMENT:
		pattern = "\"seg-\" + 16 lowercase hex + \".seg\"";
		ok = n == 24 && hex_between(raw, n, "seg-", ".seg", 0);
		break;
	case BUNDLE_KIND_WAL:
		pattern = "\"wal-\" + 16 lowercase hex + \".log\"";
		ok = n == 24 && hex_between(raw, n, "wal-", ".log", 0);
		break;
	case BUNDLE_KIND_DELETION:
		pattern = "\"del-\" + 16 lowercase hex + \"-\" + 16 lowercase hex + \".del\"";
		ok = n == 41 && hex_between(raw, n, "del-", ".del", 20);
		break;
	default:
		pattern = "no names: an unknown kind";
		break;
	}
	if (!ok)
		return B_FAIL(STRATA_ECORRUPT,
		              "name '%s' is not a %s file name the database format knows (%s)", show,
		              bundle_kind_name(kind), pattern);
	return 0;
}

bool bundle_name_ok(uint32_t kind, const char *name)
{
	if (!name)
		return false;
	size_t n = strnlen(name, BUNDLE_NAME_FIELD);
	return name_check(kind, (const uint8_t *)name, n) == 0;
}

/* A set of names, to refuse duplicates in time linear in the entry count. */
struct name_set {
	uint32_t *slot; /* index + 1 into names; 0 = empty */
	uint32_t cap;   /* power of two */
	uint32_t n;
	char (*names)[BUNDLE_NAME_MAX + 1];
	uint32_t names_cap;
};

static void name_set_free(struct name_set *s)
{
	free(s->slot);
	free(s->names);
	memset(s, 0, sizeof *s);
}

static uint32_t name_slot(const struct name_set *s, const char *name, bool *found)
{
	uint32_t mask = s->cap - 1;
	uint32_t i = (uint32_t)xsum64(name, strlen(name)) & mask;
	for (;; i = (i + 1) & mask) {
		if (!s->slot[i]) {
			*found = false;
			return i;
		}
		if (strcmp(s->names[s->slot[i] - 1], name) == 0) {
			*found = true;
			return i;
		}
	}
}

/* 0 added, 1 already there, or STRATA_ENOMEM. Grows as names arrive, never by a declared count. */
static int name_set_add(struct name_set *s, const char *name)
{
	if (2 * (uint64_t)(s->n + 1) > s->cap) {
		uint32_t cap = s->cap ? 2 * s->cap : 64;
		uint32_t *slot = calloc(cap, sizeof *slot);
		if (!slot)
			return err_set(STRATA_ENOMEM, "name table of %u slots", cap);
		for (uint32_t i = 0; i < s->cap; i++) {
			if (!s->slot[i])
				continue;
			uint32_t j = (uint32_t)xsum64(s->names[s->slot[i] - 1],
			                              strlen(s->names[s->slot[i] - 1])) & (cap - 1);
			while (slot[j])
				j = (j + 1) & (cap - 1);
			slot[j] = s->slot[i];
		}
		free(s->slot);
		s->slot = slot;
		s->cap = cap;
	}
	bool found;
	uint32_t i = name_slot(s, name, &found);
	if (found)
		return 1;
	if (s->n == s->names_cap) {
		uint32_t nc = s->names_cap ? 2 * s->names_cap : 64;
		void *p = realloc(s->names, (size_t)nc * sizeof *s->names);
		if (!p)
			return err_set(STRATA_ENOMEM, "name table of %u names", nc);
		s->names = p;
		s->names_cap = nc;
	}
	snprintf(s->names[s->n], sizeof s->names[s->n], "%s", name);
	s->slot[i] = ++s->n;
	return 0;
}

/* ---- fixed-size records ----------------------------------------------------------------- */

int bundle_header_decode(const uint8_t *buf, size_t len, struct bundle_header *out)
{
	if (len >= 8 && le_load64(buf + BUNDLE_OFF_MAGIC) != BUNDLE_MAGIC)
		return B_FAIL(STRATA_ENOTDB, "magic 0x%016llx is not \"STRATBND\"",
		              ULL(le_load64(buf + BUNDLE_OFF_MAGIC)));
	if (len < BUNDLE_HEADER_SIZE)
		return B_FAIL(STRATA_ETRUNCATED, "%zu bytes, shorter than the %u-byte bundle header", len,
		              BUNDLE_HEADER_SIZE);
	uint32_t version = le_load32(buf + BUNDLE_OFF_VERSION);
	if (version < BUNDLE_VERSION_MIN || version > BUNDLE_VERSION)
		return B_FAIL(STRATA_EVERSION, "bundle version %u (this build reads versions %u to %u)",
		              version, BUNDLE_VERSION_MIN, BUNDLE_VERSION);
	uint32_t hs = le_load32(buf + BUNDLE_OFF_HEADER_SIZE);
	if (hs != BUNDLE_HEADER_SIZE)
		return ERR_CORRUPT("bundle header_size %u is not %u", hs, BUNDLE_HEADER_SIZE);
	uint64_t hx = le_load64(buf + BUNDLE_OFF_HEADER_XXH3);
	if (!xsum_ok(buf, BUNDLE_OFF_HEADER_XXH3, hx))
		return B_FAIL(STRATA_ECHECKSUM, "bundle header xxh3 0x%016llx stored, 0x%016llx computed",
		              ULL(hx), ULL(xsum64(buf, BUNDLE_OFF_HEADER_XXH3)));
	if (le_load32(buf + BUNDLE_OFF_FLAGS) != 0 || le_load32(buf + BUNDLE_OFF_RESERVED) != 0)
		return ERR_CORRUPT("bundle header: flags 0x%x, reserved 0x%x (none are defined)",
		                   le_load32(buf + BUNDLE_OFF_FLAGS), le_load32(buf + BUNDLE_OFF_RESERVED));
	uint32_t count = le_load32(buf + BUNDLE_OFF_ENTRY_COUNT);
	if (count < 1 || count > BUNDLE_ENTRIES_MAX)
		return ERR_CORRUPT("bundle header: entry_count %u is outside 1..%u", count,
		                   BUNDLE_ENTRIES_MAX);
	out->version = version;
	out->entry_count = count;
	out->total_raw_bytes = le_load64(buf + BUNDLE_OFF_TOTAL_RAW);
	out->level = (int32_t)le_load32(buf + BUNDLE_OFF_LEVEL);
	memcpy(out->db_uuid, buf + BUNDLE_OFF_DB_UUID, sizeof out->db_uuid);
	out->header_xxh3 = hx;
	return 0;
}

int bundle_entry_decode(const uint8_t *buf, uint32_t version, struct bundle_entry *out)
{
	if (le_load64(buf + BUNDLE_ENT_MAGIC) != BUNDLE_ENTRY_MAGIC)
		return ERR_CORRUPT("no entry magic \"STRATENT\" (0x%016llx)",
		                   ULL(le_load64(buf + BUNDLE_ENT_MAGIC)));
	uint64_t hx = le_load64(buf + BUNDLE_ENT_HEADER_XXH3);
	if (!xsum_ok(buf, BUNDLE_ENT_HEADER_XXH3, hx))
		return B_FAIL(STRATA_ECHECKSUM, "entry header xxh3 0x%016llx stored, 0x%016llx computed",
		              ULL(hx), ULL(xsum64(buf, BUNDLE_ENT_HEADER_XXH3)));
	uint32_t flags = le_load32(buf + BUNDLE_ENT_FLAGS);
	if (flags != 0)
		return ERR_CORRUPT("entry flags 0x%x (none are defined)", flags);
	uint32_t kind = le_load32(buf + BUNDLE_ENT_KIND);
	if (version < 2 && (kind == BUNDLE_KIND_WAL || kind == BUNDLE_KIND_DELETION))
		return B_FAIL(STRATA_EVERSION, "entry of kind %u (%s files) in a version-%u bundle, "
		              "which reserves that kind for a newer version", kind,
		              bundle_kind_name(kind), version);
	if (kind < BUNDLE_KIND_MANIFEST || kind > BUNDLE_KIND_DELETION)
		return ERR_CORRUPT("entry kind %u is not 1 (manifest), 2 (segment), 3 (wal) or 4 "
		                   "(deletion)", kind);
	uint32_t name_len = le_load32(buf + BUNDLE_ENT_NAME_LEN);
	if (name_len < 1 || name_len > BUNDLE_NAME_MAX)
		return ERR_CORRUPT("name_len %u is outside 1..%u%s", name_len, BUNDLE_NAME_MAX,
		                   name_len == 0 ? " (an empty name)" : "");
	const uint8_t *name = buf + BUNDLE_ENT_NAME;
	for (uint32_t i = name_len; i < BUNDLE_NAME_FIELD; i++)
		if (name[i] != 0)
			return ERR_CORRUPT("name field byte %u (after the %u-byte name) is not zero", i,
			                   name_len);
	int rc = name_check(kind, name, name_len);
	if (rc)
		return rc;
	memset(out, 0, sizeof *out);
	out->ordinal = le_load32(buf + BUNDLE_ENT_ORDINAL);
	out->kind = kind;
	memcpy(out->name, name, name_len);
	out->raw_size = le_load64(buf + BUNDLE_ENT_RAW_SIZE);
	out->frame_size = le_load64(buf + BUNDLE_ENT_FRAME_SIZE);
	out->raw_xxh3 = le_load64(buf + BUNDLE_ENT_RAW_XXH3);
	out->frame_xxh3 = le_load64(buf + BUNDLE_ENT_FRAME_XXH3);
	out->header_xxh3 = hx;
	return 0;
}

static void entry_encode(const struct bundle_entry *e, uint8_t *b)
{
	memset(b, 0, BUNDLE_ENTRY_SIZE);
	le_store64(b + BUNDLE_ENT_MAGIC, BUNDLE_ENTRY_MAGIC);
	le_store32(b + BUNDLE_ENT_ORDINAL, e->ordinal);
	le_store32(b + BUNDLE_ENT_KIND, e->kind);
	le_store32(b + BUNDLE_ENT_NAME_LEN, (uint32_t)strlen(e->name));
	le_store64(b + BUNDLE_ENT_RAW_SIZE, e->raw_size);
	le_store64(b + BUNDLE_ENT_FRAME_SIZE, e->frame_size);
	le_store64(b + BUNDLE_ENT_RAW_XXH3, e->raw_xxh3);
	le_store64(b + BUNDLE_ENT_FRAME_XXH3, e->frame_xxh3);
	memcpy(b + BUNDLE_ENT_NAME, e->name, strlen(e->name));
	le_store64(b + BUNDLE_ENT_HEADER_XXH3, xsum64(b, BUNDLE_ENT_HEADER_XXH3));
}

int bundle_footer_decode(const uint8_t *buf, struct bundle_footer *out)
{
	if (le_load64(buf + BUNDLE_FTR_MAGIC) != BUNDLE_FOOTER_MAGIC)
		return ERR_CORRUPT("no footer magic \"STRATFTR\" (0x%016llx)",
		                   ULL(le_load64(buf + BUNDLE_FTR_MAGIC)));
	uint64_t fx = le_load64(buf + BUNDLE_FTR_FOOTER_XXH3);
	if (!xsum_ok(buf, BUNDLE_FTR_FOOTER_XXH3, fx))
		return B_FAIL(STRATA_ECHECKSUM, "footer xxh3 0x%016llx stored, 0x%016llx computed",
		              ULL(fx), ULL(xsum64(buf, BUNDLE_FTR_FOOTER_XXH3)));
	if (le_load32(buf + BUNDLE_FTR_FLAGS) != 0)
		return ERR_CORRUPT("footer flags 0x%x (none are defined)", le_load32(buf + BUNDLE_FTR_FLAGS));
	out->entry_count = le_load32(buf + BUNDLE_FTR_ENTRY_COUNT);
	out->index_off = le_load64(buf + BUNDLE_FTR_INDEX_OFF);
	out->index_xxh3 = le_load64(buf + BUNDLE_FTR_INDEX_XXH3);
	out->total_raw_bytes = le_load64(buf + BUNDLE_FTR_TOTAL_RAW);
	out->bundle_size = le_load64(buf + BUNDLE_FTR_BUNDLE_SIZE);
	out->header_xxh3 = le_load64(buf + BUNDLE_FTR_HEADER_XXH3);
	return 0;
}

static void footer_encode(const struct bundle_footer *f, uint8_t *b)
{
	memset(b, 0, BUNDLE_FOOTER_SIZE);
	le_store64(b + BUNDLE_FTR_MAGIC, BUNDLE_FOOTER_MAGIC);
	le_store32(b + BUNDLE_FTR_ENTRY_COUNT, f->entry_count);
	le_store64(b + BUNDLE_FTR_INDEX_OFF, f->index_off);
	le_store64(b + BUNDLE_FTR_INDEX_XXH3, f->index_xxh3);
	le_store64(b + BUNDLE_FTR_TOTAL_RAW, f->total_raw_bytes);
	le_store64(b + BUNDLE_FTR_BUNDLE_SIZE, f->bundle_size);
	le_store64(b + BUNDLE_FTR_HEADER_XXH3, f->header_xxh3);
	le_store64(b + BUNDLE_FTR_FOOTER_XXH3, xsum64(b, BUNDLE_FTR_FOOTER_XXH3));
}

/* The footer's cross-checks against the header (T8 / A6). */
static int footer_matches_header(const struct bundle_footer *f, const struct bundle_header *h)
{
	if (f->entry_count != h->entry_count)
		return ERR_CORRUPT("footer: entry_count %u, the header says %u", f->entry_count,
		                   h->entry_count);
	if (f->total_raw_bytes != h->total_raw_bytes)
		return ERR_CORRUPT("footer: total_raw_bytes %llu, the header says %llu",
		                   ULL(f->total_raw_bytes), ULL(h->total_raw_bytes));
	if (f->header_xxh3 != h->header_xxh3)
		return ERR_CORRUPT("footer: header_xxh3 0x%016llx is not the header's 0x%016llx (a "
		                   "footer of another bundle)", ULL(f->header_xxh3), ULL(h->header_xxh3));
	return 0;
}

/* ---- random access --------------------------------------------------------------------- */

void bundle_index_free(struct bundle_index *idx)
{
	if (!idx)
		return;
	free(idx->entries);
	idx->entries = NULL;
	idx->count = 0;
}

int bundle_index_decode(const uint8_t *buf, size_t len, struct bundle_index *out)
{
	struct bundle_index x;
	struct name_set names = {0};
	int rc;
	memset(&x, 0, sizeof x);
	if (!buf && len)
		return err_set(STRATA_EINVAL, "bundle_index_decode: null buffer");
	if ((rc = bundle_header_decode(buf ? buf : (const uint8_t *)"", len, &x.hdr)))
		return rc;
	if (len < (size_t)BUNDLE_HEADER_SIZE + BUNDLE_FOOTER_SIZE)
		return B_FAIL(STRATA_ETRUNCATED, "%zu bytes: no room for a footer after the header", len);
	const uint8_t *f = buf + len - BUNDLE_FOOTER_SIZE;
	if (le_load64(f + BUNDLE_FTR_MAGIC) != BUNDLE_FOOTER_MAGIC)
		return B_FAIL(STRATA_ETRUNCATED, "the last 64 bytes are not a footer (no \"STRATFTR\"): "
		              "the bundle is truncated or its end is damaged");
	if ((rc = bundle_footer_decode(f, &x.ftr)))
		return rc;
	if (x.ftr.bundle_size != len)
		return B_FAIL(len < x.ftr.bundle_size ? STRATA_ETRUNCATED : STRATA_ECORRUPT,
		              "%zu bytes, the footer says %llu", len, ULL(x.ftr.bundle_size));
	if ((rc = footer_matches_header(&x.ftr, &x.hdr)))
		return rc;
	uint64_t index_end = len - BUNDLE_FOOTER_SIZE;
	uint64_t index_size = (uint64_t)x.hdr.entry_count * BUNDLE_INDEX_ENTRY_SIZE;
	if (x.ftr.index_off < BUNDLE_HEADER_SIZE || x.ftr.index_off > index_end ||
	    index_end - x.ftr.index_off != index_size)
		return ERR_CORRUPT("footer: index at %llu, but %u entries of %u bytes before the footer "
		                   "at %llu need it at %llu", ULL(x.ftr.index_off), x.hdr.entry_count,
		                   BUNDLE_INDEX_ENTRY_SIZE, ULL(index_end),
		                   index_size <= index_end ? ULL(index_end - index_size) : 0ull);
	const uint8_t *ix = buf + x.ftr.index_off;
	if (!xsum_ok(ix, (size_t)index_size, x.ftr.index_xxh3))
		return B_FAIL(STRATA_ECHECKSUM, "index xxh3 0x%016llx stored, 0x%016llx computed",
		              ULL(x.ftr.index_xxh3), ULL(xsum64(ix, (size_t)index_size)));
	/* index_size <= len: this allocation is bounded by the buffer's size. */
	x.count = x.hdr.entry_count;
	x.entries = calloc(x.count, sizeof *x.entries);
	if (!x.entries)
		return err_set(STRATA_ENOMEM, "index of %u entries", x.count);
	uint64_t expect_off = BUNDLE_HEADER_SIZE, raw_sum = 0;
	for (uint32_t i = 0; i < x.count; i++) {
		const uint8_t *ie = ix + (size_t)i * BUNDLE_INDEX_ENTRY_SIZE;
		struct bundle_entry *e = &x.entries[i];
		if ((rc = bundle_entry_decode(ie + 8, x.hdr.version, e))) {
			char pre[64];
			snprintf(pre, sizeof pre, "index entry %u", i);
			err_prefix(rc, pre);
			goto fail;
		}
		e->off = le_load64(ie);
		if (e->ordinal != i) {
			rc = ERR_CORRUPT("index entry %u (%s) has ordinal %u", i, e->name, e->ordinal);
			goto fail;
		}
		if (e->off != expect_off) {
			rc = ERR_CORRUPT("index entry %u (%s) at offset %llu, where the previous entry ends "
			                 "at %llu", i, e->name, ULL(e->off), ULL(expect_off));
			goto fail;
		}
		if (e->off > x.ftr.index_off || BUNDLE_ENTRY_SIZE > x.ftr.index_off - e->off ||
		    e->frame_size > x.ftr.index_off - e->off - BUNDLE_ENTRY_SIZE) {
			rc = ERR_CORRUPT("entry %u (%s): %u + %llu bytes at %llu pass the index at %llu", i,
			                 e->name, BUNDLE_ENTRY_SIZE, ULL(e->frame_size), ULL(e->off),
			                 ULL(x.ftr.index_off));
			goto fail;
		}
		if (memcmp(buf + e->off, ie + 8, BUNDLE_ENTRY_SIZE) != 0) {
			rc = ERR_CORRUPT("entry %u (%s): the entry header at %llu differs from its index copy",
			                 i, e->name, ULL(e->off));
			goto fail;
		}
		rc = name_set_add(&names, e->name);
		if (rc == 1)
			rc = ERR_CORRUPT("entry %u: name '%s' appears twice", i, e->name);
		if (rc)
			goto fail;
		if (e->raw_size > x.hdr.total_raw_bytes - raw_sum) {
			rc = ERR_CORRUPT("entry %u (%s): raw sizes pass the header's total of %llu bytes", i,
			                 e->name, ULL(x.hdr.total_raw_bytes));
			goto fail;
		}
		raw_sum += e->raw_size;
		expect_off = e->off + BUNDLE_ENTRY_SIZE + e->frame_size;
	}
	if (expect_off != x.ftr.index_off) {
		rc = ERR_CORRUPT("the last entry ends at %llu, the index starts at %llu", ULL(expect_off),
		                 ULL(x.ftr.index_off));
		goto fail;
	}
	if (raw_sum != x.hdr.total_raw_bytes) {
		rc = ERR_CORRUPT("entries hold %llu raw bytes, the header says %llu", ULL(raw_sum),
		                 ULL(x.hdr.total_raw_bytes));
		goto fail;
	}
	name_set_free(&names);
	*out = x;
	return 0;
fail:
	name_set_free(&names);
	free(x.entries);
	return rc;
}

/* ---- sources ----------------------------------------------------------------------------- */

static int64_t mem_read(void *ctx, uint8_t *buf, size_t len)
{
	struct bundle_mem *m = ctx;
	size_t n = m->len - m->pos < len ? m->len - m->pos : len;
	if (n)
		memcpy(buf, m->buf + m->pos, n);
	m->pos += n;
	return (int64_t)n;
}

void bundle_source_mem(struct bundle_mem *m, const uint8_t *buf, size_t len,
                       struct bundle_source *out)
{
	m->buf = buf;
	m->len = buf ? len : 0;
	m->pos = 0;
	out->read = mem_read;
	out->ctx = m;
}

static int64_t fd_read(void *ctx, uint8_t *buf, size_t len)
{
	struct bundle_fd *f = ctx;
	size_t n = 0;
	int rc = fio_read(f->fd, buf, len, &n, f->name);
	return rc ? rc : (int64_t)n;
}

void bundle_source_fd(struct bundle_fd *f, int fd, const char *name, struct bundle_source *out)
{
	f->fd = fd;
	f->name = name;
	out->read = fd_read;
	out->ctx = f;
}

/* ---- streaming reader ----------------------------------------------------------------------- */

enum reader_state {
	R_BETWEEN, /* before an entry header (or the index) */
	R_DATA,    /* inside the current entry's frame */
	R_DONE,    /* the current entry was read to its end and checked */
	R_END      /* index and footer checked */
};

struct bundle_reader {
	struct bundle_source src;
	struct bundle_header hdr;
	enum reader_state state;
	int rc;                  /* sticky failure */
	uint8_t *in;             /* input buffer: in[pos..len) not consumed yet */
	size_t in_pos, in_len;
	uint64_t src_total;      /* bytes obtained from the source */
	uint32_t next_ordinal;
	uint64_t raw_sum;
	struct name_set names;
	struct xsum_state index_x; /* over the index bytes the entries read imply */
	/* the current entry */
	struct bundle_entry cur;
	uint64_t frame_left;     /* frame bytes not yet consumed */
	uint64_t raw_done;
	bool frame_ended;        /* zstd reported the end of the frame */
	struct xsum_state raw_x, frame_x;
	ZSTD_DCtx *dctx;
};

static uint64_t r_offset(const struct bundle_reader *r)
{
	return r->src_total - (r->in_len - r->in_pos);
}

uint64_t bundle_reader_offset(const struct bundle_reader *r)
{
	return r ? r_offset(r) : 0;
}

const struct bundle_header *bundle_reader_header(const struct bundle_reader *r)
{
	return &r->hdr;
}

/* Refill the input buffer. 0 with r->in_len > r->in_pos, 1 at the end of the input, or < 0. */
static int r_fill(struct bundle_reader *r)
{
	if (r->in_pos < r->in_len)
		return 0;
	r->in_pos = r->in_len = 0;
	int64_t n = r->src.read(r->src.ctx, r->in, IN_BUF_SIZE);
	if (n < 0)
		return (int)n;
	if (n == 0)
		return 1;
	if ((uint64_t)n > IN_BUF_SIZE)
		return err_set(STRATA_EIO, "bundle source returned %lld bytes for a %u-byte read",
		               (long long)n, IN_BUF_SIZE);
	r->in_len = (size_t)n;
	r->src_total += (uint64_t)n;
	return 0;
}

/* Exactly n bytes into dst (dst may be NULL: hash them into x instead, if x). */
static int r_read_exact(struct bundle_reader *r, uint8_t *dst, uint64_t n, struct xsum_state *x,
                        const char *what)
{
	uint64_t start = r_offset(r), got = 0;
	while (got < n) {
		int rc = r_fill(r);
		if (rc < 0)
			return rc;
		if (rc == 1)
			return B_FAIL(STRATA_ETRUNCATED, "the bundle ends at offset %llu, inside %s (%llu of "
			              "%llu bytes from offset %llu)", ULL(r_offset(r)), what, ULL(got), ULL(n),
			              ULL(start));
		size_t k = r->in_len - r->in_pos;
		if (k > n - got)
			k = (size_t)(n - got);
		if (dst)
			memcpy(dst + got, r->in + r->in_pos, k);
		if (x)
			xsum_update(x, r->in + r->in_pos, k);
		r->in_pos += k;
		got += k;
	}
	return 0;
}

static int r_fail(struct bundle_reader *r, int rc)
{
	r->rc = rc;
	return rc;
}

int bundle_reader_new(const struct bundle_source *src, struct bundle_reader **reader_out)
{
	if (!src || !src->read || !reader_out)
		return err_set(STRATA_EINVAL, "bundle_reader_new: null argument");
	struct bundle_reader *r = calloc(1, sizeof *r);
	if (!r)
		return err_set(STRATA_ENOMEM, "bundle reader");
	int rc;
	r->src = *src;
	r->in = malloc(IN_BUF_SIZE);
	r->dctx = ZSTD_createDCtx();
	if (!r->in || !r->dctx || xsum_begin(&r->index_x) != 0) {
		rc = err_set(STRATA_ENOMEM, "bundle reader buffers");
		goto fail;
	}
	/* The window limit is set per entry (bundle_reader_next), at most 2^27 bytes. */
	uint8_t h[BUNDLE_HEADER_SIZE];
	size_t got = 0;
	while (got < sizeof h) { /* read what there is, so a short input gets H1's or H2's code */
		if ((rc = r_fill(r)) < 0)
			goto fail;
		if (rc == 1)
			break;
		size_t k = r->in_len - r->in_pos < sizeof h - got ? r->in_len - r->in_pos : sizeof h - got;
		memcpy(h + got, r->in + r->in_pos, k);
		r->in_pos += k;
		got += k;
	}
	if ((rc = bundle_header_decode(h, got, &r->hdr)))
		goto fail;
	r->state = R_BETWEEN;
	*reader_out = r;
	return 0;
fail:
	bundle_reader_free(r);
	return rc;
}

void bundle_reader_free(struct bundle_reader *r)
{
	if (!r)
		return;
	xsum_end(&r->index_x);
	xsum_end(&r->raw_x);
	xsum_end(&r->frame_x);
	ZSTD_freeDCtx(r->dctx);
	name_set_free(&r->names);
	free(r->in);
	free(r);
}

static const char *cur_name(const struct bundle_reader *r)
{
	return r->cur.name;
}

/* Consume the rest of the current frame into the frame checksum. */
static int r_drain_frame(struct bundle_reader *r)
{
	char what[96];
	snprintf(what, sizeof what, "entry %u (%s)'s frame", r->cur.ordinal, cur_name(r));
	int rc = r_read_exact(r, NULL, r->frame_left, &r->frame_x, what);
	if (rc == 0)
		r->frame_left = 0;
	return rc;
}

/* R7: the frame checksum, once every frame byte has been consumed. */
static int r_check_frame_xxh3(struct bundle_reader *r)
{
	uint64_t got = xsum_end(&r->frame_x);
	if (!xsum_match(got, r->cur.frame_xxh3))
		return B_FAIL(STRATA_ECHECKSUM, "entry %u (%s): frame xxh3 0x%016llx computed, 0x%016llx "
		              "stored: the compressed bytes are damaged", r->cur.ordinal, cur_name(r),
		              ULL(got), ULL(r->cur.frame_xxh3));
	return 0;
}

/*
 * A failure inside a frame: finish reading the frame, and report damage to
 * its bytes (ECHECKSUM) before what zstd or the size check made of them.
 */
static int r_frame_fail(struct bundle_reader *r, int rc)
{
	char why[ERR_DETAIL_MAX];
	snprintf(why, sizeof why, "%s", err_detail());
	int drc = r_drain_frame(r);
	if (drc)
		return r_fail(r, drc);
	if ((drc = r_check_frame_xxh3(r)))
		return r_fail(r, drc);
	err_set(rc, "%s", why);
	return r_fail(r, rc);
}

/* R8 and R9 at the end of a frame. */
static int r_finish_entry(struct bundle_reader *r)
{
	const struct bundle_entry *e = &r->cur;
	if (r->frame_left) {
		uint64_t extra = r->frame_left;
		ERR_CORRUPT("entry %u (%s): %llu bytes follow the end of its zstd frame inside the "
		            "declared frame_size", e->ordinal, e->name, ULL(extra));
		return r_frame_fail(r, STRATA_ECORRUPT);
	}
	int rc = r_check_frame_xxh3(r);
	if (rc)
		return r_fail(r, rc);
	if (r->raw_done != e->raw_size)
		return r_fail(r, ERR_CORRUPT("entry %u (%s): decompresses to %llu bytes, its header "
		                             "declares %llu", e->ordinal, e->name, ULL(r->raw_done),
		                             ULL(e->raw_size)));
	uint64_t got = xsum_end(&r->raw_x);
	if (!xsum_match(got, e->raw_xxh3))
		return r_fail(r, B_FAIL(STRATA_ECHECKSUM, "entry %u (%s): xxh3 of the decompressed bytes "
		                        "0x%016llx, 0x%016llx stored", e->ordinal, e->name, ULL(got),
		                        ULL(e->raw_xxh3)));
	r->state = R_DONE;
	return 0;
}

int bundle_reader_read(struct bundle_reader *r, uint8_t *buf, size_t cap, size_t *n_out)
{
	*n_out = 0;
	if (r->rc)
		return r->rc;
	if (r->state == R_DONE)
		return 0;
	if (r->state != R_DATA || !buf || cap == 0)
		return err_set(STRATA_EINVAL, "bundle_reader_read: no entry to read, or no buffer");
	const struct bundle_entry *e = &r->cur;
	for (;;) {
		if (r->frame_ended) {
			int rc = r_finish_entry(r);
			return rc;
		}
		/* Room for the rest of the declared size and one byte more, to catch a zip bomb. */
		uint64_t left = e->raw_size - r->raw_done;
		size_t room = left >= cap ? cap : (size_t)left + 1;
		if (r->in_pos == r->in_len && r->frame_left) {
			int rc = r_fill(r);
			if (rc < 0)
				return r_fail(r, rc);
			if (rc == 1)
				return r_fail(r, B_FAIL(STRATA_ETRUNCATED, "the bundle ends at offset %llu, "
				                        "inside entry %u (%s)'s frame (%llu bytes missing)",
				                        ULL(r_offset(r)), e->ordinal, e->name,
				                        ULL(r->frame_left)));
		}
		size_t avail = r->in_len - r->in_pos;
		if (avail > r->frame_left)
			avail = (size_t)r->frame_left;
		ZSTD_inBuffer in = {r->in + r->in_pos, avail, 0};
		ZSTD_outBuffer out = {buf, room, 0};
		size_t ret = ZSTD_decompressStream(r->dctx, &out, &in);
		xsum_update(&r->frame_x, r->in + r->in_pos, in.pos);
		r->in_pos += in.pos;
		r->frame_left -= in.pos;
		if (ZSTD_isError(ret)) {
			ERR_CORRUPT("entry %u (%s): zstd: %s", e->ordinal, e->name, ZSTD_getErrorName(ret));
			return r_frame_fail(r, STRATA_ECORRUPT);
		}
		if (out.pos > left) {
			ERR_CORRUPT("entry %u (%s): decompresses to more than the %llu bytes its header "
			            "declares (stopped at the first extra byte)", e->ordinal, e->name,
			            ULL(e->raw_size));
			return r_frame_fail(r, STRATA_ECORRUPT);
		}
		xsum_update(&r->raw_x, buf, out.pos);
		r->raw_done += out.pos;
		if (ret == 0)
			r->frame_ended = true;
		else if (in.pos == 0 && out.pos == 0 && r->frame_left == 0) {
			ERR_CORRUPT("entry %u (%s): the zstd frame is incomplete at its declared frame_size "
			            "of %llu bytes", e->ordinal, e->name, ULL(e->frame_size));
			return r_frame_fail(r, STRATA_ECORRUPT);
		}
		if (out.pos) {
			*n_out = out.pos;
			return 0;
		}
	}
}

/* T1-T11: the index and the footer after the last entry, then the end of the input. */
static int r_read_tail(struct bundle_reader *r)
{
	uint64_t index_off = r_offset(r);
	uint64_t index_size = (uint64_t)r->hdr.entry_count * BUNDLE_INDEX_ENTRY_SIZE;
	struct xsum_state actual;
	if (xsum_begin(&actual) != 0)
		return r_fail(r, err_set(STRATA_ENOMEM, "index checksum"));
	int rc = r_read_exact(r, NULL, index_size, &actual, "the index");
	uint64_t got = xsum_end(&actual);
	if (rc)
		return r_fail(r, rc);
	uint8_t f[BUNDLE_FOOTER_SIZE];
	struct bundle_footer ftr;
	if ((rc = r_read_exact(r, f, sizeof f, NULL, "the footer")))
		return r_fail(r, rc);
	if ((rc = bundle_footer_decode(f, &ftr)))
		return r_fail(r, rc);
	if (!xsum_match(got, ftr.index_xxh3))
		return r_fail(r, B_FAIL(STRATA_ECHECKSUM, "index xxh3 0x%016llx computed, 0x%016llx "
		                        "stored", ULL(got), ULL(ftr.index_xxh3)));
	uint64_t expect = xsum_end(&r->index_x);
	if (got != expect)
		return r_fail(r, ERR_CORRUPT("the index does not list the entries as they were read "
		                             "(offsets or entry headers differ)"));
	if ((rc = footer_matches_header(&ftr, &r->hdr)))
		return r_fail(r, rc);
	if (ftr.index_off != index_off)
		return r_fail(r, ERR_CORRUPT("footer: index_off %llu, the index starts at %llu",
		                             ULL(ftr.index_off), ULL(index_off)));
	if (ftr.bundle_size != r_offset(r))
		return r_fail(r, ERR_CORRUPT("footer: bundle_size %llu, the footer ends at %llu",
		                             ULL(ftr.bundle_size), ULL(r_offset(r))));
	if (r->raw_sum != r->hdr.total_raw_bytes)
		return r_fail(r, ERR_CORRUPT("entries hold %llu raw bytes, the header says %llu",
		                             ULL(r->raw_sum), ULL(r->hdr.total_raw_bytes)));
	rc = r_fill(r);
	if (rc < 0)
		return r_fail(r, rc);
	if (rc == 0)
		return r_fail(r, ERR_CORRUPT("bytes follow the footer at offset %llu", ULL(r_offset(r))));
	r->state = R_END;
	return BUNDLE_END;
}

int bundle_reader_next(struct bundle_reader *r, struct bundle_entry *e)
{
	int rc;
	if (r->rc)
		return r->rc;
	if (r->state == R_END)
		return BUNDLE_END;
	if (r->state == R_DATA) { /* skip the rest of an entry the caller did not read */
		if ((rc = r_drain_frame(r)) || (rc = r_check_frame_xxh3(r)))
			return r_fail(r, rc);
		xsum_end(&r->raw_x);
		r->state = R_DONE;
	}
	if (r->next_ordinal == r->hdr.entry_count)
		return r_read_tail(r);

	uint64_t off = r_offset(r);
	uint8_t h[BUNDLE_ENTRY_SIZE];
	char what[64];
	snprintf(what, sizeof what, "entry %u's header", r->next_ordinal);
	if ((rc = r_read_exact(r, h, sizeof h, NULL, what)))
		return r_fail(r, rc);
	struct bundle_entry x;
	if ((rc = bundle_entry_decode(h, r->hdr.version, &x))) {
		snprintf(what, sizeof what, "entry %u at offset %llu", r->next_ordinal, ULL(off));
		return r_fail(r, err_prefix(rc, what));
	}
	x.off = off;
	if (x.ordinal != r->next_ordinal)
		return r_fail(r, ERR_CORRUPT("entry at offset %llu (%s) has ordinal %u, expected %u",
		                             ULL(off), x.name, x.ordinal, r->next_ordinal));
	rc = name_set_add(&r->names, x.name);
	if (rc == 1)
		return r_fail(r, ERR_CORRUPT("entry %u: name '%s' appears twice", x.ordinal, x.name));
	if (rc)
		return r_fail(r, rc);
	if (x.raw_size > r->hdr.total_raw_bytes - r->raw_sum)
		return r_fail(r, ERR_CORRUPT("entry %u (%s): %llu raw bytes pass the header's total of "
		                             "%llu", x.ordinal, x.name, ULL(x.raw_size),
		                             ULL(r->hdr.total_raw_bytes)));
	r->raw_sum += x.raw_size;
	uint8_t offb[8];
	le_store64(offb, off);
	xsum_update(&r->index_x, offb, sizeof offb);
	xsum_update(&r->index_x, h, sizeof h);

	xsum_end(&r->raw_x);
	xsum_end(&r->frame_x);
	if (xsum_begin(&r->raw_x) != 0 || xsum_begin(&r->frame_x) != 0)
		return r_fail(r, err_set(STRATA_ENOMEM, "entry checksums"));
	ZSTD_DCtx_reset(r->dctx, ZSTD_reset_session_only);
	/*
	 * The frame's window may not exceed the entry's declared size (writers
	 * pledge the size, and zstd then keeps its window within it), so the
	 * decoder's memory follows the declared size, bounded by the checks
	 * above, and never a frame header's claim: a tiny entry whose frame asks
	 * for a 128 MiB window is refused ("Frame requires too much memory").
	 */
	int wlog = 10; /* ZSTD_WINDOWLOG_ABSOLUTEMIN */
	while (wlog < 27 && (1ull << wlog) < x.raw_size)
		wlog++;
	ZSTD_DCtx_setParameter(r->dctx, ZSTD_d_windowLogMax, wlog);
	r->cur = x;
	r->frame_left = x.frame_size;
	r->raw_done = 0;
	r->frame_ended = false;
	r->next_ordinal++;
	r->state = R_DATA;
	*e = x;
	return 0;
}

/* ---- writer --------------------------------------------------------------------------------- */

struct bw {
	int fd;
	const char *name;
	bool positional;  /* a regular file: pwrite, headers patched after their frames */
	uint64_t base;    /* fd offset of the bundle's first byte (positional) */
	uint64_t off;     /* bundle bytes written so far */
	/* sequential mode: the current frame, spilled before its header can be written */
	uint8_t *mem;
	size_t mem_len, mem_cap;
	int spill_fd;
	uint64_t spill_len;
	const char *spill_dir;
	char spill_path[4096];
};

static int bw_out(struct bw *w, const void *buf, size_t len)
{
	int rc = w->positional ? fio_pwrite_all(w->fd, buf, len, w->base + w->off, w->name)
	                       : fio_write_all(w->fd, buf, len, w->name);
	if (rc == 0)
		w->off += len;
	return rc;
}

static int bw_spill(struct bw *w, const void *buf, size_t len)
{
	if (w->spill_fd >= 0) {
		int rc = fio_pwrite_all(w->spill_fd, buf, len, w->spill_len, w->spill_path);
		if (rc == 0)
			w->spill_len += len;
		return rc;
	}
	if (len > w->mem_cap - w->mem_len) {
		size_t cap = w->mem_cap ? w->mem_cap : OUT_BUF_SIZE;
		while (cap - w->mem_len < len)
			cap *= 2;
		uint8_t *p = realloc(w->mem, cap);
		if (!p)
			return err_set(STRATA_ENOMEM, "spill buffer of %zu bytes", cap);
		w->mem = p;
		w->mem_cap = cap;
	}
	memcpy(w->mem + w->mem_len, buf, len);
	w->mem_len += len;
	return 0;
}

/* An unlinked temporary file for one large frame on its way to a pipe. */
static int bw_spill_open(struct bw *w)
{
	const char *dir = w->spill_dir;
	if (!dir || !*dir)
		dir = getenv("TMPDIR");
	if (!dir || !*dir)
		dir = "/tmp";
	snprintf(w->spill_path, sizeof w->spill_path, "%s", dir);
	int rc = fio_open(dir, O_RDWR | O_TMPFILE, 0600, &w->spill_fd);
	if (rc == 0)
		return 0;
	/* File systems without O_TMPFILE: a named file, unlinked at once. */
	for (unsigned attempt = 0; attempt < 100; attempt++) {
		snprintf(w->spill_path, sizeof w->spill_path, "%s/.strata-pack-%ld-%u", dir,
		         (long)getpid(), attempt);
		rc = fio_open(w->spill_path, O_RDWR | O_CREAT | O_EXCL, 0600, &w->spill_fd);
		if (rc != STRATA_EEXIST)
			break;
	}
	if (rc)
		return rc;
	fio_unlink(w->spill_path);
	return 0;
}

static void bw_spill_close(struct bw *w)
{
	if (w->spill_fd >= 0)
		fio_close(w->spill_fd);
	w->spill_fd = -1;
	w->spill_len = 0;
	w->mem_len = 0;
}

/* Copy the spilled frame to the output. */
static int bw_spill_flush(struct bw *w, uint8_t *chunk)
{
	if (w->spill_fd < 0)
		return bw_out(w, w->mem, w->mem_len);
	for (uint64_t done = 0; done < w->spill_len;) {
		size_t k = w->spill_len - done < OUT_BUF_SIZE ? (size_t)(w->spill_len - done) : OUT_BUF_SIZE;
		int rc = fio_pread_all(w->spill_fd, chunk, k, done, w->spill_path);
		if (rc || (rc = bw_out(w, chunk, k)))
			return rc;
		done += k;
	}
	return 0;
}

static int zstd_fail(size_t code, const char *what)
{
	int rc = ZSTD_getErrorCode(code) == ZSTD_error_memory_allocation ? STRATA_ENOMEM : STRATA_EIO;
	return err_set(rc, "zstd %s: %s", what, ZSTD_getErrorName(code));
}

/* Compress one file into one zstd frame, through `emit`; hash raw and frame bytes on the way. */
static int bw_compress(struct bw *w, ZSTD_CCtx *cctx, const struct bundle_file *f, uint8_t *obuf,
                       int (*emit)(struct bw *, const void *, size_t), struct bundle_entry *e)
{
	struct xsum_state rx = {0}, fx = {0};
	int rc = 0;
	if (xsum_begin(&rx) != 0 || xsum_begin(&fx) != 0) {
		rc = err_set(STRATA_ENOMEM, "checksum state");
		goto out;
	}
	size_t z = ZSTD_CCtx_reset(cctx, ZSTD_reset_session_only);
	if (!ZSTD_isError(z))
		z = ZSTD_CCtx_setPledgedSrcSize(cctx, f->size);
	if (ZSTD_isError(z)) {
		rc = zstd_fail(z, "reset");
		goto out;
	}
	ZSTD_inBuffer in = {f->data ? (const void *)f->data : (const void *)"", (size_t)f->size, 0};
	size_t remaining;
	do {
		ZSTD_outBuffer out = {obuf, OUT_BUF_SIZE, 0};
		size_t before = in.pos;
		remaining = ZSTD_compressStream2(cctx, &out, &in, ZSTD_e_end);
		if (ZSTD_isError(remaining)) {
			rc = zstd_fail(remaining, "compress");
			goto out;
		}
		xsum_update(&rx, (const uint8_t *)in.src + before, in.pos - before);
		xsum_update(&fx, obuf, out.pos);
		if (out.pos && (rc = emit(w, obuf, out.pos)))
			goto out;
		e->frame_size += out.pos;
	} while (remaining != 0);
out:
	e->raw_xxh3 = xsum_end(&rx);
	e->frame_xxh3 = xsum_end(&fx);
	return rc;
}

/* Never write what the reader refuses: counts, names, kinds, distinct names. */
static int bw_check_files(const struct bundle_file *files, uint32_t count, uint64_t *total_out)
{
	if (!files || count < 1 || count > BUNDLE_ENTRIES_MAX)
		return err_set(STRATA_EINVAL, "bundle_write: %u files (1..%u)", count, BUNDLE_ENTRIES_MAX);
	struct name_set names = {0};
	uint64_t total = 0;
	int rc = 0;
	for (uint32_t i = 0; i < count && !rc; i++) {
		const struct bundle_file *f = &files[i];
		if (f->kind < BUNDLE_KIND_MANIFEST || f->kind > BUNDLE_KIND_DELETION)
			rc = err_set(STRATA_EINVAL, "bundle_write: file %u has kind %u", i, f->kind);
		else if (!bundle_name_ok(f->kind, f->name))
			rc = err_prefix(STRATA_EINVAL, "bundle_write");
		else if (f->size && !f->data)
			rc = err_set(STRATA_EINVAL, "bundle_write: %s has no bytes", f->name);
		else if (f->size > UINT64_MAX - total || f->size > SIZE_MAX)
			rc = err_set(STRATA_ELIMIT, "bundle_write: sizes overflow at %s", f->name);
		else if ((rc = name_set_add(&names, f->name)) == 1)
			rc = err_set(STRATA_EINVAL, "bundle_write: %s appears twice", f->name);
		total += f->size;
	}
	name_set_free(&names);
	*total_out = total;
	return rc;
}

int bundle_write(int fd, const char *name, const struct bundle_file *files, uint32_t count,
                 const uint8_t db_uuid[16], const struct bundle_pack_opts *opts,
                 struct bundle_pack_stats *stats_out)
{
	struct bundle_pack_opts o = {0};
	if (opts)
		o = *opts;
	if (o.level == 0)
		o.level = BUNDLE_LEVEL_DEFAULT;
	if (o.level < BUNDLE_LEVEL_MIN || o.level > BUNDLE_LEVEL_MAX)
		return err_set(STRATA_EINVAL, "zstd level %d is outside %d..%d", o.level,
		               BUNDLE_LEVEL_MIN, BUNDLE_LEVEL_MAX);
	uint64_t total = 0;
	int rc = bw_check_files(files, count, &total);
	if (rc)
		return rc;

	struct bw w = {.fd = fd, .name = name ? name : "(bundle)", .spill_fd = -1,
	               .spill_dir = o.spill_dir};
	struct stat st;
	int fl = fcntl(fd, F_GETFL);
	off_t pos = lseek(fd, 0, SEEK_CUR);
	/* pwrite on an O_APPEND descriptor appends wherever it is told to write: stream instead. */
	w.positional = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && fl >= 0 && !(fl & O_APPEND) &&
	               pos >= 0;
	w.base = w.positional ? (uint64_t)pos : 0;

	uint8_t *obuf = malloc(OUT_BUF_SIZE);
	uint8_t *index = malloc((size_t)count * BUNDLE_INDEX_ENTRY_SIZE);
	ZSTD_CCtx *cctx = ZSTD_createCCtx();
	uint32_t workers = 0;
	if (!obuf || !index || !cctx) {
		rc = err_set(STRATA_ENOMEM, "bundle writer buffers");
		goto out;
	}
	size_t z = ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, o.level);
	if (!ZSTD_isError(z))
		z = ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 0); /* xxh3 covers the raw bytes */
	if (!ZSTD_isError(z))
		z = ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 1);
	if (ZSTD_isError(z)) {
		rc = zstd_fail(z, "parameters");
		goto out;
	}
	/* A libzstd built without threads refuses workers: compress on this thread then. */
	if (o.threads > 1 &&
	    !ZSTD_isError(ZSTD_CCtx_setParameter(cctx, ZSTD_c_nbWorkers, (int)o.threads)))
		workers = o.threads;

	uint8_t h[BUNDLE_HEADER_SIZE] = {0};
	le_store64(h + BUNDLE_OFF_MAGIC, BUNDLE_MAGIC);
	le_store32(h + BUNDLE_OFF_VERSION, BUNDLE_VERSION);
	le_store32(h + BUNDLE_OFF_HEADER_SIZE, BUNDLE_HEADER_SIZE);
	le_store32(h + BUNDLE_OFF_ENTRY_COUNT, count);
	le_store64(h + BUNDLE_OFF_TOTAL_RAW, total);
	le_store32(h + BUNDLE_OFF_LEVEL, (uint32_t)o.level);
	if (db_uuid)
		memcpy(h + BUNDLE_OFF_DB_UUID, db_uuid, 16);
	uint64_t header_xxh3 = xsum64(h, BUNDLE_OFF_HEADER_XXH3);
	le_store64(h + BUNDLE_OFF_HEADER_XXH3, header_xxh3);
	if ((rc = bw_out(&w, h, sizeof h)))
		goto out;

	for (uint32_t i = 0; i < count; i++) {
		const struct bundle_file *f = &files[i];
		struct bundle_entry e = {.ordinal = i, .kind = f->kind, .raw_size = f->size};
		snprintf(e.name, sizeof e.name, "%s", f->name);
		uint64_t entry_off = w.off;
		uint8_t *eh = index + (size_t)i * BUNDLE_INDEX_ENTRY_SIZE;
		if (w.positional) {
			w.off += BUNDLE_ENTRY_SIZE; /* the header goes here once the frame is known */
			if ((rc = bw_compress(&w, cctx, f, obuf, bw_out, &e)))
				goto out;
			entry_encode(&e, eh + 8);
			rc = fio_pwrite_all(fd, eh + 8, BUNDLE_ENTRY_SIZE, w.base + entry_off, w.name);
			if (rc)
				goto out;
		} else {
			if (ZSTD_compressBound((size_t)f->size) > SPILL_MEM_MAX && (rc = bw_spill_open(&w)))
				goto out;
			if ((rc = bw_compress(&w, cctx, f, obuf, bw_spill, &e))) {
				bw_spill_close(&w);
				goto out;
			}
			entry_encode(&e, eh + 8);
			rc = bw_out(&w, eh + 8, BUNDLE_ENTRY_SIZE);
			if (!rc)
				rc = bw_spill_flush(&w, obuf);
			bw_spill_close(&w);
			if (rc)
				goto out;
		}
		le_store64(eh, entry_off);
	}
	struct bundle_footer ftr = {
		.entry_count = count,
		.index_off = w.off,
		.index_xxh3 = xsum64(index, (size_t)count * BUNDLE_INDEX_ENTRY_SIZE),
		.total_raw_bytes = total,
		.header_xxh3 = header_xxh3,
	};
	ftr.bundle_size = w.off + (uint64_t)count * BUNDLE_INDEX_ENTRY_SIZE + BUNDLE_FOOTER_SIZE;
	uint8_t fb[BUNDLE_FOOTER_SIZE];
	footer_encode(&ftr, fb);
	if ((rc = bw_out(&w, index, (size_t)count * BUNDLE_INDEX_ENTRY_SIZE)) ||
	    (rc = bw_out(&w, fb, sizeof fb)))
		goto out;
	/* Leave the descriptor's offset after the bundle, as a sequential writer would. */
	if (w.positional)
		lseek(fd, (off_t)(w.base + w.off), SEEK_SET);
	if (stats_out) {
		stats_out->entries = count;
		stats_out->raw_bytes = total;
		stats_out->bundle_bytes = w.off;
		stats_out->threads = workers;
	}
out:
	ZSTD_freeCCtx(cctx);
	free(w.mem);
	free(index);
	free(obuf);
	return rc;
}
