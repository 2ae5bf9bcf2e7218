/*
 * http.h — the supervisor's HTTP endpoint (libevent evhttp), for people and
 * orchestrators: GET /health (JSON; 200 when serving, 503 when degraded,
 * draining or cut off from Redis) and GET /metrics (Prometheus text).
 */
#ifndef SF_HTTP_H
#define SF_HTTP_H

#include <event2/event.h>

#include "daemon.h"

typedef struct sf_http sf_http;

/* Listens on "host:port" (port 0 picks one; sf_http_port tells). NULL with err on failure. */
sf_http *sf_http_start(struct event_base *base, sf_daemon *d, const char *listen, char *err,
                       size_t errlen);
int sf_http_port(const sf_http *h);
void sf_http_free(sf_http *h);

#endif
