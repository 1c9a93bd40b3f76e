/*
 * cmd_pack.c - `strata pack DIR OUT|-` and `strata unpack BUNDLE|- DIR`: ship
 * a database as one zstd-compressed bundle file and bring it back.
 * Manual: strata.1, sections "pack" and "unpack". Format: FORMAT.md, "Bundle
 * file"; the work is format/bundle.c and bundle_db.c.
 *
 * Which state pack packs (FORMAT.md 8.11):
 *   - the WAL holds no record: the files as they are (pack never opens such
 *     a database for writing, so it does not change it);
 *   - otherwise pack opens the database as its writer (strata_open), flushes
 *     (strata_flush: every acknowledged write into segments and deletion
 *     files), reads the snapshot while it still holds the lock, and closes;
 *   - if another process holds the writer's lock (STRATA_EBUSY), or the
 *     directory cannot be written (STRATA_EPERM), pack reads a consistent
 *     snapshot beside the writer: the last flushed state and the WAL records
 *     after it, as they are on disk (the newest file cut after its last whole
 *     record), and says so on stderr. Unpack replays those records.
 * Nothing is left out silently: what the snapshot could not include (bytes
 * of a record being written) is counted on stderr.
 *
 * Output discipline: a bundle may go to stdout, so pack prints its summary
 * on stderr (or, with --json and a file OUT, one JSON object on stdout).
 * Pack writes OUT through OUT.tmp and renames it at the end, so a failed pack
 * never leaves a truncated bundle under OUT. Unpack never leaves anything
 * under DIR unless it all checked out (bundle_unpack's promise); SIGINT,
 * SIGTERM and SIGHUP stop it at the next read, through the same cleanup.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bundle.h"
#include "cli.h"
#include "err.h"
#include "fio.h"
#include "strata.h"
#include "wal_record.h"

static const char pack_usage[] =
	"usage: strata pack DIR OUT.strata|- [--level N] [--threads N] [--json] [--quiet]\n"
	"\n"
	"Write the database in DIR as one bundle file: its MANIFEST, every segment and\n"
	"deletion file the MANIFEST names, each compressed with zstd and checksummed\n"
	"(xxh3), then an index. Unflushed writes are flushed first (pack opens DIR as\n"
	"its writer); if another process is writing DIR, the last flushed state and\n"
	"the WAL records after it are packed as they are on disk (said on stderr).\n"
	"OUT '-' writes to stdout (for a pipe: ssh, an object store client).\n"
	"A file OUT is written as OUT.tmp and renamed when complete.\n"
	"\n"
	"options:\n"
	"  --level N     zstd level, 1..19 (default 3)\n"
	"  --threads N   compression threads, 0 = all cores (default 0)\n"
	"  --json        print one JSON object on stdout (not with OUT '-')\n"
	"  --quiet       no summary on stderr (the note about another writer stays)\n"
	"  -h, --help    this text\n";

static const char unpack_usage[] =
	"usage: strata unpack BUNDLE|- DIR [--max-bytes N] [--json] [--quiet]\n"
	"\n"
	"Recreate a database from a bundle (BUNDLE '-' reads stdin) in DIR, which must\n"
	"not exist or be empty. Everything is written to a temporary directory beside\n"
	"DIR and renamed to DIR only after every checksum, name and size, the MANIFEST\n"
	"against the files, every segment in full, every deletion file and every WAL\n"
	"record have been verified, and WAL records the bundle carries have been\n"
	"replayed into a segment; a failed or interrupted unpack leaves nothing under\n"
	"DIR.\n"
	"\n"
	"options:\n"
	"  --max-bytes N  refuse bundles declaring more than N bytes of files\n"
	"                 (default 1 TiB; free space is always checked)\n"
	"  --json         print one JSON object on stdout\n"
	"  --quiet        no summary on stderr\n"
	"  -h, --help     this text\n";

static uint32_t cpu_count(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 && n < 4096 ? (uint32_t)n : 1;
}

static double mb_per_s(uint64_t bytes, double secs)
{
	return secs > 0 ? (double)bytes / 1e6 / secs : 0.0;
}

/* Does a WAL file of `dir` hold more than its header? Then writes may be unflushed. */
static bool wal_has_records(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return false;
	bool any = false;
	struct dirent *e;
	while (!any && (e = readdir(d))) {
		uint64_t lsn;
		char path[4096];
		struct stat st;
		if (walrec_file_name_parse(e->d_name, &lsn) != 0 ||
		    snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path)
			continue;
		any = stat(path, &st) == 0 && (uint64_t)st.st_size > WAL_FILE_HEADER_SIZE;
	}
	closedir(d);
	return any;
}

