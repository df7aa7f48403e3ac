/* server.c - HTTP/1.1 connections on hs_net: the request cycle (deadlines,
 * pipelining, dispatch through the Host check, guard and router, answers in
 * order), the upgrade hand-off and shutdown. Reading one request (the
 * http-parser callbacks and their limits) is parse.c.
 *
 * Pipelined requests are handled concurrently and answered in order: each
 * complete request goes to its route at once and joins the connection's
 * queue; an answer waits in its request until those before it have gone
 * out. So a client with 64 publishes in flight on one connection has them
 * committed together, not one after the other. At most HS_HTTP_PIPELINE
 * requests are in flight per connection; past that, reading stops and the
 * bytes received are kept (bounded) until answers go out.
 *
 * A request that takes over the connection (an upgrade, or a request to a
 * route added with hs_router_add_takeover: an event stream) is dispatched
 * only when nothing is in flight before it; until then it is held parsed
 * (message_done) and the bytes behind it are kept. An error found while
 * reading closes the connection after the answers before it and its own. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/error.h"
#include "core/log.h"
#include "http/http_internal.h"
#include "http/origin.h"

#define HS_HTTP_PIPELINE 64 /* requests in flight per connection */

static bool process(hs_http_conn_t *hc, const char *data, size_t len);
static void after_progress(hs_http_conn_t *hc);

/* The flags' defaults (core/config.c): a listener that is not given a
 * configuration (the unit tests) runs with the limits a user gets. */
void hs_http_limits_default(hs_http_limits_t *limits)
{
    *limits = (hs_http_limits_t){
        .max_url = 8192,
        .max_header_bytes = 16384,
        .max_headers = 64,
        .max_body = 1024 * 1024,
        .header_timeout_ms = 10000,
        .body_timeout_ms = 10000,
        .idle_timeout_ms = 60000,
        .max_requests_per_conn = 10000,
    };
}

void hs_http_limits_from_config(hs_http_limits_t *limits, const hs_config_t *cfg)
{
    hs_http_limits_default(limits);
    limits->max_body = cfg->max_body;
    limits->header_timeout_ms = cfg->header_timeout_ms;
    limits->body_timeout_ms = cfg->body_timeout_ms;
    limits->idle_timeout_ms = cfg->idle_timeout_ms;
    limits->max_requests_per_conn = (unsigned)cfg->keepalive_requests;
}

/* ---- connection list and shutdown ----------------------------------------- */

static void maybe_shutdown_done(hs_http_server_t *s)
{
    if (s->shutting_down && s->conn_count == 0 && s->shutdown_cb) {
        void (*cb)(hs_http_server_t *, void *) = s->shutdown_cb;
        s->shutdown_cb = NULL;
        cb(s, s->shutdown_data);
    }
}

static void unlink_conn(hs_http_conn_t *hc)
{
    hs_http_server_t *s = hc->server;
    if (hc->prev)
        hc->prev->next = hc->next;
    else
        s->conns = hc->next;
    if (hc->next)
        hc->next->prev = hc->prev;
    hc->prev = hc->next = NULL;
    s->conn_count--;
}

/* Lets go of the queue: answered requests are freed, the others stay with
 * their routes, whose answer then goes nowhere (hs_http_respond frees). */
static void detach_queue(hs_http_conn_t *hc)
{
    hs_http_request_t *req = hc->head;
    while (req) {
        hs_http_request_t *next = req->next_in_flight;
        req->next_in_flight = NULL;
        if (req->answer) {
            hs_buf_unref(req->answer);
            hs_http__request_free(req);
        } else {
            req->hc = NULL;
        }
        req = next;
    }
    hc->head = hc->tail = NULL;
    hc->in_flight = 0;
}

static void conn_close_cb(hs_conn_t *conn)
{
    hs_http_conn_t *hc = hs_conn_data(conn);
    hs_http_server_t *s = hc->server;
    unlink_conn(hc);
    if (hc->req)
        hs_http__request_free(hc->req);
    detach_queue(hc);
    hs_free(hc->saved);
    hs_free(hc);
    maybe_shutdown_done(s);
}

/* ---- deadlines -------------------------------------------------------------- */

