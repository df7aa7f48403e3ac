/* transport.h - what carries a notifier client's frames: one small
 * interface, two implementations (transport_ws.c: WebSocket,
 * transport_sse.c: Server-Sent Events). A third transport is a third
 * transport_ops_t and an accept function; nothing else in the notifier
 * knows which one a client has.
 *
 * Ownership: a transport is allocated by its accept function and belongs to
 * the client it is attached to (client->transport). The client lets go of
 * it in one place (hs_notifier__client_drop_transport), which calls
 * release(): from then on none of the transport's callbacks reach the
 * client, and the transport object is freed (a WebSocket one lives in its
 * session's allocation and goes with the session's close). When the peer ends the
 * connection, the transport says so once (hs_notifier__transport_ended)
 * with ended set, and the client drops it then. Thread affinity: the loop
 * thread only.
 */
#ifndef HS_ROLES_TRANSPORT_H
#define HS_ROLES_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "http/server.h"

typedef struct client client_t;
typedef struct hs_notifier hs_notifier_t;
typedef struct transport transport_t;

/* One message as a fan-out sends it to many clients: the message object
 * (its JSON text, as the bus and the store carry it) and each transport's
 * encoding of it, built on first use and shared by every client of the
 * fan-out: the WebSocket frame {"type":"message","message":<json>}, the SSE
 * event whose data is <json>. The encodings belong to the message
 * (hs_notifier__transport_msg_dispose). */
typedef struct transport_msg {
    const char *id;   /* the message id, "" when unknown */
    const char *json; /* {"id":…,"topic":…,…} */
    size_t json_len;
    hs_buf_t *ws_frame;  /* the WebSocket text frame, or NULL */
    hs_buf_t *sse_event; /* the SSE "message" event, or NULL */
} transport_msg_t;

typedef struct transport_ops {
    /* SSE names each event ("event: connected"), so its texts carry no
     * "type" and "connected" always says "resumed". */
    bool named_events;
    const char *log_note; /* after "connected from <ip>" in the log */
    /* Queues one message; bounded: refused with HS_ETOOBIG past
     * --max-pending (the transport is then closing), else always queued. */
    int (*send_message)(transport_t *t, transport_msg_t *msg, bool bounded);
    /* Optional (NULL: a run goes message by message): queues a run of
     * message frames as one entry, taking one reference of frames that the
     * caller reserved (hs_ws_send_taking). */
    int (*send_run)(transport_t *t, hs_buf_t *frames, bool bounded);
    /* Any other text; event names it where the transport names events. */
    int (*send_text)(transport_t *t, const char *event, const char *text, size_t len);
    /* {"type":"error",…}; a transport the client cannot send on (SSE) gets
     * none, since nothing it sends can be wrong. */
    void (*send_error)(transport_t *t, const char *code, const char *message);
    /* Closes with code and reason; the end is still reported
     * (hs_notifier__transport_ended), as when the peer closes. */
    void (*close)(transport_t *t, uint16_t code, const char *reason);
    /* The client lets go: closes with code and reason unless it ended
     * already, unhooks its callbacks and frees t. */
    void (*release)(transport_t *t, uint16_t code, const char *reason);
    const char *(*peer)(const transport_t *t);
} transport_ops_t;

/* The part every transport starts with. */
struct transport {
    const transport_ops_t *ops;
    client_t *client; /* NULL until attached */
    bool ended;       /* the peer's end was reported: release closes nothing */
};

/* Accepts req on a transport (answers the WebSocket handshake, or the SSE
 * head): NULL when it could not (answered, or gone). A route names one. */
typedef transport_t *(*transport_accept_fn)(hs_notifier_t *n, hs_http_request_t *req);
transport_t *hs_notifier__ws_accept(hs_notifier_t *n, hs_http_request_t *req);
transport_t *hs_notifier__sse_accept(hs_notifier_t *n, hs_http_request_t *req);

/* The WebSocket frame of a message: {"type":"message","message":<json>},
 * one copy of json. */
hs_buf_t *hs_notifier__ws_message_frame(const char *json, size_t len);

/* A transport's connection ended (its close callback; t is NULL once the
 * client released it): marks it ended and returns its client, which must
 * then report the end (hs_notifier__transport_ended); or NULL when no client
 * holds it any more (freed here, or released already): nothing to report. */
client_t *hs_notifier__transport_peer_ended(transport_t *t);

/* Gives back the encodings a fan-out built. */
void hs_notifier__transport_msg_dispose(transport_msg_t *msg);

#endif
