/*
 * bigmem.c - large zeroed arrays: anonymous mappings, huge pages when big
 * (why: bigmem.h).
 */
#include "bigmem.h"

#include <sys/mman.h>

/* Below this a huge page would mostly hold zeros nobody asked for. */
#define BIG_HUGE_MIN (4u << 20)

void *big_zalloc(size_t bytes)
{
	size_t len = bytes ? bytes : 1;
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
	               -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	if (len >= BIG_HUGE_MIN)
		madvise(p, len, MADV_HUGEPAGE); /* advice: refused or unsupported only costs speed */
	return p;
}

void *big_zalloc_now(size_t bytes)
{
	void *p = big_zalloc(bytes);
#ifdef MADV_POPULATE_WRITE
	if (p)
		madvise(p, bytes ? bytes : 1, MADV_POPULATE_WRITE); /* before Linux 5.14: faults later */
#endif
	return p;
}

void big_free(void *p, size_t bytes)
{
	if (p)
		munmap(p, bytes ? bytes : 1);
}
