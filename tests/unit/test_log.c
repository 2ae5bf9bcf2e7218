/*
 * test_log.c — structured logs (log.h): one `ts=… level=… event=…` line per
 * event, and sf_log_quote(), which makes any bytes one logfmt value. A value
 * that needs it is quoted, with `"`, `\` and newline escaped and other control
 * bytes turned into spaces, so no value can end its line or forge a field of
 * its own. It never writes past cap: a value cut to fit stays one well-formed
 * value and does not end inside a UTF-8 character.
 *
 * The checks read the output back with a small logfmt reader (read_line),
 * the way a log pipeline would.
 */
#include <criterion/criterion.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

/* ------------------------------------------------------------ logfmt reader */

enum { MAX_PAIRS = 16, MAX_TEXT = 8192 };
typedef struct pair {
    char key[64];
    char value[MAX_TEXT];
    size_t len;
    bool quoted;
} pair;

/* Reads one value at *p (bare, or quoted with \" \\ \n escapes); false if malformed. */
static bool read_value(const char **p, pair *out)
{
    const char *s = *p;
    out->len = 0;
    out->quoted = *s == '"';
    if (!out->quoted) {
        while (*s && *s != ' ' && *s != '\n') {
            if (*s == '"' || *s == '=' || out->len + 1 >= MAX_TEXT)
                return false;
            out->value[out->len++] = *s++;
        }
        *p = s;
        return true;
    }
    for (s++; *s != '"'; s++) {
        if (*s == '\0' || *s == '\n' || out->len + 1 >= MAX_TEXT)
            return false;
        if (*s == '\\') {
            s++;
            if (*s == 'n')
                out->value[out->len++] = '\n';
            else if (*s == '"' || *s == '\\')
                out->value[out->len++] = *s;
            else
                return false;
        } else {
            out->value[out->len++] = *s;
        }
    }
    *p = s + 1;
    return true;
}

/* Splits `k=v k=v …` into pairs; the count, or -1 if the text is not logfmt. */
static int read_line(const char *line, pair *pairs)
{
    int n = 0;
    const char *p = line;
    while (*p && *p != '\n') {
        if (n == MAX_PAIRS)
            return -1;
        size_t k = 0;
        while (*p && *p != '=' && *p != ' ') {
            if (k + 1 >= sizeof(pairs[n].key))
                return -1;
            pairs[n].key[k++] = *p++;
        }
        pairs[n].key[k] = '\0';
        if (k == 0 || *p != '=')
            return -1;
        p++;
        if (!read_value(&p, &pairs[n]))
            return -1;
        n++;
        if (*p == ' ')
            p++;
        else if (*p && *p != '\n')
            return -1;
    }
    return n;
}

/* The one value sf_log_quote wrote, read back; fails the test if it is not exactly one. */
static pair unquote(const char *out)
{
    char line[MAX_TEXT + 8];
    snprintf(line, sizeof(line), "v=%s", out);
    pair pairs[MAX_PAIRS];
    int n = read_line(line, pairs);
    cr_assert_eq(n, 1, "not one logfmt value: [%s]", out);
    pairs[0].value[pairs[0].len] = '\0';
    return pairs[0];
}

/* What a value reads back as: control bytes other than newline become spaces. */
static size_t as_logged(char *buf, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = ((unsigned char)s[i] < ' ' && s[i] != '\n') || s[i] == 0x7f ? ' ' : s[i];
    return len;
}

static bool valid_utf8(const char *s, size_t n)
{
    const unsigned char *b = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t more = b[i] < 0x80 ? 0 : b[i] >= 0xf0 ? 3 : b[i] >= 0xe0 ? 2 : b[i] >= 0xc0 ? 1 : 9;
        if (more == 9 || i + more >= n)
            return false;
        for (size_t k = 1; k <= more; k++)
            if ((b[i + k] & 0xc0) != 0x80)
                return false;
        i += more + 1;
    }
    return true;
}

static char out[MAX_TEXT];

static const char *quote(const char *s)
{
    return sf_log_quote(out, sizeof(out), s, strlen(s));
}

/* ------------------------------------------------------------ sf_log_quote */

Test(log_quote, plain_words_pass_as_they_are)
{
    static const char *const words[] = {"worker-3",       "s_42",        "a.b/c:d",
                                        "127.0.0.1:9092", "x+y~z|&;()*", "'single'"};
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        cr_expect_str_eq(quote(words[i]), words[i]);
}

