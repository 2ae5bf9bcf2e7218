/*
 * status.c — `snakefleet status`: the fleet as its telemetry topic shows it.
 *
 * Every supervisor produces a snapshot (schemas/README.md, "Telemetry
 * snapshot") to topics.telemetry every telemetry.interval, keyed by its id.
 * status reads the tail of that topic — the last --last messages of each
 * partition, from their end offsets at start — keeps the newest snapshot per
 * supervisor (by ts_ms) and prints one row each plus a fleet total; --json
 * prints {"snapshots": [...], "fleet": {...}} instead. A supervisor whose
 * snapshot is older than three intervals is marked stale (it may be gone):
 * it keeps its row, but the fleet totals count live supervisors only, or a
 * supervisor that restarted under a new id would be counted twice (its old
 * snapshot lingers in the topic's tail). Staleness is judged against one
 * clock reading, so the rows and the totals agree.
 * Nothing is committed and no group is joined: status is read-only.
 *
 * Exit status: 0 snapshots found, 1 none, 4 Kafka failure, 2 usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "args.h"
#include "cli.h"
#include "kclient.h"

#define CMD "status"

static const char USAGE[] =
    "usage: snakefleet status [--timeout-ms T] [--last N] [--json]\n"
    "                         [-c FILE] [--kafka.KEY=VALUE ...] [--topics.telemetry=TOPIC]\n"
    "\n"
    "  --timeout-ms T  how long to read the telemetry topic (default 5000)\n"
    "  --last N        messages read back from the end of each partition (default 50)\n"
    "  --json          print {\"snapshots\": [...], \"fleet\": {...}} as JSON\n"
    "\n"
    "A supervisor with no snapshot for over 3 telemetry intervals is stale: it keeps\n"
    "its row (AGE marked *) and is listed in fleet.stale, but is not in the totals.\n";

/* Counters summed into the fleet line, in table order after the supervisor column. */
static const char *const SUMMED[] = {
    "pool_size",   "busy_workers",     "idle_workers",   "healthy_workers", "active_sessions",
    "queue_depth", "in_flight",        "total_commands", "total_errors",    "restarts",
    "dlq_count",   "overflow_workers", "recycles"};
#define NSUMMED (sizeof(SUMMED) / sizeof(SUMMED[0]))

static long long num(json_t *snap, const char *key)
{
    json_t *v = json_object_get(snap, key);
    return json_is_integer(v) ? (long long)json_integer_value(v) : 0;
}

static long long total_lag(json_t *snap)
{
    long long sum = 0;
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(snap, "lag"), k, v)
    {
        if (json_is_integer(v) && json_integer_value(v) > 0)
            sum += json_integer_value(v);
    }
    return sum;
}

/* Keeps snap in latest[supervisor] when it is newer. Takes snap's reference. */
static void keep_latest(json_t *latest, json_t *snap)
{
    const char *id = json_string_value(json_object_get(snap, "supervisor"));
    if (id == NULL || !json_is_integer(json_object_get(snap, "ts_ms"))) {
        json_decref(snap);
        return;
    }
    json_t *prev = json_object_get(latest, id);
    if (prev && num(prev, "ts_ms") > num(snap, "ts_ms")) {
        json_decref(snap);
        return;
    }
    json_object_set_new(latest, id, snap);
}

/* Reads partitions 0..n-1 from start[] up to end[] (or until the deadline). */
static int read_tail(rd_kafka_t *c, int n, const int64_t *end, int timeout_ms, json_t *latest,
                     long *bad)
{
    int64_t *pos = sf_xcalloc((size_t)n, sizeof(*pos));
    double deadline = args_now() + timeout_ms / 1000.0;
    int remaining = 0;
    for (int p = 0; p < n; p++)
        pos[p] = -1;
    for (;;) {
        remaining = 0;
        for (int p = 0; p < n; p++)
            remaining += pos[p] + 1 < end[p];
        if (remaining == 0 || args_now() >= deadline)
            break;
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 100);
        if (m == NULL)
            continue;
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                args_fail(CMD, "telemetry consumer: %s", rd_kafka_message_errstr(m));
        } else {
            if (m->partition >= 0 && m->partition < n)
                pos[m->partition] = m->offset;
            msgpack_unpacked u;
            msgpack_unpacked_init(&u);
            sf_err e;
            if (sf_mp_unpack_map(&u, m->payload, m->len, &e) == 0)
                keep_latest(latest, sf_mp_to_json(&u.data));
            else
                (*bad)++;
            msgpack_unpacked_destroy(&u);
        }
        rd_kafka_message_destroy(m);
    }
    free(pos);
    return remaining;
}

