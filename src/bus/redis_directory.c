/* redis_directory.c - the directory on Redis: which node holds a
 * connection (houston:conns) and which nodes hold subscribers of a topic
 * (houston:{t:<topic>}:nodes, kept while a subscribe is pending); a node's
 * entries put back after a reconnect; heartbeats, and the cleanup of a
 * dead node's entries by one survivor. */
#include <stdio.h>
#include <string.h>

#include "bus/redis_internal.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "core/metrics.h"

/* ---- what a link does when it is (back) up -------------------------------------------- */

/* After a reconnect, a node's directory entries are brought in line with
 * what it holds, without ever taking a live one out: the notifier's
 * on_reconnect callback adds its live connections and topics again first
 * (the sets may have been lost), and this script, sent after them on the
 * same link (the node's keys share a slot), finds the stale ones -
 * connections that left and topics whose last subscriber left while Redis
 * was away. Clearing first and adding back after (as it was done) left an
 * instant in which a consumer routing an event found no node for a live
 * topic and acknowledged the event: one message lost at a kill -9 of Redis.
 *
 * KEYS: the node's connections, its topics (slot {n:<node>}). ARGV: the
 * number of live connections, the live connections, the live topics. It
 * removes the stale connections from the node's set and answers {stale
 * connections, stale topics}; the rest is done key by key, each in its own
 * slot: houston:conns loses the stale connections that still point to this
 * node (conns_drop_script), and each stale topic goes the way of a topic
 * whose last subscriber left (remove_topic_script: not while a subscribe is
 * pending). One argument per live connection and topic: a node's whole
 * directory in one command (Redis takes millions). */
const char hs_redis__resync_script[] =
    "local n = tonumber(ARGV[1]) "
    "local live, stale_conns, stale_topics = {}, {}, {} "
    "for i = 2, 1 + n do live[ARGV[i]] = true end "
    "for _, c in ipairs(redis.call('SMEMBERS', KEYS[1])) do "
    "  if not live[c] then redis.call('SREM', KEYS[1], c) stale_conns[#stale_conns + 1] = c end "
    "end "
    "local topics = {} "
    "for i = 2 + n, #ARGV do topics[ARGV[i]] = true end "
    "for _, t in ipairs(redis.call('SMEMBERS', KEYS[2])) do "
    "  if not topics[t] then stale_topics[#stale_topics + 1] = t end end "
    "return {stale_conns, stale_topics}";

/* KEYS: houston:conns. ARGV: the node, then connections: each goes if it
 * still points to the node (it may have moved to another since). */
const char hs_redis__conns_drop_script[] =
    "local gone = 0 "
    "for i = 2, #ARGV do "
    "  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[1] then "
    "    redis.call('HDEL', KEYS[1], ARGV[i]) gone = gone + 1 end end "
    "return gone";

/* What the node re-registers inside its on_reconnect callback: its live
 * connections and topics. */
typedef struct name_list {
    char **names;
    size_t count, cap;
} name_list_t;

struct resync {
    name_list_t conns, topics;
};

static void list_add(name_list_t *l, const char *name)
{
    if (l->count == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->names = hs_realloc(l->names, l->cap * sizeof(char *));
    }
    l->names[l->count++] = hs_strdup(name);
}

static void list_free(name_list_t *l)
{
    for (size_t i = 0; i < l->count; i++)
        hs_free(l->names[i]);
    hs_free(l->names);
}

static bool list_has(const name_list_t *l, const char *name)
{
    for (size_t i = 0; l && i < l->count; i++)
        if (strcmp(l->names[i], name) == 0)
            return true;
    return false;
}

static void remove_topic(redis_bus_t *bus, const char *topic, const char *node);

/* Connections that point to node, gone from houston:conns (in batches, so
 * no command is huge). */
