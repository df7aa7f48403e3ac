/* redis.c - the bus on Redis (scale-out mode), through hiredis's libuv
 * adapter so the loop never waits on Redis.
 *
 * Keys and streams (docs/scaling.md):
 *   houston:events            stream of "message created" events; consumers
 *                             read it in the consumer group houston:consumers
 *                             (XREADGROUP), acknowledge with XACK after the
 *                             hand-off, and take over entries left pending by
 *                             a dead consumer (XAUTOCLAIM, idle > 30 s)
 *   houston:node:<node>       stream of commands for one notifier node (XREAD)
 *   houston:conns             hash: connection id -> node
 *   houston:topic:<topic>     set of the nodes that hold subscribers of topic
 *   houston:nodes             set of the notifier nodes
 *   houston:alive:<node>      a node's heartbeat (expires after 3 intervals)
 *   houston:nodeconns:<node>  connections of a node   } so a dead node's
 *   houston:nodetopics:<node> topics of a node        } entries can be found
 * Streams are capped with MAXLEN ~ so Redis memory stays bounded.
 *
 * Commands to a node go through its stream, in order: a SUBSCRIBE is before
 * the DELIVERs of messages published after it was acknowledged. The
 * subscribe also adds the node to the topic's set before it is answered, so
 * the consumer routes the next message there. */
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wshadow"
#include <hiredis/adapters/libuv.h>
#pragma GCC diagnostic pop

#include "bus/bus.h"
#include "core/alloc.h"
#include "core/error.h"
#include "core/log.h"
#include "core/ulid.h"

#define EVENTS_KEY     "houston:events"
#define GROUP          "houston:consumers"
#define EVENTS_MAXLEN  "100000"
#define NODE_MAXLEN    "10000"
#define READ_COUNT     "64"
#define BLOCK_MS       "2000"
#define CLAIM_IDLE_MS  "30000"
#define CLAIM_EVERY_MS 10000

typedef struct redis_bus {
    hs_bus_t base;
    char host[256];
    int port;
    int db;
    redisAsyncContext *cmd;    /* commands and directory */
    redisAsyncContext *events; /* blocking XREADGROUP (consumer) */
    redisAsyncContext *node;   /* blocking XREAD of this node's stream (notifier) */
    hs_bus_event_handler consumer;
    void *consumer_data;
    char consumer_name[64];
    uv_timer_t claim_timer;
    bool claim_timer_on;
    char *node_name;
    char node_key[300];
    char node_last_id[64];
    hs_bus_cmd_handler node_handler;
    void *node_data;
    int open_contexts;
    uv_timer_t heartbeat;
    bool heartbeat_on;
    uint64_t heartbeat_ms;
    void (*dead_cb)(const char *node, void *data);
    void *dead_data;
    uv_timer_t finish; /* never started: its close callback ends a close, later */
    bool closing;
    bool finishing;
    hs_bus_done_cb close_cb;
    void *close_data;
} redis_bus_t;

/* ---- connections ------------------------------------------------------- */

static void connected_cb(const redisAsyncContext *ac, int status)
{
    if (status != REDIS_OK)
        hs_log_error("bus: cannot connect to Redis: %s", ac->errstr);
}

static void maybe_closed(redis_bus_t *bus);

static void disconnected_cb(const redisAsyncContext *ac, int status)
{
    redis_bus_t *bus = ac->data;
    if (status != REDIS_OK && !bus->closing)
        hs_log_error("bus: Redis connection lost: %s", ac->errstr);
    if (bus->cmd == ac)
        bus->cmd = NULL;
    if (bus->events == ac)
        bus->events = NULL;
    if (bus->node == ac)
        bus->node = NULL;
    bus->open_contexts--;
    maybe_closed(bus);
}

