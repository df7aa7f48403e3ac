/* redis.c - the bus on Redis (scale-out mode), through hiredis's
 * asynchronous API on the libuv loop (redis_uv.c), so the loop never waits
 * on Redis.
 *
 * Keys, streams and channels (docs/scaling.md):
 *   houston:events            stream of "message created" events; consumers
 *                             read it in the consumer group houston:consumers
 *                             (XREADGROUP), acknowledge with XACK after the
 *                             hand-off, and take over entries left pending by
 *                             a dead consumer (XAUTOCLAIM after --claim-idle)
 *   houston:node:<node>       stream of commands for one notifier node (XREAD)
 *   houston:nodeseq:<node>    number of the last command appended to it
 *   houston:conns             hash: connection id -> node
 *   houston:topic:<topic>     set of the nodes that hold subscribers of topic
 *   houston:pend:<node>:<t>   subscribes on their way to node for topic t: the
 *                             node keeps topic t routed while one is pending
 *   houston:nodes             set of the notifier nodes
 *   houston:alive:<node>      a node's heartbeat (expires after 3 intervals)
 *   houston:nodeconns:<node>  connections of a node   } so a dead node's
 *   houston:nodetopics:<node> topics of a node        } entries can be found
 *   houston:cleanup:<node>    lock: one survivor cleans up a dead node
 *   forwarder-channel         pub/sub channel of the prototype: every node
 *                             hears {"connectionID":…,"payload":…}
 * Streams are capped with MAXLEN ~ (--node-stream-max, --event-stream-max)
 * so Redis memory stays bounded.
 *
 * A capped stream can drop entries its reader has not read yet (a stalled
 * notifier, consumers down), and Redis can lose them all (a restart without
 * persistence). Neither may go unnoticed (docs/recovery.md, "Gaps"):
 *   - every command appended to a node's stream carries a number (seq),
 *     taken from houston:nodeseq:<node> in the same script as the XADD; the
 *     node expects each entry's seq to follow the last one's, and compares
 *     the counter with what it read after a reconnect and when idle;
 *   - consumers read the event stream through a script that first compares
 *     the stream's max-deleted-entry-id with the group's last-delivered-id
 *     (entries trimmed before the group read them) and, on a gap, appends a
 *     "gap" command to every node's stream in the same step, so it is ahead
 *     of any later delivery; a consumer group Redis lost is a gap as well.
 * A node hands a gap to its handler (HS_NODE_GAP) before the next command.  *
 * Commands to a node go through its stream, in order: a SUBSCRIBE is before
 * the DELIVERs of messages published after it was acknowledged. The
 * subscribe adds the node to the topic's set in the same script that
 * appends it, so the consumer routes the next message there.
 *
 * Each use has its own connection (a "link"): commands, the blocking event
 * read, the blocking node read, the pub/sub subscription. A link that drops
 * is reopened after a backoff (100 ms doubling to 2 s, with jitter); while
 * the command link is down the bus is not ready and operations fail with
 * HS_EUNAVAIL. Events whose append was not confirmed stay in an outbox and
 * are appended again when the link is back (hence redelivers). */
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/bus.h"
#include "bus/redis_uv.h"
#include "core/alloc.h"
#include "core/error.h"
#include "core/redact.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/ulid.h"

#define EVENTS_KEY         "houston:events"
#define GROUP              "houston:consumers"
#define FORWARDER_CHANNEL  "forwarder-channel"
#define LEASE_KEY          "houston:events:lease"
#define EVENTS_MAXLEN      100000
#define NODE_MAXLEN        10000
#define READ_COUNT         "64"
#define READ_COUNT_N       64
#define BLOCK_MS           "2000"
#define CLAIM_IDLE_MS      30000
#define BACKOFF_MIN_MS     100
#define BACKOFF_MAX_MS     2000
#define REGROUP_DELAY_MS   3000 /* after Redis lost the group: let nodes re-register */
#define RETRY_READ_MS      1000 /* after an error reply to a blocking read */
#define CONNECT_TIMEOUT_MS 1000
#define OUTBOX_MAX         100000
#define KEY_MAX            512

enum { LINK_CMD, LINK_EVENTS, LINK_NODE, LINK_PUBSUB, LINK_COUNT };
static const char *const link_names[LINK_COUNT] = {"command", "event", "node", "pub/sub"};

typedef struct redis_bus redis_bus_t;

typedef struct link {
    redis_bus_t *bus;
    int role;
    redisAsyncContext *ac; /* NULL while down */
    bool wanted;           /* in use: reopened when lost */
    bool up;               /* connected */
    bool was_up;           /* the next connect is a reconnect */
    bool reported;         /* this outage was logged */
    uint64_t backoff_ms;
    uv_timer_t timer; /* reconnect, or a delayed read */
} link_t;

/* An event on its way to the stream: kept until Redis confirms it. */
typedef struct outbox_entry {
    struct outbox_entry *next;
    redis_bus_t *bus;
    hs_bus_done_cb cb;
    void *data;
    char *topic, *id, *json;
    size_t json_len;
} outbox_entry_t;

struct redis_bus {
    hs_bus_t base;
    char host[256];
    int port;
    int db;
    uint64_t claim_idle_ms;
    char node_max[24];   /* MAXLEN ~ of node streams, as text */
    char events_max[24]; /* MAXLEN ~ of the event stream, as text */
    link_t links[LINK_COUNT];
    int open_contexts;
    int open_handles; /* timers still to be closed */
    /* consumer */
    hs_bus_event_handler consumer;
    void *consumer_data;
    char consumer_name[64];
    bool group_lost;      /* recreate the group from the start of the stream */
    bool leader;          /* holds the event lease: the one consumer reading */
    bool taking_over;     /* leader: handing on every pending entry before new ones */
    bool group_gap;       /* the group was recreated: the next read tells the nodes */
    char events_last[64]; /* the stream's last id when the group had read all */
    /* After Redis came back, this consumer first reads its own pending
     * entries again (from pending_cursor), then new ones. */
    bool reading_pending;
    bool pending_read_sent; /* the read in flight is one of pending entries */
    char pending_cursor[64];
    uv_timer_t claim_timer;
    char claim_cursor[64];
    /* notifier node */
    char *node_name;
    char node_key[KEY_MAX];
    char node_seq_key[KEY_MAX];
    char node_last_id[64];
    long long node_seq; /* seq of the last command read; -1: not known */
    bool node_started;
    hs_bus_cmd_handler node_handler;
    void *node_data;
    void (*reconnect_cb)(void *data);
    void *reconnect_data;
    uv_timer_t heartbeat;
    uint64_t heartbeat_ms;
    bool heartbeat_on;
    void (*dead_cb)(const char *node, void *data);
    void *dead_data;
    /* publisher */
    outbox_entry_t *outbox_head, *outbox_tail;
    size_t outbox_len;
    /* closing */
    uv_timer_t finish; /* never started: its close callback ends a close */
    bool closing;
    bool finishing;
    hs_bus_done_cb close_cb;
    void *close_data;
};

static bool cmd_up(const redis_bus_t *bus)
{
    return !bus->closing && bus->links[LINK_CMD].up;
}

static redisAsyncContext *cmd_ac(redis_bus_t *bus)
{
    return cmd_up(bus) ? bus->links[LINK_CMD].ac : NULL;
}

/* ---- replies ------------------------------------------------------------ */

static bool reply_ok(const redisReply *r)
{
    return r != NULL && r->type != REDIS_REPLY_ERROR;
}

