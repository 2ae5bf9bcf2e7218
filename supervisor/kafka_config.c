/* kafka_config.c — sf_config into sf_kafka_config, the Kafka layer's log into sf_log. */
#include "kafka_config.h"

#include <stdio.h>
#include <string.h>

#include "log.h"

/* Every field copied is at least as large in sf_kafka_config: nothing is cut. */
#define FITS(to, from) sizeof(((sf_kafka_config *)0)->to) >= sizeof(((sf_config *)0)->from)
_Static_assert(SF_KAFKA_MAX_SETTINGS >= SF_CONFIG_MAX_KAFKA, "[kafka] settings");
_Static_assert(sizeof(sf_kafka_setting) == sizeof(sf_kv), "a [kafka] setting");
_Static_assert(FITS(client_id, id) && FITS(group, group) && FITS(requests, requests) &&
                   FITS(replies, replies) && FITS(telemetry, telemetry_topic) && FITS(dlq, dlq) &&
                   FITS(partitioner, partitioner_name),
               "topics and names");

static void log_write(sf_kafka_log_level level, const char *event, const char *fields)
{
    sf_log_level lv = level == SF_KAFKA_LOG_ERROR  ? SF_LOG_ERROR
                      : level == SF_KAFKA_LOG_WARN ? SF_LOG_WARN
                      : level == SF_KAFKA_LOG_INFO ? SF_LOG_INFO
                                                   : SF_LOG_DEBUG;
    sf_log(lv, event, "%s", fields);
}

void sf_kafka_config_from(const sf_config *c, sf_kafka_config *out)
{
    memset(out, 0, sizeof(*out));
    for (int i = 0; i < c->nkafka; i++) {
        sf_kafka_setting *s = &out->settings.kv[out->settings.n++];
        snprintf(s->key, sizeof(s->key), "%s", c->kafka[i].key);
        snprintf(s->value, sizeof(s->value), "%s", c->kafka[i].value);
        snprintf(s->source, sizeof(s->source), "%s", c->kafka[i].source);
    }
    snprintf(out->client_id, sizeof(out->client_id), "%s", c->id);
    snprintf(out->group, sizeof(out->group), "%s", c->group);
    snprintf(out->requests, sizeof(out->requests), "%s", c->requests);
    snprintf(out->replies, sizeof(out->replies), "%s", c->replies);
    snprintf(out->telemetry, sizeof(out->telemetry), "%s", c->telemetry_topic);
    snprintf(out->dlq, sizeof(out->dlq), "%s", c->dlq);
    out->create_topics = c->create_topics;
    out->partitions = c->partitions;
    out->replication = c->replication;
    snprintf(out->partitioner, sizeof(out->partitioner), "%s", c->partitioner_name);
    out->refresh_ms = c->telemetry_interval_ms;
    out->log = (sf_kafka_log){.write = log_write, .quote = sf_log_quote};
}
