/*
 * cli.h - what every `strata` command shares: option parsing, the one-line
 * error messages and exit statuses, the build progress bar, JSON output,
 * timing and size formatting, and the measuring query and tune share.
 *
 * Contract with the user (tools/strata.1, section EXIT STATUS), kept here so
 * that no command invents its own:
 *   0  success (verify: the database is sound)
 *   1  a runtime failure: unreadable input, a library error, damage found
 *   2  a usage error: unknown option, missing or malformed value
 * Usage errors print exactly one line "strata <cmd>: <problem>" followed by
 * "try 'strata <cmd> --help'" on stderr. Runtime errors print one line
 * "strata <cmd>: <strata_strerror(rc)>: <strata_last_error_detail()>".
 *
 * Nothing here calls exit(): commands return their status to main().
 */
#ifndef STRATA_CLI_H
#define STRATA_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "strata.h"

enum {
	CLI_EXIT_OK = 0,
	CLI_EXIT_FAIL = 1,
	CLI_EXIT_USAGE = 2
};

/* ---- commands ------------------------------------------------------------- */

/*
 * Each command gets the words after its name (argv[0] is the first of them)
 * and returns its exit status. Defined in cmd_<name>.c, listed in strata.c.
 */
int cmd_build(int argc, char **argv);
int cmd_query(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_pack(int argc, char **argv);
int cmd_unpack(int argc, char **argv);
int cmd_tune(int argc, char **argv);
int cmd_dump(int argc, char **argv);
int cmd_create(int argc, char **argv); /* cmd_write.c, as the three below */
int cmd_import(int argc, char **argv);
int cmd_delete(int argc, char **argv);
int cmd_flush(int argc, char **argv);
int cmd_compact(int argc, char **argv);

/* ---- options --------------------------------------------------------- */

enum cli_opt_kind {
	CLI_OPT_FLAG, /* out: bool *, set to true */
	CLI_OPT_STR,  /* out: const char **, points into argv */
	CLI_OPT_U32,  /* out: uint32_t *, decimal, checked against min..max */
	CLI_OPT_U64   /* out: uint64_t *, decimal, checked against min..max */
};

struct cli_opt {
	const char *name;  /* "--k" */
	const char *alias; /* "-v", or NULL */
	enum cli_opt_kind kind;
	void *out;
	uint64_t min, max; /* numbers only */
};

/*
 * Parse the words after the command name. "--name value" and "--name=value"
 * are both accepted; "--" ends the options. Words that are not options are
 * positional and go to pos_out (at most pos_max of them).
 *
 * If "--help" or "-h" appears anywhere before "--", *help_out is set and
 * nothing else is checked (help always wins over a bad option).
 * Returns CLI_EXIT_OK, or CLI_EXIT_USAGE after printing the one-line error.
 * `opts` ends with an entry whose name is NULL.
 */
int cli_parse(const char *cmd, int argc, char **argv, const struct cli_opt *opts,
              const char **pos_out, size_t pos_max, size_t *pos_count_out, bool *help_out);

/*
 * cli_parse for the commands whose one positional word is the database
 * directory: on --help prints `usage` to stdout and sets *help_out; a missing
 * DIR is a usage error. Returns CLI_EXIT_OK (*dir_out set unless help) or
 * CLI_EXIT_USAGE after printing the error.
 */
int cli_parse_dir(const char *cmd, int argc, char **argv, const struct cli_opt *opts,
                  const char *usage, const char **dir_out, bool *help_out);

/* Parse a metric name ("l2", "ip", "cosine"). Returns 0 or -1. */
int cli_metric_parse(const char *s, strata_metric *metric_out);
const char *cli_metric_name(uint32_t metric); /* "l2", "ip", "cosine" or "unknown" */

/* ---- errors ---------------------------------------------------------------- */

/* Print "strata <cmd>: <fmt...>" and the help hint; returns CLI_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Print a library failure: "strata <cmd>: [<what>: ]<strerror(rc)>[: <detail>]".
 * `what` (a path, a step) may be NULL; it is left out when the detail already
 * contains it. Returns CLI_EXIT_FAIL.
 */
int cli_fail(const char *cmd, const char *what, int rc);

/* Print "strata <cmd>: <fmt...>" for a runtime failure; returns CLI_EXIT_FAIL. */
int cli_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- time, sizes ------------------------------------------------------------- */

/* Seconds on the monotonic clock. */
double cli_now(void);

/* "512 B", "6.1 KiB", "1.5 GiB" into buf; returns buf. */
const char *cli_fmt_bytes(uint64_t bytes, char *buf, size_t len);

/*
 * Map a whole file read-only (a zero-length file gives map NULL, len 0).
 * Returns 0 or STRATA_ENOTFOUND / STRATA_EPERM / STRATA_EINVAL (not a regular
 * file) / STRATA_EIO / STRATA_ENOMEM, with the reason (strerror) in err.
 */
int cli_map_file(const char *path, const uint8_t **map_out, size_t *len_out, char *err,
                 size_t err_len);
void cli_unmap_file(const uint8_t *map, size_t len);

/* Sum of the sizes of the regular files directly in `dir`. Returns 0 or -errno. */
int cli_dir_bytes(const char *dir, uint64_t *bytes_out);

/* ---- progress ------------------------------------------------------------------ */

/*
 * Build progress on stderr. On a terminal: a bar redrawn in place with the
 * percentage, the rate (vectors/s) and the ETA, at most ~10 times a second.
 * Otherwise (a log, a pipe): a plain line at every 10%. Quiet: nothing.
 */
struct cli_progress {
	const char *label;
	bool quiet;
	bool tty;
	bool drawn;     /* a bar line is on screen and needs its newline */
	int last_tenth; /* last 10% step printed (non-tty) */
	double t0;
	double last_draw;
};

void cli_progress_init(struct cli_progress *p, const char *label, bool quiet);
void cli_progress_update(struct cli_progress *p, uint64_t done, uint64_t total);
/* End the bar line (if any). */
void cli_progress_finish(struct cli_progress *p);
/* A strata_progress_fn whose ctx is a struct cli_progress. */
void cli_progress_fn(uint64_t done, uint64_t total, void *ctx);

/* ---- JSON ---------------------------------------------------------------------- */

#define CLI_JSON_DEPTH_MAX 16

/*
 * A streaming writer of one compact JSON value on one line. Keys are given
 * inside objects and NULL inside arrays. Non-finite numbers become null.
 */
struct cli_json {
	FILE *f;
	int depth;
	bool need_comma[CLI_JSON_DEPTH_MAX];
};

void cli_json_init(struct cli_json *j, FILE *f);
void cli_json_obj_begin(struct cli_json *j, const char *key);
void cli_json_obj_end(struct cli_json *j); /* at depth 0 also ends the line */
void cli_json_arr_begin(struct cli_json *j, const char *key);
void cli_json_arr_end(struct cli_json *j);
void cli_json_str(struct cli_json *j, const char *key, const char *value);
void cli_json_u64(struct cli_json *j, const char *key, uint64_t value);
void cli_json_i64(struct cli_json *j, const char *key, int64_t value);
void cli_json_f64(struct cli_json *j, const char *key, double value);
void cli_json_bool(struct cli_json *j, const char *key, bool value);
void cli_json_null(struct cli_json *j, const char *key);

/* ---- measuring (query, tune) ------------------------------------------------------- */

#define CLI_THREADS_MAX 4096

/*
 * The exact k nearest ids of each of nq queries (nq * dim floats), by brute
 * force over the live vectors of the database in `dir`: its last flushed
 * state, what a STRATA_READONLY handle searches (MANIFEST, each segment's
 * node records and ids, less the nodes its deletion file marks deleted),
 * read through format/ as one consistent snapshot, with the engine's SIMD
 * distance kernels, on `threads` threads; ties go to the lower id.
 * `checkpoint_lsn` is the searched handle's (strata_stats): if the files show
 * another flushed state (a writer flushed in between), that is an error;
 * UINT64_MAX skips the check. `allow` (sorted, n_allow ids) limits the
 * candidates, or is NULL for all. *truth_out gets nq * k ids (STRATA_NO_ID
 * where fewer exist), malloc'd. Returns 0, or prints the one-line error for
 * `cmd` and returns CLI_EXIT_FAIL.
 */
int cli_exact_truth(const char *cmd, const char *dir, uint64_t checkpoint_lsn, const float *queries,
                    size_t nq, uint32_t dim, uint32_t k, uint32_t threads, const uint64_t *allow,
                    size_t n_allow, uint64_t **truth_out);

/*
 * The first k neighbours (row numbers, as ids) of each query from an .ivecs
 * truth file; `limited` allows more truth rows than queries (--limit).
 * Returns 0, or prints the error and returns CLI_EXIT_FAIL.
 */
int cli_file_truth(const char *cmd, const char *path, size_t nq, uint32_t k, bool limited,
                   uint64_t **truth_out);

/* Mean recall@k: the share of each query's true neighbours (nq * k) found (nq * k). */
double cli_recall(const uint64_t *found, size_t nq, uint32_t k, const uint64_t *truth);

struct cli_search_spec {
	uint32_t k;
	uint32_t ef;
	uint32_t threads;
	bool batch;            /* one strata_search() call for all queries */
	bool cpu_clock;        /* time each call with its thread's CPU clock, not the wall clock */
	const uint64_t *allow; /* the searches' allow-list: NULL = no filter; non-NULL with */
	size_t n_allow;        /* n_allow 0 passes nothing */
};

struct cli_search_result {
	double wall_s;      /* wall time of the search phase, all threads together */
	double busy_s;      /* sum of the per-call times / threads (= wall_s for a batch) */
	double lat_mean_us; /* per-query latency; with batch: the call's time / queries */
	double lat_p50_us;
	double lat_p99_us;
};

/*
 * Search every query and time only the strata_search() calls: one query per
 * call on s->threads threads (per-query latency observed), or one call for
 * all (batch). ids / dists get nq * k results.
 * Returns 0, or prints the error and returns CLI_EXIT_FAIL.
 */
int cli_timed_search(const char *cmd, strata_db *db, const float *queries, size_t nq,
                     uint32_t dim, const struct cli_search_spec *s, uint64_t *ids, float *dists,
                     struct cli_search_result *r);

#endif /* STRATA_CLI_H */