static void conns_drop(redis_bus_t *bus, const char *node, const redisReply *conns)
{
    for (size_t from = 0; conns && from < conns->elements; from += 256) {
        size_t count = conns->elements - from < 256 ? conns->elements - from : 256;
        const char **argv = hs_malloc((count + 2) * sizeof(char *));
        size_t n = 0;
        argv[n++] = CONNS_KEY;
        argv[n++] = node;
        for (size_t i = 0; i < count; i++)
            if (conns->element[from + i]->type == REDIS_REPLY_STRING)
                argv[n++] = conns->element[from + i]->str;
        hs_redis__cmd_script(bus, SCRIPT_CONNS_DROP, NULL, NULL, 1, (int)n, argv, NULL);
        hs_free(argv);
    }
}

/* The answer of resync_script. Its stale topics were stale when the node
 * listed its live ones; a topic the node took up since (a subscribe applied,
 * a client's own) is live: removing it now would take the node out of the
 * topic's set after it was put back (the pending count is down once the
 * node applied the subscribe) - a live subscriber no longer routed. Those
 * are noted meanwhile (hs_redis__resync_note_topic) and kept. A topic taken
 * up after this answer is safe: its add goes out after the removal, on the
 * same link (the topic's slot). */
static void resynced_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    redis_bus_t *bus = privdata;
    redisReply *r = reply;
    name_list_t *recent = bus->resync_recent;
    if (--bus->resyncs_in_flight == 0)
        bus->resync_recent = NULL;
    if (hs_redis__reply_ok(r) && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        !bus->closing) {
        conns_drop(bus, bus->node_name, r->element[0]);
        const redisReply *topics = r->element[1];
        for (size_t i = 0; topics->type == REDIS_REPLY_ARRAY && i < topics->elements; i++)
            if (topics->element[i]->type == REDIS_REPLY_STRING &&
                !list_has(recent, topics->element[i]->str))
                remove_topic(bus, topics->element[i]->str, bus->node_name);
    }
    if (bus->resync_recent == NULL && recent) {
        list_free(recent);
        hs_free(recent);
    }
}

void hs_redis__resync_note_topic(redis_bus_t *bus, const char *topic)
{
    if (bus->resyncs_in_flight > 0)
        list_add(bus->resync_recent, topic);
}

/* The stale entries go, after the live ones went back (the node's keys on
 * one link, so in that order). */
static void resync_send(redis_bus_t *bus, struct resync *r)
{
    char conns[KEY_MAX], topics[KEY_MAX], count[24];
    NODE_KEY(conns, bus->node_name, "conns");
    NODE_KEY(topics, bus->node_name, "topics");
    snprintf(count, sizeof(count), "%zu", r->conns.count);
    size_t argc = 3 + r->conns.count + r->topics.count;
    const char **argv = hs_malloc(argc * sizeof(char *));
    size_t n = 0;
    argv[n++] = conns;
    argv[n++] = topics;
    argv[n++] = count;
    for (size_t i = 0; i < r->conns.count; i++)
        argv[n++] = r->conns.names[i];
    for (size_t i = 0; i < r->topics.count; i++)
        argv[n++] = r->topics.names[i];
    if (hs_redis__cmd_script(bus, SCRIPT_RESYNC, resynced_cb, bus, 2, (int)argc, argv, NULL) ==
            REDIS_OK &&
        bus->resyncs_in_flight++ == 0)
        bus->resync_recent = hs_calloc(1, sizeof(name_list_t));
    hs_free(argv);
}

/* ---- directory ----------------------------------------------------------------------- */

void hs_redis__register_connection(hs_bus_t *b, const char *node, const char *conn,
                                   hs_bus_done_cb cb, void *data)
{
    redis_bus_t *bus = (redis_bus_t *)b;
    pending_t *p = cb ? hs_redis__pending_new(data) : NULL;
    if (p)
        p->done = cb;
    if (!hs_redis__cmd_up(bus)) {
        if (p)
            hs_redis__fail_later(bus, p);
        return;
    }
    if (bus->resync && strcmp(node, bus->node_name) == 0)
        list_add(&bus->resync->conns, conn);
    char node_conns[KEY_MAX];
    NODE_KEY(node_conns, node, "conns");
    hs_redis__cmdl(bus, NULL, NULL, "SADD", node_conns, conn);
    if (hs_redis__cmdl(bus, p ? hs_redis__done_reply_cb : NULL, p, "HSET", CONNS_KEY, conn, node) !=
            REDIS_OK &&
        p)
        hs_redis__fail_later(bus, p);
}

