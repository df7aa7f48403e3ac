/* metrics.c - the process's counters and histograms, the table of every
 * metric's name, and their Prometheus text exposition. */
#include "core/metrics.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
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

#define COUNTER(field) HS_METRIC_COUNTERS, offsetof(hs_metrics_t, field)
#define GAUGE(field)   HS_METRIC_GAUGES, offsetof(hs_metrics_gauges_t, field)
#define HIST(field)    HS_METRIC_HISTOGRAM, offsetof(hs_metrics_t, field)

const hs_metric_def_t hs_metric_defs[] = {
    {"houston_connections", "gauge", "WebSocket connections open.", GAUGE(connections),
     "WebSocket connections"},
    {"houston_subscriptions", "gauge", "Subscriptions of open connections.", GAUGE(subscriptions),
     "subscriptions"},
    {"houston_topics", "gauge", "Topics with at least one subscriber.", GAUGE(topics),
     "topics with subscribers"},
    {"houston_messages_published_total", "counter", "Messages committed and announced.",
     COUNTER(messages_published), "messages published"},
    {"houston_idempotent_repeats_total", "counter",
     "Publishes repeated with a known Idempotency-Key, answered with the original.",
     COUNTER(idempotent_repeats), NULL},
    {"houston_messages_pruned_total", "counter",
     "Messages removed from the history by retention (--retention-age, --retention-count, a "
     "topic's own).",
     COUNTER(messages_pruned), NULL},
    {"houston_deliveries_total", "counter", "Message frames queued to subscribers.",
     COUNTER(deliveries), "deliveries"},
    {"houston_notifications_total", "counter", "Notification frames queued to connections.",
     COUNTER(notifications), NULL},
    {"houston_bytes_sent_total", "counter", "Bytes written to sockets.", COUNTER(bytes_sent),
     "bytes sent"},
    {"houston_slow_client_disconnects_total", "counter",
     "Connections closed with 1008 for not reading.", COUNTER(slow_disconnects), NULL},
    {"houston_limit_refusals_total", "counter",
     "WebSocket upgrades refused by the connection limit.", COUNTER(limit_refusals), NULL},
    {"houston_bus_events_acked_total", "counter",
     "Scale-out: events acknowledged by this consumer after the hand-off.",
     COUNTER(bus_events_acked), NULL},
    {"houston_bus_events_claimed_total", "counter",
     "Scale-out: events taken over from a consumer that stopped.", COUNTER(bus_events_claimed),
     NULL},
    /* A gauge kept by the consumer, not read from an owner. */
    {"houston_bus_stream_backlog", "gauge",
     "Scale-out: events not yet acknowledged by the consumer group (pending + lag), "
     "as a consumer last read it.",
     COUNTER(bus_backlog), NULL},
    {"houston_bus_heartbeats_total", "counter", "Scale-out: heartbeats sent by this notifier.",
     COUNTER(bus_heartbeats), NULL},
    {"houston_bus_reconnects_total", "counter",
     "Scale-out: connections to Redis re-established after a loss.", COUNTER(bus_reconnects), NULL},
    {"houston_duplicates_dropped_total", "counter",
     "Scale-out: redelivered messages a notifier did not deliver again.",
     COUNTER(duplicates_dropped), NULL},
    {"houston_stream_gaps_total", "counter",
     "Scale-out: entries lost in a Redis stream (trimmed before they were read, or "
     "Redis lost its data): found by a consumer, or acted on by a notifier, which "
     "closes its connections with 1001 so that they resume.",
     COUNTER(stream_gaps), NULL},
    {"houston_partitions_held", "gauge",
     "Scale-out: partitions of the event log this consumer holds (reads and hands on).",
     COUNTER(partitions_held), NULL},
    {"houston_partition_takeovers_total", "counter",
     "Scale-out: partition leases this consumer took (free, given back, or expired: a "
     "consumer that stopped).",
     COUNTER(partition_takeovers), NULL},
    {"houston_stale_deliveries_total", "counter",
     "Scale-out: deliveries a notifier dropped because they came from a consumer whose "
     "partition lease had passed to another (lower fencing token).",
     COUNTER(stale_deliveries), NULL},
    {"houston_live_gaps_total", "counter",
     "Live messages of a topic that reached a notifier before their predecessor and were held "
     "(docs/scaling.md, \"Live order\"); 0 in the embedded mode.",
     COUNTER(live_gaps), NULL},
    {"houston_live_gap_fills_total", "counter",
     "Gaps in a topic's live messages filled from the store after the hold.",
     COUNTER(live_gap_fills), NULL},
    {"houston_live_gap_closes_total", "counter",
     "Gaps in a topic's live messages not filled (store unavailable, gap or hold too long): "
     "the topic's subscribers on that notifier were closed with 1001 and resume.",
     COUNTER(live_gap_closes), NULL},
    {"houston_http_responses_total", "counter", "HTTP responses by status.", HS_METRIC_BY_STATUS,
     offsetof(hs_metrics_t, http_responses), NULL},
    {"houston_publish_commit_seconds", "histogram",
     "From a publish request to its message being committed.", HIST(publish_commit), NULL},
    {"houston_publish_to_socket_seconds", "histogram",
     "From a message's creation to its frame being queued on the sockets.", HIST(publish_to_socket),
     NULL},
    {"houston_resumes_total", "counter",
     "Connections resumed by token (?resume=) within the resume window.", COUNTER(resumes), NULL},
};

