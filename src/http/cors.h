/* cors.h - Cross-Origin Resource Sharing: which browser origins may call a
 * server, and the response headers that tell the browser so.
 *
 * A policy is attached to an HTTP server (hs_http_server_set_cors). The
 * server then
 *   - adds "Access-Control-Allow-Origin" (and "Vary: Origin") to every
 *     answer, errors included, to a request whose Origin the policy allows;
 *   - answers OPTIONS on any path it serves with 204, an Allow header and,
 *     for a preflight (Origin allowed, Access-Control-Request-Method present),
 *     Access-Control-Allow-Methods/-Headers/-Max-Age. A route registered for
 *     OPTIONS itself still wins.
 * Nothing is added for a request without Origin or with an origin that is
 * not allowed: the browser then refuses the answer to the page.
 *
 * Origins are compared as the browser serialises them ("scheme://host[:port]",
 * case-insensitive, no trailing slash). A policy is immutable once built and
 * may be read from any thread.
 */
#ifndef HS_HTTP_CORS_H
#define HS_HTTP_CORS_H

#include <stdbool.h>
#include <stddef.h>

typedef struct hs_cors hs_cors_t;

/* Request headers a preflight may ask for. */
#define HS_CORS_ALLOW_HEADERS "Authorization, Content-Type, Idempotency-Key"
/* Seconds a browser may cache a preflight answer. */
#define HS_CORS_MAX_AGE 600

/* Builds a policy from list, a comma-separated list of origins
 * ("http://a.example:8080, https://b.example"); "*" in it allows every
 * origin; "none" allows none. An empty list means the loopback origins of
 * console_addr's port (http://localhost:P, http://127.0.0.1:P and
 * http://[::1]:P), plus http://HOST:P when console_addr names a host, so the
 * console served on that address can call this server. console_addr is a
 * listen address ("host:port", ":port", "[v6]:port"); without a port there
 * are no default origins. */
hs_cors_t *hs_cors_new(const char *list, const char *console_addr);
void hs_cors_free(hs_cors_t *cors);

/* Whether a request with this Origin header value (len bytes, not
 * NUL-terminated) may read the answers. */
bool hs_cors_allows(const hs_cors_t *cors, const char *origin, size_t len);
/* Whether every origin is allowed ("*" in the list). */
bool hs_cors_allows_any(const hs_cors_t *cors);
/* The allowed origins, comma-separated, for logs ("*" or "none" too). */
const char *hs_cors_describe(const hs_cors_t *cors);

#endif