/* NULL reply: the link went away before the answer. */
/* An error reply of a Redis that cannot answer yet (loading its data after
 * a restart, a replica without its master, a busy script) is
 * unavailability - 503, retry - not a failure of the request. */
static int reply_status(const redisReply *r)
{
    static const char *const not_yet[] = {"LOADING", "MASTERDOWN", "BUSY", "TRYAGAIN"};
    if (r == NULL)
        return HS_EUNAVAIL;
    if (r->type != REDIS_REPLY_ERROR)
        return 0;
    for (size_t i = 0; i < sizeof(not_yet) / sizeof(not_yet[0]); i++)
        if (strncmp(r->str, not_yet[i], strlen(not_yet[i])) == 0)
            return HS_EUNAVAIL;
    return HS_EIO;
}

/* Field value of a stream entry's [f, v, f, v...] array, or NULL. */
static const char *field_str(const redisReply *fields, const char *name, size_t *len)
{
    if (len)
        *len = 0;
    if (fields == NULL || fields->type != REDIS_REPLY_ARRAY)
        return NULL;
    for (size_t i = 0; i + 1 < fields->elements; i += 2) {
        const redisReply *k = fields->element[i], *v = fields->element[i + 1];
        if (k->type == REDIS_REPLY_STRING && strcmp(k->str, name) == 0 &&
            v->type == REDIS_REPLY_STRING) {
            if (len)
                *len = v->len;
            return v->str;
        }
    }
    return NULL;
}

/* ---- links --------------------------------------------------------------- */

static void maybe_closed(redis_bus_t *bus);
static void link_up(link_t *l, bool again);
static int link_open(link_t *l);

static void link_retry_cb(uv_timer_t *t)
{
    link_t *l = t->data;
    if (!l->bus->closing && l->ac == NULL)
        link_open(l);
}

/* The link is down: try again after a backoff, with jitter so that many
 * processes do not knock on Redis in step. */
static void link_lost(link_t *l)
{
    redis_bus_t *bus = l->bus;
    l->up = false;
    if (l->role == LINK_CMD)
        /* The lease is renewed over this link: while it is away the lease
         * may expire and another consumer take over, so nothing is read
         * until it is known to be ours again (then every pending entry
         * first, in order). */
        bus->leader = false;
    if (bus->closing || !l->wanted) {
        maybe_closed(bus);
        return;
    }
    uint64_t delay = l->backoff_ms == 0 ? BACKOFF_MIN_MS : l->backoff_ms * 2;
    if (delay > BACKOFF_MAX_MS)
        delay = BACKOFF_MAX_MS;
    l->backoff_ms = delay;
    delay = delay / 2 + uv_hrtime() % (delay / 2 + 1);
    uv_timer_start(&l->timer, link_retry_cb, delay, 0);
}

/* A connect that neither succeeds nor fails (a firewall dropping packets)
 * would wait for the kernel's timeout: every connect has a deadline, and a
 * context not up by then is dropped. */
static void link_connect_timeout_cb(uv_timer_t *t)
{
    link_t *l = t->data;
    redis_bus_t *bus = l->bus;
    redisAsyncContext *ac = l->ac;
    if (ac == NULL || l->up || bus->closing)
        return;
    if (!l->reported)
        hs_log_error("bus: cannot reach Redis at %s:%d (%s link); retrying", bus->host, bus->port,
                     link_names[l->role]);
    l->reported = true;
    l->ac = NULL;
    bus->open_contexts--;
    redisAsyncFree(ac); /* not connected: no disconnect callback */
    link_lost(l);
}

static void link_connected_cb(const redisAsyncContext *ac, int status)
{
    link_t *l = ac->data;
    redis_bus_t *bus = l->bus;
    uv_timer_stop(&l->timer);
    if (status != REDIS_OK) {
        /* hiredis frees the context after this; no disconnect callback. */
        if (!l->reported)
            hs_log_error("bus: cannot reach Redis at %s:%d (%s link): %s; retrying", bus->host,
                         bus->port, link_names[l->role], ac->errstr);
        l->reported = true;
        l->ac = NULL;
        bus->open_contexts--;
        link_lost(l);
        return;
    }
    bool again = l->was_up;
    if (l->reported)
        hs_log_info("bus: %s link to Redis at %s:%d is back", link_names[l->role], bus->host,
                    bus->port);
    l->up = true;
    l->was_up = true;
    l->reported = false;
    l->backoff_ms = 0;
    if (again)
        hs_metrics_singleton.bus_reconnects++;
    link_up(l, again);
}

static void link_disconnected_cb(const redisAsyncContext *ac, int status)
{
    link_t *l = ac->data;
    redis_bus_t *bus = l->bus;
    if (status != REDIS_OK && !bus->closing) {
        hs_log_error("bus: %s link to Redis lost: %s; reconnecting", link_names[l->role],
                     ac->errstr);
        l->reported = true;
    }
    l->ac = NULL;
    bus->open_contexts--;
    link_lost(l);
}

static int link_open(link_t *l)
{
    redis_bus_t *bus = l->bus;
    l->wanted = true;
    redisAsyncContext *ac = redisAsyncConnect(bus->host, bus->port);
    if (ac == NULL || ac->err) {
        if (!l->reported)
            hs_log_error("bus: cannot connect to Redis at %s:%d: %s; retrying", bus->host,
                         bus->port, ac ? ac->errstr : "out of memory");
        l->reported = true;
        if (ac)
            redisAsyncFree(ac);
        link_lost(l);
        return HS_EUNAVAIL;
    }
    ac->data = l;
    if (hs_redis_uv_attach(ac, bus->base.loop) != 0) {
        redisAsyncFree(ac);
        link_lost(l);
        return HS_EIO;
    }
    redisAsyncSetConnectCallback(ac, link_connected_cb);
    redisAsyncSetDisconnectCallback(ac, link_disconnected_cb);
    l->ac = ac;
    bus->open_contexts++;
    uv_timer_start(&l->timer, link_connect_timeout_cb, CONNECT_TIMEOUT_MS, 0);
    if (bus->db > 0)
        redisAsyncCommand(ac, NULL, NULL, "SELECT %d", bus->db);
    return 0;
}

/* Runs a blocking read again later (after an error reply), on the link's
 * timer. */
static void link_later(link_t *l, uv_timer_cb cb, uint64_t ms)
{
    if (!l->bus->closing)
        uv_timer_start(&l->timer, cb, ms, 0);
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
        p->done(reply_status(reply), p->data);
    hs_free(p);
}

/* A failure to even send the command is reported later, never inline. */
typedef struct deferred {
    uv_timer_t timer;
    pending_t *p;
    int status;
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
        p->done(d->status, p->data);
    if (p->node)
        p->node(d->status, NULL, p->data);
    if (p->nodes)
        p->nodes(d->status, NULL, 0, p->data);
    hs_free(p);
    uv_close((uv_handle_t *)t, deferred_closed_cb);
}

static void fail_later(redis_bus_t *bus, pending_t *p)
{
    deferred_t *d = hs_calloc(1, sizeof(*d));
    d->p = p;
    d->status = bus->closing ? HS_ECLOSED : HS_EUNAVAIL;
    uv_timer_init(bus->base.loop, &d->timer);
    d->timer.data = d;
    uv_timer_start(&d->timer, deferred_cb, 0, 0);
}

static bool redis_ready(hs_bus_t *b)
{
    return cmd_up((redis_bus_t *)b);
}

static void redis_on_reconnect(hs_bus_t *b, void (*cb)(void *data), void *data)
{
    redis_bus_t *bus = (redis_bus_t *)b;
    bus->reconnect_cb = cb;
    bus->reconnect_data = data;
}

