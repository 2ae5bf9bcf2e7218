/*
 * ops.c — one handler per op: what each op asks of Redis and of the pool, and
 * how the answers become its reply.
 *
 * A job reaches its op once it may run (jobs.c): a read (ping,
 * get_session_state, list_programs; op_is_read) at once, anything else once
 * its request id is claimed. op_run, at the end of this file, hands it to its
 * op's handler; below, each op is its handler followed by the answers it
 * waits for (done_*), in the order of sf_op. Every answer ends in a reply
 * (replies.c), through the commit for a claimed run (jobs.c,
 * job_commit_reply). A failure is settled the same way whatever the op: from
 * Redis by fence_retry_or_answer, from the pool by retry_dlq_or_answer.
 */
#include <stdio.h>
#include <string.h>

#include "daemon_internal.h"
#include "log.h"
#include "mp.h"

/* Reads change nothing, so running one twice is harmless: they need no claim. */
bool op_is_read(sf_op op)
{
    return op == SF_OP_PING || op == SF_OP_GET_SESSION_STATE || op == SF_OP_LIST_PROGRAMS;
}

/* ---------------------------------------------------------------- what every op shares */

static void pack_state_or_empty(msgpack_sbuffer *sb, const msgpack_object *state)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    if (state)
        msgpack_pack_object(&pk, *state);
    else
        msgpack_pack_map(&pk, 0);
}

/*
 * A Redis answer every op treats alike. Fenced: the job's lease was taken
 * over, nothing it wrote landed (job_fenced). Unavailable: the job starts
 * over in a moment, until redis.retry_timeout, then it is answered
 * `unavailable`. No such session: answered session_not_found. Returns true
 * when the answer was one of those and the job has been dealt with.
 */
static bool fence_retry_or_answer(sf_daemon *d, job *j, const sf_store_reply *r)
{
    if (r->status == SF_STORE_FENCED) {
        job_fenced(d, j, r->error);
        return true;
    }
    if (r->status == SF_STORE_UNAVAILABLE) {
        if (!job_retry_unavailable(d, j))
            reply_error(d, j, false, "unavailable", NULL, "session store unavailable for %u ms: %s",
                        d->cfg->redis_retry_ms, r->error);
        return true;
    }
    if (r->status == SF_STORE_NOT_FOUND) {
        reply_error(d, j, true, "session_not_found", "session",
                    "Session not found: '%.*s' (create it with create_session first)",
                    SF_STR_ARG(j->req.session));
        return true;
    }
    return false;
}

static const char *pool_error_type(sf_str t)
{
    static const char *const known[] = {"program_error",     "worker_crashed",  "timeout",
                                        "checkout_timeout",  "unavailable",     "invalid_program",
                                        "program_not_found", "invalid_request", "internal",
                                        "deadline_exceeded"};
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        if (sf_str_eq(t, known[i]))
            return known[i];
    }
    return "internal";
}

/*
 * A pool answer every op treats alike. A worker crash runs the op again, up
 * to supervisor.poison_threshold crashes; then the request is a poison pill:
 * a DLQ record and a poison_pill answer. Any other failure is answered with
 * its error type. Returns true when the call failed and the job has been
 * dealt with.
 */
static bool retry_dlq_or_answer(sf_daemon *d, job *j, const sf_pool_result *r)
{
    if (r->ok)
        return false;
    if (sf_str_eq(r->err_type, "worker_crashed")) {
        j->crashes++;
        if ((uint32_t)j->crashes < d->cfg->poison_threshold) {
            sf_warn("request.retry_after_crash", "session=%s id=%.*s crashes=%d worker=%s",
                    j->session_key, SF_STR_ARG(j->req.id), j->crashes, r->worker_id);
            op_run(d, j);
            return true;
        }
        char reason[400];
        snprintf(reason, sizeof(reason), "poison pill: the request crashed %d workers; last: %.*s",
                 j->crashes, SF_STR_ARG(r->err_message));
        d->poison++;
        reply_dlq(d, j, "poison_pill", reason);
        reply_error(d, j, true, "poison_pill", NULL, "%s", reason);
        return true;
    }
    if (sf_str_eq(r->err_type, "deadline_exceeded"))
        d->deadline_exceeded++; /* its state change, if it made one, is not saved */
    reply_parts rp = {.ok = false,
                      .type = pool_error_type(r->err_type),
                      .message = r->err_message,
                      .traceback = r->err_traceback,
                      .worker = r->worker_id,
                      .exec_us = r->exec_us,
                      .pool_queued_us = r->queued_us};
    job_commit_reply(d, j, &rp, NULL);
    return true;
}

