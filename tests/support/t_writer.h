/*
 * t_writer.h - a child process that keeps writing a database while a test
 * reads, packs or copies it (tests of pack beside a live writer), and the
 * check that a copy holds exactly the state after some prefix of its writes.
 *
 * The writer's script, call c = 0, 1, 2, ...: if c % 4 == 3 and c >= 150 it
 * deletes id c - 150, else it upserts id c with t_writer_vector(c). Each call
 * is one strata_upsert / strata_delete (one WAL record); the count of calls
 * acknowledged (returned 0) is published in shared memory. A small memtable
 * makes the writer flush every few dozen calls, and its background merges
 * replace segment and deletion files meanwhile.
 */
#ifndef STRATA_T_WRITER_H
#define STRATA_T_WRITER_H

#include <stdint.h>
#include <sys/types.h>

#include "strata.h"

struct t_writer {
	pid_t pid;
	volatile uint64_t *acked; /* shared with the child: calls acknowledged so far */
	uint32_t dim;
};

/*
 * Create a database of `dim` in `dir` (which must not hold one) and fork the
 * writer; returns once it has acknowledged `min_calls` calls.
 */
void t_writer_start(struct t_writer *w, const char *dir, uint32_t dim, uint64_t min_calls);
uint64_t t_writer_acked(const struct t_writer *w);
/* SIGKILL the writer and reap it. */
void t_writer_stop(struct t_writer *w);

/* The vector of id i (dim floats, malloc'd). */
float *t_writer_vector(uint64_t i, uint32_t dim);

/*
 * Assert that `db` holds exactly the state after P calls of the script for
 * some lo <= P <= hi (every id and its vector, checked with strata_get), and
 * return that P.
 */
uint64_t t_writer_check_prefix(strata_db *db, uint32_t dim, uint64_t lo, uint64_t hi);

#endif /* STRATA_T_WRITER_H */
