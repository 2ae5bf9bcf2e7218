/* test_frame_reader.c — the sans-I/O frame reader beyond the shared vectors. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "frame_reader.h"

static void put_frame(unsigned char *dst, const char *body, uint32_t n)
{
    dst[0] = (unsigned char)(n >> 24);
    dst[1] = (unsigned char)(n >> 16);
    dst[2] = (unsigned char)(n >> 8);
    dst[3] = (unsigned char)n;
    memcpy(dst + 4, body, n);
}

Test(frame_reader, many_frames_in_one_feed_come_out_in_order)
{
    sf_reader *r = sf_reader_new(0);
    unsigned char buf[10000];
    size_t off = 0;
    for (int i = 0; i < 1000; i++) {
        char body[8];
        int n = snprintf(body, sizeof(body), "%d", i);
        put_frame(buf + off, body, (uint32_t)n);
        off += 4 + (size_t)n;
        if (off > sizeof(buf) - 16)
            break;
    }
    cr_assert_eq(sf_reader_feed(r, buf, off), 0);
    const char *b;
    size_t len;
    sf_err err;
    for (int i = 0;; i++) {
        int rc = sf_reader_next(r, &b, &len, &err);
        if (rc == 0)
            break;
        cr_assert_eq(rc, 1);
        char want[8];
        int n = snprintf(want, sizeof(want), "%d", i);
        cr_assert_eq(len, (size_t)n);
        cr_assert(memcmp(b, want, len) == 0);
    }
    cr_expect_eq(sf_reader_pending(r), 0);
    cr_expect_eq(sf_reader_finish(r, &err), 0);
    sf_reader_free(r);
}

Test(frame_reader, zero_length_frame_is_a_frame)
{
    sf_reader *r = sf_reader_new(0);
    const unsigned char z[4] = {0};
    sf_reader_feed(r, z, 4);
    const char *b;
    size_t len = 99;
    cr_assert_eq(sf_reader_next(r, &b, &len, NULL), 1);
    cr_expect_eq(len, 0);
    sf_reader_free(r);
}

Test(frame_reader, limit_is_inclusive_and_breaks_stream_above)
{
    sf_reader *r = sf_reader_new(8);
    unsigned char buf[32];
    put_frame(buf, "12345678", 8);
    sf_reader_feed(r, buf, 12);
    const char *b;
    size_t len;
    sf_err err;
    cr_assert_eq(sf_reader_next(r, &b, &len, &err), 1);
    put_frame(buf, "123456789", 9);
    sf_reader_feed(r, buf, 13);
    cr_assert_eq(sf_reader_next(r, &b, &len, &err), -1);
    cr_expect_eq(err.code, SF_E_TOO_LARGE);
    /* A broken stream stays broken: no more input is taken. */
    cr_expect_eq(sf_reader_feed(r, buf, 4), -1);
    cr_expect_eq(sf_reader_next(r, &b, &len, &err), -1);
    cr_expect_eq(sf_reader_finish(r, &err), -1);
    sf_reader_free(r);
}

Test(frame_reader, big_frame_across_many_feeds_and_compaction)
{
    sf_reader *r = sf_reader_new(1 << 20);
    static unsigned char big[4 + 300000];
    static char body[300000];
    for (size_t i = 0; i < sizeof(body); i++)
        body[i] = (char)(i * 31);
    put_frame(big, body, sizeof(body));
    const char *b;
    size_t len;
    sf_err err;
    for (int round = 0; round < 5; round++) {
        for (size_t off = 0; off < sizeof(big); off += 4096) {
            size_t k = sizeof(big) - off < 4096 ? sizeof(big) - off : 4096;
            cr_assert_eq(sf_reader_feed(r, big + off, k), 0);
            int rc = sf_reader_next(r, &b, &len, &err);
            cr_assert_eq(rc, off + k == sizeof(big) ? 1 : 0);
        }
        cr_assert_eq(len, sizeof(body));
        cr_assert(memcmp(b, body, len) == 0);
    }
    sf_reader_free(r);
}

Test(frame_reader, finish_reports_partial_frame)
{
    sf_reader *r = sf_reader_new(0);
    const unsigned char part[6] = {0, 0, 0, 9, 'a', 'b'};
    sf_reader_feed(r, part, sizeof(part));
    const char *b;
    size_t len;
    sf_err err;
    cr_assert_eq(sf_reader_next(r, &b, &len, &err), 0);
    cr_expect_eq(sf_reader_pending(r), 6);
    cr_assert_eq(sf_reader_finish(r, &err), -1);
    cr_expect_eq(err.code, SF_E_TRUNCATED);
    sf_reader_free(r);
}
