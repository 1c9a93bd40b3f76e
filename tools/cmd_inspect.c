/*
 * cmd_inspect.c - `strata inspect DIR|FILE [--json]`: describe a database
 * (its MANIFEST and every segment), or one segment or manifest file, told
 * apart by magic. Manual: strata.1, section "inspect".
 *
 * Inspect reads through format/ directly (mf_load, seg_check), the way
 * redis-check-rdb reuses rdb.c, because it must describe files the engine
 * would refuse to open. It never trusts what it reads: a damaged file is
 * described as far as its checked parts allow, the error is reported, and the
 * exit status is 1. It does not read every byte: that is `strata verify`.
 * A bundle is listed from its trailing index without decompressing a thing,
 * except the MANIFEST it carries (at most a few MiB), for the database's
 * parameters.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bundle.h"
#include "cli.h"
#include "err.h"
#include "le.h"
#include "manifest.h"
#include "segment.h"
#include "strata.h"

#define CMD "inspect"
#define ERR_MAX 600

static const char usage_text[] =
	"usage: strata inspect DIR|FILE [--json]\n"
	"\n"
	"Describe the database in DIR (MANIFEST and segment files), or a single\n"
	"segment or manifest FILE: dim, metric, graph parameters, vectors, and per\n"
	"segment its level histogram and the size of every section. A bundle FILE is\n"
	"listed from its index (files, sizes, compression) without unpacking it.\n"
	"Damaged input is described as far as it can be read, with the error (exit\n"
	"status 1).\n"
	"\n"
	"options:\n"
	"  --json       print one JSON object (keys: dim, metric, vectors, segments, ...)\n"
	"  -h, --help   this text\n";

/* Everything inspect learned about one segment file. */
struct seg_report {
	char name[256];
	uint64_t seq;            /* from the manifest; 0 when inspected alone */
	bool have_entry;
	struct mf_segment entry;
	uint64_t file_bytes;
	bool checked;            /* seg_check passed: info and levels are valid */
	struct seg_info info;
	uint64_t levels[SEG_LEVEL_MAX + 1];
	uint64_t bad_levels;     /* upper index entries whose level is out of range */
	uint64_t table_off;
	uint32_t section_count;
	char error[ERR_MAX];     /* empty when none */
};

static void report_error(char *buf, size_t len, const char *what, int rc)
{
	const char *d = strata_last_error_detail();
	snprintf(buf, len, "%s%s%s%s%s", what ? what : "", what ? ": " : "", strata_strerror(rc),
	         d && *d ? ": " : "", d && *d ? d : "");
}

/* Map `path` and check it as a segment; fill r as far as that succeeds. */
static void seg_inspect(const char *path, struct seg_report *r)
{
	const uint8_t *map;
	size_t len;
	char err[256];
	int rc = cli_map_file(path, &map, &len, err, sizeof err);
	if (rc != 0) {
		snprintf(r->error, sizeof r->error, "%s", err);
		return;
	}
	r->file_bytes = len;
	err_clear();
	rc = seg_check(map, len, &r->info);
	if (rc != 0) {
		report_error(r->error, sizeof r->error, NULL, rc);
		cli_unmap_file(map, len);
		return;
	}
	const struct seg_info *in = &r->info;
	r->checked = true;
	r->table_off = le_load64(map + SEG_OFF_TABLE_OFF);
	r->section_count = le_load32(map + SEG_OFF_SECTION_COUNT);
	/* Nodes 0..upper_count-1 live on upper layers; their level is in the upper
	 * index (bounds checked by seg_check, values only by seg_verify). */
	for (uint64_t i = 0; i < in->upper_count; i++) {
		uint32_t lvl = le_load32(in->upper_index + i * SEG_UPPER_ENTRY_SIZE);
		if (lvl == 0 || lvl > in->max_level || lvl > SEG_LEVEL_MAX)
			r->bad_levels++;
		else
			r->levels[lvl]++;
	}
	r->levels[0] = in->count - in->upper_count;
	if (r->bad_levels)
		snprintf(r->error, sizeof r->error,
		         "%llu upper index entries hold a level outside 1..%u (run strata verify)",
		         (unsigned long long)r->bad_levels, in->max_level);
	if (r->have_entry && (r->entry.count != in->count || r->entry.file_size != len ||
	                      r->entry.header_xxh3 != in->header_xxh3) && !r->error[0])
		snprintf(r->error, sizeof r->error,
		         "the manifest entry (count %llu, %llu bytes) does not match the file (count "
		         "%llu, %zu bytes%s)",
		         (unsigned long long)r->entry.count, (unsigned long long)r->entry.file_size,
		         (unsigned long long)in->count, len,
		         r->entry.header_xxh3 != in->header_xxh3 ? ", other header checksum" : "");
	/* The report keeps numbers only; the mapping is not needed past this point. */
	r->info.base = NULL;
	cli_unmap_file(map, len);
}

