/*
 * test_pool_lifecycle.c — the pool's processes: graceful stop, no orphans
 * after a SIGKILLed supervisor, a wrong interpreter, a worker that never
 * becomes ready, lazy start, the zygote, draining on stop.
 */
#include <fcntl.h>

#include "pool_harness.h"

TestSuite(lifecycle, .fini = h_stop, .timeout = 60);

static bool all_gone(const int *pids, int n)
{
    for (int i = 0; i < n; i++) {
        if (sf_proc_alive(pids[i]))
            return false;
    }
    return true;
}

static int worker_pids(int *pids, int cap)
{
    sf_pool_stats *s = h_stats();
    int n = 0;
    for (int i = 0; i < s->nworkers && n < cap; i++)
        pids[n++] = s->worker[i].pid;
    return n;
}

static bool all_ready(void *arg)
{
    sf_pool_stats *s = h_stats();
    return s->workers == *(int *)arg && s->idle == *(int *)arg;
}

Test(lifecycle, graceful_stop_leaves_no_worker_process)
{
    sf_pool_config c;
    h_config(&c);
    c.pool_size = 3;
    h_start(&c);
    int want = 3;
    cr_assert(h_run_until(all_ready, &want, 15000));
    int pids[8];
    int n = worker_pids(pids, 8);
    cr_assert_eq(n, 3);
    h_stop();
    cr_expect(all_gone(pids, n), "a worker outlived the pool's stop");
}

Test(lifecycle, stop_drains_calls_in_flight)
{
    sf_pool_config c;
    h_config(&c);
    c.pool_size = 1;
    h_start(&c);
    int want = 1;
    cr_assert(h_run_until(all_ready, &want, 15000));
    outcome o, queued;
    h_exec(&o, "s1", "sleep", "{\"seconds\": 0.3}");
    h_sleep_loop(100);
    h_exec(&queued, "s2", "noop", NULL);
    sf_pool_stop(h_pool, NULL, NULL);
    cr_assert(h_run_until(h_pool_stopped, NULL, 10000));
    cr_expect(o.done && o.ok, "the call in flight was not drained: %s %s", o.type, o.message);
    cr_expect(queued.done && !queued.ok);
    cr_expect_str_eq(queued.type, "unavailable");
    h_outcome_clear(&o);
    h_outcome_clear(&queued);
}

/* Runs a pool in a child process, reports its worker pids, then waits to be killed. */
static void child_pool(int report, bool zygote)
{
    sf_pool_config c;
    h_config(&c);
    c.pool_size = 2;
    c.zygote = zygote;
    c.preload = zygote ? "json" : NULL;
    sf_log_set_level(SF_LOG_ERROR);
    h_base = event_base_new();
    char err[256];
    h_pool = sf_pool_new(h_base, &c, err, sizeof(err));
    if (h_pool == NULL || sf_pool_start(h_pool, err, sizeof(err)) < 0)
        _exit(3);
    int want = 2;
    if (!h_run_until(all_ready, &want, 15000))
        _exit(4);
    int pids[4];
    int n = worker_pids(pids, 4);
    if (write(report, pids, sizeof(int) * (size_t)n) < 0)
        _exit(5);
    close(report);
    h_sleep_loop(60000);
    _exit(0);
}

static void sigkill_leaves_no_orphans(bool zygote)
{
    int p[2];
    cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
    pid_t child = fork();
    cr_assert_geq(child, 0);
    if (child == 0) {
        close(p[0]);
        child_pool(p[1], zygote);
    }
    close(p[1]);
    int pids[4];
    ssize_t got = 0;
    while (got < (ssize_t)(2 * sizeof(int))) {
        ssize_t n = read(p[0], (char *)pids + got, 2 * sizeof(int) - (size_t)got);
        if (n <= 0)
            break;
        got += n;
    }
    close(p[0]);
    cr_assert_eq(got, (ssize_t)(2 * sizeof(int)), "the child pool did not report its workers");
    cr_assert(!all_gone(pids, 2));
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    double end = h_now_ms() + 5000;
    while (!all_gone(pids, 2) && h_now_ms() < end)
        usleep(20000);
    cr_expect(all_gone(pids, 2), "a worker outlived its SIGKILLed supervisor");
    for (int i = 0; i < 2; i++)
        kill(pids[i], SIGKILL); /* never leave one behind, even on failure */
}

Test(lifecycle, sigkilled_supervisor_leaves_no_exec_worker)
{
    sigkill_leaves_no_orphans(false);
}

Test(lifecycle, sigkilled_supervisor_leaves_no_zygote_worker)
{
    sigkill_leaves_no_orphans(true);
}

