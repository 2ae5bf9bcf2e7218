/*
 * config.c — the option table and its three sources; see config.h.
 *
 * One table lists every option once: section, key, type, where it lives in
 * sf_config, its default, bounds and help. Loading, --print-config and --help
 * all walk that table, so an option cannot be documented and not parsed (or
 * the reverse).
 */
#include "config.h"

#include <stdarg.h>

#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

typedef enum { T_U32, T_U64, T_INT, T_BOOL, T_STR } opt_type;

typedef struct opt {
    const char *section, *key;
    opt_type type;
    size_t offset;
    size_t size; /* T_STR: capacity */
    const char *def;
    long long min, max;
    const char *help;
} opt;

#define C(field)   offsetof(sf_config, field)
#define P(field)   offsetof(sf_config, pool) + offsetof(sf_pool_config, field)
#define S(field)   C(field), sizeof(((sf_config *)0)->field)
#define N(field)   C(field), 0
#define PN(field)  P(field), 0
#define MAX_U32    4294967295LL
#define DEF_CORES2 "2*cores"
#define DEF_CORES  "cores"

static const opt OPTS[] = {
    {"supervisor", "id", T_STR, S(id), "", 0, 0,
     "supervisor id in replies and telemetry (default host:pid)"},
    {"supervisor", "shutdown_timeout", T_U32, N(shutdown_timeout_ms), "30000", 100, MAX_U32,
     "ms to drain on SIGTERM before stopping anyway"},
    {"supervisor", "max_queued", T_U32, N(max_queued), "10000", 1, 10000000,
     "requests held before partitions are paused"},
    {"supervisor", "resume_below", T_U32, N(resume_below), "5000", 0, 10000000,
     "paused partitions resume below this many held requests"},
    {"supervisor", "poison_threshold", T_U32, N(poison_threshold), "3", 1, 1000,
     "worker crashes by one request before it goes to the DLQ"},
    {"supervisor", "state_cache", T_U64, N(state_cache_bytes), "67108864", 0, LLONG_MAX,
     "bytes of session state and program specs kept between requests (0: read every time)"},
    {"supervisor", "max_message_bytes", T_U32, N(max_message_bytes), "1048576", 64, 1073741824,
     "largest request accepted"},
    {"supervisor", "revoke_timeout", T_U32, N(revoke_timeout_ms), "10000", 0, MAX_U32,
     "ms to wait for in-flight calls of a revoked partition"},
    {"supervisor", "http_listen", T_STR, S(http_listen), "", 0, 0,
     "host:port for /metrics and /health (empty: off)"},
    {"supervisor", "log_level", T_STR, S(log_level), "info", 0, 0, "debug, info, warn or error"},
    {"supervisor", "partition_check", T_STR, S(partition_check_name), "refuse", 0, 0,
     "a request whose key maps to another partition under topics.partitioner: refuse "
     "(wrong_partition error, not run), warn (run, logged and counted) or off"},
    {"topics", "group", T_STR, S(group), "snakefleet", 0, 0, "Kafka consumer group"},
    {"topics", "requests", T_STR, S(requests), "snakefleet.requests", 0, 0,
     "request topics (comma-separated)"},
    {"topics", "replies", T_STR, S(replies), "snakefleet.replies", 0, 0,
     "reply topic for requests that name none"},
    {"topics", "telemetry", T_STR, S(telemetry_topic), "snakefleet.telemetry", 0, 0,
     "telemetry topic"},
    {"topics", "dlq", T_STR, S(dlq), "snakefleet.dlq", 0, 0, "dead-letter topic"},
    {"topics", "create", T_BOOL, N(create_topics), "false", 0, 1,
     "create missing topics at start-up"},
    {"topics", "partitions", T_U32, N(partitions), "8", 1, 10000,
     "partitions of a created request topic"},
    {"topics", "replication", T_U32, N(replication), "1", 1, 100,
     "replication factor of created topics"},
    {"topics", "partitioner", T_STR, S(partitioner_name), "murmur2_random", 0, 0,
     "how the fleet's producers map a key to a partition (librdkafka's name; murmur2_random "
     "is the Java client's murmur2): murmur2_random, murmur2, consistent_random, consistent, "
     "fnv1a_random or fnv1a"},
    {"telemetry", "interval", T_U32, N(telemetry_interval_ms), "5000", 100, MAX_U32,
     "ms between telemetry snapshots"},
    {"redis", "url", T_STR, S(redis_url), "redis://127.0.0.1:6379", 0, 0,
     "session store; several, comma-separated, are shards: partition N of every request topic "
     "keeps its sessions, leases and reply records on shard N % count (the same list, in the "
     "same order, on every supervisor of the fleet)"},
    {"redis", "sentinels", T_STR, S(redis_sentinels), "", 0, 0,
     "host[:port],... of Redis Sentinels to ask for the primary (empty: redis.url's host)"},
    {"redis", "master_name", T_STR, S(redis_master_name), "mymaster", 0, 0,
     "the primary's name in Sentinel (with redis.sentinels); several, comma-separated, are "
     "shards as for redis.url (which then gives only the db)"},
    {"redis", "key_prefix", T_STR, S(redis_key_prefix), "sf", 0, 0,
     "first part of every Redis key of this fleet: fleets sharing a database must differ"},
    {"redis", "user", T_STR, S(redis_user), "", 0, 0,
     "ACL user for AUTH (empty: the default user)"},
    {"redis", "password_env", T_STR, S(redis_password_env), "", 0, 0,
     "name of the environment variable holding the Redis password (empty: no AUTH)"},
    {"redis", "session_ttl", T_U32, N(session_ttl_s), "86400", 1, MAX_U32,
     "seconds a session lives after its last use"},
    {"redis", "dedupe_ttl", T_U32, N(dedupe_ttl_s), "60", 0, MAX_U32,
     "seconds a request's reply is still remembered after its offset is committed, for "
     "clients that produce it again"},
    {"redis", "min_replicas", T_U32, N(redis_min_replicas), "0", 0, 100,
     "replicas every write must reach (WAIT) before it is answered; 0: the primary's word"},
    {"redis", "replica_timeout", T_U32, N(redis_replica_timeout_ms), "1000", 1, 600000,
     "ms a write waits for min_replicas before it counts as failed (and is run again)"},
    {"redis", "link_timeout", T_U32, N(redis_link_timeout_ms), "3000", 500, 600000,
     "ms Redis's host may leave what was sent unacknowledged, or a connect unanswered, before "
     "the link counts as lost (TCP_USER_TIMEOUT; an idle link is probed every second): a "
     "network cut is noticed in this time, not never"},
    {"redis", "leave_after", T_U32, N(redis_leave_after_ms), "10000", 0, MAX_U32,
     "ms the session store may stay out of reach before this supervisor leaves the consumer "
     "group, so that members that reach it serve its partitions (it joins again once the store "
     "is back); 0: never leave"},
    {"redis", "retry_timeout", T_U32, N(redis_retry_ms), "10000", 0, MAX_U32,
     "ms a request waits for Redis to come back before an unavailable reply"},
    {"redis", "max_sessions", T_U32, N(max_sessions), "0", 0, MAX_U32,
     "sessions the fleet may store; create_session beyond it gets session_limit (0: no limit)"},
    {"redis", "max_sessions_warn", T_U32, N(max_sessions_warn_pct), "90", 1, 100,
     "warn when this percentage of max_sessions is stored"},
    {"pool", "pool_size", T_INT, PN(pool_size), DEF_CORES2, 0, 64, "long-lived workers"},
    {"pool", "max_overflow", T_INT, PN(max_overflow), DEF_CORES, 0, 64, "extra workers under load"},
    {"pool", "lazy", T_BOOL, PN(lazy), "false", 0, 1, "start workers on demand"},
    {"pool", "checkout_timeout", T_U32, PN(checkout_timeout_ms), "5000", 0, MAX_U32,
     "ms a call may wait for a worker"},
    {"pool", "health_check_interval", T_U32, PN(health_check_interval_ms), "30000", 0, MAX_U32,
     "ms between pings (0: off)"},
    {"pool", "request_timeout", T_U32, PN(request_timeout_ms), "60000", 0, MAX_U32,
     "ms a call may run before its worker is killed (0: none)"},
    {"pool", "startup_timeout", T_U32, PN(startup_timeout_ms), "30000", 1, MAX_U32,
     "ms a new worker may take to send ready"},
    {"pool", "shutdown_timeout", T_U32, PN(shutdown_timeout_ms), "10000", 1, MAX_U32,
     "ms to stop a worker: shutdown, SIGTERM, SIGKILL"},
    {"pool", "overflow_idle_timeout", T_U32, PN(overflow_idle_timeout_ms), "10000", 0, MAX_U32,
     "ms an idle overflow worker lives"},
    {"pool", "max_requests", T_U64, PN(max_requests), "0", 0, LLONG_MAX,
     "recycle a worker after this many calls (0: never)"},
    {"pool", "max_requests_jitter", T_U32, PN(max_requests_jitter_pct), "10", 0, 100,
     "± percent spread of max_requests"},
    {"pool", "max_rss_mb", T_U32, PN(max_rss_mb), "0", 0, MAX_U32,
     "recycle a worker above this RSS (0: never)"},
    {"pool", "pipeline_depth", T_INT, PN(pipeline_depth), "1", 1, 1024,
     "calls in flight per worker"},
    {"pool", "affinity", T_STR, S(affinity), "hint", 0, 0, "hint, strict or strict_fail_fast"},
    {"pool", "restart_backoff", T_U32, PN(restart_backoff_ms), "100", 1, MAX_U32,
     "first restart delay after a crash, ms (doubles)"},
    {"pool", "restart_backoff_max", T_U32, PN(restart_backoff_max_ms), "10000", 1, MAX_U32,
     "longest restart delay, ms"},
    {"pool", "crash_loop_threshold", T_INT, PN(crash_loop_threshold), "5", 1, 1000,
     "crashes within crash_loop_window that mark the pool degraded"},
    {"pool", "crash_loop_window", T_U32, PN(crash_loop_window_ms), "30000", 1, MAX_U32, "ms"},
    {"pool", "max_frame_bytes", T_U32, PN(max_frame_bytes), "16777216", 1024, 1073741824,
     "largest frame on a worker pipe"},
    {"python", "executable", T_STR, S(python), "", 0, 0,
     "interpreter (absolute path; default: the project venv, else python3 on PATH)"},
    {"python", "path", T_STR, S(python_path), "", 0, 0,
     "extra PYTHONPATH entries for user programs"},
    {"python", "preload", T_STR, S(preload), "", 0, 0,
     "modules the zygote imports once (comma-separated)"},
    {"python", "zygote", T_BOOL, PN(zygote), "true", 0, 1,
     "fork workers from a preloaded zygote when preload is set"},
    {"python", "thread_limits", T_BOOL, PN(thread_limits), "true", 0, 1,
     "OMP/OPENBLAS/MKL/NUMEXPR threads = 1 in workers"},
    {"python", "worker_module", T_STR, S(worker_module), "snakefleet.worker", 0, 0,
     "module run by each worker"},
    {"python", "lm_model", T_STR, S(lm_model), "", 0, 0,
     "default LM for dspy programs (\"dummy\" for offline)"},
    {"python", "lm_api_base", T_STR, S(lm_api_base), "", 0, 0, "LM API base URL"},
    {"python", "lm_api_key_env", T_STR, S(lm_api_key_env), "", 0, 0,
     "environment variable holding the LM API key"},
};
#define NOPTS (int)(sizeof(OPTS) / sizeof(OPTS[0]))

