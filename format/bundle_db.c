/*
 * bundle_db.c - what makes a bundle a database (bundle.h; FORMAT.md, "Bundle
 * file", 8.7 "The database rule"): the consistent snapshot pack reads,
 * unpack into a directory, verify in memory.
 *
 * Owns the database rule of a bundle (the MANIFEST first, then exactly the
 * segments and deletion files it names, each matching its entry, segments
 * passing seg_check and seg_verify, deletion files bound to their segments,
 * WAL files whole and continuing the MANIFEST's checkpoint) and unpack's
 * promise: nothing appears under the target directory unless every byte
 * checked out, and a failed unpack removes what it wrote. It must never
 * create a file from a name the codec has not checked, write outside its
 * temporary directory, or hold more than one entry in memory.
 *
 * The snapshot (pack's side) reads a database a writer may be changing: it
 * reads the MANIFEST once, then opens what those bytes name; a file gone
 * under a MANIFEST that has changed since is a commit that came between, and
 * the snapshot starts over (as strata_open with STRATA_READONLY does).
 *
 * Unpack lifecycle (each arrow names the call that makes it):
 *
 *   target free? --unpack_target_free--> stale temporaries removed
 *     --remove_stale--> .<name>.unpack-XXXXXX made and flocked (fio_mkdtemp)
 *     --unpack_file / write_small, per entry--> every file written, fsynced, verified
 *     --dbr_finish--> nothing missing --opts.finish (may replay the WAL)-->
 *     --fio_rename--> <name> --fio_fsync_dir(parent)
 *   any failure: remove_tree(temporary), or of <name> if only the parent's
 *   fsync failed; a kill leaves the locked-then-abandoned temporary, which
 *   the next unpack of <name> removes.
 */
#include "bundle.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "fio.h"
#include "le.h"
#include "manifest.h"
#include "segment.h"
#include "tombstone.h"
#include "wal_record.h"

#define ULL(x) ((unsigned long long)(x))
#define PATH_LEN 4096
#define CHUNK (1u << 20)
#define MANIFEST_MAX ((uint64_t)MF_HEADER_SIZE + (uint64_t)MF_ENTRY_SIZE * MF_SEGMENTS_MAX)

static bool path_join(char *buf, size_t len, const char *dir, const char *name)
{
	int n = snprintf(buf, len, "%s/%s", dir, name);
	return n >= 0 && (size_t)n < len;
}

/* ---- the snapshot pack reads ---------------------------------------------------------- */

#define SNAP_ATTEMPTS 16
#define SNAP_RACE 1 /* a commit came between reading the MANIFEST and opening a file: start over */

void bundle_snapshot_free(struct bundle_snapshot *s)
{
	if (!s)
		return;
	for (uint32_t i = 1; i < s->count; i++) {
		if (s->files[i].kind == BUNDLE_KIND_SEGMENT)
			fio_munmap(s->files[i].data, (size_t)s->files[i].size);
		else
			free((void *)s->files[i].data);
	}
	for (uint32_t i = 0; s->segs && i < s->segments; i++)
		free(s->segs[i].deleted);
	free(s->segs);
	free(s->files);
	free(s->manifest);
	memset(s, 0, sizeof *s);
}

/*
 * A file the MANIFEST of `generation` names, or WAL records after its
 * checkpoint, are gone (the detail says which). If the MANIFEST has been
 * replaced since, a commit came between and removed them: SNAP_RACE. If not,
 * the database is damaged: STRATA_ECORRUPT (the manifest promises them).
 */
static int snap_gone(const char *dir, uint64_t generation)
{
	char why[ERR_DETAIL_MAX];
	snprintf(why, sizeof why, "%s", err_detail());
	struct mf_manifest now;
	if (mf_load(dir, &now) == 0) {
		bool changed = now.generation != generation;
		mf_free(&now);
		if (changed)
			return SNAP_RACE;
	}
	return err_set(STRATA_ECORRUPT, "%s", why);
}

/* Map one segment the manifest names and hold it to its entry. STRATA_ENOTFOUND if it is gone. */
static int snapshot_segment(const char *dir, const struct mf_manifest *mf,
                            const struct mf_segment *e, struct bundle_snap_seg *ss,
                            struct bundle_file *f)
{
	char path[PATH_LEN];
	f->kind = BUNDLE_KIND_SEGMENT;
	mf_segment_name(e->seq, f->name, sizeof f->name);
	if (!path_join(path, sizeof path, dir, f->name))
		return err_set(STRATA_EINVAL, "%s/%s: path too long", dir, f->name);
	int fd = -1;
	int rc = fio_open(path, O_RDONLY, 0, &fd);
	if (rc == STRATA_ENOTFOUND)
		return err_set(STRATA_ENOTFOUND, "%s: named by the MANIFEST but missing", f->name);
	if (rc)
		return rc;
	uint64_t size = 0;
	const void *map = NULL;
	if ((rc = fio_file_size(fd, &size, path)))
		goto out;
	if (size != e->file_size) {
		rc = err_set(size < e->file_size ? STRATA_ETRUNCATED : STRATA_ECORRUPT,
		             "%s: %llu bytes, the MANIFEST entry says %llu", f->name, ULL(size),
		             ULL(e->file_size));
		goto out;
	}
	if (size > SIZE_MAX) {
		rc = err_set(STRATA_ELIMIT, "%s: %llu bytes cannot be mapped", f->name, ULL(size));
		goto out;
	}
	if ((rc = fio_mmap_ro(fd, (size_t)size, path, &map)))
		goto out;
	struct seg_info *in = &ss->info;
	if ((rc = seg_check(map, (size_t)size, in))) {
		err_prefix(rc, f->name);
		goto out;
	}
	if (in->header_xxh3 != e->header_xxh3 || in->count != e->count) {
		rc = err_set(STRATA_ECORRUPT, "%s: header checksum 0x%016llx and count %llu, the MANIFEST "
		             "entry says 0x%016llx and %llu", f->name, ULL(in->header_xxh3),
		             ULL(in->count), ULL(e->header_xxh3), ULL(e->count));
		goto out;
	}
	if (in->dim != mf->dim || in->metric != mf->metric || in->M != mf->M) {
		rc = err_set(STRATA_ECORRUPT, "%s: dim %u, metric %u, M %u differ from the MANIFEST's "
		             "%u, %u, %u", f->name, in->dim, in->metric, in->M, mf->dim, mf->metric, mf->M);
		goto out;
	}
	f->data = map;
	f->size = size;
	map = NULL;
out:
	fio_munmap(map, (size_t)size);
	fio_close(fd); /* the mapping stays valid, also once the writer deletes the file */
	return rc;
}

