/*
 * db_compact_test.c - the compactor (engine/compactor.c): background merges
 * keep the segment count bounded and the content exact, strata_compact makes
 * one segment without the deleted vectors, tombstone rewrites, recall after
 * heavy deletion against a fresh build, graph reuse, abandoned merges at
 * close, read-only readers in another process while merges replace files,
 * and the memtable's rows found through the largest segment's walk (anchors).
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <dirent.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "db.h"
#include "memtable.h"
#include "strata.h"
#include "t_support.h"

static uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static strata_options small_opts(uint32_t dim)
{
	strata_options o;
	strata_options_default(&o);
	o.dim = dim;
	o.M = 8;
	o.ef_construction = 64;
	o.threads = 1;
	o.sync_mode = STRATA_SYNC_NONE;
	o.memtable_max_vectors = 256;
	return o;
}

static strata_db *open_or_die(const char *dir, const strata_options *o, unsigned flags)
{
	strata_db *db = NULL;
	int rc = strata_open(dir, o, flags, &db);
	cr_assert_eq(rc, 0, "open %s: %s: %s", dir, strata_strerror(rc), strata_last_error_detail());
	return db;
}

/* Wait until no flush or merge runs and the policy has nothing due (at most 60 s). */
static struct strata_stats wait_idle(strata_db *db)
{
	struct strata_stats st;
	for (int i = 0; i < 6000; i++) {
		cr_assert_eq(strata_stats(db, &st), 0);
		if (!st.flush_pending && !st.compaction_running && st.compaction_pending == 0)
			return st;
		struct timespec d = {0, 10 * 1000000L};
		nanosleep(&d, NULL);
	}
	cr_assert_fail("compaction did not settle: %u segments, %u pending", st.segments,
	               st.compaction_pending);
	return st;
}

/* Every id in [0, n) holds vecs[id] when live[id], else is absent. */
static void check_content(strata_db *db, const float *vecs, const bool *live, uint64_t n, uint32_t dim,
                          const char *when)
{
	float *got = malloc(dim * sizeof *got);
	for (uint64_t id = 0; id < n; id++) {
		int rc = strata_get(db, id, got);
		if (!live[id]) {
			cr_assert_eq(rc, STRATA_ENOTFOUND, "%s: id %llu should be absent (rc %d)", when,
			             (unsigned long long)id, rc);
			continue;
		}
		cr_assert_eq(rc, 0, "%s: id %llu missing: %s", when, (unsigned long long)id,
		             strata_last_error_detail());
		cr_assert(memcmp(got, vecs + id * dim, dim * sizeof *got) == 0, "%s: id %llu changed", when,
		          (unsigned long long)id);
	}
	free(got);
}

/* Exact top-1 of a few queries with ef above the live count equals brute force over live rows. */
static void check_exact_search(strata_db *db, const float *vecs, const bool *live, uint64_t n,
                               uint32_t dim, const char *when)
{
	uint64_t s = 99;
	strata_search_options so;
	strata_search_options_default(&so);
	so.ef = (uint32_t)n + 10;
	float *q = malloc(dim * sizeof *q);
	for (int t = 0; t < 20; t++) {
		for (uint32_t j = 0; j < dim; j++)
			q[j] = (float)(rng_next(&s) % 1000) / 1000.0f;
		double best = INFINITY;
		for (uint64_t id = 0; id < n; id++) {
			if (!live[id])
				continue;
			double d = 0;
			for (uint32_t j = 0; j < dim; j++)
				d += ((double)q[j] - vecs[id * dim + j]) * ((double)q[j] - vecs[id * dim + j]);
			if (d < best)
				best = d;
		}
		uint64_t ids[5];
		float d[5];
		cr_assert_eq(strata_search(db, q, 1, 5, &so, ids, d), 0, "%s", strata_last_error_detail());
		cr_assert(ids[0] != STRATA_NO_ID && live[ids[0]], "%s: result %llu not live", when,
		          (unsigned long long)ids[0]);
		cr_assert(fabs(d[0] - best) <= 1e-3 * (1 + best), "%s: nearest %g, brute force %g", when,
		          d[0], best);
	}
	free(q);
}

static uint32_t count_files(const char *dir, const char *prefix)
{
	DIR *d = opendir(dir);
	cr_assert(d);
	uint32_t n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
	closedir(d);
	return n;
}

Test(db_compact, background_merges_bound_the_segment_count_and_keep_every_write)
{
	enum { N = 6000, DIM = 8 };
	struct t_dir dir = t_dir_new_mem();
	strata_options o = small_opts(DIM);
	o.merge_factor = 2;
	/*
	 * Size tiers alone: a merge into the largest takes every segment there is,
	 * so on a loaded machine (slower merges, more flushes meanwhile) as few as
	 * three merges can take all 30 flushes, and the count below says nothing.
	 */
	o.merge_into_largest_pct = 0;
	strata_db *db = open_or_die(dir.path, &o, STRATA_CREATE);
	float *vecs = t_random_vectors(N, DIM, 5);
	bool *live = calloc(N, sizeof *live);
	uint64_t s = 7;
	for (uint64_t at = 0; at < N; at += 100) {
		uint64_t ids[100];
		for (int i = 0; i < 100; i++) {
			ids[i] = at + (uint64_t)i;
			live[ids[i]] = true;
		}
		cr_assert_eq(strata_upsert(db, ids, vecs + at * DIM, 100), 0, "%s", strata_last_error_detail());
		uint64_t del[10];
		for (int i = 0; i < 10; i++) {
			del[i] = rng_next(&s) % (at + 100);
			live[del[i]] = false;
		}
		cr_assert_eq(strata_delete(db, del, 10), 0);
		if (at % 1000 == 900)
			cr_assert_eq(strata_flush(db), 0);
	}
	cr_assert_eq(strata_flush(db), 0);
	struct strata_stats st = wait_idle(db);
	cr_log_info("%u segments after %llu flushes, %llu merges (%llu nodes reused, %llu inserted), "
	            "write amplification %.2f", st.segments, (unsigned long long)st.flushes,
	            (unsigned long long)st.merges, (unsigned long long)st.merge_reused_nodes,
	            (unsigned long long)st.merge_inserted_nodes, st.write_amplification);
	cr_assert_gt(st.flushes, 20);
	cr_assert_gt(st.merges, 3, "the compactor never merged");
	cr_assert_gt(st.merge_reused_nodes, st.merge_inserted_nodes / 10,
	             "merges did not reuse their largest input's graph");
	/* Size tiers of factor 2 over ~5.5k live vectors: a handful of segments, not one per flush. */
	cr_assert_leq(st.segments, 8, "%u segments after %llu flushes", st.segments,
	              (unsigned long long)st.flushes);
	cr_assert_gt(st.compaction_bytes, 0);
	cr_assert_gt(st.write_amplification, 1.0);
	check_content(db, vecs, live, N, DIM, "after merges");
	check_exact_search(db, vecs, live, N, DIM, "after merges");
	cr_assert_eq(strata_close(db), 0);
	/* Close deleted the retired files: only the named segments remain. */
	strata_db *ro = open_or_die(dir.path, NULL, STRATA_READONLY | STRATA_VERIFY);
	struct strata_stats rst;
	strata_stats(ro, &rst);
	cr_assert_eq(count_files(dir.path, "seg-"), rst.segments);
	check_content(ro, vecs, live, N, DIM, "read-only after close");
	strata_close(ro);
	free(vecs);
	free(live);
	t_dir_free(&dir);
}

/* Upsert ids [from, to) in batches of `batch`, each followed by a flush, then wait for the compactor. */
static struct strata_stats ingest_flushing(strata_db *db, const float *vecs, bool *live, uint64_t from,
                                           uint64_t to, uint64_t batch, uint32_t dim)
{
	uint64_t ids[512];
	cr_assert_leq(batch, 512);
	for (uint64_t at = from; at < to; at += batch) {
		uint64_t m = to - at < batch ? to - at : batch;
		for (uint64_t i = 0; i < m; i++) {
			ids[i] = at + i;
			live[at + i] = true;
		}
		cr_assert_eq(strata_upsert(db, ids, vecs + at * dim, m), 0, "%s", strata_last_error_detail());
		cr_assert_eq(strata_flush(db), 0, "%s", strata_last_error_detail());
	}
	return wait_idle(db);
}

