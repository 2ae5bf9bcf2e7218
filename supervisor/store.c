/*
 * store.c — the Redis session store; see store.h for the key layout.
 *
 * The connection is one hiredis async context attached to the loop. When it
 * drops, every command still waiting is answered UNAVAILABLE by hiredis, new
 * commands are answered UNAVAILABLE at once, and a timer reconnects with
 * backoff. Scripts are sent with EVAL: Redis caches them by SHA, and the
 * text is a few hundred bytes.
 */
#include "store.h"

#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

struct sf_store {
    struct event_base *base;
    char host[256];
    int port, db;
    uint32_t ttl_s, timeout_ms;
    char ttl[16];
    redisAsyncContext *ac;
    bool connected;
    int pending;
    uint32_t backoff_ms;
    struct event *ev_reconnect;
    bool freeing;
};

typedef struct req {
    sf_store *st;
    sf_store_cb cb;
    void *arg;
    int kind;
} req;

enum {
    K_PLAIN,
    K_GET_STATE,
    K_SET_STATE,
    K_END,
    K_PUT_PROGRAM,
    K_GET_PROGRAM,
    K_DEL_PROGRAM,
    K_LIST
};

static void store_connect(sf_store *st);

static void on_reconnect(evutil_socket_t fd, short what, void *arg)
{
    store_connect(arg);
}

static void schedule_reconnect(sf_store *st)
{
    if (st->freeing)
        return;
    struct timeval tv = {(time_t)(st->backoff_ms / 1000),
                         (suseconds_t)(st->backoff_ms % 1000) * 1000};
    evtimer_add(st->ev_reconnect, &tv);
    st->backoff_ms = st->backoff_ms < 2000 ? st->backoff_ms * 2 : 2000;
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    sf_store *st = ac->data;
    if (status != REDIS_OK) {
        sf_warn("store.connect_failed", "host=%s port=%d reason=\"%s\"", st->host, st->port,
                ac->errstr);
        st->ac = NULL; /* hiredis frees a context whose connect failed */
        schedule_reconnect(st);
        return;
    }
    st->connected = true;
    st->backoff_ms = 50;
    sf_info("store.connected", "host=%s port=%d db=%d", st->host, st->port, st->db);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    sf_store *st = ac->data;
    st->connected = false;
    st->ac = NULL;
    if (st->freeing)
        return;
    sf_warn("store.disconnected", "host=%s port=%d reason=\"%s\"", st->host, st->port,
            status == REDIS_OK ? "closed" : ac->errstr);
    schedule_reconnect(st);
}

