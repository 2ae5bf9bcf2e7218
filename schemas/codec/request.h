/*
 * request.h — the execute request (schemas/README.md, "Execute request"):
 * decode and validate the bytes of a Kafka message value, and encode one (the
 * CLI and the tests produce requests too).
 *
 * A decoded request keeps its msgpack zone: every sf_str and object pointer
 * in it points into `unpacked` or into the input bytes (msgpack-c does not
 * copy strings), so both must live until sf_request_release().
 */
#ifndef SF_REQUEST_H
#define SF_REQUEST_H

#include "mp.h"

#define SF_SCHEMA_VERSION      1
#define SF_DEFAULT_MAX_MESSAGE (1024u * 1024u)
#define SF_MAX_ID_BYTES        128
#define SF_MAX_SESSION_BYTES   256
#define SF_MAX_PROGRAM_BYTES   256

typedef enum {
    SF_OP_CREATE_SESSION,
    SF_OP_END_SESSION,
    SF_OP_CREATE_PROGRAM,
    SF_OP_EXECUTE_PROGRAM,
    SF_OP_GET_SESSION_STATE,
    SF_OP_SET_SESSION_STATE,
    SF_OP_DELETE_PROGRAM,
    SF_OP_LIST_PROGRAMS,
    SF_OP_PING,
    SF_OP__COUNT
} sf_op;

const char *sf_op_name(sf_op op);
/* Returns the op, or -1 when the name is not an op. */
int sf_op_parse(const char *name, size_t len);
/* Whether the op names a program (create/execute/delete_program). */
bool sf_op_needs_program(sf_op op);

typedef struct sf_request {
    msgpack_unpacked unpacked; /* owns the decoded objects */
    sf_str id;
    sf_str session;
    sf_op op;
    sf_str program;             /* len 0 when absent */
    const msgpack_object *args; /* a map, or NULL when absent */
    sf_str reply_to;            /* len 0 when absent */
    uint64_t deadline_ms;       /* 0 = none */
    const msgpack_object *meta; /* a map, or NULL */
} sf_request;

/*
 * Decodes and validates data[0..len). max_bytes 0 means
 * SF_DEFAULT_MAX_MESSAGE. On success returns 0 and req must later be
 * released; on failure returns -1, err names the problem and the field, and
 * req holds nothing that needs releasing — except that the best-effort
 * id/session (for an error reply) are copied into id_out/session_out when
 * those are not NULL.
 */
int sf_request_decode(sf_request *req, const char *data, size_t len, size_t max_bytes, sf_err *err);
void sf_request_release(sf_request *req);

/*
 * After a failed decode, recovers whatever id, session and reply_to the bytes
 * carry (each "" when absent), so an error reply can still be addressed.
 */
void sf_request_salvage(const char *data, size_t len, char *id, size_t id_cap, char *session,
                        size_t session_cap, char *reply_to, size_t reply_to_cap);

/* Validation of an already unpacked map (used by decode and by tests). */
int sf_request_validate(sf_request *req, const msgpack_object *root, sf_err *err);

/* Encodes a request map. args/meta may be NULL; program/reply_to may be NULL or "". */
typedef struct sf_request_spec {
    const char *id;
    const char *session;
    sf_op op;
    const char *program;
    const json_t *args; /* JSON object, packed as a msgpack map */
    const char *reply_to;
    uint64_t deadline_ms;
    const json_t *meta;
} sf_request_spec;
int sf_request_pack(msgpack_packer *pk, const sf_request_spec *spec);

#endif
