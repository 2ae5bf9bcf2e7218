/*
 * test_pool.c — the pool with real Python workers: calls, errors, crashes,
 * timeouts, recycling, affinity, overflow, checkout timeouts, ordering.
 * Every wait is bounded; every test stops its pool.
 */
#include "pool_harness.h"

TestSuite(pool, .fini = h_stop, .timeout = 60);

Test(pool, executes_a_callable_and_returns_state)
{
    sf_pool_config c;
    h_config(&c);
    h_start(&c);
    outcome o;
    h_exec(&o, "s1", "echo", "{\"x\": 1, \"name\": \"snake\"}");
    h_wait(&o, 10000);
    cr_assert(o.ok, "%s: %s", o.type, o.message);
    json_t *want = json_pack("{s:i, s:s}", "x", 1, "name", "snake");
    cr_expect(json_equal(o.value, want));
    json_decref(want);
    cr_expect(o.worker[0] == 'w');
    h_outcome_clear(&o);

    h_submit(&o, "s1", "execute_program", "counter", "{\"by\": 5}",
             "{\"kind\":\"callable\",\"entry\":\"snakefleet.examples:counter\"}", "{\"n\": 37}");
    h_wait(&o, 10000);
    cr_assert(o.ok, "%s: %s", o.type, o.message);
    cr_expect_eq(json_integer_value(o.value), 42);
    cr_expect_eq(json_integer_value(json_object_get(o.state, "n")), 42);
    h_outcome_clear(&o);
}

Test(pool, program_exception_is_an_error_with_traceback)
{
    sf_pool_config c;
    h_config(&c);
    h_start(&c);
    outcome o;
    h_exec(&o, "s1", "fail", "{\"message\": \"no such thing\"}");
    h_wait(&o, 10000);
    cr_assert_not(o.ok);
    cr_expect_str_eq(o.type, "program_error");
    cr_expect(strstr(o.message, "no such thing") != NULL, "%s", o.message);
    cr_expect(strstr(o.traceback, "Traceback") != NULL, "%s", o.traceback);
    h_outcome_clear(&o);
    cr_expect_eq(h_stats()->crashes, 0);
}

Test(pool, crash_mid_call_is_classified_and_worker_replaced)
{
    h_start_workers(1);
    const char *hows[] = {"abort", "segv", "exit"};
    const char *kinds[] = {"abort", "segfault", "exited with code 7"};
    for (int i = 0; i < 3; i++) {
        outcome o;
        char args[64];
        snprintf(args, sizeof(args), "{\"how\": \"%s\"}", hows[i]);
        h_exec(&o, "s1", "crash", args);
        h_wait(&o, 10000);
        cr_assert_not(o.ok);
        cr_expect_str_eq(o.type, "worker_crashed");
        cr_expect(strstr(o.message, kinds[i]) != NULL, "%s: %s", hows[i], o.message);
        h_outcome_clear(&o);
        /* The replacement serves the next call. */
        h_exec(&o, "s1", "add", "{\"a\": 2, \"b\": 3}");
        h_wait(&o, 10000);
        cr_assert(o.ok, "%s: %s", o.type, o.message);
        cr_expect_eq(json_integer_value(o.value), 5);
        h_outcome_clear(&o);
    }
    cr_expect_eq(h_stats()->crashes, 3);
    cr_expect_eq(h_stats()->restarts, 3);
}

Test(pool, hung_call_is_killed_at_request_timeout)
{
    sf_pool_config c;
    h_config(&c);
    c.pool_size = 1;
    c.request_timeout_ms = 300;
    h_start(&c);
    outcome o;
    double t0 = h_now_ms();
    h_exec(&o, "s1", "sleep", "{\"seconds\": 30}");
    h_wait(&o, 10000);
    cr_assert_not(o.ok);
    cr_expect_str_eq(o.type, "timeout");
    cr_expect(h_now_ms() - t0 < 5000);
    h_outcome_clear(&o);
    h_exec(&o, "s1", "noop", NULL);
    h_wait(&o, 10000);
    cr_expect(o.ok, "%s: %s", o.type, o.message);
    h_outcome_clear(&o);
    cr_expect_eq(h_stats()->timeouts, 1);
}

