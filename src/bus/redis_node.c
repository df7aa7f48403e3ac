/* redis_node.c - commands to notifier nodes on Redis: each node's stream
 * (houston:{n:<node>}:stream), every command numbered (seq) in the script that
 * appends it; a node's start, read and check of its stream, with gap
 * detection (HS_NODE_GAP); and the prototype's forwarder channel. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/redis_internal.h"
#include "core/alloc.h"
#include "core/error.h"
#include "core/log.h"

/* ---- commands to nodes ------------------------------------------------------------ */

static const char *const kind_names[] = {
    [HS_NODE_DELIVER] = "deliver",     [HS_NODE_NOTIFY] = "notify",
    [HS_NODE_SUBSCRIBE] = "subscribe", [HS_NODE_UNSUBSCRIBE] = "unsubscribe",
    [HS_NODE_FORWARD] = "forward",     [HS_NODE_DISCONNECT] = "disconnect",
    [HS_NODE_BATCH_END] = "",          [HS_NODE_GAP] = "gap",
    [HS_NODE_DELETED] = "deleted"};

/* Every command to a node is numbered in the step that appends it, so the
 * node sees when one is missing (read_node). KEYS: the node's stream, its
 * counter (one slot: {n:<node>}). */
const char hs_redis__append_script[] =
    "local seq = redis.call('INCR', KEYS[2]) "
    "return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'seq', seq, "
    "                  unpack(ARGV, 2))";

/* A subscribe is three steps, each in one slot, in this order (the
 * argument is in docs/internals/bus.md):
 *   1. the topic's pending count for the node goes up (the topic's slot):
 *      from now on "the last subscriber left" leaves the topic routed;
 *   2. the command is appended to the node's stream and the topic noted in
 *      the node's topic set (the node's slot; subscribe_script);
 *   3. the node joins the topic's set (the topic's slot): the consumer
 *      routes the next message there - after the SUBSCRIBE in the stream;
 * then the caller hears it. The node takes the count down when it reads
 * the command, which is after step 1. */
const char hs_redis__subscribe_script[] =
    "redis.call('SADD', KEYS[3], ARGV[1]) "
    "local seq = redis.call('INCR', KEYS[2]) "
    "return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'seq', seq, "
    "                  unpack(ARGV, 3))";

/* KEYS: the topic's pending count for a node. */
const char hs_redis__pend_script[] =
    "redis.call('INCR', KEYS[1]) redis.call('PEXPIRE', KEYS[1], 60000) return 1";

/* A subscribe on its way: the command's arguments, kept between the steps. */
typedef struct subscribe_op {
    redis_bus_t *bus;
    pending_t *p;
    char topic_nodes[KEY_MAX], pend[KEY_MAX], node[256];
    int argc;
    const char **argv;
    size_t *lens;
} subscribe_op_t;

static void subscribe_op_end(subscribe_op_t *op, int status)
{
    if (op->p->done)
        op->p->done(status, op->p->data);
    hs_free(op->p);
    for (int i = 0; i < op->argc; i++)
        hs_free((void *)op->argv[i]);
    hs_free(op->argv);
    hs_free(op->lens);
    hs_free(op);
}

static void subscribe_routed_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    subscribe_op_end(privdata, hs_redis__reply_status(reply));
}

static void subscribe_appended_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    subscribe_op_t *op = privdata;
    int status = hs_redis__reply_status(reply);
    if (status != 0) {
        subscribe_op_end(op, status);
        return;
    }
    if (hs_redis__cmdl(op->bus, subscribe_routed_cb, op, "SADD", op->topic_nodes, op->node) !=
        REDIS_OK)
        subscribe_op_end(op, op->bus->closing ? HS_ECLOSED : HS_EUNAVAIL);
}

static void subscribe_pending_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    subscribe_op_t *op = privdata;
    int status = hs_redis__reply_status(reply);
    if (status != 0) {
        subscribe_op_end(op, status);
        return;
    }
    if (hs_redis__cmd_script_durable(op->bus, SCRIPT_SUBSCRIBE, subscribe_appended_cb, op, 3,
                                     op->argc, op->argv, op->lens) != REDIS_OK)
        subscribe_op_end(op, op->bus->closing ? HS_ECLOSED : HS_EUNAVAIL);
}

