/* session.c - a server-side WebSocket connection on an hs_conn.
 *
 * Memory: an idle session is this struct (under 64 bytes) and nothing else.
 * Bytes of an incomplete frame and the pieces of a fragmented message are
 * kept in buffers allocated on demand (with their lengths, incoming_t) and
 * released once the frame or message is complete: the first holds one frame (a header and at most
 * max_message of payload, however many frames a read carries), the second at most max_message. What
 * the session queues to the peer, control frames included, counts against max_pending; a ping flood
 * costs one pong. */
#include "ws/session.h"

#include <stdatomic.h>
#include <stddef.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/log.h"
#include "ws/codec.h"
#include "ws/handshake.h"
#include "ws/utf8.h"

#define CLOSE_WAIT_MS 5000

/* What a session keeps of its peer's frames between reads: allocated when
 * a frame or a message is incomplete, freed when neither is. */
typedef struct incoming {
    uint8_t *partial; /* an incomplete frame: header and payload so far */
    size_t partial_len, partial_cap;
    size_t partial_checked;       /* payload bytes of that frame already UTF-8 checked */
    hs_utf8_state_t partial_utf8; /* the check's state after them */
    uint8_t *msg;                 /* a message being reassembled from fragments */
    size_t msg_len, msg_cap;
    hs_utf8_state_t utf8;
    uint8_t msg_opcode; /* 0: no message in progress */
} incoming_t;

struct hs_ws_session {
    hs_conn_t *conn;
    const hs_ws_config_t *cfg;
    const hs_ws_callbacks_t *callbacks;
    void *data;
    incoming_t *in; /* NULL when no frame or message is incomplete */
    /* At most one pong waits (answer_ping): the last one queued, while the
     * queue holds it, and the answer to the newest ping not yet answered
     * (allocated then: an idle session keeps no room for one). */
    hs_buf_t *pong;
    hs_buf_t *held_pong;
    uint8_t missed_pongs;
    bool close_sent;
    bool close_received;
    uint16_t close_code;
};

/* The budget of docs/performance.md ("Memory per connection"): every idle
 * WebSocket connection has one session (it was 248 bytes with a held pong's
 * payload and the reassembly state inline). */
_Static_assert(sizeof(struct hs_ws_session) <= 64, "an idle session passed its 64-byte budget");

static const hs_conn_handler_t ws_handler;

/* ---- sending -------------------------------------------------------------- */

static void send_close(hs_ws_session_t *ws, uint16_t code, const char *reason)
{
    hs_buf_t *frame = hs_ws_close_frame_new(code, reason);
    hs_conn_send_always(ws->conn, frame);
    hs_buf_unref(frame);
    ws->close_sent = true;
    if (ws->close_code == 0)
        ws->close_code = code ? code : 1005;
}

/* A protocol error by the peer: say why, and close. */
static void fail(hs_ws_session_t *ws, uint16_t code, const char *reason)
{
    hs_log_debug("ws: %s: closing with %u: %s", hs_conn_peer(ws->conn), code, reason);
    if (!ws->close_sent)
        send_close(ws, code, reason);
    ws->close_code = code;
    hs_conn_close_after_flush(ws->conn);
}

int hs_ws_send(hs_ws_session_t *ws, hs_buf_t *frame)
{
    return hs_ws_send_taking(ws, frame, true, false);
}

int hs_ws_send_taking(hs_ws_session_t *ws, hs_buf_t *frame, bool bounded, bool take)
{
    if (ws->close_sent || hs_conn_closing(ws->conn))
        return HS_ECLOSED;
    int rc = take      ? hs_conn_send_taking(ws->conn, frame, bounded)
             : bounded ? hs_conn_send(ws->conn, frame)
                       : hs_conn_send_always(ws->conn, frame);
    if (rc == HS_ETOOBIG) {
        /* The peer does not read. What it has not started to receive is
         * dropped so that the close frame is the next thing it reads. */
        hs_log_warn("ws: %s does not read: %zu bytes queued; closing with 1008",
                    hs_conn_peer(ws->conn), hs_conn_pending(ws->conn));
        hs_conn_discard_unsent(ws->conn);
        fail(ws, 1008, "slow consumer: too much data queued");
    }
    return rc;
}

