/*
 * cmd_verify.c - `strata verify DIR|FILE [--json] [-v]`: the full check of a
 * database or of one segment or manifest file. Manual: strata.1, "verify".
 *
 * For a database, in order (each failure is reported with file and detail,
 * and checking goes on with the next file so one run lists every damage):
 *   1. MANIFEST decodes (magic, version, checksums, ranges);
 *   2. each segment it names exists, has the size the entry records, passes
 *      seg_check (header, section table), matches the entry's header checksum
 *      and count and the manifest's dim, metric and M, and passes seg_verify
 *      (every section checksum, every edge, ids, id index);
 *   3. each deletion file the manifest names decodes (checksums, popcount)
 *      and is bound to its segment (seq, header checksum, count, generation);
 *   4. every WAL file (wal_scan_dir): header, uuid and dim of this database,
 *      every record's framing, checksum and payload, LSNs consecutive within
 *      and across files and reaching back to the manifest's checkpoint. A torn
 *      tail of the newest file (what a crash leaves, and the next writer cuts)
 *      is a warning; damage anywhere else is an error;
 *   5. files a crash left behind (temporaries, segments and deletion files the
 *      manifest does not name, WAL files wholly below the checkpoint) are
 *      listed as info: the next writer removes most of them;
 *   6. when 1-4 found no error: the engine opens the directory with
 *      STRATA_READONLY | STRATA_VERIFY, the library's own verdict.
 * A WAL or deletion file given alone is checked by the rules one file can
 * show (tools/cli_files.h).
 * A bundle file (FORMAT.md, "Bundle file") is verified without unpacking it
 * to disk: bundle_verify() decompresses one entry at a time into memory and
 * applies every check unpack applies; it stops at the first damage.
 * Exit status: 0 sound (warnings and info do not change it), 1 damaged (or
 * unreadable), 2 usage error.
 */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bundle.h"
#include "cli.h"
#include "cli_files.h"
#include "err.h"
#include "le.h"
#include "manifest.h"
#include "segment.h"
#include "strata.h"
#include "tombstone.h"
#include "wal.h"

#define CMD "verify"
#define PROBLEMS_MAX 256
#define NOTES_MAX 256

static const char usage_text[] =
	"usage: strata verify DIR|FILE [--json] [-v]\n"
	"\n"
	"Check a database directory (the MANIFEST, every segment and deletion file it\n"
	"names, every WAL file, then an open with STRATA_VERIFY) or a single segment,\n"
	"manifest, bundle, WAL or deletion FILE: every checksum, every graph edge, the\n"
	"ids and the id index, every WAL record. Reads every byte.\n"
	"A bundle is checked as unpack checks it, in memory, without unpacking it.\n"
	"A torn WAL tail (what a crash leaves; the next writer cuts it) is a warning;\n"
	"files a crash left behind are listed as info.\n"
	"Exit status: 0 when sound (warnings allowed), 1 when damaged (each problem\n"
	"is printed with its file, section and node or offset), 2 on a usage error.\n"
	"\n"
	"options:\n"
	"  --json          print one JSON object: ok, problems, segments, vectors\n"
	"  -v, --verbose   print each check as it passes\n"
	"  -h, --help      this text\n";

struct problem {
	char file[160];
	int rc;
	char detail[600];
};

struct verify_state {
	const char *path;
	bool verbose;
	bool json;
	struct problem problems[PROBLEMS_MAX];
	size_t nproblems;
	size_t dropped;       /* problems beyond PROBLEMS_MAX (counted, not kept) */
	struct problem warnings[NOTES_MAX]; /* not damage: what a crash leaves and recovery handles */
	size_t nwarnings;
	struct problem infos[NOTES_MAX];    /* files that are not part of the database */
	size_t ninfos;
	size_t notes_dropped;
	uint32_t tomb_files;   /* deletion files checked */
	uint32_t wal_files;    /* WAL files checked */
	uint64_t wal_records;  /* whole records in them */
	bool is_wal;           /* a lone WAL file was checked */
	bool is_tomb;          /* a lone deletion file was checked */
	bool is_manifest_file; /* nothing but a manifest was checked */
	bool is_bundle;        /* a bundle file was checked */
	uint32_t files;        /* bundle: entries checked */
	uint32_t segments;     /* segments named (database, manifest) or 1 (segment file) */
	uint64_t vectors;      /* vectors they hold, as their headers or entries say */
	uint64_t bytes;        /* bytes read and checked */
};

