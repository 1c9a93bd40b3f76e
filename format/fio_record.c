/*
 * fio_record.c - the power-loss recorder of the I/O seam (fio_record.h),
 * compiled only when STRATA_FAILPOINTS=1 (test builds).
 *
 * Owns an in-memory model of the tree under `root`: inode-like nodes (a file's
 * content as the process sees it, `cur`, and as of its last sync, `dur`; or a
 * directory) and two sets of entries (parent directory, name) -> node: the
 * current ones, changed by every create, rename and unlink, and the durable
 * ones, which take a directory's current entries only when that directory is
 * synced. Names point to nodes, not nodes to names, so a descriptor keeps its
 * file through renames and unlinks, as on a real file system.
 *
 * Invariants:
 *   R1. A node's `dur` changes only at a completed fsync/fdatasync of it (or
 *       at the tear of the dying write, fio_record_set_tear).
 *   R2. A directory's durable entries change only at a completed sync of it.
 *   R3. After the crash point, no mutating call under `root` reaches the disk
 *       or the model; the dying op is not counted in fio_record_ops().
 *   R4. The lock is held from fio_rec_begin() to fio_rec_end() of every
 *       recorded call, so the model's order is the file system's order.
 *
 * It must never call back into fio.c (the seam calls it with the lock held),
 * and it bypasses the failpoints: its own I/O (reading files in at start,
 * rewriting the tree at power loss) is the test's, not the engine's.
 */
#include "fio_record.h"

#if STRATA_FAILPOINTS

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"

/* A file the model will not follow past: the recorder is for test-sized trees. */
#define REC_FILE_MAX ((size_t)1 << 30)

struct rec_node {
	struct rec_node *next_all; /* every node, for freeing */
	bool dir;
	mode_t mode;
	uint8_t *cur; /* files: what the process sees */
	size_t cur_len, cur_cap;
	uint8_t *dur; /* files: content as of the last completed sync (R1) */
	size_t dur_len;
	char *made_path; /* powerloss: where this node was recreated first */
};

struct rec_entry {
	struct rec_node *parent;
	char *name;
	struct rec_node *node;
};

struct rec_entries {
	struct rec_entry *v;
	size_t n, cap;
};

struct rec_state {
	bool active;
	bool dead;
	bool broken; /* the model lost track (no memory, file too big): powerloss refuses */
	char *root;  /* canonical, no trailing slash */
	size_t root_len;
	struct rec_node *root_node;
	struct rec_node *all;
	struct rec_entries cur, dur;
	struct rec_node **fds; /* descriptor -> node; NULL = not known yet */
	size_t fds_cap;
	uint64_t ops;
	uint64_t crash_at; /* 0 = never */
	enum fio_tear tear;
	uint64_t tear_rng;
	size_t torn_len;
};
static struct rec_state rec;

static pthread_mutex_t rec_lock = PTHREAD_MUTEX_INITIALIZER;

/* ---- nodes and entries ---- */

static struct rec_node *rec_node_new(bool dir, mode_t mode)
{
	struct rec_node *n = calloc(1, sizeof *n);
	if (!n) {
		rec.broken = true;
		return NULL;
	}
	n->dir = dir;
	n->mode = mode & 07777;
	n->next_all = rec.all;
	rec.all = n;
	return n;
}

static void rec_nodes_free(void)
{
	while (rec.all) {
		struct rec_node *n = rec.all;
		rec.all = n->next_all;
		free(n->cur);
		free(n->dur);
		free(n->made_path);
		free(n);
	}
}

static void rec_entries_free(struct rec_entries *es)
{
	for (size_t i = 0; i < es->n; i++)
		free(es->v[i].name);
	free(es->v);
	*es = (struct rec_entries){0};
}

static ssize_t rec_find(const struct rec_entries *es, const struct rec_node *parent, const char *name)
{
	for (size_t i = 0; i < es->n; i++)
		if (es->v[i].parent == parent && strcmp(es->v[i].name, name) == 0)
			return (ssize_t)i;
	return -1;
}

static void rec_del_at(struct rec_entries *es, size_t i)
{
	free(es->v[i].name);
	es->v[i] = es->v[--es->n];
}

static void rec_del(struct rec_entries *es, const struct rec_node *parent, const char *name)
{
	ssize_t i = rec_find(es, parent, name);
	if (i >= 0)
		rec_del_at(es, (size_t)i);
}

