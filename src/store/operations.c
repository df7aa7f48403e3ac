/* operations.c - the store's operations on messages, subscriptions and
 * connections (store.h: put_message, list_messages, add_subscription,
 * claim_connection, ...): each copies its inputs into an op (the op's own
 * strings, engine.h) and submits it to the writer or the reader. Apart from
 * engine.c, which is the threads, queues and completions every operation
 * shares, as topics.c, users.c, batch.c and deletion.c are for theirs. */
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "store/engine.h"

static char *dup_or_null(const char *s)
{
    return s ? hs_strdup(s) : NULL;
}

void hs_store_put_input_copy(struct hs_store_put_input *put, const hs_message_t *msg)
{
    put->id = hs_strdup(msg->id);
    put->topic = hs_strdup(msg->topic);
    /* content, NUL, author, NUL in one allocation */
    size_t author_len = strlen(msg->author);
    char *content = hs_malloc(msg->content_len + 1 + author_len + 1);
    memcpy(content, msg->content, msg->content_len);
    content[msg->content_len] = '\0';
    memcpy(content + msg->content_len + 1, msg->author, author_len + 1);
    put->content = content;
    put->content_len = msg->content_len;
    put->author = content + msg->content_len + 1;
    put->created_ms = msg->created_ms;
}

/* Copies a message's fields into op (PUT_MESSAGE, PUT_MESSAGE_ONCE). */
static void copy_message(hs_store_op_t *op, const hs_message_t *msg)
{
    hs_store_put_input_copy(&op->in.put, msg);
}

void hs_store_put_message(hs_store_t *s, const hs_message_t *msg, hs_store_message_cb cb,
                          void *data)
{
    hs_store_op_t *op = hs_store_op_new(HS_OP_PUT_MESSAGE, data);
    op->cb.message = cb;
    copy_message(op, msg);
    hs_store_submit(s, op, true);
}

void hs_store_put_message_once(hs_store_t *s, const hs_message_t *msg, const hs_idempotency_t *idem,
                               hs_store_message_cb cb, void *data)
{
    hs_store_op_t *op = hs_store_op_new(HS_OP_PUT_MESSAGE_ONCE, data);
    op->cb.message = cb;
    copy_message(op, msg);
    op->in.put.key = hs_strdup(idem->key);
    snprintf(op->in.put.key_hash, sizeof(op->in.put.key_hash), "%s", idem->body_hash);
    op->in.put.not_before_ms = idem->not_before_ms;
    hs_store_submit(s, op, true);
}

void hs_store_purge_idempotency_keys(hs_store_t *s, uint64_t before_ms, hs_store_count_cb cb,
                                     void *data)
{
    hs_store_op_t *op = hs_store_op_new(HS_OP_PURGE_KEYS, data);
    op->cb.count = cb;
    op->in.purge.before_ms = before_ms;
    hs_store_submit(s, op, true);
}

void hs_store_get_message(hs_store_t *s, const char *id, hs_store_message_cb cb, void *data)
{
    hs_store_op_t *op = hs_store_op_new(HS_OP_GET_MESSAGE, data);
    op->cb.message = cb;
    op->in.message.id = hs_strdup(id);
    hs_store_submit(s, op, false);
}

void hs_store_list_messages(hs_store_t *s, const hs_history_query_t *query, hs_store_messages_cb cb,
                            void *data)
{
    hs_store_op_t *op = hs_store_op_new(HS_OP_LIST_MESSAGES, data);
    op->cb.messages = cb;
    op->in.list.query = *query;
    op->in.list.topic = hs_strdup(query->topic);
    op->in.list.query.topic = NULL;
    if (query->has_cursor)
        hs_ulid_format(&query->cursor, op->in.list.cursor);
    hs_store_submit(s, op, false);
}

/* ADD_, REMOVE_ and LIST_SUBSCRIPTIONS (REMOVE and LIST take NULLs). */
static void submit_subscription(hs_store_t *s, hs_store_op_t *op, const char *conn,
                                const char *topic, uint64_t now_ms, bool write)
{
    op->in.subscription.connection_id = dup_or_null(conn);
    op->in.subscription.topic = dup_or_null(topic);
    op->in.subscription.now_ms = now_ms;
    hs_store_submit(s, op, write);
}

void hs_store_add_subscription(hs_store_t *s, const char *conn, const char *topic, uint64_t now_ms,
                               hs_store_subscribe_cb cb, void *data)
{
    hs_store_op_t *op = hs_store_op_new(HS_OP_ADD_SUBSCRIPTION, data);
    op->cb.subscribe = cb;
    submit_subscription(s, op, conn, topic, now_ms, true);
}

