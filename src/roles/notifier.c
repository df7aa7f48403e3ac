#include "roles/notifier.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "core/map.h"
#include "core/metrics.h"
#include "core/ulid.h"
#include "http/server.h"
#include "roles/console.h"
#include "roles/decode.h"
#include "roles/dedupe.h"
#include "roles/health.h"
#include "roles/render.h"
#include "roles/token.h"
#include "ws/codec.h"
#include "ws/handshake.h"
#include "ws/session.h"

typedef struct topic topic_t;
typedef struct client client_t;

/* One subscription: on its topic's doubly-linked list (fan-out walks it, a
 * removal is O(1)) and on its client's singly-linked list (walked only when
 * the client unsubscribes or leaves). */
typedef struct sub {
    struct sub *topic_prev, *topic_next;
    struct sub *client_next;
    client_t *client;
    topic_t *topic;
} sub_t;

struct topic {
    sub_t *head;
    size_t count;
    char name[];
};

typedef struct ip_entry ip_entry_t;

/* Closes a client when its token expires. Allocated apart from the client
 * and freed in its close callback, so the client may go at once. */
typedef struct expiry {
    uv_timer_t timer;
    client_t *client; /* NULL once the client is gone */
} expiry_t;

struct client {
    hs_notifier_t *notifier;
    hs_ws_session_t *ws;
    sub_t *subs;
    unsigned sub_count;
    unsigned pending_subs; /* client-side subscribes waiting for the store */
    uint64_t connected_ms;
    hs_token_claims_t claims; /* sub (the user) and the granted topics; empty without tokens */
    expiry_t *expiry;         /* when the token has "exp" */
    ip_entry_t *ip;           /* its address's counters (per-IP limits) */
    double msg_tokens;        /* inbound message bucket (--client-message-rate) */
    uint64_t msg_refill_ms;
    unsigned msg_strikes; /* messages refused in a row */
    char id[HS_ULID_LEN + 1];
};

/* Per-IP counters of the WebSocket port: connections open now and a token
 * bucket of upgrades (--max-connections-per-ip, --connect-rate). */
struct ip_entry {
    size_t conns;
    double tokens;
    uint64_t refill_ms;
    char ip[];
};

struct hs_notifier {
    hs_net_t *net;
    hs_store_t *store;
    hs_bus_t *bus;
    const hs_config_t *cfg;
    char *node_id;
    hs_router_t *router;
    hs_http_server_t *http;
    hs_ws_config_t ws_config;
    hs_map_t clients;       /* connection id -> client_t */
    uint64_t subscriptions; /* in the index, all clients */
    hs_health_t *health;
    hs_map_t topics;                     /* topic -> topic_t */
    hs_dedupe_t *dedupe;                 /* ids delivered lately, where the bus redelivers */
    const hs_token_verifier_t *verifier; /* client tokens; NULL: none needed */
    bool open_subscribe;                 /* client-side subscribes to any topic without tokens */
    hs_map_t ips;                        /* peer IP -> ip_entry_t */
    size_t ips_sweep_at;                 /* sweep idle entries when the map reaches this */
    /* shutdown */
    int shutting_down;
    int http_done;
    void (*shutdown_cb)(void *data);
    void *shutdown_data;
};

/* ---- the index ------------------------------------------------------- */

static int subscribe(hs_notifier_t *n, client_t *client, const char *name)
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
        hs_free(topic);
    }
    hs_free(s);
}

/* Removes the client's subscription to name, or all of them when NULL. */
static void unsubscribe(hs_notifier_t *n, client_t *client, const char *name)
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

static client_t *find_client(hs_notifier_t *n, const char *id)
{
    return id ? hs_map_get(&n->clients, id, strlen(id)) : NULL;
}

/* ---- fan-out --------------------------------------------------------- */

