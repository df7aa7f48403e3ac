/* redis_cluster.c - the Redis bus on a Redis Cluster: the seeds of the URL,
 * the slot map (CLUSTER SLOTS), a key's hash slot (CRC16, hash tags), one
 * command link per master ("shards") chosen by the key's slot, MOVED / ASK
 * / TRYAGAIN / CLUSTERDOWN, and the map asked again after a failover.
 *
 * Written here rather than taken from a library: Debian ships hiredis 0.14
 * and no maintained cluster client for it (hiredis-cluster / hiredis-vip are
 * not packaged), and the dependency rule is Debian packages only
 * (docs/architecture.md). What the bus needs is small: every script and
 * command touches keys of one slot (redis_internal.h), so a call goes to one
 * master and never has to be split.
 *
 * One Redis (not a cluster) answers CLUSTER SLOTS with an error: the bus is
 * then exactly what it was - the command link carries the commands. On a
 * cluster the command link only asks for the slot map; commands go over the
 * shard of their key's master, and the blocking links (node stream, events)
 * and pub/sub connect to the master of their key's slot. The bus is ready
 * when every master's link is up; a master that goes away makes it not
 * ready (HS_EUNAVAIL, the outbox, the gap checks - as a lost link on one
 * Redis) until the map, asked again every 100 ms to 1 s from the seeds and
 * the nodes it named, shows every slot served by a reachable master. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/redis_internal.h"
#include "core/log.h"

/* ---- slots, seeds, redirects, the map (no I/O) ------------------------------------ */

/* CRC16-CCITT (XModem: polynomial 0x1021, initial 0), as the cluster spec
 * says; a bit at a time (a key is short, and a table would be copied). */
static uint16_t crc16(const char *buf, size_t len)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)((unsigned char)buf[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

unsigned hs_redis_key_slot(const char *key, size_t len)
{
    size_t open = 0;
    while (open < len && key[open] != '{')
        open++;
    if (open < len) {
        size_t close = open + 1;
        while (close < len && key[close] != '}')
            close++;
        if (close < len && close > open + 1)
            return crc16(key + open + 1, close - open - 1) & (CLUSTER_SLOTS - 1);
    }
    return crc16(key, len) & (CLUSTER_SLOTS - 1);
}

/* host[:port]; the port is after the last ':' (an IPv6 host has several). */
static int parse_addr(const char *s, size_t len, hs_redis_addr_t *a)
{
    const char *colon = NULL;
    for (size_t i = len; i > 0 && colon == NULL; i--)
        if (s[i - 1] == ':')
            colon = s + i - 1;
    size_t host_len = colon ? (size_t)(colon - s) : len;
    if (host_len == 0 || host_len >= sizeof(a->host))
        return -1;
    /* A name or an address, nothing else: user info ("user:password@",
     * which houston does not send) is refused here rather than taken for a
     * host name - and then logged with its password in every connect error. */
    for (size_t i = 0; i < host_len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == '_' || c == ':' || c == '[' || c == ']'))
            return -1;
    }
    memcpy(a->host, s, host_len);
    a->host[host_len] = '\0';
    a->port = 6379;
    if (colon) {
        char port[8];
        size_t port_len = len - host_len - 1;
        if (port_len == 0 || port_len >= sizeof(port))
            return -1;
        memcpy(port, colon + 1, port_len);
        port[port_len] = '\0';
        char *end;
        long p = strtol(port, &end, 10);
        if (*end != '\0' || p <= 0 || p > 65535)
            return -1;
        a->port = (int)p;
    }
    return 0;
}

