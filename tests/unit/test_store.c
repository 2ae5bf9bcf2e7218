/*
 * test_store.c — the Redis session store against a real redis-server that
 * each test starts on a free loopback port: sessions, programs, effectively
 * once (claim / cached reply), fencing by partition epoch, 10,000 sessions
 * round-tripping, and reconnection after Redis restarts.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "store.h"
#include "store_harness.h"

TestSuite(store, .init = store_setup, .fini = store_teardown, .timeout = 60);

Test(store, sessions_and_programs)
{
    got g = {0};
    sf_store_get_state(st, S("s1"), on_got, &g);
    wait_done(&g);
    cr_expect_eq(g.status, SF_STORE_NOT_FOUND);
    g = (got){0};
    sf_store_create_session(st, NULL, S("s1"), S("\x81\xa1n\x09"), 0, on_got, &g);
    wait_done(&g);
    cr_expect_eq(g.status, SF_STORE_OK);
    g = (got){0};
    sf_store_put_program(st, NULL, S("s1"), S("p"), S("\x81\xa4kind\xa1x"), on_got, &g);
    wait_done(&g);
    cr_expect_eq(g.status, SF_STORE_OK);
    g = (got){0};
    sf_store_get_program(st, S("s1"), S("p"), on_got, &g);
    wait_done(&g);
    cr_expect_eq(g.status, SF_STORE_OK);
    cr_expect_eq(g.len, 4); /* the state */
    g = (got){0};
    sf_store_list_programs(st, S("s1"), on_got, &g);
    wait_done(&g);
    cr_expect_eq(g.nkeys, 1);
    g = (got){0};
    sf_store_put_program(st, NULL, S("nobody"), S("p"), S("\x80"), on_got, &g);
    wait_done(&g);
    cr_expect_eq(g.status, SF_STORE_NOT_FOUND, "a program needs its session");
    g = (got){0};
    sf_store_end_session(st, NULL, S("s1"), on_got, &g);
    wait_done(&g);
    cr_expect_eq(g.count, 2);
    g = (got){0};
    sf_store_set_state(st, NULL, S("s1"), S("\x80"), on_got, &g);
    wait_done(&g);
    cr_expect_eq(g.status, SF_STORE_NOT_FOUND, "an ended session cannot be written");
}

Test(store, a_request_runs_once_and_its_reply_is_remembered)
{
    got g = {0};
    sf_store_create_session(st, NULL, S("s"), S("\x81\xa1n\x09"), 0, on_got, &g);
    wait_done(&g);
    g = (got){0};
    sf_store_claim(st, NULL, S("s"), S("req-1"), "sup-a", 10000, NULL, 0, on_got, &g);
    wait_done(&g);
    cr_expect_eq(g.claim, 0, "the first claim must win");
    g = (got){0};
    sf_store_claim(st, NULL, S("s"), S("req-1"), "sup-b", 10000, NULL, 0, on_got, &g);
    wait_done(&g);
    cr_expect_eq(g.claim, 2, "a second claimer must see it running");
    cr_expect(g.len == 7 && memcmp(g.value, "sup-a@0", 7) == 0, "%.*s", (int)g.len, g.value);
    g = (got){0};
    sf_store_commit(st, NULL, S("s"), S("req-1"), S("REPLY-BYTES"), S("\x81\xa1n\x01"), -1, 60,
                    true, on_got, &g);
    wait_done(&g);
    cr_expect_eq(g.status, SF_STORE_OK);
    g = (got){0};
    sf_store_claim(st, NULL, S("s"), S("req-1"), "sup-b", 10000, NULL, 0, on_got, &g);
    wait_done(&g);
    cr_expect_eq(g.claim, 1, "a redelivery must get the cached reply");
    cr_expect(g.len == 11 && memcmp(g.value, "REPLY-BYTES", 11) == 0);
    g = (got){0};
    sf_store_get_state(st, S("s"), on_got, &g);
    wait_done(&g);
    cr_expect(g.len == 4 && memcmp(g.value, "\x81\xa1n\x01", 4) == 0,
              "state and reply are written together");
}