void hs_redis__send_to_node(hs_bus_t *b, const char *node, const hs_node_cmd_t *cmd,
                            hs_bus_done_cb cb, void *data)
{
    redis_bus_t *bus = (redis_bus_t *)b;
    char key[KEY_MAX], seq_key[KEY_MAX], node_topics[KEY_MAX];
    NODE_KEY(key, node, "stream");
    NODE_KEY(seq_key, node, "seq");
    const char *argv[32];
    size_t lens[32];
    int n = 0;
#define ARG(s, l) (argv[n] = (s), lens[n] = (l), n++)
#define STR(s)    ARG((s), strlen(s))
    bool subscribe = cmd->kind == HS_NODE_SUBSCRIBE && cmd->topic;
    STR(key);
    STR(seq_key);
    if (subscribe) {
        NODE_KEY(node_topics, node, "topics");
        STR(node_topics);
        STR(cmd->topic);
    }
    STR(bus->node_max);
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
    if (cmd->prev) {
        STR("prev");
        STR(cmd->prev);
    }
    if (cmd->message_json) {
        STR("json");
        ARG(cmd->message_json, cmd->message_json_len);
    }
    if (cmd->frame_text) {
        STR("text");
        ARG(cmd->frame_text, cmd->frame_text_len);
    }
    char part[16], fence[24];
    if (cmd->fence > 0) { /* which partition's holder sent it, with which token */
        snprintf(part, sizeof(part), "%d", cmd->partition);
        snprintf(fence, sizeof(fence), "%llu", (unsigned long long)cmd->fence);
        STR("part");
        STR(part);
        STR("fence");
        STR(fence);
    }
#undef STR
#undef ARG
    pending_t *p = hs_redis__pending_new(data);
    p->done = cb;
    if (!subscribe) {
        if (hs_redis__cmd_script_durable(bus, SCRIPT_APPEND, hs_redis__done_reply_cb, p, 2, n, argv,
                                         lens) != REDIS_OK)
            hs_redis__fail_later(bus, p);
        return;
    }
    subscribe_op_t *op = hs_calloc(1, sizeof(*op));
    op->bus = bus;
    op->p = p;
    TOPIC_KEY(op->topic_nodes, cmd->topic, "nodes");
    snprintf(op->pend, sizeof(op->pend), "houston:{t:%s}:pend:%s", cmd->topic, node);
    snprintf(op->node, sizeof(op->node), "%s", node);
    op->argc = n;
    op->argv = hs_malloc((size_t)n * sizeof(char *));
    op->lens = hs_malloc((size_t)n * sizeof(size_t));
    for (int i = 0; i < n; i++) {
        char *copy = hs_malloc(lens[i] + 1);
        memcpy(copy, argv[i], lens[i]);
        copy[lens[i]] = '\0';
        op->argv[i] = copy;
        op->lens[i] = lens[i];
    }
    if (hs_redis__cmd_script(bus, SCRIPT_PEND, subscribe_pending_cb, op, 1, 1,
                             (const char *[]){op->pend}, NULL) != REDIS_OK) {
        op->p = NULL;
        for (int i = 0; i < op->argc; i++)
            hs_free((void *)op->argv[i]);
        hs_free(op->argv);
        hs_free(op->lens);
        hs_free(op);
        hs_redis__fail_later(bus, p);
    }
}

/* ---- notifier: this node's command stream ----------------------------------------- */

static void read_node(redis_bus_t *bus);
static void node_restart_cb(uv_timer_t *t);

const char hs_redis__subscribe_done_script[] =
    "if redis.call('DECR', KEYS[1]) <= 0 then redis.call('DEL', KEYS[1]) end";

static void read_node_cb(uv_timer_t *t)
{
    link_t *l = t->data;
    read_node(l->bus);
}

/* Commands meant for this node are lost: the handler hears it before the
 * next command, so a connection it closes resumes from before the loss. */
