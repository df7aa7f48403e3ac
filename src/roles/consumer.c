#include "roles/consumer.h"

#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/log.h"

struct hs_consumer {
    hs_bus_t *bus;
    size_t in_flight;
};

/* One event on its way: its message object, copied once and shared by the
 * commands to every node (each node builds its transports' frames). */
typedef struct handoff {
    hs_consumer_t *consumer;
    void *token;
    size_t pending; /* node commands not yet answered */
    bool failed;    /* a node command failed: redeliver rather than ack */
    char *topic;
    char *message_id;
    char *message_json;
    size_t message_json_len;
    int partition;        /* the event's partition, and this consumer's fencing */
    uint64_t fence;       /* token for it: carried on each DELIVER (bus.h) */
    char *prev;           /* NULL: the event carried none */
    hs_event_kind_t kind; /* DELETED: message_json is the "deleted" frame */
} handoff_t;

static void handoff_free(handoff_t *h)
{
    h->consumer->in_flight--;
    hs_free(h->topic);
    hs_free(h->message_id);
    hs_free(h->message_json);
    hs_free(h->prev);
    hs_free(h);
}

static void node_done_cb(int status, void *data)
{
    handoff_t *h = data;
    if (status != 0 && status != HS_ENOTFOUND) {
        hs_log_warn("consumer: delivering %s to a node failed: %s", h->message_id,
                    hs_strerror(status));
        h->failed = true;
    }
    if (--h->pending == 0) {
        /* Acknowledged only when every node has it; otherwise it comes back
         * (nodes that had it drop the repeat). */
        if (h->failed)
            hs_bus_release(h->consumer->bus, h->token);
        else
            hs_bus_ack(h->consumer->bus, h->token);
        handoff_free(h);
    }
}

static void nodes_cb(int status, const char *const *nodes, size_t count, void *data)
{
    handoff_t *h = data;
    if (status != 0 || count == 0) {
        if (status != 0) {
            hs_log_warn("consumer: routing %s failed: %s", h->message_id, hs_strerror(status));
            hs_bus_release(h->consumer->bus, h->token); /* it comes back */
        } else {
            hs_bus_ack(h->consumer->bus, h->token); /* nobody listens: done */
        }
        handoff_free(h);
        return;
    }
    h->pending = count;
    hs_node_cmd_t cmd = {.kind = HS_NODE_DELIVER,
                         .topic = h->topic,
                         .message_id = h->message_id,
                         .message_json = h->message_json,
                         .message_json_len = h->message_json_len,
                         .partition = h->partition,
                         .fence = h->fence,
                         .prev = h->prev};
    if (h->kind == HS_EVENT_DELETED) /* the same route, after the topic's earlier messages */
        cmd = (hs_node_cmd_t){.kind = HS_NODE_DELETED,
                              .topic = h->topic,
                              .message_id = h->message_id,
                              .frame_text = h->message_json,
                              .frame_text_len = h->message_json_len,
                              .partition = h->partition,
                              .fence = h->fence};
    for (size_t i = 0; i < count; i++)
        hs_bus_send_to_node(h->consumer->bus, nodes[i], &cmd, node_done_cb, h);
}

static void event_cb(const hs_event_t *event, void *token, void *data)
{
    hs_consumer_t *consumer = data;
    handoff_t *h = hs_calloc(1, sizeof(*h));
    h->consumer = consumer;
    h->token = token;
    h->topic = hs_strdup(event->topic);
    h->message_id = hs_strdup(event->message_id);
    h->message_json = hs_strndup(event->message_json, event->message_json_len);
    h->message_json_len = event->message_json_len;
    h->partition = event->partition;
    h->fence = event->fence;
    h->prev = event->prev ? hs_strdup(event->prev) : NULL;
    h->kind = event->kind;
    consumer->in_flight++;
    hs_bus_topic_nodes(consumer->bus, event->topic, nodes_cb, h);
}

hs_consumer_t *hs_consumer_new(hs_bus_t *bus, int *status)
{
    hs_consumer_t *consumer = hs_calloc(1, sizeof(*consumer));
    consumer->bus = bus;
    *status = hs_bus_consume_events(bus, event_cb, consumer);
    return consumer;
}

size_t hs_consumer_in_flight(const hs_consumer_t *consumer)
{
    return consumer->in_flight;
}

void hs_consumer_free(hs_consumer_t *consumer)
{
    hs_free(consumer);
}