static void start_timer(hs_http_conn_t *hc, uint64_t ms, hs_conn_timer_cb cb)
{
    if (ms > 0)
        hs_conn_timer_start(hc->conn, ms, cb);
    else
        hs_conn_timer_stop(hc->conn);
}

static void fail_request(hs_http_conn_t *hc, int status, const char *code, const char *message);

/* The head (or, once it is complete, the body) did not arrive in time. */
static void request_timeout_cb(hs_conn_t *conn)
{
    hs_http_conn_t *hc = hs_conn_data(conn);
    if (hc->req == NULL) { /* not one byte of a request: just go */
        if (hc->in_flight == 0)
            hs_conn_close(conn);
        return;
    }
    fail_request(hc, 408, "request_timeout", "the request did not arrive in time");
}

void hs_http__request_deadline(hs_http_conn_t *hc, uint64_t ms)
{
    start_timer(hc, ms, request_timeout_cb);
}

static void idle_timeout_cb(hs_conn_t *conn)
{
    hs_http_conn_t *hc = hs_conn_data(conn);
    if (!hc->in_flight && hc->req == NULL)
        hs_conn_close(conn);
}

/* ---- answering ---------------------------------------------------------------- */

hs_http_persist_t hs_http__persistence(hs_http_request_t *req, int status)
{
    (void)status;
    hs_http_conn_t *hc = req->hc;
    hs_http_server_t *s = hc->server;
    if (req->force_close || !req->keep_alive)
        return HS_HTTP_CLOSE;
    if (s->limits.max_requests_per_conn && req->conn_seq >= s->limits.max_requests_per_conn)
        return HS_HTTP_CLOSE;
    /* The last answer before a shutdown or the client's end of stream says
     * so; answers before it keep the connection for the ones after. */
    bool last = hc->tail == req && hc->req == NULL && hc->saved_len == 0;
    if (last && (s->shutting_down || hc->peer_eof))
        return HS_HTTP_CLOSE;
    if (req->http_major == 1 && req->http_minor == 0)
        return HS_HTTP_KEEP_EXPLICIT;
    return HS_HTTP_KEEP;
}

/* Ready for the next request: read again, under the idle deadline unless a
 * partial request is already under its own. */
static void ready_for_next(hs_http_conn_t *hc)
{
    if (hs_conn_closing(hc->conn))
        return;
    hs_conn_resume_read(hc->conn);
    if (hc->req == NULL)
        start_timer(hc, hc->server->limits.idle_timeout_ms, idle_timeout_cb);
}

/* Whether process() may start or go on parsing requests now. */
static bool can_parse(const hs_http_conn_t *hc)
{
    if (hc->stop || hc->close_after || hc->in_flight >= HS_HTTP_PIPELINE)
        return false;
    if (hc->message_done) /* an upgrade waits for the queue to empty */
        return false;
    return !(hc->server->shutting_down && hc->req == NULL);
}

/* Parses the bytes kept while the queue was full. Runs from the connection's
 * timer, so a route answering from some other callback never sees the next
 * request's handler run inside its hs_http_respond call. */
static void continue_cb(hs_conn_t *conn)
{
    hs_http_conn_t *hc = hs_conn_data(conn);
    char *saved = hc->saved;
    size_t len = hc->saved_len;
    hc->saved = NULL;
    hc->saved_len = 0;
    bool alive = process(hc, saved, len);
    hs_free(saved);
    if (alive)
        after_progress(hc);
}

void hs_http__send_continue(hs_http_conn_t *hc)
{
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    hc->continue_owed = false;
    hs_buf_t *buf = hs_buf_from(cont, sizeof(cont) - 1);
    hs_conn_send_always(hc->conn, buf);
    hs_buf_unref(buf);
}

/* What the connection does next, after answers went out or a read was
 * parsed: close, parse kept bytes, read on, or wait for answers. */
