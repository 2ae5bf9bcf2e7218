/*
 * kafka.h — everything the daemon does with Kafka, behind one handle: the
 * consumer-group member that reads requests, the idempotent producer that
 * writes replies, telemetry and DLQ records, topic checks and creation, and
 * the embedded mock cluster for --dev.
 *
 * Both clients are driven from the libevent loop: librdkafka signals its
 * queues through pipes (rd_kafka_queue_io_event_enable), so nothing polls on
 * a timer and nothing runs on librdkafka's threads except logging.
 *
 * Rebalances: assignments are applied at once; a revocation is handed to the
 * daemon (on_revoke) which finishes it with sf_kafka_finish_revoke() once the
 * revoked partitions' calls in flight are done and committed — librdkafka
 * waits for that call (its group state "wait-unassign-call").
 */
#ifndef SF_KAFKA_H
#define SF_KAFKA_H

#include <event2/event.h>
#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stdint.h>

#include "kafka_conf.h"

typedef struct sf_kafka sf_kafka;

typedef enum {
    SF_KAFKA_LOG_DEBUG,
    SF_KAFKA_LOG_INFO,
    SF_KAFKA_LOG_WARN,
    SF_KAFKA_LOG_ERROR
} sf_kafka_log_level;

/*
 * Where this layer's log events go: the host's log, which owns the line's
 * format. `write` gets one event (kafka.assigned, kafka.error, …) with its
 * key=value fields formatted; `quote` writes a value as the log needs it
 * (librdkafka's own messages are quoted with it). Both are called on
 * librdkafka's threads too (kafka.log, kafka.error). Left zero: warnings and
 * errors go to stderr as `level=… event=… fields`, values quoted plainly.
 */
typedef struct sf_kafka_log {
    void (*write)(sf_kafka_log_level level, const char *event, const char *fields);
    const char *(*quote)(char *buf, size_t cap, const char *s, size_t len);
} sf_kafka_log;

/*
 * What the Kafka layer is told; the supervisor fills it from its configuration
 * (supervisor/kafka_config.c), and sf_kafka_new and sf_mock_start keep a copy.
 * The option in parentheses is where each field comes from there.
 */
typedef struct sf_kafka_config {
    sf_kafka_settings settings; /* the [kafka] pass-through, each value with its source */
    char client_id[128];        /* client.id of both clients (supervisor.id) */
    char group[128];            /* the consumer's group.id (topics.group) */
    /* Subscribed: comma-separated names, `^` patterns too (topics.requests). */
    char requests[256];
    /* Produced to, and checked or created with the request topics. */
    char replies[256];   /* topics.replies */
    char telemetry[256]; /* topics.telemetry */
    char dlq[256];       /* topics.dlq */
    bool create_topics;  /* missing topics are created, not an error (topics.create) */
    /* A created request or reply topic's partitions, telemetry and DLQ get 1 (topics.partitions);
     * its replication factor (topics.replication). */
    uint32_t partitions;
    uint32_t replication;
    char partitioner[32]; /* the producer's partitioner, librdkafka's name (topics.partitioner) */
    /* How often the request topics' partition counts are looked up (telemetry.interval). */
    uint32_t refresh_ms;
    sf_kafka_log log;
} sf_kafka_config;

typedef struct sf_kafka_handlers {
    void *ctx;
    /* A request message; the callee owns msg (rd_kafka_message_destroy). */
    void (*on_message)(void *ctx, rd_kafka_message_t *msg);
    /* Newly assigned partitions, each .offset the group's committed offset (sf_kafka_committed). */
    void (*on_assign)(void *ctx, const rd_kafka_topic_partition_list_t *parts);
    /* The callee must later call sf_kafka_finish_revoke(k, parts) (parts stays valid). */
    void (*on_revoke)(void *ctx, rd_kafka_topic_partition_list_t *parts);
    /* A produced message was acknowledged or failed; opaque and topic as given to
     * sf_kafka_produce. */
    void (*on_delivery)(void *ctx, void *opaque, const char *topic, rd_kafka_resp_err_t err);
    /* The group coordinator took a commit: each element with .err 0 has .offset committed
     * (auto-commit, or sf_kafka_commit_sync). May be NULL. */
    void (*on_committed)(void *ctx, const rd_kafka_topic_partition_list_t *offsets);
} sf_kafka_handlers;

/*
 * Creates both clients from cfg (copied): the pass-through with the Kafka
 * contract over it (kafka_conf.h), then client.id and group.id. `bootstrap`
 * overrides bootstrap.servers when not NULL (the --dev mock cluster).
 */
sf_kafka *sf_kafka_new(struct event_base *base, const sf_kafka_config *cfg, const char *bootstrap,
                       const sf_kafka_handlers *h, char *err, size_t errlen);
void sf_kafka_free(sf_kafka *k);

/* A topic the configuration names, and the partitions it is created with. */
typedef struct sf_kafka_topic {
    char name[256];
    int partitions;
} sf_kafka_topic;

#define SF_KAFKA_MAX_TOPICS 16