static redisAsyncContext *open_context(redis_bus_t *bus, char *err, size_t err_len)
{
    redisAsyncContext *ac = redisAsyncConnect(bus->host, bus->port);
    if (ac == NULL || ac->err) {
        snprintf(err, err_len, "cannot connect to Redis at %s:%d: %s", bus->host, bus->port,
                 ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        return NULL;
    }
    ac->data = bus;
    redisLibuvAttach(ac, bus->base.loop);
    redisAsyncSetConnectCallback(ac, connected_cb);
    redisAsyncSetDisconnectCallback(ac, disconnected_cb);
    bus->open_contexts++;
    if (bus->db > 0)
        redisAsyncCommand(ac, NULL, NULL, "SELECT %d", bus->db);
    return ac;
}

/* ---- replies ------------------------------------------------------------ */

static bool reply_ok(const redisReply *r)
{
    return r != NULL && r->type != REDIS_REPLY_ERROR;
}

/* Field value of a stream entry's [f, v, f, v...] array, or NULL. */
static const redisReply *entry_field(const redisReply *fields, const char *name)
{
    if (fields == NULL || fields->type != REDIS_REPLY_ARRAY)
        return NULL;
    for (size_t i = 0; i + 1 < fields->elements; i += 2)
        if (fields->element[i]->type == REDIS_REPLY_STRING &&
            strcmp(fields->element[i]->str, name) == 0)
            return fields->element[i + 1];
    return NULL;
}

static const char *field_str(const redisReply *fields, const char *name, size_t *len)
{
    const redisReply *v = entry_field(fields, name);
    if (v == NULL || v->type != REDIS_REPLY_STRING) {
        if (len)
            *len = 0;
        return NULL;
    }
    if (len)
        *len = v->len;
    return v->str;
}

/* ---- done callbacks ------------------------------------------------------- */

typedef struct pending {
    hs_bus_done_cb done;
    hs_bus_node_cb node;
    hs_bus_nodes_cb nodes;
    void *data;
} pending_t;

static pending_t *pending_new(void *data)
{
    pending_t *p = hs_calloc(1, sizeof(*p));
    p->data = data;
    return p;
}

static void done_reply_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    pending_t *p = privdata;
    if (p->done)
        p->done(reply_ok(reply) ? 0 : HS_EIO, p->data);
    hs_free(p);
}

static int send_argv(redis_bus_t *bus, redisCallbackFn *fn, void *privdata, int argc,
                     const char **argv, const size_t *lens)
{
    if (bus->cmd == NULL || bus->closing)
        return HS_ECLOSED;
    return redisAsyncCommandArgv(bus->cmd, fn, privdata, argc, argv, lens) == REDIS_OK ? 0 : HS_EIO;
}

/* A failure to even queue the command is reported later, never inline. */
typedef struct deferred {
    uv_timer_t timer;
    pending_t *p;
} deferred_t;

static void deferred_closed_cb(uv_handle_t *h)
{
    hs_free(h->data);
}

static void deferred_cb(uv_timer_t *t)
{
    deferred_t *d = t->data;
    pending_t *p = d->p;
    if (p->done)
        p->done(HS_EIO, p->data);
    if (p->node)
        p->node(HS_EIO, NULL, p->data);
    if (p->nodes)
        p->nodes(HS_EIO, NULL, 0, p->data);
    hs_free(p);
    uv_close((uv_handle_t *)t, deferred_closed_cb);
}

static void fail_later(redis_bus_t *bus, pending_t *p)
{
    deferred_t *d = hs_calloc(1, sizeof(*d));
    d->p = p;
    uv_timer_init(bus->base.loop, &d->timer);
    d->timer.data = d;
    uv_timer_start(&d->timer, deferred_cb, 0, 0);
}

/* ---- publisher: events ------------------------------------------------------ */

