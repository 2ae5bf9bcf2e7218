/*
 * telemetry.c — what the supervisor says about itself: the telemetry record
 * produced to topics.telemetry every telemetry.interval, keyed by the
 * supervisor id (telemetry_on_tick; schemas/README.md, "Telemetry
 * snapshot"), and the point-in-time view behind /health and /metrics
 * (sf_daemon_get_stats, for http.c).
 *
 * The counters themselves are the daemon's (struct sf_daemon), counted where
 * things happen; the pool's come from sf_pool_get_stats, the lag of each
 * partition from the Kafka layer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon_internal.h"
#include "log.h"
#include "mp.h"

static void pack_hist(msgpack_packer *pk, const char *name, const sf_hist *h)
{
    sf_mp_pack_cstr(pk, name);
    msgpack_pack_map(pk, 5);
    sf_mp_pack_cstr(pk, "count");
    msgpack_pack_uint64(pk, h->count);
    sf_mp_pack_cstr(pk, "p50_us");
    msgpack_pack_uint64(pk, sf_hist_quantile(h, 0.5));
    sf_mp_pack_cstr(pk, "p90_us");
    msgpack_pack_uint64(pk, sf_hist_quantile(h, 0.9));
    sf_mp_pack_cstr(pk, "p99_us");
    msgpack_pack_uint64(pk, sf_hist_quantile(h, 0.99));
    sf_mp_pack_cstr(pk, "max_us");
    msgpack_pack_uint64(pk, h->max);
}

static void kv_u64(msgpack_packer *pk, const char *k, uint64_t v)
{
    sf_mp_pack_cstr(pk, k);
    msgpack_pack_uint64(pk, v);
}

/* The telemetry timer (and once more when the drain starts): one record to topics.telemetry. */
void telemetry_on_tick(evutil_socket_t fd, short what, void *arg)
{
    sf_daemon *d = arg;
    part_refresh_unknown_lag(d);
    sf_pool_stats *ps = malloc(sizeof(*ps));
    sf_pool_get_stats(d->pool, ps);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 30);
    kv_u64(&pk, "v", SF_SCHEMA_VERSION);
    sf_mp_pack_cstr(&pk, "supervisor");
    sf_mp_pack_cstr(&pk, d->cfg->id);
    kv_u64(&pk, "ts_ms", wall_ms());
    sessq_sweep(d, true); /* idle queues: gone */
    kv_u64(&pk, "active_sessions", sf_smap_count(d->sessions));
    kv_u64(&pk, "pool_size", (uint64_t)ps->pool_size);
    kv_u64(&pk, "total_commands", d->total_requests);
    kv_u64(&pk, "total_errors", d->total_errors);
    kv_u64(&pk, "healthy_workers", (uint64_t)ps->healthy_workers);
    kv_u64(&pk, "busy_workers", (uint64_t)ps->busy);
    kv_u64(&pk, "idle_workers", (uint64_t)ps->idle);
    kv_u64(&pk, "overflow_workers", (uint64_t)ps->overflow);
    kv_u64(&pk, "queue_depth", (uint64_t)d->queued);
    kv_u64(&pk, "in_flight", (uint64_t)(d->held - d->queued));
    kv_u64(&pk, "restarts", ps->restarts);
    kv_u64(&pk, "recycles", ps->recycles);
    kv_u64(&pk, "dlq_count", d->dlq_count);
    sf_mp_pack_cstr(&pk, "degraded");
    if (ps->degraded)
        msgpack_pack_true(&pk);
    else
        msgpack_pack_false(&pk);
    kv_u64(&pk, "held", (uint64_t)d->held);
    kv_u64(&pk, "deadline_exceeded", d->deadline_exceeded);
    kv_u64(&pk, "deduplicated", d->deduplicated);
    kv_u64(&pk, "fenced", d->fenced);
    kv_u64(&pk, "invalid", d->invalid);
    kv_u64(&pk, "poison", d->poison);
    kv_u64(&pk, "stored_sessions", d->stored_sessions);
    kv_u64(&pk, "max_sessions", d->cfg->max_sessions);
    kv_u64(&pk, "session_limit_refusals", d->session_limit_refusals);
    kv_u64(&pk, "conflicts", d->conflicts);
    kv_u64(&pk, "wrong_partition", d->wrong_partition);
    sf_mp_pack_cstr(&pk, "lag");
    msgpack_pack_map(&pk, (size_t)d->nparts);
    for (int i = 0; i < d->nparts; i++) {
        part *p = d->parts[i];
        char k[300];
        snprintf(k, sizeof(k), "%s/%d", p->topic, (int)p->partition);
        sf_mp_pack_cstr(&pk, k);
        msgpack_pack_int64(&pk, sf_kafka_lag(d->kafka, p->topic, p->partition, p->next));
    }
    sf_mp_pack_cstr(&pk, "latency");
    msgpack_pack_map(&pk, 3);
    pack_hist(&pk, "total", &d->latency);
    pack_hist(&pk, "queue_wait", &ps->queue_wait);
    pack_hist(&pk, "exec", &ps->exec);
    char err[256];
    if (sf_kafka_produce(d->kafka, d->cfg->telemetry_topic, d->cfg->id, strlen(d->cfg->id), sb.data,
                         sb.size, NULL, NULL, err, sizeof(err)) != RD_KAFKA_RESP_ERR_NO_ERROR)
        sf_warn("telemetry.produce_failed", "reason=\"%s\"", err);
    sf_info("telemetry", "held=%d queued=%d requests=%llu errors=%llu dlq=%llu workers=%d busy=%d",
            d->held, d->queued, (unsigned long long)d->total_requests,
            (unsigned long long)d->total_errors, (unsigned long long)d->dlq_count, ps->workers,
            ps->busy);
    msgpack_sbuffer_destroy(&sb);
    free(ps);
}

void sf_daemon_get_stats(sf_daemon *d, sf_daemon_stats *o)
{
    memset(o, 0, sizeof(*o));
    o->id = d->cfg->id;
    o->draining = d->shutting_down;
    o->redis_up = !d->redis_down && sf_store_connected(d->store);
    o->partitions = d->nparts;
    o->held = d->held;
    o->queued = d->queued;
    o->requests = d->total_requests;
    o->errors = d->total_errors;
    o->dlq = d->dlq_count;
    o->invalid = d->invalid;
    o->deadline_exceeded = d->deadline_exceeded;
    o->poison = d->poison;
    o->deduplicated = d->deduplicated;
    o->fenced = d->fenced;
    o->conflicts = d->conflicts;
    o->wrong_partition = d->wrong_partition;
    o->latency = d->latency;
    sf_pool_get_stats(d->pool, &o->pool);
    o->degraded = o->pool.degraded;
    for (int i = 0; i < d->nparts && o->nlag < 64; i++) {
        part *p = d->parts[i];
        snprintf(o->lag[o->nlag].name, sizeof(o->lag[0].name), "%s/%d", p->topic,
                 (int)p->partition);
        o->lag[o->nlag++].lag = sf_kafka_lag(d->kafka, p->topic, p->partition, p->next);
    }
}
