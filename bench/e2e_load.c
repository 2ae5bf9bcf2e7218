/*
 * e2e_load.c — the load generator of `bench/run.sh e2e`: produces snakefleet
 * execute requests to a real Kafka, keyed by session, naming a reply topic,
 * consumes the replies and matches them by request id. One process, one
 * thread, librdkafka driven through its queue pipes and poll() (no busy
 * polling: on 2 cores every cycle the generator burns is taken from the system
 * it measures, and the report says how many: drv_cpu_us_per_req).
 *
 * Phases of one run:
 *   topics    --create-topics name:parts,... creates topics and exits
 *   ready     a `ping` to the first session is sent every 2 s until one is
 *             answered: the consumer group under test has joined (consumers
 *             use auto.offset.reset=earliest, so nothing sent before is lost)
 *   setup     (--setup) create_session then create_program (spec {kind:
 *             callable, entry: --program-entry}) for every session; all must
 *             succeed
 *   warm-up   --warmup-s of the same load, not recorded
 *   measure   --duration-s; replies consumed in the window are counted and
 *             their latencies (produce call -> reply consumed) kept whole
 *   drain     no more requests; wait for every outstanding reply
 *             (--drain-timeout-s), unanswered ones are reported as `lost`
 *   verify    (--verify-counter) get_session_state for every session: state
 *             {"n": N} must equal the executes sent to that session
 *
 * Load shapes:
 *   closed (--inflight C)  C requests outstanding; a reply sends the next
 *                          request, sessions taken in turn (so each session
 *                          has about C / sessions requests queued at once)
 *   open   (--rate R)      R requests/s on a schedule, whatever the replies do
 *
 * A reply is ok unless it carries ok=false (the raw echo returns the request
 * itself, which has no `ok`). Prints one JSON line on stdout.
 *
 * --watch NAME=PID[,PID...] (repeatable) adds the CPU those processes used in
 * the measured window, per reply, as cpu_us_per_req.NAME.
 */
#include <errno.h>
#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_common.h"

#define MAX_KAFKA_KV 64
#define MAX_WATCH    8
#define MAX_PIDS     32

enum { K_PROBE, K_SETUP, K_EXEC, K_VERIFY };

typedef struct rec {
    uint64_t sent_us;
    int32_t sess;
    uint8_t kind;
    uint8_t done;
} rec;

typedef struct watch {
    char name[32];
    int pids[MAX_PIDS];
    int npids;
    uint64_t start_us, cpu_us;
} watch;

typedef struct opts {
    const char *bootstrap, *topic, *reply_topic, *prefix, *entry, *args_json, *mode, *label,
        *system, *create_topics;
    int sessions, inflight;
    double rate, warmup_s, duration_s, drain_timeout_s, ready_timeout_s;
    bool setup, verify;
    const char *kkey[MAX_KAFKA_KV], *kval[MAX_KAFKA_KV];
    int nkafka;
    watch watches[MAX_WATCH];
    int nwatch;
} opts;

typedef struct gen {
    opts *o;
    rd_kafka_t *prod, *cons;
    int ppipe[2], cpipe[2];
    char runid[16];
    char (*names)[64];
    rec *recs;
    size_t nrecs, caprecs;
    msgpack_sbuffer sb;
    bench_obj args, spec, empty;
    int outstanding, next_sess;
    long *exec_sent, *exec_ok;
    /* measured window */
    uint64_t m_start, m_end;
    bool measuring;
    bench_lat lat;
    uint64_t m_replies, m_errors;
    /* the supervisor's own timings (reply.timings), summed over measured replies */
    uint64_t t_n, t_queued, t_exec, t_total;
    bench_lat lat_total; /* timings.total_us: consumed -> reply produced, inside the supervisor */
    uint64_t errors, delivery_failed, stale, unmatched;
    char first_error[256];
    /* verify */
    long verify_mismatch, verify_checked, verify_errors;
    char first_mismatch[256];
    int probe_answered;
    int setup_failed;
} gen;

static volatile sig_atomic_t g_stop;

static void on_sig(int s)
{
    g_stop = 1;
}

