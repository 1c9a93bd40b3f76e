/*
 * fuzz_wal.c - any byte string, as the one WAL file of a database directory,
 * is either refused by recovery with a data error and a detail, or replays;
 * what replays is consistent, and a recovery that cut a torn tail leaves a
 * log that the next recovery reads whole.
 *
 * The input is written as <tmp>/wal-<first_lsn>.log (first_lsn read from
 * header bytes 32..39 when there are that many and they are not 0, else 1),
 * for a database of uuid FZ_WAL_UUID and dim FZ_WAL_DIM (fuzz/make_seeds.c
 * writes the seeds with the same). Properties checked on every input:
 *   - wal_scan_dir and wal_recover (read-only) return 0 or a data error with
 *     a detail, and agree: same verdict, same whole-record count;
 *   - every replayed record has the next LSN (consecutive from after_lsn + 1),
 *     an 8-aligned payload that the upsert/delete views accept, and all its
 *     ids and vectors can be read (ASan checks the bounds);
 *   - recovery for real gives the same result as read-only, and afterwards a
 *     read-only recovery finds no torn tail, the same records and last LSN (or,
 *     for a torn header, no file at all).
 * Then the same bytes go through the engine, as issue 5 asks ("a directory
 * with a fuzzed log file after a valid manifest"): the directory is emptied,
 * a valid MANIFEST (no segment, this uuid and dim, checkpoint_lsn = after,
 * metric l2/ip/cosine from the input's hash) is committed beside the WAL file,
 * and the database is opened for writing with a small memtable (so replay
 * freezes and flushes into segments part-way). Properties:
 *   - strata_open returns 0 or a data error with a detail; a WAL that
 *     recovery refused is refused by the engine with the same code, and a WAL
 *     that recovery accepted is refused only for values the engine's own
 *     writers could never log (a data error, never ENOMEM, EIO or a crash);
 *   - what opens holds exactly what the replayed records say (the harness
 *     keeps the newest upsert or delete of every id): strata_get returns that
 *     vector bit for bit, or ENOTFOUND for a deleted id; stats count the
 *     replayed records and the torn bytes that recovery reported;
 *   - searches return 0 with live ids, distinct, closest first, STRATA_NO_ID
 *     only after the last hit;
 *   - after close, a second writer open replays what is left (no torn tail)
 *     and holds the same vectors.
 * With -Dfuzz_no_checksums=true (the *_nock executables) the checksums pass.
 */
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include "distance.h"
#include "fuzz_helpers.h"
#include "le.h"
#include "manifest.h"
#include "wal.h"
#include "wal_record.h"

/* Keep in step with fuzz/make_seeds.c (wal seeds). */
static const uint8_t FZ_WAL_UUID[16] = {0x57, 0x41, 0x4c, 0x2d, 0x66, 0x75, 0x7a, 0x7a,
                                        0x2d, 0x73, 0x65, 0x65, 0x64, 0x2d, 0x30, 0x31};
#define FZ_WAL_DIM 3u

static char fz_dir[512];

static void fz_clear(void);

/* At exit: leave no work directory behind in /dev/shm. */
static void fz_cleanup(void)
{
	fz_clear();
	rmdir(fz_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	/* The log's writer is not under test here: skip io_uring's per-open ring setup (~20% per input). */
	setenv("STRATA_WAL_IO", "pwrite", 0);
	const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
	snprintf(fz_dir, sizeof fz_dir, "%s/strata-fuzz-wal-XXXXXX", base ? base : "/tmp");
	FZ_ASSERT(mkdtemp(fz_dir) != NULL, "mkdtemp %s", fz_dir);
	atexit(fz_cleanup);
	return 0;
}

/* Remove every file of the work directory (the previous input's). */
static void fz_clear(void)
{
	DIR *d = opendir(fz_dir);
	FZ_ASSERT(d != NULL, "opendir %s", fz_dir);
	struct dirent *e;
	char p[1024];
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof p, "%s/%s", fz_dir, e->d_name);
		unlink(p);
	}
	closedir(d);
}

struct fz_replay {
	uint64_t n, next;
	uint64_t sum; /* of every id and vector bit: makes the reads real */
	bool model;   /* keep every row in fz_ops (the read-only pass of the engine stage) */
};

/* The rows replayed, in LSN order: the newest of an id decides what the database holds. */
struct fz_op {
	uint64_t id;
	bool deleted;
	float v[FZ_WAL_DIM];
};
static struct fz_op *fz_ops;
static size_t fz_ops_n, fz_ops_cap;

