/* server.c - HTTP/1.1 connections on hs_net: http-parser callbacks, limits,
 * deadlines, in-order pipelining, responses, upgrade hand-off, shutdown.
 *
 * One request per connection is in flight at a time. When a request is
 * complete the parser is paused, the bytes after it are kept (bounded), and
 * reading stops until the route answered; then parsing resumes on the kept
 * bytes. This gives in-order answers to pipelined requests with no
 * per-request queue. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/error.h"
#include "core/log.h"
#include "core/metrics.h"
#include "http/http_internal.h"

struct hs_http_conn {
    hs_conn_t *conn;
    hs_http_server_t *server;
    http_parser parser;
    hs_http_request_t *req; /* being parsed, or in flight */
    bool headers_done;
    bool message_done;
    bool in_flight;   /* dispatched, not answered yet */
    bool in_dispatch; /* inside the route handler call */
    bool answered;    /* answered during the current dispatch */
    bool close_after; /* close after the current answer */
    bool upgraded;
    bool peer_eof;
    int error_status; /* set by a callback that aborts parsing */
    const char *error_code;
    const char *error_message;
    char *saved; /* bytes received after the request in flight */
    size_t saved_len;
    unsigned requests;
    struct hs_http_conn *prev, *next;
};

struct hs_http_server {
    hs_net_t *net;
    hs_router_t *router;
    hs_http_limits_t limits;
    char *name;
    hs_listener_t *listener;
    hs_http_conn_t *conns;
    size_t conn_count;
    uint64_t request_seq;
    bool shutting_down;
    void (*shutdown_cb)(hs_http_server_t *, void *);
    void *shutdown_data;
};

static const hs_conn_handler_t http_handler;
static bool process(hs_http_conn_t *hc, const char *data, size_t len);
static void finish_upgrade(hs_http_conn_t *hc);
static const hs_conn_handler_t orphan_handler;

void hs_http_limits_default(hs_http_limits_t *limits)
{
    *limits = (hs_http_limits_t){
        .max_url = 8192,
        .max_header_bytes = 16384,
        .max_headers = 64,
        .max_body = 1024 * 1024,
        .header_timeout_ms = 10000,
        .body_timeout_ms = 30000,
        .idle_timeout_ms = 60000,
        .max_requests_per_conn = 0,
    };
}

const char *hs_http__reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 411:
        return "Length Required";
    case 413:
        return "Payload Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 417:
        return "Expectation Failed";
    case 426:
        return "Upgrade Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    default:
        return "Unknown";
    }
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
    s->conn_count--;
}

static void free_http_conn(hs_http_conn_t *hc)
{
    if (hc->req) {
        if (hc->in_flight)
            hc->req->hc = NULL; /* the route still owns it and will answer */
        else
            hs_http__request_free(hc->req);
    }
    hs_free(hc->saved);
    hs_free(hc);
}

static void conn_close_cb(hs_conn_t *conn)
{
    hs_http_conn_t *hc = hs_conn_data(conn);
    hs_http_server_t *s = hc->server;
    unlink_conn(hc);
    free_http_conn(hc);
    maybe_shutdown_done(s);
}

/* ---- responses ------------------------------------------------------------ */

static void request_done(hs_http_conn_t *hc);

static hs_buf_t *build_head(int status, const char *content_type, size_t body_len, bool has_body,
                            bool close, const char *extra)
{
    char head[1024];
    int n = snprintf(head, sizeof(head), "HTTP/1.1 %d %s\r\n", status, hs_http__reason(status));
    if (content_type && has_body)
        n += snprintf(head + n, sizeof(head) - (size_t)n, "Content-Type: %s\r\n", content_type);
    if (status != 204 && status >= 200)
        n += snprintf(head + n, sizeof(head) - (size_t)n, "Content-Length: %zu\r\n", body_len);
    if (close)
        n += snprintf(head + n, sizeof(head) - (size_t)n, "Connection: close\r\n");
    hs_buf_t *buf = hs_buf_new((size_t)n + (extra ? strlen(extra) : 0) + 2 + body_len);
    buf = hs_buf_append(buf, head, (size_t)n);
    if (extra)
        buf = hs_buf_append(buf, extra, strlen(extra));
    buf = hs_buf_append(buf, "\r\n", 2);
    return buf;
}

