/*
 * db_write_concurrency_test.c - writers and searchers on one handle at once
 * (a plain program, suite 'concurrency', run under ThreadSanitizer by
 * tools/scripts/test.sh).
 *
 * Two writer threads upsert and delete on disjoint id ranges (so each knows
 * the final state of its ids), one of them with batches and explicit flushes;
 * the memtable is small, so freezes, flushes and version switches happen
 * under the searchers' feet. Two search threads query all the while and check
 * what can be checked mid-flight: results sorted, no id twice, no id outside
 * the written ranges. At the end every id must hold its writer's last write,
 * through strata_get, after a reopen, and a search with ef above the count
 * must return the brute-force nearest.
 *
 * In builds with failpoints, a second phase: four writers share group
 * commits when every fsync starts to fail. Each must get STRATA_EFSYNC, all
 * the same first failure; stats must say so, with its detail; after a reopen
 * every write acknowledged before it holds.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "strata.h"
#if STRATA_FAILPOINTS
#include "failpoint.h"
#endif

#define DIM 8
#define PER_WRITER 600
#define WRITERS 2
#define ROUNDS 1500

static float final_vec[WRITERS * PER_WRITER][DIM];
static bool final_live[WRITERS * PER_WRITER];
static atomic_bool writers_done;
static atomic_int failures;

#define CHECK(cond, ...)                                                                        \
	do {                                                                                         \
		if (!(cond)) {                                                                           \
			fprintf(stderr, __VA_ARGS__);                                                        \
			fputc('\n', stderr);                                                                 \
			atomic_fetch_add(&failures, 1);                                                      \
		}                                                                                        \
	} while (0)

static uint64_t rng(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

struct writer_arg {
	strata_db *db;
	int w;
};

static void *writer(void *p)
{
	struct writer_arg *a = p;
	uint64_t s = 77 + (uint64_t)a->w;
	uint64_t base = (uint64_t)a->w * PER_WRITER;
	for (int r = 0; r < ROUNDS; r++) {
		size_t n = a->w == 0 ? 1 : 1 + rng(&s) % 16;
		uint64_t ids[16];
		float vecs[16 * DIM];
		bool del = rng(&s) % 5 == 0;
		for (size_t i = 0; i < n; i++) {
			ids[i] = base + rng(&s) % PER_WRITER;
			for (int j = 0; j < DIM; j++)
				vecs[i * DIM + j] = (float)(rng(&s) % 1000) / 100.0f;
		}
		int rc = del ? strata_delete(a->db, ids, n) : strata_upsert(a->db, ids, vecs, n);
		CHECK(rc == 0, "writer %d: %s: %s", a->w, strata_strerror(rc), strata_last_error_detail());
		for (size_t i = 0; i < n; i++) {
			final_live[ids[i]] = !del;
			if (!del)
				memcpy(final_vec[ids[i]], vecs + i * DIM, sizeof final_vec[0]);
		}
		if (a->w == 1 && r % 300 == 299) {
			rc = strata_flush(a->db);
			CHECK(rc == 0, "flush: %s", strata_last_error_detail());
		}
	}
	return NULL;
}

static void *searcher(void *p)
{
	strata_db *db = p;
	uint64_t s = 1234;
	while (!atomic_load(&writers_done)) {
		float q[DIM];
		for (int j = 0; j < DIM; j++)
			q[j] = (float)(rng(&s) % 1000) / 100.0f;
		uint64_t ids[10];
		float d[10];
		int rc = strata_search(db, q, 1, 10, NULL, ids, d);
		CHECK(rc == 0, "search: %s", strata_last_error_detail());
		for (int i = 0; i < 10; i++) {
			if (ids[i] == STRATA_NO_ID)
				continue;
			CHECK(ids[i] < WRITERS * PER_WRITER, "search returned id %llu never written",
			      (unsigned long long)ids[i]);
			CHECK(i == 0 || d[i] >= d[i - 1], "results unsorted at %d", i);
			for (int j = 0; j < i; j++)
				CHECK(ids[j] != ids[i], "id %llu twice", (unsigned long long)ids[i]);
		}
		float v[DIM];
		uint64_t id = rng(&s) % (WRITERS * PER_WRITER);
		rc = strata_get(db, id, v);
		CHECK(rc == 0 || rc == STRATA_ENOTFOUND, "get: %s", strata_last_error_detail());
	}
	return NULL;
}

static void check_final(strata_db *db, const char *when)
{
	for (uint64_t id = 0; id < WRITERS * PER_WRITER; id++) {
		float v[DIM];
		int rc = strata_get(db, id, v);
		if (!final_live[id]) {
			CHECK(rc == STRATA_ENOTFOUND, "%s: id %llu should be deleted (rc %d)", when,
			      (unsigned long long)id, rc);
			continue;
		}
		CHECK(rc == 0 && memcmp(v, final_vec[id], sizeof v) == 0, "%s: id %llu lost its last write",
		      when, (unsigned long long)id);
	}
	float q[DIM] = {5, 5, 5, 5, 5, 5, 5, 5};
	double best = INFINITY;
	for (uint64_t id = 0; id < WRITERS * PER_WRITER; id++) {
		if (!final_live[id])
			continue;
		double dd = 0;
		for (int j = 0; j < DIM; j++)
			dd += ((double)q[j] - final_vec[id][j]) * ((double)q[j] - final_vec[id][j]);
		if (dd < best)
			best = dd;
	}
	strata_search_options so;
	strata_search_options_default(&so);
	so.ef = 2000;
	uint64_t ids[1];
	float d[1];
	CHECK(strata_search(db, q, 1, 1, &so, ids, d) == 0, "final search failed");
	CHECK(fabs(d[0] - best) <= 1e-3, "%s: nearest at %g, brute force %g", when, d[0], best);
}

#if STRATA_FAILPOINTS
#define FAIL_WRITERS 4
#define FAIL_IDS 4000

struct fail_arg {
	strata_db *db;
	int t;
	int acked; /* ids t*FAIL_IDS .. +acked-1 were acknowledged */
	int rc;    /* the first failure */
};

