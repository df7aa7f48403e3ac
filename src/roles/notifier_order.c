/* notifier_order.c - live order per topic on a notifier: the baseline of a
 * topic that becomes served here, the hold of messages that come before
 * their predecessor, the fill of a gap from the store, and the 1001 close
 * when it cannot be filled (docs/scaling.md, "Live order"; the bookkeeping
 * itself is live_order.c).
 */
#include <stdlib.h>
#include <string.h>

#include "roles/notifier_internal.h"

/* A store read for a topic: found again by name, and dropped when the
 * topic object it was issued for is gone. */
typedef struct order_read {
    hs_notifier_t *n;
    uint64_t gen;
    char name[];
} order_read_t;

typedef struct deliver_ctx {
    hs_notifier_t *n;
    topic_t *topic;
} deliver_ctx_t;

static void deliver_cb(const char *id, const char *json, size_t len, void *data)
{
    deliver_ctx_t *ctx = data;
    hs_notifier__run_append(ctx->n, ctx->topic, id, json, len);
}

static void timer_cb(uv_timer_t *timer);

void hs_notifier__order_init(hs_notifier_t *n)
{
    n->live_budget = (hs_live_budget_t){.max_held = n->cfg->live_hold_max,
                                        .max_held_bytes = n->cfg->live_hold_bytes};
}

static void timer_closed_cb(uv_handle_t *handle)
{
    hs_free(handle);
}

void hs_notifier__order_stop(hs_notifier_t *n)
{
    if (n->live_timer) {
        uv_close((uv_handle_t *)n->live_timer, timer_closed_cb);
        n->live_timer = NULL;
    }
}

/* Ticks while topics hold messages; made on the first hold, never once the
 * notifier shuts down (what is held then goes with the topics). */
static void arm_timer(hs_notifier_t *n)
{
    if (n->shutting_down)
        return;
    if (n->live_timer == NULL) {
        n->live_timer = hs_calloc(1, sizeof(*n->live_timer));
        uv_timer_init(hs_net_loop(n->net), n->live_timer);
        n->live_timer->data = n;
    }
    if (!uv_is_active((uv_handle_t *)n->live_timer)) {
        uint64_t tick = n->cfg->live_hold_ms / 4;
        tick = tick < 5 ? 5 : tick;
        uv_timer_start(n->live_timer, timer_cb, tick, tick);
    }
}

/* ---- the list of topics that hold messages ------------------------------ */

static void gap_list_add(hs_notifier_t *n, topic_t *topic)
{
    if (topic->gap_listed)
        return;
    topic->gap_listed = true;
    topic->gap_prev = NULL;
    topic->gap_next = n->gapped;
    if (n->gapped)
        n->gapped->gap_prev = topic;
    n->gapped = topic;
    arm_timer(n);
}

static void gap_list_remove(hs_notifier_t *n, topic_t *topic)
{
    if (!topic->gap_listed)
        return;
    if (topic->gap_prev)
        topic->gap_prev->gap_next = topic->gap_next;
    else
        n->gapped = topic->gap_next;
    if (topic->gap_next)
        topic->gap_next->gap_prev = topic->gap_prev;
    topic->gap_listed = false;
    topic->gap_prev = topic->gap_next = NULL;
}

/* ---- baseline ------------------------------------------------------------- */

static order_read_t *read_new(hs_notifier_t *n, topic_t *topic)
{
    size_t len = strlen(topic->name);
    order_read_t *r = hs_malloc(sizeof(*r) + len + 1);
    r->n = n;
    r->gen = topic->gen;
    memcpy(r->name, topic->name, len + 1);
    topic->reading = true;
    return r;
}

/* The topic the read was issued for, or NULL (gone, or replaced). */
static topic_t *read_topic(order_read_t *r)
{
    topic_t *topic = hs_map_get(&r->n->topics, r->name, strlen(r->name));
    return topic && topic->gen == r->gen ? topic : NULL;
}

static void run_waiters(hs_notifier_t *n, topic_t *topic, bool served)
{
    baseline_waiter_t *w = topic->waiters;
    topic->waiters = NULL;
    while (w) {
        baseline_waiter_t *next = w->next;
        w->cb(n, served, w->data);
        hs_free(w);
        w = next;
    }
}

/* Every attached subscriber of the topic is closed with 1001 and resumes
 * from its last id (the replay reads the history, where the gap is not).
 * The topic may be gone on return. */
