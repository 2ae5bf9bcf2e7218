/*
 * cache.c — the sessions' state this supervisor knows; see cache.h for when
 * an entry may be used and when it goes.
 *
 * A byte-keyed map (smap.h) from session to entry, whose values keep their
 * addresses, so the entries also form a list by last use (head: the most
 * recent) that eviction walks from the tail.
 */
#include "cache.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "smap.h"

#define MAX_PROGRAMS 4   /* specs kept per session; the least recently put goes first */
#define ENTRY_COST   160 /* what an entry costs beside its bytes (map slot, entry, copies) */

typedef struct program {
    char *id, *spec;
    size_t id_len, spec_len;
} program;

typedef struct entry {
    struct entry *prev, *next; /* by last use */
    char *key;
    size_t key_len;
    uint32_t owner;
    uint64_t version, touched_us;
    char *state;
    size_t state_len;
    program progs[MAX_PROGRAMS]; /* progs[0]: the most recently put */
    int nprogs;
    size_t bytes;
} entry;

struct sf_cache {
    sf_smap *map;
    entry *head, *tail;
    size_t max, bytes;
    sf_cache_stats stats;
};

static char *dup_bytes(const void *p, size_t n)
{
    char *b = sf_xmalloc(n ? n : 1);
    if (n)
        memcpy(b, p, n);
    return b;
}

sf_cache *sf_cache_new(size_t max_bytes)
{
    sf_cache *c = sf_xcalloc(1, sizeof(*c));
    c->map = sf_smap_new(sizeof(entry));
    c->max = max_bytes;
    return c;
}

static void unlink_entry(sf_cache *c, entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        c->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        c->tail = e->prev;
    e->prev = e->next = NULL;
}

static void push_front(sf_cache *c, entry *e)
{
    e->next = c->head;
    if (c->head)
        c->head->prev = e;
    c->head = e;
    if (c->tail == NULL)
        c->tail = e;
}

static void free_programs(entry *e)
{
    for (int i = 0; i < e->nprogs; i++) {
        free(e->progs[i].id);
        free(e->progs[i].spec);
    }
    e->nprogs = 0;
}

static void recount(sf_cache *c, entry *e)
{
    c->bytes -= e->bytes;
    e->bytes = ENTRY_COST + e->key_len + e->state_len;
    for (int i = 0; i < e->nprogs; i++)
        e->bytes += e->progs[i].id_len + e->progs[i].spec_len;
    c->bytes += e->bytes;
}

/* Removes e from the list and the map (which frees the entry itself). */
static void drop_entry(sf_cache *c, entry *e)
{
    unlink_entry(c, e);
    c->bytes -= e->bytes;
    free_programs(e);
    free(e->state);
    char *key = e->key;
    size_t len = e->key_len;
    sf_smap_del(c->map, key, len); /* e is gone from here on */
    free(key);
}

void sf_cache_free(sf_cache *c)
{
    if (c == NULL)
        return;
    while (c->head)
        drop_entry(c, c->head);
    sf_smap_free(c->map);
    free(c);
}

bool sf_cache_get(sf_cache *c, const char *s, size_t slen, const char *p, size_t plen,
                  sf_cache_view *out)
{
    entry *e = sf_smap_get(c->map, s, slen);
    for (int i = 0; e && i < e->nprogs; i++) {
        program *g = &e->progs[i];
        if (g->id_len == plen && memcmp(g->id, p, plen) == 0) {
            *out = (sf_cache_view){.state = e->state,
                                   .state_len = e->state_len,
                                   .spec = g->spec,
                                   .spec_len = g->spec_len,
                                   .version = e->version,
                                   .touched_us = e->touched_us};
            unlink_entry(c, e);
            push_front(c, e);
            c->stats.hits++;
            return true;
        }
    }
    c->stats.misses++;
    return false;
}

static void evict(sf_cache *c)
{
    while (c->bytes > c->max && c->tail) {
        drop_entry(c, c->tail);
        c->stats.evictions++;
    }
}

void sf_cache_put(sf_cache *c, uint32_t owner, const char *s, size_t slen, const char *p,
                  size_t plen, const void *state, size_t state_len, const void *spec,
                  size_t spec_len, uint64_t version, uint64_t at_us)
{
    if (c->max == 0)
        return;
    int created;
    entry *e = sf_smap_put(c->map, s, slen, &created);
    if (created) {
        e->key = dup_bytes(s, slen);
        e->key_len = slen;
    } else {
        unlink_entry(c, e);
        if (e->version != version || e->owner != owner)
            free_programs(e); /* specs read at another version may have changed since */
        free(e->state);
    }
    push_front(c, e);
    e->owner = owner;
    e->version = version;
    e->touched_us = at_us;
    e->state = dup_bytes(state, state_len);
    e->state_len = state_len;
    for (int i = 0; i < e->nprogs; i++) { /* the program's old spec goes */
        if (e->progs[i].id_len == plen && memcmp(e->progs[i].id, p, plen) == 0) {
            free(e->progs[i].id);
            free(e->progs[i].spec);
            memmove(&e->progs[i], &e->progs[i + 1], (size_t)(e->nprogs - i - 1) * sizeof(program));
            e->nprogs--;
            break;
        }
    }
    if (e->nprogs == MAX_PROGRAMS) {
        e->nprogs--;
        free(e->progs[e->nprogs].id);
        free(e->progs[e->nprogs].spec);
    }
    memmove(&e->progs[1], &e->progs[0], (size_t)e->nprogs * sizeof(program));
    e->progs[0] = (program){dup_bytes(p, plen), dup_bytes(spec, spec_len), plen, spec_len};
    e->nprogs++;
    recount(c, e);
    evict(c);
}

bool sf_cache_has(sf_cache *c, const char *s, size_t slen)
{
    return sf_smap_get(c->map, s, slen) != NULL;
}

void sf_cache_set_state(sf_cache *c, const char *s, size_t slen, const void *state, size_t len,
                        uint64_t version)
{
    entry *e = sf_smap_get(c->map, s, slen);
    if (e == NULL)
        return;
    free(e->state);
    e->state = dup_bytes(state, len);
    e->state_len = len;
    e->version = version;
    recount(c, e);
    evict(c);
}

void sf_cache_touched(sf_cache *c, const char *s, size_t slen, uint64_t at_us)
{
    entry *e = sf_smap_get(c->map, s, slen);
    if (e)
        e->touched_us = at_us;
}

void sf_cache_drop(sf_cache *c, const char *s, size_t slen)
{
    entry *e = sf_smap_get(c->map, s, slen);
    if (e)
        drop_entry(c, e);
}

void sf_cache_drop_owner(sf_cache *c, uint32_t owner)
{
    for (entry *e = c->head, *next; e; e = next) {
        next = e->next;
        if (e->owner == owner)
            drop_entry(c, e);
    }
}

sf_cache_stats sf_cache_get_stats(const sf_cache *c)
{
    sf_cache_stats s = c->stats;
    s.entries = sf_smap_count(c->map);
    s.bytes = c->bytes;
    return s;
}
