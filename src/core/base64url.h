/* base64url.h - RFC 4648 §5 base64url without padding, as JWTs and resume
 * tokens use it. Decoding is strict: no padding, no other characters, and
 * the unused bits of the last character must be zero, so a byte string has
 * exactly one encoding. */
#ifndef HS_CORE_BASE64URL_H
#define HS_CORE_BASE64URL_H

#include <stddef.h>

/* Characters needed to encode len bytes (no NUL). */
static inline size_t hs_base64url_encoded_len(size_t len)
{
    return len / 3 * 4 + (len % 3 ? len % 3 + 1 : 0);
}
/* Writes hs_base64url_encoded_len(len) characters and a NUL to out. */
void hs_base64url_encode(const unsigned char *in, size_t len, char *out);
/* Decodes into out (room for len * 3 / 4 bytes); returns the byte count, or
 * -1 when in is not strict base64url. */
long hs_base64url_decode(const char *in, size_t len, unsigned char *out);

#endif
