/*
 * wal_reader.c - recovery and inspection of the WAL files of a directory
 * (wal_recover, wal_scan_dir in wal.h; the rules are FORMAT.md 10.5-10.6).
 *
 * Reads each file front to back through a bounded window (pread through the
 * fio seam; memory is one window plus at most one record of WAL_RECORD_MAX),
 * hands whole records to the caller in LSN order, and classifies the first
 * bytes that are not a whole record: the end of the newest file's valid part
 * when no valid record follows (a torn tail: cut, W5), corruption otherwise.
 * It must never apply a record whose LSN breaks the sequence, never cut
 * anything but the newest file's tail, and never cut when read-only. The
 * search for a valid record after damage hashes at most a budget of bytes
 * proportional to the file, so a hostile file cannot make it quadratic.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "fio.h"
#include "le.h"
#include "wal_internal.h"

#define ULL(x) ((unsigned long long)(x))
#define WAL_WINDOW (1u << 20)

/* The dim word of an upsert payload (walrec_payload_check has seen its 8 bytes). */
static uint32_t le_dim(const uint8_t *payload)
{
	return le_load32(payload + 4);
}

/* A read window over one file: buf holds the bytes [base, base + len). */
struct wal_rd {
	int fd;
	const char *path;
	uint64_t size;
	uint8_t *buf;
	size_t cap, len;
	uint64_t base;
};

/*
 * Make the window hold [pos, pos + need), or up to the end of the file when
 * it ends first. Reads ahead as far as the buffer allows.
 */
static int wal_rd_fill(struct wal_rd *r, uint64_t pos, size_t need)
{
	if (pos >= r->base && pos - r->base <= r->len) {
		size_t have = r->len - (size_t)(pos - r->base);
		if (have >= need || r->base + r->len >= r->size)
			return 0;
		if (have && pos != r->base) /* records start at buf[0]: 8-aligned */
			memmove(r->buf, r->buf + (pos - r->base), have);
		r->len = have;
	} else {
		r->len = 0;
	}
	r->base = pos;
	size_t want = need > WAL_WINDOW ? need : WAL_WINDOW;
	if (r->cap < want) {
		uint8_t *nb = realloc(r->buf, want);
		if (!nb)
			return err_set(STRATA_ENOMEM, "wal: read window of %zu bytes", want);
		r->buf = nb;
		r->cap = want;
	}
	uint64_t end = r->base + r->len;
	uint64_t left = r->size - end;
	size_t n = r->cap - r->len < left ? r->cap - r->len : (size_t)left;
	if (n) {
		int rc = fio_pread_all(r->fd, r->buf + r->len, n, end, r->path);
		if (rc)
			return rc;
		r->len += n;
	}
	return 0;
}

/* Decode at file offset pos, reading as much as the record needs. */
static int wal_rd_decode(struct wal_rd *r, uint64_t pos, struct walrec *rec, uint64_t *budget)
{
	int rc = wal_rd_fill(r, pos, WAL_RECORD_HEADER_SIZE);
	if (rc)
		return rc;
	int d = walrec_decode(r->buf, r->len, (size_t)(pos - r->base), rec);
	if (d == WALREC_MORE && rec->total_len && rec->total_len <= r->size - pos) {
		if (budget) {
			if (*budget < rec->total_len) {
				*budget = 0; /* the caller gives up: never skip a candidate unchecked */
				return WALREC_MORE;
			}
			*budget -= rec->total_len;
		}
		if ((rc = wal_rd_fill(r, pos, rec->total_len)))
			return rc;
		d = walrec_decode(r->buf, r->len, (size_t)(pos - r->base), rec);
	} else if (budget && d != WALREC_MORE && rec->total_len) {
		*budget = *budget > rec->total_len ? *budget - rec->total_len : 0;
	}
	return d;
}

struct wal_scan {
	const uint8_t *uuid; /* NULL: any */
	uint32_t dim;        /* 0: any */
	uint64_t after_lsn;
	bool check_start;    /* the first file must start at or below after_lsn + 1 */
	wal_apply_fn fn;
	void *fn_ctx;
	uint64_t next_lsn;   /* the LSN the next record must carry; 0 before the first file */
};

