/*
 * fio.h - the one file I/O seam of strata.
 *
 * Every open, read, write, sync, rename, unlink and mmap that format/, wal/
 * and engine/ perform goes through here, so tests can fail, shorten or tear
 * any of them (failpoint.h). Functions return 0 or a negative STRATA_E* code
 * (mapped from errno by err_from_errno) and set the error detail with the path.
 * Failpoint sites: open FP_OPEN, pread and read FP_READ, pwrite and write_all
 * FP_WRITE, ftruncate FP_WRITE, fsync and fdatasync FP_FSYNC, rename FP_RENAME, mmap FP_MMAP,
 * mkdir and mkdtemp FP_MKDIR, unlink, rmdir and discard FP_UNLINK; the
 * composite calls fail through their parts.
 */
#ifndef STRATA_FIO_H
#define STRATA_FIO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

int fio_open(const char *path, int flags, mode_t mode, int *fd_out);
int fio_close(int fd);
/* Write all `len` bytes at `off` (retrying short writes and EINTR). */
int fio_pwrite_all(int fd, const void *buf, size_t len, uint64_t off, const char *path);
/* Read exactly `len` bytes at `off`; STRATA_ETRUNCATED if the file ends first. */
int fio_pread_all(int fd, void *buf, size_t len, uint64_t off, const char *path);
/*
 * Sequential forms for descriptors that cannot seek (pipes, stdin, stdout):
 * read at most `len` bytes (*n_out = 0 only at the end of the input; EINTR
 * is retried), and write all `len` bytes at the current position.
 */
int fio_read(int fd, void *buf, size_t len, size_t *n_out, const char *path);
int fio_write_all(int fd, const void *buf, size_t len, const char *path);
int fio_fsync(int fd, const char *path);
int fio_fdatasync(int fd, const char *path);
int fio_file_size(int fd, uint64_t *size_out, const char *path);
/*
 * Cut or extend (with zeros) the file to `len` bytes (the WAL cuts a torn tail
 * with it); failpoint site FP_WRITE: cutting a file is a write.
 */
int fio_ftruncate(int fd, uint64_t len, const char *path);
int fio_rename(const char *from, const char *to);
int fio_unlink(const char *path);
/*
 * Remove a partial file on a failure path: a missing file is success, and the
 * current error detail is left alone (the first failure is the one to report).
 * Returns 0 or the code of the failed unlink, without a detail.
 */
int fio_discard(const char *path);
int fio_mkdir(const char *path, mode_t mode);
int fio_rmdir(const char *path);
/* mkdtemp(3): `tmpl` ends in "XXXXXX", which is replaced; the directory is 0700. */
int fio_mkdtemp(char *tmpl);
/* Bytes an unprivileged user may still write on the file system holding `path` (statvfs). */
int fio_free_bytes(const char *path, uint64_t *bytes_out);
/*
 * 0 if `dir` does not exist or is an empty directory: a place a new database
 * may be renamed into (rename(2) replaces an empty directory atomically).
 * STRATA_EEXIST if it is a file or a non-empty directory, with the detail set.
 */
int fio_dir_free_for(const char *dir);
/* fsync the directory `dir` so that creates, renames and unlinks in it are durable. */
int fio_fsync_dir(const char *dir);
/* Map `len` bytes of `fd` read-only (len may be 0: *addr_out = NULL). */
int fio_mmap_ro(int fd, size_t len, const char *path, const void **addr_out);
void fio_munmap(const void *addr, size_t len);
/* Read a whole small file into a malloc'd buffer (at most max_len bytes, else STRATA_ELIMIT). */
int fio_read_file(const char *path, size_t max_len, uint8_t **buf_out, size_t *len_out);
/* Write `len` bytes to `path` via `path`.tmp, fsync, rename, fsync the directory. */
int fio_write_file_atomic(const char *dir, const char *name, const void *buf, size_t len);

/*
 * I/O that bypasses the calls above (wal/'s io_uring backend) reports itself
 * here once it completed, so that a test's recorder of writes and syncs (the
 * power-loss simulation, fio_record.h) sees every byte that reached the file.
 * Call them for every completed write (with the bytes that landed) and every
 * completed fsync/fdatasync of a descriptor from fio_open. No-ops unless a
 * recorder is active (test builds only).
 */
void fio_note_write(int fd, const void *buf, size_t len, uint64_t off);
void fio_note_sync(int fd);

#endif /* STRATA_FIO_H */
