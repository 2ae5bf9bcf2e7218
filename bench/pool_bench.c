/*
 * pool_bench.c — drives the real worker pool (supervisor/pool/pool.c) from C and
 * prints one JSON line of results. Two modes:
 *
 * Throughput (default): a pool of --workers workers with pipeline_depth
 * --depth; a closed loop keeps --inflight calls submitted at all times, each
 * on its own session taken from a rotation of --sessions idle sessions (so
 * calls of different sessions may run in parallel, and every worker sees many
 * sessions). Each call is execute_program of snakefleet.examples:noop with
 * its spec attached; with --slow-every M, the sessions whose index is a
 * multiple of M run examples.sleep(--sleep-ms) instead (the head-of-line
 * table). A call is resubmitted from the completion callback, as a daemon
 * would. After --warmup-s, completions are counted for --duration-s and
 * every latency (submit → callback) is kept for exact percentiles.
 *
 * Cold start (--cold N): pool_size 1, lazy, max_requests 1, so every call
 * needs a freshly spawned worker. The driver waits until the previous worker
 * is reaped, submits a no-op and takes the call's queued time (submit →
 * written to a ready worker: spawn, interpreter or fork, handshake) as the
 * spawn-to-ready cost a caller sees. --zygote 1 --preload dspy forks workers
 * from a zygote; --zygote 0 with --worker-module preload_worker execs a fresh
 * interpreter that imports the preload first (the pool's exec path does not
 * preload). The pool's own `pool.worker_ready ready_ms=` log values are
 * collected too.
 */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_common.h"
#include "log.h"
#include "pool.h"

#ifndef SF_VENV_PYTHON
#define SF_VENV_PYTHON "/usr/bin/python3"
#endif

#define READY_WAIT_US    (60u * 1000000u)
#define MAX_COLD         64
#define POLL_INTERVAL_US 500

typedef enum { PH_WAIT_READY, PH_WARMUP, PH_MEASURE, PH_DRAIN, PH_STOPPING } phase;

typedef struct opts {
    int workers, depth, inflight, sessions, slow_every, sleep_ms, cold;
    double warmup_s, duration_s;
    bool zygote;
    const char *python, *python_path, *worker_module, *preload, *label;
} opts;

typedef struct bench {
    opts o;
    struct event_base *base;
    sf_pool *pool;
    struct event *ev_tick;
    phase ph;
    bench_calls calls;
    bench_sessions sessions;
    int outstanding;
    uint64_t t_begin, t_measure, t_end, warmup_until, measure_until;
    uint64_t completed, errors, cpu_self0, cpu_self1, cpu_workers0, cpu_workers1, vcsw0, vcsw1;
    bench_lat lat_fast, lat_slow;
    char first_error[256];
    /* cold-start mode */
    int cold_done;
    bool cold_waiting; /* a cold call is in flight */
    double cold_queued_ms[MAX_COLD], cold_total_ms[MAX_COLD], cold_submit_ms[MAX_COLD];
    uint64_t cold_submit_us;
} bench;

typedef struct call_ctx {
    bench *b;
    int session;
    uint64_t submit_us;
} call_ctx;

static bench B;

static void on_done(void *arg, const sf_pool_result *r);

static uint64_t workers_cpu_us(bench *b)
{
    sf_pool_stats *s = malloc(sizeof(*s));
    if (s == NULL)
        return 0;
    sf_pool_get_stats(b->pool, s);
    uint64_t t = 0;
    for (int i = 0; i < s->nworkers; i++)
        t += bench_pid_cpu_us(s->worker[i].pid);
    free(s);
    return t;
}

static int pool_counts(bench *b, int *workers, int *idle)
{
    sf_pool_stats *s = malloc(sizeof(*s));
    if (s == NULL)
        return -1;
    sf_pool_get_stats(b->pool, s);
    *workers = s->workers;
    *idle = s->idle;
    free(s);
    return 0;
}

