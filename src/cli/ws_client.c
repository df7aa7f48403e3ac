/* ws_client.c - the client side of RFC 6455 for `houston sub`: the
 * handshake, the frame reader (on ws/codec's header parser) and the masked
 * frame writer. */
#include "cli/ws_client.h"

#include <http_parser.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli/stream.h"
#include "core/alloc.h"
#include "core/error.h"
#include "ws/codec.h"
#include "ws/handshake.h"

#define HANDSHAKE_MAX 16384

struct hs_cli_ws {
    hs_cli_stream_t *stream;
    /* Bytes received and not yet consumed: at most one frame's header and
     * payload, so bounded by HS_CLI_WS_MAX_MESSAGE plus a header. */
    uint8_t *in;
    size_t in_len, in_cap;
    /* A fragmented message being put together. */
    char *msg;
    size_t msg_len;
    bool msg_open;
    uint16_t close_code;
    bool close_sent;
};

/* ---- sending ------------------------------------------------------------- */

static void random_bytes(void *out, size_t len)
{
    /* Cannot fail for len <= 256 once the pool is initialised. */
    if (getrandom(out, len, 0) != (ssize_t)len)
        memset(out, 0x5a, len);
}

static int send_frame(hs_cli_ws_t *ws, uint8_t opcode, const void *payload, size_t len)
{
    uint8_t header[HS_WS_MAX_HEADER];
    size_t header_len = hs_ws_write_header(header, true, opcode, len);
    header[1] |= 0x80; /* masked */
    uint8_t mask[4];
    random_bytes(mask, sizeof(mask));
    memcpy(header + header_len, mask, 4);
    header_len += 4;
    uint8_t *frame = hs_malloc(header_len + len);
    memcpy(frame, header, header_len);
    memcpy(frame + header_len, payload, len);
    hs_ws_unmask(frame + header_len, len, mask, 0); /* masking is the same XOR */
    int rc = hs_cli_stream_send_all(ws->stream, frame, header_len + len);
    hs_free(frame);
    return rc;
}

static int send_close(hs_cli_ws_t *ws, uint16_t code)
{
    if (ws->close_sent)
        return 0;
    ws->close_sent = true;
    uint8_t payload[2] = {(uint8_t)(code >> 8), (uint8_t)code};
    return send_frame(ws, HS_WS_OP_CLOSE, payload, code ? 2 : 0);
}

/* ---- the opening handshake ----------------------------------------------- */

typedef struct handshake {
    char field[64];
    bool in_accept;
    bool accept_ok;
    const char *expected;
    char body[512];
    size_t body_len;
    bool headers_done;
    bool complete;
} handshake_t;

static int on_header_field_cb(http_parser *parser, const char *at, size_t len)
{
    handshake_t *h = parser->data;
    h->in_accept =
        len == strlen("Sec-WebSocket-Accept") && strncasecmp(at, "Sec-WebSocket-Accept", len) == 0;
    return 0;
}

static int on_header_value_cb(http_parser *parser, const char *at, size_t len)
{
    handshake_t *h = parser->data;
    if (h->in_accept)
        h->accept_ok = len == HS_WS_ACCEPT_LEN && memcmp(at, h->expected, len) == 0;
    return 0;
}

static int on_headers_complete_cb(http_parser *parser)
{
    handshake_t *h = parser->data;
    h->headers_done = true;
    return parser->status_code == 101 ? 2 : 0; /* 2: no body follows */
}

static int on_complete_cb(http_parser *parser)
{
    handshake_t *h = parser->data;
    h->complete = true;
    return 0;
}

static int on_body_cb(http_parser *parser, const char *at, size_t len)
{
    handshake_t *h = parser->data;
    size_t room = sizeof(h->body) - 1 - h->body_len;
    if (len > room)
        len = room;
    memcpy(h->body + h->body_len, at, len);
    h->body_len += len;
    h->body[h->body_len] = '\0';
    return 0;
}

