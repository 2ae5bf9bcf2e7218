/*
 * daemon_internal.h — what the daemon's files share: daemon.c and the files
 * of the request path (jobs.c, partitions.c, sessions.c, ops.c, replies.c,
 * telemetry.c). Nothing else includes it; callers have daemon.h.
 *
 * The state of one supervisor: its partitions (`part`), the requests it holds
 * (`job`, one per consumed record, from consumption until its offset is
 * finished), one FIFO per session (`sessq`) and the daemon itself.
 */
#ifndef SF_DAEMON_INTERNAL_H
#define SF_DAEMON_INTERNAL_H

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/time.h>
#include <time.h>

#include "cache.h"
#include "clock.h"
#include "daemon.h"
#include "hist.h"
#include "kafka.h"
#include "offsets.h"
#include "pool.h"
#include "ports.h"
#include "request.h"
#include "smap.h"
#include "store.h"

#define MAX_PARTS         1024
#define SF_MAX_SHARDS     32
#define SESSION_SWEEP_MIN 100000 /* idle session queues kept between telemetry ticks */

typedef struct part {
    char topic[256];
    int32_t partition;
    sf_offsets *offsets;
    int live; /* jobs consumed and not yet freed */
    bool paused, revoking;
    bool released; /* revocation finished while jobs were still alive; freed by the last */
    int64_t next;  /* first offset not finished: committed, then stored (for lag) */
    /* Requests from this offset on were produced after the partition was assigned to us, so
     * no earlier owner can have answered them but through a record its commit checks: they
     * run unclaimed (jobs.c, job_is_fresh). INT64_MAX: unknown, everything is claimed. */
    int64_t fresh_from;
    sf_store *store; /* its shard: stores[partition % nstores] (NULL in tests without one) */
    uint64_t epoch;  /* our lease on the partition (0 until Redis answered) */
    char epoch_key[SF_STORE_EPOCH_KEY_MAX];
    struct job *pend_head, *pend_tail; /* consumed before the lease was known */
    bool bumping;
    uint32_t gen;
    uint32_t lease_failures; /* in a row; logged on the first, then every 30 s, and when over */
    uint64_t lease_failed_log_us; /* when the last lease.failed line was written */
    int topic_slot;               /* for sf_kafka_partition_count (-1: not checked) */
    uint32_t misrouted_unlogged;  /* wrong_partition requests since the last log line */
    uint64_t misrouted_log_us;    /* when the last request.wrong_partition line was written */
    /* The group's commits of this partition, oldest first: when each was seen and its
     * offset. A reply record below the offset committed dedupe_ttl ago may go (part_settled). */
    struct {
        uint64_t at_us;
        int64_t offset;
    } commits[16];
    int ncommits;
} part;

typedef struct sessq sessq;

typedef struct job {
    struct job *next;
    sf_daemon *d;
    part *p;
    int64_t offset;
    rd_kafka_message_t *msg;
    sf_request req;
    bool valid;
    sessq *q;
    char reply_to[256];
    char corr_name[64];
    const void *corr;
    size_t corr_len;
    /* W3C trace context headers of the request (in msg): shown to the program, echoed on
     * its reply. NULL: none. */
    const char *traceparent, *tracestate;
    size_t traceparent_len, tracestate_len;
    uint64_t consumed_us, started_us;
    int crashes;
    int producing; /* records produced and not yet acknowledged */
    bool replied;
    bool claimed;           /* its answer is remembered in Redis: claimed, or run unclaimed */
    bool cached_read;       /* ran on the state cache's copy: its commit checks the version */
    bool lease_checked;     /* fenced once: the epoch key was checked (job_fenced) */
    bool touch;             /* its commit refreshes the session's TTLs (a run on the cache) */
    bool dlq_sent;          /* a DLQ record was produced for it */
    bool lost;              /* a record it produced was not acknowledged */
    msgpack_sbuffer *owed;  /* an answer sent, not yet remembered in Redis (job_remember_owed) */
    struct event *ev_retry; /* waiting for another owner's claim, or for Redis */
    uint64_t unavailable_since_us; /* Redis failed this job first at; 0 = never */
    uint64_t state_version;        /* of the state its run read: its commit is conditional on it */
    int conflicts;                 /* runs whose state another writer changed meanwhile */
    char session_key[SF_MAX_SESSION_BYTES + 1];
} job;

