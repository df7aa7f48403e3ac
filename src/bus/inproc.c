/* inproc.c - the in-process bus of the embedded mode.
 *
 * Every role lives on one loop, so the bus is a FIFO of operations drained
 * from a uv_async callback: nothing runs inside the call that queued it, and
 * the FIFO gives the ordering bus.h promises (a subscribe acknowledged before
 * a publish is applied before that publish's delivery). The directory
 * (connection -> node, topic -> nodes) is hash maps; its updates go
 * through the same FIFO, so a query sees exactly the updates issued before it.
 * A connection's entry costs no allocation: node names are interned (a bus
 * has a few nodes) and a canonical connection id - a ULID, as the notifier
 * makes them - is the key of a map that holds it in binary in the slot
 * (core/idmap.h). Any other id goes to a string map with an entry of its
 * own, so the directory answers exactly as one string map would.
 *
 * Events are handed to the one registered consumer; an ack has nothing to
 * do here, since an event that is lost in-process is lost with the process
 * and its connections.
 */
#include <stdio.h>
#include <string.h>

#include "bus/bus.h"
#include "core/alloc.h"
#include "core/error.h"
#include "core/log.h"
#include "core/idmap.h"
#include "core/map.h"
#include "core/ulid.h"

typedef enum op_kind {
    OP_EVENT,
    OP_COMMAND,
    OP_LOCATE,
    OP_TOPIC_NODES,
    OP_REGISTER,
    OP_UNREGISTER,
    OP_ADD_TOPIC_NODE,
    OP_REMOVE_TOPIC_NODE,
} op_kind_t;

typedef struct op {
    struct op *next;
    op_kind_t kind;
    union {
        hs_bus_done_cb done;
        hs_bus_node_cb node;
        hs_bus_nodes_cb nodes;
    } cb;
    void *data;
    union {
        hs_event_t event;
        hs_node_cmd_t cmd;
    } u;
    /* OP_COMMAND: node; OP_LOCATE, OP_(UN)REGISTER: connection id;
     * OP_TOPIC_NODES, OP_*_TOPIC_NODE: topic */
    const char *target;
    const char *node; /* directory updates */
    char strings[];   /* copies of every string above */
} op_t;

typedef struct node_entry {
    char *name;
    hs_bus_cmd_handler handler;
    void *data;
} node_entry_t;

/* topic -> the nodes that hold subscribers of it */
typedef struct topic_entry {
    size_t count;
    char **nodes;
    char name[];
} topic_entry_t;

/* A connection whose id is not a canonical ULID (connections_by_id holds
 * the others, with no entry of their own). */
typedef struct conn_entry {
    const char *node; /* interned */
    char id[HS_ULID_LEN + 1];
} conn_entry_t;

typedef struct inproc_bus {
    hs_bus_t base;
    uv_async_t async;
    op_t *head;
    op_t **tail;
    hs_bus_event_handler consumer;
    void *consumer_data;
    node_entry_t *nodes;
    size_t node_count;
    char **names; /* interned node names, freed with the bus */
    size_t name_count;
    hs_idmap_t connections_by_id; /* canonical id -> interned node name */
    hs_map_t connections;         /* any other id -> conn_entry_t */
    hs_map_t topics;              /* topic -> topic_entry_t */
    hs_bus_done_cb close_cb;
    void *close_data;
    int closing;
} inproc_bus_t;

/* ---- queue ------------------------------------------------------------- */

/* Allocates an op with room for n strings, copied after the struct; returns
 * pointers to the copies in out[]. */
static op_t *op_new(op_kind_t kind, const char *const *in, const size_t *lens, const char **out,
                    size_t n)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += in[i] ? lens[i] + 1 : 0;
    op_t *op = hs_calloc(1, sizeof(*op) + total);
    op->kind = kind;
    char *p = op->strings;
    for (size_t i = 0; i < n; i++) {
        if (in[i] == NULL) {
            out[i] = NULL;
            continue;
        }
        memcpy(p, in[i], lens[i]);
        p[lens[i]] = '\0';
        out[i] = p;
        p += lens[i] + 1;
    }
    return op;
}

