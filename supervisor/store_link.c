/*
 * store_link.c — the session store's connection to Redis: how a command
 * goes out and how its reply comes back.
 *
 * The connection is one hiredis async context attached to the loop. When it
 * drops, every command still waiting is answered UNAVAILABLE by hiredis, new
 * commands are answered UNAVAILABLE at once, and a timer reconnects with
 * backoff. Scripts are loaded once per connection (SCRIPT LOAD, queued right
 * after connecting, so they precede every other command on it) and then sent
 * with EVALSHA: Redis no longer receives, parses and hashes (SHA1) a few
 * hundred bytes of script text on every call. Until a script's SHA is known
 * the call goes out as EVAL; a NOSCRIPT answer (SCRIPT FLUSH) loads the script
 * again and resends the same call once.
 *
 * In this file: the scripts each connection loads; the connection (connect,
 * AUTH, SELECT, the script loads, the Redis version check that brings the
 * link up, disconnect, reconnect with backoff, health callbacks); the URL,
 * sf_store_new and sf_store_free; then a command's way out (store_eval for a
 * script call of store.c, store_send_script for a batch of store_batch.c,
 * store_send_command for a plain command) and its reply's way back
 * (on_reply: one sf_store_reply per kind; a batch's items are answered by
 * store_batch_answer).
 */
#include "store_internal.h"

#include <hiredis/adapters/libevent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "alloc.h"
#include "clock.h"
#include "log.h"

/* ------------------------ the scripts each connection loads */

/*
 * The scripts: one supervisor/lua/<name>.lua each, opened by what it
 * guarantees (keys, arguments, reply, the invariant it keeps), embedded by
 * the build as LUA_<NAME> (supervisor/lua/embed.cmake).
 */
#include "lua_scripts.h"

const char *const store_scripts[S__COUNT] = {[S_CREATE] = LUA_CREATE,
                                             [S_GET] = LUA_GET,
                                             [S_SET] = LUA_SET,
                                             [S_END] = LUA_END,
                                             [S_PUT_PROGRAM] = LUA_PUT_PROGRAM,
                                             [S_GET_PROGRAM] = LUA_GET_PROGRAM,
                                             [S_DEL_PROGRAM] = LUA_DEL_PROGRAM,
                                             [S_LIST] = LUA_LIST,
                                             [S_CLAIMS] = LUA_CLAIMS,
                                             [S_COMMITS] = LUA_COMMITS,
                                             [S_RESTORE_EPOCH] = LUA_RESTORE_EPOCH};

typedef struct load_ctx {
    sf_store *st;
    redisAsyncContext *ac;
    int script;
} load_ctx;

static void on_script_loaded(redisAsyncContext *ac, void *r, void *privdata)
{
    load_ctx *x = privdata;
    redisReply *rep = r;
    if (rep && rep->type == REDIS_REPLY_STRING && rep->len == 40 && x->st->ac == ac) {
        memcpy(x->st->sha[x->script], rep->str, 40);
        x->st->sha[x->script][40] = '\0';
    } else if (rep && rep->type == REDIS_REPLY_ERROR) {
        sf_warn("store.script_load_failed", "script=%d error=\"%s\" action=eval", x->script,
                rep->str);
    }
    free(x);
}

static void load_script(sf_store *st, int i)
{
    load_ctx *x = sf_xmalloc(sizeof(*x));
    *x = (load_ctx){st, st->ac, i};
    const char *argv[] = {"SCRIPT", "LOAD", store_scripts[i]};
    size_t lens[] = {6, 4, strlen(store_scripts[i])};
    if (redisAsyncCommandArgv(st->ac, on_script_loaded, x, 3, argv, lens) != REDIS_OK)
        free(x);
}

/* On every (re)connection, before any other command; the SHAs come with the replies. */
static void load_scripts(sf_store *st)
{
    for (int i = 0; i < S__COUNT; i++) {
        st->sha[i][0] = '\0';
        load_script(st, i);
    }
}

/* ------------------------ the connection: up, down, again */

