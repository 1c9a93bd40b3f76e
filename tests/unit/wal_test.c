/*
 * wal_test.c - the write-ahead log (wal/, FORMAT.md 10.5-10.6, invariants W1-W5
 * of wal/wal.h): append/recover round trips with rotations, LSN continuity and
 * after_lsn filtering; group commit under 8 threads; the torn tail cut at
 * every offset of the last three records; damage that must be refused with
 * the file and offset; failpoint faults (EIO, ENOSPC, short write, failed
 * fsync) leaving exactly the acknowledged records; remove_upto; the sync modes.
 *
 * meson runs this program twice, with STRATA_WAL_IO=uring and =pwrite; the
 * configs here use WAL_IO_AUTO so that the environment picks the path.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "failpoint.h"
#include "le.h"
#include "strata.h"
#include "t_support.h"
#include "wal.h"
#include "wal_internal.h"
#include "wal_record.h"
#include "xsum.h"

#if STRATA_HAVE_URING
#include <liburing.h>
#endif

#define DIM 4u

static const uint8_t UUID[16] = {0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};

static struct wal_config cfg(const struct t_dir *d, int mode, uint64_t file_bytes)
{
	struct wal_config c = {.dir = d->path, .dim = DIM, .sync_mode = mode,
	                       .sync_interval_ms = 10, .file_bytes = file_bytes, .io = WAL_IO_AUTO};
	memcpy(c.db_uuid, UUID, 16);
	return c;
}

/* ---- what was appended, to compare with what recovery replays ---------------- */

struct rec {
	unsigned type;
	size_t len;      /* payload bytes (unpadded) */
	uint8_t *bytes;
};

struct log {
	struct rec *r;   /* indexed by lsn */
	size_t cap;
};

static void log_put(struct log *l, uint64_t lsn, unsigned type, const uint8_t *b, size_t len)
{
	if (lsn >= l->cap) {
		size_t nc = l->cap ? l->cap : 64;
		while (nc <= lsn)
			nc *= 2;
		l->r = realloc(l->r, nc * sizeof *l->r);
		memset(l->r + l->cap, 0, (nc - l->cap) * sizeof *l->r);
		l->cap = nc;
	}
	l->r[lsn].type = type;
	l->r[lsn].len = len;
	l->r[lsn].bytes = malloc(len ? len : 1);
	memcpy(l->r[lsn].bytes, b, len);
}

static void log_free(struct log *l)
{
	for (size_t i = 0; i < l->cap; i++)
		free(l->r[i].bytes);
	free(l->r);
	memset(l, 0, sizeof *l);
}

/* Build a payload for record number k: upserts of 1..3 rows, deletes of 0..4 ids. */
static size_t make_payload(uint64_t k, unsigned *type, uint8_t *buf)
{
	if (k % 3 == 2) {
		uint32_t n = (uint32_t)(k % 5);
		walrec_delete_prefix(n, buf);
		for (uint32_t i = 0; i < n; i++)
			le_store64(buf + 8 + 8 * i, k * 100 + i);
		*type = WAL_REC_DELETE;
		return walrec_delete_payload_len(n);
	}
	uint32_t n = 1 + (uint32_t)(k % 3);
	walrec_upsert_prefix(n, DIM, buf);
	for (uint32_t i = 0; i < n; i++)
		le_store64(buf + 8 + 8 * i, k * 100 + i);
	float *v = (float *)(void *)(buf + 8 + 8 * n);
	for (uint32_t i = 0; i < n * DIM; i++)
		v[i] = (float)k + (float)i * 0.25f;
	*type = WAL_REC_UPSERT;
	return walrec_upsert_payload_len(n, DIM);
}

static int append_k(struct wal *w, uint64_t k, struct log *l, uint64_t *lsn_out)
{
	uint8_t buf[8 + 3 * 8 + 3 * DIM * 4];
	unsigned type;
	size_t len = make_payload(k, &type, buf);
	/* Split the payload over two iovecs: the prefix, then the rest. */
	struct iovec iov[2] = {{buf, 8}, {buf + 8, len - 8}};
	uint64_t lsn = 0;
	int rc = wal_append(w, type, iov, 2, &lsn);
	if (rc == 0) {
		if (l)
			log_put(l, lsn, type, buf, len);
		if (lsn_out)
			*lsn_out = lsn;
	}
	return rc;
}

/* ---- replay --------------------------------------------------------------- */

struct replay {
	const struct log *want;  /* NULL: only count */
	uint64_t n, first, last;
	bool in_order;
	int stop_at;             /* return -99 at this call (0: never) */
};

static int apply(void *ctx, uint64_t lsn, unsigned type, const uint8_t *payload, size_t len)
{
	struct replay *r = ctx;
	cr_assert_eq((uintptr_t)payload % 8, 0, "payload not 8-aligned");
	if (r->n == 0)
		r->first = lsn;
	else if (lsn != r->last + 1)
		r->in_order = false;
	r->last = lsn;
	r->n++;
	if (r->stop_at && (int)r->n == r->stop_at)
		return -99;
	if (type == WAL_REC_UPSERT) {
		uint32_t n;
		const uint64_t *ids;
		const float *v;
		cr_assert_eq(walrec_upsert_view(payload, len, DIM, &n, &ids, &v), 0, "%s", err_detail());
	} else {
		uint32_t n;
		const uint64_t *ids;
		cr_assert_eq(walrec_delete_view(payload, len, &n, &ids), 0, "%s", err_detail());
	}
	if (r->want) {
		cr_assert(lsn < r->want->cap && r->want->r[lsn].bytes, "lsn %llu was never acknowledged",
		          (unsigned long long)lsn);
		const struct rec *e = &r->want->r[lsn];
		cr_assert_eq(type, e->type, "lsn %llu type", (unsigned long long)lsn);
		cr_assert(len >= e->len && len - e->len < 8, "lsn %llu len %zu vs %zu",
		          (unsigned long long)lsn, len, e->len);
		cr_assert_eq(memcmp(payload, e->bytes, e->len), 0, "lsn %llu payload",
		             (unsigned long long)lsn);
	}
	return 0;
}

static int recover(const struct t_dir *d, uint64_t after, bool ro, const struct log *want,
                   struct replay *rp, struct wal_recovery *res)
{
	struct wal_config c = cfg(d, STRATA_SYNC_ALWAYS, 0);
	memset(rp, 0, sizeof *rp);
	rp->want = want;
	rp->in_order = true;
	err_clear();
	return wal_recover(&c, after, ro, apply, rp, res);
}

static size_t count_wal_files(const struct t_dir *d)
{
	DIR *dir = opendir(d->path);
	cr_assert(dir);
	size_t n = 0;
	struct dirent *e;
	uint64_t lsn;
	while ((e = readdir(dir)))
		n += walrec_file_name_parse(e->d_name, &lsn) == 0;
	closedir(dir);
	return n;
}

static uint64_t file_size(const char *path)
{
	struct stat st;
	cr_assert_eq(stat(path, &st), 0, "stat %s", path);
	return (uint64_t)st.st_size;
}

static const char *wal_path(const struct t_dir *d, uint64_t first, char *buf, size_t len)
{
	char name[WAL_FILE_NAME_LEN + 1];
	walrec_file_name(first, name, sizeof name);
	return t_path(d, name, buf, len);
}

/* ---- round trips ------------------------------------------------------------ */

Test(wal, open_close_empty_and_no_files)
{
	struct t_dir d = t_dir_new();
	struct replay rp;
	struct wal_recovery res;
	cr_assert_eq(recover(&d, 0, false, NULL, &rp, &res), 0);
	cr_assert_eq(res.files, 0);
	cr_assert_eq(res.last_lsn, 0);
	cr_assert_eq(res.next_lsn, 0);
	struct wal_config c = cfg(&d, STRATA_SYNC_ALWAYS, 0);
	struct wal *w;
	cr_assert_eq(wal_open(&c, 1, &w), 0, "%s", err_detail());
	cr_assert_eq(wal_last_lsn(w), 0);
	cr_assert_eq(wal_close(w), 0);
	cr_assert_eq(recover(&d, 0, false, NULL, &rp, &res), 0, "%s", err_detail());
	cr_assert_eq(res.files, 1);
	cr_assert_eq(res.records, 0);
	cr_assert_eq(res.next_lsn, 1);
	/* A second open at the same LSN replaces the record-less file. */
	cr_assert_eq(wal_open(&c, 1, &w), 0, "%s", err_detail());
	uint64_t lsn;
	cr_assert_eq(append_k(w, 1, NULL, &lsn), 0);
	cr_assert_eq(lsn, 1);
	cr_assert_eq(wal_close(w), 0);
	/* Now it holds a record: opening over it is refused, nothing touched. */
	cr_assert_eq(wal_open(&c, 1, &w), STRATA_EEXIST);
	/* A file that would sort before an existing one is refused too (W2). */
	struct wal *w2;
	cr_assert_eq(wal_open(&c, 2, &w2), 0);
	cr_assert_eq(wal_close(w2), 0);
	cr_assert_eq(wal_open(&c, 1, &w), STRATA_EINVAL);
	cr_assert_eq(count_wal_files(&d), 2);
	cr_assert_eq(recover(&d, 0, false, NULL, &rp, &res), 0);
	cr_assert_eq(res.records, 1);
	t_dir_free(&d);
}

