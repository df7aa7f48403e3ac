/* notifier_fanout.c - delivering: runs of messages to one topic's local
 * subscribers, notifications to one connection, stream gaps, and the
 * clients found too slow while doing so.
 */
#include <stdlib.h>
#include <string.h>

#include "roles/notifier_internal.h"

/* A subscriber found too slow during a fan-out walk: its session is closing
 * already (1008); it is ended once the walk is over, which must not see
 * its list change. */
static void end_later(hs_notifier_t *n, client_t *c)
{
    if (n->ending_count == n->ending_cap) {
        n->ending_cap = n->ending_cap ? 2 * n->ending_cap : 16;
        n->ending = hs_realloc(n->ending, n->ending_cap * sizeof(*n->ending));
    }
    n->ending[n->ending_count++] = c;
}

static void end_slow_clients(hs_notifier_t *n)
{
    for (size_t i = 0; i < n->ending_count; i++) {
        client_t *c = n->ending[i];
        hs_log_info("notifier: conn %s does not read: ended", c->id);
        hs_metrics_singleton.slow_disconnects++;
        hs_notifier__end_client(n, c, 1008, "slow consumer: too much data queued");
    }
    n->ending_count = 0;
}

/* Sends the run: each subscriber of its topic gets every message of the
 * run, in order, as ONE queue entry (a vector of the frames), so each
 * connection's state is touched once per run rather than once per message
 * (a fan-out to 10,000 connections is bound by cache misses, not by
 * instructions). The entry takes its references for every subscriber at once
 * and each queue takes one of those over: no atomic operation per recipient;
 * the unused ones are given back after the walk. A run that would overflow a
 * slow client's queue is refused whole and closes that client later (never
 * inside this walk), so the list stays valid. */
void hs_notifier__flush_run(hs_notifier_t *n)
{
    run_t *run = &n->run;
    if (run->count == 0)
        return;
    topic_t *topic = run->topic;
    /* A WebSocket subscriber's queue gets the run as one entry: its one
     * frame, or a vector of its frames (written with one writev). */
    hs_buf_t *ws_buf;
    if (run->count == 1) {
        ws_buf = hs_buf_ref(run->msgs[0].msg.ws_frame);
    } else {
        hs_buf_t *parts[RUN_MAX];
        for (size_t i = 0; i < run->count; i++)
            parts[i] = run->msgs[i].msg.ws_frame;
        ws_buf = hs_buf_vector(parts, (unsigned)run->count);
    }
    unsigned reserved = (unsigned)topic->count, taken = 0;
    hs_buf_ref_n(ws_buf, reserved);
    uint64_t delivered = 0;
    for (sub_t *s = topic->head; s; s = s->topic_next) {
        client_t *c = s->client;
        if (!hs_notifier__client_attached(c))
            continue; /* in the history: a resume replays it */
        if (c->replaying) {
            for (size_t i = 0; i < run->count; i++)
                hs_notifier__hold(c, run->msgs[i].id, run->msgs[i].msg.json,
                                  run->msgs[i].msg.json_len);
            continue;
        }
        transport_t *t = c->transport;
        if (t->ops->send_run && taken < reserved && c->replayed == NULL) {
            int rc = t->ops->send_run(t, ws_buf, !c->unbounded);
            taken += rc == 0;
            delivered += rc == 0 ? run->count : 0;
            if (rc == HS_ETOOBIG)
                end_later(n, c);
            continue;
        }
        for (size_t i = 0; i < run->count; i++) {
            run_msg_t *msg = &run->msgs[i];
            if (hs_notifier__has_already(c, msg->id)) {
                hs_metrics_singleton.duplicates_dropped++;
                continue;
            }
            int rc = hs_notifier__client_send_message(c, &msg->msg);
            delivered += rc == 0;
            if (rc == HS_ETOOBIG)
                end_later(n, c);
            if (rc != 0)
                break; /* closed, or closing: the rest would fail too */
        }
    }
    hs_buf_unref_n(ws_buf, 1 + (reserved - taken));
    hs_metrics_t *m = &hs_metrics_singleton;
    m->deliveries += delivered;
    uint64_t now = hs_now_ms();
    for (size_t i = 0; i < run->count; i++) {
        run_msg_t *msg = &run->msgs[i];
        hs_notifier__transport_msg_dispose(&msg->msg);
        /* The id's time is the message's creation (wall clock, milliseconds). */
        hs_ulid_t id;
        if (msg->id[0] && hs_ulid_parse(msg->id, strlen(msg->id), &id) == 0) {
            uint64_t created = hs_ulid_time_ms(&id);
            hs_histogram_observe(&m->publish_to_socket, now > created ? (now - created) / 1e3 : 0);
        }
    }
    run->count = 0;
    run->topic = NULL;
    end_slow_clients(n);
}