/* Backoff: 50 ms, doubling up to 2 s; store_up resets it once a connection is usable. */
/* The link is down: connect again after the backoff, which doubles up to 2 s. */
void store_link_retry(sf_store *st)
{
    if (st->freeing)
        return;
    struct timeval tv = {(time_t)(st->backoff_ms / 1000),
                         (suseconds_t)(st->backoff_ms % 1000) * 1000};
    evtimer_add(st->ev_reconnect, &tv);
    st->backoff_ms = st->backoff_ms < 2000 ? st->backoff_ms * 2 : 2000;
}

/* The link is usable: reset the backoff, tell the owner. */
static void store_up(sf_store *st, const char *version)
{
    st->backoff_ms = 50;
    if (st->on_health)
        st->on_health(st->health_arg, true);
    sf_info("store.connected", "host=%s port=%d db=%d redis=%s", st->host, st->port, st->db,
            version);
}

/*
 * The last command of a new connection (behind AUTH, SELECT and the script
 * loads): the link counts as up only once Redis answers it, and only for a
 * Redis that runs the scripts (7.0: SET with NX and GET together, GETEX).
 */
static void on_info(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply *rep = r;
    sf_store *st = ac->data;
    if (rep == NULL || st->freeing || st->ac != ac)
        return;
    if (rep->type == REDIS_REPLY_ERROR &&
        (strncmp(rep->str, "NOAUTH", 6) == 0 || strncmp(rep->str, "WRONGPASS", 9) == 0))
        return; /* a refused AUTH is handled by on_auth */
    if (rep->type != REDIS_REPLY_STRING) {
        /* e.g. NOPERM: an ACL user without INFO. Its scripts may still run: go on. */
        sf_warn("store.version_unknown", "host=%s port=%d reason=\"%s\"", st->host, st->port,
                rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected INFO reply");
        store_up(st, "unknown");
        return;
    }
    char version[32] = "unknown";
    const char *v = strstr(rep->str, "redis_version:");
    if (v)
        sscanf(v + 14, "%31[0-9.]", version);
    if (atoi(version) < 7) {
        sf_error("store.redis_too_old", "host=%s port=%d version=%s need=7.0 action=reconnect",
                 st->host, st->port, version);
        redisAsyncDisconnect(ac);
        return;
    }
    store_up(st, version);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    sf_store *st = ac->data;
    if (status != REDIS_OK) {
        sf_warn("store.connect_failed", "host=%s port=%d reason=\"%s\"", st->host, st->port,
                ac->errstr);
        st->ac = NULL; /* hiredis frees a context whose connect failed */
        store_link_retry(st);
        return;
    }
    st->connected = true; /* commands queue behind AUTH, which went first */
    load_scripts(st);
    /* Up once INFO answers (on_info): not on a refused AUTH, which must not reset the backoff. */
    redisAsyncCommand(st->ac, on_info, NULL, "INFO server");
}

/*
 * Drops the link now, not once its pending replies are in (as
 * redisAsyncDisconnect would): a primary that was replaced can hold a WAIT
 * for redis.replica_timeout. Shutting the socket makes hiredis see the link
 * fail on its next read; every call in flight is answered as lost (and runs
 * again, finding whatever survived), then on_disconnect reconnects.
 */
void store_link_drop(sf_store *st)
{
    if (st->ac && st->ac->c.fd >= 0)
        shutdown(st->ac->c.fd, SHUT_RDWR);
}

/*
 * A cut network sends no reset: without these a link to a Redis that went
 * silent waits forever, its calls neither answered nor failed. Sent bytes
 * (and the connect's SYN) left unacknowledged for link_timeout_ms fail the
 * socket (TCP_USER_TIMEOUT), and an idle link is probed every second so the
 * same holds when nothing is being sent. Failing here only costs the
 * failure's early notice.
 */
void store_link_tune(const sf_store *st, int fd)
{
    if (fd < 0)
        return;
    int on = 1, idle = 1, intvl = 1, cnt = 3;
    unsigned int user_timeout = st->link_timeout_ms ? st->link_timeout_ms : 3000;
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
    setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout, sizeof(user_timeout));
}

