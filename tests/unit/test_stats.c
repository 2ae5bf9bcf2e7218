/*
 * test_stats.c — the one list of stats (schemas/codec/stats.h) and its three
 * renderings: the telemetry record (schemas/codec/telemetry.c), GET /health
 * and GET /metrics (supervisor/snapshot.c). All three are built from one
 * snapshot in which every stat has a value of its own; each must carry every
 * stat of the list, under the name the list gives it, with that value — and
 * nothing the list does not name.
 */
#include <criterion/criterion.h>
#include <event2/buffer.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "snapshot.h"
#include "telemetry.h"

/* ---------------------------------------------------------------- one snapshot, three renderings
 */

/* Every number of the snapshot differs from every other, so a stat rendered from the wrong field
 * shows. */
static uint64_t number_for(size_t row)
{
    return 1000 + 10 * (uint64_t)row;
}

static sf_snapshot *make_snapshot(void)
{
    sf_snapshot *s = calloc(1, sizeof(*s));
    s->supervisor = "host-a:1234";
    for (size_t i = 0; i < sf_stats_count; i++) {
        const sf_stat *st = &sf_stats_list[i];
        char *at = (char *)&s->stats + st->offset;
        switch (st->kind) {
        case SF_STAT_COUNTER:
        case SF_STAT_GAUGE:
            *(uint64_t *)at = number_for(i);
            break;
        case SF_STAT_FLAG:
            *(bool *)at = true;
            break;
        case SF_STAT_LATENCY: {
            sf_latency *h = (sf_latency *)at;
            *h = (sf_latency){.count = number_for(i),
                              .sum_us = 2 * number_for(i),
                              .p50_us = number_for(i) + 1,
                              .p90_us = number_for(i) + 2,
                              .p99_us = number_for(i) + 3,
                              .max_us = number_for(i) + 4};
            break;
        }
        case SF_STAT_LAG: {
            sf_lags *l = (sf_lags *)at;
            l->n = 3;
            l->of[0] = (sf_partition_lag){"snakefleet.requests", 0, 7};
            l->of[1] = (sf_partition_lag){"snakefleet.requests", 11, 0};
            l->of[2] = (sf_partition_lag){"other", 2, -1}; /* not known yet */
            break;
        }
        }
    }
    return s;
}

static json_t *render_telemetry(const sf_snapshot *s)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    sf_telemetry t = {.supervisor = s->supervisor, .ts_ms = 1700000000000, .stats = &s->stats};
    sf_telemetry_pack(&pk, &t);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    sf_err err;
    cr_assert_eq(sf_telemetry_decode(&u, sb.data, sb.size, &err), 0,
                 "the telemetry record does not validate: %s", err.message);
    json_t *j = sf_mp_to_json(&u.data);
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
    return j;
}

static char *render_metrics(const sf_snapshot *s)
{
    struct evbuffer *b = evbuffer_new();
    sf_snapshot_metrics(b, s);
    size_t n = evbuffer_get_length(b);
    char *text = malloc(n + 1);
    evbuffer_remove(b, text, n);
    text[n] = '\0';
    evbuffer_free(b);
    return text;
}

/* ---------------------------------------------------------------- JSON renderings */

static void expect_number(json_t *j, const char *key, uint64_t want, const char *where)
{
    json_t *v = json_object_get(j, key);
    cr_expect(json_is_integer(v), "%s lacks '%s'", where, key);
    if (json_is_integer(v))
        cr_expect_eq((uint64_t)json_integer_value(v), want, "%s: '%s' is %lld, want %llu", where,
                     key, (long long)json_integer_value(v), (unsigned long long)want);
}

