/*
 * strata.h - the one public header of strata, an embeddable, memory-mapped
 * vector search engine (HNSW over float32 vectors).
 *
 * Everything a program needs is declared here; nothing else is installed.
 * Conventions, true of every function below unless its comment says
 * otherwise:
 *   - Functions return 0 (STRATA_OK) or a negative STRATA_E* code. Codes are
 *     ABI: they are never renumbered or reused. Bands tell the class:
 *       -1..-19  the call was wrong; nothing changed
 *       -20..-39 a resource ran out
 *       -40..-59 the operating system failed
 *       -60..-79 the bytes of a file are wrong (STRATA_IS_DATA_ERROR)
 *   - Output parameters come last, end in `_out`, and are written only on
 *     success.
 *   - Nothing prints, exits or aborts on bad input or I/O errors.
 *   - After a failure, strata_last_error_detail() says what and where
 *     (file, offset, row) in the calling thread.
 *
 * File formats: format/FORMAT.md. Architecture: DESIGN.md.
 */
#ifndef STRATA_H
#define STRATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(STRATA_BUILDING_LIBRARY)
#define STRATA_API __attribute__((visibility("default")))
#else
#define STRATA_API
#endif

/* ---- Error codes (stable values) ------------------------------------- */

enum {
	STRATA_OK = 0,
	/* The call was wrong; nothing changed. */
	STRATA_EINVAL = -1,     /* bad argument (null pointer, k = 0, unknown flag ...) */
	STRATA_EDIM = -2,       /* dimension differs from the database's, or out of range */
	STRATA_EMETRIC = -3,    /* metric differs from the database's, or unknown */
	STRATA_ENOTFOUND = -4,  /* no such database, file or id */
	STRATA_EEXIST = -5,     /* the target already exists */
	STRATA_EBUSY = -6,      /* another writer holds the directory */
	STRATA_EREADONLY = -7,  /* write to a database opened STRATA_READONLY */
	STRATA_ENONFINITE = -8, /* a vector holds NaN or +-Inf */
	STRATA_EDUPLICATE = -9, /* the same id twice in one bulk build */
	/* A resource ran out. */
	STRATA_ENOMEM = -20,
	STRATA_ELIMIT = -21,    /* a count or size beyond what strata supports */
	STRATA_ENOSPC = -22,    /* no space left on the device */
	/* The operating system failed. */
	STRATA_EIO = -40,
	STRATA_EFSYNC = -41,    /* sync failed: every later write fails the same way */
	STRATA_EPERM = -42,     /* permission denied */
	/* The bytes of a file are wrong. */
	STRATA_ENOTDB = -60,    /* wrong magic: not a strata file */
	STRATA_EVERSION = -61,  /* a format version this build cannot read */
	STRATA_ECORRUPT = -62,  /* structure inconsistent (bad offset, edge, size ...) */
	STRATA_ECHECKSUM = -63, /* a stored xxh3-64 checksum does not match */
	STRATA_ETRUNCATED = -64 /* the file is shorter than its header says */
};

#define STRATA_IS_DATA_ERROR(rc) ((rc) <= -60 && (rc) > -80)

/* The id placed in result slots beyond what exists (distance +infinity). */
#define STRATA_NO_ID UINT64_MAX

/* Limits this build enforces on arguments and on files. */
#define STRATA_DIM_MAX 65536u
#define STRATA_M_MIN 2u
#define STRATA_M_MAX 256u
#define STRATA_K_MAX 100000u
#define STRATA_EF_MAX 1000000u

/* ---- Options ----------------------------------------------------------- */

typedef enum strata_metric {
	STRATA_METRIC_L2 = 0,     /* squared Euclidean distance */
	STRATA_METRIC_IP = 1,     /* 1 - dot product */
	STRATA_METRIC_COSINE = 2  /* 1 - cosine similarity; vectors are normalised on write */
} strata_metric;

/*
 * Called from the building thread(s) while strata_build() works: `done` of
 * `total` vectors are in the graph. Called at most a few hundred times per
 * build, never concurrently with itself. Must not call back into strata.
 */
typedef void (*strata_progress_fn)(uint64_t done, uint64_t total, void *ctx);

/*
 * When an acknowledged write (strata_upsert, strata_delete returning 0) is on
 * stable storage.
 */