int hs_ws_send_always(hs_ws_session_t *ws, hs_buf_t *frame)
{
    return hs_ws_send_taking(ws, frame, false, false);
}

int hs_ws_send_text(hs_ws_session_t *ws, const char *text, size_t len)
{
    hs_buf_t *frame = hs_ws_frame_new(HS_WS_OP_TEXT, text, len);
    int rc = hs_ws_send(ws, frame);
    hs_buf_unref(frame);
    return rc;
}

static void close_wait_cb(hs_conn_t *conn)
{
    hs_conn_close(conn); /* the peer did not answer our close frame */
}

void hs_ws_close(hs_ws_session_t *ws, uint16_t code, const char *reason)
{
    if (ws->close_sent || hs_conn_closing(ws->conn))
        return;
    send_close(ws, code, reason);
    ws->close_code = code;
    hs_conn_timer_start(ws->conn, CLOSE_WAIT_MS, close_wait_cb);
}

/* ---- keepalive ------------------------------------------------------------ */

static void ping_cb(hs_conn_t *conn)
{
    hs_ws_session_t *ws = hs_conn_data(conn);
    if (ws->missed_pongs >= ws->cfg->max_missed_pongs) {
        hs_log_info("ws: %s missed %u pongs; dropping it", hs_conn_peer(conn), ws->missed_pongs);
        ws->close_code = 1006;
        hs_conn_close(conn);
        return;
    }
    ws->missed_pongs++;
    hs_buf_t *ping = hs_ws_frame_new(HS_WS_OP_PING, NULL, 0);
    int rc = hs_ws_send(ws, ping); /* bounded: a peer that does not read gets 1008 */
    hs_buf_unref(ping);
    if (rc == 0)
        hs_conn_timer_start(conn, ws->cfg->ping_interval_ms, ping_cb);
}

/* The pong buffer is this session's alone: besides our reference, only the
 * connection's queue can hold one, until the pong is written. */
static bool pong_queued(const hs_ws_session_t *ws)
{
    return ws->pong != NULL && atomic_load(&ws->pong->refs) > 1;
}

/* Sends pong, taking the caller's reference. */
static void send_pong(hs_ws_session_t *ws, hs_buf_t *pong)
{
    hs_buf_unref(ws->pong);
    ws->pong = NULL;
    if (hs_ws_send(ws, pong) == 0)
        ws->pong = pong; /* kept to see when the queue lets it go */
    else
        hs_buf_unref(pong); /* closing, perhaps with 1008 */
}

/* Answers a ping. RFC 6455 5.5.3 lets an endpoint answer only the most
 * recent of several pings, so at most one pong waits: while the previous
 * pong is still queued, the payload of this ping is held, replacing any held
 * before, and answered when the queue drains (or the next ping finds the
 * queue without a pong). A client that sends pings and does not read thus
 * costs one pong, not one per ping; and the pong counts against max_pending
 * like any frame (1008 past it). */
static void answer_ping(hs_ws_session_t *ws, const uint8_t *payload, size_t len)
{
    if (ws->close_sent)
        return;
    hs_buf_t *pong = hs_ws_frame_new(HS_WS_OP_PONG, payload, len);
    if (!pong_queued(ws)) {
        send_pong(ws, pong);
        return;
    }
    hs_buf_unref(ws->held_pong);
    ws->held_pong = pong;
}

/* The queue is empty: the pong held back goes now, then the application
 * may send more (a resume streamed part by part). */
static void ws_on_drain(hs_conn_t *conn)
{
    hs_ws_session_t *ws = hs_conn_data(conn);
    if (ws->close_sent)
        return;
    if (ws->held_pong) {
        hs_buf_t *pong = ws->held_pong;
        ws->held_pong = NULL;
        send_pong(ws, pong);
    } else if (ws->pong && !pong_queued(ws)) {
        hs_buf_unref(ws->pong); /* written: nothing to watch any more */
        ws->pong = NULL;
    }
    if (ws->callbacks->on_drain && !ws->close_sent)
        ws->callbacks->on_drain(ws);
}

/* ---- receiving ------------------------------------------------------------ */

static void *grow(void *ptr, size_t *cap, size_t need)
{
    if (need <= *cap)
        return ptr;
    size_t c = *cap ? *cap : 256;
    while (c < need)
        c *= 2;
    *cap = c;
    return hs_realloc(ptr, c);
}

