/* topics_api.c - GET /api/v1/topics, GET and PUT /api/v1/topics/{topic}:
 * a topic's counts and retention, the listing, a topic's own retention.
 * Apart from publisher.c, which is messages, subscriptions and
 * connections. */
#include "roles/topics_api.h"

#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/log.h"
#include "roles/decode.h"
#include "roles/render.h"

struct hs_topics_api {
    hs_store_t *store;
    const hs_config_t *cfg;
};

typedef struct topic_call {
    hs_topics_api_t *api;
    hs_http_request_t *req;
    unsigned limit;
    char topic[HS_TOPIC_MAX + 1];
} topic_call_t;

static topic_call_t *call_new(hs_topics_api_t *api, hs_http_request_t *req)
{
    topic_call_t *call = hs_calloc(1, sizeof(*call));
    call->api = api;
    call->req = req;
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

static json_t *render(const hs_topics_api_t *api, const hs_topic_info_t *topic)
{
    return hs_render_topic(topic, api->cfg->retention_age_ms, api->cfg->retention_count);
}

/* The {topic} of the path into call->topic, or 400 (and NULL). */
static topic_call_t *topic_call(hs_topics_api_t *api, hs_http_request_t *req)
{
    const char *topic = hs_http_param(req, "topic");
    if (topic == NULL || !hs_topic_valid(topic, strlen(topic))) {
        hs_http_respond_error(req, 400, "invalid_field",
                              "the topic in the path must be 1-128 characters of A-Z a-z 0-9 . _ "
                              ": -");
        return NULL;
    }
    topic_call_t *call = call_new(api, req);
    memcpy(call->topic, topic, strlen(topic) + 1);
    return call;
}

/* ---- GET /api/v1/topics/{topic} ----------------------------------------- */

static void topic_got_cb(int status, const hs_topic_info_t *topic, void *data)
{
    topic_call_t *call = data;
    if (status == HS_ENOTFOUND)
        hs_http_respond_error(call->req, 404, "not_found",
                              "topic %s has no messages, no subscribers and no settings",
                              call->topic);
    else if (status != 0)
        respond_failed(call->req, "reading the topic", status);
    else
        hs_http_respond_json(call->req, 200, render(call->api, topic));
    hs_free(call);
}

static void get_topic(hs_http_request_t *req, void *ctx)
{
    topic_call_t *call = topic_call(ctx, req);
    if (call)
        hs_store_get_topic(call->api->store, call->topic, topic_got_cb, call);
}

/* ---- PUT /api/v1/topics/{topic} ----------------------------------------- */

static void topic_set_cb(int status, void *data)
{
    topic_call_t *call = data;
    if (status != 0) {
        respond_failed(call->req, "storing the topic's settings", status);
        hs_free(call);
        return;
    }
    hs_log_info("publisher: %s set the retention of topic %s", hs_http_request_id(call->req),
                call->topic);
    /* The reader runs after the commit: it sees the new settings. */
    hs_store_get_topic(call->api->store, call->topic, topic_got_cb, call);
}

static void put_topic(hs_http_request_t *req, void *ctx)
{
    hs_topics_api_t *api = ctx;
    size_t len, type_len = 0;
    const char *body = hs_http_body(req, &len);
    const char *type = hs_http_header(req, "content-type", &type_len);
    if (!hs_content_type_is_json(type, type_len)) {
        hs_http_respond_error(req, 415, "unsupported_media_type",
                              "request body must be JSON (Content-Type: application/json)");
        return;
    }
    hs_api_error_t err;
    json_t *obj;
    hs_topic_settings_t settings;
    if (hs_decode_body(body, len, &obj, &err) != 0) {
        hs_http_respond_error(req, err.status, err.code, "%s", err.message);
        return;
    }
    int rc = hs_decode_topic_settings(obj, &settings, &err);
    json_decref(obj);
    if (rc != 0) {
        hs_http_respond_error(req, err.status, err.code, "%s", err.message);
        return;
    }
    topic_call_t *call = topic_call(api, req);
    if (call)
        hs_store_set_topic(api->store, call->topic, &settings, topic_set_cb, call);
}

/* ---- GET /api/v1/topics ------------------------------------------------- */

static void topics_listed_cb(int status, const hs_topic_info_t *topics, size_t count, void *data)
{
    topic_call_t *call = data;
    if (status != 0) {
        respond_failed(call->req, "listing the topics", status);
        hs_free(call);
        return;
    }
    /* One more than asked was read: its presence means there is more, and
     * "next" is the last topic shown. */
    size_t shown = count > call->limit ? call->limit : count;
    json_t *list = json_array();
    for (size_t i = 0; i < shown; i++)
        json_array_append_new(list, render(call->api, &topics[i]));
    json_t *next = count > call->limit ? json_string(topics[shown - 1].topic) : json_null();
    hs_http_respond_json(call->req, 200, json_pack("{s:o, s:o}", "topics", list, "next", next));
    hs_free(call);
}

static void list_topics(hs_http_request_t *req, void *ctx)
{
    hs_topics_api_t *api = ctx;
    hs_topics_query_t q;
    hs_api_error_t err;
    if (hs_decode_topics_query(hs_http_query(req, "prefix"), hs_http_query(req, "after"),
                               hs_http_query(req, "limit"), &q, &err) != 0) {
        hs_http_respond_error(req, err.status, err.code, "%s", err.message);
        return;
    }
    topic_call_t *call = call_new(api, req);
    call->limit = q.limit;
    hs_store_list_topics(api->store, q.prefix, q.after, q.limit + 1, topics_listed_cb, call);
}

hs_topics_api_t *hs_topics_api_new(hs_router_t *router, hs_store_t *store, const hs_config_t *cfg)
{
    hs_topics_api_t *api = hs_calloc(1, sizeof(*api));
    api->store = store;
    api->cfg = cfg;
    hs_router_add(router, HTTP_GET, "/api/v1/topics", list_topics, api);
    hs_router_add(router, HTTP_GET, "/api/v1/topics/{topic}", get_topic, api);
    hs_router_add(router, HTTP_PUT, "/api/v1/topics/{topic}", put_topic, api);
    return api;
}

void hs_topics_api_free(hs_topics_api_t *api)
{
    hs_free(api);
}