static const char *const SECTIONS[] = {"supervisor", "topics", "telemetry", "redis",
                                       "pool",       "python", "kafka"};

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static const opt *find_opt(const char *section, const char *key, int *index)
{
    for (int i = 0; i < NOPTS; i++) {
        if (strcmp(OPTS[i].section, section) == 0 && strcmp(OPTS[i].key, key) == 0) {
            if (index)
                *index = i;
            return &OPTS[i];
        }
    }
    return NULL;
}

static long cores(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? n : 1;
}

/* Parses and stores one option value. */
static int set_value(sf_config *c, const opt *o, int idx, const char *value, const char *source,
                     char *err, size_t errlen)
{
    char *base = (char *)c;
    if (o->type == T_STR) {
        if (strlen(value) >= o->size)
            return fail(err, errlen, "%s.%s (%s): value is longer than %zu bytes", o->section,
                        o->key, source, o->size - 1);
        snprintf(base + o->offset, o->size, "%s", value);
    } else if (o->type == T_BOOL) {
        bool b;
        if (!strcmp(value, "true") || !strcmp(value, "1") || !strcmp(value, "yes") ||
            !strcmp(value, "on"))
            b = true;
        else if (!strcmp(value, "false") || !strcmp(value, "0") || !strcmp(value, "no") ||
                 !strcmp(value, "off"))
            b = false;
        else
            return fail(err, errlen, "%s.%s (%s): '%s' is not a boolean (true/false)", o->section,
                        o->key, source, value);
        memcpy(base + o->offset, &b, sizeof(b));
    } else {
        long long v;
        if (!strcmp(value, DEF_CORES2))
            v = 2 * cores();
        else if (!strcmp(value, DEF_CORES))
            v = cores();
        else {
            char *end;
            errno = 0;
            v = strtoll(value, &end, 10);
            if (errno || end == value || *end != '\0')
                return fail(err, errlen, "%s.%s (%s): '%s' is not an integer", o->section, o->key,
                            source, value);
        }
        if (v < o->min || v > o->max)
            return fail(err, errlen, "%s.%s (%s): %lld is out of range %lld..%lld", o->section,
                        o->key, source, v, o->min, o->max);
        if (o->type == T_U32) {
            uint32_t u = (uint32_t)v;
            memcpy(base + o->offset, &u, sizeof(u));
        } else if (o->type == T_U64) {
            uint64_t u = (uint64_t)v;
            memcpy(base + o->offset, &u, sizeof(u));
        } else {
            int i = (int)v;
            memcpy(base + o->offset, &i, sizeof(i));
        }
    }
    snprintf(c->sources[idx], sizeof(c->sources[idx]), "%s", source);
    return 0;
}