/* parent/name -> node, replacing what the name referred to. */
static void rec_set(struct rec_entries *es, struct rec_node *parent, const char *name,
                    struct rec_node *node)
{
	ssize_t i = rec_find(es, parent, name);
	if (i >= 0) {
		es->v[i].node = node;
		return;
	}
	if (es->n == es->cap) {
		size_t cap = es->cap ? es->cap * 2 : 64;
		struct rec_entry *v = realloc(es->v, cap * sizeof *v);
		if (!v) {
			rec.broken = true;
			return;
		}
		es->v = v;
		es->cap = cap;
	}
	char *copy = strdup(name);
	if (!copy) {
		rec.broken = true;
		return;
	}
	es->v[es->n++] = (struct rec_entry){.parent = parent, .name = copy, .node = node};
}

/* R2: the durable entries of `dir` become its current ones. */
static void rec_dir_sync(struct rec_node *dir)
{
	for (size_t i = rec.dur.n; i-- > 0;)
		if (rec.dur.v[i].parent == dir)
			rec_del_at(&rec.dur, i);
	for (size_t i = 0; i < rec.cur.n; i++)
		if (rec.cur.v[i].parent == dir)
			rec_set(&rec.dur, dir, rec.cur.v[i].name, rec.cur.v[i].node);
}

/* ---- file contents ---- */

static bool rec_reserve(struct rec_node *n, size_t len)
{
	if (len > REC_FILE_MAX) {
		rec.broken = true;
		return false;
	}
	if (len <= n->cur_cap)
		return true;
	size_t cap = n->cur_cap ? n->cur_cap : 4096;
	while (cap < len)
		cap *= 2;
	uint8_t *p = realloc(n->cur, cap);
	if (!p) {
		rec.broken = true;
		return false;
	}
	n->cur = p;
	n->cur_cap = cap;
	return true;
}

static void rec_resize(struct rec_node *n, uint64_t len)
{
	if (len > REC_FILE_MAX || !rec_reserve(n, (size_t)len)) {
		rec.broken = true;
		return;
	}
	if (len > n->cur_len)
		memset(n->cur + n->cur_len, 0, (size_t)len - n->cur_len);
	n->cur_len = (size_t)len;
}

/* Apply a write to `*buf` of `*len` bytes (a hole before `off` reads as zeros). */
static bool rec_apply(uint8_t **buf, size_t *len, size_t *cap, const void *data, size_t n,
                      uint64_t off)
{
	if (off > REC_FILE_MAX || n > REC_FILE_MAX - off) {
		rec.broken = true;
		return false;
	}
	size_t end = (size_t)off + n;
	if (end > *cap) {
		size_t c = *cap ? *cap : 4096;
		while (c < end)
			c *= 2;
		uint8_t *p = realloc(*buf, c);
		if (!p) {
			rec.broken = true;
			return false;
		}
		*buf = p;
		*cap = c;
	}
	if (off > *len)
		memset(*buf + *len, 0, (size_t)off - *len);
	if (n)
		memcpy(*buf + off, data, n);
	if (end > *len)
		*len = end;
	return true;
}

static void rec_write(struct rec_node *n, const void *data, size_t len, uint64_t off)
{
	if (n && !n->dir)
		rec_apply(&n->cur, &n->cur_len, &n->cur_cap, data, len, off);
}

/* R1: the file's content as of now is what survives. */
static void rec_file_sync(struct rec_node *n)
{
	uint8_t *d = malloc(n->cur_len ? n->cur_len : 1);
	if (!d) {
		rec.broken = true;
		return;
	}
	if (n->cur_len)
		memcpy(d, n->cur, n->cur_len);
	free(n->dur);
	n->dur = d;
	n->dur_len = n->cur_len;
}

/* ---- paths ---- */