typedef enum strata_sync_mode {
	/* Before the call returns; concurrent writers share one fdatasync (group commit). */
	STRATA_SYNC_ALWAYS = 0,
	/*
	 * Within sync_interval_ms of the call: a crash may lose the writes of that
	 * last interval (never tear one, never reorder them).
	 */
	STRATA_SYNC_INTERVAL = 1,
	/* Only at strata_sync, strata_flush or strata_close: for bulk loads. */
	STRATA_SYNC_NONE = 2
} strata_sync_mode;

typedef struct strata_options {
	uint32_t dim;             /* vector dimension, 1..STRATA_DIM_MAX; 0 = take it from the database */
	strata_metric metric;     /* fixed at creation */
	uint32_t M;               /* graph degree on upper layers; layer 0 has 2*M. Default 16 */
	uint32_t ef_construction; /* beam width while building. Default 200 */
	uint32_t ef_search;       /* default beam width of searches (strata_search_options.ef = 0). Default 64 */
	uint32_t threads;         /* build threads; 0 = all cores. Default 0 */
	uint64_t seed;            /* level generator seed; with threads = 1 a build is byte-reproducible. Default 100 */
	strata_progress_fn progress; /* optional, may be NULL */
	void *progress_ctx;
	/* ---- writes (not stored in the database; per handle) ---- */
	strata_sync_mode sync_mode; /* durability of acknowledged writes. Default STRATA_SYNC_ALWAYS */
	uint32_t sync_interval_ms;  /* STRATA_SYNC_INTERVAL: longest time a write stays unsynced. Default 100 */
	uint64_t memtable_max_vectors; /* freeze and flush the memtable past this. Default 1,000,000 */
	uint64_t memtable_max_bytes;   /* ... or past this many bytes of vectors and graph. Default 256 MiB */
	uint64_t wal_file_bytes;    /* start a new WAL file past this size. Default 64 MiB */
	/*
	 * Fresh vectors that may wait for the background graph insertion before
	 * writers are slowed to its pace. Every search scans them exactly, so this
	 * bounds what read-your-writes costs a query (4096 128-d vectors: ~0.1 ms);
	 * larger absorbs longer write bursts at full speed. Default 4096
	 */
	uint64_t memtable_max_unindexed;
	/* ---- compaction (per handle; see strata_compact) ---- */
	/*
	 * Size-tiered merging: segments are grouped in tiers by live vectors
	 * (tier t holds 4096 x F^t up to 4096 x F^(t+1), F = merge_factor; tier 0
	 * everything smaller), and as soon as F segments share a tier the
	 * compactor thread merges them into one. 2..64. Default 4
	 */
	uint32_t merge_factor;
	/* A background merge never makes a segment of more live vectors. 0 = no limit. Default 0 */
	uint64_t max_segment_vectors;
	/*
	 * At most this many segments, besides the size tiers: past it the
	 * compactor merges the smallest segments (the largest one's graph reused,
	 * so the CPU goes to inserting the smaller ones) until this many remain,
	 * never past max_segment_vectors. Every segment costs each query a graph
	 * descent and a walk even when it holds nothing close, so fewer segments
	 * search faster while a database is written; the price is bytes: with 1,
	 * every flush rewrites the large segment, and write amplification grows
	 * with the database's size over the memtable's. 0 = no bound. Default 0
	 */
	uint32_t max_segments;
	/*
	 * Besides the size tiers: when the segments other than the largest hold
	 * together this percentage of the largest's live vectors, the compactor
	 * merges them all into the largest (its graph reused, so the CPU goes to
	 * inserting theirs; never past max_segment_vectors). A query walks the
	 * largest segment and finds the few rows of the small ones from the nodes
	 * that walk met, which costs little only while they are few against it;
	 * two or three equal large segments, where size tiers alone leave a
	 * database for long stretches, cost each query a walk of each. The price
	 * is bytes: the largest is rewritten each time the others reach this
	 * share, up to about (100 + P) / P bytes written per byte ingested on
	 * top of the tiers'. 0 = off; at most 1000. Default 25
	 */
	uint32_t merge_into_largest_pct;
	/*
	 * A segment whose deleted share (persisted deletion file) reaches this
	 * percentage is rewritten without them. 1..100 (100: only when empty). Default 20
	 */
	uint32_t tombstone_pct;
	/*
	 * Graph-building threads of a merge. 0 = 1: merges leave the other cores
	 * to queries. Background merges also run under SCHED_IDLE (a core only
	 * when nothing else wants it; nice +10 where that is refused). Default 0
	 */
	uint32_t compaction_threads;
	/* No background merges or rewrites: only strata_compact merges. Default false */
	bool disable_background_merges;
} strata_options;

