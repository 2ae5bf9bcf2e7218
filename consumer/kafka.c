/*
 * kafka.c — the consumer, the producer and topics; see kafka.h (the mock
 * cluster is in mock.c).
 *
 * Both clients are configured through the Kafka contract (kafka_conf.c): the
 * pass-through, then the settings the guarantees depend on —
 * enable.auto.offset.store=false (only the contiguous finished prefix is
 * stored), enable.idempotence=true and partitioner=topics.partitioner — and
 * then this member's client.id and group.id.
 *
 * Log events go to the host's log through cfg.log (kafka.h, kafka_log.c);
 * this file names the events and their fields.
 */
#include "kafka.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kafka_log.h"

#define POLL_BATCH 500

struct sf_kafka {
    struct event_base *base;
    sf_kafka_config cfg; /* a copy of the one given to sf_kafka_new */
    sf_kafka_handlers h;
    rd_kafka_t *consumer, *producer;
    rd_kafka_queue_t *cq, *pq;
    int cpipe[2], ppipe[2];
    struct event *ev_c, *ev_p;
    struct event *ev_keepalive; /* polls a quiet consumer: max.poll.interval.ms */
    bool closing;
    bool close_unfinished; /* leaving the group timed out: destroy without closing again */
    bool reset_latest;     /* auto.offset.reset starts a partition without a commit at its end */
    /* Each assigned partition's offsets as listed at assignment, for lag until
     * the first fetch response brings librdkafka's own watermarks. */
    struct ends {
        char topic[256];
        int32_t partition;
        int64_t lo, hi;
    } * ends;
    int nends, cap_ends;
    /* The request topics' partition counts (sf_kafka_partition_count), from the
     * brokers' metadata at each assignment and every refresh interval. */
    struct counts {
        char topic[256];
        rd_kafka_topic_t *rkt; /* on the producer: what Metadata is asked about */
        int32_t partitions;    /* 0 while unknown */
        bool failing;          /* the last lookup failed (logged once) */
    } counts[SF_KAFKA_MAX_REQUEST_TOPICS];
    int ncounts;
    struct event *ev_counts;
};

#define k_info(k, ...)  sf_kafka_log_event(&(k)->cfg.log, SF_KAFKA_LOG_INFO, __VA_ARGS__)
#define k_warn(k, ...)  sf_kafka_log_event(&(k)->cfg.log, SF_KAFKA_LOG_WARN, __VA_ARGS__)
#define k_error(k, ...) sf_kafka_log_event(&(k)->cfg.log, SF_KAFKA_LOG_ERROR, __VA_ARGS__)

