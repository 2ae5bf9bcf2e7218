/*
 * request.c — execute request decode/validate/encode; see request.h.
 *
 * Validation order is fixed (shape, v, id, session, op, program, args,
 * reply_to, deadline_ms, meta) so that the C and the Python decoders report
 * the same first error for the same bytes.
 */
#include "request.h"

#include <string.h>

static const char *const OP_NAMES[SF_OP__COUNT] = {
    [SF_OP_CREATE_SESSION] = "create_session",
    [SF_OP_END_SESSION] = "end_session",
    [SF_OP_CREATE_PROGRAM] = "create_program",
    [SF_OP_EXECUTE_PROGRAM] = "execute_program",
    [SF_OP_GET_SESSION_STATE] = "get_session_state",
    [SF_OP_SET_SESSION_STATE] = "set_session_state",
    [SF_OP_DELETE_PROGRAM] = "delete_program",
    [SF_OP_LIST_PROGRAMS] = "list_programs",
    [SF_OP_PING] = "ping",
};

const char *sf_op_name(sf_op op)
{
    return (unsigned)op < SF_OP__COUNT ? OP_NAMES[op] : "unknown";
}

int sf_op_parse(const char *name, size_t len)
{
    for (int i = 0; i < SF_OP__COUNT; i++) {
        if (strlen(OP_NAMES[i]) == len && memcmp(OP_NAMES[i], name, len) == 0)
            return i;
    }
    return -1;
}

bool sf_op_needs_program(sf_op op)
{
    return op == SF_OP_CREATE_PROGRAM || op == SF_OP_EXECUTE_PROGRAM || op == SF_OP_DELETE_PROGRAM;
}

/* The op-specific rules on args (see the ops table in schemas/README.md). */
static int validate_args(sf_request *req, sf_err *err)
{
    const msgpack_object *x;
    switch (req->op) {
    case SF_OP_CREATE_PROGRAM: {
        const msgpack_object *spec;
        if (sf_mp_field_map(req->args, "spec", "args.spec", true, &spec, err) < 0)
            return -1;
        sf_str kind;
        if (sf_mp_field_str(spec, "kind", "args.spec.kind", true, 1, 64, &kind, err) < 0)
            return -1;
        return 0;
    }
    case SF_OP_SET_SESSION_STATE:
        return sf_mp_field_map(req->args, "state", "args.state", true, &x, err) < 0 ? -1 : 0;
    case SF_OP_CREATE_SESSION:
        return sf_mp_field_map(req->args, "state", "args.state", false, &x, err) < 0 ? -1 : 0;
    default:
        return 0;
    }
}