static void log_merges(const char *what, const struct strata_stats *st)
{
	cr_log_info("%s: %llu flushes, %llu merges (%llu nodes reused, %llu inserted), write "
	            "amplification %.2f", what, (unsigned long long)st->flushes,
	            (unsigned long long)st->merges, (unsigned long long)st->merge_reused_nodes,
	            (unsigned long long)st->merge_inserted_nodes, st->write_amplification);
}

Test(db_compact, max_segments_merges_the_smallest_down_to_the_bound)
{
	enum { N = 4000, DIM = 8 };
	struct t_dir dir = t_dir_new_mem();
	strata_options o = small_opts(DIM);
	o.memtable_max_vectors = 1000; /* flushes only when asked */
	o.max_segments = 1;            /* merge_factor stays 4: tiers alone would keep up to 3 */
	strata_db *db = open_or_die(dir.path, &o, STRATA_CREATE);
	float *vecs = t_random_vectors(N, DIM, 21);
	bool *live = calloc(N, sizeof *live);
	struct strata_stats st = {0};
	for (uint64_t at = 0; at < 2000; at += 200) {
		st = ingest_flushing(db, vecs, live, at, at + 200, 200, DIM);
		cr_assert_leq(st.segments, 1, "%u segments after the flush of rows up to %llu", st.segments,
		              (unsigned long long)(at + 200));
		cr_assert(!st.merges_behind);
	}
	log_merges("max_segments 1", &st);
	cr_assert_eq(st.flushes, 10);
	cr_assert_eq(st.merges, 9, "one merge per flush after the first");
	/* Each merge reuses the large segment's graph and inserts only the 200 new rows. */
	cr_assert_eq(st.merge_inserted_nodes, 9 * 200);
	cr_assert_eq(st.merge_reused_nodes, 200 * (1 + 2 + 3 + 4 + 5 + 6 + 7 + 8 + 9));
	check_content(db, vecs, live, N, DIM, "max_segments 1");
	check_exact_search(db, vecs, live, N, DIM, "max_segments 1");
	cr_assert_eq(strata_close(db), 0);

	/* A bound of 3, and max_segment_vectors above it: merges stop where a segment would pass 1000. */
	o.max_segments = 3;
	o.max_segment_vectors = 1000;
	db = open_or_die(dir.path, &o, 0);
	st = ingest_flushing(db, vecs, live, 2000, N, 250, DIM);
	cr_assert_leq(st.segments, 4, "%u segments", st.segments);
	cr_assert_geq(st.segments, 3, "%u segments: no merge may pass max_segment_vectors", st.segments);
	cr_assert_eq(st.compaction_pending, 0);
	check_content(db, vecs, live, N, DIM, "max_segments 3, max_segment_vectors 1000");
	check_exact_search(db, vecs, live, N, DIM, "max_segments 3, max_segment_vectors 1000");
	cr_assert_eq(strata_close(db), 0);

	/* Over the bound with nothing that fits max_segment_vectors: not behind, nothing pending. */
	uint32_t before = st.segments;
	o.max_segments = 1;
	db = open_or_die(dir.path, &o, 0);
	st = wait_idle(db);
	cr_assert_eq(st.segments, before);
	cr_assert(!st.merges_behind, "%u segments over a bound of 1 that no merge can meet",
	          st.segments);
	cr_assert_eq(strata_close(db), 0);
	free(vecs);
	free(live);
	t_dir_free(&dir);
}

Test(db_compact, merge_into_largest_pct_merges_the_others_into_the_largest)
{
	enum { N = 3000, DIM = 8 };
	struct t_dir dir = t_dir_new_mem();
	strata_options o = small_opts(DIM);
	o.memtable_max_vectors = 1000; /* flushes only when asked */
	o.merge_into_largest_pct = 50;
	strata_db *db = open_or_die(dir.path, &o, STRATA_CREATE);
	float *vecs = t_random_vectors(N, DIM, 23);
	bool *live = calloc(N, sizeof *live);
	/*
	 * Flushes of 200 rows, each waited for. The largest absorbs the others
	 * once they hold half its rows: 200 + 200 -> 400, + 200 -> 600; 600 keeps
	 * one 200 (a third); with two (400 of 600) -> 1000; 1000 keeps two 200s and
	 * absorbs at three (600) -> 1600; 1600 keeps two. (Everything here is tier
	 * 0, which merges at 4 segments: only the 1000 + 3 x 200 merge is also a
	 * tier merge.)
	 */
	const uint32_t want_segments[10] = {1, 1, 1, 2, 1, 2, 3, 1, 2, 3};
	struct strata_stats st = {0};
	for (uint64_t f = 0; f < 10; f++) {
		st = ingest_flushing(db, vecs, live, f * 200, f * 200 + 200, 200, DIM);
		cr_assert_eq(st.segments, want_segments[f], "%u segments after flush %llu, want %u",
		             st.segments, (unsigned long long)f + 1, want_segments[f]);
		cr_assert(!st.merges_behind);
	}
	log_merges("merge_into_largest_pct 50", &st);
	cr_assert_eq(st.merges, 4);
	/* Each merge reuses the largest's graph and inserts only the others' rows. */
	cr_assert_eq(st.merge_reused_nodes, 200 + 400 + 600 + 1000);
	cr_assert_eq(st.merge_inserted_nodes, 200 + 200 + 400 + 600);
	check_content(db, vecs, live, N, DIM, "merge_into_largest_pct 50");
	check_exact_search(db, vecs, live, N, DIM, "merge_into_largest_pct 50");
	cr_assert_eq(strata_close(db), 0);

	/*
	 * The largest (1,600) at max_segment_vectors: nothing is merged into it;
	 * the others merge by their tiers (4 in tier 0 with the largest) without
	 * passing the bound, and the policy is not behind.
	 */
	o.max_segment_vectors = 1600;
	db = open_or_die(dir.path, &o, 0);
	st = ingest_flushing(db, vecs, live, 2000, N, 250, DIM);
	cr_assert(!st.merges_behind, "%u segments", st.segments);
	cr_assert_eq(st.compaction_pending, 0);
	cr_assert_geq(st.segments, 2, "%u segments: a merge passed max_segment_vectors",
	              st.segments);
	check_content(db, vecs, live, N, DIM, "merge_into_largest_pct 50, max_segment_vectors 1600");
	check_exact_search(db, vecs, live, N, DIM,
	                   "merge_into_largest_pct 50, max_segment_vectors 1600");
	cr_assert_eq(strata_close(db), 0);
	free(vecs);
	free(live);
	t_dir_free(&dir);
}

/*
 * The merge into the largest cut to max_segment_vectors: the largest is kept
 * and counted first, the others join smallest first while the sum fits.
 */
