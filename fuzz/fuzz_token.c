/* libFuzzer: the client token verifier (roles/token.c). Each input is tried
 * twice: as a token as is (shape, base64url, algorithm and signature
 * checks), and as "HEADER\nPAYLOAD" JSON that the harness encodes and signs
 * with the verifier's secret, so the claim checks behind the signature are
 * reached too. Invariants: a token accepted has a non-empty sub, and an
 * "alg" other than HS256 is never accepted. */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/base64url.h"
#include "roles/token.h"

#define SECRET "fuzz-secret"
#define NOW    1700000000LL

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Appends the base64url of in to out; returns the characters written. */
static size_t b64url(const unsigned char *in, size_t len, char *out)
{
    hs_base64url_encode(in, len, out);
    return hs_base64url_encoded_len(len);
}

static void verify(const hs_token_verifier_t *v, const char *token, size_t len, bool hs256)
{
    hs_token_claims_t claims;
    char reason[160];
    if (hs_token_verify(v, token, len, NOW, &claims, reason, sizeof(reason)) != 0)
        return;
    if (claims.sub == NULL || claims.sub[0] == '\0' || !hs256)
        abort();
    hs_token_grants(&claims, "news");
    hs_token_claims_dispose(&claims);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static hs_token_verifier_t *v;
    if (v == NULL) {
        hs_token_options_t options = {.secret = SECRET, .issuer = "iss", .audience = "aud"};
        char err[128];
        if (hs_token_verifier_new(&options, &v, err, sizeof(err)) != 0)
            abort();
    }
    if (size > 4 * HS_TOKEN_MAX)
        return 0;
    verify(v, (const char *)data, size, false);
    const uint8_t *nl = memchr(data, '\n', size);
    if (nl == NULL)
        return 0;
    size_t head_len = (size_t)(nl - data), body_len = size - head_len - 1;
    char *token = malloc(size * 2 + 64);
    size_t n = b64url(data, head_len, token);
    token[n++] = '.';
    n += b64url(nl + 1, body_len, token + n);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    HMAC(EVP_sha256(), SECRET, (int)strlen(SECRET), (unsigned char *)token, n, mac, &mac_len);
    token[n++] = '.';
    n += b64url(mac, mac_len, token + n);
    /* Only a header naming HS256 may pass. */
    bool hs256 = memmem(data, head_len, "\"HS256\"", 7) != NULL;
    verify(v, token, n, hs256);
    free(token);
    return 0;
}