static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    const sf_kafka *k = rd_kafka_opaque(rk);
    sf_kafka_log_librdkafka(&k->cfg.log, rk, level, fac, buf);
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    sf_kafka *k = opaque;
    sf_kafka_log_event(&k->cfg.log,
                       err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN ||
                               rd_kafka_fatal_error(rk, NULL, 0)
                           ? SF_KAFKA_LOG_ERROR
                           : SF_KAFKA_LOG_WARN,
                       "kafka.error", "client=%s error=%s reason=\"%s\"", rd_kafka_name(rk),
                       rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

/* How long an assignment may wait for the group's committed offsets (for lag). */
#define COMMITTED_TIMEOUT_MS 2000

static struct ends *ends_find(sf_kafka *k, const char *topic, int32_t partition)
{
    for (int i = 0; i < k->nends; i++)
        if (k->ends[i].partition == partition && strcmp(k->ends[i].topic, topic) == 0)
            return &k->ends[i];
    return NULL;
}

/*
 * Lists the first and next offsets of newly assigned partitions (one
 * ListOffsets round per leader and end), so lag is known at once rather than
 * after the first fetch response. A failed lookup leaves lag unknown until then.
 */
static void ends_list(sf_kafka *k, const rd_kafka_topic_partition_list_t *parts)
{
    rd_kafka_topic_partition_list_t *l[2];
    for (int e = 0; e < 2; e++) {
        l[e] = rd_kafka_topic_partition_list_copy(parts);
        for (int i = 0; i < l[e]->cnt; i++) /* ListOffsets' "timestamps" for either end */
            l[e]->elems[i].offset = e == 0 ? RD_KAFKA_OFFSET_BEGINNING : RD_KAFKA_OFFSET_END;
        rd_kafka_resp_err_t err = rd_kafka_offsets_for_times(k->consumer, l[e], 2000);
        if (err)
            k_warn(k, "kafka.list_offsets_failed", "reason=\"%s\"", rd_kafka_err2str(err));
        for (int i = 0; err && i < l[e]->cnt; i++)
            l[e]->elems[i].offset = -1;
    }
    for (int i = 0; i < parts->cnt; i++) {
        const rd_kafka_topic_partition_t *tp = &parts->elems[i];
        struct ends *x = ends_find(k, tp->topic, tp->partition);
        if (x == NULL) {
            if (k->nends == k->cap_ends) {
                k->cap_ends = k->cap_ends ? 2 * k->cap_ends : 16;
                k->ends = realloc(k->ends, (size_t)k->cap_ends * sizeof(*k->ends));
            }
            x = &k->ends[k->nends++];
            snprintf(x->topic, sizeof(x->topic), "%s", tp->topic);
            x->partition = tp->partition;
        }
        x->lo = l[0]->elems[i].err ? -1 : l[0]->elems[i].offset;
        x->hi = l[1]->elems[i].err ? -1 : l[1]->elems[i].offset;
    }
    rd_kafka_topic_partition_list_destroy(l[0]);
    rd_kafka_topic_partition_list_destroy(l[1]);
}

/* How long a partition count lookup may hold the loop: at assignment, on the timer. */
#define COUNTS_ASSIGN_TIMEOUT_MS  2000
#define COUNTS_REFRESH_TIMEOUT_MS 500

/*
 * Asks the brokers for the partition count of the request topics in `parts`
 * (all of them when NULL): one Metadata request per topic, each bounded by
 * timeout_ms. A failed lookup keeps the count known before.
 */
static void counts_refresh(sf_kafka *k, const rd_kafka_topic_partition_list_t *parts,
                           int timeout_ms)
{
    for (int i = 0; i < k->ncounts; i++) {
        struct counts *c = &k->counts[i];
        bool wanted = parts == NULL;
        for (int p = 0; parts && p < parts->cnt && !wanted; p++)
            wanted = strcmp(parts->elems[p].topic, c->topic) == 0;
        if (!wanted)
            continue;
        if (c->rkt == NULL)
            c->rkt = rd_kafka_topic_new(k->producer, c->topic, NULL);
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t e = c->rkt ? rd_kafka_metadata(k->producer, 0, c->rkt, &md, timeout_ms)
                                       : rd_kafka_last_error();
        int32_t n = 0;
        if (!e && md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR)
            n = md->topics[0].partition_cnt;
        else if (!e)
            e = md->topic_cnt == 1 ? md->topics[0].err : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
        if (md)
            rd_kafka_metadata_destroy(md);
        if (n <= 0) {
            if (!c->failing)
                k_warn(k, "kafka.partition_count_unknown",
                       "topic=%s reason=\"%s\" partitions=%d action=\"%s\"", c->topic,
                       e ? rd_kafka_err2str(e) : "no partitions", (int)c->partitions,
                       c->partitions ? "keep the last count" : "partitions not checked yet");
            c->failing = true;
            continue;
        }
        c->failing = false;
        if (n != c->partitions)
            k_info(k, "kafka.partition_count", "topic=%s partitions=%d previous=%d", c->topic,
                   (int)n, (int)c->partitions);
        c->partitions = n;
    }
}

/* Partitions may be added to a request topic between two assignments. */
static void on_counts_timer(evutil_socket_t fd, short what, void *arg)
{
    sf_kafka *k = arg;
    if (!k->closing)
        counts_refresh(k, NULL, COUNTS_REFRESH_TIMEOUT_MS);
}

int sf_kafka_topic_slot(const sf_kafka *k, const char *topic)
{
    for (int i = 0; i < k->ncounts; i++)
        if (strcmp(k->counts[i].topic, topic) == 0)
            return i;
    return -1;
}

int32_t sf_kafka_partition_count(const sf_kafka *k, int slot)
{
    return slot >= 0 && slot < k->ncounts ? k->counts[slot].partitions : 0;
}

/* Served by rd_kafka_consumer_poll, like the rebalance: on the loop. */
static void on_offset_commit(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                             rd_kafka_topic_partition_list_t *offsets, void *opaque)
{
    sf_kafka *k = opaque;
    (void)rk;
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR && offsets && k->h.on_committed)
        k->h.on_committed(k->h.ctx, offsets);
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    sf_kafka *k = opaque;
    bool coop = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        if (coop) {
            rd_kafka_error_t *e = rd_kafka_incremental_assign(rk, parts);
            if (e) {
                k_error(k, "kafka.assign_failed", "reason=\"%s\"", rd_kafka_error_string(e));
                rd_kafka_error_destroy(e);
            }
        } else {
            rd_kafka_resp_err_t e = rd_kafka_assign(rk, parts);
            if (e)
                k_error(k, "kafka.assign_failed", "reason=\"%s\"", rd_kafka_err2str(e));
        }
        rd_kafka_topic_partition_list_t *seen = rd_kafka_topic_partition_list_copy(parts);
        sf_kafka_committed(k, seen, COMMITTED_TIMEOUT_MS);
        ends_list(k, parts);
        if (!k->closing)
            counts_refresh(k, parts, COUNTS_ASSIGN_TIMEOUT_MS);
        k->h.on_assign(k->h.ctx, seen);
        rd_kafka_topic_partition_list_destroy(seen);
    } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        /* librdkafka waits in "wait-unassign-call" until sf_kafka_finish_revoke. */
        k->h.on_revoke(k->h.ctx, rd_kafka_topic_partition_list_copy(parts));
    } else {
        k_error(k, "kafka.rebalance_error", "error=%s", rd_kafka_err2str(err));
        if (coop)
            rd_kafka_error_destroy(rd_kafka_incremental_unassign(rk, parts));
        else
            rd_kafka_assign(rk, NULL);
    }
}

