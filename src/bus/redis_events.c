/* redis_events.c - "message created" events on Redis, the consumer side of
 * the partitions it holds: their groups, the event read script (gaps), one
 * read loop over them, the take-over of pending entries (XAUTOCLAIM) - and
 * fenced acks and releases. Which partitions a consumer holds is
 * redis_leases.c's; how the publisher appends the events, redis_outbox.c's. */
#include <stdio.h>
#include <string.h>

#include "bus/redis_internal.h"
#include "core/alloc.h"
#include "core/error.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/ulid.h"

/* ---- consumer: the held partitions' streams ----------------------------------- */

/* Hands the entries of a read or claim of partition p to the consumer,
 * each with a token for its ack (the partition and this take's fence). */
static void hand_on(redis_bus_t *bus, partition_t *p, const redisReply *entries)
{
    if (entries == NULL || entries->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t i = 0; i < entries->elements; i++) {
        const redisReply *entry = entries->element[i];
        if (entry->type != REDIS_REPLY_ARRAY || entry->elements < 2 ||
            entry->element[0]->type != REDIS_REPLY_STRING)
            continue;
        event_token_t *token = hs_calloc(1, sizeof(*token));
        token->partition = p->index;
        token->fence = p->fence;
        snprintf(token->id, sizeof(token->id), "%s", entry->element[0]->str);
        p->in_flight++;
        if (entry->element[1]->type != REDIS_REPLY_ARRAY) {
            /* Pending, but trimmed from the stream: nothing left to deliver. */
            hs_bus_ack(&bus->base, token);
            continue;
        }
        const redisReply *fields = entry->element[1];
        size_t json_len;
        hs_event_t event = {.topic = hs_redis__field_str(fields, "topic", NULL),
                            .message_id = hs_redis__field_str(fields, "id", NULL),
                            .message_json = hs_redis__field_str(fields, "json", &json_len),
                            .message_json_len = json_len,
                            .partition = (int)p->index,
                            .fence = p->fence,
                            .prev = hs_redis__field_str(fields, "prev", NULL)};
        const char *kind = hs_redis__field_str(fields, "kind", NULL);
        if (kind && strcmp(kind, "deleted") == 0)
            event.kind = HS_EVENT_DELETED;
        if (event.topic && event.message_id && event.message_json)
            bus->consumer(&event, token, bus->consumer_data);
        else
            hs_bus_ack(&bus->base, token); /* malformed: nothing to deliver */
    }
}

/* The consumers' read of new events of one partition (docs/recovery.md,
 * "Gaps"), in one step: is the caller still the partition's holder (the
 * lease holds its fencing token)? Were entries trimmed before the group
 * read them, or was the group recreated (ARGV[5] = "1")? Then every node
 * gets a "gap" command, ahead of whatever this read hands on. Then the next
 * entries for this consumer. Answers {gap text or "", the stream's last id,
 * the entries}.
 *
 * Trimming does not move max-deleted-entry-id (only XDEL does, and nothing
 * deletes events), so the test counts: entries-added - length entries were
 * trimmed, the group has read entries-read of them; fewer means some were
 * trimmed unread. Redis counts a read after such a gap as one more, so the
 * count is set right after a gap is reported. While Redis cannot tell how
 * many the group read (entries-read nil: created at an id and not caught up
 * since), the group's last id before the first entry left is a gap (at
 * worst one reported when the trim ended exactly at that id). Ids are
 * compared as numbers: milliseconds fit a Lua double exactly.
 *
 * KEYS: the partition's stream, the set of nodes, the partition's lease.
 * ARGV: group, consumer, count, node stream MAXLEN, recreated flag, the
 * caller's "<consumer>:<token>". The gap command goes to every node's
 * stream and counter (houston:node:<node>, houston:nodeseq:<node>): those
 * keys are derived inside the script from the members of the set, because
 * which nodes there are is only known in the same atomic step that appends
 * to them (a node that joins in between must get it too). Fine on a single
 * Redis; on a Redis Cluster the node keys are in other slots (the cluster
 * link's concern: docs/scaling.md). */
