/*
 * test_jobs.c — the daemon's rules for one request, without Kafka, Redis or
 * workers: a daemon core (ports.h, daemon_core_new) whose pool, store and
 * producer are fakes that only write down what they were asked. Each test
 * then answers those asks by hand, in the order it wants, and checks what
 * the daemon asked next.
 *
 * Requests enter as job_on_message would put them on their session's queue
 * (consume below: tracked by offset, decoded, pushed); the Kafka message
 * itself is left out, as librdkafka's messages are made only by librdkafka.
 */
#include <criterion/criterion.h>
#include <event2/event.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "daemon_internal.h"

#define MAX_ASKS 32

/* ---------------------------------------------------------------- the fake world */

typedef struct asked_store {
    sf_store_cb cb;
    void *arg;
    char id[64];
    bool with_state;
    int64_t read_version;
    char reply[4096];
    size_t reply_len;
} asked_store;

typedef struct asked_submit {
    sf_pool_done_fn done;
    job *j;
    char op[32], session[64], program[64];
} asked_submit;

typedef struct produced {
    job *j;
    char topic[64];
    char value[4096];
    size_t len;
} produced;

static struct {
    struct event_base *base;
    sf_config cfg;
    sf_daemon *d;
    part *p;
    asked_store claims[MAX_ASKS], commits[MAX_ASKS], restores[MAX_ASKS], writes[MAX_ASKS];
    int nclaims, ncommits, nrestores, nwrites;
    asked_submit submits[MAX_ASKS];
    int nsubmits;
    produced out[MAX_ASKS];
    int nout;
    int64_t stored[MAX_ASKS];
    int nstored;
    msgpack_sbuffer payloads[MAX_ASKS];
    int npayloads;
} w;

static int fake_submit(sf_pool *p, const sf_pool_call *c, sf_pool_done_fn done, void *arg)
{
    cr_assert_lt(w.nsubmits, MAX_ASKS);
    asked_submit *a = &w.submits[w.nsubmits++];
    *a = (asked_submit){.done = done, .j = arg};
    snprintf(a->op, sizeof(a->op), "%s", c->op);
    snprintf(a->session, sizeof(a->session), "%.*s", SF_STR_ARG(c->session));
    snprintf(a->program, sizeof(a->program), "%.*s", SF_STR_ARG(c->program));
    return 0;
}

/* sf_store_end_session / sf_store_delete_program: answered later, as the claims are. */
static void fake_end_session(sf_store *st, const sf_fence *f, const char *s, size_t slen,
                             sf_store_cb cb, void *arg)
{
    cr_assert_lt(w.nwrites, MAX_ASKS);
    w.writes[w.nwrites++] = (asked_store){.cb = cb, .arg = arg};
}

static void fake_delete_program(sf_store *st, const sf_fence *f, const char *s, size_t slen,
                                const char *p, size_t plen, sf_store_cb cb, void *arg)
{
    cr_assert_lt(w.nwrites, MAX_ASKS);
    w.writes[w.nwrites++] = (asked_store){.cb = cb, .arg = arg};
}

static void fake_claim(sf_store *st, const sf_fence *f, const char *s, size_t slen, const char *id,
                       size_t idlen, const char *owner, uint32_t claim_ttl_ms, const char *program,
                       size_t plen, sf_store_cb cb, void *arg)
{
    cr_assert_lt(w.nclaims, MAX_ASKS);
    asked_store *a = &w.claims[w.nclaims++];
    *a = (asked_store){.cb = cb, .arg = arg};
    snprintf(a->id, sizeof(a->id), "%.*s", (int)idlen, id);
}

static void fake_commit(sf_store *st, const sf_fence *f, const char *s, size_t slen, const char *id,
                        size_t idlen, const void *reply, size_t reply_len, const void *state,
                        size_t state_len, int64_t read_version, int64_t offset, unsigned flags,
                        sf_store_cb cb, void *arg)
{
    cr_assert_lt(w.ncommits, MAX_ASKS);
    cr_assert_leq(reply_len, sizeof(w.commits[0].reply));
    asked_store *a = &w.commits[w.ncommits++];
    *a = (asked_store){.cb = cb,
                       .arg = arg,
                       .with_state = state != NULL,
                       .read_version = read_version,
                       .reply_len = reply_len};
    snprintf(a->id, sizeof(a->id), "%.*s", (int)idlen, id);
    memcpy(a->reply, reply, reply_len);
}