/* ---- publisher: events, through the outbox ---------------------------------- */

static void outbox_push(redis_bus_t *bus, outbox_entry_t *e)
{
    if (bus->outbox_len >= OUTBOX_MAX) {
        outbox_entry_t *old = bus->outbox_head;
        hs_log_error("bus: outbox full; the event of message %s is dropped (it stays in the "
                     "history)",
                     old->id);
        bus->outbox_head = old->next;
        if (bus->outbox_head == NULL)
            bus->outbox_tail = NULL;
        bus->outbox_len--;
        if (old->cb)
            old->cb(HS_EUNAVAIL, old->data);
        hs_free(old->topic);
        hs_free(old->id);
        hs_free(old->json);
        hs_free(old);
    }
    e->next = NULL;
    if (bus->outbox_tail)
        bus->outbox_tail->next = e;
    else
        bus->outbox_head = e;
    bus->outbox_tail = e;
    bus->outbox_len++;
}

static void outbox_entry_free(outbox_entry_t *e)
{
    hs_free(e->topic);
    hs_free(e->id);
    hs_free(e->json);
    hs_free(e);
}

static void send_event(outbox_entry_t *e);

static void event_appended_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    outbox_entry_t *e = privdata;
    redis_bus_t *bus = e->bus;
    int status = reply_status(reply);
    if (status == HS_EUNAVAIL && !bus->closing) {
        /* Maybe appended, maybe not: append again once Redis is back (a
         * node drops the second copy). */
        outbox_push(bus, e);
        return;
    }
    if (status != 0 && reply)
        hs_log_error("bus: appending the event of message %s failed: %s", e->id,
                     ((redisReply *)reply)->str);
    if (e->cb)
        e->cb(status, e->data);
    outbox_entry_free(e);
}

static void send_event(outbox_entry_t *e)
{
    redis_bus_t *bus = e->bus;
    const char *argv[] = {"XADD",  EVENTS_KEY, "MAXLEN", "~",   bus->events_max, "*",
                          "topic", e->topic,   "id",     e->id, "json",          e->json};
    size_t lens[] = {
        4, strlen(EVENTS_KEY), 6, 1,          strlen(bus->events_max), 1, 5, strlen(e->topic),
        2, strlen(e->id),      4, e->json_len};
    redisAsyncContext *ac = cmd_ac(bus);
    if (ac == NULL || redisAsyncCommandArgv(ac, event_appended_cb, e, 12, argv, lens) != REDIS_OK)
        outbox_push(bus, e);
}

static void outbox_flush(redis_bus_t *bus)
{
    outbox_entry_t *e = bus->outbox_head;
    size_t count = bus->outbox_len;
    bus->outbox_head = bus->outbox_tail = NULL;
    bus->outbox_len = 0;
    if (count > 0)
        hs_log_info("bus: appending %zu events kept while Redis was away", count);
    while (e) {
        outbox_entry_t *next = e->next;
        send_event(e);
        e = next;
    }
}

static void redis_publish_event(hs_bus_t *b, const hs_event_t *ev, hs_bus_done_cb cb, void *data)
{
    redis_bus_t *bus = (redis_bus_t *)b;
    outbox_entry_t *e = hs_calloc(1, sizeof(*e));
    e->bus = bus;
    e->cb = cb;
    e->data = data;
    e->topic = hs_strdup(ev->topic);
    e->id = hs_strdup(ev->message_id);
    e->json = hs_malloc(ev->message_json_len + 1);
    memcpy(e->json, ev->message_json, ev->message_json_len);
    e->json[ev->message_json_len] = '\0';
    e->json_len = ev->message_json_len;
    send_event(e);
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
        if (entry->element[1]->type != REDIS_REPLY_ARRAY) {
            /* Pending, but trimmed from the stream: nothing left to deliver. */
            hs_bus_ack(&bus->base, hs_strdup(entry->element[0]->str));
            continue;
        }
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

static void create_group(redis_bus_t *bus);

static void regroup_cb(uv_timer_t *t)
{
    link_t *l = t->data;
    create_group(l->bus);
}

static void read_events_cb(uv_timer_t *t)
{
    link_t *l = t->data;
    read_events(l->bus);
}

/* The consumers' read of new events (docs/recovery.md, "Gaps"), in one
 * step: were entries trimmed before the group read them, or was the group
 * recreated (ARGV[5] = "1")? Then every node gets a "gap" command, ahead of
 * whatever this read hands on. Then the next entries for this consumer.
 * Answers {gap text or "", the stream's last id, the entries}.
 *
 * Trimming does not move max-deleted-entry-id (only XDEL does, and nothing
 * deletes events), so the test counts: entries-added - length entries were
 * trimmed, the group has read entries-read of them; fewer means some were
 * trimmed unread. Redis counts a read after such a gap as one more, so the
 * count is set right after a gap is reported. While Redis cannot tell how
 * many the group read (entries-read nil: created at an id and not caught up
 * since), the group's last id before the first entry left is a gap (at
 * worst one reported when the trim ended exactly at that id). Ids are
 * compared as numbers: milliseconds fit a Lua double exactly. */
static const char events_read_script[] =
    "local function before(a, b) "
    "  local am, as = string.match(a, '^(%d+)-(%d+)$') "
    "  local bm, bs = string.match(b, '^(%d+)-(%d+)$') "
    "  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs) "
    "  return am < bm or (am == bm and as < bs) end "
    "local ok, info = pcall(redis.call, 'XINFO', 'STREAM', KEYS[1]) "
    "if not ok then return redis.error_reply('NOGROUP the event stream is gone') end "
    "local added, length, first, last = 0, 0, '0-0', '0-0' "
    "for i = 1, #info, 2 do "
    "  local k = info[i] "
    "  if k == 'entries-added' then added = info[i + 1] "
    "  elseif k == 'length' then length = info[i + 1] "
    "  elseif k == 'recorded-first-entry-id' then first = info[i + 1] "
    "  elseif k == 'last-generated-id' then last = info[i + 1] end end "
    "local delivered, read "
    "for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do "
    "  local name, id, count "
    "  for i = 1, #g, 2 do "
    "    if g[i] == 'name' then name = g[i + 1] "
    "    elseif g[i] == 'last-delivered-id' then id = g[i + 1] "
    "    elseif g[i] == 'entries-read' then count = g[i + 1] end end "
    "  if name == ARGV[1] then delivered, read = id, count end end "
    "if delivered == nil then return redis.error_reply('NOGROUP the consumer group is gone') end "
    "local trimmed = added - length "
    "local gap = '' "
    "if ARGV[5] == '1' then "
    "  gap = 'the consumer group was gone (did Redis lose its data?): events not read by then "
    "are lost' "
    "elseif trimmed > 0 and ((read and read < trimmed) or (not read and before(delivered, "
    "first))) then "
    "  gap = 'events after ' .. delivered .. ' were trimmed (--event-stream-max) before a "
    "consumer read them' "
    "  redis.call('XGROUP', 'SETID', KEYS[1], ARGV[1], delivered, 'ENTRIESREAD', trimmed) end "
    "if gap ~= '' then "
    "  for _, node in ipairs(redis.call('SMEMBERS', 'houston:nodes')) do "
    "    local seq = redis.call('INCR', 'houston:nodeseq:' .. node) "
    "    redis.call('XADD', 'houston:node:' .. node, 'MAXLEN', '~', ARGV[4], '*', 'seq', seq, "
    "               'kind', 'gap', 'topic', KEYS[1], 'text', gap) end end "
    "return {gap, last, redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', ARGV[3], "
    "                              'STREAMS', KEYS[1], '>')}";

static void wait_events(redis_bus_t *bus);

/* Hands over the entries of an XREADGROUP answer; returns how many. */
static size_t handle_read(redis_bus_t *bus, const redisReply *r)
{
    size_t got = 0;
    if (r == NULL || r->type != REDIS_REPLY_ARRAY)
        return 0;
    /* [[stream, [entries]]] */
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *stream = r->element[i];
        if (stream->type != REDIS_REPLY_ARRAY || stream->elements != 2 ||
            stream->element[1]->type != REDIS_REPLY_ARRAY)
            continue;
        const redisReply *entries = stream->element[1];
        got += entries->elements;
        if (bus->pending_read_sent && entries->elements > 0) {
            const redisReply *last = entries->element[entries->elements - 1];
            if (last->type == REDIS_REPLY_ARRAY && last->elements >= 1 &&
                last->element[0]->type == REDIS_REPLY_STRING)
                snprintf(bus->pending_cursor, sizeof(bus->pending_cursor), "%s",
                         last->element[0]->str);
        }
        handle_entries(bus, entries);
    }
    return got;
}

