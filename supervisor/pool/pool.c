/*
 * pool.c — the pool as its owner sees it: configuration, create, start,
 * submit, reload, stop, free (pool.h is the contract), and the pool's own
 * events: SIGCHLD, the maintenance tick and the health tick.
 *
 * The rest is one file per concern, all sharing pool_internal.h:
 *   pool_dispatch.c  the call queue: which worker a call goes to, how it ends,
 *                    the end-of-turn write (sf_pool_flush)
 *   pool_worker.c    one worker process's life, from spawn to death
 *   pool_cache.c     what each worker is known to hold, so what a call carries
 *   pool_stats.c     the numbers (sf_pool_get_stats, sf_pool_stats_json)
 *
 * One call, in order: sf_pool_submit (here) → pool_dispatch → worker_send →
 * worker_write_call → pool_flush at the end of the loop turn; then the
 * answer: on_worker_read → worker_on_frame → worker_complete_head →
 * call_finish → the caller's callback.
 *
 * The pool's own events come first here, because sf_pool_new wires them;
 * then the API in the order an owner calls it.
 */
#include "pool_internal.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "alloc.h"
#include "hash.h"
#include "log.h"

#define MAINT_INTERVAL_MS 50
#define SESSION_HINTS_MAX 200000

/* ---------------------------------------------------------------- configuration */

const char *sf_affinity_name(sf_affinity a)
{
    switch (a) {
    case SF_AFFINITY_HINT:
        return "hint";
    case SF_AFFINITY_STRICT:
        return "strict";
    case SF_AFFINITY_STRICT_FAIL_FAST:
        return "strict_fail_fast";
    }
    return "unknown";
}

int sf_affinity_parse(const char *s, sf_affinity *out)
{
    for (int a = SF_AFFINITY_HINT; a <= SF_AFFINITY_STRICT_FAIL_FAST; a++) {
        if (strcmp(s, sf_affinity_name((sf_affinity)a)) == 0) {
            *out = (sf_affinity)a;
            return 0;
        }
    }
    return -1;
}

void sf_pool_config_defaults(sf_pool_config *c)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (cores < 1)
        cores = 1;
    memset(c, 0, sizeof(*c));
    c->pool_size = (int)(2 * cores);
    c->max_overflow = (int)cores;
    c->lazy = false;
    c->checkout_timeout_ms = 5000;
    c->health_check_interval_ms = 30000;
    c->request_timeout_ms = 0;
    c->startup_timeout_ms = 10000;
    c->shutdown_timeout_ms = 10000;
    c->overflow_idle_timeout_ms = 10000;
    c->max_requests = 0;
    c->max_requests_jitter_pct = 10;
    c->max_rss_mb = 0;
    c->pipeline_depth = 1;
    c->affinity = SF_AFFINITY_HINT;
    c->restart_backoff_ms = 100;
    c->restart_backoff_max_ms = 10000;
    c->crash_loop_threshold = 5;
    c->crash_loop_window_ms = 30000;
    c->python = "python3";
    c->worker_module = "snakefleet.worker";
    c->zygote = true;
    c->thread_limits = true;
    c->max_frame_bytes = SF_DEFAULT_MAX_FRAME;
    c->id_prefix = "w";
}

/* ---------------------------------------------------------------- the pool's own events */

/* Workers in slots [from, to) that run or are starting, not those stopping. */
static int pool_live_in(const sf_pool *p, int from, int to)
{
    int n = 0;
    for (int i = from; i < to; i++)
        n += p->slots[i].state != W_EMPTY && p->slots[i].state != W_STOPPING;
    return n;
}

static bool pool_owns_pid(const sf_pool *p, pid_t pid)
{
    for (int i = 0; i < p->nslots; i++)
        if (p->slots[i].state != W_EMPTY && p->slots[i].pid == pid)
            return true;
    return (p->zygote && sf_zygote_pid(p->zygote) == pid) ||
           (p->old_zygote && sf_zygote_pid(p->old_zygote) == pid);
}

/*
 * As a subreaper the supervisor inherits whatever user code leaves behind: a
 * program's child whose parent, a worker, exited. Those are reaped here, or
 * they would stay zombies. They are in the pool's process group, or in a
 * group or session of their own (daemonizing code); a child in this
 * process's own group is someone else's to wait for (e.g. librdkafka's
 * system() for Kerberos). waitid(WNOWAIT) looks without reaping; a worker or
 * the zygote that just died is left to its own handling.
 */