/* Canonical absolute form of `path` (malloc'd), resolving all but the last component. */
static char *rec_canon(const char *path)
{
	size_t n = strlen(path);
	char *tmp = malloc(n + 1);
	char *out = NULL;
	if (!tmp)
		return NULL;
	memcpy(tmp, path, n + 1);
	while (n > 1 && tmp[n - 1] == '/')
		tmp[--n] = 0;
	char *slash = strrchr(tmp, '/');
	const char *dir = ".", *base = tmp;
	if (slash == tmp) {
		dir = "/";
		base = slash + 1;
	} else if (slash) {
		*slash = 0;
		dir = tmp;
		base = slash + 1;
	}
	if (!*base || strcmp(base, ".") == 0 || strcmp(base, "..") == 0) {
		out = realpath(path, NULL);
	} else {
		char *d = realpath(dir, NULL);
		if (d) {
			size_t dl = strlen(d), bl = strlen(base);
			out = malloc(dl + 1 + bl + 1);
			if (out) {
				memcpy(out, d, dl);
				size_t o = dl;
				if (dl == 0 || d[dl - 1] != '/')
					out[o++] = '/';
				memcpy(out + o, base, bl + 1);
			}
			free(d);
		}
	}
	free(tmp);
	return out;
}

/* The part of canonical `c` under the root ("" = the root itself), or NULL if outside. */
static const char *rec_rel(const char *c)
{
	if (!c || !rec.root || strncmp(c, rec.root, rec.root_len) != 0)
		return NULL;
	if (c[rec.root_len] == 0)
		return c + rec.root_len;
	return c[rec.root_len] == '/' ? c + rec.root_len + 1 : NULL;
}

/*
 * Walk the current entries along `rel`: the directory holding its last
 * component, and that component (copied to `name`). False for the root itself
 * or when a directory on the way is not in the model.
 */
static bool rec_parent(const char *rel, struct rec_node **dir_out, char *name, size_t name_len)
{
	struct rec_node *d = rec.root_node;
	if (!rel || !*rel)
		return false;
	for (;;) {
		const char *slash = strchr(rel, '/');
		size_t l = slash ? (size_t)(slash - rel) : strlen(rel);
		if (l == 0 || l >= name_len)
			return false;
		memcpy(name, rel, l);
		name[l] = 0;
		if (!slash) {
			*dir_out = d;
			return true;
		}
		ssize_t i = rec_find(&rec.cur, d, name);
		if (i < 0 || !rec.cur.v[i].node->dir)
			return false;
		d = rec.cur.v[i].node;
		rel = slash + 1;
	}
}

/* The node `rel` currently names, or NULL. */
static struct rec_node *rec_lookup(const char *rel)
{
	char name[NAME_MAX + 1];
	struct rec_node *d;
	if (rel && !*rel)
		return rec.root_node;
	if (!rec_parent(rel, &d, name, sizeof name))
		return NULL;
	ssize_t i = rec_find(&rec.cur, d, name);
	return i < 0 ? NULL : rec.cur.v[i].node;
}

/* ---- descriptors ---- */

static void rec_fd_set(int fd, struct rec_node *n)
{
	if (fd < 0)
		return;
	if ((size_t)fd >= rec.fds_cap) {
		if (!n)
			return;
		size_t cap = rec.fds_cap ? rec.fds_cap : 64;
		while (cap <= (size_t)fd)
			cap *= 2;
		struct rec_node **v = realloc(rec.fds, cap * sizeof *v);
		if (!v) {
			rec.broken = true;
			return;
		}
		memset(v + rec.fds_cap, 0, (cap - rec.fds_cap) * sizeof *v);
		rec.fds = v;
		rec.fds_cap = cap;
	}
	rec.fds[fd] = n;
}

/* The node behind `fd`; a descriptor opened before the recording is looked up by its path. */
static struct rec_node *rec_fd_node(int fd)
{
	if (fd < 0)
		return NULL;
	if ((size_t)fd < rec.fds_cap && rec.fds[fd])
		return rec.fds[fd];
	char link[64], target[PATH_MAX];
	snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
	ssize_t l = readlink(link, target, sizeof target - 1);
	if (l <= 0)
		return NULL;
	target[l] = 0; /* an unlinked file reads "... (deleted)": no name, no node */
	struct rec_node *n = rec_lookup(rec_rel(target));
	rec_fd_set(fd, n);
	return n;
}

/* ---- reading a tree in ---- */

static int rec_read_content(const char *path, struct rec_node *n)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_set(err_from_errno(-errno), "record %s: %s", path, strerror(errno));
	int rc = 0;
	for (;;) {
		if (!rec_reserve(n, n->cur_len + 65536)) {
			rc = err_set(STRATA_ENOMEM, "record %s: too big for the model", path);
			break;
		}
		ssize_t r = read(fd, n->cur + n->cur_len, 65536);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = err_set(err_from_errno(-errno), "record %s: %s", path, strerror(errno));
			break;
		}
		if (r == 0)
			break;
		n->cur_len += (size_t)r;
	}
	close(fd);
	if (rc == 0)
		rec_file_sync(n);
	return rc ? rc : rec.broken ? err_set(STRATA_ENOMEM, "record %s", path) : 0;
}