static void enqueue(inproc_bus_t *bus, op_t *op)
{
    op->next = NULL;
    *bus->tail = op;
    bus->tail = &op->next;
    uv_async_send(&bus->async);
}

static size_t len_or_zero(const char *s)
{
    return s ? strlen(s) : 0;
}

/* ---- directory --------------------------------------------------------- */

static const char *const *nodes_of_topic(inproc_bus_t *bus, const char *topic, size_t *count)
{
    topic_entry_t *entry = hs_map_get(&bus->topics, topic, strlen(topic));
    *count = entry ? entry->count : 0;
    return entry ? (const char *const *)entry->nodes : NULL;
}

static node_entry_t *find_node(inproc_bus_t *bus, const char *name)
{
    for (size_t i = 0; i < bus->node_count; i++)
        if (strcmp(bus->nodes[i].name, name) == 0)
            return &bus->nodes[i];
    return NULL;
}

/* The one copy of a node name; a bus sees a few nodes in its life. */
static const char *intern_node(inproc_bus_t *bus, const char *node)
{
    for (size_t i = 0; i < bus->name_count; i++)
        if (strcmp(bus->names[i], node) == 0)
            return bus->names[i];
    bus->names = hs_realloc(bus->names, (bus->name_count + 1) * sizeof(*bus->names));
    bus->names[bus->name_count] = hs_strdup(node);
    return bus->names[bus->name_count++];
}

/* The node holding connection_id, or NULL. An id spelled as hs_ulid_format
 * writes it (hs_ulid_parse_strict) is a key of the binary map, the only
 * spelling it may stand for; any other spelling (lower case, not a ULID) is
 * its own key of the string map. */
static const char *lookup_connection(const inproc_bus_t *bus, const char *connection_id)
{
    size_t len = strlen(connection_id);
    hs_ulid_t id;
    if (hs_ulid_parse_strict(connection_id, len, &id) == 0)
        return hs_idmap_get(&bus->connections_by_id, &id);
    const conn_entry_t *entry = hs_map_get(&bus->connections, connection_id, len);
    return entry ? entry->node : NULL;
}

static void apply_register_connection(inproc_bus_t *bus, const char *node,
                                      const char *connection_id)
{
    const char *name = intern_node(bus, node);
    /* The key is the id's first HS_ULID_LEN characters, as it always was. */
    size_t len = strnlen(connection_id, HS_ULID_LEN);
    hs_ulid_t id;
    if (hs_ulid_parse_strict(connection_id, len, &id) == 0) {
        hs_idmap_put(&bus->connections_by_id, &id, (void *)name);
        return;
    }
    conn_entry_t *entry = hs_malloc(sizeof(*entry));
    entry->node = name;
    memcpy(entry->id, connection_id, len);
    entry->id[len] = '\0';
    hs_free(hs_map_put(&bus->connections, entry->id, len, entry));
}

static void apply_unregister_connection(inproc_bus_t *bus, const char *node,
                                        const char *connection_id)
{
    const char *held = lookup_connection(bus, connection_id);
    if (held == NULL || strcmp(held, node) != 0)
        return;
    size_t len = strlen(connection_id);
    hs_ulid_t id;
    if (hs_ulid_parse_strict(connection_id, len, &id) == 0)
        hs_idmap_remove(&bus->connections_by_id, &id);
    else
        hs_free(hs_map_remove(&bus->connections, connection_id, len));
}

static void apply_add_topic_node(inproc_bus_t *bus, const char *topic, const char *node)
{
    size_t len = strlen(topic);
    topic_entry_t *entry = hs_map_get(&bus->topics, topic, len);
    if (entry == NULL) {
        entry = hs_calloc(1, sizeof(*entry) + len + 1);
        memcpy(entry->name, topic, len + 1);
        hs_map_put(&bus->topics, entry->name, len, entry);
    }
    for (size_t i = 0; i < entry->count; i++)
        if (strcmp(entry->nodes[i], node) == 0)
            return;
    entry->nodes = hs_realloc(entry->nodes, (entry->count + 1) * sizeof(char *));
    entry->nodes[entry->count++] = hs_strdup(node);
}

