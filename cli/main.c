/*
 * main.c — `snakefleet`, the client command: dispatches to a subcommand.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

extern char **environ;

static const char USAGE[] =
    "usage: snakefleet COMMAND [options]\n"
    "\n"
    "commands:\n"
    "  submit      send one request over Kafka and print its reply\n"
    "  batch       send requests from a JSONL file, write their replies as JSONL\n"
    "  loadtest    sessions x ops against the fleet: throughput, latency, order\n"
    "  status      the fleet as its telemetry topic shows it\n"
    "  dev-broker  a librdkafka mock Kafka cluster for local work\n"
    "  pool-run    run calls through a local worker pool (no Kafka): --jsonl FILE or --noop N\n"
    "\n"
    "Every command takes -c FILE and --section.key=value options (e.g.\n"
    "--kafka.bootstrap.servers=127.0.0.1:9092, --topics.replies=NAME); see\n"
    "`snakefleet-supervisor --help` for the option list, and `snakefleet COMMAND -h`.\n";

int cli_load_config(sf_config *cfg, int *argc, char **argv)
{
    char err[512];
    if (sf_config_load(cfg, argc, argv, environ, err, sizeof(err)) < 0) {
        fprintf(stderr, "snakefleet: configuration error: %s\n", err);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        fputs(USAGE, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    static const struct {
        const char *name;
        int (*run)(int argc, char **argv);
    } commands[] = {{"pool-run", cmd_pool_run}, {"dev-broker", cmd_dev_broker},
                    {"submit", cmd_submit},     {"batch", cmd_batch},
                    {"loadtest", cmd_loadtest}, {"status", cmd_status}};
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(cmd, commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    }
    fprintf(stderr, "snakefleet: unknown command '%s'\n\n%s", cmd, USAGE);
    return 2;
}
