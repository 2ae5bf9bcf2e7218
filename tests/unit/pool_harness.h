/*
 * pool_harness.h — shared scaffolding for the pool suites: an event base, a
 * pool on the project's venv interpreter, calls built from JSON, outcomes
 * captured for assertions, and a loop runner bounded in time.
 */
#ifndef SF_POOL_HARNESS_H
#define SF_POOL_HARNESS_H

#include <criterion/criterion.h>
#include <event2/event.h>
#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "pool.h"
#include "proc.h"

typedef struct outcome {
    bool done, ok;
    char type[64];
    char message[512];
    char traceback[2048];
    char worker[32];
    json_t *value;
    json_t *state;
    int order; /* completion order, from 1 */
} outcome;

static struct event_base *h_base;
static sf_pool *h_pool;
static int h_completed;

static void h_on_done(void *arg, const sf_pool_result *r)
{
    outcome *o = arg;
    o->done = true;
    o->ok = r->ok;
    o->order = ++h_completed;
    sf_str_copy(o->type, sizeof(o->type), r->err_type);
    sf_str_copy(o->message, sizeof(o->message), r->err_message);
    sf_str_copy(o->traceback, sizeof(o->traceback), r->err_traceback);
    snprintf(o->worker, sizeof(o->worker), "%s", r->worker_id);
    o->value = r->value ? sf_mp_to_json(r->value) : NULL;
    o->state = r->state ? sf_mp_to_json(r->state) : NULL;
}

static void h_outcome_clear(outcome *o)
{
    json_decref(o->value);
    json_decref(o->state);
    memset(o, 0, sizeof(*o));
}

static void h_config(sf_pool_config *c)
{
    sf_pool_config_defaults(c);
    c->python = SF_VENV_PYTHON;
    c->pool_size = 2;
    c->max_overflow = 0;
    c->zygote = false;
    c->health_check_interval_ms = 0;
    c->restart_backoff_ms = 20;
    c->shutdown_timeout_ms = 3000;
    c->startup_timeout_ms = 10000;
}

static double h_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Runs the loop until *pred(arg) holds or timeout_ms passes; returns pred's value. */
static bool h_run_until(bool (*pred)(void *), void *arg, int timeout_ms)
{
    double end = h_now_ms() + timeout_ms;
    while (!pred(arg) && h_now_ms() < end) {
        struct timeval tv = {0, 20000};
        event_base_loopexit(h_base, &tv);
        event_base_loop(h_base, EVLOOP_ONCE);
    }
    return pred(arg);
}

static bool h_is_done(void *arg)
{
    return ((outcome *)arg)->done;
}

static bool h_never(void *arg)
{
    return false;
}

static void h_sleep_loop(int ms)
{
    h_run_until(h_never, NULL, ms);
}

static void h_start(const sf_pool_config *c)
{
    sf_log_set_level(SF_LOG_WARN);
    h_base = event_base_new();
    char err[256];
    h_pool = sf_pool_new(h_base, c, err, sizeof(err));
    cr_assert(h_pool, "sf_pool_new: %s", err);
    cr_assert_eq(sf_pool_start(h_pool, err, sizeof(err)), 0, "sf_pool_start: %s", err);
    h_completed = 0;
}

/* A pool of n workers, otherwise as h_config() makes it. */
static inline void h_start_workers(int n)
{
    sf_pool_config c;
    h_config(&c);
    c.pool_size = n;
    h_start(&c);
}

static bool h_pool_stopped(void *arg)
{
    return sf_pool_stopped(h_pool);
}

static void h_stop(void)
{
    if (h_pool == NULL)
        return;
    sf_pool_stop(h_pool, NULL, NULL);
    cr_expect(h_run_until(h_pool_stopped, NULL, 10000), "pool did not stop in time");
    sf_pool_free(h_pool);
    h_pool = NULL;
    event_base_free(h_base);
    h_base = NULL;
}

/* Submits op for session with args given as JSON text (or NULL). */
/* The deadline (wall-clock ms) the next submits carry; 0: none. */
static uint64_t h_deadline_ms;

static void h_submit(outcome *o, const char *session, const char *op, const char *program,
                     const char *args_json, const char *spec_json, const char *state_json)
{
    json_error_t je;
    json_t *args = args_json ? json_loads(args_json, 0, &je) : NULL;
    json_t *spec = spec_json ? json_loads(spec_json, 0, &je) : NULL;
    json_t *state = state_json ? json_loads(state_json, 0, &je) : NULL;
    msgpack_sbuffer sb[3];
    msgpack_unpacked u[3];
    json_t *src[3] = {args, spec, state};
    const msgpack_object *obj[3] = {NULL, NULL, NULL};
    for (int i = 0; i < 3; i++) {
        msgpack_sbuffer_init(&sb[i]);
        msgpack_unpacked_init(&u[i]);
        if (src[i] == NULL)
            continue;
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb[i], msgpack_sbuffer_write);
        sf_mp_pack_json(&pk, src[i]);
        size_t off = 0;
        msgpack_unpack_next(&u[i], sb[i].data, sb[i].size, &off);
        obj[i] = &u[i].data;
    }
    sf_pool_call call = {.op = op,
                         .session = sf_cstr(session),
                         .program = sf_cstr(program),
                         .args = obj[0],
                         .spec = obj[1],
                         .state = obj[2],
                         .deadline_ms = h_deadline_ms};
    memset(o, 0, sizeof(*o));
    cr_assert_eq(sf_pool_submit(h_pool, &call, h_on_done, o), 0);
    for (int i = 0; i < 3; i++) {
        msgpack_unpacked_destroy(&u[i]);
        msgpack_sbuffer_destroy(&sb[i]);
        json_decref(src[i]);
    }
}

/* execute_program of a `snakefleet.examples` function, spec (and a session state) sent along. */
static void h_exec_state(outcome *o, const char *session, const char *fn, const char *args_json,
                         const char *state_json)
{
    char spec[160];
    snprintf(spec, sizeof(spec), "{\"kind\":\"callable\",\"entry\":\"snakefleet.examples:%s\"}",
             fn);
    h_submit(o, session, "execute_program", fn, args_json ? args_json : "{}", spec, state_json);
}

static void h_exec(outcome *o, const char *session, const char *fn, const char *args_json)
{
    h_exec_state(o, session, fn, args_json, NULL);
}

static void h_wait(outcome *o, int timeout_ms)
{
    cr_assert(h_run_until(h_is_done, o, timeout_ms), "call did not finish in %d ms", timeout_ms);
}

static sf_pool_stats *h_stats(void)
{
    static sf_pool_stats s;
    sf_pool_get_stats(h_pool, &s);
    return &s;
}

#endif
