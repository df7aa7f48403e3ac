/* token.c - JWT verification with OpenSSL (HMAC, EVP_DigestVerify) and
 * jansson. See token.h for the rules. */
#include "roles/token.h"

#include <jansson.h>
#include <math.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/base64url.h"
#include "core/error.h"
#include "roles/decode.h"

typedef enum key_alg { ALG_NONE = 0, ALG_RS256, ALG_ES256 } key_alg_t;

struct hs_token_verifier {
    unsigned char *secret;
    size_t secret_len;
    EVP_PKEY *key;
    key_alg_t key_alg;
    char *issuer;
    char *audience;
};

static char *dup_or_null(const char *s)
{
    return s && s[0] ? hs_strdup(s) : NULL;
}

int hs_token_verifier_new(const hs_token_options_t *options, hs_token_verifier_t **out, char *err,
                          size_t err_len)
{
    *out = NULL;
    bool has_secret = options->secret && options->secret[0];
    bool has_key = options->public_key_pem && options->public_key_pem[0];
    if (!has_secret && !has_key)
        return hs_fail_invalid(err, err_len, "no token secret or public key");
    hs_token_verifier_t *v = hs_calloc(1, sizeof(*v));
    if (has_secret) {
        v->secret_len = strlen(options->secret);
        v->secret = (unsigned char *)hs_strdup(options->secret);
    }
    if (has_key) {
        BIO *bio = BIO_new_mem_buf(options->public_key_pem, -1);
        v->key = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
        BIO_free(bio);
        if (v->key == NULL) {
            hs_token_verifier_free(v);
            return hs_fail_invalid(err, err_len, "--jwt-public-key: not a PEM public key");
        }
        int type = EVP_PKEY_get_base_id(v->key);
        char group[64] = "";
        size_t group_len = 0;
        if (type == EVP_PKEY_RSA && EVP_PKEY_get_bits(v->key) >= 2048) {
            v->key_alg = ALG_RS256;
        } else if (type == EVP_PKEY_EC &&
                   EVP_PKEY_get_group_name(v->key, group, sizeof(group), &group_len) == 1 &&
                   (strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0)) {
            v->key_alg = ALG_ES256;
        } else {
            hs_token_verifier_free(v);
            return hs_fail_invalid(
                err, err_len,
                "--jwt-public-key: an RSA key of 2048 bits or more (RS256) or an EC "
                "P-256 key (ES256) is needed");
        }
    }
    v->issuer = dup_or_null(options->issuer);
    v->audience = dup_or_null(options->audience);
    *out = v;
    return 0;
}

void hs_token_verifier_free(hs_token_verifier_t *v)
{
    if (v == NULL)
        return;
    if (v->secret)
        OPENSSL_cleanse(v->secret, v->secret_len);
    hs_free(v->secret);
    EVP_PKEY_free(v->key);
    hs_free(v->issuer);
    hs_free(v->audience);
    hs_free(v);
}

/* Decodes one part into a new NUL-terminated buffer; NULL on error. */
static unsigned char *decode_part(const char *in, size_t len, size_t *out_len)
{
    unsigned char *buf = hs_malloc(len * 3 / 4 + 2);
    long n = hs_base64url_decode(in, len, buf);
    if (n < 0) {
        hs_free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *out_len = (size_t)n;
    return buf;
}

/* ---- signatures ---------------------------------------------------------- */

static bool verify_hs256(const hs_token_verifier_t *v, const char *input, size_t input_len,
                         const unsigned char *sig, size_t sig_len)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    if (sig_len != 32 || HMAC(EVP_sha256(), v->secret, (int)v->secret_len,
                              (const unsigned char *)input, input_len, mac, &mac_len) == NULL)
        return false;
    return mac_len == 32 && CRYPTO_memcmp(mac, sig, 32) == 0;
}

static bool digest_verify(EVP_PKEY *key, const char *input, size_t input_len,
                          const unsigned char *sig, size_t sig_len)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = ctx && EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, key) == 1 &&
              EVP_DigestVerify(ctx, sig, sig_len, (const unsigned char *)input, input_len) == 1;
    EVP_MD_CTX_free(ctx);
    return ok;
}

/* JWS carries an ES256 signature as r || s, 32 bytes each; OpenSSL wants
 * the DER SEQUENCE of two INTEGERs. */
static bool verify_es256(EVP_PKEY *key, const char *input, size_t input_len,
                         const unsigned char *sig, size_t sig_len)
{
    if (sig_len != 64)
        return false;
    ECDSA_SIG *ec_sig = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, 32, NULL), *s = BN_bin2bn(sig + 32, 32, NULL);
    bool ok = false;
    unsigned char *der = NULL;
    if (ec_sig && r && s && ECDSA_SIG_set0(ec_sig, r, s) == 1) {
        r = s = NULL; /* owned by ec_sig now */
        int der_len = i2d_ECDSA_SIG(ec_sig, &der);
        if (der_len > 0)
            ok = digest_verify(key, input, input_len, der, (size_t)der_len);
    }
    OPENSSL_free(der);
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(ec_sig);
    return ok;
}

