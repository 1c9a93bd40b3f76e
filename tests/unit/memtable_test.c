/*
 * memtable_test.c - the memtable on its own: the indexer's bounded rounds
 * (mt_index with max_rows), and the id map across its rehashes (its arrays
 * are mapped memory, engine/bigmem.c, grown by doubling), and the pages
 * made present ahead of the writer (mt_prefault), and the anchors (rows hung
 * under a segment's nodes, found through that segment's walk).
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

/* The vector upsert() gives id `id`. */
static void vector_of(uint64_t id, uint32_t dim, float *x)
{
	for (uint32_t d = 0; d < dim; d++)
		x[d] = (float)((id * 2654435761u + d * 40503u) % 1000) / 10.0f;
}

static float l2(const float *a, const float *b, uint32_t dim)
{
	float s = 0;
	for (uint32_t d = 0; d < dim; d++)
		s += (a[d] - b[d]) * (a[d] - b[d]);
	return s;
}

/* Recall@10 of hits over the memtable's live rows [0, rows), exactly. */
static double recall_rows(struct memtable *mt, const float *q, uint32_t dim, size_t rows,
                          const struct hnsw_hit *hits, uint32_t n)
{
	struct hnsw_view v;
	hnsw_graph_view_live(mt->g, &v);
	float best[10];
	uint32_t nb = 0;
	for (size_t r = 0; r < rows; r++) {
		if (mt_is_dead(mt, (uint32_t)r))
			continue;
		float d = l2(q, hnsw_vec(&v, (uint32_t)r), dim);
		if (nb == 10 && !(d < best[9]))
			continue;
		uint32_t i = nb < 10 ? nb++ : 9;
		for (; i > 0 && best[i - 1] > d; i--)
			best[i] = best[i - 1];
		best[i] = d;
	}
	uint32_t found = 0;
	for (uint32_t i = 0; i < n; i++)
		found += nb > 0 && hits[i].dist <= best[nb - 1];
	return nb ? (double)found / nb : 1.0;
}