void hs_redis__unregister_connection(hs_bus_t *b, const char *node, const char *conn)
{
    redis_bus_t *bus = (redis_bus_t *)b;
    char node_conns[KEY_MAX];
    NODE_KEY(node_conns, node, "conns");
    hs_redis__cmdl(bus, NULL, NULL, "HDEL", CONNS_KEY, conn);
    hs_redis__cmdl(bus, NULL, NULL, "SREM", node_conns, conn);
}

void hs_redis__add_topic_node(hs_bus_t *b, const char *topic, const char *node)
{
    redis_bus_t *bus = (redis_bus_t *)b;
    if (!hs_redis__cmd_up(bus))
        return;
    if (bus->resync && strcmp(node, bus->node_name) == 0)
        list_add(&bus->resync->topics, topic);
    if (bus->node_name && strcmp(node, bus->node_name) == 0)
        hs_redis__resync_note_topic(bus, topic);
    char topic_nodes[KEY_MAX], node_topics[KEY_MAX];
    TOPIC_KEY(topic_nodes, topic, "nodes");
    NODE_KEY(node_topics, node, "topics");
    hs_redis__cmdl(bus, NULL, NULL, "SADD", topic_nodes, node);
    hs_redis__cmdl(bus, NULL, NULL, "SADD", node_topics, topic);
}

/* The node's last local subscriber of a topic left; a subscribe still on its
 * way to the node keeps the topic routed there. KEYS: the topic's node set,
 * the topic's pending count for the node (one slot: {t:<topic>}). ARGV: the
 * node. Answers 1 when the node left the set; then the topic leaves the
 * node's topic set (its own slot, the next step). */
const char hs_redis__remove_topic_script[] =
    "if (tonumber(redis.call('GET', KEYS[2])) or 0) > 0 then return 0 end "
    "redis.call('SREM', KEYS[1], ARGV[1]) return 1";

typedef struct topic_op {
    redis_bus_t *bus;
    char node_topics[KEY_MAX];
    char topic[KEY_MAX];
} topic_op_t;

static void topic_removed_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    topic_op_t *op = privdata;
    redisReply *r = reply;
    if (r && r->type == REDIS_REPLY_INTEGER && r->integer == 1 && !op->bus->closing)
        hs_redis__cmdl(op->bus, NULL, NULL, "SREM", op->node_topics, op->topic);
    hs_free(op);
}

static void remove_topic(redis_bus_t *bus, const char *topic, const char *node)
{
    char topic_nodes[KEY_MAX], pend[KEY_MAX];
    TOPIC_KEY(topic_nodes, topic, "nodes");
    snprintf(pend, sizeof(pend), "houston:{t:%s}:pend:%s", topic, node);
    topic_op_t *op = hs_calloc(1, sizeof(*op));
    op->bus = bus;
    NODE_KEY(op->node_topics, node, "topics");
    snprintf(op->topic, sizeof(op->topic), "%s", topic);
    if (hs_redis__cmd_script(bus, SCRIPT_REMOVE_TOPIC, topic_removed_cb, op, 2, 3,
                             (const char *[]){topic_nodes, pend, node}, NULL) != REDIS_OK)
        hs_free(op);
}

void hs_redis__remove_topic_node(hs_bus_t *b, const char *topic, const char *node)
{
    remove_topic((redis_bus_t *)b, topic, node);
}

static void locate_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    pending_t *p = privdata;
    redisReply *r = reply;
    if (!hs_redis__reply_ok(r))
        p->node(hs_redis__reply_status(r), NULL, p->data);
    else if (r->type == REDIS_REPLY_STRING)
        p->node(0, r->str, p->data);
    else
        p->node(HS_ENOTFOUND, NULL, p->data);
    hs_free(p);
}

