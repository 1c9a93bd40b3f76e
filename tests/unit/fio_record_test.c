/*
 * fio_record_test.c - the power-loss recorder of the I/O seam
 * (format/fio_record.c): what survives a simulated power loss (only synced
 * contents under names made durable by a directory sync), crash points that
 * stop the machine, torn writes, and that it can fail a test: the manifest
 * commit of fio_write_file_atomic survives every crash point, while variants
 * missing a sync are caught. Skipped in builds without failpoints.
 */
#include <criterion/criterion.h>

#if !STRATA_FAILPOINTS

Test(fio_record, needs_failpoints)
{
	cr_skip_test("built without failpoints (-Dfailpoints=true)");
}

#else

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "fio.h"
#include "fio_record.h"
#include "t_support.h"

#define P(d, name, buf) t_path((d), (name), (buf), sizeof(buf))

static bool exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

/* Create (or truncate) `path` with `s`, optionally fsynced; the directory is not synced. */
static void put(const char *path, const char *s, bool sync)
{
	int fd;
	cr_assert_eq(fio_open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644, &fd), 0, "%s", err_detail());
	cr_assert_eq(fio_pwrite_all(fd, s, strlen(s), 0, path), 0, "%s", err_detail());
	if (sync)
		cr_assert_eq(fio_fsync(fd, path), 0, "%s", err_detail());
	cr_assert_eq(fio_close(fd), 0);
}

static void append(const char *path, const char *s, bool sync)
{
	int fd;
	cr_assert_eq(fio_open(path, O_WRONLY | O_APPEND, 0, &fd), 0, "%s", err_detail());
	cr_assert_eq(fio_write_all(fd, s, strlen(s), path), 0, "%s", err_detail());
	if (sync)
		cr_assert_eq(fio_fdatasync(fd, path), 0, "%s", err_detail());
	cr_assert_eq(fio_close(fd), 0);
}

/* The file holds exactly `want`. */
static void expect(const char *path, const char *want)
{
	struct t_blob b = t_read_file(path);
	cr_assert(b.data, "%s is missing", path);
	cr_assert(b.len == strlen(want) && memcmp(b.data, want, b.len) == 0,
	          "%s holds %zu bytes \"%.*s\", want \"%s\"", path, b.len, (int)b.len, (char *)b.data,
	          want);
	free(b.data);
}

static void powerloss(void)
{
	cr_assert_eq(fio_record_powerloss(), 0, "%s", err_detail());
}

Test(fio_record, fsynced_file_whose_creation_was_not_dir_synced_vanishes)
{
	struct t_dir d = t_dir_new();
	char f[700];
	cr_assert_eq(fio_record_start(d.path), 0, "%s", err_detail());
	put(P(&d, "a", f), "hello", true);
	powerloss();
	cr_assert(!exists(f), "the name was never made durable");
	t_dir_free(&d);
}

Test(fio_record, dir_sync_makes_the_creation_durable_with_the_fsynced_content)
{
	struct t_dir d = t_dir_new();
	char f[700], g[700];
	cr_assert_eq(fio_record_start(d.path), 0, "%s", err_detail());
	put(P(&d, "a", f), "hello", true);
	put(P(&d, "never-synced", g), "lost", false);
	cr_assert_eq(fio_fsync_dir(d.path), 0, "%s", err_detail());
	powerloss();
	expect(f, "hello");
	expect(g, ""); /* a durable name, but none of its content was ever synced */
	t_dir_free(&d);
}

Test(fio_record, unsynced_appends_and_overwrites_after_an_fsync_are_lost)
{
	struct t_dir d = t_dir_new();
	char f[700];
	P(&d, "log", f);
	cr_assert_eq(fio_record_start(d.path), 0, "%s", err_detail());
	put(f, "one,", true);
	cr_assert_eq(fio_fsync_dir(d.path), 0);
	append(f, "two,", true);
	append(f, "three,", false);
	int fd;
	cr_assert_eq(fio_open(f, O_WRONLY, 0, &fd), 0);
	cr_assert_eq(fio_pwrite_all(fd, "ONE", 3, 0, f), 0);
	cr_assert_eq(fio_close(fd), 0);
	expect(f, "ONE,two,three,"); /* the process sees everything */
	powerloss();
	expect(f, "one,two,");
	t_dir_free(&d);
}

