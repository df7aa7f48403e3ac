/* publisher_users.c - what the API does to a user's connections (the user
 * of a connection is its token's "sub", stored with its row):
 * POST /api/v1/notification with a userID, GET and DELETE
 * /api/v1/users/{id}/connections.
 *
 * The publisher holds no connection: it reads the user's connection rows
 * from the store, a page at a time in id order, and hands each connection
 * a command at the node that holds it (located through the bus directory,
 * as publisher_connections.c does for one), all of a page at once. A row
 * no node holds is a detached connection (within its resume window): a
 * notification does not reach it (notifications are not stored); a
 * disconnect removes its row, so no resume can claim it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/log.h"
#include "roles/publisher_internal.h"
#include "roles/render.h"

/* Rows read per page by the notification and the disconnect. */
#define USER_PAGE 1000

typedef enum user_action {
    USER_NOTIFY,
    USER_DISCONNECT,
} user_action_t;

/* One request on a user's connections, across its pages and their
 * per-connection steps. */
typedef struct user_call {
    hs_publisher_t *publisher;
    hs_http_request_t *req;
    user_action_t action;
    json_t *body; /* keeps payload alive */
    const char *payload;
    size_t payload_len;
    char user[HS_USER_ID_CAP];
    char after[HS_ULID_LEN + 1]; /* the last id of the page read */
    bool more;                   /* that page was full: another may follow */
    unsigned pending;            /* steps of the page not done yet */
    unsigned reached;            /* connections notified or disconnected */
    int failed;                  /* the first failure of a step, 0 if none */
    const char *failed_what;
} user_call_t;

/* One connection's step. */
typedef struct user_step {
    user_call_t *call;
    char id[HS_ULID_LEN + 1];
    char node[128];
} user_step_t;

static void read_page(user_call_t *call);

static void user_call_free(user_call_t *call)
{
    json_decref(call->body);
    hs_free(call);
}

static void finish(user_call_t *call)
{
    hs_http_request_t *req = call->req;
    if (call->failed) {
        hs_publisher__respond_internal(req, call->failed_what, call->failed);
    } else if (call->action == USER_NOTIFY && call->reached == 0) {
        hs_http_respond_error(req, 404, "not_found", "user %s has no connection", call->user);
    } else if (call->action == USER_NOTIFY) {
        hs_http_respond_empty(req, 202);
    } else {
        hs_log_info("publisher: %s disconnected %u connection(s) of user %s",
                    hs_http_request_id(req), call->reached, call->user);
        hs_http_respond_empty(req, 204);
    }
    user_call_free(call);
}

static void step_done(user_step_t *step, int status, const char *what)
{
    user_call_t *call = step->call;
    if (status != 0 && call->failed == 0) {
        call->failed = status;
        call->failed_what = what;
    }
    hs_free(step);
    if (--call->pending > 0)
        return;
    if (call->more && call->failed == 0)
        read_page(call);
    else
        finish(call);
}

/* ---- a step: the command at the node holding the connection ------------- */

static void row_removed_cb(int status, void *data)
{
    user_step_t *step = data;
    if (status == 0)
        step->call->reached++;
    step_done(step, status, "removing a connection of the user");
}

static void command_sent_cb(int status, void *data)
{
    user_step_t *step = data;
    user_call_t *call = step->call;
    hs_publisher_t *p = call->publisher;
    if (call->action == USER_NOTIFY) {
        if (status == 0)
            call->reached++;
        /* HS_ENOTFOUND: the node let it go meanwhile; not reached */
        step_done(step, status == HS_ENOTFOUND ? 0 : status, "sending the notification");
        return;
    }
    if (status != 0 && status != HS_ENOTFOUND) {
        step_done(step, status, "disconnecting");
        return;
    }
    if (status == 0) {
        hs_log_info("publisher: %s disconnected conn %s of user %s", hs_http_request_id(call->req),
                    step->id, call->user);
        /* Not routed from now on (the node's own unregister follows). */
        hs_bus_unregister_connection(p->bus, step->node, step->id);
    }
    /* Its rows go before the answer, as a kick's (publisher_connections.c):
     * nothing lists it after the 204, and no resume can claim it. */
    hs_store_remove_connection(p->store, step->id, row_removed_cb, step);
}

static void located_cb(int status, const char *node, void *data)
{
    user_step_t *step = data;
    user_call_t *call = step->call;
    hs_publisher_t *p = call->publisher;
    if (status == 0) {
        snprintf(step->node, sizeof(step->node), "%s", node);
        hs_node_cmd_t cmd = {.connection_id = step->id};
        if (call->action == USER_NOTIFY) {
            cmd.kind = HS_NODE_NOTIFY;
            cmd.frame_text = call->payload;
            cmd.frame_text_len = call->payload_len;
        } else {
            cmd.kind = HS_NODE_DISCONNECT;
        }
        hs_bus_send_to_node(p->bus, node, &cmd, command_sent_cb, step);
    } else if (status == HS_ENOTFOUND && call->action == USER_DISCONNECT) {
        /* Detached (resumable) or just gone: without its row it is over. */
        hs_log_info("publisher: %s disconnects detached conn %s of user %s",
                    hs_http_request_id(call->req), step->id, call->user);
        hs_store_remove_connection(p->store, step->id, row_removed_cb, step);
    } else {
        step_done(step, status == HS_ENOTFOUND ? 0 : status, "finding the connection");
    }
}