const char hs_redis__events_read_script[] =
    "if redis.call('GET', KEYS[2]) ~= ARGV[6] then "
    "  return redis.error_reply('FENCED this consumer no longer holds the partition') end "
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
    "  for _, node in ipairs(ARGV[7] ~= '' and redis.call('SMEMBERS', ARGV[7]) or {}) do "
    "    local seq = redis.call('INCR', 'houston:{n:' .. node .. '}:seq') "
    "    redis.call('XADD', 'houston:{n:' .. node .. '}:stream', 'MAXLEN', '~', ARGV[4], '*', "
    "               'seq', seq, "
    "               'kind', 'gap', 'topic', KEYS[1], 'text', gap) end end "
    "return {gap, last, redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', ARGV[3], "
    "                              'STREAMS', KEYS[1], '>')}";

/* Claims (XAUTOCLAIM) entries of the partition's group pending at least
 * ARGV[4] ms, for the caller - only while it holds the lease with that
 * token. KEYS: lease, stream. ARGV: "<consumer>:<token>", group, consumer,
 * min idle, cursor, count. */
const char hs_redis__claim_script[] =
    "if redis.call('GET', KEYS[1]) ~= ARGV[1] then "
    "  return redis.error_reply('FENCED this consumer no longer holds the partition') end "
    "return redis.call('XAUTOCLAIM', KEYS[2], ARGV[2], ARGV[3], ARGV[4], ARGV[5], 'COUNT', "
    "                  ARGV[6])";

/* Acknowledges one entry, only while the caller's token is the partition's
 * current one: a stale holder's ack is refused (-1) and the entry stays
 * pending for the holder, who claimed it or will. KEYS: lease, stream.
 * ARGV: "<consumer>:<token>", group, entry id. */
const char hs_redis__ack_script[] = "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end "
                                    "return redis.call('XACK', KEYS[2], ARGV[2], ARGV[3])";

/* After a take-over claimed every pending entry: the other consumers of the
 * partition's group have none left, and go (XGROUP DELCONSUMER drops a
 * consumer's pending entries, so only consumers without any). A dead
 * consumer is removed so; a live one that reads this partition again later
 * is added back by Redis. KEYS: lease, stream. ARGV: "<consumer>:<token>",
 * group, consumer. Answers how many went. */
const char hs_redis__tidy_script[] =
    "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end "
    "local n = 0 "
    "for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[2], ARGV[2])) do "
    "  local name, pending "
    "  for i = 1, #c, 2 do "
    "    if c[i] == 'name' then name = c[i + 1] elseif c[i] == 'pending' then pending = c[i + 1] "
    "end "
    "  end "
    "  if name ~= ARGV[3] and pending == 0 then "
    "    redis.call('XGROUP', 'DELCONSUMER', KEYS[2], ARGV[2], name) n = n + 1 end end "
    "return n";

static bool readable(const partition_t *p)
{
    return p->held && !p->taking_over && !p->releasing;
}

static bool full(const partition_t *p)
{
    return p->in_flight >= PARTITION_IN_FLIGHT_MAX;
}

static void read_done(redis_bus_t *bus)
{
    partition_t *p = bus->reading;
    bus->read_busy = false;
    bus->reading = NULL;
    if (p)
        hs_redis__partition_settled(bus, p); /* a hand-back waited for this read */
    hs_redis__read_events(bus);
}

/* After an error reply, or a recreated group's delay. */
static void read_again_cb(uv_timer_t *t)
{
    link_t *l = t->data;
    read_done(l->bus);
}

static void regroup_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    partition_t *p = privdata;
    redis_bus_t *bus = p->bus;
    redisReply *r = reply;
    link_t *l = &bus->links[LINK_EVENTS];
    if (r == NULL && bus->cluster && !bus->closing) {
        /* On a cluster it went over the partition's master, which went
         * away - not the event link, whose coming back would read again. */
        hs_redis__link_later(l, read_again_cb, RETRY_READ_MS);
        return;
    }
    if (r == NULL || bus->closing)
        return; /* the link is down: it reads again once it is back */
    bool existed = r->type == REDIS_REPLY_ERROR && strncmp(r->str, "BUSYGROUP", 9) == 0;
    if (r->type == REDIS_REPLY_ERROR && !existed) {
        hs_log_error("bus: creating the consumer group of %s failed: %s", p->stream, r->str);
        hs_redis__link_later(l, read_again_cb, RETRY_READ_MS);
        return;
    }
    if (!existed) {
        /* Redis lost its data (restarted without persistence): the
         * notifiers put their directory entries back as they reconnect;
         * give them a moment before routing again. */
        hs_log_warn("bus: the consumer group of %s was gone (did Redis lose its data?); created "
                    "it again, reading in %d ms",
                    p->stream, REGROUP_DELAY_MS);
        p->group_gap = true; /* the first read tells every node */
        hs_redis__link_later(l, read_again_cb, REGROUP_DELAY_MS);
        return;
    }
    read_done(bus);
}