static incoming_t *incoming(hs_ws_session_t *ws)
{
    if (ws->in == NULL)
        ws->in = hs_calloc(1, sizeof(*ws->in));
    return ws->in;
}

/* Frees ws->in once it holds neither a frame nor a message. */
static void release_incoming_if_done(hs_ws_session_t *ws)
{
    if (ws->in && ws->in->partial_len == 0 && ws->in->msg_opcode == 0) {
        hs_free(ws->in->partial);
        hs_free(ws->in->msg);
        hs_free(ws->in);
        ws->in = NULL;
    }
}

static uint8_t msg_opcode(const hs_ws_session_t *ws)
{
    return ws->in ? ws->in->msg_opcode : 0;
}

static size_t partial_len(const hs_ws_session_t *ws)
{
    return ws->in ? ws->in->partial_len : 0;
}

static void release_msg(hs_ws_session_t *ws)
{
    hs_free(ws->in->msg);
    ws->in->msg = NULL;
    ws->in->msg_len = ws->in->msg_cap = 0;
    ws->in->msg_opcode = 0;
    release_incoming_if_done(ws);
}

static void handle_close_frame(hs_ws_session_t *ws, const uint8_t *payload, size_t len)
{
    uint16_t code = 1005;
    if (len == 1) {
        fail(ws, 1002, "close frame with a 1-byte payload");
        return;
    }
    if (len >= 2) {
        code = (uint16_t)((payload[0] << 8) | payload[1]);
        if (!hs_ws_close_code_valid(code)) {
            fail(ws, 1002, "invalid close code");
            return;
        }
        hs_utf8_state_t st;
        hs_utf8_init(&st);
        if (hs_utf8_feed(&st, payload + 2, len - 2) != HS_UTF8_ACCEPT) {
            fail(ws, 1007, "close reason is not valid UTF-8");
            return;
        }
    }
    ws->close_received = true;
    if (!ws->close_sent) {
        /* Echo the peer's code, as RFC 6455 5.5.1 suggests. */
        send_close(ws, code == 1005 ? 0 : code, NULL);
        ws->close_code = code;
    }
    hs_conn_close_after_flush(ws->conn);
}

/* One complete frame, payload still masked. Returns false when the session
 * stopped reading (closing). */
static bool handle_frame(hs_ws_session_t *ws, const hs_ws_frame_header_t *h, const uint8_t *masked)
{
    size_t len = (size_t)h->payload_len;
    if (h->opcode >= HS_WS_OP_CLOSE) {
        uint8_t payload[HS_WS_MAX_CONTROL];
        memcpy(payload, masked, len);
        hs_ws_unmask(payload, len, h->mask, 0);
        if (h->opcode == HS_WS_OP_PING) {
            answer_ping(ws, payload, len);
            return !hs_conn_closing(ws->conn);
        } else if (h->opcode == HS_WS_OP_PONG) {
            ws->missed_pongs = 0;
        } else {
            handle_close_frame(ws, payload, len);
            return false;
        }
        return true;
    }
    if (ws->close_sent)
        return true; /* data after our close frame is ignored */
    incoming(ws);
    if (h->opcode == HS_WS_OP_CONT) {
        if (ws->in->msg_opcode == 0) {
            fail(ws, 1002, "continuation frame without a message");
            return false;
        }
    } else {
        if (ws->in->msg_opcode != 0) {
            fail(ws, 1002, "new message before the previous one ended");
            return false;
        }
        ws->in->msg_opcode = h->opcode;
        hs_utf8_init(&ws->in->utf8);
    }
    if (ws->in->msg_len + len > ws->cfg->max_message) {
        fail(ws, 1009, "message too big");
        return false;
    }
    ws->in->msg = grow(ws->in->msg, &ws->in->msg_cap, ws->in->msg_len + len + 1);
    uint8_t *dst = ws->in->msg + ws->in->msg_len;
    memcpy(dst, masked, len);
    hs_ws_unmask(dst, len, h->mask, 0);
    ws->in->msg_len += len;
    if (ws->in->msg_opcode == HS_WS_OP_TEXT) {
        hs_utf8_result_t r = hs_utf8_feed(&ws->in->utf8, dst, len);
        if (r == HS_UTF8_REJECT || (h->fin && r != HS_UTF8_ACCEPT)) {
            fail(ws, 1007, "text message is not valid UTF-8");
            return false;
        }
    }
    if (h->fin) {
        bool binary = ws->in->msg_opcode == HS_WS_OP_BINARY;
        ws->in->msg[ws->in->msg_len] = '\0';
        if (ws->callbacks->on_message)
            ws->callbacks->on_message(ws, binary, (const char *)ws->in->msg, ws->in->msg_len);
        release_msg(ws);
    }
    return !hs_conn_closing(ws->conn);
}

