/* token.h - verification of client tokens (JWT, RFC 7519, compact JWS).
 *
 * OpenSSL and jansson only. A verifier holds what the operator configured:
 * an HS256 secret, a public key (RSA: RS256 only; EC P-256: ES256 only), or
 * both; the key type decides the one algorithm it accepts, so an HS256
 * token "signed" with the bytes of a public key (algorithm confusion),
 * "alg":"none" and every other algorithm are refused. Tokens are bounded
 * (HS_TOKEN_MAX bytes), base64url is decoded strictly (no padding, no
 * stray bits), JSON objects with duplicate keys are refused, and a header
 * with "crit" is refused (no extension is understood).
 *
 * Claims: "sub" (a non-empty string) is required; "exp", "nbf" and "iat"
 * are checked when present, with a leeway of HS_TOKEN_LEEWAY_S seconds for
 * clock skew; "iss" and "aud" when the verifier was given an issuer or an
 * audience; "topics", when present, is an array of topics or prefixes
 * ending in '*' that the client may subscribe to by itself.
 *
 * A verifier is immutable once built: any thread.
 */
#ifndef HS_ROLES_TOKEN_H
#define HS_ROLES_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HS_TOKEN_MAX        8192
#define HS_TOKEN_LEEWAY_S   30
#define HS_TOKEN_MAX_TOPICS 256
#define HS_TOKEN_SUB_MAX    256
/* 9999-12-31T23:59:59Z. "exp", "nbf" and "iat" beyond it (either way) are
 * taken as it, so that claims.exp * 1000 and the like cannot overflow. */
#define HS_TOKEN_MAX_DATE INT64_C(253402300799)

typedef struct hs_token_verifier hs_token_verifier_t;

typedef struct hs_token_options {
    const char *secret;         /* HS256 secret, or NULL / "" */
    const char *public_key_pem; /* PEM text of a public key, or NULL / "" */
    const char *issuer;         /* required "iss", or NULL / "" */
    const char *audience;       /* required in "aud", or NULL / "" */
} hs_token_options_t;

/* Builds a verifier. Returns 0, or HS_EINVAL with a reason in err (no key
 * at all, a PEM that is not an RSA or P-256 public key). */
int hs_token_verifier_new(const hs_token_options_t *options, hs_token_verifier_t **out, char *err,
                          size_t err_len);
void hs_token_verifier_free(hs_token_verifier_t *verifier);

typedef struct hs_token_claims {
    char *sub;
    bool has_exp;
    int64_t exp; /* seconds since the epoch, within +-HS_TOKEN_MAX_DATE */
    char **topics;
    size_t topic_count;
} hs_token_claims_t;

/* Verifies token (len bytes) at time now_s. Returns 0 and fills claims
 * (release with hs_token_claims_dispose), or HS_EINVAL with a short reason
 * in reason ("expired", "bad signature", …), fit to show the client. */
int hs_token_verify(const hs_token_verifier_t *verifier, const char *token, size_t len,
                    int64_t now_s, hs_token_claims_t *claims, char *reason, size_t reason_len);
void hs_token_claims_dispose(hs_token_claims_t *claims);

/* Whether the claims grant topic: an exact entry, or an entry "p*" with
 * topic starting with p ("*" alone grants every topic). */
bool hs_token_grants(const hs_token_claims_t *claims, const char *topic);

#endif