static void events_read_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    redis_bus_t *bus = privdata;
    redisReply *r = reply;
    link_t *l = &bus->links[LINK_EVENTS];
    if (r == NULL || bus->closing)
        return; /* the link is down; it reads again when it is back */
    if (r->type == REDIS_REPLY_ERROR) {
        if (strncmp(r->str, "NOGROUP", 7) == 0) {
            bus->group_lost = true;
            create_group(bus);
        } else {
            hs_log_error("bus: reading events failed: %s", r->str);
            link_later(l, read_events_cb, RETRY_READ_MS);
        }
        return;
    }
    if (bus->pending_read_sent) {
        if (handle_read(bus, r) == 0)
            bus->reading_pending = false; /* the backlog is done: new entries now */
        read_events(bus);
        return;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING) {
        hs_log_error("bus: reading events: unexpected answer from Redis");
        link_later(l, read_events_cb, RETRY_READ_MS);
        return;
    }
    if (r->element[0]->len > 0) {
        /* The script already told every node, ahead of what follows. */
        hs_log_warn("bus: gap in %s: %s; every notifier closes its connections so that they "
                    "resume",
                    EVENTS_KEY, r->element[0]->str);
        hs_metrics_singleton.stream_gaps++;
        bus->group_gap = false;
    }
    snprintf(bus->events_last, sizeof(bus->events_last), "%s", r->element[1]->str);
    size_t got = handle_read(bus, r->elements > 2 ? r->element[2] : NULL);
    /* Fewer than asked: the group has read up to events_last; wait for more. */
    if (got < READ_COUNT_N)
        wait_events(bus);
    else
        read_events(bus);
}

static void events_waited_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    redis_bus_t *bus = privdata;
    redisReply *r = reply;
    if (r == NULL || bus->closing)
        return;
    if (r->type == REDIS_REPLY_ERROR) {
        hs_log_error("bus: waiting for events failed: %s", r->str);
        link_later(&bus->links[LINK_EVENTS], read_events_cb, RETRY_READ_MS);
        return;
    }
    read_events(bus); /* new entries (or the timeout): read them through the script */
}

/* A script cannot block: the consumer waits with a plain XREAD for an entry
 * after the last one the group has read, and reads it through the script. */
static void wait_events(redis_bus_t *bus)
{
    link_t *l = &bus->links[LINK_EVENTS];
    if (!l->up || bus->closing)
        return;
    redisAsyncCommand(l->ac, events_waited_cb, bus, "XREAD COUNT 1 BLOCK %s STREAMS %s %s",
                      BLOCK_MS, EVENTS_KEY, bus->events_last[0] ? bus->events_last : "$");
}

/* Reads this consumer's own pending entries again after Redis came back:
 * events it could not hand over while Redis was away are retried at once
 * rather than after --claim-idle. */
static void reread_pending(redis_bus_t *bus)
{
    if (bus->consumer == NULL)
        return;
    bus->reading_pending = true;
    snprintf(bus->pending_cursor, sizeof(bus->pending_cursor), "0");
}

static void read_events(redis_bus_t *bus)
{
    link_t *l = &bus->links[LINK_EVENTS];
    if (!l->up || bus->closing || !bus->leader || bus->taking_over)
        return; /* a standby reads nothing; a new leader takes the pending first */
    bus->pending_read_sent = bus->reading_pending;
    if (bus->reading_pending)
        redisAsyncCommand(l->ac, events_read_cb, bus,
                          "XREADGROUP GROUP %s %s COUNT %s STREAMS %s %s", GROUP,
                          bus->consumer_name, READ_COUNT, EVENTS_KEY, bus->pending_cursor);
    else
        redisAsyncCommand(l->ac, events_read_cb, bus, "EVAL %s 1 %s %s %s %s %s %s",
                          events_read_script, EVENTS_KEY, GROUP, bus->consumer_name, READ_COUNT,
                          bus->node_max, bus->group_gap ? "1" : "0");
}

static void group_created_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    redis_bus_t *bus = privdata;
    redisReply *r = reply;
    if (r == NULL || bus->closing)
        return;
    link_t *l = &bus->links[LINK_EVENTS];
    bool existed = r->type == REDIS_REPLY_ERROR && strncmp(r->str, "BUSYGROUP", 9) == 0;
    if (r->type == REDIS_REPLY_ERROR && !existed) {
        hs_log_error("bus: creating the consumer group failed: %s", r->str);
        link_later(l, regroup_cb, RETRY_READ_MS);
        return;
    }
    bool recreated = bus->group_lost && !existed;
    bus->group_lost = false;
    if (recreated) {
        /* Redis lost its data (restarted without persistence): the notifiers
         * put their directory entries back as they reconnect; give them a
         * moment before routing again. */
        hs_log_warn("bus: the consumer group was gone (did Redis lose its data?); created it "
                    "again, reading in %d ms",
                    REGROUP_DELAY_MS);
        bus->group_gap = true; /* the first read tells every node */
        link_later(l, read_events_cb, REGROUP_DELAY_MS);
        return;
    }
    read_events(bus);
}

/* The first consumer creates the group at the end of the stream (older
 * events were for an earlier deployment); a group Redis lost is created
 * again at the start of the (new) stream, so nothing appended since is
 * skipped. */
static void create_group(redis_bus_t *bus)
{
    link_t *l = &bus->links[LINK_EVENTS];
    if (!l->up || bus->closing)
        return;
    redisAsyncCommand(l->ac, group_created_cb, bus, "XGROUP CREATE %s %s %s MKSTREAM", EVENTS_KEY,
                      GROUP, bus->group_lost ? "0" : "$");
}

static void claim_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    redis_bus_t *bus = privdata;
    redisReply *r = reply;
    if (bus->closing || !reply_ok(r))
        return;
    /* [next-cursor, [entries], (deleted ids)] */
    if (r->type == REDIS_REPLY_ARRAY && r->elements >= 2 &&
        r->element[0]->type == REDIS_REPLY_STRING) {
        snprintf(bus->claim_cursor, sizeof(bus->claim_cursor), "%s", r->element[0]->str);
        size_t n = r->element[1]->elements;
        if (n > 0) {
            hs_log_info("bus: took over %zu events left by a consumer that stopped", n);
            hs_metrics_singleton.bus_events_claimed += n;
        }
        handle_entries(bus, r->element[1]);
        /* Pending entries trimmed before anyone handed them over: later
         * events went out already, so a resume from the client's last id
         * cannot bring these back (docs/recovery.md, "Gaps"). */
        if (r->elements >= 3 && r->element[2]->type == REDIS_REPLY_ARRAY &&
            r->element[2]->elements > 0) {
            hs_log_error("bus: %zu events left unacknowledged by a stopped consumer were trimmed "
                         "from %s before they were taken over; their messages are in the history "
                         "only",
                         r->element[2]->elements, EVENTS_KEY);
            hs_metrics_singleton.stream_gaps++;
        }
    }
}

