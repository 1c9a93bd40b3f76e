/*
 * db_limits_test.c - issue 5's resource limits, through the public API:
 *
 * 1. Hostile files with valid checksums - a segment header claiming 2^40 (or
 *    2^64-1) vectors, a dim of 2^31, a level count of 10^6, sections longer
 *    than the file or past 2^64, a MANIFEST of 65537 or 2^32-1 segments or a
 *    dim of 2^31, a deletion file of 2^64-1 nodes, a WAL record claiming
 *    256 MiB, bundles claiming 2^20 entries or 2^40 bytes - are refused with
 *    a data error and a detail, and BEFORE any allocation is sized from
 *    them: an allocation meter (this file replaces malloc and friends, in
 *    builds without a sanitizer) sees no single allocation over 1 MiB and
 *    at most a few MiB in all during each refused call. The files are those
 *    of tests/fuzz-regress/ (written by `make_seeds --limits`), put into a
 *    database directory beside the golden v1 database of tests/golden/.
 *    The meter's own test allocates 64 MiB and must see it (so these tests
 *    can fail). Under ASan, a single allocation over 256 MiB aborts instead
 *    (__asan_default_options below).
 * 2. Searches with k or ef of 0, k or ef past their limits, NaN, infinite
 *    and huge queries, huge thread counts, on a segment and on a memtable:
 *    a clear error with a detail, or a defined answer (valid, distinct,
 *    sorted ids; STRATA_NO_ID and +inf only after the last hit).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bundle.h"
#include "le.h"
#include "manifest.h"
#include "segment.h"
#include "strata.h"
#include "t_support.h"
#include "tombstone.h"
#include "wal_record.h"
#include "xsum.h"

/* ---- the allocation meter ---------------------------------------------------- */

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define T_METER 0
#if defined(__SANITIZE_ADDRESS__)
/* ASan's allocator owns malloc here: let it refuse what no refused file may cost. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "max_allocation_size_mb=256:allocator_may_return_null=0";
}
#endif
#else
#define T_METER 1
/*
 * glibc lets a program replace malloc (its manual, "Replacing malloc"); these
 * forward to glibc's own allocator and note the sizes while the meter runs.
 */
void *__libc_malloc(size_t n);
void *__libc_calloc(size_t a, size_t b);
void *__libc_realloc(void *p, size_t n);
void *__libc_memalign(size_t align, size_t n);
void __libc_free(void *p);

static _Atomic int t_meter_on;
static _Atomic size_t t_meter_max, t_meter_total;

static void t_meter_note(size_t n)
{
	if (!atomic_load_explicit(&t_meter_on, memory_order_relaxed))
		return;
	atomic_fetch_add_explicit(&t_meter_total, n, memory_order_relaxed);
	size_t m = atomic_load_explicit(&t_meter_max, memory_order_relaxed);
	while (n > m && !atomic_compare_exchange_weak_explicit(&t_meter_max, &m, n, memory_order_relaxed,
	                                                       memory_order_relaxed))
		;
}

void *malloc(size_t n)
{
	t_meter_note(n);
	return __libc_malloc(n);
}

void *calloc(size_t a, size_t b)
{
	size_t n;
	t_meter_note(__builtin_mul_overflow(a, b, &n) ? SIZE_MAX : n);
	return __libc_calloc(a, b);
}

void *realloc(void *p, size_t n)
{
	t_meter_note(n);
	return __libc_realloc(p, n);
}

void free(void *p)
{
	__libc_free(p);
}

int posix_memalign(void **out, size_t align, size_t n)
{
	t_meter_note(n);
	void *p = __libc_memalign(align, n);
	if (!p)
		return ENOMEM;
	*out = p;
	return 0;
}

void *aligned_alloc(size_t align, size_t n)
{
	t_meter_note(n);
	return __libc_memalign(align, n);
}

void *memalign(size_t align, size_t n);
void *memalign(size_t align, size_t n)
{
	t_meter_note(n);
	return __libc_memalign(align, n);
}
#endif

#define T_ALLOC_ONE_MAX ((size_t)1 << 20) /* largest single allocation a refused file may cause */
#define T_ALLOC_ALL_MAX ((size_t)8 << 20) /* all allocations of the refused call together */

struct t_meter {
	size_t max, total;
};

static void t_meter_start(void)
{
#if T_METER
	atomic_store(&t_meter_max, 0);
	atomic_store(&t_meter_total, 0);
	atomic_store(&t_meter_on, 1);
#endif
}

