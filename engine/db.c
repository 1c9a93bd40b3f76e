/*
 * db.c - the strata_db handle: options, open (lock, manifest, mapping and
 * checking each segment), close, get, stats, and the pool of search scratch.
 *
 * Open must stay O(1) in the number of vectors: it reads the manifest (small)
 * and each segment's header and section table through seg_check(); nothing
 * else of a segment is touched unless STRATA_VERIFY asks for it. Vectors and
 * graph stay in the mapping; the heap holds O(segments).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "db.h"
#include "err.h"
#include "fio.h"
#include "hnsw.h"
#include "le.h"

#define DB_LOCK_NAME "LOCK"

void strata_options_default(strata_options *opts_out)
{
	if (!opts_out)
		return;
	memset(opts_out, 0, sizeof *opts_out);
	opts_out->metric = STRATA_METRIC_L2;
	opts_out->M = 16;
	opts_out->ef_construction = 200;
	opts_out->ef_search = 64;
	opts_out->threads = 0;
	opts_out->seed = 100;
	opts_out->sync_mode = STRATA_SYNC_ALWAYS;
	opts_out->sync_interval_ms = 100;
	opts_out->memtable_max_vectors = 1000000;
	opts_out->memtable_max_bytes = 256ull << 20;
	opts_out->wal_file_bytes = 64ull << 20;
}

void strata_search_options_default(strata_search_options *sopts_out)
{
	if (!sopts_out)
		return;
	memset(sopts_out, 0, sizeof *sopts_out);
	sopts_out->threads = 1;
}

const char *strata_version(void)
{
	return "0.1.0";
}

uint32_t db_cpu_count(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (uint32_t)n : 1;
}

void db_random_bytes(uint8_t *buf, size_t len)
{
	size_t got = 0;
	while (got < len) {
		ssize_t r = getrandom(buf + got, len - got, 0);
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	/* getrandom cannot fail for small requests after boot; keep a fallback anyway. */
	if (got < len) {
		uint64_t x = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
		for (size_t i = got; i < len; i++) {
			x = x * 6364136223846793005ull + 1442695040888963407ull;
			buf[i] = (uint8_t)(x >> 56);
		}
	}
}

int db_check_params(const strata_options *o)
{
	if (o->dim == 0 || o->dim > STRATA_DIM_MAX)
		return err_set(STRATA_EDIM, "dim %u is outside 1..%u", o->dim, STRATA_DIM_MAX);
	if ((unsigned)o->metric > STRATA_METRIC_COSINE)
		return err_set(STRATA_EMETRIC, "unknown metric %d", (int)o->metric);
	if (o->M < STRATA_M_MIN || o->M > STRATA_M_MAX)
		return err_set(STRATA_EINVAL, "M %u is outside %u..%u", o->M, STRATA_M_MIN, STRATA_M_MAX);
	if (o->ef_construction == 0 || o->ef_construction > STRATA_EF_MAX)
		return err_set(STRATA_EINVAL, "ef_construction %u is outside 1..%u", o->ef_construction,
		               STRATA_EF_MAX);
	if (o->ef_search > STRATA_EF_MAX)
		return err_set(STRATA_EINVAL, "ef_search %u is above %u", o->ef_search, STRATA_EF_MAX);
	return 0;
}

/* ---- scratch pool ---------------------------------------------------------- */

static void scratch_free(struct db_scratch *s)
{
	if (!s)
		return;
	hnsw_scratch_free(s->hs);
	free(s->hits);
	free(s->merged);
	free(s->query);
	free(s);
}

struct db_scratch *db_scratch_get(strata_db *db)
{
	pthread_mutex_lock(&db->pool_lock);
	struct db_scratch *s = db->pool_n ? db->pool[--db->pool_n] : NULL;
	pthread_mutex_unlock(&db->pool_lock);
	if (s)
		return s;
	s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->hs = hnsw_scratch_new();
	if (!s->hs) {
		free(s);
		return NULL;
	}
	return s;
}

