/*
 * frame.c — worker frame decode/validate/encode; see frame.h.
 *
 * Validation order: shape, t present, v, t known, then the type's fields.
 * The same order as the Python codec, so both report the same first error.
 */
#include "frame.h"

#include <string.h>

#include "request.h"

static const char *const FRAME_NAMES[] = {
    [SF_FRAME_READY] = "ready", [SF_FRAME_CALL] = "call", [SF_FRAME_RESULT] = "result",
    [SF_FRAME_PING] = "ping",   [SF_FRAME_PONG] = "pong", [SF_FRAME_SHUTDOWN] = "shutdown",
    [SF_FRAME_ERROR] = "error",
};
#define FRAME_TYPES (int)(sizeof(FRAME_NAMES) / sizeof(FRAME_NAMES[0]))

const char *sf_frame_type_name(sf_frame_type t)
{
    return (int)t >= 0 && (int)t < FRAME_TYPES ? FRAME_NAMES[t] : "unknown";
}

static int validate_ready(sf_frame *f, const msgpack_object *m, sf_err *err)
{
    if (sf_mp_field_int(m, "pid", "pid", true, &f->pid, err) < 0 ||
        sf_mp_field_str(m, "worker_id", "worker_id", true, 0, UINT32_MAX, &f->worker_id, err) < 0 ||
        sf_mp_field_str(m, "python", "python", false, 0, UINT32_MAX, &f->python, err) < 0 ||
        sf_mp_field_array(m, "caps", "caps", false, &f->caps, err) < 0)
        return -1;
    return 0;
}

static int validate_call(sf_frame *f, const msgpack_object *m, sf_err *err)
{
    if (sf_mp_field_uint(m, "seq", "seq", true, &f->seq, err) < 0 ||
        sf_mp_field_str(m, "op", "op", true, 1, UINT32_MAX, &f->op, err) < 0 ||
        sf_mp_field_str(m, "session", "session", true, 0, UINT32_MAX, &f->session, err) < 0 ||
        sf_mp_field_str(m, "program", "program", false, 0, UINT32_MAX, &f->program, err) < 0 ||
        sf_mp_field_any(m, "args", "args", false, &f->args, err) < 0 ||
        sf_mp_field_map(m, "spec", "spec", false, &f->spec, err) < 0 ||
        sf_mp_field_map(m, "state", "state", false, &f->state, err) < 0 ||
        sf_mp_field_uint(m, "spec_ver", "spec_ver", false, &f->spec_ver, err) < 0 ||
        sf_mp_field_uint(m, "state_ver", "state_ver", false, &f->state_ver, err) < 0)
        return -1;
    f->has_seq = true;
    return 0;
}

static int validate_result(sf_frame *f, const msgpack_object *m, sf_err *err)
{
    if (sf_mp_field_uint(m, "seq", "seq", true, &f->seq, err) < 0 ||
        sf_mp_field_bool(m, "ok", "ok", true, &f->ok, err) < 0)
        return -1;
    f->has_seq = true;
    if (f->ok) {
        if (sf_mp_field_any(m, "value", "value", false, &f->value, err) < 0)
            return -1;
    } else {
        if (sf_mp_field_map(m, "error", "error", true, &f->error, err) < 0 ||
            sf_mp_field_str(f->error, "type", "error.type", true, 1, UINT32_MAX, &f->err_type,
                            err) < 0 ||
            sf_mp_field_str(f->error, "message", "error.message", true, 0, UINT32_MAX,
                            &f->err_message, err) < 0 ||
            sf_mp_field_str(f->error, "traceback", "error.traceback", false, 0, UINT32_MAX,
                            &f->err_traceback, err) < 0)
            return -1;
    }
    if (sf_mp_field_map(m, "state", "state", false, &f->state, err) < 0 ||
        sf_mp_field_uint(m, "exec_us", "exec_us", false, &f->exec_us, err) < 0)
        return -1;
    return 0;
}

