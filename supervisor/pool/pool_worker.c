/*
 * pool_worker.c — one worker process's life, as a state machine (wstate).
 *
 * W_EMPTY → (worker_spawn) W_STARTING → (its ready frame) W_READY, idle or
 * busy → (to be recycled, or the pool stops, with calls in flight)
 * W_DRAINING → (no call left) W_STOPPING → (reaped) W_EMPTY. An idle worker
 * goes from W_READY to W_STOPPING at once, and so does a starting one when
 * the pool stops. A kill (startup or request timeout, a bad frame, a failed
 * health check) or any exit ends in worker_handle_death, from any state.
 *
 * In the order a worker meets it: worker_spawn starts the process, forked by
 * the zygote when there is one, else exec'd; slot_fill refills an empty slot
 * once its restart backoff has passed. Frames out: worker_send puts a call
 * in the worker's in-flight list and its frame (completed by pool_cache.c)
 * in the worker's output, written at the end of the loop turn
 * (worker_flush). Frames in: the ready handshake, results (answered in
 * order, so the head of the in-flight list is the call running), pongs,
 * error frames; stderr lines are logged. Between calls, worker_after_call
 * decides about recycling, so a call is never cut short for it. Then health
 * pings, the graceful stop (shutdown frame, SIGTERM, SIGKILL) with the
 * worker's timer, and the death of the process: its calls settled, a crash
 * counted for backoff and the pool's degraded mark, the slot refilled.
 */
#include "pool_internal.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

#define RSS_CHECK_US 50000

/* ---------------------------------------------------------------- starting */

/* A worker's own max_requests, spread by ± max_requests_jitter_pct so that workers differ. */
static uint64_t jittered_max_requests(const sf_pool_config *c)
{
    if (c->max_requests == 0)
        return 0;
    uint64_t spread = c->max_requests * c->max_requests_jitter_pct / 100;
    if (spread == 0)
        return c->max_requests;
    uint64_t v = c->max_requests - spread + (uint64_t)random() % (2 * spread + 1);
    return v ? v : 1;
}

/* What a worker's pipes and timer are wired to (worker_spawn); they follow below. */
static void on_worker_read(evutil_socket_t fd, short what, void *arg);
static void on_worker_write(evutil_socket_t fd, short what, void *arg);
static void on_worker_stderr(evutil_socket_t fd, short what, void *arg);
static void on_worker_timer(evutil_socket_t fd, short what, void *arg);

/* Starts a worker process in an empty slot. Returns 0 or -1 (errbuf says why). */
int worker_spawn(sf_pool *p, worker *w, char *errbuf, size_t errlen)
{
    uint32_t gen = w->gen + 1;
    memset(w, 0, sizeof(*w));
    w->pool = p;
    w->slot = (int)(w - p->slots);
    w->gen = gen;
    w->fds.to_child = w->fds.from_child = w->fds.err_child = -1;
    snprintf(w->id, sizeof(w->id), "%s%llu", p->id_prefix, (unsigned long long)++p->next_worker_no);
    char *argv[] = {p->python, "-m", p->worker_module, "--worker-id", w->id, "--max-frame-bytes",
                    NULL,      NULL};
    char maxf[24];
    snprintf(maxf, sizeof(maxf), "%u", p->cfg.max_frame_bytes);
    argv[6] = maxf;
    pid_t pid = -1;
    w->spawn_us = now_us(); /* before the zygote round trip: ready_ms is what a caller waits */
    if (p->zygote && sf_zygote_ready(p->zygote))
        pid = sf_zygote_spawn(p->zygote, w->id, p->cfg.max_frame_bytes, &w->fds, errbuf, errlen);
    if (pid < 0) {
        if (p->zygote && sf_zygote_ready(p->zygote))
            sf_warn("pool.zygote_spawn_failed", "worker=%s reason=\"%s\" fallback=exec", w->id,
                    errbuf);
        pid = sf_proc_spawn(argv, p->exec_env, &p->pgid, &w->fds, errbuf, errlen);
    }
    if (pid < 0) {
        w->state = W_EMPTY;
        return -1;
    }
    w->pid = pid;
    w->state = W_STARTING;
    w->code_gen = p->code_gen;
    w->max_requests = jittered_max_requests(&p->cfg);
    w->out = evbuffer_new();
    w->reader = sf_reader_new(p->cfg.max_frame_bytes);
    w->ev_read = event_new(p->base, w->fds.from_child, EV_READ | EV_PERSIST, on_worker_read, w);
    w->ev_write = event_new(p->base, w->fds.to_child, EV_WRITE, on_worker_write, w);
    w->ev_err = event_new(p->base, w->fds.err_child, EV_READ | EV_PERSIST, on_worker_stderr, w);
    w->ev_timer = evtimer_new(p->base, on_worker_timer, w);
    event_add(w->ev_read, NULL);
    event_add(w->ev_err, NULL);
    worker_arm_timer(w, w->spawn_us + (uint64_t)p->cfg.startup_timeout_ms * 1000);
    p->spawned++;
    sf_debug("pool.worker_spawned", "worker=%s pid=%d slot=%d overflow=%d", w->id, (int)pid,
             w->slot, w->slot >= p->cfg.pool_size);
    return 0;
}

