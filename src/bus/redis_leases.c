/* redis_leases.c - who processes which partition of the event log: the
 * partition count every process must agree on (houston:partitions), the
 * consumers' registry and heartbeat, one lease per partition with a
 * fencing token, the balance (each live consumer holds about
 * ceil(N / live) partitions), the take of a free or expired lease and the
 * clean hand-back of an extra one. What a held partition's events go
 * through is redis_events.c's; docs/scaling.md is the design. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/partition.h"
#include "bus/redis_internal.h"
#include "core/alloc.h"
#include "core/log.h"
#include "core/metrics.h"

/* ---- the partition count ------------------------------------------------------------ */

/* The first process of a deployment sets the count; the others read it.
 * KEYS: houston:partitions. ARGV: this process's count. */
const char hs_redis__partitions_script[] = "local n = redis.call('GET', KEYS[1]) "
                                           "if n then return n end "
                                           "redis.call('SET', KEYS[1], ARGV[1]) "
                                           "return ARGV[1]";

void hs_redis__partitions_init(redis_bus_t *bus, unsigned count)
{
    bus->partitions = count;
    bus->parts = hs_calloc(count, sizeof(partition_t));
    for (unsigned i = 0; i < count; i++) {
        partition_t *p = &bus->parts[i];
        p->bus = bus;
        p->index = i;
        snprintf(p->stream, sizeof(p->stream), "houston:{p%u}:events", i);
        snprintf(p->lease, sizeof(p->lease), "houston:{p%u}:lease", i);
        snprintf(p->fence_key, sizeof(p->fence_key), "houston:{p%u}:fence", i);
        snprintf(p->claim_cursor, sizeof(p->claim_cursor), "0-0");
    }
}

static void partitions_checked_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    redis_bus_t *bus = privdata;
    redisReply *r = reply;
    if (r == NULL || bus->closing || bus->partitions_checked)
        return;
    if (r->type != REDIS_REPLY_STRING) {
        hs_log_warn("bus: checking the partition count failed: %s (tried again at the next "
                    "reconnect)",
                    r->type == REDIS_REPLY_ERROR ? r->str : "unexpected answer");
        return;
    }
    bus->partitions_checked = true;
    if (strtoul(r->str, NULL, 10) == bus->partitions)
        return;
    char why[256];
    snprintf(why, sizeof(why),
             "the deployment in Redis uses --partitions %s, this process %u: every publisher, "
             "notifier and consumer must use the same number (docs/scaling.md)",
             r->str, bus->partitions);
    hs_log_error("bus: %s", why);
    if (bus->mismatch_cb)
        bus->mismatch_cb(why, bus->mismatch_data);
}

void hs_redis__partitions_check(redis_bus_t *bus)
{
    if (bus->partitions_checked)
        return;
    char n[16];
    snprintf(n, sizeof(n), "%u", bus->partitions);
    hs_redis__cmd_script(bus, SCRIPT_PARTITIONS, partitions_checked_cb, bus, 1, 2,
                         (const char *[]){PARTITIONS_KEY, n}, NULL);
}

/* ---- leases ------------------------------------------------------------------------ */

/* Takes or renews a partition's lease. The value is "<consumer>:<token>";
 * a take draws the token from the partition's fence counter, so tokens only
 * grow (a counter Redis lost starts again above the time in ms, above any
 * token handed out before). KEYS: lease, fence. ARGV: consumer, lifetime
 * ms, "1" to renew only (a lease that expired is not taken again here: the
 * balance decides). Answers {1, token} when renewed, {2, token} when just
 * taken, {0, holder} when another holds it (or, renewing, nobody). */
const char hs_redis__lease_script[] =
    "local v = redis.call('GET', KEYS[1]) "
    "if v then "
    "  local holder, token = string.match(v, '^(.*):(%d+)$') "
    "  if holder == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return {1, token} end "
    "  return {0, holder or v} end "
    "if ARGV[3] == '1' then return {0, ''} end "
    "if redis.call('EXISTS', KEYS[2]) == 0 then "
    "  local t = redis.call('TIME') "
    "  redis.call('SET', KEYS[2], t[1] * 1000 + math.floor(t[2] / 1000)) end "
    "local token = redis.call('INCR', KEYS[2]) "
    "redis.call('SET', KEYS[1], ARGV[1] .. ':' .. token, 'PX', ARGV[2]) "
    "return {2, tostring(token)}";

/* Gives a lease back, and the consumer leaves the partition's group if it
 * has nothing pending there (DELCONSUMER would drop pending entries: those
 * are claimed by the next holder, which then removes it). KEYS: lease,
 * stream. ARGV: "<consumer>:<token>", group, consumer. */