struct sec_row {
	const char *name;
	uint64_t bytes;
};

/* Header, each section, the section table, and what is left (alignment padding). */
static size_t seg_sections(const struct seg_report *r, struct sec_row *rows)
{
	size_t n = 0;
	uint64_t used = SEG_HEADER_SIZE;
	rows[n++] = (struct sec_row){"header", SEG_HEADER_SIZE};
	static const char *const keys[] = {NULL, "nodes", "upper_index", "upper_links", "ids",
	                                   "id_index"};
	for (uint32_t k = 1; k <= SEG_SEC_KIND_MAX; k++) {
		rows[n++] = (struct sec_row){keys[k], r->info.sec[k].size};
		used += r->info.sec[k].size;
	}
	uint64_t table = (uint64_t)r->section_count * SEG_SECTION_ENTRY_SIZE;
	rows[n++] = (struct sec_row){"section_table", table};
	used += table;
	rows[n++] = (struct sec_row){"padding", r->file_bytes > used ? r->file_bytes - used : 0};
	return n;
}

static void seg_print(const struct seg_report *r)
{
	char sz[32];
	printf("segment %s\n", r->name);
	if (!r->checked) {
		if (r->file_bytes)
			printf("  file       %s (%llu bytes)\n", cli_fmt_bytes(r->file_bytes, sz, sizeof sz),
			       (unsigned long long)r->file_bytes);
		printf("  error      %s\n", r->error);
		return;
	}
	const struct seg_info *in = &r->info;
	printf("  vectors    %llu\n", (unsigned long long)in->count);
	printf("  dim %u, metric %s, M %u (layer 0: %u), ef_construction %u, seed %llu\n", in->dim,
	       cli_metric_name(in->metric), in->M, in->M0, in->ef_construction,
	       (unsigned long long)in->seed);
	printf("  max level  %u, entry node %u, node stride %u bytes\n", in->max_level, in->entry,
	       in->stride);
	printf("  levels    ");
	for (uint32_t l = 0; l <= in->max_level && l <= SEG_LEVEL_MAX; l++)
		printf(" L%u: %llu", l, (unsigned long long)r->levels[l]);
	putchar('\n');
	printf("  sections\n");
	struct sec_row rows[SEG_SEC_KIND_MAX + 4];
	size_t n = seg_sections(r, rows);
	for (size_t i = 0; i < n; i++)
		printf("    %-14s %14llu bytes  %5.1f%%\n", rows[i].name, (unsigned long long)rows[i].bytes,
		       r->file_bytes ? 100.0 * (double)rows[i].bytes / (double)r->file_bytes : 0.0);
	printf("  file       %s (%llu bytes)\n", cli_fmt_bytes(r->file_bytes, sz, sizeof sz),
	       (unsigned long long)r->file_bytes);
	if (r->error[0])
		printf("  error      %s\n", r->error);
}

static void seg_json(struct cli_json *j, const struct seg_report *r)
{
	cli_json_obj_begin(j, NULL);
	cli_json_str(j, "name", r->name);
	if (r->have_entry)
		cli_json_u64(j, "seq", r->seq);
	cli_json_u64(j, "file_bytes", r->file_bytes);
	if (r->checked) {
		const struct seg_info *in = &r->info;
		cli_json_u64(j, "vectors", in->count);
		cli_json_u64(j, "dim", in->dim);
		cli_json_str(j, "metric", cli_metric_name(in->metric));
		cli_json_u64(j, "M", in->M);
		cli_json_u64(j, "M0", in->M0);
		cli_json_u64(j, "ef_construction", in->ef_construction);
		cli_json_u64(j, "max_level", in->max_level);
		cli_json_u64(j, "entry", in->entry);
		cli_json_u64(j, "stride", in->stride);
		cli_json_u64(j, "upper_count", in->upper_count);
		cli_json_arr_begin(j, "levels");
		for (uint32_t l = 0; l <= in->max_level && l <= SEG_LEVEL_MAX; l++)
			cli_json_u64(j, NULL, r->levels[l]);
		cli_json_arr_end(j);
		cli_json_obj_begin(j, "sections");
		struct sec_row rows[SEG_SEC_KIND_MAX + 4];
		size_t n = seg_sections(r, rows);
		for (size_t i = 0; i < n; i++)
			cli_json_u64(j, rows[i].name, rows[i].bytes);
		cli_json_obj_end(j);
	} else if (r->have_entry) {
		cli_json_u64(j, "vectors", r->entry.count);
	}
	if (r->error[0])
		cli_json_str(j, "error", r->error);
	cli_json_obj_end(j);
}

