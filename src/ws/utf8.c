/* utf8.c - the byte ranges of RFC 3629's table 3-7 ("well-formed UTF-8 byte
 * sequences") drive the check: a lead byte fixes how many continuation bytes
 * follow and the allowed range of the first one, which excludes overlongs,
 * surrogates and code points above U+10FFFF without decoding. */
#include "ws/utf8.h"

hs_utf8_result_t hs_utf8_feed(hs_utf8_state_t *s, const uint8_t *data, size_t len)
{
    size_t i = 0;
    /* Fast path: ASCII runs, 8 bytes at a time, when not inside a sequence. */
    for (;;) {
        if (s->need == 0) {
            while (i + 8 <= len) {
                uint64_t v;
                __builtin_memcpy(&v, data + i, 8);
                if (v & 0x8080808080808080ull)
                    break;
                i += 8;
            }
        }
        if (i >= len)
            break;
        uint8_t c = data[i++];
        if (s->need == 0) {
            if (c < 0x80)
                continue;
            s->lower = 0x80;
            s->upper = 0xbf;
            if (c >= 0xc2 && c <= 0xdf) {
                s->need = 1;
            } else if (c >= 0xe0 && c <= 0xef) {
                s->need = 2;
                if (c == 0xe0)
                    s->lower = 0xa0; /* overlong */
                else if (c == 0xed)
                    s->upper = 0x9f; /* surrogates */
            } else if (c >= 0xf0 && c <= 0xf4) {
                s->need = 3;
                if (c == 0xf0)
                    s->lower = 0x90; /* overlong */
                else if (c == 0xf4)
                    s->upper = 0x8f; /* above U+10FFFF */
            } else {
                return HS_UTF8_REJECT;
            }
        } else {
            if (c < s->lower || c > s->upper)
                return HS_UTF8_REJECT;
            s->lower = 0x80;
            s->upper = 0xbf;
            s->need--;
        }
    }
    return s->need ? HS_UTF8_INCOMPLETE : HS_UTF8_ACCEPT;
}