static bool known_section(const char *s)
{
    for (size_t i = 0; i < sizeof(SECTIONS) / sizeof(SECTIONS[0]); i++) {
        if (strcmp(SECTIONS[i], s) == 0)
            return true;
    }
    return false;
}

int sf_config_kafka_set(sf_config *c, const char *key, const char *value, const char *source)
{
    for (int i = 0; i < c->nkafka; i++) {
        if (strcmp(c->kafka[i].key, key) == 0) {
            snprintf(c->kafka[i].value, sizeof(c->kafka[i].value), "%s", value);
            snprintf(c->kafka[i].source, sizeof(c->kafka[i].source), "%s", source);
            return 0;
        }
    }
    if (c->nkafka == SF_CONFIG_MAX_KAFKA || strlen(key) >= sizeof(c->kafka[0].key) ||
        strlen(value) >= sizeof(c->kafka[0].value))
        return -1;
    sf_kv *kv = &c->kafka[c->nkafka++];
    snprintf(kv->key, sizeof(kv->key), "%s", key);
    snprintf(kv->value, sizeof(kv->value), "%s", value);
    snprintf(kv->source, sizeof(kv->source), "%s", source);
    return 0;
}

const char *sf_config_kafka_get(const sf_config *c, const char *key)
{
    for (int i = 0; i < c->nkafka; i++) {
        if (strcmp(c->kafka[i].key, key) == 0)
            return c->kafka[i].value;
    }
    return NULL;
}

