/* notifier_messages.c - what a client sends: subscribe, unsubscribe,
 * refresh and ack messages, and the answers to them.
 */
#include <stdlib.h>
#include <string.h>

#include "roles/notifier_internal.h"

/* A client-side operation waiting for the store. */
typedef struct client_op {
    client_ref_t ref;
    char topic[HS_TOPIC_MAX + 1];
} client_op_t;

static client_op_t *client_op_new(client_t *client, const char *topic)
{
    client_op_t *op = hs_calloc(1, sizeof(*op));
    hs_notifier__client_ref_init(&op->ref, client);
    snprintf(op->topic, sizeof(op->topic), "%s", topic);
    return op;
}

static void baseline_known_cb(hs_notifier_t *n, bool served, void *data)
{
    (void)n;
    client_op_t *op = data;
    bool same;
    client_t *client = hs_notifier__ref_client(&op->ref, &same);
    if (served && client && same)
        hs_notifier__client_topic_reply(client, "subscribed", op->topic);
    hs_free(op);
}

/* The subscription is stored. It joins the index whether or not the client
 * is still on the same attach (a resume restores stored subscriptions);
 * only the answer needs the same attach. */
static void client_subscribed_cb(int status, uint64_t created_ms, void *data)
{
    (void)created_ms;
    client_op_t *op = data;
    hs_notifier_t *n = op->ref.notifier;
    bool same;
    client_t *client = hs_notifier__ref_client(&op->ref, &same);
    /* Gone: its remove_connection was queued after this write and removed
     * the row; replaced: the new copy read the row from the store. */
    if (client == NULL)
        goto out;
    client->pending_subs--;
    if (status != 0 && status != HS_EEXIST) {
        hs_log_error("notifier: conn %s: storing a subscription failed: %s", client->id,
                     hs_strerror(status));
        if (same)
            hs_notifier__client_error(client, "internal",
                                      "the subscription could not be stored; retry later");
        goto out;
    }
    if (hs_notifier__subscribe(n, client, op->topic) != 0) {
        if (status == 0)
            hs_store_remove_subscription(n->store, client->id, op->topic, NULL, NULL);
        if (same)
            hs_notifier__client_error(client, "too_many_subscriptions",
                                      "this connection has reached its limit of subscriptions");
        goto out;
    }
    /* Answered once the topic's baseline is known here: every message
     * committed after the answer is above it (docs/scaling.md, "Live
     * order"). */
    topic_t *topic = hs_map_get(&n->topics, op->topic, strlen(op->topic));
    if (topic && !hs_notifier__when_known(n, topic, baseline_known_cb, op))
        return;
    if (same)
        hs_notifier__client_topic_reply(client, "subscribed", op->topic);
out:
    hs_free(op);
}

static void client_unsubscribed_cb(int status, size_t count, void *data)
{
    (void)count;
    client_op_t *op = data;
    bool same;
    client_t *client = hs_notifier__ref_client(&op->ref, &same);
    if (client && same && status != 0)
        hs_notifier__client_error(client, "internal",
                                  "the subscription could not be removed; retry later");
    else if (client && same)
        hs_notifier__client_topic_reply(client, "unsubscribed", op->topic);
    hs_free(op);
}

/* {"type":"subscribe"|"unsubscribe","topic":…}, its turn come: like the
 * API's, stored in the store, listed, removed with the connection. */
static void client_topic_apply(hs_notifier_t *n, client_t *client, bool on, const char *topic)
{
    if (!on) {
        hs_notifier__unsubscribe(n, client, topic); /* pushes stop now */
        hs_store_remove_subscription(n->store, client->id, topic, client_unsubscribed_cb,
                                     client_op_new(client, topic));
        return;
    }
    if (!hs_notifier__may_subscribe(n, client, topic)) {
        hs_notifier__client_error(client, "forbidden",
                                  n->verifier
                                      ? "your token does not grant this topic"
                                      : "subscribing from the client needs a token on this server");
        return;
    }
    if (hs_notifier__subscribed_to(client, topic)) {
        hs_notifier__client_topic_reply(client, "subscribed", topic);
        return;
    }
    if (client->sub_count + client->pending_subs >= n->cfg->max_subscriptions) {
        hs_notifier__client_error(client, "too_many_subscriptions",
                                  "this connection has reached its limit of subscriptions");
        return;
    }
    client->pending_subs++;
    hs_store_add_subscription(n->store, client->id, topic, hs_now_ms(), client_subscribed_cb,
                              client_op_new(client, topic));
}

/* A subscribe or unsubscribe message waiting for the node's barrier. */
typedef struct topic_message {
    client_op_t op;
    bool on;
} topic_message_t;

static void barrier_passed_cb(int status, void *data)
{
    topic_message_t *m = data;
    bool same;
    client_t *client = hs_notifier__ref_client(&m->op.ref, &same);
    if (client && same && hs_notifier__client_attached(client)) {
        if (status != 0)
            hs_notifier__client_error(client, "internal",
                                      m->on ? "the subscription could not be stored; retry later"
                                            : "the subscription could not be removed; retry later");
        else
            client_topic_apply(m->op.ref.notifier, client, m->on, m->op.topic);
    }
    hs_free(m);
}

