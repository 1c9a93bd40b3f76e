/*
 * t_cli.h - running the built `strata` program from tests: find it, run it in
 * a child with stdin/stdout/stderr redirected, capture what it printed; and
 * small helpers on its output (one-line JSON) and inputs (.fvecs files).
 */
#ifndef STRATA_T_CLI_H
#define STRATA_T_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "t_support.h"

/* $STRATA_EXE, or tools/strata beside the test binary's build directory. */
const char *t_strata_exe(void);

struct t_run {
	int status;          /* exit status, or 128 + signal */
	char out[1 << 17];   /* stdout (unless redirected to a file) */
	char err[1 << 14];   /* stderr */
};

/*
 * Run `strata args...` (NULL-terminated) with stdin from `in` (NULL:
 * /dev/null) and stdout to `out_file` (NULL: captured in out). The result is
 * malloc'd; the caller frees it.
 */
struct t_run *t_run_io(const struct t_dir *d, const char *in, const char *out_file, ...);
#define t_run(d, ...) t_run_io((d), NULL, NULL, __VA_ARGS__)

/* Read at most len - 1 bytes of a file into buf, NUL-terminated (empty if missing). */
void t_slurp(const char *path, char *buf, size_t len);

/* Write n rows of dim floats as .fvecs. */
void t_write_fvecs(const char *path, const float *v, size_t n, uint32_t dim);

/* In a one-line JSON object: whether "key": is present, and the number after it (asserts it is). */
bool t_json_has(const char *json, const char *key);
double t_json_num(const char *json, const char *key);

#endif /* STRATA_T_CLI_H */
