/* transport_sse.c - the Server-Sent Events transport of a notifier client.
 */
#include <stdlib.h>
#include <string.h>

#include "roles/notifier_internal.h"

#define SSE_KEEPALIVE_MS 15000

static void sse_keepalive_cb(hs_conn_t *conn)
{
    hs_buf_t *buf = hs_buf_from(": keepalive\n\n", 13);
    hs_notifier__sse_send(conn, buf);
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
    hs_notifier__transport_ended(client->notifier, client, true);
}

static void sse_drain(hs_conn_t *conn)
{
    hs_notifier__client_drained(hs_conn_data(conn));
}

const hs_conn_handler_t hs_notifier__sse_handler = {
    .on_read = sse_read,
    .on_eof = sse_eof,
    .on_drain = sse_drain,
    .on_close = sse_close,
};

/* Answers the request with the head of an event stream and takes the
 * connection; NULL when the client went away. */
hs_conn_t *hs_notifier__sse_accept(hs_notifier_t *n, hs_http_request_t *req)
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
