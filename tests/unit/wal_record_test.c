/*
 * wal_record_test.c - the WAL codec (format/wal_record.c, FORMAT.md 10):
 * file header and record round trips, every malformed field refused, records
 * at every padding boundary and at the size limit, truncations (need more,
 * never a crash), and the payload views.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "le.h"
#include "strata.h"
#include "t_support.h"
#include "wal_record.h"
#include "xsum.h"

static const uint8_t UUID[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

/* Encode one record from iovecs into a malloc'd, 8-aligned buffer. */
static uint8_t *enc(unsigned type, uint64_t lsn, const struct iovec *iov, int iovcnt, size_t *len)
{
	return t_wal_record(type, lsn, iov, iovcnt, len);
}

/* Rewrite a record's trailer after editing it, so a field check is reached. */
static void reseal(uint8_t *b, size_t len)
{
	le_store64(b + len - 8, xsum64(b, len - 8));
}

Test(wal_record, file_header_round_trip)
{
	struct walrec_file_header h = {.first_lsn = 0x123456789abcull, .dim = 768}, g;
	memcpy(h.db_uuid, UUID, 16);
	uint8_t b[WAL_FILE_HEADER_SIZE];
	walrec_file_header_encode(&h, b);
	cr_assert_eq(le_load64(b), WAL_MAGIC);
	cr_assert_eq(memcmp(b, "STRATWAL", 8), 0);
	cr_assert_eq(walrec_file_header_decode(b, sizeof b, &g), 0, "%s", err_detail());
	cr_assert_eq(g.first_lsn, h.first_lsn);
	cr_assert_eq(g.dim, 768);
	cr_assert_eq(memcmp(g.db_uuid, UUID, 16), 0);
	/* Longer buffers are fine: records follow. */
	uint8_t big[100] = {0};
	memcpy(big, b, sizeof b);
	cr_assert_eq(walrec_file_header_decode(big, sizeof big, &g), 0);
}

Test(wal_record, file_header_every_field_refused)
{
	struct walrec_file_header h = {.first_lsn = 7, .dim = 3}, g;
	memcpy(h.db_uuid, UUID, 16);
	uint8_t good[WAL_FILE_HEADER_SIZE], b[WAL_FILE_HEADER_SIZE];
	walrec_file_header_encode(&h, good);
	/* Every truncation. */
	for (size_t n = 0; n < sizeof good; n++) {
		int rc = walrec_file_header_decode(good, n, &g);
		cr_assert_eq(rc, STRATA_ETRUNCATED, "len %zu: %d", n, rc);
	}
	/* Every single-bit flip of bytes 0..63 is refused. */
	for (size_t i = 0; i < sizeof good; i++)
		for (int bit = 0; bit < 8; bit++) {
			memcpy(b, good, sizeof b);
			b[i] ^= (uint8_t)(1u << bit);
			int rc = walrec_file_header_decode(b, sizeof b, &g);
			cr_assert(STRATA_IS_DATA_ERROR(rc), "byte %zu bit %d accepted", i, bit);
		}
	/* Each field behind a recomputed checksum. */
	struct {
		size_t off;
		int width;
		uint64_t v;
		int want;
	} cases[] = {
		{WAL_OFF_MAGIC, 8, 0x4c41575441525454ull, STRATA_ENOTDB},
		{WAL_OFF_VERSION, 4, 2, STRATA_EVERSION},
		{WAL_OFF_HEADER_SIZE, 4, 128, STRATA_ECORRUPT},
		{WAL_OFF_FIRST_LSN, 8, 0, STRATA_ECORRUPT},
		{WAL_OFF_DIM, 4, 0, STRATA_ECORRUPT},
		{WAL_OFF_DIM, 4, STRATA_DIM_MAX + 1, STRATA_ECORRUPT},
		{WAL_OFF_FLAGS, 4, 1, STRATA_ECORRUPT},
		{WAL_OFF_RESERVED, 8, 1ull << 60, STRATA_ECORRUPT},
	};
	for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
		memcpy(b, good, sizeof b);
		if (cases[k].width == 8)
			le_store64(b + cases[k].off, cases[k].v);
		else
			le_store32(b + cases[k].off, (uint32_t)cases[k].v);
		le_store64(b + WAL_OFF_HEADER_XXH3, xsum64(b, WAL_OFF_HEADER_XXH3));
		err_clear();
		int rc = walrec_file_header_decode(b, sizeof b, &g);
		cr_assert_eq(rc, cases[k].want, "case %zu: %d (%s)", k, rc, err_detail());
		cr_assert_neq(err_detail()[0], '\0');
	}
	/* The largest dim is fine. */
	memcpy(b, good, sizeof b);
	le_store32(b + WAL_OFF_DIM, STRATA_DIM_MAX);
	le_store64(b + WAL_OFF_HEADER_XXH3, xsum64(b, WAL_OFF_HEADER_XXH3));
	cr_assert_eq(walrec_file_header_decode(b, sizeof b, &g), 0);
}

