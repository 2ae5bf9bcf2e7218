/*
 * ports.h — the daemon's outside world on the request path, as one struct of
 * function pointers: the pool's submit, the store's claim and commit, the
 * producer and the offset store. The daemon calls them only through
 * d->ports, so its rules (session order, effectively once, nothing lost) can
 * be run against fakes (tests/unit/test_jobs.c) without Kafka, Redis or
 * workers.
 *
 * Each port has the signature of the function it stands for, and the first
 * argument is the handle the daemon holds (d->pool, d->store, d->kafka; NULL
 * in a daemon built by daemon_core_new). sf_daemon_new uses
 * sf_daemon_real_ports: one indirect call per use, nothing else.
 */
#ifndef SF_PORTS_H
#define SF_PORTS_H

#include <librdkafka/rdkafka.h>

#include "config.h"
#include "daemon.h"
#include "kafka.h"
#include "pool.h"
#include "store.h"

typedef struct sf_daemon_ports {
    /* sf_pool_submit: a call for a worker; its callback runs later, from the loop. */
    int (*pool_submit)(sf_pool *p, const sf_pool_call *call, sf_pool_done_fn done, void *arg);
    /* sf_store_claim: the request id claimed (an execute's state and spec read with it). */
    void (*store_claim)(sf_store *st, const sf_fence *f, const char *s, size_t slen, const char *id,
                        size_t idlen, const char *owner, uint32_t claim_ttl_ms, const char *program,
                        size_t plen, sf_store_cb cb, void *arg);
    /* sf_store_commit: the reply remembered, with the new state when there is one. */
    void (*store_commit)(sf_store *st, const sf_fence *f, const char *s, size_t slen,
                         const char *id, size_t idlen, const void *reply, size_t reply_len,
                         const void *state, size_t state_len, int64_t read_version, int64_t offset,
                         unsigned flags, sf_store_cb cb, void *arg);
    /* sf_store_restore_epoch: after a FENCED write, the lease set back if Redis lost it. */
    void (*store_restore_epoch)(sf_store *st, const char *epoch_key, uint64_t epoch, sf_store_cb cb,
                                void *arg);
    /* sf_store_end_session / sf_store_delete_program: after them the workers forget (ops.c). */
    void (*store_end_session)(sf_store *st, const sf_fence *f, const char *s, size_t slen,
                              sf_store_cb cb, void *arg);
    void (*store_delete_program)(sf_store *st, const sf_fence *f, const char *s, size_t slen,
                                 const char *p, size_t plen, sf_store_cb cb, void *arg);
    /* sf_kafka_produce: a record of a job (`opaque`), acknowledged by reply_on_delivery. */
    rd_kafka_resp_err_t (*kafka_produce)(sf_kafka *k, const char *topic, const void *key,
                                         size_t keylen, const void *value, size_t len,
                                         rd_kafka_headers_t *headers, void *opaque, char *err,
                                         size_t errlen);
    /* sf_kafka_store_offset: the partition's finished prefix, stored for commit. */
    void (*kafka_store_offset)(sf_kafka *k, const char *topic, int32_t partition, int64_t next);
} sf_daemon_ports;

/* The real pool, store and Kafka (daemon.c). */
extern const sf_daemon_ports sf_daemon_real_ports;

/*
 * The daemon without its pool, store or Kafka clients: its maps, timers and
 * limits, and `ports` for everything the request path asks of the outside
 * world. sf_daemon_new builds on it; a test drives it with fakes. Freed by
 * sf_daemon_free.
 */
sf_daemon *daemon_core_new(struct event_base *base, const sf_config *cfg,
                           const sf_daemon_ports *ports);

#endif
