/* redis_status.c - a read-only look at the deployment in Redis, for
 * GET /api/v1/nodes: the notifier nodes of houston:nodes with their last
 * heartbeat (the value and TTL of houston:{n:<node>}:alive, which
 * redis_directory.c's heartbeat writes) and their connection count, and the
 * consumers with the partitions whose lease each holds. Nothing is
 * written. One read is a few commands per node and one per partition, all
 * in flight at once; their answers are gathered, then the callback runs
 * once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/redis_internal.h"
#include "core/alloc.h"
#include "core/error.h"

#define NODES_MAX     1024 /* nodes described; more are left out */
#define CONSUMERS_MAX 1024

typedef struct status_read {
    redis_bus_t *bus;
    hs_bus_deployment_cb cb;
    void *data;
    int pending;      /* commands whose answer is still to come */
    int status;       /* the first failure, or 0 */
    uv_timer_t later; /* a read that could not start answers on the next turn */
    char **nodes;
    hs_bus_notifier_status_t *notifiers;
    size_t node_count;
    char **consumers;
    size_t consumer_count;
    char **holders; /* per partition: the lease holder, or NULL */
} status_read_t;

/* One command's answer and where it goes. */
typedef enum {
    ANSWER_NODES,
    ANSWER_CONSUMERS,
    ANSWER_BEAT,
    ANSWER_TTL,
    ANSWER_CONNS,
    ANSWER_LEASE
} answer_kind_t;

typedef struct answer {
    status_read_t *read;
    answer_kind_t kind;
    size_t index; /* the node's or the partition's */
} answer_t;

static void read_free(status_read_t *r)
{
    for (size_t i = 0; i < r->node_count; i++)
        hs_free(r->nodes[i]);
    hs_free(r->nodes);
    hs_free(r->notifiers);
    for (size_t i = 0; i < r->consumer_count; i++)
        hs_free(r->consumers[i]);
    hs_free(r->consumers);
    for (unsigned i = 0; r->holders && i < r->bus->partitions; i++)
        hs_free(r->holders[i]);
    hs_free(r->holders);
    hs_free(r);
}

