#include "roles/idempotency.h"

#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"

int hs_idempotency_key_check(const char *value, size_t len, hs_api_error_t *err)
{
    bool ok = value != NULL && len >= 1 && len <= HS_IDEMPOTENCY_KEY_MAX;
    for (size_t i = 0; ok && i < len; i++)
        ok = (unsigned char)value[i] >= 0x20 && (unsigned char)value[i] <= 0x7e;
    if (ok)
        return 0;
    err->status = 400;
    err->code = "invalid_field";
    snprintf(err->message, sizeof(err->message),
             "header 'Idempotency-Key' must be 1-%d printable ASCII characters",
             HS_IDEMPOTENCY_KEY_MAX);
    return HS_EINVAL;
}

/* "<decimal length>:<bytes>" */
static void add_field(EVP_MD_CTX *ctx, const char *bytes, size_t len)
{
    char prefix[32];
    int n = snprintf(prefix, sizeof(prefix), "%zu:", len);
    EVP_DigestUpdate(ctx, prefix, (size_t)n);
    EVP_DigestUpdate(ctx, bytes, len);
}

static void finish(EVP_MD_CTX *ctx, char out[HS_IDEMPOTENCY_HASH_LEN + 1])
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    EVP_DigestFinal_ex(ctx, digest, &digest_len);
    EVP_MD_CTX_free(ctx);
    static const char hex[] = "0123456789abcdef";
    for (unsigned int i = 0; i < digest_len && i < HS_IDEMPOTENCY_HASH_LEN / 2; i++) {
        out[2 * i] = hex[digest[i] >> 4];
        out[2 * i + 1] = hex[digest[i] & 15];
    }
    out[HS_IDEMPOTENCY_HASH_LEN] = '\0';
}

static void add_publish(EVP_MD_CTX *ctx, const hs_publish_input_t *in)
{
    add_field(ctx, in->topic, strlen(in->topic));
    add_field(ctx, in->content, in->content_len);
    add_field(ctx, in->author, strlen(in->author));
}

void hs_idempotency_body_hash(const hs_publish_input_t *in, char out[HS_IDEMPOTENCY_HASH_LEN + 1])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    add_publish(ctx, in);
    finish(ctx, out);
}

void hs_idempotency_batch_hash(const hs_publish_input_t *in, size_t count,
                               char out[HS_IDEMPOTENCY_HASH_LEN + 1])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    char head[48];
    int n = snprintf(head, sizeof(head), "batch %zu;", count); /* singles start with a digit */
    EVP_DigestUpdate(ctx, head, (size_t)n);
    for (size_t i = 0; i < count; i++)
        add_publish(ctx, &in[i]);
    finish(ctx, out);
}