static void store_connect(sf_store *st)
{
    redisAsyncContext *ac = redisAsyncConnect(st->host, st->port);
    if (ac == NULL || ac->err) {
        sf_warn("store.connect_failed", "host=%s port=%d reason=\"%s\"", st->host, st->port,
                ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        schedule_reconnect(st);
        return;
    }
    ac->data = st;
    redisLibeventAttach(ac, st->base);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    st->ac = ac;
    if (st->db) {
        char db[16];
        snprintf(db, sizeof(db), "%d", st->db);
        const char *argv[] = {"SELECT", db};
        redisAsyncCommandArgv(ac, NULL, NULL, 2, argv, NULL);
    }
}

static int parse_url(sf_store *st, const char *url, char *err, size_t errlen)
{
    const char *p = url;
    if (strncmp(p, "redis://", 8) == 0)
        p += 8;
    else if (strstr(p, "://")) {
        snprintf(err, errlen, "redis.url: '%s' is not redis://host:port[/db]", url);
        return -1;
    }
    st->port = 6379;
    st->db = 0;
    const char *colon = strchr(p, ':');
    const char *slash = strchr(p, '/');
    size_t hl = colon ? (size_t)(colon - p) : slash ? (size_t)(slash - p) : strlen(p);
    if (hl == 0 || hl >= sizeof(st->host)) {
        snprintf(err, errlen, "redis.url: '%s' has no host", url);
        return -1;
    }
    memcpy(st->host, p, hl);
    st->host[hl] = '\0';
    if (colon) {
        char *end;
        long port = strtol(colon + 1, &end, 10);
        if (port <= 0 || port > 65535 || (*end && *end != '/')) {
            snprintf(err, errlen, "redis.url: '%s' has a bad port", url);
            return -1;
        }
        st->port = (int)port;
    }
    if (slash && slash[1])
        st->db = atoi(slash + 1);
    return 0;
}

sf_store *sf_store_new(struct event_base *base, const char *url, uint32_t session_ttl_s,
                       uint32_t timeout_ms, char *err, size_t errlen)
{
    sf_store *st = calloc(1, sizeof(*st));
    st->base = base;
    st->ttl_s = session_ttl_s;
    st->timeout_ms = timeout_ms;
    snprintf(st->ttl, sizeof(st->ttl), "%u", session_ttl_s);
    st->backoff_ms = 50;
    if (parse_url(st, url, err, errlen) < 0) {
        free(st);
        return NULL;
    }
    st->ev_reconnect = evtimer_new(base, on_reconnect, st);
    store_connect(st);
    return st;
}

void sf_store_free(sf_store *st)
{
    if (st == NULL)
        return;
    st->freeing = true;
    if (st->ac)
        redisAsyncFree(st->ac); /* answers pending commands with NULL replies */
    event_free(st->ev_reconnect);
    free(st);
}

bool sf_store_connected(const sf_store *st)
{
    return st->connected;
}

int sf_store_pending(const sf_store *st)
{
    return st->pending;
}

/* Turns a hiredis reply into an sf_store_reply for the request's kind. */
static void on_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    req *q = privdata;
    sf_store *st = q->st;
    st->pending--;
    redisReply *rep = r;
    sf_store_reply out = {.status = SF_STORE_OK};
    const char *keys[1024];
    size_t lens[1024];
    if (rep == NULL) {
        out.status = SF_STORE_UNAVAILABLE;
        out.error = ac && ac->errstr[0] ? ac->errstr : "connection to Redis lost";
    } else if (rep->type == REDIS_REPLY_ERROR) {
        out.status = SF_STORE_UNAVAILABLE;
        out.error = rep->str;
        sf_error("store.command_failed", "error=\"%s\"", rep->str);
    } else {
        switch (q->kind) {
        case K_GET_STATE:
            if (rep->type == REDIS_REPLY_STRING) {
                out.state = rep->str;
                out.state_len = rep->len;
            } else {
                out.status = SF_STORE_NOT_FOUND;
            }
            break;
        case K_SET_STATE:
            out.status = rep->type == REDIS_REPLY_NIL ? SF_STORE_NOT_FOUND : SF_STORE_OK;
            break;
        case K_END:
        case K_PUT_PROGRAM:
        case K_DEL_PROGRAM:
            out.count = rep->type == REDIS_REPLY_INTEGER ? rep->integer : 0;
            if (q->kind != K_DEL_PROGRAM && out.count == 0)
                out.status = SF_STORE_NOT_FOUND;
            if (q->kind == K_DEL_PROGRAM && out.count < 0) /* -1: no session */
                out.status = SF_STORE_NOT_FOUND;
            break;
        case K_GET_PROGRAM:
            if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
                rep->element[0]->type != REDIS_REPLY_STRING) {
                out.status = SF_STORE_NOT_FOUND;
            } else {
                out.state = rep->element[0]->str;
                out.state_len = rep->element[0]->len;
                if (rep->element[1]->type == REDIS_REPLY_STRING) {
                    out.spec = rep->element[1]->str;
                    out.spec_len = rep->element[1]->len;
                }
            }
            break;
        case K_LIST:
            if (rep->type != REDIS_REPLY_ARRAY) {
                out.status = SF_STORE_NOT_FOUND;
            } else {
                for (size_t i = 0; i < rep->elements && i < 1024; i++) {
                    keys[i] = rep->element[i]->str;
                    lens[i] = rep->element[i]->len;
                }
                out.nkeys = rep->elements < 1024 ? rep->elements : 1024;
                out.keys = keys;
                out.key_lens = lens;
            }
            break;
        default:
            break;
        }
    }
    if (q->cb)
        q->cb(q->arg, &out);
    free(q);
}

/* Sends argv; answers UNAVAILABLE from the loop's point of view when disconnected. */
static void send_cmd(sf_store *st, int kind, int argc, const char **argv, const size_t *lens,
                     sf_store_cb cb, void *arg)
{
    req *q = malloc(sizeof(*q));
    *q = (req){st, cb, arg, kind};
    if (!st->connected || st->ac == NULL ||
        redisAsyncCommandArgv(st->ac, on_reply, q, argc, argv, lens) != REDIS_OK) {
        sf_store_reply out = {.status = SF_STORE_UNAVAILABLE, .error = "Redis is not connected"};
        if (cb)
            cb(arg, &out);
        free(q);
        return;
    }
    st->pending++;
}

/* The two keys of a session. */
typedef struct keys {
    char state[300], programs[300];
    size_t state_len, programs_len;
} keys;

static void session_keys(keys *k, const char *s, size_t slen)
{
    k->state_len = (size_t)snprintf(k->state, sizeof(k->state), "sf:{%.*s}:state", (int)slen, s);
    k->programs_len =
        (size_t)snprintf(k->programs, sizeof(k->programs), "sf:{%.*s}:programs", (int)slen, s);
}

static const char LUA_CREATE[] = "redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) "
                                 "redis.call('DEL', KEYS[2]) return 1";
static const char LUA_GET[] = "local v = redis.call('GET', KEYS[1]) "
                              "if v then redis.call('EXPIRE', KEYS[1], ARGV[1]) "
                              "redis.call('EXPIRE', KEYS[2], ARGV[1]) end return v";