struct sessq {
    job *head, *tail;
    bool running;
    bool in_run; /* sessq_run is on the stack for it: an answer given at once only returns */
};

struct sf_daemon {
    struct event_base *base;
    const sf_config *cfg;
    sf_pool *pool;
    sf_store *stores[SF_MAX_SHARDS]; /* redis.url (or redis.master_name) lists the shards */
    int nstores;
    struct shard_ctx {
        sf_daemon *d;
        int i;
    } shard[SF_MAX_SHARDS]; /* each store's health callback argument */
    uint32_t stores_down;   /* bit i: shard i's link is down */
    struct event *ev_leave; /* redis.leave_after: the store out of reach that long */
    bool left_group;        /* unsubscribed because of it; subscribes again when back */
    sf_kafka *kafka;
    sf_cache *cache;       /* the sessions' state between requests (cache.h) */
    sf_daemon_ports ports; /* how the request path reaches the three above (ports.h) */
    part *parts[MAX_PARTS];
    int nparts;
    sf_smap *sessions; /* session id -> sessq */
    int held;          /* jobs alive */
    int queued;        /* jobs waiting in session FIFOs */
    rd_kafka_topic_partition_list_t *revoking;
    struct event *ev_revoke_timeout, *ev_telemetry, *ev_drain;
    bool shutting_down, draining_done, done;
    uint64_t shutdown_deadline_us;
    /* counters */
    uint64_t total_requests, total_errors, dlq_count, invalid, deadline_exceeded, poison,
        deduplicated, fenced, session_limit_refusals, wrong_partition, conflicts;
    uint64_t stored_sessions;   /* fleet-wide, as the last create_session here saw it */
    uint64_t session_warned_us; /* last near-the-limit warning */
    uint32_t claim_ttl_ms, claim_wait_ms;
    uint32_t part_gen;
    struct event *ev_lease_retry;
    bool redis_down;
    bool any_paused;       /* a partition may be paused: resuming has something to look at */
    size_t max_record;     /* the largest value the producer takes (message.max.bytes - room) */
    size_t sweep_sessions; /* sweep idle session queues when more than this many exist */
    sf_hist latency;
    /* Records the producer's queue had no room for, oldest first (replies.c, produce). */
    struct unsent *unsent_head, *unsent_tail;
    int nunsent;
    uint64_t unsent_since_us;
    struct event *ev_unsent;
    struct event *ev_end_of_turn; /* the pool's and the store's flush, in that order */
};

/* What a reply says, before it is packed (replies.c, reply_pack). */
typedef struct reply_parts {
    bool ok;
    const msgpack_object *result;
    sf_str result_raw;
    const char *type;
    sf_str message, traceback;
    const char *field;
    const char *worker;
    uint64_t exec_us, pool_queued_us;
} reply_parts;

/*
 * What crosses files, declared once each, by the file that defines it, the
 * files in the order a request meets them (daemon.c's top comment has the
 * whole path).
 */

/* jobs.c — the life of one request */
void job_on_message(void *ctx, rd_kafka_message_t *m);
void job_run(sf_daemon *d, job *j);
/* The job's lease, which every write it makes carries. */
sf_fence job_fence(const job *j);
/*
 * Redis did not answer the job: it starts over in a moment, until
 * redis.retry_timeout; false when the time is up and it must be answered.
 */
bool job_retry_unavailable(sf_daemon *d, job *j);
/*
 * The job's reply, remembered in Redis (with the session's new state when
 * `state` is given) before it is produced; a read's reply produced at once.
 */
