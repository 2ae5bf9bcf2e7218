/*
 * test_kafka.c — consumer/kafka.c against the librdkafka mock cluster
 * (in-process; fault injection only, the real Kafka path is tested in
 * tests/integration): leaving the group with fetched messages still queued.
 * And the Kafka contract (consumer/kafka_conf.c) every client is made with: a
 * conflicting value refused, a default only where nothing was set.
 *
 * Built on sf_consumer alone: the Kafka layer needs nothing of supervisor/.
 */
#include <criterion/criterion.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "kafka.h"
#include "kafka_conf.h"

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

static void add_setting(sf_kafka_settings *s, const char *key, const char *value)
{
    sf_kafka_setting *kv = &s->kv[s->n++];
    snprintf(kv->key, sizeof(kv->key), "%s", key);
    snprintf(kv->value, sizeof(kv->value), "%s", value);
    snprintf(kv->source, sizeof(kv->source), "test");
}

/* Errors only, as the supervisor's log would show them at log_level=error. */
static void log_errors(sf_kafka_log_level level, const char *event, const char *fields)
{
    if (level == SF_KAFKA_LOG_ERROR)
        fprintf(stderr, "event=%s %s\n", event, fields);
}

/* The supervisor's defaults, as supervisor/kafka_config.c would fill them. */
static void test_config(sf_kafka_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    snprintf(cfg->client_id, sizeof(cfg->client_id), "test-kafka");
    snprintf(cfg->group, sizeof(cfg->group), "snakefleet");
    snprintf(cfg->requests, sizeof(cfg->requests), "snakefleet.requests");
    snprintf(cfg->replies, sizeof(cfg->replies), "snakefleet.replies");
    snprintf(cfg->telemetry, sizeof(cfg->telemetry), "snakefleet.telemetry");
    snprintf(cfg->dlq, sizeof(cfg->dlq), "snakefleet.dlq");
    cfg->partitions = 8;
    cfg->replication = 1;
    snprintf(cfg->partitioner, sizeof(cfg->partitioner), "murmur2_random");
    cfg->refresh_ms = 5000;
    cfg->log.write = log_errors;
}

Test(kafka, closes_with_fetched_messages_still_queued, .timeout = 60)
{
    sf_kafka_config cfg;
    test_config(&cfg);
    cfg.partitions = 2;
    add_setting(&cfg.settings, "fetch.wait.max.ms", "10");
    char err[512];
    sf_mock *m = sf_mock_start(&cfg, 1, err, sizeof(err));
    cr_assert(m, "%s", err);
    base = event_base_new();
    sf_kafka_handlers h = {NULL, on_message, on_assign, on_revoke, on_delivery, NULL};
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

Test(kafka, the_configured_topics_are_the_request_topics_then_replies_telemetry_and_dlq)
{
    sf_kafka_config cfg;
    test_config(&cfg);
    snprintf(cfg.requests, sizeof(cfg.requests), " a , b,, c ");
    sf_kafka_topic t[SF_KAFKA_MAX_TOPICS];
    int n = sf_kafka_config_topics(&cfg, t);
    const char *names[] = {
        "a", "b", "c", "snakefleet.replies", "snakefleet.telemetry", "snakefleet.dlq"};
    const int partitions[] = {8, 8, 8, 8, 1, 1};
    cr_assert_eq(n, 6);
    for (int i = 0; i < n; i++) {
        cr_expect_str_eq(t[i].name, names[i]);
        cr_expect_eq(t[i].partitions, partitions[i], "%s", t[i].name);
    }
}

/* What a host's log got: kafka.log events of librdkafka's configuration warnings. */
static pthread_mutex_t seen_lock = PTHREAD_MUTEX_INITIALIZER;
static int confwarns, confwarns_above_debug;

static void log_confwarns(sf_kafka_log_level level, const char *event, const char *fields)
{
    if (strcmp(event, "kafka.log") != 0 || strstr(fields, "facility=CONFWARN") == NULL)
        return;
    pthread_mutex_lock(&seen_lock);
    confwarns++;
    confwarns_above_debug += level != SF_KAFKA_LOG_DEBUG;
    pthread_mutex_unlock(&seen_lock);
}

Test(kafka, the_hosts_log_gets_librdkafkas_lines_as_kafka_log_events, .timeout = 30)
{
    sf_kafka_config cfg;
    test_config(&cfg);
    cfg.log.write = log_confwarns;
    /* A consumer property, on the producer too: librdkafka says it ignores it. */
    add_setting(&cfg.settings, "fetch.wait.max.ms", "10");
    char err[512];
    sf_mock *m = sf_mock_start(&cfg, 1, err, sizeof(err));
    cr_assert(m, "%s", err);
    struct event_base *b = event_base_new();
    sf_kafka_handlers h = {NULL, on_message, on_assign, on_revoke, on_delivery, NULL};
    sf_kafka *kk = sf_kafka_new(b, &cfg, sf_mock_bootstrap(m), &h, err, sizeof(err));
    cr_assert(kk, "%s", err);
    sf_kafka_free(kk);
    sf_mock_free(m);
    event_base_free(b);
    cr_expect_gt(confwarns, 0, "no CONFWARN line came through the hook");
    cr_expect_eq(confwarns_above_debug, 0, "the other client's key is logged at debug level");
}

Test(kafka, the_supervisors_clients_refuse_a_setting_against_the_contract)
{
    sf_kafka_config cfg;
    test_config(&cfg);
    add_setting(&cfg.settings, "enable.idempotence", "false");
    struct event_base *b = event_base_new();
    sf_kafka_handlers h = {NULL, on_message, on_assign, on_revoke, on_delivery, NULL};
    char err[512] = "";
    sf_kafka *kk = sf_kafka_new(b, &cfg, "127.0.0.1:1", &h, err, sizeof(err));
    cr_expect_null(kk);
    cr_expect(strstr(err, "kafka.enable.idempotence (test): must be true (") == err, "%s", err);
    event_base_free(b);
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
