/* notifier_deleted.c - a message or a whole topic deleted through the API
 * (HS_NODE_DELETED): the "deleted" frame to the topic's local subscribers,
 * never before the message it names (it comes through the topic's
 * partition, after the message's DELIVER; a message still held for its
 * order is passed over; a client in a resume gets the frame after its
 * replay and held messages), and a deleted topic dropped from them.
 */
#include <string.h>

#include "roles/notifier_internal.h"

/* A frame to one subscriber: now, or after its resume's replay. */
static void send_deleted(hs_notifier_t *n, client_t *c, const char *text, size_t len)
{
    if (!hs_notifier__client_attached(c))
        return; /* detached: its resume replays the history, where it is gone */
    if (c->replaying) {
        size_t max = (size_t)n->cfg->max_pending;
        if (c->held_overflow || (max > 0 && hs_notifier__held_bytes(c) + len > max))
            return; /* it resumes again (hold's overflow), from the history */
        held_t *h = hs_malloc(sizeof(*h) + len + 1);
        h->id[0] = '\0';
        h->deleted = true;
        h->len = len;
        memcpy(h->json, text, len);
        h->json[len] = '\0';
        hs_notifier__held_push(c, h);
        return;
    }
    if (hs_notifier__client_send_text(c, "deleted", text, len) == HS_ETOOBIG) {
        hs_metrics_singleton.slow_disconnects++;
        hs_notifier__end_client(n, c, 1008, "slow consumer: too much data queued");
    }
}

/* Whether this deletion was handed over before (a bus that redelivers):
 * remembered with the message ids, under the id with its first character
 * (0-7) made a lowercase letter, which no message id is. A topic's
 * deletion needs none: the topic is gone from here after the first. */
static bool seen_before(hs_notifier_t *n, const char *id)
{
    if (n->dedupe == NULL || strlen(id) != HS_ULID_LEN || id[0] < '0' || id[0] > '7')
        return false;
    char key[HS_ULID_LEN + 1];
    memcpy(key, id, sizeof(key));
    key[0] = (char)('a' + (id[0] - '0'));
    return hs_dedupe_seen(n->dedupe, key);
}

void hs_notifier__deleted(hs_notifier_t *n, const hs_node_cmd_t *cmd)
{
    topic_t *topic = cmd->topic ? hs_map_get(&n->topics, cmd->topic, strlen(cmd->topic)) : NULL;
    if (topic == NULL || cmd->frame_text == NULL)
        return; /* no subscriber here */
    bool whole = cmd->message_id == NULL || cmd->message_id[0] == '\0';
    if (!whole && seen_before(n, cmd->message_id)) {
        hs_metrics_singleton.duplicates_dropped++;
        return;
    }
    if (!whole)
        hs_live_order_forget(&topic->order, cmd->message_id);
    /* The walk collects first: ending a slow client, or dropping the topic,
     * changes the list. */
    size_t count = 0;
    client_t **subscribers = hs_calloc(topic->count ? topic->count : 1, sizeof(*subscribers));
    for (sub_t *s = topic->head; s; s = s->topic_next)
        subscribers[count++] = s->client;
    char name[HS_TOPIC_MAX + 1];
    snprintf(name, sizeof(name), "%s", topic->name);
    for (size_t i = 0; i < count; i++) {
        client_t *c = subscribers[i];
        uint64_t serial = c->serial;
        char id[HS_ULID_LEN + 1];
        memcpy(id, c->id, sizeof(id));
        send_deleted(n, c, cmd->frame_text, cmd->frame_text_len);
        /* A slow client was ended and may be gone: found again by id. */
        c = hs_notifier__find_client(n, id);
        if (whole && c && c->serial == serial)
            hs_notifier__unsubscribe(n, c, name);
    }
    hs_free(subscribers);
    if (whole)
        hs_log_info("notifier: topic %s deleted: dropped from %zu connections", name, count);
}