/* Hands over the entries of an XREADGROUP answer; returns how many. */
static size_t handle_read(redis_bus_t *bus, partition_t *p, const redisReply *r)
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
        got += stream->element[1]->elements;
        hand_on(bus, p, stream->element[1]);
    }
    return got;
}

/* A gap on a Redis Cluster: every node of houston:nodes gets a "gap"
 * command (the read script cannot append to streams in other slots). */
static void gap_nodes_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    char *text = privdata;
    redisReply *r = reply;
    hs_bus_t *b = ac && ac->data ? &((link_t *)ac->data)->bus->base : NULL;
    for (size_t i = 0; b && r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        hs_node_cmd_t cmd = {.kind = HS_NODE_GAP,
                             .topic = "events",
                             .frame_text = text,
                             .frame_text_len = strlen(text)};
        if (r->element[i]->type == REDIS_REPLY_STRING)
            hs_redis__send_to_node(b, r->element[i]->str, &cmd, NULL, NULL);
    }
    hs_free(text);
}

static void gap_to_nodes(redis_bus_t *bus, const char *text)
{
    char *copy = hs_strdup(text);
    if (hs_redis__cmdl(bus, gap_nodes_cb, copy, "SMEMBERS", NODES_KEY) != REDIS_OK)
        hs_free(copy);
}

static void events_read_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    partition_t *p = privdata;
    redis_bus_t *bus = p->bus;
    redisReply *r = reply;
    link_t *l = &bus->links[LINK_EVENTS];
    if (r == NULL && bus->cluster && !bus->closing) {
        hs_redis__link_later(l, read_again_cb, RETRY_READ_MS); /* as regroup_cb */
        return;
    }
    if (r && r->type == REDIS_REPLY_ERROR && !bus->closing) {
        if (strncmp(r->str, "NOGROUP", 7) == 0) {
            hs_redis__cmdl(bus, regroup_cb, p, "XGROUP", "CREATE", p->stream, GROUP, "0",
                           "MKSTREAM");
            return;
        }
        if (strncmp(r->str, "FENCED", 6) == 0) {
            hs_redis__partition_lost(bus, p, "its lease is another consumer's now");
            read_done(bus);
            return;
        }
    }
    if (hs_redis__link_reply(bus, LINK_EVENTS, reply, "reading events", read_again_cb) == NULL)
        return;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING) {
        hs_log_error("bus: reading events: unexpected answer from Redis");
        hs_redis__link_later(l, read_again_cb, RETRY_READ_MS);
        return;
    }
    if (r->element[0]->len > 0) {
        /* The script already told every node, ahead of what follows (on a
         * cluster the nodes hear it now, after: docs/internals/bus.md). */
        if (bus->cluster)
            gap_to_nodes(bus, r->element[0]->str);
        hs_log_warn("bus: gap in %s: %s; every notifier closes its connections so that they "
                    "resume",
                    p->stream, r->element[0]->str);
        hs_metrics_singleton.stream_gaps++;
        p->group_gap = false;
    }
    snprintf(p->last, sizeof(p->last), "%s", r->element[1]->str);
    size_t got = handle_read(bus, p, r->elements > 2 ? r->element[2] : NULL);
    /* Fewer than asked: the group has read up to last; wait for more. */
    p->idle = got < READ_COUNT_N;
    read_done(bus);
}

static void events_waited_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    redis_bus_t *bus = privdata;
    redisReply *r = reply;
    if (hs_redis__link_reply(bus, LINK_EVENTS, reply, "waiting for events", read_again_cb) == NULL)
        return;
    if (r->type != REDIS_REPLY_NIL) /* new entries: read them through the script */
        for (unsigned i = 0; i < bus->partitions; i++)
            bus->parts[i].idle = false;
    read_done(bus);
}