int hs_cli_ws_connect(const hs_cli_url_t *url, const hs_cli_tls_options_t *tls, const char *token,
                      int timeout_ms, hs_cli_ws_t **out, char *err, size_t err_len)
{
    *out = NULL;
    hs_cli_stream_t *stream;
    int rc = hs_cli_stream_open(url, tls, timeout_ms, &stream, err, err_len);
    if (rc != 0)
        return rc;
    hs_cli_ws_t *ws = hs_calloc(1, sizeof(*ws));
    ws->stream = stream;

    uint8_t nonce[16];
    random_bytes(nonce, sizeof(nonce));
    char key[32];
    EVP_EncodeBlock((unsigned char *)key, nonce, sizeof(nonce));
    char expected[HS_WS_ACCEPT_LEN + 1];
    hs_ws_accept_key(key, strlen(key), expected);

    char req[2048];
    int n =
        snprintf(req, sizeof(req),
                 "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: houston-cli/%s\r\n"
                 "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s%s%s\r\n",
                 url->path, url->authority, HOUSTON_VERSION, key,
                 token ? "Authorization: Bearer " : "", token ? token : "", token ? "\r\n" : "");
    if (n < 0 || (size_t)n >= sizeof(req)) {
        snprintf(err, err_len, "the WebSocket request is too long");
        rc = HS_ETOOBIG;
        goto out;
    }
    if (hs_cli_stream_send_all(stream, req, (size_t)n) != 0) {
        snprintf(err, err_len, "%s:%s closed the connection during the handshake", url->host,
                 url->port);
        rc = HS_EIO;
        goto out;
    }

    static const http_parser_settings settings = {.on_header_field = on_header_field_cb,
                                                  .on_header_value = on_header_value_cb,
                                                  .on_headers_complete = on_headers_complete_cb,
                                                  .on_body = on_body_cb,
                                                  .on_message_complete = on_complete_cb};
    http_parser parser;
    http_parser_init(&parser, HTTP_RESPONSE);
    handshake_t h = {.expected = expected};
    parser.data = &h;
    char buf[HANDSHAKE_MAX];
    size_t total = 0;
    for (;;) {
        ssize_t got = hs_cli_stream_recv(stream, buf, sizeof(buf), timeout_ms);
        if (got < 0) {
            snprintf(err, err_len, "no WebSocket handshake answer from %s:%s", url->host,
                     url->port);
            rc = HS_EIO;
            goto out;
        }
        size_t used = http_parser_execute(&parser, &settings, buf, (size_t)got);
        total += (size_t)got;
        if (parser.upgrade && parser.status_code == 101) {
            /* What follows the head is already frame data. */
            size_t rest = (size_t)got - used;
            if (rest > 0) {
                ws->in = hs_malloc(rest);
                ws->in_cap = ws->in_len = rest;
                memcpy(ws->in, buf + used, rest);
            }
            break;
        }
        bool failed =
            got == 0 || HTTP_PARSER_ERRNO(&parser) != HPE_OK || h.complete || total > HANDSHAKE_MAX;
        if (!failed)
            continue;
        if (h.headers_done && parser.status_code != 101)
            snprintf(err, err_len, "the WebSocket upgrade was refused: HTTP %u %s%s",
                     parser.status_code, h.body,
                     parser.status_code == 401 ? " (--token or HOUSTON_TOKEN gives the client "
                                                 "token)"
                                               : "");
        else
            snprintf(err, err_len, "%s:%s did not upgrade to a WebSocket", url->host, url->port);
        rc = HS_EPROTO;
        goto out;
    }
    if (!h.accept_ok) {
        snprintf(err, err_len, "the server's Sec-WebSocket-Accept is missing or wrong");
        rc = HS_EPROTO;
        goto out;
    }
    *out = ws;
out:
    if (rc != 0)
        hs_cli_ws_free(ws);
    return rc;
}

/* ---- reading --------------------------------------------------------------- */

static void consume(hs_cli_ws_t *ws, size_t len)
{
    memmove(ws->in, ws->in + len, ws->in_len - len);
    ws->in_len -= len;
}

static int fill(hs_cli_ws_t *ws, int timeout_ms)
{
    if (ws->in_cap - ws->in_len < 65536) {
        ws->in_cap = ws->in_len + 65536;
        ws->in = hs_realloc(ws->in, ws->in_cap);
    }
    ssize_t n =
        hs_cli_stream_recv(ws->stream, ws->in + ws->in_len, ws->in_cap - ws->in_len, timeout_ms);
    if (n == HS_EAGAIN)
        return 0;
    if (n <= 0) {
        if (ws->close_code == 0)
            ws->close_code = 1006;
        return HS_ECLOSED;
    }
    ws->in_len += (size_t)n;
    return 1;
}

static char *take_message(hs_cli_ws_t *ws, const uint8_t *payload, size_t len, size_t *out_len)
{
    char *msg = hs_malloc(len + 1);
    memcpy(msg, payload, len);
    msg[len] = '\0';
    *out_len = len;
    return msg;
}

/* Handles one complete frame at the front of ws->in. Returns 1 with a
 * message, 0 to go on, or a negative code. */