/* Whether the connection must close after answering req. */
static bool must_close(hs_http_conn_t *hc, hs_http_request_t *req, int status)
{
    hs_http_server_t *s = hc->server;
    if (hc->close_after || s->shutting_down || !req || !req->keep_alive || hc->peer_eof)
        return true;
    if (s->limits.max_requests_per_conn && hc->requests >= s->limits.max_requests_per_conn)
        return true;
    /* After an error the request body may not have been read. */
    return status >= 400 && !hc->message_done;
}

void hs_http_respond(hs_http_request_t *req, int status, const char *content_type,
                     const char *extra_headers, const void *body, size_t body_len)
{
    hs_http_conn_t *hc = req->hc;
    if (hc == NULL) {
        hs_http__request_free(req);
        return;
    }
    if (status >= 100 && status < 600)
        hs_metrics_singleton.http_responses[status]++;
    bool close = must_close(hc, req, status);
    bool send_body = !req->is_head && body_len > 0;
    hs_buf_t *buf = build_head(status, content_type, body_len, body_len > 0, close, extra_headers);
    if (send_body)
        buf = hs_buf_append(buf, body, body_len);
    hs_conn_send_always(hc->conn, buf);
    hs_buf_unref(buf);
    hs_log_debug("http: %s %s %s %.*s -> %d", hc->server->name, req->id,
                 http_method_str(req->method), (int)req->path_len, req->url ? req->url : "",
                 status);
    if (close)
        hc->close_after = true;
    request_done(hc);
}