int sf_request_validate(sf_request *req, const msgpack_object *root, sf_err *err)
{
    int64_t v;
    if (sf_mp_field_int(root, "v", "v", true, &v, err) < 0)
        return -1;
    if (v != SF_SCHEMA_VERSION)
        return sf_fail(err, SF_E_UNKNOWN_VERSION, "v", "unknown schema version %lld (expected %d)",
                       (long long)v, SF_SCHEMA_VERSION);
    if (sf_mp_field_str(root, "id", "id", true, 1, SF_MAX_ID_BYTES, &req->id, err) < 0)
        return -1;
    if (sf_mp_field_str(root, "session", "session", true, 1, SF_MAX_SESSION_BYTES, &req->session,
                        err) < 0)
        return -1;
    sf_str op;
    if (sf_mp_field_str(root, "op", "op", true, 0, UINT32_MAX, &op, err) < 0)
        return -1;
    int opn = sf_op_parse(op.ptr, op.len);
    if (opn < 0)
        return sf_fail(err, SF_E_UNKNOWN_OP, "op", "unknown op '%.*s'", SF_STR_ARG(op));
    req->op = (sf_op)opn;
    if (sf_mp_field_str(root, "program", "program", sf_op_needs_program(req->op), 1,
                        SF_MAX_PROGRAM_BYTES, &req->program, err) < 0)
        return -1;
    if (sf_mp_field_map(root, "args", "args", false, &req->args, err) < 0)
        return -1;
    if (validate_args(req, err) < 0)
        return -1;
    if (sf_mp_field_str(root, "reply_to", "reply_to", false, 1, 249, &req->reply_to, err) < 0)
        return -1;
    for (uint32_t i = 0; i < req->reply_to.len; i++) {
        char c = req->reply_to.ptr[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return sf_fail(err, SF_E_BAD_VALUE, "reply_to",
                           "field 'reply_to' must be a Kafka topic name (A-Z a-z 0-9 . _ -), "
                           "got '%.*s'",
                           SF_STR_ARG(req->reply_to));
    }
    if (sf_mp_field_uint(root, "deadline_ms", "deadline_ms", false, &req->deadline_ms, err) < 0)
        return -1;
    if (sf_mp_field_map(root, "meta", "meta", false, &req->meta, err) < 0)
        return -1;
    return 0;
}

/*
 * A producer that sent JSON instead of msgpack is told so. '{' and '[' are
 * msgpack positive fixints, so such bytes would otherwise fail with a puzzling
 * "trailing bytes". No valid request starts with either byte, so this only
 * rewords the message of a failed decode; the code stays malformed.
 */
static void name_json_payload(const char *data, size_t len, sf_err *err)
{
    if (err == NULL || len < 2 || (data[0] != '{' && data[0] != '['))
        return;
    json_error_t jerr;
    json_t *j = json_loadb(data, len, 0, &jerr);
    if (j == NULL)
        return;
    json_decref(j);
    sf_fail(err, SF_E_MALFORMED, "",
            "the payload is JSON, not msgpack: a request must be a msgpack map "
            "(schemas/README.md)");
}

int sf_request_decode(sf_request *req, const char *data, size_t len, size_t max_bytes, sf_err *err)
{
    memset(req, 0, sizeof(*req));
    if (max_bytes == 0)
        max_bytes = SF_DEFAULT_MAX_MESSAGE;
    if (len > max_bytes)
        return sf_fail(err, SF_E_TOO_LARGE, "", "message of %zu bytes exceeds the limit of %zu",
                       len, max_bytes);
    msgpack_unpacked_init(&req->unpacked);
    if (sf_mp_unpack_map(&req->unpacked, data, len, err) < 0 ||
        sf_request_validate(req, &req->unpacked.data, err) < 0) {
        name_json_payload(data, len, err);
        msgpack_unpacked_destroy(&req->unpacked);
        memset(req, 0, sizeof(*req));
        return -1;
    }
    return 0;
}

void sf_request_release(sf_request *req)
{
    msgpack_unpacked_destroy(&req->unpacked);
    memset(req, 0, sizeof(*req));
}

static void salvage_str(const msgpack_object *root, const char *key, char *dst, size_t cap)
{
    const msgpack_object *o = sf_mp_get(root, key);
    if (cap == 0 || dst == NULL)
        return;
    dst[0] = '\0';
    if (o && o->type == MSGPACK_OBJECT_STR)
        sf_str_copy(dst, cap, (sf_str){o->via.str.ptr, o->via.str.size});
}

void sf_request_salvage(const char *data, size_t len, char *id, size_t id_cap, char *session,
                        size_t session_cap, char *reply_to, size_t reply_to_cap)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    const msgpack_object *root = NULL;
    msgpack_unpack_return rc = MSGPACK_UNPACK_PARSE_ERROR;
    if (sf_mp_prescan((const unsigned char *)data, len, NULL) > 0)
        rc = msgpack_unpack_next(&u, data, len, &off);
    if ((rc == MSGPACK_UNPACK_SUCCESS || rc == MSGPACK_UNPACK_EXTRA_BYTES) &&
        u.data.type == MSGPACK_OBJECT_MAP)
        root = &u.data;
    salvage_str(root, "id", id, id_cap);
    salvage_str(root, "session", session, session_cap);
    salvage_str(root, "reply_to", reply_to, reply_to_cap);
    msgpack_unpacked_destroy(&u);
}

int sf_request_pack(msgpack_packer *pk, const sf_request_spec *s)
{
    bool has_program = s->program && s->program[0];
    bool has_reply = s->reply_to && s->reply_to[0];
    size_t n =
        4 + has_program + (s->args != NULL) + has_reply + (s->deadline_ms != 0) + (s->meta != NULL);
    msgpack_pack_map(pk, n);
    sf_mp_pack_cstr(pk, "v");
    msgpack_pack_int(pk, SF_SCHEMA_VERSION);
    sf_mp_pack_cstr(pk, "id");
    sf_mp_pack_cstr(pk, s->id);
    sf_mp_pack_cstr(pk, "session");
    sf_mp_pack_cstr(pk, s->session);
    sf_mp_pack_cstr(pk, "op");
    sf_mp_pack_cstr(pk, sf_op_name(s->op));
    if (has_program) {
        sf_mp_pack_cstr(pk, "program");
        sf_mp_pack_cstr(pk, s->program);
    }
    if (s->args) {
        sf_mp_pack_cstr(pk, "args");
        if (sf_mp_pack_json(pk, s->args) != 0)
            return -1;
    }
    if (has_reply) {
        sf_mp_pack_cstr(pk, "reply_to");
        sf_mp_pack_cstr(pk, s->reply_to);
    }
    if (s->deadline_ms) {
        sf_mp_pack_cstr(pk, "deadline_ms");
        msgpack_pack_uint64(pk, s->deadline_ms);
    }
    if (s->meta) {
        sf_mp_pack_cstr(pk, "meta");
        if (sf_mp_pack_json(pk, s->meta) != 0)
            return -1;
    }
    return 0;
}
