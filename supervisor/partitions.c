/*
 * partitions.c — the partitions this supervisor owns (`part`): assignment,
 * the lease (fencing epoch) each one takes in Redis, the checks a consumed
 * request meets before it may run (its key on the right partition, the lease
 * known), pausing and resuming (backpressure, Redis down), lag, revocation.
 *
 * A partition's life: assigned (part_on_assign) → its lease taken
 * (part_take_lease, on_lease; until then its requests wait, in order, and once
 * an attempt failed it fetches no more) → requests consumed, run and finished
 * (jobs.c) → revoked (part_on_revoke): queued requests are dropped, running
 * ones finish for up to supervisor.revoke_timeout, then the finished prefix is
 * committed and the partition handed back.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "daemon_internal.h"
#include "log.h"

part *part_find(sf_daemon *d, const char *topic, int32_t partition)
{
    for (int i = 0; i < d->nparts; i++) {
        if (d->parts[i]->partition == partition && strcmp(d->parts[i]->topic, topic) == 0)
            return d->parts[i];
    }
    return NULL;
}

static void part_detach(sf_daemon *d, part *p)
{
    sf_cache_drop_owner(d->cache, p->gen); /* what we knew of its sessions may change now */
    for (int i = 0; i < d->nparts; i++) {
        if (d->parts[i] == p) {
            d->parts[i] = d->parts[--d->nparts];
            break;
        }
    }
}

void part_remove(sf_daemon *d, part *p)
{
    part_detach(d, p);
    sf_offsets_free(p->offsets);
    free(p);
}

/* ---------------------------------------------------------------- assignment and the lease */

/*
 * The group committed `offset` for p: Kafka will not hand out the requests
 * below it again (the next owner starts there), so their reply records are
 * needed only for clients that produce a request again (redis.dedupe_ttl).
 */
static void part_seen_commit(part *p, int64_t offset)
{
    int n = p->ncommits;
    if (n && p->commits[n - 1].offset >= offset)
        return;
    if (n == (int)(sizeof(p->commits) / sizeof(p->commits[0])))
        n--; /* full: the newest moves on (its records wait a little longer, never less) */
    p->commits[n].at_us = now_us();
    p->commits[n].offset = offset;
    p->ncommits = n + 1;
}

/*
 * A partition without a lease cannot run what it consumes: it stops fetching
 * until the lease is taken, so what it holds meanwhile is bounded by what was
 * already fetched (and by supervisor.max_queued), not by Redis' downtime.
 */
static void part_pause_for_lease(sf_daemon *d, part *p)
{
    if (p->paused || p->revoking || d->shutting_down)
        return;
    p->paused = true;
    d->any_paused = true;
    sf_kafka_pause(d->kafka, p->topic, p->partition);
    sf_info("lease.pause", "topic=%s partition=%d held=%d", p->topic, (int)p->partition, p->live);
}

typedef struct lease_ctx {
    sf_daemon *d;
    part *p;
    uint32_t gen;
} lease_ctx;

static void on_lease(void *arg, const sf_store_reply *r);

static void part_take_lease(sf_daemon *d, part *p)
{
    if (p->bumping || p->epoch)
        return;
    p->bumping = true;
    lease_ctx *x = sf_xmalloc(sizeof(*x));
    *x = (lease_ctx){d, p, p->gen};
    sf_store_bump_epoch(p->store, p->epoch_key, on_lease, x);
}

