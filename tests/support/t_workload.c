/*
 * t_workload.c - see t_workload.h.
 */
#include "t_workload.h"

#include <criterion/criterion.h>
#include <string.h>

static uint64_t t_wl_rng(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

void t_wl_vec(uint64_t id, uint32_t ver, float *v)
{
	uint64_t s = id * 7919u + ver;
	for (int j = 0; j < T_WL_DIM; j++)
		v[j] = (float)(t_wl_rng(&s) % 1000) / 10.0f;
}

void t_wl_make(struct t_workload *w)
{
	uint32_t next_ver[T_WL_IDS] = {0};
	uint64_t s = 12345;
	for (int i = 0; i < T_WL_OPS; i++) {
		struct t_wl_op *o = &w->ops[i];
		memset(o, 0, sizeof *o);
		if (i % 11 == 10) {
			o->kind = i == 32 ? T_WL_COMPACT : T_WL_FLUSH; /* 4 segments by then: a merge */
			continue;
		}
		if (i == 27) {
			o->kind = T_WL_REOPEN;
			continue;
		}
		o->kind = i > 12 && t_wl_rng(&s) % 4 == 0 ? T_WL_DELETE : T_WL_UPSERT;
		o->n = 1 + t_wl_rng(&s) % T_WL_BATCH;
		for (size_t k = 0; k < o->n; k++) {
			uint64_t id = t_wl_rng(&s) % T_WL_IDS;
			bool dup = true;
			while (dup) {
				dup = false;
				for (size_t j = 0; j < k; j++)
					dup |= o->ids[j] == id;
				if (dup)
					id = (id + 1) % T_WL_IDS;
			}
			o->ids[k] = id;
			o->ver[k] = ++next_ver[id];
		}
	}
}

strata_options t_wl_options(void)
{
	strata_options o;
	strata_options_default(&o);
	o.dim = T_WL_DIM;
	o.M = 4;
	o.ef_construction = 16;
	o.threads = 1;
	o.memtable_max_vectors = 1000; /* flushes only where the workload asks: I/O in a fixed order */
	o.disable_background_merges = true; /* merges too: strata_compact, in the caller's thread */
	o.wal_file_bytes = 1024;       /* rotations, and removals of flushed files */
	return o;
}

int t_wl_run(const struct t_workload *w, const char *dir, strata_db **db,
             void (*ack)(void *ctx, int i), void *ctx, int *rc_out)
{
	strata_options o = t_wl_options();
	int i;
	for (i = 0; i < T_WL_OPS; i++) {
		const struct t_wl_op *op = &w->ops[i];
		float vecs[T_WL_BATCH * T_WL_DIM];
		int rc = 0;
		switch (op->kind) {
		case T_WL_UPSERT:
			for (size_t k = 0; k < op->n; k++)
				t_wl_vec(op->ids[k], op->ver[k], vecs + k * T_WL_DIM);
			rc = strata_upsert(*db, op->ids, vecs, op->n);
			break;
		case T_WL_DELETE:
			rc = strata_delete(*db, op->ids, op->n);
			break;
		case T_WL_FLUSH:
			rc = strata_flush(*db);
			break;
		case T_WL_COMPACT:
			rc = strata_compact(*db);
			break;
		case T_WL_REOPEN:
			rc = strata_close(*db);
			*db = NULL;
			if (!rc)
				rc = strata_open(dir, &o, 0, db);
			break;
		}
		if (rc) {
			if (rc_out)
				*rc_out = rc;
			break;
		}
		ack(ctx, i);
	}
	return i;
}

int t_wl_run_dir(const struct t_workload *w, const char *dir, void (*ack)(void *ctx, int i), void *ctx)
{
	strata_options o = t_wl_options();
	strata_db *db = NULL;
	if (strata_open(dir, &o, 0, &db) != 0)
		return -1;
	int end = t_wl_run(w, dir, &db, ack, ctx, NULL);
	if (db)
		strata_close(db); /* after a crash its syncs fail: that is the point */
	return end;
}

void t_wl_ack_mem(void *ctx, int i)
{
	struct t_wl_acks *a = ctx;
	if (i == a->n)
		a->n = i + 1;
}

/* What the first n ops leave: the version of each id, 0 = absent. */
static void t_wl_model(const struct t_workload *w, int n, uint32_t ver[T_WL_IDS])
{
	memset(ver, 0, T_WL_IDS * sizeof *ver);
	for (int i = 0; i < n && i < T_WL_OPS; i++)
		for (size_t k = 0; k < w->ops[i].n; k++)
			ver[w->ops[i].ids[k]] = w->ops[i].kind == T_WL_UPSERT ? w->ops[i].ver[k] : 0;
}

bool t_wl_holds(strata_db *db, uint64_t id, uint32_t ver)
{
	float got[T_WL_DIM], want[T_WL_DIM];
	int rc = strata_get(db, id, got);
	if (!ver)
		return rc == STRATA_ENOTFOUND;
	t_wl_vec(id, ver, want);
	return rc == 0 && memcmp(got, want, sizeof got) == 0;
}

static void t_wl_check_reopen_skip(const struct t_workload *w, const char *dir, int acked,
                                   uint64_t skip, const char *what);

void t_wl_check_reopen(const struct t_workload *w, const char *dir, int acked, const char *what)
{
	t_wl_check_reopen_skip(w, dir, acked, UINT64_MAX, what);
}

void t_wl_check_reopen_except(const struct t_workload *w, const char *dir, int acked, uint64_t id,
                              const char *what)
{
	t_wl_check_reopen_skip(w, dir, acked, id, what);
}

static void t_wl_check_reopen_skip(const struct t_workload *w, const char *dir, int acked,
                                   uint64_t skip, const char *what)
{
	strata_options o = t_wl_options();
	strata_db *db = NULL;
	int rc = strata_open(dir, &o, STRATA_VERIFY, &db);
	cr_assert_eq(rc, 0, "%s: reopen: %s: %s", what, strata_strerror(rc), strata_last_error_detail());
	uint32_t pre[T_WL_IDS], post[T_WL_IDS];
	t_wl_model(w, acked, pre);
	t_wl_model(w, acked + 1, post); /* the op in flight, applied */
	bool is_pre = true, is_post = true;
	for (uint64_t id = 0; id < T_WL_IDS; id++) {
		if (id == skip)
			continue;
		bool a = t_wl_holds(db, id, pre[id]), b = t_wl_holds(db, id, post[id]);
		cr_assert(a || b, "%s: id %llu lost or damaged (%u acknowledged, %u in flight)", what,
		          (unsigned long long)id, pre[id], post[id]);
		is_pre &= a;
		is_post &= b;
	}
	cr_assert(is_pre || is_post, "%s: the call in flight (op %d) is half applied", what, acked);
	struct strata_stats st;
	cr_assert_eq(strata_stats(db, &st), 0);
	cr_assert_eq(st.write_error, 0, "%s: a reopened database reports write_error %d", what,
	             st.write_error);
	/* It takes writes again. */
	float v[T_WL_DIM];
	uint64_t id = 7;
	t_wl_vec(id, 1000, v);
	rc = strata_upsert(db, &id, v, 1);
	cr_assert_eq(rc, 0, "%s: write after reopen: %s", what, strata_last_error_detail());
	rc = strata_flush(db);
	cr_assert_eq(rc, 0, "%s: flush after reopen: %s", what, strata_last_error_detail());
	cr_assert(t_wl_holds(db, id, 1000));
	cr_assert_eq(strata_close(db), 0);
}
