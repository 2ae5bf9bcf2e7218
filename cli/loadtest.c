/*
 * loadtest.c — `snakefleet loadtest`: S sessions × N ops against the fleet.
 *
 * Setup (unless --no-setup): every session gets create_session, then
 * create_program "load" (spec {kind: callable, entry: --program-entry}); all
 * must succeed. Load: execute_program "load" with args {"i": k} (k = the
 * session's op index; {"op": k} for snakefleet.examples:record, whose only
 * input is `op`), in one of two loops:
 *
 *   closed (--concurrency C)  C requests outstanding, at most one per
 *                             session, so each session's order is its own
 *                             sequence of round trips;
 *   open   (--rate R)         R requests a second on a timer, sessions in
 *                             turn, whatever the replies do.
 *
 * --warmup-ms W runs the same load for W ms first without recording it.
 * Latency is produce call → reply consumed. Order is checked two ways:
 * replies of a session must arrive in increasing op index (always), and for
 * snakefleet.examples:record — whose result is the length of the session's
 * record after appending — result - (k + 1) must stay constant: a change
 * means a request of that session ran out of order, twice, or not at all
 * (each change counts once in order_violations).
 *
 * stdout: a short report, then LAST one JSON summary line. --json-out adds the
 * per-second timeline; --plot FILE.svg draws latency over time (SVG only:
 * snakefleet has no plotting library, and PNG needs one).
 */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "args.h"
#include "cli.h"
#include "exchange.h"
#include "progress.h"
#include "tally.h"

#define CMD        "loadtest"
#define PROGRAM_ID "load"

static const char USAGE[] =
    "usage: snakefleet loadtest --sessions S --ops N [--concurrency C | --rate R]\n"
    "                           [--program-entry MODULE:FN] [--setup | --no-setup]\n"
    "                           [--warmup-ms W] [--timeout-ms T] [--json-out FILE]\n"
    "                           [--plot FILE.svg] [--reply-to TOPIC] [--session-prefix P]\n"
    "                           [-c FILE] [--kafka.KEY=VALUE ...] [--topics.KEY=VALUE ...]\n"
    "\n"
    "  --sessions S        sessions (default 8)\n"
    "  --ops N             measured ops per session (default 100)\n"
    "  --concurrency C     closed loop: C requests outstanding, one per session\n"
    "                      (default: S)\n"
    "  --rate R            open loop: R requests/s regardless of replies\n"
    "  --program-entry E   the callable run by each op (default snakefleet.examples:noop;\n"
    "                      snakefleet.examples:record also checks execution order)\n"
    "  --no-setup          skip create_session/create_program (sessions exist already)\n"
    "  --warmup-ms W       run W ms of load first, unrecorded (default 0)\n"
    "  --timeout-ms T      per request (default 30000)\n"
    "  --json-out FILE     summary, error types and the per-second timeline as JSON\n"
    "  --plot FILE.svg     latency over time and throughput, as an SVG chart\n"
    "  --session-prefix P  session ids are P-<run>-<n> (default lt)\n"
    "\n"
    "Prints a report, then last one JSON line: {\"requests\", \"ok\", \"errors\", \"seconds\",\n"
    "\"req_per_s\", \"p50_ms\", \"p90_ms\", \"p99_ms\", \"max_ms\", \"order_violations\", ...}.\n"
    "Exit status: 0 no errors, 1 errors or order violations, 3 timeouts, 4 Kafka, 2 usage.\n";

typedef struct sess {
    char name[96];
    long next;          /* next op index (warmup and measured alike) */
    long measured_sent; /* measured ops sent */
    long last_replied;  /* highest op index whose reply came, -1 none */
    long record_offset; /* record: result - (k + 1) last seen */
    bool have_offset;
    bool busy; /* closed loop: a request outstanding */
} sess;

typedef enum { PHASE_SETUP, PHASE_WARMUP, PHASE_MEASURE, PHASE_DRAIN } phase;

typedef struct ticket {
    int sess;
    long index;
    bool measured, setup;
} ticket;

typedef struct sample {
    float t_done; /* s since the measurement started */
    float latency_ms;
} sample;

