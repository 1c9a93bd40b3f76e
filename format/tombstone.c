/*
 * tombstone.c - the deletion file codec and its atomic write (tombstone.h;
 * FORMAT.md, section 9 "Deletion file").
 *
 * Owns the byte layout of deletion files and their validity rule. The
 * decoder takes bytes from anywhere: it checks the header, its checksum and
 * the binding to the caller's segment before it trusts the node count, and
 * the count it then allocates by is the caller's (already bounded by the
 * segment it opened), never one read from the file alone. A deletion file is
 * never modified in place: each generation is a new file, written whole by
 * tomb_write() through fio_write_file_atomic().
 */
#include "tombstone.h"

#include <assert.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "fio.h"
#include "le.h"
#include "segment.h"
#include "xsum.h"

#define ULL(x) ((unsigned long long)(x))
#define TOMB_FAIL(rc, ...) err_set_at((rc), __FILE__, __LINE__, __VA_ARGS__)

static_assert(TOMB_OFF_HEADER_XXH3 + 8 == TOMB_HEADER_SIZE, "the header checksum ends the header");
static_assert(TOMB_HEADER_SIZE % 16 == 0, "the bitmap starts 16-byte aligned");
static_assert(TOMB_COUNT_MAX == SEG_COUNT_MAX, "a deletion file covers any segment");
static_assert(TOMB_MAGIC == 0x4c45445441525453ull, "\"STRATDEL\" little-endian");

void tomb_file_name(uint64_t seg_seq, uint64_t gen, char *buf, size_t buf_len)
{
	if (buf && buf_len)
		snprintf(buf, buf_len, TOMB_NAME_FMT, ULL(seg_seq), ULL(gen));
}

/* Bits of the last word at or beyond `count`: they must be zero. */
static uint64_t tomb_tail_mask(uint64_t count)
{
	return count % 64 ? ~0ull << (count % 64) : 0;
}

int tomb_encode(uint64_t seg_seq, uint64_t seg_header_xxh3, uint64_t gen, const uint64_t *bits,
                uint64_t count, uint8_t **buf_out, size_t *len_out)
{
	if (!buf_out || !len_out || (count && !bits))
		return err_set(STRATA_EINVAL, "tomb_encode: null argument");
	if (gen == 0)
		return err_set(STRATA_EINVAL, "tomb_encode: generation 0 means \"no deletion file\"");
	if (count > TOMB_COUNT_MAX)
		return err_set(STRATA_ELIMIT, "tomb_encode: %llu nodes, a segment holds at most %llu",
		               ULL(count), ULL(TOMB_COUNT_MAX));
	uint64_t words = tomb_words(count);
	if (words && (bits[words - 1] & tomb_tail_mask(count)))
		return err_set(STRATA_EINVAL, "tomb_encode: a bit at or beyond node count %llu is set",
		               ULL(count));
	size_t len = (size_t)tomb_file_size(count);
	uint8_t *b = calloc(1, len);
	if (!b)
		return err_set(STRATA_ENOMEM, "deletion file of %zu bytes", len);
	uint64_t deleted = 0;
	for (uint64_t w = 0; w < words; w++) {
		le_store64(b + TOMB_HEADER_SIZE + 8 * w, bits[w]);
		deleted += (uint64_t)__builtin_popcountll(bits[w]);
	}
	le_store64(b + TOMB_OFF_MAGIC, TOMB_MAGIC);
	le_store32(b + TOMB_OFF_VERSION, TOMB_VERSION);
	le_store32(b + TOMB_OFF_HEADER_SIZE, TOMB_HEADER_SIZE);
	le_store64(b + TOMB_OFF_SEG_SEQ, seg_seq);
	le_store64(b + TOMB_OFF_SEG_HEADER_XXH3, seg_header_xxh3);
	le_store64(b + TOMB_OFF_COUNT, count);
	le_store64(b + TOMB_OFF_DELETED, deleted);
	le_store64(b + TOMB_OFF_GEN, gen);
	/* flags and reserved stay zero (calloc) */
	le_store64(b + TOMB_OFF_BODY_XXH3, xsum64(b + TOMB_HEADER_SIZE, len - TOMB_HEADER_SIZE));
	le_store64(b + TOMB_OFF_HEADER_XXH3, xsum64(b, TOMB_OFF_HEADER_XXH3));
	*buf_out = b;
	*len_out = len;
	return 0;
}

