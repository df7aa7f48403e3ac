/* publisher_connections.c - what the API does to one connection: a
 * command to the node that holds it (located through the bus directory);
 * POST /api/v1/notification (to a connection; to a user: publisher_users.c),
 * GET and DELETE /api/v1/connections/{id}. */
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

/* ---- a command to the node that holds a connection ------------------------ */

static void command_sent_cb(int status, void *data)
{
    call_t *call = data;
    if (status == HS_ENOTFOUND)
        hs_http_respond_error(call->req, 404, "not_found", "connection %s is not connected",
                              call->cmd.connection_id);
    else if (status != 0)
        hs_publisher__respond_internal(call->req, call->what, status);
    else
        hs_http_respond_empty(call->req, call->ok_status);
    hs_publisher__call_free(call);
}

static void command_located_cb(int status, const char *node, void *data)
{
    call_t *call = data;
    if (status != 0 && status != HS_ENOTFOUND) {
        hs_publisher__respond_internal(call->req, "finding the connection", status);
        hs_publisher__call_free(call);
    } else if (status != 0) {
        command_sent_cb(HS_ENOTFOUND, call);
    } else {
        hs_bus_send_to_node(call->publisher->bus, node, &call->cmd, command_sent_cb, call);
    }
}

/* Hands cmd to the node that holds cmd->connection_id and answers ok_status,
 * or 404 when the connection is not connected. cmd's strings must live as
 * long as call (they point into its decoded input). */
static void send_to_connection(call_t *call, const hs_node_cmd_t *cmd, int ok_status,
                               const char *what)
{
    call->cmd = *cmd;
    call->ok_status = ok_status;
    call->what = what;
    hs_bus_locate_connection(call->publisher->bus, cmd->connection_id, command_located_cb, call);
}

/* ---- POST /api/v1/notification ----------------------------------------- */

static void post_notification(hs_http_request_t *req, void *ctx)
{
    hs_publisher_t *p = ctx;
    json_t *body = hs_publisher__request_fields(req, false, NULL, 0);
    if (body == NULL)
        return;
    call_t *call = hs_publisher__call_new(p, req, body);
    hs_api_error_t err;
    if (hs_decode_notification(body, p->cfg->max_content, &call->in.note, &err) != 0) {
        hs_publisher__respond_api_error(req, &err);
        hs_publisher__call_free(call);
        return;
    }
    if (call->in.note.user_id) { /* to every connection of a user (publisher_users.c) */
        hs_publisher__notify_user(p, req, body, &call->in.note);
        hs_publisher__call_free(call);
        return;
    }
    hs_node_cmd_t cmd = {.kind = HS_NODE_NOTIFY,
                         .connection_id = call->in.note.connection_id,
                         .frame_text = call->in.note.payload,
                         .frame_text_len = call->in.note.payload_len};
    send_to_connection(call, &cmd, 202, "sending the notification");
}

/* ---- GET and DELETE /api/v1/connections/{id} ----------------------------- */

static void connection_got_cb(int status, const hs_connection_info_t *info, void *data)
{
    call_t *call = data;
    if (status == HS_ENOTFOUND) {
        hs_http_respond_error(call->req, 404, "not_found", "connection %s is not connected",
                              call->in.sub.connection_id);
    } else if (status != 0) {
        hs_publisher__respond_internal(call->req, "reading the connection", status);
    } else {
        hs_http_respond_json(call->req, 200, hs_render_connection(info));
    }
    hs_publisher__call_free(call);
}

/* A call for the connection named by the path's {id}, or NULL after
 * answering 400. */
static call_t *connection_call(hs_publisher_t *p, hs_http_request_t *req)
{
    hs_api_error_t err;
    call_t *call = hs_publisher__call_new(p, req, NULL);
    if (hs_decode_ulid(hs_http_param(req, "id"), "id", call->in.sub.connection_id, &err) != 0) {
        hs_publisher__respond_api_error(req, &err);
        hs_publisher__call_free(call);
        return NULL;
    }
    return call;
}

