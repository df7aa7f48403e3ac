/* idempotency.h - the Idempotency-Key of a publish: checking the header and
 * fingerprinting the request.
 *
 * Pure functions (no loop, no I/O). A repeat is recognised by its canonical
 * fields - topic, content, author after JSON decoding - not by its bytes, so
 * whitespace, key order or escapes in the body do not make two publishes
 * differ. docs/api.md describes the contract.
 */
#ifndef HS_ROLES_IDEMPOTENCY_H
#define HS_ROLES_IDEMPOTENCY_H

#include <stddef.h>

#include "roles/decode.h"

#define HS_IDEMPOTENCY_KEY_MAX  128
#define HS_IDEMPOTENCY_HASH_LEN 64 /* hex SHA-256 */

/* The header value must be 1..128 printable ASCII characters (0x20-0x7e).
 * Returns 0, or HS_EINVAL and a 400 invalid_field naming the header. */
int hs_idempotency_key_check(const char *value, size_t len, hs_api_error_t *err);

/* Hex SHA-256 of the canonical fields, each length-prefixed so no two
 * different (topic, content, author) triples share an input; out gets 64
 * hex digits and a NUL. */
void hs_idempotency_body_hash(const hs_publish_input_t *in, char out[HS_IDEMPOTENCY_HASH_LEN + 1]);

/* The same over a batch (POST /api/v1/messages/batch): its count and every
 * message's fields in order, after a tag no single publish's input starts
 * with, so a batch never matches a single publish under one key. */
void hs_idempotency_batch_hash(const hs_publish_input_t *in, size_t count,
                               char out[HS_IDEMPOTENCY_HASH_LEN + 1]);

#endif
