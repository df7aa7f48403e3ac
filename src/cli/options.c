/* options.c - common and per-command flags of the client commands. */
#include "cli/options.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

typedef struct flag {
    const char *name;
    unsigned bit; /* 0: common to every command */
    bool boolean; /* takes no value ("--flag", or "--flag=true|false") */
} flag_t;

static const flag_t flags[] = {
    {"server", 0, false},
    {"ws-server", 0, false},
    {"api-key", 0, false},
    {"token", 0, false},
    {"ca-file", 0, false},
    {"insecure", 0, true},
    {"author", HS_CLI_OPT_AUTHOR, false},
    {"since", HS_CLI_OPT_SINCE, false},
    {"limit", HS_CLI_OPT_LIMIT, false},
    {"before", HS_CLI_OPT_BEFORE, false},
    {"after", HS_CLI_OPT_AFTER, false},
    {"batch", HS_CLI_OPT_BATCH, false},
};

static const char *env_or_null(const char *name)
{
    const char *value = getenv(name);
    return value && value[0] ? value : NULL;
}

static bool credential_ok(const char *value)
{
    for (const char *p = value; p && *p; p++)
        if (!isgraph((unsigned char)*p))
            return false;
    return true;
}

static int set_limit(hs_cli_options_t *out, const char *value, char *err, size_t err_len)
{
    char *end;
    errno = 0;
    unsigned long n = strtoul(value, &end, 10);
    if (value[0] < '0' || value[0] > '9' || *end != '\0' || errno != 0 || n == 0 ||
        n > 100000000ul) {
        snprintf(err, err_len, "--limit: \"%s\" is not a whole number from 1", value);
        return HS_EINVAL;
    }
    out->limit = n;
    return 0;
}

/* Without --ws-server the WebSocket URL is, until GET /api/v1/info says
 * otherwise (discover.h), the API host on port 9001: both ports normally sit
 * on one host (houston serve), and 9001 is --ws-addr's default. */
static int resolve_urls(hs_cli_options_t *out, const char *server, const char *ws_server, char *err,
                        size_t err_len)
{
    if (hs_cli_url_parse(server, "http", "80", &out->api, err, err_len) != 0)
        return HS_EINVAL;
    out->ws_given = ws_server != NULL;
    if (ws_server) {
        if (hs_cli_url_parse(ws_server, "ws", "80", &out->ws, err, err_len) != 0)
            return HS_EINVAL;
    } else {
        char text[400];
        snprintf(text, sizeof(text), "%s://%s%s%s:%s", out->api.tls ? "wss" : "ws",
                 strchr(out->api.host, ':') ? "[" : "", out->api.host,
                 strchr(out->api.host, ':') ? "]" : "", HS_CLI_DEFAULT_WS_PORT);
        if (hs_cli_url_parse(text, "ws", HS_CLI_DEFAULT_WS_PORT, &out->ws, err, err_len) != 0)
            return HS_EINVAL;
    }
    if (out->ws.path[0] == '\0')
        snprintf(out->ws.path, sizeof(out->ws.path), "%s", HS_CLI_WS_PATH);
    return 0;
}

int hs_cli_options_parse(int argc, char **argv, unsigned allowed, hs_cli_options_t *out, char *err,
                         size_t err_len)
{
    memset(out, 0, sizeof(*out));
    const char *server = env_or_null("HOUSTON_URL");
    const char *ws_server = env_or_null("HOUSTON_WS_URL");
    out->api_key = env_or_null("HOUSTON_API_KEY");
    out->token = env_or_null("HOUSTON_TOKEN");
    out->tls.ca_file = env_or_null("HOUSTON_CA_FILE");
    bool flags_done = false;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (flags_done || arg[0] != '-' || arg[1] == '\0') {
            if (out->arg_count == HS_CLI_MAX_ARGS) {
                snprintf(err, err_len, "more than %d arguments", HS_CLI_MAX_ARGS);
                return HS_EINVAL;
            }
            out->args[out->arg_count++] = arg;
            continue;
        }
        if (strcmp(arg, "--") == 0) {
            flags_done = true;
            continue;
        }
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            out->help = true;
            continue;
        }
        const char *name = arg[1] == '-' ? arg + 2 : arg + 1;
        const char *eq = strchr(name, '=');
        size_t name_len = eq ? (size_t)(eq - name) : strlen(name);
        const flag_t *flag = NULL;
        for (size_t f = 0; f < sizeof(flags) / sizeof(flags[0]); f++)
            if (strlen(flags[f].name) == name_len && strncmp(flags[f].name, name, name_len) == 0)
                flag = &flags[f];
        if (flag == NULL || (flag->bit != 0 && (allowed & flag->bit) == 0)) {
            snprintf(err, err_len, "unknown flag %.*s", (int)(name_len + (size_t)(name - arg)),
                     arg);
            return HS_EINVAL;
        }
        const char *value;
        if (flag->boolean) {
            if (eq && strcmp(eq + 1, "true") != 0 && strcmp(eq + 1, "false") != 0) {
                snprintf(err, err_len, "--%s takes no value (or =true, =false)", flag->name);
                return HS_EINVAL;
            }
            out->tls.insecure = !eq || strcmp(eq + 1, "true") == 0;
            continue;
        }
        if (eq) {
            value = eq + 1;
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            snprintf(err, err_len, "--%s needs a value", flag->name);
            return HS_EINVAL;
        }
        if (strcmp(flag->name, "server") == 0)
            server = value;
        else if (strcmp(flag->name, "ws-server") == 0)
            ws_server = value;
        else if (strcmp(flag->name, "api-key") == 0)
            out->api_key = value[0] ? value : NULL;
        else if (strcmp(flag->name, "token") == 0)
            out->token = value[0] ? value : NULL;
        else if (strcmp(flag->name, "ca-file") == 0)
            out->tls.ca_file = value[0] ? value : NULL;
        else if (flag->bit == HS_CLI_OPT_AUTHOR)
            out->author = value;
        else if (flag->bit == HS_CLI_OPT_SINCE)
            out->since = value;
        else if (flag->bit == HS_CLI_OPT_BEFORE)
            out->before = value;
        else if (flag->bit == HS_CLI_OPT_AFTER)
            out->after = value;
        else if (flag->bit == HS_CLI_OPT_BATCH)
            out->batch = value;
        else if (set_limit(out, value, err, err_len) != 0)
            return HS_EINVAL;
    }
    /* Sent in a header line: a CR or LF would start another one. Not shown
     * in the message, which may end up in a log. */
    if (!credential_ok(out->api_key) || !credential_ok(out->token)) {
        snprintf(err, err_len, "%s must be printable characters without spaces",
                 credential_ok(out->token) ? "--api-key (HOUSTON_API_KEY)"
                                           : "--token (HOUSTON_TOKEN)");
        return HS_EINVAL;
    }
    if (out->before && out->after) {
        snprintf(err, err_len, "--before and --after cannot be used together");
        return HS_EINVAL;
    }
    return resolve_urls(out, server ? server : HS_CLI_DEFAULT_SERVER, ws_server, err, err_len);
}