static int handle_frame(hs_cli_ws_t *ws, const hs_ws_frame_header_t *h, char **msg, size_t *len)
{
    const uint8_t *payload = ws->in + h->header_len;
    size_t plen = (size_t)h->payload_len;
    switch (h->opcode) {
    case HS_WS_OP_TEXT:
    case HS_WS_OP_BINARY:
        if (ws->msg_open)
            return HS_EPROTO;
        if (h->fin) {
            *msg = take_message(ws, payload, plen, len);
            return 1;
        }
        ws->msg_open = true;
        ws->msg = hs_malloc(plen + 1);
        memcpy(ws->msg, payload, plen);
        ws->msg_len = plen;
        return 0;
    case HS_WS_OP_CONT:
        if (!ws->msg_open)
            return HS_EPROTO;
        if (ws->msg_len + plen > HS_CLI_WS_MAX_MESSAGE)
            return HS_ETOOBIG;
        ws->msg = hs_realloc(ws->msg, ws->msg_len + plen + 1);
        memcpy(ws->msg + ws->msg_len, payload, plen);
        ws->msg_len += plen;
        ws->msg[ws->msg_len] = '\0';
        if (!h->fin)
            return 0;
        ws->msg_open = false;
        *msg = ws->msg;
        *len = ws->msg_len;
        ws->msg = NULL;
        ws->msg_len = 0;
        return 1;
    case HS_WS_OP_PING:
        return send_frame(ws, HS_WS_OP_PONG, payload, plen) == 0 ? 0 : HS_EIO;
    case HS_WS_OP_PONG:
        return 0;
    case HS_WS_OP_CLOSE:
        ws->close_code = plen >= 2 ? (uint16_t)((payload[0] << 8) | payload[1]) : 1005;
        /* Echo the code, as the closing handshake asks. */
        send_close(ws, ws->close_code == 1005 ? 0 : ws->close_code);
        return HS_ECLOSED;
    default:
        return HS_EPROTO;
    }
}

int hs_cli_ws_read(hs_cli_ws_t *ws, int timeout_ms, char **msg, size_t *len)
{
    *msg = NULL;
    *len = 0;
    if (ws->close_code != 0)
        return HS_ECLOSED;
    bool waited = false;
    for (;;) {
        /* Server frames are never masked: ws/codec's one parser, told so. A
         * frame over the message bound is refused on its header alone. */
        hs_ws_frame_header_t h;
        int rc = hs_ws_parse_header(ws->in, ws->in_len, HS_WS_UNMASKED, &h);
        if (rc == 0 && h.payload_len > HS_CLI_WS_MAX_MESSAGE)
            return HS_ETOOBIG;
        if (rc == 0 && ws->in_len >= h.header_len + h.payload_len) {
            rc = handle_frame(ws, &h, msg, len);
            consume(ws, h.header_len + (size_t)h.payload_len);
            if (rc != 0)
                return rc;
            continue;
        }
        if (rc != 0 && rc != HS_EAGAIN)
            return rc;
        /* Only the first wait honours the deadline; later ones finish a
         * frame that has started arriving. */
        int wait = waited ? 10000 : timeout_ms;
        if (waited && ws->in_len == 0)
            return 0;
        waited = true;
        rc = fill(ws, wait);
        if (rc <= 0)
            return rc;
    }
}

int hs_cli_ws_close(hs_cli_ws_t *ws, uint16_t code, int timeout_ms)
{
    if (ws->close_code == 0) {
        if (send_close(ws, code) != 0)
            return HS_EIO;
        /* Read until the server's close frame; messages in flight are
         * dropped, which is what closing means. */
        for (int i = 0; i < 1000 && ws->close_code == 0; i++) {
            char *msg;
            size_t len;
            int rc = hs_cli_ws_read(ws, timeout_ms, &msg, &len);
            hs_free(msg);
            if (rc == 0 || (rc < 0 && rc != HS_ECLOSED))
                break;
        }
    }
    hs_cli_stream_shutdown(ws->stream);
    return ws->close_code != 0 && ws->close_code != 1006 ? 0 : HS_EIO;
}

uint16_t hs_cli_ws_close_code(const hs_cli_ws_t *ws)
{
    return ws->close_code;
}

void hs_cli_ws_free(hs_cli_ws_t *ws)
{
    if (ws == NULL)
        return;
    hs_cli_stream_free(ws->stream);
    hs_free(ws->in);
    hs_free(ws->msg);
    hs_free(ws);
}
