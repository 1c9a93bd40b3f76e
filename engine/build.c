/*
 * build.c - strata_build(): the offline bulk build of a whole database
 * directory (one segment, a manifest, no WAL).
 *
 * Crash and failure behaviour: everything is written into a temporary
 * directory beside the target (".<name>.tmp-XXXXXX"), each file fsynced, the
 * temporary directory fsynced, then renamed over the (absent or empty) target
 * and the parent fsynced. A failed or killed build leaves at most that
 * temporary directory, never a half-written database under the target name.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "db.h"
#include "err.h"
#include "fio.h"
#include "hnsw.h"
#include "manifest.h"
#include "segment.h"

static int check_vectors(const float *v, size_t n, uint32_t dim)
{
	for (size_t r = 0; r < n; r++) {
		const float *row = v + r * dim;
		for (uint32_t j = 0; j < dim; j++) {
			if (!isfinite(row[j]))
				return err_set(STRATA_ENONFINITE, "row %zu, component %u is %s", r, j,
				               isnan(row[j]) ? "NaN" : "infinite");
		}
	}
	return 0;
}

static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

/* Refuse duplicate ids and STRATA_NO_ID before spending the build on them. */
static int check_ids(const uint64_t *ids, size_t n)
{
	if (!ids)
		return 0;
	uint64_t *s = malloc((n ? n : 1) * sizeof *s);
	if (!s)
		return err_set(STRATA_ENOMEM, "checking %zu ids", n);
	memcpy(s, ids, n * sizeof *s);
	qsort(s, n, sizeof *s, u64_cmp);
	int rc = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == STRATA_NO_ID) {
			rc = err_set(STRATA_EINVAL, "id %llu (STRATA_NO_ID) cannot be stored",
			             (unsigned long long)s[i]);
			break;
		}
		if (i && s[i] == s[i - 1]) {
			rc = err_set(STRATA_EDUPLICATE, "id %llu appears more than once",
			             (unsigned long long)s[i]);
			break;
		}
	}
	free(s);
	return rc;
}

/* dir/name into buf; false if it does not fit. */
static bool path_join(char *buf, size_t len, const char *dir, const char *name)
{
	int n = snprintf(buf, len, "%s/%s", dir, name);
	return n >= 0 && (size_t)n < len;
}

/* Remove the temporary directory and what a failed build left in it. */
static void remove_tmp(const char *tmp)
{
	DIR *d = opendir(tmp);
	if (d) {
		struct dirent *e;
		while ((e = readdir(d))) {
			if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
				continue;
			char p[4096];
			if (path_join(p, sizeof p, tmp, e->d_name))
				fio_unlink(p);
		}
		closedir(d);
	}
	fio_rmdir(tmp);
}

int db_write_graph(const char *path, uint32_t dim, uint32_t metric, uint32_t M,
                   uint32_t ef_construction, uint64_t seed, const struct hnsw_view *v,
                   const uint64_t *node_ids, uint64_t n, uint64_t *xxh3_out, uint64_t *size_out)
{
	struct seg_write_input in = {
		.dim = dim,
		.metric = metric,
		.M = M,
		.ef_construction = ef_construction,
		.max_level = v->max_level,
		.entry = n ? v->entry : SEG_NO_NODE,
		.count = n,
		.stride = (uint32_t)v->stride,
		.upper_count = v->upper_count,
		.upper_blocks = v->upper_blocks,
		.seed = seed,
		.nodes = v->nodes,
		.upper_index = v->upper_index,
		.upper_links = v->upper_links,
		.ids = node_ids,
	};
	int rc = seg_write(path, &in, xxh3_out);
	if (rc || !size_out)
		return rc;
	int fd;
	if ((rc = fio_open(path, O_RDONLY | O_CLOEXEC, 0, &fd)))
		return rc;
	rc = fio_file_size(fd, size_out, path);
	fio_close(fd);
	return rc;
}

static int write_segment(const char *tmp, const strata_options *o, const struct hnsw_graph *g,
                         const uint64_t *ids, size_t n, uint64_t *xxh3_out, uint64_t *size_out)
{
	struct hnsw_view v;
	hnsw_graph_view(g, &v);
	uint64_t *node_ids = malloc((n ? n : 1) * sizeof *node_ids);
	if (!node_ids)
		return err_set(STRATA_ENOMEM, "id table of %zu vectors", n);
	for (size_t r = 0; r < n; r++)
		node_ids[hnsw_graph_node_of_row(g, r)] = ids ? ids[r] : (uint64_t)r;

	char name[MF_SEGMENT_NAME_LEN + 1], path[4096];
	mf_segment_name(1, name, sizeof name);
	if (!path_join(path, sizeof path, tmp, name)) {
		free(node_ids);
		return err_set(STRATA_EINVAL, "%s: path too long", tmp);
	}
	int rc = db_write_graph(path, o->dim, (uint32_t)o->metric, o->M, o->ef_construction, o->seed,
	                        &v, node_ids, n, xxh3_out, size_out);
	free(node_ids);
	return rc;
}

