/*
 * batch.c — `snakefleet batch`: JSONL requests in, JSONL replies out.
 *
 * Each input line is {"session", "op", "program"?, "args"?, "id"?,
 * "deadline_ms"?}. Lines are produced in file order by one producer, so the
 * requests of a session reach Kafka (one partition) in file order, with at
 * most --concurrency requests awaiting their reply at once. Every reply is
 * written as soon as it comes (completion order) as one JSON line: the reply
 * with "line" (the input line number) and "latency_ms" added. A line that is
 * not a valid request, a request without a reply in --timeout-ms and one
 * Kafka would not take get a line too, with ok false and a local error type
 * (invalid_input, timeout_local, undelivered, invalid_reply).
 *
 * stderr: a progress line when it is a terminal, then a one-line summary.
 * Exit status: 0 all ok, 1 some error reply or invalid line, 3 some request
 * timed out, 4 Kafka failed (2: bad usage).
 */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "alloc.h"
#include "args.h"
#include "cli.h"
#include "exchange.h"
#include "progress.h"
#include "tally.h"

#define CMD "batch"

static const char USAGE[] =
    "usage: snakefleet batch --in FILE.jsonl|- [--out FILE|-] [--concurrency N]\n"
    "                        [--timeout-ms T] [--reply-to TOPIC]\n"
    "                        [-c FILE] [--kafka.KEY=VALUE ...] [--topics.KEY=VALUE ...]\n"
    "\n"
    "  --in FILE        requests, one JSON object a line:\n"
    "                   {\"session\", \"op\", \"program\"?, \"args\"?, \"id\"?, \"deadline_ms\"?}\n"
    "  --out FILE       replies, one JSON line each, in completion order, with \"line\"\n"
    "                   and \"latency_ms\" added (default - : stdout)\n"
    "  --concurrency N  requests awaiting a reply at once (default 64)\n"
    "  --timeout-ms T   per request (default 30000)\n"
    "  --reply-to T     reply topic to use (default topics.replies)\n"
    "\n"
    "Exit status: 0 all ok, 1 an error reply or invalid line, 3 a timeout,\n"
    "4 Kafka failure, 2 usage.\n";

typedef struct item {
    long line;
    char session[SF_MAX_SESSION_BYTES + 1];
} item;

typedef struct batch {
    exchange *x;
    FILE *in, *out;
    long line, sent, done, ok, errors, invalid, timeouts, undelivered;
    tally types;
    progress prog;
} batch;

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    g_stop = sig;
}

static void write_line(batch *b, json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(15));
    if (s) {
        fprintf(b->out, "%s\n", s);
        free(s);
    }
    json_decref(o);
}

/* A line for a request that produced no reply of its own. */
static json_t *local_error(long line, const char *id, const char *session, const char *type,
                           const char *field, const char *message)
{
    json_t *e = json_pack("{s:s, s:s}", "type", type, "message", message);
    if (field)
        json_object_set_new(e, "field", json_string(field));
    json_t *o = json_pack("{s:I, s:s, s:s, s:b, s:o}", "line", (json_int_t)line, "id", id ? id : "",
                          "session", session ? session : "", "ok", 0, "error", e);
    return o;
}

static void on_result(void *ctx, const exchange_result *r)
{
    batch *b = ctx;
    item *it = r->user;
    if (r->outcome == EXCHANGE_ABANDONED) {
        free(it);
        return;
    }
    b->done++;
    json_t *o;
    if (r->reply && r->outcome == EXCHANGE_REPLY) {
        o = json_pack("{s:I}", "line", (json_int_t)it->line);
        json_t *reply = sf_mp_to_json(r->reply);
        json_object_update(o, reply);
        json_decref(reply);
    } else {
        o = local_error(it->line, r->id, it->session, r->err_type, NULL,
                        r->detail ? r->detail : "");
    }
    json_object_set_new(o, "latency_ms", json_real(round(r->latency_ms * 1000) / 1000));
    write_line(b, o);
    if (r->outcome == EXCHANGE_REPLY && r->ok) {
        b->ok++;
    } else {
        b->errors++;
        tally_add(&b->types, r->err_type);
        if (r->outcome == EXCHANGE_TIMEOUT)
            b->timeouts++;
        else if (r->outcome == EXCHANGE_UNDELIVERED)
            b->undelivered++;
    }
    free(it);
}

