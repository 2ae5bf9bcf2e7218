/*
 * main.c — snakefleet-supervisor: loads the configuration, wires the daemon
 * into one libevent loop, turns SIGTERM/SIGINT into a graceful stop and
 * SIGHUP into a reload of the program code.
 */
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "daemon.h"
#include "http.h"
#include "kafka.h"
#include "kafka_config.h"
#include "log.h"

extern char **environ;

static const char USAGE[] =
    "usage: snakefleet-supervisor [-c FILE] [--section.key=value ...] [--dev] [--print-config]\n"
    "\n"
    "Consumes snakefleet requests from Kafka, runs them on a local pool of Python\n"
    "workers with session state in Redis, and produces replies and telemetry.\n"
    "\n"
    "  -c, --config FILE   INI file; every key also as SNAKEFLEET_<SECTION>_<KEY>\n"
    "                      and as --section.key=value (later sources win)\n"
    "  --dev               run against an embedded Kafka mock cluster (no broker needed);\n"
    "                      prints KAFKA_BOOTSTRAP=HOST:PORT, its address, on stdout\n"
    "  --print-config      print the effective configuration with each value's source\n"
    "  -h, --help          this text and every option\n"
    "\n"
    "Signals: SIGTERM or SIGINT drains and stops (a second one exits at once);\n"
    "SIGHUP reloads program code: workers are replaced one by one between calls.\n";

typedef struct app {
    sf_daemon *daemon;
    int signals;
} app;

/* SIGHUP: pick up changed program code (systemctl reload); see sf_daemon_reload. */
static void on_reload(evutil_socket_t sig, short what, void *arg)
{
    app *a = arg;
    if (sf_daemon_reload(a->daemon) < 0)
        sf_warn("supervisor.signal", "signal=%d action=ignored reason=shutting_down", (int)sig);
    else
        sf_info("supervisor.signal", "signal=%d action=reload", (int)sig);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    app *a = arg;
    if (++a->signals == 1) {
        sf_info("supervisor.signal", "signal=%d action=drain", (int)sig);
        sf_daemon_shutdown(a->daemon);
    } else {
        sf_warn("supervisor.signal", "signal=%d action=exit_now", (int)sig);
        raise(SIGKILL);
    }
}

int main(int argc, char **argv)
{
    static sf_config cfg;
    char err[1024];
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-c") || !strcmp(argv[i], "--config")) {
            i++; /* a file named -h is a file */
            continue;
        }
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fputs(USAGE, stdout);
            sf_config_print_help(stdout);
            return 0;
        }
    }
    if (sf_config_load(&cfg, &argc, argv, environ, err, sizeof(err)) < 0)
        goto bad_config;
    /* What sf_config_load left is the supervisor's own. */
    bool dev = false, print = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--dev"))
            dev = true;
        else if (!strcmp(argv[i], "--print-config"))
            print = true;
        else {
            fprintf(stderr, "snakefleet-supervisor: unknown argument '%s'\n%s", argv[i], USAGE);
            return 2;
        }
    }
    if (print) {
        sf_config_print(&cfg, stdout);
        return 0;
    }
    signal(SIGPIPE, SIG_IGN);
    sf_mock *mock = NULL;
    const char *bootstrap = NULL;
    if (dev) {
        sf_kafka_config kcfg;
        sf_kafka_config_from(&cfg, &kcfg);
        mock = sf_mock_start(&kcfg, 1, err, sizeof(err));
        if (mock == NULL) {
            fprintf(stderr, "snakefleet-supervisor: %s\n", err);
            return 1;
        }
        bootstrap = sf_mock_bootstrap(mock);
        sf_info("supervisor.dev_broker", "bootstrap=%s", bootstrap);
        /* The one line on stdout, for scripts: the form `snakefleet dev-broker` prints. */
        printf("KAFKA_BOOTSTRAP=%s\n", bootstrap);
        fflush(stdout);
        /* The mock holds an empty fetch for the whole fetch.wait.max.ms. */
        if (sf_config_kafka_get(&cfg, "fetch.wait.max.ms") == NULL)
            sf_config_kafka_set(&cfg, "fetch.wait.max.ms", "5", "--dev");
    }
    struct event_base *base = event_base_new();
    app a = {0};
    a.daemon = sf_daemon_new(base, &cfg, bootstrap, err, sizeof(err));
    if (a.daemon == NULL) {
        fprintf(stderr, "snakefleet-supervisor: cannot start: %s\n", err);
        event_base_free(base);
        sf_mock_free(mock);
        return 1;
    }
    sf_http *http = NULL;
    if (cfg.http_listen[0]) {
        http = sf_http_start(base, a.daemon, cfg.http_listen, err, sizeof(err));
        if (http == NULL) {
            fprintf(stderr, "snakefleet-supervisor: %s\n", err);
            sf_daemon_free(a.daemon);
            event_base_free(base);
            sf_mock_free(mock);
            return 1;
        }
    }
    struct event *sigterm = evsignal_new(base, SIGTERM, on_signal, &a);
    struct event *sigint = evsignal_new(base, SIGINT, on_signal, &a);
    struct event *sighup = evsignal_new(base, SIGHUP, on_reload, &a);
    event_add(sigterm, NULL);
    event_add(sigint, NULL);
    event_add(sighup, NULL);
    event_base_dispatch(base);
    int rc = sf_daemon_done(a.daemon) ? 0 : 1;
    event_free(sigterm);
    event_free(sigint);
    event_free(sighup);
    sf_http_free(http);
    sf_daemon_free(a.daemon);
    event_base_free(base);
    sf_mock_free(mock);
    return rc;
bad_config:
    fprintf(stderr, "snakefleet-supervisor: configuration error: %s\n", err);
    return 2;
}
