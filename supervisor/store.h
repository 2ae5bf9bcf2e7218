/*
 * store.h — the session store in Redis (hiredis async on the libevent loop).
 *
 * A session is two keys, with the `{session}` hash tag so a Redis Cluster
 * keeps them on one slot (schemas/README.md, "Session store"):
 *   P:{S}:state     string, the session state as a msgpack map
 *   P:{S}:programs  hash, program id -> program spec (msgpack map)
 * where P is the fleet's key prefix (redis.key_prefix, "sf" by default), so
 * fleets sharing one Redis database never see each other's keys.
 * Every access refreshes both TTLs (session_ttl). The answers of requests
 * live with the partition they came from, not one key per request (a key per
 * request grew Redis's keyspace with request rate × window, and its rehashes
 * stalled it), in two keys that share the partition's epoch key's tag:
 *   P:done:{group}:topic/partition   hash, request -> its reply (the dedupe record)
 *   P:order:{group}:topic/partition  list of '<offset> <request>', in commit order
 * (a request is named "<session length>:<session><id>"), written by the
 * request's commit and dropped by a later commit of the partition once the
 * group's committed offset has passed it (sf_fence.settled). A claimed
 * request also holds P:{S}:req:ID while it runs; its commit removes it.
 * Each operation is one
 * round trip (a single command or one Lua script), so it is atomic and
 * pipelines with everything else in flight.
 *
 * Callbacks run on the loop, exactly once; the reply is valid only during
 * the callback. Claims and commits asked for during one loop turn go to
 * Redis together, as one script call each, at the end of the turn.
 *
 * Inside: store.c (the operations and their keys), store_link.c (the
 * connection, the scripts, a command's way out and its reply's way back),
 * store_batch.c (a turn's claims and commits); store_internal.h maps them.
 */
#ifndef SF_STORE_H
#define SF_STORE_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    SF_STORE_OK,
    SF_STORE_NOT_FOUND,   /* the session (or program) does not exist */
    SF_STORE_UNAVAILABLE, /* Redis is down or answered an error */
    SF_STORE_FENCED,      /* the caller's partition epoch is stale: a zombie's write */
    SF_STORE_LIMIT,       /* create_session: max_sessions are stored already */
    SF_STORE_CONFLICT,    /* commit: the state changed since the run read it (not written) */
    SF_STORE_ANSWERED,    /* commit: the request was answered before (nothing written); the
                             reply given then is in state/state_len */
} sf_store_status;

/* The default key prefix (redis.key_prefix); at most SF_STORE_PREFIX_MAX bytes. */
#define SF_STORE_DEFAULT_PREFIX "sf"
#define SF_STORE_PREFIX_MAX     64
/* Room for a lease key: prefix, group and topic (each at most 249 bytes) and partition. */
#define SF_STORE_EPOCH_KEY_MAX (SF_STORE_PREFIX_MAX + 2 * 256 + 32)

/*
 * A write's lease: the key holding its partition's epoch and the epoch the
 * writer took on assignment. A write whose epoch is no longer the key's value
 * is refused (SF_STORE_FENCED). NULL: unfenced.
 *
 * The partition's reply records are found beside its epoch key (store.h's
 * top). `settled`: the records of requests at offsets below it may be dropped
 * (the daemon passes the offset the group had committed redis.dedupe_ttl ago);
 * 0 drops nothing.
 */
typedef struct sf_fence {
    const char *key;
    uint64_t epoch;
    int64_t settled;
} sf_fence;

typedef struct sf_store_reply {
    sf_store_status status;
    const char *error; /* when UNAVAILABLE */
    /* values (msgpack bytes); NULL when absent */
    const char *state;
    size_t state_len;
    const char *spec;
    size_t spec_len;
    /* list_programs */
    size_t nkeys;
    const char *const *keys;
    const size_t *key_lens;
    int64_t count; /* end_session: keys removed; delete_program: 1 if it existed; bump: epoch;
                      create_session: sessions stored (after it, or when refused) */
    int claim; /* claim: 0 claimed, 1 answered before (state = reply), 2 running (state = owner) */
    uint64_t version; /* claim with a read, get_program: the state's version (sf_store_commit) */
} sf_store_reply;

