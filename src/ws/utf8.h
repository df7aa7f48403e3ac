/* utf8.h - incremental UTF-8 validation (RFC 3629).
 *
 * A text message may arrive in fragments that split a character; the state
 * carries over, and the first invalid byte is reported at once (overlong
 * forms, surrogates, code points above U+10FFFF, bad continuation bytes). */
#ifndef HS_WS_UTF8_H
#define HS_WS_UTF8_H

#include <stddef.h>
#include <stdint.h>

typedef enum hs_utf8_result {
    HS_UTF8_ACCEPT = 0,     /* valid and complete so far */
    HS_UTF8_INCOMPLETE = 1, /* valid so far, inside a multi-byte character */
    HS_UTF8_REJECT = 2,     /* invalid */
} hs_utf8_result_t;

typedef struct hs_utf8_state {
    uint8_t need;  /* continuation bytes still expected */
    uint8_t lower; /* bounds of the next continuation byte */
    uint8_t upper;
} hs_utf8_state_t;

static inline void hs_utf8_init(hs_utf8_state_t *state)
{
    state->need = 0;
    state->lower = 0x80;
    state->upper = 0xbf;
}

/* Feeds len bytes; REJECT is sticky only as far as the caller stops. */
hs_utf8_result_t hs_utf8_feed(hs_utf8_state_t *state, const uint8_t *data, size_t len);

#endif