static struct t_meter t_meter_stop(void)
{
	struct t_meter m = {0, 0};
#if T_METER
	atomic_store(&t_meter_on, 0);
	m.max = atomic_load(&t_meter_max);
	m.total = atomic_load(&t_meter_total);
#endif
	return m;
}

/* The call just metered allocated nothing sized from a hostile claim. */
static void t_assert_small(struct t_meter m, const char *what)
{
	cr_assert(m.max <= T_ALLOC_ONE_MAX, "%s: an allocation of %zu bytes (limit %zu)", what, m.max,
	          T_ALLOC_ONE_MAX);
	cr_assert(m.total <= T_ALLOC_ALL_MAX, "%s: %zu bytes allocated in all (limit %zu)", what,
	          m.total, T_ALLOC_ALL_MAX);
}

Test(db_limits, the_meter_sees_a_large_allocation)
{
#if T_METER
	t_meter_start();
	char *volatile p = malloc(64u << 20);
	struct t_meter m = t_meter_stop();
	free(p);
	cr_assert(m.max >= (64u << 20), "the meter missed a 64 MiB malloc (saw %zu)", m.max);
	t_meter_start();
	p = calloc(1u << 20, 48);
	m = t_meter_stop();
	free(p);
	cr_assert(m.max >= (48u << 20), "the meter missed a 48 MiB calloc (saw %zu)", m.max);
#else
	cr_skip_test("sanitizer build: its allocator owns malloc (max_allocation_size_mb applies)");
#endif
}

/* ---- hostile files in a database directory ------------------------------------ */

static const char *t_regress(const char *rel, char *buf, size_t len)
{
	const char *root = getenv("STRATA_FUZZ_REGRESS");
	cr_assert(root && *root, "STRATA_FUZZ_REGRESS is not set (tests/meson.build sets it)");
	snprintf(buf, len, "%s/%s", root, rel);
	return buf;
}

static struct t_blob t_regress_file(const char *rel)
{
	char p[1024];
	struct t_blob b = t_read_file(t_regress(rel, p, sizeof p));
	cr_assert(b.data, "%s is missing (make_seeds --limits writes it)", p);
	return b;
}

static struct t_blob t_golden_file(const char *name)
{
	char p[1024];
	snprintf(p, sizeof p, "%s/v1/tiny/%s", getenv("STRATA_GOLDEN"), name);
	struct t_blob b = t_read_file(p);
	cr_assert(b.data, "%s is missing", p);
	return b;
}

/* The golden MANIFEST, decoded (its one entry names seq 1). */
static struct mf_manifest t_golden_manifest(void)
{
	struct t_blob b = t_golden_file("MANIFEST");
	struct mf_manifest m;
	cr_assert_eq(mf_decode(b.data, b.len, &m), 0, "%s", strata_last_error_detail());
	free(b.data);
	return m;
}

/*
 * Open `dir` read-only, read-only with STRATA_VERIFY and as a writer; each
 * must refuse with a data error (`want`, unless 0) and a detail, having
 * allocated nothing sized from the file's claims.
 */
static void t_assert_refused(const char *dir, int want, const char *needle, const char *what)
{
	static const unsigned flags[] = {STRATA_READONLY, STRATA_READONLY | STRATA_VERIFY, 0};
	static const char *const names[] = {"read-only", "verified", "writer"};
	strata_options o;
	strata_options_default(&o);
	o.memtable_max_vectors = 64; /* a writer's memtable is sized by options, not by the files */
	for (int f = 0; f < 3; f++) {
		char w[256];
		snprintf(w, sizeof w, "%s (%s open)", what, names[f]);
		strata_db *db = NULL;
		t_meter_start();
		int rc = strata_open(dir, &o, flags[f], &db);
		struct t_meter m = t_meter_stop();
		cr_assert(STRATA_IS_DATA_ERROR(rc), "%s: rc %d (%s), not a data error", w, rc,
		          strata_last_error_detail());
		if (want)
			cr_assert_eq(rc, want, "%s: rc %d (%s), want %d", w, rc, strata_last_error_detail(), want);
		cr_assert(strstr(strata_last_error_detail(), needle), "%s: detail \"%s\" lacks \"%s\"", w,
		          strata_last_error_detail(), needle);
		t_assert_small(m, w);
		if (f == 0)
			printf("%-44s -> %-16s largest allocation %7zu B, all %8zu B: %s\n", what,
			       strata_strerror(rc), m.max, m.total, strata_last_error_detail());
	}
}