/* A write to the session is done: the answer names the session and the op. */
static void done_session_write(void *arg, const sf_store_reply *r)
{
    job *j = arg;
    sf_daemon *d = j->d;
    if (fence_retry_or_answer(d, j, r))
        return;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    sf_mp_pack_cstr(&pk, "session");
    sf_mp_pack_str(&pk, j->req.session);
    sf_mp_pack_cstr(&pk, "op");
    sf_mp_pack_cstr(&pk, sf_op_name(j->req.op));
    reply_ok(d, j, &sb);
    msgpack_sbuffer_destroy(&sb);
}

/* ---------------------------------------------------------------- create_session */

static void done_create_session(void *arg, const sf_store_reply *r);

static void op_create_session(sf_daemon *d, job *j)
{
    sf_fence f = job_fence(j);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    pack_state_or_empty(&sb, sf_mp_get(j->req.args, "state"));
    sf_store_create_session(j->p->store, &f, j->req.session.ptr, j->req.session.len, sb.data,
                            sb.size, d->cfg->max_sessions, done_create_session, j);
    msgpack_sbuffer_destroy(&sb);
}

/*
 * The session limit: a refusal is a typed error; near the limit (the fleet's
 * count, as the create saw it) a warning, at most every 10 s per supervisor.
 */
static void done_create_session(void *arg, const sf_store_reply *r)
{
    job *j = arg;
    sf_daemon *d = j->d;
    uint32_t max = d->cfg->max_sessions;
    if (r->status == SF_STORE_OK || r->status == SF_STORE_LIMIT)
        d->stored_sessions = (uint64_t)r->count;
    if (r->status == SF_STORE_LIMIT) {
        d->session_limit_refusals++;
        sf_warn("session.limit_reached", "session=%s sessions=%lld max_sessions=%u", j->session_key,
                (long long)r->count, max);
        reply_error(d, j, true, "session_limit", "session",
                    "max_sessions reached: %lld sessions are stored (redis.max_sessions = %u); "
                    "end a session or let one expire first",
                    (long long)r->count, max);
        return;
    }
    if (r->status == SF_STORE_OK && max > 0 &&
        (uint64_t)r->count * 100 >= (uint64_t)max * d->cfg->max_sessions_warn_pct) {
        uint64_t t = now_us();
        if (t - d->session_warned_us >= 10000000u || d->session_warned_us == 0) {
            d->session_warned_us = t;
            sf_warn("session.near_limit", "sessions=%lld max_sessions=%u warn_pct=%u",
                    (long long)r->count, max, d->cfg->max_sessions_warn_pct);
        }
    }
    done_session_write(arg, r);
}

/* ---------------------------------------------------------------- end_session */

static void on_forgotten(void *arg, const sf_pool_result *r)
{
    (void)arg;
    if (!r->ok)
        sf_debug("pool.forget_failed", "error=%.*s", SF_STR_ARG(r->err_type));
}

/*
 * What Redis no longer has, the workers drop too: `cleanup_session` (its
 * programs and its cached state) or `delete_program`, queued behind the
 * session's calls on the worker that ran it last, which holds what a next call
 * would name. Older copies on other workers are never named again and age out
 * of their bounded caches. Nobody waits for it: the answer is already Redis's.
 */
static void forget_in_workers(sf_daemon *d, const job *j, const char *op)
{
    sf_pool_call c = {.op = op, .session = j->req.session, .program = j->req.program};
    d->ports.pool_submit(d->pool, &c, on_forgotten, NULL); /* < 0: stopping, nothing to drop */
}

static void done_end_session(void *arg, const sf_store_reply *r)
{
    job *j = arg;
    if (r->status == SF_STORE_OK)
        forget_in_workers(j->d, j, "cleanup_session");
    done_session_write(arg, r);
}

static void op_end_session(sf_daemon *d, job *j)
{
    sf_fence f = job_fence(j);
    d->ports.store_end_session(j->p->store, &f, j->req.session.ptr, j->req.session.len,
                               done_end_session, j);
}

/* ---------------------------------------------------------------- create_program */

static void done_create_program_pool(void *arg, const sf_pool_result *r);
static void done_create_program_store(void *arg, const sf_store_reply *r);

/* The worker builds the program from its spec first: a spec that does not build is refused. */
static void op_create_program(sf_daemon *d, job *j)
{
    sf_pool_call c = {.op = "create_program",
                      .session = j->req.session,
                      .program = j->req.program,
                      .spec = sf_mp_get(j->req.args, "spec")};
    if (d->ports.pool_submit(d->pool, &c, done_create_program_pool, j) < 0)
        reply_error(d, j, false, "unavailable", NULL, "the worker pool is shutting down");
}