Test(pool, a_call_still_running_at_its_deadline_fails_deadline_exceeded_and_its_worker_is_replaced)
{
    sf_pool_config c;
    h_config(&c);
    c.pool_size = 1;
    h_start(&c);
    outcome o;
    /* one that ends in time is not touched */
    h_deadline_ms = sf_wall_ms() + 5000;
    h_exec(&o, "s1", "sleep", "{\"seconds\": 0.05}");
    h_wait(&o, 10000);
    cr_expect(o.ok, "%s: %s", o.type, o.message);
    h_outcome_clear(&o);
    /* one still running at its deadline: answered then, not when it would have ended */
    double t0 = h_now_ms();
    h_deadline_ms = sf_wall_ms() + 300;
    h_exec(&o, "s1", "sleep", "{\"seconds\": 30}");
    h_deadline_ms = 0;
    h_wait(&o, 10000);
    cr_assert_not(o.ok);
    cr_expect_str_eq(o.type, "deadline_exceeded");
    cr_expect(h_now_ms() - t0 < 5000, "answered after %.0f ms", h_now_ms() - t0);
    h_outcome_clear(&o);
    h_exec(&o, "s1", "noop", NULL);
    h_wait(&o, 10000);
    cr_expect(o.ok, "the pool serves again: %s: %s", o.type, o.message);
    h_outcome_clear(&o);
    cr_expect_eq(h_stats()->timeouts, 0, "not counted as a request timeout");
}

Test(pool, recycles_after_max_requests)
{
    sf_pool_config c;
    h_config(&c);
    c.pool_size = 1;
    c.max_requests = 5;
    c.max_requests_jitter_pct = 0;
    h_start(&c);
    char first[32] = "";
    int changes = 0;
    char last[32] = "";
    for (int i = 0; i < 12; i++) {
        outcome o;
        h_exec(&o, "s1", "noop", NULL);
        h_wait(&o, 10000);
        cr_assert(o.ok, "%s: %s", o.type, o.message);
        if (i == 0)
            strcpy(first, o.worker);
        if (last[0] && strcmp(last, o.worker) != 0)
            changes++;
        strcpy(last, o.worker);
        h_outcome_clear(&o);
    }
    cr_expect_eq(changes, 2, "worker changed %d times", changes);
    cr_expect_eq(h_stats()->recycles, 2);
    cr_expect_eq(h_stats()->crashes, 0);
}

Test(pool, jitter_spreads_max_requests)
{
    sf_pool_config c;
    h_config(&c);
    c.pool_size = 6;
    c.max_requests = 1000;
    c.max_requests_jitter_pct = 20;
    c.lazy = false;
    h_start(&c);
    sf_pool_stats *s = h_stats();
    int distinct = 0;
    for (int i = 0; i < s->nworkers; i++) {
        cr_expect(s->worker[i].max_requests >= 800 && s->worker[i].max_requests <= 1200);
        bool seen = false;
        for (int j = 0; j < i; j++)
            seen |= s->worker[j].max_requests == s->worker[i].max_requests;
        distinct += !seen;
    }
    cr_expect_geq(distinct, 3, "max_requests barely differs between workers");
}

Test(pool, recycles_above_max_rss)
{
    sf_pool_config c;
    h_config(&c);
    c.pool_size = 1;
    c.max_rss_mb = 100;
    h_start(&c);
    outcome o;
    h_exec(&o, "s1", "allocate", "{\"mb\": 150}");
    h_wait(&o, 20000);
    cr_assert(o.ok, "%s: %s", o.type, o.message);
    char big[32];
    strcpy(big, o.worker);
    h_outcome_clear(&o);
    h_sleep_loop(300);
    cr_expect_eq(h_stats()->recycles, 1);
    h_exec(&o, "s1", "noop", NULL);
    h_wait(&o, 10000);
    cr_assert(o.ok);
    cr_expect_str_neq(o.worker, big, "the bloated worker was not replaced");
    h_outcome_clear(&o);
}

