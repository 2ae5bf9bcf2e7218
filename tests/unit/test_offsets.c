/* test_offsets.c — the commit point moves only over a contiguous finished prefix. */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "offsets.h"

Test(offsets, commit_waits_for_the_oldest_open_request)
{
    sf_offsets *t = sf_offsets_new();
    for (int64_t o = 10; o < 15; o++)
        cr_assert_eq(sf_offsets_track(t, o), 0);
    cr_expect_eq(sf_offsets_done(t, 12), 0);
    cr_expect_eq(sf_offsets_done(t, 11), 0);
    cr_expect_eq(sf_offsets_committable(t), -1);
    cr_expect_eq(sf_offsets_done(t, 10), 13);
    cr_expect_eq(sf_offsets_committable(t), 13);
    cr_expect_eq(sf_offsets_open(t), 2);
    cr_expect_eq(sf_offsets_done(t, 14), 0);
    cr_expect_eq(sf_offsets_done(t, 13), 15);
    cr_expect_eq(sf_offsets_open(t), 0);
    sf_offsets_free(t);
}

Test(offsets, gaps_and_bad_input)
{
    sf_offsets *t = sf_offsets_new();
    cr_assert_eq(sf_offsets_track(t, 5), 0);
    cr_assert_eq(sf_offsets_track(t, 9), 0); /* 6..8 compacted away */
    cr_expect_eq(sf_offsets_track(t, 9), -1);
    cr_expect_eq(sf_offsets_track(t, 7), -1);
    cr_expect_eq(sf_offsets_done(t, 7), -1);
    cr_expect_eq(sf_offsets_done(t, 9), 0);
    cr_expect_eq(sf_offsets_done(t, 9), -1, "finishing twice must be refused");
    cr_expect_eq(sf_offsets_done(t, 5), 10);
    sf_offsets_free(t);
}

/* Random completion order over many offsets: the commit point is always the prefix. */
Test(offsets, random_order_matches_a_model)
{
    enum { N = 20000 };
    static int64_t order[N];
    static char done[N];
    sf_offsets *t = sf_offsets_new();
    unsigned seed = 7;
    for (int i = 0; i < N; i++) {
        order[i] = i;
        cr_assert_eq(sf_offsets_track(t, 1000 + i), 0);
    }
    for (int i = N - 1; i > 0; i--) {
        int j = rand_r(&seed) % (i + 1);
        int64_t x = order[i];
        order[i] = order[j];
        order[j] = x;
    }
    int prefix = 0;
    for (int i = 0; i < N; i++) {
        int64_t rc = sf_offsets_done(t, 1000 + order[i]);
        cr_assert_geq(rc, 0);
        done[order[i]] = 1;
        int before = prefix;
        while (prefix < N && done[prefix])
            prefix++;
        if (prefix != before)
            cr_assert_eq(rc, 1000 + prefix);
        else
            cr_assert_eq(rc, 0);
    }
    cr_expect_eq(sf_offsets_committable(t), 1000 + N);
    sf_offsets_free(t);
}