/* A string member: 1 present, 0 absent (and optional), -1 bad (field named in *bad). */
static int member_str(json_t *o, const char *key, bool required, size_t max, const char **out,
                      const char **bad, char *why, size_t whylen)
{
    json_t *v = json_object_get(o, key);
    if (v == NULL || json_is_null(v)) {
        if (!required)
            return 0;
        *bad = key;
        snprintf(why, whylen, "'%s' is required", key);
        return -1;
    }
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > max) {
        *bad = key;
        snprintf(why, whylen, "'%s' must be a string of 1..%zu bytes", key, max);
        return -1;
    }
    *out = json_string_value(v);
    return 1;
}

/* Validates one input object into spec; -1 names the bad field. */
static int to_spec(json_t *o, sf_request_spec *spec, const char **bad, char *why, size_t whylen)
{
    const char *op = NULL;
    if (member_str(o, "session", true, SF_MAX_SESSION_BYTES, &spec->session, bad, why, whylen) <
            0 ||
        member_str(o, "op", true, 64, &op, bad, why, whylen) < 0 ||
        member_str(o, "program", false, SF_MAX_PROGRAM_BYTES, &spec->program, bad, why, whylen) <
            0 ||
        member_str(o, "id", false, SF_MAX_ID_BYTES, &spec->id, bad, why, whylen) < 0)
        return -1;
    int opn = sf_op_parse(op, strlen(op));
    if (opn < 0) {
        *bad = "op";
        snprintf(why, whylen, "unknown op '%s'", op);
        return -1;
    }
    spec->op = (sf_op)opn;
    if (sf_op_needs_program(spec->op) && spec->program == NULL) {
        *bad = "program";
        snprintf(why, whylen, "'program' is required for op %s", op);
        return -1;
    }
    json_t *args = json_object_get(o, "args");
    if (args && !json_is_null(args) && !json_is_object(args)) {
        *bad = "args";
        snprintf(why, whylen, "'args' must be an object");
        return -1;
    }
    spec->args = json_is_object(args) ? args : NULL;
    json_t *deadline = json_object_get(o, "deadline_ms");
    if (deadline && !json_is_null(deadline)) {
        if (!json_is_integer(deadline) || json_integer_value(deadline) < 0) {
            *bad = "deadline_ms";
            snprintf(why, whylen, "'deadline_ms' must be an integer >= 0 (epoch ms)");
            return -1;
        }
        spec->deadline_ms = (uint64_t)json_integer_value(deadline);
    }
    return 0;
}

/* Reads and sends the next input line; false at the end of the input. */
static bool send_next(batch *b)
{
    char *buf = NULL;
    size_t cap = 0;
    ssize_t n = getline(&buf, &cap, b->in);
    if (n < 0) {
        free(buf);
        return false;
    }
    b->line++;
    if (strspn(buf, " \t\r\n") == (size_t)n) {
        free(buf);
        return true;
    }
    b->sent++;
    json_error_t je;
    json_t *o = json_loads(buf, 0, &je);
    free(buf);
    char why[512], idbuf[96];
    const char *bad = NULL;
    sf_request_spec spec = {0};
    if (o == NULL) {
        snprintf(why, sizeof(why), "not JSON: %s", je.text);
        bad = "";
    } else if (!json_is_object(o)) {
        snprintf(why, sizeof(why), "not a JSON object");
        bad = "";
    } else if (to_spec(o, &spec, &bad, why, sizeof(why)) == 0) {
        if (spec.id == NULL) {
            exchange_new_id(idbuf, sizeof(idbuf), "batch");
            spec.id = idbuf;
        }
        item *it = sf_xcalloc(1, sizeof(*it));
        it->line = b->line;
        snprintf(it->session, sizeof(it->session), "%s", spec.session);
        if (exchange_send(b->x, &spec, it, why, sizeof(why)) == 0) {
            json_decref(o);
            return true;
        }
        free(it);
        bad = exchange_in_flight(b->x, spec.id) ? "id" : NULL;
    }
    args_fail_input(CMD, b->line, bad, "%s", why);
    write_line(b, local_error(b->line, spec.id, spec.session, "invalid_input",
                              bad && bad[0] ? bad : NULL, why));
    json_decref(o);
    b->invalid++;
    b->done++;
    return true;
}