void sf_kafka_finish_revoke(sf_kafka *k, rd_kafka_topic_partition_list_t *parts)
{
    if (strcmp(rd_kafka_rebalance_protocol(k->consumer), "COOPERATIVE") == 0) {
        rd_kafka_error_t *e = rd_kafka_incremental_unassign(k->consumer, parts);
        if (e) {
            k_error(k, "kafka.unassign_failed", "reason=\"%s\"", rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
        }
    } else {
        rd_kafka_assign(k->consumer, NULL);
    }
    rd_kafka_topic_partition_list_destroy(parts);
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    sf_kafka *k = opaque;
    if (m->err)
        k_error(k, "kafka.delivery_failed", "topic=%s error=%s", rd_kafka_topic_name(m->rkt),
                rd_kafka_err2str(m->err));
    k->h.on_delivery(k->h.ctx, m->_private, rd_kafka_topic_name(m->rkt), m->err);
}

static void drain_pipe(int fd)
{
    char buf[256];
    while (read(fd, buf, sizeof(buf)) > 0)
        ;
}

/* Consumer queue became non-empty: drain it (bounded per turn, then resume later). */
static void on_consumer_ready(evutil_socket_t fd, short what, void *arg)
{
    sf_kafka *k = arg;
    drain_pipe(fd);
    for (int i = 0; i < POLL_BATCH; i++) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(k->consumer, 0);
        if (m == NULL)
            return;
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                k_warn(k, "kafka.consume_error", "error=%s topic=%s partition=%d",
                       rd_kafka_message_errstr(m), m->rkt ? rd_kafka_topic_name(m->rkt) : "-",
                       (int)m->partition);
            rd_kafka_message_destroy(m);
            continue;
        }
        k->h.on_message(k->h.ctx, m);
    }
    event_active(k->ev_c, EV_READ, 0); /* more may be queued: continue next turn */
}

