/*
 * test_vectors.c — every shared vector in schemas/vectors/ through the C
 * codec: requests, replies, telemetry records, DLQ records and worker-frame
 * streams. A valid reply, telemetry or DLQ record is also packed again from
 * its decoded fields: the encoder must write the vector's exact bytes. Frame
 * streams (and requests, wrapped in a frame) are fed whole, one byte at a
 * time and at random split points; the outcome must not depend on how bytes
 * arrive.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "dlq.h"
#include "frame.h"
#include "frame_reader.h"
#include "reply.h"
#include "request.h"
#include "telemetry.h"
#include "vectors.h"

static size_t expect_max(const sf_vector *v)
{
    json_t *m = json_object_get(v->expect, "max_bytes");
    return m ? (size_t)json_integer_value(m) : 0;
}

static bool expect_valid(const sf_vector *v)
{
    return json_is_true(json_object_get(v->expect, "valid"));
}

static void check_error(const sf_vector *v, const sf_err *err)
{
    json_t *e = json_object_get(v->expect, "error");
    const char *code = json_string_value(json_object_get(e, "code"));
    const char *field = json_string_value(json_object_get(e, "field"));
    cr_expect_str_eq(sf_errcode_name(err->code), code, "%s: code %s (%s), want %s", v->name,
                     sf_errcode_name(err->code), err->message, code);
    cr_expect_str_eq(err->field, field ? field : "", "%s: field '%s', want '%s'", v->name,
                     err->field, field ? field : "");
    cr_expect(err->message[0] != '\0', "%s: error has no message", v->name);
    if (field)
        cr_expect(strstr(err->message, field) != NULL, "%s: message '%s' does not name '%s'",
                  v->name, err->message, field);
}

static void check_json(const sf_vector *v, json_t *got, json_t *want)
{
    if (!json_equal(got, want)) {
        char *g = json_dumps(got, JSON_SORT_KEYS | JSON_ENCODE_ANY);
        char *w = json_dumps(want, JSON_SORT_KEYS | JSON_ENCODE_ANY);
        cr_expect_fail("%s: decoded %s, want %s", v->name, g, w);
        free(g);
        free(w);
    }
}

static void expect_view(const sf_vector *v, sf_str got, json_t *want, const char *what)
{
    const char *w = want ? json_string_value(want) : "";
    cr_expect(sf_str_eq(got, w), "%s: %s is '%.*s', want '%s'", v->name, what, SF_STR_ARG(got), w);
}

static void check_request(const sf_vector *v, const char *data, size_t len)
{
    sf_request req;
    sf_err err;
    sf_err_clear(&err);
    int rc = sf_request_decode(&req, data, len, expect_max(v), &err);
    if (!expect_valid(v)) {
        cr_expect_eq(rc, -1, "%s: decoded an invalid request", v->name);
        if (rc == 0)
            sf_request_release(&req);
        else
            check_error(v, &err);
        return;
    }
    cr_assert_eq(rc, 0, "%s: %s (%s)", v->name, err.message, err.field);
    json_t *want = json_object_get(v->expect, "decoded");
    json_t *got = sf_mp_to_json(&req.unpacked.data);
    check_json(v, got, want);
    json_decref(got);
    expect_view(v, req.id, json_object_get(want, "id"), "id");
    expect_view(v, req.session, json_object_get(want, "session"), "session");
    expect_view(v, req.program, json_object_get(want, "program"), "program");
    expect_view(v, req.reply_to, json_object_get(want, "reply_to"), "reply_to");
    cr_expect_str_eq(sf_op_name(req.op), json_string_value(json_object_get(want, "op")));
    json_t *dl = json_object_get(want, "deadline_ms");
    cr_expect_eq(req.deadline_ms, dl ? (uint64_t)json_integer_value(dl) : 0);
    cr_expect_eq(req.args != NULL, json_object_get(want, "args") != NULL);

    /* Canonical encoding: packing the decoded object gives back the same bytes. */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_object(&pk, req.unpacked.data);
    cr_expect(sb.size == len && memcmp(sb.data, data, len) == 0, "%s: re-encoding differs",
              v->name);
    msgpack_sbuffer_destroy(&sb);
    sf_request_release(&req);
}