static void vec_of(uint64_t id, float *v)
{
	for (int j = 0; j < DIM; j++)
		v[j] = (float)((id * 31 + (uint64_t)j * 7) % 1000) / 10.0f;
}

static void *fail_writer(void *p)
{
	struct fail_arg *a = p;
	for (int i = 0; i < FAIL_IDS; i++) {
		uint64_t id = (uint64_t)a->t * FAIL_IDS + (uint64_t)i;
		float v[DIM];
		vec_of(id, v);
		int rc = strata_upsert(a->db, &id, v, 1);
		if (rc) {
			a->rc = rc;
			return NULL;
		}
		a->acked = i + 1;
	}
	return NULL;
}

/* Every fsync fails while four writers share group commits. */
static void fail_phase(const char *base)
{
	char dir[600];
	snprintf(dir, sizeof dir, "%s/wconc-fail-%d", base, (int)getpid());
	strata_options o;
	strata_options_default(&o);
	o.dim = DIM;
	o.threads = 1;
	o.memtable_max_vectors = 100000; /* no flush, no rotation: only the group syncs fail */
	o.wal_file_bytes = 1ull << 30;
	strata_db *db;
	if (strata_open(dir, &o, STRATA_CREATE, &db) != 0) {
		CHECK(0, "fail phase: open: %s", strata_last_error_detail());
		return;
	}
	pthread_t t[FAIL_WRITERS];
	struct fail_arg a[FAIL_WRITERS];
	for (int i = 0; i < FAIL_WRITERS; i++) {
		a[i] = (struct fail_arg){db, i, 0, 0};
		pthread_create(&t[i], NULL, fail_writer, &a[i]);
	}
	usleep(30000);
	fp_arm_sticky(FP_FSYNC, 1, EIO);
	for (int i = 0; i < FAIL_WRITERS; i++)
		pthread_join(t[i], NULL);
	fp_disarm_all();
	int acked = 0;
	for (int i = 0; i < FAIL_WRITERS; i++) {
		CHECK(a[i].rc == STRATA_EFSYNC, "fail phase: writer %d got %d, not STRATA_EFSYNC", i, a[i].rc);
		acked += a[i].acked;
	}
	struct strata_stats st;
	strata_stats(db, &st);
	CHECK(st.write_error == STRATA_EFSYNC && strstr(st.write_error_detail, "fdatasync"),
	      "fail phase: stats say %d (%s)", st.write_error, st.write_error_detail);
	uint64_t id = 1ull << 40;
	float v[DIM] = {0};
	CHECK(strata_upsert(db, &id, v, 1) == STRATA_EFSYNC, "fail phase: a write after the failure");
	strata_close(db);
	if (strata_open(dir, &o, 0, &db) != 0) {
		CHECK(0, "fail phase: reopen: %s", strata_last_error_detail());
		return;
	}
	for (int i = 0; i < FAIL_WRITERS; i++)
		for (int k = 0; k < a[i].acked; k++) {
			uint64_t want_id = (uint64_t)i * FAIL_IDS + (uint64_t)k;
			float got[DIM], want[DIM];
			vec_of(want_id, want);
			CHECK(strata_get(db, want_id, got) == 0 && memcmp(got, want, sizeof got) == 0,
			      "fail phase: acknowledged id %llu lost", (unsigned long long)want_id);
		}
	strata_close(db);
	printf("fail phase: %d writes acknowledged before every fsync failed; all there after reopen\n",
	       acked);
	char cmd[700];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	CHECK(system(cmd) == 0, "rm %s", dir);
}
#endif

