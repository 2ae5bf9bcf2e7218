/*
 * test_store_records.c — the store's reply records and its durability
 * against a real redis-server (store_harness.h): a record lasts until its
 * offset is settled and answers a request produced again; with min_replicas a
 * write no replica took is not acknowledged; a lease Redis lost is set back.
 */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "store_harness.h"

TestSuite(store, .init = store_setup, .fini = store_teardown, .timeout = 60);

/* A synchronous look at the server, beside the store's own connection. */
static long long redis_int(const char *fmt, const char *arg)
{
    redisContext *c = redisConnect("127.0.0.1", redis_port);
    cr_assert(c && !c->err);
    redisReply *r = redisCommand(c, fmt, arg);
    cr_assert(r && (r->type == REDIS_REPLY_INTEGER || r->type == REDIS_REPLY_STRING), "%s",
              r && r->str ? r->str : "no reply");
    long long v = r->type == REDIS_REPLY_STRING ? atoll(r->str) : r->integer;
    freeReplyObject(r);
    redisFree(c);
    return v;
}

static void commit_at(const sf_fence *f, const char *id, const char *reply, const char *state,
                      int64_t offset, got *g)
{
    *g = (got){0};
    sf_store_commit(st, f, S("r"), id, strlen(id), reply, strlen(reply), state,
                    state ? strlen(state) : 0, -1, offset, true, on_got, g);
    wait_done(g);
}

Test(store, a_reply_record_lasts_until_its_offset_is_settled)
{
    const char *key = "sf:epoch:{g}:t/2";
    got g = {0};
    sf_store_bump_epoch(st, key, on_got, &g);
    wait_done(&g);
    sf_fence lease = {key, (uint64_t)g.count, 0};
    g = (got){0};
    sf_store_create_session(st, &lease, S("r"), S("\x81\xa1n\x01"), 0, on_got, &g);
    wait_done(&g);

    /* Committed without a claim (a request no earlier owner can have run) ... */
    commit_at(&lease, "a", "REPLY-A", "\x81\xa1n\x02", 10, &g);
    cr_expect_eq(g.status, SF_STORE_OK);
    /* ... and produced again by its client: the first answer, nothing written. */
    commit_at(&lease, "a", "REPLY-A2", "\x81\xa1n\x03", 11, &g);
    cr_expect_eq(g.status, SF_STORE_ANSWERED);
    cr_expect(g.len == 7 && memcmp(g.value, "REPLY-A", 7) == 0, "%.*s", (int)g.len, g.value);
    g = (got){0};
    sf_store_get_state(st, S("r"), on_got, &g);
    wait_done(&g);
    cr_expect(g.len == 4 && memcmp(g.value, "\x81\xa1n\x02", 4) == 0, "the retry changed nothing");
    /* Run on a copy of the state older than the first run's write: still the first answer,
     * not a conflict (the record is looked up before the version). */
    g = (got){0};
    sf_store_commit(st, &lease, S("r"), S("a"), S("REPLY-A3"), S("\x81\xa1n\x09"), 1, 14, false,
                    on_got, &g);
    wait_done(&g);
    cr_expect_eq(g.status, SF_STORE_ANSWERED);
    cr_expect(g.len == 7 && memcmp(g.value, "REPLY-A", 7) == 0);

    /* A claimed request: its commit removes the claim, so no key is left per request. */
    g = (got){0};
    sf_store_claim(st, &lease, S("r"), S("b"), "me", 60000, NULL, 0, on_got, &g);
    wait_done(&g);
    cr_expect_eq(g.claim, 0);
    cr_expect_eq(redis_int("EXISTS %s", "sf:{r}:req:b"), 1);
    commit_at(&lease, "b", "REPLY-B", NULL, 12, &g);
    cr_expect_eq(g.status, SF_STORE_OK);
    cr_expect_eq(redis_int("EXISTS %s", "sf:{r}:req:b"), 0, "the claim went with the commit");
    cr_expect_eq(redis_int("HLEN %s", "sf:done:{g}:t/2"), 2);
    cr_expect_eq(redis_int("LLEN %s", "sf:order:{g}:t/2"), 2);

    /* Offsets below 12 settled: a's record goes with the next commit, b's stays. */
    lease.settled = 12;
    commit_at(&lease, "c", "REPLY-C", NULL, 13, &g);
    cr_expect_eq(g.status, SF_STORE_OK);
    cr_expect_eq(redis_int("HLEN %s", "sf:done:{g}:t/2"), 2, "b and c");
    g = (got){0};
    sf_store_claim(st, &lease, S("r"), S("b"), "me", 60000, NULL, 0, on_got, &g);
    wait_done(&g);
    cr_expect_eq(g.claim, 1, "b is not settled: a redelivery is answered from its record");
    cr_expect(g.len == 7 && memcmp(g.value, "REPLY-B", 7) == 0);
    g = (got){0};
    sf_store_claim(st, &lease, S("r"), S("a"), "me", 60000, NULL, 0, on_got, &g);
    wait_done(&g);
    cr_expect_eq(g.claim, 0, "a's record was dropped once settled");
    cr_expect_gt(redis_int("TTL %s", "sf:done:{g}:t/2"), 0, "the records expire if unused");
}

