#include "roles/render.h"

#include "core/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "ws/codec.h"

json_t *hs_render_message(const hs_message_t *msg)
{
    char created[HS_RFC3339_MS_LEN + 1];
    hs_format_rfc3339_ms(msg->created_ms, created);
    return json_pack("{s:s, s:s, s:s%, s:s, s:s}", "id", msg->id, "topic", msg->topic, "content",
                     msg->content, msg->content_len, "author", msg->author, "createdAt", created);
}

/* The bytes s[0..len) need inside a JSON string, escaped as jansson escapes
 * them (compact, UTF-8 kept, '/' kept): \" \\ \b \f \n \r \t, other
 * control characters \u00XX (upper-case hex). Writes them to out if not
 * NULL; returns their count. */
static size_t json_escape(const char *s, size_t len, char *out)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        char short_form = 0;
        switch (c) {
        case '"':
            short_form = '"';
            break;
        case '\\':
            short_form = '\\';
            break;
        case '\b':
            short_form = 'b';
            break;
        case '\f':
            short_form = 'f';
            break;
        case '\n':
            short_form = 'n';
            break;
        case '\r':
            short_form = 'r';
            break;
        case '\t':
            short_form = 't';
            break;
        }
        if (short_form) {
            if (out) {
                out[n] = '\\';
                out[n + 1] = short_form;
            }
            n += 2;
        } else if (c < 0x20) {
            if (out)
                memcpy(out + n, (char[6]){'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]}, 6);
            n += 6;
        } else {
            if (out)
                out[n] = (char)c;
            n++;
        }
    }
    return n;
}

char *hs_render_message_text(const hs_message_t *msg, size_t *len)
{
    char created[HS_RFC3339_MS_LEN + 1];
    hs_format_rfc3339_ms(msg->created_ms, created);
    const char *names[] = {"{\"id\":\"", "\",\"topic\":\"", "\",\"content\":\"", "\",\"author\":\"",
                           "\",\"createdAt\":\""};
    const char *values[] = {msg->id, msg->topic, msg->content, msg->author, created};
    size_t lens[] = {strlen(msg->id), strlen(msg->topic), msg->content_len, strlen(msg->author),
                     strlen(created)};
    size_t total = sizeof("\"}") - 1;
    for (int i = 0; i < 5; i++)
        total += strlen(names[i]) + json_escape(values[i], lens[i], NULL);
    char *text = hs_malloc(total + 1), *p = text;
    for (int i = 0; i < 5; i++) {
        size_t name_len = strlen(names[i]);
        memcpy(p, names[i], name_len);
        p += name_len;
        p += json_escape(values[i], lens[i], p);
    }
    memcpy(p, "\"}", 3);
    *len = total;
    return text;
}

json_t *hs_render_subscription(const char *topic, const char *connection_id, uint64_t created_ms)
{
    char created[HS_RFC3339_MS_LEN + 1];
    hs_format_rfc3339_ms(created_ms, created);
    return json_pack("{s:s, s:s, s:s}", "topic", topic, "connectionID", connection_id, "createdAt",
                     created);
}

json_t *hs_render_topic(const hs_topic_info_t *t, uint64_t default_age_ms, uint64_t default_count)
{
    char age[32];
    hs_config_format_duration(t->has_age ? t->age_ms : default_age_ms, age, sizeof(age));
    json_t *overrides = json_array();
    if (t->has_age)
        json_array_append_new(overrides, json_string("retentionAge"));
    if (t->has_count)
        json_array_append_new(overrides, json_string("retentionCount"));
    return json_pack("{s:s, s:I, s:o, s:o, s:I, s:s, s:I, s:o, s:o}", "topic", t->topic, "messages",
                     (json_int_t)t->messages, "firstID",
                     t->first_id ? json_string(t->first_id) : json_null(), "lastID",
                     t->last_id ? json_string(t->last_id) : json_null(), "subscribers",
                     (json_int_t)t->subscribers, "retentionAge", age, "retentionCount",
                     (json_int_t)(t->has_count ? t->count : default_count), "overrides", overrides,
                     "prunedID", t->pruned_id ? json_string(t->pruned_id) : json_null());
}

json_t *hs_render_connection(const hs_connection_info_t *info)
{
    char connected[HS_RFC3339_MS_LEN + 1];
    hs_format_rfc3339_ms(info->connected_ms, connected);
    json_t *topics = json_array();
    for (size_t i = 0; i < info->sub_count; i++)
        json_array_append_new(topics, json_string(info->subs[i].topic));
    return json_pack("{s:s, s:o, s:s, s:o, s:s, s:o, s:o}", "id", info->id, "user",
                     info->user ? json_string(info->user) : json_null(), "connectedAt", connected,
                     "topics", topics, "node", info->node, "lastAck",
                     info->last_ack ? json_string(info->last_ack) : json_null(), "address",
                     info->address ? json_string(info->address) : json_null());
}

char *hs_render_text(const json_t *json, size_t *len)
{
    char *text = json_dumps(json, JSON_COMPACT | JSON_ENCODE_ANY);
    *len = text ? strlen(text) : 0;
    return text;
}

hs_buf_t *hs_render_connected_frame(const char *connection_id)
{
    char text[96];
    int len = snprintf(text, sizeof(text), "{\"type\":\"connected\",\"connectionID\":\"%s\"}",
                       connection_id);
    return hs_ws_frame_new(HS_WS_OP_TEXT, text, (size_t)len);
}

hs_buf_t *hs_render_error_frame(const char *code, const char *message)
{
    json_t *json = json_pack("{s:s, s:s, s:s}", "type", "error", "code", code, "message", message);
    size_t len;
    char *text = hs_render_text(json, &len);
    hs_buf_t *frame = hs_ws_frame_new(HS_WS_OP_TEXT, text, len);
    free(text);
    json_decref(json);
    return frame;
}