static void free_topic_entry(topic_entry_t *entry)
{
    for (size_t i = 0; i < entry->count; i++)
        hs_free(entry->nodes[i]);
    hs_free(entry->nodes);
    hs_free(entry);
}

static void apply_remove_topic_node(inproc_bus_t *bus, const char *topic, const char *node)
{
    size_t len = strlen(topic);
    topic_entry_t *entry = hs_map_get(&bus->topics, topic, len);
    if (entry == NULL)
        return;
    for (size_t i = 0; i < entry->count; i++) {
        if (strcmp(entry->nodes[i], node) == 0) {
            hs_free(entry->nodes[i]);
            entry->nodes[i] = entry->nodes[--entry->count];
            break;
        }
    }
    if (entry->count == 0) {
        hs_map_remove(&bus->topics, topic, len);
        free_topic_entry(entry);
    }
}

/* ---- operations -------------------------------------------------------- */

static void run_op(inproc_bus_t *bus, op_t *op)
{
    switch (op->kind) {
    case OP_EVENT:
        if (bus->consumer)
            bus->consumer(&op->u.event, op, bus->consumer_data);
        else
            hs_log_warn("bus: no consumer registered; event for topic %s dropped",
                        op->u.event.topic);
        if (op->cb.done)
            op->cb.done(0, op->data);
        break;
    case OP_COMMAND: {
        node_entry_t *node = find_node(bus, op->target);
        int status = node ? node->handler(&op->u.cmd, node->data) : HS_ENOTFOUND;
        if (op->cb.done)
            op->cb.done(status, op->data);
        break;
    }
    case OP_LOCATE: {
        const char *node = lookup_connection(bus, op->target);
        op->cb.node(node ? 0 : HS_ENOTFOUND, node, op->data);
        break;
    }
    case OP_TOPIC_NODES: {
        size_t count;
        const char *const *nodes = nodes_of_topic(bus, op->target, &count);
        op->cb.nodes(0, nodes, count, op->data);
        break;
    }
    case OP_REGISTER:
        apply_register_connection(bus, op->node, op->target);
        if (op->cb.done)
            op->cb.done(0, op->data);
        break;
    case OP_UNREGISTER:
        apply_unregister_connection(bus, op->node, op->target);
        break;
    case OP_ADD_TOPIC_NODE:
        apply_add_topic_node(bus, op->target, op->node);
        break;
    case OP_REMOVE_TOPIC_NODE:
        apply_remove_topic_node(bus, op->target, op->node);
        break;
    }
    hs_free(op);
}

static void async_closed_cb(uv_handle_t *handle)
{
    inproc_bus_t *bus = handle->data;
    hs_bus_done_cb cb = bus->close_cb;
    void *data = bus->close_data;
    void *value;
    size_t pos = 0;
    while ((value = hs_map_next(&bus->connections, &pos)) != NULL)
        hs_free(value);
    pos = 0;
    while ((value = hs_map_next(&bus->topics, &pos)) != NULL)
        free_topic_entry(value);
    hs_map_dispose(&bus->connections);
    hs_idmap_dispose(&bus->connections_by_id);
    hs_map_dispose(&bus->topics);
    for (size_t i = 0; i < bus->name_count; i++)
        hs_free(bus->names[i]);
    hs_free(bus->names);
    for (size_t i = 0; i < bus->node_count; i++)
        hs_free(bus->nodes[i].name);
    hs_free(bus->nodes);
    hs_free(bus);
    if (cb)
        cb(0, data);
}

