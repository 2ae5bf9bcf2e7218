/*
 * store_sentinel.c — finding the Redis primary through Sentinel
 * (redis.sentinels, redis.master_name) each time the store connects.
 *
 * With sentinels configured, every connect (the first, and each reconnect
 * after the link dropped) first asks every sentinel at once, each on a short
 * connection of its own, `SENTINEL MASTER <master>`, and waits up to
 * SENTINEL_ASK_MS for their answers. It needs a majority of them: a sentinel
 * alone (cut off, or not yet told of a failover) can name an old primary, and
 * a failover is only made with a majority's votes, so a majority holds one
 * that knows it. Of the answers it takes the address with the highest
 * config-epoch (the newest failover; at equal epochs, the one most of them
 * name) and connects to it (store_link.c,
 * store_link_connect); one sentinel that gave that address stays connected,
 * subscribed to `+switch-master`. A failover is followed because the sentinel
 * announces it, the old primary's link drops (it died) or its writes are
 * refused READONLY (it was demoted), and each makes the store reconnect and
 * ask again; a connection that finds a replica where the sentinels said the
 * primary is (the failover is still under way) is closed and tried again with
 * backoff. Without a majority's answer (a sentinel that hangs counts as none)
 * the store stays down and asks again with backoff, as for a Redis that is
 * down.
 *
 * Fencing stays correct across a failover as far as the new primary has the
 * writes: with redis.min_replicas every epoch bump and every commit reached a
 * replica before it counted (store_link.c, WAIT).
 */
#include <hiredis/adapters/libevent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "store_internal.h"

int sf_store_set_sentinels(sf_store *st, const char *list, const char *master, char *err,
                           size_t errlen)
{
    st->nsentinels = 0;
    if (list == NULL || list[0] == '\0')
        return 0;
    if (master == NULL || master[0] == '\0' || strlen(master) >= sizeof(st->master_name)) {
        snprintf(err, errlen, "redis.master_name: a name is needed with redis.sentinels");
        return -1;
    }
    snprintf(st->master_name, sizeof(st->master_name), "%s", master);
    const char *p = list;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        while (n && *p == ' ')
            p++, n--;
        while (n && p[n - 1] == ' ')
            n--;
        if (n) {
            if (st->nsentinels == SF_STORE_MAX_SENTINELS) {
                snprintf(err, errlen, "redis.sentinels: more than %d", SF_STORE_MAX_SENTINELS);
                return -1;
            }
            struct sentinel *s = &st->sentinel[st->nsentinels];
            const char *colon = memchr(p, ':', n);
            size_t hl = colon ? (size_t)(colon - p) : n;
            long port = 26379;
            if (colon) {
                char num[8] = "";
                size_t pl = n - hl - 1;
                char *e;
                if (pl == 0 || pl >= sizeof(num))
                    port = 0;
                else {
                    memcpy(num, colon + 1, pl);
                    port = strtol(num, &e, 10);
                    if (*e)
                        port = 0;
                }
            }
            if (hl == 0 || hl >= sizeof(s->host) || port <= 0 || port > 65535) {
                snprintf(err, errlen, "redis.sentinels: '%.*s' is not host[:port]", (int)n, p);
                return -1;
            }
            memcpy(s->host, p, hl);
            s->host[hl] = '\0';
            s->port = (int)port;
            st->nsentinels++;
        }
        if (end == NULL)
            break;
        p = end + 1;
    }
    return 0;
}

/* How long a round waits for the sentinels' answers. */
#define SENTINEL_ASK_MS 1000

/* Lets a sentinel's asking connection go; its pending answer comes back NULL and is ignored. */
static void let_go(sf_store *st, struct sentinel *s, bool now)
{
    redisAsyncContext *sc = s->ac;
    s->ac = NULL;
    if (sc == NULL || sc == st->watch)
        return;
    if (now)
        redisAsyncFree(sc);
    else
        redisAsyncDisconnect(sc);
}

static void on_sentinel_disconnect(const redisAsyncContext *sc, int status)
{
    sf_store *st = sc->data;
    for (int i = 0; i < st->nsentinels; i++)
        if (st->sentinel[i].ac == sc)
            st->sentinel[i].ac = NULL;
    if (st->watch == sc)
        st->watch = NULL;
}

