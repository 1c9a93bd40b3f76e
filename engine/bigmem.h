/*
 * bigmem.h - large zeroed arrays for the memtable and incremental graphs.
 *
 * They are mapped, not malloc'd: capacity costs nothing until a page is
 * touched. Past their first 4 MiB they ask for transparent huge pages,
 * because a writer appending a batch otherwise takes one page fault per
 * 4 KiB it touches, and in a virtual machine each fault is an exit to the
 * host: measured, faults were 62% of the writer thread's CPU for batches of
 * 1,000 128-d vectors (with huge pages: one fault per 2 MiB).
 */
#ifndef STRATA_BIGMEM_H
#define STRATA_BIGMEM_H

#include <stddef.h>

/* `bytes` of zeroed memory, touched lazily; NULL when out of address space. */
void *big_zalloc(size_t bytes);
/*
 * The same, with every page made present and writable now: for an array
 * that is about to be written all over at random (a hash table being
 * rehashed), where lazy pages cost a read fault and then a copy-on-write
 * fault, with a TLB shootdown across threads, per page.
 */
void *big_zalloc_now(size_t bytes);
/*
 * Make bytes [from, to) of an array from big_zalloc present and writable now
 * (whole pages around them), so that whoever writes there next takes no page
 * fault. In steps of 2 MiB: each step holds the process's memory-map lock
 * for reading, and an mmap or munmap elsewhere (a malloc of a big buffer)
 * must not wait for a long range. Safe while other threads use the array.
 * Best effort.
 */
void big_populate(void *p, size_t from, size_t to);
/* Release what big_zalloc / big_zalloc_now returned (NULL is ignored). */
void big_free(void *p, size_t bytes);

#endif /* STRATA_BIGMEM_H */