static void redis_publish_event(hs_bus_t *b, const hs_event_t *e, hs_bus_done_cb cb, void *data)
{
    redis_bus_t *bus = (redis_bus_t *)b;
    const char *argv[] = {"XADD",   EVENTS_KEY, "MAXLEN",      "~",    EVENTS_MAXLEN,  "*", "topic",
                          e->topic, "id",       e->message_id, "json", e->message_json};
    size_t lens[] = {4,
                     strlen(EVENTS_KEY),
                     6,
                     1,
                     strlen(EVENTS_MAXLEN),
                     1,
                     5,
                     strlen(e->topic),
                     2,
                     strlen(e->message_id),
                     4,
                     e->message_json_len};
    pending_t *p = pending_new(data);
    p->done = cb;
    if (send_argv(bus, done_reply_cb, p, 12, argv, lens) != 0)
        fail_later(bus, p);
}

/* ---- consumer: the event stream in a consumer group --------------------------- */

static void read_events(redis_bus_t *bus);

static void handle_entries(redis_bus_t *bus, const redisReply *entries)
{
    if (entries == NULL || entries->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t i = 0; i < entries->elements; i++) {
        const redisReply *entry = entries->element[i];
        if (entry->type != REDIS_REPLY_ARRAY || entry->elements < 2 ||
            entry->element[0]->type != REDIS_REPLY_STRING)
            continue;
        const redisReply *fields = entry->element[1];
        size_t json_len;
        hs_event_t event = {.topic = field_str(fields, "topic", NULL),
                            .message_id = field_str(fields, "id", NULL),
                            .message_json = field_str(fields, "json", &json_len),
                            .message_json_len = json_len};
        char *token = hs_strdup(entry->element[0]->str);
        if (event.topic && event.message_id && event.message_json)
            bus->consumer(&event, token, bus->consumer_data);
        else
            hs_bus_ack(&bus->base, token); /* malformed: nothing to deliver */
    }
}

static void events_read_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    redis_bus_t *bus = privdata;
    redisReply *r = reply;
    if (r == NULL || bus->closing)
        return;
    if (r->type == REDIS_REPLY_ERROR) {
        hs_log_error("bus: XREADGROUP failed: %s", r->str);
    } else if (r->type == REDIS_REPLY_ARRAY) {
        /* [[stream, [entries]]] */
        for (size_t i = 0; i < r->elements; i++)
            if (r->element[i]->type == REDIS_REPLY_ARRAY && r->element[i]->elements == 2)
                handle_entries(bus, r->element[i]->element[1]);
    }
    read_events(bus);
}

static void read_events(redis_bus_t *bus)
{
    if (bus->events == NULL || bus->closing)
        return;
    redisAsyncCommand(bus->events, events_read_cb, bus,
                      "XREADGROUP GROUP %s %s COUNT %s BLOCK %s STREAMS %s >", GROUP,
                      bus->consumer_name, READ_COUNT, BLOCK_MS, EVENTS_KEY);
}

static void claim_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    redis_bus_t *bus = privdata;
    redisReply *r = reply;
    /* [next-cursor, [entries], ...] */
    if (reply_ok(r) && r->type == REDIS_REPLY_ARRAY && r->elements >= 2) {
        if (r->element[1]->elements > 0)
            hs_log_info("bus: took over %zu events left by a consumer that stopped",
                        r->element[1]->elements);
        handle_entries(bus, r->element[1]);
    }
}

static void claim_timer_cb(uv_timer_t *t)
{
    redis_bus_t *bus = t->data;
    if (bus->cmd && !bus->closing)
        redisAsyncCommand(bus->cmd, claim_cb, bus, "XAUTOCLAIM %s %s %s %s 0-0 COUNT %s",
                          EVENTS_KEY, GROUP, bus->consumer_name, CLAIM_IDLE_MS, READ_COUNT);
}

static void group_created_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    redis_bus_t *bus = privdata;
    redisReply *r = reply;
    if (r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "BUSYGROUP", 9) != 0)
        hs_log_error("bus: creating the consumer group failed: %s", r->str);
    read_events(bus);
}

