/* redis.c - the bus on Redis (scale-out mode): the bus object - opening it
 * from its URL, the ops table, closing it (freed from the last close
 * callback) - and the reply helpers and done callbacks the other files
 * share. The keys, the links and the struct are in redis_internal.h; each
 * mechanism has its own file (listed there), docs/internals/bus.md is the
 * design note. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/partition.h"
#include "bus/redis_internal.h"
#include "core/alloc.h"
#include "core/error.h"
#include "core/log.h"
#include "core/redact.h"

/* ---- replies ------------------------------------------------------------ */

/* An error reply of a Redis that cannot answer yet (loading its data after
 * a restart, a replica without its master, a busy script) is
 * unavailability - 503, retry - not a failure of the request. */
int hs_redis__reply_status(const redisReply *r)
{
    static const char *const not_yet[] = {"LOADING", "MASTERDOWN", "BUSY", "TRYAGAIN",
                                          "CLUSTERDOWN"};
    if (r == NULL)
        return HS_EUNAVAIL;
    if (r->type != REDIS_REPLY_ERROR)
        return 0;
    for (size_t i = 0; i < sizeof(not_yet) / sizeof(not_yet[0]); i++)
        if (strncmp(r->str, not_yet[i], strlen(not_yet[i])) == 0)
            return HS_EUNAVAIL;
    return HS_EIO;
}

const char *hs_redis__field_str(const redisReply *fields, const char *name, size_t *len)
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

/* ---- done callbacks ------------------------------------------------------- */

pending_t *hs_redis__pending_new(void *data)
{
    pending_t *p = hs_calloc(1, sizeof(*p));
    p->data = data;
    return p;
}

void hs_redis__done_reply_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    pending_t *p = privdata;
    if (p->done)
        p->done(hs_redis__reply_status(reply), p->data);
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

void hs_redis__fail_later(redis_bus_t *bus, pending_t *p)
{
    deferred_t *d = hs_calloc(1, sizeof(*d));
    d->p = p;
    d->status = bus->closing ? HS_ECLOSED : HS_EUNAVAIL;
    uv_timer_init(bus->base.loop, &d->timer);
    d->timer.data = d;
    uv_timer_start(&d->timer, deferred_cb, 0, 0);
}

/* ---- closing ----------------------------------------------------------------------- */

static void finish_closed_cb(uv_handle_t *h)
{
    redis_bus_t *bus = h->data;
    /* A barrier asked while the bus closed: no read or timer answers it now. */
    hs_redis__node_barriers_run(bus, HS_ECLOSED);
    hs_bus_done_cb cb = bus->close_cb;
    void *data = bus->close_data;
    hs_free(bus->node_name);
    hs_free(bus->parts);
    hs_free(bus);
    if (cb)
        cb(0, data);
}

static void handle_closed_cb(uv_handle_t *h)
{
    redis_bus_t *bus = h->data;
    bus->open_handles--;
    hs_redis__maybe_closed(bus);
}

static void link_timer_closed_cb(uv_handle_t *h)
{
    link_t *l = h->data;
    l->bus->open_handles--;
    hs_redis__maybe_closed(l->bus);
}

/* Frees the bus once every context disconnected and every timer closed -
 * from a close callback, so never inside hs_bus_close or a hiredis
 * callback. */
void hs_redis__maybe_closed(redis_bus_t *bus)
{
    if (!bus->closing || bus->finishing || bus->open_contexts > 0 || bus->open_handles > 0)
        return;
    bus->finishing = true;
    uv_close((uv_handle_t *)&bus->finish, finish_closed_cb);
}

static void redis_close(hs_bus_t *b, hs_bus_done_cb cb, void *data)
{
    redis_bus_t *bus = (redis_bus_t *)b;
    bus->close_cb = cb;
    bus->close_data = data;
    /* Last words on the command links, still open (their queues are sent
     * before the disconnect below), before closing stops any command. */
    hs_redis__directory_close(bus);
    hs_redis__events_close(bus);
    hs_redis__node_barriers_run(bus, HS_ECLOSED);
    bus->closing = true;
    uv_close((uv_handle_t *)&bus->claim_timer, handle_closed_cb);
    uv_close((uv_handle_t *)&bus->hunt_timer, handle_closed_cb);
    uv_close((uv_handle_t *)&bus->barrier_timer, handle_closed_cb);
    uv_close((uv_handle_t *)&bus->heartbeat, handle_closed_cb);
    uv_close((uv_handle_t *)&bus->refresh_timer, handle_closed_cb);
    hs_redis__cluster_close(bus);
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
    hs_redis__maybe_closed(bus);
}

