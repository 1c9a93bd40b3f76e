/*
 * segment_writer.c - seg_write(): one complete segment file from a graph
 * already in file layout (FORMAT.md, "Segment file").
 *
 * Owns the layout (header, then NODES, UPPER_INDEX, UPPER_LINKS, IDS,
 * ID_INDEX at 64-byte boundaries, then the section table, zero padding
 * between) and the ID_INDEX, which it builds by sorting. The big sections
 * go to the file straight from the caller's buffers: the writer never holds
 * a copy of the file. Before returning success it maps the written file back
 * and runs the reader's seg_check() over it (and seg_verify() in debug
 * builds), so writer and validator are tested against each other.
 *
 * It must never leave a partial file behind, nor touch a file it did not
 * create (O_EXCL): on any failure after creating `path`, `path` is removed.
 */
#include <assert.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "failpoint.h"
#include "fio.h"
#include "le.h"
#include "segment.h"
#include "xsum.h"

#define ULL(x) ((unsigned long long)(x))

struct seg_id_pair {
	uint64_t id;
	uint32_t node;
	uint32_t reserved;
};
static_assert(sizeof(struct seg_id_pair) == SEG_ID_INDEX_ENTRY_SIZE,
              "an id pair is an ID_INDEX entry in place (hosts are little-endian, le.h)");

static const uint8_t seg_zeros[SEG_SECTION_ALIGN];

static uint64_t align_up(uint64_t v)
{
	return (v + SEG_SECTION_ALIGN - 1) / SEG_SECTION_ALIGN * SEG_SECTION_ALIGN;
}

static int pair_cmp(const void *a, const void *b)
{
	const struct seg_id_pair *x = a, *y = b;
	if (x->id != y->id)
		return x->id < y->id ? -1 : 1;
	return x->node < y->node ? -1 : x->node > y->node;
}

/* The ID_INDEX, encoded: count (id, node, 0) entries sorted by id. */
static int build_id_index(const uint64_t *ids, uint64_t count, struct seg_id_pair **out)
{
	struct seg_id_pair *p = malloc(count ? (size_t)count * sizeof *p : 1);
	if (!p)
		return err_set(STRATA_ENOMEM, "seg_write: id index of %llu entries", ULL(count));
	for (uint64_t i = 0; i < count; i++) {
		if (ids[i] == UINT64_MAX) {
			free(p);
			return err_set(STRATA_EINVAL, "seg_write: node %llu has id %llu (STRATA_NO_ID)",
			               ULL(i), ULL(ids[i]));
		}
		p[i] = (struct seg_id_pair){.id = ids[i], .node = (uint32_t)i, .reserved = 0};
	}
	qsort(p, (size_t)count, sizeof *p, pair_cmp);
	for (uint64_t i = 1; i < count; i++) {
		if (p[i].id == p[i - 1].id) {
			int rc = err_set(STRATA_EDUPLICATE, "seg_write: id %llu is held by nodes %u and %u",
			                 ULL(p[i].id), p[i - 1].node, p[i].node);
			free(p);
			return rc;
		}
	}
	/* In place, the structs are the little-endian entries already; store them
	 * explicitly anyway so the encoding is written down once, here. */
	for (uint64_t i = 0; i < count; i++) {
		struct seg_id_pair e = p[i];
		uint8_t *b = (uint8_t *)&p[i];
		le_store64(b, e.id);
		le_store32(b + 8, e.node);
		le_store32(b + 12, 0);
	}
	*out = p;
	return 0;
}

