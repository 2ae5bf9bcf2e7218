/*
 * jobs.c — the life of one request, a `job`: from the Kafka message it came
 * in, through its claim, its run and its commit, to its reply and its offset.
 *
 *   consumed   tracked in its partition's offset tracker, decoded,      job_on_message
 *              validated, its key and partition checked
 *   waiting    held, in order, until the partition's lease is known     partitions.c
 *   queued     appended to its session's FIFO; a session runs one       sessions.c
 *              job at a time
 *   running    deadline checked; a read runs at once, anything else     job_run, claim_job,
 *              is claimed first; Redis reads, a pool call, Redis        on_claimed, ops.c
 *              writes
 *   replied    the answer remembered in Redis (claimed requests) and    job_commit_reply,
 *              produced; the session runs its next request              on_committed
 *   done       Kafka acknowledged every record the job produced: its    replies.c, job_end
 *              offset is finished, and the contiguous finished prefix
 *              is stored for commit
 *
 * Bad input never stalls a partition: it is answered (an error reply or a
 * DLQ record) and finished like any other job. A job that is fenced, or
 * given up during a rebalance or a drain, ends with its offset left open:
 * the partition's next owner answers it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "daemon_internal.h"
#include "log.h"

#define MAX_CONFLICTS 10 /* runs of a request on a state changed under it, at most */

/* ---------------------------------------------------------------- consumed */