Test(wal, bad_arguments)
{
	struct t_dir d = t_dir_new();
	struct wal *w = NULL;
	struct wal_config c = cfg(&d, STRATA_SYNC_ALWAYS, 0);
	cr_assert_eq(wal_open(NULL, 1, &w), STRATA_EINVAL);
	cr_assert_eq(wal_open(&c, 0, &w), STRATA_EINVAL);
	c.sync_mode = 9;
	cr_assert_eq(wal_open(&c, 1, &w), STRATA_EINVAL);
	c = cfg(&d, STRATA_SYNC_ALWAYS, 0);
	c.dim = 0;
	cr_assert_eq(wal_open(&c, 1, &w), STRATA_EDIM);
	c = cfg(&d, STRATA_SYNC_ALWAYS, 0);
	cr_assert_eq(wal_open(&c, 1, &w), 0);
	uint64_t lsn = 77;
	uint8_t x[8] = {0};
	struct iovec iov = {x, 8};
	cr_assert_eq(wal_append(w, 9, &iov, 1, &lsn), STRATA_EINVAL);
	cr_assert_eq(wal_append(w, WAL_REC_DELETE, NULL, 1, &lsn), STRATA_EINVAL);
	cr_assert_eq(lsn, 77);
	/* Too big: refused, nothing changed, the log still works. */
	struct iovec big = {x, (size_t)WAL_RECORD_MAX};
	cr_assert_eq(wal_append(w, WAL_REC_DELETE, &big, 1, &lsn), STRATA_ELIMIT);
	cr_assert_eq(wal_last_lsn(w), 0);
	cr_assert_eq(append_k(w, 0, NULL, &lsn), 0);
	cr_assert_eq(lsn, 1);
	cr_assert_eq(wal_close(w), 0);
	t_dir_free(&d);
}

static void round_trip(int mode)
{
	struct t_dir d = t_dir_new();
	struct log want = {0};
	struct wal_config c = cfg(&d, mode, 2048);
	struct wal *w;
	const uint64_t N = 600;
	cr_assert_eq(wal_open(&c, 1, &w), 0, "%s", err_detail());
	for (uint64_t k = 1; k <= N; k++) {
		uint64_t lsn;
		cr_assert_eq(append_k(w, k, &want, &lsn), 0, "k %llu: %s", (unsigned long long)k,
		             err_detail());
		cr_assert_eq(lsn, k);
		if (k % 97 == 0)
			cr_assert_eq(wal_rotate(w), 0);
	}
	cr_assert_eq(wal_last_lsn(w), N);
	struct wal_stats st;
	wal_stats(w, &st);
	cr_assert_eq(st.appends, N);
	cr_assert_eq(st.records, N);
	cr_assert(st.files > 10, "files %u", st.files);
	cr_assert_eq(st.files, count_wal_files(&d));
	const char *io = getenv("STRATA_WAL_IO");
	if (io && strcmp(io, "pwrite") == 0)
		cr_assert(!st.io_uring);
	cr_assert_eq(wal_close(w), 0, "%s", err_detail());

	struct replay rp;
	struct wal_recovery res;
	cr_assert_eq(recover(&d, 0, false, &want, &rp, &res), 0, "%s", err_detail());
	cr_assert_eq(rp.n, N);
	cr_assert(rp.in_order);
	cr_assert_eq(rp.first, 1);
	cr_assert_eq(res.records, N);
	cr_assert_eq(res.records_applied, N);
	cr_assert_eq(res.last_lsn, N);
	cr_assert_eq(res.next_lsn, N + 1);
	cr_assert_eq(res.files, st.files);
	cr_assert_eq(res.torn_bytes, 0);
	cr_assert_str_eq(res.torn_file, "");

	/* after_lsn filtering, at file boundaries and inside files. */
	uint64_t afters[] = {1, 96, 97, 98, 333, N - 1, N, N + 5};
	for (size_t i = 0; i < sizeof afters / sizeof afters[0]; i++) {
		uint64_t a = afters[i];
		cr_assert_eq(recover(&d, a, true, &want, &rp, &res), 0, "after %llu: %s",
		             (unsigned long long)a, err_detail());
		uint64_t expect = a >= N ? 0 : N - a;
		cr_assert_eq(rp.n, expect, "after %llu: %llu", (unsigned long long)a,
		             (unsigned long long)rp.n);
		cr_assert_eq(res.records_applied, expect);
		cr_assert_eq(res.records, N);
		if (expect)
			cr_assert_eq(rp.first, a + 1);
	}

	/* Reopen where recovery says, append more, and it all replays. */
	cr_assert_eq(wal_open(&c, res.next_lsn, &w), 0);
	for (uint64_t k = N + 1; k <= N + 10; k++)
		cr_assert_eq(append_k(w, k, &want, NULL), 0);
	cr_assert_eq(wal_close(w), 0);
	cr_assert_eq(recover(&d, 0, false, &want, &rp, &res), 0, "%s", err_detail());
	cr_assert_eq(rp.n, N + 10);
	cr_assert(rp.in_order);
	log_free(&want);
	t_dir_free(&d);
}

Test(wal, round_trip_always_with_rotations) { round_trip(STRATA_SYNC_ALWAYS); }
Test(wal, round_trip_interval_with_rotations) { round_trip(STRATA_SYNC_INTERVAL); }
Test(wal, round_trip_none_with_rotations) { round_trip(STRATA_SYNC_NONE); }

Test(wal, apply_error_stops_replay)
{
	struct t_dir d = t_dir_new();
	struct wal_config c = cfg(&d, STRATA_SYNC_NONE, 0);
	struct wal *w;
	cr_assert_eq(wal_open(&c, 1, &w), 0);
	for (uint64_t k = 1; k <= 10; k++)
		cr_assert_eq(append_k(w, k, NULL, NULL), 0);
	cr_assert_eq(wal_close(w), 0);
	struct replay rp = {.stop_at = 4, .in_order = true};
	struct wal_recovery res;
	cr_assert_eq(wal_recover(&c, 0, true, apply, &rp, &res), -99);
	cr_assert_eq(rp.n, 4);
	t_dir_free(&d);
}

/* Records of 3 MiB, 100 KiB and a few bytes: the queue and the reader's window grow; a cut inside the big one. */
Test(wal, large_records_and_a_cut_inside_one)
{
	struct t_dir d = t_dir_new();
	struct wal_config c = cfg(&d, STRATA_SYNC_ALWAYS, 0);
	struct wal *w;
	cr_assert_eq(wal_open(&c, 1, &w), 0);
	uint32_t ns[] = {1, 3 * 65536, 6400, 2, 3 * 65536};
	struct log want = {0};
	uint64_t end_of[6] = {WAL_FILE_HEADER_SIZE};
	for (int r = 0; r < 5; r++) {
		uint32_t n = ns[r];
		size_t len = (size_t)walrec_delete_payload_len(n);
		uint8_t *b = malloc(len);
		walrec_delete_prefix(n, b);
		for (uint32_t i = 0; i < n; i++)
			le_store64(b + 8 + 8 * (size_t)i, (uint64_t)r << 40 | i);
		struct iovec iov = {b, len};
		uint64_t lsn;
		cr_assert_eq(wal_append(w, WAL_REC_DELETE, &iov, 1, &lsn), 0, "%s", err_detail());
		log_put(&want, lsn, WAL_REC_DELETE, b, len);
		end_of[r + 1] = end_of[r] + walrec_total_len(len);
		free(b);
	}
	cr_assert_eq(wal_close(w), 0);
	char p[600];
	wal_path(&d, 1, p, sizeof p);
	cr_assert_eq(file_size(p), end_of[5]);
	struct replay rp;
	struct wal_recovery res;
	cr_assert_eq(recover(&d, 0, true, &want, &rp, &res), 0, "%s", err_detail());
	cr_assert_eq(rp.n, 5);
	/* Cut in the middle of the last (3 MiB) record: four records remain. */
	cr_assert_eq(truncate(p, (off_t)(end_of[4] + 1234567)), 0);
	cr_assert_eq(recover(&d, 0, false, &want, &rp, &res), 0, "%s", err_detail());
	cr_assert_eq(rp.n, 4);
	cr_assert_eq(res.torn_bytes, 1234567);
	cr_assert_eq(file_size(p), end_of[4]);
	log_free(&want);
	t_dir_free(&d);
}

/* ---- group commit ------------------------------------------------------------ */

#define GC_THREADS 8
#define GC_PER 150

struct gc_arg {
	struct wal *w;
	int t;
	uint64_t lsns[GC_PER];
	uint64_t ks[GC_PER];
};

static void *gc_main(void *p)
{
	struct gc_arg *a = p;
	for (int i = 0; i < GC_PER; i++) {
		uint64_t k = (uint64_t)a->t * 100000 + (uint64_t)i;
		a->ks[i] = k;
		if (append_k(a->w, k, NULL, &a->lsns[i]) != 0)
			a->lsns[i] = 0;
	}
	return NULL;
}

static int u64cmp(const void *x, const void *y)
{
	uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
	return a < b ? -1 : a > b;
}