/* The caller's input, checked with the reader's own rules (seg_params_check). */
static int check_input(const struct seg_write_input *in, struct seg_info *g)
{
	memset(g, 0, sizeof *g);
	g->dim = in->dim;
	g->metric = in->metric;
	g->M = in->M;
	g->M0 = in->M <= STRATA_M_MAX ? 2 * in->M : 0;
	g->ef_construction = in->ef_construction;
	g->max_level = in->max_level;
	g->entry = in->entry;
	g->count = in->count;
	g->stride = in->stride;
	g->upper_count = in->upper_count;
	g->upper_blocks = in->upper_blocks;
	g->seed = in->seed;
	if (seg_params_check(g))
		return err_prefix(STRATA_EINVAL, "seg_write");
	if (in->stride != seg_stride_for(in->dim, g->M0))
		return err_set(STRATA_EINVAL, "seg_write: stride %u, v1 writes %llu for dim %u, M0 %u",
		               in->stride, ULL(seg_stride_for(in->dim, g->M0)), in->dim, g->M0);
	if ((in->count && (!in->nodes || !in->ids)) || (in->upper_count && !in->upper_index) ||
	    (in->upper_blocks && !in->upper_links))
		return err_set(STRATA_EINVAL, "seg_write: a non-empty section has a null buffer");
	return 0;
}

static void encode_header(uint8_t *h, const struct seg_info *g, uint64_t table_off,
                          uint64_t file_size, uint64_t table_xxh3)
{
	memset(h, 0, SEG_HEADER_SIZE);
	le_store64(h + SEG_OFF_MAGIC, SEG_MAGIC);
	le_store32(h + SEG_OFF_VERSION, SEG_VERSION);
	le_store32(h + SEG_OFF_HEADER_SIZE, SEG_HEADER_SIZE);
	le_store32(h + SEG_OFF_DIM, g->dim);
	le_store32(h + SEG_OFF_METRIC, g->metric);
	le_store32(h + SEG_OFF_M, g->M);
	le_store32(h + SEG_OFF_M0, g->M0);
	le_store32(h + SEG_OFF_EF_CONSTRUCTION, g->ef_construction);
	le_store32(h + SEG_OFF_MAX_LEVEL, g->max_level);
	le_store64(h + SEG_OFF_COUNT, g->count);
	le_store32(h + SEG_OFF_ENTRY, g->entry);
	le_store32(h + SEG_OFF_STRIDE, g->stride);
	le_store32(h + SEG_OFF_SECTION_COUNT, SEG_SEC_KIND_MAX);
	le_store32(h + SEG_OFF_FLAGS, 0);
	le_store64(h + SEG_OFF_TABLE_OFF, table_off);
	le_store64(h + SEG_OFF_FILE_SIZE, file_size);
	le_store64(h + SEG_OFF_UPPER_COUNT, g->upper_count);
	le_store64(h + SEG_OFF_UPPER_BLOCKS, g->upper_blocks);
	le_store64(h + SEG_OFF_SEED, g->seed);
	le_store64(h + SEG_OFF_TABLE_XXH3, table_xxh3);
	le_store64(h + SEG_OFF_RESERVED, 0);
	le_store64(h + SEG_OFF_HEADER_XXH3, xsum64(h, SEG_OFF_HEADER_XXH3));
}

/* Map the finished file back and hold it to the reader's rules. */
static int check_written(const char *path, uint64_t file_size, uint64_t header_xxh3)
{
	int fd = -1;
	const void *map = NULL;
	struct seg_info info;
	int rc = fio_open(path, O_RDONLY, 0, &fd);
	if (rc)
		return rc;
	if ((rc = fio_mmap_ro(fd, (size_t)file_size, path, &map)))
		goto out;
	if ((rc = seg_check(map, (size_t)file_size, &info))) {
		err_prefix(rc, "seg_write: the written file fails seg_check");
		goto out;
	}
#ifndef NDEBUG
	if ((rc = seg_verify(&info))) {
		err_prefix(rc, "seg_write: the written file fails seg_verify");
		goto out;
	}
#endif
	if (info.header_xxh3 != header_xxh3)
		rc = err_set(STRATA_EIO, "seg_write: %s reads back a different header", path);
out:
	fio_munmap(map, (size_t)file_size);
	fio_close(fd);
	return rc;
}

