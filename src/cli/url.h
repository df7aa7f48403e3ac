/* url.h - the server addresses the command line client talks to.
 *
 * http:// and https:// for the API, ws:// and wss:// for the WebSocket; a
 * secure scheme without a port means 443. The TLS itself is stream.h's.
 */
#ifndef HS_CLI_URL_H
#define HS_CLI_URL_H

#include <stdbool.h>
#include <stddef.h>

typedef struct hs_cli_url {
    char scheme[8];      /* "http", "https", "ws" or "wss" */
    bool tls;            /* https or wss */
    char host[256];      /* without IPv6 brackets */
    char port[8];        /* decimal */
    char path[1024];     /* "" or a prefix like "/houston" (no trailing '/') */
    char authority[300]; /* the Host header value, host[:port] as given */
} hs_cli_url_t;

/* Parses "[scheme://]host[:port][/path]" into out. The scheme, when given,
 * must be want_scheme ("http" or "ws") or its secure form ("https",
 * "wss"); without one, want_scheme is used. An empty host is "localhost"; a
 * missing port is default_port (443 with a secure scheme). Returns 0, or
 * HS_EINVAL with a one-line reason in err. */
int hs_cli_url_parse(const char *text, const char *want_scheme, const char *default_port,
                     hs_cli_url_t *out, char *err, size_t err_len);

/* The URL for a message: scheme://authority/path, a query cut to "?***"
 * (it may hold a token). */
void hs_cli_url_show(const hs_cli_url_t *url, char *out, size_t cap);

#endif
