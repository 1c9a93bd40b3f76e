/*
 * db_merge_powerloss_test.c - the durability contract under a simulated power
 * loss (format/fio_record.h) while the compactor merges and rewrites
 * segments: a writer ingests with a small memtable, merge factor 2 and
 * rewrites at 10% deleted, calls strata_compact now and then, and at a random
 * I/O operation (its own or the compactor's) the machine "dies"; everything
 * no completed fsync covered is discarded (optionally tearing the dying
 * write); the database is reopened with STRATA_VERIFY and checked.
 *
 *   sync_always: every acknowledged write holds, the one in flight is all
 *     there or not at all (as db_wal_powerloss_test, with merges).
 *   sync_none: writes are synced only by strata_sync every few calls, so
 *     the state after the crash must be the state after some prefix of the
 *     writes, no shorter than the last synced one. This is what catches a
 *     merge that dropped a row on the strength of a delete that was never
 *     durable (compactor.c: merges drop only what deletion files persist):
 *     with merges dropping in-memory tombstones instead, seed 35 of the first
 *     100 failed, hence 150 seeds by default (a few seconds).
 *
 *   STRATA_POWERLOSS_SEEDS  number of seeds per test (default 150); STRATA_POWERLOSS_SEED one seed
 * Skipped in builds without failpoints.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strata.h"
#include "t_fault.h"
#include "t_support.h"

#if STRATA_FAILPOINTS
#include "fio_record.h"

#define DIM 4
#define IDS 200
#define WRITES 150
#define BATCH 6

static uint64_t rng(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void vec_of(uint64_t id, uint32_t ver, float *v)
{
	uint64_t s = id * 7919u + ver;
	for (int j = 0; j < DIM; j++)
		v[j] = (float)(rng(&s) % 1000) / 10.0f;
}

static strata_options opts(strata_sync_mode mode)
{
	strata_options o;
	strata_options_default(&o);
	o.dim = DIM;
	o.M = 4;
	o.ef_construction = 16;
	o.threads = 1;
	o.memtable_max_vectors = 30;
	o.wal_file_bytes = 4096;
	o.sync_mode = mode;
	o.merge_factor = 2;
	o.tombstone_pct = 10;
	return o;
}

struct write {
	bool del;
	size_t n;
	uint64_t ids[BATCH];
	uint32_t ver[BATCH];
};

/* The state after the first p writes, per id: version (0 = never) and deleted. */
static void state_after(const struct write *w, size_t p, uint32_t *ver, bool *del)
{
	memset(ver, 0, IDS * sizeof *ver);
	memset(del, 0, IDS * sizeof *del);
	for (size_t i = 0; i < p; i++)
		for (size_t j = 0; j < w[i].n; j++) {
			ver[w[i].ids[j]] = w[i].ver[j];
			del[w[i].ids[j]] = w[i].del;
		}
}

static bool holds(strata_db *db, uint64_t id, uint32_t ver, bool del)
{
	float got[DIM], want[DIM];
	int rc = strata_get(db, id, got);
	if (ver == 0 || del)
		return rc == STRATA_ENOTFOUND;
	vec_of(id, ver, want);
	return rc == 0 && memcmp(got, want, sizeof got) == 0;
}

static bool matches(strata_db *db, const struct write *w, size_t p)
{
	uint32_t ver[IDS];
	bool del[IDS];
	state_after(w, p, ver, del);
	for (uint64_t id = 0; id < IDS; id++)
		if (!holds(db, id, ver[id], del[id]))
			return false;
	return true;
}

/*
 * One run: crash at op `crash_at` (0: never). With SYNC_ALWAYS the floor is
 * every acknowledged write; with SYNC_NONE the last strata_sync. Returns the
 * mutating ops the run made.
 */
