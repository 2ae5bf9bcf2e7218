/*
 * test_kafka.c — consumer/kafka.c against the librdkafka mock cluster
 * (in-process; fault injection only, the real Kafka path is tested in
 * tests/integration): leaving the group with fetched messages still queued.
 * And the Kafka contract (consumer/kafka_conf.c) every client is made with: a
 * conflicting value refused, a default only where nothing was set.
 */
#include <criterion/criterion.h>
#include <event2/event.h>
#include <string.h>

#include "config.h"
#include "kafka.h"
#include "kafka_conf.h"
#include "log.h"

static sf_kafka *k;
static int messages;
static struct event_base *base;

static void on_message(void *ctx, rd_kafka_message_t *msg)
{
    messages++;
    rd_kafka_message_destroy(msg);
    event_base_loopbreak(base); /* take a few, leave the rest queued */
}

static void on_assign(void *ctx, const rd_kafka_topic_partition_list_t *parts)
{
}

static void on_revoke(void *ctx, rd_kafka_topic_partition_list_t *parts)
{
    sf_kafka_finish_revoke(k, parts);
}

static void on_delivery(void *ctx, void *opaque, const char *topic, rd_kafka_resp_err_t err)
{
}

Test(kafka, closes_with_fetched_messages_still_queued, .timeout = 60)
{
    sf_log_set_level(SF_LOG_ERROR);
    sf_config cfg;
    sf_config_defaults(&cfg);
    char err[512];
    cr_assert_eq(sf_config_set(&cfg, "topics.partitions=2", "test", err, sizeof(err)), 0, "%s",
                 err);
    cr_assert_eq(sf_config_set(&cfg, "kafka.fetch.wait.max.ms=10", "test", err, sizeof(err)), 0);
    cr_assert_eq(sf_config_finish(&cfg, err, sizeof(err)), 0, "%s", err);
    sf_mock *m = sf_mock_start(&cfg, 1, err, sizeof(err));
    cr_assert(m, "%s", err);
    base = event_base_new();
    sf_kafka_handlers h = {NULL, on_message, on_assign, on_revoke, on_delivery};
    k = sf_kafka_new(base, &cfg, sf_mock_bootstrap(m), &h, err, sizeof(err));
    cr_assert(k, "%s", err);
    for (int i = 0; i < 5000; i++) {
        char key[16];
        int n = snprintf(key, sizeof(key), "s%d", i % 50);
        cr_assert_eq(
            sf_kafka_produce(k, cfg.requests, key, (size_t)n, "x", 1, NULL, NULL, err, sizeof(err)),
            0, "%s", err);
    }
    cr_assert_eq(sf_kafka_subscribe(k, err, sizeof(err)), 0, "%s", err);
    for (int i = 0; i < 300 && messages == 0; i++) {
        struct timeval tv = {0, 100000};
        event_base_loopexit(base, &tv);
        event_base_loop(base, EVLOOP_ONCE);
    }
    cr_assert_gt(messages, 0, "nothing consumed from the mock cluster");
    sf_kafka_close(k, 5000); /* must leave the group, not abort on the queued messages */
    sf_kafka_free(k);
    sf_mock_free(m);
    event_base_free(base);
}

static void add_setting(sf_kafka_settings *s, const char *key, const char *value)
{
    sf_kafka_setting *kv = &s->kv[s->n++];
    snprintf(kv->key, sizeof(kv->key), "%s", key);
    snprintf(kv->value, sizeof(kv->value), "%s", value);
    snprintf(kv->source, sizeof(kv->source), "test");
}

/* The value conf holds for key, "" when it holds none. */
static const char *conf_value(rd_kafka_conf_t *conf, const char *key)
{
    static char v[512];
    size_t size = sizeof(v);
    if (rd_kafka_conf_get(conf, key, v, &size) != RD_KAFKA_CONF_OK)
        v[0] = '\0';
    return v;
}

