#include "roles/health.h"

#include "core/alloc.h"
#include "core/clock.h"
#include "core/error.h"

struct hs_health {
    hs_store_t *store;
    hs_bus_t *bus;
    hs_gauges_fn gauges;
    void *gauges_ctx;
};

typedef struct probe {
    hs_health_t *health;
    hs_http_request_t *req;
} probe_t;

/* A ULID no message or connection has: the probes expect "not found". */
static const char probe_id[] = "00000000000000000000000000";

static void healthz(hs_http_request_t *req, void *ctx)
{
    (void)ctx;
    hs_http_respond_json(req, 200, json_pack("{s:s}", "status", "ok"));
}

static void bus_probed_cb(int status, const char *node, void *data)
{
    (void)node;
    probe_t *probe = data;
    if (status == 0 || status == HS_ENOTFOUND)
        hs_http_respond_json(probe->req, 200, json_pack("{s:s}", "status", "ready"));
    else
        hs_http_respond_error(probe->req, 503, "unavailable", "the message bus is unreachable (%s)",
                              status == HS_EUNAVAIL ? "Redis does not answer"
                                                    : hs_strerror(status));
    hs_free(probe);
}

static void store_probed_cb(int status, const hs_message_t *msg, void *data)
{
    (void)msg;
    probe_t *probe = data;
    if (status != 0 && status != HS_ENOTFOUND) {
        hs_http_respond_error(probe->req, 503, "unavailable", "the store is unreachable (%s)",
                              status == HS_EUNAVAIL ? "the database does not answer"
                                                    : hs_strerror(status));
        hs_free(probe);
        return;
    }
    hs_bus_locate_connection(probe->health->bus, probe_id, bus_probed_cb, probe);
}

static void readyz(hs_http_request_t *req, void *ctx)
{
    probe_t *probe = hs_malloc(sizeof(*probe));
    probe->health = ctx;
    probe->req = req;
    if (probe->health->store)
        hs_store_get_message(probe->health->store, probe_id, store_probed_cb, probe);
    else /* a consumer has no store */
        hs_bus_locate_connection(probe->health->bus, probe_id, bus_probed_cb, probe);
}

hs_health_t *hs_health_add_routes(hs_router_t *router, hs_store_t *store, hs_bus_t *bus)
{
    hs_health_t *health = hs_calloc(1, sizeof(*health));
    health->store = store;
    health->bus = bus;
    hs_router_add(router, HTTP_GET, "/healthz", healthz, health);
    hs_router_add(router, HTTP_GET, "/readyz", readyz, health);
    return health;
}

void hs_health_free(hs_health_t *health)
{
    hs_free(health);
}

static void get_metrics(hs_http_request_t *req, void *ctx)
{
    hs_health_t *health = ctx;
    hs_metrics_gauges_t gauges = {0};
    if (health->gauges)
        health->gauges(health->gauges_ctx, &gauges);
    hs_buf_t *text = hs_metrics_render(&hs_metrics_singleton, &gauges);
    hs_http_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", NULL, text->data,
                    text->len);
    hs_buf_unref(text);
}

/* The JSON twin of /metrics, for the console's Operations tab: the same
 * numbers from the same table, one object, no parsing of the text. */
static void get_stats(hs_http_request_t *req, void *ctx)
{
    hs_health_t *health = ctx;
    hs_metrics_gauges_t gauges = {0};
    if (health->gauges)
        health->gauges(health->gauges_ctx, &gauges);
    hs_buf_t *text = hs_metrics_render_json(&hs_metrics_singleton, &gauges, hs_now_ms());
    hs_http_respond(req, 200, "application/json", "Cache-Control: no-store\r\n", text->data,
                    text->len);
    hs_buf_unref(text);
}

void hs_health_set_gauges(hs_health_t *health, hs_gauges_fn fn, void *ctx)
{
    health->gauges = fn;
    health->gauges_ctx = ctx;
}

void hs_health_add_metrics_route(hs_health_t *health, hs_router_t *router)
{
    hs_router_add(router, HTTP_GET, "/metrics", get_metrics, health);
    hs_router_add(router, HTTP_GET, "/api/v1/stats", get_stats, health);
}