/*
 * librdkafka evicts a group member whose application has not called
 * rd_kafka_consumer_poll() for max.poll.interval.ms (default 5 min), and the
 * queue pipe only wakes us when there is something to consume: an idle
 * supervisor left its group every 5 minutes (MAXPOLL), a rebalance each time.
 * A poll that finds nothing is cheap; once a second keeps the member alive.
 */
static void on_keepalive(evutil_socket_t fd, short what, void *arg)
{
    sf_kafka *k = arg;
    if (!k->closing)
        event_active(k->ev_c, EV_READ, 0);
}

static void on_producer_ready(evutil_socket_t fd, short what, void *arg)
{
    sf_kafka *k = arg;
    drain_pipe(fd);
    rd_kafka_poll(k->producer, 0);
}

/*
 * One client's configuration: the pass-through under the Kafka contract
 * (kafka_conf.c), then this member's own settings, which the pass-through
 * does not choose: client.id, the group, and the mock's address for --dev.
 */
static rd_kafka_conf_t *make_conf(const sf_kafka_config *cfg, const char *bootstrap,
                                  sf_kafka_client client, char *err, size_t errlen)
{
    rd_kafka_conf_t *conf =
        sf_kafka_conf_new(client, &cfg->settings, cfg->partitioner, err, errlen);
    if (conf == NULL)
        return NULL;
    if ((bootstrap &&
         sf_kafka_conf_set(conf, "bootstrap.servers", bootstrap, "--dev", err, errlen) < 0) ||
        sf_kafka_conf_set(conf, "client.id", cfg->client_id, "supervisor.id", err, errlen) < 0 ||
        (client == SF_KAFKA_MEMBER &&
         sf_kafka_conf_set(conf, "group.id", cfg->group, "topics.group", err, errlen) < 0)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_log_cb(conf, on_log);
    rd_kafka_conf_set_error_cb(conf, on_error);
    return conf;
}

static int wire_queue(sf_kafka *k, rd_kafka_queue_t *q, int p[2], struct event **ev,
                      event_callback_fn cb, char *err, size_t errlen)
{
    if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        return -1;
    }
    rd_kafka_queue_io_event_enable(q, p[1], "1", 1);
    *ev = event_new(k->base, p[0], EV_READ | EV_PERSIST, cb, k);
    event_add(*ev, NULL);
    return 0;
}

sf_kafka *sf_kafka_new(struct event_base *base, const sf_kafka_config *cfg, const char *bootstrap,
                       const sf_kafka_handlers *h, char *err, size_t errlen)
{
    sf_kafka *k = calloc(1, sizeof(*k));
    k->base = base;
    k->cfg = *cfg;
    const char *reset = sf_kafka_settings_get(&cfg->settings, "auto.offset.reset");
    k->reset_latest =
        reset && (!strcmp(reset, "latest") || !strcmp(reset, "end") || !strcmp(reset, "largest"));
    k->h = *h;
    k->cpipe[0] = k->cpipe[1] = k->ppipe[0] = k->ppipe[1] = -1;
    char e[512];
    rd_kafka_conf_t *conf = make_conf(cfg, bootstrap, SF_KAFKA_PRODUCER, err, errlen);
    if (conf == NULL)
        goto fail;
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_opaque(conf, k);
    k->producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, e, sizeof(e));
    if (k->producer == NULL) {
        rd_kafka_conf_destroy(conf);
        snprintf(err, errlen, "cannot create the Kafka producer: %s", e);
        goto fail;
    }
    /* conf is owned by the producer now */
    conf = make_conf(cfg, bootstrap, SF_KAFKA_MEMBER, err, errlen);
    if (conf == NULL)
        goto fail;
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    rd_kafka_conf_set_offset_commit_cb(conf, on_offset_commit);
    rd_kafka_conf_set_opaque(conf, k);
    k->consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, e, sizeof(e));
    if (k->consumer == NULL) {
        rd_kafka_conf_destroy(conf);
        snprintf(err, errlen, "cannot create the Kafka consumer: %s", e);
        goto fail;
    }
    /* conf is owned by the consumer now */
    rd_kafka_poll_set_consumer(k->consumer);
    k->cq = rd_kafka_queue_get_consumer(k->consumer);
    k->pq = rd_kafka_queue_get_main(k->producer);
    if (wire_queue(k, k->cq, k->cpipe, &k->ev_c, on_consumer_ready, err, errlen) < 0 ||
        wire_queue(k, k->pq, k->ppipe, &k->ev_p, on_producer_ready, err, errlen) < 0)
        goto fail;
    k->ev_keepalive = event_new(base, -1, EV_PERSIST, on_keepalive, k);
    struct timeval second = {1, 0};
    event_add(k->ev_keepalive, &second);
    k->ev_counts = event_new(base, -1, EV_PERSIST, on_counts_timer, k);
    struct timeval every = {(time_t)(cfg->refresh_ms / 1000),
                            (suseconds_t)(cfg->refresh_ms % 1000) * 1000};
    event_add(k->ev_counts, &every);
    return k;