static int redis_consume_events(hs_bus_t *b, hs_bus_event_handler handler, void *data)
{
    redis_bus_t *bus = (redis_bus_t *)b;
    if (bus->consumer)
        return HS_EEXIST;
    char err[256];
    bus->events = open_context(bus, err, sizeof(err));
    if (bus->events == NULL) {
        hs_log_error("bus: %s", err);
        return HS_EIO;
    }
    bus->consumer = handler;
    bus->consumer_data = data;
    hs_ulid_t id;
    hs_ulid_new(&id);
    char text[HS_ULID_LEN + 1];
    hs_ulid_format(&id, text);
    snprintf(bus->consumer_name, sizeof(bus->consumer_name), "consumer-%s", text);
    redisAsyncCommand(bus->cmd, group_created_cb, bus, "XGROUP CREATE %s %s $ MKSTREAM", EVENTS_KEY,
                      GROUP);
    uv_timer_init(bus->base.loop, &bus->claim_timer);
    bus->claim_timer.data = bus;
    uv_timer_start(&bus->claim_timer, claim_timer_cb, CLAIM_EVERY_MS, CLAIM_EVERY_MS);
    bus->claim_timer_on = true;
    return 0;
}

static void redis_ack(hs_bus_t *b, void *token)
{
    redis_bus_t *bus = (redis_bus_t *)b;
    if (bus->cmd && !bus->closing)
        redisAsyncCommand(bus->cmd, NULL, NULL, "XACK %s %s %s", EVENTS_KEY, GROUP, (char *)token);
    hs_free(token);
}

/* ---- commands to nodes ------------------------------------------------------------ */

static const char *const kind_names[] = {"", "deliver", "notify", "subscribe", "unsubscribe"};

static void redis_send_to_node(hs_bus_t *b, const char *node, const hs_node_cmd_t *cmd,
                               hs_bus_done_cb cb, void *data)
{
    redis_bus_t *bus = (redis_bus_t *)b;
    char key[300];
    snprintf(key, sizeof(key), "houston:node:%s", node);
    const char *argv[16];
    size_t lens[16];
    int n = 0;
#define ARG(s, l) (argv[n] = (s), lens[n] = (l), n++)
#define STR(s)    ARG((s), strlen(s))
    if (cmd->kind == HS_NODE_SUBSCRIBE && cmd->topic) {
        /* Routed to this node before the subscribe is answered. */
        char topic_key[200];
        snprintf(topic_key, sizeof(topic_key), "houston:topic:%s", cmd->topic);
        redisAsyncCommand(bus->cmd, NULL, NULL, "SADD %s %s", topic_key, node);
        redisAsyncCommand(bus->cmd, NULL, NULL, "SADD houston:nodetopics:%s %s", node, cmd->topic);
    }
    STR("XADD");
    STR(key);
    STR("MAXLEN");
    STR("~");
    STR(NODE_MAXLEN);
    STR("*");
    STR("kind");
    STR(kind_names[cmd->kind]);
    if (cmd->topic) {
        STR("topic");
        STR(cmd->topic);
    }
    if (cmd->connection_id) {
        STR("conn");
        STR(cmd->connection_id);
    }
    if (cmd->message_id) {
        STR("mid");
        STR(cmd->message_id);
    }
    if (cmd->frame_text) {
        STR("text");
        ARG(cmd->frame_text, cmd->frame_text_len);
    }
#undef STR
#undef ARG
    pending_t *p = pending_new(data);
    p->done = cb;
    if (send_argv(bus, done_reply_cb, p, n, argv, lens) != 0)
        fail_later(bus, p);
}

/* ---- notifier: this node's command stream ----------------------------------------- */

static void read_node(redis_bus_t *bus);

