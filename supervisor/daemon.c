/*
 * daemon.c — how snakefleet-supervisor is put together: what sf_daemon_new
 * builds and starts, the end-of-turn step, the drain (sf_daemon_shutdown)
 * and sf_daemon_free; and below, every event source wired into the one
 * libevent loop, with what each does. This is the file to open first.
 *
 * The request path lives in a file per concern, each read top to bottom in
 * the order a request meets it; what they share is daemon_internal.h (part,
 * job, sessq, struct sf_daemon):
 *   jobs.c        the life of one request: consumed, claimed, run,
 *                 committed, replied, done (its offset finished)
 *   partitions.c  assignment, the lease (fencing epoch), the routing check,
 *                 backpressure, Redis down, lag, revocation
 *   sessions.c    one FIFO per session: a session's requests one at a time
 *   ops.c         one handler per op: Redis reads, a pool call, Redis writes
 *   replies.c     replies, error replies, DLQ records, the producer, delivery
 *   telemetry.c   the telemetry record; the stats behind /health, /metrics
 *   ports.h       what the request path asks of the outside world (pool
 *                 submit, store claim and commit, produce, offset store):
 *                 d->ports, the real functions here, fakes in test_jobs.c
 *
 * One execute_program, file by file: jobs.c job_on_message (consumed;
 * partitions.c part_refuse_misrouted, part_hold_for_lease until on_lease) →
 * sessions.c sessq_push, sessq_run → jobs.c job_run, claim_job, on_claimed →
 * ops.c op_done_execute_read → the pool → done_execute_pool → jobs.c
 * job_commit_reply, on_committed → replies.c reply_emit, produce → Kafka →
 * reply_on_delivery → jobs.c job_end: the offset is finished.
 *
 * Every event source of the loop:
 *
 *  source                 registered in       what its callback does
 *  ---------------------  ------------------  -----------------------------------------------
 *  Kafka consumer queue   consumer/kafka.c    a pipe librdkafka writes to when messages or a
 *  (fd)                   on_consumer_ready   rebalance wait: up to a batch of messages a turn
 *                                             → jobs.c job_on_message; an assignment or a
 *                                             revocation → partitions.c part_on_assign,
 *                                             part_on_revoke; the group's commits →
 *                                             part_on_committed (reply records may go)
 *  Kafka keepalive        consumer/kafka.c    polls the consumer once a second, so an idle
 *  (timer, 1 s)           on_keepalive        member stays in its group (max.poll.interval.ms)
 *  partition counts       consumer/kafka.c    the request topics' partition counts, for the
 *  (timer)                on_counts_timer     routing check (partitions.c misrouted_to)
 *  Kafka producer queue   consumer/kafka.c    delivery reports → replies.c reply_on_delivery
 *  (fd)                   on_producer_ready   (telemetry records have none to act on)
 *  worker pipes (fds,     supervisor/         frames from the worker (ready, result, pong) →
 *  3 per worker)          pool_worker.c       the call's callback: ops.c done_*; the rest of a
 *                                             write that did not fit; stderr lines, logged
 *  worker timer           pool_worker.c       startup, request timeout (the worker is killed:
 *  (timer, per worker)    on_worker_timer     `timeout`), stop escalation
 *  SIGCHLD (signal)       pool.c on_sigchld   reaps workers; a crash fails its calls with
 *                                             worker_crashed (ops.c retry_dlq_or_answer)
 *  pool ticks (timers)    pool.c on_maint,    checkout timeouts, overflow reaping, respawns
 *                         on_health           with backoff, RSS, rolling reload; health pings
 *  pool deferred          pool.c              calls failed from the loop, never from inside
 *  (activated)            pool_on_defer       sf_pool_submit
 *  the zygote (fd,        zygote.c            its stderr, logged; SIGKILL if a stop takes
 *  timer)                 on_zygote_stderr,   over 2 s (its control socket is used
 *                         on_zygote_kill      synchronously, not from the loop)
 *  Redis (fd)             store_link.c,       replies → every store callback (partitions.c
 *                         hiredis' libevent   on_lease; jobs.c on_claimed, on_committed,
 *                         adapter (redis-     on_owed; ops.c done_*); the link up or down →
 *                         LibeventAttach)     partitions.c part_on_store_health
 *  Redis reconnect        store_link.c        connects again, backing off to 2 s
 *  (timer)                on_reconnect
 *  telemetry (timer)      here                telemetry.interval → telemetry.c
 *                                             telemetry_on_tick
 *  revoke timeout         here                supervisor.revoke_timeout → partitions.c
 *  (timer)                                    part_on_revoke_timeout
 *  lease retry (timer)    here                200 ms after a failed lease → partitions.c
 *                                             part_on_lease_retry
 *  unsent retry (timer)   here                50 ms while the producer's queue is full →
 *                                             replies.c reply_on_unsent
 *  a job's retry (timer,  jobs.c              the job starts over: Redis unavailable (250 ms),
 *  per job)                                   its id claimed elsewhere (100 ms), a conflict (a
 *                                             doubling pause) → on_retry; an owed answer
 *                                             written again (250 ms) → on_owed_retry
 *  end of turn            here                the pool's flush, then the store's: end_of_turn
 *  (activated)                                (their own flush events stay idle here)
 *  drain (timer, 20 ms)   here, from          once nothing is held or the deadline passed:
 *                         sf_daemon_shutdown  commit, leave the group, stop the pool (on_drain)
 *  SIGTERM, SIGINT,       supervisor/main.c   SIGTERM, SIGINT → sf_daemon_shutdown (a second
 *  SIGHUP (signals)                           one: exit at once); SIGHUP → sf_daemon_reload
 *  HTTP (fd)              http.c (evhttp)     GET /health, /metrics → telemetry.c
 *                                             sf_snapshot_take (supervisor.http_listen)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon_internal.h"
#include "alloc.h"
#include "kafka_config.h"
#include "log.h"

/* ---------------------------------------------------------------- the end of a loop turn */