typedef struct lt {
    /* options */
    long sessions, ops, concurrency, warmup_ms, timeout_ms;
    double rate;
    const char *entry;
    bool setup, record;
    /* state */
    exchange *x;
    sess *ss;
    int *ready; /* closed loop: ring of sessions ready to send */
    long ready_head, ready_len;
    phase ph;
    double t_phase, t_measure, t_last_done;
    long open_sent; /* open loop: requests sent in this phase */
    long measured_total, measured_sent, measured_done, ok, errors, timeouts, undelivered;
    long order_violations, setup_errors, in_flight;
    tally types, setup_types;
    sample *samples;
    long nsamples;
    progress prog;
    int failed_send;
} lt;

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    g_stop = sig;
}

static void ready_push(lt *t, int s)
{
    t->ready[(t->ready_head + t->ready_len) % t->sessions] = s;
    t->ready_len++;
}

static int ready_pop(lt *t)
{
    int s = t->ready[t->ready_head];
    t->ready_head = (t->ready_head + 1) % t->sessions;
    t->ready_len--;
    return s;
}

/* ------------------------------------------------------------------ results */

static void check_order(lt *t, sess *s, const ticket *tk, const exchange_result *r)
{
    if (tk->index <= s->last_replied)
        t->order_violations++; /* a reply overtook an earlier one of its session */
    else
        s->last_replied = tk->index;
    if (!t->record || !r->ok)
        return;
    const msgpack_object *res = sf_mp_get(r->reply, "result");
    if (res == NULL || (res->type != MSGPACK_OBJECT_POSITIVE_INTEGER &&
                        res->type != MSGPACK_OBJECT_NEGATIVE_INTEGER))
        return;
    long offset = (long)res->via.i64 - (tk->index + 1);
    if (s->have_offset && offset != s->record_offset)
        t->order_violations++;
    if (!s->have_offset && offset != 0 && t->setup)
        t->order_violations++; /* a fresh session's first op must see an empty record */
    s->record_offset = offset;
    s->have_offset = true;
}

static void on_result(void *ctx, const exchange_result *r)
{
    lt *t = ctx;
    ticket *tk = r->user;
    if (r->outcome == EXCHANGE_ABANDONED) {
        free(tk);
        return;
    }
    t->in_flight--;
    sess *s = &t->ss[tk->sess];
    bool ok = r->outcome == EXCHANGE_REPLY && r->ok;
    if (tk->setup) {
        if (!ok) {
            t->setup_errors++;
            tally_add(&t->setup_types, r->err_type);
            if (t->setup_errors <= 3)
                args_fail(CMD, "setup of session %s failed: %s%s%s", s->name, r->err_type,
                          r->detail ? ": " : "", r->detail ? r->detail : "");
        }
        free(tk);
        return;
    }
    s->busy = false;
    if (r->outcome == EXCHANGE_REPLY || r->outcome == EXCHANGE_INVALID_REPLY)
        check_order(t, s, tk, r);
    if (tk->measured) {
        double now = args_now();
        t->measured_done++;
        t->t_last_done = now;
        t->samples[t->nsamples++] = (sample){(float)(now - t->t_measure), (float)r->latency_ms};
        if (ok) {
            t->ok++;
        } else {
            t->errors++;
            tally_add(&t->types, r->err_type);
            t->timeouts += r->outcome == EXCHANGE_TIMEOUT;
            t->undelivered += r->outcome == EXCHANGE_UNDELIVERED;
        }
    }
    /* Closed loop: the session may go again if it has ops left (warmup has no end). */
    if (t->rate <= 0 && (t->ph == PHASE_WARMUP || s->measured_sent < t->ops))
        ready_push(t, tk->sess);
    free(tk);
}

/* ------------------------------------------------------------------ sending */

static int send_request(lt *t, int si, sf_op op, const char *program, json_t *args, ticket *tk)
{
    char id[128], err[512];
    exchange_new_id(id, sizeof(id), "lt");
    sf_request_spec spec = {
        .id = id, .session = t->ss[si].name, .op = op, .program = program, .args = args};
    if (exchange_send(t->x, &spec, tk, err, sizeof(err)) < 0) {
        if (t->failed_send++ < 3)
            args_fail(CMD, "cannot send to session %s: %s", t->ss[si].name, err);
        free(tk);
        return -1;
    }
    t->in_flight++;
    return 0;
}