static int set_key(sf_config *c, const char *section, const char *key, const char *value,
                   const char *source, char *err, size_t errlen)
{
    if (strcmp(section, "kafka") == 0) {
        if (sf_config_kafka_set(c, key, value, source) < 0)
            return fail(err, errlen, "kafka.%s (%s): too many [kafka] keys or too long", key,
                        source);
        return 0;
    }
    if (!known_section(section))
        return fail(err, errlen, "%s: unknown section [%s]", source, section);
    int idx;
    const opt *o = find_opt(section, key, &idx);
    if (o == NULL)
        return fail(err, errlen, "%s: unknown key '%s' in [%s]", source, key, section);
    return set_value(c, o, idx, value, source, err, errlen);
}

void sf_config_defaults(sf_config *c)
{
    memset(c, 0, sizeof(*c));
    sf_pool_config_defaults(&c->pool);
    char err[256];
    for (int i = 0; i < NOPTS; i++) {
        if (set_value(c, &OPTS[i], i, OPTS[i].def, "default", err, sizeof(err)) < 0)
            abort(); /* a broken default is a bug in the table */
    }
}

typedef struct ini_ctx {
    sf_config *c;
    const char *path;
    char *err;
    size_t errlen;
    int failed;
} ini_ctx;

/* Debian's libinih is built without line numbers: sources name the file. */
static int on_ini(void *user, const char *section, const char *key, const char *value)
{
    ini_ctx *x = user;
    if (x->failed)
        return 0;
    char source[160];
    snprintf(source, sizeof(source), "file %s", x->path);
    if (set_key(x->c, section, key, value, source, x->err, x->errlen) < 0) {
        x->failed = 1;
        return 0;
    }
    return 1;
}

