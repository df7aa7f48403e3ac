/* response.c - encoding answers: status line, headers and body in one
 * buffer, and the JSON error body, which is built here and nowhere else so
 * every error has the same shape: {"error":{"code":"...","message":"..."}}. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/metrics.h"
#include "http/http_internal.h"

/* Access-Control-Allow-Origin with the longest origin, and Vary. */
#define MAX_CORS_HEADERS 320

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
    case 304:
        return "Not Modified";
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
    case 421:
        return "Misdirected Request";
    case 422:
        return "Unprocessable Content";
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

/* 1xx, 204 and 304 answers carry neither a body nor a Content-Length. */
static bool status_has_body(int status)
{
    return status >= 200 && status != 204 && status != 304;
}

void hs_http_respond(hs_http_request_t *req, int status, const char *content_type,
                     const char *extra_headers, const void *body, size_t body_len)
{
    if (req->hc == NULL) { /* the client went away; nobody to answer */
        hs_http__request_free(req);
        return;
    }
    if (status >= 100 && status < 600)
        hs_metrics_singleton.http_responses[status]++;
    if (!status_has_body(status))
        body_len = 0;
    hs_http_persist_t persist = hs_http__persistence(req, status);
    /* HEAD: the headers of the GET answer (its Content-Length too), no body. */
    size_t sent_len = req->is_head ? 0 : body_len;
    size_t extra_len = extra_headers ? strlen(extra_headers) : 0;
    char head[512];
    int n = snprintf(head, sizeof(head), "HTTP/1.1 %d %s\r\n", status, hs_http__reason(status));
    if (content_type && body_len > 0)
        n += snprintf(head + n, sizeof(head) - (size_t)n, "Content-Type: %s\r\n", content_type);
    if (status_has_body(status))
        n += snprintf(head + n, sizeof(head) - (size_t)n, "Content-Length: %zu\r\n", body_len);
    if (persist == HS_HTTP_CLOSE)
        n += snprintf(head + n, sizeof(head) - (size_t)n, "Connection: close\r\n");
    else if (persist == HS_HTTP_KEEP_EXPLICIT)
        n += snprintf(head + n, sizeof(head) - (size_t)n, "Connection: keep-alive\r\n");
    if ((size_t)n >= sizeof(head)) /* only an absurd content type gets here */
        n = (int)sizeof(head) - 1;
    char cors[MAX_CORS_HEADERS];
    size_t cors_len = hs_http__cors_headers(req, cors, sizeof(cors));
    hs_buf_t *buf = hs_buf_new((size_t)n + extra_len + cors_len + 2 + sent_len);
    buf = hs_buf_append(buf, head, (size_t)n);
    if (extra_len > 0)
        buf = hs_buf_append(buf, extra_headers, extra_len);
    if (cors_len > 0)
        buf = hs_buf_append(buf, cors, cors_len);
    buf = hs_buf_append(buf, "\r\n", 2);
    if (sent_len > 0)
        buf = hs_buf_append(buf, body, sent_len);
    hs_http__send_response(req, status, buf, persist);
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
                            json_t *members, const char *fmt, va_list ap)
{
    char message[512];
    vsnprintf(message, sizeof(message), fmt, ap);
    /* Messages may quote client bytes (a path); JSON needs valid UTF-8, so
     * anything outside printable ASCII is shown as '?'. */
    for (char *p = message; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
            *p = '?';
    json_t *body = json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", message);
    if (body && members)
        json_object_update(json_object_get(body, "error"), members);
    json_decref(members);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (text == NULL) { /* cannot happen with ASCII input; answer anyway */
        hs_http_respond(req, status, NULL, extra, NULL, 0);
        return;
    }
    hs_http_respond(req, status, "application/json", extra, text, strlen(text));
    free(text);
}

void hs_http_respond_error(hs_http_request_t *req, int status, const char *code, const char *fmt,
                           ...)
{
    va_list ap;
    va_start(ap, fmt);
    respond_error_v(req, status, code, NULL, NULL, fmt, ap);
    va_end(ap);
}

void hs_http_respond_error_with(hs_http_request_t *req, int status, const char *code,
                                const char *extra, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    respond_error_v(req, status, code, extra, NULL, fmt, ap);
    va_end(ap);
}

void hs_http_respond_error_members(hs_http_request_t *req, int status, const char *code,
                                   json_t *members, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    respond_error_v(req, status, code, NULL, members, fmt, ap);
    va_end(ap);
}

void hs_http_respond_empty(hs_http_request_t *req, int status)
{
    hs_http_respond(req, status, NULL, NULL, NULL, 0);
}
