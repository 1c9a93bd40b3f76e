/*
 * db.h - the strata_db handle and what build.c and search.c share with db.c.
 *
 * Lifecycle of a handle:
 *
 *   strata_open() --> OPEN (segments mapped, checked; writable: WAL replayed into
 *                      |    the memtable, indexer and flusher threads running)
 *                      |  strata_search / get / stats / upsert / delete / flush, any threads
 *                      v
 *                     strata_close() (threads stopped, WAL synced)
 *
 * Searches pin a `struct db_version` and work on it without locks; a flush
 * installs a new version and the old one goes when its last reader lets go.
 */
#ifndef STRATA_DB_H
#define STRATA_DB_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "hnsw.h"
#include "manifest.h"
#include "memtable.h"
#include "segment.h"
#include "strata.h"

/*
 * A mapped segment file and its tombstones. Shared by every version that
 * lists it (reference-counted); unmapped when the last one lets go.
 */
struct db_segment {
	_Atomic int refs;
	strata_db *db;
	/* A merge replaced it: when the last reference goes, its files are retired (compactor.c). */
	_Atomic bool retired;
	char name[MF_SEGMENT_NAME_LEN + 1];
	int fd;
	const uint8_t *map;
	size_t len;
	struct seg_info info;
	struct hnsw_view view;
	struct mf_segment entry;     /* its manifest entry (tomb_gen: the persisted deletion file) */
	/* Tombstones: a bit per node, set by deletes and by newer writes of the id. */
	_Atomic uint64_t *tomb;      /* (count + 63) / 64 words */
	_Atomic uint64_t tomb_n;     /* bits set */
	_Atomic uint64_t tomb_saved; /* bits set in the persisted deletion file */
	uint64_t *tomb_snap;         /* flush in progress: the bits as of its checkpoint */
	uint64_t tomb_snap_n;
	/*
	 * The bits of the persisted deletion file (NULL: none). Replaced only under
	 * db->mf_lock. A merge drops exactly these nodes: a bit set in memory but
	 * not yet persisted may stem from a write that is not durable yet (sync
	 * modes other than ALWAYS), and the row must survive until it is.
	 */
	uint64_t *tomb_disk;
	/*
	 * Its nodes hung under a larger segment's (memtable.h, seg_anchors), or
	 * NULL: set by a flush or merge before the segment is searched, replaced
	 * by the indexer (seg_hang.c; the set replaced stays until the segment goes).
	 */
	_Atomic(struct seg_anchors *) anchors;
};

static inline bool seg_is_dead(const struct db_segment *s, uint32_t node)
{
	return s->tomb && ((atomic_load_explicit(&s->tomb[node / 64], memory_order_relaxed) >> (node % 64)) & 1);
}

/*
 * What a search sees: the segments (oldest first) and the memtables. Pinned
 * by reference count; replaced as a whole when a flush or freeze changes it.
 */
struct db_version {
	_Atomic int refs;
	uint32_t nseg;
	struct db_segment **segs;
	struct memtable *frozen;     /* being flushed, or NULL */
	struct memtable *active;     /* NULL when read-only */
};

/* Per-thread search state, pooled in the handle so a query allocates nothing. */
struct db_scratch {
	struct hnsw_scratch *hs;
	struct hnsw_hit *hits;    /* one segment's results */
	size_t hits_cap;
	struct db_result *merged; /* results of every segment, before the final top-k */
	size_t merged_cap;
	struct db_result *best;   /* the k best distinct ids so far (the bound across segments) */
	size_t best_cap;
	float *query;             /* the normalised query (cosine) */
	size_t query_cap;
	struct hnsw_trace trace;  /* the first source's expanded nodes (memtable anchors) */
	struct mt_seen seen;      /* memtable rows met under those nodes */
};

struct db_result {
	float dist;
	uint64_t id;
};

struct strata_db {
	char *dir;
	unsigned flags;
	int lock_fd;              /* -1 when read-only */
	strata_options opts;      /* as opened (write options, threads, seed) */
	struct mf_manifest mf;    /* the last committed manifest: the flusher's (replaced under write_lock) */
	/* The database's fixed parameters, for readers that must not touch `mf`. */
	uint32_t dim;
	uint32_t metric;
	uint32_t M;
	uint32_t ef_construction;
	_Atomic uint64_t checkpoint_lsn; /* mf.checkpoint_lsn, for stats */
	uint32_t ef_search;

	pthread_mutex_t ver_lock; /* guards `cur` and reference counts of versions */
	struct db_version *cur;
	/*
	 * Held from deriving a new manifest from `mf` to installing the version
	 * that matches it (flush commit, merge commit): the segment set of `cur`
	 * and the entries of `mf` change together, under it, and agree in order.
	 * Lock order: mf_lock, then write_lock, then ver_lock.
	 */
	pthread_mutex_t mf_lock;
	_Atomic uint64_t next_seq; /* segment seqs and deletion-file generations handed out */