/* Read and decode the deletion file entry `e` names. STRATA_ENOTFOUND if it is gone. */
static int snapshot_deletion(const char *dir, const struct mf_segment *e,
                             struct bundle_snap_seg *ss, struct bundle_file *f)
{
	char path[PATH_LEN];
	f->kind = BUNDLE_KIND_DELETION;
	tomb_file_name(e->seq, e->tomb_gen, f->name, sizeof f->name);
	if (!path_join(path, sizeof path, dir, f->name))
		return err_set(STRATA_EINVAL, "%s/%s: path too long", dir, f->name);
	uint64_t want = tomb_file_size(e->count);
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc = fio_read_file(path, want <= SIZE_MAX ? (size_t)want : SIZE_MAX, &buf, &len);
	if (rc == STRATA_ENOTFOUND)
		return err_set(STRATA_ENOTFOUND, "%s: named by the MANIFEST but missing", f->name);
	if (rc == STRATA_ELIMIT)
		return err_set(STRATA_ECORRUPT, "%s: longer than the %llu bytes of a deletion file of "
		               "%llu nodes", f->name, ULL(want), ULL(e->count));
	if (rc)
		return rc;
	rc = tomb_decode(buf, len, e->seq, e->header_xxh3, e->tomb_gen, e->count, &ss->deleted,
	                 &ss->n_deleted);
	if (rc) {
		free(buf);
		return err_prefix(rc, f->name);
	}
	f->data = buf;
	f->size = len;
	return 0;
}

struct wal_name {
	uint64_t lsn;
	char name[WAL_FILE_NAME_LEN + 1];
};

static int wal_name_cmp(const void *a, const void *b)
{
	uint64_t x = ((const struct wal_name *)a)->lsn, y = ((const struct wal_name *)b)->lsn;
	return (x > y) - (x < y);
}

/* The WAL files of `dir`, sorted by first LSN (malloc'd; *n_out of them). */
static int wal_list(const char *dir, struct wal_name **out, size_t *n_out)
{
	DIR *d = opendir(dir);
	if (!d)
		return err_set(err_from_errno(-errno), "%s: %s", dir, strerror(errno));
	struct wal_name *v = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		uint64_t lsn;
		if (walrec_file_name_parse(de->d_name, &lsn) != 0)
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 16;
			struct wal_name *p = realloc(v, cap * sizeof *v);
			if (!p) {
				rc = err_set(STRATA_ENOMEM, "%zu WAL file names", cap);
				break;
			}
			v = p;
		}
		v[n].lsn = lsn;
		walrec_file_name(lsn, v[n].name, sizeof v[n].name); /* = d_name: the parse is exact */
		n++;
	}
	closedir(d);
	if (rc) {
		free(v);
		return rc;
	}
	if (n > 1)
		qsort(v, n, sizeof *v, wal_name_cmp);
	*out = v;
	*n_out = n;
	return 0;
}

/* A WAL file's bytes as they are now (it may be growing: what a read to its end gets). */
static int wal_read(const char *path, const char *name, uint8_t **buf_out, size_t *len_out)
{
	int fd = -1;
	int rc = fio_open(path, O_RDONLY, 0, &fd);
	if (rc == STRATA_ENOTFOUND)
		return err_set(STRATA_ENOTFOUND, "%s: listed, then gone before it was opened", name);
	if (rc)
		return rc;
	uint64_t size = 0;
	uint8_t *buf = NULL;
	size_t len = 0;
	if ((rc = fio_file_size(fd, &size, path)))
		goto out;
	if (size > SIZE_MAX - 1) {
		rc = err_set(STRATA_ELIMIT, "%s: %llu bytes", name, ULL(size));
		goto out;
	}
	if (!(buf = malloc(size ? (size_t)size : 1))) {
		rc = err_set(STRATA_ENOMEM, "%s: %llu bytes", name, ULL(size));
		goto out;
	}
	while (len < size) { /* a file cut meanwhile (a failed write taken back) reads short */
		size_t n = 0;
		if ((rc = fio_read(fd, buf + len, (size_t)size - len, &n, path)))
			goto out;
		if (n == 0)
			break;
		len += n;
	}
out:
	fio_close(fd);
	if (rc) {
		free(buf);
		return rc;
	}
	*buf_out = buf;
	*len_out = len;
	return 0;
}

/* What a walk over a WAL file's records found. */
struct wal_walk {
	uint64_t first_lsn;   /* the header's */
	uint64_t next_lsn;    /* the LSN after the last whole record (first_lsn if none) */
	uint64_t records;
	uint64_t above;       /* records with an LSN above the checkpoint */
	uint64_t end;         /* where the whole records end */
};

/*
 * Check the header of the WAL file `name` held in buf[0..len) against the
 * database (FORMAT.md 10.5, item 1) and walk its records from the front: each
 * whole and valid (10.3), with a payload as 10.4 says, an upsert of the
 * database's dim, LSNs consecutive from the header's first_lsn. Stops at the
 * first bytes that are not a whole valid record: with `whole` set those are
 * an error (ECORRUPT or ECHECKSUM, naming the offset); without, the walk ends
 * there (a tail being written, or torn) and w->end says where. A record
 * whose checksum matched but whose content breaks the rules is an error
 * either way: it cannot be a tear.
 */
