/*
 * stats.h — the one list of what a supervisor counts, and the names each
 * stat goes by: in the telemetry record (schemas/README.md, "Telemetry
 * snapshot"; telemetry.c packs it), in GET /health and in GET /metrics
 * (supervisor/snapshot.c renders both). Telemetry, /health and /metrics are
 * all generated from SF_STATS; a stat added here appears in all three, and
 * tests/unit/test_stats.c fails when one of them lacks a stat or names it
 * other than the list says.
 *
 * A row is X(kind, field, telemetry key, /health key, /metrics name, help):
 *
 *   kind      COUNTER (only grows; a Prometheus counter), GAUGE (a level),
 *             FLAG (a gauge of 0 or 1; a bool in telemetry and /health),
 *             LATENCY (a histogram: a map under "latency" in telemetry and
 *             /health, a summary in /metrics), LAG (per partition: the
 *             "topic/partition" map, the consumer_lag{partition} gauge)
 *   field     its member of sf_stats
 *   names     its telemetry key, its /health key and its /metrics name. They
 *             differ where a rendering has long called the stat its own way
 *             (total_commands, requests, snakefleet_requests_total): each name
 *             is kept, since dashboards, tests and `snakefleet status` read
 *             it, and the stat is still listed once
 *
 * The rows are in the order the telemetry record has always written its keys;
 * new stats go before the LAG and LATENCY rows.
 */
#ifndef SF_STATS_H
#define SF_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* clang-format off */
#define SF_STATS(X)                                                                                \
    X(GAUGE, active_sessions, "active_sessions", "active_sessions",                                \
      "snakefleet_active_sessions", "sessions with a request queue on this supervisor")            \
    X(GAUGE, pool_size, "pool_size", "pool_size", "snakefleet_pool_size", "configured pool size")  \
    X(COUNTER, requests, "total_commands", "requests", "snakefleet_requests_total",                \
      "requests answered")                                                                         \
    X(COUNTER, errors, "total_errors", "errors", "snakefleet_errors_total",                        \
      "requests answered with an error")                                                           \
    X(GAUGE, healthy_workers, "healthy_workers", "healthy_workers", "snakefleet_healthy_workers",  \
      "workers ready and answering")                                                               \
    X(GAUGE, busy_workers, "busy_workers", "busy_workers", "snakefleet_busy_workers",              \
      "workers running a call")                                                                    \
    X(GAUGE, idle_workers, "idle_workers", "idle_workers", "snakefleet_idle_workers",              \
      "workers ready with no call")                                                                \
    X(GAUGE, overflow_workers, "overflow_workers", "overflow_workers",                             \
      "snakefleet_overflow_workers", "overflow workers")                                           \
    X(GAUGE, queued, "queue_depth", "queued", "snakefleet_queue_depth",                            \
      "requests waiting in session queues")                                                        \
    X(GAUGE, in_flight, "in_flight", "in_flight", "snakefleet_in_flight",                          \
      "requests out of their session queue and not finished")                                      \
    X(COUNTER, restarts, "restarts", "restarts", "snakefleet_worker_restarts_total",               \
      "workers replaced after a crash or kill")                                                    \
    X(COUNTER, recycles, "recycles", "recycles", "snakefleet_worker_recycles_total",               \
      "workers recycled by count or RSS")                                                          \
    X(COUNTER, dlq, "dlq_count", "dlq", "snakefleet_dlq_total", "records sent to the DLQ")         \
    X(FLAG, degraded, "degraded", "degraded", "snakefleet_pool_degraded",                          \
      "1 when workers crash in a loop")                                                            \
    X(GAUGE, held, "held", "held", "snakefleet_held", "requests consumed and not finished")        \
    X(COUNTER, deadline_exceeded, "deadline_exceeded", "deadline_exceeded",                        \
      "snakefleet_deadline_exceeded_total", "requests past their deadline")                        \
    X(COUNTER, deduplicated, "deduplicated", "deduplicated", "snakefleet_deduplicated_total",      \
      "redelivered requests answered from cache")                                                  \
    X(COUNTER, fenced, "fenced", "fenced", "snakefleet_fenced_total",                              \
      "writes refused after losing a partition")                                                   \
    X(COUNTER, invalid, "invalid", "invalid", "snakefleet_invalid_total",                          \
      "undecodable or invalid requests")                                                           \
    X(COUNTER, poison, "poison", "poison", "snakefleet_poison_total",                              \
      "requests that crashed workers too often")                                                   \
    X(GAUGE, stored_sessions, "stored_sessions", "stored_sessions", "snakefleet_stored_sessions",  \
      "the fleet's sessions in Redis, as this supervisor's last create_session saw them")          \
    X(GAUGE, max_sessions, "max_sessions", "max_sessions", "snakefleet_max_sessions",              \
      "redis.max_sessions (0: no limit)")                                                          \
    X(COUNTER, session_limit_refusals, "session_limit_refusals", "session_limit_refusals",         \
      "snakefleet_session_limit_refusals_total", "create_session requests refused with "           \
      "session_limit")                                                                             \
    X(COUNTER, conflicts, "conflicts", "conflicts", "snakefleet_conflicts_total",                  \
      "state writes refused because another writer changed the session (run again)")              \
    X(COUNTER, wrong_partition, "wrong_partition", "wrong_partition",                              \
      "snakefleet_wrong_partition_total",                                                          \
      "requests whose key maps to another partition under topics.partitioner")                     \
    X(GAUGE, partitions, "partitions", "partitions", "snakefleet_partitions",                      \
      "assigned partitions")                                                                       \
    X(FLAG, redis_up, "redis_up", "redis", "snakefleet_redis_up",                                  \
      "1 when the session store is reachable")                                                     \
    X(GAUGE, workers, "workers", "workers", "snakefleet_workers", "worker processes")              \
    X(COUNTER, call_timeouts, "call_timeouts", "call_timeouts", "snakefleet_call_timeouts_total",  \
      "calls killed at request_timeout")                                                           \
    X(COUNTER, checkout_timeouts, "checkout_timeouts", "checkout_timeouts",                        \
      "snakefleet_checkout_timeouts_total", "calls that found no worker in time")                  \
    X(COUNTER, state_cache_hits, "state_cache_hits", "state_cache_hits",                           \
      "snakefleet_state_cache_hits_total",                                                         \
      "executes run on the kept state without a read (one Redis call)")                            \
    X(COUNTER, state_cache_misses, "state_cache_misses", "state_cache_misses",                     \
      "snakefleet_state_cache_misses_total", "executes whose session state had to be read")        \
    X(GAUGE, state_cache_bytes, "state_cache_bytes", "state_cache_bytes",                          \
      "snakefleet_state_cache_bytes", "bytes of session state kept (supervisor.state_cache)")      \
    X(LAG, lag, "lag", "lag", "snakefleet_consumer_lag",                                           \
      "records not yet finished, up to the partition end (absent while unknown)")                  \
    X(LATENCY, latency_total, "total", "total", "snakefleet_request_seconds", "consume to reply")  \
    X(LATENCY, queue_wait, "queue_wait", "queue_wait", "snakefleet_queue_wait_seconds",            \
      "wait for a worker")                                                                         \
    X(LATENCY, exec, "exec", "exec", "snakefleet_exec_seconds", "execution in a worker")