Test(fio_record, rename_without_dir_sync_is_undone_and_with_it_stays)
{
	struct t_dir d = t_dir_new();
	char a[700], b[700], c[700];
	P(&d, "a", a);
	P(&d, "b", b);
	P(&d, "c", c);
	put(a, "A", true);
	put(c, "C", true);
	cr_assert_eq(fio_record_start(d.path), 0, "%s", err_detail());
	cr_assert_eq(fio_rename(a, b), 0);
	powerloss();
	expect(a, "A");
	cr_assert(!exists(b), "the rename was not made durable");

	cr_assert_eq(fio_record_start(d.path), 0, "%s", err_detail());
	cr_assert_eq(fio_rename(a, b), 0);
	cr_assert_eq(fio_rename(c, a), 0); /* replaces: a now names C's file */
	cr_assert_eq(fio_fsync_dir(d.path), 0);
	powerloss();
	expect(b, "A");
	expect(a, "C");
	cr_assert(!exists(c));
	t_dir_free(&d);
}

Test(fio_record, a_rename_across_directories_synced_on_one_side_leaves_two_names)
{
	struct t_dir d = t_dir_new();
	char a[700], b[700], fa[800], fb[800];
	P(&d, "a", a);
	P(&d, "b", b);
	cr_assert_eq(mkdir(a, 0755), 0);
	cr_assert_eq(mkdir(b, 0755), 0);
	snprintf(fa, sizeof fa, "%s/f", a);
	snprintf(fb, sizeof fb, "%s/f", b);
	put(fa, "F", true);
	cr_assert_eq(fio_record_start(d.path), 0, "%s", err_detail());
	cr_assert_eq(fio_rename(fa, fb), 0);
	cr_assert_eq(fio_fsync_dir(b), 0); /* a was never synced: its entry stays */
	powerloss();
	expect(fa, "F");
	expect(fb, "F");
	struct stat sa, sb;
	cr_assert(stat(fa, &sa) == 0 && stat(fb, &sb) == 0 && sa.st_ino == sb.st_ino,
	          "one file under two names: a hard link");
	t_dir_free(&d);
}

Test(fio_record, renames_into_and_out_of_the_root)
{
	struct t_dir d = t_dir_new(), o = t_dir_new();
	char in[700], out[700], x[700], y[700];
	P(&d, "in", in);
	P(&o, "out", out);
	P(&d, "x", x);
	P(&o, "y", y);
	t_write_file(out, "from outside", 12);
	put(x, "X", true);
	cr_assert_eq(fio_record_start(d.path), 0, "%s", err_detail());
	cr_assert_eq(fio_rename(out, in), 0); /* content as it is, name not yet durable */
	cr_assert_eq(fio_rename(x, y), 0);    /* leaves the root: an unlink for the model */
	powerloss();
	cr_assert(!exists(in));
	expect(x, "X");

	t_write_file(out, "from outside", 12);
	unlink(y);
	cr_assert_eq(fio_record_start(d.path), 0, "%s", err_detail());
	cr_assert_eq(fio_rename(out, in), 0);
	cr_assert_eq(fio_rename(x, y), 0);
	cr_assert_eq(fio_fsync_dir(d.path), 0);
	powerloss();
	expect(in, "from outside");
	cr_assert(!exists(x));
	t_dir_free(&d);
	t_dir_free(&o);
}

Test(fio_record, unlink_without_dir_sync_is_undone)
{
	struct t_dir d = t_dir_new();
	char a[700], b[700];
	put(P(&d, "a", a), "A", true);
	put(P(&d, "b", b), "B", true);
	cr_assert_eq(fio_record_start(d.path), 0, "%s", err_detail());
	cr_assert_eq(fio_unlink(a), 0);
	cr_assert_eq(fio_discard(b), 0);
	cr_assert_eq(fio_discard(b), 0, "discarding a missing file is success");
	cr_assert(!exists(a) && !exists(b));
	powerloss();
	expect(a, "A");
	expect(b, "B");
	t_dir_free(&d);
}

