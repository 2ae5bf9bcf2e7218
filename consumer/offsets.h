/*
 * offsets.h — the per-partition offset tracker: which consumed requests are
 * finished (their reply acknowledged by Kafka), and the offset that may be
 * committed — one past the contiguous finished prefix, never beyond a
 * request that is still open. Requests finish in any order (sessions run in
 * parallel); the commit point only moves over an unbroken run.
 *
 * Offsets arrive in increasing order (gaps allowed: compaction, transaction
 * markers). Memory is one entry per open or not-yet-committed request.
 */
#ifndef SF_OFFSETS_H
#define SF_OFFSETS_H

#include <stddef.h>
#include <stdint.h>

typedef struct sf_offsets sf_offsets;

sf_offsets *sf_offsets_new(void);
void sf_offsets_free(sf_offsets *t);

/* Records a consumed offset. Returns -1 if it is not above the last one tracked. */
int sf_offsets_track(sf_offsets *t, int64_t offset);

/*
 * Marks a tracked offset finished. Returns the new commit offset (the next
 * offset to consume) when the contiguous prefix grew, 0 when it did not, -1
 * when the offset is not tracked.
 */
int64_t sf_offsets_done(sf_offsets *t, int64_t offset);

/* The current commit offset (one past the finished prefix), or -1 if none yet. */
int64_t sf_offsets_committable(const sf_offsets *t);

/* Tracked offsets not yet finished. */
size_t sf_offsets_open(const sf_offsets *t);

#endif
