/*
 * kafka_log.h — how the Kafka layer's files write their log events: through
 * the host's hook (sf_kafka_log, kafka.h), never to a log of their own.
 * Internal to consumer/.
 */
#ifndef SF_KAFKA_LOG_H
#define SF_KAFKA_LOG_H

#include <librdkafka/rdkafka.h>

#include "kafka.h"

/* One event with its key=value fields; without a hook, warnings and errors go to stderr. */
void sf_kafka_log_event(const sf_kafka_log *log, sf_kafka_log_level level, const char *event,
                        const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* One of librdkafka's own log lines (a log_cb's arguments) as a kafka.log event. */
void sf_kafka_log_librdkafka(const sf_kafka_log *log, const rd_kafka_t *rk, int level,
                             const char *fac, const char *buf);

#endif
