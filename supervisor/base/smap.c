/*
 * smap.c — see smap.h. Linear probing with tombstones; the table doubles at
 * 70% load (tombstones included) and is rebuilt, which also drops them.
 */
#include "smap.h"

#include "alloc.h"

#include <stdlib.h>
#include <string.h>

typedef struct slot {
    uint64_t hash; /* 0 = empty, 1 = tombstone, else hash | 2 */
    char *key;
    size_t len;
    void *value;
} slot;

struct sf_smap {
    slot *t;
    size_t cap, used, live, vsize;
};

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a, then a final mix */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h | 2;
}

sf_smap *sf_smap_new(size_t value_size)
{
    sf_smap *m = sf_xcalloc(1, sizeof(*m));
    m->vsize = value_size;
    m->cap = 64;
    m->t = sf_xcalloc(m->cap, sizeof(slot));
    return m;
}

void sf_smap_free(sf_smap *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->cap; i++) {
        if (m->t[i].hash > 1) {
            free(m->t[i].key);
            free(m->t[i].value);
        }
    }
    free(m->t);
    free(m);
}

size_t sf_smap_count(const sf_smap *m)
{
    return m->live;
}

static slot *find(sf_smap *m, const char *key, size_t len, uint64_t h)
{
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        slot *s = &m->t[i];
        if (s->hash == 0)
            return NULL;
        if (s->hash == h && s->len == len && memcmp(s->key, key, len) == 0)
            return s;
    }
}

void *sf_smap_get(sf_smap *m, const char *key, size_t len)
{
    slot *s = find(m, key, len, hash_bytes(key, len));
    return s ? s->value : NULL;
}

static void grow(sf_smap *m)
{
    size_t ncap = m->live * 2 >= m->cap / 2 ? m->cap * 2 : m->cap;
    slot *nt = sf_xcalloc(ncap, sizeof(slot));
    for (size_t i = 0; i < m->cap; i++) {
        slot *s = &m->t[i];
        if (s->hash <= 1)
            continue;
        size_t j = s->hash & (ncap - 1);
        while (nt[j].hash != 0)
            j = (j + 1) & (ncap - 1);
        nt[j] = *s;
    }
    free(m->t);
    m->t = nt;
    m->cap = ncap;
    m->used = m->live;
}

void *sf_smap_put(sf_smap *m, const char *key, size_t len, int *created)
{
    uint64_t h = hash_bytes(key, len);
    slot *s = find(m, key, len, h);
    if (created)
        *created = s == NULL;
    if (s)
        return s->value;
    if ((m->used + 1) * 10 > m->cap * 7)
        grow(m);
    size_t mask = m->cap - 1, i = h & mask;
    while (m->t[i].hash > 1)
        i = (i + 1) & mask;
    s = &m->t[i];
    char *k = sf_xmalloc(len);
    void *v = sf_xcalloc(1, m->vsize);
    memcpy(k, key, len);
    if (s->hash == 0)
        m->used++;
    s->hash = h;
    s->key = k;
    s->len = len;
    s->value = v;
    m->live++;
    return v;
}

static void drop(sf_smap *m, slot *s)
{
    free(s->key);
    free(s->value);
    s->key = NULL;
    s->value = NULL;
    s->hash = 1;
    m->live--;
}

void sf_smap_del(sf_smap *m, const char *key, size_t len)
{
    slot *s = find(m, key, len, hash_bytes(key, len));
    if (s)
        drop(m, s);
}

void sf_smap_sweep(sf_smap *m, int (*fn)(void *ctx, const char *key, size_t len, void *value),
                   void *ctx)
{
    for (size_t i = 0; i < m->cap; i++) {
        slot *s = &m->t[i];
        if (s->hash > 1 && fn(ctx, s->key, s->len, s->value))
            drop(m, s);
    }
}
