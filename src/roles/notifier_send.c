/* notifier_send.c - the one way anything reaches a client: messages, texts,
 * errors and the "connected" answer, through the client's transport
 * (transport.h). A detached client has none: these senders are the one
 * place that checks, and send it nothing (HS_ECLOSED).
 */
#include <stdlib.h>
#include <string.h>

#include "roles/notifier_internal.h"

client_t *hs_notifier__transport_peer_ended(transport_t *t)
{
    if (t == NULL)
        return NULL; /* released already */
    t->ended = true;
    if (t->client == NULL) { /* never attached: let go of it here (ended: closes nothing) */
        t->ops->release(t, 1006, NULL);
        return NULL;
    }
    return t->client;
}

void hs_notifier__transport_msg_dispose(transport_msg_t *msg)
{
    hs_buf_unref(msg->ws_frame);
    hs_buf_unref(msg->sse_event);
    msg->ws_frame = NULL;
    msg->sse_event = NULL;
}

/* Sends one message frame (text: {"type":"message","message":{…}}) to an
 * attached client, bounded by --max-pending unless the client is being
 * sent a part of its resume (unbounded: each part is bounded already). */
int hs_notifier__client_send_message(client_t *c, transport_msg_t *msg)
{
    if (!hs_notifier__client_attached(c))
        return HS_ECLOSED;
    return c->transport->ops->send_message(c->transport, msg, !c->unbounded);
}

int hs_notifier__client_send_text(client_t *c, const char *event, const char *text, size_t len)
{
    if (!hs_notifier__client_attached(c))
        return HS_ECLOSED;
    return c->transport->ops->send_text(c->transport, event, text, len);
}

/* Nothing is sent through a transport that is closing either (the session
 * refuses it). Only WebSocket clients send messages, so only they get
 * errors. */
void hs_notifier__client_error(client_t *c, const char *code, const char *message)
{
    if (hs_notifier__client_attached(c))
        c->transport->ops->send_error(c->transport, code, message);
}

void hs_notifier__client_send_json(client_t *c, const char *event, json_t *json)
{
    size_t len;
    char *text = hs_render_text(json, &len);
    json_decref(json);
    hs_notifier__client_send_text(c, event, text, len);
    free(text);
}

void hs_notifier__client_topic_reply(client_t *c, const char *type, const char *topic)
{
    hs_notifier__client_send_json(c, type, json_pack("{s:s, s:s}", "type", type, "topic", topic));
}

/* The client lets go of its transport, which closes with code and reason
 * unless it ended by itself; nothing of it reaches the client any more. */
void hs_notifier__client_drop_transport(client_t *c, uint16_t code, const char *reason)
{
    transport_t *t = c->transport;
    if (t == NULL)
        return;
    c->transport = NULL;
    t->ops->release(t, code, reason);
}

/* A resume token is accepted for this long after it was issued, and only
 * while its connection is detached (the window is the real bound). */
#define RESUME_TOKEN_LIFE_MS (24ull * 3600 * 1000)

/* {"type":"connected",…} for a WebSocket, the data of "event: connected"
 * for SSE. resumed is sent when asked (always on SSE). */
void hs_notifier__send_connected(hs_notifier_t *n, client_t *client, bool asked, bool resumed,
                                 size_t replayed, const char *next, bool pruned)
{
    if (!hs_notifier__client_attached(client))
        return;
    bool named = client->transport->ops->named_events;
    json_t *obj = json_object();
    if (!named)
        json_object_set_new(obj, "type", json_string("connected"));
    json_object_set_new(obj, "connectionID", json_string(client->id));
    if (n->cfg->resume_window_ms > 0) {
        char token[HS_RESUME_TOKEN_LEN + 1];
        hs_resume_token_make(n->resume_secret, n->resume_secret_len, client->id,
                             hs_now_ms() + RESUME_TOKEN_LIFE_MS, token);
        json_object_set_new(obj, "resumeToken", json_string(token));
    }
    if (asked || named)
        json_object_set_new(obj, "resumed", json_boolean(resumed));
    if (resumed)
        json_object_set_new(obj, "replayed", json_integer((json_int_t)replayed));
    if (pruned)
        json_object_set_new(obj, "pruned", json_true());
    if (next) {
        json_object_set_new(obj, "truncated", json_true());
        json_object_set_new(obj, "next", json_string(next));
    }
    hs_notifier__client_send_json(client, "connected", obj);
}