/* ---- the three kinds of argument ---------------------------------------------------- */

struct db_report {
	const char *path;
	const char *kind;       /* "database", "segment", "manifest" */
	bool have_mf;
	struct mf_manifest mf;
	struct seg_report *segs;
	size_t nseg;
	uint64_t vectors;
	char error[ERR_MAX];    /* database-level error (manifest) */
};

static int name_cmp(const void *a, const void *b)
{
	return strcmp(((const struct seg_report *)a)->name, ((const struct seg_report *)b)->name);
}

/* Without a readable manifest, still describe the seg-*.seg files present. */
static void scan_segments(const char *dir, struct db_report *d)
{
	DIR *dh = opendir(dir);
	if (!dh)
		return;
	struct dirent *e;
	size_t cap = 0;
	while ((e = readdir(dh))) {
		size_t n = strlen(e->d_name);
		if (n < 8 || strncmp(e->d_name, "seg-", 4) != 0 || strcmp(e->d_name + n - 4, ".seg") != 0)
			continue;
		if (d->nseg == cap) {
			cap = cap ? 2 * cap : 8;
			struct seg_report *p = realloc(d->segs, cap * sizeof *p);
			if (!p)
				break;
			d->segs = p;
		}
		memset(&d->segs[d->nseg], 0, sizeof d->segs[d->nseg]);
		snprintf(d->segs[d->nseg].name, sizeof d->segs[d->nseg].name, "%s", e->d_name);
		d->nseg++;
	}
	closedir(dh);
	if (d->nseg)
		qsort(d->segs, d->nseg, sizeof *d->segs, name_cmp);
}

static void inspect_dir(const char *dir, struct db_report *d)
{
	d->kind = "database";
	err_clear();
	int rc = mf_load(dir, &d->mf);
	if (rc != 0) {
		report_error(d->error, sizeof d->error, MF_FILE_NAME, rc);
		scan_segments(dir, d);
	} else {
		d->have_mf = true;
		d->segs = calloc(d->mf.segment_count ? d->mf.segment_count : 1, sizeof *d->segs);
		if (!d->segs) {
			snprintf(d->error, sizeof d->error, "out of memory");
			return;
		}
		d->nseg = d->mf.segment_count;
		for (size_t i = 0; i < d->nseg; i++) {
			struct seg_report *r = &d->segs[i];
			r->have_entry = true;
			r->entry = d->mf.segments[i];
			r->seq = r->entry.seq;
			mf_segment_name(r->seq, r->name, sizeof r->name);
		}
	}
	for (size_t i = 0; i < d->nseg; i++) {
		char path[4096];
		snprintf(path, sizeof path, "%s/%s", dir, d->segs[i].name);
		seg_inspect(path, &d->segs[i]);
	}
	/* Live vectors: the engine's count when it opens the database (it knows
	 * about deletions), else the sum of what the files say. */
	strata_db *db = NULL;
	struct strata_stats st;
	if (d->have_mf && strata_open(dir, NULL, STRATA_READONLY, &db) == 0 &&
	    strata_stats(db, &st) == 0) {
		d->vectors = st.vectors;
	} else {
		d->vectors = 0;
		for (size_t i = 0; i < d->nseg; i++)
			d->vectors += d->segs[i].checked  ? d->segs[i].info.count
			              : d->segs[i].have_entry ? d->segs[i].entry.count
			                                      : 0;
	}
	strata_close(db);
}

static void inspect_manifest_file(const char *path, const uint8_t *buf, size_t len,
                                  struct db_report *d)
{
	d->kind = "manifest";
	err_clear();
	int rc = mf_decode(buf, len, &d->mf);
	if (rc != 0) {
		report_error(d->error, sizeof d->error, NULL, rc);
		return;
	}
	(void)path;
	d->have_mf = true;
	d->segs = calloc(d->mf.segment_count ? d->mf.segment_count : 1, sizeof *d->segs);
	if (!d->segs) {
		snprintf(d->error, sizeof d->error, "out of memory");
		return;
	}
	d->nseg = d->mf.segment_count;
	for (size_t i = 0; i < d->nseg; i++) {
		struct seg_report *r = &d->segs[i];
		r->have_entry = true;
		r->entry = d->mf.segments[i];
		r->seq = r->entry.seq;
		r->file_bytes = r->entry.file_size;
		mf_segment_name(r->seq, r->name, sizeof r->name);
		d->vectors += r->entry.count;
	}
}

