/* render.h - the JSON shapes houston answers with and pushes.
 *
 * Kept in one place so the HTTP answer, the history listing and the
 * WebSocket frame carry byte-for-byte the same message object.
 */
#ifndef HS_ROLES_RENDER_H
#define HS_ROLES_RENDER_H

#include <jansson.h>

#include "core/buf.h"
#include "store/store.h"

/* {"id","topic","content","author","createdAt"} */
json_t *hs_render_message(const hs_message_t *msg);
/* The same object as compact JSON text, byte for byte what hs_render_text
 * makes of hs_render_message, written directly (no jansson tree: this is
 * the text of every publish's answer and event). The strings must be valid
 * UTF-8 (decode.c checked them). Allocated with hs_malloc, NUL-terminated. */
char *hs_render_message_text(const hs_message_t *msg, size_t *len);
/* {"topic","connectionID","createdAt"} */
json_t *hs_render_subscription(const char *topic, const char *connection_id, uint64_t created_ms);
/* {"topic","messages","firstID","lastID","subscribers","retentionAge",
 * "retentionCount","overrides","prunedID"}: retentionAge/Count are the
 * topic's own where it has them (named in overrides), else the defaults
 * given; "0" and 0 mean forever and unlimited. */
json_t *hs_render_topic(const hs_topic_info_t *topic, uint64_t default_age_ms,
                        uint64_t default_count);
/* {"id","user","connectedAt","topics":[…],"node","lastAck"}; user is null
 * without a token, lastAck null before the first acknowledgement. */
json_t *hs_render_connection(const hs_connection_info_t *info);
/* Compact JSON text of json, NUL-terminated, allocated by jansson: release
 * it with free(). Returns the length in *len. */
char *hs_render_text(const json_t *json, size_t *len);

/* What every message frame's text starts with, the message object and "}"
 * following: the one copy (the WebSocket transport builds each message
 * frame around the message's JSON with it, transport_ws.c; SSE sends the
 * message object alone). */
#define HS_RENDER_MESSAGE_FRAME_PREFIX "{\"type\":\"message\",\"message\":"
/* {"type":"connected","connectionID":"<id>"} as a text frame. */
hs_buf_t *hs_render_connected_frame(const char *connection_id);
/* {"type":"error","code":…,"message":…} as a text frame. */
hs_buf_t *hs_render_error_frame(const char *code, const char *message);

#endif