/* Any non-zero byte in [from, size)? Sets *zero. */
static int wal_rd_all_zero(struct wal_rd *r, uint64_t from, bool *zero)
{
	*zero = true;
	for (uint64_t pos = from; pos < r->size;) {
		int rc = wal_rd_fill(r, pos, WAL_WINDOW);
		if (rc)
			return rc;
		/* The window may start before pos (it is reused when it holds pos already). */
		for (size_t i = (size_t)(pos - r->base); i < r->len; i++)
			if (r->buf[i]) {
				*zero = false;
				return 0;
			}
		pos = r->base + r->len;
	}
	return 0;
}

/*
 * Is there a valid record anywhere in (damage, size), at a multiple of 8 from
 * the file start? *found_out = its offset, or 0. Hashes at most a budget of
 * twice the remaining bytes plus 64 MiB; beyond it the answer is "cannot
 * tell", which is reported as corruption (never a cut of unknown bytes).
 */
static int wal_find_valid_after(struct wal_rd *r, uint64_t damage, uint64_t *found_out,
                                bool *gave_up)
{
	*found_out = 0;
	*gave_up = false;
	uint64_t budget = 2 * (r->size - damage) + (64u << 20);
	for (uint64_t p = damage + 8; p < r->size && r->size - p >= WAL_RECORD_MIN; p += 8) {
		struct walrec rec;
		int d = wal_rd_decode(r, p, &rec, &budget);
		if (d == 0) {
			*found_out = p;
			return 0;
		}
		if (d < 0 && !STRATA_IS_DATA_ERROR(d))
			return d; /* I/O */
		if (budget == 0) {
			*gave_up = true;
			return 0;
		}
	}
	return 0;
}

/* Read one file; fill *info. The caller has opened nothing; this opens and closes. */
static int wal_read_file(struct wal_scan *s, const char *dir, uint64_t name_lsn, bool newest,
                         struct wal_file_info *info)
{
	char path[WAL_PATH_MAX];
	memset(info, 0, sizeof *info);
	walrec_file_name(name_lsn, info->name, sizeof info->name);
	info->first_lsn = name_lsn;
	info->newest = newest;
	const char *name = info->name;
	int rc = wal_path_join(path, sizeof path, dir, name);
	if (rc)
		return rc;
	struct wal_rd r = {.fd = -1, .path = path};
	if ((rc = fio_open(path, O_RDONLY, 0, &r.fd)))
		return rc;
	if ((rc = fio_file_size(r.fd, &r.size, path)))
		goto out;
	info->size_bytes = r.size;

	/* The header. A torn one ends the log only in the newest file (a crash during creation). */
	bool zero = false;
	if (r.size >= WAL_FILE_HEADER_SIZE && (rc = wal_rd_fill(&r, 0, WAL_FILE_HEADER_SIZE)))
		goto out;
	if (r.size >= WAL_FILE_HEADER_SIZE && (rc = wal_rd_all_zero(&r, 0, &zero)))
		goto out;
	if (r.size < WAL_FILE_HEADER_SIZE || zero) {
		if (newest) {
			info->torn_header = true;
			info->torn_bytes = r.size;
			goto out;
		}
		rc = ERR_CORRUPT("%s: %llu bytes%s, but it is not the newest WAL file", name,
		                 ULL(r.size), zero ? " of zeros" : ", shorter than its header");
		goto out;
	}
	if ((rc = wal_rd_fill(&r, 0, WAL_FILE_HEADER_SIZE)))
		goto out;
	struct walrec_file_header h;
	if ((rc = walrec_file_header_decode(r.buf, r.len, &h))) {
		err_prefix(rc, name);
		goto out;
	}
	if (s->uuid && memcmp(h.db_uuid, s->uuid, 16) != 0) {
		rc = ERR_CORRUPT("%s: a WAL file of another database (its uuid differs)", name);
		goto out;
	}
	if (s->dim && h.dim != s->dim) {
		rc = ERR_CORRUPT("%s: dim %u, the database's is %u", name, h.dim, s->dim);
		goto out;
	}
	if (h.first_lsn != name_lsn) {
		rc = ERR_CORRUPT("%s: its header says first_lsn %llu", name, ULL(h.first_lsn));
		goto out;
	}
	/* Continuity with the previous file (FORMAT.md 10.5). */
	if (s->next_lsn == 0) {
		if (s->check_start && h.first_lsn > s->after_lsn + 1) {
			rc = ERR_CORRUPT("%s: the log starts at lsn %llu, records %llu..%llu after the "
			                 "checkpoint are missing", name, ULL(h.first_lsn),
			                 ULL(s->after_lsn + 1), ULL(h.first_lsn - 1));
			goto out;
		}
	} else if (h.first_lsn < s->next_lsn ||
	           (h.first_lsn > s->next_lsn && h.first_lsn > s->after_lsn + 1)) {
		rc = ERR_CORRUPT("%s: starts at lsn %llu, the previous file ends before %llu (a %s)",
		                 name, ULL(h.first_lsn), ULL(s->next_lsn),
		                 h.first_lsn < s->next_lsn ? "overlap" : "gap");
		goto out;
	}
	s->next_lsn = h.first_lsn;

