/* redis_directory.c - the directory on Redis: which node holds a
 * connection (houston:conns) and which nodes hold subscribers of a topic
 * (houston:topic:<topic>, kept while a subscribe is pending); a node's
 * entries put back after a reconnect; heartbeats, and the cleanup of a
 * dead node's entries by one survivor. */
#include <stdio.h>
#include <string.h>

#include "bus/redis_internal.h"
#include "core/alloc.h"
#include "core/error.h"
#include "core/log.h"
#include "core/metrics.h"

/* ---- what a link does when it is (back) up -------------------------------------------- */

/* After a reconnect, a node's directory entries are brought in line with
 * what it holds, without ever taking a live one out: the notifier's
 * on_reconnect callback adds its live connections and topics again first
 * (the sets may have been lost), and this script, sent after them on the
 * same link, removes only the stale ones - connections that left and
 * topics whose last subscriber left while Redis was away. Clearing first
 * and adding back after (as it was done) left an instant in which a
 * consumer routing an event found no node for a live topic and acknowledged
 * the event: one message lost at a kill -9 of Redis. A topic with a
 * subscribe on its way to the node stays routed (houston:pend).
 *
 * KEYS: the node's connections, its topics, houston:conns. ARGV: the node,
 * the number of live connections, the live connections, the live topics.
 * The per-topic keys (houston:topic:<t>, houston:pend:<node>:<t>) are
 * derived inside from the members of the node's topic set, which are only
 * known inside the step. One argument per live connection and topic: a
 * node's whole directory in one command (Redis takes millions). */
const char hs_redis__resync_script[] =
    "local node, n = ARGV[1], tonumber(ARGV[2]) "
    "local live = {} "
    "for i = 3, 2 + n do live[ARGV[i]] = true end "
    "for _, c in ipairs(redis.call('SMEMBERS', KEYS[1])) do "
    "  if not live[c] then "
    "    if redis.call('HGET', KEYS[3], c) == node then redis.call('HDEL', KEYS[3], c) end "
    "    redis.call('SREM', KEYS[1], c) end end "
    "local topics = {} "
    "for i = 3 + n, #ARGV do topics[ARGV[i]] = true end "
    "for _, t in ipairs(redis.call('SMEMBERS', KEYS[2])) do "
    "  if not topics[t] and "
    "     (tonumber(redis.call('GET', 'houston:pend:' .. node .. ':' .. t)) or 0) <= 0 then "
    "    redis.call('SREM', 'houston:topic:' .. t, node) "
    "    redis.call('SREM', KEYS[2], t) end end "
    "return 1";

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

/* The stale entries go, after the live ones went back (same link, so in
 * that order). */
static void resync_send(redis_bus_t *bus, struct resync *r)
{
    char conns[KEY_MAX], topics[KEY_MAX], count[24];
    snprintf(conns, sizeof(conns), "houston:nodeconns:%s", bus->node_name);
    snprintf(topics, sizeof(topics), "houston:nodetopics:%s", bus->node_name);
    snprintf(count, sizeof(count), "%zu", r->conns.count);
    size_t argc = 5 + r->conns.count + r->topics.count;
    const char **argv = hs_malloc(argc * sizeof(char *));
    size_t n = 0;
    argv[n++] = conns;
    argv[n++] = topics;
    argv[n++] = CONNS_KEY;
    argv[n++] = bus->node_name;
    argv[n++] = count;
    for (size_t i = 0; i < r->conns.count; i++)
        argv[n++] = r->conns.names[i];
    for (size_t i = 0; i < r->topics.count; i++)
        argv[n++] = r->topics.names[i];
    hs_redis__script(hs_redis__cmd_ac(bus), bus, SCRIPT_RESYNC, NULL, NULL, 3, (int)argc, argv,
                     NULL);
    hs_free(argv);
}

/* ---- directory ----------------------------------------------------------------------- */

