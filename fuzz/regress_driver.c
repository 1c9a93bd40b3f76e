/*
 * regress_driver.c - runs a fuzz harness without libFuzzer, as a plain meson
 * test (suite 'fuzz-regress'), the way zstd's regression driver and SQLite's
 * fuzzcheck.c do: every file named on the command line, and every regular file
 * of every directory named (sorted by name, dot-files skipped), goes once
 * through the harness's LLVMFuzzerTestOneInput. A broken property aborts the
 * process, so the test fails and the log's last "input" line names the file.
 *
 *   regress_driver_<target> fuzz/corpus/<target> tests/fuzz-regress/<target>
 *
 * Exit status: 0 when every input ran, 1 when a path cannot be read or holds
 * no input at all (an empty regression set is a mistake in the build, not a
 * pass).
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Optional in a harness: a weak reference is null when the harness has none. */
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "regress: %s: %s\n", path, strerror(errno));
		return -1;
	}
	size_t cap = 4096, len = 0;
	uint8_t *buf = malloc(cap);
	for (;;) {
		if (!buf) {
			fprintf(stderr, "regress: %s: out of memory\n", path);
			fclose(f);
			return -1;
		}
		len += fread(buf + len, 1, cap - len, f);
		if (len < cap)
			break;
		cap *= 2;
		uint8_t *nb = realloc(buf, cap);
		if (!nb)
			free(buf);
		buf = nb;
	}
	int err = ferror(f);
	fclose(f);
	if (err) {
		fprintf(stderr, "regress: %s: read error\n", path);
		free(buf);
		return -1;
	}
	/* Exactly `len` bytes, so ASan sees a read past the input as what it is. */
	uint8_t *exact = malloc(len ? len : 1);
	if (!exact) {
		free(buf);
		return -1;
	}
	memcpy(exact, buf, len);
	free(buf);
	printf("input %s (%zu bytes)\n", path, len);
	fflush(stdout);
	LLVMFuzzerTestOneInput(exact, len);
	free(exact);
	return 1;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Run every regular file of `dir`; returns how many ran, or -1. */
static int run_dir(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d) {
		fprintf(stderr, "regress: %s: %s\n", dir, strerror(errno));
		return -1;
	}
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			char **nn = realloc(names, cap * sizeof *nn);
			if (!nn)
				break;
			names = nn;
		}
		names[n] = strdup(e->d_name);
		if (names[n])
			n++;
	}
	closedir(d);
	qsort(names, n, sizeof *names, name_cmp);
	int ran = 0;
	for (size_t i = 0; i < n; i++) {
		char path[4096];
		struct stat st;
		snprintf(path, sizeof path, "%s/%s", dir, names[i]);
		if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
			int r = run_file(path);
			if (r < 0)
				ran = -1;
			else if (ran >= 0)
				ran += r;
		}
		free(names[i]);
	}
	free(names);
	return ran;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s (file | directory)...\n", argv[0]);
		return 2;
	}
	if (LLVMFuzzerInitialize)
		LLVMFuzzerInitialize(&argc, &argv);
	int total = 0, status = 0;
	for (int i = 1; i < argc; i++) {
		struct stat st;
		int r;
		if (stat(argv[i], &st) != 0) {
			fprintf(stderr, "regress: %s: %s\n", argv[i], strerror(errno));
			r = -1;
		} else {
			r = S_ISDIR(st.st_mode) ? run_dir(argv[i]) : run_file(argv[i]);
		}
		if (r < 0)
			status = 1;
		else
			total += r;
	}
	if (total == 0) {
		fprintf(stderr, "regress: no input found\n");
		status = 1;
	}
	printf("%d inputs, %s\n", total, status ? "with errors" : "all passed");
	return status;
}