/* A script cannot block: the consumer waits with a plain XREAD for an entry
 * after the last one each held partition's group has read, and reads it
 * through the script. The wait is short (a quarter of a heartbeat, at most
 * BLOCK_MS) so that a partition taken meanwhile is read soon. One XREAD
 * names every held partition's stream: on a Redis Cluster that is one wait
 * per shard (the cluster link's concern: docs/scaling.md). */
static void wait_events(redis_bus_t *bus)
{
    link_t *l = &bus->links[LINK_EVENTS];
    unsigned n = 0;
    bool any_full = false;
    for (unsigned i = 0; i < bus->partitions; i++) {
        n += readable(&bus->parts[i]) && bus->parts[i].idle;
        any_full = any_full || (readable(&bus->parts[i]) && full(&bus->parts[i]));
    }
    if (n == 0)
        return; /* nothing to wait for: a take-over or an ack starts the reads */
    if (bus->cluster) {
        /* One XREAD cannot name streams of several slots: on a cluster the
         * idle partitions are read again after CLUSTER_POLL_MS. */
        for (unsigned i = 0; i < bus->partitions; i++)
            bus->parts[i].idle = false;
        bus->read_busy = true;
        hs_redis__link_later(l, read_again_cb, any_full ? 10 : CLUSTER_POLL_MS);
        return;
    }
    char block[24];
    uint64_t ms = bus->consumer_beat_ms / 4;
    ms = ms < 100 ? 100 : ms > 2000 ? 2000 : ms;
    if (any_full)
        ms = 10; /* a full partition reads on as soon as its acks come */
    snprintf(block, sizeof(block), "%llu", (unsigned long long)ms);
    size_t argc = 6 + 2 * (size_t)n;
    const char **argv = hs_malloc(argc * sizeof(char *));
    size_t k = 0;
    argv[k++] = "XREAD";
    argv[k++] = "COUNT";
    argv[k++] = "1";
    argv[k++] = "BLOCK";
    argv[k++] = block;
    argv[k++] = "STREAMS";
    for (unsigned i = 0; i < bus->partitions; i++)
        if (readable(&bus->parts[i]) && bus->parts[i].idle)
            argv[k++] = bus->parts[i].stream;
    for (unsigned i = 0; i < bus->partitions; i++)
        if (readable(&bus->parts[i]) && bus->parts[i].idle)
            argv[k++] = bus->parts[i].last[0] ? bus->parts[i].last : "$";
    if (redisAsyncCommandArgv(l->ac, events_waited_cb, bus, (int)argc, argv, NULL) == REDIS_OK)
        bus->read_busy = true;
    hs_free(argv);
}

void hs_redis__read_events(redis_bus_t *bus)
{
    link_t *l = &bus->links[LINK_EVENTS];
    if (!l->up || bus->closing || bus->read_busy || !bus->groups_ready || bus->consumer == NULL)
        return;
    for (unsigned k = 0; k < bus->partitions; k++) {
        partition_t *p = &bus->parts[(bus->read_next + k) % bus->partitions];
        if (!readable(p) || p->idle || full(p))
            continue;
        bus->read_next = (p->index + 1) % bus->partitions;
        /* On a Redis Cluster the read goes to the partition's master
         * (its shard), and the nodes hear of a gap from here, after
         * (gap_to_nodes): their streams are in other slots. */
        redisAsyncContext *ac = bus->cluster ? hs_redis__cmd_ac_key(bus, p->stream) : l->ac;
        if (ac == NULL) {
            bus->read_busy = true;
            hs_redis__link_later(l, read_again_cb, RETRY_READ_MS);
            return;
        }
        if (hs_redis__script(ac, bus, SCRIPT_EVENTS_READ, events_read_cb, p, 2, 9,
                             (const char *[]){p->stream, p->lease, GROUP, bus->consumer_name,
                                              READ_COUNT, bus->node_max, p->group_gap ? "1" : "0",
                                              p->holder, bus->cluster ? "" : NODES_KEY},
                             NULL) == REDIS_OK) {
            bus->read_busy = true;
            bus->reading = p;
        }
        return;
    }
    wait_events(bus); /* every held partition is read up to its end (or full) */
}