/* Non-blank lines of a regular file (the progress total), or -1. */
static long count_lines(const char *path)
{
    struct stat st;
    if (strcmp(path, "-") == 0 || stat(path, &st) < 0 || !S_ISREG(st.st_mode))
        return -1;
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    long n = 0;
    char *buf = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = getline(&buf, &cap, f)) >= 0)
        n += strspn(buf, " \t\r\n") != (size_t)len;
    free(buf);
    fclose(f);
    return n;
}

int cmd_batch(int argc, char **argv)
{
    sf_config cfg;
    if (cli_load_config(&cfg, &argc, argv) < 0)
        return CLI_EXIT_USAGE;
    const char *in_path = NULL, *out_path = "-", *reply_to = NULL;
    long long concurrency = 64, timeout_ms = 30000;
    const cli_flag flags[] = {{"in", FLAG_STR, &in_path, 0, 0},
                              {"out", FLAG_STR, &out_path, 0, 0},
                              {"concurrency", FLAG_INT, &concurrency, 1, 1000000},
                              {"timeout-ms", FLAG_INT, &timeout_ms, 1, 86400000},
                              {"reply-to", FLAG_STR, &reply_to, 0, 0},
                              {NULL, 0, NULL, 0, 0}};
    int parsed = args_parse(CMD, USAGE, argc, argv, flags);
    if (parsed != ARGS_OK)
        return parsed;
    if (in_path == NULL)
        return args_fail_flag(CMD, "--in", NULL, "required: a JSONL file, or - for stdin");

    batch b = {0};
    b.in = strcmp(in_path, "-") == 0 ? stdin : fopen(in_path, "r");
    if (b.in == NULL)
        return args_fail_flag(CMD, "--in", in_path, "cannot open: %s", strerror(errno));
    b.out = strcmp(out_path, "-") == 0 ? stdout : fopen(out_path, "w");
    if (b.out == NULL) {
        int rc = args_fail_flag(CMD, "--out", out_path, "cannot open: %s", strerror(errno));
        if (b.in != stdin)
            fclose(b.in);
        return rc;
    }
    exchange_opts xo = {.cmd = CMD,
                        .reply_topic = reply_to,
                        .timeout_ms = (int)timeout_ms,
                        .on_result = on_result,
                        .ctx = &b};
    char err[1024];
    int rc = CLI_EXIT_OK, code;
    b.x = exchange_new(&cfg, &xo, &code, err, sizeof(err));
    if (b.x == NULL) {
        args_fail(CMD, "%s", err);
        rc = code;
        goto out;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    progress_init(&b.prog, "batch", count_lines(in_path));
    double t0 = args_now();
    bool eof = false;
    while (!g_stop && (!eof || exchange_pending(b.x) > 0)) {
        while (!g_stop && !eof && exchange_pending(b.x) < (size_t)concurrency)
            eof = !send_next(&b);
        if (eof)
            progress_set_total(&b.prog, b.sent);
        exchange_poll(b.x, 50);
        progress_update(&b.prog, b.done, false);
    }
    double secs = args_now() - t0;
    progress_update(&b.prog, b.done, true);
    progress_clear(&b.prog);
    if (g_stop)
        args_fail(CMD, "interrupted (signal %d): %zu requests abandoned, input read to line %ld",
                  (int)g_stop, exchange_pending(b.x), b.line);
    exchange_stats st;
    exchange_get_stats(b.x, &st);
    char types[512];
    fprintf(stderr,
            "batch: done requests=%ld ok=%ld errors=%ld invalid_lines=%ld timeouts=%ld "
            "seconds=%.3f req_per_s=%.1f errors_by_type=\"%s\" foreign_replies=%llu\n",
            b.sent, b.ok, b.errors, b.invalid, b.timeouts, secs,
            secs > 0 ? (double)b.done / secs : 0.0, tally_format(&b.types, types, sizeof(types)),
            (unsigned long long)st.foreign);
    if (g_stop)
        rc = 130;
    else if (b.timeouts)
        rc = CLI_EXIT_TIMEOUT;
    else if (b.undelivered)
        rc = CLI_EXIT_KAFKA;
    else if (b.errors || b.invalid)
        rc = CLI_EXIT_REPLY_ERR;
    exchange_free(b.x, 2000);
out:
    if (b.in != stdin)
        fclose(b.in);
    if (b.out != stdout)
        fclose(b.out);
    else
        fflush(stdout);
    return rc;
}
