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
 *   3. when all of that passed: the engine opens the directory with
 *      STRATA_READONLY | STRATA_VERIFY, the library's own verdict.
 * A bundle file (FORMAT.md, "Bundle file") is verified without unpacking it
 * to disk: bundle_verify() decompresses one entry at a time into memory and
 * applies every check unpack applies; it stops at the first damage.
 * Exit status: 0 sound, 1 damaged (or unreadable), 2 usage error.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bundle.h"
#include "cli.h"
#include "err.h"
#include "le.h"
#include "manifest.h"
#include "segment.h"
#include "strata.h"

#define CMD "verify"
#define PROBLEMS_MAX 256

static const char usage_text[] =
	"usage: strata verify DIR|FILE [--json] [-v]\n"
	"\n"
	"Check a database directory (the MANIFEST, every segment it names, then an\n"
	"open with STRATA_VERIFY) or a single segment, manifest or bundle FILE: every\n"
	"checksum, every graph edge, the ids and the id index. Reads every byte.\n"
	"A bundle is checked as unpack checks it, in memory, without unpacking it.\n"
	"Exit status: 0 when sound, 1 when damaged (each problem is printed with\n"
	"its file, section and node or offset), 2 on a usage error.\n"
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
	note(ctx, "%s: %s entry %u ok (%llu bytes, %llu compressed): frame and content checksums%s",
	     e->name, bundle_kind_name(e->kind), e->ordinal, (unsigned long long)e->raw_size,
	     (unsigned long long)e->frame_size,
	     e->kind == BUNDLE_KIND_SEGMENT ? ", the MANIFEST entry, every section, edge and id" : "");
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
	note(v, "%s: index and footer ok; the MANIFEST and its %u segment(s) agree", name,
	     st.segments);
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
	} else {
		problem(v, name, STRATA_ENOTDB,
		        "not a strata segment, manifest or bundle (no strata magic in its first 8 "
		        "bytes)");
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
	cli_json_obj_end(&j);
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
	if (json) {
		print_json(v);
	} else if (status == CLI_EXIT_OK) {
		char sz[32];
		if (v->is_bundle)
			printf("OK: %s: a sound bundle of %u files: %u segment(s), %llu vectors, %s; every "
			       "checksum, frame and edge verified without unpacking\n",
			       path, v->files, v->segments, (unsigned long long)v->vectors,
			       cli_fmt_bytes(v->bytes, sz, sizeof sz));
		else if (v->is_manifest_file)
			printf("OK: %s: a sound manifest naming %u segment(s), %llu vectors (the segment "
			       "files were not read)\n",
			       path, v->segments, (unsigned long long)v->vectors);
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