static void node_gap(redis_bus_t *bus, const char *what)
{
    hs_log_warn("bus: gap in %s after entry %s: %s", bus->node_key, bus->node_last_id, what);
    hs_node_cmd_t cmd = {.kind = HS_NODE_GAP,
                         .topic = bus->node_key,
                         .frame_text = what,
                         .frame_text_len = strlen(what)};
    bus->node_handler(&cmd, bus->node_data);
}

/* After a reconnect, or a quiet read, in one step: the node's command
 * counter, and whether any entry follows the last one read. A counter gone
 * or lower than the last command read means Redis lost the stream; a higher
 * one with nothing after the last entry read means commands were removed
 * unread (a survivor took this node for dead and removed its stream: it
 * leaves the counter to expire in a day, which this check undoes). */
const char hs_redis__node_check_script[] =
    "local counter = redis.call('GET', KEYS[2]) "
    "if counter then redis.call('PERSIST', KEYS[2]) end "
    "local after = redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', 1) "
    "return {counter or '', #after}";

static void node_checked_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    redis_bus_t *bus = privdata;
    redisReply *r = reply;
    if (hs_redis__link_reply(bus, LINK_NODE, reply, "checking node commands", read_node_cb) == NULL)
        return;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_INTEGER) {
        hs_log_error("bus: checking node commands: unexpected answer from Redis");
        hs_redis__link_later(&bus->links[LINK_NODE], read_node_cb, RETRY_READ_MS);
        return;
    }
    long long counter = r->element[0]->len > 0 ? strtoll(r->element[0]->str, NULL, 10) : -1;
    bool nothing_after = r->element[1]->integer == 0;
    if (bus->node_seq >= 0 &&
        (counter < bus->node_seq || (counter > bus->node_seq && nothing_after))) {
        char what[256];
        if (counter > bus->node_seq)
            snprintf(what, sizeof(what),
                     "commands %lld to %lld are no longer in the stream (removed: was this node "
                     "taken for dead?)",
                     bus->node_seq + 1, counter);
        else if (counter < 0)
            snprintf(what, sizeof(what),
                     "its command counter is gone after command %lld: Redis lost the stream "
                     "(restarted without persistence?)",
                     bus->node_seq);
        else
            snprintf(what, sizeof(what),
                     "its command counter went back from %lld to %lld: Redis lost the newest "
                     "commands (restarted from an older snapshot?)",
                     bus->node_seq, counter);
        node_gap(bus, what);
        hs_node_cmd_t end = {.kind = HS_NODE_BATCH_END};
        bus->node_handler(&end, bus->node_data);
        bus->node_seq = counter < 0 ? 0 : counter;
        if (counter < 0) /* so that the next check does not find it gone again */
            redisAsyncCommand(bus->links[LINK_NODE].ac, NULL, NULL, "SET %s 0 NX",
                              bus->node_seq_key);
    }
    hs_redis__node_barriers_run(bus, 0);
    read_node(bus);
}

static void check_node(redis_bus_t *bus)
{
    link_t *l = &bus->links[LINK_NODE];
    if (!l->up || bus->closing)
        return;
    hs_redis__script(l->ac, bus, SCRIPT_NODE_CHECK, node_checked_cb, bus, 2, 3,
                     (const char *[]){bus->node_key, bus->node_seq_key, bus->node_last_id}, NULL);
}