Test(wal, group_commit_eight_threads)
{
	struct t_dir d = t_dir_new();
	struct wal_config c = cfg(&d, STRATA_SYNC_ALWAYS, 16384);
	struct wal *w;
	cr_assert_eq(wal_open(&c, 1, &w), 0);
	static struct gc_arg args[GC_THREADS];
	pthread_t th[GC_THREADS];
	for (int t = 0; t < GC_THREADS; t++) {
		args[t] = (struct gc_arg){.w = w, .t = t};
		cr_assert_eq(pthread_create(&th[t], NULL, gc_main, &args[t]), 0);
	}
	for (int t = 0; t < GC_THREADS; t++)
		pthread_join(th[t], NULL);
	struct wal_stats st;
	wal_stats(w, &st);
	cr_assert_eq(wal_close(w), 0);
	const uint64_t total = GC_THREADS * GC_PER;
	cr_assert_eq(st.appends, total);
	cr_assert(st.fsyncs < st.appends, "fsyncs %llu, appends %llu",
	          (unsigned long long)st.fsyncs, (unsigned long long)st.appends);
	cr_assert(st.max_group > 1, "max_group %llu", (unsigned long long)st.max_group);
	cr_assert(st.writes < st.appends);

	/* Every LSN exactly once, and recovery gives each thread's record at its LSN. */
	static uint64_t all[GC_THREADS * GC_PER];
	struct log want = {0};
	for (int t = 0; t < GC_THREADS; t++)
		for (int i = 0; i < GC_PER; i++) {
			cr_assert_neq(args[t].lsns[i], 0, "thread %d append %d failed", t, i);
			all[t * GC_PER + i] = args[t].lsns[i];
			uint8_t buf[8 + 3 * 8 + 3 * DIM * 4];
			unsigned type;
			size_t len = make_payload(args[t].ks[i], &type, buf);
			log_put(&want, args[t].lsns[i], type, buf, len);
			if (i)
				cr_assert(args[t].lsns[i] > args[t].lsns[i - 1], "a thread's LSNs increase");
		}
	qsort(all, total, sizeof all[0], u64cmp);
	for (uint64_t i = 0; i < total; i++)
		cr_assert_eq(all[i], i + 1, "LSN %llu", (unsigned long long)(i + 1));
	struct replay rp;
	struct wal_recovery res;
	cr_assert_eq(recover(&d, 0, false, &want, &rp, &res), 0, "%s", err_detail());
	cr_assert_eq(rp.n, total);
	cr_assert(rp.in_order);
	log_free(&want);
	t_dir_free(&d);
}

/* ---- torn tails ---------------------------------------------------------------- */

/* Offsets of the records of a WAL file held in b (whole records only). */
static size_t record_offsets(const uint8_t *b, size_t len, uint64_t *offs, size_t max)
{
	size_t n = 0, pos = WAL_FILE_HEADER_SIZE;
	struct walrec r;
	while (n < max && walrec_decode(b, len, pos, &r) == 0) {
		offs[n++] = pos;
		pos += r.total_len;
	}
	offs[n] = pos;
	return n;
}

/* One log of `n` records in one file; returns its bytes. */
static struct t_blob write_one_file(const struct t_dir *d, uint64_t n, struct log *want)
{
	struct wal_config c = cfg(d, STRATA_SYNC_NONE, 0);
	struct wal *w;
	cr_assert_eq(wal_open(&c, 1, &w), 0);
	for (uint64_t k = 1; k <= n; k++)
		cr_assert_eq(append_k(w, k, want, NULL), 0);
	cr_assert_eq(wal_close(w), 0);
	char p[600];
	return t_read_file(wal_path(d, 1, p, sizeof p));
}

Test(wal, torn_tail_every_offset_of_last_three_records)
{
	struct t_dir src = t_dir_new();
	struct log want = {0};
	const uint64_t N = 8;
	struct t_blob b = write_one_file(&src, N, &want);
	uint64_t offs[32];
	cr_assert_eq(record_offsets(b.data, b.len, offs, 31), N);
	cr_assert_eq(offs[N], b.len);

	for (uint64_t cut = offs[N - 3]; cut < b.len; cut++) {
		struct t_dir d = t_dir_new();
		char p[600];
		wal_path(&d, 1, p, sizeof p);
		t_write_file(p, b.data, (size_t)cut);
		uint64_t whole = 0;
		while (whole < N && offs[whole + 1] <= cut)
			whole++;
		struct replay rp;
		struct wal_recovery res;
		/* Read-only first: reports, cuts nothing. */
		cr_assert_eq(recover(&d, 0, true, &want, &rp, &res), 0, "cut %llu: %s",
		             (unsigned long long)cut, err_detail());
		cr_assert_eq(rp.n, whole, "cut %llu", (unsigned long long)cut);
		cr_assert_eq(res.torn_bytes, cut - offs[whole]);
		cr_assert_eq(file_size(p), cut);
		/* Then for real: cut back to the last whole record. */
		cr_assert_eq(recover(&d, 0, false, &want, &rp, &res), 0, "cut %llu: %s",
		             (unsigned long long)cut, err_detail());
		cr_assert_eq(rp.n, whole);
		cr_assert_eq(res.last_lsn, whole);
		cr_assert_eq(res.torn_bytes, cut - offs[whole]);
		if (res.torn_bytes)
			cr_assert_str_eq(res.torn_file, "wal-0000000000000001.log");
		cr_assert_eq(file_size(p), offs[whole]);
		/* The log continues: open after it, append, and everything replays. */
		struct wal_config c = cfg(&d, STRATA_SYNC_NONE, 0);
		struct wal *w;
		cr_assert_eq(wal_open(&c, res.next_lsn, &w), 0, "%s", err_detail());
		struct log more = {0};
		for (uint64_t k = 1; k <= whole; k++)
			log_put(&more, k, want.r[k].type, want.r[k].bytes, want.r[k].len);
		uint64_t lsn;
		cr_assert_eq(append_k(w, 1000 + cut, &more, &lsn), 0);
		cr_assert_eq(lsn, whole + 1);
		cr_assert_eq(wal_close(w), 0);
		cr_assert_eq(recover(&d, 0, false, &more, &rp, &res), 0, "%s", err_detail());
		cr_assert_eq(rp.n, whole + 1);
		cr_assert(rp.in_order);
		cr_assert_eq(res.torn_bytes, 0);
		log_free(&more);
		t_dir_free(&d);
	}
	free(b.data);
	log_free(&want);
	t_dir_free(&src);
}

Test(wal, garbled_tail_is_cut)
{
	struct t_dir src = t_dir_new();
	struct log want = {0};
	const uint64_t N = 6;
	struct t_blob b = write_one_file(&src, N, &want);
	uint64_t offs[32];
	cr_assert_eq(record_offsets(b.data, b.len, offs, 31), N);
	/* Garble the last k bytes (k = 1 .. the last record's length + 8): flips, and zeros. */
	for (int zeros = 0; zeros < 2; zeros++)
		for (uint64_t k = 1; k <= b.len - offs[N - 1] + 8; k++) {
			struct t_dir d = t_dir_new();
			char p[600];
			uint8_t *g = malloc(b.len);
			memcpy(g, b.data, b.len);
			for (uint64_t i = b.len - k; i < b.len; i++)
				g[i] = zeros ? 0 : (uint8_t)(g[i] ^ (0x5a + i));
			wal_path(&d, 1, p, sizeof p);
			t_write_file(p, g, b.len);
			uint64_t whole = 0;
			while (whole < N && offs[whole + 1] <= b.len - k)
				whole++;
			struct replay rp;
			struct wal_recovery res;
			cr_assert_eq(recover(&d, 0, false, &want, &rp, &res), 0, "k %llu: %s",
			             (unsigned long long)k, err_detail());
			cr_assert_eq(rp.n, whole, "k %llu", (unsigned long long)k);
			cr_assert_eq(file_size(p), offs[whole]);
			free(g);
			t_dir_free(&d);
		}
	free(b.data);
	log_free(&want);
	t_dir_free(&src);
}

Test(wal, damage_followed_by_valid_record_is_refused)
{
	struct t_dir d = t_dir_new();
	struct log want = {0};
	const uint64_t N = 10;
	struct t_blob b = write_one_file(&d, N, &want);
	uint64_t offs[32];
	cr_assert_eq(record_offsets(b.data, b.len, offs, 31), N);
	char p[600];
	wal_path(&d, 1, p, sizeof p);
	/* A flipped payload byte in record 4 (checksum), then a broken header in record 6. */
	uint64_t bad[2] = {offs[3] + 20, offs[5] + 4};
	int codes[2] = {STRATA_ECHECKSUM, STRATA_ECORRUPT};
	for (int i = 0; i < 2; i++) {
		uint8_t *g = malloc(b.len);
		memcpy(g, b.data, b.len);
		g[bad[i]] ^= 0x40;
		t_write_file(p, g, b.len);
		struct replay rp;
		struct wal_recovery res;
		int rc = recover(&d, 0, false, &want, &rp, &res);
		cr_assert_eq(rc, codes[i], "case %d: %d %s", i, rc, err_detail());
		char off[64];
		snprintf(off, sizeof off, "byte offset %llu", (unsigned long long)offs[i ? 5 : 3]);
		cr_assert(strstr(err_detail(), "wal-0000000000000001.log"), "%s", err_detail());
		cr_assert(strstr(err_detail(), off), "want '%s' in: %s", off, err_detail());
		cr_assert_eq(file_size(p), b.len, "nothing cut");
		free(g);
	}
	free(b.data);
	log_free(&want);
	t_dir_free(&d);
}

Test(wal, damage_in_older_file_is_refused)
{
	struct t_dir d = t_dir_new();
	struct wal_config c = cfg(&d, STRATA_SYNC_NONE, 0);
	struct wal *w;
	cr_assert_eq(wal_open(&c, 1, &w), 0);
	for (uint64_t k = 1; k <= 5; k++)
		cr_assert_eq(append_k(w, k, NULL, NULL), 0);
	cr_assert_eq(wal_rotate(w), 0);
	for (uint64_t k = 6; k <= 9; k++)
		cr_assert_eq(append_k(w, k, NULL, NULL), 0);
	cr_assert_eq(wal_close(w), 0);
	char p[600];
	wal_path(&d, 1, p, sizeof p);
	struct t_blob b = t_read_file(p);
	uint64_t offs[16];
	cr_assert_eq(record_offsets(b.data, b.len, offs, 15), 5);

	struct replay rp;
	struct wal_recovery res;
	/* The last record of the older file damaged (a tail there is not torn: W3). */
	b.data[b.len - 1] ^= 1;
	t_write_file(p, b.data, b.len);
	int rc = recover(&d, 0, false, NULL, &rp, &res);
	cr_assert_eq(rc, STRATA_ECHECKSUM, "%d %s", rc, err_detail());
	cr_assert(strstr(err_detail(), "wal-0000000000000001.log"), "%s", err_detail());
	cr_assert_eq(file_size(p), b.len);
	/* Cut short instead. */
	b.data[b.len - 1] ^= 1;
	t_write_file(p, b.data, (size_t)(b.len - 3));
	rc = recover(&d, 0, false, NULL, &rp, &res);
	cr_assert_eq(rc, STRATA_ECORRUPT, "%d %s", rc, err_detail());
	char off[64];
	snprintf(off, sizeof off, "byte offset %llu", (unsigned long long)offs[4]);
	cr_assert(strstr(err_detail(), off), "%s", err_detail());
	/* An older file with a torn (zero) header. */
	uint8_t z[64] = {0};
	t_write_file(p, z, sizeof z);
	cr_assert_eq(recover(&d, 0, false, NULL, &rp, &res), STRATA_ECORRUPT);
	free(b.data);
	t_dir_free(&d);
}

