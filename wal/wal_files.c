/*
 * wal_files.c - the WAL's files in the database directory: their names,
 * listing them in LSN order, and creating a new one durably (W3 of wal.h).
 *
 * Owns no state. It must never overwrite a file holding records: a name
 * collision with such a file is an error, not a truncation.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "fio.h"
#include "wal_internal.h"

int wal_path_join(char *buf, size_t len, const char *dir, const char *name)
{
	int n = snprintf(buf, len, "%s/%s", dir, name);
	if (n < 0 || (size_t)n >= len)
		return err_set(STRATA_EINVAL, "%s/%s: path too long", dir, name);
	return 0;
}

static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

int wal_files_list(const char *dir, uint64_t **lsns_out, size_t *n_out)
{
	*lsns_out = NULL;
	*n_out = 0;
	/* Listing is not a read or write of data: the seam has no site for it. */
	DIR *d = opendir(dir);
	if (!d)
		return err_set(errno == ENOENT ? STRATA_ENOTFOUND : err_from_errno(-errno),
		               "wal: list %s: %s", dir, strerror(errno));
	uint64_t *v = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;
	struct dirent *e;
	errno = 0;
	while ((e = readdir(d))) {
		uint64_t lsn;
		if (walrec_file_name_parse(e->d_name, &lsn) != 0)
			continue;
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 16;
			uint64_t *nv = realloc(v, nc * sizeof *nv);
			if (!nv) {
				rc = err_set(STRATA_ENOMEM, "wal: list %s: %zu names", dir, nc);
				break;
			}
			v = nv;
			cap = nc;
		}
		v[n++] = lsn;
	}
	if (!rc && errno)
		rc = err_set(err_from_errno(-errno), "wal: list %s: %s", dir, strerror(errno));
	closedir(d);
	if (rc) {
		free(v);
		return rc;
	}
	if (n > 1)
		qsort(v, n, sizeof *v, u64_cmp);
	*lsns_out = v;
	*n_out = n;
	return 0;
}

/* A failed fsync is STRATA_EFSYNC whatever errno said (wal.h, W4). */
static int wal_efsync(int rc)
{
	return rc ? err_prefix(STRATA_EFSYNC, "wal") : 0;
}

/* The existing `path` holds no record (a header at most): it may be replaced. */
static int wal_file_replace_empty(const char *path)
{
	int fd = -1;
	uint64_t size = 0;
	int rc = fio_open(path, O_RDONLY, 0, &fd);
	if (rc)
		return rc;
	rc = fio_file_size(fd, &size, path);
	fio_close(fd);
	if (rc)
		return rc;
	if (size > WAL_FILE_HEADER_SIZE)
		return err_set(STRATA_EEXIST, "wal: %s exists and holds records (%llu bytes)", path,
		               (unsigned long long)size);
	return fio_unlink(path);
}

int wal_file_create(const char *dir, const uint8_t db_uuid[16], uint32_t dim, uint64_t first_lsn,
                    int *fd_out)
{
	char name[WAL_FILE_NAME_LEN + 1], path[WAL_PATH_MAX];
	walrec_file_name(first_lsn, name, sizeof name);
	int rc = wal_path_join(path, sizeof path, dir, name);
	if (rc)
		return rc;
	int fd = -1;
	rc = fio_open(path, O_WRONLY | O_CREAT | O_EXCL, 0644, &fd);
	if (rc == STRATA_EEXIST) {
		if ((rc = wal_file_replace_empty(path)))
			return rc;
		rc = fio_open(path, O_WRONLY | O_CREAT | O_EXCL, 0644, &fd);
	}
	if (rc)
		return rc;

	struct walrec_file_header h = {.first_lsn = first_lsn, .dim = dim};
	memcpy(h.db_uuid, db_uuid, 16);
	uint8_t hb[WAL_FILE_HEADER_SIZE];
	walrec_file_header_encode(&h, hb);
	if ((rc = fio_pwrite_all(fd, hb, sizeof hb, 0, path)))
		goto fail;
	fp_step("wal.file_written");
	/* fsync, not fdatasync: the file's size and existence are metadata. */
	if ((rc = wal_efsync(fio_fsync(fd, path))))
		goto fail;
	fp_step("wal.file_synced");
	/* Opening the directory can fail with its own code; its fsync failing is EFSYNC like any other (W4). */
	int dfd = -1;
	if ((rc = fio_open(dir, O_RDONLY | O_DIRECTORY, 0, &dfd)))
		goto fail;
	rc = wal_efsync(fio_fsync(dfd, dir));
	fio_close(dfd);
	if (rc)
		goto fail;
	*fd_out = fd;
	return 0;
fail:
	fio_close(fd);
	fio_discard(path);
	return rc;
}
