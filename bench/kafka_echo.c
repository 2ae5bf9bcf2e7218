/*
 * kafka_echo.c — the raw Kafka echo baseline of `bench/run.sh e2e`: the
 * ceiling of the Kafka path on this machine. A consumer-group member that
 * republishes each request's value, unchanged, as its reply to the reply
 * topic, keyed by the request's key. No decoding, no Redis, no Python.
 *
 * It talks to Kafka the way the supervisor does (consumer/kafka.c), so that
 * the difference is what the supervisor does in between:
 *   - the same pass-through settings (--kafka.KEY=VALUE, given to both clients
 *     where they fit), then the same forced ones: consumer
 *     enable.auto.offset.store=false and enable.partition.eof=false; producer
 *     enable.idempotence=true and partitioner=murmur2_random;
 *   - both clients' queues signalled through pipes
 *     (rd_kafka_queue_io_event_enable) and served from one thread: a poll()
 *     loop here, a libevent loop there;
 *   - rd_kafka_consumer_poll in turns of at most 500 messages (POLL_BATCH);
 *   - each reply produced with RD_KAFKA_MSG_F_COPY, and on its delivery
 *     report the request's next offset stored (rd_kafka_offsets_store with a
 *     one-element list, as sf_kafka_store_offset does) for auto-commit.
 *
 * Usage: kafka_echo --bootstrap B --topic T --group G --reply-topic R
 *                   [--kafka.KEY=VALUE ...]
 * Runs until SIGTERM/SIGINT; then leaves the group, flushes, and prints one
 * JSON line: {"bench": "kafka_echo", "echoed": N, "cpu_s": …}.
 */
#include <errno.h>
#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define POLL_BATCH   500
#define MAX_KAFKA_KV 64

static volatile sig_atomic_t g_stop;
static rd_kafka_t *g_cons;
static const char *g_topic;
static unsigned long long g_echoed, g_failed;

static void on_sig(int s)
{
    g_stop = 1;
}

static void die(const char *what, const char *why)
{
    fprintf(stderr, "kafka_echo: %s: %s\n", what, why);
    exit(1);
}

static void set(rd_kafka_conf_t *c, const char *k, const char *v, bool must)
{
    char e[256];
    if (rd_kafka_conf_set(c, k, v, e, sizeof(e)) != RD_KAFKA_CONF_OK && must)
        die(k, e);
}

/* The request's partition and offset ride in the message opaque (no allocation). */
static void *pack_pos(int32_t partition, int64_t offset)
{
    return (void *)(uintptr_t)(((uint64_t)(uint32_t)partition << 48) |
                               ((uint64_t)offset & 0xffffffffffffull));
}

static void on_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    if (m->err) {
        g_failed++;
        fprintf(stderr, "kafka_echo: delivery failed: %s\n", rd_kafka_err2str(m->err));
        return; /* offset not stored: consumed again after a restart */
    }
    uint64_t v = (uint64_t)(uintptr_t)m->_private;
    int32_t partition = (int32_t)(v >> 48);
    int64_t offset = (int64_t)(v & 0xffffffffffffull);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, g_topic, partition)->offset = offset + 1;
    rd_kafka_offsets_store(g_cons, l);
    rd_kafka_topic_partition_list_destroy(l);
}

static void wire(rd_kafka_queue_t *q, int p[2])
{
    if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0)
        die("pipe", strerror(errno));
    rd_kafka_queue_io_event_enable(q, p[1], "1", 1);
}

static void drain_fd(int fd)
{
    char buf[256];
    while (read(fd, buf, sizeof(buf)) > 0)
        ;
}

