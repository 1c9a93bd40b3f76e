/*
 * cli_write_test.c - the `strata` program over a database that takes writes:
 * create, import, delete (a LIST and a FILE), flush, and what inspect, verify
 * and dump say about its WAL and deletion files. Run as a user runs it (the
 * built executable, tests/support/t_cli.h). Checks the live count inspect
 * computes without opening the database for writing (before and after a
 * flush, with ids rewritten and deleted on both sides of the checkpoint),
 * that inspect changes no byte, that a torn WAL tail is a warning and damage
 * in the middle of the WAL or in a deletion file an error (exit 1), the lone
 * WAL / deletion file modes, and the usage errors (exit 2).
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "t_cli.h"
#include "t_support.h"

#define DIM 8

/* Write n random vectors of DIM as name.fvecs in d. */
static void write_vectors(const struct t_dir *d, const char *name, size_t n, uint64_t seed)
{
	char p[1024];
	float *v = t_random_vectors(n, DIM, seed);
	t_write_fvecs(t_path(d, name, p, sizeof p), v, n, DIM);
	free(v);
}

/* Run a command that must succeed; returns its stdout (static, next call overwrites). */
static const char *ok(struct t_run *r)
{
	static char out[1 << 17];
	cr_assert_eq(r->status, 0, "status %d\nstdout: %s\nstderr: %s", r->status, r->out, r->err);
	snprintf(out, sizeof out, "%s", r->out);
	free(r);
	return out;
}

static int status_of(struct t_run *r, char *out, size_t len)
{
	int s = r->status;
	if (out) {
		size_t n = strlen(r->out);
		if (n >= len)
			n = len - 1;
		memcpy(out, r->out, n);
		snprintf(out + n, len - n, "%.*s", (int)(len - n - 1), r->err);
	}
	free(r);
	return s;
}

/* The one file in dir whose name starts with prefix (the test arranges there is one). */
static void find_file(const char *dir, const char *prefix, char *path, size_t len)
{
	DIR *dh = opendir(dir);
	cr_assert(dh, "%s", dir);
	struct dirent *e;
	int found = 0;
	while ((e = readdir(dh)))
		if (strncmp(e->d_name, prefix, strlen(prefix)) == 0) {
			snprintf(path, len, "%s/%s", dir, e->d_name);
			found++;
		}
	closedir(dh);
	cr_assert_eq(found, 1, "%d files named %s* in %s", found, prefix, dir);
}

/* inspect --json DIR: the live vector count. */
static uint64_t live_vectors(const struct t_dir *d, const char *db)
{
	const char *out = ok(t_run(d, "inspect", "--json", db, NULL));
	return (uint64_t)t_json_num(out, "vectors");
}

static void flip_byte(const char *path, long off)
{
	FILE *f = fopen(path, "r+b");
	cr_assert(f, "%s", path);
	cr_assert_eq(fseek(f, off, SEEK_SET), 0);
	int c = fgetc(f);
	cr_assert_neq(c, EOF, "%s has no byte %ld", path, off);
	cr_assert_eq(fseek(f, off, SEEK_SET), 0);
	fputc(c ^ 0x5a, f);
	fclose(f);
}

static off_t file_size(const char *path)
{
	struct stat st;
	cr_assert_eq(stat(path, &st), 0, "%s", path);
	return st.st_size;
}

/*
 * A database "db" with 100 vectors (ids 0..99) imported in 4 WAL records of
 * 25 and never flushed.
 */
static struct t_dir make_unflushed(char *db, size_t len)
{
	struct t_dir d = t_dir_new();
	char in[1024];
	t_path(&d, "db", db, len);
	write_vectors(&d, "base.fvecs", 100, 1);
	const char *out = ok(t_run(&d, "create", db, "--dim", "8", NULL));
	cr_assert(strstr(out, "created"), "%s", out);
	ok(t_run(&d, "import", db, "--input", t_path(&d, "base.fvecs", in, sizeof in), "--batch", "25",
	         "--quiet", NULL));
	return d;
}