static void node_read_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    redis_bus_t *bus = privdata;
    redisReply *r = reply;
    if (hs_redis__link_reply(bus, LINK_NODE, reply, "reading node commands", read_node_cb) == NULL)
        return;
    if (r->type == REDIS_REPLY_NIL) {
        check_node(bus); /* quiet for BLOCK_MS: is anything lost meanwhile? */
        return;
    }
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
        r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements == 2) {
        const redisReply *entries = r->element[0]->element[1];
        for (size_t i = 0; entries && i < entries->elements; i++) {
            const redisReply *entry = entries->element[i];
            if (entry->type != REDIS_REPLY_ARRAY || entry->elements < 2 ||
                entry->element[0]->type != REDIS_REPLY_STRING)
                continue;
            const redisReply *fields = entry->element[1];
            /* Each command's seq follows the last one's; anything else means
             * commands were trimmed before this node read them, or lost. */
            const char *seq_text = hs_redis__field_str(fields, "seq", NULL);
            long long seq = seq_text ? strtoll(seq_text, NULL, 10) : -1;
            if (seq > 0 && bus->node_seq >= 0 && seq != bus->node_seq + 1) {
                char what[256];
                if (seq > bus->node_seq)
                    snprintf(what, sizeof(what),
                             "commands %lld to %lld were trimmed (--node-stream-max) before this "
                             "node read them",
                             bus->node_seq + 1, seq - 1);
                else
                    snprintf(what, sizeof(what),
                             "command numbers started again at %lld after %lld: Redis lost the "
                             "stream (restarted without persistence?)",
                             seq, bus->node_seq);
                node_gap(bus, what);
            }
            bus->node_seq = seq;
            snprintf(bus->node_last_id, sizeof(bus->node_last_id), "%s", entry->element[0]->str);
            const char *kind = hs_redis__field_str(fields, "kind", NULL);
            hs_node_cmd_t cmd = {0};
            for (int k = HS_NODE_DELIVER; k <= HS_NODE_DELETED; k++)
                if (kind && k != HS_NODE_FORWARD && k != HS_NODE_BATCH_END &&
                    strcmp(kind, kind_names[k]) == 0)
                    cmd.kind = (hs_node_cmd_kind_t)k;
            if (cmd.kind == 0)
                continue;
            cmd.topic = hs_redis__field_str(fields, "topic", NULL);
            cmd.connection_id = hs_redis__field_str(fields, "conn", NULL);
            cmd.message_id = hs_redis__field_str(fields, "mid", NULL);
            cmd.message_json = hs_redis__field_str(fields, "json", &cmd.message_json_len);
            cmd.prev = hs_redis__field_str(fields, "prev", NULL);
            cmd.frame_text = hs_redis__field_str(fields, "text", &cmd.frame_text_len);
            const char *part = hs_redis__field_str(fields, "part", NULL);
            const char *fence = hs_redis__field_str(fields, "fence", NULL);
            if (part && fence) {
                cmd.partition = atoi(part);
                cmd.fence = strtoull(fence, NULL, 10);
            }
            if (cmd.kind == HS_NODE_SUBSCRIBE && cmd.topic) {
                hs_redis__resync_note_topic(bus, cmd.topic);
                char pend[KEY_MAX];
                snprintf(pend, sizeof(pend), "houston:{t:%s}:pend:%s", cmd.topic, bus->node_name);
                hs_redis__cmd_script(bus, SCRIPT_SUBSCRIBE_DONE, NULL, NULL, 1, 1,
                                     (const char *[]){pend}, NULL);
            }
            bus->node_handler(&cmd, bus->node_data);
        }
        hs_node_cmd_t end = {.kind = HS_NODE_BATCH_END};
        bus->node_handler(&end, bus->node_data);
    }
    hs_redis__node_barriers_run(bus, 0);
    read_node(bus);
}

static void read_node(redis_bus_t *bus)
{
    link_t *l = &bus->links[LINK_NODE];
    if (!l->up || bus->closing)
        return;
    redisAsyncCommand(l->ac, node_read_cb, bus, "XREAD COUNT %s BLOCK %s STREAMS %s %s", READ_COUNT,
                      BLOCK_MS, bus->node_key, bus->node_last_id);
}

/* Where a node starts: its command counter (created if missing) and the
 * newest entry, read together. */
const char hs_redis__node_start_script[] =
    "redis.call('SET', KEYS[2], 0, 'NX') redis.call('PERSIST', KEYS[2]) "
    "return {redis.call('GET', KEYS[2]), redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)}";

