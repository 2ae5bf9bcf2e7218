/*
 * test_args.c — the subcommands' flag tables (cli/args.c args_parse): every
 * kind of flag, both spellings of a value, help, and each way a command line
 * can be wrong (which must name the flag and exit with the usage code).
 */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <stdbool.h>
#include <string.h>

#include "args.h"

typedef struct opts {
    long long n;
    double rate;
    const char *name;
    json_t *args;
    bool on;
} opts;

static int parse(opts *o, int argc, char **argv)
{
    const cli_flag flags[] = {{"n", FLAG_INT, &o->n, 1, 100},
                              {"rate", FLAG_NUM, &o->rate, 0, 1000},
                              {"name", FLAG_STR, &o->name, 0, 0},
                              {"args", FLAG_JSON, &o->args, 0, 0},
                              {"on", FLAG_ON, &o->on, 0, 0},
                              {"off", FLAG_OFF, &o->on, 0, 0},
                              {NULL, 0, NULL, 0, 0}};
    return args_parse("t", "usage: t\n", argc, argv, flags);
}

#define ARGV(...)                                                                                  \
    (char *[])                                                                                     \
    {                                                                                              \
        "t", __VA_ARGS__, NULL                                                                     \
    }
#define ARGC(...)     ((int)(sizeof((char *[]){"t", __VA_ARGS__}) / sizeof(char *)))
#define PARSE(o, ...) parse(o, ARGC(__VA_ARGS__), ARGV(__VA_ARGS__))

TestSuite(args, .init = cr_redirect_stderr);

Test(args, every_kind_and_both_spellings)
{
    opts o = {0};
    cr_assert_eq(PARSE(&o, "--n", "7", "--rate=2.5", "--name", "x", "--args", "{\"a\": 1}", "--on"),
                 ARGS_OK);
    cr_expect_eq(o.n, 7);
    cr_expect_float_eq(o.rate, 2.5, 1e-9);
    cr_expect_str_eq(o.name, "x");
    cr_expect_eq(json_integer_value(json_object_get(o.args, "a")), 1);
    cr_expect(o.on);
    cr_assert_eq(PARSE(&o, "--off", "--args", "{}"), ARGS_OK);
    cr_expect_not(o.on);
    cr_expect_eq(json_object_size(o.args), 0, "a repeated --args replaces the first");
    json_decref(o.args);
}

Test(args, help_is_not_an_error)
{
    opts o = {0};
    cr_expect_eq(PARSE(&o, "--help"), CLI_EXIT_OK);
    cr_expect_eq(PARSE(&o, "-h"), CLI_EXIT_OK);
}

Test(args, every_bad_command_line_is_a_usage_error_naming_the_flag)
{
    char *bad[][3] = {{"--n", "0", NULL},      {"--n", "abc", NULL},  {"--n", "101", NULL},
                      {"--rate", "0", NULL},   {"--rate", "x", NULL}, {"--rate", "1001", NULL},
                      {"--args", "[1]", NULL}, {"--args", "{", NULL}, {"--bogus", NULL, NULL},
                      {"--n", NULL, NULL},     {"stray", NULL, NULL}, {"--on=1", NULL, NULL}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        opts o = {0};
        char *argv[4] = {"t", bad[i][0], bad[i][1], NULL};
        int argc = bad[i][1] ? 3 : 2;
        cr_expect_eq(parse(&o, argc, argv), CLI_EXIT_USAGE, "%s %s", bad[i][0],
                     bad[i][1] ? bad[i][1] : "");
        json_decref(o.args);
    }
    fflush(stderr);
    cr_expect_stderr_neq_str("", "each failure prints an error line");
}
