/*
 * store_internal.h — what the session store's files share; nothing outside
 * supervisor/store*.c includes it (callers have store.h).
 *
 * The store in three files, one concern each:
 *   store.c        the public operations, in the order a request uses them,
 *                  and the keys each one builds: what is sent
 *   store_link.c   the connection (URL, connect, AUTH, the Redis version
 *                  check, reconnect with backoff, health), the scripts each
 *                  connection loads (EVALSHA, the NOSCRIPT retry), sending a
 *                  command and reading its reply: how it is sent and answered
 *   store_batch.c  the claims and commits of one loop turn, sent together as
 *                  one script call each at the end of the turn
 * An operation builds its keys (store.c), goes out as one script call
 * (store_eval) or joins its turn's batch (store_batch_add, which sends
 * through store_send_script), and is answered from on_reply (store_link.c;
 * a batch's items by store_batch_answer).
 */
#ifndef SF_STORE_INTERNAL_H
#define SF_STORE_INTERNAL_H

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "request.h"
#include "store.h"

struct sf_store {
    /* the link (store_link.c) */
    struct event_base *base;
    char host[256];
    int port, db;
    char user[128], password[256];
    uint32_t ttl_s;
    void (*on_health)(void *arg, bool up);
    void *health_arg;
    char ttl[16]; /* the session TTL as the scripts get it (ARGV) */
    redisAsyncContext *ac;
    bool connected;
    int pending;
    uint32_t backoff_ms;
    struct event *ev_reconnect;
    bool freeing;
    char sha[16][41]; /* each script's SHA1 as Redis loaded it; "" until known */
    uint64_t calls;   /* commands and script calls sent */
    /* redis.min_replicas / replica_timeout: every write is followed by a WAIT (store_link.c) */
    uint32_t min_replicas, replica_timeout_ms;
    uint32_t link_timeout_ms; /* redis.link_timeout: TCP_USER_TIMEOUT of every link */
    uint64_t not_replicated, not_replicated_log_us; /* writes refused since the last log line */
    /* this loop turn's batches (store_batch.c) */
    struct batch *claims, *commits; /* filling during this loop turn */
    struct event *ev_flush;
    bool flush_armed;
    /* set (sf_store_set_turn_end): the loop's owner runs sf_store_flush, woken by this */
    void (*flush_wake)(void *);
    void *flush_wake_arg;
    /* Sentinel (store_sentinel.c): where to ask for the primary's address */
    struct sentinel {
        char host[256];
        int port;
        redisAsyncContext *ac; /* while it is being asked */
        bool answered;         /* this round: the address and epoch below are its answer */
        char addr[256];
        int addr_port;
        long long config_epoch;
    } sentinel[SF_STORE_MAX_SENTINELS];
    int nsentinels;
    int asking; /* sentinels this round still to answer */
    struct event *ev_ask_timeout;
    char master_name[128];
    redisAsyncContext *watch; /* a sentinel that named the primary, subscribed to +switch-master */
    /* the keys (store.c) */
    char prefix[SF_STORE_PREFIX_MAX + 2]; /* "<key_prefix>:" */
    size_t prefix_len;
    char index_key[SF_STORE_PREFIX_MAX + 16];    /* <prefix>:sessions */
    char unfenced_key[SF_STORE_PREFIX_MAX + 16]; /* <prefix>:epoch:- (reads carry no epoch) */
};

/*
 * Claims or commits on their way to one script call. Each item is
 * ITEM_KEYS keys then ITEM_ARGS arguments (strings kept in buf, by offset
 * until the call is made).
 */
#define BATCH_MAX 64
#define ITEM_KEYS 6
#define ITEM_ARGS 8
#define ITEM_STRS (ITEM_KEYS + ITEM_ARGS)
typedef struct batch {
    int kind, script, n;
    struct {
        sf_store_cb cb;
        void *arg;
    } item[BATCH_MAX];
    size_t off[BATCH_MAX * ITEM_STRS], len[BATCH_MAX * ITEM_STRS];
    char *buf;
    size_t used, cap;
} batch;