Test(wal_record, file_names)
{
	char name[WAL_FILE_NAME_LEN + 1];
	walrec_file_name(0xabcdef0123ull, name, sizeof name);
	cr_assert_str_eq(name, "wal-000000abcdef0123.log");
	uint64_t v;
	cr_assert_eq(walrec_file_name_parse(name, &v), 0);
	cr_assert_eq(v, 0xabcdef0123ull);
	const char *bad[] = {"wal-000000ABCDEF0123.log", "wal-000000abcdef012.log",
	                     "wal-000000abcdef01234.log", "wal-000000abcdef0123.lo",
	                     "wal-000000abcdef0123.log.tmp", "xal-000000abcdef0123.log",
	                     "wal-00000 abcdef0123.log", ""};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		cr_assert_eq(walrec_file_name_parse(bad[i], &v), -1, "%s", bad[i]);
}

/* Records of every payload length 0..64 (every padding), round trip and every truncation. */
Test(wal_record, round_trip_every_padding_and_truncation)
{
	uint8_t payload[64];
	for (size_t i = 0; i < sizeof payload; i++)
		payload[i] = (uint8_t)(i * 7 + 1);
	for (size_t plen = 0; plen <= sizeof payload; plen++) {
		/* Split over up to three iovecs, some empty. */
		struct iovec iov[3] = {{payload, plen / 3}, {payload + plen / 3, 0},
		                       {payload + plen / 3, plen - plen / 3}};
		size_t len;
		uint8_t *b = enc(WAL_REC_DELETE, 1000 + plen, iov, 3, &len);
		cr_assert_eq(len, walrec_total_len(plen));
		cr_assert_eq(len % 8, 0);
		cr_assert(len - plen - WAL_RECORD_MIN < 8);
		struct walrec r;
		cr_assert_eq(walrec_decode(b, len, 0, &r), 0, "plen %zu: %s", plen, err_detail());
		cr_assert_eq(r.total_len, len);
		cr_assert_eq(r.type, WAL_REC_DELETE);
		cr_assert_eq(r.lsn, 1000 + plen);
		cr_assert_eq(r.payload, b + WAL_RECORD_HEADER_SIZE);
		cr_assert_eq(r.payload_len, len - WAL_RECORD_MIN);
		cr_assert_eq(memcmp(r.payload, payload, plen), 0);
		for (size_t i = plen; i < r.payload_len; i++)
			cr_assert_eq(r.payload[i], 0, "padding");
		for (size_t cut = 0; cut < len; cut++) {
			int rc = walrec_decode(b, cut, 0, &r);
			cr_assert_eq(rc, WALREC_MORE, "plen %zu cut %zu: %d", plen, cut, rc);
			cr_assert_eq(r.total_len, cut < WAL_RECORD_HEADER_SIZE ? 0 : len);
		}
		/* At an offset inside a bigger buffer, and past its end. */
		uint8_t *big = calloc(1, len + 16);
		memcpy(big + 8, b, len);
		cr_assert_eq(walrec_decode(big, len + 16, 8, &r), 0);
		cr_assert_eq(r.payload, big + 8 + WAL_RECORD_HEADER_SIZE);
		cr_assert_eq(walrec_decode(big, len + 16, len + 20, &r), WALREC_MORE);
		free(big);
		free(b);
	}
}

