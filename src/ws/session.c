/* session.c - a server-side WebSocket connection on an hs_conn.
 *
 * Memory: an idle session is this struct and nothing else. Bytes of an
 * incomplete frame and the pieces of a fragmented message are kept in
 * buffers allocated on demand and released once the frame or message is
 * complete, each bounded by max_message. */
#include "ws/session.h"

#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/log.h"
#include "ws/codec.h"
#include "ws/handshake.h"
#include "ws/utf8.h"

#define CLOSE_WAIT_MS 5000

struct hs_ws_session {
    hs_conn_t *conn;
    const hs_ws_config_t *cfg;
    const hs_ws_callbacks_t *callbacks;
    void *data;
    uint8_t *partial; /* an incomplete frame: header and payload so far */
    size_t partial_len, partial_cap;
    size_t partial_checked;       /* payload bytes of that frame already UTF-8 checked */
    hs_utf8_state_t partial_utf8; /* the check's state after them */
    uint8_t *msg;                 /* a message being reassembled from fragments */
    size_t msg_len, msg_cap;
    hs_utf8_state_t utf8;
    uint8_t msg_opcode; /* 0: no message in progress */
    uint8_t missed_pongs;
    bool close_sent;
    bool close_received;
    uint16_t close_code;
};

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
    hs_conn_send_always(conn, ping);
    hs_buf_unref(ping);
    hs_conn_timer_start(conn, ws->cfg->ping_interval_ms, ping_cb);
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

static void release_msg(hs_ws_session_t *ws)
{
    hs_free(ws->msg);
    ws->msg = NULL;
    ws->msg_len = ws->msg_cap = 0;
    ws->msg_opcode = 0;
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
            if (!ws->close_sent) {
                hs_buf_t *pong = hs_ws_frame_new(HS_WS_OP_PONG, payload, len);
                hs_conn_send_always(ws->conn, pong);
                hs_buf_unref(pong);
            }
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
    if (h->opcode == HS_WS_OP_CONT) {
        if (ws->msg_opcode == 0) {
            fail(ws, 1002, "continuation frame without a message");
            return false;
        }
    } else {
        if (ws->msg_opcode != 0) {
            fail(ws, 1002, "new message before the previous one ended");
            return false;
        }
        ws->msg_opcode = h->opcode;
        hs_utf8_init(&ws->utf8);
    }
    if (ws->msg_len + len > ws->cfg->max_message) {
        fail(ws, 1009, "message too big");
        return false;
    }
    ws->msg = grow(ws->msg, &ws->msg_cap, ws->msg_len + len + 1);
    uint8_t *dst = ws->msg + ws->msg_len;
    memcpy(dst, masked, len);
    hs_ws_unmask(dst, len, h->mask, 0);
    ws->msg_len += len;
    if (ws->msg_opcode == HS_WS_OP_TEXT) {
        hs_utf8_result_t r = hs_utf8_feed(&ws->utf8, dst, len);
        if (r == HS_UTF8_REJECT || (h->fin && r != HS_UTF8_ACCEPT)) {
            fail(ws, 1007, "text message is not valid UTF-8");
            return false;
        }
    }
    if (h->fin) {
        bool binary = ws->msg_opcode == HS_WS_OP_BINARY;
        ws->msg[ws->msg_len] = '\0';
        if (ws->callbacks->on_message)
            ws->callbacks->on_message(ws, binary, (const char *)ws->msg, ws->msg_len);
        release_msg(ws);
    }
    return !hs_conn_closing(ws->conn);
}

/* Handles the complete frames in buf; returns how many bytes were used, or
 * SIZE_MAX when the session stopped reading. */
static size_t handle_frames(hs_ws_session_t *ws, const uint8_t *buf, size_t len)
{
    size_t pos = 0;
    while (pos < len) {
        hs_ws_frame_header_t h;
        int rc = hs_ws_parse_header(buf + pos, len - pos, &h);
        if (rc == HS_EAGAIN)
            break;
        if (rc != 0) {
            fail(ws, 1002, "protocol error in frame header");
            return SIZE_MAX;
        }
        if (h.payload_len > ws->cfg->max_message) {
            fail(ws, 1009, "frame too big");
            return SIZE_MAX;
        }
        size_t total = h.header_len + (size_t)h.payload_len;
        if (len - pos < total)
            break;
        if (!handle_frame(ws, &h, buf + pos + h.header_len))
            return SIZE_MAX;
        pos += total;
    }
    return pos;
}