/*
 * The end of a loop turn, in the manner of Redis's beforeSleep: what the
 * turn's callbacks asked of the pool and of the store goes out together, once
 * they have run, in this order:
 *   1. the pool: the calls submitted this turn are written to their workers,
 *      one writev per worker (sf_pool_flush);
 *   2. the store: the claims and the commits asked for this turn go to Redis,
 *      one script call each (sf_store_flush).
 * Workers first: a worker starts on its call the moment the write lands, and
 * the call is the long part of a request, while the store's step only hands
 * the scripts to hiredis, which sends them once Redis' socket is writable.
 * Neither step waits for the other, so the order is about latency, not about
 * correctness. A callback either step runs at once (a batch for a Redis that
 * is not connected is answered `unavailable` on the spot) may ask for more;
 * that wakes this step again, and it runs again later in the same turn.
 *
 * The pool and the store wake it (wake_end_of_turn, given to
 * sf_pool_set_turn_end and sf_store_set_turn_end) at the turn's first submit,
 * claim or commit. libevent queues it behind the callbacks already due, and
 * all of the turn's I/O is due before the first of them runs: so it runs once
 * they are done, before the loop waits again.
 */
static void end_of_turn(evutil_socket_t fd, short what, void *arg)
{
    sf_daemon *d = arg;
    sf_pool_flush(d->pool);
    for (int i = 0; i < d->nstores; i++)
        sf_store_flush(d->stores[i]);
}

static void wake_end_of_turn(void *arg)
{
    sf_daemon *d = arg;
    event_active(d->ev_end_of_turn, EV_TIMEOUT, 0);
}

/* ---------------------------------------------------------------- build, start */

static int daemon_start(sf_daemon *d, char *err, size_t errlen);

const sf_daemon_ports sf_daemon_real_ports = {.pool_submit = sf_pool_submit,
                                              .store_claim = sf_store_claim,
                                              .store_commit = sf_store_commit,
                                              .store_restore_epoch = sf_store_restore_epoch,
                                              .store_end_session = sf_store_end_session,
                                              .store_delete_program = sf_store_delete_program,
                                              .kafka_produce = sf_kafka_produce,
                                              .kafka_store_offset = sf_kafka_store_offset};

/* The daemon's own state, timers and limits; the outside world is `ports` (ports.h). */
sf_daemon *daemon_core_new(struct event_base *base, const sf_config *cfg,
                           const sf_daemon_ports *ports)
{
    sf_daemon *d = sf_xcalloc(1, sizeof(*d));
    d->base = base;
    d->cfg = cfg;
    d->ports = *ports;
    d->sessions = sf_smap_new(sizeof(sessq));
    d->ev_revoke_timeout = evtimer_new(base, part_on_revoke_timeout, d);
    d->ev_lease_retry = evtimer_new(base, part_on_lease_retry, d);
    d->ev_leave = evtimer_new(base, part_on_store_gone_long, d);
    d->ev_unsent = evtimer_new(base, reply_on_unsent, d);
    d->sweep_sessions = SESSION_SWEEP_MIN;
    /* A record holds its value plus the key (a session id), headers and framing. */
    const char *mmb = sf_config_kafka_get(cfg, "message.max.bytes");
    long long max_bytes = mmb ? atoll(mmb) : 1000000;
    d->max_record = max_bytes > 4096 ? (size_t)max_bytes - 1024 : 3072;
    /* A claim outlives the longest call; a redelivery waits that long for its owner. */
    d->claim_ttl_ms = (cfg->pool.request_timeout_ms ? cfg->pool.request_timeout_ms : 300000) +
                      cfg->pool.checkout_timeout_ms + 5000;
    d->claim_wait_ms = d->claim_ttl_ms;
    d->cache = sf_cache_new(cfg->state_cache_bytes);
    d->ev_telemetry = event_new(base, -1, EV_PERSIST, telemetry_on_tick, d);
    d->ev_end_of_turn = event_new(base, -1, 0, end_of_turn, d);
    return d;
}