static void deliver(hs_notifier_t *n, const hs_node_cmd_t *cmd)
{
    topic_t *topic = cmd->topic ? hs_map_get(&n->topics, cmd->topic, strlen(cmd->topic)) : NULL;
    if (topic == NULL)
        return;
    /* At-least-once below, at-most-once per connection here: a message
     * handed over again is not delivered again. */
    if (n->dedupe && cmd->message_id && hs_dedupe_seen(n->dedupe, cmd->message_id)) {
        hs_metrics_singleton.duplicates_dropped++;
        return;
    }
    /* One frame for every recipient; each queue takes a reference. A send
     * that overflows a slow client's queue closes that client later (never
     * inside this walk), so the list stays valid. */
    hs_buf_t *frame = hs_ws_frame_new(HS_WS_OP_TEXT, cmd->frame_text, cmd->frame_text_len);
    hs_metrics_t *m = &hs_metrics_singleton;
    for (sub_t *s = topic->head; s; s = s->topic_next) {
        int rc = hs_ws_send(s->client->ws, frame);
        if (rc == 0)
            m->deliveries++;
        else if (rc == HS_ETOOBIG)
            m->slow_disconnects++;
    }
    hs_buf_unref(frame);
    /* The id's time is the message's creation (wall clock, milliseconds). */
    hs_ulid_t id;
    if (cmd->message_id && hs_ulid_parse(cmd->message_id, strlen(cmd->message_id), &id) == 0) {
        uint64_t created = hs_ulid_time_ms(&id), now = hs_now_ms();
        hs_histogram_observe(&m->publish_to_socket, now > created ? (now - created) / 1e3 : 0);
    }
}

static int notify(hs_notifier_t *n, const char *connection_id, const char *text, size_t len)
{
    client_t *client = find_client(n, connection_id);
    if (client == NULL)
        return HS_ENOTFOUND;
    switch (hs_ws_send_text(client->ws, text, len)) {
    case 0:
        hs_metrics_singleton.notifications++;
        break;
    case HS_ETOOBIG:
        hs_metrics_singleton.slow_disconnects++;
        break;
    }
    return 0;
}

/* The prototype's forwarder-channel: {"connectionID":…,"payload":…}, heard
 * by every node; the one holding the connection delivers the payload as a
 * notification. */
static int forward(hs_notifier_t *n, const hs_node_cmd_t *cmd)
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
        rc = notify(n, in.connection_id, in.payload, in.payload_len);
    json_decref(obj);
    return rc;
}

static int handle_command(const hs_node_cmd_t *cmd, void *data)
{
    hs_notifier_t *n = data;
    client_t *client;
    switch (cmd->kind) {
    case HS_NODE_DELIVER:
        deliver(n, cmd);
        return 0;
    case HS_NODE_NOTIFY:
        return notify(n, cmd->connection_id, cmd->frame_text, cmd->frame_text_len);
    case HS_NODE_FORWARD:
        return forward(n, cmd);
    case HS_NODE_SUBSCRIBE: {
        client = find_client(n, cmd->connection_id);
        int rc = client ? subscribe(n, client, cmd->topic) : HS_ENOTFOUND;
        if (rc != 0) /* refused, or the connection is gone: the stored row goes too */
            hs_store_remove_subscription(n->store, cmd->connection_id, cmd->topic, NULL, NULL);
        return rc;
    }
    case HS_NODE_UNSUBSCRIBE:
        client = find_client(n, cmd->connection_id);
        if (client == NULL)
            return HS_ENOTFOUND;
        unsubscribe(n, client, cmd->topic);
        return 0;
    case HS_NODE_DISCONNECT:
        client = find_client(n, cmd->connection_id);
        if (client == NULL)
            return HS_ENOTFOUND;
        hs_log_info("notifier: conn %s disconnected by the API", client->id);
        hs_ws_close(client->ws, 4000, "disconnected by server");
        return 0;
    }
    return HS_EINVAL;
}

/* ---- connections ----------------------------------------------------- */

static void store_write_cb(int status, void *data)
{
    if (status != 0)
        hs_log_error("notifier: storing connection state failed: %s", hs_strerror(status));
    (void)data;
}

static void maybe_finish_shutdown(hs_notifier_t *n)
{
    if (n->shutting_down && n->http_done && hs_map_count(&n->clients) == 0 && n->shutdown_cb) {
        void (*cb)(void *) = n->shutdown_cb;
        n->shutdown_cb = NULL;
        cb(n->shutdown_data);
    }
}

/* ---- per-IP limits ----------------------------------------------------- */

