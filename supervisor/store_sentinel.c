/*
 * store_sentinel.c — finding the Redis primary through Sentinel
 * (redis.sentinels, redis.master_name) each time the store connects.
 *
 * With sentinels configured, every connect (the first, and each reconnect
 * after the link dropped) first asks the sentinels in turn, each on a short
 * connection of its own, `SENTINEL get-master-addr-by-name <master>`, and then
 * connects to the address the first one to answer gives (store_link.c,
 * store_link_connect); that sentinel's connection stays open, subscribed to
 * `+switch-master`. A failover is followed because the sentinel announces it,
 * the old primary's link drops (it died) or its writes are refused READONLY
 * (it was demoted), and each makes the store reconnect and ask again; a connection that finds a
 * replica where the sentinels said the primary is (the failover is still
 * under way) is closed and tried again with backoff. When no sentinel answers,
 * the store stays down and tries again with backoff, as for a Redis that is
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

static void ask(sf_store *st, int tries);

static void on_sentinel_disconnect(const redisAsyncContext *sc, int status)
{
    sf_store *st = sc->data;
    if (st->sac == sc)
        st->sac = NULL;
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
    if (st->ac)
        redisAsyncDisconnect(st->ac); /* on_disconnect reconnects, through the sentinels */
}

/* The next sentinel, or, when every one was asked, a reconnect after backoff. */
static void ask_next(sf_store *st, int tries)
{
    st->sentinel_at = (st->sentinel_at + 1) % st->nsentinels;
    if (tries > 1) {
        ask(st, tries - 1);
        return;
    }
    sf_warn("store.sentinels_unanswered", "master=%s sentinels=%d action=retry", st->master_name,
            st->nsentinels);
    store_link_retry(st);
}

static void on_master_addr(redisAsyncContext *sc, void *r, void *privdata)
{
    sf_store *st = sc->data;
    redisReply *rep = r;
    int tries = (int)(intptr_t)privdata;
    if (st->freeing)
        return;
    const struct sentinel *s = &st->sentinel[st->sentinel_at];
    bool ok = rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
              rep->element[0]->type == REDIS_REPLY_STRING &&
              rep->element[1]->type == REDIS_REPLY_STRING &&
              rep->element[0]->len < sizeof(st->host);
    int port = ok ? atoi(rep->element[1]->str) : 0;
    if (!ok || port <= 0 || port > 65535) {
        sf_warn("store.sentinel_failed", "sentinel=%s:%d master=%s reason=\"%s\"", s->host, s->port,
                st->master_name,
                rep == NULL                      ? (sc->errstr[0] ? sc->errstr : "no answer")
                : rep->type == REDIS_REPLY_ERROR ? rep->str
                : rep->type == REDIS_REPLY_NIL   ? "the sentinel does not know this master"
                                                 : "unexpected reply");
        if (st->sac == sc)
            redisAsyncDisconnect(sc);
        ask_next(st, tries);
        return;
    }
    if (strcmp(st->host, rep->element[0]->str) != 0 || st->port != port)
        sf_info("store.primary", "master=%s host=%s port=%d sentinel=%s:%d", st->master_name,
                rep->element[0]->str, port, s->host, s->port);
    snprintf(st->host, sizeof(st->host), "%s", rep->element[0]->str);
    st->port = port;
    /* This sentinel watches from now on (the one watching before is let go). */
    if (st->watch && st->watch != sc)
        redisAsyncDisconnect(st->watch);
    st->watch = sc;
    st->sac = NULL;
    redisAsyncCommand(sc, on_switch, NULL, "SUBSCRIBE +switch-master");
    store_link_connect(st);
}

static void on_sentinel_connect(const redisAsyncContext *sc, int status)
{
    sf_store *st = sc->data;
    if (status == REDIS_OK || st->freeing)
        return;
    /* hiredis frees a context whose connect failed; its command is answered NULL first */
    if (st->sac == sc)
        st->sac = NULL;
}

/* Asks the current sentinel where the primary is; `tries`: sentinels left to ask. */
static void ask(sf_store *st, int tries)
{
    const struct sentinel *s = &st->sentinel[st->sentinel_at];
    redisAsyncContext *sc = redisAsyncConnect(s->host, s->port);
    if (sc == NULL || sc->err) {
        sf_warn("store.sentinel_failed", "sentinel=%s:%d master=%s reason=\"%s\"", s->host, s->port,
                st->master_name, sc ? sc->errstr : "out of memory");
        if (sc)
            redisAsyncFree(sc);
        ask_next(st, tries);
        return;
    }
    sc->data = st;
    redisLibeventAttach(sc, st->base);
    redisAsyncSetConnectCallback(sc, on_sentinel_connect);
    redisAsyncSetDisconnectCallback(sc, on_sentinel_disconnect);
    st->sac = sc;
    const char *argv[] = {"SENTINEL", "get-master-addr-by-name", st->master_name};
    redisAsyncCommandArgv(sc, on_master_addr, (void *)(intptr_t)tries, 3, argv, NULL);
}

void store_sentinel_resolve(sf_store *st)
{
    ask(st, st->nsentinels);
}

void store_sentinel_free(sf_store *st)
{
    redisAsyncContext *contexts[] = {st->sac, st->watch};
    st->sac = st->watch = NULL;
    for (int i = 0; i < 2; i++)
        if (contexts[i])
            redisAsyncFree(contexts[i]);
}
