/*
 * pool_stats.c — the pool's numbers for the daemon's telemetry, /health and
 * /metrics: sf_pool_get_stats copies counters and a per-worker view out of
 * the pool (pool_internal.h), sf_pool_stats_json renders that copy. Reading
 * only: nothing here changes the pool.
 */
#include "pool_internal.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

/* By wstate (pool_internal.h); a ready worker with calls in flight shows as "busy". */
static const char *const WSTATE_NAMES[] = {"empty", "starting", "idle", "draining", "stopping"};

void sf_pool_get_stats(const sf_pool *p, sf_pool_stats *s)
{
    memset(s, 0, sizeof(*s));
    s->pool_size = p->cfg.pool_size;
    s->max_overflow = p->cfg.max_overflow;
    s->queued = p->queued;
    s->degraded = p->degraded;
    s->total_commands = p->total_commands;
    s->total_errors = p->total_errors;
    s->restarts = p->restarts;
    s->recycles = p->recycles;
    s->reloads = p->reloads;
    s->crashes = p->crashes;
    s->timeouts = p->timeouts;
    s->checkout_timeouts = p->checkout_timeouts;
    s->spawned = p->spawned;
    s->stale_retries = p->stale_retries;
    s->queue_wait = p->queue_wait;
    s->exec = p->exec;
    s->active_sessions = 0;
    for (int i = 0; i < p->nslots; i++) {
        const worker *w = &p->slots[i];
        if (w->state == W_EMPTY)
            continue;
        s->workers++;
        bool overflow = i >= p->cfg.pool_size;
        s->overflow += overflow;
        s->in_flight += w->inflight;
        if (w->state == W_STARTING)
            s->starting++;
        else if (w->inflight > 0)
            s->busy++;
        else if (w->state == W_READY)
            s->idle++;
        if ((w->state == W_READY || w->state == W_DRAINING) && !w->ping_outstanding)
            s->healthy_workers++;
        if (s->nworkers < 64) {
            sf_worker_stats *ws = &s->worker[s->nworkers++];
            snprintf(ws->id, sizeof(ws->id), "%s", w->id);
            ws->pid = (int)w->pid;
            ws->state = w->state == W_READY && w->inflight > 0 ? "busy" : WSTATE_NAMES[w->state];
            ws->overflow = overflow;
            ws->calls = w->calls;
            ws->errors = w->errors;
            ws->rss_kb = w->rss_kb ? w->rss_kb : sf_proc_rss_kb(w->pid);
            ws->max_requests = w->max_requests;
            ws->in_flight = w->inflight;
        }
    }
    s->active_sessions = p->active_sessions;
}

static json_t *hist_json(const sf_hist *h)
{
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "count", (json_int_t)h->count, "p50_us",
                     (json_int_t)sf_hist_quantile(h, 0.5), "p90_us",
                     (json_int_t)sf_hist_quantile(h, 0.9), "p99_us",
                     (json_int_t)sf_hist_quantile(h, 0.99), "max_us", (json_int_t)h->max, "mean_us",
                     (json_int_t)(h->count ? h->sum / h->count : 0));
}

json_t *sf_pool_stats_json(const sf_pool_stats *s)
{
    json_t *workers = json_array();
    for (int i = 0; i < s->nworkers; i++) {
        const sf_worker_stats *w = &s->worker[i];
        json_array_append_new(
            workers,
            json_pack("{s:s, s:i, s:s, s:b, s:I, s:I, s:I, s:I, s:i}", "id", w->id, "pid", w->pid,
                      "state", w->state, "overflow", w->overflow, "calls", (json_int_t)w->calls,
                      "errors", (json_int_t)w->errors, "rss_kb", (json_int_t)w->rss_kb,
                      "max_requests", (json_int_t)w->max_requests, "in_flight", w->in_flight));
    }
    json_t *j = json_object();
    json_object_set_new(j, "pool_size", json_integer(s->pool_size));
    json_object_set_new(j, "max_overflow", json_integer(s->max_overflow));
    json_object_set_new(j, "workers", json_integer(s->workers));
    json_object_set_new(j, "busy", json_integer(s->busy));
    json_object_set_new(j, "idle", json_integer(s->idle));
    json_object_set_new(j, "starting", json_integer(s->starting));
    json_object_set_new(j, "overflow", json_integer(s->overflow));
    json_object_set_new(j, "healthy_workers", json_integer(s->healthy_workers));
    json_object_set_new(j, "queued", json_integer(s->queued));
    json_object_set_new(j, "in_flight", json_integer(s->in_flight));
    json_object_set_new(j, "degraded", json_boolean(s->degraded));
    json_object_set_new(j, "active_sessions", json_integer((json_int_t)s->active_sessions));
    json_object_set_new(j, "total_commands", json_integer((json_int_t)s->total_commands));
    json_object_set_new(j, "total_errors", json_integer((json_int_t)s->total_errors));
    json_object_set_new(j, "restarts", json_integer((json_int_t)s->restarts));
    json_object_set_new(j, "recycles", json_integer((json_int_t)s->recycles));
    json_object_set_new(j, "reloads", json_integer((json_int_t)s->reloads));
    json_object_set_new(j, "crashes", json_integer((json_int_t)s->crashes));
    json_object_set_new(j, "timeouts", json_integer((json_int_t)s->timeouts));
    json_object_set_new(j, "checkout_timeouts", json_integer((json_int_t)s->checkout_timeouts));
    json_object_set_new(j, "spawned", json_integer((json_int_t)s->spawned));
    json_object_set_new(j, "stale_retries", json_integer((json_int_t)s->stale_retries));
    json_object_set_new(j, "queue_wait", hist_json(&s->queue_wait));
    json_object_set_new(j, "exec", hist_json(&s->exec));
    json_object_set_new(j, "per_worker", workers);
    return j;
}