static void drain_cb(uv_async_t *async)
{
    inproc_bus_t *bus = async->data;
    /* Run only what was queued before this pass; what the ops queue runs in
     * the next pass, so a busy bus cannot starve the loop's I/O. */
    op_t *op = bus->head;
    bus->head = NULL;
    bus->tail = &bus->head;
    bool commands = false;
    while (op) {
        op_t *next = op->next;
        commands |= op->kind == OP_COMMAND;
        run_op(bus, op);
        op = next;
    }
    if (commands) {
        hs_node_cmd_t end = {.kind = HS_NODE_BATCH_END};
        for (size_t i = 0; i < bus->node_count; i++)
            bus->nodes[i].handler(&end, bus->nodes[i].data);
    }
    if (bus->closing && bus->head == NULL && !uv_is_closing((uv_handle_t *)&bus->async))
        uv_close((uv_handle_t *)&bus->async, async_closed_cb);
}

static void inproc_publish_event(hs_bus_t *b, const hs_event_t *event, hs_bus_done_cb cb,
                                 void *data)
{
    const char *in[] = {event->topic, event->message_id, event->message_json, event->prev};
    size_t lens[] = {strlen(event->topic), strlen(event->message_id), event->message_json_len,
                     len_or_zero(event->prev)};
    const char *out[4];
    op_t *op = op_new(OP_EVENT, in, lens, out, 4);
    op->u.event = (hs_event_t){.topic = out[0],
                               .message_id = out[1],
                               .message_json = out[2],
                               .message_json_len = event->message_json_len,
                               .prev = out[3],
                               .kind = event->kind};
    op->cb.done = cb;
    op->data = data;
    enqueue((inproc_bus_t *)b, op);
}

static int inproc_consume_events(hs_bus_t *b, hs_bus_event_handler handler, void *data)
{
    inproc_bus_t *bus = (inproc_bus_t *)b;
    if (bus->consumer)
        return HS_EEXIST;
    bus->consumer = handler;
    bus->consumer_data = data;
    return 0;
}

static void inproc_ack(hs_bus_t *b, void *token)
{
    (void)b;
    (void)token;
}

static void inproc_send_to_node(hs_bus_t *b, const char *node, const hs_node_cmd_t *cmd,
                                hs_bus_done_cb cb, void *data)
{
    const char *in[] = {node,
                        cmd->topic,
                        cmd->connection_id,
                        cmd->message_id,
                        cmd->message_json,
                        cmd->frame_text,
                        cmd->prev};
    size_t lens[] = {strlen(node),
                     len_or_zero(cmd->topic),
                     len_or_zero(cmd->connection_id),
                     len_or_zero(cmd->message_id),
                     cmd->message_json ? cmd->message_json_len : 0,
                     cmd->frame_text ? cmd->frame_text_len : 0,
                     len_or_zero(cmd->prev)};
    const char *out[7];
    op_t *op = op_new(OP_COMMAND, in, lens, out, 7);
    op->target = out[0];
    op->u.cmd = (hs_node_cmd_t){.kind = cmd->kind,
                                .topic = out[1],
                                .connection_id = out[2],
                                .message_id = out[3],
                                .message_json = out[4],
                                .message_json_len = lens[4],
                                .frame_text = out[5],
                                .frame_text_len = lens[5],
                                .prev = out[6]};
    op->cb.done = cb;
    op->data = data;
    enqueue((inproc_bus_t *)b, op);
}

static int inproc_serve_node(hs_bus_t *b, const char *node, hs_bus_cmd_handler handler, void *data)
{
    inproc_bus_t *bus = (inproc_bus_t *)b;
    if (find_node(bus, node))
        return HS_EEXIST;
    bus->nodes = hs_realloc(bus->nodes, (bus->node_count + 1) * sizeof(*bus->nodes));
    bus->nodes[bus->node_count++] =
        (node_entry_t){.name = hs_strdup(node), .handler = handler, .data = data};
    return 0;
}

static void inproc_locate_connection(hs_bus_t *b, const char *connection_id, hs_bus_node_cb cb,
                                     void *data)
{
    const char *in[] = {connection_id};
    size_t lens[] = {strlen(connection_id)};
    const char *out[1];
    op_t *op = op_new(OP_LOCATE, in, lens, out, 1);
    op->target = out[0];
    op->cb.node = cb;
    op->data = data;
    enqueue((inproc_bus_t *)b, op);
}