const size_t hs_metric_def_count = sizeof(hs_metric_defs) / sizeof(hs_metric_defs[0]);

static hs_buf_t *by_status(hs_buf_t *buf, const hs_metric_def_t *def, const hs_metrics_t *m)
{
    buf = appendf(buf, "# HELP %s %s\n# TYPE %s %s\n", def->name, def->help, def->name, def->type);
    for (int status = 100; status < 600; status++)
        if (m->http_responses[status])
            buf = appendf(buf, "%s{status=\"%d\"} %llu\n", def->name, status,
                          (unsigned long long)m->http_responses[status]);
    return buf;
}

hs_buf_t *hs_metrics_render(const hs_metrics_t *m, const hs_metrics_gauges_t *g)
{
    hs_buf_t *buf = hs_buf_new(4096);
    for (size_t i = 0; i < hs_metric_def_count; i++) {
        const hs_metric_def_t *def = &hs_metric_defs[i];
        switch (def->source) {
        case HS_METRIC_COUNTERS:
            buf = metric(buf, def->name, def->type, def->help,
                         *(const uint64_t *)((const char *)m + def->offset));
            break;
        case HS_METRIC_GAUGES:
            buf = metric(buf, def->name, def->type, def->help,
                         *(const uint64_t *)((const char *)g + def->offset));
            break;
        case HS_METRIC_HISTOGRAM:
            buf = histogram(buf, def->name, def->help,
                            (const hs_histogram_t *)((const char *)m + def->offset));
            break;
        case HS_METRIC_BY_STATUS:
            buf = by_status(buf, def, m);
            break;
        }
    }
    return buf;
}

/* ---- the JSON twin ------------------------------------------------------- */

static hs_buf_t *json_histogram(hs_buf_t *buf, const hs_histogram_t *h)
{
    buf = hs_buf_append(buf, "{\"le\":[", 7);
    for (size_t i = 0; i < HS_HISTOGRAM_BUCKETS - 1; i++)
        buf = appendf(buf, "%s%g", i ? "," : "", bounds[i]);
    buf = hs_buf_append(buf, "],\"buckets\":[", 13);
    uint64_t cumulative = 0;
    for (size_t i = 0; i < HS_HISTOGRAM_BUCKETS; i++) {
        cumulative += h->counts[i];
        buf = appendf(buf, "%s%llu", i ? "," : "", (unsigned long long)cumulative);
    }
    return appendf(buf, "],\"sum\":%.6f,\"count\":%llu}", h->sum, (unsigned long long)h->count);
}

hs_buf_t *hs_metrics_render_json(const hs_metrics_t *m, const hs_metrics_gauges_t *g,
                                 uint64_t now_ms)
{
    hs_buf_t *buf = hs_buf_new(2048);
    buf = appendf(buf, "{\"at\":%llu,\"metrics\":{", (unsigned long long)now_ms);
    for (size_t i = 0; i < hs_metric_def_count; i++) {
        const hs_metric_def_t *def = &hs_metric_defs[i];
        /* Names are [a-z_] (the table's): no escaping needed. */
        buf = appendf(buf, "%s\"%s\":", i ? "," : "", def->name);
        switch (def->source) {
        case HS_METRIC_COUNTERS:
            buf = appendf(buf, "%llu",
                          (unsigned long long)*(const uint64_t *)((const char *)m + def->offset));
            break;
        case HS_METRIC_GAUGES:
            buf = appendf(buf, "%llu",
                          (unsigned long long)*(const uint64_t *)((const char *)g + def->offset));
            break;
        case HS_METRIC_HISTOGRAM:
            buf = json_histogram(buf, (const hs_histogram_t *)((const char *)m + def->offset));
            break;
        case HS_METRIC_BY_STATUS: {
            bool first = true;
            buf = hs_buf_append(buf, "{", 1);
            for (int status = 100; status < 600; status++)
                if (m->http_responses[status]) {
                    buf = appendf(buf, "%s\"%d\":%llu", first ? "" : ",", status,
                                  (unsigned long long)m->http_responses[status]);
                    first = false;
                }
            buf = hs_buf_append(buf, "}", 1);
            break;
        }
        }
    }
    return hs_buf_append(buf, "}}", 2);
}