Test(cli_write, round_trip_counts_unflushed_writes_before_and_after_flush)
{
	char db[1024], p[1024], out[4096];
	struct t_dir d = make_unflushed(db, sizeof db);
	cr_assert_eq(live_vectors(&d, db), 100);

	/* Deletes of memtable ids: a LIST and a FILE. */
	ok(t_run(&d, "delete", db, "--ids", "1,2,3", NULL));
	cr_assert_eq(live_vectors(&d, db), 97);
	t_path(&d, "ids.txt", p, sizeof p);
	t_write_file(p, "10\n11\n12\n13\n14\n", 15);
	const char *o = ok(t_run(&d, "delete", db, "--ids", p, NULL));
	cr_assert(strstr(o, "deleted 5 ids"), "%s", o);
	cr_assert_eq(live_vectors(&d, db), 92);
	/* Ids 95..104: five replaced, five new. */
	write_vectors(&d, "more.fvecs", 10, 2);
	ok(t_run(&d, "import", db, "--input", t_path(&d, "more.fvecs", p, sizeof p), "--start-id", "95",
	         "--quiet", NULL));
	o = ok(t_run(&d, "inspect", "--json", db, NULL));
	cr_assert_eq(t_json_num(o, "vectors"), 97, "%s", o);
	cr_assert_eq(t_json_num(o, "unflushed"), 97, "%s", o);
	cr_assert_eq(t_json_num(o, "checkpoint_lsn"), 0, "%s", o);
	cr_assert(t_json_has(o, "wal") && t_json_has(o, "records_after_checkpoint"), "%s", o);
	cr_assert_eq(status_of(t_run(&d, "verify", db, NULL), out, sizeof out), 0, "%s", out);

	/* Flushed: the same live set, now in a segment; the checkpoint moved. */
	ok(t_run(&d, "flush", db, NULL));
	o = ok(t_run(&d, "inspect", "--json", db, NULL));
	cr_assert_eq(t_json_num(o, "vectors"), 97, "%s", o);
	cr_assert_eq(t_json_num(o, "unflushed"), 0, "%s", o);
	cr_assert_gt(t_json_num(o, "checkpoint_lsn"), 0, "%s", o);

	/* Writes to ids that live in the segment: hidden there, counted once. */
	ok(t_run(&d, "delete", db, "--ids", "20,21,1", NULL)); /* 1 is gone already */
	cr_assert_eq(live_vectors(&d, db), 95);
	write_vectors(&d, "three.fvecs", 3, 3);
	ok(t_run(&d, "import", db, "--input", t_path(&d, "three.fvecs", p, sizeof p), "--start-id",
	         "30", "--quiet", NULL));
	o = ok(t_run(&d, "inspect", "--json", db, NULL));
	cr_assert_eq(t_json_num(o, "vectors"), 95, "%s", o);
	cr_assert_eq(t_json_num(o, "rewritten_since_checkpoint"), 5, "%s", o);
	cr_assert_eq(t_json_num(o, "unflushed"), 3, "%s", o);

	/* After the second flush the segment's deletions live in a deletion file. */
	ok(t_run(&d, "flush", db, NULL));
	o = ok(t_run(&d, "inspect", "--json", db, NULL));
	cr_assert_eq(t_json_num(o, "vectors"), 95, "%s", o);
	cr_assert(strstr(o, "\"deletions\": {\"name\": \"del-"), "%s", o);
	cr_assert_eq(t_json_num(o, "deleted"), 5, "%s", o);
	o = ok(t_run(&d, "inspect", db, NULL));
	cr_assert(strstr(o, "deletions  del-"), "%s", o);
	cr_assert(strstr(o, "checkpoint lsn"), "%s", o);
	o = ok(t_run(&d, "verify", db, NULL));
	cr_assert(strstr(o, "OK: ") && strstr(o, "1 deletion file(s)"), "%s", o);
	t_dir_free(&d);
}

