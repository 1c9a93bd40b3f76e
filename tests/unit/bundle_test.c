/*
 * bundle_test.c - the bundle codec and database layer (format/bundle.c,
 * bundle_db.c; FORMAT.md "Bundle file").
 *
 * Bundles are crafted here by an encoder of the test's own, written from
 * FORMAT.md, not from bundle.c: every refusal is provoked with a bundle whose
 * checksums are all correct except where the test means them to be wrong, so
 * the check that fires is the one named. Every refusal is also checked to
 * leave nothing under the target directory and no temporary beside it.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zstd.h>

#include "bundle.h"
#include "err.h"
#include "failpoint.h"
#include "le.h"
#include "manifest.h"
#include "segment.h"
#include "strata.h"
#include "t_support.h"
#include "t_writer.h"
#include "tombstone.h"
#include "wal_record.h"
#include "xsum.h"

#define DIM 8
#define N 300

/* ---- a database to ship --------------------------------------------------------------------- */

struct fixture {
	struct t_dir d;
	char db[600];
	struct t_blob manifest;
	struct t_blob seg;
	struct mf_manifest mf;
};

static void build_db(const char *dir, size_t n, uint64_t id_base, uint64_t seed)
{
	float *v = t_random_vectors(n, DIM, seed);
	uint64_t *ids = malloc(n * sizeof *ids);
	for (size_t i = 0; i < n; i++)
		ids[i] = id_base + i;
	strata_options o;
	strata_options_default(&o);
	o.dim = DIM;
	o.M = 4;
	o.ef_construction = 32;
	o.threads = 1;
	cr_assert_eq(strata_build(dir, &o, ids, v, n), 0, "%s", strata_last_error_detail());
	free(v);
	free(ids);
}

static struct fixture fixture_new(void)
{
	struct fixture f;
	memset(&f, 0, sizeof f);
	f.d = t_dir_new();
	char p[700];
	t_path(&f.d, "db", f.db, sizeof f.db);
	build_db(f.db, N, 0, 7);
	snprintf(p, sizeof p, "%s/MANIFEST", f.db);
	f.manifest = t_read_file(p);
	snprintf(p, sizeof p, "%s/seg-0000000000000001.seg", f.db);
	f.seg = t_read_file(p);
	cr_assert(f.manifest.data && f.seg.data);
	cr_assert_eq(mf_decode(f.manifest.data, f.manifest.len, &f.mf), 0);
	return f;
}

static void fixture_free(struct fixture *f)
{
	mf_free(&f->mf);
	free(f->manifest.data);
	free(f->seg.data);
	t_dir_free(&f->d);
}

/* ---- the test's own encoder (FORMAT.md, section 8) -------------------------------------------- */

struct ent {
	uint32_t kind;
	const char *name;
	size_t name_len;          /* 0: strlen(name) */
	const uint8_t *raw;
	size_t raw_len;
	/* deviations, each meant to trip one check */
	const uint8_t *frame;     /* this frame instead of compressing raw */
	size_t frame_len;
	bool raw_size_set;
	uint64_t raw_size;        /* declared, instead of raw_len */
	bool bad_raw_xxh3;
	int32_t ordinal_delta;
};

struct craft {
	bool total_set;
	uint64_t total;           /* declared total_raw_bytes */
	const uint8_t *uuid;      /* NULL: zeros */
	uint32_t version;         /* 0: 1, the version these tests were first written for */
};

struct blob {
	uint8_t *b;
	size_t len;
};

static uint8_t *zframe(const uint8_t *raw, size_t len, size_t *out_len)
{
	size_t cap = ZSTD_compressBound(len);
	uint8_t *f = malloc(cap);
	size_t n = ZSTD_compress(f, cap, raw, len, 3);
	cr_assert(!ZSTD_isError(n));
	*out_len = n;
	return f;
}

/* A frame with a 1 KiB window and no content size: its decoder needs 1 KiB, whatever it inflates to. */
static uint8_t *zframe_small_window(const uint8_t *raw, size_t len, size_t *out_len)
{
	size_t cap = ZSTD_compressBound(len);
	uint8_t *f = malloc(cap);
	ZSTD_CCtx *cc = ZSTD_createCCtx();
	cr_assert(cc && f);
	cr_assert(!ZSTD_isError(ZSTD_CCtx_setParameter(cc, ZSTD_c_windowLog, 10)));
	cr_assert(!ZSTD_isError(ZSTD_CCtx_setParameter(cc, ZSTD_c_contentSizeFlag, 0)));
	size_t n = ZSTD_compress2(cc, f, cap, raw, len);
	cr_assert(!ZSTD_isError(n), "%s", ZSTD_getErrorName(n));
	ZSTD_freeCCtx(cc);
	*out_len = n;
	return f;
}

static struct blob craft(const struct ent *e, size_t n, const struct craft *c)
{
	struct craft none = {0};
	if (!c)
		c = &none;
	size_t cap = 64 + 64 + n * (128 + 136);
	uint8_t **frames = calloc(n, sizeof *frames);
	size_t *flen = calloc(n, sizeof *flen);
	uint64_t total = 0;
	for (size_t i = 0; i < n; i++) {
		if (e[i].frame) {
			frames[i] = malloc(e[i].frame_len ? e[i].frame_len : 1);
			memcpy(frames[i], e[i].frame, e[i].frame_len);
			flen[i] = e[i].frame_len;
		} else {
			frames[i] = zframe(e[i].raw, e[i].raw_len, &flen[i]);
		}
		cap += flen[i];
		total += e[i].raw_size_set ? e[i].raw_size : e[i].raw_len;
	}
	if (c->total_set)
		total = c->total;
	uint8_t *b = calloc(1, cap);
	le_store64(b, BUNDLE_MAGIC);
	le_store32(b + 8, c->version ? c->version : 1);
	le_store32(b + 12, 64);
	le_store32(b + 20, (uint32_t)n);
	le_store64(b + 24, total);
	le_store32(b + 32, 3);
	if (c->uuid)
		memcpy(b + 40, c->uuid, 16);
	le_store64(b + 56, xsum64(b, 56));
	size_t off = 64;
	uint8_t *index = calloc(n ? n : 1, 136);
	for (size_t i = 0; i < n; i++) {
		uint8_t *h = b + off;
		size_t nl = e[i].name_len ? e[i].name_len : strlen(e[i].name);
		le_store64(h, BUNDLE_ENTRY_MAGIC);
		le_store32(h + 8, (uint32_t)((int32_t)i + e[i].ordinal_delta));
		le_store32(h + 12, e[i].kind);
		le_store32(h + 20, (uint32_t)nl);
		le_store64(h + 24, e[i].raw_size_set ? e[i].raw_size : e[i].raw_len);
		le_store64(h + 32, flen[i]);
		le_store64(h + 40, xsum64(e[i].raw, e[i].raw_len) ^ (e[i].bad_raw_xxh3 ? 1 : 0));
		le_store64(h + 48, xsum64(frames[i], flen[i]));
		memcpy(h + 56, e[i].name, nl < 64 ? nl : 64);
		le_store64(h + 120, xsum64(h, 120));
		le_store64(index + i * 136, off);
		memcpy(index + i * 136 + 8, h, 128);
		memcpy(h + 128, frames[i], flen[i]);
		off += 128 + flen[i];
		free(frames[i]);
	}
	uint64_t index_off = off;
	memcpy(b + off, index, n * 136);
	off += n * 136;
	uint8_t *f = b + off;
	le_store64(f, BUNDLE_FOOTER_MAGIC);
	le_store32(f + 8, (uint32_t)n);
	le_store64(f + 16, index_off);
	le_store64(f + 24, xsum64(index, n * 136));
	le_store64(f + 32, total);
	le_store64(f + 40, off + 64);
	le_store64(f + 48, le_load64(b + 56));
	le_store64(f + 56, xsum64(f, 56));
	off += 64;
	free(index);
	free(frames);
	free(flen);
	return (struct blob){b, off};
}

/* The fixture's database as the test encoder writes it. */
static struct blob craft_db(const struct fixture *f)
{
	struct ent e[2] = {
		{.kind = 1, .name = "MANIFEST", .raw = f->manifest.data, .raw_len = f->manifest.len},
		{.kind = 2, .name = "seg-0000000000000001.seg", .raw = f->seg.data, .raw_len = f->seg.len},
	};
	struct craft c = {.uuid = f->mf.db_uuid};
	return craft(e, 2, &c);
}

/* ---- helpers ---------------------------------------------------------------------------------- */

/* No entry of `dir` (the parent of targets) starts with ".<base>.unpack-". */
static void assert_no_temporaries(const char *parent, const char *base)
{
	char prefix[256];
	snprintf(prefix, sizeof prefix, ".%s.unpack-", base);
	DIR *d = opendir(parent);
	cr_assert(d);
	struct dirent *e;
	while ((e = readdir(d)))
		cr_assert(strncmp(e->d_name, prefix, strlen(prefix)) != 0, "left behind: %s", e->d_name);
	closedir(d);
}

static int unpack_mem(const struct blob *b, const char *dir, const struct bundle_unpack_opts *o)
{
	struct bundle_mem m;
	struct bundle_source src;
	bundle_source_mem(&m, b->b, b->len, &src);
	err_clear();
	return bundle_unpack(&src, dir, o, NULL, NULL, NULL);
}

static int verify_mem(const uint8_t *b, size_t len)
{
	struct bundle_mem m;
	struct bundle_source src;
	bundle_source_mem(&m, b, len, &src);
	err_clear();
	return bundle_verify(&src, 1ull << 30, NULL, NULL, NULL);
}

/*
 * Unpack must refuse `b` with `code` and a detail holding `needle`, leaving
 * no target and no temporary; verify must agree on the code.
 */
static void expect_refusal(const struct fixture *f, struct blob b, int code, const char *needle)
{
	char dir[700];
	t_path(&f->d, "out", dir, sizeof dir);
	struct bundle_unpack_opts o = {.skip_space_check = false};
	int rc = unpack_mem(&b, dir, &o);
	cr_assert_eq(rc, code, "unpack: %d (%s), expected %d: %s", rc, strata_strerror(rc), code,
	             err_detail());
	cr_assert(strstr(err_detail(), needle), "detail '%s' lacks '%s'", err_detail(), needle);
	cr_assert(access(dir, F_OK) != 0, "a refused unpack left %s", dir);
	assert_no_temporaries(f->d.path, "out");
	if (STRATA_IS_DATA_ERROR(code)) {
		rc = verify_mem(b.b, b.len);
		cr_assert_eq(rc, code, "verify: %d, expected %d: %s", rc, code, err_detail());
	}
	free(b.b);
}