static void after_progress(hs_http_conn_t *hc)
{
    if (hs_conn_closing(hc->conn) || hc->in_dispatch)
        return; /* in dispatch: process() goes on by itself */
    if (hc->close_after) {
        hs_conn_close_after_flush(hc->conn);
        return;
    }
    if (hc->continue_owed && hc->in_flight == 0 && hc->req && !hc->stop)
        hs_http__send_continue(hc);
    /* A held request goes once nothing is in flight, whether or not bytes
     * were kept behind it (an upgrade is often the last thing written). */
    if ((hc->saved_len > 0 && can_parse(hc)) || (hc->message_done && hc->in_flight == 0)) {
        hs_conn_timer_start(hc->conn, 0, continue_cb);
        return;
    }
    if (hc->in_flight == 0 && hc->req == NULL && hc->saved_len == 0 && !hc->message_done) {
        if (hc->peer_eof || hc->stop || hc->server->shutting_down) {
            hs_conn_close_after_flush(hc->conn);
            return;
        }
        ready_for_next(hc);
        return;
    }
    if (can_parse(hc) && hc->saved_len == 0)
        hs_conn_resume_read(hc->conn);
    else
        hs_conn_pause_read(hc->conn);
}

/* Sends the answers at the front of the queue that are ready, in order. */
static void drain_answers(hs_http_conn_t *hc)
{
    uint64_t now = uv_now(hs_net_loop(hs_conn_net(hc->conn)));
    while (hc->head && hc->head->answer) {
        hs_http_request_t *req = hc->head;
        hc->head = req->next_in_flight;
        if (hc->head == NULL)
            hc->tail = NULL;
        hc->in_flight--;
        hs_conn_send_always(hc->conn, req->answer);
        hs_buf_unref(req->answer);
        int status = req->answer_status;
        if ((status >= 500 ? HS_LOG_WARN : HS_LOG_DEBUG) >= hs_log_singleton.threshold) {
            /* The target's query may carry a token: logged masked. */
            char target[512];
            hs_http_loggable_target(req, target, sizeof(target));
            hs_log_write(status >= 500 ? HS_LOG_WARN : HS_LOG_DEBUG,
                         "http: %s %s %s%s%s %s %s -> %d (%llu ms)", hc->server->name, req->id,
                         req->client_addr[0] ? req->client_addr : hs_conn_peer(hc->conn),
                         req->proxied ? " via " : "", req->proxied ? hs_conn_peer(hc->conn) : "",
                         req->path ? http_method_str(req->method) : "-", req->path ? target : "-",
                         status, (unsigned long long)(now - req->start_ms));
        }
        bool close = req->answer_persist == HS_HTTP_CLOSE;
        hs_http__request_free(req);
        if (close) {
            /* Nothing after an answer that says close is sent. */
            hc->close_after = true;
            hc->stop = true;
            detach_queue(hc);
            break;
        }
    }
    after_progress(hc);
}

void hs_http__send_response(hs_http_request_t *req, int status, hs_buf_t *response,
                            hs_http_persist_t persist)
{
    hs_http_conn_t *hc = req->hc;
    req->answer = response;
    req->answer_status = status;
    req->answer_persist = persist;
    drain_answers(hc);
}

hs_conn_t *hs_http_request_conn(const hs_http_request_t *req)
{
    return req->hc ? req->hc->conn : NULL;
}

static void enqueue(hs_http_conn_t *hc, hs_http_request_t *req)
{
    req->next_in_flight = NULL;
    if (hc->tail)
        hc->tail->next_in_flight = req;
    else
        hc->head = req;
    hc->tail = req;
    hc->in_flight++;
}

/* An error found while reading a request (no route involved): answer it
 * after the answers before it and close, since the rest of the stream cannot
 * be trusted. */
static void fail_request(hs_http_conn_t *hc, int status, const char *code, const char *message)
{
    if (hc->req == NULL) {
        hc->req = hs_http__request_new(hc->server, hc);
        hc->req->start_ms = uv_now(hs_net_loop(hs_conn_net(hc->conn)));
    }
    hs_http_request_t *req = hc->req;
    hc->req = NULL;
    hc->message_done = false;
    hc->continue_owed = false;
    snprintf(req->id, sizeof(req->id), "r%llu", (unsigned long long)++hc->server->request_seq);
    req->force_close = true;
    hc->stop = true;
    enqueue(hc, req);
    hs_conn_timer_stop(hc->conn);
    hs_conn_pause_read(hc->conn);
    hs_log_debug("http: %s %s %s rejected: %d %s", hc->server->name, req->id,
                 hs_conn_peer(hc->conn), status, message);
    hs_http_respond_error(req, status, code, "%s", message);
}