Test(log_quote, returns_its_buffer)
{
    char buf[32];
    cr_expect_eq(sf_log_quote(buf, sizeof(buf), "plain", 5), buf);
    cr_expect_eq(sf_log_quote(buf, sizeof(buf), "not plain", 9), buf);
}

Test(log_quote, the_empty_value_is_two_quotes)
{
    cr_expect_str_eq(quote(""), "\"\"", "an empty bare value would read as a missing one");
}

Test(log_quote, what_needs_quotes_gets_them)
{
    cr_expect_str_eq(quote("two words"), "\"two words\"");
    cr_expect_str_eq(quote(" lead"), "\" lead\"");
    cr_expect_str_eq(quote("trail "), "\"trail \"");
    cr_expect_str_eq(quote("say \"hi\""), "\"say \\\"hi\\\"\"");
    cr_expect_str_eq(quote("\""), "\"\\\"\"");
    cr_expect_str_eq(quote("C:\\temp"), "\"C:\\\\temp\"");
    cr_expect_str_eq(quote("\\"), "\"\\\\\"");
    cr_expect_str_eq(quote("a=b"), "\"a=b\"", "a bare = would read as a field");
    cr_expect_str_eq(quote("="), "\"=\"");
}

Test(log_quote, a_newline_is_escaped_and_never_ends_the_line)
{
    cr_expect_str_eq(quote("line one\nline two"), "\"line one\\nline two\"");
    cr_expect_str_eq(quote("\n"), "\"\\n\"");
    cr_expect_str_eq(quote("Traceback:\n  File \"w.py\"\n"),
                     "\"Traceback:\\n  File \\\"w.py\\\"\\n\"");
}

/* Tab, CR, ESC, NUL, DEL, …: each becomes one space; none reaches the log. */
Test(log_quote, control_bytes_become_spaces)
{
    cr_expect_str_eq(quote("a\tb"), "\"a b\"");
    cr_expect_str_eq(quote("a\rb"), "\"a b\"");
    cr_expect_str_eq(quote("\x1b[31mred\x1b[0m"), "\" [31mred [0m\"");
    cr_expect_str_eq(sf_log_quote(out, sizeof(out), "a\0b", 3), "\"a b\"", "NUL is a byte too");
    cr_expect_str_eq(quote("a\x7f"), "\"a \"");
    for (int c = 0; c < 256; c++) {
        char s[3] = {'x', (char)c, 'y'};
        const char *q = sf_log_quote(out, sizeof(out), s, 3);
        for (const char *p = q; *p; p++)
            cr_assert((unsigned char)*p >= ' ' && *p != 0x7f, "byte 0x%02x reaches the log raw", c);
    }
}

/* A value cannot pose as fields of its own, however it is dressed. */
Test(log_quote, a_forged_field_stays_one_value)
{
    static const char *const forged[] = {
        "evil level=error event=forged",
        "evil\" level=error event=forged",
        "evil\\\" level=error event=forged \"",
        "evil\nts=2024-01-01T00:00:00.000Z level=error event=forged",
        "evil\r\nlevel=error event=forged",
        "level=error",
        "\" \"",
    };
    cr_expect_str_eq(quote(forged[0]), "\"evil level=error event=forged\"");
    for (size_t i = 0; i < sizeof(forged) / sizeof(forged[0]); i++) {
        char line[2 * MAX_TEXT];
        char q[512];
        sf_log_quote(q, sizeof(q), forged[i], strlen(forged[i]));
        snprintf(line, sizeof(line), "level=info event=call_failed error=%s session=s1", q);
        cr_assert_null(strchr(line, '\n'), "forged value %zu ends the line", i);
        pair pairs[MAX_PAIRS];
        cr_assert_eq(read_line(line, pairs), 4, "forged value %zu: [%s]", i, line);
        cr_expect_str_eq(pairs[0].key, "level");
        cr_expect_str_eq(pairs[2].key, "error");
        cr_expect_str_eq(pairs[3].key, "session");
        char want[512];
        size_t n = as_logged(want, forged[i], strlen(forged[i]));
        cr_expect_eq(pairs[2].len, n, "forged value %zu reads back whole", i);
        cr_expect_arr_eq(pairs[2].value, want, n);
    }
}

/* UTF-8 passes byte for byte; with a space it is quoted like any other text. */
Test(log_quote, utf8_passes_through)
{
    const char *text = "naïve café — 日本語 🐍";
    cr_expect_str_eq(quote(text), "\"naïve café — 日本語 🐍\"");
    const char *word = "Zürich";
    pair v = unquote(quote(word));
    cr_expect_str_eq(v.value, word, "a word reads back as itself, quoted or not");
}