fail:
    sf_kafka_free(k);
    return NULL;
}

void sf_kafka_free(sf_kafka *k)
{
    if (k == NULL)
        return;
    if (k->ev_c)
        event_free(k->ev_c);
    if (k->ev_p)
        event_free(k->ev_p);
    if (k->ev_keepalive)
        event_free(k->ev_keepalive);
    if (k->ev_counts)
        event_free(k->ev_counts);
    if (k->cq)
        rd_kafka_queue_destroy(k->cq);
    if (k->pq)
        rd_kafka_queue_destroy(k->pq);
    if (k->consumer)
        rd_kafka_destroy_flags(k->consumer,
                               k->close_unfinished ? RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE : 0);
    for (int i = 0; i < k->ncounts; i++) /* topic handles go before their client */
        if (k->counts[i].rkt)
            rd_kafka_topic_destroy(k->counts[i].rkt);
    if (k->producer)
        rd_kafka_destroy(k->producer);
    for (int i = 0; i < 2; i++) {
        if (k->cpipe[i] >= 0)
            close(k->cpipe[i]);
        if (k->ppipe[i] >= 0)
            close(k->ppipe[i]);
    }
    free(k->ends);
    free(k);
}

/* Splits a comma-separated topic list into names[]. Returns the count. */
static int split_topics(const char *list, char names[][256], int cap)
{
    int n = 0;
    const char *p = list;
    while (*p && n < cap) {
        const char *c = strchr(p, ',');
        size_t len = c ? (size_t)(c - p) : strlen(p);
        while (len && *p == ' ')
            p++, len--;
        while (len && p[len - 1] == ' ')
            len--;
        if (len && len < 256) {
            memcpy(names[n], p, len);
            names[n++][len] = '\0';
        }
        if (c == NULL)
            break;
        p = c + 1;
    }
    return n;
}

static int create_topics(sf_kafka *k, const sf_kafka_topic *topics, int n, char *err, size_t errlen)
{
    rd_kafka_NewTopic_t *nt[SF_KAFKA_MAX_TOPICS];
    char e[256];
    for (int i = 0; i < n; i++) {
        nt[i] = rd_kafka_NewTopic_new(topics[i].name, topics[i].partitions, (int)k->cfg.replication,
                                      e, sizeof(e));
        if (nt[i] == NULL) {
            snprintf(err, errlen, "topic %s: %s", topics[i].name, e);
            rd_kafka_NewTopic_destroy_array(nt, (size_t)i);
            return -1;
        }
    }
    rd_kafka_queue_t *q = rd_kafka_queue_new(k->producer);
    rd_kafka_CreateTopics(k->producer, nt, (size_t)n, NULL, q);
    rd_kafka_NewTopic_destroy_array(nt, (size_t)n);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
    int rc = 0;
    if (ev == NULL) {
        snprintf(err, errlen, "creating topics: no answer from Kafka within 30 s");
        rc = -1;
    } else if (rd_kafka_event_error(ev)) {
        snprintf(err, errlen, "creating topics: %s", rd_kafka_event_error_string(ev));
        rc = -1;
    } else {
        size_t cnt;
        const rd_kafka_topic_result_t **res =
            rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &cnt);
        for (size_t i = 0; i < cnt; i++) {
            rd_kafka_resp_err_t te = rd_kafka_topic_result_error(res[i]);
            if (te && te != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
                snprintf(err, errlen, "creating topic %s: %s", rd_kafka_topic_result_name(res[i]),
                         rd_kafka_topic_result_error_string(res[i]));
                rc = -1;
            } else {
                k_info(k, "kafka.topic_created", "topic=%s", rd_kafka_topic_result_name(res[i]));
            }
        }
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    return rc;
}

