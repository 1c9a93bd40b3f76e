/*
 * fuzz_db_open.c - the database open path with a hostile MANIFEST: the input
 * is written as dir/MANIFEST beside valid segment files (copies of the golden
 * v1 segment, tests/golden/v1/tiny, under the names of seq 1, 2 and 3), then
 * the directory is opened STRATA_READONLY, with and without STRATA_VERIFY.
 *
 * Properties: open returns 0 or a data error with a detail, and the same code
 * with STRATA_VERIFY (the segments are sound, so verify adds no finding); on
 * failure the out-pointer is untouched. What opens reports its segments in
 * stats, and answers searches (code 0: the segments are sound) with known ids
 * closest first, STRATA_NO_ID / +inf only after the last hit; get finds what
 * search returned.
 *
 * The directory lives on /dev/shm when it exists (tmpfs: no disk I/O per
 * input) and is removed at exit. STRATA_FUZZ_SEGMENT names another segment
 * file to use instead of the golden one.
 */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "fuzz_helpers.h"
#include "manifest.h"

#ifndef FZ_GOLDEN_SEG
#error "the build defines FZ_GOLDEN_SEG, the path of the golden v1 segment"
#endif

#define FZ_SEGMENTS 3
#define FZ_K_MAX 20u

static char fz_dir[256];
static char fz_manifest[300];

static void fz_die(const char *what, const char *path)
{
	fprintf(stderr, "fuzz_db_open: %s %s: %s\n", what, path, strerror(errno));
	abort();
}

static void fz_cleanup(void)
{
	char p[320];
	for (int s = 1; s <= FZ_SEGMENTS; s++) {
		char name[MF_SEGMENT_NAME_LEN + 1];
		mf_segment_name((uint64_t)s, name, sizeof name);
		snprintf(p, sizeof p, "%s/%s", fz_dir, name);
		unlink(p);
	}
	unlink(fz_manifest);
	rmdir(fz_dir);
}

static void fz_setup(void)
{
	const char *src = getenv("STRATA_FUZZ_SEGMENT");
	if (!src || !*src)
		src = FZ_GOLDEN_SEG;
	FILE *f = fopen(src, "rb");
	if (!f)
		fz_die("open", src);
	static uint8_t seg[1 << 20];
	size_t len = fread(seg, 1, sizeof seg, f);
	fclose(f);

	const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
	snprintf(fz_dir, sizeof fz_dir, "%s/strata-fuzz-db-XXXXXX", base && *base ? base : "/tmp");
	if (!mkdtemp(fz_dir))
		fz_die("mkdtemp", fz_dir);
	snprintf(fz_manifest, sizeof fz_manifest, "%s/" MF_FILE_NAME, fz_dir);
	atexit(fz_cleanup);
	for (int s = 1; s <= FZ_SEGMENTS; s++) {
		char name[MF_SEGMENT_NAME_LEN + 1], p[320];
		mf_segment_name((uint64_t)s, name, sizeof name);
		snprintf(p, sizeof p, "%s/%s", fz_dir, name);
		FILE *o = fopen(p, "wb");
		if (!o || fwrite(seg, 1, len, o) != len || fclose(o) != 0)
			fz_die("write", p);
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_setup();
	return 0;
}

static void fz_write_manifest(const uint8_t *data, size_t size)
{
	int fd = open(fz_manifest, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		fz_die("open", fz_manifest);
	size_t done = 0;
	while (done < size) {
		ssize_t n = write(fd, data + done, size - done);
		if (n <= 0)
			fz_die("write", fz_manifest);
		done += (size_t)n;
	}
	close(fd);
}

static void fz_exercise(strata_db *db, struct fz_rng *r)
{
	struct strata_stats st;
	FZ_ASSERT(strata_stats(db, &st) == 0, "stats");
	FZ_ASSERT(st.readonly && st.segments <= FZ_SEGMENTS && st.dim >= 1, "stats: readonly %d, %u "
	          "segments, dim %u", st.readonly, st.segments, st.dim);

	float *q = calloc(st.dim, sizeof *q);
	float *got = calloc(st.dim, sizeof *got);
	FZ_ASSERT(q && got, "query of dim %u", st.dim);
	uint64_t ids[FZ_K_MAX];
	float dists[FZ_K_MAX];
	for (int round = 0; round < 2; round++) {
		/* Round 0 asks for the vector of a stored id (if there is one), round 1 for noise. */
		uint64_t id = fz_u32(r) % 128;
		if (round == 1 || strata_get(db, id, q) != 0)
			for (uint32_t j = 0; j < st.dim; j++)
				q[j] = (float)(fz_u32(r) % 2001) / 1000.0f - 1.0f;
		uint32_t k = 1 + fz_u32(r) % FZ_K_MAX;
		strata_search_options so;
		strata_search_options_default(&so);
		so.ef = fz_u32(r) % 128;
		so.threads = 1 + fz_u32(r) % 2;
		int rc = strata_search(db, q, 1, k, &so, ids, dists);
		FZ_ASSERT(rc == 0, "search of sound segments: %d", rc);
		bool ended = false;
		for (uint32_t i = 0; i < k; i++) {
			if (ids[i] == STRATA_NO_ID) {
				FZ_ASSERT(isinf(dists[i]) && dists[i] > 0, "slot %u: no id, distance %g", i,
				          (double)dists[i]);
				ended = true;
				continue;
			}
			FZ_ASSERT(!ended, "slot %u holds id %llu after an empty slot", i,
			          (unsigned long long)ids[i]);
			FZ_ASSERT(i == 0 || !(dists[i] < dists[i - 1]), "slots %u, %u out of order", i - 1, i);
			FZ_ASSERT(strata_get(db, ids[i], got) == 0, "search returned id %llu, get misses it",
			          (unsigned long long)ids[i]);
		}
		if (st.vectors > 0)
			FZ_ASSERT(ids[0] != STRATA_NO_ID, "no hit among %llu vectors",
			          (unsigned long long)st.vectors);
	}
	free(q);
	free(got);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!fz_dir[0])
		fz_setup();
	fz_write_manifest(data, size);
	struct fz_rng r = fz_rng_of(data, size);

	strata_db *const untouched = (strata_db *)(uintptr_t)0x5a5a5a5a;
	strata_db *db = untouched;
	int rc = strata_open(fz_dir, NULL, STRATA_READONLY, &db);
	if (rc) {
		FZ_ASSERT_DATA_ERROR(rc, "strata_open");
		FZ_ASSERT(db == untouched, "a failed open wrote *db_out");
	} else {
		fz_exercise(db, &r);
		FZ_ASSERT(strata_close(db) == 0, "close");
	}

	strata_db *vdb = untouched;
	int vrc = strata_open(fz_dir, NULL, STRATA_READONLY | STRATA_VERIFY, &vdb);
	FZ_ASSERT(vrc == rc, "open says %d, open with STRATA_VERIFY says %d (sound segments)", rc, vrc);
	if (vrc == 0)
		FZ_ASSERT(strata_close(vdb) == 0, "close");
	else
		FZ_ASSERT(vdb == untouched, "a failed verified open wrote *db_out");
	return 0;
}
