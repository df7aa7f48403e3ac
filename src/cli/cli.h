/* cli.h - houston's command table and the client commands' entry point.
 *
 * One table names every command (server and client), with its synopsis and
 * summary: `houston --help` and the man page are both printed from it. The
 * client commands (pub, sub, history, status) and the hidden `manpage`
 * command run through hs_cli_main; the server commands stay in main.c.
 */
#ifndef HS_CLI_CLI_H
#define HS_CLI_CLI_H

#include <stdbool.h>
#include <stdio.h>

typedef struct hs_cli_command {
    const char *name;
    const char *synopsis; /* arguments after the name */
    const char *summary;  /* one or two sentences */
    unsigned flags;       /* HS_CLI_OPT_* accepted; client commands only */
    int min_args, max_args;
    int (*run)(const void *options); /* NULL: a server command (main.c) */
} hs_cli_command_t;

/* Whether argv[1] names a command hs_cli_main runs. */
bool hs_cli_handles(const char *name);
/* Runs the client command argv[0] with its arguments argv[1..argc); returns
 * the exit status. */
int hs_cli_main(int argc, char **argv);
/* The "Commands:" part of --help. */
void hs_cli_print_commands(FILE *out);
/* The common client flags part of --help. */
void hs_cli_print_client_flags(FILE *out);
/* Calls cb for each visible command, in table order. */
void hs_cli_each_command(void (*cb)(const hs_cli_command_t *command, void *ctx), void *ctx);

#endif