void db_scratch_put(strata_db *db, struct db_scratch *s)
{
	pthread_mutex_lock(&db->pool_lock);
	if (db->pool_n == db->pool_cap) {
		size_t cap = db->pool_cap ? db->pool_cap * 2 : 8;
		struct db_scratch **p = realloc(db->pool, cap * sizeof *p);
		if (!p) {
			pthread_mutex_unlock(&db->pool_lock);
			scratch_free(s);
			return;
		}
		db->pool = p;
		db->pool_cap = cap;
	}
	db->pool[db->pool_n++] = s;
	pthread_mutex_unlock(&db->pool_lock);
}

/* ---- open / close ---------------------------------------------------------- */

static char *path_join(const char *dir, const char *name)
{
	size_t n = strlen(dir) + 1 + strlen(name) + 1;
	char *p = malloc(n);
	if (p)
		snprintf(p, n, "%s/%s", dir, name);
	return p;
}

static void segment_close(struct db_segment *s)
{
	if (s->map)
		fio_munmap(s->map, s->len);
	if (s->fd >= 0)
		fio_close(s->fd);
	s->map = NULL;
	s->fd = -1;
}

/*
 * A graph walk touches node records at random: the kernel's read-ahead (8 MiB
 * per fault on some disks) would read the whole file on a cold cache for one
 * query (measured: 600 MB read for the first query of a 1M-vector segment;
 * 4-5 MB with MADV_RANDOM). The upper layers and the entry are visited by every
 * query and are small: ask for them up front. Advice only; failure is harmless.
 */
static void advise_mapping(const struct db_segment *s)
{
	long page = sysconf(_SC_PAGESIZE);
	uintptr_t base = (uintptr_t)s->map;
	if (page <= 0 || !s->map || s->len == 0)
		return;
	madvise((void *)base, s->len, MADV_RANDOM);
	const struct seg_section *up[2] = {&s->info.sec[SEG_SEC_UPPER_INDEX],
	                                   &s->info.sec[SEG_SEC_UPPER_LINKS]};
	for (int i = 0; i < 2; i++) {
		if (up[i]->size == 0)
			continue;
		uintptr_t from = (base + up[i]->off) & ~((uintptr_t)page - 1);
		uintptr_t to = base + up[i]->off + up[i]->size;
		madvise((void *)from, to - from, MADV_WILLNEED);
	}
}

/* Map segment `e` of the manifest and check it against the entry and the database. */
static int segment_open(strata_db *db, const struct mf_segment *e, struct db_segment *s)
{
	mf_segment_name(e->seq, s->name, sizeof s->name);
	char *path = path_join(db->dir, s->name);
	if (!path)
		return STRATA_ENOMEM;
	uint64_t size = 0;
	int rc = fio_open(path, O_RDONLY | O_CLOEXEC, 0, &s->fd);
	if (rc == STRATA_ENOTFOUND)
		rc = err_set(STRATA_ECORRUPT, "%s: named by the manifest but missing", s->name);
	if (rc)
		goto out;
	if ((rc = fio_file_size(s->fd, &size, path)))
		goto out;
	if (size != e->file_size) {
		rc = err_set(size < e->file_size ? STRATA_ETRUNCATED : STRATA_ECORRUPT,
		             "%s: %llu bytes, the manifest says %llu", s->name,
		             (unsigned long long)size, (unsigned long long)e->file_size);
		goto out;
	}
	if (size > SIZE_MAX) {
		rc = err_set(STRATA_ELIMIT, "%s: too large to map", s->name);
		goto out;
	}
	s->len = (size_t)size;
	if ((rc = fio_mmap_ro(s->fd, s->len, path, (const void **)&s->map)))
		goto out;
	if ((rc = seg_check(s->map, s->len, &s->info))) {
		err_prefix(rc, s->name);
		goto out;
	}
	const struct seg_info *in = &s->info;
	if (in->header_xxh3 != e->header_xxh3 || in->count != e->count) {
		rc = err_set(STRATA_ECORRUPT, "%s: header does not match its manifest entry (another file?)",
		             s->name);
		goto out;
	}
	if (in->dim != db->mf.dim || in->metric != db->mf.metric || in->M != db->mf.M) {
		rc = err_set(STRATA_ECORRUPT, "%s: dim/metric/M %u/%u/%u differ from the database's %u/%u/%u",
		             s->name, in->dim, in->metric, in->M, db->mf.dim, db->mf.metric, db->mf.M);
		goto out;
	}
	advise_mapping(s);
	if ((db->flags & STRATA_VERIFY) && (rc = seg_verify(in))) {
		err_prefix(rc, s->name);
		goto out;
	}
	hnsw_view_from_segment(in, &s->view);
out:
	free(path);
	return rc;
}