/* ---- claims -------------------------------------------------------------- */

/* A NumericDate: an integer or a real number of seconds, brought within
 * +-HS_TOKEN_MAX_DATE (the end of year 9999): a date past it means "never" as
 * well as the bound does, and no arithmetic on a date (milliseconds for a
 * timer, the leeway) can overflow. */
static bool numeric_date(json_t *value, int64_t *out)
{
    int64_t t;
    if (json_is_integer(value)) {
        t = (int64_t)json_integer_value(value);
    } else if (json_is_real(value)) {
        double d = json_real_value(value);
        if (!isfinite(d))
            return false;
        if (d > (double)HS_TOKEN_MAX_DATE)
            t = HS_TOKEN_MAX_DATE;
        else if (d < -(double)HS_TOKEN_MAX_DATE)
            t = -HS_TOKEN_MAX_DATE;
        else
            t = (int64_t)d; /* seconds; the fraction does not matter */
    } else {
        return false;
    }
    if (t > HS_TOKEN_MAX_DATE)
        t = HS_TOKEN_MAX_DATE;
    else if (t < -HS_TOKEN_MAX_DATE)
        t = -HS_TOKEN_MAX_DATE;
    *out = t;
    return true;
}

/* A grant is a topic, or a topic prefix followed by '*', or "*". */
static bool grant_valid(const char *s)
{
    size_t len = strlen(s);
    if (len > 0 && s[len - 1] == '*')
        return len == 1 || hs_topic_valid(s, len - 1);
    return hs_topic_valid(s, len);
}

static int check_claims(const hs_token_verifier_t *v, json_t *payload, int64_t now,
                        hs_token_claims_t *c, char *reason, size_t reason_len)
{
    json_t *sub = json_object_get(payload, "sub");
    if (!json_is_string(sub) || json_string_length(sub) == 0)
        return hs_fail_invalid(reason, reason_len, "the token has no \"sub\" (the user)");
    if (json_string_length(sub) > HS_TOKEN_SUB_MAX ||
        memchr(json_string_value(sub), '\0', json_string_length(sub)) != NULL)
        return hs_fail_invalid(reason, reason_len, "\"sub\" is too long or contains NUL");
    int64_t t;
    json_t *exp = json_object_get(payload, "exp");
    if (exp) {
        if (!numeric_date(exp, &t))
            return hs_fail_invalid(reason, reason_len, "\"exp\" is not a number");
        if (now - HS_TOKEN_LEEWAY_S >= t)
            return hs_fail_invalid(reason, reason_len, "the token has expired");
        c->has_exp = true;
        c->exp = t;
    }
    json_t *nbf = json_object_get(payload, "nbf");
    if (nbf) {
        if (!numeric_date(nbf, &t))
            return hs_fail_invalid(reason, reason_len, "\"nbf\" is not a number");
        if (now + HS_TOKEN_LEEWAY_S < t)
            return hs_fail_invalid(reason, reason_len, "the token is not valid yet (nbf)");
    }
    json_t *iat = json_object_get(payload, "iat");
    if (iat) {
        if (!numeric_date(iat, &t))
            return hs_fail_invalid(reason, reason_len, "\"iat\" is not a number");
        if (now + HS_TOKEN_LEEWAY_S < t)
            return hs_fail_invalid(reason, reason_len, "the token is issued in the future (iat)");
    }
    if (v->issuer) {
        json_t *iss = json_object_get(payload, "iss");
        if (!json_is_string(iss) || strcmp(json_string_value(iss), v->issuer) != 0)
            return hs_fail_invalid(reason, reason_len, "wrong issuer (iss)");
    }
    if (v->audience) {
        json_t *aud = json_object_get(payload, "aud");
        bool found = json_is_string(aud) && strcmp(json_string_value(aud), v->audience) == 0;
        size_t i;
        json_t *item;
        if (json_is_array(aud))
            json_array_foreach(aud, i, item)
            {
                if (json_is_string(item) && strcmp(json_string_value(item), v->audience) == 0)
                    found = true;
            }
        if (!found)
            return hs_fail_invalid(reason, reason_len, "wrong audience (aud)");
    }
    json_t *topics = json_object_get(payload, "topics");
    if (topics && !json_is_null(topics)) {
        if (!json_is_array(topics) || json_array_size(topics) > HS_TOKEN_MAX_TOPICS)
            return hs_fail_invalid(reason, reason_len,
                                   "\"topics\" must be an array of at most %d topics",
                                   HS_TOKEN_MAX_TOPICS);
        size_t count = json_array_size(topics);
        c->topics = hs_calloc(count ? count : 1, sizeof(char *));
        for (size_t i = 0; i < count; i++) {
            json_t *item = json_array_get(topics, i);
            if (!json_is_string(item) || !grant_valid(json_string_value(item)))
                return hs_fail_invalid(
                    reason, reason_len,
                    "\"topics\" entries must be topics or prefixes ending in '*'");
            c->topics[c->topic_count++] = hs_strdup(json_string_value(item));
        }
    }
    c->sub = hs_strdup(json_string_value(sub));
    return 0;
}

