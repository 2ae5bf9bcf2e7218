/* args.c — flag parsing and structured error lines for the subcommands; see args.h. */
#include "args.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "clock.h"
#include "log.h"

/* `where` is "flag=--x", "line=3 field=session" or "" */
static void vprint_error(const char *cmd, const char *where, const char *value, const char *fmt,
                         va_list ap)
{
    char msg[1024], qmsg[1100], qval[600];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    char line[2400];
    int n = snprintf(line, sizeof(line), "snakefleet: error cmd=%s", cmd);
    if (where && where[0] && n > 0 && (size_t)n < sizeof(line))
        n += snprintf(line + n, sizeof(line) - (size_t)n, " %s", where);
    if (value && n > 0 && (size_t)n < sizeof(line))
        n += snprintf(line + n, sizeof(line) - (size_t)n, " value=%s",
                      sf_log_quote(qval, sizeof(qval), value, strlen(value)));
    if (n > 0 && (size_t)n < sizeof(line))
        snprintf(line + n, sizeof(line) - (size_t)n, " msg=%s",
                 sf_log_quote(qmsg, sizeof(qmsg), msg, strlen(msg)));
    fprintf(stderr, "%s\n", line);
}

int args_fail_flag(const char *cmd, const char *flag, const char *value, const char *fmt, ...)
{
    char where[160] = "";
    if (flag)
        snprintf(where, sizeof(where), "flag=%s", flag);
    va_list ap;
    va_start(ap, fmt);
    vprint_error(cmd, where, value, fmt, ap);
    va_end(ap);
    return CLI_EXIT_USAGE;
}

void args_fail_input(const char *cmd, long line, const char *field, const char *fmt, ...)
{
    char where[160];
    int n = snprintf(where, sizeof(where), "line=%ld", line);
    if (field && field[0] && n > 0 && (size_t)n < sizeof(where))
        snprintf(where + n, sizeof(where) - (size_t)n, " field=%s", field);
    va_list ap;
    va_start(ap, fmt);
    vprint_error(cmd, where, NULL, fmt, ap);
    va_end(ap);
}

void args_fail(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprint_error(cmd, NULL, NULL, fmt, ap);
    va_end(ap);
}

int args_long(const char *cmd, const char *flag, const char *value, long long min, long long max,
              long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(value, &end, 10);
    if (errno || end == value || *end != '\0' || v < min || v > max) {
        args_fail_flag(cmd, flag, value, "not an integer in %lld..%lld", min, max);
        return -1;
    }
    *out = v;
    return 0;
}

json_t *args_json_object(const char *cmd, const char *flag, const char *value)
{
    json_error_t je;
    json_t *j = json_loads(value, 0, &je);
    if (j == NULL) {
        args_fail_flag(cmd, flag, value, "not JSON: %s (column %d)", je.text, je.column);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        args_fail_flag(cmd, flag, value, "must be a JSON object");
        return NULL;
    }
    return j;
}

int args_parse(const char *cmd, const char *usage, int argc, char **argv, const cli_flag *flags)
{
    enum { FIRST = 256 };
    int n = 0;
    while (flags[n].name)
        n++;
    struct option *lo = sf_xcalloc((size_t)n + 2, sizeof(*lo));
    for (int i = 0; i < n; i++) {
        bool bare = flags[i].kind == FLAG_ON || flags[i].kind == FLAG_OFF;
        lo[i] =
            (struct option){flags[i].name, bare ? no_argument : required_argument, NULL, FIRST + i};
    }
    lo[n] = (struct option){"help", no_argument, NULL, 'h'};
    int rc = ARGS_OK, ch;
    optind = 1;
    opterr = 0;
    while (rc == ARGS_OK && (ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        if (ch == 'h') {
            fputs(usage, stdout);
            rc = CLI_EXIT_OK;
            break;
        }
        if (ch < FIRST || ch >= FIRST + n) {
            fputs(usage, stderr);
            rc = args_fail_flag(cmd, argv[optind - 1], NULL, "unknown flag or missing value");
            break;
        }
        const cli_flag *f = &flags[ch - FIRST];
        char flag[96];
        snprintf(flag, sizeof(flag), "--%s", f->name);
        switch (f->kind) {
        case FLAG_INT:
            if (args_long(cmd, flag, optarg, (long long)f->min, (long long)f->max, f->out) < 0)
                rc = CLI_EXIT_USAGE;
            break;
        case FLAG_NUM: {
            char *end;
            errno = 0;
            double v = strtod(optarg, &end);
            if (errno || end == optarg || *end || !(v > f->min) || v > f->max)
                rc = args_fail_flag(cmd, flag, optarg, "not a number in (%g, %g]", f->min, f->max);
            else
                *(double *)f->out = v;
            break;
        }
        case FLAG_STR:
            *(const char **)f->out = optarg;
            break;
        case FLAG_JSON:
            json_decref(*(json_t **)f->out);
            if ((*(json_t **)f->out = args_json_object(cmd, flag, optarg)) == NULL)
                rc = CLI_EXIT_USAGE;
            break;
        case FLAG_ON:
        case FLAG_OFF:
            *(bool *)f->out = f->kind == FLAG_ON;
            break;
        }
    }
    if (rc == ARGS_OK && optind < argc)
        rc = args_fail_flag(cmd, argv[optind], NULL, "unexpected argument");
    free(lo);
    return rc;
}

double args_now(void)
{
    return (double)sf_now_us() / 1e6;
}

int64_t args_wall_ms(void)
{
    return (int64_t)sf_wall_ms();
}
