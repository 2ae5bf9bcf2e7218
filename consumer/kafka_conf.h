/*
 * kafka_conf.h — the Kafka contract: the client settings snakefleet's
 * guarantees rest on, written down once and applied the same way to every
 * Kafka client of the project — the supervisor's group consumer and producer
 * (kafka.c) and the `snakefleet` command's reply reader and producer
 * (cli/kclient.c).
 *
 * A client's configuration is the user's pass-through settings ([kafka],
 * SNAKEFLEET_KAFKA_*, --kafka.*) with the contract over them, on one rule:
 *
 *   required  the user may leave the key out or set the very value; any
 *             other value is refused, and the message names the key, where
 *             its value came from, the value it must have and why.
 *   default   set only when the user did not set the key.
 *
 * The contract's table is in kafka_conf.c. A caller's own settings (client.id,
 * group.id, bootstrap.servers for --dev) are not part of it: the caller sets
 * them after sf_kafka_conf_new, with sf_kafka_conf_set or sf_kafka_conf_default.
 */
#ifndef SF_KAFKA_CONF_H
#define SF_KAFKA_CONF_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

#define SF_KAFKA_MAX_SETTINGS 64

/* One pass-through property and where its value came from ("file:line", "flag", …). */
typedef struct sf_kafka_setting {
    char key[128];
    char value[512];
    char source[160];
} sf_kafka_setting;

/* The user's pass-through properties, each key at most once. */
typedef struct sf_kafka_settings {
    sf_kafka_setting kv[SF_KAFKA_MAX_SETTINGS];
    int n;
} sf_kafka_settings;

/* The value the user set for key, or NULL. */
const char *sf_kafka_settings_get(const sf_kafka_settings *s, const char *key);

/* Which client a configuration is for: the contract differs between them. */
typedef enum {
    SF_KAFKA_MEMBER,   /* a consumer-group member: subscribes, commits the offsets it stores */
    SF_KAFKA_READER,   /* a consumer assigned at explicit offsets, never committing */
    SF_KAFKA_PRODUCER, /* requests, replies, telemetry and DLQ records */
} sf_kafka_client;

/*
 * A new librdkafka configuration for `client`: every user setting, then the
 * contract. `partitioner` is the producers' partitioner (topics.partitioner,
 * which the supervisors check requests against). Returns NULL with err when
 * librdkafka refuses a setting or a user value conflicts with the contract.
 * The caller owns the result (rd_kafka_new takes it over on success).
 */
rd_kafka_conf_t *sf_kafka_conf_new(sf_kafka_client client, const sf_kafka_settings *user,
                                   const char *partitioner, char *err, size_t errlen);

/* Sets key=value; -1 with err "kafka.KEY (SOURCE): librdkafka's reason". */
int sf_kafka_conf_set(rd_kafka_conf_t *conf, const char *key, const char *value, const char *source,
                      char *err, size_t errlen);

/* Sets key=value unless the user set key (the contract's rule for a default). */
int sf_kafka_conf_default(rd_kafka_conf_t *conf, const sf_kafka_settings *user, const char *key,
                          const char *value, const char *source, char *err, size_t errlen);

#endif