Test(wal, other_database_or_dim_refused)
{
	struct t_dir d = t_dir_new();
	struct wal_config c = cfg(&d, STRATA_SYNC_NONE, 0);
	c.db_uuid[3] ^= 1;
	struct wal *w;
	cr_assert_eq(wal_open(&c, 1, &w), 0);
	cr_assert_eq(append_k(w, 1, NULL, NULL), 0);
	cr_assert_eq(wal_close(w), 0);
	struct replay rp;
	struct wal_recovery res;
	cr_assert_eq(recover(&d, 0, false, NULL, &rp, &res), STRATA_ECORRUPT);
	cr_assert(strstr(err_detail(), "wal-0000000000000001.log"), "%s", err_detail());
	cr_assert(strstr(err_detail(), "another database"), "%s", err_detail());
	cr_assert_eq(rp.n, 0);

	struct t_dir d2 = t_dir_new();
	c = cfg(&d2, STRATA_SYNC_NONE, 0);
	c.dim = DIM + 1;
	cr_assert_eq(wal_open(&c, 1, &w), 0);
	cr_assert_eq(wal_close(w), 0);
	cr_assert_eq(recover(&d2, 0, false, NULL, &rp, &res), STRATA_ECORRUPT);
	cr_assert(strstr(err_detail(), "dim"), "%s", err_detail());
	t_dir_free(&d);
	t_dir_free(&d2);
}

Test(wal, torn_header_of_newest_file_is_removed)
{
	struct t_dir d = t_dir_new();
	struct wal_config c = cfg(&d, STRATA_SYNC_NONE, 0);
	struct wal *w;
	cr_assert_eq(wal_open(&c, 1, &w), 0);
	for (uint64_t k = 1; k <= 3; k++)
		cr_assert_eq(append_k(w, k, NULL, NULL), 0);
	cr_assert_eq(wal_close(w), 0);
	char p[600];
	wal_path(&d, 4, p, sizeof p);
	uint8_t z[100] = {0};
	size_t lens[] = {0, 10, 63, 64, 100};
	for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
		t_write_file(p, z, lens[i]);
		struct replay rp;
		struct wal_recovery res;
		cr_assert_eq(recover(&d, 0, true, NULL, &rp, &res), 0, "%s", err_detail());
		cr_assert_eq(rp.n, 3);
		cr_assert_eq(res.torn_headers, 1);
		cr_assert_eq(access(p, F_OK), 0, "read-only leaves it");
		cr_assert_eq(recover(&d, 0, false, NULL, &rp, &res), 0, "%s", err_detail());
		cr_assert_eq(rp.n, 3);
		cr_assert_eq(res.next_lsn, 4);
		cr_assert_neq(access(p, F_OK), 0, "removed");
	}
	/* A zero header with bytes after it is not a crash during creation. */
	z[80] = 1;
	t_write_file(p, z, 100);
	struct replay rp;
	struct wal_recovery res;
	cr_assert(STRATA_IS_DATA_ERROR(recover(&d, 0, false, NULL, &rp, &res)));
	t_dir_free(&d);
}

/* ---- LSN continuity ---------------------------------------------------------------- */

/* A file holding records first..last, written through the codec directly. */
static void craft_file(const struct t_dir *d, uint64_t first, uint64_t last, uint64_t name_lsn)
{
	struct walrec_file_header h = {.first_lsn = first, .dim = DIM};
	memcpy(h.db_uuid, UUID, 16);
	size_t cap = 64 + (last + 1 - first) * 256, len = 64;
	uint8_t *b = calloc(1, cap);
	walrec_file_header_encode(&h, b);
	for (uint64_t lsn = first; lsn <= last; lsn++) {
		uint8_t pl[64];
		unsigned type;
		size_t pn = make_payload(lsn, &type, pl);
		struct iovec iov = {pl, pn};
		uint8_t hdr[16], tail[15];
		size_t tl;
		uint32_t total;
		cr_assert_eq(walrec_encode(type, lsn, &iov, 1, hdr, tail, &tl, &total), 0);
		memcpy(b + len, hdr, 16);
		memcpy(b + len + 16, pl, pn);
		memcpy(b + len + 16 + pn, tail, tl);
		len += total;
	}
	char p[600];
	t_write_file(wal_path(d, name_lsn, p, sizeof p), b, len);
	free(b);
}

Test(wal, lsn_continuity)
{
	struct replay rp;
	struct wal_recovery res;
	/* 1..5, 6..9: fine. */
	struct t_dir d = t_dir_new();
	craft_file(&d, 1, 5, 1);
	craft_file(&d, 6, 9, 6);
	cr_assert_eq(recover(&d, 0, true, NULL, &rp, &res), 0, "%s", err_detail());
	cr_assert_eq(rp.n, 9);
	/* A gap 1..5, 8..9 above the checkpoint: refused. */
	t_dir_free(&d);
	d = t_dir_new();
	craft_file(&d, 1, 5, 1);
	craft_file(&d, 8, 9, 8);
	cr_assert_eq(recover(&d, 0, true, NULL, &rp, &res), STRATA_ECORRUPT);
	cr_assert(strstr(err_detail(), "gap"), "%s", err_detail());
	cr_assert_eq(recover(&d, 5, true, NULL, &rp, &res), STRATA_ECORRUPT);
	/* The same gap wholly below the checkpoint + 1 (a log reopened at the checkpoint): fine. */
	cr_assert_eq(recover(&d, 7, true, NULL, &rp, &res), 0, "%s", err_detail());
	cr_assert_eq(rp.n, 2);
	cr_assert_eq(rp.first, 8);
	/* Overlap. */
	t_dir_free(&d);
	d = t_dir_new();
	craft_file(&d, 1, 5, 1);
	craft_file(&d, 5, 9, 5);
	cr_assert_eq(recover(&d, 0, true, NULL, &rp, &res), STRATA_ECORRUPT);
	/* Records out of sequence inside a file. */
	t_dir_free(&d);
	d = t_dir_new();
	craft_file(&d, 1, 3, 1);
	char p[600];
	struct t_blob b = t_read_file(wal_path(&d, 1, p, sizeof p));
	struct walrec_file_header h = {.first_lsn = 2, .dim = DIM};
	memcpy(h.db_uuid, UUID, 16);
	walrec_file_header_encode(&h, b.data); /* header says 2, records say 1.. */
	char p2[600];
	t_write_file(wal_path(&d, 2, p2, sizeof p2), b.data, b.len);
	unlink(p);
	cr_assert_eq(recover(&d, 0, true, NULL, &rp, &res), STRATA_ECORRUPT);
	free(b.data);
	/* A name that does not match the header. */
	t_dir_free(&d);
	d = t_dir_new();
	craft_file(&d, 1, 3, 2);
	cr_assert_eq(recover(&d, 0, true, NULL, &rp, &res), STRATA_ECORRUPT);
	cr_assert(strstr(err_detail(), "first_lsn"), "%s", err_detail());
	/* Records after the checkpoint missing at the start. */
	t_dir_free(&d);
	d = t_dir_new();
	craft_file(&d, 10, 12, 10);
	cr_assert_eq(recover(&d, 0, true, NULL, &rp, &res), STRATA_ECORRUPT);
	cr_assert_eq(recover(&d, 9, true, NULL, &rp, &res), 0);
	cr_assert_eq(recover(&d, 11, true, NULL, &rp, &res), 0);
	cr_assert_eq(rp.n, 1);
	t_dir_free(&d);
}

Test(wal, upsert_of_another_dim_is_corruption)
{
	struct t_dir d = t_dir_new();
	struct walrec_file_header h = {.first_lsn = 1, .dim = DIM};
	memcpy(h.db_uuid, UUID, 16);
	uint8_t b[256] = {0};
	walrec_file_header_encode(&h, b);
	uint8_t pl[8 + 8 + 12];
	walrec_upsert_prefix(1, 3, pl); /* dim 3 in a file of dim 4: valid framing, valid payload */
	memset(pl + 8, 0, sizeof pl - 8);
	struct iovec iov = {pl, sizeof pl};
	uint8_t hdr[16], tail[15];
	size_t tl;
	uint32_t total;
	cr_assert_eq(walrec_encode(WAL_REC_UPSERT, 1, &iov, 1, hdr, tail, &tl, &total), 0);
	memcpy(b + 64, hdr, 16);
	memcpy(b + 80, pl, sizeof pl);
	memcpy(b + 80 + sizeof pl, tail, tl);
	char p[600];
	t_write_file(wal_path(&d, 1, p, sizeof p), b, 64 + total);
	struct replay rp;
	struct wal_recovery res;
	/* Whole and checksummed, so never a torn tail: refused, nothing cut. */
	cr_assert_eq(recover(&d, 0, false, NULL, &rp, &res), STRATA_ECORRUPT);
	cr_assert(strstr(err_detail(), "dim 3"), "%s", err_detail());
	cr_assert_eq(file_size(p), 64 + total);
	t_dir_free(&d);
}