/* The address of "ip:port" or "[v6]:port", without the port. */
static void peer_ip(const char *peer, char *out, size_t out_len)
{
    const char *start = peer, *end = strrchr(peer, ':');
    if (peer[0] == '[') {
        start = peer + 1;
        end = strchr(peer, ']');
    }
    size_t len = end ? (size_t)(end - start) : strlen(start);
    if (len >= out_len)
        len = out_len - 1;
    memcpy(out, start, len);
    out[len] = '\0';
}

static void refill(double *tokens, uint64_t *last_ms, uint64_t now, double rate, double burst)
{
    if (now > *last_ms) {
        *tokens += (double)(now - *last_ms) * rate / 1000.0;
        if (*tokens > burst)
            *tokens = burst;
        *last_ms = now;
    }
}

/* Drops entries with no connection whose bucket is full again: they hold
 * nothing a new entry would not. Runs when the map doubled since the last
 * sweep, so its cost is amortised over the insertions. */
static void sweep_ips(hs_notifier_t *n, uint64_t now)
{
    double rate = (double)n->cfg->connect_rate, burst = 2 * rate;
    size_t count = hs_map_count(&n->ips), idle = 0, pos = 0;
    ip_entry_t **drop = hs_calloc(count ? count : 1, sizeof(*drop));
    ip_entry_t *e;
    while ((e = hs_map_next(&n->ips, &pos)) != NULL) {
        refill(&e->tokens, &e->refill_ms, now, rate, burst);
        if (e->conns == 0 && (rate == 0 || e->tokens >= burst))
            drop[idle++] = e;
    }
    for (size_t i = 0; i < idle; i++) {
        hs_map_remove(&n->ips, drop[i]->ip, strlen(drop[i]->ip));
        hs_free(drop[i]);
    }
    hs_free(drop);
    n->ips_sweep_at = 2 * hs_map_count(&n->ips) + 1024;
}

/* Counts an upgrade attempt from ip. Returns NULL when it may go on, else
 * the reason for a 429. */
static const char *ip_admit(hs_notifier_t *n, const char *ip, ip_entry_t **out)
{
    uint64_t now = uv_now(hs_net_loop(n->net));
    size_t len = strlen(ip);
    ip_entry_t *e = hs_map_get(&n->ips, ip, len);
    double rate = (double)n->cfg->connect_rate, burst = 2 * rate;
    if (e == NULL) {
        if (hs_map_count(&n->ips) >= n->ips_sweep_at)
            sweep_ips(n, now);
        e = hs_calloc(1, sizeof(*e) + len + 1);
        memcpy(e->ip, ip, len + 1);
        e->tokens = burst;
        e->refill_ms = now;
        hs_map_put(&n->ips, e->ip, len, e);
    }
    *out = e;
    if (rate > 0) {
        refill(&e->tokens, &e->refill_ms, now, rate, burst);
        if (e->tokens < 1.0)
            return "too many connection attempts from this address; slow down";
        e->tokens -= 1.0;
    }
    if (n->cfg->max_conns_per_ip > 0 && e->conns >= n->cfg->max_conns_per_ip)
        return "too many connections from this address";
    return NULL;
}

/* ---- client messages --------------------------------------------------- */

static void send_error(hs_ws_session_t *ws, const char *code, const char *message)
{
    hs_buf_t *frame = hs_render_error_frame(code, message);
    hs_ws_send(ws, frame);
    hs_buf_unref(frame);
}

static void send_json(hs_ws_session_t *ws, json_t *json)
{
    size_t len;
    char *text = hs_render_text(json, &len);
    json_decref(json);
    hs_ws_send_text(ws, text, len);
    free(text);
}

static void send_topic_reply(hs_ws_session_t *ws, const char *type, const char *topic)
{
    send_json(ws, json_pack("{s:s, s:s}", "type", type, "topic", topic));
}

/* A client-side operation waiting for the store; the client may be gone
 * when it completes, so it is found again by id. */
typedef struct client_op {
    hs_notifier_t *notifier;
    char id[HS_ULID_LEN + 1];
    char topic[HS_TOPIC_MAX + 1];
} client_op_t;

