/* handshake.h - the opening handshake's pieces (RFC 6455 section 4.2). */
#ifndef HS_WS_HANDSHAKE_H
#define HS_WS_HANDSHAKE_H

#include <stdbool.h>
#include <stddef.h>

#define HS_WS_ACCEPT_LEN 28

/* Whether key is base64 of exactly 16 bytes (24 characters, "==" padded). */
bool hs_ws_key_valid(const char *key, size_t len);
/* base64(SHA-1(key + GUID)) into out (28 characters and a NUL). */
void hs_ws_accept_key(const char *key, size_t len, char out[HS_WS_ACCEPT_LEN + 1]);
/* Whether a comma-separated header value contains token, case-insensitively
 * ("keep-alive, Upgrade" contains "upgrade"). */
bool hs_ws_header_has_token(const char *value, size_t len, const char *token);

#endif