int sf_kafka_config_topics(const sf_kafka_config *cfg, sf_kafka_topic out[SF_KAFKA_MAX_TOPICS])
{
    char names[12][256];
    int n = split_topics(cfg->requests, names, 12);
    for (int i = 0; i < n; i++) {
        memcpy(out[i].name, names[i], sizeof(out[i].name));
        out[i].partitions = (int)cfg->partitions;
    }
    const char *others[] = {cfg->replies, cfg->telemetry, cfg->dlq};
    for (int i = 0; i < 3 && n < SF_KAFKA_MAX_TOPICS; i++) {
        snprintf(out[n].name, sizeof(out[n].name), "%s", others[i]);
        out[n++].partitions = i == 0 ? (int)cfg->partitions : 1;
    }
    return n;
}

int sf_kafka_ensure_topics(sf_kafka *k, char *err, size_t errlen)
{
    sf_kafka_topic topics[SF_KAFKA_MAX_TOPICS];
    int n = sf_kafka_config_topics(&k->cfg, topics);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(k->producer, 1, NULL, &md, 15000);
    if (e) {
        snprintf(err, errlen, "cannot read Kafka metadata (is kafka.bootstrap.servers right?): %s",
                 rd_kafka_err2str(e));
        return -1;
    }
    sf_kafka_topic missing[SF_KAFKA_MAX_TOPICS];
    int nm = 0;
    char list[SF_KAFKA_MAX_TOPICS * 260] = "";
    for (int i = 0; i < n; i++) {
        bool found = false;
        for (int t = 0; t < md->topic_cnt && !found; t++)
            found = strcmp(md->topics[t].topic, topics[i].name) == 0 && md->topics[t].err == 0;
        if (!found) {
            missing[nm++] = topics[i];
            size_t l = strlen(list);
            /* a name is under 256 bytes: the precision says so to the compiler */
            snprintf(list + l, sizeof(list) - l, "%s%.255s", l ? ", " : "", topics[i].name);
        }
    }
    rd_kafka_metadata_destroy(md);
    if (nm == 0)
        return 0;
    if (!k->cfg.create_topics) {
        snprintf(err, errlen, "missing Kafka topics: %s (create them, or set topics.create = true)",
                 list);
        return -1;
    }
    return create_topics(k, missing, nm, err, errlen);
}

int sf_kafka_subscribe(sf_kafka *k, char *err, size_t errlen)
{
    char names[16][256];
    int n = split_topics(k->cfg.requests, names, SF_KAFKA_MAX_REQUEST_TOPICS);
    bool first = k->ncounts == 0; /* slots are given once and do not move */
    for (int i = 0; i < n && first; i++)
        if (names[i][0] != '^') /* a pattern's topics have no slot: not checked */
            memcpy(k->counts[k->ncounts++].topic, names[i], sizeof(k->counts[0].topic));
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n);
    for (int i = 0; i < n; i++)
        rd_kafka_topic_partition_list_add(l, names[i], RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(k->consumer, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e) {
        snprintf(err, errlen, "cannot subscribe to %s: %s", k->cfg.requests, rd_kafka_err2str(e));
        return -1;
    }
    return 0;
}

void sf_kafka_unsubscribe(sf_kafka *k)
{
    rd_kafka_unsubscribe(k->consumer);
}