/* Every partition's group exists before the first read. The first consumer
 * creates them at the end of the streams (older events were for an earlier
 * deployment); a group Redis lost is created again at the start of the
 * (new) stream, so nothing appended since is skipped, and the nodes hear
 * of the gap. */
static void group_created_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    partition_t *p = privdata;
    redis_bus_t *bus = p->bus;
    redisReply *r = reply;
    if (bus->closing || (r == NULL && !bus->cluster))
        return; /* the link went away: done again when it is back */
    /* (On a cluster no answer is a master that went away: the group is
     * created at its first read, NOGROUP.) */
    bool existed = r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "BUSYGROUP", 9) == 0;
    if (r && r->type == REDIS_REPLY_ERROR && !existed)
        hs_log_error("bus: creating the consumer group of %s failed: %s (tried again at its "
                     "first read)",
                     p->stream, r->str);
    else if (r && bus->group_lost && !existed) {
        p->group_gap = true; /* the first read tells every node */
        bus->groups_recreated++;
    }
    if (--bus->groups_pending > 0)
        return;
    bus->group_lost = false;
    bus->groups_ready = true;
    if (bus->groups_recreated > 0) {
        hs_log_warn("bus: %u consumer groups were gone (did Redis lose its data?); created them "
                    "again, reading in %d ms",
                    bus->groups_recreated, REGROUP_DELAY_MS);
        bus->read_busy = true;
        hs_redis__link_later(&bus->links[LINK_EVENTS], read_again_cb, REGROUP_DELAY_MS);
        return;
    }
    hs_redis__read_events(bus);
}

static void create_groups(redis_bus_t *bus)
{
    link_t *l = &bus->links[LINK_EVENTS];
    if (!l->up || bus->closing)
        return;
    if (bus->cluster && !hs_redis__cmd_up(bus)) {
        bus->groups_ready = false;
        bus->groups_deferred = true; /* when the masters are reachable (events_cmd_up) */
        return;
    }
    bus->groups_deferred = false;
    bus->groups_ready = false;
    bus->groups_pending = bus->partitions;
    bus->groups_recreated = 0;
    for (unsigned i = 0; i < bus->partitions; i++) {
        partition_t *p = &bus->parts[i];
        const char *from = bus->group_lost ? "0" : "$";
        if (!bus->cluster)
            redisAsyncCommand(l->ac, group_created_cb, p, "XGROUP CREATE %s %s %s MKSTREAM",
                              p->stream, GROUP, from);
        else if (hs_redis__cmdl(bus, group_created_cb, p, "XGROUP", "CREATE", p->stream, GROUP,
                                from, "MKSTREAM") != REDIS_OK)
            group_created_cb(NULL, NULL, p); /* not sent: created at its first read */
    }
}

/* ---- take-over and claims ---------------------------------------------------------- */

static int claim(redis_bus_t *bus, partition_t *p, uint64_t min_idle_ms, redisCallbackFn *cb)
{
    char idle[24];
    snprintf(idle, sizeof(idle), "%llu", (unsigned long long)min_idle_ms);
    int rc = hs_redis__cmd_script(bus, SCRIPT_CLAIM, cb, p, 2, 8,
                                  (const char *[]){p->lease, p->stream, p->holder, GROUP,
                                                   bus->consumer_name, idle, p->claim_cursor,
                                                   READ_COUNT},
                                  NULL);
    p->claiming = rc == REDIS_OK;
    return rc;
}

/* A claim's answer: [next-cursor, [entries], (deleted ids)]. Returns
 * whether it was one (the entries are handed on). */
