/*
 * fuzz_bundle.c - any byte string given as a bundle to the three ways in
 * (bundle_index_decode from the back, bundle_verify and bundle_unpack from
 * the front) is refused with a clean error and leaves nothing behind, or is a
 * database bundle whose unpacked directory opens, verifies and answers.
 *
 * Properties:
 *   - bundle_index_decode returns 0 or a data error with a detail; what it
 *     accepts lists entry_count entries, ordinals 0.., the first at offset 64,
 *     each after the previous one's frame, all before the index, whose raw
 *     sizes add up to the header's total;
 *   - bundle_verify and bundle_unpack return 0, a data error with a detail,
 *     or STRATA_ELIMIT (the harness caps an entry at FZ_ENTRY_MAX and the
 *     total at FZ_TOTAL_MAX, as a caller would); when neither hit a limit
 *     they return the same code, having seen the same entries (FORMAT.md 8.8:
 *     verify applies every check of unpack, in the same order);
 *   - a failed unpack leaves nothing in the parent directory: no target, no
 *     .<name>.unpack-XXXXXX;
 *   - a bundle that unpacks is valid read from the back too (8.5): the index
 *     lists the entries unpack saw, in order; and the directory opens
 *     STRATA_READONLY | STRATA_VERIFY with the vector count unpack reported,
 *     and a search of it returns 0.
 * With -Dfuzz_no_checksums=true (the _nock executables) every checksum
 * passes, so mutations reach the structure, the zstd frames, the MANIFEST and
 * the segments behind them.
 * The parent directory lives on /dev/shm when it exists (tmpfs: unpack's
 * fsyncs cost nothing) and is removed at exit.
 */
#include <dirent.h>
#include <errno.h>
#include <unistd.h>

#include "bundle.h"
#include "fuzz_helpers.h"

#define FZ_ENTRY_MAX (4ull << 20)  /* bytes of one decompressed entry verify may hold */
#define FZ_TOTAL_MAX (16ull << 20) /* bytes of files an unpack may write */
#define FZ_K 5u

static char fz_parent[256];
static char fz_target[300];

static void fz_die(const char *what, const char *path)
{
	fprintf(stderr, "fuzz_bundle: %s %s: %s\n", what, path, strerror(errno));
	abort();
}

/* Remove a directory and the files in it (an unpacked database is flat). */
static void fz_rmtree(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d))) {
		char p[600];
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
		if (unlink(p) != 0)
			fz_rmtree(p);
	}
	closedir(d);
	rmdir(dir);
}

static void fz_cleanup(void)
{
	fz_rmtree(fz_parent);
}

static void fz_setup(void)
{
	const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
	snprintf(fz_parent, sizeof fz_parent, "%s/strata-fuzz-bundle-XXXXXX",
	         base && *base ? base : "/tmp");
	if (!mkdtemp(fz_parent))
		fz_die("mkdtemp", fz_parent);
	snprintf(fz_target, sizeof fz_target, "%s/db", fz_parent);
	atexit(fz_cleanup);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_setup();
	return 0;
}

/* The parent holds nothing: no database, no temporary of an unpack. */
static void fz_assert_parent_empty(const char *after)
{
	DIR *d = opendir(fz_parent);
	if (!d)
		fz_die("opendir", fz_parent);
	struct dirent *e;
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			FZ_ASSERT(0, "%s left %s/%s behind", after, fz_parent, e->d_name);
	}
	closedir(d);
}

/* What a pass saw: how many entries, and a hash of their names and sizes in order. */
struct fz_seen {
	uint32_t n;
	uint64_t h;
};

static void fz_seen_add(struct fz_seen *s, const char *name, uint64_t raw_size)
{
	uint64_t h = s->h ^ (0x9e3779b97f4a7c15ull * (s->n + 1));
	for (const char *p = name; *p; p++)
		h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
	s->h = (h ^ raw_size) * 0x100000001b3ull;
	s->n++;
}

static void fz_on_entry(const struct bundle_entry *e, void *ctx)
{
	fz_seen_add(ctx, e->name, e->raw_size);
}

static bool fz_clean_error(int rc)
{
	return STRATA_IS_DATA_ERROR(rc) || rc == STRATA_ELIMIT;
}

