/*
 * t_fault.h - what the fault-injection tests of tests/fault/ share: the fault
 * matrix (site, injected errno, whether it stays armed, the STRATA_E* code the
 * caller must get), and probes of what a failed call may have left behind
 * (descriptors, mappings, temporary directories). Test code only.
 *
 * The failpoints exist only in builds with -Dfailpoints=true; elsewhere every
 * test of this folder skips (Criterion skip: meson counts it as skipped).
 */
#ifndef STRATA_T_FAULT_H
#define STRATA_T_FAULT_H

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "failpoint.h"
#include "strata.h"

#if STRATA_FAILPOINTS
#define T_NEED_FAILPOINTS() ((void)0)
#else
#define T_NEED_FAILPOINTS() cr_skip_test("built without failpoints (-Dfailpoints=true)")
#endif

struct t_fault {
	enum fp_site site;
	int err;     /* errno to inject, or FP_SHORT */
	bool sticky; /* every call from the nth on fails (a full disk stays full) */
	int want;    /* the code the caller must see */
	const char *name;
};

/* The classes of failure every I/O path must survive (STYLE 2.9, SQLite's fault classes). */
static const struct t_fault t_faults[] = {
	{FP_OPEN, EIO, false, STRATA_EIO, "open EIO"},
	{FP_OPEN, EACCES, false, STRATA_EPERM, "open EACCES"},
	{FP_OPEN, EMFILE, false, STRATA_EIO, "open EMFILE"},
	{FP_WRITE, EIO, false, STRATA_EIO, "write EIO"},
	{FP_WRITE, FP_SHORT, false, STRATA_EIO, "write torn (FP_SHORT)"},
	{FP_WRITE, ENOSPC, true, STRATA_ENOSPC, "write ENOSPC (sticky)"},
	{FP_WRITE, EDQUOT, false, STRATA_ENOSPC, "write EDQUOT"},
	{FP_FSYNC, EIO, false, STRATA_EIO, "fsync EIO"},
	{FP_RENAME, EIO, false, STRATA_EIO, "rename EIO"},
	{FP_RENAME, ENOSPC, false, STRATA_ENOSPC, "rename ENOSPC"},
	{FP_MKDIR, EIO, false, STRATA_EIO, "mkdir EIO"},
	{FP_MKDIR, EACCES, false, STRATA_EPERM, "mkdir EACCES"},
	{FP_MMAP, ENOMEM, false, STRATA_ENOMEM, "mmap ENOMEM"},
	{FP_MMAP, EIO, false, STRATA_EIO, "mmap EIO"},
	{FP_READ, EIO, false, STRATA_EIO, "read EIO"},
	{FP_UNLINK, EIO, false, STRATA_EIO, "unlink EIO"},
};
#define T_FAULT_COUNT (sizeof t_faults / sizeof t_faults[0])

#if STRATA_FAILPOINTS
static inline void t_fault_arm(const struct t_fault *f, int n)
{
	fp_disarm_all();
	if (f->sticky)
		fp_arm_sticky(f->site, n, f->err);
	else
		fp_arm(f->site, n, f->err);
}
#endif

/* Open descriptors of this process (a failed call must not leak one). */
static inline int t_fd_count(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;
	if (!d)
		return -1;
	while (readdir(d))
		n++;
	closedir(d);
	return n - 1; /* opendir's own descriptor */
}

/* Lines of /proc/self/maps that map a file whose path contains `needle`. */
static inline int t_mappings_of(const char *needle)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[1024];
	int n = 0;
	if (!f)
		return -1;
	while (fgets(line, sizeof line, f))
		if (strstr(line, needle))
			n++;
	fclose(f);
	return n;
}

static inline bool t_exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

/* Entries of `dir` whose name starts with `prefix`; the first one's name to `first`. */
static inline int t_entries_with_prefix(const char *dir, const char *prefix, char *first,
                                        size_t first_len)
{
	DIR *d = opendir(dir);
	int n = 0;
	if (!d)
		return -1;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (strncmp(e->d_name, prefix, strlen(prefix)) == 0) {
			if (n == 0 && first)
				snprintf(first, first_len, "%s", e->d_name);
			n++;
		}
	}
	closedir(d);
	return n;
}

#endif /* STRATA_T_FAULT_H */
