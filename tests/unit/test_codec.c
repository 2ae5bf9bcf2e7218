/* test_codec.c — encoders round-trip through the decoders; helpers behave. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "frame_reader.h"
#include "reply.h"
#include "request.h"

static msgpack_sbuffer sb;

static void setup(void)
{
    msgpack_sbuffer_init(&sb);
}
static void teardown(void)
{
    msgpack_sbuffer_destroy(&sb);
}

TestSuite(codec, .init = setup, .fini = teardown);

/* Decodes every frame in sb; the frames borrow from *rp, freed by the caller after them. */
static size_t decode_all(sf_frame *out, size_t cap, sf_reader **rp)
{
    sf_reader *r = *rp = sf_reader_new(0);
    sf_reader_feed(r, sb.data, sb.size);
    const char *b;
    size_t len, n = 0;
    sf_err err;
    while (n < cap && sf_reader_next(r, &b, &len, &err) == 1) {
        cr_assert_eq(sf_frame_decode(&out[n], b, len, &err), 0, "%s", err.message);
        n++;
    }
    return n;
}

Test(codec, call_ping_shutdown_round_trip)
{
    json_t *args_j = json_pack("{s:i, s:s}", "by", 2, "note", "x");
    msgpack_sbuffer asb;
    msgpack_sbuffer_init(&asb);
    msgpack_packer apk;
    msgpack_packer_init(&apk, &asb, msgpack_sbuffer_write);
    sf_mp_pack_json(&apk, args_j);
    msgpack_unpacked au;
    msgpack_unpacked_init(&au);
    cr_assert_eq(sf_mp_unpack_map(&au, asb.data, asb.size, NULL), 0);

    sf_call c = {.seq = 41,
                 .op = "execute_program",
                 .session = sf_cstr("s-1"),
                 .program = sf_cstr("counter"),
                 .args = &au.data,
                 .state = &au.data};
    sf_frame_pack_call(&sb, &c);
    sf_frame_pack_ping(&sb, 42);
    sf_frame_pack_shutdown(&sb);

    sf_frame f[3];
    sf_reader *r;
    cr_assert_eq(decode_all(f, 3, &r), 3);
    cr_expect_eq(f[0].type, SF_FRAME_CALL);
    cr_expect_eq(f[0].seq, 41);
    cr_expect(sf_str_eq(f[0].op, "execute_program"));
    cr_expect(sf_str_eq(f[0].session, "s-1"));
    cr_expect(sf_str_eq(f[0].program, "counter"));
    json_t *back = sf_mp_to_json(f[0].args);
    cr_expect(json_equal(back, args_j));
    json_decref(back);
    cr_expect(f[0].state != NULL && f[0].spec == NULL);
    cr_expect_eq(f[1].type, SF_FRAME_PING);
    cr_expect_eq(f[1].seq, 42);
    cr_expect_eq(f[2].type, SF_FRAME_SHUTDOWN);
    for (int i = 0; i < 3; i++)
        sf_frame_release(&f[i]);
    sf_reader_free(r);
    msgpack_unpacked_destroy(&au);
    msgpack_sbuffer_destroy(&asb);
    json_decref(args_j);
}

Test(codec, a_call_carries_what_the_programs_context_shows_of_its_request)
{
    msgpack_sbuffer msb;
    msgpack_sbuffer_init(&msb);
    msgpack_packer mpk;
    msgpack_packer_init(&mpk, &msb, msgpack_sbuffer_write);
    msgpack_pack_map(&mpk, 1);
    sf_mp_pack_cstr(&mpk, "tenant");
    sf_mp_pack_cstr(&mpk, "t1");
    msgpack_unpacked mu;
    msgpack_unpacked_init(&mu);
    msgpack_unpack_next(&mu, msb.data, msb.size, NULL);
    sf_call c = {.seq = 7,
                 .op = "execute_program",
                 .session = sf_cstr("s"),
                 .program = sf_cstr("p"),
                 .request_id = sf_cstr("r-1"),
                 .deadline_ms = 1900000000000ull,
                 .meta = &mu.data,
                 .traceparent = sf_cstr("00-abc-def-01")};
    sf_frame_pack_call(&sb, &c);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    cr_assert_eq(msgpack_unpack_next(&u, sb.data + 4, sb.size - 4, NULL), MSGPACK_UNPACK_SUCCESS);
    const msgpack_object *ctx = sf_mp_get(&u.data, "ctx");
    cr_assert(ctx && ctx->type == MSGPACK_OBJECT_MAP);
    cr_expect_eq(ctx->via.map.size, 4, "only what is set: no tracestate");
    const msgpack_object *id = sf_mp_get(ctx, "id");
    cr_expect(id && id->type == MSGPACK_OBJECT_STR && id->via.str.size == 3);
    const msgpack_object *dl = sf_mp_get(ctx, "deadline_ms");
    cr_expect(dl && dl->via.u64 == 1900000000000ull);
    cr_expect(sf_mp_get(ctx, "meta") && sf_mp_get(ctx, "traceparent"));
    cr_expect_null(sf_mp_get(ctx, "tracestate"));
    msgpack_unpacked_destroy(&u);
    /* a call with none of them has no ctx */
    msgpack_sbuffer_clear(&sb);
    sf_call bare = {.seq = 8, .op = "ping", .session = sf_cstr("s")};
    sf_frame_pack_call(&sb, &bare);
    msgpack_unpacked_init(&u);
    msgpack_unpack_next(&u, sb.data + 4, sb.size - 4, NULL);
    cr_expect_null(sf_mp_get(&u.data, "ctx"));
    msgpack_unpacked_destroy(&u);
    msgpack_unpacked_destroy(&mu);
    msgpack_sbuffer_destroy(&msb);
}

