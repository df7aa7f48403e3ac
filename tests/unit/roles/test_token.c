/* Client token verification: tokens are signed here with OpenSSL (HMAC,
 * EVP_DigestSign with generated RSA and P-256 keys) and every rule of
 * token.h is checked: algorithms bound to the key type (no "none", no
 * confusion), claims and their leeway, strict base64url, sizes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base64url.h"
#include "core/error.h"
#include "roles/token.h"

#define NOW    1700000000LL
#define SECRET "unit-test-secret"

static EVP_PKEY *rsa_key, *ec_key;
static char rsa_pem[4096], ec_pem[1024];

/* header.payload.signature; key NULL signs HS256 with secret (or, for
 * "none", no signature at all). */
static char *sign(const char *header, const char *payload, EVP_PKEY *key, const char *secret)
{
    char *token = calloc(1, 16384);
    hs_base64url_encode((const unsigned char *)header, strlen(header), token);
    strcat(token, ".");
    hs_base64url_encode((const unsigned char *)payload, strlen(payload), token + strlen(token));
    size_t input_len = strlen(token);
    unsigned char sig[512];
    size_t sig_len = 0;
    if (strstr(header, "\"none\"")) {
        sig_len = 0;
    } else if (key == NULL) {
        unsigned int n = 0;
        HMAC(EVP_sha256(), secret, (int)strlen(secret), (unsigned char *)token, input_len, sig, &n);
        sig_len = n;
    } else {
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        unsigned char der[256];
        size_t der_len = sizeof(der);
        bool ec = EVP_PKEY_get_base_id(key) == EVP_PKEY_EC;
        assert_int_equal(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key), 1);
        sig_len = sizeof(sig);
        assert_int_equal(EVP_DigestSign(ctx, ec ? der : sig, ec ? &der_len : &sig_len,
                                        (unsigned char *)token, input_len),
                         1);
        EVP_MD_CTX_free(ctx);
        if (ec) { /* DER -> r || s */
            const unsigned char *p = der;
            ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
            const BIGNUM *r, *s;
            ECDSA_SIG_get0(es, &r, &s);
            BN_bn2binpad(r, sig, 32);
            BN_bn2binpad(s, sig + 32, 32);
            sig_len = 64;
            ECDSA_SIG_free(es);
        }
    }
    strcat(token, ".");
    hs_base64url_encode(sig, sig_len, token + strlen(token));
    return token;
}

static hs_token_verifier_t *verifier(const char *secret, const char *pem, const char *iss,
                                     const char *aud)
{
    hs_token_options_t options = {secret, pem, iss, aud};
    hs_token_verifier_t *v = NULL;
    char err[200];
    assert_int_equal(hs_token_verifier_new(&options, &v, err, sizeof(err)), 0);
    return v;
}

/* Verifies and returns the status; reason gets the reason. */
static int check(hs_token_verifier_t *v, const char *token, char *reason)
{
    hs_token_claims_t c;
    int rc = hs_token_verify(v, token, strlen(token), NOW, &c, reason, 160);
    if (rc == 0)
        hs_token_claims_dispose(&c);
    return rc;
}

static const char *HS = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";

static int setup(void **state)
{
    (void)state;
    rsa_key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    ec_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    assert_non_null(rsa_key);
    assert_non_null(ec_key);
    BIO *bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(bio, rsa_key);
    rsa_pem[BIO_read(bio, rsa_pem, sizeof(rsa_pem) - 1)] = '\0';
    BIO_free(bio);
    bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(bio, ec_key);
    ec_pem[BIO_read(bio, ec_pem, sizeof(ec_pem) - 1)] = '\0';
    BIO_free(bio);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    EVP_PKEY_free(rsa_key);
    EVP_PKEY_free(ec_key);
    return 0;
}

