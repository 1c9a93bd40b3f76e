/*
 * abi_layout.c - prints, as JSON, what the Python binding must mirror of
 * engine/strata.h: the size and every field offset of the public structs,
 * and size, and the value of every public constant. tools/python/tests/test_abi.py
 * compares it with the ctypes declarations of strata/_lib.py, so a field
 * added, moved or retyped in the header fails a test instead of corrupting
 * memory at run time. Compiled against the header alone; never installed.
 */
#include <stddef.h>
#include <stdio.h>

#include "strata.h"

/* "name": [offset, size] */
#define FIELD(type, f)                                                                         \
	printf("%s\"%s\": [%zu, %zu]", first++ ? ", " : "", #f, offsetof(type, f),               \
	       sizeof(((type *)0)->f))

int main(void)
{
	int first = 0;
	printf("{\"options\": {\"size\": %zu, \"fields\": {", sizeof(strata_options));
	FIELD(strata_options, dim);
	FIELD(strata_options, metric);
	FIELD(strata_options, M);
	FIELD(strata_options, ef_construction);
	FIELD(strata_options, ef_search);
	FIELD(strata_options, threads);
	FIELD(strata_options, seed);
	FIELD(strata_options, progress);
	FIELD(strata_options, progress_ctx);
	FIELD(strata_options, sync_mode);
	FIELD(strata_options, sync_interval_ms);
	FIELD(strata_options, memtable_max_vectors);
	FIELD(strata_options, memtable_max_bytes);
	FIELD(strata_options, wal_file_bytes);
	FIELD(strata_options, memtable_max_unindexed);
	FIELD(strata_options, merge_factor);
	FIELD(strata_options, max_segment_vectors);
	FIELD(strata_options, max_segments);
	FIELD(strata_options, merge_into_largest_pct);
	FIELD(strata_options, tombstone_pct);
	FIELD(strata_options, compaction_threads);
	FIELD(strata_options, disable_background_merges);

	first = 0;
	printf("}},\n \"search_options\": {\"size\": %zu, \"fields\": {", sizeof(strata_search_options));
	FIELD(strata_search_options, ef);
	FIELD(strata_search_options, threads);
	FIELD(strata_search_options, allow_ids);
	FIELD(strata_search_options, allow_count);
	FIELD(strata_search_options, allow_bitmap);
	FIELD(strata_search_options, allow_bitmap_bits);
	FIELD(strata_search_options, deny_ids);
	FIELD(strata_search_options, deny_count);
	FIELD(strata_search_options, filter);
	FIELD(strata_search_options, filter_ctx);

	first = 0;
	printf("}},\n \"stats\": {\"size\": %zu, \"fields\": {", sizeof(struct strata_stats));
	FIELD(struct strata_stats, dim);
	FIELD(struct strata_stats, metric);
	FIELD(struct strata_stats, M);
	FIELD(struct strata_stats, ef_construction);
	FIELD(struct strata_stats, ef_search);
	FIELD(struct strata_stats, segments);
	FIELD(struct strata_stats, vectors);
	FIELD(struct strata_stats, max_level);
	FIELD(struct strata_stats, mapped_bytes);
	FIELD(struct strata_stats, file_bytes);
	FIELD(struct strata_stats, searches);
	FIELD(struct strata_stats, segments_searched);
	FIELD(struct strata_stats, distance_evals);
	FIELD(struct strata_stats, distance_evals_first);
	FIELD(struct strata_stats, filtered_graph);
	FIELD(struct strata_stats, filtered_scans);
	FIELD(struct strata_stats, readonly);
	FIELD(struct strata_stats, tombstones);
	FIELD(struct strata_stats, memtable_vectors);
	FIELD(struct strata_stats, memtable_bytes);
	FIELD(struct strata_stats, memtable_unindexed);
	FIELD(struct strata_stats, flush_pending);
	FIELD(struct strata_stats, upserts);
	FIELD(struct strata_stats, deletes);
	FIELD(struct strata_stats, flushes);
	FIELD(struct strata_stats, write_stalls);
	FIELD(struct strata_stats, write_stall_ms);
	FIELD(struct strata_stats, checkpoint_lsn);
	FIELD(struct strata_stats, last_lsn);
	FIELD(struct strata_stats, wal_files);
	FIELD(struct strata_stats, wal_bytes);
	FIELD(struct strata_stats, wal_fsyncs);
	FIELD(struct strata_stats, wal_io_uring);
	FIELD(struct strata_stats, replay_records);
	FIELD(struct strata_stats, replay_bytes);
	FIELD(struct strata_stats, replay_torn_bytes);
	FIELD(struct strata_stats, replay_seconds);
	FIELD(struct strata_stats, write_error);
	FIELD(struct strata_stats, write_error_detail);
	FIELD(struct strata_stats, tier_segments);
	FIELD(struct strata_stats, compaction_pending);
	FIELD(struct strata_stats, compaction_running);
	FIELD(struct strata_stats, merges);
	FIELD(struct strata_stats, merge_errors);
	FIELD(struct strata_stats, last_merge_error);
	FIELD(struct strata_stats, merge_seconds);
	FIELD(struct strata_stats, merge_reused_nodes);
	FIELD(struct strata_stats, merge_inserted_nodes);
	FIELD(struct strata_stats, ingest_bytes);
	FIELD(struct strata_stats, flush_bytes);
	FIELD(struct strata_stats, compaction_bytes);
	FIELD(struct strata_stats, write_amplification);
	FIELD(struct strata_stats, obsolete_files);
	FIELD(struct strata_stats, merges_behind);
	FIELD(struct strata_stats, merges_escalated);

	printf("}},\n \"sizes\": {\"strata_metric\": %zu, \"strata_sync_mode\": %zu, \"bool\": %zu},\n",
	       sizeof(strata_metric), sizeof(strata_sync_mode), sizeof(bool));
	printf(" \"constants\": {"
	       "\"STRATA_OK\": %d, \"STRATA_EINVAL\": %d, \"STRATA_EDIM\": %d, \"STRATA_EMETRIC\": %d, "
	       "\"STRATA_ENOTFOUND\": %d, \"STRATA_EEXIST\": %d, \"STRATA_EBUSY\": %d, "
	       "\"STRATA_EREADONLY\": %d, \"STRATA_ENONFINITE\": %d, \"STRATA_EDUPLICATE\": %d, "
	       "\"STRATA_ENOMEM\": %d, \"STRATA_ELIMIT\": %d, \"STRATA_ENOSPC\": %d, "
	       "\"STRATA_EIO\": %d, \"STRATA_EFSYNC\": %d, \"STRATA_EPERM\": %d, "
	       "\"STRATA_ENOTDB\": %d, \"STRATA_EVERSION\": %d, \"STRATA_ECORRUPT\": %d, "
	       "\"STRATA_ECHECKSUM\": %d, \"STRATA_ETRUNCATED\": %d,\n",
	       STRATA_OK, STRATA_EINVAL, STRATA_EDIM, STRATA_EMETRIC, STRATA_ENOTFOUND, STRATA_EEXIST,
	       STRATA_EBUSY, STRATA_EREADONLY, STRATA_ENONFINITE, STRATA_EDUPLICATE, STRATA_ENOMEM,
	       STRATA_ELIMIT, STRATA_ENOSPC, STRATA_EIO, STRATA_EFSYNC, STRATA_EPERM, STRATA_ENOTDB,
	       STRATA_EVERSION, STRATA_ECORRUPT, STRATA_ECHECKSUM, STRATA_ETRUNCATED);
	printf("  \"STRATA_NO_ID\": %llu, \"STRATA_DIM_MAX\": %u, \"STRATA_M_MIN\": %u, "
	       "\"STRATA_M_MAX\": %u, \"STRATA_K_MAX\": %u, \"STRATA_EF_MAX\": %u,\n",
	       (unsigned long long)STRATA_NO_ID, STRATA_DIM_MAX, STRATA_M_MIN, STRATA_M_MAX,
	       STRATA_K_MAX, STRATA_EF_MAX);
	printf("  \"STRATA_CREATE\": %u, \"STRATA_READONLY\": %u, \"STRATA_VERIFY\": %u,\n",
	       (unsigned)STRATA_CREATE, (unsigned)STRATA_READONLY, (unsigned)STRATA_VERIFY);
	printf("  \"STRATA_METRIC_L2\": %d, \"STRATA_METRIC_IP\": %d, \"STRATA_METRIC_COSINE\": %d,\n",
	       STRATA_METRIC_L2, STRATA_METRIC_IP, STRATA_METRIC_COSINE);
	printf("  \"STRATA_SYNC_ALWAYS\": %d, \"STRATA_SYNC_INTERVAL\": %d, \"STRATA_SYNC_NONE\": %d}}\n",
	       STRATA_SYNC_ALWAYS, STRATA_SYNC_INTERVAL, STRATA_SYNC_NONE);
	return 0;
}