rd_kafka_resp_err_t sf_kafka_produce(sf_kafka *k, const char *topic, const void *key, size_t keylen,
                                     const void *value, size_t len, rd_kafka_headers_t *headers,
                                     void *opaque, char *err, size_t errlen)
{
    rd_kafka_resp_err_t e = rd_kafka_producev(
        k->producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY((void *)key, keylen),
        RD_KAFKA_V_VALUE((void *)value, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_HEADERS(headers), RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
    if (e) {
        if (headers)
            rd_kafka_headers_destroy(headers);
        snprintf(err, errlen, "cannot produce to %s: %s", topic, rd_kafka_err2str(e));
        return e;
    }
    /* headers are owned by the message now */
    return RD_KAFKA_RESP_ERR_NO_ERROR;
}

void sf_kafka_store_offset(sf_kafka *k, const char *topic, int32_t partition, int64_t next)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, partition)->offset = next;
    rd_kafka_resp_err_t e = rd_kafka_offsets_store(k->consumer, l);
    if (e)
        k_warn(k, "kafka.offset_store_failed", "topic=%s partition=%d offset=%lld error=%s", topic,
               (int)partition, (long long)next, rd_kafka_err2str(e));
    rd_kafka_topic_partition_list_destroy(l);
}

static uint64_t mono_ms(void);

/* The commit's result comes to a queue of its own, waited for up to timeout_ms. */
int sf_kafka_commit_sync(sf_kafka *k, int timeout_ms)
{
    rd_kafka_queue_t *q = rd_kafka_queue_new(k->consumer);
    rd_kafka_resp_err_t e = rd_kafka_commit_queue(k->consumer, NULL, q, NULL, NULL);
    bool answered = e != RD_KAFKA_RESP_ERR_NO_ERROR;
    for (uint64_t end = mono_ms() + (uint64_t)timeout_ms; !answered && mono_ms() < end;) {
        rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 100);
        if (ev && rd_kafka_event_type(ev) == RD_KAFKA_EVENT_OFFSET_COMMIT) {
            e = rd_kafka_event_error(ev);
            answered = true;
        }
        if (ev)
            rd_kafka_event_destroy(ev);
    }
    rd_kafka_queue_destroy(q);
    if (!answered) {
        k_warn(k, "kafka.commit_timeout", "timeout_ms=%d", timeout_ms);
        return -1;
    }
    if (e && e != RD_KAFKA_RESP_ERR__NO_OFFSET) {
        k_warn(k, "kafka.commit_failed", "error=%s", rd_kafka_err2str(e));
        return -1;
    }
    return 0;
}

static void pause_resume(sf_kafka *k, const char *topic, int32_t partition, bool pause)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, partition);
    rd_kafka_resp_err_t e = pause ? rd_kafka_pause_partitions(k->consumer, l)
                                  : rd_kafka_resume_partitions(k->consumer, l);
    if (e)
        k_warn(k, "kafka.pause_failed", "topic=%s partition=%d pause=%d error=%s", topic,
               (int)partition, pause, rd_kafka_err2str(e));
    rd_kafka_topic_partition_list_destroy(l);
}

void sf_kafka_pause(sf_kafka *k, const char *topic, int32_t partition)
{
    pause_resume(k, topic, partition, true);
}

void sf_kafka_resume(sf_kafka *k, const char *topic, int32_t partition)
{
    pause_resume(k, topic, partition, false);
}

void sf_kafka_pause_all(sf_kafka *k)
{
    rd_kafka_topic_partition_list_t *l = NULL;
    if (rd_kafka_assignment(k->consumer, &l) == 0 && l) {
        rd_kafka_pause_partitions(k->consumer, l);
        rd_kafka_topic_partition_list_destroy(l);
    }
}

void sf_kafka_committed(sf_kafka *k, rd_kafka_topic_partition_list_t *parts, int timeout_ms)
{
    rd_kafka_resp_err_t e = rd_kafka_committed(k->consumer, parts, timeout_ms);
    for (int i = 0; i < parts->cnt; i++) {
        rd_kafka_topic_partition_t *tp = &parts->elems[i];
        if (e || tp->err) {
            k_warn(k, "kafka.committed_unknown", "topic=%s partition=%d reason=\"%s\"", tp->topic,
                   (int)tp->partition, rd_kafka_err2str(e ? e : tp->err));
            tp->offset = SF_KAFKA_OFFSET_UNKNOWN;
        }
    }
}

