#include "roles/publisher.h"
#include "roles/publisher_internal.h"

#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/ulid.h"
#include "http/cors.h"
#include "http/server.h"
#include "roles/auth.h"
#include "roles/decode.h"
#include "roles/health.h"
#include "roles/idempotency.h"
#include "roles/info.h"
#include "roles/nodes_api.h"
#include "roles/render.h"
#include "roles/topics_api.h"

call_t *hs_publisher__call_new(hs_publisher_t *p, hs_http_request_t *req, json_t *body)
{
    call_t *call = hs_calloc(1, sizeof(*call));
    call->publisher = p;
    call->req = req;
    call->body = body;
    return call;
}

void hs_publisher__call_free(call_t *call)
{
    json_decref(call->body);
    hs_free(call);
}

void hs_publisher__respond_api_error(hs_http_request_t *req, const hs_api_error_t *err)
{
    hs_http_respond_error(req, err->status, err->code, "%s", err->message);
}

/* A failed store or bus operation: 503 when the database or Redis cannot be
 * reached (retry later), 500 otherwise. */
void hs_publisher__respond_internal(hs_http_request_t *req, const char *what, int status)
{
    hs_log_error("publisher: %s %s failed: %s", hs_http_request_id(req), what, hs_strerror(status));
    if (status == HS_EUNAVAIL)
        hs_http_respond_error(req, 503, "unavailable",
                              "%s failed: the database or the message bus is unreachable; "
                              "retry later",
                              what);
    else
        hs_http_respond_error(req, 500, "internal", "%s failed; nothing was changed", what);
}

/* In the scale-out mode a message is only accepted while it can also be
 * announced: with Redis away it would be stored but reach nobody live. */
bool hs_publisher__bus_ready_or_503(hs_publisher_t *p, hs_http_request_t *req)
{
    if (hs_bus_ready(p->bus))
        return true;
    hs_http_respond_error(req, 503, "unavailable",
                          "the message bus (Redis) is unreachable; retry later");
    return false;
}

/* Decodes the JSON object body; with allow_query and no body, builds the
 * object from the query parameters names[]. Answers the request on error. */
json_t *hs_publisher__request_fields(hs_http_request_t *req, bool allow_query,
                                     const char *const *names, size_t count)
{
    size_t body_len;
    const char *body = hs_http_body(req, &body_len);
    hs_api_error_t err;
    if (body_len == 0 && allow_query) {
        const char *values[4] = {0};
        for (size_t i = 0; i < count && i < 4; i++)
            values[i] = hs_http_query(req, names[i]);
        return hs_query_object(names, values, count);
    }
    size_t type_len = 0;
    const char *type = hs_http_header(req, "content-type", &type_len);
    if (!hs_content_type_is_json(type, type_len)) {
        hs_http_respond_error(req, 415, "unsupported_media_type",
                              "request body must be JSON (Content-Type: application/json)");
        return NULL;
    }
    json_t *obj;
    if (hs_decode_body(body, body_len, &obj, &err) != 0) {
        hs_publisher__respond_api_error(req, &err);
        return NULL;
    }
    return obj;
}

/* ---- POST /api/v1/messages, POST /api/v1/publish ----------------------- */

typedef struct publish_call {
    hs_publisher_t *publisher;
    hs_http_request_t *req;
    json_t *body;
    uint64_t started_ns;
    hs_message_t msg;
    char key[HS_IDEMPOTENCY_KEY_MAX + 1]; /* Idempotency-Key, "" without one */
    char body_hash[HS_IDEMPOTENCY_HASH_LEN + 1];
} publish_call_t;

static void publish_call_free(publish_call_t *call)
{
    json_decref(call->body);
    hs_free(call);
}

/* stored is the message as committed: its id was minted by the store under
 * the topic's sequence (call->msg.id was only the candidate). */
static void put_message_cb(int status, const hs_message_t *stored, void *data)
{
    publish_call_t *call = data;
    hs_publisher_t *p = call->publisher;
    if (status != 0) {
        hs_publisher__respond_internal(call->req, "storing the message", status);
    } else {
        hs_metrics_t *m = &hs_metrics_singleton;
        m->messages_published++;
        hs_histogram_observe(&m->publish_commit, (uv_hrtime() - call->started_ns) / 1e9);
        size_t len;
        char *text = hs_render_message_text(stored, &len);
        /* Committed: announce it, then answer. This process's events leave
         * in its commit order, which is id order per topic; across
         * publishers the store's sequence orders the ids, not the events. */
        hs_event_t event = {.topic = stored->topic,
                            .message_id = stored->id,
                            .message_json = text,
                            .message_json_len = len,
                            .prev = stored->prev};
        hs_bus_publish_event(p->bus, &event, NULL, NULL);
        hs_http_respond(call->req, 201, "application/json", NULL, text, len);
        hs_free(text);
    }
    publish_call_free(call);
}

/* A publish with an Idempotency-Key: a new message goes on as any other; a
 * repeat answers the original with 200 and announces nothing (its delivery
 * happened the first time). */
