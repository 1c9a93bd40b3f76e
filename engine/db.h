/*
 * db.h - the strata_db handle and what build.c and search.c share with db.c.
 *
 * Lifecycle of a handle (no writes exist yet; see the ingestion issue):
 *
 *   strata_open() --> OPEN (segments mapped, checked) --> strata_close()
 *                      |  strata_search / strata_get / strata_stats, any threads
 */
#ifndef STRATA_DB_H
#define STRATA_DB_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "hnsw.h"
#include "manifest.h"
#include "segment.h"
#include "strata.h"

struct db_segment {
	char name[MF_SEGMENT_NAME_LEN + 1];
	int fd;
	const uint8_t *map;
	size_t len;
	struct seg_info info;
	struct hnsw_view view;
};

/* Per-thread search state, pooled in the handle so a query allocates nothing. */
struct db_scratch {
	struct hnsw_scratch *hs;
	struct hnsw_hit *hits;    /* one segment's results */
	size_t hits_cap;
	struct db_result *merged; /* results of every segment, before the final top-k */
	size_t merged_cap;
	float *query;             /* the normalised query (cosine) */
	size_t query_cap;
};

struct db_result {
	float dist;
	uint64_t id;
};

struct strata_db {
	char *dir;
	unsigned flags;
	int lock_fd;              /* -1 when read-only */
	struct mf_manifest mf;
	struct db_segment *segs;  /* mf.segment_count, oldest first */
	uint32_t nseg;
	uint32_t ef_search;
	uint64_t vectors;
	uint32_t max_level;

	pthread_mutex_t pool_lock;
	struct db_scratch **pool;
	size_t pool_n;
	size_t pool_cap;

	_Atomic uint64_t searches;
	_Atomic uint64_t segments_searched;
	_Atomic uint64_t dist_evals;
	_Atomic uint64_t filtered_graph;
	_Atomic uint64_t filtered_scans;
};

struct db_scratch *db_scratch_get(strata_db *db);
void db_scratch_put(strata_db *db, struct db_scratch *s);

/* Validate the creation parameters in `opts` (dim, metric, M, ef). */
int db_check_params(const strata_options *opts);

/* Number of online CPUs (at least 1). */
uint32_t db_cpu_count(void);

/* Fill `buf` with random bytes (database uuid). */
void db_random_bytes(uint8_t *buf, size_t len);

#endif /* STRATA_DB_H */
