/* hist.c — log-linear latency histogram; see hist.h. */
#include "hist.h"

static unsigned bucket_of(uint64_t v)
{
    if (v < SF_HIST_SUB)
        return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v); /* >= 4 */
    unsigned octave = msb - 3;                         /* 1.. */
    if (octave > SF_HIST_OCTAVES)
        return SF_HIST_BUCKETS - 1;
    unsigned sub = (unsigned)(v >> (msb - 4)) & (SF_HIST_SUB - 1);
    return octave * SF_HIST_SUB + sub;
}

static uint64_t bucket_upper(unsigned b)
{
    if (b < SF_HIST_SUB)
        return b;
    unsigned octave = b / SF_HIST_SUB, sub = b % SF_HIST_SUB;
    unsigned shift = octave - 1;
    return ((uint64_t)(SF_HIST_SUB + sub + 1) << shift) - 1;
}

void sf_hist_record(sf_hist *h, uint64_t us)
{
    h->count++;
    h->sum += us;
    if (us > h->max)
        h->max = us;
    h->buckets[bucket_of(us)]++;
}

uint64_t sf_hist_quantile(const sf_hist *h, double q)
{
    if (h->count == 0)
        return 0;
    uint64_t rank = (uint64_t)(q * (double)h->count + 0.5);
    if (rank < 1)
        rank = 1;
    if (rank > h->count)
        rank = h->count;
    uint64_t seen = 0;
    for (unsigned b = 0; b < SF_HIST_BUCKETS; b++) {
        seen += h->buckets[b];
        if (seen >= rank) {
            if (b == SF_HIST_BUCKETS - 1)
                return h->max; /* the last bucket also holds every value past the range */
            uint64_t up = bucket_upper(b);
            return up < h->max ? up : h->max;
        }
    }
    return h->max;
}

void sf_hist_merge(sf_hist *into, const sf_hist *from)
{
    into->count += from->count;
    into->sum += from->sum;
    if (from->max > into->max)
        into->max = from->max;
    for (unsigned b = 0; b < SF_HIST_BUCKETS; b++)
        into->buckets[b] += from->buckets[b];
}
