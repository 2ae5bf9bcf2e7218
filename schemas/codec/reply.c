/* reply.c — reply encode/validate; see reply.h. */
#include "reply.h"

#include <string.h>

#include "request.h"

static void pack_error(msgpack_packer *pk, const sf_reply *r)
{
    size_t n = 2 + (r->err_traceback.len > 0) + (r->err_field.len > 0);
    msgpack_pack_map(pk, n);
    sf_mp_pack_cstr(pk, "type");
    sf_mp_pack_str(pk, r->err_type);
    sf_mp_pack_cstr(pk, "message");
    sf_mp_pack_str(pk, r->err_message);
    if (r->err_traceback.len) {
        sf_mp_pack_cstr(pk, "traceback");
        sf_mp_pack_str(pk, r->err_traceback);
    }
    if (r->err_field.len) {
        sf_mp_pack_cstr(pk, "field");
        sf_mp_pack_str(pk, r->err_field);
    }
}

void sf_reply_pack(msgpack_packer *pk, const sf_reply *r)
{
    size_t n = 5 + (r->worker.len > 0) + (r->supervisor.len > 0) + r->has_timings;
    msgpack_pack_map(pk, n);
    sf_mp_pack_cstr(pk, "v");
    msgpack_pack_int(pk, SF_SCHEMA_VERSION);
    sf_mp_pack_cstr(pk, "id");
    sf_mp_pack_str(pk, r->id);
    sf_mp_pack_cstr(pk, "session");
    sf_mp_pack_str(pk, r->session);
    sf_mp_pack_cstr(pk, "ok");
    if (r->ok) {
        msgpack_pack_true(pk);
        sf_mp_pack_cstr(pk, "result");
        if (r->result)
            msgpack_pack_object(pk, *r->result);
        else if (r->result_raw.len)
            msgpack_pack_str_body(pk, r->result_raw.ptr, r->result_raw.len); /* raw bytes */
        else
            msgpack_pack_nil(pk);
    } else {
        msgpack_pack_false(pk);
        sf_mp_pack_cstr(pk, "error");
        pack_error(pk, r);
    }
    if (r->worker.len) {
        sf_mp_pack_cstr(pk, "worker");
        sf_mp_pack_str(pk, r->worker);
    }
    if (r->supervisor.len) {
        sf_mp_pack_cstr(pk, "supervisor");
        sf_mp_pack_str(pk, r->supervisor);
    }
    if (r->has_timings) {
        sf_mp_pack_cstr(pk, "timings");
        msgpack_pack_map(pk, 3);
        sf_mp_pack_cstr(pk, "queued_us");
        msgpack_pack_uint64(pk, r->queued_us);
        sf_mp_pack_cstr(pk, "exec_us");
        msgpack_pack_uint64(pk, r->exec_us);
        sf_mp_pack_cstr(pk, "total_us");
        msgpack_pack_uint64(pk, r->total_us);
    }
}

int sf_reply_validate(const msgpack_object *root, sf_err *err)
{
    int64_t v;
    if (sf_mp_field_int(root, "v", "v", true, &v, err) < 0)
        return -1;
    if (v != SF_SCHEMA_VERSION)
        return sf_fail(err, SF_E_UNKNOWN_VERSION, "v", "unknown schema version %lld", (long long)v);
    sf_str s;
    bool ok;
    const msgpack_object *o;
    if (sf_mp_field_str(root, "id", "id", true, 0, UINT32_MAX, &s, err) < 0 ||
        sf_mp_field_str(root, "session", "session", true, 0, UINT32_MAX, &s, err) < 0 ||
        sf_mp_field_bool(root, "ok", "ok", true, &ok, err) < 0)
        return -1;
    if (!ok) {
        if (sf_mp_field_map(root, "error", "error", true, &o, err) < 0 ||
            sf_mp_field_str(o, "type", "error.type", true, 1, UINT32_MAX, &s, err) < 0 ||
            sf_mp_field_str(o, "message", "error.message", true, 0, UINT32_MAX, &s, err) < 0 ||
            sf_mp_field_str(o, "traceback", "error.traceback", false, 0, UINT32_MAX, &s, err) < 0 ||
            sf_mp_field_str(o, "field", "error.field", false, 0, UINT32_MAX, &s, err) < 0)
            return -1;
    }
    if (sf_mp_field_str(root, "worker", "worker", false, 0, UINT32_MAX, &s, err) < 0 ||
        sf_mp_field_str(root, "supervisor", "supervisor", false, 0, UINT32_MAX, &s, err) < 0 ||
        sf_mp_field_map(root, "timings", "timings", false, &o, err) < 0)
        return -1;
    return 0;
}

int sf_reply_decode(msgpack_unpacked *u, const char *data, size_t len, sf_err *err)
{
    if (sf_mp_unpack_map(u, data, len, err) < 0)
        return -1;
    return sf_reply_validate(&u->data, err);
}