int main(int argc, char **argv)
{
    const char *bootstrap = NULL, *group = NULL, *reply = NULL;
    const char *kk[MAX_KAFKA_KV], *kv[MAX_KAFKA_KV];
    int nk = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--bootstrap") && v)
            bootstrap = argv[++i];
        else if (!strcmp(a, "--topic") && v)
            g_topic = argv[++i];
        else if (!strcmp(a, "--group") && v)
            group = argv[++i];
        else if (!strcmp(a, "--reply-topic") && v)
            reply = argv[++i];
        else if (!strncmp(a, "--kafka.", 8) && strchr(a, '=') && nk < MAX_KAFKA_KV) {
            char *s = strdup(a + 8), *eq = strchr(s, '=');
            *eq = '\0';
            kk[nk] = s;
            kv[nk++] = eq + 1;
        } else {
            fprintf(stderr, "usage: kafka_echo --bootstrap B --topic T --group G --reply-topic R "
                            "[--kafka.KEY=VALUE ...]\n");
            return 2;
        }
    }
    if (!bootstrap || !g_topic || !group || !reply) {
        fprintf(stderr,
                "kafka_echo: --bootstrap, --topic, --group and --reply-topic are required\n");
        return 2;
    }
    signal(SIGTERM, on_sig);
    signal(SIGINT, on_sig);
    char e[512];

    rd_kafka_conf_t *pc = rd_kafka_conf_new();
    for (int i = 0; i < nk; i++)
        set(pc, kk[i], kv[i], false);
    set(pc, "bootstrap.servers", bootstrap, true);
    set(pc, "client.id", "kafka-echo", true);
    set(pc, "enable.idempotence", "true", true);
    set(pc, "partitioner", "murmur2_random", true);
    rd_kafka_conf_set_dr_msg_cb(pc, on_dr);
    rd_kafka_t *prod = rd_kafka_new(RD_KAFKA_PRODUCER, pc, e, sizeof(e));
    if (!prod)
        die("producer", e);

    rd_kafka_conf_t *cc = rd_kafka_conf_new();
    for (int i = 0; i < nk; i++)
        set(cc, kk[i], kv[i], false);
    set(cc, "bootstrap.servers", bootstrap, true);
    set(cc, "client.id", "kafka-echo", true);
    set(cc, "group.id", group, true);
    set(cc, "enable.auto.offset.store", "false", true);
    set(cc, "enable.partition.eof", "false", true);
    g_cons = rd_kafka_new(RD_KAFKA_CONSUMER, cc, e, sizeof(e));
    if (!g_cons)
        die("consumer", e);
    rd_kafka_poll_set_consumer(g_cons);
    rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(sub, g_topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t err = rd_kafka_subscribe(g_cons, sub);
    rd_kafka_topic_partition_list_destroy(sub);
    if (err)
        die("subscribe", rd_kafka_err2str(err));

    int cp[2], pp[2];
    rd_kafka_queue_t *cq = rd_kafka_queue_get_consumer(g_cons), *pq = rd_kafka_queue_get_main(prod);
    wire(cq, cp);
    wire(pq, pp);

    bool more = false;
    while (!g_stop) {
        struct pollfd pf[2] = {{cp[0], POLLIN, 0}, {pp[0], POLLIN, 0}};
        if (poll(pf, 2, more ? 0 : 1000) < 0 && errno != EINTR)
            die("poll", strerror(errno));
        drain_fd(cp[0]);
        drain_fd(pp[0]);
        more = false;
        for (int i = 0; i < POLL_BATCH; i++) {
            rd_kafka_message_t *m = rd_kafka_consumer_poll(g_cons, 0);
            if (!m)
                break;
            if (i == POLL_BATCH - 1)
                more = true; /* more may be queued: continue next turn */
            if (m->err) {
                rd_kafka_message_destroy(m);
                continue;
            }
            for (;;) {
                err = rd_kafka_producev(
                    prod, RD_KAFKA_V_TOPIC(reply), RD_KAFKA_V_KEY(m->key, m->key_len),
                    RD_KAFKA_V_VALUE(m->payload, m->len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                    RD_KAFKA_V_OPAQUE(pack_pos(m->partition, m->offset)), RD_KAFKA_V_END);
                if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
                    break;
                rd_kafka_poll(prod, 10);
            }
            if (err)
                fprintf(stderr, "kafka_echo: produce: %s\n", rd_kafka_err2str(err));
            else
                g_echoed++;
            rd_kafka_message_destroy(m);
        }
        rd_kafka_poll(prod, 0);
    }
    rd_kafka_consumer_close(g_cons);
    rd_kafka_flush(prod, 5000);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("{\"bench\": \"kafka_echo\", \"echoed\": %llu, \"delivery_failed\": %llu, "
           "\"cpu_s\": %.3f}\n",
           g_echoed, g_failed,
           (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
               (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6);
    rd_kafka_queue_destroy(cq);
    rd_kafka_queue_destroy(pq);
    rd_kafka_destroy(g_cons);
    rd_kafka_destroy(prod);
    return 0;
}