/* How pack came by its snapshot. */
struct pack_source {
	bool flushed;            /* opened as the writer and flushed first */
	uint64_t flushed_records;/* WAL records that flush put into segments */
	bool beside_writer;      /* could not take the writer's lock: read beside it */
	int open_rc;             /* why not (STRATA_EBUSY, STRATA_EPERM) */
};

/* The state of `dir` to pack (see the top of this file). 0 or the exit status of a failure. */
static int pack_snapshot(const char *cmd, const char *dir, struct bundle_snapshot *snap,
                         struct pack_source *how)
{
	int rc;
	memset(how, 0, sizeof *how);
	if (!wal_has_records(dir)) {
		if ((rc = bundle_snapshot_open(dir, snap)) != 0)
			return cli_fail(cmd, dir, rc);
		return 0;
	}
	strata_options o;
	strata_options_default(&o);
	o.disable_background_merges = true; /* pack flushes; it does not start merges */
	strata_db *db = NULL;
	rc = strata_open(dir, &o, 0, &db);
	if (rc == STRATA_EBUSY || rc == STRATA_EPERM) {
		how->beside_writer = true;
		how->open_rc = rc;
		if ((rc = bundle_snapshot_open(dir, snap)) != 0)
			return cli_fail(cmd, dir, rc);
		return 0;
	}
	if (rc != 0)
		return cli_fail(cmd, dir, rc);
	struct strata_stats st;
	strata_stats(db, &st);
	how->flushed = true;
	how->flushed_records = st.replay_records;
	if ((rc = strata_flush(db)) != 0) {
		cli_fail(cmd, dir, rc);
		strata_close(db);
		return CLI_EXIT_FAIL;
	}
	/* Read while this handle holds the lock: no other writer can change the state. */
	rc = bundle_snapshot_open(dir, snap);
	if (rc != 0) {
		cli_fail(cmd, dir, rc);
		strata_close(db);
		return CLI_EXIT_FAIL;
	}
	if ((rc = strata_close(db)) != 0) { /* the files read stay readable (mapped or copied) */
		bundle_snapshot_free(snap);
		return cli_fail(cmd, dir, rc);
	}
	return 0;
}

/* What a snapshot read beside a writer holds, and what it could not hold. Always printed. */
static void pack_note(const char *dir, const struct bundle_snapshot *s,
                      const struct pack_source *how)
{
	char a[32];
	if (how->open_rc == STRATA_EBUSY)
		fprintf(stderr, "strata pack: note: another process is writing %s: packed its last "
		                "flushed state (manifest generation %llu) ", dir,
		        (unsigned long long)s->generation);
	else
		fprintf(stderr, "strata pack: note: %s cannot be opened for writing to flush it (%s): "
		                "packed its last flushed state (manifest generation %llu) ", dir,
		        strata_strerror(how->open_rc), (unsigned long long)s->generation);
	if (s->wal_records)
		fprintf(stderr, "and the %llu WAL record(s) after it (LSN %llu..%llu, %s in %u WAL "
		                "file(s)) as they were on disk; unpack replays them. Writes after those "
		                "are not in the bundle",
		        (unsigned long long)s->wal_records, (unsigned long long)s->wal_first_lsn,
		        (unsigned long long)s->wal_last_lsn, cli_fmt_bytes(s->wal_bytes, a, sizeof a),
		        s->wal_files);
	else
		fprintf(stderr, "; its WAL held no record after that state");
	if (s->wal_cut_bytes)
		fprintf(stderr, "; %llu byte(s) after the newest WAL file's last whole record (a write "
		                "in progress) were left out", (unsigned long long)s->wal_cut_bytes);
	fputs(".\n", stderr);
}