void hs_redis__register_connection(hs_bus_t *b, const char *node, const char *conn,
                                   hs_bus_done_cb cb, void *data)
{
    redis_bus_t *bus = (redis_bus_t *)b;
    redisAsyncContext *ac = hs_redis__cmd_ac(bus);
    pending_t *p = cb ? hs_redis__pending_new(data) : NULL;
    if (p)
        p->done = cb;
    if (ac == NULL) {
        if (p)
            hs_redis__fail_later(bus, p);
        return;
    }
    if (bus->resync && strcmp(node, bus->node_name) == 0)
        list_add(&bus->resync->conns, conn);
    redisAsyncCommand(ac, NULL, NULL, "SADD houston:nodeconns:%s %s", node, conn);
    if (redisAsyncCommand(ac, p ? hs_redis__done_reply_cb : NULL, p, "HSET houston:conns %s %s",
                          conn, node) != REDIS_OK &&
        p)
        hs_redis__fail_later(bus, p);
}

void hs_redis__unregister_connection(hs_bus_t *b, const char *node, const char *conn)
{
    redisAsyncContext *ac = hs_redis__cmd_ac((redis_bus_t *)b);
    if (ac) {
        redisAsyncCommand(ac, NULL, NULL, "HDEL houston:conns %s", conn);
        redisAsyncCommand(ac, NULL, NULL, "SREM houston:nodeconns:%s %s", node, conn);
    }
}

void hs_redis__add_topic_node(hs_bus_t *b, const char *topic, const char *node)
{
    redis_bus_t *bus = (redis_bus_t *)b;
    redisAsyncContext *ac = hs_redis__cmd_ac(bus);
    if (ac && bus->resync && strcmp(node, bus->node_name) == 0)
        list_add(&bus->resync->topics, topic);
    if (ac) {
        redisAsyncCommand(ac, NULL, NULL, "SADD houston:topic:%s %s", topic, node);
        redisAsyncCommand(ac, NULL, NULL, "SADD houston:nodetopics:%s %s", node, topic);
    }
}

/* The node's last local subscriber of a topic left; a subscribe still on its
 * way to the node keeps the topic routed there. */
const char hs_redis__remove_topic_script[] =
    "if (tonumber(redis.call('GET', KEYS[3])) or 0) > 0 then return 0 end "
    "redis.call('SREM', KEYS[1], ARGV[1]) redis.call('SREM', KEYS[2], ARGV[2]) return 1";

void hs_redis__remove_topic_node(hs_bus_t *b, const char *topic, const char *node)
{
    redis_bus_t *bus = (redis_bus_t *)b;
    char topic_key[KEY_MAX], node_topics[KEY_MAX], pend[KEY_MAX];
    snprintf(topic_key, sizeof(topic_key), "houston:topic:%s", topic);
    snprintf(node_topics, sizeof(node_topics), "houston:nodetopics:%s", node);
    snprintf(pend, sizeof(pend), "houston:pend:%s:%s", node, topic);
    hs_redis__script(hs_redis__cmd_ac(bus), bus, SCRIPT_REMOVE_TOPIC, NULL, NULL, 3, 5,
                     (const char *[]){topic_key, node_topics, pend, node, topic}, NULL);
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
    redisAsyncContext *ac = hs_redis__cmd_ac(bus);
    if (ac == NULL ||
        redisAsyncCommand(ac, locate_cb, p, "HGET houston:conns %s", conn) != REDIS_OK)
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
    redisAsyncContext *ac = hs_redis__cmd_ac(bus);
    if (ac == NULL ||
        redisAsyncCommand(ac, nodes_cb, p, "SMEMBERS houston:topic:%s", topic) != REDIS_OK)
        hs_redis__fail_later(bus, p);
}

/* ---- heartbeats and dead nodes ---------------------------------------------------- */

/* Removes a dead node's directory entries, in Redis, in one script, so the
 * connections and topic memberships go together. Returns 1 when this caller
 * did it (another survivor may have been first). The node's command counter
 * is left to expire in a day: a node that was only stalled numbers on, and
 * sees that commands were removed (node_check_script). KEYS: the lock, the
 * node's connections, its topics, its stream, its counter, houston:conns,
 * houston:nodes. The topics' node sets (houston:topic:<t>) are derived
 * inside from the members of the node's topic set, known only there. */
