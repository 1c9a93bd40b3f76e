/*
 * cmd_query.c - `strata query DIR --input QUERIES ...`: search a database and
 * print the neighbours, or, given a ground truth, report recall@k, queries
 * per second and per-query latency. Manual: strata.1, section "query".
 *
 * Measurement rules (the JSON keys are parsed by other programs, so their
 * names and meaning are stable):
 *   - only the strata_search() calls are timed; reading files, the truth and
 *     the recall count are not;
 *   - one query per call unless --batch, so latency is per query; with --batch
 *     one call answers every query, per-query latency cannot be observed and
 *     both latency keys hold the call's time divided by the query count;
 *   - qps = queries / wall time of the search phase (all threads together).
 *
 * `--truth exact` computes the true neighbours by brute force over the
 * database's own stored vectors (cli_exact_truth, shared with tune).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "strata.h"
#include "vecio.h"

#define CMD "query"

static const char usage_text[] =
	"usage: strata query DIR --input QUERIES [options]\n"
	"\n"
	"Search the database in DIR (opened read-only) with the vectors in QUERIES\n"
	"(.fvecs, .bvecs or .npy). Without --truth, print one line per query:\n"
	"  q<i>: id:distance id:distance ...\n"
	"With --truth, report recall@k, queries per second and latency instead.\n"
	"\n"
	"options:\n"
	"  --input FILE        the queries (required)\n"
	"  --k N               neighbours per query (default 10)\n"
	"  --ef N              search beam width (default 50; raised to k if smaller)\n"
	"  --threads N         search threads (default 1)\n"
	"  --truth FILE.ivecs  ground truth: row i holds the row numbers of query i's\n"
	"                      nearest base vectors (for databases built without --ids)\n"
	"  --truth exact       compute the truth by brute force over the stored vectors\n"
	"  --batch             one strata_search call for all queries (default: one per query)\n"
	"  --filter-ids FILE   only ids listed in FILE (text, one id per line) may be returned;\n"
	"                      --truth exact then searches the same subset\n"
	"  --limit N           use only the first N queries\n"
	"  --json              print one JSON object: k, ef, queries, recall (with a\n"
	"                      truth), qps, latency_us_mean, latency_us_p99, ...\n"
	"  -h, --help          this text\n";

/* ---- the command ------------------------------------------------------------------------- */

static void print_neighbours(const uint64_t *ids, const float *dists, size_t nq, uint32_t k)
{
	for (size_t q = 0; q < nq; q++) {
		printf("q%zu:", q);
		for (uint32_t i = 0; i < k; i++) {
			if (ids[q * k + i] == STRATA_NO_ID)
				continue;
			printf(" %llu:%.6g", (unsigned long long)ids[q * k + i], dists[q * k + i]);
		}
		putchar('\n');
	}
}

static void print_json(const char *dir, const struct strata_stats *st, size_t nq, uint32_t k,
                       uint32_t ef, uint32_t threads, bool batch, const char *truth,
                       const struct cli_search_result *r, double recall, const uint64_t *ids, const float *dists)
{
	struct cli_json j;
	cli_json_init(&j, stdout);
	cli_json_obj_begin(&j, NULL);
	cli_json_str(&j, "dir", dir);
	cli_json_u64(&j, "k", k);
	cli_json_u64(&j, "ef", ef);
	cli_json_u64(&j, "queries", nq);
	cli_json_u64(&j, "threads", threads);
	cli_json_bool(&j, "batch", batch);
	cli_json_str(&j, "metric", cli_metric_name(st->metric));
	cli_json_u64(&j, "dim", st->dim);
	cli_json_u64(&j, "vectors", st->vectors);
	if (truth) {
		cli_json_str(&j, "truth", truth);
		cli_json_f64(&j, "recall", recall);
	}
	cli_json_f64(&j, "qps", r->wall_s > 0 ? (double)nq / r->wall_s : NAN);
	cli_json_f64(&j, "latency_us_mean", r->lat_mean_us);
	cli_json_f64(&j, "latency_us_p99", r->lat_p99_us);
	cli_json_f64(&j, "search_seconds", r->wall_s);
	if (!truth) {
		cli_json_arr_begin(&j, "results");
		for (size_t q = 0; q < nq; q++) {
			cli_json_arr_begin(&j, NULL);
			for (uint32_t i = 0; i < k; i++) {
				if (ids[q * k + i] == STRATA_NO_ID)
					continue;
				cli_json_obj_begin(&j, NULL);
				cli_json_u64(&j, "id", ids[q * k + i]);
				cli_json_f64(&j, "dist", dists[q * k + i]);
				cli_json_obj_end(&j);
			}
			cli_json_arr_end(&j);
		}
		cli_json_arr_end(&j);
	}
	cli_json_obj_end(&j);
}