	/* ---- writes (writable handles only) ---- */
	struct wal *wal;
	/*
	 * Writers hold it shared from reserving memtable room to applying their
	 * record; a freeze or a version switch holds it exclusive, so that it sees
	 * every logged record applied (writer-preferring: a freeze is not starved).
	 */
	pthread_rwlock_t write_lock;
	pthread_mutex_t flush_lock; /* one freeze/flush at a time; guards mf, bg_error */
	pthread_cond_t flush_cond;  /* a flush finished, or the indexer advanced */
	pthread_cond_t work_cond;   /* the flusher: a freeze to flush, pages to prefault, or stop */
	/*
	 * The indexer: rows to index. A writer signals it only while it waits
	 * (indexer_waiting): waking it, or the flusher, for every write cost 8
	 * writers of one vector each two context switches per write on 2 cores.
	 */
	pthread_cond_t index_cond;
	_Atomic bool indexer_waiting;
	pthread_t indexer, flusher;
	bool threads_started;
	bool stopping;
	uint64_t checkpoint_pending; /* the frozen memtable's LSN, 0 when none */
	bool prefault_pending;      /* the flusher: make the active memtable's next pages present */
	uint64_t *frozen_drop;      /* rows of the frozen memtable dead at its freeze */
	_Atomic uint64_t applied_lsn; /* highest LSN applied to the memtable */
	int bg_error;               /* a failed flush: writes stop and report it */
	char bg_detail[256];
	_Atomic int failed;         /* the WAL failed (fsync): every write returns this */
	_Atomic int fail_claimed;   /* db_fail: the first failure writes fail_detail, then `failed` */
	char fail_detail[256];      /* what the failure said (valid once `failed` is set) */
	struct hnsw_build_params gp;/* parameters of memtable graphs */
	size_t mt_capacity;
	uint64_t tail_max;          /* options.memtable_max_unindexed */
	bool anchors;               /* the indexer hangs memtable rows (write.c, anchor_round) */

	pthread_mutex_t pool_lock;
	struct db_scratch **pool;
	size_t pool_n;
	size_t pool_cap;

	_Atomic uint64_t searches;
	_Atomic uint64_t segments_searched;
	_Atomic uint64_t dist_evals;
	_Atomic uint64_t dist_evals_first; /* of them, each query's first source's */
	_Atomic uint64_t filtered_graph;
	_Atomic uint64_t filtered_scans;
	_Atomic uint64_t upserts, deletes, flushes, write_stalls, stall_ns;
	_Atomic uint64_t flush_bytes;   /* segment and deletion files written by flushes */
	uint64_t replay_records, replay_bytes, replay_torn_bytes;
	double replay_seconds;

	/* ---- compaction (compactor.c; writable handles only) ---- */
	struct compactor *compactor;
};

/* Pin the current version (never NULL for an open handle) / let it go. */
struct db_version *db_pin(strata_db *db);
void db_unpin(strata_db *db, struct db_version *v);
/* Install `v` (holding one reference, given to the handle) as current. */
void db_install(strata_db *db, struct db_version *v);
/* A new version with room for nseg segments, referencing nothing yet. */
struct db_version *db_version_new(uint32_t nseg);
void db_segment_unref(struct db_segment *s);
/*
 * The segment searches walk first: most live vectors, ties to the earlier in
 * the version (search.c's order); NULL without segments. *live_out its live vectors.
 */
struct db_segment *db_largest(const struct db_version *v, uint64_t *live_out);
/* Position of segment s in version v, or UINT32_MAX. */
uint32_t db_version_pos(const struct db_version *v, const struct db_segment *s);
/* Live vectors of a segment: nodes minus tombstones. */
uint64_t db_segment_live(const struct db_segment *s);

/* Map segment `e` of the manifest and check it (and load its deletion file). */
int db_segment_open(strata_db *db, const struct mf_segment *e, struct db_segment **out);
/* Fault in the mapping of a segment this process just wrote (flush, merge). Best effort. */
void db_segment_warm(const struct db_segment *s);

/*
 * Write the graph of view `v` (segment layout, n nodes) with node_ids[node] as
 * a segment file at `path` (build.c): seg_write()'s results, and the file's
 * size in *size_out (may be NULL).
 */
int db_write_graph(const char *path, uint32_t dim, uint32_t metric, uint32_t M,
                   uint32_t ef_construction, uint64_t seed, const struct hnsw_view *v,
                   const uint64_t *node_ids, uint64_t n, uint64_t *xxh3_out, uint64_t *size_out);

/* write.c: start/stop the indexer and flusher threads; replay the WAL at open. */
int db_writer_start(strata_db *db);
void db_writer_stop(strata_db *db);
/*
 * Stop accepting writes with `rc` (detail: the thread's current error detail),
 * as after a failed flush: the state on disk is uncertain until reopened.
 */
void db_fail_writes(strata_db *db, int rc);
/* Freeze the active memtable and flush it; wait for the flush to land. */
int db_flush_now(strata_db *db);

struct db_scratch *db_scratch_get(strata_db *db);
void db_scratch_put(strata_db *db, struct db_scratch *s);

/* Path of `name` in the database directory (malloc'd; NULL on ENOMEM). */
char *db_path(const strata_db *db, const char *name);

/* A copy of `words` bitmap words (NULL when src is NULL or on ENOMEM: check src). */
uint64_t *db_bits_dup(const uint64_t *src, size_t words);

/* Validate the creation parameters in `opts` (dim, metric, M, ef). */
int db_check_params(const strata_options *opts);

/* Number of online CPUs (at least 1). */
uint32_t db_cpu_count(void);

/* Fill `buf` with random bytes (database uuid). */
void db_random_bytes(uint8_t *buf, size_t len);

#endif /* STRATA_DB_H */