/* Fills an empty slot now if its backoff has passed. Returns 1 when a worker started. */
int slot_fill(sf_pool *p, worker *w)
{
    if (w->state != W_EMPTY || p->stopping || now_us() < w->respawn_at_us)
        return 0;
    char err[256];
    if (worker_spawn(p, w, err, sizeof(err)) == 0)
        return 1;
    sf_error("pool.spawn_failed", "slot=%d reason=\"%s\"", w->slot, err);
    /* Count it as a crash so a broken interpreter backs off instead of spinning. */
    p->consecutive_crashes++;
    uint64_t backoff = (uint64_t)p->cfg.restart_backoff_ms
                       << (p->consecutive_crashes < 16 ? p->consecutive_crashes : 16);
    if (backoff > p->cfg.restart_backoff_max_ms)
        backoff = p->cfg.restart_backoff_max_ms;
    w->respawn_at_us = now_us() + backoff * 1000;
    return 0;
}

/* ---------------------------------------------------------------- frames out */

/*
 * Puts c at the tail of w's in-flight list and its frame in w's output
 * (written at the end of the loop turn); the first call in flight starts
 * the request timer.
 */
void worker_send(worker *w, pcall *c)
{
    sf_pool *p = w->pool;
    uint64_t t = now_us();
    c->sent_us = t;
    c->next = NULL;
    if (w->tail)
        w->tail->next = c;
    else
        w->head = c;
    w->tail = c;
    if (w->inflight++ == 0) {
        w->head_start_us = t;
        worker_arm_head_timer(w);
    }
    worker_write_call(w, c);
    c->s->queued--;
    c->s->inflight++;
    c->s->bound = w->slot;
    sf_hist_record(&p->queue_wait, t - c->submit_us);
    w->dirty = true;
}

/* Writes what w's output holds, as far as the pipe takes it; on_worker_write does the rest. */
void worker_flush(worker *w)
{
    if (w->out == NULL) /* the worker is gone and its buffers with it */
        return;
    if (w->fds.to_child < 0) {
        evbuffer_drain(w->out, evbuffer_get_length(w->out));
        return;
    }
    while (evbuffer_get_length(w->out) > 0) {
        int n = evbuffer_write(w->out, w->fds.to_child);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                break;
            /* EPIPE: the worker is gone; SIGCHLD will tell the rest. */
            evbuffer_drain(w->out, evbuffer_get_length(w->out));
            return;
        }
    }
    if (evbuffer_get_length(w->out) > 0)
        event_add(w->ev_write, NULL);
}

static void on_worker_write(evutil_socket_t fd, short what, void *arg)
{
    worker_flush(arg);
}

/* ---------------------------------------------------------------- frames in */

/* The head call is off the worker: restart the request timer for the next one, or go idle. */
void worker_head_done(worker *w, uint64_t t)
{
    if (w->inflight > 0) {
        w->head_start_us = t;
        worker_arm_head_timer(w);
    } else {
        w->idle_since_us = t;
        evtimer_del(w->ev_timer);
    }
}

/*
 * The head call's answer: the call leaves the worker, the session learns what
 * the worker now holds, the caller gets the result. A stale_cache answer to a
 * call sent without its spec or state sends it again instead.
 */
