/* libFuzzer: the WebSocket frame decoder and the UTF-8 validator. The input
 * is read as a stream of client frames, as the session reads it; each
 * payload is unmasked in two pieces and compared with a one-piece unmask,
 * and text is validated both whole and byte by byte (the results must
 * agree). The same input is then read as server frames (unmasked, as the CLI
 * and the bench read them): a header is 2 to 10 bytes, and HS_EAGAIN asks
 * for more bytes than there are. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "ws/codec.h"
#include "ws/utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_utf8(const uint8_t *p, size_t len)
{
    hs_utf8_state_t whole, split;
    hs_utf8_init(&whole);
    hs_utf8_init(&split);
    hs_utf8_result_t r1 = hs_utf8_feed(&whole, p, len);
    hs_utf8_result_t r2 = HS_UTF8_ACCEPT;
    for (size_t i = 0; i < len; i++) {
        r2 = hs_utf8_feed(&split, p + i, 1);
        if (r2 == HS_UTF8_REJECT)
            break;
    }
    if (len > 0 && r1 != r2)
        abort();
}

static void check_server_frames(const uint8_t *data, size_t size)
{
    size_t pos = 0;
    while (pos < size) {
        hs_ws_frame_header_t h;
        int rc = hs_ws_parse_header(data + pos, size - pos, HS_WS_UNMASKED, &h);
        if (rc == HS_EAGAIN && h.header_len <= size - pos)
            abort();
        if (rc != 0)
            break;
        if (h.header_len < 2 || h.header_len > 10 || h.masked)
            abort();
        if (h.payload_len > size - pos - h.header_len)
            break;
        pos += h.header_len + (size_t)h.payload_len;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_utf8(data, size);
    check_server_frames(data, size);
    size_t pos = 0;
    while (pos < size) {
        hs_ws_frame_header_t h;
        int rc = hs_ws_parse_header(data + pos, size - pos, HS_WS_MASKED, &h);
        if (rc != 0)
            break;
        if (h.header_len > HS_WS_MAX_HEADER || h.header_len < 6)
            abort();
        if (h.payload_len > size - pos - h.header_len)
            break;
        size_t len = (size_t)h.payload_len;
        uint8_t *a = malloc(len + 1), *b = malloc(len + 1);
        memcpy(a, data + pos + h.header_len, len);
        memcpy(b, a, len);
        hs_ws_unmask(a, len, h.mask, 0);
        size_t half = len / 2;
        hs_ws_unmask(b, half, h.mask, 0);
        hs_ws_unmask(b + half, len - half, h.mask, half);
        if (memcmp(a, b, len) != 0)
            abort();
        if (h.opcode == HS_WS_OP_TEXT)
            check_utf8(a, len);
        hs_buf_t *frame = hs_ws_frame_new(h.opcode, a, len);
        if (frame->len < len + 2)
            abort();
        hs_buf_unref(frame);
        free(a);
        free(b);
        pos += h.header_len + len;
    }
    return 0;
}