static void fake_restore_epoch(sf_store *st, const char *epoch_key, uint64_t epoch, sf_store_cb cb,
                               void *arg)
{
    cr_assert_lt(w.nrestores, MAX_ASKS);
    w.restores[w.nrestores++] = (asked_store){.cb = cb, .arg = arg};
}

static rd_kafka_resp_err_t fake_produce(sf_kafka *k, const char *topic, const void *key,
                                        size_t keylen, const void *value, size_t len,
                                        rd_kafka_headers_t *headers, void *opaque, char *err,
                                        size_t errlen)
{
    cr_assert_lt(w.nout, MAX_ASKS);
    cr_assert_leq(len, sizeof(w.out[0].value));
    produced *o = &w.out[w.nout++];
    o->j = opaque;
    snprintf(o->topic, sizeof(o->topic), "%s", topic);
    memcpy(o->value, value, len);
    o->len = len;
    if (headers)
        rd_kafka_headers_destroy(headers); /* the producer would own them now */
    return RD_KAFKA_RESP_ERR_NO_ERROR;
}

static void fake_store_offset(sf_kafka *k, const char *topic, int32_t partition, int64_t next)
{
    cr_assert_lt(w.nstored, MAX_ASKS);
    w.stored[w.nstored++] = next;
}

static const sf_daemon_ports fakes = {.pool_submit = fake_submit,
                                      .store_claim = fake_claim,
                                      .store_commit = fake_commit,
                                      .store_restore_epoch = fake_restore_epoch,
                                      .store_end_session = fake_end_session,
                                      .store_delete_program = fake_delete_program,
                                      .kafka_produce = fake_produce,
                                      .kafka_store_offset = fake_store_offset};

static void setup(void)
{
    memset(&w, 0, sizeof(w));
    w.base = event_base_new();
    sf_config_defaults(&w.cfg);
    snprintf(w.cfg.id, sizeof(w.cfg.id), "sv-test");
    snprintf(w.cfg.replies, sizeof(w.cfg.replies), "replies");
    snprintf(w.cfg.dlq, sizeof(w.cfg.dlq), "dlq");
    w.d = daemon_core_new(w.base, &w.cfg, &fakes);
    part *p = calloc(1, sizeof(*p));
    snprintf(p->topic, sizeof(p->topic), "requests");
    p->offsets = sf_offsets_new();
    p->epoch = 1; /* the lease is ours: jobs go straight to their sessions */
    snprintf(p->epoch_key, sizeof(p->epoch_key), "sf:epoch:requests:0");
    p->topic_slot = -1;
    p->fresh_from = INT64_MAX; /* every request claimed, unless a test says otherwise */
    w.d->parts[w.d->nparts++] = p;
    w.p = p;
}

static void teardown(void)
{
    cr_expect_eq(w.d->held, 0, "every job ended");
    sf_daemon_free(w.d);
    for (int i = 0; i < w.npayloads; i++)
        msgpack_sbuffer_destroy(&w.payloads[i]);
    event_base_free(w.base);
}

TestSuite(jobs, .init = setup, .fini = teardown);

/* ---------------------------------------------------------------- driving it */

static void pack_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str(pk, strlen(s));
    msgpack_pack_str_body(pk, s, strlen(s));
}

/* A request consumed at `offset`, as job_on_message hands it to its session. */
static void consume_op(int64_t offset, const char *session, const char *id, const char *op);

static void consume(int64_t offset, const char *session, const char *id)
{
    consume_op(offset, session, id, "execute_program");
}