/* The link dropped (or was closed): tell the owner, back off, reconnect. */
static void on_disconnect(const redisAsyncContext *ac, int status)
{
    sf_store *st = ac->data;
    st->connected = false;
    st->ac = NULL;
    if (st->freeing)
        return;
    sf_warn("store.disconnected", "host=%s port=%d reason=\"%s\"", st->host, st->port,
            status == REDIS_OK ? "closed" : ac->errstr);
    if (st->on_health)
        st->on_health(st->health_arg, false);
    store_link_retry(st);
}

static void on_auth(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply *rep = r;
    sf_store *st = ac->data;
    if (rep == NULL || st->freeing || st->ac != ac)
        return;
    if (rep->type != REDIS_REPLY_ERROR)
        return; /* accepted: on_info reports the link up */
    sf_error("store.auth_failed", "host=%s port=%d user=%s reason=\"%s\" action=reconnect",
             st->host, st->port, st->user[0] ? st->user : "default", rep->str);
    redisAsyncDisconnect(ac); /* the commands behind it fail NOAUTH; back off and retry */
}

/* Behind Sentinel: the address must be the primary's still (not a replica mid-failover). */
static void on_role(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply *rep = r;
    sf_store *st = ac->data;
    if (rep == NULL || st->freeing || st->ac != ac || rep->type != REDIS_REPLY_ARRAY ||
        rep->elements == 0 || rep->element[0]->type != REDIS_REPLY_STRING ||
        strcmp(rep->element[0]->str, "master") == 0)
        return;
    sf_warn("store.not_primary", "host=%s port=%d role=%s action=reconnect", st->host, st->port,
            rep->element[0]->str);
    redisAsyncDisconnect(ac); /* INFO behind it never brings this link up */
}

/*
 * A new connection to st->host:st->port, its first commands queued in the
 * order they must run: AUTH (with a password), SELECT (a db other than 0),
 * ROLE (behind Sentinel); on_connect queues the script loads and INFO behind
 * them, and INFO's answer brings the link up.
 */