int sf_config_load_file(sf_config *c, const char *path, char *err, size_t errlen)
{
    ini_ctx x = {c, path, err, errlen, 0};
    int rc = ini_parse(path, on_ini, &x);
    if (x.failed)
        return -1;
    if (rc < 0)
        return fail(err, errlen, "cannot read config file %s: %s", path, strerror(errno));
    if (rc > 0)
        return fail(err, errlen, "%s:%d: syntax error", path, rc);
    return 0;
}

int sf_config_load_env(sf_config *c, char **envp, char *err, size_t errlen)
{
    static const char prefix[] = "SNAKEFLEET_";
    for (char **e = envp; e && *e; e++) {
        if (strncmp(*e, prefix, sizeof(prefix) - 1) != 0)
            continue;
        const char *rest = *e + sizeof(prefix) - 1;
        const char *eq = strchr(rest, '=');
        if (eq == NULL)
            continue;
        for (size_t s = 0; s < sizeof(SECTIONS) / sizeof(SECTIONS[0]); s++) {
            size_t sl = strlen(SECTIONS[s]);
            if ((size_t)(eq - rest) <= sl + 1 || rest[sl] != '_' ||
                strncasecmp(rest, SECTIONS[s], sl) != 0)
                continue;
            char key[128];
            size_t kl = (size_t)(eq - rest) - sl - 1;
            if (kl >= sizeof(key))
                return fail(err, errlen, "environment: %.*s: name too long", (int)(eq - *e), *e);
            bool kafka = strcmp(SECTIONS[s], "kafka") == 0;
            for (size_t i = 0; i < kl; i++) {
                char ch = rest[sl + 1 + i];
                ch = (char)(ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch);
                key[i] = kafka && ch == '_' ? '.' : ch; /* librdkafka keys use dots */
            }
            key[kl] = '\0';
            char source[160];
            snprintf(source, sizeof(source), "env %.*s", (int)(eq - *e), *e);
            if (set_key(c, SECTIONS[s], key, eq + 1, source, err, errlen) < 0)
                return -1;
            break;
        }
    }
    return 0;
}

int sf_config_set(sf_config *c, const char *assignment, const char *source, char *err,
                  size_t errlen)
{
    const char *dot = strchr(assignment, '.');
    const char *eq = strchr(assignment, '=');
    if (dot == NULL || eq == NULL || dot > eq)
        return fail(err, errlen, "%s: '%s' is not section.key=value", source, assignment);
    char section[64], key[128];
    if ((size_t)(dot - assignment) >= sizeof(section) || (size_t)(eq - dot - 1) >= sizeof(key))
        return fail(err, errlen, "%s: '%s': name too long", source, assignment);
    memcpy(section, assignment, (size_t)(dot - assignment));
    section[dot - assignment] = '\0';
    memcpy(key, dot + 1, (size_t)(eq - dot - 1));
    key[eq - dot - 1] = '\0';
    return set_key(c, section, key, eq + 1, source, err, errlen);
}

/* The interpreter when none is configured: the project venv's, else python3 on PATH. */
static void default_python(char *out, size_t cap)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        exe[n] = '\0';
        /* <root>/build/<kind>/{supervisor,cli}/binary → <root>/.venv/bin/python */
        for (int up = 0; up < 5; up++) {
            char *slash = strrchr(exe, '/');
            if (slash == NULL)
                break;
            *slash = '\0';
            char cand[PATH_MAX + 32];
            snprintf(cand, sizeof(cand), "%s/.venv/bin/python", exe);
            if (access(cand, X_OK) == 0 && strlen(cand) < cap) {
                memcpy(out, cand, strlen(cand) + 1);
                return;
            }
        }
    }
    const char *path = getenv("PATH");
    char buf[4096];
    snprintf(buf, sizeof(buf), "%s", path ? path : "/usr/bin:/bin");
    for (char *save = NULL, *d = strtok_r(buf, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        char cand[PATH_MAX];
        snprintf(cand, sizeof(cand), "%s/python3", d);
        if (access(cand, X_OK) == 0 && strlen(cand) < cap) {
            memcpy(out, cand, strlen(cand) + 1);
            return;
        }
    }
    snprintf(out, cap, "/usr/bin/python3");
}