typedef void (*sf_store_cb)(void *arg, const sf_store_reply *r);

typedef struct sf_store sf_store;

/*
 * Connects to url (redis://host:port[/db]), authenticating with AUTH [user]
 * password first when password is not NULL or empty; reconnects by itself
 * when the link drops. on_health (may be NULL) is told each time the link
 * goes up or down. A refused AUTH is logged (store.auth_failed) and the
 * connection retried with backoff.
 */
sf_store *sf_store_new(struct event_base *base, const char *url, const char *user,
                       const char *password, uint32_t session_ttl_s,
                       void (*on_health)(void *arg, bool up), void *health_arg, char *err,
                       size_t errlen);
/*
 * Every key the store touches starts with "<prefix>:" (the session index is
 * <prefix>:sessions). Call before the first command; "sf" until then.
 * Returns -1 for a prefix that is empty, too long, or holds a brace, a space
 * or a control byte (it would break the hash tags or the key layout).
 */
int sf_store_set_key_prefix(sf_store *st, const char *prefix);
/* The lease key of a partition: <prefix>:epoch:{group}:topic/partition. */
void sf_store_epoch_key(const sf_store *st, char *buf, size_t cap, const char *group,
                        const char *topic, int32_t partition);
/*
 * Durability across a failover: with min_replicas > 0 every write (claims,
 * commits, leases, session and program writes) is followed on its connection
 * by `WAIT min_replicas timeout_ms`, and answered only after it: a write that
 * did not reach min_replicas replicas in time is answered UNAVAILABLE (it may
 * be lost with the primary). 0 (the default): answered as soon as the primary
 * has it. Call before the first command.
 */
void sf_store_set_replicas(sf_store *st, uint32_t min_replicas, uint32_t timeout_ms);
/*
 * How long Redis's host may leave sent bytes (or a connect) unacknowledged
 * before the link counts as lost (redis.link_timeout; 3000 by default): a
 * network cut, which sends no reset, is noticed in that time.
 */
void sf_store_set_link_timeout(sf_store *st, uint32_t ms);
/*
 * Behind Redis Sentinel: every connect asks these sentinels ("host[:port],…",
 * 26379 by default) for the address of the primary named `master`, in turn,
 * and the link is re-made when it drops or a write is refused READONLY (the
 * primary was demoted), so a failover is followed. The URL then gives only
 * the db. "" or NULL: connect to the URL's host. Call before the first turn
 * of the loop. Returns -1 (err says why) for a list it cannot read.
 */
#define SF_STORE_MAX_SENTINELS 8
int sf_store_set_sentinels(sf_store *st, const char *sentinels, const char *master, char *err,
                           size_t errlen);
/* Closes the connection; callbacks still pending are dropped, never called. */
void sf_store_free(sf_store *st);
bool sf_store_connected(const sf_store *st);
/* Commands sent and not yet answered. */
int sf_store_pending(const sf_store *st);

/*
 * Creates (or re-creates, emptying its programs) session s with its state,
 * unless max_sessions (0: no limit) sessions are stored and s is not one of
 * them: SF_STORE_LIMIT. `count` is the number of sessions stored.
 */
void sf_store_create_session(sf_store *st, const sf_fence *f, const char *s, size_t slen,
                             const void *state, size_t len, uint64_t max_sessions, sf_store_cb cb,
                             void *arg);
void sf_store_end_session(sf_store *st, const sf_fence *f, const char *s, size_t slen,
                          sf_store_cb cb, void *arg);
void sf_store_get_state(sf_store *st, const char *s, size_t slen, sf_store_cb cb, void *arg);
/* NOT_FOUND when the session does not exist. */
void sf_store_set_state(sf_store *st, const sf_fence *f, const char *s, size_t slen,
                        const void *state, size_t len, sf_store_cb cb, void *arg);
void sf_store_put_program(sf_store *st, const sf_fence *f, const char *s, size_t slen,
                          const char *p, size_t plen, const void *spec, size_t len, sf_store_cb cb,
                          void *arg);
/* The session state, its version and the program's spec in one round trip. */
void sf_store_get_program(sf_store *st, const char *s, size_t slen, const char *p, size_t plen,
                          sf_store_cb cb, void *arg);
