/* notifier.c - the notifier role's life cycle, its routes, the bus commands
 * it serves, and a client's life: new, attached, detached, ended, freed.
 *
 * The rest of the role is a file per mechanism (notifier_internal.h lists
 * them); docs/internals/notifier.md is the design note.
 */
#include "roles/notifier.h"

#include <sys/random.h>
#include <stdlib.h>
#include <string.h>

#include "roles/notifier_internal.h"

int hs_notifier__handle_command(const hs_node_cmd_t *cmd, void *data)
{
    hs_notifier_t *n = data;
    client_t *client;
    if (cmd->kind != HS_NODE_DELIVER)
        hs_notifier__flush_run(n); /* what came before goes out before this */
    switch (cmd->kind) {
    case HS_NODE_DELIVER:
        if (!hs_fences_admit(n->fences, cmd->partition, cmd->fence)) {
            /* From a consumer whose lease on the partition passed to
             * another, which hands this event on itself. */
            hs_metrics_singleton.stale_deliveries++;
            hs_log_debug("notifier: dropped %s of partition %d from a stale holder (token %llu)",
                         cmd->message_id ? cmd->message_id : "a message", cmd->partition,
                         (unsigned long long)cmd->fence);
            return 0;
        }
        hs_notifier__deliver(n, cmd);
        return 0;
    case HS_NODE_BATCH_END:
        return 0;
    case HS_NODE_NOTIFY:
        return hs_notifier__notify(n, cmd->connection_id, cmd->frame_text, cmd->frame_text_len);
    case HS_NODE_FORWARD:
        return hs_notifier__forward(n, cmd);
    case HS_NODE_SUBSCRIBE: {
        client = hs_notifier__find_client(n, cmd->connection_id);
        bool served = cmd->topic && hs_map_get(&n->topics, cmd->topic, strlen(cmd->topic));
        int rc = client ? hs_notifier__subscribe(n, client, cmd->topic) : HS_ENOTFOUND;
        topic_t *topic = rc == 0 && !served && cmd->prev
                             ? hs_map_get(&n->topics, cmd->topic, strlen(cmd->topic))
                             : NULL;
        if (topic) /* served from now on, from the publisher's read */
            hs_notifier__topic_baseline(n, topic, cmd->prev);
        if (rc != 0) { /* refused, or the connection is gone: the stored row goes too */
            hs_log_info("notifier: subscribe of %s to %s %s; its row is removed",
                        cmd->connection_id, cmd->topic,
                        client ? "refused (too many subscriptions)" : "for a connection not here");
            hs_store_remove_subscription(n->store, cmd->connection_id, cmd->topic, NULL, NULL);
        }
        return rc;
    }
    case HS_NODE_UNSUBSCRIBE:
        client = hs_notifier__find_client(n, cmd->connection_id);
        if (client == NULL)
            return HS_ENOTFOUND;
        hs_notifier__unsubscribe(n, client, cmd->topic);
        return 0;
    case HS_NODE_DISCONNECT:
        client = hs_notifier__find_client(n, cmd->connection_id);
        if (client == NULL)
            return HS_ENOTFOUND;
        hs_log_info("notifier: conn %s disconnected by the API", client->id);
        hs_notifier__end_client(n, client, 4000, "disconnected by server");
        return 0;
    case HS_NODE_DELETED:
        if (!hs_fences_admit(n->fences, cmd->partition, cmd->fence))
            return 0; /* a stale holder's: the new one hands it on */
        hs_notifier__deleted(n, cmd);
        return 0;
    case HS_NODE_GAP:
        hs_fences_reset(n->fences); /* Redis may have lost the fence counters */
        hs_notifier__stream_gap(n, cmd);
        return 0;
    }
    return HS_EINVAL;
}

static void maybe_finish_shutdown(hs_notifier_t *n)
{
    if (n->shutting_down && n->http_done && hs_map_count(&n->clients) == 0 && n->shutdown_cb) {
        void (*cb)(void *) = n->shutdown_cb;
        n->shutdown_cb = NULL;
        cb(n->shutdown_data);
    }
}