int strata_build(const char *dir, const strata_options *opts, const uint64_t *ids,
                 const float *vectors, size_t n)
{
	err_clear();
	if (!dir || !*dir || !opts)
		return err_set(STRATA_EINVAL, "strata_build: null or empty argument");
	if (n > 0 && !vectors)
		return err_set(STRATA_EINVAL, "strata_build: %zu vectors but a null pointer", n);
	strata_options o = *opts;
	if (o.ef_search == 0)
		o.ef_search = 64;
	int rc = db_check_params(&o);
	if (rc)
		return rc;
	if (n > SEG_COUNT_MAX)
		return err_set(STRATA_ELIMIT, "%zu vectors: one build holds at most %llu", n,
		               (unsigned long long)SEG_COUNT_MAX);
	if ((rc = fio_dir_free_for(dir)) || (rc = check_vectors(vectors, n, o.dim)) ||
	    (rc = check_ids(ids, n)))
		return rc;

	/* The temporary directory must be on the same file system: beside the target. */
	char parent_buf[4096], base_buf[4096], tmp[4096];
	snprintf(parent_buf, sizeof parent_buf, "%s", dir);
	snprintf(base_buf, sizeof base_buf, "%s", dir);
	const char *parent = dirname(parent_buf);
	const char *base = basename(base_buf);
	if (snprintf(tmp, sizeof tmp, "%s/.%s.tmp-XXXXXX", parent, base) >= (int)sizeof tmp)
		return err_set(STRATA_EINVAL, "strata_build: path too long");
	/* Through the seam like every other call: failpoints and the power-loss recorder see it. */
	if ((rc = fio_mkdtemp(tmp))) {
		if (rc == STRATA_ENOTFOUND)
			return err_set(rc, "%s: the parent directory %s does not exist", dir, parent);
		return rc;
	}
	/* mkdtemp makes it 0700; a database is shipped and shared like any directory. */
	chmod(tmp, 0755);

	struct hnsw_graph *g = NULL;
	struct hnsw_build_params bp = {
		.dim = o.dim,
		.metric = o.metric,
		.M = o.M,
		.ef_construction = o.ef_construction,
		.threads = o.threads ? o.threads : db_cpu_count(),
		.seed = o.seed,
		.progress = o.progress,
		.progress_ctx = o.progress_ctx,
	};
	if ((rc = hnsw_build(&bp, vectors, n, &g)))
		goto fail;

	struct mf_segment seg = {.seq = 1, .count = n};
	if ((rc = write_segment(tmp, &o, g, ids, n, &seg.header_xxh3, &seg.file_size)))
		goto fail;
	hnsw_graph_free(g);
	g = NULL;

	struct mf_manifest mf = {
		.dim = o.dim,
		.metric = (uint32_t)o.metric,
		.M = o.M,
		.ef_construction = o.ef_construction,
		.ef_search = o.ef_search,
		.generation = 1,
		.next_seq = 2,
		.segment_count = 1,
		.segments = &seg,
	};
	db_random_bytes(mf.db_uuid, sizeof mf.db_uuid);
	if ((rc = mf_commit(tmp, &mf)) || (rc = fio_fsync_dir(tmp)))
		goto fail;
	/* rename(2) replaces an empty directory atomically; a non-empty one was refused above. */
	if ((rc = fio_rename(tmp, dir)))
		goto fail;
	if ((rc = fio_fsync_dir(parent))) {
		/*
		 * The new name may not survive a crash, and a failed build must leave
		 * nothing: take the database back under its temporary name and remove it.
		 */
		char why[ERR_DETAIL_MAX];
		snprintf(why, sizeof why, "%s", err_detail());
		if (fio_rename(dir, tmp) == 0) {
			err_set(rc, "%s", why);
			goto fail;
		}
		return err_set(rc, "%s; the database built at %s could not be removed", why, dir);
	}
	return 0;
fail:
	hnsw_graph_free(g);
	{
		/* Cleanup goes through the I/O seam too; keep the detail of the real failure. */
		char why[ERR_DETAIL_MAX];
		snprintf(why, sizeof why, "%s", err_detail());
		remove_tmp(tmp);
		err_set(rc, "%s", why);
	}
	return rc;
}
