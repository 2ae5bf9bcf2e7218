/*
 * mp.h — msgpack helpers shared by every snakefleet decoder: strict
 * single-object unpacking with typed errors, map field access that names the
 * field it rejects, and msgpack <-> JSON conversion (bin values become
 * {"$bin": "<base64>"} in JSON, as in the test vectors).
 */
#ifndef SF_MP_H
#define SF_MP_H

#include <jansson.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sf_err.h"

/* A string view into a msgpack object (not NUL-terminated). */
typedef struct sf_str {
    const char *ptr;
    uint32_t len;
} sf_str;

#define SF_STR_FMT    "%.*s"
#define SF_STR_ARG(s) (int)(s).len, (s).ptr

bool sf_str_eq(sf_str s, const char *cstr);
/* A view of a NUL-terminated string (NULL gives the empty view). */
sf_str sf_cstr(const char *s);
/* Copies into dst (always NUL-terminated, truncated to cap-1). */
void sf_str_copy(char *dst, size_t cap, sf_str s);

/*
 * Unpacks exactly one object from data[0..len) into u (which the caller has
 * initialised with msgpack_unpacked_init and later destroys). The object must
 * be a map with string keys. Errors: truncated, malformed (bad bytes,
 * trailing bytes, non-string keys), not_map.
 */
int sf_mp_unpack_map(msgpack_unpacked *u, const char *data, size_t len, sf_err *err);

/*
 * Checks the structure of the first msgpack object in data[0..len) without
 * allocating: returns its size in bytes, or -1 (truncated/malformed) — also
 * when a container declares more items than bytes remain, which would make
 * msgpack-c allocate for the declared count. Call before msgpack_unpack_next
 * on untrusted bytes (sf_mp_unpack_map does).
 */
long sf_mp_prescan(const unsigned char *data, size_t len, sf_err *err);

/* The value under key in map, or NULL. */
const msgpack_object *sf_mp_get(const msgpack_object *map, const char *key);

/*
 * Field readers. Each returns 1 when the field is present and valid, 0 when
 * it is absent (and not required), -1 with err filled otherwise. `path` is the
 * field's name in error messages (e.g. "args.spec").
 */
int sf_mp_field_str(const msgpack_object *map, const char *key, const char *path, bool required,
                    uint32_t min_len, uint32_t max_len, sf_str *out, sf_err *err);
int sf_mp_field_int(const msgpack_object *map, const char *key, const char *path, bool required,
                    int64_t *out, sf_err *err);
int sf_mp_field_uint(const msgpack_object *map, const char *key, const char *path, bool required,
                     uint64_t *out, sf_err *err);
int sf_mp_field_bool(const msgpack_object *map, const char *key, const char *path, bool required,
                     bool *out, sf_err *err);
int sf_mp_field_map(const msgpack_object *map, const char *key, const char *path, bool required,
                    const msgpack_object **out, sf_err *err);
int sf_mp_field_array(const msgpack_object *map, const char *key, const char *path, bool required,
                      const msgpack_object **out, sf_err *err);
/* Any type; only presence is checked. nil counts as present. */
int sf_mp_field_any(const msgpack_object *map, const char *key, const char *path, bool required,
                    const msgpack_object **out, sf_err *err);

/* Packs a NUL-terminated string / a view as msgpack str. */
void sf_mp_pack_cstr(msgpack_packer *pk, const char *s);
void sf_mp_pack_str(msgpack_packer *pk, sf_str s);

/* msgpack -> JSON (new reference; NULL on OOM). */
json_t *sf_mp_to_json(const msgpack_object *o);
/* JSON -> msgpack; {"$bin": b64} becomes bin. Returns 0, or -1 on bad base64. */
int sf_mp_pack_json(msgpack_packer *pk, const json_t *j);

/* Base64 (standard alphabet, padded). Encode returns a malloc'd string. */
char *sf_base64_encode(const void *data, size_t len);
/* Decodes into a malloc'd buffer; returns -1 on invalid input. */
int sf_base64_decode(const char *s, size_t slen, unsigned char **out, size_t *out_len);

#endif