void job_commit_reply(sf_daemon *d, job *j, const reply_parts *rp, const msgpack_sbuffer *state);
/* A job whose partition lease was taken over: nothing it wrote may land. */
void job_fenced(sf_daemon *d, job *j, const char *why);
/* Writes the answer already sent (j->owed) as the request's dedupe record. */
void job_remember_owed(sf_daemon *d, job *j);
/* The job has its answer: its session moves on; it ends once Kafka has it. */
void job_replied(sf_daemon *d, job *j);
/* The job is over; `finished`: its offset joins the finished prefix. */
void job_end(sf_daemon *d, job *j, bool finished);
void job_free(sf_daemon *d, job *j);

/* partitions.c — assignment, the lease, routing, pausing, lag, revocation */
part *part_find(sf_daemon *d, const char *topic, int32_t partition);
void part_on_committed(void *ctx, const rd_kafka_topic_partition_list_t *offsets);
int64_t part_settled(sf_daemon *d, part *p);
void part_remove(sf_daemon *d, part *p);
void part_on_assign(void *ctx, const rd_kafka_topic_partition_list_t *parts);
void part_on_lease_retry(evutil_socket_t fd, short what, void *arg);
/* Counts and logs a request whose key maps to another partition; true: it was refused. */
bool part_refuse_misrouted(sf_daemon *d, job *j);
/* The job waits, in order, until its partition's lease is known. */
void part_hold_for_lease(sf_daemon *d, job *j);
void part_backpressure_check(sf_daemon *d);
void part_on_store_health(void *arg, bool up);
void part_on_store_gone_long(evutil_socket_t fd, short what, void *arg);
void part_refresh_unknown_lag(sf_daemon *d);
void part_drop_pending(sf_daemon *d, part *p);
void part_on_revoke(void *ctx, rd_kafka_topic_partition_list_t *parts);
void part_revoke_check(sf_daemon *d);
void part_on_revoke_timeout(evutil_socket_t fd, short what, void *arg);

/* sessions.c — one FIFO per session */
void sessq_push(sf_daemon *d, job *j);
void sessq_next(sf_daemon *d, job *j);
void sessq_sweep(sf_daemon *d, bool always);
void sessq_drop_revoked(sf_daemon *d);
void sessq_free_all(sf_daemon *d);

/* ops.c — one handler per op */
/* Reads change nothing, so running one twice is harmless: they need no claim. */
bool op_is_read(sf_op op);
void op_run(sf_daemon *d, job *j);
/* The session's state and the program's spec are read: run the call on the pool. */
void op_done_execute_read(void *arg, const sf_store_reply *r);

/* replies.c — replies, error replies, DLQ records, the producer, delivery reports */
void reply_pack(sf_daemon *d, job *j, const reply_parts *rp, msgpack_sbuffer *sb);
/* Produces reply bytes to the job's reply topic; the session moves on. */
void reply_emit(sf_daemon *d, job *j, const char *data, size_t len, bool ok);
void reply_ok(sf_daemon *d, job *j, const msgpack_sbuffer *result);
/*
 * An error reply. `remember`: like any answer of a claimed request, it is
 * cached for redeliveries; not for answers that only describe this moment.
 */
void reply_error(sf_daemon *d, job *j, bool remember, const char *type, const char *field,
                 const char *fmt, ...) __attribute__((format(printf, 6, 7)));
void reply_undecodable(sf_daemon *d, job *j, const char *id, const sf_err *err);
/* A DLQ record: the original bytes and where they came from, with the reason. */
void reply_dlq(sf_daemon *d, job *j, const char *error_type, const char *reason);
void reply_on_unsent(evutil_socket_t fd, short what, void *arg);
void reply_free_unsent(sf_daemon *d);
void reply_on_delivery(void *ctx, void *opaque, const char *topic, rd_kafka_resp_err_t err);

/* telemetry.c — the telemetry record and the stats snapshot (sf_snapshot_take) */
void telemetry_on_tick(evutil_socket_t fd, short what, void *arg);

#endif