const char hs_redis__lease_release_script[] =
    "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end "
    "redis.call('DEL', KEYS[1]) "
    "local ok, p = pcall(redis.call, 'XPENDING', KEYS[2], ARGV[2], '-', '+', 1, ARGV[3]) "
    "if ok and #p == 0 then redis.call('XGROUP', 'DELCONSUMER', KEYS[2], ARGV[2], ARGV[3]) end "
    "return 1";

/* The partitions this consumer holds, in the log when they change. */
static void log_held(redis_bus_t *bus)
{
    char list[4096];
    size_t len = 0;
    unsigned count = 0;
    list[0] = '\0';
    for (unsigned i = 0; i < bus->partitions; i++)
        if (bus->parts[i].held && !bus->parts[i].releasing) {
            count++;
            if (len + 8 < sizeof(list))
                len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%u", len ? "," : "", i);
        }
    bus->held = count;
    hs_metrics_singleton.partitions_held = count;
    hs_log_info("bus: consumer %s holds %u of %u partitions: %s", bus->consumer_name, count,
                bus->partitions, count ? list : "none");
}

void hs_redis__partition_lost(redis_bus_t *bus, partition_t *p, const char *why)
{
    if (!p->held)
        return;
    hs_log_warn("bus: lost partition %u (%s): reading it stops", p->index, why);
    p->held = false;
    p->releasing = false;
    p->taking_over = false;
    log_held(bus);
}

static void lease_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    partition_t *p = privdata;
    redis_bus_t *bus = p->bus;
    redisReply *r = reply;
    p->take_sent = false;
    if (bus->closing || !hs_redis__reply_ok(r) || r->type != REDIS_REPLY_ARRAY ||
        r->elements != 2 || r->element[0]->type != REDIS_REPLY_INTEGER ||
        r->element[1]->type != REDIS_REPLY_STRING)
        return;
    if (r->element[0]->integer == 0) {
        hs_redis__partition_lost(bus, p,
                                 "it did not renew the lease in time; another consumer "
                                 "holds it");
        return;
    }
    uint64_t token = strtoull(r->element[1]->str, NULL, 10);
    if (r->element[0]->integer == 1 && p->held && token == p->fence)
        return; /* renewed */
    /* Just taken (or found ours with another token): a new take-over. */
    p->held = true;
    p->releasing = false;
    p->release_sent = false;
    p->fence = token;
    snprintf(p->holder, sizeof(p->holder), "%s:%llu", bus->consumer_name,
             (unsigned long long)token);
    hs_metrics_singleton.partition_takeovers++;
    hs_log_info("bus: took partition %u (fencing token %llu): its pending events first, then "
                "new ones",
                p->index, (unsigned long long)token);
    log_held(bus);
    hs_redis__take_over(bus, p);
}

static void send_lease(redis_bus_t *bus, partition_t *p, bool renew_only)
{
    char ms[24];
    snprintf(ms, sizeof(ms), "%llu", (unsigned long long)(3 * bus->consumer_beat_ms));
    if (hs_redis__cmd_script(bus, SCRIPT_LEASE, lease_cb, p, 2, 5,
                             (const char *[]){p->lease, p->fence_key, bus->consumer_name, ms,
                                              renew_only ? "1" : "0"},
                             NULL) == REDIS_OK &&
        !renew_only)
        p->take_sent = true;
}

static void released_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    partition_t *p = privdata;
    if (reply == NULL || p->bus->closing || !p->releasing)
        return;
    p->held = false;
    p->releasing = false;
    hs_log_info("bus: gave partition %u back", p->index);
}

/* On the command link of the lease's slot (while the bus closes too, for
 * its last words: sent before closing is set). */
static void release(redis_bus_t *bus, partition_t *p, redisCallbackFn *cb)
{
    hs_redis__cmd_script(
        bus, SCRIPT_LEASE_RELEASE, cb, p, 2, 5,
        (const char *[]){p->lease, p->stream, p->holder, GROUP, bus->consumer_name}, NULL);
}

/* A partition handed back is released once nothing of it is in flight: no
 * read on its way, every event handed on acknowledged or released. */
void hs_redis__partition_settled(redis_bus_t *bus, partition_t *p)
{
    if (!p->releasing && p->in_flight + 1 == PARTITION_IN_FLIGHT_MAX)
        hs_redis__read_events(bus); /* it was full: read on */
    if (!p->releasing || !p->held || p->in_flight > 0 || p->claiming || bus->reading == p ||
        bus->closing || p->release_sent)
        return;
    p->release_sent = true;
    release(bus, p, released_cb);
}

/* ---- the registry and the balance ---------------------------------------------------- */

/* A registered consumer without a heartbeat leaves the registry. KEYS: its
 * heartbeat key, the registry (one slot: {consumers}). ARGV: its name. */
