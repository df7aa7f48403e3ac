/* deletion_api.c - DELETE /api/v1/messages/{id}?topic=T and DELETE
 * /api/v1/topics/{topic}: the store removes, the bus announces (a
 * "deleted" event in the topic's partition, after the topic's earlier
 * messages; the notifiers pass the frame on), the log audits who removed
 * what. Apart from publisher.c (publishing, history) and topics_api.c
 * (reading and setting topics). */
#include "roles/deletion_api.h"

#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/log.h"
#include "core/ulid.h"
#include "roles/auth.h"
#include "roles/decode.h"
#include "roles/render.h"

struct hs_deletion_api {
    hs_store_t *store;
    hs_bus_t *bus;
};

typedef struct deletion_call {
    hs_deletion_api_t *api;
    hs_http_request_t *req;
    char topic[HS_TOPIC_MAX + 1];
    char id[HS_ULID_LEN + 1]; /* "" for a topic */
    char who[128];            /* request id, client address, key fingerprint */
} deletion_call_t;

static deletion_call_t *call_new(hs_deletion_api_t *api, hs_http_request_t *req, const char *topic)
{
    deletion_call_t *call = hs_calloc(1, sizeof(*call));
    call->api = api;
    call->req = req;
    snprintf(call->topic, sizeof(call->topic), "%s", topic);
    char key[HS_AUTH_FINGERPRINT_LEN + 1];
    hs_auth_key_fingerprint(req, key);
    const char *addr = hs_http_client_addr(req);
    snprintf(call->who, sizeof(call->who), "%s from %s (API key %s)", hs_http_request_id(req),
             addr && addr[0] ? addr : "?", key);
    return call;
}

static void respond_failed(hs_http_request_t *req, const char *what, int status)
{
    hs_log_error("publisher: %s %s failed: %s", hs_http_request_id(req), what, hs_strerror(status));
    if (status == HS_EUNAVAIL)
        hs_http_respond_error(req, 503, "unavailable",
                              "%s failed: the database is unreachable; retry later", what);
    else
        hs_http_respond_error(req, 500, "internal", "%s failed; nothing was changed", what);
}

/* The deletion is committed: its frame goes to the topic's subscribers on
 * every notifier, through the topic's partition like its messages. */
static void announce_cb(int status, void *data)
{
    char *topic = data;
    if (status != 0)
        hs_log_warn("publisher: announcing a deletion in %s failed: %s (connected subscribers "
                    "are not told; the history is without it)",
                    topic, hs_strerror(status));
    hs_free(topic);
}

static void announce(hs_deletion_api_t *api, const char *topic, const char *id)
{
    json_t *frame = id[0]
                        ? json_pack("{s:s, s:s, s:s}", "type", "deleted", "topic", topic, "id", id)
                        : json_pack("{s:s, s:s}", "type", "deleted", "topic", topic);
    size_t len;
    char *text = hs_render_text(frame, &len);
    json_decref(frame);
    hs_event_t event = {.topic = topic,
                        .message_id = id,
                        .message_json = text,
                        .message_json_len = len,
                        .kind = HS_EVENT_DELETED};
    hs_bus_publish_event(api->bus, &event, announce_cb, hs_strdup(topic));
    free(text);
}

/* In the scale-out mode a deletion is only made while it can be announced:
 * with Redis away the subscribers would keep what they were sent without
 * ever hearing of it. */
static bool bus_ready_or_503(hs_deletion_api_t *api, hs_http_request_t *req)
{
    if (hs_bus_ready(api->bus))
        return true;
    hs_http_respond_error(req, 503, "unavailable",
                          "the message bus (Redis) is unreachable; retry later");
    return false;
}

/* ---- DELETE /api/v1/messages/{id}?topic=T ------------------------------- */