int cmd_pack(int argc, char **argv)
{
	static const char *const CMD = "pack";
	uint32_t level = BUNDLE_LEVEL_DEFAULT, threads = 0;
	bool json = false, quiet = false, help = false;
	const struct cli_opt opts[] = {
		{"--level", NULL, CLI_OPT_U32, &level, BUNDLE_LEVEL_MIN, BUNDLE_LEVEL_MAX},
		{"--threads", NULL, CLI_OPT_U32, &threads, 0, 4096},
		{"--json", NULL, CLI_OPT_FLAG, &json, 0, 0},
		{"--quiet", "-q", CLI_OPT_FLAG, &quiet, 0, 0},
		{NULL, NULL, CLI_OPT_FLAG, NULL, 0, 0},
	};
	const char *pos[2];
	size_t npos;
	int rc = cli_parse(CMD, argc, argv, opts, pos, 2, &npos, &help);
	if (rc != 0)
		return rc;
	if (help) {
		fputs(pack_usage, stdout);
		return CLI_EXIT_OK;
	}
	if (npos < 2)
		return cli_usage_error(CMD, "missing %s", npos == 0 ? "the database directory DIR"
		                                                    : "the output OUT (a file, or - for stdout)");
	const char *dir = pos[0], *out = pos[1];
	bool to_stdout = strcmp(out, "-") == 0;
	if (to_stdout && json)
		return cli_usage_error(CMD, "--json needs a file OUT: stdout carries the bundle");
	if (to_stdout && isatty(STDOUT_FILENO))
		return cli_error(CMD, "refusing to write a bundle to a terminal (redirect stdout, or "
		                      "name a file)");
	struct stat st;
	if (stat(dir, &st) != 0)
		return cli_error(CMD, "%s: %s", dir, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return cli_error(CMD, "%s is not a database directory", dir);

	/* One consistent state, held (mapped or copied) until bundle_write() returns. */
	struct bundle_snapshot snap;
	struct pack_source how;
	err_clear();
	if ((rc = pack_snapshot(CMD, dir, &snap, &how)) != 0)
		return rc;
	if (how.beside_writer)
		pack_note(dir, &snap, &how);

	char tmp[4096];
	int fd = STDOUT_FILENO;
	int status = CLI_EXIT_FAIL;
	if (!to_stdout) {
		if (snprintf(tmp, sizeof tmp, "%s.tmp", out) >= (int)sizeof tmp) {
			cli_error(CMD, "%s: path too long", out);
			goto done;
		}
		if ((rc = fio_open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644, &fd)) != 0) {
			cli_fail(CMD, tmp, rc);
			goto done;
		}
	}
	struct bundle_pack_opts po = {.level = (int)level, .threads = threads ? threads : cpu_count()};
	struct bundle_pack_stats ps = {0};
	double t0 = cli_now();
	rc = bundle_write(fd, to_stdout ? "stdout" : tmp, snap.files, snap.count, snap.db_uuid, &po, &ps);
	if (rc == 0 && !to_stdout)
		rc = fio_fsync(fd, tmp);
	double secs = cli_now() - t0;
	if (!to_stdout) {
		int rc2 = fio_close(fd);
		if (rc == 0)
			rc = rc2;
		if (rc == 0)
			rc = fio_rename(tmp, out);
		if (rc != 0) {
			char why[ERR_DETAIL_MAX];
			snprintf(why, sizeof why, "%s", err_detail());
			fio_discard(tmp);
			err_set(rc, "%s", why);
		}
	}
	if (rc != 0) {
		cli_fail(CMD, to_stdout ? "stdout" : out, rc);
		goto done;
	}
	double ratio = ps.bundle_bytes ? (double)ps.raw_bytes / (double)ps.bundle_bytes : 0.0;
	if (json) {
		struct cli_json j;
		cli_json_init(&j, stdout);
		cli_json_obj_begin(&j, NULL);
		cli_json_str(&j, "dir", dir);
		cli_json_str(&j, "bundle", out);
		cli_json_u64(&j, "files", ps.entries);
		cli_json_u64(&j, "vectors", snap.vectors);
		cli_json_u64(&j, "segments", snap.segments);
		cli_json_u64(&j, "deletion_files", snap.deletion_files);
		cli_json_u64(&j, "wal_files", snap.wal_files);
		cli_json_u64(&j, "wal_records", snap.wal_records);
		cli_json_u64(&j, "wal_cut_bytes", snap.wal_cut_bytes);
		cli_json_bool(&j, "flushed", how.flushed);
		cli_json_u64(&j, "flushed_records", how.flushed_records);
		cli_json_bool(&j, "beside_writer", how.beside_writer);
		cli_json_u64(&j, "raw_bytes", ps.raw_bytes);
		cli_json_u64(&j, "bundle_bytes", ps.bundle_bytes);
		cli_json_f64(&j, "ratio", ratio);
		cli_json_i64(&j, "level", (int64_t)level);
		cli_json_u64(&j, "threads", ps.threads ? ps.threads : 1);
		cli_json_f64(&j, "seconds", secs);
		cli_json_f64(&j, "mb_per_s", mb_per_s(ps.raw_bytes, secs));
		cli_json_obj_end(&j);
	}
	if (!quiet) {
		char a[32], b[32];
		if (how.flushed)
			fprintf(stderr, "strata pack: flushed %s first: %llu WAL record(s) into segments\n",
			        dir, (unsigned long long)how.flushed_records);
		fprintf(stderr, "packed %s into %s: %u files, %llu vectors, %s -> %s (ratio %.3f), zstd "
		                "level %u, %u thread(s), %.2f s (%.1f MB/s)\n",
		        dir, to_stdout ? "stdout" : out, ps.entries, (unsigned long long)snap.vectors,
		        cli_fmt_bytes(ps.raw_bytes, a, sizeof a), cli_fmt_bytes(ps.bundle_bytes, b, sizeof b),
		        ratio, level, ps.threads ? ps.threads : 1, secs, mb_per_s(ps.raw_bytes, secs));
		if (snap.retries)
			fprintf(stderr, "strata pack: a writer committed while pack read %s: read again %u "
			                "time(s)\n", dir, snap.retries);
	}
	status = CLI_EXIT_OK;
done:
	bundle_snapshot_free(&snap);
	return status;
}