/* One stat in telemetry or /health (root: the whole record; latency: its "latency" map). */
static void expect_stat_json(json_t *root, const sf_snapshot *s, const sf_stat *st, const char *key,
                             const char *where)
{
    switch (st->kind) {
    case SF_STAT_COUNTER:
    case SF_STAT_GAUGE:
        expect_number(root, key, sf_stat_number(&s->stats, st), where);
        break;
    case SF_STAT_FLAG: {
        json_t *v = json_object_get(root, key);
        cr_expect(json_is_boolean(v), "%s lacks the flag '%s'", where, key);
        cr_expect_eq(json_is_true(v), sf_stat_number(&s->stats, st) == 1, "%s: '%s'", where, key);
        break;
    }
    case SF_STAT_LATENCY: {
        json_t *h = json_object_get(json_object_get(root, "latency"), key);
        cr_expect(json_is_object(h), "%s lacks latency '%s'", where, key);
        const sf_latency *want = sf_stat_latency(&s->stats, st);
        for (size_t k = 0; k < sf_latency_nfields; k++)
            expect_number(h, sf_latency_fields[k].key,
                          sf_latency_value(want, &sf_latency_fields[k]), where);
        cr_expect_eq(json_object_size(h), sf_latency_nfields, "%s: latency '%s' has %zu keys",
                     where, key, json_object_size(h));
        break;
    }
    case SF_STAT_LAG: {
        json_t *m = json_object_get(root, key);
        cr_expect(json_is_object(m), "%s lacks '%s'", where, key);
        const sf_lags *l = sf_stat_lags(&s->stats, st);
        cr_expect_eq(json_object_size(m), l->n, "%s: '%s' has %zu partitions, want %zu", where, key,
                     json_object_size(m), l->n);
        for (size_t k = 0; k < l->n; k++) {
            char name[300];
            sf_partition_lag_name(name, sizeof(name), &l->of[k]);
            json_t *v = json_object_get(m, name);
            cr_expect(json_is_integer(v) && json_integer_value(v) == l->of[k].lag, "%s: '%s' of %s",
                      where, key, name);
        }
        break;
    }
    }
}

/* Whether key names a row of the list in a rendering (telemetry or health), latency rows apart. */
static bool listed(const char *key, bool telemetry, bool latency)
{
    for (size_t i = 0; i < sf_stats_count; i++) {
        const sf_stat *st = &sf_stats_list[i];
        if ((st->kind == SF_STAT_LATENCY) == latency &&
            strcmp(telemetry ? st->telemetry : st->health, key) == 0)
            return true;
    }
    return false;
}

/* Keys of a JSON rendering the list does not name, other than the ones it may carry anyway. */
static void expect_nothing_unlisted(json_t *root, bool telemetry, const char *const *own,
                                    const char *where)
{
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v)
    {
        bool ok = listed(key, telemetry, false);
        for (const char *const *o = own; *o && !ok; o++)
            ok = strcmp(*o, key) == 0;
        cr_expect(ok, "%s carries '%s', which the list of stats does not name", where, key);
    }
    json_object_foreach(json_object_get(root, "latency"), key, v) cr_expect(
        listed(key, telemetry, true), "%s carries latency '%s', not in the list", where, key);
}

Test(stats, telemetry_carries_every_stat_under_its_telemetry_key)
{
    sf_snapshot *s = make_snapshot();
    json_t *t = render_telemetry(s);
    for (size_t i = 0; i < sf_stats_count; i++)
        expect_stat_json(t, s, &sf_stats_list[i], sf_stats_list[i].telemetry, "telemetry");
    static const char *const own[] = {"v", "supervisor", "ts_ms", "latency", NULL};
    expect_nothing_unlisted(t, true, own, "telemetry");
    json_decref(t);
    free(s);
}

Test(stats, health_carries_every_stat_under_its_health_key)
{
    sf_snapshot *s = make_snapshot();
    json_t *h = sf_snapshot_health_json(s);
    for (size_t i = 0; i < sf_stats_count; i++)
        expect_stat_json(h, s, &sf_stats_list[i], sf_stats_list[i].health, "/health");
    static const char *const own[] = {"status", "supervisor", "pool", "latency", NULL};
    expect_nothing_unlisted(h, false, own, "/health");
    json_decref(h);
    free(s);
}