Test(store, a_claim_of_a_dead_owner_expires)
{
    got g = {0};
    sf_store_claim(st, NULL, S("s"), S("req-2"), "dead", 200, NULL, 0, on_got, &g);
    wait_done(&g);
    cr_expect_eq(g.claim, 0);
    usleep(300000);
    g = (got){0};
    sf_store_claim(st, NULL, S("s"), S("req-2"), "next", 200, NULL, 0, on_got, &g);
    wait_done(&g);
    cr_expect_eq(g.claim, 0, "the next owner may run it once the claim expired");
}

Test(store, a_new_lease_takes_over_an_old_owners_claim)
{
    const char *key = "sf:epoch:{g}:t/1";
    got g = {0};
    sf_store_bump_epoch(st, key, on_got, &g);
    wait_done(&g);
    sf_fence old = {key, (uint64_t)g.count, 0};
    g = (got){0};
    sf_store_claim(st, &old, S("s"), S("req-3"), "killed", 60000, NULL, 0, on_got, &g);
    wait_done(&g);
    cr_expect_eq(g.claim, 0);
    g = (got){0};
    sf_store_bump_epoch(st, key, on_got, &g); /* the partition moves on */
    wait_done(&g);
    sf_fence now = {key, (uint64_t)g.count, 0};
    g = (got){0};
    sf_store_claim(st, &now, S("s"), S("req-3"), "new-owner", 60000, NULL, 0, on_got, &g);
    wait_done(&g);
    cr_expect_eq(g.claim, 0, "the new owner must not wait for a dead owner's claim");
    g = (got){0};
    sf_store_claim(st, &old, S("s"), S("req-3"), "killed", 60000, NULL, 0, on_got, &g);
    wait_done(&g);
    cr_expect_eq(g.claim, 2, "the old owner cannot take it back");
}

Test(store, a_zombie_write_is_refused)
{
    const char *key = "sf:epoch:{g}:t/0";
    got g = {0};
    sf_store_bump_epoch(st, key, on_got, &g);
    wait_done(&g);
    uint64_t old = (uint64_t)g.count;
    g = (got){0};
    sf_store_bump_epoch(st, key, on_got, &g); /* the partition moved to a new owner */
    wait_done(&g);
    cr_expect_eq((uint64_t)g.count, old + 1);
    sf_fence zombie = {key, old, 0}, owner = {key, old + 1, 0};
    g = (got){0};
    sf_store_create_session(st, &owner, S("s"), S("\x81\xa1n\x05"), 0, on_got, &g);
    wait_done(&g);
    cr_expect_eq(g.status, SF_STORE_OK);
    g = (got){0};
    sf_store_commit(st, &zombie, S("s"), S("r"), S("R"), S("\x81\xa1n\x63"), -1, 60, true, on_got,
                    &g);
    wait_done(&g);
    cr_expect_eq(g.status, SF_STORE_FENCED);
    g = (got){0};
    sf_store_set_state(st, &zombie, S("s"), S("\x80"), on_got, &g);
    wait_done(&g);
    cr_expect_eq(g.status, SF_STORE_FENCED);
    g = (got){0};
    sf_store_end_session(st, &zombie, S("s"), on_got, &g);
    wait_done(&g);
    cr_expect_eq(g.status, SF_STORE_FENCED);
    g = (got){0};
    sf_store_get_state(st, S("s"), on_got, &g);
    wait_done(&g);
    cr_expect(g.len == 4 && memcmp(g.value, "\x81\xa1n\x05", 4) == 0,
              "the zombie's writes must not land");
}

typedef struct many {
    int done, ok;
} many;

static void on_many(void *arg, const sf_store_reply *r)
{
    many *m = arg;
    m->done++;
    m->ok += r->status == SF_STORE_OK;
}

static void on_many_check(void *arg, const sf_store_reply *r)
{
    many *m = arg;
    m->done++;
    m->ok += r->status == SF_STORE_OK && r->state_len == 6 && r->state[0] == '\x81';
}

