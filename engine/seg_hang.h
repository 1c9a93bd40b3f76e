/*
 * seg_hang.h - the indexer's background hanging of segments under the
 * largest one (seg_hang.c).
 */
#ifndef STRATA_SEG_HANG_H
#define STRATA_SEG_HANG_H

#include <stdbool.h>
#include <stdint.h>

#include "hnsw.h"

struct db_segment;
struct db_version;

/* The hanging in progress (one thread's: the indexer's). Zeroed: none. */
struct seg_hang {
	struct db_segment *seg;    /* referenced: the segment being hung */
	struct db_segment *under;  /* referenced: the segment it hangs under */
	uint32_t *near;            /* [seg's nodes * MT_ANCHOR_LINKS]: UINT32_MAX for none */
	uint32_t done;             /* nodes [0, done) looked at */
	/* A segment that could not be hung under one (a node without a live node near it). */
	uint64_t failed_seq, failed_under;
};

/*
 * One round: hang up to max_nodes more nodes of a segment of v that searches
 * walk under v's largest segment, starting one if none is in progress, and
 * publish its anchors when the last is hung. Whether there was work.
 */
bool seg_hang_round(struct seg_hang *h, const struct db_version *v, struct hnsw_scratch *hs,
                    uint32_t max_nodes);
/* Abandon the hanging in progress (the failure memory stays). */
void seg_hang_drop(struct seg_hang *h);

#endif /* STRATA_SEG_HANG_H */