const char hs_redis__forget_script[] =
    "if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('SREM', KEYS[2], ARGV[1]) end "
    "return 0";

/* One beat's count of the live consumers: EXISTS of each registered one's
 * heartbeat key. */
typedef struct census {
    redis_bus_t *bus;
    size_t waiting;
    unsigned live;
    bool failed;
} census_t;

typedef struct free_check {
    redis_bus_t *bus;
    size_t waiting;
    unsigned want;
    bool *free; /* N of them */
} free_check_t;

static void free_checked_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    partition_t *p = privdata;
    redis_bus_t *bus = p->bus;
    free_check_t *f = bus->free_check;
    redisReply *r = reply;
    if (f == NULL)
        return;
    if (r && r->type == REDIS_REPLY_NIL)
        f->free[p->index] = true;
    if (--f->waiting > 0)
        return;
    bus->free_check = NULL;
    /* Start at a place of this consumer's own, so that consumers starting
     * together mostly try different partitions. */
    unsigned start =
        hs_partition_of(bus->consumer_name, strlen(bus->consumer_name), bus->partitions);
    for (unsigned k = 0; k < bus->partitions && f->want > 0 && !bus->closing; k++) {
        partition_t *q = &bus->parts[(start + k) % bus->partitions];
        if (f->free[q->index] && !q->held && !q->take_sent) {
            send_lease(bus, q, false);
            f->want--;
        }
    }
    hs_free(f->free);
    hs_free(f);
}

/* Looks at the leases this consumer does not hold (GET) and takes up to
 * want of the free ones (free_checked_cb: the lease script, which another
 * consumer may win). One look at a time. */
static void look_for_free(redis_bus_t *bus, unsigned want)
{
    if (want == 0 || bus->free_check || bus->closing)
        return;
    free_check_t *f = hs_calloc(1, sizeof(*f));
    f->bus = bus;
    f->want = want;
    f->free = hs_calloc(bus->partitions, sizeof(bool));
    for (unsigned i = 0; i < bus->partitions; i++)
        if (!bus->parts[i].held && !bus->parts[i].take_sent &&
            hs_redis__cmdl(bus, free_checked_cb, &bus->parts[i], "GET", bus->parts[i].lease) ==
                REDIS_OK)
            f->waiting++;
    if (f->waiting == 0) {
        hs_free(f->free);
        hs_free(f);
        return;
    }
    bus->free_check = f;
}

/* Held and not being handed back, or being taken. */
static unsigned count_held(const redis_bus_t *bus)
{
    unsigned held = 0;
    for (unsigned i = 0; i < bus->partitions; i++)
        held += (bus->parts[i].held && !bus->parts[i].releasing) || bus->parts[i].take_sent;
    return held;
}

/* The hunt: when the live count changes, the partitions move at each
 * holder's own beat - one handing its extras back does so up to a beat
 * after a consumer joined, and a consumer short of its share would only see
 * them free at its next beat (or the one after, when another consumer won
 * the take it tried): those partitions went unread for one or two
 * heartbeats, their events late by as much (5-10 s with the default beat;
 * bench/scaleout.py's cons4 on a cluster counted them lost). So for two
 * beats after it saw the count change, a consumer short of its share looks
 * again every HUNT_MS (GETs of the leases it does not hold) and takes what
 * it finds free: a hand-back is taken over within about HUNT_MS. */
static void hunt_cb(uv_timer_t *t)
{
    redis_bus_t *bus = t->data;
    unsigned held = count_held(bus);
    if (bus->closing || bus->consumer == NULL || held >= bus->share ||
        uv_now(bus->base.loop) >= bus->hunt_until_ms) {
        uv_timer_stop(t);
        return;
    }
    if (hs_redis__cmd_up(bus))
        look_for_free(bus, bus->share - held);
}