Test(memtable, anchored_rows_are_found_under_the_nodes_a_segment_walk_expands)
{
	const uint32_t dim = 16;
	const size_t ns = 4000, nm = 1000;
	float *sv = malloc(ns * dim * sizeof *sv);
	cr_assert(sv);
	for (size_t i = 0; i < ns; i++)
		vector_of(100000 + i, dim, sv + i * dim);
	struct hnsw_build_params p = {.dim = dim, .metric = STRATA_METRIC_L2, .M = 8,
	                              .ef_construction = 40, .threads = 2, .seed = 7};
	struct hnsw_graph *g = NULL;
	cr_assert_eq(hnsw_build(&p, sv, ns, &g), 0, "%s", err_detail());
	struct hnsw_view seg;
	hnsw_graph_view(g, &seg);
	struct memtable *mt = fresh(2000, dim);
	upsert(mt, dim, 0, nm, 1);
	struct hnsw_scratch *as = hnsw_scratch_new(), *qs = hnsw_scratch_new();
	struct hnsw_trace trace = {0};
	struct mt_seen seen = {0};
	cr_assert(as && qs);

	/* Rows hang as soon as they are appended: their own graph need not hold them. */
	cr_assert_eq(hnsw_graph_indexed(mt->g), 0);
	bool progress = false;
	cr_assert_eq(mt_anchor(mt, 7, &seg, NULL, as, 0, &progress), 0, "%s", err_detail());
	cr_assert(progress);
	const struct mt_anchors *a = mt_anchors_for(mt, 7);
	cr_assert_not_null(a);
	cr_assert_null(mt_anchors_for(mt, 8));
	cr_assert_eq(atomic_load(&a->anchored), nm);
	cr_assert_eq(mt_anchor(mt, 7, &seg, NULL, as, 0, &progress), 0);
	cr_assert(!progress, "nothing new to hang");
	/* Every row under MT_ANCHOR_LINKS distinct nodes, each link in one list once. */
	uint8_t *met = calloc(nm * MT_ANCHOR_LINKS, 1);
	uint32_t *under = calloc(nm * MT_ANCHOR_LINKS, sizeof *under);
	cr_assert(met && under);
	for (uint32_t node = 0; node < a->seg_count; node++)
		for (uint32_t l = atomic_load(&a->head[node]); l; l = a->next[l - 1]) {
			cr_assert(l - 1 < nm * MT_ANCHOR_LINKS && !met[l - 1],
			          "link %u met twice or beyond the rows", l - 1);
			met[l - 1] = 1;
			under[l - 1] = node;
		}
	for (size_t r = 0; r < nm; r++)
		for (uint32_t j = 0; j < MT_ANCHOR_LINKS; j++) {
			cr_assert(met[r * MT_ANCHOR_LINKS + j], "row %zu: link %u hangs nowhere", r, j);
			for (uint32_t i = 0; i < j; i++)
				cr_assert_neq(under[r * MT_ANCHOR_LINKS + i], under[r * MT_ANCHOR_LINKS + j],
				              "row %zu hangs twice under node %u", r, under[r * MT_ANCHOR_LINKS + j]);
		}
	free(met);
	free(under);

	/* New points as queries: the memtable's 10 nearest, through the segment's walk. */
	float q[16];
	struct hnsw_hit seg_hits[10], hits[10];
	uint32_t n = 0, nh = 0;
	double recall = 0;
	uint64_t evals = 0, seg_evals = 0;
	const int nq = 50;
	for (int i = 0; i < nq; i++) {
		vector_of(500000 + (uint64_t)i, dim, q);
		cr_assert_eq(hnsw_search_traced(&seg, q, 10, 64, 64, NULL, qs, &trace, seg_hits, &n,
		                                &seg_evals), 0);
		cr_assert_eq(trace.best.n, 64);
		bool used = false;
		cr_assert_eq(mt_search_anchored(mt, a, q, 10, trace.best.a, trace.best.n, SIZE_MAX, &seen,
		                                hits, &nh, &evals, &used),
		             0);
		cr_assert(used);
		recall += recall_rows(mt, q, dim, nm, hits, nh) / nq;
	}
	cr_log_info("anchored: recall@10 of the memtable's rows %.3f, %.1f distances per query",
	            recall, (double)evals / nq);
	cr_assert_geq(recall, 0.9);
	cr_assert_lt((double)evals / nq, nm / 4.0, "a few rows per query, not a scan");

	/* Each row's own vector finds it; dead rows never come back. */
	for (uint64_t id = 0; id < 100; id++)
		mt_kill_id(mt, id);
	uint32_t self = 0;
	for (uint32_t r = 0; r < nm; r++) {
		vector_of(r, dim, q);
		cr_assert_eq(hnsw_search_traced(&seg, q, 1, 64, 64, NULL, qs, &trace, seg_hits, &n,
		                                &seg_evals), 0);
		bool used = false;
		cr_assert_eq(mt_search_anchored(mt, a, q, 1, trace.best.a, trace.best.n, SIZE_MAX, &seen,
		                                hits, &nh, &evals, &used),
		             0);
		cr_assert(used);
		if (r < 100) {
			cr_assert(nh == 0 || hits[0].node >= 100, "dead row %u returned", hits[0].node);
			continue;
		}
		self += nh == 1 && hits[0].node == r;
	}
	cr_assert_geq(self, (nm - 100) * 99 / 100, "%u of %zu rows found by their own vector", self,
	              nm - 100);

	/* More rows under the nodes than max_rows: the caller walks, nothing computed. */
	bool used = false;
	uint64_t before = evals;
	cr_assert_eq(mt_search_anchored(mt, a, q, 10, trace.best.a, trace.best.n, 0, &seen, hits, &nh,
	                                &evals, &used),
	             0);
	cr_assert(!used);
	cr_assert_eq(evals, before);
	cr_assert_eq(nh, 0);

	/* Rows the graph holds but no anchor: past MT_ANCHOR_LAG_MAX of them the caller walks. */
	upsert(mt, dim, 5000, MT_ANCHOR_LAG_MAX + 50, 2);
	cr_assert_eq(mt_index(mt, 0), 0, "%s", err_detail());
	used = true;
	cr_assert_eq(mt_search_anchored(mt, a, q, 10, trace.best.a, trace.best.n, SIZE_MAX, &seen, hits,
	                                &nh, &evals, &used),
	             0);
	cr_assert(!used);
	cr_assert_eq(mt_anchor(mt, 7, &seg, NULL, as, 0, &progress), 0);
	cr_assert(progress);
	cr_assert_eq(mt_search_anchored(mt, a, q, 10, trace.best.a, trace.best.n, SIZE_MAX, &seen, hits,
	                                &nh, &evals, &used),
	             0);
	cr_assert(used);

	/* Another segment: a new generation from row 0; at most MT_ANCHOR_GENS of them. */
	size_t rows = mt_rows(mt);
	for (uint64_t seq = 8; seq < 7 + MT_ANCHOR_GENS; seq++) {
		cr_assert_eq(mt_anchor(mt, seq, &seg, NULL, as, 0, &progress), 0);
		cr_assert_null(mt_anchors_for(mt, seq - 1));
		const struct mt_anchors *b = mt_anchors_for(mt, seq);
		cr_assert_not_null(b);
		cr_assert_eq(atomic_load(&b->anchored), rows);
	}
	uint64_t last = 6 + MT_ANCHOR_GENS;
	cr_assert_eq(mt_anchor(mt, last + 1, &seg, NULL, as, 0, &progress), 0);
	cr_assert(!progress);
	cr_assert_null(mt_anchors_for(mt, last + 1));
	cr_assert_not_null(mt_anchors_for(mt, last), "the last generation stays");

	/* A live graph cannot be traced (its nodes are rows, not a segment's). */
	struct hnsw_view live;
	hnsw_graph_view_live(mt->g, &live);
	cr_assert_eq(hnsw_search_traced(&live, q, 1, 8, 8, NULL, qs, &trace, hits, &nh, &evals),
	             STRATA_EINVAL);

	hnsw_trace_free(&trace);
	mt_seen_free(&seen);
	hnsw_scratch_free(as);
	hnsw_scratch_free(qs);
	mt_unref(mt);
	hnsw_graph_free(g);
	free(sv);
}
