/*
 * cli.c - the helpers every `strata` command shares (see cli.h): option
 * parsing, one-line errors, progress, JSON, timing.
 *
 * Never exits and never prints to stdout except through the JSON writer the
 * command points at it: commands own their output and their exit status.
 */
#include "cli.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- options ----------------------------------------------------------------- */

static const struct cli_opt *opt_find(const struct cli_opt *opts, const char *word, size_t len)
{
	for (const struct cli_opt *o = opts; o->name; o++) {
		if (strlen(o->name) == len && strncmp(o->name, word, len) == 0)
			return o;
		if (o->alias && strlen(o->alias) == len && strncmp(o->alias, word, len) == 0)
			return o;
	}
	return NULL;
}

/* Strict decimal: digits only (no sign, space or suffix), no overflow. */
static int parse_u64(const char *s, uint64_t *out)
{
	if (!*s)
		return -1;
	uint64_t v = 0;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		unsigned d = (unsigned)(*p - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -2;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

static int opt_set(const char *cmd, const struct cli_opt *o, const char *val)
{
	if (o->kind == CLI_OPT_STR) {
		if (!*val)
			return cli_usage_error(cmd, "option %s needs a non-empty value", o->name);
		*(const char **)o->out = val;
		return 0;
	}
	uint64_t v;
	int rc = parse_u64(val, &v);
	if (rc == -1)
		return cli_usage_error(cmd, "option %s needs a non-negative whole number, not '%s'",
		                       o->name, val);
	if (rc != 0 || v < o->min || v > o->max)
		return cli_usage_error(cmd, "option %s must be in %llu..%llu, not %s", o->name,
		                       (unsigned long long)o->min, (unsigned long long)o->max, val);
	if (o->kind == CLI_OPT_U32)
		*(uint32_t *)o->out = (uint32_t)v;
	else
		*(uint64_t *)o->out = v;
	return 0;
}

int cli_parse(const char *cmd, int argc, char **argv, const struct cli_opt *opts,
              const char **pos_out, size_t pos_max, size_t *pos_count_out, bool *help_out)
{
	*help_out = false;
	*pos_count_out = 0;
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			break;
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			*help_out = true;
			return CLI_EXIT_OK;
		}
	}
	bool options_done = false;
	for (int i = 0; i < argc; i++) {
		const char *w = argv[i];
		if (options_done || w[0] != '-' || w[1] == '\0') {
			if (*pos_count_out >= pos_max)
				return cli_usage_error(cmd, "unexpected argument '%s'", w);
			pos_out[(*pos_count_out)++] = w;
			continue;
		}
		if (strcmp(w, "--") == 0) {
			options_done = true;
			continue;
		}
		const char *eq = strchr(w, '=');
		size_t name_len = eq ? (size_t)(eq - w) : strlen(w);
		const struct cli_opt *o = opt_find(opts, w, name_len);
		if (!o)
			return cli_usage_error(cmd, "unknown option '%.*s'", (int)name_len, w);
		if (o->kind == CLI_OPT_FLAG) {
			if (eq)
				return cli_usage_error(cmd, "option %s takes no value", o->name);
			*(bool *)o->out = true;
			continue;
		}
		const char *val;
		if (eq) {
			val = eq + 1;
		} else {
			if (i + 1 >= argc)
				return cli_usage_error(cmd, "option %s needs a value", o->name);
			val = argv[++i];
		}
		int rc = opt_set(cmd, o, val);
		if (rc != 0)
			return rc;
	}
	return CLI_EXIT_OK;
}

int cli_metric_parse(const char *s, strata_metric *metric_out)
{
	if (strcmp(s, "l2") == 0)
		*metric_out = STRATA_METRIC_L2;
	else if (strcmp(s, "ip") == 0)
		*metric_out = STRATA_METRIC_IP;
	else if (strcmp(s, "cosine") == 0)
		*metric_out = STRATA_METRIC_COSINE;
	else
		return -1;
	return 0;
}

const char *cli_metric_name(uint32_t metric)
{
	switch (metric) {
	case STRATA_METRIC_L2: return "l2";
	case STRATA_METRIC_IP: return "ip";
	case STRATA_METRIC_COSINE: return "cosine";
	default: return "unknown";
	}
}