/* A snapshot older than three telemetry intervals at now_ms: its supervisor may be gone. */
static bool is_stale(json_t *snap, int64_t now_ms, uint32_t interval_ms)
{
    return (double)(now_ms - num(snap, "ts_ms")) > 3.0 * interval_ms;
}

/* The fleet line: SUMMED and consumer lag over the live supervisors' latest snapshots. */
typedef struct fleet_total {
    long long sum[NSUMMED];
    long long lag;
    size_t live, stale;
} fleet_total;

static fleet_total fleet_sums(json_t *latest, int64_t now_ms, uint32_t interval_ms)
{
    fleet_total t;
    memset(&t, 0, sizeof(t));
    const char *id;
    json_t *s;
    json_object_foreach(latest, id, s)
    {
        if (is_stale(s, now_ms, interval_ms)) {
            t.stale++;
            continue;
        }
        t.live++;
        for (size_t i = 0; i < NSUMMED; i++)
            t.sum[i] += num(s, SUMMED[i]);
        t.lag += total_lag(s);
    }
    return t;
}

static void print_table(json_t *latest, int64_t now_ms, uint32_t interval_ms)
{
    printf("%-28s %7s %5s %9s %7s %8s %6s %6s %9s %7s %8s %5s %8s\n", "SUPERVISOR", "AGE", "POOL",
           "BUSY/IDLE", "HEALTHY", "SESSIONS", "QUEUE", "FLIGHT", "COMMANDS", "ERRORS", "RESTARTS",
           "DLQ", "LAG");
    fleet_total t = fleet_sums(latest, now_ms, interval_ms);
    const char *id;
    json_t *s;
    json_object_foreach(latest, id, s)
    {
        double age = (double)(now_ms - num(s, "ts_ms")) / 1000.0;
        char ageb[16], bi[32];
        snprintf(ageb, sizeof(ageb), "%.1fs%s", age, is_stale(s, now_ms, interval_ms) ? "*" : "");
        snprintf(bi, sizeof(bi), "%lld/%lld", num(s, "busy_workers"), num(s, "idle_workers"));
        printf("%-28.28s %7s %5lld %9s %7lld %8lld %6lld %6lld %9lld %7lld %8lld %5lld %8lld\n", id,
               ageb, num(s, "pool_size"), bi, num(s, "healthy_workers"), num(s, "active_sessions"),
               num(s, "queue_depth"), num(s, "in_flight"), num(s, "total_commands"),
               num(s, "total_errors"), num(s, "restarts"), num(s, "dlq_count"), total_lag(s));
    }
    const long long *sum = t.sum;
    char bi[32], label[40];
    snprintf(bi, sizeof(bi), "%lld/%lld", sum[1], sum[2]);
    snprintf(label, sizeof(label), "fleet (%zu)", t.live);
    printf("%-28s %7s %5lld %9s %7lld %8lld %6lld %6lld %9lld %7lld %8lld %5lld %8lld\n", label,
           "-", sum[0], bi, sum[3], sum[4], sum[5], sum[6], sum[7], sum[8], sum[9], sum[10], t.lag);
    if (t.stale)
        printf("* no snapshot for over 3 telemetry intervals (%u ms): stopped or stuck? "
               "%zu stale supervisor(s) not in the fleet total\n",
               interval_ms, t.stale);
}