/* A request of `op` (on program "count") at `offset`, handed to the daemon as Kafka would. */
static void consume_op(int64_t offset, const char *session, const char *id, const char *op)
{
    cr_assert_lt(w.npayloads, MAX_ASKS);
    msgpack_sbuffer *sb = &w.payloads[w.npayloads++];
    msgpack_sbuffer_init(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 5);
    pack_str(&pk, "v");
    msgpack_pack_int(&pk, SF_SCHEMA_VERSION);
    pack_str(&pk, "id");
    pack_str(&pk, id);
    pack_str(&pk, "session");
    pack_str(&pk, session);
    pack_str(&pk, "op");
    pack_str(&pk, op);
    pack_str(&pk, "program");
    pack_str(&pk, "count");

    sf_daemon *d = w.d;
    cr_assert_eq(sf_offsets_track(w.p->offsets, offset), 0);
    job *j = calloc(1, sizeof(*j));
    j->d = d;
    j->p = w.p;
    j->offset = offset;
    j->consumed_us = now_us();
    w.p->live++;
    d->held++;
    sf_err err;
    cr_assert_eq(sf_request_decode(&j->req, sb->data, sb->size, 0, &err), 0, "%s", err.message);
    j->valid = true;
    sf_str_copy(j->session_key, sizeof(j->session_key), j->req.session);
    snprintf(j->reply_to, sizeof(j->reply_to), "%s", d->cfg->replies);
    sessq_push(d, j);
}

static const char *job_id(const job *j)
{
    static char id[64];
    snprintf(id, sizeof(id), "%.*s", SF_STR_ARG(j->req.id));
    return id;
}

/* Redis answers claim `i`: 0, the id is ours (with an empty state and a spec); 1, answered before.
 */
static void answer_claim(int i, int claim, const char *cached, size_t cached_len)
{
    cr_assert_lt(i, w.nclaims);
    sf_store_reply r = {.status = SF_STORE_OK, .claim = claim, .version = 7};
    if (claim == 0) {
        r.state = "\x80";
        r.state_len = 1;
        r.spec = "\x80";
        r.spec_len = 1;
    } else {
        r.state = cached;
        r.state_len = cached_len;
    }
    w.claims[i].cb(w.claims[i].arg, &r);
}

/* The pool's call `i` returns, leaving a new state. */
static void finish_run(int i)
{
    cr_assert_lt(i, w.nsubmits);
    static const msgpack_object state = {.type = MSGPACK_OBJECT_MAP};
    sf_pool_result r = {
        .ok = true, .state = &state, .state_raw = {"\x81\xa1n\x01", 4}, .worker_id = "w1"};
    w.submits[i].done(w.submits[i].j, &r);
}

static void answer_commit(int i, sf_store_status status)
{
    cr_assert_lt(i, w.ncommits);
    sf_store_reply r = {.status = status, .error = "fake"};
    w.commits[i].cb(w.commits[i].arg, &r);
}

/* Kafka acknowledges record `i`. */
static void deliver(int i)
{
    cr_assert_lt(i, w.nout);
    reply_on_delivery(w.d, w.out[i].j, w.out[i].topic, RD_KAFKA_RESP_ERR_NO_ERROR);
}

/* Claim `c` is ours, its run `s` returns, its commit `m` is taken: the reply goes out. */
static void run_to_reply(int c, int s, int m)
{
    answer_claim(c, 0, NULL, 0);
    finish_run(s);
    answer_commit(m, SF_STORE_OK);
}

static bool contains(const produced *o, const char *s)
{
    return memmem(o->value, o->len, s, strlen(s)) != NULL;
}

/* ---------------------------------------------------------------- the rules */

