/* bus.h - the event bus and the routing directory between roles.
 *
 * Three conversations cross it:
 *   publisher -> consumers : "message created" events, after the message is
 *                            committed (at-least-once; a consumer acks an
 *                            event once it handed it to the notifiers);
 *   anyone    -> a node    : commands to the notifier that holds a
 *                            connection (deliver a message to a topic's local
 *                            subscribers, push a notification, subscribe,
 *                            unsubscribe);
 *   notifiers -> directory : which node holds a connection, and which nodes
 *                            hold subscribers of a topic, so the consumer
 *                            sends each message once per node, never once
 *                            per subscriber.
 *
 * Back-ends implement hs_bus_ops_t: inproc.c (embedded mode, one process)
 * and the Redis back-end (Streams with consumer groups), a file per
 * mechanism behind redis_internal.h, which maps its keys
 * (docs/internals/bus.md). The roles see only this header.
 *
 * A back-end whose dependency can go away (Redis) reconnects by itself with
 * backoff; while it is away ready() is false and operations fail with
 * HS_EUNAVAIL. Events published while it is away, or whose append was not
 * confirmed, are kept and appended once it is back, so an event may arrive
 * twice: such a back-end sets redelivers, and nodes drop repeated ids.
 *
 * Every asynchronous operation calls its callback later on the loop thread,
 * never inside the call. Operations of one bus are carried out in the order
 * they were issued (for the in-process bus strictly FIFO), so a subscribe
 * acknowledged before a publish is applied before that publish's delivery,
 * and deliveries of one topic keep publish order. Data handed to a callback
 * lives only during the callback; data passed in is copied.
 */
#ifndef HS_BUS_BUS_H
#define HS_BUS_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/ulid.h"

typedef struct hs_bus hs_bus_t;

/* What an event says: a message was created (the default), or a message
 * or a whole topic was deleted (DELETE /api/v1/messages/{id},
 * /api/v1/topics/{topic}): it travels in the topic's partition like the
 * topic's messages, so it reaches a node after the messages published
 * before it. */
typedef enum hs_event_kind {
    HS_EVENT_CREATED = 0,
    HS_EVENT_DELETED, /* message_id: the deleted message, "" for the whole topic;
                         message_json: the "deleted" frame's text */
} hs_event_kind_t;

/* "message created": the committed message as its JSON object text. */
typedef struct hs_event {
    const char *topic;
    const char *message_id;
    const char *message_json; /* {"id":…,"topic":…,…} */
    size_t message_json_len;
    /* Set by a partitioned bus on the consumer side (ignored on publish):
     * the event's partition and the consumer's fencing token for it, which
     * the consumer puts on the DELIVER commands it sends (hs_node_cmd_t). */
    int partition;
    uint64_t fence;
    const char *prev; /* the topic's id before this one ("" for its first; NULL:
                         unknown), from the store (hs_message_t.prev) */
    hs_event_kind_t kind;
} hs_event_t;

typedef enum hs_node_cmd_kind {
    HS_NODE_DELIVER = 1, /* message_json to every local subscriber of topic */
    HS_NODE_NOTIFY,      /* frame_text as is, to connection_id */
    HS_NODE_SUBSCRIBE,   /* add connection_id to topic's local subscribers */
    HS_NODE_UNSUBSCRIBE, /* remove connection_id from topic (NULL: from all) */
    HS_NODE_FORWARD,     /* frame_text is a prototype forwarder-channel message,
                            {"connectionID":…,"payload":…}, sent to every node */
    HS_NODE_DISCONNECT,  /* close connection_id (4000, "disconnected by server") */
    HS_NODE_BATCH_END,   /* from the bus itself, never sent: the commands of this
                            pass are all handed over (a node may hold a run of
                            deliveries until this, or until another command) */
    HS_NODE_GAP,         /* commands or events meant for this node were lost
                            (a stream trimmed past its reader, Redis lost its
                            data): topic names the stream, frame_text says what
                            was seen. Comes before any command that followed
                            the loss, so a connection closed now resumes from
                            before it. Never from the in-process bus. */
    HS_NODE_DELETED,     /* frame_text (a "deleted" frame) to every local subscriber
                            of topic; message_id: the deleted message, NULL or ""
                            for the whole topic, which the node then drops from
                            its subscribers (carries partition and fence like
                            DELIVER) */
} hs_node_cmd_kind_t;

