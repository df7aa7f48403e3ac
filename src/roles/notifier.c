#include "roles/notifier.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <strings.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "core/map.h"
#include "core/metrics.h"
#include "core/ulid.h"
#include "http/client_addr.h"
#include "http/server.h"
#include "roles/console.h"
#include "roles/decode.h"
#include "roles/dedupe.h"
#include "roles/health.h"
#include "roles/render.h"
#include "roles/resume_token.h"
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

/* A live message held back while a resume's replay runs. */
typedef struct held {
    struct held *next;
    char id[HS_ULID_LEN + 1];
    size_t len;
    char text[]; /* the message frame's text */
} held_t;

/* A client is attached (ws or sse set), or detached: dropped without a clean
 * close, its subscriptions kept for --resume-window, delivering nothing
 * (the history holds what it misses) until a resume attaches a transport.
 *
 * Anything that completes later (a store write, a bus call, a replay, a
 * timer) finds the client again through a client_ref_t and ref_client(),
 * which says whether it is still the same client object and the same
 * attach; only the client_* senders below touch a transport, and they send
 * nothing to a detached client. */
struct client {
    hs_notifier_t *notifier;
    hs_ws_session_t *ws;  /* WebSocket transport, or NULL */
    hs_conn_t *sse;       /* SSE transport (text/event-stream), or NULL */
    uint64_t serial;      /* unique per client object on this node */
    uint64_t epoch;       /* the store's epoch of this attach (claim_connection) */
    uint64_t detached_ms; /* when its last attach dropped (a resume without a cursor) */
    expiry_t *window;     /* runs while detached: the end of the resume window */
    bool detached;
    bool replaying;            /* live messages go to held until the replay is sent */
    held_t *held, **held_tail; /* in arrival order */
    size_t held_bytes;         /* bounded by --max-pending */
    bool held_overflow;        /* more than that arrived: resume again */
    /* What the client has since its last resume and may still arrive live
     * (a bus that hands an event over again, maybe to another node): the
     * ids its replay sent (sorted) and every id at or below the cursor it
     * gave (floor, "" when none), until replayed_until_ms (wall clock ms):
     * see remember_replayed */
    char (*replayed)[HS_ULID_LEN + 1];
    size_t replayed_count;
    char floor[HS_ULID_LEN + 1];
    uint64_t replayed_until_ms;
    uint64_t attach_gen; /* unique per attach: a late answer for an older one is dropped */
    char last_ack[HS_ULID_LEN + 1]; /* highest acknowledged id, "" before any */
    bool ack_dirty;                 /* last_ack not yet written to the store */
    bool stale;                     /* commands for it may be lost: a resume rebuilds it */
    bool unbounded;                 /* sending a part of a replay or the held messages: past
                                       --max-pending (each is bounded by it already) */
    struct replay *stream;          /* a replay being sent part by part, or NULL */
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
    bool proxied;   /* relayed by a trusted proxy: never loopback */
    size_t key_len; /* the map key: ip, and for a proxied one "\0p" after it */
    char ip[];
};

/* A message of the current run of deliveries (flush_run). */
typedef struct run_msg {
    hs_buf_t *frame;     /* the WebSocket frame */
    hs_buf_t *sse_frame; /* the SSE event, built on first use */
    const char *text;    /* the frame's payload, inside frame */
    size_t len;
    char id[HS_ULID_LEN + 1];
} run_msg_t;

#define RUN_MAX 64

typedef struct run {
    topic_t *topic; /* NULL when empty */
    size_t count;
    run_msg_t msgs[RUN_MAX];
} run_t;

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
    unsigned char resume_secret[32];     /* HMAC key of resume tokens */
    size_t resume_secret_len;
    uv_timer_t *ack_timer;      /* writes changed acks once a second */
    run_t run;                  /* deliveries held until the bus ends its pass */
    uint64_t next_serial;       /* client serials and attach generations */
    struct conn_write *retries; /* connection writes to try again (conn_write) */
    client_t **ending;          /* clients to end after a fan-out walk (slow) */
    size_t ending_count, ending_cap;
    size_t ips_sweep_at; /* sweep idle entries when the map reaches this */
    /* shutdown */
    int shutting_down;
    int http_done;
    void (*shutdown_cb)(void *data);
    void *shutdown_data;
};

static const hs_conn_handler_t sse_handler;

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

/* ---- transports -------------------------------------------------------- */

static const char frame_prefix[] = "{\"type\":\"message\",\"message\":";

/* An SSE event: "event: <event>", "id: <id>" when given, one "data:" line
 * per line of data, and the blank line that ends it. */
static hs_buf_t *sse_event(const char *event, const char *id, const char *data, size_t len)
{
    hs_buf_t *buf = hs_buf_new(len + 64);
    buf = hs_buf_append(buf, "event: ", 7);
    buf = hs_buf_append(buf, event, strlen(event));
    if (id) {
        buf = hs_buf_append(buf, "\nid: ", 5);
        buf = hs_buf_append(buf, id, strlen(id));
    }
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || data[i] == '\n') {
            buf = hs_buf_append(buf, "\ndata: ", 7);
            buf = hs_buf_append(buf, data + start, i - start);
            start = i + 1;
        }
    }
    return hs_buf_append(buf, "\n\n", 2);
}

/* Queues buf on an SSE connection; a peer that does not read is closed
 * like a slow WebSocket client. */
static int sse_send(hs_conn_t *conn, hs_buf_t *buf)
{
    if (hs_conn_closing(conn))
        return HS_ECLOSED;
    int rc = hs_conn_send(conn, buf);
    if (rc == HS_ETOOBIG) {
        hs_log_warn("notifier: SSE %s does not read: %zu bytes queued; closing", hs_conn_peer(conn),
                    hs_conn_pending(conn));
        hs_conn_discard_unsent(conn);
        hs_conn_close_after_flush(conn);
    }
    return rc;
}

/* Sends one message frame (text: {"type":"message","message":{…}}) to an
 * attached client. The WebSocket frame and the SSE event are built once per
 * fan-out, on first use, into *ws_frame and *sse_frame (caller unrefs). */
static int send_message(client_t *c, const char *id, const char *text, size_t len,
                        hs_buf_t **ws_frame, hs_buf_t **sse_frame)
{
    if (c->ws) {
        if (*ws_frame == NULL)
            *ws_frame = hs_ws_frame_new(HS_WS_OP_TEXT, text, len);
        return c->unbounded ? hs_ws_send_always(c->ws, *ws_frame) : hs_ws_send(c->ws, *ws_frame);
    }
    if (c->sse) {
        if (*sse_frame == NULL) {
            size_t skip = sizeof(frame_prefix) - 1;
            bool framed = len > skip && memcmp(text, frame_prefix, skip) == 0;
            *sse_frame = framed ? sse_event("message", id, text + skip, len - skip - 1)
                                : sse_event("message", id, text, len);
        }
        return c->unbounded ? hs_conn_send_always(c->sse, *sse_frame)
                            : sse_send(c->sse, *sse_frame);
    }
    return HS_ECLOSED;
}

/* Any other frame's text: a WebSocket text frame, or an SSE event named
 * event. */
static int send_text(client_t *c, const char *event, const char *text, size_t len)
{
    if (c->ws)
        return hs_ws_send_text(c->ws, text, len);
    if (c->sse) {
        hs_buf_t *buf = sse_event(event, NULL, text, len);
        int rc = sse_send(c->sse, buf);
        hs_buf_unref(buf);
        return rc;
    }
    return HS_ECLOSED;
}

/* Drops what a resume keeps: the live messages held during its replay, and
 * the ids its replay sent. */
static void drop_held(client_t *c)
{
    while (c->held) {
        held_t *next = c->held->next;
        hs_free(c->held);
        c->held = next;
    }
    c->held_tail = &c->held;
    c->held_bytes = 0;
    hs_free(c->replayed);
    c->replayed = NULL;
    c->replayed_count = 0;
    c->floor[0] = '\0';
}

