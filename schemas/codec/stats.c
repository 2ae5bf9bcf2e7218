/* stats.c — the list of stats as a table the renderers walk; see stats.h. */
#include "stats.h"

#include <stdio.h>

const sf_stat sf_stats_list[] = {
#define SF_STAT_ROW(kind, field, telemetry, health, metric, help)                                  \
    {SF_STAT_##kind, #field, telemetry, health, metric, help, offsetof(sf_stats, field)},
    SF_STATS(SF_STAT_ROW)
#undef SF_STAT_ROW
};
const size_t sf_stats_count = sizeof(sf_stats_list) / sizeof(sf_stats_list[0]);

const sf_latency_field sf_latency_fields[] = {
    {"count", offsetof(sf_latency, count)},   {"p50_us", offsetof(sf_latency, p50_us)},
    {"p90_us", offsetof(sf_latency, p90_us)}, {"p99_us", offsetof(sf_latency, p99_us)},
    {"max_us", offsetof(sf_latency, max_us)},
};
const size_t sf_latency_nfields = sizeof(sf_latency_fields) / sizeof(sf_latency_fields[0]);

uint64_t sf_latency_value(const sf_latency *h, const sf_latency_field *f)
{
    return *(const uint64_t *)((const char *)h + f->offset);
}

const char *sf_stat_prometheus_type(const sf_stat *st)
{
    switch (st->kind) {
    case SF_STAT_COUNTER:
        return "counter";
    case SF_STAT_LATENCY:
        return "summary";
    case SF_STAT_GAUGE:
    case SF_STAT_FLAG:
    case SF_STAT_LAG:
        break;
    }
    return "gauge";
}

uint64_t sf_stat_number(const sf_stats *s, const sf_stat *st)
{
    const char *at = (const char *)s + st->offset;
    if (st->kind == SF_STAT_FLAG)
        return *(const bool *)at ? 1 : 0;
    return *(const uint64_t *)at;
}

const sf_latency *sf_stat_latency(const sf_stats *s, const sf_stat *st)
{
    return (const sf_latency *)((const char *)s + st->offset);
}

const sf_lags *sf_stat_lags(const sf_stats *s, const sf_stat *st)
{
    return (const sf_lags *)((const char *)s + st->offset);
}

size_t sf_stats_count_kind(sf_stat_kind kind)
{
    size_t n = 0;
    for (size_t i = 0; i < sf_stats_count; i++)
        n += sf_stats_list[i].kind == kind;
    return n;
}

int sf_partition_lag_name(char *buf, size_t cap, const sf_partition_lag *l)
{
    return snprintf(buf, cap, "%s/%d", l->topic, (int)l->partition);
}