Test(fio_record, a_subdirectory_needs_its_parent_synced_and_its_files_need_it)
{
	struct t_dir d = t_dir_new();
	char sub[700], f[800];
	P(&d, "sub", sub);
	snprintf(f, sizeof f, "%s/f", sub);
	cr_assert_eq(fio_record_start(d.path), 0, "%s", err_detail());
	cr_assert_eq(fio_mkdir(sub, 0755), 0);
	put(f, "F", true);
	cr_assert_eq(fio_fsync_dir(sub), 0);
	powerloss(); /* the parent was never synced: sub and all in it vanish */
	cr_assert(!exists(sub));

	cr_assert_eq(fio_record_start(d.path), 0, "%s", err_detail());
	cr_assert_eq(fio_mkdir(sub, 0755), 0);
	put(f, "F", true);
	cr_assert_eq(fio_fsync_dir(d.path), 0);
	powerloss(); /* sub survives, empty: its own entries were never synced */
	cr_assert(exists(sub) && !exists(f));

	cr_assert_eq(fio_record_start(d.path), 0, "%s", err_detail());
	put(f, "F", true);
	cr_assert_eq(fio_fsync_dir(sub), 0);
	cr_assert_eq(fio_rmdir(sub) == 0, false, "not empty");
	powerloss();
	expect(f, "F");
	t_dir_free(&d);
}

Test(fio_record, mkdtemp_then_rename_into_place_is_durable_only_after_the_parent_sync)
{
	struct t_dir d = t_dir_new();
	char tmp[700], dst[700], f[800];
	snprintf(tmp, sizeof tmp, "%s/.build-XXXXXX", d.path);
	P(&d, "db", dst);
	cr_assert_eq(fio_record_start(d.path), 0, "%s", err_detail());
	cr_assert_eq(fio_mkdtemp(tmp), 0);
	snprintf(f, sizeof f, "%s/MANIFEST", tmp);
	put(f, "M", true);
	cr_assert_eq(fio_fsync_dir(tmp), 0);
	cr_assert_eq(fio_rename(tmp, dst), 0);
	uint64_t before_sync = fio_record_ops();
	cr_assert_eq(fio_fsync_dir(d.path), 0);
	cr_assert_eq(fio_record_ops(), before_sync + 1, "a directory sync is one op");
	powerloss();
	snprintf(f, sizeof f, "%s/MANIFEST", dst);
	expect(f, "M");
	cr_assert(!exists(tmp));
	t_dir_free(&d);
}

Test(fio_record, ftruncate_and_o_trunc_are_durable_only_after_fsync)
{
	struct t_dir d = t_dir_new();
	char f[700], g[700];
	put(P(&d, "wal", f), "0123456789", true);
	put(P(&d, "g", g), "gggg", true);
	cr_assert_eq(fio_record_start(d.path), 0, "%s", err_detail());
	int fd;
	cr_assert_eq(fio_open(f, O_RDWR, 0, &fd), 0);
	cr_assert_eq(fio_ftruncate(fd, 4, f), 0, "%s", err_detail());
	put(g, "h", false); /* O_TRUNC, then one unsynced byte */
	powerloss();
	expect(f, "0123456789");
	expect(g, "gggg");
	close(fd);

	cr_assert_eq(fio_record_start(d.path), 0, "%s", err_detail());
	cr_assert_eq(fio_open(f, O_RDWR, 0, &fd), 0);
	cr_assert_eq(fio_ftruncate(fd, 4, f), 0);
	cr_assert_eq(fio_fsync(fd, f), 0);
	cr_assert_eq(fio_ftruncate(fd, 12, f), 0); /* extends with zeros, unsynced */
	cr_assert_eq(fio_close(fd), 0);
	put(g, "h", true);
	powerloss();
	expect(f, "0123");
	expect(g, "h");
	t_dir_free(&d);
}

