/* mp.c — msgpack helpers; see mp.h. */
#include "mp.h"

#include <stdlib.h>
#include <string.h>

bool sf_str_eq(sf_str s, const char *cstr)
{
    size_t n = strlen(cstr);
    return s.len == n && (n == 0 || memcmp(s.ptr, cstr, n) == 0);
}

sf_str sf_cstr(const char *s)
{
    return (sf_str){s ? s : "", s ? (uint32_t)strlen(s) : 0};
}

void sf_str_copy(char *dst, size_t cap, sf_str s)
{
    if (cap == 0)
        return;
    size_t n = s.len < cap - 1 ? s.len : cap - 1;
    if (n)
        memcpy(dst, s.ptr, n);
    dst[n] = '\0';
}

static const char *mp_type_name(msgpack_object_type t)
{
    switch (t) {
    case MSGPACK_OBJECT_NIL:
        return "nil";
    case MSGPACK_OBJECT_BOOLEAN:
        return "bool";
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return "int";
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return "float";
    case MSGPACK_OBJECT_STR:
        return "str";
    case MSGPACK_OBJECT_ARRAY:
        return "array";
    case MSGPACK_OBJECT_MAP:
        return "map";
    case MSGPACK_OBJECT_BIN:
        return "bin";
    case MSGPACK_OBJECT_EXT:
        return "ext";
    }
    return "unknown";
}