/* A hostile file of tests/fuzz-regress/, the code its refusal must have, a word of its detail. */
struct t_hostile {
	const char *file;
	int want; /* 0: any data error */
	const char *needle;
};

/* Make directory `dir` and put `seg` in it as segment 1 (no MANIFEST yet). */
static void t_dir_with_segment(const char *dir, const struct t_blob *seg)
{
	cr_assert_eq(mkdir(dir, 0755), 0);
	char p[1024];
	snprintf(p, sizeof p, "%s/seg-0000000000000001.seg", dir);
	t_write_file(p, seg->data, seg->len);
}

/* A database directory holding `seg` as segment 1, named by a MANIFEST that binds it. */
static void t_db_with_segment(const char *dir, const struct t_blob *seg, uint32_t mf_dim)
{
	struct mf_manifest m = t_golden_manifest();
	cr_assert_eq(m.segment_count, 1);
	struct mf_segment *e = &m.segments[0];
	e->file_size = seg->len;
	e->header_xxh3 = le_load64(seg->data + SEG_OFF_HEADER_XXH3);
	e->count = le_load64(seg->data + SEG_OFF_COUNT);
	if (mf_dim)
		m.dim = mf_dim;
	t_dir_with_segment(dir, seg);
	cr_assert_eq(mf_commit(dir, &m), 0, "%s", strata_last_error_detail());
	mf_free(&m);
}

Test(db_limits, hostile_segment_headers_are_refused_before_allocation)
{
	static const struct t_hostile cases[] = {
		{"count-2p40.seg", STRATA_ECORRUPT, "count"},
		{"count-u64-max.seg", STRATA_ECORRUPT, "count"},
		{"dim-2p31.seg", STRATA_ECORRUPT, "dim"},
		{"max-level-1e6.seg", STRATA_ECORRUPT, "max_level"},
		{"nodes-section-longer-than-file.seg", 0, "section"},
		{"ids-section-offset-u64-max.seg", 0, "section"},
		{"upper-blocks-2p62.seg", STRATA_ECORRUPT, "upper_blocks"},
		{"section-count-2p31.seg", STRATA_ECORRUPT, "section"},
		{"stride-u32-max.seg", STRATA_ECORRUPT, "stride"},
	};
	for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
		char rel[256];
		snprintf(rel, sizeof rel, "segment/%s", cases[c].file);
		struct t_blob seg = t_regress_file(rel);
		struct t_dir d = t_dir_new();
		char dir[700];
		t_path(&d, "db", dir, sizeof dir);
		/* dim 2^31 cannot be in a MANIFEST: keep the golden one (the open must still check the segment). */
		t_db_with_segment(dir, &seg, 0);
		t_assert_refused(dir, cases[c].want, cases[c].needle, cases[c].file);
		free(seg.data);
		t_dir_free(&d);
	}
}

Test(db_limits, hostile_manifests_are_refused_before_allocation)
{
	static const struct t_hostile cases[] = {
		{"manifest/segment-count-65537.manifest", STRATA_ECORRUPT, "segment"},
		{"manifest/segment-count-u32-max.manifest", STRATA_ECORRUPT, "segment"},
		{"manifest/dim-2p31.manifest", STRATA_ECORRUPT, "dim"},
		{"db_open/entry-count-2p40.manifest", STRATA_ECORRUPT, "manifest entry"},
	};
	struct t_blob seg = t_golden_file("seg-0000000000000001.seg");
	for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
		struct t_blob mf = t_regress_file(cases[c].file);
		struct t_dir d = t_dir_new();
		char dir[700], p[1024];
		t_path(&d, "db", dir, sizeof dir);
		t_dir_with_segment(dir, &seg);
		snprintf(p, sizeof p, "%s/MANIFEST", dir);
		t_write_file(p, mf.data, mf.len);
		t_assert_refused(dir, cases[c].want, cases[c].needle, cases[c].file);
		free(mf.data);
		t_dir_free(&d);
	}
	free(seg.data);
}

