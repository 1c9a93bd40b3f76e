/*
 * cmd_write.c - the commands that write to a database through its WAL:
 *   strata create DIR --dim D [--metric M] [--M N] [--ef-construction N] [--ef-search N]
 *   strata import DIR --input FILE [--start-id N | --ids FILE] [--sync always|interval|none]
 *   strata delete DIR --ids FILE|LIST
 *   strata flush DIR
 * Manual: strata.1. Each opens the database for writing (a second writer gets
 * "busy"), does its work with the library's calls and closes it, which syncs
 * the WAL: what the command reports as done is durable.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "strata.h"
#include "vecio.h"

static int open_writable(const char *cmd, const char *dir, strata_options *o, unsigned flags,
                         strata_db **db)
{
	int rc = strata_open(dir, o, flags, db);
	return rc ? cli_fail(cmd, dir, rc) : 0;
}

static int close_db(const char *cmd, const char *dir, strata_db *db)
{
	int rc = strata_close(db);
	return rc ? cli_fail(cmd, dir, rc) : 0;
}

/* ---- create ---------------------------------------------------------------- */

static const char create_usage[] =
	"usage: strata create DIR --dim D [options]\n"
	"\n"
	"Create a new, empty database in DIR (which must not hold one) that takes\n"
	"writes: import, delete, or the library's strata_upsert.\n"
	"\n"
	"options:\n"
	"  --dim D                 vector dimension (required)\n"
	"  --metric l2|ip|cosine   distance (default l2)\n"
	"  --M N                   graph degree, 2..256 (default 16)\n"
	"  --ef-construction N     beam width while building graphs (default 200)\n"
	"  --ef-search N           default beam width of searches (default 64)\n"
	"  -h, --help              this text\n";

int cmd_create(int argc, char **argv)
{
	const char *cmd = "create";
	strata_options o;
	strata_options_default(&o);
	const char *metric_s = "l2";
	bool help = false;
	const struct cli_opt opts[] = {
		{"--dim", NULL, CLI_OPT_U32, &o.dim, 1, STRATA_DIM_MAX},
		{"--metric", NULL, CLI_OPT_STR, &metric_s, 0, 0},
		{"--M", NULL, CLI_OPT_U32, &o.M, STRATA_M_MIN, STRATA_M_MAX},
		{"--ef-construction", NULL, CLI_OPT_U32, &o.ef_construction, 1, STRATA_EF_MAX},
		{"--ef-search", NULL, CLI_OPT_U32, &o.ef_search, 1, STRATA_EF_MAX},
		{NULL, NULL, CLI_OPT_FLAG, NULL, 0, 0},
	};
	const char *dir;
	int rc = cli_parse_dir(cmd, argc, argv, opts, create_usage, &dir, &help);
	if (rc || help)
		return rc;
	if (o.dim == 0)
		return cli_usage_error(cmd, "missing required option --dim D");
	if (cli_metric_parse(metric_s, &o.metric) != 0)
		return cli_usage_error(cmd, "unknown metric '%s' (expected l2, ip or cosine)", metric_s);
	struct stat st;
	char mf[4096];
	snprintf(mf, sizeof mf, "%s/MANIFEST", dir);
	if (stat(mf, &st) == 0)
		return cli_error(cmd, "%s already holds a database", dir);
	strata_db *db;
	if ((rc = open_writable(cmd, dir, &o, STRATA_CREATE, &db)))
		return rc;
	if ((rc = close_db(cmd, dir, db)))
		return rc;
	printf("created %s: dim %u, %s, M %u, ef_construction %u, ef_search %u\n", dir, o.dim,
	       cli_metric_name(o.metric), o.M, o.ef_construction, o.ef_search);
	return CLI_EXIT_OK;
}

/* ---- import ---------------------------------------------------------------- */

static const char import_usage[] =
	"usage: strata import DIR --input FILE [options]\n"
	"\n"
	"Upsert the vectors of FILE (.fvecs, .bvecs or .npy) into the database in\n"
	"DIR through its write-ahead log, with a progress bar. Ids are row numbers\n"
	"plus --start-id, or come from --ids. An id already present is replaced.\n"
	"\n"
	"options:\n"
	"  --input FILE            the vectors (required)\n"
	"  --start-id N            id of the first row (default 0)\n"
	"  --ids FILE              ids: text (one decimal per line) or .npy int64/uint64\n"
	"  --sync always|interval|none\n"
	"                          durability of each batch (default always; none\n"
	"                          syncs once at the end: fastest for bulk loads)\n"
	"  --batch N               vectors per write call (default 10000)\n"
	"  --quiet                 no progress output\n"
	"  -h, --help              this text\n";