Test(fio_record, descriptors_follow_their_file_through_renames_and_unlinks)
{
	struct t_dir d = t_dir_new();
	char a[700], b[700], c[700];
	P(&d, "a", a);
	P(&d, "b", b);
	put(P(&d, "c", c), "old", true);
	int fd, cfd;
	cr_assert_eq(fio_open(c, O_RDWR, 0, &cfd), 0); /* opened before the recording */
	cr_assert_eq(fio_record_start(d.path), 0, "%s", err_detail());
	cr_assert_eq(fio_open(a, O_RDWR | O_CREAT | O_EXCL, 0644, &fd), 0);
	cr_assert_eq(fio_rename(a, b), 0);
	cr_assert_eq(fio_pwrite_all(fd, "via fd", 6, 0, a), 0);
	cr_assert_eq(fio_fsync(fd, a), 0);
	cr_assert_eq(fio_close(fd), 0);
	cr_assert_eq(fio_pwrite_all(cfd, "new", 3, 0, c), 0);
	cr_assert_eq(fio_fsync(cfd, c), 0);
	cr_assert_eq(fio_unlink(c), 0);
	cr_assert_eq(fio_pwrite_all(cfd, "NEW", 3, 0, c), 0); /* the descriptor still has the file */
	cr_assert_eq(fio_close(cfd), 0);
	cr_assert_eq(fio_fsync_dir(d.path), 0); /* now b is durable and c's unlink too */
	powerloss();
	expect(b, "via fd");
	cr_assert(!exists(a) && !exists(c));
	t_dir_free(&d);
}

Test(fio_record, what_existed_at_start_is_durable_and_comes_back)
{
	struct t_dir d = t_dir_new();
	char sub[700], f[800], g[700];
	P(&d, "sub", sub);
	cr_assert_eq(mkdir(sub, 0755), 0);
	snprintf(f, sizeof f, "%s/seg", sub);
	put(f, "segment bytes", false);
	cr_assert_eq(fio_record_start(d.path), 0, "%s", err_detail());
	append(f, " and more", false);
	put(P(&d, "new", g), "x", true);
	powerloss();
	expect(f, "segment bytes");
	cr_assert(!exists(g));
	cr_assert_eq(fio_record_powerloss(), STRATA_EINVAL, "not recording any more");
	t_dir_free(&d);
}

Test(fio_record, start_refuses_what_it_cannot_model)
{
	struct t_dir d = t_dir_new();
	char f[700], l[700];
	put(P(&d, "f", f), "x", false);
	cr_assert_eq(symlink(f, P(&d, "link", l)), 0);
	cr_assert_eq(fio_record_start(d.path), STRATA_EINVAL);
	cr_assert(strstr(err_detail(), "link"), "%s", err_detail());
	cr_assert_eq(fio_record_start(f), STRATA_EINVAL, "not a directory");
	unlink(l);
	cr_assert_eq(fio_record_start(d.path), 0, "%s", err_detail());
	cr_assert_eq(fio_record_start(d.path), STRATA_EINVAL, "already recording");
	fio_record_stop();
	t_dir_free(&d);
}

Test(fio_record, crash_point_stops_every_later_mutation_and_is_not_counted)
{
	struct t_dir d = t_dir_new();
	char a[700], b[700], out[700];
	P(&d, "a", a);
	P(&d, "b", b);
	struct t_dir o = t_dir_new(); /* outside the root: never touched by the recorder */
	P(&o, "out", out);
	cr_assert_eq(fio_record_start(d.path), 0, "%s", err_detail());
	fio_record_crash_after(3);
	int fd;
	cr_assert_eq(fio_open(a, O_WRONLY | O_CREAT, 0644, &fd), 0); /* op 1 */
	cr_assert_eq(fio_pwrite_all(fd, "abc", 3, 0, a), 0);         /* op 2 */
	cr_assert_eq(fio_record_ops(), 2);
	cr_assert(!fio_record_crashed());
	cr_assert_eq(fio_fsync(fd, a), STRATA_EIO); /* op 3: the machine dies */
	cr_assert(strstr(err_detail(), "power lost"), "%s", err_detail());
	cr_assert(fio_record_crashed());
	cr_assert_eq(fio_pwrite_all(fd, "d", 1, 3, a), STRATA_EIO);
	cr_assert_eq(fio_ftruncate(fd, 0, a), STRATA_EIO);
	cr_assert_eq(fio_rename(a, b), STRATA_EIO);
	cr_assert_eq(fio_unlink(a), STRATA_EIO);
	cr_assert_eq(fio_mkdir(b, 0755), STRATA_EIO);
	cr_assert_eq(fio_fsync_dir(d.path), STRATA_EIO);
	int fd2 = -1;
	cr_assert_eq(fio_open(b, O_WRONLY | O_CREAT, 0644, &fd2), STRATA_EIO);
	cr_assert_eq(fio_close(fd), 0, "closing still works");
	cr_assert_eq(fio_open(a, O_RDONLY, 0, &fd), 0, "so does reading what the cache holds");
	char buf[4] = {0};
	cr_assert_eq(fio_pread_all(fd, buf, 3, 0, a), 0);
	cr_assert_str_eq(buf, "abc");
	cr_assert_eq(fio_close(fd), 0);
	cr_assert(exists(a) && !exists(b), "nothing after the crash point reached the disk");
	put(out, "outside", true);
	cr_assert_eq(fio_record_ops(), 2);
	powerloss();
	cr_assert(!exists(a));
	expect(out, "outside");
	t_dir_free(&d);
	t_dir_free(&o);
}