static void ask_subscribers_to_resume(hs_notifier_t *n, topic_t *topic, const char *why)
{
    size_t count = 0;
    client_t **attached = hs_calloc(topic->count ? topic->count : 1, sizeof(*attached));
    for (sub_t *s = topic->head; s; s = s->topic_next)
        if (hs_notifier__client_attached(s->client))
            attached[count++] = s->client;
    hs_log_warn("notifier: live gap in %s not filled (%s); asked %zu connections to resume",
                topic->name, why, count);
    for (size_t i = 0; i < count; i++)
        hs_notifier__ask_to_resume(n, attached[i], "resume again");
    hs_free(attached);
}

/* A gap that cannot be filled: what was delivered goes out, the held
 * messages go, the subscribers resume. The topic may be gone on return. */
static void close_topic(hs_notifier_t *n, topic_t *topic, const char *seen, const char *why)
{
    hs_metrics_singleton.live_gap_closes++;
    hs_notifier__flush_run(n);
    hs_live_order_reset(&topic->order, seen);
    gap_list_remove(n, topic);
    run_waiters(n, topic, true); /* known now (the reset): their answers go out */
    ask_subscribers_to_resume(n, topic, why);
}

static void baseline_cb(int status, const hs_message_t *msgs, size_t count, void *data)
{
    order_read_t *r = data;
    hs_notifier_t *n = r->n;
    topic_t *topic = read_topic(r);
    hs_free(r);
    if (topic == NULL)
        return;
    topic->reading = false;
    if (status != 0) {
        /* No baseline: the subscribers cannot be served in order. They
         * resume (their replay reads the history); the timer reads again. */
        hs_log_warn("notifier: reading the last id of %s failed: %s", topic->name,
                    hs_strerror(status));
        hs_metrics_singleton.live_gap_closes++;
        hs_notifier__flush_run(n);
        hs_live_order_dispose(&topic->order);
        gap_list_add(n, topic);
        ask_subscribers_to_resume(n, topic, "no baseline");
        return;
    }
    hs_notifier__topic_baseline(n, topic, count ? msgs[0].id : "");
}

void hs_notifier__topic_baseline(hs_notifier_t *n, topic_t *topic, const char *last)
{
    if (topic->order.known)
        return;
    deliver_ctx_t ctx = {n, topic};
    hs_live_order_set_baseline(&topic->order, last, hs_now_ms(), deliver_cb, &ctx);
    if (!hs_live_order_holding(&topic->order))
        gap_list_remove(n, topic);
    else
        gap_list_add(n, topic); /* the held messages after the baseline wait */
    hs_notifier__flush_run(n);
    run_waiters(n, topic, true);
}

static void read_baseline(hs_notifier_t *n, topic_t *topic)
{
    hs_history_query_t q = {.topic = topic->name, .forward = false, .limit = 1};
    hs_store_list_messages(n->store, &q, baseline_cb, read_new(n, topic));
}

void hs_notifier__topic_served(hs_notifier_t *n, topic_t *topic)
{
    hs_live_order_init(&topic->order, &n->live_budget);
    topic->gen = ++n->next_topic_gen;
    read_baseline(n, topic);
}

/* Commands for this node were lost (a stream gap): every connection was
 * asked to resume, and no topic's chain can be trusted - what it waits for
 * may be gone with the stream. Each topic starts again as if newly served:
 * what it held goes, reads in flight are dropped (a new gen), and its
 * baseline is read again, before any replay of the resumes that follow (the
 * store runs reads in order): below the baseline the replays have it, above
 * it the chain. */
void hs_notifier__order_rebase_all(hs_notifier_t *n)
{
    hs_notifier__flush_run(n);
    size_t pos = 0;
    topic_t *topic;
    while ((topic = hs_map_next(&n->topics, &pos)) != NULL) {
        gap_list_remove(n, topic);
        hs_live_order_dispose(&topic->order);
        topic->order.known = false;
        topic->gen = ++n->next_topic_gen;
        topic->reading = false;
        read_baseline(n, topic);
    }
}

void hs_notifier__topic_unserved(hs_notifier_t *n, topic_t *topic)
{
    if (n->run.topic == topic)
        hs_notifier__flush_run(n);
    gap_list_remove(n, topic);
    hs_live_order_dispose(&topic->order);
    run_waiters(n, topic, false);
}

