/* metrics.h - counters, gauges and histograms, rendered in the Prometheus
 * text exposition format.
 *
 * One process-wide set, hs_metrics_singleton, updated on the loop thread
 * only (plain integers, no atomics on the hot path). Gauges that are a count
 * of live things (connections, subscriptions) are read from their owners
 * when rendering, through a callback, rather than kept twice.
 *
 * Every metric's name, type and help text is in one table, hs_metric_defs:
 * the exposition is rendered from it, `houston status` picks its lines from
 * it, and the docs test compares the exposition (hence the table) with
 * docs/api.md. A new metric is a field here and a row there.
 */
#ifndef HS_CORE_METRICS_H
#define HS_CORE_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

#define HS_HISTOGRAM_BUCKETS 14

typedef struct hs_histogram {
    uint64_t counts[HS_HISTOGRAM_BUCKETS]; /* per bucket, not cumulative; last is +Inf */
    uint64_t count;
    double sum; /* seconds */
} hs_histogram_t;

typedef struct hs_metrics {
    uint64_t messages_published;
    uint64_t idempotent_repeats;   /* publishes answered with an earlier message (200) */
    uint64_t messages_pruned;      /* removed from the history by retention */
    uint64_t deliveries;           /* message frames queued to subscribers */
    uint64_t notifications;        /* notification frames queued */
    uint64_t bytes_sent;           /* bytes written to sockets, both ports */
    uint64_t slow_disconnects;     /* closed with 1008 for not reading */
    uint64_t limit_refusals;       /* upgrades refused by --max-connections */
    uint64_t http_responses[600];  /* by status */
    uint64_t bus_events_acked;     /* scale-out: events acknowledged (XACK) */
    uint64_t bus_events_claimed;   /* scale-out: events taken over from a stopped consumer */
    uint64_t bus_backlog;          /* scale-out: gauge, group pending + lag */
    uint64_t bus_heartbeats;       /* scale-out: heartbeats sent by this notifier */
    uint64_t bus_reconnects;       /* scale-out: links to Redis re-established */
    uint64_t duplicates_dropped;   /* scale-out: redelivered messages not delivered again */
    uint64_t stream_gaps;          /* scale-out: losses in a Redis stream (recovery.md) */
    uint64_t partitions_held;      /* scale-out: gauge, event log partitions this consumer holds */
    uint64_t partition_takeovers;  /* scale-out: partition leases this consumer took */
    uint64_t stale_deliveries;     /* scale-out: deliveries of a stale partition holder dropped */
    uint64_t live_gaps;            /* a topic's message came before its predecessor: held */
    uint64_t live_gap_fills;       /* gaps filled from the store */
    uint64_t live_gap_closes;      /* gaps not filled: subscribers closed with 1001 */
    hs_histogram_t publish_commit; /* request received -> message committed */
    hs_histogram_t publish_to_socket; /* message created -> frame queued on the sockets */
    uint64_t resumes;                 /* connections resumed by token (?resume=) */
} hs_metrics_t;

/* The process's metrics. */
extern hs_metrics_t hs_metrics_singleton;

void hs_histogram_observe(hs_histogram_t *h, double seconds);

/* Gauges read at render time. */
typedef struct hs_metrics_gauges {
    uint64_t connections;
    uint64_t subscriptions;
    uint64_t topics;
} hs_metrics_gauges_t;

/* Where a metric's value is read from. */
typedef enum hs_metric_source {
    HS_METRIC_COUNTERS,  /* a uint64_t of hs_metrics_t, at offset */
    HS_METRIC_GAUGES,    /* a uint64_t of hs_metrics_gauges_t, at offset */
    HS_METRIC_HISTOGRAM, /* an hs_histogram_t of hs_metrics_t, at offset */
    HS_METRIC_BY_STATUS, /* hs_metrics_t.http_responses, one sample per status seen */
} hs_metric_source_t;

/* One metric: the one place its name is written. */
typedef struct hs_metric_def {
    const char *name; /* Prometheus name, without the _bucket/_sum/_count of a histogram */
    const char *type; /* "gauge", "counter" or "histogram" */
    const char *help; /* the # HELP text */
    hs_metric_source_t source;
    size_t offset;
    const char *status_label; /* `houston status` shows it under this label; NULL: not shown */
} hs_metric_def_t;

/* Every metric, in the order of the exposition. */
extern const hs_metric_def_t hs_metric_defs[];
extern const size_t hs_metric_def_count;

/* The whole exposition text. */
hs_buf_t *hs_metrics_render(const hs_metrics_t *m, const hs_metrics_gauges_t *gauges);

/* The same numbers as one JSON object (GET /api/v1/stats, docs/api.md):
 * {"at":<unix ms>,"metrics":{<name>:<value>,…}} where a counter or gauge is
 * a number, houston_http_responses_total an object by status, and a
 * histogram {"le":[bounds…],"buckets":[cumulative counts…, the last +Inf],
 * "sum":s,"count":n}. Names are the exposition's; at is now_ms. */
hs_buf_t *hs_metrics_render_json(const hs_metrics_t *m, const hs_metrics_gauges_t *gauges,
                                 uint64_t now_ms);

#endif