static int create_empty(strata_db *db, const strata_options *opts)
{
	int rc = db_check_params(opts);
	if (rc)
		return rc;
	struct mf_manifest *mf = &db->mf;
	memset(mf, 0, sizeof *mf);
	mf->dim = opts->dim;
	mf->metric = (uint32_t)opts->metric;
	mf->M = opts->M;
	mf->ef_construction = opts->ef_construction;
	mf->ef_search = opts->ef_search ? opts->ef_search : 64;
	mf->generation = 1;
	mf->next_seq = 1;
	db_random_bytes(mf->db_uuid, sizeof mf->db_uuid);
	return mf_commit(db->dir, mf);
}

static int take_lock(strata_db *db)
{
	char *path = path_join(db->dir, DB_LOCK_NAME);
	if (!path)
		return STRATA_ENOMEM;
	int rc = fio_open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644, &db->lock_fd);
	if (!rc && flock(db->lock_fd, LOCK_EX | LOCK_NB) != 0) {
		rc = errno == EWOULDBLOCK
		             ? err_set(STRATA_EBUSY, "%s: another process has the database open for writing",
		                       db->dir)
		             : err_set(err_from_errno(-errno), "%s: flock: %s", path, strerror(errno));
	}
	free(path);
	return rc;
}

static void db_free(strata_db *db)
{
	if (!db)
		return;
	for (uint32_t i = 0; i < db->nseg; i++)
		segment_close(&db->segs[i]);
	free(db->segs);
	mf_free(&db->mf);
	if (db->lock_fd >= 0)
		fio_close(db->lock_fd); /* closing releases the flock */
	for (size_t i = 0; i < db->pool_n; i++)
		scratch_free(db->pool[i]);
	free(db->pool);
	pthread_mutex_destroy(&db->pool_lock);
	free(db->dir);
	free(db);
}