typedef struct hs_node_cmd {
    hs_node_cmd_kind_t kind;
    const char *topic;
    const char *connection_id;
    const char *message_id;   /* DELIVER: lets a node drop a redelivered event */
    const char *message_json; /* DELIVER: the message object, as in the event; the
                                 node builds each transport's frame around it */
    size_t message_json_len;
    const char *prev;       /* DELIVER: the topic's id before message_id ("" for its
                               first; NULL: unknown): a node sees a gap in a topic's
                               sequence by it (docs/scaling.md, "Live order") */
    const char *frame_text; /* NOTIFY: the text frame's payload; FORWARD, GAP: above */
    size_t frame_text_len;
    /* DELIVER from a partitioned bus: the event's partition and the sending
     * consumer's fencing token for it (0: none). A node drops a DELIVER
     * whose token is below the highest it saw for the partition - a stale
     * holder's, sent after another consumer took the partition over. */
    int partition;
    uint64_t fence;
} hs_node_cmd_t;

/* A node's answer to a command: 0, HS_ENOTFOUND (no such connection on that
 * node), or an error. */
typedef void (*hs_bus_done_cb)(int status, void *data);
/* Runs on the node for each command addressed to it; must return the
 * status synchronously (the node's work is in memory). */
typedef int (*hs_bus_cmd_handler)(const hs_node_cmd_t *cmd, void *data);
/* Runs on a consumer for each event; the consumer calls hs_bus_ack(token)
 * once the event has been handed to every node (an unacked event is
 * redelivered, perhaps to another consumer). */
typedef void (*hs_bus_event_handler)(const hs_event_t *event, void *token, void *data);
/* nodes: the nodes that hold subscribers of a topic (may be empty). */
typedef void (*hs_bus_nodes_cb)(int status, const char *const *nodes, size_t count, void *data);
/* node: where the connection lives, or status HS_ENOTFOUND. */
typedef void (*hs_bus_node_cb)(int status, const char *node, void *data);

/* What the deployment's directory says (hs_bus_deployment): each notifier
 * node's last heartbeat and each consumer's partitions. Read-only; strings
 * live only during the callback. */
typedef struct hs_bus_notifier_status {
    const char *node;
    uint64_t connections; /* its connections in the directory */
    uint64_t deliveries;  /* its houston_deliveries_total at its last heartbeat */
    uint64_t beat_ms;     /* its clock at its last heartbeat (unix ms; 0: unknown) */
    uint64_t interval_ms; /* its heartbeat interval (0: unknown) */
    int64_t beat_age_ms;  /* how long ago it beat, by Redis's TTL (-1: its beat expired) */
} hs_bus_notifier_status_t;

typedef struct hs_bus_consumer_status {
    const char *consumer;
    const unsigned *partitions; /* the partitions whose lease it holds, ascending */
    size_t count;
} hs_bus_consumer_status_t;

typedef struct hs_bus_deployment {
    const hs_bus_notifier_status_t *notifiers;
    size_t notifier_count;
    const hs_bus_consumer_status_t *consumers;
    size_t consumer_count;
    unsigned partitions; /* of the event log */
} hs_bus_deployment_t;

typedef void (*hs_bus_deployment_cb)(int status, const hs_bus_deployment_t *d, void *data);

