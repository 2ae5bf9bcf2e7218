/*
 * exchange.c — requests out, replies in, matched by id; see exchange.h.
 *
 * Each request in flight is a heap `req`, reachable three ways: by id from
 * the `by_id` map (to match its reply), from the send-ordered list (the oldest
 * is the first to time out) and from its Kafka message's opaque (the delivery
 * report). A reply can be consumed before the delivery report of its own
 * request is served, so a req is freed only when both have happened: it
 * resolves (reply, timeout or failed delivery: unlinked from map and list,
 * on_result called once) and its delivery report is in (dr_pending false).
 */
#include "exchange.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "args.h"
#include "kclient.h"
#include "log.h"
#include "reply.h"
#include "smap.h"

typedef struct req {
    char id[SF_MAX_ID_BYTES + 1];
    void *user;
    double t_sent;
    bool dr_pending; /* its delivery report has not been served yet */
    bool resolved;   /* on_result was called (or the exchange is closing) */
    struct req *prev, *next;
} req;

struct exchange {
    exchange_opts o;
    char requests_topic[256], reply_topic[256];
    rd_kafka_t *producer, *consumer;
    sf_smap *by_id; /* id → req * */
    req *head, *tail;
    size_t pending;
    bool closing;
    exchange_stats stats;
};

void exchange_new_id(char *buf, size_t cap, const char *prefix)
{
    static unsigned char rnd[8];
    static bool have_rnd;
    static uint64_t n;
    if (!have_rnd) {
        if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
            uint64_t t = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
            memcpy(rnd, &t, sizeof(rnd));
        }
        have_rnd = true;
    }
    snprintf(buf, cap, "%s-%02x%02x%02x%02x%02x%02x%02x%02x-%llu", prefix, rnd[0], rnd[1], rnd[2],
             rnd[3], rnd[4], rnd[5], rnd[6], rnd[7], (unsigned long long)++n);
}

static void unlink_req(exchange *x, req *r)
{
    sf_smap_del(x->by_id, r->id, strlen(r->id));
    if (r->prev)
        r->prev->next = r->next;
    else
        x->head = r->next;
    if (r->next)
        r->next->prev = r->prev;
    else
        x->tail = r->prev;
    r->prev = r->next = NULL;
    x->pending--;
}

/* Unlinks r, reports res (res->id/user/latency filled here), frees r when its DR is in. */
static void resolve(exchange *x, req *r, exchange_result *res)
{
    unlink_req(x, r);
    r->resolved = true;
    res->id = r->id;
    res->user = r->user;
    res->latency_ms = (args_now() - r->t_sent) * 1000.0;
    sf_debug("request_resolved", "request=%s outcome=%d latency_ms=%.3f", r->id, (int)res->outcome,
             res->latency_ms);
    if (!x->closing && x->o.on_result)
        x->o.on_result(x->o.ctx, res);
    if (!r->dr_pending)
        free(r);
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque)
{
    exchange *x = opaque;
    req *r = msg->_private;
    if (r == NULL)
        return;
    r->dr_pending = false;
    sf_debug("request_delivered", "request=%s err=%s partition=%d offset=%lld ms=%.3f", r->id,
             msg->err ? rd_kafka_err2name(msg->err) : "none", (int)msg->partition,
             (long long)msg->offset, (args_now() - r->t_sent) * 1000.0);
    if (msg->err && !r->resolved) {
        x->stats.undelivered++;
        exchange_result res = {.outcome = EXCHANGE_UNDELIVERED,
                               .detail = rd_kafka_err2str(msg->err)};
        snprintf(res.err_type, sizeof(res.err_type), "undelivered");
        resolve(x, r, &res); /* frees r */
        return;
    }
    if (r->resolved)
        free(r);
}

