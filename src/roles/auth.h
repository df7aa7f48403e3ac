/* auth.h - the API keys of the publisher API.
 *
 * Keys come from --api-key (a comma list, the flag repeatable) and
 * --api-key-file (one key per line, '#' comments, blank lines ignored).
 * Only their SHA-256 digests are kept in memory. A presented key is hashed
 * and compared with every configured digest with CRYPTO_memcmp, without
 * stopping at the first match, so the time taken tells nothing about which
 * bytes matched. Keys are never logged.
 *
 * Requests present a key as "Authorization: Bearer <key>" or
 * "X-API-Key: <key>". hs_auth_guard_cb is an HTTP guard (server.h): with
 * keys configured, every request but /healthz and /readyz needs one, else
 * 401 {"error":{"code":"unauthorized",…}} with "WWW-Authenticate: Bearer".
 * Without keys, a request relayed by a trusted proxy (--trusted-proxies)
 * is 403 forbidden: the keyless API is for this machine only.
 *
 * Thread affinity: the loop thread only.
 */
#ifndef HS_ROLES_AUTH_H
#define HS_ROLES_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "http/server.h"

typedef struct hs_auth hs_auth_t;

/* Reads the keys. Returns 0, or HS_EINVAL with a reason in err (an
 * unreadable file, a key with spaces or control characters). */
int hs_auth_new(const char *keys, const char *key_file, hs_auth_t **out, char *err, size_t err_len);
/* Reads the key file again (SIGHUP): the flag keys stay. On error, or when
 * the new set would be empty where keys were required, the old set stays
 * and HS_EINVAL is returned with a reason. */
int hs_auth_reload(hs_auth_t *auth, char *err, size_t err_len);
size_t hs_auth_key_count(const hs_auth_t *auth);
/* Whether key (len bytes) is one of the configured keys. */
bool hs_auth_check(const hs_auth_t *auth, const char *key, size_t len);
/* The key a request presents (Bearer or X-API-Key), or NULL; *len set. */
const char *hs_auth_presented_key(hs_http_request_t *req, size_t *len);
/* An HTTP guard (hs_http_server_set_guard); ctx is the hs_auth_t. */
bool hs_auth_guard_cb(hs_http_request_t *req, void *ctx);
void hs_auth_free(hs_auth_t *auth);
/* Who made a request, for audit lines: the first 8 hex digits of the
 * SHA-256 of the key it presents ("none" without one) - the key itself is
 * never logged; an operator matches it with
 * `printf %s "$KEY" | sha256sum | cut -c1-8`. */
#define HS_AUTH_FINGERPRINT_LEN 8
void hs_auth_key_fingerprint(hs_http_request_t *req, char out[HS_AUTH_FINGERPRINT_LEN + 1]);

#endif