static void same_file(const char *a, const char *b)
{
	struct t_blob x = t_read_file(a), y = t_read_file(b);
	cr_assert(x.data && y.data, "%s or %s missing", a, b);
	cr_assert_eq(x.len, y.len, "%s and %s differ in size", a, b);
	cr_assert_eq(memcmp(x.data, y.data, x.len), 0, "%s and %s differ", a, b);
	free(x.data);
	free(y.data);
}

/* Write a bundle of the database in `db` with bundle_write to `path`. */
static void pack_to_file(const char *db, const char *path, uint32_t threads)
{
	struct bundle_snapshot s;
	cr_assert_eq(bundle_snapshot_open(db, &s), 0, "%s", err_detail());
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	cr_assert(fd >= 0);
	struct bundle_pack_opts o = {.level = 3, .threads = threads};
	struct bundle_pack_stats st;
	cr_assert_eq(bundle_write(fd, path, s.files, s.count, s.db_uuid, &o, &st), 0, "%s",
	             err_detail());
	close(fd);
	cr_assert_eq(st.entries, s.count);
	bundle_snapshot_free(&s);
}

/* ---- round trips -------------------------------------------------------------------------------- */

Test(bundle, pack_unpack_round_trip_gives_identical_files_and_answers)
{
	struct fixture f = fixture_new();
	char bpath[700], out[700], p1[800], p2[800];
	pack_to_file(f.db, t_path(&f.d, "db.strata", bpath, sizeof bpath), 2);
	struct t_blob b = t_read_file(bpath);
	struct blob bb = {b.data, b.len};
	t_path(&f.d, "copy", out, sizeof out);
	cr_assert_eq(unpack_mem(&bb, out, NULL), 0, "%s", err_detail());
	snprintf(p1, sizeof p1, "%s/MANIFEST", f.db);
	snprintf(p2, sizeof p2, "%s/MANIFEST", out);
	same_file(p1, p2);
	snprintf(p1, sizeof p1, "%s/seg-0000000000000001.seg", f.db);
	snprintf(p2, sizeof p2, "%s/seg-0000000000000001.seg", out);
	same_file(p1, p2);
	assert_no_temporaries(f.d.path, "copy");

	/* The unpacked database answers exactly as the original does. */
	strata_db *a, *c;
	cr_assert_eq(strata_open(f.db, NULL, STRATA_READONLY, &a), 0);
	cr_assert_eq(strata_open(out, NULL, STRATA_READONLY | STRATA_VERIFY, &c), 0, "%s",
	             strata_last_error_detail());
	float *q = t_random_vectors(20, DIM, 99);
	uint64_t ia[20 * 10], ic[20 * 10];
	float da[20 * 10], dc[20 * 10];
	cr_assert_eq(strata_search(a, q, 20, 10, NULL, ia, da), 0);
	cr_assert_eq(strata_search(c, q, 20, 10, NULL, ic, dc), 0);
	cr_assert_eq(memcmp(ia, ic, sizeof ia), 0);
	cr_assert_eq(memcmp(da, dc, sizeof da), 0);
	strata_close(a);
	strata_close(c);
	free(q);

	/* The test's own encoder and the writer agree on what a valid bundle is. */
	struct blob mine = craft_db(&f);
	cr_assert_eq(verify_mem(mine.b, mine.len), 0, "%s", err_detail());
	cr_assert_eq(verify_mem(b.data, b.len), 0, "%s", err_detail());
	free(mine.b);
	free(b.data);
	fixture_free(&f);
}

Test(bundle, listing_from_the_index_matches_the_stream)
{
	struct fixture f = fixture_new();
	char bpath[700];
	pack_to_file(f.db, t_path(&f.d, "db.strata", bpath, sizeof bpath), 1);
	struct t_blob b = t_read_file(bpath);
	struct bundle_index idx;
	cr_assert_eq(bundle_index_decode(b.data, b.len, &idx), 0, "%s", err_detail());
	cr_assert_eq(idx.count, 2);
	cr_assert_str_eq(idx.entries[0].name, "MANIFEST");
	cr_assert_eq(idx.entries[0].off, 64);
	cr_assert_eq(idx.entries[1].raw_size, f.seg.len);
	cr_assert_eq(idx.hdr.total_raw_bytes, f.seg.len + f.manifest.len);

	struct bundle_mem m;
	struct bundle_source src;
	struct bundle_reader *r;
	bundle_source_mem(&m, b.data, b.len, &src);
	cr_assert_eq(bundle_reader_new(&src, &r), 0);
	for (uint32_t i = 0; i < 2; i++) {
		struct bundle_entry e;
		cr_assert_eq(bundle_reader_next(r, &e), 0, "%s", err_detail());
		cr_assert_eq(e.off, idx.entries[i].off);
		cr_assert_eq(e.frame_size, idx.entries[i].frame_size);
		cr_assert_str_eq(e.name, idx.entries[i].name);
		/* next() without reading skips the frame (its checksum still checked). */
	}
	struct bundle_entry e;
	cr_assert_eq(bundle_reader_next(r, &e), BUNDLE_END, "%s", err_detail());
	bundle_reader_free(r);
	bundle_index_free(&idx);
	free(b.data);
	fixture_free(&f);
}

/* Run bundle_write into a pipe from a child; return what came out. */
static struct blob write_through_pipe(const struct bundle_file *files, uint32_t count,
                                      const uint8_t *uuid, const char *spill_dir)
{
	int p[2];
	cr_assert_eq(pipe(p), 0);
	fflush(NULL);
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		struct bundle_pack_opts o = {.level = 3, .threads = 2, .spill_dir = spill_dir};
		int rc = bundle_write(p[1], "pipe", files, count, uuid, &o, NULL);
		close(p[1]);
		_exit(rc == 0 ? 0 : 1);
	}
	close(p[1]);
	size_t cap = 1 << 20, len = 0;
	uint8_t *b = malloc(cap);
	for (;;) {
		if (len == cap)
			b = realloc(b, cap *= 2);
		ssize_t n = read(p[0], b + len, cap - len);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(p[0]);
	int ws;
	cr_assert_eq(waitpid(pid, &ws, 0), pid);
	cr_assert(WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "bundle_write into a pipe failed");
	return (struct blob){b, len};
}

Test(bundle, a_pipe_gets_the_same_bytes_as_a_file)
{
	struct fixture f = fixture_new();
	char bpath[700];
	pack_to_file(f.db, t_path(&f.d, "db.strata", bpath, sizeof bpath), 2);
	struct t_blob file = t_read_file(bpath);
	struct bundle_snapshot s;
	cr_assert_eq(bundle_snapshot_open(f.db, &s), 0);
	struct blob piped = write_through_pipe(s.files, s.count, s.db_uuid, f.d.path);
	bundle_snapshot_free(&s);
	cr_assert_eq(piped.len, file.len);
	cr_assert_eq(memcmp(piped.b, file.data, file.len), 0);
	free(piped.b);
	free(file.data);
	fixture_free(&f);
}

Test(bundle, a_large_entry_spills_through_a_temporary_file_on_a_pipe, .timeout = 120)
{
	/* Past the 64 MiB in-memory spill: random bytes do not compress. */
	size_t len = (size_t)70 << 20;
	uint8_t *raw = malloc(len);
	uint64_t s = 12345;
	for (size_t i = 0; i < len; i += 8) {
		s = s * 6364136223846793005ull + 1442695040888963407ull;
		memcpy(raw + i, &s, 8);
	}
	struct bundle_file files[2] = {
		{.kind = BUNDLE_KIND_MANIFEST, .name = "MANIFEST", .data = (const uint8_t *)"m", .size = 1},
		{.kind = BUNDLE_KIND_SEGMENT, .name = "seg-00000000000000aa.seg", .data = raw, .size = len},
	};
	struct t_dir d = t_dir_new();
	struct blob b = write_through_pipe(files, 2, NULL, d.path);
	struct bundle_mem m;
	struct bundle_source src;
	struct bundle_reader *r;
	bundle_source_mem(&m, b.b, b.len, &src);
	cr_assert_eq(bundle_reader_new(&src, &r), 0);
	struct bundle_entry e;
	cr_assert_eq(bundle_reader_next(r, &e), 0);
	cr_assert_eq(bundle_reader_next(r, &e), 0);
	cr_assert_eq(e.raw_size, len);
	uint8_t *back = malloc(len);
	size_t got = 0, n;
	do {
		cr_assert_eq(bundle_reader_read(r, back + got, len - got + (got == len), &n), 0, "%s",
		             err_detail());
		got += n;
	} while (n);
	cr_assert_eq(got, len);
	cr_assert_eq(memcmp(back, raw, len), 0);
	cr_assert_eq(bundle_reader_next(r, &e), BUNDLE_END, "%s", err_detail());
	bundle_reader_free(r);
	/* The spill file was unlinked at once: nothing is left in the spill directory. */
	DIR *dh = opendir(d.path);
	struct dirent *de;
	while ((de = readdir(dh)))
		cr_assert(de->d_name[0] == '.' && (!de->d_name[1] || !strcmp(de->d_name, "..")),
		          "left in the spill directory: %s", de->d_name);
	closedir(dh);
	free(back);
	free(b.b);
	free(raw);
	t_dir_free(&d);
}

/* ---- names ------------------------------------------------------------------------------------ */

Test(bundle, names_are_checked_against_their_kind)
{
	cr_assert(bundle_name_ok(BUNDLE_KIND_MANIFEST, "MANIFEST"));
	cr_assert(bundle_name_ok(BUNDLE_KIND_SEGMENT, "seg-0123456789abcdef.seg"));
	cr_assert(!bundle_name_ok(BUNDLE_KIND_SEGMENT, "seg-0123456789ABCDEF.seg"));
	cr_assert(!bundle_name_ok(BUNDLE_KIND_SEGMENT, "MANIFEST"));
	cr_assert(!bundle_name_ok(BUNDLE_KIND_MANIFEST, "MANIFEST.tmp"));
	cr_assert(!bundle_name_ok(BUNDLE_KIND_MANIFEST, "/MANIFEST"));
	cr_assert(!bundle_name_ok(BUNDLE_KIND_MANIFEST, ""));
	cr_assert(!bundle_name_ok(BUNDLE_KIND_SEGMENT, "../seg-0123456789abcde.seg"));
	cr_assert(!bundle_name_ok(BUNDLE_KIND_MANIFEST, "LOCK"));
	cr_assert(!bundle_name_ok(9, "MANIFEST"));
	/* Version 2's kinds: WAL and deletion files. */
	cr_assert(bundle_name_ok(BUNDLE_KIND_WAL, "wal-0123456789abcdef.log"));
	cr_assert(bundle_name_ok(BUNDLE_KIND_DELETION, "del-0123456789abcdef-00000000000000ff.del"));
	cr_assert(!bundle_name_ok(BUNDLE_KIND_WAL, "wal-0123456789ABCDEF.log"));
	cr_assert(!bundle_name_ok(BUNDLE_KIND_WAL, "wal-0123456789abcdef.log.tmp"));
	cr_assert(!bundle_name_ok(BUNDLE_KIND_WAL, "seg-0123456789abcdef.seg"));
	cr_assert(!bundle_name_ok(BUNDLE_KIND_DELETION, "del-0123456789abcdef-00000000000000ff.del.tmp"));
	cr_assert(!bundle_name_ok(BUNDLE_KIND_DELETION, "del-0123456789abcdef_00000000000000ff.del"));
	cr_assert(!bundle_name_ok(BUNDLE_KIND_DELETION, "del-0123456789abcdef-0000000000000-ff.del"));
	cr_assert(!bundle_name_ok(BUNDLE_KIND_DELETION, "del-0123456789abcdef-00000000000000ff.seg"));
	cr_assert(!bundle_name_ok(BUNDLE_KIND_SEGMENT, "del-0123456789abcdef-00000000000000ff.del"));
}