int main(void)
{
	const char *tmp = getenv("STRATA_TEST_TMP");
	if (!tmp || !*tmp)
		tmp = "/tmp";
	mkdir(tmp, 0755); /* run alone (suite concurrency, under TSan), nobody made it yet */
	char dir[512];
	snprintf(dir, sizeof dir, "%s/wconc-%d", tmp, (int)getpid());
	strata_options o;
	strata_options_default(&o);
	o.dim = DIM;
	o.M = 8;
	o.ef_construction = 40;
	o.threads = 2;
	o.memtable_max_vectors = 200;
	o.sync_mode = STRATA_SYNC_INTERVAL; /* durability is not the point; keep the fsyncs few */
	o.sync_interval_ms = 20;
	strata_db *db;
	int rc = strata_open(dir, &o, STRATA_CREATE, &db);
	if (rc) {
		fprintf(stderr, "open: %s\n", strata_last_error_detail());
		return 1;
	}
	pthread_t w[WRITERS], s[2];
	struct writer_arg wa[WRITERS];
	for (int i = 0; i < 2; i++)
		pthread_create(&s[i], NULL, searcher, db);
	for (int i = 0; i < WRITERS; i++) {
		wa[i] = (struct writer_arg){db, i};
		pthread_create(&w[i], NULL, writer, &wa[i]);
	}
	for (int i = 0; i < WRITERS; i++)
		pthread_join(w[i], NULL);
	atomic_store(&writers_done, true);
	for (int i = 0; i < 2; i++)
		pthread_join(s[i], NULL);
	check_final(db, "before reopen");
	struct strata_stats st;
	strata_stats(db, &st);
	printf("%llu upserts, %llu deletes, %llu flushes, %u segments, %llu write stalls\n",
	       (unsigned long long)st.upserts, (unsigned long long)st.deletes,
	       (unsigned long long)st.flushes, st.segments, (unsigned long long)st.write_stalls);
	CHECK(strata_close(db) == 0, "close: %s", strata_last_error_detail());
	rc = strata_open(dir, &o, STRATA_VERIFY, &db);
	CHECK(rc == 0, "reopen: %s", strata_last_error_detail());
	if (rc == 0) {
		check_final(db, "after reopen");
		strata_close(db);
	}
	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		return 1;
#if STRATA_FAILPOINTS
	fail_phase(tmp);
#endif
	int f = atomic_load(&failures);
	printf("%s: %d failures\n", f ? "FAIL" : "ok", f);
	return f ? 1 : 0;
}
