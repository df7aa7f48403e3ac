/* resume_token.c - HMAC-SHA256 resume tokens (see resume_token.h). */
#include "roles/resume_token.h"

#include "core/base64url.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>

#include "core/error.h"
#include "roles/token.h"

#define RAW_LEN (HS_ULID_LEN + 8 + 32)

static void sign(const void *secret, size_t secret_len, const unsigned char *body,
                 unsigned char mac[32])
{
    unsigned int mac_len = 32;
    HMAC(EVP_sha256(), secret, (int)secret_len, body, HS_ULID_LEN + 8, mac, &mac_len);
}

void hs_resume_token_make(const void *secret, size_t secret_len, const char *connection_id,
                          uint64_t expires_ms, char out[HS_RESUME_TOKEN_LEN + 1])
{
    unsigned char raw[RAW_LEN];
    memcpy(raw, connection_id, HS_ULID_LEN);
    for (int i = 0; i < 8; i++)
        raw[HS_ULID_LEN + i] = (unsigned char)(expires_ms >> (56 - 8 * i));
    sign(secret, secret_len, raw, raw + HS_ULID_LEN + 8);
    hs_base64url_encode(raw, RAW_LEN, out);
}

int hs_resume_token_check(const void *secret, size_t secret_len, const char *token, size_t len,
                          uint64_t now_ms, char id_out[HS_ULID_LEN + 1])
{
    unsigned char raw[RAW_LEN + 3], mac[32];
    if (len != HS_RESUME_TOKEN_LEN || hs_base64url_decode(token, len, raw) != RAW_LEN)
        return HS_EINVAL;
    sign(secret, secret_len, raw, mac);
    if (CRYPTO_memcmp(mac, raw + HS_ULID_LEN + 8, 32) != 0)
        return HS_EINVAL;
    uint64_t expires_ms = 0;
    for (int i = 0; i < 8; i++)
        expires_ms = expires_ms << 8 | raw[HS_ULID_LEN + i];
    if (expires_ms < now_ms)
        return HS_ECLOSED;
    memcpy(id_out, raw, HS_ULID_LEN);
    id_out[HS_ULID_LEN] = '\0';
    return 0;
}
