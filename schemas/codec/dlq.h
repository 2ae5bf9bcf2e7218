/*
 * dlq.h — the DLQ record a supervisor produces to topics.dlq in place of a
 * request it cannot answer (schemas/README.md, "DLQ record";
 * schemas/dlq.schema.json): encode, and validate a decoded one.
 *
 * The record carries the request's original bytes as they were consumed; the
 * caller decides how much of the value fits (value may be a prefix of the
 * original, value_size then says how long the original was).
 */
#ifndef SF_DLQ_H
#define SF_DLQ_H

#include "mp.h"

typedef struct sf_dlq_record {
    const char *reason;     /* what went wrong, for people */
    const char *error_type; /* a decode error code, poison_pill, reply_undeliverable */
    const char *topic;      /* where the request was */
    int32_t partition;
    int64_t offset;
    sf_str key;          /* the record's key; ptr NULL: it had none (packed as nil) */
    sf_str value;        /* the value bytes kept (all of them, or a prefix) */
    uint64_t value_size; /* the original value's size; packed only when more than value.len */
    uint64_t ts_ms;      /* when the record was written, Unix epoch ms */
    const char *supervisor;
} sf_dlq_record;

void sf_dlq_pack(msgpack_packer *pk, const sf_dlq_record *r);

/* Checks a decoded DLQ map against the schema; err names the first bad field. */
int sf_dlq_validate(const msgpack_object *root, sf_err *err);

/* Unpacks and validates DLQ record bytes into u (caller inits and destroys u). */
int sf_dlq_decode(msgpack_unpacked *u, const char *data, size_t len, sf_err *err);

#endif