int hs_token_verify(const hs_token_verifier_t *v, const char *token, size_t len, int64_t now_s,
                    hs_token_claims_t *claims, char *reason, size_t reason_len)
{
    memset(claims, 0, sizeof(*claims));
    int rc = HS_EINVAL;
    unsigned char *header_text = NULL, *payload_text = NULL, *sig = NULL;
    json_t *header = NULL, *payload = NULL;
    if (len == 0 || len > HS_TOKEN_MAX) {
        rc = hs_fail_invalid(reason, reason_len,
                             len ? "the token is too large" : "the token is empty");
        goto out;
    }
    const char *dot1 = memchr(token, '.', len);
    const char *dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
    if (dot2 == NULL || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)) != NULL) {
        rc = hs_fail_invalid(reason, reason_len, "the token is not a compact JWS (three parts)");
        goto out;
    }
    size_t header_len = 0, payload_len = 0, sig_len = 0;
    header_text = decode_part(token, (size_t)(dot1 - token), &header_len);
    payload_text = decode_part(dot1 + 1, (size_t)(dot2 - dot1 - 1), &payload_len);
    sig = decode_part(dot2 + 1, len - (size_t)(dot2 + 1 - token), &sig_len);
    if (!header_text || !payload_text || !sig) {
        rc = hs_fail_invalid(reason, reason_len, "the token is not valid base64url");
        goto out;
    }
    json_error_t jerr;
    header = json_loadb((const char *)header_text, header_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(header)) {
        rc = hs_fail_invalid(reason, reason_len, "the token header is not a JSON object");
        goto out;
    }
    const char *alg = json_string_value(json_object_get(header, "alg"));
    if (alg == NULL) {
        rc = hs_fail_invalid(reason, reason_len, "the token header has no \"alg\"");
        goto out;
    }
    if (json_object_get(header, "crit")) {
        rc = hs_fail_invalid(reason, reason_len, "the token header has \"crit\" extensions");
        goto out;
    }
    /* The key decides the algorithm; the token only says which key. */
    const char *input = token;
    size_t input_len = (size_t)(dot2 - token);
    bool ok;
    if (strcmp(alg, "HS256") == 0 && v->secret)
        ok = verify_hs256(v, input, input_len, sig, sig_len);
    else if (strcmp(alg, "RS256") == 0 && v->key_alg == ALG_RS256)
        ok = digest_verify(v->key, input, input_len, sig, sig_len);
    else if (strcmp(alg, "ES256") == 0 && v->key_alg == ALG_ES256)
        ok = verify_es256(v->key, input, input_len, sig, sig_len);
    else {
        rc = hs_fail_invalid(reason, reason_len, "algorithm \"%.16s\" is not accepted", alg);
        goto out;
    }
    if (!ok) {
        rc = hs_fail_invalid(reason, reason_len, "bad signature");
        goto out;
    }
    payload = json_loadb((const char *)payload_text, payload_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(payload)) {
        rc = hs_fail_invalid(reason, reason_len, "the token payload is not a JSON object");
        goto out;
    }
    rc = check_claims(v, payload, now_s, claims, reason, reason_len);
out:
    if (rc != 0)
        hs_token_claims_dispose(claims);
    json_decref(header);
    json_decref(payload);
    hs_free(header_text);
    hs_free(payload_text);
    hs_free(sig);
    return rc;
}

void hs_token_claims_dispose(hs_token_claims_t *c)
{
    for (size_t i = 0; i < c->topic_count; i++)
        hs_free(c->topics[i]);
    hs_free(c->topics);
    hs_free(c->sub);
    memset(c, 0, sizeof(*c));
}

bool hs_token_grants(const hs_token_claims_t *c, const char *topic)
{
    size_t len = strlen(topic);
    for (size_t i = 0; i < c->topic_count; i++) {
        const char *g = c->topics[i];
        size_t glen = strlen(g);
        if (glen > 0 && g[glen - 1] == '*') {
            if (len >= glen - 1 && memcmp(topic, g, glen - 1) == 0)
                return true;
        } else if (glen == len && memcmp(topic, g, len) == 0) {
            return true;
        }
    }
    return false;
}