static int wal_walk(const uint8_t *buf, size_t len, const char *name, const uint8_t uuid[16],
                    uint32_t dim, uint64_t checkpoint_lsn, bool whole, struct wal_walk *w)
{
	struct walrec_file_header h;
	uint64_t name_lsn = 0;
	memset(w, 0, sizeof *w);
	int rc = walrec_file_header_decode(buf, len, &h);
	if (rc)
		return err_prefix(rc, name);
	if (walrec_file_name_parse(name, &name_lsn) != 0 || h.first_lsn != name_lsn)
		return ERR_CORRUPT("%s: first_lsn %llu is not the one in its name", name,
		                   ULL(h.first_lsn));
	if (memcmp(h.db_uuid, uuid, 16) != 0)
		return ERR_CORRUPT("%s: the WAL file of another database (db_uuid differs from the "
		                   "MANIFEST's)", name);
	if (h.dim != dim)
		return ERR_CORRUPT("%s: dim %u, the MANIFEST's is %u", name, h.dim, dim);
	w->first_lsn = w->next_lsn = h.first_lsn;
	size_t pos = WAL_FILE_HEADER_SIZE;
	while (pos < len) {
		struct walrec rec;
		rc = walrec_decode(buf, len, pos, &rec);
		if (rc == 0) {
			if (rec.lsn != w->next_lsn)
				return ERR_CORRUPT("%s: the record at offset %zu has lsn %llu where %llu is "
				                   "next", name, pos, ULL(rec.lsn), ULL(w->next_lsn));
			if ((rc = walrec_payload_check(rec.type, rec.payload, rec.payload_len)))
				return err_prefix(rc, name);
			if (rec.type == WAL_REC_UPSERT && le_load32(rec.payload + 4) != dim)
				return ERR_CORRUPT("%s: the record at offset %zu upserts vectors of dim %u, the "
				                   "database's is %u", name, pos, le_load32(rec.payload + 4), dim);
			w->records++;
			w->above += rec.lsn > checkpoint_lsn;
			w->next_lsn = rec.lsn + 1;
			pos += rec.total_len;
			continue;
		}
		if (!whole)
			break;
		if (rc == WALREC_MORE)
			return ERR_CORRUPT("%s: ends %zu bytes into a record at offset %zu (a bundle holds "
			                   "whole records only)", name, len - pos, pos);
		char pre[96];
		snprintf(pre, sizeof pre, "%s: the record at offset %zu", name, pos);
		return err_prefix(rc, pre);
	}
	w->end = pos;
	return 0;
}

static bool all_zero(const uint8_t *buf, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (buf[i])
			return false;
	return true;
}

static int snap_add_file(struct bundle_snapshot *s, uint32_t *cap, const struct bundle_file *f)
{
	if (s->count == *cap) {
		uint32_t c = 2 * *cap;
		struct bundle_file *p = realloc(s->files, (size_t)c * sizeof *p);
		if (!p)
			return err_set(STRATA_ENOMEM, "%u files", c);
		s->files = p;
		*cap = c;
	}
	s->files[s->count++] = *f;
	return 0;
}

/*
 * The WAL records after the checkpoint, as files to pack: from the file
 * holding checkpoint_lsn + 1 (the last whose first LSN is at or below it) to
 * the newest, each cut after its last whole record (only the newest may end
 * in anything else: a write in progress, or a torn tail), LSNs continuing
 * from file to file. A newest file too short for its header, or all zeros,
 * is being created (or was, when a crash came): it holds no record. Trailing
 * files without records are left out; with no record above the checkpoint,
 * no file is. STRATA_ENOTFOUND when files or records are gone (snap_gone
 * decides whether a commit removed them).
 */
static int snapshot_wal(const char *dir, const struct mf_manifest *mf, struct bundle_snapshot *s,
                        uint32_t *cap)
{
	struct wal_name *v = NULL;
	size_t n = 0;
	int rc = wal_list(dir, &v, &n);
	if (rc)
		return rc;
	uint64_t c = mf->checkpoint_lsn;
	size_t start = 0;
	for (size_t i = 0; i < n; i++)
		if (c == UINT64_MAX || v[i].lsn <= c + 1)
			start = i;
	uint32_t first_file = s->count, keep = s->count;
	uint64_t next = 0;          /* the LSN the next file must start at; 0 before the first */
	uint64_t lsn_end = c + 1;   /* the LSN after the last record of the files kept */
	for (size_t i = start; i < n && !rc; i++) {
		char path[PATH_LEN];
		uint8_t *buf = NULL;
		size_t len = 0;
		bool newest = i + 1 == n;
		if (!path_join(path, sizeof path, dir, v[i].name)) {
			rc = err_set(STRATA_EINVAL, "%s/%s: path too long", dir, v[i].name);
			break;
		}
		if ((rc = wal_read(path, v[i].name, &buf, &len)))
			break;
		if (newest && (len < WAL_FILE_HEADER_SIZE || all_zero(buf, len))) {
			s->wal_cut_bytes += len;
			free(buf);
			break;
		}
		struct wal_walk w;
		rc = wal_walk(buf, len, v[i].name, mf->db_uuid, mf->dim, c, !newest, &w);
		if (!rc && next == 0 && w.first_lsn > c + 1)
			rc = err_set(STRATA_ENOTFOUND, "WAL records %llu..%llu, after the MANIFEST's "
			             "checkpoint %llu, are missing (the oldest WAL file, %s, starts at %llu)",
			             ULL(c + 1), ULL(w.first_lsn - 1), ULL(c), v[i].name, ULL(w.first_lsn));
		else if (!rc && next != 0 && w.first_lsn != next)
			rc = err_set(w.first_lsn > next ? STRATA_ENOTFOUND : STRATA_ECORRUPT,
			             "%s starts at LSN %llu, the WAL file before it ends before %llu",
			             v[i].name, ULL(w.first_lsn), ULL(next));
		struct bundle_file f = {.kind = BUNDLE_KIND_WAL, .data = buf, .size = w.end};
		snprintf(f.name, sizeof f.name, "%s", v[i].name);
		if (!rc)
			rc = snap_add_file(s, cap, &f);
		if (rc) {
			free(buf);
			break;
		}
		if (newest)
			s->wal_cut_bytes += len - w.end;
		s->wal_records += w.above;
		next = w.next_lsn;
		if (w.records && w.next_lsn > c + 1) { /* it holds records above the checkpoint */
			keep = s->count;
			lsn_end = w.next_lsn;
		}
	}
	free(v);
	if (rc)
		return rc;
	/* Files after the last one holding a record above the checkpoint are not worth packing. */
	for (uint32_t i = keep; i < s->count; i++)
		free((void *)s->files[i].data);
	s->count = keep;
	s->wal_files = keep - first_file;
	for (uint32_t i = first_file; i < keep; i++)
		s->wal_bytes += s->files[i].size;
	if (s->wal_records) {
		s->wal_first_lsn = c + 1;
		s->wal_last_lsn = lsn_end - 1;
	}
	return 0;
}