/* ---- the request cycle ------------------------------------------------------ */

/* The client address: the peer's, or behind a trusted proxy the one it
 * relays for. */
static void resolve_client(hs_http_conn_t *hc, hs_http_request_t *req)
{
    char peer[HS_CLIENT_ADDR_MAX];
    hs_addr_from_peer(hs_conn_peer(hc->conn), peer, sizeof(peer));
    const hs_http_policy_t *policy = hc->server->policy;
    if (policy == NULL || hs_addr_list_count(policy->trusted_proxies) == 0) {
        snprintf(req->client_addr, sizeof(req->client_addr), "%s", peer);
        return;
    }
    char *xff = hs_http__request_header_joined(req, "x-forwarded-for");
    char *forwarded = hs_http__request_header_joined(req, "forwarded");
    req->proxied = hs_client_addr_resolve(policy->trusted_proxies, peer, xff, forwarded,
                                          req->client_addr, sizeof(req->client_addr));
    hs_free(xff);
    hs_free(forwarded);
}

/* The Host check (DNS rebinding): true when the request may go on. */
static bool host_allowed(const hs_http_server_t *s, const hs_http_request_t *req)
{
    if (s->policy == NULL || s->policy->allowed_hosts == NULL)
        return true;
    size_t len;
    const char *host = hs_http_header(req, "host", &len);
    return host == NULL || hs_http_host_allowed(s->policy->allowed_hosts, host, len);
}

static void dispatch(hs_http_conn_t *hc)
{
    hs_http_server_t *s = hc->server;
    hs_http_request_t *req = hc->req;
    hc->req = NULL;
    hc->message_done = false;
    hc->continue_owed = false;
    enqueue(hc, req);
    req->conn_seq = ++hc->requests;
    hs_conn_timer_stop(hc->conn);
    req->method = (enum http_method)hc->parser.method;
    req->http_major = hc->parser.http_major;
    req->http_minor = hc->parser.http_minor;
    req->keep_alive = http_should_keep_alive(&hc->parser) != 0;
    req->is_head = req->method == HTTP_HEAD;
    snprintf(req->id, sizeof(req->id), "r%llu", (unsigned long long)++s->request_seq);
    /* After a request that closes the connection, nothing more is read. */
    if (!req->keep_alive ||
        (s->limits.max_requests_per_conn && req->conn_seq >= s->limits.max_requests_per_conn))
        hc->stop = true;

    hc->in_dispatch = true;
    hs_http_handler_fn fn;
    void *ctx;
    char allow[128];
    resolve_client(hc, req);
    int rc = hs_http__request_parse_target(req);
    if (rc != 0) {
        hs_http_respond_error(req, 400, "bad_request", "invalid query string");
    } else if (!host_allowed(s, req)) {
        /* Before the guard and CORS: a page that re-pointed its own name at
         * this machine learns nothing, not even whether a key is needed. */
        size_t host_len = 0;
        const char *host = hs_http_header(req, "host", &host_len);
        hs_log_info("http: %s %s %s: Host \"%.*s\" refused (--allowed-hosts)", s->name, req->id,
                    req->client_addr, host_len > 100 ? 100 : (int)host_len, host ? host : "");
        hs_http_respond_error(req, 421, "misdirected_request",
                              "this server does not answer to that Host; use localhost or a "
                              "loopback address, or list the name in --allowed-hosts");
    } else if (s->guard && req->method != HTTP_OPTIONS && !s->guard(req, s->guard_ctx)) {
        /* Refused (and answered) before routing: without credentials, not
         * even which paths exist is told. Preflights carry no credentials
         * (browsers never send them) and only describe the CORS policy. */
    } else if ((rc = hs_router_match(s->router, req->method, req->path, req->path_len, req, &fn,
                                     &ctx, allow, sizeof(allow))) == HS_ENOTFOUND) {
        hs_http_respond_error(req, 404, "not_found", "no such path: %s", req->path);
    } else if (rc == HS_EMETHOD && req->method == HTTP_OPTIONS && s->cors) {
        hs_http__cors_options(req, allow);
    } else if (rc == HS_EMETHOD) {
        char extra[160];
        snprintf(extra, sizeof(extra), "Allow: %s\r\n", allow);
        hs_http_respond_error_with(req, 405, "method_not_allowed", extra,
                                   "%s is not allowed here; use %s", http_method_str(req->method),
                                   allow);
    } else {
        fn(req, ctx);
    }
    hc->in_dispatch = false;
}

