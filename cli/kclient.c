/* kclient.c — librdkafka clients for the CLI; see kclient.h. */
#include "kclient.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kafka_conf.h"
#include "log.h"

static pthread_mutex_t g_last_lock = PTHREAD_MUTEX_INITIALIZER;
static char g_last_error[512];

/* Runs on librdkafka's threads: remember errors, print only what matters. */
static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    if (level <= 3) {
        pthread_mutex_lock(&g_last_lock);
        snprintf(g_last_error, sizeof(g_last_error), "%s", buf);
        pthread_mutex_unlock(&g_last_lock);
    }
    bool debug = sf_log_get_level() == SF_LOG_DEBUG;
    if (level > 2 && !debug)
        return;
    char q[600];
    sf_log(level <= 3   ? SF_LOG_ERROR
           : level == 4 ? SF_LOG_WARN
                        : SF_LOG_DEBUG,
           "kafka_log", "client=%s fac=%s msg=%s", rd_kafka_name(rk), fac,
           sf_log_quote(q, sizeof(q), buf, strlen(buf)));
}

void kclient_last_error(char *buf, size_t cap)
{
    pthread_mutex_lock(&g_last_lock);
    snprintf(buf, cap, "%s", g_last_error);
    pthread_mutex_unlock(&g_last_lock);
}

const char *kclient_bootstrap(const sf_config *cfg)
{
    const char *b = sf_config_kafka_get(cfg, "bootstrap.servers");
    if (b == NULL)
        b = sf_config_kafka_get(cfg, "bootstrap");
    return b ? b : "(not set)";
}

/* The pass-through as the Kafka layer takes it; `bootstrap` is an alias of bootstrap.servers. */
static void user_settings(const sf_config *cfg, sf_kafka_settings *out)
{
    out->n = 0;
    for (int i = 0; i < cfg->nkafka && out->n < SF_KAFKA_MAX_SETTINGS; i++) {
        const sf_kv *kv = &cfg->kafka[i];
        sf_kafka_setting *s = &out->kv[out->n++];
        snprintf(s->key, sizeof(s->key), "%s",
                 strcmp(kv->key, "bootstrap") == 0 ? "bootstrap.servers" : kv->key);
        snprintf(s->value, sizeof(s->value), "%s", kv->value);
        snprintf(s->source, sizeof(s->source), "%s", kv->source);
    }
}

/*
 * A client's configuration: the pass-through under the Kafka contract, as for
 * the supervisor's clients (consumer/kafka_conf.c), then the command's
 * defaults (key, value pairs) where the user set nothing.
 */