/*
 * `+switch-master <name> <old ip> <old port> <new ip> <new port>` from the
 * watching sentinel: our primary was replaced; the link is re-made (and the
 * sentinels asked again) at once, before a write would meet READONLY.
 */
static void on_switch(redisAsyncContext *sc, void *r, void *privdata)
{
    sf_store *st = sc->data;
    redisReply *rep = r;
    if (rep == NULL || st->freeing || rep->type != REDIS_REPLY_ARRAY || rep->elements != 3 ||
        rep->element[2]->type != REDIS_REPLY_STRING)
        return; /* the subscription's confirmation, or the connection going away */
    const char *msg = rep->element[2]->str;
    size_t n = strlen(st->master_name);
    if (strncmp(msg, st->master_name, n) != 0 || msg[n] != ' ')
        return;
    sf_warn("store.switch_master", "master=%s announced=\"%s\" action=reconnect", st->master_name,
            msg + n + 1);
    store_link_drop(st); /* on_disconnect reconnects, through the sentinels */
}

/* The round is over (all answered, or the time is up): connect to the newest primary named. */
static void decide(sf_store *st)
{
    evtimer_del(st->ev_ask_timeout);
    st->asking = 0;
    int answered = 0, best = -1, best_votes = 0;
    for (int i = 0; i < st->nsentinels; i++) {
        struct sentinel *s = &st->sentinel[i];
        if (!s->answered)
            continue;
        answered++;
        int votes = 0; /* the sentinels naming the same address at the same epoch */
        for (int k = 0; k < st->nsentinels; k++) {
            const struct sentinel *o = &st->sentinel[k];
            votes += o->answered && o->config_epoch == s->config_epoch &&
                     o->addr_port == s->addr_port && strcmp(o->addr, s->addr) == 0;
        }
        if (best < 0 || s->config_epoch > st->sentinel[best].config_epoch ||
            (s->config_epoch == st->sentinel[best].config_epoch && votes > best_votes)) {
            best = i;
            best_votes = votes;
        }
    }
    int need = st->nsentinels / 2 + 1;
    if (answered < need) {
        for (int i = 0; i < st->nsentinels; i++)
            let_go(st, &st->sentinel[i], true);
        sf_warn("store.sentinels_unanswered",
                "master=%s answered=%d need=%d sentinels=%d action=retry", st->master_name,
                answered, need, st->nsentinels);
        store_link_retry(st);
        return;
    }
    struct sentinel *b = &st->sentinel[best];
    if (strcmp(st->host, b->addr) != 0 || st->port != b->addr_port)
        sf_info("store.primary",
                "master=%s host=%s port=%d config_epoch=%lld sentinel=%s:%d answered=%d",
                st->master_name, b->addr, b->addr_port, b->config_epoch, b->host, b->port,
                answered);
    snprintf(st->host, sizeof(st->host), "%s", b->addr);
    st->port = b->addr_port;
    /* That sentinel watches from now on (the one watching before is let go). */
    redisAsyncContext *watch = b->ac;
    b->ac = NULL;
    if (st->watch && st->watch != watch)
        redisAsyncDisconnect(st->watch);
    st->watch = watch;
    for (int i = 0; i < st->nsentinels; i++)
        let_go(st, &st->sentinel[i], false);
    if (watch)
        redisAsyncCommand(watch, on_switch, NULL, "SUBSCRIBE +switch-master");
    store_link_connect(st);
}

static void on_ask_timeout(evutil_socket_t fd, short what, void *arg)
{
    sf_store *st = arg;
    for (int i = 0; i < st->nsentinels; i++) {
        struct sentinel *s = &st->sentinel[i];
        if (s->ac && !s->answered) {
            sf_warn("store.sentinel_failed",
                    "sentinel=%s:%d master=%s reason=\"no answer in %d ms\"", s->host, s->port,
                    st->master_name, SENTINEL_ASK_MS);
            let_go(st, s, true);
        }
    }
    decide(st);
}

