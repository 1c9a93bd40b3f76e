/*
 * open_fault_test.c - strata_open() under injected I/O failures (suite
 * 'fault', needs -Dfailpoints=true).
 *
 * An existing database is opened read-only, read-only with STRATA_VERIFY, and
 * for writing (which takes the LOCK file); a new one is created with
 * STRATA_CREATE. For every fault class of t_fault.h the nth call at its site
 * fails, n = 1, 2, ... until the open runs untouched (STYLE snippet 6). Each
 * failed open must return the precise code with a non-empty detail, leave
 * *db_out untouched (strata.h: nothing to close), leak no descriptor and no
 * mapping, and the database must then open and answer exactly as before.
 */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "strata.h"
#include "t_fault.h"
#include "t_support.h"

#define N_VEC 400
#define DIM 8
#define K 10

struct t_db {
	struct t_dir d;
	char dir[700];
	float *v;
	uint64_t ref_ids[K];
	float ref_d[K];
};

#if STRATA_FAILPOINTS
static strata_options t_opts(void)
{
	strata_options o;
	strata_options_default(&o);
	o.dim = DIM;
	o.M = 4;
	o.ef_construction = 32;
	o.threads = 1;
	return o;
}

static void t_search(strata_db *db, const float *q, uint64_t *ids, float *d)
{
	int rc = strata_search(db, q, 1, K, NULL, ids, d);
	cr_assert_eq(rc, 0, "search: %d %s", rc, strata_last_error_detail());
}

static struct t_db t_db_make(void)
{
	struct t_db t;
	t.d = t_dir_new();
	t_path(&t.d, "db", t.dir, sizeof t.dir);
	t.v = t_random_vectors(N_VEC, DIM, 3);
	strata_options o = t_opts();
	cr_assert_eq(strata_build(t.dir, &o, NULL, t.v, N_VEC), 0, "%s", strata_last_error_detail());
	strata_db *db;
	cr_assert_eq(strata_open(t.dir, NULL, STRATA_READONLY, &db), 0);
	t_search(db, t.v + 7 * DIM, t.ref_ids, t.ref_d);
	strata_close(db);
	return t;
}

/* The database opens with `flags` and answers the reference query as before. */
static void t_assert_answers(const struct t_db *t, unsigned flags)
{
	strata_db *db = NULL;
	int rc = strata_open(t->dir, NULL, flags, &db);
	cr_assert_eq(rc, 0, "reopen: %d %s", rc, strata_last_error_detail());
	uint64_t ids[K];
	float d[K];
	t_search(db, t->v + 7 * DIM, ids, d);
	cr_assert_arr_eq(ids, t->ref_ids, sizeof ids, "answers changed after a failed open");
	cr_assert_arr_eq(d, t->ref_d, sizeof d);
	strata_close(db);
}

static void t_open_matrix(unsigned flags, const char *what)
{
	struct t_db t = t_db_make();
	strata_db *const untouched = (strata_db *)(uintptr_t)0x5a5a5a5a;
	for (size_t f = 0; f < T_FAULT_COUNT; f++) {
		const struct t_fault *ft = &t_faults[f];
		for (int n = 1;; n++) {
			int fds = t_fd_count();
			strata_db *db = untouched;
			t_fault_arm(ft, n);
			int rc = strata_open(t.dir, NULL, flags, &db);
			bool hit = fp_hits(ft->site) >= n;
			fp_disarm_all();
			if (!hit) {
				cr_assert_eq(rc, 0, "%s %s: untouched at n=%d, yet rc %d (%s)", what, ft->name, n,
				             rc, strata_last_error_detail());
				strata_close(db);
				fprintf(stderr, "fault: strata_open %-14s %-22s %2d calls, each failure -> %s\n",
				        what, ft->name, n - 1, strata_strerror(ft->want));
				break;
			}
			/* A writer's open creates a WAL file: its failed fsync is the WAL's STRATA_EFSYNC. */
			cr_assert(rc == ft->want || (ft->site == FP_FSYNC && rc == STRATA_EFSYNC),
			          "%s %s n=%d: rc %d (%s), want %d", what, ft->name, n, rc,
			          strata_last_error_detail(), ft->want);
			cr_assert(strata_last_error_detail()[0] != '\0', "%s %s n=%d: no detail", what,
			          ft->name, n);
			cr_assert_eq(db, untouched, "%s %s n=%d: a failed open wrote *db_out", what,
			             ft->name, n);
			cr_assert_eq(t_fd_count(), fds, "%s %s n=%d: descriptors leaked", what, ft->name, n);
			cr_assert_eq(t_mappings_of(t.dir), 0, "%s %s n=%d: a segment is still mapped", what,
			             ft->name, n);
			t_assert_answers(&t, flags);
		}
	}
	free(t.v);
	t_dir_free(&t.d);
}
#endif