static void put_message_once_cb(int status, const hs_message_t *original, void *data)
{
    publish_call_t *call = data;
    if (status == 0) {
        put_message_cb(0, original, call);
        return;
    }
    if (status == HS_EEXIST && original) {
        hs_metrics_singleton.idempotent_repeats++;
        hs_http_respond_json(call->req, 200, hs_render_message(original));
    } else if (status == HS_EINVAL) {
        hs_http_respond_error(call->req, 422, "idempotency_key_reused",
                              "Idempotency-Key '%s' was used for a different message (topic, "
                              "content or author differ) within the idempotency window",
                              call->key);
    } else {
        hs_publisher__respond_internal(call->req, "storing the message",
                                       status == HS_EEXIST ? HS_EIO : status);
    }
    publish_call_free(call);
}

static void publish(hs_http_request_t *req, hs_publisher_t *p, const char *author_key)
{
    json_t *body = hs_publisher__request_fields(req, false, NULL, 0);
    if (body == NULL)
        return;
    hs_publish_input_t in;
    hs_api_error_t err;
    if (hs_decode_publish(body, author_key, p->cfg->max_content, &in, &err) != 0) {
        hs_publisher__respond_api_error(req, &err);
        json_decref(body);
        return;
    }
    size_t key_len = 0;
    const char *key = hs_http_header(req, "idempotency-key", &key_len);
    if (key && hs_idempotency_key_check(key, key_len, &err) != 0) {
        hs_publisher__respond_api_error(req, &err);
        json_decref(body);
        return;
    }
    if (!hs_publisher__bus_ready_or_503(p, req)) {
        json_decref(body);
        return;
    }
    publish_call_t *call = hs_calloc(1, sizeof(*call));
    call->publisher = p;
    call->req = req;
    call->body = body;
    call->started_ns = uv_hrtime();
    /* A candidate only: the store mints the id inside the transaction as
     * max(candidate, the topic's last id + 1) (store.h). */
    hs_ulid_t id;
    hs_ulid_new(&id);
    hs_ulid_format(&id, call->msg.id);
    call->msg.topic = in.topic;
    call->msg.content = in.content;
    call->msg.content_len = in.content_len;
    call->msg.author = in.author;
    call->msg.created_ms = hs_ulid_time_ms(&id);
    if (key == NULL) {
        hs_store_put_message(p->store, &call->msg, put_message_cb, call);
        return;
    }
    memcpy(call->key, key, key_len);
    call->key[key_len] = '\0';
    hs_idempotency_body_hash(&in, call->body_hash);
    uint64_t window = p->cfg->idempotency_window_ms;
    hs_idempotency_t idem = {.key = call->key,
                             .body_hash = call->body_hash,
                             .not_before_ms =
                                 call->msg.created_ms > window ? call->msg.created_ms - window : 0};
    hs_store_put_message_once(p->store, &call->msg, &idem, put_message_once_cb, call);
}

static void post_messages(hs_http_request_t *req, void *ctx)
{
    publish(req, ctx, "author");
}

static void post_publish(hs_http_request_t *req, void *ctx)
{
    publish(req, ctx, "sender");
}

/* ---- GET /api/v1/messages/{id} ----------------------------------------- */

static void get_message_cb(int status, const hs_message_t *msg, void *data)
{
    call_t *call = data;
    const char *topic = call->topic_copy[0] ? call->topic_copy : NULL;
    if (status == HS_ENOTFOUND || (status == 0 && topic && strcmp(topic, msg->topic) != 0))
        hs_http_respond_error(call->req, 404, "not_found", "no message with that id%s",
                              topic ? " in that topic" : "");
    else if (status != 0)
        hs_publisher__respond_internal(call->req, "reading the message", status);
    else
        hs_http_respond_json(call->req, 200, hs_render_message(msg));
    hs_publisher__call_free(call);
}

static void get_message(hs_http_request_t *req, void *ctx)
{
    hs_publisher_t *p = ctx;
    hs_api_error_t err;
    char id[HS_ULID_LEN + 1];
    if (hs_decode_ulid(hs_http_param(req, "id"), "id", id, &err) != 0) {
        hs_publisher__respond_api_error(req, &err);
        return;
    }
    const char *topic = hs_http_query(req, "topic");
    if (topic && !hs_topic_valid(topic, strlen(topic))) {
        hs_http_respond_error(req, 400, "invalid_field",
                              "query parameter 'topic' must be 1-128 characters of A-Z a-z 0-9 "
                              ". _ : -");
        return;
    }
    call_t *call = hs_publisher__call_new(p, req, NULL);
    if (topic)
        memcpy(call->topic_copy, topic, strlen(topic) + 1);
    hs_store_get_message(p->store, id, get_message_cb, call);
}

/* ---- GET /api/v1/messages ---------------------------------------------- */