int hs_redis_parse_seeds(const char *url, hs_redis_addr_t *addrs, int max, int *db)
{
    if (strncmp(url, "redis://", 8) != 0)
        return -1;
    const char *p = url + 8;
    const char *slash = strchr(p, '/');
    const char *end = slash ? slash : p + strlen(p);
    *db = 0;
    if (slash) {
        char *rest;
        long n = strtol(slash + 1, &rest, 10);
        if (slash[1] == '\0' || *rest != '\0' || n < 0 || n > 1000000)
            return -1;
        *db = (int)n;
    }
    int count = 0;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *stop = comma ? comma : end;
        if (count == max || parse_addr(p, (size_t)(stop - p), &addrs[count]) != 0)
            return -1;
        count++;
        p = comma ? comma + 1 : end;
        if (comma && p == end)
            return -1; /* a trailing comma */
    }
    return count > 0 ? count : -1;
}

int hs_redis_parse_redirect(const char *err, const char *asked_host, bool *ask, int *slot,
                            hs_redis_addr_t *to)
{
    const char *p;
    if (strncmp(err, "MOVED ", 6) == 0) {
        *ask = false;
        p = err + 6;
    } else if (strncmp(err, "ASK ", 4) == 0) {
        *ask = true;
        p = err + 4;
    } else {
        return -1;
    }
    char *end;
    long s = strtol(p, &end, 10);
    if (end == p || *end != ' ' || s < 0 || s >= CLUSTER_SLOTS)
        return -1;
    const char *addr = end + 1;
    const char *colon = strrchr(addr, ':');
    if (colon == NULL)
        return -1;
    if (colon == addr) { /* ":port": the endpoint is the node asked */
        char buf[300];
        snprintf(buf, sizeof(buf), "%s%s", asked_host, colon);
        if (parse_addr(buf, strlen(buf), to) != 0)
            return -1;
    } else if (parse_addr(addr, strlen(addr), to) != 0) {
        return -1;
    }
    *slot = (int)s;
    return 0;
}

static int addr_from_reply(const redisReply *node, const char *asked_host, hs_redis_addr_t *a)
{
    if (node->type != REDIS_REPLY_ARRAY || node->elements < 2 ||
        node->element[0]->type != REDIS_REPLY_STRING ||
        node->element[1]->type != REDIS_REPLY_INTEGER)
        return -1;
    const char *host = node->element[0]->str;
    if (host[0] == '\0' || strcmp(host, "?") == 0) /* no known endpoint: the one asked */
        host = asked_host;
    if (strlen(host) >= sizeof(a->host) || node->element[1]->integer <= 0 ||
        node->element[1]->integer > 65535)
        return -1;
    snprintf(a->host, sizeof(a->host), "%s", host);
    a->port = (int)node->element[1]->integer;
    return 0;
}

static bool addr_eq(const hs_redis_addr_t *a, const hs_redis_addr_t *b)
{
    return a->port == b->port && strcmp(a->host, b->host) == 0;
}

static void known_add(hs_redis_addr_t *known, int *count, int max, const hs_redis_addr_t *a)
{
    for (int i = 0; i < *count; i++)
        if (addr_eq(&known[i], a))
            return;
    if (*count < max)
        known[(*count)++] = *a;
}

int hs_redis_parse_slots(const redisReply *r, const char *asked_host, uint16_t *slot_shard,
                         hs_redis_addr_t *masters, int *replicas, int max, hs_redis_addr_t *known,
                         int *known_count, int known_max)
{
    if (r == NULL || r->type != REDIS_REPLY_ARRAY)
        return -1;
    for (int s = 0; s < CLUSTER_SLOTS; s++)
        slot_shard[s] = NO_SHARD;
    int count = 0;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *range = r->element[i];
        if (range->type != REDIS_REPLY_ARRAY || range->elements < 3 ||
            range->element[0]->type != REDIS_REPLY_INTEGER ||
            range->element[1]->type != REDIS_REPLY_INTEGER)
            return -1;
        long long from = range->element[0]->integer, to = range->element[1]->integer;
        hs_redis_addr_t master;
        if (from < 0 || to >= CLUSTER_SLOTS || from > to ||
            addr_from_reply(range->element[2], asked_host, &master) != 0)
            return -1;
        int m = 0;
        while (m < count && !addr_eq(&masters[m], &master))
            m++;
        if (m == count) {
            if (count == max)
                return -1;
            replicas[count] = (int)range->elements - 3;
            masters[count++] = master;
        }
        for (long long s = from; s <= to; s++)
            slot_shard[s] = (uint16_t)m;
        for (size_t j = 2; j < range->elements; j++) { /* the master, then its replicas */
            hs_redis_addr_t a;
            if (addr_from_reply(range->element[j], asked_host, &a) == 0)
                known_add(known, known_count, known_max, &a);
        }
    }
    for (int s = 0; s < CLUSTER_SLOTS; s++)
        if (slot_shard[s] == NO_SHARD)
            return -1; /* not every slot served: not usable yet */
    return count;
}

