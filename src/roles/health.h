/* health.h - liveness and readiness routes, served on both ports.
 *
 *   GET /healthz  200 {"status":"ok"} while the process serves at all
 *   GET /readyz   200 {"status":"ready"} when the store and the bus answer a
 *                 round trip; 503 with the reason otherwise
 */
#ifndef HS_ROLES_HEALTH_H
#define HS_ROLES_HEALTH_H

#include "bus/bus.h"
#include "http/server.h"
#include "store/store.h"

typedef struct hs_health hs_health_t;

/* Registers the two routes on router; the returned state lives as long as
 * the router and is freed with hs_health_free. */
hs_health_t *hs_health_add_routes(hs_router_t *router, hs_store_t *store, hs_bus_t *bus);
void hs_health_free(hs_health_t *health);

#endif
