/* redis_link.c - the Redis bus's links: one connection per use (commands,
 * the blocking event read, the blocking node read, the pub/sub
 * subscription), each with a connect deadline, reopened after a backoff
 * when lost, and what each does when it is (back) up. */
#include <stdio.h>
#include <string.h>

#include "bus/redis_internal.h"
#include "bus/redis_uv.h"
#include "core/error.h"
#include "core/log.h"
#include "core/metrics.h"

const char *const hs_redis__link_names[LINK_COUNT] = {[LINK_CMD] = "command",
                                                      [LINK_EVENTS] = "event",
                                                      [LINK_NODE] = "node",
                                                      [LINK_PUBSUB] = "pub/sub"};

static void link_up(link_t *l, bool again);

static void link_retry_cb(uv_timer_t *t)
{
    link_t *l = t->data;
    if (!l->bus->closing && l->ac == NULL)
        hs_redis__link_open(l);
}

/* The link is down: try again after a backoff, with jitter so that many
 * processes do not knock on Redis in step. */
static void link_lost(link_t *l)
{
    redis_bus_t *bus = l->bus;
    l->up = false;
    /* (A shard retired from the map is not wanted: its going changes
     * nothing.) */
    if (l->role == LINK_CMD && (l->shard ? l->wanted : !bus->cluster)) {
        /* The leases are renewed over this link: while it is away one
         * may expire and another consumer take over, so nothing is read
         * until each is known to be ours again (then every pending entry
         * first, in order). */
        hs_redis__events_cmd_lost(bus);
        bus->cmd_ready = false;
    }
    if (l->role == LINK_NODE) /* what it has read is not known to grow now */
        hs_redis__node_barriers_run(bus, HS_EUNAVAIL);
    if (bus->closing || !l->wanted) {
        hs_redis__maybe_closed(bus);
        return;
    }
    if (l->role == LINK_CMD && !l->shard && bus->known_count > 0)
        bus->known_next = (bus->known_next + 1) % bus->known_count; /* the next seed or node */
    /* On a cluster, a lost master may have failed over: the map again. */
    hs_redis__cluster_refresh(bus);
    if (l->shard)
        hs_redis__cluster_shard_changed(bus);
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
        hs_log_error("bus: cannot reach Redis at %s:%d (%s link); retrying", l->addr.host,
                     l->addr.port, hs_redis__link_names[l->role]);
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
            hs_log_error("bus: cannot reach Redis at %s:%d (%s link): %s; retrying", l->addr.host,
                         l->addr.port, hs_redis__link_names[l->role], ac->errstr);
        l->reported = true;
        l->ac = NULL;
        bus->open_contexts--;
        link_lost(l);
        return;
    }
    bool again = l->was_up;
    if (l->reported)
        hs_log_info("bus: %s link to Redis at %s:%d is back", hs_redis__link_names[l->role],
                    l->addr.host, l->addr.port);
    l->up = true;
    l->was_up = true;
    l->reported = false;
    l->backoff_ms = 0;
    if (again)
        hs_metrics_singleton.bus_reconnects++;
    /* Redis may have restarted (or flushed its scripts) while the link was
     * away: the scripts this link calls are loaded before anything else
     * goes out on it (a NOSCRIPT is still handled, redis_scripts.c). */
    hs_redis__scripts_load(l);
    if (l->shard) {
        hs_redis__cluster_shard_changed(bus); /* ready when every master is */
        return;
    }
    if (l->role == LINK_CMD && (!bus->mode_known || bus->cluster)) {
        /* One Redis or a cluster? Then commands, or the slot map. */
        hs_redis__cluster_probe(l, again);
        return;
    }
    if (l->role == LINK_CMD) {
        bus->cmd_ready = true;
        bus->cmd_was_ready = true;
    }
    link_up(l, again);
}

static void link_disconnected_cb(const redisAsyncContext *ac, int status)
{
    link_t *l = ac->data;
    redis_bus_t *bus = l->bus;
    if (status != REDIS_OK && !bus->closing) {
        hs_log_error("bus: %s link to Redis at %s:%d lost: %s; reconnecting",
                     hs_redis__link_names[l->role], l->addr.host, l->addr.port, ac->errstr);
        l->reported = true;
    }
    l->ac = NULL;
    bus->open_contexts--;
    link_lost(l);
}

int hs_redis__link_open(link_t *l)
{
    redis_bus_t *bus = l->bus;
    l->wanted = true;
    if (!hs_redis__link_addr(l, &l->addr)) {
        /* Not known yet where: once the command link has told one Redis
         * from a cluster (opened then), or the map has a master for the
         * link's key (tried again after a backoff). */
        if (bus->mode_known)
            link_lost(l);
        return 0;
    }
    redisAsyncContext *ac = redisAsyncConnect(l->addr.host, l->addr.port);
    if (ac == NULL || ac->err) {
        if (!l->reported)
            hs_log_error("bus: cannot connect to Redis at %s:%d: %s; retrying", l->addr.host,
                         l->addr.port, ac ? ac->errstr : "out of memory");
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
void hs_redis__link_later(link_t *l, uv_timer_cb cb, uint64_t ms)
{
    if (!l->bus->closing)
        uv_timer_start(&l->timer, cb, ms, 0);
}

const redisReply *hs_redis__link_reply(redis_bus_t *bus, int link, void *reply, const char *what,
                                       uv_timer_cb retry_cb)
{
    const redisReply *r = reply;
    if (r == NULL || bus->closing)
        return NULL;
    if (r->type == REDIS_REPLY_ERROR) {
        bool ask;
        int slot;
        hs_redis_addr_t to;
        link_t *l = &bus->links[link];
        if (bus->cluster && l->ac &&
            hs_redis_parse_redirect(r->str, l->addr.host, &ask, &slot, &to) == 0) {
            /* Its key's slot moved (resharding, a failover): the link goes
             * to the new master - reconnected, then (back) up as usual. */
            hs_log_info("bus: %s: %s; following it", what, r->str);
            hs_redis__cluster_refresh(bus);
            redisAsyncDisconnect(l->ac);
            return NULL;
        }
        hs_log_error("bus: %s failed: %s", what, r->str);
        if (bus->cluster && strncmp(r->str, "CLUSTERDOWN", 11) == 0)
            hs_redis__cluster_refresh(bus);
        hs_redis__link_later(l, retry_cb, RETRY_READ_MS);
        return NULL;
    }
    return r;
}

bool hs_redis__ready(hs_bus_t *b)
{
    return hs_redis__cmd_up((redis_bus_t *)b);
}

void hs_redis__on_reconnect(hs_bus_t *b, void (*cb)(void *data), void *data)
{
    redis_bus_t *bus = (redis_bus_t *)b;
    bus->reconnect_cb = cb;
    bus->reconnect_data = data;
}

/* ---- what a link does when it is (back) up -------------------------------------------- */

void hs_redis__cmd_link_up(redis_bus_t *bus, bool again)
{
    hs_redis__events_cmd_up(bus, again);
    hs_redis__directory_cmd_up(bus, again);
}

static void link_up(link_t *l, bool again)
{
    redis_bus_t *bus = l->bus;
    switch (l->role) {
    case LINK_CMD:
        hs_redis__cmd_link_up(bus, again);
        break;
    case LINK_EVENTS:
        hs_redis__events_link_up(bus, again);
        break;
    case LINK_NODE:
        hs_redis__node_link_up(bus);
        break;
    case LINK_PUBSUB:
        hs_redis__pubsub_link_up(bus);
        break;
    }
}