/* ---- unpack ------------------------------------------------------------------------------- */

static volatile sig_atomic_t stop_signal;

static void on_stop_signal(int sig)
{
	stop_signal = sig;
}

/*
 * The bundle source, with a way out: a caught signal fails the next read.
 * Waiting in poll() rather than read() lets a signal end the wait on a
 * stalled pipe (the read itself retries EINTR).
 */
struct stoppable {
	struct bundle_source inner;
	int fd;
};

static int64_t stoppable_read(void *ctx, uint8_t *buf, size_t len)
{
	struct stoppable *s = ctx;
	for (;;) {
		if (stop_signal)
			return err_set(STRATA_EIO, "interrupted by signal %d", (int)stop_signal);
		struct pollfd p = {.fd = s->fd, .events = POLLIN};
		int n = poll(&p, 1, 250);
		if (n > 0 || (n < 0 && errno != EINTR))
			break; /* readable, at its end, or an error read() will name */
	}
	return s->inner.read(s->inner.ctx, buf, len);
}

/*
 * opts.finish of the unpack: WAL records a bundle carries (packed beside a
 * writer) are replayed into a segment in the temporary directory, by opening
 * it as its writer and flushing, so that the database that appears under DIR
 * holds them in segments, where read-only opens see them too.
 */
struct replay {
	uint64_t records;
	uint64_t vectors;
};

static int replay_wal(const char *tmp, const struct bundle_db_stats *st, void *ctx)
{
	struct replay *rp = ctx;
	if (st->wal_records == 0)
		return 0; /* records at or below the checkpoint, if any: the next writer drops them */
	strata_options o;
	strata_options_default(&o);
	o.disable_background_merges = true;
	strata_db *db = NULL;
	int rc = strata_open(tmp, &o, 0, &db);
	if (rc != 0)
		return err_prefix(rc, "replaying the bundle's WAL");
	struct strata_stats s;
	strata_stats(db, &s);
	rp->records = s.replay_records;
	rc = strata_flush(db);
	if (rc != 0) {
		char why[ERR_DETAIL_MAX];
		snprintf(why, sizeof why, "replaying the bundle's WAL: flush: %s", err_detail());
		strata_close(db); /* clears the detail */
		return err_set(rc, "%s", why);
	}
	strata_stats(db, &s);
	rp->vectors = s.vectors;
	if ((rc = strata_close(db)) != 0)
		err_prefix(rc, "replaying the bundle's WAL: close");
	return rc;
}

