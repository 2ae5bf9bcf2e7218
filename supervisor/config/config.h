/*
 * config.h — snakefleet's configuration: an INI file (libinih), then
 * environment variables SNAKEFLEET_<SECTION>_<KEY>, then flags
 * --section.key=value; the later source wins. Every option has a default,
 * a type, bounds and a one-line help; an unknown key or a bad value is an
 * error naming the key and where it came from. `[kafka]` is passed through
 * to librdkafka untouched (librdkafka validates it when the client is made).
 */
#ifndef SF_CONFIG_H
#define SF_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "partitioner.h"
#include "pool.h"

#define SF_CONFIG_MAX_KAFKA 64

/* supervisor.partition_check: what a request whose key maps to another partition gets. */
typedef enum {
    SF_PARTITION_CHECK_REFUSE, /* a wrong_partition error, not run */
    SF_PARTITION_CHECK_WARN,   /* run, logged and counted */
    SF_PARTITION_CHECK_OFF,
} sf_partition_check;

typedef struct sf_kv {
    char key[128];
    char value[512];
    char source[160];
} sf_kv;

typedef struct sf_config {
    /* [supervisor] */
    char id[128];
    uint32_t shutdown_timeout_ms;
    uint32_t max_queued;
    uint32_t resume_below;
    uint32_t poison_threshold;
    uint32_t max_message_bytes;
    uint64_t state_cache_bytes; /* supervisor.state_cache: cache.h */
    uint32_t revoke_timeout_ms;
    char http_listen[64];
    char log_level[16];
    char partition_check_name[16];
    sf_partition_check partition_check; /* parsed from partition_check_name */
    /* [topics] */
    char group[128];
    char requests[256];
    char replies[256];
    char telemetry_topic[256];
    char dlq[256];
    bool create_topics;
    uint32_t partitions;
    uint32_t replication;
    char partitioner_name[32];  /* librdkafka's name: also the producer's `partitioner` */
    sf_partitioner partitioner; /* parsed from partitioner_name */
    /* [telemetry] */
    uint32_t telemetry_interval_ms;
    /* [redis] */
    char redis_url[2048];         /* one URL, or one per shard (comma-separated) */
    char redis_sentinels[512];    /* redis.sentinels (store.h, sf_store_set_sentinels) */
    char redis_master_name[1024]; /* redis.master_name: one name, or one per shard */
    char redis_key_prefix[65];    /* checked by the store (sf_store_set_key_prefix) */
    char redis_user[128];
    char redis_password_env[128];
    char redis_password[256]; /* read from $redis_password_env by sf_config_finish */
    uint32_t session_ttl_s;
    uint32_t dedupe_ttl_s;
    uint32_t redis_min_replicas;       /* redis.min_replicas (store.h, sf_store_set_replicas) */
    uint32_t redis_replica_timeout_ms; /* redis.replica_timeout */
    uint32_t redis_leave_after_ms;     /* redis.leave_after (partitions.c, part_on_store_health) */
    uint32_t redis_link_timeout_ms;    /* redis.link_timeout (store_link.c, store_link_tune) */
    uint32_t redis_retry_ms;
    uint32_t max_sessions;          /* 0: no limit */
    uint32_t max_sessions_warn_pct; /* warn when this share of max_sessions is stored */
    /* [pool] and [python] */
    sf_pool_config pool;
    char python[512];
    char python_path[1024];
    char preload[512];
    char worker_module[128];
    char affinity[32];
    char lm_model[256];
    char lm_api_base[256];
    char lm_api_key_env[128];
    char lm_env[3][400]; /* SNAKEFLEET_LM_* for the workers (derived) */
    const char *lm_env_list[4];
    /* [kafka] pass-through */
    sf_kv kafka[SF_CONFIG_MAX_KAFKA];
    int nkafka;
    /* where each option's value came from, by option index */
    char sources[96][160];
} sf_config;

/* Defaults only. */
void sf_config_defaults(sf_config *c);

/* Loads an INI file over the current values. Returns 0 or -1 (err names file:line and key). */
int sf_config_load_file(sf_config *c, const char *path, char *err, size_t errlen);

/* Applies SNAKEFLEET_<SECTION>_<KEY> variables from envp. */
int sf_config_load_env(sf_config *c, char **envp, char *err, size_t errlen);

/* Applies one "section.key=value" (a flag without its leading dashes). */
int sf_config_set(sf_config *c, const char *assignment, const char *source, char *err,
                  size_t errlen);

/* Cross-field checks and derived values (pool config strings). Call last. */
int sf_config_finish(sf_config *c, char *err, size_t errlen);

/*
 * The one way a program loads its configuration, in this order, later
 * sources winning: defaults, the INI file of -c FILE / --config FILE (the
 * last one given), SNAKEFLEET_<SECTION>_<KEY> variables from envp, each
 * --section.key=value flag in argv order, then sf_config_finish.
 *
 * The arguments it used are taken out of argv (compacted, argv[0] kept,
 * argv[*argc] set to NULL); what is left is the program's own (--dev,
 * a subcommand's flags). A flag is a configuration flag when a '.' comes
 * before its first '='. Returns 0, or -1 with err set; the caller reports it
 * (as "PROGRAM: configuration error: ERR") and exits with 2.
 */
int sf_config_load(sf_config *c, int *argc, char **argv, char **envp, char *err, size_t errlen);

/* Writes the effective configuration as INI, each value with its source. */
void sf_config_print(const sf_config *c, FILE *out);

/* Sets a [kafka] property (overwrites an earlier one of the same key). */
int sf_config_kafka_set(sf_config *c, const char *key, const char *value, const char *source);
const char *sf_config_kafka_get(const sf_config *c, const char *key);

/* The help text of every option, for --help. */
void sf_config_print_help(FILE *out);

#endif
