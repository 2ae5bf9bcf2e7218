/*
 * pool.h — the Python worker pool: NimblePool's job, in C, on a libevent loop.
 *
 * A pool owns up to pool_size + max_overflow long-lived Python worker
 * processes (`python -m snakefleet.worker`), each a set of pipes speaking the
 * frame protocol of schemas/README.md. Callers submit calls; the pool picks a
 * worker (session affinity), writes the call frame, and invokes the caller's
 * callback with the result — or with a typed error (checkout_timeout,
 * timeout, worker_crashed, unavailable, …). It keeps workers healthy (ping,
 * request timeout kill, recycling by count and RSS, restart with backoff) and
 * stops them gracefully.
 *
 * Ordering: calls of one session are executed one at a time in submit order.
 * While a session has a call in flight it is bound to that worker; further
 * calls of the session go to the same worker's pipe (up to pipeline_depth) or
 * wait for it.
 *
 * Everything runs on the event_base given to sf_pool_new: no threads.
 */
#ifndef SF_POOL_H
#define SF_POOL_H

#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>

#include "hist.h"
#include "mp.h"

typedef enum {
    SF_AFFINITY_HINT,             /* prefer the session's last worker, else any idle one */
    SF_AFFINITY_STRICT,           /* wait for the session's last worker */
    SF_AFFINITY_STRICT_FAIL_FAST, /* fail at once when the last worker is busy */
} sf_affinity;

const char *sf_affinity_name(sf_affinity a);
int sf_affinity_parse(const char *s, sf_affinity *out);

typedef struct sf_pool_config {
    int pool_size;                     /* default 2 × cores */
    int max_overflow;                  /* default cores */
    bool lazy;                         /* start workers on demand instead of all at once */
    uint32_t checkout_timeout_ms;      /* 5000 */
    uint32_t health_check_interval_ms; /* 30000; 0 disables pings */
    uint32_t request_timeout_ms;       /* 0 = none */
    uint32_t startup_timeout_ms;       /* 10000 */
    uint32_t shutdown_timeout_ms;      /* 10000 */
    uint32_t overflow_idle_timeout_ms; /* 10000 */
    uint64_t max_requests;             /* recycle after this many calls; 0 = never */
    uint32_t max_requests_jitter_pct;  /* ± spread of max_requests, so workers differ (10) */
    uint32_t max_rss_mb;               /* recycle above this RSS; 0 = never */
    int pipeline_depth;                /* calls in flight per worker (1) */
    sf_affinity affinity;
    uint32_t restart_backoff_ms;     /* 100 */
    uint32_t restart_backoff_max_ms; /* 10000 */
    int crash_loop_threshold;        /* this many crashes … (5) */
    uint32_t crash_loop_window_ms;   /* … within this window mark the pool degraded (30000) */
    const char *python;              /* interpreter path (absolute) */
    const char *python_path;         /* extra PYTHONPATH entries, or NULL */
    const char *worker_module;       /* "snakefleet.worker" */
    const char *preload;             /* comma-separated modules for the zygote, or NULL */
    bool zygote;                     /* fork workers from a preloaded zygote (with preload) */
    bool thread_limits;              /* OMP/OPENBLAS/MKL/NUMEXPR threads = 1 (true) */
    uint32_t max_frame_bytes;        /* 16 MiB */
    const char *id_prefix;           /* worker ids are <prefix><n> ("w") */
    const char *const *extra_env;    /* more "K=V" for every worker, NULL-terminated, or NULL */
} sf_pool_config;

void sf_pool_config_defaults(sf_pool_config *c);

/* What a call asks a worker to do; borrowed for the duration of sf_pool_submit. */
typedef struct sf_pool_call {
    const char *op; /* worker op: execute_program, create_program, … */
    sf_str session;
    sf_str program;
    const msgpack_object *args;
    const msgpack_object *spec;
    const msgpack_object *state;
    /* Or already-encoded msgpack maps, sent as they are (spec / state NULL).
     * Either way a worker known to hold this spec or state (it built or
     * returned it) is sent only its version. */
    sf_str spec_raw, state_raw;
    /* The request's deadline, wall-clock ms since the epoch (0: none): a call
     * still running then fails deadline_exceeded and its worker is replaced. */
    uint64_t deadline_ms;
    /* Shown to the program (its context; sf_call): the request's id, meta and
     * trace context. */
    sf_str request_id;
    const msgpack_object *meta;
    sf_str traceparent, tracestate;
} sf_pool_call;

