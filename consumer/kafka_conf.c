/* kafka_conf.c — the Kafka contract's table and the one way it is applied; see kafka_conf.h. */
#include "kafka_conf.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define FOR_MEMBER   (1u << SF_KAFKA_MEMBER)
#define FOR_READER   (1u << SF_KAFKA_READER)
#define FOR_PRODUCER (1u << SF_KAFKA_PRODUCER)

/* The value of a row that is the caller's topics.partitioner. */
#define PARTITIONER NULL

/*
 * The contract. Every row names the clients it binds, whether a user value
 * other than its own is refused (required) or merely replaced when absent
 * (default), and the reason, which a refusal quotes.
 */
static const struct contract_row {
    const char *key;
    const char *value;
    unsigned clients;
    bool required;
    const char *why;
} CONTRACT[] = {
    /* Only the contiguous prefix of finished requests is stored for commit
     * (consumer/offsets.c); the reader stores nothing. */
    {"enable.auto.offset.store", "false", FOR_MEMBER | FOR_READER, true,
     "an offset is stored only once its request is finished"},
    {"enable.partition.eof", "false", FOR_MEMBER | FOR_READER, true,
     "the end of a partition is no event here"},
    /* A request produced before the group's first member started must not be
     * skipped: without a committed offset, start from the beginning. */
    {"auto.offset.reset", "earliest", FOR_MEMBER, false,
     "a group without a committed offset starts at its first request"},
    {"enable.idempotence", "true", FOR_PRODUCER, true,
     "a session's records must stay in order across retries"},
    /* murmur2_random by default: a session maps to the same partition as with
     * the Java client. */
    {"partitioner", PARTITIONER, FOR_PRODUCER, true,
     "topics.partitioner: the supervisors check each request's partition against it"},
    /* librdkafka holds records to a topic the brokers do not know for this long
     * after its first use (30 s by default) before failing them, in case it was
     * just created; a reply to a missing topic holds its partition's commits that
     * long. Once failed, the topic is asked for every second, so one created
     * later is used at once. KRaft brokers follow the controller's log within
     * milliseconds. */
    {"topic.metadata.propagation.max.ms", "5000", FOR_PRODUCER, false,
     "a record to a missing topic fails within seconds"},
    /* librdkafka's 45 s: a host that died (or was cut off, or froze) keeps its
     * partitions that long, and their sessions wait. 10 s is well above a
     * heartbeat's round trip and within the brokers' default bounds (6 s to
     * 30 min); static members (group.instance.id) set it above a restart. */
    {"session.timeout.ms", "10000", FOR_MEMBER, false,
     "a member that is gone gives its partitions up in seconds"},
    {"heartbeat.interval.ms", "1000", FOR_MEMBER, false,
     "a third of a heartbeat window at most, so a late one is not a lost member"},
};

const char *sf_kafka_settings_get(const sf_kafka_settings *s, const char *key)
{
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->kv[i].key, key) == 0)
            return s->kv[i].value;
    return NULL;
}

static const sf_kafka_setting *setting_find(const sf_kafka_settings *s, const char *key)
{
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->kv[i].key, key) == 0)
            return &s->kv[i];
    return NULL;
}

int sf_kafka_conf_set(rd_kafka_conf_t *conf, const char *key, const char *value, const char *source,
                      char *err, size_t errlen)
{
    char why[256];
    if (rd_kafka_conf_set(conf, key, value, why, sizeof(why)) != RD_KAFKA_CONF_OK) {
        snprintf(err, errlen, "kafka.%s (%s): %s", key, source, why);
        return -1;
    }
    return 0;
}

int sf_kafka_conf_default(rd_kafka_conf_t *conf, const sf_kafka_settings *user, const char *key,
                          const char *value, const char *source, char *err, size_t errlen)
{
    if (sf_kafka_settings_get(user, key))
        return 0;
    return sf_kafka_conf_set(conf, key, value, source, err, errlen);
}

/* value as librdkafka spells it back ("1" and "True" read "true"), or value itself. */
static const char *spelled(const char *key, const char *value, char *buf, size_t cap)
{
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    char why[256];
    size_t size = cap;
    const char *v = rd_kafka_conf_set(c, key, value, why, sizeof(why)) == RD_KAFKA_CONF_OK &&
                            rd_kafka_conf_get(c, key, buf, &size) == RD_KAFKA_CONF_OK
                        ? buf
                        : value;
    rd_kafka_conf_destroy(c);
    return v;
}

/* A required row the user set too: the two values must mean the same. */
static int check_required(const sf_kafka_setting *given, const char *value, const char *why,
                          char *err, size_t errlen)
{
    char a[512], b[512];
    if (strcmp(spelled(given->key, given->value, a, sizeof(a)),
               spelled(given->key, value, b, sizeof(b))) == 0)
        return 0;
    snprintf(err, errlen, "kafka.%s (%s): must be %s (%s), not '%s'", given->key, given->source,
             value, why, given->value);
    return -1;
}

rd_kafka_conf_t *sf_kafka_conf_new(sf_kafka_client client, const sf_kafka_settings *user,
                                   const char *partitioner, char *err, size_t errlen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    /* Consumer-only or producer-only keys are fine in [kafka]: librdkafka takes
     * them on either client and ignores the other client's (kafka.c logs that at
     * debug level). */
    for (int i = 0; i < user->n; i++) {
        const sf_kafka_setting *kv = &user->kv[i];
        if (sf_kafka_conf_set(conf, kv->key, kv->value, kv->source, err, errlen) < 0)
            goto bad;
    }
    for (size_t r = 0; r < sizeof(CONTRACT) / sizeof(CONTRACT[0]); r++) {
        const struct contract_row *row = &CONTRACT[r];
        if (!(row->clients & (1u << client)))
            continue;
        const char *value = row->value ? row->value : partitioner;
        const sf_kafka_setting *given = setting_find(user, row->key);
        if (given && row->required) {
            if (check_required(given, value, row->why, err, errlen) < 0)
                goto bad;
        } else if (given == NULL &&
                   sf_kafka_conf_set(conf, row->key, value,
                                     row->value ? "snakefleet" : "topics.partitioner", err,
                                     errlen) < 0) {
            goto bad;
        }
    }
    return conf;
bad:
    rd_kafka_conf_destroy(conf);
    return NULL;
}
