/*
 * cli.c - the helpers every `strata` command shares (see cli.h): option
 * parsing, one-line errors, progress, JSON, timing, and the measuring that
 * query and tune share (exact truth over the stored vectors with the SIMD
 * kernels, timed searches, recall).
 *
 * Never exits and never prints to stdout except through the JSON writer the
 * command points at it: commands own their output and their exit status.
 */
#include "cli.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bundle.h"
#include "distance.h"
#include "le.h"
#include "segment.h"
#include "vecio.h"

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

int cli_parse_dir(const char *cmd, int argc, char **argv, const struct cli_opt *opts,
                  const char *usage, const char **dir_out, bool *help_out)
{
	size_t npos;
	*dir_out = NULL;
	int rc = cli_parse(cmd, argc, argv, opts, dir_out, 1, &npos, help_out);
	if (rc)
		return rc;
	if (*help_out) {
		fputs(usage, stdout);
		return CLI_EXIT_OK;
	}
	if (npos == 0)
		return cli_usage_error(cmd, "missing the database directory DIR");
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

void cli_json_null(struct cli_json *j, const char *key)
{
	json_key(j, key);
	fputs("null", j->f);
}

/* ---- measuring: exact truth, timed searches, recall -------------------------------------- */

/*
 * The exact truth reads the database's files: one consistent snapshot of the
 * MANIFEST, its segments and deletion files (bundle_snapshot_take, which
 * starts over when a writer's commit replaces a file meanwhile), without the
 * WAL: a read-only handle, which the measured searches use, sees the same
 * flushed state. Deleted nodes are skipped. Every id is live in at most one
 * segment of a flushed state (a newer write of an id marks the older copy
 * deleted in the same flush), so the live vectors are the truth's candidates.
 */
struct bf_db {
	struct bundle_snapshot snap;
	dist_fn dist;
};

static void bf_close(struct bf_db *b)
{
	bundle_snapshot_free(&b->snap);
	memset(b, 0, sizeof *b);
}

static int bf_open(const char *cmd, const char *dir, uint64_t checkpoint_lsn, struct bf_db *b)
{
	memset(b, 0, sizeof *b);
	int rc = bundle_snapshot_take(dir, 0, &b->snap);
	if (rc != 0)
		return cli_fail(cmd, "reading the database for --truth exact", rc);
	if (checkpoint_lsn != UINT64_MAX && b->snap.checkpoint_lsn != checkpoint_lsn) {
		uint64_t now = b->snap.checkpoint_lsn;
		bf_close(b);
		return cli_error(cmd, "%s changed while it was measured: a writer flushed (checkpoint "
		                      "LSN %llu, the searched handle sees %llu), so the exact truth would "
		                      "describe another state; run again", dir, (unsigned long long)now,
		                 (unsigned long long)checkpoint_lsn);
	}
	b->dist = dist_for_metric((strata_metric)b->snap.metric);
	if (!b->dist) {
		bf_close(b);
		return cli_error(cmd, "no distance kernel for metric %u", b->snap.metric);
	}
	return 0;
}

struct hit {
	float dist;
	uint64_t id;
};

/* a is worse than b: farther, or as far with a larger id (ties broken by lower id). */
static bool hit_worse(const struct hit *a, const struct hit *b)
{
	return a->dist > b->dist || (a->dist == b->dist && a->id > b->id);
}

/* Max-heap of the k best so far, the worst at the root. */
static void heap_push(struct hit *h, size_t *n, size_t k, struct hit x)
{
	size_t i;
	if (*n < k) {
		i = (*n)++;
		while (i > 0 && hit_worse(&x, &h[(i - 1) / 2])) {
			h[i] = h[(i - 1) / 2];
			i = (i - 1) / 2;
		}
		h[i] = x;
		return;
	}
	if (!hit_worse(&h[0], &x))
		return;
	i = 0;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= *n)
			break;
		if (c + 1 < *n && hit_worse(&h[c + 1], &h[c]))
			c++;
		if (!hit_worse(&h[c], &x))
			break;
		h[i] = h[c];
		i = c;
	}
	h[i] = x;
}

static int hit_cmp(const void *pa, const void *pb)
{
	const struct hit *a = pa, *b = pb;
	return hit_worse(a, b) ? 1 : hit_worse(b, a) ? -1 : 0;
}

struct bf_job {
	const struct bf_db *db;
	const float *queries;
	size_t nq;
	uint32_t dim;
	uint32_t k;
	uint64_t *truth; /* nq * k ids, STRATA_NO_ID where fewer exist */
	const uint64_t *allow; /* sorted allow-list, or NULL for every id */
	size_t n_allow;
	_Atomic size_t next;
	_Atomic bool failed;
};

static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