/* Keeps bytes that cannot be parsed yet (the queue is full, or an upgrade
 * waits). Reading is paused meanwhile, so this holds at most one read's worth
 * plus the unparsed rest of earlier ones; the bound is a safety net. */
static bool keep_bytes(hs_http_conn_t *hc, const char *data, size_t len)
{
    if (len == 0)
        return true;
    const hs_http_limits_t *l = &hc->server->limits;
    if (hc->saved_len + len > l->max_url + l->max_header_bytes + l->max_body + 65536) {
        hs_log_warn("http: %s %s: too many pipelined bytes; closing", hc->server->name,
                    hs_conn_peer(hc->conn));
        hs_conn_close(hc->conn);
        return false;
    }
    hc->saved = hs_realloc(hc->saved, hc->saved_len + len);
    memcpy(hc->saved + hc->saved_len, data, len);
    hc->saved_len += len;
    return true;
}

static void parse_error(hs_http_conn_t *hc)
{
    if (hc->error_status) {
        fail_request(hc, hc->error_status, hc->error_code, hc->error_message);
        return;
    }
    enum http_errno err = HTTP_PARSER_ERRNO(&hc->parser);
    if (err == HPE_HEADER_OVERFLOW) {
        fail_request(hc, 431, "header_fields_too_large", "request headers are too large");
        return;
    }
    char message[160];
    snprintf(message, sizeof(message), "malformed request: %s", http_errno_description(err));
    fail_request(hc, 400, "bad_request", message);
}

/* After a route took the connection: free HTTP's state, pass the bytes that
 * followed the upgrade request to the new protocol, and let it read. */
static void finish_upgrade(hs_http_conn_t *hc, const char *rest, size_t rest_len)
{
    hs_conn_t *conn = hc->conn;
    hs_free(hc->saved);
    hs_free(hc);
    if (hs_conn_closing(conn))
        return;
    hs_conn_resume_read(conn);
    if (rest_len > 0)
        hs_conn_inject(conn, rest, rest_len);
}

/* Whether the request just parsed (hc->req) takes the connection over, and
 * so must wait until nothing is in flight before it. */
static bool takes_over(const hs_http_conn_t *hc)
{
    if (hc->parser.upgrade)
        return true;
    const hs_http_request_t *req = hc->req;
    const char *url = req->url ? req->url : "";
    const char *mark = memchr(url, '?', req->url_len);
    size_t path_len = mark ? (size_t)(mark - url) : req->url_len;
    return hs_router_takes_over(hc->server->router, (enum http_method)hc->parser.method, url,
                                path_len);
}

/* Parses data and dispatches each complete request at once. Bytes that
 * cannot be parsed yet are kept for later. Returns false when hc no longer
 * exists (the connection was upgraded to another protocol). */
static bool process(hs_http_conn_t *hc, const char *data, size_t len)
{
    for (;;) {
        if (hs_conn_closing(hc->conn))
            return true;
        if (hc->message_done) {
            /* A request that may take the connection over goes to its
             * route only once nothing is in flight before it. */
            if (hc->in_flight > 0) {
                hs_conn_pause_read(hc->conn);
                return keep_bytes(hc, data, len);
            }
            dispatch(hc);
            if (hc->upgraded) {
                finish_upgrade(hc, data, len);
                return false;
            }
            continue;
        }
        if (len == 0)
            return true;
        if (!can_parse(hc)) {
            if (hc->stop || hc->close_after)
                return true; /* nothing after a close is read */
            hs_conn_pause_read(hc->conn);
            return keep_bytes(hc, data, len);
        }
        if (HTTP_PARSER_ERRNO(&hc->parser) == HPE_PAUSED)
            http_parser_pause(&hc->parser, 0);
        size_t n = http_parser_execute(&hc->parser, &hs_http__parser_settings, data, len);
        enum http_errno err = HTTP_PARSER_ERRNO(&hc->parser);
        if (err != HPE_OK && err != HPE_PAUSED) {
            parse_error(hc);
            return true;
        }
        if (n > len)
            n = len;
        data += n;
        len -= n;
        if (!hc->message_done)
            return true; /* everything was consumed; the request goes on */
        /* After a request with "Upgrade", the parser stops; the bytes behind
         * it belong to the new protocol if the route switches, else they
         * are parsed as HTTP like any pipelined request. An event stream
         * is held the same way; the bytes behind it go to its handler. */
        if (hc->in_flight > 0 && takes_over(hc))
            continue; /* held until the queue is empty */
        dispatch(hc);
        if (hc->upgraded) {
            finish_upgrade(hc, data, len);
            return false;
        }
    }
}