static void node_read_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    redis_bus_t *bus = privdata;
    redisReply *r = reply;
    if (r == NULL || bus->closing)
        return;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
        r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements == 2) {
        const redisReply *entries = r->element[0]->element[1];
        for (size_t i = 0; entries && i < entries->elements; i++) {
            const redisReply *entry = entries->element[i];
            if (entry->type != REDIS_REPLY_ARRAY || entry->elements < 2)
                continue;
            snprintf(bus->node_last_id, sizeof(bus->node_last_id), "%s", entry->element[0]->str);
            const redisReply *fields = entry->element[1];
            const char *kind = field_str(fields, "kind", NULL);
            hs_node_cmd_t cmd = {0};
            for (int k = HS_NODE_DELIVER; k <= HS_NODE_UNSUBSCRIBE; k++)
                if (kind && strcmp(kind, kind_names[k]) == 0)
                    cmd.kind = (hs_node_cmd_kind_t)k;
            if (cmd.kind == 0)
                continue;
            cmd.topic = field_str(fields, "topic", NULL);
            cmd.connection_id = field_str(fields, "conn", NULL);
            cmd.message_id = field_str(fields, "mid", NULL);
            cmd.frame_text = field_str(fields, "text", &cmd.frame_text_len);
            bus->node_handler(&cmd, bus->node_data);
        }
    } else if (r->type == REDIS_REPLY_ERROR) {
        hs_log_error("bus: reading node commands failed: %s", r->str);
    }
    read_node(bus);
}

static void read_node(redis_bus_t *bus)
{
    if (bus->node == NULL || bus->closing)
        return;
    redisAsyncCommand(bus->node, node_read_cb, bus, "XREAD COUNT %s BLOCK %s STREAMS %s %s",
                      READ_COUNT, BLOCK_MS, bus->node_key, bus->node_last_id);
}

static void node_start_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    redis_bus_t *bus = privdata;
    redisReply *r = reply;
    /* Start after the newest entry: commands for an earlier life of this
     * node id are for connections that are gone. */
    snprintf(bus->node_last_id, sizeof(bus->node_last_id), "0-0");
    if (reply_ok(r) && r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
        r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements >= 1)
        snprintf(bus->node_last_id, sizeof(bus->node_last_id), "%s",
                 r->element[0]->element[0]->str);
    read_node(bus);
}

static int redis_serve_node(hs_bus_t *b, const char *node, hs_bus_cmd_handler handler, void *data)
{
    redis_bus_t *bus = (redis_bus_t *)b;
    if (bus->node_handler)
        return HS_EEXIST;
    char err[256];
    bus->node = open_context(bus, err, sizeof(err));
    if (bus->node == NULL) {
        hs_log_error("bus: %s", err);
        return HS_EIO;
    }
    bus->node_name = hs_strdup(node);
    snprintf(bus->node_key, sizeof(bus->node_key), "houston:node:%s", node);
    bus->node_handler = handler;
    bus->node_data = data;
    redisAsyncCommand(bus->cmd, node_start_cb, bus, "XREVRANGE %s + - COUNT 1", bus->node_key);
    return 0;
}

/* ---- directory ----------------------------------------------------------------------- */

static void redis_register_connection(hs_bus_t *b, const char *node, const char *conn)
{
    redis_bus_t *bus = (redis_bus_t *)b;
    if (bus->cmd && !bus->closing) {
        redisAsyncCommand(bus->cmd, NULL, NULL, "HSET houston:conns %s %s", conn, node);
        redisAsyncCommand(bus->cmd, NULL, NULL, "SADD houston:nodeconns:%s %s", node, conn);
    }
}

static void redis_unregister_connection(hs_bus_t *b, const char *node, const char *conn)
{
    redis_bus_t *bus = (redis_bus_t *)b;
    if (bus->cmd && !bus->closing) {
        redisAsyncCommand(bus->cmd, NULL, NULL, "HDEL houston:conns %s", conn);
        redisAsyncCommand(bus->cmd, NULL, NULL, "SREM houston:nodeconns:%s %s", node, conn);
    }
}