int cmd_import(int argc, char **argv)
{
	const char *cmd = "import";
	const char *input = NULL, *ids_path = NULL, *sync_s = "always";
	uint64_t start = 0;
	uint32_t batch = 10000;
	bool quiet = false, help = false;
	const struct cli_opt opts[] = {
		{"--input", NULL, CLI_OPT_STR, &input, 0, 0},
		{"--start-id", NULL, CLI_OPT_U64, &start, 0, UINT64_MAX - 1},
		{"--ids", NULL, CLI_OPT_STR, &ids_path, 0, 0},
		{"--sync", NULL, CLI_OPT_STR, &sync_s, 0, 0},
		{"--batch", NULL, CLI_OPT_U32, &batch, 1, 10000000},
		{"--quiet", "-q", CLI_OPT_FLAG, &quiet, 0, 0},
		{NULL, NULL, CLI_OPT_FLAG, NULL, 0, 0},
	};
	const char *dir;
	int rc = cli_parse_dir(cmd, argc, argv, opts, import_usage, &dir, &help);
	if (rc || help)
		return rc;
	if (!input)
		return cli_usage_error(cmd, "missing required option --input FILE");
	if (ids_path && start)
		return cli_usage_error(cmd, "--ids and --start-id exclude each other");
	strata_options o;
	strata_options_default(&o);
	if (!strcmp(sync_s, "always"))
		o.sync_mode = STRATA_SYNC_ALWAYS;
	else if (!strcmp(sync_s, "interval"))
		o.sync_mode = STRATA_SYNC_INTERVAL;
	else if (!strcmp(sync_s, "none"))
		o.sync_mode = STRATA_SYNC_NONE;
	else
		return cli_usage_error(cmd, "unknown --sync '%s' (expected always, interval or none)", sync_s);

	char err[VECIO_ERR_MAX];
	struct vecio_mat mat;
	if (vecio_load(input, VECIO_AUTO, &mat, err, sizeof err) != 0)
		return cli_error(cmd, "%s: %s", input, err);
	uint64_t *ids = NULL;
	if (ids_path && vecio_ids_load(ids_path, mat.rows, &ids, err, sizeof err) != 0) {
		vecio_mat_free(&mat);
		return cli_error(cmd, "%s: %s", ids_path, err);
	}
	if (!ids && mat.rows && start > UINT64_MAX - 1 - mat.rows) {
		vecio_mat_free(&mat);
		return cli_usage_error(cmd, "--start-id %" PRIu64 " + %zu rows passes the largest id", start,
		                       mat.rows);
	}
	strata_db *db = NULL;
	rc = open_writable(cmd, dir, &o, 0, &db);
	/* strata_upsert reads n x the database's dim floats: rows of another dim would be misread. */
	struct strata_stats st;
	if (!rc && strata_stats(db, &st) == 0 && st.dim != mat.dim)
		rc = cli_error(cmd, "%s has vectors of dim %u, the database %s has dim %u: nothing "
		                    "imported", input, mat.dim, dir, st.dim);
	uint64_t *chunk_ids = malloc((size_t)batch * sizeof *chunk_ids);
	if (!rc && !chunk_ids)
		rc = cli_error(cmd, "out of memory");
	struct cli_progress prog;
	cli_progress_init(&prog, "import", quiet);
	double t0 = cli_now();
	for (size_t off = 0; !rc && off < mat.rows; off += batch) {
		size_t n = mat.rows - off < batch ? mat.rows - off : batch;
		for (size_t i = 0; i < n; i++)
			chunk_ids[i] = ids ? ids[off + i] : start + off + i;
		int r = strata_upsert(db, chunk_ids, mat.data + off * mat.dim, n);
		if (r)
			rc = cli_fail(cmd, dir, r);
		cli_progress_update(&prog, off + n, mat.rows);
	}
	cli_progress_finish(&prog);
	double secs = cli_now() - t0;
	if (db) {
		int c = close_db(cmd, dir, db); /* syncs the WAL: after it, all is durable */
		if (!rc)
			rc = c;
	}
	secs = cli_now() - t0;
	if (!rc)
		printf("imported %zu vectors into %s in %.2f s (%.0f vectors/s, sync %s)\n", mat.rows,
		       dir, secs, secs > 0 ? (double)mat.rows / secs : 0.0, sync_s);
	free(chunk_ids);
	free(ids);
	vecio_mat_free(&mat);
	return rc;
}

