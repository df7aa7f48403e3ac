/* codec.h - RFC 6455 frames: parsing frame headers (either side's),
 * encoding server frames.
 *
 * Written here rather than taken from libwslay: the broadcast path encodes
 * one frame into one reference-counted buffer and queues that same buffer on
 * every recipient, which wslay's per-connection event queue cannot do
 * without a copy per recipient (see docs/architecture.md).
 *
 * Pure functions; no allocation except hs_ws_frame_new/hs_ws_close_frame_new.
 * The header parser is inline (below); the rest is in codec.c.
 */
#ifndef HS_WS_CODEC_H
#define HS_WS_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <string.h>

#include "core/buf.h"
#include "core/error.h"

enum {
    HS_WS_OP_CONT = 0x0,
    HS_WS_OP_TEXT = 0x1,
    HS_WS_OP_BINARY = 0x2,
    HS_WS_OP_CLOSE = 0x8,
    HS_WS_OP_PING = 0x9,
    HS_WS_OP_PONG = 0xA,
};

#define HS_WS_MAX_HEADER  14 /* 2 + 8 (length) + 4 (mask) */
#define HS_WS_MAX_CONTROL 125

/* The opcodes RFC 6455 defines, one bit each: 0-2 data, 8-10 control. */
#define HS_WS_KNOWN_OPCODES                                                                        \
    ((1u << HS_WS_OP_CONT) | (1u << HS_WS_OP_TEXT) | (1u << HS_WS_OP_BINARY) |                     \
     (1u << HS_WS_OP_CLOSE) | (1u << HS_WS_OP_PING) | (1u << HS_WS_OP_PONG))

typedef struct hs_ws_frame_header {
    bool fin;
    uint8_t opcode;
    bool masked;
    uint8_t mask[4];
    uint64_t payload_len;
    size_t header_len;
} hs_ws_frame_header_t;

/* Whether the frames parsed must carry a mask (RFC 6455 5.1): a server reads
 * client frames, which must be masked; a client reads server frames, which
 * must not be. The same parser serves the server (ws/session.c), the CLI
 * (cli/ws_client.c) and the bench tools (bench/wsload.c, bench/ceiling.c). */
typedef enum hs_ws_masking {
    HS_WS_UNMASKED = 0, /* frames from a server */
    HS_WS_MASKED = 1,   /* frames from a client */
} hs_ws_masking_t;

/* Parses the header of a frame at data[0..len). Returns 0 with *out filled
 * (out->mask is all zero for an unmasked frame); HS_EAGAIN when more bytes
 * are needed, with out->header_len the header length known so far (2 until
 * the length byte is in, then the whole header's: more than len, so a
 * reader can take exactly the missing bytes and no byte of the next frame);
 * HS_EPROTO when the frame breaks the protocol: a reserved bit set (no
 * extension is negotiated), an unknown opcode, a control frame that is
 * fragmented or longer than 125 bytes, a mask that is missing (masking ==
 * HS_WS_MASKED) or present (HS_WS_UNMASKED), or a 64-bit length with the top
 * bit set. No allocation.
 *
 * Inline, in this header, because it runs once per frame in the server's
 * read path and in the load generator's (bench/wsload.c): called out of line
 * from wsload, its frame loop cost measurably more CPU per delivery than
 * with the bench's former private parser; inline, it costs no more
 * (docs/internals/ws.md). It is still one parser: this is its only body. */
static inline int hs_ws_parse_header(const uint8_t *data, size_t len, hs_ws_masking_t masking,
                                     hs_ws_frame_header_t *out)
{
    out->header_len = 2;
    if (len < 2)
        return HS_EAGAIN;
    unsigned b0 = data[0], b1 = data[1];
    unsigned opcode = b0 & 0x0f;
    /* RSV1-3 (no extension is negotiated), an undefined opcode, a mask
     * where none may be or none where one must be. */
    if ((b0 & 0x70) != 0 || ((HS_WS_KNOWN_OPCODES >> opcode) & 1) == 0 ||
        (b1 >> 7) != (masking == HS_WS_MASKED ? 1u : 0u))
        return HS_EPROTO;
    size_t mask_len = masking == HS_WS_MASKED ? 4 : 0;
    uint64_t plen = b1 & 0x7f;
    size_t pos = 2;
    if (plen == 126) {
        out->header_len = 4 + mask_len;
        if (len < 4)
            return HS_EAGAIN;
        plen = ((uint64_t)data[2] << 8) | data[3];
        pos = 4;
    } else if (plen == 127) {
        out->header_len = 10 + mask_len;
        if (len < 10)
            return HS_EAGAIN;
        plen = 0;
        for (int i = 0; i < 8; i++)
            plen = (plen << 8) | data[2 + i];
        if (plen >> 63)
            return HS_EPROTO;
        pos = 10;
    }
    /* A control frame: never fragmented, at most 125 bytes. */
    if ((opcode & 0x08) != 0 && ((b0 & 0x80) == 0 || plen > HS_WS_MAX_CONTROL))
        return HS_EPROTO;
    out->header_len = pos + mask_len;
    if (len < pos + mask_len)
        return HS_EAGAIN;
    out->fin = (b0 & 0x80) != 0;
    out->opcode = (uint8_t)opcode;
    out->masked = mask_len != 0;
    if (mask_len)
        memcpy(out->mask, data + pos, 4);
    else
        memset(out->mask, 0, 4);
    out->payload_len = plen;
    return 0;
}

/* Unmasks len bytes in place; offset is the position of data[0] within the
 * payload, so a payload can be unmasked in pieces. */
void hs_ws_unmask(uint8_t *data, size_t len, const uint8_t mask[4], uint64_t offset);

/* Writes an unmasked server frame header; returns its length (2, 4 or 10). */
size_t hs_ws_write_header(uint8_t out[HS_WS_MAX_HEADER], bool fin, uint8_t opcode,
                          uint64_t payload_len);

/* One complete server frame (header + payload) in one buffer, one reference:
 * the frame that is shared by every recipient. */
hs_buf_t *hs_ws_frame_new(uint8_t opcode, const void *payload, size_t len);

/* The same, its payload the count parts one after the other (a message
 * frame: the frame's prefix, the message object, the closing brace),
 * copied once into the frame's buffer. */
hs_buf_t *hs_ws_frame_new_parts(uint8_t opcode, const struct iovec *parts, size_t count);

/* A close frame with code and reason (reason may be NULL; it is cut at a
 * UTF-8 boundary to fit the 125-byte control payload). code 0 gives an
 * empty payload. */
hs_buf_t *hs_ws_close_frame_new(uint16_t code, const char *reason);

/* Whether a received close code is valid on the wire (1000-1003,
 * 1007-1014, 3000-4999). */
bool hs_ws_close_code_valid(uint16_t code);

#endif