/* Every byte string reads back as itself (control bytes as spaces) when the buffer is big enough.
 */
Test(log_quote, any_bytes_read_back_as_themselves)
{
    unsigned seed = 3;
    char s[300], want[300];
    for (int round = 0; round < 3000; round++) {
        size_t len = (size_t)rand_r(&seed) % sizeof(s);
        for (size_t i = 0; i < len; i++) {
            int r = rand_r(&seed);
            s[i] = r % 4 ? "ab \"\\=\n\t\x7f"[r % 10] : (char)(r >> 8);
        }
        as_logged(want, s, len);
        char buf[2 * sizeof(s) + 3]; /* every byte escaped, two quotes, NUL */
        const char *q = sf_log_quote(buf, sizeof(buf), s, len);
        pair v = unquote(q);
        cr_assert_eq(v.len, len, "round %d", round);
        cr_assert_arr_eq(v.value, want, len, "round %d", round);
    }
}

/*
 * Cut to the buffer: for every cap, the result fits (NUL included), is one
 * well-formed value, reads back as a prefix of the whole value, and does not
 * end inside a UTF-8 character or an escape.
 */
Test(log_quote, a_value_cut_to_the_buffer_stays_one_value)
{
    static const char *const values[] = {
        "abcdefghijklmnopqrstuvwxyz", "two words and more words",
        "\\\\\\\\\\\\\\\\\\\\",       "\"\"\"\"\"\"\"\"\"\"\"\"\"\"",
        "a\nb\nc\nd\ne\nf\ng\nh\n",   "naïve café — 日本語 🐍 ok",
        "日本語日本語日本語日本語",   "🐍🐍🐍🐍🐍🐍🐍🐍",
        "x=1 y=2 level=error",
    };
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        const char *s = values[i];
        size_t len = strlen(s);
        char want[256];
        as_logged(want, s, len);
        char whole[256];
        sf_log_quote(whole, sizeof(whole), s, len);
        for (size_t cap = 1; cap <= strlen(whole) + 1; cap++) {
            char *buf = malloc(cap); /* exactly cap bytes: a write past them is caught */
            cr_assert_not_null(buf);
            const char *q = sf_log_quote(buf, cap, s, len);
            size_t n = strlen(q);
            cr_assert_lt(n, cap, "value %zu cap %zu: %zu bytes", i, cap, n);
            pair v = unquote(q);
            cr_assert_leq(v.len, len);
            cr_assert_arr_eq(v.value, want, v.len, "value %zu cap %zu: not a prefix [%s]", i, cap,
                             q);
            cr_assert(valid_utf8(v.value, v.len), "value %zu cap %zu: cut inside a character [%s]",
                      i, cap, q);
            if (cap == strlen(whole) + 1)
                cr_assert_str_eq(q, whole, "value %zu: with room for all of it, all of it", i);
            free(buf);
        }
    }
}

Test(log_quote, a_plain_value_cut_to_the_buffer)
{
    char buf[4];
    cr_expect_str_eq(sf_log_quote(buf, sizeof(buf), "abcdef", 6), "abc");
    cr_expect_str_eq(sf_log_quote(buf, sizeof(buf), "abc", 3), "abc");
    cr_expect_str_eq(sf_log_quote(buf, 1, "abc", 3), "");
}

/* No room for even `""`: an empty string; no room at all: nothing written. */
Test(log_quote, buffers_too_small_for_any_value)
{
    for (size_t cap = 1; cap < 3; cap++) {
        char *buf = malloc(cap);
        cr_assert_not_null(buf);
        cr_expect_str_eq(sf_log_quote(buf, cap, "a b", 3), "", "cap %zu", cap);
        cr_expect_str_eq(sf_log_quote(buf, cap, "", 0), "", "cap %zu", cap);
        free(buf);
    }
    char untouched = 'u';
    cr_expect_str_eq(sf_log_quote(&untouched, 0, "a b", 3), "");
    cr_expect_str_eq(sf_log_quote(&untouched, 0, "abc", 3), "");
    cr_expect_eq(untouched, 'u');
}

/* ------------------------------------------------------------------ sf_log */

