/*
 * raw_echo.c — the ceiling of the design: the same Python worker
 * (`python -m snakefleet.worker`) and the same call frames as pool_bench, but
 * driven by the least C that can do it. No pool: each worker has a fixed set
 * of sessions, --depth calls are kept in its pipe at all times, and one
 * poll() loop reads every result the pipe holds, decodes it (sf_frame_decode,
 * the same codec the pool uses), records its latency, packs the next call for
 * the same worker, and writes all of a worker's new calls with one write().
 *
 * What remains between this and the pool is the pool's own logic (queue,
 * session map, dispatch, callbacks, per-call allocations, write batching) and
 * libevent: the difference is what pool.c costs.
 *
 * Output: one JSON line with calls/s, latency percentiles (submit → result
 * read), and CPU per call of this process and of the workers.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_common.h"
#include "frame.h"
#include "frame_reader.h"
#include "proc.h"

#ifndef SF_VENV_PYTHON
#define SF_VENV_PYTHON "/usr/bin/python3"
#endif

#define MAX_WORKERS 16
#define MAX_DEPTH   256
#define READ_CHUNK  65536

typedef struct rworker {
    int pid;
    char id[16];
    sf_proc_pipes fds;
    sf_reader *reader;
    msgpack_sbuffer out; /* packed calls not yet written */
    size_t out_off;      /* bytes of `out` already written */
    bench_sessions sessions;
    /* calls in flight, answered in order: a ring of (seq, session, submit time) */
    uint64_t seq[MAX_DEPTH], sent_us[MAX_DEPTH];
    int session[MAX_DEPTH];
    int head, inflight;
    bool ready, eof;
} rworker;

typedef struct raw {
    int workers, depth, sessions_per_worker, slow_every, sleep_ms;
    double warmup_s, duration_s;
    const char *python, *label;
    rworker w[MAX_WORKERS];
    bench_calls calls;
    uint64_t next_seq;
    bool measuring, submitting;
    uint64_t completed, errors;
    bench_lat lat_fast, lat_slow;
    char first_error[256];
} raw;

static raw R;

/* Packs the next call for w on its next idle session (not written yet). */
static void raw_queue_call(raw *r, rworker *w)
{
    int sid = bench_sessions_take(&w->sessions);
    if (sid < 0)
        return;
    bool slow = bench_session_slow(&r->calls, sid);
    sf_call c = {.seq = ++r->next_seq,
                 .op = "execute_program",
                 .session = sf_cstr(w->sessions.names[sid]),
                 .program = sf_cstr(slow ? "sleep" : "noop"),
                 .args = slow ? r->calls.args_sleep.obj : r->calls.args_noop.obj,
                 .spec = slow ? r->calls.spec_sleep.obj : r->calls.spec_noop.obj};
    sf_frame_pack_call(&w->out, &c);
    int slot = (w->head + w->inflight) % MAX_DEPTH;
    w->seq[slot] = c.seq;
    w->session[slot] = sid;
    w->sent_us[slot] = bench_now_us();
    w->inflight++;
}

