/* decode.h - decoding and validation of API requests.
 *
 * Pure functions over bytes and jansson objects, with no HTTP or loop in
 * sight, so they are unit-tested and fuzzed on their own. Each failure fills
 * an hs_api_error_t with the HTTP status, an error code and a message that
 * names the offending field; the publisher turns it into the JSON error body.
 */
#ifndef HS_ROLES_DECODE_H
#define HS_ROLES_DECODE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/ulid.h"
#include "store/store.h"

#define HS_TOPIC_MAX             128
#define HS_AUTHOR_MAX            256
#define HS_HISTORY_LIMIT_DEFAULT 10
#define HS_HISTORY_LIMIT_MAX     1000

typedef struct hs_api_error {
    int status;       /* 400, 413, 415 */
    const char *code; /* "invalid_json", "missing_field", "invalid_field", ... */
    char message[200];
} hs_api_error_t;

/* A topic is 1..128 characters of [A-Za-z0-9._:-]. */
bool hs_topic_valid(const char *s, size_t len);

/* Parses a request body that must be one JSON object (duplicate keys are
 * refused; "\u0000" inside strings is allowed). Returns 0 and a new
 * reference in *out, or HS_EINVAL. */
int hs_decode_body(const char *body, size_t len, json_t **out, hs_api_error_t *err);

/* Whether a Content-Type header value is "application/json" (any case,
 * parameters such as charset ignored). A missing header (NULL) is not: see
 * docs/security.md, a hostile page in the browser. */
bool hs_content_type_is_json(const char *value, size_t len);

/* POST /api/v1/messages {topic, content, author} and POST /api/v1/publish
 * {topic, content, sender}: author_key names the author field. Strings in
 * *out point into obj. */
typedef struct hs_publish_input {
    const char *topic;
    const char *content;
    size_t content_len;
    const char *author;
} hs_publish_input_t;
int hs_decode_publish(json_t *obj, const char *author_key, size_t max_content,
                      hs_publish_input_t *out, hs_api_error_t *err);

/* POST /api/v1/messages/batch {"messages": [{topic, content, author}, ...]}:
 * 1..max_batch elements (more: 413), each decoded as hs_decode_publish
 * decodes one (same limits and errors). *out gets *count inputs (hs_malloc,
 * the caller frees it; strings point into obj). A bad element sets *index
 * to its position (else -1), and err's message starts with "messages[i]: ". */
int hs_decode_batch(json_t *obj, size_t max_batch, size_t max_content, hs_publish_input_t **out,
                    size_t *count, long *index, hs_api_error_t *err);

/* {topic, connectionID}; topic may be optional. The id is canonicalised
 * (upper case) into out->connection_id. */
typedef struct hs_subscription_input {
    const char *topic; /* NULL when absent and optional */
    char connection_id[HS_ULID_LEN + 1];
} hs_subscription_input_t;
int hs_decode_subscription(json_t *obj, bool topic_required, hs_subscription_input_t *out,
                           hs_api_error_t *err);

/* {connectionID, payload} or {userID, payload}: exactly one of the two
 * targets (both, or neither, is 400). user_id points into obj. */
typedef struct hs_notification_input {
    char connection_id[HS_ULID_LEN + 1]; /* "" when the target is a user */
    const char *user_id;                 /* NULL when the target is a connection */
    const char *payload;
    size_t payload_len;
} hs_notification_input_t;
int hs_decode_notification(json_t *obj, size_t max_payload, hs_notification_input_t *out,
                           hs_api_error_t *err);

/* A user id (a token's "sub"): 1..HS_TOKEN_SUB_MAX bytes, no NUL. From a
 * path segment (raw: percent-decoded here, '+' is a plus) into out (at
 * least HS_USER_ID_CAP bytes). */
#define HS_USER_ID_CAP (256 + 1)
int hs_decode_user_path(const char *segment, char out[HS_USER_ID_CAP], hs_api_error_t *err);

/* GET /api/v1/users/{id}/connections query values (each NULL when
 * absent): after a connection id (canonical; "" from the first), limit
 * 1..HS_HISTORY_LIMIT_MAX (default HS_USER_CONNECTIONS_DEFAULT). */
#define HS_USER_CONNECTIONS_DEFAULT 100
typedef struct hs_user_connections_query {
    char after[HS_ULID_LEN + 1];
    unsigned limit;
} hs_user_connections_query_t;
int hs_decode_user_connections_query(const char *after, const char *limit,
                                     hs_user_connections_query_t *out, hs_api_error_t *err);

/* GET /api/v1/messages query values (each NULL when absent). */
int hs_decode_history(const char *topic, const char *last_id, const char *limit,
                      const char *forward, hs_history_query_t *out, hs_api_error_t *err);

/* PUT /api/v1/topics/{topic}: {"retentionAge": "24h" | null,
 * "retentionCount": 1000 | null}, either or both (null: back to the
 * default); any other field is refused. */
int hs_decode_topic_settings(json_t *obj, hs_topic_settings_t *out, hs_api_error_t *err);

/* GET /api/v1/topics query values (each NULL when absent; prefix and after
 * point into them). */
typedef struct hs_topics_query {
    const char *prefix; /* NULL: every topic */
    const char *after;  /* NULL: from the first */
    unsigned limit;
} hs_topics_query_t;
int hs_decode_topics_query(const char *prefix, const char *after, const char *limit,
                           hs_topics_query_t *out, hs_api_error_t *err);

/* A ULID from a field named name (for error messages); canonical into out. */
int hs_decode_ulid(const char *value, const char *name, char out[HS_ULID_LEN + 1],
                   hs_api_error_t *err);

/* Builds a json object from query parameters (string values) so that
 * requests that may carry their fields in the query string (DELETE) go
 * through the same decoders. */
json_t *hs_query_object(const char *const *names, const char *const *values, size_t count);

#endif
