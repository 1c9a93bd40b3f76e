/*
 * quickstart.c - the README's first demo (`strata-quickstart [DIR]`): the
 * classic hnswlib tutorial workflow, done with strata.
 *
 *   1. 10,000 random 128-d vectors, uniform in [0,1), seed 42
 *   2. build with M=16, ef_construction=200 into DIR (default: a temporary
 *      directory, removed at the end), timed
 *   3. open, search 5 random queries (seed 43) with k=10, ef=50
 *   4. ef sweep over 1,000 random queries (seed 44): recall@10 against a
 *      brute force computed here, and mean latency per query
 *   5. close, reopen read-only from disk, check the answers are identical
 *
 * It uses only the public API (strata.h) and its own brute force, so it is
 * also the smallest complete example of a program built on libstrata.
 * Exit status 0 on success, 1 on any failure (printed with its detail).
 */
#include <dirent.h>
#include <fcntl.h>
#include <float.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "strata.h"

#define N_BASE 10000
#define DIM 128
#define K 10
#define N_SHOW 5
#define N_SWEEP 1000
#define SEED_BASE 42
#define SEED_SHOW 43
#define SEED_SWEEP 44

static const uint32_t sweep_ef[] = {10, 20, 50, 100, 200};
#define N_EF (sizeof sweep_ef / sizeof sweep_ef[0])
#define EF_SHOW 50

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int fail(const char *step, int rc)
{
	const char *d = strata_last_error_detail();
	fprintf(stderr, "quickstart: %s: %s%s%s\n", step, strata_strerror(rc), d && *d ? ": " : "",
	        d && *d ? d : "");
	return 1;
}

/* splitmix64: a small, well-mixed generator, so the demo's data is the same everywhere. */
static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* n x dim floats, uniform in [0,1): the top 24 bits of each draw, exactly representable. */
static float *random_vectors(size_t n, size_t dim, uint64_t seed)
{
	float *v = malloc(n * dim * sizeof *v);
	if (!v)
		return NULL;
	uint64_t s = seed;
	for (size_t i = 0; i < n * dim; i++)
		v[i] = (float)(splitmix64(&s) >> 40) * (1.0f / 16777216.0f);
	return v;
}

static float l2sq(const float *a, const float *b)
{
	/* Four partial sums: independent chains the compiler can schedule. */
	float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
	for (size_t i = 0; i < DIM; i += 4) {
		float d0 = a[i] - b[i], d1 = a[i + 1] - b[i + 1];
		float d2 = a[i + 2] - b[i + 2], d3 = a[i + 3] - b[i + 3];
		s0 += d0 * d0;
		s1 += d1 * d1;
		s2 += d2 * d2;
		s3 += d3 * d3;
	}
	return (s0 + s1) + (s2 + s3);
}

/* The true K nearest base rows of each query, by exhaustive scan. */
static void brute_force(const float *base, const float *queries, size_t nq, uint64_t *truth)
{
	for (size_t q = 0; q < nq; q++) {
		float best_d[K];
		uint64_t best_i[K];
		size_t n = 0;
		for (size_t i = 0; i < N_BASE; i++) {
			float d = l2sq(queries + q * DIM, base + i * DIM);
			if (n == K && d >= best_d[K - 1])
				continue;
			size_t j = n < K ? n++ : K - 1;
			while (j > 0 && best_d[j - 1] > d) {
				best_d[j] = best_d[j - 1];
				best_i[j] = best_i[j - 1];
				j--;
			}
			best_d[j] = d;
			best_i[j] = i;
		}
		memcpy(truth + q * K, best_i, sizeof best_i);
	}
}

static double recall_at_k(const uint64_t *found, const uint64_t *truth, size_t nq)
{
	size_t hit = 0;
	for (size_t q = 0; q < nq; q++)
		for (size_t i = 0; i < K; i++)
			for (size_t j = 0; j < K; j++)
				if (found[q * K + i] == truth[q * K + j]) {
					hit++;
					break;
				}
	return (double)hit / (double)(nq * K);
}

