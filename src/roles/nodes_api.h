/* nodes_api.h - GET /api/v1/nodes: the deployment as the directory in
 * Redis sees it - each notifier node's connections, deliveries and last
 * heartbeat, each consumer's partitions (docs/api.md, "Nodes"). Read-only;
 * the console's Operations tab polls it in the scale-out mode. In the
 * embedded mode the lists are empty.
 *
 * Thread affinity: the loop thread only. */
#ifndef HS_ROLES_NODES_API_H
#define HS_ROLES_NODES_API_H

#include "bus/bus.h"
#include "http/server.h"

/* Adds the route to router; bus is borrowed and outlives the router. */
void hs_nodes_api_add_route(hs_router_t *router, hs_bus_t *bus);

#endif