int sf_config_finish(sf_config *c, char *err, size_t errlen)
{
    if (c->id[0] == '\0') {
        char host[96] = "localhost";
        gethostname(host, sizeof(host) - 1);
        snprintf(c->id, sizeof(c->id), "%s:%d", host, (int)getpid());
    }
    if (c->python[0] == '\0')
        default_python(c->python, sizeof(c->python));
    if (c->python[0] != '/') {
        int py = 0;
        find_opt("python", "executable", &py);
        return fail(err, errlen, "python.executable (%s): '%s' must be an absolute path",
                    c->sources[py], c->python);
    }
    if (sf_affinity_parse(c->affinity, &c->pool.affinity) < 0)
        return fail(err, errlen, "pool.affinity: '%s' is not hint, strict or strict_fail_fast",
                    c->affinity);
    if (c->pool.pool_size + c->pool.max_overflow < 1)
        return fail(err, errlen, "pool.pool_size + pool.max_overflow must be at least 1");
    if (c->resume_below >= c->max_queued)
        return fail(err, errlen, "supervisor.resume_below (%u) must be below max_queued (%u)",
                    c->resume_below, c->max_queued);
    if (sf_partitioner_parse(c->partitioner_name, &c->partitioner) < 0) {
        int i = 0;
        find_opt("topics", "partitioner", &i);
        return fail(err, errlen, "topics.partitioner (%s): '%s' is not one of %s", c->sources[i],
                    c->partitioner_name, sf_partitioner_names());
    }
    static const char *const checks[] = {"refuse", "warn", "off"};
    bool known = false;
    for (int i = 0; i < 3 && !known; i++) {
        if (strcmp(c->partition_check_name, checks[i]) == 0) {
            c->partition_check = (sf_partition_check)i;
            known = true;
        }
    }
    if (!known) {
        int i = 0;
        find_opt("supervisor", "partition_check", &i);
        return fail(err, errlen, "supervisor.partition_check (%s): '%s' is not refuse, warn or off",
                    c->sources[i], c->partition_check_name);
    }
    static const char *const levels[] = {"debug", "info", "warn", "error"};
    bool ok = false;
    for (int i = 0; i < 4; i++) {
        if (strcmp(c->log_level, levels[i]) == 0) {
            sf_log_set_level((sf_log_level)i);
            ok = true;
        }
    }
    if (!ok)
        return fail(err, errlen, "supervisor.log_level: '%s' is not debug, info, warn or error",
                    c->log_level);
    /* The password itself is never in a file, a flag or --print-config: only its variable. */
    c->redis_password[0] = '\0';
    if (c->redis_password_env[0]) {
        const char *pw = getenv(c->redis_password_env);
        if (pw == NULL || pw[0] == '\0')
            return fail(err, errlen, "redis.password_env: the environment variable %s is not set",
                        c->redis_password_env);
        if (strlen(pw) >= sizeof(c->redis_password))
            return fail(err, errlen, "redis.password_env: %s holds more than %zu bytes",
                        c->redis_password_env, sizeof(c->redis_password) - 1);
        snprintf(c->redis_password, sizeof(c->redis_password), "%s", pw);
        /* Workers inherit this process's environment: user code must not read it there. */
        unsetenv(c->redis_password_env);
    } else if (c->redis_user[0]) {
        return fail(err, errlen, "redis.user needs redis.password_env (AUTH takes both)");
    }
    c->pool.python = c->python;
    c->pool.python_path = c->python_path[0] ? c->python_path : NULL;
    c->pool.preload = c->preload[0] ? c->preload : NULL;
    c->pool.worker_module = c->worker_module;
    /* The fleet's default LM reaches every worker through its environment. */
    int n = 0;
    const char *names[] = {"SNAKEFLEET_LM_MODEL", "SNAKEFLEET_LM_API_BASE",
                           "SNAKEFLEET_LM_API_KEY_ENV"};
    const char *vals[] = {c->lm_model, c->lm_api_base, c->lm_api_key_env};
    for (int i = 0; i < 3; i++) {
        if (vals[i][0] == '\0')
            continue;
        snprintf(c->lm_env[n], sizeof(c->lm_env[n]), "%s=%s", names[i], vals[i]);
        c->lm_env_list[n] = c->lm_env[n];
        n++;
    }
    c->lm_env_list[n] = NULL;
    c->pool.extra_env = c->lm_env_list;
    return 0;
}

