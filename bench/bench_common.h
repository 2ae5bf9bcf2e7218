/*
 * bench_common.h — what the pool driver (pool_bench.c) and the raw pipe
 * baseline (raw_echo.c) share, so that both measure the same thing the same
 * way: the clock, exact per-call latency percentiles, CPU time of this
 * process and of worker processes, the call arguments as msgpack objects, the
 * rotation of idle sessions, and the one-line JSON result.
 *
 * Header-only (static functions): each benchmark is a single translation unit.
 */
#ifndef SF_BENCH_COMMON_H
#define SF_BENCH_COMMON_H

#include <jansson.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "mp.h"

#define BENCH_MAX_SESSIONS 4096

static uint64_t bench_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* ------------------------------------------------------------ latencies */

/* Every latency of the measured window, kept whole: percentiles are exact. */
typedef struct bench_lat {
    uint32_t *v;
    size_t n, cap;
} bench_lat;

static void bench_lat_add(bench_lat *l, uint64_t us)
{
    if (l->n == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 65536;
        uint32_t *nv = realloc(l->v, ncap * sizeof(*nv));
        if (nv == NULL)
            return; /* out of memory: drop the sample rather than the run */
        l->v = nv;
        l->cap = ncap;
    }
    l->v[l->n++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

static int bench_cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Sorts the samples; call once before bench_lat_q. */
static void bench_lat_sort(bench_lat *l)
{
    if (l->n)
        qsort(l->v, l->n, sizeof(*l->v), bench_cmp_u32);
}

/* The q-quantile (nearest rank) of sorted samples; 0 when there are none. */
static uint32_t bench_lat_q(const bench_lat *l, double q)
{
    if (l->n == 0)
        return 0;
    size_t i = (size_t)(q * (double)l->n);
    return l->v[i < l->n ? i : l->n - 1];
}

static void bench_lat_free(bench_lat *l)
{
    free(l->v);
    memset(l, 0, sizeof(*l));
}

/* Adds {prefix}p50_us … max_us, count and over_1ms to a JSON object. */
static void bench_lat_json(json_t *o, const char *prefix, bench_lat *l)
{
    char k[64];
    bench_lat_sort(l);
    static const struct {
        const char *name;
        double q;
    } qs[] = {
        {"p50_us", 0.50}, {"p90_us", 0.90}, {"p99_us", 0.99}, {"p999_us", 0.999}, {"max_us", 1.0}};
    for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
        snprintf(k, sizeof(k), "%s%s", prefix, qs[i].name);
        json_object_set_new(o, k, json_integer(bench_lat_q(l, qs[i].q)));
    }
    snprintf(k, sizeof(k), "%scount", prefix);
    json_object_set_new(o, k, json_integer((json_int_t)l->n));
    /* Calls that waited behind something slow: over 1 ms for a no-op. */
    size_t over = 0;
    while (over < l->n && l->v[l->n - 1 - over] > 1000)
        over++;
    snprintf(k, sizeof(k), "%sover_1ms", prefix);
    json_object_set_new(o, k, json_integer((json_int_t)over));
}

/* ------------------------------------------------------------ CPU time */

/* CPU time (user + system) this process has used, in µs. */
static uint64_t bench_self_cpu_us(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000u +
           (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

/* Voluntary context switches of this process (a count of its sleeps). */
static uint64_t bench_self_vcsw(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (uint64_t)ru.ru_nvcsw;
}

/* CPU time (user + system) of process pid from /proc, in µs; 0 if unknown. */
static uint64_t bench_pid_cpu_us(int pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* Fields after the ")" that closes the command name: state is field 3,
     * utime field 14, stime field 15. */
    char *p = strrchr(buf, ')');
    if (p == NULL)
        return 0;
    unsigned long long ut = 0, st = 0;
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return 0;
    long hz = sysconf(_SC_CLK_TCK);
    return (ut + st) * 1000000ull / (uint64_t)(hz > 0 ? hz : 100);
}

/* ------------------------------------------------------------ call arguments */

/* A msgpack object built from JSON text, kept alive with its zone. */
typedef struct bench_obj {
    msgpack_sbuffer sb;
    msgpack_unpacked u;
    const msgpack_object *obj;
} bench_obj;

static int bench_obj_init(bench_obj *o, const char *json_text)
{
    msgpack_sbuffer_init(&o->sb);
    msgpack_unpacked_init(&o->u);
    o->obj = NULL;
    json_error_t je;
    json_t *j = json_loads(json_text, 0, &je);
    if (j == NULL) {
        fprintf(stderr, "bench: bad JSON '%s': %s\n", json_text, je.text);
        return -1;
    }
    msgpack_packer pk;
    msgpack_packer_init(&pk, &o->sb, msgpack_sbuffer_write);
    int rc = sf_mp_pack_json(&pk, j);
    json_decref(j);
    size_t off = 0;
    if (rc < 0 ||
        msgpack_unpack_next(&o->u, o->sb.data, o->sb.size, &off) != MSGPACK_UNPACK_SUCCESS) {
        fprintf(stderr, "bench: cannot pack '%s'\n", json_text);
        return -1;
    }
    o->obj = &o->u.data;
    return 0;
}

static void bench_obj_destroy(bench_obj *o)
{
    msgpack_unpacked_destroy(&o->u);
    msgpack_sbuffer_destroy(&o->sb);
}

/*
 * The two programs a benchmark call runs: the no-op (every session) and, for
 * the head-of-line table, a 5 ms sleep (sessions whose index is a multiple of
 * slow_every). The spec travels with every call, so any worker can build the
 * program; after the first call of a (session, worker) pair it is cached.
 */
typedef struct bench_calls {
    bench_obj args_noop, spec_noop, args_sleep, spec_sleep;
    int slow_every; /* 0: every call is the no-op */
} bench_calls;

static int bench_calls_init(bench_calls *c, int slow_every, int sleep_ms)
{
    char sleep_args[64];
    snprintf(sleep_args, sizeof(sleep_args), "{\"seconds\": %.4f}", sleep_ms / 1000.0);
    c->slow_every = slow_every;
    if (bench_obj_init(&c->args_noop, "{}") < 0 ||
        bench_obj_init(&c->spec_noop,
                       "{\"kind\": \"callable\", \"entry\": \"snakefleet.examples:noop\"}") < 0 ||
        bench_obj_init(&c->args_sleep, sleep_args) < 0 ||
        bench_obj_init(&c->spec_sleep,
                       "{\"kind\": \"callable\", \"entry\": \"snakefleet.examples:sleep\"}") < 0)
        return -1;
    return 0;
}

static bool bench_session_slow(const bench_calls *c, int session)
{
    return c->slow_every > 0 && session % c->slow_every == 0;
}

static void bench_calls_destroy(bench_calls *c)
{
    bench_obj_destroy(&c->args_noop);
    bench_obj_destroy(&c->spec_noop);
    bench_obj_destroy(&c->args_sleep);
    bench_obj_destroy(&c->spec_sleep);
}

/* ------------------------------------------------------------ sessions */

/*
 * Idle sessions, first in first out: a finished call hands its session back
 * to the tail and the next call takes the head, so the sessions rotate and
 * none ever has two calls at once (which would serialise them).
 */
typedef struct bench_sessions {
    int ring[BENCH_MAX_SESSIONS];
    int head, count, n;
    char names[BENCH_MAX_SESSIONS][24];
} bench_sessions;

static void bench_sessions_init(bench_sessions *s, int n, const char *prefix)
{
    s->n = n;
    s->head = 0;
    s->count = n;
    for (int i = 0; i < n; i++) {
        s->ring[i] = i;
        snprintf(s->names[i], sizeof(s->names[i]), "%s%05d", prefix, i);
    }
}

static int bench_sessions_take(bench_sessions *s)
{
    if (s->count == 0)
        return -1;
    int id = s->ring[s->head];
    s->head = (s->head + 1) % s->n;
    s->count--;
    return id;
}

static void bench_sessions_give(bench_sessions *s, int id)
{
    s->ring[(s->head + s->count) % s->n] = id;
    s->count++;
}

/* ------------------------------------------------------------ output */

/* Prints o as one compact JSON line on stdout and frees it. */
static void bench_emit(json_t *o)
{
    char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (text) {
        printf("%s\n", text);
        fflush(stdout);
        free(text);
    }
    json_decref(o);
}

#endif