/* Submits one call on the next idle session. Returns 0 or -1. */
static int submit_next(bench *b)
{
    int sid = bench_sessions_take(&b->sessions);
    if (sid < 0)
        return -1;
    call_ctx *cx = malloc(sizeof(*cx));
    if (cx == NULL)
        return -1;
    bool slow = bench_session_slow(&b->calls, sid);
    cx->b = b;
    cx->session = sid;
    cx->submit_us = bench_now_us();
    sf_pool_call call = {
        .op = "execute_program",
        .session = sf_cstr(b->sessions.names[sid]),
        .program = sf_cstr(slow ? "sleep" : "noop"),
        .args = slow ? b->calls.args_sleep.obj : b->calls.args_noop.obj,
        .spec = slow ? b->calls.spec_sleep.obj : b->calls.spec_noop.obj,
    };
    if (sf_pool_submit(b->pool, &call, on_done, cx) < 0) {
        free(cx);
        bench_sessions_give(&b->sessions, sid);
        return -1;
    }
    b->outstanding++;
    return 0;
}

static void on_stopped(void *arg)
{
    event_base_loopbreak(((bench *)arg)->base);
}

static void begin_stop(bench *b)
{
    if (b->ph == PH_STOPPING)
        return;
    b->ph = PH_STOPPING;
    sf_pool_stop(b->pool, on_stopped, b);
}

static void on_done(void *arg, const sf_pool_result *r)
{
    call_ctx *cx = arg;
    bench *b = cx->b;
    uint64_t t = bench_now_us();
    b->outstanding--;
    if (!r->ok) {
        b->errors++;
        if (b->first_error[0] == '\0')
            snprintf(b->first_error, sizeof(b->first_error), "%.*s: %.*s", SF_STR_ARG(r->err_type),
                     SF_STR_ARG(r->err_message));
    }
    if (b->o.cold) {
        if (b->cold_done < MAX_COLD) {
            b->cold_queued_ms[b->cold_done] = (double)r->queued_us / 1000.0;
            b->cold_total_ms[b->cold_done] = (double)(t - cx->submit_us) / 1000.0;
        }
        b->cold_done++;
        b->cold_waiting = false;
        bench_sessions_give(&b->sessions, cx->session);
        free(cx);
        return;
    }
    if (b->ph == PH_MEASURE) {
        b->completed++;
        if (bench_session_slow(&b->calls, cx->session))
            bench_lat_add(&b->lat_slow, t - cx->submit_us);
        else
            bench_lat_add(&b->lat_fast, t - cx->submit_us);
    }
    bench_sessions_give(&b->sessions, cx->session);
    free(cx);
    if (b->ph == PH_WARMUP || b->ph == PH_MEASURE)
        submit_next(b);
    else if (b->ph == PH_DRAIN && b->outstanding == 0)
        begin_stop(b);
}

/* Throughput mode: phase changes, on a short periodic tick. */
static void tick_throughput(bench *b, uint64_t t)
{
    int workers = 0, idle = 0;
    switch (b->ph) {
    case PH_WAIT_READY:
        if (pool_counts(b, &workers, &idle) == 0 && idle >= b->o.workers) {
            b->ph = PH_WARMUP;
            b->warmup_until = t + (uint64_t)(b->o.warmup_s * 1e6);
            for (int i = 0; i < b->o.inflight; i++) {
                if (submit_next(b) < 0) {
                    fprintf(stderr, "pool_bench: submit failed\n");
                    begin_stop(b);
                    return;
                }
            }
        } else if (t - b->t_begin > READY_WAIT_US) {
            fprintf(stderr, "pool_bench: workers not ready after %u s\n", READY_WAIT_US / 1000000);
            begin_stop(b);
        }
        break;
    case PH_WARMUP:
        if (t >= b->warmup_until) {
            b->ph = PH_MEASURE;
            b->t_measure = bench_now_us();
            b->measure_until = b->t_measure + (uint64_t)(b->o.duration_s * 1e6);
            b->cpu_self0 = bench_self_cpu_us();
            b->vcsw0 = bench_self_vcsw();
            b->cpu_workers0 = workers_cpu_us(b);
        }
        break;
    case PH_MEASURE:
        if (t >= b->measure_until) {
            b->ph = PH_DRAIN;
            b->t_end = bench_now_us();
            b->cpu_self1 = bench_self_cpu_us();
            b->vcsw1 = bench_self_vcsw();
            b->cpu_workers1 = workers_cpu_us(b);
            if (b->outstanding == 0)
                begin_stop(b);
        }
        break;
    case PH_DRAIN:
    case PH_STOPPING:
        break;
    }
}

