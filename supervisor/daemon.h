/*
 * daemon.h — snakefleet-supervisor's core: requests from Kafka, run in
 * session order on the pool, state in Redis, replies and telemetry back to
 * Kafka, offsets committed only over finished requests.
 *
 * The one file that shows the whole wiring is daemon.c: the Kafka queues,
 * the worker pipes (inside the pool), Redis, the timers and the signals all
 * feed one libevent loop.
 */
#ifndef SF_DAEMON_H
#define SF_DAEMON_H

#include <event2/event.h>

#include "config.h"
#include "hist.h"
#include "pool.h"

typedef struct sf_daemon sf_daemon;

/*
 * Builds everything (pool, store, Kafka clients) and starts consuming.
 * `bootstrap` overrides kafka bootstrap.servers (the --dev mock cluster).
 */
sf_daemon *sf_daemon_new(struct event_base *base, const sf_config *cfg, const char *bootstrap,
                         char *err, size_t errlen);

/* Graceful stop (SIGTERM): stop consuming, drain, commit, leave, stop the pool. */
void sf_daemon_shutdown(sf_daemon *d);

/*
 * Reload (SIGHUP): program code changed on disk is picked up by replacing
 * the pool's workers one by one between calls (sf_pool_reload); nothing
 * queued or running is lost. Returns -1 while shutting down.
 */
int sf_daemon_reload(sf_daemon *d);

/* Whether the daemon finished its shutdown (the loop may exit). */
int sf_daemon_done(const sf_daemon *d);

void sf_daemon_free(sf_daemon *d);

#endif