Test(db_compact, merge_into_largest_pct_takes_the_smallest_others_that_fit_beside_the_largest)
{
	enum { N = 700, DIM = 8 };
	struct t_dir dir = t_dir_new_mem();
	strata_options o = small_opts(DIM);
	o.memtable_max_vectors = 1000; /* flushes only when asked */
	o.disable_background_merges = true;
	strata_db *db = open_or_die(dir.path, &o, STRATA_CREATE);
	float *vecs = t_random_vectors(N, DIM, 29);
	bool *live = calloc(N, sizeof *live);
	/* Segments of 400, 200 and 100 rows, placed with merges off. */
	ingest_flushing(db, vecs, live, 0, 400, 400, DIM);
	ingest_flushing(db, vecs, live, 400, 600, 200, DIM);
	struct strata_stats st = ingest_flushing(db, vecs, live, 600, 700, 100, DIM);
	cr_assert_eq(st.segments, 3);
	cr_assert_eq(strata_close(db), 0);
	/*
	 * The others (300) hold half of 400 or more; 400 + 100 fits 550, + 200
	 * does not: one merge of 400 and 100. Then 200 is less than half of 500.
	 */
	o.disable_background_merges = false;
	o.merge_into_largest_pct = 50;
	o.max_segment_vectors = 550;
	db = open_or_die(dir.path, &o, 0);
	st = wait_idle(db);
	log_merges("merge_into_largest_pct 50, max_segment_vectors 550", &st);
	cr_assert_eq(st.segments, 2);
	cr_assert_eq(st.merges, 1);
	cr_assert_eq(st.merge_reused_nodes, 400);
	cr_assert_eq(st.merge_inserted_nodes, 100);
	cr_assert(!st.merges_behind);
	cr_assert_eq(st.compaction_pending, 0);
	check_content(db, vecs, live, N, DIM, "the largest with the smallest that fit");
	check_exact_search(db, vecs, live, N, DIM, "the largest with the smallest that fit");
	cr_assert_eq(strata_close(db), 0);
	free(vecs);
	free(live);
	t_dir_free(&dir);
}

Test(db_compact, compact_makes_one_segment_without_the_deleted_vectors)
{
	enum { N = 3000, DIM = 12 };
	struct t_dir dir = t_dir_new_mem();
	strata_options o = small_opts(DIM);
	o.disable_background_merges = true;
	strata_db *db = open_or_die(dir.path, &o, STRATA_CREATE);
	float *vecs = t_random_vectors(N, DIM, 11);
	bool *live = calloc(N, sizeof *live);
	uint64_t *ids = malloc(N * sizeof *ids);
	for (uint64_t i = 0; i < N; i++) {
		ids[i] = i;
		live[i] = true;
	}
	cr_assert_eq(strata_upsert(db, ids, vecs, N), 0);
	cr_assert_eq(strata_flush(db), 0);
	uint64_t ndel = 0;
	for (uint64_t i = 0; i < N; i += 3) {
		ids[ndel++] = i;
		live[i] = false;
	}
	cr_assert_eq(strata_delete(db, ids, ndel), 0);
	struct strata_stats st;
	strata_stats(db, &st);
	cr_assert_gt(st.segments, 5, "setup: the small memtable should have made many segments");
	cr_assert_eq(st.merges, 0, "background merges were disabled");
	cr_assert_eq(strata_compact(db), 0, "%s", strata_last_error_detail());
	strata_stats(db, &st);
	cr_assert_eq(st.segments, 1);
	cr_assert_eq(st.tombstones, 0, "the merged segment still holds %llu deleted vectors",
	             (unsigned long long)st.tombstones);
	cr_assert_eq(st.vectors, N - ndel);
	cr_assert_eq(st.merges, 1);
	check_content(db, vecs, live, N, DIM, "after compact");
	check_exact_search(db, vecs, live, N, DIM, "after compact");
	/* Once more: one segment without deletions is left as it is. */
	cr_assert_eq(strata_compact(db), 0);
	strata_stats(db, &st);
	cr_assert_eq(st.merges, 1);
	cr_assert_eq(strata_close(db), 0);
	db = open_or_die(dir.path, &o, STRATA_VERIFY);
	strata_stats(db, &st);
	cr_assert_eq(st.segments, 1);
	check_content(db, vecs, live, N, DIM, "reopened");
	strata_close(db);
	cr_assert_eq(count_files(dir.path, "seg-"), 1);
	cr_assert_eq(count_files(dir.path, "del-"), 0);
	free(vecs);
	free(live);
	free(ids);
	t_dir_free(&dir);
}

Test(db_compact, a_segment_past_the_tombstone_threshold_is_rewritten)
{
	enum { N = 2000, DIM = 8 };
	struct t_dir dir = t_dir_new_mem();
	char path[600];
	t_path(&dir, "db", path, sizeof path);
	strata_options o = small_opts(DIM);
	float *vecs = t_random_vectors(N, DIM, 21);
	cr_assert_eq(strata_build(path, &o, NULL, vecs, N), 0);
	o.tombstone_pct = 20;
	strata_db *db = open_or_die(path, &o, 0);
	bool *live = calloc(N, sizeof *live);
	uint64_t ids[N];
	uint64_t nd = 0;
	for (uint64_t i = 0; i < N; i++) {
		live[i] = i % 10 >= 2; /* 20% deleted: exactly at the threshold */
		if (!live[i])
			ids[nd++] = i;
	}
	cr_assert_eq(strata_delete(db, ids, nd / 2), 0);
	cr_assert_eq(strata_flush(db), 0); /* 10%: persisted, under the threshold */
	struct strata_stats st = wait_idle(db);
	cr_assert_eq(st.merges, 0, "rewritten at 10%% deleted");
	cr_assert_eq(strata_delete(db, ids + nd / 2, nd - nd / 2), 0);
	cr_assert_eq(strata_flush(db), 0);
	st = wait_idle(db);
	cr_assert_eq(st.merges, 1, "not rewritten at 20%% deleted");
	cr_assert_eq(st.segments, 1);
	cr_assert_eq(st.tombstones, 0);
	check_content(db, vecs, live, N, DIM, "after the rewrite");
	cr_assert_eq(strata_close(db), 0);
	free(vecs);
	free(live);
	t_dir_free(&dir);
}

/* recall@10 of db over the queries against truth (ids = rows of the base). */
static double recall_at(strata_db *db, const struct t_mat *q, const uint32_t *truth, uint32_t ef)
{
	uint64_t *ids = malloc(q->rows * 10 * sizeof *ids);
	strata_search_options so;
	strata_search_options_default(&so);
	so.ef = ef;
	cr_assert_eq(strata_search(db, q->f, q->rows, 10, &so, ids, NULL), 0);
	double r = t_recall(ids, q->rows, 10, truth, 10);
	free(ids);
	return r;
}

Test(db_compact, recall_after_deleting_half_and_compacting_matches_a_fresh_build, .timeout = 600)
{
	char bp[512], qp[512];
	struct t_mat base = t_read_fvecs(t_data_path("siftsmall/siftsmall_base.fvecs", bp, sizeof bp), 0);
	struct t_mat q = t_read_fvecs(t_data_path("siftsmall/siftsmall_query.fvecs", qp, sizeof qp), 0);
	const size_t n = base.rows, dim = base.dim;
	struct t_dir dir = t_dir_new_mem();
	char full[600], fresh[600];
	t_path(&dir, "full", full, sizeof full);
	t_path(&dir, "fresh", fresh, sizeof fresh);
	strata_options o;
	strata_options_default(&o);
	o.dim = (uint32_t)dim;
	o.threads = 2;
	cr_assert_eq(strata_build(full, &o, NULL, base.f, n), 0);

	/* Survivors: a random half (ids keep their row numbers). */
	uint64_t s = 4242;
	uint64_t *dead = malloc(n * sizeof *dead), *kept = malloc(n * sizeof *kept);
	float *kv = malloc(n * dim * sizeof *kv);
	size_t nd = 0, nk = 0;
	for (size_t i = 0; i < n; i++) {
		if (rng_next(&s) % 2) {
			dead[nd++] = i;
		} else {
			memcpy(kv + nk * dim, base.f + i * dim, dim * sizeof *kv);
			kept[nk++] = i;
		}
	}
	strata_db *db = open_or_die(full, &o, 0);
	cr_assert_eq(strata_delete(db, dead, nd), 0);
	cr_assert_eq(strata_compact(db), 0, "%s", strata_last_error_detail());
	struct strata_stats st;
	strata_stats(db, &st);
	cr_assert_eq(st.segments, 1);
	cr_assert_eq(st.vectors, nk);
	cr_assert_eq(st.tombstones, 0);
	cr_assert_eq(strata_build(fresh, &o, kept, kv, nk), 0);
	strata_db *fb = open_or_die(fresh, NULL, STRATA_READONLY);

	/* Truth over the survivors, as ids. */
	uint32_t *rows = malloc(q.rows * 10 * sizeof *rows);
	t_brute_force(kv, nk, q.f, q.rows, dim, STRATA_METRIC_L2, 10, rows);
	for (size_t i = 0; i < q.rows * 10; i++)
		rows[i] = (uint32_t)kept[rows[i]];
	uint32_t efs[] = {10, 16, 32, 64};
	for (size_t e = 0; e < sizeof efs / sizeof efs[0]; e++) {
		double rc = recall_at(db, &q, rows, efs[e]);
		double rf = recall_at(fb, &q, rows, efs[e]);
		cr_log_info("ef %u: recall@10 after delete+compact %.4f, fresh build %.4f", efs[e], rc, rf);
		cr_assert(rc >= rf - 0.01, "ef %u: recall %.4f after compaction, %.4f fresh", efs[e], rc, rf);
	}
	strata_close(db);
	strata_close(fb);
	free(rows);
	free(dead);
	free(kept);
	free(kv);
	t_mat_free(&base);
	t_mat_free(&q);
	t_dir_free(&dir);
}

