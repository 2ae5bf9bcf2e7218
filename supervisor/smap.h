/*
 * smap.h — an open-addressing hash map from byte-string keys to fixed-size
 * values stored inline, for the pool's per-session bookkeeping (thousands to
 * hundreds of thousands of sessions; lookups on every call). Keys are copied.
 * Pointers to values stay valid until the next insert or delete.
 */
#ifndef SF_SMAP_H
#define SF_SMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct sf_smap sf_smap;

sf_smap *sf_smap_new(size_t value_size);
void sf_smap_free(sf_smap *m);
size_t sf_smap_count(const sf_smap *m);

/* The value of key, or NULL. */
void *sf_smap_get(sf_smap *m, const char *key, size_t len);
/* The value of key, inserted zero-filled (*created = 1) if absent; NULL on OOM. */
void *sf_smap_put(sf_smap *m, const char *key, size_t len, int *created);
void sf_smap_del(sf_smap *m, const char *key, size_t len);

/* Calls fn for each entry; deletes those for which it returns non-zero. */
void sf_smap_sweep(sf_smap *m, int (*fn)(void *ctx, const char *key, size_t len, void *value),
                   void *ctx);

#endif
