/*
 * exchange.h — request/reply over Kafka for the `snakefleet` client
 * commands (submit, batch, loadtest): one idempotent producer for requests,
 * one consumer on the reply topic, and the table that matches each reply to
 * its request by request id.
 *
 * The reply consumer is ready before the first request leaves: exchange_new()
 * reads the reply topic's end offsets and assigns every partition at exactly
 * those offsets (no group join, no "latest" resolved later), so a reply can
 * never be produced before the position we read from. Replies meant for other
 * clients on a shared reply topic are skipped (counted as `foreign`).
 *
 * Everything runs on the caller's thread: exchange_poll() serves delivery
 * reports, consumes replies and expires requests older than the timeout,
 * calling on_result once per request with its outcome. on_result may call
 * exchange_send() (a closed loop sends the next request from there).
 * Requests are produced in call order by one producer, so the requests of one
 * session (one key, one partition) reach Kafka in that order.
 */
#ifndef SF_CLI_EXCHANGE_H
#define SF_CLI_EXCHANGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "request.h"

typedef struct exchange exchange;

typedef enum {
    EXCHANGE_REPLY,         /* a valid reply; ok tells success */
    EXCHANGE_INVALID_REPLY, /* a reply with our id that breaks the reply schema */
    EXCHANGE_TIMEOUT,       /* no reply within the timeout */
    EXCHANGE_UNDELIVERED,   /* Kafka did not take the request */
    EXCHANGE_ABANDONED,     /* still waiting at exchange_free(): free its user data */
} exchange_outcome;

typedef struct exchange_result {
    exchange_outcome outcome;
    const char *id; /* the request id */
    void *user;     /* as given to exchange_send */
    /* The reply map (REPLY, and INVALID_REPLY when it decoded); valid during the callback. */
    const msgpack_object *reply;
    bool ok;
    /*
     * The error type: the reply's error.type, or for a local failure
     * "invalid_reply", "timeout_local" (no reply in time; distinct from the
     * supervisor's own "timeout") or "undelivered". Empty when ok.
     */
    char err_type[64];
    const char *detail; /* local failures: why */
    double latency_ms;  /* produce call → reply consumed (or → now) */
} exchange_result;

typedef void (*exchange_cb)(void *ctx, const exchange_result *r);

typedef struct exchange_opts {
    const char *cmd;            /* for client ids and messages */
    const char *requests_topic; /* NULL: topics.requests */
    const char *reply_topic;    /* NULL: topics.replies */
    int timeout_ms;             /* per request; 0: none */
    exchange_cb on_result;
    void *ctx;
} exchange_opts;

typedef struct exchange_stats {
    uint64_t sent, replies, foreign, invalid, timeouts, undelivered;
} exchange_stats;

/*
 * Connects, checks that both topics exist and positions the reply consumer.
 * NULL on failure, with err naming the problem (unreachable brokers, a
 * missing topic, a rejected [kafka] property) and *exit_code set to
 * CLI_EXIT_USAGE (configuration) or CLI_EXIT_KAFKA (the cluster).
 */
exchange *exchange_new(const sf_config *cfg, const exchange_opts *o, int *exit_code, char *err,
                       size_t errlen);

/*
 * Produces one request keyed by its session, its reply_to set to the reply
 * topic and a correlation-id header equal to its id. spec->id must not be in
 * flight already. Returns 0, or -1 with err (nothing was sent, on_result will
 * not be called).
 */
int exchange_send(exchange *x, const sf_request_spec *spec, void *user, char *err, size_t errlen);

/* Serves Kafka for at most timeout_ms; returns sooner once a batch of replies was handled. */
void exchange_poll(exchange *x, int timeout_ms);

/* Requests sent and not yet resolved. */
size_t exchange_pending(const exchange *x);
bool exchange_in_flight(exchange *x, const char *id);
const char *exchange_reply_topic(const exchange *x);
void exchange_get_stats(const exchange *x, exchange_stats *s);

/*
 * Reports every request still waiting as EXCHANGE_ABANDONED, waits (at most
 * flush_ms) for requests still queued in the producer, drops the rest, and
 * frees everything.
 */
void exchange_free(exchange *x, int flush_ms);

/* A fresh request id: "<prefix>-<16 hex random>-<n>"; buf of at least 64 bytes. */
void exchange_new_id(char *buf, size_t cap, const char *prefix);

#endif