Test(fio_record, io_uring_writes_and_syncs_reported_by_note_are_recorded)
{
	struct t_dir d = t_dir_new();
	char f[700];
	P(&d, "wal-1", f);
	cr_assert_eq(fio_record_start(d.path), 0, "%s", err_detail());
	int fd;
	cr_assert_eq(fio_open(f, O_RDWR | O_CREAT, 0644, &fd), 0);
	cr_assert_eq(fio_fsync_dir(d.path), 0);
	/* As wal_uring.c does: the write happens outside the seam, then is reported. */
	cr_assert_eq(pwrite(fd, "rec1", 4, 0), 4);
	fio_note_write(fd, "rec1", 4, 0);
	cr_assert_eq(fdatasync(fd), 0);
	fio_note_sync(fd);
	cr_assert_eq(pwrite(fd, "rec2", 4, 4), 4);
	fio_note_write(fd, "rec2", 4, 4);
	uint64_t ops = fio_record_ops();
	fio_record_crash_after(ops + 1);
	cr_assert_eq(fdatasync(fd), 0);
	fio_note_sync(fd); /* the machine died before this sync: it does not count */
	cr_assert(fio_record_crashed());
	cr_assert_eq(fio_record_ops(), ops);
	cr_assert_eq(fio_close(fd), 0);
	powerloss();
	expect(f, "rec1");
	t_dir_free(&d);
}

Test(fio_record, a_file_past_the_models_limit_makes_powerloss_refuse)
{
	struct t_dir d = t_dir_new();
	char f[700];
	cr_assert_eq(fio_record_start(d.path), 0, "%s", err_detail());
	int fd;
	cr_assert_eq(fio_open(P(&d, "sparse", f), O_WRONLY | O_CREAT, 0644, &fd), 0);
	cr_assert_eq(fio_pwrite_all(fd, "x", 1, (uint64_t)1 << 31, f), 0, "%s", err_detail());
	fio_close(fd);
	cr_assert_eq(fio_record_powerloss(), STRATA_ENOMEM, "the model lost track: no pretending");
	cr_assert(strstr(err_detail(), "lost track"), "%s", err_detail());
	cr_assert(exists(f), "a refused power loss leaves the files alone");
	t_dir_free(&d);
}

/* ---- torn writes ---- */

static void torn_write_check(enum fio_tear tear)
{
	char old[1000], w[3000];
	memset(old, 'o', sizeof old);
	for (size_t i = 0; i < sizeof w; i++)
		w[i] = (char)('a' + i % 26);
	int nonzero = 0;
	for (uint64_t seed = 1; seed <= 40; seed++) {
		struct t_dir d = t_dir_new();
		char f[700];
		P(&d, "f", f);
		t_write_file(f, old, sizeof old);
		cr_assert_eq(fio_record_start(d.path), 0, "%s", err_detail());
		fio_record_set_tear(tear, seed);
		fio_record_crash_after(2);
		int fd;
		cr_assert_eq(fio_open(f, O_WRONLY, 0, &fd), 0);
		cr_assert_eq(fio_pwrite_all(fd, "X", 1, 0, f), 0); /* op 1: unsynced, lost */
		cr_assert_eq(fio_pwrite_all(fd, w, sizeof w, sizeof old, f), STRATA_EIO); /* op 2 dies */
		size_t torn = fio_record_torn_len();
		fio_close(fd);
		powerloss();
		struct t_blob b = t_read_file(f);
		cr_assert(b.data);
		cr_assert_lt(torn, sizeof w, "seed %llu: a tear keeps less than the write",
		             (unsigned long long)seed);
		cr_assert_eq(b.len, sizeof old + torn, "seed %llu", (unsigned long long)seed);
		cr_assert(memcmp(b.data, old, sizeof old) == 0, "seed %llu: the durable part", (unsigned long long)seed);
		cr_assert(memcmp(b.data + sizeof old, w, torn) == 0, "seed %llu: a prefix of the write",
		          (unsigned long long)seed);
		if (tear == FIO_TEAR_SECTOR)
			cr_assert(torn == 0 || (sizeof old + torn) % FIO_RECORD_SECTOR_SIZE == 0,
			          "seed %llu: %zu bytes kept, not at a sector boundary", (unsigned long long)seed, torn);
		nonzero += torn > 0;
		free(b.data);
		t_dir_free(&d);
	}
	cr_assert_gt(nonzero, 10, "most seeds keep something");
}