static void balance(redis_bus_t *bus, unsigned live)
{
    if (live == 0)
        live = 1;
    unsigned target = (bus->partitions + live - 1) / live;
    uint64_t now = uv_now(bus->base.loop);
    if (live != bus->live_consumers) {
        hs_log_info("bus: %u consumers alive: each holds up to %u of the %u partitions", live,
                    target, bus->partitions);
        bus->hunt_until_ms = now + 2 * bus->consumer_beat_ms;
    }
    bus->live_consumers = live;
    bus->share = target;
    unsigned held = 0;
    for (unsigned i = 0; i < bus->partitions; i++) {
        partition_t *p = &bus->parts[i];
        if (!p->held)
            continue;
        if (!p->release_sent)
            send_lease(bus, p, true); /* renewed (a hand-back too, until it is released) */
        if (!p->releasing)
            held++;
    }
    /* Extras go back, the highest first: reading stops, what is in flight
     * is acknowledged or released, then the lease is given back. */
    for (unsigned i = bus->partitions; i-- > 0 && held > target;) {
        partition_t *p = &bus->parts[i];
        if (p->held && !p->releasing) {
            hs_log_info("bus: handing partition %u back (%u consumers share the partitions)", i,
                        live);
            p->releasing = true;
            p->release_sent = false;
            held--;
            hs_redis__partition_settled(bus, p);
        }
    }
    if (held != bus->held)
        log_held(bus);
    for (unsigned i = 0; i < bus->partitions; i++)
        if (bus->parts[i].held)
            hs_redis__partition_beat(bus, &bus->parts[i]);
    unsigned taking = count_held(bus) - held;
    if (held + taking >= target)
        return;
    if (now < bus->hunt_until_ms && !uv_is_active((uv_handle_t *)&bus->hunt_timer))
        uv_timer_start(&bus->hunt_timer, hunt_cb, HUNT_MS, HUNT_MS);
    look_for_free(bus, target - held - taking);
}

static void alive_checked_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    census_t *c = privdata;
    redisReply *r = reply;
    if (r == NULL || r->type != REDIS_REPLY_INTEGER)
        c->failed = true;
    else if (r->integer > 0)
        c->live++;
    if (--c->waiting > 0)
        return;
    if (!c->failed && !c->bus->closing)
        balance(c->bus, c->live);
    hs_free(c);
}

static void members_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    redis_bus_t *bus = privdata;
    redisReply *r = reply;
    if (bus->closing || !hs_redis__reply_ok(r) || r->type != REDIS_REPLY_ARRAY)
        return;
    census_t *c = hs_calloc(1, sizeof(*c));
    c->bus = bus;
    for (size_t i = 0; i < r->elements; i++) {
        if (r->element[i]->type != REDIS_REPLY_STRING)
            continue;
        const char *name = r->element[i]->str;
        char alive[KEY_MAX];
        snprintf(alive, sizeof(alive), CONSUMER_ALIVE "%s", name);
        if (hs_redis__cmdl(bus, alive_checked_cb, c, "EXISTS", alive) == REDIS_OK)
            c->waiting++;
        /* A consumer that stopped beating leaves the registry; its
         * partitions' groups lose it at their take-over. */
        hs_redis__cmd_script(bus, SCRIPT_FORGET, NULL, NULL, 2, 3,
                             (const char *[]){alive, CONSUMERS_KEY, name}, NULL);
    }
    if (c->waiting == 0)
        hs_free(c);
}

void hs_redis__leases_beat(redis_bus_t *bus)
{
    if (!hs_redis__cmd_up(bus) || bus->consumer == NULL)
        return;
    if (bus->held > 0)
        hs_metrics_singleton.bus_backlog = bus->backlog_sum;
    bus->backlog_sum = 0;
    char alive[KEY_MAX], ms[24];
    snprintf(alive, sizeof(alive), CONSUMER_ALIVE "%s", bus->consumer_name);
    snprintf(ms, sizeof(ms), "%llu", (unsigned long long)(3 * bus->consumer_beat_ms));
    hs_redis__cmdl(bus, NULL, NULL, "SET", alive, "1", "PX", ms);
    hs_redis__cmdl(bus, NULL, NULL, "SADD", CONSUMERS_KEY, bus->consumer_name);
    hs_redis__cmdl(bus, members_cb, bus, "SMEMBERS", CONSUMERS_KEY);
}

static void beat_cb(uv_timer_t *t)
{
    hs_redis__leases_beat(t->data);
}

void hs_redis__leases_start(redis_bus_t *bus)
{
    uv_timer_start(&bus->claim_timer, beat_cb, 0, bus->consumer_beat_ms);
}

void hs_redis__leases_close(redis_bus_t *bus)
{
    if (bus->free_check) { /* its replies find it gone */
        hs_free(bus->free_check->free);
        hs_free(bus->free_check);
        bus->free_check = NULL;
    }
    if (!hs_redis__cmd_up(bus))
        return; /* the leases expire after 3 beats; the next holders clean up */
    /* A clean stop gives every lease back: the others take the partitions
     * at their next beat instead of after 3. What is in flight is not
     * acknowledged any more (the link closes): the next holder claims it,
     * and the nodes drop what they had. */
    for (unsigned i = 0; i < bus->partitions; i++)
        if (bus->parts[i].held)
            release(bus, &bus->parts[i], NULL);
    char alive[KEY_MAX];
    snprintf(alive, sizeof(alive), CONSUMER_ALIVE "%s", bus->consumer_name);
    hs_redis__cmdl(bus, NULL, NULL, "DEL", alive);
    hs_redis__cmdl(bus, NULL, NULL, "SREM", CONSUMERS_KEY, bus->consumer_name);
}