static void pool_reap_orphans(sf_pool *p)
{
    for (int n = 0; n < 64; n++) {
        siginfo_t si;
        memset(&si, 0, sizeof(si));
        if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) < 0 || si.si_pid == 0)
            return;
        if (pool_owns_pid(p, si.si_pid) || getpgid(si.si_pid) == getpgrp())
            return; /* its own handling, or someone else's child (next SIGCHLD: again) */
        waitpid(si.si_pid, NULL, WNOHANG);
        sf_debug("pool.reaped_orphan", "pid=%d", (int)si.si_pid);
    }
}

/* Settles every worker and zygote that exited (SIGCHLD, and each maintenance tick). */
static void pool_reap(sf_pool *p)
{
    for (int i = 0; i < p->nslots; i++) {
        worker *w = &p->slots[i];
        if (w->state == W_EMPTY || w->pid <= 0)
            continue;
        int st;
        pid_t r = waitpid(w->pid, &st, WNOHANG);
        if (r == w->pid) {
            w->status = st;
            w->reaped = true;
            worker_handle_death(w);
        } else if (r < 0 && errno == ECHILD) {
            /* Not our child (a zygote-forked worker before reparenting): poll later. */
            if (!sf_proc_alive(w->pid)) {
                w->status = 0;
                worker_handle_death(w);
            }
        }
    }
    if (p->zygote)
        sf_zygote_reap(p->zygote);
    if (p->old_zygote) {
        sf_zygote_reap(p->old_zygote);
        if (sf_zygote_stopped(p->old_zygote)) {
            sf_zygote_free(p->old_zygote);
            p->old_zygote = NULL;
        }
    }
    pool_reap_orphans(p);
}

static void on_sigchld(evutil_socket_t fd, short what, void *arg)
{
    pool_reap(arg);
}

/*
 * The maintenance tick (MAINT_INTERVAL_MS): reaping, checkout timeouts,
 * idle overflow workers stopped, RSS limits of idle workers, slots refilled
 * once their backoff has passed, the rolling reload, leaving the degraded
 * mark, and the shutdown deadline.
 */
static void on_maint(evutil_socket_t fd, short what, void *arg)
{
    sf_pool *p = arg;
    uint64_t t = now_us();
    pool_reap(p);
    pool_expire_checkouts(p);
    for (int i = 0; i < p->nslots; i++) {
        worker *w = &p->slots[i];
        bool overflow = i >= p->cfg.pool_size;
        if (overflow && w->state == W_READY && w->inflight == 0 && !p->stopping &&
            t - w->idle_since_us >= (uint64_t)p->cfg.overflow_idle_timeout_ms * 1000) {
            sf_info("pool.overflow_reap", "worker=%s idle_ms=%llu", w->id,
                    (unsigned long long)(t - w->idle_since_us) / 1000);
            worker_begin_stop(w);
        }
        if (w->state == W_READY && w->inflight == 0 && p->cfg.max_rss_mb)
            worker_after_call(w);
        if (w->state == W_EMPTY && !overflow && !p->stopping && w->respawn_at_us &&
            t >= w->respawn_at_us && (!p->cfg.lazy || p->queued > 0)) {
            slot_fill(p, w);
        }
    }
    pool_roll(p);
    if (p->degraded && p->consecutive_crashes == 0) {
        p->degraded = false;
        sf_info("pool.recovered", "workers=%d", pool_live_in(p, 0, p->nslots));
    }
    if (p->stopping && p->stop_deadline_us && t >= p->stop_deadline_us) {
        for (int i = 0; i < p->nslots; i++) {
            worker *w = &p->slots[i];
            if (w->state != W_EMPTY && w->pid > 0) {
                sf_warn("pool.worker_kill", "worker=%s pid=%d reason=shutdown_timeout", w->id,
                        (int)w->pid);
                worker_kill(w, "unavailable", "the pool stopped before the call finished");
            }
        }
        p->stop_deadline_us = 0;
    }
    pool_dispatch(p);
    pool_check_stopped(p);
}