/* A deletion file of the golden segment whose header claims `count` (or `deleted`) nodes, resealed. */
Test(db_limits, hostile_deletion_files_are_refused_before_allocation)
{
	static const struct {
		const char *what;
		size_t off;
		uint64_t value;
	} cases[] = {
		{"deletion file of 2^64-1 nodes", TOMB_OFF_COUNT, UINT64_MAX},
		{"deletion file of 2^32-2 nodes", TOMB_OFF_COUNT, TOMB_COUNT_MAX},
		{"deletion file of 2^40 deleted", TOMB_OFF_DELETED, 1ull << 40},
	};
	struct t_blob seg = t_golden_file("seg-0000000000000001.seg");
	for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
		struct t_dir d = t_dir_new();
		char dir[700], p[1024], name[64];
		t_path(&d, "db", dir, sizeof dir);
		struct mf_manifest m = t_golden_manifest();
		struct mf_segment *e = &m.segments[0];
		e->tomb_gen = m.next_seq++;
		uint64_t bits[64] = {0x5};
		uint8_t *b;
		size_t len;
		cr_assert_eq(tomb_encode(e->seq, e->header_xxh3, e->tomb_gen, bits, e->count, &b, &len), 0);
		le_store64(b + cases[c].off, cases[c].value);
		le_store64(b + TOMB_OFF_HEADER_XXH3, xsum64(b, TOMB_OFF_HEADER_XXH3));
		t_dir_with_segment(dir, &seg);
		tomb_file_name(e->seq, e->tomb_gen, name, sizeof name);
		snprintf(p, sizeof p, "%s/%s", dir, name);
		t_write_file(p, b, len);
		cr_assert_eq(mf_commit(dir, &m), 0);
		t_assert_refused(dir, STRATA_ECORRUPT, name, cases[c].what);
		free(b);
		mf_free(&m);
		t_dir_free(&d);
	}
	free(seg.data);
}

/*
 * A database of the uuid and dim (3) of fuzz/make_seeds.c's WAL seeds, no
 * segment, whose one WAL file is tests/fuzz-regress/<rel>, named by the
 * first LSN its header holds. `dir` receives its path.
 */
static void t_db_with_wal(const struct t_dir *d, const char *rel, char *dir, size_t dir_len)
{
	static const uint8_t uuid[16] = {0x57, 0x41, 0x4c, 0x2d, 0x66, 0x75, 0x7a, 0x7a,
	                                 0x2d, 0x73, 0x65, 0x65, 0x64, 0x2d, 0x30, 0x31};
	struct t_blob wal = t_regress_file(rel);
	char p[1024];
	t_path(d, "db", dir, dir_len);
	cr_assert_eq(mkdir(dir, 0755), 0);
	struct mf_manifest m = {.dim = 3, .metric = STRATA_METRIC_L2, .M = 4, .ef_construction = 8,
	                        .ef_search = 8, .generation = 1, .next_seq = 1};
	memcpy(m.db_uuid, uuid, 16);
	cr_assert_eq(mf_commit(dir, &m), 0);
	snprintf(p, sizeof p, "%s/wal-%016llx.log", dir,
	         (unsigned long long)le_load64(wal.data + 32)); /* its first LSN */
	t_write_file(p, wal.data, wal.len);
	free(wal.data);
}

/*
 * A WAL file, checksums and all, whose second record upserts the reserved id
 * 2^64-1 (or, with `nan`, a NaN component): strata_upsert never logs such a
 * record, so the open refuses the log as corrupt, naming the file, instead of
 * giving the database an id that comes back from searches as an empty slot
 * (found by fuzz_wal_nock). The file is left as it was.
 */