static client_op_t *client_op_new(client_t *client, const char *topic)
{
    client_op_t *op = hs_calloc(1, sizeof(*op));
    op->notifier = client->notifier;
    memcpy(op->id, client->id, sizeof(op->id));
    snprintf(op->topic, sizeof(op->topic), "%s", topic);
    return op;
}

static void client_subscribed_cb(int status, uint64_t created_ms, void *data)
{
    (void)created_ms;
    client_op_t *op = data;
    hs_notifier_t *n = op->notifier;
    client_t *client = find_client(n, op->id);
    /* Gone: its remove_connection was queued after this write and removed
     * the row. */
    if (client == NULL)
        goto out;
    client->pending_subs--;
    if (status != 0 && status != HS_EEXIST) {
        hs_log_error("notifier: conn %s: storing a subscription failed: %s", client->id,
                     hs_strerror(status));
        send_error(client->ws, "internal", "the subscription could not be stored; retry later");
        goto out;
    }
    if (subscribe(n, client, op->topic) != 0) {
        if (status == 0)
            hs_store_remove_subscription(n->store, client->id, op->topic, NULL, NULL);
        send_error(client->ws, "too_many_subscriptions",
                   "this connection has reached its limit of subscriptions");
        goto out;
    }
    send_topic_reply(client->ws, "subscribed", op->topic);
out:
    hs_free(op);
}

static void client_unsubscribed_cb(int status, size_t count, void *data)
{
    (void)count;
    client_op_t *op = data;
    client_t *client = find_client(op->notifier, op->id);
    if (client && status != 0)
        send_error(client->ws, "internal", "the subscription could not be removed; retry later");
    else if (client)
        send_topic_reply(client->ws, "unsubscribed", op->topic);
    hs_free(op);
}

static bool may_subscribe(const hs_notifier_t *n, const client_t *client, const char *topic)
{
    if (n->verifier)
        return hs_token_grants(&client->claims, topic);
    return n->open_subscribe;
}

static bool subscribed_to(const client_t *client, const char *topic)
{
    for (sub_t *s = client->subs; s; s = s->client_next)
        if (strcmp(s->topic->name, topic) == 0)
            return true;
    return false;
}

/* {"type":"subscribe"|"unsubscribe","topic":…}: like the API's, stored in
 * the store, listed, removed with the connection. */
static void client_topic_message(hs_notifier_t *n, client_t *client, bool on, json_t *topic_json)
{
    const char *topic = json_string_value(topic_json);
    if (topic == NULL || !hs_topic_valid(topic, json_string_length(topic_json))) {
        send_error(client->ws, "invalid_topic",
                   "'topic' must be 1-128 characters of A-Z a-z 0-9 . _ : -");
        return;
    }
    if (!on) {
        unsubscribe(n, client, topic); /* pushes stop now */
        hs_store_remove_subscription(n->store, client->id, topic, client_unsubscribed_cb,
                                     client_op_new(client, topic));
        return;
    }
    if (!may_subscribe(n, client, topic)) {
        send_error(client->ws, "forbidden",
                   n->verifier ? "your token does not grant this topic"
                               : "subscribing from the client needs a token on this server");
        return;
    }
    if (subscribed_to(client, topic)) {
        send_topic_reply(client->ws, "subscribed", topic);
        return;
    }
    if (client->sub_count + client->pending_subs >= n->cfg->max_subscriptions) {
        send_error(client->ws, "too_many_subscriptions",
                   "this connection has reached its limit of subscriptions");
        return;
    }
    client->pending_subs++;
    hs_store_add_subscription(n->store, client->id, topic, hs_now_ms(), client_subscribed_cb,
                              client_op_new(client, topic));
}

static void expiry_closed_cb(uv_handle_t *handle)
{
    hs_free(handle->data);
}

static void expiry_cb(uv_timer_t *timer)
{
    expiry_t *e = timer->data;
    if (e->client) {
        hs_log_info("notifier: conn %s: token expired", e->client->id);
        hs_ws_close(e->client->ws, 4001, "token expired");
    }
}