/*
 * Whole, checksummed records whose values no strata writer logs (FORMAT.md
 * 10.4): the reserved id in an upsert or a delete, a non-finite component.
 * Never a torn tail, wherever they sit: refused with the file and offset,
 * nothing cut. Before, recovery applied them (fuzz_wal_nock).
 */
Test(wal, reserved_id_or_non_finite_component_is_corruption)
{
	enum { BAD_ID, BAD_DELETE, BAD_NAN, BAD_INF, N_CASES };
	for (int bad = 0; bad < N_CASES; bad++)
		for (int last = 0; last < 2; last++) {
			struct t_dir d = t_dir_new();
			struct walrec_file_header h = {.first_lsn = 1, .dim = DIM};
			memcpy(h.db_uuid, UUID, 16);
			uint8_t b[1024] = {0};
			walrec_file_header_encode(&h, b);
			size_t off = 64, bad_off = 0;
			/* A good record, the bad one, and (unless it is last) a good one after it. */
			for (uint64_t lsn = 1; lsn <= (last ? 2u : 3u); lsn++) {
				bool is_bad = lsn == 2;
				uint8_t pl[8 + 8 + 4 * DIM];
				uint64_t id = is_bad && bad != BAD_NAN && bad != BAD_INF ? UINT64_MAX : lsn;
				unsigned type = is_bad && bad == BAD_DELETE ? WAL_REC_DELETE : WAL_REC_UPSERT;
				size_t pl_len = type == WAL_REC_DELETE ? 16 : sizeof pl;
				if (type == WAL_REC_DELETE)
					walrec_delete_prefix(1, pl);
				else
					walrec_upsert_prefix(1, DIM, pl);
				le_store64(pl + 8, id);
				for (uint32_t j = 0; j < DIM; j++)
					le_store32(pl + 16 + 4 * j, 0x3f800000u); /* 1.0f */
				if (is_bad && bad == BAD_NAN)
					le_store32(pl + 16 + 4 * (DIM - 1), 0x7fc00000u);
				if (is_bad && bad == BAD_INF)
					le_store32(pl + 16, 0xff800000u);
				struct iovec iov = {pl, pl_len};
				uint8_t hdr[16], tail[15];
				size_t tl;
				uint32_t total;
				cr_assert_eq(walrec_encode(type, lsn, &iov, 1, hdr, tail, &tl, &total), 0);
				if (is_bad)
					bad_off = off;
				memcpy(b + off, hdr, 16);
				memcpy(b + off + 16, pl, pl_len);
				memcpy(b + off + 16 + pl_len, tail, tl);
				off += total;
			}
			char p[600], at[64];
			t_write_file(wal_path(&d, 1, p, sizeof p), b, off);
			struct replay rp;
			struct wal_recovery res;
			cr_assert_eq(recover(&d, 0, false, NULL, &rp, &res), STRATA_ECORRUPT, "case %d last %d",
			             bad, last);
			cr_assert(strstr(err_detail(), bad == BAD_NAN || bad == BAD_INF ? "not finite" : "2^64-1"),
			          "%s", err_detail());
			snprintf(at, sizeof at, "%zu", bad_off);
			cr_assert(strstr(err_detail(), at), "the offset %s is not named: %s", at, err_detail());
			cr_assert_eq(file_size(p), off, "a valid-looking record was cut as a torn tail");
			t_dir_free(&d);
		}
}

/* Damage followed by MiBs of plausible headers: the search for a valid record gives up, in bounded time. */
Test(wal, hostile_tail_cannot_make_the_search_quadratic)
{
	struct t_dir d = t_dir_new();
	struct log want = {0};
	struct t_blob b = write_one_file(&d, 3, &want);
	size_t extra = 4u << 20, len = b.len + extra;
	uint8_t *g = calloc(1, len);
	memcpy(g, b.data, b.len);
	g[b.len - 1] ^= 1; /* the last record's checksum */
	for (size_t o = b.len; o + 16 <= len; o += 8) {
		le_store32(g + o, 2u << 20); /* each claims 2 MiB, and fits in the file */
		g[o + 4] = WAL_REC_DELETE;
		le_store64(g + o + 8, 1); /* lsn field: also what the next word's header sees */
	}
	/* Make every 8-aligned word a header: total_len, type in the second word. */
	for (size_t o = b.len; o + 8 <= len; o += 16) {
		le_store32(g + o, 2u << 20);
		g[o + 4] = WAL_REC_DELETE;
		g[o + 5] = g[o + 6] = g[o + 7] = 0;
	}
	char p[600];
	wal_path(&d, 1, p, sizeof p);
	t_write_file(p, g, len);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	struct replay rp;
	struct wal_recovery res;
	int rc = recover(&d, 0, false, NULL, &rp, &res);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
	cr_assert(STRATA_IS_DATA_ERROR(rc), "rc %d", rc);
	cr_assert(strstr(err_detail(), "cannot be told"), "%s", err_detail());
	cr_assert_eq(file_size(p), len, "never cut what cannot be told");
	cr_assert(secs < 5, "%.1f s", secs);
	free(g);
	free(b.data);
	log_free(&want);
	t_dir_free(&d);
}

/* ---- remove_upto ------------------------------------------------------------------ */

Test(wal, remove_upto_removes_exactly_wholly_older_files)
{
	struct t_dir d = t_dir_new();
	struct wal_config c = cfg(&d, STRATA_SYNC_NONE, 0);
	struct wal *w;
	cr_assert_eq(wal_open(&c, 1, &w), 0);
	/* Files: 1..10, 11..20, 21..30, current 31..35. */
	for (uint64_t k = 1; k <= 35; k++) {
		cr_assert_eq(append_k(w, k, NULL, NULL), 0);
		if (k % 10 == 0)
			cr_assert_eq(wal_rotate(w), 0);
	}
	char p1[600], p11[600], p21[600], p31[600];
	wal_path(&d, 1, p1, sizeof p1);
	wal_path(&d, 11, p11, sizeof p11);
	wal_path(&d, 21, p21, sizeof p21);
	wal_path(&d, 31, p31, sizeof p31);
	cr_assert_eq(count_wal_files(&d), 4);
	cr_assert_eq(wal_remove_upto(w, 9), 0);
	cr_assert_eq(count_wal_files(&d), 4, "9 < 10: file 1 stays");
	cr_assert_eq(wal_remove_upto(w, 15), 0);
	cr_assert_neq(access(p1, F_OK), 0);
	cr_assert_eq(access(p11, F_OK), 0);
	cr_assert_eq(wal_remove_upto(w, 20), 0);
	cr_assert_neq(access(p11, F_OK), 0);
	cr_assert_eq(access(p21, F_OK), 0);
	cr_assert_eq(wal_remove_upto(w, 1000), 0);
	cr_assert_neq(access(p21, F_OK), 0);
	cr_assert_eq(access(p31, F_OK), 0, "never the current file");
	struct wal_stats st;
	wal_stats(w, &st);
	cr_assert_eq(st.files, 1);
	/* Rotation with nothing in the current file is a no-op (no empty file pile-up). */
	cr_assert_eq(wal_rotate(w), 0);
	cr_assert_eq(wal_rotate(w), 0);
	cr_assert_eq(count_wal_files(&d), 2);
	cr_assert_eq(wal_close(w), 0);
	struct replay rp;
	struct wal_recovery res;
	cr_assert_eq(recover(&d, 30, false, NULL, &rp, &res), 0, "%s", err_detail());
	cr_assert_eq(rp.n, 5);
	cr_assert_eq(res.next_lsn, 36);
	t_dir_free(&d);
}

/* ---- sync modes ---------------------------------------------------------------------- */

Test(wal, sync_none_and_interval)
{
	struct t_dir d = t_dir_new();
	struct wal_config c = cfg(&d, STRATA_SYNC_NONE, 0);
	struct wal *w;
	cr_assert_eq(wal_open(&c, 1, &w), 0);
	for (uint64_t k = 1; k <= 20; k++)
		cr_assert_eq(append_k(w, k, NULL, NULL), 0);
	struct wal_stats st;
	wal_stats(w, &st);
	cr_assert_eq(st.fsyncs, 0);
	cr_assert_eq(st.writes, 20, "NONE: each append is written before it returns");
	cr_assert_eq(wal_sync(w), 0);
	wal_stats(w, &st);
	cr_assert_eq(st.fsyncs, 1);
	cr_assert_eq(wal_sync(w), 0);
	wal_stats(w, &st);
	cr_assert_eq(st.fsyncs, 1, "nothing new: no sync");
	cr_assert_eq(wal_close(w), 0);

	struct t_dir d2 = t_dir_new();
	c = cfg(&d2, STRATA_SYNC_INTERVAL, 0);
	c.sync_interval_ms = 20;
	cr_assert_eq(wal_open(&c, 1, &w), 0);
	cr_assert_eq(append_k(w, 1, NULL, NULL), 0);
	wal_stats(w, &st);
	uint64_t before = st.fsyncs;
	for (int i = 0; i < 100 && st.fsyncs == before; i++) {
		usleep(10000);
		wal_stats(w, &st);
	}
	cr_assert(st.fsyncs > before, "the timer synced within a second");
	cr_assert_eq(wal_close(w), 0);
	t_dir_free(&d);
	t_dir_free(&d2);
}

struct seen {
	int n;
	struct wal_file_info f[4];
};

static int cb(void *ctx, const struct wal_file_info *f)
{
	struct seen *s = ctx;
	if (s->n < 4)
		s->f[s->n] = *f;
	s->n++;
	return 0;
}