Test(vectors, requests)
{
    sf_vector *v;
    size_t n = sf_vectors_load("request", &v);
    cr_assert_gt(n, 30, "request vectors missing (found %zu)", n);
    for (size_t i = 0; i < n; i++)
        check_request(&v[i], (const char *)v[i].bytes, v[i].len);
    sf_vectors_free(v, n);
}

/* A request travels in a frame too (e.g. in a pipe); byte-wise arrival changes nothing. */
Test(vectors, requests_fed_byte_by_byte)
{
    sf_vector *v;
    size_t n = sf_vectors_load("request", &v);
    for (size_t i = 0; i < n; i++) {
        sf_reader *r = sf_reader_new(0);
        unsigned char h[4] = {(unsigned char)(v[i].len >> 24), (unsigned char)(v[i].len >> 16),
                              (unsigned char)(v[i].len >> 8), (unsigned char)v[i].len};
        const char *body = NULL;
        size_t blen = 0;
        int got = 0;
        sf_err err;
        for (size_t k = 0; k < 4 + v[i].len; k++) {
            unsigned char b = k < 4 ? h[k] : v[i].bytes[k - 4];
            cr_assert_eq(sf_reader_feed(r, &b, 1), 0);
            int rc = sf_reader_next(r, &body, &blen, &err);
            cr_assert_neq(rc, -1);
            if (rc == 1) {
                cr_assert_eq(k, 3 + v[i].len, "%s: frame complete too early", v[i].name);
                got = 1;
                check_request(&v[i], body, blen);
            }
        }
        cr_expect_eq(got, 1, "%s: no frame", v[i].name);
        cr_expect_eq(sf_reader_finish(r, &err), 0);
        sf_reader_free(r);
    }
    sf_vectors_free(v, n);
}

Test(vectors, replies)
{
    sf_vector *v;
    size_t n = sf_vectors_load("reply", &v);
    cr_assert_gt(n, 5);
    for (size_t i = 0; i < n; i++) {
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        sf_err err;
        int rc = sf_reply_decode(&u, (const char *)v[i].bytes, v[i].len, &err);
        if (!expect_valid(&v[i])) {
            cr_expect_eq(rc, -1, "%s: accepted an invalid reply", v[i].name);
            if (rc < 0)
                check_error(&v[i], &err);
            msgpack_unpacked_destroy(&u);
            continue;
        }
        cr_assert_eq(rc, 0, "%s: %s", v[i].name, err.message);
        json_t *got = sf_mp_to_json(&u.data);
        check_json(&v[i], got, json_object_get(v[i].expect, "decoded"));
        json_decref(got);

        /* The encoder, fed the decoded fields, writes the vector's exact bytes. */
        const msgpack_object *m = &u.data, *o, *e = sf_mp_get(m, "error"), *t;
        sf_reply r = {0};
        sf_mp_field_str(m, "id", "id", true, 0, UINT32_MAX, &r.id, NULL);
        sf_mp_field_str(m, "session", "session", true, 0, UINT32_MAX, &r.session, NULL);
        sf_mp_field_bool(m, "ok", "ok", true, &r.ok, NULL);
        r.result = (o = sf_mp_get(m, "result")) && o->type != MSGPACK_OBJECT_NIL ? o : NULL;
        sf_mp_field_str(e, "type", "", false, 0, UINT32_MAX, &r.err_type, NULL);
        sf_mp_field_str(e, "message", "", false, 0, UINT32_MAX, &r.err_message, NULL);
        sf_mp_field_str(e, "traceback", "", false, 0, UINT32_MAX, &r.err_traceback, NULL);
        sf_mp_field_str(e, "field", "", false, 0, UINT32_MAX, &r.err_field, NULL);
        sf_mp_field_str(m, "worker", "", false, 0, UINT32_MAX, &r.worker, NULL);
        sf_mp_field_str(m, "supervisor", "", false, 0, UINT32_MAX, &r.supervisor, NULL);
        if ((t = sf_mp_get(m, "timings")) != NULL) {
            r.has_timings = true;
            sf_mp_field_uint(t, "queued_us", "", true, &r.queued_us, NULL);
            sf_mp_field_uint(t, "exec_us", "", true, &r.exec_us, NULL);
            sf_mp_field_uint(t, "total_us", "", true, &r.total_us, NULL);
        }
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        sf_reply_pack(&pk, &r);
        cr_expect(sb.size == v[i].len && memcmp(sb.data, v[i].bytes, sb.size) == 0,
                  "%s: sf_reply_pack wrote different bytes", v[i].name);
        msgpack_sbuffer_destroy(&sb);
        msgpack_unpacked_destroy(&u);
    }
    sf_vectors_free(v, n);
}