exchange *exchange_new(const sf_config *cfg, const exchange_opts *o, int *exit_code, char *err,
                       size_t errlen)
{
    *exit_code = CLI_EXIT_USAGE;
    exchange *x = sf_xcalloc(1, sizeof(*x));
    if (x == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    x->o = *o;
    snprintf(x->requests_topic, sizeof(x->requests_topic), "%s",
             o->requests_topic ? o->requests_topic : cfg->requests);
    snprintf(x->reply_topic, sizeof(x->reply_topic), "%s",
             o->reply_topic ? o->reply_topic : cfg->replies);
    x->by_id = sf_smap_new(sizeof(req *));
    int64_t *low = NULL, *high = NULL;
    x->producer = kclient_producer_new(cfg, o->cmd, o->timeout_ms, on_delivery, x, err, errlen);
    if (x->producer == NULL)
        goto bad;
    x->consumer = kclient_consumer_new(cfg, o->cmd, err, errlen);
    if (x->consumer == NULL)
        goto bad;
    *exit_code = CLI_EXIT_KAFKA;
    /* Metadata through the consumer: it never auto-creates a mistyped topic. */
    if (kclient_partitions(x->consumer, x->requests_topic, 10000, err, errlen) < 0)
        goto bad;
    /*
     * Warm the producer's metadata too: librdkafka otherwise learns a new
     * topic's partitions on its next 1 s timer tick, which the first request
     * would wait for.
     */
    if (kclient_partitions(x->producer, x->requests_topic, 10000, err, errlen) < 0)
        goto bad;
    int n = kclient_partitions(x->consumer, x->reply_topic, 10000, err, errlen);
    if (n < 0)
        goto bad;
    low = sf_xcalloc((size_t)n, sizeof(*low));
    high = sf_xcalloc((size_t)n, sizeof(*high));
    if (kclient_watermarks(x->consumer, x->reply_topic, n, low, high, 10000, err, errlen) < 0 ||
        kclient_assign(x->consumer, x->reply_topic, n, high, err, errlen) < 0)
        goto bad;
    free(low);
    free(high);
    sf_debug("exchange_ready", "requests=%s reply_topic=%s partitions=%d", x->requests_topic,
             x->reply_topic, n);
    return x;
bad:
    free(low);
    free(high);
    exchange_free(x, 0);
    return NULL;
}

int exchange_send(exchange *x, const sf_request_spec *spec, void *user, char *err, size_t errlen)
{
    size_t idlen = strlen(spec->id);
    if (idlen == 0 || idlen > SF_MAX_ID_BYTES) {
        snprintf(err, errlen, "request id must be 1..%d bytes", SF_MAX_ID_BYTES);
        return -1;
    }
    int created = 0;
    req **slot = sf_smap_put(x->by_id, spec->id, idlen, &created);
    if (slot == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (!created) {
        snprintf(err, errlen, "request id '%s' is already in flight", spec->id);
        return -1;
    }
    sf_request_spec s = *spec;
    s.reply_to = x->reply_topic;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    req *r = sf_xcalloc(1, sizeof(*r));
    if (r == NULL || sf_request_pack(&pk, &s) < 0) {
        snprintf(err, errlen,
                 r ? "cannot encode the request (bad {\"$bin\": …} in args?)" : "out of memory");
        free(r);
        msgpack_sbuffer_destroy(&sb);
        sf_smap_del(x->by_id, spec->id, idlen);
        return -1;
    }
    memcpy(r->id, spec->id, idlen + 1);
    r->user = user;
    r->dr_pending = true;
    r->t_sent = args_now();
    rd_kafka_resp_err_t e;
    for (;;) {
        /* RD_KAFKA_MSG_F_FREE: librdkafka frees the value buffer it takes. */
        e = rd_kafka_producev(x->producer, RD_KAFKA_V_TOPIC(x->requests_topic),
                              RD_KAFKA_V_KEY(spec->session, strlen(spec->session)),
                              RD_KAFKA_V_VALUE(sb.data, sb.size),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE),
                              RD_KAFKA_V_HEADER("correlation-id", spec->id, (ssize_t)idlen),
                              RD_KAFKA_V_OPAQUE(r), RD_KAFKA_V_END);
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            break;
        rd_kafka_poll(x->producer, 10); /* the local queue is full: let it drain */
    }
    if (e) {
        snprintf(err, errlen, "cannot produce to %s: %s", x->requests_topic, rd_kafka_err2str(e));
        free(r);
        msgpack_sbuffer_destroy(&sb);
        sf_smap_del(x->by_id, spec->id, idlen);
        return -1;
    }
    sb.data = NULL; /* owned by librdkafka now */
    slot = sf_smap_get(x->by_id, spec->id, idlen);
    *slot = r;
    r->prev = x->tail;
    if (x->tail)
        x->tail->next = r;
    else
        x->head = r;
    x->tail = r;
    x->pending++;
    x->stats.sent++;
    return 0;
}

static req *lookup(exchange *x, const msgpack_object *root)
{
    const msgpack_object *id = sf_mp_get(root, "id");
    if (id == NULL || id->type != MSGPACK_OBJECT_STR || id->via.str.size == 0)
        return NULL;
    req **slot = sf_smap_get(x->by_id, id->via.str.ptr, id->via.str.size);
    return slot ? *slot : NULL;
}

static void on_reply_message(exchange *x, const rd_kafka_message_t *m)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    sf_err e;
    sf_err_clear(&e);
    if (sf_mp_unpack_map(&u, m->payload, m->len, &e) < 0) {
        x->stats.invalid++; /* cannot tell whose it is */
        msgpack_unpacked_destroy(&u);
        return;
    }
    req *r = lookup(x, &u.data);
    if (r == NULL) {
        x->stats.foreign++;
        msgpack_unpacked_destroy(&u);
        return;
    }
    exchange_result res = {.reply = &u.data};
    if (sf_reply_validate(&u.data, &e) < 0) {
        x->stats.invalid++;
        res.outcome = EXCHANGE_INVALID_REPLY;
        res.detail = e.message;
        snprintf(res.err_type, sizeof(res.err_type), "invalid_reply");
    } else {
        x->stats.replies++;
        res.outcome = EXCHANGE_REPLY;
        const msgpack_object *ok = sf_mp_get(&u.data, "ok");
        res.ok = ok->via.boolean;
        if (!res.ok) {
            const msgpack_object *type = sf_mp_get(sf_mp_get(&u.data, "error"), "type");
            sf_str_copy(res.err_type, sizeof(res.err_type),
                        (sf_str){type->via.str.ptr, type->via.str.size});
        }
    }
    resolve(x, r, &res);
    msgpack_unpacked_destroy(&u);
}