/* One attempt: the MANIFEST, then every file it names (and the WAL after it). */
static int snapshot_once(const char *dir, unsigned flags, struct bundle_snapshot *s)
{
	struct mf_manifest mf = {0};
	char path[PATH_LEN];
	if (!path_join(path, sizeof path, dir, MF_FILE_NAME))
		return err_set(STRATA_EINVAL, "%s: path too long", dir);
	/* Read the MANIFEST once: the files packed are those these very bytes name. */
	int rc = fio_read_file(path, (size_t)MANIFEST_MAX, &s->manifest, &s->manifest_len);
	if (rc == STRATA_ELIMIT)
		return err_set(STRATA_ECORRUPT, "%s: larger than the largest valid manifest", path);
	if (rc)
		return rc;
	if ((rc = mf_decode(s->manifest, s->manifest_len, &mf)))
		return err_prefix(rc, MF_FILE_NAME);
	uint32_t n = mf.segment_count, cap = 2 * n + 8;
	s->segs = calloc(n ? n : 1, sizeof *s->segs);
	s->files = calloc(cap, sizeof *s->files);
	if (!s->segs || !s->files) {
		rc = err_set(STRATA_ENOMEM, "%u files", cap);
		goto out;
	}
	s->segments = n;
	s->files[0].kind = BUNDLE_KIND_MANIFEST;
	snprintf(s->files[0].name, sizeof s->files[0].name, "%s", MF_FILE_NAME);
	s->files[0].data = s->manifest;
	s->files[0].size = s->manifest_len;
	s->count = 1;
	for (uint32_t i = 0; i < n && !rc; i++) {
		if (!(rc = snapshot_segment(dir, &mf, &mf.segments[i], &s->segs[i], &s->files[s->count])))
			s->count++;
	}
	for (uint32_t i = 0; i < n && !rc; i++) {
		if (mf.segments[i].tomb_gen == 0)
			continue;
		if (!(rc = snapshot_deletion(dir, &mf.segments[i], &s->segs[i], &s->files[s->count]))) {
			s->count++;
			s->deletion_files++;
			s->deleted += s->segs[i].n_deleted;
		}
	}
	if (!rc && (flags & BUNDLE_SNAP_WAL))
		rc = snapshot_wal(dir, &mf, s, &cap);
	if (rc == STRATA_ENOTFOUND)
		rc = snap_gone(dir, mf.generation);
	if (rc)
		goto out;
	memcpy(s->db_uuid, mf.db_uuid, sizeof s->db_uuid);
	s->dim = mf.dim;
	s->metric = mf.metric;
	s->generation = mf.generation;
	s->checkpoint_lsn = mf.checkpoint_lsn;
	for (uint32_t i = 0; i < n; i++)
		s->vectors += mf.segments[i].count;
	s->vectors -= s->deleted; /* each deletion file's count is at most its segment's */
out:
	mf_free(&mf);
	return rc;
}

int bundle_snapshot_take(const char *dir, unsigned flags, struct bundle_snapshot *out)
{
	if (!dir || !out)
		return err_set(STRATA_EINVAL, "bundle_snapshot_take: null argument");
	struct bundle_snapshot s;
	for (uint32_t attempt = 0;; attempt++) {
		memset(&s, 0, sizeof s);
		int rc = snapshot_once(dir, flags, &s);
		if (rc == 0) {
			s.retries = attempt;
			*out = s;
			return 0;
		}
		bundle_snapshot_free(&s);
		if (rc != SNAP_RACE)
			return rc;
		if (attempt + 1 == SNAP_ATTEMPTS)
			return err_set(STRATA_EBUSY, "%s: the database changed %u times while its files "
			               "were being opened (a writer committing faster than a snapshot can "
			               "be read); try again", dir, SNAP_ATTEMPTS);
	}
}

int bundle_snapshot_open(const char *dir, struct bundle_snapshot *out)
{
	return bundle_snapshot_take(dir, BUNDLE_SNAP_WAL, out);
}

/* ---- the database rule ------------------------------------------------------------------ */

struct seq_ref {
	uint64_t seq;
	uint32_t idx; /* into mf.segments */
};

struct wal_range {
	uint64_t first_lsn, next_lsn;
	char name[BUNDLE_NAME_MAX + 1];
};

struct dbr {
	struct mf_manifest mf;
	bool have_mf;
	uint32_t version;         /* the bundle's */
	uint8_t header_uuid[16];
	struct seq_ref *refs;     /* sorted by seq */
	uint8_t *seen;            /* per manifest entry: its segment was in the bundle */
	uint8_t *seen_del;        /* per manifest entry: its deletion file was */
	struct wal_range *wal;    /* per WAL entry read */
	uint32_t n_wal, cap_wal;
};

static void dbr_free(struct dbr *d)
{
	if (d->have_mf)
		mf_free(&d->mf);
	free(d->refs);
	free(d->seen);
	free(d->seen_del);
	free(d->wal);
	memset(d, 0, sizeof *d);
}

static int ref_cmp(const void *a, const void *b)
{
	uint64_t x = ((const struct seq_ref *)a)->seq, y = ((const struct seq_ref *)b)->seq;
	return (x > y) - (x < y);
}

