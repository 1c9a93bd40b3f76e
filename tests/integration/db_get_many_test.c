/*
 * db_get_many_test.c - strata_get_many() answers exactly what strata_get()
 * answers for each id, wherever the id lives (segment, memtable, deleted,
 * superseded, never written), with and without found_out, on writable and
 * read-only handles; and it refuses bad arguments.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "strata.h"
#include "t_support.h"

enum { DIM = 8 };

static strata_db *open_writer(const char *dir, strata_metric metric)
{
	strata_options o;
	strata_options_default(&o);
	o.dim = DIM;
	o.metric = metric;
	o.sync_mode = STRATA_SYNC_NONE;
	strata_db *db;
	cr_assert_eq(strata_open(dir, &o, STRATA_CREATE, &db), 0, "%s", strata_last_error_detail());
	return db;
}

static void upsert_range(strata_db *db, uint64_t first, size_t n, uint64_t seed)
{
	uint64_t *ids = malloc(n * sizeof *ids);
	float *v = t_random_vectors(n, DIM, seed);
	for (size_t i = 0; i < n; i++)
		ids[i] = first + i;
	cr_assert_eq(strata_upsert(db, ids, v, n), 0, "%s", strata_last_error_detail());
	free(ids);
	free(v);
}

/* Every id of `ids` through strata_get_many (with found_out) against strata_get one by one. */
static void check_against_get(strata_db *db, const uint64_t *ids, size_t n)
{
	float *many = malloc(n * DIM * sizeof(float));
	uint8_t *found = malloc(n);
	memset(found, 7, n);
	cr_assert_eq(strata_get_many(db, ids, n, many, found), 0, "%s", strata_last_error_detail());
	cr_assert_str_empty(strata_last_error_detail(), "missing ids are answers, not errors");
	size_t present = 0;
	for (size_t i = 0; i < n; i++) {
		float one[DIM];
		int rc = strata_get(db, ids[i], one);
		cr_assert(rc == 0 || rc == STRATA_ENOTFOUND, "strata_get(%llu) = %d", (unsigned long long)ids[i], rc);
		cr_assert_eq(found[i], rc == 0 ? 1 : 0, "id %llu: found %u, strata_get %d",
		             (unsigned long long)ids[i], found[i], rc);
		for (int j = 0; j < DIM; j++)
			cr_assert_eq(many[i * DIM + j], rc == 0 ? one[j] : 0.0f, "id %llu component %d",
			             (unsigned long long)ids[i], j);
		present += rc == 0;
	}
	/* Existence only: no vectors. */
	uint8_t *found2 = malloc(n);
	cr_assert_eq(strata_get_many(db, ids, n, NULL, found2), 0, "%s", strata_last_error_detail());
	cr_assert_eq(memcmp(found, found2, n), 0);
	free(found2);
	free(found);
	free(many);
	cr_assert_gt(present, 0);
}

Test(db_get_many, matches_strata_get_across_segments_memtable_deletes_and_updates, .timeout = 120)
{
	struct t_dir d = t_dir_new_mem();
	strata_db *db = open_writer(d.path, STRATA_METRIC_L2);
	upsert_range(db, 0, 300, 1);          /* ids 0..299 */
	cr_assert_eq(strata_flush(db), 0);    /* ... into a segment */
	upsert_range(db, 250, 100, 2);        /* 250..299 superseded in the memtable, 300..349 new */
	uint64_t dead[] = {5, 260, 340, 9999}; /* segment, superseded, memtable, absent */
	cr_assert_eq(strata_delete(db, dead, 4), 0);
	upsert_range(db, 340, 1, 3);          /* deleted, then written again: present */

	uint64_t ids[420];
	for (size_t i = 0; i < 400; i++)
		ids[i] = i;                       /* 350..399 never written */
	for (size_t i = 400; i < 420; i++)
		ids[i] = (i * 37) % 360;          /* duplicates, out of order */
	check_against_get(db, ids, 420);
	cr_assert_eq(strata_flush(db), 0);    /* the same answers once everything is in segments */
	check_against_get(db, ids, 420);
	cr_assert_eq(strata_close(db), 0);

	cr_assert_eq(strata_open(d.path, NULL, STRATA_READONLY, &db), 0, "%s", strata_last_error_detail());
	check_against_get(db, ids, 420);
	strata_close(db);
	t_dir_free(&d);
}

Test(db_get_many, without_found_out_a_missing_id_fails_naming_it, .timeout = 60)
{
	struct t_dir d = t_dir_new_mem();
	strata_db *db = open_writer(d.path, STRATA_METRIC_L2);
	upsert_range(db, 10, 5, 4); /* ids 10..14 */
	float v[3 * DIM];
	uint64_t ok[] = {14, 10, 12};
	cr_assert_eq(strata_get_many(db, ok, 3, v, NULL), 0, "%s", strata_last_error_detail());
	float one[DIM];
	cr_assert_eq(strata_get(db, 10, one), 0);
	cr_assert_eq(memcmp(v + DIM, one, sizeof one), 0);

	uint64_t bad[] = {10, 11, 77};
	cr_assert_eq(strata_get_many(db, bad, 3, v, NULL), STRATA_ENOTFOUND);
	cr_assert_not_null(strstr(strata_last_error_detail(), "ids[2] = 77"), "detail: %s",
	                   strata_last_error_detail());
	strata_close(db);
	t_dir_free(&d);
}

Test(db_get_many, cosine_rows_are_the_normalised_vectors, .timeout = 60)
{
	struct t_dir d = t_dir_new_mem();
	strata_db *db = open_writer(d.path, STRATA_METRIC_COSINE);
	uint64_t id = 3;
	float v[DIM];
	for (int j = 0; j < DIM; j++)
		v[j] = (float)(j + 1);
	cr_assert_eq(strata_upsert(db, &id, v, 1), 0);
	float out[DIM];
	uint8_t found;
	cr_assert_eq(strata_get_many(db, &id, 1, out, &found), 0);
	cr_assert_eq(found, 1);
	double norm = 0;
	for (int j = 0; j < DIM; j++)
		norm += (double)out[j] * out[j];
	cr_assert_float_eq(norm, 1.0, 1e-5);
	cr_assert_float_eq(out[1] / out[0], 2.0, 1e-5);
	strata_close(db);
	t_dir_free(&d);
}

Test(db_get_many, refuses_bad_arguments_and_accepts_an_empty_batch, .timeout = 60)
{
	struct t_dir d = t_dir_new_mem();
	strata_db *db = open_writer(d.path, STRATA_METRIC_L2);
	uint64_t id = 1;
	float v[DIM];
	uint8_t f;
	cr_assert_eq(strata_get_many(NULL, &id, 1, v, &f), STRATA_EINVAL);
	cr_assert_eq(strata_get_many(db, NULL, 1, v, &f), STRATA_EINVAL);
	cr_assert_eq(strata_get_many(db, &id, 1, NULL, NULL), STRATA_EINVAL);
	cr_assert_neq(strata_last_error_detail()[0], '\0');
	cr_assert_eq(strata_get_many(db, NULL, 0, v, NULL), 0);
	cr_assert_eq(strata_get_many(db, &id, 0, NULL, &f), 0);
	strata_close(db);
	t_dir_free(&d);
}