static void problem(struct verify_state *v, const char *file, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void problem(struct verify_state *v, const char *file, int rc, const char *fmt, ...)
{
	if (v->nproblems == PROBLEMS_MAX) {
		v->dropped++;
		return;
	}
	struct problem *p = &v->problems[v->nproblems++];
	snprintf(p->file, sizeof p->file, "%s", file);
	p->rc = rc;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(p->detail, sizeof p->detail, fmt, ap);
	va_end(ap);
}

static void add_note(struct verify_state *v, bool warning, const char *file, int rc,
                     const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* A warning (warning) or an info line: printed, never a reason for exit status 1. */
static void add_note(struct verify_state *v, bool warning, const char *file, int rc,
                     const char *fmt, ...)
{
	size_t *n = warning ? &v->nwarnings : &v->ninfos;
	if (*n == NOTES_MAX) {
		v->notes_dropped++;
		return;
	}
	struct problem *p = warning ? &v->warnings[(*n)++] : &v->infos[(*n)++];
	snprintf(p->file, sizeof p->file, "%s", file);
	p->rc = rc;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(p->detail, sizeof p->detail, fmt, ap);
	va_end(ap);
}

/* A library failure: its code and the thread's detail. */
static void problem_rc(struct verify_state *v, const char *file, int rc)
{
	problem(v, file, rc, "%s", strata_last_error_detail());
}

static void note(const struct verify_state *v, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void note(const struct verify_state *v, const char *fmt, ...)
{
	if (!v->verbose || v->json)
		return;
	va_list ap;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

/*
 * Check one segment held in buf[0..len). `e` (may be NULL) is its manifest
 * entry and `mf` the manifest, both checked against the file.
 */
static void verify_segment(struct verify_state *v, const char *name, const uint8_t *buf,
                           size_t len, const struct mf_segment *e, const struct mf_manifest *mf)
{
	struct seg_info in;
	err_clear();
	int rc = seg_check(buf, len, &in);
	if (rc != 0) {
		problem_rc(v, name, rc);
		return;
	}
	note(v, "%s: header and section table ok (%llu nodes, dim %u, max level %u)", name,
	     (unsigned long long)in.count, in.dim, in.max_level);
	if (!e) {
		v->segments = 1;
		v->vectors = in.count;
	}
	if (e) {
		if (in.header_xxh3 != e->header_xxh3)
			problem(v, name, STRATA_ECORRUPT,
			        "header checksum %016llx differs from the manifest entry's %016llx (a "
			        "different file under this name)",
			        (unsigned long long)in.header_xxh3, (unsigned long long)e->header_xxh3);
		if (in.count != e->count)
			problem(v, name, STRATA_ECORRUPT, "%llu nodes, the manifest entry says %llu",
			        (unsigned long long)in.count, (unsigned long long)e->count);
	}
	if (mf && (in.dim != mf->dim || in.metric != mf->metric || in.M != mf->M))
		problem(v, name, STRATA_ECORRUPT,
		        "dim %u, metric %s, M %u; the manifest says dim %u, metric %s, M %u", in.dim,
		        cli_metric_name(in.metric), in.M, mf->dim, cli_metric_name(mf->metric), mf->M);
	err_clear();
	rc = seg_verify(&in);
	if (rc != 0) {
		problem_rc(v, name, rc);
		return;
	}
	note(v, "%s: every section checksum, edge, id and the id index ok", name);
}

/* Every deletion file the manifest names, bound to its segment's entry. */
static void verify_tombs(struct verify_state *v, const char *dir, const struct mf_manifest *mf)
{
	for (uint32_t i = 0; i < mf->segment_count; i++) {
		const struct mf_segment *e = &mf->segments[i];
		if (!e->tomb_gen)
			continue;
		char name[TOMB_NAME_LEN + 1];
		tomb_file_name(e->seq, e->tomb_gen, name, sizeof name);
		uint64_t *bits = NULL, deleted = 0;
		err_clear();
		int rc = tomb_load(dir, e->seq, e->header_xxh3, e->tomb_gen, e->count, &bits, &deleted);
		v->tomb_files++;
		if (rc != 0) {
			problem_rc(v, name, rc);
			continue;
		}
		v->bytes += tomb_file_size(e->count);
		free(bits);
		note(v, "%s: ok (generation %llu, %llu of %llu nodes deleted, bound to seg %llu)", name,
		     (unsigned long long)e->tomb_gen, (unsigned long long)deleted,
		     (unsigned long long)e->count, (unsigned long long)e->seq);
	}
}

struct wal_list {
	struct verify_state *v;
	struct wal_file_info *f;
	size_t n;
};

static int wal_checked(void *ctx, const struct wal_file_info *f)
{
	struct wal_list *l = ctx;
	struct verify_state *v = l->v;
	struct wal_file_info *p = realloc(l->f, (l->n + 1) * sizeof *p);
	if (!p)
		return err_set(STRATA_ENOMEM, "WAL file list");
	l->f = p;
	l->f[l->n++] = *f;
	v->wal_files++;
	v->wal_records += f->records;
	v->bytes += f->size_bytes;
	if (f->error) {
		problem(v, f->name, f->error, "%s", f->detail);
		return 0;
	}
	if (f->torn_header)
		add_note(v, true, f->name, 0,
		         "the newest WAL file's header is torn (%llu bytes): a crash while it was "
		         "created; the next writer removes it",
		         (unsigned long long)f->size_bytes);
	else if (f->torn_bytes)
		add_note(v, true, f->name, 0,
		         "torn tail: %llu bytes after byte offset %llu are not a whole record (a crash "
		         "during a write); the next writer cuts them",
		         (unsigned long long)f->torn_bytes, (unsigned long long)f->valid_bytes);
	note(v, "%s: %llu record(s)%s, every checksum ok", f->name, (unsigned long long)f->records,
	     f->newest ? " (newest)" : "");
	return 0;
}

static bool mf_names_tomb(const struct mf_manifest *mf, uint64_t seq, uint64_t gen)
{
	for (uint32_t i = 0; i < mf->segment_count; i++)
		if (mf->segments[i].seq == seq && mf->segments[i].tomb_gen == gen)
			return true;
	return false;
}

static bool mf_names_seg(const struct mf_manifest *mf, const char *name)
{
	for (uint32_t i = 0; i < mf->segment_count; i++) {
		char n[MF_SEGMENT_NAME_LEN + 1];
		mf_segment_name(mf->segments[i].seq, n, sizeof n);
		if (strcmp(n, name) == 0)
			return true;
	}
	return false;
}

/* Files in the directory that are not part of the database: info, not damage. */
static void verify_leftovers(struct verify_state *v, const char *dir, const struct mf_manifest *mf,
                             const struct wal_list *wl)
{
	DIR *dh = opendir(dir);
	if (!dh)
		return;
	struct dirent *ent;
	while ((ent = readdir(dh))) {
		const char *n = ent->d_name;
		size_t len = strlen(n);
		uint64_t a, b;
		if (len > 4 && strcmp(n + len - 4, ".tmp") == 0) {
			add_note(v, false, n, 0, "a temporary file a crash left behind; the next writer "
			                         "removes it");
		} else if (len == MF_SEGMENT_NAME_LEN && strncmp(n, "seg-", 4) == 0 &&
		           strcmp(n + len - 4, ".seg") == 0 && !mf_names_seg(mf, n)) {
			unsigned long long seq = strtoull(n + 4, NULL, 16);
			if (seq >= mf->next_seq)
				add_note(v, false, n, 0, "a segment of a flush that crashed before its manifest "
				                         "commit; the next writer removes it");
			else
				add_note(v, false, n, 0, "a segment the manifest does not name: not part of the "
				                         "database");
		} else if (cli_tomb_name_parse(n, &a, &b) == 0 && !mf_names_tomb(mf, a, b)) {
			add_note(v, false, n, 0, "a deletion file the manifest does not name (an older "
			                         "generation, or a flush that crashed before its commit); "
			                         "the next writer removes it");
		}
	}
	closedir(dh);
	/* WAL files all of whose records the checkpoint covers: already in segments. */
	for (size_t i = 0; i + 1 < wl->n; i++) {
		const struct wal_file_info *f = &wl->f[i];
		uint64_t next_first = wl->f[i + 1].first_lsn;
		if (!f->error && next_first >= 1 && next_first - 1 <= mf->checkpoint_lsn)
			add_note(v, false, f->name, 0,
			         "every record in it is at or below the checkpoint lsn %llu (already in "
			         "segments); the next writer removes it",
			         (unsigned long long)mf->checkpoint_lsn);
	}
}

static void verify_wal(struct verify_state *v, const char *dir, const struct mf_manifest *mf)
{
	struct wal_list wl = {.v = v};
	size_t before = v->nproblems + v->dropped;
	err_clear();
	int rc = wal_scan_dir(dir, mf->db_uuid, mf->dim, mf->checkpoint_lsn, wal_checked, &wl);
	if (rc && v->nproblems + v->dropped == before)
		problem_rc(v, "WAL", rc); /* the scan itself failed (listing, memory) */
	verify_leftovers(v, dir, mf, &wl);
	free(wl.f);
}

static void verify_dir(struct verify_state *v, const char *dir)
{
	struct mf_manifest mf;
	err_clear();
	int rc = mf_load(dir, &mf);
	if (rc != 0) {
		problem_rc(v, MF_FILE_NAME, rc);
		return;
	}
	note(v, "%s: ok (generation %llu, %u segment(s), dim %u, %s, M %u)", MF_FILE_NAME,
	     (unsigned long long)mf.generation, mf.segment_count, mf.dim, cli_metric_name(mf.metric),
	     mf.M);
	v->segments = mf.segment_count;
	for (uint32_t i = 0; i < mf.segment_count; i++)
		v->vectors += mf.segments[i].count;
	for (uint32_t i = 0; i < mf.segment_count; i++) {
		const struct mf_segment *e = &mf.segments[i];
		char name[MF_SEGMENT_NAME_LEN + 1], path[4096], err[256];
		mf_segment_name(e->seq, name, sizeof name);
		snprintf(path, sizeof path, "%s/%s", dir, name);
		const uint8_t *buf;
		size_t len;
		rc = cli_map_file(path, &buf, &len, err, sizeof err);
		if (rc == STRATA_ENOTFOUND) {
			problem(v, name, STRATA_ECORRUPT, "named by the manifest but missing");
			continue;
		}
		if (rc != 0) {
			problem(v, name, rc, "%s", err);
			continue;
		}
		v->bytes += len;
		if (len != e->file_size)
			problem(v, name, len < e->file_size ? STRATA_ETRUNCATED : STRATA_ECORRUPT,
			        "%zu bytes, the manifest entry says %llu", len,
			        (unsigned long long)e->file_size);
		else
			verify_segment(v, name, buf, len, e, &mf);
		cli_unmap_file(buf, len);
	}
	verify_tombs(v, dir, &mf);
	verify_wal(v, dir, &mf);
	mf_free(&mf);
	if (v->nproblems)
		return;
	/* The library's own verdict on the whole directory. */
	strata_db *db = NULL;
	rc = strata_open(dir, NULL, STRATA_READONLY | STRATA_VERIFY, &db);
	if (rc != 0) {
		problem_rc(v, "open", rc);
		return;
	}
	strata_close(db);
	note(v, "open with STRATA_VERIFY: ok");
}

static void bundle_entry_ok(const struct bundle_entry *e, void *ctx)
{
	static const char *const what[] = {
		[BUNDLE_KIND_SEGMENT] = ", the MANIFEST entry, every section, edge and id",
		[BUNDLE_KIND_DELETION] = ", its binding to the segment's MANIFEST entry and every bit",
		[BUNDLE_KIND_WAL] = ", its header against the MANIFEST, every record whole, every LSN",
	};
	note(ctx, "%s: %s entry %u ok (%llu bytes, %llu compressed): frame and content checksums%s",
	     e->name, bundle_kind_name(e->kind), e->ordinal, (unsigned long long)e->raw_size,
	     (unsigned long long)e->frame_size,
	     e->kind <= BUNDLE_KIND_DELETION && what[e->kind] ? what[e->kind] : "");
}

/* Entries are held in memory one at a time: at most what the machine has. */
static uint64_t memory_bytes(void)
{
	long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
	return pages > 0 && size > 0 ? (uint64_t)pages * (uint64_t)size : UINT64_MAX;
}

static void verify_bundle(struct verify_state *v, const char *name, const uint8_t *buf,
                          size_t len)
{
	struct bundle_mem m;
	struct bundle_source src;
	struct bundle_db_stats st;
	v->is_bundle = true;
	bundle_source_mem(&m, buf, len, &src);
	err_clear();
	int rc = bundle_verify(&src, memory_bytes(), bundle_entry_ok, v, &st);
	v->files = st.entries;
	v->segments = st.segments;
	v->vectors = st.vectors;
	if (rc != 0) {
		char file[64 + BUNDLE_NAME_MAX];
		snprintf(file, sizeof file, "%s%s%s", name, st.failed_entry[0] ? ": " : "",
		         st.failed_entry);
		problem_rc(v, file, rc);
		return;
	}
	note(v, "%s: version %u; index and footer ok; the MANIFEST and its %u segment(s) and %u "
	     "deletion file(s) agree; %u WAL file(s) continue its checkpoint (%llu record(s) after "
	     "it, which unpack replays)", name, st.version, st.segments, st.deletion_files,
	     st.wal_files, (unsigned long long)st.wal_records);
}

static void verify_file(struct verify_state *v, const char *path)
{
	const char *slash = strrchr(path, '/');
	const char *name = slash ? slash + 1 : path;
	const uint8_t *buf;
	size_t len;
	char err[256];
	int rc = cli_map_file(path, &buf, &len, err, sizeof err);
	if (rc != 0) {
		problem(v, name, rc, "%s", err);
		return;
	}
	uint64_t magic = len >= 8 ? le_load64(buf) : 0;
	v->bytes = len;
	if (magic == SEG_MAGIC) {
		verify_segment(v, name, buf, len, NULL, NULL);
	} else if (magic == MF_MAGIC) {
		v->is_manifest_file = true;
		struct mf_manifest mf;
		err_clear();
		rc = mf_decode(buf, len, &mf);
		if (rc != 0) {
			problem_rc(v, name, rc);
		} else {
			note(v, "%s: ok (generation %llu, %u segment(s))", name,
			     (unsigned long long)mf.generation, mf.segment_count);
			for (uint32_t i = 0; i < mf.segment_count; i++)
				v->vectors += mf.segments[i].count;
			v->segments = mf.segment_count;
			mf_free(&mf);
		}
	} else if (magic == BUNDLE_MAGIC) {
		verify_bundle(v, name, buf, len);
	} else if (magic == WAL_MAGIC || walrec_file_name_parse(name, &(uint64_t){0}) == 0) {
		v->is_wal = true;
		struct cli_wal_file w;
		cli_wal_walk(buf, len, false, NULL, NULL, &w);
		v->wal_files = 1;
		v->wal_records = w.records;
		if (w.error)
			problem(v, name, w.error, "%s", w.detail);
		else if (w.torn)
			add_note(v, true, name, 0, "%s", w.detail);
		if (!w.error)
			note(v, "%s: header and %llu record(s) ok (lsn %llu..%llu)", name,
			     (unsigned long long)w.records, (unsigned long long)w.first_lsn,
			     (unsigned long long)w.last_lsn);
	} else if (magic == TOMB_MAGIC) {
		v->is_tomb = true;
		struct cli_tomb_file t;
		cli_tomb_check(buf, len, name, &t);
		v->tomb_files = 1;
		if (t.error)
			problem(v, name, t.error, "%s", t.detail);
		else
			note(v, "%s: ok (segment seq %llu, generation %llu, %llu of %llu deleted)", name,
			     (unsigned long long)t.seg_seq, (unsigned long long)t.gen,
			     (unsigned long long)t.deleted, (unsigned long long)t.count);
		cli_tomb_file_free(&t);
	} else {
		problem(v, name, STRATA_ENOTDB,
		        "not a strata segment, manifest, bundle, WAL or deletion file (no strata magic "
		        "in its first 8 bytes)");
	}
	cli_unmap_file(buf, len);
}

static void print_json(const struct verify_state *v)
{
	struct cli_json j;
	cli_json_init(&j, stdout);
	cli_json_obj_begin(&j, NULL);
	cli_json_str(&j, "path", v->path);
	cli_json_bool(&j, "ok", v->nproblems == 0);
	cli_json_u64(&j, "segments", v->segments);
	cli_json_u64(&j, "vectors", v->vectors);
	cli_json_u64(&j, "file_bytes", v->bytes);
	if (v->is_bundle)
		cli_json_u64(&j, "bundle_files", v->files);
	cli_json_arr_begin(&j, "problems");
	for (size_t i = 0; i < v->nproblems; i++) {
		const struct problem *p = &v->problems[i];
		cli_json_obj_begin(&j, NULL);
		cli_json_str(&j, "file", p->file);
		cli_json_i64(&j, "code", p->rc);
		cli_json_str(&j, "error", strata_strerror(p->rc));
		cli_json_str(&j, "detail", p->detail);
		cli_json_obj_end(&j);
	}
	cli_json_arr_end(&j);
	if (v->dropped)
		cli_json_u64(&j, "problems_not_shown", v->dropped);
	cli_json_u64(&j, "deletion_files", v->tomb_files);
	cli_json_u64(&j, "wal_files", v->wal_files);
	cli_json_u64(&j, "wal_records", v->wal_records);
	for (int w = 1; w >= 0; w--) {
		cli_json_arr_begin(&j, w ? "warnings" : "info");
		size_t n = w ? v->nwarnings : v->ninfos;
		for (size_t i = 0; i < n; i++) {
			const struct problem *p = w ? &v->warnings[i] : &v->infos[i];
			cli_json_obj_begin(&j, NULL);
			cli_json_str(&j, "file", p->file);
			cli_json_str(&j, "detail", p->detail);
			cli_json_obj_end(&j);
		}
		cli_json_arr_end(&j);
	}
	cli_json_obj_end(&j);
}

static void print_notes(const struct verify_state *v)
{
	for (size_t i = 0; i < v->nwarnings; i++)
		printf("WARNING: %s: %s\n", v->warnings[i].file, v->warnings[i].detail);
	for (size_t i = 0; i < v->ninfos; i++)
		printf("INFO: %s: %s\n", v->infos[i].file, v->infos[i].detail);
	if (v->notes_dropped)
		printf("INFO: %zu more warning(s) or note(s) not shown\n", v->notes_dropped);
}

int cmd_verify(int argc, char **argv)
{
	bool json = false, verbose = false, help = false;
	const struct cli_opt opts[] = {
		{"--json", NULL, CLI_OPT_FLAG, &json, 0, 0},
		{"--verbose", "-v", CLI_OPT_FLAG, &verbose, 0, 0},
		{NULL, NULL, CLI_OPT_FLAG, NULL, 0, 0},
	};
	const char *pos[1];
	size_t npos;
	int rc = cli_parse(CMD, argc, argv, opts, pos, 1, &npos, &help);
	if (rc != 0)
		return rc;
	if (help) {
		fputs(usage_text, stdout);
		return CLI_EXIT_OK;
	}
	if (npos == 0)
		return cli_usage_error(CMD, "missing the database directory or file to verify");
	const char *path = pos[0];
	struct stat st;
	if (stat(path, &st) != 0)
		return cli_error(CMD, "%s: %s", path, strerror(errno));

	struct verify_state *v = calloc(1, sizeof *v);
	if (!v)
		return cli_error(CMD, "out of memory");
	v->path = path;
	v->verbose = verbose;
	v->json = json;
	if (S_ISDIR(st.st_mode))
		verify_dir(v, path);
	else
		verify_file(v, path);

	int status = v->nproblems ? CLI_EXIT_FAIL : CLI_EXIT_OK;
	if (!json)
		print_notes(v);
	if (json) {
		print_json(v);
	} else if (status == CLI_EXIT_OK) {
		char sz[32];
		if (v->is_wal)
			printf("OK: %s: a WAL file of %llu whole record(s)%s; every checksum and payload "
			       "verified\n", path, (unsigned long long)v->wal_records,
			       v->nwarnings ? " and a torn tail" : "");
		else if (v->is_tomb)
			printf("OK: %s: a sound deletion file (checked against its own header; verify the "
			       "database directory to check it against its segment)\n", path);
		else if (v->is_bundle)
			printf("OK: %s: a sound bundle of %u files: %u segment(s), %llu vectors, %s; every "
			       "checksum, frame and edge verified without unpacking\n",
			       path, v->files, v->segments, (unsigned long long)v->vectors,
			       cli_fmt_bytes(v->bytes, sz, sizeof sz));
		else if (v->is_manifest_file)
			printf("OK: %s: a sound manifest naming %u segment(s), %llu vectors (the segment "
			       "files were not read)\n",
			       path, v->segments, (unsigned long long)v->vectors);
		else if (S_ISDIR(st.st_mode))
			printf("OK: %s: %u segment(s), %llu vectors, %u deletion file(s), %u WAL file(s) "
			       "with %llu record(s), %s; every checksum and edge verified\n",
			       path, v->segments, (unsigned long long)v->vectors, v->tomb_files,
			       v->wal_files, (unsigned long long)v->wal_records,
			       cli_fmt_bytes(v->bytes, sz, sizeof sz));
		else
			printf("OK: %s: %u segment(s), %llu vectors, %s; every checksum and edge "
			       "verified\n",
			       path, v->segments, (unsigned long long)v->vectors,
			       cli_fmt_bytes(v->bytes, sz, sizeof sz));
	} else {
		for (size_t i = 0; i < v->nproblems; i++) {
			const struct problem *p = &v->problems[i];
			printf("DAMAGED: %s: %s%s%s\n", p->file, strata_strerror(p->rc),
			       p->detail[0] ? ": " : "", p->detail);
		}
		if (v->dropped)
			printf("DAMAGED: %zu more problem(s) not shown\n", v->dropped);
		printf("DAMAGED: %s: %zu problem(s) found\n", path, v->nproblems + v->dropped);
	}
	free(v);
	return status;
}