static void test_hs256_claims_and_grants(void **state)
{
    (void)state;
    hs_token_verifier_t *v = verifier(SECRET, NULL, NULL, NULL);
    char *t = sign(HS,
                   "{\"sub\":\"alice\",\"exp\":1700000100,\"iat\":1700000000,"
                   "\"topics\":[\"news\",\"chat.*\"]}",
                   NULL, SECRET);
    hs_token_claims_t c;
    char reason[160];
    assert_int_equal(hs_token_verify(v, t, strlen(t), NOW, &c, reason, sizeof(reason)), 0);
    assert_string_equal(c.sub, "alice");
    assert_true(c.has_exp);
    assert_int_equal(c.exp, 1700000100);
    assert_true(hs_token_grants(&c, "news"));
    assert_false(hs_token_grants(&c, "news2"));
    assert_true(hs_token_grants(&c, "chat.room1"));
    assert_true(hs_token_grants(&c, "chat."));
    assert_false(hs_token_grants(&c, "chat"));
    assert_false(hs_token_grants(&c, "secret"));
    hs_token_claims_dispose(&c);
    free(t);
    /* Without topics nothing is granted; "*" grants everything. */
    t = sign(HS, "{\"sub\":\"bob\"}", NULL, SECRET);
    assert_int_equal(hs_token_verify(v, t, strlen(t), NOW, &c, reason, sizeof(reason)), 0);
    assert_false(c.has_exp);
    assert_false(hs_token_grants(&c, "news"));
    hs_token_claims_dispose(&c);
    free(t);
    t = sign(HS, "{\"sub\":\"root\",\"topics\":[\"*\"]}", NULL, SECRET);
    assert_int_equal(hs_token_verify(v, t, strlen(t), NOW, &c, reason, sizeof(reason)), 0);
    assert_true(hs_token_grants(&c, "anything"));
    hs_token_claims_dispose(&c);
    free(t);
    hs_token_verifier_free(v);
}

