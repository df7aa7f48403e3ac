/* redis_events.c - "message created" events on Redis: the publisher's
 * outbox (appended again when the command link is back), the consumer group
 * and the event read script (gaps), the event lease (one reader at a time)
 * with the take-over of pending entries (XAUTOCLAIM), acks and releases. */
#include <stdio.h>
#include <string.h>

#include "bus/redis_internal.h"
#include "core/alloc.h"
#include "core/error.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/ulid.h"

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
    int status = hs_redis__reply_status(reply);
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
    if (hs_redis__cmd_durable(bus, event_appended_cb, e, 12, argv, lens) != REDIS_OK)
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

void hs_redis__publish_event(hs_bus_t *b, const hs_event_t *ev, hs_bus_done_cb cb, void *data)
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
        hs_event_t event = {.topic = hs_redis__field_str(fields, "topic", NULL),
                            .message_id = hs_redis__field_str(fields, "id", NULL),
                            .message_json = hs_redis__field_str(fields, "json", &json_len),
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
 * compared as numbers: milliseconds fit a Lua double exactly.
 *
 * KEYS: the event stream. The gap command goes to every node's stream, but
 * those keys are in other slots (a Redis Cluster): the consumer does it
 * (gap_to_nodes), before it hands on anything read after the gap. */
const char hs_redis__events_read_script[] =
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
    "return {gap, last, redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', ARGV[3], "
    "                              'STREAMS', KEYS[1], '>')}";

static void wait_events(redis_bus_t *bus);
static void reread_pending(redis_bus_t *bus);

/* A gap the read script found: every node hears it - its "gap" command
 * appended to its stream - before any entry read after the gap is handed
 * on. The entries of that read stay pending in the group; once the gap
 * commands are on their way (on the command link of each node's slot,
 * ahead of any delivery sent to that node after them), this consumer reads
 * its pending entries again and hands them on. */
typedef struct gap_note {
    redis_bus_t *bus;
    char text[256];
} gap_note_t;

static void gap_nodes_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    gap_note_t *g = privdata;
    redis_bus_t *bus = g->bus;
    redisReply *r = reply;
    if (bus->closing || !hs_redis__reply_ok(r) || r->type != REDIS_REPLY_ARRAY) {
        /* Told no node yet: the gap is told again at the next read. */
        bus->gap_unsent = true;
        snprintf(bus->gap_text, sizeof(bus->gap_text), "%s", g->text);
        hs_free(g);
        hs_redis__link_later(&bus->links[LINK_EVENTS], read_events_cb, RETRY_READ_MS);
        return;
    }
    for (size_t i = 0; i < r->elements; i++) {
        if (r->element[i]->type != REDIS_REPLY_STRING)
            continue;
        hs_node_cmd_t cmd = {.kind = HS_NODE_GAP,
                             .topic = EVENTS_KEY,
                             .frame_text = g->text,
                             .frame_text_len = strlen(g->text)};
        hs_redis__send_to_node(&bus->base, r->element[i]->str, &cmd, NULL, NULL);
    }
    bus->gap_unsent = false;
    hs_free(g);
    reread_pending(bus);
    read_events(bus);
}

static void gap_to_nodes(gap_note_t *g)
{
    if (hs_redis__cmdl(g->bus, gap_nodes_cb, g, "SMEMBERS", NODES_KEY) != REDIS_OK)
        gap_nodes_cb(NULL, NULL, g);
}

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
    if (r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOGROUP", 7) == 0 && !bus->closing) {
        bus->group_lost = true;
        create_group(bus);
        return;
    }
    if (hs_redis__link_reply(bus, LINK_EVENTS, reply, "reading events", read_events_cb) == NULL)
        return;
    if (bus->pending_read_sent) {
        if (handle_read(bus, r) == 0)
            bus->reading_pending = false; /* the backlog is done: new entries now */
        read_events(bus);
        return;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING) {
        hs_log_error("bus: reading events: unexpected answer from Redis");
        hs_redis__link_later(l, read_events_cb, RETRY_READ_MS);
        return;
    }
    snprintf(bus->events_last, sizeof(bus->events_last), "%s", r->element[1]->str);
    if (r->element[0]->len > 0) {
        hs_log_warn("bus: gap in %s: %s; every notifier closes its connections so that they "
                    "resume",
                    EVENTS_KEY, r->element[0]->str);
        hs_metrics_singleton.stream_gaps++;
        bus->group_gap = false;
        gap_note_t *g = hs_calloc(1, sizeof(*g));
        g->bus = bus;
        snprintf(g->text, sizeof(g->text), "%s", r->element[0]->str);
        gap_to_nodes(g); /* then the entries of this read, again */
        return;
    }
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
    if (hs_redis__link_reply(bus, LINK_EVENTS, reply, "waiting for events", read_events_cb) == NULL)
        return;
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
        return;            /* a standby reads nothing; a new leader takes the pending first */
    if (bus->gap_unsent) { /* a gap no node heard yet: first that */
        gap_note_t *g = hs_calloc(1, sizeof(*g));
        g->bus = bus;
        snprintf(g->text, sizeof(g->text), "%s", bus->gap_text);
        bus->gap_unsent = false;
        gap_to_nodes(g);
        return;
    }
    bus->pending_read_sent = bus->reading_pending;
    if (bus->reading_pending)
        redisAsyncCommand(l->ac, events_read_cb, bus,
                          "XREADGROUP GROUP %s %s COUNT %s STREAMS %s %s", GROUP,
                          bus->consumer_name, READ_COUNT, EVENTS_KEY, bus->pending_cursor);
    else
        hs_redis__script(l->ac, bus, SCRIPT_EVENTS_READ, events_read_cb, bus, 1, 6,
                         (const char *[]){EVENTS_KEY, GROUP, bus->consumer_name, READ_COUNT,
                                          bus->node_max, bus->group_gap ? "1" : "0"},
                         NULL);
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
        hs_redis__link_later(l, regroup_cb, RETRY_READ_MS);
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
        hs_redis__link_later(l, read_events_cb, REGROUP_DELAY_MS);
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
    if (bus->closing || !hs_redis__reply_ok(r))
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
    if (!hs_redis__reply_ok(r) || r->type != REDIS_REPLY_ARRAY)
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
const char hs_redis__lease_script[] =
    "local holder = redis.call('GET', KEYS[1]) "
    "if holder == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end "
    "if holder then return 0 end "
    "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) "
    "return 2";