Test(wal, scan_dir_reports_files)
{
	struct t_dir d = t_dir_new();
	craft_file(&d, 1, 5, 1);
	craft_file(&d, 6, 9, 6);
	char p[600];
	wal_path(&d, 6, p, sizeof p);
	struct t_blob b = t_read_file(p);
	t_write_file(p, b.data, b.len - 5);
	free(b.data);
	struct seen s = {0};
	cr_assert_eq(wal_scan_dir(d.path, UUID, DIM, 0, cb, &s), 0, "%s", err_detail());
	cr_assert_eq(s.n, 2);
	cr_assert_eq(s.f[0].records, 5);
	cr_assert_eq(s.f[0].first_lsn, 1);
	cr_assert_eq(s.f[0].last_lsn, 5);
	cr_assert(!s.f[0].newest);
	cr_assert_eq(s.f[1].records, 3);
	cr_assert(s.f[1].newest);
	cr_assert(s.f[1].torn_bytes > 0);
	cr_assert_eq(s.f[1].valid_bytes + s.f[1].torn_bytes, s.f[1].size_bytes);
	cr_assert_eq(file_size(p), s.f[1].size_bytes, "scan changes nothing");
	/* Damage in the older file: reported, and the scan goes on to the next. */
	wal_path(&d, 1, p, sizeof p);
	b = t_read_file(p);
	b.data[100] ^= 1;
	t_write_file(p, b.data, b.len);
	free(b.data);
	memset(&s, 0, sizeof s);
	int rc = wal_scan_dir(d.path, UUID, DIM, 0, cb, &s);
	cr_assert(STRATA_IS_DATA_ERROR(rc), "%d", rc);
	cr_assert_eq(s.n, 2);
	cr_assert(s.f[0].error != 0);
	cr_assert(strstr(s.f[0].detail, "wal-0000000000000001.log"), "%s", s.f[0].detail);
	cr_assert_eq(s.f[1].error, 0);
	t_dir_free(&d);
}


/* ---- fault injection (W4) ------------------------------------------------------------- */

#if STRATA_FAILPOINTS

/*
 * Append records one by one (SYNC_ALWAYS) with the nth write or fsync armed
 * to fail; check the error is returned then and forever after, and that
 * recovery holds exactly the acknowledged records.
 */
static void fault_case(enum fp_site site, int err, int nth, int want_rc)
{
	struct t_dir d = t_dir_new();
	struct wal_config c = cfg(&d, STRATA_SYNC_ALWAYS, 1024);
	struct wal *w;
	cr_assert_eq(wal_open(&c, 1, &w), 0);
	struct log want = {0};
	fp_arm(site, nth, err);
	int first_fail = 0;
	uint64_t acked = 0;
	for (uint64_t k = 1; k <= 40; k++) {
		int rc = append_k(w, k, &want, NULL);
		if (rc == 0) {
			cr_assert_eq(first_fail, 0, "an append succeeded after the log failed");
			acked++;
			continue;
		}
		if (!first_fail) {
			first_fail = rc;
			cr_assert_eq(rc, want_rc, "site %d nth %d: %d (%s)", site, nth, rc, err_detail());
			cr_assert_neq(err_detail()[0], '\0');
		} else {
			cr_assert_eq(rc, first_fail, "sticky");
		}
	}
	fp_disarm_all();
	cr_assert_neq(first_fail, 0, "site %d nth %d never failed", site, nth);
	cr_assert_eq(wal_sync(w), first_fail);
	cr_assert_eq(wal_rotate(w), first_fail);
	cr_assert_eq(wal_close(w), first_fail);
	struct replay rp;
	struct wal_recovery res;
	cr_assert_eq(recover(&d, 0, false, &want, &rp, &res), 0, "%s", err_detail());
	cr_assert_eq(rp.n, acked, "site %d nth %d: %llu replayed, %llu acknowledged", site, nth,
	             (unsigned long long)rp.n, (unsigned long long)acked);
	cr_assert(rp.in_order);
	log_free(&want);
	t_dir_free(&d);
}

Test(wal_fault, write_eio_enospc_short)
{
	/* 1024-byte files: some of these failures land on the rotation's header write. */
	for (int nth = 1; nth <= 24; nth += 3) {
		fault_case(FP_WRITE, EIO, nth, STRATA_EIO);
		fault_case(FP_WRITE, ENOSPC, nth, STRATA_ENOSPC);
		fault_case(FP_WRITE, FP_SHORT, nth, STRATA_EIO);
	}
}

Test(wal_fault, fsync_failure_is_sticky_efsync)
{
	for (int nth = 1; nth <= 24; nth += 2)
		fault_case(FP_FSYNC, EIO, nth, STRATA_EFSYNC);
}

Test(wal_fault, failed_open_leaves_nothing)
{
	struct t_dir d = t_dir_new();
	struct wal_config c = cfg(&d, STRATA_SYNC_ALWAYS, 0);
	struct wal *w = NULL;
	enum fp_site sites[] = {FP_OPEN, FP_WRITE, FP_FSYNC};
	for (size_t i = 0; i < 3; i++)
		for (int nth = 1; nth <= 2; nth++) {
			fp_arm(sites[i], nth, EIO);
			int rc = wal_open(&c, 1, &w);
			bool hit = fp_hits(sites[i]) >= nth;
			fp_disarm_all();
			if (!hit) {
				cr_assert_eq(rc, 0);
				cr_assert_eq(wal_close(w), 0);
				continue;
			}
			cr_assert(rc != 0, "site %zu nth %d", i, nth);
			cr_assert_eq(count_wal_files(&d), 0, "site %zu nth %d left a file", i, nth);
		}
	t_dir_free(&d);
}

/* The io_uring backend's completion loop: every write SQE completes short. */
Test(wal_uring, short_completions_are_finished)
{
	wal_uring_test_quirks(false, true);
	for (int mode = 0; mode < 3; mode++) {
		struct t_dir d = t_dir_new();
		struct wal_config c = cfg(&d, mode, 65536);
		c.io = WAL_IO_URING;
		struct wal *w;
		cr_assert_eq(wal_open(&c, 1, &w), 0);
		struct log want = {0};
		for (uint64_t k = 1; k <= 40; k++) {
			uint32_t n = (uint32_t)(k * 37 % 3000);
			size_t len = (size_t)walrec_delete_payload_len(n);
			uint8_t *b = calloc(1, len);
			walrec_delete_prefix(n, b);
			for (uint32_t i = 0; i < n; i++)
				le_store64(b + 8 + 8 * (size_t)i, k * 1000000 + i);
			struct iovec iov = {b, len};
			uint64_t lsn;
			cr_assert_eq(wal_append(w, WAL_REC_DELETE, &iov, 1, &lsn), 0, "%s", err_detail());
			log_put(&want, lsn, WAL_REC_DELETE, b, len);
			free(b);
		}
		struct wal_stats st;
		wal_stats(w, &st);
		if (mode == STRATA_SYNC_ALWAYS)
			cr_assert_eq(st.fsyncs, 40, "one sync per append (rotations find the file synced)");
		cr_assert_eq(wal_close(w), 0);
		struct replay rp;
		struct wal_recovery res;
		cr_assert_eq(recover(&d, 0, false, &want, &rp, &res), 0, "%s", err_detail());
		cr_assert_eq(rp.n, 40);
		cr_assert_eq(res.torn_bytes, 0);
		log_free(&want);
		t_dir_free(&d);
	}
	wal_uring_test_quirks(false, false);
}

/* A kernel that refuses the first io_uring operation: pwrite takes over, nothing lost. */
Test(wal_uring, refused_first_operation_falls_back_to_pwrite)
{
	wal_uring_test_quirks(true, false);
	struct t_dir d = t_dir_new();
	struct wal_config c = cfg(&d, STRATA_SYNC_ALWAYS, 0);
	c.io = WAL_IO_URING;
	struct wal *w;
	cr_assert_eq(wal_open(&c, 1, &w), 0);
	struct log want = {0};
	for (uint64_t k = 1; k <= 5; k++)
		cr_assert_eq(append_k(w, k, &want, NULL), 0, "%s", err_detail());
	struct wal_stats st;
	wal_stats(w, &st);
	cr_assert(!st.io_uring, "the backend fell back");
	cr_assert_eq(wal_close(w), 0);
	wal_uring_test_quirks(false, false);
	struct replay rp;
	struct wal_recovery res;
	cr_assert_eq(recover(&d, 0, false, &want, &rp, &res), 0, "%s", err_detail());
	cr_assert_eq(rp.n, 5);
	log_free(&want);
	t_dir_free(&d);
}

/* A read error during recovery is an I/O error, never mistaken for a torn tail. */
Test(wal_fault, read_error_is_not_a_torn_tail)
{
	struct t_dir d = t_dir_new();
	struct wal_config c = cfg(&d, STRATA_SYNC_NONE, 0);
	struct wal *w;
	cr_assert_eq(wal_open(&c, 1, &w), 0);
	/* Records of ~80 KiB: the reader needs several reads. */
	static uint8_t big[8 + 8 * 10000];
	walrec_delete_prefix(10000, big);
	struct iovec iov = {big, sizeof big};
	for (int i = 0; i < 30; i++) {
		uint64_t lsn;
		cr_assert_eq(wal_append(w, WAL_REC_DELETE, &iov, 1, &lsn), 0);
	}
	cr_assert_eq(wal_close(w), 0);
	char p[600];
	wal_path(&d, 1, p, sizeof p);
	uint64_t size = file_size(p);
	for (int nth = 1;; nth++) {
		struct replay rp;
		struct wal_recovery res;
		fp_arm(FP_READ, nth, EIO);
		int rc = recover(&d, 0, false, NULL, &rp, &res);
		bool hit = fp_hits(FP_READ) >= nth;
		fp_disarm_all();
		if (!hit) {
			cr_assert_eq(rc, 0);
			cr_assert_eq(rp.n, 30);
			cr_assert(nth > 2, "several reads");
			break;
		}
		cr_assert_eq(rc, STRATA_EIO, "nth %d: %d", nth, rc);
		cr_assert_eq(file_size(p), size, "nth %d: cut after a read error", nth);
	}
	t_dir_free(&d);
}

