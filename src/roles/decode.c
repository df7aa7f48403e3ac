#include "roles/decode.h"

#include "core/config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/alloc.h"
#include "core/error.h"
#include "roles/token.h"

static int fail(hs_api_error_t *err, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(hs_api_error_t *err, int status, const char *code, const char *fmt, ...)
{
    err->status = status;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    return HS_EINVAL;
}

bool hs_topic_valid(const char *s, size_t len)
{
    if (len == 0 || len > HS_TOPIC_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == ':' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

int hs_decode_body(const char *body, size_t len, json_t **out, hs_api_error_t *err)
{
    json_error_t jerr;
    if (len == 0)
        return fail(err, 400, "invalid_json", "request body is empty; a JSON object is expected");
    json_t *json = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (json == NULL)
        return fail(err, 400, "invalid_json", "malformed JSON at line %d, column %d: %s", jerr.line,
                    jerr.column, jerr.text);
    if (!json_is_object(json)) {
        json_decref(json);
        return fail(err, 400, "invalid_json", "request body must be a JSON object");
    }
    *out = json;
    return 0;
}

bool hs_content_type_is_json(const char *value, size_t len)
{
    /* No Content-Type is not JSON: a browser sends a body without one (a
     * Blob, text) to any origin without asking first, and that is how a
     * hostile page would publish. application/json makes it preflight. */
    if (value == NULL)
        return false;
    size_t end = 0;
    while (end < len && value[end] != ';')
        end++;
    while (end > 0 && (value[end - 1] == ' ' || value[end - 1] == '\t'))
        end--;
    size_t start = 0;
    while (start < end && (value[start] == ' ' || value[start] == '\t'))
        start++;
    static const char json[] = "application/json";
    return end - start == sizeof(json) - 1 &&
           strncasecmp(value + start, json, sizeof(json) - 1) == 0;
}

/* A string member: 0 and *value, 1 when absent and optional, or an error.
 * *value and *len are set on every path (NULL and 0 unless 0 is returned):
 * callers test only the return code, and whether fail() returns non-zero is
 * not visible to the compiler (a variadic call it does not inline), so with
 * the outputs unset on the error paths gcc -O3 sees a read of them that may
 * be uninitialized (-Wmaybe-uninitialized, the Release build). */
static int get_string(json_t *obj, const char *name, bool required, const char **value, size_t *len,
                      hs_api_error_t *err)
{
    *value = NULL;
    *len = 0;
    json_t *member = json_object_get(obj, name);
    if (member == NULL || json_is_null(member)) {
        if (required)
            return fail(err, 400, "missing_field", "field '%s' is required", name);
        return 1;
    }
    if (!json_is_string(member))
        return fail(err, 400, "invalid_field", "field '%s' must be a string", name);
    *value = json_string_value(member);
    *len = json_string_length(member);
    return 0;
}

static int get_topic(json_t *obj, bool required, const char **topic, hs_api_error_t *err)
{
    size_t len;
    int rc = get_string(obj, "topic", required, topic, &len, err);
    if (rc != 0)
        return rc < 0 ? rc : 0;
    if (!hs_topic_valid(*topic, len))
        return fail(err, 400, "invalid_field",
                    "field 'topic' must be 1-128 characters of A-Z a-z 0-9 . _ : -");
    return 0;
}

int hs_decode_ulid(const char *value, const char *name, char out[HS_ULID_LEN + 1],
                   hs_api_error_t *err)
{
    if (hs_ulid_canonical(value, strlen(value), out) != 0)
        return fail(err, 400, "invalid_field",
                    "field '%s' must be a ULID (26 characters of Crockford base32)", name);
    return 0;
}

static int get_ulid(json_t *obj, const char *name, char out[HS_ULID_LEN + 1], hs_api_error_t *err)
{
    const char *value;
    size_t len;
    int rc = get_string(obj, name, true, &value, &len, err);
    if (rc != 0)
        return rc;
    if (strlen(value) != len) /* embedded NUL */
        return fail(err, 400, "invalid_field", "field '%s' must be a ULID", name);
    return hs_decode_ulid(value, name, out, err);
}

int hs_decode_publish(json_t *obj, const char *author_key, size_t max_content,
                      hs_publish_input_t *out, hs_api_error_t *err)
{
    memset(out, 0, sizeof(*out));
    if (get_topic(obj, true, &out->topic, err) != 0)
        return HS_EINVAL;
    if (get_string(obj, "content", true, &out->content, &out->content_len, err) != 0)
        return HS_EINVAL;
    if (out->content_len > max_content)
        return fail(err, 413, "payload_too_large", "field 'content' is %zu bytes; the limit is %zu",
                    out->content_len, max_content);
    size_t author_len;
    int rc = get_string(obj, author_key, false, &out->author, &author_len, err);
    if (rc < 0)
        return rc;
    if (rc == 1)
        out->author = "";
    else if (author_len > HS_AUTHOR_MAX || strlen(out->author) != author_len)
        return fail(err, 400, "invalid_field",
                    "field '%s' must be a string of at most %d bytes without NUL", author_key,
                    HS_AUTHOR_MAX);
    return 0;
}

int hs_decode_batch(json_t *obj, size_t max_batch, size_t max_content, hs_publish_input_t **out,
                    size_t *count, long *index, hs_api_error_t *err)
{
    *out = NULL;
    *count = 0;
    *index = -1;
    json_t *list = json_object_get(obj, "messages");
    if (list == NULL || json_is_null(list))
        return fail(err, 400, "missing_field", "field 'messages' is required");
    if (!json_is_array(list))
        return fail(err, 400, "invalid_field", "field 'messages' must be an array");
    size_t n = json_array_size(list);
    if (n == 0)
        return fail(err, 400, "invalid_field",
                    "field 'messages' is empty; a batch has 1 to %zu messages", max_batch);
    if (n > max_batch)
        return fail(err, 413, "payload_too_large",
                    "field 'messages' has %zu messages; the limit is %zu (--max-batch)", n,
                    max_batch);
    hs_publish_input_t *in = hs_calloc(n, sizeof(*in));
    for (size_t i = 0; i < n; i++) {
        json_t *element = json_array_get(list, i);
        hs_api_error_t inner;
        int rc = json_is_object(element)
                     ? hs_decode_publish(element, "author", max_content, &in[i], &inner)
                     : fail(&inner, 400, "invalid_field", "each message must be a JSON object");
        if (rc != 0) {
            hs_free(in);
            *index = (long)i;
            return fail(err, inner.status, inner.code, "messages[%zu]: %.170s", i, inner.message);
        }
    }
    *out = in;
    *count = n;
    return 0;
}

int hs_decode_subscription(json_t *obj, bool topic_required, hs_subscription_input_t *out,
                           hs_api_error_t *err)
{
    memset(out, 0, sizeof(*out));
    if (get_topic(obj, topic_required, &out->topic, err) != 0)
        return HS_EINVAL;
    return get_ulid(obj, "connectionID", out->connection_id, err);
}

int hs_decode_notification(json_t *obj, size_t max_payload, hs_notification_input_t *out,
                           hs_api_error_t *err)
{
    memset(out, 0, sizeof(*out));
    bool has_conn = json_object_get(obj, "connectionID") != NULL &&
                    !json_is_null(json_object_get(obj, "connectionID"));
    bool has_user =
        json_object_get(obj, "userID") != NULL && !json_is_null(json_object_get(obj, "userID"));
    if (has_conn && has_user)
        return fail(err, 400, "invalid_field",
                    "fields 'connectionID' and 'userID' exclude each other: give one");
    if (has_user) {
        size_t len;
        if (get_string(obj, "userID", true, &out->user_id, &len, err) != 0)
            return HS_EINVAL;
        if (len == 0 || len > HS_TOKEN_SUB_MAX || strlen(out->user_id) != len)
            return fail(err, 400, "invalid_field",
                        "field 'userID' must be a string of 1-%d bytes without NUL",
                        HS_TOKEN_SUB_MAX);
    } else if (!has_conn) {
        return fail(err, 400, "missing_field", "field 'connectionID' or 'userID' is required");
    } else if (get_ulid(obj, "connectionID", out->connection_id, err) != 0) {
        return HS_EINVAL;
    }
    if (get_string(obj, "payload", true, &out->payload, &out->payload_len, err) != 0)
        return HS_EINVAL;
    if (out->payload_len > max_payload)
        return fail(err, 413, "payload_too_large", "field 'payload' is %zu bytes; the limit is %zu",
                    out->payload_len, max_payload);
    return 0;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

_Static_assert(HS_USER_ID_CAP == HS_TOKEN_SUB_MAX + 1, "a user id is a token's sub");

int hs_decode_user_path(const char *segment, char out[HS_USER_ID_CAP], hs_api_error_t *err)
{
    size_t len = 0;
    for (const char *p = segment; *p; p++) {
        int c = (unsigned char)*p;
        if (c == '%') {
            int hi = p[1] ? hex_digit(p[1]) : -1;
            int lo = hi >= 0 && p[2] ? hex_digit(p[2]) : -1;
            if (lo < 0)
                return fail(err, 400, "invalid_field",
                            "the user id in the path has a bad percent-encoding");
            c = hi * 16 + lo;
            p += 2;
        }
        if (c == 0 || len >= HS_TOKEN_SUB_MAX)
            return fail(err, 400, "invalid_field", "the user id must be 1-%d bytes without NUL",
                        HS_TOKEN_SUB_MAX);
        out[len++] = (char)c;
    }
    out[len] = '\0';
    if (len == 0)
        return fail(err, 400, "invalid_field", "the user id must be 1-%d bytes without NUL",
                    HS_TOKEN_SUB_MAX);
    return 0;
}

/* The query parameter 'limit' of a paged list: absent keeps *out (the
 * default), else an integer from 1 to HS_HISTORY_LIMIT_MAX. */
static int decode_limit(const char *limit, unsigned *out, hs_api_error_t *err)
{
    if (limit == NULL)
        return 0;
    char *end;
    errno = 0;
    long value = strtol(limit, &end, 10);
    if (limit[0] == '\0' || *end != '\0' || errno != 0 || value < 1 || value > HS_HISTORY_LIMIT_MAX)
        return fail(err, 400, "invalid_field",
                    "query parameter 'limit' must be an integer from 1 to %d",
                    HS_HISTORY_LIMIT_MAX);
    *out = (unsigned)value;
    return 0;
}

int hs_decode_history(const char *topic, const char *last_id, const char *limit,
                      const char *forward, hs_history_query_t *out, hs_api_error_t *err)
{
    memset(out, 0, sizeof(*out));
    if (topic == NULL)
        return fail(err, 400, "missing_field", "query parameter 'topic' is required");
    if (!hs_topic_valid(topic, strlen(topic)))
        return fail(err, 400, "invalid_field",
                    "query parameter 'topic' must be 1-128 characters of A-Z a-z 0-9 . _ : -");
    out->topic = topic;
    if (last_id != NULL && last_id[0] != '\0') {
        if (hs_ulid_parse(last_id, strlen(last_id), &out->cursor) != 0)
            return fail(err, 400, "invalid_field",
                        "query parameter 'lastID' must be a ULID (26 characters of Crockford "
                        "base32)");
        out->has_cursor = true;
    }
    out->limit = HS_HISTORY_LIMIT_DEFAULT;
    if (decode_limit(limit, &out->limit, err) != 0)
        return HS_EINVAL;
    out->forward = false;
    if (forward != NULL) {
        if (strcasecmp(forward, "true") == 0 || strcmp(forward, "1") == 0)
            out->forward = true;
        else if (strcasecmp(forward, "false") == 0 || strcmp(forward, "0") == 0)
            out->forward = false;
        else
            return fail(err, 400, "invalid_field",
                        "query parameter 'forward' must be true or false");
    }
    return 0;
}

int hs_decode_topic_settings(json_t *obj, hs_topic_settings_t *out, hs_api_error_t *err)
{
    memset(out, 0, sizeof(*out));
    const char *key;
    json_t *value;
    json_object_foreach(obj, key, value)
    {
        if (strcmp(key, "retentionAge") != 0 && strcmp(key, "retentionCount") != 0)
            return fail(err, 400, "invalid_field",
                        "field '%.64s' is not a topic setting (retentionAge, retentionCount)", key);
    }
    json_t *age = json_object_get(obj, "retentionAge");
    json_t *count = json_object_get(obj, "retentionCount");
    if (age == NULL && count == NULL)
        return fail(err, 400, "missing_field",
                    "field 'retentionAge' or 'retentionCount' is required");
    if (age && json_is_null(age)) {
        out->age = HS_TOPIC_DEFAULT;
    } else if (age) {
        if (!json_is_string(age) ||
            hs_config_parse_duration(json_string_value(age), &out->age_ms) != 0 ||
            out->age_ms > HS_RETENTION_AGE_MAX_MS)
            return fail(err, 400, "invalid_field",
                        "field 'retentionAge' must be a duration such as \"90s\", \"12h\" or "
                        "\"7d\" (\"0\": kept forever; at most 36500d), or null (the default)");
        out->age = HS_TOPIC_SET;
    }
    if (count && json_is_null(count)) {
        out->count = HS_TOPIC_DEFAULT;
    } else if (count) {
        if (!json_is_integer(count) || json_integer_value(count) < 0 ||
            (uint64_t)json_integer_value(count) > HS_RETENTION_COUNT_MAX)
            return fail(err, 400, "invalid_field",
                        "field 'retentionCount' must be an integer from 0 (unlimited) to %llu, "
                        "or null (the default)",
                        (unsigned long long)HS_RETENTION_COUNT_MAX);
        out->count = HS_TOPIC_SET;
        out->count_value = (uint64_t)json_integer_value(count);
    }
    return 0;
}

int hs_decode_topics_query(const char *prefix, const char *after, const char *limit,
                           hs_topics_query_t *out, hs_api_error_t *err)
{
    memset(out, 0, sizeof(*out));
    if (prefix && prefix[0] != '\0' && !hs_topic_valid(prefix, strlen(prefix)))
        return fail(err, 400, "invalid_field",
                    "query parameter 'prefix' must be up to 128 characters of A-Z a-z 0-9 . _ : "
                    "-");
    if (after && after[0] != '\0' && !hs_topic_valid(after, strlen(after)))
        return fail(err, 400, "invalid_field",
                    "query parameter 'after' must be a topic (1-128 characters of A-Z a-z 0-9 . "
                    "_ : -)");
    out->prefix = prefix && prefix[0] ? prefix : NULL;
    out->after = after && after[0] ? after : NULL;
    out->limit = HS_HISTORY_LIMIT_DEFAULT;
    if (decode_limit(limit, &out->limit, err) != 0)
        return HS_EINVAL;
    return 0;
}

int hs_decode_user_connections_query(const char *after, const char *limit,
                                     hs_user_connections_query_t *out, hs_api_error_t *err)
{
    memset(out, 0, sizeof(*out));
    if (after && after[0] != '\0' && hs_ulid_canonical(after, strlen(after), out->after) != 0)
        return fail(err, 400, "invalid_field",
                    "query parameter 'after' must be a connection id (a ULID)");
    out->limit = HS_USER_CONNECTIONS_DEFAULT;
    if (decode_limit(limit, &out->limit, err) != 0)
        return HS_EINVAL;
    return 0;
}

json_t *hs_query_object(const char *const *names, const char *const *values, size_t count)
{
    json_t *obj = json_object();
    for (size_t i = 0; i < count; i++)
        if (values[i] != NULL)
            json_object_set_new(obj, names[i], json_string(values[i]));
    return obj;
}