/* Fill `opts_out` with the defaults above (dim 0, metric l2). Cannot fail. */
STRATA_API void strata_options_default(strata_options *opts_out);

/* ---- Opening and closing ----------------------------------------------- */

typedef struct strata_db strata_db; /* opaque; one per open directory */

enum {
	STRATA_CREATE = 1u << 0,   /* create an empty database if `dir` holds none */
	STRATA_READONLY = 1u << 1, /* no writes; needs no write permission; shareable */
	STRATA_VERIFY = 1u << 2    /* also check every checksum and every graph edge: O(size) */
};

/*
 * Open the database stored in directory `dir`.
 *
 * Opening maps the segment files and checks their headers, section tables and
 * every section bound against the file size, in time independent of the number
 * of vectors; no vector or edge is copied to the heap. STRATA_VERIFY adds a
 * full check of every checksum and edge.
 *
 * `opts` may be NULL. With STRATA_CREATE and no database in `dir`, a new empty
 * one is made with opts->dim (required), metric, M, ef_construction. For an
 * existing database a non-zero opts->dim or a metric other than the stored one
 * is checked against it (STRATA_EDIM / STRATA_EMETRIC); opts->ef_search, when
 * non-zero, overrides the stored default for this handle. `opts` is copied and
 * need not outlive the call.
 *
 * Without STRATA_READONLY the directory is locked for writing (a second writer
 * gets STRATA_EBUSY), files a crash left behind are removed, and the WAL is
 * replayed into the memtable: every record after the manifest's checkpoint.
 * A torn tail of the newest WAL file (a crash in mid-write) is cut back to
 * its last whole record and reported in strata_stats (replay_torn_bytes);
 * zeros the writer wrote ahead of its records are cut too, not counted as
 * torn; damage followed by good records is STRATA_ECORRUPT naming file and
 * offset.
 * Replay costs O(unflushed bytes), bounded by the memtable limits; the
 * replayed vectors are searched exactly until the background indexer has
 * put them in the memtable graph. A writable handle runs two threads (graph
 * indexer; flusher, which also makes the memtable's next pages present ahead
 * of the writer) until strata_close, and under STRATA_SYNC_ALWAYS and
 * _INTERVAL a third that writes zeros ahead of the WAL's records (so that a
 * record's fdatasync overwrites rather than appends; environment variable
 * STRATA_WAL_PREALLOC=off: not); the indexer (and the graph workers
 * it starts, `threads` of them) runs under SCHED_BATCH, its fair share of
 * the CPU without preempting a writer or query that wakes up, and
 * strata_close does not wait for it to index what it is throwing away (plus
 * the compactor's thread: options merge_factor to compaction_threads).
 * The write options of `opts`
 * (sync_mode, memtable limits, wal_file_bytes, threads, seed) apply to this
 * handle only.
 *
 * STRATA_READONLY: no lock, no write permission needed, many processes may
 * share the directory with one writer. The handle sees the last flushed
 * state (the manifest's segments and deletion files), not the writer's WAL.
 *
 * On success *db_out holds the database until strata_close(); on failure
 * *db_out is untouched and there is nothing to close.
 *
 * Returns 0, STRATA_EINVAL, STRATA_ENOTFOUND (no database and no
 * STRATA_CREATE), STRATA_EBUSY, STRATA_EDIM, STRATA_EMETRIC, STRATA_EPERM,
 * STRATA_ENOTDB, STRATA_EVERSION, STRATA_ECORRUPT, STRATA_ECHECKSUM,
 * STRATA_ETRUNCATED, STRATA_EIO or STRATA_ENOMEM.
 */
STRATA_API int strata_open(const char *dir, const strata_options *opts, unsigned flags,
                           strata_db **db_out);

/*
 * Release everything `db` holds: mappings, files, lock, memory. `db` may be
 * NULL. No search or write may be running on `db`. A writable handle waits
 * for a flush in progress, stops its threads and syncs the WAL (so writes of
 * STRATA_SYNC_NONE / _INTERVAL are durable after a successful close); the
 * memtable is not flushed: the next open replays it. Returns 0, or the WAL
 * sync's error (the handle is freed regardless).
 */
