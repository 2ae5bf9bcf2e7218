/*
 * replies.c — how a job is answered: the reply record (reply_pack), the ways
 * an answer leaves (reply_emit, reply_ok, reply_error), the answers to bad
 * input (reply_undecodable) and DLQ records (reply_dlq); then the producer
 * every one of them goes through, with the records its queue had no room for
 * (produce, reply_on_unsent), and the delivery reports that end a job
 * (reply_on_delivery).
 *
 * Where this sits in a request's life: an answer of a claimed request is
 * first remembered in Redis (jobs.c, job_commit_reply) and produced once Redis
 * has it (reply_emit); a read's answer is produced at once. A job is done when
 * Kafka has acknowledged every record it produced (reply_on_delivery →
 * jobs.c, job_end). Every reply is accounted for: one Kafka refuses for good
 * is replaced by a DLQ record (record_failed).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "daemon_internal.h"
#include "dlq.h"
#include "log.h"
#include "reply.h"

/* The reply record (schemas/README.md, "Reply"), timings up to now. */
void reply_pack(sf_daemon *d, job *j, const reply_parts *rp, msgpack_sbuffer *sb)
{
    uint64_t t = now_us();
    sf_reply r = {.id = j->valid ? j->req.id : sf_cstr(""),
                  .session = j->valid ? j->req.session : sf_cstr(j->session_key),
                  .ok = rp->ok,
                  .result = rp->result,
                  .result_raw = rp->result_raw,
                  .err_type = sf_cstr(rp->type),
                  .err_message = rp->message,
                  .err_traceback = rp->traceback,
                  .err_field = sf_cstr(rp->field),
                  .worker = sf_cstr(rp->worker),
                  .supervisor = sf_cstr(d->cfg->id),
                  .has_timings = true,
                  .exec_us = rp->exec_us,
                  .total_us = t - j->consumed_us};
    uint64_t before_exec = j->started_us ? j->started_us - j->consumed_us : 0;
    r.queued_us = before_exec + rp->pool_queued_us;
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    sf_reply_pack(&pk, &r);
}

static void produce(sf_daemon *d, job *j, const char *topic, const msgpack_sbuffer *sb,
                    bool with_corr);

/* Produces reply bytes to the job's reply topic (and counts the answer). */
static void produce_reply(sf_daemon *d, job *j, const char *data, size_t len, bool ok)
{
    sf_debug("request.reply", "session=%s id=%.*s offset=%lld ok=%d", j->session_key,
             j->valid ? (int)j->req.id.len : 0, j->valid ? j->req.id.ptr : "", (long long)j->offset,
             ok);
    msgpack_sbuffer sb = {.data = (char *)data, .size = len};
    d->total_requests++;
    if (!ok)
        d->total_errors++;
    sf_hist_record(&d->latency, now_us() - j->consumed_us);
    produce(d, j, j->reply_to, &sb, true);
}

/* Produces reply bytes to the job's reply topic; the session moves on. */
void reply_emit(sf_daemon *d, job *j, const char *data, size_t len, bool ok)
{
    produce_reply(d, j, data, len, ok);
    job_replied(d, j);
}

/* A result, as the bytes of a msgpack object; remembered like any answer of a claimed run. */
void reply_ok(sf_daemon *d, job *j, const msgpack_sbuffer *result)
{
    reply_parts rp = {.ok = true, .result_raw = {result->data, (uint32_t)result->size}};
    job_commit_reply(d, j, &rp, NULL);
}

/*
 * An error reply. `remember`: like any answer of a claimed request, it is
 * cached for redeliveries; not for answers that only describe this moment
 * (Redis unavailable, a duplicate still running elsewhere), which a
 * redelivery should not get again.
 */
void reply_error(sf_daemon *d, job *j, bool remember, const char *type, const char *field,
                 const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    reply_parts rp = {.ok = false, .type = type, .message = sf_cstr(msg), .field = field};
    if (remember) {
        job_commit_reply(d, j, &rp, NULL);
        return;
    }
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    reply_pack(d, j, &rp, &sb);
    if (strcmp(type, "unavailable") == 0 && j->valid && !op_is_read(j->req.op)) {
        /* Redis could not take the answer: it goes out now and is remembered before the
         * session moves on, so a redelivery gets it again and never runs after the
         * session's later requests. */
        produce_reply(d, j, sb.data, sb.size, false);
        j->owed = msgpack_sbuffer_new();
        msgpack_sbuffer_write(j->owed, sb.data, sb.size);
        job_remember_owed(d, j);
    } else {
        reply_emit(d, j, sb.data, sb.size, false);
    }
    msgpack_sbuffer_destroy(&sb);
}

/*
 * A request that could not be decoded: an error reply (unknown_version or
 * invalid_request, with the id and session salvaged from its bytes) when a
 * reply topic could be told; else a DLQ record with the original bytes. Either
 * way it is answered and finished like any other job, so bad input never
 * stalls a partition.
 */