static void http_on_read(hs_conn_t *conn, const char *data, size_t len)
{
    hs_http_conn_t *hc = hs_conn_data(conn);
    if (process(hc, data, len))
        after_progress(hc);
}

static void http_on_eof(hs_conn_t *conn, int status)
{
    hs_http_conn_t *hc = hs_conn_data(conn);
    hc->peer_eof = true;
    if (status != UV_EOF)
        return; /* the net layer closes */
    /* A partial request is dropped; requests in flight or kept are
     * answered, then the connection closes (after_progress). */
    if (hc->req && !hc->message_done) {
        hs_http__request_free(hc->req);
        hc->req = NULL;
        hc->continue_owed = false;
        hs_conn_timer_stop(conn);
    }
    after_progress(hc);
}

static const hs_conn_handler_t http_handler = {
    .on_read = http_on_read,
    .on_eof = http_on_eof,
    .on_close = conn_close_cb,
};

/* ---- upgrade ---------------------------------------------------------------- */

/* Between hs_http_upgrade and the caller's hs_conn_set_handler. */
static void orphan_read(hs_conn_t *conn, const char *data, size_t len)
{
    (void)data;
    (void)len;
    hs_conn_close(conn); /* the route took the connection but set no handler */
}

static void orphan_close_cb(hs_conn_t *conn)
{
    (void)conn;
}

static const hs_conn_handler_t orphan_handler = {.on_read = orphan_read,
                                                 .on_close = orphan_close_cb};

bool hs_http_can_take_over(const hs_http_request_t *req)
{
    const hs_http_conn_t *hc = req->hc;
    return hc != NULL && hc->head == req && hc->in_flight == 1;
}

hs_conn_t *hs_http_upgrade(hs_http_request_t *req)
{
    hs_http_conn_t *hc = req->hc;
    if (hc && HS_LOG_DEBUG >= hs_log_singleton.threshold) {
        char target[512];
        hs_http_loggable_target(req, target, sizeof(target));
        hs_log_write(HS_LOG_DEBUG, "http: %s %s %s%s%s %s %s -> taken over", hc->server->name,
                     req->id, req->client_addr, req->proxied ? " via " : "",
                     req->proxied ? hs_conn_peer(hc->conn) : "", http_method_str(req->method),
                     target);
    }
    if (hc && hc->head == req) { /* the only one in flight (process() made sure) */
        hc->head = hc->tail = NULL;
        hc->in_flight = 0;
    }
    hs_http__request_free(req);
    if (hc == NULL)
        return NULL;
    hs_conn_t *conn = hc->conn;
    hs_http_server_t *s = hc->server;
    hs_conn_timer_stop(conn);
    hs_conn_set_handler(conn, &orphan_handler, NULL);
    unlink_conn(hc);
    if (hc->in_dispatch) {
        /* process() frees hc and passes on the rest of the read once the
         * route handler returned (and has set its handler). */
        hc->upgraded = true;
    } else {
        /* Upgraded after the route handler returned: the bytes kept behind
         * the request cannot be handed over safely; there normally are none,
         * since a client waits for the 101 before speaking. */
        if (hc->saved_len > 0)
            hs_log_warn("http: %s %s: %zu bytes after a late upgrade dropped", s->name,
                        hs_conn_peer(conn), hc->saved_len);
        hs_free(hc->saved);
        hs_free(hc);
        hs_conn_resume_read(conn);
    }
    maybe_shutdown_done(s);
    return conn;
}

/* ---- the server ------------------------------------------------------------- */

