/*
 * args.h — what every `snakefleet` subcommand does with its command line and
 * with a failure: parse a flag's value with bounds, and report an error as
 * one structured line on stderr that names the command and the bad flag or
 * field, so a script (or a person) knows exactly what to fix:
 *
 *   snakefleet: error cmd=submit flag=--timeout-ms value=abc msg="not an integer in 1..86400000"
 *
 * Exit codes shared by the Kafka commands (submit, batch, loadtest, status):
 */
#ifndef SF_CLI_ARGS_H
#define SF_CLI_ARGS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#define CLI_EXIT_OK        0 /* done; every reply ok */
#define CLI_EXIT_REPLY_ERR 1 /* a reply was an error (or an input line was bad) */
#define CLI_EXIT_USAGE     2 /* bad flag, option or input file */
#define CLI_EXIT_TIMEOUT   3 /* a reply did not come in time */
#define CLI_EXIT_KAFKA     4 /* Kafka failed: no broker, missing topic, undeliverable request */

/* Prints `snakefleet: error cmd=CMD flag=FLAG value=VALUE msg="..."`; returns CLI_EXIT_USAGE. */
int args_fail_flag(const char *cmd, const char *flag, const char *value, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Prints `snakefleet: error cmd=CMD msg="..."` (no flag to blame). */
void args_fail(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prints `snakefleet: error cmd=CMD line=N field=FIELD msg="..."` for a bad input line. */
void args_fail_input(const char *cmd, long line, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/*
 * A subcommand's flags as a table, parsed by args_parse: `--name VALUE`,
 * `--name=VALUE`, or `--name` alone for FLAG_ON / FLAG_OFF; -h and --help
 * print the usage. A table ends with an entry whose name is NULL.
 */
typedef enum {
    FLAG_INT,  /* long long, min..max */
    FLAG_NUM,  /* double, above min and at most max */
    FLAG_STR,  /* const char *, pointing into argv */
    FLAG_JSON, /* json_t *, a JSON object (the previous one released) */
    FLAG_ON,   /* bool, set true */
    FLAG_OFF,  /* bool, set false */
} cli_flag_kind;

typedef struct cli_flag {
    const char *name; /* without the leading dashes */
    cli_flag_kind kind;
    void *out;
    double min, max;
} cli_flag;

/* args_parse's answer when the command should go on. */
#define ARGS_OK (-1)

/*
 * Parses argv[1..] against flags. Returns ARGS_OK, or the exit code to
 * return at once: CLI_EXIT_OK after --help (usage on stdout), CLI_EXIT_USAGE
 * after a bad flag or value, or a positional argument (an error line naming
 * it, and for an unknown flag the usage, on stderr).
 */
int args_parse(const char *cmd, const char *usage, int argc, char **argv, const cli_flag *flags);

/* A decimal integer in min..max; on failure reports the flag and returns -1. */
int args_long(const char *cmd, const char *flag, const char *value, long long min, long long max,
              long long *out);

/* A JSON object (e.g. --args); on failure reports the flag and returns NULL. New reference. */
json_t *args_json_object(const char *cmd, const char *flag, const char *value);

/* Seconds on the monotonic clock. */
double args_now(void);
/* Milliseconds since the Unix epoch. */
int64_t args_wall_ms(void);

#endif