/*
 * The session store: one sf_store per shard. Without sentinels redis.url
 * lists the shards' URLs; with them redis.master_name lists the shards'
 * primaries (all found through the same sentinels) and redis.url gives only
 * the db. A partition's shard is its number modulo the count
 * (partitions.c, part_on_assign).
 */
static int daemon_stores_new(sf_daemon *d, char *err, size_t errlen)
{
    const sf_config *cfg = d->cfg;
    bool sentinel = cfg->redis_sentinels[0] != '\0';
    const char *list = sentinel ? cfg->redis_master_name : cfg->redis_url;
    const char *p = list;
    for (;;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        char one[sizeof(cfg->redis_url)];
        while (n && *p == ' ')
            p++, n--;
        while (n && p[n - 1] == ' ')
            n--;
        if (n == 0 || n >= sizeof(one) || d->nstores == SF_MAX_SHARDS) {
            snprintf(err, errlen, "%s: %s", sentinel ? "redis.master_name" : "redis.url",
                     n == 0 ? "an empty entry in the list" : "too many or too long entries");
            return -1;
        }
        memcpy(one, p, n);
        one[n] = '\0';
        if (sentinel && strchr(cfg->redis_url, ',')) {
            snprintf(err, errlen,
                     "redis.url: one URL (the db) with redis.sentinels; the shards "
                     "are redis.master_name's list");
            return -1;
        }
        int i = d->nstores;
        d->shard[i] = (struct shard_ctx){d, i};
        sf_store *st = sf_store_new(d->base, sentinel ? cfg->redis_url : one, cfg->redis_user,
                                    cfg->redis_password, cfg->session_ttl_s, part_on_store_health,
                                    &d->shard[i], err, errlen);
        if (st == NULL)
            return -1;
        d->stores[d->nstores++] = st;
        sf_store_set_turn_end(st, wake_end_of_turn, d);
        sf_store_set_replicas(st, cfg->redis_min_replicas, cfg->redis_replica_timeout_ms);
        sf_store_set_link_timeout(st, cfg->redis_link_timeout_ms);
        if (sf_store_set_sentinels(st, cfg->redis_sentinels, one, err, errlen) < 0)
            return -1;
        if (sf_store_set_key_prefix(st, cfg->redis_key_prefix) < 0) {
            snprintf(err, errlen,
                     "redis.key_prefix: '%s' must be 1 to %d bytes without braces, spaces or "
                     "control characters",
                     cfg->redis_key_prefix, SF_STORE_PREFIX_MAX);
            return -1;
        }
        if (end == NULL)
            return 0;
        p = end + 1;
    }
}

/*
 * Builds the daemon: its core (daemon_core_new) with the real ports, the
 * pool, the store, the Kafka clients; then starts them (daemon_start). On
 * failure everything built so far is freed and err says why.
 */
sf_daemon *sf_daemon_new(struct event_base *base, const sf_config *cfg, const char *bootstrap,
                         char *err, size_t errlen)
{
    sf_daemon *d = daemon_core_new(base, cfg, &sf_daemon_real_ports);
    d->pool = sf_pool_new(base, &cfg->pool, err, errlen);
    if (d->pool == NULL)
        goto fail;
    sf_pool_set_turn_end(d->pool, wake_end_of_turn, d);
    if (daemon_stores_new(d, err, errlen) < 0)
        goto fail;
    sf_kafka_handlers h = {.ctx = d,
                           .on_message = job_on_message,
                           .on_assign = part_on_assign,
                           .on_revoke = part_on_revoke,
                           .on_delivery = reply_on_delivery,
                           .on_committed = part_on_committed};
    sf_kafka_config kcfg;
    sf_kafka_config_from(cfg, &kcfg);
    d->kafka = sf_kafka_new(base, &kcfg, bootstrap, &h, err, errlen);
    if (d->kafka == NULL)
        goto fail;
    if (daemon_start(d, err, errlen) < 0)
        goto fail;
    return d;
fail:
    sf_daemon_free(d);
    return NULL;
}

/*
 * Starts what sf_daemon_new built: the topics checked (or created), the
 * workers spawned, the group joined, the telemetry timer armed.
 */