/* Closes the client at its token's "exp" (wall clock, seconds). */
static void arm_expiry(hs_notifier_t *n, client_t *client)
{
    if (!client->claims.has_exp) {
        if (client->expiry)
            uv_timer_stop(&client->expiry->timer);
        return;
    }
    if (client->expiry == NULL) {
        client->expiry = hs_calloc(1, sizeof(*client->expiry));
        client->expiry->client = client;
        uv_timer_init(hs_net_loop(n->net), &client->expiry->timer);
        client->expiry->timer.data = client->expiry;
    }
    int64_t now_ms = (int64_t)hs_now_ms(), at_ms = client->claims.exp * 1000;
    uv_timer_start(&client->expiry->timer, expiry_cb,
                   at_ms > now_ms ? (uint64_t)(at_ms - now_ms) : 0, 0);
}

/* {"type":"refresh","token":…}: a newer token of the same user replaces the
 * current one (its topics too) before the current one expires. */
static void client_refresh(hs_notifier_t *n, client_t *client, json_t *token_json)
{
    if (n->verifier == NULL) {
        send_error(client->ws, "bad_message", "this server does not use tokens");
        return;
    }
    const char *token = json_string_value(token_json);
    if (token == NULL) {
        send_error(client->ws, "bad_message", "'token' must be a string");
        return;
    }
    hs_token_claims_t claims;
    char reason[160];
    if (hs_token_verify(n->verifier, token, json_string_length(token_json),
                        (int64_t)(hs_now_ms() / 1000), &claims, reason, sizeof(reason)) != 0) {
        send_error(client->ws, "invalid_token", reason);
        return;
    }
    if (strcmp(claims.sub, client->claims.sub) != 0) {
        hs_token_claims_dispose(&claims);
        send_error(client->ws, "invalid_token", "the new token is for another user (sub)");
        return;
    }
    if (client->claims.has_exp && claims.has_exp && claims.exp < client->claims.exp) {
        hs_token_claims_dispose(&claims);
        send_error(client->ws, "invalid_token", "the new token expires before the current one");
        return;
    }
    hs_token_claims_dispose(&client->claims);
    client->claims = claims;
    arm_expiry(n, client);
    send_json(client->ws, json_pack("{s:s, s:o}", "type", "refreshed", "exp",
                                    claims.has_exp ? json_integer(claims.exp) : json_null()));
}

/* Whether the client may send one more message now (--client-message-rate);
 * answers or closes it when not. */
static bool message_admitted(hs_notifier_t *n, client_t *client)
{
    double rate = (double)n->cfg->client_message_rate, burst = 2 * rate;
    if (rate <= 0)
        return true;
    refill(&client->msg_tokens, &client->msg_refill_ms, uv_now(hs_net_loop(n->net)), rate, burst);
    if (client->msg_tokens >= 1.0) {
        client->msg_tokens -= 1.0;
        client->msg_strikes = 0;
        return true;
    }
    hs_metrics_singleton.limit_refusals++;
    if (++client->msg_strikes > burst) {
        hs_log_info("notifier: conn %s keeps sending too fast: closing with 1008", client->id);
        hs_ws_close(client->ws, 1008, "too many messages");
    } else {
        send_error(client->ws, "rate_limited", "too many messages; slow down");
    }
    return false;
}

static void ws_message_cb(hs_ws_session_t *ws, bool binary, const char *data, size_t len)
{
    client_t *client = hs_ws_data(ws);
    hs_notifier_t *n = client->notifier;
    if (!message_admitted(n, client))
        return;
    json_t *obj = NULL;
    const char *type = NULL;
    if (!binary) {
        json_error_t jerr;
        obj = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
        type = json_string_value(json_object_get(obj, "type"));
    }
    if (type && strcmp(type, "subscribe") == 0)
        client_topic_message(n, client, true, json_object_get(obj, "topic"));
    else if (type && strcmp(type, "unsubscribe") == 0)
        client_topic_message(n, client, false, json_object_get(obj, "topic"));
    else if (type && strcmp(type, "refresh") == 0)
        client_refresh(n, client, json_object_get(obj, "token"));
    else {
        hs_log_debug("notifier: conn %s sent a %s message of %zu bytes that is not a "
                     "subscribe, unsubscribe or refresh",
                     client->id, binary ? "binary" : "text", len);
        send_error(ws, "unsupported",
                   "this server accepts only subscribe, unsubscribe and refresh messages from "
                   "clients");
    }
    json_decref(obj);
}