Test(db_compact, closing_during_a_merge_abandons_it_and_loses_nothing, .timeout = 300)
{
	enum { N = 40000, DIM = 32 };
	struct t_dir dir = t_dir_new_mem();
	strata_options o = small_opts(DIM);
	o.memtable_max_vectors = N / 2;
	o.ef_construction = 200;
	o.merge_factor = 2;
	strata_db *db = open_or_die(dir.path, &o, STRATA_CREATE);
	float *vecs = t_random_vectors(N, DIM, 31);
	bool *live = malloc(N * sizeof *live);
	uint64_t *ids = malloc(N * sizeof *ids);
	for (uint64_t i = 0; i < N; i++) {
		ids[i] = i;
		live[i] = true;
	}
	cr_assert_eq(strata_upsert(db, ids, vecs, N / 2), 0);
	cr_assert_eq(strata_flush(db), 0);
	cr_assert_eq(strata_upsert(db, ids + N / 2, vecs + (N / 2) * DIM, N / 2), 0);
	cr_assert_eq(strata_flush(db), 0); /* two tier-equal segments: a merge of 20k inserts starts */
	struct strata_stats st;
	for (int i = 0; i < 500; i++) {
		strata_stats(db, &st);
		if (st.compaction_running)
			break;
		struct timespec d = {0, 2 * 1000000L};
		nanosleep(&d, NULL);
	}
	cr_assert(st.compaction_running, "the merge never started");
	cr_assert_eq(strata_close(db), 0);
	cr_assert_eq(count_files(dir.path, "seg-"), 2, "an abandoned merge left its segment behind");
	db = open_or_die(dir.path, &o, STRATA_VERIFY);
	check_content(db, vecs, live, N, DIM, "after the abandoned merge");
	cr_assert_eq(strata_close(db), 0);
	free(vecs);
	free(live);
	free(ids);
	t_dir_free(&dir);
}

/*
 * A reader in another process opens read-only over and over while the writer
 * flushes and merges, replacing files: every open succeeds and sees a
 * consistent state (every id it finds holds a vector some write gave it).
 */
Test(db_compact, readers_in_another_process_never_see_a_missing_file, .timeout = 300)
{
	enum { N = 4000, DIM = 8 };
	struct t_dir dir = t_dir_new_mem();
	strata_options o = small_opts(DIM);
	o.memtable_max_vectors = 128;
	o.merge_factor = 2;
	strata_db *db = open_or_die(dir.path, &o, STRATA_CREATE);
	float *vecs = t_random_vectors(N, DIM, 41);
	uint64_t id0 = 0;
	cr_assert_eq(strata_upsert(db, &id0, vecs, 1), 0);
	cr_assert_eq(strata_flush(db), 0);
	int p[2];
	cr_assert_eq(pipe(p), 0);
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		uint64_t opens = 0, bad = 0;
		for (;;) {
			strata_db *ro;
			int rc = strata_open(dir.path, NULL, STRATA_READONLY, &ro);
			if (rc) {
				fprintf(stderr, "reader: open: %s: %s\n", strata_strerror(rc),
				        strata_last_error_detail());
				bad++;
			} else {
				float v[DIM];
				for (uint64_t id = 0; id < N; id += 97)
					if (strata_get(ro, id, v) == 0 && memcmp(v, vecs + id * DIM, sizeof v) != 0)
						bad++;
				strata_close(ro);
			}
			opens++;
			uint64_t msg[2] = {opens, bad};
			if (write(p[1], msg, sizeof msg) != sizeof msg)
				_exit(0);
		}
	}
	close(p[1]);
	for (uint64_t at = 1; at < N; at += 50) {
		uint64_t ids[50];
		size_t n = at + 50 <= N ? 50 : N - at;
		for (size_t i = 0; i < n; i++)
			ids[i] = at + i;
		cr_assert_eq(strata_upsert(db, ids, vecs + at * DIM, n), 0);
		if (at % 400 == 1)
			cr_assert_eq(strata_compact(db), 0, "%s", strata_last_error_detail());
	}
	cr_assert_eq(strata_flush(db), 0);
	struct strata_stats st = wait_idle(db);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	uint64_t msg[2] = {0, 0}, last[2] = {0, 0};
	while (read(p[0], msg, sizeof msg) == sizeof msg)
		memcpy(last, msg, sizeof last);
	close(p[0]);
	cr_log_info("reader: %llu opens, %llu bad; writer: %llu merges", (unsigned long long)last[0],
	            (unsigned long long)last[1], (unsigned long long)st.merges);
	cr_assert_gt(last[0], 20, "the reader hardly ran");
	cr_assert_gt(st.merges, 5);
	cr_assert_eq(last[1], 0, "%llu failed opens or wrong vectors in the reader",
	             (unsigned long long)last[1]);
	strata_close(db);
	free(vecs);
	t_dir_free(&dir);
}

Test(db_compact, options_are_checked_and_read_only_handles_cannot_compact)
{
	struct t_dir dir = t_dir_new_mem();
	strata_options o = small_opts(4);
	o.merge_factor = 1;
	strata_db *db = NULL;
	cr_assert_eq(strata_open(dir.path, &o, STRATA_CREATE, &db), STRATA_EINVAL);
	o.merge_factor = 65;
	cr_assert_eq(strata_open(dir.path, &o, STRATA_CREATE, &db), STRATA_EINVAL);
	o.merge_factor = 4;
	o.tombstone_pct = 101;
	cr_assert_eq(strata_open(dir.path, &o, STRATA_CREATE, &db), STRATA_EINVAL);
	o.tombstone_pct = 20;
	o.merge_into_largest_pct = 1001;
	cr_assert_eq(strata_open(dir.path, &o, STRATA_CREATE, &db), STRATA_EINVAL);
	o.merge_into_largest_pct = 1000;
	db = open_or_die(dir.path, &o, STRATA_CREATE);
	cr_assert_eq(strata_compact(db), 0, "compact of an empty database");
	strata_close(db);
	db = open_or_die(dir.path, NULL, STRATA_READONLY);
	cr_assert_eq(strata_compact(db), STRATA_EREADONLY);
	strata_close(db);
	cr_assert_eq(strata_compact(NULL), STRATA_EINVAL);
	t_dir_free(&dir);
}

/*
 * Several sources per query (two segments and the memtable) are searched
 * largest first with the k-th best so far as a bound on the later walks
 * (search.c, hnsw_search_bounded): recall must stay that of one segment (or
 * better: more graphs are walked), exact search (ef >= count) stay exact,
 * and the answers must not depend on the number of search threads.
 */
/* Whether the active memtable's rows all hang under the largest (first) segment's nodes. */
static bool all_anchored(strata_db *db)
{
	struct db_version *v = db_pin(db);
	const struct mt_anchors *a =
	        v->active && v->nseg ? mt_anchors_for(v->active, v->segs[0]->entry.seq) : NULL;
	bool all = a && atomic_load(&a->anchored) == mt_rows(v->active);
	db_unpin(db, v);
	return all;
}

