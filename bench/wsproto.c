/* wsproto: shared HTTP/WebSocket helpers for the bench tools. */
#include "wsproto.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>
#include <time.h>

uint64_t wsp_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

size_t wsp_frame_header(uint8_t *out, int opcode, uint64_t len, const uint8_t *mask)
{
    size_t pos = 2;
    out[0] = (uint8_t)(0x80 | (opcode & 0x0f));
    if (len < 126) {
        out[1] = (uint8_t)len;
    } else if (len <= 0xffff) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        pos = 4;
    } else {
        out[1] = 127;
        for (int i = 0; i < 8; i++)
            out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
        pos = 10;
    }
    if (mask) {
        out[1] |= 0x80;
        memcpy(out + pos, mask, 4);
        pos += 4;
    }
    return pos;
}

void wsp_mask(uint8_t *data, size_t len, const uint8_t mask[4])
{
    for (size_t i = 0; i < len; i++)
        data[i] ^= mask[i & 3];
}

size_t wsp_http_head_end(const char *buf, size_t len)
{
    if (len < 4)
        return 0;
    const char *end = memmem(buf, len, "\r\n\r\n", 4);
    return end ? (size_t)(end - buf) + 4 : 0;
}

int wsp_http_header(const char *buf, size_t head_len, const char *name, const char **value,
                    size_t *value_len)
{
    size_t name_len = strlen(name);
    const char *end = buf + head_len;
    const char *line = memchr(buf, '\n', head_len); /* skip the request/status line */
    while (line && line + 1 < end) {
        line++;
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        if (!eol)
            break;
        if ((size_t)(eol - line) > name_len && line[name_len] == ':' &&
            strncasecmp(line, name, name_len) == 0) {
            const char *v = line + name_len + 1;
            const char *ve = eol;
            while (v < ve && (*v == ' ' || *v == '\t'))
                v++;
            while (ve > v && isspace((unsigned char)ve[-1]))
                ve--;
            *value = v;
            *value_len = (size_t)(ve - v);
            return 1;
        }
        line = eol;
    }
    return 0;
}

int wsp_http_status(const char *buf, size_t head_len)
{
    if (head_len < 12 || memcmp(buf, "HTTP/1.", 7) != 0)
        return -1;
    if (!isdigit((unsigned char)buf[9]) || !isdigit((unsigned char)buf[10]) ||
        !isdigit((unsigned char)buf[11]))
        return -1;
    return (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
}
