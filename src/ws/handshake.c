#include "ws/handshake.h"

#include <openssl/evp.h>
#include <string.h>
#include <strings.h>

static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

bool hs_ws_key_valid(const char *key, size_t len)
{
    if (key == NULL || len != 24 || key[22] != '=' || key[23] != '=')
        return false;
    unsigned char decoded[20];
    /* EVP_DecodeBlock counts padding as zero bytes: 24 chars -> 18 bytes. */
    if (EVP_DecodeBlock(decoded, (const unsigned char *)key, 24) != 18)
        return false;
    return true;
}

void hs_ws_accept_key(const char *key, size_t len, char out[HS_WS_ACCEPT_LEN + 1])
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_sha1(), NULL);
    EVP_DigestUpdate(ctx, key, len);
    EVP_DigestUpdate(ctx, guid, sizeof(guid) - 1);
    EVP_DigestFinal_ex(ctx, digest, &digest_len);
    EVP_MD_CTX_free(ctx);
    EVP_EncodeBlock((unsigned char *)out, digest, (int)digest_len);
    out[HS_WS_ACCEPT_LEN] = '\0';
}

bool hs_ws_header_has_token(const char *value, size_t len, const char *token)
{
    size_t token_len = strlen(token);
    size_t i = 0;
    while (i < len) {
        while (i < len && (value[i] == ' ' || value[i] == '\t' || value[i] == ','))
            i++;
        size_t start = i;
        while (i < len && value[i] != ',')
            i++;
        size_t end = i;
        while (end > start && (value[end - 1] == ' ' || value[end - 1] == '\t'))
            end--;
        if (end - start == token_len && strncasecmp(value + start, token, token_len) == 0)
            return true;
    }
    return false;
}