static bool any_error(const struct db_report *d)
{
	if (d->error[0])
		return true;
	for (size_t i = 0; i < d->nseg; i++)
		if (d->segs[i].error[0])
			return true;
	return false;
}

static void print_human(const struct db_report *d)
{
	char sz[32];
	uint64_t total = 0;
	for (size_t i = 0; i < d->nseg; i++)
		total += d->segs[i].file_bytes;
	/* A lone segment is introduced by seg_print itself. */
	if (strcmp(d->kind, "segment") != 0)
		printf("%s %s\n", d->kind, d->path);
	if (d->have_mf) {
		const struct mf_manifest *m = &d->mf;
		printf("  dim %u, metric %s, M %u, ef_construction %u, ef_search %u\n", m->dim,
		       cli_metric_name(m->metric), m->M, m->ef_construction, m->ef_search);
		printf("  vectors %llu, segments %u, generation %llu, next seq %llu\n",
		       (unsigned long long)d->vectors, m->segment_count,
		       (unsigned long long)m->generation, (unsigned long long)m->next_seq);
	}
	if (strcmp(d->kind, "manifest") == 0) {
		for (size_t i = 0; i < d->nseg; i++)
			printf("  %s  seq %llu, %llu vectors, %llu bytes, level %u\n", d->segs[i].name,
			       (unsigned long long)d->segs[i].seq, (unsigned long long)d->segs[i].entry.count,
			       (unsigned long long)d->segs[i].entry.file_size, d->segs[i].entry.level);
	} else {
		if (strcmp(d->kind, "database") == 0)
			printf("  segment files %s (%llu bytes)\n", cli_fmt_bytes(total, sz, sizeof sz),
			       (unsigned long long)total);
		for (size_t i = 0; i < d->nseg; i++)
			seg_print(&d->segs[i]);
	}
	if (d->error[0])
		printf("error: %s\n", d->error);
}

static void print_json(const struct db_report *d)
{
	struct cli_json j;
	cli_json_init(&j, stdout);
	cli_json_obj_begin(&j, NULL);
	cli_json_str(&j, "path", d->path);
	cli_json_str(&j, "kind", d->kind);
	const struct seg_info *one = strcmp(d->kind, "segment") == 0 && d->nseg && d->segs[0].checked
	                             ? &d->segs[0].info
	                             : NULL;
	if (d->have_mf) {
		cli_json_u64(&j, "dim", d->mf.dim);
		cli_json_str(&j, "metric", cli_metric_name(d->mf.metric));
		cli_json_u64(&j, "M", d->mf.M);
		cli_json_u64(&j, "ef_construction", d->mf.ef_construction);
		cli_json_u64(&j, "ef_search", d->mf.ef_search);
		cli_json_u64(&j, "generation", d->mf.generation);
	} else if (one) {
		cli_json_u64(&j, "dim", one->dim);
		cli_json_str(&j, "metric", cli_metric_name(one->metric));
		cli_json_u64(&j, "M", one->M);
		cli_json_u64(&j, "ef_construction", one->ef_construction);
	}
	cli_json_u64(&j, "vectors", d->vectors);
	uint64_t total = 0;
	cli_json_arr_begin(&j, "segments");
	for (size_t i = 0; i < d->nseg; i++) {
		seg_json(&j, &d->segs[i]);
		total += d->segs[i].file_bytes;
	}
	cli_json_arr_end(&j);
	cli_json_u64(&j, "file_bytes", total);
	bool bad = any_error(d);
	cli_json_bool(&j, "ok", !bad);
	if (d->error[0])
		cli_json_str(&j, "error", d->error);
	cli_json_obj_end(&j);
}

/* ---- bundles -------------------------------------------------------------------------- */

