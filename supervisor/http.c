/* http.c — /health and /metrics; see http.h. */
#include "http.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

struct sf_http {
    struct evhttp *http;
    struct evhttp_bound_socket *sock;
    sf_daemon *d;
    sf_daemon_stats *stats; /* scratch, large */
};

static const char *health_status(const sf_daemon_stats *s)
{
    if (s->draining)
        return "draining";
    if (!s->redis_up)
        return "redis_unavailable";
    if (s->degraded)
        return "degraded";
    return "healthy";
}

static void on_health(struct evhttp_request *req, void *arg)
{
    sf_http *h = arg;
    sf_daemon_get_stats(h->d, h->stats);
    const sf_daemon_stats *s = h->stats;
    const char *status = health_status(s);
    json_t *j = json_pack("{s:s, s:s, s:b, s:i, s:i, s:i, s:I, s:I, s:I}", "status", status,
                          "supervisor", s->id, "redis", s->redis_up, "partitions", s->partitions,
                          "held", s->held, "queued", s->queued, "requests", (json_int_t)s->requests,
                          "errors", (json_int_t)s->errors, "dlq", (json_int_t)s->dlq);
    /* requests on a partition their key does not map to (topics.partitioner) */
    json_object_set_new(j, "wrong_partition", json_integer((json_int_t)s->wrong_partition));
    json_object_set_new(j, "pool", sf_pool_stats_json(&s->pool));
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, text, strlen(text));
    evbuffer_add(b, "\n", 1);
    free(text);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    bool ok = strcmp(status, "healthy") == 0;
    evhttp_send_reply(req, ok ? 200 : 503, ok ? "OK" : "Service Unavailable", b);
    evbuffer_free(b);
}

static void metric(struct evbuffer *b, const char *name, const char *type, const char *help,
                   double v)
{
    evbuffer_add_printf(b,
                        "# HELP snakefleet_%s %s\n# TYPE snakefleet_%s %s\nsnakefleet_%s %.17g\n",
                        name, help, name, type, name, v);
}

static void summary(struct evbuffer *b, const char *name, const char *help, const sf_hist *hist)
{
    evbuffer_add_printf(b, "# HELP snakefleet_%s %s\n# TYPE snakefleet_%s summary\n", name, help,
                        name);
    const double qs[] = {0.5, 0.9, 0.99};
    for (int i = 0; i < 3; i++)
        evbuffer_add_printf(b, "snakefleet_%s{quantile=\"%g\"} %.6f\n", name, qs[i],
                            (double)sf_hist_quantile(hist, qs[i]) / 1e6);
    evbuffer_add_printf(b, "snakefleet_%s_sum %.6f\nsnakefleet_%s_count %llu\n", name,
                        (double)hist->sum / 1e6, name, (unsigned long long)hist->count);
}