/* Big-endian unsigned of n bytes at p. */
static uint64_t be(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

#define SF_MP_MAX_DEPTH 32

/* Whether p[0..n) is well-formed UTF-8 (no overlongs, surrogates or > U+10FFFF). */
static bool utf8_valid(const unsigned char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        int k;
        uint32_t cp, min;
        if ((c & 0xe0) == 0xc0) {
            k = 1, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            k = 2, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            k = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (n - i <= (size_t)k)
            return false;
        for (int j = 1; j <= k; j++) {
            if ((p[i + j] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (p[i + j] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += (size_t)k + 1;
    }
    return true;
}

/*
 * Walks the msgpack structure of data[0..len) without building anything.
 * msgpack-c sizes a container's allocation from its declared count before it
 * reads the elements, so a 6-byte "array of 2^32 items" would make it try to
 * allocate tens of GiB. Every element takes at least one byte, so a count
 * larger than the bytes left means the message cannot be complete: reject it
 * here, before unpacking, and the zone stays proportional to the input.
 * Returns the size of the first object, or -1 with err (truncated/malformed).
 */
long sf_mp_prescan(const unsigned char *p, size_t len, sf_err *err)
{
    uint64_t pending[SF_MP_MAX_DEPTH + 1];
    int depth = 0;
    size_t off = 0;
    pending[0] = 1;
    while (depth >= 0) {
        if (pending[depth] == 0) {
            depth--;
            continue;
        }
        pending[depth]--;
        if (off >= len)
            return sf_fail(err, SF_E_TRUNCATED, "", "message is truncated (%zu bytes)", len);
        unsigned char t = p[off];
        size_t left = len - off - 1;
        uint64_t head = 1, body = 0, items = 0;
        bool container = false;
        bool is_str = (t >= 0xa0 && t <= 0xbf) || (t >= 0xd9 && t <= 0xdb);
        if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3) {
        } else if (t >= 0x80 && t <= 0x9f) {
            container = true;
            items = t <= 0x8f ? 2u * (t & 0x0f) : (t & 0x0f);
        } else if (t >= 0xa0 && t <= 0xbf) {
            body = t & 0x1f;
        } else if (t == 0xc1) {
            return sf_fail(err, SF_E_MALFORMED, "", "message is not valid msgpack (byte 0xc1)");
        } else {
            static const struct {
                unsigned char lenbytes, fixed, kind; /* kind: 0 scalar, 1 blob, 2 array, 3 map */
            } T[] = {
                [0xc4 - 0xc4] = {1, 0, 1}, [0xc5 - 0xc4] = {2, 0, 1}, [0xc6 - 0xc4] = {4, 0, 1},
                [0xc7 - 0xc4] = {1, 1, 1}, [0xc8 - 0xc4] = {2, 1, 1}, [0xc9 - 0xc4] = {4, 1, 1},
                [0xca - 0xc4] = {0, 4, 0}, [0xcb - 0xc4] = {0, 8, 0}, [0xcc - 0xc4] = {0, 1, 0},
                [0xcd - 0xc4] = {0, 2, 0}, [0xce - 0xc4] = {0, 4, 0}, [0xcf - 0xc4] = {0, 8, 0},
                [0xd0 - 0xc4] = {0, 1, 0}, [0xd1 - 0xc4] = {0, 2, 0}, [0xd2 - 0xc4] = {0, 4, 0},
                [0xd3 - 0xc4] = {0, 8, 0}, [0xd4 - 0xc4] = {0, 2, 0}, [0xd5 - 0xc4] = {0, 3, 0},
                [0xd6 - 0xc4] = {0, 5, 0}, [0xd7 - 0xc4] = {0, 9, 0}, [0xd8 - 0xc4] = {0, 17, 0},
                [0xd9 - 0xc4] = {1, 0, 1}, [0xda - 0xc4] = {2, 0, 1}, [0xdb - 0xc4] = {4, 0, 1},
                [0xdc - 0xc4] = {2, 0, 2}, [0xdd - 0xc4] = {4, 0, 2}, [0xde - 0xc4] = {2, 0, 3},
                [0xdf - 0xc4] = {4, 0, 3},
            };
            int i = t - 0xc4;
            if (left < (size_t)T[i].lenbytes)
                return sf_fail(err, SF_E_TRUNCATED, "", "message is truncated (%zu bytes)", len);
            uint64_t n = T[i].lenbytes ? be(p + off + 1, T[i].lenbytes) : 0;
            head += T[i].lenbytes + (T[i].kind == 1 ? T[i].fixed : 0);
            if (T[i].kind == 0)
                body = T[i].fixed;
            else if (T[i].kind == 1)
                body = n;
            else {
                container = true;
                items = T[i].kind == 3 ? 2 * n : n;
            }
        }
        if (head + body > len - off)
            return sf_fail(err, SF_E_TRUNCATED, "", "message is truncated (%zu bytes)", len);
        if (is_str && !utf8_valid(p + off + head, body))
            return sf_fail(err, SF_E_MALFORMED, "", "a string is not valid UTF-8");
        /* ext types are not part of the contract: the Python side refuses them too */
        if ((t >= 0xc7 && t <= 0xc9) || (t >= 0xd4 && t <= 0xd8))
            return sf_fail(err, SF_E_MALFORMED, "", "msgpack ext type %d is not allowed",
                           (int)(signed char)p[t >= 0xd4 ? off + 1 : off + head - 1]);
        off += head + body;
        if (container && items > 0) {
            if (items > len - off)
                return sf_fail(err, SF_E_TRUNCATED, "",
                               "message is truncated: a container "
                               "declares %llu items in %zu bytes",
                               (unsigned long long)items, len - off);
            if (depth == SF_MP_MAX_DEPTH)
                return sf_fail(err, SF_E_MALFORMED, "", "message nests deeper than %d levels",
                               SF_MP_MAX_DEPTH);
            pending[++depth] = items;
        }
    }
    return (long)off;
}

int sf_mp_unpack_map(msgpack_unpacked *u, const char *data, size_t len, sf_err *err)
{
    if (len == 0)
        return sf_fail(err, SF_E_TRUNCATED, "", "empty message");
    long first = sf_mp_prescan((const unsigned char *)data, len, err);
    if (first < 0)
        return -1;
    size_t off = 0;
    msgpack_unpack_return rc = msgpack_unpack_next(u, data, len, &off);
    switch (rc) {
    case MSGPACK_UNPACK_SUCCESS:
    case MSGPACK_UNPACK_EXTRA_BYTES:
        break;
    case MSGPACK_UNPACK_CONTINUE:
        return sf_fail(err, SF_E_TRUNCATED, "", "message is truncated (%zu bytes)", len);
    case MSGPACK_UNPACK_NOMEM_ERROR:
        return sf_fail(err, SF_E_NOMEM, "", "out of memory decoding a message");
    default:
        return sf_fail(err, SF_E_MALFORMED, "", "message is not valid msgpack");
    }
    if (off != len)
        return sf_fail(err, SF_E_MALFORMED, "", "%zu trailing bytes after the message", len - off);
    const msgpack_object *o = &u->data;
    if (o->type != MSGPACK_OBJECT_MAP)
        return sf_fail(err, SF_E_NOT_MAP, "", "message must be a map, got %s",
                       mp_type_name(o->type));
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        if (o->via.map.ptr[i].key.type != MSGPACK_OBJECT_STR)
            return sf_fail(err, SF_E_MALFORMED, "", "map key must be a string, got %s",
                           mp_type_name(o->via.map.ptr[i].key.type));
    }
    return 0;
}

const msgpack_object *sf_mp_get(const msgpack_object *map, const char *key)
{
    if (map == NULL || map->type != MSGPACK_OBJECT_MAP)
        return NULL;
    size_t n = strlen(key);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
            memcmp(k->via.str.ptr, key, n) == 0)
            return &map->via.map.ptr[i].val;
    }
    return NULL;
}

/* Looks a field up; 1 found, 0 absent-and-optional, -1 absent-and-required. */
static int field_lookup(const msgpack_object *map, const char *key, const char *path, bool required,
                        const msgpack_object **out, sf_err *err)
{
    *out = sf_mp_get(map, key);
    if (*out != NULL)
        return 1;
    if (required)
        return sf_fail(err, SF_E_MISSING_FIELD, path, "missing field '%s'", path);
    return 0;
}

static int wrong_type(const char *path, const char *want, const msgpack_object *o, sf_err *err)
{
    return sf_fail(err, SF_E_WRONG_TYPE, path, "field '%s' must be %s, got %s", path, want,
                   mp_type_name(o->type));
}

int sf_mp_field_str(const msgpack_object *map, const char *key, const char *path, bool required,
                    uint32_t min_len, uint32_t max_len, sf_str *out, sf_err *err)
{
    const msgpack_object *o;
    int rc = field_lookup(map, key, path, required, &o, err);
    if (rc <= 0)
        return rc;
    if (o->type != MSGPACK_OBJECT_STR)
        return wrong_type(path, "a string", o, err);
    uint32_t n = o->via.str.size;
    if (n < min_len || n > max_len)
        return sf_fail(err, SF_E_BAD_VALUE, path, "field '%s' must be %u to %u bytes, got %u", path,
                       min_len, max_len, n);
    out->ptr = o->via.str.ptr;
    out->len = n;
    return 1;
}

int sf_mp_field_int(const msgpack_object *map, const char *key, const char *path, bool required,
                    int64_t *out, sf_err *err)
{
    const msgpack_object *o;
    int rc = field_lookup(map, key, path, required, &o, err);
    if (rc <= 0)
        return rc;
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *out = o->via.i64;
        return 1;
    }
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        if (o->via.u64 > (uint64_t)INT64_MAX)
            return sf_fail(err, SF_E_BAD_VALUE, path, "field '%s' is out of range", path);
        *out = (int64_t)o->via.u64;
        return 1;
    }
    return wrong_type(path, "an integer", o, err);
}