Test(wal_record, every_bit_flip_refused)
{
	uint8_t payload[24];
	memset(payload, 0x5a, sizeof payload);
	struct iovec iov = {payload, 20}; /* 4 bytes of padding */
	size_t len;
	uint8_t *b = enc(WAL_REC_UPSERT, 42, &iov, 1, &len);
	for (size_t i = 0; i < len; i++)
		for (int bit = 0; bit < 8; bit++) {
			b[i] ^= (uint8_t)(1u << bit);
			struct walrec r;
			int rc = walrec_decode(b, len, 0, &r);
			/* A flip in total_len may make the record look longer: a prefix, never valid. */
			cr_assert(rc == STRATA_ECORRUPT || rc == STRATA_ECHECKSUM || rc == WALREC_MORE,
			          "byte %zu bit %d: %d", i, bit, rc);
			if (rc == WALREC_MORE)
				cr_assert(i < 4, "byte %zu", i);
			b[i] ^= (uint8_t)(1u << bit);
		}
	free(b);
}

Test(wal_record, header_fields_refused_behind_valid_checksum)
{
	uint8_t payload[16] = {0};
	struct iovec iov = {payload, sizeof payload};
	size_t len;
	uint8_t *good = enc(WAL_REC_DELETE, 9, &iov, 1, &len);
	uint8_t *b = malloc(len);
	struct walrec r;
	struct {
		size_t off;
		int width;
		uint64_t v;
	} cases[] = {
		{WALREC_OFF_TOTAL_LEN, 4, 0},  {WALREC_OFF_TOTAL_LEN, 4, 16},
		{WALREC_OFF_TOTAL_LEN, 4, 41}, {WALREC_OFF_TOTAL_LEN, 4, WAL_RECORD_MAX + 8},
		{WALREC_OFF_TOTAL_LEN, 4, UINT32_MAX - 7},
		{WALREC_OFF_TYPE, 1, 0},       {WALREC_OFF_TYPE, 1, 3},
		{WALREC_OFF_TYPE, 1, 255},     {WALREC_OFF_FLAGS, 1, 1},
		{WALREC_OFF_RESERVED, 1, 1},   {WALREC_OFF_RESERVED + 1, 1, 0x80},
		{WALREC_OFF_LSN, 8, 0},
	};
	for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
		memcpy(b, good, len);
		if (cases[k].width == 8)
			le_store64(b + cases[k].off, cases[k].v);
		else if (cases[k].width == 4)
			le_store32(b + cases[k].off, (uint32_t)cases[k].v);
		else
			b[cases[k].off] = (uint8_t)cases[k].v;
		reseal(b, len);
		err_clear();
		int rc = walrec_decode(b, len, 0, &r);
		cr_assert_eq(rc, STRATA_ECORRUPT, "case %zu: %d", k, rc);
		cr_assert_neq(err_detail()[0], '\0');
	}
	/* A stored checksum that does not match. */
	memcpy(b, good, len);
	b[len - 1] ^= 1;
	cr_assert_eq(walrec_decode(b, len, 0, &r), STRATA_ECHECKSUM);
	free(b);
	free(good);
}

Test(wal_record, encode_refuses_bad_arguments)
{
	uint8_t hdr[WAL_RECORD_HEADER_SIZE], tail[WAL_RECORD_TAIL_MAX];
	size_t tl = 77;
	uint32_t total = 77;
	uint8_t x[8] = {0};
	struct iovec iov = {x, 8};
	cr_assert_eq(walrec_encode(0, 1, &iov, 1, hdr, tail, &tl, &total), STRATA_EINVAL);
	cr_assert_eq(walrec_encode(3, 1, &iov, 1, hdr, tail, &tl, &total), STRATA_EINVAL);
	cr_assert_eq(walrec_encode(1, 0, &iov, 1, hdr, tail, &tl, &total), STRATA_EINVAL);
	cr_assert_eq(walrec_encode(1, 1, NULL, 1, hdr, tail, &tl, &total), STRATA_EINVAL);
	cr_assert_eq(walrec_encode(1, 1, &iov, -1, hdr, tail, &tl, &total), STRATA_EINVAL);
	struct iovec nul = {NULL, 8};
	cr_assert_eq(walrec_encode(1, 1, &nul, 1, hdr, tail, &tl, &total), STRATA_EINVAL);
	cr_assert_eq(tl, 77);
	cr_assert_eq(total, 77);
	/* An empty payload frames fine (the payload check refuses it later). */
	cr_assert_eq(walrec_encode(1, 1, NULL, 0, hdr, tail, &tl, &total), 0);
	cr_assert_eq(total, WAL_RECORD_MIN);
	cr_assert_eq(tl, 8);
}