static void fz_op_put(uint64_t id, bool deleted, const float *v)
{
	if (fz_ops_n == fz_ops_cap) {
		fz_ops_cap = fz_ops_cap ? fz_ops_cap * 2 : 256;
		fz_ops = realloc(fz_ops, fz_ops_cap * sizeof *fz_ops);
		FZ_ASSERT(fz_ops != NULL, "out of memory for %zu rows", fz_ops_cap);
	}
	struct fz_op *o = &fz_ops[fz_ops_n++];
	o->id = id;
	o->deleted = deleted;
	if (v)
		memcpy(o->v, v, sizeof o->v);
}

static int fz_apply(void *ctx, uint64_t lsn, unsigned type, const uint8_t *payload, size_t len)
{
	struct fz_replay *r = ctx;
	FZ_ASSERT(lsn == r->next, "lsn %llu replayed where %llu is next", (unsigned long long)lsn,
	          (unsigned long long)r->next);
	FZ_ASSERT((uintptr_t)payload % 8 == 0, "payload not 8-aligned");
	uint32_t n;
	const uint64_t *ids;
	if (type == WAL_REC_UPSERT) {
		const float *v;
		FZ_ASSERT(walrec_upsert_view(payload, len, FZ_WAL_DIM, &n, &ids, &v) == 0,
		          "replayed upsert refused by its view");
		for (uint64_t i = 0; i < (uint64_t)n * FZ_WAL_DIM; i++) {
			uint32_t bits;
			memcpy(&bits, &v[i], 4);
			r->sum += bits;
		}
		for (uint32_t i = 0; r->model && i < n; i++)
			fz_op_put(ids[i], false, v + (size_t)i * FZ_WAL_DIM);
	} else {
		FZ_ASSERT(type == WAL_REC_DELETE, "replayed type %u", type);
		FZ_ASSERT(walrec_delete_view(payload, len, &n, &ids) == 0, "replayed delete refused");
		for (uint32_t i = 0; r->model && i < n; i++)
			fz_op_put(ids[i], true, NULL);
	}
	for (uint32_t i = 0; i < n; i++)
		r->sum += ids[i];
	r->n++;
	r->next++;
	return 0;
}

static int fz_count_file(void *ctx, const struct wal_file_info *f)
{
	struct wal_file_info *out = ctx;
	*out = *f;
	return 0;
}

static int fz_recover(const struct wal_config *c, uint64_t after, bool ro, struct wal_recovery *res,
                      struct fz_replay *rp, bool model)
{
	memset(rp, 0, sizeof *rp);
	rp->model = model;
	if (model)
		fz_ops_n = 0;
	rp->next = after + 1;
	err_clear();
	int rc = wal_recover(c, after, ro, fz_apply, rp, res);
	if (rc)
		FZ_ASSERT_DATA_ERROR(rc, ro ? "wal_recover (read-only)" : "wal_recover");
	return rc;
}

