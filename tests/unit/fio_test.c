/*
 * fio_test.c - the file I/O seam (format/fio.c) and its failpoints
 * (format/failpoint.c): each call's result and error code, the path in the
 * error detail, atomic replacement, and, in builds with failpoints, that an
 * armed failure reaches the caller with the right code and that FP_SHORT
 * leaves a torn file.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "failpoint.h"
#include "fio.h"
#include "t_support.h"

static bool exists(const char *path)
{
	return access(path, F_OK) == 0;
}

static void fill(uint8_t *b, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(i * 31 + seed);
}

Test(fio, open_missing_file_is_notfound_and_names_the_path)
{
	struct t_dir d = t_dir_new();
	char p[600];
	int fd = -7;
	int rc = fio_open(t_path(&d, "nope", p, sizeof p), O_RDONLY, 0, &fd);
	cr_assert_eq(rc, STRATA_ENOTFOUND);
	cr_assert_eq(fd, -7, "the output is written only on success");
	cr_assert(strstr(err_detail(), "open ") && strstr(err_detail(), p), "detail: %s", err_detail());
	cr_assert(strstr(err_detail(), "No such file"), "detail: %s", err_detail());
	t_dir_free(&d);
}

Test(fio, write_read_size_and_short_file)
{
	struct t_dir d = t_dir_new();
	char p[600];
	t_path(&d, "f", p, sizeof p);
	int fd;
	cr_assert_eq(fio_open(p, O_RDWR | O_CREAT | O_EXCL, 0644, &fd), 0, "%s", err_detail());
	uint8_t w[10000], r[10000];
	fill(w, sizeof w, 3);
	cr_assert_eq(fio_pwrite_all(fd, w, 6000, 0, p), 0);
	cr_assert_eq(fio_pwrite_all(fd, w + 6000, 4000, 6000, p), 0);
	cr_assert_eq(fio_fsync(fd, p), 0);
	cr_assert_eq(fio_fdatasync(fd, p), 0);
	uint64_t size = 0;
	cr_assert_eq(fio_file_size(fd, &size, p), 0);
	cr_assert_eq(size, 10000);
	cr_assert_eq(fio_pread_all(fd, r, sizeof r, 0, p), 0);
	cr_assert_eq(memcmp(w, r, sizeof r), 0);
	cr_assert_eq(fio_pread_all(fd, r, 100, 9950, p), STRATA_ETRUNCATED);
	cr_assert(strstr(err_detail(), "ends at 10000"), "detail: %s", err_detail());
	cr_assert_eq(fio_pread_all(fd, r, 0, 20000, p), 0, "an empty read past the end is fine");
	cr_assert_eq(fio_close(fd), 0);

	int fd2;
	cr_assert_eq(fio_open(p, O_RDWR | O_CREAT | O_EXCL, 0644, &fd2), STRATA_EEXIST);
	t_dir_free(&d);
}

Test(fio, names_rename_unlink_mkdir_rmdir)
{
	struct t_dir d = t_dir_new();
	char a[600], b[600], sub[600];
	t_path(&d, "a", a, sizeof a);
	t_path(&d, "b", b, sizeof b);
	t_path(&d, "sub", sub, sizeof sub);
	t_write_file(a, "x", 1);
	cr_assert_eq(fio_rename(a, b), 0);
	cr_assert(!exists(a) && exists(b));
	cr_assert_eq(fio_rename(a, b), STRATA_ENOTFOUND);
	cr_assert(strstr(err_detail(), "rename"), "detail: %s", err_detail());
	cr_assert_eq(fio_unlink(b), 0);
	cr_assert_eq(fio_unlink(b), STRATA_ENOTFOUND);
	cr_assert_eq(fio_mkdir(sub, 0755), 0);
	cr_assert_eq(fio_mkdir(sub, 0755), STRATA_EEXIST);
	cr_assert_eq(fio_fsync_dir(sub), 0);
	cr_assert_eq(fio_rmdir(sub), 0);
	cr_assert_eq(fio_rmdir(sub), STRATA_ENOTFOUND);
	cr_assert_eq(fio_fsync_dir(sub), STRATA_ENOTFOUND);
	t_dir_free(&d);
}

Test(fio, discard_keeps_the_first_error_detail)
{
	struct t_dir d = t_dir_new();
	char p[600];
	err_set(STRATA_EIO, "the real failure");
	cr_assert_eq(fio_discard(t_path(&d, "never-made", p, sizeof p)), 0);
	cr_assert_str_eq(err_detail(), "the real failure");
	t_write_file(p, "x", 1);
	cr_assert_eq(fio_discard(p), 0);
	cr_assert(!exists(p));
	cr_assert_str_eq(err_detail(), "the real failure");
	t_dir_free(&d);
}

Test(fio, mmap_maps_the_file_and_zero_length_maps_nothing)
{
	struct t_dir d = t_dir_new();
	char p[600];
	uint8_t w[5000];
	fill(w, sizeof w, 9);
	t_write_file(t_path(&d, "m", p, sizeof p), w, sizeof w);
	int fd;
	cr_assert_eq(fio_open(p, O_RDONLY, 0, &fd), 0);
	const void *m = (const void *)1;
	cr_assert_eq(fio_mmap_ro(fd, 0, p, &m), 0);
	cr_assert_null(m);
	cr_assert_eq(fio_mmap_ro(fd, sizeof w, p, &m), 0);
	cr_assert_eq(memcmp(m, w, sizeof w), 0);
	fio_munmap(m, sizeof w);
	fio_munmap(NULL, 0);
	cr_assert_eq(fio_close(fd), 0);
	t_dir_free(&d);
}

Test(fio, read_file_refuses_more_than_max_len)
{
	struct t_dir d = t_dir_new();
	char p[600];
	uint8_t w[300];
	fill(w, sizeof w, 1);
	t_write_file(t_path(&d, "r", p, sizeof p), w, sizeof w);
	uint8_t *buf = NULL;
	size_t len = 0;
	cr_assert_eq(fio_read_file(p, 300, &buf, &len), 0, "%s", err_detail());
	cr_assert_eq(len, 300);
	cr_assert_eq(memcmp(buf, w, 300), 0);
	free(buf);
	buf = NULL;
	cr_assert_eq(fio_read_file(p, 299, &buf, &len), STRATA_ELIMIT);
	cr_assert_null(buf);
	t_write_file(p, "", 0);
	cr_assert_eq(fio_read_file(p, 10, &buf, &len), 0);
	cr_assert_eq(len, 0);
	free(buf);
	cr_assert_eq(fio_read_file(t_path(&d, "none", p, sizeof p), 10, &buf, &len), STRATA_ENOTFOUND);
	t_dir_free(&d);
}

Test(fio, write_file_atomic_replaces_and_leaves_no_tmp)
{
	struct t_dir d = t_dir_new();
	char p[600], tmp[600];
	cr_assert_eq(fio_write_file_atomic(d.path, "F", "first", 5), 0, "%s", err_detail());
	cr_assert_eq(fio_write_file_atomic(d.path, "F", "second!", 7), 0, "%s", err_detail());
	struct t_blob b = t_read_file(t_path(&d, "F", p, sizeof p));
	cr_assert_eq(b.len, 7);
	cr_assert_eq(memcmp(b.data, "second!", 7), 0);
	free(b.data);
	cr_assert(!exists(t_path(&d, "F.tmp", tmp, sizeof tmp)));
	struct stat st;
	cr_assert_eq(stat(p, &st), 0);
	mode_t um = umask(0);
	umask(um);
	cr_assert_eq(st.st_mode & 0777, 0644 & ~um);
	cr_assert_eq(fio_write_file_atomic("/nonexistent-strata-dir", "F", "x", 1), STRATA_ENOTFOUND);
	t_dir_free(&d);
}

Test(fio, errno_values_map_to_codes)
{
	cr_assert_eq(err_from_errno(-ENOENT), STRATA_ENOTFOUND);
	cr_assert_eq(err_from_errno(-EEXIST), STRATA_EEXIST);
	cr_assert_eq(err_from_errno(-EACCES), STRATA_EPERM);
	cr_assert_eq(err_from_errno(-EPERM), STRATA_EPERM);
	cr_assert_eq(err_from_errno(-EROFS), STRATA_EPERM);
	cr_assert_eq(err_from_errno(-ENOSPC), STRATA_ENOSPC);
	cr_assert_eq(err_from_errno(-EDQUOT), STRATA_ENOSPC);
	cr_assert_eq(err_from_errno(-ENOMEM), STRATA_ENOMEM);
	cr_assert_eq(err_from_errno(-EFBIG), STRATA_ELIMIT);
	cr_assert_eq(err_from_errno(-EIO), STRATA_EIO);
	cr_assert_eq(err_from_errno(-EBADF), STRATA_EIO);
	cr_assert_eq(err_from_errno(-FP_SHORT), STRATA_EIO);
	cr_assert_eq(err_from_errno(ENOENT), STRATA_ENOTFOUND, "a positive errno is tolerated");
}

/* ---- failpoints ----------------------------------------------------------------- */