/* 16 lowercase hex digits at s (checked by the codec's name patterns). */
static uint64_t hex16(const char *s)
{
	char hex[17];
	memcpy(hex, s, 16);
	hex[16] = '\0';
	return strtoull(hex, NULL, 16);
}

/* The manifest entry of the segment whose seq is in `name` at byte 4 ("seg-"/"del-"), or NULL. */
static const struct seq_ref *dbr_find(const struct dbr *d, const char *name)
{
	struct seq_ref key = {.seq = hex16(name + 4)};
	return bsearch(&key, d->refs, d->mf.segment_count, sizeof *d->refs, ref_cmp);
}

/* D1-D4: what an entry header may say, before its frame is read. */
static int dbr_entry(struct dbr *d, const struct bundle_entry *e, const struct mf_segment **seg_out)
{
	*seg_out = NULL;
	if (e->ordinal == 0 && e->kind != BUNDLE_KIND_MANIFEST)
		return ERR_CORRUPT("entry 0 is %s, not the MANIFEST (the MANIFEST comes first)", e->name);
	switch (e->kind) {
	case BUNDLE_KIND_MANIFEST:
		if (e->raw_size > MANIFEST_MAX)
			return ERR_CORRUPT("MANIFEST: declares %llu bytes, more than any valid manifest "
			                   "(%llu)", ULL(e->raw_size), ULL(MANIFEST_MAX));
		return 0;
	case BUNDLE_KIND_WAL:
		if (e->raw_size < WAL_FILE_HEADER_SIZE)
			return ERR_CORRUPT("%s: declares %llu bytes, fewer than a WAL file header's %u",
			                   e->name, ULL(e->raw_size), WAL_FILE_HEADER_SIZE);
		return 0;
	default:
		break;
	}
	const struct seq_ref *ref = dbr_find(d, e->name);
	const struct mf_segment *m = ref ? &d->mf.segments[ref->idx] : NULL;
	if (e->kind == BUNDLE_KIND_DELETION) {
		uint64_t gen = hex16(e->name + 21);
		if (!m || m->tomb_gen != gen)
			return ERR_CORRUPT("%s: not named by the MANIFEST (an extra deletion file: %s)",
			                   e->name, !m ? "no such segment" : m->tomb_gen ? "another generation"
			                                                                : "the segment has none");
		if (e->raw_size != tomb_file_size(m->count))
			return ERR_CORRUPT("%s: declares %llu bytes, the deletion file of a segment of %llu "
			                   "nodes has %llu", e->name, ULL(e->raw_size), ULL(m->count),
			                   ULL(tomb_file_size(m->count)));
		d->seen_del[ref->idx] = 1;
		*seg_out = m;
		return 0;
	}
	if (!m)
		return ERR_CORRUPT("%s: not named by the MANIFEST (an extra segment)", e->name);
	if (e->raw_size != m->file_size)
		return ERR_CORRUPT("%s: declares %llu bytes, the MANIFEST entry says %llu", e->name,
		                   ULL(e->raw_size), ULL(m->file_size));
	d->seen[ref->idx] = 1;
	*seg_out = m;
	return 0;
}

/* D5: the MANIFEST's bytes. */
static int dbr_manifest(struct dbr *d, const uint8_t *buf, size_t len, struct bundle_db_stats *st)
{
	int rc = mf_decode(buf, len, &d->mf);
	if (rc)
		return err_prefix(rc, MF_FILE_NAME);
	d->have_mf = true;
	if (memcmp(d->mf.db_uuid, d->header_uuid, 16) != 0)
		return ERR_CORRUPT("MANIFEST: db_uuid differs from the bundle header's (a MANIFEST of "
		                   "another database)");
	for (uint32_t i = 0; d->version < 2 && i < d->mf.segment_count; i++)
		if (d->mf.segments[i].tomb_gen != 0)
			return err_set(STRATA_EVERSION, "MANIFEST: segment seq %llu has a deletion file "
			               "(tomb_gen %llu), which version-1 bundles cannot carry",
			               ULL(d->mf.segments[i].seq), ULL(d->mf.segments[i].tomb_gen));
	uint32_t n = d->mf.segment_count;
	d->refs = calloc(n ? n : 1, sizeof *d->refs);
	d->seen = calloc(n ? n : 1, 1);
	d->seen_del = calloc(n ? n : 1, 1);
	if (!d->refs || !d->seen || !d->seen_del)
		return err_set(STRATA_ENOMEM, "%u manifest entries", n);
	for (uint32_t i = 0; i < n; i++)
		d->refs[i] = (struct seq_ref){d->mf.segments[i].seq, i};
	qsort(d->refs, n, sizeof *d->refs, ref_cmp);
	st->segments = n;
	st->dim = d->mf.dim;
	st->metric = d->mf.metric;
	st->checkpoint_lsn = d->mf.checkpoint_lsn;
	for (uint32_t i = 0; i < n; i++) {
		st->vectors += d->mf.segments[i].count;
		st->deletion_files += d->mf.segments[i].tomb_gen != 0;
	}
	return 0;
}

/* D6: a segment's bytes against its manifest entry, then in full. */
static int dbr_segment(const struct dbr *d, const struct bundle_entry *e,
                       const struct mf_segment *m, const uint8_t *buf, size_t len)
{
	struct seg_info in;
	int rc = seg_check(buf, len, &in);
	if (rc)
		return err_prefix(rc, e->name);
	if (in.header_xxh3 != m->header_xxh3)
		return ERR_CORRUPT("%s: header checksum 0x%016llx, the MANIFEST entry says 0x%016llx (a "
		                   "different file under this name)", e->name, ULL(in.header_xxh3),
		                   ULL(m->header_xxh3));
	if (in.count != m->count)
		return ERR_CORRUPT("%s: %llu vectors, the MANIFEST entry says %llu", e->name,
		                   ULL(in.count), ULL(m->count));
	if (in.dim != d->mf.dim || in.metric != d->mf.metric || in.M != d->mf.M)
		return ERR_CORRUPT("%s: dim %u, metric %u, M %u differ from the MANIFEST's %u, %u, %u",
		                   e->name, in.dim, in.metric, in.M, d->mf.dim, d->mf.metric, d->mf.M);
	if ((rc = seg_verify(&in)))
		return err_prefix(rc, e->name);
	return 0;
}

