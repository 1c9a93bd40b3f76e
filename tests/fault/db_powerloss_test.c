/*
 * db_powerloss_test.c - the calls that make a database directory,
 * strata_build() and bundle_unpack(), under a simulated power loss
 * (format/fio_record.h) at every crash point, with and without torn writes.
 * After the machine comes back the target either does not exist, or opens
 * with STRATA_VERIFY and holds every vector; and a call that returned 0 left
 * it there. A SIGKILL could not check this: the page cache would keep what
 * was never synced. Skipped in builds without failpoints.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "strata.h"
#include "t_fault.h"
#include "t_support.h"

#if STRATA_FAILPOINTS
#include "bundle.h"
#include "fio_record.h"
#endif

#define N_VEC 150
#define DIM 8

#if STRATA_FAILPOINTS
/* The target opens, verified, and holds every vector as built. */
static void check_whole(const char *target, const float *v, const char *when)
{
	strata_db *db = NULL;
	int rc = strata_open(target, NULL, STRATA_READONLY | STRATA_VERIFY, &db);
	cr_assert_eq(rc, 0, "%s: %s exists but does not open: %d (%s)", when, target, rc,
	             strata_last_error_detail());
	struct strata_stats st;
	cr_assert_eq(strata_stats(db, &st), 0);
	cr_assert_eq(st.vectors, N_VEC, "%s", when);
	float got[DIM];
	for (uint64_t id = 0; id < N_VEC; id += 37) {
		cr_assert_eq(strata_get(db, id, got), 0, "%s: id %llu", when, (unsigned long long)id);
		cr_assert(memcmp(got, v + id * DIM, sizeof got) == 0, "%s: id %llu differs", when,
		          (unsigned long long)id);
	}
	strata_close(db);
}

static void t_options(strata_options *o)
{
	strata_options_default(o);
	o->dim = DIM;
	o->M = 4;
	o->ef_construction = 32;
	o->threads = 1;
}

/* The call that makes `target`; 0 or a STRATA_E* code. */
typedef int (*make_fn)(const char *target, const float *v, void *ctx);

/*
 * Run `make` with a power loss at crash point 1, 2, ... until it runs to its
 * end, for each tear mode; after each, the target is absent or whole.
 */
static void every_crash_point(make_fn make, const float *v, void *ctx, const char *what)
{
	const enum fio_tear tears[] = {FIO_TEAR_NONE, FIO_TEAR_BYTE};
	for (size_t t = 0; t < sizeof tears / sizeof tears[0]; t++) {
		for (uint64_t n = 1;; n++) {
			struct t_dir d = t_dir_new();
			char target[700], when[160];
			t_path(&d, "db", target, sizeof target);
			uint64_t seed = n * 1000003u + t;
			snprintf(when, sizeof when, "%s: crash at op %llu, tear %d, seed %llu", what,
			         (unsigned long long)n, (int)tears[t], (unsigned long long)seed);
			cr_assert_eq(fio_record_start(d.path), 0, "%s", strata_last_error_detail());
			fio_record_set_tear(tears[t], seed);
			fio_record_crash_after(n);
			int rc = make(target, v, ctx);
			bool crashed = fio_record_crashed();
			cr_assert(crashed ? rc != 0 : rc == 0, "%s: rc %d (%s)", when, rc,
			          strata_last_error_detail());
			cr_assert_eq(fio_record_powerloss(), 0, "%s: %s", when, strata_last_error_detail());
			if (rc == 0 || t_exists(target))
				check_whole(target, v, when);
			t_dir_free(&d);
			if (!crashed) { /* it ran to its end: every crash point was tried */
				printf("%s, tear %d: %llu crash points\n", what, (int)tears[t],
				       (unsigned long long)(n - 1));
				cr_assert_gt(n, 10, "%s is more than a few ops", what);
				break;
			}
			cr_assert_lt(n, 1000, "%s never ends?", what);
		}
	}
}

static int make_by_build(const char *target, const float *v, void *ctx)
{
	(void)ctx;
	strata_options o;
	t_options(&o);
	return strata_build(target, &o, NULL, v, N_VEC);
}

struct t_bundle {
	uint8_t *data;
	size_t len;
};

static int make_by_unpack(const char *target, const float *v, void *ctx)
{
	(void)v;
	struct t_bundle *b = ctx;
	struct bundle_mem m;
	struct bundle_source src;
	bundle_source_mem(&m, b->data, b->len, &src);
	struct bundle_unpack_opts o = {.skip_space_check = true};
	return bundle_unpack(&src, target, &o, NULL, NULL, NULL);
}
#endif

Test(db_powerloss, build_leaves_no_database_or_a_whole_one_at_every_crash_point)
{
	T_NEED_FAILPOINTS();
#if STRATA_FAILPOINTS
	float *v = t_random_vectors(N_VEC, DIM, 11);
	every_crash_point(make_by_build, v, NULL, "strata_build");
	free(v);
#endif
}

Test(db_powerloss, unpack_leaves_no_database_or_a_whole_one_at_every_crash_point)
{
	T_NEED_FAILPOINTS();
#if STRATA_FAILPOINTS
	float *v = t_random_vectors(N_VEC, DIM, 11);
	struct t_dir src = t_dir_new();
	char db[700], bpath[700];
	t_path(&src, "db", db, sizeof db);
	t_path(&src, "db.strata", bpath, sizeof bpath);
	cr_assert_eq(make_by_build(db, v, NULL), 0, "%s", strata_last_error_detail());
	struct bundle_snapshot s;
	cr_assert_eq(bundle_snapshot_open(db, &s), 0, "%s", strata_last_error_detail());
	int fd = open(bpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	cr_assert(fd >= 0);
	struct bundle_pack_opts po = {.level = 1};
	cr_assert_eq(bundle_write(fd, bpath, s.files, s.count, s.db_uuid, &po, NULL), 0, "%s",
	             strata_last_error_detail());
	close(fd);
	bundle_snapshot_free(&s);
	struct t_blob b = t_read_file(bpath);
	struct t_bundle tb = {b.data, b.len};
	every_crash_point(make_by_unpack, v, &tb, "bundle_unpack");
	free(b.data);
	t_dir_free(&src);
	free(v);
#endif
}