/* The outcome handed to the callback; valid only during the callback. */
typedef struct sf_pool_result {
    bool ok;
    const msgpack_object *value; /* ok: the value (may be NULL) */
    const msgpack_object *state; /* the session state the program left, or NULL */
    sf_str state_raw;            /* that state as msgpack bytes (len 0 when NULL) */
    sf_str err_type, err_message, err_traceback;
    const char *worker_id; /* "" when no worker ran it */
    uint64_t queued_us, exec_us, total_us;
} sf_pool_result;

typedef void (*sf_pool_done_fn)(void *arg, const sf_pool_result *res);

typedef struct sf_pool sf_pool;

/*
 * Creates the pool; validates the config (errbuf says which option is wrong).
 * Nothing is spawned until sf_pool_start.
 */
sf_pool *sf_pool_new(struct event_base *base, const sf_pool_config *cfg, char *errbuf,
                     size_t errlen);

/*
 * Starts the zygote (if configured) and, unless lazy, pool_size workers.
 * Fails (with errbuf) when the interpreter cannot be executed at all.
 */
int sf_pool_start(sf_pool *p, char *errbuf, size_t errlen);

/*
 * Queues a call. The callback runs later, exactly once, from the event loop
 * (never from inside sf_pool_submit). Returns 0, or -1 when the pool is
 * stopping (the callback is not called then).
 */
int sf_pool_submit(sf_pool *p, const sf_pool_call *call, sf_pool_done_fn done, void *arg);

/*
 * The end of a loop turn. The calls submitted during one turn are written to
 * their workers together, one writev per worker, once the turn's other
 * callbacks have run. By default the pool does that itself, from an event it
 * activates at the turn's first submit. An owner of the loop with an
 * end-of-turn step of its own (the daemon: daemon.c, end_of_turn) calls
 * sf_pool_set_turn_end before the first submit: from then on the pool calls
 * `wake(arg)` where it would activate that event, and the owner calls
 * sf_pool_flush before the loop waits again.
 */
void sf_pool_set_turn_end(sf_pool *p, void (*wake)(void *arg), void *arg);
void sf_pool_flush(sf_pool *p);

/*
 * Graceful stop: no new calls; queued calls fail with `unavailable`; calls in
 * flight finish (bounded by shutdown_timeout); then shutdown frame → SIGTERM
 * → SIGKILL. `done` runs once every worker and the zygote are reaped.
 */
void sf_pool_stop(sf_pool *p, void (*done)(void *arg), void *arg);

/*
 * Picks up changed program code without a restart: the zygote (if any) is
 * started afresh, and every worker is replaced in a rolling way, each after
 * its current call, so no call is cut short or lost (pool.reload, then
 * pool.reloaded once no older worker remains). Returns -1 while stopping.
 */
int sf_pool_reload(sf_pool *p);
bool sf_pool_stopped(const sf_pool *p);

/* Frees a stopped pool (or kills the workers of one that was not stopped). */
void sf_pool_free(sf_pool *p);

typedef struct sf_worker_stats {
    char id[32];
    int pid;
    const char *state; /* starting, idle, busy, draining, stopping */
    bool overflow;
    uint64_t calls, errors, rss_kb, max_requests;
    int in_flight;
} sf_worker_stats;

typedef struct sf_pool_stats {
    int pool_size, max_overflow;
    int workers, busy, idle, starting, overflow, healthy_workers;
    int queued, in_flight;
    bool degraded;
    uint64_t total_commands, total_errors, restarts, recycles, crashes, timeouts, checkout_timeouts,
        spawned, reloads;
    uint64_t stale_retries;   /* calls sent again in full: the worker's cache had lost them */
    uint64_t active_sessions; /* sessions with a call queued or in flight */
    sf_hist queue_wait, exec;
    int nworkers;
    sf_worker_stats worker[64];
} sf_pool_stats;

void sf_pool_get_stats(const sf_pool *p, sf_pool_stats *out);
/* The stats as a JSON object (new reference). */
struct json_t *sf_pool_stats_json(const sf_pool_stats *s);

#endif
