/*
 * t_cli.c - see t_cli.h. Test code: a failure to fork or find the program is
 * a Criterion assertion, not an outcome.
 */
#include "t_cli.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

const char *t_strata_exe(void)
{
	static char path[2048];
	const char *e = getenv("STRATA_EXE");
	if (e && *e)
		return e;
	char self[1024];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	cr_assert(n > 0, "cannot find the strata program: set STRATA_EXE");
	self[n] = '\0';
	snprintf(path, sizeof path, "%s/../tools/strata", dirname(self));
	return path;
}

void t_slurp(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "rb");
	size_t n = f ? fread(buf, 1, len - 1, f) : 0;
	buf[n] = '\0';
	if (f)
		fclose(f);
}

struct t_run *t_run_io(const struct t_dir *d, const char *in, const char *out_file, ...)
{
	const char *argv[40];
	int argc = 0;
	argv[argc++] = "strata";
	va_list ap;
	va_start(ap, out_file);
	const char *a;
	while ((a = va_arg(ap, const char *)) && argc < 39)
		argv[argc++] = a;
	va_end(ap);
	argv[argc] = NULL;
	char out_path[1024], err_path[1024];
	t_path(d, "stdout.txt", out_path, sizeof out_path);
	t_path(d, "stderr.txt", err_path, sizeof err_path);
	fflush(NULL);
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		int i = open(in ? in : "/dev/null", O_RDONLY);
		int o = open(out_file ? out_file : out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		int e = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (i < 0 || o < 0 || e < 0)
			_exit(126);
		dup2(i, 0);
		dup2(o, 1);
		dup2(e, 2);
		execv(t_strata_exe(), (char *const *)argv);
		_exit(127);
	}
	int ws;
	cr_assert_eq(waitpid(pid, &ws, 0), pid);
	struct t_run *r = calloc(1, sizeof *r);
	r->status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
	cr_assert_neq(r->status, 127, "could not run %s", t_strata_exe());
	if (!out_file)
		t_slurp(out_path, r->out, sizeof r->out);
	t_slurp(err_path, r->err, sizeof r->err);
	return r;
}

void t_write_fvecs(const char *path, const float *v, size_t n, uint32_t dim)
{
	size_t rec = 4 + 4 * (size_t)dim;
	uint8_t *b = malloc(n * rec + 1);
	for (size_t r = 0; r < n; r++) {
		int32_t dd = (int32_t)dim;
		memcpy(b + r * rec, &dd, 4);
		memcpy(b + r * rec + 4, v + r * dim, 4 * (size_t)dim);
	}
	t_write_file(path, b, n * rec);
	free(b);
}

bool t_json_has(const char *json, const char *key)
{
	char pat[64];
	snprintf(pat, sizeof pat, "\"%s\": ", key);
	return strstr(json, pat) != NULL;
}

double t_json_num(const char *json, const char *key)
{
	char pat[64];
	snprintf(pat, sizeof pat, "\"%s\": ", key);
	const char *p = strstr(json, pat);
	cr_assert(p, "JSON lacks key '%s': %s", key, json);
	return strtod(p + strlen(pat), NULL);
}