static void redis_add_topic_node(hs_bus_t *b, const char *topic, const char *node)
{
    redis_bus_t *bus = (redis_bus_t *)b;
    if (bus->cmd && !bus->closing) {
        redisAsyncCommand(bus->cmd, NULL, NULL, "SADD houston:topic:%s %s", topic, node);
        redisAsyncCommand(bus->cmd, NULL, NULL, "SADD houston:nodetopics:%s %s", node, topic);
    }
}

static void redis_remove_topic_node(hs_bus_t *b, const char *topic, const char *node)
{
    redis_bus_t *bus = (redis_bus_t *)b;
    if (bus->cmd && !bus->closing) {
        redisAsyncCommand(bus->cmd, NULL, NULL, "SREM houston:topic:%s %s", topic, node);
        redisAsyncCommand(bus->cmd, NULL, NULL, "SREM houston:nodetopics:%s %s", node, topic);
    }
}

static void locate_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    pending_t *p = privdata;
    redisReply *r = reply;
    if (!reply_ok(r))
        p->node(HS_EIO, NULL, p->data);
    else if (r->type == REDIS_REPLY_STRING)
        p->node(0, r->str, p->data);
    else
        p->node(HS_ENOTFOUND, NULL, p->data);
    hs_free(p);
}

static void redis_locate_connection(hs_bus_t *b, const char *conn, hs_bus_node_cb cb, void *data)
{
    redis_bus_t *bus = (redis_bus_t *)b;
    pending_t *p = pending_new(data);
    p->node = cb;
    if (bus->cmd == NULL || bus->closing ||
        redisAsyncCommand(bus->cmd, locate_cb, p, "HGET houston:conns %s", conn) != REDIS_OK)
        fail_later(bus, p);
}

static void nodes_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    pending_t *p = privdata;
    redisReply *r = reply;
    if (!reply_ok(r) || r->type != REDIS_REPLY_ARRAY) {
        p->nodes(HS_EIO, NULL, 0, p->data);
    } else {
        const char *stack[32] = {0};
        const char **nodes = r->elements <= 32 ? stack : hs_malloc(r->elements * sizeof(char *));
        for (size_t i = 0; i < r->elements; i++)
            nodes[i] = r->element[i]->str;
        p->nodes(0, nodes, r->elements, p->data);
        if (nodes != stack)
            hs_free(nodes);
    }
    hs_free(p);
}

static void redis_topic_nodes(hs_bus_t *b, const char *topic, hs_bus_nodes_cb cb, void *data)
{
    redis_bus_t *bus = (redis_bus_t *)b;
    pending_t *p = pending_new(data);
    p->nodes = cb;
    if (bus->cmd == NULL || bus->closing ||
        redisAsyncCommand(bus->cmd, nodes_cb, p, "SMEMBERS houston:topic:%s", topic) != REDIS_OK)
        fail_later(bus, p);
}

/* ---- heartbeats and dead nodes ---------------------------------------------------- */

/* Removes a dead node's directory entries, in Redis, in one script, so the
 * connections and topic memberships go together. Returns 1 when this caller
 * did it (another survivor may have been first). */
static const char cleanup_script[] =
    "if redis.call('SET', KEYS[1], '1', 'NX', 'PX', 30000) == false then return 0 end "
    "for _, c in ipairs(redis.call('SMEMBERS', KEYS[2])) do "
    "  if redis.call('HGET', 'houston:conns', c) == ARGV[1] then "
    "    redis.call('HDEL', 'houston:conns', c) end end "
    "for _, t in ipairs(redis.call('SMEMBERS', KEYS[3])) do "
    "  redis.call('SREM', 'houston:topic:' .. t, ARGV[1]) end "
    "redis.call('DEL', KEYS[2], KEYS[3], KEYS[4]) "
    "redis.call('SREM', 'houston:nodes', ARGV[1]) "
    "return 1";

typedef struct dead_check {
    redis_bus_t *bus;
    char node[256];
} dead_check_t;