static const char LUA_SET[] = "local ok = redis.call('SET', KEYS[1], ARGV[1], 'XX', 'EX', ARGV[2]) "
                              "if ok then redis.call('EXPIRE', KEYS[2], ARGV[2]) end return ok";
static const char LUA_PUT_PROGRAM[] =
    "if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end "
    "redis.call('HSET', KEYS[2], ARGV[1], ARGV[2]) redis.call('EXPIRE', KEYS[1], ARGV[3]) "
    "redis.call('EXPIRE', KEYS[2], ARGV[3]) return 1";
static const char LUA_GET_PROGRAM[] =
    "local s = redis.call('GET', KEYS[1]) if not s then return {false, false} end "
    "redis.call('EXPIRE', KEYS[1], ARGV[2]) redis.call('EXPIRE', KEYS[2], ARGV[2]) "
    "return {s, redis.call('HGET', KEYS[2], ARGV[1])}";
static const char LUA_DEL_PROGRAM[] = "if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end "
                                      "return redis.call('HDEL', KEYS[2], ARGV[1])";
static const char LUA_LIST[] = "if redis.call('EXISTS', KEYS[1]) == 0 then return false end "
                               "return redis.call('HKEYS', KEYS[2])";

static void eval(sf_store *st, int kind, const char *script, const keys *k, int nargs,
                 const char **args, const size_t *arglens, sf_store_cb cb, void *arg)
{
    const char *argv[8] = {"EVAL", script, "2", k->state, k->programs};
    size_t lens[8] = {4, strlen(script), 1, k->state_len, k->programs_len};
    for (int i = 0; i < nargs; i++) {
        argv[5 + i] = args[i];
        lens[5 + i] = arglens[i];
    }
    send_cmd(st, kind, 5 + nargs, argv, lens, cb, arg);
}

void sf_store_create_session(sf_store *st, const char *s, size_t slen, const void *state,
                             size_t len, sf_store_cb cb, void *arg)
{
    keys k;
    session_keys(&k, s, slen);
    const char *a[] = {state, st->ttl};
    size_t l[] = {len, strlen(st->ttl)};
    eval(st, K_PUT_PROGRAM, LUA_CREATE, &k, 2, a, l, cb, arg);
}

void sf_store_end_session(sf_store *st, const char *s, size_t slen, sf_store_cb cb, void *arg)
{
    keys k;
    session_keys(&k, s, slen);
    const char *argv[] = {"DEL", k.state, k.programs};
    size_t lens[] = {3, k.state_len, k.programs_len};
    send_cmd(st, K_END, 3, argv, lens, cb, arg);
}

void sf_store_get_state(sf_store *st, const char *s, size_t slen, sf_store_cb cb, void *arg)
{
    keys k;
    session_keys(&k, s, slen);
    const char *a[] = {st->ttl};
    size_t l[] = {strlen(st->ttl)};
    eval(st, K_GET_STATE, LUA_GET, &k, 1, a, l, cb, arg);
}

void sf_store_set_state(sf_store *st, const char *s, size_t slen, const void *state, size_t len,
                        sf_store_cb cb, void *arg)
{
    keys k;
    session_keys(&k, s, slen);
    const char *a[] = {state, st->ttl};
    size_t l[] = {len, strlen(st->ttl)};
    eval(st, K_SET_STATE, LUA_SET, &k, 2, a, l, cb, arg);
}

void sf_store_put_program(sf_store *st, const char *s, size_t slen, const char *p, size_t plen,
                          const void *spec, size_t len, sf_store_cb cb, void *arg)
{
    keys k;
    session_keys(&k, s, slen);
    const char *a[] = {p, spec, st->ttl};
    size_t l[] = {plen, len, strlen(st->ttl)};
    eval(st, K_PUT_PROGRAM, LUA_PUT_PROGRAM, &k, 3, a, l, cb, arg);
}

void sf_store_get_program(sf_store *st, const char *s, size_t slen, const char *p, size_t plen,
                          sf_store_cb cb, void *arg)
{
    keys k;
    session_keys(&k, s, slen);
    const char *a[] = {p, st->ttl};
    size_t l[] = {plen, strlen(st->ttl)};
    eval(st, K_GET_PROGRAM, LUA_GET_PROGRAM, &k, 2, a, l, cb, arg);
}

void sf_store_delete_program(sf_store *st, const char *s, size_t slen, const char *p, size_t plen,
                             sf_store_cb cb, void *arg)
{
    keys k;
    session_keys(&k, s, slen);
    const char *a[] = {p};
    size_t l[] = {plen};
    eval(st, K_DEL_PROGRAM, LUA_DEL_PROGRAM, &k, 1, a, l, cb, arg);
}

void sf_store_list_programs(sf_store *st, const char *s, size_t slen, sf_store_cb cb, void *arg)
{
    keys k;
    session_keys(&k, s, slen);
    eval(st, K_LIST, LUA_LIST, &k, 0, NULL, NULL, cb, arg);
}
