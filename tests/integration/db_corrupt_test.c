/*
 * db_corrupt_test.c - hostile bytes at the database level. Whatever is done
 * to a database's files, strata_open / strata_search / strata_get return a
 * code and never crash or read out of bounds (the ASan build of the suite is
 * what turns an out-of-bounds read into a failure here):
 *   - every truncation of the manifest, and of the segment at many lengths;
 *   - every single-byte change of the manifest and of the segment's header
 *     and section table;
 *   - random damage to the graph behind a valid header: open succeeds (it is
 *     O(1) and cannot see it), searches answer or say STRATA_ECORRUPT, and
 *     STRATA_VERIFY refuses the file.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "le.h"
#include "segment.h"
#include "strata.h"
#include "t_support.h"
#include "xsum.h"

#define SEG_NAME "seg-0000000000000001.seg"

struct fixture {
	struct t_dir d;
	char dir[600];
	char seg[700];
	char mf[700];
	struct t_blob seg_bytes;
	struct t_blob mf_bytes;
	float *v;
};

static struct fixture make_db(size_t n, uint32_t dim)
{
	struct fixture f;
	f.d = t_dir_new();
	t_path(&f.d, "db", f.dir, sizeof f.dir);
	snprintf(f.seg, sizeof f.seg, "%s/" SEG_NAME, f.dir);
	snprintf(f.mf, sizeof f.mf, "%s/MANIFEST", f.dir);
	f.v = t_random_vectors(n, dim, 77);
	strata_options o;
	strata_options_default(&o);
	o.dim = dim;
	o.M = 4;
	o.ef_construction = 40;
	o.threads = 1;
	cr_assert_eq(strata_build(f.dir, &o, NULL, f.v, n), 0, "%s", strata_last_error_detail());
	f.seg_bytes = t_read_file(f.seg);
	f.mf_bytes = t_read_file(f.mf);
	return f;
}

static void free_db(struct fixture *f)
{
	free(f->seg_bytes.data);
	free(f->mf_bytes.data);
	free(f->v);
	t_dir_free(&f->d);
}

/* Open, and if that works, search and get; every outcome must be a code. */
static int exercise(const struct fixture *f, unsigned flags, uint32_t dim)
{
	strata_db *db;
	int rc = strata_open(f->dir, NULL, STRATA_READONLY | flags, &db);
	if (rc) {
		cr_assert(rc < 0 && *strata_last_error_detail(), "rc %d without a detail", rc);
		return rc;
	}
	uint64_t ids[10];
	float ds[10], got[64];
	strata_search_options so;
	strata_search_options_default(&so);
	so.ef = 50;
	for (int q = 0; q < 5; q++) {
		int s = strata_search(db, f->v + (size_t)q * 13 * dim, 1, 10, &so, ids, ds);
		cr_assert(s == 0 || s == STRATA_ECORRUPT, "search: %d %s", s, strata_last_error_detail());
	}
	int g = strata_get(db, 3, got);
	cr_assert(g == 0 || g == STRATA_ENOTFOUND || STRATA_IS_DATA_ERROR(g), "get: %d", g);
	strata_close(db);
	return 0;
}

Test(db_corrupt, every_truncation_and_byte_flip_of_the_manifest_is_an_error)
{
	struct fixture f = make_db(60, 4);
	for (size_t len = 0; len < f.mf_bytes.len; len++) {
		t_write_file(f.mf, f.mf_bytes.data, len);
		int rc = exercise(&f, 0, 4);
		cr_assert(STRATA_IS_DATA_ERROR(rc), "manifest cut to %zu bytes: rc %d", len, rc);
	}
	for (size_t i = 0; i < f.mf_bytes.len; i++) {
		f.mf_bytes.data[i] ^= 0x5a;
		t_write_file(f.mf, f.mf_bytes.data, f.mf_bytes.len);
		int rc = exercise(&f, 0, 4);
		cr_assert(STRATA_IS_DATA_ERROR(rc), "manifest byte %zu changed: rc %d", i, rc);
		f.mf_bytes.data[i] ^= 0x5a;
	}
	t_write_file(f.mf, f.mf_bytes.data, f.mf_bytes.len);
	cr_assert_eq(exercise(&f, STRATA_VERIFY, 4), 0);
	free_db(&f);
}

Test(db_corrupt, truncated_segment_and_damaged_header_or_table_are_errors)
{
	struct fixture f = make_db(60, 4);
	size_t len = f.seg_bytes.len;
	for (size_t cut = 0; cut < len; cut += (cut < 256 ? 1 : 37)) {
		t_write_file(f.seg, f.seg_bytes.data, cut);
		int rc = exercise(&f, 0, 4);
		cr_assert(STRATA_IS_DATA_ERROR(rc), "segment cut to %zu bytes: rc %d", cut, rc);
	}
	struct seg_info info;
	cr_assert_eq(seg_check(f.seg_bytes.data, len, &info), 0);
	uint64_t table = le_load64(f.seg_bytes.data + SEG_OFF_TABLE_OFF);
	for (size_t i = 0; i < len; i++) {
		if (i >= SEG_HEADER_SIZE && i < table)
			i = (size_t)table; /* the sections: below */
		f.seg_bytes.data[i] ^= 0x01;
		t_write_file(f.seg, f.seg_bytes.data, len);
		int rc = exercise(&f, 0, 4);
		cr_assert(STRATA_IS_DATA_ERROR(rc), "segment byte %zu changed: rc %d", i, rc);
		f.seg_bytes.data[i] ^= 0x01;
	}
	free_db(&f);
}