static void later_closed_cb(uv_handle_t *h)
{
    read_free(h->data);
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every answer is in: the consumers (from the registry and the leases) with
 * their partitions, to the callback. */
static void finish(status_read_t *r)
{
    if (r->status != 0) {
        r->cb(r->status, NULL, r->data);
        read_free(r);
        return;
    }
    unsigned parts = r->bus->partitions;
    /* A lease holder missing from the registry (it left it, or is just
     * arriving) is still a consumer. */
    for (unsigned i = 0; i < parts; i++) {
        bool known = r->holders[i] == NULL;
        for (size_t c = 0; !known && c < r->consumer_count; c++)
            known = strcmp(r->consumers[c], r->holders[i]) == 0;
        if (!known && r->consumer_count < CONSUMERS_MAX) {
            r->consumers = hs_realloc(r->consumers, (r->consumer_count + 1) * sizeof(char *));
            r->consumers[r->consumer_count++] = hs_strdup(r->holders[i]);
        }
    }
    qsort(r->consumers, r->consumer_count, sizeof(char *), compare_names);
    hs_bus_consumer_status_t *consumers =
        hs_calloc(r->consumer_count ? r->consumer_count : 1, sizeof(*consumers));
    unsigned *held = hs_calloc(parts ? parts : 1, sizeof(*held));
    size_t used = 0;
    for (size_t c = 0; c < r->consumer_count; c++) {
        consumers[c].consumer = r->consumers[c];
        consumers[c].partitions = held + used;
        for (unsigned i = 0; i < parts; i++)
            if (r->holders[i] && strcmp(r->holders[i], r->consumers[c]) == 0)
                held[used + consumers[c].count++] = i;
        used += consumers[c].count;
    }
    hs_bus_deployment_t d = {.notifiers = r->notifiers,
                             .notifier_count = r->node_count,
                             .consumers = consumers,
                             .consumer_count = r->consumer_count,
                             .partitions = parts};
    r->cb(0, &d, r->data);
    hs_free(held);
    hs_free(consumers);
    read_free(r);
}

static void answered_cb(redisAsyncContext *ac, void *reply, void *privdata);

static void ask(status_read_t *r, answer_kind_t kind, size_t index, const char *const *args)
{
    answer_t *a = hs_malloc(sizeof(*a));
    a->read = r;
    a->kind = kind;
    a->index = index;
    r->pending++;
    if (hs_redis__cmda(r->bus, answered_cb, a, args) != REDIS_OK) {
        /* Not sent: this answer will not come. Never the last one (the
         * caller holds one pending itself). */
        r->pending--;
        if (r->status == 0)
            r->status = HS_EUNAVAIL;
        hs_free(a);
    }
}

static char *string_of(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_STRING ? hs_strdup(r->str) : NULL;
}

static void nodes_answered(status_read_t *r, const redisReply *reply)
{
    size_t n = reply->elements < NODES_MAX ? reply->elements : NODES_MAX;
    r->nodes = hs_calloc(n ? n : 1, sizeof(char *));
    r->notifiers = hs_calloc(n ? n : 1, sizeof(*r->notifiers));
    for (size_t i = 0; i < n; i++)
        if (reply->element[i]->type == REDIS_REPLY_STRING)
            r->nodes[r->node_count++] = hs_strdup(reply->element[i]->str);
    qsort(r->nodes, r->node_count, sizeof(char *), compare_names);
    for (size_t i = 0; i < r->node_count; i++) {
        hs_bus_notifier_status_t *s = &r->notifiers[i];
        s->node = r->nodes[i];
        s->beat_age_ms = -1;
        char alive[KEY_MAX], conns[KEY_MAX];
        NODE_KEY(alive, r->nodes[i], "alive");
        NODE_KEY(conns, r->nodes[i], "conns");
        ask(r, ANSWER_BEAT, i, (const char *const[]){"GET", alive, NULL});
        ask(r, ANSWER_TTL, i, (const char *const[]){"PTTL", alive, NULL});
        ask(r, ANSWER_CONNS, i, (const char *const[]){"SCARD", conns, NULL});
    }
}

static void answered_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    answer_t *a = privdata;
    status_read_t *r = a->read;
    const redisReply *rep = reply;
    if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
        if (r->status == 0)
            r->status = rep == NULL ? HS_EUNAVAIL : HS_EIO;
    } else if (r->status == 0) {
        switch (a->kind) {
        case ANSWER_NODES:
            if (rep->type == REDIS_REPLY_ARRAY)
                nodes_answered(r, rep);
            break;
        case ANSWER_CONSUMERS:
            for (size_t i = 0; rep->type == REDIS_REPLY_ARRAY && i < rep->elements &&
                               r->consumer_count < CONSUMERS_MAX;
                 i++)
                if (rep->element[i]->type == REDIS_REPLY_STRING)
                    r->consumers[r->consumer_count++] = hs_strdup(rep->element[i]->str);
            break;
        case ANSWER_BEAT:
            if (rep->type == REDIS_REPLY_STRING) {
                /* "<ms> <interval ms> <deliveries>" (an older node: "1"). */
                unsigned long long at = 0, every = 0, sent = 0;
                if (sscanf(rep->str, "%llu %llu %llu", &at, &every, &sent) == 3) {
                    r->notifiers[a->index].beat_ms = at;
                    r->notifiers[a->index].interval_ms = every;
                    r->notifiers[a->index].deliveries = sent;
                }
            }
            break;
        case ANSWER_TTL:
            if (rep->type == REDIS_REPLY_INTEGER && rep->integer >= 0) {
                /* The key lives 3 intervals from each beat. */
                hs_bus_notifier_status_t *s = &r->notifiers[a->index];
                long long age = (long long)(3 * s->interval_ms) - rep->integer;
                s->beat_age_ms = s->interval_ms && age >= 0 ? age : 0;
            }
            break;
        case ANSWER_CONNS:
            if (rep->type == REDIS_REPLY_INTEGER)
                r->notifiers[a->index].connections = (uint64_t)rep->integer;
            break;
        case ANSWER_LEASE: {
            char *v = string_of(rep);
            char *colon = v ? strrchr(v, ':') : NULL;
            if (colon) { /* "<consumer>:<token>" */
                *colon = '\0';
                r->holders[a->index] = v;
            } else {
                hs_free(v);
            }
            break;
        }
        }
    }
    hs_free(a);
    if (--r->pending == 0)
        finish(r);
}

static void unavailable_cb(uv_timer_t *t)
{
    status_read_t *r = t->data;
    r->cb(HS_EUNAVAIL, NULL, r->data);
    uv_close((uv_handle_t *)t, later_closed_cb);
}

void hs_redis__deployment(hs_bus_t *b, hs_bus_deployment_cb cb, void *data)
{
    redis_bus_t *bus = (redis_bus_t *)b;
    status_read_t *r = hs_calloc(1, sizeof(*r));
    r->bus = bus;
    r->cb = cb;
    r->data = data;
    if (!hs_redis__cmd_up(bus)) {
        uv_timer_init(b->loop, &r->later);
        r->later.data = r;
        uv_timer_start(&r->later, unavailable_cb, 0, 0);
        return;
    }
    r->consumers = hs_calloc(CONSUMERS_MAX, sizeof(char *));
    r->holders = hs_calloc(bus->partitions ? bus->partitions : 1, sizeof(char *));
    /* One pending of our own until every command is sent: an answer cannot
     * finish the read before the last is asked (answers come later, but a
     * refused send must not end it either). */
    r->pending = 1;
    ask(r, ANSWER_NODES, 0, (const char *const[]){"SMEMBERS", NODES_KEY, NULL});
    ask(r, ANSWER_CONSUMERS, 0, (const char *const[]){"SMEMBERS", CONSUMERS_KEY, NULL});
    for (unsigned i = 0; i < bus->partitions; i++)
        ask(r, ANSWER_LEASE, i, (const char *const[]){"GET", bus->parts[i].lease, NULL});
    if (--r->pending == 0) {
        /* Nothing was sent (the link went away just now): answer later. */
        uv_timer_init(b->loop, &r->later);
        r->later.data = r;
        uv_timer_start(&r->later, unavailable_cb, 0, 0);
    }
}