static void *bf_worker(void *arg)
{
	struct bf_job *j = arg;
	struct hit *heap = malloc((size_t)j->k * sizeof *heap);
	float *q = malloc((size_t)j->dim * sizeof *q);
	if (!heap || !q) {
		atomic_store(&j->failed, true);
		free(heap);
		free(q);
		return NULL;
	}
	bool cosine = j->db->snap.metric == STRATA_METRIC_COSINE;
	for (;;) {
		size_t qi = atomic_fetch_add(&j->next, 1);
		if (qi >= j->nq)
			break;
		memcpy(q, j->queries + qi * j->dim, (size_t)j->dim * sizeof *q);
		if (cosine) /* stored vectors are normalised on write; the query must be too */
			dist_normalize(q, j->dim);
		size_t n = 0;
		for (uint32_t s = 0; s < j->db->snap.segments; s++) {
			const struct seg_info *in = &j->db->snap.segs[s].info;
			const uint64_t *dead = j->db->snap.segs[s].deleted;
			for (uint64_t i = 0; i < in->count; i++) {
				if (dead && (dead[i / 64] >> (i % 64) & 1))
					continue;
				const float *v = (const float *)(const void *)(in->nodes + i * in->stride);
				uint64_t id = le_load64(in->ids + i * 8);
				if (j->allow && !bsearch(&id, j->allow, j->n_allow, sizeof id, u64_cmp))
					continue;
				struct hit h = {j->db->dist(q, v, j->dim), id};
				heap_push(heap, &n, j->k, h);
			}
		}
		qsort(heap, n, sizeof *heap, hit_cmp);
		uint64_t *out = j->truth + qi * j->k;
		for (size_t i = 0; i < j->k; i++)
			out[i] = i < n ? heap[i].id : STRATA_NO_ID;
	}
	free(heap);
	free(q);
	return NULL;
}

int cli_exact_truth(const char *cmd, const char *dir, uint64_t checkpoint_lsn, const float *queries,
                    size_t nq, uint32_t dim, uint32_t k, uint32_t threads, const uint64_t *allow,
                    size_t n_allow, uint64_t **truth_out)
{
	struct bf_db b;
	int rc = bf_open(cmd, dir, checkpoint_lsn, &b);
	if (rc != 0)
		return rc;
	struct bf_job j = {.db = &b, .queries = queries, .nq = nq, .dim = dim, .k = k,
	                   .allow = allow, .n_allow = n_allow};
	j.truth = malloc((nq ? nq : 1) * k * sizeof *j.truth);
	if (!j.truth) {
		bf_close(&b);
		return cli_error(cmd, "out of memory for the exact truth");
	}
	atomic_init(&j.next, 0);
	atomic_init(&j.failed, false);
	if (threads > nq)
		threads = (uint32_t)(nq ? nq : 1);
	if (threads > CLI_THREADS_MAX)
		threads = CLI_THREADS_MAX;
	pthread_t tid[CLI_THREADS_MAX];
	uint32_t started = 0;
	for (uint32_t t = 1; t < threads; t++) {
		if (pthread_create(&tid[started], NULL, bf_worker, &j) != 0)
			break; /* fewer threads only make it slower */
		started++;
	}
	bf_worker(&j);
	for (uint32_t t = 0; t < started; t++)
		pthread_join(tid[t], NULL);
	bf_close(&b);
	if (atomic_load(&j.failed)) {
		free(j.truth);
		return cli_error(cmd, "out of memory computing the exact truth");
	}
	*truth_out = j.truth;
	return 0;
}

int cli_file_truth(const char *cmd, const char *path, size_t nq, uint32_t k, bool limited,
                   uint64_t **truth_out)
{
	char err[VECIO_ERR_MAX];
	struct vecio_imat m;
	if (vecio_ivecs_load(path, &m, err, sizeof err) != 0)
		return cli_error(cmd, "%s: %s", path, err);
	int rc = 0;
	if (m.rows < nq || (!limited && m.rows != nq)) {
		rc = cli_error(cmd, "%s: %zu truth rows for %zu queries", path, m.rows, nq);
	} else if (m.cols < k) {
		rc = cli_error(cmd, "%s: the truth holds %u neighbours per query, fewer than --k %u",
		               path, m.cols, k);
	} else if (!(*truth_out = malloc((nq ? nq : 1) * k * sizeof **truth_out))) {
		rc = cli_error(cmd, "out of memory");
	} else {
		for (size_t q = 0; q < nq; q++)
			for (uint32_t i = 0; i < k; i++) {
				int32_t t = m.data[q * m.cols + i];
				(*truth_out)[q * k + i] = t < 0 ? STRATA_NO_ID : (uint64_t)t;
			}
	}
	vecio_imat_free(&m);
	return rc;
}

double cli_recall(const uint64_t *found, size_t nq, uint32_t k, const uint64_t *truth)
{
	double sum = 0;
	for (size_t q = 0; q < nq; q++) {
		size_t hit = 0, want = 0;
		for (uint32_t i = 0; i < k; i++) {
			uint64_t t = truth[q * k + i];
			if (t == STRATA_NO_ID)
				continue;
			want++;
			for (uint32_t j = 0; j < k; j++) {
				if (found[q * k + j] == t) {
					hit++;
					break;
				}
			}
		}
		sum += want ? (double)hit / (double)want : 1.0;
	}
	return nq ? sum / (double)nq : NAN;
}