static void wait_many(many *m, int n)
{
    double end = now_ms() + 30000;
    while (m->done < n && now_ms() < end) {
        struct timeval tv = {0, 10000};
        event_base_loopexit(base, &tv);
        event_base_loop(base, EVLOOP_ONCE);
    }
}

Test(store, ten_thousand_sessions_round_trip)
{
    enum { N = 10000 };
    many m = {0};
    char s[32], state[8];
    for (int i = 0; i < N; i++) {
        int n = snprintf(s, sizeof(s), "user_%d", i);
        /* {"i": <uint16>} */
        state[0] = '\x81';
        state[1] = '\xa1';
        state[2] = 'i';
        state[3] = '\xcd';
        state[4] = (char)(i >> 8);
        state[5] = (char)i;
        sf_store_create_session(st, NULL, s, (size_t)n, state, 6, 0, on_many, &m);
    }
    wait_many(&m, N);
    cr_assert_eq(m.ok, N);
    many r = {0};
    for (int i = 0; i < N; i++) {
        int n = snprintf(s, sizeof(s), "user_%d", i);
        sf_store_get_state(st, s, (size_t)n, on_many_check, &r);
    }
    wait_many(&r, N);
    cr_expect_eq(r.ok, N, "%d of %d states came back intact", r.ok, N);
}

Test(store, reconnects_after_redis_restarts_and_keeps_acknowledged_state)
{
    got g = {0};
    sf_store_create_session(st, NULL, S("durable"), S("\x81\xa1n\x07"), 0, on_got, &g);
    wait_done(&g);
    cr_assert_eq(g.status, SF_STORE_OK);
    redis_stop();
    g = (got){0};
    sf_store_get_state(st, S("durable"), on_got, &g);
    wait_done(&g);
    cr_expect_eq(g.status, SF_STORE_UNAVAILABLE);
    redis_start();
    wait_connected();
    g = (got){0};
    sf_store_get_state(st, S("durable"), on_got, &g);
    wait_done(&g);
    cr_expect_eq(g.status, SF_STORE_OK);
    cr_expect(g.len == 4 && memcmp(g.value, "\x81\xa1n\x07", 4) == 0,
              "acknowledged state lost across a restart (appendonly)");
}

Test(store, scripts_flushed_from_redis_are_sent_again)
{
    got g = {0};
    sf_store_create_session(st, NULL, S("flush"), S("\x81\xa1n\x03"), 0, on_got, &g);
    wait_done(&g);
    cr_assert_eq(g.status, SF_STORE_OK);
    /* Scripts are called by SHA; SCRIPT FLUSH makes Redis forget them (NOSCRIPT). */
    char cmd[96];
    snprintf(cmd, sizeof(cmd), "redis-cli -p %d SCRIPT FLUSH >/dev/null", redis_port);
    cr_assert_eq(system(cmd), 0);
    g = (got){0};
    sf_store_set_state(st, NULL, S("flush"), S("\x81\xa1n\x04"), on_got, &g);
    wait_done(&g);
    cr_expect_eq(g.status, SF_STORE_OK, "a NOSCRIPT answer must load the script and retry");
    g = (got){0};
    sf_store_get_state(st, S("flush"), on_got, &g);
    wait_done(&g);
    cr_expect(g.len == 4 && memcmp(g.value, "\x81\xa1n\x04", 4) == 0);
}

/* create_session of s through store `on`, with a limit; the answer in *g. */
static void create_limited(sf_store *on, const char *s, uint64_t max, got *g)
{
    *g = (got){0};
    sf_store_create_session(on, NULL, s, strlen(s), S("\x80"), max, on_got, g);
    wait_done(g);
}

