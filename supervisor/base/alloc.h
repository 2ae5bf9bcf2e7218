/*
 * alloc.h — allocation with one out-of-memory policy: log and abort.
 *
 * sf_xmalloc, sf_xcalloc and sf_xrealloc never return NULL. When the system
 * refuses memory they write one `level=error event=out_of_memory bytes=N`
 * line to stderr and call abort().
 *
 * Why abort rather than return NULL: what the daemon allocates is small
 * bookkeeping (session FIFOs, map slots, job records) on paths that have no
 * useful way to go on without it, and a NULL handled half-way is an untested
 * path that corrupts state or crashes later, far from the cause. Dying at once
 * is safe for the guarantees: an offset is committed only after its reply, so
 * whatever was in flight is consumed again by the next owner of the
 * partition, and the session store's fencing turns away the old owner. The
 * supervisor's service manager restarts the process.
 *
 * Allocations whose size comes from outside (a request's payload, a frame
 * from a worker) are bounded by their limits before they get here.
 */
#ifndef SF_ALLOC_H
#define SF_ALLOC_H

#include <stddef.h>

void *sf_xmalloc(size_t size);
void *sf_xcalloc(size_t n, size_t size);
void *sf_xrealloc(void *p, size_t size);

#endif
