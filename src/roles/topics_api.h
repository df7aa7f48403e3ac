/* topics_api.h - the topic endpoints of the HTTP API (publisher role):
 * GET /api/v1/topics, GET and PUT /api/v1/topics/{topic} (docs/api.md,
 * "Topics"). Behind the same guard as every /api/v1 route (the publisher's
 * server checks the API key before any handler runs).
 *
 * Thread affinity: the loop thread only. */
#ifndef HS_ROLES_TOPICS_API_H
#define HS_ROLES_TOPICS_API_H

#include "core/config.h"
#include "http/server.h"
#include "store/store.h"

typedef struct hs_topics_api hs_topics_api_t;

/* Adds the routes to router; store and cfg are borrowed. */
hs_topics_api_t *hs_topics_api_new(hs_router_t *router, hs_store_t *store, const hs_config_t *cfg);
void hs_topics_api_free(hs_topics_api_t *api);

#endif