/* A text frame still arriving: check the UTF-8 of what is there, so that an
 * invalid byte fails the connection at once instead of after the whole frame
 * (RFC 6455 8.1 asks to fail fast). Returns false when it failed. */
static bool check_partial_text(hs_ws_session_t *ws)
{
    hs_ws_frame_header_t h;
    if (hs_ws_parse_header(ws->partial, ws->partial_len, &h) != 0)
        return true;
    bool text =
        h.opcode == HS_WS_OP_TEXT || (h.opcode == HS_WS_OP_CONT && ws->msg_opcode == HS_WS_OP_TEXT);
    if (!text || ws->close_sent)
        return true;
    size_t avail = ws->partial_len - h.header_len;
    if (ws->partial_checked == 0) {
        if (h.opcode == HS_WS_OP_TEXT)
            hs_utf8_init(&ws->partial_utf8);
        else
            ws->partial_utf8 = ws->utf8;
    }
    while (ws->partial_checked < avail) {
        uint8_t chunk[256];
        size_t n = avail - ws->partial_checked;
        if (n > sizeof(chunk))
            n = sizeof(chunk);
        memcpy(chunk, ws->partial + h.header_len + ws->partial_checked, n);
        hs_ws_unmask(chunk, n, h.mask, ws->partial_checked);
        if (hs_utf8_feed(&ws->partial_utf8, chunk, n) == HS_UTF8_REJECT) {
            fail(ws, 1007, "text message is not valid UTF-8");
            return false;
        }
        ws->partial_checked += n;
    }
    return true;
}

static void ws_on_read(hs_conn_t *conn, const char *data, size_t len)
{
    hs_ws_session_t *ws = hs_conn_data(conn);
    const uint8_t *bytes = (const uint8_t *)data;
    if (ws->partial_len == 0) {
        size_t used = handle_frames(ws, bytes, len);
        if (used == SIZE_MAX)
            return;
        bytes += used;
        len -= used;
        if (len == 0)
            return;
    }
    /* Keep the incomplete frame; the bound is one maximal frame. */
    if (ws->partial_len + len > ws->cfg->max_message + HS_WS_MAX_HEADER) {
        fail(ws, 1009, "frame too big");
        return;
    }
    ws->partial = grow(ws->partial, &ws->partial_cap, ws->partial_len + len);
    memcpy(ws->partial + ws->partial_len, bytes, len);
    ws->partial_len += len;
    size_t used = handle_frames(ws, ws->partial, ws->partial_len);
    if (used == SIZE_MAX)
        return;
    if (used > 0) {
        memmove(ws->partial, ws->partial + used, ws->partial_len - used);
        ws->partial_len -= used;
        ws->partial_checked = 0; /* a new frame starts the buffer */
    }
    if (ws->partial_len == 0) {
        hs_free(ws->partial);
        ws->partial = NULL;
        ws->partial_cap = 0;
        return;
    }
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
    hs_free(ws->partial);
    hs_free(ws->msg);
    hs_free(ws);
}

static void ws_on_drain(hs_conn_t *conn)
{
    hs_ws_session_t *ws = hs_conn_data(conn);
    if (ws->callbacks->on_drain && !ws->close_sent)
        ws->callbacks->on_drain(ws);
}

static const hs_conn_handler_t ws_handler = {
    .on_read = ws_on_read,
    .on_eof = ws_on_eof,
    .on_drain = ws_on_drain,
    .on_close = ws_on_close,
};

/* ---- the opening handshake ------------------------------------------------- */

hs_ws_session_t *hs_ws_accept(hs_http_request_t *req, const hs_ws_config_t *cfg,
                              const hs_ws_callbacks_t *callbacks, void *data)
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

    hs_ws_session_t *ws = hs_calloc(1, sizeof(*ws));
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
