/* publisher_subscriptions.c - the subscription routes of the API: POST,
 * DELETE and GET /api/v1/subscribes (a row in the store, then the command
 * to the node that holds the connection). */
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/ulid.h"
#include "roles/publisher_internal.h"
#include "roles/render.h"

/* ---- POST /api/v1/subscribes ------------------------------------------- */

static void subscribe_applied_cb(int status, void *data)
{
    call_t *call = data;
    hs_publisher_t *p = call->publisher;
    /* Refused by the node, or the connection left between the check and
     * now: the node removed the stored row (notifier.c). */
    if (status == HS_ENOTFOUND) {
        hs_http_respond_error(call->req, 404, "not_found", "connection %s is not connected",
                              call->in.sub.connection_id);
    } else if (status == HS_EBUSY) {
        hs_http_respond_error(call->req, 429, "too_many_subscriptions",
                              "connection %s has reached its limit of %llu subscriptions",
                              call->in.sub.connection_id,
                              (unsigned long long)p->cfg->max_subscriptions);
    } else if (status != 0) {
        /* Not handed to the node: a new row would be a ghost. */
        if (call->created)
            hs_store_remove_subscription(p->store, call->in.sub.connection_id, call->in.sub.topic,
                                         NULL, NULL);
        hs_publisher__respond_internal(call->req, "subscribing", status);
    } else {
        hs_http_respond_json(call->req, call->created ? 201 : 200,
                             hs_render_subscription(call->in.sub.topic, call->in.sub.connection_id,
                                                    call->created_ms));
    }
    hs_publisher__call_free(call);
}

/* prev of the command: the topic's last id, or NULL when it could not be
 * read (the node reads it then). */
static void subscribe_baseline_cb(int status, const hs_message_t *msgs, size_t count, void *data)
{
    call_t *call = data;
    hs_node_cmd_t cmd = {.kind = HS_NODE_SUBSCRIBE,
                         .topic = call->in.sub.topic,
                         .connection_id = call->in.sub.connection_id,
                         .prev = status != 0 ? NULL
                                 : count     ? msgs[0].id
                                             : ""};
    hs_bus_send_to_node(call->publisher->bus, call->node, &cmd, subscribe_applied_cb, call);
}

static void subscription_stored_cb(int status, uint64_t created_ms, void *data)
{
    call_t *call = data;
    if (status != 0 && status != HS_EEXIST) {
        hs_publisher__respond_internal(call->req, "storing the subscription", status);
        hs_publisher__call_free(call);
        return;
    }
    call->created = status == 0;
    call->created_ms = created_ms;
    /* The topic's last id now, before the answer: the node starts the
     * topic's live order from it when this subscription makes the topic
     * served there (docs/scaling.md, "Live order"). */
    hs_history_query_t q = {.topic = call->in.sub.topic, .forward = false, .limit = 1};
    hs_store_list_messages(call->publisher->store, &q, subscribe_baseline_cb, call);
}

static void subscribe_located_cb(int status, const char *node, void *data)
{
    call_t *call = data;
    if (status != 0 && status != HS_ENOTFOUND) {
        hs_publisher__respond_internal(call->req, "finding the connection", status);
        hs_publisher__call_free(call);
        return;
    }
    if (status != 0) {
        hs_http_respond_error(call->req, 404, "not_found", "connection %s is not connected",
                              call->in.sub.connection_id);
        hs_publisher__call_free(call);
        return;
    }
    snprintf(call->node, sizeof(call->node), "%s", node);
    hs_store_add_subscription(call->publisher->store, call->in.sub.connection_id,
                              call->in.sub.topic, hs_now_ms(), subscription_stored_cb, call);
}

static void post_subscribes(hs_http_request_t *req, void *ctx)
{
    hs_publisher_t *p = ctx;
    json_t *body = hs_publisher__request_fields(req, false, NULL, 0);
    if (body == NULL)
        return;
    call_t *call = hs_publisher__call_new(p, req, body);
    hs_api_error_t err;
    if (hs_decode_subscription(body, true, &call->in.sub, &err) != 0) {
        hs_publisher__respond_api_error(req, &err);
        hs_publisher__call_free(call);
        return;
    }
    hs_bus_locate_connection(p->bus, call->in.sub.connection_id, subscribe_located_cb, call);
}

/* ---- DELETE /api/v1/subscribes ----------------------------------------- */

