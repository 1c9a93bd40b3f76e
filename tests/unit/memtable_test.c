/*
 * memtable_test.c - the memtable on its own: the indexer's bounded rounds
 * (mt_index with max_rows), and the id map across its rehashes (its arrays
 * are mapped memory, engine/bigmem.c, grown by doubling), and the pages
 * made present ahead of the writer (mt_prefault).
 * Through the database: db_model_test.c, db_write_concurrency_test.c.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "err.h"
#include "hnsw_internal.h"
#include "memtable.h"

static struct memtable *fresh(size_t capacity, uint32_t dim)
{
	struct hnsw_build_params p = {
		.dim = dim,
		.metric = STRATA_METRIC_L2,
		.M = 8,
		.ef_construction = 40,
		.threads = 2,
		.seed = 7,
	};
	struct memtable *mt = NULL;
	cr_assert_eq(mt_new(&p, capacity, &mt), 0, "%s", err_detail());
	return mt;
}

/* Upsert ids first..first+n with vectors derived from the id, at LSN `lsn`. */
static void upsert(struct memtable *mt, uint32_t dim, uint64_t first, size_t n, uint64_t lsn)
{
	uint64_t *ids = malloc(n * sizeof *ids);
	float *x = malloc(n * dim * sizeof *x);
	cr_assert(ids && x);
	for (size_t i = 0; i < n; i++) {
		ids[i] = first + i;
		for (uint32_t d = 0; d < dim; d++)
			x[i * dim + d] = (float)((ids[i] * 2654435761u + d * 40503u) % 1000) / 10.0f;
	}
	cr_assert_eq(mt_reserve(mt, n, n), 0, "%s", err_detail());
	mt_apply_upsert(mt, lsn, ids, x, n, NULL);
	free(ids);
	free(x);
}

Test(memtable, an_index_round_takes_at_most_the_rows_asked_and_zero_means_all)
{
	struct memtable *mt = fresh(1000, 8);
	upsert(mt, 8, 0, 300, 1);
	cr_assert_eq(hnsw_graph_indexed(mt->g), 0);
	cr_assert_eq(mt_index(mt, 100), 0, "%s", err_detail());
	cr_assert_eq(hnsw_graph_indexed(mt->g), 100);
	cr_assert(mt_needs_index(mt));
	cr_assert_eq(mt_index(mt, 150), 0, "%s", err_detail());
	cr_assert_eq(hnsw_graph_indexed(mt->g), 250);
	cr_assert_eq(mt_index(mt, 1000), 0, "%s", err_detail()); /* more than is left: what is left */
	cr_assert_eq(hnsw_graph_indexed(mt->g), 300);
	cr_assert(!mt_needs_index(mt));
	upsert(mt, 8, 300, 200, 2);
	cr_assert_eq(mt_index(mt, 0), 0, "%s", err_detail());
	cr_assert_eq(hnsw_graph_indexed(mt->g), 500);
	cr_assert(!mt_needs_index(mt));
	mt_unref(mt);
}

Test(memtable, the_id_map_finds_every_row_across_its_rehashes)
{
	/* 1M rows of capacity: arrays large enough for huge pages; 200k ids: many doublings of the map. */
	struct memtable *mt = fresh(1000000, 4);
	for (uint64_t b = 0; b < 200; b++)
		upsert(mt, 4, b * 1000, 1000, b + 1);
	/* Every other id again: its row moves, the old one dies. */
	for (uint64_t b = 0; b < 200; b += 2)
		upsert(mt, 4, b * 1000, 1000, 1000 + b);
	cr_assert_eq(mt_rows(mt), 300000);
	cr_assert_eq(mt_live(mt), 200000);
	for (uint64_t id = 0; id < 200000; id++) {
		uint64_t lsn = 0;
		uint32_t row = mt_find(mt, id, &lsn);
		uint64_t b = id / 1000;
		uint32_t want = b % 2 == 0 ? (uint32_t)(200000 + (b / 2) * 1000 + id % 1000) : (uint32_t)id;
		cr_assert_eq(row, want, "id %llu: row %u, want %u", (unsigned long long)id, row, want);
		cr_assert_eq(lsn, b % 2 == 0 ? 1000 + b : b + 1);
		cr_assert(!mt_is_dead(mt, row));
		if (b % 2 == 0)
			cr_assert(mt_is_dead(mt, (uint32_t)id), "the superseded row of id %llu is dead",
			          (unsigned long long)id);
	}
	cr_assert_eq(mt_find(mt, 200000, NULL), MT_NO_ROW);
	mt_unref(mt);
}

/* Pages of [p + from, p + to) resident (mincore), and how many there are. */
static size_t resident_pages(const void *p, size_t from, size_t to, size_t *total)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	uintptr_t a = ((uintptr_t)p + from) / page * page, b = ((uintptr_t)p + to + page - 1) / page * page;
	size_t n = (b - a) / page;
	unsigned char *v = malloc(n);
	cr_assert(v);
	cr_assert_eq(mincore((void *)a, b - a, v), 0);
	size_t in = 0;
	for (size_t i = 0; i < n; i++)
		in += v[i] & 1;
	free(v);
	*total = n;
	return in;
}

Test(memtable, prefault_makes_the_rows_ahead_present_and_no_more)
{
	const uint32_t dim = 128;
	struct memtable *mt = fresh(100000, dim);
	upsert(mt, dim, 0, 3000, 1);
	size_t stride = mt->g->v.stride, total;
	/* Rows 3000..5999 were never touched: not present yet. */
	cr_assert_eq(resident_pages(mt->g->nodes, 3100 * stride, 6000 * stride, &total), 0);
	cr_assert(mt_prefault_due(mt));
	mt_prefault(mt);
	cr_assert(!mt_prefault_due(mt), "done, and still due");
	/* As many rows ahead as there are: all of 3000..5999 present, well past 6000 not. */
	cr_assert_eq(resident_pages(mt->g->nodes, 3000 * stride, 6000 * stride, &total), total);
	cr_assert_eq(resident_pages(mt->ids, 3000 * 8, 6000 * 8, &total), total);
	cr_assert_eq(resident_pages(mt->g->nodes, 6100 * stride, 20000 * stride, &total), 0);
	/* The prefaulted rows still read as zeros, and the next upserts land there as usual. */
	const uint8_t *row = mt->g->nodes + 4000 * stride;
	for (size_t i = 0; i < stride; i++)
		cr_assert_eq(row[i], 0);
	upsert(mt, dim, 3000, 500, 2);
	cr_assert_eq(mt_index(mt, 0), 0, "%s", err_detail());
	cr_assert_eq(hnsw_graph_indexed(mt->g), 3500);
	/* 3500 rows: 7000 wanted present, 6000 are: less than half of the 3500 ahead missing. */
	cr_assert(!mt_prefault_due(mt));
	upsert(mt, dim, 3500, 1000, 3);
	/* 4500 rows: 9000 wanted, 6000 present: 3000 of 4500 ahead missing. */
	cr_assert(mt_prefault_due(mt));
	mt_unref(mt);
}
