/*
 * store_batch.c — the claims and commits of one loop turn, sent together.
 *
 * Claims and commits, the two scripts every request runs, are batched:
 * those asked for during one turn of the loop go to Redis as one script call
 * each (up to BATCH_MAX items), which runs them in order and answers each
 * item on its own. A script call costs Redis a few microseconds before it
 * does anything; a request's two calls were most of what Redis spent on it.
 *
 * In the order an item meets it: sf_store_claim or sf_store_commit (store.c)
 * adds it to its turn's batch (store_batch_add), copying its keys and
 * arguments; the first item of a turn wakes the end-of-turn step (the
 * loop's owner, or the store's own event); sf_store_flush sends each batch
 * as one script call (store_send_script, store_link.c), and on_reply
 * (store_link.c) hands the reply back here, to store_batch_answer, which
 * answers every item from its own part of it.
 */
#include "store_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "log.h"

/* ------------------------ filling a turn's batch */

void sf_store_set_turn_end(sf_store *st, void (*wake)(void *arg), void *arg)
{
    st->flush_wake = wake;
    st->flush_wake_arg = arg;
}

/* String j (keys first, then arguments) of the item being added. */
static void batch_put(batch *b, int j, const char *s, size_t n)
{
    if (b->used + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 2048;
        while (cap < b->used + n + 1)
            cap *= 2;
        b->buf = sf_xrealloc(b->buf, cap);
        b->cap = cap;
    }
    b->off[ITEM_STRS * b->n + j] = b->used;
    b->len[ITEM_STRS * b->n + j] = n;
    if (n)
        memcpy(b->buf + b->used, s, n);
    b->used += n;
    b->buf[b->used++] = '\0';
}

/* Sends a batch as one script call: its keys, the session TTL, then its arguments. */
static void batch_send(sf_store *st, batch *b)
{
    int n = b->n, argc = 3 + ITEM_STRS * n + 1;
    const char **argv = sf_xmalloc((size_t)argc * sizeof(*argv));
    size_t *lens = sf_xmalloc((size_t)argc * sizeof(*lens));
    char numkeys[16];
    snprintf(numkeys, sizeof(numkeys), "%d", ITEM_KEYS * n);
    bool sha = st->sha[b->script][0] != '\0';
    argv[0] = sha ? "EVALSHA" : "EVAL";
    lens[0] = sha ? 7 : 4;
    argv[1] = sha ? st->sha[b->script] : store_scripts[b->script];
    lens[1] = strlen(argv[1]);
    argv[2] = numkeys;
    lens[2] = strlen(numkeys);
    /* KEYS: every item's keys; ARGV: the session TTL, then every item's arguments */
    int args_at = 3 + ITEM_KEYS * n + 1;
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < ITEM_KEYS; j++) {
            argv[3 + ITEM_KEYS * i + j] = b->buf + b->off[ITEM_STRS * i + j];
            lens[3 + ITEM_KEYS * i + j] = b->len[ITEM_STRS * i + j];
        }
        for (int j = 0; j < ITEM_ARGS; j++) {
            argv[args_at + ITEM_ARGS * i + j] = b->buf + b->off[ITEM_STRS * i + ITEM_KEYS + j];
            lens[args_at + ITEM_ARGS * i + j] = b->len[ITEM_STRS * i + ITEM_KEYS + j];
        }
    }
    argv[3 + ITEM_KEYS * n] = st->ttl;
    lens[3 + ITEM_KEYS * n] = strlen(st->ttl);
    store_send_script(st, b->kind, b->script, argc, argv, lens, NULL, b);
    free(argv);
    free(lens);
}

/*
 * Adds one item (the ITEM_KEYS keys of k, then ITEM_ARGS arguments) to the claims or commits
 * batch of this loop turn; a full batch goes at once, the rest at the end of
 * the turn.
 */
void store_batch_add(sf_store *st, batch **slot, int kind, int script, const keys *k,
                     const char *const *args, const size_t *arglens, sf_store_cb cb, void *arg)
{
    if (st->freeing) {
        sf_store_reply out = {.status = SF_STORE_UNAVAILABLE, .error = "the store is closing"};
        if (cb)
            cb(arg, &out);
        return;
    }
    batch *b = *slot;
    if (b == NULL) {
        b = sf_xcalloc(1, sizeof(*b));
        b->kind = kind;
        b->script = script;
        *slot = b;
    }
    batch_put(b, 0, k->state, k->state_len);
    batch_put(b, 1, k->programs, k->programs_len);
    batch_put(b, 2, k->epoch, k->epoch_len);
    batch_put(b, 3, k->request, k->request_len);
    batch_put(b, 4, k->done, k->done_len);
    batch_put(b, 5, k->order, k->order_len);
    for (int j = 0; j < ITEM_ARGS; j++)
        batch_put(b, ITEM_KEYS + j, args[j], arglens[j]);
    b->item[b->n].cb = cb;
    b->item[b->n].arg = arg;
    b->n++;
    st->pending++;
    if (b->n == BATCH_MAX) {
        *slot = NULL;
        batch_send(st, b);
    } else if (!st->flush_armed) {
        st->flush_armed = true;
        if (st->flush_wake)
            st->flush_wake(st->flush_wake_arg);
        else
            event_active(st->ev_flush, EV_TIMEOUT, 0);
    }
}