Test(store, max_sessions_counts_live_sessions_only)
{
    got g;
    const char *abc[] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++) {
        create_limited(st, abc[i], 3, &g);
        cr_expect_eq(g.status, SF_STORE_OK);
        cr_expect_eq(g.count, i + 1, "count %lld status %d", (long long)g.count, (int)g.status);
    }
    create_limited(st, "d", 3, &g);
    cr_expect_eq(g.status, SF_STORE_LIMIT, "a fourth session is over the limit");
    cr_expect_eq(g.count, 3);
    create_limited(st, "a", 3, &g);
    cr_expect_eq(g.status, SF_STORE_OK, "re-creating a stored session adds none");
    cr_expect_eq(g.count, 3);
    g = (got){0};
    sf_store_end_session(st, NULL, S("b"), on_got, &g);
    wait_done(&g);
    create_limited(st, "d", 3, &g);
    cr_expect_eq(g.status, SF_STORE_OK, "an ended session frees its place");
    cr_expect_eq(g.count, 3);

    /* Sessions with a 1 s TTL: e expires unused; x is used (its TTL refreshed) and lives. */
    char url[64], err[256];
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", redis_port);
    sf_store *brief = sf_store_new(base, url, NULL, NULL, 1, NULL, NULL, err, sizeof(err));
    cr_assert(brief, "%s", err);
    double connect_by = now_ms() + 5000;
    while (!sf_store_connected(brief) && now_ms() < connect_by) {
        struct timeval tv = {0, 10000};
        event_base_loopexit(base, &tv);
        event_base_loop(base, EVLOOP_ONCE);
    }
    create_limited(brief, "e", 0, &g);
    cr_expect_eq(g.status, SF_STORE_OK);
    create_limited(brief, "x", 0, &g);
    cr_expect_eq(g.count, 5);
    g = (got){0};
    sf_store_get_state(st, S("x"), on_got, &g); /* refreshes x to the 600 s TTL */
    wait_done(&g);
    double until = now_ms() + 1300;
    while (now_ms() < until) {
        struct timeval tv = {0, 50000};
        event_base_loopexit(base, &tv);
        event_base_loop(base, EVLOOP_ONCE);
    }
    create_limited(st, "f", 5, &g);
    cr_expect_eq(g.status, SF_STORE_OK, "the expired session no longer counts");
    cr_expect_eq(g.count, 5, "a, c, d, x and f");
    create_limited(st, "g", 5, &g);
    cr_expect_eq(g.status, SF_STORE_LIMIT, "x is alive and still counts");
    sf_store_free(brief);
}