int seg_write(const char *path, const struct seg_write_input *in, uint64_t *header_xxh3_out)
{
	struct seg_info g;
	struct seg_id_pair *index = NULL;
	int fd = -1;
	bool created = false;
	int rc;

	if (!path || !in)
		return err_set(STRATA_EINVAL, "seg_write: null argument");
	if ((rc = check_input(in, &g)))
		return rc;

	/* Sizes cannot overflow once seg_params_check() bounded the counts (< 2^50 each). */
	const uint8_t *data[SEG_SEC_KIND_MAX + 1] = {NULL};
	uint64_t size[SEG_SEC_KIND_MAX + 1] = {0}, off[SEG_SEC_KIND_MAX + 1] = {0};
	size[SEG_SEC_NODES] = g.count * g.stride;
	size[SEG_SEC_UPPER_INDEX] = g.upper_count * SEG_UPPER_ENTRY_SIZE;
	size[SEG_SEC_UPPER_LINKS] = g.upper_blocks * seg_upper_block_size(g.M);
	size[SEG_SEC_IDS] = g.count * 8;
	size[SEG_SEC_ID_INDEX] = g.count * SEG_ID_INDEX_ENTRY_SIZE;

	if ((rc = build_id_index(in->ids, g.count, &index)))
		return rc;
	data[SEG_SEC_NODES] = in->nodes;
	data[SEG_SEC_UPPER_INDEX] = in->upper_index;
	data[SEG_SEC_UPPER_LINKS] = in->upper_links;
	data[SEG_SEC_IDS] = (const uint8_t *)in->ids; /* u64 in host order = little-endian */
	data[SEG_SEC_ID_INDEX] = (const uint8_t *)index;

	/* Layout: sections in kind order, each at the next 64-byte boundary; the table ends the file. */
	uint64_t pos = SEG_HEADER_SIZE;
	uint8_t table[SEG_SEC_KIND_MAX * SEG_SECTION_ENTRY_SIZE];
	memset(table, 0, sizeof table);
	for (uint32_t k = 1; k <= SEG_SEC_KIND_MAX; k++) {
		off[k] = align_up(pos);
		pos = off[k] + size[k];
		uint8_t *e = table + (k - 1) * SEG_SECTION_ENTRY_SIZE;
		le_store32(e + 0, k);
		le_store32(e + 4, 0);
		le_store64(e + 8, off[k]);
		le_store64(e + 16, size[k]);
		le_store64(e + 24, xsum64(data[k], (size_t)size[k]));
	}
	const uint64_t table_off = align_up(pos);
	const uint64_t file_size = table_off + sizeof table;
	if (file_size > SIZE_MAX) {
		rc = err_set(STRATA_ELIMIT, "seg_write: %llu bytes cannot be mapped here", ULL(file_size));
		goto fail;
	}
	uint8_t header[SEG_HEADER_SIZE];
	encode_header(header, &g, table_off, file_size, xsum64(table, sizeof table));
	const uint64_t header_xxh3 = le_load64(header + SEG_OFF_HEADER_XXH3);

	if ((rc = fio_open(path, O_CREAT | O_EXCL | O_WRONLY, 0644, &fd)))
		goto fail;
	created = true;
	if ((rc = fio_pwrite_all(fd, header, sizeof header, 0, path)))
		goto fail;
	pos = SEG_HEADER_SIZE;
	for (uint32_t k = 1; k <= SEG_SEC_KIND_MAX; k++) {
		/* Padding is written, not left as a hole: what verify reads is what we wrote. */
		if (off[k] > pos && (rc = fio_pwrite_all(fd, seg_zeros, (size_t)(off[k] - pos), pos, path)))
			goto fail;
		if (size[k] && (rc = fio_pwrite_all(fd, data[k], (size_t)size[k], off[k], path)))
			goto fail;
		pos = off[k] + size[k];
	}
	if (table_off > pos && (rc = fio_pwrite_all(fd, seg_zeros, (size_t)(table_off - pos), pos, path)))
		goto fail;
	if ((rc = fio_pwrite_all(fd, table, sizeof table, table_off, path)) ||
	    (rc = fio_fsync(fd, path)))
		goto fail;
	fp_step("segment.synced");
	rc = fio_close(fd);
	fd = -1;
	if (rc || (rc = check_written(path, file_size, header_xxh3)))
		goto fail;

	free(index);
	if (header_xxh3_out)
		*header_xxh3_out = header_xxh3;
	return 0;
fail:
	free(index);
	if (fd >= 0)
		fio_close(fd);
	if (created)
		fio_discard(path);
	return rc;
}