void part_on_assign(void *ctx, const rd_kafka_topic_partition_list_t *parts)
{
    sf_daemon *d = ctx;
    for (int i = 0; i < parts->cnt; i++) {
        const rd_kafka_topic_partition_t *tp = &parts->elems[i];
        part *old = part_find(d, tp->topic, tp->partition);
        if (old && old->released)
            part_detach(d, old); /* its last job frees it; consumption starts afresh */
        else if (old || d->nparts == MAX_PARTS)
            continue;
        part *p = sf_xcalloc(1, sizeof(*p));
        snprintf(p->topic, sizeof(p->topic), "%s", tp->topic);
        p->partition = tp->partition;
        p->offsets = sf_offsets_new();
        p->next = tp->offset; /* as committed, or none, or unknown: see sf_kafka_lag */
        if (tp->offset >= 0)  /* committed at some time before now: counted from now */
            part_seen_commit(p, tp->offset);
        int64_t end = sf_kafka_assigned_end(d->kafka, p->topic, p->partition);
        p->fresh_from = end >= 0 ? end : INT64_MAX;
        p->gen = ++d->part_gen;
        p->topic_slot = sf_kafka_topic_slot(d->kafka, p->topic);
        p->store = d->nstores ? d->stores[p->partition % d->nstores] : NULL;
        sf_store_epoch_key(p->store, p->epoch_key, sizeof(p->epoch_key), d->cfg->group, p->topic,
                           p->partition);
        d->parts[d->nparts++] = p;
        /* librdkafka keeps a partition's pause across its revocation: one paused when it was
         * revoked (an outage, backpressure) would come back paused and never fetch. Resumed
         * first, so that a pause for the lease below stands. */
        sf_kafka_resume(d->kafka, p->topic, p->partition);
        part_take_lease(d, p);
        if (d->redis_down)
            part_pause_for_lease(d, p); /* assigned during an outage: nothing may run */
        sf_info("kafka.assigned", "topic=%s partition=%d protocol=%s fresh_from=%lld", p->topic,
                (int)p->partition, sf_kafka_protocol(d->kafka),
                p->fresh_from == INT64_MAX ? -1LL : (long long)p->fresh_from);
    }
}

/* The consumer's commit callback (consumer/kafka.c): every partition's committed offset. */
void part_on_committed(void *ctx, const rd_kafka_topic_partition_list_t *offsets)
{
    sf_daemon *d = ctx;
    for (int i = 0; i < offsets->cnt; i++) {
        const rd_kafka_topic_partition_t *tp = &offsets->elems[i];
        part *p = tp->err ? NULL : part_find(d, tp->topic, tp->partition);
        if (p && !p->revoking && tp->offset >= 0)
            part_seen_commit(p, tp->offset);
    }
}

/*
 * The offset below which p's reply records may go: the newest offset the
 * group had committed redis.dedupe_ttl ago (0: none yet). A redelivery comes
 * from the committed offset on, so it always finds its record; a request
 * produced again by its client finds it for dedupe_ttl after its offset was
 * committed.
 */
int64_t part_settled(sf_daemon *d, part *p)
{
    uint64_t window = (uint64_t)d->cfg->dedupe_ttl_s * 1000000u, t = now_us();
    int last = -1;
    for (int i = 0; i < p->ncommits && t - p->commits[i].at_us >= window; i++)
        last = i;
    if (last < 0)
        return 0;
    int64_t settled = p->commits[last].offset;
    if (last > 0) { /* what is older than the newest settled one is not needed again */
        memmove(p->commits, p->commits + last,
                (size_t)(p->ncommits - last) * sizeof(p->commits[0]));
        p->ncommits -= last;
    }
    return settled;
}

/*
 * The lease is ours: requests consumed meanwhile may run now. Writes carry
 * this epoch; a supervisor that loses the partition keeps its old epoch, and
 * Redis refuses its writes once the next owner has bumped it.
 */
static void on_lease(void *arg, const sf_store_reply *r)
{
    lease_ctx *x = arg;
    sf_daemon *d = x->d;
    part *p = x->p;
    bool alive = false;
    for (int i = 0; i < d->nparts && !alive; i++)
        alive = d->parts[i] == p && p->gen == x->gen;
    free(x);
    if (!alive)
        return;
    p->bumping = false;
    if (r->status != SF_STORE_OK || r->count <= 0) {
        /* One line when it starts failing and one every 30 s while it goes on, not per try. */
        uint64_t t = now_us();
        if (p->lease_failures++ == 0 || t - p->lease_failed_log_us >= 30000000u) {
            p->lease_failed_log_us = t;
            sf_warn(
                "lease.failed",
                "topic=%s partition=%d reason=\"%s\" failures=%u held=%d action=pause_and_retry",
                p->topic, (int)p->partition, r->error ? r->error : "no epoch", p->lease_failures,
                p->live);
        }
        part_pause_for_lease(d, p);
        struct timeval tv = {0, 200000};
        evtimer_add(d->ev_lease_retry, &tv);
        return;
    }
    p->epoch = (uint64_t)r->count;
    sf_info("lease.taken", "topic=%s partition=%d epoch=%llu failures=%u", p->topic,
            (int)p->partition, (unsigned long long)p->epoch, p->lease_failures);
    p->lease_failures = 0;
    while (p->pend_head) {
        struct job *j = p->pend_head;
        p->pend_head = j->next;
        if (p->pend_head == NULL)
            p->pend_tail = NULL;
        sessq_push(d, j);
    }
    if (p->paused && !d->redis_down && !d->shutting_down &&
        (uint32_t)d->held < d->cfg->resume_below) {
        p->paused = false;
        sf_kafka_resume(d->kafka, p->topic, p->partition);
        sf_info("lease.resume", "topic=%s partition=%d held=%d", p->topic, (int)p->partition,
                d->held);
    }
}