#if STRATA_FAILPOINTS
#define NEED_FAILPOINTS() ((void)0)
#else
#define NEED_FAILPOINTS() cr_skip_test("built without failpoints (-Dfailpoints=true)")
#endif

Test(fio, failpoint_nth_call_fails_with_the_armed_code)
{
	NEED_FAILPOINTS();
#if STRATA_FAILPOINTS
	struct t_dir d = t_dir_new();
	char p[600];
	t_path(&d, "f", p, sizeof p);
	int fd;
	fp_arm(FP_OPEN, 1, EACCES);
	cr_assert_eq(fio_open(p, O_RDWR | O_CREAT, 0644, &fd), STRATA_EPERM);
	cr_assert(strstr(err_detail(), p), "detail: %s", err_detail());
	cr_assert(!exists(p), "an injected failure happens before the call");
	cr_assert_eq(fio_open(p, O_RDWR | O_CREAT, 0644, &fd), 0, "only the nth call fails");
	cr_assert_eq(fp_hits(FP_OPEN), 2);

	uint8_t w[64] = {1};
	fp_arm(FP_WRITE, 3, ENOSPC);
	cr_assert_eq(fio_pwrite_all(fd, w, 64, 0, p), 0);
	cr_assert_eq(fio_pwrite_all(fd, w, 64, 64, p), 0);
	cr_assert_eq(fio_pwrite_all(fd, w, 64, 128, p), STRATA_ENOSPC);
	cr_assert_eq(fio_pwrite_all(fd, w, 64, 128, p), 0);
	cr_assert_eq(fp_hits(FP_WRITE), 4);

	fp_arm(FP_FSYNC, 1, EIO);
	cr_assert_eq(fio_fsync(fd, p), STRATA_EIO);
	fp_arm(FP_FSYNC, 1, EIO);
	cr_assert_eq(fio_fdatasync(fd, p), STRATA_EIO);
	fp_arm(FP_READ, 2, EIO);
	cr_assert_eq(fio_pread_all(fd, w, 8, 0, p), 0);
	cr_assert_eq(fio_pread_all(fd, w, 8, 0, p), STRATA_EIO);
	fp_arm(FP_MMAP, 1, ENOMEM);
	const void *m;
	cr_assert_eq(fio_mmap_ro(fd, 64, p, &m), STRATA_ENOMEM);
	fp_arm(FP_UNLINK, 1, EROFS);
	cr_assert_eq(fio_unlink(p), STRATA_EPERM);
	cr_assert(exists(p));
	fp_arm(FP_MKDIR, 1, EDQUOT);
	cr_assert_eq(fio_mkdir(t_path(&d, "sub", p, sizeof p), 0755), STRATA_ENOSPC);
	fp_arm(FP_RENAME, 1, EIO);
	cr_assert_eq(fio_rename(p, p), STRATA_EIO);
	fp_disarm_all();
	cr_assert_eq(fp_hits(FP_WRITE), 0);
	cr_assert_eq(fio_close(fd), 0);
	t_dir_free(&d);
#endif
}