/*
 * Take what exists at `path` into the model as node `*out`; the entries
 * inside a directory are current and durable (it existed before we looked).
 */
static int rec_import(const char *path, struct rec_node **out)
{
	struct stat st;
	if (lstat(path, &st) != 0)
		return err_set(err_from_errno(-errno), "record %s: %s", path, strerror(errno));
	if (S_ISREG(st.st_mode)) {
		if (st.st_nlink > 1)
			return err_set(STRATA_EINVAL, "record %s: hard links are not modelled", path);
		struct rec_node *n = rec_node_new(false, st.st_mode);
		if (!n)
			return err_set(STRATA_ENOMEM, "record %s", path);
		*out = n;
		return rec_read_content(path, n);
	}
	if (!S_ISDIR(st.st_mode))
		return err_set(STRATA_EINVAL, "record %s: only files and directories are modelled", path);
	struct rec_node *d = rec_node_new(true, st.st_mode);
	if (!d)
		return err_set(STRATA_ENOMEM, "record %s", path);
	*out = d;
	DIR *dh = opendir(path);
	if (!dh)
		return err_set(err_from_errno(-errno), "record %s: %s", path, strerror(errno));
	int rc = 0;
	struct dirent *e;
	while (rc == 0 && (e = readdir(dh))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		char child[PATH_MAX];
		if (snprintf(child, sizeof child, "%s/%s", path, e->d_name) >= (int)sizeof child) {
			rc = err_set(STRATA_EINVAL, "record %s/%s: path too long", path, e->d_name);
			break;
		}
		struct rec_node *c = NULL;
		rc = rec_import(child, &c);
		if (c) {
			rec_set(&rec.cur, d, e->d_name, c);
			rec_set(&rec.dur, d, e->d_name, c);
		}
	}
	closedir(dh);
	if (rc == 0 && rec.broken)
		rc = err_set(STRATA_ENOMEM, "record %s", path);
	return rc;
}

/* ---- state ---- */

static void rec_reset(void)
{
	rec_entries_free(&rec.cur);
	rec_entries_free(&rec.dur);
	rec_nodes_free();
	free(rec.fds);
	free(rec.root);
	rec = (struct rec_state){0};
}

int fio_record_start(const char *root)
{
	pthread_mutex_lock(&rec_lock);
	int rc = 0;
	if (rec.active) {
		rc = err_set(STRATA_EINVAL, "record %s: already recording %s", root, rec.root);
		goto out;
	}
	rec_reset();
	rec.root = realpath(root, NULL);
	if (!rec.root) {
		rc = err_set(err_from_errno(-errno), "record %s: %s", root, strerror(errno));
		goto out;
	}
	rec.root_len = strlen(rec.root);
	if (rec.root_len < 2) {
		rc = err_set(STRATA_EINVAL, "record %s: not the whole file system", root);
		goto out;
	}
	struct stat st;
	if (stat(rec.root, &st) != 0 || !S_ISDIR(st.st_mode)) {
		rc = err_set(STRATA_EINVAL, "record %s: not a directory", root);
		goto out;
	}
	if ((rc = rec_import(rec.root, &rec.root_node)))
		goto out;
	rec.active = true;
out:
	if (rc)
		rec_reset();
	pthread_mutex_unlock(&rec_lock);
	return rc;
}

void fio_record_crash_after(uint64_t nth_op)
{
	pthread_mutex_lock(&rec_lock);
	rec.crash_at = nth_op;
	pthread_mutex_unlock(&rec_lock);
}

void fio_record_set_tear(enum fio_tear tear, uint64_t seed)
{
	pthread_mutex_lock(&rec_lock);
	rec.tear = tear;
	rec.tear_rng = seed;
	pthread_mutex_unlock(&rec_lock);
}

uint64_t fio_record_ops(void)
{
	pthread_mutex_lock(&rec_lock);
	uint64_t n = rec.ops;
	pthread_mutex_unlock(&rec_lock);
	return n;
}