/* Checks a record kind whose valid vectors must re-encode to their bytes. */
typedef int (*decode_fn)(msgpack_unpacked *u, const char *data, size_t len, sf_err *err);
typedef void (*repack_fn)(const sf_vector *v, const msgpack_object *m, msgpack_sbuffer *sb);

static void check_records(const char *kind, decode_fn decode, repack_fn repack)
{
    sf_vector *v;
    size_t n = sf_vectors_load(kind, &v);
    cr_assert_gt(n, 5, "%s vectors missing (found %zu)", kind, n);
    for (size_t i = 0; i < n; i++) {
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        sf_err err;
        sf_err_clear(&err);
        int rc = decode(&u, (const char *)v[i].bytes, v[i].len, &err);
        if (!expect_valid(&v[i])) {
            cr_expect_eq(rc, -1, "%s/%s: accepted an invalid record", kind, v[i].name);
            if (rc < 0)
                check_error(&v[i], &err);
            msgpack_unpacked_destroy(&u);
            continue;
        }
        cr_assert_eq(rc, 0, "%s/%s: %s", kind, v[i].name, err.message);
        json_t *got = sf_mp_to_json(&u.data);
        check_json(&v[i], got, json_object_get(v[i].expect, "decoded"));
        json_decref(got);
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        repack(&v[i], &u.data, &sb);
        cr_expect(sb.size == v[i].len && memcmp(sb.data, v[i].bytes, sb.size) == 0,
                  "%s/%s: the encoder wrote different bytes", kind, v[i].name);
        msgpack_sbuffer_destroy(&sb);
        msgpack_unpacked_destroy(&u);
    }
    sf_vectors_free(v, n);
}

/* A decoded string, NUL-terminated, copied into buf. */
static const char *cstr_of(const msgpack_object *m, const char *key, char *buf, size_t cap)
{
    const msgpack_object *o = sf_mp_get(m, key);
    cr_assert(o != NULL && o->type == MSGPACK_OBJECT_STR, "no string '%s'", key);
    sf_str_copy(buf, cap, (sf_str){o->via.str.ptr, o->via.str.size});
    return buf;
}

/* The telemetry record's values into an sf_stats, row by row of the list. */
static void stats_from(const msgpack_object *m, sf_stats *s, char topics[][256])
{
    const msgpack_object *latency = sf_mp_get(m, "latency");
    for (size_t i = 0; i < sf_stats_count; i++) {
        const sf_stat *st = &sf_stats_list[i];
        char *at = (char *)s + st->offset;
        const msgpack_object *o =
            sf_mp_get(st->kind == SF_STAT_LATENCY ? latency : m, st->telemetry);
        cr_assert(o != NULL, "the record has no '%s'", st->telemetry);
        switch (st->kind) {
        case SF_STAT_COUNTER:
        case SF_STAT_GAUGE:
            *(uint64_t *)at = o->via.u64;
            break;
        case SF_STAT_FLAG:
            *(bool *)at = o->via.boolean;
            break;
        case SF_STAT_LATENCY:
            for (size_t k = 0; k < sf_latency_nfields; k++)
                *(uint64_t *)(at + sf_latency_fields[k].offset) =
                    sf_mp_get(o, sf_latency_fields[k].key)->via.u64;
            break;
        case SF_STAT_LAG: {
            sf_lags *l = (sf_lags *)at;
            l->n = o->via.map.size;
            for (size_t k = 0; k < l->n; k++) {
                const msgpack_object_kv *kv = &o->via.map.ptr[k];
                sf_str_copy(topics[k], 256, (sf_str){kv->key.via.str.ptr, kv->key.via.str.size});
                char *slash = strrchr(topics[k], '/');
                *slash = '\0';
                l->of[k] = (sf_partition_lag){topics[k], atoi(slash + 1), kv->val.via.i64};
            }
            break;
        }
        }
    }
}