/* Reader obligations 1-6 (FORMAT.md 9.4): the header on its own. */
static int tomb_check_header(const uint8_t *buf, size_t len)
{
	if (len >= 8 && le_load64(buf + TOMB_OFF_MAGIC) != TOMB_MAGIC)
		return TOMB_FAIL(STRATA_ENOTDB, "deletion file: magic 0x%016llx is not \"STRATDEL\"",
		                 ULL(le_load64(buf + TOMB_OFF_MAGIC)));
	if (len < TOMB_HEADER_SIZE)
		return TOMB_FAIL(STRATA_ETRUNCATED,
		                 "deletion file: %zu bytes, shorter than the %u-byte header", len,
		                 TOMB_HEADER_SIZE);
	uint32_t version = le_load32(buf + TOMB_OFF_VERSION);
	if (version != TOMB_VERSION)
		return TOMB_FAIL(STRATA_EVERSION,
		                 "deletion file: version %u (this build reads version %u)", version,
		                 TOMB_VERSION);
	uint32_t header_size = le_load32(buf + TOMB_OFF_HEADER_SIZE);
	if (header_size != TOMB_HEADER_SIZE)
		return ERR_CORRUPT("deletion file: header_size %u is not %u", header_size,
		                   TOMB_HEADER_SIZE);
	uint64_t hx = le_load64(buf + TOMB_OFF_HEADER_XXH3);
	if (!xsum_ok(buf, TOMB_OFF_HEADER_XXH3, hx))
		return TOMB_FAIL(STRATA_ECHECKSUM,
		                 "deletion file: header xxh3 0x%016llx stored, 0x%016llx computed",
		                 ULL(hx), ULL(xsum64(buf, TOMB_OFF_HEADER_XXH3)));
	uint32_t flags = le_load32(buf + TOMB_OFF_FLAGS), reserved = le_load32(buf + TOMB_OFF_RESERVED);
	if (flags != 0 || reserved != 0)
		return ERR_CORRUPT("deletion file: flags 0x%x, reserved 0x%x (both must be 0)", flags,
		                   reserved);
	return 0;
}

/* Obligations 7-8: the file is the one the manifest entry names, for that exact segment. */
static int tomb_check_binding(const uint8_t *buf, uint64_t seg_seq, uint64_t seg_header_xxh3,
                              uint64_t gen, uint64_t count)
{
	uint64_t v;
	if ((v = le_load64(buf + TOMB_OFF_SEG_SEQ)) != seg_seq)
		return ERR_CORRUPT("deletion file: of segment seq %llu, expected %llu", ULL(v),
		                   ULL(seg_seq));
	if ((v = le_load64(buf + TOMB_OFF_SEG_HEADER_XXH3)) != seg_header_xxh3)
		return ERR_CORRUPT("deletion file: bound to segment header xxh3 0x%016llx, the segment's "
		                   "is 0x%016llx (another file of seq %llu)",
		                   ULL(v), ULL(seg_header_xxh3), ULL(seg_seq));
	if ((v = le_load64(buf + TOMB_OFF_GEN)) != gen)
		return ERR_CORRUPT("deletion file: generation %llu, expected %llu", ULL(v), ULL(gen));
	if ((v = le_load64(buf + TOMB_OFF_COUNT)) != count)
		return ERR_CORRUPT("deletion file: node count %llu, the segment has %llu", ULL(v),
		                   ULL(count));
	if ((v = le_load64(buf + TOMB_OFF_DELETED)) > count)
		return ERR_CORRUPT("deletion file: deleted count %llu is above the node count %llu",
		                   ULL(v), ULL(count));
	return 0;
}