Test(fio_record, a_torn_write_leaves_a_byte_granular_prefix)
{
	torn_write_check(FIO_TEAR_BYTE);
}

Test(fio_record, a_torn_write_leaves_a_sector_granular_prefix)
{
	torn_write_check(FIO_TEAR_SECTOR);
}

Test(fio_record, without_tearing_the_dying_write_leaves_nothing)
{
	struct t_dir d = t_dir_new();
	char f[700];
	put(P(&d, "f", f), "old", true);
	cr_assert_eq(fio_record_start(d.path), 0, "%s", err_detail());
	fio_record_crash_after(1);
	int fd;
	cr_assert_eq(fio_open(f, O_WRONLY, 0, &fd), 0);
	cr_assert_eq(fio_pwrite_all(fd, "newnewnew", 9, 3, f), STRATA_EIO);
	cr_assert_eq(fio_record_torn_len(), 0);
	fio_close(fd);
	powerloss();
	expect(f, "old");
	t_dir_free(&d);
}

/* ---- the manifest commit at every crash point ---- */

typedef int (*commit_fn)(const char *dir, const char *name, const void *buf, size_t len);

/* The deliberately broken commits the recorder must catch. */
static int commit_without_dir_sync(const char *dir, const char *name, const void *buf, size_t len)
{
	char tmp[800], dst[800];
	snprintf(tmp, sizeof tmp, "%s/%s.tmp", dir, name);
	snprintf(dst, sizeof dst, "%s/%s", dir, name);
	int fd, rc;
	if ((rc = fio_open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644, &fd)))
		return rc;
	rc = fio_pwrite_all(fd, buf, len, 0, tmp);
	if (!rc)
		rc = fio_fsync(fd, tmp);
	fio_close(fd);
	return rc ? rc : fio_rename(tmp, dst); /* missing: fio_fsync_dir(dir) */
}

static int commit_without_file_sync(const char *dir, const char *name, const void *buf, size_t len)
{
	char tmp[800], dst[800];
	snprintf(tmp, sizeof tmp, "%s/%s.tmp", dir, name);
	snprintf(dst, sizeof dst, "%s/%s", dir, name);
	int fd, rc;
	if ((rc = fio_open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644, &fd)))
		return rc;
	rc = fio_pwrite_all(fd, buf, len, 0, tmp); /* missing: fio_fsync(fd) */
	fio_close(fd);
	if (!rc)
		rc = fio_rename(tmp, dst);
	return rc ? rc : fio_fsync_dir(dir);
}

static const char mf_old[] = "STRATMAN v1: segments 1 2 3";
static const char mf_new[] = "STRATMAN v1: segments 1 2 3 4 5, a longer and different manifest";

/*
 * Commit mf_new over mf_old with a power loss at crash point n = 1, 2, ...
 * until the commit runs to its end, with each tear mode; then once more with
 * no crash and a power loss after the commit returned. After each power loss
 * the manifest must hold the old or the new content, whole, and the new one
 * if the commit returned 0. Returns how many runs broke that.
 */
