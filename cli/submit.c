/*
 * submit.c — `snakefleet submit`: one request, wait for its reply.
 *
 * Produces one execute request keyed by its session, waits on the reply
 * topic for the reply with its id, and prints that reply as one JSON line on
 * stdout. Exit status: 0 the reply is ok, 1 it is an error, 3 no reply in
 * --timeout-ms, 4 Kafka failed (2: bad usage).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "exchange.h"

#define CMD "submit"

static const char USAGE[] =
    "usage: snakefleet submit --session S --op OP [--program P] [--args JSON]\n"
    "                         [--reply-to TOPIC] [--timeout-ms T] [--id ID] [--deadline-ms D]\n"
    "                         [-c FILE] [--kafka.KEY=VALUE ...] [--topics.KEY=VALUE ...]\n"
    "\n"
    "  --session S      session id (the Kafka key)\n"
    "  --op OP          create_session, end_session, create_program, execute_program,\n"
    "                   get_session_state, set_session_state, delete_program,\n"
    "                   list_programs or ping\n"
    "  --program P      program id (create/execute/delete_program)\n"
    "  --args JSON      the op's arguments, a JSON object (default {})\n"
    "  --reply-to T     topic to wait on for the reply (default topics.replies)\n"
    "  --timeout-ms T   how long to wait for the reply (default 30000)\n"
    "  --id ID          request id (default a fresh unique id)\n"
    "  --deadline-ms D  the request's deadline, D ms from now (default none)\n"
    "\n"
    "Prints the reply as one JSON line. Exit status: 0 ok, 1 error reply,\n"
    "2 usage, 3 no reply in time, 4 Kafka failure.\n";

typedef struct outcome {
    bool done;
    int code;
} outcome;

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    g_stop = sig;
}

static void on_result(void *ctx, const exchange_result *r)
{
    outcome *out = ctx;
    if (r->outcome == EXCHANGE_ABANDONED)
        return;
    out->done = true;
    if (r->outcome == EXCHANGE_REPLY || (r->outcome == EXCHANGE_INVALID_REPLY && r->reply)) {
        json_t *j = sf_mp_to_json(r->reply);
        char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
        if (s)
            printf("%s\n", s);
        fflush(stdout);
        free(s);
        json_decref(j);
    }
    switch (r->outcome) {
    case EXCHANGE_REPLY:
        out->code = r->ok ? CLI_EXIT_OK : CLI_EXIT_REPLY_ERR;
        break;
    case EXCHANGE_INVALID_REPLY:
        args_fail(CMD, "the reply to %s breaks the reply schema: %s", r->id, r->detail);
        out->code = CLI_EXIT_REPLY_ERR;
        break;
    case EXCHANGE_TIMEOUT:
        args_fail(CMD, "timeout: request %s: %s", r->id, r->detail);
        out->code = CLI_EXIT_TIMEOUT;
        break;
    case EXCHANGE_UNDELIVERED:
        args_fail(CMD, "request %s was not delivered to Kafka: %s", r->id, r->detail);
        out->code = CLI_EXIT_KAFKA;
        break;
    case EXCHANGE_ABANDONED:
        break;
    }
}

typedef struct submit_args {
    const char *session, *op, *program, *reply_to, *id;
    json_t *args;
    long long timeout_ms, deadline_ms;
} submit_args;

static int parse(int argc, char **argv, submit_args *a)
{
    const cli_flag flags[] = {{"session", FLAG_STR, &a->session, 0, 0},
                              {"op", FLAG_STR, &a->op, 0, 0},
                              {"program", FLAG_STR, &a->program, 0, 0},
                              {"args", FLAG_JSON, &a->args, 0, 0},
                              {"reply-to", FLAG_STR, &a->reply_to, 0, 0},
                              {"timeout-ms", FLAG_INT, &a->timeout_ms, 1, 86400000},
                              {"id", FLAG_STR, &a->id, 0, 0},
                              {"deadline-ms", FLAG_INT, &a->deadline_ms, 1, 86400000.0 * 365},
                              {NULL, 0, NULL, 0, 0}};
    int parsed = args_parse(CMD, USAGE, argc, argv, flags);
    if (parsed != ARGS_OK)
        return parsed == CLI_EXIT_OK ? 1 : -1;
    if (a->session == NULL || a->session[0] == '\0' || strlen(a->session) > SF_MAX_SESSION_BYTES) {
        args_fail_flag(CMD, "--session", a->session, "required, 1..%d bytes", SF_MAX_SESSION_BYTES);
        return -1;
    }
    if (a->op == NULL || sf_op_parse(a->op, strlen(a->op)) < 0) {
        args_fail_flag(CMD, "--op", a->op, "required, one of the ops in `snakefleet submit -h`");
        return -1;
    }
    sf_op op = (sf_op)sf_op_parse(a->op, strlen(a->op));
    if (sf_op_needs_program(op) && (a->program == NULL || a->program[0] == '\0')) {
        args_fail_flag(CMD, "--program", NULL, "required for --op %s", a->op);
        return -1;
    }
    if (a->program && strlen(a->program) > SF_MAX_PROGRAM_BYTES) {
        args_fail_flag(CMD, "--program", a->program, "longer than %d bytes", SF_MAX_PROGRAM_BYTES);
        return -1;
    }
    if (a->id && (a->id[0] == '\0' || strlen(a->id) > SF_MAX_ID_BYTES)) {
        args_fail_flag(CMD, "--id", a->id, "must be 1..%d bytes", SF_MAX_ID_BYTES);
        return -1;
    }
    return 0;
}

int cmd_submit(int argc, char **argv)
{
    sf_config cfg;
    if (cli_load_config(&cfg, &argc, argv) < 0)
        return CLI_EXIT_USAGE;
    submit_args a = {.timeout_ms = 30000};
    int rc = parse(argc, argv, &a);
    if (rc != 0) {
        json_decref(a.args);
        return rc > 0 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
    }
    outcome out = {.code = CLI_EXIT_TIMEOUT};
    exchange_opts xo = {.cmd = CMD,
                        .reply_topic = a.reply_to,
                        .timeout_ms = (int)a.timeout_ms,
                        .on_result = on_result,
                        .ctx = &out};
    char err[1024];
    int code;
    exchange *x = exchange_new(&cfg, &xo, &code, err, sizeof(err));
    if (x == NULL) {
        args_fail(CMD, "%s", err);
        json_decref(a.args);
        return code;
    }
    char id[96];
    if (a.id == NULL)
        exchange_new_id(id, sizeof(id), "submit");
    sf_request_spec spec = {.id = a.id ? a.id : id,
                            .session = a.session,
                            .op = (sf_op)sf_op_parse(a.op, strlen(a.op)),
                            .program = a.program,
                            .args = a.args,
                            .deadline_ms =
                                a.deadline_ms ? (uint64_t)(args_wall_ms() + a.deadline_ms) : 0};
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    if (exchange_send(x, &spec, NULL, err, sizeof(err)) < 0) {
        args_fail(CMD, "%s", err);
        out.code = CLI_EXIT_KAFKA;
        out.done = true;
    }
    while (!out.done && !g_stop)
        exchange_poll(x, 100);
    if (g_stop && !out.done) {
        args_fail(CMD, "interrupted (signal %d) before the reply to %s came", (int)g_stop, spec.id);
        out.code = 130;
    }
    exchange_free(x, 2000);
    json_decref(a.args);
    return out.code;
}