/* A request that could not be sent still counts (as an error), so every loop ends. */
static void count_send_failure(lt *t, sess *s, bool measured)
{
    if (!measured)
        return;
    s->measured_sent++;
    t->measured_sent++;
    t->measured_done++;
    t->errors++;
    tally_add(&t->types, "send_failed");
}

static int send_op(lt *t, int si)
{
    sess *s = &t->ss[si];
    ticket *tk = sf_xcalloc(1, sizeof(*tk));
    bool measured = t->ph == PHASE_MEASURE;
    tk->sess = si;
    tk->index = s->next++;
    tk->measured = measured;
    json_t *args = json_pack("{s:I}", t->record ? "op" : "i", (json_int_t)tk->index);
    int rc =
        send_request(t, si, SF_OP_EXECUTE_PROGRAM, PROGRAM_ID, args, tk); /* frees tk on error */
    json_decref(args);
    if (rc < 0) {
        count_send_failure(t, s, measured);
        return -1;
    }
    if (measured) {
        s->measured_sent++;
        t->measured_sent++;
    }
    return 0;
}

static int send_setup(lt *t, int si)
{
    ticket *a = sf_xcalloc(1, sizeof(*a)), *b = sf_xcalloc(1, sizeof(*b));
    a->sess = b->sess = si;
    a->setup = b->setup = true;
    json_t *state = json_pack("{s:{}}", "state");
    json_t *spec = json_pack("{s:{s:s, s:s}}", "spec", "kind", "callable", "entry", t->entry);
    /* One producer, one key: create_program reaches the partition after create_session. */
    int rc = send_request(t, si, SF_OP_CREATE_SESSION, NULL, state, a);
    if (rc == 0)
        rc = send_request(t, si, SF_OP_CREATE_PROGRAM, PROGRAM_ID, spec, b);
    else
        free(b);
    json_decref(state);
    json_decref(spec);
    if (rc < 0) {
        t->setup_errors++;
        tally_add(&t->setup_types, "send_failed");
    }
    return rc;
}

/* Starts whatever the loop allows now. */
static void pump(lt *t, double now)
{
    if (t->ph == PHASE_SETUP || t->ph == PHASE_DRAIN)
        return;
    if (t->rate > 0) {
        long due = (long)floor(t->rate * (now - t->t_phase)) + 1;
        while (t->open_sent < due && !g_stop) {
            if (t->ph == PHASE_MEASURE && t->measured_sent >= t->measured_total)
                break;
            int si = (int)(t->open_sent % t->sessions);
            t->open_sent++;
            send_op(t, si);
        }
        return;
    }
    while (t->in_flight < t->concurrency && t->ready_len > 0 && !g_stop) {
        int si = ready_pop(t);
        if (t->ph == PHASE_MEASURE && t->ss[si].measured_sent >= t->ops)
            continue;
        t->ss[si].busy = true;
        if (send_op(t, si) < 0) {
            t->ss[si].busy = false;
            if (t->ph == PHASE_WARMUP || t->ss[si].measured_sent < t->ops)
                ready_push(t, si);
            break; /* try again on the next turn, after a poll */
        }
    }
}

/* ------------------------------------------------------------------ report */

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted v[0..n). */
static double pct(const float *v, long n, double q)
{
    if (n == 0)
        return 0;
    long k = (long)ceil(q * (double)n) - 1;
    if (k < 0)
        k = 0;
    if (k >= n)
        k = n - 1;
    return v[k];
}