typedef struct hs_bus_ops {
    const char *name;
    bool redelivers; /* an event or command may arrive more than once */
    /* Whether the bus can take operations now. */
    bool (*ready)(hs_bus_t *bus);
    /* cb runs each time the bus came back after losing its dependency, so
     * the caller can put its directory entries back (they may be lost). */
    void (*on_reconnect)(hs_bus_t *bus, void (*cb)(void *data), void *data);
    void (*publish_event)(hs_bus_t *bus, const hs_event_t *event, hs_bus_done_cb cb, void *data);
    int (*consume_events)(hs_bus_t *bus, hs_bus_event_handler handler, void *data);
    void (*ack)(hs_bus_t *bus, void *token);
    /* Gives the token back without acknowledging: the event is delivered
     * again later (after the claim timeout). */
    void (*release)(hs_bus_t *bus, void *token);
    void (*send_to_node)(hs_bus_t *bus, const char *node, const hs_node_cmd_t *cmd,
                         hs_bus_done_cb cb, void *data);
    int (*serve_node)(hs_bus_t *bus, const char *node, hs_bus_cmd_handler handler, void *data);
    /* On a node (after serve_node): cb(0) once the node has applied every
     * command appended to it before this call, or cb(error) when that
     * cannot be known in time (HS_ECLOSED: asked while the bus closes,
     * answered before the close's callback). NULL where send_to_node answers only after
     * the node applied the command (nothing can be appended yet unapplied).
     * What a client asks the node itself waits so: an API subscribe
     * answered before the client's own unsubscribe must not be applied
     * after it (docs/internals/bus.md, "Node barrier"). */
    void (*node_barrier)(hs_bus_t *bus, hs_bus_done_cb cb, void *data);
    /* Directory. The notifier keeps it current: a connection on open and
     * close, a topic when its first local subscriber arrives and its last
     * one leaves. */
    /* cb (may be NULL) runs once the entry is in place: a locate after it
     * finds the connection. */
    void (*register_connection)(hs_bus_t *bus, const char *node, const char *connection_id,
                                hs_bus_done_cb cb, void *data);
    void (*unregister_connection)(hs_bus_t *bus, const char *node, const char *connection_id);
    void (*add_topic_node)(hs_bus_t *bus, const char *topic, const char *node);
    void (*remove_topic_node)(hs_bus_t *bus, const char *topic, const char *node);
    void (*locate_connection)(hs_bus_t *bus, const char *connection_id, hs_bus_node_cb cb,
                              void *data);
    void (*topic_nodes)(hs_bus_t *bus, const char *topic, hs_bus_nodes_cb cb, void *data);
    /* Keeps node alive in the directory (a heartbeat every interval_ms) and
     * watches the other nodes: when one stops beating for 3 intervals, one
     * survivor removes its directory entries and calls dead_cb(node) to
     * remove its rows from the store. A no-op where there is one node. */
    void (*watch_nodes)(hs_bus_t *bus, const char *node, uint64_t interval_ms,
                        void (*dead_cb)(const char *node, void *data), void *data);
    /* Finishes what is queued (callbacks still run), then frees the bus;
     * cb runs last. */
    void (*close)(hs_bus_t *bus, hs_bus_done_cb cb, void *data);
    /* Read-only: the notifier nodes and consumers the directory knows
     * (GET /api/v1/nodes). NULL on a bus of one process. */
    void (*deployment)(hs_bus_t *bus, hs_bus_deployment_cb cb, void *data);
} hs_bus_ops_t;

/* Back-ends embed this as their first member. */
struct hs_bus {
    const hs_bus_ops_t *ops;
    uv_loop_t *loop;
};

/* The in-process bus of the embedded mode (inproc.c). */
hs_bus_t *hs_bus_inproc_new(uv_loop_t *loop);
typedef struct hs_bus_redis_options {
    uint64_t claim_idle_ms;    /* take over events pending this long (0: 30 s) */
    uint64_t node_stream_max;  /* MAXLEN ~ of a node's command stream (0: 10,000) */
    uint64_t event_stream_max; /* MAXLEN ~ of the event log, over all partitions (0: 100,000) */
    unsigned partitions;       /* partitions of the event log (0: 16; at most 1024) */
    uint64_t heartbeat_ms;     /* a consumer's heartbeat; its leases live 3 of them (0: 5 s) */
    /* Called (later, once) when the deployment in Redis uses another
     * partition count than this process (houston:partitions): the process
     * must not go on. why says both numbers. NULL: only logged. */
    void (*mismatch_cb)(const char *why, void *data);
    void *mismatch_data;
} hs_bus_redis_options_t;