void hs_notifier__client_ref_init(client_ref_t *ref, client_t *client)
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
client_t *hs_notifier__ref_client(const client_ref_t *ref, bool *same_attach)
{
    client_t *client = hs_notifier__find_client(ref->notifier, ref->id);
    if (client == NULL || client->serial != ref->serial) {
        *same_attach = false;
        return NULL;
    }
    *same_attach = hs_notifier__client_attached(client) && client->attach_gen == ref->gen;
    return client;
}

void hs_notifier__stop_client_timer(expiry_t **timer)
{
    if (*timer) {
        (*timer)->client = NULL;
        uv_close((uv_handle_t *)&(*timer)->timer, hs_notifier__expiry_closed_cb);
        *timer = NULL;
    }
}

/* Frees the client and its in-memory subscriptions; the directory and the
 * store are the caller's business. */
void hs_notifier__free_client(hs_notifier_t *n, client_t *client)
{
    hs_notifier__drop_stream(client);
    hs_notifier__unsubscribe(n, client, NULL);
    hs_map_remove(&n->clients, client->id, strlen(client->id));
    hs_notifier__stop_client_timer(&client->expiry);
    hs_notifier__stop_client_timer(&client->window);
    if (client->ip)
        client->ip->conns--;
    hs_notifier__drop_held(client);
    hs_notifier__set_claims(client, &(hs_token_claims_t){0});
    hs_free(client);
    maybe_finish_shutdown(n);
}

/* Removes a connection for good: the in-memory index, the directory, the
 * store (rows and subscriptions); its transport, when it has one, closes
 * with code and reason (unless it ended by itself). */
static void remove_client(hs_notifier_t *n, client_t *client, uint16_t code, const char *reason)
{
    if (hs_notifier__client_attached(client)) { /* a detached one left the directory already */
        hs_bus_unregister_connection(n->bus, n->node_id, client->id);
        hs_notifier__client_drop_transport(client, code, reason);
    }
    hs_notifier__conn_write(n, CW_REMOVE, client->id, 0, 0);
    hs_notifier__free_client(n, client);
}

/* A detached connection goes from this node: its rows too, unless a resume
 * took it over since (the store compares the epoch). */