/* The size limit: exactly WAL_RECORD_MAX encodes and decodes, one word more does not. */
Test(wal_record, size_limit_boundary)
{
	size_t plen = WAL_RECORD_MAX - WAL_RECORD_MIN;
	uint8_t *payload = calloc(1, plen + 8);
	cr_assert(payload);
	uint8_t hdr[WAL_RECORD_HEADER_SIZE], tail[WAL_RECORD_TAIL_MAX];
	size_t tl;
	uint32_t total;
	struct iovec iov = {payload, plen};
	cr_assert_eq(walrec_encode(WAL_REC_DELETE, 5, &iov, 1, hdr, tail, &tl, &total), 0);
	cr_assert_eq(total, WAL_RECORD_MAX);
	iov.iov_len = plen + 1;
	cr_assert_eq(walrec_encode(WAL_REC_DELETE, 5, &iov, 1, hdr, tail, &tl, &total), STRATA_ELIMIT);
	/* Many iovecs adding up past the limit (and a huge one) are refused without overflow. */
	struct iovec two[3] = {{payload, plen}, {payload, plen}, {payload, SIZE_MAX}};
	cr_assert_eq(walrec_encode(WAL_REC_DELETE, 5, two, 3, hdr, tail, &tl, &total), STRATA_ELIMIT);
	free(payload);

	/* Decode one of exactly WAL_RECORD_MAX bytes. */
	uint8_t *b = calloc(1, WAL_RECORD_MAX);
	cr_assert(b);
	le_store32(b, WAL_RECORD_MAX);
	b[WALREC_OFF_TYPE] = WAL_REC_DELETE;
	le_store64(b + WALREC_OFF_LSN, 3);
	reseal(b, WAL_RECORD_MAX);
	struct walrec r;
	cr_assert_eq(walrec_decode(b, WAL_RECORD_MAX, 0, &r), 0);
	cr_assert_eq(r.payload_len, WAL_RECORD_MAX - WAL_RECORD_MIN);
	free(b);

	/* The rows per record helpers sit exactly at the limit. */
	uint32_t dims[] = {1, 3, 128, 960, STRATA_DIM_MAX};
	for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++) {
		uint32_t m = walrec_upsert_max_n(dims[i]);
		cr_assert(m >= 1);
		cr_assert(walrec_total_len(walrec_upsert_payload_len(m, dims[i])) <= WAL_RECORD_MAX);
		cr_assert(walrec_total_len(walrec_upsert_payload_len(m + 1ull, dims[i])) > WAL_RECORD_MAX);
	}
	uint32_t d = walrec_delete_max_n();
	cr_assert(walrec_total_len(walrec_delete_payload_len(d)) <= WAL_RECORD_MAX);
	cr_assert(walrec_total_len(walrec_delete_payload_len(d + 1ull)) > WAL_RECORD_MAX);
}

