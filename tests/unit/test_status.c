/*
 * test_status.c — `snakefleet status`'s fleet line (cli/status.c) without
 * Kafka: latest snapshots per supervisor go in as JSON, the table and the
 * --json "fleet" object come out. The rule under test: a stale supervisor
 * (no snapshot for over three telemetry intervals) keeps its row but is not
 * summed, so one live 4-worker supervisor beside three stale ones reads as a
 * fleet of one with a pool of 4, not 16.
 *
 * status.c is included, not linked, to reach its static functions; the
 * subcommand's entry point is never called here.
 */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <stdio.h>
#include <string.h>

#include "status.c"

/* cmd_status's config loader lives in cli/main.c, which has main(); unused here. */
int cli_load_config(sf_config *cfg, int *argc, char **argv)
{
    return -1;
}

#define NOW_MS   ((int64_t)1800000000000)
#define INTERVAL 5000u

/* A snapshot of a pool_size-worker supervisor taken age_ms before NOW_MS. */
static json_t *snapshot(const char *id, int64_t age_ms, int pool_size, int busy, int lag)
{
    return json_pack("{s:s, s:I, s:i, s:i, s:i, s:i, s:i, s:i, s:{s:i, s:i}}", "supervisor", id,
                     "ts_ms", (json_int_t)(NOW_MS - age_ms), "pool_size", pool_size, "busy_workers",
                     busy, "idle_workers", pool_size - busy, "healthy_workers", pool_size,
                     "total_commands", 100, "restarts", 1, "lag", "0", lag, "1", lag);
}

/* One live 4-worker supervisor and three that stopped a minute ago (issue 22.2). */
static json_t *one_live_three_stale(void)
{
    json_t *latest = json_object();
    json_object_set_new(latest, "host-a:1", snapshot("host-a:1", 1200, 4, 1, 5));
    json_object_set_new(latest, "host-a:2", snapshot("host-a:2", 61000, 4, 0, 7));
    json_object_set_new(latest, "host-a:3", snapshot("host-a:3", 62000, 4, 0, 7));
    json_object_set_new(latest, "host-a:4", snapshot("host-a:4", 63000, 4, 0, 7));
    return latest;
}

static long long get(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    cr_assert(json_is_integer(v), "fleet.%s is not an integer", key);
    return (long long)json_integer_value(v);
}

Test(status, json_fleet_sums_live_supervisors_only)
{
    json_t *latest = one_live_three_stale();
    json_t *f = fleet_json(latest, NOW_MS, INTERVAL);
    cr_expect_eq(get(f, "supervisors"), 1);
    cr_expect_eq(get(f, "pool_size"), 4);
    cr_expect_eq(get(f, "busy_workers"), 1);
    cr_expect_eq(get(f, "idle_workers"), 3);
    cr_expect_eq(get(f, "healthy_workers"), 4);
    cr_expect_eq(get(f, "total_commands"), 100);
    cr_expect_eq(get(f, "restarts"), 1);
    cr_expect_eq(get(f, "lag"), 10);
    json_t *stale = json_object_get(f, "stale");
    cr_assert(json_is_array(stale));
    cr_assert_eq(json_array_size(stale), 3);
    cr_expect_str_eq(json_string_value(json_array_get(stale, 0)), "host-a:2");
    cr_expect_str_eq(json_string_value(json_array_get(stale, 2)), "host-a:4");
    json_decref(f);
    json_decref(latest);
}

Test(status, stale_means_over_three_intervals)
{
    json_t *latest = json_object();
    json_object_set_new(latest, "at", snapshot("at", 3 * INTERVAL, 2, 0, 0));
    json_object_set_new(latest, "past", snapshot("past", 3 * INTERVAL + 1, 8, 0, 0));
    json_t *f = fleet_json(latest, NOW_MS, INTERVAL);
    cr_expect_eq(get(f, "supervisors"), 1);
    cr_expect_eq(get(f, "pool_size"), 2);
    cr_expect_eq(json_array_size(json_object_get(f, "stale")), 1);
    json_decref(f);
    json_decref(latest);
}

Test(status, all_stale_sums_to_zero)
{
    json_t *latest = json_object();
    json_object_set_new(latest, "gone", snapshot("gone", 600000, 4, 4, 9));
    json_t *f = fleet_json(latest, NOW_MS, INTERVAL);
    cr_expect_eq(get(f, "supervisors"), 0);
    cr_expect_eq(get(f, "pool_size"), 0);
    cr_expect_eq(get(f, "busy_workers"), 0);
    cr_expect_eq(get(f, "lag"), 0);
    cr_expect_eq(json_array_size(json_object_get(f, "stale")), 1);
    json_decref(f);
    json_decref(latest);
}

Test(status, table_lists_stale_rows_but_totals_the_live, .init = cr_redirect_stdout)
{
    json_t *latest = one_live_three_stale();
    print_table(latest, NOW_MS, INTERVAL);
    fflush(stdout);
    json_decref(latest);

    char out[4096];
    FILE *f = cr_get_redirected_stdout();
    size_t n = fread(out, 1, sizeof(out) - 1, f);
    out[n] = '\0';
    /* Every supervisor keeps its row; the stale ones are marked. */
    cr_expect(strstr(out, "host-a:1 ") != NULL, "%s", out);
    cr_expect(strstr(out, "1.2s ") != NULL, "%s", out);
    cr_expect(strstr(out, "61.0s*") != NULL, "%s", out);
    cr_expect(strstr(out, "63.0s*") != NULL, "%s", out);
    /* The fleet line: one supervisor, a pool of 4, busy/idle 1/3, lag 10. */
    const char *fleet = strstr(out, "fleet (");
    cr_assert(fleet != NULL, "%s", out);
    char label[16];
    long long pool, lag;
    char dash[4], bi[16];
    long long healthy, sessions, queue, flight, commands, errors, restarts, dlq;
    cr_assert_eq(
        sscanf(fleet, "fleet (%15[^)]) %3s %lld %15s %lld %lld %lld %lld %lld %lld %lld %lld %lld",
               label, dash, &pool, bi, &healthy, &sessions, &queue, &flight, &commands, &errors,
               &restarts, &dlq, &lag),
        13, "%s", fleet);
    cr_expect_str_eq(label, "1");
    cr_expect_eq(pool, 4);
    cr_expect_str_eq(bi, "1/3");
    cr_expect_eq(healthy, 4);
    cr_expect_eq(commands, 100);
    cr_expect_eq(restarts, 1);
    cr_expect_eq(lag, 10);
    cr_expect(strstr(out, "3 stale supervisor(s) not in the fleet total") != NULL, "%s", out);
}

Test(status, table_without_stale_has_no_footnote, .init = cr_redirect_stdout)
{
    json_t *latest = json_object();
    json_object_set_new(latest, "a", snapshot("a", 100, 2, 1, 0));
    json_object_set_new(latest, "b", snapshot("b", 200, 2, 1, 0));
    print_table(latest, NOW_MS, INTERVAL);
    fflush(stdout);
    json_decref(latest);

    char out[4096];
    FILE *f = cr_get_redirected_stdout();
    size_t n = fread(out, 1, sizeof(out) - 1, f);
    out[n] = '\0';
    cr_expect(strstr(out, "fleet (2)") != NULL, "%s", out);
    cr_expect(strstr(out, "*") == NULL, "%s", out);
}
