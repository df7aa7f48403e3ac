/* notifier_send.c - the one way anything reaches a client: messages, texts,
 * errors and the "connected" answer. Nothing is sent to a detached client.
 */
#include <stdlib.h>
#include <string.h>

#include "roles/notifier_internal.h"

static const char frame_prefix[] = "{\"type\":\"message\",\"message\":";

/* An SSE event: "event: <event>", "id: <id>" when given, one "data:" line
 * per line of data, and the blank line that ends it. */
static hs_buf_t *sse_event(const char *event, const char *id, const char *data, size_t len)
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

/* Queues buf on an SSE connection; a peer that does not read is closed
 * like a slow WebSocket client. */
int hs_notifier__sse_send(hs_conn_t *conn, hs_buf_t *buf)
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

/* Sends one message frame (text: {"type":"message","message":{…}}) to an
 * attached client. The WebSocket frame and the SSE event are built once per
 * fan-out, on first use, into *ws_frame and *sse_frame (caller unrefs). */
int hs_notifier__send_message(client_t *c, const char *id, const char *text, size_t len,
                              hs_buf_t **ws_frame, hs_buf_t **sse_frame)
{
    if (c->ws) {
        if (*ws_frame == NULL)
            *ws_frame = hs_ws_frame_new(HS_WS_OP_TEXT, text, len);
        return c->unbounded ? hs_ws_send_always(c->ws, *ws_frame) : hs_ws_send(c->ws, *ws_frame);
    }
    if (c->sse) {
        if (*sse_frame == NULL) {
            size_t skip = sizeof(frame_prefix) - 1;
            bool framed = len > skip && memcmp(text, frame_prefix, skip) == 0;
            *sse_frame = framed ? sse_event("message", id, text + skip, len - skip - 1)
                                : sse_event("message", id, text, len);
        }
        return c->unbounded ? hs_conn_send_always(c->sse, *sse_frame)
                            : hs_notifier__sse_send(c->sse, *sse_frame);
    }
    return HS_ECLOSED;
}

/* Any other frame's text: a WebSocket text frame, or an SSE event named
 * event. */
int hs_notifier__send_text(client_t *c, const char *event, const char *text, size_t len)
{
    if (c->ws)
        return hs_ws_send_text(c->ws, text, len);
    if (c->sse) {
        hs_buf_t *buf = sse_event(event, NULL, text, len);
        int rc = hs_notifier__sse_send(c->sse, buf);
        hs_buf_unref(buf);
        return rc;
    }
    return HS_ECLOSED;
}

/* ---- answers to a client -------------------------------------------------- */

/* The one way an answer reaches a client: nothing is sent to a detached
 * client (its transport is gone), nor through a transport that is closing
 * (the session refuses it). Only WebSocket clients send messages, so only
 * they get errors. */
void hs_notifier__client_error(client_t *c, const char *code, const char *message)
{
    if (c->ws == NULL)
        return;
    hs_buf_t *frame = hs_render_error_frame(code, message);
    hs_ws_send(c->ws, frame);
    hs_buf_unref(frame);
}

void hs_notifier__client_send_json(client_t *c, const char *event, json_t *json)
{
    size_t len;
    char *text = hs_render_text(json, &len);
    json_decref(json);
    hs_notifier__send_text(c, event, text, len);
    free(text);
}

void hs_notifier__client_topic_reply(client_t *c, const char *type, const char *topic)
{
    hs_notifier__client_send_json(c, type, json_pack("{s:s, s:s}", "type", type, "topic", topic));
}

/* A resume token is accepted for this long after it was issued, and only
 * while its connection is detached (the window is the real bound). */
#define RESUME_TOKEN_LIFE_MS (24ull * 3600 * 1000)

/* {"type":"connected",…} for a WebSocket, the data of "event: connected"
 * for SSE. resumed is sent when asked (always on SSE). */
void hs_notifier__send_connected(hs_notifier_t *n, client_t *client, bool asked, bool resumed,
                                 size_t replayed, const char *next)
{
    json_t *obj = json_object();
    if (client->ws)
        json_object_set_new(obj, "type", json_string("connected"));
    json_object_set_new(obj, "connectionID", json_string(client->id));
    if (n->cfg->resume_window_ms > 0) {
        char token[HS_RESUME_TOKEN_LEN + 1];
        hs_resume_token_make(n->resume_secret, n->resume_secret_len, client->id,
                             hs_now_ms() + RESUME_TOKEN_LIFE_MS, token);
        json_object_set_new(obj, "resumeToken", json_string(token));
    }
    if (asked || client->sse)
        json_object_set_new(obj, "resumed", json_boolean(resumed));
    if (resumed)
        json_object_set_new(obj, "replayed", json_integer((json_int_t)replayed));
    if (next) {
        json_object_set_new(obj, "truncated", json_true());
        json_object_set_new(obj, "next", json_string(next));
    }
    hs_notifier__client_send_json(client, "connected", obj);
}