static void expire_client(hs_notifier_t *n, client_t *client)
{
    hs_notifier__conn_write(n, CW_EXPIRE, client->id, client->epoch, 0);
    hs_notifier__free_client(n, client);
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

/* The transport dropped without a clean close (or is closed now with code
 * and reason): the connection keeps its subscriptions (memory and store)
 * for --resume-window, leaves the directory and is marked detached in the
 * store, so a resume anywhere may claim it. Detached is having no
 * transport. */
void hs_notifier__detach(hs_notifier_t *n, client_t *client, uint16_t code, const char *reason)
{
    hs_notifier__client_drop_transport(client, code, reason);
    client->replaying = false;
    client->held_overflow = false;
    hs_notifier__drop_held(client);
    hs_notifier__drop_stream(client);
    if (client->ip) {
        client->ip->conns--;
        client->ip = NULL;
    }
    hs_notifier__stop_client_timer(&client->expiry); /* a resume presents a token again */
    hs_notifier__flush_ack(n, client);
    hs_bus_unregister_connection(n->bus, n->node_id, client->id);
    client->detached_ms = hs_now_ms();
    hs_notifier__conn_write(n, CW_RELEASE, client->id, client->epoch, client->detached_ms);
    client->window = hs_calloc(1, sizeof(*client->window));
    client->window->client = client;
    uv_timer_init(hs_net_loop(n->net), &client->window->timer);
    client->window->timer.data = client->window;
    uv_timer_start(&client->window->timer, window_cb, n->cfg->resume_window_ms, 0);
    hs_log_info("notifier: conn %s detached; resumable for %llu ms", client->id,
                (unsigned long long)n->cfg->resume_window_ms);
}

/* The client's transport ends: by itself (the transport reports it, with
 * ended set), or because the server closes it now with code and reason.
 * keep says whether the client may come back (no clean close): it is then
 * detached, else removed. */
void hs_notifier__transport_ended(hs_notifier_t *n, client_t *client, bool keep, uint16_t code,
                                  const char *reason)
{
    if (keep && n->cfg->resume_window_ms > 0 && !n->shutting_down)
        hs_notifier__detach(n, client, code, reason);
    else
        remove_client(n, client, code, reason);
}

/* Ends the client for a reason of the server's (a kick, a policy, its
 * token's expiry, a reader too slow): at once - it leaves the index, the
 * directory and the store now, not when the peer answers the close frame -
 * and for good. The client is freed: the caller must not use it, nor be
 * walking a list it is on (flush_run defers to end_slow_clients). */
void hs_notifier__end_client(hs_notifier_t *n, client_t *client, uint16_t code, const char *reason)
{
    remove_client(n, client, code, reason);
}

/* Closes the transport with 1001 so that the client resumes, and detaches
 * it at once: a resume racing the close handshake finds it resumable. */
void hs_notifier__ask_to_resume(hs_notifier_t *n, client_t *client, const char *reason)
{
    hs_notifier__transport_ended(n, client, true, 1001, reason);
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
    client_t *client = hs_notifier__ref_client(&reg->ref, &same);
    if (status != 0)
        hs_log_warn("notifier: conn %s: the directory is unreachable (%s); it is registered "
                    "again when the bus is back",
                    reg->ref.id, hs_strerror(status));
    if (client && same && reg->resume) {
        hs_store_get_connection(reg->ref.notifier->store, client->id, hs_notifier__reread_cb, reg);
        return;
    }
    if (client && same)
        hs_notifier__send_connected(reg->ref.notifier, client, reg->asked, false, 0, NULL, false);
    hs_free(reg);
}

void hs_notifier__register_client(hs_notifier_t *n, client_t *client, bool asked,
                                  const resume_ask_t *resume)
{
    registration_t *reg = hs_calloc(1, sizeof(*reg));
    hs_notifier__client_ref_init(&reg->ref, client);
    reg->asked = asked;
    if (resume) {
        reg->resume = true;
        reg->ask = *resume;
    }
    hs_bus_register_connection(n->bus, n->node_id, client->id, registered_cb, reg);
}

/* Puts a transport just accepted on client: a new attach. */
void hs_notifier__attach(hs_notifier_t *n, client_t *client, transport_t *transport,
                         hs_token_claims_t *claims, ip_entry_t *ip_entry)
{
    client->transport = transport;
    transport->client = client;
    client->attach_gen = ++n->next_serial;
    hs_notifier__set_claims(client, claims);
    client->ip = ip_entry;
    ip_entry->conns++;
    client->msg_tokens = 2.0 * (double)n->cfg->client_message_rate;
    client->msg_refill_ms = uv_now(hs_net_loop(n->net));
    hs_notifier__arm_expiry(n, client);
}

client_t *hs_notifier__client_new(hs_notifier_t *n, const char *id, uint64_t connected_ms)
{
    client_t *client = hs_calloc(1, sizeof(*client));
    client->notifier = n;
    client->connected_ms = connected_ms;
    client->serial = ++n->next_serial;
    memcpy(client->id, id, sizeof(client->id));
    hs_map_put(&n->clients, client->id, HS_ULID_LEN, client);
    return client;
}

/* A new connection on a transport that was just accepted. */
void hs_notifier__open_client(hs_notifier_t *n, bool asked, transport_t *transport,
                              hs_token_claims_t *claims, ip_entry_t *ip_entry)
{
    char id[HS_ULID_LEN + 1];
    hs_ulid_t uid;
    hs_ulid_new(&uid);
    hs_ulid_format(&uid, id);
    client_t *client = hs_notifier__client_new(n, id, hs_now_ms());
    hs_notifier__attach(n, client, transport, claims, ip_entry);
    hs_notifier__register_client(n, client, asked, NULL);
    /* Its row, tried again while the store is away (notifier_rows.c); the
     * serial tells a retry it is still this client. */
    hs_notifier__conn_write(n, CW_ADD, client->id, client->serial, 0);
    hs_log_info("notifier: conn %s connected from %s%s%s%s%s", client->id, client->ip->ip,
                client->ip->proxied ? " (via a proxy)" : "", transport->ops->log_note,
                hs_notifier__claims(client)->sub ? " as " : "",
                hs_notifier__claims(client)->sub ? hs_notifier__claims(client)->sub : "");
}

/* ---- the transports' routes --------------------------------------------- */

/* GET /api/v1/ws and GET /api/v1/sse: admission, then a resume by token, or a
 * new connection on the transport accept makes. */
static void connect_route(hs_notifier_t *n, hs_http_request_t *req, transport_accept_fn accept)
{
    hs_token_claims_t claims = {0};
    ip_entry_t *ip_entry;
    if (!hs_notifier__admit(n, req, &claims, &ip_entry))
        return;
    resume_ask_t ask;
    hs_notifier__read_resume_ask(req, &ask);
    if (ask.asked && hs_notifier__start_takeover(n, req, accept, &ask, &claims, ip_entry))
        return;
    transport_t *transport = accept(n, req);
    if (transport == NULL) {
        hs_token_claims_dispose(&claims);
        return;
    }
    hs_notifier__open_client(n, ask.asked, transport, &claims, ip_entry);
}

static void ws_route(hs_http_request_t *req, void *ctx)
{
    connect_route(ctx, req, hs_notifier__ws_accept);
}

static void sse_route(hs_http_request_t *req, void *ctx)
{
    connect_route(ctx, req, hs_notifier__sse_accept);
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
    hs_notifier__order_init(n);
    if (bus && hs_bus_redelivers(bus)) /* no bus: only listing the routes */
        n->dedupe = hs_dedupe_new(cfg->dedupe_window);
    n->fences = hs_fences_new();
    n->router = hs_router_new();
    hs_router_add(n->router, HTTP_GET, "/api/v1/ws", ws_route, n);
    /* Held behind pipelined requests until they are answered, as the
     * WebSocket upgrade is: the stream takes the connection. */
    hs_router_add_takeover(n->router, HTTP_GET, "/api/v1/sse", sse_route, n);
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
    hs_http_limits_from_config(&limits, cfg);
    limits.max_body = 4096; /* nothing is posted to the WebSocket port */
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
        if (hs_notifier__client_attached(client))
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
        hs_notifier__flush_ack(n, client);
    hs_notifier__conn_writes_retry(n);
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
    int rc = hs_bus_serve_node(n->bus, n->node_id, hs_notifier__handle_command, n);
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
    hs_notifier__flush_run(n);
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
    hs_notifier__order_stop(n);
    /* Detached connections go at once (nothing will resume them here);
     * collected first, since removing changes the map. */
    size_t count = hs_map_count(&n->clients), gone = 0, pos = 0;
    client_t **detached = hs_calloc(count ? count : 1, sizeof(*detached));
    client_t *client;
    while ((client = hs_map_next(&n->clients, &pos)) != NULL) {
        if (!hs_notifier__client_attached(client))
            detached[gone++] = client;
        else /* its end is reported as usual, and removes it */
            client->transport->ops->close(client->transport, 1001, "server shutting down");
    }
    for (size_t i = 0; i < gone; i++)
        expire_client(n, detached[i]);
    hs_free(detached);
    hs_http_server_shutdown(n->http, http_shutdown_cb, n);
}

void hs_notifier_free(hs_notifier_t *n)
{
    for (size_t i = 0; i < n->run.count; i++)
        hs_notifier__transport_msg_dispose(&n->run.msgs[i].msg);
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
    hs_fences_free(n->fences);
    hs_free(n->ending);
    hs_notifier__conn_writes_dispose(n);
    hs_free(n->node_id);
    hs_free(n);
}