/* XINFO GROUPS: [[name, houston:consumers, ..., pending, N, ..., lag, M], ...] */
static void backlog_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    (void)privdata;
    redisReply *r = reply;
    if (!reply_ok(r) || r->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t g = 0; g < r->elements; g++) {
        const redisReply *info = r->element[g];
        if (info->type != REDIS_REPLY_ARRAY)
            continue;
        long long pending = 0, lag = 0;
        bool ours = false;
        for (size_t i = 0; i + 1 < info->elements; i += 2) {
            const redisReply *k = info->element[i], *v = info->element[i + 1];
            if (k->type != REDIS_REPLY_STRING)
                continue;
            if (strcmp(k->str, "name") == 0 && v->type == REDIS_REPLY_STRING)
                ours = strcmp(v->str, GROUP) == 0;
            else if (strcmp(k->str, "pending") == 0 && v->type == REDIS_REPLY_INTEGER)
                pending = v->integer;
            else if (strcmp(k->str, "lag") == 0 && v->type == REDIS_REPLY_INTEGER)
                lag = v->integer;
        }
        if (ours)
            hs_metrics_singleton.bus_backlog = (uint64_t)(pending + (lag > 0 ? lag : 0));
    }
}

/* ---- the event lease ---------------------------------------------------------------- */

/* One consumer at a time reads the event stream: the holder of the lease
 * houston:events:lease (its name, expiring after --claim-idle, renewed every
 * third of it). The others stand by and take the lease over when it expires
 * - a consumer that died or stalled. One reader keeps the order of one
 * topic's events all the way to the notifiers (the command link is one
 * FIFO), which two consumers reading at once did not (docs/scaling.md);
 * issue 16 partitions the stream so that several leases share the work.
 * Answers 2 when it was just taken, 1 when renewed, 0 when another holds it. */
static const char lease_script[] =
    "local holder = redis.call('GET', KEYS[1]) "
    "if holder == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end "
    "if holder then return 0 end "
    "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) "
    "return 2";

static const char lease_release_script[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end "
    "return 0";

static void take_over(redis_bus_t *bus);

/* A new leader's take-over: every entry pending in the group (read by a
 * consumer that stopped, never acknowledged) is handed on, oldest first,
 * before any new one; the notifiers drop those they had already. */
static void took_over_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    redis_bus_t *bus = privdata;
    claim_cb(ac, reply, privdata);
    if (bus->closing)
        return;
    if (!reply_ok(reply)) {
        link_later(&bus->links[LINK_EVENTS], read_events_cb, RETRY_READ_MS);
        bus->taking_over = false; /* its own pending are claimed again later */
        return;
    }
    if (strcmp(bus->claim_cursor, "0-0") != 0) {
        take_over(bus);
        return;
    }
    bus->taking_over = false;
    read_events(bus);
}

static void take_over(redis_bus_t *bus)
{
    redisAsyncContext *ac = cmd_ac(bus);
    if (ac == NULL) {
        bus->taking_over = false; /* tried again when the lease is renewed */
        bus->leader = false;
        return;
    }
    redisAsyncCommand(ac, took_over_cb, bus, "XAUTOCLAIM %s %s %s 0 %s COUNT %s", EVENTS_KEY, GROUP,
                      bus->consumer_name, bus->claim_cursor, READ_COUNT);
}

static void lease_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    redis_bus_t *bus = privdata;
    redisReply *r = reply;
    if (bus->closing || !reply_ok(r) || r->type != REDIS_REPLY_INTEGER)
        return;
    if (r->integer == 0) {
        if (bus->leader)
            hs_log_warn("bus: this consumer lost the event lease (it did not renew it in "
                        "time); standing by");
        bus->leader = false;
        return;
    }
    if (r->integer == 2 || !bus->leader) {
        hs_log_info("bus: this consumer holds the event lease: it reads the events, after "
                    "the pending ones");
        bus->leader = true;
        bus->taking_over = true;
        snprintf(bus->claim_cursor, sizeof(bus->claim_cursor), "0-0");
        take_over(bus);
    }
}

static void renew_lease(redis_bus_t *bus)
{
    redisAsyncContext *ac = cmd_ac(bus);
    if (ac == NULL || bus->consumer == NULL)
        return;
    redisAsyncCommand(ac, lease_cb, bus, "EVAL %s 1 %s %s %llu", lease_script, LEASE_KEY,
                      bus->consumer_name, (unsigned long long)bus->claim_idle_ms);
}

static void claim_timer_cb(uv_timer_t *t)
{
    redis_bus_t *bus = t->data;
    renew_lease(bus);
    redisAsyncContext *ac = cmd_ac(bus);
    if (ac)
        redisAsyncCommand(ac, backlog_cb, NULL, "XINFO GROUPS %s", EVENTS_KEY);
    /* The leader's own entries whose hand-off failed (released) come back. */
    if (ac && bus->leader && !bus->taking_over)
        redisAsyncCommand(ac, claim_cb, bus, "XAUTOCLAIM %s %s %s %llu %s COUNT %s", EVENTS_KEY,
                          GROUP, bus->consumer_name, (unsigned long long)bus->claim_idle_ms,
                          bus->claim_cursor, READ_COUNT);
}

static int redis_consume_events(hs_bus_t *b, hs_bus_event_handler handler, void *data)
{
    redis_bus_t *bus = (redis_bus_t *)b;
    if (bus->consumer)
        return HS_EEXIST;
    bus->consumer = handler;
    bus->consumer_data = data;
    hs_ulid_t id;
    hs_ulid_new(&id);
    char text[HS_ULID_LEN + 1];
    hs_ulid_format(&id, text);
    snprintf(bus->consumer_name, sizeof(bus->consumer_name), "consumer-%s", text);
    snprintf(bus->claim_cursor, sizeof(bus->claim_cursor), "0-0");
    link_open(&bus->links[LINK_EVENTS]); /* reads once connected (link_up) */
    uint64_t every = bus->claim_idle_ms / 3 ? bus->claim_idle_ms / 3 : 1;
    uv_timer_start(&bus->claim_timer, claim_timer_cb, every, every);
    return 0;
}

static void ack_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    (void)privdata;
    if (reply_ok(reply))
        hs_metrics_singleton.bus_events_acked++;
}

static void redis_ack(hs_bus_t *b, void *token)
{
    redis_bus_t *bus = (redis_bus_t *)b;
    redisAsyncContext *ac = cmd_ac(bus);
    /* Not acknowledged while Redis is away: the event stays pending and is
     * taken over after --claim-idle; the nodes drop the second copy. */
    if (ac)
        redisAsyncCommand(ac, ack_cb, NULL, "XACK %s %s %s", EVENTS_KEY, GROUP, (char *)token);
    hs_free(token);
}

static void redis_release(hs_bus_t *b, void *token)
{
    (void)b; /* left pending: XAUTOCLAIM hands it out again */
    hs_free(token);
}

/* ---- commands to nodes ------------------------------------------------------------ */