int strata_open(const char *dir, const strata_options *opts, unsigned flags, strata_db **db_out)
{
	err_clear();
	if (!dir || !*dir || !db_out)
		return err_set(STRATA_EINVAL, "strata_open: null or empty argument");
	if (flags & ~(unsigned)(STRATA_CREATE | STRATA_READONLY | STRATA_VERIFY))
		return err_set(STRATA_EINVAL, "strata_open: unknown flags 0x%x", flags);
	if ((flags & STRATA_CREATE) && (flags & STRATA_READONLY))
		return err_set(STRATA_EINVAL, "strata_open: STRATA_CREATE and STRATA_READONLY together");
	strata_options defaults;
	if (!opts) {
		strata_options_default(&defaults);
		opts = &defaults;
	}

	strata_db *db = calloc(1, sizeof *db);
	if (!db)
		return err_set(STRATA_ENOMEM, "strata_open");
	db->lock_fd = -1;
	db->flags = flags;
	pthread_mutex_init(&db->pool_lock, NULL);
	db->dir = strdup(dir);
	int rc = STRATA_ENOMEM;
	if (!db->dir)
		goto fail;

	struct stat st;
	if (stat(dir, &st) != 0) {
		if (errno != ENOENT || !(flags & STRATA_CREATE)) {
			rc = err_set(errno == ENOENT ? STRATA_ENOTFOUND : err_from_errno(-errno),
			             "%s: %s", dir, strerror(errno));
			goto fail;
		}
		if ((rc = fio_mkdir(dir, 0755)))
			goto fail;
	} else if (!S_ISDIR(st.st_mode)) {
		rc = err_set(STRATA_ENOTDB, "%s: not a directory (a database is a directory)", dir);
		goto fail;
	}
	if (!(flags & STRATA_READONLY) && (rc = take_lock(db)))
		goto fail;

	rc = mf_load(dir, &db->mf);
	if (rc == STRATA_ENOTFOUND) {
		if (!(flags & STRATA_CREATE)) {
			rc = err_set(STRATA_ENOTFOUND, "%s: no database here (no MANIFEST)", dir);
			goto fail;
		}
		rc = create_empty(db, opts);
	} else if (rc) {
		err_prefix(rc, MF_FILE_NAME);
	}
	if (rc)
		goto fail;

	if (opts->dim && opts->dim != db->mf.dim) {
		rc = err_set(STRATA_EDIM, "%s: the database has dim %u, the options ask for %u", dir,
		             db->mf.dim, opts->dim);
		goto fail;
	}
	/* The metric is only compared when the caller states a dim, i.e. states a schema. */
	if (opts->dim && (uint32_t)opts->metric != db->mf.metric) {
		rc = err_set(STRATA_EMETRIC, "%s: the database uses metric %u, the options ask for %d", dir,
		             db->mf.metric, (int)opts->metric);
		goto fail;
	}
	db->ef_search = opts->ef_search ? opts->ef_search : db->mf.ef_search;

	db->segs = calloc(db->mf.segment_count ? db->mf.segment_count : 1, sizeof *db->segs);
	if (!db->segs) {
		rc = STRATA_ENOMEM;
		goto fail;
	}
	for (uint32_t i = 0; i < db->mf.segment_count; i++) {
		db->segs[i].fd = -1;
		db->nseg = i + 1;
		if ((rc = segment_open(db, &db->mf.segments[i], &db->segs[i])))
			goto fail;
		db->vectors += db->segs[i].info.count;
		if (db->segs[i].info.max_level > db->max_level)
			db->max_level = db->segs[i].info.max_level;
	}
	*db_out = db;
	return 0;
fail:
	db_free(db);
	return rc;
}

int strata_close(strata_db *db)
{
	db_free(db);
	return 0;
}

/* ---- get / stats ----------------------------------------------------------- */

int strata_get(strata_db *db, uint64_t id, float *vector_out)
{
	err_clear();
	if (!db || !vector_out)
		return err_set(STRATA_EINVAL, "strata_get: null argument");
	/* Newest segment first: it holds the newest copy of an id. */
	for (uint32_t i = db->nseg; i-- > 0;) {
		const struct db_segment *s = &db->segs[i];
		uint32_t node;
		int rc = seg_id_find(&s->info, id, &node);
		if (rc == STRATA_ENOTFOUND)
			continue;
		if (rc)
			return err_prefix(rc, s->name);
		memcpy(vector_out, hnsw_vec(&s->view, node), (size_t)s->info.dim * sizeof(float));
		return 0;
	}
	return err_set(STRATA_ENOTFOUND, "id %llu is not in the database", (unsigned long long)id);
}

int strata_stats(strata_db *db, struct strata_stats *out)
{
	err_clear();
	if (!db || !out)
		return err_set(STRATA_EINVAL, "strata_stats: null argument");
	memset(out, 0, sizeof *out);
	out->dim = db->mf.dim;
	out->metric = (strata_metric)db->mf.metric;
	out->M = db->mf.M;
	out->ef_construction = db->mf.ef_construction;
	out->ef_search = db->ef_search;
	out->segments = db->nseg;
	out->vectors = db->vectors;
	out->max_level = db->max_level;
	uint64_t files = 0;
	for (uint32_t i = 0; i < db->nseg; i++) {
		out->mapped_bytes += db->segs[i].len;
		files += db->segs[i].len;
	}
	out->file_bytes = files;
	out->searches = atomic_load(&db->searches);
	out->segments_searched = atomic_load(&db->segments_searched);
	out->distance_evals = atomic_load(&db->dist_evals);
	out->filtered_graph = atomic_load(&db->filtered_graph);
	out->filtered_scans = atomic_load(&db->filtered_scans);
	out->readonly = (db->flags & STRATA_READONLY) != 0;
	return 0;
}
