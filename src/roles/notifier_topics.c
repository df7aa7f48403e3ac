/* notifier_topics.c - the topic index: topic -> this node's subscribers
 * (what fan-out walks), and each client's list of its subscriptions.
 */
#include <stdlib.h>
#include <string.h>

#include "roles/notifier_internal.h"

int hs_notifier__subscribe(hs_notifier_t *n, client_t *client, const char *name)
{
    for (sub_t *s = client->subs; s; s = s->client_next)
        if (strcmp(s->topic->name, name) == 0)
            return 0; /* already subscribed */
    if (client->sub_count >= n->cfg->max_subscriptions)
        return HS_EBUSY;
    size_t len = strlen(name);
    topic_t *topic = hs_map_get(&n->topics, name, len);
    if (topic == NULL) {
        topic = hs_calloc(1, sizeof(*topic) + len + 1);
        memcpy(topic->name, name, len + 1);
        hs_map_put(&n->topics, topic->name, len, topic);
        hs_notifier__topic_served(n, topic);
        hs_bus_add_topic_node(n->bus, topic->name, n->node_id);
    }
    sub_t *s = hs_calloc(1, sizeof(*s));
    s->client = client;
    s->topic = topic;
    s->topic_next = topic->head;
    if (topic->head)
        topic->head->topic_prev = s;
    topic->head = s;
    topic->count++;
    s->client_next = client->subs;
    client->subs = s;
    client->sub_count++;
    n->subscriptions++;
    return 0;
}

/* Unlinks s from its topic (freeing the topic when it empties) and frees s;
 * the caller unlinks it from the client's list. */
static void drop_sub(hs_notifier_t *n, sub_t *s)
{
    topic_t *topic = s->topic;
    if (s->topic_prev)
        s->topic_prev->topic_next = s->topic_next;
    else
        topic->head = s->topic_next;
    if (s->topic_next)
        s->topic_next->topic_prev = s->topic_prev;
    if (--topic->count == 0) {
        hs_map_remove(&n->topics, topic->name, strlen(topic->name));
        hs_bus_remove_topic_node(n->bus, topic->name, n->node_id);
        hs_notifier__topic_unserved(n, topic);
        hs_free(topic);
    }
    hs_free(s);
}

/* Removes the client's subscription to name, or all of them when NULL. */
void hs_notifier__unsubscribe(hs_notifier_t *n, client_t *client, const char *name)
{
    sub_t **link = &client->subs;
    while (*link) {
        sub_t *s = *link;
        if (name == NULL || strcmp(s->topic->name, name) == 0) {
            *link = s->client_next;
            drop_sub(n, s);
            client->sub_count--;
            n->subscriptions--;
            if (name != NULL)
                return;
        } else {
            link = &s->client_next;
        }
    }
}

client_t *hs_notifier__find_client(hs_notifier_t *n, const char *id)
{
    return id ? hs_map_get(&n->clients, id, strlen(id)) : NULL;
}

bool hs_notifier__subscribed_to(const client_t *client, const char *topic)
{
    for (sub_t *s = client->subs; s; s = s->client_next)
        if (strcmp(s->topic->name, topic) == 0)
            return true;
    return false;
}

/* Makes the client's subscriptions those of its rows: one removed through
 * the API while it was detached goes, one stored meanwhile comes. */
void hs_notifier__sync_topics(hs_notifier_t *n, client_t *client, const char *const *topics,
                              size_t count)
{
    sub_t *s = client->subs;
    while (s) {
        sub_t *next = s->client_next;
        bool kept = false;
        for (size_t i = 0; i < count && !kept; i++)
            kept = strcmp(s->topic->name, topics[i]) == 0;
        if (!kept)
            hs_notifier__unsubscribe(n, client, s->topic->name);
        s = next;
    }
    for (size_t i = 0; i < count; i++)
        if (hs_notifier__subscribe(n, client, topics[i]) != 0)
            hs_log_warn("notifier: conn %s: subscription to %s not restored", client->id,
                        topics[i]);
}
