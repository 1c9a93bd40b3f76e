/*
 * wal_record.c - the WAL file header and record framing codec (wal_record.h;
 * FORMAT.md section 10 "WAL").
 *
 * Owns the bytes of a WAL file, nothing else: it never does I/O, never
 * decides what a torn tail is, and never trusts a length it read before
 * checking it against the buffer (buffers come from files that may be hostile).
 */
#include "wal_record.h"

#include <assert.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "le.h"
#include "xsum.h"

#define ULL(x) ((unsigned long long)(x))
#define WAL_FAIL(rc, ...) err_set_at((rc), __FILE__, __LINE__, __VA_ARGS__)

static_assert(WAL_OFF_HEADER_XXH3 + 8 == WAL_FILE_HEADER_SIZE, "the checksum ends the file header");
static_assert(WAL_OFF_DB_UUID + 16 == WAL_OFF_FIRST_LSN, "the uuid is 16 bytes");
static_assert(WALREC_OFF_LSN + 8 == WAL_RECORD_HEADER_SIZE, "the lsn ends the record header");
static_assert(WAL_RECORD_MIN == WAL_RECORD_HEADER_SIZE + WAL_RECORD_TRAILER_SIZE, "empty record");
static_assert(WAL_RECORD_MAX % 8 == 0, "the largest record is a whole number of 8-byte words");

void walrec_file_header_encode(const struct walrec_file_header *h, uint8_t out[WAL_FILE_HEADER_SIZE])
{
	memset(out, 0, WAL_FILE_HEADER_SIZE);
	le_store64(out + WAL_OFF_MAGIC, WAL_MAGIC);
	le_store32(out + WAL_OFF_VERSION, WAL_VERSION);
	le_store32(out + WAL_OFF_HEADER_SIZE, WAL_FILE_HEADER_SIZE);
	memcpy(out + WAL_OFF_DB_UUID, h->db_uuid, 16);
	le_store64(out + WAL_OFF_FIRST_LSN, h->first_lsn);
	le_store32(out + WAL_OFF_DIM, h->dim);
	le_store64(out + WAL_OFF_HEADER_XXH3, xsum64(out, WAL_OFF_HEADER_XXH3));
}

int walrec_file_header_decode(const uint8_t *buf, size_t len, struct walrec_file_header *out)
{
	if (len >= 8 && le_load64(buf + WAL_OFF_MAGIC) != WAL_MAGIC)
		return WAL_FAIL(STRATA_ENOTDB, "magic 0x%016llx is not \"STRATWAL\"",
		                ULL(le_load64(buf + WAL_OFF_MAGIC)));
	if (len < WAL_FILE_HEADER_SIZE)
		return WAL_FAIL(STRATA_ETRUNCATED, "%zu bytes, shorter than the %u-byte header", len,
		                WAL_FILE_HEADER_SIZE);
	uint32_t version = le_load32(buf + WAL_OFF_VERSION);
	if (version != WAL_VERSION)
		return WAL_FAIL(STRATA_EVERSION, "version %u (this build reads version %u)", version,
		                WAL_VERSION);
	uint32_t header_size = le_load32(buf + WAL_OFF_HEADER_SIZE);
	if (header_size != WAL_FILE_HEADER_SIZE)
		return ERR_CORRUPT("header_size %u is not %u", header_size, WAL_FILE_HEADER_SIZE);
	uint64_t hx = le_load64(buf + WAL_OFF_HEADER_XXH3);
	if (!xsum_ok(buf, WAL_OFF_HEADER_XXH3, hx))
		return WAL_FAIL(STRATA_ECHECKSUM, "header xxh3 0x%016llx stored, 0x%016llx computed",
		                ULL(hx), ULL(xsum64(buf, WAL_OFF_HEADER_XXH3)));
	uint32_t flags = le_load32(buf + WAL_OFF_FLAGS);
	if (flags != 0)
		return ERR_CORRUPT("header flags 0x%x are not 0", flags);
	if (le_load64(buf + WAL_OFF_RESERVED) != 0)
		return ERR_CORRUPT("header reserved bytes 48..55 are not zero");
	uint64_t first = le_load64(buf + WAL_OFF_FIRST_LSN);
	if (first == 0)
		return ERR_CORRUPT("first_lsn is 0 (LSNs start at 1)");
	if (first > WAL_LSN_MAX)
		return ERR_CORRUPT("first_lsn %llu is above the largest LSN 2^63-1", ULL(first));
	uint32_t dim = le_load32(buf + WAL_OFF_DIM);
	if (dim < 1 || dim > STRATA_DIM_MAX)
		return ERR_CORRUPT("dim %u is outside 1..%u", dim, STRATA_DIM_MAX);
	memcpy(out->db_uuid, buf + WAL_OFF_DB_UUID, 16);
	out->first_lsn = first;
	out->dim = dim;
	return 0;
}