int cmd_query(int argc, char **argv)
{
	const char *input = NULL, *truth_s = NULL, *filter_s = NULL;
	uint32_t k = 10, ef = 50, threads = 1;
	uint64_t limit = 0;
	bool batch = false, json = false, help = false;
	const struct cli_opt opts[] = {
		{"--input", NULL, CLI_OPT_STR, &input, 0, 0},
		{"--k", NULL, CLI_OPT_U32, &k, 1, STRATA_K_MAX},
		{"--ef", NULL, CLI_OPT_U32, &ef, 1, STRATA_EF_MAX},
		{"--threads", NULL, CLI_OPT_U32, &threads, 1, CLI_THREADS_MAX},
		{"--truth", NULL, CLI_OPT_STR, &truth_s, 0, 0},
		{"--batch", NULL, CLI_OPT_FLAG, &batch, 0, 0},
		{"--filter-ids", NULL, CLI_OPT_STR, &filter_s, 0, 0},
		{"--limit", NULL, CLI_OPT_U64, &limit, 1, UINT64_MAX},
		{"--json", NULL, CLI_OPT_FLAG, &json, 0, 0},
		{NULL, NULL, CLI_OPT_FLAG, NULL, 0, 0},
	};
	const char *dir;
	int rc = cli_parse_dir(CMD, argc, argv, opts, usage_text, &dir, &help);
	if (rc || help)
		return rc;
	if (!input)
		return cli_usage_error(CMD, "missing required option --input FILE");

	strata_db *db = NULL;
	rc = strata_open(dir, NULL, STRATA_READONLY, &db);
	if (rc != 0)
		return cli_fail(CMD, dir, rc);
	struct strata_stats st;
	strata_stats(db, &st);

	char err[VECIO_ERR_MAX];
	struct vecio_mat qm = {0};
	uint64_t *truth = NULL, *ids = NULL, *allow = NULL;
	size_t n_allow = 0;
	float *dists = NULL;
	int status = CLI_EXIT_FAIL;
	if (vecio_load(input, VECIO_AUTO, &qm, err, sizeof err) != 0) {
		cli_error(CMD, "%s: %s", input, err);
		goto out;
	}
	if (qm.dim != st.dim) {
		cli_error(CMD, "%s: queries have dim %u, the database has dim %u", input, qm.dim, st.dim);
		goto out;
	}
	if (filter_s) {
		if (vecio_id_list_load(filter_s, &allow, &n_allow, err, sizeof err) != 0) {
			cli_error(CMD, "%s: %s", filter_s, err);
			goto out;
		}
		if (truth_s && strcmp(truth_s, "exact") != 0)
			fprintf(stderr, "strata query: note: %s was computed without the filter; recall "
			                "against it is not the filtered recall (use --truth exact)\n", truth_s);
	}
	size_t nq = qm.rows;
	if (limit && limit < nq)
		nq = (size_t)limit;
	if (truth_s && strcmp(truth_s, "exact") == 0) {
		if (cli_exact_truth(CMD, dir, st.checkpoint_lsn, qm.data, nq, qm.dim, k, threads, allow,
		                    filter_s ? n_allow : 0, &truth) != 0)
			goto out;
	} else if (truth_s) {
		if (cli_file_truth(CMD, truth_s, nq, k, nq < qm.rows, &truth) != 0)
			goto out;
	}
	ids = malloc(nq * k * sizeof *ids);
	dists = malloc(nq * k * sizeof *dists);
	if (!ids || !dists) {
		cli_error(CMD, "out of memory for %zu x %u results", nq, k);
		goto out;
	}
	struct cli_search_result r = {0};
	double recall = NAN;
	/* An empty --filter-ids file passes nothing: a non-NULL list of 0 ids. */
	struct cli_search_spec spec = {.k = k, .ef = ef, .threads = threads, .batch = batch,
	                               .allow = filter_s ? allow : NULL, .n_allow = n_allow};
	if ((status = cli_timed_search(CMD, db, qm.data, nq, qm.dim, &spec, ids, dists, &r)))
		goto out;
	if (truth)
		recall = cli_recall(ids, nq, k, truth);
	double qps = r.wall_s > 0 ? (double)nq / r.wall_s : 0.0;
	if (json) {
		print_json(dir, &st, nq, k, ef, threads, batch, truth_s, &r, recall, ids, dists);
	} else if (truth) {
		printf("queries %zu, k %u, ef %u, threads %u, %s\n", nq, k, ef, threads,
		       batch ? "one batch call" : "one query per call");
		printf("recall@%u  %.4f  (truth: %s)\n", k, recall, truth_s);
		printf("qps        %.0f\n", qps);
		printf("latency    mean %.1f us, p99 %.1f us%s\n", r.lat_mean_us, r.lat_p99_us,
		       batch ? " (batch time / queries)" : "");
	} else {
		print_neighbours(ids, dists, nq, k);
		fprintf(stderr, "%zu queries, k %u, ef %u: %.0f qps, latency mean %.1f us, p99 %.1f us\n",
		        nq, k, ef, qps, r.lat_mean_us, r.lat_p99_us);
	}
	status = CLI_EXIT_OK;
out:
	free(ids);
	free(dists);
	free(truth);
	free(allow);
	vecio_mat_free(&qm);
	strata_close(db);
	return status;
}