static void cleanup_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    dead_check_t *d = privdata;
    redisReply *r = reply;
    if (r && r->type == REDIS_REPLY_INTEGER && r->integer == 1 && !d->bus->closing) {
        hs_log_warn("bus: notifier node %s stopped beating; its connections were removed", d->node);
        d->bus->dead_cb(d->node, d->bus->dead_data);
    }
    hs_free(d);
}

static void alive_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    dead_check_t *d = privdata;
    redisReply *r = reply;
    redis_bus_t *bus = d->bus;
    if (r == NULL || r->type != REDIS_REPLY_INTEGER || r->integer != 0 || bus->closing ||
        bus->cmd == NULL) {
        hs_free(d);
        return;
    }
    char lock[300], conns[300], topics[300], stream[300];
    snprintf(lock, sizeof(lock), "houston:cleanup:%s", d->node);
    snprintf(conns, sizeof(conns), "houston:nodeconns:%s", d->node);
    snprintf(topics, sizeof(topics), "houston:nodetopics:%s", d->node);
    snprintf(stream, sizeof(stream), "houston:node:%s", d->node);
    redisAsyncCommand(bus->cmd, cleanup_cb, d, "EVAL %s 4 %s %s %s %s %s", cleanup_script, lock,
                      conns, topics, stream, d->node);
}

static void nodes_listed_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    redis_bus_t *bus = privdata;
    redisReply *r = reply;
    if (!reply_ok(r) || r->type != REDIS_REPLY_ARRAY || bus->closing || bus->cmd == NULL)
        return;
    for (size_t i = 0; i < r->elements; i++) {
        const char *node = r->element[i]->str;
        if (node == NULL || strcmp(node, bus->node_name) == 0)
            continue;
        dead_check_t *d = hs_calloc(1, sizeof(*d));
        d->bus = bus;
        snprintf(d->node, sizeof(d->node), "%s", node);
        redisAsyncCommand(bus->cmd, alive_cb, d, "EXISTS houston:alive:%s", node);
    }
}

static void heartbeat_cb(uv_timer_t *t)
{
    redis_bus_t *bus = t->data;
    if (bus->cmd == NULL || bus->closing)
        return;
    redisAsyncCommand(bus->cmd, NULL, NULL, "SET houston:alive:%s 1 PX %llu", bus->node_name,
                      (unsigned long long)(3 * bus->heartbeat_ms));
    redisAsyncCommand(bus->cmd, NULL, NULL, "SADD houston:nodes %s", bus->node_name);
    redisAsyncCommand(bus->cmd, nodes_listed_cb, bus, "SMEMBERS houston:nodes");
}

static void redis_watch_nodes(hs_bus_t *b, const char *node, uint64_t interval_ms,
                              void (*dead_cb)(const char *node, void *data), void *data)
{
    redis_bus_t *bus = (redis_bus_t *)b;
    if (bus->heartbeat_on || interval_ms == 0)
        return;
    if (bus->node_name == NULL)
        bus->node_name = hs_strdup(node);
    bus->heartbeat_ms = interval_ms;
    bus->dead_cb = dead_cb;
    bus->dead_data = data;
    uv_timer_init(bus->base.loop, &bus->heartbeat);
    bus->heartbeat.data = bus;
    uv_timer_start(&bus->heartbeat, heartbeat_cb, 0, interval_ms);
    bus->heartbeat_on = true;
}

/* ---- closing ----------------------------------------------------------------------- */

static void claim_timer_closed_cb(uv_handle_t *h)
{
    redis_bus_t *bus = h->data;
    bus->claim_timer_on = false;
    maybe_closed(bus);
}

static void finish_closed_cb(uv_handle_t *h)
{
    redis_bus_t *bus = h->data;
    hs_bus_done_cb cb = bus->close_cb;
    void *data = bus->close_data;
    hs_free(bus->node_name);
    hs_free(bus);
    if (cb)
        cb(0, data);
}