Test(fio, failpoint_sticky_keeps_failing)
{
	NEED_FAILPOINTS();
#if STRATA_FAILPOINTS
	struct t_dir d = t_dir_new();
	char p[600];
	int fd;
	cr_assert_eq(fio_open(t_path(&d, "f", p, sizeof p), O_RDWR | O_CREAT, 0644, &fd), 0);
	fp_arm_sticky(FP_WRITE, 2, ENOSPC);
	cr_assert_eq(fio_pwrite_all(fd, "a", 1, 0, p), 0);
	for (int i = 0; i < 5; i++)
		cr_assert_eq(fio_pwrite_all(fd, "a", 1, 0, p), STRATA_ENOSPC);
	fp_disarm_all();
	cr_assert_eq(fio_pwrite_all(fd, "a", 1, 0, p), 0);
	fio_close(fd);
	t_dir_free(&d);
#endif
}

Test(fio, failpoint_short_write_tears_the_file)
{
	NEED_FAILPOINTS();
#if STRATA_FAILPOINTS
	struct t_dir d = t_dir_new();
	char p[600];
	int fd;
	cr_assert_eq(fio_open(t_path(&d, "torn", p, sizeof p), O_RDWR | O_CREAT, 0644, &fd), 0);
	uint8_t w[1000];
	fill(w, sizeof w, 5);
	fp_arm(FP_WRITE, 1, FP_SHORT);
	cr_assert_eq(fio_pwrite_all(fd, w, sizeof w, 0, p), STRATA_EIO);
	cr_assert(strstr(err_detail(), "torn"), "detail: %s", err_detail());
	fio_close(fd);
	struct t_blob b = t_read_file(p);
	cr_assert_eq(b.len, 500, "half of the write landed");
	cr_assert_eq(memcmp(b.data, w, 500), 0);
	free(b.data);
	t_dir_free(&d);
#endif
}