/* ---------------------------------------------------------------- /metrics */

static bool has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)) != NULL; p += n)
        if ((p == text || p[-1] == '\n') && p[n] == '\n')
            return true;
    return false;
}

static void expect_line(const char *text, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void expect_line(const char *text, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    cr_expect(has_line(text, line), "/metrics lacks the line \"%s\"", line);
}

Test(stats, metrics_carry_every_stat_under_its_metric_name)
{
    sf_snapshot *s = make_snapshot();
    char *text = render_metrics(s);
    for (size_t i = 0; i < sf_stats_count; i++) {
        const sf_stat *st = &sf_stats_list[i];
        expect_line(text, "# HELP %s %s", st->metric, st->help);
        expect_line(text, "# TYPE %s %s", st->metric, sf_stat_prometheus_type(st));
        switch (st->kind) {
        case SF_STAT_COUNTER:
        case SF_STAT_GAUGE:
        case SF_STAT_FLAG:
            expect_line(text, "%s %llu", st->metric,
                        (unsigned long long)sf_stat_number(&s->stats, st));
            break;
        case SF_STAT_LATENCY: {
            const sf_latency *h = sf_stat_latency(&s->stats, st);
            expect_line(text, "%s{quantile=\"0.5\"} %.6f", st->metric, (double)h->p50_us / 1e6);
            expect_line(text, "%s{quantile=\"0.9\"} %.6f", st->metric, (double)h->p90_us / 1e6);
            expect_line(text, "%s{quantile=\"0.99\"} %.6f", st->metric, (double)h->p99_us / 1e6);
            expect_line(text, "%s_sum %.6f", st->metric, (double)h->sum_us / 1e6);
            expect_line(text, "%s_count %llu", st->metric, (unsigned long long)h->count);
            break;
        }
        case SF_STAT_LAG: {
            const sf_lags *l = sf_stat_lags(&s->stats, st);
            for (size_t k = 0; k < l->n; k++) {
                char name[300];
                sf_partition_lag_name(name, sizeof(name), &l->of[k]);
                char sample[400];
                snprintf(sample, sizeof(sample), "%s{partition=\"%s\"}", st->metric, name);
                if (l->of[k].lag >= 0)
                    expect_line(text, "%s %lld", sample, (long long)l->of[k].lag);
                else
                    cr_expect(strstr(text, sample) == NULL,
                              "/metrics shows %s, whose lag is not known", sample);
            }
            break;
        }
        }
    }
    free(text);
    free(s);
}

/* Every metric /metrics declares, and every sample it writes, is a row of the list. */
Test(stats, metrics_carry_nothing_the_list_does_not_name)
{
    sf_snapshot *s = make_snapshot();
    char *text = render_metrics(s);
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        char name[256];
        if (strncmp(line, "# HELP ", 7) == 0 || strncmp(line, "# TYPE ", 7) == 0)
            sscanf(line + 7, "%255s", name);
        else
            sscanf(line, "%255[^{ ]", name);
        size_t n = strlen(name);
        bool ok = false;
        for (size_t i = 0; i < sf_stats_count && !ok; i++) {
            const sf_stat *st = &sf_stats_list[i];
            size_t m = strlen(st->metric);
            ok = strcmp(name, st->metric) == 0 ||
                 (st->kind == SF_STAT_LATENCY && n > m && strncmp(name, st->metric, m) == 0 &&
                  (strcmp(name + m, "_sum") == 0 || strcmp(name + m, "_count") == 0));
        }
        cr_expect(ok, "/metrics writes '%s' (line \"%s\"), which the list does not name", name,
                  line);
    }
    free(text);
    free(s);
}

/* ---------------------------------------------------------------- the list itself */

