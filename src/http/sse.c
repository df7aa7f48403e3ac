/* sse.c - the head of a Server-Sent Events response and the event format
 * (https://html.spec.whatwg.org/multipage/server-sent-events.html).
 */
#include "http/sse.h"

#include <stdio.h>
#include <string.h>

hs_conn_t *hs_http_sse_accept(hs_http_request_t *req)
{
    if (!hs_http_can_take_over(req)) {
        /* Pipelined requests before it still wait for their answers: the
         * stream cannot have the connection yet. Not on a route added with
         * hs_router_add_takeover (the server holds the request until they
         * are answered); only a route that forgot to be is answered this. */
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
    return conn;
}

hs_buf_t *hs_http_sse_event(const char *event, const char *id, const char *data, size_t len)
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
