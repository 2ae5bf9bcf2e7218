/*
 * offsets.c — see offsets.h. A ring of (offset, done) in arrival order; the
 * head is the oldest open entry. Finishing an entry finds it by binary search
 * (the ring is sorted), then pops finished entries off the head.
 */
#include "offsets.h"

#include <stdbool.h>
#include <stdlib.h>

typedef struct entry {
    int64_t offset;
    bool done;
} entry;

struct sf_offsets {
    entry *ring;
    size_t cap, head, len;
    size_t open;
    int64_t last_tracked;
    int64_t commit; /* -1 until the first prefix finishes */
};

sf_offsets *sf_offsets_new(void)
{
    sf_offsets *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->last_tracked = -1;
    t->commit = -1;
    return t;
}

void sf_offsets_free(sf_offsets *t)
{
    if (t == NULL)
        return;
    free(t->ring);
    free(t);
}

static entry *at(const sf_offsets *t, size_t i)
{
    return &t->ring[(t->head + i) % t->cap];
}

static int grow(sf_offsets *t)
{
    size_t ncap = t->cap ? t->cap * 2 : 64;
    entry *n = malloc(ncap * sizeof(*n));
    if (n == NULL)
        return -1;
    for (size_t i = 0; i < t->len; i++)
        n[i] = *at(t, i);
    free(t->ring);
    t->ring = n;
    t->cap = ncap;
    t->head = 0;
    return 0;
}

int sf_offsets_track(sf_offsets *t, int64_t offset)
{
    if (offset <= t->last_tracked)
        return -1;
    if (t->len == t->cap && grow(t) < 0)
        return -1;
    *at(t, t->len) = (entry){offset, false};
    t->len++;
    t->open++;
    t->last_tracked = offset;
    return 0;
}

int64_t sf_offsets_done(sf_offsets *t, int64_t offset)
{
    size_t lo = 0, hi = t->len;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (at(t, mid)->offset < offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == t->len || at(t, lo)->offset != offset || at(t, lo)->done)
        return -1;
    at(t, lo)->done = true;
    t->open--;
    if (lo != 0)
        return 0;
    while (t->len > 0 && at(t, 0)->done) {
        t->commit = at(t, 0)->offset + 1;
        t->head = (t->head + 1) % t->cap;
        t->len--;
    }
    return t->commit;
}

int64_t sf_offsets_committable(const sf_offsets *t)
{
    return t->commit;
}

size_t sf_offsets_open(const sf_offsets *t)
{
    return t->open;
}