/* Each name is one stat's only: no two rows share a telemetry key, a /health key or a metric. */
Test(stats, every_name_names_one_stat)
{
    for (size_t i = 0; i < sf_stats_count; i++) {
        const sf_stat *a = &sf_stats_list[i];
        cr_expect(strncmp(a->metric, "snakefleet_", 11) == 0, "%s: metric %s has no prefix",
                  a->field, a->metric);
        cr_expect(a->kind != SF_STAT_COUNTER ||
                      strcmp(a->metric + strlen(a->metric) - 6, "_total") == 0,
                  "%s: counter %s does not end in _total", a->field, a->metric);
        for (size_t k = i + 1; k < sf_stats_count; k++) {
            const sf_stat *b = &sf_stats_list[k];
            bool same_map = (a->kind == SF_STAT_LATENCY) == (b->kind == SF_STAT_LATENCY);
            cr_expect(!same_map || strcmp(a->telemetry, b->telemetry) != 0,
                      "telemetry key %s twice", a->telemetry);
            cr_expect(!same_map || strcmp(a->health, b->health) != 0, "/health key %s twice",
                      a->health);
            cr_expect(strcmp(a->metric, b->metric) != 0, "metric %s twice", a->metric);
        }
    }
}

/* The names dashboards, tests and `snakefleet status` read today. */
Test(stats, the_names_in_use_stay)
{
    static const struct {
        const char *field, *telemetry, *health, *metric;
    } kept[] = {
        {"requests", "total_commands", "requests", "snakefleet_requests_total"},
        {"errors", "total_errors", "errors", "snakefleet_errors_total"},
        {"dlq", "dlq_count", "dlq", "snakefleet_dlq_total"},
        {"queued", "queue_depth", "queued", "snakefleet_queue_depth"},
        {"redis_up", "redis_up", "redis", "snakefleet_redis_up"},
        {"held", "held", "held", "snakefleet_held"},
        {"partitions", "partitions", "partitions", "snakefleet_partitions"},
        {"wrong_partition", "wrong_partition", "wrong_partition",
         "snakefleet_wrong_partition_total"},
        {"healthy_workers", "healthy_workers", "healthy_workers", "snakefleet_healthy_workers"},
        {"pool_size", "pool_size", "pool_size", "snakefleet_pool_size"},
        {"restarts", "restarts", "restarts", "snakefleet_worker_restarts_total"},
        {"degraded", "degraded", "degraded", "snakefleet_pool_degraded"},
        {"latency_total", "total", "total", "snakefleet_request_seconds"},
        {"lag", "lag", "lag", "snakefleet_consumer_lag"},
    };
    for (size_t k = 0; k < sizeof(kept) / sizeof(kept[0]); k++) {
        const sf_stat *st = NULL;
        for (size_t i = 0; i < sf_stats_count; i++)
            if (strcmp(sf_stats_list[i].field, kept[k].field) == 0)
                st = &sf_stats_list[i];
        cr_assert(st != NULL, "no stat %s", kept[k].field);
        cr_expect_str_eq(st->telemetry, kept[k].telemetry);
        cr_expect_str_eq(st->health, kept[k].health);
        cr_expect_str_eq(st->metric, kept[k].metric);
    }
}

/* ---------------------------------------------------------------- /health's status */

Test(stats, health_status_says_why_it_is_not_healthy)
{
    sf_snapshot *s = make_snapshot();
    s->stats.redis_up = true;
    s->stats.degraded = false;
    cr_expect_str_eq(sf_snapshot_health_status(s), "healthy");
    s->stats.degraded = true;
    cr_expect_str_eq(sf_snapshot_health_status(s), "degraded");
    s->stats.redis_up = false;
    cr_expect_str_eq(sf_snapshot_health_status(s), "redis_unavailable");
    s->draining = true;
    cr_expect_str_eq(sf_snapshot_health_status(s), "draining");
    json_t *h = sf_snapshot_health_json(s);
    cr_expect_str_eq(json_string_value(json_object_get(h, "status")), "draining");
    cr_expect_str_eq(json_string_value(json_object_get(h, "supervisor")), "host-a:1234");
    cr_expect(json_is_object(json_object_get(h, "pool")));
    json_decref(h);
    free(s);
}
