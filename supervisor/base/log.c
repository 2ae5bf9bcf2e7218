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

/*
 * Where a value cut after n bytes of b should end so that it does not end
 * inside a UTF-8 character: before the lead byte of the last, incomplete one
 * when next (the first byte left out) continues it; n otherwise. Never before
 * min, the bytes that are not part of the value.
 */
static size_t utf8_cut(const char *b, size_t n, size_t min, char next)
{
    if (((unsigned char)next & 0xc0) != 0x80)
        return n;
    size_t k = n;
    while (k > min && n - k < 3 && ((unsigned char)b[k - 1] & 0xc0) == 0x80)
        k--;
    return k > min && (unsigned char)b[k - 1] >= 0xc0 ? k - 1 : n;
}

const char *sf_log_quote(char *buf, size_t cap, const char *s, size_t len)
{
    if (cap == 0)
        return ""; /* no room for even the NUL */
    bool plain = len > 0;
    for (size_t i = 0; i < len && plain; i++)
        plain = s[i] > ' ' && s[i] != '"' && s[i] != '=' && s[i] != '\\' && s[i] != 0x7f;
    size_t o = 0;
    if (plain) {
        o = len < cap ? len : utf8_cut(s, cap - 1, 0, s[cap - 1]);
        memcpy(buf, s, o);
        buf[o] = '\0';
        return buf;
    }
    if (cap < 3) { /* no room for `""`: the empty string, not half a value */
        buf[0] = '\0';
        return buf;
    }
    buf[o++] = '"';
    size_t i = 0;
    for (; i < len; i++) {
        char c = s[i];
        bool escaped = c == '"' || c == '\\' || c == '\n';
        if (o + (escaped ? 2 : 1) + 2 > cap) /* c, then the closing quote and the NUL */
            break;
        if (c == '"' || c == '\\') {
            buf[o++] = '\\';
            buf[o++] = c;
        } else if (c == '\n') {
            buf[o++] = '\\';
            buf[o++] = 'n';
        } else if ((unsigned char)c < ' ' || c == 0x7f) {
            buf[o++] = ' ';
        } else {
            buf[o++] = c;
        }
    }
    if (i < len)
        o = utf8_cut(buf, o, 1, s[i]);
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}
