/*
 * log.h — structured logs: one event per line on stderr, key=value pairs,
 * `ts=… level=… event=…` first, then the caller's fields (worker, session,
 * request where they exist). Values with spaces or quotes are quoted with
 * sf_log_quote().
 */
#ifndef SF_LOG_H
#define SF_LOG_H

#include <stdbool.h>
#include <stddef.h>

typedef enum { SF_LOG_DEBUG, SF_LOG_INFO, SF_LOG_WARN, SF_LOG_ERROR } sf_log_level;

/* The threshold; initialised from SNAKEFLEET_LOG_LEVEL (debug|info|warn|error). */
void sf_log_set_level(sf_log_level level);
sf_log_level sf_log_get_level(void);

void sf_log(sf_log_level level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define sf_debug(ev, ...) sf_log(SF_LOG_DEBUG, ev, __VA_ARGS__)
#define sf_info(ev, ...)  sf_log(SF_LOG_INFO, ev, __VA_ARGS__)
#define sf_warn(ev, ...)  sf_log(SF_LOG_WARN, ev, __VA_ARGS__)
#define sf_error(ev, ...) sf_log(SF_LOG_ERROR, ev, __VA_ARGS__)

/* Writes s as a logfmt value into buf (quoted and escaped when needed). */
const char *sf_log_quote(char *buf, size_t cap, const char *s, size_t len);

#endif