/* Wait (up to 30 s) until the memtable's rows are all indexed and hung. */
static void wait_anchored(strata_db *db)
{
	struct strata_stats st;
	for (int i = 0; i < 3000; i++) {
		strata_stats(db, &st);
		if (st.memtable_unindexed == 0 && all_anchored(db))
			return;
		struct timespec d = {0, 10 * 1000000L};
		nanosleep(&d, NULL);
	}
	cr_assert_fail("the indexer did not hang the memtable's rows");
}

/* Wait (up to 60 s) until segment i hangs under the first one. */
static void wait_hung(strata_db *db, uint32_t i)
{
	for (int t = 0; t < 6000; t++) {
		struct db_version *v = db_pin(db);
		const struct seg_anchors *a = v->nseg > i ? atomic_load(&v->segs[i]->anchors) : NULL;
		bool hung = a && a->seg_seq == v->segs[0]->entry.seq;
		db_unpin(db, v);
		if (hung)
			return;
		struct timespec d = {0, 10 * 1000000L};
		nanosleep(&d, NULL);
	}
	cr_assert_fail("segment %u was not hung under the first", i);
}

/* siftsmall with its true 10 nearest, and a database for it: default graph, 2 threads, no merges. */
struct sift_db {
	struct t_mat base, q, gt;
	uint32_t *truth;
	uint64_t *ids; /* ids[i] = i */
	struct t_dir dir;
	strata_db *db;
};

/* max_segments 0: no background merges; else merges down to that many segments only. */
static struct sift_db sift_db_open(uint32_t max_segments)
{
	struct sift_db f;
	char bp[512], qp[512], tp[512];
	f.base = t_read_fvecs(t_data_path("siftsmall/siftsmall_base.fvecs", bp, sizeof bp), 0);
	f.q = t_read_fvecs(t_data_path("siftsmall/siftsmall_query.fvecs", qp, sizeof qp), 0);
	f.gt = t_read_ivecs(t_data_path("siftsmall/siftsmall_groundtruth.ivecs", tp, sizeof tp), 0);
	f.truth = malloc(f.q.rows * 10 * sizeof *f.truth);
	f.ids = malloc(f.base.rows * sizeof *f.ids);
	cr_assert(f.truth && f.ids);
	for (size_t i = 0; i < f.q.rows; i++)
		for (size_t j = 0; j < 10; j++)
			f.truth[i * 10 + j] = (uint32_t)f.gt.i[i * f.gt.dim + j];
	for (size_t i = 0; i < f.base.rows; i++)
		f.ids[i] = i;
	f.dir = t_dir_new_mem();
	strata_options o;
	strata_options_default(&o);
	o.dim = (uint32_t)f.base.dim;
	o.threads = 2;
	o.sync_mode = STRATA_SYNC_NONE;
	o.disable_background_merges = max_segments == 0;
	o.merge_factor = 64; /* no tier merge: 4096 x 64 is past siftsmall */
	o.merge_into_largest_pct = 0; /* nor one into the largest: the tests place the segments */
	o.max_segments = max_segments;
	f.db = open_or_die(f.dir.path, &o, STRATA_CREATE);
	return f;
}

static void sift_db_close(struct sift_db *f)
{
	strata_close(f->db);
	free(f->truth);
	free(f->ids);
	t_mat_free(&f->base);
	t_mat_free(&f->q);
	t_mat_free(&f->gt);
	t_dir_free(&f->dir);
}

Test(db_compact, searching_several_sources_keeps_recall_and_is_thread_independent, .timeout = 600)
{
	struct sift_db f = sift_db_open(0);
	struct t_mat base = f.base, q = f.q;
	const size_t n = base.rows, dim = base.dim;
	const uint32_t *truth = f.truth;
	const uint64_t *ids = f.ids;
	strata_db *db = f.db;
	/* 6000 + 2500 in segments, 1500 in the memtable (indexed). */
	cr_assert_eq(strata_upsert(db, ids, base.f, 6000), 0);
	cr_assert_eq(strata_flush(db), 0);
	cr_assert_eq(strata_upsert(db, ids + 6000, base.f + 6000 * dim, 2500), 0);
	cr_assert_eq(strata_flush(db), 0);
	cr_assert_eq(strata_upsert(db, ids + 8500, base.f + 8500 * dim, n - 8500), 0);
	/*
	 * Hung too (the memtable's rows, and the second segment: by its flush, or
	 * by the indexer when the flush came before the memtable had anchors): a
	 * search before and one after the last of them are hung may differ.
	 */
	wait_anchored(db);
	wait_hung(db, 1);
	struct strata_stats st;
	strata_stats(db, &st);
	cr_assert_eq(st.segments, 2);
	cr_assert_eq(st.memtable_vectors, n - 8500);
	double multi[3];
	uint32_t efs[3] = {16, 32, 64};
	uint64_t *a = malloc(q.rows * 10 * sizeof *a), *c = malloc(q.rows * 10 * sizeof *c);
	float *da = malloc(q.rows * 10 * sizeof *da), *dc = malloc(q.rows * 10 * sizeof *dc);
	for (int e = 0; e < 3; e++) {
		strata_search_options so;
		strata_search_options_default(&so);
		so.ef = efs[e];
		cr_assert_eq(strata_search(db, q.f, q.rows, 10, &so, a, da), 0);
		so.threads = 3;
		cr_assert_eq(strata_search(db, q.f, q.rows, 10, &so, c, dc), 0);
		cr_assert(memcmp(a, c, q.rows * 10 * sizeof *a) == 0 &&
		          memcmp(da, dc, q.rows * 10 * sizeof *da) == 0,
		          "ef %u: answers differ between 1 and 3 threads", efs[e]);
		multi[e] = t_recall(a, q.rows, 10, truth, 10);
	}
	/* ef above every source's size: exact, whatever the bound. */
	strata_search_options so;
	strata_search_options_default(&so);
	so.ef = (uint32_t)n;
	cr_assert_eq(strata_search(db, q.f, q.rows, 10, &so, a, NULL), 0);
	cr_assert_eq(t_recall(a, q.rows, 10, truth, 10), 1.0);
	cr_assert_eq(strata_compact(db), 0);
	strata_stats(db, &st);
	cr_assert_eq(st.segments, 1);
	for (int e = 0; e < 3; e++) {
		strata_search_options_default(&so);
		so.ef = efs[e];
		cr_assert_eq(strata_search(db, q.f, q.rows, 10, &so, a, NULL), 0);
		double one = t_recall(a, q.rows, 10, truth, 10);
		cr_log_info("ef %u: recall@10 over 2 segments + memtable %.4f, one segment %.4f", efs[e],
		            multi[e], one);
		cr_assert(multi[e] >= one - 0.01, "ef %u: %.4f over three sources, %.4f over one", efs[e],
		          multi[e], one);
	}
	free(a);
	free(c);
	free(da);
	free(dc);
	sift_db_close(&f);
}

/*
 * Distance computations per query of a search at `ef` (k 10) beyond the first
 * segment's walk: the memtable's and the other segments' part. The stats'
 * distance_evals_first is checked against that walk made again here.
 */
