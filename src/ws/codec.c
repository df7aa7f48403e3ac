/* codec.c - RFC 6455 frame headers: the one parser (masked client frames
 * for the server, unmasked server frames for the CLI and the bench), the
 * unmasking and the encoding of server frames. See docs/internals/ws.md. */
#include "ws/codec.h"

#include <string.h>

#include "core/error.h"

int hs_ws_parse_header(const uint8_t *data, size_t len, hs_ws_masking_t masking,
                       hs_ws_frame_header_t *out)
{
    size_t mask_len = masking == HS_WS_MASKED ? 4 : 0;
    out->header_len = 2;
    if (len < 2)
        return HS_EAGAIN;
    uint8_t b0 = data[0], b1 = data[1];
    if (b0 & 0x70)
        return HS_EPROTO; /* RSV1-3 */
    uint8_t opcode = b0 & 0x0f;
    bool control = (opcode & 0x08) != 0;
    switch (opcode) {
    case HS_WS_OP_CONT:
    case HS_WS_OP_TEXT:
    case HS_WS_OP_BINARY:
    case HS_WS_OP_CLOSE:
    case HS_WS_OP_PING:
    case HS_WS_OP_PONG:
        break;
    default:
        return HS_EPROTO;
    }
    out->fin = (b0 & 0x80) != 0;
    out->opcode = opcode;
    out->masked = (b1 & 0x80) != 0;
    if (out->masked != (masking == HS_WS_MASKED))
        return HS_EPROTO;
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
    if (control && (!out->fin || plen > HS_WS_MAX_CONTROL))
        return HS_EPROTO;
    out->header_len = pos + mask_len;
    if (len < pos + mask_len)
        return HS_EAGAIN;
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
