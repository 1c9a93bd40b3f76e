/*
 * cmd_inspect.c - `strata inspect DIR|FILE [--json]`: describe a database
 * (its MANIFEST, every segment and its deletion file, the WAL files and the
 * live vector count), or one segment, manifest, bundle, WAL or deletion file,
 * told apart by magic. Manual: strata.1, section "inspect".
 *
 * Inspect reads through format/ directly (mf_load, seg_check), the way
 * redis-check-rdb reuses rdb.c, because it must describe files the engine
 * would refuse to open. It never trusts what it reads: a damaged file is
 * described as far as its checked parts allow, the error is reported, and the
 * exit status is 1. It does not read every byte: that is `strata verify`.
 * A bundle is listed from its trailing index without decompressing a thing,
 * except the MANIFEST it carries (at most a few MiB), for the database's
 * parameters.
 *
 * Inspect never opens the database for writing: it takes no lock and changes
 * no byte, even where a writer's open would (a torn WAL tail is cut by the
 * writer, never here). The live count of a database is therefore computed
 * here, the way a writer's open would arrive at it: each segment's count
 * minus the tombstones of its deletion file, then the WAL records after the
 * manifest's checkpoint replayed read-only (wal_recover, readonly) into an id
 * set: an upsert adds its id, a delete removes it, and the first write of an
 * id after the checkpoint hides its live copy in the segments (the newest
 * write wins, DESIGN.md "Data model").
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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

#define CMD "inspect"
#define ERR_MAX 600

static const char usage_text[] =
	"usage: strata inspect DIR|FILE [--json]\n"
	"\n"
	"Describe the database in DIR (MANIFEST, segment files, deletion files and\n"
	"WAL files), or a single segment, manifest, WAL or deletion FILE: dim,\n"
	"metric, graph parameters, live vectors (WAL records not yet flushed\n"
	"included), per segment its deletions, level histogram and the size of every\n"
	"section, per WAL file its records and any torn tail. A bundle FILE is\n"
	"listed from its index (files, sizes, compression) without unpacking it.\n"
	"Nothing is locked or changed.\n"
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
	/* Its deletion file (database mode; the manifest entry's tomb_gen). */
	char tomb_name[TOMB_NAME_LEN + 1]; /* "" when the entry names none */
	bool tomb_ok;            /* loaded and bound to this segment: tomb_bits, deleted valid */
	uint64_t *tomb_bits;     /* owned; NULL when none or unreadable */
	uint64_t deleted;
	char tomb_error[ERR_MAX];
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

/* Live nodes of a segment: its count less its deletion file's. */
static uint64_t seg_count(const struct seg_report *r)
{
	return r->checked ? r->info.count : r->have_entry ? r->entry.count : 0;
}

static uint64_t seg_live(const struct seg_report *r)
{
	uint64_t n = seg_count(r);
	return r->tomb_ok && r->deleted <= n ? n - r->deleted : n;
}

static void tomb_print(const struct seg_report *r)
{
	if (!r->have_entry)
		return;
	if (!r->tomb_name[0])
		printf("  deletions  none (%llu live)\n", (unsigned long long)seg_live(r));
	else if (r->tomb_ok)
		printf("  deletions  %s: generation %llu, %llu deleted, %llu live\n", r->tomb_name,
		       (unsigned long long)r->entry.tomb_gen, (unsigned long long)r->deleted,
		       (unsigned long long)seg_live(r));
	else
		printf("  deletions  %s: generation %llu, error: %s\n", r->tomb_name,
		       (unsigned long long)r->entry.tomb_gen, r->tomb_error);
}