static void repack_telemetry(const sf_vector *v, const msgpack_object *m, msgpack_sbuffer *sb)
{
    static char topics[8][256];
    static char supervisor[128];
    sf_stats *s = calloc(1, sizeof(*s));
    stats_from(m, s, topics);
    sf_telemetry t = {.supervisor = cstr_of(m, "supervisor", supervisor, sizeof(supervisor)),
                      .ts_ms = sf_mp_get(m, "ts_ms")->via.u64,
                      .stats = s};
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    sf_telemetry_pack(&pk, &t);
    free(s);
}

Test(vectors, telemetry)
{
    check_records("telemetry", sf_telemetry_decode, repack_telemetry);
}

static sf_str bin_of(const msgpack_object *o)
{
    return o->type == MSGPACK_OBJECT_BIN ? (sf_str){o->via.bin.ptr, o->via.bin.size}
                                         : (sf_str){NULL, 0};
}

static void repack_dlq(const sf_vector *v, const msgpack_object *m, msgpack_sbuffer *sb)
{
    static char reason[256], error_type[64], topic[256], supervisor[128];
    sf_dlq_record r = {.reason = cstr_of(m, "reason", reason, sizeof(reason)),
                       .error_type = cstr_of(m, "error_type", error_type, sizeof(error_type)),
                       .topic = cstr_of(m, "topic", topic, sizeof(topic)),
                       .partition = (int32_t)sf_mp_get(m, "partition")->via.u64,
                       .offset = (int64_t)sf_mp_get(m, "offset")->via.u64,
                       .key = bin_of(sf_mp_get(m, "key")),
                       .value = bin_of(sf_mp_get(m, "value")),
                       .ts_ms = sf_mp_get(m, "ts_ms")->via.u64,
                       .supervisor = cstr_of(m, "supervisor", supervisor, sizeof(supervisor))};
    const msgpack_object *size = sf_mp_get(m, "value_size");
    r.value_size = size ? size->via.u64 : r.value.len;
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    sf_dlq_pack(&pk, &r);
}

Test(vectors, dlq)
{
    check_records("dlq", sf_dlq_decode, repack_dlq);
}

/*
 * Runs one frame stream through a reader, delivering it in chunks whose sizes
 * come from `chunk(i)`. Returns the decoded frames as a JSON array, or NULL
 * with *err set at the first error (reader, decoder or end-of-stream).
 */
static json_t *run_frames(const sf_vector *v, size_t (*chunk)(size_t, unsigned *), unsigned seed,
                          sf_err *err)
{
    sf_reader *r = sf_reader_new(expect_max(v));
    json_t *frames = json_array();
    size_t off = 0;
    bool failed = false;
    while (!failed && off < v->len) {
        size_t k = chunk(off, &seed);
        if (k > v->len - off)
            k = v->len - off;
        cr_assert_eq(sf_reader_feed(r, v->bytes + off, k), 0);
        off += k;
        const char *body;
        size_t blen;
        int rc;
        while (!failed && (rc = sf_reader_next(r, &body, &blen, err)) != 0) {
            if (rc < 0) {
                failed = true;
                break;
            }
            sf_frame f;
            if (sf_frame_decode(&f, body, blen, err) < 0) {
                failed = true;
                break;
            }
            json_array_append_new(frames, sf_mp_to_json(f.root));
            sf_frame_release(&f);
        }
    }
    if (!failed && sf_reader_finish(r, err) < 0)
        failed = true;
    sf_reader_free(r);
    if (failed) {
        json_decref(frames);
        return NULL;
    }
    return frames;
}

static size_t chunk_whole(size_t off, unsigned *seed)
{
    return SIZE_MAX;
}
static size_t chunk_one(size_t off, unsigned *seed)
{
    return 1;
}
static size_t chunk_random(size_t off, unsigned *seed)
{
    return 1 + (size_t)(rand_r(seed) % 23);
}

static void check_frames(const sf_vector *v, size_t (*chunk)(size_t, unsigned *), unsigned seed)
{
    sf_err err;
    sf_err_clear(&err);
    json_t *got = run_frames(v, chunk, seed, &err);
    if (expect_valid(v)) {
        cr_assert(got != NULL, "%s: %s (%s)", v->name, err.message, sf_errcode_name(err.code));
        check_json(v, got, json_object_get(v->expect, "decoded"));
        json_decref(got);
    } else {
        cr_expect(got == NULL, "%s: accepted an invalid stream", v->name);
        json_decref(got);
        if (got == NULL)
            check_error(v, &err);
    }
}