static bool claimed(redis_bus_t *bus, partition_t *p, const redisReply *r)
{
    p->claiming = false;
    if (r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "FENCED", 6) == 0) {
        hs_redis__partition_lost(bus, p, "its lease is another consumer's now");
        return false;
    }
    if (r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOGROUP", 7) == 0 && !bus->closing) {
        /* The group is gone where the partition lives now: a Redis Cluster
         * master failed over to a replica that never had it (or Redis lost
         * its data without the event link noticing). Created again from the
         * start of what is left, and the next read tells the nodes of the
         * gap; the claim is tried again at the next beat. */
        hs_log_warn("bus: the consumer group of %s is gone (a failover to a replica without "
                    "it?); creating it again",
                    p->stream);
        p->group_gap = true;
        hs_redis__cmdl(bus, NULL, NULL, "XGROUP", "CREATE", p->stream, GROUP, "0", "MKSTREAM");
        return false;
    }
    if (!hs_redis__reply_ok(r) || r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
        r->element[0]->type != REDIS_REPLY_STRING) {
        if (r && r->type == REDIS_REPLY_ERROR)
            hs_log_warn("bus: claiming the pending events of %s failed: %s", p->stream, r->str);
        return false;
    }
    snprintf(p->claim_cursor, sizeof(p->claim_cursor), "%s", r->element[0]->str);
    if (strcmp(p->claim_cursor, "0-0") == 0 && p->last_release_ms <= p->claim_pass_ms)
        p->last_release_ms = 0; /* a whole pass after the last release: all back */
    size_t n = r->element[1]->elements;
    if (n > 0) {
        hs_log_info("bus: took over %zu events of %s left pending", n, p->stream);
        hs_metrics_singleton.bus_events_claimed += n;
    }
    hand_on(bus, p, r->element[1]);
    /* Pending entries trimmed before anyone handed them over: later events
     * went out already, so a resume from the client's last id cannot bring
     * these back (docs/recovery.md, "Gaps"). */
    if (r->elements >= 3 && r->element[2]->type == REDIS_REPLY_ARRAY &&
        r->element[2]->elements > 0) {
        hs_log_error("bus: %zu events left unacknowledged by a stopped consumer were trimmed "
                     "from %s before they were taken over; their messages are in the history "
                     "only",
                     r->element[2]->elements, p->stream);
        hs_metrics_singleton.stream_gaps++;
    }
    return true;
}

static void tidied_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    partition_t *p = privdata;
    redisReply *r = reply;
    if (r && r->type == REDIS_REPLY_INTEGER && r->integer > 0)
        hs_log_info("bus: %lld consumers without pending events left the group of %s", r->integer,
                    p->stream);
}

/* The take-over: every entry pending in the partition's group (read by a
 * holder that stopped, never acknowledged - the lease proves it gone, so
 * at once rather than after --claim-idle) is handed on, oldest first,
 * before any new one; the notifiers drop those they had already. Then the
 * other consumers leave the group, and reading starts. */
static void took_over_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    partition_t *p = privdata;
    redis_bus_t *bus = p->bus;
    if (bus->closing || reply == NULL) {
        p->claiming = false; /* the link went away: taken over again when it is back */
        return;
    }
    if (!claimed(bus, p, reply))
        return; /* tried again at the next beat (or lost) */
    if (strcmp(p->claim_cursor, "0-0") != 0) {
        claim(bus, p, 0, took_over_cb);
        return;
    }
    hs_redis__cmd_script(
        bus, SCRIPT_TIDY, tidied_cb, p, 2, 5,
        (const char *[]){p->lease, p->stream, p->holder, GROUP, bus->consumer_name}, NULL);
    p->taking_over = false;
    p->idle = false;
    hs_redis__read_events(bus);
}

void hs_redis__take_over(redis_bus_t *bus, partition_t *p)
{
    p->taking_over = true;
    p->claim_pass_ms = uv_now(bus->base.loop); /* it claims every pending entry */
    snprintf(p->claim_cursor, sizeof(p->claim_cursor), "0-0");
    if (!p->claiming)
        claim(bus, p, 0, took_over_cb);
}

static void claim_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    partition_t *p = privdata;
    if (!p->bus->closing)
        claimed(p->bus, p, reply);
    else
        p->claiming = false;
}

/* XINFO GROUPS: [[name, houston:consumers, ..., pending, N, ..., lag, M], ...] */
static void backlog_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    redis_bus_t *bus = privdata;
    redisReply *r = reply;
    if (!hs_redis__reply_ok(r) || r->type != REDIS_REPLY_ARRAY || bus->closing)
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
            bus->backlog_sum += (uint64_t)(pending + (lag > 0 ? lag : 0));
    }
}

