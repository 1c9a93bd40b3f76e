/*
 * manifest.c - the MANIFEST codec and its atomic replacement (manifest.h;
 * FORMAT.md, "Manifest").
 *
 * Owns the byte layout of the manifest and its validity rule. mf_decode()
 * takes bytes from anywhere: it checks the header and its checksum, and
 * bounds segment_count by MF_SEGMENTS_MAX, before it allocates a thing or
 * reads an entry. It must never write a manifest in place: mf_commit() only
 * replaces it whole (fio_write_file_atomic).
 */
#include "manifest.h"

#include <assert.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "fio.h"
#include "le.h"
#include "wal_record.h"
#include "xsum.h"

#define ULL(x) ((unsigned long long)(x))
#define MF_FAIL(rc, ...) err_set_at((rc), __FILE__, __LINE__, __VA_ARGS__)

/* The largest valid manifest: what mf_load() is willing to read. */
#define MF_FILE_MAX ((size_t)MF_HEADER_SIZE + (size_t)MF_ENTRY_SIZE * MF_SEGMENTS_MAX)

static_assert(MF_OFF_HEADER_XXH3 + 8 == MF_HEADER_SIZE, "the header checksum ends the header");
static_assert(MF_ENT_RESERVED + 16 == MF_ENTRY_SIZE, "the reserved bytes end an entry");
static_assert(MF_OFF_DB_UUID + 16 == MF_OFF_CHECKPOINT_LSN, "the uuid is 16 bytes");

static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Reader obligations 1-6 (FORMAT.md): everything up to the entries. */
static int mf_decode_header(const uint8_t *buf, size_t len, uint32_t *count_out)
{
	if (len >= 8 && le_load64(buf + MF_OFF_MAGIC) != MF_MAGIC)
		return MF_FAIL(STRATA_ENOTDB, "magic 0x%016llx is not \"STRATMAN\"",
		               ULL(le_load64(buf + MF_OFF_MAGIC)));
	if (len < MF_HEADER_SIZE)
		return MF_FAIL(STRATA_ETRUNCATED, "%zu bytes, shorter than the %u-byte header", len,
		               MF_HEADER_SIZE);
	uint32_t version = le_load32(buf + MF_OFF_VERSION);
	if (version < MF_VERSION_MIN || version > MF_VERSION)
		return MF_FAIL(STRATA_EVERSION, "version %u (this build reads versions %u..%u)", version,
		               MF_VERSION_MIN, MF_VERSION);
	uint32_t header_size = le_load32(buf + MF_OFF_HEADER_SIZE);
	if (header_size != MF_HEADER_SIZE)
		return ERR_CORRUPT("header_size %u is not %u", header_size, MF_HEADER_SIZE);
	uint64_t hx = le_load64(buf + MF_OFF_HEADER_XXH3);
	if (!xsum_ok(buf, MF_OFF_HEADER_XXH3, hx))
		return MF_FAIL(STRATA_ECHECKSUM, "header xxh3 0x%016llx stored, 0x%016llx computed",
		               ULL(hx), ULL(xsum64(buf, MF_OFF_HEADER_XXH3)));
	uint32_t count = le_load32(buf + MF_OFF_SEGMENT_COUNT);
	if (count > MF_SEGMENTS_MAX)
		return ERR_CORRUPT("segment_count %u is above %u", count, MF_SEGMENTS_MAX);
	uint64_t want = (uint64_t)MF_HEADER_SIZE + (uint64_t)MF_ENTRY_SIZE * count;
	if (len != want)
		return MF_FAIL(len < want ? STRATA_ETRUNCATED : STRATA_ECORRUPT,
		               "%zu bytes, but %u segments make %llu", len, count, ULL(want));
	uint64_t bx = le_load64(buf + MF_OFF_BODY_XXH3);
	if (!xsum_ok(buf + MF_HEADER_SIZE, len - MF_HEADER_SIZE, bx))
		return MF_FAIL(STRATA_ECHECKSUM, "entries' xxh3 0x%016llx stored, 0x%016llx computed",
		               ULL(bx), ULL(xsum64(buf + MF_HEADER_SIZE, len - MF_HEADER_SIZE)));
	*count_out = count;
	return 0;
}

static int mf_check_params(const struct mf_manifest *m)
{
	if (m->dim < 1 || m->dim > STRATA_DIM_MAX)
		return ERR_CORRUPT("dim %u is outside 1..%u", m->dim, STRATA_DIM_MAX);
	if (m->metric > 2)
		return ERR_CORRUPT("metric %u is not 0 (l2), 1 (ip) or 2 (cosine)", m->metric);
	if (m->M < STRATA_M_MIN || m->M > STRATA_M_MAX)
		return ERR_CORRUPT("M %u is outside %u..%u", m->M, STRATA_M_MIN, STRATA_M_MAX);
	if (m->ef_construction < 1 || m->ef_construction > STRATA_EF_MAX)
		return ERR_CORRUPT("ef_construction %u is outside 1..%u", m->ef_construction,
		                   STRATA_EF_MAX);
	if (m->ef_search < 1 || m->ef_search > STRATA_EF_MAX)
		return ERR_CORRUPT("ef_search %u is outside 1..%u", m->ef_search, STRATA_EF_MAX);
	if (m->checkpoint_lsn > WAL_LSN_MAX)
		return ERR_CORRUPT("checkpoint_lsn %llu is above the largest LSN 2^63-1",
		                   ULL(m->checkpoint_lsn));
	return 0;
}