/* ---- errors -------------------------------------------------------------------- */

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "strata %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\ntry 'strata %s --help'\n", cmd);
	return CLI_EXIT_USAGE;
}

int cli_fail(const char *cmd, const char *what, int rc)
{
	const char *detail = strata_last_error_detail();
	fprintf(stderr, "strata %s: ", cmd);
	/* The detail usually names the file already; say it once. */
	if (what && !(detail && strstr(detail, what)))
		fprintf(stderr, "%s: ", what);
	fputs(strata_strerror(rc), stderr);
	if (detail && *detail)
		fprintf(stderr, ": %s", detail);
	fputc('\n', stderr);
	return CLI_EXIT_FAIL;
}

int cli_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "strata %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return CLI_EXIT_FAIL;
}

/* ---- time, sizes ------------------------------------------------------------------ */

double cli_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

const char *cli_fmt_bytes(uint64_t bytes, char *buf, size_t len)
{
	static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
	if (bytes < 1024) {
		snprintf(buf, len, "%llu B", (unsigned long long)bytes);
		return buf;
	}
	double v = (double)bytes / 1024.0;
	size_t u = 0;
	while (v >= 1024.0 && u + 1 < sizeof units / sizeof units[0]) {
		v /= 1024.0;
		u++;
	}
	snprintf(buf, len, "%.1f %s", v, units[u]);
	return buf;
}

int cli_map_file(const char *path, const uint8_t **map_out, size_t *len_out, char *err,
                 size_t err_len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		snprintf(err, err_len, "%s", strerror(e));
		return e == ENOENT ? STRATA_ENOTFOUND : (e == EACCES || e == EPERM) ? STRATA_EPERM
		                                                                    : STRATA_EIO;
	}
	struct stat st;
	if (fstat(fd, &st) != 0) {
		int e = errno;
		close(fd);
		snprintf(err, err_len, "%s", strerror(e));
		return STRATA_EIO;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		snprintf(err, err_len, "not a regular file");
		return STRATA_EINVAL;
	}
	*map_out = NULL;
	*len_out = (size_t)st.st_size;
	if (st.st_size == 0) {
		close(fd);
		return 0;
	}
	void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	int e = errno;
	close(fd);
	if (m == MAP_FAILED) {
		snprintf(err, err_len, "mmap: %s", strerror(e));
		return e == ENOMEM ? STRATA_ENOMEM : STRATA_EIO;
	}
	*map_out = m;
	return 0;
}

void cli_unmap_file(const uint8_t *map, size_t len)
{
	if (map)
		munmap((void *)(uintptr_t)map, len);
}

int cli_dir_bytes(const char *dir, uint64_t *bytes_out)
{
	DIR *d = opendir(dir);
	if (!d)
		return -errno;
	uint64_t sum = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		struct stat st;
		if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode))
			sum += (uint64_t)st.st_size;
	}
	closedir(d);
	*bytes_out = sum;
	return 0;
}

/* ---- progress ---------------------------------------------------------------------- */

void cli_progress_init(struct cli_progress *p, const char *label, bool quiet)
{
	memset(p, 0, sizeof *p);
	p->label = label;
	p->quiet = quiet;
	p->tty = isatty(STDERR_FILENO) == 1;
	p->last_tenth = 0;
	p->t0 = cli_now();
	p->last_draw = -1.0;
}

static void fmt_eta(double s, char *buf, size_t len)
{
	if (!isfinite(s) || s < 0) {
		snprintf(buf, len, "--:--");
		return;
	}
	unsigned long t = (unsigned long)(s + 0.5);
	if (t >= 3600)
		snprintf(buf, len, "%lu:%02lu:%02lu", t / 3600, t / 60 % 60, t % 60);
	else
		snprintf(buf, len, "%lu:%02lu", t / 60, t % 60);
}