static void accept_cb(hs_listener_t *listener, hs_conn_t *conn)
{
    hs_http_server_t *s = hs_listener_data(listener);
    hs_http_conn_t *hc = hs_calloc(1, sizeof(*hc));
    hc->conn = conn;
    hc->server = s;
    http_parser_init(&hc->parser, HTTP_REQUEST);
    hc->parser.data = hc;
    hc->next = s->conns;
    if (s->conns)
        s->conns->prev = hc;
    s->conns = hc;
    s->conn_count++;
    hs_conn_set_handler(conn, &http_handler, hc);
    /* A connection that sends nothing is dropped like a slow request. */
    start_timer(hc, s->limits.header_timeout_ms, request_timeout_cb);
}

hs_http_server_t *hs_http_server_new(hs_net_t *net, hs_router_t *router,
                                     const hs_http_limits_t *limits, const char *name)
{
    hs_http_server_t *s = hs_calloc(1, sizeof(*s));
    s->net = net;
    s->router = router;
    s->limits = *limits;
    s->name = hs_strdup(name);
    return s;
}

void hs_http_server_set_cors(hs_http_server_t *s, hs_cors_t *cors)
{
    hs_cors_free(s->cors);
    s->cors = cors;
}

void hs_http_server_set_guard(hs_http_server_t *s, bool (*guard)(hs_http_request_t *, void *),
                              void *ctx)
{
    s->guard = guard;
    s->guard_ctx = ctx;
}

int hs_http_server_listen_also(hs_http_server_t *s, const char *addr)
{
    if (s->extra_listener)
        return HS_EEXIST;
    return hs_listener_start(s->net, addr, accept_cb, s, &s->extra_listener);
}

const hs_cors_t *hs_http__server_cors(const hs_http_server_t *s)
{
    return s->cors;
}

void hs_http_server_set_policy(hs_http_server_t *s, const hs_http_policy_t *policy)
{
    s->policy = policy;
}

const hs_http_policy_t *hs_http__server_policy(const hs_http_server_t *s)
{
    return s->policy;
}

const char *hs_http_client_addr(const hs_http_request_t *req)
{
    return req->client_addr;
}

bool hs_http_request_proxied(const hs_http_request_t *req)
{
    return req->proxied;
}

bool hs_http_origin_allowed(const hs_http_request_t *req)
{
    size_t origin_len, host_len = 0;
    const char *origin = hs_http_header(req, "origin", &origin_len);
    if (origin == NULL)
        return true; /* not a browser: backends, the CLI */
    const hs_http_policy_t *policy = req->server->policy;
    if (policy && policy->allowed_origins &&
        hs_cors_allows(policy->allowed_origins, origin, origin_len))
        return true;
    const char *host = hs_http_header(req, "host", &host_len);
    return hs_http_same_origin(origin, origin_len, host, host_len);
}

int hs_http_server_listen(hs_http_server_t *s, const char *addr)
{
    return hs_listener_start(s->net, addr, accept_cb, s, &s->listener);
}

int hs_http_server_port(hs_http_server_t *s)
{
    return s->listener ? hs_listener_port(s->listener) : 0;
}

void hs_http_server_shutdown(hs_http_server_t *s, void (*cb)(hs_http_server_t *, void *),
                             void *data)
{
    s->shutting_down = true;
    s->shutdown_cb = cb;
    s->shutdown_data = data;
    if (s->extra_listener) {
        hs_listener_close(s->extra_listener);
        s->extra_listener = NULL;
    }
    if (s->listener) {
        hs_listener_close(s->listener);
        s->listener = NULL;
    }
    /* Idle connections go now; busy ones - a request in flight, or one
     * partly received, which still has its deadlines - after their answer,
     * which says "Connection: close" (hs_http__persistence). */
    for (hs_http_conn_t *hc = s->conns; hc; hc = hc->next)
        if (!hc->in_flight && hc->req == NULL)
            hs_conn_close_after_flush(hc->conn);
    maybe_shutdown_done(s);
}

void hs_http_server_free(hs_http_server_t *s)
{
    if (s == NULL)
        return;
    if (s->listener)
        hs_listener_close(s->listener);
    if (s->extra_listener)
        hs_listener_close(s->extra_listener);
    hs_cors_free(s->cors);
    hs_free(s->name);
    hs_free(s);
}