static void ws_close_cb(hs_ws_session_t *ws, uint16_t code, bool clean)
{
    client_t *client = hs_ws_data(ws);
    hs_notifier_t *n = client->notifier;
    hs_log_info("notifier: conn %s closed (code %u, %s)", client->id, code,
                clean ? "clean" : "unclean");
    /* Every side cleans up: the in-memory index, the directory, the store. */
    unsubscribe(n, client, NULL);
    hs_map_remove(&n->clients, client->id, strlen(client->id));
    hs_bus_unregister_connection(n->bus, n->node_id, client->id);
    hs_store_remove_connection(n->store, client->id, store_write_cb, NULL);
    if (client->expiry) {
        client->expiry->client = NULL;
        uv_close((uv_handle_t *)&client->expiry->timer, expiry_closed_cb);
    }
    if (client->ip)
        client->ip->conns--;
    hs_token_claims_dispose(&client->claims);
    hs_free(client);
    maybe_finish_shutdown(n);
}

static const hs_ws_callbacks_t ws_callbacks = {
    .on_message = ws_message_cb,
    .on_close = ws_close_cb,
};

/* Whether the handshake's Origin is allowed: any when no list is set, and
 * any request without Origin (not a browser). */
static bool origin_allowed(const hs_notifier_t *n, hs_http_request_t *req)
{
    const char *list = n->cfg->allowed_origins;
    size_t len;
    const char *origin = hs_http_header(req, "origin", &len);
    if (list == NULL || list[0] == '\0' || origin == NULL)
        return true;
    (void)len; /* header values are NUL-terminated */
    return hs_ws_header_has_token(list, strlen(list), origin);
}

typedef struct registration {
    hs_notifier_t *notifier;
    char id[HS_ULID_LEN + 1];
} registration_t;

static void registered_cb(int status, void *data)
{
    registration_t *reg = data;
    client_t *client = find_client(reg->notifier, reg->id);
    if (status != 0)
        hs_log_warn("notifier: conn %s: the directory is unreachable (%s); it is registered "
                    "again when the bus is back",
                    reg->id, hs_strerror(status));
    if (client) { /* still connected */
        hs_buf_t *frame = hs_render_connected_frame(client->id);
        hs_ws_send(client->ws, frame);
        hs_buf_unref(frame);
    }
    hs_free(reg);
}

/* The token of an upgrade: ?token=… or "Authorization: Bearer …". */
static const char *request_token(hs_http_request_t *req, size_t *len)
{
    const char *token = hs_http_query(req, "token");
    if (token) {
        *len = strlen(token);
        return token;
    }
    size_t n = 0;
    const char *value = hs_http_header(req, "authorization", &n);
    if (value && n > 7 && strncasecmp(value, "Bearer ", 7) == 0) {
        *len = n - 7;
        return value + 7;
    }
    return NULL;
}