static void on_metrics(struct evhttp_request *req, void *arg)
{
    sf_http *h = arg;
    sf_daemon_get_stats(h->d, h->stats);
    const sf_daemon_stats *s = h->stats;
    const sf_pool_stats *p = &s->pool;
    struct evbuffer *b = evbuffer_new();
    metric(b, "requests_total", "counter", "requests answered", (double)s->requests);
    metric(b, "errors_total", "counter", "requests answered with an error", (double)s->errors);
    metric(b, "dlq_total", "counter", "records sent to the DLQ", (double)s->dlq);
    metric(b, "invalid_total", "counter", "undecodable or invalid requests", (double)s->invalid);
    metric(b, "deadline_exceeded_total", "counter", "requests past their deadline",
           (double)s->deadline_exceeded);
    metric(b, "poison_total", "counter", "requests that crashed workers too often",
           (double)s->poison);
    metric(b, "deduplicated_total", "counter", "redelivered requests answered from cache",
           (double)s->deduplicated);
    metric(b, "fenced_total", "counter", "writes refused after losing a partition",
           (double)s->fenced);
    metric(b, "conflicts_total", "counter",
           "state writes refused because another writer changed the session (run again)",
           (double)s->conflicts);
    metric(b, "wrong_partition_total", "counter",
           "requests whose key maps to another partition under topics.partitioner",
           (double)s->wrong_partition);
    metric(b, "held", "gauge", "requests consumed and not finished", (double)s->held);
    metric(b, "queue_depth", "gauge", "requests waiting in session queues", (double)s->queued);
    metric(b, "partitions", "gauge", "assigned partitions", (double)s->partitions);
    metric(b, "redis_up", "gauge", "1 when the session store is reachable", s->redis_up);
    metric(b, "pool_size", "gauge", "configured pool size", (double)p->pool_size);
    metric(b, "workers", "gauge", "worker processes", (double)p->workers);
    metric(b, "busy_workers", "gauge", "workers running a call", (double)p->busy);
    metric(b, "healthy_workers", "gauge", "workers ready and answering",
           (double)p->healthy_workers);
    metric(b, "overflow_workers", "gauge", "overflow workers", (double)p->overflow);
    metric(b, "pool_degraded", "gauge", "1 when workers crash in a loop", p->degraded);
    metric(b, "worker_restarts_total", "counter", "workers replaced after a crash or kill",
           (double)p->restarts);
    metric(b, "worker_recycles_total", "counter", "workers recycled by count or RSS",
           (double)p->recycles);
    metric(b, "call_timeouts_total", "counter", "calls killed at request_timeout",
           (double)p->timeouts);
    metric(b, "checkout_timeouts_total", "counter", "calls that found no worker in time",
           (double)p->checkout_timeouts);
    summary(b, "request_seconds", "consume to reply", &s->latency);
    summary(b, "queue_wait_seconds", "wait for a worker", &p->queue_wait);
    summary(b, "exec_seconds", "execution in a worker", &p->exec);
    evbuffer_add_printf(b, "# HELP snakefleet_consumer_lag records not yet finished, up to the "
                           "partition end (absent while unknown)\n"
                           "# TYPE snakefleet_consumer_lag gauge\n");
    for (int i = 0; i < s->nlag; i++)
        if (s->lag[i].lag >= 0)
            evbuffer_add_printf(b, "snakefleet_consumer_lag{partition=\"%s\"} %lld\n",
                                s->lag[i].name, (long long)s->lag[i].lag);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; version=0.0.4");
    evhttp_send_reply(req, 200, "OK", b);
    evbuffer_free(b);
}

sf_http *sf_http_start(struct event_base *base, sf_daemon *d, const char *listen, char *err,
                       size_t errlen)
{
    char host[128];
    const char *colon = strrchr(listen, ':');
    if (colon == NULL || (size_t)(colon - listen) >= sizeof(host)) {
        snprintf(err, errlen, "supervisor.http_listen: '%s' is not host:port", listen);
        return NULL;
    }
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = '\0';
    int port = atoi(colon + 1);
    sf_http *h = calloc(1, sizeof(*h));
    h->d = d;
    h->stats = malloc(sizeof(*h->stats));
    h->http = evhttp_new(base);
    h->sock = evhttp_bind_socket_with_handle(h->http, host, (ev_uint16_t)port);
    if (h->sock == NULL) {
        snprintf(err, errlen, "supervisor.http_listen: cannot listen on %s", listen);
        sf_http_free(h);
        return NULL;
    }
    evhttp_set_allowed_methods(h->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
    evhttp_set_cb(h->http, "/health", on_health, h);
    evhttp_set_cb(h->http, "/metrics", on_metrics, h);
    sf_info("http.listening", "address=%s:%d", host, sf_http_port(h));
    return h;
}

int sf_http_port(const sf_http *h)
{
    evutil_socket_t fd = evhttp_bound_socket_get_fd(h->sock);
    struct sockaddr_storage ss;
    socklen_t l = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &l) < 0)
        return -1;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

void sf_http_free(sf_http *h)
{
    if (h == NULL)
        return;
    if (h->http)
        evhttp_free(h->http);
    free(h->stats);
    free(h);
}
