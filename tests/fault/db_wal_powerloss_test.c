/*
 * db_wal_powerloss_test.c - the durability contract under a simulated power
 * loss (format/fio_record.h): a writer ingests with STRATA_SYNC_ALWAYS, small
 * memtables making flushes (segment, deletion files, manifest, WAL removal)
 * part of the run; at a random I/O operation the machine "dies"; everything
 * no completed fsync covered is discarded (optionally tearing the dying
 * write), then the database is reopened with STRATA_VERIFY and checked:
 *   - every acknowledged upsert and delete holds;
 *   - the write in flight is wholly applied or wholly absent.
 * A SIGKILL test (tests/crash/) cannot catch a missing fsync; this one can.
 * The WAL is forced onto its pwrite path: io_uring writes bypass the crash
 * point of the recorder (they are only reported after completing).
 *
 *   STRATA_POWERLOSS_SEEDS  number of seeds (default 60); STRATA_POWERLOSS_SEED one seed
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
#define IDS 300
#define WRITES 120
#define BATCH 8

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

static strata_options opts(void)
{
	strata_options o;
	strata_options_default(&o);
	o.dim = DIM;
	o.M = 4;
	o.ef_construction = 16;
	o.threads = 1;
	o.memtable_max_vectors = 40;
	o.wal_file_bytes = 4096; /* rotations too */
	return o;
}

struct state {
	uint32_t ver[IDS]; /* 0: never written */
	bool del[IDS];
};

static bool holds(strata_db *db, uint64_t id, bool present, uint32_t ver)
{
	float got[DIM], want[DIM];
	int rc = strata_get(db, id, got);
	if (!present)
		return rc == STRATA_ENOTFOUND;
	vec_of(id, ver, want);
	return rc == 0 && memcmp(got, want, sizeof got) == 0;
}

/*
 * One run: crash at op `crash_at` (0: never). Returns the mutating ops the
 * run made, so a first run without a crash sizes the range of crash points.
 */