/* pruned: the page reached into history retention removed (store.h). */
static void list_messages_cb(int status, const hs_message_t *msgs, size_t count, bool pruned,
                             void *data)
{
    call_t *call = data;
    if (status != 0) {
        hs_publisher__respond_internal(call->req, "reading the history", status);
        hs_publisher__call_free(call);
        return;
    }
    /* One row more than asked was fetched: its presence means the walk goes
     * on, and "next" is the last id returned. */
    unsigned limit = call->in.history.limit;
    size_t shown = count > limit ? limit : count;
    json_t *list = json_array();
    for (size_t i = 0; i < shown; i++)
        json_array_append_new(list, hs_render_message(&msgs[i]));
    json_t *next = count > limit ? json_string(msgs[shown - 1].id) : json_null();
    json_t *page = json_pack("{s:o, s:o}", "messages", list, "next", next);
    if (pruned)
        json_object_set_new(page, "pruned", json_true());
    hs_http_respond_json(call->req, 200, page);
    hs_publisher__call_free(call);
}

static void list_messages(hs_http_request_t *req, void *ctx)
{
    hs_publisher_t *p = ctx;
    hs_api_error_t err;
    call_t *call = hs_publisher__call_new(p, req, NULL);
    if (hs_decode_history(hs_http_query(req, "topic"), hs_http_query(req, "lastID"),
                          hs_http_query(req, "limit"), hs_http_query(req, "forward"),
                          &call->in.history, &err) != 0) {
        hs_publisher__respond_api_error(req, &err);
        hs_publisher__call_free(call);
        return;
    }
    memcpy(call->topic_copy, call->in.history.topic, strlen(call->in.history.topic) + 1);
    hs_history_query_t query = call->in.history;
    query.topic = call->topic_copy;
    query.limit = call->in.history.limit + 1;
    hs_store_read_history(p->store, &query, list_messages_cb, call);
}

void hs_publisher_set_gauges(hs_publisher_t *p, hs_gauges_fn fn, void *ctx)
{
    hs_health_set_gauges(p->health, fn, ctx);
}

/* ---- life cycle -------------------------------------------------------- */

hs_publisher_t *hs_publisher_new(hs_net_t *net, hs_store_t *store, hs_bus_t *bus,
                                 const hs_config_t *cfg)
{
    hs_publisher_t *p = hs_calloc(1, sizeof(*p));
    p->store = store;
    p->bus = bus;
    p->cfg = cfg;
    p->router = hs_router_new();
    hs_router_add(p->router, HTTP_POST, "/api/v1/messages", post_messages, p);
    hs_router_add(p->router, HTTP_GET, "/api/v1/messages", list_messages, p);
    hs_router_add(p->router, HTTP_GET, "/api/v1/messages/{id}", get_message, p);
    hs_router_add(p->router, HTTP_POST, "/api/v1/publish", post_publish, p);
    hs_publisher__add_subscription_routes(p);
    hs_publisher__add_connection_routes(p);
    hs_publisher__add_batch_routes(p);
    hs_publisher__add_user_routes(p);
    p->info = hs_info_add_route(p->router, cfg);
    p->topics = hs_topics_api_new(p->router, store, cfg);
    p->deletion = hs_deletion_api_new(p->router, store, bus);
    p->health = hs_health_add_routes(p->router, store, bus);
    hs_health_add_metrics_route(p->health, p->router);
    hs_nodes_api_add_route(p->router, bus);
    hs_http_limits_t limits;
    hs_http_limits_from_config(&limits, cfg);
    p->http = hs_http_server_new(net, p->router, &limits, "publisher");
    /* Browsers (the console on the WebSocket port first) may call the API. */
    hs_http_server_set_cors(p->http, hs_cors_new(cfg->cors_origins, cfg->ws_addr));
    return p;
}

void hs_publisher_set_auth(hs_publisher_t *p, hs_auth_t *auth)
{
    hs_http_server_set_guard(p->http, hs_auth_guard_cb, auth);
}

void hs_publisher_set_site(hs_publisher_t *p, const hs_info_site_t *site)
{
    hs_info_set_site(p->info, site);
}

void hs_publisher_set_http_policy(hs_publisher_t *p, const hs_http_policy_t *policy)
{
    hs_http_server_set_policy(p->http, policy);
}

int hs_publisher_listen_also(hs_publisher_t *p, const char *addr)
{
    return hs_http_server_listen_also(p->http, addr);
}

int hs_publisher_start(hs_publisher_t *p, const char *addr)
{
    return hs_http_server_listen(p->http, addr);
}

hs_router_t *hs_publisher_router(hs_publisher_t *p)
{
    return p->router;
}

int hs_publisher_port(hs_publisher_t *p)
{
    return hs_http_server_port(p->http);
}

static void http_shutdown_cb(hs_http_server_t *server, void *data)
{
    (void)server;
    hs_publisher_t *p = data;
    if (p->shutdown_cb)
        p->shutdown_cb(p->shutdown_data);
}

void hs_publisher_shutdown(hs_publisher_t *p, void (*cb)(void *data), void *data)
{
    p->shutdown_cb = cb;
    p->shutdown_data = data;
    hs_http_server_shutdown(p->http, http_shutdown_cb, p);
}

void hs_publisher_free(hs_publisher_t *p)
{
    hs_http_server_free(p->http);
    hs_router_free(p->router);
    hs_health_free(p->health);
    hs_info_free(p->info);
    hs_topics_api_free(p->topics);
    hs_deletion_api_free(p->deletion);
    hs_free(p);
}
