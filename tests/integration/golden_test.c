/*
 * golden_test.c - files written by each released format version must open
 * forever (STYLE.md 2.9). tests/golden/v1/tiny/ is a database written by the
 * v1 writer (100 vectors, dim 5, M 4, one thread, seed 3) with, beside it,
 * tiny.expected: the answers it must keep giving.
 *
 * To regenerate after a deliberate change of the v1 writer (which should not
 * happen: v1 files in the wild would differ from it), run the test with
 * STRATA_GOLDEN_REGEN=1; commit the result only with a note in FORMAT.md.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "strata.h"
#include "t_support.h"

enum { G_N = 100, G_DIM = 5, G_K = 5, G_Q = 8 };

static void golden_vectors(float *v)
{
	for (int i = 0; i < G_N; i++)
		for (int j = 0; j < G_DIM; j++)
			v[i * G_DIM + j] = (float)sin(i * 7.0 + j * 1.3) * 10.0f;
}

static const char *golden_dir(char *buf, size_t len)
{
	const char *g = getenv("STRATA_GOLDEN");
	snprintf(buf, len, "%s/v1/tiny", g && *g ? g : "tests/golden");
	return buf;
}

static void regenerate(const char *dir, const float *v, const char *expected)
{
	uint64_t ids[G_N];
	for (int i = 0; i < G_N; i++)
		ids[i] = (uint64_t)i * 3 + 1;
	strata_options o;
	strata_options_default(&o);
	o.dim = G_DIM;
	o.M = 4;
	o.ef_construction = 32;
	o.threads = 1;
	o.seed = 3;
	t_rmtree(dir);
	cr_assert_eq(strata_build(dir, &o, ids, v, G_N), 0, "%s", strata_last_error_detail());
	strata_db *db;
	cr_assert_eq(strata_open(dir, NULL, STRATA_READONLY, &db), 0);
	FILE *f = fopen(expected, "w");
	cr_assert_not_null(f);
	for (int q = 0; q < G_Q; q++) {
		uint64_t r[G_K];
		float d[G_K];
		cr_assert_eq(strata_search(db, v + q * 11 * G_DIM, 1, G_K, NULL, r, d), 0);
		for (int i = 0; i < G_K; i++)
			fprintf(f, "%llu %.6e%s", (unsigned long long)r[i], (double)d[i], i + 1 < G_K ? " " : "\n");
	}
	fclose(f);
	strata_close(db);
}

Test(golden, v1_database_opens_verifies_and_answers_as_recorded)
{
	char dir[1024], expected[1100];
	golden_dir(dir, sizeof dir);
	snprintf(expected, sizeof expected, "%s.expected", dir);
	float v[G_N * G_DIM];
	golden_vectors(v);
	if (getenv("STRATA_GOLDEN_REGEN"))
		regenerate(dir, v, expected);

	strata_db *db;
	int rc = strata_open(dir, NULL, STRATA_READONLY | STRATA_VERIFY, &db);
	cr_assert_eq(rc, 0, "%s: %s: %s", dir, strata_strerror(rc), strata_last_error_detail());
	FILE *f = fopen(expected, "r");
	cr_assert_not_null(f, "%s missing", expected);
	for (int q = 0; q < G_Q; q++) {
		uint64_t r[G_K];
		float d[G_K];
		cr_assert_eq(strata_search(db, v + q * 11 * G_DIM, 1, G_K, NULL, r, d), 0);
		for (int i = 0; i < G_K; i++) {
			unsigned long long want_id;
			double want_d;
			cr_assert_eq(fscanf(f, "%llu %le", &want_id, &want_d), 2);
			cr_assert_eq(r[i], want_id, "query %d rank %d", q, i);
			cr_assert(fabs(d[i] - want_d) <= 1e-4 * (1 + fabs(want_d)), "query %d rank %d: %g vs %g",
			          q, i, (double)d[i], want_d);
		}
	}
	fclose(f);
	float got[G_DIM];
	cr_assert_eq(strata_get(db, 3 * 42 + 1, got), 0);
	cr_assert(memcmp(got, v + 42 * G_DIM, sizeof got) == 0);
	strata_close(db);
}