void store_link_connect(sf_store *st)
{
    redisAsyncContext *ac = redisAsyncConnect(st->host, st->port);
    if (ac == NULL || ac->err) {
        sf_warn("store.connect_failed", "host=%s port=%d reason=\"%s\"", st->host, st->port,
                ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        store_link_retry(st);
        return;
    }
    ac->data = st;
    store_link_tune(st, ac->c.fd);
    redisLibeventAttach(ac, st->base);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    st->ac = ac;
    if (st->password[0]) {
        /* Queued first: everything after it on this connection runs authenticated. */
        const char *argv[3] = {"AUTH", st->user, st->password};
        int argc = 3;
        if (st->user[0] == '\0') {
            argv[1] = st->password;
            argc = 2;
        }
        redisAsyncCommandArgv(ac, on_auth, NULL, argc, argv, NULL);
    }
    if (st->db) {
        char db[16];
        snprintf(db, sizeof(db), "%d", st->db);
        const char *argv[] = {"SELECT", db};
        redisAsyncCommandArgv(ac, NULL, NULL, 2, argv, NULL);
    }
    if (st->nsentinels)
        redisAsyncCommand(ac, on_role, NULL, "ROLE");
}

/* Every connect: through the sentinels when there are some (store_sentinel.c). */
static void on_reconnect(evutil_socket_t fd, short what, void *arg)
{
    sf_store *st = arg;
    if (st->nsentinels)
        store_sentinel_resolve(st);
    else
        store_link_connect(st);
}

/* ------------------------ the URL, create and free */

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

sf_store *sf_store_new(struct event_base *base, const char *url, const char *user,
                       const char *password, uint32_t session_ttl_s,
                       void (*on_health)(void *arg, bool up), void *health_arg, char *err,
                       size_t errlen)
{
    sf_store *st = sf_xcalloc(1, sizeof(*st));
    st->base = base;
    st->ttl_s = session_ttl_s;
    snprintf(st->user, sizeof(st->user), "%s", user ? user : "");
    snprintf(st->password, sizeof(st->password), "%s", password ? password : "");
    st->on_health = on_health;
    st->health_arg = health_arg;
    snprintf(st->ttl, sizeof(st->ttl), "%u", session_ttl_s);
    st->backoff_ms = 50;
    if (parse_url(st, url, err, errlen) < 0) {
        free(st);
        return NULL;
    }
    sf_store_set_key_prefix(st, SF_STORE_DEFAULT_PREFIX);
    st->ev_reconnect = evtimer_new(base, on_reconnect, st);
    st->ev_flush = event_new(base, -1, 0, store_batch_on_flush, st);
    /* From the loop, so that what is set before it runs (sentinels) is used. */
    struct timeval now = {0, 0};
    evtimer_add(st->ev_reconnect, &now);
    return st;
}

void sf_store_free(sf_store *st)
{
    if (st == NULL)
        return;
    st->freeing = true;
    /* Nothing is answered any more: the owner's callbacks may point at what it freed. */
    if (st->claims)
        store_batch_free(st->claims);
    if (st->commits)
        store_batch_free(st->commits);
    st->claims = st->commits = NULL;
    if (st->ac)
        redisAsyncFree(st->ac); /* hands pending commands to on_reply, which drops them */
    store_sentinel_free(st);
    event_free(st->ev_reconnect);
    event_free(st->ev_flush);
    free(st);
}

void sf_store_set_link_timeout(sf_store *st, uint32_t ms)
{
    st->link_timeout_ms = ms;
}

void sf_store_set_replicas(sf_store *st, uint32_t min_replicas, uint32_t timeout_ms)
{
    st->min_replicas = min_replicas;
    st->replica_timeout_ms = timeout_ms;
}

bool sf_store_connected(const sf_store *st)
{
    return st->connected;
}

int sf_store_pending(const sf_store *st)
{
    return st->pending;
}

/* ------------------------ a command's way out, its reply's way back */

typedef struct req {
    sf_store *st;
    sf_store_cb cb;
    void *arg;
    int kind;
    int script; /* index in store_scripts, -1: not a script */
    char *cmd;  /* the formatted EVALSHA call, kept for one NOSCRIPT retry */
    size_t cmdlen;
    bool retried;
    /* A write with redis.min_replicas: answered only once WAIT says the replicas have it. */
    int waits;         /* WAITs sent after it and not answered yet */
    bool held;         /* its reply came and waits in `reply` for the last WAIT */
    redisReply *reply; /* a copy (NULL: the connection was lost) */
} req;

static void on_reply(redisAsyncContext *ac, void *r, void *privdata);
static void on_wait(redisAsyncContext *ac, void *r, void *privdata);

/*
 * Queues `WAIT min_replicas timeout` behind q's command on the same
 * connection (so it covers that write); q is answered from on_wait. Reads
 * are followed by one too: a primary without the replicas it should have (a
 * node restarted empty that still calls itself primary, one cut off from its
 * replicas) must not answer a read either, for what it holds may be what it
 * never replicated, or nothing at all.
 */
static void send_wait(sf_store *st, req *q)
{
    if (st->min_replicas == 0 || st->ac == NULL)
        return;
    char n[16], ms[16];
    snprintf(n, sizeof(n), "%u", st->min_replicas);
    snprintf(ms, sizeof(ms), "%u", st->replica_timeout_ms);
    const char *argv[] = {"WAIT", n, ms};
    if (redisAsyncCommandArgv(st->ac, on_wait, q, 3, argv, NULL) == REDIS_OK)
        q->waits++;
}

/* A deep copy of a reply, freed by freeReplyObject like one of hiredis' own. */
static redisReply *copy_reply(const redisReply *r)
{
    redisReply *c = sf_xcalloc(1, sizeof(*c));
    c->type = r->type;
    c->integer = r->integer;
    if (r->str) {
        c->str = sf_xmalloc(r->len + 1);
        memcpy(c->str, r->str, r->len);
        c->str[r->len] = '\0';
        c->len = r->len;
    }
    if (r->elements) {
        c->element = sf_xcalloc(r->elements, sizeof(*c->element));
        c->elements = r->elements;
        for (size_t i = 0; i < r->elements; i++)
            c->element[i] = copy_reply(r->element[i]);
    }
    return c;
}

/*
 * One script call of an operation (store.c): the four keys, the caller's
 * epoch ("0": unfenced) and the session TTL, then the operation's own
 * arguments (up to 7).
 */
void store_eval(sf_store *st, int kind, int script, const keys *k, const sf_fence *f, int nargs,
                const char **args, const size_t *arglens, sf_store_cb cb, void *arg)
{
    char epoch[24];
    snprintf(epoch, sizeof(epoch), "%llu", f ? (unsigned long long)f->epoch : 0ull);
    bool sha = st->sha[script][0] != '\0';
    const char *text = sha ? st->sha[script] : store_scripts[script];
    const char *argv[16] = {sha ? "EVALSHA" : "EVAL",
                            text,
                            "4",
                            k->state,
                            k->programs,
                            k->epoch,
                            k->request,
                            epoch,
                            st->ttl};
    size_t lens[16] = {sha ? 7 : 4,    sha ? 40 : strlen(text), 1,
                       k->state_len,   k->programs_len,         k->epoch_len,
                       k->request_len, strlen(epoch),           strlen(st->ttl)};
    for (int i = 0; i < nargs; i++) {
        argv[9 + i] = args[i];
        lens[9 + i] = arglens[i];
    }
    store_send_script(st, kind, script, 9 + nargs, argv, lens, cb, arg);
}

/*
 * Sends a script call (EVALSHA sha or EVAL text), keeping an EVALSHA's bytes
 * for a retry. For a batch (kind K_CLAIMS / K_COMMITS) arg is the batch, whose
 * items are already counted in pending.
 */
void store_send_script(sf_store *st, int kind, int script, int argc, const char **argv,
                       const size_t *lens, sf_store_cb cb, void *arg)
{
    bool is_batch = kind == K_CLAIMS || kind == K_COMMITS;
    req *q = sf_xmalloc(sizeof(*q));
    *q = (req){.st = st, .cb = cb, .arg = arg, .kind = kind, .script = script};
    char *cmd = NULL;
    int len = -1;
    if (st->connected && st->ac)
        len = redisFormatCommandArgv(&cmd, argc, argv, lens);
    if (len < 0 || redisAsyncFormattedCommand(st->ac, on_reply, q, cmd, (size_t)len) != REDIS_OK) {
        sf_store_reply out = {.status = SF_STORE_UNAVAILABLE, .error = "Redis is not connected"};
        if (cmd)
            redisFreeCommand(cmd);
        if (is_batch) {
            batch *b = arg;
            st->pending -= b->n;
            store_batch_answer(b, NULL, &out);
            store_batch_free(b);
        } else if (cb) {
            cb(arg, &out);
        }
        free(q);
        return;
    }
    if (lens[0] == 7) { /* EVALSHA */
        q->cmd = cmd;
        q->cmdlen = (size_t)len;
    } else {
        redisFreeCommand(cmd);
    }
    send_wait(st, q);
    if (!is_batch)
        st->pending++;
    st->calls++;
}

/* Sends argv; answers UNAVAILABLE from the loop's point of view when disconnected. */
void store_send_command(sf_store *st, int kind, int argc, const char **argv, const size_t *lens,
                        sf_store_cb cb, void *arg)
{
    req *q = sf_xmalloc(sizeof(*q));
    *q = (req){.st = st, .cb = cb, .arg = arg, .kind = kind, .script = -1};
    if (!st->connected || st->ac == NULL ||
        redisAsyncCommandArgv(st->ac, on_reply, q, argc, argv, lens) != REDIS_OK) {
        sf_store_reply out = {.status = SF_STORE_UNAVAILABLE, .error = "Redis is not connected"};
        if (cb)
            cb(arg, &out);
        free(q);
        return;
    }
    send_wait(st, q);
    st->pending++;
    st->calls++;
}

static void answer(redisAsyncContext *ac, req *q, redisReply *rep);

static void req_drop(req *q)
{
    if (q->kind == K_CLAIMS || q->kind == K_COMMITS)
        store_batch_free(q->arg);
    if (q->cmd)
        redisFreeCommand(q->cmd);
    if (q->reply)
        freeReplyObject(q->reply);
    free(q);
}

/* A command's reply: answered now, or held for the WAIT behind it. */
static void on_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    req *q = privdata;
    sf_store *st = q->st;
    redisReply *rep = r;
    if (st->freeing) { /* the owner is tearing down (sf_store_free): no one is left to answer */
        if (q->waits == 0)
            req_drop(q);
        else
            q->held = true; /* the last on_wait drops it */
        return;
    }
    if (rep && rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "NOSCRIPT", 8) == 0 && q->cmd &&
        !q->retried && st->ac) {
        /* The script cache was flushed: load the script again, then resend (in order). */
        q->retried = true;
        st->sha[q->script][0] = '\0';
        load_script(st, q->script);
        if (redisAsyncFormattedCommand(st->ac, on_reply, q, q->cmd, q->cmdlen) == REDIS_OK) {
            send_wait(st, q); /* the WAIT already queued covers the failed call only */
            return;
        }
    }
    if (q->waits > 0) {
        q->held = true;
        q->reply = rep ? copy_reply(rep) : NULL;
        return;
    }
    answer(ac, q, rep);
}