/*
 * D8: a deletion file against its segment's manifest entry (which D6 holds
 * to the segment file): the binding (seq, header checksum, generation,
 * count) and the whole of 9.4.
 */
static int dbr_deletion(const struct bundle_entry *e, const struct mf_segment *m,
                        const uint8_t *buf, size_t len, struct bundle_db_stats *st)
{
	uint64_t *bits = NULL, deleted = 0;
	int rc = tomb_decode(buf, len, m->seq, m->header_xxh3, m->tomb_gen, m->count, &bits, &deleted);
	if (rc)
		return err_prefix(rc, e->name);
	free(bits);
	st->deleted += deleted;
	st->vectors -= deleted; /* deleted <= count, and each segment's count is in vectors */
	return 0;
}

/* D9: a WAL file is whole: its header for this database, then whole valid records only. */
static int dbr_wal(struct dbr *d, const struct bundle_entry *e, const uint8_t *buf, size_t len,
                   struct bundle_db_stats *st)
{
	struct wal_walk w;
	int rc = wal_walk(buf, len, e->name, d->mf.db_uuid, d->mf.dim, d->mf.checkpoint_lsn, true, &w);
	if (rc)
		return rc;
	if (d->n_wal == d->cap_wal) {
		uint32_t cap = d->cap_wal ? 2 * d->cap_wal : 8;
		struct wal_range *p = realloc(d->wal, (size_t)cap * sizeof *p);
		if (!p)
			return err_set(STRATA_ENOMEM, "%u WAL files", cap);
		d->wal = p;
		d->cap_wal = cap;
	}
	struct wal_range *r = &d->wal[d->n_wal++];
	r->first_lsn = w.first_lsn;
	r->next_lsn = w.next_lsn;
	snprintf(r->name, sizeof r->name, "%s", e->name);
	st->wal_files++;
	st->wal_records += w.above;
	return 0;
}

static int range_cmp(const void *a, const void *b)
{
	uint64_t x = ((const struct wal_range *)a)->first_lsn, y = ((const struct wal_range *)b)->first_lsn;
	return (x > y) - (x < y);
}

/*
 * D7 and D10, after the footer: every segment and deletion file the MANIFEST
 * names was in the bundle; the WAL files continue each other's LSNs, the
 * first from at or below checkpoint_lsn + 1.
 */
static int dbr_finish(struct dbr *d, struct bundle_db_stats *st)
{
	if (!d->have_mf)
		return ERR_CORRUPT("the bundle holds no MANIFEST");
	for (uint32_t i = 0; i < d->mf.segment_count; i++) {
		const struct mf_segment *m = &d->mf.segments[i];
		char name[TOMB_NAME_LEN + 1];
		if (!d->seen[i]) {
			mf_segment_name(m->seq, name, sizeof name);
			return ERR_CORRUPT("%s: named by the MANIFEST but missing from the bundle", name);
		}
		if (m->tomb_gen && !d->seen_del[i]) {
			tomb_file_name(m->seq, m->tomb_gen, name, sizeof name);
			return ERR_CORRUPT("%s: named by the MANIFEST but missing from the bundle", name);
		}
	}
	if (d->n_wal == 0)
		return 0;
	qsort(d->wal, d->n_wal, sizeof *d->wal, range_cmp);
	uint64_t c = d->mf.checkpoint_lsn;
	if (c < UINT64_MAX && d->wal[0].first_lsn > c + 1)
		return ERR_CORRUPT("%s: the first WAL file starts at LSN %llu, after the MANIFEST's "
		                   "checkpoint %llu + 1: records %llu..%llu are missing", d->wal[0].name,
		                   ULL(d->wal[0].first_lsn), ULL(c), ULL(c + 1),
		                   ULL(d->wal[0].first_lsn - 1));
	for (uint32_t i = 1; i < d->n_wal; i++)
		if (d->wal[i].first_lsn != d->wal[i - 1].next_lsn)
			return ERR_CORRUPT("%s starts at LSN %llu, the WAL file before it (%s) ends before "
			                   "%llu", d->wal[i].name, ULL(d->wal[i].first_lsn),
			                   d->wal[i - 1].name, ULL(d->wal[i - 1].next_lsn));
	uint64_t end = d->wal[d->n_wal - 1].next_lsn;
	if (st->wal_records) {
		st->wal_first_lsn = c + 1;
		st->wal_last_lsn = end - 1;
	}
	return 0;
}

/* ---- reading entries: shared by unpack and verify -------------------------------------- */

/* Decompress the current entry whole into a new buffer of e->raw_size bytes. */
static int read_whole(struct bundle_reader *r, const struct bundle_entry *e, uint8_t **buf_out)
{
	uint8_t *b = malloc(e->raw_size ? (size_t)e->raw_size : 1);
	if (!b)
		return err_set(STRATA_ENOMEM, "%s: %llu bytes", e->name, ULL(e->raw_size));
	uint64_t got = 0;
	for (;;) {
		size_t n;
		uint8_t extra;
		/* At the declared size, ask for one byte more: the reader refuses it if there is one. */
		uint64_t room = e->raw_size - got;
		int rc = room ? bundle_reader_read(r, b + got, (size_t)room, &n)
		              : bundle_reader_read(r, &extra, 1, &n);
		if (rc == 0 && n > room)
			rc = ERR_CORRUPT("%s: more bytes than declared", e->name);
		if (rc) {
			free(b);
			return rc;
		}
		if (n == 0)
			break;
		got += n;
	}
	*buf_out = b;
	return 0;
}

struct run {
	struct dbr d;
	struct bundle_db_stats *st;
	bundle_entry_fn on_entry;
	void *ctx;
	const char *tmp;        /* unpack: the temporary directory; verify: NULL */
	uint64_t max_entry;     /* verify: largest entry held in memory */
	uint8_t *chunk;
};

