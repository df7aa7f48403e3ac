/* notifier_admission.c - who may connect and what a client may do: Origin,
 * per-IP limits, the connection limit, client tokens (and their expiry),
 * client-side subscribes, the inbound message rate.
 */
#include <strings.h>
#include <stdlib.h>
#include <string.h>

#include "roles/notifier_internal.h"

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
const hs_token_claims_t *hs_notifier__claims(const client_t *client)
{
    static const hs_token_claims_t none;
    return client->claims ? client->claims : &none;
}

void hs_notifier__set_claims(client_t *client, hs_token_claims_t *claims)
{
    if (client->claims)
        hs_token_claims_dispose(client->claims);
    bool any = claims->sub || claims->has_exp || claims->topics || claims->topic_count;
    if (!any) {
        hs_free(client->claims);
        client->claims = NULL;
        return;
    }
    if (client->claims == NULL)
        client->claims = hs_malloc(sizeof(*client->claims));
    *client->claims = *claims;
}

bool hs_notifier__may_subscribe(const hs_notifier_t *n, const client_t *client, const char *topic)
{
    if (n->verifier)
        return hs_token_grants(hs_notifier__claims(client), topic);
    return n->open_subscribe && client->ip && ip_is_loopback(client->ip);
}

void hs_notifier__expiry_closed_cb(uv_handle_t *handle)
{
    hs_free(handle->data);
}

static void expiry_cb(uv_timer_t *timer)
{
    expiry_t *e = timer->data;
    if (e->client) {
        hs_log_info("notifier: conn %s: token expired", e->client->id);
        hs_notifier__end_client(e->client->notifier, e->client, 4001, "token expired");
    }
}

/* Closes the client at its token's "exp" (wall clock, seconds). */
void hs_notifier__arm_expiry(hs_notifier_t *n, client_t *client)
{
    const hs_token_claims_t *claims = hs_notifier__claims(client);
    if (!claims->has_exp) {
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
    int64_t now_ms = (int64_t)hs_now_ms(), at_ms = claims->exp * 1000;
    uv_timer_start(&client->expiry->timer, expiry_cb,
                   at_ms > now_ms ? (uint64_t)(at_ms - now_ms) : 0, 0);
}

/* Whether the client may send one more message now (--client-message-rate);
 * answers or closes it when not. */
bool hs_notifier__message_admitted(hs_notifier_t *n, client_t *client)
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
        hs_notifier__end_client(n, client, 1008, "too many messages");
    } else {
        hs_notifier__client_error(client, "rate_limited", "too many messages; slow down");
    }
    return false;
}

/* Whether the handshake's Origin may connect: none (not a browser), the
 * server's own origin (the console it serves), or one in --allowed-origins
 * (hs_http_origin_allowed). Checked before the upgrade, SSE included. */
static bool origin_allowed(const hs_notifier_t *n, hs_http_request_t *req)
{
    (void)n;
    return hs_http_origin_allowed(req);
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
bool hs_notifier__admit(hs_notifier_t *n, hs_http_request_t *req, hs_token_claims_t *claims_out,
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