STRATA_API int strata_close(strata_db *db);

/*
 * Offline bulk build: write a complete new database into directory `dir`
 * (which must not exist, or be empty) holding `n` vectors, one segment, no WAL.
 *
 * `vectors` is n * opts->dim floats, row-major; `ids` is n caller ids, or NULL
 * for the row numbers 0..n-1. Ids must be distinct (STRATA_EDUPLICATE) and not
 * STRATA_NO_ID. Every component must be finite (STRATA_ENONFINITE; the detail
 * names the row). The graph is built with opts->M, ef_construction, threads
 * and seed; opts->progress is called as it grows.
 *
 * The files are written to a temporary directory beside `dir` and renamed into
 * place at the end, so a failed build leaves nothing behind (even when the
 * final sync of the parent directory fails: the database is taken back out;
 * if even that fails, the error detail says so).
 *
 * Returns 0, STRATA_EINVAL, STRATA_EDIM, STRATA_EMETRIC, STRATA_EEXIST,
 * STRATA_EDUPLICATE, STRATA_ENONFINITE, STRATA_ELIMIT, STRATA_ENOMEM,
 * STRATA_ENOSPC, STRATA_EPERM or STRATA_EIO.
 */
STRATA_API int strata_build(const char *dir, const strata_options *opts, const uint64_t *ids,
                            const float *vectors, size_t n);

/* ---- Reading ------------------------------------------------------------ */

/*
 * Called during a filtered search for ids that are candidates for the result.
 * May be called from several threads at once (one per search thread) and
 * many times per query; it must be thread-safe and must not call into strata.
 * Return true to let `id` into the results.
 */
typedef bool (*strata_filter_fn)(uint64_t id, void *ctx);

typedef struct strata_search_options {
	/*
	 * Beam width; 0 = the database default; raised to k if smaller. A
	 * segment or memtable holding no more vectors than ef is scanned
	 * exactly, so an ef above the vector count gives the exact answer.
	 */
	uint32_t ef;
	uint32_t threads;  /* threads for a batch of queries; 0 or 1 = the calling thread only */
	/*
	 * Optional filters: a result id must pass every filter that is set.
	 *   allow_ids:    sorted ascending, allow_count entries (duplicates allowed).
	 *                 allow_ids non-NULL with allow_count 0 passes nothing.
	 *   allow_bitmap: id i passes if i < allow_bitmap_bits and bit (i % 64) of
	 *                 word i / 64 is set.
	 *   deny_ids:     sorted ascending, deny_count entries: these never pass.
	 *   filter:       a callback (see strata_filter_fn).
	 * The filters are applied during the graph walk: vectors that fail are
	 * walked through, so the graph stays connected, but never enter the
	 * results. Per segment, strata estimates the share of vectors that pass
	 * (exactly for allow_ids through the segment's id index, by sampling
	 * otherwise); when few pass it answers that segment by an exact scan of
	 * the passing vectors. Otherwise the walk's beam is sized from the share,
	 * since a filtered walk that keeps ef passing vectors visits more than an
	 * unfiltered one: ef x sqrt(share) from a share of 0.5 up (recall about
	 * that of the unfiltered search at ef, for less work), back to ef at 0.3,
	 * and wider below (at most 8 ef). Deleted vectors count as failing. For
	 * a large batch the filters may be resolved to a bit per vector first.
	 * The callback may thus be called for every vector of a segment.
	 */
	const uint64_t *allow_ids;
	size_t allow_count;
	const uint64_t *allow_bitmap;
	uint64_t allow_bitmap_bits;
	const uint64_t *deny_ids;
	size_t deny_count;
	strata_filter_fn filter;
	void *filter_ctx;
} strata_search_options;

/* Fill `sopts_out` with defaults: ef 0, threads 1, no filter. Cannot fail. */
STRATA_API void strata_search_options_default(strata_search_options *sopts_out);