/* ---- where links connect ---------------------------------------------------------- */

static const char *link_key(link_t *l)
{
    redis_bus_t *bus = l->bus;
    switch (l->role) {
    case LINK_NODE:
        return bus->node_key;
    case LINK_EVENTS:
        return PARTITIONS_KEY; /* any master: each partition's read goes to its own */
    default:
        return FORWARDER_CHANNEL; /* pub/sub: any node hears every PUBLISH */
    }
}

bool hs_redis__link_addr(link_t *l, hs_redis_addr_t *out)
{
    redis_bus_t *bus = l->bus;
    if (l->shard) {
        *out = l->addr;
        return true;
    }
    if (l->role == LINK_CMD) {
        *out = bus->known[bus->known_next % bus->known_count];
        return true;
    }
    if (!bus->mode_known)
        return false; /* opened once the command link told which it is */
    if (!bus->cluster) {
        *out = bus->links[LINK_CMD].addr; /* the one Redis */
        return true;
    }
    const char *key = link_key(l);
    uint16_t shard = bus->slot_shard[hs_redis_key_slot(key, strlen(key))];
    if (shard == NO_SHARD || shard >= bus->shard_count)
        return false;
    *out = bus->shards[shard].addr;
    return true;
}

redisAsyncContext *hs_redis__cmd_ac_key(redis_bus_t *bus, const char *key)
{
    if (!hs_redis__cmd_up(bus))
        return NULL;
    if (!bus->cluster)
        return bus->links[LINK_CMD].ac;
    uint16_t shard = bus->slot_shard[hs_redis_key_slot(key, strlen(key))];
    if (shard == NO_SHARD || shard >= bus->shard_count || !bus->shards[shard].up)
        return NULL;
    return bus->shards[shard].ac;
}

/* ---- the slot map ----------------------------------------------------------------- */

static void shard_timer_closed_cb(uv_handle_t *h)
{
    link_t *l = h->data;
    l->bus->open_handles--;
    hs_redis__maybe_closed(l->bus);
}

/* A master no longer in the map (failed over, removed): its link goes. */
static void shard_retire(link_t *l)
{
    redis_bus_t *bus = l->bus;
    bool connected = l->up;
    l->wanted = false;
    l->up = false;
    if (l->timer_on)
        uv_timer_stop(&l->timer);
    redisAsyncContext *ac = l->ac;
    if (ac == NULL)
        return;
    if (connected) {
        redisAsyncFree(ac); /* its disconnect callback accounts for it */
    } else {
        l->ac = NULL; /* still connecting: no disconnect callback */
        bus->open_contexts--;
        redisAsyncFree(ac);
    }
}

