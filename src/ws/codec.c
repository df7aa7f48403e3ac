/* codec.c - RFC 6455 frame headers: the one parser (masked client frames
 * for the server, unmasked server frames for the CLI and the bench), the
 * unmasking and the encoding of server frames. See docs/internals/ws.md. */
#include "ws/codec.h"

#include <string.h>

#include "core/error.h"

/* The opcodes RFC 6455 defines, one bit each: 0-2 data, 8-10 control. */
#define KNOWN_OPCODES                                                                              \
    ((1u << HS_WS_OP_CONT) | (1u << HS_WS_OP_TEXT) | (1u << HS_WS_OP_BINARY) |                     \
     (1u << HS_WS_OP_CLOSE) | (1u << HS_WS_OP_PING) | (1u << HS_WS_OP_PONG))

/* Called once per frame by the server and by the bench's load generator:
 * branches are few and the common case (a length below 126) takes the
 * first exit. */
int hs_ws_parse_header(const uint8_t *data, size_t len, hs_ws_masking_t masking,
                       hs_ws_frame_header_t *out)
{
    out->header_len = 2;
    if (len < 2)
        return HS_EAGAIN;
    unsigned b0 = data[0], b1 = data[1];
    unsigned opcode = b0 & 0x0f;
    /* RSV1-3 (no extension is negotiated), an undefined opcode, a mask
     * where none may be or none where one must be. */
    if ((b0 & 0x70) != 0 || ((KNOWN_OPCODES >> opcode) & 1) == 0 ||
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

void hs_ws_unmask(uint8_t *data, size_t len, const uint8_t mask[4], uint64_t offset)
{
    size_t i = 0;
    /* Byte by byte until the mask phase is 0, then 8 bytes at a time. */
    while (i < len && ((offset + i) & 3) != 0) {
        data[i] ^= mask[(offset + i) & 3];
        i++;
    }
    uint32_t m32;
    memcpy(&m32, mask, 4);
    uint64_t m64 = ((uint64_t)m32 << 32) | m32;
    for (; i + 8 <= len; i += 8) {
        uint64_t v;
        memcpy(&v, data + i, 8);
        v ^= m64;
        memcpy(data + i, &v, 8);
    }
    for (; i < len; i++)
        data[i] ^= mask[(offset + i) & 3];
}

size_t hs_ws_write_header(uint8_t out[HS_WS_MAX_HEADER], bool fin, uint8_t opcode,
                          uint64_t payload_len)
{
    out[0] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0f));
    if (payload_len < 126) {
        out[1] = (uint8_t)payload_len;
        return 2;
    }
    if (payload_len <= 0xffff) {
        out[1] = 126;
        out[2] = (uint8_t)(payload_len >> 8);
        out[3] = (uint8_t)payload_len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++)
        out[2 + i] = (uint8_t)(payload_len >> (56 - 8 * i));
    return 10;
}

hs_buf_t *hs_ws_frame_new(uint8_t opcode, const void *payload, size_t len)
{
    uint8_t header[HS_WS_MAX_HEADER];
    size_t header_len = hs_ws_write_header(header, true, opcode, len);
    hs_buf_t *buf = hs_buf_new(header_len + len);
    memcpy(buf->data, header, header_len);
    if (len)
        memcpy(buf->data + header_len, payload, len);
    buf->len = header_len + len;
    return buf;
}

hs_buf_t *hs_ws_close_frame_new(uint16_t code, const char *reason)
{
    uint8_t payload[HS_WS_MAX_CONTROL];
    size_t len = 0;
    if (code != 0) {
        payload[0] = (uint8_t)(code >> 8);
        payload[1] = (uint8_t)code;
        len = 2;
        if (reason) {
            size_t rlen = strlen(reason);
            if (rlen > HS_WS_MAX_CONTROL - 2) {
                rlen = HS_WS_MAX_CONTROL - 2;
                /* Do not cut a UTF-8 sequence: back up over continuation bytes. */
                while (rlen > 0 && ((unsigned char)reason[rlen] & 0xc0) == 0x80)
                    rlen--;
            }
            memcpy(payload + 2, reason, rlen);
            len += rlen;
        }
    }
    return hs_ws_frame_new(HS_WS_OP_CLOSE, payload, len);
}

bool hs_ws_close_code_valid(uint16_t code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}