Test(pool, hint_affinity_prefers_the_last_worker)
{
    h_start_workers(2);
    outcome o;
    char w[32] = "";
    for (int i = 0; i < 10; i++) {
        h_exec(&o, "alice", "noop", NULL);
        h_wait(&o, 10000);
        cr_assert(o.ok);
        if (i == 0)
            strcpy(w, o.worker);
        cr_expect_str_eq(o.worker, w, "call %d moved from %s to %s", i, w, o.worker);
        h_outcome_clear(&o);
    }
    /* Its worker busy: hint mode takes the other, idle one. */
    outcome slow, o2;
    h_exec(&slow, "bob", "sleep", "{\"seconds\": 0.5}");
    h_exec(&o2, "carol", "noop", NULL);
    h_wait(&o2, 10000);
    h_wait(&slow, 10000);
    cr_expect_str_neq(slow.worker, o2.worker);
    h_outcome_clear(&slow);
    h_outcome_clear(&o2);
}

/*
 * Occupies alice's last worker with bob's slow call, then submits alice again.
 * With every worker idle a new session takes the lowest slot, as alice did.
 */
static bool two_idle(void *arg)
{
    return h_stats()->idle == 2;
}

static void occupy_then_call(outcome *slow, outcome *o, char *alice_worker)
{
    cr_assert(h_run_until(two_idle, NULL, 15000), "workers did not start");
    outcome first;
    h_exec(&first, "alice", "noop", NULL);
    h_wait(&first, 10000);
    strcpy(alice_worker, first.worker);
    h_outcome_clear(&first);
    h_exec(slow, "bob", "sleep", "{\"seconds\": 0.6}");
    h_sleep_loop(100);
    h_exec(o, "alice", "noop", NULL);
}

Test(pool, strict_affinity_waits_for_the_last_worker)
{
    sf_pool_config c;
    h_config(&c);
    c.affinity = SF_AFFINITY_STRICT;
    h_start(&c);
    outcome slow, o;
    char aw[32];
    occupy_then_call(&slow, &o, aw);
    h_wait(&o, 10000);
    h_wait(&slow, 10000);
    cr_expect_str_eq(slow.worker, aw, "setup: bob did not land on alice's worker");
    cr_assert(o.ok, "%s: %s", o.type, o.message);
    cr_expect_str_eq(o.worker, aw, "strict affinity moved alice to %s", o.worker);
    cr_expect_gt(o.order, slow.order, "alice did not wait for her worker");
    h_outcome_clear(&slow);
    h_outcome_clear(&o);
}

Test(pool, strict_fail_fast_fails_when_the_last_worker_is_busy)
{
    sf_pool_config c;
    h_config(&c);
    c.affinity = SF_AFFINITY_STRICT_FAIL_FAST;
    h_start(&c);
    outcome slow, o;
    char aw[32];
    occupy_then_call(&slow, &o, aw);
    h_wait(&o, 10000);
    h_wait(&slow, 10000);
    cr_expect_str_eq(slow.worker, aw, "setup: bob did not land on alice's worker");
    cr_assert_not(o.ok);
    cr_expect_str_eq(o.type, "checkout_timeout");
    cr_expect_lt(o.order, slow.order, "fail-fast waited");
    h_outcome_clear(&slow);
    h_outcome_clear(&o);
}

static bool no_overflow(void *arg)
{
    return h_stats()->overflow == 0;
}