static double evals_after_first(strata_db *db, const struct t_mat *q, uint32_t ef)
{
	struct strata_stats st0, st1;
	strata_search_options so;
	strata_search_options_default(&so);
	so.ef = ef;
	uint64_t *ids = malloc(q->rows * 10 * sizeof *ids);
	cr_assert_eq(strata_stats(db, &st0), 0);
	cr_assert_eq(strata_search(db, q->f, q->rows, 10, &so, ids, NULL), 0);
	cr_assert_eq(strata_stats(db, &st1), 0);
	free(ids);
	/* The segment's own walk, as the search made it (dead nodes rejected, walked through). */
	struct db_version *v = db_pin(db);
	const struct db_segment *seg = v->segs[0];
	struct hnsw_scratch *hs = hnsw_scratch_new();
	struct hnsw_trace trace = {0};
	struct hnsw_filter dead = {.dead = seg->tomb};
	struct hnsw_hit hits[10];
	uint32_t n = 0;
	uint64_t seg_evals = 0;
	for (size_t i = 0; i < q->rows; i++)
		cr_assert_eq(hnsw_search_traced(&seg->view, q->f + i * q->dim, 10, ef,
		                                ef > MT_ANCHOR_TRACE_MIN ? ef : MT_ANCHOR_TRACE_MIN,
		                                atomic_load(&seg->tomb_n) ? &dead : NULL, hs, &trace,
		                                hits, &n, &seg_evals),
		             0);
	hnsw_trace_free(&trace);
	hnsw_scratch_free(hs);
	db_unpin(db, v);
	cr_assert_eq(st1.distance_evals_first - st0.distance_evals_first, seg_evals,
	             "stats count %" PRIu64 " computations of first walks, made again: %" PRIu64,
	             st1.distance_evals_first - st0.distance_evals_first, seg_evals);
	return (double)(st1.distance_evals - st0.distance_evals - seg_evals) / (double)q->rows;
}

/* Each of ids [from, to) searched by its own vector (k 1): how many come back first. */
static size_t found_by_own_vector(strata_db *db, const float *base, size_t dim, size_t from,
                                  size_t to)
{
	strata_search_options so;
	strata_search_options_default(&so);
	so.ef = 64;
	size_t found = 0;
	for (size_t i = from; i < to; i++) {
		uint64_t id;
		cr_assert_eq(strata_search(db, base + i * dim, 1, 1, &so, &id, NULL), 0);
		found += id == i;
	}
	return found;
}

/*
 * The memtable's rows hang under the largest segment's nodes (memtable.h,
 * anchors), so a search finds them among the rows under the nodes its walk of
 * that segment expanded, not by a walk of the memtable's own graph (a descent
 * and a beam, ~170 distances here, against ~80); rows under nodes deleted since still
 * are found (the walk goes through dead nodes).
 */
Test(db_compact, memtable_rows_are_found_through_the_largest_segments_walk, .timeout = 300)
{
	struct sift_db f = sift_db_open(0);
	struct t_mat base = f.base, q = f.q;
	const size_t n = base.rows, dim = base.dim, in_seg = 8000;
	const uint32_t *truth = f.truth;
	const uint64_t *ids = f.ids;
	strata_db *db = f.db;
	cr_assert_eq(strata_upsert(db, ids, base.f, in_seg), 0);
	cr_assert_eq(strata_flush(db), 0);
	cr_assert_eq(strata_upsert(db, ids + in_seg, base.f + in_seg * dim, n - in_seg), 0);
	wait_anchored(db);
	struct strata_stats st;
	strata_stats(db, &st);
	cr_assert_eq(st.segments, 1);

	double share = evals_after_first(db, &q, 64);
	cr_log_info("memtable's part of a search at ef 64: %.1f distances per query", share);
	cr_assert_lt(share, 110.0, "%.1f distances per query: the memtable's graph was walked", share);
	strata_search_options so;
	strata_search_options_default(&so);
	so.ef = 64;
	uint64_t *found = malloc(q.rows * 10 * sizeof *found);
	cr_assert_eq(strata_search(db, q.f, q.rows, 10, &so, found, NULL), 0);
	double written = t_recall(found, q.rows, 10, truth, 10);
	size_t self = found_by_own_vector(db, base.f, dim, in_seg, n);
	cr_assert_geq(self, (n - in_seg) * 995 / 1000, "%zu of %zu memtable rows found by their own vector",
	              self, n - in_seg);

	/*
	 * The nodes rows hang under deleted (few: the plan keeps ef 64 for a
	 * segment 98.5% live): the walk goes through them, so their rows are
	 * still found, and through the anchors.
	 */
	enum { DEAD_ANCHORS = 120 };
	uint64_t gone[DEAD_ANCHORS], hung[4 * DEAD_ANCHORS];
	size_t n_gone = 0, n_hung = 0;
	struct db_version *v = db_pin(db);
	const struct mt_anchors *a = mt_anchors_for(v->active, v->segs[0]->entry.seq);
	cr_assert_not_null(a);
	for (uint32_t node = 0; node < a->seg_count && n_gone < DEAD_ANCHORS; node++) {
		uint32_t r = atomic_load(&a->head[node]);
		if (!r)
			continue;
		memcpy(&gone[n_gone++], v->segs[0]->info.ids + (size_t)node * 8, 8);
		for (; r && n_hung < 4 * DEAD_ANCHORS; r = a->next[r - 1])
			hung[n_hung++] = v->active->ids[r - 1];
	}
	db_unpin(db, v);
	cr_assert_eq(n_gone, DEAD_ANCHORS);
	cr_assert_eq(strata_delete(db, gone, n_gone), 0);
	cr_assert(all_anchored(db));
	share = evals_after_first(db, &q, 64);
	cr_assert_lt(share, 110.0, "after deletes, %.1f distances per query", share);
	size_t hung_found = 0;
	for (size_t i = 0; i < n_hung; i++)
		hung_found += found_by_own_vector(db, base.f, dim, hung[i], hung[i] + 1);
	cr_assert_geq(hung_found, n_hung * 99 / 100,
	              "%zu of the %zu rows under deleted nodes found by their own vector", hung_found,
	              n_hung);
	cr_assert_eq(strata_search(db, q.f, q.rows, 10, &so, found, NULL), 0);
	for (size_t i = 0; i < q.rows * 10; i++)
		for (size_t j = 0; j < n_gone; j++)
			cr_assert_neq(found[i], gone[j], "deleted id %llu returned",
			              (unsigned long long)gone[j]);

	/* Recall as written against the same rows compacted (the deleted ones written again). */
	for (size_t i = 0; i < n_gone; i++)
		cr_assert_eq(strata_upsert(db, &gone[i], base.f + gone[i] * dim, 1), 0);
	cr_assert_eq(strata_compact(db), 0);
	cr_assert_eq(strata_search(db, q.f, q.rows, 10, &so, found, NULL), 0);
	double one = t_recall(found, q.rows, 10, truth, 10);
	cr_log_info("recall@10 at ef 64: as written %.4f, compacted %.4f", written, one);
	cr_assert_geq(written, one - 0.01, "as written %.4f, compacted %.4f", written, one);

	free(found);
	sift_db_close(&f);
}

/*
 * Segment `i` hangs under the first (largest) one, by anchors made the way
 * `from` says: every node of it under MT_ANCHOR_LINKS distinct nodes of that
 * segment (a node deleted before it was hung: under none or those), nothing
 * else. Its nodes.
 */
static uint32_t hung_under_first(strata_db *db, uint32_t i, enum seg_anchors_from from)
{
	struct db_version *v = db_pin(db);
	cr_assert_gt(v->nseg, i);
	const struct db_segment *big = v->segs[0], *seg = v->segs[i];
	const struct seg_anchors *a = atomic_load(&seg->anchors);
	cr_assert_not_null(a, "segment %u carries no anchors", i);
	cr_assert_eq(a->from, from, "segment %u's anchors were made the wrong way", i);
	cr_assert_eq(a->seg_seq, big->entry.seq);
	cr_assert_eq(a->seg_count, big->info.count);
	const uint32_t count = seg->info.count;
	uint32_t *links = calloc(count, sizeof *links);
	for (uint32_t node = 0; node < a->seg_count; node++)
		for (uint32_t l = a->start[node]; l < a->start[node + 1]; l++) {
			cr_assert_lt(a->leaf[l], count);
			for (uint32_t m = a->start[node]; m < l; m++)
				cr_assert_neq(a->leaf[m], a->leaf[l], "node %u twice under %u", a->leaf[l], node);
			links[a->leaf[l]]++;
		}
	for (uint32_t x = 0; x < count; x++)
		cr_assert(links[x] == MT_ANCHOR_LINKS || (links[x] == 0 && seg_is_dead(seg, x)),
		          "node %u under %u nodes", x, links[x]);
	free(links);
	db_unpin(db, v);
	return count;
}