/* The health tick: every worker's check (worker_health_check), then the pings go out. */
static void on_health(evutil_socket_t fd, short what, void *arg)
{
    sf_pool *p = arg;
    for (int i = 0; i < p->nslots; i++)
        worker_health_check(&p->slots[i]);
    pool_flush(p);
}

/* ---------------------------------------------------------------- create, start */

static char *dup_or_null(const char *s)
{
    return s && *s ? strdup(s) : NULL;
}

sf_pool *sf_pool_new(struct event_base *base, const sf_pool_config *cfg, char *errbuf,
                     size_t errlen)
{
#define BAD(...)                                                                                   \
    do {                                                                                           \
        snprintf(errbuf, errlen, __VA_ARGS__);                                                     \
        return NULL;                                                                               \
    } while (0)
    if (cfg->pool_size < 0 || cfg->max_overflow < 0 || cfg->pool_size + cfg->max_overflow < 1)
        BAD("pool.pool_size + pool.max_overflow must be at least 1 (got %d + %d)", cfg->pool_size,
            cfg->max_overflow);
    if (cfg->pool_size + cfg->max_overflow > MAX_SLOTS)
        BAD("pool.pool_size + pool.max_overflow must be at most %d (got %d)", MAX_SLOTS,
            cfg->pool_size + cfg->max_overflow);
    if (cfg->pipeline_depth < 1 || cfg->pipeline_depth > 1024)
        BAD("pool.pipeline_depth must be 1..1024 (got %d)", cfg->pipeline_depth);
    if (cfg->python == NULL || cfg->python[0] != '/')
        BAD("python.executable must be an absolute path (got '%s')",
            cfg->python ? cfg->python : "");
    if (cfg->startup_timeout_ms == 0 || cfg->shutdown_timeout_ms == 0)
        BAD("pool.startup_timeout and pool.shutdown_timeout must be > 0");
    if (cfg->max_frame_bytes < 1024)
        BAD("pool.max_frame_bytes must be at least 1024");
#undef BAD
    sf_pool *p = sf_xcalloc(1, sizeof(*p));
    if (p == NULL) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    p->base = base;
    p->cfg = *cfg;
    p->python = strdup(cfg->python);
    p->python_path = dup_or_null(cfg->python_path);
    p->worker_module = strdup(cfg->worker_module ? cfg->worker_module : "snakefleet.worker");
    p->preload = dup_or_null(cfg->preload);
    p->id_prefix = strdup(cfg->id_prefix ? cfg->id_prefix : "w");
    p->cfg.python = p->python;
    p->cfg.python_path = p->python_path;
    p->cfg.worker_module = p->worker_module;
    p->cfg.preload = p->preload;
    p->cfg.id_prefix = p->id_prefix;
    int e = 0;
    if (cfg->thread_limits) {
        p->env[e++] = strdup("OMP_NUM_THREADS=1");
        p->env[e++] = strdup("OPENBLAS_NUM_THREADS=1");
        p->env[e++] = strdup("MKL_NUM_THREADS=1");
        p->env[e++] = strdup("NUMEXPR_NUM_THREADS=1");
    }
    for (int i = 0; cfg->extra_env && cfg->extra_env[i] && e < 16; i++)
        p->env[e++] = strdup(cfg->extra_env[i]);
    if (p->python_path) {
        const char *old = getenv("PYTHONPATH");
        size_t n = strlen(p->python_path) + (old ? strlen(old) : 0) + 16;
        p->env[e] = sf_xmalloc(n);
        snprintf(p->env[e++], n, "PYTHONPATH=%s%s%s", p->python_path, old && *old ? ":" : "",
                 old && *old ? old : "");
    }
    p->env[e] = NULL;
    for (int i = 0; i <= e; i++)
        p->exec_env[i] = p->env[i];
    if (p->preload) {
        size_t n = strlen(p->preload) + 32;
        p->exec_env[e] = sf_xmalloc(n);
        snprintf(p->exec_env[e], n, "SNAKEFLEET_PRELOAD=%s", p->preload);
        p->exec_env[e + 1] = NULL;
    }
    p->nslots = cfg->pool_size + cfg->max_overflow;
    for (int i = 0; i < p->nslots; i++) {
        p->slots[i].slot = i;
        p->slots[i].state = W_EMPTY;
        p->slots[i].pool = p;
    }
    p->sessions = sf_smap_new(sizeof(sess));
    p->ev_sigchld = evsignal_new(base, SIGCHLD, on_sigchld, p);
    p->ev_maint = event_new(base, -1, EV_PERSIST, on_maint, p);
    p->ev_health = event_new(base, -1, EV_PERSIST, on_health, p);
    p->ev_defer = event_new(base, -1, 0, pool_on_defer, p);
    p->ev_flush = event_new(base, -1, 0, pool_on_flush, p);
    return p;
}

