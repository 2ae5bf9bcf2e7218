/*
 * kafka_log.c — the Kafka layer's log events into the host's log; see
 * kafka_log.h. Runs on librdkafka's threads too (its log and error
 * callbacks): nothing here keeps state.
 */
#include "kafka_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void sf_kafka_log_event(const sf_kafka_log *log, sf_kafka_log_level level, const char *event,
                        const char *fmt, ...)
{
    char fields[2048]; /* as long as a whole line of supervisor/log.c */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(fields, sizeof(fields), fmt, ap);
    va_end(ap);
    if (log->write)
        log->write(level, event, fields);
    else if (level >= SF_KAFKA_LOG_WARN)
        fprintf(stderr, "level=%s event=%s %s\n", level == SF_KAFKA_LOG_WARN ? "warn" : "error",
                event, fields);
}

/* s as a log value: the host's quoting, or a plain one without a host. */
static const char *quote(const sf_kafka_log *log, char *buf, size_t cap, const char *s)
{
    if (log->quote)
        return log->quote(buf, cap, s, strlen(s));
    if (cap < 3)
        return "";
    size_t o = 0;
    buf[o++] = '"';
    for (; *s && o + 2 < cap; s++)
        buf[o++] = (unsigned char)*s < ' ' || *s == '"' || *s == '\\' ? ' ' : *s;
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}

void sf_kafka_log_librdkafka(const sf_kafka_log *log, const rd_kafka_t *rk, int level,
                             const char *fac, const char *buf)
{
    char q[1100];
    const char *message = quote(log, q, sizeof(q), buf);
    sf_kafka_log_level lv = level <= 3   ? SF_KAFKA_LOG_ERROR
                            : level <= 4 ? SF_KAFKA_LOG_WARN
                                         : SF_KAFKA_LOG_INFO;
    /* [kafka] feeds both clients by design (kafka_conf.c): that the producer ignores a
     * consumer key, or the consumer a producer key, is expected, not worth a warning. */
    if (strcmp(fac, "CONFWARN") == 0 &&
        (strstr(buf, "is a consumer property and will be ignored") ||
         strstr(buf, "is a producer property and will be ignored")))
        lv = SF_KAFKA_LOG_DEBUG;
    sf_kafka_log_event(log, lv, "kafka.log", "client=%s facility=%s message=%s", rd_kafka_name(rk),
                       fac, message);
}