Test(wal_fault, failed_tail_cut_is_reported)
{
	struct t_dir src = t_dir_new();
	struct log want = {0};
	struct t_blob b = write_one_file(&src, 4, &want);
	char p[600];
	wal_path(&src, 1, p, sizeof p);
	t_write_file(p, b.data, b.len - 3);
	struct replay rp;
	struct wal_recovery res;
	fp_arm(FP_FSYNC, 1, EIO);
	cr_assert_eq(recover(&src, 0, false, NULL, &rp, &res), STRATA_EFSYNC);
	fp_disarm_all();
	t_write_file(p, b.data, b.len - 3); /* the cut was made, its sync failed: tear it again */
	fp_arm(FP_WRITE, 1, EIO);
	cr_assert_eq(recover(&src, 0, false, NULL, &rp, &res), STRATA_EIO);
	cr_assert_eq(file_size(p), b.len - 3);
	fp_disarm_all();
	cr_assert_eq(recover(&src, 0, false, NULL, &rp, &res), 0);
	cr_assert_eq(rp.n, 3);
	free(b.data);
	log_free(&want);
	t_dir_free(&src);
}

#endif

/*
 * The run with STRATA_WAL_IO=uring must really write through io_uring where
 * the kernel allows it, or every "uring" test would silently cover pwrite
 * twice. The test asks the kernel itself (a ring of two entries); when it
 * refuses (old kernel, seccomp in a container), the test says so and skips.
 */
Test(wal_uring, the_uring_run_writes_through_io_uring_when_the_kernel_allows)
{
	const char *io = getenv("STRATA_WAL_IO");
	if (!io || strcmp(io, "uring") != 0)
		cr_skip_test("only in the run with STRATA_WAL_IO=uring");
#if STRATA_HAVE_URING
	struct io_uring ring;
	int r = io_uring_queue_init(2, &ring, 0);
	if (r < 0)
		cr_skip_test("the kernel refuses io_uring here (%s): the fallback is what runs", strerror(-r));
	io_uring_queue_exit(&ring);
	struct t_dir d = t_dir_new();
	struct wal_config c = cfg(&d, STRATA_SYNC_ALWAYS, 0);
	struct wal *w;
	cr_assert_eq(wal_open(&c, 1, &w), 0, "%s", err_detail());
	for (uint64_t k = 1; k <= 10; k++)
		cr_assert_eq(append_k(w, k, NULL, NULL), 0, "%s", err_detail());
	struct wal_stats st;
	wal_stats(w, &st);
	cr_assert(st.io_uring, "io_uring works in this process, yet the WAL wrote with pwrite");
	cr_assert_eq(wal_close(w), 0);
	t_dir_free(&d);
#else
	cr_skip_test("built without liburing");
#endif
}

/*
 * Errors the kernel reports in a completion (not failpoints): a write the
 * descriptor does not allow, a sync of something that cannot be synced. Both
 * backends report the write's errno with the path and a failed sync as
 * STRATA_EFSYNC, once io_uring has proven itself (before that, only EINVAL
 * and EOPNOTSUPP mean "fall back to pwrite").
 */
Test(wal_uring, kernel_errors_in_completions_are_reported)
{
	struct t_dir d = t_dir_new();
	char p[600];
	t_path(&d, "f", p, sizeof p);
	t_write_file(p, "", 0);
	int pp[2];
	cr_assert_eq(pipe(pp), 0);
	for (int io = 0; io < 2; io++) {
		struct wal_iob b;
		wal_iob_init(&b, io ? WAL_IO_PWRITE : WAL_IO_URING);
		if (!io && !b.uring) {
			wal_iob_fini(&b);
			continue; /* no io_uring here: the pwrite pass still runs */
		}
		const char *what = io ? "pwrite" : "io_uring";
		int fd = open(p, O_RDWR);
		cr_assert(fd >= 0);
		cr_assert_eq(wal_iob_write(&b, fd, "abcdefgh", 8, 0, true, p), 0, "%s: %s", what, err_detail());
		close(fd);
		fd = open(p, O_RDONLY);
		int rc = wal_iob_write(&b, fd, "abcdefgh", 8, 8, false, p);
		cr_assert_eq(rc, STRATA_EIO, "%s: write on a read-only descriptor: %d", what, rc);
		cr_assert(strstr(err_detail(), p) && strstr(err_detail(), strerror(EBADF)), "%s: %s", what,
		          err_detail());
		close(fd);
		rc = wal_iob_write(&b, pp[1], NULL, 0, 0, true, "pipe");
		cr_assert_eq(rc, STRATA_EFSYNC, "%s: sync of a pipe: %d (%s)", what, rc, err_detail());
		cr_assert(strstr(err_detail(), "fdatasync"), "%s: %s", what, err_detail());
		wal_iob_fini(&b);
	}
	close(pp[0]);
	close(pp[1]);
	t_dir_free(&d);
}

/* Directory trouble: a WAL directory that is missing, or not a directory, or a path too long. */
Test(wal, directory_errors_are_reported)
{
	struct t_dir d = t_dir_new();
	char p[600];
	t_path(&d, "missing", p, sizeof p);
	struct wal_config c = cfg(&d, STRATA_SYNC_ALWAYS, 0);
	c.dir = p;
	struct wal *w = NULL;
	cr_assert_eq(wal_open(&c, 1, &w), STRATA_ENOTFOUND, "%s", err_detail());
	struct wal_recovery res;
	cr_assert_eq(wal_recover(&c, 0, true, NULL, NULL, &res), 0, "a missing log is an empty one");
	t_path(&d, "file", p, sizeof p);
	t_write_file(p, "x", 1);
	c.dir = p;
	cr_assert_eq(wal_open(&c, 1, &w), STRATA_EIO, "%s", err_detail());
	cr_assert(strstr(err_detail(), p), "%s", err_detail());
	char longdir[WAL_PATH_MAX + 16];
	memset(longdir, 'd', sizeof longdir - 1);
	longdir[sizeof longdir - 1] = '\0';
	char name[64];
	cr_assert_eq(wal_path_join(name, sizeof name, longdir, "wal-0000000000000001.log"), STRATA_EINVAL);
	t_dir_free(&d);
}

/* ---- zeros written ahead (wal_prep.c, FORMAT.md 10.6-10.7) ------------------------ */

/* Append records (ALWAYS) until the preparer has zeroed ahead, at most ~10 s. Returns the count. */
static uint64_t append_until_prealloc(struct wal *w, struct log *want, uint64_t k0)
{
	uint64_t k = k0;
	struct wal_stats st;
	for (int i = 0; i < 10000; i++) {
		cr_assert_eq(append_k(w, k++, want, NULL), 0, "%s", err_detail());
		wal_stats(w, &st);
		if (st.prealloc_bytes)
			return k - k0;
		if (i % 16 == 15)
			usleep(1000); /* give the preparer a core */
	}
	cr_assert_fail("no zeros were written ahead after %llu appends", (unsigned long long)(k - k0));
	return 0;
}

Test(wal_prealloc, zeros_go_ahead_of_the_records_and_a_clean_close_cuts_them)
{
	unsetenv("STRATA_WAL_PREALLOC");
	struct t_dir d = t_dir_new();
	struct wal_config c = cfg(&d, STRATA_SYNC_ALWAYS, 0);
	struct wal *w;
	cr_assert_eq(wal_open(&c, 1, &w), 0, "%s", err_detail());
	struct log want = {0};
	uint64_t n = append_until_prealloc(w, &want, 1);
	cr_assert_eq(append_k(w, 100000, &want, NULL), 0);
	n++;
	struct wal_stats st;
	wal_stats(w, &st);
	cr_assert(st.prealloc_on && !st.prealloc_failed);
	char p[600];
	wal_path(&d, 1, p, sizeof p);
	uint64_t records_end = WAL_FILE_HEADER_SIZE + st.bytes;
	cr_assert_gt(file_size(p), records_end, "no zeros after the records (%llu bytes of records)",
	             (unsigned long long)records_end);
	/* A reader meanwhile (a read-only open, inspect): the zeros are the end, not a tear. */
	struct replay rp;
	struct wal_recovery res;
	cr_assert_eq(recover(&d, 0, true, &want, &rp, &res), 0, "%s", err_detail());
	cr_assert_eq(rp.n, n);
	cr_assert_eq(res.torn_bytes, 0);
	cr_assert_eq(res.zero_bytes, file_size(p) - records_end);
	cr_assert_eq(wal_close(w), 0);
	cr_assert_eq(file_size(p), records_end, "close left the zeros");
	cr_assert_eq(recover(&d, 0, false, &want, &rp, &res), 0, "%s", err_detail());
	cr_assert_eq(rp.n, n);
	cr_assert(rp.in_order);
	cr_assert_eq(res.torn_bytes + res.zero_bytes, 0);
	log_free(&want);
	t_dir_free(&d);
}