static void t_open_refuses_wal_value(bool nan)
{
	struct t_dir d = t_dir_new();
	char dir[700], p[1024];
	t_path(&d, "db", dir, sizeof dir);
	cr_assert_eq(mkdir(dir, 0755), 0);
	static const uint8_t uuid[16] = {0x57, 0x41, 0x4c, 0x2d, 0x66, 0x75, 0x7a, 0x7a,
	                                 0x2d, 0x73, 0x65, 0x65, 0x64, 0x2d, 0x30, 0x31};
	struct mf_manifest m = {.dim = 3, .metric = STRATA_METRIC_L2, .M = 4, .ef_construction = 8,
	                        .ef_search = 8, .generation = 1, .next_seq = 1};
	memcpy(m.db_uuid, uuid, 16);
	cr_assert_eq(mf_commit(dir, &m), 0);
	struct walrec_file_header h = {.first_lsn = 1, .dim = 3};
	memcpy(h.db_uuid, uuid, 16);
	uint8_t b[512] = {0};
	walrec_file_header_encode(&h, b);
	size_t off = WAL_FILE_HEADER_SIZE;
	for (uint64_t lsn = 1; lsn <= 2; lsn++) {
		uint8_t pl[8 + 8 + 12], hdr[WAL_RECORD_HEADER_SIZE], tail[WAL_RECORD_TAIL_MAX];
		walrec_upsert_prefix(1, 3, pl);
		le_store64(pl + 8, lsn == 2 && !nan ? UINT64_MAX : lsn);
		for (uint32_t j = 0; j < 3; j++)
			le_store32(pl + 16 + 4 * j, lsn == 2 && nan && j == 1 ? 0x7fc00000u : 0x3f800000u);
		struct iovec iov = {pl, sizeof pl};
		size_t tl;
		uint32_t total;
		cr_assert_eq(walrec_encode(WAL_REC_UPSERT, lsn, &iov, 1, hdr, tail, &tl, &total), 0);
		memcpy(b + off, hdr, sizeof hdr);
		memcpy(b + off + sizeof hdr, pl, sizeof pl);
		memcpy(b + off + sizeof hdr + sizeof pl, tail, tl);
		off += total;
	}
	snprintf(p, sizeof p, "%s/wal-0000000000000001.log", dir);
	t_write_file(p, b, off);
	strata_db *db = NULL;
	cr_assert_eq(strata_open(dir, NULL, 0, &db), STRATA_ECORRUPT, "%s",
	             strata_last_error_detail());
	cr_assert_null(db);
	const char *detail = strata_last_error_detail();
	cr_assert(strstr(detail, "wal-0000000000000001.log"), "%s", detail);
	cr_assert(strstr(detail, nan ? "not finite" : "2^64-1"), "%s", detail);
	struct t_blob after = t_read_file(p);
	cr_assert(after.len == off && memcmp(after.data, b, off) == 0, "the open changed the log");
	free(after.data);
	t_dir_free(&d);
}

Test(db_limits, wal_record_of_the_reserved_id_refuses_the_open)
{
	t_open_refuses_wal_value(false);
}

Test(db_limits, wal_record_with_a_nan_refuses_the_open)
{
	t_open_refuses_wal_value(true);
}

/*
 * A WAL file whose last record header claims 256 MiB (a torn write: cut, the
 * open succeeds): nothing of the claimed size is allocated.
 */
Test(db_limits, wal_records_claiming_256_mib_cost_nothing)
{
	struct t_dir d = t_dir_new();
	char dir[700];
	t_db_with_wal(&d, "wal/tail-header-claims-256mib.log", dir, sizeof dir);
	strata_options o;
	strata_options_default(&o);
	o.memtable_max_vectors = 64;
	strata_db *db = NULL;
	t_meter_start();
	int rc = strata_open(dir, &o, 0, &db);
	struct t_meter mt = t_meter_stop();
	cr_assert_eq(rc, 0, "%s", strata_last_error_detail());
	struct strata_stats st;
	cr_assert_eq(strata_stats(db, &st), 0);
	cr_assert(st.replay_torn_bytes > 0, "the claimed record was not cut as a torn tail");
	strata_close(db);
	t_assert_small(mt, "WAL tail claiming 256 MiB");
	printf("%-44s -> cut %llu torn bytes; largest allocation %zu B, all %zu B\n",
	       "tail-header-claims-256mib.log", (unsigned long long)st.replay_torn_bytes, mt.max, mt.total);
	t_dir_free(&d);
}

Test(db_limits, hostile_bundles_are_refused_before_allocation)
{
	static const char *const files[] = {
		"entry-count-2p20.bundle",
		"total-raw-u64-max.bundle",
		"segment-frame-size-u64-max.bundle",
		"segment-raw-size-2p40.bundle",
		"manifest-inflates-16mib-declared-160.bundle",
	};
	for (size_t c = 0; c < sizeof files / sizeof *files; c++) {
		char rel[256];
		snprintf(rel, sizeof rel, "bundle/%s", files[c]);
		struct t_blob b = t_regress_file(rel);
		for (int unpack = 0; unpack < 2; unpack++) {
			struct bundle_mem mem;
			struct bundle_source src;
			bundle_source_mem(&mem, b.data, b.len, &src);
			struct bundle_db_stats st;
			struct t_dir d = t_dir_new();
			char dir[700], what[300];
			t_path(&d, "db", dir, sizeof dir);
			snprintf(what, sizeof what, "%s (%s)", files[c], unpack ? "unpack" : "verify");
			struct bundle_unpack_opts uo = {.skip_space_check = true};
			t_meter_start();
			int rc = unpack ? bundle_unpack(&src, dir, &uo, NULL, NULL, &st)
			                : bundle_verify(&src, 1ull << 30, NULL, NULL, &st);
			struct t_meter m = t_meter_stop();
			cr_assert(STRATA_IS_DATA_ERROR(rc) || rc == STRATA_ELIMIT, "%s: rc %d (%s)", what, rc,
			          strata_last_error_detail());
			cr_assert(strata_last_error_detail()[0], "%s: no detail", what);
			t_assert_small(m, what);
			printf("%-44s -> %-16s largest allocation %7zu B, all %8zu B: %s\n", what,
			       strata_strerror(rc), m.max, m.total, strata_last_error_detail());
			t_dir_free(&d);
		}
		free(b.data);
	}
}