Test(fio, failpoint_atomic_write_keeps_the_old_file)
{
	NEED_FAILPOINTS();
#if STRATA_FAILPOINTS
	const enum fp_site sites[] = {FP_OPEN, FP_WRITE, FP_FSYNC, FP_RENAME};
	for (size_t s = 0; s < 4; s++) {
		for (int n = 1;; n++) {
			struct t_dir d = t_dir_new();
			char p[600], tmp[600];
			cr_assert_eq(fio_write_file_atomic(d.path, "F", "old", 3), 0);
			fp_arm(sites[s], n, sites[s] == FP_WRITE ? FP_SHORT : EIO);
			int rc = fio_write_file_atomic(d.path, "F", "new-contents", 12);
			bool hit = fp_hits(sites[s]) >= n;
			fp_disarm_all();
			struct t_blob b = t_read_file(t_path(&d, "F", p, sizeof p));
			bool is_old = b.len == 3 && !memcmp(b.data, "old", 3);
			bool is_new = b.len == 12 && !memcmp(b.data, "new-contents", 12);
			cr_assert(is_old || is_new, "site %d n %d: a torn file is visible", sites[s], n);
			cr_assert(!exists(t_path(&d, "F.tmp", tmp, sizeof tmp)), "site %d n %d: tmp left",
			          sites[s], n);
			free(b.data);
			t_dir_free(&d);
			if (!hit) {
				cr_assert_eq(rc, 0);
				cr_assert(is_new);
				break;
			}
			cr_assert_eq(rc, STRATA_EIO, "site %d n %d: rc %d (%s)", sites[s], n, rc, err_detail());
		}
	}
#endif
}

#if STRATA_FAILPOINTS
static void *hammer(void *arg)
{
	(void)arg;
	for (int i = 0; i < 10000; i++)
		fp_inject(FP_READ);
	return NULL;
}
#endif

Test(fio, failpoints_count_every_thread_and_fail_exactly_once)
{
	NEED_FAILPOINTS();
#if STRATA_FAILPOINTS
	fp_arm(FP_READ, 1000000, EIO); /* beyond the hammering: counts only */
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, hammer, NULL), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	cr_assert_eq(fp_hits(FP_READ), 40000);
	fp_arm(FP_READ, 5, EIO);
	int fails = 0;
	for (int i = 0; i < 100; i++)
		fails += fp_inject(FP_READ) == -EIO;
	cr_assert_eq(fails, 1);
	fp_disarm_all();
#endif
}

