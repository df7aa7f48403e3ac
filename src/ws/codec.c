/* codec.c - RFC 6455 frames: unmasking, encoding server frames, close
 * codes. The one frame-header parser, hs_ws_parse_header, is inline in
 * codec.h (it runs per frame). See docs/internals/ws.md. */
#include "ws/codec.h"

#include <string.h>

#include "core/error.h"

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

hs_buf_t *hs_ws_frame_new_parts(uint8_t opcode, const struct iovec *parts, size_t count)
{
    size_t len = 0;
    for (size_t i = 0; i < count; i++)
        len += parts[i].iov_len;
    uint8_t header[HS_WS_MAX_HEADER];
    size_t header_len = hs_ws_write_header(header, true, opcode, len);
    hs_buf_t *buf = hs_buf_new(header_len + len);
    memcpy(buf->data, header, header_len);
    buf->len = header_len;
    for (size_t i = 0; i < count; i++) {
        if (parts[i].iov_len)
            memcpy(buf->data + buf->len, parts[i].iov_base, parts[i].iov_len);
        buf->len += parts[i].iov_len;
    }
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
