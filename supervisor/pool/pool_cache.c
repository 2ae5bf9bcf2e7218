/*
 * pool_cache.c — what each worker is known to hold, and so what a call has to
 * carry to it.
 *
 * A worker keeps the specs it built and the session state it last received
 * or produced (schemas/README.md, "Worker caches"). The pool keeps, per
 * session (sess, pool_internal.h), what the session's last worker
 * (last_slot, last_gen) holds as far as its answers tell. In the order a call
 * meets it: at send, worker_write_call completes the call's frame and leaves
 * out what that worker holds (only the versions travel); from the answer,
 * sess_learn_from_answer learns what the worker holds now; a worker that no
 * longer holds what a call named answers stale_cache, and worker_retry_full
 * sends the call again in full.
 */
#include "pool_internal.h"

#include "hash.h"

static bool sess_knows_spec(const sess *s, uint64_t prog, uint64_t spec)
{
    for (int i = 0; i < s->nspecs; i++)
        if (s->specs[i].prog == prog && s->specs[i].spec == spec)
            return true;
    return false;
}

static void sess_learn_spec(sess *s, uint64_t prog, uint64_t spec)
{
    for (int i = 0; i < s->nspecs; i++) {
        if (s->specs[i].prog == prog) {
            s->specs[i].spec = spec;
            return;
        }
    }
    int i = s->nspecs < SPECS_KNOWN ? s->nspecs++ : s->spec_next++ % SPECS_KNOWN;
    s->specs[i].prog = prog;
    s->specs[i].spec = spec;
}

/* Forgets what the session's last worker holds: its next call goes in full. */
void sess_forget_caches(sess *s)
{
    s->state_known = false;
    s->nspecs = 0;
}

/*
 * Completes c's frame for worker w: the spec and the state travel only when
 * w is not known to hold them (then only their versions do). The keys are
 * the frame codec's (sf_frame_call_spec_keys, sf_frame_call_state_key).
 */
void worker_write_call(worker *w, pcall *c)
{
    sess *s = c->s;
    bool same =
        s->last_slot == w->slot && s->last_gen == w->gen && s->inflight == 0 && !c->force_full;
    /* create_program always carries its spec: the worker builds it whatever it holds. */
    bool spec_cached =
        has_spec(c) && same && !c->spec_required && sess_knows_spec(s, c->prog_hash, c->spec_hash);
    bool state_cached = has_state(c) && same && s->state_known && s->state_hash == c->state_hash;
    c->sent_spec = has_spec(c) && !spec_cached;
    c->sent_state = has_state(c) && !state_cached;
    c->compact = spec_cached || state_cached;
    if (c->compact)
        s->compact_inflight = true;

    unsigned char a[SF_FRAME_CALL_KEYS_MAX], b[SF_FRAME_CALL_KEYS_MAX];
    size_t an = 0, bn = 0;
    uint16_t n = c->nfields;
    if (has_spec(c))
        an = sf_frame_call_spec_keys(a, c->spec_hash, c->sent_spec, &n);
    if (has_state(c))
        bn = sf_frame_call_state_key(b, c->sent_state, s->state_ver, &n);
    size_t body = c->frame.size - 4 + an + bn + (c->sent_spec ? c->spec_len : 0) +
                  (c->sent_state ? c->state_len : 0);
    sf_frame_patch_call(c->frame.data, (uint32_t)body, n);
    evbuffer_add(w->out, c->frame.data, c->frame.size);
    if (an)
        evbuffer_add(w->out, a, an);
    if (c->sent_spec)
        evbuffer_add(w->out, c->payload, c->spec_len);
    if (bn)
        evbuffer_add(w->out, b, bn);
    if (c->sent_state)
        evbuffer_add(w->out, c->payload + c->spec_len, c->state_len);
}

/*
 * What an answer tells about worker w's caches: a call that ran on another
 * worker than the session's last one (or dropped the session's caches)
 * starts from nothing; the state it delivered or produced is now held under
 * the call's seq; a spec it carried in full and that built is held.
 * `state` is the state the program left, packed (size 0 when none).
 */
void sess_learn_from_answer(const worker *w, const pcall *c, const sf_frame *f,
                            const msgpack_sbuffer *state)
{
    sess *s = c->s;
    s->compact_inflight = false;
    if (s->last_slot != w->slot || s->last_gen != w->gen || c->drops_cache)
        sess_forget_caches(s);
    s->last_slot = w->slot;
    s->last_gen = w->gen;
    if (has_state(c) && (f->state || c->sent_state)) {
        s->state_known = true;
        s->state_ver = c->seq;
        s->state_hash = f->state ? sf_hash64(state->data, state->size) : c->state_hash;
    }
    if (c->sent_spec && f->ok)
        sess_learn_spec(s, c->prog_hash, c->spec_hash);
}

/*
 * The worker no longer holds what c named instead of sending it (its caches
 * are bounded): forget what we believed and queue c again, first, to go in
 * full. Nothing of its session was sent after it (compact_inflight).
 */
void worker_retry_full(worker *w, pcall *c)
{
    sf_pool *p = w->pool;
    w->head = c->next;
    if (w->head == NULL)
        w->tail = NULL;
    w->inflight--;
    worker_head_done(w, now_us());
    sess *s = c->s;
    s->inflight--;
    if (s->inflight == 0)
        s->bound = -1;
    s->compact_inflight = false;
    sess_forget_caches(s);
    s->queued++;
    c->force_full = true;
    p->stale_retries++;
    if (p->stopping) /* nothing dispatches any more */
        call_fail_deferred(p, c, "unavailable", "the pool is shutting down");
    else
        queue_push_front(p, c);
    worker_after_call(w);
}