/*
 * WAIT answered: the write before it reached that many replicas, or not in
 * redis.replica_timeout. Not enough: the write is answered UNAVAILABLE (it
 * may be on the primary only and be lost in a failover; the caller runs the
 * request again, and its claim or commit finds whatever survived).
 */
static void on_wait(redisAsyncContext *ac, void *r, void *privdata)
{
    req *q = privdata;
    sf_store *st = q->st;
    redisReply *rep = r;
    q->waits--;
    if (q->waits > 0 || !q->held)
        return; /* a WAIT behind a call sent again (NOSCRIPT), or the reply is still to come */
    if (st->freeing) {
        req_drop(q);
        return;
    }
    if (q->reply && q->reply->type != REDIS_REPLY_ERROR &&
        (rep == NULL || rep->type != REDIS_REPLY_INTEGER ||
         rep->integer < (long long)st->min_replicas)) {
        char msg[160];
        snprintf(msg, sizeof(msg), "NOT_REPLICATED %lld of %u replicas confirmed in %u ms",
                 rep && rep->type == REDIS_REPLY_INTEGER ? rep->integer : 0LL, st->min_replicas,
                 st->replica_timeout_ms);
        st->not_replicated++;
        uint64_t t = now_us();
        if (t - st->not_replicated_log_us >= 1000000u) { /* a line a second, not one a write */
            sf_warn("store.not_replicated", "replicas=%lld need=%u timeout_ms=%u writes=%llu",
                    rep && rep->type == REDIS_REPLY_INTEGER ? rep->integer : 0LL, st->min_replicas,
                    st->replica_timeout_ms, (unsigned long long)st->not_replicated);
            st->not_replicated_log_us = t;
            st->not_replicated = 0;
        }
        freeReplyObject(q->reply);
        q->reply = NULL;
        redisReply e = {.type = REDIS_REPLY_ERROR, .str = msg, .len = strlen(msg)};
        answer(ac, q, &e);
        return;
    }
    redisReply *held = q->reply;
    q->reply = NULL;
    answer(ac, q, held);
    if (held)
        freeReplyObject(held);
}