static void unsubscribe_stored_cb(int status, size_t count, void *data)
{
    call_t *call = data;
    (void)count;
    if (status != 0)
        hs_publisher__respond_internal(call->req, "removing the subscription", status);
    else
        hs_http_respond_empty(call->req, 204);
    hs_publisher__call_free(call);
}

static void unsubscribe_applied_cb(int status, void *data)
{
    call_t *call = data;
    if (status == HS_EUNAVAIL) { /* the node may still push: say so */
        hs_publisher__respond_internal(call->req, "unsubscribing", status);
        hs_publisher__call_free(call);
        return;
    }
    /* Otherwise done, or the connection left: it has nothing in memory. */
    hs_store_remove_subscription(call->publisher->store, call->in.sub.connection_id,
                                 call->in.sub.topic, unsubscribe_stored_cb, call);
}

static void unsubscribe_located_cb(int status, const char *node, void *data)
{
    call_t *call = data;
    if (status != 0 && status != HS_ENOTFOUND) {
        hs_publisher__respond_internal(call->req, "finding the connection", status);
        hs_publisher__call_free(call);
        return;
    }
    if (status != 0) {
        unsubscribe_applied_cb(0, call);
        return;
    }
    /* The node stops pushing first, so nothing arrives after the 204. */
    hs_node_cmd_t cmd = {.kind = HS_NODE_UNSUBSCRIBE,
                         .topic = call->in.sub.topic,
                         .connection_id = call->in.sub.connection_id};
    hs_bus_send_to_node(call->publisher->bus, node, &cmd, unsubscribe_applied_cb, call);
}

static void delete_subscribes(hs_http_request_t *req, void *ctx)
{
    hs_publisher_t *p = ctx;
    static const char *const names[] = {"topic", "connectionID"};
    json_t *body = hs_publisher__request_fields(req, true, names, 2);
    if (body == NULL)
        return;
    call_t *call = hs_publisher__call_new(p, req, body);
    hs_api_error_t err;
    if (hs_decode_subscription(body, false, &call->in.sub, &err) != 0) {
        hs_publisher__respond_api_error(req, &err);
        hs_publisher__call_free(call);
        return;
    }
    hs_bus_locate_connection(p->bus, call->in.sub.connection_id, unsubscribe_located_cb, call);
}

/* ---- GET /api/v1/subscribes -------------------------------------------- */

static void list_subscriptions_cb(int status, const hs_subscription_t *subs, size_t count,
                                  void *data)
{
    call_t *call = data;
    if (status != 0) {
        hs_publisher__respond_internal(call->req, "listing subscriptions", status);
    } else {
        json_t *list = json_array();
        for (size_t i = 0; i < count; i++)
            json_array_append_new(list, hs_render_subscription(subs[i].topic, subs[i].connection_id,
                                                               subs[i].created_ms));
        hs_http_respond_json(call->req, 200, list);
    }
    hs_publisher__call_free(call);
}

static void get_subscribes(hs_http_request_t *req, void *ctx)
{
    hs_publisher_t *p = ctx;
    const char *topic = hs_http_query(req, "topic");
    const char *conn = hs_http_query(req, "connectionID");
    if (topic == NULL && conn == NULL) {
        hs_http_respond_error(req, 400, "missing_field",
                              "query parameter 'connectionID' or 'topic' is required");
        return;
    }
    if (topic && !hs_topic_valid(topic, strlen(topic))) {
        hs_http_respond_error(req, 400, "invalid_field",
                              "query parameter 'topic' must be 1-128 characters of A-Z a-z 0-9 "
                              ". _ : -");
        return;
    }
    call_t *call = hs_publisher__call_new(p, req, NULL);
    hs_api_error_t err;
    if (conn && hs_decode_ulid(conn, "connectionID", call->in.sub.connection_id, &err) != 0) {
        hs_publisher__respond_api_error(req, &err);
        hs_publisher__call_free(call);
        return;
    }
    if (topic)
        memcpy(call->topic_copy, topic, strlen(topic) + 1);
    hs_store_list_subscriptions(p->store, conn ? call->in.sub.connection_id : NULL,
                                topic ? call->topic_copy : NULL, list_subscriptions_cb, call);
}

void hs_publisher__add_subscription_routes(hs_publisher_t *p)
{
    hs_router_add(p->router, HTTP_POST, "/api/v1/subscribes", post_subscribes, p);
    hs_router_add(p->router, HTTP_DELETE, "/api/v1/subscribes", delete_subscribes, p);
    hs_router_add(p->router, HTTP_GET, "/api/v1/subscribes", get_subscribes, p);
}
