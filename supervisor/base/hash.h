/*
 * hash.h — a 64-bit hash of bytes, for telling versions of a stored value
 * apart (a program's spec, a session's state) without keeping a copy.
 *
 * One lane of MurmurHash3-style mixing over 8-byte words, then its
 * finalizer: several GB/s, so hashing a state costs less than piping it.
 * Not for untrusted collision resistance: a collision between two versions
 * of one session's value is a 2^-64 event.
 */
#ifndef SF_HASH_H
#define SF_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline uint64_t sf_hash_rotl(uint64_t x, int r)
{
    return (x << r) | (x >> (64 - r));
}

static inline uint64_t sf_hash_mix(uint64_t h, uint64_t k)
{
    k *= 0x87c37b91114253d5ULL;
    k = sf_hash_rotl(k, 31);
    k *= 0x4cf5ad432745937fULL;
    h ^= k;
    return sf_hash_rotl(h, 27) * 5 + 0x52dce729;
}

static inline uint64_t sf_hash64(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ ((uint64_t)len * 0xc2b2ae3d27d4eb4fULL);
    size_t n = len;
    for (; n >= 8; n -= 8, p += 8) {
        uint64_t k;
        memcpy(&k, p, 8);
        h = sf_hash_mix(h, k);
    }
    if (n) {
        uint64_t k = 0;
        memcpy(&k, p, n);
        h = sf_hash_mix(h, k);
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb93fe53a87c3ULL;
    h ^= h >> 33;
    return h ? h : 1; /* 0 means "no version" on the wire */
}

#endif
