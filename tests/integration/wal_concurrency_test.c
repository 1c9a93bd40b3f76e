/*
 * wal_concurrency_test.c - the WAL under threads (suite 'concurrency'; the
 * TSan build of tools/scripts/test.sh runs it to find data races in group
 * commit, rotation and the INTERVAL timer thread).
 *
 * For each I/O path (io_uring, pwrite) and each sync mode: 8 threads append
 * while another thread keeps calling wal_rotate, wal_sync, wal_stats,
 * wal_last_lsn and wal_remove_upto (below half of what is acknowledged);
 * then recovery must replay every acknowledged LSN once, in order, each
 * with the payload its thread wrote (ids carry thread and sequence), and
 * under SYNC_ALWAYS fewer fsyncs than appends must have been made.
 *
 * A plain program, not a Criterion test: Criterion cannot start under
 * ThreadSanitizer (see db_concurrency_test.c). Exit 0 = pass, 1 = fail.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <ftw.h>
#include <unistd.h>

#include "err.h"
#include "wal.h"
#include "wal_record.h"

#define THREADS 8
#define PER 120
#define DIM 2u

static int failures;

static void fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "FAIL: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, " (detail: %s)\n", err_detail());
	va_end(ap);
	failures++;
}

struct run {
	struct wal *w;
	atomic_bool done;
	uint64_t lsn[THREADS][PER];     /* 0: the append failed */
};

struct targ {
	struct run *r;
	int t;
};

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return remove(path);
}

/* A fresh directory under $STRATA_TEST_TMP (or /tmp). */
static void tmp_dir(char *buf, size_t len)
{
	const char *base = getenv("STRATA_TEST_TMP");
	if (base)
		mkdir(base, 0755);
	snprintf(buf, len, "%s/wal-conc-XXXXXX", base ? base : "/tmp");
	if (!mkdtemp(buf)) {
		perror(buf);
		exit(1);
	}
}

static void *writer(void *p)
{
	struct targ *a = p;
	for (int i = 0; i < PER; i++) {
		uint8_t pre[8];
		uint64_t id = (uint64_t)a->t << 32 | (uint64_t)i;
		float v[DIM] = {(float)a->t, (float)i};
		walrec_upsert_prefix(1, DIM, pre);
		struct iovec iov[3] = {{pre, 8}, {&id, 8}, {v, sizeof v}};
		uint64_t lsn = 0;
		if (wal_append(a->r->w, WAL_REC_UPSERT, iov, 3, &lsn) != 0)
			fail("thread %d append %d", a->t, i);
		a->r->lsn[a->t][i] = lsn;
	}
	return NULL;
}

static void *meddler(void *p)
{
	struct run *r = p;
	int n = 0;
	while (!atomic_load(&r->done)) {
		struct wal_stats st;
		wal_stats(r->w, &st);
		uint64_t last = wal_last_lsn(r->w);
		if (n % 3 == 0 && wal_rotate(r->w) != 0)
			fail("wal_rotate");
		if (n % 5 == 1 && wal_sync(r->w) != 0)
			fail("wal_sync");
		/* Files wholly below a quarter of the appended LSNs: what a checkpoint would allow. */
		if (n % 4 == 2 && wal_remove_upto(r->w, last / 4) != 0)
			fail("wal_remove_upto");
		n++;
	}
	return NULL;
}

struct check {
	uint64_t n, next;
	int bad;
};

static int apply(void *ctx, uint64_t lsn, unsigned type, const uint8_t *payload, size_t len)
{
	struct check *c = ctx;
	uint32_t n;
	const uint64_t *ids;
	const float *v;
	if (c->next && lsn != c->next)
		c->bad++;
	c->next = lsn + 1;
	c->n++;
	if (type != WAL_REC_UPSERT || walrec_upsert_view(payload, len, DIM, &n, &ids, &v) != 0 ||
	    n != 1 || v[0] != (float)(ids[0] >> 32) || v[1] != (float)(ids[0] & 0xffffffffu))
		c->bad++;
	return 0;
}

static void one(enum wal_io io, int mode)
{
	char dir[512];
	tmp_dir(dir, sizeof dir);
	struct wal_config c = {.dir = dir, .dim = DIM, .sync_mode = mode, .sync_interval_ms = 2,
	                       .file_bytes = 4096, .io = io};
	memset(c.db_uuid, 0x33, 16);
	struct run *r = calloc(1, sizeof *r);
	if (wal_open(&c, 1, &r->w) != 0) {
		fail("wal_open");
		return;
	}
	pthread_t th[THREADS], m;
	struct targ a[THREADS];
	pthread_create(&m, NULL, meddler, r);
	for (int t = 0; t < THREADS; t++) {
		a[t] = (struct targ){r, t};
		pthread_create(&th[t], NULL, writer, &a[t]);
	}
	for (int t = 0; t < THREADS; t++)
		pthread_join(th[t], NULL);
	atomic_store(&r->done, true);
	pthread_join(m, NULL);
	struct wal_stats st;
	wal_stats(r->w, &st);
	uint64_t last = wal_last_lsn(r->w);
	if (wal_close(r->w) != 0)
		fail("wal_close");
	if (last != THREADS * PER)
		fail("last lsn %llu", (unsigned long long)last);
	if (mode == STRATA_SYNC_ALWAYS && !(st.fsyncs < st.appends))
		fail("io %d: %llu fsyncs for %llu appends: no group commit", io,
		     (unsigned long long)st.fsyncs, (unsigned long long)st.appends);

	/* Every LSN handed out exactly once. */
	uint8_t *seen = calloc(THREADS * PER + 1, 1);
	for (int t = 0; t < THREADS; t++)
		for (int i = 0; i < PER; i++) {
			uint64_t l = r->lsn[t][i];
			if (l == 0 || l > THREADS * PER || seen[l]++)
				fail("lsn %llu (thread %d, %d) out of range or twice", (unsigned long long)l, t, i);
		}
	free(seen);

	/* Recovery from where removal may have started: everything after a quarter replays. */
	struct check ck = {0};
	struct wal_recovery res;
	uint64_t after = THREADS * PER / 2;
	if (wal_recover(&c, after, false, apply, &ck, &res) != 0)
		fail("io %d mode %d: wal_recover", io, mode);
	if (ck.n != THREADS * PER - after || ck.bad || res.last_lsn != THREADS * PER)
		fail("io %d mode %d: replayed %llu (want %llu), %d bad, last %llu", io, mode,
		     (unsigned long long)ck.n, (unsigned long long)(THREADS * PER - after), ck.bad,
		     (unsigned long long)res.last_lsn);
	printf("io %s mode %d: %llu appends, %llu writes, %llu fsyncs, max group %llu, %u files\n",
	       st.io_uring ? "uring" : "pwrite", mode, (unsigned long long)st.appends,
	       (unsigned long long)st.writes, (unsigned long long)st.fsyncs,
	       (unsigned long long)st.max_group, st.files);
	free(r);
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int main(void)
{
	enum wal_io ios[] = {WAL_IO_URING, WAL_IO_PWRITE};
	int modes[] = {STRATA_SYNC_ALWAYS, STRATA_SYNC_INTERVAL, STRATA_SYNC_NONE};
	for (int i = 0; i < 2; i++)
		for (int m = 0; m < 3; m++)
			one(ios[i], modes[m]);
	if (failures)
		fprintf(stderr, "%d failures\n", failures);
	return failures ? 1 : 0;
}