static void seg_print(const struct seg_report *r)
{
	char sz[32];
	printf("segment %s\n", r->name);
	tomb_print(r);
	if (!r->checked) {
		if (r->file_bytes)
			printf("  file       %s (%llu bytes)\n", cli_fmt_bytes(r->file_bytes, sz, sizeof sz),
			       (unsigned long long)r->file_bytes);
		printf("  error      %s\n", r->error);
		return;
	}
	const struct seg_info *in = &r->info;
	printf("  vectors    %llu\n", (unsigned long long)in->count);
	if (r->have_entry)
		printf("  tier       %u (compaction size tier, from the manifest)\n", r->entry.level);
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
	if (r->have_entry) {
		cli_json_u64(j, "seq", r->seq);
		cli_json_u64(j, "tier", r->entry.level);
	}
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
	if (r->have_entry) {
		cli_json_u64(j, "live", seg_live(r));
		if (r->tomb_name[0]) {
			cli_json_obj_begin(j, "deletions");
			cli_json_str(j, "name", r->tomb_name);
			cli_json_u64(j, "generation", r->entry.tomb_gen);
			if (r->tomb_ok)
				cli_json_u64(j, "deleted", r->deleted);
			cli_json_bool(j, "ok", r->tomb_ok);
			if (r->tomb_error[0])
				cli_json_str(j, "error", r->tomb_error);
			cli_json_obj_end(j);
		} else {
			cli_json_null(j, "deletions");
		}
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

	/* Database mode: the WAL files (wal_scan_dir) and the live count. */
	struct wal_file_info *wal;
	size_t nwal;
	char wal_error[ERR_MAX];     /* the scan's own failure (not one file's damage) */
	uint64_t wal_after;          /* records after the checkpoint (replayed) */
	uint64_t seg_vectors;        /* nodes in the segments */
	uint64_t deleted;            /* of them, deleted by the deletion files */
	uint64_t hidden;             /* live segment nodes the WAL after the checkpoint supersedes */
	uint64_t unflushed;          /* live ids written by the WAL after the checkpoint */
	char replay_error[ERR_MAX];  /* the replay failed where no WAL file's entry says why */
	bool replay_partial;         /* the replay stopped early: vectors counts what it saw */
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

/* Load the deletion file the manifest entry names, bound to its segment. */
static void tomb_inspect(const char *dir, struct seg_report *r)
{
	if (!r->entry.tomb_gen)
		return;
	tomb_file_name(r->entry.seq, r->entry.tomb_gen, r->tomb_name, sizeof r->tomb_name);
	err_clear();
	int rc = tomb_load(dir, r->entry.seq, r->entry.header_xxh3, r->entry.tomb_gen, r->entry.count,
	                   &r->tomb_bits, &r->deleted);
	if (rc) {
		report_error(r->tomb_error, sizeof r->tomb_error, NULL, rc);
		r->tomb_bits = NULL;
		return;
	}
	r->tomb_ok = true;
}

static int wal_collect(void *ctx, const struct wal_file_info *f)
{
	struct db_report *d = ctx;
	struct wal_file_info *p = realloc(d->wal, (d->nwal + 1) * sizeof *p);
	if (!p)
		return err_set(STRATA_ENOMEM, "WAL file list");
	d->wal = p;
	d->wal[d->nwal++] = *f;
	return 0;
}

/* ---- the live count: a read-only replay into an id set ---------------------------- */

/* Open addressing over u64 ids; state 0 empty, 1 written and deleted, 2 written and live. */
struct idset {
	uint64_t *keys;
	uint8_t *state;
	size_t cap, n; /* cap a power of two, n < cap / 2 */
};

static size_t idset_slot(const struct idset *s, uint64_t id)
{
	size_t i = (size_t)((id * 0x9E3779B97F4A7C15ull) >> 17) & (s->cap - 1);
	while (s->state[i] && s->keys[i] != id)
		i = (i + 1) & (s->cap - 1);
	return i;
}

static int idset_grow(struct idset *s)
{
	struct idset g = {.cap = s->cap ? 2 * s->cap : 1024};
	g.keys = malloc(g.cap * sizeof *g.keys);
	g.state = calloc(g.cap, 1);
	if (!g.keys || !g.state) {
		free(g.keys);
		free(g.state);
		return err_set(STRATA_ENOMEM, "id set of %zu ids", s->n);
	}
	for (size_t i = 0; i < s->cap; i++) {
		if (!s->state[i])
			continue;
		size_t j = idset_slot(&g, s->keys[i]);
		g.keys[j] = s->keys[i];
		g.state[j] = s->state[i];
	}
	g.n = s->n;
	free(s->keys);
	free(s->state);
	*s = g;
	return 0;
}

struct live_seg {
	const uint8_t *map;
	size_t len;
	struct seg_info info;
	const uint64_t *bits; /* its tombstones, NULL if none */
};

struct live_model {
	struct db_report *d;
	struct live_seg *segs;
	size_t nseg;
	struct idset ids;
};

/* The first write of `id` after the checkpoint: hide its live copies in the segments. */
static void hide_in_segments(struct live_model *m, uint64_t id)
{
	for (size_t i = 0; i < m->nseg; i++) {
		const struct live_seg *ls = &m->segs[i];
		uint32_t node;
		if (!ls->map || seg_id_find(&ls->info, id, &node) != 0)
			continue;
		if (ls->bits && (ls->bits[node / 64] >> (node % 64) & 1))
			continue;
		m->d->hidden++;
	}
}

static int model_write(struct live_model *m, uint64_t id, bool upsert)
{
	if (m->ids.n + 1 > m->ids.cap / 2) {
		int rc = idset_grow(&m->ids);
		if (rc)
			return rc;
	}
	size_t i = idset_slot(&m->ids, id);
	if (!m->ids.state[i]) {
		m->ids.keys[i] = id;
		m->ids.state[i] = 1;
		m->ids.n++;
		hide_in_segments(m, id);
	}
	if (upsert && m->ids.state[i] == 1) {
		m->ids.state[i] = 2;
		m->d->unflushed++;
	} else if (!upsert && m->ids.state[i] == 2) {
		m->ids.state[i] = 1;
		m->d->unflushed--;
	}
	return 0;
}

static int model_apply(void *ctx, uint64_t lsn, unsigned type, const uint8_t *payload, size_t len)
{
	struct live_model *m = ctx;
	uint32_t n;
	const uint64_t *ids;
	const float *vecs;
	int rc = type == WAL_REC_UPSERT
	         ? walrec_upsert_view(payload, len, m->d->mf.dim, &n, &ids, &vecs)
	         : walrec_delete_view(payload, len, &n, &ids);
	if (rc)
		return err_prefix(rc, "WAL record");
	(void)lsn;
	m->d->wal_after++;
	for (uint32_t k = 0; k < n && !rc; k++)
		rc = model_write(m, le_load64((const uint8_t *)(ids + k)), type == WAL_REC_UPSERT);
	return rc;
}

/* Replay the WAL after the checkpoint read-only over the segments' live ids. */
static void count_live(const char *dir, struct db_report *d)
{
	struct live_model m = {.d = d};
	m.segs = calloc(d->nseg ? d->nseg : 1, sizeof *m.segs);
	if (!m.segs) {
		snprintf(d->replay_error, sizeof d->replay_error, "out of memory");
		return;
	}
	m.nseg = d->nseg;
	for (size_t i = 0; i < d->nseg; i++) {
		const struct seg_report *r = &d->segs[i];
		d->seg_vectors += seg_count(r);
		d->deleted += r->tomb_ok ? r->deleted : 0;
		if (!r->checked)
			continue; /* unreadable: its ids cannot be looked up (its error is reported) */
		char path[4096], err[256];
		snprintf(path, sizeof path, "%s/%s", dir, r->name);
		struct live_seg *ls = &m.segs[i];
		if (cli_map_file(path, &ls->map, &ls->len, err, sizeof err) != 0)
			continue;
		if (seg_check(ls->map, ls->len, &ls->info) != 0) {
			cli_unmap_file(ls->map, ls->len);
			ls->map = NULL;
			continue;
		}
		ls->bits = r->tomb_bits;
	}
	struct wal_config c = {.dir = dir, .dim = d->mf.dim};
	memcpy(c.db_uuid, d->mf.db_uuid, sizeof c.db_uuid);
	struct wal_recovery rec;
	err_clear();
	int rc = wal_recover(&c, d->mf.checkpoint_lsn, true, model_apply, &m, &rec);
	bool in_files = false; /* then the files' entries say it already */
	for (size_t i = 0; i < d->nwal; i++)
		in_files |= d->wal[i].error != 0;
	d->replay_partial = rc != 0;
	if (rc && !in_files)
		report_error(d->replay_error, sizeof d->replay_error, "WAL replay", rc);
	for (size_t i = 0; i < m.nseg; i++)
		if (m.segs[i].map)
			cli_unmap_file(m.segs[i].map, m.segs[i].len);
	free(m.segs);
	free(m.ids.keys);
	free(m.ids.state);
	uint64_t live = d->seg_vectors - d->deleted;
	d->vectors = (live > d->hidden ? live - d->hidden : 0) + d->unflushed;
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
		if (d->have_mf)
			tomb_inspect(dir, &d->segs[i]);
	}
	if (!d->have_mf) {
		/* No manifest: what the segment files say, nothing more is knowable. */
		for (size_t i = 0; i < d->nseg; i++)
			d->vectors += seg_count(&d->segs[i]);
		return;
	}
	err_clear();
	rc = wal_scan_dir(dir, d->mf.db_uuid, d->mf.dim, d->mf.checkpoint_lsn, wal_collect, d);
	/* A file's damage is in its entry; only a failure of the scan itself is reported here. */
	bool in_files = false;
	for (size_t i = 0; i < d->nwal; i++)
		in_files |= d->wal[i].error != 0;
	if (rc && !in_files)
		report_error(d->wal_error, sizeof d->wal_error, "WAL", rc);
	count_live(dir, d);
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
	if (d->error[0] || d->wal_error[0] || d->replay_error[0])
		return true;
	for (size_t i = 0; i < d->nseg; i++)
		if (d->segs[i].error[0] || d->segs[i].tomb_error[0])
			return true;
	for (size_t i = 0; i < d->nwal; i++)
		if (d->wal[i].error)
			return true;
	return false;
}

static uint64_t wal_records(const struct db_report *d, uint64_t *bytes)
{
	uint64_t n = 0;
	*bytes = 0;
	for (size_t i = 0; i < d->nwal; i++) {
		n += d->wal[i].records;
		*bytes += d->wal[i].size_bytes;
	}
	return n;
}

static void wal_print(const struct db_report *d)
{
	char sz[32];
	uint64_t bytes, records = wal_records(d, &bytes);
	printf("  checkpoint lsn %llu; WAL: %zu file(s), %llu record(s) (%llu after the checkpoint), %s\n",
	       (unsigned long long)d->mf.checkpoint_lsn, d->nwal, (unsigned long long)records,
	       (unsigned long long)d->wal_after, cli_fmt_bytes(bytes, sz, sizeof sz));
	for (size_t i = 0; i < d->nwal; i++) {
		const struct wal_file_info *f = &d->wal[i];
		printf("    %s  first lsn %llu, %llu record(s)", f->name, (unsigned long long)f->first_lsn,
		       (unsigned long long)f->records);
		if (f->records)
			printf(" (lsn %llu..%llu)", (unsigned long long)(f->last_lsn - f->records + 1),
			       (unsigned long long)f->last_lsn);
		printf(", %llu bytes%s\n", (unsigned long long)f->size_bytes, f->newest ? ", newest" : "");
		if (f->torn_header)
			printf("      torn header (%llu bytes): a crash while it was created; the next "
			       "writer removes it\n", (unsigned long long)f->torn_bytes);
		else if (f->torn_bytes)
			printf("      torn tail: %llu bytes after byte offset %llu; the next writer cuts "
			       "them\n", (unsigned long long)f->torn_bytes,
			       (unsigned long long)f->valid_bytes);
		else if (f->zero_bytes)
			printf("      %llu bytes of zeros written ahead after byte offset %llu (a clean end; "
			       "a writer cuts them when it closes or reopens)\n",
			       (unsigned long long)f->zero_bytes, (unsigned long long)f->valid_bytes);
		if (f->error)
			printf("      error: %s: %s\n", strata_strerror(f->error), f->detail);
	}
	if (d->wal_error[0])
		printf("  error: %s\n", d->wal_error);
}

/* Segments per compaction size tier (the manifest's level field), lowest tier first. */
static void tiers_print(const struct db_report *d)
{
	if (d->mf.segment_count == 0)
		return;
	uint32_t max = 0;
	for (uint32_t i = 0; i < d->mf.segment_count; i++)
		if (d->mf.segments[i].level > max)
			max = d->mf.segments[i].level;
	printf("  tiers     ");
	for (uint32_t t = 0; t <= max; t++) {
		uint32_t n = 0;
		uint64_t v = 0;
		for (uint32_t i = 0; i < d->mf.segment_count; i++)
			if (d->mf.segments[i].level == t) {
				n++;
				v += d->mf.segments[i].count;
			}
		if (n)
			printf(" T%u: %u segment%s (%llu vectors)", t, n, n == 1 ? "" : "s",
			       (unsigned long long)v);
	}
	putchar('\n');
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
	if (d->have_mf && strcmp(d->kind, "database") == 0) {
		printf("  live vectors %llu = %llu in segments - %llu deleted - %llu rewritten or "
		       "deleted since the checkpoint + %llu not yet flushed\n",
		       (unsigned long long)d->vectors, (unsigned long long)d->seg_vectors,
		       (unsigned long long)d->deleted, (unsigned long long)d->hidden,
		       (unsigned long long)d->unflushed);
		if (d->replay_error[0])
			printf("  error: %s\n", d->replay_error);
		if (d->replay_partial)
			printf("  (the WAL is damaged: the count includes the records before the damage)\n");
		tiers_print(d);
		wal_print(d);
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
	if (d->have_mf && strcmp(d->kind, "database") == 0) {
		cli_json_u64(&j, "checkpoint_lsn", d->mf.checkpoint_lsn);
		cli_json_obj_begin(&j, "totals");
		cli_json_u64(&j, "segment_vectors", d->seg_vectors);
		cli_json_u64(&j, "deleted", d->deleted);
		cli_json_u64(&j, "rewritten_since_checkpoint", d->hidden);
		cli_json_u64(&j, "unflushed", d->unflushed);
		cli_json_u64(&j, "vectors", d->vectors);
		cli_json_bool(&j, "complete", !d->replay_partial);
		cli_json_obj_end(&j);
		uint64_t bytes, records = wal_records(d, &bytes);
		cli_json_obj_begin(&j, "wal");
		cli_json_u64(&j, "records", records);
		cli_json_u64(&j, "records_after_checkpoint", d->wal_after);
		cli_json_u64(&j, "file_bytes", bytes);
		cli_json_arr_begin(&j, "files");
		for (size_t i = 0; i < d->nwal; i++) {
			const struct wal_file_info *f = &d->wal[i];
			cli_json_obj_begin(&j, NULL);
			cli_json_str(&j, "name", f->name);
			cli_json_u64(&j, "first_lsn", f->first_lsn);
			cli_json_u64(&j, "records", f->records);
			cli_json_u64(&j, "last_lsn", f->last_lsn);
			cli_json_u64(&j, "file_bytes", f->size_bytes);
			cli_json_u64(&j, "valid_bytes", f->valid_bytes);
			cli_json_u64(&j, "torn_bytes", f->torn_bytes);
			cli_json_u64(&j, "zero_bytes", f->zero_bytes);
			cli_json_bool(&j, "torn_header", f->torn_header);
			cli_json_bool(&j, "newest", f->newest);
			if (f->error) {
				cli_json_str(&j, "error", strata_strerror(f->error));
				cli_json_str(&j, "detail", f->detail);
			}
			cli_json_obj_end(&j);
		}
		cli_json_arr_end(&j);
		if (d->wal_error[0])
			cli_json_str(&j, "error", d->wal_error);
		if (d->replay_error[0])
			cli_json_str(&j, "replay_error", d->replay_error);
		cli_json_obj_end(&j);
	}
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
	uint64_t vectors = 0, wal_bytes = 0;
	uint32_t deletion_files = 0, wal_files = 0;
	for (uint32_t i = 0; have_mf && i < mf.segment_count; i++)
		vectors += mf.segments[i].count;
	for (uint32_t i = 0; i < idx.count; i++) {
		deletion_files += idx.entries[i].kind == BUNDLE_KIND_DELETION;
		if (idx.entries[i].kind == BUNDLE_KIND_WAL) {
			wal_files++;
			wal_bytes += idx.entries[i].raw_size;
		}
	}
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
			cli_json_u64(&j, "checkpoint_lsn", mf.checkpoint_lsn);
		}
		if (idx.entries) {
			cli_json_u64(&j, "deletion_files", deletion_files);
			cli_json_u64(&j, "wal_files", wal_files);
			cli_json_u64(&j, "wal_bytes", wal_bytes);
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
			printf("  vectors %llu in segments, segments %u, generation %llu, checkpoint lsn "
			       "%llu\n", (unsigned long long)vectors, mf.segment_count,
			       (unsigned long long)mf.generation, (unsigned long long)mf.checkpoint_lsn);
		}
		if (idx.entries)
			printf("  deletion files %u, WAL files %u (%llu bytes: writes not yet in segments "
			       "when packed; unpack replays them)\n", deletion_files, wal_files,
			       (unsigned long long)wal_bytes);
		if (idx.count)
			printf("  %4s  %-8s  %-41s %12s %14s %14s %6s\n", "#", "kind", "name", "offset",
			       "bytes", "compressed", "ratio");
		for (uint32_t i = 0; i < idx.count; i++) {
			const struct bundle_entry *e = &idx.entries[i];
			const struct mf_segment *s = have_mf ? mf_entry_of(&mf, e->name) : NULL;
			printf("  %4u  %-8s  %-41s %12llu %14llu %14llu %6.2f", i, bundle_kind_name(e->kind),
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

/* ---- a lone WAL or deletion file ----------------------------------------------------- */

static void uuid_hex(const uint8_t u[16], char out[33])
{
	for (int i = 0; i < 16; i++)
		snprintf(out + 2 * i, 3, "%02x", u[i]);
}

/* Exit status 0 for a sound file or one whose only flaw is a torn tail (a crash leaves one). */
static int inspect_wal_file(const char *path, const uint8_t *buf, size_t len, bool json)
{
	struct cli_wal_file w;
	cli_wal_walk(buf, len, false, NULL, NULL, &w);
	char uuid[33] = "";
	if (w.header_ok)
		uuid_hex(w.hdr.db_uuid, uuid);
	if (json) {
		struct cli_json j;
		cli_json_init(&j, stdout);
		cli_json_obj_begin(&j, NULL);
		cli_json_str(&j, "path", path);
		cli_json_str(&j, "kind", "wal");
		if (w.header_ok) {
			cli_json_str(&j, "db_uuid", uuid);
			cli_json_u64(&j, "dim", w.hdr.dim);
			cli_json_u64(&j, "first_lsn", w.hdr.first_lsn);
		}
		cli_json_u64(&j, "records", w.records);
		cli_json_u64(&j, "last_lsn", w.last_lsn);
		cli_json_u64(&j, "upserts", w.upserts);
		cli_json_u64(&j, "upsert_rows", w.upsert_rows);
		cli_json_u64(&j, "deletes", w.deletes);
		cli_json_u64(&j, "delete_rows", w.delete_rows);
		cli_json_u64(&j, "file_bytes", len);
		cli_json_u64(&j, "valid_bytes", w.valid_bytes);
		cli_json_u64(&j, "torn_bytes", w.torn_bytes);
		cli_json_u64(&j, "zero_bytes", w.zero_bytes);
		cli_json_bool(&j, "ok", !w.error);
		if (w.torn)
			cli_json_str(&j, "warning", w.detail);
		if (w.error) {
			cli_json_str(&j, "error", strata_strerror(w.error));
			cli_json_str(&j, "detail", w.detail);
		}
		cli_json_obj_end(&j);
	} else {
		char sz[32];
		printf("wal %s\n", path);
		if (w.header_ok)
			printf("  db_uuid %s, dim %u, first lsn %llu\n", uuid, w.hdr.dim,
			       (unsigned long long)w.hdr.first_lsn);
		printf("  records %llu", (unsigned long long)w.records);
		if (w.records)
			printf(" (lsn %llu..%llu)", (unsigned long long)w.first_lsn,
			       (unsigned long long)w.last_lsn);
		printf(": %llu upsert(s) of %llu vectors, %llu delete(s) of %llu ids\n",
		       (unsigned long long)w.upserts, (unsigned long long)w.upsert_rows,
		       (unsigned long long)w.deletes, (unsigned long long)w.delete_rows);
		printf("  file       %s (%zu bytes), %llu bytes of whole records and header\n",
		       cli_fmt_bytes(len, sz, sizeof sz), len, (unsigned long long)w.valid_bytes);
		if (w.zero_bytes)
			printf("  zeros      %llu bytes written ahead after the records: a clean end\n",
			       (unsigned long long)w.zero_bytes);
		if (w.torn)
			printf("  warning    %s\n", w.detail);
		if (w.error)
			printf("  error      %s: %s\n", strata_strerror(w.error), w.detail);
	}
	if (w.error && !json)
		fprintf(stderr, "strata inspect: %s: damaged; see the error above\n", path);
	return w.error ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

static int inspect_tomb_file(const char *path, const uint8_t *buf, size_t len, bool json)
{
	struct cli_tomb_file t;
	cli_tomb_check(buf, len, cli_base_name(path), &t);
	uint64_t live = t.count >= t.deleted ? t.count - t.deleted : 0;
	if (json) {
		struct cli_json j;
		char hx[19];
		snprintf(hx, sizeof hx, "0x%016llx", (unsigned long long)t.seg_header_xxh3);
		cli_json_init(&j, stdout);
		cli_json_obj_begin(&j, NULL);
		cli_json_str(&j, "path", path);
		cli_json_str(&j, "kind", "deletions");
		if (t.header_read) {
			cli_json_u64(&j, "segment_seq", t.seg_seq);
			cli_json_str(&j, "segment_header_xxh3", hx);
			cli_json_u64(&j, "generation", t.gen);
			cli_json_u64(&j, "count", t.count);
			cli_json_u64(&j, "deleted", t.deleted);
			cli_json_u64(&j, "live", live);
		}
		cli_json_u64(&j, "file_bytes", len);
		cli_json_bool(&j, "ok", !t.error);
		if (t.error) {
			cli_json_str(&j, "error", strata_strerror(t.error));
			cli_json_str(&j, "detail", t.detail);
		}
		cli_json_obj_end(&j);
	} else {
		char seg[MF_SEGMENT_NAME_LEN + 1];
		printf("deletions %s\n", path);
		if (t.header_read) {
			mf_segment_name(t.seg_seq, seg, sizeof seg);
			printf("  segment    %s (seq %llu, header checksum 0x%016llx)\n", seg,
			       (unsigned long long)t.seg_seq, (unsigned long long)t.seg_header_xxh3);
			printf("  generation %llu\n", (unsigned long long)t.gen);
			printf("  nodes      %llu: %llu deleted, %llu live\n", (unsigned long long)t.count,
			       (unsigned long long)t.deleted, (unsigned long long)live);
		}
		printf("  file       %zu bytes\n", len);
		if (t.error)
			printf("  error      %s: %s\n", strata_strerror(t.error), t.detail);
		else
			printf("  (checked against its own header; strata verify DIR checks it against the "
			       "segment)\n");
	}
	if (t.error && !json)
		fprintf(stderr, "strata inspect: %s: damaged; see the error above\n", path);
	cli_tomb_file_free(&t);
	return t.error ? CLI_EXIT_FAIL : CLI_EXIT_OK;
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
		} else if (magic == WAL_MAGIC || walrec_file_name_parse(cli_base_name(path), &(uint64_t){0}) == 0) {
			/* By name too: a torn header (zeros) has no magic yet. */
			int status = inspect_wal_file(path, buf, len, json);
			cli_unmap_file(buf, len);
			return status;
		} else if (magic == TOMB_MAGIC) {
			int status = inspect_tomb_file(path, buf, len, json);
			cli_unmap_file(buf, len);
			return status;
		} else {
			cli_unmap_file(buf, len);
			return cli_error(CMD, "%s: not a strata database, segment, manifest, bundle, WAL or "
			                      "deletion file (no strata magic in its first 8 bytes)", path);
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
	for (size_t i = 0; i < d.nseg; i++)
		free(d.segs[i].tomb_bits);
	free(d.segs);
	free(d.wal);
	return bad ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}