/* From the back: a clean refusal, or an index that describes the bytes. */
static int fz_index(const uint8_t *data, size_t size, struct fz_seen *seen)
{
	struct bundle_index idx;
	err_clear();
	int rc = bundle_index_decode(data, size, &idx);
	if (rc) {
		FZ_ASSERT_DATA_ERROR(rc, "bundle_index_decode");
		return rc;
	}
	FZ_ASSERT(idx.count == idx.hdr.entry_count && idx.count >= 1, "%u entries, header says %u",
	          idx.count, idx.hdr.entry_count);
	FZ_ASSERT(idx.ftr.bundle_size == size, "bundle_size %llu of %zu bytes",
	          (unsigned long long)idx.ftr.bundle_size, size);
	uint64_t next = BUNDLE_HEADER_SIZE, raw = 0;
	for (uint32_t i = 0; i < idx.count; i++) {
		const struct bundle_entry *e = &idx.entries[i];
		FZ_ASSERT(e->ordinal == i && e->off == next, "entry %u: ordinal %u at %llu, expected %llu",
		          i, e->ordinal, (unsigned long long)e->off, (unsigned long long)next);
		FZ_ASSERT(e->frame_size <= idx.ftr.index_off - e->off - BUNDLE_ENTRY_SIZE,
		          "entry %u's frame runs into the index", i);
		next = e->off + BUNDLE_ENTRY_SIZE + e->frame_size;
		raw += e->raw_size;
		FZ_ASSERT(raw >= e->raw_size, "raw sizes overflow");
		fz_seen_add(seen, e->name, e->raw_size);
	}
	FZ_ASSERT(next == idx.ftr.index_off, "the entries end at %llu, the index starts at %llu",
	          (unsigned long long)next, (unsigned long long)idx.ftr.index_off);
	FZ_ASSERT(raw == idx.hdr.total_raw_bytes, "raw sizes add up to %llu, the header says %llu",
	          (unsigned long long)raw, (unsigned long long)idx.hdr.total_raw_bytes);
	bundle_index_free(&idx);
	return 0;
}

/* An unpacked database opens verified, holds what unpack said, and answers a search. */
static void fz_open_unpacked(const struct bundle_db_stats *st, struct fz_rng *r)
{
	strata_db *db = NULL;
	err_clear();
	int rc = strata_open(fz_target, NULL, STRATA_READONLY | STRATA_VERIFY, &db);
	FZ_ASSERT(rc == 0, "an unpacked database does not open: %d (%s)", rc, strata_strerror(rc));
	struct strata_stats s;
	FZ_ASSERT(strata_stats(db, &s) == 0, "stats");
	FZ_ASSERT(s.segments == st->segments && s.vectors == st->vectors && s.dim == st->dim,
	          "open sees %u segments, %llu vectors, dim %u; unpack said %u, %llu, %u", s.segments,
	          (unsigned long long)s.vectors, s.dim, st->segments,
	          (unsigned long long)st->vectors, st->dim);
	float *q = calloc(s.dim, sizeof *q);
	FZ_ASSERT(q != NULL, "query of dim %u", s.dim);
	for (uint32_t j = 0; j < s.dim; j++)
		q[j] = (float)(fz_u32(r) % 2001) / 1000.0f - 1.0f;
	uint64_t ids[FZ_K];
	float dists[FZ_K];
	strata_search_options so;
	strata_search_options_default(&so);
	rc = strata_search(db, q, 1, FZ_K, &so, ids, dists);
	FZ_ASSERT(rc == 0, "search of an unpacked database: %d", rc);
	if (s.vectors > 0)
		FZ_ASSERT(ids[0] != STRATA_NO_ID, "no hit among %llu vectors",
		          (unsigned long long)s.vectors);
	free(q);
	FZ_ASSERT(strata_close(db) == 0, "close");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!fz_parent[0])
		fz_setup();
	struct fz_rng r = fz_rng_of(data, size);

	struct fz_seen by_index = {0, 0};
	int irc = fz_index(data, size, &by_index);

	struct bundle_mem m;
	struct bundle_source src;
	struct fz_seen by_verify = {0, 0}, by_unpack = {0, 0};
	struct bundle_db_stats vst, ust;
	bundle_source_mem(&m, data, size, &src);
	err_clear();
	int vrc = bundle_verify(&src, FZ_ENTRY_MAX, fz_on_entry, &by_verify, &vst);
	if (vrc)
		FZ_ASSERT(fz_clean_error(vrc) && err_detail()[0], "bundle_verify: %d (%s), detail \"%s\"",
		          vrc, strata_strerror(vrc), err_detail());
	FZ_ASSERT(vst.entries == by_verify.n, "verify counted %u entries, reported %u", vst.entries,
	          by_verify.n);

	struct bundle_unpack_opts o = {.max_bytes = FZ_TOTAL_MAX, .skip_space_check = true};
	bundle_source_mem(&m, data, size, &src);
	err_clear();
	int urc = bundle_unpack(&src, fz_target, &o, fz_on_entry, &by_unpack, &ust);
	if (urc) {
		FZ_ASSERT(fz_clean_error(urc) && err_detail()[0], "bundle_unpack: %d (%s), detail \"%s\"",
		          urc, strata_strerror(urc), err_detail());
		fz_assert_parent_empty("a failed unpack");
	}
	if (vrc != STRATA_ELIMIT && urc != STRATA_ELIMIT) {
		FZ_ASSERT(urc == vrc, "unpack says %d, verify %d", urc, vrc);
		FZ_ASSERT(by_unpack.n == by_verify.n && by_unpack.h == by_verify.h,
		          "unpack saw %u entries, verify %u (or other names)", by_unpack.n, by_verify.n);
	}
	if (urc == 0) {
		FZ_ASSERT(irc == 0, "unpacked, but read from the back it is refused: %d", irc);
		FZ_ASSERT(by_index.n == by_unpack.n && by_index.h == by_unpack.h,
		          "the index lists %u entries, unpack saw %u (or other names)", by_index.n,
		          by_unpack.n);
		fz_open_unpacked(&ust, &r);
		fz_rmtree(fz_target);
		fz_assert_parent_empty("removing the unpacked database");
	}
	return 0;
}