static const char *const kind_names[] = {
    [HS_NODE_DELIVER] = "deliver",     [HS_NODE_NOTIFY] = "notify",
    [HS_NODE_SUBSCRIBE] = "subscribe", [HS_NODE_UNSUBSCRIBE] = "unsubscribe",
    [HS_NODE_FORWARD] = "forward",     [HS_NODE_DISCONNECT] = "disconnect",
    [HS_NODE_BATCH_END] = "",          [HS_NODE_GAP] = "gap"};

/* Every command to a node is numbered in the step that appends it, so the
 * node sees when one is missing (read_node). */
static const char append_script[] =
    "local seq = redis.call('INCR', KEYS[2]) "
    "return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'seq', seq, "
    "                  unpack(ARGV, 2))";

/* A subscribe routes the topic to the node, marks it pending for that node
 * and appends the command, in one step: the node cannot take the topic out
 * of the routing between the two (see remove_topic_script). */
static const char subscribe_script[] =
    "redis.call('SADD', KEYS[1], ARGV[1]) "
    "redis.call('SADD', KEYS[2], ARGV[2]) "
    "redis.call('INCR', KEYS[3]) redis.call('PEXPIRE', KEYS[3], 60000) "
    "local seq = redis.call('INCR', KEYS[5]) "
    "return redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[3], '*', 'seq', seq, "
    "                  unpack(ARGV, 4))";

static void redis_send_to_node(hs_bus_t *b, const char *node, const hs_node_cmd_t *cmd,
                               hs_bus_done_cb cb, void *data)
{
    redis_bus_t *bus = (redis_bus_t *)b;
    char key[KEY_MAX], seq_key[KEY_MAX], topic_key[KEY_MAX], node_topics[KEY_MAX], pend[KEY_MAX];
    snprintf(key, sizeof(key), "houston:node:%s", node);
    snprintf(seq_key, sizeof(seq_key), "houston:nodeseq:%s", node);
    const char *argv[24];
    size_t lens[24];
    int n = 0;
#define ARG(s, l) (argv[n] = (s), lens[n] = (l), n++)
#define STR(s)    ARG((s), strlen(s))
    bool subscribe = cmd->kind == HS_NODE_SUBSCRIBE && cmd->topic;
    if (subscribe) {
        snprintf(topic_key, sizeof(topic_key), "houston:topic:%s", cmd->topic);
        snprintf(node_topics, sizeof(node_topics), "houston:nodetopics:%s", node);
        snprintf(pend, sizeof(pend), "houston:pend:%s:%s", node, cmd->topic);
        STR("EVAL");
        STR(subscribe_script);
        STR("5");
        STR(topic_key);
        STR(node_topics);
        STR(pend);
        STR(key);
        STR(seq_key);
        STR(node);
        STR(cmd->topic);
        STR(bus->node_max);
    } else {
        STR("EVAL");
        STR(append_script);
        STR("2");
        STR(key);
        STR(seq_key);
        STR(bus->node_max);
    }
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
    redisAsyncContext *ac = cmd_ac(bus);
    if (ac == NULL || redisAsyncCommandArgv(ac, done_reply_cb, p, n, argv, lens) != REDIS_OK)
        fail_later(bus, p);
}

/* ---- notifier: this node's command stream ----------------------------------------- */

static void read_node(redis_bus_t *bus);
static void node_restart_cb(uv_timer_t *t);

static const char subscribe_done_script[] =
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
static const char node_check_script[] =
    "local counter = redis.call('GET', KEYS[2]) "
    "if counter then redis.call('PERSIST', KEYS[2]) end "
    "local after = redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', 1) "
    "return {counter or '', #after}";

static void node_checked_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    redis_bus_t *bus = privdata;
    redisReply *r = reply;
    if (r == NULL || bus->closing)
        return;
    if (r->type == REDIS_REPLY_ERROR) {
        hs_log_error("bus: checking node commands failed: %s", r->str);
        link_later(&bus->links[LINK_NODE], read_node_cb, RETRY_READ_MS);
        return;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_INTEGER) {
        hs_log_error("bus: checking node commands: unexpected answer from Redis");
        link_later(&bus->links[LINK_NODE], read_node_cb, RETRY_READ_MS);
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
    read_node(bus);
}

static void check_node(redis_bus_t *bus)
{
    link_t *l = &bus->links[LINK_NODE];
    if (!l->up || bus->closing)
        return;
    redisAsyncCommand(l->ac, node_checked_cb, bus, "EVAL %s 2 %s %s %s", node_check_script,
                      bus->node_key, bus->node_seq_key, bus->node_last_id);
}

static void node_read_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    redis_bus_t *bus = privdata;
    redisReply *r = reply;
    if (r == NULL || bus->closing)
        return;
    if (r->type == REDIS_REPLY_ERROR) {
        hs_log_error("bus: reading node commands failed: %s", r->str);
        link_later(&bus->links[LINK_NODE], read_node_cb, RETRY_READ_MS);
        return;
    }
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
            const char *seq_text = field_str(fields, "seq", NULL);
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
            const char *kind = field_str(fields, "kind", NULL);
            hs_node_cmd_t cmd = {0};
            for (int k = HS_NODE_DELIVER; k <= HS_NODE_GAP; k++)
                if (kind && k != HS_NODE_FORWARD && k != HS_NODE_BATCH_END &&
                    strcmp(kind, kind_names[k]) == 0)
                    cmd.kind = (hs_node_cmd_kind_t)k;
            if (cmd.kind == 0)
                continue;
            cmd.topic = field_str(fields, "topic", NULL);
            cmd.connection_id = field_str(fields, "conn", NULL);
            cmd.message_id = field_str(fields, "mid", NULL);
            cmd.frame_text = field_str(fields, "text", &cmd.frame_text_len);
            redisAsyncContext *cmd_link = cmd_ac(bus);
            if (cmd.kind == HS_NODE_SUBSCRIBE && cmd.topic && cmd_link) {
                char pend[KEY_MAX];
                snprintf(pend, sizeof(pend), "houston:pend:%s:%s", bus->node_name, cmd.topic);
                redisAsyncCommand(cmd_link, NULL, NULL, "EVAL %s 1 %s", subscribe_done_script,
                                  pend);
            }
            bus->node_handler(&cmd, bus->node_data);
        }
        hs_node_cmd_t end = {.kind = HS_NODE_BATCH_END};
        bus->node_handler(&end, bus->node_data);
    }
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
static const char node_start_script[] =
    "redis.call('SET', KEYS[2], 0, 'NX') redis.call('PERSIST', KEYS[2]) "
    "return {redis.call('GET', KEYS[2]), redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)}";

static void node_start_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    redis_bus_t *bus = privdata;
    redisReply *r = reply;
    if (r == NULL || bus->closing)
        return;
    if (!reply_ok(r) || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING) {
        hs_log_error("bus: finding where node commands start failed: %s",
                     r->type == REDIS_REPLY_ERROR ? r->str : "unexpected answer");
        link_later(&bus->links[LINK_NODE], node_restart_cb, RETRY_READ_MS);
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
    read_node(bus);
}

static void start_node(redis_bus_t *bus)
{
    link_t *l = &bus->links[LINK_NODE];
    if (!l->up || bus->closing)
        return;
    redisAsyncCommand(l->ac, node_start_cb, bus, "EVAL %s 2 %s %s", node_start_script,
                      bus->node_key, bus->node_seq_key);
}