/* Frees the bus once every context disconnected and the timer closed - from
 * a close callback, so never inside hs_bus_close or a hiredis callback. */
static void heartbeat_closed_cb(uv_handle_t *h)
{
    redis_bus_t *bus = h->data;
    bus->heartbeat_on = false;
    maybe_closed(bus);
}

static void maybe_closed(redis_bus_t *bus)
{
    if (!bus->closing || bus->finishing || bus->open_contexts > 0 || bus->claim_timer_on ||
        bus->heartbeat_on)
        return;
    bus->finishing = true;
    uv_close((uv_handle_t *)&bus->finish, finish_closed_cb);
}

static void redis_close(hs_bus_t *b, hs_bus_done_cb cb, void *data)
{
    redis_bus_t *bus = (redis_bus_t *)b;
    bus->close_cb = cb;
    bus->close_data = data;
    bus->closing = true;
    if (bus->claim_timer_on)
        uv_close((uv_handle_t *)&bus->claim_timer, claim_timer_closed_cb);
    if (bus->heartbeat_on) {
        /* A clean stop: leave the directory now rather than after the
         * timeout (the notifier already removed its connections). */
        if (bus->cmd) {
            redisAsyncCommand(bus->cmd, NULL, NULL, "DEL houston:alive:%s", bus->node_name);
            redisAsyncCommand(bus->cmd, NULL, NULL, "SREM houston:nodes %s", bus->node_name);
        }
        uv_close((uv_handle_t *)&bus->heartbeat, heartbeat_closed_cb);
    }
    /* Replies still due are delivered (with NULL for blocked reads) and the
     * disconnect callbacks count the contexts down. */
    redisAsyncContext *contexts[] = {bus->cmd, bus->events, bus->node};
    for (int i = 0; i < 3; i++)
        if (contexts[i])
            redisAsyncDisconnect(contexts[i]);
    maybe_closed(bus);
}

static const hs_bus_ops_t redis_ops = {
    .name = "redis",
    .publish_event = redis_publish_event,
    .consume_events = redis_consume_events,
    .ack = redis_ack,
    .send_to_node = redis_send_to_node,
    .serve_node = redis_serve_node,
    .register_connection = redis_register_connection,
    .unregister_connection = redis_unregister_connection,
    .add_topic_node = redis_add_topic_node,
    .remove_topic_node = redis_remove_topic_node,
    .locate_connection = redis_locate_connection,
    .topic_nodes = redis_topic_nodes,
    .watch_nodes = redis_watch_nodes,
    .close = redis_close,
};

int hs_bus_redis_open(uv_loop_t *loop, const char *url, hs_bus_t **out, char *err, size_t err_len)
{
    redis_bus_t *bus = hs_calloc(1, sizeof(*bus));
    bus->base.ops = &redis_ops;
    bus->base.loop = loop;
    bus->port = 6379;
    const char *p = strncmp(url, "redis://", 8) == 0 ? url + 8 : NULL;
    const char *colon = p ? strchr(p, ':') : NULL;
    const char *slash = p ? strchr(p, '/') : NULL;
    size_t host_len = p ? (size_t)((colon ? colon : slash ? slash : p + strlen(p)) - p) : 0;
    if (p == NULL || host_len == 0 || host_len >= sizeof(bus->host)) {
        snprintf(err, err_len, "bus URL '%s' is not redis://host[:port][/db]", url);
        hs_free(bus);
        return HS_EINVAL;
    }
    memcpy(bus->host, p, host_len);
    if (colon)
        bus->port = atoi(colon + 1);
    if (slash)
        bus->db = atoi(slash + 1);
    bus->cmd = open_context(bus, err, err_len);
    if (bus->cmd == NULL) {
        hs_free(bus);
        return HS_EIO;
    }
    uv_timer_init(loop, &bus->finish);
    bus->finish.data = bus;
    *out = &bus->base;
    return 0;
}
