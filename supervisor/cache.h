/*
 * cache.h — what this supervisor knows of its sessions' state, so that an
 * execute in steady state costs one Redis round trip (its commit), not two.
 *
 * While a partition's lease holds, this supervisor is the only writer of its
 * sessions' state: a session's state, its version and the specs of the
 * programs it ran are kept here after a claim read them, and replaced by each
 * commit that writes a new state. A run from the cache commits with the version
 * it read (compare-and-set), so an entry that is stale for any reason (another
 * writer: a producer with another partitioner) cannot lose an update: the
 * commit conflicts, the entry is dropped and the request runs again from a
 * fresh read. Entries are dropped when their partition is revoked or its lease
 * lost, when any other op writes the session, and least recently used first
 * past the byte budget (supervisor.state_cache).
 *
 * Pointers handed out are valid until the next call that changes the cache.
 */
#ifndef SF_CACHE_H
#define SF_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sf_cache sf_cache;

typedef struct sf_cache_view {
    const char *state, *spec;
    size_t state_len, spec_len;
    uint64_t version;
    uint64_t touched_us; /* when the session's TTLs in Redis were last refreshed */
} sf_cache_view;

typedef struct sf_cache_stats {
    uint64_t hits, misses, evictions;
    size_t entries, bytes;
} sf_cache_stats;

/* A cache of at most max_bytes (keys, states and specs); 0: it keeps nothing. */
sf_cache *sf_cache_new(size_t max_bytes);
void sf_cache_free(sf_cache *c);

/* Session s's state, its version and program p's spec, if all are known: true. */
bool sf_cache_get(sf_cache *c, const char *s, size_t slen, const char *p, size_t plen,
                  sf_cache_view *out);
/*
 * What a read found: session s (of the partition known as `owner`, see
 * sf_cache_drop_owner) has `state` at `version`, and program p the spec
 * `spec`, read at `at_us` (the read refreshed the session's TTLs). Replaces
 * what was known of the state; keeps the other programs' specs if the version
 * is the same.
 */
void sf_cache_put(sf_cache *c, uint32_t owner, const char *s, size_t slen, const char *p,
                  size_t plen, const void *state, size_t state_len, const void *spec,
                  size_t spec_len, uint64_t version, uint64_t at_us);
/* Whether session s is known (its next commit's state is worth keeping). */
bool sf_cache_has(sf_cache *c, const char *s, size_t slen);
/* A commit wrote `state` at `version` (the read one plus one); nothing if s is unknown. */
void sf_cache_set_state(sf_cache *c, const char *s, size_t slen, const void *state, size_t len,
                        uint64_t version);
/* The session's TTLs in Redis were refreshed at `at_us` (a commit that touched them). */
void sf_cache_touched(sf_cache *c, const char *s, size_t slen, uint64_t at_us);
/* Forgets session s. */
void sf_cache_drop(sf_cache *c, const char *s, size_t slen);
/* Forgets every session put with `owner` (its partition was revoked or lost its lease). */
void sf_cache_drop_owner(sf_cache *c, uint32_t owner);
sf_cache_stats sf_cache_get_stats(const sf_cache *c);

#endif