/*
 * The rows [from, n) of siftsmall, ids del[0..n_del) of them deleted, hang
 * under segment 0 (a segment or the memtable): their share of a search at ef
 * 64 stays under max_share distance computations per query; no deleted id is
 * returned, nor found by its own vector; 99% of their live rows are found by
 * their own vector; recall@10 stays within 0.01 of the same live rows
 * compacted (the database is compacted at the end).
 */
static void check_hung_search(struct sift_db *f, size_t from, const uint64_t *del, size_t n_del,
                              double max_share, const char *what)
{
	strata_db *db = f->db;
	const struct t_mat *q = &f->q;
	const size_t n = f->base.rows, dim = f->base.dim;
	double share = evals_after_first(db, q, 64);
	cr_log_info("%s: its part of a search at ef 64: %.1f distances per query", what, share);
	cr_assert_lt(share, max_share, "%s: %.1f distances per query, not under %.0f", what, share,
	             max_share);
	strata_search_options so;
	strata_search_options_default(&so);
	so.ef = 64;
	uint64_t *found = malloc(q->rows * 10 * sizeof *found), got;
	cr_assert_eq(strata_search(db, q->f, q->rows, 10, &so, found, NULL), 0);
	double written = t_recall(found, q->rows, 10, f->truth, 10);
	for (size_t j = 0; j < n_del; j++) {
		for (size_t i = 0; i < q->rows * 10; i++)
			cr_assert_neq(found[i], del[j], "%s: deleted id %llu returned", what,
			              (unsigned long long)del[j]);
		cr_assert_eq(strata_search(db, f->base.f + del[j] * dim, 1, 1, &so, &got, NULL), 0);
		cr_assert_neq(got, del[j], "%s: deleted id %llu found by its vector", what,
		              (unsigned long long)del[j]);
	}
	size_t live = n - from - n_del, self = found_by_own_vector(db, f->base.f, dim, from, n);
	cr_assert_geq(self, live * 99 / 100, "%s: %zu of %zu rows found by their own vector", what, self,
	              live);
	cr_assert_eq(strata_compact(db), 0);
	cr_assert_eq(strata_search(db, q->f, q->rows, 10, &so, found, NULL), 0);
	double one = t_recall(found, q->rows, 10, f->truth, 10);
	cr_log_info("%s: recall@10 at ef 64 %.4f, the same rows compacted %.4f", what, written, one);
	cr_assert_geq(written, one - 0.01, "%s: %.4f, compacted %.4f", what, written, one);
	free(found);
}

/*
 * A flushed memtable's anchors go with it to its segment (memtable.h,
 * seg_anchors): until a merge absorbs that segment, searches reach its nodes
 * through the largest segment's walk instead of walking it. A flush also hangs
 * the rows the indexer had not hung yet, and rows dropped at the freeze or
 * deleted after the flush never come back.
 */
Test(db_compact, a_flushed_memtable_keeps_its_anchors, .timeout = 300)
{
	struct sift_db f = sift_db_open(0);
	struct t_mat base = f.base;
	const size_t n = base.rows, dim = base.dim, in_seg = 8000, late = 300;
	const uint64_t *ids = f.ids;
	strata_db *db = f.db;
	cr_assert_eq(strata_upsert(db, ids, base.f, in_seg), 0);
	cr_assert_eq(strata_flush(db), 0);
	cr_assert_eq(strata_upsert(db, ids + in_seg, base.f + in_seg * dim, n - in_seg - late), 0);
	wait_anchored(db);
	/* The last rows flushed at once (most not hung yet); two written twice, one deleted. */
	cr_assert_eq(strata_upsert(db, ids + n - late, base.f + (n - late) * dim, late), 0);
	const uint64_t again[2] = {in_seg + 5, in_seg + 6}, gone_early = in_seg + 7;
	cr_assert_eq(strata_upsert(db, again, base.f + again[0] * dim, 2), 0);
	cr_assert_eq(strata_delete(db, &gone_early, 1), 0);
	cr_assert_eq(strata_flush(db), 0);

	cr_assert_eq(hung_under_first(db, 1, SEG_ANCHORS_FLUSH), n - in_seg - 1);
	/* And deleted after the flush: tombstones of the flushed segment. */
	enum { DEL = 200 };
	uint64_t del[DEL + 1];
	for (size_t i = 0; i < DEL; i++)
		del[i] = in_seg + 10 + i * 7;
	cr_assert_eq(strata_delete(db, del, DEL), 0);
	del[DEL] = gone_early;
	check_hung_search(&f, in_seg, del, DEL + 1, 110.0, "flushed batch");
	sift_db_close(&f);
}

/*
 * A merge of segments that all hang under the largest one (flushed batches)
 * hangs its output there too, the rows its inputs' deletion files drop left
 * out: the batches stay reached through the large segment's walk.
 */
Test(db_compact, a_merge_of_flushed_batches_keeps_their_anchors, .timeout = 300)
{
	struct sift_db f = sift_db_open(2);
	struct t_mat base = f.base;
	const size_t n = base.rows, dim = base.dim, in_seg = 8000, batch = 1000;
	const uint64_t *ids = f.ids;
	strata_db *db = f.db;
	cr_assert_eq(strata_upsert(db, ids, base.f, in_seg), 0);
	cr_assert_eq(strata_flush(db), 0);
	cr_assert_eq(strata_upsert(db, ids + in_seg, base.f + in_seg * dim, batch), 0);
	wait_anchored(db);
	cr_assert_eq(strata_flush(db), 0);
	cr_assert_eq(hung_under_first(db, 1, SEG_ANCHORS_FLUSH), batch);
	/* Deleted from the first batch: its deletion file, written by the next flush, drops them. */
	enum { DEL = 100 };
	uint64_t del[DEL];
	for (size_t i = 0; i < DEL; i++)
		del[i] = in_seg + i * 9;
	cr_assert_eq(strata_delete(db, del, DEL), 0);
	cr_assert_eq(strata_upsert(db, ids + in_seg + batch, base.f + (in_seg + batch) * dim,
	                           n - in_seg - batch),
	             0);
	wait_anchored(db);
	cr_assert_eq(strata_flush(db), 0);
	wait_idle(db); /* max_segments 2: the two batches merge */
	struct strata_stats st;
	strata_stats(db, &st);
	cr_assert_eq(st.segments, 2);
	cr_assert_eq(hung_under_first(db, 1, SEG_ANCHORS_MERGE), n - in_seg - DEL);
	check_hung_search(&f, in_seg, del, DEL, 110.0, "merged batches");
	sift_db_close(&f);
}

/*
 * A memtable as large as the segment its rows hang under: a query meets about
 * as many of them under the walk's nodes as a walk of the memtable would
 * compute distances, and more in dense parts, where the search walks the
 * memtable instead (search.c, leaves_budget; siftsmall as 5,000 + 5,000, ef
 * 64: 339 rows met per query on average against a walk of ~265).
 */
Test(db_compact, a_memtable_as_large_as_the_segment_is_walked_where_that_costs_less,
     .timeout = 300)
{
	struct sift_db f = sift_db_open(0);
	struct t_mat base = f.base;
	const size_t n = base.rows, dim = base.dim, in_seg = 5000;
	strata_db *db = f.db;
	cr_assert_eq(strata_upsert(db, f.ids, base.f, in_seg), 0);
	cr_assert_eq(strata_flush(db), 0);
	cr_assert_eq(strata_upsert(db, f.ids + in_seg, base.f + in_seg * dim, n - in_seg), 0);
	wait_anchored(db);
	check_hung_search(&f, in_seg, NULL, 0, 290.0, "memtable of equal size");
	sift_db_close(&f);
}