Test(cli_write, inspect_changes_nothing_and_a_torn_tail_is_a_warning)
{
	char db[1024], wal[1024], out[16384];
	struct t_dir d = make_unflushed(db, sizeof db);
	find_file(db, "wal-", wal, sizeof wal);
	FILE *f = fopen(wal, "ab");
	cr_assert(f);
	fputs("a torn record", f); /* 13 bytes that are not a whole record */
	fclose(f);
	off_t size = file_size(wal);
	struct t_blob before = t_read_file(wal);

	const char *o = ok(t_run(&d, "inspect", "--json", db, NULL));
	cr_assert_eq(t_json_num(o, "vectors"), 100, "%s", o);
	cr_assert_eq(t_json_num(o, "torn_bytes"), 13, "%s", o);
	o = ok(t_run(&d, "inspect", db, NULL));
	cr_assert(strstr(o, "torn tail: 13 bytes"), "%s", o);
	cr_assert_eq(status_of(t_run(&d, "verify", db, NULL), out, sizeof out), 0, "%s", out);
	cr_assert(strstr(out, "WARNING: wal-") && strstr(out, "torn tail"), "%s", out);
	cr_assert_eq(status_of(t_run(&d, "verify", wal, NULL), out, sizeof out), 0, "%s", out);
	cr_assert(strstr(out, "WARNING: "), "%s", out);

	/* No tool cut the tail (a writer would): the bytes are as they were. */
	cr_assert_eq(file_size(wal), size);
	struct t_blob after = t_read_file(wal);
	cr_assert_eq(after.len, before.len);
	cr_assert_eq(memcmp(after.data, before.data, before.len), 0);
	free(before.data);
	free(after.data);
	t_dir_free(&d);
}

/* What a writer killed with zeros written ahead leaves (FORMAT.md 10.6): a clean end, no warning. */
Test(cli_write, zeros_after_the_last_record_are_a_clean_end)
{
	char db[1024], wal[1024], out[16384];
	struct t_dir d = make_unflushed(db, sizeof db);
	find_file(db, "wal-", wal, sizeof wal);
	off_t records_end = file_size(wal);
	FILE *f = fopen(wal, "ab");
	cr_assert(f);
	static const char zeros[8192];
	cr_assert_eq(fwrite(zeros, 1, sizeof zeros, f), sizeof zeros);
	fclose(f);

	const char *o = ok(t_run(&d, "inspect", "--json", db, NULL));
	cr_assert_eq(t_json_num(o, "vectors"), 100, "%s", o);
	cr_assert_eq(t_json_num(o, "torn_bytes"), 0, "%s", o);
	cr_assert_eq(t_json_num(o, "zero_bytes"), 8192, "%s", o);
	o = ok(t_run(&d, "inspect", db, NULL));
	cr_assert(strstr(o, "8192 bytes of zeros written ahead"), "%s", o);
	cr_assert_eq(status_of(t_run(&d, "verify", db, NULL), out, sizeof out), 0, "%s", out);
	cr_assert(!strstr(out, "WARNING"), "%s", out);
	cr_assert_eq(status_of(t_run(&d, "verify", wal, NULL), out, sizeof out), 0, "%s", out);
	cr_assert(!strstr(out, "WARNING"), "%s", out);
	o = ok(t_run(&d, "inspect", wal, NULL));
	cr_assert(strstr(o, "8192 bytes written ahead"), "%s", o);
	cr_assert_eq(file_size(wal), records_end + 8192, "a tool cut the zeros");
	t_dir_free(&d);
}