/* ---- searches at the limits ------------------------------------------------------- */

#define T_N 50
#define T_DIM 8

/* A search answer is defined: 0 or more valid, distinct hits closest first, then NO_ID and +inf. */
static void t_assert_defined(const uint64_t *ids, const float *d, uint32_t k, uint64_t n_ids,
                             const char *what)
{
	bool ended = false;
	for (uint32_t i = 0; i < k; i++) {
		if (ids[i] == STRATA_NO_ID) {
			cr_assert(isinf(d[i]) && d[i] > 0, "%s: slot %u has no id but distance %g", what, i,
			          (double)d[i]);
			ended = true;
			continue;
		}
		cr_assert(!ended, "%s: a hit in slot %u after an empty slot", what, i);
		cr_assert(ids[i] < n_ids, "%s: slot %u: id %llu was never stored", what, i,
		          (unsigned long long)ids[i]);
		cr_assert(!isnan(d[i]), "%s: slot %u: NaN distance", what, i);
		cr_assert(i == 0 || d[i] >= d[i - 1], "%s: slots %u and %u out of order", what, i - 1, i);
		for (uint32_t j = 0; j < i; j++)
			cr_assert_neq(ids[j], ids[i], "%s: id %llu twice", what, (unsigned long long)ids[i]);
	}
}