/* Cold-start mode: one call at a time, each on a worker spawned for it. */
static void tick_cold(bench *b, uint64_t t)
{
    if (b->ph == PH_STOPPING || b->cold_waiting)
        return;
    if (b->cold_done >= b->o.cold) {
        begin_stop(b);
        return;
    }
    int workers = 0, idle = 0;
    if (pool_counts(b, &workers, &idle) < 0 || workers > 0)
        return; /* the previous worker is still draining or not yet reaped */
    b->cold_waiting = true;
    uint64_t t0 = bench_now_us();
    if (submit_next(b) < 0) {
        fprintf(stderr, "pool_bench: submit failed\n");
        begin_stop(b);
        return;
    }
    /* sf_pool_submit spawns the worker synchronously: time the loop was blocked. */
    if (b->cold_done < MAX_COLD)
        b->cold_submit_ms[b->cold_done] = (double)(bench_now_us() - t0) / 1000.0;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    bench *b = arg;
    uint64_t t = bench_now_us();
    if (b->o.cold)
        tick_cold(b, t);
    else
        tick_throughput(b, t);
}

/* ------------------------------------------------------------ results */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(const double *v, int n)
{
    if (n <= 0)
        return 0;
    double *s = malloc((size_t)n * sizeof(*s));
    if (s == NULL)
        return 0;
    memcpy(s, v, (size_t)n * sizeof(*s));
    qsort(s, (size_t)n, sizeof(*s), cmp_double);
    double m = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
    free(s);
    return m;
}

static json_t *double_array(const double *v, int n)
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(a, json_real((double)(int64_t)(v[i] * 100) / 100));
    return a;
}

/* The `ready_ms=` values of the pool's pool.worker_ready lines in a log file. */
static int parse_ready_log(int fd, double *out, int cap)
{
    FILE *f = fdopen(dup(fd), "r");
    if (f == NULL)
        return 0;
    rewind(f);
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof(line), f)) {
        if (strstr(line, "event=pool.worker_ready") == NULL) {
            if (strstr(line, "level=error") || strstr(line, "level=warn"))
                fputs(line, stderr); /* problems stay visible */
            continue;
        }
        const char *p = strstr(line, "ready_ms=");
        if (p && n < cap)
            out[n++] = strtod(p + 9, NULL);
    }
    fclose(f);
    return n;
}

static void emit_throughput(bench *b)
{
    double secs = (double)(b->t_end - b->t_measure) / 1e6;
    json_t *o = json_object();
    json_object_set_new(o, "bench", json_string("pool"));
    json_object_set_new(o, "label", json_string(b->o.label));
    json_object_set_new(o, "workers", json_integer(b->o.workers));
    json_object_set_new(o, "depth", json_integer(b->o.depth));
    json_object_set_new(o, "inflight", json_integer(b->o.inflight));
    json_object_set_new(o, "sessions", json_integer(b->o.sessions));
    json_object_set_new(o, "slow_every", json_integer(b->o.slow_every));
    json_object_set_new(o, "seconds", json_real(secs));
    json_object_set_new(o, "calls", json_integer((json_int_t)b->completed));
    json_object_set_new(o, "errors", json_integer((json_int_t)b->errors));
    if (b->first_error[0])
        json_object_set_new(o, "first_error", json_string(b->first_error));
    json_object_set_new(o, "calls_per_s", json_real(secs > 0 ? (double)b->completed / secs : 0));
    bench_lat_json(o, "", &b->lat_fast);
    if (b->o.slow_every)
        bench_lat_json(o, "slow_", &b->lat_slow);
    double n = b->completed ? (double)b->completed : 1;
    json_object_set_new(o, "driver_cpu_us_per_call",
                        json_real((double)(b->cpu_self1 - b->cpu_self0) / n));
    json_object_set_new(o, "workers_cpu_us_per_call",
                        json_real((double)(b->cpu_workers1 - b->cpu_workers0) / n));
    json_object_set_new(o, "driver_wakeups_per_call", json_real((double)(b->vcsw1 - b->vcsw0) / n));
    sf_pool_stats *s = malloc(sizeof(*s));
    if (s) {
        sf_pool_get_stats(b->pool, s);
        json_object_set_new(o, "pool_exec_p50_us",
                            json_integer((json_int_t)sf_hist_quantile(&s->exec, 0.5)));
        json_object_set_new(o, "pool_queue_wait_p99_us",
                            json_integer((json_int_t)sf_hist_quantile(&s->queue_wait, 0.99)));
        free(s);
    }
    bench_emit(o);
}