Test(cli_write, verify_fails_on_a_garbled_wal_middle)
{
	char db[1024], wal[1024], out[16384];
	struct t_dir d = make_unflushed(db, sizeof db);
	find_file(db, "wal-", wal, sizeof wal);
	off_t rec = (file_size(wal) - 64) / 4; /* four records of 25 vectors, equal in size */
	flip_byte(wal, (long)(64 + rec + rec / 2)); /* inside the second: valid ones follow */

	cr_assert_eq(status_of(t_run(&d, "verify", db, NULL), out, sizeof out), 1, "%s", out);
	cr_assert(strstr(out, "DAMAGED: wal-"), "%s", out);
	cr_assert(strstr(out, "followed by a valid record"), "%s", out);
	cr_assert_eq(status_of(t_run(&d, "verify", "--json", db, NULL), out, sizeof out), 1, "%s", out);
	cr_assert(strstr(out, "\"ok\": false"), "%s", out);
	cr_assert_eq(status_of(t_run(&d, "inspect", db, NULL), out, sizeof out), 1, "%s", out);
	cr_assert(strstr(out, "error: "), "%s", out);
	/* The lone file: the same verdict from the file alone. */
	cr_assert_eq(status_of(t_run(&d, "inspect", wal, NULL), out, sizeof out), 1, "%s", out);
	cr_assert(strstr(out, "a valid record follows"), "%s", out);
	cr_assert_eq(status_of(t_run(&d, "verify", wal, NULL), out, sizeof out), 1, "%s", out);
	cr_assert_eq(status_of(t_run(&d, "dump", wal, NULL), out, sizeof out), 1, "%s", out);
	cr_assert(strstr(out, "BAD") && strstr(out, "lsn 3 upsert n 25"), "%s", out);
	t_dir_free(&d);
}

/* A flushed database whose segment has a deletion file; its path in del. */
static struct t_dir make_with_deletions(char *db, size_t len, char *del, size_t del_len)
{
	struct t_dir d = make_unflushed(db, len);
	ok(t_run(&d, "flush", db, NULL));
	ok(t_run(&d, "delete", db, "--ids", "5,6,7", NULL));
	ok(t_run(&d, "flush", db, NULL));
	find_file(db, "del-", del, del_len);
	return d;
}

Test(cli_write, verify_fails_on_a_corrupted_deletion_file)
{
	char db[1024], del[1024], out[16384];
	struct t_dir d = make_with_deletions(db, sizeof db, del, sizeof del);
	cr_assert_eq(status_of(t_run(&d, "verify", db, NULL), out, sizeof out), 0, "%s", out);
	struct t_blob good = t_read_file(del);

	flip_byte(del, 80); /* the bitmap */
	cr_assert_eq(status_of(t_run(&d, "verify", db, NULL), out, sizeof out), 1, "%s", out);
	cr_assert(strstr(out, "DAMAGED: del-") && strstr(out, "checksum"), "%s", out);
	cr_assert_eq(status_of(t_run(&d, "inspect", db, NULL), out, sizeof out), 1, "%s", out);
	cr_assert_eq(status_of(t_run(&d, "inspect", del, NULL), out, sizeof out), 1, "%s", out);
	cr_assert_eq(status_of(t_run(&d, "dump", del, NULL), out, sizeof out), 1, "%s", out);
	cr_assert(strstr(out, "BAD"), "%s", out);

	t_write_file(del, good.data, good.len);
	flip_byte(del, 40); /* the header's deleted count */
	cr_assert_eq(status_of(t_run(&d, "verify", db, NULL), out, sizeof out), 1, "%s", out);
	cr_assert(strstr(out, "DAMAGED: del-"), "%s", out);

	/* Missing: named by the manifest, so damage. */
	t_write_file(del, good.data, 40);
	cr_assert_eq(status_of(t_run(&d, "verify", db, NULL), out, sizeof out), 1, "%s", out);
	remove(del);
	cr_assert_eq(status_of(t_run(&d, "verify", db, NULL), out, sizeof out), 1, "%s", out);
	cr_assert(strstr(out, "DAMAGED: del-"), "%s", out);

	/* Restored, plus files a crash leaves: info, and still sound. */
	t_write_file(del, good.data, good.len);
	char p[1200];
	snprintf(p, sizeof p, "%s/del-00000000000000ff-0000000000000001.del", db);
	t_write_file(p, good.data, good.len);
	snprintf(p, sizeof p, "%s/MANIFEST.tmp", db);
	t_write_file(p, "x", 1);
	cr_assert_eq(status_of(t_run(&d, "verify", db, NULL), out, sizeof out), 0, "%s", out);
	cr_assert(strstr(out, "INFO: del-00000000000000ff-0000000000000001.del"), "%s", out);
	cr_assert(strstr(out, "INFO: MANIFEST.tmp"), "%s", out);
	free(good.data);
	t_dir_free(&d);
}

