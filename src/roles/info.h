/* info.h - GET /api/v1/info: what a client needs to know before it
 * connects (version, mode, where the WebSocket and event stream are, which
 * credentials they want, the limits it will meet).
 *
 * The WebSocket and SSE URLs, in this order of preference:
 *   1. --public-ws-url, when set (a reverse proxy, another host, the
 *      notifiers of a scale-out deployment): wsURL is it with /api/v1/ws,
 *      sseURL its http(s) form with /api/v1/sse;
 *   2. no notifier in this process (a scale-out publisher): null;
 *   3. a request relayed by a trusted proxy: the request's own origin (the
 *      Host it was sent to, the scheme of X-Forwarded-Proto), since a proxy
 *      serves both ports under one origin (docs/security.md, "Behind nginx");
 *   4. otherwise the host of the request's Host header on this process's
 *      WebSocket port, wss/https when TLS is on.
 *
 * Thread affinity: the loop thread only.
 */
#ifndef HS_ROLES_INFO_H
#define HS_ROLES_INFO_H

#include <stdbool.h>
#include <stddef.h>

#include "core/config.h"
#include "http/server.h"

/* What the process learns only after start-up: the WebSocket listener's
 * port and the credentials in force. */
typedef struct hs_info_site {
    int ws_port;        /* this process's notifier port; 0: no notifier here */
    bool tls;           /* every listener speaks TLS */
    bool api_keys;      /* the API port wants a key */
    bool client_tokens; /* this process's notifier wants a client token */
    bool scale_out;     /* the bus is Redis (other processes serve clients) */
    bool consumer;      /* the consumer role runs in this process too */
} hs_info_site_t;

typedef struct hs_info hs_info_t;

/* Registers GET /api/v1/info on router; cfg (borrowed) outlives it. */
hs_info_t *hs_info_add_route(hs_router_t *router, const hs_config_t *cfg);
/* Fills in what start-up learnt (copied). Until then the URLs are null. */
void hs_info_set_site(hs_info_t *info, const hs_info_site_t *site);
void hs_info_free(hs_info_t *info);

/* Checks --public-ws-url: "" or ws[s]://host[:port][/prefix] without query
 * or fragment; a trailing /api/v1/ws is allowed. 0, or HS_EINVAL with the
 * reason in err. */
int hs_info_check_public_url(const char *url, char *err, size_t err_len);

/* The base URL (scheme://host[:port][/prefix], no trailing '/') where the
 * WebSocket port's paths are reached, by the rules above. host is the
 * request's Host header (NULL when absent), forwarded_proto its trusted
 * X-Forwarded-Proto (NULL unless proxied). Returns 0 with out filled,
 * HS_ENOTFOUND when there is none (rule 2), HS_EINVAL when Host is not
 * host[:port]. Pure: no request, no I/O. */
int hs_info_ws_base(const char *public_ws_url, const hs_info_site_t *site, const char *host,
                    size_t host_len, bool proxied, const char *forwarded_proto, char *out,
                    size_t cap);

#endif