static void node_restart_cb(uv_timer_t *t)
{
    link_t *l = t->data;
    start_node(l->bus);
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

static int redis_serve_node(hs_bus_t *b, const char *node, hs_bus_cmd_handler handler, void *data)
{
    redis_bus_t *bus = (redis_bus_t *)b;
    if (bus->node_handler)
        return HS_EEXIST;
    if (bus->node_name == NULL)
        bus->node_name = hs_strdup(node);
    snprintf(bus->node_key, sizeof(bus->node_key), "houston:node:%s", node);
    snprintf(bus->node_seq_key, sizeof(bus->node_seq_key), "houston:nodeseq:%s", node);
    bus->node_handler = handler;
    bus->node_data = data;
    link_open(&bus->links[LINK_NODE]);   /* starts reading once connected */
    link_open(&bus->links[LINK_PUBSUB]); /* subscribes once connected */
    return 0;
}

/* ---- what a link does when it is (back) up -------------------------------------------- */

/* A node's directory entries, cleared before it registers again; topics with
 * a subscribe on its way stay routed. */
static const char reset_script[] =
    "for _, c in ipairs(redis.call('SMEMBERS', KEYS[1])) do "
    "  if redis.call('HGET', 'houston:conns', c) == ARGV[1] then "
    "    redis.call('HDEL', 'houston:conns', c) end end "
    "redis.call('DEL', KEYS[1]) "
    "for _, t in ipairs(redis.call('SMEMBERS', KEYS[2])) do "
    "  if (tonumber(redis.call('GET', 'houston:pend:' .. ARGV[1] .. ':' .. t)) or 0) <= 0 then "
    "    redis.call('SREM', 'houston:topic:' .. t, ARGV[1]) "
    "    redis.call('SREM', KEYS[2], t) end end "
    "return 1";

static void heartbeat_cb(uv_timer_t *t);

static void link_up(link_t *l, bool again)
{
    redis_bus_t *bus = l->bus;
    switch (l->role) {
    case LINK_CMD:
        outbox_flush(bus);
        if (again)
            reread_pending(bus); /* hand-offs failed while it was away */
        if (again && bus->node_name && bus->node_handler) {
            /* Entries of connections that left while Redis was away are
             * stale: clear this node's, the notifier puts back the live. */
            redisAsyncCommand(l->ac, NULL, NULL,
                              "EVAL %s 2 houston:nodeconns:%s houston:nodetopics:%s %s",
                              reset_script, bus->node_name, bus->node_name, bus->node_name);
        }
        if (again && bus->reconnect_cb)
            bus->reconnect_cb(bus->reconnect_data);
        if (bus->heartbeat_on) /* listed at once (again): an event gap reaches it */
            heartbeat_cb(&bus->heartbeat);
        renew_lease(bus); /* a consumer starts (or goes on) reading at once */
        break;
    case LINK_EVENTS:
        /* On a reconnect a missing group means Redis lost it: create it
         * from the start of the stream. */
        bus->group_lost = bus->group_lost || again;
        if (again)
            reread_pending(bus);
        create_group(bus); /* then reads */
        break;
    case LINK_NODE:
        if (bus->node_started)
            check_node(bus); /* then on from the last command seen */
        else
            start_node(bus);
        break;
    case LINK_PUBSUB:
        redisAsyncCommand(l->ac, forwarder_cb, bus, "SUBSCRIBE %s", FORWARDER_CHANNEL);
        break;
    }
}

/* ---- directory ----------------------------------------------------------------------- */

static void redis_register_connection(hs_bus_t *b, const char *node, const char *conn,
                                      hs_bus_done_cb cb, void *data)
{
    redis_bus_t *bus = (redis_bus_t *)b;
    redisAsyncContext *ac = cmd_ac(bus);
    pending_t *p = cb ? pending_new(data) : NULL;
    if (p)
        p->done = cb;
    if (ac == NULL) {
        if (p)
            fail_later(bus, p);
        return;
    }
    redisAsyncCommand(ac, NULL, NULL, "SADD houston:nodeconns:%s %s", node, conn);
    if (redisAsyncCommand(ac, p ? done_reply_cb : NULL, p, "HSET houston:conns %s %s", conn,
                          node) != REDIS_OK &&
        p)
        fail_later(bus, p);
}

static void redis_unregister_connection(hs_bus_t *b, const char *node, const char *conn)
{
    redisAsyncContext *ac = cmd_ac((redis_bus_t *)b);
    if (ac) {
        redisAsyncCommand(ac, NULL, NULL, "HDEL houston:conns %s", conn);
        redisAsyncCommand(ac, NULL, NULL, "SREM houston:nodeconns:%s %s", node, conn);
    }
}

static void redis_add_topic_node(hs_bus_t *b, const char *topic, const char *node)
{
    redisAsyncContext *ac = cmd_ac((redis_bus_t *)b);
    if (ac) {
        redisAsyncCommand(ac, NULL, NULL, "SADD houston:topic:%s %s", topic, node);
        redisAsyncCommand(ac, NULL, NULL, "SADD houston:nodetopics:%s %s", node, topic);
    }
}

/* The node's last local subscriber of a topic left; a subscribe still on its
 * way to the node keeps the topic routed there. */
static const char remove_topic_script[] =
    "if (tonumber(redis.call('GET', KEYS[3])) or 0) > 0 then return 0 end "
    "redis.call('SREM', KEYS[1], ARGV[1]) redis.call('SREM', KEYS[2], ARGV[2]) return 1";

static void redis_remove_topic_node(hs_bus_t *b, const char *topic, const char *node)
{
    redisAsyncContext *ac = cmd_ac((redis_bus_t *)b);
    if (ac)
        redisAsyncCommand(ac, NULL, NULL,
                          "EVAL %s 3 houston:topic:%s houston:nodetopics:%s houston:pend:%s:%s %s "
                          "%s",
                          remove_topic_script, topic, node, node, topic, node, topic);
}

static void locate_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    pending_t *p = privdata;
    redisReply *r = reply;
    if (!reply_ok(r))
        p->node(reply_status(r), NULL, p->data);
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
    redisAsyncContext *ac = cmd_ac(bus);
    if (ac == NULL ||
        redisAsyncCommand(ac, locate_cb, p, "HGET houston:conns %s", conn) != REDIS_OK)
        fail_later(bus, p);
}

static void nodes_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    pending_t *p = privdata;
    redisReply *r = reply;
    if (!reply_ok(r) || r->type != REDIS_REPLY_ARRAY) {
        p->nodes(r ? HS_EIO : HS_EUNAVAIL, NULL, 0, p->data);
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
    redisAsyncContext *ac = cmd_ac(bus);
    if (ac == NULL ||
        redisAsyncCommand(ac, nodes_cb, p, "SMEMBERS houston:topic:%s", topic) != REDIS_OK)
        fail_later(bus, p);
}

/* ---- heartbeats and dead nodes ---------------------------------------------------- */

/* Removes a dead node's directory entries, in Redis, in one script, so the
 * connections and topic memberships go together. Returns 1 when this caller
 * did it (another survivor may have been first). The node's command counter
 * is left to expire in a day: a node that was only stalled numbers on, and
 * sees that commands were removed (node_check_script). */
static const char cleanup_script[] =
    "if redis.call('SET', KEYS[1], '1', 'NX', 'PX', 30000) == false then return 0 end "
    "for _, c in ipairs(redis.call('SMEMBERS', KEYS[2])) do "
    "  if redis.call('HGET', 'houston:conns', c) == ARGV[1] then "
    "    redis.call('HDEL', 'houston:conns', c) end end "
    "for _, t in ipairs(redis.call('SMEMBERS', KEYS[3])) do "
    "  redis.call('SREM', 'houston:topic:' .. t, ARGV[1]) end "
    "redis.call('DEL', KEYS[2], KEYS[3], KEYS[4]) "
    "redis.call('PEXPIRE', KEYS[5], 86400000) "
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
    redisAsyncContext *cmd = cmd_ac(bus);
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
    redisAsyncCommand(cmd, cleanup_cb, d, "EVAL %s 5 %s %s %s %s %s %s", cleanup_script, lock,
                      conns, topics, stream, seq, d->node);
}