int64_t sf_kafka_lag(sf_kafka *k, const char *topic, int32_t partition, int64_t next)
{
    int64_t lo = -1, hi = -1;
    if (next == SF_KAFKA_OFFSET_UNKNOWN)
        return -1;
    if (rd_kafka_get_watermark_offsets(k->consumer, topic, partition, &lo, &hi) != 0 || hi < 0 ||
        lo < 0) {
        const struct ends *x = ends_find(k, topic, partition); /* no fetch answered yet */
        if (x == NULL)
            return -1;
        if (hi < 0)
            hi = x->hi;
        if (lo < 0)
            lo = x->lo;
    }
    if (hi < 0 || (next < 0 && !k->reset_latest && lo < 0))
        return -1;
    if (next < 0) /* no commit: consumption starts at auto.offset.reset */
        next = k->reset_latest ? hi : lo;
    else if (next < lo)
        next = lo; /* the committed records were deleted by retention */
    return hi > next ? hi - next : 0;
}

int64_t sf_kafka_assigned_end(sf_kafka *k, const char *topic, int32_t partition)
{
    const struct ends *x = ends_find(k, topic, partition);
    if (x && x->hi >= 0)
        return x->hi;
    /* The listing failed (a broker still loading, a leader moving): the end the
     * fetches have reported since, which is no earlier. */
    int64_t lo = -1, hi = -1;
    if (rd_kafka_get_watermark_offsets(k->consumer, topic, partition, &lo, &hi) != 0)
        return -1;
    return hi >= 0 ? hi : -1;
}

int sf_kafka_outq_len(sf_kafka *k)
{
    return rd_kafka_outq_len(k->producer);
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/*
 * rd_kafka_consumer_close() blocks until the group is left, for as long as a
 * minute when the brokers are unreachable; the asynchronous close is served
 * here (its rebalance included) only until the deadline.
 */
void sf_kafka_close(sf_kafka *k, int timeout_ms)
{
    if (k->closing)
        return;
    k->closing = true;
    uint64_t deadline = mono_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    rd_kafka_queue_t *q = rd_kafka_queue_new(k->consumer);
    rd_kafka_error_t *err = rd_kafka_consumer_close_queue(k->consumer, q);
    if (err) {
        k_warn(k, "kafka.close_failed", "error=%s", rd_kafka_error_string(err));
        rd_kafka_error_destroy(err);
        k->close_unfinished = true;
    } else {
        /* Served as events, not callbacks: messages fetched before the close land on
         * this queue too (dropped here, their offsets never stored), and a message
         * served in callback mode without a consume callback aborts librdkafka. */
        while (!rd_kafka_consumer_closed(k->consumer) && mono_ms() < deadline) {
            rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 100);
            if (ev == NULL)
                continue;
            if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_REBALANCE)
                on_rebalance(k->consumer, rd_kafka_event_error(ev),
                             rd_kafka_event_topic_partition_list(ev), k);
            else if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_ERROR)
                k_warn(k, "kafka.close_error", "error=%s", rd_kafka_event_error_string(ev));
            rd_kafka_event_destroy(ev);
        }
        if (!rd_kafka_consumer_closed(k->consumer)) {
            k_warn(k, "kafka.close_timeout",
                   "timeout_ms=%d action=\"leaving without a goodbye: "
                   "the group notices after session.timeout.ms\"",
                   timeout_ms);
            k->close_unfinished = true;
        }
    }
    rd_kafka_queue_destroy(q);
    uint64_t t = mono_ms();
    int left = t < deadline ? (int)(deadline - t) : 0;
    if (rd_kafka_flush(k->producer, left > 1000 ? left : 1000))
        k_warn(k, "kafka.flush_incomplete", "unsent=%d", rd_kafka_outq_len(k->producer));
}

const char *sf_kafka_protocol(sf_kafka *k)
{
    return rd_kafka_rebalance_protocol(k->consumer);
}