/* On a bus that answers a command to this node before the node applied it
 * (Redis), the message waits until every command appended before it is
 * applied: an API subscribe answered before this unsubscribe is not
 * applied after it (hs_bus_node_barrier). */
static void client_topic_message(hs_notifier_t *n, client_t *client, bool on, json_t *topic_json)
{
    const char *topic = json_string_value(topic_json);
    if (topic == NULL || !hs_topic_valid(topic, json_string_length(topic_json))) {
        hs_notifier__client_error(client, "invalid_topic",
                                  "'topic' must be 1-128 characters of A-Z a-z 0-9 . _ : -");
        return;
    }
    topic_message_t *m = hs_calloc(1, sizeof(*m));
    hs_notifier__client_ref_init(&m->op.ref, client);
    snprintf(m->op.topic, sizeof(m->op.topic), "%s", topic);
    m->on = on;
    if (!hs_bus_node_barrier(n->bus, barrier_passed_cb, m)) {
        hs_free(m);
        client_topic_apply(n, client, on, topic);
    }
}

/* {"type":"refresh","token":…}: a newer token of the same user replaces the
 * current one (its topics too) before the current one expires. */
static void client_refresh(hs_notifier_t *n, client_t *client, json_t *token_json)
{
    if (n->verifier == NULL) {
        hs_notifier__client_error(client, "bad_message", "this server does not use tokens");
        return;
    }
    const char *token = json_string_value(token_json);
    if (token == NULL) {
        hs_notifier__client_error(client, "bad_message", "'token' must be a string");
        return;
    }
    hs_token_claims_t claims;
    char reason[160];
    if (hs_token_verify(n->verifier, token, json_string_length(token_json),
                        (int64_t)(hs_now_ms() / 1000), &claims, reason, sizeof(reason)) != 0) {
        hs_notifier__client_error(client, "invalid_token", reason);
        return;
    }
    const hs_token_claims_t *held = hs_notifier__claims(client);
    if (strcmp(claims.sub, held->sub) != 0) {
        hs_token_claims_dispose(&claims);
        hs_notifier__client_error(client, "invalid_token",
                                  "the new token is for another user (sub)");
        return;
    }
    if (held->has_exp && claims.has_exp && claims.exp < held->exp) {
        hs_token_claims_dispose(&claims);
        hs_notifier__client_error(client, "invalid_token",
                                  "the new token expires before the current one");
        return;
    }
    bool has_exp = claims.has_exp;
    int64_t exp = claims.exp;
    hs_notifier__set_claims(client, &claims);
    hs_notifier__arm_expiry(n, client);
    hs_notifier__client_send_json(client, "refreshed",
                                  json_pack("{s:s, s:o}", "type", "refreshed", "exp",
                                            has_exp ? json_integer(exp) : json_null()));
}

/* {"type":"ack","id":…}: remembers the highest id; written to the store in
 * batches (ack_timer_cb). No answer. */
static void client_ack(client_t *client, json_t *id_json)
{
    char id[HS_ULID_LEN + 1];
    const char *text = json_string_value(id_json);
    if (text == NULL || hs_ulid_canonical(text, json_string_length(id_json), id) != 0) {
        hs_notifier__client_error(client, "bad_message", "'id' must be a message id");
        return;
    }
    hs_ulid_t ack;
    if (hs_ulid_parse(id, HS_ULID_LEN, &ack) != 0)
        return; /* canonical already: cannot be */
    if (!client->has_ack || hs_ulid_cmp(&ack, &client->last_ack) > 0) {
        client->last_ack = ack;
        client->has_ack = true;
        client->ack_dirty = true;
    }
}

/* A message from an attached client (a transport the client can send on
 * reports it). */
void hs_notifier__client_message(client_t *client, bool binary, const char *data, size_t len)
{
    hs_notifier_t *n = client->notifier;
    json_t *obj = NULL;
    const char *type = NULL;
    if (!binary) {
        json_error_t jerr;
        obj = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
        type = json_string_value(json_object_get(obj, "type"));
    }
    /* Acks are not counted against --client-message-rate: a client acks
     * what it is sent, and one costs a comparison. */
    if (type && strcmp(type, "ack") == 0) {
        client_ack(client, json_object_get(obj, "id"));
        json_decref(obj);
        return;
    }
    if (!hs_notifier__message_admitted(n, client)) {
        json_decref(obj);
        return;
    }
    if (type && strcmp(type, "subscribe") == 0)
        client_topic_message(n, client, true, json_object_get(obj, "topic"));
    else if (type && strcmp(type, "unsubscribe") == 0)
        client_topic_message(n, client, false, json_object_get(obj, "topic"));
    else if (type && strcmp(type, "refresh") == 0)
        client_refresh(n, client, json_object_get(obj, "token"));
    else {
        hs_log_debug("notifier: conn %s sent a %s message of %zu bytes that is not a "
                     "subscribe, unsubscribe, refresh or ack",
                     client->id, binary ? "binary" : "text", len);
        hs_notifier__client_error(
            client, "unsupported",
            "this server accepts only subscribe, unsubscribe, refresh and ack messages "
            "from clients");
    }
    json_decref(obj);
}