/* ------------------------ the end of the turn */

static void flush_batches(sf_store *st)
{
    batch *b;
    if ((b = st->claims) != NULL) {
        st->claims = NULL;
        batch_send(st, b);
    }
    if ((b = st->commits) != NULL) {
        st->commits = NULL;
        batch_send(st, b);
    }
}

void sf_store_flush(sf_store *st)
{
    st->flush_armed = false;
    flush_batches(st);
}

/* The store's own end-of-turn event, activated when no owner took the step over. */
void store_batch_on_flush(evutil_socket_t fd, short what, void *arg)
{
    sf_store_flush(arg);
}

/* ------------------------ the answer */

/* One item of a claims batch. */
static void read_claim(const redisReply *e, sf_store_reply *out)
{
    if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 ||
        e->element[0]->type != REDIS_REPLY_INTEGER) {
        out->status = SF_STORE_UNAVAILABLE;
        out->error = "unexpected claim reply";
        return;
    }
    out->claim = (int)e->element[0]->integer;
    out->state = e->element[1]->str; /* the cached reply, or the owner */
    out->state_len = e->element[1]->len;
    if (e->elements == 5) { /* claimed with a read: state, spec and the state's version */
        out->state = e->element[2]->type == REDIS_REPLY_STRING ? e->element[2]->str : NULL;
        out->state_len = out->state ? e->element[2]->len : 0;
        if (e->element[3]->type == REDIS_REPLY_STRING) {
            out->spec = e->element[3]->str;
            out->spec_len = e->element[3]->len;
        }
        if (e->element[4]->type == REDIS_REPLY_STRING)
            out->version = strtoull(e->element[4]->str, NULL, 10);
    }
}

/* One item of a commits batch. */
static void read_commit(const redisReply *e, sf_store_reply *out)
{
    if (e->type == REDIS_REPLY_ARRAY && e->elements == 2 &&
        e->element[0]->type == REDIS_REPLY_INTEGER && e->element[0]->integer == 3 &&
        e->element[1]->type == REDIS_REPLY_STRING) {
        out->status = SF_STORE_ANSWERED; /* answered before: the reply given then */
        out->state = e->element[1]->str;
        out->state_len = e->element[1]->len;
    } else if (e->type != REDIS_REPLY_INTEGER) {
        out->status = SF_STORE_UNAVAILABLE;
        out->error = "unexpected commit reply";
    } else if (e->integer == -1) {
        out->status = SF_STORE_FENCED;
        out->error = "FENCED stale partition epoch";
    } else if (e->integer == -2) {
        out->status = SF_STORE_CONFLICT;
        out->error = "the session's state changed since the request read it";
    } else if (e->integer != 1) {
        out->status = SF_STORE_NOT_FOUND;
    }
}

/* Answers every item of a batch: from its own part of the reply, or all alike. */
void store_batch_answer(batch *b, const redisReply *rep, const sf_store_reply *all)
{
    for (int i = 0; i < b->n; i++) {
        sf_store_reply out = {.status = SF_STORE_OK};
        if (all)
            out = *all;
        else if (rep->type != REDIS_REPLY_ARRAY || rep->elements != (size_t)b->n)
            out =
                (sf_store_reply){.status = SF_STORE_UNAVAILABLE, .error = "unexpected batch reply"};
        else if (rep->element[i]->type == REDIS_REPLY_STRING) { /* this item failed in Redis */
            sf_error("store.command_failed", "error=\"%s\" item=%d of=%d", rep->element[i]->str,
                     i + 1, b->n);
            out = (sf_store_reply){.status = SF_STORE_UNAVAILABLE, .error = rep->element[i]->str};
        } else if (b->kind == K_CLAIMS)
            read_claim(rep->element[i], &out);
        else
            read_commit(rep->element[i], &out);
        if (b->item[i].cb)
            b->item[i].cb(b->item[i].arg, &out);
    }
}

/* A batch is freed once answered, or unanswered when the store is freed. */
void store_batch_free(batch *b)
{
    free(b->buf);
    free(b);
}
