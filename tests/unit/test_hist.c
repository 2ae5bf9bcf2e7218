/*
 * test_hist.c — the latency histogram of hist.h. What it promises, checked
 * here: count, sum and max are exact; a quantile is the upper edge of the
 * bucket holding the value at that rank, so it is never below the true value
 * and at most 1/16 (6.25%, the "about 6%" of hist.h) above it, for values up
 * to the top of its range; values under 16 are exact; q = 1 is the maximum;
 * merging equals recording everything into one histogram.
 *
 * The value at quantile q of n values is the one of nearest rank: sorted
 * ascending, the rank-th with rank = q·n rounded half up, at least 1.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hist.h"

/* The largest value the buckets cover: 16 sub-buckets in each of 40 octaves over 16. */
#define TOP ((UINT64_C(1) << (SF_HIST_OCTAVES + 4)) - 1)

static const double QS[] = {0,   0.001, 0.01, 0.1,   0.25,   0.5, 0.75,
                            0.9, 0.95,  0.99, 0.999, 0.9999, 1};

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next(void) /* splitmix64: the same values on every run */
{
    uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static uint64_t between(uint64_t lo, uint64_t hi) /* in [lo, hi) */
{
    return lo + next() % (hi - lo);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static uint64_t nearest_rank(const uint64_t *sorted, size_t n, double q)
{
    uint64_t rank = (uint64_t)(q * (double)n + 0.5);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return sorted[rank - 1];
}

/* The bound of hist.h for one reported quantile r of the true value v. */
static void expect_within_bound(uint64_t r, uint64_t v, const char *what, double q)
{
    cr_expect_geq(r, v, "%s q=%g: %llu reported for %llu, below it", what, q, (unsigned long long)r,
                  (unsigned long long)v);
    cr_expect_leq((r - v) * 16, v, "%s q=%g: %llu reported for %llu, over 1/16 above", what, q,
                  (unsigned long long)r, (unsigned long long)v);
}

/* Records vals, checks count/sum/max, then every quantile of QS against the bound. */
static void check_distribution(const char *what, uint64_t *vals, size_t n)
{
    sf_hist h = {0};
    uint64_t sum = 0, max = 0;
    for (size_t i = 0; i < n; i++) {
        sf_hist_record(&h, vals[i]);
        sum += vals[i];
        max = vals[i] > max ? vals[i] : max;
    }
    cr_expect_eq(h.count, n, "%s", what);
    cr_expect_eq(h.sum, sum, "%s", what);
    cr_expect_eq(h.max, max, "%s", what);
    qsort(vals, n, sizeof(*vals), cmp_u64);
    for (size_t i = 0; i < sizeof(QS) / sizeof(QS[0]); i++) {
        uint64_t r = sf_hist_quantile(&h, QS[i]);
        expect_within_bound(r, nearest_rank(vals, n, QS[i]), what, QS[i]);
        cr_expect_leq(r, max, "%s q=%g: over the max", what, QS[i]);
    }
    cr_expect_eq(sf_hist_quantile(&h, 1), max, "%s: q=1 is the max", what);
}

enum { N = 20000 };
static uint64_t vals[N];

Test(hist, a_zeroed_histogram_is_empty)
{
    sf_hist h = {0};
    cr_expect_eq(h.count, 0);
    cr_expect_eq(h.sum, 0);
    cr_expect_eq(h.max, 0);
    for (size_t i = 0; i < sizeof(QS) / sizeof(QS[0]); i++)
        cr_expect_eq(sf_hist_quantile(&h, QS[i]), 0, "an empty histogram says 0");
}

Test(hist, count_sum_and_max_are_exact)
{
    sf_hist h = {0};
    sf_hist_record(&h, 0);
    sf_hist_record(&h, 1000003);
    sf_hist_record(&h, 17);
    sf_hist_record(&h, 1000003);
    cr_expect_eq(h.count, 4);
    cr_expect_eq(h.sum, 2000023);
    cr_expect_eq(h.max, 1000003, "max is the value, not its bucket's edge");
    cr_expect_eq(sf_hist_quantile(&h, 1), 1000003);
    cr_expect_eq(sf_hist_quantile(&h, 0), 0, "q=0 is the smallest value");
}

/* Resetting is zeroing: a reset histogram records afresh. */
Test(hist, a_reset_histogram_forgets_everything)
{
    sf_hist h = {0};
    for (uint64_t v = 1; v < 1000; v++)
        sf_hist_record(&h, v * 1000);
    h = (sf_hist){0};
    sf_hist_record(&h, 5);
    cr_expect_eq(h.count, 1);
    cr_expect_eq(h.sum, 5);
    cr_expect_eq(h.max, 5);
    cr_expect_eq(sf_hist_quantile(&h, 0.5), 5);
    cr_expect_eq(sf_hist_quantile(&h, 0.99), 5);
}

Test(hist, values_under_16_are_exact)
{
    for (size_t i = 0; i < N; i++)
        vals[i] = next() % 16;
    sf_hist h = {0};
    for (size_t i = 0; i < N; i++)
        sf_hist_record(&h, vals[i]);
    qsort(vals, N, sizeof(*vals), cmp_u64);
    for (size_t i = 0; i < sizeof(QS) / sizeof(QS[0]); i++)
        cr_expect_eq(sf_hist_quantile(&h, QS[i]), nearest_rank(vals, N, QS[i]), "q=%g", QS[i]);
}

/*
 * Every value from 0 to 20000, and each bucket's edges in every octave up to
 * the top of the range (2^k·(16+j) - 1, 2^k·(16+j), 2^k·(16+j) + 1): one
 * histogram holds them all, distinct and sorted, so the quantile at i/n is
 * the i-th of them exactly.
 */
Test(hist, the_bound_holds_at_every_bucket_edge)
{
    enum { SMALL = 20001, EDGES = SF_HIST_OCTAVES * SF_HIST_SUB * 3 };
    static uint64_t all[SMALL + EDGES + 1];
    size_t n = 0;
    for (uint64_t v = 0; v < SMALL; v++)
        all[n++] = v;
    for (unsigned k = 0; k < SF_HIST_OCTAVES; k++)
        for (unsigned j = 0; j < SF_HIST_SUB; j++) {
            uint64_t edge = (uint64_t)(SF_HIST_SUB + j) << k;
            for (uint64_t v = edge - 1; v <= edge + 1; v++)
                if (v >= SMALL)
                    all[n++] = v;
        }
    all[n++] = TOP;
    qsort(all, n, sizeof(*all), cmp_u64);
    size_t distinct = 1;
    for (size_t i = 1; i < n; i++)
        if (all[i] != all[distinct - 1])
            all[distinct++] = all[i];
    n = distinct;

    sf_hist h = {0};
    for (size_t i = 0; i < n; i++)
        sf_hist_record(&h, all[i]);
    for (size_t i = 1; i <= n; i++) {
        double q = (double)i / (double)n;
        expect_within_bound(sf_hist_quantile(&h, q), all[i - 1], "edges", q);
    }
    cr_expect_eq(sf_hist_quantile(&h, 1), TOP);
}

Test(hist, uniform_up_to_a_second)
{
    for (size_t i = 0; i < N; i++)
        vals[i] = between(0, 1000000);
    check_distribution("uniform", vals, N);
}

/* Every octave equally likely: 1 µs to 2^40 µs (about 12.7 days). */
Test(hist, log_uniform_over_the_whole_range)
{
    for (size_t i = 0; i < N; i++) {
        unsigned msb = (unsigned)between(0, 40);
        vals[i] = (UINT64_C(1) << msb) | (next() & ((UINT64_C(1) << msb) - 1));
    }
    check_distribution("log-uniform", vals, N);
}

/* Mostly fast, a long tail: the shape the p99 and p999 are for. */
Test(hist, fast_calls_with_a_long_tail)
{
    for (size_t i = 0; i < N; i++) {
        uint64_t u = next() % 1000;
        vals[i] = u < 950   ? between(200, 5000)
                  : u < 999 ? between(5000, 500000)
                            : between(1000000, 30000000);
    }
    check_distribution("tail", vals, N);
}

Test(hist, two_far_apart_modes)
{
    for (size_t i = 0; i < N; i++)
        vals[i] = next() % 2 ? between(90, 110) : between(990000, 1010000);
    check_distribution("bimodal", vals, N);
}

Test(hist, one_value_many_times)
{
    for (size_t i = 0; i < N; i++)
        vals[i] = 1234567;
    check_distribution("constant", vals, N);
}

/* The highest octave the buckets hold, past the "~2^40" of hist.h. */
Test(hist, values_at_the_top_of_the_range)
{
    for (size_t i = 0; i < N; i++)
        vals[i] = between(UINT64_C(1) << (SF_HIST_OCTAVES + 3), TOP + 1);
    check_distribution("top octave", vals, N);
}

/*
 * Past the range, values share the last bucket: they still count in count,
 * sum and max, and a quantile that falls among them reads as the max, never
 * as less than the value there.
 */
Test(hist, values_past_the_range_read_as_the_max)
{
    sf_hist h = {0};
    uint64_t huge = UINT64_C(1) << 50;
    sf_hist_record(&h, 10);
    sf_hist_record(&h, huge);
    sf_hist_record(&h, huge);
    cr_expect_eq(h.count, 3);
    cr_expect_eq(h.sum, huge * 2 + 10);
    cr_expect_eq(h.max, huge);
    cr_expect_eq(sf_hist_quantile(&h, 0), 10);
    cr_expect_eq(sf_hist_quantile(&h, 0.5), huge);
    cr_expect_eq(sf_hist_quantile(&h, 1), huge);
    sf_hist_record(&h, UINT64_MAX);
    cr_expect_eq(sf_hist_quantile(&h, 1), UINT64_MAX);
}

/* Merging per-worker histograms is the same as one histogram of all calls. */
Test(hist, merge_equals_recording_into_one)
{
    sf_hist a = {0}, b = {0}, all = {0};
    for (size_t i = 0; i < N; i++) {
        uint64_t v = i % 3 ? between(100, 10000) : between(50000, 5000000);
        sf_hist_record(i % 2 ? &a : &b, v);
        sf_hist_record(&all, v);
    }
    sf_hist merged = {0};
    sf_hist_merge(&merged, &a);
    sf_hist_merge(&merged, &b);
    cr_expect_eq(merged.count, all.count);
    cr_expect_eq(merged.sum, all.sum);
    cr_expect_eq(merged.max, all.max);
    cr_expect_arr_eq(merged.buckets, all.buckets, sizeof(all.buckets));
    for (size_t i = 0; i < sizeof(QS) / sizeof(QS[0]); i++)
        cr_expect_eq(sf_hist_quantile(&merged, QS[i]), sf_hist_quantile(&all, QS[i]), "q=%g",
                     QS[i]);

    sf_hist empty = {0}, before = a;
    sf_hist_merge(&a, &empty);
    cr_expect_arr_eq(&a, &before, sizeof(a), "merging an empty histogram changes nothing");
}