static void print_value(const sf_config *c, const opt *o, FILE *out)
{
    const char *base = (const char *)c;
    switch (o->type) {
    case T_STR:
        fprintf(out, "%s", base + o->offset);
        break;
    case T_BOOL: {
        bool b;
        memcpy(&b, base + o->offset, sizeof(b));
        fprintf(out, "%s", b ? "true" : "false");
        break;
    }
    case T_U32: {
        uint32_t u;
        memcpy(&u, base + o->offset, sizeof(u));
        fprintf(out, "%u", u);
        break;
    }
    case T_U64: {
        uint64_t u;
        memcpy(&u, base + o->offset, sizeof(u));
        fprintf(out, "%llu", (unsigned long long)u);
        break;
    }
    case T_INT: {
        int i;
        memcpy(&i, base + o->offset, sizeof(i));
        fprintf(out, "%d", i);
        break;
    }
    }
}

void sf_config_print(const sf_config *c, FILE *out)
{
    const char *section = "";
    for (int i = 0; i < NOPTS; i++) {
        const opt *o = &OPTS[i];
        if (strcmp(section, o->section) != 0) {
            section = o->section;
            fprintf(out, "%s[%s]\n", i ? "\n" : "", section);
        }
        fprintf(out, "%s = ", o->key);
        print_value(c, o, out);
        fprintf(out, "    ; %s\n", c->sources[i]);
    }
    fprintf(out, "\n[kafka]\n");
    for (int i = 0; i < c->nkafka; i++)
        fprintf(out, "%s = %s    ; %s\n", c->kafka[i].key, c->kafka[i].value, c->kafka[i].source);
}

void sf_config_print_help(FILE *out)
{
    const char *section = "";
    for (int i = 0; i < NOPTS; i++) {
        const opt *o = &OPTS[i];
        if (strcmp(section, o->section) != 0) {
            section = o->section;
            fprintf(out, "\n  [%s]\n", section);
        }
        fprintf(out, "    --%s.%s=%s\n        %s\n", o->section, o->key,
                o->def[0] ? o->def : "\"\"", o->help);
    }
    fprintf(out, "\n  [kafka]\n    --kafka.<librdkafka property>=VALUE  passed to librdkafka\n");
}

/* --section.key=value: a '.' before the first '='. Other --name=value flags are the program's. */
static bool is_config_flag(const char *a)
{
    if (strncmp(a, "--", 2) != 0)
        return false;
    const char *dot = strchr(a, '.'), *eq = strchr(a, '=');
    return dot != NULL && eq != NULL && dot < eq;
}

static bool is_file_flag(const char *a)
{
    return strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0;
}

int sf_config_load(sf_config *c, int *argc, char **argv, char **envp, char *err, size_t errlen)
{
    sf_config_defaults(c);
    const char *file = NULL;
    for (int i = 1; i < *argc; i++) {
        if (is_file_flag(argv[i]) && i + 1 < *argc)
            file = argv[++i];
    }
    if (file && sf_config_load_file(c, file, err, errlen) < 0)
        return -1;
    if (sf_config_load_env(c, envp, err, errlen) < 0)
        return -1;
    int out = 1;
    for (int i = 1; i < *argc; i++) {
        const char *a = argv[i];
        if (is_file_flag(a) && i + 1 < *argc) {
            i++;
            continue;
        }
        if (is_config_flag(a)) {
            if (sf_config_set(c, a + 2, "flag", err, errlen) < 0)
                return -1;
            continue;
        }
        argv[out++] = argv[i];
    }
    *argc = out;
    argv[out] = NULL;
    return sf_config_finish(c, err, errlen);
}