static void die(const char *fmt, const char *a)
{
    fprintf(stderr, "e2e_load: ");
    fprintf(stderr, fmt, a);
    fprintf(stderr, "\n");
    exit(1);
}

/* ------------------------------------------------------------ kafka */

static void conf_set(rd_kafka_conf_t *c, const char *k, const char *v)
{
    char e[256];
    if (rd_kafka_conf_set(c, k, v, e, sizeof(e)) != RD_KAFKA_CONF_OK)
        die("kafka setting: %s", e);
}

static void on_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    gen *g = opaque;
    if (m->err) {
        g->delivery_failed++;
        if (!g->first_error[0])
            snprintf(g->first_error, sizeof(g->first_error), "delivery: %s",
                     rd_kafka_err2str(m->err));
    }
}

static rd_kafka_conf_t *base_conf(gen *g, bool consumer)
{
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    conf_set(c, "bootstrap.servers", g->o->bootstrap);
    conf_set(c, "client.id", consumer ? "e2e-load-c" : "e2e-load-p");
    if (!consumer) {
        conf_set(c, "linger.ms", "1");
        conf_set(c, "partitioner", "murmur2_random");
    } else {
        char gid[64];
        snprintf(gid, sizeof(gid), "e2e-load-%s", g->runid);
        conf_set(c, "group.id", gid); /* never joined: partitions are assigned */
        conf_set(c, "enable.auto.commit", "false");
        conf_set(c, "enable.partition.eof", "false");
    }
    /* The pass-through applies where it fits (producer keys on the consumer fail). */
    for (int i = 0; i < g->o->nkafka; i++) {
        char e[256];
        rd_kafka_conf_set(c, g->o->kkey[i], g->o->kval[i], e, sizeof(e));
    }
    return c;
}

static void wire(rd_kafka_queue_t *q, int p[2])
{
    if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0)
        die("pipe: %s", strerror(errno));
    rd_kafka_queue_io_event_enable(q, p[1], "1", 1);
}

static int topic_partitions(rd_kafka_t *rk, const char *topic)
{
    rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    int n = -1;
    for (int tries = 0; tries < 50 && n <= 0; tries++) {
        if (rd_kafka_metadata(rk, 0, t, &md, 5000) == 0) {
            if (md->topic_cnt == 1 && md->topics[0].err == 0)
                n = md->topics[0].partition_cnt;
            rd_kafka_metadata_destroy(md);
        }
        if (n <= 0)
            usleep(100000);
    }
    rd_kafka_topic_destroy(t);
    return n;
}