/* ---- every refusal, one crafted bundle each ------------------------------------------------------ */

/* A two-entry bundle of the fixture with the segment entry replaced by `seg`. */
static struct blob with_segment_entry(const struct fixture *f, struct ent seg)
{
	struct ent e[2] = {
		{.kind = 1, .name = "MANIFEST", .raw = f->manifest.data, .raw_len = f->manifest.len},
		seg,
	};
	struct craft c = {.uuid = f->mf.db_uuid};
	return craft(e, 2, &c);
}

static struct ent seg_ent(const struct fixture *f)
{
	return (struct ent){.kind = 2, .name = "seg-0000000000000001.seg", .raw = f->seg.data,
	                    .raw_len = f->seg.len};
}

Test(bundle, refuses_a_name_with_a_slash)
{
	struct fixture f = fixture_new();
	struct ent s = seg_ent(&f);
	s.name = "seg-000000000000/001.seg";
	expect_refusal(&f, with_segment_entry(&f, s), STRATA_ECORRUPT, "path separator");
	fixture_free(&f);
}

Test(bundle, refuses_a_name_with_dot_dot)
{
	struct fixture f = fixture_new();
	struct ent s = seg_ent(&f);
	s.name = "seg-..00000000000001.seg";
	expect_refusal(&f, with_segment_entry(&f, s), STRATA_ECORRUPT, "'..'");
	fixture_free(&f);
}

Test(bundle, refuses_an_absolute_name)
{
	struct fixture f = fixture_new();
	struct ent s = seg_ent(&f);
	s.name = "/etc/seg-0000000001.seg";
	expect_refusal(&f, with_segment_entry(&f, s), STRATA_ECORRUPT, "absolute");
	fixture_free(&f);
}

Test(bundle, refuses_an_empty_name)
{
	struct fixture f = fixture_new();
	struct ent s = seg_ent(&f);
	s.name = ""; /* name_len 0 */
	expect_refusal(&f, with_segment_entry(&f, s), STRATA_ECORRUPT, "empty name");
	fixture_free(&f);
}

Test(bundle, refuses_a_name_with_a_nul_or_control_byte)
{
	struct fixture f = fixture_new();
	struct ent s = seg_ent(&f);
	s.name = "seg-00000000" "\0" "0000001" ".seg"; /* 24 bytes, a NUL at 12 */
	s.name_len = 24;
	expect_refusal(&f, with_segment_entry(&f, s), STRATA_ECORRUPT, "byte 0x00");
	fixture_free(&f);
}

/* The MANIFEST, then the segment twice (entries 0..2; the first two alone are sound). */
static void manifest_and_segment_twice(const struct fixture *f, struct ent e[3])
{
	e[0] = (struct ent){.kind = 1, .name = "MANIFEST", .raw = f->manifest.data,
	                    .raw_len = f->manifest.len};
	e[1] = seg_ent(f);
	e[2] = seg_ent(f);
}

Test(bundle, refuses_duplicate_names)
{
	struct fixture f = fixture_new();
	struct ent e[3];
	manifest_and_segment_twice(&f, e);
	struct craft c = {.uuid = f.mf.db_uuid};
	expect_refusal(&f, craft(e, 3, &c), STRATA_ECORRUPT, "appears twice");
	fixture_free(&f);
}

Test(bundle, refuses_names_the_database_format_does_not_know)
{
	struct fixture f = fixture_new();
	struct ent s = seg_ent(&f);
	s.name = "seg-0000000000000001.dat";
	expect_refusal(&f, with_segment_entry(&f, s), STRATA_ECORRUPT, "format knows");
	s = seg_ent(&f);
	s.kind = 1; /* a manifest entry under a segment's name */
	expect_refusal(&f, with_segment_entry(&f, s), STRATA_ECORRUPT, "format knows");
	s = seg_ent(&f);
	s.name = "LOCK";
	expect_refusal(&f, with_segment_entry(&f, s), STRATA_ECORRUPT, "format knows");
	fixture_free(&f);
}

Test(bundle, refuses_unknown_kinds_and_in_version_1_the_kinds_version_2_defined)
{
	struct fixture f = fixture_new();
	struct ent s = seg_ent(&f);
	s.kind = 9;
	expect_refusal(&f, with_segment_entry(&f, s), STRATA_ECORRUPT, "kind 9");
	/* Version-1 readers reserved kinds 3 and 4 and refused them as a newer version: still so. */
	s.kind = BUNDLE_KIND_WAL;
	s.name = "wal-0000000000000001.log";
	expect_refusal(&f, with_segment_entry(&f, s), STRATA_EVERSION, "version-1 bundle");
	s.kind = BUNDLE_KIND_DELETION;
	s.name = "del-0000000000000001-0000000000000001.del";
	expect_refusal(&f, with_segment_entry(&f, s), STRATA_EVERSION, "deletion");
	fixture_free(&f);
}

Test(bundle, refuses_a_declared_size_over_the_limit_before_writing)
{
	struct fixture f = fixture_new();
	struct blob b = craft_db(&f);
	char dir[700];
	t_path(&f.d, "out", dir, sizeof dir);
	struct bundle_unpack_opts o = {.max_bytes = 1000};
	cr_assert_eq(unpack_mem(&b, dir, &o), STRATA_ELIMIT, "%s", err_detail());
	cr_assert(strstr(err_detail(), "limit"), "%s", err_detail());
	cr_assert(access(dir, F_OK) != 0);
	assert_no_temporaries(f.d.path, "out");
	free(b.b);
	fixture_free(&f);
}

Test(bundle, refuses_a_declared_size_over_the_free_space)
{
	struct fixture f = fixture_new();
	struct ent e[2] = {
		{.kind = 1, .name = "MANIFEST", .raw = f.manifest.data, .raw_len = f.manifest.len},
		seg_ent(&f),
	};
	/* 2^60 bytes: more than any disk; within an explicit limit, so free space decides. */
	struct craft c = {.uuid = f.mf.db_uuid, .total_set = true, .total = 1ull << 60};
	struct blob b = craft(e, 2, &c);
	char dir[700];
	t_path(&f.d, "out", dir, sizeof dir);
	struct bundle_unpack_opts o = {.max_bytes = UINT64_MAX};
	cr_assert_eq(unpack_mem(&b, dir, &o), STRATA_ENOSPC, "%s", err_detail());
	cr_assert(strstr(err_detail(), "free"), "%s", err_detail());
	cr_assert(access(dir, F_OK) != 0);
	assert_no_temporaries(f.d.path, "out");
	free(b.b);
	fixture_free(&f);
}

Test(bundle, refuses_a_zip_bomb_at_the_first_byte_past_the_declared_size)
{
	struct fixture f = fixture_new();
	/*
	 * 64 MiB of zeros compress to a few KiB; the entry declares the segment's
	 * real size. With a small window the frame decodes until the first byte
	 * past the declared size.
	 */
	size_t big = (size_t)64 << 20;
	uint8_t *zeros = calloc(1, big);
	size_t flen;
	uint8_t *frame = zframe_small_window(zeros, big, &flen);
	struct ent s = seg_ent(&f);
	s.frame = frame;
	s.frame_len = flen;
	expect_refusal(&f, with_segment_entry(&f, s), STRATA_ECORRUPT, "more than the");
	/* The same bomb in the MANIFEST's place, declared small. */
	struct ent e[1] = {{.kind = 1, .name = "MANIFEST", .raw = f.manifest.data,
	                    .raw_len = f.manifest.len, .frame = frame, .frame_len = flen}};
	struct craft c = {.uuid = f.mf.db_uuid};
	expect_refusal(&f, craft(e, 1, &c), STRATA_ECORRUPT, "more than the");
	free(frame);
	/*
	 * Compressed as zstd does by default, the frame asks for a window as large
	 * as its 64 MiB: refused before the decoder allocates it, since the entry
	 * declares far less (bundle_reader_next bounds the window by that).
	 */
	frame = zframe(zeros, big, &flen);
	s = seg_ent(&f);
	s.frame = frame;
	s.frame_len = flen;
	expect_refusal(&f, with_segment_entry(&f, s), STRATA_ECORRUPT, "too much memory");
	free(frame);
	free(zeros);
	fixture_free(&f);
}

Test(bundle, refuses_a_frame_that_decompresses_short)
{
	struct fixture f = fixture_new();
	size_t flen;
	uint8_t *frame = zframe(f.seg.data, f.seg.len - 100, &flen);
	struct ent s = seg_ent(&f);
	s.frame = frame;
	s.frame_len = flen;
	expect_refusal(&f, with_segment_entry(&f, s), STRATA_ECORRUPT, "decompresses to");
	free(frame);
	fixture_free(&f);
}

Test(bundle, refuses_checksum_mismatches_of_every_part)
{
	struct fixture f = fixture_new();
	struct blob good = craft_db(&f);
	struct bundle_index idx;
	cr_assert_eq(bundle_index_decode(good.b, good.len, &idx), 0, "%s", err_detail());
	const struct {
		size_t off;
		const char *needle;
	} flips[] = {
		{20, "bundle header xxh3"},                                   /* header */
		{(size_t)idx.entries[1].off + 30, "entry header xxh3"},       /* entry header */
		{(size_t)idx.entries[1].off + 128 + 500, "frame xxh3"},       /* frame bytes */
		{(size_t)idx.ftr.index_off + 20, "index xxh3"},               /* index */
		{good.len - 40, "footer xxh3"},                               /* footer */
	};
	for (size_t i = 0; i < sizeof flips / sizeof flips[0]; i++) {
		struct blob b = {malloc(good.len), good.len};
		memcpy(b.b, good.b, good.len);
		b.b[flips[i].off] ^= 0x10;
		expect_refusal(&f, b, STRATA_ECHECKSUM, flips[i].needle);
	}
	/* Raw bytes that do not match their (correctly protected) raw checksum. */
	struct ent s = seg_ent(&f);
	s.bad_raw_xxh3 = true;
	expect_refusal(&f, with_segment_entry(&f, s), STRATA_ECHECKSUM, "decompressed bytes");
	bundle_index_free(&idx);
	free(good.b);
	fixture_free(&f);
}