/* The lease retry timer: every partition still without a lease asks again. */
void part_on_lease_retry(evutil_socket_t fd, short what, void *arg)
{
    sf_daemon *d = arg;
    for (int i = 0; i < d->nparts; i++) {
        if (!d->parts[i]->revoking)
            part_take_lease(d, d->parts[i]);
    }
}

/* ---------------------------------------------------------------- a consumed request */

/*
 * The partition the record's key maps to under topics.partitioner when that
 * is not the one it came on (its producer partitions another way, or the
 * partition count changed since); -1 when it is, or when that cannot be told:
 * no key, the count not known yet or older than the partition. One hash.
 */
static int32_t misrouted_to(sf_daemon *d, const part *p, const rd_kafka_message_t *m,
                            int32_t *count)
{
    *count = sf_kafka_partition_count(d->kafka, p->topic_slot);
    if (m->partition >= *count)
        return -1;
    int32_t want = sf_partitioner_partition(d->cfg->partitioner, m->key, m->key_len, *count);
    return want >= 0 && want != m->partition ? want : -1;
}

/*
 * A request on a partition its key does not map to: the session's other
 * requests may be running on another supervisor at the same time. Counted,
 * and logged once a minute per partition with how many; with
 * supervisor.partition_check = refuse it is answered wrong_partition and not
 * run. Returns whether it was answered.
 */
static bool wrong_partition(sf_daemon *d, job *j, int32_t want, int32_t count)
{
    part *p = j->p;
    bool refuse = d->cfg->partition_check == SF_PARTITION_CHECK_REFUSE;
    sf_partitioner pt = d->cfg->partitioner;
    d->wrong_partition++;
    p->misrouted_unlogged++;
    uint64_t t = now_us();
    if (p->misrouted_log_us == 0 || t - p->misrouted_log_us >= 60000000u) {
        sf_warn("request.wrong_partition",
                "topic=%s partition=%d expected=%d partitions=%d partitioner=%s count=%u "
                "action=%s session=%s id=%.*s",
                p->topic, (int)p->partition, (int)want, (int)count, sf_partitioner_name(pt),
                p->misrouted_unlogged, refuse ? "refused" : "processed", j->session_key,
                SF_STR_ARG(j->req.id));
        p->misrouted_log_us = t;
        p->misrouted_unlogged = 0;
    }
    if (!refuse)
        return false;
    bool murmur2 = pt == SF_PARTITIONER_MURMUR2_RANDOM || pt == SF_PARTITIONER_MURMUR2;
    reply_error(d, j, true, "wrong_partition", NULL,
                "the request came on partition %d of '%s', but its key maps to partition %d of "
                "%d with the fleet's partitioner %s (topics.partitioner): not run, as its "
                "session may be running on another supervisor. Produce with "
                "partitioner=%s (librdkafka clients: confluent-kafka, kcat -X ...%s)",
                (int)p->partition, p->topic, (int)want, (int)count, sf_partitioner_name(pt),
                sf_partitioner_name(pt), murmur2 ? "; the Java client's default is murmur2" : "");
    return true;
}

bool part_refuse_misrouted(sf_daemon *d, job *j)
{
    int32_t count = 0;
    int32_t want = d->cfg->partition_check == SF_PARTITION_CHECK_OFF
                       ? -1
                       : misrouted_to(d, j->p, j->msg, &count);
    return want >= 0 && wrong_partition(d, j, want, count);
}

/*
 * No lease yet: the job waits, in order, until Redis gives one (on_lease
 * hands the waiting jobs to their sessions); the partition fetches no more
 * meanwhile unless the lease is on its way (bumping, first try).
 */
void part_hold_for_lease(sf_daemon *d, job *j)
{
    part *p = j->p;
    if (p->lease_failures || d->redis_down)
        part_pause_for_lease(d, p);
    j->next = NULL;
    if (p->pend_tail)
        p->pend_tail->next = j;
    else
        p->pend_head = j;
    p->pend_tail = j;
}

