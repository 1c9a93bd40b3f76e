/*
 * fio_record_concurrency_test.c - the power-loss recorder (format/fio_record.c)
 * with threads doing I/O at once (suite 'concurrency'; meant for TSan).
 *
 * Writer threads each create a file, make its name durable (directory sync),
 * then append fixed-size records, syncing every other one; a renamer thread
 * meanwhile replaces a file by write-temporary, fsync, rename, directory sync.
 *   - Without a crash: after the power loss every writer's file holds exactly
 *     its records up to its last sync, and the renamed file its last version.
 *   - With a crash point in the middle (every run prints its op count): each
 *     thread stops at its first error; after the power loss each writer's
 *     file holds a whole prefix of its records, at least every record whose
 *     sync returned 0, and the renamed file some version it wrote whole, at
 *     least the last one whose commit returned 0.
 *
 * A plain program (Criterion cannot start under TSan, see
 * db_concurrency_test.c). Exit 0 = pass, 1 = fail, 77 = skipped (built
 * without failpoints).
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "fio.h"
#include "fio_record.h"

#if !STRATA_FAILPOINTS

int main(void)
{
	puts("skip: built without failpoints (-Dfailpoints=true)");
	return 77;
}

#else

#define WRITERS 3
#define RECORDS 40
#define REC_SIZE 8
#define VERSIONS 12

static char root[512];
static int failures;

#define CHECK(cond, ...)                                                                           \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			printf("FAIL %s:%d: ", __FILE__, __LINE__);                                \
			printf(__VA_ARGS__);                                                       \
			printf("\n");                                                              \
			failures++;                                                                \
		}                                                                                  \
	} while (0)

struct writer {
	int idx;
	char path[600];
	int acked;   /* records covered by a sync that returned 0 */
	int written; /* records whose write returned 0 */
	bool named;  /* the directory sync after the create returned 0 */
};

/* Record i of writer w: REC_SIZE bytes (and a NUL). */
static void record(int w, int i, char out[16])
{
	snprintf(out, 16, "w%d:%04d;", w % 10, i % 10000);
}

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	int fd;
	if (fio_open(w->path, O_WRONLY | O_CREAT | O_EXCL, 0644, &fd))
		return NULL;
	w->named = fio_fsync_dir(root) == 0;
	for (int i = 0; w->named && i < RECORDS; i++) {
		char rec[16];
		record(w->idx, i, rec);
		if (fio_pwrite_all(fd, rec, REC_SIZE, (uint64_t)i * REC_SIZE, w->path))
			break;
		w->written = i + 1;
		if (i % 2 == 1 || i == RECORDS - 1) {
			if (fio_fdatasync(fd, w->path))
				break;
			w->acked = i + 1;
		}
	}
	fio_close(fd);
	return NULL;
}

struct renamer {
	int committed; /* last version whose commit returned 0, -1 if none */
};

static void version(int v, char out[32])
{
	snprintf(out, 32, "version %02d of the file", v);
}

static void *renamer_main(void *arg)
{
	struct renamer *r = arg;
	for (int v = 0; v < VERSIONS; v++) {
		char buf[32];
		version(v, buf);
		if (fio_write_file_atomic(root, "CURRENT", buf, strlen(buf)))
			break;
		r->committed = v;
	}
	return NULL;
}

/* Run the workload; with crash_at > 0 the machine dies at that op. Returns the ops counted. */
static uint64_t run(uint64_t crash_at, struct writer *w, struct renamer *r)
{
	pthread_t th[WRITERS + 1];
	if (fio_record_start(root)) {
		CHECK(0, "fio_record_start: %s", err_detail());
		return 0;
	}
	fio_record_crash_after(crash_at);
	*r = (struct renamer){.committed = -1};
	for (int i = 0; i < WRITERS; i++) {
		w[i] = (struct writer){.idx = i};
		snprintf(w[i].path, sizeof w[i].path, "%s/w%d", root, i);
		pthread_create(&th[i], NULL, writer_main, &w[i]);
	}
	pthread_create(&th[WRITERS], NULL, renamer_main, r);
	for (int i = 0; i <= WRITERS; i++)
		pthread_join(th[i], NULL);
	uint64_t ops = fio_record_ops();
	/* Nothing fails before the crash point, so a point within the workload is reached. */
	CHECK(fio_record_crashed() == (crash_at > 0), "crashed %d with crash point %llu, %llu ops",
	      fio_record_crashed(), (unsigned long long)crash_at, (unsigned long long)ops);
	CHECK(fio_record_powerloss() == 0, "powerloss: %s", err_detail());
	return ops;
}