static int frame_validate(sf_frame *f, const msgpack_object *m, sf_err *err)
{
    sf_str t;
    int64_t v;
    if (sf_mp_field_str(m, "t", "t", true, 0, UINT32_MAX, &t, err) < 0 ||
        sf_mp_field_int(m, "v", "v", true, &v, err) < 0)
        return -1;
    if (v != SF_SCHEMA_VERSION)
        return sf_fail(err, SF_E_UNKNOWN_VERSION, "v", "unknown frame version %lld", (long long)v);
    int type = -1;
    for (int i = 0; i < FRAME_TYPES; i++) {
        if (sf_str_eq(t, FRAME_NAMES[i]))
            type = i;
    }
    if (type < 0)
        return sf_fail(err, SF_E_UNKNOWN_FRAME, "t", "unknown frame type '%.*s'", SF_STR_ARG(t));
    f->type = (sf_frame_type)type;
    switch (f->type) {
    case SF_FRAME_READY:
        return validate_ready(f, m, err);
    case SF_FRAME_CALL:
        return validate_call(f, m, err);
    case SF_FRAME_RESULT:
        return validate_result(f, m, err);
    case SF_FRAME_PING:
        f->has_seq = true;
        return sf_mp_field_uint(m, "seq", "seq", true, &f->seq, err) < 0 ? -1 : 0;
    case SF_FRAME_PONG:
        f->has_seq = true;
        if (sf_mp_field_uint(m, "seq", "seq", true, &f->seq, err) < 0 ||
            sf_mp_field_uint(m, "rss_kb", "rss_kb", false, &f->rss_kb, err) < 0)
            return -1;
        return 0;
    case SF_FRAME_SHUTDOWN:
        return 0;
    case SF_FRAME_ERROR: {
        int rc = sf_mp_field_uint(m, "seq", "seq", false, &f->seq, err);
        if (rc < 0)
            return -1;
        f->has_seq = rc == 1;
        return sf_mp_field_str(m, "message", "message", true, 0, UINT32_MAX, &f->message, err) < 0
                   ? -1
                   : 0;
    }
    }
    return -1;
}

int sf_frame_decode(sf_frame *f, const char *body, size_t len, sf_err *err)
{
    memset(f, 0, sizeof(*f));
    msgpack_unpacked_init(&f->unpacked);
    if (sf_mp_unpack_map(&f->unpacked, body, len, err) < 0 ||
        frame_validate(f, &f->unpacked.data, err) < 0) {
        msgpack_unpacked_destroy(&f->unpacked);
        memset(f, 0, sizeof(*f));
        return -1;
    }
    f->root = &f->unpacked.data;
    return 0;
}

void sf_frame_release(sf_frame *f)
{
    msgpack_unpacked_destroy(&f->unpacked);
    memset(f, 0, sizeof(*f));
}

size_t sf_frame_begin(msgpack_sbuffer *sb)
{
    size_t start = sb->size;
    static const char zero[4] = {0};
    msgpack_sbuffer_write(sb, zero, sizeof(zero));
    return start;
}

void sf_frame_end(msgpack_sbuffer *sb, size_t start)
{
    uint32_t n = (uint32_t)(sb->size - start - 4);
    unsigned char *h = (unsigned char *)sb->data + start;
    h[0] = (unsigned char)(n >> 24);
    h[1] = (unsigned char)(n >> 16);
    h[2] = (unsigned char)(n >> 8);
    h[3] = (unsigned char)n;
}

static void pack_head(msgpack_packer *pk, size_t entries, const char *type)
{
    msgpack_pack_map(pk, entries);
    sf_mp_pack_cstr(pk, "t");
    sf_mp_pack_cstr(pk, type);
    sf_mp_pack_cstr(pk, "v");
    msgpack_pack_int(pk, SF_SCHEMA_VERSION);
}

size_t sf_frame_open_call(msgpack_sbuffer *sb, const sf_call *c)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    sf_frame_begin(sb);
    static const char map16[3] = {(char)0xde, 0, 0};
    msgpack_sbuffer_write(sb, map16, sizeof(map16));
    sf_mp_pack_cstr(&pk, "t");
    sf_mp_pack_cstr(&pk, "call");
    sf_mp_pack_cstr(&pk, "v");
    msgpack_pack_int(&pk, SF_SCHEMA_VERSION);
    sf_mp_pack_cstr(&pk, "seq");
    msgpack_pack_uint64(&pk, c->seq);
    sf_mp_pack_cstr(&pk, "op");
    sf_mp_pack_cstr(&pk, c->op);
    sf_mp_pack_cstr(&pk, "session");
    sf_mp_pack_str(&pk, c->session);
    size_t n = 5;
    if (c->program.len) {
        sf_mp_pack_cstr(&pk, "program");
        sf_mp_pack_str(&pk, c->program);
        n++;
    }
    if (c->args) {
        sf_mp_pack_cstr(&pk, "args");
        msgpack_pack_object(&pk, *c->args);
        n++;
    }
    size_t nctx = (c->request_id.len > 0) + (c->deadline_ms > 0) + (c->meta != NULL) +
                  (c->traceparent.len > 0) + (c->tracestate.len > 0);
    if (nctx) {
        sf_mp_pack_cstr(&pk, "ctx");
        msgpack_pack_map(&pk, (uint32_t)nctx);
        if (c->request_id.len) {
            sf_mp_pack_cstr(&pk, "id");
            sf_mp_pack_str(&pk, c->request_id);
        }
        if (c->deadline_ms) {
            sf_mp_pack_cstr(&pk, "deadline_ms");
            msgpack_pack_uint64(&pk, c->deadline_ms);
        }
        if (c->meta) {
            sf_mp_pack_cstr(&pk, "meta");
            msgpack_pack_object(&pk, *c->meta);
        }
        if (c->traceparent.len) {
            sf_mp_pack_cstr(&pk, "traceparent");
            sf_mp_pack_str(&pk, c->traceparent);
        }
        if (c->tracestate.len) {
            sf_mp_pack_cstr(&pk, "tracestate");
            sf_mp_pack_str(&pk, c->tracestate);
        }
        n++;
    }
    return n;
}