static void apply_map(redis_bus_t *bus, const uint16_t *map, const hs_redis_addr_t *masters,
                      const int *replicas, int count)
{
    int index[SHARDS_MAX] = {0};
    bool keep[SHARDS_MAX] = {false};
    for (int m = 0; m < count; m++) {
        int j = 0;
        while (j < bus->shard_count &&
               !(bus->shards[j].wanted && !keep[j] && addr_eq(&bus->shards[j].addr, &masters[m])))
            j++;
        if (j == bus->shard_count) { /* a new master: a free entry */
            j = 0;
            while (j < SHARDS_MAX && (bus->shards[j].wanted || bus->shards[j].ac || keep[j]))
                j++;
            if (j == SHARDS_MAX) {
                hs_log_error("bus: the Redis Cluster has more than %d masters", SHARDS_MAX);
                return;
            }
            link_t *l = &bus->shards[j];
            if (!l->timer_on) {
                uv_timer_init(bus->base.loop, &l->timer);
                l->timer.data = l;
                l->timer_on = true;
                bus->open_handles++;
            }
            l->bus = bus;
            l->role = LINK_CMD;
            l->shard = true;
            l->addr = masters[m];
            l->backoff_ms = 0;
            l->reported = false;
            if (j >= bus->shard_count)
                bus->shard_count = j + 1;
            keep[j] = true;
            index[m] = j;
            hs_redis__link_open(l);
            continue;
        }
        keep[j] = true;
        index[m] = j;
    }
    for (int m = 0; m < count; m++)
        bus->shards[index[m]].replicas = replicas[m];
    for (int j = 0; j < bus->shard_count; j++)
        if (!keep[j] && bus->shards[j].wanted) {
            hs_log_info("bus: Redis at %s:%d is no longer a master of the cluster",
                        bus->shards[j].addr.host, bus->shards[j].addr.port);
            shard_retire(&bus->shards[j]);
        }
    for (int s = 0; s < CLUSTER_SLOTS; s++)
        bus->slot_shard[s] = (uint16_t)index[map[s]];
}

static void refresh_cb(uv_timer_t *t);

static void slots_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    redis_bus_t *bus = privdata;
    link_t *l = ac->data;
    redisReply *r = reply;
    bus->refresh_sent = false;
    if (r == NULL || bus->closing)
        return; /* the link went away: it asks again when back */
    if (r->type == REDIS_REPLY_ERROR && !bus->mode_known) {
        /* "ERR This instance has cluster support disabled": one Redis. */
        bus->mode_known = true;
        bus->cluster = false;
        bus->cmd_ready = true;
        bool again = bus->cmd_was_ready;
        bus->cmd_was_ready = true;
        for (int i = 0; i < LINK_COUNT; i++) /* opened before it was known */
            if (i != LINK_CMD && bus->links[i].wanted && bus->links[i].ac == NULL)
                hs_redis__link_open(&bus->links[i]);
        hs_redis__cmd_link_up(bus, again);
        return;
    }
    static uint16_t map[CLUSTER_SLOTS]; /* the loop's thread only */
    hs_redis_addr_t masters[SHARDS_MAX];
    int replicas[SHARDS_MAX];
    int count = r->type == REDIS_REPLY_ERROR
                    ? -1
                    : hs_redis_parse_slots(r, l->addr.host, map, masters, replicas, SHARDS_MAX,
                                           bus->known, &bus->known_count, KNOWN_MAX);
    if (count <= 0) {
        if (!bus->refresh_wanted)
            hs_log_warn("bus: the Redis Cluster at %s:%d does not serve every slot yet (%s); "
                        "asking again",
                        l->addr.host, l->addr.port,
                        r->type == REDIS_REPLY_ERROR ? r->str : "no master for some slots");
        bus->refresh_wanted = false;
        bus->mode_known = true;
        bus->cluster = true;
        hs_redis__cluster_refresh(bus);
        return;
    }
    bool first = !bus->mode_known;
    bus->mode_known = true;
    bus->cluster = true;
    if (first)
        hs_log_info("bus: Redis at %s:%d is a cluster of %d masters", l->addr.host, l->addr.port,
                    count);
    apply_map(bus, map, masters, replicas, count);
    if (first)
        for (int i = 0; i < LINK_COUNT; i++)
            if (i != LINK_CMD && bus->links[i].wanted && bus->links[i].ac == NULL)
                hs_redis__link_open(&bus->links[i]);
    hs_redis__cluster_shard_changed(bus);
}

