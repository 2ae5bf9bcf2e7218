/*
 * dlq.c — DLQ record encode/validate; see dlq.h.
 *
 * The record's keys are one table (DLQ_FIELDS), in the order they are
 * written: the map's size is the number of entries present, counted from
 * the table as it is packed, never by hand.
 */
#include "dlq.h"

#include "request.h"

static void pack_bin(msgpack_packer *pk, sf_str b)
{
    msgpack_pack_bin(pk, b.len);
    msgpack_pack_bin_body(pk, b.ptr, b.len);
}

static void pack_v(msgpack_packer *pk, const sf_dlq_record *r)
{
    msgpack_pack_int(pk, SF_SCHEMA_VERSION);
}

static void pack_reason(msgpack_packer *pk, const sf_dlq_record *r)
{
    sf_mp_pack_cstr(pk, r->reason);
}

static void pack_error_type(msgpack_packer *pk, const sf_dlq_record *r)
{
    sf_mp_pack_cstr(pk, r->error_type);
}

static void pack_topic(msgpack_packer *pk, const sf_dlq_record *r)
{
    sf_mp_pack_cstr(pk, r->topic);
}

static void pack_partition(msgpack_packer *pk, const sf_dlq_record *r)
{
    msgpack_pack_int32(pk, r->partition);
}

static void pack_offset(msgpack_packer *pk, const sf_dlq_record *r)
{
    msgpack_pack_int64(pk, r->offset);
}

static void pack_key(msgpack_packer *pk, const sf_dlq_record *r)
{
    if (r->key.ptr)
        pack_bin(pk, r->key);
    else
        msgpack_pack_nil(pk);
}

static void pack_value(msgpack_packer *pk, const sf_dlq_record *r)
{
    pack_bin(pk, r->value);
}

static bool value_was_cut(const sf_dlq_record *r)
{
    return r->value_size > r->value.len;
}

static void pack_value_size(msgpack_packer *pk, const sf_dlq_record *r)
{
    msgpack_pack_uint64(pk, r->value_size);
}

static void pack_ts_ms(msgpack_packer *pk, const sf_dlq_record *r)
{
    msgpack_pack_uint64(pk, r->ts_ms);
}

static void pack_supervisor(msgpack_packer *pk, const sf_dlq_record *r)
{
    sf_mp_pack_cstr(pk, r->supervisor);
}

/* One key of the record: when it is written (NULL: always) and how its value is packed. */
typedef struct dlq_field {
    const char *key;
    bool (*present)(const sf_dlq_record *r);
    void (*pack)(msgpack_packer *pk, const sf_dlq_record *r);
} dlq_field;

static const dlq_field DLQ_FIELDS[] = {
    {"v", NULL, pack_v},
    {"reason", NULL, pack_reason},
    {"error_type", NULL, pack_error_type},
    {"topic", NULL, pack_topic},
    {"partition", NULL, pack_partition},
    {"offset", NULL, pack_offset},
    {"key", NULL, pack_key},
    {"value", NULL, pack_value},
    {"value_size", value_was_cut, pack_value_size},
    {"ts_ms", NULL, pack_ts_ms},
    {"supervisor", NULL, pack_supervisor},
};
#define DLQ_NFIELDS (sizeof(DLQ_FIELDS) / sizeof(DLQ_FIELDS[0]))

static bool field_present(const dlq_field *f, const sf_dlq_record *r)
{
    return f->present == NULL || f->present(r);
}

void sf_dlq_pack(msgpack_packer *pk, const sf_dlq_record *r)
{
    size_t n = 0;
    for (size_t i = 0; i < DLQ_NFIELDS; i++)
        n += field_present(&DLQ_FIELDS[i], r);
    msgpack_pack_map(pk, n);
    for (size_t i = 0; i < DLQ_NFIELDS; i++) {
        if (!field_present(&DLQ_FIELDS[i], r))
            continue;
        sf_mp_pack_cstr(pk, DLQ_FIELDS[i].key);
        DLQ_FIELDS[i].pack(pk, r);
    }
}

/* A bin field (nil too when nil_ok). */
static int field_bin(const msgpack_object *root, const char *key, bool nil_ok, sf_err *err)
{
    const msgpack_object *o;
    if (sf_mp_field_any(root, key, key, true, &o, err) < 0)
        return -1;
    if (o->type == MSGPACK_OBJECT_BIN || (nil_ok && o->type == MSGPACK_OBJECT_NIL))
        return 0;
    return sf_fail(err, SF_E_WRONG_TYPE, key, "field '%s' must be bin%s", key,
                   nil_ok ? " or nil" : "");
}

int sf_dlq_validate(const msgpack_object *root, sf_err *err)
{
    int64_t v;
    if (sf_mp_field_int(root, "v", "v", true, &v, err) < 0)
        return -1;
    if (v != SF_SCHEMA_VERSION)
        return sf_fail(err, SF_E_UNKNOWN_VERSION, "v", "unknown schema version %lld", (long long)v);
    sf_str s;
    uint64_t u;
    if (sf_mp_field_str(root, "reason", "reason", true, 0, UINT32_MAX, &s, err) < 0 ||
        sf_mp_field_str(root, "error_type", "error_type", true, 0, UINT32_MAX, &s, err) < 0 ||
        sf_mp_field_str(root, "topic", "topic", true, 0, UINT32_MAX, &s, err) < 0 ||
        sf_mp_field_uint(root, "partition", "partition", true, &u, err) < 0 ||
        sf_mp_field_uint(root, "offset", "offset", true, &u, err) < 0 ||
        field_bin(root, "key", true, err) < 0 || field_bin(root, "value", false, err) < 0 ||
        sf_mp_field_uint(root, "value_size", "value_size", false, &u, err) < 0 ||
        sf_mp_field_uint(root, "ts_ms", "ts_ms", true, &u, err) < 0 ||
        sf_mp_field_str(root, "supervisor", "supervisor", true, 0, UINT32_MAX, &s, err) < 0)
        return -1;
    return 0;
}

int sf_dlq_decode(msgpack_unpacked *u, const char *data, size_t len, sf_err *err)
{
    if (sf_mp_unpack_map(u, data, len, err) < 0)
        return -1;
    return sf_dlq_validate(&u->data, err);
}