Test(bundle, every_truncation_is_refused_and_leaves_nothing)
{
	struct fixture f = fixture_new();
	struct blob good = craft_db(&f);
	for (size_t len = 0; len < good.len; len++) {
		int rc = verify_mem(good.b, len);
		cr_assert_eq(rc, STRATA_ETRUNCATED, "a %zu-byte prefix of %zu: rc %d: %s", len, good.len,
		             rc, err_detail());
	}
	/* Through unpack, at a spread of lengths (each one makes and removes a directory). */
	char dir[700];
	t_path(&f.d, "out", dir, sizeof dir);
	for (size_t len = 0; len < good.len; len += good.len / 37 + 1) {
		struct blob b = {good.b, len};
		int rc = unpack_mem(&b, dir, NULL);
		cr_assert(STRATA_IS_DATA_ERROR(rc), "prefix %zu: %d", len, rc);
		cr_assert(access(dir, F_OK) != 0);
	}
	assert_no_temporaries(f.d.path, "out");
	/* And one byte too many. */
	uint8_t *longer = malloc(good.len + 1);
	memcpy(longer, good.b, good.len);
	longer[good.len] = 0;
	expect_refusal(&f, (struct blob){longer, good.len + 1}, STRATA_ECORRUPT, "follow the footer");
	free(good.b);
	fixture_free(&f);
}

Test(bundle, every_single_bit_flip_is_detected)
{
	struct fixture f = fixture_new();
	struct blob good = craft_db(&f);
	uint8_t *b = malloc(good.len);
	/* Every byte of a bundle is under some checksum: no flip may pass. */
	for (size_t i = 0; i < good.len; i += (i < 512 || i + 1024 > good.len) ? 1 : 13) {
		memcpy(b, good.b, good.len);
		b[i] ^= (uint8_t)(1u << (i % 8));
		int rc = verify_mem(b, good.len);
		cr_assert(STRATA_IS_DATA_ERROR(rc), "flip at %zu of %zu passed (rc %d)", i, good.len, rc);
	}
	free(b);
	free(good.b);
	fixture_free(&f);
}

Test(bundle, refuses_a_manifest_that_is_not_first)
{
	struct fixture f = fixture_new();
	struct ent e[2] = {
		seg_ent(&f),
		{.kind = 1, .name = "MANIFEST", .raw = f.manifest.data, .raw_len = f.manifest.len},
	};
	struct craft c = {.uuid = f.mf.db_uuid};
	expect_refusal(&f, craft(e, 2, &c), STRATA_ECORRUPT, "comes first");
	fixture_free(&f);
}

Test(bundle, refuses_an_entry_out_of_order)
{
	struct fixture f = fixture_new();
	struct ent s = seg_ent(&f);
	s.ordinal_delta = 1;
	expect_refusal(&f, with_segment_entry(&f, s), STRATA_ECORRUPT, "ordinal");
	fixture_free(&f);
}

/* A manifest like the fixture's with its one entry changed by `edit`, or a second entry. */
static struct t_blob manifest_variant(const struct fixture *f, void (*edit)(struct mf_manifest *))
{
	struct mf_manifest m = f->mf;
	struct mf_segment segs[2] = {f->mf.segments[0], f->mf.segments[0]};
	m.segments = segs;
	edit(&m);
	struct t_blob out;
	cr_assert_eq(mf_encode(&m, &out.data, &out.len), 0);
	return out;
}

static void add_second_segment(struct mf_manifest *m)
{
	m->segment_count = 2;
	m->segments[1].seq = 2;
	m->next_seq = 3;
}

static void other_size(struct mf_manifest *m)
{
	m->segments[0].file_size += 64;
}

static void other_header(struct mf_manifest *m)
{
	m->segments[0].header_xxh3 ^= 1;
}

static void other_count(struct mf_manifest *m)
{
	m->segments[0].count += 1;
}

static void other_uuid(struct mf_manifest *m)
{
	m->db_uuid[0] ^= 1;
}

static struct blob bundle_with_manifest(const struct fixture *f, struct t_blob mf, bool header_uuid)
{
	struct ent e[2] = {
		{.kind = 1, .name = "MANIFEST", .raw = mf.data, .raw_len = mf.len},
		seg_ent(f),
	};
	struct mf_manifest dec;
	cr_assert_eq(mf_decode(mf.data, mf.len, &dec), 0);
	struct craft c = {.uuid = header_uuid ? dec.db_uuid : f->mf.db_uuid};
	struct blob b = craft(e, 2, &c);
	mf_free(&dec);
	return b;
}

Test(bundle, refuses_a_manifest_and_files_that_disagree)
{
	struct fixture f = fixture_new();
	/* A segment the MANIFEST names is missing. */
	struct t_blob m = manifest_variant(&f, add_second_segment);
	expect_refusal(&f, bundle_with_manifest(&f, m, true), STRATA_ECORRUPT,
	               "seg-0000000000000002.seg: named by the MANIFEST but missing");
	free(m.data);
	/* An extra segment the MANIFEST does not name. */
	struct ent e[3] = {
		{.kind = 1, .name = "MANIFEST", .raw = f.manifest.data, .raw_len = f.manifest.len},
		seg_ent(&f),
		seg_ent(&f),
	};
	e[2].name = "seg-0000000000000007.seg";
	struct craft c = {.uuid = f.mf.db_uuid};
	expect_refusal(&f, craft(e, 3, &c), STRATA_ECORRUPT, "not named by the MANIFEST");
	/* Sizes, header checksums, counts differing from the MANIFEST entry. */
	m = manifest_variant(&f, other_size);
	expect_refusal(&f, bundle_with_manifest(&f, m, true), STRATA_ECORRUPT,
	               "the MANIFEST entry says");
	free(m.data);
	m = manifest_variant(&f, other_header);
	expect_refusal(&f, bundle_with_manifest(&f, m, true), STRATA_ECORRUPT, "header checksum");
	free(m.data);
	m = manifest_variant(&f, other_count);
	expect_refusal(&f, bundle_with_manifest(&f, m, true), STRATA_ECORRUPT, "vectors, the MANIFEST");
	free(m.data);
	/* A MANIFEST of another database than the header names. */
	m = manifest_variant(&f, other_uuid);
	expect_refusal(&f, bundle_with_manifest(&f, m, false), STRATA_ECORRUPT, "db_uuid");
	free(m.data);
	fixture_free(&f);
}

Test(bundle, runs_the_full_segment_verification)
{
	struct fixture f = fixture_new();
	/* A segment damaged before packing: the bundle's own checksums are right. */
	uint8_t *seg = malloc(f.seg.len);
	memcpy(seg, f.seg.data, f.seg.len);
	seg[SEG_HEADER_SIZE + 4 * DIM + 4] ^= 0x40; /* node 0's first neighbour */
	struct ent s = seg_ent(&f);
	s.raw = seg;
	expect_refusal(&f, with_segment_entry(&f, s), STRATA_ECHECKSUM, "seg-0000000000000001.seg");
	free(seg);
	fixture_free(&f);
}

Test(bundle, refuses_a_target_that_exists_and_is_not_empty)
{
	struct fixture f = fixture_new();
	struct blob b = craft_db(&f);
	cr_assert_eq(unpack_mem(&b, f.db, NULL), STRATA_EEXIST);
	/* An empty directory is fine: it is replaced. */
	char dir[700];
	cr_assert_eq(mkdir(t_path(&f.d, "empty", dir, sizeof dir), 0755), 0);
	cr_assert_eq(unpack_mem(&b, dir, NULL), 0, "%s", err_detail());
	free(b.b);
	fixture_free(&f);
}

Test(bundle, a_stale_temporary_of_a_killed_unpack_is_removed_by_the_next)
{
	struct fixture f = fixture_new();
	char stale[800], file[900], dir[700];
	snprintf(stale, sizeof stale, "%s/.out.unpack-AbC123", f.d.path);
	cr_assert_eq(mkdir(stale, 0700), 0);
	snprintf(file, sizeof file, "%s/seg-0000000000000001.seg", stale);
	t_write_file(file, "partial", 7);
	struct blob b = craft_db(&f);
	struct bundle_mem m;
	struct bundle_source src;
	struct bundle_db_stats st;
	bundle_source_mem(&m, b.b, b.len, &src);
	cr_assert_eq(bundle_unpack(&src, t_path(&f.d, "out", dir, sizeof dir), NULL, NULL, NULL, &st),
	             0, "%s", err_detail());
	cr_assert_eq(st.stale_removed, 1);
	cr_assert(access(stale, F_OK) != 0);
	free(b.b);
	fixture_free(&f);
}

Test(bundle, a_killed_unpack_leaves_nothing_under_the_target)
{
	struct fixture f = fixture_new();
	struct blob b = craft_db(&f);
	char dir[700];
	t_path(&f.d, "out", dir, sizeof dir);
	int p[2];
	cr_assert_eq(pipe(p), 0);
	fflush(NULL);
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		close(p[1]);
		struct bundle_fd bf;
		struct bundle_source src;
		bundle_source_fd(&bf, p[0], "pipe", &src);
		_exit(bundle_unpack(&src, dir, NULL, NULL, NULL, NULL) == 0 ? 0 : 1);
	}
	close(p[0]);
	/* Half the bundle, then wait until the child has its temporary directory, then kill it. */
	cr_assert_eq(write(p[1], b.b, b.len / 2), (ssize_t)(b.len / 2));
	char prefix[64] = ".out.unpack-";
	bool seen = false;
	for (int i = 0; i < 500 && !seen; i++) {
		DIR *d = opendir(f.d.path);
		struct dirent *e;
		while ((e = readdir(d)))
			seen |= strncmp(e->d_name, prefix, strlen(prefix)) == 0;
		closedir(d);
		if (!seen)
			usleep(10000);
	}
	cr_assert(seen, "the child never made its temporary directory");
	kill(pid, SIGKILL);
	int ws;
	waitpid(pid, &ws, 0);
	close(p[1]);
	cr_assert(WIFSIGNALED(ws));
	cr_assert(access(dir, F_OK) != 0, "a killed unpack left %s", dir);
	/* The next unpack of the same target removes the temporary and succeeds. */
	cr_assert_eq(unpack_mem(&b, dir, NULL), 0, "%s", err_detail());
	assert_no_temporaries(f.d.path, "out");
	free(b.b);
	fixture_free(&f);
}