/* One query per call, single-threaded, as the hnswlib tutorial measures. */
static int search_each(strata_db *db, const float *queries, size_t nq, uint32_t ef, uint64_t *ids,
                       float *dists, double *mean_us_out)
{
	strata_search_options so;
	strata_search_options_default(&so);
	so.ef = ef;
	double t0 = now_s();
	for (size_t q = 0; q < nq; q++) {
		int rc = strata_search(db, queries + q * DIM, 1, K, &so, ids + q * K, dists + q * K);
		if (rc != 0)
			return rc;
	}
	if (mean_us_out)
		*mean_us_out = (now_s() - t0) * 1e6 / (double)nq;
	return 0;
}

/* Remove the temporary database directory this demo made (flat: files only). */
static void remove_db(const char *dir)
{
	DIR *d = opendir(dir);
	if (d) {
		struct dirent *e;
		while ((e = readdir(d))) {
			if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
				unlinkat(dirfd(d), e->d_name, 0);
		}
		closedir(d);
	}
	rmdir(dir);
}

int main(int argc, char **argv)
{
	char tmp[256] = "", dir[4096];
	if (argc > 2 || (argc == 2 && argv[1][0] == '-')) {
		fprintf(stderr, "usage: strata-quickstart [DIR]\n"
		                "  DIR: where to build the database (must not exist, or be empty);\n"
		                "       default: a temporary directory, removed at the end\n");
		return argc == 2 && strcmp(argv[1], "--help") == 0 ? 0 : 2;
	}
	if (argc == 2) {
		snprintf(dir, sizeof dir, "%s", argv[1]);
	} else {
		const char *t = getenv("TMPDIR");
		snprintf(tmp, sizeof tmp, "%s/strata-quickstart-XXXXXX", t && *t ? t : "/tmp");
		if (!mkdtemp(tmp)) {
			perror("quickstart: mkdtemp");
			return 1;
		}
		snprintf(dir, sizeof dir, "%s/db", tmp);
	}
	printf("strata quickstart (libstrata %s)\n\n", strata_version());

	int status = 1, rc;
	strata_db *db = NULL;
	float *base = random_vectors(N_BASE, DIM, SEED_BASE);
	float *show_q = random_vectors(N_SHOW, DIM, SEED_SHOW);
	float *sweep_q = random_vectors(N_SWEEP, DIM, SEED_SWEEP);
	uint64_t *truth = malloc(N_SWEEP * K * sizeof *truth);
	uint64_t *ids = malloc(N_SWEEP * K * sizeof *ids), *ids2 = malloc(N_SWEEP * K * sizeof *ids2);
	float *dists = malloc(N_SWEEP * K * sizeof *dists), *dists2 = malloc(N_SWEEP * K * sizeof *dists2);
	uint64_t show_ids[N_SHOW * K], show_ids2[N_SHOW * K];
	float show_d[N_SHOW * K], show_d2[N_SHOW * K];
	if (!base || !show_q || !sweep_q || !truth || !ids || !ids2 || !dists || !dists2) {
		fprintf(stderr, "quickstart: out of memory\n");
		goto out;
	}

	printf("[1/5] data: %d random vectors of dim %d, uniform in [0,1) (seed %d)\n", N_BASE, DIM,
	       SEED_BASE);

	strata_options opts;
	strata_options_default(&opts);
	opts.dim = DIM;
	opts.metric = STRATA_METRIC_L2;
	opts.M = 16;
	opts.ef_construction = 200;
	printf("[2/5] build: M=%u, ef_construction=%u, metric l2, all cores, into %s\n", opts.M,
	       opts.ef_construction, dir);
	double t0 = now_s();
	if ((rc = strata_build(dir, &opts, NULL, base, N_BASE)) != 0) {
		fail("strata_build", rc);
		goto out;
	}
	double build_s = now_s() - t0;
	printf("      build time: %.2f s (%.0f vectors/s)\n", build_s, N_BASE / build_s);

	t0 = now_s();
	if ((rc = strata_open(dir, NULL, 0, &db)) != 0) {
		fail("strata_open", rc);
		goto out;
	}
	printf("      opened in %.3f ms\n", (now_s() - t0) * 1e3);

	printf("[3/5] search: %d random queries (seed %d), k=%d, ef=%d\n", N_SHOW, SEED_SHOW, K,
	       EF_SHOW);
	if ((rc = search_each(db, show_q, N_SHOW, EF_SHOW, show_ids, show_d, NULL)) != 0) {
		fail("strata_search", rc);
		goto out;
	}
	for (size_t q = 0; q < N_SHOW; q++) {
		printf("      query %zu ids:  ", q);
		for (size_t i = 0; i < K; i++)
			printf(" %6llu", (unsigned long long)show_ids[q * K + i]);
		printf("\n              dists:");
		for (size_t i = 0; i < K; i++)
			printf(" %6.3f", show_d[q * K + i]);
		putchar('\n');
	}

	printf("[4/5] ef sweep: %d random queries (seed %d), k=%d, one query per call, 1 thread\n",
	       N_SWEEP, SEED_SWEEP, K);
	t0 = now_s();
	brute_force(base, sweep_q, N_SWEEP, truth);
	printf("      brute-force truth computed in %.2f s\n", now_s() - t0);
	printf("      %6s  %9s  %14s\n", "ef", "recall@10", "mean latency");
	for (size_t e = 0; e < N_EF; e++) {
		double mean_us;
		if ((rc = search_each(db, sweep_q, N_SWEEP, sweep_ef[e], ids, dists, &mean_us)) != 0) {
			fail("strata_search", rc);
			goto out;
		}
		printf("      %6u  %9.4f  %11.1f us\n", sweep_ef[e], recall_at_k(ids, truth, N_SWEEP),
		       mean_us);
	}
	/* Keep the ef=50 answers of the sweep for the comparison after reopening. */
	if ((rc = search_each(db, sweep_q, N_SWEEP, EF_SHOW, ids, dists, NULL)) != 0) {
		fail("strata_search", rc);
		goto out;
	}

	printf("[5/5] close, reopen read-only from disk, search again\n");
	if ((rc = strata_close(db)) != 0) {
		db = NULL;
		fail("strata_close", rc);
		goto out;
	}
	db = NULL;
	if ((rc = strata_open(dir, NULL, STRATA_READONLY, &db)) != 0) {
		fail("strata_open (read-only)", rc);
		goto out;
	}
	if ((rc = search_each(db, show_q, N_SHOW, EF_SHOW, show_ids2, show_d2, NULL)) != 0 ||
	    (rc = search_each(db, sweep_q, N_SWEEP, EF_SHOW, ids2, dists2, NULL)) != 0) {
		fail("strata_search after reopen", rc);
		goto out;
	}
	bool same = memcmp(show_ids, show_ids2, sizeof show_ids) == 0 &&
	            memcmp(show_d, show_d2, sizeof show_d) == 0 &&
	            memcmp(ids, ids2, N_SWEEP * K * sizeof *ids) == 0 &&
	            memcmp(dists, dists2, N_SWEEP * K * sizeof *dists) == 0;
	printf("      identical answers after reopen: %s (%d + %d queries, ids and distances)\n",
	       same ? "yes" : "NO", N_SHOW, N_SWEEP);
	if (!same) {
		fprintf(stderr, "quickstart: the reopened database answers differently\n");
		goto out;
	}
	if (tmp[0])
		printf("\ndone; the temporary database is removed.\n");
	else
		printf("\ndone; the database stays in %s (try: strata inspect %s)\n", dir, dir);
	status = 0;
out:
	strata_close(db);
	if (tmp[0]) {
		remove_db(dir);
		rmdir(tmp);
	}
	free(base);
	free(show_q);
	free(sweep_q);
	free(truth);
	free(ids);
	free(ids2);
	free(dists);
	free(dists2);
	return status;
}