int sf_mp_field_uint(const msgpack_object *map, const char *key, const char *path, bool required,
                     uint64_t *out, sf_err *err)
{
    const msgpack_object *o;
    int rc = field_lookup(map, key, path, required, &o, err);
    if (rc <= 0)
        return rc;
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        *out = o->via.u64;
        return 1;
    }
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        return sf_fail(err, SF_E_BAD_VALUE, path, "field '%s' must not be negative", path);
    return wrong_type(path, "an integer", o, err);
}

int sf_mp_field_bool(const msgpack_object *map, const char *key, const char *path, bool required,
                     bool *out, sf_err *err)
{
    const msgpack_object *o;
    int rc = field_lookup(map, key, path, required, &o, err);
    if (rc <= 0)
        return rc;
    if (o->type != MSGPACK_OBJECT_BOOLEAN)
        return wrong_type(path, "a bool", o, err);
    *out = o->via.boolean;
    return 1;
}

int sf_mp_field_map(const msgpack_object *map, const char *key, const char *path, bool required,
                    const msgpack_object **out, sf_err *err)
{
    int rc = field_lookup(map, key, path, required, out, err);
    if (rc <= 0)
        return rc;
    if ((*out)->type != MSGPACK_OBJECT_MAP)
        return wrong_type(path, "a map", *out, err);
    return 1;
}

