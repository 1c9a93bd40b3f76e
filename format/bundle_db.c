/*
 * bundle_db.c - what makes a bundle a database (bundle.h; FORMAT.md, "Bundle
 * file", 8.7 "The database rule"): the snapshot pack reads, unpack into a
 * directory, verify in memory.
 *
 * Owns the database rule of a bundle (the MANIFEST first, then exactly the
 * segments it names, each matching its entry and passing seg_check and
 * seg_verify) and unpack's promise: nothing appears under the target
 * directory unless every byte checked out, and a failed unpack removes what
 * it wrote. It must never create a file from a name the codec has not
 * checked, write outside its temporary directory, or hold more than one
 * entry in memory.
 *
 * Unpack lifecycle (each arrow names the call that makes it):
 *
 *   target free? --unpack_target_free--> stale temporaries removed
 *     --remove_stale--> .<name>.unpack-XXXXXX made and flocked (fio_mkdtemp)
 *     --unpack_entry, per entry--> every file written, fsynced, verified
 *     --dbr_finish--> nothing missing --fio_rename--> <name> --fio_fsync_dir(parent)
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

void bundle_snapshot_free(struct bundle_snapshot *s)
{
	if (!s)
		return;
	for (uint32_t i = 1; i < s->count; i++)
		fio_munmap(s->files[i].data, (size_t)s->files[i].size);
	free(s->files);
	free(s->manifest);
	memset(s, 0, sizeof *s);
}

/* Map one segment the manifest names and hold it to its entry. */
static int snapshot_segment(const char *dir, const struct mf_manifest *mf,
                            const struct mf_segment *e, struct bundle_file *f)
{
	char path[PATH_LEN];
	f->kind = BUNDLE_KIND_SEGMENT;
	mf_segment_name(e->seq, f->name, sizeof f->name);
	if (!path_join(path, sizeof path, dir, f->name))
		return err_set(STRATA_EINVAL, "%s/%s: path too long", dir, f->name);
	if (e->tomb_gen != 0)
		return err_set(STRATA_EVERSION, "%s: the MANIFEST names a deletion file for it (tomb_gen "
		               "%llu); bundles of this version cannot carry deletion files", f->name,
		               ULL(e->tomb_gen));
	int fd = -1;
	int rc = fio_open(path, O_RDONLY, 0, &fd);
	if (rc == STRATA_ENOTFOUND)
		return err_set(STRATA_ECORRUPT, "%s: named by the MANIFEST but missing", f->name);
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
	struct seg_info in;
	if ((rc = seg_check(map, (size_t)size, &in))) {
		err_prefix(rc, f->name);
		goto out;
	}
	if (in.header_xxh3 != e->header_xxh3 || in.count != e->count) {
		rc = err_set(STRATA_ECORRUPT, "%s: header checksum 0x%016llx and count %llu, the MANIFEST "
		             "entry says 0x%016llx and %llu", f->name, ULL(in.header_xxh3),
		             ULL(in.count), ULL(e->header_xxh3), ULL(e->count));
		goto out;
	}
	if (in.dim != mf->dim || in.metric != mf->metric || in.M != mf->M) {
		rc = err_set(STRATA_ECORRUPT, "%s: dim %u, metric %u, M %u differ from the MANIFEST's "
		             "%u, %u, %u", f->name, in.dim, in.metric, in.M, mf->dim, mf->metric, mf->M);
		goto out;
	}
	f->data = map;
	f->size = size;
	map = NULL;
out:
	fio_munmap(map, (size_t)size);
	fio_close(fd);
	return rc;
}

int bundle_snapshot_open(const char *dir, struct bundle_snapshot *out)
{
	struct bundle_snapshot s;
	struct mf_manifest mf = {0};
	char path[PATH_LEN];
	memset(&s, 0, sizeof s);
	if (!dir || !out)
		return err_set(STRATA_EINVAL, "bundle_snapshot_open: null argument");
	if (!path_join(path, sizeof path, dir, MF_FILE_NAME))
		return err_set(STRATA_EINVAL, "%s: path too long", dir);
	/* Read the MANIFEST once: the files packed are those these very bytes name. */
	int rc = fio_read_file(path, (size_t)MANIFEST_MAX, &s.manifest, &s.manifest_len);
	if (rc == STRATA_ELIMIT)
		return err_set(STRATA_ECORRUPT, "%s: larger than the largest valid manifest", path);
	if (rc)
		return rc;
	if ((rc = mf_decode(s.manifest, s.manifest_len, &mf))) {
		err_prefix(rc, MF_FILE_NAME);
		goto fail;
	}
	s.files = calloc((size_t)mf.segment_count + 1, sizeof *s.files);
	if (!s.files) {
		rc = err_set(STRATA_ENOMEM, "%u files", mf.segment_count + 1);
		goto fail;
	}
	s.files[0].kind = BUNDLE_KIND_MANIFEST;
	snprintf(s.files[0].name, sizeof s.files[0].name, "%s", MF_FILE_NAME);
	s.files[0].data = s.manifest;
	s.files[0].size = s.manifest_len;
	s.count = 1;
	for (uint32_t i = 0; i < mf.segment_count; i++) {
		if ((rc = snapshot_segment(dir, &mf, &mf.segments[i], &s.files[s.count])))
			goto fail;
		s.count++;
		s.vectors += mf.segments[i].count;
	}
	memcpy(s.db_uuid, mf.db_uuid, sizeof s.db_uuid);
	s.dim = mf.dim;
	s.metric = mf.metric;
	mf_free(&mf);
	*out = s;
	return 0;
fail:
	mf_free(&mf);
	bundle_snapshot_free(&s);
	return rc;
}

