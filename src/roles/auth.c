/* auth.c - API keys: digests in memory, constant-time comparison, the HTTP
 * guard of the API port. */
#include "roles/auth.h"

#include <ctype.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/log.h"

typedef struct digest {
    unsigned char bytes[SHA256_DIGEST_LENGTH];
} digest_t;

struct hs_auth {
    char *flag_keys; /* the comma list, kept for reloads */
    char *key_file;
    digest_t *digests;
    size_t count;
    bool required; /* keys were configured at start: never fall back to none */
};

/* A key is printable ASCII without spaces, 1..1024 bytes. */
static bool key_valid(const char *key, size_t len)
{
    if (len == 0 || len > 1024)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!isgraph((unsigned char)key[i]))
            return false;
    return true;
}

static void add_key(digest_t **digests, size_t *count, const char *key, size_t len)
{
    *digests = hs_realloc(*digests, (*count + 1) * sizeof(**digests));
    SHA256((const unsigned char *)key, len, (*digests)[*count].bytes);
    (*count)++;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1]))
        *--end = '\0';
    return s;
}

static int load(const char *flag_keys, const char *key_file, digest_t **digests, size_t *count,
                char *err, size_t err_len)
{
    *digests = NULL;
    *count = 0;
    if (flag_keys && flag_keys[0]) {
        char *copy = hs_strdup(flag_keys);
        char *save = NULL;
        int rc = 0;
        for (char *part = strtok_r(copy, ",", &save); part; part = strtok_r(NULL, ",", &save)) {
            char *key = trim(part);
            if (key[0] == '\0')
                continue;
            if (!key_valid(key, strlen(key))) {
                snprintf(err, err_len,
                         "--api-key: a key must be 1-1024 printable characters without spaces");
                rc = HS_EINVAL;
                break;
            }
            add_key(digests, count, key, strlen(key));
        }
        hs_free(copy);
        if (rc != 0)
            goto fail;
    }
    if (key_file && key_file[0]) {
        FILE *f = fopen(key_file, "r");
        if (f == NULL) {
            snprintf(err, err_len, "--api-key-file: cannot read \"%s\": %s", key_file,
                     strerror(errno));
            goto fail;
        }
        char line[2048];
        int number = 0;
        while (fgets(line, sizeof(line), f)) {
            number++;
            char *key = trim(line);
            if (key[0] == '\0' || key[0] == '#')
                continue;
            if (!key_valid(key, strlen(key))) {
                snprintf(err, err_len,
                         "--api-key-file: %s:%d: a key must be 1-1024 printable characters "
                         "without spaces",
                         key_file, number);
                fclose(f);
                goto fail;
            }
            add_key(digests, count, key, strlen(key));
        }
        fclose(f);
    }
    return 0;
fail:
    hs_free(*digests);
    *digests = NULL;
    *count = 0;
    return HS_EINVAL;
}

int hs_auth_new(const char *keys, const char *key_file, hs_auth_t **out, char *err, size_t err_len)
{
    hs_auth_t *auth = hs_calloc(1, sizeof(*auth));
    auth->flag_keys = hs_strdup(keys ? keys : "");
    auth->key_file = hs_strdup(key_file ? key_file : "");
    if (load(auth->flag_keys, auth->key_file, &auth->digests, &auth->count, err, err_len) != 0) {
        hs_auth_free(auth);
        *out = NULL;
        return HS_EINVAL;
    }
    auth->required = auth->count > 0;
    *out = auth;
    return 0;
}

int hs_auth_reload(hs_auth_t *auth, char *err, size_t err_len)
{
    digest_t *digests;
    size_t count;
    if (load(auth->flag_keys, auth->key_file, &digests, &count, err, err_len) != 0)
        return HS_EINVAL;
    if (count == 0 && auth->required) {
        snprintf(err, err_len, "no API key left after reloading; keeping the previous keys");
        hs_free(digests);
        return HS_EINVAL;
    }
    hs_free(auth->digests);
    auth->digests = digests;
    auth->count = count;
    auth->required = count > 0;
    return 0;
}

size_t hs_auth_key_count(const hs_auth_t *auth)
{
    return auth ? auth->count : 0;
}

bool hs_auth_check(const hs_auth_t *auth, const char *key, size_t len)
{
    if (auth == NULL || key == NULL || len == 0 || len > 4096)
        return false;
    unsigned char presented[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)key, len, presented);
    /* Every digest is compared: the time does not depend on which one (or
     * which byte) matched. */
    int matched = 0;
    for (size_t i = 0; i < auth->count; i++)
        matched |= CRYPTO_memcmp(presented, auth->digests[i].bytes, sizeof(presented)) == 0;
    return matched != 0;
}

const char *hs_auth_presented_key(hs_http_request_t *req, size_t *len)
{
    size_t n = 0;
    const char *value = hs_http_header(req, "authorization", &n);
    if (value && n > 7 && strncasecmp(value, "Bearer ", 7) == 0) {
        value += 7;
        n -= 7;
        while (n > 0 && *value == ' ') {
            value++;
            n--;
        }
        while (n > 0 && value[n - 1] == ' ')
            n--;
        *len = n;
        return value;
    }
    value = hs_http_header(req, "x-api-key", &n);
    if (value) {
        *len = n;
        return value;
    }
    *len = 0;
    return NULL;
}

bool hs_auth_guard_cb(hs_http_request_t *req, void *ctx)
{
    hs_auth_t *auth = ctx;
    size_t path_len;
    const char *path = hs_http_path(req, &path_len);
    /* Load balancers probe these without credentials. */
    if (strcmp(path, "/healthz") == 0 || strcmp(path, "/readyz") == 0 ||
        strcmp(path, "/healthz/") == 0 || strcmp(path, "/readyz/") == 0)
        return true;
    if (auth == NULL || auth->count == 0) {
        /* Without keys the API trusts whoever reaches its (loopback)
         * address; a reverse proxy reaches it for the whole world. */
        if (!hs_http_request_proxied(req))
            return true;
        hs_log_info("auth: %s %s from %s refused: relayed by a proxy and no API key is configured",
                    hs_http_request_id(req), path, hs_http_client_addr(req));
        hs_http_respond_error(req, 403, "forbidden",
                              "this API has no key configured and does not answer requests "
                              "relayed by a proxy; configure --api-key");
        return false;
    }
    size_t len;
    const char *key = hs_auth_presented_key(req, &len);
    if (key && hs_auth_check(auth, key, len))
        return true;
    hs_log_info("auth: %s %s refused: %s", hs_http_request_id(req), path,
                key ? "wrong API key" : "no API key");
    hs_http_respond_error_with(req, 401, "unauthorized", "WWW-Authenticate: Bearer\r\n",
                               key ? "the API key is not valid"
                                   : "an API key is required (Authorization: Bearer <key> or "
                                     "X-API-Key: <key>)");
    return false;
}

void hs_auth_free(hs_auth_t *auth)
{
    if (auth == NULL)
        return;
    hs_free(auth->digests);
    hs_free(auth->flag_keys);
    hs_free(auth->key_file);
    hs_free(auth);
}

void hs_auth_key_fingerprint(hs_http_request_t *req, char out[HS_AUTH_FINGERPRINT_LEN + 1])
{
    size_t len;
    const char *key = hs_auth_presented_key(req, &len);
    if (key == NULL || len == 0) {
        snprintf(out, HS_AUTH_FINGERPRINT_LEN + 1, "none");
        return;
    }
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)key, len, digest);
    for (int i = 0; i < HS_AUTH_FINGERPRINT_LEN / 2; i++)
        snprintf(out + 2 * i, 3, "%02x", digest[i]);
}