static const hs_bus_ops_t redis_ops = {
    .name = "redis",
    .redelivers = true,
    .ready = hs_redis__ready,
    .on_reconnect = hs_redis__on_reconnect,
    .publish_event = hs_redis__publish_event,
    .consume_events = hs_redis__consume_events,
    .ack = hs_redis__ack,
    .release = hs_redis__release,
    .send_to_node = hs_redis__send_to_node,
    .serve_node = hs_redis__serve_node,
    .node_barrier = hs_redis__node_barrier,
    .register_connection = hs_redis__register_connection,
    .unregister_connection = hs_redis__unregister_connection,
    .add_topic_node = hs_redis__add_topic_node,
    .remove_topic_node = hs_redis__remove_topic_node,
    .locate_connection = hs_redis__locate_connection,
    .topic_nodes = hs_redis__topic_nodes,
    .watch_nodes = hs_redis__watch_nodes,
    .close = redis_close,
    .deployment = hs_redis__deployment,
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
    bus->claim_idle_ms = options && options->claim_idle_ms ? options->claim_idle_ms : CLAIM_IDLE_MS;
    snprintf(bus->node_max, sizeof(bus->node_max), "%llu",
             (unsigned long long)(options && options->node_stream_max ? options->node_stream_max
                                                                      : NODE_MAXLEN));
    unsigned partitions =
        options && options->partitions ? options->partitions : HS_PARTITIONS_DEFAULT;
    if (partitions > HS_PARTITIONS_MAX) {
        snprintf(err, err_len, "%u partitions: at most %d", partitions, HS_PARTITIONS_MAX);
        hs_free(bus);
        return HS_EINVAL;
    }
    /* --event-stream-max bounds the whole log: each partition keeps its
     * share (at least PARTITION_MAXLEN_MIN; MAXLEN ~ trims whole nodes of
     * 100 entries anyway). */
    uint64_t events_max =
        options && options->event_stream_max ? options->event_stream_max : EVENTS_MAXLEN;
    events_max = (events_max + partitions - 1) / partitions;
    if (events_max < PARTITION_MAXLEN_MIN)
        events_max = PARTITION_MAXLEN_MIN;
    snprintf(bus->events_max, sizeof(bus->events_max), "%llu", (unsigned long long)events_max);
    bus->consumer_beat_ms = options && options->heartbeat_ms ? options->heartbeat_ms : HEARTBEAT_MS;
    bus->mismatch_cb = options ? options->mismatch_cb : NULL;
    bus->mismatch_data = options ? options->mismatch_data : NULL;
    bus->node_seq = -1;
    hs_redis__scripts_init(bus);
    char shown[512]; /* the URL in an error: its password masked */
    hs_redact_url(url, shown, sizeof(shown));
    bus->seed_count = hs_redis_parse_seeds(url, bus->known, KNOWN_MAX / 2, &bus->db);
    if (bus->seed_count <= 0) {
        snprintf(err, err_len,
                 "bus URL '%s' is not redis://host[:port][,host[:port]...][/db] (a bad host, "
                 "port or database number, or more than %d seeds)",
                 shown, KNOWN_MAX / 2);
        hs_free(bus);
        return HS_EINVAL;
    }
    bus->known_count = bus->seed_count;
    hs_redis__partitions_init(bus, partitions);
    uv_timer_init(loop, &bus->finish);
    bus->finish.data = bus;
    init_timer(bus, &bus->claim_timer, bus);
    init_timer(bus, &bus->hunt_timer, bus);
    init_timer(bus, &bus->barrier_timer, bus);
    init_timer(bus, &bus->heartbeat, bus);
    init_timer(bus, &bus->refresh_timer, bus);
    for (int i = 0; i < LINK_COUNT; i++) {
        bus->links[i].bus = bus;
        bus->links[i].role = i;
        init_timer(bus, &bus->links[i].timer, &bus->links[i]);
    }
    /* An unreachable Redis is not an error here: the link keeps trying. */
    hs_redis__link_open(&bus->links[LINK_CMD]);
    *out = &bus->base;
    return 0;
}