/* Whether a frame whose header just arrived fits the limits: its declared
 * length, and for a continuation the message it adds to. Checked before its
 * payload is read, so nothing is buffered for a frame that will be refused.
 * Fails the session and returns false when it does not fit. */
static bool frame_fits(hs_ws_session_t *ws, const hs_ws_frame_header_t *h)
{
    uint64_t max = ws->cfg->max_message;
    if (h->payload_len > max) {
        fail(ws, 1009, "frame too big");
        return false;
    }
    if (h->opcode == HS_WS_OP_CONT && msg_opcode(ws) != 0 &&
        ws->in->msg_len + h->payload_len > max) {
        fail(ws, 1009, "message too big");
        return false;
    }
    return true;
}

/* Handles the complete frames in buf; returns how many bytes were used, or
 * SIZE_MAX when the session stopped reading. What is left is the start of
 * one frame, whose header (if complete) was found to fit. */
static size_t handle_frames(hs_ws_session_t *ws, const uint8_t *buf, size_t len)
{
    size_t pos = 0;
    while (pos < len) {
        hs_ws_frame_header_t h;
        int rc = hs_ws_parse_header(buf + pos, len - pos, HS_WS_MASKED, &h);
        if (rc == HS_EAGAIN)
            break;
        if (rc != 0) {
            fail(ws, 1002, "protocol error in frame header");
            return SIZE_MAX;
        }
        if (!frame_fits(ws, &h))
            return SIZE_MAX;
        size_t total = h.header_len + (size_t)h.payload_len;
        if (len - pos < total)
            break;
        if (!handle_frame(ws, &h, buf + pos + h.header_len))
            return SIZE_MAX;
        pos += total;
    }
    return pos;
}

static void release_partial(hs_ws_session_t *ws)
{
    hs_free(ws->in->partial);
    ws->in->partial = NULL;
    ws->in->partial_len = ws->in->partial_cap = 0;
    ws->in->partial_checked = 0;
    release_incoming_if_done(ws);
}

/* Appends n bytes to the incomplete frame, whose buffer is sized for exactly
 * need bytes (its header, then its header and payload): never more than
 * HS_WS_MAX_HEADER + max_message. */
static void partial_append(hs_ws_session_t *ws, const uint8_t *bytes, size_t n, size_t need)
{
    incoming(ws);
    if (ws->in->partial_cap < need) {
        ws->in->partial = hs_realloc(ws->in->partial, need);
        ws->in->partial_cap = need;
    }
    memcpy(ws->in->partial + ws->in->partial_len, bytes, n);
    ws->in->partial_len += n;
}

/* Completes the incomplete frame from bytes, taking only the bytes that
 * belong to it (its header first, then its payload), and handles it once
 * whole. Returns how many bytes were taken, or SIZE_MAX when the session
 * stopped reading. The frames after it are left to handle_frames, straight
 * from the read buffer: a read is never counted against the limits as a
 * whole, only each frame's declared length. */
static size_t complete_partial(hs_ws_session_t *ws, const uint8_t *bytes, size_t len)
{
    size_t taken = 0;
    for (;;) {
        hs_ws_frame_header_t h;
        int rc = hs_ws_parse_header(ws->in->partial, ws->in->partial_len, HS_WS_MASKED, &h);
        size_t need;
        if (rc == HS_EAGAIN) {
            need = h.header_len;
        } else if (rc != 0) {
            fail(ws, 1002, "protocol error in frame header");
            return SIZE_MAX;
        } else {
            /* Checked again each time more payload arrives: cheap, and
             * a fragmented message's length cannot have changed since. */
            if (!frame_fits(ws, &h))
                return SIZE_MAX;
            need = h.header_len + (size_t)h.payload_len;
            if (ws->in->partial_len == need) {
                bool reading = handle_frame(ws, &h, ws->in->partial + h.header_len);
                release_partial(ws);
                return reading ? taken : SIZE_MAX;
            }
        }
        size_t n = need - ws->in->partial_len;
        if (n > len - taken)
            n = len - taken;
        if (n == 0)
            return taken;
        partial_append(ws, bytes + taken, n, need);
        taken += n;
    }
}