/*
 * Find the k nearest live vectors of each of `nq` queries (nq * dim floats,
 * row-major). Results go to ids_out[q*k + i] and dists_out[q*k + i], closest
 * first; slots beyond what exists hold STRATA_NO_ID and +infinity. Either
 * output may be NULL if not wanted. `sopts` may be NULL for defaults.
 * Distances follow hnswlib: l2 = squared Euclidean, ip = 1 - dot,
 * cosine = 1 - cosine similarity.
 *
 * Every segment and the memtable are searched, largest first, and the
 * results merged. Fresh vectors (l2 and cosine, unfiltered searches, a
 * segment larger than the memtable): the background indexer hangs each
 * memtable vector under its 6 nearest nodes of the largest segment, and a
 * search evaluates the vectors hung under the nodes of that segment its walk
 * met closest to the query instead of walking the memtable's own graph
 * (SIFT, 8,000 + 2,000 vectors at ef 64: ~80 distance computations instead of
 * ~170; recall@10 0.995 against the walk's 0.998). Filtered searches,
 * inner-product databases, vectors not hung yet and environment variable
 * STRATA_MEMTABLE_ANCHORS=off (read at open) walk the memtable's graph. A
 * segment flushed from such a memtable (or merged from such segments only)
 * keeps those links, and is searched the same way instead of walked; the
 * indexer hangs the other segments of a writable handle in the background
 * when it has nothing else to do (after an open, or when a merge made another
 * segment the largest). A memtable or segment with more vectors under the
 * nodes met than 35% of the largest segment's walk's distance computations is
 * walked instead, by that query (a walk costs less then). Read-only handles
 * walk every segment.
 *
 * Thread-safe: any number of threads may search one handle at once. Answers
 * do not depend on sopts->threads.
 *
 * Returns 0, STRATA_EINVAL (k = 0 or > STRATA_K_MAX, ef > STRATA_EF_MAX, null
 * queries with nq > 0, unsorted allow_ids or deny_ids, a count without its array), STRATA_ENONFINITE (a query holds
 * NaN/Inf; the detail names it), STRATA_ECORRUPT (the graph met during this
 * search points outside its segment) or STRATA_ENOMEM.
 */
STRATA_API int strata_search(strata_db *db, const float *queries, size_t nq, uint32_t k,
                             const strata_search_options *sopts, uint64_t *ids_out,
                             float *dists_out);

/*
 * Copy the stored vector of `id` (dim floats) to vector_out. With the cosine
 * metric the stored vector is the normalised one.
 * Thread-safe. Returns 0, STRATA_EINVAL or STRATA_ENOTFOUND.
 */
STRATA_API int strata_get(strata_db *db, uint64_t id, float *vector_out);

/*
 * strata_get for each of ids[0..n): the vector of ids[i] goes to
 * vectors_out[i * dim .. +dim), exactly as strata_get would copy it. For
 * bindings that must not loop over ids in their own language.
 *
 * found_out (n bytes) may be NULL. When given, an id that is not in the
 * database is an answer, not an error: found_out[i] = 0 and its row of
 * vectors_out is zero-filled; found ids get 1. vectors_out may then be NULL
 * too, to ask only which ids exist. When found_out is NULL, every id must be
 * present: the first missing one fails the call with STRATA_ENOTFOUND, the
 * detail naming its index and id.
 *
 * Each id is looked up on its own, as by strata_get: against concurrent
 * writers the batch is not one snapshot (each row is some acknowledged
 * state of its id). Duplicated ids are allowed. On failure the contents of
 * vectors_out and found_out are unspecified (rows before the failing id are
 * written).
 *
 * Thread-safe. Returns 0, STRATA_EINVAL (null db, null ids with n > 0, both
 * outputs NULL), STRATA_ENOTFOUND (found_out NULL), STRATA_ENOMEM, or the
 * error of a damaged segment's id index (STRATA_ECORRUPT).
 */
STRATA_API int strata_get_many(strata_db *db, const uint64_t *ids, size_t n, float *vectors_out,
                               uint8_t *found_out);