Test(lifecycle, wrong_python_path_is_a_clear_error)
{
    sf_pool_config c;
    h_config(&c);
    c.python = "/nonexistent/bin/python3";
    struct event_base *base = event_base_new();
    char err[256] = "";
    sf_pool *p = sf_pool_new(base, &c, err, sizeof(err));
    cr_assert(p);
    cr_expect_eq(sf_pool_start(p, err, sizeof(err)), -1);
    cr_expect(strstr(err, "/nonexistent/bin/python3") != NULL, "%s", err);
    sf_pool_free(p);
    event_base_free(base);
}

Test(lifecycle, relative_python_path_is_rejected)
{
    sf_pool_config c;
    h_config(&c);
    c.python = "python3";
    struct event_base *base = event_base_new();
    char err[256] = "";
    cr_expect_null(sf_pool_new(base, &c, err, sizeof(err)));
    cr_expect(strstr(err, "absolute") != NULL, "%s", err);
    event_base_free(base);
}

static bool degraded(void *arg)
{
    return h_stats()->degraded;
}

Test(lifecycle, never_ready_worker_backs_off_and_degrades_without_spinning)
{
    sf_pool_config c;
    h_config(&c);
    c.pool_size = 1;
    c.worker_module = "snakefleet_test_silent";
    c.python_path = SF_FIXTURES_DIR;
    c.startup_timeout_ms = 200;
    c.restart_backoff_ms = 50;
    c.restart_backoff_max_ms = 400;
    c.crash_loop_threshold = 3;
    c.checkout_timeout_ms = 400;
    h_start(&c);
    outcome o;
    h_exec(&o, "s1", "noop", NULL);
    h_wait(&o, 5000);
    cr_expect_not(o.ok);
    cr_expect_str_eq(o.type, "checkout_timeout");
    h_outcome_clear(&o);
    cr_expect(h_run_until(degraded, NULL, 5000), "a crash loop did not mark the pool degraded");
    h_sleep_loop(2000);
    /* 3 s at >= 200 ms per attempt plus growing backoff: a handful of spawns, not hundreds. */
    uint64_t spawned = h_stats()->spawned;
    cr_expect_leq(spawned, 12, "spawned %llu workers: the pool is spinning",
                  (unsigned long long)spawned);
    cr_expect_geq(spawned, 3);
}

Test(lifecycle, lazy_pool_starts_workers_on_demand)
{
    sf_pool_config c;
    h_config(&c);
    c.lazy = true;
    c.pool_size = 2;
    h_start(&c);
    h_sleep_loop(200);
    cr_expect_eq(h_stats()->workers, 0);
    outcome o;
    h_exec(&o, "s1", "noop", NULL);
    h_wait(&o, 10000);
    cr_expect(o.ok, "%s: %s", o.type, o.message);
    cr_expect_eq(h_stats()->workers, 1);
    h_outcome_clear(&o);
}

static int parent_of(int pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    int ppid = -1;
    char st;
    if (p && sscanf(p + 2, "%c %d", &st, &ppid) == 2)
        return ppid;
    return -1;
}

Test(lifecycle, zygote_forks_workers_that_we_reap)
{
    sf_pool_config c;
    h_config(&c);
    c.pool_size = 2;
    c.zygote = true;
    c.preload = "json,decimal";
    h_start(&c);
    int want = 2;
    cr_assert(h_run_until(all_ready, &want, 15000));
    int pids[4];
    int n = worker_pids(pids, 4);
    for (int i = 0; i < n; i++)
        cr_expect_eq(parent_of(pids[i]), getpid(), "worker %d was not re-parented to us", pids[i]);
    outcome o;
    h_exec(&o, "s1", "crash", "{\"how\": \"abort\"}");
    h_wait(&o, 10000);
    cr_expect_str_eq(o.type, "worker_crashed");
    cr_expect(strstr(o.message, "abort") != NULL, "%s", o.message);
    h_outcome_clear(&o);
    h_exec(&o, "s1", "add", "{\"a\": 1, \"b\": 1}");
    h_wait(&o, 10000);
    cr_expect(o.ok, "%s: %s", o.type, o.message);
    h_outcome_clear(&o);
    cr_expect_eq(h_stats()->crashes, 1);
}

