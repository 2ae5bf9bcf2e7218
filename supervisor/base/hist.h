/*
 * hist.h — a fixed-size latency histogram in microseconds: 16 linear
 * sub-buckets per power of two (about 6% relative error), values up to ~2^40
 * µs, O(1) record, percentiles by a walk over ~600 counters. No allocation.
 */
#ifndef SF_HIST_H
#define SF_HIST_H

#include <stdint.h>

#define SF_HIST_SUB     16
#define SF_HIST_OCTAVES 40
#define SF_HIST_BUCKETS (SF_HIST_SUB * (SF_HIST_OCTAVES + 1))

typedef struct sf_hist {
    uint64_t count, sum, max;
    uint64_t buckets[SF_HIST_BUCKETS];
} sf_hist;

void sf_hist_record(sf_hist *h, uint64_t us);
/* The value at quantile q (0..1): the upper edge of the bucket holding it. */
uint64_t sf_hist_quantile(const sf_hist *h, double q);
void sf_hist_merge(sf_hist *into, const sf_hist *from);

#endif
