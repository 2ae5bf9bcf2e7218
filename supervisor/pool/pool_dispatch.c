/*
 * pool_dispatch.c — the call queue: where a submitted call waits, which
 * worker it goes to, and how it ends.
 *
 * In the order a call meets it: sf_pool_submit (pool.c) appends it to the
 * queue; pool_dispatch walks the queue in submit order and hands each call
 * it can place to a worker (worker_send, pool_worker.c) — the session's
 * worker while the session has calls in flight (pipelining, up to
 * pipeline_depth), else by affinity, else the least loaded — and starts
 * workers when calls wait and none has room (lazy start, overflow). What was
 * placed during a loop turn is written at its end, one write per worker
 * (pool_flush): from the pool's own event, or from the end-of-turn step of
 * the loop's owner (sf_pool_set_turn_end, sf_pool_flush). A call ends
 * through call_finish: answered, failed by a worker's death or a timeout —
 * or, where the caller must not be called back at once (inside
 * sf_pool_submit or sf_pool_stop), from the loop soon after
 * (call_fail_deferred, pool_on_defer). Calls waiting past checkout_timeout
 * fail (pool_expire_checkouts, from the maintenance tick); a dead worker's
 * calls that had not started go back to the front of the queue
 * (worker_requeue).
 */
#include "pool_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* ---------------------------------------------------------------- the queue */

/* A submitted call joins the queue at the back. */
void queue_push_back(sf_pool *p, pcall *c)
{
    c->next = NULL;
    if (p->qtail)
        p->qtail->next = c;
    else
        p->qhead = c;
    p->qtail = c;
    p->queued++;
}

/* A call that has to go again goes before every call submitted after it. */
void queue_push_front(sf_pool *p, pcall *c)
{
    c->next = p->qhead;
    p->qhead = c;
    if (p->qtail == NULL)
        p->qtail = c;
    p->queued++;
}

/* Detaches c (whose predecessor is prev, or NULL) from the pool queue. */
void queue_unlink(sf_pool *p, pcall *prev, pcall *c)
{
    if (prev)
        prev->next = c->next;
    else
        p->qhead = c->next;
    if (p->qtail == c)
        p->qtail = prev;
    c->next = NULL;
    p->queued--;
}

/* A call owns its session key, its frame and its payload. */
void pcall_free(pcall *c)
{
    msgpack_sbuffer_destroy(&c->frame);
    free(c->payload);
    free(c->session);
    free(c);
}

/* ---------------------------------------------------------------- placing calls */

/* Where call c may go now: a worker, NULL to wait, or (worker *)-1 to fail fast. */
#define FAIL_FAST ((worker *)-1)

static worker *choose_worker(sf_pool *p, pcall *c)
{
    sess *s = c->s;
    if (s->blocked_scan == p->scan_no || s->compact_inflight)
        return NULL; /* an earlier call of this session is waiting, or may have to go again */
    if (s->inflight > 0) {
        worker *b = &p->slots[s->bound];
        return worker_capacity(b) > 0 ? b : NULL;
    }
    worker *pref = NULL;
    if (s->last_slot >= 0) {
        worker *l = &p->slots[s->last_slot];
        if (l->gen == s->last_gen && worker_usable(l))
            pref = l;
    }
    if (pref && p->cfg.affinity != SF_AFFINITY_HINT) {
        if (pref->inflight == 0)
            return pref;
        if (p->cfg.affinity == SF_AFFINITY_STRICT_FAIL_FAST)
            return FAIL_FAST;
        return worker_capacity(pref) > 0 ? pref : NULL;
    }
    if (pref && pref->inflight == 0)
        return pref;
    /* Least loaded, idle first; among equals the lowest slot keeps caches warm. */
    worker *best = NULL;
    for (int i = 0; i < p->nslots; i++) {
        worker *w = &p->slots[i];
        if (worker_capacity(w) > 0 && (best == NULL || w->inflight < best->inflight))
            best = w;
    }
    return best;
}