Test(cli_write, lone_wal_and_deletion_files)
{
	char db[1024], del[1024], wal[1024], out[16384];
	struct t_dir d = make_unflushed(db, sizeof db);
	find_file(db, "wal-", wal, sizeof wal);
	const char *o = ok(t_run(&d, "inspect", "--json", wal, NULL));
	cr_assert(strstr(o, "\"kind\": \"wal\""), "%s", o);
	cr_assert_eq(t_json_num(o, "records"), 4, "%s", o);
	cr_assert_eq(t_json_num(o, "upsert_rows"), 100, "%s", o);
	cr_assert_eq(t_json_num(o, "first_lsn"), 1, "%s", o);
	cr_assert_eq(t_json_num(o, "dim"), DIM, "%s", o);
	o = ok(t_run(&d, "verify", wal, NULL));
	cr_assert(strstr(o, "OK: ") && strstr(o, "4 whole record(s)"), "%s", o);
	o = ok(t_run(&d, "dump", wal, "--ids", NULL));
	cr_assert(strstr(o, "lsn 1 upsert n 25 dim 8") && strstr(o, " 24\n"), "%s", o);
	o = ok(t_run(&d, "dump", wal, "--limit", "1", NULL));
	cr_assert(strstr(o, "3 more record(s) not shown"), "%s", o);
	t_dir_free(&d);

	d = make_with_deletions(db, sizeof db, del, sizeof del);
	o = ok(t_run(&d, "inspect", "--json", del, NULL));
	cr_assert(strstr(o, "\"kind\": \"deletions\""), "%s", o);
	cr_assert_eq(t_json_num(o, "deleted"), 3, "%s", o);
	cr_assert_eq(t_json_num(o, "live"), 97, "%s", o);
	o = ok(t_run(&d, "verify", del, NULL));
	cr_assert(strstr(o, "OK: "), "%s", o);
	o = ok(t_run(&d, "dump", del, NULL));
	cr_assert(strstr(o, "deleted nodes:") && strstr(o, "3 bits set = deleted: ok"), "%s", o);
	/* The same bytes under another generation's name: the header does not match it. */
	char p[1200];
	snprintf(p, sizeof p, "%s/del-0000000000000001-00000000000000aa.del", db);
	struct t_blob b = t_read_file(del);
	t_write_file(p, b.data, b.len);
	free(b.data);
	cr_assert_eq(status_of(t_run(&d, "inspect", p, NULL), out, sizeof out), 1, "%s", out);
	cr_assert(strstr(out, "renamed or copied"), "%s", out);
	t_dir_free(&d);
}

/* A usage error: status 2, one line naming the command, then the hint. */
static void usage(struct t_run *r, const char *cmd, const char *needle)
{
	char prefix[64];
	snprintf(prefix, sizeof prefix, "strata %s: ", cmd);
	cr_assert_eq(r->status, 2, "%s: status %d: %s", cmd, r->status, r->err);
	cr_assert_eq(strncmp(r->err, prefix, strlen(prefix)), 0, "%s", r->err);
	cr_assert(strstr(r->err, needle), "'%s' lacks '%s'", r->err, needle);
	cr_assert(strstr(r->err, "--help"), "%s", r->err);
	cr_assert_eq(r->out[0], '\0', "%s", r->out);
	free(r);
}