Test(jobs,
     one_sessions_requests_run_one_at_a_time_in_offset_order_while_two_sessions_run_in_parallel)
{
    consume(0, "a", "a0");
    consume(1, "a", "a1");
    consume(2, "b", "b2");
    cr_assert_eq(w.nclaims, 2, "a1 waits for a0; b2 starts beside it");
    cr_expect_str_eq(w.claims[0].id, "a0");
    cr_expect_str_eq(w.claims[1].id, "b2");

    answer_claim(0, 0, NULL, 0);
    answer_claim(1, 0, NULL, 0);
    cr_assert_eq(w.nsubmits, 2, "both sessions' calls are on the pool at once");
    cr_expect_str_eq(job_id(w.submits[0].j), "a0");
    cr_expect_str_eq(job_id(w.submits[1].j), "b2");
    cr_expect_eq(w.nclaims, 2, "a1 still waits while a0 runs");

    finish_run(0);
    cr_expect_eq(w.nclaims, 2, "a0 is not answered until its commit is taken");
    answer_commit(0, SF_STORE_OK);
    cr_assert_eq(w.nout, 1);
    cr_assert_eq(w.nclaims, 3, "a0 answered: a1 starts");
    cr_expect_str_eq(w.claims[2].id, "a1");

    finish_run(1);
    answer_commit(1, SF_STORE_OK);
    answer_claim(2, 0, NULL, 0);
    finish_run(2);
    answer_commit(2, SF_STORE_OK);
    cr_assert_eq(w.nout, 3);
    cr_expect(contains(&w.out[0], "a0") && contains(&w.out[1], "b2") && contains(&w.out[2], "a1"));
    for (int i = 0; i < w.nout; i++)
        deliver(i);
}

Test(jobs, a_redelivered_request_answered_from_its_claims_cached_reply_is_not_submitted_to_the_pool)
{
    consume(0, "a", "a0");
    const char cached[] = "\x82\xa2id\xa2"
                          "a0\xa2ok\xc3";
    answer_claim(0, 1, cached, sizeof(cached) - 1);
    cr_expect_eq(w.nsubmits, 0);
    cr_expect_eq(w.ncommits, 0, "the answer is remembered already");
    cr_assert_eq(w.nout, 1);
    cr_expect_eq(w.out[0].len, sizeof(cached) - 1);
    cr_expect_eq(memcmp(w.out[0].value, cached, sizeof(cached) - 1), 0, "the very bytes cached");
    cr_expect_eq(w.d->deduplicated, 1);
    deliver(0);
    cr_assert_eq(w.nstored, 1);
    cr_expect_eq(w.stored[0], 1);
}

Test(jobs, an_unavailable_answer_is_remembered_before_the_sessions_next_request_is_submitted)
{
    w.cfg.redis_retry_ms = 0; /* Redis failing once is failing for too long */
    consume(0, "a", "a0");
    consume(1, "a", "a1");
    answer_claim(0, 0, NULL, 0);
    finish_run(0);
    cr_assert(w.commits[0].with_state);
    answer_commit(0, SF_STORE_UNAVAILABLE);

    cr_assert_eq(w.nout, 1, "the answer goes out at once");
    cr_expect(contains(&w.out[0], "unavailable"));
    cr_assert_eq(w.ncommits, 2, "and is written as a record without state");
    cr_expect_str_eq(w.commits[1].id, "a0");
    cr_expect_not(w.commits[1].with_state);
    cr_expect_eq(w.commits[1].read_version, -1);
    cr_expect_eq(w.commits[1].reply_len, w.out[0].len);
    cr_expect_eq(memcmp(w.commits[1].reply, w.out[0].value, w.out[0].len), 0,
                 "the record is the answer sent");
    cr_expect_eq(w.nclaims, 1, "a1 waits until Redis has a0's answer");
    cr_expect_eq(w.nsubmits, 1);

    answer_commit(1, SF_STORE_OK);
    cr_assert_eq(w.nclaims, 2, "remembered: a1 starts");
    cr_expect_str_eq(w.claims[1].id, "a1");
    run_to_reply(1, 1, 2);
    deliver(0);
    deliver(1);
    cr_assert_eq(w.nstored, 2);
    cr_expect_eq(w.stored[1], 2);
}

