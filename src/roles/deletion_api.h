/* deletion_api.h - the deletion endpoints of the HTTP API (publisher role):
 * DELETE /api/v1/messages/{id}?topic=T and DELETE /api/v1/topics/{topic}
 * (docs/api.md, "Deletion"). Behind the same guard as every /api/v1 route
 * (the API key); each deletion is audited in the log.
 *
 * Thread affinity: the loop thread only. */
#ifndef HS_ROLES_DELETION_API_H
#define HS_ROLES_DELETION_API_H

#include "bus/bus.h"
#include "http/server.h"
#include "store/store.h"

typedef struct hs_deletion_api hs_deletion_api_t;

/* Adds the routes to router; store and bus are borrowed. */
hs_deletion_api_t *hs_deletion_api_new(hs_router_t *router, hs_store_t *store, hs_bus_t *bus);
void hs_deletion_api_free(hs_deletion_api_t *api);

#endif