static json_t *summary_json(lt *t, double secs)
{
    long n = t->nsamples;
    float *lat = sf_xmalloc(sizeof(float) * (size_t)(n ? n : 1));
    for (long i = 0; i < n; i++)
        lat[i] = t->samples[i].latency_ms;
    qsort(lat, (size_t)n, sizeof(float), cmp_float);
    json_t *j = json_pack(
        "{s:I, s:I, s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:I, s:I, s:o, s:s, s:I, s:I, s:s}",
        "requests", (json_int_t)t->measured_done, "ok", (json_int_t)t->ok, "errors",
        (json_int_t)t->errors, "seconds", round(secs * 1000) / 1000, "req_per_s",
        secs > 0 ? round((double)t->measured_done / secs * 10) / 10 : 0.0, "p50_ms",
        round(pct(lat, n, 0.50) * 1000) / 1000, "p90_ms", round(pct(lat, n, 0.90) * 1000) / 1000,
        "p99_ms", round(pct(lat, n, 0.99) * 1000) / 1000, "max_ms",
        n ? round((double)lat[n - 1] * 1000) / 1000 : 0.0, "order_violations",
        (json_int_t)t->order_violations, "timeouts", (json_int_t)t->timeouts, "errors_by_type",
        tally_json(&t->types), "mode", t->rate > 0 ? "open" : "closed", "sessions",
        (json_int_t)t->sessions, "ops", (json_int_t)t->ops, "order_check",
        t->record ? "execution+reply" : "reply");
    if (t->rate > 0)
        json_object_set_new(j, "rate", json_real(t->rate));
    else
        json_object_set_new(j, "concurrency", json_integer(t->concurrency));
    free(lat);
    return j;
}

/* Per-second buckets of completions: count and latency percentiles. */
static json_t *timeline_json(lt *t)
{
    json_t *arr = json_array();
    long n = t->nsamples;
    if (n == 0)
        return arr;
    sample *v = sf_xmalloc(sizeof(sample) * (size_t)n);
    memcpy(v, t->samples, sizeof(sample) * (size_t)n);
    float *lat = sf_xmalloc(sizeof(float) * (size_t)n);
    long start = 0;
    for (int sec = 0; start < n; sec++) {
        long m = 0;
        for (long i = 0; i < n; i++) {
            if (v[i].t_done >= (float)sec && v[i].t_done < (float)(sec + 1))
                lat[m++] = v[i].latency_ms;
        }
        start += m;
        qsort(lat, (size_t)m, sizeof(float), cmp_float);
        json_array_append_new(arr,
                              json_pack("{s:i, s:I, s:f, s:f, s:f}", "t", sec, "completed",
                                        (json_int_t)m, "p50_ms", pct(lat, m, 0.5), "p99_ms",
                                        pct(lat, m, 0.99), "max_ms", m ? (double)lat[m - 1] : 0.0));
    }
    free(lat);
    free(v);
    return arr;
}

