/*
 * failpoint.c - the armed failures of the I/O seam (failpoint.h), compiled
 * only when STRATA_FAILPOINTS=1 (test builds).
 *
 * Owns, per site, a call counter and at most one armed failure: the nth call
 * since arming (1-based), or with fp_arm_sticky() every call from the nth on,
 * returns the armed -errno. Also the named steps: at most one armed crash
 * (a step name, which passage, how) and an optional trace of the steps passed.
 * Thread-safe (one mutex: failpoints sit in front of system calls, so its
 * cost is noise). It must never fail or allocate, and it is never part of a
 * release build.
 */
#include "failpoint.h"

#if STRATA_FAILPOINTS

#include <limits.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "fio_record.h"

struct fp_state {
	int hits;        /* calls since arming (or since the last fp_disarm_all) */
	int nth;         /* 0 = disarmed */
	int errno_value; /* positive errno, or FP_SHORT */
	bool sticky;     /* every call from the nth on fails */
};

static pthread_mutex_t fp_lock = PTHREAD_MUTEX_INITIALIZER;
static struct fp_state fp_sites[FP_SITE_COUNT];

static bool fp_site_ok(enum fp_site site)
{
	return (unsigned)site < FP_SITE_COUNT;
}

static void fp_trace_put(const char *name); /* fp_lock held */

int fp_inject(enum fp_site site)
{
	int rc = 0;
	if (!fp_site_ok(site))
		return 0;
	pthread_mutex_lock(&fp_lock);
	struct fp_state *s = &fp_sites[site];
	if (s->hits < INT_MAX)
		s->hits++;
	if (s->nth > 0 && (s->sticky ? s->hits >= s->nth : s->hits == s->nth)) {
		rc = -s->errno_value;
		fp_trace_put(FP_INJECTED);
	}
	pthread_mutex_unlock(&fp_lock);
	return rc;
}

static void fp_set(enum fp_site site, int nth, int errno_value, bool sticky)
{
	if (!fp_site_ok(site))
		return;
	pthread_mutex_lock(&fp_lock);
	fp_sites[site] = (struct fp_state){
		.hits = 0,
		.nth = nth > 0 && errno_value > 0 ? nth : 0,
		.errno_value = errno_value,
		.sticky = sticky,
	};
	pthread_mutex_unlock(&fp_lock);
}

void fp_arm(enum fp_site site, int nth, int errno_value)
{
	fp_set(site, nth, errno_value, false);
}

void fp_arm_sticky(enum fp_site site, int nth, int errno_value)
{
	fp_set(site, nth, errno_value, true);
}

int fp_hits(enum fp_site site)
{
	if (!fp_site_ok(site))
		return 0;
	pthread_mutex_lock(&fp_lock);
	int h = fp_sites[site].hits;
	pthread_mutex_unlock(&fp_lock);
	return h;
}

/* ---- named steps ---- */

#if STRATA_COVERAGE
void __gcov_dump(void); /* libgcov's: a crash keeps what it counted */
#endif

static struct {
	const char *name; /* armed step, NULL = none */
	int nth;
	int hits;
	enum fp_crash how;
	bool crashed;
	bool tracing;
	int trace_n;
	const char *trace[FP_TRACE_MAX];
} fp_steps;

static void fp_trace_put(const char *name)
{
	if (!fp_steps.tracing)
		return;
	if (fp_steps.trace_n < FP_TRACE_MAX)
		fp_steps.trace[fp_steps.trace_n] = name;
	if (fp_steps.trace_n < INT_MAX)
		fp_steps.trace_n++;
}

void fp_step(const char *name)
{
	bool crash = false;
	pthread_mutex_lock(&fp_lock);
	fp_trace_put(name);
	if (fp_steps.name && !fp_steps.crashed && strcmp(fp_steps.name, name) == 0 &&
	    ++fp_steps.hits == fp_steps.nth) {
		crash = true;
		fp_steps.crashed = true;
	}
	enum fp_crash how = fp_steps.how;
	pthread_mutex_unlock(&fp_lock);
	if (!crash)
		return;
	if (how == FP_CRASH_EXIT) {
#if STRATA_COVERAGE
		__gcov_dump();
#endif
		_exit(FP_CRASH_EXIT_CODE);
	}
	fio_record_crash_after(1); /* already past: the next mutating call dies */
}

void fp_arm_crash(const char *name, int nth, enum fp_crash how)
{
	pthread_mutex_lock(&fp_lock);
	fp_steps.name = nth > 0 ? name : NULL;
	fp_steps.nth = nth;
	fp_steps.hits = 0;
	fp_steps.how = how;
	fp_steps.crashed = false;
	pthread_mutex_unlock(&fp_lock);
}

bool fp_crashed(void)
{
	pthread_mutex_lock(&fp_lock);
	bool c = fp_steps.crashed;
	pthread_mutex_unlock(&fp_lock);
	return c;
}

void fp_trace_start(void)
{
	pthread_mutex_lock(&fp_lock);
	fp_steps.tracing = true;
	fp_steps.trace_n = 0;
	pthread_mutex_unlock(&fp_lock);
}

int fp_trace_get(const char **names_out, int max)
{
	pthread_mutex_lock(&fp_lock);
	int n = fp_steps.trace_n;
	for (int i = 0; i < max && i < n && i < FP_TRACE_MAX; i++)
		names_out[i] = fp_steps.trace[i];
	pthread_mutex_unlock(&fp_lock);
	return n;
}

void fp_disarm_all(void)
{
	pthread_mutex_lock(&fp_lock);
	for (int i = 0; i < FP_SITE_COUNT; i++)
		fp_sites[i] = (struct fp_state){0};
	fp_steps.name = NULL;
	fp_steps.nth = fp_steps.hits = 0;
	fp_steps.crashed = false;
	fp_steps.tracing = false;
	fp_steps.trace_n = 0;
	pthread_mutex_unlock(&fp_lock);
}

#else

/* Release builds have no failpoints; ISO C wants a non-empty translation unit. */
typedef int fp_compiled_out;

#endif
