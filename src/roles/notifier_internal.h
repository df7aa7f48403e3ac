/* notifier_internal.h - what the notifier's files share: the client, topic,
 * subscription and notifier structs, and the functions each file offers the
 * others (hs_notifier__*, like libuv's uv__). notifier.h stays the public
 * API. Thread affinity: the loop thread only, like the whole role.
 */
#ifndef HS_ROLES_NOTIFIER_INTERNAL_H
#define HS_ROLES_NOTIFIER_INTERNAL_H

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
#include "roles/fences.h"
#include "roles/health.h"
#include "roles/live_order.h"
#include "roles/notifier.h"
#include "roles/render.h"
#include "roles/resume_token.h"
#include "roles/token.h"
#include "roles/transport.h"
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

/* Something to do once a topic's baseline is known (notifier_order.c):
 * cb(served true), or cb(served false) when the topic went first. */
typedef struct baseline_waiter {
    struct baseline_waiter *next;
    void (*cb)(hs_notifier_t *n, bool served, void *data);
    void *data;
} baseline_waiter_t;

struct topic {
    sub_t *head;
    size_t count;
    /* Live order (notifier_order.c, docs/scaling.md "Live order"). */
    hs_live_order_t order;
    uint64_t gen;    /* unique per topic object on this node */
    bool reading;    /* a baseline or fill read is in flight */
    bool gap_listed; /* on the notifier's list of held topics */
    struct topic *gap_prev, *gap_next;
    baseline_waiter_t *waiters; /* until the baseline is known */
    char name[];
};

typedef struct ip_entry ip_entry_t;

/* What a client has since its last resume (notifier_replay.c): the ids its
 * replay sent (sorted) and every id at or below the cursor it gave (floor,
 * "" when none), until until_ms (wall clock ms). Allocated for a resume
 * only, so a client that never resumed carries a pointer, not 56 bytes. */
typedef struct replayed {
    uint64_t until_ms;
    size_t count;
    char floor[HS_ULID_LEN + 1];
    char ids[][HS_ULID_LEN + 1];
} replayed_t;

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
    bool deleted; /* json is a "deleted" frame (notifier_deleted.c), sent as it is */
    size_t len;
    char json[]; /* the message object */
} held_t;

/* The live messages held during a replay, in arrival order: allocated by
 * the first one held, freed when the replay ends (hs_notifier__drop_held),
 * so an idle client carries one pointer for it. */
typedef struct held_queue {
    held_t *head, **tail;
    size_t bytes; /* bounded by --max-pending */
} held_queue_t;

/* A client is attached (it has a transport), or detached (transport NULL):
 * dropped without a clean close, its subscriptions kept for
 * --resume-window, delivering nothing (the history holds what it misses)
 * until a resume attaches a transport. hs_notifier__client_attached() is
 * the test.
 *
 * Anything that completes later (a store write, a bus call, a replay, a
 * timer) finds the client again through a client_ref_t and
 * hs_notifier__ref_client(), which says whether it is still the same client
 * object and the same attach; only the client senders (notifier_send.c)
 * touch a transport, and they send nothing to a detached client. */