/* Starts workers when calls wait and no worker has room: lazy start, then overflow. */
static void pool_grow_for_demand(sf_pool *p, int waiting)
{
    int starting = 0;
    for (int i = 0; i < p->nslots; i++)
        starting += p->slots[i].state == W_STARTING;
    int need = waiting - starting;
    for (int i = 0; i < p->nslots && need > 0; i++) {
        worker *w = &p->slots[i];
        if (w->state == W_EMPTY && slot_fill(p, w))
            need--;
    }
}

/*
 * One pass over the queue in submit order: each call goes where
 * choose_worker says, or waits, and then its session's later calls wait too
 * (blocked_scan); workers are started for what waits. A pool_dispatch from
 * inside a pass (a callback that submits) only asks for one more. The writes
 * come later: at the end of the read callback that caused the pass
 * (hold_flush), else at the end of the loop turn (ev_flush, or the owner's
 * wake).
 */
void pool_dispatch(sf_pool *p)
{
    if (p->in_dispatch) {
        p->dispatch_again = true;
        return;
    }
    p->in_dispatch = true;
    do {
        p->dispatch_again = false;
        p->scan_no++;
        int room = 0;
        for (int i = 0; i < p->nslots; i++)
            room += worker_capacity(&p->slots[i]);
        int waiting = 0;
        pcall *prev = NULL, *c = p->qhead;
        while (c) {
            if (room == 0) {
                /* Nothing more can be placed in this pass: the rest waits as is. */
                waiting = p->queued;
                break;
            }
            pcall *next = c->next;
            worker *w = choose_worker(p, c);
            if (w == FAIL_FAST) {
                queue_unlink(p, prev, c);
                call_fail_deferred(p, c, "checkout_timeout",
                                   "the session's worker is busy (affinity=strict_fail_fast)");
            } else if (w) {
                queue_unlink(p, prev, c);
                worker_send(w, c);
                room--;
            } else {
                c->s->blocked_scan = p->scan_no;
                waiting++;
                prev = c;
            }
            c = next;
        }
        if (waiting > 0 && !p->stopping)
            pool_grow_for_demand(p, waiting);
    } while (p->dispatch_again);
    p->in_dispatch = false;
    if (p->hold_flush == 0 && !p->flush_pending) {
        /* A submit from outside a pool callback (a Redis reply, a Kafka batch): the other
         * submits of this loop turn come next; write them all with one writev. */
        p->flush_pending = true;
        if (p->flush_wake)
            p->flush_wake(p->flush_wake_arg);
        else
            event_active(p->ev_flush, EV_TIMEOUT, 0);
    }
}

/* ---------------------------------------------------------------- the end of a loop turn */

/* Writes the output of every worker that got something since the last flush. */
void pool_flush(sf_pool *p)
{
    for (int i = 0; i < p->nslots; i++) {
        worker *w = &p->slots[i];
        if (w->dirty) {
            w->dirty = false;
            worker_flush(w);
        }
    }
}

/* ev_flush, activated by pool_dispatch: the turn's submits from outside, written together. */
void pool_on_flush(evutil_socket_t fd, short what, void *arg)
{
    sf_pool_flush(arg);
}

/* The same write, run by the loop's owner when it has an end-of-turn step (pool.h). */
void sf_pool_flush(sf_pool *p)
{
    p->flush_pending = false;
    pool_flush(p);
}

void sf_pool_set_turn_end(sf_pool *p, void (*wake)(void *arg), void *arg)
{
    p->flush_wake = wake;
    p->flush_wake_arg = arg;
}

/* ---------------------------------------------------------------- how a call ends */

/* After a session's last call is done, forget it unless it holds a hint. */
static void sess_release(sf_pool *p, pcall *c)
{
    sess *s = c->s;
    if (c->compact)
        s->compact_inflight = false; /* however the call ended (a crash, a timeout) */
    if (s->inflight == 0)
        s->bound = -1;
    if (s->inflight == 0 && s->queued == 0)
        p->active_sessions--;
    if (s->inflight == 0 && s->queued == 0 && s->last_slot < 0)
        sf_smap_del(p->sessions, c->session, c->session_len);
}