void cli_progress_update(struct cli_progress *p, uint64_t done, uint64_t total)
{
	if (p->quiet || total == 0)
		return;
	if (done > total)
		done = total;
	double now = cli_now();
	double elapsed = now - p->t0;
	double frac = (double)done / (double)total;
	double rate = elapsed > 0 ? (double)done / elapsed : 0.0;
	double eta = rate > 0 ? (double)(total - done) / rate : NAN;
	char eta_s[32];
	fmt_eta(eta, eta_s, sizeof eta_s);
	if (p->tty) {
		/* Redraw at most 10 times a second, but always show the end. */
		if (done != total && p->last_draw >= 0 && now - p->last_draw < 0.1)
			return;
		p->last_draw = now;
		enum { WIDTH = 30 };
		char bar[WIDTH + 1];
		int fill = (int)(frac * WIDTH);
		for (int i = 0; i < WIDTH; i++)
			bar[i] = i < fill ? '#' : '.';
		bar[WIDTH] = '\0';
		fprintf(stderr, "\r%s [%s] %5.1f%%  %llu/%llu  %.0f vectors/s  ETA %s\033[K", p->label,
		        bar, frac * 100.0, (unsigned long long)done, (unsigned long long)total, rate,
		        eta_s);
		fflush(stderr);
		p->drawn = true;
		return;
	}
	int tenth = (int)(frac * 10.0);
	if (tenth <= p->last_tenth)
		return;
	p->last_tenth = tenth;
	fprintf(stderr, "%s: %3d%%  %llu/%llu vectors  %.0f vectors/s  ETA %s\n", p->label,
	        tenth * 10, (unsigned long long)done, (unsigned long long)total, rate, eta_s);
	fflush(stderr);
}

void cli_progress_finish(struct cli_progress *p)
{
	if (p->drawn) {
		fputc('\n', stderr);
		p->drawn = false;
	}
}

void cli_progress_fn(uint64_t done, uint64_t total, void *ctx)
{
	cli_progress_update(ctx, done, total);
}

/* ---- JSON ------------------------------------------------------------------------------ */

void cli_json_init(struct cli_json *j, FILE *f)
{
	memset(j, 0, sizeof *j);
	j->f = f;
}

static void json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		switch (*p) {
		case '"': fputs("\\\"", f); break;
		case '\\': fputs("\\\\", f); break;
		case '\n': fputs("\\n", f); break;
		case '\r': fputs("\\r", f); break;
		case '\t': fputs("\\t", f); break;
		default:
			if (*p < 0x20)
				fprintf(f, "\\u%04x", *p);
			else
				fputc(*p, f);
		}
	}
	fputc('"', f);
}

/* Separator and key before a value at the current depth. */
static void json_key(struct cli_json *j, const char *key)
{
	if (j->need_comma[j->depth])
		fputs(", ", j->f);
	j->need_comma[j->depth] = true;
	if (key) {
		json_string(j->f, key);
		fputs(": ", j->f);
	}
}

static void json_open(struct cli_json *j, const char *key, char c)
{
	json_key(j, key);
	fputc(c, j->f);
	if (j->depth + 1 < CLI_JSON_DEPTH_MAX)
		j->depth++;
	j->need_comma[j->depth] = false;
}

static void json_close(struct cli_json *j, char c)
{
	fputc(c, j->f);
	if (j->depth > 0)
		j->depth--;
	if (j->depth == 0) {
		fputc('\n', j->f);
		j->need_comma[0] = false;
	}
}

void cli_json_obj_begin(struct cli_json *j, const char *key) { json_open(j, key, '{'); }
void cli_json_obj_end(struct cli_json *j) { json_close(j, '}'); }
void cli_json_arr_begin(struct cli_json *j, const char *key) { json_open(j, key, '['); }
void cli_json_arr_end(struct cli_json *j) { json_close(j, ']'); }

void cli_json_str(struct cli_json *j, const char *key, const char *value)
{
	json_key(j, key);
	json_string(j->f, value ? value : "");
}

void cli_json_u64(struct cli_json *j, const char *key, uint64_t value)
{
	json_key(j, key);
	fprintf(j->f, "%llu", (unsigned long long)value);
}

void cli_json_i64(struct cli_json *j, const char *key, int64_t value)
{
	json_key(j, key);
	fprintf(j->f, "%lld", (long long)value);
}

void cli_json_f64(struct cli_json *j, const char *key, double value)
{
	json_key(j, key);
	if (isfinite(value))
		fprintf(j->f, "%.6g", value);
	else
		fputs("null", j->f);
}

void cli_json_bool(struct cli_json *j, const char *key, bool value)
{
	json_key(j, key);
	fputs(value ? "true" : "false", j->f);
}