/* A text frame still arriving: check the UTF-8 of what is there, so that an
 * invalid byte fails the connection at once instead of after the whole frame
 * (RFC 6455 8.1 asks to fail fast). Returns false when it failed. */
static bool check_partial_text(hs_ws_session_t *ws)
{
    hs_ws_frame_header_t h;
    if (hs_ws_parse_header(ws->in->partial, ws->in->partial_len, HS_WS_MASKED, &h) != 0)
        return true;
    bool text = h.opcode == HS_WS_OP_TEXT ||
                (h.opcode == HS_WS_OP_CONT && ws->in->msg_opcode == HS_WS_OP_TEXT);
    if (!text || ws->close_sent)
        return true;
    size_t avail = ws->in->partial_len - h.header_len;
    if (ws->in->partial_checked == 0) {
        if (h.opcode == HS_WS_OP_TEXT)
            hs_utf8_init(&ws->in->partial_utf8);
        else
            ws->in->partial_utf8 = ws->in->utf8;
    }
    while (ws->in->partial_checked < avail) {
        uint8_t chunk[256];
        size_t n = avail - ws->in->partial_checked;
        if (n > sizeof(chunk))
            n = sizeof(chunk);
        memcpy(chunk, ws->in->partial + h.header_len + ws->in->partial_checked, n);
        hs_ws_unmask(chunk, n, h.mask, ws->in->partial_checked);
        if (hs_utf8_feed(&ws->in->partial_utf8, chunk, n) == HS_UTF8_REJECT) {
            fail(ws, 1007, "text message is not valid UTF-8");
            return false;
        }
        ws->in->partial_checked += n;
    }
    return true;
}

/* A read: first the rest of the frame a previous read left incomplete, then
 * the whole frames in place, then the start of the next frame is kept. The
 * kept bytes are one frame's (a header, then at most max_message of payload),
 * however many frames the read carried. */
static void ws_on_read(hs_conn_t *conn, const char *data, size_t len)
{
    hs_ws_session_t *ws = hs_conn_data(conn);
    const uint8_t *bytes = (const uint8_t *)data;
    if (partial_len(ws) > 0) {
        size_t used = complete_partial(ws, bytes, len);
        if (used == SIZE_MAX)
            return;
        bytes += used;
        len -= used;
        if (partial_len(ws) > 0) { /* still incomplete: the read is used up */
            check_partial_text(ws);
            return;
        }
    }
    size_t used = handle_frames(ws, bytes, len);
    if (used == SIZE_MAX)
        return;
    bytes += used;
    len -= used;
    if (len == 0)
        return;
    hs_ws_frame_header_t h;
    size_t need = hs_ws_parse_header(bytes, len, HS_WS_MASKED, &h) == 0
                      ? h.header_len + (size_t)h.payload_len
                      : h.header_len;
    partial_append(ws, bytes, len, need);
    check_partial_text(ws);
}

static void ws_on_eof(hs_conn_t *conn, int status)
{
    (void)status;
    hs_conn_close(conn);
}

static void ws_on_close(hs_conn_t *conn)
{
    hs_ws_session_t *ws = hs_conn_data(conn);
    uint16_t code = ws->close_code ? ws->close_code : 1006;
    bool clean = ws->close_received;
    if (ws->callbacks->on_close)
        ws->callbacks->on_close(ws, code, clean);
    if (ws->in) {
        hs_free(ws->in->partial);
        hs_free(ws->in->msg);
        hs_free(ws->in);
    }
    hs_buf_unref(ws->pong);
    hs_buf_unref(ws->held_pong);
    hs_free(ws);
}

static const hs_conn_handler_t ws_handler = {
    .on_read = ws_on_read,
    .on_eof = ws_on_eof,
    .on_drain = ws_on_drain,
    .on_close = ws_on_close,
};

/* ---- the opening handshake ------------------------------------------------- */

