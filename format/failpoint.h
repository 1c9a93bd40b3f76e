/*
 * failpoint.h - named places in the I/O seam where tests inject failures.
 *
 * Compiled in only when the build sets STRATA_FAILPOINTS=1 (meson option
 * `failpoints`, on in test builds); in release builds fp_inject() is an
 * inline 0 and costs nothing.
 */
#ifndef STRATA_FAILPOINT_H
#define STRATA_FAILPOINT_H

enum fp_site {
	FP_OPEN,
	FP_READ,
	FP_WRITE,      /* error, or a short write when armed with FP_SHORT */
	FP_FSYNC,
	FP_RENAME,
	FP_MMAP,
	FP_MKDIR,
	FP_UNLINK,
	FP_SITE_COUNT
};

/* Pseudo-errno for FP_WRITE: write only half of the request, then report success of that part. */
#define FP_SHORT 100000

#if STRATA_FAILPOINTS
/* 0, or the -errno (or -FP_SHORT) a test armed for this call. */
int fp_inject(enum fp_site site);
/* Make the nth (1-based) call at `site` from now on return -errno_value. */
void fp_arm(enum fp_site site, int nth, int errno_value);
/* Same, but every call from the nth on fails (a full disk stays full). */
void fp_arm_sticky(enum fp_site site, int nth, int errno_value);
/* How many calls `site` has seen since it was armed. */
int fp_hits(enum fp_site site);
void fp_disarm_all(void);
#else
static inline int fp_inject(enum fp_site site)
{
	(void)site;
	return 0;
}
#endif

#endif /* STRATA_FAILPOINT_H */