void hs_redis__locate_connection(hs_bus_t *b, const char *conn, hs_bus_node_cb cb, void *data)
{
    redis_bus_t *bus = (redis_bus_t *)b;
    pending_t *p = hs_redis__pending_new(data);
    p->node = cb;
    if (hs_redis__cmdl(bus, locate_cb, p, "HGET", CONNS_KEY, conn) != REDIS_OK)
        hs_redis__fail_later(bus, p);
}

static void nodes_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    pending_t *p = privdata;
    redisReply *r = reply;
    if (!hs_redis__reply_ok(r) || r->type != REDIS_REPLY_ARRAY) {
        int status = hs_redis__reply_status(r); /* LOADING and the like: 503 */
        p->nodes(status ? status : HS_EIO, NULL, 0, p->data);
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

void hs_redis__topic_nodes(hs_bus_t *b, const char *topic, hs_bus_nodes_cb cb, void *data)
{
    redis_bus_t *bus = (redis_bus_t *)b;
    pending_t *p = hs_redis__pending_new(data);
    p->nodes = cb;
    char topic_nodes[KEY_MAX];
    TOPIC_KEY(topic_nodes, topic, "nodes");
    if (hs_redis__cmdl(bus, nodes_cb, p, "SMEMBERS", topic_nodes) != REDIS_OK)
        hs_redis__fail_later(bus, p);
}

/* ---- heartbeats and dead nodes ---------------------------------------------------- */

/* Removes a dead node's directory entries. First, in one script on the
 * node's own keys (slot {n:<node>}): the lock (one survivor does it), the
 * node's connections and topics read and removed, its stream removed; the
 * node's command counter is left to expire in a day: a node that was only
 * stalled numbers on, and sees that commands were removed
 * (node_check_script). Answers {connections, topics}, or 0 when another
 * survivor was first. Then key by key, each in its own slot: the
 * connections that still point to the node leave houston:conns, the node
 * leaves each topic's set and houston:nodes. KEYS: the lock, the node's
 * connections, its topics, its stream, its counter. */
const char hs_redis__cleanup_script[] =
    "if redis.call('SET', KEYS[1], '1', 'NX', 'PX', 30000) == false then return 0 end "
    "local conns = redis.call('SMEMBERS', KEYS[2]) "
    "local topics = redis.call('SMEMBERS', KEYS[3]) "
    "redis.call('DEL', KEYS[2], KEYS[3], KEYS[4]) "
    "redis.call('PEXPIRE', KEYS[5], 86400000) "
    "return {conns, topics}";

typedef struct dead_check {
    redis_bus_t *bus;
    char node[256];
} dead_check_t;

static void cleanup_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    dead_check_t *d = privdata;
    redisReply *r = reply;
    redis_bus_t *bus = d->bus;
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 && !bus->closing) {
        conns_drop(bus, d->node, r->element[0]);
        const redisReply *topics = r->element[1];
        for (size_t i = 0; topics->type == REDIS_REPLY_ARRAY && i < topics->elements; i++) {
            char topic_nodes[KEY_MAX];
            if (topics->element[i]->type != REDIS_REPLY_STRING)
                continue;
            TOPIC_KEY(topic_nodes, topics->element[i]->str, "nodes");
            hs_redis__cmdl(bus, NULL, NULL, "SREM", topic_nodes, d->node);
        }
        hs_redis__cmdl(bus, NULL, NULL, "SREM", NODES_KEY, d->node);
        hs_log_warn("bus: notifier node %s stopped beating; its connections were removed", d->node);
        bus->dead_cb(d->node, bus->dead_data);
    }
    hs_free(d);
}

static void alive_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    dead_check_t *d = privdata;
    redisReply *r = reply;
    redis_bus_t *bus = d->bus;
    if (r == NULL || r->type != REDIS_REPLY_INTEGER || r->integer != 0 || bus->closing) {
        hs_free(d);
        return;
    }
    char lock[KEY_MAX], conns[KEY_MAX], topics[KEY_MAX], stream[KEY_MAX], seq[KEY_MAX];
    NODE_KEY(lock, d->node, "cleanup");
    NODE_KEY(conns, d->node, "conns");
    NODE_KEY(topics, d->node, "topics");
    NODE_KEY(stream, d->node, "stream");
    NODE_KEY(seq, d->node, "seq");
    if (hs_redis__cmd_script(bus, SCRIPT_CLEANUP, cleanup_cb, d, 5, 5,
                             (const char *[]){lock, conns, topics, stream, seq}, NULL) != REDIS_OK)
        hs_free(d);
}