static uint64_t run(strata_sync_mode mode, uint64_t seed, uint64_t crash_at, enum fio_tear tear)
{
	struct t_dir d = t_dir_new_mem();
	char dir[700];
	t_path(&d, "db", dir, sizeof dir);
	strata_options o = opts(mode);
	strata_db *db;
	cr_assert_eq(strata_open(dir, &o, STRATA_CREATE, &db), 0, "%s", strata_last_error_detail());
	cr_assert_eq(strata_close(db), 0);

	cr_assert_eq(fio_record_start(dir), 0, "%s", strata_last_error_detail());
	fio_record_set_tear(tear, seed);
	fio_record_crash_after(crash_at);
	static struct write w[WRITES];
	uint32_t next_ver[IDS] = {0};
	uint64_t s = seed;
	size_t acked = 0, synced = 0, issued = 0;
	db = NULL;
	int rc = strata_open(dir, &o, 0, &db);
	for (size_t i = 0; rc == 0 && i < WRITES; i++) {
		struct write *x = &w[i];
		x->n = 1 + rng(&s) % BATCH;
		x->del = rng(&s) % 3 == 0;
		float vecs[BATCH * DIM];
		for (size_t j = 0; j < x->n; j++) {
			/* Distinct within the batch: step on until no earlier id is met. */
			x->ids[j] = rng(&s) % IDS;
			for (size_t t = 0; t < j;) {
				if (x->ids[t] == x->ids[j]) {
					x->ids[j] = (x->ids[j] + 1) % IDS;
					t = 0;
				} else {
					t++;
				}
			}
			x->ver[j] = ++next_ver[x->ids[j]];
			vec_of(x->ids[j], x->ver[j], vecs + j * DIM);
		}
		issued = i + 1;
		rc = x->del ? strata_delete(db, x->ids, x->n) : strata_upsert(db, x->ids, vecs, x->n);
		if (rc)
			break;
		acked = i + 1;
		if (mode != STRATA_SYNC_ALWAYS && i % 11 == 10) {
			if ((rc = strata_sync(db)))
				break;
			synced = i + 1;
		}
		if (i % 29 == 28 && (rc = strata_compact(db)))
			break;
		if (mode != STRATA_SYNC_ALWAYS && i % 29 == 28)
			synced = i + 1; /* compact flushes: everything before it is in segments */
	}
	if (db)
		strata_close(db); /* after a crash its syncs fail: that is the point */
	uint64_t ops = fio_record_ops();
	bool crashed = fio_record_crashed();
	cr_assert(crashed || rc == 0, "seed %llu: a call failed without a crash: %s",
	          (unsigned long long)seed, strata_last_error_detail());
	cr_assert_eq(fio_record_powerloss(), 0, "seed %llu: %s", (unsigned long long)seed,
	             strata_last_error_detail());

	rc = strata_open(dir, &o, STRATA_VERIFY, &db);
	cr_assert_eq(rc, 0, "seed %llu crash at %llu tear %d: reopen after power loss: %s: %s",
	             (unsigned long long)seed, (unsigned long long)crash_at, (int)tear, strata_strerror(rc),
	             strata_last_error_detail());
	/* The recovered state is the state after some prefix p, floor <= p <= issued. */
	size_t floor = mode == STRATA_SYNC_ALWAYS ? acked : synced;
	bool found = false;
	for (size_t p = issued + 1; p-- > floor && !found;)
		found = matches(db, w, p);
	cr_assert(found,
	          "seed %llu crash at %llu tear %d: the state after the crash is no prefix of the "
	          "writes between %zu (%s) and %zu",
	          (unsigned long long)seed, (unsigned long long)crash_at, (int)tear, floor,
	          mode == STRATA_SYNC_ALWAYS ? "acknowledged" : "synced", issued);
	strata_close(db);
	t_dir_free(&d);
	return ops;
}

static void run_seeds(strata_sync_mode mode)
{
	setenv("STRATA_WAL_IO", "pwrite", 1); /* io_uring writes bypass the recorder's crash point */
	const char *one = getenv("STRATA_POWERLOSS_SEED");
	const char *ns = getenv("STRATA_POWERLOSS_SEEDS");
	int seeds = one ? 1 : ns ? atoi(ns) : 150;
	uint64_t first = one ? strtoull(one, NULL, 0) : 1;
	for (int i = 0; i < seeds; i++) {
		uint64_t seed = first + (uint64_t)i;
		uint64_t total = run(mode, seed, 0, FIO_TEAR_NONE);
		uint64_t s = seed * 131;
		uint64_t at = 1 + rng(&s) % total;
		enum fio_tear tear = (enum fio_tear)(rng(&s) % 3);
		run(mode, seed, at, tear);
		if (i % 10 == 0)
			printf("%s seed %llu: crash at op %llu of %llu, tear %d: contract held\n",
			       mode == STRATA_SYNC_ALWAYS ? "always" : "none", (unsigned long long)seed,
			       (unsigned long long)at, (unsigned long long)total, (int)tear);
	}
}
#endif

Test(db_merge_powerloss, sync_always_writes_survive_merges_and_power_loss, .timeout = 900)
{
	T_NEED_FAILPOINTS();
#if STRATA_FAILPOINTS
	run_seeds(STRATA_SYNC_ALWAYS);
#endif
}

Test(db_merge_powerloss, sync_none_recovers_a_prefix_despite_merges, .timeout = 900)
{
	T_NEED_FAILPOINTS();
#if STRATA_FAILPOINTS
	run_seeds(STRATA_SYNC_NONE);
#endif
}