Test(jobs, a_commit_refused_with_conflict_runs_the_request_again_and_the_reply_goes_out_once)
{
    consume(0, "a", "a0");
    answer_claim(0, 0, NULL, 0);
    finish_run(0);
    cr_expect_eq(w.commits[0].read_version, 7, "the commit is conditional on the state it read");
    answer_commit(0, SF_STORE_CONFLICT);
    cr_expect_eq(w.nout, 0, "nothing is answered for a run whose state was not saved");
    cr_expect_eq(w.d->conflicts, 1);

    event_base_loop(w.base, EVLOOP_ONCE); /* the pause before the run again */
    cr_assert_eq(w.nclaims, 2, "claimed again: the claim is ours still");
    run_to_reply(1, 1, 1);
    cr_expect_eq(w.nsubmits, 2, "run twice");
    cr_assert_eq(w.nout, 1, "answered once");
    cr_expect(contains(&w.out[0], "a0"));
    deliver(0);
}

Test(jobs, an_offset_is_stored_only_when_every_earlier_offset_of_the_partition_is_finished)
{
    consume(0, "a", "a0");
    consume(1, "b", "b1");
    consume(2, "c", "c2");
    answer_claim(0, 0, NULL, 0);
    answer_claim(1, 0, NULL, 0);
    answer_claim(2, 0, NULL, 0);
    for (int i = 2; i >= 0; i--) { /* c2, b1, a0: the later sessions are done first */
        finish_run(i);
        answer_commit(2 - i, SF_STORE_OK);
    }
    cr_assert_eq(w.nout, 3);
    cr_expect(contains(&w.out[0], "c2") && contains(&w.out[2], "a0"));

    deliver(0); /* c2 */
    cr_expect_eq(w.nstored, 0, "c2 is finished, but 0 and 1 are not");
    deliver(2); /* a0 */
    cr_assert_eq(w.nstored, 1);
    cr_expect_eq(w.stored[0], 1, "only a0: b1 is still open");
    deliver(1); /* b1 */
    cr_assert_eq(w.nstored, 2);
    cr_expect_eq(w.stored[1], 3, "b1 finished: the prefix runs through c2");
}

Test(jobs, an_execute_produced_since_the_assignment_runs_on_the_known_state_with_one_round_trip)
{
    w.p->fresh_from = 10;  /* the partition's end when it was assigned to us */
    consume(9, "a", "a9"); /* may have been answered by an earlier owner: claimed */
    cr_assert_eq(w.nclaims, 1);
    run_to_reply(0, 0, 0);
    cr_expect_eq(w.commits[0].read_version, 7, "a state written over the version the claim read");
    deliver(0);

    consume(10, "a", "a10"); /* fresh, and the claim's read and the commit made it known */
    cr_expect_eq(w.nclaims, 1, "no claim: it runs at once");
    cr_assert_eq(w.nsubmits, 2);
    finish_run(1);
    cr_assert_eq(w.ncommits, 2);
    cr_expect_eq(w.commits[1].read_version, 8, "over the version the last commit wrote");
    answer_commit(1, SF_STORE_OK);
    cr_assert_eq(w.nout, 2);
    deliver(1);

    /* Produced again by its client at offset 11: its commit finds the record. */
    consume(11, "a", "a10");
    cr_assert_eq(w.nsubmits, 3);
    finish_run(2);
    cr_assert_eq(w.ncommits, 3);
    sf_store_reply answered = {.status = SF_STORE_ANSWERED, .state = "FIRST", .state_len = 5};
    w.commits[2].cb(w.commits[2].arg, &answered);
    cr_assert_eq(w.nout, 3);
    cr_expect(w.out[2].len == 5 && memcmp(w.out[2].value, "FIRST", 5) == 0,
              "the first answer, as remembered");
    cr_expect_eq(w.d->deduplicated, 1);
    deliver(2);

    /* Another writer moved the state on: the commit conflicts, the copy is dropped and the
     * request runs again from a claim and a fresh read. */
    consume(12, "a", "a12");
    cr_assert_eq(w.nsubmits, 4);
    finish_run(3);
    answer_commit(3, SF_STORE_CONFLICT);
    cr_expect_eq(w.nclaims, 1, "not at once: after a pause");
    event_base_loop(w.base, EVLOOP_ONCE); /* the jittered pause */
    cr_assert_eq(w.nclaims, 2, "the run again is claimed, with a read");
    cr_expect_str_eq(w.claims[1].id, "a12");
    run_to_reply(1, 4, 4);
    deliver(3);
    cr_expect_eq(w.p->next, 13, "every offset finished");
}

