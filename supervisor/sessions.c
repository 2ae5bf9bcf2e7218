/*
 * sessions.c — one FIFO per session id (`sessq`): a session's requests run
 * one at a time, in the order they were consumed; different sessions run at
 * the same time.
 *
 * A job joins its session's queue once its partition's lease is known
 * (sessq_push, from jobs.c job_on_message or partitions.c on_lease).
 * sessq_run starts the queue's head (jobs.c job_run) when nothing of the
 * session is running; once that job has its answer, sessq_next runs the next.
 * Queues of idle sessions are forgotten (sessq_sweep); a revocation frees the
 * queued jobs of its partitions (sessq_drop_revoked).
 */
#include "daemon_internal.h"

static void sessq_run(sf_daemon *d, sessq *q);

void sessq_push(sf_daemon *d, job *j)
{
    int created;
    /* Never NULL: the map's memory comes from alloc.h, which aborts on OOM. */
    sessq *q = sf_smap_put(d->sessions, j->req.session.ptr, j->req.session.len, &created);
    j->next = NULL;
    if (q->tail)
        q->tail->next = j;
    else
        q->head = j;
    q->tail = j;
    d->queued++;
    sessq_run(d, q);
}

/*
 * Runs the session's next jobs while none is running. A job answered at once
 * (a ping, a deadline passed) comes back here through sessq_next; that
 * nested call returns and this loop goes on, so a long queue of such jobs
 * does not recurse once per job.
 */
static void sessq_run(sf_daemon *d, sessq *q)
{
    if (q->in_run)
        return;
    q->in_run = true;
    while (!q->running && q->head) {
        job *j = q->head;
        q->head = j->next;
        if (q->head == NULL)
            q->tail = NULL;
        d->queued--;
        j->next = NULL;
        if (j->p->revoking) {
            job_free(d, j);
            continue;
        }
        if (j->req.deadline_ms && wall_ms() > j->req.deadline_ms) {
            d->deadline_exceeded++;
            reply_error(d, j, true, "deadline_exceeded", "deadline_ms",
                        "the request's deadline passed %llu ms before it could run",
                        (unsigned long long)(wall_ms() - j->req.deadline_ms));
            continue;
        }
        q->running = true;
        j->q = q;
        job_run(d, j);
    }
    q->in_run = false;
}

/* The job has its answer (or none will come): its session may run the next one. */
void sessq_next(sf_daemon *d, job *j)
{
    j->replied = true;
    sessq *q = j->q;
    if (q) {
        q->running = false;
        j->q = NULL;
        sessq_run(d, q);
    }
}

static int forget_idle_session(void *ctx, const char *key, size_t len, void *value)
{
    const sessq *q = value;
    return !q->running && !q->in_run && q->head == NULL;
}

/*
 * Forgets idle session queues: on every telemetry tick (always), and when the
 * map outgrows sweep_sessions — which then doubles past what is left, so a
 * map full of busy sessions is not swept again on every finished job.
 */
void sessq_sweep(sf_daemon *d, bool always)
{
    if (!always && sf_smap_count(d->sessions) <= d->sweep_sessions)
        return;
    sf_smap_sweep(d->sessions, forget_idle_session, NULL);
    size_t left = sf_smap_count(d->sessions);
    d->sweep_sessions = left * 2 > SESSION_SWEEP_MIN ? left * 2 : SESSION_SWEEP_MIN;
}

static int purge_revoked(void *ctx, const char *key, size_t len, void *value)
{
    sf_daemon *d = ctx;
    sessq *q = value;
    job **pp = &q->head, *last = NULL;
    while (*pp) {
        job *j = *pp;
        if (j->p->revoking) {
            *pp = j->next;
            d->queued--;
            job_free(d, j);
        } else {
            last = j;
            pp = &j->next;
        }
    }
    q->tail = last;
    return !q->running && q->head == NULL;
}

/* Frees queued jobs of revoking partitions now so only running ones are waited for. */
void sessq_drop_revoked(sf_daemon *d)
{
    sf_smap_sweep(d->sessions, purge_revoked, d);
}

static int free_sessq(void *ctx, const char *key, size_t len, void *value)
{
    sf_daemon *d = ctx;
    sessq *q = value;
    for (job *j = q->head, *n; j; j = n) {
        n = j->next;
        job_free(d, j);
    }
    q->head = q->tail = NULL;
    return 1;
}

/* Frees every queued job and every queue (sf_daemon_free). */
void sessq_free_all(sf_daemon *d)
{
    sf_smap_sweep(d->sessions, free_sessq, d);
}