int sf_mp_field_array(const msgpack_object *map, const char *key, const char *path, bool required,
                      const msgpack_object **out, sf_err *err)
{
    int rc = field_lookup(map, key, path, required, out, err);
    if (rc <= 0)
        return rc;
    if ((*out)->type != MSGPACK_OBJECT_ARRAY)
        return wrong_type(path, "an array", *out, err);
    return 1;
}

int sf_mp_field_any(const msgpack_object *map, const char *key, const char *path, bool required,
                    const msgpack_object **out, sf_err *err)
{
    return field_lookup(map, key, path, required, out, err);
}

void sf_mp_pack_cstr(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

void sf_mp_pack_str(msgpack_packer *pk, sf_str s)
{
    msgpack_pack_str(pk, s.len);
    msgpack_pack_str_body(pk, s.ptr, s.len);
}

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *sf_base64_encode(const void *data, size_t len)
{
    const unsigned char *p = data;
    char *out = malloc(4 * ((len + 2) / 3) + 1);
    if (out == NULL)
        return NULL;
    size_t o = 0, i = 0;
    for (; i + 2 < len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = B64[v >> 18 & 63];
        out[o++] = B64[v >> 12 & 63];
        out[o++] = B64[v >> 6 & 63];
        out[o++] = B64[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < len ? (uint32_t)p[i + 1] << 8 : 0);
        out[o++] = B64[v >> 18 & 63];
        out[o++] = B64[v >> 12 & 63];
        out[o++] = i + 1 < len ? B64[v >> 6 & 63] : '=';
        out[o++] = '=';
    }
    out[o] = '\0';
    return out;
}

static int b64_value(char c)
{
    const char *p = c ? strchr(B64, c) : NULL;
    return p ? (int)(p - B64) : -1;
}

int sf_base64_decode(const char *s, size_t slen, unsigned char **out, size_t *out_len)
{
    if (slen % 4 != 0)
        return -1;
    unsigned char *buf = malloc(slen / 4 * 3 + 1);
    if (buf == NULL)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i < slen; i += 4) {
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            if (s[i + k] == '=' && i + 4 == slen && k >= 2) {
                v[k] = 0;
                pad++;
            } else if (pad || (v[k] = b64_value(s[i + k])) < 0) {
                free(buf);
                return -1;
            }
        }
        uint32_t x = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | v[3];
        buf[o++] = (unsigned char)(x >> 16);
        if (pad < 2)
            buf[o++] = (unsigned char)(x >> 8);
        if (pad < 1)
            buf[o++] = (unsigned char)x;
    }
    *out = buf;
    *out_len = o;
    return 0;
}