/* {SUMMED..., "lag", "supervisors": live count, "stale": [ids not summed]}. */
static json_t *fleet_json(json_t *latest, int64_t now_ms, uint32_t interval_ms)
{
    fleet_total t = fleet_sums(latest, now_ms, interval_ms);
    json_t *f = json_object();
    for (size_t i = 0; i < NSUMMED; i++)
        json_object_set_new(f, SUMMED[i], json_integer(t.sum[i]));
    json_object_set_new(f, "lag", json_integer(t.lag));
    json_object_set_new(f, "supervisors", json_integer((json_int_t)t.live));
    json_t *stale = json_array();
    const char *id;
    json_t *s;
    json_object_foreach(latest, id, s)
    {
        if (is_stale(s, now_ms, interval_ms))
            json_array_append_new(stale, json_string(id));
    }
    json_object_set_new(f, "stale", stale);
    return f;
}

int cmd_status(int argc, char **argv)
{
    sf_config cfg;
    if (cli_load_config(&cfg, &argc, argv) < 0)
        return CLI_EXIT_USAGE;
    long long timeout_ms = 5000, last = 50;
    bool as_json = false;
    const cli_flag flags[] = {{"timeout-ms", FLAG_INT, &timeout_ms, 1, 3600000},
                              {"last", FLAG_INT, &last, 1, 1000000},
                              {"json", FLAG_ON, &as_json, 0, 0},
                              {NULL, 0, NULL, 0, 0}};
    int parsed = args_parse(CMD, USAGE, argc, argv, flags);
    if (parsed != ARGS_OK)
        return parsed;

    char err[1024];
    rd_kafka_t *c = kclient_consumer_new(&cfg, CMD, err, sizeof(err));
    if (c == NULL) {
        args_fail(CMD, "%s", err);
        return CLI_EXIT_USAGE;
    }
    const char *topic = cfg.telemetry_topic;
    int rc = CLI_EXIT_KAFKA;
    int64_t *low = NULL, *high = NULL, *start = NULL;
    json_t *latest = json_object();
    int n = kclient_partitions(c, topic, (int)timeout_ms, err, sizeof(err));
    if (n < 0)
        goto fail;
    low = sf_xcalloc((size_t)n, sizeof(*low));
    high = sf_xcalloc((size_t)n, sizeof(*high));
    start = sf_xcalloc((size_t)n, sizeof(*start));
    if (kclient_watermarks(c, topic, n, low, high, (int)timeout_ms, err, sizeof(err)) < 0)
        goto fail;
    for (int p = 0; p < n; p++)
        start[p] = high[p] - last > low[p] ? high[p] - last : low[p];
    if (kclient_assign(c, topic, n, start, err, sizeof(err)) < 0)
        goto fail;
    long bad = 0;
    int unread = read_tail(c, n, high, (int)timeout_ms, latest, &bad);
    if (unread)
        fprintf(stderr, "status: %d partition(s) of %s not read to the end in %lld ms\n", unread,
                topic, timeout_ms);
    if (bad)
        fprintf(stderr, "status: skipped %ld undecodable message(s) on %s\n", bad, topic);
    int64_t now_ms = args_wall_ms();
    if (as_json) {
        json_t *arr = json_array();
        const char *id;
        json_t *s;
        json_object_foreach(latest, id, s)
        {
            json_array_append(arr, s);
        }
        json_t *doc = json_pack("{s:o, s:o}", "snapshots", arr, "fleet",
                                fleet_json(latest, now_ms, cfg.telemetry_interval_ms));
        char *txt = json_dumps(doc, JSON_COMPACT);
        printf("%s\n", txt);
        free(txt);
        json_decref(doc);
    } else if (json_object_size(latest) > 0) {
        print_table(latest, now_ms, cfg.telemetry_interval_ms);
    }
    if (json_object_size(latest) == 0)
        fprintf(stderr,
                "status: no telemetry on %s in the last %lld messages of each partition "
                "(no supervisor running?)\n",
                topic, last);
    rc = json_object_size(latest) > 0 ? CLI_EXIT_OK : CLI_EXIT_REPLY_ERR;
    goto out;
fail:
    args_fail(CMD, "%s", err);
out:
    json_decref(latest);
    free(low);
    free(high);
    free(start);
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
    return rc;
}