static void ws_route(hs_http_request_t *req, void *ctx)
{
    hs_notifier_t *n = ctx;
    if (n->shutting_down) {
        hs_http_respond_error(req, 503, "unavailable", "server is shutting down");
        return;
    }
    if (!origin_allowed(n, req)) {
        hs_http_respond_error(req, 403, "origin_not_allowed",
                              "this Origin may not open a WebSocket here");
        return;
    }
    hs_conn_t *conn = hs_http_request_conn(req);
    char ip[64] = "";
    if (conn)
        peer_ip(hs_conn_peer(conn), ip, sizeof(ip));
    ip_entry_t *ip_entry;
    const char *refusal = ip_admit(n, ip, &ip_entry);
    if (refusal) {
        hs_metrics_singleton.limit_refusals++;
        hs_log_info("notifier: upgrade from %s refused: %s", ip, refusal);
        hs_http_respond_error_with(req, 429, "too_many_requests", "Retry-After: 1\r\n", "%s",
                                   refusal);
        return;
    }
    if (hs_map_count(&n->clients) >= n->cfg->max_connections) {
        hs_log_warn("notifier: %llu connections: refusing more",
                    (unsigned long long)n->cfg->max_connections);
        hs_metrics_singleton.limit_refusals++;
        hs_http_respond_error(req, 503, "unavailable", "too many connections; try again later");
        return;
    }
    hs_token_claims_t claims = {0};
    if (n->verifier) {
        size_t token_len = 0;
        const char *token = request_token(req, &token_len);
        char reason[160];
        if (token == NULL) {
            hs_http_respond_error_with(req, 401, "unauthorized", "WWW-Authenticate: Bearer\r\n",
                                       "a token is required (?token= or Authorization: Bearer)");
            return;
        }
        if (hs_token_verify(n->verifier, token, token_len, (int64_t)(hs_now_ms() / 1000), &claims,
                            reason, sizeof(reason)) != 0) {
            hs_log_info("notifier: upgrade from %s refused: %s", ip, reason);
            hs_http_respond_error_with(req, 401, "unauthorized",
                                       "WWW-Authenticate: Bearer error=\"invalid_token\"\r\n",
                                       "invalid token: %s", reason);
            return;
        }
    }
    hs_ws_session_t *ws = hs_ws_accept(req, &n->ws_config, &ws_callbacks, NULL);
    if (ws == NULL) {
        hs_token_claims_dispose(&claims);
        return;
    }
    client_t *client = hs_calloc(1, sizeof(*client));
    client->notifier = n;
    client->ws = ws;
    client->connected_ms = hs_now_ms();
    client->claims = claims;
    client->ip = ip_entry;
    ip_entry->conns++;
    client->msg_tokens = 2.0 * (double)n->cfg->client_message_rate;
    client->msg_refill_ms = uv_now(hs_net_loop(n->net));
    hs_ulid_t id;
    hs_ulid_new(&id);
    hs_ulid_format(&id, client->id);
    hs_ws_set_data(ws, client);
    hs_map_put(&n->clients, client->id, HS_ULID_LEN, client);
    /* The connected frame goes out once the directory knows the connection,
     * so a subscribe made as soon as the client has its id finds it. */
    registration_t *reg = hs_malloc(sizeof(*reg));
    reg->notifier = n;
    memcpy(reg->id, client->id, sizeof(reg->id));
    hs_bus_register_connection(n->bus, n->node_id, client->id, registered_cb, reg);
    hs_store_add_connection(n->store, client->id, n->node_id, client->claims.sub,
                            client->connected_ms, store_write_cb, NULL);
    arm_expiry(n, client);
    hs_log_info("notifier: conn %s connected from %s%s%s", client->id, hs_ws_peer(ws),
                client->claims.sub ? " as " : "", client->claims.sub ? client->claims.sub : "");
}

/* ---- life cycle ------------------------------------------------------ */

hs_notifier_t *hs_notifier_new(hs_net_t *net, hs_store_t *store, hs_bus_t *bus,
                               const hs_config_t *cfg, const char *node_id)
{
    hs_notifier_t *n = hs_calloc(1, sizeof(*n));
    n->net = net;
    n->store = store;
    n->bus = bus;
    n->cfg = cfg;
    n->node_id = hs_strdup(node_id);
    hs_map_init(&n->clients);
    hs_map_init(&n->topics);
    hs_map_init(&n->ips);
    n->ips_sweep_at = 1024;
    n->ws_config = (hs_ws_config_t){
        .max_message = cfg->max_ws_message,
        .ping_interval_ms = cfg->ping_interval_ms,
        .max_missed_pongs = 2,
        .max_pending = cfg->max_pending,
    };
    if (bus && hs_bus_redelivers(bus)) /* no bus: only listing the routes */
        n->dedupe = hs_dedupe_new(cfg->dedupe_window);
    n->router = hs_router_new();
    hs_router_add(n->router, HTTP_GET, "/api/v1/ws", ws_route, n);
    n->health = hs_health_add_routes(n->router, store, bus);
    hs_console_add_routes(n->router);
    hs_http_limits_t limits;
    hs_http_limits_default(&limits);
    limits.header_timeout_ms = cfg->header_timeout_ms;
    limits.idle_timeout_ms = cfg->idle_timeout_ms;
    limits.body_timeout_ms = cfg->body_timeout_ms;
    limits.max_body = 4096; /* nothing is posted to the WebSocket port */
    limits.max_requests_per_conn = (unsigned)cfg->keepalive_requests;
    n->http = hs_http_server_new(net, n->router, &limits, "notifier");
    return n;
}