Test(open_fault, readonly_open_reports_every_failure_and_leaves_nothing_open)
{
	T_NEED_FAILPOINTS();
#if STRATA_FAILPOINTS
	t_open_matrix(STRATA_READONLY, "readonly");
#endif
}

Test(open_fault, verified_open_reports_every_failure_and_leaves_nothing_open)
{
	T_NEED_FAILPOINTS();
#if STRATA_FAILPOINTS
	t_open_matrix(STRATA_READONLY | STRATA_VERIFY, "readonly+verify");
#endif
}

Test(open_fault, writer_open_reports_every_failure_and_releases_the_lock)
{
	T_NEED_FAILPOINTS();
#if STRATA_FAILPOINTS
	/* t_assert_answers reopens for writing: a lock left behind would give STRATA_EBUSY. */
	t_open_matrix(0, "writer");
#endif
}

/*
 * STRATA_CREATE on a directory that does not exist: mkdir, LOCK, and the first
 * MANIFEST through write-temporary, fsync, rename, fsync-directory. A failed
 * create may leave the directory (empty, or with LOCK, or with a complete
 * MANIFEST whose directory entry was not synced) but never a MANIFEST.tmp, and
 * a second STRATA_CREATE then gives an empty database with the asked dim.
 */
Test(open_fault, create_reports_every_failure_and_can_be_retried)
{
	T_NEED_FAILPOINTS();
#if STRATA_FAILPOINTS
	strata_options o = t_opts();
	strata_db *const untouched = (strata_db *)(uintptr_t)0x5a5a5a5a;
	for (size_t f = 0; f < T_FAULT_COUNT; f++) {
		const struct t_fault *ft = &t_faults[f];
		for (int n = 1;; n++) {
			struct t_dir d = t_dir_new();
			char dir[700], tmp[800];
			t_path(&d, "db", dir, sizeof dir);
			snprintf(tmp, sizeof tmp, "%s/MANIFEST.tmp", dir);
			int fds = t_fd_count();
			strata_db *db = untouched;
			t_fault_arm(ft, n);
			int rc = strata_open(dir, &o, STRATA_CREATE, &db);
			bool hit = fp_hits(ft->site) >= n;
			fp_disarm_all();
			if (!hit) {
				cr_assert_eq(rc, 0, "create %s: untouched at n=%d, yet rc %d (%s)", ft->name, n,
				             rc, strata_last_error_detail());
				strata_close(db);
				fprintf(stderr, "fault: strata_open %-14s %-22s %2d calls, each failure -> %s\n",
				        "create", ft->name, n - 1, strata_strerror(ft->want));
				t_dir_free(&d);
				break;
			}
			cr_assert(rc == ft->want || (ft->site == FP_FSYNC && rc == STRATA_EFSYNC),
			          "create %s n=%d: rc %d (%s), want %d", ft->name, n, rc,
			          strata_last_error_detail(), ft->want);
			cr_assert(strata_last_error_detail()[0] != '\0', "create %s n=%d: no detail",
			          ft->name, n);
			cr_assert_eq(db, untouched, "create %s n=%d: a failed open wrote *db_out", ft->name, n);
			cr_assert_eq(t_fd_count(), fds, "create %s n=%d: descriptors leaked", ft->name, n);
			cr_assert(!t_exists(tmp), "create %s n=%d: MANIFEST.tmp left behind", ft->name, n);

			rc = strata_open(dir, &o, STRATA_CREATE, &db);
			cr_assert_eq(rc, 0, "create %s n=%d: retry: %d %s", ft->name, n, rc,
			             strata_last_error_detail());
			struct strata_stats st;
			cr_assert_eq(strata_stats(db, &st), 0);
			cr_assert(st.dim == DIM && st.vectors == 0 && st.segments == 0,
			          "create %s n=%d: retry made dim %u, %llu vectors", ft->name, n, st.dim,
			          (unsigned long long)st.vectors);
			strata_close(db);
			t_dir_free(&d);
		}
	}
#endif
}