static void worker_complete_head(worker *w, const sf_frame *f)
{
    sf_pool *p = w->pool;
    pcall *c = w->head;
    if (!f->ok && c->compact && sf_str_eq(f->err_type, "stale_cache")) {
        worker_retry_full(w, c);
        return;
    }
    w->head = c->next;
    if (w->head == NULL)
        w->tail = NULL;
    w->inflight--;
    uint64_t t = now_us();
    c->s->inflight--;
    /* The new state as bytes: hashed here, written to Redis as they are by the caller. */
    msgpack_sbuffer st = {0};
    if (f->state) {
        msgpack_packer pk;
        msgpack_packer_init(&pk, &st, msgpack_sbuffer_write);
        msgpack_pack_object(&pk, *f->state);
    }
    sess_learn_from_answer(w, c, f, &st);
    w->calls++;
    if (!f->ok)
        w->errors++;
    uint64_t exec = f->exec_us ? f->exec_us : t - w->head_start_us;
    sf_hist_record(&p->exec, exec);
    if (f->ok)
        p->consecutive_crashes = 0;
    sf_pool_result r = {.ok = f->ok,
                        .value = f->value,
                        .state = f->state,
                        .state_raw = {st.data, (uint32_t)st.size},
                        .err_type = f->err_type,
                        .err_message = f->err_message,
                        .err_traceback = f->err_traceback,
                        .worker_id = w->id,
                        .queued_us = c->sent_us - c->submit_us,
                        .exec_us = exec,
                        .total_us = t - c->submit_us};
    worker_head_done(w, t);
    call_finish(p, c, &r);
    msgpack_sbuffer_destroy(&st);
    worker_after_call(w);
}

/* One frame from the worker: the ready handshake, a result, a pong, an error frame. */
static void worker_on_frame(worker *w, const char *body, size_t len)
{
    sf_pool *p = w->pool;
    sf_frame f;
    sf_err err;
    if (sf_frame_decode(&f, body, len, &err) < 0) {
        sf_error("pool.bad_frame", "worker=%s pid=%d reason=\"%s\"", w->id, (int)w->pid,
                 err.message);
        worker_kill(w, "worker_crashed", "worker sent an invalid frame: %s", err.message);
        return;
    }
    switch (f.type) {
    case SF_FRAME_READY:
        if (w->state == W_STARTING) {
            w->state = W_READY;
            w->ready_us = now_us();
            w->idle_since_us = w->ready_us;
            evtimer_del(w->ev_timer);
            sf_info("pool.worker_ready", "worker=%s pid=%d ready_ms=%.1f", w->id, (int)w->pid,
                    (double)(w->ready_us - w->spawn_us) / 1000.0);
            if (p->stopping)
                worker_begin_stop(w);
            else
                pool_roll(p);
        }
        break;
    case SF_FRAME_RESULT:
        if (w->head == NULL || w->head->seq != f.seq) {
            sf_error("pool.unexpected_result", "worker=%s seq=%llu expected=%llu", w->id,
                     (unsigned long long)f.seq, (unsigned long long)(w->head ? w->head->seq : 0));
            worker_kill(w, "worker_crashed", "worker answered out of order");
            break;
        }
        worker_complete_head(w, &f);
        break;
    case SF_FRAME_PONG:
        w->ping_outstanding = false;
        if (f.rss_kb)
            w->rss_kb = f.rss_kb;
        break;
    case SF_FRAME_ERROR:
        sf_error("pool.worker_error_frame", "worker=%s message=\"%.*s\"", w->id,
                 SF_STR_ARG(f.message));
        if (f.has_seq && w->head && w->head->seq == f.seq) {
            /* The worker could not read this call and ran nothing: it fails, the worker
             * serves on, and nothing about its caches is learned from it. */
            pcall *c = w->head;
            c->compact = c->sent_spec = c->sent_state = false;
            sess_forget_caches(c->s);
            sf_frame failed = {.type = SF_FRAME_RESULT,
                               .seq = f.seq,
                               .ok = false,
                               .err_type = sf_cstr("internal"),
                               .err_message = f.message};
            worker_complete_head(w, &failed);
        }
        break;
    default:
        sf_warn("pool.unexpected_frame", "worker=%s type=%s", w->id, sf_frame_type_name(f.type));
        break;
    }
    sf_frame_release(&f);
}

