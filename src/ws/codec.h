/* codec.h - RFC 6455 frames: parsing frame headers (either side's),
 * encoding server frames.
 *
 * Written here rather than taken from libwslay: the broadcast path encodes
 * one frame into one reference-counted buffer and queues that same buffer on
 * every recipient, which wslay's per-connection event queue cannot do
 * without a copy per recipient (see docs/architecture.md).
 *
 * Pure functions; no allocation except hs_ws_frame_new/hs_ws_close_frame_new.
 */
#ifndef HS_WS_CODEC_H
#define HS_WS_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

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
 * bit set. No allocation: the bench's hot path calls it per frame. */
int hs_ws_parse_header(const uint8_t *data, size_t len, hs_ws_masking_t masking,
                       hs_ws_frame_header_t *out);

/* Unmasks len bytes in place; offset is the position of data[0] within the
 * payload, so a payload can be unmasked in pieces. */
void hs_ws_unmask(uint8_t *data, size_t len, const uint8_t mask[4], uint64_t offset);

/* Writes an unmasked server frame header; returns its length (2, 4 or 10). */
size_t hs_ws_write_header(uint8_t out[HS_WS_MAX_HEADER], bool fin, uint8_t opcode,
                          uint64_t payload_len);

/* One complete server frame (header + payload) in one buffer, one reference:
 * the frame that is shared by every recipient. */
hs_buf_t *hs_ws_frame_new(uint8_t opcode, const void *payload, size_t len);

/* A close frame with code and reason (reason may be NULL; it is cut at a
 * UTF-8 boundary to fit the 125-byte control payload). code 0 gives an
 * empty payload. */
hs_buf_t *hs_ws_close_frame_new(uint16_t code, const char *reason);

/* Whether a received close code is valid on the wire (1000-1003,
 * 1007-1014, 3000-4999). */
bool hs_ws_close_code_valid(uint16_t code);

#endif