int sf_pool_start(sf_pool *p, char *errbuf, size_t errlen)
{
    if (access(p->python, X_OK) != 0) {
        snprintf(errbuf, errlen, "cannot execute python '%s': %s", p->python, strerror(errno));
        return -1;
    }
    event_add(p->ev_sigchld, NULL);
    struct timeval tv = ms_tv(MAINT_INTERVAL_MS);
    event_add(p->ev_maint, &tv);
    if (p->cfg.health_check_interval_ms) {
        tv = ms_tv(p->cfg.health_check_interval_ms);
        event_add(p->ev_health, &tv);
    }
    if (p->cfg.zygote && p->preload) {
        /* Workers forked by the zygote are re-parented to us, so we can reap them. */
        if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
            sf_warn("pool.subreaper_failed", "errno=%d", errno);
        p->zygote = sf_zygote_start(p->base, p->python, p->preload, p->env, &p->pgid,
                                    p->cfg.startup_timeout_ms, errbuf, errlen);
        if (p->zygote == NULL)
            sf_warn("pool.zygote_unavailable", "reason=\"%s\" fallback=exec", errbuf);
    }
    p->started = true;
    if (!p->cfg.lazy) {
        for (int i = 0; i < p->cfg.pool_size; i++) {
            if (worker_spawn(p, &p->slots[i], errbuf, errlen) < 0) {
                sf_error("pool.spawn_failed", "slot=%d reason=\"%s\"", i, errbuf);
                if (i == 0)
                    return -1;
            }
        }
    }
    sf_info("pool.started",
            "pool_size=%d max_overflow=%d lazy=%d pipeline_depth=%d affinity=%s zygote=%d",
            p->cfg.pool_size, p->cfg.max_overflow, p->cfg.lazy, p->cfg.pipeline_depth,
            sf_affinity_name(p->cfg.affinity), p->zygote != NULL);
    return 0;
}

/* ---------------------------------------------------------------- submit */

/* Drops the affinity hint of sessions with nothing queued or in flight. */
static int sess_forget_idle(void *ctx, const char *key, size_t len, void *value)
{
    const sess *s = value;
    return s->inflight == 0 && s->queued == 0;
}