/* Reads what the worker's stdout holds (up to 64 reads) and handles every whole frame. */
static void worker_drain_pipe(worker *w)
{
    char buf[65536];
    for (int rounds = 0; rounds < 64 && w->fds.from_child >= 0; rounds++) {
        ssize_t n = read(w->fds.from_child, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            break; /* EAGAIN: all read */
        if (n == 0) {
            w->eof = true;
            event_del(w->ev_read);
            break;
        }
        if (sf_reader_feed(w->reader, buf, (size_t)n) < 0)
            break;
        const char *body;
        size_t len;
        sf_err err;
        int rc;
        while ((rc = sf_reader_next(w->reader, &body, &len, &err)) == 1)
            worker_on_frame(w, body, len);
        if (rc < 0) {
            sf_error("pool.bad_stream", "worker=%s reason=\"%s\"", w->id, err.message);
            worker_kill(w, "worker_crashed", "worker broke the frame stream: %s", err.message);
            event_del(w->ev_read);
            break;
        }
        if ((size_t)n < sizeof(buf))
            break;
    }
}

/* The worker's stdout: its frames, then dispatch; what they cause is written once, at the end. */
static void on_worker_read(evutil_socket_t fd, short what, void *arg)
{
    worker *w = arg;
    sf_pool *p = w->pool;
    p->hold_flush++;
    worker_drain_pipe(w);
    pool_dispatch(p);
    p->hold_flush--;
    pool_flush(p);
}

static void worker_log_line(worker *w, const char *line, size_t len)
{
    char q[2200];
    sf_log_quote(q, sizeof(q), line, len);
    sf_info("worker.stderr", "worker=%s pid=%d line=%s", w->id, (int)w->pid, q);
}

/* The worker's stderr, logged line by line (a longer line in pieces of errline's size). */
static void on_worker_stderr(evutil_socket_t fd, short what, void *arg)
{
    worker *w = arg;
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n <= 0) {
        if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            if (w->errlen)
                worker_log_line(w, w->errline, w->errlen);
            w->errlen = 0;
            event_del(w->ev_err);
        }
        return;
    }
    for (ssize_t i = 0; i < n; i++) {
        if (buf[i] == '\n' || w->errlen == sizeof(w->errline)) {
            worker_log_line(w, w->errline, w->errlen);
            w->errlen = 0;
            if (buf[i] == '\n')
                continue;
        }
        w->errline[w->errlen++] = buf[i];
    }
}

/* ---------------------------------------------------------------- between calls */

/* Recycling decisions, made between calls so the current call always finishes. */
void worker_after_call(worker *w)
{
    sf_pool *p = w->pool;
    if (w->state == W_READY) {
        const char *why = NULL;
        if (w->max_requests && w->calls >= w->max_requests) {
            why = "max_requests";
        } else if (p->cfg.max_rss_mb) {
            uint64_t t = now_us();
            if (t - w->rss_checked_us >= RSS_CHECK_US || w->inflight == 0) {
                w->rss_checked_us = t;
                w->rss_kb = sf_proc_rss_kb(w->pid);
                if (w->rss_kb > (uint64_t)p->cfg.max_rss_mb * 1024)
                    why = "max_rss_mb";
            }
        }
        if (why) {
            sf_info("pool.worker_recycle", "worker=%s pid=%d reason=%s calls=%llu rss_kb=%llu",
                    w->id, (int)w->pid, why, (unsigned long long)w->calls,
                    (unsigned long long)w->rss_kb);
            p->recycles++;
            w->state = W_DRAINING;
        }
    }
    if (w->state == W_DRAINING && w->inflight == 0)
        worker_begin_stop(w);
}

/*
 * One worker's part of the pool's health tick: a ready worker that has not
 * answered its last ping is killed; an idle one is pinged (the caller
 * flushes).
 */
void worker_health_check(worker *w)
{
    static uint64_t seq;
    if (w->state != W_READY)
        return;
    if (w->ping_outstanding) {
        sf_error("pool.health_check_failed", "worker=%s pid=%d", w->id, (int)w->pid);
        worker_kill(w, "worker_crashed", "worker did not answer its health check");
        return;
    }
    if (w->inflight == 0) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        sf_frame_pack_ping(&sb, ++seq);
        evbuffer_add(w->out, sb.data, sb.size);
        msgpack_sbuffer_destroy(&sb);
        w->ping_outstanding = true;
        w->dirty = true;
    }
}

/* ---------------------------------------------------------------- stop, kill, timer */

/*
 * The graceful stop: a shutdown frame; SIGTERM after half of
 * shutdown_timeout, SIGKILL after the other half (on_worker_timer).
 */
