/* health.h - liveness and readiness routes, served on both ports.
 *
 *   GET /healthz  200 {"status":"ok"} while the process serves at all
 *   GET /readyz   200 {"status":"ready"} when the store and the bus answer a
 *                 round trip; 503 with the reason otherwise
 *   GET /metrics  the Prometheus text exposition (API port, --metrics-addr)
 *   GET /api/v1/stats  the same numbers as one JSON object (the console's
 *                 Operations tab samples it every second)
 */
#ifndef HS_ROLES_HEALTH_H
#define HS_ROLES_HEALTH_H

#include "bus/bus.h"
#include "core/metrics.h"
#include "http/server.h"
#include "store/store.h"

typedef struct hs_health hs_health_t;

/* Registers the two routes on router; the returned state lives as long as
 * the router and is freed with hs_health_free. */
hs_health_t *hs_health_add_routes(hs_router_t *router, hs_store_t *store, hs_bus_t *bus);
void hs_health_free(hs_health_t *health);

/* Where /metrics reads the gauges of live things (the notifier's, in the
 * embedded mode). Without it they read 0. */
typedef void (*hs_gauges_fn)(void *ctx, hs_metrics_gauges_t *out);
void hs_health_set_gauges(hs_health_t *health, hs_gauges_fn fn, void *ctx);
/* Registers GET /metrics and GET /api/v1/stats on router, served from health's gauges. */
void hs_health_add_metrics_route(hs_health_t *health, hs_router_t *router);

#endif
