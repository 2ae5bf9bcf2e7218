/*
 * http.c — serves /health and /metrics; see http.h. What they say is built
 * from a snapshot of the daemon by snapshot.c, from the one list of stats.
 */
#include "http.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "log.h"
#include "snapshot.h"

struct sf_http {
    struct evhttp *http;
    struct evhttp_bound_socket *sock;
    sf_daemon *d;
    sf_snapshot *snap; /* scratch, large */
};

static void on_health(struct evhttp_request *req, void *arg)
{
    sf_http *h = arg;
    sf_snapshot_take(h->d, h->snap);
    const char *status = sf_snapshot_health_status(h->snap);
    json_t *j = sf_snapshot_health_json(h->snap);
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

static void on_metrics(struct evhttp_request *req, void *arg)
{
    sf_http *h = arg;
    sf_snapshot_take(h->d, h->snap);
    struct evbuffer *b = evbuffer_new();
    sf_snapshot_metrics(b, h->snap);
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
    sf_http *h = sf_xcalloc(1, sizeof(*h));
    h->d = d;
    h->snap = sf_xmalloc(sizeof(*h->snap));
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
    free(h->snap);
    free(h);
}