const char hs_redis__cleanup_script[] =
    "if redis.call('SET', KEYS[1], '1', 'NX', 'PX', 30000) == false then return 0 end "
    "for _, c in ipairs(redis.call('SMEMBERS', KEYS[2])) do "
    "  if redis.call('HGET', KEYS[6], c) == ARGV[1] then "
    "    redis.call('HDEL', KEYS[6], c) end end "
    "for _, t in ipairs(redis.call('SMEMBERS', KEYS[3])) do "
    "  redis.call('SREM', 'houston:topic:' .. t, ARGV[1]) end "
    "redis.call('DEL', KEYS[2], KEYS[3], KEYS[4]) "
    "redis.call('PEXPIRE', KEYS[5], 86400000) "
    "redis.call('SREM', KEYS[7], ARGV[1]) "
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
    redisAsyncContext *cmd = hs_redis__cmd_ac(bus);
    if (r == NULL || r->type != REDIS_REPLY_INTEGER || r->integer != 0 || cmd == NULL) {
        hs_free(d);
        return;
    }
    char lock[KEY_MAX], conns[KEY_MAX], topics[KEY_MAX], stream[KEY_MAX], seq[KEY_MAX];
    snprintf(lock, sizeof(lock), "houston:cleanup:%s", d->node);
    snprintf(conns, sizeof(conns), "houston:nodeconns:%s", d->node);
    snprintf(topics, sizeof(topics), "houston:nodetopics:%s", d->node);
    snprintf(stream, sizeof(stream), "houston:node:%s", d->node);
    snprintf(seq, sizeof(seq), "houston:nodeseq:%s", d->node);
    if (hs_redis__script(
            cmd, bus, SCRIPT_CLEANUP, cleanup_cb, d, 7, 8,
            (const char *[]){lock, conns, topics, stream, seq, CONNS_KEY, NODES_KEY, d->node},
            NULL) != REDIS_OK)
        hs_free(d);
}

static void nodes_listed_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    redis_bus_t *bus = privdata;
    redisReply *r = reply;
    redisAsyncContext *cmd = hs_redis__cmd_ac(bus);
    if (!hs_redis__reply_ok(r) || r->type != REDIS_REPLY_ARRAY || cmd == NULL)
        return;
    for (size_t i = 0; i < r->elements; i++) {
        const char *node = r->element[i]->str;
        if (node == NULL || strcmp(node, bus->node_name) == 0)
            continue;
        dead_check_t *d = hs_calloc(1, sizeof(*d));
        d->bus = bus;
        snprintf(d->node, sizeof(d->node), "%s", node);
        redisAsyncCommand(cmd, alive_cb, d, "EXISTS houston:alive:%s", node);
    }
}

static void heartbeat_cb(uv_timer_t *t)
{
    redis_bus_t *bus = t->data;
    redisAsyncContext *ac = hs_redis__cmd_ac(bus);
    if (ac == NULL)
        return;
    hs_metrics_singleton.bus_heartbeats++;
    redisAsyncCommand(ac, NULL, NULL, "SET houston:alive:%s 1 PX %llu", bus->node_name,
                      (unsigned long long)(3 * bus->heartbeat_ms));
    redisAsyncCommand(ac, NULL, NULL, "SADD houston:nodes %s", bus->node_name);
    redisAsyncCommand(ac, nodes_listed_cb, bus, "SMEMBERS houston:nodes");
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
    if (bus->heartbeat_on && bus->links[LINK_CMD].up) {
        /* A clean stop: leave the directory now rather than after the
         * timeout (the notifier already removed its connections). */
        redisAsyncContext *ac = bus->links[LINK_CMD].ac;
        redisAsyncCommand(ac, NULL, NULL, "DEL houston:alive:%s", bus->node_name);
        redisAsyncCommand(ac, NULL, NULL, "SREM houston:nodes %s", bus->node_name);
    }
}
