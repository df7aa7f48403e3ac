/* publisher.h - the publisher role: the HTTP API for messages, history,
 * subscriptions and notifications.
 *
 * A publish is committed to the store before it is answered (201), and its
 * "message created" event goes to the bus right after the commit. Every
 * handler validates its input first (decode.h), so a rejected request never
 * reaches the store.
 *
 * Thread affinity: the loop thread only.
 */
#ifndef HS_ROLES_PUBLISHER_H
#define HS_ROLES_PUBLISHER_H

#include "bus/bus.h"
#include "core/config.h"
#include "core/metrics.h"
#include "roles/auth.h"
#include "roles/health.h"
#include "roles/info.h"
#include "http/server.h"
#include "net/net.h"
#include "store/store.h"

typedef struct hs_publisher hs_publisher_t;

hs_publisher_t *hs_publisher_new(hs_net_t *net, hs_store_t *store, hs_bus_t *bus,
                                 const hs_config_t *cfg);
/* With keys in auth (not owned; it outlives the publisher), every API
 * request but /healthz and /readyz needs one (auth.h). Before start. */
void hs_publisher_set_auth(hs_publisher_t *publisher, hs_auth_t *auth);
int hs_publisher_start(hs_publisher_t *publisher, const char *addr);
/* What GET /api/v1/info tells about this process (info.h); copied. After
 * the listeners are bound (it names the WebSocket port). */
void hs_publisher_set_site(hs_publisher_t *publisher, const hs_info_site_t *site);
/* The Host check, trusted proxies and origins (server.h); borrowed. */
void hs_publisher_set_http_policy(hs_publisher_t *publisher, const hs_http_policy_t *policy);
/* Listens on a second address too (the IPv6 loopback next to 127.0.0.1). */
int hs_publisher_listen_also(hs_publisher_t *publisher, const char *addr);
int hs_publisher_port(hs_publisher_t *publisher);
/* Its routes (for `houston routes`). */
hs_router_t *hs_publisher_router(hs_publisher_t *publisher);
/* Where its GET /metrics reads the gauges of live things (health.h). */
void hs_publisher_set_gauges(hs_publisher_t *publisher, hs_gauges_fn fn, void *ctx);
/* Stops accepting and lets in-flight requests be answered; cb runs when no
 * API connection remains. */
void hs_publisher_shutdown(hs_publisher_t *publisher, void (*cb)(void *data), void *data);
void hs_publisher_free(hs_publisher_t *publisher);

#endif