Test(vectors, frames_whole)
{
    sf_vector *v;
    size_t n = sf_vectors_load("frame", &v);
    cr_assert_gt(n, 20);
    for (size_t i = 0; i < n; i++)
        check_frames(&v[i], chunk_whole, 0);
    sf_vectors_free(v, n);
}

Test(vectors, frames_byte_by_byte)
{
    sf_vector *v;
    size_t n = sf_vectors_load("frame", &v);
    for (size_t i = 0; i < n; i++)
        check_frames(&v[i], chunk_one, 0);
    sf_vectors_free(v, n);
}

Test(vectors, frames_random_splits)
{
    sf_vector *v;
    size_t n = sf_vectors_load("frame", &v);
    for (unsigned seed = 1; seed <= 50; seed++)
        for (size_t i = 0; i < n; i++)
            check_frames(&v[i], chunk_random, seed * 7919u + (unsigned)i);
    sf_vectors_free(v, n);
}

/*
 * A call written in two steps, as the pool writes it for one worker
 * (sf_frame_open_call, then the keys of what travels): with the spec and
 * state named by version, it decodes as the call_cached vector does.
 */
Test(vectors, call_in_two_steps_names_cached_spec_and_state)
{
    sf_vector *v;
    size_t n = sf_vectors_load("frame", &v);
    const sf_vector *cached = NULL;
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i].name, "call_cached") == 0)
            cached = &v[i];
    cr_assert(cached != NULL, "no call_cached vector");
    sf_frame want;
    sf_err err;
    cr_assert_eq(sf_frame_decode(&want, (const char *)cached->bytes + 4, cached->len - 4, &err), 0,
                 "%s", err.message);
    char op[64];
    sf_str_copy(op, sizeof(op), want.op);
    sf_call c = {.seq = want.seq,
                 .op = op,
                 .session = want.session,
                 .program = want.program,
                 .args = want.args};
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    uint16_t fields = (uint16_t)sf_frame_open_call(&sb, &c);
    unsigned char keys[SF_FRAME_CALL_KEYS_MAX];
    size_t k = sf_frame_call_spec_keys(keys, want.spec_ver, false, &fields);
    msgpack_sbuffer_write(&sb, (const char *)keys, k);
    k = sf_frame_call_state_key(keys, false, want.state_ver, &fields);
    msgpack_sbuffer_write(&sb, (const char *)keys, k);
    sf_frame_patch_call(sb.data, (uint32_t)(sb.size - 4), fields);

    sf_frame got;
    cr_assert_eq(sf_frame_decode(&got, sb.data + 4, sb.size - 4, &err), 0, "%s", err.message);
    json_t *j = sf_mp_to_json(got.root);
    check_json(cached, j, json_array_get(json_object_get(cached->expect, "decoded"), 0));
    json_decref(j);
    sf_frame_release(&got);

    /* The same call with both in full: their keys, each followed by its bytes. */
    msgpack_sbuffer full;
    msgpack_sbuffer_init(&full);
    fields = (uint16_t)sf_frame_open_call(&full, &c);
    static const char spec[] = "\x81\xa4kind\xa8"
                               "callable",
                      state[] = "\x81\xa1n\x28";
    k = sf_frame_call_spec_keys(keys, 5, true, &fields);
    msgpack_sbuffer_write(&full, (const char *)keys, k);
    msgpack_sbuffer_write(&full, spec, sizeof(spec) - 1);
    k = sf_frame_call_state_key(keys, true, 0, &fields);
    msgpack_sbuffer_write(&full, (const char *)keys, k);
    msgpack_sbuffer_write(&full, state, sizeof(state) - 1);
    sf_frame_patch_call(full.data, (uint32_t)(full.size - 4), fields);
    cr_assert_eq(sf_frame_decode(&got, full.data + 4, full.size - 4, &err), 0, "%s", err.message);
    cr_expect_eq(got.spec_ver, 5);
    cr_expect(got.spec != NULL && got.state != NULL, "spec and state did not travel");
    cr_expect_eq(got.state_ver, 0, "a state sent in full is named by no version");
    sf_frame_release(&got);

    msgpack_sbuffer_destroy(&full);
    msgpack_sbuffer_destroy(&sb);
    sf_frame_release(&want);
    sf_vectors_free(v, n);
}