/* ---------------------------------------------------------------- pausing and resuming */

/* Pauses the partition holding the most work above max_queued; resumes below resume_below. */
void part_backpressure_check(sf_daemon *d)
{
    if ((uint32_t)d->held > d->cfg->max_queued) {
        part *worst = NULL;
        for (int i = 0; i < d->nparts; i++) {
            part *p = d->parts[i];
            if (!p->paused && !p->revoking && (worst == NULL || p->live > worst->live))
                worst = p;
        }
        if (worst && worst->live > 0) {
            worst->paused = true;
            d->any_paused = true;
            sf_kafka_pause(d->kafka, worst->topic, worst->partition);
            sf_info("backpressure.pause", "topic=%s partition=%d held=%d partition_held=%d",
                    worst->topic, (int)worst->partition, d->held, worst->live);
        }
    } else if ((uint32_t)d->held < d->cfg->resume_below && !d->shutting_down && !d->redis_down &&
               d->any_paused) {
        /* Runs when a job ends: the partitions are looked at only while one may be paused. */
        bool still = false;
        for (int i = 0; i < d->nparts; i++) {
            part *p = d->parts[i];
            if (p->paused && !p->revoking && p->epoch) {
                p->paused = false;
                sf_kafka_resume(d->kafka, p->topic, p->partition);
                sf_info("backpressure.resume", "topic=%s partition=%d held=%d", p->topic,
                        (int)p->partition, d->held);
            }
            still = still || p->paused;
        }
        d->any_paused = still;
    }
}

/*
 * Redis went away: stop fetching (requests would only pile up behind it) and
 * let the requests in hand retry until redis.retry_timeout. Back: resume.
 */
void part_on_store_health(void *arg, bool up)
{
    struct shard_ctx *sh = arg;
    sf_daemon *d = sh->d;
    if (up)
        d->stores_down &= ~(1u << sh->i);
    else
        d->stores_down |= 1u << sh->i;
    if (d->nstores > 1)
        sf_info(up ? "store.shard_up" : "store.shard_down", "shard=%d shards_down=%d", sh->i,
                __builtin_popcount(d->stores_down));
    up = d->stores_down == 0; /* one shard down pauses the whole supervisor (docs/DESIGN.md) */
    if (!up && !d->redis_down) {
        d->redis_down = true;
        for (int i = 0; i < d->nparts; i++) {
            part *p = d->parts[i];
            if (!p->paused && !p->revoking) {
                p->paused = true;
                d->any_paused = true;
                sf_kafka_pause(d->kafka, p->topic, p->partition);
            }
        }
        sf_warn("store.down", "action=pause_partitions partitions=%d held=%d", d->nparts, d->held);
        if (d->cfg->redis_leave_after_ms && d->kafka) {
            struct timeval tv = {(time_t)(d->cfg->redis_leave_after_ms / 1000),
                                 (suseconds_t)(d->cfg->redis_leave_after_ms % 1000) * 1000};
            evtimer_add(d->ev_leave, &tv);
        }
    } else if (up && d->redis_down) {
        d->redis_down = false;
        evtimer_del(d->ev_leave);
        if (d->left_group && !d->shutting_down) {
            char err[256];
            d->left_group = false;
            if (sf_kafka_subscribe(d->kafka, err, sizeof(err)) < 0)
                sf_error("supervisor.rejoin_failed", "reason=\"%s\"", err);
            else
                sf_info("supervisor.rejoining", "reason=\"the session store is back\"");
        }
        sf_info("store.up", "action=resume_partitions held=%d", d->held);
        part_backpressure_check(d);
        for (int i = 0; i < d->nparts; i++)
            part_take_lease(d, d->parts[i]);
    }
}

/*
 * The store has been out of reach for redis.leave_after: this supervisor can
 * run nothing, while members that reach it could run its partitions. It
 * leaves the group's assignment (its partitions are revoked; what is stuck
 * waiting for Redis is handed over unanswered, jobs.c job_retry_unavailable)
 * and joins again when the store is back (part_on_store_health).
 */
void part_on_store_gone_long(evutil_socket_t fd, short what, void *arg)
{
    sf_daemon *d = arg;
    if (!d->redis_down || d->shutting_down || d->left_group)
        return;
    sf_warn("supervisor.leaving_group",
            "reason=\"the session store has been out of reach for %u ms\" partitions=%d",
            d->cfg->redis_leave_after_ms, d->nparts);
    d->left_group = true;
    sf_kafka_unsubscribe(d->kafka);
}