/*
 * Damage the node section at random but leave every checksum "right" for the
 * O(1) open by not touching header or table: open works, searches must stay
 * inside the mapping, VERIFY must refuse.
 */
Test(db_corrupt, damaged_graph_behind_a_valid_header_never_reads_out_of_bounds, .timeout = 120)
{
	struct fixture f = make_db(300, 8);
	struct seg_info info;
	cr_assert_eq(seg_check(f.seg_bytes.data, f.seg_bytes.len, &info), 0);
	uint64_t s = 12345;
	for (int round = 0; round < 200; round++) {
		struct t_blob b = {malloc(f.seg_bytes.len), f.seg_bytes.len};
		memcpy(b.data, f.seg_bytes.data, b.len);
		/* Hit neighbour counts and ids (u32 words after the vector) with junk. */
		for (int hits = 0; hits < 1 + round % 8; hits++) {
			s = s * 6364136223846793005ull + 1442695040888963407ull;
			uint64_t node = (s >> 33) % info.count;
			uint64_t word = (s >> 13) % (1 + info.M0);
			uint64_t off = info.sec[SEG_SEC_NODES].off + node * info.stride + 4ull * info.dim + 4 * word;
			uint32_t junk = (uint32_t)(s >> 7);
			if (round % 3 == 0)
				junk = (uint32_t)info.count + (junk % 5);  /* just past the end */
			le_store32(b.data + off, junk);
		}
		if (round % 5 == 0) { /* and the upper links, if any */
			uint64_t ul = info.sec[SEG_SEC_UPPER_LINKS].off, us = info.sec[SEG_SEC_UPPER_LINKS].size;
			if (us >= 8)
				le_store32(b.data + ul + 4, 0xFFFFFFF0u);
		}
		t_write_file(f.seg, b.data, b.len);
		cr_assert_eq(exercise(&f, 0, 8), 0, "round %d: O(1) open must not see graph damage", round);
		int rc = exercise(&f, STRATA_VERIFY, 8);
		cr_assert(STRATA_IS_DATA_ERROR(rc), "round %d: verify let damage through (rc %d)", round, rc);
		free(b.data);
	}
	free_db(&f);
}

/*
 * A search whose ef is at least the vector count promises the exact answer,
 * and a graph walk cannot keep that promise when nodes are not linked from
 * the entry (deletions repaired by merges, or lists cut as here): such a
 * search must scan. Every layer-0 list is emptied behind the O(1) open.
 */
Test(db_corrupt, a_beam_as_wide_as_the_graph_is_exact_when_the_graph_is_cut)
{
	enum { N = 300, DIM = 8, K = 10 };
	struct fixture f = make_db(N, DIM);
	struct seg_info info;
	cr_assert_eq(seg_check(f.seg_bytes.data, f.seg_bytes.len, &info), 0);
	for (uint64_t node = 0; node < info.count; node++)
		le_store32(f.seg_bytes.data + info.sec[SEG_SEC_NODES].off + node * info.stride + 4ull * DIM, 0);
	t_write_file(f.seg, f.seg_bytes.data, f.seg_bytes.len);
	strata_db *db;
	cr_assert_eq(strata_open(f.dir, NULL, STRATA_READONLY, &db), 0, "%s", strata_last_error_detail());
	strata_search_options so;
	strata_search_options_default(&so);
	so.ef = N;
	for (int q = 0; q < 20; q++) {
		const float *query = f.v + (size_t)(q * 7 + 1) * DIM;
		uint64_t ids[K];
		float d[K];
		cr_assert_eq(strata_search(db, query, 1, K, &so, ids, d), 0, "%s", strata_last_error_detail());
		float ref[N];
		for (size_t i = 0; i < N; i++) {
			float s = 0;
			for (size_t j = 0; j < DIM; j++) {
				float t = query[j] - f.v[i * DIM + j];
				s += t * t;
			}
			ref[i] = s;
		}
		for (size_t r = 0; r < K; r++) { /* the r-th smallest, by selection */
			size_t best = r;
			for (size_t i = r + 1; i < N; i++)
				if (ref[i] < ref[best])
					best = i;
			float t = ref[r];
			ref[r] = ref[best];
			ref[best] = t;
			cr_assert(ids[r] != STRATA_NO_ID && fabsf(d[r] - ref[r]) <= 1e-4f * (1 + ref[r]),
			          "query %d rank %zu: distance %g, brute force %g", q, r, d[r], ref[r]);
		}
	}
	strata_close(db);
	free_db(&f);
}