Test(wal_record, upsert_and_delete_views)
{
	for (uint32_t dim = 1; dim <= 5; dim++)
		for (uint32_t n = 0; n <= 5; n++) {
			uint8_t pre[8];
			uint64_t ids[5];
			float vec[25];
			for (uint32_t i = 0; i < n; i++)
				ids[i] = 1000u * dim + i;
			for (uint32_t i = 0; i < n * dim; i++)
				vec[i] = (float)i * 0.5f - 3.0f;
			walrec_upsert_prefix(n, dim, pre);
			struct iovec iov[3] = {{pre, 8}, {ids, n * 8u}, {vec, n * dim * 4u}};
			size_t len;
			uint8_t *b = enc(WAL_REC_UPSERT, 1, iov, 3, &len);
			struct walrec r;
			cr_assert_eq(walrec_decode(b, len, 0, &r), 0);
			cr_assert_eq(walrec_payload_check(r.type, r.payload, r.payload_len), 0, "%s",
			             err_detail());
			uint32_t gn;
			const uint64_t *gi;
			const float *gv;
			cr_assert_eq(walrec_upsert_view(r.payload, r.payload_len, dim, &gn, &gi, &gv), 0,
			             "dim %u n %u: %s", dim, n, err_detail());
			cr_assert_eq(gn, n);
			cr_assert_eq(memcmp(gi, ids, n * 8u), 0);
			cr_assert_eq(memcmp(gv, vec, n * dim * 4u), 0);
			cr_assert_eq((uintptr_t)gi % 8, 0);
			/* Another dim is refused; a delete view of an upsert too. */
			cr_assert_eq(walrec_upsert_view(r.payload, r.payload_len, dim + 1, &gn, &gi, &gv),
			             STRATA_ECORRUPT);
			cr_assert_eq(walrec_delete_view(r.payload, r.payload_len, &gn, &gi), STRATA_ECORRUPT);
			free(b);

			walrec_delete_prefix(n, pre);
			struct iovec dv[2] = {{pre, 8}, {ids, n * 8u}};
			b = enc(WAL_REC_DELETE, 2, dv, 2, &len);
			cr_assert_eq(walrec_decode(b, len, 0, &r), 0);
			cr_assert_eq(walrec_delete_view(r.payload, r.payload_len, &gn, &gi), 0);
			cr_assert_eq(gn, n);
			cr_assert_eq(memcmp(gi, ids, n * 8u), 0);
			free(b);
		}
}

Test(wal_record, payload_inconsistencies_refused)
{
	uint64_t words[8] = {0};
	uint8_t *p = (uint8_t *)words;
	uint32_t n;
	const uint64_t *ids;
	const float *vecs;
	/* Shorter than the prefix. */
	for (size_t len = 0; len < 8; len++) {
		cr_assert_eq(walrec_upsert_view(p, len, 1, &n, &ids, &vecs), STRATA_ECORRUPT);
		cr_assert_eq(walrec_delete_view(p, len, &n, &ids), STRATA_ECORRUPT);
	}
	/* upsert n=1 dim=1: 8 + 8 + 4 = 20 bytes, so 20..27 are valid lengths (padding < 8). */
	walrec_upsert_prefix(1, 1, p);
	for (size_t len = 8; len <= 64; len++) {
		int rc = walrec_upsert_view(p, len, 1, &n, &ids, &vecs);
		cr_assert_eq(rc, len >= 20 && len < 28 ? 0 : STRATA_ECORRUPT, "len %zu", len);
	}
	/* Non-zero padding. */
	p[21] = 1;
	cr_assert_eq(walrec_upsert_view(p, 24, 1, &n, &ids, &vecs), STRATA_ECORRUPT);
	p[21] = 0;
	/* dim 0 and dim above the maximum. */
	walrec_upsert_prefix(0, 0, p);
	cr_assert_eq(walrec_payload_check(WAL_REC_UPSERT, p, 8), STRATA_ECORRUPT);
	walrec_upsert_prefix(0, STRATA_DIM_MAX + 1, p);
	cr_assert_eq(walrec_payload_check(WAL_REC_UPSERT, p, 8), STRATA_ECORRUPT);
	/* A count whose size overflows 32 bits must not wrap into a match. */
	walrec_upsert_prefix(UINT32_MAX, STRATA_DIM_MAX, p);
	cr_assert_eq(walrec_payload_check(WAL_REC_UPSERT, p, 64), STRATA_ECORRUPT);
	walrec_delete_prefix(UINT32_MAX, p);
	cr_assert_eq(walrec_payload_check(WAL_REC_DELETE, p, 64), STRATA_ECORRUPT);
	/* delete: reserved word non-zero. */
	walrec_delete_prefix(1, p);
	le_store32(p + 4, 9);
	cr_assert_eq(walrec_delete_view(p, 16, &n, &ids), STRATA_ECORRUPT);
	le_store32(p + 4, 0);
	cr_assert_eq(walrec_delete_view(p, 16, &n, &ids), 0);
	cr_assert_eq(walrec_delete_view(p, 24, &n, &ids), STRATA_ECORRUPT, "8 bytes too many");
	/* Unknown type. */
	cr_assert_eq(walrec_payload_check(7, p, 16), STRATA_ECORRUPT);
}

