/* publisher_internal.h - what the publisher's files share, and nothing
 * outside src/roles/publisher*.c may include (as notifier_internal.h):
 * the publisher struct, the state of one request across its asynchronous
 * steps, and the helpers every route answers with.
 *   publisher.c               the helpers, messages (publish, get, history),
 *                             the life cycle
 *   publisher_subscriptions.c POST, DELETE and GET /api/v1/subscribes
 *   publisher_connections.c   a command to the node that holds a connection;
 *                             POST /api/v1/notification, GET and DELETE
 *                             /api/v1/connections/{id}
 *   publisher_batch.c         POST /api/v1/messages/batch
 *   publisher_users.c         a user's connections: POST /api/v1/notification
 *                             with a userID, GET and DELETE
 *                             /api/v1/users/{id}/connections
 * Names: hs_publisher__<verb> are shared between these files only. */
#ifndef HS_ROLES_PUBLISHER_INTERNAL_H
#define HS_ROLES_PUBLISHER_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "bus/bus.h"
#include "http/server.h"
#include "roles/decode.h"
#include "roles/health.h"
#include "roles/info.h"
#include "roles/publisher.h"
#include "roles/topics_api.h"
#include "roles/deletion_api.h"
#include "store/store.h"

struct hs_publisher {
    hs_store_t *store;
    hs_bus_t *bus;
    const hs_config_t *cfg;
    hs_router_t *router;
    hs_http_server_t *http;
    hs_health_t *health;
    hs_info_t *info;
    hs_topics_api_t *topics;
    void (*shutdown_cb)(void *data);
    void *shutdown_data;
    hs_deletion_api_t *deletion; /* DELETE message / topic (deletion_api.c) */
};

/* The state of one request across its asynchronous steps. */
typedef struct call {
    hs_publisher_t *publisher;
    hs_http_request_t *req;
    json_t *body; /* keeps the decoded strings alive */
    int created;  /* subscribe: the row was new */
    uint64_t created_ms;
    union {
        hs_subscription_input_t sub;
        hs_notification_input_t note;
        hs_history_query_t history;
    } in;
    char topic_copy[HS_TOPIC_MAX + 1]; /* history/get: query strings die with req */
    char node[128];
    /* send_to_connection: the command, and the answer when it is done */
    hs_node_cmd_t cmd;
    int ok_status;
    const char *what;
} call_t;

call_t *hs_publisher__call_new(hs_publisher_t *p, hs_http_request_t *req, json_t *body);
void hs_publisher__call_free(call_t *call);
void hs_publisher__respond_api_error(hs_http_request_t *req, const hs_api_error_t *err);
/* A failed store or bus operation: 503 when the database or Redis cannot be
 * reached (retry later), 500 otherwise. */
void hs_publisher__respond_internal(hs_http_request_t *req, const char *what, int status);
/* In the scale-out mode a message is only accepted while it can also be
 * announced: with Redis away it would be stored but reach nobody live. */
bool hs_publisher__bus_ready_or_503(hs_publisher_t *p, hs_http_request_t *req);
/* Decodes the JSON object body; with allow_query and no body, builds the
 * object from the query parameters names[]. Answers the request on error. */
json_t *hs_publisher__request_fields(hs_http_request_t *req, bool allow_query,
                                     const char *const *names, size_t count);
void hs_publisher__add_subscription_routes(hs_publisher_t *p);
void hs_publisher__add_connection_routes(hs_publisher_t *p);
void hs_publisher__add_batch_routes(hs_publisher_t *p);
void hs_publisher__add_user_routes(hs_publisher_t *p);
/* POST /api/v1/notification to every connection of note->user_id: 202, or
 * 404 when none is connected; answers req. Takes a reference to body
 * (note's strings point into it). */
void hs_publisher__notify_user(hs_publisher_t *p, hs_http_request_t *req, json_t *body,
                               const hs_notification_input_t *note);

#endif