static bool header(rd_kafka_message_t *m, const char *a, const char *b, const void **v, size_t *n,
                   const char **name)
{
    rd_kafka_headers_t *hdrs = NULL;
    if (rd_kafka_message_headers(m, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR || hdrs == NULL)
        return false;
    if (rd_kafka_header_get_last(hdrs, a, v, n) == 0) {
        *name = a;
        return true;
    }
    if (b && rd_kafka_header_get_last(hdrs, b, v, n) == 0) {
        *name = b;
        return true;
    }
    return false;
}

/*
 * A message of an assigned partition: a job is made, tracked by its offset,
 * decoded and checked, then queued on its session once the lease is known.
 * Anything answered here (bad input, a key that is not its session, a refused
 * wrong partition) finishes like any other job.
 */
void job_on_message(void *ctx, rd_kafka_message_t *m)
{
    sf_daemon *d = ctx;
    /* Here, not where a job ends: a session queue being run must not be swept under it. */
    sessq_sweep(d, false);
    const char *topic = rd_kafka_topic_name(m->rkt);
    part *p = part_find(d, topic, m->partition);
    if (p == NULL || p->revoking || d->shutting_down) {
        rd_kafka_message_destroy(m); /* not ours any more: the next owner reads it */
        return;
    }
    if (sf_offsets_track(p->offsets, m->offset) < 0) {
        rd_kafka_message_destroy(m); /* a redelivery of an offset already held */
        return;
    }
    if (p->fresh_from == INT64_MAX) { /* the end was not listed at assignment: learn it now */
        int64_t end = sf_kafka_assigned_end(d->kafka, p->topic, p->partition);
        if (end >= 0)
            p->fresh_from = end;
    }
    job *j = sf_xcalloc(1, sizeof(*j));
    j->d = d;
    j->p = p;
    j->offset = m->offset;
    j->msg = m;
    j->consumed_us = now_us();
    p->live++;
    d->held++;
    const void *v;
    size_t n;
    const char *name;
    if (header(m, "correlation-id", "kafka_correlationId", &v, &n, &name)) {
        snprintf(j->corr_name, sizeof(j->corr_name), "%s", name);
        j->corr = v;
        j->corr_len = n;
    }
    if (header(m, "traceparent", NULL, &v, &n, &name) && n <= 512) {
        j->traceparent = v;
        j->traceparent_len = n;
    }
    if (header(m, "tracestate", NULL, &v, &n, &name) && n <= 512) {
        j->tracestate = v;
        j->tracestate_len = n;
    }
    char hdr_reply[256] = "";
    if (header(m, "reply-topic", "kafka_replyTopic", &v, &n, &name) && n < sizeof(hdr_reply)) {
        memcpy(hdr_reply, v, n);
        hdr_reply[n] = '\0';
    }
    sf_err err;
    if (sf_request_decode(&j->req, m->payload, m->len, d->cfg->max_message_bytes, &err) < 0) {
        char id[SF_MAX_ID_BYTES + 1], rt[256];
        sf_request_salvage(m->payload, m->len, id, sizeof(id), j->session_key,
                           sizeof(j->session_key), rt, sizeof(rt));
        if (j->session_key[0] == '\0' && m->key && m->key_len < sizeof(j->session_key)) {
            memcpy(j->session_key, m->key, m->key_len);
            j->session_key[m->key_len] = '\0';
        }
        snprintf(j->reply_to, sizeof(j->reply_to), "%s", rt[0] ? rt : hdr_reply);
        d->invalid++;
        sf_warn("request.invalid",
                "topic=%s partition=%d offset=%lld code=%s field=%s reason=\"%s\" reply_to=%s",
                topic, (int)m->partition, (long long)m->offset, sf_errcode_name(err.code),
                err.field[0] ? err.field : "-", err.message, j->reply_to[0] ? j->reply_to : "-");
        reply_undecodable(d, j, id, &err);
        job_replied(d, j);
        part_backpressure_check(d);
        return;
    }
    j->valid = true;
    sf_str_copy(j->session_key, sizeof(j->session_key), j->req.session);
    snprintf(j->reply_to, sizeof(j->reply_to), "%s",
             j->req.reply_to.len ? "" : (hdr_reply[0] ? hdr_reply : d->cfg->replies));
    if (j->req.reply_to.len)
        sf_str_copy(j->reply_to, sizeof(j->reply_to), j->req.reply_to);
    if (m->key &&
        (m->key_len != j->req.session.len || memcmp(m->key, j->req.session.ptr, m->key_len) != 0)) {
        d->invalid++;
        reply_error(d, j, true, "invalid_request", "session",
                    "field 'session' ('%.*s') does not match the message key ('%.*s')",
                    SF_STR_ARG(j->req.session), (int)m->key_len, (const char *)m->key);
        part_backpressure_check(d);
        return;
    }
    if (part_refuse_misrouted(d, j)) {
        part_backpressure_check(d);
        return;
    }
    if (p->epoch == 0)
        part_hold_for_lease(d, j);
    else
        sessq_push(d, j);
    part_backpressure_check(d);
}

/* ---------------------------------------------------------------- running */

static void restart_job(sf_daemon *d, job *j);

/* Its session's turn (sessions.c, sessq_run): the job starts running. */
void job_run(sf_daemon *d, job *j)
{
    j->started_us = now_us();
    restart_job(d, j);
}

static void claim_job(sf_daemon *d, job *j);

/*
 * Whether no earlier owner of the partition can have answered this request
 * unseen: it was produced after the partition was assigned to us (docs/DESIGN.md,
 * "One round trip"). Such an execute runs without a claim; its commit still
 * finds a record of the same id (a client that produced it again) and then
 * answers with that record instead.
 */
static bool job_is_fresh(const job *j)
{
    return j->offset >= j->p->fresh_from && j->crashes == 0 && j->conflicts == 0;
}

/* An execute on the state cache's copy: no round trip before it runs. */
static bool run_from_cache(sf_daemon *d, job *j)
{
    sf_cache_view v;
    if (!job_is_fresh(j) || !sf_cache_get(d->cache, j->req.session.ptr, j->req.session.len,
                                          j->req.program.ptr, j->req.program.len, &v))
        return false;
    j->claimed = true; /* its answer is remembered by its commit, claimed or not */
    j->cached_read = true;
    /* No claim refreshes the session's TTLs in Redis: its commit does, now and then. */
    j->touch = now_us() - v.touched_us >= (uint64_t)d->cfg->session_ttl_s * 1000000u / 8;
    sf_store_reply rd = {.status = SF_STORE_OK,
                         .state = v.state,
                         .state_len = v.state_len,
                         .spec = v.spec,
                         .spec_len = v.spec_len,
                         .version = v.version};
    op_done_execute_read(j, &rd);
    return true;
}

/*
 * Starts the job (again, after a retry): a read runs at once; an execute
 * produced since we own its partition whose session we know runs at once on
 * what we know; anything else is claimed first.
 */
static void restart_job(sf_daemon *d, job *j)
{
    if (j->dlq_sent && (uint32_t)j->crashes >= d->cfg->poison_threshold) {
        /* A poison pill whose error reply Redis did not take: its DLQ record is out and
         * it must not kill another worker; only the reply is left to store and send. */
        reply_error(d, j, true, "poison_pill", NULL, "poison pill: the request crashed %d workers",
                    j->crashes);
        return;
    }
    if (op_is_read(j->req.op)) {
        op_run(d, j);
        return;
    }
    if (j->req.op != SF_OP_EXECUTE_PROGRAM)
        sf_cache_drop(d->cache, j->req.session.ptr, j->req.session.len); /* it writes the session */
    else if (run_from_cache(d, j))
        return;
    claim_job(d, j);
}

static void on_claimed(void *arg, const sf_store_reply *r);

/*
 * Effectively once: the request id is claimed in Redis before the op runs. A
 * request answered before gets that reply again; one running elsewhere (a
 * previous owner's claim not yet expired) is retried until claim_wait, then
 * answered duplicate_in_progress.
 */
static void claim_job(sf_daemon *d, job *j)
{
    sf_debug("request.claim", "session=%s id=%.*s offset=%lld", j->session_key,
             SF_STR_ARG(j->req.id), (long long)j->offset);
    sf_fence f = job_fence(j);
    bool exec = j->req.op == SF_OP_EXECUTE_PROGRAM;
    d->ports.store_claim(j->p->store, &f, j->req.session.ptr, j->req.session.len, j->req.id.ptr,
                         j->req.id.len, d->cfg->id, d->claim_ttl_ms,
                         exec ? j->req.program.ptr : NULL, exec ? j->req.program.len : 0,
                         on_claimed, j);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    job *j = arg;
    event_free(j->ev_retry);
    j->ev_retry = NULL;
    restart_job(j->d, j);
}

/* Starts the job over in `ms` (Redis unavailable; its id claimed by a run elsewhere). */
static void retry_in(sf_daemon *d, job *j, long ms)
{
    j->ev_retry = evtimer_new(d->base, on_retry, j);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(j->ev_retry, &tv);
}

/*
 * Redis did not answer this job: start it over in a moment (nothing it did
 * counts until its commit, so a rerun is safe), until redis.retry_timeout.
 * Returns false when the time is up and the job must be answered `unavailable`.
 */
bool job_retry_unavailable(sf_daemon *d, job *j)
{
    if (j->p->revoking && !d->shutting_down) {
        /* The partition goes to another owner (this one may be leaving the group because
         * Redis is out of its reach): an `unavailable` answer now would be a second,
         * different answer once that owner runs the request. Given up unanswered; its
         * offset stays open for the next owner, whose claim finds whatever landed. */
        sf_info("request.handed_over",
                "session=%s offset=%lld reason=\"store unavailable while "
                "the partition is revoked\"",
                j->session_key, (long long)j->offset);
        sessq_next(d, j);
        job_end(d, j, false);
        return true;
    }
    uint64_t t = now_us();
    if (j->unavailable_since_us == 0)
        j->unavailable_since_us = t;
    if (t - j->unavailable_since_us >= (uint64_t)d->cfg->redis_retry_ms * 1000 ||
        d->shutting_down || j->p->revoking)
        return false;
    retry_in(d, j, 250);
    return true;
}

/*
 * The claim's answer: 1, answered before: that reply again; 2, another
 * owner's run: wait for it; 0, ours: run the op (an execute with the state
 * and spec the claim read).
 */
static void on_claimed(void *arg, const sf_store_reply *r)
{
    job *j = arg;
    sf_daemon *d = j->d;
    if (r->status == SF_STORE_UNAVAILABLE) {
        if (!job_retry_unavailable(d, j))
            reply_error(d, j, false, "unavailable", NULL, "session store unavailable for %u ms: %s",
                        d->cfg->redis_retry_ms, r->error);
        return;
    }
    j->unavailable_since_us = 0;
    if (r->claim == 1) {
        d->deduplicated++;
        sf_info("request.duplicate", "session=%s id=%.*s action=cached_reply", j->session_key,
                SF_STR_ARG(j->req.id));
        reply_emit(d, j, r->state, r->state_len, true);
        return;
    }
    if (r->claim == 2) {
        if (j->p->revoking || d->shutting_down) {
            /* Waiting for another owner's run would hold up the rebalance or the drain:
             * give the request up unanswered; its next consumer answers it. */
            sessq_next(d, j);
            job_end(d, j, false);
            return;
        }
        uint64_t waited = now_us() - j->started_us;
        if (waited >= (uint64_t)d->claim_wait_ms * 1000) {
            reply_error(d, j, false, "duplicate_in_progress", "id",
                        "request '%.*s' is still running on %.*s", SF_STR_ARG(j->req.id),
                        (int)r->state_len, r->state);
            return;
        }
        retry_in(d, j, 100); /* a claimed op is not a read: it is claimed again */
        return;
    }
    /* 0: ours (also a rerun of our own claim after Redis failed us mid-way) */
    j->claimed = true;
    if (j->req.op == SF_OP_EXECUTE_PROGRAM) {
        /* the claim read the state and the spec too: one round trip */
        sf_store_reply rd = *r;
        rd.status = r->state ? SF_STORE_OK : SF_STORE_NOT_FOUND;
        if (r->state && r->spec) /* the session's next executes need no read */
            sf_cache_put(d->cache, j->p->gen, j->req.session.ptr, j->req.session.len,
                         j->req.program.ptr, j->req.program.len, r->state, r->state_len, r->spec,
                         r->spec_len, r->version, now_us());
        op_done_execute_read(j, &rd);
        return;
    }
    op_run(d, j);
}

/* ---------------------------------------------------------------- replied */

typedef struct commit_ctx {
    job *j;
    msgpack_sbuffer reply;
    bool ok, with_state;
    msgpack_sbuffer state; /* a copy of the new state, for the cache once Redis has it */
} commit_ctx;

static void on_committed(void *arg, const sf_store_reply *r);

sf_fence job_fence(const job *j)
{
    return (sf_fence){j->p->epoch_key, j->p->epoch, part_settled(j->d, j->p)};
}

/*
 * Every reply of a claimed request is remembered in Redis before it is
 * produced — together with the session's new state when `state` is given, in
 * one atomic step — so a redelivered request gets the same reply again.
 */
void job_commit_reply(sf_daemon *d, job *j, const reply_parts *rp, const msgpack_sbuffer *state)
{
    commit_ctx *x = sf_xcalloc(1, sizeof(*x));
    x->j = j;
    x->ok = rp->ok;
    x->with_state = state != NULL;
    msgpack_sbuffer_init(&x->reply);
    reply_pack(d, j, rp, &x->reply);
    /* The record also carries the session as its key and the correlation header. */
    size_t beside = (j->valid ? j->req.session.len : strlen(j->session_key)) +
                    (j->corr ? j->corr_len + strlen(j->corr_name) : 0) + j->traceparent_len +
                    j->tracestate_len + 32;
    size_t limit = d->max_record > beside ? d->max_record - beside : 0;
    if (x->reply.size > limit) {
        /* Kafka would refuse it on the spot: answer with what went wrong instead, and like
         * any failed call it changes no state. */
        size_t n = x->reply.size;
        sf_warn("reply.too_large", "session=%s offset=%lld bytes=%zu max=%zu", j->session_key,
                (long long)j->offset, n, limit);
        char msg[256];
        snprintf(msg, sizeof(msg),
                 "the reply is %zu bytes, over the %zu a Kafka record may hold here "
                 "(kafka message.max.bytes); the session state was not changed",
                 n, limit);
        reply_parts e = {.ok = false,
                         .type = "reply_too_large",
                         .message = sf_cstr(msg),
                         .worker = rp->worker,
                         .exec_us = rp->exec_us,
                         .pool_queued_us = rp->pool_queued_us};
        x->reply.size = 0;
        reply_pack(d, j, &e, &x->reply);
        x->ok = false;
        x->with_state = false;
        state = NULL;
    }
    if (!j->claimed) {
        reply_emit(d, j, x->reply.data, x->reply.size, x->ok);
        msgpack_sbuffer_destroy(&x->reply);
        free(x);
        return;
    }
    if (state && sf_cache_has(d->cache, j->req.session.ptr, j->req.session.len)) {
        /* kept for sf_cache_set_state once Redis has it: the pool's bytes are gone by then */
        msgpack_sbuffer_init(&x->state);
        msgpack_sbuffer_write(&x->state, state->data, state->size);
    }
    /* The version the run read: a new state is written only over it; a run on the cache's
     * copy also changes nothing if the state moved on (its reply was computed from it). */
    int64_t version = state || j->cached_read ? (int64_t)j->state_version : -1;
    sf_fence f = job_fence(j);
    d->ports.store_commit(
        j->p->store, &f, j->req.session.ptr, j->req.session.len, j->req.id.ptr, j->req.id.len,
        x->reply.data, x->reply.size, state ? state->data : NULL, state ? state->size : 0, version,
        j->offset, (j->cached_read ? 0 : SF_COMMIT_CLAIMED) | (j->touch ? SF_COMMIT_TOUCH : 0),
        on_committed, x);
}

/* Redis has the reply (and the new state), or said why not. */
static void on_committed(void *arg, const sf_store_reply *r)
{
    commit_ctx *x = arg;
    job *j = x->j;
    sf_daemon *d = j->d;
    if (r->status == SF_STORE_OK && x->state.data && j->req.op == SF_OP_EXECUTE_PROGRAM)
        sf_cache_set_state(d->cache, j->req.session.ptr, j->req.session.len, x->state.data,
                           x->state.size, j->state_version + 1);
    else if (r->status != SF_STORE_OK && r->status != SF_STORE_ANSWERED && j->valid)
        sf_cache_drop(d->cache, j->req.session.ptr, j->req.session.len);
    if (r->status == SF_STORE_OK && j->touch)
        sf_cache_touched(d->cache, j->req.session.ptr, j->req.session.len, now_us());
    j->touch = false;
    j->cached_read = false; /* a run again reads again, or claims */
    switch (r->status) {
    case SF_STORE_OK:
        reply_emit(d, j, x->reply.data, x->reply.size, x->ok);
        break;
    case SF_STORE_ANSWERED:
        /* Produced again by its client and run without a claim (a request no earlier owner
         * can have run is not claimed): its first answer stands, this run's is dropped. */
        d->deduplicated++;
        sf_info("request.duplicate", "session=%s id=%.*s action=cached_reply", j->session_key,
                SF_STR_ARG(j->req.id));
        reply_emit(d, j, r->state, r->state_len, true);
        break;
    case SF_STORE_FENCED:
        job_fenced(d, j, r->error);
        break;
    case SF_STORE_CONFLICT:
        /* Another writer (a supervisor running this session too: a producer with another
         * partitioner, partitions added) changed the state under this run: nothing was
         * saved. Run it again on the current state, a few times, then say so. */
        d->conflicts++;
        sf_warn("store.conflict", "session=%s id=%.*s partition=%d conflicts=%d action=%s",
                j->session_key, SF_STR_ARG(j->req.id), (int)j->p->partition, j->conflicts + 1,
                j->conflicts + 1 < MAX_CONFLICTS ? "run_again" : "answer_conflict");
        if (++j->conflicts < MAX_CONFLICTS)
            /* after a jittered pause that doubles, so two writers racing do not race again */
            retry_in(d, j, (2L << j->conflicts) + random() % (2L << j->conflicts));
        else
            reply_error(d, j, true, "conflict", "session",
                        "session '%s' was changed by another writer during each of %d runs; "
                        "its new state was not saved (are two supervisors running it? check "
                        "the producers' partitioner)",
                        j->session_key, j->conflicts);
        break;
    case SF_STORE_NOT_FOUND:
        reply_error(d, j, false, "session_not_found", "session",
                    "Session not found: '%s' ended while the call ran; its new state "
                    "was not saved",
                    j->session_key);
        break;
    case SF_STORE_LIMIT: /* not an answer a commit gets */
    case SF_STORE_UNAVAILABLE:
        if (job_retry_unavailable(d, j))
            break;
        if (x->with_state)
            reply_error(d, j, false, "unavailable", NULL,
                        "session store unavailable; the call's new state was not "
                        "saved: %s",
                        r->error);
        else /* nothing to save but the dedupe record: answer anyway */
            reply_emit(d, j, x->reply.data, x->reply.size, x->ok);
        break;
    }
    msgpack_sbuffer_destroy(&x->reply);
    msgpack_sbuffer_destroy(&x->state);
    free(x);
}

static void on_lease_checked(void *arg, const sf_store_reply *r);
static void on_owed_retry(evutil_socket_t fd, short what, void *arg);

/*
 * A job whose write was refused FENCED: nothing it wrote landed. Either a
 * newer owner has the partition (the job is given up, its offset left open
 * for that owner), or Redis lost our lease bump and the epoch key went back
 * (a failover without redis.min_replicas, a restart from an AOF fsync'd every
 * second): then every write of the partition would be refused until the next
 * rebalance, so the lease is set back first (sf_store_restore_epoch) and, if
 * it was ours, the job runs again.
 */
void job_fenced(sf_daemon *d, job *j, const char *why)
{
    part *p = j->p;
    if (!j->lease_checked && p->epoch && !p->revoking && !d->shutting_down) {
        j->lease_checked = true;
        d->ports.store_restore_epoch(j->p->store, p->epoch_key, p->epoch, on_lease_checked, j);
        return;
    }
    d->fenced++;
    sf_cache_drop_owner(d->cache, j->p->gen); /* the partition's next owner writes them now */
    sf_warn("store.fenced", "session=%s id=%.*s partition=%d reason=\"%s\"", j->session_key,
            SF_STR_ARG(j->req.id), (int)j->p->partition, why);
    sessq_next(d, j);
    if (j->producing == 0)
        job_end(d, j, false); /* its offset stays open: the new owner has it */
}

/* The epoch key, checked after a FENCED write (job_fenced). */
static void on_lease_checked(void *arg, const sf_store_reply *r)
{
    job *j = arg;
    sf_daemon *d = j->d;
    part *p = j->p;
    if (r->status == SF_STORE_UNAVAILABLE && !p->revoking && !d->shutting_down) {
        /* No answer is not a newer owner: the partition is still ours, and giving the
         * job up would leave its offset open with nobody to run it. Ask again (the
         * store may be failing over) until redis.retry_timeout, then answer it. */
        j->lease_checked = false; /* the job's next FENCED write checks again */
        if (j->owed) {
            j->ev_retry = evtimer_new(d->base, on_owed_retry, j);
            struct timeval tv = {0, 250000};
            evtimer_add(j->ev_retry, &tv);
        } else if (!job_retry_unavailable(d, j)) {
            reply_error(d, j, false, "unavailable", NULL,
                        "session store unavailable for %u ms while checking the partition's "
                        "lease: %s",
                        d->cfg->redis_retry_ms, r->error);
        }
        return;
    }
    if (r->status != SF_STORE_OK || p->revoking || d->shutting_down) {
        job_fenced(d, j, "FENCED stale partition epoch"); /* a newer owner */
        return;
    }
    sf_warn("lease.restored",
            "topic=%s partition=%d epoch=%llu reason=\"the epoch key went back: "
            "Redis lost the lease (set redis.min_replicas to keep it across a failover)\"",
            p->topic, (int)p->partition, (unsigned long long)p->epoch);
    if (j->owed)
        job_remember_owed(d, j);
    else
        restart_job(d, j);
}

static void on_owed(void *arg, const sf_store_reply *r);

/* Writes the answer already sent as the request's dedupe record, fenced by our lease. */
void job_remember_owed(sf_daemon *d, job *j)
{
    sf_fence f = job_fence(j);
    d->ports.store_commit(j->p->store, &f, j->req.session.ptr, j->req.session.len, j->req.id.ptr,
                          j->req.id.len, j->owed->data, j->owed->size, NULL, 0, -1, j->offset,
                          SF_COMMIT_CLAIMED, on_owed, j);
}

static void on_owed_retry(evutil_socket_t fd, short what, void *arg)
{
    job *j = arg;
    event_free(j->ev_retry);
    j->ev_retry = NULL;
    job_remember_owed(j->d, j);
}

/* The answer already sent is remembered (or fenced): only now may the session move on. */
static void on_owed(void *arg, const sf_store_reply *r)
{
    job *j = arg;
    sf_daemon *d = j->d;
    switch (r->status) {
    case SF_STORE_OK:
    case SF_STORE_ANSWERED:  /* remembered before: the answer sent was that one or ours */
    case SF_STORE_NOT_FOUND: /* a record without state has no session to miss */
        sf_info("request.answer_remembered", "session=%s id=%.*s offset=%lld", j->session_key,
                SF_STR_ARG(j->req.id), (long long)j->offset);
        sessq_next(d, j);
        if (j->producing == 0) /* else its delivery report ends it */
            job_end(d, j, !j->lost);
        break;
    case SF_STORE_FENCED:
        job_fenced(d, j, r->error); /* the partition's next owner answers it (again) */
        break;
    case SF_STORE_LIMIT:
    case SF_STORE_CONFLICT: /* not an answer a record without state gets */
    case SF_STORE_UNAVAILABLE: {
        /* Until Redis takes it, whatever the wait: the session's next request would need
         * Redis too, and a drain or rebalance is bounded by its own timeout. */
        j->ev_retry = evtimer_new(d->base, on_owed_retry, j);
        struct timeval tv = {0, 250000};
        evtimer_add(j->ev_retry, &tv);
        break;
    }
    }
}

/* ---------------------------------------------------------------- done */

/* The job has its answer: its session moves on; it ends once Kafka has acknowledged it. */
void job_replied(sf_daemon *d, job *j)
{
    sessq_next(d, j);
    /* Nothing is on its way to Kafka: what it produced was refused at once, and no DLQ
     * record stands in for it (record_failed), so its offset stays uncommitted. */
    if (j->producing == 0)
        job_end(d, j, !j->lost);
}

/*
 * The job is over. `finished`: every record it produced was acknowledged, so
 * its offset joins the finished prefix; otherwise (a record lost, a fenced
 * write) the offset stays open and the request is consumed again later. Either
 * way it no longer counts as held, which may resume partitions or complete a
 * revocation.
 */
void job_end(sf_daemon *d, job *j, bool finished)
{
    part *p = j->p;
    if (finished && !p->revoking) {
        int64_t next = sf_offsets_done(p->offsets, j->offset);
        if (next > 0) {
            d->ports.kafka_store_offset(d->kafka, p->topic, p->partition, next);
            p->next = next;
        }
    }
    job_free(d, j);
    part_backpressure_check(d);
    if (d->revoking)
        part_revoke_check(d);
}

/* Frees a job at any stage; the last job of a released partition frees the partition. */
void job_free(sf_daemon *d, job *j)
{
    if (j->ev_retry)
        event_free(j->ev_retry);
    if (j->owed) {
        msgpack_sbuffer_free(j->owed);
        j->owed = NULL;
    }
    if (j->valid)
        sf_request_release(&j->req);
    if (j->msg) /* none for a job built without Kafka (test_jobs.c) */
        rd_kafka_message_destroy(j->msg);
    part *p = j->p;
    if (--p->live == 0 && p->released)
        part_remove(d, p);
    d->held--;
    free(j);
}