static void node_start_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    redis_bus_t *bus = privdata;
    redisReply *r = reply;
    if (hs_redis__link_reply(bus, LINK_NODE, reply, "finding where node commands start",
                             node_restart_cb) == NULL)
        return;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING) {
        hs_log_error("bus: finding where node commands start: unexpected answer from Redis");
        hs_redis__link_later(&bus->links[LINK_NODE], node_restart_cb, RETRY_READ_MS);
        return;
    }
    /* Start after the newest entry: commands for an earlier life of this
     * node id are for connections that are gone. */
    bus->node_seq = strtoll(r->element[0]->str, NULL, 10);
    snprintf(bus->node_last_id, sizeof(bus->node_last_id), "0-0");
    const redisReply *newest = r->element[1];
    if (newest->type == REDIS_REPLY_ARRAY && newest->elements >= 1 &&
        newest->element[0]->type == REDIS_REPLY_ARRAY && newest->element[0]->elements >= 1 &&
        newest->element[0]->element[0]->type == REDIS_REPLY_STRING)
        snprintf(bus->node_last_id, sizeof(bus->node_last_id), "%s",
                 newest->element[0]->element[0]->str);
    bus->node_started = true;
    hs_redis__node_barriers_run(bus, 0);
    read_node(bus);
}

static void start_node(redis_bus_t *bus)
{
    link_t *l = &bus->links[LINK_NODE];
    if (!l->up || bus->closing)
        return;
    hs_redis__script(l->ac, bus, SCRIPT_NODE_START, node_start_cb, bus, 2, 2,
                     (const char *[]){bus->node_key, bus->node_seq_key}, NULL);
}

static void node_restart_cb(uv_timer_t *t)
{
    link_t *l = t->data;
    start_node(l->bus);
}

/* ---- barriers ------------------------------------------------------------------------- */

/* A command appended to a node's stream is answered to its sender once it
 * is in the stream, before the node reads it. A node's own operation for a
 * client (a subscribe or unsubscribe message) must not overtake such a
 * command: an API subscribe answered 201, then the client's unsubscribe,
 * applied in the other order, leaves the client subscribed after it was
 * told it is not. So the operation waits for a barrier: the stream's newest
 * entry now (XREVRANGE on the command link of the node's slot), then until
 * the node's reader is past it. A barrier not reached in BARRIER_MS fails
 * (the caller answers an error), as do those waiting when the node link is
 * lost or the bus closes. */
#define BARRIER_MS 5000

typedef struct barrier {
    struct barrier *next;
    redis_bus_t *bus;
    uint64_t ms, seq; /* the newest entry's id when asked */
    bool known;       /* ms, seq set: waiting for the reader */
    bool reading;     /* its XREVRANGE is on its way (the reply frees it if answered) */
    uint64_t deadline_ms;
    hs_bus_done_cb cb; /* NULL once answered */
    void *data;
} barrier_t;

static bool stream_id_parse(const char *text, uint64_t *ms, uint64_t *seq)
{
    char *end;
    *ms = strtoull(text, &end, 10);
    if (*end != '-')
        return false;
    *seq = strtoull(end + 1, &end, 10);
    return *end == '\0';
}

static void barrier_timer_cb(uv_timer_t *t)
{
    redis_bus_t *bus = t->data;
    if (!bus->closing)
        hs_redis__node_barriers_run(bus, 0);
}

void hs_redis__node_barriers_run(redis_bus_t *bus, int status)
{
    uint64_t ms = 0, seq = 0, now = uv_now(bus->base.loop);
    bool read = bus->node_started && stream_id_parse(bus->node_last_id, &ms, &seq);
    barrier_t *b;
    while ((b = bus->barriers) != NULL) {
        int st;
        if (status != 0)
            st = status;
        else if (b->known && read && (b->ms < ms || (b->ms == ms && b->seq <= seq)))
            st = 0;
        else if (now >= b->deadline_ms)
            st = HS_EUNAVAIL;
        else {
            /* It waits, and so do the later ones (first asked, first
             * answered) - until its deadline at most. */
            uv_timer_start(&bus->barrier_timer, barrier_timer_cb, b->deadline_ms - now, 0);
            return;
        }
        bus->barriers = b->next;
        if (bus->barriers == NULL)
            bus->barriers_tail = NULL;
        hs_bus_done_cb cb = b->cb;
        void *data = b->data;
        b->cb = NULL;
        if (!b->reading)
            hs_free(b);
        cb(st, data);
    }
    if (!uv_is_closing((uv_handle_t *)&bus->barrier_timer))
        uv_timer_stop(&bus->barrier_timer);
}