/* A field of SENTINEL MASTER's answer (a flat list of names and values), or NULL. */
static const redisReply *field(const redisReply *rep, const char *name)
{
    for (size_t i = 0; i + 1 < rep->elements; i += 2)
        if (rep->element[i]->type == REDIS_REPLY_STRING &&
            strcmp(rep->element[i]->str, name) == 0 &&
            rep->element[i + 1]->type == REDIS_REPLY_STRING)
            return rep->element[i + 1];
    return NULL;
}

static void on_master(redisAsyncContext *sc, void *r, void *privdata)
{
    sf_store *st = sc->data;
    redisReply *rep = r;
    int i = (int)(intptr_t)privdata;
    if (st->freeing || i >= st->nsentinels || st->sentinel[i].ac != sc)
        return; /* let go: an earlier round's, or the store going away */
    struct sentinel *s = &st->sentinel[i];
    const redisReply *ip = NULL, *port = NULL, *epoch = NULL;
    if (rep && rep->type == REDIS_REPLY_ARRAY) {
        ip = field(rep, "ip");
        port = field(rep, "port");
        epoch = field(rep, "config-epoch");
    }
    int p = port ? atoi(port->str) : 0;
    if (ip == NULL || ip->len >= sizeof(s->addr) || p <= 0 || p > 65535) {
        sf_warn("store.sentinel_failed", "sentinel=%s:%d master=%s reason=\"%s\"", s->host, s->port,
                st->master_name,
                rep == NULL                      ? (sc->errstr[0] ? sc->errstr : "no answer")
                : rep->type == REDIS_REPLY_ERROR ? rep->str
                                                 : "unexpected reply");
        if (rep == NULL)
            s->ac = NULL; /* hiredis is freeing it (its connect failed, or it dropped) */
        else
            let_go(st, s, false);
    } else {
        s->answered = true;
        snprintf(s->addr, sizeof(s->addr), "%s", ip->str);
        s->addr_port = p;
        s->config_epoch = epoch ? atoll(epoch->str) : 0;
    }
    if (--st->asking == 0)
        decide(st);
}

void store_sentinel_resolve(sf_store *st)
{
    if (st->asking)
        return; /* a round is under way */
    if (st->ev_ask_timeout == NULL)
        st->ev_ask_timeout = evtimer_new(st->base, on_ask_timeout, st);
    int sent = 0;
    for (int i = 0; i < st->nsentinels; i++) {
        struct sentinel *s = &st->sentinel[i];
        s->answered = false;
        let_go(st, s, true);
        redisAsyncContext *sc = redisAsyncConnect(s->host, s->port);
        if (sc == NULL || sc->err) {
            sf_warn("store.sentinel_failed", "sentinel=%s:%d master=%s reason=\"%s\"", s->host,
                    s->port, st->master_name, sc ? sc->errstr : "out of memory");
            if (sc)
                redisAsyncFree(sc);
            continue;
        }
        sc->data = st;
        store_link_tune(st, sc->c.fd);
        redisLibeventAttach(sc, st->base);
        /* a failed connect answers its command NULL (on_master): counted as no answer */
        redisAsyncSetDisconnectCallback(sc, on_sentinel_disconnect);
        s->ac = sc;
        const char *argv[] = {"SENTINEL", "MASTER", st->master_name};
        if (redisAsyncCommandArgv(sc, on_master, (void *)(intptr_t)i, 3, argv, NULL) == REDIS_OK)
            sent++;
        else
            let_go(st, s, true);
    }
    if (sent == 0) {
        decide(st);
        return;
    }
    st->asking = sent;
    struct timeval tv = {SENTINEL_ASK_MS / 1000, (SENTINEL_ASK_MS % 1000) * 1000};
    evtimer_add(st->ev_ask_timeout, &tv);
}

void store_sentinel_free(sf_store *st)
{
    for (int i = 0; i < st->nsentinels; i++) {
        redisAsyncContext *sc = st->sentinel[i].ac;
        st->sentinel[i].ac = NULL;
        if (sc)
            redisAsyncFree(sc);
    }
    redisAsyncContext *w = st->watch;
    st->watch = NULL;
    if (w)
        redisAsyncFree(w);
    if (st->ev_ask_timeout)
        event_free(st->ev_ask_timeout);
    st->ev_ask_timeout = NULL;
}