/* A message for a topic's local subscribers joins the run of consecutive
 * messages to one topic; the run goes out when the bus ends its pass
 * (HS_NODE_BATCH_END), when another command or topic comes, or when full.
 * Every connection therefore sees exactly the order of the runs, which is
 * the topic's id order (notifier_order.c puts them in it). */
void hs_notifier__run_append(hs_notifier_t *n, topic_t *topic, const char *id, const char *json,
                             size_t len)
{
    run_t *run = &n->run;
    if (run->topic != topic || run->count == RUN_MAX)
        hs_notifier__flush_run(n);
    run->topic = topic;
    run_msg_t *msg = &run->msgs[run->count++];
    hs_buf_t *frame = hs_notifier__ws_message_frame(json, len);
    snprintf(msg->id, sizeof(msg->id), "%s", id ? id : "");
    /* The message object is in the frame, before its closing brace. */
    msg->msg = (transport_msg_t){.id = msg->id,
                                 .json = frame->data + (frame->len - 1 - len),
                                 .json_len = len,
                                 .ws_frame = frame};
}

void hs_notifier__deliver(hs_notifier_t *n, const hs_node_cmd_t *cmd)
{
    topic_t *topic = cmd->topic ? hs_map_get(&n->topics, cmd->topic, strlen(cmd->topic)) : NULL;
    if (topic == NULL)
        return;
    if (cmd->message_json == NULL || cmd->message_id == NULL) { /* not from this version */
        hs_log_warn("notifier: a delivery of %s to %s carries no message; dropped",
                    cmd->message_id ? cmd->message_id : "?", cmd->topic);
        return;
    }
    /* At-least-once below, at-most-once per connection here: a message
     * handed over again is not delivered again. */
    if (n->dedupe && hs_dedupe_seen(n->dedupe, cmd->message_id)) {
        hs_metrics_singleton.duplicates_dropped++;
        return;
    }
    hs_notifier__live_deliver(n, topic, cmd);
}

int hs_notifier__notify(hs_notifier_t *n, const char *connection_id, const char *text, size_t len)
{
    client_t *client = hs_notifier__find_client(n, connection_id);
    if (client == NULL)
        return HS_ENOTFOUND;
    if (!hs_notifier__client_attached(client))
        return 0; /* notifications are not kept: it misses this one */
    switch (hs_notifier__client_send_text(client, "notification", text, len)) {
    case 0:
        hs_metrics_singleton.notifications++;
        break;
    case HS_ETOOBIG:
        hs_metrics_singleton.slow_disconnects++;
        hs_notifier__end_client(n, client, 1008, "slow consumer: too much data queued");
        break;
    }
    return 0;
}

/* The prototype's forwarder-channel: {"connectionID":…,"payload":…}, heard
 * by every node; the one holding the connection delivers the payload as a
 * notification. */
int hs_notifier__forward(hs_notifier_t *n, const hs_node_cmd_t *cmd)
{
    json_t *obj;
    hs_api_error_t err;
    hs_notification_input_t in;
    if (hs_decode_body(cmd->frame_text, cmd->frame_text_len, &obj, &err) != 0) {
        hs_log_warn("notifier: forwarder-channel message ignored: %s", err.message);
        return HS_EINVAL;
    }
    int rc = hs_decode_notification(obj, n->cfg->max_content, &in, &err);
    if (rc != 0)
        hs_log_warn("notifier: forwarder-channel message ignored: %s", err.message);
    else
        rc = hs_notifier__notify(n, in.connection_id, in.payload, in.payload_len);
    json_decref(obj);
    return rc;
}

/* Commands or events meant for this node were lost (bus.h, HS_NODE_GAP):
 * every attached connection may be short, so it is closed with 1001 and
 * detached at once, and resumes from its last id, replayed from the
 * history. Lost commands may have been subscribes or unsubscribes, so no
 * copy in memory is trusted any more: a resume makes each connection's
 * subscriptions those of its rows (adopt, then reread_cb). Runs before any command that followed
 * the loss, so no connection gets a message from after it first. */
void hs_notifier__stream_gap(hs_notifier_t *n, const hs_node_cmd_t *cmd)
{
    hs_metrics_singleton.stream_gaps++;
    hs_notifier__order_rebase_all(n);
    size_t count = hs_map_count(&n->clients), closed = 0, pos = 0;
    client_t **attached = hs_calloc(count ? count : 1, sizeof(*attached));
    client_t *client;
    while ((client = hs_map_next(&n->clients, &pos)) != NULL)
        if (hs_notifier__client_attached(client))
            attached[closed++] = client;
    for (size_t i = 0; i < closed; i++)
        hs_notifier__ask_to_resume(n, attached[i], "resume again");
    hs_free(attached);
    hs_log_warn("notifier: gap in %s (%.*s); asked %zu connections to resume",
                cmd->topic ? cmd->topic : "a stream", (int)cmd->frame_text_len,
                cmd->frame_text ? cmd->frame_text : "", closed);
}