static void expire(exchange *x)
{
    if (x->o.timeout_ms <= 0)
        return;
    double now = args_now();
    char detail[96];
    snprintf(detail, sizeof(detail), "no reply within %d ms", x->o.timeout_ms);
    while (x->head && (now - x->head->t_sent) * 1000.0 >= x->o.timeout_ms) {
        x->stats.timeouts++;
        exchange_result res = {.outcome = EXCHANGE_TIMEOUT, .detail = detail};
        snprintf(res.err_type, sizeof(res.err_type), "timeout_local");
        resolve(x, x->head, &res);
    }
}

void exchange_poll(exchange *x, int timeout_ms)
{
    rd_kafka_poll(x->producer, 0);
    if (x->o.timeout_ms > 0 && x->head) {
        int left = (int)(x->o.timeout_ms - (args_now() - x->head->t_sent) * 1000.0) + 1;
        if (left < timeout_ms)
            timeout_ms = left < 0 ? 0 : left;
    }
    /* Everything already fetched, up to a bound so expiry and sending get their turn. */
    rd_kafka_message_t *m = rd_kafka_consumer_poll(x->consumer, timeout_ms);
    for (int i = 0; m != NULL; i++) {
        if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            on_reply_message(x, m);
        } else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            char last[512];
            kclient_last_error(last, sizeof(last));
            args_fail(x->o.cmd, "reply consumer: %s%s%s", rd_kafka_message_errstr(m),
                      last[0] ? "; last Kafka error: " : "", last);
        }
        rd_kafka_message_destroy(m);
        if (i == 9999)
            break;
        m = rd_kafka_consumer_poll(x->consumer, 0);
    }
    rd_kafka_poll(x->producer, 0);
    expire(x);
}

size_t exchange_pending(const exchange *x)
{
    return x->pending;
}

bool exchange_in_flight(exchange *x, const char *id)
{
    return sf_smap_get(x->by_id, id, strlen(id)) != NULL;
}

const char *exchange_reply_topic(const exchange *x)
{
    return x->reply_topic;
}

void exchange_get_stats(const exchange *x, exchange_stats *s)
{
    *s = x->stats;
}

void exchange_free(exchange *x, int flush_ms)
{
    if (x == NULL)
        return;
    /* Requests still waiting for a reply are abandoned (the caller frees their user data). */
    while (x->head) {
        exchange_result res = {.outcome = EXCHANGE_ABANDONED};
        snprintf(res.err_type, sizeof(res.err_type), "abandoned");
        resolve(x, x->head, &res);
    }
    x->closing = true;
    if (x->producer) {
        rd_kafka_flush(x->producer, flush_ms);
        /* Whatever could not be delivered in time is dropped; its DRs free the reqs. */
        rd_kafka_purge(x->producer, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_flush(x->producer, 5000);
        rd_kafka_destroy(x->producer);
    }
    if (x->consumer) {
        rd_kafka_consumer_close(x->consumer);
        rd_kafka_destroy(x->consumer);
    }
    sf_smap_free(x->by_id);
    free(x);
}