json_t *sf_mp_to_json(const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        return json_null();
    case MSGPACK_OBJECT_BOOLEAN:
        return json_boolean(o->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        /* JSON integers here are int64; larger values degrade to real. */
        if (o->via.u64 > (uint64_t)INT64_MAX)
            return json_real((double)o->via.u64);
        return json_integer((json_int_t)o->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return json_integer((json_int_t)o->via.i64);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return json_real(o->via.f64);
    case MSGPACK_OBJECT_STR: {
        json_t *j = json_stringn(o->via.str.ptr, o->via.str.size);
        if (j != NULL)
            return j;
        /* Not UTF-8 (only reachable for unchecked input): keep the bytes as bin. */
        msgpack_object bin = {.type = MSGPACK_OBJECT_BIN};
        bin.via.bin.ptr = o->via.str.ptr;
        bin.via.bin.size = o->via.str.size;
        return sf_mp_to_json(&bin);
    }
    case MSGPACK_OBJECT_BIN:
    case MSGPACK_OBJECT_EXT: {
        const char *p = o->type == MSGPACK_OBJECT_BIN ? o->via.bin.ptr : o->via.ext.ptr;
        size_t n = o->type == MSGPACK_OBJECT_BIN ? o->via.bin.size : o->via.ext.size;
        char *b64 = sf_base64_encode(p, n);
        if (b64 == NULL)
            return NULL;
        json_t *j = json_pack("{s:s}", o->type == MSGPACK_OBJECT_BIN ? "$bin" : "$ext", b64);
        free(b64);
        return j;
    }
    case MSGPACK_OBJECT_ARRAY: {
        json_t *a = json_array();
        for (uint32_t i = 0; a && i < o->via.array.size; i++) {
            json_t *v = sf_mp_to_json(&o->via.array.ptr[i]);
            if (v == NULL || json_array_append_new(a, v) != 0) {
                json_decref(a);
                return NULL;
            }
        }
        return a;
    }
    case MSGPACK_OBJECT_MAP: {
        json_t *m = json_object();
        for (uint32_t i = 0; m && i < o->via.map.size; i++) {
            const msgpack_object *k = &o->via.map.ptr[i].key;
            char *key;
            if (k->type == MSGPACK_OBJECT_STR) {
                key = strndup(k->via.str.ptr, k->via.str.size);
            } else {
                /* Non-string keys are written as their JSON text. */
                json_t *kj = sf_mp_to_json(k);
                key = kj ? json_dumps(kj, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
                json_decref(kj);
            }
            json_t *v = sf_mp_to_json(&o->via.map.ptr[i].val);
            if (key == NULL || v == NULL) {
                free(key);
                json_decref(v);
                json_decref(m);
                return NULL;
            }
            /* json_object_set_new takes v even when it fails (e.g. a non-UTF-8 key). */
            int rc = json_object_set_new(m, key, v);
            free(key);
            if (rc != 0) {
                json_decref(m);
                return NULL;
            }
        }
        return m;
    }
    }
    return NULL;
}

int sf_mp_pack_json(msgpack_packer *pk, const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_NULL:
        return msgpack_pack_nil(pk);
    case JSON_TRUE:
        return msgpack_pack_true(pk);
    case JSON_FALSE:
        return msgpack_pack_false(pk);
    case JSON_INTEGER:
        return msgpack_pack_int64(pk, json_integer_value(j));
    case JSON_REAL:
        return msgpack_pack_double(pk, json_real_value(j));
    case JSON_STRING:
        msgpack_pack_str(pk, json_string_length(j));
        return msgpack_pack_str_body(pk, json_string_value(j), json_string_length(j));
    case JSON_ARRAY: {
        msgpack_pack_array(pk, json_array_size(j));
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v)
        {
            if (sf_mp_pack_json(pk, v) != 0)
                return -1;
        }
        return 0;
    }
    case JSON_OBJECT: {
        json_t *bin = json_object_get(j, "$bin");
        if (json_object_size(j) == 1 && json_is_string(bin)) {
            unsigned char *raw;
            size_t n;
            if (sf_base64_decode(json_string_value(bin), json_string_length(bin), &raw, &n) != 0)
                return -1;
            msgpack_pack_bin(pk, n);
            msgpack_pack_bin_body(pk, raw, n);
            free(raw);
            return 0;
        }
        msgpack_pack_map(pk, json_object_size(j));
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)j, k, v)
        {
            sf_mp_pack_cstr(pk, k);
            if (sf_mp_pack_json(pk, v) != 0)
                return -1;
        }
        return 0;
    }
    }
    return -1;
}