static void kafka_init(gen *g)
{
    char e[512];
    rd_kafka_conf_t *pc = base_conf(g, false);
    rd_kafka_conf_set_dr_msg_cb(pc, on_dr);
    rd_kafka_conf_set_opaque(pc, g);
    g->prod = rd_kafka_new(RD_KAFKA_PRODUCER, pc, e, sizeof(e));
    if (!g->prod)
        die("producer: %s", e);
    rd_kafka_conf_t *cc = base_conf(g, true);
    g->cons = rd_kafka_new(RD_KAFKA_CONSUMER, cc, e, sizeof(e));
    if (!g->cons)
        die("consumer: %s", e);
    rd_kafka_poll_set_consumer(g->cons);

    /* Replies: every partition of the reply topic, from its current end. */
    int np = topic_partitions(g->cons, g->o->reply_topic);
    if (np <= 0)
        die("reply topic %s not found", g->o->reply_topic);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(np);
    for (int i = 0; i < np; i++) {
        int64_t lo = 0, hi = 0;
        rd_kafka_resp_err_t err;
        /* a topic created a moment ago may have no leader yet */
        for (int tries = 0; tries < 100; tries++) {
            err = rd_kafka_query_watermark_offsets(g->cons, g->o->reply_topic, i, &lo, &hi, 10000);
            if (err != RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION &&
                err != RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE &&
                err != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
                break;
            usleep(100000);
        }
        if (err)
            die("watermarks: %s", rd_kafka_err2str(err));
        rd_kafka_topic_partition_list_add(l, g->o->reply_topic, i)->offset = hi;
    }
    rd_kafka_assign(g->cons, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (topic_partitions(g->prod, g->o->topic) <= 0)
        die("request topic %s not found", g->o->topic);
    wire(rd_kafka_queue_get_main(g->prod), g->ppipe);
    wire(rd_kafka_queue_get_consumer(g->cons), g->cpipe);
}

static int create_topics(const opts *o)
{
    char e[512];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    conf_set(c, "bootstrap.servers", o->bootstrap);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, e, sizeof(e));
    if (!rk)
        die("admin: %s", e);
    rd_kafka_NewTopic_t *nt[64];
    const char *names[64];
    int n = 0;
    char *spec = strdup(o->create_topics), *save = NULL;
    for (char *tok = strtok_r(spec, ", ", &save); tok && n < 64;
         tok = strtok_r(NULL, ", ", &save)) {
        char *colon = strchr(tok, ':');
        int parts = 1;
        if (colon) {
            *colon = '\0';
            parts = atoi(colon + 1);
        }
        names[n] = tok;
        nt[n] = rd_kafka_NewTopic_new(tok, parts, 1, e, sizeof(e));
        if (!nt[n])
            die("topic: %s", e);
        n++;
    }
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, nt, (size_t)n, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 60000);
    int rc = 0;
    if (!ev || rd_kafka_event_error(ev)) {
        fprintf(stderr, "e2e_load: creating topics: %s\n",
                ev ? rd_kafka_event_error_string(ev) : "timed out");
        rc = 1;
    } else {
        size_t cnt;
        const rd_kafka_topic_result_t **res =
            rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &cnt);
        for (size_t i = 0; i < cnt; i++) {
            rd_kafka_resp_err_t te = rd_kafka_topic_result_error(res[i]);
            if (te && te != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
                fprintf(stderr, "e2e_load: topic %s: %s\n", rd_kafka_topic_result_name(res[i]),
                        rd_kafka_topic_result_error_string(res[i]));
                rc = 1;
            }
        }
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    /* Wait until every topic has a leader for each partition, so that a
     * client started next (the supervisor checks its topics at start) sees it. */
    for (int tries = 0; rc == 0 && tries < 100; tries++) {
        const struct rd_kafka_metadata *md = NULL;
        int ready = 0;
        if (rd_kafka_metadata(rk, 1, NULL, &md, 5000) == 0) {
            for (int i = 0; i < n; i++) {
                for (int t = 0; t < md->topic_cnt; t++) {
                    const rd_kafka_metadata_topic_t *mt = &md->topics[t];
                    if (strcmp(mt->topic, names[i]) || mt->err || mt->partition_cnt == 0)
                        continue;
                    bool led = true;
                    for (int k = 0; k < mt->partition_cnt; k++)
                        led = led && mt->partitions[k].leader >= 0 && !mt->partitions[k].err;
                    ready += led;
                }
            }
            rd_kafka_metadata_destroy(md);
        }
        if (ready == n)
            break;
        usleep(100000);
    }
    rd_kafka_NewTopic_destroy_array(nt, (size_t)n);
    free(spec);
    rd_kafka_destroy(rk);
    return rc;
}

/* ------------------------------------------------------------ requests */