/* The Redis bus of the scale-out mode (redis.c): url is
 * redis://host[:port][/db]. Returns 0 or an error with a reason in err (a
 * bad URL; an unreachable server is retried in the background). */
int hs_bus_redis_open(uv_loop_t *loop, const char *url, const hs_bus_redis_options_t *options,
                      hs_bus_t **out, char *err, size_t err_len);

static inline bool hs_bus_ready(hs_bus_t *b)
{
    return b->ops->ready(b);
}
static inline bool hs_bus_redelivers(const hs_bus_t *b)
{
    return b->ops->redelivers;
}
static inline void hs_bus_on_reconnect(hs_bus_t *b, void (*cb)(void *data), void *d)
{
    b->ops->on_reconnect(b, cb, d);
}
static inline void hs_bus_publish_event(hs_bus_t *b, const hs_event_t *e, hs_bus_done_cb cb,
                                        void *d)
{
    b->ops->publish_event(b, e, cb, d);
}
static inline int hs_bus_consume_events(hs_bus_t *b, hs_bus_event_handler h, void *d)
{
    return b->ops->consume_events(b, h, d);
}
static inline void hs_bus_ack(hs_bus_t *b, void *token)
{
    b->ops->ack(b, token);
}
static inline void hs_bus_release(hs_bus_t *b, void *token)
{
    b->ops->release(b, token);
}
/* false: no barrier is needed on this bus (cb is not called). */
static inline bool hs_bus_node_barrier(hs_bus_t *b, hs_bus_done_cb cb, void *d)
{
    if (b->ops->node_barrier == NULL)
        return false;
    b->ops->node_barrier(b, cb, d);
    return true;
}
static inline void hs_bus_send_to_node(hs_bus_t *b, const char *node, const hs_node_cmd_t *c,
                                       hs_bus_done_cb cb, void *d)
{
    b->ops->send_to_node(b, node, c, cb, d);
}
static inline int hs_bus_serve_node(hs_bus_t *b, const char *node, hs_bus_cmd_handler h, void *d)
{
    return b->ops->serve_node(b, node, h, d);
}
static inline void hs_bus_register_connection(hs_bus_t *b, const char *node, const char *conn,
                                              hs_bus_done_cb cb, void *d)
{
    b->ops->register_connection(b, node, conn, cb, d);
}
static inline void hs_bus_unregister_connection(hs_bus_t *b, const char *node, const char *conn)
{
    b->ops->unregister_connection(b, node, conn);
}
static inline void hs_bus_add_topic_node(hs_bus_t *b, const char *topic, const char *node)
{
    b->ops->add_topic_node(b, topic, node);
}
static inline void hs_bus_remove_topic_node(hs_bus_t *b, const char *topic, const char *node)
{
    b->ops->remove_topic_node(b, topic, node);
}
static inline void hs_bus_locate_connection(hs_bus_t *b, const char *conn, hs_bus_node_cb cb,
                                            void *d)
{
    b->ops->locate_connection(b, conn, cb, d);
}
static inline void hs_bus_topic_nodes(hs_bus_t *b, const char *topic, hs_bus_nodes_cb cb, void *d)
{
    b->ops->topic_nodes(b, topic, cb, d);
}
static inline void hs_bus_watch_nodes(hs_bus_t *b, const char *node, uint64_t interval_ms,
                                      void (*dead_cb)(const char *node, void *data), void *d)
{
    b->ops->watch_nodes(b, node, interval_ms, dead_cb, d);
}
/* Whether the bus has a deployment to describe (scale-out). */
static inline bool hs_bus_has_deployment(const hs_bus_t *b)
{
    return b->ops->deployment != NULL;
}
static inline void hs_bus_deployment(hs_bus_t *b, hs_bus_deployment_cb cb, void *d)
{
    b->ops->deployment(b, cb, d);
}
static inline void hs_bus_close(hs_bus_t *b, hs_bus_done_cb cb, void *d)
{
    b->ops->close(b, cb, d);
}

#endif