Test(fio, ftruncate_cuts_and_extends_with_zeros_and_fails_through_fp_write)
{
	struct t_dir d = t_dir_new();
	char p[600];
	t_path(&d, "f", p, sizeof p);
	int fd;
	cr_assert_eq(fio_open(p, O_RDWR | O_CREAT | O_EXCL, 0644, &fd), 0, "%s", err_detail());
	cr_assert_eq(fio_pwrite_all(fd, "0123456789", 10, 0, p), 0);
	cr_assert_eq(fio_ftruncate(fd, 4, p), 0, "%s", err_detail());
	uint64_t size = 0;
	cr_assert_eq(fio_file_size(fd, &size, p), 0);
	cr_assert_eq(size, 4);
	cr_assert_eq(fio_ftruncate(fd, 6, p), 0);
	char buf[6];
	cr_assert_eq(fio_pread_all(fd, buf, 6, 0, p), 0);
	cr_assert(memcmp(buf, "0123\0\0", 6) == 0);
	cr_assert_eq(fio_ftruncate(fd, (uint64_t)INT64_MAX + 1, p), STRATA_ELIMIT);
#if STRATA_FAILPOINTS
	fp_arm(FP_WRITE, 1, EIO);
	cr_assert_eq(fio_ftruncate(fd, 0, p), STRATA_EIO);
	cr_assert(strstr(err_detail(), "truncate") && strstr(err_detail(), p), "%s", err_detail());
	fp_arm(FP_WRITE, 1, FP_SHORT); /* no half truncate: a plain failure */
	cr_assert_eq(fio_ftruncate(fd, 0, p), STRATA_EIO);
	fp_disarm_all();
	cr_assert_eq(fio_file_size(fd, &size, p), 0);
	cr_assert_eq(size, 6, "a failed truncate changed nothing");
#endif
	int rofd;
	cr_assert_eq(fio_open(p, O_RDONLY, 0, &rofd), 0);
	cr_assert_eq(fio_ftruncate(rofd, 0, p) < 0, true, "a read-only descriptor cannot truncate");
	fio_close(rofd);
	fio_close(fd);
	t_dir_free(&d);
}

/*
 * Errors the operating system itself reports (no failpoint): each call maps
 * errno to its code and names the path and the reason; spans past the
 * largest file offset are refused before any system call.
 */