Test(pool, overflow_spawns_under_load_and_is_reaped_when_idle)
{
    sf_pool_config c;
    h_config(&c);
    c.pool_size = 1;
    c.max_overflow = 1;
    c.overflow_idle_timeout_ms = 300;
    h_start(&c);
    outcome a, b;
    h_exec(&a, "s1", "sleep", "{\"seconds\": 0.3}");
    h_exec(&b, "s2", "sleep", "{\"seconds\": 0.3}");
    h_wait(&a, 15000);
    h_wait(&b, 15000);
    cr_assert(a.ok && b.ok);
    cr_expect_str_neq(a.worker, b.worker, "the second call did not get an overflow worker");
    cr_expect_eq(h_stats()->overflow, 1);
    cr_expect(h_run_until(no_overflow, NULL, 5000), "the overflow worker was not reaped");
    cr_expect_eq(h_stats()->workers, 1);
    h_outcome_clear(&a);
    h_outcome_clear(&b);
}

Test(pool, checkout_timeout_is_a_typed_error)
{
    sf_pool_config c;
    h_config(&c);
    c.pool_size = 1;
    c.checkout_timeout_ms = 200;
    h_start(&c);
    outcome slow, o;
    h_exec(&slow, "s1", "sleep", "{\"seconds\": 1.0}");
    h_exec(&o, "s2", "noop", NULL);
    h_wait(&o, 5000);
    cr_assert_not(o.ok);
    cr_expect_str_eq(o.type, "checkout_timeout");
    cr_expect(strstr(o.message, "checkout_timeout") != NULL, "%s", o.message);
    h_wait(&slow, 5000);
    cr_expect(slow.ok);
    cr_expect_eq(h_stats()->checkout_timeouts, 1);
    h_outcome_clear(&slow);
    h_outcome_clear(&o);
}

Test(pool, one_session_runs_in_order_even_pipelined)
{
    sf_pool_config c;
    h_config(&c);
    c.pool_size = 2;
    c.pipeline_depth = 8;
    h_start(&c);
    enum { N = 200 };
    static outcome o[N];
    for (int i = 0; i < N; i++) {
        char args[32];
        snprintf(args, sizeof(args), "{\"op\": %d}", i);
        h_submit(&o[i], i % 2 ? "odd" : "even", "execute_program", "record", args,
                 "{\"kind\":\"callable\",\"entry\":\"snakefleet.examples:record\"}", "{}");
    }
    for (int i = 0; i < N; i++)
        h_wait(&o[i], 20000);
    int last[2] = {0, 0};
    for (int i = 0; i < N; i++) {
        cr_assert(o[i].ok, "%d: %s %s", i, o[i].type, o[i].message);
        cr_expect_gt(o[i].order, last[i % 2], "call %d finished out of order", i);
        last[i % 2] = o[i].order;
        h_outcome_clear(&o[i]);
    }
}

Test(pool, print_does_not_corrupt_frames)
{
    h_start_workers(1);
    outcome o;
    h_exec(&o, "s1", "print_noise", "{\"n\": 200}");
    h_wait(&o, 10000);
    cr_assert(o.ok, "%s: %s", o.type, o.message);
    cr_expect_str_eq(json_string_value(o.value), "ok");
    h_outcome_clear(&o);
    cr_expect_eq(h_stats()->crashes, 0);
}

static bool replaced_unhealthy(void *arg)
{
    return h_stats()->restarts >= 1 && h_stats()->healthy_workers == 1;
}

Test(pool, unresponsive_worker_fails_health_check_and_is_replaced)
{
    sf_pool_config c;
    h_config(&c);
    c.pool_size = 1;
    c.health_check_interval_ms = 150;
    h_start(&c);
    outcome o;
    h_exec(&o, "s1", "noop", NULL);
    h_wait(&o, 10000);
    h_outcome_clear(&o);
    int pid = h_stats()->worker[0].pid;
    kill(pid, SIGSTOP); /* alive, but it will never answer a ping */
    cr_expect(h_run_until(replaced_unhealthy, NULL, 10000), "the frozen worker was not replaced");
    cr_expect_neq(h_stats()->worker[0].pid, pid);
    h_exec(&o, "s1", "noop", NULL);
    h_wait(&o, 10000);
    cr_expect(o.ok);
    h_outcome_clear(&o);
}

