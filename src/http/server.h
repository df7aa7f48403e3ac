/* server.h - HTTP/1.1 server on hs_net connections and http-parser.
 *
 * Requests on one connection are handled one at a time, in order: while a
 * request waits for its response, the bytes of the next pipelined requests
 * are kept (up to the header/body limits) and parsed after the response is
 * queued, so answers always go out in request order.
 *
 * A route handler receives a complete request (headers and body). It must
 * answer exactly once, now or later (for example from a store callback), with
 * one of the hs_http_respond* functions, which also release the request. If
 * the client goes away first, the request stays valid and the answer is
 * simply discarded.
 *
 * Limits (hs_http_limits_t) produce the right status with a JSON error body:
 * request line / URL too long 414, too many or too large headers 431, body
 * too large 413, malformed request 400; an unknown path 404; a known path with
 * another method 405 with an Allow header. HEAD is answered like GET without
 * the body. Chunked request bodies and "Expect: 100-continue" are handled.
 * Keep-alive follows HTTP/1.1 rules (Connection: close, HTTP/1.0).
 *
 * Thread affinity: the loop thread only.
 */
#ifndef HS_HTTP_SERVER_H
#define HS_HTTP_SERVER_H

#include <http_parser.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "net/net.h"

typedef struct hs_http_server hs_http_server_t;
typedef struct hs_http_request hs_http_request_t;
typedef struct hs_router hs_router_t;
typedef struct hs_cors hs_cors_t;
typedef struct hs_host_list hs_host_list_t;
typedef struct hs_addr_list hs_addr_list_t;

typedef struct hs_http_limits {
    size_t max_url;                 /* request target bytes (414) */
    size_t max_header_bytes;        /* all header names and values together (431) */
    unsigned max_headers;           /* header count (431) */
    size_t max_body;                /* body bytes after de-chunking (413) */
    uint64_t header_timeout_ms;     /* whole head must arrive within this (then 408 / drop) */
    uint64_t body_timeout_ms;       /* whole body must arrive within this */
    uint64_t idle_timeout_ms;       /* keep-alive connection with no request */
    unsigned max_requests_per_conn; /* 0 = unlimited; then Connection: close */
} hs_http_limits_t;

/* Reasonable production defaults (tests, tools). */
void hs_http_limits_default(hs_http_limits_t *limits);

/* The limits of a houston listener, filled from the settings: --max-body,
 * --header-timeout, --body-timeout, --idle-timeout and --keepalive-requests
 * over the defaults. The one place every listener's limits come from (API,
 * WebSocket and --metrics-addr); a listener that needs less (the WebSocket
 * port takes no bodies) lowers a field afterwards, never raises one. */
void hs_http_limits_from_config(hs_http_limits_t *limits, const hs_config_t *cfg);

/* A request handler. ctx is the pointer given to hs_router_add. */
typedef void (*hs_http_handler_fn)(hs_http_request_t *req, void *ctx);

/* ---- router ---------------------------------------------------------- */

/* Patterns are literal paths with "{name}" segments that match one
 * non-empty path segment: "/api/v1/messages/{id}". A trailing slash in the
 * request path is accepted for any route ("/api/v1/ws/" matches
 * "/api/v1/ws"). Method is an http_parser method (HTTP_GET, ...). */
hs_router_t *hs_router_new(void);
void hs_router_free(hs_router_t *router);
void hs_router_add(hs_router_t *router, enum http_method method, const char *pattern,
                   hs_http_handler_fn fn, void *ctx);
/* hs_router_add for a route that takes the connection over from a plain
 * request, without an Upgrade header (an event stream, http/sse.h): the
 * server dispatches a request to it only once every request before it on
 * its connection is answered, as it holds an upgrade, so that its handler
 * can always take the connection (hs_http_can_take_over). */
void hs_router_add_takeover(hs_router_t *router, enum http_method method, const char *pattern,
                            hs_http_handler_fn fn, void *ctx);
/* Whether method and path (without the query) name a route added with
 * hs_router_add_takeover (HEAD as GET). */
bool hs_router_takes_over(const hs_router_t *router, enum http_method method, const char *path,
                          size_t len);
/* Calls cb for every route, in registration order (for `houston routes`). */
void hs_router_each(const hs_router_t *router,
                    void (*cb)(enum http_method method, const char *pattern, void *data),
                    void *data);
/* The server's route lookup, exposed for tests. Returns 0 and sets fn and
 * ctx on a match (HEAD matches GET routes); HS_ENOTFOUND; or HS_EMETHOD
 * and writes the allowed methods ("GET, HEAD, POST") into allow. Path
 * parameters are stored in req when req is not NULL. */
int hs_router_match(hs_router_t *router, enum http_method method, const char *path, size_t len,
                    hs_http_request_t *req, hs_http_handler_fn *fn, void **ctx, char *allow,
                    size_t allow_len);

/* ---- server ---------------------------------------------------------- */

hs_http_server_t *hs_http_server_new(hs_net_t *net, hs_router_t *router,
                                     const hs_http_limits_t *limits, const char *name);
/* Attaches a CORS policy (cors.h), which the server owns from now on and
 * frees with itself: CORS headers on every answer to an allowed Origin, and
 * OPTIONS answered on every path. Call before listening. */
void hs_http_server_set_cors(hs_http_server_t *server, hs_cors_t *cors);
/* A guard runs before routing for every request but OPTIONS: it returns
 * true to let the request through, or answers it itself (e.g. 401) and
 * returns false. Used for API keys. Call before listening. */
void hs_http_server_set_guard(hs_http_server_t *server,
                              bool (*guard)(hs_http_request_t *req, void *ctx), void *ctx);
/* Who may reach a server and how its clients are told apart
 * (docs/security.md). Everything is borrowed: it must outlive the server. */