/* Filled by strata_stats(); a struct tag, since strata_stats names the function. */
struct strata_stats {
	uint32_t dim;
	strata_metric metric;
	uint32_t M;
	uint32_t ef_construction;
	uint32_t ef_search;        /* this handle's default */
	uint32_t segments;         /* live segment files */
	uint64_t vectors;          /* live vectors */
	uint32_t max_level;        /* highest graph layer over all segments */
	uint64_t mapped_bytes;     /* bytes of segment files mapped */
	uint64_t file_bytes;       /* bytes of all database files on disk */
	uint64_t searches;         /* queries answered through this handle */
	uint64_t segments_searched;/* sum over queries of segments touched */
	uint64_t distance_evals;   /* distance computations made by searches */
	/*
	 * Of them, those of each query's first source: the largest segment or
	 * memtable (by live vectors), which is searched first. The rest went to
	 * the other segments and memtables (walked, or their rows hung under the
	 * nodes that first walk met; README, Compaction).
	 */
	uint64_t distance_evals_first;
	uint64_t filtered_graph;   /* filtered segment searches answered by the graph walk */
	uint64_t filtered_scans;   /* filtered segment searches answered by an exact scan */
	bool readonly;
	/* ---- writes ---- */
	uint64_t tombstones;       /* segment vectors deleted or superseded, not yet compacted away */
	uint64_t memtable_vectors; /* live vectors not yet in a segment (included in `vectors`) */
	uint64_t memtable_bytes;
	uint64_t memtable_unindexed; /* fresh rows not yet in the memtable graph (searched exactly) */
	bool flush_pending;        /* a frozen memtable is being written to a segment */
	uint64_t upserts, deletes; /* vectors upserted / ids deleted through this handle */
	uint64_t flushes;          /* memtables written to segments by this handle */
	uint64_t write_stalls;     /* writes that waited for room: memtable_max_unindexed or a flush */
	uint64_t write_stall_ms;   /* total time they waited */
	uint64_t checkpoint_lsn;   /* every write up to this LSN is in the segments */
	uint64_t last_lsn;         /* LSN of the last logged write */
	uint32_t wal_files;
	uint64_t wal_bytes;        /* bytes appended to the WAL by this handle */
	uint64_t wal_fsyncs;       /* WAL syncs done (group commit: fewer than writes) */
	bool wal_io_uring;         /* the WAL writes through io_uring (else pwrite + fdatasync) */
	uint64_t replay_records;   /* WAL records replayed at open */
	uint64_t replay_bytes;
	uint64_t replay_torn_bytes;/* bytes of a torn WAL tail cut at open */
	double replay_seconds;
	/*
	 * Non-zero: writes stopped, every write returns this code until the
	 * database is reopened (reopening recovers every acknowledged write).
	 * Set when a write or sync of the WAL failed (STRATA_EFSYNC for a failed
	 * fsync, else STRATA_EIO, STRATA_ENOSPC, ...) or a flush failed.
	 */
	int write_error;
	char write_error_detail[256]; /* what failed and where, "" when write_error is 0 */
	/* ---- compaction ---- */
	uint32_t tier_segments[8]; /* segments per size tier (see merge_factor); the last counts tiers >= 7 */
	uint32_t compaction_pending; /* merges and rewrites the policy would start now */
	bool compaction_running;   /* a merge or rewrite is in progress */
	uint64_t merges;           /* merges and rewrites committed by this handle */
	uint64_t merge_errors;     /* background merges that failed (retried later; see last_merge_error) */
	int last_merge_error;
	double merge_seconds;      /* total time of the committed merges */
	uint64_t merge_reused_nodes;  /* nodes a merge took with their edges from its largest input */
	uint64_t merge_inserted_nodes;/* nodes a merge inserted into that graph */
	uint64_t ingest_bytes;     /* vector bytes upserted through this handle */
	uint64_t flush_bytes;      /* segment and deletion-file bytes written by flushes */
	uint64_t compaction_bytes; /* segment and deletion-file bytes written by merges */
	/* (wal_bytes + flush_bytes + compaction_bytes) / ingest_bytes; 0 before any upsert */
	double write_amplification;
	uint32_t obsolete_files;   /* replaced files kept for their grace period (readers in other processes) */
	/*
	 * Merges are falling behind: a size tier holds more than merge_factor
	 * segments the policy could merge, or more than max_segments + 1 segments
	 * exist and some could be merged (a flush came before the merge down to
	 * the bound was done), or the merge into the largest (see
	 * merge_into_largest_pct) was due before the newest segment came. A
	 * background merge that is then starved at idle priority (less than a
	 * quarter of a core over a second) is given up and run again at normal
	 * priority: it takes a share of the CPU from queries and writes; writers
	 * are not slowed for it.
	 */
	bool merges_behind;
	uint64_t merges_escalated; /* idle-priority merges given up to run again at normal priority */
};

/* Fill `stats_out` with a snapshot of `db`'s counters. Thread-safe.
 * Returns 0 or STRATA_EINVAL. */