void reply_undecodable(sf_daemon *d, job *j, const char *id, const sf_err *err)
{
    if (j->reply_to[0]) {
        const char *type =
            err->code == SF_E_UNKNOWN_VERSION ? "unknown_version" : "invalid_request";
        /* id and session for the error reply come from the salvage */
        sf_reply r = {.id = sf_cstr(id),
                      .session = sf_cstr(j->session_key),
                      .ok = false,
                      .err_type = sf_cstr(type),
                      .err_message = sf_cstr(err->message),
                      .err_field = sf_cstr(err->field),
                      .supervisor = sf_cstr(d->cfg->id)};
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        sf_reply_pack(&pk, &r);
        d->total_requests++;
        d->total_errors++;
        produce(d, j, j->reply_to, &sb, true);
        msgpack_sbuffer_destroy(&sb);
    } else {
        char reason[400];
        snprintf(reason, sizeof(reason), "%s: %s", sf_errcode_name(err->code), err->message);
        reply_dlq(d, j, sf_errcode_name(err->code), reason);
    }
}

/* ---------------------------------------------------------------- DLQ records */

/* A DLQ record (dlq.h): the original bytes and where they came from, with the reason. */
void reply_dlq(sf_daemon *d, job *j, const char *error_type, const char *reason)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    rd_kafka_message_t *m = j->msg;
    /* The original bytes, cut to what a record may hold beside the rest: the reason, the
     * other fields, the original key inside the record and the record's own key. */
    size_t beside = 2048 + strlen(reason) + 2 * (m->key_len + strlen(j->session_key));
    size_t room = d->max_record > beside ? d->max_record - beside : 0;
    size_t keep = m->len < room ? m->len : room;
    sf_dlq_record rec = {.reason = reason,
                         .error_type = error_type,
                         .topic = j->p->topic,
                         .partition = j->p->partition,
                         .offset = j->offset,
                         .key = {m->key, (uint32_t)m->key_len}, /* ptr NULL: nil */
                         .value = {m->payload, (uint32_t)keep},
                         .value_size = m->len,
                         .ts_ms = wall_ms(),
                         .supervisor = d->cfg->id};
    sf_dlq_pack(&pk, &rec);
    d->dlq_count++;
    j->dlq_sent = true;
    sf_warn("request.dlq", "topic=%s partition=%d offset=%lld error_type=%s reason=\"%s\"",
            j->p->topic, (int)j->p->partition, (long long)j->offset, error_type, reason);
    produce(d, j, d->cfg->dlq, &sb, false);
    msgpack_sbuffer_destroy(&sb);
}

/* ---------------------------------------------------------------- the producer */

static rd_kafka_resp_err_t produce_now(sf_daemon *d, job *j, const char *topic, const void *data,
                                       size_t len, bool with_corr, char *err, size_t errlen)
{
    rd_kafka_headers_t *h = NULL;
    if (with_corr && (j->corr || j->traceparent)) {
        h = rd_kafka_headers_new(3);
        if (j->corr)
            rd_kafka_header_add(h, j->corr_name, -1, j->corr, (ssize_t)j->corr_len);
        /* the trace context goes back with the answer, so the caller's trace continues */
        if (j->traceparent)
            rd_kafka_header_add(h, "traceparent", -1, j->traceparent, (ssize_t)j->traceparent_len);
        if (j->tracestate)
            rd_kafka_header_add(h, "tracestate", -1, j->tracestate, (ssize_t)j->tracestate_len);
    }
    const void *key = j->valid ? j->req.session.ptr : j->session_key;
    size_t keylen = j->valid ? j->req.session.len : strlen(j->session_key);
    return d->ports.kafka_produce(d->kafka, topic, keylen ? key : NULL, keylen, data, len, h, j,
                                  err, errlen);
}

/* A record the producer's queue had no room for, kept until it has. */
typedef struct unsent {
    struct unsent *next;
    job *j;
    bool with_corr;
    char topic[256];
    size_t len;
    char data[];
} unsent;

#define UNSENT_RETRY_MS 50

static void record_failed(sf_daemon *d, job *j, const char *topic, rd_kafka_resp_err_t err,
                          const char *stage);

/*
 * Produces one record of the job, which then waits for its delivery report.
 * A full producer queue (the brokers slow or away) is no reason to give up on
 * it: it is kept, in order, and produced once there is room — the job waits.
 * Any other refusal is handled at once like a failed delivery (record_failed).
 */
