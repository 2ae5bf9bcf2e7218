/*
 * store_harness.c — see store_harness.h.
 */
#include "store_harness.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

struct event_base *base;
sf_store *st;
static pid_t redis_pid;
int redis_port;
static char redis_dir[64];

int free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(s, (struct sockaddr *)&a, sizeof(a));
    socklen_t l = sizeof(a);
    getsockname(s, (struct sockaddr *)&a, &l);
    close(s);
    return ntohs(a.sin_port);
}

void redis_start(void)
{
    char port[16];
    snprintf(port, sizeof(port), "%d", redis_port);
    redis_pid = fork();
    if (redis_pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(null, 2);
        execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "yes", "--appendfsync", "always", "--dir", redis_dir, "--loglevel",
               "warning", (char *)NULL);
        _exit(127);
    }
    cr_assert_gt(redis_pid, 0);
    usleep(150000);
}

void redis_stop(void)
{
    if (redis_pid > 0) {
        kill(redis_pid, SIGTERM);
        waitpid(redis_pid, NULL, 0);
        redis_pid = 0;
    }
}

void on_got(void *arg, const sf_store_reply *r)
{
    got *g = arg;
    g->done = true;
    g->status = r->status;
    g->claim = r->claim;
    g->count = r->count;
    g->nkeys = r->nkeys;
    g->version = r->version;
    const char *v = r->state ? r->state : r->spec;
    size_t n = r->state ? r->state_len : r->spec_len;
    if (v && n < sizeof(g->value)) {
        memcpy(g->value, v, n);
        g->len = n;
    }
}

double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

void wait_done(got *g)
{
    double end = now_ms() + 5000;
    while (!g->done && now_ms() < end) {
        struct timeval tv = {0, 10000};
        event_base_loopexit(base, &tv);
        event_base_loop(base, EVLOOP_ONCE);
    }
    cr_assert(g->done, "no answer from the store");
}

void wait_connected(void)
{
    double end = now_ms() + 5000;
    while (!sf_store_connected(st) && now_ms() < end) {
        struct timeval tv = {0, 10000};
        event_base_loopexit(base, &tv);
        event_base_loop(base, EVLOOP_ONCE);
    }
    cr_assert(sf_store_connected(st), "the store did not connect");
}

void store_setup(void)
{
    sf_log_set_level(SF_LOG_ERROR);
    strcpy(redis_dir, "/tmp/sf-store-XXXXXX");
    cr_assert(mkdtemp(redis_dir));
    redis_port = free_port();
    redis_start();
    base = event_base_new();
    char url[64], err[256];
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", redis_port);
    st = sf_store_new(base, url, NULL, NULL, 600, NULL, NULL, err, sizeof(err));
    cr_assert(st, "%s", err);
    wait_connected();
}

void store_teardown(void)
{
    sf_store_free(st);
    event_base_free(base);
    redis_stop();
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", redis_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", redis_dir);
}
