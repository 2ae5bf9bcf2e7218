/*
 * mock.c — the embedded mock cluster for --dev (and test_kafka): librdkafka's
 * rd_kafka_mock_cluster on a handle of its own, with every topic the
 * configuration names already created; see kafka.h.
 */
#include "kafka.h"

#include <librdkafka/rdkafka_mock.h> /* after rdkafka.h, which kafka.h includes */
#include <stdio.h>
#include <stdlib.h>

#include "kafka_log.h"

struct sf_mock {
    sf_kafka_log log; /* the host's, for the handle's own log lines */
    rd_kafka_t *rk;
    rd_kafka_mock_cluster_t *mc;
};

static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    const sf_mock *m = rd_kafka_opaque(rk);
    sf_kafka_log_librdkafka(&m->log, rk, level, fac, buf);
}

sf_mock *sf_mock_start(const sf_kafka_config *cfg, int brokers, char *err, size_t errlen)
{
    char e[256];
    sf_mock *m = calloc(1, sizeof(*m));
    m->log = cfg->log;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, on_log);
    rd_kafka_conf_set_opaque(conf, m);
    /* The handle only hosts the cluster and never connects, so it has no
     * bootstrap.servers; log_level 4 drops librdkafka's notice (level 5) that
     * it will not be able to connect, and keeps its warnings and errors. */
    if (rd_kafka_conf_set(conf, "log_level", "4", e, sizeof(e)) != RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        snprintf(err, errlen, "mock cluster: %s", e);
        free(m);
        return NULL;
    }
    m->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, e, sizeof(e));
    if (m->rk == NULL) {
        rd_kafka_conf_destroy(conf);
        snprintf(err, errlen, "mock cluster: %s", e);
        free(m);
        return NULL;
    }
    /* conf is owned by rk now */
    m->mc = rd_kafka_mock_cluster_new(m->rk, brokers);
    if (m->mc == NULL) {
        snprintf(err, errlen, "cannot start the mock cluster");
        sf_mock_free(m);
        return NULL;
    }
    sf_kafka_topic topics[SF_KAFKA_MAX_TOPICS];
    int n = sf_kafka_config_topics(cfg, topics);
    for (int i = 0; i < n; i++)
        rd_kafka_mock_topic_create(m->mc, topics[i].name, topics[i].partitions, 1);
    return m;
}

const char *sf_mock_bootstrap(const sf_mock *m)
{
    return rd_kafka_mock_cluster_bootstraps(m->mc);
}

void sf_mock_free(sf_mock *m)
{
    if (m == NULL)
        return;
    if (m->mc)
        rd_kafka_mock_cluster_destroy(m->mc);
    if (m->rk)
        rd_kafka_destroy(m->rk);
    free(m);
}