STRATA_API int strata_stats(strata_db *db, struct strata_stats *stats_out);

/* ---- Writes -------------------------------------------------------------- */
/* All of these need a handle opened without STRATA_READONLY (else STRATA_EREADONLY). */

/*
 * Insert or replace the vectors ids[i] -> vectors[i * dim .. +dim) for i < n
 * (row major; normalised by the library for cosine). The newest write of an
 * id wins everywhere: in searches, strata_get, and after any crash.
 *
 * The records go to the write-ahead log first; with STRATA_SYNC_ALWAYS (the
 * default) the call returns after they are on stable storage, and
 * concurrent callers share one fdatasync (group commit). Once the call
 * returns, every later search on this handle sees the vectors.
 * A call of up to 16384 vectors is one WAL record and so atomic across a
 * crash (all or none); a larger call is split into such records, each atomic.
 *
 * Writers may be slowed when the memtable is full and its flush has not
 * finished, or when more than memtable_max_unindexed fresh vectors wait for
 * graph insertion (stats: write_stalls); they are never refused for it.
 * Returns 0, STRATA_EINVAL (null arrays, an id equal to STRATA_NO_ID),
 * STRATA_ENONFINITE, STRATA_EREADONLY, STRATA_ENOMEM, or the I/O error of
 * the WAL (STRATA_EIO, STRATA_ENOSPC, STRATA_EFSYNC). After an I/O error of
 * the WAL, every later write returns it: the handle accepts no more writes
 * (what was acknowledged stays durable; reopen to continue).
 */
STRATA_API int strata_upsert(strata_db *db, const uint64_t *ids, const float *vectors, size_t n);

/*
 * Delete ids[0..n): absent ids are ignored. Same logging, durability,
 * atomicity (up to 65536 ids per record) and errors as strata_upsert.
 */
STRATA_API int strata_delete(strata_db *db, const uint64_t *ids, size_t n);

/*
 * Make every write acknowledged so far durable (for STRATA_SYNC_NONE and
 * STRATA_SYNC_INTERVAL; with STRATA_SYNC_ALWAYS it has nothing to do).
 * Returns 0, STRATA_EREADONLY, or the WAL's I/O error.
 */
STRATA_API int strata_sync(strata_db *db);

/*
 * Write the fresh vectors and deletions into segment and deletion files,
 * switch the manifest, and drop the WAL files that holds; waits for it.
 * Read-only openers see the flushed state. Runs by itself whenever the
 * memtable passes its limit (options memtable_max_vectors / _bytes).
 * Returns 0, STRATA_EREADONLY, or an I/O error (after which writes stop,
 * as for WAL failures; reopening recovers from the WAL).
 */
STRATA_API int strata_flush(strata_db *db);

/*
 * Merge every segment into one, without the deleted and superseded vectors:
 * first flush the memtable (as strata_flush), then merge all segments that
 * exist then (with the largest one's graph reused, see DESIGN.md) and wait.
 * Writes and searches go on meanwhile; writes made during the merge may end
 * up in a new segment beside the merged one. The merge runs in the calling
 * thread (after a background merge in progress, if any) with
 * compaction_threads workers, and reports through opts.progress of
 * strata_open when set (vectors in the merged graph so far, of the total).
 * Ignores max_segment_vectors. Not concurrently with strata_close.
 * Returns 0, STRATA_EINVAL, STRATA_EREADONLY, STRATA_ENOMEM, STRATA_ELIMIT,
 * or an I/O error (after a failed manifest commit, writes stop as for a
 * failed flush; reopening recovers).
 */
STRATA_API int strata_compact(strata_db *db);

/* ---- Errors -------------------------------------------------------------- */

/* A static English sentence for `rc` ("unknown error" for values not above). */
STRATA_API const char *strata_strerror(int rc);

/*
 * The detail of the last failure in the calling thread: what failed and where
 * (for example "seg-0000000000000001.seg: section 2 (nodes) ends at 81920,
 * beyond the file's 40960 bytes"). Empty when nothing failed yet. The string
 * belongs to the thread and stays valid until its next strata call.
 */
STRATA_API const char *strata_last_error_detail(void);

/* The version of this library, "MAJOR.MINOR.PATCH". */
STRATA_API const char *strata_version(void);

#ifdef __cplusplus
}
#endif
#endif /* STRATA_H */
