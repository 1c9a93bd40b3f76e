/*
 * cmd_compact.c - `strata compact DIR`: flush the WAL and merge every segment
 * into one through strata_compact, with a progress bar (tools/strata.1).
 */
#include <inttypes.h>
#include <stdio.h>

#include "cli.h"

static const char compact_usage[] =
	"usage: strata compact DIR [options]\n"
	"\n"
	"Merge every segment of the database in DIR into one, without its deleted\n"
	"and superseded vectors: the WAL is flushed first, the largest segment's\n"
	"graph is reused and the others' vectors are inserted into it. Deletion\n"
	"files and replaced segment files are removed afterwards. Needs the\n"
	"writer's lock (no other process may have DIR open for writing).\n"
	"\n"
	"options:\n"
	"  --threads N             graph-building threads of the merge (default 1)\n"
	"  --quiet                 no progress output\n"
	"  --json                  print the outcome as one JSON object\n";

int cmd_compact(int argc, char **argv)
{
	const char *cmd = "compact";
	bool quiet = false, json = false, help = false;
	uint32_t threads = 0;
	const struct cli_opt opts[] = {
		{"--threads", NULL, CLI_OPT_U32, &threads, 1, 1024},
		{"--quiet", "-q", CLI_OPT_FLAG, &quiet, 0, 0},
		{"--json", NULL, CLI_OPT_FLAG, &json, 0, 0},
		{NULL, NULL, CLI_OPT_FLAG, NULL, 0, 0},
	};
	const char *dir;
	int rc = cli_parse_dir(cmd, argc, argv, opts, compact_usage, &dir, &help);
	if (rc || help)
		return rc;

	struct cli_progress prog;
	cli_progress_init(&prog, "compact", quiet || json);
	strata_options o;
	strata_options_default(&o);
	o.compaction_threads = threads;
	o.disable_background_merges = true; /* one merge, the one asked for */
	o.progress = cli_progress_fn;
	o.progress_ctx = &prog;
	strata_db *db;
	double t0 = cli_now();
	if ((rc = strata_open(dir, &o, 0, &db)))
		return cli_fail(cmd, dir, rc);
	struct strata_stats before, after;
	strata_stats(db, &before);
	int r = strata_compact(db);
	cli_progress_finish(&prog);
	strata_stats(db, &after);
	rc = r ? cli_fail(cmd, dir, r) : 0;
	int c = strata_close(db);
	if (!rc && c)
		rc = cli_fail(cmd, dir, c);
	if (rc)
		return rc;
	double secs = cli_now() - t0;
	if (json) {
		struct cli_json j;
		cli_json_init(&j, stdout);
		cli_json_obj_begin(&j, NULL);
		cli_json_str(&j, "dir", dir);
		cli_json_u64(&j, "segments_before", before.segments);
		cli_json_u64(&j, "segments_after", after.segments);
		cli_json_u64(&j, "vectors", after.vectors);
		cli_json_u64(&j, "tombstones_before", before.tombstones);
		cli_json_u64(&j, "tombstones_after", after.tombstones);
		cli_json_u64(&j, "merges", after.merges);
		cli_json_u64(&j, "reused_nodes", after.merge_reused_nodes);
		cli_json_u64(&j, "inserted_nodes", after.merge_inserted_nodes);
		cli_json_u64(&j, "bytes_written", after.flush_bytes + after.compaction_bytes);
		cli_json_f64(&j, "seconds", secs);
		cli_json_obj_end(&j);
		return CLI_EXIT_OK;
	}
	char b[32];
	if (after.merges == 0)
		printf("compacted %s: nothing to merge (%u segment%s, %" PRIu64 " vectors), in %.2f s\n",
		       dir, after.segments, after.segments == 1 ? "" : "s", after.vectors, secs);
	else
		printf("compacted %s: %u segments -> %u, %" PRIu64 " vectors, %" PRIu64
		       " deleted or superseded dropped; %" PRIu64 " nodes reused with their edges, %" PRIu64
		       " inserted; %s written, in %.2f s\n",
		       dir, before.segments, after.segments, after.vectors,
		       before.tombstones - after.tombstones, after.merge_reused_nodes,
		       after.merge_inserted_nodes,
		       cli_fmt_bytes(after.flush_bytes + after.compaction_bytes, b, sizeof b), secs);
	return CLI_EXIT_OK;
}