/* A writer killed with zeros ahead: every acknowledged record comes back, the zeros are cut, not counted torn. */
Test(wal_prealloc, a_killed_writer_leaves_zeros_that_recovery_cuts_as_the_end)
{
	unsetenv("STRATA_WAL_PREALLOC");
	struct t_dir d = t_dir_new();
	int fds[2];
	cr_assert_eq(pipe(fds), 0);
	pid_t pid = fork();
	cr_assert_neq(pid, -1);
	if (pid == 0) {
		struct wal_config c = cfg(&d, STRATA_SYNC_ALWAYS, 0);
		struct wal *w;
		if (wal_open(&c, 1, &w))
			_exit(2);
		uint64_t k = 1;
		struct wal_stats st;
		for (int i = 0; i < 10000; i++) {
			if (append_k(w, k++, NULL, NULL))
				_exit(3);
			wal_stats(w, &st);
			if (st.prealloc_bytes)
				break;
			if (i % 16 == 15)
				usleep(1000);
		}
		uint64_t acked = k - 1;
		if (write(fds[1], &acked, sizeof acked) != sizeof acked)
			_exit(4);
		_exit(0); /* no wal_close: as a kill would */
	}
	close(fds[1]);
	uint64_t acked = 0;
	cr_assert_eq(read(fds[0], &acked, sizeof acked), (ssize_t)sizeof acked, "the child wrote nothing");
	close(fds[0]);
	int status;
	waitpid(pid, &status, 0);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);

	char p[600];
	wal_path(&d, 1, p, sizeof p);
	uint64_t size = file_size(p);
	struct replay rp;
	struct wal_recovery res;
	cr_assert_eq(recover(&d, 0, false, NULL, &rp, &res), 0, "%s", err_detail());
	cr_assert_eq(rp.n, acked);
	cr_assert(rp.in_order);
	cr_assert_eq(res.torn_bytes, 0, "zeros counted as a torn tail");
	cr_assert_gt(res.zero_bytes, 0, "the child left no zeros: the test proves nothing");
	cr_assert_eq(file_size(p), size - res.zero_bytes, "recovery did not cut the zeros");
	t_dir_free(&d);
}

/* Zeros after a torn record are part of the tear; zeros in a file that is not the newest are damage. */
Test(wal_prealloc, zeros_after_a_tear_and_zeros_in_an_older_file)
{
	struct t_dir src = t_dir_new();
	struct log want = {0};
	const uint64_t N = 6;
	struct t_blob b = write_one_file(&src, N, &want);
	uint64_t offs[16];
	cr_assert_eq(record_offsets(b.data, b.len, offs, 15), N);
	size_t zeros = 8192;
	uint8_t *buf = calloc(1, b.len + zeros);
	memcpy(buf, b.data, b.len);

	/* The last record half written, zeros after it: a tear of everything from that record on. */
	struct t_dir d = t_dir_new();
	char p[600];
	wal_path(&d, 1, p, sizeof p);
	size_t half = (size_t)(offs[N - 1] + (offs[N] - offs[N - 1]) / 2);
	memset(buf + half, 0, b.len - half);
	t_write_file(p, buf, b.len + zeros);
	struct replay rp;
	struct wal_recovery res;
	cr_assert_eq(recover(&d, 0, false, &want, &rp, &res), 0, "%s", err_detail());
	cr_assert_eq(rp.n, N - 1);
	cr_assert_eq(res.torn_bytes, b.len + zeros - offs[N - 1]);
	cr_assert_eq(res.zero_bytes, 0);
	cr_assert_eq(file_size(p), offs[N - 1]);
	t_dir_free(&d);

	/* Whole records then zeros, but a newer file follows: not a crash in progress. */
	d = t_dir_new();
	memcpy(buf, b.data, b.len);
	memset(buf + b.len, 0, zeros);
	wal_path(&d, 1, p, sizeof p);
	t_write_file(p, buf, b.len + zeros);
	struct wal_config c = cfg(&d, STRATA_SYNC_NONE, 0);
	struct wal *w;
	cr_assert_eq(wal_open(&c, N + 1, &w), 0, "%s", err_detail());
	cr_assert_eq(wal_close(w), 0);
	int rc = recover(&d, 0, true, &want, &rp, &res);
	cr_assert_eq(rc, STRATA_ECORRUPT, "rc %d: %s", rc, err_detail());
	cr_assert(strstr(err_detail(), "wal-0000000000000001.log"), "%s", err_detail());
	free(buf);
	free(b.data);
	log_free(&want);
	t_dir_free(&d);
	t_dir_free(&src);
}

/* wal_scan_dir callback: a file that is not the newest ends at its last record. */
static int older_file_whole(void *ctx, const struct wal_file_info *f)
{
	if (f->newest)
		return 0;
	cr_assert_eq(f->size_bytes, f->valid_bytes, "%s: %llu bytes, %llu of them records", f->name,
	             (unsigned long long)f->size_bytes, (unsigned long long)f->valid_bytes);
	++*(int *)ctx;
	return 0;
}

/* Descriptors of this process on WAL files that were unlinked. */
static int deleted_wal_files_open(void)
{
	DIR *d = opendir("/proc/self/fd");
	cr_assert(d);
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		char link[300], target[1024];
		snprintf(link, sizeof link, "/proc/self/fd/%s", e->d_name);
		ssize_t len = readlink(link, target, sizeof target - 1);
		if (len <= 0)
			continue;
		target[len] = 0;
		n += strstr(target, "/wal-") && strstr(target, "(deleted)");
	}
	closedir(d);
	return n;
}

/* Rotations cut each file's zeros before the next file exists (W3): every older file is whole. */
Test(wal_prealloc, rotation_leaves_every_older_file_whole)
{
	unsetenv("STRATA_WAL_PREALLOC");
	struct t_dir d = t_dir_new();
	struct wal_config c = cfg(&d, STRATA_SYNC_ALWAYS, 64 << 10);
	struct wal *w;
	cr_assert_eq(wal_open(&c, 1, &w), 0, "%s", err_detail());
	struct log want = {0};
	uint64_t k = 1;
	struct wal_stats st;
	do {
		uint64_t n = append_until_prealloc(w, &want, k);
		k += n;
		wal_stats(w, &st);
	} while (st.files < 4 && k < 200000);
	cr_assert_geq(st.files, 4);
	cr_assert_gt(st.prealloc_bytes, 0);
	/* While it runs, every file but the newest is whole (zeros only after the newest's records). */
	int older = 0;
	cr_assert_eq(wal_scan_dir(d.path, UUID, DIM, 0, older_file_whole, &older), 0, "%s", err_detail());
	cr_assert_geq(older, 3);
	/* Rotate (the preparer's file is now an old one), then remove every older file, as a
	   flush's checkpoint does: the preparer must not keep a removed file open. */
	cr_assert_eq(wal_rotate(w), 0, "%s", err_detail());
	cr_assert_eq(wal_remove_upto(w, k - 1), 0, "%s", err_detail());
	int held = -1;
	for (int i = 0; i < 2000 && held != 0; i++) {
		held = deleted_wal_files_open();
		if (held)
			usleep(1000);
	}
	cr_assert_eq(held, 0, "%d removed WAL file(s) still open", held);
	cr_assert_eq(wal_close(w), 0);
	/* What is left recovers (checkpoint k - 1: the manifest's, had a flush removed the rest). */
	struct replay rp;
	struct wal_recovery res;
	cr_assert_eq(recover(&d, k - 1, true, &want, &rp, &res), 0, "%s", err_detail());
	cr_assert_eq(rp.n, 0);
	cr_assert_eq(res.next_lsn, k);
	cr_assert_eq(res.torn_bytes + res.zero_bytes, 0);
	log_free(&want);
	t_dir_free(&d);
}

#if STRATA_FAILPOINTS
/* A failed zero write or sync ends preallocation, not the log. */
Test(wal_prealloc, a_failed_zero_write_only_ends_preallocation)
{
	unsetenv("STRATA_WAL_PREALLOC");
	struct t_dir d = t_dir_new();
	struct wal_config c = cfg(&d, STRATA_SYNC_ALWAYS, 0);
	struct wal *w;
	cr_assert_eq(wal_open(&c, 1, &w), 0, "%s", err_detail());
	fp_arm_sticky(FP_PREALLOC, 1, EIO);
	struct log want = {0};
	struct wal_stats st;
	uint64_t k = 1;
	for (int i = 0; i < 5000; i++) {
		cr_assert_eq(append_k(w, k++, &want, NULL), 0, "%s", err_detail());
		wal_stats(w, &st);
		if (st.prealloc_failed)
			break;
		if (i % 16 == 15)
			usleep(1000);
	}
	cr_assert(st.prealloc_failed, "the preparer never tried");
	cr_assert_eq(st.prealloc_bytes, 0);
	for (int i = 0; i < 20; i++)
		cr_assert_eq(append_k(w, k++, &want, NULL), 0, "%s", err_detail());
	fp_disarm_all();
	cr_assert_eq(wal_close(w), 0);
	struct replay rp;
	struct wal_recovery res;
	cr_assert_eq(recover(&d, 0, false, &want, &rp, &res), 0, "%s", err_detail());
	cr_assert_eq(rp.n, k - 1);
	log_free(&want);
	t_dir_free(&d);
}
#endif

Test(wal_prealloc, off_under_sync_none_and_when_asked)
{
	struct t_dir d = t_dir_new();
	struct wal_config c = cfg(&d, STRATA_SYNC_NONE, 0);
	struct wal *w;
	struct wal_stats st;
	cr_assert_eq(wal_open(&c, 1, &w), 0, "%s", err_detail());
	wal_stats(w, &st);
	cr_assert(!st.prealloc_on, "zeros ahead under SYNC_NONE buy nothing");
	cr_assert_eq(wal_close(w), 0);
	c = cfg(&d, STRATA_SYNC_ALWAYS, 0);
	c.no_prealloc = true;
	cr_assert_eq(wal_open(&c, 1, &w), 0, "%s", err_detail());
	wal_stats(w, &st);
	cr_assert(!st.prealloc_on);
	cr_assert_eq(wal_close(w), 0);
	c.no_prealloc = false;
	setenv("STRATA_WAL_PREALLOC", "off", 1);
	cr_assert_eq(wal_open(&c, 1, &w), 0, "%s", err_detail());
	wal_stats(w, &st);
	unsetenv("STRATA_WAL_PREALLOC");
	cr_assert(!st.prealloc_on);
	cr_assert_eq(wal_close(w), 0);
	c = cfg(&d, STRATA_SYNC_INTERVAL, 0);
	cr_assert_eq(wal_open(&c, 1, &w), 0, "%s", err_detail());
	wal_stats(w, &st);
	cr_assert(st.prealloc_on);
	cr_assert_eq(wal_close(w), 0);
	t_dir_free(&d);
}