void hs_http_respond_json(hs_http_request_t *req, int status, json_t *json)
{
    char *text = json_dumps(json, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(json);
    if (text == NULL) {
        hs_http_respond_error(req, 500, "internal", "could not encode the answer");
        return;
    }
    hs_http_respond(req, status, "application/json", NULL, text, strlen(text));
    free(text);
}

static void respond_error_v(hs_http_request_t *req, int status, const char *code, const char *extra,
                            const char *fmt, va_list ap)
{
    char message[512];
    vsnprintf(message, sizeof(message), fmt, ap);
    json_t *body = json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", message);
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    hs_http_respond(req, status, "application/json", extra, text, text ? strlen(text) : 0);
    free(text);
}

void hs_http_respond_error(hs_http_request_t *req, int status, const char *code, const char *fmt,
                           ...)
{
    va_list ap;
    va_start(ap, fmt);
    respond_error_v(req, status, code, NULL, fmt, ap);
    va_end(ap);
}

void hs_http_respond_error_with(hs_http_request_t *req, int status, const char *code,
                                const char *extra, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    respond_error_v(req, status, code, extra, fmt, ap);
    va_end(ap);
}

void hs_http_respond_empty(hs_http_request_t *req, int status)
{
    hs_http_respond(req, status, NULL, NULL, NULL, 0);
}

hs_conn_t *hs_http_request_conn(const hs_http_request_t *req)
{
    return req->hc ? req->hc->conn : NULL;
}

/* An error found while parsing: answer it (there is no route) and close. */
static void fail_request(hs_http_conn_t *hc, int status, const char *code, const char *message)
{
    if (hc->req == NULL)
        hc->req = hs_http__request_new(hc->server, hc);
    hs_http_request_t *req = hc->req;
    hc->in_flight = true;
    hc->close_after = true;
    hs_log_debug("http: %s %s rejected: %d %s", hc->server->name, hs_conn_peer(hc->conn), status,
                 message);
    hs_http_respond_error(req, status, code, "%s", message);
}

/* ---- the request cycle ---------------------------------------------------- */

static void start_timer(hs_http_conn_t *hc, uint64_t ms, hs_conn_timer_cb cb)
{
    if (ms > 0)
        hs_conn_timer_start(hc->conn, ms, cb);
    else
        hs_conn_timer_stop(hc->conn);
}

static void header_timeout_cb(hs_conn_t *conn)
{
    hs_http_conn_t *hc = hs_conn_data(conn);
    if (hc->in_flight)
        return;
    hs_log_debug("http: %s %s: request not received in time", hc->server->name, hs_conn_peer(conn));
    fail_request(hc, 408, "request_timeout", "the request did not arrive in time");
}

static void idle_timeout_cb(hs_conn_t *conn)
{
    hs_http_conn_t *hc = hs_conn_data(conn);
    if (!hc->in_flight && hc->req == NULL && hc->saved_len == 0)
        hs_conn_close(conn);
}

static void dispatch(hs_http_conn_t *hc)
{
    hs_http_server_t *s = hc->server;
    hs_http_request_t *req = hc->req;
    hc->in_flight = true;
    hc->requests++;
    hs_conn_timer_stop(hc->conn);
    hs_conn_pause_read(hc->conn);
    req->method = (enum http_method)hc->parser.method;
    req->http_major = hc->parser.http_major;
    req->http_minor = hc->parser.http_minor;
    req->keep_alive = http_should_keep_alive(&hc->parser) != 0;
    req->is_head = req->method == HTTP_HEAD;
    snprintf(req->id, sizeof(req->id), "r%llu", (unsigned long long)++s->request_seq);

    if (hs_http__request_parse_query(req) != 0) {
        hs_http_respond_error(req, 400, "bad_request", "invalid query string");
        return;
    }
    hs_http_handler_fn fn;
    void *ctx;
    char allow[128];
    int rc = hs_router_match(s->router, req->method, req->url ? req->url : "/", req->path_len, req,
                             &fn, &ctx, allow, sizeof(allow));
    if (rc == HS_ENOTFOUND) {
        hs_http_respond_error(req, 404, "not_found", "no such path: %.*s", (int)req->path_len,
                              req->url ? req->url : "");
        return;
    }
    if (rc == HS_EMETHOD) {
        char extra[160];
        snprintf(extra, sizeof(extra), "Allow: %s\r\n", allow);
        hs_http_respond_error_with(req, 405, "method_not_allowed", extra,
                                   "%s is not allowed here; use %s", http_method_str(req->method),
                                   allow);
        return;
    }
    hc->in_dispatch = true;
    hc->answered = false;
    fn(req, ctx);
    hc->in_dispatch = false;
}

/* Feeds the bytes kept while a request was in flight, then reads again. */
static void continue_after_answer(hs_http_conn_t *hc)
{
    if (hc->saved_len > 0) {
        char *saved = hc->saved;
        size_t len = hc->saved_len;
        hc->saved = NULL;
        hc->saved_len = 0;
        bool alive = process(hc, saved, len);
        hs_free(saved);
        if (!alive)
            return;
    }
    if (!hc->in_flight && !hs_conn_closing(hc->conn)) {
        if (hc->peer_eof) {
            hs_conn_close_after_flush(hc->conn);
            return;
        }
        hs_conn_resume_read(hc->conn);
        if (hc->req == NULL)
            start_timer(hc, hc->server->limits.idle_timeout_ms, idle_timeout_cb);
    }
}

static void request_done(hs_http_conn_t *hc)
{
    hs_http__request_free(hc->req);
    hc->req = NULL;
    hc->in_flight = false;
    hc->headers_done = false;
    hc->message_done = false;
    if (hc->close_after) {
        hs_conn_close_after_flush(hc->conn);
        return;
    }
    http_parser_pause(&hc->parser, 0);
    if (hc->in_dispatch) {
        hc->answered = true; /* process() continues after the handler returns */
        return;
    }
    continue_after_answer(hc);
}

/* ---- http-parser callbacks ------------------------------------------------ */

static int abort_with(hs_http_conn_t *hc, int status, const char *code, const char *message)
{
    hc->error_status = status;
    hc->error_code = code;
    hc->error_message = message;
    return -1;
}

static int on_message_begin(http_parser *p)
{
    hs_http_conn_t *hc = p->data;
    hc->req = hs_http__request_new(hc->server, hc);
    hc->req->start_ms = uv_now(hs_net_loop(hs_conn_net(hc->conn)));
    hc->headers_done = hc->message_done = false;
    start_timer(hc, hc->server->limits.header_timeout_ms, header_timeout_cb);
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    hs_http_conn_t *hc = p->data;
    hs_http_request_t *req = hc->req;
    if (req->url_len + len > hc->server->limits.max_url)
        return abort_with(hc, 431, "request_line_too_large", "the request line is too long");
    req->url = hs_realloc(req->url, req->url_len + len + 1);
    memcpy(req->url + req->url_len, at, len);
    req->url_len += len;
    req->url[req->url_len] = '\0';
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    hs_http_conn_t *hc = p->data;
    const hs_http_limits_t *l = &hc->server->limits;
    if (hs_http__request_add_header_bytes(hc->req, at, len, false, l->max_header_bytes,
                                          l->max_headers) != 0)
        return abort_with(hc, 431, "header_fields_too_large",
                          "too many request headers or headers too large");
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    hs_http_conn_t *hc = p->data;
    const hs_http_limits_t *l = &hc->server->limits;
    if (hs_http__request_add_header_bytes(hc->req, at, len, true, l->max_header_bytes,
                                          l->max_headers) != 0)
        return abort_with(hc, 431, "header_fields_too_large",
                          "too many request headers or headers too large");
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    hs_http_conn_t *hc = p->data;
    hs_http_request_t *req = hc->req;
    const hs_http_limits_t *l = &hc->server->limits;
    hc->headers_done = true;
    const char *q = req->url ? memchr(req->url, '?', req->url_len) : NULL;
    req->path_len = q ? (size_t)(q - req->url) : req->url_len;
    bool has_length = (p->flags & F_CONTENTLENGTH) != 0;
    if (has_length && p->content_length > l->max_body)
        return abort_with(hc, 413, "payload_too_large", "the request body is too large");
    size_t expect_len;
    const char *expect = hs_http_header(req, "expect", &expect_len);
    bool body_expected = (has_length && p->content_length > 0) || (p->flags & F_CHUNKED);
    if (expect && body_expected) {
        if (expect_len == 12 && strncasecmp(expect, "100-continue", 12) == 0) {
            static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
            hs_buf_t *buf = hs_buf_from(cont, sizeof(cont) - 1);
            hs_conn_send_always(hc->conn, buf);
            hs_buf_unref(buf);
        } else {
            return abort_with(hc, 417, "expectation_failed", "unsupported Expect header");
        }
    }
    if (body_expected)
        start_timer(hc, l->body_timeout_ms, header_timeout_cb);
    else
        hs_conn_timer_stop(hc->conn);
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    hs_http_conn_t *hc = p->data;
    hs_http_request_t *req = hc->req;
    if (req->body_len + len > hc->server->limits.max_body)
        return abort_with(hc, 413, "payload_too_large", "the request body is too large");
    if (req->body_len + len + 1 > req->body_cap) {
        size_t cap = req->body_cap ? req->body_cap : 1024;
        if ((p->flags & F_CONTENTLENGTH) && p->content_length + req->body_len + len + 1 > cap)
            cap = req->body_len + len + p->content_length + 1;
        while (cap < req->body_len + len + 1)
            cap *= 2;
        req->body = hs_realloc(req->body, cap);
        req->body_cap = cap;
    }
    memcpy(req->body + req->body_len, at, len);
    req->body_len += len;
    req->body[req->body_len] = '\0';
    return 0;
}

static int on_message_complete(http_parser *p)
{
    hs_http_conn_t *hc = p->data;
    hc->message_done = true;
    /* Stop here: the next pipelined request waits for this one's answer. */
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

static void keep_bytes(hs_http_conn_t *hc, const char *data, size_t len)
{
    if (len == 0)
        return;
    hc->saved = hs_realloc(hc->saved, hc->saved_len + len);
    memcpy(hc->saved + hc->saved_len, data, len);
    hc->saved_len += len;
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

/* Parses data; dispatches each complete request in turn. Bytes after a
 * request that is still in flight are kept for later. Returns false when hc
 * no longer exists (the connection was upgraded to another protocol). */
static bool process(hs_http_conn_t *hc, const char *data, size_t len)
{
    while (!hs_conn_closing(hc->conn)) {
        if (hc->in_flight) {
            keep_bytes(hc, data, len);
            return true;
        }
        size_t n = http_parser_execute(&hc->parser, &parser_settings, data, len);
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
            return true; /* need more bytes (everything was consumed) */
        bool upgrade = hc->parser.upgrade != 0;
        if (upgrade) {
            /* The rest belongs to the new protocol; a route that answers the
             * Upgrade request over plain HTTP instead ends the connection,
             * since the parser stopped at the upgrade. */
            keep_bytes(hc, data, len);
            hc->close_after = true;
        }
        dispatch(hc);
        if (hc->upgraded) {
            finish_upgrade(hc);
            return false;
        }
        if (upgrade)
            return true;
        if (!hc->answered) {
            keep_bytes(hc, data, len);
            return true;
        }
        hc->answered = false;
        if (hc->close_after)
            return true;
    }
    return true;
}

static void http_on_read(hs_conn_t *conn, const char *data, size_t len)
{
    hs_http_conn_t *hc = hs_conn_data(conn);
    hs_http_server_t *s = hc->server;
    /* Bytes kept while a request is in flight are bounded: reading is paused
     * then, so at most one read's worth can arrive. */
    if (hc->saved_len > s->limits.max_header_bytes + s->limits.max_body) {
        hs_conn_close(conn);
        return;
    }
    if (!process(hc, data, len))
        return;
    if (hc->in_flight || hs_conn_closing(conn))
        return;
    /* Every request of this read was answered at once: read on. */
    if (hc->peer_eof) {
        hs_conn_close_after_flush(conn);
        return;
    }
    hs_conn_resume_read(conn);
    if (hc->req == NULL && hc->saved_len == 0)
        start_timer(hc, s->limits.idle_timeout_ms, idle_timeout_cb);
}

static void http_on_eof(hs_conn_t *conn, int status)
{
    hs_http_conn_t *hc = hs_conn_data(conn);
    hc->peer_eof = true;
    if (status != UV_EOF)
        return; /* the net layer closes */
    if (!hc->in_flight)
        hs_conn_close_after_flush(conn);
    /* else: the answer is queued when it comes, then the connection closes */
}

static const hs_conn_handler_t http_handler = {
    .on_read = http_on_read,
    .on_eof = http_on_eof,
    .on_close = conn_close_cb,
};

/* ---- upgrade ---------------------------------------------------------------- */

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

hs_conn_t *hs_http_upgrade(hs_http_request_t *req)
{
    hs_http_conn_t *hc = req->hc;
    if (hc == NULL) {
        hs_http__request_free(req);
        return NULL;
    }
    hs_conn_t *conn = hc->conn;
    hc->upgraded = true;
    hc->req = NULL;
    hs_http__request_free(req);
    hs_conn_timer_stop(conn);
    /* Until the caller installs its handler, nothing may reach HTTP's
     * state, which process() frees when the route handler returns. */
    hs_conn_set_handler(conn, &orphan_handler, NULL);
    unlink_conn(hc);
    maybe_shutdown_done(hc->server);
    return conn;
}

/* After a route took the connection: hand it the bytes that followed the
 * upgrade request, free HTTP's state, and let the new protocol read. */
static void finish_upgrade(hs_http_conn_t *hc)
{
    hs_conn_t *conn = hc->conn;
    char *saved = hc->saved;
    size_t saved_len = hc->saved_len;
    hs_free(hc);
    if (!hs_conn_closing(conn)) {
        hs_conn_resume_read(conn);
        if (saved_len > 0)
            hs_conn_inject(conn, saved, saved_len);
    }
    hs_free(saved);
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
    start_timer(hc, s->limits.header_timeout_ms, header_timeout_cb);
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
    if (s->listener) {
        hs_listener_close(s->listener);
        s->listener = NULL;
    }
    /* Idle connections go now; busy ones after their answer (must_close). */
    for (hs_http_conn_t *hc = s->conns; hc; hc = hc->next)
        if (!hc->in_flight)
            hs_conn_close_after_flush(hc->conn);
    maybe_shutdown_done(s);
}

void hs_http_server_free(hs_http_server_t *s)
{
    if (s == NULL)
        return;
    if (s->listener)
        hs_listener_close(s->listener);
    hs_free(s->name);
    hs_free(s);
}