bool hs_notifier__when_known(hs_notifier_t *n, topic_t *topic,
                             void (*cb)(hs_notifier_t *n, bool served, void *data), void *data)
{
    (void)n;
    if (topic->order.known)
        return true;
    baseline_waiter_t *w = hs_calloc(1, sizeof(*w));
    w->cb = cb;
    w->data = data;
    w->next = topic->waiters;
    topic->waiters = w;
    return false;
}

/* ---- live messages ---------------------------------------------------------- */

void hs_notifier__live_deliver(hs_notifier_t *n, topic_t *topic, const hs_node_cmd_t *cmd)
{
    deliver_ctx_t ctx = {n, topic};
    bool was_holding = topic->order.known && hs_live_order_holding(&topic->order);
    switch (hs_live_order_offer(&topic->order, cmd->message_id, cmd->prev, cmd->message_json,
                                cmd->message_json_len, hs_now_ms(), deliver_cb, &ctx)) {
    case HS_LIVE_DELIVERED:
        if (!hs_live_order_holding(&topic->order))
            gap_list_remove(n, topic);
        break;
    case HS_LIVE_REPEAT:
        hs_metrics_singleton.duplicates_dropped++;
        break;
    case HS_LIVE_HELD:
        if (topic->order.known && !was_holding)
            hs_metrics_singleton.live_gaps++;
        gap_list_add(n, topic);
        break;
    case HS_LIVE_OVERFLOW:
        close_topic(n, topic, cmd->message_id, "too many messages held");
        break;
    }
}

/* ---- filling a gap from the store ------------------------------------------- */

static void fill_cb(int status, const hs_message_t *msgs, size_t count, void *data)
{
    order_read_t *r = data;
    hs_notifier_t *n = r->n;
    topic_t *topic = read_topic(r);
    hs_free(r);
    if (topic == NULL)
        return;
    topic->reading = false;
    if (status != 0) {
        hs_log_warn("notifier: reading the gap of %s failed: %s", topic->name, hs_strerror(status));
        close_topic(n, topic, NULL, "the store could not be read");
        return;
    }
    deliver_ctx_t ctx = {n, topic};
    for (size_t i = 0; i < count; i++) {
        size_t len;
        char *text = hs_render_message_text(&msgs[i], &len);
        hs_live_order_fill(&topic->order, msgs[i].id, text, len, deliver_cb, &ctx);
        hs_free(text);
    }
    bool done = hs_live_order_fill_done(&topic->order, hs_now_ms(), deliver_cb, &ctx);
    if (!done && count >= n->cfg->live_hold_max) {
        /* More messages are missing than one read may carry. */
        close_topic(n, topic, NULL, "gap too long");
        return;
    }
    hs_metrics_singleton.live_gap_fills++;
    /* Every message held when the read began was committed before it, so
     * the read had them all: what is still held came during the read and
     * waits for a hold of its own. */
    if (done)
        gap_list_remove(n, topic);
    hs_notifier__flush_run(n);
}

static void start_fill(hs_notifier_t *n, topic_t *topic)
{
    hs_history_query_t q = {.topic = topic->name,
                            .forward = true,
                            .limit = (unsigned)n->cfg->live_hold_max,
                            .max_bytes = n->cfg->live_hold_bytes};
    if (topic->order.last[0]) {
        q.has_cursor = hs_ulid_parse(topic->order.last, strlen(topic->order.last), &q.cursor) == 0;
    }
    hs_store_list_messages(n->store, &q, fill_cb, read_new(n, topic));
}

/* Every tick while topics hold messages: a gap held for --live-hold is
 * filled from the store; a topic whose baseline read failed reads again. */
static void timer_cb(uv_timer_t *timer)
{
    hs_notifier_t *n = timer->data;
    uint64_t now = hs_now_ms();
    topic_t *topic = n->gapped;
    while (topic) {
        topic_t *next = topic->gap_next;
        if (!topic->reading) {
            if (!topic->order.known)
                read_baseline(n, topic);
            else if (!hs_live_order_holding(&topic->order))
                gap_list_remove(n, topic);
            else if (now >= topic->order.gap_since_ms + n->cfg->live_hold_ms)
                start_fill(n, topic);
        }
        topic = next;
    }
    if (n->gapped == NULL)
        uv_timer_stop(timer);
}