/*
 * Every topic cfg names, into out: the request topics (the first 12) and the
 * reply topic with cfg->partitions, telemetry and DLQ with 1. Returns how many.
 */
int sf_kafka_config_topics(const sf_kafka_config *cfg, sf_kafka_topic out[SF_KAFKA_MAX_TOPICS]);

/* Checks that every configured topic exists; creates missing ones when cfg->create_topics. */
int sf_kafka_ensure_topics(sf_kafka *k, char *err, size_t errlen);

int sf_kafka_subscribe(sf_kafka *k, char *err, size_t errlen);
/* Leaves the group's assignment (its partitions are revoked and go to the
 * other members); sf_kafka_subscribe joins again. */
void sf_kafka_unsubscribe(sf_kafka *k);

/*
 * Produces value to topic with key; headers (may be NULL) are taken over.
 * on_delivery(opaque) follows. Returns RD_KAFKA_RESP_ERR_NO_ERROR, or why the
 * message could not be queued (err says it in words; on_delivery is not
 * called then): RD_KAFKA_RESP_ERR__QUEUE_FULL is worth trying again shortly;
 * RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC (librdkafka knows the topic is missing)
 * or RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE will not change by retrying.
 */
rd_kafka_resp_err_t sf_kafka_produce(sf_kafka *k, const char *topic, const void *key, size_t keylen,
                                     const void *value, size_t len, rd_kafka_headers_t *headers,
                                     void *opaque, char *err, size_t errlen);

/* Stores `next` as the offset to commit for topic/partition (committed by auto-commit). */
void sf_kafka_store_offset(sf_kafka *k, const char *topic, int32_t partition, int64_t next);

/* Commits stored offsets now and waits for the broker's answer, up to timeout_ms. */
int sf_kafka_commit_sync(sf_kafka *k, int timeout_ms);

void sf_kafka_pause(sf_kafka *k, const char *topic, int32_t partition);
void sf_kafka_resume(sf_kafka *k, const char *topic, int32_t partition);
/* Stops fetching every assigned partition (shutdown drain). */
void sf_kafka_pause_all(sf_kafka *k);

void sf_kafka_finish_revoke(sf_kafka *k, rd_kafka_topic_partition_list_t *parts);

/* A committed offset that could not be read (the coordinator did not answer). */
#define SF_KAFKA_OFFSET_UNKNOWN (-2000)

/*
 * Reads the group's committed offsets of parts into their .offset, waiting up
 * to timeout_ms: the offset, RD_KAFKA_OFFSET_INVALID when the group never
 * committed one, or SF_KAFKA_OFFSET_UNKNOWN when it could not be read. The
 * parts handed to on_assign carry them already.
 */
void sf_kafka_committed(sf_kafka *k, rd_kafka_topic_partition_list_t *parts, int timeout_ms);

/*
 * Consumer lag of an assigned partition: records from `next` (the first
 * offset not yet finished, as committed or as stored since) to the cached
 * high watermark. `next` RD_KAFKA_OFFSET_INVALID means no commit, so the lag
 * counts from where auto.offset.reset starts. -1 while it cannot be known.
 */
int64_t sf_kafka_lag(sf_kafka *k, const char *topic, int32_t partition, int64_t next);

/*
 * The end offset (the next offset to be written) of an assigned partition as
 * listed at its assignment; if that listing failed, the end the fetches have
 * reported since (later, never earlier); -1 while neither is known.
 */
int64_t sf_kafka_assigned_end(sf_kafka *k, const char *topic, int32_t partition);

/* Request topics (cfg->requests) whose partition counts are kept. */
#define SF_KAFKA_MAX_REQUEST_TOPICS 16

/*
 * A request topic's slot for sf_kafka_partition_count, given at subscription:
 * -1 for a topic not named in cfg->requests (one matched by a pattern).
 */
int sf_kafka_topic_slot(const sf_kafka *k, const char *topic);

/*
 * The slot's partition count as the brokers last gave it, 0 while unknown:
 * looked up at each assignment (blocking up to 2 s) and every
 * cfg->refresh_ms (up to 0.5 s); a failed lookup keeps the last count.
 */
int32_t sf_kafka_partition_count(const sf_kafka *k, int slot);

/* Messages produced but not yet acknowledged. */
int sf_kafka_outq_len(sf_kafka *k);

/*
 * Leaves the group (revocation runs through on_revoke, which must finish at
 * once here) and flushes the producer, together bounded by timeout_ms (the
 * flush gets at least 1 s). Unreachable brokers cannot hold it longer: the
 * group then notices the member gone after session.timeout.ms.
 */
void sf_kafka_close(sf_kafka *k, int timeout_ms);

/* "COOPERATIVE" or "EAGER" (or "NONE" before the first join). */
const char *sf_kafka_protocol(sf_kafka *k);

/* The embedded mock cluster for --dev (mock.c): creates the configured topics. */
typedef struct sf_mock sf_mock;
sf_mock *sf_mock_start(const sf_kafka_config *cfg, int brokers, char *err, size_t errlen);
const char *sf_mock_bootstrap(const sf_mock *m);
void sf_mock_free(sf_mock *m);

#endif