/* Turns a hiredis reply into an sf_store_reply for the request's kind; frees q. */
static void answer(redisAsyncContext *ac, req *q, redisReply *rep)
{
    sf_store *st = q->st;
    if (rep && rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "READONLY", 8) == 0 &&
        st->ac == ac && ac) {
        /* The primary was demoted (a failover): find the new one (store_sentinel.c). */
        sf_warn("store.readonly", "host=%s port=%d action=reconnect", st->host, st->port);
        store_link_drop(st);
    }
    if (q->kind == K_CLAIMS || q->kind == K_COMMITS) {
        batch *b = q->arg;
        st->pending -= b->n;
        if (rep == NULL) {
            sf_store_reply all = {.status = SF_STORE_UNAVAILABLE,
                                  .error = ac && ac->errstr[0] ? ac->errstr
                                                               : "connection to Redis lost"};
            store_batch_answer(b, NULL, &all);
        } else if (rep->type == REDIS_REPLY_ERROR) {
            sf_error("store.command_failed", "error=\"%s\" items=%d", rep->str, b->n);
            sf_store_reply all = {.status = SF_STORE_UNAVAILABLE, .error = rep->str};
            store_batch_answer(b, NULL, &all);
        } else {
            store_batch_answer(b, rep, NULL);
        }
        store_batch_free(b);
        if (q->cmd)
            redisFreeCommand(q->cmd);
        free(q);
        return;
    }
    st->pending--;
    sf_store_reply out = {.status = SF_STORE_OK};
    const char *ids[1024]; /* list_programs: the program ids */
    size_t lens[1024];
    if (rep == NULL) {
        out.status = SF_STORE_UNAVAILABLE;
        out.error = ac && ac->errstr[0] ? ac->errstr : "connection to Redis lost";
    } else if (rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "FENCED", 6) == 0) {
        out.status = SF_STORE_FENCED;
        out.error = rep->str;
    } else if (rep->type == REDIS_REPLY_ERROR) {
        out.status = SF_STORE_UNAVAILABLE;
        out.error = rep->str;
        sf_error("store.command_failed", "error=\"%s\"", rep->str);
    } else {
        switch (q->kind) {
        case K_CREATE:
            if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
                rep->element[0]->type == REDIS_REPLY_INTEGER &&
                rep->element[1]->type == REDIS_REPLY_INTEGER) {
                out.count = rep->element[1]->integer;
                if (rep->element[0]->integer != 1)
                    out.status = SF_STORE_LIMIT;
            } else {
                out.status = SF_STORE_UNAVAILABLE;
                out.error = "unexpected create_session reply";
            }
            break;
        case K_BUMP:
            out.count = rep->type == REDIS_REPLY_INTEGER ? rep->integer : 0;
            break;
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
        case K_COUNT:
        case K_DELETE:
            out.count = rep->type == REDIS_REPLY_INTEGER ? rep->integer : 0;
            if (out.count < (q->kind == K_DELETE ? 0 : 1))
                out.status = SF_STORE_NOT_FOUND;
            break;
        case K_GET_PROGRAM:
            if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 2 ||
                rep->element[0]->type != REDIS_REPLY_STRING) {
                out.status = SF_STORE_NOT_FOUND;
            } else {
                out.state = rep->element[0]->str;
                out.state_len = rep->element[0]->len;
                if (rep->element[1]->type == REDIS_REPLY_STRING) {
                    out.spec = rep->element[1]->str;
                    out.spec_len = rep->element[1]->len;
                }
                if (rep->elements >= 3 && rep->element[2]->type == REDIS_REPLY_STRING)
                    out.version = strtoull(rep->element[2]->str, NULL, 10);
            }
            break;
        case K_LIST:
            if (rep->type != REDIS_REPLY_ARRAY) {
                out.status = SF_STORE_NOT_FOUND;
            } else {
                for (size_t i = 0; i < rep->elements && i < 1024; i++) {
                    ids[i] = rep->element[i]->str;
                    lens[i] = rep->element[i]->len;
                }
                out.nkeys = rep->elements < 1024 ? rep->elements : 1024;
                out.keys = ids;
                out.key_lens = lens;
            }
            break;
        default:
            break;
        }
    }
    if (q->cb)
        q->cb(q->arg, &out);
    if (q->cmd)
        redisFreeCommand(q->cmd);
    free(q);
}

uint64_t sf_store_calls(const sf_store *st)
{
    return st->calls;
}