void sf_store_delete_program(sf_store *st, const sf_fence *f, const char *s, size_t slen,
                             const char *p, size_t plen, sf_store_cb cb, void *arg);
void sf_store_list_programs(sf_store *st, const char *s, size_t slen, sf_store_cb cb, void *arg);

/*
 * Effectively once. Claims request `id` of session `s` for `owner` for
 * claim_ttl_ms (long enough to run it): claim 0 = ours to run; 1 = it was
 * answered before, the reply bytes are in state/state_len; 2 = another
 * owner is running it ("owner@epoch" in state). With a fence, a claim made
 * under an older epoch of the partition is taken over (its owner lost it),
 * and our own earlier claim (a rerun) is ours again. With `program`, a
 * successful claim also reads the session's state (state; NULL: no such
 * session) and that program's spec (spec; NULL: no such program) — an
 * execute needs one round trip before it runs.
 */
void sf_store_claim(sf_store *st, const sf_fence *f, const char *s, size_t slen, const char *id,
                    size_t idlen, const char *owner, uint32_t claim_ttl_ms, const char *program,
                    size_t plen, sf_store_cb cb, void *arg);
/*
 * Remembers the reply of request `id`, consumed at `offset` of the fence's
 * partition, and, when `state` is not NULL, writes the session's new state —
 * atomically, fenced by f. A request answered before (a client that produced
 * it again, met here without a claim) is not run twice: ANSWERED, nothing is
 * written, and the reply given then comes back in state/state_len.
 * With read_version >= 0 (the version the run read) the commit writes only
 * if no one wrote the state since: else CONFLICT, and nothing is written, so
 * two writers of one session cannot lose an update (checked after the
 * record: a request answered before is ANSWERED whatever the version).
 * -1: unconditional.
 * NOT_FOUND: the session vanished (ended) before the state could be written.
 * The commit also drops, once per batch and partition, the records below
 * f->settled. flags: SF_COMMIT_CLAIMED, the request was claimed (its claim
 * key goes); SF_COMMIT_TOUCH, the session's keys get their TTL again (a run on
 * a kept copy of the state, whose claim did not refresh them).
 *
 * Versions live in the session's programs hash under the field "" (no
 * program id is empty): create_session starts it afresh from the clock,
 * set_session_state and every versioned commit add one.
 */
#define SF_COMMIT_CLAIMED 1u
#define SF_COMMIT_TOUCH   2u
void sf_store_commit(sf_store *st, const sf_fence *f, const char *s, size_t slen, const char *id,
                     size_t idlen, const void *reply, size_t reply_len, const void *state,
                     size_t state_len, int64_t read_version, int64_t offset, unsigned flags,
                     sf_store_cb cb, void *arg);
/*
 * The end of a loop turn: the turn's claims and commits go to Redis, one
 * script call each (a batch that fills up goes at once). By default the store
 * does that itself, from an event it activates at the turn's first claim or
 * commit. An owner of the loop with an end-of-turn step of its own (the
 * daemon: daemon.c, end_of_turn) calls sf_store_set_turn_end before the first
 * one: from then on the store calls `wake(arg)` where it would activate that
 * event, and the owner calls sf_store_flush before the loop waits again.
 */
void sf_store_set_turn_end(sf_store *st, void (*wake)(void *arg), void *arg);
void sf_store_flush(sf_store *st);
/* Commands and script calls sent so far (a batch of claims or commits is one). */
uint64_t sf_store_calls(const sf_store *st);
/*
 * A write refused FENCED: sets the epoch key back to `epoch` if it holds less
 * (Redis lost the bump: a failover without min_replicas, a restart on an AOF
 * fsync'd every second): OK, the lease is ours again. NOT_FOUND: it holds
 * `epoch` or more, a newer owner has the partition.
 */
void sf_store_restore_epoch(sf_store *st, const char *epoch_key, uint64_t epoch, sf_store_cb cb,
                            void *arg);
/* Takes a new lease: INCR of the partition's epoch key; the new epoch in `count`. */
void sf_store_bump_epoch(sf_store *st, const char *epoch_key, sf_store_cb cb, void *arg);

#endif