/* Decompress the bundle's first entry, the MANIFEST, and decode it. */
static int bundle_manifest(const uint8_t *buf, size_t len, const struct bundle_entry *e0,
                           struct mf_manifest *mf)
{
	if (e0->kind != BUNDLE_KIND_MANIFEST)
		return err_set(STRATA_ECORRUPT, "entry 0 is %s, not the MANIFEST", e0->name);
	if (e0->raw_size > (uint64_t)MF_HEADER_SIZE + (uint64_t)MF_ENTRY_SIZE * MF_SEGMENTS_MAX)
		return err_set(STRATA_ECORRUPT, "MANIFEST: declares %llu bytes, more than any manifest",
		               (unsigned long long)e0->raw_size);
	struct bundle_mem m;
	struct bundle_source src;
	struct bundle_reader *r = NULL;
	struct bundle_entry e;
	uint8_t *mb = malloc(e0->raw_size + 1);
	size_t got = 0, n = 0;
	int rc = mb ? 0 : err_set(STRATA_ENOMEM, "MANIFEST buffer");
	bundle_source_mem(&m, buf, len, &src);
	if (!rc)
		rc = bundle_reader_new(&src, &r);
	if (!rc)
		rc = bundle_reader_next(r, &e);
	while (!rc) {
		rc = bundle_reader_read(r, mb + got, (size_t)(e0->raw_size + 1 - got), &n);
		if (rc || n == 0)
			break;
		got += n;
	}
	if (!rc)
		rc = mf_decode(mb, got, mf);
	if (rc)
		err_prefix(rc, MF_FILE_NAME);
	bundle_reader_free(r);
	free(mb);
	return rc;
}

static const struct mf_segment *mf_entry_of(const struct mf_manifest *mf, const char *name)
{
	for (uint32_t i = 0; i < mf->segment_count; i++) {
		char n[MF_SEGMENT_NAME_LEN + 1];
		mf_segment_name(mf->segments[i].seq, n, sizeof n);
		if (strcmp(n, name) == 0)
			return &mf->segments[i];
	}
	return NULL;
}

