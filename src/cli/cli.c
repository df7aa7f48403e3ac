/* cli.c - the command table, usage texts and the client dispatch. */
#include "cli/cli.h"

#include <string.h>

#include "cli/commands.h"
#include "cli/manpage.h"
#include "cli/options.h"
#include "cli/output.h"

static int run_pub(const void *opt)
{
    return hs_cli_cmd_pub(opt);
}
static int run_sub(const void *opt)
{
    return hs_cli_cmd_sub(opt);
}
static int run_history(const void *opt)
{
    return hs_cli_cmd_history(opt);
}
static int run_topics(const void *opt)
{
    return hs_cli_cmd_topics(opt);
}
static int run_status(const void *opt)
{
    return hs_cli_cmd_status(opt);
}

static const hs_cli_command_t commands[] = {
    {"serve", "[FLAGS]",
     "all roles in one process: WebSocket notifier, HTTP API and consumer, on SQLite and an "
     "in-process bus (the default command)",
     0, 0, 0, NULL},
    {"publisher", "--db mysql://... --redis redis://... [FLAGS]",
     "scale-out: the HTTP API only (any number of them, on MariaDB and Redis)", 0, 0, 0, NULL},
    {"notifier", "--db mysql://... --redis redis://... [FLAGS]",
     "scale-out: WebSocket clients only", 0, 0, 0, NULL},
    {"consumer", "--redis redis://... [FLAGS]", "scale-out: turns events into deliveries", 0, 0, 0,
     NULL},
    {"config", "[FLAGS]", "print the effective settings and where each came from, secrets masked",
     0, 0, 0, NULL},
    {"routes", "", "list the HTTP routes of both ports", 0, 0, 0, NULL},
    {"migrate", "[--db URL]",
     "bring the database's schema up to this version and exit (what every server does at "
     "start-up; refuses a database of a newer houston)",
     0, 0, 0, NULL},
    {"pub", "TOPIC TEXT [--author A] | --batch FILE",
     "publish TEXT to TOPIC (POST /api/v1/messages); prints the stored message as one JSON line. "
     "--batch: publish every line of FILE (- for stdin), each {\"topic\",\"content\",\"author\"}, "
     "with POST /api/v1/messages/batch in requests of at most the server's maxBatch messages; "
     "each request is all or nothing, a longer file is several requests and stops at the first "
     "that fails (those before it stay stored); prints each stored message as one JSON line",
     HS_CLI_OPT_AUTHOR | HS_CLI_OPT_BATCH, 0, 2, run_pub},
    {"sub", "TOPIC... [--since ID]",
     "subscribe to the topics and print each message as one JSON line until interrupted; with "
     "--since, first the history after message ID, then live, without gap or duplicate",
     HS_CLI_OPT_SINCE, 1, HS_CLI_MAX_ARGS, run_sub},
    {"history", "TOPIC [--limit N] [--before ID | --after ID]",
     "print a topic's stored messages, oldest first, one JSON line each: all of them, those "
     "after or before ID, or (--limit N) the first N after ID or the last N before ID or the end",
     HS_CLI_OPT_LIMIT | HS_CLI_OPT_BEFORE | HS_CLI_OPT_AFTER, 1, 1, run_history},
    {"topics", "[PREFIX]",
     "print every topic (named PREFIX*, when given) in name order, one JSON line each: its "
     "message count, first and last id, subscribers and retention (GET /api/v1/topics)",
     0, 0, 1, run_topics},
    {"status", "", "readiness and key metrics of a running server; exit status 1 when not ready", 0,
     0, 0, run_status},
    {"help", "", "this text", 0, 0, 0, NULL},
    {"version", "", "the version", 0, 0, 0, NULL},
};

#define COMMAND_COUNT (sizeof(commands) / sizeof(commands[0]))

static const hs_cli_command_t *find(const char *name)
{
    for (size_t i = 0; i < COMMAND_COUNT; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

bool hs_cli_handles(const char *name)
{
    const hs_cli_command_t *c = find(name);
    return (c && c->run) || strcmp(name, "manpage") == 0;
}

void hs_cli_each_command(void (*cb)(const hs_cli_command_t *command, void *ctx), void *ctx)
{
    for (size_t i = 0; i < COMMAND_COUNT; i++)
        cb(&commands[i], ctx);
}

/* Wraps text at width columns, each line indented by indent spaces. */
static void print_wrapped(FILE *out, const char *text, int indent, int first_col, int width)
{
    int col = first_col;
    while (*text) {
        size_t word = strcspn(text, " ");
        if (col > indent && col + 1 + (int)word > width) {
            fprintf(out, "\n%*s", indent, "");
            col = indent;
        } else if (col > indent) {
            fputc(' ', out);
            col++;
        }
        fprintf(out, "%.*s", (int)word, text);
        col += (int)word;
        text += word;
        while (*text == ' ')
            text++;
    }
    fputc('\n', out);
}

void hs_cli_print_commands(FILE *out)
{
    for (size_t i = 0; i < COMMAND_COUNT; i++) {
        fprintf(out, "  %-10s", commands[i].name);
        print_wrapped(out, commands[i].summary, 12, 12, 79);
    }
}

void hs_cli_print_client_flags(FILE *out)
{
    fprintf(out,
            "  --server URL                 the API, http:// or https:// (env HOUSTON_URL,\n"
            "                               default %s)\n"
            "  --ws-server URL              the WebSocket endpoint, ws:// or wss:// (env\n"
            "                               HOUSTON_WS_URL; default: what the API's\n"
            "                               GET /api/v1/info says, else\n"
            "                               ws://<--server host>:%s%s)\n"
            "  --api-key KEY                sent to the API as \"Authorization: Bearer KEY\"\n"
            "                               (env HOUSTON_API_KEY)\n"
            "  --token JWT                  client token sent with the WebSocket handshake\n"
            "                               (env HOUSTON_TOKEN)\n"
            "  --ca-file FILE               PEM CA certificates to verify https:// and wss://\n"
            "                               servers with, instead of the system's (env\n"
            "                               HOUSTON_CA_FILE)\n"
            "  --insecure                   do not verify the server's certificate (a\n"
            "                               warning says so)\n",
            HS_CLI_DEFAULT_SERVER, HS_CLI_DEFAULT_WS_PORT, HS_CLI_WS_PATH);
}

static void print_command_usage(FILE *out, const hs_cli_command_t *c)
{
    fprintf(out, "Usage: houston %s %s\n\n", c->name, c->synopsis);
    print_wrapped(out, c->summary, 0, 0, 79);
    fprintf(out, "\nFlags:\n");
    hs_cli_print_client_flags(out);
}

int hs_cli_main(int argc, char **argv)
{
    if (strcmp(argv[0], "manpage") == 0) {
        hs_cli_print_manpage(stdout);
        return fflush(stdout) == 0 ? HS_CLI_EXIT_OK : HS_CLI_EXIT_FAIL;
    }
    const hs_cli_command_t *c = find(argv[0]);
    hs_cli_options_t opt;
    char err[512];
    if (hs_cli_options_parse(argc - 1, argv + 1, c->flags, &opt, err, sizeof(err)) != 0) {
        hs_cli_error("%s (try 'houston %s --help')", err, c->name);
        return HS_CLI_EXIT_USAGE;
    }
    if (opt.help) {
        print_command_usage(stdout, c);
        return HS_CLI_EXIT_OK;
    }
    if (opt.arg_count < c->min_args || opt.arg_count > c->max_args) {
        print_command_usage(stderr, c);
        return HS_CLI_EXIT_USAGE;
    }
    return c->run(&opt);
}