static void emit_cold(bench *b, int logfd)
{
    int n = b->cold_done < MAX_COLD ? b->cold_done : MAX_COLD;
    double ready[MAX_COLD];
    int nready = logfd >= 0 ? parse_ready_log(logfd, ready, MAX_COLD) : 0;
    json_t *o = json_object();
    json_object_set_new(o, "bench", json_string("cold_start"));
    json_object_set_new(o, "label", json_string(b->o.label));
    json_object_set_new(o, "zygote", json_boolean(b->o.zygote));
    json_object_set_new(o, "preload", json_string(b->o.preload ? b->o.preload : ""));
    json_object_set_new(o, "worker_module",
                        json_string(b->o.worker_module ? b->o.worker_module : "snakefleet.worker"));
    json_object_set_new(o, "starts", json_integer(n));
    json_object_set_new(o, "errors", json_integer((json_int_t)b->errors));
    if (b->first_error[0])
        json_object_set_new(o, "first_error", json_string(b->first_error));
    json_object_set_new(o, "queued_ms_median", json_real(median(b->cold_queued_ms, n)));
    json_object_set_new(o, "total_ms_median", json_real(median(b->cold_total_ms, n)));
    json_object_set_new(o, "submit_blocked_ms_median", json_real(median(b->cold_submit_ms, n)));
    json_object_set_new(o, "pool_ready_ms_median", json_real(median(ready, nready)));
    json_object_set_new(o, "queued_ms", double_array(b->cold_queued_ms, n));
    json_object_set_new(o, "submit_blocked_ms", double_array(b->cold_submit_ms, n));
    json_object_set_new(o, "pool_ready_ms", double_array(ready, nready));
    bench_emit(o);
}

/* ------------------------------------------------------------ main */

static void usage(void)
{
    fprintf(stderr,
            "usage: pool_bench [--workers N] [--depth D] [--inflight K] [--sessions S]\n"
            "                  [--warmup-s S] [--duration-s S] [--slow-every M] [--sleep-ms MS]\n"
            "                  [--cold N] [--zygote 0|1] [--preload MODS] [--worker-module M]\n"
            "                  [--python-path P] [--python PATH] [--label TEXT]\n");
}

static int parse_opts(int argc, char **argv, opts *o)
{
    *o = (opts){.workers = 2,
                .depth = 1,
                .inflight = 0,
                .sessions = 0,
                .sleep_ms = 5,
                .warmup_s = 1.0,
                .duration_s = 4.0,
                .python = SF_VENV_PYTHON,
                .label = ""};
    static const struct option longopts[] = {{"workers", required_argument, NULL, 'w'},
                                             {"depth", required_argument, NULL, 'd'},
                                             {"inflight", required_argument, NULL, 'k'},
                                             {"sessions", required_argument, NULL, 's'},
                                             {"warmup-s", required_argument, NULL, 'W'},
                                             {"duration-s", required_argument, NULL, 'D'},
                                             {"slow-every", required_argument, NULL, 'm'},
                                             {"sleep-ms", required_argument, NULL, 'z'},
                                             {"cold", required_argument, NULL, 'c'},
                                             {"zygote", required_argument, NULL, 'Z'},
                                             {"preload", required_argument, NULL, 'p'},
                                             {"worker-module", required_argument, NULL, 'M'},
                                             {"python-path", required_argument, NULL, 'P'},
                                             {"python", required_argument, NULL, 'y'},
                                             {"label", required_argument, NULL, 'l'},
                                             {NULL, 0, NULL, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case 'w':
            o->workers = atoi(optarg);
            break;
        case 'd':
            o->depth = atoi(optarg);
            break;
        case 'k':
            o->inflight = atoi(optarg);
            break;
        case 's':
            o->sessions = atoi(optarg);
            break;
        case 'W':
            o->warmup_s = atof(optarg);
            break;
        case 'D':
            o->duration_s = atof(optarg);
            break;
        case 'm':
            o->slow_every = atoi(optarg);
            break;
        case 'z':
            o->sleep_ms = atoi(optarg);
            break;
        case 'c':
            o->cold = atoi(optarg);
            break;
        case 'Z':
            o->zygote = atoi(optarg) != 0;
            break;
        case 'p':
            o->preload = optarg;
            break;
        case 'M':
            o->worker_module = optarg;
            break;
        case 'P':
            o->python_path = optarg;
            break;
        case 'y':
            o->python = optarg;
            break;
        case 'l':
            o->label = optarg;
            break;
        default:
            return -1;
        }
    }
    if (o->inflight <= 0)
        o->inflight = o->workers * o->depth;
    if (o->sessions <= 0)
        o->sessions = o->inflight * 4 < 16 ? 16 : o->inflight * 4;
    if (o->cold) {
        o->workers = 1;
        o->inflight = 1;
        o->sessions = 1;
    }
    if (o->workers < 1 || o->depth < 1 || o->sessions > BENCH_MAX_SESSIONS ||
        o->sessions < o->inflight || o->cold > MAX_COLD) {
        fprintf(stderr, "pool_bench: bad options (sessions must be >= inflight, <= %d)\n",
                BENCH_MAX_SESSIONS);
        return -1;
    }
    return 0;
}

