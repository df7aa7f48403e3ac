/* transport_ws.c - the WebSocket transport of a notifier client: frames
 * through a ws/session.h session, whose data pointer is the transport while
 * the client holds it (NULL once released). The transport lives in the
 * session's own allocation (hs_ws_accept_with), so it is freed with the
 * session, after the session's close: release only lets go of it.
 */
#include <stdlib.h>
#include <string.h>

#include "roles/notifier_internal.h"

typedef struct ws_transport {
    transport_t base;
    hs_ws_session_t *ws;
} ws_transport_t;

static hs_ws_session_t *session(transport_t *t)
{
    return ((ws_transport_t *)t)->ws;
}

hs_buf_t *hs_notifier__ws_message_frame(const char *json, size_t len)
{
    static const char prefix[] = HS_RENDER_MESSAGE_FRAME_PREFIX;
    const struct iovec parts[] = {
        {(void *)prefix, sizeof(prefix) - 1}, {(void *)json, len}, {(void *)"}", 1}};
    return hs_ws_frame_new_parts(HS_WS_OP_TEXT, parts, 3);
}

static int ws_send_message(transport_t *t, transport_msg_t *msg, bool bounded)
{
    if (msg->ws_frame == NULL)
        msg->ws_frame = hs_notifier__ws_message_frame(msg->json, msg->json_len);
    return bounded ? hs_ws_send(session(t), msg->ws_frame)
                   : hs_ws_send_always(session(t), msg->ws_frame);
}

static int ws_send_run(transport_t *t, hs_buf_t *frames, bool bounded)
{
    return hs_ws_send_taking(session(t), frames, bounded, true);
}

static int ws_send_text(transport_t *t, const char *event, const char *text, size_t len)
{
    (void)event; /* the text's "type" says what it is */
    return hs_ws_send_text(session(t), text, len);
}

static void ws_send_error(transport_t *t, const char *code, const char *message)
{
    hs_buf_t *frame = hs_render_error_frame(code, message);
    hs_ws_send(session(t), frame);
    hs_buf_unref(frame);
}

static void ws_close(transport_t *t, uint16_t code, const char *reason)
{
    hs_ws_close(session(t), code, reason);
}

static void ws_release(transport_t *t, uint16_t code, const char *reason)
{
    hs_ws_session_t *ws = session(t);
    hs_ws_set_data(ws, NULL); /* the session only finishes its close */
    if (!t->ended)
        hs_ws_close(ws, code, reason);
    /* t is freed with the session (it is in its allocation) */
}

static const char *ws_peer(const transport_t *t)
{
    return hs_ws_peer(((const ws_transport_t *)t)->ws);
}

static const transport_ops_t ws_ops = {
    .named_events = false,
    .log_note = "",
    .send_message = ws_send_message,
    .send_run = ws_send_run,
    .send_text = ws_send_text,
    .send_error = ws_send_error,
    .close = ws_close,
    .release = ws_release,
    .peer = ws_peer,
};

/* The client a session's callback is for, or NULL: not attached yet, or
 * released (the server ended it; the session only finishes its close). */
static client_t *ws_client(hs_ws_session_t *ws)
{
    transport_t *t = hs_ws_data(ws);
    return t ? t->client : NULL;
}

static void ws_message_cb(hs_ws_session_t *ws, bool binary, const char *data, size_t len)
{
    client_t *client = ws_client(ws);
    if (client)
        hs_notifier__client_message(client, binary, data, len);
}

static void ws_close_cb(hs_ws_session_t *ws, uint16_t code, bool clean)
{
    client_t *client = hs_notifier__transport_peer_ended(hs_ws_data(ws));
    if (client == NULL)
        return;
    hs_log_info("notifier: conn %s closed (code %u, %s)", client->id, code,
                clean ? "clean" : "unclean");
    /* 1001 (going away) and 1006 (no close frame: a reset, missed pongs)
     * may come back; 1000 and every close the server decided end it. */
    hs_notifier__transport_ended(client->notifier, client, code == 1001 || code == 1006, 0, NULL);
}

static void ws_drain_cb(hs_ws_session_t *ws)
{
    client_t *client = ws_client(ws);
    if (client)
        hs_notifier__client_drained(client);
}

static const hs_ws_callbacks_t ws_callbacks = {
    .on_message = ws_message_cb,
    .on_close = ws_close_cb,
    .on_drain = ws_drain_cb,
};

transport_t *hs_notifier__ws_accept(hs_notifier_t *n, hs_http_request_t *req)
{
    void *room;
    hs_ws_session_t *ws =
        hs_ws_accept_with(req, &n->ws_config, &ws_callbacks, sizeof(ws_transport_t), &room);
    if (ws == NULL)
        return NULL;
    ws_transport_t *t = room; /* zeroed */
    t->base.ops = &ws_ops;
    t->ws = ws;
    return &t->base;
}