/* ---------------------------------------------------------------- worker caches */

#define COUNTER_SPEC "{\"kind\":\"callable\",\"entry\":\"snakefleet.examples:counter\"}"

/* The worker's own counters (the `stats` op), as JSON. */
static json_t *worker_stats(const char *session)
{
    outcome o;
    h_submit(&o, session, "stats", "", NULL, NULL, NULL);
    h_wait(&o, 10000);
    cr_assert(o.ok, "%s: %s", o.type, o.message);
    json_t *v = json_incref(o.value);
    h_outcome_clear(&o);
    return v;
}

/* One counter increment of `session`, sent its state the way the daemon does. */
static long long count_once(const char *session, long long n)
{
    char state[64];
    snprintf(state, sizeof(state), "{\"n\": %lld}", n);
    outcome o;
    h_submit(&o, session, "execute_program", "counter", "{}", COUNTER_SPEC, state);
    h_wait(&o, 10000);
    cr_assert(o.ok, "%s: %s", o.type, o.message);
    long long got = json_integer_value(json_object_get(o.state, "n"));
    h_outcome_clear(&o);
    return got;
}

Test(pool, spec_and_state_travel_only_when_the_worker_lacks_them)
{
    h_start_workers(1);
    long long n = 0;
    for (int i = 0; i < 50; i++)
        n = count_once("s", n);
    cr_expect_eq(n, 50);
    json_t *st = worker_stats("s");
    /* Built once; from the second call on, the state came from the worker's cache. */
    cr_expect_eq(json_integer_value(json_object_get(st, "builds")), 1);
    cr_expect_eq(json_integer_value(json_object_get(st, "state_hits")), 49);
    json_decref(st);
    cr_expect_eq(h_stats()->stale_retries, 0);
}

Test(pool, a_state_changed_elsewhere_is_sent_in_full)
{
    h_start_workers(1);
    cr_expect_eq(count_once("s", 1), 2);
    /* The stored state is not what the worker returned (set_session_state ran). */
    cr_expect_eq(count_once("s", 10), 11);
    cr_expect_eq(count_once("s", 11), 12);
    json_t *st = worker_stats("s");
    cr_expect_eq(json_integer_value(json_object_get(st, "state_hits")), 1);
    json_decref(st);
}

Test(pool, a_worker_that_lost_its_cache_gets_the_call_again_in_full)
{
    static const char *const env[] = {"SNAKEFLEET_STATE_CACHE_MAX=2", NULL};
    sf_pool_config c;
    h_config(&c);
    c.pool_size = 1;
    c.extra_env = env;
    h_start(&c);
    cr_expect_eq(count_once("a", 0), 1);
    /* Two more sessions push a's state out of the worker's two-entry cache. */
    cr_expect_eq(count_once("b", 0), 1);
    cr_expect_eq(count_once("c", 0), 1);
    /* The pool believes the worker holds a's state and names it; the worker
     * answers stale_cache; the call goes again with the state and succeeds. */
    cr_expect_eq(count_once("a", 1), 2);
    cr_expect_eq(h_stats()->stale_retries, 1);
    cr_expect_eq(count_once("a", 2), 3);
    cr_expect_eq(h_stats()->stale_retries, 1);
    cr_expect_eq(h_stats()->total_errors, 0);
}

Test(pool, a_new_spec_version_is_built_once)
{
    h_start_workers(1);
    const char *specs[] = {COUNTER_SPEC,
                           "{\"kind\":\"callable\",\"entry\":\"snakefleet.examples:echo\"}"};
    for (int v = 0; v < 2; v++) {
        for (int i = 0; i < 3; i++) {
            outcome o;
            h_submit(&o, "s", "execute_program", "p", "{}", specs[v], NULL);
            h_wait(&o, 10000);
            cr_assert(o.ok, "%s: %s", o.type, o.message);
            h_outcome_clear(&o);
        }
    }
    json_t *st = worker_stats("s");
    cr_expect_eq(json_integer_value(json_object_get(st, "builds")), 2);
    json_decref(st);
}