#if STRATA_FAILPOINTS
Test(bundle, every_failing_write_fsync_or_rename_leaves_nothing)
{
	struct fixture f = fixture_new();
	struct blob b = craft_db(&f);
	char dir[700];
	t_path(&f.d, "out", dir, sizeof dir);
	static const enum fp_site sites[] = {FP_OPEN, FP_WRITE, FP_FSYNC, FP_RENAME, FP_MMAP, FP_MKDIR};
	for (size_t s = 0; s < sizeof sites / sizeof sites[0]; s++) {
		for (int n = 1;; n++) {
			fp_arm(sites[s], n, sites[s] == FP_WRITE ? ENOSPC : EIO);
			int rc = unpack_mem(&b, dir, NULL);
			bool hit = fp_hits(sites[s]) >= n;
			fp_disarm_all();
			if (!hit) {
				cr_assert_eq(rc, 0, "site %zu untouched: %s", s, err_detail());
				t_rmtree(dir);
				break;
			}
			cr_assert_neq(rc, 0, "site %zu call %d failed but unpack succeeded", s, n);
			cr_assert(access(dir, F_OK) != 0, "site %zu call %d left %s", s, n, dir);
			assert_no_temporaries(f.d.path, "out");
		}
	}
	free(b.b);
	fixture_free(&f);
}
#endif

/*
 * tests/golden/v1/tiny.strata: the golden database tests/golden/v1/tiny
 * packed by the version-1 writer (strata pack of commit d9b0903, --threads 1).
 * Bundles of every released version must unpack forever (FORMAT.md 8.10).
 */
Test(bundle, the_golden_version_1_bundle_still_verifies_and_unpacks_to_the_golden_files)
{
	const char *g = getenv("STRATA_GOLDEN");
	char golden[600], gdir[600], out[700], p1[900], p2[900];
	snprintf(golden, sizeof golden, "%s/v1/tiny.strata", g && *g ? g : "tests/golden");
	snprintf(gdir, sizeof gdir, "%s/v1/tiny", g && *g ? g : "tests/golden");
	struct t_blob b = t_read_file(golden);
	cr_assert(b.data, "%s missing", golden);
	cr_assert_eq(le_load32(b.data + BUNDLE_OFF_VERSION), 1, "written by the version-1 writer");
	cr_assert_eq(verify_mem(b.data, b.len), 0, "%s", err_detail());
	struct bundle_index idx;
	cr_assert_eq(bundle_index_decode(b.data, b.len, &idx), 0, "%s", err_detail());
	cr_assert_eq(idx.hdr.version, 1);
	cr_assert_eq(idx.count, 2);
	bundle_index_free(&idx);
	struct t_dir d = t_dir_new();
	struct blob bb = {b.data, b.len};
	struct bundle_db_stats st;
	struct bundle_mem m;
	struct bundle_source src;
	bundle_source_mem(&m, bb.b, bb.len, &src);
	cr_assert_eq(bundle_unpack(&src, t_path(&d, "tiny", out, sizeof out), NULL, NULL, NULL, &st),
	             0, "%s", err_detail());
	cr_assert_eq(st.version, 1);
	cr_assert_eq(st.vectors, 100);
	const char *names[] = {"MANIFEST", "seg-0000000000000001.seg"};
	for (int i = 0; i < 2; i++) {
		snprintf(p1, sizeof p1, "%s/%s", gdir, names[i]);
		snprintf(p2, sizeof p2, "%s/%s", out, names[i]);
		same_file(p1, p2);
	}
	free(b.data);
	t_dir_free(&d);
}

/* ---- version 2: deletion files and WAL files ------------------------------------------------ */

/*
 * The fixture's database as a writer would have left it: its segment (seq 1)
 * with a deletion file of generation 2 (nodes 0, 5 and 64 deleted), and a
 * WAL after the MANIFEST's checkpoint (0): LSN 1 upserts ids 1000 and 1001,
 * LSN 2 deletes the id of node 7, LSN 3 upserts id 1002. Deletion and WAL
 * bytes come from format/'s codecs (tombstone.h, wal_record.h); the bundle
 * around them from this test's own encoder.
 */
struct v2 {
	struct fixture f;
	struct t_blob mf, del, wal;
	uint64_t dead_ids[3];   /* ids of nodes 0, 5, 64 */
	uint64_t wal_dead_id;   /* id of node 7, deleted by LSN 2 */
	float fresh[3 * DIM];   /* vectors of ids 1000, 1001, 1002 */
};

static const uint32_t DEAD_NODES[3] = {0, 5, 64};

static struct t_blob del_file(uint64_t seq, uint64_t hx, uint64_t gen, uint64_t count,
                              const uint32_t *nodes, size_t n)
{
	uint64_t *bits = calloc(tomb_words(count) + 1, sizeof *bits);
	for (size_t i = 0; i < n; i++)
		bits[nodes[i] / 64] |= 1ull << (nodes[i] % 64);
	struct t_blob b;
	cr_assert_eq(tomb_encode(seq, hx, gen, bits, count, &b.data, &b.len), 0, "%s", err_detail());
	free(bits);
	return b;
}

struct walbuf {
	uint8_t *b;
	size_t len;
};

static void wal_begin(struct walbuf *w, const uint8_t *uuid, uint32_t dim, uint64_t first_lsn)
{
	struct walrec_file_header h = {.first_lsn = first_lsn, .dim = dim};
	memcpy(h.db_uuid, uuid, 16);
	w->b = malloc(WAL_FILE_HEADER_SIZE);
	walrec_file_header_encode(&h, w->b);
	w->len = WAL_FILE_HEADER_SIZE;
}

static void wal_add(struct walbuf *w, unsigned type, uint64_t lsn, const struct iovec *iov, int n)
{
	size_t len;
	uint8_t *rec = t_wal_record(type, lsn, iov, n, &len);
	w->b = realloc(w->b, w->len + len);
	memcpy(w->b + w->len, rec, len);
	w->len += len;
	free(rec);
}

static void wal_upsert(struct walbuf *w, uint64_t lsn, const uint64_t *ids, const float *v,
                       uint32_t n, uint32_t dim)
{
	uint8_t pre[WAL_PAYLOAD_PREFIX_SIZE];
	walrec_upsert_prefix(n, dim, pre);
	struct iovec iov[3] = {{pre, sizeof pre}, {(void *)ids, 8 * (size_t)n},
	                       {(void *)v, 4 * (size_t)n * dim}};
	wal_add(w, WAL_REC_UPSERT, lsn, iov, 3);
}

static void wal_delete(struct walbuf *w, uint64_t lsn, const uint64_t *ids, uint32_t n)
{
	uint8_t pre[WAL_PAYLOAD_PREFIX_SIZE];
	walrec_delete_prefix(n, pre);
	struct iovec iov[2] = {{pre, sizeof pre}, {(void *)ids, 8 * (size_t)n}};
	wal_add(w, WAL_REC_DELETE, lsn, iov, 2);
}

static uint64_t node_id(const struct fixture *f, uint32_t node)
{
	struct seg_info in;
	cr_assert_eq(seg_check(f->seg.data, f->seg.len, &in), 0);
	return le_load64(in.ids + 8 * (size_t)node);
}

static void with_deletion_gen(struct mf_manifest *m)
{
	m->segments[0].tomb_gen = 2;
	m->next_seq = 3;
}

static struct v2 v2_new(void)
{
	struct v2 x;
	memset(&x, 0, sizeof x);
	x.f = fixture_new();
	const struct mf_segment *e = &x.f.mf.segments[0];
	x.mf = manifest_variant(&x.f, with_deletion_gen);
	x.del = del_file(e->seq, e->header_xxh3, 2, e->count, DEAD_NODES, 3);
	for (int i = 0; i < 3; i++)
		x.dead_ids[i] = node_id(&x.f, DEAD_NODES[i]);
	x.wal_dead_id = node_id(&x.f, 7);
	float *v = t_random_vectors(3, DIM, 4242);
	memcpy(x.fresh, v, sizeof x.fresh);
	free(v);
	struct walbuf w;
	wal_begin(&w, x.f.mf.db_uuid, DIM, 1);
	uint64_t up[2] = {1000, 1001}, last = 1002;
	wal_upsert(&w, 1, up, x.fresh, 2, DIM);
	wal_delete(&w, 2, &x.wal_dead_id, 1);
	wal_upsert(&w, 3, &last, x.fresh + 2 * DIM, 1, DIM);
	x.wal = (struct t_blob){w.b, w.len};
	return x;
}

static void v2_free(struct v2 *x)
{
	free(x->mf.data);
	free(x->del.data);
	free(x->wal.data);
	fixture_free(&x->f);
}

enum { V2_MF, V2_SEG, V2_DEL, V2_WAL, V2_N };

/* The four entries of the v2 database, for a test to change one. */
static void v2_ents(const struct v2 *x, struct ent e[V2_N])
{
	e[V2_MF] = (struct ent){.kind = 1, .name = "MANIFEST", .raw = x->mf.data, .raw_len = x->mf.len};
	e[V2_SEG] = seg_ent(&x->f);
	e[V2_DEL] = (struct ent){.kind = 4, .name = "del-0000000000000001-0000000000000002.del",
	                         .raw = x->del.data, .raw_len = x->del.len};
	e[V2_WAL] = (struct ent){.kind = 3, .name = "wal-0000000000000001.log", .raw = x->wal.data,
	                         .raw_len = x->wal.len};
}

static struct blob v2_craft(const struct v2 *x, const struct ent *e, size_t n)
{
	struct craft c = {.uuid = x->f.mf.db_uuid, .version = 2};
	return craft(e, n, &c);
}

/* A database directory holding exactly the v2 fixture's files. */
static void v2_write_dir(const struct v2 *x, const char *dir)
{
	char p[900];
	cr_assert_eq(mkdir(dir, 0755), 0);
	const struct {
		const char *name;
		const struct t_blob *b;
	} files[] = {{"MANIFEST", &x->mf}, {"seg-0000000000000001.seg", &x->f.seg},
	             {"del-0000000000000001-0000000000000002.del", &x->del},
	             {"wal-0000000000000001.log", &x->wal}};
	for (size_t i = 0; i < 4; i++) {
		snprintf(p, sizeof p, "%s/%s", dir, files[i].name);
		t_write_file(p, files[i].b->data, files[i].b->len);
	}
}

/* Is `id` live in db, and if so is its vector `want` (NULL: do not compare)? */
static bool has_id(strata_db *db, uint64_t id, const float *want)
{
	float v[DIM];
	int rc = strata_get(db, id, v);
	cr_assert(rc == 0 || rc == STRATA_ENOTFOUND, "get %llu: %d", (unsigned long long)id, rc);
	if (rc == 0 && want)
		cr_assert_eq(memcmp(v, want, sizeof v), 0, "id %llu: another vector",
		             (unsigned long long)id);
	return rc == 0;
}

