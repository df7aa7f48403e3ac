/* nodes_api.c - GET /api/v1/nodes: the bus's read of the deployment
 * (hs_bus_deployment) as JSON. */
#include "roles/nodes_api.h"

#include <jansson.h>

#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"

static void deployment_cb(int status, const hs_bus_deployment_t *d, void *data)
{
    hs_http_request_t *req = data;
    if (status != 0) {
        hs_log_warn("publisher: %s reading the deployment failed: %s", hs_http_request_id(req),
                    hs_strerror(status));
        if (status == HS_EUNAVAIL)
            hs_http_respond_error(req, 503, "unavailable",
                                  "the message bus is unreachable (Redis does not answer); retry "
                                  "later");
        else
            hs_http_respond_error(req, 503, "unavailable",
                                  "reading the deployment from Redis failed (%s); retry later",
                                  hs_strerror(status));
        return;
    }
    json_t *notifiers = json_array();
    for (size_t i = 0; i < d->notifier_count; i++) {
        const hs_bus_notifier_status_t *n = &d->notifiers[i];
        char at[HS_RFC3339_MS_LEN + 1];
        if (n->beat_ms)
            hs_format_rfc3339_ms(n->beat_ms, at);
        bool expired = n->beat_age_ms < 0;
        json_array_append_new(
            notifiers,
            json_pack("{s:s, s:I, s:I, s:o, s:o, s:o, s:b}", "node", n->node, "connections",
                      (json_int_t)n->connections, "deliveries", (json_int_t)n->deliveries,
                      "heartbeatAt", n->beat_ms ? json_string(at) : json_null(), "heartbeatAgeMs",
                      expired ? json_null() : json_integer(n->beat_age_ms), "heartbeatMs",
                      n->interval_ms ? json_integer((json_int_t)n->interval_ms) : json_null(),
                      "late", expired));
    }
    json_t *consumers = json_array();
    for (size_t i = 0; i < d->consumer_count; i++) {
        json_t *parts = json_array();
        for (size_t p = 0; p < d->consumers[i].count; p++)
            json_array_append_new(parts, json_integer(d->consumers[i].partitions[p]));
        json_array_append_new(consumers, json_pack("{s:s, s:o}", "consumer",
                                                   d->consumers[i].consumer, "partitions", parts));
    }
    hs_http_respond_json(req, 200,
                         json_pack("{s:I, s:s, s:I, s:o, s:o}", "at", (json_int_t)hs_now_ms(),
                                   "mode", "scale-out", "partitions", (json_int_t)d->partitions,
                                   "notifiers", notifiers, "consumers", consumers));
}

static void get_nodes(hs_http_request_t *req, void *ctx)
{
    hs_bus_t *bus = ctx;
    if (!hs_bus_has_deployment(bus)) {
        hs_http_respond_json(req, 200,
                             json_pack("{s:I, s:s, s:i, s:[], s:[]}", "at", (json_int_t)hs_now_ms(),
                                       "mode", "embedded", "partitions", 0, "notifiers",
                                       "consumers"));
        return;
    }
    hs_bus_deployment(bus, deployment_cb, req);
}

void hs_nodes_api_add_route(hs_router_t *router, hs_bus_t *bus)
{
    hs_router_add(router, HTTP_GET, "/api/v1/nodes", get_nodes, bus);
}