static void pk_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void send_req(gen *g, int sess, int kind, const char *op)
{
    if (g->nrecs == g->caprecs) {
        g->caprecs = g->caprecs ? g->caprecs * 2 : 1 << 16;
        g->recs = realloc(g->recs, g->caprecs * sizeof(rec));
        if (!g->recs)
            die("%s", "out of memory");
    }
    size_t seq = g->nrecs++;
    char id[48];
    snprintf(id, sizeof(id), "%s:%zu", g->runid, seq);
    g->sb.size = 0;
    msgpack_packer pk;
    msgpack_packer_init(&pk, &g->sb, msgpack_sbuffer_write);
    bool prog = kind == K_EXEC || (kind == K_SETUP && strcmp(op, "create_program") == 0);
    msgpack_pack_map(&pk, prog ? 7 : 6);
    pk_str(&pk, "v");
    msgpack_pack_int(&pk, 1);
    pk_str(&pk, "id");
    pk_str(&pk, id);
    pk_str(&pk, "session");
    pk_str(&pk, g->names[sess]);
    pk_str(&pk, "op");
    pk_str(&pk, op);
    if (prog) {
        pk_str(&pk, "program");
        pk_str(&pk, "p");
    }
    pk_str(&pk, "args");
    if (kind == K_EXEC) {
        msgpack_pack_object(&pk, *g->args.obj);
    } else if (prog) {
        msgpack_pack_map(&pk, 1);
        pk_str(&pk, "spec");
        msgpack_pack_object(&pk, *g->spec.obj);
    } else {
        msgpack_pack_object(&pk, *g->empty.obj);
    }
    pk_str(&pk, "reply_to");
    pk_str(&pk, g->o->reply_topic);

    rec *r = &g->recs[seq];
    r->sess = sess;
    r->kind = (uint8_t)kind;
    r->done = 0;
    r->sent_us = bench_now_us();
    const char *key = g->names[sess];
    for (;;) {
        rd_kafka_resp_err_t e = rd_kafka_producev(
            g->prod, RD_KAFKA_V_TOPIC(g->o->topic), RD_KAFKA_V_KEY((void *)key, strlen(key)),
            RD_KAFKA_V_VALUE(g->sb.data, g->sb.size), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_END);
        if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            rd_kafka_poll(g->prod, 10);
            continue;
        }
        if (e)
            die("produce: %s", rd_kafka_err2str(e));
        break;
    }
    g->outstanding++;
    if (kind == K_EXEC)
        g->exec_sent[sess]++;
}

static void send_exec(gen *g)
{
    int s = g->next_sess;
    g->next_sess = (g->next_sess + 1) % g->o->sessions;
    send_req(g, s, K_EXEC, "execute_program");
}

/* ------------------------------------------------------------ replies */