bool fio_record_crashed(void)
{
	pthread_mutex_lock(&rec_lock);
	bool d = rec.dead;
	pthread_mutex_unlock(&rec_lock);
	return d;
}

size_t fio_record_torn_len(void)
{
	pthread_mutex_lock(&rec_lock);
	size_t n = rec.torn_len;
	pthread_mutex_unlock(&rec_lock);
	return n;
}

void fio_record_stop(void)
{
	pthread_mutex_lock(&rec_lock);
	rec_reset();
	pthread_mutex_unlock(&rec_lock);
}

/* ---- power loss ---- */

/* Remove everything inside `path` (not `path` itself). */
static int rec_wipe(const char *path)
{
	DIR *dh = opendir(path);
	if (!dh)
		return err_set(err_from_errno(-errno), "powerloss: open %s: %s", path, strerror(errno));
	int rc = 0;
	struct dirent *e;
	while (rc == 0 && (e = readdir(dh))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		char child[PATH_MAX];
		if (snprintf(child, sizeof child, "%s/%s", path, e->d_name) >= (int)sizeof child) {
			rc = err_set(STRATA_EIO, "powerloss: %s/%s: path too long", path, e->d_name);
			break;
		}
		struct stat st;
		if (lstat(child, &st) != 0)
			continue; /* gone meanwhile */
		if (S_ISDIR(st.st_mode)) {
			if ((rc = rec_wipe(child)))
				break;
			if (rmdir(child) != 0)
				rc = err_set(err_from_errno(-errno), "powerloss: rmdir %s: %s", child, strerror(errno));
		} else if (unlink(child) != 0) {
			rc = err_set(err_from_errno(-errno), "powerloss: unlink %s: %s", child, strerror(errno));
		}
	}
	closedir(dh);
	return rc;
}

static int rec_write_new(const char *path, const struct rec_node *n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, n->mode ? n->mode : 0644);
	if (fd < 0)
		return err_set(err_from_errno(-errno), "powerloss: create %s: %s", path, strerror(errno));
	size_t done = 0;
	int rc = 0;
	while (done < n->dur_len) {
		ssize_t w = write(fd, n->dur + done, n->dur_len - done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			rc = err_set(STRATA_EIO, "powerloss: write %s: %s", path, w < 0 ? strerror(errno) : "no progress");
			break;
		}
		done += (size_t)w;
	}
	close(fd);
	return rc;
}

/*
 * Recreate the durable entries of directory node `d` inside `path`. A
 * directory reached a second time (durable entries may hold a directory under
 * two names, or in a cycle, when renames were synced on one side only) is
 * made once; a file reached again becomes a hard link.
 */
static int rec_make(struct rec_node *d, const char *path)
{
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < rec.dur.n; i++) {
		struct rec_entry *e = &rec.dur.v[i];
		if (e->parent != d)
			continue;
		char child[PATH_MAX];
		if (snprintf(child, sizeof child, "%s/%s", path, e->name) >= (int)sizeof child)
			return err_set(STRATA_EIO, "powerloss: %s/%s: path too long", path, e->name);
		struct rec_node *n = e->node;
		if (n->made_path && n->dir)
			continue;
		if (n->made_path) {
			if (link(n->made_path, child) != 0)
				rc = err_set(err_from_errno(-errno), "powerloss: link %s: %s", child, strerror(errno));
			continue;
		}
		n->made_path = strdup(child);
		if (!n->made_path)
			return err_set(STRATA_ENOMEM, "powerloss: %s", child);
		if (!n->dir) {
			rc = rec_write_new(child, n);
		} else if (mkdir(child, n->mode ? n->mode : 0755) != 0) {
			rc = err_set(err_from_errno(-errno), "powerloss: mkdir %s: %s", child, strerror(errno));
		} else {
			rc = rec_make(n, child);
		}
	}
	return rc;
}

int fio_record_powerloss(void)
{
	pthread_mutex_lock(&rec_lock);
	int rc;
	if (!rec.active)
		rc = err_set(STRATA_EINVAL, "powerloss: not recording");
	else if (rec.broken)
		rc = err_set(STRATA_ENOMEM,
		             "powerloss: the model lost track of %s (out of memory or a file past %zu bytes)",
		             rec.root, REC_FILE_MAX);
	else if ((rc = rec_wipe(rec.root)) == 0)
		rc = rec_make(rec.root_node, rec.root);
	rec_reset();
	pthread_mutex_unlock(&rec_lock);
	return rc;
}

