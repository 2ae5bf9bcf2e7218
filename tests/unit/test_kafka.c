/*
 * test_kafka.c — consumer/kafka.c against the librdkafka mock cluster
 * (in-process; fault injection only, the real Kafka path is tested in
 * tests/integration): leaving the group with fetched messages still queued.
 */
#include <criterion/criterion.h>
#include <event2/event.h>
#include <string.h>

#include "config.h"
#include "kafka.h"
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
