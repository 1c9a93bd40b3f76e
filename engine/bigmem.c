/*
 * bigmem.c - large zeroed arrays: anonymous mappings, huge pages when big
 * (why: bigmem.h).
 */
#include "bigmem.h"

#include <sys/mman.h>

/*
 * The first 4 MiB of an array stay on 4 KiB pages: a memtable is sized for
 * a million rows, and a database that only ever holds a few thousand (or an
 * application with many small ones open) should not pay 2 MiB per array for
 * them. Past that the array is in real use and huge pages pay off.
 */
#define BIG_SMALL_HEAD (4u << 20)

void *big_zalloc(size_t bytes)
{
	size_t len = bytes ? bytes : 1;
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
	               -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	if (len > BIG_SMALL_HEAD) /* advice: refused or unsupported only costs speed */
		madvise((char *)p + BIG_SMALL_HEAD, len - BIG_SMALL_HEAD, MADV_HUGEPAGE);
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

void big_populate(void *p, size_t from, size_t to)
{
#ifdef MADV_POPULATE_WRITE
	const size_t page = 4096, step = 2u << 20;
	from = from / page * page;
	to = (to + page - 1) / page * page;
	for (size_t at = from; p && at < to; at += step) {
		size_t len = to - at < step ? to - at : step;
		if (madvise((char *)p + at, len, MADV_POPULATE_WRITE) != 0)
			return; /* refused (before Linux 5.14: EINVAL): the writer faults them in */
	}
#else
	(void)p, (void)from, (void)to;
#endif
}

void big_free(void *p, size_t bytes)
{
	if (p)
		munmap(p, bytes ? bytes : 1);
}