static uint64_t run(uint64_t seed, uint64_t crash_at, enum fio_tear tear)
{
	struct t_dir d = t_dir_new_mem(); /* the recorder models durability: real fsyncs add nothing */
	char dir[700];
	t_path(&d, "db", dir, sizeof dir);
	strata_options o = opts();
	strata_db *db;
	cr_assert_eq(strata_open(dir, &o, STRATA_CREATE, &db), 0, "%s", strata_last_error_detail());
	cr_assert_eq(strata_close(db), 0);

	cr_assert_eq(fio_record_start(dir), 0, "%s", strata_last_error_detail());
	fio_record_set_tear(tear, seed);
	fio_record_crash_after(crash_at);
	struct state ack = {0};
	uint32_t next_ver[IDS] = {0};
	uint64_t s = seed;
	uint64_t pend_ids[BATCH];
	uint32_t pend_ver[BATCH];
	size_t pend_n = 0;
	bool pend_del = false;
	db = NULL;
	int rc = strata_open(dir, &o, 0, &db);
	for (int w = 0; rc == 0 && w < WRITES; w++) {
		pend_n = 1 + rng(&s) % BATCH;
		pend_del = rng(&s) % 4 == 0;
		float vecs[BATCH * DIM];
		for (size_t i = 0; i < pend_n; i++) {
			pend_ids[i] = rng(&s) % IDS;
			for (size_t j = 0; j < i; j++)
				if (pend_ids[j] == pend_ids[i]) {
					pend_ids[i] = (pend_ids[i] + 1) % IDS;
					j = SIZE_MAX; /* distinct: check from the start again (j++ wraps to 0) */
				}
			pend_ver[i] = ++next_ver[pend_ids[i]];
			vec_of(pend_ids[i], pend_ver[i], vecs + i * DIM);
		}
		rc = pend_del ? strata_delete(db, pend_ids, pend_n) : strata_upsert(db, pend_ids, vecs, pend_n);
		if (rc)
			break;
		for (size_t i = 0; i < pend_n; i++) {
			ack.ver[pend_ids[i]] = pend_ver[i];
			ack.del[pend_ids[i]] = pend_del;
		}
		pend_n = 0;
		if (w % 37 == 36 && (rc = strata_flush(db)))
			break;
	}
	if (db)
		strata_close(db); /* after a crash its syncs fail: that is the point */
	uint64_t ops = fio_record_ops();
	bool crashed = fio_record_crashed();
	cr_assert(crashed || rc == 0, "seed %llu: a write failed without a crash: %s",
	          (unsigned long long)seed, strata_last_error_detail());
	cr_assert_eq(fio_record_powerloss(), 0, "seed %llu: %s", (unsigned long long)seed,
	             strata_last_error_detail());

	rc = strata_open(dir, &o, STRATA_VERIFY, &db);
	cr_assert_eq(rc, 0, "seed %llu crash at %llu tear %d: reopen after power loss: %s: %s",
	             (unsigned long long)seed, (unsigned long long)crash_at, (int)tear, strata_strerror(rc),
	             strata_last_error_detail());
	/* The write in flight: the state after it, or before it, for all of its ids together. */
	size_t only_post = 0, only_pre = 0;
	for (size_t i = 0; i < pend_n; i++) {
		uint64_t id = pend_ids[i];
		bool post = holds(db, id, !pend_del, pend_ver[i]);
		bool pre = holds(db, id, ack.ver[id] && !ack.del[id], ack.ver[id]);
		cr_assert(post || pre, "seed %llu crash at %llu: id %llu of the write in flight is neither",
		          (unsigned long long)seed, (unsigned long long)crash_at, (unsigned long long)id);
		only_post += post && !pre;
		only_pre += pre && !post;
	}
	cr_assert(!(only_post && only_pre), "seed %llu crash at %llu: the write in flight is half there",
	          (unsigned long long)seed, (unsigned long long)crash_at);
	if (only_post)
		for (size_t i = 0; i < pend_n; i++) {
			ack.ver[pend_ids[i]] = pend_ver[i];
			ack.del[pend_ids[i]] = pend_del;
		}
	for (uint64_t id = 0; id < IDS; id++) {
		bool present = ack.ver[id] && !ack.del[id];
		cr_assert(holds(db, id, present, ack.ver[id]),
		          "seed %llu crash at %llu tear %d: acknowledged id %llu (version %u, %s) lost",
		          (unsigned long long)seed, (unsigned long long)crash_at, (int)tear,
		          (unsigned long long)id, ack.ver[id], present ? "present" : "deleted");
	}
	strata_close(db);
	t_dir_free(&d);
	return ops;
}
#endif

Test(db_wal_powerloss, acknowledged_writes_survive_power_loss_at_random_points, .timeout = 600)
{
	T_NEED_FAILPOINTS();
#if STRATA_FAILPOINTS
	setenv("STRATA_WAL_IO", "pwrite", 1);
	const char *one = getenv("STRATA_POWERLOSS_SEED");
	const char *ns = getenv("STRATA_POWERLOSS_SEEDS");
	int seeds = ns ? atoi(ns) : 60;
	uint64_t first = one ? strtoull(one, NULL, 0) : 1;
	if (one)
		seeds = 1;
	for (int i = 0; i < seeds; i++) {
		uint64_t seed = first + (uint64_t)i;
		uint64_t total = run(seed, 0, FIO_TEAR_NONE); /* sizes the crash points of this workload */
		uint64_t s = seed * 31;
		uint64_t at = 1 + rng(&s) % total;
		enum fio_tear tear = (enum fio_tear)(rng(&s) % 3);
		run(seed, at, tear);
		if (i % 10 == 0)
			printf("seed %llu: crash at op %llu of %llu, tear %d: contract held\n",
			       (unsigned long long)seed, (unsigned long long)at, (unsigned long long)total,
			       (int)tear);
	}
#endif
}
