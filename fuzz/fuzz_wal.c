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
 * With -Dfuzz_no_checksums=true (the *_nock executables) the checksums pass.
 */
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include "fuzz_helpers.h"
#include "le.h"
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
};

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
	} else {
		FZ_ASSERT(type == WAL_REC_DELETE, "replayed type %u", type);
		FZ_ASSERT(walrec_delete_view(payload, len, &n, &ids) == 0, "replayed delete refused");
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
                      struct fz_replay *rp)
{
	memset(rp, 0, sizeof *rp);
	rp->next = after + 1;
	err_clear();
	int rc = wal_recover(c, after, ro, fz_apply, rp, res);
	if (rc)
		FZ_ASSERT_DATA_ERROR(rc, ro ? "wal_recover (read-only)" : "wal_recover");
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!fz_dir[0])
		LLVMFuzzerInitialize(NULL, NULL);
	fz_clear();
	uint64_t first = size >= 40 ? le_load64(data + WAL_OFF_FIRST_LSN) : 0;
	if (first == 0)
		first = 1;
	char name[WAL_FILE_NAME_LEN + 1], path[1024];
	walrec_file_name(first, name, sizeof name);
	snprintf(path, sizeof path, "%s/%s", fz_dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	FZ_ASSERT(fd >= 0, "create %s", path);
	FZ_ASSERT(write(fd, data, size) == (ssize_t)size, "write %s", path);
	close(fd);

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
	int rc_ro = fz_recover(&c, after, true, &ro, &a);
	FZ_ASSERT((rc_ro == 0) == (src == 0), "scan says %d, read-only recovery %d", src, rc_ro);
	if (rc_ro == 0) {
		FZ_ASSERT(fi.records == ro.records, "scan counts %llu records, recovery %llu",
		          (unsigned long long)fi.records, (unsigned long long)ro.records);
		FZ_ASSERT(fi.torn_bytes == ro.torn_bytes || fi.torn_header,
		          "scan and recovery disagree on the torn tail");
		FZ_ASSERT(a.n == ro.records_applied, "%llu applied, %llu reported",
		          (unsigned long long)a.n, (unsigned long long)ro.records_applied);
	}
	int rc_rw = fz_recover(&c, after, false, &rw, &b);
	FZ_ASSERT(rc_rw == rc_ro, "read-only recovery says %d, for real %d", rc_ro, rc_rw);
	if (rc_rw)
		return 0;
	FZ_ASSERT(b.n == a.n && b.sum == a.sum && rw.last_lsn == ro.last_lsn &&
	              rw.torn_bytes == ro.torn_bytes,
	          "read-only and real recovery replay differently");

	int rc2 = fz_recover(&c, after, true, &again, &c2);
	FZ_ASSERT(rc2 == 0, "after a successful recovery the log is refused: %d", rc2);
	FZ_ASSERT(again.torn_bytes == 0 && again.torn_headers == 0, "a torn tail is left after the cut");
	FZ_ASSERT(again.records == rw.records && again.last_lsn == rw.last_lsn && c2.sum == b.sum,
	          "the cut changed the whole records");
	if (rw.torn_headers)
		FZ_ASSERT(again.files == 0, "the torn-header file was not removed");
	return 0;
}
