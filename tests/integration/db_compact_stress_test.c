/*
 * db_compact_stress_test.c - four searchers, two writers and the compactor on
 * one handle for a bounded time (a plain program, suite 'concurrency', run
 * under ThreadSanitizer by tools/scripts/test.sh), then the content must
 * equal a reference model, before and after a reopen with full verification.
 *
 * The memtable is small, the merge factor 2 and max_segments 3, so flushes,
 * tier merges, merges down to the bound and tombstone rewrites replace
 * segments all the time under the searchers; a fifth thread calls
 * strata_compact now and then, and a sixth opens the directory read-only
 * over and over (as a reader process would). Searchers check what can be
 * checked mid-flight: results sorted, no id twice, only ids that were
 * written. Writers own disjoint id ranges, so each knows the final state of
 * its ids.
 *
 *   STRATA_STRESS_SECONDS   how long the writers run (default 6)
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "strata.h"
#include "t_plain.h"

#define DIM 8
#define PER_WRITER 800
#define WRITERS 2
#define SEARCHERS 4

static float final_vec[WRITERS * PER_WRITER][DIM];
static bool final_live[WRITERS * PER_WRITER];
static atomic_bool writers_done;
static atomic_ulong searches, compacts, ro_opens;
static char g_dir[512];

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

struct writer_arg {
	strata_db *db;
	int w;
	double until;
};

static void *writer(void *p)
{
	struct writer_arg *a = p;
	uint64_t s = 177 + (uint64_t)a->w;
	uint64_t base = (uint64_t)a->w * PER_WRITER;
	while (now_s() < a->until) {
		size_t n = 1 + t_rng(&s) % 24;
		uint64_t ids[24];
		float vecs[24 * DIM];
		bool del = t_rng(&s) % 3 == 0;
		for (size_t i = 0; i < n; i++) {
			ids[i] = base + t_rng(&s) % PER_WRITER;
			for (int j = 0; j < DIM; j++)
				vecs[i * DIM + j] = (float)(t_rng(&s) % 1000) / 100.0f;
		}
		int rc = del ? strata_delete(a->db, ids, n) : strata_upsert(a->db, ids, vecs, n);
		T_CHECK(rc == 0, "writer %d: %s: %s", a->w, strata_strerror(rc), strata_last_error_detail());
		for (size_t i = 0; i < n; i++) {
			final_live[ids[i]] = !del;
			if (!del)
				memcpy(final_vec[ids[i]], vecs + i * DIM, sizeof final_vec[0]);
		}
	}
	return NULL;
}

static void check_results(const uint64_t *ids, const float *d, int k, const char *who)
{
	for (int i = 0; i < k; i++) {
		if (ids[i] == STRATA_NO_ID)
			continue;
		T_CHECK(ids[i] < WRITERS * PER_WRITER, "%s: id %llu never written", who,
		      (unsigned long long)ids[i]);
		T_CHECK(i == 0 || d[i] >= d[i - 1], "%s: results unsorted at %d", who, i);
		for (int j = 0; j < i; j++)
			T_CHECK(ids[j] != ids[i], "%s: id %llu twice", who, (unsigned long long)ids[i]);
	}
}

static void *searcher(void *p)
{
	strata_db *db = p;
	uint64_t s = 1234 + (uint64_t)atomic_fetch_add(&searches, 1);
	strata_search_options so;
	strata_search_options_default(&so);
	while (!atomic_load(&writers_done)) {
		float q[DIM];
		for (int j = 0; j < DIM; j++)
			q[j] = (float)(t_rng(&s) % 1000) / 100.0f;
		uint64_t ids[10];
		float d[10];
		so.ef = 16 + (uint32_t)(t_rng(&s) % 64);
		int rc = strata_search(db, q, 1, 10, &so, ids, d);
		T_CHECK(rc == 0, "search: %s", strata_last_error_detail());
		check_results(ids, d, 10, "search");
		float v[DIM];
		rc = strata_get(db, t_rng(&s) % (WRITERS * PER_WRITER), v);
		T_CHECK(rc == 0 || rc == STRATA_ENOTFOUND, "get: %s", strata_last_error_detail());
		atomic_fetch_add(&searches, 1);
	}
	return NULL;
}

static void *compacter(void *p)
{
	strata_db *db = p;
	while (!atomic_load(&writers_done)) {
		int rc = strata_compact(db);
		T_CHECK(rc == 0, "compact: %s", strata_last_error_detail());
		atomic_fetch_add(&compacts, 1);
		struct timespec d = {0, 300 * 1000000L};
		nanosleep(&d, NULL);
	}
	return NULL;
}

static void *reader(void *p)
{
	(void)p;
	while (!atomic_load(&writers_done)) {
		strata_db *ro;
		int rc = strata_open(g_dir, NULL, STRATA_READONLY, &ro);
		T_CHECK(rc == 0, "read-only open: %s: %s", strata_strerror(rc), strata_last_error_detail());
		if (rc)
			continue;
		float q[DIM] = {1, 2, 3, 4, 5, 6, 7, 8};
		uint64_t ids[10];
		float d[10];
		rc = strata_search(ro, q, 1, 10, NULL, ids, d);
		T_CHECK(rc == 0, "read-only search: %s", strata_last_error_detail());
		check_results(ids, d, 10, "read-only search");
		strata_close(ro);
		atomic_fetch_add(&ro_opens, 1);
	}
	return NULL;
}

int main(void)
{
	const char *tmp = getenv("STRATA_TEST_TMP");
	const char *secs = getenv("STRATA_STRESS_SECONDS");
	double seconds = secs ? atof(secs) : 6;
	if (tmp)
		mkdir(tmp, 0755); /* this test may be the first of its build to run */
	snprintf(g_dir, sizeof g_dir, "%s/cstress-%d", tmp ? tmp : "/tmp", (int)getpid());
	strata_options o;
	strata_options_default(&o);
	o.dim = DIM;
	o.M = 8;
	o.ef_construction = 32;
	o.threads = 2;
	o.memtable_max_vectors = 150;
	o.sync_mode = STRATA_SYNC_INTERVAL; /* durability is not the point; keep the fsyncs few */
	o.sync_interval_ms = 20;
	o.merge_factor = 2;
	o.max_segments = 3; /* and merges across tiers, the largest graph reused */
	o.tombstone_pct = 10;
	strata_db *db;
	int rc = strata_open(g_dir, &o, STRATA_CREATE, &db);
	if (rc) {
		fprintf(stderr, "open: %s\n", strata_last_error_detail());
		return 1;
	}
	pthread_t w[WRITERS], s[SEARCHERS], c, r;
	struct writer_arg wa[WRITERS];
	for (int i = 0; i < SEARCHERS; i++)
		pthread_create(&s[i], NULL, searcher, db);
	pthread_create(&c, NULL, compacter, db);
	pthread_create(&r, NULL, reader, NULL);
	double until = now_s() + seconds;
	for (int i = 0; i < WRITERS; i++) {
		wa[i] = (struct writer_arg){db, i, until};
		pthread_create(&w[i], NULL, writer, &wa[i]);
	}
	for (int i = 0; i < WRITERS; i++)
		pthread_join(w[i], NULL);
	atomic_store(&writers_done, true);
	for (int i = 0; i < SEARCHERS; i++)
		pthread_join(s[i], NULL);
	pthread_join(c, NULL);
	pthread_join(r, NULL);
	t_check_final(db, &final_vec[0][0], final_live, WRITERS * PER_WRITER, DIM, "before reopen");
	struct strata_stats st;
	strata_stats(db, &st);
	printf("%llu upserts, %llu deletes, %llu flushes, %llu merges (%llu failed), %lu compacts, "
	       "%u segments, %lu searches, %lu read-only opens\n",
	       (unsigned long long)st.upserts, (unsigned long long)st.deletes,
	       (unsigned long long)st.flushes, (unsigned long long)st.merges,
	       (unsigned long long)st.merge_errors, atomic_load(&compacts), st.segments,
	       atomic_load(&searches), atomic_load(&ro_opens));
	T_CHECK(st.merges > 0, "the compactor never merged");
	T_CHECK(st.merge_errors == 0, "%llu merges failed (last error %d)",
	      (unsigned long long)st.merge_errors, st.last_merge_error);
	T_CHECK(strata_close(db) == 0, "close: %s", strata_last_error_detail());
	rc = strata_open(g_dir, &o, STRATA_VERIFY, &db);
	T_CHECK(rc == 0, "reopen: %s", strata_last_error_detail());
	if (rc == 0) {
		t_check_final(db, &final_vec[0][0], final_live, WRITERS * PER_WRITER, DIM, "after reopen");
		strata_close(db);
	}
	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
	if (system(cmd) != 0)
		return 1;
	int f = atomic_load(&t_failures);
	printf("%s: %d failures\n", f ? "FAIL" : "ok", f);
	return f ? 1 : 0;
}