static void nodes_listed_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    redis_bus_t *bus = privdata;
    redisReply *r = reply;
    if (!hs_redis__reply_ok(r) || r->type != REDIS_REPLY_ARRAY || !hs_redis__cmd_up(bus))
        return;
    for (size_t i = 0; i < r->elements; i++) {
        const char *node = r->element[i]->str;
        if (node == NULL || strcmp(node, bus->node_name) == 0)
            continue;
        dead_check_t *d = hs_calloc(1, sizeof(*d));
        d->bus = bus;
        snprintf(d->node, sizeof(d->node), "%s", node);
        char alive[KEY_MAX];
        NODE_KEY(alive, node, "alive");
        if (hs_redis__cmdl(bus, alive_cb, d, "EXISTS", alive) != REDIS_OK)
            hs_free(d);
    }
}

static void heartbeat_cb(uv_timer_t *t)
{
    redis_bus_t *bus = t->data;
    if (!hs_redis__cmd_up(bus))
        return;
    hs_metrics_singleton.bus_heartbeats++;
    char alive[KEY_MAX], ms[24], beat[80];
    NODE_KEY(alive, bus->node_name, "alive");
    snprintf(ms, sizeof(ms), "%llu", (unsigned long long)(3 * bus->heartbeat_ms));
    /* The value is only read by GET /api/v1/nodes (redis_status.c): when,
     * how often, and this node's deliveries so far. */
    snprintf(beat, sizeof(beat), "%llu %llu %llu", (unsigned long long)hs_now_ms(),
             (unsigned long long)bus->heartbeat_ms,
             (unsigned long long)hs_metrics_singleton.deliveries);
    hs_redis__cmdl(bus, NULL, NULL, "SET", alive, beat, "PX", ms);
    hs_redis__cmdl(bus, NULL, NULL, "SADD", NODES_KEY, bus->node_name);
    hs_redis__cmdl(bus, nodes_listed_cb, bus, "SMEMBERS", NODES_KEY);
}

void hs_redis__watch_nodes(hs_bus_t *b, const char *node, uint64_t interval_ms,
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
    uv_timer_start(&bus->heartbeat, heartbeat_cb, 0, interval_ms);
    bus->heartbeat_on = true;
}

/* ---- the command link (back) up, and a clean stop ----------------------------------- */

void hs_redis__directory_cmd_up(redis_bus_t *bus, bool again)
{
    if (again && bus->node_name && bus->node_handler) {
        /* Entries of connections that left while Redis was away are stale:
         * the notifier puts back the live ones (noted on their way), then
         * the rest of this node's go (resync_script). */
        struct resync r = {0};
        bus->resync = &r;
        if (bus->reconnect_cb)
            bus->reconnect_cb(bus->reconnect_data);
        bus->resync = NULL;
        resync_send(bus, &r);
        list_free(&r.conns);
        list_free(&r.topics);
    } else if (again && bus->reconnect_cb) {
        bus->reconnect_cb(bus->reconnect_data);
    }
    if (bus->heartbeat_on) /* listed at once (again): an event gap reaches it */
        heartbeat_cb(&bus->heartbeat);
}

void hs_redis__directory_close(redis_bus_t *bus)
{
    if (bus->heartbeat_on && bus->cmd_ready) {
        /* A clean stop: leave the directory now rather than after the
         * timeout (the notifier already removed its connections). */
        char alive[KEY_MAX];
        NODE_KEY(alive, bus->node_name, "alive");
        hs_redis__cmdl(bus, NULL, NULL, "DEL", alive);
        hs_redis__cmdl(bus, NULL, NULL, "SREM", NODES_KEY, bus->node_name);
    }
}
