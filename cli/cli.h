/*
 * cli.h — the `snakefleet` command: one file per subcommand, each an
 * int cmd_NAME(int argc, char **argv) returning the process exit code.
 */
#ifndef SF_CLI_H
#define SF_CLI_H

#include <stdbool.h>

#include "config.h"

int cmd_pool_run(int argc, char **argv);
int cmd_dev_broker(int argc, char **argv);
int cmd_submit(int argc, char **argv);
int cmd_batch(int argc, char **argv);
int cmd_loadtest(int argc, char **argv);
int cmd_status(int argc, char **argv);

/*
 * Loads configuration for a subcommand through sf_config_load (defaults,
 * -c FILE, environment, every --section.key=value flag); other arguments are
 * left in place (argv is compacted, argc updated). Prints the error and
 * returns -1 on a bad option.
 */
int cli_load_config(sf_config *cfg, int *argc, char **argv);

#endif
