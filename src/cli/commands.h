/* commands.h - the client commands. Each takes parsed options (positional
 * arguments already counted by cli.c) and returns the process exit status:
 * 0 success, 1 failure (printed on stderr), 2 a usage error. */
#ifndef HS_CLI_COMMANDS_H
#define HS_CLI_COMMANDS_H

#include "cli/options.h"

enum { HS_CLI_EXIT_OK = 0, HS_CLI_EXIT_FAIL = 1, HS_CLI_EXIT_USAGE = 2 };

/* houston pub TOPIC TEXT [--author A] | --batch FILE (cmd_pub_batch.c) */
int hs_cli_cmd_pub(const hs_cli_options_t *opt);
int hs_cli_cmd_pub_batch(const hs_cli_options_t *opt);
/* houston sub TOPIC... [--since ID] */
int hs_cli_cmd_sub(const hs_cli_options_t *opt);
/* houston history TOPIC [--limit N] [--before ID | --after ID] */
int hs_cli_cmd_history(const hs_cli_options_t *opt);
/* houston topics [PREFIX] */
int hs_cli_cmd_topics(const hs_cli_options_t *opt);
/* houston status */
int hs_cli_cmd_status(const hs_cli_options_t *opt);

#endif