static void t_search_limits(strata_db *db, const float *v, strata_metric metric, const char *kind)
{
	char what[200];
	uint32_t kmax = STRATA_K_MAX;
	uint64_t *ids = malloc(sizeof *ids * kmax);
	float *d = malloc(sizeof *d * kmax);
	float q[T_DIM];
	memcpy(q, v + 5 * T_DIM, sizeof q);
	strata_search_options so;

	/* k = 0 and k past the limit: EINVAL, and the outputs untouched. */
	ids[0] = 42;
	cr_assert_eq(strata_search(db, q, 1, 0, NULL, ids, d), STRATA_EINVAL, "%s: k 0", kind);
	cr_assert(strata_last_error_detail()[0], "%s: k 0 without a detail", kind);
	cr_assert_eq(ids[0], 42, "%s: a refused search wrote its output", kind);
	cr_assert_eq(strata_search(db, q, 1, kmax + 1, NULL, ids, d), STRATA_EINVAL, "%s: k max+1", kind);
	cr_assert_eq(strata_search(db, q, 1, UINT32_MAX, NULL, ids, d), STRATA_EINVAL, "%s: k 2^32-1", kind);

	/* k at the limit: every vector, then empty slots. */
	cr_assert_eq(strata_search(db, q, 1, kmax, NULL, ids, d), 0, "%s: k max: %s", kind,
	             strata_last_error_detail());
	snprintf(what, sizeof what, "%s, k %u", kind, kmax);
	t_assert_defined(ids, d, kmax, T_N, what);
	if (metric != STRATA_METRIC_IP) /* 1 - dot: a longer vector can beat the query's own */
		cr_assert_eq(ids[0], 5, "%s: the query's own vector is not first", what);
	uint32_t hits = 0;
	while (hits < kmax && ids[hits] != STRATA_NO_ID)
		hits++;
	/*
	 * With ef >= the count the walk reaches every node the entry point
	 * reaches: all of them for l2 and cosine. Not for ip: 1 - dot is no
	 * metric, and a node whose every neighbour prefers longer vectors may
	 * have no edge into it (hnswlib's graphs share this); a defined answer.
	 */
	if (metric != STRATA_METRIC_IP)
		cr_assert_eq(hits, T_N, "%s: %u hits of all %d vectors", what, hits, T_N);
	else
		cr_assert(hits > 0 && hits <= T_N, "%s: %u hits", what, hits);
	cr_assert_eq(ids[T_N], STRATA_NO_ID, "%s: more than %d vectors", what, T_N);

	/* ef 0 is the database's default; ef below k is raised to k; ef at the limit works. */
	uint64_t a[10], b[10];
	float da[10], db_[10];
	strata_search_options_default(&so);
	so.ef = 0;
	cr_assert_eq(strata_search(db, q, 1, 10, &so, a, da), 0, "%s: ef 0", kind);
	struct strata_stats st;
	cr_assert_eq(strata_stats(db, &st), 0);
	so.ef = st.ef_search;
	cr_assert_eq(strata_search(db, q, 1, 10, &so, b, db_), 0);
	cr_assert_arr_eq(a, b, sizeof a, "%s: ef 0 is not the default ef %u", kind, st.ef_search);
	so.ef = 1;
	cr_assert_eq(strata_search(db, q, 1, 10, &so, a, da), 0, "%s: ef 1 < k", kind);
	t_assert_defined(a, da, 10, T_N, kind);
	cr_assert_neq(a[9], STRATA_NO_ID, "%s: ef 1 was not raised to k 10", kind);
	so.ef = STRATA_EF_MAX;
	cr_assert_eq(strata_search(db, q, 1, 10, &so, a, da), 0, "%s: ef max: %s", kind,
	             strata_last_error_detail());
	t_assert_defined(a, da, 10, T_N, kind);
	so.ef = STRATA_EF_MAX + 1;
	cr_assert_eq(strata_search(db, q, 1, 10, &so, a, da), STRATA_EINVAL, "%s: ef max+1", kind);
	so.ef = UINT32_MAX;
	cr_assert_eq(strata_search(db, q, 1, 10, &so, a, da), STRATA_EINVAL, "%s: ef 2^32-1", kind);

	/* Threads: any count is fine (at most one per query is used). */
	strata_search_options_default(&so);
	so.threads = UINT32_MAX;
	cr_assert_eq(strata_search(db, q, 1, 10, &so, a, da), 0, "%s: threads 2^32-1: %s", kind,
	             strata_last_error_detail());
	t_assert_defined(a, da, 10, T_N, kind);

	/* NaN and infinities anywhere in a query: ENONFINITE, naming it. */
	const float bad[] = {NAN, -NAN, INFINITY, -INFINITY};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		float qq[2 * T_DIM];
		memcpy(qq, q, sizeof q);
		memcpy(qq + T_DIM, q, sizeof q);
		qq[T_DIM + 3] = bad[i];
		cr_assert_eq(strata_search(db, qq, 2, 10, NULL, ids, d), STRATA_ENONFINITE,
		             "%s: query 1 holds %g", kind, (double)bad[i]);
		cr_assert(strstr(strata_last_error_detail(), "1"), "%s: the detail does not name query 1: %s",
		          kind, strata_last_error_detail());
	}

	/* Huge finite queries: distances overflow to infinity, the answer stays defined. */
	const float huge[] = {FLT_MAX, -FLT_MAX, 1e30f, FLT_MIN, 0.0f};
	for (size_t i = 0; i < sizeof huge / sizeof *huge; i++) {
		float hq[T_DIM];
		for (int j = 0; j < T_DIM; j++)
			hq[j] = j % 2 ? huge[i] : -huge[i];
		snprintf(what, sizeof what, "%s, %s query of %g", kind,
		         metric == STRATA_METRIC_COSINE ? "cosine" : metric == STRATA_METRIC_IP ? "ip" : "l2",
		         (double)huge[i]);
		int rc = strata_search(db, hq, 1, 20, NULL, ids, d);
		cr_assert_eq(rc, 0, "%s: %d %s", what, rc, strata_last_error_detail());
		t_assert_defined(ids, d, 20, T_N, what);
		cr_assert_neq(ids[0], STRATA_NO_ID, "%s: no hit among %d vectors", what, T_N);
	}

	/* No queries: nothing to do. */
	cr_assert_eq(strata_search(db, NULL, 0, 10, NULL, ids, d), 0, "%s: nq 0", kind);
	free(ids);
	free(d);
}