int tomb_decode(const uint8_t *buf, size_t len, uint64_t seg_seq, uint64_t seg_header_xxh3,
                uint64_t gen, uint64_t count, uint64_t **bits_out, uint64_t *deleted_out)
{
	if ((!buf && len) || !bits_out || !deleted_out)
		return err_set(STRATA_EINVAL, "tomb_decode: null argument");
	if (gen == 0)
		return err_set(STRATA_EINVAL, "tomb_decode: generation 0 has no deletion file");
	if (count > TOMB_COUNT_MAX)
		return err_set(STRATA_EINVAL, "tomb_decode: %llu nodes expected, above %llu", ULL(count),
		               ULL(TOMB_COUNT_MAX));
	if (!buf)
		return TOMB_FAIL(STRATA_ETRUNCATED, "deletion file: 0 bytes, shorter than the %u-byte "
		                 "header", TOMB_HEADER_SIZE);
	int rc = tomb_check_header(buf, len);
	if (rc || (rc = tomb_check_binding(buf, seg_seq, seg_header_xxh3, gen, count)))
		return rc;

	/* count is the caller's and <= TOMB_COUNT_MAX: want fits in 64 bits and in memory. */
	uint64_t words = tomb_words(count), want = tomb_file_size(count);
	if (len != want)
		return TOMB_FAIL(len < want ? STRATA_ETRUNCATED : STRATA_ECORRUPT,
		                 "deletion file: %zu bytes, but %llu nodes make %llu", len, ULL(count),
		                 ULL(want));
	const uint8_t *body = buf + TOMB_HEADER_SIZE;
	uint64_t bx = le_load64(buf + TOMB_OFF_BODY_XXH3);
	if (!xsum_ok(body, len - TOMB_HEADER_SIZE, bx))
		return TOMB_FAIL(STRATA_ECHECKSUM,
		                 "deletion file: bitmap xxh3 0x%016llx stored, 0x%016llx computed",
		                 ULL(bx), ULL(xsum64(body, len - TOMB_HEADER_SIZE)));
	if (words && (le_load64(body + 8 * (words - 1)) & tomb_tail_mask(count)))
		return ERR_CORRUPT("deletion file: a bit at or beyond node count %llu is set",
		                   ULL(count));

	uint64_t *bits = malloc((size_t)(words ? words : 1) * sizeof *bits);
	if (!bits)
		return err_set(STRATA_ENOMEM, "deletion bitmap of %llu words", ULL(words));
	bits[0] = 0;
	uint64_t deleted = 0;
	for (uint64_t w = 0; w < words; w++) {
		bits[w] = le_load64(body + 8 * w);
		deleted += (uint64_t)__builtin_popcountll(bits[w]);
	}
	uint64_t stored = le_load64(buf + TOMB_OFF_DELETED);
	if (deleted != stored) {
		free(bits);
		return ERR_CORRUPT("deletion file: %llu bits set, the header says %llu deleted",
		                   ULL(deleted), ULL(stored));
	}
	*bits_out = bits;
	*deleted_out = deleted;
	return 0;
}

int tomb_write(const char *dir, uint64_t seg_seq, uint64_t seg_header_xxh3, uint64_t gen,
               const uint64_t *bits, uint64_t count)
{
	char name[TOMB_NAME_LEN + 1];
	uint8_t *buf = NULL;
	size_t len = 0;
	if (!dir)
		return err_set(STRATA_EINVAL, "tomb_write: null directory");
	int rc = tomb_encode(seg_seq, seg_header_xxh3, gen, bits, count, &buf, &len);
	if (rc)
		return rc;
	tomb_file_name(seg_seq, gen, name, sizeof name);
	rc = fio_write_file_atomic(dir, name, buf, len);
	free(buf);
	return rc;
}

int tomb_load(const char *dir, uint64_t seg_seq, uint64_t seg_header_xxh3, uint64_t gen,
              uint64_t count, uint64_t **bits_out, uint64_t *deleted_out)
{
	char name[TOMB_NAME_LEN + 1], path[4096];
	uint8_t *buf = NULL;
	size_t len = 0;
	if (!dir || !bits_out || !deleted_out)
		return err_set(STRATA_EINVAL, "tomb_load: null argument");
	if (gen == 0 || count > TOMB_COUNT_MAX)
		return err_set(STRATA_EINVAL, "tomb_load: generation %llu, %llu nodes: no deletion "
		               "file matches", ULL(gen), ULL(count));
	tomb_file_name(seg_seq, gen, name, sizeof name);
	int n = snprintf(path, sizeof path, "%s/%s", dir, name);
	if (n < 0 || (size_t)n >= sizeof path)
		return err_set(STRATA_EINVAL, "%s/%s: path too long", dir, name);
	size_t max = (size_t)tomb_file_size(count);
	int rc = fio_read_file(path, max, &buf, &len);
	if (rc == STRATA_ENOTFOUND)
		return err_set(STRATA_ECORRUPT, "%s: missing, but the manifest names it", path);
	if (rc == STRATA_ELIMIT)
		return err_set(STRATA_ECORRUPT, "%s: larger than the %zu bytes of a deletion file of "
		               "%llu nodes", path, max, ULL(count));
	if (rc)
		return rc;
	rc = tomb_decode(buf, len, seg_seq, seg_header_xxh3, gen, count, bits_out, deleted_out);
	free(buf);
	return rc ? err_prefix(rc, path) : 0;
}