Test(bundle, version_2_carries_deletion_and_wal_files_and_unpack_keeps_them)
{
	struct v2 x = v2_new();
	struct ent e[V2_N];
	v2_ents(&x, e);
	struct blob b = v2_craft(&x, e, V2_N);
	cr_assert_eq(verify_mem(b.b, b.len), 0, "%s", err_detail());
	struct bundle_mem m;
	struct bundle_source src;
	struct bundle_db_stats st;
	char out[700], p1[800];
	bundle_source_mem(&m, b.b, b.len, &src);
	cr_assert_eq(bundle_unpack(&src, t_path(&x.f.d, "out", out, sizeof out), NULL, NULL, NULL, &st),
	             0, "%s", err_detail());
	cr_assert_eq(st.version, 2);
	cr_assert_eq(st.deletion_files, 1);
	cr_assert_eq(st.deleted, 3);
	cr_assert_eq(st.vectors, N - 3, "live vectors of the flushed state");
	cr_assert_eq(st.wal_files, 1);
	cr_assert_eq(st.wal_records, 3);
	cr_assert_eq(st.wal_first_lsn, 1);
	cr_assert_eq(st.wal_last_lsn, 3);
	snprintf(p1, sizeof p1, "%s/del-0000000000000001-0000000000000002.del", out);
	struct t_blob got = t_read_file(p1);
	cr_assert(got.data && got.len == x.del.len && !memcmp(got.data, x.del.data, got.len));
	free(got.data);
	snprintf(p1, sizeof p1, "%s/wal-0000000000000001.log", out);
	got = t_read_file(p1);
	cr_assert(got.data && got.len == x.wal.len && !memcmp(got.data, x.wal.data, got.len));
	free(got.data);

	/* A reader sees the flushed state: the deletion file applies, the WAL does not yet. */
	strata_db *db;
	cr_assert_eq(strata_open(out, NULL, STRATA_READONLY | STRATA_VERIFY, &db), 0, "%s",
	             strata_last_error_detail());
	struct strata_stats s;
	strata_stats(db, &s);
	cr_assert_eq(s.vectors, N - 3);
	for (int i = 0; i < 3; i++)
		cr_assert(!has_id(db, x.dead_ids[i], NULL));
	cr_assert(has_id(db, x.wal_dead_id, NULL));
	cr_assert(!has_id(db, 1000, NULL));
	strata_close(db);
	/* The next writer replays the WAL. */
	cr_assert_eq(strata_open(out, NULL, 0, &db), 0, "%s", strata_last_error_detail());
	strata_stats(db, &s);
	cr_assert_eq(s.replay_records, 3);
	cr_assert_eq(s.vectors, N - 3 - 1 + 3);
	cr_assert(!has_id(db, x.wal_dead_id, NULL));
	cr_assert(has_id(db, 1000, x.fresh) && has_id(db, 1001, x.fresh + DIM) &&
	          has_id(db, 1002, x.fresh + 2 * DIM));
	for (int i = 0; i < 3; i++)
		cr_assert(!has_id(db, x.dead_ids[i], NULL));
	strata_close(db);
	free(b.b);
	v2_free(&x);
}

Test(bundle, the_writer_writes_version_2_and_the_snapshot_takes_every_file)
{
	struct v2 x = v2_new();
	char dir[700], bpath[700];
	v2_write_dir(&x, t_path(&x.f.d, "v2db", dir, sizeof dir));
	struct bundle_snapshot s;
	cr_assert_eq(bundle_snapshot_open(dir, &s), 0, "%s", err_detail());
	cr_assert_eq(s.count, 4);
	cr_assert_str_eq(s.files[0].name, "MANIFEST");
	cr_assert_str_eq(s.files[1].name, "seg-0000000000000001.seg");
	cr_assert_str_eq(s.files[2].name, "del-0000000000000001-0000000000000002.del");
	cr_assert_str_eq(s.files[3].name, "wal-0000000000000001.log");
	cr_assert_eq(s.files[3].size, x.wal.len);
	cr_assert_eq(s.deletion_files, 1);
	cr_assert_eq(s.deleted, 3);
	cr_assert_eq(s.vectors, N - 3);
	cr_assert_eq(s.wal_records, 3);
	cr_assert_eq(s.wal_first_lsn, 1);
	cr_assert_eq(s.wal_last_lsn, 3);
	cr_assert_eq(s.wal_cut_bytes, 0);
	cr_assert(s.segs[0].deleted && (s.segs[0].deleted[1] & 1), "node 64's bit");
	bundle_snapshot_free(&s);
	/* Without the WAL: the flushed state alone. */
	cr_assert_eq(bundle_snapshot_take(dir, 0, &s), 0, "%s", err_detail());
	cr_assert_eq(s.count, 3);
	cr_assert_eq(s.wal_files, 0);
	bundle_snapshot_free(&s);

	pack_to_file(dir, t_path(&x.f.d, "v2.strata", bpath, sizeof bpath), 1);
	struct t_blob b = t_read_file(bpath);
	cr_assert_eq(le_load32(b.data + BUNDLE_OFF_VERSION), 2);
	cr_assert_eq(verify_mem(b.data, b.len), 0, "%s", err_detail());
	/* The writer's bundle and this test's encoder agree byte for byte but for the frames. */
	struct bundle_index idx;
	cr_assert_eq(bundle_index_decode(b.data, b.len, &idx), 0, "%s", err_detail());
	cr_assert_eq(idx.count, 4);
	cr_assert_eq(idx.entries[2].kind, BUNDLE_KIND_DELETION);
	cr_assert_eq(idx.entries[3].kind, BUNDLE_KIND_WAL);
	bundle_index_free(&idx);
	free(b.data);
	v2_free(&x);
}

Test(bundle, a_torn_wal_tail_is_cut_and_counted_by_the_snapshot)
{
	struct v2 x = v2_new();
	char dir[700], p[900];
	v2_write_dir(&x, t_path(&x.f.d, "v2db", dir, sizeof dir));
	/* Half of a fourth record: what a reader beside a writer in mid-write sees. */
	struct walbuf w = {malloc(x.wal.len), x.wal.len};
	memcpy(w.b, x.wal.data, x.wal.len);
	uint64_t id = 1003;
	wal_upsert(&w, 4, &id, x.fresh, 1, DIM);
	size_t torn = (w.len - x.wal.len) / 2;
	snprintf(p, sizeof p, "%s/wal-0000000000000001.log", dir);
	t_write_file(p, w.b, x.wal.len + torn);
	struct bundle_snapshot s;
	cr_assert_eq(bundle_snapshot_open(dir, &s), 0, "%s", err_detail());
	cr_assert_eq(s.files[3].size, x.wal.len, "cut after the last whole record");
	cr_assert_eq(s.wal_cut_bytes, torn);
	cr_assert_eq(s.wal_records, 3);
	bundle_snapshot_free(&s);

	/* A file being created after a whole one (header not written yet) holds nothing: left out. */
	t_write_file(p, x.wal.data, x.wal.len);
	snprintf(p, sizeof p, "%s/wal-0000000000000004.log", dir);
	t_write_file(p, "\0\0\0\0\0\0\0\0", 8);
	cr_assert_eq(bundle_snapshot_open(dir, &s), 0, "%s", err_detail());
	cr_assert_eq(s.count, 4);
	cr_assert_eq(s.wal_files, 1);
	cr_assert_eq(s.wal_cut_bytes, 8);
	bundle_snapshot_free(&s);
	/*
	 * But a torn record in a file that is not the newest is damage (a writer
	 * syncs a file whole before it makes the next): pack refuses it.
	 */
	snprintf(p, sizeof p, "%s/wal-0000000000000001.log", dir);
	t_write_file(p, w.b, x.wal.len + torn);
	snprintf(p, sizeof p, "%s/wal-0000000000000004.log", dir);
	struct walbuf w2;
	wal_begin(&w2, x.f.mf.db_uuid, DIM, 4);
	wal_upsert(&w2, 4, &id, x.fresh, 1, DIM);
	t_write_file(p, w2.b, w2.len);
	err_clear();
	cr_assert_eq(bundle_snapshot_open(dir, &s), STRATA_ECORRUPT);
	cr_assert(strstr(err_detail(), "wal-0000000000000001.log"), "%s", err_detail());
	free(w2.b);
	free(w.b);
	v2_free(&x);
}

Test(bundle, the_snapshot_refuses_wal_records_missing_after_the_checkpoint)
{
	struct v2 x = v2_new();
	char dir[700], p[900];
	v2_write_dir(&x, t_path(&x.f.d, "v2db", dir, sizeof dir));
	/* The WAL starts at LSN 2 while the checkpoint is 0: LSN 1 is gone, and no commit explains it. */
	snprintf(p, sizeof p, "%s/wal-0000000000000001.log", dir);
	remove(p);
	struct walbuf w;
	wal_begin(&w, x.f.mf.db_uuid, DIM, 2);
	wal_delete(&w, 2, &x.wal_dead_id, 1);
	snprintf(p, sizeof p, "%s/wal-0000000000000002.log", dir);
	t_write_file(p, w.b, w.len);
	struct bundle_snapshot s;
	err_clear();
	cr_assert_eq(bundle_snapshot_open(dir, &s), STRATA_ECORRUPT);
	cr_assert(strstr(err_detail(), "are missing"), "%s", err_detail());
	/* And a deletion file the MANIFEST names but the directory lacks. */
	remove(p);
	snprintf(p, sizeof p, "%s/del-0000000000000001-0000000000000002.del", dir);
	remove(p);
	err_clear();
	cr_assert_eq(bundle_snapshot_open(dir, &s), STRATA_ECORRUPT);
	cr_assert(strstr(err_detail(), "named by the MANIFEST but missing"), "%s", err_detail());
	free(w.b);
	v2_free(&x);
}

