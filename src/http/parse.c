/* parse.c - reading one request: http-parser's callbacks fill the request
 * being parsed (hs_http_conn_t.req) and apply the limits as the bytes come,
 * before anything is buffered: the request line and headers (431), a body
 * announced or grown past --max-body (413), an Expect other than
 * 100-continue (417), and the deadlines of the head and then the body
 * (slowloris: 408). A callback that refuses records the answer
 * (abort_with) and stops the parser; server.c answers it. When a request is
 * complete the parser pauses, so server.c dispatches it before parsing the
 * next one (pipelining). */
#include <string.h>
#include <strings.h>

#include "core/alloc.h"
#include "http/http_internal.h"

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
    hc->message_done = false;
    /* From the first byte, the whole head has header_timeout_ms: a client
     * trickling bytes (slowloris) cannot hold the connection longer. */
    hs_http__request_deadline(hc, hc->server->limits.header_timeout_ms);
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

static int add_header_bytes(http_parser *p, const char *at, size_t len, bool is_value)
{
    hs_http_conn_t *hc = p->data;
    const hs_http_limits_t *l = &hc->server->limits;
    if (hs_http__request_add_header_bytes(hc->req, at, len, is_value, l->max_header_bytes,
                                          l->max_headers) != 0)
        return abort_with(hc, 431, "header_fields_too_large",
                          "too many request headers or headers too large");
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    return add_header_bytes(p, at, len, false);
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    return add_header_bytes(p, at, len, true);
}

static int on_headers_complete(http_parser *p)
{
    hs_http_conn_t *hc = p->data;
    hs_http_request_t *req = hc->req;
    const hs_http_limits_t *l = &hc->server->limits;
    bool has_length = (p->flags & F_CONTENTLENGTH) != 0;
    /* Refuse a body announced too large before it is sent. */
    if (has_length && p->content_length > l->max_body)
        return abort_with(hc, 413, "payload_too_large", "the request body is too large");
    bool body_expected = (has_length && p->content_length > 0) || (p->flags & F_CHUNKED);
    size_t expect_len;
    const char *expect = hs_http_header(req, "expect", &expect_len);
    if (expect && body_expected) {
        if (expect_len != 12 || strncasecmp(expect, "100-continue", 12) != 0)
            return abort_with(hc, 417, "expectation_failed", "unsupported Expect header");
        /* The client waits for this before sending the body; it goes out
         * after the answers to the requests before this one. */
        if (hc->in_flight == 0)
            hs_http__send_continue(hc);
        else
            hc->continue_owed = true;
    }
    if (body_expected)
        hs_http__request_deadline(hc, l->body_timeout_ms);
    else
        hs_conn_timer_stop(hc->conn);
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    hs_http_conn_t *hc = p->data;
    hs_http_request_t *req = hc->req;
    /* Also bounds chunked bodies, whose size is not known up front. */
    if (req->body_len + len > hc->server->limits.max_body)
        return abort_with(hc, 413, "payload_too_large", "the request body is too large");
    if (req->body_len + len + 1 > req->body_cap) {
        size_t cap = req->body_cap ? req->body_cap * 2 : 1024;
        /* With a Content-Length, allocate the whole body at once. */
        if (p->flags & F_CONTENTLENGTH)
            cap = req->body_len + len + (size_t)p->content_length + 1;
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
    /* Stop here: process() dispatches it, then parses on. */
    http_parser_pause(p, 1);
    return 0;
}

const http_parser_settings hs_http__parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};