/* Distinct sequence numbers, checked on a sorted copy (the entries' order is the writer's). */
static int mf_check_seqs(const struct mf_manifest *m)
{
	if (m->segment_count < 2)
		return 0;
	uint64_t *s = malloc((size_t)m->segment_count * sizeof *s);
	if (!s)
		return err_set(STRATA_ENOMEM, "%u sequence numbers", m->segment_count);
	for (uint32_t i = 0; i < m->segment_count; i++)
		s[i] = m->segments[i].seq;
	qsort(s, m->segment_count, sizeof *s, u64_cmp);
	int rc = 0;
	for (uint32_t i = 1; i < m->segment_count && !rc; i++)
		if (s[i] == s[i - 1])
			rc = ERR_CORRUPT("segment seq %llu appears twice", ULL(s[i]));
	free(s);
	return rc;
}

int mf_decode(const uint8_t *buf, size_t len, struct mf_manifest *out)
{
	struct mf_manifest m;
	uint32_t count = 0;
	int rc;

	memset(&m, 0, sizeof m);
	if (!buf && len)
		return err_set(STRATA_EINVAL, "mf_decode: null buffer of %zu bytes", len);
	if (!buf)
		return MF_FAIL(STRATA_ETRUNCATED, "0 bytes, shorter than the %u-byte header",
		               MF_HEADER_SIZE);
	if ((rc = mf_decode_header(buf, len, &count)))
		return rc;

	m.dim = le_load32(buf + MF_OFF_DIM);
	m.metric = le_load32(buf + MF_OFF_METRIC);
	m.M = le_load32(buf + MF_OFF_M);
	m.ef_construction = le_load32(buf + MF_OFF_EF_CONSTRUCTION);
	m.ef_search = le_load32(buf + MF_OFF_EF_SEARCH);
	m.segment_count = count;
	m.generation = le_load64(buf + MF_OFF_GENERATION);
	m.next_seq = le_load64(buf + MF_OFF_NEXT_SEQ);
	memcpy(m.db_uuid, buf + MF_OFF_DB_UUID, sizeof m.db_uuid);
	m.checkpoint_lsn = le_load64(buf + MF_OFF_CHECKPOINT_LSN);
	if ((rc = mf_check_params(&m)))
		return rc;

	/* count <= MF_SEGMENTS_MAX and the length matched: this allocation is bounded. */
	m.segments = calloc(count ? count : 1, sizeof *m.segments);
	if (!m.segments)
		return err_set(STRATA_ENOMEM, "%u manifest entries", count);
	for (uint32_t i = 0; i < count; i++) {
		const uint8_t *e = buf + MF_HEADER_SIZE + (size_t)i * MF_ENTRY_SIZE;
		struct mf_segment *s = &m.segments[i];
		s->seq = le_load64(e + MF_ENT_SEQ);
		s->count = le_load64(e + MF_ENT_COUNT);
		s->file_size = le_load64(e + MF_ENT_FILE_SIZE);
		s->header_xxh3 = le_load64(e + MF_ENT_HEADER_XXH3);
		s->tomb_gen = le_load64(e + MF_ENT_TOMB_GEN);
		s->level = le_load32(e + MF_ENT_LEVEL);
		uint32_t flags = le_load32(e + MF_ENT_FLAGS);
		if (flags != 0) {
			rc = ERR_CORRUPT("entry %u (seq %llu): flags 0x%x (v1 defines none)", i, ULL(s->seq),
			                 flags);
			goto fail;
		}
		if (le_load64(e + MF_ENT_RESERVED) != 0 || le_load64(e + MF_ENT_RESERVED + 8) != 0) {
			rc = ERR_CORRUPT("entry %u (seq %llu): reserved bytes are not zero", i, ULL(s->seq));
			goto fail;
		}
		if (s->seq >= m.next_seq) {
			rc = ERR_CORRUPT("entry %u: seq %llu is not below next_seq %llu", i, ULL(s->seq),
			                 ULL(m.next_seq));
			goto fail;
		}
	}
	if ((rc = mf_check_seqs(&m)))
		goto fail;
	*out = m;
	return 0;
fail:
	free(m.segments);
	return rc;
}