/* D6, D8, D9: an entry's whole bytes, by kind (the MANIFEST is dbr_manifest's). */
static int check_entry(struct run *u, const struct bundle_entry *e, const struct mf_segment *m,
                       const uint8_t *buf, size_t len)
{
	switch (e->kind) {
	case BUNDLE_KIND_SEGMENT:
		return dbr_segment(&u->d, e, m, buf, len);
	case BUNDLE_KIND_DELETION:
		return dbr_deletion(e, m, buf, len, u->st);
	default:
		return dbr_wal(&u->d, e, buf, len, u->st);
	}
}

/*
 * Unpack one file other than the MANIFEST: stream it into tmp/name, fsync,
 * map it back and check it whole (it is never held in memory whole).
 */
static int unpack_file(struct run *u, struct bundle_reader *r, const struct bundle_entry *e,
                       const struct mf_segment *m)
{
	char path[PATH_LEN];
	if (!path_join(path, sizeof path, u->tmp, e->name))
		return err_set(STRATA_EINVAL, "%s/%s: path too long", u->tmp, e->name);
	int fd = -1;
	const void *map = NULL;
	int rc = fio_open(path, O_RDWR | O_CREAT | O_EXCL, 0644, &fd);
	if (rc)
		return rc;
	uint64_t off = 0;
	for (;;) {
		size_t n;
		if ((rc = bundle_reader_read(r, u->chunk, CHUNK, &n)))
			goto out;
		if (n == 0)
			break;
		if ((rc = fio_pwrite_all(fd, u->chunk, n, off, path)))
			goto out;
		off += n;
	}
	if ((rc = fio_fsync(fd, path)))
		goto out;
	if (e->raw_size > SIZE_MAX) {
		rc = err_set(STRATA_ELIMIT, "%s: %llu bytes cannot be mapped", e->name, ULL(e->raw_size));
		goto out;
	}
	/* The reader checked the raw checksum; the file's own rules need the whole file. */
	if ((rc = fio_mmap_ro(fd, (size_t)e->raw_size, path, &map)))
		goto out;
	rc = check_entry(u, e, m, map, (size_t)e->raw_size);
out:
	fio_munmap(map, (size_t)e->raw_size);
	if (fd >= 0)
		fio_close(fd);
	return rc;
}

static int write_small(const char *dir, const char *name, const uint8_t *buf, size_t len)
{
	char path[PATH_LEN];
	if (!path_join(path, sizeof path, dir, name))
		return err_set(STRATA_EINVAL, "%s/%s: path too long", dir, name);
	int fd = -1;
	int rc = fio_open(path, O_WRONLY | O_CREAT | O_EXCL, 0644, &fd);
	if (rc)
		return rc;
	rc = fio_pwrite_all(fd, buf, len, 0, path);
	if (!rc)
		rc = fio_fsync(fd, path);
	int rc2 = fio_close(fd);
	return rc ? rc : rc2;
}

/* Read, check and (unpack) write one entry. */
static int run_entry(struct run *u, struct bundle_reader *r, const struct bundle_entry *e)
{
	const struct mf_segment *m;
	int rc = dbr_entry(&u->d, e, &m);
	if (rc)
		return rc;
	if (!u->tmp && e->raw_size > u->max_entry)
		return err_set(STRATA_ELIMIT, "%s: %llu bytes, more than the %llu this verify may hold "
		               "in memory (unpack it instead)", e->name, ULL(e->raw_size),
		               ULL(u->max_entry));
	if (e->kind != BUNDLE_KIND_MANIFEST && u->tmp)
		return unpack_file(u, r, e, m);
	uint8_t *buf = NULL;
	if ((rc = read_whole(r, e, &buf)))
		return rc;
	if (e->kind == BUNDLE_KIND_MANIFEST) {
		rc = dbr_manifest(&u->d, buf, (size_t)e->raw_size, u->st);
		if (!rc && u->tmp)
			rc = write_small(u->tmp, e->name, buf, (size_t)e->raw_size);
	} else {
		rc = check_entry(u, e, m, buf, (size_t)e->raw_size);
	}
	free(buf);
	return rc;
}

/* Every entry, then the index, footer, D7 and D10. */
static int run_all(struct run *u, struct bundle_reader *r)
{
	memcpy(u->d.header_uuid, bundle_reader_header(r)->db_uuid, 16);
	u->d.version = u->st->version = bundle_reader_header(r)->version;
	for (;;) {
		struct bundle_entry e;
		int rc = bundle_reader_next(r, &e);
		u->st->bundle_bytes = bundle_reader_offset(r);
		if (rc == BUNDLE_END)
			break;
		if (rc)
			return rc;
		snprintf(u->st->failed_entry, sizeof u->st->failed_entry, "%s", e.name);
		if ((rc = run_entry(u, r, &e)))
			return rc;
		u->st->failed_entry[0] = '\0';
		u->st->entries++;
		u->st->raw_bytes += e.raw_size;
		if (u->on_entry)
			u->on_entry(&e, u->ctx);
	}
	return dbr_finish(&u->d, u->st);
}

int bundle_verify(const struct bundle_source *src, uint64_t max_entry_bytes,
                  bundle_entry_fn on_entry, void *ctx, struct bundle_db_stats *stats_out)
{
	struct bundle_db_stats st;
	struct bundle_reader *r = NULL;
	memset(&st, 0, sizeof st);
	struct run u = {.st = &st, .on_entry = on_entry, .ctx = ctx, .max_entry = max_entry_bytes};
	int rc = bundle_reader_new(src, &r);
	if (!rc)
		rc = run_all(&u, r);
	bundle_reader_free(r);
	dbr_free(&u.d);
	if (stats_out)
		*stats_out = st;
	return rc;
}

/* ---- unpack --------------------------------------------------------------------------------- */

/* Remove a temporary directory and the files in it (all written by an unpack). */
static void remove_tree(const char *path)
{
	DIR *d = opendir(path);
	if (d) {
		struct dirent *e;
		while ((e = readdir(d))) {
			char p[PATH_LEN];
			if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
				continue;
			if (path_join(p, sizeof p, path, e->d_name))
				fio_discard(p);
		}
		closedir(d);
	}
	fio_rmdir(path);
}

