/*
 * telemetry.h — the telemetry record a supervisor produces to
 * topics.telemetry every telemetry.interval, keyed by its id
 * (schemas/README.md, "Telemetry snapshot"; schemas/telemetry.schema.json):
 * encode, and validate a decoded one.
 *
 * The record is `v`, `supervisor`, `ts_ms`, then every stat of the list in
 * stats.h under its telemetry key, in the list's order: the numbers, `lag`
 * (map "topic/partition" → int) and `latency` (map of histogram name →
 * {count, p50_us, p90_us, p99_us, max_us}).
 */
#ifndef SF_TELEMETRY_H
#define SF_TELEMETRY_H

#include "mp.h"
#include "stats.h"

typedef struct sf_telemetry {
    const char *supervisor; /* the supervisor's id */
    uint64_t ts_ms;         /* when the snapshot was taken, Unix epoch ms */
    const sf_stats *stats;
} sf_telemetry;

void sf_telemetry_pack(msgpack_packer *pk, const sf_telemetry *t);

/*
 * Checks a decoded telemetry map: v, supervisor and ts_ms, and every stat of
 * the list that is present has its kind's type. Which stats must be present
 * is the schema's business (a record of an older supervisor lacks the newer
 * ones). err names the first bad field.
 */
int sf_telemetry_validate(const msgpack_object *root, sf_err *err);

/* Unpacks and validates telemetry bytes into u (caller inits and destroys u). */
int sf_telemetry_decode(msgpack_unpacked *u, const char *data, size_t len, sf_err *err);

#endif