/* ---- the database rule ------------------------------------------------------------------ */

struct seq_ref {
	uint64_t seq;
	uint32_t idx; /* into mf.segments */
};

struct dbr {
	struct mf_manifest mf;
	bool have_mf;
	uint8_t header_uuid[16];
	struct seq_ref *refs; /* sorted by seq */
	uint8_t *seen;        /* per manifest entry */
};

static void dbr_free(struct dbr *d)
{
	if (d->have_mf)
		mf_free(&d->mf);
	free(d->refs);
	free(d->seen);
	memset(d, 0, sizeof *d);
}

static int ref_cmp(const void *a, const void *b)
{
	uint64_t x = ((const struct seq_ref *)a)->seq, y = ((const struct seq_ref *)b)->seq;
	return (x > y) - (x < y);
}

/* The manifest entry of segment `name` ("seg-<16 hex>.seg", checked by the codec), or NULL. */
static const struct seq_ref *dbr_find(const struct dbr *d, const char *name)
{
	char hex[17];
	memcpy(hex, name + 4, 16);
	hex[16] = '\0';
	struct seq_ref key = {.seq = strtoull(hex, NULL, 16)};
	return bsearch(&key, d->refs, d->mf.segment_count, sizeof *d->refs, ref_cmp);
}

/* D1-D4: what an entry header may say, before its frame is read. */
static int dbr_entry(struct dbr *d, const struct bundle_entry *e, const struct mf_segment **seg_out)
{
	*seg_out = NULL;
	if (e->ordinal == 0 && e->kind != BUNDLE_KIND_MANIFEST)
		return ERR_CORRUPT("entry 0 is %s, not the MANIFEST (the MANIFEST comes first)", e->name);
	if (e->kind == BUNDLE_KIND_MANIFEST) {
		if (e->raw_size > MANIFEST_MAX)
			return ERR_CORRUPT("MANIFEST: declares %llu bytes, more than any valid manifest "
			                   "(%llu)", ULL(e->raw_size), ULL(MANIFEST_MAX));
		return 0;
	}
	const struct seq_ref *ref = dbr_find(d, e->name);
	if (!ref)
		return ERR_CORRUPT("%s: not named by the MANIFEST (an extra segment)", e->name);
	const struct mf_segment *m = &d->mf.segments[ref->idx];
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
	for (uint32_t i = 0; i < d->mf.segment_count; i++)
		if (d->mf.segments[i].tomb_gen != 0)
			return err_set(STRATA_EVERSION, "MANIFEST: segment seq %llu has a deletion file "
			               "(tomb_gen %llu), which bundles of this version cannot carry",
			               ULL(d->mf.segments[i].seq), ULL(d->mf.segments[i].tomb_gen));
	uint32_t n = d->mf.segment_count;
	d->refs = calloc(n ? n : 1, sizeof *d->refs);
	d->seen = calloc(n ? n : 1, 1);
	if (!d->refs || !d->seen)
		return err_set(STRATA_ENOMEM, "%u manifest entries", n);
	for (uint32_t i = 0; i < n; i++)
		d->refs[i] = (struct seq_ref){d->mf.segments[i].seq, i};
	qsort(d->refs, n, sizeof *d->refs, ref_cmp);
	st->segments = n;
	st->dim = d->mf.dim;
	st->metric = d->mf.metric;
	for (uint32_t i = 0; i < n; i++)
		st->vectors += d->mf.segments[i].count;
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

/* D7: every segment the MANIFEST names was in the bundle. */
static int dbr_finish(const struct dbr *d)
{
	if (!d->have_mf)
		return ERR_CORRUPT("the bundle holds no MANIFEST");
	for (uint32_t i = 0; i < d->mf.segment_count; i++) {
		if (!d->seen[i]) {
			char name[MF_SEGMENT_NAME_LEN + 1];
			mf_segment_name(d->mf.segments[i].seq, name, sizeof name);
			return ERR_CORRUPT("%s: named by the MANIFEST but missing from the bundle", name);
		}
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

/* Unpack one segment: stream it into tmp/name, fsync, map it back and check it. */
static int unpack_segment(struct run *u, struct bundle_reader *r, const struct bundle_entry *e,
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
	/* The reader checked the raw checksum; the segment rules need the whole file. */
	if ((rc = fio_mmap_ro(fd, (size_t)e->raw_size, path, &map)))
		goto out;
	rc = dbr_segment(&u->d, e, m, map, (size_t)e->raw_size);
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
	if (e->kind == BUNDLE_KIND_SEGMENT && u->tmp)
		return unpack_segment(u, r, e, m);
	uint8_t *buf = NULL;
	if ((rc = read_whole(r, e, &buf)))
		return rc;
	if (e->kind == BUNDLE_KIND_MANIFEST) {
		rc = dbr_manifest(&u->d, buf, (size_t)e->raw_size, u->st);
		if (!rc && u->tmp)
			rc = write_small(u->tmp, e->name, buf, (size_t)e->raw_size);
	} else {
		rc = dbr_segment(&u->d, e, m, buf, (size_t)e->raw_size);
	}
	free(buf);
	return rc;
}

/* Every entry, then the index, footer and D7. */
static int run_all(struct run *u, struct bundle_reader *r)
{
	memcpy(u->d.header_uuid, bundle_reader_header(r)->db_uuid, 16);
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
	return dbr_finish(&u->d);
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