/* clang-format on */

typedef enum {
    SF_STAT_COUNTER,
    SF_STAT_GAUGE,
    SF_STAT_FLAG,
    SF_STAT_LATENCY,
    SF_STAT_LAG,
} sf_stat_kind;

/* A latency histogram as the renderings need it, in microseconds. */
typedef struct sf_latency {
    uint64_t count, sum_us, p50_us, p90_us, p99_us, max_us;
} sf_latency;

/* A histogram's keys in telemetry and /health, in order, with where each value is in sf_latency. */
typedef struct sf_latency_field {
    const char *key;
    size_t offset;
} sf_latency_field;

extern const sf_latency_field sf_latency_fields[];
extern const size_t sf_latency_nfields;

uint64_t sf_latency_value(const sf_latency *h, const sf_latency_field *f);

/* The lag of one partition; topic is borrowed (it must outlive the rendering). */
typedef struct sf_partition_lag {
    const char *topic;
    int32_t partition;
    int64_t lag; /* -1 while it cannot be known */
} sf_partition_lag;

/* As many as a supervisor may be assigned (MAX_PARTS, supervisor/daemon_internal.h). */
#define SF_STATS_MAX_PARTITIONS 1024

typedef struct sf_lags {
    size_t n;
    sf_partition_lag of[SF_STATS_MAX_PARTITIONS];
} sf_lags;

/* Each kind's C type in sf_stats. */
#define SF_STAT_CTYPE_COUNTER uint64_t
#define SF_STAT_CTYPE_GAUGE   uint64_t
#define SF_STAT_CTYPE_FLAG    bool
#define SF_STAT_CTYPE_LATENCY sf_latency
#define SF_STAT_CTYPE_LAG     sf_lags

/* One point-in-time value of every stat of the list (about 25 KB: keep it off the stack). */
typedef struct sf_stats {
#define SF_STAT_MEMBER(kind, field, telemetry, health, metric, help) SF_STAT_CTYPE_##kind field;
    SF_STATS(SF_STAT_MEMBER)
#undef SF_STAT_MEMBER
} sf_stats;

/* A row of the list, for the renderers to walk. */
typedef struct sf_stat {
    sf_stat_kind kind;
    const char *field;
    const char *telemetry; /* LATENCY: its key under "latency" */
    const char *health;    /* LATENCY: its key under "latency" */
    const char *metric;
    const char *help;
    size_t offset; /* of the value in sf_stats */
} sf_stat;

extern const sf_stat sf_stats_list[];
extern const size_t sf_stats_count;

/* "counter", "gauge" or "summary": the row's # TYPE in /metrics. */
const char *sf_stat_prometheus_type(const sf_stat *st);

/* The value of a COUNTER, GAUGE (as is) or FLAG (0 or 1) row. */
uint64_t sf_stat_number(const sf_stats *s, const sf_stat *st);
/* The value of a LATENCY row / of the LAG row. */
const sf_latency *sf_stat_latency(const sf_stats *s, const sf_stat *st);
const sf_lags *sf_stat_lags(const sf_stats *s, const sf_stat *st);

/* How many rows are of a kind. */
size_t sf_stats_count_kind(sf_stat_kind kind);

/* "topic/partition", the name of a partition's lag everywhere; returns snprintf's value. */
int sf_partition_lag_name(char *buf, size_t cap, const sf_partition_lag *l);

#endif