static int write_json_out(lt *t, const char *path, json_t *summary)
{
    json_t *doc =
        json_pack("{s:O, s:o, s:o, s:{s:s, s:I, s:I, s:I}}", "summary", summary, "timeline",
                  timeline_json(t), "setup_errors_by_type", tally_json(&t->setup_types), "config",
                  "program_entry", t->entry, "warmup_ms", (json_int_t)t->warmup_ms, "timeout_ms",
                  (json_int_t)t->timeout_ms, "setup_errors", (json_int_t)t->setup_errors);
    int rc = json_dump_file(doc, path, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
    json_decref(doc);
    if (rc < 0)
        return args_fail_flag(CMD, "--json-out", path, "cannot write: %s", strerror(errno));
    return 0;
}

/* An SVG chart: latency of every measured request over time, and completions per second. */
static int write_plot(lt *t, const char *path)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return args_fail_flag(CMD, "--plot", path, "cannot write: %s", strerror(errno));
    const double W = 900, H = 500, L = 70, R = 60, T = 40, B = 50;
    double tmax = 0.001, lmax = 0.001;
    for (long i = 0; i < t->nsamples; i++) {
        tmax = fmax(tmax, t->samples[i].t_done);
        lmax = fmax(lmax, t->samples[i].latency_ms);
    }
    int secs = (int)ceil(tmax);
    long *per_sec = sf_xcalloc((size_t)secs + 1, sizeof(long));
    long rmax = 1;
    for (long i = 0; i < t->nsamples; i++) {
        int s = (int)t->samples[i].t_done;
        if (++per_sec[s] > rmax)
            rmax = per_sec[s];
    }
    double pw = W - L - R, ph = H - T - B;
    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
            "font-family=\"sans-serif\" font-size=\"12\">\n"
            "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
            "<text x=\"%.0f\" y=\"22\" font-size=\"15\">snakefleet loadtest: %ld sessions x %ld "
            "ops, %s</text>\n"
            "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" "
            "stroke=\"#333\"/>\n",
            W, H, L, t->sessions, t->ops, t->rate > 0 ? "open loop" : "closed loop", L, T, pw, ph);
    for (int i = 0; i <= 4; i++) {
        double y = T + ph - ph * i / 4;
        fprintf(f,
                "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"end\">%.1f ms</text>\n"
                "<text x=\"%.0f\" y=\"%.0f\" fill=\"#c60\">%.0f/s</text>\n",
                L - 5, y + 4, lmax * i / 4, W - R + 5, y + 4, (double)rmax * i / 4);
    }
    for (int i = 0; i <= 5; i++)
        fprintf(f, "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">%.1f s</text>\n",
                L + pw * i / 5, H - B + 18, tmax * i / 5);
    long step = t->nsamples > 20000 ? t->nsamples / 20000 : 1;
    for (long i = 0; i < t->nsamples; i += step)
        fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"1.2\" fill=\"#1f5fbf\"/>\n",
                L + pw * t->samples[i].t_done / tmax,
                T + ph - ph * t->samples[i].latency_ms / lmax);
    fprintf(f, "<polyline fill=\"none\" stroke=\"#c60\" stroke-width=\"2\" points=\"");
    for (int s = 0; s < secs; s++)
        fprintf(f, "%.1f,%.1f ", L + pw * (s + 0.5) / tmax,
                T + ph - ph * (double)per_sec[s] / (double)rmax);
    fprintf(f,
            "\"/>\n<text x=\"%.0f\" y=\"%.0f\" fill=\"#1f5fbf\">• latency per request</text>\n"
            "<text x=\"%.0f\" y=\"%.0f\" fill=\"#c60\">— completions per second</text>\n</svg>\n",
            L, H - 12, L + 200, H - 12);
    free(per_sec);
    if (fclose(f) != 0)
        return args_fail_flag(CMD, "--plot", path, "cannot write: %s", strerror(errno));
    return 0;
}

static void print_report(lt *t, json_t *sum)
{
    char types[512];
    printf("loadtest: %ld sessions x %ld ops, %s, program %s\n", t->sessions, t->ops,
           t->rate > 0 ? "open loop" : "closed loop", t->entry);
    printf("  requests    %lld (ok %lld, errors %lld, timeouts %lld)\n",
           (long long)json_integer_value(json_object_get(sum, "requests")),
           (long long)json_integer_value(json_object_get(sum, "ok")),
           (long long)json_integer_value(json_object_get(sum, "errors")), (long long)t->timeouts);
    printf("  seconds     %.3f\n", json_real_value(json_object_get(sum, "seconds")));
    printf("  throughput  %.1f req/s\n", json_real_value(json_object_get(sum, "req_per_s")));
    printf("  latency ms  p50 %.3f  p90 %.3f  p99 %.3f  max %.3f\n",
           json_real_value(json_object_get(sum, "p50_ms")),
           json_real_value(json_object_get(sum, "p90_ms")),
           json_real_value(json_object_get(sum, "p99_ms")),
           json_real_value(json_object_get(sum, "max_ms")));
    printf("  errors      %s\n", tally_format(&t->types, types, sizeof(types)));
    printf("  order       %ld violations (%s)\n", t->order_violations,
           t->record ? "execution and reply order" : "reply order");
}

/* ------------------------------------------------------------------ main */

