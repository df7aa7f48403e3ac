/* options.h - the client commands' command line.
 *
 * Common flags: --server URL (HOUSTON_URL, default http://localhost:9002),
 * --ws-server URL (HOUSTON_WS_URL; without it `sub` asks GET /api/v1/info,
 * and falls back to the --server host on port 9001, path /api/v1/ws),
 * --api-key KEY (HOUSTON_API_KEY), --token JWT (HOUSTON_TOKEN), --ca-file
 * FILE (HOUSTON_CA_FILE) and --insecure (no value). Flags beat the
 * environment. "--flag VALUE" and "--flag=VALUE" both work; "--" ends the
 * flags, so a TEXT may start with a dash.
 */
#ifndef HS_CLI_OPTIONS_H
#define HS_CLI_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>

#include "cli/stream.h"
#include "cli/url.h"

#define HS_CLI_DEFAULT_SERVER  "http://localhost:9002"
#define HS_CLI_DEFAULT_WS_PORT "9001"
#define HS_CLI_WS_PATH         "/api/v1/ws"
#define HS_CLI_MAX_ARGS        64

/* Command-specific flags a command accepts (a bit set). */
enum {
    HS_CLI_OPT_AUTHOR = 1 << 0, /* --author A */
    HS_CLI_OPT_SINCE = 1 << 1,  /* --since ID */
    HS_CLI_OPT_LIMIT = 1 << 2,  /* --limit N */
    HS_CLI_OPT_BEFORE = 1 << 3, /* --before ID */
    HS_CLI_OPT_AFTER = 1 << 4,  /* --after ID */
    HS_CLI_OPT_BATCH = 1 << 5,  /* --batch FILE */
};

typedef struct hs_cli_options {
    hs_cli_url_t api;         /* --server */
    hs_cli_url_t ws;          /* --ws-server, path defaulted to /api/v1/ws; without
                                 it the fallback (the API host, port 9001) */
    bool ws_given;            /* --ws-server or HOUSTON_WS_URL was given */
    const char *api_key;      /* NULL when none was given */
    const char *token;        /* client token for the WebSocket; NULL: none */
    hs_cli_tls_options_t tls; /* --ca-file, --insecure */
    const char *author;
    const char *since;
    const char *before;
    const char *after;
    const char *batch;   /* --batch FILE ("-": stdin), or NULL */
    unsigned long limit; /* 0: not given */
    bool help;
    const char *args[HS_CLI_MAX_ARGS]; /* positional arguments, in order */
    int arg_count;
} hs_cli_options_t;

/* Parses argv[0..argc) (the words after the command name) accepting the
 * common flags and those in allowed. Strings point into argv or the
 * environment. Returns 0, or HS_EINVAL with a one-line reason in err. */
int hs_cli_options_parse(int argc, char **argv, unsigned allowed, hs_cli_options_t *out, char *err,
                         size_t err_len);

#endif