static int commit_violations(commit_fn commit, const char *what)
{
	int bad = 0;
	const enum fio_tear tears[] = {FIO_TEAR_NONE, FIO_TEAR_SECTOR, FIO_TEAR_BYTE};
	for (size_t t = 0; t < sizeof tears / sizeof tears[0]; t++) {
		for (uint64_t n = 1;; n++) {
			struct t_dir d = t_dir_new();
			char mf[700];
			P(&d, "MANIFEST", mf);
			t_write_file(mf, mf_old, sizeof mf_old - 1);
			cr_assert_eq(fio_record_start(d.path), 0, "%s", err_detail());
			fio_record_set_tear(tears[t], n * 7919 + t);
			fio_record_crash_after(n);
			int rc = commit(d.path, "MANIFEST", mf_new, sizeof mf_new - 1);
			bool crashed = fio_record_crashed();
			cr_assert(crashed ? rc == STRATA_EIO : rc == 0, "%s: n=%llu rc=%d (%s)", what,
			          (unsigned long long)n, rc, err_detail());
			powerloss();
			struct t_blob b = t_read_file(mf);
			bool is_old = b.data && b.len == sizeof mf_old - 1 && memcmp(b.data, mf_old, b.len) == 0;
			bool is_new = b.data && b.len == sizeof mf_new - 1 && memcmp(b.data, mf_new, b.len) == 0;
			if (!(is_old || is_new) || (rc == 0 && !is_new)) {
				bad++;
				printf("%s: tear %d, crash at op %llu%s: MANIFEST %s after power loss\n", what,
				       (int)tears[t], (unsigned long long)n, crashed ? "" : " (never reached)",
				       !b.data ? "missing" : is_old ? "old although the commit returned 0"
				                                    : "torn or empty");
			}
			free(b.data);
			t_dir_free(&d);
			if (!crashed)
				break; /* the commit ran to its end: every crash point was tried */
		}
	}
	return bad;
}

Test(fio_record, write_file_atomic_survives_a_power_loss_at_every_crash_point)
{
	cr_assert_eq(commit_violations(fio_write_file_atomic, "fio_write_file_atomic"), 0);
}

Test(fio_record, a_commit_without_the_directory_sync_is_caught)
{
	cr_assert_gt(commit_violations(commit_without_dir_sync, "no dir sync"), 0,
	             "the recorder must catch a rename that was never made durable");
}

Test(fio_record, a_commit_without_the_file_sync_is_caught)
{
	cr_assert_gt(commit_violations(commit_without_file_sync, "no file sync"), 0,
	             "the recorder must catch a renamed file whose content was never synced");
}

/* ---- threads ---- */

#define T_THREADS 4
#define T_RECORDS 50

struct t_writer {
	char path[700];
	int rc;
};

static void *t_writer_main(void *arg)
{
	struct t_writer *w = arg;
	int fd;
	w->rc = fio_open(w->path, O_WRONLY | O_CREAT | O_EXCL, 0644, &fd);
	if (w->rc)
		return NULL;
	for (int i = 0; i < T_RECORDS && !w->rc; i++) {
		char rec[16];
		snprintf(rec, sizeof rec, "r%03d;", i);
		w->rc = fio_pwrite_all(fd, rec, 5, (uint64_t)i * 5, w->path);
		if (!w->rc && i % 2 == 0)
			w->rc = fio_fdatasync(fd, w->path);
	}
	fio_close(fd);
	return NULL;
}

Test(fio_record, concurrent_writers_are_recorded_in_order)
{
	struct t_dir d = t_dir_new();
	struct t_writer w[T_THREADS];
	pthread_t th[T_THREADS];
	cr_assert_eq(fio_record_start(d.path), 0, "%s", err_detail());
	for (int i = 0; i < T_THREADS; i++) {
		char name[16];
		snprintf(name, sizeof name, "w%d", i);
		P(&d, name, w[i].path);
		cr_assert_eq(pthread_create(&th[i], NULL, t_writer_main, &w[i]), 0);
	}
	for (int i = 0; i < T_THREADS; i++) {
		pthread_join(th[i], NULL);
		cr_assert_eq(w[i].rc, 0);
	}
	cr_assert_eq(fio_record_ops(), (uint64_t)T_THREADS * (1 + T_RECORDS + T_RECORDS / 2));
	cr_assert_eq(fio_fsync_dir(d.path), 0);
	powerloss();
	char want[T_RECORDS * 5 + 1];
	for (int i = 0; i < T_RECORDS - 1; i++) /* the last record was written after the last sync */
		snprintf(want + i * 5, 6, "r%03d;", i);
	for (int i = 0; i < T_THREADS; i++)
		expect(w[i].path, want);
	t_dir_free(&d);
}

#endif /* STRATA_FAILPOINTS */
