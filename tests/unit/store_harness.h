/*
 * store_harness.h — what the store's suites share: a redis-server of each
 * test's own on a free loopback port, a store connected to it on a loop, and
 * a callback that keeps the answer (test_store.c, test_store_records.c).
 */
#ifndef SF_STORE_HARNESS_H
#define SF_STORE_HARNESS_H

#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "store.h"

extern struct event_base *base;
extern sf_store *st; /* connected to the test's redis-server */
extern int redis_port;

typedef struct got {
    bool done;
    sf_store_status status;
    int claim;
    int64_t count;
    char value[256];
    size_t len;
    size_t nkeys;
    uint64_t version;
} got;

/* A store callback: the answer, kept in the got at arg. */
void on_got(void *arg, const sf_store_reply *r);
double now_ms(void);
/* A free TCP port on 127.0.0.1 (for a server of the test's own). */
int free_port(void);
/* Turns the loop until g is answered (5 s at most). */
void wait_done(got *g);
void wait_connected(void);
/* Criterion .init / .fini: a fresh redis-server and a store on it; both gone. */
void store_setup(void);
void store_teardown(void);
/* The redis-server of the test, stopped and started again on its data (AOF). */
void redis_start(void);
void redis_stop(void);

#define S(x) x, strlen(x)

#endif