/* Where the caller's room starts in a session's allocation. */
#define ROOM_OFFSET                                                                                \
    ((sizeof(struct hs_ws_session) + _Alignof(max_align_t) - 1) & ~(_Alignof(max_align_t) - 1))

static hs_ws_session_t *accept_session(hs_http_request_t *req, const hs_ws_config_t *cfg,
                                       const hs_ws_callbacks_t *callbacks, void *data, size_t room,
                                       void **room_out);

hs_ws_session_t *hs_ws_accept(hs_http_request_t *req, const hs_ws_config_t *cfg,
                              const hs_ws_callbacks_t *callbacks, void *data)
{
    return accept_session(req, cfg, callbacks, data, 0, NULL);
}

hs_ws_session_t *hs_ws_accept_with(hs_http_request_t *req, const hs_ws_config_t *cfg,
                                   const hs_ws_callbacks_t *callbacks, size_t room, void **room_out)
{
    *room_out = NULL;
    return accept_session(req, cfg, callbacks, NULL, room, room_out);
}

static hs_ws_session_t *accept_session(hs_http_request_t *req, const hs_ws_config_t *cfg,
                                       const hs_ws_callbacks_t *callbacks, void *data, size_t room,
                                       void **room_out)
{
    size_t len = 0;
    const char *upgrade = hs_http_header(req, "upgrade", &len);
    if (upgrade == NULL) {
        hs_http_respond_error_with(req, 426, "upgrade_required",
                                   "Upgrade: websocket\r\nConnection: Upgrade\r\n",
                                   "this endpoint speaks WebSocket only");
        return NULL;
    }
    if (!hs_ws_header_has_token(upgrade, len, "websocket")) {
        hs_http_respond_error(req, 400, "bad_handshake", "Upgrade must be websocket");
        return NULL;
    }
    const char *connection = hs_http_header(req, "connection", &len);
    if (connection == NULL || !hs_ws_header_has_token(connection, len, "upgrade")) {
        hs_http_respond_error(req, 400, "bad_handshake", "Connection must include Upgrade");
        return NULL;
    }
    const char *version = hs_http_header(req, "sec-websocket-version", &len);
    if (version == NULL || len != 2 || memcmp(version, "13", 2) != 0) {
        hs_http_respond_error_with(req, 426, "upgrade_required", "Sec-WebSocket-Version: 13\r\n",
                                   "only WebSocket version 13 is supported");
        return NULL;
    }
    const char *key = hs_http_header(req, "sec-websocket-key", &len);
    if (key == NULL || !hs_ws_key_valid(key, len)) {
        hs_http_respond_error(req, 400, "bad_handshake",
                              "Sec-WebSocket-Key must be base64 of 16 bytes");
        return NULL;
    }
    hs_conn_t *conn = hs_http_request_conn(req);
    if (conn == NULL) {
        hs_http_upgrade(req); /* the client is gone; this releases req */
        return NULL;
    }
    char accept[HS_WS_ACCEPT_LEN + 1];
    hs_ws_accept_key(key, len, accept);
    char head[160];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                     accept);
    hs_buf_t *buf = hs_buf_from(head, (size_t)n);
    hs_conn_send_always(conn, buf);
    hs_buf_unref(buf);
    conn = hs_http_upgrade(req);

    hs_ws_session_t *ws = hs_calloc(1, room ? ROOM_OFFSET + room : sizeof(*ws));
    if (room) {
        data = (char *)ws + ROOM_OFFSET;
        *room_out = data;
    }
    ws->conn = conn;
    ws->cfg = cfg;
    ws->callbacks = callbacks;
    ws->data = data;
    hs_conn_set_handler(conn, &ws_handler, ws);
    hs_conn_set_max_pending(conn, cfg->max_pending);
    hs_conn_set_fanout(conn); /* a subscriber: its writes are fan-out */
    if (cfg->ping_interval_ms > 0)
        hs_conn_timer_start(conn, cfg->ping_interval_ms, ping_cb);
    return ws;
}

void *hs_ws_data(hs_ws_session_t *ws)
{
    return ws->data;
}

void hs_ws_set_data(hs_ws_session_t *ws, void *data)
{
    ws->data = data;
}

const char *hs_ws_peer(hs_ws_session_t *ws)
{
    return hs_conn_peer(ws->conn);
}