static void preload_is_imported_before_ready(bool zygote)
{
    sf_pool_config c;
    h_config(&c);
    c.pool_size = 1;
    c.zygote = zygote;
    c.preload = "snakefleet_test_marker";
    c.python_path = SF_FIXTURES_DIR;
    h_start(&c);
    outcome o;
    h_exec(&o, "s1", "loaded", "{\"module\": \"snakefleet_test_marker\"}");
    h_wait(&o, 10000);
    cr_assert(o.ok, "%s: %s", o.type, o.message);
    cr_expect(json_is_true(o.value), "the preload module was not imported");
    h_outcome_clear(&o);
}

Test(lifecycle, exec_workers_import_preload)
{
    preload_is_imported_before_ready(false);
}

Test(lifecycle, zygote_workers_inherit_preload)
{
    preload_is_imported_before_ready(true);
}

/* Writes the module sf_reload_mod.py into dir: v1 returns `v1`; with v2, a v2 too. */
static void write_reload_module(const char *dir, const char *v1, bool v2)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/sf_reload_mod.py", dir);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fprintf(f,
            "import time\n\n\ndef v1(ctx, seconds=0):\n    time.sleep(seconds)\n"
            "    return '%s'\n",
            v1);
    if (v2)
        fprintf(f, "\n\ndef v2(ctx):\n    return 'new'\n");
    fclose(f);
}

static void exec_entry(outcome *o, const char *session, const char *entry, const char *args)
{
    char spec[160];
    snprintf(spec, sizeof(spec), "{\"kind\":\"callable\",\"entry\":\"sf_reload_mod:%s\"}", entry);
    h_submit(o, session, "execute_program", entry, args, spec, NULL);
}

typedef struct old_pids {
    int pids[8], n;
} old_pids;

/* Every worker is ready and none of them is one of the old pids. */
static bool all_replaced(void *arg)
{
    old_pids *old = arg;
    sf_pool_stats *s = h_stats();
    if (s->workers != 2 || s->idle != 2)
        return false;
    for (int i = 0; i < s->nworkers; i++)
        for (int j = 0; j < old->n; j++)
            if (s->worker[i].pid == old->pids[j])
                return false;
    return true;
}

/*
 * Program code changed on disk under a running pool: after sf_pool_reload a
 * new function is found and a changed one runs its new code, while the call
 * in flight at the reload finishes on the old worker (nothing cut short).
 * With a zygote that preloaded the module, the zygote is replaced too.
 */
static void reload_picks_up_new_code(bool zygote)
{
    char dir[] = "/tmp/sf-reload-XXXXXX";
    cr_assert(mkdtemp(dir));
    write_reload_module(dir, "old", false);
    sf_pool_config c;
    h_config(&c);
    c.python_path = dir;
    c.zygote = zygote;
    c.preload = zygote ? "sf_reload_mod" : NULL;
    h_start(&c);
    int want = 2;
    cr_assert(h_run_until(all_ready, &want, 15000));
    outcome o, running, missing;
    exec_entry(&missing, "s1", "v2", "{}");
    h_wait(&missing, 10000);
    cr_expect(!missing.ok && strcmp(missing.type, "invalid_program") == 0,
              "v2 is not there yet: %s", missing.type);
    exec_entry(&running, "s2", "v1", "{\"seconds\": 0.5}");
    h_sleep_loop(100); /* it is running */
    old_pids old;
    old.n = worker_pids(old.pids, 8);
    write_reload_module(dir, "changed", true);
    cr_assert_eq(sf_pool_reload(h_pool), 0);
    h_wait(&running, 10000);
    cr_expect(running.ok, "the call in flight at the reload: %s %s", running.type, running.message);
    cr_expect(running.value && strcmp(json_string_value(running.value), "old") == 0,
              "it finished on its old worker, with the old code");
    cr_assert(h_run_until(all_replaced, &old, 20000), "every worker replaced");
    cr_expect_eq(h_stats()->reloads, 1);
    exec_entry(&o, "s1", "v2", "{}");
    h_wait(&o, 10000);
    cr_expect(o.ok && o.value && strcmp(json_string_value(o.value), "new") == 0,
              "the new function: %s %s", o.type, o.message);
    h_outcome_clear(&o);
    exec_entry(&o, "s3", "v1", "{}");
    h_wait(&o, 10000);
    cr_expect(o.ok && o.value && strcmp(json_string_value(o.value), "changed") == 0,
              "the changed function runs its new code");
    h_outcome_clear(&o);
    h_outcome_clear(&running);
    h_outcome_clear(&missing);
    h_stop();
    char cmd[96];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    cr_expect_eq(system(cmd), 0);
}

Test(lifecycle, reload_picks_up_changed_code)
{
    reload_picks_up_new_code(false);
}

Test(lifecycle, reload_replaces_the_zygote_that_preloaded_the_code)
{
    reload_picks_up_new_code(true);
}