/* ---- the pages ----------------------------------------------------------- */

static void page_read_cb(int status, const hs_connection_info_t *conns, size_t count, void *data)
{
    user_call_t *call = data;
    if (status != 0) {
        call->failed = status;
        call->failed_what = "reading the user's connections";
        finish(call);
        return;
    }
    call->more = count == USER_PAGE;
    if (count == 0) {
        finish(call);
        return;
    }
    snprintf(call->after, sizeof(call->after), "%s", conns[count - 1].id);
    /* Every step is counted before the first starts: none completes inside
     * these calls (bus.h), but the count must not reach 0 mid-loop. */
    call->pending = (unsigned)count;
    for (size_t i = 0; i < count; i++) {
        user_step_t *step = hs_calloc(1, sizeof(*step));
        step->call = call;
        snprintf(step->id, sizeof(step->id), "%s", conns[i].id);
        hs_bus_locate_connection(call->publisher->bus, step->id, located_cb, step);
    }
}

static void read_page(user_call_t *call)
{
    hs_store_list_user_connections(call->publisher->store, call->user, call->after, USER_PAGE,
                                   false, page_read_cb, call);
}

/* ---- POST /api/v1/notification {"userID", "payload"} -------------------- */

void hs_publisher__notify_user(hs_publisher_t *p, hs_http_request_t *req, json_t *body,
                               const hs_notification_input_t *note)
{
    user_call_t *call = hs_calloc(1, sizeof(*call));
    call->publisher = p;
    call->req = req;
    call->action = USER_NOTIFY;
    call->body = json_incref(body);
    call->payload = note->payload;
    call->payload_len = note->payload_len;
    snprintf(call->user, sizeof(call->user), "%s", note->user_id);
    read_page(call);
}

/* ---- GET and DELETE /api/v1/users/{id}/connections ---------------------- */

/* The user named by the path's {id} into user, or false after answering
 * 400. */
static bool path_user(hs_http_request_t *req, char user[HS_USER_ID_CAP])
{
    hs_api_error_t err;
    const char *raw = hs_http_param(req, "id");
    if (hs_decode_user_path(raw ? raw : "", user, &err) != 0) {
        hs_publisher__respond_api_error(req, &err);
        return false;
    }
    return true;
}

typedef struct list_call {
    hs_http_request_t *req;
    unsigned limit;
} list_call_t;

static void listed_cb(int status, const hs_connection_info_t *conns, size_t count, void *data)
{
    list_call_t *call = data;
    if (status != 0) {
        hs_publisher__respond_internal(call->req, "reading the user's connections", status);
    } else {
        size_t shown = count > call->limit ? call->limit : count;
        json_t *list = json_array();
        for (size_t i = 0; i < shown; i++)
            json_array_append_new(list, hs_render_connection(&conns[i]));
        json_t *next = count > call->limit ? json_string(conns[shown - 1].id) : json_null();
        hs_http_respond_json(call->req, 200,
                             json_pack("{s:o, s:o}", "connections", list, "next", next));
    }
    hs_free(call);
}

static void get_user_connections(hs_http_request_t *req, void *ctx)
{
    hs_publisher_t *p = ctx;
    hs_api_error_t err;
    hs_user_connections_query_t q;
    char user[HS_USER_ID_CAP];
    if (hs_decode_user_connections_query(hs_http_query(req, "after"), hs_http_query(req, "limit"),
                                         &q, &err) != 0) {
        hs_publisher__respond_api_error(req, &err);
        return;
    }
    if (!path_user(req, user))
        return;
    list_call_t *call = hs_calloc(1, sizeof(*call));
    call->req = req;
    call->limit = q.limit;
    /* one more than the page: whether another follows */
    hs_store_list_user_connections(p->store, user, q.after, q.limit + 1, true, listed_cb, call);
}

static void delete_user_connections(hs_http_request_t *req, void *ctx)
{
    char user[HS_USER_ID_CAP];
    if (!path_user(req, user))
        return;
    user_call_t *call = hs_calloc(1, sizeof(*call));
    call->publisher = ctx;
    call->req = req;
    call->action = USER_DISCONNECT;
    memcpy(call->user, user, sizeof(call->user));
    read_page(call);
}

void hs_publisher__add_user_routes(hs_publisher_t *p)
{
    hs_router_add(p->router, HTTP_GET, "/api/v1/users/{id}/connections", get_user_connections, p);
    hs_router_add(p->router, HTTP_DELETE, "/api/v1/users/{id}/connections", delete_user_connections,
                  p);
}