static void config_pool(const opts *o, sf_pool_config *c)
{
    sf_pool_config_defaults(c);
    c->python = o->python;
    c->pool_size = o->workers;
    c->max_overflow = 0;
    c->pipeline_depth = o->depth;
    c->health_check_interval_ms = 0;
    c->checkout_timeout_ms = 30000;
    c->startup_timeout_ms = 60000;
    c->shutdown_timeout_ms = 5000;
    c->zygote = o->zygote;
    c->preload = o->preload;
    c->python_path = o->python_path;
    if (o->worker_module)
        c->worker_module = o->worker_module;
    if (o->cold) {
        c->lazy = true;
        c->max_requests = 1;
        c->max_requests_jitter_pct = 0;
    }
}

int main(int argc, char **argv)
{
    bench *b = &B;
    if (parse_opts(argc, argv, &b->o) < 0) {
        usage();
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    /* Cold-start mode reads the pool's own ready_ms from its info log: send
     * stderr to a scratch file for the run and read it back at the end. */
    int logfd = -1, saved_stderr = -1;
    if (b->o.cold) {
        char path[] = "/tmp/pool_bench_log.XXXXXX";
        logfd = mkstemp(path);
        if (logfd >= 0) {
            unlink(path);
            fflush(stderr);
            saved_stderr = dup(2);
            dup2(logfd, 2);
        }
        sf_log_set_level(SF_LOG_INFO);
    } else {
        sf_log_set_level(SF_LOG_WARN);
    }
    if (bench_calls_init(&b->calls, b->o.slow_every, b->o.sleep_ms) < 0)
        return 1;
    bench_sessions_init(&b->sessions, b->o.sessions, b->o.cold ? "cold-" : "s-");
    b->base = event_base_new();
    sf_pool_config cfg;
    config_pool(&b->o, &cfg);
    char err[256];
    b->pool = sf_pool_new(b->base, &cfg, err, sizeof(err));
    if (b->pool == NULL) {
        fprintf(stderr, "pool_bench: sf_pool_new: %s\n", err);
        return 1;
    }
    b->t_begin = bench_now_us();
    if (sf_pool_start(b->pool, err, sizeof(err)) < 0) {
        fprintf(stderr, "pool_bench: sf_pool_start: %s\n", err);
        return 1;
    }
    b->ev_tick = event_new(b->base, -1, EV_PERSIST, on_tick, b);
    struct timeval tv = {0, b->o.cold ? POLL_INTERVAL_US : 2000};
    event_add(b->ev_tick, &tv);
    event_base_dispatch(b->base);
    event_free(b->ev_tick);
    if (saved_stderr >= 0) {
        fflush(stderr);
        dup2(saved_stderr, 2);
        close(saved_stderr);
    }
    if (b->o.cold)
        emit_cold(b, logfd);
    else
        emit_throughput(b);
    if (logfd >= 0)
        close(logfd);
    sf_pool_free(b->pool);
    event_base_free(b->base);
    bench_calls_destroy(&b->calls);
    bench_lat_free(&b->lat_fast);
    bench_lat_free(&b->lat_slow);
    return b->errors ? 1 : 0;
}