void hs_store_remove_subscription(hs_store_t *s, const char *conn, const char *topic,
                                  hs_store_count_cb cb, void *data)
{
    hs_store_op_t *op = hs_store_op_new(HS_OP_REMOVE_SUBSCRIPTION, data);
    op->cb.count = cb;
    submit_subscription(s, op, conn, topic, 0, true);
}

void hs_store_list_subscriptions(hs_store_t *s, const char *conn, const char *topic,
                                 hs_store_subscriptions_cb cb, void *data)
{
    hs_store_op_t *op = hs_store_op_new(HS_OP_LIST_SUBSCRIPTIONS, data);
    op->cb.subscriptions = cb;
    submit_subscription(s, op, conn, topic, 0, false);
}

void hs_store_add_connection(hs_store_t *s, const char *conn, const char *node, const char *user,
                             const char *address, uint64_t now_ms, hs_store_done_cb cb, void *data)
{
    hs_store_op_t *op = hs_store_op_new(HS_OP_ADD_CONNECTION, data);
    op->cb.done = cb;
    op->in.add_connection.connection_id = hs_strdup(conn);
    op->in.add_connection.node = hs_strdup(node);
    op->in.add_connection.user = dup_or_null(user);
    op->in.add_connection.address = dup_or_null(address);
    op->in.add_connection.now_ms = now_ms;
    hs_store_submit(s, op, true);
}

void hs_store_get_connection(hs_store_t *s, const char *conn, hs_store_connection_cb cb, void *data)
{
    hs_store_op_t *op = hs_store_op_new(HS_OP_GET_CONNECTION, data);
    op->cb.connection = cb;
    op->in.connection.connection_id = hs_strdup(conn);
    hs_store_submit(s, op, true);
}

void hs_store_remove_connection(hs_store_t *s, const char *conn, hs_store_done_cb cb, void *data)
{
    hs_store_op_t *op = hs_store_op_new(HS_OP_REMOVE_CONNECTION, data);
    op->cb.done = cb;
    op->in.connection.connection_id = hs_strdup(conn);
    hs_store_submit(s, op, true);
}

void hs_store_set_last_ack(hs_store_t *s, const char *conn, const char *message_id,
                           hs_store_done_cb cb, void *data)
{
    hs_store_op_t *op = hs_store_op_new(HS_OP_SET_LAST_ACK, data);
    op->cb.done = cb;
    op->in.last_ack.connection_id = hs_strdup(conn);
    op->in.last_ack.message_id = hs_strdup(message_id);
    hs_store_submit(s, op, true);
}

void hs_store_claim_connection(hs_store_t *s, const char *conn, const char *node,
                               const char *address, uint64_t epoch, hs_store_done_cb cb, void *data)
{
    hs_store_op_t *op = hs_store_op_new(HS_OP_CLAIM_CONNECTION, data);
    op->cb.done = cb;
    op->in.claim.connection_id = hs_strdup(conn);
    op->in.claim.node = hs_strdup(node);
    op->in.claim.address = dup_or_null(address);
    op->in.claim.epoch = epoch;
    hs_store_submit(s, op, true);
}

void hs_store_release_connection(hs_store_t *s, const char *conn, uint64_t epoch,
                                 uint64_t detached_ms, hs_store_done_cb cb, void *data)
{
    hs_store_op_t *op = hs_store_op_new(HS_OP_RELEASE_CONNECTION, data);
    op->cb.done = cb;
    op->in.release.connection_id = hs_strdup(conn);
    op->in.release.epoch = epoch;
    op->in.release.detached_ms = detached_ms;
    hs_store_submit(s, op, true);
}

void hs_store_expire_connection(hs_store_t *s, const char *conn, uint64_t epoch,
                                hs_store_done_cb cb, void *data)
{
    hs_store_op_t *op = hs_store_op_new(HS_OP_EXPIRE_CONNECTION, data);
    op->cb.done = cb;
    op->in.expire.connection_id = hs_strdup(conn);
    op->in.expire.epoch = epoch;
    hs_store_submit(s, op, true);
}

void hs_store_remove_node(hs_store_t *s, const char *node, hs_store_count_cb cb, void *data)
{
    hs_store_op_t *op = hs_store_op_new(HS_OP_REMOVE_NODE, data);
    op->cb.count = cb;
    op->in.node.node = hs_strdup(node);
    hs_store_submit(s, op, true);
}