static void ask_slots(redis_bus_t *bus)
{
    link_t *l = &bus->links[LINK_CMD];
    if (bus->closing || !l->up || bus->refresh_sent)
        return; /* a link that is down asks when it is back */
    bus->refresh_wanted = false;
    if (redisAsyncCommand(l->ac, slots_cb, bus, "CLUSTER SLOTS") == REDIS_OK)
        bus->refresh_sent = true;
}

void hs_redis__cluster_probe(link_t *l, bool again)
{
    (void)again;
    ask_slots(l->bus);
}

static void refresh_cb(uv_timer_t *t)
{
    redis_bus_t *bus = t->data;
    ask_slots(bus);
}

void hs_redis__cluster_refresh(redis_bus_t *bus)
{
    if (!bus->cluster || bus->closing || uv_is_active((uv_handle_t *)&bus->refresh_timer))
        return;
    uint64_t delay = bus->refresh_backoff_ms == 0 ? BACKOFF_MIN_MS : bus->refresh_backoff_ms * 2;
    if (delay > 1000)
        delay = 1000;
    bus->refresh_backoff_ms = delay;
    bus->refresh_wanted = true;
    uv_timer_start(&bus->refresh_timer, refresh_cb, delay, 0);
}

void hs_redis__cluster_shard_changed(redis_bus_t *bus)
{
    if (!bus->cluster || bus->closing)
        return;
    bool ready = bus->shard_count > 0;
    for (int j = 0; j < bus->shard_count && ready; j++)
        if (bus->shards[j].wanted && !bus->shards[j].up)
            ready = false;
    if (ready && !bus->cmd_ready) {
        bus->cmd_ready = true;
        bus->refresh_backoff_ms = 0;
        bool again = bus->cmd_was_ready;
        bus->cmd_was_ready = true;
        if (again)
            hs_log_info("bus: every master of the Redis Cluster is reachable again");
        hs_redis__cmd_link_up(bus, again);
    } else if (!ready && bus->cmd_ready) {
        bus->cmd_ready = false;
        hs_redis__events_cmd_lost(bus); /* as when the command link of one Redis is lost */
        hs_redis__cluster_refresh(bus);
    }
}

redisAsyncContext *hs_redis__cluster_redirect(redis_bus_t *bus, redisAsyncContext *ac,
                                              const redisReply *r, bool *asking)
{
    *asking = false;
    if (!bus->cluster || r == NULL || r->type != REDIS_REPLY_ERROR || bus->closing)
        return NULL;
    link_t *from = ac->data;
    bool ask;
    int slot;
    hs_redis_addr_t to;
    if (hs_redis_parse_redirect(r->str, from->addr.host, &ask, &slot, &to) != 0) {
        if (strncmp(r->str, "CLUSTERDOWN", 11) == 0 || strncmp(r->str, "TRYAGAIN", 8) == 0)
            hs_redis__cluster_refresh(bus);
        return NULL;
    }
    int j = 0;
    while (j < bus->shard_count && !(bus->shards[j].wanted && addr_eq(&bus->shards[j].addr, &to)))
        j++;
    if (!ask)
        hs_redis__cluster_refresh(bus); /* slots moved: the whole map again */
    if (j == bus->shard_count || !bus->shards[j].up)
        return NULL;
    if (ask)
        *asking = true;
    else
        bus->slot_shard[slot] = (uint16_t)j;
    return bus->shards[j].ac;
}

void hs_redis__cluster_close(redis_bus_t *bus)
{
    for (int j = 0; j < bus->shard_count; j++) {
        link_t *l = &bus->shards[j];
        if (l->timer_on) {
            uv_timer_stop(&l->timer);
            uv_close((uv_handle_t *)&l->timer, shard_timer_closed_cb);
            l->timer_on = false;
        }
        redisAsyncContext *ac = l->ac;
        if (ac == NULL)
            continue;
        if (!l->up) {
            l->ac = NULL;
            bus->open_contexts--;
            redisAsyncFree(ac);
        } else {
            redisAsyncDisconnect(ac); /* sends what is queued first */
        }
    }
}