/* The worker built the program from its spec: store the spec under the session. */
static void done_create_program_pool(void *arg, const sf_pool_result *r)
{
    job *j = arg;
    sf_daemon *d = j->d;
    if (retry_dlq_or_answer(d, j, r))
        return;
    const msgpack_object *spec = sf_mp_get(j->req.args, "spec");
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    pack_state_or_empty(&sb, spec);
    sf_fence f = job_fence(j);
    sf_store_put_program(j->p->store, &f, j->req.session.ptr, j->req.session.len,
                         j->req.program.ptr, j->req.program.len, sb.data, sb.size,
                         done_create_program_store, j);
    msgpack_sbuffer_destroy(&sb);
}

static void done_create_program_store(void *arg, const sf_store_reply *r)
{
    job *j = arg;
    if (fence_retry_or_answer(j->d, j, r))
        return;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    sf_mp_pack_cstr(&pk, "program");
    sf_mp_pack_str(&pk, j->req.program);
    sf_mp_pack_cstr(&pk, "created");
    msgpack_pack_true(&pk);
    reply_ok(j->d, j, &sb);
    msgpack_sbuffer_destroy(&sb);
}

/* ---------------------------------------------------------------- execute_program */

/*
 * Reads the session's state and the program's spec (op_done_execute_read).
 * A claimed execute has them already, read by its claim (jobs.c,
 * on_claimed); this read is for a run again after a worker crash.
 */
static void op_execute_program(sf_daemon *d, job *j)
{
    sf_store_get_program(j->p->store, j->req.session.ptr, j->req.session.len, j->req.program.ptr,
                         j->req.program.len, op_done_execute_read, j);
}

static void done_execute_pool(void *arg, const sf_pool_result *r);

/* Stored msgpack is exactly one map (what sf_mp_unpack_map accepts), without unpacking it. */
static bool stored_map_ok(const char *data, size_t len, sf_err *err)
{
    const unsigned char *b = (const unsigned char *)data;
    if (len == 0 || !((b[0] & 0xf0) == 0x80 || b[0] == 0xde || b[0] == 0xdf)) {
        snprintf(err->message, sizeof(err->message), "not a msgpack map");
        return false;
    }
    long n = sf_mp_prescan(b, len, err);
    if (n != (long)len) {
        if (n >= 0)
            snprintf(err->message, sizeof(err->message), "%zu bytes after the map",
                     len - (size_t)n);
        return false;
    }
    return true;
}

/* The session's state and the program's spec are read: run the call on the pool. */
void op_done_execute_read(void *arg, const sf_store_reply *r)
{
    job *j = arg;
    sf_daemon *d = j->d;
    if (fence_retry_or_answer(d, j, r))
        return;
    if (r->spec == NULL) {
        reply_error(d, j, true, "program_not_found", "program",
                    "program '%.*s' not found in session '%.*s' (create it with create_program)",
                    SF_STR_ARG(j->req.program), SF_STR_ARG(j->req.session));
        return;
    }
    /* The stored bytes go to the worker as they are: checked (one map, nothing after it,
     * no container claiming more items than it has bytes), not unpacked and packed again. */
    sf_err err;
    if (!stored_map_ok(r->state, r->state_len, &err) ||
        !stored_map_ok(r->spec, r->spec_len, &err)) {
        reply_error(d, j, true, "internal", NULL, "stored session data is corrupt: %s",
                    err.message);
        return;
    }
    j->state_version = r->version;
    sf_pool_call c = {.op = "execute_program",
                      .session = j->req.session,
                      .program = j->req.program,
                      .args = j->req.args,
                      .spec_raw = {r->spec, (uint32_t)r->spec_len},
                      .state_raw = {r->state, (uint32_t)r->state_len},
                      .deadline_ms = j->req.deadline_ms,
                      .request_id = j->req.id,
                      .meta = j->req.meta,
                      .traceparent = {j->traceparent, (uint32_t)j->traceparent_len},
                      .tracestate = {j->tracestate, (uint32_t)j->tracestate_len}};
    if (d->ports.pool_submit(d->pool, &c, done_execute_pool, j) < 0)
        reply_error(d, j, false, "unavailable", NULL, "the worker pool is shutting down");
}

/* The call ran: its reply and (if the program changed it) the new state go to Redis at once. */
static void done_execute_pool(void *arg, const sf_pool_result *r)
{
    job *j = arg;
    sf_daemon *d = j->d;
    if (retry_dlq_or_answer(d, j, r))
        return;
    static const msgpack_object nil = {.type = MSGPACK_OBJECT_NIL};
    reply_parts rp = {.ok = true,
                      .result = r->value ? r->value : &nil,
                      .worker = r->worker_id,
                      .exec_us = r->exec_us,
                      .pool_queued_us = r->queued_us};
    if (r->state == NULL) {
        job_commit_reply(d, j, &rp, NULL);
        return;
    }
    /* The very bytes the pool hashed as the state's version: what Redis gets. */
    msgpack_sbuffer st = {.size = r->state_raw.len, .data = (char *)r->state_raw.ptr};
    job_commit_reply(d, j, &rp, &st);
}