/*
 * The database's value rules hold in the log too (FORMAT.md 10.4): strata_upsert
 * and strata_delete never log the reserved id or a non-finite component, so a
 * record that does is corrupt, wherever in the payload the value sits. Found by
 * fuzz_wal_nock: a replayed upsert of id 2^64-1 came back from searches as an
 * empty slot (tests/fuzz-regress/wal/upsert-of-id-2p64-1-no-id-reserved.log).
 */
Test(wal_record, reserved_id_and_non_finite_components_refused)
{
	enum { N = 3, DIM = 4 };
	uint8_t p[8 + N * 8 + N * DIM * 4];
	uint32_t n;
	const uint64_t *ids;
	const float *vecs;
	const uint32_t bad_bits[] = {0x7f800000u, 0xff800000u, 0x7fc00000u, 0x7f800001u, 0xffffffffu};
	for (uint32_t at = 0; at < N; at++) {
		walrec_upsert_prefix(N, DIM, p);
		for (uint32_t i = 0; i < N; i++)
			le_store64(p + 8 + 8 * i, i == at ? UINT64_MAX : 10 + i);
		memset(p + 8 + N * 8, 0, N * DIM * 4);
		cr_assert_eq(walrec_upsert_view(p, sizeof p, DIM, &n, &ids, &vecs), STRATA_ECORRUPT,
		             "upsert with the reserved id at %u", at);
		cr_assert(strstr(err_detail(), "2^64-1"), "%s", err_detail());

		walrec_delete_prefix(N, p);
		cr_assert_eq(walrec_delete_view(p, 8 + N * 8, &n, &ids), STRATA_ECORRUPT,
		             "delete of the reserved id at %u", at);
		le_store64(p + 8 + 8 * at, 7);
		cr_assert_eq(walrec_delete_view(p, 8 + N * 8, &n, &ids), 0, "%s", err_detail());
	}
	for (uint32_t c = 0; c < N * DIM; c++)
		for (size_t b = 0; b < sizeof bad_bits / sizeof *bad_bits; b++) {
			walrec_upsert_prefix(N, DIM, p);
			for (uint32_t i = 0; i < N; i++)
				le_store64(p + 8 + 8 * i, 10 + i);
			memset(p + 8 + N * 8, 0, N * DIM * 4);
			le_store32(p + 8 + N * 8 + 4 * c, bad_bits[b]);
			cr_assert_eq(walrec_upsert_view(p, sizeof p, DIM, &n, &ids, &vecs), STRATA_ECORRUPT,
			             "component %u bits 0x%08x", c, bad_bits[b]);
			cr_assert(strstr(err_detail(), "not finite"), "%s", err_detail());
		}
	/* The edges of finite are accepted: the largest, the smallest subnormal, -0. */
	const uint32_t good_bits[] = {0x7f7fffffu, 0xff7fffffu, 0x00000001u, 0x80000000u};
	for (size_t b = 0; b < sizeof good_bits / sizeof *good_bits; b++) {
		walrec_upsert_prefix(N, DIM, p);
		for (uint32_t i = 0; i < N; i++)
			le_store64(p + 8 + 8 * i, 10 + i);
		for (uint32_t c = 0; c < N * DIM; c++)
			le_store32(p + 8 + N * 8 + 4 * c, good_bits[b]);
		cr_assert_eq(walrec_upsert_view(p, sizeof p, DIM, &n, &ids, &vecs), 0, "bits 0x%08x: %s",
		             good_bits[b], err_detail());
	}
}