/* How to read a command's reply: by the shape of the reply, not by the command. */
enum {
    K_CLAIMS,  /* a batch: per item {0, ''[, state, spec]} | {1, reply} | {2, owner} */
    K_COMMITS, /* a batch: per item 1 | 0 (no session) | -1 (fenced) | -2 (conflict)
                  | {3, reply} (answered before) */
    K_BUMP,
    K_GET_STATE,
    K_SET_STATE,
    K_COUNT,  /* an integer; 0: the session was not there (end, put_program) */
    K_CREATE, /* {1 created | 0 refused, sessions stored} */
    K_DELETE, /* an integer; -1: no session, 0: no such program (delete_program) */
    K_GET_PROGRAM,
    K_LIST
};

/* The scripts (supervisor/lua/<name>.lua), by index in the script table. */
enum {
    S_CREATE,
    S_GET,
    S_SET,
    S_END,
    S_PUT_PROGRAM,
    S_GET_PROGRAM,
    S_DEL_PROGRAM,
    S_LIST,
    S_CLAIMS,
    S_COMMITS,
    S_RESTORE_EPOCH,
    S__COUNT
};

/*
 * Every script sees the same keys: the session's state and programs, the
 * fencing epoch of the partition the request came from, and the request's
 * claim key; the batched scripts (claims, commits) also the partition's reply
 * records (done, order) and get the request's name in them (field). ARGV[1]
 * is the caller's epoch ("0": unfenced, for reads) and ARGV[2] the session
 * TTL; the rest is per script.
 */
typedef struct keys {
    char state[SF_STORE_PREFIX_MAX + SF_MAX_SESSION_BYTES + 16];
    char programs[SF_STORE_PREFIX_MAX + SF_MAX_SESSION_BYTES + 16];
    char epoch[SF_STORE_EPOCH_KEY_MAX];
    char request[SF_STORE_PREFIX_MAX + SF_MAX_SESSION_BYTES + SF_MAX_ID_BYTES + 16];
    char done[SF_STORE_EPOCH_KEY_MAX + 8], order[SF_STORE_EPOCH_KEY_MAX + 8];
    char field[SF_MAX_SESSION_BYTES + SF_MAX_ID_BYTES + 24];
    size_t state_len, programs_len, epoch_len, request_len, done_len, order_len, field_len;
} keys;

/*
 * What crosses files, by the file that defines it; each function's comment
 * is at its definition.
 */

/* ------------------------ store_link.c */

extern const char *const store_scripts[S__COUNT];
void store_eval(sf_store *st, int kind, int script, const keys *k, const sf_fence *f, int nargs,
                const char **args, const size_t *arglens, sf_store_cb cb, void *arg);
void store_send_script(sf_store *st, int kind, int script, int argc, const char **argv,
                       const size_t *lens, sf_store_cb cb, void *arg);
void store_send_command(sf_store *st, int kind, int argc, const char **argv, const size_t *lens,
                        sf_store_cb cb, void *arg);

void store_link_connect(sf_store *st);
void store_link_retry(sf_store *st);
void store_link_drop(sf_store *st);
void store_link_tune(const sf_store *st, int fd);

/* ------------------------ store_sentinel.c */

void store_sentinel_resolve(sf_store *st);
void store_sentinel_free(sf_store *st);

/* ------------------------ store_batch.c */

void store_batch_add(sf_store *st, batch **slot, int kind, int script, const keys *k,
                     const char *const *args, const size_t *arglens, sf_store_cb cb, void *arg);
void store_batch_on_flush(evutil_socket_t fd, short what, void *arg);
void store_batch_answer(batch *b, const redisReply *rep, const sf_store_reply *all);
void store_batch_free(batch *b);

#endif
