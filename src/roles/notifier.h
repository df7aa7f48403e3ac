/* notifier.h - the notifier role: client WebSocket connections and pushes.
 *
 * It accepts WebSocket connections on its HTTP server (GET /api/v1/ws),
 * gives each a ULID connection id, and keeps in memory the topic -> local
 * subscribers index that fan-out walks. It serves its node on the bus:
 * DELIVER encodes one frame per message and queues it, by reference, on
 * every local subscriber of the topic; NOTIFY, SUBSCRIBE and UNSUBSCRIBE act
 * on one connection. When a connection goes away, for whatever reason, its
 * subscriptions are removed from the index, the directory and the store.
 *
 * Thread affinity: the loop thread only.
 */
#ifndef HS_ROLES_NOTIFIER_H
#define HS_ROLES_NOTIFIER_H

#include "bus/bus.h"
#include "core/config.h"
#include "core/metrics.h"
#include "http/server.h"
#include "net/net.h"
#include "roles/token.h"
#include "store/store.h"

typedef struct hs_notifier hs_notifier_t;

hs_notifier_t *hs_notifier_new(hs_net_t *net, hs_store_t *store, hs_bus_t *bus,
                               const hs_config_t *cfg, const char *node_id);
/* Client security, before start: with a verifier (not owned; it outlives
 * the notifier) the upgrade needs a valid token, whose "sub" is kept with
 * the connection, whose "exp" closes it (4001) unless refreshed, and whose
 * "topics" are what the client may subscribe to by itself. Without one,
 * client-side subscribes are allowed for any topic when open_subscribe
 * (the loopback development default), else refused ("forbidden"). */
void hs_notifier_set_security(hs_notifier_t *notifier, const hs_token_verifier_t *verifier,
                              bool open_subscribe);
/* Registers the node on the bus and listens on addr. */
/* The Host check, trusted proxies and allowed origins of the WebSocket
 * port (server.h, docs/security.md); borrowed. Before start. */
void hs_notifier_set_http_policy(hs_notifier_t *notifier, const hs_http_policy_t *policy);
int hs_notifier_start(hs_notifier_t *notifier, const char *addr);
int hs_notifier_port(hs_notifier_t *notifier);
/* Its routes (for `houston routes`). */
hs_router_t *hs_notifier_router(hs_notifier_t *notifier);
/* Connections, subscriptions and topics held now (for /metrics). */
void hs_notifier_gauges(const hs_notifier_t *notifier, hs_metrics_gauges_t *out);
/* Stops accepting, closes every connection with 1001 ("going away"); cb
 * runs once all are gone (each session bounds its own close handshake). */
void hs_notifier_shutdown(hs_notifier_t *notifier, void (*cb)(void *data), void *data);
/* Frees the notifier; call after shutdown completed and the bus is closed. */
void hs_notifier_free(hs_notifier_t *notifier);

#endif