const char hs_redis__lease_release_script[] =
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
    if (!hs_redis__reply_ok(reply)) {
        hs_redis__link_later(&bus->links[LINK_EVENTS], read_events_cb, RETRY_READ_MS);
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
    if (hs_redis__cmdl(bus, took_over_cb, bus, "XAUTOCLAIM", EVENTS_KEY, GROUP, bus->consumer_name,
                       "0", bus->claim_cursor, "COUNT", READ_COUNT) != REDIS_OK) {
        bus->taking_over = false; /* tried again when the lease is renewed */
        bus->leader = false;
    }
}

static void lease_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    redis_bus_t *bus = privdata;
    redisReply *r = reply;
    if (bus->closing || !hs_redis__reply_ok(r) || r->type != REDIS_REPLY_INTEGER)
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

void hs_redis__renew_lease(redis_bus_t *bus)
{
    if (!hs_redis__cmd_up(bus) || bus->consumer == NULL)
        return;
    char ms[24];
    snprintf(ms, sizeof(ms), "%llu", (unsigned long long)bus->claim_idle_ms);
    hs_redis__cmd_script(bus, SCRIPT_LEASE, lease_cb, bus, 1, 3,
                         (const char *[]){LEASE_KEY, bus->consumer_name, ms}, NULL);
}

static void claim_timer_cb(uv_timer_t *t)
{
    redis_bus_t *bus = t->data;
    hs_redis__renew_lease(bus);
    if (!hs_redis__cmd_up(bus))
        return;
    hs_redis__cmdl(bus, backlog_cb, NULL, "XINFO", "GROUPS", EVENTS_KEY);
    /* The leader's own entries whose hand-off failed (released) come back. */
    char idle[24];
    snprintf(idle, sizeof(idle), "%llu", (unsigned long long)bus->claim_idle_ms);
    if (bus->leader && !bus->taking_over)
        hs_redis__cmdl(bus, claim_cb, bus, "XAUTOCLAIM", EVENTS_KEY, GROUP, bus->consumer_name,
                       idle, bus->claim_cursor, "COUNT", READ_COUNT);
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
    snprintf(bus->claim_cursor, sizeof(bus->claim_cursor), "0-0");
    hs_redis__link_open(&bus->links[LINK_EVENTS]); /* reads once connected (link_up) */
    uint64_t every = bus->claim_idle_ms / 3 ? bus->claim_idle_ms / 3 : 1;
    uv_timer_start(&bus->claim_timer, claim_timer_cb, every, every);
    return 0;
}

static void ack_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    (void)privdata;
    if (hs_redis__reply_ok(reply))
        hs_metrics_singleton.bus_events_acked++;
}

void hs_redis__ack(hs_bus_t *b, void *token)
{
    redis_bus_t *bus = (redis_bus_t *)b;
    /* Not acknowledged while Redis is away: the event stays pending and is
     * taken over after --claim-idle; the nodes drop the second copy. */
    hs_redis__cmdl(bus, ack_cb, NULL, "XACK", EVENTS_KEY, GROUP, (char *)token);
    hs_free(token);
}

void hs_redis__release(hs_bus_t *b, void *token)
{
    (void)b; /* left pending: XAUTOCLAIM hands it out again */
    hs_free(token);
}

/* ---- the command and event links (back) up, and a clean stop ---------------------- */

void hs_redis__events_cmd_up(redis_bus_t *bus, bool again)
{
    outbox_flush(bus);
    if (again)
        reread_pending(bus); /* hand-offs failed while it was away */
}

void hs_redis__events_link_up(redis_bus_t *bus, bool again)
{
    /* On a reconnect a missing group means Redis lost it: create it from
     * the start of the stream. */
    bus->group_lost = bus->group_lost || again;
    if (again)
        reread_pending(bus);
    create_group(bus); /* then reads */
}

void hs_redis__events_close(redis_bus_t *bus)
{
    if (bus->leader)
        /* A clean stop gives the event lease back: a standby takes it at
         * its next try instead of after --claim-idle. */
        hs_redis__cmd_script(bus, SCRIPT_LEASE_RELEASE, NULL, NULL, 1, 2,
                             (const char *[]){LEASE_KEY, bus->consumer_name}, NULL);
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
}
