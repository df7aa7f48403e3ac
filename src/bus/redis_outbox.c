/* redis_outbox.c - the publisher's "message created" events on Redis: each
 * appended (XADD) to its topic's partition stream; one whose append is not
 * confirmed waits in a bounded outbox (OUTBOX_MAX, the oldest dropped) and
 * is appended again when the command link is back. What reads the streams
 * is redis_events.c. */
#include <string.h>

#include "bus/partition.h"
#include "bus/redis_internal.h"
#include "core/alloc.h"
#include "core/error.h"
#include "core/log.h"

static void outbox_entry_free(outbox_entry_t *e)
{
    hs_free(e->topic);
    hs_free(e->id);
    hs_free(e->json);
    hs_free(e->prev);
    hs_free(e);
}

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
        outbox_entry_free(old);
    }
    e->next = NULL;
    if (bus->outbox_tail)
        bus->outbox_tail->next = e;
    else
        bus->outbox_head = e;
    bus->outbox_tail = e;
    bus->outbox_len++;
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

/* The event goes to its topic's partition. Its fields: topic, id, json
 * (redis_events.c's hand_on reads them back; a field added to hs_event_t
 * is one more pair here and one more hs_redis__field_str there); a
 * deletion's also kind ("deleted"). */
static void send_event(outbox_entry_t *e)
{
    redis_bus_t *bus = e->bus;
    const char *stream = bus->parts[e->partition].stream;
    const char *argv[] = {"XADD",   stream, "MAXLEN", "~",    bus->events_max, "*",    "topic",
                          e->topic, "id",   e->id,    "json", e->json,         "prev", e->prev};
    size_t lens[] = {4,
                     strlen(stream),
                     6,
                     1,
                     strlen(bus->events_max),
                     1,
                     5,
                     strlen(e->topic),
                     2,
                     strlen(e->id),
                     4,
                     e->json_len,
                     4,
                     e->prev ? strlen(e->prev) : 0};
    int argc = e->prev ? 14 : 12;
    if (e->kind == HS_EVENT_DELETED) { /* it carries no prev: "kind" takes its place */
        argv[12] = "kind";
        lens[12] = 4;
        argv[13] = "deleted";
        lens[13] = 7;
        argc = 14;
    }
    if (hs_redis__cmd_durable(bus, event_appended_cb, e, argc, argv, lens) != REDIS_OK)
        outbox_push(bus, e);
}

void hs_redis__outbox_flush(redis_bus_t *bus)
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
    e->partition = hs_partition_of(ev->topic, strlen(ev->topic), bus->partitions);
    e->id = hs_strdup(ev->message_id);
    e->json = hs_malloc(ev->message_json_len + 1);
    memcpy(e->json, ev->message_json, ev->message_json_len);
    e->json[ev->message_json_len] = '\0';
    e->json_len = ev->message_json_len;
    e->prev = ev->prev ? hs_strdup(ev->prev) : NULL;
    e->kind = ev->kind;
    send_event(e);
}

void hs_redis__outbox_close(redis_bus_t *bus)
{
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