/*
 * Anchors live in memory: after a reopen the indexer hangs the other segment
 * under the largest in the background (seg_hang.c), its deleted nodes left
 * out, and searches then reach it through the largest one's walk. The first
 * in_seg rows go to the first segment, the rest to the second, of which n_del
 * are deleted; max_share bounds the second's part of a search's distances.
 */
static void check_reopened_hung(size_t in_seg, size_t n_del, double max_share, const char *what)
{
	struct sift_db f = sift_db_open(0);
	struct t_mat base = f.base;
	const size_t n = base.rows, dim = base.dim;
	strata_db *db = f.db;
	cr_assert_eq(strata_upsert(db, f.ids, base.f, in_seg), 0);
	cr_assert_eq(strata_flush(db), 0);
	cr_assert_eq(strata_upsert(db, f.ids + in_seg, base.f + in_seg * dim, n - in_seg), 0);
	uint64_t *del = malloc((n_del ? n_del : 1) * sizeof *del);
	for (size_t i = 0; i < n_del; i++)
		del[i] = in_seg + i * 17;
	cr_assert_eq(strata_flush(db), 0);
	cr_assert_eq(strata_delete(db, del, n_del), 0);
	strata_close(db);
	strata_options o;
	strata_options_default(&o);
	o.threads = 2;
	o.disable_background_merges = true;
	f.db = db = open_or_die(f.dir.path, &o, 0);
	wait_hung(db, 1);
	cr_assert_eq(hung_under_first(db, 1, SEG_ANCHORS_HUNG), n - in_seg);
	check_hung_search(&f, in_seg, del, n_del, max_share, what);
	free(del);
	sift_db_close(&f);
}

Test(db_compact, a_reopened_segment_is_hung_in_the_background, .timeout = 300)
{
	check_reopened_hung(8000, 100, 110.0, "reopened segment");
}

/*
 * Flushes of full memtables make segments of equal size: the one searches
 * walk first (db_largest: the earlier in the version) takes the other. Then a
 * query meets about as many hung rows as a walk of the other segment would
 * compute distances, and more in dense parts (siftsmall, ef 64: 339 per query
 * on average, the walk 265): such queries walk it instead (search.c,
 * leaves_budget), which keeps the share under the walk's.
 */
Test(db_compact, a_reopened_segment_as_large_as_the_first_is_hung_under_it, .timeout = 300)
{
	check_reopened_hung(5000, 0, 290.0, "reopened segment of equal size");
}

/*
 * Invariant C4 (compactor.h): a merged-away segment file stays while a reader
 * in this process still holds the version that maps it (here: a pinned
 * version, as a search in progress holds it), and goes after it lets go and
 * the grace period passes.
 */
Test(db_compact, a_replaced_file_outlives_its_last_reader_then_goes)
{
	enum { DIM = 4 };
	struct t_dir dir = t_dir_new_mem();
	strata_options o = small_opts(DIM);
	o.disable_background_merges = true;
	o.memtable_max_vectors = 1000;
	strata_db *db = open_or_die(dir.path, &o, STRATA_CREATE);
	float *vecs = t_random_vectors(600, DIM, 3);
	uint64_t ids[600];
	for (uint64_t i = 0; i < 600; i++)
		ids[i] = i;
	cr_assert_eq(strata_upsert(db, ids, vecs, 300), 0);
	cr_assert_eq(strata_flush(db), 0);
	cr_assert_eq(strata_upsert(db, ids + 300, vecs + 300 * DIM, 300), 0);
	cr_assert_eq(strata_flush(db), 0);
	cr_assert_eq(count_files(dir.path, "seg-"), 2);
	struct db_version *held = db_pin(db); /* a reader that has not let go */
	cr_assert_eq(strata_compact(db), 0);
	struct timespec d = {1, 300 * 1000000L}; /* past the grace period */
	nanosleep(&d, NULL);
	cr_assert_eq(count_files(dir.path, "seg-"), 3, "a file went while a reader held it");
	db_unpin(db, held);
	for (int i = 0; i < 300 && count_files(dir.path, "seg-") != 1; i++) {
		struct timespec t = {0, 10 * 1000000L};
		nanosleep(&t, NULL);
	}
	cr_assert_eq(count_files(dir.path, "seg-"), 1, "the replaced files outlived their reader");
	cr_assert_eq(strata_close(db), 0);
	free(vecs);
	t_dir_free(&dir);
}

static atomic_bool spin_stop;

static void *spin_main(void *arg)
{
	(void)arg;
	volatile uint64_t x = 0;
	while (!atomic_load_explicit(&spin_stop, memory_order_relaxed))
		x++;
	return NULL;
}

/*
 * A machine kept busy: one core, a normal-priority thread spinning on it.
 * The background merge starts at idle priority and gets no CPU; once a third
 * segment lands in its tier (merge factor 2) merges are behind, and the
 * compactor gives the idle merge up and runs it at normal priority, so it
 * finishes while the spinner still spins. Without that the merge would wait
 * for the spinner to stop, and segments would pile up for as long as it ran.
 */
Test(db_compact, a_starved_background_merge_runs_at_normal_priority_when_merges_fall_behind,
     .timeout = 120)
{
	cpu_set_t one;
	CPU_ZERO(&one);
	cr_assert_eq(sched_getaffinity(0, sizeof one, &one), 0);
	int cpu = 0;
	while (!CPU_ISSET(cpu, &one))
		cpu++;
	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	cr_assert_eq(sched_setaffinity(0, sizeof one, &one), 0); /* this test's process only */
	atomic_store(&spin_stop, false);
	pthread_t spinner;
	cr_assert_eq(pthread_create(&spinner, NULL, spin_main, NULL), 0);

	enum { DIM = 16, PER = 1500 };
	struct t_dir dir = t_dir_new_mem();
	strata_options o = small_opts(DIM);
	o.merge_factor = 2;
	o.memtable_max_vectors = PER;
	strata_db *db = open_or_die(dir.path, &o, STRATA_CREATE);
	float *vecs = t_random_vectors(3 * PER, DIM, 404);
	uint64_t *ids = malloc(3 * PER * sizeof *ids);
	for (uint64_t i = 0; i < 3 * PER; i++)
		ids[i] = i;
	struct strata_stats st;
	for (int s = 0; s < 3; s++) {
		cr_assert_eq(strata_upsert(db, ids + s * PER, vecs + (size_t)s * PER * DIM, PER), 0, "%s",
		             strata_last_error_detail());
		cr_assert_eq(strata_flush(db), 0, "%s", strata_last_error_detail());
		if (s == 1) { /* the idle merge of the first two has started */
			for (int w = 0; w < 2000; w++) {
				cr_assert_eq(strata_stats(db, &st), 0);
				if (st.compaction_running || st.merges)
					break;
				usleep(5000);
			}
		}
	}
	bool behind_seen = false;
	for (int w = 0; w < 6000; w++) {
		cr_assert_eq(strata_stats(db, &st), 0);
		behind_seen |= st.merges_behind;
		if (st.merges > 0 && !st.compaction_running)
			break;
		usleep(10000);
	}
	cr_assert(st.merges > 0, "no merge while the spinner ran: segments %u, escalated %llu", st.segments,
	          (unsigned long long)st.merges_escalated);
	cr_assert(st.merges_escalated >= 1, "the merge finished without being escalated (%llu merges)",
	          (unsigned long long)st.merges);
	cr_assert(behind_seen || st.merges_escalated, "merges_behind never reported");
	atomic_store(&spin_stop, true);
	pthread_join(spinner, NULL);
	float got[DIM];
	for (uint64_t i = 0; i < 3 * PER; i += 97) {
		cr_assert_eq(strata_get(db, i, got), 0, "get %llu", (unsigned long long)i);
		cr_assert_eq(memcmp(got, vecs + i * DIM, sizeof got), 0, "id %llu", (unsigned long long)i);
	}
	cr_assert_eq(strata_close(db), 0);
	free(ids);
	free(vecs);
	t_dir_free(&dir);
}
