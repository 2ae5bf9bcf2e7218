/*
 * kclient.h — the librdkafka clients of the `snakefleet` command.
 *
 * Every client is configured as the supervisor's are: the `[kafka]`
 * pass-through of the configuration (-c FILE, SNAKEFLEET_KAFKA_*, --kafka.*)
 * under the Kafka contract (consumer/kafka_conf.c: a conflicting value is an
 * error naming the key, a contract default only fills a key left unset), then
 * the CLI defaults below where the user set nothing:
 *
 *   producer  the contract's producer settings: partitioner=topics.partitioner
 *             (murmur2_random by default, the Java client's mapping, so a
 *             session lands on the partition the supervisors expect whoever
 *             produces it) and enable.idempotence=true (a session's requests
 *             stay in order across retries).
 *   consumer  a reader: the contract's consumer settings, plus a group.id of
 *             its own (never the supervisors' group) and no auto-commit, both
 *             set over [kafka]; no topic auto-creation by default; it never
 *             subscribes, it assigns partitions at explicit offsets.
 *
 * CLI defaults a user may override: consumer fetch.wait.max.ms=10 (the mock
 * cluster holds an empty fetch for the whole wait, which would otherwise be
 * the reply latency), isolation.level=read_uncommitted; producer linger.ms=0
 * (request/reply is latency-bound, and librdkafka still batches whatever
 * queues up while a produce request is in flight: on a 2-core host 0 gave
 * 1.6x the throughput of 1 ms, at lower latency).
 *
 * librdkafka's own log lines are kept quiet unless supervisor.log_level=debug;
 * the last error it logged is remembered so a failure message can say why
 * (e.g. "Connect to ipv4#127.0.0.1:9092 failed: Connection refused").
 */
#ifndef SF_CLI_KCLIENT_H
#define SF_CLI_KCLIENT_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

#include "config.h"

typedef void (*kclient_dr_cb)(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque);

/*
 * message_timeout_ms 0 keeps librdkafka's (or the configured)
 * message.timeout.ms. dr_cb (may be NULL) gets every delivery report, with
 * opaque, from rd_kafka_poll() on the caller's thread.
 */
rd_kafka_t *kclient_producer_new(const sf_config *cfg, const char *cmd, int message_timeout_ms,
                                 kclient_dr_cb dr_cb, void *opaque, char *err, size_t errlen);
rd_kafka_t *kclient_consumer_new(const sf_config *cfg, const char *cmd, char *err, size_t errlen);

/* The partition count of topic, or -1 (err says why: unreachable broker, unknown topic). */
int kclient_partitions(rd_kafka_t *rk, const char *topic, int timeout_ms, char *err, size_t errlen);

/*
 * Low and high watermarks of partitions 0..n-1 of topic (caller-allocated
 * arrays of n). Returns 0, or -1 with err.
 */
int kclient_watermarks(rd_kafka_t *rk, const char *topic, int n, int64_t *low, int64_t *high,
                       int timeout_ms, char *err, size_t errlen);

/*
 * Assigns partitions 0..n-1 of topic to the consumer, each at offsets[i].
 * Returns 0, or -1 with err.
 */
int kclient_assign(rd_kafka_t *consumer, const char *topic, int n, const int64_t *offsets,
                   char *err, size_t errlen);

/* The last error librdkafka logged (any client of this process), "" if none. */
void kclient_last_error(char *buf, size_t cap);

/* bootstrap.servers as configured, or "(not set)". */
const char *kclient_bootstrap(const sf_config *cfg);

#endif