static void nodes_listed_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    redis_bus_t *bus = privdata;
    redisReply *r = reply;
    redisAsyncContext *cmd = cmd_ac(bus);
    if (!reply_ok(r) || r->type != REDIS_REPLY_ARRAY || cmd == NULL)
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
    redisAsyncContext *ac = cmd_ac(bus);
    if (ac == NULL)
        return;
    hs_metrics_singleton.bus_heartbeats++;
    redisAsyncCommand(ac, NULL, NULL, "SET houston:alive:%s 1 PX %llu", bus->node_name,
                      (unsigned long long)(3 * bus->heartbeat_ms));
    redisAsyncCommand(ac, NULL, NULL, "SADD houston:nodes %s", bus->node_name);
    redisAsyncCommand(ac, nodes_listed_cb, bus, "SMEMBERS houston:nodes");
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
    uv_timer_start(&bus->heartbeat, heartbeat_cb, 0, interval_ms);
    bus->heartbeat_on = true;
}

/* ---- closing ----------------------------------------------------------------------- */

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

static void handle_closed_cb(uv_handle_t *h)
{
    redis_bus_t *bus = h->data;
    bus->open_handles--;
    maybe_closed(bus);
}

static void link_timer_closed_cb(uv_handle_t *h)
{
    link_t *l = h->data;
    l->bus->open_handles--;
    maybe_closed(l->bus);
}

/* Frees the bus once every context disconnected and every timer closed -
 * from a close callback, so never inside hs_bus_close or a hiredis
 * callback. */
static void maybe_closed(redis_bus_t *bus)
{
    if (!bus->closing || bus->finishing || bus->open_contexts > 0 || bus->open_handles > 0)
        return;
    bus->finishing = true;
    uv_close((uv_handle_t *)&bus->finish, finish_closed_cb);
}

static void redis_close(hs_bus_t *b, hs_bus_done_cb cb, void *data)
{
    redis_bus_t *bus = (redis_bus_t *)b;
    if (bus->heartbeat_on && cmd_up(bus)) {
        /* A clean stop: leave the directory now rather than after the
         * timeout (the notifier already removed its connections). */
        redisAsyncContext *ac = bus->links[LINK_CMD].ac;
        redisAsyncCommand(ac, NULL, NULL, "DEL houston:alive:%s", bus->node_name);
        redisAsyncCommand(ac, NULL, NULL, "SREM houston:nodes %s", bus->node_name);
    }
    if (bus->leader && cmd_up(bus))
        /* A clean stop gives the event lease back: a standby takes it at
         * its next try instead of after --claim-idle. */
        redisAsyncCommand(bus->links[LINK_CMD].ac, NULL, NULL, "EVAL %s 1 %s %s",
                          lease_release_script, LEASE_KEY, bus->consumer_name);
    bus->close_cb = cb;
    bus->close_data = data;
    bus->closing = true;
    if (bus->outbox_len > 0)
        hs_log_warn("bus: %zu events could not be appended before the stop (their messages are "
                    "in the history)",
                    bus->outbox_len);
    while (bus->outbox_head) {
        outbox_entry_t *e = bus->outbox_head;
        bus->outbox_head = e->next;
        if (e->cb)
            e->cb(HS_ECLOSED, e->data);
        outbox_entry_free(e);
    }
    bus->outbox_tail = NULL;
    bus->outbox_len = 0;
    uv_close((uv_handle_t *)&bus->claim_timer, handle_closed_cb);
    uv_close((uv_handle_t *)&bus->heartbeat, handle_closed_cb);
    for (int i = 0; i < LINK_COUNT; i++) {
        link_t *l = &bus->links[i];
        uv_close((uv_handle_t *)&l->timer, link_timer_closed_cb);
        redisAsyncContext *ac = l->ac;
        if (ac == NULL)
            continue;
        if (!l->up) {
            /* Still connecting: no disconnect callback will come. */
            l->ac = NULL;
            bus->open_contexts--;
            redisAsyncFree(ac);
        } else if (i == LINK_CMD) {
            redisAsyncDisconnect(ac); /* sends what is queued first */
        } else {
            redisAsyncFree(ac); /* a blocked read need not finish */
        }
    }
    maybe_closed(bus);
}

static const hs_bus_ops_t redis_ops = {
    .name = "redis",
    .redelivers = true,
    .ready = redis_ready,
    .on_reconnect = redis_on_reconnect,
    .publish_event = redis_publish_event,
    .consume_events = redis_consume_events,
    .ack = redis_ack,
    .release = redis_release,
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

static void init_timer(redis_bus_t *bus, uv_timer_t *t, void *data)
{
    uv_timer_init(bus->base.loop, t);
    t->data = data;
    bus->open_handles++;
}

int hs_bus_redis_open(uv_loop_t *loop, const char *url, const hs_bus_redis_options_t *options,
                      hs_bus_t **out, char *err, size_t err_len)
{
    redis_bus_t *bus = hs_calloc(1, sizeof(*bus));
    bus->base.ops = &redis_ops;
    bus->base.loop = loop;
    bus->port = 6379;
    bus->claim_idle_ms = options && options->claim_idle_ms ? options->claim_idle_ms : CLAIM_IDLE_MS;
    snprintf(bus->node_max, sizeof(bus->node_max), "%llu",
             (unsigned long long)(options && options->node_stream_max ? options->node_stream_max
                                                                      : NODE_MAXLEN));
    snprintf(bus->events_max, sizeof(bus->events_max), "%llu",
             (unsigned long long)(options && options->event_stream_max ? options->event_stream_max
                                                                       : EVENTS_MAXLEN));
    bus->node_seq = -1;
    const char *p = strncmp(url, "redis://", 8) == 0 ? url + 8 : NULL;
    const char *colon = p ? strchr(p, ':') : NULL;
    const char *slash = p ? strchr(p, '/') : NULL;
    if (colon && slash && colon > slash)
        colon = NULL;
    size_t host_len = p ? (size_t)((colon ? colon : slash ? slash : p + strlen(p)) - p) : 0;
    char shown[512]; /* the URL in an error: its password masked */
    hs_redact_url(url, shown, sizeof(shown));
    if (p == NULL || host_len == 0 || host_len >= sizeof(bus->host)) {
        snprintf(err, err_len, "bus URL '%s' is not redis://host[:port][/db]", shown);
        hs_free(bus);
        return HS_EINVAL;
    }
    memcpy(bus->host, p, host_len);
    if (colon)
        bus->port = atoi(colon + 1);
    if (slash)
        bus->db = atoi(slash + 1);
    if (bus->port <= 0 || bus->port > 65535 || bus->db < 0) {
        snprintf(err, err_len, "bus URL '%s' has a bad port or database number", shown);
        hs_free(bus);
        return HS_EINVAL;
    }
    uv_timer_init(loop, &bus->finish);
    bus->finish.data = bus;
    init_timer(bus, &bus->claim_timer, bus);
    init_timer(bus, &bus->heartbeat, bus);
    for (int i = 0; i < LINK_COUNT; i++) {
        bus->links[i].bus = bus;
        bus->links[i].role = i;
        init_timer(bus, &bus->links[i].timer, &bus->links[i]);
    }
    /* An unreachable Redis is not an error here: the link keeps trying. */
    link_open(&bus->links[LINK_CMD]);
    *out = &bus->base;
    return 0;
}