static uint8_t *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	uint8_t *buf = malloc(4096);
	*len = buf ? fread(buf, 1, 4096, f) : 0;
	fclose(f);
	return buf;
}

static void check(const struct writer *w, const struct renamer *r, bool crashed)
{
	for (int i = 0; i < WRITERS; i++) {
		size_t len = 0;
		uint8_t *b = slurp(w[i].path, &len);
		if (!b) {
			CHECK(!w[i].named, "w%d: its name was made durable, yet it is gone", i);
			continue;
		}
		int k = (int)(len / REC_SIZE);
		CHECK(len % REC_SIZE == 0, "w%d: %zu bytes, not whole records", i, len);
		CHECK(k >= w[i].acked && k <= w[i].written, "w%d: %d records, acked %d, written %d", i,
		      k, w[i].acked, w[i].written);
		if (!crashed)
			CHECK(k == w[i].acked, "w%d: %d records survived, %d were synced", i, k, w[i].acked);
		for (int j = 0; j < k; j++) {
			char rec[16];
			record(i, j, rec);
			CHECK(memcmp(b + (size_t)j * REC_SIZE, rec, REC_SIZE) == 0, "w%d: record %d differs", i, j);
		}
		free(b);
	}
	char cur[600];
	snprintf(cur, sizeof cur, "%s/CURRENT", root);
	size_t len = 0;
	uint8_t *b = slurp(cur, &len);
	if (!b) {
		CHECK(r->committed < 0, "CURRENT is gone after version %d was committed", r->committed);
		return;
	}
	int found = -1;
	for (int v = 0; v < VERSIONS; v++) {
		char buf[32];
		version(v, buf);
		if (len == strlen(buf) && memcmp(b, buf, len) == 0)
			found = v;
	}
	CHECK(found >= 0, "CURRENT holds %zu bytes that are no version", len);
	CHECK(found >= r->committed, "CURRENT is version %d, %d was committed", found, r->committed);
	if (!crashed)
		CHECK(found == VERSIONS - 1, "CURRENT is version %d after all were committed", found);
	free(b);
}

/* Each run starts from an empty root (the workload makes only files in it). */
static void wipe_root(void)
{
	const char *names[] = {"w0", "w1", "w2", "CURRENT", "CURRENT.tmp"};
	static_assert(WRITERS == 3, "names above");
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		char p[600];
		snprintf(p, sizeof p, "%s/%s", root, names[i]);
		CHECK(unlink(p) == 0 || errno == ENOENT, "unlink %s: %s", p, strerror(errno));
	}
}

int main(void)
{
	const char *base = getenv("STRATA_TEST_TMP");
	if (!base || !*base)
		base = "/tmp";
	mkdir(base, 0755);
	snprintf(root, sizeof root, "%s/strata-rec-XXXXXX", base);
	if (!mkdtemp(root)) {
		perror("mkdtemp");
		return 1;
	}
	struct writer w[WRITERS];
	struct renamer r;
	uint64_t total = run(0, w, &r);
	check(w, &r, false);
	printf("no crash: %llu ops\n", (unsigned long long)total);

	uint64_t seed = (uint64_t)getpid();
	const char *s = getenv("STRATA_SEED");
	if (s && *s)
		seed = strtoull(s, NULL, 0);
	printf("seed %llu (STRATA_SEED to repeat)\n", (unsigned long long)seed);
	for (int round = 0; round < 12 && total > 0; round++) {
		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		uint64_t at = 1 + (seed >> 33) % total;
		wipe_root();
		run(at, w, &r);
		check(w, &r, true);
	}
	wipe_root();
	rmdir(root);
	if (failures)
		printf("%d failures\n", failures);
	return failures ? 1 : 0;
}

#endif /* STRATA_FAILPOINTS */