Test(db_limits, searches_at_and_past_the_limits, .timeout = 120)
{
	static const strata_metric metrics[] = {STRATA_METRIC_L2, STRATA_METRIC_IP, STRATA_METRIC_COSINE};
	float *v = t_random_vectors(T_N, T_DIM, 77);
	for (size_t mi = 0; mi < 3; mi++) {
		strata_options o;
		strata_options_default(&o);
		o.dim = T_DIM;
		o.metric = metrics[mi];
		o.M = 4;
		o.ef_construction = 32;
		o.threads = 1;
		struct t_dir d = t_dir_new_mem();
		char seg_dir[700], mem_dir[700];
		t_path(&d, "segment", seg_dir, sizeof seg_dir);
		t_path(&d, "memtable", mem_dir, sizeof mem_dir);

		/* The vectors in a segment (built), read-only. */
		cr_assert_eq(strata_build(seg_dir, &o, NULL, v, T_N), 0, "%s", strata_last_error_detail());
		strata_db *db;
		cr_assert_eq(strata_open(seg_dir, NULL, STRATA_READONLY, &db), 0);
		t_search_limits(db, v, metrics[mi], "segment");
		strata_close(db);

		/* The same vectors in a writer's memtable (ids = rows). */
		cr_assert_eq(strata_open(mem_dir, &o, STRATA_CREATE, &db), 0, "%s",
		             strata_last_error_detail());
		uint64_t ids[T_N];
		for (uint64_t i = 0; i < T_N; i++)
			ids[i] = i;
		cr_assert_eq(strata_upsert(db, ids, v, T_N), 0, "%s", strata_last_error_detail());
		t_search_limits(db, v, metrics[mi], "memtable");
		/* A write with a non-finite component is refused the same way, naming it. */
		float bad[T_DIM] = {0};
		bad[2] = NAN;
		uint64_t id = 999;
		cr_assert_eq(strata_upsert(db, &id, bad, 1), STRATA_ENONFINITE);
		cr_assert(strstr(strata_last_error_detail(), "component 2"), "%s", strata_last_error_detail());
		strata_close(db);
		t_dir_free(&d);
	}
	free(v);
}

/*
 * LSNs end at 2^63-1 (FORMAT.md 10.1), so that the next one never wraps.
 * fuzz_wal found a MANIFEST whose checkpoint was 2^64-1 making a writer's
 * open fail with STRATA_EINVAL (the next LSN wrapped to 0): now such a
 * MANIFEST, or a WAL file starting past the bound, is corrupt, and a valid
 * log that ends at the bound cannot be continued (STRATA_ELIMIT), though it
 * still opens read-only.
 */
Test(db_limits, lsns_past_the_largest_are_corrupt_and_the_last_one_ends_the_log)
{
	struct t_blob seg = t_golden_file("seg-0000000000000001.seg");
	static const uint64_t checkpoints[] = {UINT64_MAX, 1ull << 63, (1ull << 63) - 1};
	for (size_t c = 0; c < 3; c++) {
		struct t_dir d = t_dir_new();
		char dir[700], p[1024];
		t_path(&d, "db", dir, sizeof dir);
		t_dir_with_segment(dir, &seg);
		struct t_blob mf = t_golden_file("MANIFEST");
		le_store32(mf.data + MF_OFF_VERSION, 2); /* a checkpoint has meaning from version 2 */
		le_store64(mf.data + MF_OFF_CHECKPOINT_LSN, checkpoints[c]);
		le_store64(mf.data + MF_OFF_HEADER_XXH3, xsum64(mf.data, MF_OFF_HEADER_XXH3));
		snprintf(p, sizeof p, "%s/MANIFEST", dir);
		t_write_file(p, mf.data, mf.len);
		free(mf.data);
		strata_db *db = NULL;
		if (checkpoints[c] > (1ull << 63) - 1) {
			t_assert_refused(dir, STRATA_ECORRUPT, "checkpoint_lsn", "checkpoint past 2^63-1");
		} else {
			cr_assert_eq(strata_open(dir, NULL, STRATA_READONLY, &db), 0, "%s",
			             strata_last_error_detail());
			strata_close(db);
			int rc = strata_open(dir, NULL, 0, &db);
			cr_assert_eq(rc, STRATA_ELIMIT, "a writer at the last LSN: %d (%s)", rc,
			             strata_last_error_detail());
			cr_assert(strstr(strata_last_error_detail(), "2^63-1"), "%s", strata_last_error_detail());
		}
		t_dir_free(&d);
	}

	/* A WAL file whose header starts past the bound (make_seeds --limits wrote it). */
	struct t_dir d = t_dir_new();
	char dir[700];
	t_db_with_wal(&d, "wal/first-lsn-2p63.log", dir, sizeof dir);
	strata_db *db = NULL;
	int rc = strata_open(dir, NULL, 0, &db);
	cr_assert_eq(rc, STRATA_ECORRUPT, "%d (%s)", rc, strata_last_error_detail());
	cr_assert(strstr(strata_last_error_detail(), "first_lsn"), "%s", strata_last_error_detail());
	free(seg.data);
	t_dir_free(&d);
}