/* Write the input as the WAL file of the (emptied) work directory. */
static void fz_write_wal(const uint8_t *data, size_t size, uint64_t first)
{
	char name[WAL_FILE_NAME_LEN + 1], path[1024];
	walrec_file_name(first, name, sizeof name);
	snprintf(path, sizeof path, "%s/%s", fz_dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	FZ_ASSERT(fd >= 0, "create %s", path);
	FZ_ASSERT(write(fd, data, size) == (ssize_t)size, "write %s", path);
	close(fd);
}

/* The newest row of `id` in fz_ops, or NULL if none. */
static const struct fz_op *fz_newest(uint64_t id)
{
	for (size_t i = fz_ops_n; i-- > 0;)
		if (fz_ops[i].id == id)
			return &fz_ops[i];
	return NULL;
}

/* The database holds exactly the newest row of every id the replay named. */
static void fz_check_contents(strata_db *db, bool cosine, const char *when)
{
	uint64_t live = 0;
	float got[FZ_WAL_DIM], want[FZ_WAL_DIM];
	for (size_t i = 0; i < fz_ops_n; i++) {
		const struct fz_op *o = &fz_ops[i];
		if (fz_newest(o->id) != o)
			continue; /* an older row of the id */
		int rc = strata_get(db, o->id, got);
		if (o->deleted) {
			FZ_ASSERT(rc == STRATA_ENOTFOUND, "%s: id %llu was deleted last, get says %d", when,
			          (unsigned long long)o->id, rc);
			continue;
		}
		live++;
		FZ_ASSERT(rc == 0, "%s: id %llu was upserted last, get says %d", when,
		          (unsigned long long)o->id, rc);
		/* Cosine: the graph stores what it is given normalised (idempotent for what writers log). */
		memcpy(want, o->v, sizeof want);
		if (cosine)
			dist_normalize(want, FZ_WAL_DIM);
		for (unsigned j = 0; j < FZ_WAL_DIM; j++)
			FZ_ASSERT(fz_same_float(got[j], want[j]), "%s: id %llu component %u is %a, logged %a",
			          when, (unsigned long long)o->id, j, (double)got[j], (double)o->v[j]);
	}
	struct strata_stats st;
	FZ_ASSERT(strata_stats(db, &st) == 0, "stats");
	FZ_ASSERT(st.vectors == live, "%s: stats count %llu live vectors, the log leaves %llu", when,
	          (unsigned long long)st.vectors, (unsigned long long)live);
}

static void fz_check_search(strata_db *db, struct fz_rng *r)
{
	enum { K_MAX = 16 };
	uint64_t ids[K_MAX];
	float dists[K_MAX];
	float q[FZ_WAL_DIM];
	for (int round = 0; round < 2; round++) {
		for (unsigned j = 0; j < FZ_WAL_DIM; j++)
			q[j] = round == 0 ? fz_float(r) : (float)(fz_u32(r) % 2001) / 1000.0f - 1.0f;
		uint32_t k = 1 + fz_u32(r) % K_MAX;
		strata_search_options so;
		strata_search_options_default(&so);
		so.ef = fz_u32(r) % 64;
		int rc = strata_search(db, q, 1, k, &so, ids, dists);
		FZ_ASSERT(rc == 0, "search: %d", rc);
		bool ended = false;
		for (uint32_t i = 0; i < k; i++) {
			if (ids[i] == STRATA_NO_ID && isinf(dists[i]) && dists[i] > 0) {
				ended = true;
				continue;
			}
			FZ_ASSERT(!ended, "slot %u holds id %llu after an empty slot", i,
			          (unsigned long long)ids[i]);
			const struct fz_op *o = fz_newest(ids[i]);
			FZ_ASSERT(o && !o->deleted, "search returned id %llu, which the log %s",
			          (unsigned long long)ids[i], o ? "deleted" : "never wrote");
			for (uint32_t j = 0; j < i; j++)
				FZ_ASSERT(ids[j] != ids[i], "id %llu returned twice", (unsigned long long)ids[i]);
			FZ_ASSERT(i == 0 || !(dists[i] < dists[i - 1]), "slots %u, %u out of order", i - 1, i);
		}
	}
}

/*
 * The engine stage (see the head comment): a valid MANIFEST, the input as
 * the WAL, a writer open with a small memtable. rc_ro: what read-only
 * recovery said of the same bytes; fz_ops holds what it replayed.
 */
static void fz_engine(const uint8_t *data, size_t size, uint64_t first, uint64_t after,
                      int rc_ro, const struct wal_recovery *ro, struct fz_rng *r)
{
	fz_clear();
	if (after > WAL_LSN_MAX)
		return; /* no valid MANIFEST holds such a checkpoint (fuzz_manifest checks it is refused) */
	static const uint32_t metrics[] = {STRATA_METRIC_L2, STRATA_METRIC_IP, STRATA_METRIC_COSINE};
	struct mf_manifest mf = {
		.dim = FZ_WAL_DIM,
		.metric = metrics[fz_u32(r) % 3],
		.M = 2 + fz_u32(r) % 4,
		.ef_construction = 8,
		.ef_search = 8,
		.generation = 1,
		.next_seq = 1,
		.checkpoint_lsn = after,
	};
	memcpy(mf.db_uuid, FZ_WAL_UUID, 16);
	err_clear();
	FZ_ASSERT(mf_commit(fz_dir, &mf) == 0, "commit the MANIFEST");
	fz_write_wal(data, size, first);

	strata_options o;
	strata_options_default(&o);
	o.threads = 1;
	o.sync_mode = STRATA_SYNC_NONE; /* replay is what is under test, not the disk */
	o.memtable_max_vectors = 16 + fz_u32(r) % 48;
	o.memtable_max_unindexed = 1 + fz_u32(r) % 32;
	strata_db *const untouched = (strata_db *)(uintptr_t)0x5a5a5a5a;
	strata_db *db = untouched;
	int rc = strata_open(fz_dir, &o, 0, &db);
	if (rc_ro) {
		FZ_ASSERT(rc == rc_ro, "recovery refused the log with %d, the engine's open says %d",
		          rc_ro, rc);
		FZ_ASSERT(err_detail()[0] != '\0', "open refused without a detail");
		FZ_ASSERT(db == untouched, "a failed open wrote *db_out");
		return;
	}
	if (rc == STRATA_ELIMIT) {
		/* A log that ends at the largest LSN cannot be continued: a writer may not open it. */
		FZ_ASSERT(ro->last_lsn == WAL_LSN_MAX || after == WAL_LSN_MAX,
		          "ELIMIT from an open whose log ends at %llu (checkpoint %llu)",
		          (unsigned long long)ro->last_lsn, (unsigned long long)after);
		return;
	}
	if (rc) {
		/* Values no writer of strata logs (FORMAT.md 10.4): the engine may refuse them. */
		FZ_ASSERT_DATA_ERROR(rc, "strata_open of a log recovery accepts");
		FZ_ASSERT(db == untouched, "a failed open wrote *db_out");
		return;
	}
	struct strata_stats st;
	FZ_ASSERT(strata_stats(db, &st) == 0, "stats");
	FZ_ASSERT(st.replay_records == ro->records_applied && st.replay_torn_bytes == ro->torn_bytes,
	          "replayed %llu records, cut %llu bytes; recovery said %llu, %llu",
	          (unsigned long long)st.replay_records, (unsigned long long)st.replay_torn_bytes,
	          (unsigned long long)ro->records_applied, (unsigned long long)ro->torn_bytes);
	fz_check_contents(db, mf.metric == STRATA_METRIC_COSINE, "after replay");
	fz_check_search(db, r);
	FZ_ASSERT(strata_close(db) == 0, "close: %s", err_detail());

	db = untouched;
	rc = strata_open(fz_dir, &o, 0, &db);
	FZ_ASSERT(rc == 0, "the second open refuses what the first replayed: %d", rc);
	FZ_ASSERT(strata_stats(db, &st) == 0 && st.replay_torn_bytes == 0,
	          "a torn tail is left after the first open");
	fz_check_contents(db, mf.metric == STRATA_METRIC_COSINE, "after reopen");
	FZ_ASSERT(strata_close(db) == 0, "close: %s", err_detail());
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!fz_dir[0])
		LLVMFuzzerInitialize(NULL, NULL);
	fz_clear();
	uint64_t first = size >= 40 ? le_load64(data + WAL_OFF_FIRST_LSN) : 0;
	if (first == 0)
		first = 1;
	fz_write_wal(data, size, first);

	struct fz_rng rng = fz_rng_of(data, size);
	uint64_t after = first - 1 + (fz_u32(&rng) % 4 == 0 ? fz_u32(&rng) % 8 : 0);
	if (after < first - 1) /* first - 1 + x wrapped */
		after = first - 1;
	struct wal_config c = {.dir = fz_dir, .dim = FZ_WAL_DIM, .sync_mode = STRATA_SYNC_NONE};
	memcpy(c.db_uuid, FZ_WAL_UUID, 16);

	/* The inspection view first: it must change nothing and agree with recovery. */
	struct wal_file_info fi;
	memset(&fi, 0, sizeof fi);
	err_clear();
	int src = wal_scan_dir(fz_dir, FZ_WAL_UUID, FZ_WAL_DIM, after, fz_count_file, &fi);
	if (src)
		FZ_ASSERT_DATA_ERROR(src, "wal_scan_dir");

	struct wal_recovery ro, rw, again;
	struct fz_replay a, b, c2;
	int rc_ro = fz_recover(&c, after, true, &ro, &a, true);
	FZ_ASSERT((rc_ro == 0) == (src == 0), "scan says %d, read-only recovery %d", src, rc_ro);
	if (rc_ro == 0) {
		FZ_ASSERT(fi.records == ro.records, "scan counts %llu records, recovery %llu",
		          (unsigned long long)fi.records, (unsigned long long)ro.records);
		FZ_ASSERT(fi.torn_bytes == ro.torn_bytes || fi.torn_header,
		          "scan and recovery disagree on the torn tail");
		FZ_ASSERT(a.n == ro.records_applied, "%llu applied, %llu reported",
		          (unsigned long long)a.n, (unsigned long long)ro.records_applied);
	}
	int rc_rw = fz_recover(&c, after, false, &rw, &b, false);
	FZ_ASSERT(rc_rw == rc_ro, "read-only recovery says %d, for real %d", rc_ro, rc_rw);
	if (rc_rw == 0) {
		FZ_ASSERT(b.n == a.n && b.sum == a.sum && rw.last_lsn == ro.last_lsn &&
		              rw.torn_bytes == ro.torn_bytes,
		          "read-only and real recovery replay differently");

		int rc2 = fz_recover(&c, after, true, &again, &c2, false);
		FZ_ASSERT(rc2 == 0, "after a successful recovery the log is refused: %d", rc2);
		FZ_ASSERT(again.torn_bytes == 0 && again.torn_headers == 0,
		          "a torn tail is left after the cut");
		FZ_ASSERT(again.records == rw.records && again.last_lsn == rw.last_lsn && c2.sum == b.sum,
		          "the cut changed the whole records");
		if (rw.torn_headers)
			FZ_ASSERT(again.files == 0, "the torn-header file was not removed");
	}
	fz_engine(data, size, first, after, rc_ro, &ro, &rng);
	return 0;
}