int sf_pool_submit(sf_pool *p, const sf_pool_call *call, sf_pool_done_fn done, void *arg)
{
    if (p->stopping || !p->started)
        return -1;
    pcall *c = sf_xcalloc(1, sizeof(*c));
    if (c == NULL)
        return -1;
    c->seq = ++p->next_seq;
    c->session_len = call->session.len;
    c->session = sf_xmalloc(call->session.len + 1);
    memcpy(c->session, call->session.ptr, call->session.len);
    c->session[call->session.len] = '\0';
    c->done = done;
    c->arg = arg;
    c->submit_us = now_us();
    if (call->deadline_ms) {
        uint64_t wall = sf_wall_ms();
        c->run_deadline_us =
            c->submit_us + (call->deadline_ms > wall ? (call->deadline_ms - wall) * 1000 : 0);
    }
    if (p->cfg.checkout_timeout_ms)
        c->deadline_us = c->submit_us + (uint64_t)p->cfg.checkout_timeout_ms * 1000;
    msgpack_sbuffer_init(&c->frame);
    sf_call fc = {.seq = c->seq,
                  .op = call->op,
                  .session = call->session,
                  .program = call->program,
                  .args = call->args,
                  .request_id = call->request_id,
                  .deadline_ms = call->deadline_ms,
                  .meta = call->meta,
                  .traceparent = call->traceparent,
                  .tracestate = call->tracestate};
    c->nfields = (uint16_t)sf_frame_open_call(&c->frame, &fc);
    c->drops_cache =
        strcmp(call->op, "cleanup_session") == 0 || strcmp(call->op, "delete_program") == 0;
    c->spec_required = strcmp(call->op, "create_program") == 0;
    if (call->spec || call->spec_raw.len || call->state || call->state_raw.len) {
        msgpack_sbuffer pl;
        msgpack_sbuffer_init(&pl);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &pl, msgpack_sbuffer_write);
        if (call->spec)
            msgpack_pack_object(&pk, *call->spec);
        else if (call->spec_raw.len)
            msgpack_sbuffer_write(&pl, call->spec_raw.ptr, call->spec_raw.len);
        c->spec_len = (uint32_t)pl.size;
        if (call->state)
            msgpack_pack_object(&pk, *call->state);
        else if (call->state_raw.len)
            msgpack_sbuffer_write(&pl, call->state_raw.ptr, call->state_raw.len);
        c->state_len = (uint32_t)pl.size - c->spec_len;
        c->payload = msgpack_sbuffer_release(&pl);
        if (has_spec(c)) {
            c->spec_hash = sf_hash64(c->payload, c->spec_len);
            c->prog_hash = sf_hash64(call->program.ptr, call->program.len);
        }
        if (has_state(c))
            c->state_hash = sf_hash64(c->payload + c->spec_len, c->state_len);
    }
    if (sf_smap_count(p->sessions) >= SESSION_HINTS_MAX)
        sf_smap_sweep(p->sessions, sess_forget_idle, NULL);
    int created;
    c->s = sf_smap_put(p->sessions, c->session, c->session_len, &created);
    if (c->s == NULL) {
        pcall_free(c);
        return -1;
    }
    if (created) {
        memset(c->s, 0, sizeof(*c->s));
        c->s->bound = -1;
        c->s->last_slot = -1;
    }
    if (c->s->queued == 0 && c->s->inflight == 0)
        p->active_sessions++;
    c->s->queued++;
    size_t frame_size = c->frame.size + 64 + c->spec_len + c->state_len;
    if (frame_size - 4 > p->cfg.max_frame_bytes) {
        call_fail_deferred(p, c, "invalid_request", "the call is %zu bytes, over max_frame_bytes",
                           frame_size);
        return 0;
    }
    queue_push_back(p, c);
    pool_dispatch(p);
    return 0;
}

/* ---------------------------------------------------------------- reload */

/*
 * A rolling replacement after a reload: workers spawned before it are
 * drained (a busy one after its current call, so no call is cut short) and
 * their slots filled afresh, which imports the programs' code anew. At most
 * half the pool (at least one worker) is being replaced at any time, so the
 * rest keeps serving; idle workers go first.
 */
void pool_roll(sf_pool *p)
{
    if (!p->rolling || p->stopping)
        return;
    int limit = p->cfg.pool_size / 2 > 1 ? p->cfg.pool_size / 2 : 1;
    int changing = 0, stale = 0;
    for (int i = 0; i < p->nslots; i++) {
        const worker *w = &p->slots[i];
        changing += w->state == W_STARTING || w->state == W_DRAINING || w->state == W_STOPPING;
        stale += w->state != W_EMPTY && w->code_gen != p->code_gen;
    }
    for (int pass = 0; pass < 2 && changing < limit; pass++) {
        for (int i = 0; i < p->nslots && changing < limit; i++) {
            worker *w = &p->slots[i];
            if (w->state != W_READY || w->code_gen == p->code_gen || (pass == 0 && w->inflight))
                continue;
            sf_info("pool.worker_recycle", "worker=%s pid=%d reason=reload calls=%llu", w->id,
                    (int)w->pid, (unsigned long long)w->calls);
            p->recycles++;
            w->state = W_DRAINING;
            changing++;
            if (w->inflight == 0)
                worker_begin_stop(w);
        }
    }
    if (stale == 0) {
        p->rolling = false;
        sf_info("pool.reloaded", "code_gen=%u workers=%d", p->code_gen,
                pool_live_in(p, 0, p->nslots));
    }
}