	/* The records. */
	uint64_t pos = WAL_FILE_HEADER_SIZE;
	int damage = 0;
	while (pos < r.size) {
		struct walrec rec;
		int d = wal_rd_decode(&r, pos, &rec, NULL);
		if (d == WALREC_MORE) {
			damage = err_set(STRATA_ECORRUPT, "record: the file ends %llu bytes into it%s",
			                 ULL(r.size - pos), rec.total_len ? "" : " (inside its header)");
			break;
		}
		if (d < 0 && !STRATA_IS_DATA_ERROR(d)) {
			rc = d;
			goto out;
		}
		if (d < 0) {
			damage = d;
			break;
		}
		/* A whole record with a valid checksum: anything wrong now is not a torn write. */
		if (rec.lsn != s->next_lsn) {
			rc = ERR_CORRUPT("%s: byte offset %llu: lsn %llu where %llu is next", name, ULL(pos),
			                 ULL(rec.lsn), ULL(s->next_lsn));
			goto out;
		}
		if ((rc = walrec_payload_check(rec.type, rec.payload, rec.payload_len))) {
			char why[ERR_DETAIL_MAX];
			snprintf(why, sizeof why, "%s", err_detail());
			err_set(rc, "%s: byte offset %llu (lsn %llu): %s", name, ULL(pos), ULL(rec.lsn), why);
			goto out;
		}
		if (rec.type == WAL_REC_UPSERT && le_dim(rec.payload) != h.dim) {
			rc = ERR_CORRUPT("%s: byte offset %llu (lsn %llu): upsert of dim %u in a file of dim %u",
			                 name, ULL(pos), ULL(rec.lsn), le_dim(rec.payload), h.dim);
			goto out;
		}
		if (s->fn && rec.lsn > s->after_lsn) {
			if ((rc = s->fn(s->fn_ctx, rec.lsn, rec.type, rec.payload, rec.payload_len)))
				goto out;
		}
		info->records++;
		info->last_lsn = rec.lsn;
		s->next_lsn = rec.lsn + 1;
		pos += rec.total_len;
	}
	info->valid_bytes = pos;
	if (!damage)
		goto out;
	if (newest) {
		/* Zeros from here to the end: space the writer's preparer wrote ahead (10.6), not a tear. */
		bool zeros;
		if ((rc = wal_rd_all_zero(&r, pos, &zeros)))
			goto out;
		if (zeros) {
			info->zero_bytes = r.size - pos;
			goto out;
		}
	}

	/* Damage at pos: a torn tail only if this is the newest file and nothing valid follows. */
	char why[ERR_DETAIL_MAX];
	snprintf(why, sizeof why, "%s", err_detail());
	if (!newest) {
		rc = err_set(damage, "%s: damaged record at byte offset %llu (file size %llu), not the "
		             "newest WAL file: %s", name, ULL(pos), ULL(r.size), why);
		goto out;
	}
	uint64_t found;
	bool gave_up;
	if ((rc = wal_find_valid_after(&r, pos, &found, &gave_up)))
		goto out;
	if (found) {
		rc = err_set(damage, "%s: damaged record at byte offset %llu, followed by a valid "
		             "record at byte offset %llu: %s", name, ULL(pos), ULL(found), why);
		goto out;
	}
	if (gave_up) {
		rc = err_set(damage, "%s: damaged record at byte offset %llu, and the bytes after it "
		             "cannot be told from records: %s", name, ULL(pos), why);
		goto out;
	}
	info->torn_bytes = r.size - pos;
out:
	if (rc) {
		info->error = rc;
		snprintf(info->detail, sizeof info->detail, "%s", err_detail());
	}
	free(r.buf);
	if (r.fd >= 0)
		fio_close(r.fd);
	return rc;
}

