/* session.h - a WebSocket connection (RFC 6455, server side) on an hs_conn.
 *
 * hs_ws_accept() validates the opening handshake of an HTTP request, answers
 * "101 Switching Protocols" and takes the connection over from HTTP. The
 * session then reads frames (masked, fragmented, with control frames
 * interleaved), validates UTF-8 of text messages incrementally, answers
 * pings, pings the peer every ping_interval_ms and closes a connection that
 * missed max_missed_pongs pongs in a row, and runs the close handshake.
 *
 * Outgoing data frames are pre-encoded hs_buf_t (see codec.h) sent by
 * reference, so one frame serves every recipient. When the peer does not
 * read and the queued bytes pass max_pending, the session is closed with
 * 1008 (policy violation) and counted. Pings and pongs count against that
 * bound too (only the close frame passes it), and at most one pong waits to
 * be sent whatever the number of pings (RFC 6455 5.5.3).
 *
 * Incoming: each frame's declared length, and a fragmented message's total,
 * is checked against max_message as soon as its header is in (1009 past
 * it); the bytes kept between reads are one incomplete frame at most.
 *
 * Thread affinity: the loop thread only.
 */
#ifndef HS_WS_SESSION_H
#define HS_WS_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "http/server.h"

typedef struct hs_ws_session hs_ws_session_t;

typedef struct hs_ws_config {
    size_t max_message;        /* largest incoming message (after reassembly); 1009 past it */
    uint64_t ping_interval_ms; /* 0 disables pings */
    unsigned max_missed_pongs; /* close after this many unanswered pings (2) */
    size_t max_pending;        /* outgoing bytes queued before 1008; 0 = unbounded */
} hs_ws_config_t;

typedef struct hs_ws_callbacks {
    /* A complete text message (valid UTF-8) or binary message. The bytes live
     * only during the call. */
    void (*on_message)(hs_ws_session_t *ws, bool binary, const char *data, size_t len);
    /* The session ended, for any reason. code is the close code received or
     * sent (1006 when the connection dropped without a close frame); clean is
     * true when the peer completed a close handshake. The session is freed
     * right after this returns. Called exactly once. */
    void (*on_close)(hs_ws_session_t *ws, uint16_t code, bool clean);
    /* Everything queued was written (the peer reads). Optional. */
    void (*on_drain)(hs_ws_session_t *ws);
} hs_ws_callbacks_t;

/* Validates the handshake (GET, HTTP/1.1, "Upgrade: websocket",
 * "Connection: Upgrade" token, "Sec-WebSocket-Version: 13", a
 * Sec-WebSocket-Key that is base64 of 16 bytes). On failure answers the
 * request with a JSON error (400, or 426 with "Sec-WebSocket-Version: 13"
 * for a wrong version) and returns NULL. On success queues the 101 answer,
 * takes the connection and returns the session; callbacks start after the
 * caller's route handler returns. */
hs_ws_session_t *hs_ws_accept(hs_http_request_t *req, const hs_ws_config_t *cfg,
                              const hs_ws_callbacks_t *callbacks, void *data);
/* hs_ws_accept with room bytes of the caller's in the session's own
 * allocation (zeroed, aligned for any type): *room_out points to them and
 * they are the session's data; they live until the session is freed, right
 * after its on_close callback returns. One allocation per connection instead
 * of two (docs/performance.md, "Memory per connection"). */
hs_ws_session_t *hs_ws_accept_with(hs_http_request_t *req, const hs_ws_config_t *cfg,
                                   const hs_ws_callbacks_t *callbacks, size_t room,
                                   void **room_out);

void *hs_ws_data(hs_ws_session_t *ws);
void hs_ws_set_data(hs_ws_session_t *ws, void *data);
const char *hs_ws_peer(hs_ws_session_t *ws);

/* Sends a pre-encoded frame (takes a new reference). Returns 0;
 * HS_ECLOSED if the session is closing; HS_ETOOBIG if the pending bound was
 * passed, in which case the session starts closing with 1008. */
int hs_ws_send(hs_ws_session_t *ws, hs_buf_t *frame);
/* Like hs_ws_send but past the pending bound (a burst the caller already
 * bounded itself, e.g. a resume's replay); 0 or HS_ECLOSED. */
int hs_ws_send_always(hs_ws_session_t *ws, hs_buf_t *frame);
/* Either of the two (bounded or not); with take, on success the queue takes
 * over one of the caller's references (hs_conn_send_taking). */
int hs_ws_send_taking(hs_ws_session_t *ws, hs_buf_t *frame, bool bounded, bool take);
/* Encodes one text frame and sends it (same returns as hs_ws_send). */
int hs_ws_send_text(hs_ws_session_t *ws, const char *text, size_t len);
/* Starts the close handshake with code and reason (reason may be NULL);
 * on_close follows later. Idempotent. */
void hs_ws_close(hs_ws_session_t *ws, uint16_t code, const char *reason);

#endif