static rd_kafka_conf_t *client_conf(sf_kafka_client client, const sf_kafka_settings *user,
                                    const sf_config *cfg, const char *const *defaults, char *err,
                                    size_t errlen)
{
    rd_kafka_conf_t *conf = sf_kafka_conf_new(client, user, cfg->partitioner_name, err, errlen);
    if (conf == NULL)
        return NULL;
    for (const char *const *d = defaults; d[0]; d += 2) {
        if (sf_kafka_conf_default(conf, user, d[0], d[1], "CLI default", err, errlen) < 0)
            goto bad;
    }
    if (strcmp(kclient_bootstrap(cfg), "(not set)") == 0) {
        snprintf(err, errlen,
                 "kafka.bootstrap.servers is not set (give --kafka.bootstrap.servers=HOST:PORT, "
                 "SNAKEFLEET_KAFKA_BOOTSTRAP_SERVERS or [kafka] bootstrap.servers in -c FILE)");
        goto bad;
    }
    rd_kafka_conf_set_log_cb(conf, on_log);
    return conf;
bad:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

static rd_kafka_t *create(rd_kafka_type_t type, rd_kafka_conf_t *conf, char *err, size_t errlen)
{
    char why[512];
    rd_kafka_t *rk = rd_kafka_new(type, conf, why, sizeof(why));
    if (rk == NULL) {
        rd_kafka_conf_destroy(conf); /* rd_kafka_new takes the conf only on success */
        snprintf(err, errlen, "cannot create the Kafka %s: %s",
                 type == RD_KAFKA_PRODUCER ? "producer" : "consumer", why);
        return NULL;
    }
    return rk; /* rk owns conf now */
}

rd_kafka_t *kclient_producer_new(const sf_config *cfg, const char *cmd, int message_timeout_ms,
                                 kclient_dr_cb dr_cb, void *opaque, char *err, size_t errlen)
{
    char client_id[64];
    snprintf(client_id, sizeof(client_id), "snakefleet-%s", cmd);
    const char *defaults[] = {"client.id", client_id, "linger.ms", "0", NULL};
    sf_kafka_settings user;
    user_settings(cfg, &user);
    rd_kafka_conf_t *conf = client_conf(SF_KAFKA_PRODUCER, &user, cfg, defaults, err, errlen);
    if (conf == NULL)
        return NULL;
    if (message_timeout_ms > 0) {
        char v[32];
        snprintf(v, sizeof(v), "%d", message_timeout_ms);
        if (sf_kafka_conf_default(conf, &user, "message.timeout.ms", v, "--timeout-ms", err,
                                  errlen) < 0) {
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    }
    if (dr_cb)
        rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_conf_set_opaque(conf, opaque);
    return create(RD_KAFKA_PRODUCER, conf, err, errlen);
}

rd_kafka_t *kclient_consumer_new(const sf_config *cfg, const char *cmd, char *err, size_t errlen)
{
    char client_id[64], group[160], host[64] = "host";
    snprintf(client_id, sizeof(client_id), "snakefleet-%s", cmd);
    gethostname(host, sizeof(host) - 1);
    /* Never joined (we assign), but librdkafka's consumer API wants a group. */
    snprintf(group, sizeof(group), "snakefleet-cli-%s-%s-%d-%lx", cmd, host, (int)getpid(),
             (unsigned long)time(NULL) ^ (unsigned long)clock());
    const char *defaults[] = {"client.id",
                              client_id,
                              "fetch.wait.max.ms",
                              "10",
                              "isolation.level",
                              "read_uncommitted",
                              "allow.auto.create.topics",
                              "false",
                              NULL};
    sf_kafka_settings user;
    user_settings(cfg, &user);
    rd_kafka_conf_t *conf = client_conf(SF_KAFKA_READER, &user, cfg, defaults, err, errlen);
    if (conf == NULL)
        return NULL;
    /* The reader's own, whatever [kafka] says for the supervisors: a private
     * group it never joins, and no commits to it. */
    if (sf_kafka_conf_set(conf, "group.id", group, "snakefleet", err, errlen) < 0 ||
        sf_kafka_conf_set(conf, "enable.auto.commit", "false", "snakefleet", err, errlen) < 0) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_t *rk = create(RD_KAFKA_CONSUMER, conf, err, errlen);
    if (rk)
        rd_kafka_poll_set_consumer(rk);
    return rk;
}

/* err gets "what: librdkafka's reason (last logged error)". */
static void kafka_fail(char *err, size_t errlen, const char *what, rd_kafka_resp_err_t e)
{
    char last[512];
    kclient_last_error(last, sizeof(last));
    if (last[0])
        snprintf(err, errlen, "%s: %s (last Kafka error: %s)", what, rd_kafka_err2str(e), last);
    else
        snprintf(err, errlen, "%s: %s", what, rd_kafka_err2str(e));
}

int kclient_partitions(rd_kafka_t *rk, const char *topic, int timeout_ms, char *err, size_t errlen)
{
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, timeout_ms);
    rd_kafka_topic_destroy(rkt);
    char what[400];
    if (e) {
        snprintf(what, sizeof(what), "cannot read the metadata of topic '%s' from %s", topic,
                 "the brokers");
        kafka_fail(err, errlen, what, e);
        return -1;
    }
    int n = -1;
    if (md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR)
        n = md->topics[0].partition_cnt;
    else if (md->topic_cnt == 1)
        snprintf(err, errlen, "topic '%s': %s", topic, rd_kafka_err2str(md->topics[0].err));
    else
        snprintf(err, errlen, "topic '%s': not in the metadata", topic);
    if (n == 0) {
        snprintf(err, errlen, "topic '%s' has no partitions", topic);
        n = -1;
    }
    rd_kafka_metadata_destroy(md);
    return n;
}

int kclient_watermarks(rd_kafka_t *rk, const char *topic, int n, int64_t *low, int64_t *high,
                       int timeout_ms, char *err, size_t errlen)
{
    for (int p = 0; p < n; p++) {
        rd_kafka_resp_err_t e =
            rd_kafka_query_watermark_offsets(rk, topic, p, &low[p], &high[p], timeout_ms);
        if (e) {
            char what[400];
            snprintf(what, sizeof(what), "cannot read the offsets of %s/%d", topic, p);
            kafka_fail(err, errlen, what, e);
            return -1;
        }
    }
    return 0;
}

int kclient_assign(rd_kafka_t *consumer, const char *topic, int n, const int64_t *offsets,
                   char *err, size_t errlen)
{
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(n);
    for (int p = 0; p < n; p++)
        rd_kafka_topic_partition_list_add(parts, topic, p)->offset = offsets[p];
    rd_kafka_resp_err_t e = rd_kafka_assign(consumer, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    if (e) {
        char what[400];
        snprintf(what, sizeof(what), "cannot assign the partitions of %s", topic);
        kafka_fail(err, errlen, what, e);
        return -1;
    }
    return 0;
}
