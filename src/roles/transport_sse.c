/* transport_sse.c - the Server-Sent Events transport of a notifier client:
 * events on a taken-over HTTP connection (http/sse.h writes the head and
 * the event format), whose data pointer is the transport while the client
 * holds it (NULL once released). Nothing is read from the peer.
 */
#include <stdlib.h>
#include <string.h>

#include "http/sse.h"
#include "roles/notifier_internal.h"

#define SSE_KEEPALIVE_MS 15000

typedef struct sse_transport {
    transport_t base;
    hs_conn_t *conn;
} sse_transport_t;

static hs_conn_t *stream(const transport_t *t)
{
    return ((const sse_transport_t *)t)->conn;
}

/* Queues buf on the stream; a peer that does not read is closed like a
 * slow WebSocket client. */
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

static int sse_send_message(transport_t *t, transport_msg_t *msg, bool bounded)
{
    if (msg->sse_event == NULL) /* the event's data is the message object */
        msg->sse_event = hs_http_sse_event("message", msg->id, msg->json, msg->json_len);
    return bounded ? sse_send(stream(t), msg->sse_event)
                   : hs_conn_send_always(stream(t), msg->sse_event);
}

static int sse_send_text(transport_t *t, const char *event, const char *text, size_t len)
{
    hs_buf_t *buf = hs_http_sse_event(event, NULL, text, len);
    int rc = sse_send(stream(t), buf);
    hs_buf_unref(buf);
    return rc;
}

static void sse_send_error(transport_t *t, const char *code, const char *message)
{
    (void)t; /* the client sends nothing: no error can be its */
    (void)code;
    (void)message;
}

static void sse_close_stream(transport_t *t, uint16_t code, const char *reason)
{
    (void)code; /* an event stream has no close frame */
    (void)reason;
    hs_conn_close_after_flush(stream(t));
}

static void sse_handle_read(hs_conn_t *conn, const char *data, size_t len)
{
    (void)conn; /* nothing is read from an event stream's client */
    (void)data;
    (void)len;
}

static void sse_handle_eof(hs_conn_t *conn, int status)
{
    (void)status;
    hs_conn_close(conn);
}

static void sse_handle_close(hs_conn_t *conn)
{
    client_t *client = hs_notifier__transport_peer_ended(hs_conn_data(conn));
    if (client == NULL)
        return;
    hs_log_info("notifier: conn %s: event stream closed", client->id);
    /* An event stream has no clean close: it may always come back. */
    hs_notifier__transport_ended(client->notifier, client, true, 0, NULL);
}

static void sse_handle_drain(hs_conn_t *conn)
{
    transport_t *t = hs_conn_data(conn);
    if (t && t->client)
        hs_notifier__client_drained(t->client);
}

static const hs_conn_handler_t sse_handler = {
    .on_read = sse_handle_read,
    .on_eof = sse_handle_eof,
    .on_drain = sse_handle_drain,
    .on_close = sse_handle_close,
};

static void sse_release(transport_t *t, uint16_t code, const char *reason)
{
    hs_conn_t *conn = stream(t);
    hs_conn_set_handler(conn, &sse_handler, NULL); /* the stream only finishes */
    if (!t->ended)
        sse_close_stream(t, code, reason);
    hs_free(t);
}

static const char *sse_peer(const transport_t *t)
{
    return hs_conn_peer(stream(t));
}

static const transport_ops_t sse_ops = {
    .named_events = true,
    .log_note = " (SSE)",
    .send_message = sse_send_message,
    .send_run = NULL,
    .send_text = sse_send_text,
    .send_error = sse_send_error,
    .close = sse_close_stream,
    .release = sse_release,
    .peer = sse_peer,
};

static void sse_keepalive_cb(hs_conn_t *conn)
{
    hs_buf_t *buf = hs_buf_from(": keepalive\n\n", 13);
    sse_send(conn, buf);
    hs_buf_unref(buf);
    hs_conn_timer_start(conn, SSE_KEEPALIVE_MS, sse_keepalive_cb);
}

transport_t *hs_notifier__sse_accept(hs_notifier_t *n, hs_http_request_t *req)
{
    hs_conn_t *conn = hs_http_sse_accept(req);
    if (conn == NULL)
        return NULL;
    sse_transport_t *t = hs_calloc(1, sizeof(*t));
    t->base.ops = &sse_ops;
    t->conn = conn;
    hs_conn_set_handler(conn, &sse_handler, t);
    hs_conn_set_max_pending(conn, n->cfg->max_pending);
    hs_conn_set_fanout(conn);
    hs_conn_timer_start(conn, SSE_KEEPALIVE_MS, sse_keepalive_cb);
    return &t->base;
}