int cmd_unpack(int argc, char **argv)
{
	static const char *const CMD = "unpack";
	uint64_t max_bytes = 0;
	bool json = false, quiet = false, help = false;
	const struct cli_opt opts[] = {
		{"--max-bytes", NULL, CLI_OPT_U64, &max_bytes, 1, UINT64_MAX},
		{"--json", NULL, CLI_OPT_FLAG, &json, 0, 0},
		{"--quiet", "-q", CLI_OPT_FLAG, &quiet, 0, 0},
		{NULL, NULL, CLI_OPT_FLAG, NULL, 0, 0},
	};
	const char *pos[2];
	size_t npos;
	int rc = cli_parse(CMD, argc, argv, opts, pos, 2, &npos, &help);
	if (rc != 0)
		return rc;
	if (help) {
		fputs(unpack_usage, stdout);
		return CLI_EXIT_OK;
	}
	if (npos < 2)
		return cli_usage_error(CMD, "missing %s", npos == 0 ? "the bundle (a file, or - for stdin)"
		                                                    : "the target directory DIR");
	const char *in = pos[0], *dir = pos[1];
	bool from_stdin = strcmp(in, "-") == 0;
	if (from_stdin && isatty(STDIN_FILENO))
		return cli_error(CMD, "refusing to read a bundle from a terminal (pipe one in, or name "
		                      "a file)");
	int fd = STDIN_FILENO;
	err_clear();
	if (!from_stdin && (rc = fio_open(in, O_RDONLY, 0, &fd)) != 0)
		return cli_fail(CMD, in, rc);

	struct sigaction sa, old_int, old_term, old_hup;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_stop_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	sigaction(SIGHUP, &sa, &old_hup);

	struct bundle_fd bfd;
	struct stoppable stop = {.fd = fd};
	struct bundle_source src = {stoppable_read, &stop};
	bundle_source_fd(&bfd, fd, from_stdin ? "stdin" : in, &stop.inner);
	struct replay rp = {0};
	struct bundle_unpack_opts uo = {.max_bytes = max_bytes, .finish = replay_wal,
	                                .finish_ctx = &rp};
	struct bundle_db_stats us;
	double t0 = cli_now();
	rc = bundle_unpack(&src, dir, &uo, NULL, NULL, &us);
	double secs = cli_now() - t0;
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	sigaction(SIGHUP, &old_hup, NULL);
	if (!from_stdin)
		fio_close(fd);
	if (rc != 0) {
		char what[600];
		if (us.failed_entry[0])
			snprintf(what, sizeof what, "%s: entry %s", from_stdin ? "stdin" : in, us.failed_entry);
		else
			snprintf(what, sizeof what, "%s", from_stdin ? "stdin" : in);
		cli_fail(CMD, what, rc);
		if (rc != STRATA_EEXIST)
			fprintf(stderr, "strata unpack: nothing was written to %s\n", dir);
		return CLI_EXIT_FAIL;
	}
	/* The engine's own verdict, in constant time: it opens what was unpacked. */
	strata_db *db = NULL;
	if ((rc = strata_open(dir, NULL, STRATA_READONLY, &db)) != 0)
		return cli_fail(CMD, dir, rc);
	strata_close(db);
	if (json) {
		struct cli_json j;
		cli_json_init(&j, stdout);
		cli_json_obj_begin(&j, NULL);
		cli_json_str(&j, "bundle", in);
		cli_json_str(&j, "dir", dir);
		cli_json_u64(&j, "files", us.entries);
		cli_json_u64(&j, "version", us.version);
		cli_json_u64(&j, "segments", us.segments);
		cli_json_u64(&j, "vectors", rp.records ? rp.vectors : us.vectors);
		cli_json_u64(&j, "deletion_files", us.deletion_files);
		cli_json_u64(&j, "wal_files", us.wal_files);
		cli_json_u64(&j, "wal_records", us.wal_records);
		cli_json_u64(&j, "replayed_records", rp.records);
		cli_json_u64(&j, "raw_bytes", us.raw_bytes);
		cli_json_u64(&j, "bundle_bytes", us.bundle_bytes);
		cli_json_f64(&j, "seconds", secs);
		cli_json_f64(&j, "mb_per_s", mb_per_s(us.raw_bytes, secs));
		cli_json_u64(&j, "stale_removed", us.stale_removed);
		cli_json_obj_end(&j);
	}
	if (!quiet) {
		char a[32], b[32];
		if (us.stale_removed)
			fprintf(stderr, "strata unpack: removed %u temporary director%s left beside %s by an "
			                "interrupted unpack\n", us.stale_removed,
			        us.stale_removed == 1 ? "y" : "ies", dir);
		fprintf(stderr, "unpacked %s into %s: %u files, %llu vectors, %s from %s; every checksum "
		                "and segment verified",
		        from_stdin ? "stdin" : in, dir, us.entries,
		        (unsigned long long)(rp.records ? rp.vectors : us.vectors),
		        cli_fmt_bytes(us.raw_bytes, a, sizeof a), cli_fmt_bytes(us.bundle_bytes, b, sizeof b));
		if (us.deletion_files)
			fprintf(stderr, ", %u deletion file(s) checked against their segments",
			        us.deletion_files);
		if (us.wal_files)
			fprintf(stderr, ", %u WAL file(s) checked and %llu record(s) replayed into a segment",
			        us.wal_files, (unsigned long long)rp.records);
		fprintf(stderr, "; %.2f s (%.1f MB/s)\n", secs, mb_per_s(us.raw_bytes, secs));
	}
	return CLI_EXIT_OK;
}
