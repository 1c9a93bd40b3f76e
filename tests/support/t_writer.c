/*
 * t_writer.c - see t_writer.h.
 */
#include "t_writer.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "t_support.h"

#define T_WRITER_DELAY 150 /* a delete call removes the id upserted this many calls before */

static bool is_delete(uint64_t c)
{
	return c % 4 == 3 && c >= T_WRITER_DELAY;
}

float *t_writer_vector(uint64_t i, uint32_t dim)
{
	return t_random_vectors(1, dim, 1000003 * (i + 1));
}

static void writer_run(const char *dir, uint32_t dim, volatile uint64_t *acked)
{
	strata_options o;
	strata_options_default(&o);
	o.dim = dim;
	o.M = 4;
	o.ef_construction = 16;
	o.memtable_max_vectors = 48; /* a flush every few dozen calls */
	o.merge_factor = 2;          /* and merges as soon as two segments share a tier */
	strata_db *db;
	if (strata_open(dir, &o, STRATA_CREATE, &db) != 0)
		_exit(2);
	__atomic_store_n(acked, 0, __ATOMIC_RELEASE);
	for (uint64_t c = 0;; c++) {
		int rc;
		if (is_delete(c)) {
			uint64_t id = c - T_WRITER_DELAY;
			rc = strata_delete(db, &id, 1);
		} else {
			float *v = t_writer_vector(c, dim);
			rc = strata_upsert(db, &c, v, 1);
			free(v);
		}
		if (rc != 0)
			_exit(3);
		__atomic_store_n(acked, c + 1, __ATOMIC_RELEASE);
	}
}

void t_writer_start(struct t_writer *w, const char *dir, uint32_t dim, uint64_t min_calls)
{
	w->dim = dim;
	w->acked = mmap(NULL, sizeof *w->acked, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
	                -1, 0);
	cr_assert(w->acked != MAP_FAILED);
	*w->acked = UINT64_MAX; /* not open yet */
	fflush(NULL);
	w->pid = fork();
	cr_assert(w->pid >= 0);
	if (w->pid == 0)
		writer_run(dir, dim, w->acked);
	for (int i = 0; i < 6000; i++) {
		uint64_t a = t_writer_acked(w);
		if (a != UINT64_MAX && a >= min_calls)
			return;
		int ws;
		cr_assert_eq(waitpid(w->pid, &ws, WNOHANG), 0, "the writer died: status %d", ws);
		usleep(10000);
	}
	cr_assert_fail("the writer did not make %llu calls in 60 s", (unsigned long long)min_calls);
}

uint64_t t_writer_acked(const struct t_writer *w)
{
	return __atomic_load_n(w->acked, __ATOMIC_ACQUIRE);
}

void t_writer_stop(struct t_writer *w)
{
	if (w->pid > 0) {
		kill(w->pid, SIGKILL);
		waitpid(w->pid, NULL, 0);
		w->pid = 0;
	}
	if (w->acked && w->acked != MAP_FAILED)
		munmap((void *)w->acked, sizeof *w->acked);
	w->acked = NULL;
}

uint64_t t_writer_check_prefix(strata_db *db, uint32_t dim, uint64_t lo, uint64_t hi)
{
	/* What the copy holds, id by id (every id the script can have written by call hi). */
	uint8_t *seen = calloc(hi + 1, 1);
	float *v = malloc(dim * sizeof *v);
	uint64_t n_seen = 0;
	for (uint64_t id = 0; id <= hi; id++) {
		int rc = strata_get(db, id, v);
		cr_assert(rc == 0 || rc == STRATA_ENOTFOUND, "get %llu: %d", (unsigned long long)id, rc);
		if (rc != 0)
			continue;
		float *want = t_writer_vector(id, dim);
		cr_assert_eq(memcmp(v, want, dim * sizeof *v), 0, "id %llu holds another vector",
		             (unsigned long long)id);
		free(want);
		seen[id] = 1;
		n_seen++;
	}
	struct strata_stats st;
	cr_assert_eq(strata_stats(db, &st), 0);
	cr_assert_eq(st.vectors, n_seen, "%llu live vectors, %llu ids among 0..%llu",
	             (unsigned long long)st.vectors, (unsigned long long)n_seen,
	             (unsigned long long)hi);
	/* The model after P calls, for P = 0..hi; compared in full where the counts agree. */
	uint8_t *model = calloc(hi + 1, 1);
	uint64_t live = 0;
	for (uint64_t p = 0; p <= hi; p++) {
		if (p >= lo && live == n_seen && memcmp(model, seen, hi + 1) == 0) {
			free(model);
			free(seen);
			free(v);
			return p;
		}
		if (p == hi)
			break;
		if (is_delete(p)) {
			uint64_t id = p - T_WRITER_DELAY;
			live -= model[id];
			model[id] = 0;
		} else {
			model[p] = 1;
			live++;
		}
	}
	cr_assert_fail("the copy (%llu live ids) is not the state after any of calls %llu..%llu",
	               (unsigned long long)n_seen, (unsigned long long)lo, (unsigned long long)hi);
	return 0;
}