void worker_begin_stop(worker *w)
{
    if (w->state == W_STOPPING || w->state == W_EMPTY)
        return;
    sf_pool *p = w->pool;
    w->state = W_STOPPING;
    w->stop_phase = 0;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    sf_frame_pack_shutdown(&sb);
    evbuffer_add(w->out, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    worker_flush(w);
    worker_arm_timer(w, now_us() + (uint64_t)p->cfg.shutdown_timeout_ms * 500);
}

/*
 * SIGKILL. The first reason given is what the call it was running fails
 * with; worker_handle_death does the rest once the process is reaped.
 */
void worker_kill(worker *w, const char *type, const char *fmt, ...)
{
    if (w->pid <= 0)
        return;
    if (w->kill_type == NULL) {
        w->kill_type = type;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(w->kill_msg, sizeof(w->kill_msg), fmt, ap);
        va_end(ap);
    }
    kill(w->pid, SIGKILL);
}

/* Sets w's one timer to fire at at_us (rounded up to the millisecond). */
void worker_arm_timer(worker *w, uint64_t at_us)
{
    uint64_t t = now_us();
    uint64_t ms = at_us > t ? (at_us - t + 999) / 1000 : 0;
    struct timeval tv = ms_tv(ms);
    evtimer_add(w->ev_timer, &tv);
}

/*
 * The head call's timer: its request timeout (pool.request_timeout, counted
 * from when it became the head) or its request's deadline, whichever is first.
 */
void worker_arm_head_timer(worker *w)
{
    const sf_pool *p = w->pool;
    uint64_t at = UINT64_MAX;
    if (p->cfg.request_timeout_ms)
        at = w->head_start_us + (uint64_t)p->cfg.request_timeout_ms * 1000;
    if (w->head && w->head->run_deadline_us && w->head->run_deadline_us < at)
        at = w->head->run_deadline_us;
    if (at == UINT64_MAX)
        evtimer_del(w->ev_timer);
    else
        worker_arm_timer(w, at);
}

/* w's timer, by state: startup timeout, the head call's request timeout or deadline, the steps
 * of a stop. */
static void on_worker_timer(evutil_socket_t fd, short what, void *arg)
{
    worker *w = arg;
    sf_pool *p = w->pool;
    switch (w->state) {
    case W_STARTING:
        sf_error("pool.startup_timeout", "worker=%s pid=%d startup_timeout_ms=%u", w->id,
                 (int)w->pid, p->cfg.startup_timeout_ms);
        worker_kill(w, "worker_crashed", "worker sent no ready frame within %u ms",
                    p->cfg.startup_timeout_ms);
        w->kill_type = NULL; /* counts as a crash for backoff */
        break;
    case W_READY:
    case W_DRAINING:
        if (w->head == NULL)
            break;
        uint64_t t = now_us();
        if (w->head->run_deadline_us && t + 1000 >= w->head->run_deadline_us) {
            /* A sync call cannot be stopped but by its process: killed, replaced. */
            sf_warn("pool.deadline_exceeded", "worker=%s pid=%d seq=%llu ran_ms=%llu", w->id,
                    (int)w->pid, (unsigned long long)w->head->seq,
                    (unsigned long long)((t - w->head_start_us) / 1000));
            worker_kill(w, "deadline_exceeded",
                        "the request's deadline_ms passed while it ran (after %llu ms)",
                        (unsigned long long)((t - w->head_start_us) / 1000));
        } else if (p->cfg.request_timeout_ms &&
                   t + 1000 >= w->head_start_us + (uint64_t)p->cfg.request_timeout_ms * 1000) {
            sf_warn("pool.request_timeout", "worker=%s pid=%d seq=%llu request_timeout_ms=%u",
                    w->id, (int)w->pid, (unsigned long long)w->head->seq,
                    p->cfg.request_timeout_ms);
            worker_kill(w, "timeout", "the call ran longer than request_timeout (%u ms)",
                        p->cfg.request_timeout_ms);
        } else {
            worker_arm_head_timer(w); /* early: the head changed since it was armed */
        }
        break;
    case W_STOPPING:
        if (w->stop_phase == 0) {
            w->stop_phase = 1;
            kill(w->pid, SIGTERM);
            worker_arm_timer(w, now_us() + (uint64_t)p->cfg.shutdown_timeout_ms * 500);
        } else {
            sf_warn("pool.worker_kill", "worker=%s pid=%d reason=shutdown_timeout", w->id,
                    (int)w->pid);
            kill(w->pid, SIGKILL);
        }
        break;
    case W_EMPTY:
        break;
    }
}

/* ---------------------------------------------------------------- death */

/* Frees the pipes' events and closes the pipes (the timer and the buffers stay). */
void worker_close_fds(worker *w)
{
    if (w->ev_read)
        event_free(w->ev_read);
    if (w->ev_write)
        event_free(w->ev_write);
    if (w->ev_err)
        event_free(w->ev_err);
    w->ev_read = w->ev_write = w->ev_err = NULL;
    if (w->fds.to_child >= 0)
        close(w->fds.to_child);
    if (w->fds.from_child >= 0)
        close(w->fds.from_child);
    if (w->fds.err_child >= 0)
        close(w->fds.err_child);
    w->fds.to_child = w->fds.from_child = w->fds.err_child = -1;
}

/*
 * A crash: counted towards the degraded mark (crash_loop_threshold within
 * crash_loop_window) and the slot's backoff, which doubles from
 * restart_backoff up to restart_backoff_max.
 */
static void pool_note_crash(sf_pool *p, worker *w)
{
    p->crashes++;
    p->consecutive_crashes++;
    uint64_t t = now_us();
    p->crash_times[p->crash_idx++ % 32] = t;
    int recent = 0;
    uint64_t window = (uint64_t)p->cfg.crash_loop_window_ms * 1000;
    for (int i = 0; i < 32; i++)
        recent += p->crash_times[i] && t - p->crash_times[i] <= window;
    if (recent >= p->cfg.crash_loop_threshold && !p->degraded) {
        p->degraded = true;
        sf_error("pool.degraded", "crashes=%d window_ms=%u", recent, p->cfg.crash_loop_window_ms);
    }
    uint64_t backoff = (uint64_t)p->cfg.restart_backoff_ms
                       << (p->consecutive_crashes - 1 < 16 ? p->consecutive_crashes - 1 : 16);
    if (backoff > p->cfg.restart_backoff_max_ms)
        backoff = p->cfg.restart_backoff_max_ms;
    w->respawn_at_us = t + backoff * 1000;
}

/* The worker process is reaped: settle its calls, free the slot, maybe respawn. */
void worker_handle_death(worker *w)
{
    sf_pool *p = w->pool;
    w->reaped = true; /* no new call goes to it from a result callback below */
    w->dirty = false;
    worker_drain_pipe(w); /* results written just before it exited still count */
    char how[160];
    const char *kind = sf_proc_describe_exit(w->status, how, sizeof(how));
    bool expected = w->state == W_STOPPING && w->kill_type == NULL;
    pcall *head = w->head;
    pcall *rest = head ? head->next : NULL;
    if (head)
        head->next = NULL;
    w->head = w->tail = NULL;
    w->inflight = 0;
    if (!expected) {
        sf_error("pool.worker_died", "worker=%s pid=%d kind=%s reason=\"%s\" in_flight=%d", w->id,
                 (int)w->pid, w->kill_type ? w->kill_type : kind, w->kill_type ? w->kill_msg : how,
                 head ? 1 : 0);
    } else {
        sf_debug("pool.worker_stopped", "worker=%s pid=%d how=\"%s\"", w->id, (int)w->pid, how);
    }
    /* A crash, or our kill, is a restart; a requested stop (recycle, reap) is not. */
    bool crashed = !expected && w->kill_type == NULL;
    if (crashed)
        pool_note_crash(p, w);
    else
        w->respawn_at_us = 0;
    if (!expected)
        p->restarts++;
    if (w->kill_type && strcmp(w->kill_type, "timeout") == 0)
        p->timeouts++;
    char wid[32];
    memcpy(wid, w->id, sizeof(wid));
    evtimer_del(w->ev_timer);
    event_free(w->ev_timer);
    w->ev_timer = NULL;
    worker_close_fds(w);
    evbuffer_free(w->out);
    w->out = NULL;
    sf_reader_free(w->reader);
    w->reader = NULL;
    const char *ktype = w->kill_type;
    char kmsg[160];
    memcpy(kmsg, w->kill_msg, sizeof(kmsg));
    w->state = W_EMPTY;
    w->pid = 0;
    worker_requeue(p, w, rest);
    if (head) {
        head->s->inflight--; /* off the worker: the session may go elsewhere now */
        if (ktype)
            call_fail(p, head, ktype, kmsg, wid);
        else {
            char msg[200];
            snprintf(msg, sizeof(msg), "%s (%s) while running this call", how, kind);
            call_fail(p, head, "worker_crashed", msg, wid);
        }
    }
    bool regular = w->slot < p->cfg.pool_size;
    if (!p->stopping && regular && (!p->cfg.lazy || p->queued > 0)) {
        if (w->respawn_at_us == 0)
            slot_fill(p, w);
    }
    pool_roll(p);
    pool_dispatch(p);
    pool_check_stopped(p);
}