Test(kafka_conf, a_value_against_the_contract_is_refused_with_its_key_for_every_client)
{
    const struct {
        sf_kafka_client client;
        const char *key, *value;
    } cases[] = {
        {SF_KAFKA_MEMBER, "enable.auto.offset.store", "true"},
        {SF_KAFKA_READER, "enable.auto.offset.store", "true"},
        {SF_KAFKA_MEMBER, "enable.partition.eof", "true"},
        {SF_KAFKA_READER, "enable.partition.eof", "true"},
        {SF_KAFKA_PRODUCER, "enable.idempotence", "false"},
        {SF_KAFKA_PRODUCER, "partitioner", "consistent_random"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sf_kafka_settings user = {.n = 0};
        add_setting(&user, cases[i].key, cases[i].value);
        char err[512] = "";
        rd_kafka_conf_t *conf =
            sf_kafka_conf_new(cases[i].client, &user, "murmur2_random", err, sizeof(err));
        cr_expect_null(conf, "%s=%s taken", cases[i].key, cases[i].value);
        if (conf)
            rd_kafka_conf_destroy(conf);
        char want[256];
        snprintf(want, sizeof(want), "kafka.%s (test): must be ", cases[i].key);
        cr_expect(strstr(err, want) == err, "%s", err);
        snprintf(want, sizeof(want), ", not '%s'", cases[i].value);
        cr_expect(strstr(err, want), "%s", err);
    }
}

Test(kafka_conf, the_contracts_own_value_is_taken_in_any_spelling)
{
    sf_kafka_settings user = {.n = 0};
    add_setting(&user, "enable.idempotence", "1");
    add_setting(&user, "partitioner", "murmur2_random");
    char err[512] = "";
    rd_kafka_conf_t *conf =
        sf_kafka_conf_new(SF_KAFKA_PRODUCER, &user, "murmur2_random", err, sizeof(err));
    cr_assert(conf, "%s", err);
    cr_expect_str_eq(conf_value(conf, "enable.idempotence"), "true");
    rd_kafka_conf_destroy(conf);
}

Test(kafka_conf, the_producers_partitioner_is_topics_partitioner)
{
    sf_kafka_settings user = {.n = 0};
    char err[512] = "";
    rd_kafka_conf_t *conf = sf_kafka_conf_new(SF_KAFKA_PRODUCER, &user, "fnv1a", err, sizeof(err));
    cr_assert(conf, "%s", err);
    cr_expect_str_eq(conf_value(conf, "partitioner"), "fnv1a");
    cr_expect_str_eq(conf_value(conf, "enable.idempotence"), "true");
    rd_kafka_conf_destroy(conf);
    add_setting(&user, "partitioner", "murmur2_random");
    conf = sf_kafka_conf_new(SF_KAFKA_PRODUCER, &user, "fnv1a", err, sizeof(err));
    cr_expect_null(conf);
    cr_expect(strstr(err, "kafka.partitioner (test): must be fnv1a (topics.partitioner"), "%s",
              err);
}

Test(kafka_conf, a_default_fills_only_a_key_left_unset)
{
    sf_kafka_settings user = {.n = 0};
    char err[512] = "";
    rd_kafka_conf_t *conf =
        sf_kafka_conf_new(SF_KAFKA_MEMBER, &user, "murmur2_random", err, sizeof(err));
    cr_assert(conf, "%s", err);
    cr_expect_str_eq(conf_value(conf, "auto.offset.reset"), "smallest"); /* = earliest */
    cr_expect_str_eq(conf_value(conf, "enable.auto.offset.store"), "false");
    cr_expect_eq(
        sf_kafka_conf_default(conf, &user, "fetch.wait.max.ms", "7", "test", err, sizeof(err)), 0,
        "%s", err);
    cr_expect_str_eq(conf_value(conf, "fetch.wait.max.ms"), "7");
    rd_kafka_conf_destroy(conf);

    add_setting(&user, "auto.offset.reset", "latest");
    add_setting(&user, "fetch.wait.max.ms", "50");
    conf = sf_kafka_conf_new(SF_KAFKA_MEMBER, &user, "murmur2_random", err, sizeof(err));
    cr_assert(conf, "%s", err);
    cr_expect_str_eq(conf_value(conf, "auto.offset.reset"), "largest"); /* = latest */
    cr_expect_eq(
        sf_kafka_conf_default(conf, &user, "fetch.wait.max.ms", "7", "test", err, sizeof(err)), 0,
        "%s", err);
    cr_expect_str_eq(conf_value(conf, "fetch.wait.max.ms"), "50");
    rd_kafka_conf_destroy(conf);

    /* A reader assigns at explicit offsets: the group's default is not its. */
    sf_kafka_settings none = {.n = 0};
    conf = sf_kafka_conf_new(SF_KAFKA_READER, &none, "murmur2_random", err, sizeof(err));
    cr_assert(conf, "%s", err);
    cr_expect_str_neq(conf_value(conf, "auto.offset.reset"), "smallest");
    rd_kafka_conf_destroy(conf);
}

Test(kafka_conf, a_value_librdkafka_refuses_names_its_key_and_source)
{
    sf_kafka_settings user = {.n = 0};
    add_setting(&user, "no.such.property", "1");
    char err[512] = "";
    rd_kafka_conf_t *conf =
        sf_kafka_conf_new(SF_KAFKA_PRODUCER, &user, "murmur2_random", err, sizeof(err));
    cr_expect_null(conf);
    cr_expect(strstr(err, "kafka.no.such.property (test): ") == err, "%s", err);
}