static int inspect_bundle(const char *path, const uint8_t *buf, size_t len, bool json)
{
	struct bundle_index idx = {0};
	struct mf_manifest mf = {0};
	bool have_mf = false;
	char error[ERR_MAX] = "";
	err_clear();
	int rc = bundle_index_decode(buf, len, &idx);
	if (rc) {
		report_error(error, sizeof error, NULL, rc);
	} else if ((rc = bundle_manifest(buf, len, &idx.entries[0], &mf)) != 0) {
		report_error(error, sizeof error, NULL, rc);
	} else {
		have_mf = true;
	}
	uint64_t vectors = 0;
	for (uint32_t i = 0; have_mf && i < mf.segment_count; i++)
		vectors += mf.segments[i].count;
	double ratio = len ? (double)idx.hdr.total_raw_bytes / (double)len : 0.0;
	if (json) {
		struct cli_json j;
		cli_json_init(&j, stdout);
		cli_json_obj_begin(&j, NULL);
		cli_json_str(&j, "path", path);
		cli_json_str(&j, "kind", "bundle");
		cli_json_u64(&j, "bundle_bytes", len);
		if (idx.entries) {
			cli_json_u64(&j, "version", idx.hdr.version);
			cli_json_i64(&j, "level", idx.hdr.level);
			cli_json_u64(&j, "files", idx.count);
			cli_json_u64(&j, "raw_bytes", idx.hdr.total_raw_bytes);
			cli_json_f64(&j, "ratio", ratio);
		}
		if (have_mf) {
			cli_json_u64(&j, "dim", mf.dim);
			cli_json_str(&j, "metric", cli_metric_name(mf.metric));
			cli_json_u64(&j, "M", mf.M);
			cli_json_u64(&j, "ef_construction", mf.ef_construction);
			cli_json_u64(&j, "ef_search", mf.ef_search);
			cli_json_u64(&j, "generation", mf.generation);
			cli_json_u64(&j, "vectors", vectors);
			cli_json_u64(&j, "segments", mf.segment_count);
		}
		cli_json_arr_begin(&j, "entries");
		for (uint32_t i = 0; i < idx.count; i++) {
			const struct bundle_entry *e = &idx.entries[i];
			cli_json_obj_begin(&j, NULL);
			cli_json_str(&j, "name", e->name);
			cli_json_str(&j, "kind", bundle_kind_name(e->kind));
			cli_json_u64(&j, "offset", e->off);
			cli_json_u64(&j, "raw_bytes", e->raw_size);
			cli_json_u64(&j, "compressed_bytes", e->frame_size);
			cli_json_obj_end(&j);
		}
		cli_json_arr_end(&j);
		cli_json_bool(&j, "ok", !error[0]);
		if (error[0])
			cli_json_str(&j, "error", error);
		cli_json_obj_end(&j);
	} else {
		char a[32], b[32];
		printf("bundle %s\n", path);
		if (idx.entries)
			printf("  format version %u, zstd level %d, %u files, %s -> %s (ratio %.2f)\n",
			       idx.hdr.version, idx.hdr.level, idx.count,
			       cli_fmt_bytes(idx.hdr.total_raw_bytes, a, sizeof a),
			       cli_fmt_bytes(len, b, sizeof b), ratio);
		if (have_mf) {
			printf("  dim %u, metric %s, M %u, ef_construction %u, ef_search %u\n", mf.dim,
			       cli_metric_name(mf.metric), mf.M, mf.ef_construction, mf.ef_search);
			printf("  vectors %llu, segments %u, generation %llu\n",
			       (unsigned long long)vectors, mf.segment_count,
			       (unsigned long long)mf.generation);
		}
		if (idx.count)
			printf("  %4s  %-8s  %-26s %12s %14s %14s %6s\n", "#", "kind", "name", "offset",
			       "bytes", "compressed", "ratio");
		for (uint32_t i = 0; i < idx.count; i++) {
			const struct bundle_entry *e = &idx.entries[i];
			const struct mf_segment *s = have_mf ? mf_entry_of(&mf, e->name) : NULL;
			printf("  %4u  %-8s  %-26s %12llu %14llu %14llu %6.2f", i, bundle_kind_name(e->kind),
			       e->name, (unsigned long long)e->off, (unsigned long long)e->raw_size,
			       (unsigned long long)e->frame_size,
			       e->frame_size ? (double)e->raw_size / (double)e->frame_size : 0.0);
			if (s)
				printf("  %llu vectors", (unsigned long long)s->count);
			putchar('\n');
		}
		if (error[0])
			printf("error: %s\n", error);
		else
			printf("  (listed from the index; run strata verify to check every byte)\n");
	}
	if (error[0] && !json)
		fprintf(stderr, "strata inspect: %s: damaged or unreadable parts; see the errors above\n",
		        path);
	if (have_mf)
		mf_free(&mf);
	bundle_index_free(&idx);
	return error[0] ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

int cmd_inspect(int argc, char **argv)
{
	bool json = false, help = false;
	const struct cli_opt opts[] = {
		{"--json", NULL, CLI_OPT_FLAG, &json, 0, 0},
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
		return cli_usage_error(CMD, "missing the database directory or file to inspect");
	const char *path = pos[0];
	struct stat st;
	if (stat(path, &st) != 0)
		return cli_error(CMD, "%s: %s", path, strerror(errno));

	struct db_report d = {.path = path};
	if (S_ISDIR(st.st_mode)) {
		inspect_dir(path, &d);
	} else {
		const uint8_t *buf;
		size_t len;
		char err[256];
		if (cli_map_file(path, &buf, &len, err, sizeof err) != 0)
			return cli_error(CMD, "%s: %s", path, err);
		uint64_t magic = len >= 8 ? le_load64(buf) : 0;
		if (magic == SEG_MAGIC) {
			d.kind = "segment";
			d.segs = calloc(1, sizeof *d.segs);
			if (!d.segs) {
				cli_unmap_file(buf, len);
				return cli_error(CMD, "out of memory");
			}
			d.nseg = 1;
			const char *slash = strrchr(path, '/');
			snprintf(d.segs[0].name, sizeof d.segs[0].name, "%s", slash ? slash + 1 : path);
			seg_inspect(path, &d.segs[0]);
			d.vectors = d.segs[0].checked ? d.segs[0].info.count : 0;
		} else if (magic == MF_MAGIC) {
			inspect_manifest_file(path, buf, len, &d);
		} else if (magic == BUNDLE_MAGIC) {
			int status = inspect_bundle(path, buf, len, json);
			cli_unmap_file(buf, len);
			return status;
		} else {
			cli_unmap_file(buf, len);
			return cli_error(CMD, "%s: not a strata database, segment, manifest or bundle (no "
			                      "strata magic in its first 8 bytes)", path);
		}
		cli_unmap_file(buf, len);
	}
	if (json)
		print_json(&d);
	else
		print_human(&d);
	bool bad = any_error(&d);
	if (bad && !json)
		fprintf(stderr, "strata inspect: %s: damaged or unreadable parts; see the errors above\n",
		        path);
	if (d.have_mf)
		mf_free(&d.mf);
	free(d.segs);
	return bad ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}