void sf_frame_patch_call(char *frame, uint32_t body_len, uint16_t fields)
{
    unsigned char *h = (unsigned char *)frame;
    h[0] = (unsigned char)(body_len >> 24);
    h[1] = (unsigned char)(body_len >> 16);
    h[2] = (unsigned char)(body_len >> 8);
    h[3] = (unsigned char)body_len;
    h[5] = (unsigned char)(fields >> 8);
    h[6] = (unsigned char)fields;
}

/* A fixstr key, then the version as a uint64 when with_ver; returns the bytes written. */
static size_t put_key(unsigned char *b, const char *key, bool with_ver, uint64_t ver)
{
    size_t kl = strlen(key), n = 0;
    b[n++] = (unsigned char)(0xa0 | kl);
    memcpy(b + n, key, kl);
    n += kl;
    if (with_ver) {
        b[n++] = 0xcf;
        for (int i = 7; i >= 0; i--)
            b[n++] = (unsigned char)(ver >> (8 * i));
    }
    return n;
}

size_t sf_frame_call_spec_keys(unsigned char *out, uint64_t spec_ver, bool spec_follows,
                               uint16_t *fields)
{
    size_t n = put_key(out, "spec_ver", true, spec_ver);
    (*fields)++;
    if (spec_follows) {
        n += put_key(out + n, "spec", false, 0);
        (*fields)++;
    }
    return n;
}

size_t sf_frame_call_state_key(unsigned char *out, bool state_follows, uint64_t state_ver,
                               uint16_t *fields)
{
    (*fields)++;
    return state_follows ? put_key(out, "state", false, 0)
                         : put_key(out, "state_ver", true, state_ver);
}

void sf_frame_pack_call(msgpack_sbuffer *sb, const sf_call *c)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    size_t start = sb->size;
    size_t n = sf_frame_open_call(sb, c);
    if (c->spec_ver) {
        sf_mp_pack_cstr(&pk, "spec_ver");
        msgpack_pack_uint64(&pk, c->spec_ver);
        n++;
    }
    if (c->spec != NULL || c->spec_raw.len > 0) {
        sf_mp_pack_cstr(&pk, "spec");
        if (c->spec)
            msgpack_pack_object(&pk, *c->spec);
        else
            msgpack_sbuffer_write(sb, c->spec_raw.ptr, c->spec_raw.len);
        n++;
    }
    if (c->state_ver) {
        sf_mp_pack_cstr(&pk, "state_ver");
        msgpack_pack_uint64(&pk, c->state_ver);
        n++;
    }
    if (c->state != NULL || c->state_raw.len > 0) {
        sf_mp_pack_cstr(&pk, "state");
        if (c->state)
            msgpack_pack_object(&pk, *c->state);
        else
            msgpack_sbuffer_write(sb, c->state_raw.ptr, c->state_raw.len);
        n++;
    }
    sf_frame_patch_call(sb->data + start, (uint32_t)(sb->size - start - 4), (uint16_t)n);
}

void sf_frame_pack_ping(msgpack_sbuffer *sb, uint64_t seq)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    size_t start = sf_frame_begin(sb);
    pack_head(&pk, 3, "ping");
    sf_mp_pack_cstr(&pk, "seq");
    msgpack_pack_uint64(&pk, seq);
    sf_frame_end(sb, start);
}

void sf_frame_pack_shutdown(msgpack_sbuffer *sb)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    size_t start = sf_frame_begin(sb);
    pack_head(&pk, 2, "shutdown");
    sf_frame_end(sb, start);
}