void hs_redis__partition_beat(redis_bus_t *bus, partition_t *p)
{
    if (!hs_redis__cmd_up(bus))
        return;
    hs_redis__cmdl(bus, backlog_cb, bus, "XINFO", "GROUPS", p->stream);
    if (p->taking_over && !p->claiming) {
        hs_redis__take_over(bus, p); /* an earlier try failed */
        return;
    }
    /* This consumer's own entries whose hand-off failed (released) come
     * back after --claim-idle: a pass of claims once the last release is
     * that old (entries still on their way are not claimed for nothing,
     * which under a burst doubled the work). */
    uint64_t now = uv_now(bus->base.loop);
    if (!p->taking_over && !p->claiming && !p->releasing && p->last_release_ms != 0 &&
        now >= p->last_release_ms + bus->claim_idle_ms) {
        if (strcmp(p->claim_cursor, "0-0") == 0)
            p->claim_pass_ms = now;
        claim(bus, p, bus->claim_idle_ms, claim_cb);
    }
}

int hs_redis__consume_events(hs_bus_t *b, hs_bus_event_handler handler, void *data)
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
    hs_redis__link_open(&bus->links[LINK_EVENTS]); /* groups, then reads (link_up) */
    hs_redis__leases_start(bus);
    return 0;
}

/* ---- acks -------------------------------------------------------------------------- */

static void ack_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    (void)privdata;
    redisReply *r = reply;
    if (r && r->type == REDIS_REPLY_INTEGER && r->integer >= 0)
        hs_metrics_singleton.bus_events_acked++;
    else if (r && r->type == REDIS_REPLY_INTEGER)
        hs_log_debug("bus: an ack was refused: the partition has another holder now, which "
                     "hands the event on again");
}

void hs_redis__ack(hs_bus_t *b, void *token)
{
    redis_bus_t *bus = (redis_bus_t *)b;
    event_token_t *t = token;
    partition_t *p = &bus->parts[t->partition];
    char holder[96];
    snprintf(holder, sizeof(holder), "%s:%llu", bus->consumer_name, (unsigned long long)t->fence);
    /* Not acknowledged while Redis is away: the event stays pending and is
     * taken over again; the nodes drop the second copy. */
    hs_redis__cmd_script(bus, SCRIPT_ACK, ack_cb, NULL, 2, 5,
                         (const char *[]){p->lease, p->stream, holder, GROUP, t->id}, NULL);
    hs_free(t);
    p->in_flight--;
    hs_redis__partition_settled(bus, p);
}

void hs_redis__release(hs_bus_t *b, void *token)
{
    redis_bus_t *bus = (redis_bus_t *)b;
    event_token_t *t = token;
    partition_t *p = &bus->parts[t->partition];
    hs_free(t); /* left pending: claimed again after --claim-idle, or by the next holder */
    p->last_release_ms = uv_now(bus->base.loop);
    p->in_flight--;
    hs_redis__partition_settled(bus, p);
}

/* ---- the command and event links (back) up, and a clean stop ---------------------- */

void hs_redis__events_cmd_up(redis_bus_t *bus, bool again)
{
    hs_redis__partitions_check(bus);
    hs_redis__outbox_flush(bus);
    if (bus->groups_deferred)
        create_groups(bus); /* the event link came up before the masters (a cluster) */
    if (bus->consumer == NULL)
        return;
    /* After a reconnect the held partitions' pending entries (hand-offs
     * that failed while Redis was away) are handed on again at once; a
     * partition whose lease went meanwhile is found lost (FENCED). */
    for (unsigned i = 0; again && i < bus->partitions; i++) {
        partition_t *p = &bus->parts[i];
        p->claiming = false;
        if (p->held && !p->releasing)
            hs_redis__take_over(bus, p);
    }
    hs_redis__leases_beat(bus);
}

void hs_redis__events_cmd_lost(redis_bus_t *bus)
{
    for (unsigned i = 0; bus->parts && i < bus->partitions; i++)
        if (bus->parts[i].held)
            bus->parts[i].taking_over = true;
}

void hs_redis__events_link_up(redis_bus_t *bus, bool again)
{
    /* On a reconnect a missing group means Redis lost it: create it from
     * the start of the stream. */
    bus->group_lost = bus->group_lost || again;
    bus->read_busy = false;
    bus->reading = NULL;
    create_groups(bus); /* then reads */
}

void hs_redis__events_close(redis_bus_t *bus)
{
    if (bus->consumer)
        hs_redis__leases_close(bus);
    hs_redis__outbox_close(bus);
}