static int parse(lt *t, int argc, char **argv, const char **json_out, const char **plot,
                 const char **reply_to, const char **prefix)
{
    long long sessions = t->sessions, ops = t->ops, concurrency = t->concurrency,
              warmup_ms = t->warmup_ms, timeout_ms = t->timeout_ms;
    const cli_flag flags[] = {{"sessions", FLAG_INT, &sessions, 1, 10000000},
                              {"ops", FLAG_INT, &ops, 1, 100000000},
                              {"concurrency", FLAG_INT, &concurrency, 1, 10000000},
                              {"rate", FLAG_NUM, &t->rate, 0, 1e7},
                              {"program-entry", FLAG_STR, &t->entry, 0, 0},
                              {"setup", FLAG_ON, &t->setup, 0, 0},
                              {"no-setup", FLAG_OFF, &t->setup, 0, 0},
                              {"warmup-ms", FLAG_INT, &warmup_ms, 0, 86400000},
                              {"timeout-ms", FLAG_INT, &timeout_ms, 1, 86400000},
                              {"json-out", FLAG_STR, json_out, 0, 0},
                              {"plot", FLAG_STR, plot, 0, 0},
                              {"reply-to", FLAG_STR, reply_to, 0, 0},
                              {"session-prefix", FLAG_STR, prefix, 0, 0},
                              {NULL, 0, NULL, 0, 0}};
    int parsed = args_parse(CMD, USAGE, argc, argv, flags);
    if (parsed != ARGS_OK)
        return parsed == CLI_EXIT_OK ? 1 : -1;
    t->sessions = (long)sessions;
    t->ops = (long)ops;
    t->concurrency = (long)concurrency;
    t->warmup_ms = (long)warmup_ms;
    t->timeout_ms = (long)timeout_ms;
    if (t->entry && strchr(t->entry, ':') == NULL) {
        args_fail_flag(CMD, "--program-entry", t->entry, "must be module:function");
        return -1;
    }
    size_t plen = *plot ? strlen(*plot) : 0;
    if (*plot && (plen < 4 || strcmp(*plot + plen - 4, ".svg") != 0)) {
        args_fail_flag(CMD, "--plot", *plot,
                       "only .svg is supported (PNG would need a plotting library)");
        return -1;
    }
    if (t->concurrency > 0 && t->rate > 0) {
        args_fail_flag(CMD, "--rate", NULL, "give --concurrency or --rate, not both");
        return -1;
    }
    return 0;
}

/* Runs the loop until `done` says so (or a signal). */
static void run_until(lt *t, bool (*done)(lt *t))
{
    while (!g_stop && !done(t)) {
        double now = args_now();
        if (t->ph == PHASE_WARMUP && (now - t->t_phase) * 1000 >= (double)t->warmup_ms) {
            t->ph = PHASE_MEASURE;
            t->t_phase = t->t_measure = now;
            t->open_sent = 0;
        }
        pump(t, now);
        if (t->ph == PHASE_MEASURE && t->measured_sent >= t->measured_total)
            t->ph = PHASE_DRAIN;
        int wait = 5;
        if (t->rate > 0 && t->ph != PHASE_DRAIN) {
            double next = t->t_phase + (double)(t->open_sent) / t->rate;
            wait = (int)((next - args_now()) * 1000);
            wait = wait < 1 ? 1 : wait > 5 ? 5 : wait; /* 1 ms pacing: no busy loop */
        }
        exchange_poll(t->x, wait);
        progress_update(&t->prog, t->ph == PHASE_SETUP ? 0 : t->measured_done, false);
    }
}

static bool setup_done(lt *t)
{
    return t->in_flight == 0;
}

static bool load_done(lt *t)
{
    return t->ph == PHASE_DRAIN && t->in_flight == 0;
}