/* ---- delete ---------------------------------------------------------------- */

static const char delete_usage[] =
	"usage: strata delete DIR --ids FILE|LIST\n"
	"\n"
	"Delete the given ids from the database in DIR (durably: the command returns\n"
	"after the deletion is in the synced WAL). Ids that are absent are ignored.\n"
	"\n"
	"options:\n"
	"  --ids FILE|LIST         a text file (one decimal id per line) or a\n"
	"                          comma-separated list such as 1,2,3 (required)\n"
	"  -h, --help              this text\n";

/* "1,2,3" -> ids; 0, or -1 if `s` is not such a list. */
static int parse_list(const char *s, uint64_t **ids_out, size_t *n_out)
{
	size_t cap = 1;
	for (const char *p = s; *p; p++)
		cap += *p == ',';
	uint64_t *ids = malloc(cap * sizeof *ids);
	if (!ids)
		return -1;
	size_t n = 0;
	const char *p = s;
	for (;;) {
		if (*p < '0' || *p > '9')
			break;
		errno = 0;
		char *end;
		unsigned long long v = strtoull(p, &end, 10);
		if (errno || v == UINT64_MAX)
			break;
		ids[n++] = v;
		if (*end == '\0') {
			*ids_out = ids;
			*n_out = n;
			return 0;
		}
		if (*end != ',')
			break;
		p = end + 1;
	}
	free(ids);
	return -1;
}

int cmd_delete(int argc, char **argv)
{
	const char *cmd = "delete";
	const char *ids_s = NULL;
	bool help = false;
	const struct cli_opt opts[] = {
		{"--ids", NULL, CLI_OPT_STR, &ids_s, 0, 0},
		{NULL, NULL, CLI_OPT_FLAG, NULL, 0, 0},
	};
	const char *dir;
	int rc = cli_parse_dir(cmd, argc, argv, opts, delete_usage, &dir, &help);
	if (rc || help)
		return rc;
	if (!ids_s)
		return cli_usage_error(cmd, "missing required option --ids FILE|LIST");
	uint64_t *ids = NULL;
	size_t n = 0;
	struct stat st;
	if (stat(ids_s, &st) == 0) {
		char err[VECIO_ERR_MAX];
		if (vecio_id_list_load(ids_s, &ids, &n, err, sizeof err) != 0)
			return cli_error(cmd, "%s: %s", ids_s, err);
	} else if (parse_list(ids_s, &ids, &n) != 0) {
		return cli_usage_error(cmd, "--ids '%s' is neither a file nor a list like 1,2,3", ids_s);
	}
	strata_options o;
	strata_options_default(&o);
	strata_db *db;
	if ((rc = open_writable(cmd, dir, &o, 0, &db))) {
		free(ids);
		return rc;
	}
	int r = strata_delete(db, ids, n);
	rc = r ? cli_fail(cmd, dir, r) : 0;
	int c = close_db(cmd, dir, db);
	if (!rc)
		rc = c;
	if (!rc)
		printf("deleted %zu ids from %s\n", n, dir);
	free(ids);
	return rc;
}

/* ---- flush ------------------------------------------------------------------ */

static const char flush_usage[] =
	"usage: strata flush DIR\n"
	"\n"
	"Write everything in the WAL of the database in DIR into a segment file, so\n"
	"that read-only readers see it and the next open replays nothing.\n";

int cmd_flush(int argc, char **argv)
{
	const char *cmd = "flush";
	bool help = false;
	const struct cli_opt opts[] = {{NULL, NULL, CLI_OPT_FLAG, NULL, 0, 0}};
	const char *dir;
	int rc = cli_parse_dir(cmd, argc, argv, opts, flush_usage, &dir, &help);
	if (rc || help)
		return rc;
	strata_options o;
	strata_options_default(&o);
	strata_db *db;
	if ((rc = open_writable(cmd, dir, &o, 0, &db)))
		return rc;
	struct strata_stats st;
	strata_stats(db, &st);
	int r = strata_flush(db);
	rc = r ? cli_fail(cmd, dir, r) : 0;
	int c = close_db(cmd, dir, db);
	if (!rc)
		rc = c;
	if (!rc)
		printf("flushed %s: %" PRIu64 " WAL records replayed at open, %" PRIu64
		       " vectors in memtable written to a segment\n",
		       dir, st.replay_records, st.memtable_vectors);
	return rc;
}