struct search_job {
	const char *cmd;
	strata_db *db;
	const float *queries;
	size_t nq;
	uint32_t dim;
	const struct cli_search_spec *spec;
	uint64_t *ids;
	float *dists;
	double *lat_us; /* per query */
	_Atomic size_t next;
	_Atomic int rc;
};

/* Seconds on the calling thread's CPU clock: what a call cost, however often it was preempted. */
static double thread_cpu_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void *search_worker(void *arg)
{
	struct search_job *j = arg;
	const struct cli_search_spec *sp = j->spec;
	double (*clock_now)(void) = sp->cpu_clock ? thread_cpu_now : cli_now;
	uint32_t k = sp->k;
	strata_search_options so;
	strata_search_options_default(&so);
	so.ef = sp->ef;
	so.threads = 1;
	so.allow_ids = sp->allow;
	so.allow_count = sp->n_allow;
	for (;;) {
		size_t qi = atomic_fetch_add(&j->next, 1);
		if (qi >= j->nq || atomic_load(&j->rc) != 0)
			break;
		double t0 = clock_now();
		int rc = strata_search(j->db, j->queries + qi * j->dim, 1, k, &so, j->ids + qi * k,
		                       j->dists + qi * k);
		j->lat_us[qi] = (clock_now() - t0) * 1e6;
		if (rc != 0) {
			int zero = 0;
			/* Keep the first failure, and its detail: print it from this thread. */
			if (atomic_compare_exchange_strong(&j->rc, &zero, rc))
				cli_fail(j->cmd, NULL, rc);
			break;
		}
	}
	return NULL;
}

static int dbl_cmp(const void *pa, const void *pb)
{
	double a = *(const double *)pa, b = *(const double *)pb;
	return (a > b) - (a < b);
}

/* The q-quantile (0..1) of n sorted values: the smallest value at or above that share. */
static double quantile(const double *sorted, size_t n, double q)
{
	size_t i = (size_t)ceil(q * (double)n);
	return sorted[i ? i - 1 : 0];
}

int cli_timed_search(const char *cmd, strata_db *db, const float *queries, size_t nq,
                     uint32_t dim, const struct cli_search_spec *s, uint64_t *ids, float *dists,
                     struct cli_search_result *r)
{
	uint32_t threads = s->threads ? s->threads : 1;
	if (s->batch) {
		strata_search_options so;
		strata_search_options_default(&so);
		so.ef = s->ef;
		so.threads = threads;
		so.allow_ids = s->allow;
		so.allow_count = s->n_allow;
		double t0 = cli_now();
		int rc = strata_search(db, queries, nq, s->k, &so, ids, dists);
		r->wall_s = r->busy_s = cli_now() - t0;
		if (rc != 0)
			return cli_fail(cmd, NULL, rc);
		r->lat_mean_us = r->lat_p50_us = r->lat_p99_us = r->wall_s * 1e6 / (double)nq;
		return 0;
	}
	struct search_job j = {.cmd = cmd, .db = db, .queries = queries, .nq = nq, .dim = dim,
	                       .spec = s, .ids = ids, .dists = dists};
	atomic_init(&j.next, 0);
	atomic_init(&j.rc, 0);
	j.lat_us = malloc((nq ? nq : 1) * sizeof *j.lat_us);
	if (!j.lat_us)
		return cli_error(cmd, "out of memory");
	if (threads > nq)
		threads = (uint32_t)nq;
	if (threads > CLI_THREADS_MAX)
		threads = CLI_THREADS_MAX;
	pthread_t tid[CLI_THREADS_MAX];
	uint32_t started = 0;
	double t0 = cli_now();
	for (uint32_t t = 1; t < threads; t++) {
		if (pthread_create(&tid[started], NULL, search_worker, &j) != 0)
			break;
		started++;
	}
	search_worker(&j);
	for (uint32_t t = 0; t < started; t++)
		pthread_join(tid[t], NULL);
	r->wall_s = cli_now() - t0;
	if (atomic_load(&j.rc) != 0) {
		free(j.lat_us);
		return CLI_EXIT_FAIL;
	}
	double sum = 0;
	for (size_t i = 0; i < nq; i++)
		sum += j.lat_us[i];
	qsort(j.lat_us, nq, sizeof *j.lat_us, dbl_cmp);
	r->busy_s = sum * 1e-6 / (double)(started + 1);
	r->lat_mean_us = sum / (double)nq;
	r->lat_p50_us = quantile(j.lat_us, nq, 0.50);
	r->lat_p99_us = quantile(j.lat_us, nq, 0.99);
	free(j.lat_us);
	return 0;
}
