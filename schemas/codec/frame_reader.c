/*
 * frame_reader.c — see frame_reader.h.
 *
 * The buffer holds [pos, len) unread bytes. It is compacted lazily (only when
 * the consumed prefix is large) so that a burst of small frames costs no
 * memmove per frame.
 */
#include "frame_reader.h"

#include <stdlib.h>
#include <string.h>

struct sf_reader {
    char *buf;
    size_t cap, len, pos;
    size_t max_frame;
    sf_err broken; /* code != SF_OK once the stream is unusable */
};

sf_reader *sf_reader_new(size_t max_frame_bytes)
{
    sf_reader *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    r->max_frame = max_frame_bytes ? max_frame_bytes : SF_DEFAULT_MAX_FRAME;
    return r;
}

void sf_reader_free(sf_reader *r)
{
    if (r == NULL)
        return;
    free(r->buf);
    free(r);
}

static void reader_compact(sf_reader *r)
{
    if (r->pos == 0)
        return;
    memmove(r->buf, r->buf + r->pos, r->len - r->pos);
    r->len -= r->pos;
    r->pos = 0;
}

int sf_reader_feed(sf_reader *r, const void *buf, size_t len)
{
    if (r->broken.code != SF_OK)
        return -1;
    if (len == 0)
        return 0;
    if (r->len + len > r->cap) {
        /* Reclaim consumed space before growing. */
        if (r->pos > 0 && (r->pos >= r->len / 2 || r->len - r->pos + len <= r->cap))
            reader_compact(r);
        if (r->len + len > r->cap) {
            size_t cap = r->cap ? r->cap : 4096;
            while (cap < r->len + len)
                cap *= 2;
            char *nb = realloc(r->buf, cap);
            if (nb == NULL) {
                sf_fail(&r->broken, SF_E_NOMEM, "", "out of memory buffering a frame");
                return -1;
            }
            r->buf = nb;
            r->cap = cap;
        }
    }
    memcpy(r->buf + r->len, buf, len);
    r->len += len;
    return 0;
}

int sf_reader_next(sf_reader *r, const char **body, size_t *len, sf_err *err)
{
    if (r->broken.code != SF_OK) {
        if (err)
            *err = r->broken;
        return -1;
    }
    size_t avail = r->len - r->pos;
    if (avail < SF_FRAME_HEADER_BYTES) {
        if (avail == 0)
            r->pos = r->len = 0; /* everything consumed: reset for free */
        return 0;
    }
    const unsigned char *h = (const unsigned char *)r->buf + r->pos;
    uint32_t n = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
    if (n > r->max_frame) {
        sf_fail(&r->broken, SF_E_TOO_LARGE, "", "frame of %u bytes exceeds the limit of %zu bytes",
                n, r->max_frame);
        if (err)
            *err = r->broken;
        return -1;
    }
    if (avail - SF_FRAME_HEADER_BYTES < n)
        return 0;
    *body = r->buf + r->pos + SF_FRAME_HEADER_BYTES;
    *len = n;
    r->pos += SF_FRAME_HEADER_BYTES + n;
    return 1;
}

int sf_reader_finish(sf_reader *r, sf_err *err)
{
    if (r->broken.code != SF_OK) {
        if (err)
            *err = r->broken;
        return -1;
    }
    size_t avail = r->len - r->pos;
    if (avail == 0)
        return 0;
    return sf_fail(err, SF_E_TRUNCATED, "", "stream ended inside a frame (%zu bytes buffered)",
                   avail);
}

size_t sf_reader_pending(const sf_reader *r)
{
    return r->len - r->pos;
}