static void produce(sf_daemon *d, job *j, const char *topic, const msgpack_sbuffer *sb,
                    bool with_corr)
{
    char err[256];
    j->producing++;
    rd_kafka_resp_err_t e =
        d->unsent_head ? RD_KAFKA_RESP_ERR__QUEUE_FULL
                       : produce_now(d, j, topic, sb->data, sb->size, with_corr, err, sizeof(err));
    if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        unsent *u = sf_xmalloc(sizeof(*u) + sb->size);
        u->next = NULL;
        u->j = j;
        u->with_corr = with_corr;
        snprintf(u->topic, sizeof(u->topic), "%s", topic);
        u->len = sb->size;
        memcpy(u->data, sb->data, sb->size);
        if (d->unsent_tail)
            d->unsent_tail->next = u;
        else
            d->unsent_head = u;
        d->unsent_tail = u;
        if (d->nunsent++ == 0) {
            d->unsent_since_us = now_us();
            sf_warn("kafka.queue_full",
                    "session=%s topic=%s outq=%d action=\"keep records in "
                    "order, produce them once there is room\"",
                    j->session_key, topic, sf_kafka_outq_len(d->kafka));
            struct timeval tv = {0, UNSENT_RETRY_MS * 1000};
            evtimer_add(d->ev_unsent, &tv);
        }
        return;
    }
    if (e) {
        j->producing--;
        record_failed(d, j, topic, e, "produce");
    }
}

/*
 * The producer's queue has room again (or not yet): produce the records kept
 * meanwhile, oldest first, so none overtakes an older one of its session.
 */
void reply_on_unsent(evutil_socket_t fd, short what, void *arg)
{
    sf_daemon *d = arg;
    while (d->unsent_head) {
        unsent *u = d->unsent_head;
        char err[256];
        rd_kafka_resp_err_t e =
            produce_now(d, u->j, u->topic, u->data, u->len, u->with_corr, err, sizeof(err));
        if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            struct timeval tv = {0, UNSENT_RETRY_MS * 1000};
            evtimer_add(d->ev_unsent, &tv);
            return;
        }
        d->unsent_head = u->next;
        if (d->unsent_head == NULL)
            d->unsent_tail = NULL;
        d->nunsent--;
        job *j = u->j;
        if (e) { /* still counted in j->producing: it ends here instead of in a report */
            record_failed(d, j, u->topic, e, "produce");
            if (--j->producing == 0 && j->replied)
                job_end(d, j, !j->lost);
        }
        free(u);
    }
    sf_info("kafka.queue_room", "waited_ms=%llu",
            (unsigned long long)((now_us() - d->unsent_since_us) / 1000));
}

/* Frees the records still kept (sf_daemon_free): nothing is produced any more. */
void reply_free_unsent(sf_daemon *d)
{
    while (d->unsent_head) {
        unsent *u = d->unsent_head;
        d->unsent_head = u->next;
        free(u);
    }
}

/* ---------------------------------------------------------------- delivery reports */

/* Kafka acknowledged (or gave up on) a record the job produced. */
void reply_on_delivery(void *ctx, void *opaque, const char *topic, rd_kafka_resp_err_t err)
{
    sf_daemon *d = ctx;
    job *j = opaque;
    if (j == NULL)
        return; /* telemetry */
    if (err)
        record_failed(d, j, topic, err, "delivery");
    if (--j->producing == 0 && j->replied)
        job_end(d, j, !j->lost);
}

/* Errors no retry can fix: the record itself or its topic is the problem. */
static bool permanent_delivery_error(rd_kafka_resp_err_t err)
{
    switch (err) {
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_RECORD:
        return true;
    default:
        return false;
    }
}

/*
 * Kafka refused a record of the job, at once (rd_kafka_producev) or in its
 * delivery report: every reply is accounted for before its offset may be
 * committed. A reply refused for good (no such topic, not authorized, too
 * large) is answered by a DLQ record with the reason instead, and the job
 * finishes once that record is acknowledged: holding its offset open would
 * stall the partition's commits for good. Anything else leaves the offset
 * open — a DLQ record refused, a transient failure (the brokers unreachable
 * for message.timeout.ms): the request is consumed again after a restart or
 * rebalance, and answered from the dedupe cache.
 */
static void record_failed(sf_daemon *d, job *j, const char *topic, rd_kafka_resp_err_t err,
                          const char *stage)
{
    bool dlq = strcmp(topic, d->cfg->dlq) == 0;
    if (!dlq && permanent_delivery_error(err)) {
        char reason[512];
        snprintf(reason, sizeof(reason), "reply undeliverable to '%s': %s", topic,
                 rd_kafka_err2str(err));
        sf_error("reply.undeliverable", "session=%s offset=%lld reply_to=%s stage=%s error=%s",
                 j->session_key, (long long)j->offset, topic, stage, rd_kafka_err2str(err));
        reply_dlq(d, j, "reply_undeliverable", reason);
        return;
    }
    j->lost = true;
    sf_error(dlq ? "dlq.lost" : "reply.lost",
             "session=%s topic=%s partition=%d offset=%lld record_topic=%s stage=%s error=%s "
             "action=\"offset left uncommitted: the request is consumed again after a restart "
             "or rebalance\"",
             j->session_key, j->p->topic, (int)j->p->partition, (long long)j->offset, topic, stage,
             rd_kafka_err2str(err));
}