static void barrier_read_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    barrier_t *b = privdata;
    redis_bus_t *bus = b->bus;
    redisReply *r = reply;
    b->reading = false;
    if (b->cb == NULL) { /* answered already (failed: the link lost, the close) */
        hs_free(b);
        return;
    }
    const redisReply *newest =
        r && r->type == REDIS_REPLY_ARRAY && r->elements > 0 ? r->element[0] : NULL;
    if (r == NULL || r->type != REDIS_REPLY_ARRAY ||
        (newest && (newest->type != REDIS_REPLY_ARRAY || newest->elements < 1 ||
                    newest->element[0]->type != REDIS_REPLY_STRING ||
                    !stream_id_parse(newest->element[0]->str, &b->ms, &b->seq))))
        b->deadline_ms = 0; /* fails, in its turn */
    b->known = true;        /* an empty stream: 0-0, which the reader is past */
    hs_redis__node_barriers_run(bus, 0);
}

void hs_redis__node_barrier(hs_bus_t *bb, hs_bus_done_cb cb, void *data)
{
    redis_bus_t *bus = (redis_bus_t *)bb;
    barrier_t *b = hs_calloc(1, sizeof(*b));
    b->bus = bus;
    b->cb = cb;
    b->data = data;
    b->deadline_ms = uv_now(bus->base.loop) + BARRIER_MS;
    if (bus->barriers_tail)
        bus->barriers_tail->next = b;
    else
        bus->barriers = b;
    bus->barriers_tail = b;
    b->reading = hs_redis__cmd_up(bus) && bus->links[LINK_NODE].up &&
                 hs_redis__cmdl(bus, barrier_read_cb, b, "XREVRANGE", bus->node_key, "+", "-",
                                "COUNT", "1") == REDIS_OK;
    if (!b->reading)
        b->deadline_ms = 0; /* fails in its turn, from the timer (never inline) */
    if (bus->barriers == b && !bus->closing)
        uv_timer_start(&bus->barrier_timer, barrier_timer_cb, b->deadline_ms ? BARRIER_MS : 0, 0);
}

/* forwarder-channel: the prototype's way to push to one connection. Every
 * node hears it; the one that holds the connection delivers. */
static void forwarder_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    redis_bus_t *bus = privdata;
    redisReply *r = reply;
    if (r == NULL || bus->closing || r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
        r->element[0]->type != REDIS_REPLY_STRING || strcmp(r->element[0]->str, "message") != 0 ||
        r->element[2]->type != REDIS_REPLY_STRING)
        return;
    hs_node_cmd_t cmd = {.kind = HS_NODE_FORWARD,
                         .frame_text = r->element[2]->str,
                         .frame_text_len = r->element[2]->len};
    bus->node_handler(&cmd, bus->node_data);
}

int hs_redis__serve_node(hs_bus_t *b, const char *node, hs_bus_cmd_handler handler, void *data)
{
    redis_bus_t *bus = (redis_bus_t *)b;
    if (bus->node_handler)
        return HS_EEXIST;
    if (bus->node_name == NULL)
        bus->node_name = hs_strdup(node);
    NODE_KEY(bus->node_key, node, "stream");
    NODE_KEY(bus->node_seq_key, node, "seq");
    bus->node_handler = handler;
    bus->node_data = data;
    hs_redis__link_open(&bus->links[LINK_NODE]);   /* starts reading once connected */
    hs_redis__link_open(&bus->links[LINK_PUBSUB]); /* subscribes once connected */
    return 0;
}

/* ---- the node and pub/sub links (back) up ------------------------------------------- */

void hs_redis__node_link_up(redis_bus_t *bus)
{
    if (bus->node_started)
        check_node(bus); /* then on from the last command seen */
    else
        start_node(bus);
}

void hs_redis__pubsub_link_up(redis_bus_t *bus)
{
    link_t *l = &bus->links[LINK_PUBSUB];
    redisAsyncCommand(l->ac, forwarder_cb, bus, "SUBSCRIBE %s", FORWARDER_CHANNEL);
}