typedef struct hs_http_policy {
    /* Non-NULL: the Host check is on. A request whose Host names neither a
     * loopback host nor one in this list gets 421 misdirected_request
     * before anything else (DNS rebinding); one without Host (not a
     * browser) passes. */
    const hs_host_list_t *allowed_hosts;
    /* Peers whose X-Forwarded-For / Forwarded are believed (client_addr.h). */
    const hs_addr_list_t *trusted_proxies;
    /* Origins besides the server's own that hs_http_origin_allowed admits. */
    const hs_cors_t *allowed_origins;
} hs_http_policy_t;

/* Applies policy to every request from now on (NULL: none). Call before
 * listening. */
void hs_http_server_set_policy(hs_http_server_t *server, const hs_http_policy_t *policy);
/* Starts listening (see hs_listener_start for addr). */
int hs_http_server_listen(hs_http_server_t *server, const char *addr);
/* Listens on a second address too (e.g. [::1]:P next to 127.0.0.1:P);
 * after hs_http_server_listen. */
int hs_http_server_listen_also(hs_http_server_t *server, const char *addr);
int hs_http_server_port(hs_http_server_t *server);
/* Graceful stop: stop accepting, close idle keep-alive connections, let
 * in-flight requests be answered (then close those connections). cb runs
 * once no HTTP connection of this server remains (WebSocket connections
 * that were upgraded away are not counted). */
void hs_http_server_shutdown(hs_http_server_t *server, void (*cb)(hs_http_server_t *, void *),
                             void *data);
/* Frees the server; after the shutdown callback (connections refer to it).
 * The router is the caller's. */
void hs_http_server_free(hs_http_server_t *server);

/* ---- requests ---------------------------------------------------------- */

enum http_method hs_http_method(const hs_http_request_t *req);
/* Path without the query string, NUL-terminated, percent-decoding not
 * applied. */
const char *hs_http_path(const hs_http_request_t *req, size_t *len);
/* Header value by case-insensitive name, NULL if absent (first occurrence). */
const char *hs_http_header(const hs_http_request_t *req, const char *name, size_t *len);
/* Query parameter, percent-decoded ('+' is a space), NUL-terminated, NULL if
 * absent. Valid until the request is answered. */
const char *hs_http_query(hs_http_request_t *req, const char *name);
/* Path parameter captured by a "{name}" segment, NUL-terminated, or NULL. */
const char *hs_http_param(const hs_http_request_t *req, const char *name);
/* Body bytes (may be empty, never NULL). */
const char *hs_http_body(const hs_http_request_t *req, size_t *len);
/* The client's address, without port: the peer's, or behind a trusted
 * proxy the first hop it did not add (client_addr.h). "" when unknown. */
const char *hs_http_client_addr(const hs_http_request_t *req);
/* Whether the request came through a trusted proxy: then it is never taken
 * as coming from this machine, whatever its client address. */
bool hs_http_request_proxied(const hs_http_request_t *req);
/* Whether a browser may open a WebSocket or event stream with this
 * request: no Origin (not a browser), an Origin with the host and port of
 * the request's Host (the page the server itself served), or one listed in
 * the policy's allowed_origins. */
bool hs_http_origin_allowed(const hs_http_request_t *req);
/* The request target (path and query) for a log line, with the values of
 * secret-bearing query parameters (token, resume, key, ...) replaced by
 * "***", cut to out_len. */
void hs_http_loggable_target(const hs_http_request_t *req, char *out, size_t out_len);
/* A short id for log lines ("r12345"). */
const char *hs_http_request_id(const hs_http_request_t *req);
/* The connection, or NULL when the client already went away. */
hs_conn_t *hs_http_request_conn(const hs_http_request_t *req);

/* Answers with a body. content_type may be NULL for no body. Extra headers,
 * if any, are complete lines each ending in "\r\n". Releases req. */
void hs_http_respond(hs_http_request_t *req, int status, const char *content_type,
                     const char *extra_headers, const void *body, size_t body_len);
/* Answers with json (the reference is stolen), "application/json". */
void hs_http_respond_json(hs_http_request_t *req, int status, json_t *json);
/* Answers {"error":{"code":code,"message":message}}; the one place error
 * bodies are built. */
void hs_http_respond_error(hs_http_request_t *req, int status, const char *code, const char *fmt,
                           ...) __attribute__((format(printf, 4, 5)));
/* The same with extra header lines (each ending in "\r\n"), e.g. Allow. */
void hs_http_respond_error_with(hs_http_request_t *req, int status, const char *code,
                                const char *extra_headers, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* The same with more members in the error object (members: a JSON object,
 * its reference stolen; e.g. {"index":17}, the bad element of a batch). */
void hs_http_respond_error_members(hs_http_request_t *req, int status, const char *code,
                                   json_t *members, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Status-only answer (e.g. 204), no body. */
void hs_http_respond_empty(hs_http_request_t *req, int status);

/* Takes the connection away from HTTP (for a WebSocket upgrade), after the
 * handler queued its own "101 Switching Protocols" with hs_conn_send. The
 * caller must hs_conn_set_handler() before its route handler returns; bytes
 * the client sent after the request are then passed to the new handler's
 * on_read. Call it from the route handler itself: after the handler
 * returned, such bytes are dropped. Releases req. Returns NULL if the client
 * already went away. */
hs_conn_t *hs_http_upgrade(hs_http_request_t *req);
/* Whether req may take the connection over now: no pipelined request before
 * it still waits for its answer. A request with an Upgrade header, or to a
 * route added with hs_router_add_takeover, always may (the server holds it
 * until then); any other route that takes over a plain request must check,
 * and answer normally when it may not. */
bool hs_http_can_take_over(const hs_http_request_t *req);

#endif