int cmd_loadtest(int argc, char **argv)
{
    sf_config cfg;
    if (cli_load_config(&cfg, &argc, argv) < 0)
        return CLI_EXIT_USAGE;
    lt t = {.sessions = 8,
            .ops = 100,
            .timeout_ms = 30000,
            .entry = "snakefleet.examples:noop",
            .setup = true};
    const char *json_out = NULL, *plot = NULL, *reply_to = NULL, *prefix = "lt";
    int rc = parse(&t, argc, argv, &json_out, &plot, &reply_to, &prefix);
    if (rc != 0)
        return rc > 0 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
    if (t.rate <= 0 && t.concurrency <= 0)
        t.concurrency = t.sessions;
    if (t.rate <= 0 && t.concurrency > t.sessions) {
        fprintf(stderr,
                "loadtest: --concurrency %ld > --sessions %ld: at most one request per session "
                "is outstanding, so concurrency is %ld\n",
                t.concurrency, t.sessions, t.sessions);
        t.concurrency = t.sessions;
    }
    size_t elen = strlen(t.entry);
    t.record = elen >= 7 && strcmp(t.entry + elen - 7, ":record") == 0;
    t.measured_total = t.sessions * t.ops;

    exchange_opts xo = {.cmd = CMD,
                        .reply_topic = reply_to,
                        .timeout_ms = (int)t.timeout_ms,
                        .on_result = on_result,
                        .ctx = &t};
    char err[1024];
    int code;
    t.x = exchange_new(&cfg, &xo, &code, err, sizeof(err));
    if (t.x == NULL) {
        args_fail(CMD, "%s", err);
        return code;
    }
    t.ss = sf_xcalloc((size_t)t.sessions, sizeof(*t.ss));
    t.ready = sf_xcalloc((size_t)t.sessions, sizeof(*t.ready));
    t.samples = sf_xcalloc((size_t)t.measured_total, sizeof(*t.samples));
    char run[64];
    exchange_new_id(run, sizeof(run), prefix);
    *strrchr(run, '-') = '\0'; /* "<prefix>-<random>" names this run's sessions */
    for (long i = 0; i < t.sessions; i++) {
        snprintf(t.ss[i].name, sizeof(t.ss[i].name), "%s-%ld", run, i);
        t.ss[i].last_replied = -1;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    rc = CLI_EXIT_OK;

    if (t.setup) {
        fprintf(stderr, "loadtest: setting up %ld sessions (program %s)\n", t.sessions, t.entry);
        t.ph = PHASE_SETUP;
        long window = t.concurrency > 0 ? t.concurrency : 64;
        for (long i = 0; i < t.sessions && !g_stop; i++) {
            while (t.in_flight >= 2 * window && !g_stop)
                exchange_poll(t.x, 5);
            send_setup(&t, (int)i);
            exchange_poll(t.x, 0);
        }
        run_until(&t, setup_done);
        if (t.setup_errors) {
            char types[512];
            args_fail(CMD, "setup failed for %ld requests (%s); not starting the load",
                      t.setup_errors, tally_format(&t.setup_types, types, sizeof(types)));
            rc = CLI_EXIT_REPLY_ERR;
            goto out;
        }
    }
    if (t.rate <= 0) {
        for (long i = 0; i < t.sessions; i++)
            ready_push(&t, (int)i);
    }
    progress_init(&t.prog, "loadtest", t.measured_total);
    t.ph = t.warmup_ms > 0 ? PHASE_WARMUP : PHASE_MEASURE;
    t.t_phase = t.t_measure = args_now();
    if (t.warmup_ms > 0)
        fprintf(stderr, "loadtest: warming up for %ld ms\n", t.warmup_ms);
    run_until(&t, load_done);
    progress_update(&t.prog, t.measured_done, true);
    progress_clear(&t.prog);

    double secs = (t.measured_done ? t.t_last_done : args_now()) - t.t_measure;
    json_t *sum = summary_json(&t, secs);
    if (g_stop)
        json_object_set_new(sum, "interrupted", json_true());
    print_report(&t, sum);
    if (json_out && write_json_out(&t, json_out, sum) != 0)
        rc = CLI_EXIT_USAGE;
    if (plot && write_plot(&t, plot) != 0)
        rc = CLI_EXIT_USAGE;
    char *line = json_dumps(sum, JSON_COMPACT | JSON_REAL_PRECISION(10));
    printf("%s\n", line);
    fflush(stdout);
    free(line);
    json_decref(sum);
    if (rc == CLI_EXIT_OK) {
        if (g_stop)
            rc = 130;
        else if (t.timeouts)
            rc = CLI_EXIT_TIMEOUT;
        else if (t.undelivered)
            rc = CLI_EXIT_KAFKA;
        else if (t.errors || t.order_violations)
            rc = CLI_EXIT_REPLY_ERR;
    }
out:
    exchange_free(t.x, 2000);
    free(t.ss);
    free(t.ready);
    free(t.samples);
    return rc;
}
