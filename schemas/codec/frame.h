/*
 * frame.h — the worker frames that cross the pipes between a supervisor and
 * its Python workers (schemas/README.md, "Worker frames").
 *
 * Decoding takes one frame body (what sf_reader_next returned) and fills an
 * sf_frame whose views point into `unpacked` and, for strings and binaries,
 * into the body bytes themselves (msgpack-c does not copy them): the body
 * must outlive the frame; encoding appends a whole frame
 * (length prefix included) to a msgpack_sbuffer so that several frames can be
 * written to a pipe with one write().
 */
#ifndef SF_FRAME_H
#define SF_FRAME_H

#include "mp.h"

typedef enum {
    SF_FRAME_READY,
    SF_FRAME_CALL,
    SF_FRAME_RESULT,
    SF_FRAME_PING,
    SF_FRAME_PONG,
    SF_FRAME_SHUTDOWN,
    SF_FRAME_ERROR,
} sf_frame_type;

const char *sf_frame_type_name(sf_frame_type t);

typedef struct sf_frame {
    msgpack_unpacked unpacked;
    sf_frame_type type;
    const msgpack_object *root;
    uint64_t seq; /* call, result, ping, pong; error when has_seq */
    bool has_seq;
    /* ready */
    int64_t pid;
    sf_str worker_id;
    sf_str python;
    const msgpack_object *caps; /* array or NULL */
    /* call */
    sf_str op;
    sf_str session;
    sf_str program;
    const msgpack_object *args, *spec; /* spec: map or NULL */
    uint64_t spec_ver, state_ver;      /* 0: absent */
    /* result */
    bool ok;
    const msgpack_object *value; /* ok: the value (NULL if absent) */
    const msgpack_object *error; /* !ok: map with type/message[/traceback] */
    sf_str err_type, err_message, err_traceback;
    const msgpack_object *state; /* call and result: map or NULL */
    uint64_t exec_us;
    /* pong */
    uint64_t rss_kb;
    /* error */
    sf_str message;
} sf_frame;

/* Decodes and validates one frame body. On success f must be released. */
int sf_frame_decode(sf_frame *f, const char *body, size_t len, sf_err *err);
void sf_frame_release(sf_frame *f);

/*
 * Encoders. Each appends one complete frame to sb. For frames whose map the
 * caller fills itself, sf_frame_begin() reserves the length prefix and
 * returns its offset; sf_frame_end() patches it.
 */
size_t sf_frame_begin(msgpack_sbuffer *sb);
void sf_frame_end(msgpack_sbuffer *sb, size_t start);

typedef struct sf_call {
    uint64_t seq;
    const char *op;
    sf_str session;
    sf_str program;              /* omitted when len 0 */
    const msgpack_object *args;  /* NULL: omitted */
    const msgpack_object *spec;  /* NULL: omitted */
    const msgpack_object *state; /* NULL: omitted */
    /* Already-encoded msgpack (e.g. as stored in Redis), copied into the frame
     * as is when spec / state are NULL; len 0: omitted. */
    sf_str spec_raw, state_raw;
    /* Versions the worker caches by (schemas/README.md, "Worker caches"); 0: omitted. */
    uint64_t spec_ver, state_ver;
    /* What the program's context shows of its request, packed as the map "ctx"
     * when any is set: its id, deadline (0: none), meta (NULL: none) and W3C
     * trace context from its headers (len 0: none). */
    sf_str request_id;
    uint64_t deadline_ms;
    const msgpack_object *meta;
    sf_str traceparent, tracestate;
} sf_call;

void sf_frame_pack_call(msgpack_sbuffer *sb, const sf_call *c);

/*
 * A call frame in two steps, for a sender that decides per worker whether the
 * spec and state travel (the pool): sf_frame_open_call() packs the length
 * prefix and a map16 header, both to be patched, and every field of c but
 * spec, state and their versions; it returns the number of fields packed.
 * sf_frame_patch_call() writes the final body length and field count once
 * the sender knows what follows.
 */
size_t sf_frame_open_call(msgpack_sbuffer *sb, const sf_call *c);
void sf_frame_patch_call(char *frame, uint32_t body_len, uint16_t fields);

/*
 * The keys such a sender writes after the opened call, once it knows what
 * travels to this worker: the spec's version, then the `spec` key when the
 * spec follows in full (sf_frame_call_spec_keys); the `state` key when the
 * state follows in full, else the state's version (sf_frame_call_state_key).
 * Each writes into out (SF_FRAME_CALL_KEYS_MAX bytes at most), returns the
 * bytes written and adds the fields it began to *fields; the sender appends
 * the spec or state bytes right after their key. Versions are written as
 * 8-byte uints whatever their value.
 */
#define SF_FRAME_CALL_KEYS_MAX 32
size_t sf_frame_call_spec_keys(unsigned char *out, uint64_t spec_ver, bool spec_follows,
                               uint16_t *fields);
size_t sf_frame_call_state_key(unsigned char *out, bool state_follows, uint64_t state_ver,
                               uint16_t *fields);
void sf_frame_pack_ping(msgpack_sbuffer *sb, uint64_t seq);
void sf_frame_pack_shutdown(msgpack_sbuffer *sb);

#endif