Test(bundle, refuses_a_deletion_file_bound_to_another_segment_or_generation)
{
	struct v2 x = v2_new();
	const struct mf_segment *m = &x.f.mf.segments[0];
	struct ent e[V2_N];
	/* Another segment's header checksum: a deletion file left beside a rewritten segment. */
	struct t_blob other = del_file(m->seq, m->header_xxh3 ^ 1, 2, m->count, DEAD_NODES, 3);
	v2_ents(&x, e);
	e[V2_DEL].raw = other.data;
	expect_refusal(&x.f, v2_craft(&x, e, V2_N), STRATA_ECORRUPT, "bound to segment header xxh3");
	free(other.data);
	/* Another segment's seq, under this one's name. */
	other = del_file(m->seq + 1, m->header_xxh3, 2, m->count, DEAD_NODES, 3);
	e[V2_DEL].raw = other.data;
	expect_refusal(&x.f, v2_craft(&x, e, V2_N), STRATA_ECORRUPT, "of segment seq 2");
	free(other.data);
	/* Another generation's file under the generation the MANIFEST names. */
	other = del_file(m->seq, m->header_xxh3, 3, m->count, DEAD_NODES, 3);
	e[V2_DEL].raw = other.data;
	expect_refusal(&x.f, v2_craft(&x, e, V2_N), STRATA_ECORRUPT, "generation 3, expected 2");
	free(other.data);
	/* A bitmap that disagrees with its header (all checksums right). */
	other = del_file(m->seq, m->header_xxh3, 2, m->count, DEAD_NODES, 3);
	other.data[TOMB_HEADER_SIZE] |= 0x02; /* node 1 too */
	le_store64(other.data + TOMB_OFF_BODY_XXH3, xsum64(other.data + TOMB_HEADER_SIZE,
	                                                   other.len - TOMB_HEADER_SIZE));
	le_store64(other.data + TOMB_OFF_HEADER_XXH3, xsum64(other.data, TOMB_OFF_HEADER_XXH3));
	e[V2_DEL].raw = other.data;
	expect_refusal(&x.f, v2_craft(&x, e, V2_N), STRATA_ECORRUPT, "bits set, the header says");
	free(other.data);
	/* A declared size other than a deletion file of the segment's count has. */
	v2_ents(&x, e);
	e[V2_DEL].raw_size_set = true;
	e[V2_DEL].raw_size = x.del.len + 8;
	expect_refusal(&x.f, v2_craft(&x, e, V2_N), STRATA_ECORRUPT, "the deletion file of a segment");
	v2_free(&x);
}

Test(bundle, refuses_deletion_files_the_manifest_does_not_name_or_misses)
{
	struct v2 x = v2_new();
	struct ent e[V2_N + 1];
	/* Named by the MANIFEST, missing from the bundle. */
	v2_ents(&x, e);
	e[V2_DEL] = e[V2_WAL];
	expect_refusal(&x.f, v2_craft(&x, e, V2_N - 1), STRATA_ECORRUPT,
	               "del-0000000000000001-0000000000000002.del: named by the MANIFEST but missing");
	/* An extra one: another generation of the same segment. */
	v2_ents(&x, e);
	e[V2_N] = e[V2_DEL];
	e[V2_N].name = "del-0000000000000001-0000000000000007.del";
	expect_refusal(&x.f, v2_craft(&x, e, V2_N + 1), STRATA_ECORRUPT, "another generation");
	/* An extra one of a segment the MANIFEST does not list. */
	e[V2_N].name = "del-0000000000000009-0000000000000002.del";
	expect_refusal(&x.f, v2_craft(&x, e, V2_N + 1), STRATA_ECORRUPT, "no such segment");
	/* One for a segment that has none (the MANIFEST of the version-1 fixture: tomb_gen 0). */
	v2_ents(&x, e);
	e[V2_MF].raw = x.f.manifest.data;
	e[V2_MF].raw_len = x.f.manifest.len;
	expect_refusal(&x.f, v2_craft(&x, e, 3), STRATA_ECORRUPT, "the segment has none");
	/* A version-1 bundle whose MANIFEST names a deletion file: as version-1 readers refused it. */
	v2_ents(&x, e);
	struct craft c1 = {.uuid = x.f.mf.db_uuid, .version = 1};
	expect_refusal(&x.f, craft(e, 2, &c1), STRATA_EVERSION, "version-1 bundles cannot carry");
	v2_free(&x);
}

Test(bundle, refuses_wal_files_that_are_not_whole_or_not_this_databases)
{
	struct v2 x = v2_new();
	struct ent e[V2_N + 1];
	/* Cut inside its last record: a bundle carries whole records only. */
	v2_ents(&x, e);
	e[V2_WAL].raw_len -= 8;
	expect_refusal(&x.f, v2_craft(&x, e, V2_N), STRATA_ECORRUPT, "whole records only");
	/* A record's bytes damaged (its own checksum, not the bundle's, catches it). */
	uint8_t *bad = malloc(x.wal.len);
	memcpy(bad, x.wal.data, x.wal.len);
	bad[WAL_FILE_HEADER_SIZE + 40] ^= 0x01; /* in LSN 1's ids */
	v2_ents(&x, e);
	e[V2_WAL].raw = bad;
	expect_refusal(&x.f, v2_craft(&x, e, V2_N), STRATA_ECHECKSUM, "offset 64");
	/* Another database's WAL; another dim; a name that is not its first LSN. */
	struct walbuf w;
	uint8_t uuid[16];
	memcpy(uuid, x.f.mf.db_uuid, 16);
	uuid[3] ^= 1;
	wal_begin(&w, uuid, DIM, 1);
	v2_ents(&x, e);
	e[V2_WAL].raw = w.b;
	e[V2_WAL].raw_len = w.len;
	expect_refusal(&x.f, v2_craft(&x, e, V2_N), STRATA_ECORRUPT, "another database");
	free(w.b);
	wal_begin(&w, x.f.mf.db_uuid, DIM + 1, 1);
	e[V2_WAL].raw = w.b;
	expect_refusal(&x.f, v2_craft(&x, e, V2_N), STRATA_ECORRUPT, "dim 9, the MANIFEST's is 8");
	free(w.b);
	wal_begin(&w, x.f.mf.db_uuid, DIM, 1);
	e[V2_WAL].raw = w.b;
	e[V2_WAL].name = "wal-0000000000000002.log";
	expect_refusal(&x.f, v2_craft(&x, e, V2_N), STRATA_ECORRUPT, "not the one in its name");
	free(w.b);
	/* Shorter than a WAL header: refused from its entry header, before its frame. */
	v2_ents(&x, e);
	e[V2_WAL].raw_len = 10;
	expect_refusal(&x.f, v2_craft(&x, e, V2_N), STRATA_ECORRUPT, "fewer than a WAL file header");
	free(bad);
	v2_free(&x);
}

Test(bundle, refuses_wal_files_that_leave_a_gap_after_the_checkpoint)
{
	struct v2 x = v2_new();
	struct ent e[V2_N + 1];
	/* The only WAL file starts at LSN 2: record 1, after the checkpoint 0, is missing. */
	struct walbuf w;
	wal_begin(&w, x.f.mf.db_uuid, DIM, 2);
	wal_delete(&w, 2, &x.wal_dead_id, 1);
	v2_ents(&x, e);
	e[V2_WAL].raw = w.b;
	e[V2_WAL].raw_len = w.len;
	e[V2_WAL].name = "wal-0000000000000002.log";
	expect_refusal(&x.f, v2_craft(&x, e, V2_N), STRATA_ECORRUPT, "records 1..1 are missing");
	free(w.b);
	/* Two files that do not continue each other: 1..3, then 5. */
	wal_begin(&w, x.f.mf.db_uuid, DIM, 5);
	wal_delete(&w, 5, &x.wal_dead_id, 1);
	v2_ents(&x, e);
	e[V2_N] = (struct ent){.kind = 3, .name = "wal-0000000000000005.log", .raw = w.b,
	                       .raw_len = w.len};
	expect_refusal(&x.f, v2_craft(&x, e, V2_N + 1), STRATA_ECORRUPT,
	               "wal-0000000000000005.log starts at LSN 5");
	free(w.b);
	/* Continuing ones are fine, in any entry order. */
	wal_begin(&w, x.f.mf.db_uuid, DIM, 4);
	wal_delete(&w, 4, &x.wal_dead_id, 1);
	e[V2_N] = e[V2_WAL];
	e[V2_WAL] = (struct ent){.kind = 3, .name = "wal-0000000000000004.log", .raw = w.b,
	                         .raw_len = w.len};
	struct blob b = v2_craft(&x, e, V2_N + 1);
	cr_assert_eq(verify_mem(b.b, b.len), 0, "%s", err_detail());
	free(b.b);
	free(w.b);
	v2_free(&x);
}

Test(bundle, every_truncation_and_bit_flip_of_a_version_2_bundle_is_refused)
{
	struct v2 x = v2_new();
	struct ent e[V2_N];
	v2_ents(&x, e);
	struct blob good = v2_craft(&x, e, V2_N);
	for (size_t len = 0; len < good.len; len += (len < 1024 || len + 1024 > good.len) ? 1 : 7) {
		int rc = verify_mem(good.b, len);
		cr_assert_eq(rc, STRATA_ETRUNCATED, "a %zu-byte prefix of %zu: rc %d: %s", len, good.len,
		             rc, err_detail());
	}
	uint8_t *b = malloc(good.len);
	for (size_t i = 0; i < good.len; i += (i < 512 || i + 2048 > good.len) ? 1 : 11) {
		memcpy(b, good.b, good.len);
		b[i] ^= (uint8_t)(1u << (i % 8));
		int rc = verify_mem(b, good.len);
		cr_assert(STRATA_IS_DATA_ERROR(rc), "flip at %zu of %zu passed (rc %d)", i, good.len, rc);
	}
	free(b);
	free(good.b);
	v2_free(&x);
}

/* Pack `s` to bpath, unpack it to copy, replay its WAL: it must be a prefix of the script. */
static uint64_t snapshot_round_trip(struct bundle_snapshot *s, const char *bpath, const char *copy,
                                    uint64_t lo, uint64_t hi)
{
	int fd = open(bpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	cr_assert(fd >= 0);
	struct bundle_pack_opts o = {.level = 1, .threads = 1};
	cr_assert_eq(bundle_write(fd, bpath, s->files, s->count, s->db_uuid, &o, NULL), 0, "%s",
	             err_detail());
	close(fd);
	struct t_blob b = t_read_file(bpath);
	struct blob bb = {b.data, b.len};
	cr_assert_eq(unpack_mem(&bb, copy, NULL), 0, "%s", err_detail());
	free(b.data);
	strata_db *c;
	cr_assert_eq(strata_open(copy, NULL, 0, &c), 0, "%s", strata_last_error_detail());
	uint64_t p = t_writer_check_prefix(c, DIM, lo, hi);
	cr_assert_eq(strata_close(c), 0);
	t_rmtree(copy);
	return p;
}

/*
 * Snapshots taken while another process writes, flushes and merges: each is
 * one state of the database, the state after some prefix of the writer's
 * acknowledged calls (at least those acknowledged before the snapshot began),
 * whichever files the writer replaced meanwhile. The first dozen, and every
 * one that had to start over because a commit replaced a file it was about
 * to open, go through pack, unpack and replay and are compared with the
 * writer's script; the rest must at least be taken.
 */
Test(bundle, snapshots_beside_a_writer_that_flushes_and_merges_are_consistent, .timeout = 300)
{
	struct t_dir d = t_dir_new();
	char db[700], bpath[700], copy[700];
	t_path(&d, "live", db, sizeof db);
	t_path(&d, "b.strata", bpath, sizeof bpath);
	t_path(&d, "copy", copy, sizeof copy);
	struct t_writer w;
	t_writer_start(&w, db, DIM, 100);
	uint32_t restarts = 0, restarted = 0, with_wal = 0, with_del = 0, checked = 0;
	const int total = 2000;
	for (int i = 0; i < total; i++) {
		uint64_t lo = t_writer_acked(&w);
		struct bundle_snapshot s;
		err_clear();
		cr_assert_eq(bundle_snapshot_open(db, &s), 0, "%s", err_detail());
		uint64_t hi = t_writer_acked(&w) + 1; /* + the call in flight, written but not acknowledged */
		restarts += s.retries;
		restarted += s.retries > 0;
		with_wal += s.wal_records > 0;
		with_del += s.deletion_files > 0;
		if (i < 12 || s.retries) {
			uint64_t p = snapshot_round_trip(&s, bpath, copy, lo, hi);
			cr_log_info("snapshot %d (%u restart(s)): the state after call %llu (acknowledged "
			            "%llu..%llu)", i, s.retries, (unsigned long long)p,
			            (unsigned long long)lo, (unsigned long long)hi - 1);
			checked++;
			usleep(20000);
		}
		bundle_snapshot_free(&s);
	}
	t_writer_stop(&w);
	cr_log_info("%d snapshots: %u with WAL records, %u with deletion files; %u started over "
	            "(%u restarts) after a concurrent commit; %u checked in full", total, with_wal,
	            with_del, restarted, restarts, checked);
	cr_assert(with_wal > 0, "the writer never had unflushed records when a snapshot was taken");
	t_dir_free(&d);
}

/* Mappings of `path` in this process. */
static int t_mappings_of_file(const char *path)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[1024];
	int n = 0;
	while (f && fgets(line, sizeof line, f))
		n += strstr(line, path) != NULL;
	if (f)
		fclose(f);
	return n;
}

