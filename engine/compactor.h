/*
 * compactor.h - the background compactor of a writable handle: size-tiered
 * merges of segments, rewrites of segments with many deleted vectors,
 * strata_compact, and the grace period of replaced files. compactor.c.
 *
 * Lifecycle (one compactor per writable handle):
 *
 *   compactor_start() --> IDLE --(a flush pokes; the policy finds work;
 *                          |       strata_compact asks)--> MERGING
 *                          |<-- merge committed, or failed (retried later) --'
 *   compactor_stop() ------'  (a running merge is abandoned: its segment file,
 *                              never named by a manifest, is removed now or
 *                              by the next writer's open)
 *
 * A merge never blocks writers or searches: it reads its inputs through a
 * pinned version, builds and writes the merged segment without locks, and
 * holds mf_lock (and write_lock, briefly, for the in-memory switch) only to
 * commit. Invariants the tests cite:
 *   C1. A merged segment holds every row of its inputs that no persisted
 *       deletion file drops, once (newest copy), and nothing else.
 *   C2. Its persisted deletion file is the union of its inputs' persisted
 *       ones as of the commit, mapped to its nodes; its in-memory tombstones
 *       are their in-memory ones (writes during the merge are not lost).
 *   C3. The manifest naming the merged segment is committed before the new
 *       version is installed and before any input file is deleted.
 *   C4. A replaced segment's files are deleted only after the commit, after
 *       the last reader in this process let go of it (db_segment_unref), and
 *       after a grace period for readers in other processes.
 */
#ifndef STRATA_COMPACTOR_H
#define STRATA_COMPACTOR_H

#include <stdint.h>

#include "strata.h"

struct compactor;

/* STRATA_EINVAL with a detail for compaction options out of range; before anything starts. */
int compactor_check_options(const strata_options *o);

/* Start the compactor thread of a writable handle. 0 or STRATA_ENOMEM. */
int compactor_start(strata_db *db);

/*
 * Stop the thread: a running merge is abandoned. Retiring files and pokes
 * still work afterwards (the flusher may yet finish a flush). Safe on a
 * handle whose compactor never started.
 */
void compactor_halt(strata_db *db);

/* Halt if needed, delete every retired file now, free db->compactor. */
void compactor_free(strata_db *db);

/* A flush landed (or something else changed): look for work now. */
void compactor_poke(strata_db *db);

/*
 * `name` (a file of the database directory) is no longer named by the
 * committed manifest: delete it after the grace period (at once when the
 * compactor is not running).
 */
void compactor_retire(strata_db *db, const char *name);

/* The size tier of a segment of `live` vectors under this handle's merge factor. */
uint32_t compactor_tier(const strata_db *db, uint64_t live);

/* The compaction fields of strata_stats (and write_amplification). */
void compactor_stats(strata_db *db, struct strata_stats *out);

#endif /* STRATA_COMPACTOR_H */