void walrec_file_name(uint64_t first_lsn, char *buf, size_t buf_len)
{
	snprintf(buf, buf_len, WAL_FILE_NAME_FMT, ULL(first_lsn));
}

int walrec_file_name_parse(const char *name, uint64_t *first_lsn_out)
{
	if (strlen(name) != WAL_FILE_NAME_LEN || memcmp(name, "wal-", 4) != 0 ||
	    memcmp(name + 20, ".log", 5) != 0)
		return -1;
	uint64_t v = 0;
	for (int i = 4; i < 20; i++) {
		char c = name[i];
		unsigned d;
		if (c >= '0' && c <= '9')
			d = (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			d = (unsigned)(c - 'a' + 10);
		else
			return -1; /* upper case is another name: the writer never makes it */
		v = v << 4 | d;
	}
	*first_lsn_out = v;
	return 0;
}

uint64_t walrec_total_len(uint64_t payload_len)
{
	return WAL_RECORD_HEADER_SIZE + ((payload_len + 7) & ~(uint64_t)7) + WAL_RECORD_TRAILER_SIZE;
}

static bool walrec_type_ok(unsigned type)
{
	return type == WAL_REC_UPSERT || type == WAL_REC_DELETE;
}

int walrec_encode(unsigned type, uint64_t lsn, const struct iovec *iov, int iovcnt,
                  uint8_t hdr[WAL_RECORD_HEADER_SIZE], uint8_t tail[WAL_RECORD_TAIL_MAX],
                  size_t *tail_len_out, uint32_t *total_len_out)
{
	if (!walrec_type_ok(type))
		return err_set(STRATA_EINVAL, "wal record type %u is not upsert (1) or delete (2)", type);
	if (lsn == 0 || lsn > WAL_LSN_MAX)
		return err_set(STRATA_EINVAL, "wal record lsn %llu is outside 1..2^63-1", ULL(lsn));
	if (iovcnt < 0 || (iovcnt > 0 && !iov))
		return err_set(STRATA_EINVAL, "wal record: %d iovecs", iovcnt);
	uint64_t payload = 0;
	for (int i = 0; i < iovcnt; i++) {
		if (!iov[i].iov_base && iov[i].iov_len)
			return err_set(STRATA_EINVAL, "wal record: iovec %d is null with %zu bytes", i,
			               iov[i].iov_len);
		if (iov[i].iov_len > WAL_RECORD_MAX)
			payload = WAL_RECORD_MAX; /* enough to refuse below, without overflow */
		else
			payload += iov[i].iov_len;
		if (payload > WAL_RECORD_MAX)
			break;
	}
	uint64_t total = walrec_total_len(payload);
	if (payload > WAL_RECORD_MAX || total > WAL_RECORD_MAX)
		return err_set(STRATA_ELIMIT, "wal record of %llu payload bytes is over the %u-byte limit",
		               ULL(payload), WAL_RECORD_MAX);

	uint8_t h[WAL_RECORD_HEADER_SIZE] = {0};
	le_store32(h + WALREC_OFF_TOTAL_LEN, (uint32_t)total);
	h[WALREC_OFF_TYPE] = (uint8_t)type;
	le_store64(h + WALREC_OFF_LSN, lsn);
	size_t pad = (size_t)(total - WAL_RECORD_MIN - payload);
	uint8_t t[WAL_RECORD_TAIL_MAX] = {0};

	struct xsum_state st;
	if (xsum_begin(&st) != 0)
		return err_set(STRATA_ENOMEM, "wal record checksum state");
	xsum_update(&st, h, sizeof h);
	for (int i = 0; i < iovcnt; i++)
		xsum_update(&st, iov[i].iov_base, iov[i].iov_len);
	xsum_update(&st, t, pad);
	le_store64(t + pad, xsum_end(&st));

	memcpy(hdr, h, sizeof h);
	memcpy(tail, t, pad + WAL_RECORD_TRAILER_SIZE);
	*tail_len_out = pad + WAL_RECORD_TRAILER_SIZE;
	*total_len_out = (uint32_t)total;
	return 0;
}

int walrec_decode(const uint8_t *buf, size_t len, size_t off, struct walrec *out)
{
	out->total_len = 0;
	if (off > len || len - off < WAL_RECORD_HEADER_SIZE)
		return WALREC_MORE;
	const uint8_t *r = buf + off;
	uint32_t total = le_load32(r + WALREC_OFF_TOTAL_LEN);
	if (total < WAL_RECORD_MIN || total > WAL_RECORD_MAX || total % 8 != 0)
		return ERR_CORRUPT("record: total_len %u is not a multiple of 8 in %u..%u", total,
		                   WAL_RECORD_MIN, WAL_RECORD_MAX);
	unsigned type = r[WALREC_OFF_TYPE];
	if (!walrec_type_ok(type))
		return ERR_CORRUPT("record: type %u is not upsert (1) or delete (2)", type);
	if (r[WALREC_OFF_FLAGS] != 0 || r[WALREC_OFF_RESERVED] != 0 || r[WALREC_OFF_RESERVED + 1] != 0)
		return ERR_CORRUPT("record: flags or reserved bytes are not zero");
	uint64_t lsn = le_load64(r + WALREC_OFF_LSN);
	if (lsn == 0 || lsn > WAL_LSN_MAX)
		return ERR_CORRUPT("record: lsn %llu is outside 1..2^63-1", ULL(lsn));
	out->total_len = total;
	if (len - off < total)
		return WALREC_MORE;
	size_t body = total - WAL_RECORD_TRAILER_SIZE;
	uint64_t stored = le_load64(r + body);
	if (!xsum_ok(r, body, stored))
		return WAL_FAIL(STRATA_ECHECKSUM,
		                "record (lsn %llu): xxh3 0x%016llx stored, 0x%016llx computed", ULL(lsn),
		                ULL(stored), ULL(xsum64(r, body)));
	out->type = type;
	out->lsn = lsn;
	out->payload = r + WAL_RECORD_HEADER_SIZE;
	out->payload_len = total - WAL_RECORD_MIN;
	return 0;
}

uint64_t walrec_upsert_payload_len(uint64_t n, uint32_t dim)
{
	return WAL_PAYLOAD_PREFIX_SIZE + n * (8 + 4 * (uint64_t)dim);
}

uint64_t walrec_delete_payload_len(uint64_t n)
{
	return WAL_PAYLOAD_PREFIX_SIZE + n * 8;
}

/* The largest payload whose record fits WAL_RECORD_MAX (padding included). */
#define WAL_PAYLOAD_MAX (WAL_RECORD_MAX - WAL_RECORD_MIN)

uint32_t walrec_upsert_max_n(uint32_t dim)
{
	return (uint32_t)((WAL_PAYLOAD_MAX - WAL_PAYLOAD_PREFIX_SIZE) / (8 + 4 * (uint64_t)dim));
}

uint32_t walrec_delete_max_n(void)
{
	return (uint32_t)((WAL_PAYLOAD_MAX - WAL_PAYLOAD_PREFIX_SIZE) / 8);
}

/* `want` bytes of payload in `len`, the rest (< 8) zero. */
static int walrec_exact(const uint8_t *payload, size_t len, uint64_t want, const char *what)
{
	if (want > len || len - want >= 8)
		return ERR_CORRUPT("%s payload: %zu bytes where its counts make %llu (+ under 8 padding)",
		                   what, len, ULL(want));
	for (size_t i = (size_t)want; i < len; i++)
		if (payload[i] != 0)
			return ERR_CORRUPT("%s payload: padding byte %zu is not zero", what, i);
	return 0;
}

/*
 * The database's rules for values (FORMAT.md 10.4), which strata_upsert and
 * strata_delete check before they log: no id is STRATA_NO_ID, every component
 * is finite. A record that breaks them was never written by strata; applied,
 * it would give the database an id no call can name, or a vector no segment
 * may hold. The counts have been checked against the length.
 */
static int walrec_values(const uint8_t *payload, uint32_t n, uint32_t dim, const char *what)
{
	const uint8_t *ids = payload + WAL_PAYLOAD_PREFIX_SIZE;
	for (uint32_t i = 0; i < n; i++)
		if (le_load64(ids + 8 * (size_t)i) == UINT64_MAX)
			return ERR_CORRUPT("%s payload: id %u of %u is 2^64-1 (STRATA_NO_ID, reserved)", what,
			                   i, n);
	const uint8_t *vec = ids + 8 * (size_t)n;
	for (uint64_t c = 0, total = (uint64_t)n * dim; c < total; c++)
		if (!le_f32_finite(vec + 4 * (size_t)c))
			return ERR_CORRUPT("%s payload: row %llu, component %llu is not finite (bits 0x%08x)",
			                   what, ULL(c / dim), ULL(c % dim), le_load32(vec + 4 * (size_t)c));
	return 0;
}

int walrec_payload_check(unsigned type, const uint8_t *payload, size_t len)
{
	if (len < WAL_PAYLOAD_PREFIX_SIZE)
		return ERR_CORRUPT("payload of %zu bytes, shorter than its 8-byte prefix", len);
	uint32_t n = le_load32(payload);
	uint32_t second = le_load32(payload + 4);
	int rc;
	switch (type) {
	case WAL_REC_UPSERT:
		if (second < 1 || second > STRATA_DIM_MAX)
			return ERR_CORRUPT("upsert payload: dim %u is outside 1..%u", second, STRATA_DIM_MAX);
		if ((rc = walrec_exact(payload, len, walrec_upsert_payload_len(n, second), "upsert")))
			return rc;
		return walrec_values(payload, n, second, "upsert");
	case WAL_REC_DELETE:
		if (second != 0)
			return ERR_CORRUPT("delete payload: reserved word is %u, not 0", second);
		if ((rc = walrec_exact(payload, len, walrec_delete_payload_len(n), "delete")))
			return rc;
		return walrec_values(payload, n, 0, "delete");
	default:
		return ERR_CORRUPT("record type %u is not upsert (1) or delete (2)", type);
	}
}

int walrec_upsert_view(const uint8_t *payload, size_t len, uint32_t dim, uint32_t *n,
                       const uint64_t **ids, const float **vecs)
{
	int rc = walrec_payload_check(WAL_REC_UPSERT, payload, len);
	if (rc)
		return rc;
	uint32_t got = le_load32(payload + 4);
	if (got != dim)
		return ERR_CORRUPT("upsert payload: dim %u, the database's is %u", got, dim);
	uint32_t count = le_load32(payload);
	*n = count;
	*ids = (const uint64_t *)(const void *)(payload + WAL_PAYLOAD_PREFIX_SIZE);
	*vecs = (const float *)(const void *)(payload + WAL_PAYLOAD_PREFIX_SIZE + (size_t)count * 8);
	return 0;
}

int walrec_delete_view(const uint8_t *payload, size_t len, uint32_t *n, const uint64_t **ids)
{
	int rc = walrec_payload_check(WAL_REC_DELETE, payload, len);
	if (rc)
		return rc;
	*n = le_load32(payload);
	*ids = (const uint64_t *)(const void *)(payload + WAL_PAYLOAD_PREFIX_SIZE);
	return 0;
}

void walrec_upsert_prefix(uint32_t n, uint32_t dim, uint8_t out[WAL_PAYLOAD_PREFIX_SIZE])
{
	le_store32(out, n);
	le_store32(out + 4, dim);
}

void walrec_delete_prefix(uint32_t n, uint8_t out[WAL_PAYLOAD_PREFIX_SIZE])
{
	le_store32(out, n);
	le_store32(out + 4, 0);
}