int mf_encode(const struct mf_manifest *mf, uint8_t **buf_out, size_t *len_out)
{
	if (!mf || (mf->segment_count && !mf->segments))
		return err_set(STRATA_EINVAL, "mf_encode: null argument");
	/* Never write what mf_decode() would refuse to read back. */
	if (mf->segment_count > MF_SEGMENTS_MAX)
		return err_set(STRATA_ELIMIT, "%u segments: a manifest holds at most %u",
		               mf->segment_count, MF_SEGMENTS_MAX);
	if (mf->checkpoint_lsn > WAL_LSN_MAX)
		return err_set(STRATA_ELIMIT, "checkpoint_lsn %llu: LSNs end at 2^63-1",
		               ULL(mf->checkpoint_lsn));
	size_t len = MF_HEADER_SIZE + (size_t)MF_ENTRY_SIZE * mf->segment_count;
	uint8_t *b = calloc(1, len);
	if (!b)
		return err_set(STRATA_ENOMEM, "manifest of %zu bytes", len);
	for (uint32_t i = 0; i < mf->segment_count; i++) {
		uint8_t *e = b + MF_HEADER_SIZE + (size_t)i * MF_ENTRY_SIZE;
		const struct mf_segment *s = &mf->segments[i];
		le_store64(e + MF_ENT_SEQ, s->seq);
		le_store64(e + MF_ENT_COUNT, s->count);
		le_store64(e + MF_ENT_FILE_SIZE, s->file_size);
		le_store64(e + MF_ENT_HEADER_XXH3, s->header_xxh3);
		le_store64(e + MF_ENT_TOMB_GEN, s->tomb_gen);
		le_store32(e + MF_ENT_LEVEL, s->level);
		/* flags and reserved stay zero (calloc) */
	}
	le_store64(b + MF_OFF_MAGIC, MF_MAGIC);
	le_store32(b + MF_OFF_VERSION, MF_VERSION);
	le_store32(b + MF_OFF_HEADER_SIZE, MF_HEADER_SIZE);
	le_store32(b + MF_OFF_DIM, mf->dim);
	le_store32(b + MF_OFF_METRIC, mf->metric);
	le_store32(b + MF_OFF_M, mf->M);
	le_store32(b + MF_OFF_EF_CONSTRUCTION, mf->ef_construction);
	le_store32(b + MF_OFF_EF_SEARCH, mf->ef_search);
	le_store32(b + MF_OFF_SEGMENT_COUNT, mf->segment_count);
	le_store64(b + MF_OFF_GENERATION, mf->generation);
	le_store64(b + MF_OFF_NEXT_SEQ, mf->next_seq);
	memcpy(b + MF_OFF_DB_UUID, mf->db_uuid, sizeof mf->db_uuid);
	le_store64(b + MF_OFF_CHECKPOINT_LSN, mf->checkpoint_lsn);
	le_store64(b + MF_OFF_BODY_XXH3, xsum64(b + MF_HEADER_SIZE, len - MF_HEADER_SIZE));
	le_store64(b + MF_OFF_HEADER_XXH3, xsum64(b, MF_OFF_HEADER_XXH3));
	*buf_out = b;
	*len_out = len;
	return 0;
}

int mf_commit(const char *dir, const struct mf_manifest *mf)
{
	uint8_t *buf;
	size_t len;
	if (!dir)
		return err_set(STRATA_EINVAL, "mf_commit: null directory");
	int rc = mf_encode(mf, &buf, &len);
	if (rc)
		return rc;
	rc = fio_write_file_atomic(dir, MF_FILE_NAME, buf, len);
	free(buf);
	return rc;
}

int mf_load(const char *dir, struct mf_manifest *out)
{
	char path[4096];
	uint8_t *buf;
	size_t len;
	if (!dir || !out)
		return err_set(STRATA_EINVAL, "mf_load: null argument");
	int n = snprintf(path, sizeof path, "%s/%s", dir, MF_FILE_NAME);
	if (n < 0 || (size_t)n >= sizeof path)
		return err_set(STRATA_EINVAL, "%s/%s: path too long", dir, MF_FILE_NAME);
	int rc = fio_read_file(path, MF_FILE_MAX, &buf, &len);
	if (rc == STRATA_ELIMIT)
		return err_set(STRATA_ECORRUPT, "%s: larger than the largest valid manifest (%zu bytes)",
		               path, MF_FILE_MAX);
	if (rc)
		return rc;
	rc = mf_decode(buf, len, out);
	free(buf);
	return rc;
}

void mf_free(struct mf_manifest *mf)
{
	if (!mf)
		return;
	free(mf->segments);
	mf->segments = NULL;
	mf->segment_count = 0;
}

void mf_segment_name(uint64_t seq, char *buf, size_t buf_len)
{
	if (buf && buf_len)
		snprintf(buf, buf_len, MF_SEGMENT_NAME_FMT, ULL(seq));
}