Test(codec, request_pack_then_decode)
{
    json_t *args = json_pack("{s:{s:s,s:s}}", "spec", "kind", "callable", "entry", "m:f");
    json_t *meta = json_pack("{s:{s:s}}", "blob", "$bin", "AAH/");
    sf_request_spec spec = {.id = "r-9",
                            .session = "sess",
                            .op = SF_OP_CREATE_PROGRAM,
                            .program = "p",
                            .args = args,
                            .reply_to = "replies",
                            .deadline_ms = 1234,
                            .meta = meta};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    cr_assert_eq(sf_request_pack(&pk, &spec), 0);
    sf_request req;
    sf_err err;
    cr_assert_eq(sf_request_decode(&req, sb.data, sb.size, 0, &err), 0, "%s", err.message);
    cr_expect(sf_str_eq(req.id, "r-9"));
    cr_expect_eq(req.op, SF_OP_CREATE_PROGRAM);
    cr_expect(sf_str_eq(req.reply_to, "replies"));
    cr_expect_eq(req.deadline_ms, 1234);
    const msgpack_object *blob = sf_mp_get(req.meta, "blob");
    cr_assert(blob && blob->type == MSGPACK_OBJECT_BIN && blob->via.bin.size == 3);
    cr_expect(memcmp(blob->via.bin.ptr, "\x00\x01\xff", 3) == 0);
    sf_request_release(&req);
    json_decref(args);
    json_decref(meta);
}

Test(codec, salvage_finds_reply_address_in_invalid_request)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 4);
    sf_mp_pack_cstr(&pk, "v");
    msgpack_pack_int(&pk, 7);
    sf_mp_pack_cstr(&pk, "id");
    sf_mp_pack_cstr(&pk, "r-1");
    sf_mp_pack_cstr(&pk, "session");
    sf_mp_pack_cstr(&pk, "s-1");
    sf_mp_pack_cstr(&pk, "reply_to");
    sf_mp_pack_cstr(&pk, "rt");
    sf_request req;
    sf_err err;
    cr_assert_eq(sf_request_decode(&req, sb.data, sb.size, 0, &err), -1);
    cr_expect_eq(err.code, SF_E_UNKNOWN_VERSION);
    char id[16], session[16], rt[16];
    sf_request_salvage(sb.data, sb.size, id, sizeof(id), session, sizeof(session), rt, sizeof(rt));
    cr_expect_str_eq(id, "r-1");
    cr_expect_str_eq(session, "s-1");
    cr_expect_str_eq(rt, "rt");
    sf_request_salvage("\xc1", 1, id, sizeof(id), session, sizeof(session), rt, sizeof(rt));
    cr_expect_str_eq(id, "");
}

Test(codec, base64_round_trips_every_length)
{
    unsigned char data[64];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (unsigned char)(i * 37 + 11);
    for (size_t n = 0; n <= sizeof(data); n++) {
        char *enc = sf_base64_encode(data, n);
        unsigned char *dec;
        size_t dlen;
        cr_assert_eq(sf_base64_decode(enc, strlen(enc), &dec, &dlen), 0, "n=%zu", n);
        cr_expect_eq(dlen, n);
        cr_expect(memcmp(dec, data, n) == 0);
        free(enc);
        free(dec);
    }
    unsigned char *dec;
    size_t dlen;
    cr_expect_eq(sf_base64_decode("A=AA", 4, &dec, &dlen), -1);
    cr_expect_eq(sf_base64_decode("abc", 3, &dec, &dlen), -1);
}

Test(codec, reply_error_packs_and_validates)
{
    sf_reply r = {.id = sf_cstr("r"),
                  .session = sf_cstr("s"),
                  .ok = false,
                  .err_type = sf_cstr("timeout"),
                  .err_message = sf_cstr("request_timeout of 100 ms passed")};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    sf_reply_pack(&pk, &r);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    sf_err err;
    cr_assert_eq(sf_reply_decode(&u, sb.data, sb.size, &err), 0, "%s", err.message);
    const msgpack_object *e = sf_mp_get(&u.data, "error");
    sf_str t;
    cr_assert_eq(sf_mp_field_str(e, "type", "error.type", true, 0, 99, &t, NULL), 1);
    cr_expect(sf_str_eq(t, "timeout"));
    msgpack_unpacked_destroy(&u);
}

Test(codec, json_payload_is_named_as_json)
{
    static const char *const json[] = {
        "{\"v\": 1, \"id\": \"r-1\", \"session\": \"s-1\", \"op\": \"ping\"}",
        "[1, 2]\n",
    };
    sf_request req;
    sf_err err;
    for (size_t i = 0; i < sizeof(json) / sizeof(json[0]); i++) {
        cr_assert_eq(sf_request_decode(&req, json[i], strlen(json[i]), 0, &err), -1);
        cr_expect_eq(err.code, SF_E_MALFORMED, "%s", json[i]);
        cr_expect(strstr(err.message, "JSON, not msgpack") != NULL, "%s: %s", json[i], err.message);
    }
    /* Starts like JSON but is not: the msgpack reading stands. */
    cr_assert_eq(sf_request_decode(&req, "{oops", 5, 0, &err), -1);
    cr_expect_eq(err.code, SF_E_MALFORMED);
    cr_expect(strstr(err.message, "JSON") == NULL, "%s", err.message);
}