static void dead_node_removed_cb(int status, size_t count, void *data)
{
    char *node = data;
    if (status != 0)
        hs_log_error("notifier: removing the connections of node %s failed: %s", node,
                     hs_strerror(status));
    else
        hs_log_info("notifier: removed %zu connections of node %s and their subscriptions", count,
                    node);
    hs_free(node);
}

/* Another notifier stopped beating: its connections are gone, and so are
 * their subscriptions in the store (the bus cleaned the directory). */
static void dead_node_cb(const char *node, void *data)
{
    hs_notifier_t *n = data;
    hs_store_remove_node(n->store, node, dead_node_removed_cb, hs_strdup(node));
}

/* The bus came back after losing Redis: its directory entries for this
 * node may be gone (a restart without persistence), so put them back. */
static void bus_reconnected_cb(void *data)
{
    hs_notifier_t *n = data;
    size_t pos = 0;
    client_t *client;
    while ((client = hs_map_next(&n->clients, &pos)) != NULL)
        hs_bus_register_connection(n->bus, n->node_id, client->id, NULL, NULL);
    pos = 0;
    topic_t *topic;
    while ((topic = hs_map_next(&n->topics, &pos)) != NULL)
        hs_bus_add_topic_node(n->bus, topic->name, n->node_id);
    hs_log_info("notifier: re-registered %zu connections and %zu topics with the bus",
                hs_map_count(&n->clients), hs_map_count(&n->topics));
}

int hs_notifier_start(hs_notifier_t *n, const char *addr)
{
    hs_bus_on_reconnect(n->bus, bus_reconnected_cb, n);
    int rc = hs_bus_serve_node(n->bus, n->node_id, handle_command, n);
    if (rc != 0)
        return rc;
    rc = hs_http_server_listen(n->http, addr);
    if (rc == 0)
        hs_bus_watch_nodes(n->bus, n->node_id, n->cfg->heartbeat_interval_ms, dead_node_cb, n);
    return rc;
}

void hs_notifier_gauges(const hs_notifier_t *n, hs_metrics_gauges_t *out)
{
    out->connections = hs_map_count(&n->clients);
    out->subscriptions = n->subscriptions;
    out->topics = hs_map_count(&n->topics);
}

void hs_notifier_set_security(hs_notifier_t *n, const hs_token_verifier_t *verifier,
                              bool open_subscribe)
{
    n->verifier = verifier;
    n->open_subscribe = open_subscribe;
}

hs_router_t *hs_notifier_router(hs_notifier_t *n)
{
    return n->router;
}

int hs_notifier_port(hs_notifier_t *n)
{
    return hs_http_server_port(n->http);
}

static void http_shutdown_cb(hs_http_server_t *server, void *data)
{
    (void)server;
    hs_notifier_t *n = data;
    n->http_done = 1;
    maybe_finish_shutdown(n);
}

void hs_notifier_shutdown(hs_notifier_t *n, void (*cb)(void *data), void *data)
{
    n->shutting_down = 1;
    n->shutdown_cb = cb;
    n->shutdown_data = data;
    hs_log_info("notifier: closing %zu connections (%llu were closed earlier for not reading)",
                hs_map_count(&n->clients),
                (unsigned long long)hs_metrics_singleton.slow_disconnects);
    size_t pos = 0;
    client_t *client;
    while ((client = hs_map_next(&n->clients, &pos)) != NULL)
        hs_ws_close(client->ws, 1001, "server shutting down");
    hs_http_server_shutdown(n->http, http_shutdown_cb, n);
}

void hs_notifier_free(hs_notifier_t *n)
{
    hs_http_server_free(n->http);
    hs_router_free(n->router);
    hs_health_free(n->health);
    hs_map_dispose(&n->clients);
    hs_map_dispose(&n->topics);
    size_t pos = 0;
    ip_entry_t *e;
    while ((e = hs_map_next(&n->ips, &pos)) != NULL)
        hs_free(e);
    hs_map_dispose(&n->ips);
    hs_dedupe_free(n->dedupe);
    hs_free(n->node_id);
    hs_free(n);
}