/*
 * Partitions whose committed offset could not be read at assignment (the
 * coordinator did not answer) ask again, so an idle partition's lag does not
 * stay unknown. Briefly blocking, and only while some lag is unknown.
 */
void part_refresh_unknown_lag(sf_daemon *d)
{
    rd_kafka_topic_partition_list_t *l = NULL;
    for (int i = 0; i < d->nparts; i++) {
        part *p = d->parts[i];
        if (p->next != SF_KAFKA_OFFSET_UNKNOWN || p->revoking)
            continue;
        if (l == NULL)
            l = rd_kafka_topic_partition_list_new(4);
        rd_kafka_topic_partition_list_add(l, p->topic, p->partition);
    }
    if (l == NULL)
        return;
    sf_kafka_committed(d->kafka, l, 500);
    for (int i = 0; i < l->cnt; i++) {
        part *p = part_find(d, l->elems[i].topic, l->elems[i].partition);
        if (p && p->next == SF_KAFKA_OFFSET_UNKNOWN) /* a job may have finished since */
            p->next = l->elems[i].offset;
    }
    rd_kafka_topic_partition_list_destroy(l);
}

/* ---------------------------------------------------------------- revocation */

/* Frees the jobs a partition holds while waiting for its lease. */
void part_drop_pending(sf_daemon *d, part *p)
{
    while (p->pend_head) {
        job *j = p->pend_head;
        p->pend_head = j->next;
        job_free(d, j);
    }
    p->pend_tail = NULL;
}

static void revoke_finish(sf_daemon *d, bool timed_out);

void part_on_revoke(void *ctx, rd_kafka_topic_partition_list_t *parts)
{
    sf_daemon *d = ctx;
    for (int i = 0; i < parts->cnt; i++) {
        part *p = part_find(d, parts->elems[i].topic, parts->elems[i].partition);
        if (p) {
            p->revoking = true;
            sf_cache_drop_owner(d->cache, p->gen);
            part_drop_pending(d, p);
        }
    }
    if (d->revoking) /* a second revocation before the first finished: finish it now */
        revoke_finish(d, true);
    d->revoking = parts;
    sessq_drop_revoked(d);
    int waiting = 0;
    for (int i = 0; i < parts->cnt; i++) {
        part *p = part_find(d, parts->elems[i].topic, parts->elems[i].partition);
        waiting += p ? p->live : 0;
    }
    sf_info("kafka.revoking", "partitions=%d in_flight=%d", parts->cnt, waiting);
    if (d->shutting_down || waiting == 0) {
        revoke_finish(d, waiting > 0);
        return;
    }
    struct timeval tv = {(time_t)(d->cfg->revoke_timeout_ms / 1000),
                         (suseconds_t)(d->cfg->revoke_timeout_ms % 1000) * 1000};
    evtimer_add(d->ev_revoke_timeout, &tv);
}

/* A job ended during a revocation: finish it once no revoked partition holds a job. */
void part_revoke_check(sf_daemon *d)
{
    if (d->revoking == NULL)
        return;
    for (int i = 0; i < d->revoking->cnt; i++) {
        part *p = part_find(d, d->revoking->elems[i].topic, d->revoking->elems[i].partition);
        if (p && p->live > 0)
            return;
    }
    revoke_finish(d, false);
}

void part_on_revoke_timeout(evutil_socket_t fd, short what, void *arg)
{
    sf_daemon *d = arg;
    if (d->revoking)
        revoke_finish(d, true);
}

static void revoke_finish(sf_daemon *d, bool timed_out)
{
    rd_kafka_topic_partition_list_t *l = d->revoking;
    d->revoking = NULL;
    evtimer_del(d->ev_revoke_timeout);
    sf_kafka_commit_sync(d->kafka, 5000);
    for (int i = 0; i < l->cnt; i++) {
        part *p = part_find(d, l->elems[i].topic, l->elems[i].partition);
        if (p == NULL)
            continue;
        sf_info("kafka.revoked", "topic=%s partition=%d committed=%lld abandoned=%d timed_out=%d",
                p->topic, (int)p->partition, (long long)sf_offsets_committable(p->offsets), p->live,
                timed_out);
        if (p->live == 0)
            part_remove(d, p);
        else
            p->released = true; /* its last job frees it (job_free) */
    }
    sf_kafka_finish_revoke(d->kafka, l);
}