/* ---- the seam's hooks ---- */

static uint64_t rec_splitmix(void)
{
	uint64_t z = (rec.tear_rng += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Where a sequential write on `fd` will land. */
static bool rec_seq_off(int fd, const struct rec_node *n, uint64_t *off_out)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0 && (fl & O_APPEND)) {
		*off_out = n->cur_len;
		return true;
	}
	off_t pos = lseek(fd, 0, SEEK_CUR);
	if (pos < 0)
		return false;
	*off_out = (uint64_t)pos;
	return true;
}

/* The dying op is a write: keep a prefix of it in the durable content (fio_record_set_tear). */
static void rec_tear(const struct fio_rec_op *op)
{
	struct rec_node *n = op->node;
	uint64_t off = op->off;
	if (rec.tear == FIO_TEAR_NONE || !n || n->dir || op->len == 0)
		return;
	if (op->kind == FIO_REC_WRITE && !rec_seq_off(op->fd, n, &off))
		return;
	size_t keep;
	if (rec.tear == FIO_TEAR_BYTE) {
		keep = (size_t)(rec_splitmix() % op->len);
	} else {
		/* Cut points: the start, or a sector boundary strictly inside the write. */
		uint64_t first = (off / FIO_RECORD_SECTOR_SIZE + 1) * FIO_RECORD_SECTOR_SIZE;
		uint64_t end = off + op->len;
		uint64_t inner = first < end ? (end - 1 - first) / FIO_RECORD_SECTOR_SIZE + 1 : 0;
		uint64_t pick = rec_splitmix() % (inner + 1);
		keep = pick == 0 ? 0 : (size_t)(first + (pick - 1) * FIO_RECORD_SECTOR_SIZE - off);
	}
	if (keep == 0)
		return;
	size_t cap = n->dur_len;
	if (rec_apply(&n->dur, &n->dur_len, &cap, op->buf, keep, off))
		rec.torn_len = keep;
}

/* Whether `op` changes what a power loss would leave (and so is counted). */
static bool rec_mutating(const struct fio_rec_op *op)
{
	switch (op->kind) {
	case FIO_REC_OPEN:
		if ((op->flags & O_TMPFILE) == O_TMPFILE)
			return false; /* an anonymous file: nothing durable until a link, which the seam lacks */
		return op->creates || ((op->flags & O_TRUNC) && (op->flags & O_ACCMODE) != O_RDONLY);
	case FIO_REC_CLOSE:
		return false;
	default:
		return true;
	}
}

int fio_rec_begin(struct fio_rec_op *op)
{
	op->held = false;
	op->node = NULL;
	op->creates = false;
	op->canon = op->canon2 = NULL;
	pthread_mutex_lock(&rec_lock);
	if (!rec.active)
		goto untracked;

	bool tracked;
	switch (op->kind) {
	case FIO_REC_OPEN:
	case FIO_REC_UNLINK:
	case FIO_REC_MKDIR:
	case FIO_REC_RENAME:
		op->canon = rec_canon(op->path);
		tracked = rec_rel(op->canon) != NULL;
		if (op->kind == FIO_REC_RENAME) {
			op->canon2 = rec_canon(op->path2);
			tracked = tracked || rec_rel(op->canon2) != NULL;
		}
		if (op->kind == FIO_REC_OPEN && tracked) {
			struct rec_node *n = rec_lookup(rec_rel(op->canon));
			op->creates = !n && (op->flags & O_CREAT);
			if (n && n->dir)
				op->flags &= ~O_TRUNC;
		}
		break;
	case FIO_REC_CLOSE:
		tracked = true; /* forget the descriptor, whatever it was */
		break;
	default:
		op->node = rec_fd_node(op->fd);
		tracked = op->node != NULL;
		break;
	}
	if (!tracked)
		goto untracked;
	if (rec_mutating(op)) {
		if (rec.dead)
			goto dead;
		if (rec.crash_at && rec.ops + 1 >= rec.crash_at) {
			rec.dead = true;
			if (op->kind == FIO_REC_PWRITE || op->kind == FIO_REC_WRITE)
				rec_tear(op);
			goto dead;
		}
		rec.ops++;
	}
	op->held = true; /* R4: kept until fio_rec_end */
	return 0;

dead:
	pthread_mutex_unlock(&rec_lock);
	free(op->canon);
	free(op->canon2);
	op->canon = op->canon2 = NULL;
	return STRATA_EIO;
untracked:
	pthread_mutex_unlock(&rec_lock);
	return 0;
}

