/*
 * reply.h — the reply a supervisor produces for every request
 * (schemas/README.md, "Reply"): encode, and validate a decoded one.
 */
#ifndef SF_REPLY_H
#define SF_REPLY_H

#include "mp.h"

typedef struct sf_reply {
    sf_str id;
    sf_str session;
    bool ok;
    /* The result when ok: an object, or pre-packed msgpack bytes, or neither (nil). */
    const msgpack_object *result;
    sf_str result_raw;
    /* The error when !ok. type and message required; traceback/field when len > 0. */
    sf_str err_type;
    sf_str err_message;
    sf_str err_traceback;
    sf_str err_field;
    sf_str worker;     /* omitted when len 0 */
    sf_str supervisor; /* omitted when len 0 */
    bool has_timings;
    uint64_t queued_us, exec_us, total_us;
} sf_reply;

void sf_reply_pack(msgpack_packer *pk, const sf_reply *r);

/* Checks a decoded reply map against the schema; err names the first bad field. */
int sf_reply_validate(const msgpack_object *root, sf_err *err);

/* Unpacks and validates reply bytes into u (caller inits and destroys u). */
int sf_reply_decode(msgpack_unpacked *u, const char *data, size_t len, sf_err *err);

#endif