int sf_pool_reload(sf_pool *p)
{
    if (!p->started || p->stopping)
        return -1;
    p->code_gen++;
    p->reloads++;
    p->rolling = true;
    sf_info("pool.reload", "code_gen=%u workers=%d zygote=%d", p->code_gen,
            pool_live_in(p, 0, p->nslots), p->cfg.zygote && p->preload);
    if (p->cfg.zygote && p->preload) {
        /* The zygote imported the preload modules: forks of it would run the old code. */
        sf_zygote_free(p->old_zygote); /* a reload before the last one's zygote exited */
        p->old_zygote = p->zygote;
        sf_zygote_stop(p->old_zygote);
        char errbuf[256];
        p->zygote = sf_zygote_start(p->base, p->python, p->preload, p->env, &p->pgid,
                                    p->cfg.startup_timeout_ms, errbuf, sizeof(errbuf));
        if (p->zygote == NULL)
            sf_warn("pool.zygote_unavailable", "reason=\"%s\" fallback=exec", errbuf);
    }
    pool_roll(p);
    return 0;
}

/* ---------------------------------------------------------------- stop, free */

/* Stopped once no worker or zygote is left; sf_pool_stop's callback runs from pool_on_defer. */
void pool_check_stopped(sf_pool *p)
{
    if (!p->stopping || p->stopped)
        return;
    for (int i = 0; i < p->nslots; i++) {
        if (p->slots[i].state != W_EMPTY)
            return;
    }
    if ((p->zygote && !sf_zygote_stopped(p->zygote)) ||
        (p->old_zygote && !sf_zygote_stopped(p->old_zygote)))
        return;
    p->stopped = true;
    evtimer_del(p->ev_maint);
    evtimer_del(p->ev_health);
    sf_info("pool.stopped", "total_commands=%llu", (unsigned long long)p->total_commands);
    event_active(p->ev_defer, EV_TIMEOUT, 0);
}

void sf_pool_stop(sf_pool *p, void (*done)(void *arg), void *arg)
{
    p->stop_done = done;
    p->stop_arg = arg;
    if (p->stopping) {
        pool_check_stopped(p);
        return;
    }
    p->stopping = true;
    p->stop_deadline_us = now_us() + (uint64_t)p->cfg.shutdown_timeout_ms * 1000;
    sf_info("pool.stopping", "queued=%d", p->queued);
    while (p->qhead) {
        pcall *c = p->qhead;
        queue_unlink(p, NULL, c);
        call_fail_deferred(p, c, "unavailable", "the pool is shutting down");
    }
    for (int i = 0; i < p->nslots; i++) {
        worker *w = &p->slots[i];
        if (w->state == W_READY || w->state == W_DRAINING) {
            if (w->inflight == 0)
                worker_begin_stop(w);
            else
                w->state = W_DRAINING;
        } else if (w->state == W_STARTING) {
            kill(w->pid, SIGTERM);
            w->state = W_STOPPING;
            worker_arm_timer(w, now_us() + (uint64_t)p->cfg.shutdown_timeout_ms * 500);
        }
    }
    if (p->zygote)
        sf_zygote_stop(p->zygote);
    pool_check_stopped(p);
}

bool sf_pool_stopped(const sf_pool *p)
{
    return p->stopped || !p->started;
}

void sf_pool_free(sf_pool *p)
{
    if (p == NULL)
        return;
    for (int i = 0; i < p->nslots; i++) {
        worker *w = &p->slots[i];
        if (w->state != W_EMPTY && w->pid > 0) {
            kill(w->pid, SIGKILL);
            waitpid(w->pid, NULL, 0);
        }
        for (pcall *c = w->head, *n; c; c = n) {
            n = c->next;
            pcall_free(c);
        }
        if (w->ev_timer)
            event_free(w->ev_timer);
        worker_close_fds(w);
        if (w->out)
            evbuffer_free(w->out);
        sf_reader_free(w->reader);
    }
    for (pcall *c = p->qhead, *n; c; c = n) {
        n = c->next;
        pcall_free(c);
    }
    for (pcall *c = p->failed_head, *n; c; c = n) {
        n = c->next;
        pcall_free(c);
    }
    sf_zygote_free(p->zygote);
    sf_zygote_free(p->old_zygote);
    event_free(p->ev_sigchld);
    event_free(p->ev_maint);
    event_free(p->ev_health);
    event_free(p->ev_defer);
    event_free(p->ev_flush);
    sf_smap_free(p->sessions);
    for (int i = 0; p->exec_env[i]; i++)
        free(p->exec_env[i]); /* env's strings, plus the preload entry */
    free(p->python);
    free(p->python_path);
    free(p->worker_module);
    free(p->preload);
    free(p->id_prefix);
    free(p);
}