/* ---------------------------------------------------------------- get_session_state */

static void done_get_state(void *arg, const sf_store_reply *r);

static void op_get_session_state(sf_daemon *d, job *j)
{
    sf_store_get_state(j->p->store, j->req.session.ptr, j->req.session.len, done_get_state, j);
}

static void done_get_state(void *arg, const sf_store_reply *r)
{
    job *j = arg;
    if (fence_retry_or_answer(j->d, j, r))
        return;
    msgpack_sbuffer sb = {.data = (char *)r->state, .size = r->state_len};
    reply_ok(j->d, j, &sb);
}

/* ---------------------------------------------------------------- set_session_state */

static void op_set_session_state(sf_daemon *d, job *j)
{
    sf_fence f = job_fence(j);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    pack_state_or_empty(&sb, sf_mp_get(j->req.args, "state"));
    sf_store_set_state(j->p->store, &f, j->req.session.ptr, j->req.session.len, sb.data, sb.size,
                       done_session_write, j);
    msgpack_sbuffer_destroy(&sb);
}

/* ---------------------------------------------------------------- delete_program */

static void done_delete_program(void *arg, const sf_store_reply *r);

static void op_delete_program(sf_daemon *d, job *j)
{
    sf_fence f = job_fence(j);
    d->ports.store_delete_program(j->p->store, &f, j->req.session.ptr, j->req.session.len,
                                  j->req.program.ptr, j->req.program.len, done_delete_program, j);
}

static void done_delete_program(void *arg, const sf_store_reply *r)
{
    job *j = arg;
    if (fence_retry_or_answer(j->d, j, r))
        return;
    if (r->count == 0) {
        reply_error(j->d, j, true, "program_not_found", "program", "program '%.*s' not found",
                    SF_STR_ARG(j->req.program));
        return;
    }
    if (r->status == SF_STORE_OK)
        forget_in_workers(j->d, j, "delete_program");
    done_session_write(arg, r);
}

/* ---------------------------------------------------------------- list_programs */

static void done_list(void *arg, const sf_store_reply *r);

static void op_list_programs(sf_daemon *d, job *j)
{
    sf_store_list_programs(j->p->store, j->req.session.ptr, j->req.session.len, done_list, j);
}

static void done_list(void *arg, const sf_store_reply *r)
{
    job *j = arg;
    if (fence_retry_or_answer(j->d, j, r))
        return;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, r->nkeys);
    for (size_t i = 0; i < r->nkeys; i++) {
        msgpack_pack_str(&pk, r->key_lens[i]);
        msgpack_pack_str_body(&pk, r->keys[i], r->key_lens[i]);
    }
    reply_ok(j->d, j, &sb);
    msgpack_sbuffer_destroy(&sb);
}

/* ---------------------------------------------------------------- ping */

static void op_ping(sf_daemon *d, job *j)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    sf_mp_pack_cstr(&pk, "pong");
    msgpack_pack_true(&pk);
    sf_mp_pack_cstr(&pk, "supervisor");
    sf_mp_pack_cstr(&pk, d->cfg->id);
    reply_ok(d, j, &sb);
    msgpack_sbuffer_destroy(&sb);
}

/* ---------------------------------------------------------------- the way in */

static void (*const op_handlers[SF_OP__COUNT])(sf_daemon *d, job *j) = {
    [SF_OP_CREATE_SESSION] = op_create_session,
    [SF_OP_END_SESSION] = op_end_session,
    [SF_OP_CREATE_PROGRAM] = op_create_program,
    [SF_OP_EXECUTE_PROGRAM] = op_execute_program,
    [SF_OP_GET_SESSION_STATE] = op_get_session_state,
    [SF_OP_SET_SESSION_STATE] = op_set_session_state,
    [SF_OP_DELETE_PROGRAM] = op_delete_program,
    [SF_OP_LIST_PROGRAMS] = op_list_programs,
    [SF_OP_PING] = op_ping,
};

/* Runs the job's op (again, after a worker crash); its answer comes back as its reply. */
void op_run(sf_daemon *d, job *j)
{
    if ((unsigned)j->req.op < SF_OP__COUNT && op_handlers[j->req.op])
        op_handlers[j->req.op](d, j);
    else
        reply_error(d, j, true, "internal", "op", "unhandled op");
}