static void get_connection(hs_http_request_t *req, void *ctx)
{
    hs_publisher_t *p = ctx;
    call_t *call = connection_call(p, req);
    if (call)
        hs_store_get_connection(p->store, call->in.sub.connection_id, connection_got_cb, call);
}

/* A kick ends the connection at once and for good (docs/guarantees.md): the
 * node that holds it attached closes it (4000) and drops it from its index;
 * then its rows go, before the answer, so that nothing lists it after the
 * 204 even while the node's own removal is on its way; and without rows no
 * resume can claim it. A detached connection (listed, resumable, in no
 * node's directory) is kicked by removing its rows. */
static void kick_removed_cb(int status, void *data)
{
    call_t *call = data;
    if (status != 0)
        hs_publisher__respond_internal(call->req, "removing the connection", status);
    else
        hs_http_respond_empty(call->req, 204);
    hs_publisher__call_free(call);
}

static void kick_stored_cb(int status, const hs_connection_info_t *info, void *data)
{
    (void)info;
    call_t *call = data;
    if (status == 0) {
        hs_log_info("publisher: %s disconnects detached conn %s", hs_http_request_id(call->req),
                    call->in.sub.connection_id);
        hs_store_remove_connection(call->publisher->store, call->in.sub.connection_id,
                                   kick_removed_cb, call);
        return;
    }
    if (status == HS_ENOTFOUND)
        hs_http_respond_error(call->req, 404, "not_found", "connection %s does not exist",
                              call->in.sub.connection_id);
    else
        hs_publisher__respond_internal(call->req, "finding the connection", status);
    hs_publisher__call_free(call);
}

static void kick_sent_cb(int status, void *data)
{
    call_t *call = data;
    hs_publisher_t *p = call->publisher;
    if (status == 0) {
        hs_log_info("publisher: %s disconnected conn %s", hs_http_request_id(call->req),
                    call->in.sub.connection_id);
        /* Not routed from now on: an API call for it is 404 even before the
         * node has ended it (the node's own unregister follows). */
        hs_bus_unregister_connection(p->bus, call->node, call->in.sub.connection_id);
        hs_store_remove_connection(p->store, call->in.sub.connection_id, kick_removed_cb, call);
    } else if (status == HS_ENOTFOUND) { /* the node let it go meanwhile */
        hs_store_get_connection(p->store, call->in.sub.connection_id, kick_stored_cb, call);
    } else {
        hs_publisher__respond_internal(call->req, "disconnecting", status);
        hs_publisher__call_free(call);
    }
}

static void kick_located_cb(int status, const char *node, void *data)
{
    call_t *call = data;
    hs_publisher_t *p = call->publisher;
    if (status == 0) {
        snprintf(call->node, sizeof(call->node), "%s", node);
        hs_bus_send_to_node(p->bus, node, &call->cmd, kick_sent_cb, call);
    } else if (status == HS_ENOTFOUND) {
        hs_store_get_connection(p->store, call->in.sub.connection_id, kick_stored_cb, call);
    } else {
        hs_publisher__respond_internal(call->req, "finding the connection", status);
        hs_publisher__call_free(call);
    }
}

static void delete_connection(hs_http_request_t *req, void *ctx)
{
    call_t *call = connection_call(ctx, req);
    if (call == NULL)
        return;
    call->cmd =
        (hs_node_cmd_t){.kind = HS_NODE_DISCONNECT, .connection_id = call->in.sub.connection_id};
    hs_bus_locate_connection(call->publisher->bus, call->in.sub.connection_id, kick_located_cb,
                             call);
}

void hs_publisher__add_connection_routes(hs_publisher_t *p)
{
    hs_router_add(p->router, HTTP_POST, "/api/v1/notification", post_notification, p);
    hs_router_add(p->router, HTTP_GET, "/api/v1/connections/{id}", get_connection, p);
    hs_router_add(p->router, HTTP_DELETE, "/api/v1/connections/{id}", delete_connection, p);
}