Test(store, claims_and_commits_of_one_loop_turn_share_a_script_call)
{
    const char *key = "sf:epoch:{g}:t/1";
    got g = {0};
    sf_store_bump_epoch(st, key, on_got, &g);
    wait_done(&g);
    sf_fence lease = {key, (uint64_t)g.count, 0}, stale = {key, (uint64_t)g.count + 7, 0};
    g = (got){0};
    sf_store_create_session(st, &lease, S("b"), S("\x81\xa1n\x07"), 0, on_got, &g);
    wait_done(&g);
    /* Before: one request answered, one running on another supervisor. */
    g = (got){0};
    sf_store_claim(st, &lease, S("b"), S("answered"), "me", 10000, NULL, 0, on_got, &g);
    wait_done(&g);
    g = (got){0};
    sf_store_commit(st, &lease, S("b"), S("answered"), S("OLD-REPLY"), NULL, 0, -1, 60, true,
                    on_got, &g);
    wait_done(&g);
    g = (got){0};
    sf_store_claim(st, &lease, S("b"), S("running"), "other", 10000, NULL, 0, on_got, &g);
    wait_done(&g);

    /* 100 claims in one loop turn: 64 + 36 items, two script calls. */
    enum { N = 100 };
    static got gs[N];
    memset(gs, 0, sizeof(gs));
    char ids[N][16];
    uint64_t calls = sf_store_calls(st);
    for (int i = 0; i < N; i++) {
        snprintf(ids[i], sizeof(ids[i]), "r%d", i);
        const char *id = i == 0 ? "answered" : i == 1 ? "running" : ids[i];
        sf_store_claim(st, &lease, S("b"), id, strlen(id), "me", 10000, i % 2 ? "p" : NULL,
                       i % 2 ? 1 : 0, on_got, &gs[i]);
    }
    int done = 0;
    for (double end = now_ms() + 5000; now_ms() < end;) {
        done = 0;
        for (int i = 0; i < N; i++)
            done += gs[i].done;
        if (done == N)
            break;
        struct timeval tv = {0, 10000};
        event_base_loopexit(base, &tv);
        event_base_loop(base, EVLOOP_ONCE);
    }
    cr_assert_eq(done, N);
    cr_expect_eq(sf_store_calls(st) - calls, 2, "100 claims went as %llu calls",
                 (unsigned long long)(sf_store_calls(st) - calls));
    cr_expect_eq(gs[0].claim, 1);
    cr_expect(gs[0].len == 9 && memcmp(gs[0].value, "OLD-REPLY", 9) == 0, "the cached reply");
    cr_expect_eq(gs[1].claim, 2, "running elsewhere");
    for (int i = 2; i < N; i++) {
        cr_expect_eq(gs[i].status, SF_STORE_OK);
        cr_expect_eq(gs[i].claim, 0, "item %d", i);
        if (i % 2) /* claimed for an execute: the state came along */
            cr_expect(gs[i].len == 4 && memcmp(gs[i].value, "\x81\xa1n\x07", 4) == 0);
    }

    /* Commits in one turn, each answered on its own: done, fenced, session gone. */
    static got cs[3];
    memset(cs, 0, sizeof(cs));
    calls = sf_store_calls(st);
    sf_store_commit(st, &lease, S("b"), S("r2"), S("R2"), S("\x81\xa1n\x02"), -1, 60, true, on_got,
                    &cs[0]);
    sf_store_commit(st, &stale, S("b"), S("r3"), S("R3"), S("\x81\xa1n\x03"), -1, 60, true, on_got,
                    &cs[1]);
    sf_store_commit(st, &lease, S("gone"), S("r4"), S("R4"), S("\x80"), -1, 60, true, on_got,
                    &cs[2]);
    int cdone = 0;
    for (double end = now_ms() + 5000; cdone < 3 && now_ms() < end;) {
        struct timeval tv = {0, 10000};
        event_base_loopexit(base, &tv);
        event_base_loop(base, EVLOOP_ONCE);
        cdone = cs[0].done + cs[1].done + cs[2].done;
    }
    cr_assert_eq(cdone, 3);
    cr_expect_eq(sf_store_calls(st) - calls, 1);
    cr_expect_eq(cs[0].status, SF_STORE_OK);
    cr_expect_eq(cs[1].status, SF_STORE_FENCED);
    cr_expect_eq(cs[2].status, SF_STORE_NOT_FOUND);
    g = (got){0};
    sf_store_get_state(st, S("b"), on_got, &g);
    wait_done(&g);
    cr_expect(g.len == 4 && memcmp(g.value, "\x81\xa1n\x02", 4) == 0,
              "only the leaseholder's state landed");
    g = (got){0};
    sf_store_claim(st, &lease, S("b"), S("r3"), "me", 10000, NULL, 0, on_got, &g);
    wait_done(&g);
    cr_expect_eq(g.claim, 0, "the fenced commit left no reply behind");
}

/* A redis-server of this test's own that wants a password (and knows user alice). */
static pid_t redis_with_password(int port, const char *dir)
{
    char p[16];
    snprintf(p, sizeof(p), "%d", port);
    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(null, 2);
        execlp("redis-server", "redis-server", "--port", p, "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", dir, "--requirepass", "s3cret", "--user", "alice",
               "on", ">wonderland", "~*", "&*", "+@all", "--user", "bob", "on", ">builder", "~*",
               "&*", "+@all", "-@dangerous", (char *)NULL);
        _exit(127);
    }
    cr_assert_gt(pid, 0);
    usleep(200000);
    return pid;
}

static void count_health(void *arg, bool up)
{
    ((int *)arg)[up ? 1 : 0]++;
}

