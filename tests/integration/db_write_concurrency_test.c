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
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "strata.h"
#include "t_plain.h"

#define DIM 8
#define PER_WRITER 600
#define WRITERS 2
#define ROUNDS 1500

static float final_vec[WRITERS * PER_WRITER][DIM];
static bool final_live[WRITERS * PER_WRITER];
static atomic_bool writers_done;

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
		size_t n = a->w == 0 ? 1 : 1 + t_rng(&s) % 16;
		uint64_t ids[16];
		float vecs[16 * DIM];
		bool del = t_rng(&s) % 5 == 0;
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
		if (a->w == 1 && r % 300 == 299) {
			rc = strata_flush(a->db);
			T_CHECK(rc == 0, "flush: %s", strata_last_error_detail());
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
			q[j] = (float)(t_rng(&s) % 1000) / 100.0f;
		uint64_t ids[10];
		float d[10];
		int rc = strata_search(db, q, 1, 10, NULL, ids, d);
		T_CHECK(rc == 0, "search: %s", strata_last_error_detail());
		for (int i = 0; i < 10; i++) {
			if (ids[i] == STRATA_NO_ID)
				continue;
			T_CHECK(ids[i] < WRITERS * PER_WRITER, "search returned id %llu never written",
			      (unsigned long long)ids[i]);
			T_CHECK(i == 0 || d[i] >= d[i - 1], "results unsorted at %d", i);
			for (int j = 0; j < i; j++)
				T_CHECK(ids[j] != ids[i], "id %llu twice", (unsigned long long)ids[i]);
		}
		float v[DIM];
		uint64_t id = t_rng(&s) % (WRITERS * PER_WRITER);
		rc = strata_get(db, id, v);
		T_CHECK(rc == 0 || rc == STRATA_ENOTFOUND, "get: %s", strata_last_error_detail());
	}
	return NULL;
}

int main(void)
{
	const char *tmp = getenv("STRATA_TEST_TMP");
	char dir[512];
	if (tmp)
		mkdir(tmp, 0755); /* this test may be the first of its build to run */
	snprintf(dir, sizeof dir, "%s/wconc-%d", tmp ? tmp : "/tmp", (int)getpid());
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
	t_check_final(db, &final_vec[0][0], final_live, WRITERS * PER_WRITER, DIM, "before reopen");
	struct strata_stats st;
	strata_stats(db, &st);
	printf("%llu upserts, %llu deletes, %llu flushes, %u segments, %llu write stalls\n",
	       (unsigned long long)st.upserts, (unsigned long long)st.deletes,
	       (unsigned long long)st.flushes, st.segments, (unsigned long long)st.write_stalls);
	T_CHECK(strata_close(db) == 0, "close: %s", strata_last_error_detail());
	rc = strata_open(dir, &o, STRATA_VERIFY, &db);
	T_CHECK(rc == 0, "reopen: %s", strata_last_error_detail());
	if (rc == 0) {
		t_check_final(db, &final_vec[0][0], final_live, WRITERS * PER_WRITER, DIM, "after reopen");
		strata_close(db);
	}
	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		return 1;
	int f = atomic_load(&t_failures);
	printf("%s: %d failures\n", f ? "FAIL" : "ok", f);
	return f ? 1 : 0;
}
