/*
 * cmd_build.c - `strata build DIR --input FILE ...`: read a vector file (and
 * optionally an id file), build a complete database with strata_build(), and
 * print a one-line summary. Manual: strata.1, section "build".
 *
 * The input is validated in full by vecio before any graph work starts, so a
 * bad row costs seconds, not a build. The library does the writing: a failed
 * build leaves no directory behind (strata_build writes to a temporary name).
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "strata.h"
#include "vecio.h"

#define CMD "build"

static const char usage_text[] =
	"usage: strata build DIR --input FILE [options]\n"
	"\n"
	"Build a new database in DIR (which must not exist, or be empty) from the\n"
	"vectors in FILE: .fvecs, .bvecs (uint8 components) or .npy (2-D, C order,\n"
	"dtype '<f4').\n"
	"\n"
	"options:\n"
	"  --input FILE            the vectors (required)\n"
	"  --metric l2|ip|cosine   distance (default l2)\n"
	"  --M N                   graph degree, 2..256 (default 16)\n"
	"  --ef-construction N     beam width while building (default 200)\n"
	"  --ef-search N           default beam width stored for searches (default 64)\n"
	"  --threads N             build threads, 0 = all cores (default 0)\n"
	"  --ids FILE              ids: text (one decimal per line) or .npy int64/uint64;\n"
	"                          default: row numbers 0..n-1\n"
	"  --seed N                level generator seed (default 100); with --threads 1\n"
	"                          the build is byte-for-byte reproducible\n"
	"  --quiet                 no progress output\n"
	"  -h, --help              this text\n";

/* 0 if `dir` does not exist or is an empty directory. Checked before reading a
 * large input, so a typo'd target fails in a millisecond; strata_build checks again. */
static int target_free(const char *dir)
{
	struct stat st;
	if (stat(dir, &st) != 0)
		return errno == ENOENT ? 0 : cli_error(CMD, "%s: %s", dir, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return cli_error(CMD, "%s exists and is not a directory", dir);
	DIR *d = opendir(dir);
	if (!d)
		return cli_error(CMD, "%s: %s", dir, strerror(errno));
	struct dirent *e;
	int rc = 0;
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
			rc = cli_error(CMD, "%s exists and is not empty (build makes a new database)", dir);
			break;
		}
	}
	closedir(d);
	return rc;
}

int cmd_build(int argc, char **argv)
{
	strata_options o;
	strata_options_default(&o);
	const char *input = NULL, *ids_path = NULL, *metric_s = "l2";
	uint32_t M = o.M, efc = o.ef_construction, efs = o.ef_search, threads = 0;
	uint64_t seed = o.seed;
	bool quiet = false, help = false;
	const struct cli_opt opts[] = {
		{"--input", NULL, CLI_OPT_STR, &input, 0, 0},
		{"--metric", NULL, CLI_OPT_STR, &metric_s, 0, 0},
		{"--M", NULL, CLI_OPT_U32, &M, STRATA_M_MIN, STRATA_M_MAX},
		{"--ef-construction", NULL, CLI_OPT_U32, &efc, 1, STRATA_EF_MAX},
		{"--ef-search", NULL, CLI_OPT_U32, &efs, 1, STRATA_EF_MAX},
		{"--threads", NULL, CLI_OPT_U32, &threads, 0, 4096},
		{"--ids", NULL, CLI_OPT_STR, &ids_path, 0, 0},
		{"--seed", NULL, CLI_OPT_U64, &seed, 0, UINT64_MAX},
		{"--quiet", "-q", CLI_OPT_FLAG, &quiet, 0, 0},
		{NULL, NULL, CLI_OPT_FLAG, NULL, 0, 0},
	};
	const char *dir;
	int rc = cli_parse_dir(CMD, argc, argv, opts, usage_text, &dir, &help);
	if (rc || help)
		return rc;
	if (!input)
		return cli_usage_error(CMD, "missing required option --input FILE");
	strata_metric metric;
	if (cli_metric_parse(metric_s, &metric) != 0)
		return cli_usage_error(CMD, "unknown metric '%s' (expected l2, ip or cosine)", metric_s);
	if (target_free(dir) != 0)
		return CLI_EXIT_FAIL;

	char err[VECIO_ERR_MAX];
	struct vecio_mat mat;
	double t_read = cli_now();
	if (vecio_load(input, VECIO_AUTO, &mat, err, sizeof err) != 0)
		return cli_error(CMD, "%s: %s", input, err);
	t_read = cli_now() - t_read;
	uint64_t *ids = NULL;
	if (ids_path && vecio_ids_load(ids_path, mat.rows, &ids, err, sizeof err) != 0) {
		vecio_mat_free(&mat);
		return cli_error(CMD, "%s: %s", ids_path, err);
	}

	struct cli_progress prog;
	cli_progress_init(&prog, "build", quiet);
	o.dim = mat.dim;
	o.metric = metric;
	o.M = M;
	o.ef_construction = efc;
	o.ef_search = efs;
	o.threads = threads;
	o.seed = seed;
	o.progress = cli_progress_fn;
	o.progress_ctx = &prog;
	if (!quiet)
		fprintf(stderr, "read %zu vectors of dim %u from %s in %.2f s; building (%s, M %u, "
		                "ef_construction %u)\n",
		        mat.rows, mat.dim, input, t_read, cli_metric_name(metric), M, efc);
	double t0 = cli_now();
	rc = strata_build(dir, &o, ids, mat.data, mat.rows);
	double secs = cli_now() - t0;
	cli_progress_finish(&prog);
	size_t rows = mat.rows;
	uint32_t dim = mat.dim;
	free(ids);
	vecio_mat_free(&mat);
	if (rc != 0)
		return cli_fail(CMD, dir, rc);

	uint64_t bytes = 0;
	char size_s[32];
	if (cli_dir_bytes(dir, &bytes) != 0)
		snprintf(size_s, sizeof size_s, "unknown size");
	else
		cli_fmt_bytes(bytes, size_s, sizeof size_s);
	printf("built %s: %zu vectors, dim %u, %s, M %u, ef_construction %u, in %.2f s "
	       "(%.0f vectors/s), %s on disk\n",
	       dir, rows, dim, cli_metric_name(metric), M, efc, secs,
	       secs > 0 ? (double)rows / secs : 0.0, size_s);
	return CLI_EXIT_OK;
}
