/*
 * wal_bench.c - strata-wal-bench: the WAL alone, under SYNC_ALWAYS. Threads
 * call wal_append with records the size of a one-vector upsert, as
 * strata_upsert's writers do, but nothing else runs: no memtable, no indexer.
 * It separates what the group commit gives from what the engine around it
 * costs (strata-ingest-bench part 1 measures the two together; README says
 * why both are needed). It prints figures; it never passes or fails.
 *
 * It reaches the WAL through wal/wal.h, an internal header, so it lives with
 * the benches and is not installed.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "strata.h"
#include "wal.h"

#define MAX_THREADS 64u
/* An upsert record's payload for one vector: count + dim (2 x u32), the id, the floats. */
#define PAYLOAD_HEAD 8u
#define DEFAULT_DIM 128u

struct run {
	struct wal *w;
	size_t payload;
	atomic_bool stop;
	atomic_uint_fast64_t done;
	int failed;
};

struct result {
	double per_s, fsyncs_per_s, per_sync, cpu_us;
	bool io_uring;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void *writer_main(void *arg)
{
	struct run *r = arg;
	uint8_t *payload = calloc(1, r->payload);
	if (!payload) {
		r->failed = STRATA_ENOMEM;
		return NULL;
	}
	struct iovec iov = {.iov_base = payload, .iov_len = r->payload};
	uint64_t mine = 0, lsn;
	while (!atomic_load_explicit(&r->stop, memory_order_relaxed)) {
		int rc = wal_append(r->w, WAL_REC_UPSERT, &iov, 1, &lsn);
		if (rc) {
			r->failed = rc;
			break;
		}
		mine++;
	}
	atomic_fetch_add(&r->done, mine);
	free(payload);
	return NULL;
}

/* One timed loop of `threads` writers on a fresh log in `dir`. Returns 0 or a STRATA_E* code. */
static int measure(const char *dir, unsigned threads, uint32_t dim, double secs, struct result *out)
{
	struct wal_config cfg = {
		.dir = dir,
		.dim = dim,
		.sync_mode = STRATA_SYNC_ALWAYS,
	};
	struct wal *w = NULL;
	int rc = wal_open(&cfg, 1, &w);
	if (rc)
		return rc;
	struct run r = {.w = w, .payload = PAYLOAD_HEAD + sizeof(uint64_t) + (size_t)dim * sizeof(float)};
	pthread_t tid[MAX_THREADS];
	unsigned started = 0;
	double cpu0 = cpu_s(), t0 = now_s();
	for (; started < threads; started++)
		if (pthread_create(&tid[started], NULL, writer_main, &r) != 0)
			break;
	struct timespec nap = {.tv_sec = (time_t)secs, .tv_nsec = (long)((secs - (double)(time_t)secs) * 1e9)};
	nanosleep(&nap, NULL);
	atomic_store(&r.stop, true);
	for (unsigned i = 0; i < started; i++)
		pthread_join(tid[i], NULL);
	double el = now_s() - t0, cpu = cpu_s() - cpu0;
	struct wal_stats st;
	wal_stats(w, &st);
	int crc = wal_close(w);
	if (started < threads)
		return STRATA_ENOMEM;
	if (r.failed)
		return r.failed;
	if (crc)
		return crc;
	uint64_t done = atomic_load(&r.done);
	out->per_s = (double)done / el;
	out->fsyncs_per_s = (double)st.fsyncs / el;
	out->per_sync = st.fsyncs ? (double)st.records / (double)st.fsyncs : 0;
	out->cpu_us = done ? cpu / (double)done * 1e6 : 0;
	out->io_uring = st.io_uring;
	return 0;
}

/* Remove `dir` and the files in it (the log's: no subdirectories); quiet when absent. */
static void remove_logs(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *e;
	char path[8192];
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
			snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
			unlink(path);
		}
	closedir(d);
	rmdir(dir);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: strata-wal-bench [--threads LIST] [--seconds S] [--dim D] [--tmp DIR]\n"
	           "  --threads LIST   writer threads per loop, e.g. 1,8 (default 1,8)\n"
	           "  --seconds S      length of each loop (default 2)\n"
	           "  --dim D          record size of a one-vector upsert of D floats (default 128)\n"
	           "  --tmp DIR        where the log is written (default /tmp)\n"
	           "STRATA_WAL_IO=pwrite|uring and STRATA_WAL_PREALLOC=off apply as in the library.\n");
}

int main(int argc, char **argv)
{
	unsigned threads[16] = {1, 8};
	size_t nthreads = 2;
	double secs = 2;
	uint32_t dim = DEFAULT_DIM;
	const char *tmp = "/tmp";
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--help") == 0) {
			usage(stdout);
			return 0;
		}
		if (!v) {
			usage(stderr);
			return 2;
		}
		i++;
		if (strcmp(a, "--threads") == 0) {
			nthreads = 0;
			for (char *p = (char *)v, *end; *p && nthreads < 16; p = *end ? end + 1 : end) {
				unsigned long t = strtoul(p, &end, 10);
				if (end == p || t == 0 || t > MAX_THREADS) {
					fprintf(stderr, "strata-wal-bench: --threads: 1..%u, comma-separated\n", MAX_THREADS);
					return 2;
				}
				threads[nthreads++] = (unsigned)t;
			}
		} else if (strcmp(a, "--seconds") == 0) {
			secs = atof(v);
		} else if (strcmp(a, "--dim") == 0) {
			dim = (uint32_t)strtoul(v, NULL, 10);
		} else if (strcmp(a, "--tmp") == 0) {
			tmp = v;
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (!(secs > 0) || secs > 3600 || dim == 0 || dim > STRATA_DIM_MAX || nthreads == 0) {
		usage(stderr);
		return 2;
	}
	char dir[4096];
	snprintf(dir, sizeof dir, "%s/strata-wal-bench.%ld", tmp, (long)getpid());

	printf("strata-wal-bench: the WAL alone, STRATA_SYNC_ALWAYS, one-vector upsert records (dim %u), "
	       "%.1f s per loop, log in %s\n",
	       dim, secs, tmp);
	printf("  threads   records/s  fdatasyncs/s  records/sync  CPU us/record  vs 1 thread\n");
	double one = 0;
	for (size_t i = 0; i < nthreads; i++) {
		remove_logs(dir);
		if (mkdir(dir, 0755) != 0) {
			fprintf(stderr, "strata-wal-bench: mkdir %s: %s\n", dir, strerror(errno));
			return 1;
		}
		struct result res;
		int rc = measure(dir, threads[i], dim, secs, &res);
		if (rc) {
			fprintf(stderr, "strata-wal-bench: error %d: %s\n", rc, err_detail());
			remove_logs(dir);
			return 1;
		}
		if (threads[i] == 1)
			one = res.per_s;
		char ratio[32] = "";
		if (one > 0 && threads[i] != 1)
			snprintf(ratio, sizeof ratio, "%.2fx", res.per_s / one);
		printf("  %7u  %10.0f  %12.0f  %12.1f  %13.1f  %11s\n", threads[i], res.per_s, res.fsyncs_per_s,
		       res.per_sync, res.cpu_us, ratio);
		if (i + 1 == nthreads)
			printf("WAL through io_uring: %s\n", res.io_uring ? "yes" : "no (pwrite + fdatasync)");
	}
	remove_logs(dir);
	return 0;
}