/* Writes what it can of w's pending calls. Returns -1 when the pipe broke. */
static int raw_flush(rworker *w)
{
    while (w->out_off < w->out.size) {
        ssize_t n = write(w->fds.to_child, w->out.data + w->out_off, w->out.size - w->out_off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return 0;
        if (n < 0)
            return -1;
        w->out_off += (size_t)n;
    }
    w->out.size = 0; /* all written: reuse the buffer */
    w->out_off = 0;
    return 0;
}

static void raw_on_frame(raw *r, rworker *w, const char *body, size_t len)
{
    sf_frame f;
    sf_err err;
    if (sf_frame_decode(&f, body, len, &err) < 0) {
        fprintf(stderr, "raw_echo: %s: bad frame: %s\n", w->id, err.message);
        r->errors++;
        return;
    }
    if (f.type == SF_FRAME_READY) {
        w->ready = true;
    } else if (f.type == SF_FRAME_RESULT && w->inflight > 0 && f.seq == w->seq[w->head]) {
        uint64_t t = bench_now_us();
        int sid = w->session[w->head];
        if (!f.ok) {
            r->errors++;
            if (r->first_error[0] == '\0')
                snprintf(r->first_error, sizeof(r->first_error), "%.*s: %.*s",
                         SF_STR_ARG(f.err_type), SF_STR_ARG(f.err_message));
        }
        if (r->measuring) {
            r->completed++;
            bench_lat_add(bench_session_slow(&r->calls, sid) ? &r->lat_slow : &r->lat_fast,
                          t - w->sent_us[w->head]);
        }
        w->head = (w->head + 1) % MAX_DEPTH;
        w->inflight--;
        bench_sessions_give(&w->sessions, sid);
        if (r->submitting)
            raw_queue_call(r, w);
    } else {
        fprintf(stderr, "raw_echo: %s: unexpected %s frame\n", w->id, sf_frame_type_name(f.type));
        r->errors++;
    }
    sf_frame_release(&f);
}

/* Reads everything w's result pipe holds and handles every whole frame. */
static void raw_read(raw *r, rworker *w)
{
    char buf[READ_CHUNK];
    for (;;) {
        ssize_t n = read(w->fds.from_child, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return; /* EAGAIN: drained */
        if (n == 0) {
            w->eof = true;
            return;
        }
        if (sf_reader_feed(w->reader, buf, (size_t)n) < 0)
            return;
        const char *body;
        size_t len;
        sf_err err;
        int rc;
        while ((rc = sf_reader_next(w->reader, &body, &len, &err)) == 1)
            raw_on_frame(r, w, body, len);
        if (rc < 0) {
            fprintf(stderr, "raw_echo: %s: broken stream: %s\n", w->id, err.message);
            w->eof = true;
            return;
        }
        if ((size_t)n < sizeof(buf))
            return;
    }
}

/* Copies a worker's stderr to ours (it only logs its start and exit). */
static void raw_pass_stderr(rworker *w)
{
    char buf[4096];
    ssize_t n = read(w->fds.err_child, buf, sizeof(buf));
    if (n > 0) {
        ssize_t k = write(2, buf, (size_t)n);
        (void)k; /* best effort: a lost log line does not change the numbers */
    }
}

/* One pass of the loop: wait for any pipe, then serve what is ready. */
static int raw_poll(raw *r, int timeout_ms)
{
    struct pollfd pfd[MAX_WORKERS * 3];
    for (int i = 0; i < r->workers; i++) {
        rworker *w = &r->w[i];
        bool pending = w->out_off < w->out.size;
        pfd[3 * i] = (struct pollfd){.fd = w->eof ? -1 : w->fds.from_child, .events = POLLIN};
        pfd[3 * i + 1] = (struct pollfd){.fd = w->fds.err_child, .events = POLLIN};
        pfd[3 * i + 2] = (struct pollfd){.fd = pending ? w->fds.to_child : -1, .events = POLLOUT};
    }
    int rc = poll(pfd, (nfds_t)(3 * r->workers), timeout_ms);
    if (rc < 0 && errno != EINTR)
        return -1;
    for (int i = 0; i < r->workers && rc > 0; i++) {
        rworker *w = &r->w[i];
        if (pfd[3 * i].revents)
            raw_read(r, w);
        if (pfd[3 * i + 1].revents & POLLIN)
            raw_pass_stderr(w);
        if (raw_flush(w) < 0)
            return -1;
    }
    return 0;
}

static int raw_spawn(raw *r, rworker *w, int i)
{
    snprintf(w->id, sizeof(w->id), "r%d", i + 1);
    char *argv[] = {(char *)r->python, "-m", "snakefleet.worker", "--worker-id", w->id, NULL};
    /* The pool's environment for workers: one thread per numeric library. */
    char *env[] = {"OMP_NUM_THREADS=1", "OPENBLAS_NUM_THREADS=1", "MKL_NUM_THREADS=1",
                   "NUMEXPR_NUM_THREADS=1", NULL};
    pid_t pgid = 0;
    char err[256];
    w->pid = sf_proc_spawn(argv, env, &pgid, &w->fds, err, sizeof(err));
    if (w->pid < 0) {
        fprintf(stderr, "raw_echo: spawn: %s\n", err);
        return -1;
    }
    w->reader = sf_reader_new(0);
    msgpack_sbuffer_init(&w->out);
    char prefix[16];
    snprintf(prefix, sizeof(prefix), "r%d-", i + 1);
    bench_sessions_init(&w->sessions, r->sessions_per_worker, prefix);
    return 0;
}

static uint64_t raw_workers_cpu(raw *r)
{
    uint64_t t = 0;
    for (int i = 0; i < r->workers; i++)
        t += bench_pid_cpu_us(r->w[i].pid);
    return t;
}

static bool raw_all_ready(raw *r)
{
    for (int i = 0; i < r->workers; i++) {
        if (!r->w[i].ready)
            return false;
    }
    return true;
}

static bool raw_any_inflight(raw *r)
{
    for (int i = 0; i < r->workers; i++) {
        if (r->w[i].inflight > 0 && !r->w[i].eof)
            return true;
    }
    return false;
}

static int parse_opts(int argc, char **argv, raw *r)
{
    r->workers = 2;
    r->depth = 1;
    r->sleep_ms = 5;
    r->warmup_s = 1.0;
    r->duration_s = 4.0;
    r->python = SF_VENV_PYTHON;
    r->label = "";
    static const struct option longopts[] = {
        {"workers", required_argument, NULL, 'w'},    {"depth", required_argument, NULL, 'd'},
        {"sessions", required_argument, NULL, 's'},   {"warmup-s", required_argument, NULL, 'W'},
        {"duration-s", required_argument, NULL, 'D'}, {"slow-every", required_argument, NULL, 'm'},
        {"sleep-ms", required_argument, NULL, 'z'},   {"python", required_argument, NULL, 'y'},
        {"label", required_argument, NULL, 'l'},      {NULL, 0, NULL, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case 'w':
            r->workers = atoi(optarg);
            break;
        case 'd':
            r->depth = atoi(optarg);
            break;
        case 's':
            r->sessions_per_worker = atoi(optarg);
            break;
        case 'W':
            r->warmup_s = atof(optarg);
            break;
        case 'D':
            r->duration_s = atof(optarg);
            break;
        case 'm':
            r->slow_every = atoi(optarg);
            break;
        case 'z':
            r->sleep_ms = atoi(optarg);
            break;
        case 'y':
            r->python = optarg;
            break;
        case 'l':
            r->label = optarg;
            break;
        default:
            return -1;
        }
    }
    if (r->sessions_per_worker <= 0)
        r->sessions_per_worker = r->depth * 4 < 8 ? 8 : r->depth * 4;
    if (r->workers < 1 || r->workers > MAX_WORKERS || r->depth < 1 || r->depth > MAX_DEPTH ||
        r->sessions_per_worker < r->depth || r->sessions_per_worker > BENCH_MAX_SESSIONS) {
        fprintf(stderr,
                "usage: raw_echo [--workers N<=%d] [--depth D<=%d] [--sessions S>=D]\n"
                "                [--warmup-s S] [--duration-s S] [--slow-every M]\n"
                "                [--sleep-ms MS] [--python PATH] [--label TEXT]\n",
                MAX_WORKERS, MAX_DEPTH);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    raw *r = &R;
    if (parse_opts(argc, argv, r) < 0)
        return 2;
    signal(SIGPIPE, SIG_IGN);
    if (bench_calls_init(&r->calls, r->slow_every, r->sleep_ms) < 0)
        return 1;
    for (int i = 0; i < r->workers; i++) {
        if (raw_spawn(r, &r->w[i], i) < 0)
            return 1;
    }
    uint64_t t0 = bench_now_us();
    while (!raw_all_ready(r)) {
        if (raw_poll(r, 100) < 0 || bench_now_us() - t0 > 60000000u) {
            fprintf(stderr, "raw_echo: workers did not become ready\n");
            return 1;
        }
    }
    /* Fill every pipe to its depth, then run the closed loop. */
    r->submitting = true;
    for (int i = 0; i < r->workers; i++) {
        for (int k = 0; k < r->depth; k++)
            raw_queue_call(r, &r->w[i]);
        raw_flush(&r->w[i]);
    }
    uint64_t warm_end = bench_now_us() + (uint64_t)(r->warmup_s * 1e6);
    while (bench_now_us() < warm_end)
        if (raw_poll(r, 5) < 0)
            return 1;
    uint64_t tm0 = bench_now_us(), cpu0 = bench_self_cpu_us(), vcsw0 = bench_self_vcsw();
    uint64_t wcpu0 = raw_workers_cpu(r);
    r->measuring = true;
    uint64_t tm_end = tm0 + (uint64_t)(r->duration_s * 1e6);
    while (bench_now_us() < tm_end)
        if (raw_poll(r, 5) < 0)
            return 1;
    r->measuring = false;
    r->submitting = false;
    uint64_t tm1 = bench_now_us(), cpu1 = bench_self_cpu_us(), vcsw1 = bench_self_vcsw();
    uint64_t wcpu1 = raw_workers_cpu(r);
    /* Drain, then close each worker's input: EOF makes it exit 0. */
    uint64_t drain_end = bench_now_us() + 10000000u;
    while (raw_any_inflight(r) && bench_now_us() < drain_end)
        if (raw_poll(r, 5) < 0)
            break;
    for (int i = 0; i < r->workers; i++) {
        rworker *w = &r->w[i];
        close(w->fds.to_child);
        int st;
        waitpid(w->pid, &st, 0);
        close(w->fds.from_child);
        close(w->fds.err_child);
        sf_reader_free(w->reader);
        msgpack_sbuffer_destroy(&w->out);
    }
    double secs = (double)(tm1 - tm0) / 1e6;
    double n = r->completed ? (double)r->completed : 1;
    json_t *o = json_object();
    json_object_set_new(o, "bench", json_string("raw_echo"));
    json_object_set_new(o, "label", json_string(r->label));
    json_object_set_new(o, "workers", json_integer(r->workers));
    json_object_set_new(o, "depth", json_integer(r->depth));
    json_object_set_new(o, "inflight", json_integer(r->workers * r->depth));
    json_object_set_new(o, "sessions", json_integer(r->workers * r->sessions_per_worker));
    json_object_set_new(o, "slow_every", json_integer(r->slow_every));
    json_object_set_new(o, "seconds", json_real(secs));
    json_object_set_new(o, "calls", json_integer((json_int_t)r->completed));
    json_object_set_new(o, "errors", json_integer((json_int_t)r->errors));
    if (r->first_error[0])
        json_object_set_new(o, "first_error", json_string(r->first_error));
    json_object_set_new(o, "calls_per_s", json_real(secs > 0 ? (double)r->completed / secs : 0));
    bench_lat_json(o, "", &r->lat_fast);
    if (r->slow_every)
        bench_lat_json(o, "slow_", &r->lat_slow);
    json_object_set_new(o, "driver_cpu_us_per_call", json_real((double)(cpu1 - cpu0) / n));
    json_object_set_new(o, "workers_cpu_us_per_call", json_real((double)(wcpu1 - wcpu0) / n));
    json_object_set_new(o, "driver_wakeups_per_call", json_real((double)(vcsw1 - vcsw0) / n));
    bench_emit(o);
    bench_calls_destroy(&r->calls);
    bench_lat_free(&r->lat_fast);
    bench_lat_free(&r->lat_slow);
    return r->errors ? 1 : 0;
}
