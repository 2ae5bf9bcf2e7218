/*
 * pool_run.c — `snakefleet pool-run`: the worker pool without Kafka.
 *
 * Starts a pool from the configuration, runs calls from a JSONL file (one
 * call per line: {"session", "op", "program", "args", "spec", "state"}) or a
 * synthetic no-op workload, keeps up to --concurrency calls in flight, prints
 * one JSON reply per call on stdout, then a summary with the pool's stats.
 * Per-session order is the pool's: calls of one session run in file order.
 */
#include <errno.h>
#include <event2/event.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "args.h"
#include "cli.h"
#include "clock.h"
#include "log.h"
#include "pool.h"

typedef struct job {
    struct run *run;
    long line;
} job;

typedef struct run {
    struct event_base *base;
    sf_pool *pool;
    FILE *in;
    long noop_total, noop_sessions, next_noop;
    long line;
    int concurrency, in_flight;
    long submitted, completed, ok, errors;
    bool eof, quiet, stopping;
    sf_pool_stats stats; /* taken when the input is done, before the pool stops */
    double t0;
    int exit_code;
} run;

static double now_s(void)
{
    return (double)sf_now_us() / 1e6;
}

static void pump(run *r);

static void on_done(void *arg, const sf_pool_result *res)
{
    job *j = arg;
    run *r = j->run;
    r->in_flight--;
    r->completed++;
    if (res->ok)
        r->ok++;
    else
        r->errors++;
    if (!r->quiet) {
        json_t *o = json_object();
        json_object_set_new(o, "line", json_integer(j->line));
        json_object_set_new(o, "ok", json_boolean(res->ok));
        if (res->ok) {
            json_object_set_new(o, "result", res->value ? sf_mp_to_json(res->value) : json_null());
            if (res->state)
                json_object_set_new(o, "state", sf_mp_to_json(res->state));
        } else {
            json_t *e = json_object();
            json_object_set_new(e, "type", json_stringn(res->err_type.ptr, res->err_type.len));
            json_object_set_new(e, "message",
                                json_stringn(res->err_message.ptr, res->err_message.len));
            if (res->err_traceback.len)
                json_object_set_new(e, "traceback",
                                    json_stringn(res->err_traceback.ptr, res->err_traceback.len));
            json_object_set_new(o, "error", e);
        }
        json_object_set_new(o, "worker", json_string(res->worker_id));
        json_object_set_new(o, "timings",
                            json_pack("{s:I, s:I, s:I}", "queued_us", (json_int_t)res->queued_us,
                                      "exec_us", (json_int_t)res->exec_us, "total_us",
                                      (json_int_t)res->total_us));
        char *s = json_dumps(o, JSON_COMPACT);
        puts(s);
        free(s);
        json_decref(o);
    }
    free(j);
    pump(r);
}

/* Packs a JSON value and unpacks it into u, for sf_pool_call's objects. */
static const msgpack_object *to_object(json_t *v, msgpack_sbuffer *sb, msgpack_unpacked *u)
{
    if (v == NULL)
        return NULL;
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    if (sf_mp_pack_json(&pk, v) < 0)
        return NULL;
    size_t off = 0;
    if (msgpack_unpack_next(u, sb->data, sb->size, &off) != MSGPACK_UNPACK_SUCCESS)
        return NULL;
    return &u->data;
}

static int submit_json(run *r, json_t *call, long line)
{
    const char *session = json_string_value(json_object_get(call, "session"));
    const char *op = json_string_value(json_object_get(call, "op"));
    const char *program = json_string_value(json_object_get(call, "program"));
    if (session == NULL || op == NULL) {
        fprintf(stderr, "pool-run: line %ld: 'session' and 'op' (strings) are required\n", line);
        return -1;
    }
    json_t *parts[3] = {json_object_get(call, "args"), json_object_get(call, "spec"),
                        json_object_get(call, "state")};
    msgpack_sbuffer sb[3];
    msgpack_unpacked u[3];
    const msgpack_object *obj[3];
    for (int i = 0; i < 3; i++) {
        msgpack_sbuffer_init(&sb[i]);
        msgpack_unpacked_init(&u[i]);
        obj[i] = to_object(parts[i], &sb[i], &u[i]);
    }
    job *j = sf_xcalloc(1, sizeof(*j));
    j->run = r;
    j->line = line;
    sf_pool_call c = {.op = op,
                      .session = sf_cstr(session),
                      .program = sf_cstr(program),
                      .args = obj[0],
                      .spec = obj[1],
                      .state = obj[2]};
    int rc = sf_pool_submit(r->pool, &c, on_done, j);
    for (int i = 0; i < 3; i++) {
        msgpack_unpacked_destroy(&u[i]);
        msgpack_sbuffer_destroy(&sb[i]);
    }
    if (rc < 0) {
        free(j);
        return -1;
    }
    r->in_flight++;
    r->submitted++;
    return 0;
}

static void on_stopped(void *arg)
{
    run *r = arg;
    event_base_loopbreak(r->base);
}

static void finish(run *r)
{
    if (r->stopping)
        return;
    r->stopping = true;
    sf_pool_get_stats(r->pool, &r->stats);
    sf_pool_stop(r->pool, on_stopped, r);
}

