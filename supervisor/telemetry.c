/*
 * telemetry.c — what the supervisor says about itself: the snapshot of its
 * stats (sf_snapshot_take; snapshot.h) behind /health and /metrics
 * (snapshot.c) and behind the telemetry record produced to topics.telemetry
 * every telemetry.interval, keyed by the supervisor id (telemetry_on_tick;
 * schemas/README.md, "Telemetry snapshot"; packed by
 * schemas/codec/telemetry.c). Which stats there are, and their names, is the
 * list in schemas/codec/stats.h.
 *
 * The counters themselves are the daemon's (struct sf_daemon), counted where
 * things happen; the pool's come from sf_pool_get_stats, the lag of each
 * partition from the Kafka layer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "daemon_internal.h"
#include "log.h"
#include "mp.h"
#include "snapshot.h"
#include "telemetry.h"

static sf_latency latency_of(const sf_hist *h)
{
    return (sf_latency){.count = h->count,
                        .sum_us = h->sum,
                        .p50_us = sf_hist_quantile(h, 0.5),
                        .p90_us = sf_hist_quantile(h, 0.9),
                        .p99_us = sf_hist_quantile(h, 0.99),
                        .max_us = h->max};
}

_Static_assert(SF_STATS_MAX_PARTITIONS >= MAX_PARTS, "a snapshot holds every partition's lag");

/* One assignment per stat of the list (schemas/codec/stats.h), in its order. */
void sf_snapshot_take(sf_daemon *d, sf_snapshot *s)
{
    s->supervisor = d->cfg->id;
    s->draining = d->shutting_down;
    sf_pool_get_stats(d->pool, &s->pool);
    const sf_pool_stats *ps = &s->pool;
    sf_stats *st = &s->stats;
    st->active_sessions = sf_smap_count(d->sessions);
    st->pool_size = (uint64_t)ps->pool_size;
    st->requests = d->total_requests;
    st->errors = d->total_errors;
    st->healthy_workers = (uint64_t)ps->healthy_workers;
    st->busy_workers = (uint64_t)ps->busy;
    st->idle_workers = (uint64_t)ps->idle;
    st->overflow_workers = (uint64_t)ps->overflow;
    st->queued = (uint64_t)d->queued;
    st->in_flight = (uint64_t)(d->held - d->queued);
    st->restarts = ps->restarts;
    st->recycles = ps->recycles;
    st->dlq = d->dlq_count;
    st->degraded = ps->degraded;
    st->held = (uint64_t)d->held;
    st->deadline_exceeded = d->deadline_exceeded;
    st->deduplicated = d->deduplicated;
    st->fenced = d->fenced;
    st->invalid = d->invalid;
    st->poison = d->poison;
    st->stored_sessions = d->stored_sessions;
    st->max_sessions = d->cfg->max_sessions;
    st->session_limit_refusals = d->session_limit_refusals;
    st->conflicts = d->conflicts;
    st->wrong_partition = d->wrong_partition;
    st->partitions = (uint64_t)d->nparts;
    st->redis_up = !d->redis_down;
    for (int i = 0; i < d->nstores; i++)
        st->redis_up = st->redis_up && sf_store_connected(d->stores[i]);
    st->workers = (uint64_t)ps->workers;
    st->call_timeouts = ps->timeouts;
    st->checkout_timeouts = ps->checkout_timeouts;
    sf_cache_stats cs = sf_cache_get_stats(d->cache);
    st->state_cache_hits = cs.hits;
    st->state_cache_misses = cs.misses;
    st->state_cache_bytes = (uint64_t)cs.bytes;
    st->lag.n = 0;
    for (int i = 0; i < d->nparts && st->lag.n < SF_STATS_MAX_PARTITIONS; i++) {
        part *p = d->parts[i];
        st->lag.of[st->lag.n++] =
            (sf_partition_lag){.topic = p->topic,
                               .partition = p->partition,
                               .lag = sf_kafka_lag(d->kafka, p->topic, p->partition, p->next)};
    }
    st->latency_total = latency_of(&d->latency);
    st->queue_wait = latency_of(&ps->queue_wait);
    st->exec = latency_of(&ps->exec);
}

/* The telemetry timer (and once more when the drain starts): one record to topics.telemetry. */
void telemetry_on_tick(evutil_socket_t fd, short what, void *arg)
{
    sf_daemon *d = arg;
    part_refresh_unknown_lag(d);
    sessq_sweep(d, true); /* idle queues: gone */
    sf_snapshot *s = sf_xmalloc(sizeof(*s));
    sf_snapshot_take(d, s);
    sf_telemetry t = {.supervisor = d->cfg->id, .ts_ms = wall_ms(), .stats = &s->stats};
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    sf_telemetry_pack(&pk, &t);
    char err[256];
    if (sf_kafka_produce(d->kafka, d->cfg->telemetry_topic, d->cfg->id, strlen(d->cfg->id), sb.data,
                         sb.size, NULL, NULL, err, sizeof(err)) != RD_KAFKA_RESP_ERR_NO_ERROR)
        sf_warn("telemetry.produce_failed", "reason=\"%s\"", err);
    sf_info("telemetry", "held=%d queued=%d requests=%llu errors=%llu dlq=%llu workers=%d busy=%d",
            d->held, d->queued, (unsigned long long)d->total_requests,
            (unsigned long long)d->total_errors, (unsigned long long)d->dlq_count, s->pool.workers,
            s->pool.busy);
    msgpack_sbuffer_destroy(&sb);
    free(s);
}
