/* url.h - the server addresses the command line client talks to.
 *
 * Only plain http:// (API) and ws:// (WebSocket) are supported for now: the
 * client is meant for a server on the same host or network, and TLS would
 * sit in front of houston (a reverse proxy) anyway. https:// and wss:// are
 * refused with a message saying so.
 */
#ifndef HS_CLI_URL_H
#define HS_CLI_URL_H

#include <stddef.h>

typedef struct hs_cli_url {
    char scheme[8];      /* "http" or "ws" */
    char host[256];      /* without IPv6 brackets */
    char port[8];        /* decimal */
    char path[1024];     /* "" or a prefix like "/houston" (no trailing '/') */
    char authority[300]; /* the Host header value, host[:port] as given */
} hs_cli_url_t;

/* Parses "[scheme://]host[:port][/path]" into out. The scheme, when given,
 * must be want_scheme ("http" or "ws"); without one, want_scheme is used.
 * An empty host is "localhost"; a missing port is default_port. Returns 0, or
 * HS_EINVAL with a one-line reason in err. */
int hs_cli_url_parse(const char *text, const char *want_scheme, const char *default_port,
                     hs_cli_url_t *out, char *err, size_t err_len);

#endif