static double wal_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Cut the newest file back to its last whole record, durably (W5). */
static int wal_cut_tail(const char *dir, const struct wal_file_info *f)
{
	char path[WAL_PATH_MAX];
	int fd = -1;
	int rc = wal_path_join(path, sizeof path, dir, f->name);
	if (rc || (rc = fio_open(path, O_WRONLY, 0, &fd)))
		return rc;
	rc = fio_ftruncate(fd, f->valid_bytes, path);
	if (!rc)
		fp_step("wal.tail_cut");
	if (!rc && fio_fsync(fd, path))
		rc = err_prefix(STRATA_EFSYNC, "wal");
	fio_close(fd);
	return rc;
}

/* Remove the newest file whose header was torn (a crash while creating it). */
static int wal_drop_torn(const char *dir, const struct wal_file_info *f)
{
	char path[WAL_PATH_MAX];
	int rc = wal_path_join(path, sizeof path, dir, f->name);
	if (rc || (rc = fio_unlink(path)))
		return rc;
	return fio_fsync_dir(dir);
}

int wal_recover(const struct wal_config *c, uint64_t after_lsn, bool readonly,
                wal_apply_fn fn, void *ctx, struct wal_recovery *out)
{
	double t0 = wal_now();
	struct wal_recovery res;
	memset(&res, 0, sizeof res);
	if (out)
		*out = res;
	if (!c || !c->dir || !out)
		return err_set(STRATA_EINVAL, "wal_recover: no configuration, directory or output");
	uint64_t *lsns = NULL;
	size_t n = 0;
	int rc = wal_files_list(c->dir, &lsns, &n);
	if (rc == STRATA_ENOTFOUND)
		rc = 0; /* no directory, no log */
	struct wal_scan s = {
		.uuid = c->db_uuid, .dim = c->dim, .after_lsn = after_lsn, .check_start = true,
		.fn = fn, .fn_ctx = ctx,
	};
	for (size_t i = 0; i < n && !rc; i++) {
		struct wal_file_info f;
		rc = wal_read_file(&s, c->dir, lsns[i], i + 1 == n, &f);
		if (rc)
			break;
		if (f.torn_header) {
			res.torn_headers++;
			if (!readonly)
				rc = wal_drop_torn(c->dir, &f);
			continue;
		}
		res.files++;
		res.records += f.records;
		res.bytes += f.valid_bytes;
		if (f.records) {
			res.last_lsn = f.last_lsn;
			res.records_applied += f.last_lsn > after_lsn
			                       ? (f.last_lsn - after_lsn < f.records ? f.last_lsn - after_lsn : f.records)
			                       : 0;
		}
		if (f.torn_bytes) {
			res.torn_bytes = f.torn_bytes;
			snprintf(res.torn_file, sizeof res.torn_file, "%s", f.name);
		}
		res.zero_bytes += f.zero_bytes;
		if ((f.torn_bytes || f.zero_bytes) && !readonly)
			rc = wal_cut_tail(c->dir, &f);
	}
	free(lsns);
	res.next_lsn = s.next_lsn;
	res.seconds = wal_now() - t0;
	*out = res;
	return rc;
}

int wal_scan_dir(const char *dir, const uint8_t *db_uuid, uint32_t dim, uint64_t checkpoint_lsn,
                 wal_scan_fn fn, void *ctx)
{
	if (!dir || !fn)
		return err_set(STRATA_EINVAL, "wal_scan_dir: no directory or callback");
	uint64_t *lsns = NULL;
	size_t n = 0;
	int rc = wal_files_list(dir, &lsns, &n);
	if (rc)
		return rc == STRATA_ENOTFOUND ? 0 : rc;
	struct wal_scan s = {
		.uuid = db_uuid, .dim = dim, .after_lsn = checkpoint_lsn, .check_start = true,
	};
	int first_err = 0;
	char first_detail[ERR_DETAIL_MAX] = "";
	for (size_t i = 0; i < n; i++) {
		struct wal_file_info f;
		int frc = wal_read_file(&s, dir, lsns[i], i + 1 == n, &f);
		if (frc && !STRATA_IS_DATA_ERROR(frc) && !f.error) {
			f.error = frc;
			snprintf(f.detail, sizeof f.detail, "%s", err_detail());
		}
		if (frc && !first_err) {
			first_err = frc;
			snprintf(first_detail, sizeof first_detail, "%s", f.detail);
		}
		if (frc) {
			/* After a damaged file the next one starts a run of its own. */
			s.next_lsn = 0;
			s.check_start = false;
		}
		int crc = fn(ctx, &f);
		if (crc) {
			free(lsns);
			return crc;
		}
	}
	free(lsns);
	if (first_err)
		return err_set(first_err, "%s", first_detail);
	return 0;
}