static void message_deleted_cb(int status, void *data)
{
    deletion_call_t *call = data;
    if (status == HS_ENOTFOUND) {
        hs_http_respond_error(call->req, 404, "not_found", "no message %s in topic %s", call->id,
                              call->topic);
    } else if (status != 0) {
        respond_failed(call->req, "deleting the message", status);
    } else {
        hs_log_info("audit: %s deleted message %s of topic %s", call->who, call->id, call->topic);
        announce(call->api, call->topic, call->id);
        hs_http_respond_empty(call->req, 204);
    }
    hs_free(call);
}

static void delete_message(hs_http_request_t *req, void *ctx)
{
    hs_deletion_api_t *api = ctx;
    hs_api_error_t err;
    char id[HS_ULID_LEN + 1];
    if (hs_decode_ulid(hs_http_param(req, "id"), "id", id, &err) != 0) {
        hs_http_respond_error(req, err.status, err.code, "%s", err.message);
        return;
    }
    const char *topic = hs_http_query(req, "topic");
    if (topic == NULL || topic[0] == '\0') {
        hs_http_respond_error(req, 400, "missing_field",
                              "query parameter 'topic' is required: the topic of the message");
        return;
    }
    if (!hs_topic_valid(topic, strlen(topic))) {
        hs_http_respond_error(req, 400, "invalid_field",
                              "query parameter 'topic' must be 1-128 characters of A-Z a-z 0-9 "
                              ". _ : -");
        return;
    }
    if (!bus_ready_or_503(api, req))
        return;
    deletion_call_t *call = call_new(api, req, topic);
    memcpy(call->id, id, sizeof(call->id));
    hs_store_delete_message(api->store, call->topic, call->id, message_deleted_cb, call);
}

/* ---- DELETE /api/v1/topics/{topic} -------------------------------------- */

static void topic_deleted_cb(int status, const hs_topic_deletion_t *removed, void *data)
{
    deletion_call_t *call = data;
    if (status == HS_ENOTFOUND) {
        hs_http_respond_error(call->req, 404, "not_found",
                              "topic %s has no messages, no subscribers and no settings",
                              call->topic);
    } else if (status != 0) {
        /* A step after the first failed: what it removed stays removed. */
        respond_failed(call->req, "deleting the topic", status);
    } else {
        hs_log_info("audit: %s deleted topic %s: %llu messages (up to %s), %llu subscriptions, "
                    "%s",
                    call->who, call->topic, (unsigned long long)removed->messages,
                    removed->last_id ? removed->last_id : "none",
                    (unsigned long long)removed->subscriptions,
                    removed->settings ? "its retention settings" : "no settings of its own");
        announce(call->api, call->topic, "");
        hs_http_respond_empty(call->req, 204);
    }
    hs_free(call);
}

static void delete_topic(hs_http_request_t *req, void *ctx)
{
    hs_deletion_api_t *api = ctx;
    const char *topic = hs_http_param(req, "topic");
    if (topic == NULL || !hs_topic_valid(topic, strlen(topic))) {
        hs_http_respond_error(req, 400, "invalid_field",
                              "the topic in the path must be 1-128 characters of A-Z a-z 0-9 . _ "
                              ": -");
        return;
    }
    if (!bus_ready_or_503(api, req))
        return;
    deletion_call_t *call = call_new(api, req, topic);
    hs_store_delete_topic(api->store, call->topic, topic_deleted_cb, call);
}

hs_deletion_api_t *hs_deletion_api_new(hs_router_t *router, hs_store_t *store, hs_bus_t *bus)
{
    hs_deletion_api_t *api = hs_calloc(1, sizeof(*api));
    api->store = store;
    api->bus = bus;
    hs_router_add(router, HTTP_DELETE, "/api/v1/messages/{id}", delete_message, api);
    hs_router_add(router, HTTP_DELETE, "/api/v1/topics/{topic}", delete_topic, api);
    return api;
}

void hs_deletion_api_free(hs_deletion_api_t *api)
{
    hs_free(api);
}
