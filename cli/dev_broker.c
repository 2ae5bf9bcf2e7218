/*
 * dev_broker.c — `snakefleet dev-broker`: a Kafka for local work, in-process.
 *
 * Hosts a librdkafka mock cluster (rd_kafka_mock_cluster_new on a producer
 * handle that does nothing else), creates snakefleet's topics on it, prints
 * `KAFKA_BOOTSTRAP=<servers>` as the first line of stdout and runs until
 * SIGINT or SIGTERM.
 *
 * The mock's brokers listen on 127.0.0.1 at ports the kernel picks:
 * librdkafka 2.0.2 has no way to choose them. --port P adds a stable
 * bootstrap address: a TCP relay on 127.0.0.1:P to the first broker. Clients
 * bootstrap through it and then connect to the brokers' own (random, loopback)
 * addresses from the metadata, so it serves clients on this host only.
 *
 * What the mock does not do (librdkafka 2.0.2): static group membership,
 * read_committed, transactional offset commits, ListOffsets by timestamp;
 * and it holds an empty fetch for the whole fetch.wait.max.ms instead of
 * answering when data arrives — consumers should set fetch.wait.max.ms low
 * (e.g. 5), or every hop costs up to that long. Data lives in memory only.
 */
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "alloc.h"
#include "args.h"
#include "cli.h"

#define CMD "dev-broker"

static const char USAGE[] =
    "usage: snakefleet dev-broker [--brokers N] [--port P] [-c FILE] [--topics.KEY=VALUE ...]\n"
    "\n"
    "  --brokers N  mock brokers (default 1)\n"
    "  --port P     also accept bootstrap connections on 127.0.0.1:P (a relay to\n"
    "               broker 1; the brokers themselves always get random ports)\n"
    "\n"
    "Creates topics.requests (topics.partitions, default 8), topics.replies (4),\n"
    "topics.telemetry (1) and topics.dlq (1); prints KAFKA_BOOTSTRAP=<servers>\n"
    "first on stdout; runs until SIGINT/SIGTERM. Clients should set\n"
    "fetch.wait.max.ms low (e.g. --kafka.fetch.wait.max.ms=5): the mock answers an\n"
    "empty fetch only after the whole wait.\n";

/* ------------------------------------------------------------------ relay */

typedef struct pipe_pair {
    struct bufferevent *a, *b;
    struct pipe_pair *prev, *next;
} pipe_pair;

typedef struct relay {
    struct event_base *base;
    struct evconnlistener *listener;
    struct sockaddr_in target;
    pipe_pair *pairs;
} relay;

static relay g_relay;

static void pair_free(pipe_pair *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        g_relay.pairs = p->next;
    if (p->next)
        p->next->prev = p->prev;
    bufferevent_free(p->a);
    bufferevent_free(p->b);
    free(p);
}

static void on_relay_read(struct bufferevent *from, void *arg)
{
    pipe_pair *p = arg;
    struct bufferevent *to = from == p->a ? p->b : p->a;
    evbuffer_add_buffer(bufferevent_get_output(to), bufferevent_get_input(from));
}

static void on_relay_event(struct bufferevent *bev, short what, void *arg)
{
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        pair_free(arg); /* either side gone: drop both (Kafka clients reconnect) */
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len,
                      void *arg)
{
    pipe_pair *p = sf_xcalloc(1, sizeof(*p));
    if (p == NULL) {
        evutil_closesocket(fd);
        return;
    }
    p->a = bufferevent_socket_new(g_relay.base, fd, BEV_OPT_CLOSE_ON_FREE);
    p->b = bufferevent_socket_new(g_relay.base, -1, BEV_OPT_CLOSE_ON_FREE);
    p->next = g_relay.pairs;
    if (g_relay.pairs)
        g_relay.pairs->prev = p;
    g_relay.pairs = p;
    bufferevent_setcb(p->a, on_relay_read, NULL, on_relay_event, p);
    bufferevent_setcb(p->b, on_relay_read, NULL, on_relay_event, p);
    if (bufferevent_socket_connect(p->b, (struct sockaddr *)&g_relay.target,
                                   sizeof(g_relay.target)) < 0) {
        pair_free(p);
        return;
    }
    bufferevent_enable(p->a, EV_READ | EV_WRITE);
    bufferevent_enable(p->b, EV_READ | EV_WRITE);
}

