/* origin.h - the Host and Origin headers of browser requests: which names a
 * keyless server answers to (DNS rebinding), and which pages may open a
 * WebSocket or an event stream (cross-site WebSocket hijacking).
 *
 * A page on another site that a browser loads can aim requests at
 * 127.0.0.1 (no Host check there), or at its own name re-pointed at
 * 127.0.0.1 (DNS rebinding: the Host is then its name). The Host check
 * answers only to loopback names and the listed ones; the Origin check lets
 * a browser connect only from the server's own origin or a listed one.
 *
 * Lists are immutable once built and may be read from any thread.
 */
#ifndef HS_HTTP_ORIGIN_H
#define HS_HTTP_ORIGIN_H

#include <stdbool.h>
#include <stddef.h>

/* Room for a host name (253) or an address, and its NUL. */
#define HS_HOST_MAX 256

typedef struct hs_host_list hs_host_list_t;

/* --allowed-hosts: a comma-separated list of host names or addresses,
 * compared case-insensitively, without port (a port given is ignored);
 * "*" allows every name. An empty list allows only the loopback names. */
hs_host_list_t *hs_host_list_new(const char *list);
void hs_host_list_free(hs_host_list_t *list);
/* Whether host (as hs_http_split_host writes it) is listed. */
bool hs_host_list_allows(const hs_host_list_t *list, const char *host);

/* Splits a Host header value ("name", "name:port", "1.2.3.4:80",
 * "[::1]:80") into the host, lower-cased, without brackets or a trailing
 * dot, and the port (0 when none). False when it is not of that form. */
bool hs_http_split_host(const char *value, size_t len, char *host, size_t host_len, unsigned *port);
/* Whether host is "localhost" or a loopback address (127.0.0.0/8, ::1). */
bool hs_http_host_is_loopback(const char *host);
/* Whether a Host header value names a loopback host or one in list. */
bool hs_http_host_allowed(const hs_host_list_t *list, const char *value, size_t len);

/* Splits an Origin header value ("https://app.example[:port]") into the
 * scheme ("http", "https", lower-case), the host (as above) and the port,
 * the scheme's default (80, 443) when none is written. False for "null"
 * and anything that is not a serialised origin. */
bool hs_http_split_origin(const char *value, size_t len, char *scheme, size_t scheme_len,
                          char *host, size_t host_len, unsigned *port);
/* Whether the Origin value names the same host and port as the Host value
 * of the request (the listener the browser reached; a Host without port
 * stands for the origin scheme's default port). */
bool hs_http_same_origin(const char *origin, size_t origin_len, const char *host, size_t host_len);

#endif