Test(jobs, a_fenced_commit_runs_again_when_redis_lost_the_lease_and_gives_up_to_a_newer_owner)
{
    consume(0, "a", "a0");
    run_to_reply(0, 0, 0);
    cr_assert_eq(w.nout, 1);
    deliver(0);

    /* Redis lost our lease bump (the key went back): set back, the request runs again. */
    consume(1, "a", "a1");
    answer_claim(1, 0, NULL, 0);
    finish_run(1);
    answer_commit(1, SF_STORE_FENCED);
    cr_assert_eq(w.nrestores, 1, "the epoch key is checked before the job is given up");
    cr_expect_eq(w.nout, 1, "nothing answered meanwhile");
    sf_store_reply restored = {.status = SF_STORE_OK, .count = 1};
    w.restores[0].cb(w.restores[0].arg, &restored);
    cr_assert_eq(w.nclaims, 3, "it runs again from its claim");
    run_to_reply(2, 2, 2);
    cr_assert_eq(w.nout, 2);
    deliver(1);
    cr_expect_eq(w.d->fenced, 0);

    /* A newer owner has the partition: given up, its offset left open for that owner. */
    consume(2, "a", "a2");
    answer_claim(3, 0, NULL, 0);
    finish_run(3);
    answer_commit(3, SF_STORE_FENCED);
    cr_assert_eq(w.nrestores, 2);
    sf_store_reply newer = {.status = SF_STORE_NOT_FOUND};
    w.restores[1].cb(w.restores[1].arg, &newer);
    cr_expect_eq(w.d->fenced, 1);
    cr_expect_eq(w.nout, 2, "no answer from a fenced run");
    cr_expect_eq(w.p->next, 2, "offset 2 stays open");
}

Test(jobs, an_unanswered_lease_check_is_asked_again_and_never_gives_the_job_up)
{
    /* A FENCED commit, and the epoch check that follows gets no answer (Redis failing
     * over): the partition is still ours, so the job must not be given up with its
     * offset open and nobody to run it. */
    consume(0, "a", "a0");
    answer_claim(0, 0, NULL, 0);
    finish_run(0);
    answer_commit(0, SF_STORE_FENCED);
    cr_assert_eq(w.nrestores, 1);
    sf_store_reply lost = {.status = SF_STORE_UNAVAILABLE, .error = "connection to Redis lost"};
    w.restores[0].cb(w.restores[0].arg, &lost);
    cr_expect_eq(w.d->fenced, 0, "not given up");
    cr_expect_eq(w.nout, 0, "nor answered");
    cr_expect_eq(w.nclaims, 1, "not at once: after a pause");
    event_base_loop(w.base, EVLOOP_ONCE);
    cr_assert_eq(w.nclaims, 2, "it runs again from its claim");
    answer_claim(1, 0, NULL, 0);
    finish_run(1);
    answer_commit(1, SF_STORE_FENCED);
    cr_assert_eq(w.nrestores, 2, "the lease is checked again");
    sf_store_reply restored = {.status = SF_STORE_OK, .count = 1};
    w.restores[1].cb(w.restores[1].arg, &restored);
    run_to_reply(2, 2, 2);
    cr_assert_eq(w.nout, 1, "answered once");
    deliver(0);
    cr_expect_eq(w.p->next, 1, "its offset finished");
}