Test(pool, a_session_moves_on_after_a_cached_call_crashes_its_worker)
{
    h_start_workers(1);
    cr_expect_eq(count_once("s", 0), 1);
    /* Same worker, same state: this call goes without its state, then kills the worker. */
    outcome o;
    h_exec_state(&o, "s", "crash", "{\"how\": \"exit\"}", "{\"n\": 1}");
    h_wait(&o, 10000);
    cr_expect_not(o.ok);
    cr_expect_str_eq(o.type, "worker_crashed");
    h_outcome_clear(&o);
    cr_expect_eq(count_once("s", 1), 2);
}

/* ---------------------------------------------------------------- orphans */

static bool pid_gone(int pid)
{
    char path[64], stat[256] = "";
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return true;
    size_t n = fread(stat, 1, sizeof(stat) - 1, f);
    fclose(f);
    stat[n] = '\0';
    const char *close_paren = strrchr(stat, ')');
    /* a zombie is not gone: it waits for its parent to reap it */
    return close_paren == NULL || close_paren[2] == 'X';
}

static void orphan_is_reaped(bool new_session)
{
    sf_pool_config c;
    h_config(&c);
    c.pool_size = 1;
    c.zygote = true; /* the pool becomes a subreaper: orphans come to us */
    c.preload = "json";
    h_start(&c);
    outcome o;
    h_exec(&o, "s", "spawn_sleeper",
           new_session ? "{\"seconds\": 0.3, \"new_session\": true}" : "{\"seconds\": 0.3}");
    h_wait(&o, 10000);
    cr_assert(o.ok, "%s: %s", o.type, o.message);
    int orphan = (int)json_integer_value(o.value);
    h_outcome_clear(&o);
    /* The worker dies; its child is re-parented to us (the subreaper) and exits later. */
    h_exec(&o, "s", "crash", "{\"how\": \"exit\"}");
    h_wait(&o, 10000);
    h_outcome_clear(&o);
    double end = h_now_ms() + 5000;
    while (!pid_gone(orphan) && h_now_ms() < end)
        h_sleep_loop(50);
    cr_expect(pid_gone(orphan), "pid %d is still there (a zombie no one reaped?)", orphan);
    /* A child of this process outside the pool's process group stays ours to wait for. */
    pid_t mine = fork();
    if (mine == 0) {
        usleep(100000);
        _exit(7);
    }
    h_sleep_loop(400);
    int status = 0;
    cr_expect_eq(waitpid(mine, &status, 0), mine, "the pool reaped a child that is not its own");
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 7);
}

Test(pool, processes_user_code_leaves_behind_are_reaped)
{
    orphan_is_reaped(false);
}

Test(pool, processes_user_code_leaves_behind_in_a_new_session_are_reaped)
{
    orphan_is_reaped(true);
}

/* ---------------------------------------------------------------- review findings */

Test(pool, a_repeated_create_program_always_carries_its_spec)
{
    h_start_workers(1);
    for (int i = 0; i < 2; i++) {
        outcome o;
        h_submit(&o, "s", "create_program", "p", NULL, COUNTER_SPEC, NULL);
        h_wait(&o, 10000);
        cr_expect(o.ok, "create %d: %s: %s", i, o.type, o.message);
        h_outcome_clear(&o);
    }
}

Test(pool, a_call_the_worker_cannot_read_fails_at_once)
{
    h_start_workers(1);
    outcome o;
    h_submit(&o, "s", "no_such_op", "", NULL, NULL, NULL);
    h_wait(&o, 10000);
    cr_expect_not(o.ok);
    cr_expect_str_eq(o.type, "internal");
    cr_expect(strstr(o.message, "no_such_op") != NULL, "%s", o.message);
    h_outcome_clear(&o);
    cr_expect_eq(count_once("s", 0), 1, "the worker serves on");
}

