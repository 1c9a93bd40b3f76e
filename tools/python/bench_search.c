/*
 * bench_search.c - the C side of tools/python/bench_binding.py: one batch of
 * queries through strata_search, timed, so the Python binding's overhead can
 * be measured against the same search made straight from C.
 *
 *   strata-bench-search DB QUERIES.fvecs K EF THREADS REPEAT [wall|cpu]
 *
 * Opens DB read-only, reads the queries, searches the whole batch once
 * untimed (page cache, allocator), then REPEAT times timed: wall clock
 * (CLOCK_MONOTONIC, the default) or the CPU time of the whole process
 * (CLOCK_PROCESS_CPUTIME_ID, every search thread included: steadier on a
 * shared machine). Prints one line per timed run, "run <seconds>", and a
 * last line "ids_fnv <hash>" (FNV-1a over the result ids) so the caller can
 * check both sides returned the same answers. A benchmark, not a test: it
 * asserts nothing. Exit 1 with a message on failure.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "strata.h"

static clockid_t clock_id = CLOCK_MONOTONIC;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(clock_id, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* All rows of an .fvecs file (int32 dim, then dim float32, per row). */
static float *read_fvecs(const char *path, size_t *n_out, uint32_t *dim_out)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	int32_t d = 0;
	float *v = NULL;
	size_t n = 0, cap = 0;
	while (fread(&d, sizeof d, 1, f) == 1) {
		if (d <= 0 || (n > 0 && (uint32_t)d != *dim_out))
			break;
		*dim_out = (uint32_t)d;
		if (n == cap) {
			cap = cap ? cap * 2 : 1024;
			float *nv = realloc(v, cap * (size_t)d * sizeof(float));
			if (!nv)
				break;
			v = nv;
		}
		if (fread(v + n * (size_t)d, sizeof(float), (size_t)d, f) != (size_t)d)
			break;
		n++;
	}
	fclose(f);
	*n_out = n;
	return v;
}

int main(int argc, char **argv)
{
	if (argc != 7 && argc != 8) {
		fprintf(stderr, "usage: %s DB QUERIES.fvecs K EF THREADS REPEAT [wall|cpu]\n", argv[0]);
		return 2;
	}
	if (argc == 8 && strcmp(argv[7], "cpu") == 0)
		clock_id = CLOCK_PROCESS_CPUTIME_ID;
	uint32_t k = (uint32_t)strtoul(argv[3], NULL, 10);
	uint32_t ef = (uint32_t)strtoul(argv[4], NULL, 10);
	uint32_t threads = (uint32_t)strtoul(argv[5], NULL, 10);
	int repeat = atoi(argv[6]);
	size_t nq = 0;
	uint32_t dim = 0;
	float *q = read_fvecs(argv[2], &nq, &dim);
	if (!q || nq == 0) {
		fprintf(stderr, "%s: no vectors read\n", argv[2]);
		return 1;
	}
	strata_db *db;
	int rc = strata_open(argv[1], NULL, STRATA_READONLY, &db);
	if (rc) {
		fprintf(stderr, "open %s: %s: %s\n", argv[1], strata_strerror(rc), strata_last_error_detail());
		return 1;
	}
	uint64_t *ids = malloc(nq * k * sizeof *ids);
	float *dists = malloc(nq * k * sizeof *dists);
	strata_search_options so;
	strata_search_options_default(&so);
	so.ef = ef;
	so.threads = threads;
	for (int r = -1; r < repeat && rc == 0; r++) {
		double t0 = now_s();
		rc = strata_search(db, q, nq, k, &so, ids, dists);
		double t = now_s() - t0;
		if (r >= 0 && rc == 0)
			printf("run %.9f\n", t);
	}
	if (rc) {
		fprintf(stderr, "search: %s: %s\n", strata_strerror(rc), strata_last_error_detail());
	} else {
		uint64_t h = 14695981039346656037ull;
		for (size_t i = 0; i < nq * k; i++)
			for (int b = 0; b < 8; b++)
				h = (h ^ ((ids[i] >> (8 * b)) & 0xff)) * 1099511628211ull;
		printf("ids_fnv %llu\n", (unsigned long long)h);
	}
	free(ids);
	free(dists);
	free(q);
	strata_close(db);
	return rc != 0;
}