static void inproc_topic_nodes(hs_bus_t *b, const char *topic, hs_bus_nodes_cb cb, void *data)
{
    const char *in[] = {topic};
    size_t lens[] = {strlen(topic)};
    const char *out[1];
    op_t *op = op_new(OP_TOPIC_NODES, in, lens, out, 1);
    op->target = out[0];
    op->cb.nodes = cb;
    op->data = data;
    enqueue((inproc_bus_t *)b, op);
}

static op_t *enqueue_directory(hs_bus_t *b, op_kind_t kind, const char *target, const char *node)
{
    const char *in[] = {target, node};
    size_t lens[] = {strlen(target), strlen(node)};
    const char *out[2];
    op_t *op = op_new(kind, in, lens, out, 2);
    op->target = out[0];
    op->node = out[1];
    enqueue((inproc_bus_t *)b, op);
    return op;
}

static void inproc_register_connection(hs_bus_t *b, const char *node, const char *connection_id,
                                       hs_bus_done_cb cb, void *data)
{
    op_t *op = enqueue_directory(b, OP_REGISTER, connection_id, node);
    op->cb.done = cb;
    op->data = data;
}

static void inproc_unregister_connection(hs_bus_t *b, const char *node, const char *connection_id)
{
    enqueue_directory(b, OP_UNREGISTER, connection_id, node);
}

static void inproc_add_topic_node(hs_bus_t *b, const char *topic, const char *node)
{
    enqueue_directory(b, OP_ADD_TOPIC_NODE, topic, node);
}

static void inproc_remove_topic_node(hs_bus_t *b, const char *topic, const char *node)
{
    enqueue_directory(b, OP_REMOVE_TOPIC_NODE, topic, node);
}

static void inproc_watch_nodes(hs_bus_t *b, const char *node, uint64_t interval_ms,
                               void (*dead_cb)(const char *node, void *data), void *data)
{
    /* One process, one node: it cannot die without the watchers. */
    (void)b, (void)node, (void)interval_ms, (void)dead_cb, (void)data;
}

static void inproc_close(hs_bus_t *b, hs_bus_done_cb cb, void *data)
{
    inproc_bus_t *bus = (inproc_bus_t *)b;
    bus->closing = 1;
    bus->close_cb = cb;
    bus->close_data = data;
    /* The drain closes the handle once the queue is empty. */
    uv_async_send(&bus->async);
}

static bool inproc_ready(hs_bus_t *b)
{
    (void)b;
    return true;
}

static void inproc_on_reconnect(hs_bus_t *b, void (*cb)(void *data), void *data)
{
    (void)b; /* never disconnected */
    (void)cb;
    (void)data;
}

static const hs_bus_ops_t inproc_ops = {
    .name = "inproc",
    .redelivers = false,
    .ready = inproc_ready,
    .on_reconnect = inproc_on_reconnect,
    .publish_event = inproc_publish_event,
    .consume_events = inproc_consume_events,
    .ack = inproc_ack,
    .release = inproc_ack, /* nothing to give back: events never fail here */
    .send_to_node = inproc_send_to_node,
    .serve_node = inproc_serve_node,
    .register_connection = inproc_register_connection,
    .unregister_connection = inproc_unregister_connection,
    .add_topic_node = inproc_add_topic_node,
    .remove_topic_node = inproc_remove_topic_node,
    .locate_connection = inproc_locate_connection,
    .topic_nodes = inproc_topic_nodes,
    .watch_nodes = inproc_watch_nodes,
    .close = inproc_close,
};

hs_bus_t *hs_bus_inproc_new(uv_loop_t *loop)
{
    inproc_bus_t *bus = hs_calloc(1, sizeof(*bus));
    bus->base.ops = &inproc_ops;
    bus->base.loop = loop;
    bus->tail = &bus->head;
    hs_map_init(&bus->connections);
    hs_idmap_init(&bus->connections_by_id);
    hs_map_init(&bus->topics);
    uv_async_init(loop, &bus->async, drain_cb);
    bus->async.data = bus;
    return &bus->base;
}