/* Runs fn with stderr going to a file; returns what it wrote (caller frees). */
static char *capture_stderr(void (*fn)(void))
{
    FILE *t = tmpfile();
    cr_assert_not_null(t);
    fflush(stderr);
    int saved = dup(2);
    cr_assert_geq(saved, 0);
    cr_assert_geq(dup2(fileno(t), 2), 0);
    fn();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    cr_assert_eq(fseek(t, 0, SEEK_END), 0);
    long n = ftell(t);
    cr_assert_geq(n, 0);
    rewind(t);
    char *text = calloc(1, (size_t)n + 1);
    cr_assert_not_null(text);
    cr_assert_eq(fread(text, 1, (size_t)n, t), (size_t)n);
    fclose(t);
    return text;
}

static void log_one_event(void)
{
    char q[128];
    sf_warn("worker_exited", "worker=%d session=%s status=%d", 3,
            sf_log_quote(q, sizeof(q), "evil level=error event=forged", 29), 137);
}

Test(log, an_event_is_one_line_of_fields_ts_level_event_first)
{
    char *text = capture_stderr(log_one_event);
    size_t n = strlen(text);
    cr_assert_gt(n, 0);
    cr_expect_eq(text[n - 1], '\n');
    cr_expect_eq(strchr(text, '\n'), text + n - 1, "one line: [%s]", text);
    pair pairs[MAX_PAIRS];
    cr_assert_eq(read_line(text, pairs), 6, "[%s]", text);
    static const char *const keys[] = {"ts", "level", "event", "worker", "session", "status"};
    for (int i = 0; i < 6; i++)
        cr_expect_str_eq(pairs[i].key, keys[i]);
    pairs[0].value[pairs[0].len] = '\0';
    int y, mo, d, h, mi, s, ms;
    char z;
    cr_expect_eq(
        sscanf(pairs[0].value, "%4d-%2d-%2dT%2d:%2d:%2d.%3d%c", &y, &mo, &d, &h, &mi, &s, &ms, &z),
        8, "ts=%s", pairs[0].value);
    cr_expect_eq(z, 'Z', "UTC");
    cr_expect_eq(pairs[0].len, strlen("2024-01-01T00:00:00.000Z"));
    cr_expect_arr_eq(pairs[1].value, "warn", 4);
    cr_expect_arr_eq(pairs[2].value, "worker_exited", 13);
    cr_expect_eq(pairs[4].len, 29);
    cr_expect_arr_eq(pairs[4].value, "evil level=error event=forged", 29);
    free(text);
}

static void log_at_each_level(void)
{
    sf_debug("d", "n=%d", 1);
    sf_info("i", "n=%d", 2);
    sf_warn("w", "n=%d", 3);
    sf_error("e", "n=%d", 4);
}

static size_t count_lines(const char *text)
{
    size_t n = 0;
    for (; *text; text++)
        n += *text == '\n';
    return n;
}

Test(log, events_below_the_threshold_are_not_written)
{
    sf_log_set_level(SF_LOG_WARN);
    cr_expect_eq(sf_log_get_level(), SF_LOG_WARN);
    char *text = capture_stderr(log_at_each_level);
    cr_expect_eq(count_lines(text), 2, "[%s]", text);
    cr_expect_not_null(strstr(text, " level=warn event=w n=3\n"));
    cr_expect_not_null(strstr(text, " level=error event=e n=4\n"));
    free(text);
    sf_log_set_level(SF_LOG_DEBUG);
    text = capture_stderr(log_at_each_level);
    cr_expect_eq(count_lines(text), 4, "[%s]", text);
    cr_expect_not_null(strstr(text, " level=debug event=d n=1\n"));
    free(text);
}

/* Each test runs in a process of its own, so the threshold is read from the environment afresh. */
Test(log, the_threshold_comes_from_SNAKEFLEET_LOG_LEVEL)
{
    setenv("SNAKEFLEET_LOG_LEVEL", "error", 1);
    cr_expect_eq(sf_log_get_level(), SF_LOG_ERROR);
}

Test(log, an_unknown_or_missing_level_means_info)
{
    setenv("SNAKEFLEET_LOG_LEVEL", "verbose", 1);
    cr_expect_eq(sf_log_get_level(), SF_LOG_INFO);
}

static void log_a_long_event(void)
{
    static char big[5000];
    memset(big, 'x', sizeof(big) - 1);
    sf_info("long", "payload=%s", big);
}

Test(log, a_long_event_is_cut_but_stays_one_line)
{
    char *text = capture_stderr(log_a_long_event);
    size_t n = strlen(text);
    cr_expect_eq(count_lines(text), 1);
    cr_expect_eq(text[n - 1], '\n');
    cr_expect_leq(n, 2047);
    cr_expect_not_null(strstr(text, " level=info event=long payload=xxx"));
    free(text);
}
