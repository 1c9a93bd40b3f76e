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

#include "compactor.h"
#include "db.h"
#include "err.h"
#include "fio.h"
#include "hnsw.h"
#include "le.h"
#include "tombstone.h"
#include "wal.h"

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
	opts_out->memtable_max_unindexed = 4096;
	opts_out->merge_factor = 4;
	opts_out->max_segment_vectors = 0;
	opts_out->max_segments = 0;
	opts_out->merge_into_largest_pct = 25;
	opts_out->tombstone_pct = 20;
	opts_out->compaction_threads = 0;
	opts_out->disable_background_merges = false;
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
	free(s->best);
	free(s->query);
	hnsw_trace_free(&s->trace);
	mt_seen_free(&s->seen);
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

char *db_path(const strata_db *db, const char *name)
{
	return path_join(db->dir, name);
}

uint64_t *db_bits_dup(const uint64_t *src, size_t words)
{
	if (!src)
		return NULL;
	uint64_t *b = malloc((words ? words : 1) * sizeof *b);
	if (b)
		memcpy(b, src, words * sizeof *b);
	return b;
}

void db_segment_unref(struct db_segment *s)
{
	if (!s || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
		return;
	if (atomic_load(&s->retired)) {
		compactor_retire(s->db, s->name);
		if (s->entry.tomb_gen) {
			char name[TOMB_NAME_LEN + 1];
			tomb_file_name(s->entry.seq, s->entry.tomb_gen, name, sizeof name);
			compactor_retire(s->db, name);
		}
	}
	if (s->map)
		fio_munmap(s->map, s->len);
	if (s->fd >= 0)
		fio_close(s->fd);
	free(s->tomb);
	free(s->tomb_snap);
	free(s->tomb_disk);
	seg_anchors_free(atomic_load_explicit(&s->anchors, memory_order_acquire));
	free(s);
}

uint32_t db_version_pos(const struct db_version *v, const struct db_segment *s)
{
	for (uint32_t i = 0; i < v->nseg; i++)
		if (v->segs[i] == s)
			return i;
	return UINT32_MAX;
}

uint64_t db_segment_live(const struct db_segment *s)
{
	return s->info.count - atomic_load_explicit(&s->tomb_n, memory_order_relaxed);
}

struct db_segment *db_largest(const struct db_version *v, uint64_t *live_out)
{
	struct db_segment *big = NULL;
	uint64_t big_live = 0;
	for (uint32_t i = 0; i < v->nseg; i++) {
		uint64_t live = db_segment_live(v->segs[i]);
		if (!big || live > big_live) {
			big = v->segs[i];
			big_live = live;
		}
	}
	*live_out = big_live;
	return big;
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

void db_segment_warm(const struct db_segment *s)
{
#ifdef MADV_POPULATE_READ
	/*
	 * A segment this process just wrote is in the page cache, but every page
	 * of the new mapping still costs its first reader a fault: fill the page
	 * tables here, in the flusher's or compactor's thread, rather than in the
	 * queries that meet it first (their p99 showed it). Best effort (Linux
	 * 5.14+); never for segments found at open, which must stay O(1).
	 */
	if (s->map && s->len)
		madvise((void *)(uintptr_t)s->map, s->len, MADV_POPULATE_READ);
#else
	(void)s;
#endif
}

/* The deletion file named by the entry, as tombstone bits (O(count / 8) bytes: small next to the segment). */
static int segment_load_tombs(strata_db *db, struct db_segment *s)
{
	size_t words = (size_t)(s->info.count / 64 + 1);
	/*
	 * A read-only handle never deletes: without a deletion file it needs no
	 * bits at all (seg_is_dead accepts NULL), which keeps the heap after
	 * opening O(segments), not O(vectors).
	 */
	if (s->entry.tomb_gen == 0 && (db->flags & STRATA_READONLY))
		return 0;
	s->tomb = calloc(words, sizeof *s->tomb);
	if (!s->tomb)
		return err_set(STRATA_ENOMEM, "%s: tombstones", s->name);
	if (s->entry.tomb_gen == 0)
		return 0;
	uint64_t *bits = NULL, deleted = 0;
	char name[TOMB_NAME_LEN + 1];
	tomb_file_name(s->entry.seq, s->entry.tomb_gen, name, sizeof name);
	char *path = path_join(db->dir, name);
	if (!path)
		return STRATA_ENOMEM;
	struct stat st;
	bool missing = stat(path, &st) != 0 && errno == ENOENT;
	free(path);
	if (missing) /* a read-only opener may have raced a flush: see strata_open */
		return err_set(STRATA_ENOTFOUND, "%s: named by the manifest but missing", name);
	int rc = tomb_load(db->dir, s->entry.seq, s->entry.header_xxh3, s->entry.tomb_gen,
	                   s->info.count, &bits, &deleted);
	if (rc)
		return rc;
	for (uint64_t i = 0; i < tomb_words(s->info.count); i++) /* the file's words: ceil(count / 64) */
		atomic_init(&s->tomb[i], bits[i]);
	/* Every bitmap of a segment has count / 64 + 1 words (tomb_load's has ceil(count / 64)). */
	s->tomb_disk = calloc(words, sizeof *s->tomb_disk);
	if (!s->tomb_disk) {
		free(bits);
		return err_set(STRATA_ENOMEM, "%s: tombstones", s->name);
	}
	memcpy(s->tomb_disk, bits, tomb_words(s->info.count) * sizeof *bits);
	free(bits);
	atomic_init(&s->tomb_n, deleted);
	atomic_init(&s->tomb_saved, deleted);
	return 0;
}

int db_segment_open(strata_db *db, const struct mf_segment *e, struct db_segment **out)
{
	struct db_segment *s = calloc(1, sizeof *s);
	if (!s)
		return err_set(STRATA_ENOMEM, "segment");
	atomic_init(&s->refs, 1);
	s->db = db;
	s->fd = -1;
	s->entry = *e;
	mf_segment_name(e->seq, s->name, sizeof s->name);
	char *path = path_join(db->dir, s->name);
	if (!path) {
		free(s);
		return STRATA_ENOMEM;
	}
	uint64_t size = 0;
	int rc = fio_open(path, O_RDONLY | O_CLOEXEC, 0, &s->fd);
	if (rc == STRATA_ENOTFOUND)
		rc = err_set(STRATA_ENOTFOUND, "%s: named by the manifest but missing", s->name);
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
	/* db->dim etc., not db->mf: a flush or merge may be replacing mf meanwhile. */
	if (in->dim != db->dim || in->metric != db->metric || in->M != db->M) {
		rc = err_set(STRATA_ECORRUPT, "%s: dim/metric/M %u/%u/%u differ from the database's %u/%u/%u",
		             s->name, in->dim, in->metric, in->M, db->dim, db->metric, db->M);
		goto out;
	}
	advise_mapping(s);
	if ((db->flags & STRATA_VERIFY) && (rc = seg_verify(in))) {
		err_prefix(rc, s->name);
		goto out;
	}
	hnsw_view_from_segment(in, &s->view);
	rc = segment_load_tombs(db, s);
out:
	free(path);
	if (rc)
		db_segment_unref(s);
	else
		*out = s;
	return rc;
}

/* ---- versions ------------------------------------------------------------- */

struct db_version *db_version_new(uint32_t nseg)
{
	struct db_version *v = calloc(1, sizeof *v);
	if (!v)
		return NULL;
	v->segs = calloc(nseg ? nseg : 1, sizeof *v->segs);
	if (!v->segs) {
		free(v);
		return NULL;
	}
	atomic_init(&v->refs, 1);
	return v;
}

static void version_free(struct db_version *v)
{
	for (uint32_t i = 0; i < v->nseg; i++)
		db_segment_unref(v->segs[i]);
	free(v->segs);
	mt_unref(v->frozen);
	mt_unref(v->active);
	free(v);
}

struct db_version *db_pin(strata_db *db)
{
	pthread_mutex_lock(&db->ver_lock);
	struct db_version *v = db->cur;
	atomic_fetch_add_explicit(&v->refs, 1, memory_order_relaxed);
	pthread_mutex_unlock(&db->ver_lock);
	return v;
}

void db_unpin(strata_db *db, struct db_version *v)
{
	(void)db;
	if (v && atomic_fetch_sub_explicit(&v->refs, 1, memory_order_acq_rel) == 1)
		version_free(v);
}

void db_install(strata_db *db, struct db_version *v)
{
	pthread_mutex_lock(&db->ver_lock);
	struct db_version *old = db->cur;
	db->cur = v;
	pthread_mutex_unlock(&db->ver_lock);
	db_unpin(db, old);
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
	db_writer_stop(db);
	if (db->cur)
		db_unpin(db, db->cur);
	mf_free(&db->mf);
	free(db->frozen_drop);
	if (db->lock_fd >= 0)
		fio_close(db->lock_fd); /* closing releases the flock */
	for (size_t i = 0; i < db->pool_n; i++)
		scratch_free(db->pool[i]);
	free(db->pool);
	pthread_mutex_destroy(&db->pool_lock);
	pthread_mutex_destroy(&db->ver_lock);
	pthread_mutex_destroy(&db->mf_lock);
	pthread_rwlock_destroy(&db->write_lock);
	pthread_mutex_destroy(&db->flush_lock);
	pthread_cond_destroy(&db->flush_cond);
	pthread_cond_destroy(&db->work_cond);
	pthread_cond_destroy(&db->index_cond);
	free(db->dir);
	free(db);
}

/* The segments of the manifest, mapped, as the first version. */
static int open_segments(strata_db *db)
{
	struct db_version *v = db_version_new(db->mf.segment_count);
	if (!v)
		return err_set(STRATA_ENOMEM, "version");
	int rc = 0;
	for (uint32_t i = 0; i < db->mf.segment_count && !rc; i++) {
		if (!(rc = db_segment_open(db, &db->mf.segments[i], &v->segs[i])))
			v->nseg = i + 1;
	}
	if (rc) {
		db_unpin(db, v);
		return rc;
	}
	db->cur = v;
	return 0;
}

/* Stop a writer's threads and close its log (wal_close's code); nothing for a reader. */
static int writer_shutdown(strata_db *db)
{
	db_writer_stop(db);
	int rc = db->wal ? wal_close(db->wal) : 0;
	db->wal = NULL;
	return rc;
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
	db->opts = *opts;
	pthread_mutex_init(&db->pool_lock, NULL);
	pthread_mutex_init(&db->ver_lock, NULL);
	pthread_mutex_init(&db->mf_lock, NULL);
	pthread_rwlockattr_t ra;
	pthread_rwlockattr_init(&ra);
	pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&db->write_lock, &ra);
	pthread_rwlockattr_destroy(&ra);
	pthread_mutex_init(&db->flush_lock, NULL);
	pthread_cond_init(&db->flush_cond, NULL);
	pthread_cond_init(&db->work_cond, NULL);
	pthread_cond_init(&db->index_cond, NULL);
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
	db->dim = db->mf.dim;
	db->metric = db->mf.metric;
	db->M = db->mf.M;
	db->ef_construction = db->mf.ef_construction;
	atomic_store(&db->checkpoint_lsn, db->mf.checkpoint_lsn);
	atomic_store(&db->next_seq, db->mf.next_seq);

	/*
	 * A read-only reader races the writer's flushes: a segment or deletion file
	 * named by the manifest it read may be replaced by the time it opens it.
	 * A missing file under a manifest that has changed since is that race:
	 * read the new manifest and try again.
	 */
	for (int attempt = 0;; attempt++) {
		rc = open_segments(db);
		if (rc != STRATA_ENOTFOUND || !(flags & STRATA_READONLY) || attempt == 8)
			break;
		struct mf_manifest again;
		if (mf_load(dir, &again) != 0)
			break;
		bool changed = again.generation != db->mf.generation;
		if (!changed) {
			mf_free(&again);
			break;
		}
		mf_free(&db->mf);
		db->mf = again;
		atomic_store(&db->next_seq, db->mf.next_seq);
	}
	if (rc == STRATA_ENOTFOUND) /* a file the manifest names is gone: damage, not absence */
		rc = err_set(STRATA_ECORRUPT, "%s", err_detail());
	if (rc)
		goto fail;
	if (!(flags & STRATA_READONLY) && (rc = db_writer_start(db))) {
		writer_shutdown(db); /* it may have started threads and opened the log */
		goto fail;
	}
	*db_out = db;
	return 0;
fail:
	db_free(db);
	return rc;
}

int strata_close(strata_db *db)
{
	err_clear();
	if (!db)
		return 0;
	int rc = writer_shutdown(db);
	db_free(db);
	return rc;
}

/* ---- get / stats ----------------------------------------------------------- */

int strata_get(strata_db *db, uint64_t id, float *vector_out)
{
	err_clear();
	if (!db || !vector_out)
		return err_set(STRATA_EINVAL, "strata_get: null argument");
	struct db_version *v = db_pin(db);
	int rc = STRATA_ENOTFOUND;
	size_t bytes = (size_t)db->dim * sizeof(float);
	/* Newest first: the active memtable, the frozen one, then segments newest to oldest. */
	struct memtable *mts[2] = {v->active, v->frozen};
	for (int m = 0; m < 2 && rc == STRATA_ENOTFOUND; m++) {
		if (!mts[m])
			continue;
		uint64_t lsn = 0;
		uint32_t row = mt_find(mts[m], id, &lsn);
		struct hnsw_view view;
		if (row != MT_NO_ROW) {
			hnsw_graph_view_live(mts[m]->g, &view);
			memcpy(vector_out, hnsw_vec(&view, row), bytes);
			rc = 0;
		} else if (lsn) {
			break; /* deleted here, after every older copy */
		}
	}
	for (uint32_t i = v->nseg; rc == STRATA_ENOTFOUND && i-- > 0;) {
		const struct db_segment *s = v->segs[i];
		uint32_t node;
		int r = seg_id_find(&s->info, id, &node);
		if (r == STRATA_ENOTFOUND || (!r && seg_is_dead(s, node)))
			continue;
		if (r) {
			rc = err_prefix(r, s->name);
			break;
		}
		memcpy(vector_out, hnsw_vec(&s->view, node), bytes);
		rc = 0;
	}
	db_unpin(db, v);
	if (rc == STRATA_ENOTFOUND)
		err_set(STRATA_ENOTFOUND, "id %llu is not in the database", (unsigned long long)id);
	return rc;
}

int strata_stats(strata_db *db, struct strata_stats *out)
{
	err_clear();
	if (!db || !out)
		return err_set(STRATA_EINVAL, "strata_stats: null argument");
	memset(out, 0, sizeof *out);
	out->dim = db->dim;
	out->metric = (strata_metric)db->metric;
	out->M = db->M;
	out->ef_construction = db->ef_construction;
	out->ef_search = db->ef_search;
	struct db_version *v = db_pin(db);
	out->segments = v->nseg;
	uint64_t files = 0;
	for (uint32_t i = 0; i < v->nseg; i++) {
		const struct db_segment *s = v->segs[i];
		out->mapped_bytes += s->len;
		files += s->len;
		out->vectors += s->info.count - atomic_load(&s->tomb_n);
		out->tombstones += atomic_load(&s->tomb_n);
		if (s->info.max_level > out->max_level)
			out->max_level = s->info.max_level;
	}
	struct memtable *mts[2] = {v->active, v->frozen};
	for (int m = 0; m < 2; m++) {
		if (!mts[m])
			continue;
		out->vectors += mt_live(mts[m]);
		out->memtable_vectors += mt_live(mts[m]);
		out->memtable_bytes += mt_bytes(mts[m]);
		out->memtable_unindexed += mt_rows(mts[m]) - hnsw_graph_indexed(mts[m]->g);
	}
	out->flush_pending = v->frozen != NULL;
	db_unpin(db, v);
	out->file_bytes = files;
	out->upserts = atomic_load(&db->upserts);
	out->deletes = atomic_load(&db->deletes);
	out->flushes = atomic_load(&db->flushes);
	out->write_stalls = atomic_load(&db->write_stalls);
	out->write_stall_ms = atomic_load(&db->stall_ns) / 1000000;
	out->replay_records = db->replay_records;
	out->replay_bytes = db->replay_bytes;
	out->replay_torn_bytes = db->replay_torn_bytes;
	out->replay_seconds = db->replay_seconds;
	out->checkpoint_lsn = atomic_load(&db->checkpoint_lsn);
	if (db->wal) {
		struct wal_stats ws;
		wal_stats(db->wal, &ws);
		out->wal_files = ws.files;
		out->wal_bytes = ws.bytes;
		out->wal_fsyncs = ws.fsyncs;
		out->wal_io_uring = ws.io_uring;
		out->last_lsn = wal_last_lsn(db->wal);
	}
	out->write_error = atomic_load(&db->failed);
	if (out->write_error) {
		snprintf(out->write_error_detail, sizeof out->write_error_detail, "%s", db->fail_detail);
	} else if (db->wal) {
		pthread_mutex_lock(&db->flush_lock);
		out->write_error = db->bg_error;
		if (db->bg_error)
			snprintf(out->write_error_detail, sizeof out->write_error_detail, "flush: %.240s",
			         db->bg_detail);
		pthread_mutex_unlock(&db->flush_lock);
	}
	out->flush_bytes = atomic_load(&db->flush_bytes);
	compactor_stats(db, out);
	out->searches = atomic_load(&db->searches);
	out->segments_searched = atomic_load(&db->segments_searched);
	out->distance_evals = atomic_load(&db->dist_evals);
	out->distance_evals_first = atomic_load(&db->dist_evals_first);
	out->filtered_graph = atomic_load(&db->filtered_graph);
	out->filtered_scans = atomic_load(&db->filtered_scans);
	out->readonly = (db->flags & STRATA_READONLY) != 0;
	return 0;
}