Test(fio, real_os_errors_are_mapped_and_name_the_path)
{
	struct t_dir d = t_dir_new();
	char p[600], q[600];
	t_path(&d, "f", p, sizeof p);
	t_write_file(p, "0123456789", 10);
	uint8_t buf[16];
	int fd;

	/* Writes through a read-only descriptor: EBADF -> STRATA_EIO, naming the file. */
	cr_assert_eq(fio_open(p, O_RDONLY, 0, &fd), 0);
	cr_assert_eq(fio_pwrite_all(fd, "x", 1, 0, p), STRATA_EIO);
	cr_assert(strstr(err_detail(), "write") && strstr(err_detail(), p) &&
	          strstr(err_detail(), strerror(EBADF)), "%s", err_detail());
	cr_assert_eq(fio_write_all(fd, "x", 1, p), STRATA_EIO);
	cr_assert(strstr(err_detail(), strerror(EBADF)), "%s", err_detail());
	cr_assert_eq(fio_ftruncate(fd, 3, p), STRATA_EIO, "%s", err_detail());
	/* A mapping needs read access only: this one works; one of a write-only descriptor does not. */
	const void *m;
	cr_assert_eq(fio_mmap_ro(fd, 10, p, &m), 0);
	fio_munmap(m, 10);
	cr_assert_eq(fio_close(fd), 0);
	cr_assert_eq(fio_open(p, O_WRONLY, 0, &fd), 0);
	cr_assert_eq(fio_mmap_ro(fd, 10, p, &m), STRATA_EPERM, "%s", err_detail());
	cr_assert(strstr(err_detail(), "mmap") && strstr(err_detail(), p), "%s", err_detail());
	size_t n = 99;
	cr_assert_eq(fio_read(fd, buf, sizeof buf, &n, p), STRATA_EIO);
	cr_assert_eq(n, 99, "a failed read wrote *n_out");
	cr_assert_eq(fio_pread_all(fd, buf, 4, 0, p), STRATA_EIO);
	cr_assert(strstr(err_detail(), "read") && strstr(err_detail(), p), "%s", err_detail());

	/* Spans past INT64_MAX: STRATA_ELIMIT before the system is asked. */
	cr_assert_eq(fio_pwrite_all(fd, "x", 1, (uint64_t)INT64_MAX, p), STRATA_ELIMIT);
	cr_assert_eq(fio_pwrite_all(fd, "xy", 2, (uint64_t)INT64_MAX - 1, p), STRATA_ELIMIT);
	cr_assert_eq(fio_pread_all(fd, buf, 1, UINT64_MAX, p), STRATA_ELIMIT);
	cr_assert_eq(fio_ftruncate(fd, UINT64_MAX, p), STRATA_ELIMIT);
	cr_assert(strstr(err_detail(), "largest file offset"), "%s", err_detail());
	cr_assert_eq(fio_close(fd), 0);

	/* A directory where a file is expected. */
	cr_assert_eq(fio_open(d.path, O_RDONLY | O_DIRECTORY, 0, &fd), 0);
	cr_assert_eq(fio_pread_all(fd, buf, 1, 0, d.path), STRATA_EIO);
	cr_assert(strstr(err_detail(), strerror(EISDIR)), "%s", err_detail());
	cr_assert_eq(fio_read(fd, buf, 1, &n, d.path), STRATA_EIO);
	cr_assert_eq(fio_close(fd), 0);
	uint8_t *all;
	size_t all_len;
	cr_assert_eq(fio_read_file(d.path, 1 << 20, &all, &all_len), STRATA_EIO, "%s", err_detail());

	/* A descriptor that is not open. */
	cr_assert_eq(fio_close(-1), STRATA_EIO);
	cr_assert(strstr(err_detail(), "close"), "%s", err_detail());
	uint64_t size;
	cr_assert_eq(fio_file_size(-1, &size, p), STRATA_EIO);
	cr_assert_eq(fio_fsync(-1, p), STRATA_EIO);
	cr_assert(strstr(err_detail(), "fsync"), "%s", err_detail());
	cr_assert_eq(fio_fdatasync(-1, p), STRATA_EIO);

	/* Names: a directory that is not empty, a parent that does not exist, an existing name. */
	cr_assert_eq(fio_rmdir(d.path), STRATA_EIO);
	cr_assert(strstr(err_detail(), strerror(ENOTEMPTY)), "%s", err_detail());
	t_path(&d, "no/such", q, sizeof q);
	cr_assert_eq(fio_mkdir(q, 0755), STRATA_ENOTFOUND);
	cr_assert_eq(fio_unlink(q), STRATA_ENOTFOUND);
	cr_assert_eq(fio_rename(p, q), STRATA_ENOTFOUND);
	cr_assert(strstr(err_detail(), "rename") && strstr(err_detail(), q), "%s", err_detail());
	cr_assert_eq(fio_mkdir(d.path, 0755), STRATA_EEXIST);
	cr_assert_eq(fio_fsync_dir(q), STRATA_ENOTFOUND);
	cr_assert_eq(fio_free_bytes(q, &size), STRATA_ENOTFOUND);
	cr_assert(strstr(err_detail(), "statvfs"), "%s", err_detail());
	char tmpl[700];
	snprintf(tmpl, sizeof tmpl, "%s/XXXXXX", q);
	cr_assert_eq(fio_mkdtemp(tmpl), STRATA_ENOTFOUND);
	cr_assert_eq(fio_write_file_atomic(q, "x", "1", 1), STRATA_ENOTFOUND);
	/* Paths too long for the seam's buffers: refused, nothing created. */
	char longdir[5000];
	memset(longdir, 'a', sizeof longdir - 1);
	longdir[sizeof longdir - 1] = '\0';
	cr_assert_eq(fio_write_file_atomic(longdir, "x", "1", 1), STRATA_EINVAL);

	/* A write into a pipe nobody reads: EPIPE (the signal ignored, as a server would). */
	int pp[2];
	cr_assert_eq(pipe(pp), 0);
	close(pp[0]);
	signal(SIGPIPE, SIG_IGN);
	cr_assert_eq(fio_write_all(pp[1], "x", 1, "pipe"), STRATA_EIO);
	cr_assert(strstr(err_detail(), strerror(EPIPE)), "%s", err_detail());
	close(pp[1]);
	t_dir_free(&d);
}