/* Reports an outcome to the caller and frees the call. */
void call_finish(sf_pool *p, pcall *c, const sf_pool_result *r)
{
    p->total_commands++;
    if (!r->ok)
        p->total_errors++;
    sess_release(p, c);
    c->done(c->arg, r);
    pcall_free(c);
}

/* Fails c now: its callback runs before call_fail returns. */
void call_fail(sf_pool *p, pcall *c, const char *type, const char *msg, const char *wid)
{
    uint64_t t = now_us();
    sf_pool_result r = {.ok = false,
                        .err_type = sf_cstr(type),
                        .err_message = sf_cstr(msg),
                        .worker_id = wid ? wid : "",
                        .queued_us = (c->sent_us ? c->sent_us : t) - c->submit_us,
                        .total_us = t - c->submit_us};
    call_finish(p, c, &r);
}

/*
 * Fails c from the loop, soon. c stays counted in its session's `queued`
 * until then (pool_on_defer), so the session entry it points at cannot be
 * swept or deleted in between.
 */
void call_fail_deferred(sf_pool *p, pcall *c, const char *type, const char *fmt, ...)
{
    c->fail_type = type;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->fail_msg, sizeof(c->fail_msg), fmt, ap);
    va_end(ap);
    c->next = NULL;
    if (p->failed_tail)
        p->failed_tail->next = c;
    else
        p->failed_head = c;
    p->failed_tail = c;
    event_active(p->ev_defer, EV_TIMEOUT, 0);
}

/* ev_defer: the deferred failures, then, once the pool has stopped, sf_pool_stop's callback. */
void pool_on_defer(evutil_socket_t fd, short what, void *arg)
{
    sf_pool *p = arg;
    while (p->failed_head) {
        pcall *c = p->failed_head;
        p->failed_head = c->next;
        if (p->failed_head == NULL)
            p->failed_tail = NULL;
        c->s->queued--; /* counted until now, so its session entry stayed */
        call_fail(p, c, c->fail_type, c->fail_msg, NULL);
    }
    if (p->stopped && p->stop_done) {
        void (*done)(void *) = p->stop_done;
        p->stop_done = NULL;
        done(p->stop_arg);
    }
}

/* ---------------------------------------------------------------- calls that cannot stay */

/* Fails the queued calls that waited longer than checkout_timeout (the maintenance tick). */
void pool_expire_checkouts(sf_pool *p)
{
    uint64_t t = now_us();
    pcall *prev = NULL, *c = p->qhead;
    while (c) {
        pcall *next = c->next;
        if (c->deadline_us && c->deadline_us <= t) {
            queue_unlink(p, prev, c);
            c->s->queued--;
            p->checkout_timeouts++;
            int busy = 0;
            for (int i = 0; i < p->nslots; i++)
                busy += p->slots[i].inflight > 0;
            char msg[192];
            snprintf(msg, sizeof(msg),
                     "no worker became available within checkout_timeout (%u ms); "
                     "busy=%d pool_size=%d max_overflow=%d",
                     p->cfg.checkout_timeout_ms, busy, p->cfg.pool_size, p->cfg.max_overflow);
            call_fail(p, c, "checkout_timeout", msg, NULL);
        } else {
            prev = c;
        }
        c = next;
    }
}

/* Moves a dead worker's unstarted calls back to the front of the queue. */
void worker_requeue(sf_pool *p, worker *w, pcall *first)
{
    pcall *tail = NULL;
    int n = 0;
    for (pcall *c = first; c; c = c->next) {
        c->s->inflight--;
        c->s->queued++;
        c->sent_us = 0;
        if (c->compact) { /* it goes to another worker, in full */
            c->compact = false;
            c->s->compact_inflight = false;
        }
        tail = c;
        n++;
        if (c->s->inflight == 0)
            c->s->bound = -1;
    }
    if (tail == NULL)
        return;
    if (p->stopping) { /* nothing dispatches any more: answer them */
        for (pcall *c = first, *next; c; c = next) {
            next = c->next;
            call_fail_deferred(p, c, "unavailable", "the pool is shutting down");
        }
        return;
    }
    tail->next = p->qhead;
    p->qhead = first;
    if (p->qtail == NULL)
        p->qtail = tail;
    p->queued += n;
}
