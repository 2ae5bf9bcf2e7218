/*
 * telemetry.c — telemetry record encode/validate; see telemetry.h.
 *
 * Every map's size is counted from the tables that say what goes in it: the
 * record's head (TELEMETRY_HEAD), the list of stats and a histogram's keys
 * (sf_stats_list, sf_latency_fields: stats.h). Nothing here names a stat.
 */
#include "telemetry.h"

#include <stdio.h>
#include <string.h>

#include "request.h"

/* ---------------------------------------------------------------- encode */

static void pack_v(msgpack_packer *pk, const sf_telemetry *t)
{
    msgpack_pack_uint64(pk, SF_SCHEMA_VERSION);
}

static void pack_supervisor(msgpack_packer *pk, const sf_telemetry *t)
{
    sf_mp_pack_cstr(pk, t->supervisor);
}

static void pack_ts_ms(msgpack_packer *pk, const sf_telemetry *t)
{
    msgpack_pack_uint64(pk, t->ts_ms);
}

/* The keys before the stats. */
static const struct {
    const char *key;
    void (*pack)(msgpack_packer *pk, const sf_telemetry *t);
} TELEMETRY_HEAD[] = {
    {"v", pack_v},
    {"supervisor", pack_supervisor},
    {"ts_ms", pack_ts_ms},
};
#define TELEMETRY_NHEAD (sizeof(TELEMETRY_HEAD) / sizeof(TELEMETRY_HEAD[0]))

/* The key under which all LATENCY rows go, as one map. */
#define LATENCY_KEY "latency"

static void pack_hist(msgpack_packer *pk, const sf_latency *h)
{
    msgpack_pack_map(pk, sf_latency_nfields);
    for (size_t i = 0; i < sf_latency_nfields; i++) {
        sf_mp_pack_cstr(pk, sf_latency_fields[i].key);
        msgpack_pack_uint64(pk, sf_latency_value(h, &sf_latency_fields[i]));
    }
}

static void pack_lags(msgpack_packer *pk, const sf_lags *l)
{
    msgpack_pack_map(pk, l->n);
    for (size_t i = 0; i < l->n; i++) {
        char name[300];
        sf_partition_lag_name(name, sizeof(name), &l->of[i]);
        sf_mp_pack_cstr(pk, name);
        msgpack_pack_int64(pk, l->of[i].lag);
    }
}

void sf_telemetry_pack(msgpack_packer *pk, const sf_telemetry *t)
{
    size_t latencies = sf_stats_count_kind(SF_STAT_LATENCY);
    msgpack_pack_map(pk, TELEMETRY_NHEAD + (sf_stats_count - latencies) + (latencies > 0));
    for (size_t i = 0; i < TELEMETRY_NHEAD; i++) {
        sf_mp_pack_cstr(pk, TELEMETRY_HEAD[i].key);
        TELEMETRY_HEAD[i].pack(pk, t);
    }
    for (size_t i = 0; i < sf_stats_count; i++) {
        const sf_stat *st = &sf_stats_list[i];
        switch (st->kind) {
        case SF_STAT_COUNTER:
        case SF_STAT_GAUGE:
            sf_mp_pack_cstr(pk, st->telemetry);
            msgpack_pack_uint64(pk, sf_stat_number(t->stats, st));
            break;
        case SF_STAT_FLAG:
            sf_mp_pack_cstr(pk, st->telemetry);
            if (sf_stat_number(t->stats, st))
                msgpack_pack_true(pk);
            else
                msgpack_pack_false(pk);
            break;
        case SF_STAT_LAG:
            sf_mp_pack_cstr(pk, st->telemetry);
            pack_lags(pk, sf_stat_lags(t->stats, st));
            break;
        case SF_STAT_LATENCY:
            break; /* below, in one map */
        }
    }
    if (latencies == 0)
        return;
    sf_mp_pack_cstr(pk, LATENCY_KEY);
    msgpack_pack_map(pk, latencies);
    for (size_t i = 0; i < sf_stats_count; i++) {
        const sf_stat *st = &sf_stats_list[i];
        if (st->kind != SF_STAT_LATENCY)
            continue;
        sf_mp_pack_cstr(pk, st->telemetry);
        pack_hist(pk, sf_stat_latency(t->stats, st));
    }
}