static int id_cmp(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* Whether the client has a message arriving live since its last resume: at
 * or below the cursor it gave, or sent by the replay (forgotten once
 * nothing of it can still be on its way). */
static bool has_already(client_t *c, const char *id)
{
    if (c->replayed_count == 0 && c->floor[0] == '\0')
        return false;
    if (hs_now_ms() > c->replayed_until_ms) {
        hs_free(c->replayed);
        c->replayed = NULL;
        c->replayed_count = 0;
        c->floor[0] = '\0';
        return false;
    }
    if (c->floor[0] && strcmp(id, c->floor) <= 0)
        return true;
    return c->replayed_count &&
           bsearch(id, c->replayed, c->replayed_count, sizeof(*c->replayed), id_cmp) != NULL;
}

/* Holds a live message during a replay. Past --max-pending of them the
 * held ones are dropped: the replay then ends by closing the transport so
 * that the client resumes again (the history has them). */
static void hold(client_t *c, const char *id, const char *text, size_t len)
{
    size_t max = (size_t)c->notifier->cfg->max_pending;
    if (c->held_overflow)
        return;
    if (max > 0 && c->held_bytes + len > max) {
        drop_held(c);
        c->held_overflow = true;
        return;
    }
    c->held_bytes += len;
    held_t *h = hs_malloc(sizeof(*h) + len + 1);
    h->next = NULL;
    snprintf(h->id, sizeof(h->id), "%s", id ? id : "");
    h->len = len;
    memcpy(h->text, text, len);
    h->text[len] = '\0';
    *c->held_tail = h;
    c->held_tail = &h->next;
}

/* ---- fan-out --------------------------------------------------------- */

static void end_client(hs_notifier_t *n, client_t *client, uint16_t code, const char *reason);

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
        end_client(n, c, 1008, "slow consumer: too much data queued");
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
static void flush_run(hs_notifier_t *n)
{
    run_t *run = &n->run;
    if (run->count == 0)
        return;
    topic_t *topic = run->topic;
    /* A WebSocket subscriber's queue gets the run as one entry: its one
     * frame, or a vector of its frames (written with one writev). */
    hs_buf_t *ws_buf;
    if (run->count == 1) {
        ws_buf = hs_buf_ref(run->msgs[0].frame);
    } else {
        hs_buf_t *parts[RUN_MAX];
        for (size_t i = 0; i < run->count; i++)
            parts[i] = run->msgs[i].frame;
        ws_buf = hs_buf_vector(parts, (unsigned)run->count);
    }
    unsigned reserved = (unsigned)topic->count, taken = 0;
    hs_buf_ref_n(ws_buf, reserved);
    uint64_t delivered = 0;
    for (sub_t *s = topic->head; s; s = s->topic_next) {
        client_t *c = s->client;
        if (c->detached)
            continue; /* in the history: a resume replays it */
        if (c->replaying) {
            for (size_t i = 0; i < run->count; i++)
                hold(c, run->msgs[i].id, run->msgs[i].text, run->msgs[i].len);
            continue;
        }
        if (c->ws && taken < reserved && c->replayed_count == 0 && c->floor[0] == '\0') {
            int rc = hs_ws_send_taking(c->ws, ws_buf, !c->unbounded, true);
            taken += rc == 0;
            delivered += rc == 0 ? run->count : 0;
            if (rc == HS_ETOOBIG)
                end_later(n, c);
            continue;
        }
        for (size_t i = 0; i < run->count; i++) {
            run_msg_t *msg = &run->msgs[i];
            if (has_already(c, msg->id)) {
                hs_metrics_singleton.duplicates_dropped++;
                continue;
            }
            hs_buf_t *frame = msg->frame;
            int rc = send_message(c, msg->id, msg->text, msg->len, &frame, &msg->sse_frame);
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
        hs_buf_unref(msg->frame);
        hs_buf_unref(msg->sse_frame);
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
 * Every connection therefore sees exactly the order of the commands. */
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
    run_t *run = &n->run;
    if (run->topic != topic || run->count == RUN_MAX)
        flush_run(n);
    run->topic = topic;
    run_msg_t *msg = &run->msgs[run->count++];
    msg->frame = hs_ws_frame_new(HS_WS_OP_TEXT, cmd->frame_text, cmd->frame_text_len);
    /* The text is the frame's payload: the frame's last len bytes. */
    msg->len = cmd->frame_text_len;
    msg->text = msg->frame->data + (msg->frame->len - msg->len);
    msg->sse_frame = NULL;
    snprintf(msg->id, sizeof(msg->id), "%s", cmd->message_id ? cmd->message_id : "");
}

static int notify(hs_notifier_t *n, const char *connection_id, const char *text, size_t len)
{
    client_t *client = find_client(n, connection_id);
    if (client == NULL)
        return HS_ENOTFOUND;
    if (client->detached)
        return 0; /* notifications are not kept: it misses this one */
    switch (send_text(client, "notification", text, len)) {
    case 0:
        hs_metrics_singleton.notifications++;
        break;
    case HS_ETOOBIG:
        hs_metrics_singleton.slow_disconnects++;
        end_client(n, client, 1008, "slow consumer: too much data queued");
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

static void ask_to_resume(hs_notifier_t *n, client_t *client, const char *reason);

/* Commands or events meant for this node were lost (bus.h, HS_NODE_GAP):
 * every attached connection may be short, so it is closed with 1001 and
 * detached at once, and resumes from its last id, replayed from the
 * history. Lost commands may have been subscribes or unsubscribes, so no
 * copy in memory is trusted any more: a resume rebuilds each connection
 * from its rows (stale). Runs before any command that followed the loss,
 * so no connection gets a message from after it first. */
static void stream_gap(hs_notifier_t *n, const hs_node_cmd_t *cmd)
{
    hs_metrics_singleton.stream_gaps++;
    size_t count = hs_map_count(&n->clients), closed = 0, pos = 0;
    client_t **attached = hs_calloc(count ? count : 1, sizeof(*attached));
    client_t *client;
    while ((client = hs_map_next(&n->clients, &pos)) != NULL) {
        client->stale = true;
        if (!client->detached)
            attached[closed++] = client;
    }
    for (size_t i = 0; i < closed; i++)
        ask_to_resume(n, attached[i], "resume again");
    hs_free(attached);
    hs_log_warn("notifier: gap in %s (%.*s); asked %zu connections to resume",
                cmd->topic ? cmd->topic : "a stream", (int)cmd->frame_text_len,
                cmd->frame_text ? cmd->frame_text : "", closed);
}

static int handle_command(const hs_node_cmd_t *cmd, void *data)
{
    hs_notifier_t *n = data;
    client_t *client;
    if (cmd->kind != HS_NODE_DELIVER)
        flush_run(n); /* what came before goes out before this */
    switch (cmd->kind) {
    case HS_NODE_DELIVER:
        deliver(n, cmd);
        return 0;
    case HS_NODE_BATCH_END:
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
        end_client(n, client, 4000, "disconnected by server");
        return 0;
    case HS_NODE_GAP:
        stream_gap(n, cmd);
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
        hs_map_remove(&n->ips, drop[i]->ip, drop[i]->key_len);
        hs_free(drop[i]);
    }
    hs_free(drop);
    n->ips_sweep_at = 2 * hs_map_count(&n->ips) + 1024;
}

/* Counts an upgrade attempt from ip (the client address: behind a trusted
 * proxy, the one it relays for). A proxied address has an entry of its own,
 * apart from the same address connecting directly, so that only a direct
 * one can count as loopback. Returns NULL when it may go on, else the
 * reason for a 429. */
static const char *ip_admit(hs_notifier_t *n, const char *ip, bool proxied, ip_entry_t **out)
{
    uint64_t now = uv_now(hs_net_loop(n->net));
    size_t len = strlen(ip);
    char key[HS_CLIENT_ADDR_MAX + 2];
    size_t key_len = len < HS_CLIENT_ADDR_MAX ? len : HS_CLIENT_ADDR_MAX - 1;
    memcpy(key, ip, key_len);
    key[key_len] = '\0';
    if (proxied) {
        key[key_len + 1] = 'p';
        key_len += 2;
    }
    ip_entry_t *e = hs_map_get(&n->ips, key, key_len);
    double rate = (double)n->cfg->connect_rate, burst = 2 * rate;
    if (e == NULL) {
        if (hs_map_count(&n->ips) >= n->ips_sweep_at)
            sweep_ips(n, now);
        e = hs_calloc(1, sizeof(*e) + key_len + 1);
        memcpy(e->ip, key, key_len);
        e->key_len = key_len;
        e->proxied = proxied;
        e->tokens = burst;
        e->refill_ms = now;
        hs_map_put(&n->ips, e->ip, key_len, e);
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

/* ---- answers to a client -------------------------------------------------- */

/* The one way an answer reaches a client: nothing is sent to a detached
 * client (its transport is gone), nor through a transport that is closing
 * (the session refuses it). Only WebSocket clients send messages, so only
 * they get errors. */
static void client_error(client_t *c, const char *code, const char *message)
{
    if (c->ws == NULL)
        return;
    hs_buf_t *frame = hs_render_error_frame(code, message);
    hs_ws_send(c->ws, frame);
    hs_buf_unref(frame);
}

static void client_send_json(client_t *c, const char *event, json_t *json)
{
    size_t len;
    char *text = hs_render_text(json, &len);
    json_decref(json);
    send_text(c, event, text, len);
    free(text);
}

static void client_topic_reply(client_t *c, const char *type, const char *topic)
{
    client_send_json(c, type, json_pack("{s:s, s:s}", "type", type, "topic", topic));
}

/* A client as an asynchronous completion remembers it. */
typedef struct client_ref {
    hs_notifier_t *notifier;
    char id[HS_ULID_LEN + 1];
    uint64_t serial; /* the client object */
    uint64_t gen;    /* its attach */
} client_ref_t;

static void client_ref_init(client_ref_t *ref, client_t *client)
{
    ref->notifier = client->notifier;
    memcpy(ref->id, client->id, sizeof(ref->id));
    ref->serial = client->serial;
    ref->gen = client->attach_gen;
}

/* The client ref was taken from, if it still exists (not freed, not
 * replaced by another copy of the same connection), else NULL. *same_attach
 * says whether it is still on the attach ref was taken on: only then may
 * an answer go to it. */
static client_t *ref_client(const client_ref_t *ref, bool *same_attach)
{
    client_t *client = find_client(ref->notifier, ref->id);
    if (client == NULL || client->serial != ref->serial) {
        *same_attach = false;
        return NULL;
    }
    *same_attach = !client->detached && client->attach_gen == ref->gen;
    return client;
}

/* A client-side operation waiting for the store. */
typedef struct client_op {
    client_ref_t ref;
    char topic[HS_TOPIC_MAX + 1];
} client_op_t;

static client_op_t *client_op_new(client_t *client, const char *topic)
{
    client_op_t *op = hs_calloc(1, sizeof(*op));
    client_ref_init(&op->ref, client);
    snprintf(op->topic, sizeof(op->topic), "%s", topic);
    return op;
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
    client_t *client = ref_client(&op->ref, &same);
    /* Gone: its remove_connection was queued after this write and removed
     * the row; replaced: the new copy read the row from the store. */
    if (client == NULL)
        goto out;
    client->pending_subs--;
    if (status != 0 && status != HS_EEXIST) {
        hs_log_error("notifier: conn %s: storing a subscription failed: %s", client->id,
                     hs_strerror(status));
        if (same)
            client_error(client, "internal", "the subscription could not be stored; retry later");
        goto out;
    }
    if (subscribe(n, client, op->topic) != 0) {
        if (status == 0)
            hs_store_remove_subscription(n->store, client->id, op->topic, NULL, NULL);
        if (same)
            client_error(client, "too_many_subscriptions",
                         "this connection has reached its limit of subscriptions");
        goto out;
    }
    if (same)
        client_topic_reply(client, "subscribed", op->topic);
out:
    hs_free(op);
}

static void client_unsubscribed_cb(int status, size_t count, void *data)
{
    (void)count;
    client_op_t *op = data;
    bool same;
    client_t *client = ref_client(&op->ref, &same);
    if (client && same && status != 0)
        client_error(client, "internal", "the subscription could not be removed; retry later");
    else if (client && same)
        client_topic_reply(client, "unsubscribed", op->topic);
    hs_free(op);
}

/* Whether the client connected from this machine itself: a loopback
 * address, and not relayed by a proxy (whose own address that may be). */
static bool ip_is_loopback(const ip_entry_t *e)
{
    return !e->proxied && hs_addr_is_loopback(e->ip);
}

/* With tokens, what the token grants. Without, any topic, but only in the
 * development default (API on loopback, no key) and only for a client on
 * this machine: the WebSocket port listens on every interface, and a
 * network peer must not read every topic by asking. */
static bool may_subscribe(const hs_notifier_t *n, const client_t *client, const char *topic)
{
    if (n->verifier)
        return hs_token_grants(&client->claims, topic);
    return n->open_subscribe && client->ip && ip_is_loopback(client->ip);
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
        client_error(client, "invalid_topic",
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
        client_error(client, "forbidden",
                     n->verifier ? "your token does not grant this topic"
                                 : "subscribing from the client needs a token on this server");
        return;
    }
    if (subscribed_to(client, topic)) {
        client_topic_reply(client, "subscribed", topic);
        return;
    }
    if (client->sub_count + client->pending_subs >= n->cfg->max_subscriptions) {
        client_error(client, "too_many_subscriptions",
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
        end_client(e->client->notifier, e->client, 4001, "token expired");
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
        client_error(client, "bad_message", "this server does not use tokens");
        return;
    }
    const char *token = json_string_value(token_json);
    if (token == NULL) {
        client_error(client, "bad_message", "'token' must be a string");
        return;
    }
    hs_token_claims_t claims;
    char reason[160];
    if (hs_token_verify(n->verifier, token, json_string_length(token_json),
                        (int64_t)(hs_now_ms() / 1000), &claims, reason, sizeof(reason)) != 0) {
        client_error(client, "invalid_token", reason);
        return;
    }
    if (strcmp(claims.sub, client->claims.sub) != 0) {
        hs_token_claims_dispose(&claims);
        client_error(client, "invalid_token", "the new token is for another user (sub)");
        return;
    }
    if (client->claims.has_exp && claims.has_exp && claims.exp < client->claims.exp) {
        hs_token_claims_dispose(&claims);
        client_error(client, "invalid_token", "the new token expires before the current one");
        return;
    }
    hs_token_claims_dispose(&client->claims);
    client->claims = claims;
    arm_expiry(n, client);
    client_send_json(client, "refreshed",
                     json_pack("{s:s, s:o}", "type", "refreshed", "exp",
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
        end_client(n, client, 1008, "too many messages");
    } else {
        client_error(client, "rate_limited", "too many messages; slow down");
    }
    return false;
}

/* {"type":"ack","id":…}: remembers the highest id; written to the store in
 * batches (ack_timer_cb). No answer. */
static void client_ack(client_t *client, json_t *id_json)
{
    char id[HS_ULID_LEN + 1];
    const char *text = json_string_value(id_json);
    if (text == NULL || hs_ulid_canonical(text, json_string_length(id_json), id) != 0) {
        client_error(client, "bad_message", "'id' must be a message id");
        return;
    }
    if (strcmp(id, client->last_ack) > 0) {
        memcpy(client->last_ack, id, sizeof(client->last_ack));
        client->ack_dirty = true;
    }
}

static void ws_message_cb(hs_ws_session_t *ws, bool binary, const char *data, size_t len)
{
    client_t *client = hs_ws_data(ws);
    if (client == NULL)
        return; /* the server ended it; the session only finishes its close */
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
    if (!message_admitted(n, client)) {
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
        client_error(client, "unsupported",
                     "this server accepts only subscribe, unsubscribe, refresh and ack messages "
                     "from clients");
    }
    json_decref(obj);
}

/* ---- leaving, detaching, resuming ------------------------------------ */

static void replay_free(struct replay *r);
static void client_drained(client_t *client);

/* Drops the rest of a replay being streamed (the client detached or goes). */
static void drop_stream(client_t *client)
{
    if (client->stream) {
        replay_free(client->stream);
        client->stream = NULL;
    }
}

static void stop_client_timer(expiry_t **timer)
{
    if (*timer) {
        (*timer)->client = NULL;
        uv_close((uv_handle_t *)&(*timer)->timer, expiry_closed_cb);
        *timer = NULL;
    }
}

/* Frees the client and its in-memory subscriptions; the directory and the
 * store are the caller's business. */
static void free_client(hs_notifier_t *n, client_t *client)
{
    drop_stream(client);
    unsubscribe(n, client, NULL);
    hs_map_remove(&n->clients, client->id, strlen(client->id));
    stop_client_timer(&client->expiry);
    stop_client_timer(&client->window);
    if (client->ip)
        client->ip->conns--;
    drop_held(client);
    hs_token_claims_dispose(&client->claims);
    hs_free(client);
    maybe_finish_shutdown(n);
}

/* ---- connection rows that must change even while the store is away ----- */

/* The writes that end or detach a connection row. One the store could not
 * make (unreachable) is tried again each second (ack_timer_cb) until it is
 * made or no longer applies (HS_ENOTFOUND: another attach owns the row, or
 * it is gone), for at most CONN_WRITE_TRIES tries: otherwise the row of a
 * connection that ended during an outage would stay listed for ever. Each is
 * idempotent and the epoch-guarded ones change nothing once a later attach
 * owns the row, so the order they are made in does not matter. */
typedef enum conn_write_kind { CW_REMOVE, CW_RELEASE, CW_EXPIRE } conn_write_kind_t;

static const char *const conn_write_names[] = {
    [CW_REMOVE] = "removing it",
    [CW_RELEASE] = "marking it detached",
    [CW_EXPIRE] = "removing it at the end of its window",
};

typedef struct conn_write {
    struct conn_write *next;
    hs_notifier_t *notifier;
    conn_write_kind_t kind;
    char id[HS_ULID_LEN + 1];
    uint64_t epoch, at_ms;
    unsigned tries;
} conn_write_t;

#define CONN_WRITE_TRIES 600 /* ten minutes */

static void conn_write_cb(int status, void *data);

static void conn_write_issue(conn_write_t *w)
{
    hs_store_t *store = w->notifier->store;
    w->tries++;
    switch (w->kind) {
    case CW_REMOVE:
        hs_store_remove_connection(store, w->id, conn_write_cb, w);
        break;
    case CW_RELEASE:
        hs_store_release_connection(store, w->id, w->epoch, w->at_ms, conn_write_cb, w);
        break;
    case CW_EXPIRE:
        hs_store_expire_connection(store, w->id, w->epoch, conn_write_cb, w);
        break;
    }
}

static void conn_write(hs_notifier_t *n, conn_write_kind_t kind, const char *id, uint64_t epoch,
                       uint64_t at_ms)
{
    conn_write_t *w = hs_calloc(1, sizeof(*w));
    w->notifier = n;
    w->kind = kind;
    memcpy(w->id, id, sizeof(w->id));
    w->epoch = epoch;
    w->at_ms = at_ms;
    conn_write_issue(w);
}

static void conn_write_cb(int status, void *data)
{
    conn_write_t *w = data;
    hs_notifier_t *n = w->notifier;
    if (status == HS_ENOTFOUND && w->kind != CW_REMOVE)
        hs_log_info("notifier: conn %s: %s: another attach owns the row now, or it is gone", w->id,
                    conn_write_names[w->kind]);
    if (status == 0 || status == HS_ENOTFOUND) {
        hs_free(w);
        return;
    }
    if (status == HS_ECLOSED || w->tries >= CONN_WRITE_TRIES) {
        hs_log_error("notifier: conn %s: %s failed for good: %s", w->id, conn_write_names[w->kind],
                     hs_strerror(status));
        hs_free(w);
        return;
    }
    if (w->tries == 1)
        hs_log_warn("notifier: conn %s: %s failed (%s); trying again each second", w->id,
                    conn_write_names[w->kind], hs_strerror(status));
    w->next = n->retries;
    n->retries = w;
}

static void conn_writes_retry(hs_notifier_t *n)
{
    conn_write_t *w = n->retries;
    n->retries = NULL;
    while (w) {
        conn_write_t *next = w->next;
        conn_write_issue(w);
        w = next;
    }
}

/* Removes a connection for good: the in-memory index, the directory, the
 * store (rows and subscriptions). */
static void remove_client(hs_notifier_t *n, client_t *client)
{
    if (!client->detached) /* a detached one left the directory already */
        hs_bus_unregister_connection(n->bus, n->node_id, client->id);
    conn_write(n, CW_REMOVE, client->id, 0, 0);
    free_client(n, client);
}

/* A detached connection goes from this node: its rows too, unless a resume
 * took it over since (the store compares the epoch). */
static void expire_client(hs_notifier_t *n, client_t *client)
{
    conn_write(n, CW_EXPIRE, client->id, client->epoch, 0);
    free_client(n, client);
}

/* The resume window of a detached connection ran out. */
static void window_cb(uv_timer_t *timer)
{
    expiry_t *e = timer->data;
    client_t *client = e->client;
    if (client == NULL)
        return;
    hs_log_info("notifier: conn %s: resume window over", client->id);
    expire_client(client->notifier, client);
}

static void flush_ack(hs_notifier_t *n, client_t *client)
{
    if (client->ack_dirty) {
        client->ack_dirty = false;
        hs_store_set_last_ack(n->store, client->id, client->last_ack, store_write_cb, NULL);
    }
}

/* The transport dropped without a clean close: the connection keeps its
 * subscriptions (memory and store) for --resume-window, leaves the
 * directory and is marked detached in the store, so a resume anywhere may
 * claim it. */
static void detach(hs_notifier_t *n, client_t *client)
{
    client->ws = NULL;
    client->sse = NULL;
    client->detached = true;
    client->replaying = false;
    client->held_overflow = false;
    drop_held(client);
    drop_stream(client);
    if (client->ip) {
        client->ip->conns--;
        client->ip = NULL;
    }
    stop_client_timer(&client->expiry); /* a resume presents a token again */
    flush_ack(n, client);
    hs_bus_unregister_connection(n->bus, n->node_id, client->id);
    client->detached_ms = hs_now_ms();
    conn_write(n, CW_RELEASE, client->id, client->epoch, client->detached_ms);
    client->window = hs_calloc(1, sizeof(*client->window));
    client->window->client = client;
    uv_timer_init(hs_net_loop(n->net), &client->window->timer);
    client->window->timer.data = client->window;
    uv_timer_start(&client->window->timer, window_cb, n->cfg->resume_window_ms, 0);
    hs_log_info("notifier: conn %s detached; resumable for %llu ms", client->id,
                (unsigned long long)n->cfg->resume_window_ms);
}

/* A transport ended; keep says whether it ended without a clean close. */
static void transport_ended(hs_notifier_t *n, client_t *client, bool keep)
{
    if (keep && n->cfg->resume_window_ms > 0 && !n->shutting_down)
        detach(n, client);
    else
        remove_client(n, client);
}

static void ws_close_cb(hs_ws_session_t *ws, uint16_t code, bool clean)
{
    client_t *client = hs_ws_data(ws);
    if (client == NULL)
        return; /* the server ended it already (drop_transport) */
    hs_notifier_t *n = client->notifier;
    hs_log_info("notifier: conn %s closed (code %u, %s)", client->id, code,
                clean ? "clean" : "unclean");
    /* 1001 (going away) and 1006 (no close frame: a reset, missed pongs)
     * may come back; 1000 and every close the server decided end it. */
    transport_ended(n, client, code == 1001 || code == 1006);
}

/* Takes the transport away from the client now: the session (or stream)
 * finishes its close by itself, and nothing of it reaches the client any
 * more. */
static void drop_transport(client_t *client, uint16_t code, const char *reason)
{
    if (client->ws) {
        hs_ws_set_data(client->ws, NULL);
        hs_ws_close(client->ws, code, reason);
    } else if (client->sse) {
        hs_conn_set_handler(client->sse, &sse_handler, NULL);
        hs_conn_close_after_flush(client->sse);
    }
    client->ws = NULL;
    client->sse = NULL;
}

/* Ends the client for a reason of the server's (a kick, a policy, its
 * token's expiry, a reader too slow): at once - it leaves the index, the
 * directory and the store now, not when the peer answers the close frame -
 * and for good. The client is freed: the caller must not use it, nor be
 * walking a list it is on (flush_run defers to end_slow_clients). */
static void end_client(hs_notifier_t *n, client_t *client, uint16_t code, const char *reason)
{
    drop_transport(client, code, reason);
    remove_client(n, client);
}

/* Closes the transport with 1001 so that the client resumes, and detaches
 * it at once: a resume racing the close handshake finds it resumable. */
static void ask_to_resume(hs_notifier_t *n, client_t *client, const char *reason)
{
    drop_transport(client, 1001, reason);
    transport_ended(n, client, true);
}

static void ws_drain_cb(hs_ws_session_t *ws)
{
    client_drained(hs_ws_data(ws));
}

static const hs_ws_callbacks_t ws_callbacks = {
    .on_message = ws_message_cb,
    .on_close = ws_close_cb,
    .on_drain = ws_drain_cb,
};

/* Whether the handshake's Origin may connect: none (not a browser), the
 * server's own origin (the console it serves), or one in --allowed-origins
 * (hs_http_origin_allowed). Checked before the upgrade, SSE included. */
static bool origin_allowed(const hs_notifier_t *n, hs_http_request_t *req)
{
    (void)n;
    return hs_http_origin_allowed(req);
}

/* A resume token is accepted for this long after it was issued, and only
 * while its connection is detached (the window is the real bound). */
#define RESUME_TOKEN_LIFE_MS (24ull * 3600 * 1000)

/* What an upgrade asked for (?resume=, ?lastID= or Last-Event-ID). */
typedef struct resume_ask {
    bool asked; /* ?resume= was given */
    char token[HS_RESUME_TOKEN_LEN + 1];
    bool has_last_id;
    char last_id[HS_ULID_LEN + 1];
} resume_ask_t;

/* {"type":"connected",…} for a WebSocket, the data of "event: connected"
 * for SSE. resumed is sent when asked (always on SSE). */
static void send_connected(hs_notifier_t *n, client_t *client, bool asked, bool resumed,
                           size_t replayed, const char *next)
{
    json_t *obj = json_object();
    if (client->ws)
        json_object_set_new(obj, "type", json_string("connected"));
    json_object_set_new(obj, "connectionID", json_string(client->id));
    if (n->cfg->resume_window_ms > 0) {
        char token[HS_RESUME_TOKEN_LEN + 1];
        hs_resume_token_make(n->resume_secret, n->resume_secret_len, client->id,
                             hs_now_ms() + RESUME_TOKEN_LIFE_MS, token);
        json_object_set_new(obj, "resumeToken", json_string(token));
    }
    if (asked || client->sse)
        json_object_set_new(obj, "resumed", json_boolean(resumed));
    if (resumed)
        json_object_set_new(obj, "replayed", json_integer((json_int_t)replayed));
    if (next) {
        json_object_set_new(obj, "truncated", json_true());
        json_object_set_new(obj, "next", json_string(next));
    }
    client_send_json(client, "connected", obj);
}

/* ---- replay ------------------------------------------------------------ */

/* The replay of one resume: a history query per topic, merged by id. */
typedef struct replay {
    client_ref_t ref;
    char after[HS_ULID_LEN + 1];
    unsigned limit;   /* rows asked of each topic */
    size_t max_bytes; /* bytes of content read of each topic at most */
    size_t pending;   /* queries still running */
    bool failed;
    char bound[HS_ULID_LEN + 1]; /* "" or the lowest last id of a topic that had more */
    held_t **items;              /* sorted by id once every query is back */
    size_t count, cap;
    size_t sent;        /* items[0, sent) are the replay */
    bool client_cursor; /* after is the client's (lastID or its ack), not the detach */
    size_t pos;         /* of which items[0, pos) are queued */
} replay_t;

static int held_cmp(const void *a, const void *b)
{
    return strcmp((*(held_t *const *)a)->id, (*(held_t *const *)b)->id);
}

static int held_id_cmp(const void *key, const void *item)
{
    return strcmp(key, (*(held_t *const *)item)->id);
}

/* A message committed before the replay's history read but not yet handed
 * to this node by the bus arrives live after the replay, which already sent
 * it; and a message the client had before it dropped (at or below the
 * cursor it gave) can be handed over again, to this node, by a bus that
 * took over a stopped consumer's events. The client keeps the ids its replay
 * sent and its cursor for as long as such a message can be on its way
 * (twice --claim-idle, at least 10 s: a bus redelivers an unacknowledged
 * event after --claim-idle), and only the ids created within that time
 * (items is sorted by id, which is by creation time). */
static void remember_replayed(hs_notifier_t *n, client_t *client, const char *cursor,
                              held_t *const *items, size_t count)
{
    uint64_t horizon = 2 * n->cfg->claim_idle_ms, now = hs_now_ms();
    if (horizon < 10000)
        horizon = 10000;
    client->replayed_until_ms = now + horizon;
    snprintf(client->floor, sizeof(client->floor), "%s", cursor ? cursor : "");
    size_t first = 0;
    hs_ulid_t id;
    while (first < count && hs_ulid_parse(items[first]->id, HS_ULID_LEN, &id) == 0 &&
           hs_ulid_time_ms(&id) + horizon < now)
        first++;
    if (first == count)
        return;
    client->replayed_count = count - first;
    client->replayed = hs_malloc(client->replayed_count * sizeof(*client->replayed));
    for (size_t i = first; i < count; i++)
        memcpy(client->replayed[i - first], items[i]->id, HS_ULID_LEN + 1);
    client->replayed_until_ms = now + horizon;
}

static void send_held(client_t *c, const held_t *h)
{
    hs_buf_t *frame = NULL, *sse_frame = NULL;
    send_message(c, h->id, h->text, h->len, &frame, &sse_frame);
    hs_buf_unref(frame);
    hs_buf_unref(sse_frame);
}

static void replay_free(replay_t *r)
{
    for (size_t i = 0; i < r->count; i++)
        hs_free(r->items[i]);
    hs_free(r->items);
    hs_free(r);
}

/* Whether a live message held during the resume is one the client lacks:
 * not at or below its cursor, not sent by the replay. This is decided per
 * message, not by comparing with the last replayed id: the topics' queries
 * read at different moments, so a live message of one topic may have an id
 * below the last replayed message of another and be in neither. */
static bool held_wanted(const replay_t *r, const held_t *h)
{
    if (r->after[0] && strcmp(h->id, r->after) <= 0)
        return false;
    return r->sent == 0 ||
           bsearch(h->id, r->items, r->sent, sizeof(*r->items), held_id_cmp) == NULL;
}

/* Sends the next part of a resume: frames of up to a quarter of
 * --max-pending (at least one), first from the replay, then from the live
 * messages held since the attach (which go on arriving, held, until the
 * holding ends). The next part goes when the transport has written this one
 * (client_drained), so a resume of any size is streamed as fast as the
 * client reads and the queue never holds more than a part - bounded, with
 * room for pings. When nothing is left the client is live. Live messages
 * past --max-pending while it holds them: the client is asked to resume
 * again from where it got. */
static void stream_replay(hs_notifier_t *n, client_t *client)
{
    replay_t *r = client->stream;
    size_t budget = (size_t)n->cfg->max_pending, part = budget ? budget / 4 : SIZE_MAX;
    size_t bytes = 0;
    client->unbounded = true; /* bounded here, by the part */
    while (!client->held_overflow && r->pos < r->sent &&
           (bytes == 0 || bytes + r->items[r->pos]->len <= part)) {
        bytes += r->items[r->pos]->len;
        send_held(client, r->items[r->pos++]);
    }
    while (!client->held_overflow && r->pos == r->sent && client->held &&
           (bytes == 0 || bytes + client->held->len <= part)) {
        held_t *h = client->held;
        client->held = h->next;
        if (client->held == NULL)
            client->held_tail = &client->held;
        client->held_bytes -= h->len;
        if (held_wanted(r, h)) {
            bytes += h->len;
            send_held(client, h);
        }
        hs_free(h);
    }
    client->unbounded = false;
    if (!client->held_overflow && (bytes > 0 || r->pos < r->sent || client->held))
        return; /* the rest, or the end, once this part is written */
    client->stream = NULL;
    client->replaying = false;
    drop_held(client);
    if (client->held_overflow) {
        client->held_overflow = false;
        hs_log_info("notifier: conn %s: too many live messages during its resume; asking it to "
                    "resume again",
                    client->id);
        replay_free(r);
        ask_to_resume(n, client, "resume again");
        return;
    }
    remember_replayed(n, client, r->client_cursor ? r->after : NULL, r->items, r->sent);
    replay_free(r);
}

/* The transport wrote everything queued: the next part of a replay. */
static void client_drained(client_t *client)
{
    if (client && client->stream && !client->detached)
        stream_replay(client->notifier, client);
}

/* Every topic's query is back: sends "connected", then the replay (part by
 * part), then what was held. What is replayed is a prefix of the merged ids
 * that is known complete: not past the last id read of a topic that had
 * more rows than asked (bound), at most --resume-max-replay messages; what
 * is cut is said with truncated/next. */
static void finish_replay(replay_t *r)
{
    hs_notifier_t *n = r->ref.notifier;
    bool same;
    client_t *client = ref_client(&r->ref, &same);
    if (client == NULL || !same) {
        replay_free(r); /* gone, or dropped again: a later resume replays anew */
        return;
    }
    if (r->count > 1)
        qsort(r->items, r->count, sizeof(*r->items), held_cmp);
    size_t max = (size_t)n->cfg->resume_max_replay;
    while (r->sent < r->count && r->sent < max &&
           (r->bound[0] == '\0' || strcmp(r->items[r->sent]->id, r->bound) <= 0))
        r->sent++;
    bool truncated = r->sent < r->count || r->bound[0] != '\0';
    const char *next = truncated ? (r->sent ? r->items[r->sent - 1]->id : r->after) : NULL;
    send_connected(n, client, true, true, r->sent, next);
    if (r->failed)
        client_error(client, "internal", "the replay failed; page the history from lastID");
    hs_log_info("notifier: conn %s resumed after %s: %zu to replay%s", client->id, r->after,
                r->sent, next ? " (truncated)" : "");
    client->stream = r;
    stream_replay(n, client);
}

static void replay_part_cb(int status, const hs_message_t *msgs, size_t count, void *data)
{
    replay_t *r = data;
    if (status != 0) {
        hs_log_error("notifier: conn %s: a replay query failed: %s", r->ref.id,
                     hs_strerror(status));
        r->failed = true;
    }
    for (size_t i = 0; i < count; i++) {
        json_t *json = hs_render_message(&msgs[i]);
        size_t json_len, len;
        char *json_text = hs_render_text(json, &json_len);
        json_decref(json);
        char *text = hs_render_message_frame_text(json_text, json_len, &len);
        free(json_text);
        held_t *h = hs_malloc(sizeof(*h) + len + 1);
        h->next = NULL;
        memcpy(h->id, msgs[i].id, sizeof(h->id));
        h->len = len;
        memcpy(h->text, text, len + 1);
        hs_free(text);
        if (r->count == r->cap) {
            r->cap = r->cap ? 2 * r->cap : 64;
            r->items = hs_realloc(r->items, r->cap * sizeof(*r->items));
        }
        r->items[r->count++] = h;
    }
    /* A topic that may have more rows than read (the row or byte bound
     * stopped the read): nothing past its last row read is known to be
     * complete. */
    size_t bytes = 0;
    for (size_t i = 0; i < count; i++)
        bytes += msgs[i].content_len;
    bool more = count >= r->limit || (r->max_bytes && bytes >= r->max_bytes);
    if (count > 0 && more && (r->bound[0] == '\0' || strcmp(msgs[count - 1].id, r->bound) < 0))
        memcpy(r->bound, msgs[count - 1].id, sizeof(r->bound));
    if (--r->pending == 0)
        finish_replay(r);
}

/* The lowest id of a millisecond, as text: every id created from ms on is
 * above it but the one with all-zero randomness. */
static const char *ulid_at(uint64_t ms, char out[HS_ULID_LEN + 1])
{
    hs_ulid_t id = {{0}};
    for (int i = 5; i >= 0; i--, ms >>= 8)
        id.bytes[i] = (uint8_t)(ms & 0xff);
    hs_ulid_format(&id, out);
    return out;
}

/* A resumed client is attached and registered: replays what it missed after
 * last_id (or its last ack), holding live messages meanwhile, then says
 * connected. Without a cursor nothing is replayed, but what arrived live
 * since the attach is sent. */
static void start_resume(hs_notifier_t *n, client_t *client, const resume_ask_t *ask)
{
    /* The cursor: the client's lastID, else its last ack, else the moment
     * its connection was detached - it was sent nothing since, so whatever
     * was created from then on is what it lacks. */
    char since[HS_ULID_LEN + 1];
    const char *after = ask->has_last_id      ? ask->last_id
                        : client->last_ack[0] ? client->last_ack
                        : client->detached_ms ? ulid_at(client->detached_ms, since)
                                              : NULL;
    hs_ulid_t cursor;
    replay_t *r = hs_calloc(1, sizeof(*r));
    client_ref_init(&r->ref, client);
    client->replaying = true;
    if (after == NULL || client->sub_count == 0 ||
        hs_ulid_parse(after, strlen(after), &cursor) != 0) {
        /* Nothing to replay; what arrived since the attach is sent. */
        send_connected(n, client, true, true, 0, NULL);
        client->stream = r;
        stream_replay(n, client);
        return;
    }
    snprintf(r->after, sizeof(r->after), "%s", after);
    r->client_cursor = after != since;
    r->limit = (unsigned)n->cfg->resume_max_replay + 1;
    /* The replay's working memory: --resume-max-bytes over all its topics
     * (each reads at least one row). */
    r->max_bytes = (size_t)n->cfg->resume_max_bytes / client->sub_count;
    if (r->max_bytes == 0)
        r->max_bytes = 1;
    r->pending = client->sub_count;
    for (sub_t *s = client->subs; s; s = s->client_next) {
        hs_history_query_t q = {.topic = s->topic->name,
                                .has_cursor = true,
                                .cursor = cursor,
                                .forward = true,
                                .limit = r->limit,
                                .max_bytes = r->max_bytes};
        hs_store_list_messages(n->store, &q, replay_part_cb, r);
    }
}

/* ---- registration ------------------------------------------------------ */

/* Makes the client's subscriptions those of its rows: one removed through
 * the API while it was detached goes, one stored meanwhile comes. */
static void sync_topics(hs_notifier_t *n, client_t *client, const char *const *topics, size_t count)
{
    sub_t *s = client->subs;
    while (s) {
        sub_t *next = s->client_next;
        bool kept = false;
        for (size_t i = 0; i < count && !kept; i++)
            kept = strcmp(s->topic->name, topics[i]) == 0;
        if (!kept)
            unsubscribe(n, client, s->topic->name);
        s = next;
    }
    for (size_t i = 0; i < count; i++)
        if (subscribe(n, client, topics[i]) != 0)
            hs_log_warn("notifier: conn %s: subscription to %s not restored", client->id,
                        topics[i]);
}

typedef struct registration {
    client_ref_t ref;
    bool asked;       /* a resume was asked for */
    bool resume;      /* it is one: replay once registered */
    resume_ask_t ask; /* when resume */
} registration_t;

/* A resumed connection is in the directory, so every API call for it comes
 * here from now on: its rows are read once more, and what changed since the
 * resume read them (an API unsubscribe that found it in no node's
 * directory, a kick) is applied before the replay starts. */
static void reread_cb(int status, const hs_connection_info_t *info, void *data)
{
    registration_t *reg = data;
    hs_notifier_t *n = reg->ref.notifier;
    bool same;
    client_t *client = ref_client(&reg->ref, &same);
    if (client == NULL || !same) {
        hs_free(reg);
        return;
    }
    if (status == HS_ENOTFOUND) {
        hs_log_info("notifier: conn %s was removed while it resumed (a kick)", client->id);
        end_client(n, client, 4000, "disconnected by server");
        hs_free(reg);
        return;
    }
    if (status == 0) {
        const char **topics = hs_calloc(info->sub_count ? info->sub_count : 1, sizeof(*topics));
        for (size_t i = 0; i < info->sub_count; i++)
            topics[i] = info->subs[i].topic;
        sync_topics(n, client, topics, info->sub_count);
        hs_free(topics);
    }
    start_resume(n, client, &reg->ask);
    hs_free(reg);
}

/* The directory knows the connection (or cannot say). A new connection is
 * told its id now, so a subscribe made as soon as it has it finds it; a
 * resumed one starts its replay now: a message routed to this node before
 * is in the history it reads, one routed after is held (the same ordered
 * link ran the routing of its topics). */
static void registered_cb(int status, void *data)
{
    registration_t *reg = data;
    bool same;
    client_t *client = ref_client(&reg->ref, &same);
    if (status != 0)
        hs_log_warn("notifier: conn %s: the directory is unreachable (%s); it is registered "
                    "again when the bus is back",
                    reg->ref.id, hs_strerror(status));
    if (client && same && reg->resume) {
        hs_store_get_connection(reg->ref.notifier->store, client->id, reread_cb, reg);
        return;
    }
    if (client && same)
        send_connected(reg->ref.notifier, client, reg->asked, false, 0, NULL);
    hs_free(reg);
}

static void register_client(hs_notifier_t *n, client_t *client, bool asked,
                            const resume_ask_t *resume)
{
    registration_t *reg = hs_calloc(1, sizeof(*reg));
    client_ref_init(&reg->ref, client);
    reg->asked = asked;
    if (resume) {
        reg->resume = true;
        reg->ask = *resume;
    }
    hs_bus_register_connection(n->bus, n->node_id, client->id, registered_cb, reg);
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

/* The checks every transport's upgrade passes: shutdown, Origin, per-IP
 * limits, the connection limit, the client token. Returns false after
 * answering the request. */
static bool admit(hs_notifier_t *n, hs_http_request_t *req, hs_token_claims_t *claims_out,
                  ip_entry_t **ip_out)
{
    if (n->shutting_down) {
        hs_http_respond_error(req, 503, "unavailable", "server is shutting down");
        return false;
    }
    if (!origin_allowed(n, req)) {
        size_t origin_len = 0;
        const char *origin = hs_http_header(req, "origin", &origin_len);
        hs_log_info("notifier: upgrade from %s refused: Origin \"%.*s\" not allowed",
                    hs_http_client_addr(req), origin_len > 100 ? 100 : (int)origin_len,
                    origin ? origin : "");
        hs_http_respond_error(req, 403, "origin_not_allowed",
                              "this Origin may not open a WebSocket or event stream here; "
                              "list it in --allowed-origins");
        return false;
    }
    /* The client address: behind a trusted proxy, the one it relays for. */
    char ip[HS_CLIENT_ADDR_MAX];
    snprintf(ip, sizeof(ip), "%s", hs_http_client_addr(req));
    ip_entry_t *ip_entry;
    const char *refusal = ip_admit(n, ip, hs_http_request_proxied(req), &ip_entry);
    if (refusal) {
        hs_metrics_singleton.limit_refusals++;
        hs_log_info("notifier: upgrade from %s refused: %s", ip, refusal);
        hs_http_respond_error_with(req, 429, "too_many_requests", "Retry-After: 1\r\n", "%s",
                                   refusal);
        return false;
    }
    if (hs_map_count(&n->clients) >= n->cfg->max_connections) {
        hs_log_warn("notifier: %llu connections: refusing more",
                    (unsigned long long)n->cfg->max_connections);
        hs_metrics_singleton.limit_refusals++;
        hs_http_respond_error(req, 503, "unavailable", "too many connections; try again later");
        return false;
    }
    hs_token_claims_t claims = {0};
    if (n->verifier) {
        size_t token_len = 0;
        const char *token = request_token(req, &token_len);
        char reason[160];
        if (token == NULL) {
            hs_http_respond_error_with(req, 401, "unauthorized", "WWW-Authenticate: Bearer\r\n",
                                       "a token is required (?token= or Authorization: Bearer)");
            return false;
        }
        if (hs_token_verify(n->verifier, token, token_len, (int64_t)(hs_now_ms() / 1000), &claims,
                            reason, sizeof(reason)) != 0) {
            hs_log_info("notifier: upgrade from %s refused: %s", ip, reason);
            hs_http_respond_error_with(req, 401, "unauthorized",
                                       "WWW-Authenticate: Bearer error=\"invalid_token\"\r\n",
                                       "invalid token: %s", reason);
            return false;
        }
    }
    *claims_out = claims;
    *ip_out = ip_entry;
    return true;
}

/* ?resume=, and the last id from ?lastID= or Last-Event-ID (SSE). */
static void read_resume_ask(hs_http_request_t *req, resume_ask_t *ask)
{
    memset(ask, 0, sizeof(*ask));
    const char *token = hs_http_query(req, "resume");
    if (token && token[0]) {
        ask->asked = true;
        snprintf(ask->token, sizeof(ask->token), "%s", token);
    }
    size_t len = 0;
    const char *last = hs_http_query(req, "lastID");
    if (last)
        len = strlen(last);
    else
        last = hs_http_header(req, "last-event-id", &len);
    if (last && hs_ulid_canonical(last, len, ask->last_id) == 0)
        ask->has_last_id = true;
}

static bool same_user(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

/* Puts the transport (ws or sse) on client: a new attach. */
static void attach(hs_notifier_t *n, client_t *client, hs_ws_session_t *ws, hs_conn_t *sse,
                   hs_token_claims_t *claims, ip_entry_t *ip_entry)
{
    client->ws = ws;
    client->sse = sse;
    client->detached = false;
    client->attach_gen = ++n->next_serial;
    if (ws)
        hs_ws_set_data(ws, client);
    else
        hs_conn_set_handler(sse, &sse_handler, client);
    hs_token_claims_dispose(&client->claims);
    client->claims = *claims;
    client->ip = ip_entry;
    ip_entry->conns++;
    client->msg_tokens = 2.0 * (double)n->cfg->client_message_rate;
    client->msg_refill_ms = uv_now(hs_net_loop(n->net));
    arm_expiry(n, client);
}

static client_t *client_new(hs_notifier_t *n, const char *id, uint64_t connected_ms)
{
    client_t *client = hs_calloc(1, sizeof(*client));
    client->notifier = n;
    client->held_tail = &client->held;
    client->connected_ms = connected_ms;
    client->serial = ++n->next_serial;
    memcpy(client->id, id, sizeof(client->id));
    hs_map_put(&n->clients, client->id, HS_ULID_LEN, client);
    return client;
}

/* A new connection on a transport that was just accepted. */
static void open_client(hs_notifier_t *n, bool asked, hs_ws_session_t *ws, hs_conn_t *sse,
                        hs_token_claims_t *claims, ip_entry_t *ip_entry)
{
    char id[HS_ULID_LEN + 1];
    hs_ulid_t uid;
    hs_ulid_new(&uid);
    hs_ulid_format(&uid, id);
    client_t *client = client_new(n, id, hs_now_ms());
    attach(n, client, ws, sse, claims, ip_entry);
    register_client(n, client, asked, NULL);
    hs_store_add_connection(n->store, client->id, n->node_id, client->claims.sub,
                            client->ip ? client->ip->ip : NULL, client->connected_ms,
                            store_write_cb, NULL);
    hs_log_info("notifier: conn %s connected from %s%s%s%s%s", client->id, client->ip->ip,
                client->ip->proxied ? " (via a proxy)" : "", sse ? " (SSE)" : "",
                client->claims.sub ? " as " : "", client->claims.sub ? client->claims.sub : "");
}

/* ---- resume ------------------------------------------------------------ */

static hs_conn_t *sse_accept(hs_notifier_t *n, hs_http_request_t *req);

/* A resume (?resume=<token>) of a connection not attached on this node. The
 * store is the one truth of who owns a connection: the request waits (a
 * late upgrade) while the store says whether the connection is detached,
 * whose user it is and at which epoch, and while the resume claims it at
 * that epoch - a compare-and-set, so of two resumes at once (on this node
 * or two) one wins and the other gets a new connection. This node's own
 * detached copy is used only when no other attach took the connection
 * since (same epoch): a copy left behind by a move to another notifier
 * is stale (its subscriptions may have changed there) and is rebuilt from
 * the rows. */
typedef struct takeover {
    hs_notifier_t *notifier;
    hs_http_request_t *req;
    bool sse;
    resume_ask_t ask;
    hs_token_claims_t claims;
    ip_entry_t *ip_entry;
    char id[HS_ULID_LEN + 1];
    uint64_t epoch;       /* the detached row's, claimed from */
    uint64_t detached_ms; /* the row's detached_at */
    uint64_t connected_ms;
    char last_ack[HS_ULID_LEN + 1];
    char **topics;
    size_t topic_count;
} takeover_t;

static void takeover_free(takeover_t *t)
{
    for (size_t i = 0; i < t->topic_count; i++)
        hs_free(t->topics[i]);
    hs_free(t->topics);
    hs_free(t);
}

static void sync_subscriptions(hs_notifier_t *n, client_t *client, const takeover_t *t)
{
    sync_topics(n, client, (const char *const *)t->topics, t->topic_count);
}

/* The client of a won claim: this node's copy when it is current, else one
 * built from the rows read. Attached (no transport yet) at the new epoch,
 * holding live messages until its replay. */
static client_t *adopt(hs_notifier_t *n, takeover_t *t)
{
    client_t *client = find_client(n, t->id);
    if (client && client->detached && client->epoch == t->epoch && !client->stale) {
        stop_client_timer(&client->window);
        sync_subscriptions(n, client, t);
    } else {
        if (client) {
            /* Another attach (here or elsewhere) had it since this copy was
             * made: the copy goes, the rows are the claim's now. */
            hs_log_info("notifier: conn %s: this node's copy is stale (epoch %llu, the store "
                        "has %llu); rebuilt from the store",
                        client->id, (unsigned long long)client->epoch,
                        (unsigned long long)t->epoch);
            if (!client->detached) /* cannot be: the row was detached */
                drop_transport(client, 1001, "resumed elsewhere");
            free_client(n, client);
        }
        client = client_new(n, t->id, t->connected_ms);
        memcpy(client->last_ack, t->last_ack, sizeof(client->last_ack));
        sync_subscriptions(n, client, t);
    }
    client->epoch = t->epoch + 1;
    client->detached_ms = t->detached_ms;
    client->detached = false;
    client->replaying = true; /* hold live messages from now on */
    return client;
}

/* Ends the wait: the connection claimed (taken), or a new one. */
static void takeover_finish(takeover_t *t, bool taken)
{
    hs_notifier_t *n = t->notifier;
    hs_ws_session_t *ws = NULL;
    hs_conn_t *conn = NULL;
    if (n->shutting_down) {
        hs_http_respond_error(t->req, 503, "unavailable", "server is shutting down");
        if (taken) /* give the claim back: another node may resume it */
            conn_write(n, CW_RELEASE, t->id, t->epoch + 1, t->detached_ms);
        goto out;
    }
    if (t->sse)
        conn = sse_accept(n, t->req);
    else
        ws = hs_ws_accept(t->req, &n->ws_config, &ws_callbacks, NULL);
    if (ws == NULL && conn == NULL) {
        if (taken) /* the client went away meanwhile: it stays resumable */
            detach(n, adopt(n, t));
        goto out;
    }
    if (!taken) {
        open_client(n, t->ask.asked, ws, conn, &t->claims, t->ip_entry);
        takeover_free(t);
        return;
    }
    client_t *client = adopt(n, t);
    attach(n, client, ws, conn, &t->claims, t->ip_entry);
    hs_log_info("notifier: conn %s resumed from %s (%u topics, epoch %llu)", client->id,
                ws ? hs_ws_peer(ws) : hs_conn_peer(conn), client->sub_count,
                (unsigned long long)client->epoch);
    register_client(n, client, true, &t->ask);
    takeover_free(t);
    return;
out:
    hs_token_claims_dispose(&t->claims);
    takeover_free(t);
}

static void claimed_cb(int status, void *data)
{
    takeover_t *t = data;
    if (status != 0 && status != HS_ENOTFOUND)
        hs_log_error("notifier: conn %s: claiming it failed: %s", t->id, hs_strerror(status));
    else if (status == HS_ENOTFOUND)
        hs_log_info("notifier: conn %s: another resume claimed it first", t->id);
    takeover_finish(t, status == 0);
}

static void stored_connection_cb(int status, const hs_connection_info_t *info, void *data)
{
    takeover_t *t = data;
    hs_notifier_t *n = t->notifier;
    if (status != 0 || info->attached || !same_user(info->user, t->claims.sub)) {
        /* Gone, attached somewhere, another user's, or the store cannot
         * say: a new connection. */
        takeover_finish(t, false);
        return;
    }
    t->epoch = info->epoch;
    t->detached_ms = info->detached_ms;
    t->connected_ms = info->connected_ms;
    if (info->last_ack)
        snprintf(t->last_ack, sizeof(t->last_ack), "%s", info->last_ack);
    t->topics = hs_calloc(info->sub_count ? info->sub_count : 1, sizeof(*t->topics));
    for (size_t i = 0; i < info->sub_count; i++)
        t->topics[t->topic_count++] = hs_strdup(info->subs[i].topic);
    hs_store_claim_connection(n->store, t->id, n->node_id, t->ip_entry ? t->ip_entry->ip : NULL,
                              t->epoch, claimed_cb, t);
}

/* Starts a resume when ask holds a valid token of a connection that is not
 * attached on this node. Returns true when it did (the request is answered
 * later). */
static bool start_takeover(hs_notifier_t *n, hs_http_request_t *req, bool sse,
                           const resume_ask_t *ask, hs_token_claims_t *claims, ip_entry_t *ip_entry)
{
    char id[HS_ULID_LEN + 1];
    if (n->cfg->resume_window_ms == 0 ||
        hs_resume_token_check(n->resume_secret, n->resume_secret_len, ask->token,
                              strlen(ask->token), hs_now_ms(), id) != 0)
        return false;
    client_t *local = find_client(n, id);
    if (local && !local->detached)
        return false; /* attached here: a new connection */
    takeover_t *t = hs_calloc(1, sizeof(*t));
    t->notifier = n;
    t->req = req;
    t->sse = sse;
    t->ask = *ask;
    t->claims = *claims;
    t->ip_entry = ip_entry;
    memcpy(t->id, id, sizeof(t->id));
    hs_store_get_connection(n->store, id, stored_connection_cb, t);
    return true;
}

/* ---- Server-Sent Events --------------------------------------------------- */

#define SSE_KEEPALIVE_MS 15000

static void sse_keepalive_cb(hs_conn_t *conn)
{
    hs_buf_t *buf = hs_buf_from(": keepalive\n\n", 13);
    sse_send(conn, buf);
    hs_buf_unref(buf);
    hs_conn_timer_start(conn, SSE_KEEPALIVE_MS, sse_keepalive_cb);
}

static void sse_read(hs_conn_t *conn, const char *data, size_t len)
{
    (void)conn; /* nothing is read from an event stream's client */
    (void)data;
    (void)len;
}

static void sse_eof(hs_conn_t *conn, int status)
{
    (void)status;
    hs_conn_close(conn);
}

static void sse_close(hs_conn_t *conn)
{
    client_t *client = hs_conn_data(conn);
    if (client == NULL || client->sse != conn)
        return;
    hs_log_info("notifier: conn %s: event stream closed", client->id);
    /* An event stream has no clean close: it may always come back. */
    transport_ended(client->notifier, client, true);
}

static void sse_drain(hs_conn_t *conn)
{
    client_drained(hs_conn_data(conn));
}

static const hs_conn_handler_t sse_handler = {
    .on_read = sse_read,
    .on_eof = sse_eof,
    .on_drain = sse_drain,
    .on_close = sse_close,
};

/* Answers the request with the head of an event stream and takes the
 * connection; NULL when the client went away. */
static hs_conn_t *sse_accept(hs_notifier_t *n, hs_http_request_t *req)
{
    if (!hs_http_can_take_over(req)) {
        /* Pipelined requests before it still wait for their answers: the
         * stream cannot have the connection yet. */
        hs_http_respond_error(req, 400, "bad_request",
                              "an event stream must not follow unanswered pipelined requests");
        return NULL;
    }
    size_t origin_len = 0;
    const char *origin = hs_http_header(req, "origin", &origin_len);
    char head[512];
    int len = snprintf(head, sizeof(head),
                       "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                       "Cache-Control: no-cache\r\nConnection: close\r\n"
                       "X-Accel-Buffering: no\r\n%s%.*s%s\r\n",
                       origin ? "Access-Control-Allow-Origin: " : "",
                       origin && origin_len < 256 ? (int)origin_len : 0, origin ? origin : "",
                       origin ? "\r\n" : "");
    hs_conn_t *conn = hs_http_upgrade(req);
    if (conn == NULL)
        return NULL;
    hs_buf_t *buf = hs_buf_from(head, (size_t)len);
    hs_conn_send_always(conn, buf);
    hs_buf_unref(buf);
    hs_conn_set_max_pending(conn, n->cfg->max_pending);
    hs_conn_set_fanout(conn);
    hs_conn_timer_start(conn, SSE_KEEPALIVE_MS, sse_keepalive_cb);
    return conn;
}

/* ---- the two transports' routes ----------------------------------------- */

/* GET /api/v1/ws and GET /api/v1/sse: admission, then a resume by token, or a
 * new connection on the transport. */
static void connect_route(hs_notifier_t *n, hs_http_request_t *req, bool sse)
{
    hs_token_claims_t claims = {0};
    ip_entry_t *ip_entry;
    if (!admit(n, req, &claims, &ip_entry))
        return;
    resume_ask_t ask;
    read_resume_ask(req, &ask);
    if (ask.asked && start_takeover(n, req, sse, &ask, &claims, ip_entry))
        return;
    hs_ws_session_t *ws = NULL;
    hs_conn_t *conn = NULL;
    if (sse)
        conn = sse_accept(n, req);
    else
        ws = hs_ws_accept(req, &n->ws_config, &ws_callbacks, NULL);
    if (ws == NULL && conn == NULL) {
        hs_token_claims_dispose(&claims);
        return;
    }
    open_client(n, ask.asked, ws, conn, &claims, ip_entry);
}

static void ws_route(hs_http_request_t *req, void *ctx)
{
    connect_route(ctx, req, false);
}

static void sse_route(hs_http_request_t *req, void *ctx)
{
    connect_route(ctx, req, true);
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
    hs_router_add(n->router, HTTP_GET, "/api/v1/sse", sse_route, n);
    if (cfg->resume_secret && cfg->resume_secret[0]) {
        /* HMAC takes a key of any length; a longer one is hashed first. */
        size_t len = strlen(cfg->resume_secret);
        n->resume_secret_len = len < sizeof(n->resume_secret) ? len : sizeof(n->resume_secret);
        memcpy(n->resume_secret, cfg->resume_secret, n->resume_secret_len);
    } else {
        if (getrandom(n->resume_secret, sizeof(n->resume_secret), 0) !=
            (ssize_t)sizeof(n->resume_secret))
            hs_log_warn("notifier: no random resume secret; tokens are weak");
        n->resume_secret_len = sizeof(n->resume_secret);
    }
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
        if (!client->detached)
            hs_bus_register_connection(n->bus, n->node_id, client->id, NULL, NULL);
    pos = 0;
    topic_t *topic;
    while ((topic = hs_map_next(&n->topics, &pos)) != NULL)
        hs_bus_add_topic_node(n->bus, topic->name, n->node_id);
    hs_log_info("notifier: re-registered %zu connections and %zu topics with the bus",
                hs_map_count(&n->clients), hs_map_count(&n->topics));
}

/* Writes the acks that changed since the last tick: one write per
 * connection per second at most, batched by the store's writer. */
static void ack_timer_cb(uv_timer_t *timer)
{
    hs_notifier_t *n = timer->data;
    size_t pos = 0;
    client_t *client;
    while ((client = hs_map_next(&n->clients, &pos)) != NULL)
        flush_ack(n, client);
    conn_writes_retry(n);
}

static void ack_timer_closed_cb(uv_handle_t *handle)
{
    hs_free(handle);
}

int hs_notifier_start(hs_notifier_t *n, const char *addr)
{
    if (n->cfg->resume_window_ms > 0 && n->cfg->redis && n->cfg->redis[0] &&
        !(n->cfg->resume_secret && n->cfg->resume_secret[0]))
        hs_log_warn("notifier: no --resume-secret: a connection can resume only on this node");
    n->ack_timer = hs_calloc(1, sizeof(*n->ack_timer));
    uv_timer_init(hs_net_loop(n->net), n->ack_timer);
    n->ack_timer->data = n;
    uv_timer_start(n->ack_timer, ack_timer_cb, 1000, 1000);
    uv_unref((uv_handle_t *)n->ack_timer);
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

void hs_notifier_set_http_policy(hs_notifier_t *n, const hs_http_policy_t *policy)
{
    hs_http_server_set_policy(n->http, policy);
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
    flush_run(n);
    n->shutting_down = 1;
    n->shutdown_cb = cb;
    n->shutdown_data = data;
    hs_log_info("notifier: closing %zu connections (%llu were closed earlier for not reading)",
                hs_map_count(&n->clients),
                (unsigned long long)hs_metrics_singleton.slow_disconnects);
    if (n->ack_timer) {
        ack_timer_cb(n->ack_timer);
        uv_close((uv_handle_t *)n->ack_timer, ack_timer_closed_cb);
        n->ack_timer = NULL;
    }
    /* Detached connections go at once (nothing will resume them here);
     * collected first, since removing changes the map. */
    size_t count = hs_map_count(&n->clients), gone = 0, pos = 0;
    client_t **detached = hs_calloc(count ? count : 1, sizeof(*detached));
    client_t *client;
    while ((client = hs_map_next(&n->clients, &pos)) != NULL) {
        if (client->detached)
            detached[gone++] = client;
        else if (client->ws)
            hs_ws_close(client->ws, 1001, "server shutting down");
        else if (client->sse)
            hs_conn_close_after_flush(client->sse);
    }
    for (size_t i = 0; i < gone; i++)
        expire_client(n, detached[i]);
    hs_free(detached);
    hs_http_server_shutdown(n->http, http_shutdown_cb, n);
}

void hs_notifier_free(hs_notifier_t *n)
{
    for (size_t i = 0; i < n->run.count; i++)
        hs_buf_unref(n->run.msgs[i].frame);
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
    hs_free(n->ending);
    while (n->retries) { /* the store is closed: nothing more can be written */
        conn_write_t *next = n->retries->next;
        hs_log_error("notifier: conn %s: %s never succeeded", n->retries->id,
                     conn_write_names[n->retries->kind]);
        hs_free(n->retries);
        n->retries = next;
    }
    hs_free(n->node_id);
    hs_free(n);
}