Test(jobs, ten_conflicting_runs_are_answered_conflict_and_the_answer_is_remembered)
{
    consume(0, "a", "a0");
    for (int i = 0; i < 10; i++) {
        cr_assert_eq(w.nclaims, i + 1, "run %d claimed", i + 1);
        answer_claim(i, 0, NULL, 0);
        finish_run(i);
        cr_assert_eq(w.ncommits, i + 1);
        answer_commit(i, SF_STORE_CONFLICT);
        if (i < 9)
            event_base_loop(w.base, EVLOOP_ONCE); /* the jittered pause, doubling */
    }
    cr_expect_eq(w.d->conflicts, 10);
    cr_expect_eq(w.nsubmits, 10, "ten runs, no eleventh");
    cr_assert_eq(w.ncommits, 11, "the conflict answer is committed as the request's record");
    cr_expect(w.commits[10].reply_len > 0 && !w.commits[10].with_state);
    answer_commit(10, SF_STORE_OK);
    cr_assert_eq(w.nout, 1);
    cr_expect(contains(&w.out[0], "conflict"));
    deliver(0);
    cr_expect_eq(w.p->next, 1);
}

static void committed(int64_t offset)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, "requests", 0)->offset = offset;
    part_on_committed(w.d, l);
    rd_kafka_topic_partition_list_destroy(l);
}

Test(jobs, reply_records_settle_at_the_offset_the_group_committed_dedupe_ttl_ago)
{
    /* redis.dedupe_ttl 0: a record may go as soon as its offset is committed. */
    w.cfg.dedupe_ttl_s = 0;
    cr_expect_eq(part_settled(w.d, w.p), 0, "nothing committed: nothing settled");
    committed(5);
    cr_expect_eq(part_settled(w.d, w.p), 5);
    committed(9);
    committed(3); /* an older commit answered late moves nothing back */
    cr_expect_eq(part_settled(w.d, w.p), 9);
    /* A window: the commit just seen is not settled until it is dedupe_ttl old, so a client
     * producing a request again within it still finds the record. */
    w.cfg.dedupe_ttl_s = 3600;
    committed(20);
    cr_expect_eq(part_settled(w.d, w.p), 0, "offset 20 was committed less than an hour ago");
}

Test(jobs, end_session_and_delete_program_make_the_workers_forget_once_redis_has_them)
{
    /* end_session: claimed, written, and only then the workers drop the session */
    consume_op(0, "a", "e0", "end_session");
    answer_claim(0, 0, NULL, 0);
    cr_assert_eq(w.nwrites, 1);
    cr_expect_eq(w.nsubmits, 0, "nothing is dropped before Redis has it");
    sf_store_reply ok = {.status = SF_STORE_OK, .count = 1};
    w.writes[0].cb(w.writes[0].arg, &ok);
    cr_assert_eq(w.nsubmits, 1);
    cr_expect_str_eq(w.submits[0].op, "cleanup_session");
    cr_expect_str_eq(w.submits[0].session, "a");
    cr_assert_eq(w.ncommits, 1, "the answer is remembered as usual");
    answer_commit(0, SF_STORE_OK);
    cr_assert_eq(w.nout, 1);
    deliver(0);

    /* delete_program: the program dropped everywhere it was built */
    consume_op(1, "b", "d1", "delete_program");
    answer_claim(1, 0, NULL, 0);
    cr_assert_eq(w.nwrites, 2);
    w.writes[1].cb(w.writes[1].arg, &ok);
    cr_assert_eq(w.nsubmits, 2);
    cr_expect_str_eq(w.submits[1].op, "delete_program");
    cr_expect_str_eq(w.submits[1].program, "count");
    answer_commit(1, SF_STORE_OK);
    deliver(1);

    /* a delete of a program Redis did not have: nothing to drop */
    consume_op(2, "b", "d2", "delete_program");
    answer_claim(2, 0, NULL, 0);
    sf_store_reply none = {.status = SF_STORE_OK, .count = 0};
    w.writes[2].cb(w.writes[2].arg, &none);
    cr_expect_eq(w.nsubmits, 2, "no forget for program_not_found");
    answer_commit(2, SF_STORE_OK); /* the program_not_found answer, remembered */
    cr_assert_eq(w.nout, 3);
    cr_expect(contains(&w.out[2], "program_not_found"));
    deliver(2);
    cr_expect_eq(w.p->next, 3, "every offset finished");
}
