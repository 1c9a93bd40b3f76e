/*
 * fuzz_manifest.c - any byte string given to mf_decode() is refused with a
 * data error and a detail, or decodes; what decodes survives a round trip:
 * mf_encode() of it decodes again to the same manifest, and (checksums on)
 * re-encodes to the very input bytes, since every byte of a v1 manifest is a
 * field or a reserved zero that the decoder checks.
 * With -Dfuzz_no_checksums=true the two stored checksums are accepted as they
 * are, so only they may differ between the input and its re-encoding.
 */
#include "fuzz_helpers.h"
#include "le.h"
#include "manifest.h"

static void fz_same_manifest(const struct mf_manifest *a, const struct mf_manifest *b)
{
	FZ_ASSERT(a->dim == b->dim && a->metric == b->metric && a->M == b->M &&
	              a->ef_construction == b->ef_construction && a->ef_search == b->ef_search,
	          "parameters differ after a round trip");
	FZ_ASSERT(a->generation == b->generation && a->next_seq == b->next_seq &&
	              a->checkpoint_lsn == b->checkpoint_lsn,
	          "generation/next_seq/checkpoint_lsn differ after a round trip");
	FZ_ASSERT(memcmp(a->db_uuid, b->db_uuid, sizeof a->db_uuid) == 0, "uuid differs");
	FZ_ASSERT(a->segment_count == b->segment_count, "segment_count %u became %u",
	          a->segment_count, b->segment_count);
	for (uint32_t i = 0; i < a->segment_count; i++) {
		const struct mf_segment *x = &a->segments[i], *y = &b->segments[i];
		FZ_ASSERT(x->seq == y->seq && x->count == y->count && x->file_size == y->file_size &&
		              x->header_xxh3 == y->header_xxh3 && x->tomb_gen == y->tomb_gen &&
		              x->level == y->level,
		          "entry %u differs after a round trip", i);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mf_manifest a, b;
	err_clear();
	int rc = mf_decode(data, size, &a);
	if (rc) {
		FZ_ASSERT_DATA_ERROR(rc, "mf_decode");
		return 0;
	}
	FZ_ASSERT(a.segment_count <= MF_SEGMENTS_MAX, "segment_count %u", a.segment_count);
	FZ_ASSERT(a.segment_count == 0 || a.segments != NULL, "entries missing");
	for (uint32_t i = 0; i < a.segment_count; i++)
		FZ_ASSERT(a.segments[i].seq < a.next_seq, "entry %u: seq not below next_seq", i);

	uint8_t *enc = NULL;
	size_t len = 0;
	err_clear();
	rc = mf_encode(&a, &enc, &len);
	FZ_ASSERT(rc == 0, "mf_encode of a decoded manifest: %d", rc);
	FZ_ASSERT(len == size, "re-encoded to %zu bytes, the input had %zu", len, size);
#if STRATA_FUZZ_NO_CHECKSUMS
	/* Everything but the two checksums (the input's need not be right here). */
	/* A version-1 input re-encodes as version 2: bytes 8..11 may differ. */
	FZ_ASSERT(memcmp(enc, data, MF_OFF_VERSION) == 0 &&
	              memcmp(enc + MF_OFF_HEADER_SIZE, data + MF_OFF_HEADER_SIZE,
	                     MF_OFF_BODY_XXH3 - MF_OFF_HEADER_SIZE) == 0 &&
	              memcmp(enc + MF_HEADER_SIZE, data + MF_HEADER_SIZE, size - MF_HEADER_SIZE) == 0,
	          "re-encoding changed a field");
#else
	/* A version-1 manifest re-encodes as version 2 (same layout): compare past the version. */
	if (le_load32(data + MF_OFF_VERSION) == MF_VERSION)
		FZ_ASSERT(memcmp(enc, data, size) == 0, "re-encoding changed the bytes");
	else
		FZ_ASSERT(memcmp(enc + MF_HEADER_SIZE, data + MF_HEADER_SIZE, size - MF_HEADER_SIZE) == 0 &&
		                  memcmp(enc + MF_OFF_HEADER_SIZE, data + MF_OFF_HEADER_SIZE,
		                         MF_OFF_BODY_XXH3 - MF_OFF_HEADER_SIZE) == 0,
		          "re-encoding changed a field");
#endif
	err_clear();
	rc = mf_decode(enc, len, &b);
	FZ_ASSERT(rc == 0, "mf_decode of mf_encode's output: %d", rc);
	fz_same_manifest(&a, &b);
	mf_free(&a);
	mf_free(&b);
	free(enc);
	return 0;
}
