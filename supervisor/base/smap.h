/*
 * smap.h — an open-addressing hash map from byte-string keys to fixed-size
 * values, for per-session bookkeeping: the pool's session hints, the daemon's
 * session FIFOs, the CLI's requests by id (thousands to hundreds of thousands
 * of entries; lookups on every call).
 *
 * Keys are any bytes, NUL bytes included, of any length (the empty key too);
 * the map copies them. Each value is allocated on its own: value_size bytes,
 * zero-filled when created, aligned as malloc aligns. The map owns keys and
 * values and frees them when the entry is deleted, swept or the map freed.
 *
 * So a value's address stays the same for the whole life of its entry, across
 * inserts, deletes of other keys and the table's growth. Callers rely on it:
 * the pool keeps a session's value in each of its calls, the daemon in each of
 * its jobs. A pointer to a value is valid until that key is deleted.
 *
 * Memory comes from alloc.h: out of memory aborts, so no call returns NULL
 * for want of memory.
 */
#ifndef SF_SMAP_H
#define SF_SMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct sf_smap sf_smap;

/* An empty map for values of value_size bytes; never NULL. */
sf_smap *sf_smap_new(size_t value_size);
/* Frees every key and value, then the map; NULL is a no-op. */
void sf_smap_free(sf_smap *m);
/* The number of entries. */
size_t sf_smap_count(const sf_smap *m);

/* The value of key, or NULL. */
void *sf_smap_get(sf_smap *m, const char *key, size_t len);
/*
 * The value of key; if absent, a new zero-filled one (*created = 1, else 0;
 * created may be NULL). Never NULL.
 */
void *sf_smap_put(sf_smap *m, const char *key, size_t len, int *created);
/* Deletes key and frees its value; nothing if key is absent. */
void sf_smap_del(sf_smap *m, const char *key, size_t len);

/*
 * Calls fn once for each entry, in no particular order, with the map's copy
 * of the key; deletes (and frees) those for which it returns non-zero. fn may
 * change the value but must not insert into or delete from m itself.
 */
void sf_smap_sweep(sf_smap *m, int (*fn)(void *ctx, const char *key, size_t len, void *value),
                   void *ctx);

#endif