/*
 * What pack reads must check out before a byte is written: a MANIFEST that is
 * missing, oversized or damaged, a segment missing, of another size, damaged,
 * of another database's header or parameters, or a deletion file named but
 * missing. Each is refused with its code and a
 * detail naming the file, and nothing is left mapped.
 */
Test(bundle, snapshot_refuses_a_database_that_does_not_check_out)
{
	struct fixture f = fixture_new();
	char mf_path[700], seg_path[700];
	snprintf(mf_path, sizeof mf_path, "%s/MANIFEST", f.db);
	snprintf(seg_path, sizeof seg_path, "%s/seg-0000000000000001.seg", f.db);
	struct bundle_snapshot s;

	cr_assert_eq(bundle_snapshot_open(f.db, &s), 0, "%s", err_detail());
	cr_assert_eq(s.count, 2);
	cr_assert_eq(s.vectors, N);
	bundle_snapshot_free(&s);
	cr_assert_eq(bundle_snapshot_open(NULL, &s), STRATA_EINVAL);

	/* The MANIFEST: missing, larger than any valid one, damaged. */
	unlink(mf_path);
	cr_assert_eq(bundle_snapshot_open(f.db, &s), STRATA_ENOTFOUND, "%s", err_detail());
	size_t big = MF_HEADER_SIZE + (size_t)MF_ENTRY_SIZE * MF_SEGMENTS_MAX + 1;
	uint8_t *zeros = calloc(1, big);
	t_write_file(mf_path, zeros, big);
	free(zeros);
	cr_assert_eq(bundle_snapshot_open(f.db, &s), STRATA_ECORRUPT, "%s", err_detail());
	cr_assert(strstr(err_detail(), "larger than"), "%s", err_detail());
	t_write_file(mf_path, f.manifest.data, f.manifest.len - 1);
	int rc = bundle_snapshot_open(f.db, &s);
	cr_assert(STRATA_IS_DATA_ERROR(rc) && strstr(err_detail(), "MANIFEST"), "%d %s", rc, err_detail());

	/* The segment: another size, missing, damaged behind a right size. */
	struct mf_manifest m = f.mf;
	struct mf_segment e = f.mf.segments[0];
	m.segments = &e;
	e.file_size += 64;
	cr_assert_eq(mf_commit(f.db, &m), 0);
	cr_assert_eq(bundle_snapshot_open(f.db, &s), STRATA_ETRUNCATED, "%s", err_detail());
	e.file_size -= 128;
	cr_assert_eq(mf_commit(f.db, &m), 0);
	cr_assert_eq(bundle_snapshot_open(f.db, &s), STRATA_ECORRUPT, "%s", err_detail());
	e = f.mf.segments[0];
	cr_assert_eq(mf_commit(f.db, &m), 0);
	unlink(seg_path);
	cr_assert_eq(bundle_snapshot_open(f.db, &s), STRATA_ECORRUPT, "%s", err_detail());
	cr_assert(strstr(err_detail(), "missing"), "%s", err_detail());
	uint8_t *bad = malloc(f.seg.len);
	memcpy(bad, f.seg.data, f.seg.len);
	bad[0] ^= 1; /* the magic */
	t_write_file(seg_path, bad, f.seg.len);
	free(bad);
	rc = bundle_snapshot_open(f.db, &s);
	cr_assert(STRATA_IS_DATA_ERROR(rc) && strstr(err_detail(), "seg-0000000000000001.seg"), "%d %s",
	          rc, err_detail());
	t_write_file(seg_path, f.seg.data, f.seg.len);

	/* The entry does not describe the file: another header, count or parameters. */
	e.header_xxh3 ^= 1;
	cr_assert_eq(mf_commit(f.db, &m), 0);
	cr_assert_eq(bundle_snapshot_open(f.db, &s), STRATA_ECORRUPT, "%s", err_detail());
	cr_assert(strstr(err_detail(), "header checksum"), "%s", err_detail());
	e = f.mf.segments[0];
	m.M = f.mf.M + 1;
	cr_assert_eq(mf_commit(f.db, &m), 0);
	cr_assert_eq(bundle_snapshot_open(f.db, &s), STRATA_ECORRUPT, "%s", err_detail());
	cr_assert(strstr(err_detail(), "differ from the MANIFEST"), "%s", err_detail());
	m.M = f.mf.M;

	/* A deletion file the MANIFEST names but the directory lacks. */
	e.tomb_gen = m.next_seq;
	m.next_seq++;
	cr_assert_eq(mf_commit(f.db, &m), 0);
	cr_assert_eq(bundle_snapshot_open(f.db, &s), STRATA_ECORRUPT, "%s", err_detail());
	cr_assert(strstr(err_detail(), "missing"), "%s", err_detail());
	cr_assert_eq(t_mappings_of_file(seg_path), 0, "a refused snapshot left the segment mapped");
	fixture_free(&f);
}

/* Listing from the back (bundle_index_decode, `strata inspect`) refuses what the stream refuses. */
Test(bundle, the_index_refuses_duplicate_names_and_an_overdrawn_total)
{
	struct fixture f = fixture_new();
	struct ent e[3];
	manifest_and_segment_twice(&f, e);
	struct craft c = {.uuid = f.mf.db_uuid};
	struct blob b = craft(e, 3, &c);
	struct bundle_index idx;
	cr_assert_eq(bundle_index_decode(b.b, b.len, &idx), STRATA_ECORRUPT, "%s", err_detail());
	cr_assert(strstr(err_detail(), "appears twice"), "%s", err_detail());
	free(b.b);

	c.total_set = true;
	c.total = f.manifest.len + f.seg.len - 1;
	b = craft(e, 2, &c);
	cr_assert_eq(bundle_index_decode(b.b, b.len, &idx), STRATA_ECORRUPT, "%s", err_detail());
	cr_assert(strstr(err_detail(), "header's total"), "%s", err_detail());
	free(b.b);

	c.total = f.manifest.len + f.seg.len;
	b = craft(e, 2, &c);
	cr_assert_eq(bundle_index_decode(b.b, b.len, &idx), 0, "%s", err_detail());
	cr_assert_eq(idx.count, 2);
	bundle_index_free(&idx);
	free(b.b);
	fixture_free(&f);
}

/* The writer never writes what the reader refuses: each bad request fails before a byte is out. */
Test(bundle, the_writer_refuses_what_readers_refuse_before_writing)
{
	struct t_dir d = t_dir_new();
	char p[700];
	t_path(&d, "out.strata", p, sizeof p);
	int fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0644);
	cr_assert(fd >= 0);
	const uint8_t m[1] = {'m'};
	struct bundle_file ok[2] = {
		{.kind = BUNDLE_KIND_MANIFEST, .name = "MANIFEST", .data = m, .size = 1},
		{.kind = BUNDLE_KIND_SEGMENT, .name = "seg-0000000000000001.seg", .data = m, .size = 1},
	};
	struct bundle_pack_opts o = {.level = 20};
	cr_assert_eq(bundle_write(fd, p, ok, 2, NULL, &o, NULL), STRATA_EINVAL, "level 20");
	o.level = -1000;
	cr_assert_eq(bundle_write(fd, p, ok, 2, NULL, &o, NULL), STRATA_EINVAL, "level -1000");
	cr_assert_eq(bundle_write(fd, p, ok, 0, NULL, NULL, NULL), STRATA_EINVAL, "no file");
	cr_assert_eq(bundle_write(fd, p, NULL, 2, NULL, NULL, NULL), STRATA_EINVAL, "null files");
	struct bundle_file bad[2];
	memcpy(bad, ok, sizeof bad);
	bad[1].kind = BUNDLE_KIND_WAL;
	cr_assert_eq(bundle_write(fd, p, bad, 2, NULL, NULL, NULL), STRATA_EINVAL, "kind 3");
	memcpy(bad, ok, sizeof bad);
	snprintf(bad[1].name, sizeof bad[1].name, "../seg-0000000000000001.seg");
	cr_assert_eq(bundle_write(fd, p, bad, 2, NULL, NULL, NULL), STRATA_EINVAL, "a path");
	memcpy(bad, ok, sizeof bad);
	bad[1].data = NULL;
	cr_assert_eq(bundle_write(fd, p, bad, 2, NULL, NULL, NULL), STRATA_EINVAL, "no bytes");
	memcpy(bad, ok, sizeof bad);
	snprintf(bad[1].name, sizeof bad[1].name, "MANIFEST");
	bad[1].kind = BUNDLE_KIND_MANIFEST;
	cr_assert_eq(bundle_write(fd, p, bad, 2, NULL, NULL, NULL), STRATA_EINVAL, "twice");
	cr_assert(strstr(err_detail(), "twice"), "%s", err_detail());
	struct stat st;
	cr_assert_eq(fstat(fd, &st), 0);
	cr_assert_eq(st.st_size, 0, "a refused bundle_write wrote %lld bytes", (long long)st.st_size);
	o.level = 1;
	cr_assert_eq(bundle_write(fd, p, ok, 2, NULL, &o, NULL), 0, "%s", err_detail());
	close(fd);
	t_dir_free(&d);
}
