/*
 * t_workload.h - a small deterministic write workload (upserts, deletes,
 * flushes that write deletion files, one close and reopen) and the checks of
 * the durability contract after it was cut short by a crash or an I/O
 * failure: every acknowledged op holds, bit for bit; the op in flight is
 * wholly applied or wholly absent; the database then takes writes again.
 * Used by tests/crash/db_steps_test.c and tests/fault/db_write_fault_test.c.
 * Test code only: the checks are Criterion assertions.
 */
#ifndef STRATA_T_WORKLOAD_H
#define STRATA_T_WORKLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "strata.h"

#define T_WL_DIM 4
#define T_WL_IDS 120  /* ids 0..119 */
#define T_WL_BATCH 6  /* ids per upsert or delete */
#define T_WL_OPS 44

enum t_wl_kind { T_WL_UPSERT, T_WL_DELETE, T_WL_FLUSH, T_WL_REOPEN, T_WL_COMPACT };

struct t_wl_op {
	enum t_wl_kind kind;
	size_t n;
	uint64_t ids[T_WL_BATCH]; /* distinct within the op */
	uint32_t ver[T_WL_BATCH]; /* upsert: the version of each id's vector (t_wl_vec) */
};

struct t_workload {
	struct t_wl_op ops[T_WL_OPS];
};

/* The ops: a flush every 11th (op 32: strata_compact, a merge of the segments), the reopen at
 * op 27, deletes after op 12 (of flushed ids too). */
void t_wl_make(struct t_workload *w);
/* dim 4, M 4, one thread, flushes and merges only when asked, 1 KiB WAL files (rotations, removals). */
strata_options t_wl_options(void);
/* The vector of `id` at version `ver`. */
void t_wl_vec(uint64_t id, uint32_t ver, float *v);

/*
 * Run every op on *db, an open writer of `dir` (the reopen op replaces it;
 * *db may be NULL on return if that reopen failed). ack(ctx, i) follows
 * every op that returned 0. Stops at the first failure: returns the index of
 * the op that failed (its code in *rc_out, which may be NULL), or T_WL_OPS.
 * *db is left open for the caller.
 */
int t_wl_run(const struct t_workload *w, const char *dir, strata_db **db,
             void (*ack)(void *ctx, int i), void *ctx, int *rc_out);

/* Open `dir` as a writer (t_wl_options), run the workload, close. Returns t_wl_run's result, -1 if the open failed. */
int t_wl_run_dir(const struct t_workload *w, const char *dir, void (*ack)(void *ctx, int i), void *ctx);

/* An ack callback for a struct t_wl_acks: ops 0..n-1 acknowledged (a prefix). */
struct t_wl_acks {
	int n;
};
void t_wl_ack_mem(void *ctx, int i);

/* id holds version `ver` (0: absent). */
bool t_wl_holds(strata_db *db, uint64_t id, uint32_t ver);

/*
 * Reopen `dir` (writer, STRATA_VERIFY) and check the contract: ops
 * 0..acked-1 hold, op `acked` wholly or not at all; then an upsert and a
 * flush succeed and the handle's write_error is 0. `what` names the case in
 * failure messages.
 */
void t_wl_check_reopen(const struct t_workload *w, const char *dir, int acked, const char *what);
/* The same, but id `id` is not checked (the test wrote it beyond the workload). */
void t_wl_check_reopen_except(const struct t_workload *w, const char *dir, int acked, uint64_t id,
                              const char *what);

#endif /* STRATA_T_WORKLOAD_H */
