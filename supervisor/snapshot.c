/*
 * snapshot.c — /health and /metrics from a snapshot; see snapshot.h.
 *
 * Both walk the list of stats (schemas/codec/stats.h) and name nothing of
 * their own but /health's status, supervisor and pool: a stat reaches
 * operators by being listed there.
 */
#include "snapshot.h"

/* ---------------------------------------------------------------- /health */

const char *sf_snapshot_health_status(const sf_snapshot *s)
{
    if (s->draining)
        return "draining";
    if (!s->stats.redis_up)
        return "redis_unavailable";
    if (s->stats.degraded)
        return "degraded";
    return "healthy";
}

static json_t *latency_json(const sf_latency *h)
{
    json_t *j = json_object();
    for (size_t i = 0; i < sf_latency_nfields; i++)
        json_object_set_new(j, sf_latency_fields[i].key,
                            json_integer((json_int_t)sf_latency_value(h, &sf_latency_fields[i])));
    return j;
}

static json_t *lags_json(const sf_lags *l)
{
    json_t *j = json_object();
    for (size_t i = 0; i < l->n; i++) {
        char name[300];
        sf_partition_lag_name(name, sizeof(name), &l->of[i]);
        json_object_set_new(j, name, json_integer((json_int_t)l->of[i].lag));
    }
    return j;
}

json_t *sf_snapshot_health_json(const sf_snapshot *s)
{
    json_t *j = json_object();
    json_object_set_new(j, "status", json_string(sf_snapshot_health_status(s)));
    json_object_set_new(j, "supervisor", json_string(s->supervisor));
    json_t *latency = NULL;
    for (size_t i = 0; i < sf_stats_count; i++) {
        const sf_stat *st = &sf_stats_list[i];
        switch (st->kind) {
        case SF_STAT_COUNTER:
        case SF_STAT_GAUGE:
            json_object_set_new(j, st->health,
                                json_integer((json_int_t)sf_stat_number(&s->stats, st)));
            break;
        case SF_STAT_FLAG:
            json_object_set_new(j, st->health, json_boolean(sf_stat_number(&s->stats, st)));
            break;
        case SF_STAT_LAG:
            json_object_set_new(j, st->health, lags_json(sf_stat_lags(&s->stats, st)));
            break;
        case SF_STAT_LATENCY:
            if (latency == NULL)
                latency = json_object();
            json_object_set_new(latency, st->health, latency_json(sf_stat_latency(&s->stats, st)));
            break;
        }
    }
    if (latency)
        json_object_set_new(j, "latency", latency);
    json_object_set_new(j, "pool", sf_pool_stats_json(&s->pool));
    return j;
}

/* ---------------------------------------------------------------- /metrics */

static void metric_head(struct evbuffer *b, const sf_stat *st)
{
    evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", st->metric, st->help, st->metric,
                        sf_stat_prometheus_type(st));
}

/* A summary's quantiles, with where each is in sf_latency. */
static const struct {
    const char *label;
    size_t offset;
} QUANTILES[] = {
    {"0.5", offsetof(sf_latency, p50_us)},
    {"0.9", offsetof(sf_latency, p90_us)},
    {"0.99", offsetof(sf_latency, p99_us)},
};

static void summary(struct evbuffer *b, const char *name, const sf_latency *h)
{
    for (size_t i = 0; i < sizeof(QUANTILES) / sizeof(QUANTILES[0]); i++) {
        uint64_t us = *(const uint64_t *)((const char *)h + QUANTILES[i].offset);
        evbuffer_add_printf(b, "%s{quantile=\"%s\"} %.6f\n", name, QUANTILES[i].label,
                            (double)us / 1e6);
    }
    evbuffer_add_printf(b, "%s_sum %.6f\n%s_count %llu\n", name, (double)h->sum_us / 1e6, name,
                        (unsigned long long)h->count);
}

/* Partitions whose lag is not known yet are left out (no sample rather than a wrong one). */
static void lags(struct evbuffer *b, const char *name, const sf_lags *l)
{
    for (size_t i = 0; i < l->n; i++) {
        if (l->of[i].lag < 0)
            continue;
        char partition[300];
        sf_partition_lag_name(partition, sizeof(partition), &l->of[i]);
        evbuffer_add_printf(b, "%s{partition=\"%s\"} %lld\n", name, partition,
                            (long long)l->of[i].lag);
    }
}

void sf_snapshot_metrics(struct evbuffer *b, const sf_snapshot *s)
{
    for (size_t i = 0; i < sf_stats_count; i++) {
        const sf_stat *st = &sf_stats_list[i];
        metric_head(b, st);
        switch (st->kind) {
        case SF_STAT_COUNTER:
        case SF_STAT_GAUGE:
        case SF_STAT_FLAG:
            evbuffer_add_printf(b, "%s %.17g\n", st->metric, (double)sf_stat_number(&s->stats, st));
            break;
        case SF_STAT_LATENCY:
            summary(b, st->metric, sf_stat_latency(&s->stats, st));
            break;
        case SF_STAT_LAG:
            lags(b, st->metric, sf_stat_lags(&s->stats, st));
            break;
        }
    }
}