Test(pool, a_cached_call_behind_a_crash_goes_again_in_full)
{
    sf_pool_config c;
    h_config(&c);
    c.pool_size = 1;
    c.pipeline_depth = 2;
    c.checkout_timeout_ms = 3000;
    h_start(&c);
    cr_expect_eq(count_once("s", 0), 1);
    /* One turn: another session's call that kills the worker, then s's call,
     * cached (same worker, same state) and pipelined behind it. */
    outcome x, o;
    h_exec_state(&x, "x", "crash", "{\"how\": \"exit\"}", NULL);
    h_submit(&o, "s", "execute_program", "counter", "{}", COUNTER_SPEC, "{\"n\": 1}");
    h_wait(&x, 10000);
    h_wait(&o, 10000);
    cr_expect_not(x.ok);
    cr_expect(o.ok, "%s: %s", o.type, o.message);
    cr_expect_eq(json_integer_value(json_object_get(o.state, "n")), 2);
    h_outcome_clear(&x);
    h_outcome_clear(&o);
}

Test(pool, a_session_whose_call_crashed_is_cached_again_later)
{
    h_start_workers(1);
    cr_expect_eq(count_once("s", 0), 1);
    outcome o;
    h_exec_state(&o, "s", "crash", "{\"how\": \"exit\"}", "{\"n\": 1}");
    h_wait(&o, 10000);
    h_outcome_clear(&o);
    cr_expect_eq(count_once("s", 1), 2); /* the new worker gets the state in full */
    cr_expect_eq(count_once("s", 2), 3); /* and then only its version */
    json_t *st = worker_stats("s");
    cr_expect_eq(json_integer_value(json_object_get(st, "state_hits")), 1);
    json_decref(st);
    cr_expect_eq(h_stats()->active_sessions, 0, "no session is left active");
}

/* ---------------------------------------------------------------- stopping */

Test(pool, calls_queued_when_the_pool_stops_are_answered_once)
{
    h_start_workers(1);
    /* Before the worker is ready both wait in the queue; the stop answers them
     * (their session entry must outlive the deferred answers). */
    outcome a, b;
    h_submit(&a, "fresh", "ping", "", NULL, NULL, NULL);
    h_submit(&b, "fresh", "ping", "", NULL, NULL, NULL);
    sf_pool_stop(h_pool, NULL, NULL);
    cr_assert(h_run_until(h_pool_stopped, NULL, 10000));
    h_sleep_loop(50);
    cr_expect(a.done && b.done, "each queued call is answered");
    cr_expect_str_eq(a.type, "unavailable");
    cr_expect_str_eq(b.type, "unavailable");
    cr_expect_eq(a.order + b.order, 3, "once each");
    h_outcome_clear(&a);
    h_outcome_clear(&b);
}

Test(pool, calls_pipelined_behind_a_killed_worker_at_stop_are_answered)
{
    sf_pool_config c;
    h_config(&c);
    c.pool_size = 1;
    c.pipeline_depth = 2;
    c.shutdown_timeout_ms = 500;
    h_start(&c);
    cr_expect_eq(count_once("warm", 0), 1);
    outcome a, b;
    h_exec(&a, "A", "sleep", "{\"seconds\": 5}");
    h_exec(&b, "B", "sleep", "{\"seconds\": 5}");
    h_sleep_loop(300); /* both written to the worker's pipe */
    sf_pool_stop(h_pool, NULL, NULL);
    cr_assert(h_run_until(h_pool_stopped, NULL, 10000));
    h_sleep_loop(50);
    cr_expect(a.done, "the running call is answered");
    cr_expect(b.done, "the call pipelined behind it is answered");
    cr_expect_not(b.ok);
    h_outcome_clear(&a);
    h_outcome_clear(&b);
}
