/*
 * get_many.c - strata_get_many(): strata_get() over an array of ids in one
 * call, for bindings (Python) that must not loop over ids in their own
 * language.
 *
 * It owns no state and must never differ from strata_get(): every id is read
 * by strata_get() itself, so the newest-write-wins rule, deletions and the
 * normalised cosine vectors come from one place. Each id pins the current
 * version on its own; the batch is not one snapshot (strata.h says so).
 */
#include <stdlib.h>

#include "db.h"
#include "err.h"

int strata_get_many(strata_db *db, const uint64_t *ids, size_t n, float *vectors_out,
                    uint8_t *found_out)
{
	err_clear();
	if (!db)
		return err_set(STRATA_EINVAL, "strata_get_many: null database");
	if (n > 0 && !ids)
		return err_set(STRATA_EINVAL, "strata_get_many: %zu ids but a null array", n);
	if (!vectors_out && !found_out)
		return err_set(STRATA_EINVAL, "strata_get_many: neither vectors_out nor found_out");
	size_t dim = db->dim;
	/* Existence only: each vector lands in one scratch row and is dropped. */
	float *scratch = NULL;
	if (!vectors_out && n > 0 && !(scratch = malloc(dim * sizeof(float))))
		return err_set(STRATA_ENOMEM, "strata_get_many: %zu bytes of scratch", dim * sizeof(float));
	int rc = 0;
	for (size_t i = 0; i < n; i++) {
		float *row = vectors_out ? vectors_out + i * dim : scratch;
		int r = strata_get(db, ids[i], row);
		if (r == 0) {
			if (found_out)
				found_out[i] = 1;
			continue;
		}
		if (r == STRATA_ENOTFOUND && found_out) {
			found_out[i] = 0;
			if (vectors_out)
				for (size_t j = 0; j < dim; j++)
					row[j] = 0.0f;
			continue;
		}
		if (r == STRATA_ENOTFOUND)
			rc = err_set(r, "ids[%zu] = %llu is not in the database", i, (unsigned long long)ids[i]);
		else /* strata_get's detail names the damaged segment */
			rc = err_prefix(r, "strata_get_many");
		break;
	}
	free(scratch);
	if (rc == 0)
		err_clear(); /* the ids not found are answers, not failures */
	return rc;
}