/* ---------------------------------------------------------------- validate */

/* "topic/partition": something, a slash, digits to the end. */
static bool is_lag_name(const msgpack_object_str *k)
{
    uint32_t slash = k->size;
    while (slash > 0 && k->ptr[slash - 1] >= '0' && k->ptr[slash - 1] <= '9')
        slash--;
    return slash >= 2 && slash < k->size && k->ptr[slash - 1] == '/';
}

static int validate_lags(const msgpack_object *root, const char *key, sf_err *err)
{
    const msgpack_object *m;
    int rc = sf_mp_field_map(root, key, key, false, &m, err);
    if (rc <= 0)
        return rc;
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        const msgpack_object_kv *kv = &m->via.map.ptr[i];
        if (!is_lag_name(&kv->key.via.str))
            return sf_fail(err, SF_E_BAD_VALUE, key, "field '%s': '%.*s' is not topic/partition",
                           key, (int)kv->key.via.str.size, kv->key.via.str.ptr);
        if (kv->val.type != MSGPACK_OBJECT_POSITIVE_INTEGER &&
            kv->val.type != MSGPACK_OBJECT_NEGATIVE_INTEGER)
            return sf_fail(err, SF_E_WRONG_TYPE, key,
                           "field '%s': the lag of '%.*s' must be an "
                           "integer",
                           key, (int)kv->key.via.str.size, kv->key.via.str.ptr);
    }
    return 1;
}

static int validate_hist(const msgpack_object *latency, const char *name, sf_err *err)
{
    char path[128];
    snprintf(path, sizeof(path), LATENCY_KEY ".%s", name);
    const msgpack_object *h;
    int rc = sf_mp_field_map(latency, name, path, false, &h, err);
    if (rc <= 0)
        return rc;
    for (size_t i = 0; i < sf_latency_nfields; i++) {
        char kpath[160];
        uint64_t v;
        const char *key = sf_latency_fields[i].key;
        snprintf(kpath, sizeof(kpath), "%s.%s", path, key);
        if (sf_mp_field_uint(h, key, kpath, true, &v, err) < 0)
            return -1;
    }
    return 1;
}

static int validate_stat(const msgpack_object *root, const msgpack_object *latency,
                         const sf_stat *st, sf_err *err)
{
    uint64_t u;
    bool b;
    switch (st->kind) {
    case SF_STAT_COUNTER:
    case SF_STAT_GAUGE:
        return sf_mp_field_uint(root, st->telemetry, st->telemetry, false, &u, err);
    case SF_STAT_FLAG:
        return sf_mp_field_bool(root, st->telemetry, st->telemetry, false, &b, err);
    case SF_STAT_LAG:
        return validate_lags(root, st->telemetry, err);
    case SF_STAT_LATENCY:
        return latency ? validate_hist(latency, st->telemetry, err) : 0;
    }
    return 0;
}

int sf_telemetry_validate(const msgpack_object *root, sf_err *err)
{
    int64_t v;
    if (sf_mp_field_int(root, "v", "v", true, &v, err) < 0)
        return -1;
    if (v != SF_SCHEMA_VERSION)
        return sf_fail(err, SF_E_UNKNOWN_VERSION, "v", "unknown schema version %lld", (long long)v);
    sf_str s;
    uint64_t ts;
    const msgpack_object *latency = NULL;
    if (sf_mp_field_str(root, "supervisor", "supervisor", true, 0, UINT32_MAX, &s, err) < 0 ||
        sf_mp_field_uint(root, "ts_ms", "ts_ms", true, &ts, err) < 0 ||
        sf_mp_field_map(root, LATENCY_KEY, LATENCY_KEY, false, &latency, err) < 0)
        return -1;
    for (size_t i = 0; i < sf_stats_count; i++)
        if (validate_stat(root, latency, &sf_stats_list[i], err) < 0)
            return -1;
    return 0;
}

int sf_telemetry_decode(msgpack_unpacked *u, const char *data, size_t len, sf_err *err)
{
    if (sf_mp_unpack_map(u, data, len, err) < 0)
        return -1;
    return sf_telemetry_validate(&u->data, err);
}