static int daemon_start(sf_daemon *d, char *err, size_t errlen)
{
    const sf_config *cfg = d->cfg;
    if (sf_kafka_ensure_topics(d->kafka, err, errlen) < 0)
        return -1;
    if (sf_pool_start(d->pool, err, errlen) < 0)
        return -1;
    if (sf_kafka_subscribe(d->kafka, err, errlen) < 0)
        return -1;
    struct timeval tv = {(time_t)(cfg->telemetry_interval_ms / 1000),
                         (suseconds_t)(cfg->telemetry_interval_ms % 1000) * 1000};
    event_add(d->ev_telemetry, &tv);
    sf_info("supervisor.started", "id=%s requests=%s group=%s redis=%s", cfg->id, cfg->requests,
            cfg->group, cfg->redis_url);
    return 0;
}

/* ---------------------------------------------------------------- drain */

static void on_drain(evutil_socket_t fd, short what, void *arg);

/*
 * SIGTERM: fetch no more, send the last telemetry, and drain: what is held
 * finishes (bounded by supervisor.shutdown_timeout), then on_drain commits,
 * leaves the group and stops the pool; the loop ends when it has stopped.
 */
void sf_daemon_shutdown(sf_daemon *d)
{
    if (d->shutting_down)
        return;
    d->shutting_down = true;
    sf_info("supervisor.draining", "held=%d queued=%d", d->held, d->queued);
    sf_kafka_pause_all(d->kafka);
    event_del(d->ev_telemetry);
    telemetry_on_tick(-1, 0, d);
    d->shutdown_deadline_us = now_us() + (uint64_t)d->cfg->shutdown_timeout_ms * 1000;
    d->ev_drain = event_new(d->base, -1, EV_PERSIST, on_drain, d);
    struct timeval tv = {0, 20000};
    event_add(d->ev_drain, &tv);
}

static void on_pool_stopped(void *arg);

/* Drain tick: once nothing is held (or the deadline passed), commit, leave, stop. */
static void on_drain(evutil_socket_t fd, short what, void *arg)
{
    sf_daemon *d = arg;
    uint64_t t = now_us();
    bool drained = d->held == 0 && sf_kafka_outq_len(d->kafka) == 0;
    if (!drained && t < d->shutdown_deadline_us)
        return;
    event_del(d->ev_drain);
    if (!drained)
        sf_warn("supervisor.drain_timeout", "held=%d unacknowledged=%d", d->held,
                sf_kafka_outq_len(d->kafka));
    /* Bounded even with the brokers gone: a few seconds past shutdown_timeout at most. */
    sf_kafka_commit_sync(d->kafka, 3000);
    sf_kafka_close(d->kafka, 5000);
    sf_info("supervisor.left_group", "held=%d", d->held);
    sf_pool_stop(d->pool, on_pool_stopped, d);
}

/* The pool is stopped: the daemon is done, and so is the loop. */
static void on_pool_stopped(void *arg)
{
    sf_daemon *d = arg;
    d->done = true;
    sf_info("supervisor.stopped", "requests=%llu errors=%llu dlq=%llu",
            (unsigned long long)d->total_requests, (unsigned long long)d->total_errors,
            (unsigned long long)d->dlq_count);
    event_base_loopbreak(d->base);
}

/* ---------------------------------------------------------------- reload, free */

int sf_daemon_reload(sf_daemon *d)
{
    if (d->shutting_down)
        return -1;
    return sf_pool_reload(d->pool);
}

int sf_daemon_done(const sf_daemon *d)
{
    return d->done;
}

void sf_daemon_free(sf_daemon *d)
{
    if (d == NULL)
        return;
    if (d->pool)
        sf_pool_free(d->pool); /* fails nothing: callbacks are not run from free */
    sessq_free_all(d);
    if (d->kafka)
        sf_kafka_free(d->kafka);
    for (int i = 0; i < d->nstores; i++)
        sf_store_free(d->stores[i]);
    for (int i = 0; i < d->nparts; i++)
        part_drop_pending(d, d->parts[i]);
    while (d->nparts)
        part_remove(d, d->parts[0]);
    if (d->revoking)
        rd_kafka_topic_partition_list_destroy(d->revoking);
    sf_smap_free(d->sessions);
    sf_cache_free(d->cache);
    event_free(d->ev_revoke_timeout);
    event_free(d->ev_lease_retry);
    event_free(d->ev_leave);
    event_free(d->ev_unsent);
    reply_free_unsent(d);
    event_free(d->ev_telemetry);
    if (d->ev_drain)
        event_free(d->ev_drain);
    event_free(d->ev_end_of_turn); /* last: freeing the pool or the store may still wake it */
    free(d);
}