static void on_reply(gen *g, const rd_kafka_message_t *m)
{
    uint64_t now = bench_now_us();
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    if (msgpack_unpack_next(&u, m->payload, m->len, &off) != MSGPACK_UNPACK_SUCCESS ||
        u.data.type != MSGPACK_OBJECT_MAP) {
        g->unmatched++;
        msgpack_unpacked_destroy(&u);
        return;
    }
    const msgpack_object *id = sf_mp_get(&u.data, "id");
    const msgpack_object *ok = sf_mp_get(&u.data, "ok");
    const msgpack_object *result = sf_mp_get(&u.data, "result");
    size_t rl = strlen(g->runid);
    if (!id || id->type != MSGPACK_OBJECT_STR || id->via.str.size <= rl + 1 ||
        memcmp(id->via.str.ptr, g->runid, rl) != 0 || id->via.str.ptr[rl] != ':') {
        g->stale++;
        msgpack_unpacked_destroy(&u);
        return;
    }
    size_t seq = 0;
    for (uint32_t i = (uint32_t)rl + 1; i < id->via.str.size; i++)
        seq = seq * 10 + (size_t)(id->via.str.ptr[i] - '0');
    if (seq >= g->nrecs || g->recs[seq].done) {
        g->unmatched++;
        msgpack_unpacked_destroy(&u);
        return;
    }
    rec *r = &g->recs[seq];
    r->done = 1;
    g->outstanding--;
    bool is_ok = !(ok && ok->type == MSGPACK_OBJECT_BOOLEAN && !ok->via.boolean);
    if (!is_ok) {
        g->errors++;
        if (!g->first_error[0]) {
            const msgpack_object *err = sf_mp_get(&u.data, "error");
            const msgpack_object *msg = err ? sf_mp_get(err, "message") : NULL;
            snprintf(g->first_error, sizeof(g->first_error), "%.*s",
                     msg && msg->type == MSGPACK_OBJECT_STR ? (int)msg->via.str.size : 7,
                     msg && msg->type == MSGPACK_OBJECT_STR ? msg->via.str.ptr : "unknown");
        }
    }
    switch (r->kind) {
    case K_PROBE:
        g->probe_answered = 1;
        break;
    case K_SETUP:
        if (!is_ok)
            g->setup_failed++;
        break;
    case K_EXEC:
        if (is_ok)
            g->exec_ok[r->sess]++;
        if (g->measuring && now >= g->m_start) {
            g->m_replies++;
            if (!is_ok)
                g->m_errors++;
            bench_lat_add(&g->lat, now - r->sent_us);
            const msgpack_object *t = sf_mp_get(&u.data, "timings");
            if (t && t->type == MSGPACK_OBJECT_MAP) {
                const msgpack_object *q = sf_mp_get(t, "queued_us"), *x = sf_mp_get(t, "exec_us"),
                                     *tt = sf_mp_get(t, "total_us");
                if (q && x && tt && q->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
                    x->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
                    tt->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
                    g->t_n++;
                    g->t_queued += q->via.u64;
                    g->t_exec += x->via.u64;
                    g->t_total += tt->via.u64;
                    bench_lat_add(&g->lat_total, tt->via.u64);
                }
            }
        }
        break;
    case K_VERIFY: {
        g->verify_checked++;
        const msgpack_object *n =
            result && result->type == MSGPACK_OBJECT_MAP ? sf_mp_get(result, "n") : NULL;
        long have = -1;
        if (n && n->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            have = (long)n->via.u64;
        if (!is_ok)
            g->verify_errors++;
        if (have != g->exec_sent[r->sess]) {
            g->verify_mismatch++;
            if (!g->first_mismatch[0])
                snprintf(g->first_mismatch, sizeof(g->first_mismatch),
                         "session %s: n=%ld, executes sent=%ld, ok replies=%ld", g->names[r->sess],
                         have, g->exec_sent[r->sess], g->exec_ok[r->sess]);
        }
        break;
    }
    }
    msgpack_unpacked_destroy(&u);
}

static void drain_fd(int fd)
{
    char buf[256];
    while (read(fd, buf, sizeof(buf)) > 0)
        ;
}

/* Serves Kafka for at most timeout_us (0: only what is ready now). */
static void pump(gen *g, int64_t timeout_us)
{
    struct pollfd pf[2] = {{g->cpipe[0], POLLIN, 0}, {g->ppipe[0], POLLIN, 0}};
    if (timeout_us > 0) {
        struct timespec ts = {(time_t)(timeout_us / 1000000), (long)(timeout_us % 1000000) * 1000};
        ppoll(pf, 2, &ts, NULL);
    }
    drain_fd(g->cpipe[0]);
    drain_fd(g->ppipe[0]);
    rd_kafka_message_t *m;
    while ((m = rd_kafka_consumer_poll(g->cons, 0)) != NULL) {
        if (!m->err)
            on_reply(g, m);
        else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            fprintf(stderr, "e2e_load: consume: %s\n", rd_kafka_message_errstr(m));
        rd_kafka_message_destroy(m);
    }
    rd_kafka_poll(g->prod, 0);
}

/* Waits until nothing is outstanding or deadline; returns what is left. */
static int wait_outstanding(gen *g, double timeout_s)
{
    uint64_t deadline = bench_now_us() + (uint64_t)(timeout_s * 1e6);
    while (g->outstanding > 0 && !g_stop && bench_now_us() < deadline)
        pump(g, 50000);
    return g->outstanding;
}

/* ------------------------------------------------------------ CPU of watched processes */

static uint64_t watch_cpu(const watch *w)
{
    uint64_t t = 0;
    for (int i = 0; i < w->npids; i++)
        t += bench_pid_cpu_us(w->pids[i]);
    return t;
}

static void parse_watch(opts *o, const char *spec)
{
    if (o->nwatch == MAX_WATCH)
        return;
    watch *w = &o->watches[o->nwatch++];
    const char *eq = strchr(spec, '=');
    if (!eq)
        die("--watch NAME=PID[,PID...], got %s", spec);
    snprintf(w->name, sizeof(w->name), "%.*s", (int)(eq - spec), spec);
    const char *p = eq + 1;
    while (*p && w->npids < MAX_PIDS) {
        char *end;
        long pid = strtol(p, &end, 10);
        if (end == p)
            break;
        if (pid > 0)
            w->pids[w->npids++] = (int)pid;
        p = *end == ',' ? end + 1 : end;
    }
}

/* ------------------------------------------------------------ main */

static void usage(void)
{
    fprintf(stderr, "usage: e2e_load --bootstrap B --topic T --reply-topic R [--sessions 256]\n"
                    "       [--mode closed|open] [--inflight 2000] [--rate R] [--warmup-s 1.5]\n"
                    "       [--duration-s 4] [--setup] [--program-entry snakefleet.examples:noop]\n"
                    "       [--args JSON] [--verify-counter] [--session-prefix P] [--label L]\n"
                    "       [--system NAME] [--watch NAME=PID,...] [--kafka.KEY=VALUE ...]\n"
                    "   or: e2e_load --bootstrap B --create-topics name:parts,...\n");
    exit(2);
}

int main(int argc, char **argv)
{
    static opts o = {.sessions = 256,
                     .inflight = 2000,
                     .warmup_s = 1.5,
                     .duration_s = 4,
                     .drain_timeout_s = 30,
                     .ready_timeout_s = 60,
                     .mode = "closed",
                     .entry = "snakefleet.examples:noop",
                     .args_json = "{}",
                     .label = "",
                     .system = "e2e"};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define OPT(name) (strcmp(a, name) == 0 && v && (i++, 1))
        if (OPT("--bootstrap"))
            o.bootstrap = v;
        else if (OPT("--topic"))
            o.topic = v;
        else if (OPT("--reply-topic"))
            o.reply_topic = v;
        else if (OPT("--sessions"))
            o.sessions = atoi(v);
        else if (OPT("--session-prefix"))
            o.prefix = v;
        else if (OPT("--mode"))
            o.mode = v;
        else if (OPT("--inflight"))
            o.inflight = atoi(v);
        else if (OPT("--rate"))
            o.rate = atof(v);
        else if (OPT("--warmup-s"))
            o.warmup_s = atof(v);
        else if (OPT("--duration-s"))
            o.duration_s = atof(v);
        else if (OPT("--drain-timeout-s"))
            o.drain_timeout_s = atof(v);
        else if (OPT("--ready-timeout-s"))
            o.ready_timeout_s = atof(v);
        else if (OPT("--program-entry"))
            o.entry = v;
        else if (OPT("--args"))
            o.args_json = v;
        else if (OPT("--label"))
            o.label = v;
        else if (OPT("--system"))
            o.system = v;
        else if (OPT("--create-topics"))
            o.create_topics = v;
        else if (OPT("--watch"))
            parse_watch(&o, v);
        else if (strcmp(a, "--setup") == 0)
            o.setup = true;
        else if (strcmp(a, "--verify-counter") == 0)
            o.verify = true;
        else if (strncmp(a, "--kafka.", 8) == 0 && strchr(a, '=') && o.nkafka < MAX_KAFKA_KV) {
            char *kv = strdup(a + 8);
            char *eq = strchr(kv, '=');
            *eq = '\0';
            o.kkey[o.nkafka] = kv;
            o.kval[o.nkafka++] = eq + 1;
        } else
            usage();
#undef OPT
    }
    if (!o.bootstrap)
        usage();
    if (o.create_topics)
        return create_topics(&o);
    if (!o.topic || !o.reply_topic || o.sessions < 1 || o.inflight < 1)
        usage();
    bool open_loop = strcmp(o.mode, "open") == 0;
    if (open_loop && o.rate <= 0)
        usage();
    signal(SIGINT, on_sig);
    signal(SIGTERM, on_sig);

    static gen g;
    g.o = &o;
    snprintf(g.runid, sizeof(g.runid), "%08x",
             (unsigned)(bench_now_us() ^ (uint64_t)getpid() << 20));
    char prefix[64];
    snprintf(prefix, sizeof(prefix), "%s", o.prefix ? o.prefix : g.runid);
    g.names = calloc((size_t)o.sessions, sizeof(*g.names));
    g.exec_sent = calloc((size_t)o.sessions, sizeof(long));
    g.exec_ok = calloc((size_t)o.sessions, sizeof(long));
    for (int i = 0; i < o.sessions; i++)
        snprintf(g.names[i], sizeof(g.names[i]), "%.48s-%04d", prefix, i % 10000);
    char spec[512];
    snprintf(spec, sizeof(spec), "{\"kind\": \"callable\", \"entry\": \"%s\"}", o.entry);
    if (bench_obj_init(&g.args, o.args_json) < 0 || bench_obj_init(&g.spec, spec) < 0 ||
        bench_obj_init(&g.empty, "{}") < 0)
        return 2;
    msgpack_sbuffer_init(&g.sb);
    kafka_init(&g);

    /* ready: the consumer group under test answers */
    uint64_t t_ready0 = bench_now_us(), last_probe = 0;
    while (!g.probe_answered && !g_stop) {
        uint64_t now = bench_now_us();
        if (now - t_ready0 > (uint64_t)(o.ready_timeout_s * 1e6)) {
            fprintf(stderr, "e2e_load: no reply to a ping within %.0f s on %s -> %s\n",
                    o.ready_timeout_s, o.topic, o.reply_topic);
            return 1;
        }
        if (now - last_probe > 2000000) {
            send_req(&g, 0, K_PROBE, "ping");
            last_probe = now;
        }
        pump(&g, 50000);
    }
    double ready_s = (double)(bench_now_us() - t_ready0) / 1e6;
    wait_outstanding(&g, 5); /* late answers to earlier probes */
    g.outstanding = 0;

    /* setup */
    uint64_t t_setup0 = bench_now_us();
    if (o.setup) {
        for (int s = 0; s < o.sessions && !g_stop; s++) {
            send_req(&g, s, K_SETUP, "create_session");
            send_req(&g, s, K_SETUP, "create_program");
            if (g.outstanding >= o.inflight)
                pump(&g, 1000);
        }
        if (wait_outstanding(&g, o.drain_timeout_s) > 0 || g.setup_failed) {
            fprintf(stderr, "e2e_load: setup failed: %d failed, %d unanswered; first error: %s\n",
                    g.setup_failed, g.outstanding, g.first_error);
            return 1;
        }
    }
    double setup_s = (double)(bench_now_us() - t_setup0) / 1e6;
    g.errors = 0;
    g.first_error[0] = '\0';

    /* warm-up + measure */
    uint64_t t0 = bench_now_us();
    g.m_start = t0 + (uint64_t)(o.warmup_s * 1e6);
    g.m_end = g.m_start + (uint64_t)(o.duration_s * 1e6);
    g.measuring = true;
    uint64_t cpu0 = 0, cpu1 = 0, sent_open = 0;
    bool started = false;
    while (!g_stop) {
        uint64_t now = bench_now_us();
        if (!started && now >= g.m_start) {
            started = true;
            cpu0 = bench_self_cpu_us();
            for (int i = 0; i < o.nwatch; i++)
                o.watches[i].start_us = watch_cpu(&o.watches[i]);
        }
        if (now >= g.m_end)
            break;
        int64_t wait_us;
        if (open_loop) {
            uint64_t due = (uint64_t)((double)(now - t0) * o.rate / 1e6);
            while (sent_open < due) {
                send_exec(&g);
                sent_open++;
            }
            /* sleep until about the next half millisecond's worth is due */
            wait_us = 500;
        } else {
            while (g.outstanding < o.inflight)
                send_exec(&g);
            wait_us = 100000;
        }
        if ((int64_t)(g.m_end - now) < wait_us)
            wait_us = (int64_t)(g.m_end - now);
        if (!started && (int64_t)(g.m_start - now) < wait_us)
            wait_us = (int64_t)(g.m_start - now);
        pump(&g, wait_us > 0 ? wait_us : 0);
    }
    cpu1 = bench_self_cpu_us();
    for (int i = 0; i < o.nwatch; i++)
        o.watches[i].cpu_us = watch_cpu(&o.watches[i]) - o.watches[i].start_us;
    g.measuring = false;
    double secs = (double)(g.m_end - g.m_start) / 1e6;
    uint64_t t_drain0 = bench_now_us();
    int lost = wait_outstanding(&g, o.drain_timeout_s);
    double drain_s = (double)(bench_now_us() - t_drain0) / 1e6;

    /* verify */
    if (o.verify && lost == 0) {
        for (int s = 0; s < o.sessions; s++) {
            send_req(&g, s, K_VERIFY, "get_session_state");
            if (g.outstanding >= o.inflight)
                pump(&g, 1000);
        }
        wait_outstanding(&g, o.drain_timeout_s);
    }

    json_t *out = json_object();
    json_object_set_new(out, "bench", json_string("e2e"));
    json_object_set_new(out, "system", json_string(o.system));
    json_object_set_new(out, "mode", json_string(open_loop ? "open" : "closed"));
    if (o.label[0])
        json_object_set_new(out, "label", json_string(o.label));
    json_object_set_new(out, "entry", json_string(o.entry));
    json_object_set_new(out, "sessions", json_integer(o.sessions));
    json_object_set_new(out, "inflight", json_integer(open_loop ? 0 : o.inflight));
    json_object_set_new(out, "rate", json_real(open_loop ? o.rate : 0));
    json_object_set_new(out, "seconds", json_real(secs));
    json_object_set_new(out, "replies", json_integer((json_int_t)g.m_replies));
    json_object_set_new(out, "req_per_s", json_real((double)g.m_replies / secs));
    json_object_set_new(out, "errors", json_integer((json_int_t)g.m_errors));
    json_object_set_new(out, "errors_total", json_integer((json_int_t)g.errors));
    if (g.first_error[0])
        json_object_set_new(out, "first_error", json_string(g.first_error));
    json_object_set_new(out, "sent", json_integer((json_int_t)g.nrecs));
    json_object_set_new(out, "lost", json_integer(lost));
    json_object_set_new(out, "delivery_failed", json_integer((json_int_t)g.delivery_failed));
    json_object_set_new(out, "stale", json_integer((json_int_t)g.stale));
    json_object_set_new(out, "unmatched", json_integer((json_int_t)g.unmatched));
    bench_lat_json(out, "", &g.lat);
    json_object_set_new(out, "drv_cpu_us_per_req",
                        json_real(g.m_replies ? (double)(cpu1 - cpu0) / (double)g.m_replies : 0));
    json_t *cpu = json_object();
    for (int i = 0; i < o.nwatch; i++)
        json_object_set_new(
            cpu, o.watches[i].name,
            json_real(g.m_replies ? (double)o.watches[i].cpu_us / (double)g.m_replies : 0));
    json_object_set_new(out, "cpu_us_per_req", cpu);
    json_t *cores = json_object();
    for (int i = 0; i < o.nwatch; i++)
        json_object_set_new(cores, o.watches[i].name,
                            json_real((double)o.watches[i].cpu_us / (secs * 1e6)));
    json_object_set_new(cores, "driver", json_real((double)(cpu1 - cpu0) / (secs * 1e6)));
    json_object_set_new(out, "cores_used", cores);
    if (g.t_n) {
        /* where a request's time goes inside the supervisor (its reply's timings) */
        json_t *t = json_object();
        json_object_set_new(t, "queued_us_mean", json_real((double)g.t_queued / (double)g.t_n));
        json_object_set_new(t, "exec_us_mean", json_real((double)g.t_exec / (double)g.t_n));
        json_object_set_new(t, "total_us_mean", json_real((double)g.t_total / (double)g.t_n));
        bench_lat_json(t, "total_", &g.lat_total);
        json_object_set_new(out, "sup_timings", t);
    }
    json_object_set_new(out, "ready_s", json_real(ready_s));
    json_object_set_new(out, "setup_s", json_real(setup_s));
    json_object_set_new(out, "drain_s", json_real(drain_s));
    if (o.verify) {
        long execs = 0;
        for (int s = 0; s < o.sessions; s++)
            execs += g.exec_sent[s];
        json_t *v = json_object();
        json_object_set_new(v, "sessions_checked", json_integer(g.verify_checked));
        json_object_set_new(v, "mismatches", json_integer(lost ? -1 : g.verify_mismatch));
        json_object_set_new(v, "errors", json_integer(g.verify_errors));
        json_object_set_new(v, "executes", json_integer(execs));
        if (g.first_mismatch[0])
            json_object_set_new(v, "first_mismatch", json_string(g.first_mismatch));
        json_object_set_new(out, "verify", v);
    }
    bench_emit(out);
    rd_kafka_consumer_close(g.cons);
    rd_kafka_destroy(g.cons);
    rd_kafka_flush(g.prod, 2000);
    rd_kafka_destroy(g.prod);
    return 0;
}