static void test_time_claims_with_leeway(void **state)
{
    (void)state;
    hs_token_verifier_t *v = verifier(SECRET, NULL, NULL, NULL);
    static const struct {
        const char *payload;
        int status;
        const char *reason;
    } cases[] = {
        {"{\"sub\":\"a\",\"exp\":1699999990}", 0, NULL}, /* 10 s late: leeway */
        {"{\"sub\":\"a\",\"exp\":1699999970}", HS_EINVAL, "expired"},
        {"{\"sub\":\"a\",\"exp\":1699999969.5}", HS_EINVAL, "expired"},
        {"{\"sub\":\"a\",\"nbf\":1700000020}", 0, NULL},
        {"{\"sub\":\"a\",\"nbf\":1700000100}", HS_EINVAL, "not valid yet"},
        {"{\"sub\":\"a\",\"iat\":1700000100}", HS_EINVAL, "future"},
        {"{\"sub\":\"a\",\"exp\":\"soon\"}", HS_EINVAL, "exp"},
        {"{\"exp\":1700000100}", HS_EINVAL, "sub"},
        {"{\"sub\":\"\"}", HS_EINVAL, "sub"},
        {"{\"sub\":42}", HS_EINVAL, "sub"},
        {"{\"sub\":\"a\",\"topics\":\"news\"}", HS_EINVAL, "topics"},
        {"{\"sub\":\"a\",\"topics\":[\"bad topic\"]}", HS_EINVAL, "topics"},
        {"{\"sub\":\"a\",\"sub\":\"b\"}", HS_EINVAL, "JSON"}, /* duplicate key */
        {"[\"sub\"]", HS_EINVAL, "JSON"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *t = sign(HS, cases[i].payload, NULL, SECRET);
        char reason[160] = "";
        int rc = check(v, t, reason);
        if (rc != cases[i].status)
            fail_msg("%s: %d (%s)", cases[i].payload, rc, reason);
        if (cases[i].reason && strstr(reason, cases[i].reason) == NULL)
            fail_msg("%s: reason \"%s\"", cases[i].payload, reason);
        free(t);
    }
    hs_token_verifier_free(v);
}

/* Dates far in the future or the past, as integers or reals, are taken as
 * the end of year 9999 (or its opposite): claims.exp * 1000 must not overflow
 * in the caller (the notifier's expiry timer; UBSan caught 2^63-1). */
static void test_dates_beyond_year_9999_are_bounded(void **state)
{
    (void)state;
    hs_token_verifier_t *v = verifier(SECRET, NULL, NULL, NULL);
    static const struct {
        const char *payload;
        int64_t exp;
    } cases[] = {
        {"{\"sub\":\"a\",\"exp\":9223372036854775807}", HS_TOKEN_MAX_DATE},
        {"{\"sub\":\"a\",\"exp\":253402300800}", HS_TOKEN_MAX_DATE},
        {"{\"sub\":\"a\",\"exp\":253402300799}", HS_TOKEN_MAX_DATE},
        {"{\"sub\":\"a\",\"exp\":253402300798}", INT64_C(253402300798)},
        {"{\"sub\":\"a\",\"exp\":1e300}", HS_TOKEN_MAX_DATE},
        {"{\"sub\":\"a\",\"exp\":9.3e18}", HS_TOKEN_MAX_DATE},
        {"{\"sub\":\"a\",\"exp\":1e300,\"nbf\":-9223372036854775807,\"iat\":-1e300}",
         HS_TOKEN_MAX_DATE},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *t = sign(HS, cases[i].payload, NULL, SECRET);
        hs_token_claims_t c;
        char reason[160] = "";
        int rc = hs_token_verify(v, t, strlen(t), NOW, &c, reason, sizeof(reason));
        if (rc != 0)
            fail_msg("%s: %d (%s)", cases[i].payload, rc, reason);
        assert_true(c.has_exp);
        assert_int_equal(c.exp, cases[i].exp);
        assert_true(c.exp <= INT64_MAX / 1000);
        hs_token_claims_dispose(&c);
        free(t);
    }
    /* Far in the past is expired, far in the future is not valid yet. */
    static const struct {
        const char *payload;
        const char *reason;
    } refused[] = {
        {"{\"sub\":\"a\",\"exp\":-9223372036854775807}", "expired"},
        {"{\"sub\":\"a\",\"exp\":-1e300}", "expired"},
        {"{\"sub\":\"a\",\"nbf\":9223372036854775807}", "not valid yet"},
        {"{\"sub\":\"a\",\"iat\":1e300}", "future"},
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        char *t = sign(HS, refused[i].payload, NULL, SECRET);
        char reason[160] = "";
        assert_int_equal(check(v, t, reason), HS_EINVAL);
        if (strstr(reason, refused[i].reason) == NULL)
            fail_msg("%s: reason \"%s\"", refused[i].payload, reason);
        free(t);
    }
    hs_token_verifier_free(v);
}

static void test_issuer_and_audience(void **state)
{
    (void)state;
    hs_token_verifier_t *v = verifier(SECRET, NULL, "https://auth", "houston");
    static const struct {
        const char *payload;
        int status;
    } cases[] = {
        {"{\"sub\":\"a\",\"iss\":\"https://auth\",\"aud\":\"houston\"}", 0},
        {"{\"sub\":\"a\",\"iss\":\"https://auth\",\"aud\":[\"x\",\"houston\"]}", 0},
        {"{\"sub\":\"a\",\"iss\":\"https://evil\",\"aud\":\"houston\"}", HS_EINVAL},
        {"{\"sub\":\"a\",\"aud\":\"houston\"}", HS_EINVAL},
        {"{\"sub\":\"a\",\"iss\":\"https://auth\",\"aud\":\"other\"}", HS_EINVAL},
        {"{\"sub\":\"a\",\"iss\":\"https://auth\"}", HS_EINVAL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *t = sign(HS, cases[i].payload, NULL, SECRET);
        char reason[160] = "";
        if (check(v, t, reason) != cases[i].status)
            fail_msg("%s: %s", cases[i].payload, reason);
        free(t);
    }
    hs_token_verifier_free(v);
}

static void test_signatures_and_algorithms(void **state)
{
    (void)state;
    const char *payload = "{\"sub\":\"a\"}";
    hs_token_verifier_t *hs = verifier(SECRET, NULL, NULL, NULL);
    hs_token_verifier_t *rs = verifier(NULL, rsa_pem, NULL, NULL);
    hs_token_verifier_t *es = verifier(NULL, ec_pem, NULL, NULL);
    char reason[160];
    char *hs_token = sign(HS, payload, NULL, SECRET);
    char *rs_token = sign("{\"alg\":\"RS256\"}", payload, rsa_key, NULL);
    char *es_token = sign("{\"alg\":\"ES256\"}", payload, ec_key, NULL);
    assert_int_equal(check(hs, hs_token, reason), 0);
    assert_int_equal(check(rs, rs_token, reason), 0);
    assert_int_equal(check(es, es_token, reason), 0);
    /* Each verifier accepts its key's algorithm only. */
    assert_int_equal(check(hs, rs_token, reason), HS_EINVAL);
    assert_int_equal(check(rs, es_token, reason), HS_EINVAL);
    assert_int_equal(check(es, rs_token, reason), HS_EINVAL);
    assert_int_equal(check(rs, hs_token, reason), HS_EINVAL);
    assert_non_null(strstr(reason, "not accepted"));
    /* Algorithm confusion: HS256 keyed with the public key's PEM bytes. */
    char *confused = sign(HS, payload, NULL, rsa_pem);
    assert_int_equal(check(rs, confused, reason), HS_EINVAL);
    free(confused);
    confused = sign(HS, payload, NULL, ec_pem);
    assert_int_equal(check(es, confused, reason), HS_EINVAL);
    free(confused);
    /* "none", unknown and missing algorithms, "crit". */
    const char *headers[] = {"{\"alg\":\"none\"}", "{\"alg\":\"None\"}", "{\"alg\":\"HS384\"}",
                             "{\"typ\":\"JWT\"}", "{\"alg\":\"HS256\",\"crit\":[\"exp\"]}"};
    for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
        char *t = sign(headers[i], payload, NULL, SECRET);
        assert_int_equal(check(hs, t, reason), HS_EINVAL);
        free(t);
    }
    /* A wrong secret, a flipped signature byte, a foreign key. */
    char *t = sign(HS, payload, NULL, "other");
    assert_int_equal(check(hs, t, reason), HS_EINVAL);
    assert_string_equal(reason, "bad signature");
    free(t);
    t = strdup(rs_token);
    char *last = t + strlen(t) - 2;
    *last = *last == 'A' ? 'B' : 'A';
    assert_int_equal(check(rs, t, reason), HS_EINVAL);
    free(t);
    EVP_PKEY *other = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    t = sign("{\"alg\":\"ES256\"}", payload, other, NULL);
    assert_int_equal(check(es, t, reason), HS_EINVAL);
    free(t);
    EVP_PKEY_free(other);
    free(hs_token);
    free(rs_token);
    free(es_token);
    hs_token_verifier_free(hs);
    hs_token_verifier_free(rs);
    hs_token_verifier_free(es);
}

static void test_shape_and_base64url(void **state)
{
    (void)state;
    hs_token_verifier_t *v = verifier(SECRET, NULL, NULL, NULL);
    char reason[160];
    char *good = sign(HS, "{\"sub\":\"a\"}", NULL, SECRET);
    assert_int_equal(check(v, good, reason), 0);
    char buf[512];
    snprintf(buf, sizeof(buf), "%s=", good); /* padding */
    assert_int_equal(check(v, buf, reason), HS_EINVAL);
    snprintf(buf, sizeof(buf), "%s.x", good); /* four parts */
    assert_int_equal(check(v, buf, reason), HS_EINVAL);
    assert_int_equal(check(v, "", reason), HS_EINVAL);
    assert_int_equal(check(v, "a.b", reason), HS_EINVAL);
    assert_int_equal(check(v, "..", reason), HS_EINVAL);
    char *big = calloc(1, HS_TOKEN_MAX + 2);
    memset(big, 'A', HS_TOKEN_MAX + 1);
    assert_int_equal(check(v, big, reason), HS_EINVAL);
    assert_non_null(strstr(reason, "too large"));
    free(big);
    free(good);
    unsigned char out[16];
    assert_int_equal(hs_base64url_decode("QQ", 2, out), 1);  /* "A" */
    assert_int_equal(hs_base64url_decode("QR", 2, out), -1); /* stray bits */
    assert_int_equal(hs_base64url_decode("Q", 1, out), -1);
    assert_int_equal(hs_base64url_decode("a+b/", 4, out), -1);
    assert_int_equal(hs_base64url_decode("a-b_", 4, out), 3);
    hs_token_verifier_free(v);
}

static void test_verifier_configuration(void **state)
{
    (void)state;
    hs_token_verifier_t *v = NULL;
    char err[200];
    hs_token_options_t none = {0};
    assert_int_equal(hs_token_verifier_new(&none, &v, err, sizeof(err)), HS_EINVAL);
    hs_token_options_t junk = {.public_key_pem = "-----BEGIN PUBLIC KEY-----\nnope\n"};
    assert_int_equal(hs_token_verifier_new(&junk, &v, err, sizeof(err)), HS_EINVAL);
    EVP_PKEY *small = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    BIO *bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(bio, small);
    char pem[2048];
    pem[BIO_read(bio, pem, sizeof(pem) - 1)] = '\0';
    BIO_free(bio);
    EVP_PKEY_free(small);
    hs_token_options_t weak = {.public_key_pem = pem};
    assert_int_equal(hs_token_verifier_new(&weak, &v, err, sizeof(err)), HS_EINVAL);
    assert_null(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hs256_claims_and_grants),
        cmocka_unit_test(test_time_claims_with_leeway),
        cmocka_unit_test(test_dates_beyond_year_9999_are_bounded),
        cmocka_unit_test(test_issuer_and_audience),
        cmocka_unit_test(test_signatures_and_algorithms),
        cmocka_unit_test(test_shape_and_base64url),
        cmocka_unit_test(test_verifier_configuration),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