static void rec_end_open(struct fio_rec_op *op)
{
	const char *rel = rec_rel(op->canon);
	struct rec_node *n = NULL;
	if ((op->flags & O_TMPFILE) == O_TMPFILE) {
		n = rec_node_new(false, 0600);
	} else {
		n = rec_lookup(rel);
		if (n && !n->dir && (op->flags & O_TRUNC))
			rec_resize(n, 0);
		if (!n && op->creates) {
			struct rec_node *d;
			char name[NAME_MAX + 1];
			struct stat st;
			if (rec_parent(rel, &d, name, sizeof name) &&
			    (n = rec_node_new(false, fstat(op->fd, &st) == 0 ? st.st_mode : 0644)))
				rec_set(&rec.cur, d, name, n);
		}
	}
	rec_fd_set(op->fd, n);
}

static void rec_end_rename(struct fio_rec_op *op)
{
	const char *from = rec_rel(op->canon), *to = rec_rel(op->canon2);
	struct rec_node *fd_dir = NULL, *td = NULL, *n = NULL;
	char fname[NAME_MAX + 1], tname[NAME_MAX + 1];
	bool from_ok = from && rec_parent(from, &fd_dir, fname, sizeof fname);
	bool to_ok = to && rec_parent(to, &td, tname, sizeof tname);
	if (from_ok) {
		ssize_t i = rec_find(&rec.cur, fd_dir, fname);
		if (i >= 0) {
			n = rec.cur.v[i].node;
			rec_del_at(&rec.cur, (size_t)i);
		}
	} else if (to_ok && !from) {
		/* Moved in from outside the root: take it as it is now. */
		if (rec_import(op->canon2, &n) != 0)
			rec.broken = true;
	}
	if (to_ok && n)
		rec_set(&rec.cur, td, tname, n);
}

void fio_rec_end(struct fio_rec_op *op, int rc, size_t landed)
{
	if (!op->held)
		goto out;
	struct rec_node *n = op->node;
	switch (op->kind) {
	case FIO_REC_OPEN:
		if (rc == 0)
			rec_end_open(op);
		break;
	case FIO_REC_CLOSE:
		rec_fd_set(op->fd, NULL);
		break;
	case FIO_REC_PWRITE:
		rec_write(n, op->buf, landed, op->off);
		break;
	case FIO_REC_WRITE: {
		off_t pos = landed ? lseek(op->fd, 0, SEEK_CUR) : -1;
		if (pos >= 0 && (uint64_t)pos >= landed)
			rec_write(n, op->buf, landed, (uint64_t)pos - landed);
		break;
	}
	case FIO_REC_FSYNC:
		if (rc == 0 && n->dir)
			rec_dir_sync(n);
		else if (rc == 0)
			rec_file_sync(n);
		break;
	case FIO_REC_FTRUNCATE:
		if (rc == 0 && !n->dir)
			rec_resize(n, op->off);
		break;
	case FIO_REC_RENAME:
		if (rc == 0)
			rec_end_rename(op);
		break;
	case FIO_REC_UNLINK:
		if (rc == 0) {
			struct rec_node *d;
			char name[NAME_MAX + 1];
			if (rec_parent(rec_rel(op->canon), &d, name, sizeof name))
				rec_del(&rec.cur, d, name);
		}
		break;
	case FIO_REC_MKDIR:
		if (rc == 0) {
			/* mkdtemp filled in the template since begin: look again. */
			free(op->canon);
			op->canon = rec_canon(op->path);
			struct rec_node *d, *nd;
			char name[NAME_MAX + 1];
			struct stat st;
			if (rec_parent(rec_rel(op->canon), &d, name, sizeof name) &&
			    (nd = rec_node_new(true, stat(op->path, &st) == 0 ? st.st_mode : 0755)))
				rec_set(&rec.cur, d, name, nd);
		}
		break;
	}
	op->held = false;
	pthread_mutex_unlock(&rec_lock);
out:
	free(op->canon);
	free(op->canon2);
	op->canon = op->canon2 = NULL;
}

#else

/* Release builds have no recorder; ISO C wants a non-empty translation unit. */
typedef int fio_record_compiled_out;

#endif