/*
 * Temporary directories of earlier unpacks of the same target whose lock is
 * free: their unpack was killed. A live unpack holds its lock to the end.
 */
static uint32_t remove_stale(const char *parent, const char *base)
{
	char prefix[PATH_LEN];
	int plen = snprintf(prefix, sizeof prefix, ".%s.unpack-", base);
	uint32_t removed = 0;
	DIR *d = opendir(parent);
	if (!d || plen < 0 || (size_t)plen >= sizeof prefix) {
		if (d)
			closedir(d);
		return 0;
	}
	struct dirent *e;
	while ((e = readdir(d))) {
		if (strncmp(e->d_name, prefix, (size_t)plen) != 0 || strlen(e->d_name) != (size_t)plen + 6)
			continue;
		char p[PATH_LEN];
		int fd;
		if (!path_join(p, sizeof p, parent, e->d_name) ||
		    fio_open(p, O_RDONLY | O_DIRECTORY, 0, &fd) != 0)
			continue;
		if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
			remove_tree(p);
			removed++;
		}
		fio_close(fd); /* releases the lock */
	}
	closedir(d);
	err_clear(); /* best effort: a stale directory we could not remove is not this unpack's failure */
	return removed;
}

int bundle_unpack(const struct bundle_source *src, const char *dir,
                  const struct bundle_unpack_opts *opts, bundle_entry_fn on_entry, void *ctx,
                  struct bundle_db_stats *stats_out)
{
	struct bundle_db_stats st;
	struct bundle_unpack_opts o = {0};
	struct bundle_reader *r = NULL;
	char parent_buf[PATH_LEN], base_buf[PATH_LEN], tmp[PATH_LEN];
	int lock_fd = -1;
	bool made_tmp = false;
	int rc;

	memset(&st, 0, sizeof st);
	struct run u = {.st = &st, .on_entry = on_entry, .ctx = ctx};
	if (opts)
		o = *opts;
	if (o.max_bytes == 0)
		o.max_bytes = BUNDLE_UNPACK_MAX_DEFAULT;
	if (!src || !dir || !*dir) {
		rc = err_set(STRATA_EINVAL, "bundle_unpack: null or empty argument");
		goto out;
	}
	snprintf(parent_buf, sizeof parent_buf, "%s", dir);
	snprintf(base_buf, sizeof base_buf, "%s", dir);
	const char *parent = dirname(parent_buf);
	const char *base = basename(base_buf);
	if (!strcmp(base, "/") || !strcmp(base, ".") || !strcmp(base, "..")) {
		rc = err_set(STRATA_EINVAL, "%s: unpack needs a directory name to create", dir);
		goto out;
	}
	if ((rc = fio_dir_free_for(dir)))
		goto out;
	st.stale_removed = remove_stale(parent, base);

	if ((rc = bundle_reader_new(src, &r)))
		goto out;
	/* Declared sizes are refused before a byte is written. */
	uint64_t total = bundle_reader_header(r)->total_raw_bytes;
	if (total > o.max_bytes) {
		rc = err_set(STRATA_ELIMIT, "the bundle declares %llu bytes of files, more than the limit "
		             "of %llu", ULL(total), ULL(o.max_bytes));
		goto out;
	}
	uint64_t free_bytes;
	if (!o.skip_space_check) {
		if ((rc = fio_free_bytes(parent, &free_bytes)))
			goto out;
		if (total > free_bytes) {
			rc = err_set(STRATA_ENOSPC, "the bundle declares %llu bytes of files, %s has %llu "
			             "bytes free", ULL(total), parent, ULL(free_bytes));
			goto out;
		}
	}

	if (snprintf(tmp, sizeof tmp, "%s/.%s.unpack-XXXXXX", parent, base) >= (int)sizeof tmp) {
		rc = err_set(STRATA_EINVAL, "%s: path too long", dir);
		goto out;
	}
	if ((rc = fio_mkdtemp(tmp)))
		goto out;
	made_tmp = true;
	if ((rc = fio_open(tmp, O_RDONLY | O_DIRECTORY, 0, &lock_fd)))
		goto out;
	/* The lock tells a later unpack that this directory is alive, not stale. */
	if (flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
		rc = err_set(STRATA_EBUSY, "%s: locked by another unpack", tmp);
		goto out;
	}
	/* mkdtemp makes it 0700; a database is shipped and shared like any directory. */
	chmod(tmp, 0755);
	u.tmp = tmp;
	u.chunk = malloc(CHUNK);
	if (!u.chunk) {
		rc = err_set(STRATA_ENOMEM, "unpack buffer");
		goto out;
	}
	if ((rc = run_all(&u, r)))
		goto out;
	if (o.finish && (rc = o.finish(tmp, &st, o.finish_ctx)))
		goto out;
	if ((rc = fio_fsync_dir(tmp)) || (rc = fio_rename(tmp, dir)))
		goto out;
	made_tmp = false;
	/*
	 * Until the parent is synced the new name may not survive a crash: a
	 * failure here is reported, and the database it names is taken back so
	 * that a failed unpack still leaves nothing under `dir`.
	 */
	if ((rc = fio_fsync_dir(parent))) {
		char why[ERR_DETAIL_MAX];
		snprintf(why, sizeof why, "%s", err_detail());
		remove_tree(dir);
		err_set(rc, "%s", why);
	}
out:
	if (made_tmp) {
		/* Cleanup goes through the I/O seam too; keep the detail of the real failure. */
		char why[ERR_DETAIL_MAX];
		snprintf(why, sizeof why, "%s", err_detail());
		remove_tree(tmp);
		err_set(rc, "%s", why);
	}
	if (lock_fd >= 0)
		fio_close(lock_fd);
	free(u.chunk);
	bundle_reader_free(r);
	dbr_free(&u.d);
	if (stats_out)
		*stats_out = st;
	return rc;
}
