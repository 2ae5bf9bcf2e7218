/* log.c — structured key=value logging; see log.h. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static int g_level = -1;

static sf_log_level level_from_env(void)
{
    const char *e = getenv("SNAKEFLEET_LOG_LEVEL");
    if (e == NULL)
        return SF_LOG_INFO;
    if (strcmp(e, "debug") == 0)
        return SF_LOG_DEBUG;
    if (strcmp(e, "warn") == 0)
        return SF_LOG_WARN;
    if (strcmp(e, "error") == 0)
        return SF_LOG_ERROR;
    return SF_LOG_INFO;
}

void sf_log_set_level(sf_log_level level)
{
    g_level = (int)level;
}

sf_log_level sf_log_get_level(void)
{
    if (g_level < 0)
        g_level = (int)level_from_env();
    return (sf_log_level)g_level;
}

void sf_log(sf_log_level level, const char *event, const char *fmt, ...)
{
    if (level < sf_log_get_level())
        return;
    static const char *const names[] = {"debug", "info", "warn", "error"};
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char line[2048];
    int n =
        snprintf(line, sizeof(line), "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03dZ level=%s event=%s ",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 (int)(tv.tv_usec / 1000), names[level], event);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof(line))
        n += vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    size_t len = (size_t)n < sizeof(line) - 1 ? (size_t)n : sizeof(line) - 2;
    line[len++] = '\n';
    fwrite(line, 1, len, stderr); /* one write per line keeps lines whole */
}

const char *sf_log_quote(char *buf, size_t cap, const char *s, size_t len)
{
    bool plain = len > 0;
    for (size_t i = 0; i < len && plain; i++)
        plain = s[i] > ' ' && s[i] != '"' && s[i] != '=' && s[i] != '\\' && s[i] != 0x7f;
    size_t o = 0;
    if (plain) {
        o = len < cap - 1 ? len : cap - 1;
        memcpy(buf, s, o);
        buf[o] = '\0';
        return buf;
    }
    buf[o++] = '"';
    for (size_t i = 0; i < len && o + 3 < cap; i++) {
        char c = s[i];
        if (c == '"' || c == '\\') {
            buf[o++] = '\\';
            buf[o++] = c;
        } else if (c == '\n') {
            buf[o++] = '\\';
            buf[o++] = 'n';
        } else if ((unsigned char)c < ' ') {
            buf[o++] = ' ';
        } else {
            buf[o++] = c;
        }
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}