/* create_session through `on` after letting it connect for up to 2 s. */
static sf_store_status try_create(sf_store *on)
{
    double end = now_ms() + 2000;
    while (!sf_store_connected(on) && now_ms() < end) {
        struct timeval tv = {0, 10000};
        event_base_loopexit(base, &tv);
        event_base_loop(base, EVLOOP_ONCE);
    }
    got g = {0};
    sf_store_create_session(on, NULL, S("auth"), S("\x80"), 0, on_got, &g);
    wait_done(&g);
    return g.status;
}

Test(store, authenticates_with_a_password_or_an_acl_user)
{
    char dir[64] = "/tmp/sf-store-auth-XXXXXX";
    cr_assert(mkdtemp(dir));
    int port = free_port();
    pid_t pid = redis_with_password(port, dir);
    char url[64], err[256];
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", port);
    sf_store *good = sf_store_new(base, url, NULL, "s3cret", 600, NULL, NULL, err, sizeof(err));
    sf_store *alice =
        sf_store_new(base, url, "alice", "wonderland", 600, NULL, NULL, err, sizeof(err));
    int health[2] = {0, 0}; /* downs, ups of the store with the wrong password */
    sf_store *wrong =
        sf_store_new(base, url, NULL, "guess", 600, count_health, health, err, sizeof(err));
    sf_store *none = sf_store_new(base, url, NULL, NULL, 600, NULL, NULL, err, sizeof(err));
    cr_expect_eq(try_create(good), SF_STORE_OK);
    cr_expect_eq(try_create(alice), SF_STORE_OK);
    /* bob may not run INFO (@dangerous): the version is unknown, the store still goes up */
    int bob_health[2] = {0, 0};
    sf_store *bob =
        sf_store_new(base, url, "bob", "builder", 600, count_health, bob_health, err, sizeof(err));
    cr_expect_eq(try_create(bob), SF_STORE_OK);
    cr_expect_eq(bob_health[1], 1, "bob's store reported up %d times", bob_health[1]);
    sf_store_free(bob);
    cr_expect_eq(try_create(wrong), SF_STORE_UNAVAILABLE, "a wrong password must not get in");
    for (double end = now_ms() + 1000; now_ms() < end;) {
        struct timeval tv = {0, 20000};
        event_base_loopexit(base, &tv);
        event_base_loop(base, EVLOOP_ONCE);
    }
    cr_expect_eq(health[1], 0, "a refused AUTH reported the store up %d times", health[1]);
    cr_expect_leq(health[0], 8, "%d reconnects in a second: no backoff", health[0]);
    cr_expect_eq(try_create(none), SF_STORE_UNAVAILABLE, "no password must not get in");
    sf_store_free(good);
    sf_store_free(alice);
    sf_store_free(wrong);
    sf_store_free(none);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

Test(store, a_failing_item_fails_alone_in_its_batch)
{
    /* Session "S}:req:x" keeps its programs in sf:{S}:req:x}:programs, which is
     * also the dedupe key of request "x}:programs" of session "S": a hash where
     * the claim expects a string, so Redis fails that item (WRONGTYPE). */
    got g = {0};
    sf_store_create_session(st, NULL, S("S}:req:x"), S("\x80"), 0, on_got, &g);
    wait_done(&g);
    g = (got){0};
    sf_store_put_program(st, NULL, S("S}:req:x"), S("p"), S("\x81\xa4kind\xa1x"), on_got, &g);
    wait_done(&g);
    cr_assert_eq(g.status, SF_STORE_OK);
    static got a, b;
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    uint64_t calls = sf_store_calls(st);
    sf_store_claim(st, NULL, S("S"), S("x}:programs"), "me", 10000, NULL, 0, on_got, &a);
    sf_store_claim(st, NULL, S("S"), S("fine"), "me", 10000, NULL, 0, on_got, &b);
    wait_done(&a);
    wait_done(&b);
    cr_expect_eq(sf_store_calls(st) - calls, 1, "one script call for both");
    cr_expect_eq(a.status, SF_STORE_UNAVAILABLE, "the bad item fails");
    cr_expect_eq(b.status, SF_STORE_OK, "the other item of its batch does not");
    cr_expect_eq(b.claim, 0);
}

/* Keys Redis holds, one per line of `redis-cli KEYS *` output, into buf. */
static int redis_keys(char *buf, size_t cap)
{
    char cmd[96];
    snprintf(cmd, sizeof(cmd), "redis-cli -p %d --raw KEYS '*' 2>/dev/null", redis_port);
    FILE *f = popen(cmd, "r");
    cr_assert(f, "redis-cli");
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    return pclose(f);
}

Test(store, fleets_with_their_own_key_prefix_share_a_database_apart)
{
    char err[256], url[64];
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", redis_port);
    sf_store *green = sf_store_new(base, url, NULL, NULL, 600, NULL, NULL, err, sizeof(err));
    cr_assert(green, "%s", err);
    cr_assert_eq(sf_store_set_key_prefix(green, "green"), 0);
    cr_expect_eq(sf_store_set_key_prefix(green, ""), -1, "an empty prefix");
    cr_expect_eq(sf_store_set_key_prefix(green, "a{b"), -1, "a brace breaks the hash tags");
    cr_expect_eq(sf_store_set_key_prefix(green, "a b"), -1, "a space");
    char k1[SF_STORE_EPOCH_KEY_MAX], k2[SF_STORE_EPOCH_KEY_MAX];
    sf_store_epoch_key(st, k1, sizeof(k1), "g", "t", 3);
    sf_store_epoch_key(green, k2, sizeof(k2), "g", "t", 3);
    cr_expect_str_eq(k1, "sf:epoch:{g}:t/3", "the default layout is unchanged");
    cr_expect_str_eq(k2, "green:epoch:{g}:t/3");
    sf_store *stores[2] = {st, green};
    const char *states[2] = {"\x81\xa1n\x01", "\x81\xa1n\x02"};
    const char *keys[2] = {k1, k2};
    for (int i = 0; i < 2; i++) {
        got g = {0};
        sf_store_create_session(stores[i], NULL, S("same"), states[i], 4, 1, on_got, &g);
        wait_done(&g);
        cr_expect_eq(g.status, SF_STORE_OK, "max_sessions=1 counts each fleet's own sessions");
        cr_expect_eq(g.count, 1);
        g = (got){0};
        sf_store_bump_epoch(stores[i], keys[i], on_got, &g);
        wait_done(&g);
        cr_expect_eq(g.count, 1, "each fleet has its own lease epochs");
        g = (got){0};
        sf_store_claim(stores[i], NULL, S("same"), S("req"), "me", 10000, NULL, 0, on_got, &g);
        wait_done(&g);
        cr_expect_eq(g.claim, 0, "a request id is claimed once per fleet");
    }
    for (int i = 0; i < 2; i++) {
        got g = {0};
        sf_store_get_state(stores[i], S("same"), on_got, &g);
        wait_done(&g);
        cr_expect(g.len == 4 && memcmp(g.value, states[i], 4) == 0, "fleet %d reads its own state",
                  i);
    }
    got g = {0};
    sf_store_end_session(green, NULL, S("same"), on_got, &g);
    wait_done(&g);
    g = (got){0};
    sf_store_get_state(st, S("same"), on_got, &g);
    wait_done(&g);
    cr_expect_eq(g.status, SF_STORE_OK, "ending green's session leaves the other fleet's");
    char list[4096];
    cr_assert_eq(redis_keys(list, sizeof(list)), 0);
    int n = 0;
    for (char *line = strtok(list, "\n"); line; line = strtok(NULL, "\n"), n++)
        cr_expect(strncmp(line, "sf:", 3) == 0 || strncmp(line, "green:", 6) == 0,
                  "a key outside both prefixes: %s", line);
    cr_expect_geq(n, 5, "sf's session, index, epoch and claim, and green's epoch and claim");
    sf_store_free(green);
}

/* Claims request `id` of session "cas" with a read of program "p"; returns the version read. */
static uint64_t claim_read(const char *id)
{
    got g = {0};
    sf_store_claim(st, NULL, S("cas"), id, strlen(id), "me", 10000, "p", 1, on_got, &g);
    wait_done(&g);
    cr_assert_eq(g.claim, 0);
    cr_assert(g.len > 0, "the claim read the state");
    return g.version;
}

static sf_store_status commit_over(const char *id, const char *state, int64_t version)
{
    got g = {0};
    sf_store_commit(st, NULL, S("cas"), id, strlen(id), S("R"), state, strlen(state), version, 60,
                    true, on_got, &g);
    wait_done(&g);
    return g.status;
}

Test(store, a_state_written_since_the_read_is_not_overwritten)
{
    got g = {0};
    sf_store_create_session(st, NULL, S("cas"), S("\x81\xa1n\x00"), 0, on_got, &g);
    wait_done(&g);
    g = (got){0};
    sf_store_put_program(st, NULL, S("cas"), S("p"), S("\x81\xa4kind\xa1x"), on_got, &g);
    wait_done(&g);
    uint64_t v0 = claim_read("a");
    cr_expect_gt(v0, 0, "create_session starts a version");
    g = (got){0};
    sf_store_get_program(st, S("cas"), S("p"), on_got, &g); /* a crashed call's re-read */
    wait_done(&g);
    cr_expect_eq(g.version, v0, "a re-read sees the same version as the claim");
    uint64_t also = claim_read("b"); /* a second writer read the same state */
    cr_expect_eq(also, v0);
    cr_expect_eq(commit_over("a", "\x81\xa1n\x01", (int64_t)v0), SF_STORE_OK);
    cr_expect_eq(commit_over("b", "\x81\xa1n\x01", (int64_t)also), SF_STORE_CONFLICT,
                 "the second writer ran on a stale state: refused, not saved");
    g = (got){0};
    sf_store_get_state(st, S("cas"), on_got, &g);
    wait_done(&g);
    cr_expect(g.len == 4 && memcmp(g.value, "\x81\xa1n\x01", 4) == 0);
    uint64_t v1 = claim_read("b"); /* run again: the current state and version */
    cr_expect_eq(v1, v0 + 1);
    cr_expect_eq(commit_over("b", "\x81\xa1n\x02", (int64_t)v1), SF_STORE_OK);
    /* set_session_state is a write too: a run that read before it conflicts */
    uint64_t v2 = claim_read("c");
    g = (got){0};
    sf_store_set_state(st, NULL, S("cas"), S("\x81\xa1n\x09"), on_got, &g);
    wait_done(&g);
    cr_expect_eq(commit_over("c", "\x81\xa1n\x03", (int64_t)v2), SF_STORE_CONFLICT);
    uint64_t v3a = claim_read("c2");
    cr_expect_eq(commit_over("c", "\x81\xa1n\x03", -1), SF_STORE_OK, "-1: unconditional");
    cr_expect_eq(commit_over("c2", "\x81\xa1n\x05", (int64_t)v3a), SF_STORE_CONFLICT,
                 "an unconditional write moves the version on too");
    /* a session created again starts a version no earlier read can have */
    uint64_t v3 = claim_read("d");
    g = (got){0};
    sf_store_create_session(st, NULL, S("cas"), S("\x81\xa1n\x00"), 0, on_got, &g);
    wait_done(&g);
    cr_expect_eq(commit_over("d", "\x81\xa1n\x04", (int64_t)v3), SF_STORE_CONFLICT);
    g = (got){0};
    sf_store_put_program(st, NULL, S("cas"), S("p"), S("\x81\xa4kind\xa1x"), on_got, &g);
    wait_done(&g);
    g = (got){0};
    sf_store_list_programs(st, S("cas"), on_got, &g);
    wait_done(&g);
    cr_expect_eq(g.nkeys, 1, "the version is not a program");
}