/* Listens on 127.0.0.1:port and relays to the first "host:port" of bootstraps. */
static int relay_start(struct event_base *base, int port, const char *bootstraps)
{
    char host[64];
    int tport = 0;
    if (sscanf(bootstraps, "%63[^:]:%d", host, &tport) != 2) {
        args_fail(CMD, "cannot parse the mock's bootstrap address '%s'", bootstraps);
        return -1;
    }
    g_relay.base = base;
    g_relay.target.sin_family = AF_INET;
    g_relay.target.sin_port = htons((uint16_t)tport);
    inet_pton(AF_INET, strcmp(host, "localhost") == 0 ? "127.0.0.1" : host,
              &g_relay.target.sin_addr);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    g_relay.listener =
        evconnlistener_new_bind(base, on_accept, NULL, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE,
                                64, (struct sockaddr *)&sin, sizeof(sin));
    if (g_relay.listener == NULL) {
        char v[16];
        snprintf(v, sizeof(v), "%d", port);
        args_fail_flag(CMD, "--port", v, "cannot listen on 127.0.0.1:%d: %s", port,
                       evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
        return -1;
    }
    return 0;
}

static void relay_stop(void)
{
    while (g_relay.pairs)
        pair_free(g_relay.pairs);
    if (g_relay.listener)
        evconnlistener_free(g_relay.listener);
    g_relay.listener = NULL;
}

/* ------------------------------------------------------------------ main */

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    fprintf(stderr, "dev-broker: signal %d, stopping\n", (int)sig);
    event_base_loopbreak(arg);
}

static int create_topics(rd_kafka_mock_cluster_t *mc, const sf_config *cfg)
{
    const struct {
        const char *name;
        int partitions;
    } topics[] = {{cfg->requests, (int)cfg->partitions},
                  {cfg->replies, 4},
                  {cfg->telemetry_topic, 1},
                  {cfg->dlq, 1}};
    for (size_t i = 0; i < sizeof(topics) / sizeof(topics[0]); i++) {
        /* topics.requests may list several topics, comma-separated. */
        char names[256];
        snprintf(names, sizeof(names), "%s", topics[i].name);
        for (char *save = NULL, *t = strtok_r(names, ",", &save); t;
             t = strtok_r(NULL, ",", &save)) {
            rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(mc, t, topics[i].partitions, 1);
            if (e) {
                args_fail(CMD, "cannot create topic %s: %s", t, rd_kafka_err2str(e));
                return -1;
            }
            fprintf(stderr, "dev-broker: topic %s (%d partitions)\n", t, topics[i].partitions);
        }
    }
    return 0;
}

int cmd_dev_broker(int argc, char **argv)
{
    sf_config cfg;
    if (cli_load_config(&cfg, &argc, argv) < 0)
        return CLI_EXIT_USAGE;
    long long brokers = 1, port = 0;
    const cli_flag flags[] = {{"brokers", FLAG_INT, &brokers, 1, 32},
                              {"port", FLAG_INT, &port, 1, 65535},
                              {NULL, 0, NULL, 0, 0}};
    int parsed = args_parse(CMD, USAGE, argc, argv, flags);
    if (parsed != ARGS_OK)
        return parsed;

    char why[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "client.id", "snakefleet-dev-broker", why, sizeof(why));
    rd_kafka_conf_set(conf, "log_level", "4", why,
                      sizeof(why)); /* no "no bootstrap.servers" note */
    /* The handle only hosts the cluster; it never connects anywhere. */
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof(why));
    if (rk == NULL) {
        rd_kafka_conf_destroy(conf); /* still ours: rd_kafka_new failed */
        args_fail(CMD, "cannot create the host handle: %s", why);
        return CLI_EXIT_KAFKA;
    }
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, (int)brokers);
    if (mc == NULL) {
        args_fail(CMD, "cannot create the mock cluster");
        rd_kafka_destroy(rk);
        return CLI_EXIT_KAFKA;
    }
    int rc = CLI_EXIT_OK;
    struct event_base *base = event_base_new();
    struct event *sigint = evsignal_new(base, SIGINT, on_signal, base);
    struct event *sigterm = evsignal_new(base, SIGTERM, on_signal, base);
    event_add(sigint, NULL);
    event_add(sigterm, NULL);
    signal(SIGPIPE, SIG_IGN);
    const char *bootstraps = rd_kafka_mock_cluster_bootstraps(mc);
    if (create_topics(mc, &cfg) < 0) {
        rc = CLI_EXIT_KAFKA;
        goto out;
    }
    if (port && relay_start(base, (int)port, bootstraps) < 0) {
        rc = CLI_EXIT_USAGE;
        goto out;
    }
    if (port)
        printf("KAFKA_BOOTSTRAP=127.0.0.1:%lld\n", port);
    else
        printf("KAFKA_BOOTSTRAP=%s\n", bootstraps);
    fflush(stdout);
    fprintf(stderr,
            "dev-broker: %lld mock broker(s) at %s%s; clients should set "
            "fetch.wait.max.ms=5; Ctrl-C stops\n",
            brokers, bootstraps, port ? " (bootstrap relay on the --port)" : "");
    event_base_dispatch(base);
out:
    relay_stop();
    event_free(sigint);
    event_free(sigterm);
    event_base_free(base);
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    return rc;
}
