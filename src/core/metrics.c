#include "core/metrics.h"

#include <stdarg.h>
#include <stdio.h>

hs_metrics_t hs_metrics_singleton;

/* Upper bounds in seconds; the last bucket is +Inf. */
static const double bounds[HS_HISTOGRAM_BUCKETS - 1] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5};

void hs_histogram_observe(hs_histogram_t *h, double seconds)
{
    size_t i = 0;
    while (i < HS_HISTOGRAM_BUCKETS - 1 && seconds > bounds[i])
        i++;
    h->counts[i]++;
    h->count++;
    h->sum += seconds;
}

static hs_buf_t *appendf(hs_buf_t *buf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static hs_buf_t *appendf(hs_buf_t *buf, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0)
        return buf;
    if ((size_t)n >= sizeof(line))
        n = sizeof(line) - 1;
    return hs_buf_append(buf, line, (size_t)n);
}

static hs_buf_t *metric(hs_buf_t *buf, const char *name, const char *type, const char *help,
                        uint64_t value)
{
    buf = appendf(buf, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
    return appendf(buf, "%s %llu\n", name, (unsigned long long)value);
}

static hs_buf_t *histogram(hs_buf_t *buf, const char *name, const char *help,
                           const hs_histogram_t *h)
{
    buf = appendf(buf, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t cumulative = 0;
    for (size_t i = 0; i < HS_HISTOGRAM_BUCKETS; i++) {
        cumulative += h->counts[i];
        if (i < HS_HISTOGRAM_BUCKETS - 1)
            buf = appendf(buf, "%s_bucket{le=\"%g\"} %llu\n", name, bounds[i],
                          (unsigned long long)cumulative);
        else
            buf =
                appendf(buf, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cumulative);
    }
    buf = appendf(buf, "%s_sum %.6f\n", name, h->sum);
    return appendf(buf, "%s_count %llu\n", name, (unsigned long long)h->count);
}

hs_buf_t *hs_metrics_render(const hs_metrics_t *m, const hs_metrics_gauges_t *g)
{
    hs_buf_t *buf = hs_buf_new(4096);
    buf =
        metric(buf, "houston_connections", "gauge", "WebSocket connections open.", g->connections);
    buf = metric(buf, "houston_subscriptions", "gauge", "Subscriptions of open connections.",
                 g->subscriptions);
    buf = metric(buf, "houston_topics", "gauge", "Topics with at least one subscriber.", g->topics);
    buf = metric(buf, "houston_messages_published_total", "counter",
                 "Messages committed and announced.", m->messages_published);
    buf = metric(buf, "houston_idempotent_repeats_total", "counter",
                 "Publishes repeated with a known Idempotency-Key, answered with the original.",
                 m->idempotent_repeats);
    buf = metric(buf, "houston_deliveries_total", "counter",
                 "Message frames queued to subscribers.", m->deliveries);
    buf = metric(buf, "houston_notifications_total", "counter",
                 "Notification frames queued to connections.", m->notifications);
    buf = metric(buf, "houston_bytes_sent_total", "counter", "Bytes written to sockets.",
                 m->bytes_sent);
    buf = metric(buf, "houston_slow_client_disconnects_total", "counter",
                 "Connections closed with 1008 for not reading.", m->slow_disconnects);
    buf = metric(buf, "houston_limit_refusals_total", "counter",
                 "WebSocket upgrades refused by the connection limit.", m->limit_refusals);
    buf = metric(buf, "houston_bus_events_acked_total", "counter",
                 "Scale-out: events acknowledged by this consumer after the hand-off.",
                 m->bus_events_acked);
    buf =
        metric(buf, "houston_bus_events_claimed_total", "counter",
               "Scale-out: events taken over from a consumer that stopped.", m->bus_events_claimed);
    buf = metric(buf, "houston_bus_stream_backlog", "gauge",
                 "Scale-out: events not yet acknowledged by the consumer group (pending + lag), "
                 "as a consumer last read it.",
                 m->bus_backlog);
    buf = metric(buf, "houston_bus_heartbeats_total", "counter",
                 "Scale-out: heartbeats sent by this notifier.", m->bus_heartbeats);
    buf = metric(buf, "houston_bus_reconnects_total", "counter",
                 "Scale-out: connections to Redis re-established after a loss.", m->bus_reconnects);
    buf = metric(buf, "houston_duplicates_dropped_total", "counter",
                 "Scale-out: redelivered messages a notifier did not deliver again.",
                 m->duplicates_dropped);
    buf = metric(buf, "houston_stream_gaps_total", "counter",
                 "Scale-out: entries lost in a Redis stream (trimmed before they were read, or "
                 "Redis lost its data): found by a consumer, or acted on by a notifier, which "
                 "closes its connections with 1001 so that they resume.",
                 m->stream_gaps);
    buf = appendf(buf, "# HELP houston_http_responses_total HTTP responses by status.\n"
                       "# TYPE houston_http_responses_total counter\n");
    for (int status = 100; status < 600; status++)
        if (m->http_responses[status])
            buf = appendf(buf, "houston_http_responses_total{status=\"%d\"} %llu\n", status,
                          (unsigned long long)m->http_responses[status]);
    buf = histogram(buf, "houston_publish_commit_seconds",
                    "From a publish request to its message being committed.", &m->publish_commit);
    buf = histogram(buf, "houston_publish_to_socket_seconds",
                    "From a message's creation to its frame being queued on the sockets.",
                    &m->publish_to_socket);
    return buf;
}