Test(store,
     with_min_replicas_a_primary_without_its_replicas_acknowledges_no_write_and_answers_no_read)
{
    char url[64], err[256];
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", redis_port);
    sf_store *durable = sf_store_new(base, url, NULL, NULL, 60, NULL, NULL, err, sizeof(err));
    cr_assert(durable, "%s", err);
    sf_store_set_replicas(durable, 1, 100); /* this redis-server has no replica */
    double connect_by = now_ms() + 5000;
    while (!sf_store_connected(durable) && now_ms() < connect_by) {
        struct timeval tv = {0, 10000};
        event_base_loopexit(base, &tv);
        event_base_loop(base, EVLOOP_ONCE);
    }
    got g = {0};
    sf_store_create_session(durable, NULL, S("w"), S("\x80"), 0, on_got, &g);
    wait_done(&g);
    cr_expect_eq(g.status, SF_STORE_UNAVAILABLE, "a session on the primary only is not created");
    g = (got){0};
    sf_store_commit(durable, NULL, S("w"), S("r"), S("R"), NULL, 0, -1, 1, true, on_got, &g);
    wait_done(&g);
    cr_expect_eq(g.status, SF_STORE_UNAVAILABLE, "nor is a reply record");
    g = (got){0};
    sf_store_get_state(durable, S("w"), on_got, &g);
    wait_done(&g);
    cr_expect_eq(g.status, SF_STORE_UNAVAILABLE,
                 "nor does it answer a read: what it holds was never replicated (it wrote the "
                 "session, and had no replica to give it to)");
    sf_store_free(durable);
    /* The same writes with min_replicas 0 (st): answered on the primary's word. */
    g = (got){0};
    sf_store_commit(st, NULL, S("w"), S("r2"), S("R"), NULL, 0, -1, 2, true, on_got, &g);
    wait_done(&g);
    cr_expect_eq(g.status, SF_STORE_OK);
}

Test(store, a_lease_redis_lost_is_set_back_and_a_newer_one_is_not)
{
    const char *key = "sf:epoch:{g}:t/5";
    got g = {0};
    sf_store_restore_epoch(st, key, 3, on_got, &g); /* the key is gone (FLUSHALL, a failover) */
    wait_done(&g);
    cr_expect_eq(g.status, SF_STORE_OK);
    cr_expect_eq(redis_int("GET %s", key), 3);
    g = (got){0};
    sf_store_restore_epoch(st, key, 7, on_got, &g); /* it went back from 7 to 3 */
    wait_done(&g);
    cr_expect_eq(g.status, SF_STORE_OK);
    g = (got){0};
    sf_store_restore_epoch(st, key, 6, on_got, &g); /* an older owner: stays fenced */
    wait_done(&g);
    cr_expect_eq(g.status, SF_STORE_NOT_FOUND);
    cr_expect_eq(redis_int("GET %s", key), 7, "an epoch key never goes down");
    g = (got){0};
    sf_store_bump_epoch(st, key, on_got, &g);
    wait_done(&g);
    cr_expect_eq(g.count, 8);
}

Test(store, a_commit_of_a_run_on_a_kept_state_touches_the_sessions_ttls_when_asked)
{
    const char *key = "sf:epoch:{g}:t/6";
    got g = {0};
    sf_store_bump_epoch(st, key, on_got, &g);
    wait_done(&g);
    sf_fence lease = {key, (uint64_t)g.count, 0};
    g = (got){0};
    sf_store_create_session(st, &lease, S("k"), S("\x80"), 0, on_got, &g);
    wait_done(&g);
    redis_int("EXPIRE %s 10", "sf:{k}:state");
    redis_int("EXPIRE %s 10", "sf:{k}:programs");
    /* No state written, unclaimed, not touched: the TTLs stay as they were. */
    g = (got){0};
    sf_store_commit(st, &lease, S("k"), S("q1"), S("R1"), NULL, 0, -1, 1, 0, on_got, &g);
    wait_done(&g);
    cr_expect_eq(g.status, SF_STORE_OK);
    cr_expect_leq(redis_int("TTL %s", "sf:{k}:programs"), 10);
    /* Touched: both keys live redis.session_ttl again (600 s here). */
    g = (got){0};
    sf_store_commit(st, &lease, S("k"), S("q2"), S("R2"), NULL, 0, -1, 2, SF_COMMIT_TOUCH, on_got,
                    &g);
    wait_done(&g);
    cr_expect_eq(g.status, SF_STORE_OK);
    cr_expect_gt(redis_int("TTL %s", "sf:{k}:state"), 500);
    cr_expect_gt(redis_int("TTL %s", "sf:{k}:programs"), 500);
}
