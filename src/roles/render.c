#include "roles/render.h"

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

json_t *hs_render_subscription(const char *topic, const char *connection_id, uint64_t created_ms)
{
    char created[HS_RFC3339_MS_LEN + 1];
    hs_format_rfc3339_ms(created_ms, created);
    return json_pack("{s:s, s:s, s:s}", "topic", topic, "connectionID", connection_id, "createdAt",
                     created);
}

json_t *hs_render_connection(const hs_connection_info_t *info)
{
    char connected[HS_RFC3339_MS_LEN + 1];
    hs_format_rfc3339_ms(info->connected_ms, connected);
    json_t *topics = json_array();
    for (size_t i = 0; i < info->sub_count; i++)
        json_array_append_new(topics, json_string(info->subs[i].topic));
    return json_pack("{s:s, s:o, s:s, s:o, s:s, s:o}", "id", info->id, "user",
                     info->user ? json_string(info->user) : json_null(), "connectedAt", connected,
                     "topics", topics, "node", info->node, "lastAck",
                     info->last_ack ? json_string(info->last_ack) : json_null());
}

char *hs_render_text(const json_t *json, size_t *len)
{
    char *text = json_dumps(json, JSON_COMPACT | JSON_ENCODE_ANY);
    *len = text ? strlen(text) : 0;
    return text;
}

char *hs_render_message_frame_text(const char *message_json, size_t len, size_t *out_len)
{
    static const char prefix[] = "{\"type\":\"message\",\"message\":";
    size_t total = sizeof(prefix) - 1 + len + 1;
    char *text = hs_malloc(total + 1);
    memcpy(text, prefix, sizeof(prefix) - 1);
    memcpy(text + sizeof(prefix) - 1, message_json, len);
    memcpy(text + total - 1, "}", 2);
    *out_len = total;
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
