/*
 * snapshot.h — the supervisor's stats at one moment, and the two ways
 * operators read them over HTTP: GET /health (JSON) and GET /metrics
 * (Prometheus text). The telemetry record is the third way (telemetry.c,
 * packed by schemas/codec/telemetry.c); all three are generated from the one
 * list of stats in schemas/codec/stats.h.
 *
 * The renderers read a snapshot only: no daemon, no HTTP server, so the tests
 * build all three renderings from one snapshot (tests/unit/test_stats.c).
 */
#ifndef SF_SNAPSHOT_H
#define SF_SNAPSHOT_H

#include <event2/buffer.h>
#include <jansson.h>

#include "daemon.h"
#include "pool.h"
#include "stats.h"

typedef struct sf_snapshot {
    const char *supervisor; /* the daemon's id (borrowed) */
    bool draining;
    sf_stats stats;     /* every stat of the list */
    sf_pool_stats pool; /* the pool's own view in detail: /health's "pool" */
} sf_snapshot;

/*
 * Fills s from the daemon as it is now (telemetry.c: it reads the daemon's
 * counters). Lag topics point into the daemon's partitions: render before the
 * loop runs again. s is large: allocate it.
 */
void sf_snapshot_take(sf_daemon *d, sf_snapshot *s);

/* "healthy", "draining", "redis_unavailable" or "degraded" (/health answers 200 only to healthy).
 */
const char *sf_snapshot_health_status(const sf_snapshot *s);

/* /health's body: status, supervisor, every stat under its /health key, the pool (new ref). */
json_t *sf_snapshot_health_json(const sf_snapshot *s);

/* /metrics' body: every stat under its metric name, with # HELP and # TYPE, appended to b. */
void sf_snapshot_metrics(struct evbuffer *b, const sf_snapshot *s);

#endif