Test(cli_write, usage_errors_exit_two)
{
	char db[1024], wal[1024];
	struct t_dir d = make_unflushed(db, sizeof db);
	find_file(db, "wal-", wal, sizeof wal);
	usage(t_run(&d, "create", db, NULL), "create", "--dim");
	usage(t_run(&d, "create", "--dim", "8", NULL), "create", "DIR");
	usage(t_run(&d, "create", db, "--dim", "8", "--metric", "manhattan", NULL), "create",
	      "unknown metric");
	usage(t_run(&d, "import", db, NULL), "import", "--input");
	usage(t_run(&d, "import", db, "--input", "x.fvecs", "--sync", "sometimes", NULL), "import",
	      "--sync");
	usage(t_run(&d, "delete", db, NULL), "delete", "--ids");
	usage(t_run(&d, "delete", db, "--ids", "1,x", NULL), "delete", "neither a file nor a list");
	usage(t_run(&d, "flush", NULL), "flush", "DIR");
	usage(t_run(&d, "flush", db, "--bogus", NULL), "flush", "unknown option");
	usage(t_run(&d, "inspect", NULL), "inspect", "missing");
	usage(t_run(&d, "dump", wal, "--node", "1", NULL), "dump", "segment files");
	for (size_t i = 0; i < 4; i++) {
		static const char *const cmds[] = {"create", "import", "delete", "flush"};
		const char *o = ok(t_run(&d, cmds[i], "--help", NULL));
		cr_assert(strstr(o, "usage: strata"), "%s", o);
	}
	/* A runtime failure is 1, not 2: a second create over the database. */
	char out[4096];
	cr_assert_eq(status_of(t_run(&d, "create", db, "--dim", "8", NULL), out, sizeof out), 1, "%s",
	             out);
	t_dir_free(&d);
}

/*
 * import of a file whose dim is not the database's: refused before any write
 * (strata_upsert would read rows of the database's dim from it: garbage from
 * a wider file, past the end of a narrower one), naming both dims.
 */
Test(cli_write, import_refuses_a_file_of_another_dim)
{
	char db[1024], in[1024], out[4096];
	struct t_dir d = make_unflushed(db, sizeof db); /* dim 8, 100 vectors */
	float *v = t_random_vectors(50, 16, 3);
	t_write_fvecs(t_path(&d, "wide.fvecs", in, sizeof in), v, 50, 16);
	free(v);
	struct t_run *r = t_run(&d, "import", db, "--input", in, "--quiet", NULL);
	cr_assert_eq(r->status, 1, "%s", r->err);
	cr_assert(strstr(r->err, "strata import: ") && strstr(r->err, "dim 16") &&
	          strstr(r->err, "has dim 8") && strstr(r->err, "nothing imported"), "%s", r->err);
	cr_assert_eq(strchr(r->err, '\n'), r->err + strlen(r->err) - 1, "one line: %s", r->err);
	cr_assert(!strstr(r->out, "imported"), "%s", r->out);
	free(r);
	v = t_random_vectors(50, 4, 4);
	t_write_fvecs(t_path(&d, "narrow.fvecs", in, sizeof in), v, 50, 4);
	free(v);
	r = t_run(&d, "import", db, "--input", in, "--quiet", NULL);
	cr_assert_eq(r->status, 1, "%s", r->err);
	cr_assert(strstr(r->err, "dim 4") && strstr(r->err, "has dim 8"), "%s", r->err);
	free(r);
	/* Nothing reached the WAL or the database. */
	cr_assert_eq(live_vectors(&d, db), 100);
	const char *o = ok(t_run(&d, "inspect", "--json", db, NULL));
	cr_assert_eq(t_json_num(o, "records"), 4, "the 4 records of the first import only: %s", o);
	cr_assert_eq(status_of(t_run(&d, "verify", db, NULL), out, sizeof out), 0, "%s", out);
	t_dir_free(&d);
}
