/* live_order.c - the order of one topic's live messages: deliver in the
 * chain of prev links, hold what comes early, drop what was delivered
 * (live_order.h). */
#include "roles/live_order.h"

#include <stdio.h>
#include <string.h>

#include "core/alloc.h"

void hs_live_order_init(hs_live_order_t *o, hs_live_budget_t *budget)
{
    memset(o, 0, sizeof(*o));
    o->budget = budget;
}

static void drop_head(hs_live_order_t *o)
{
    hs_live_msg_t *m = o->held;
    o->held = m->next;
    o->held_count--;
    o->held_bytes -= m->len;
    o->budget->held_bytes -= m->len;
    hs_free(m);
}

void hs_live_order_dispose(hs_live_order_t *o)
{
    while (o->held)
        drop_head(o);
    o->gap_since_ms = 0;
}

/* ULIDs compare as strings (same length, ordered alphabet); "" is below all. */
static int cmp(const char *a, const char *b)
{
    return strcmp(a, b);
}

static void deliver_one(hs_live_order_t *o, const char *id, const char *json, size_t len,
                        hs_live_deliver_fn deliver, void *data)
{
    snprintf(o->last, sizeof(o->last), "%s", id);
    if (deliver)
        deliver(id, json, len, data);
}

/* Delivers the held messages that now follow last, drops the repeats. */
static void drain(hs_live_order_t *o, uint64_t now_ms, hs_live_deliver_fn deliver, void *data)
{
    bool moved = false;
    while (o->held) {
        hs_live_msg_t *m = o->held;
        if (cmp(m->id, o->last) <= 0) {
            drop_head(o);
            continue;
        }
        if (cmp(m->prev, o->last) > 0)
            break;         /* still a gap before it */
        o->held = m->next; /* unlinked first: deliver may not see it */
        o->held_count--;
        o->held_bytes -= m->len;
        o->budget->held_bytes -= m->len;
        deliver_one(o, m->id, m->json, m->len, m->deleted ? NULL : deliver, data);
        hs_free(m);
        moved = true;
    }
    if (o->held == NULL)
        o->gap_since_ms = 0;
    else if (moved || o->gap_since_ms == 0)
        o->gap_since_ms = now_ms ? now_ms : 1; /* a new gap waits its own time */
}

static hs_live_result_t hold(hs_live_order_t *o, const char *id, const char *prev, const char *json,
                             size_t len, uint64_t now_ms)
{
    hs_live_msg_t **link = &o->held;
    while (*link && cmp((*link)->id, id) < 0)
        link = &(*link)->next;
    if (*link && cmp((*link)->id, id) == 0)
        return HS_LIVE_HELD; /* held already */
    if (o->held_count >= o->budget->max_held ||
        o->budget->held_bytes + len > o->budget->max_held_bytes)
        return HS_LIVE_OVERFLOW;
    hs_live_msg_t *m = hs_malloc(sizeof(*m) + len + 1);
    snprintf(m->id, sizeof(m->id), "%s", id);
    snprintf(m->prev, sizeof(m->prev), "%s", prev ? prev : "");
    memcpy(m->json, json, len);
    m->json[len] = '\0';
    m->len = len;
    m->deleted = false;
    m->next = *link;
    *link = m;
    o->held_count++;
    o->held_bytes += len;
    o->budget->held_bytes += len;
    if (o->gap_since_ms == 0)
        o->gap_since_ms = now_ms ? now_ms : 1;
    return HS_LIVE_HELD;
}

hs_live_result_t hs_live_order_offer(hs_live_order_t *o, const char *id, const char *prev,
                                     const char *json, size_t len, uint64_t now_ms,
                                     hs_live_deliver_fn deliver, void *data)
{
    if (!o->known)
        return hold(o, id, prev ? prev : "", json, len, now_ms);
    if (cmp(id, o->last) <= 0)
        return HS_LIVE_REPEAT;
    /* prev below last: last is not a stored message (a baseline or a reset
     * between two of them); the chain goes on from it. */
    if (prev != NULL && cmp(prev, o->last) > 0)
        return hold(o, id, prev, json, len, now_ms);
    deliver_one(o, id, json, len, deliver, data);
    drain(o, now_ms, deliver, data);
    return HS_LIVE_DELIVERED;
}

void hs_live_order_set_baseline(hs_live_order_t *o, const char *last, uint64_t now_ms,
                                hs_live_deliver_fn deliver, void *data)
{
    if (o->known)
        return;
    o->known = true;
    snprintf(o->last, sizeof(o->last), "%s", last ? last : "");
    o->gap_since_ms = 0;
    drain(o, now_ms, deliver, data);
}

bool hs_live_order_forget(hs_live_order_t *o, const char *id)
{
    for (hs_live_msg_t *m = o->held; m; m = m->next)
        if (cmp(m->id, id) == 0) {
            m->deleted = true;
            return true;
        }
    return false;
}

void hs_live_order_fill(hs_live_order_t *o, const char *id, const char *json, size_t len,
                        hs_live_deliver_fn deliver, void *data)
{
    if (cmp(id, o->last) <= 0)
        return;
    deliver_one(o, id, json, len, deliver, data);
}

bool hs_live_order_fill_done(hs_live_order_t *o, uint64_t now_ms, hs_live_deliver_fn deliver,
                             void *data)
{
    drain(o, now_ms, deliver, data);
    if (o->held)
        o->gap_since_ms = now_ms ? now_ms : 1; /* what is left waits anew */
    return o->held == NULL;
}

void hs_live_order_reset(hs_live_order_t *o, const char *seen)
{
    const char *highest = seen;
    for (hs_live_msg_t *m = o->held; m; m = m->next)
        if (highest == NULL || cmp(m->id, highest) > 0)
            highest = m->id;
    if (highest && cmp(highest, o->last) > 0)
        snprintf(o->last, sizeof(o->last), "%s", highest);
    o->known = true;
    hs_live_order_dispose(o);
}