/* Submits calls until `concurrency` are in flight or the input ends. */
static void pump(run *r)
{
    while (!r->stopping && !r->eof && r->in_flight < r->concurrency) {
        if (r->noop_total > 0) {
            if (r->next_noop >= r->noop_total) {
                r->eof = true;
                break;
            }
            char session[32];
            snprintf(session, sizeof(session), "noop-%ld", r->next_noop % r->noop_sessions);
            json_t *call = json_pack("{s:s, s:s, s:s, s:{}, s:{s:s, s:s}}", "session", session,
                                     "op", "execute_program", "program", "noop", "args", "spec",
                                     "kind", "callable", "entry", "snakefleet.examples:noop");
            r->next_noop++;
            submit_json(r, call, r->next_noop);
            json_decref(call);
            continue;
        }
        char *buf = NULL;
        size_t cap = 0;
        ssize_t n = getline(&buf, &cap, r->in);
        if (n < 0) {
            free(buf);
            r->eof = true;
            break;
        }
        r->line++;
        json_error_t je;
        json_t *call = json_loads(buf, 0, &je);
        free(buf);
        if (call == NULL) {
            if (strspn(je.text, " \t\r\n") == strlen(je.text))
                continue;
            fprintf(stderr, "pool-run: line %ld: not JSON: %s\n", r->line, je.text);
            r->exit_code = 1;
            continue;
        }
        if (!json_is_object(call) || submit_json(r, call, r->line) < 0)
            r->exit_code = 1;
        json_decref(call);
    }
    if (r->eof && r->in_flight == 0)
        finish(r);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    run *r = arg;
    fprintf(stderr, "pool-run: signal %d, stopping\n", (int)sig);
    r->exit_code = 130;
    finish(r);
}

static void on_start(evutil_socket_t fd, short what, void *arg)
{
    run *r = arg;
    r->t0 = now_s();
    pump(r);
}

static const char USAGE[] =
    "usage: snakefleet pool-run [-c FILE] [--section.key=value ...]\n"
    "                           (--jsonl FILE|- | --noop N [--sessions S])\n"
    "                           [--concurrency C] [--quiet]\n";

int cmd_pool_run(int argc, char **argv)
{
    sf_config cfg;
    if (cli_load_config(&cfg, &argc, argv) < 0)
        return 2;
    run r = {.concurrency = 0, .noop_sessions = 0};
    const char *jsonl = NULL;
    long long noop = 0, sessions = 0, concurrency = 0;
    const cli_flag flags[] = {{"jsonl", FLAG_STR, &jsonl, 0, 0},
                              {"noop", FLAG_INT, &noop, 1, 1000000000},
                              {"sessions", FLAG_INT, &sessions, 1, 100000000},
                              {"concurrency", FLAG_INT, &concurrency, 1, 1000000},
                              {"quiet", FLAG_ON, &r.quiet, 0, 0},
                              {NULL, 0, NULL, 0, 0}};
    int parsed = args_parse("pool-run", USAGE, argc, argv, flags);
    if (parsed != ARGS_OK)
        return parsed;
    r.noop_total = (long)noop;
    r.noop_sessions = (long)sessions;
    r.concurrency = (int)concurrency;
    if ((jsonl == NULL) == (r.noop_total <= 0)) {
        fprintf(stderr, "pool-run: give exactly one of --jsonl FILE or --noop N\n%s", USAGE);
        return 2;
    }
    int workers = cfg.pool.pool_size + cfg.pool.max_overflow;
    if (r.concurrency <= 0)
        r.concurrency = workers * cfg.pool.pipeline_depth * 2;
    if (r.noop_sessions <= 0)
        r.noop_sessions = r.concurrency;
    if (jsonl) {
        r.in = strcmp(jsonl, "-") == 0 ? stdin : fopen(jsonl, "r");
        if (r.in == NULL) {
            fprintf(stderr, "pool-run: cannot open %s: %s\n", jsonl, strerror(errno));
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    r.base = event_base_new();
    char err[512];
    r.pool = sf_pool_new(r.base, &cfg.pool, err, sizeof(err));
    if (r.pool == NULL || sf_pool_start(r.pool, err, sizeof(err)) < 0) {
        fprintf(stderr, "pool-run: cannot start the pool: %s\n", err);
        sf_pool_free(r.pool);
        event_base_free(r.base);
        return 1;
    }
    struct event *sigint = evsignal_new(r.base, SIGINT, on_signal, &r);
    struct event *sigterm = evsignal_new(r.base, SIGTERM, on_signal, &r);
    struct event *start = evtimer_new(r.base, on_start, &r);
    event_add(sigint, NULL);
    event_add(sigterm, NULL);
    struct timeval zero = {0, 0};
    evtimer_add(start, &zero);
    event_base_dispatch(r.base);
    double secs = now_s() - r.t0;
    json_t *summary = json_pack(
        "{s:{s:I, s:I, s:I, s:f, s:f}, s:o}", "summary", "calls", (json_int_t)r.completed, "ok",
        (json_int_t)r.ok, "errors", (json_int_t)r.errors, "seconds", secs, "calls_per_s",
        secs > 0 ? (double)r.completed / secs : 0.0, "pool", sf_pool_stats_json(&r.stats));
    char *s = json_dumps(summary, JSON_COMPACT);
    puts(s);
    free(s);
    json_decref(summary);
    event_free(sigint);
    event_free(sigterm);
    event_free(start);
    sf_pool_free(r.pool);
    event_base_free(r.base);
    if (r.in && r.in != stdin)
        fclose(r.in);
    return r.exit_code;
}