struct client {
    /* What a fan-out walk reads of every subscriber comes first, in one
     * cache line (flush_run: the walk is bound by cache misses). */
    transport_t *transport; /* WebSocket or SSE (transport.h); NULL: detached */
    bool replaying;         /* live messages go to held until the replay is sent */
    bool unbounded;         /* sending a part of a replay or the held messages: past
                               --max-pending (each is bounded by it already) */
    bool held_overflow;     /* more than --max-pending was held: resume again */
    bool has_ack;           /* last_ack holds the highest acknowledged id */
    bool ack_dirty;         /* last_ack not yet written to the store */
    /* What the client has since its last resume and may still arrive live
     * (a bus that hands an event over again, maybe to another node); NULL
     * when nothing: see remember_replayed */
    replayed_t *replayed;
    hs_notifier_t *notifier;
    uint64_t serial;       /* unique per client object on this node */
    uint64_t epoch;        /* the store's epoch of this attach (claim_connection) */
    uint64_t detached_ms;  /* when its last attach dropped (a resume without a cursor) */
    expiry_t *window;      /* runs while detached: the end of the resume window */
    held_queue_t *held;    /* while a replay holds live messages, else NULL */
    uint64_t attach_gen;   /* unique per attach: a late answer for an older one is dropped */
    struct replay *stream; /* a replay being sent part by part, or NULL */
    sub_t *subs;
    uint64_t connected_ms;
    /* sub (the user) and the granted topics, allocated when a token gave
     * any; NULL otherwise. Read through hs_notifier__claims(). */
    hs_token_claims_t *claims;
    expiry_t *expiry;  /* when the token has "exp" */
    ip_entry_t *ip;    /* its address's counters (per-IP limits) */
    double msg_tokens; /* inbound message bucket (--client-message-rate) */
    uint64_t msg_refill_ms;
    unsigned msg_strikes; /* messages refused in a row */
    unsigned sub_count;
    unsigned pending_subs; /* client-side subscribes waiting for the store */
    hs_ulid_t last_ack;    /* the highest acknowledged id, when has_ack */
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

/* A message of the current run of deliveries (flush_run). Its WebSocket
 * frame is built at once (a run is sent to WebSocket clients as a vector of
 * them); its text is the frame's payload. */
typedef struct run_msg {
    transport_msg_t msg;
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
    hs_fences_t *fences;                 /* highest fencing token per partition (fences.h) */
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
    /* live order (notifier_order.c) */
    hs_live_budget_t live_budget;
    uv_timer_t *live_timer; /* runs while a topic holds messages */
    topic_t *gapped;        /* topics holding messages (a gap, or no baseline) */
    uint64_t next_topic_gen;
    /* shutdown */
    int shutting_down;
    int http_done;
    void (*shutdown_cb)(void *data);
    void *shutdown_data;
};

/* A client as an asynchronous completion remembers it. */
typedef struct client_ref {
    hs_notifier_t *notifier;
    char id[HS_ULID_LEN + 1];
    uint64_t serial; /* the client object */
    uint64_t gen;    /* its attach */
} client_ref_t;

/* What an upgrade asked for (?resume=, ?lastID= or Last-Event-ID). */
typedef struct resume_ask {
    bool asked; /* ?resume= was given */
    char token[HS_RESUME_TOKEN_LEN + 1];
    bool has_last_id;
    char last_id[HS_ULID_LEN + 1];
} resume_ask_t;

typedef struct registration {
    client_ref_t ref;
    bool asked;       /* a resume was asked for */
    bool resume;      /* it is one: replay once registered */
    resume_ask_t ask; /* when resume */
} registration_t;

/* ---- notifier.c: life cycle, routes, commands, a client's life ------------- */

/* The bus's commands to this node (hs_bus_serve_node); synchronous. */
int hs_notifier__handle_command(const hs_node_cmd_t *cmd, void *data);
void hs_notifier__client_ref_init(client_ref_t *ref, client_t *client);
client_t *hs_notifier__ref_client(const client_ref_t *ref, bool *same_attach);
void hs_notifier__stop_client_timer(expiry_t **timer);
void hs_notifier__free_client(hs_notifier_t *n, client_t *client);
void hs_notifier__detach(hs_notifier_t *n, client_t *client, uint16_t code, const char *reason);
void hs_notifier__transport_ended(hs_notifier_t *n, client_t *client, bool keep, uint16_t code,
                                  const char *reason);
void hs_notifier__end_client(hs_notifier_t *n, client_t *client, uint16_t code, const char *reason);
void hs_notifier__ask_to_resume(hs_notifier_t *n, client_t *client, const char *reason);
void hs_notifier__register_client(hs_notifier_t *n, client_t *client, bool asked,
                                  const resume_ask_t *resume);
void hs_notifier__attach(hs_notifier_t *n, client_t *client, transport_t *transport,
                         hs_token_claims_t *claims, ip_entry_t *ip_entry);
client_t *hs_notifier__client_new(hs_notifier_t *n, const char *id, uint64_t connected_ms);
void hs_notifier__open_client(hs_notifier_t *n, bool asked, transport_t *transport,
                              hs_token_claims_t *claims, ip_entry_t *ip_entry);

/* ---- notifier_topics.c: the topic index ------------------------------------ */

int hs_notifier__subscribe(hs_notifier_t *n, client_t *client, const char *name);
void hs_notifier__unsubscribe(hs_notifier_t *n, client_t *client, const char *name);
client_t *hs_notifier__find_client(hs_notifier_t *n, const char *id);
bool hs_notifier__subscribed_to(const client_t *client, const char *topic);
void hs_notifier__sync_topics(hs_notifier_t *n, client_t *client, const char *const *topics,
                              size_t count);

/* ---- notifier_order.c: live order per topic -------------------------------- */

void hs_notifier__order_init(hs_notifier_t *n);
void hs_notifier__order_stop(hs_notifier_t *n);
/* A topic became served here: its order starts unknown, and its baseline
 * (the store's last id of it) is read at once, before any read issued
 * after this call (the store's reads run in order). */
void hs_notifier__topic_served(hs_notifier_t *n, topic_t *topic);
/* The topic's baseline, read by someone else before the subscription that
 * made it served was acknowledged (an API subscribe: the publisher's read);
 * ignored when known. */
void hs_notifier__topic_baseline(hs_notifier_t *n, topic_t *topic, const char *last);
/* After a stream gap: every topic reads its baseline again. */
void hs_notifier__order_rebase_all(hs_notifier_t *n);
/* The topic goes (its last subscriber left): waiters run with false. */
void hs_notifier__topic_unserved(hs_notifier_t *n, topic_t *topic);
/* A DELIVER for a served topic: delivered in order, held or dropped. */
void hs_notifier__live_deliver(hs_notifier_t *n, topic_t *topic, const hs_node_cmd_t *cmd);
/* Runs cb once topic's baseline is known. Returns true, without calling
 * cb, when it is known already. */
bool hs_notifier__when_known(hs_notifier_t *n, topic_t *topic,
                             void (*cb)(hs_notifier_t *n, bool served, void *data), void *data);

/* ---- notifier_send.c: the client senders ----------------------------------- */

int hs_notifier__client_send_message(client_t *c, transport_msg_t *msg);
int hs_notifier__client_send_text(client_t *c, const char *event, const char *text, size_t len);
void hs_notifier__client_drop_transport(client_t *c, uint16_t code, const char *reason);
void hs_notifier__client_error(client_t *c, const char *code, const char *message);
void hs_notifier__client_send_json(client_t *c, const char *event, json_t *json);
void hs_notifier__client_topic_reply(client_t *c, const char *type, const char *topic);
/* pruned: the replay reached into history retention removed ("pruned":true). */
void hs_notifier__send_connected(hs_notifier_t *n, client_t *client, bool asked, bool resumed,
                                 size_t replayed, const char *next, bool pruned);

/* ---- notifier_replay.c: replay and held messages --------------------------- */

void hs_notifier__drop_held(client_t *c);
/* Appends h (its len counted against --max-pending by the caller) to the
 * client's held messages, allocating the queue for the first one. */
void hs_notifier__held_push(client_t *c, held_t *h);
/* The bytes of the client's held messages (0 with none). */
size_t hs_notifier__held_bytes(const client_t *c);
bool hs_notifier__has_already(client_t *c, const char *id);
void hs_notifier__hold(client_t *c, const char *id, const char *text, size_t len);
void hs_notifier__drop_stream(client_t *client);
void hs_notifier__client_drained(client_t *client);
void hs_notifier__start_resume(hs_notifier_t *n, client_t *client, const resume_ask_t *ask);

/* ---- notifier_fanout.c: runs, notifications, slow clients ------------------ */

void hs_notifier__flush_run(hs_notifier_t *n);
/* Adds a message to the run of topic's deliveries (in order: the caller
 * ordered it). */
void hs_notifier__run_append(hs_notifier_t *n, topic_t *topic, const char *id, const char *json,
                             size_t len);
void hs_notifier__deliver(hs_notifier_t *n, const hs_node_cmd_t *cmd);
int hs_notifier__notify(hs_notifier_t *n, const char *connection_id, const char *text, size_t len);
int hs_notifier__forward(hs_notifier_t *n, const hs_node_cmd_t *cmd);
void hs_notifier__stream_gap(hs_notifier_t *n, const hs_node_cmd_t *cmd);

/* ---- notifier_deleted.c: a message or a topic deleted --------------------- */

/* HS_NODE_DELETED: the "deleted" frame to the topic's local subscribers, in
 * order with its messages; a whole topic is then dropped from them. */
void hs_notifier__deleted(hs_notifier_t *n, const hs_node_cmd_t *cmd);

/* The writes of a connection row that must be made even when the store is
 * away at first (notifier_rows.c): the row of a new connection, and the
 * writes that end or detach it. */
typedef enum conn_write_kind { CW_ADD, CW_REMOVE, CW_RELEASE, CW_EXPIRE } conn_write_kind_t;

/* ---- notifier_rows.c: connection rows and acks ----------------------------- */

void hs_notifier__store_write_cb(int status, void *data);
void hs_notifier__conn_write(hs_notifier_t *n, conn_write_kind_t kind, const char *id,
                             uint64_t epoch, uint64_t at_ms);
void hs_notifier__conn_writes_retry(hs_notifier_t *n);
void hs_notifier__conn_writes_dispose(hs_notifier_t *n);
void hs_notifier__flush_ack(hs_notifier_t *n, client_t *client);

/* ---- notifier_admission.c: limits, tokens, origins ------------------------- */

bool hs_notifier__may_subscribe(const hs_notifier_t *n, const client_t *client, const char *topic);
/* The client's token claims: an empty set (sub NULL, no topics, no exp)
 * when it has none. */
const hs_token_claims_t *hs_notifier__claims(const client_t *client);
/* Gives the client *claims (taken: the caller disposes nothing), disposing
 * its previous ones; kept in an allocation only when a token gave any. */
void hs_notifier__set_claims(client_t *client, hs_token_claims_t *claims);
void hs_notifier__expiry_closed_cb(uv_handle_t *handle);
void hs_notifier__arm_expiry(hs_notifier_t *n, client_t *client);
bool hs_notifier__message_admitted(hs_notifier_t *n, client_t *client);
bool hs_notifier__admit(hs_notifier_t *n, hs_http_request_t *req, hs_token_claims_t *claims_out,
                        ip_entry_t **ip_out);

/* ---- notifier_messages.c: client messages ---------------------------------- */

void hs_notifier__client_message(client_t *client, bool binary, const char *data, size_t len);

/* ---- notifier_resume.c: resume by token, takeover -------------------------- */

void hs_notifier__reread_cb(int status, const hs_connection_info_t *info, void *data);
void hs_notifier__read_resume_ask(hs_http_request_t *req, resume_ask_t *ask);
bool hs_notifier__start_takeover(hs_notifier_t *n, hs_http_request_t *req,
                                 transport_accept_fn accept, const resume_ask_t *ask,
                                 hs_token_claims_t *claims, ip_entry_t *ip_entry);

/* transport_ws.c and transport_sse.c: see transport.h. */

/* Whether the client has a transport now (else it is detached). */
static inline bool hs_notifier__client_attached(const client_t *client)
{
    return client->transport != NULL;
}

#endif
