/* resume_token.h - the signed, opaque token that lets a dropped connection
 * come back (docs/recovery.md).
 *
 * A token is base64url (no padding) of connectionID (26 ASCII bytes),
 * expiry (unix milliseconds, 8 bytes big-endian) and HMAC-SHA256 over both
 * with the server's resume secret. It binds the connection id: a client
 * cannot forge one nor move it to another connection. Every notifier that
 * may see the resume must hold the same secret.
 *
 * Pure functions, any thread.
 */
#ifndef HS_ROLES_RESUME_TOKEN_H
#define HS_ROLES_RESUME_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#include "core/ulid.h"

/* 26 + 8 + 32 = 66 bytes, 88 characters of base64url. */
#define HS_RESUME_TOKEN_LEN 88

/* Writes the token of connection_id, valid until expires_ms, into out
 * (HS_RESUME_TOKEN_LEN characters and a NUL). */
void hs_resume_token_make(const void *secret, size_t secret_len, const char *connection_id,
                          uint64_t expires_ms, char out[HS_RESUME_TOKEN_LEN + 1]);

/* Checks token (len bytes) at now_ms: 0 and the connection id in id_out;
 * HS_EINVAL when it is malformed or its signature is wrong; HS_ECLOSED
 * when it expired. */
int hs_resume_token_check(const void *secret, size_t secret_len, const char *token, size_t len,
                          uint64_t now_ms, char id_out[HS_ULID_LEN + 1]);

#endif
