/* topics.c - the topic operations of the store (store.h: get_topic,
 * list_topics, set_topic, read_history): their submission, inputs, outputs
 * and callbacks. Apart
 * from engine.c, which is the threads and queues every operation shares. */
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "store/engine.h"

static char *dup_or_null(const char *s)
{
    return s ? hs_strdup(s) : NULL;
}

void hs_store_op_add_topic(hs_store_op_t *op, size_t cap, const hs_topic_info_t *info)
{
    if (op->out.topics == NULL)
        op->out.topics = hs_calloc(cap ? cap : 1, sizeof(hs_topic_info_t));
    hs_topic_info_t *t = &op->out.topics[op->out.count++];
    *t = *info;
    t->topic = hs_strdup(info->topic);
    t->first_id = dup_or_null(info->first_id);
    t->last_id = dup_or_null(info->last_id);
    t->pruned_id = dup_or_null(info->pruned_id);
}

void hs_store_topics_reset_outputs(hs_store_op_t *op)
{
    for (size_t i = 0; op->out.topics && i < op->out.count; i++) {
        hs_topic_info_t *t = &op->out.topics[i];
        hs_free((char *)t->topic);
        hs_free((char *)t->first_id);
        hs_free((char *)t->last_id);
        hs_free((char *)t->pruned_id);
    }
    hs_free(op->out.topics);
    hs_free(op->out.pruned_id);
    hs_free(op->out.cursor);
    op->out.topics = NULL;
    op->out.pruned_id = NULL;
    op->out.cursor = NULL;
}

void hs_store_read_history(hs_store_t *s, const hs_history_query_t *query, hs_store_history_cb cb,
                           void *data)
{
    hs_store_op_t *op = hs_store_op_new(HS_OP_LIST_MESSAGES, data);
    op->cb.history = cb;
    op->in.list.query = *query;
    op->in.list.topic = hs_strdup(query->topic);
    op->in.list.query.topic = NULL;
    op->in.list.want_pruned = true;
    if (query->has_cursor)
        hs_ulid_format(&query->cursor, op->in.list.cursor);
    hs_store_submit(s, op, false);
}

/* read_history's answer: whether the walk passed the horizon (see
 * hs_store_history_cb). */
static void history_callback(hs_store_op_t *op)
{
    size_t count = op->status == 0 ? op->out.count : 0;
    const hs_history_query_t *q = &op->in.list.query;
    const char *horizon = op->out.pruned_id;
    bool pruned = false;
    if (op->status == 0 && horizon && q->forward)
        pruned = !q->has_cursor || strcmp(op->in.list.cursor, horizon) < 0;
    else if (op->status == 0 && horizon)
        pruned = count < q->limit && (!q->has_cursor || strcmp(horizon, op->in.list.cursor) < 0);
    op->cb.history(op->status, op->out.msgs, count, pruned, op->data);
}

void hs_store_get_topic(hs_store_t *s, const char *topic, hs_store_topic_cb cb, void *data)
{
    hs_store_op_t *op = hs_store_op_new(HS_OP_GET_TOPIC, data);
    op->cb.topic = cb;
    op->in.topic.topic = hs_strdup(topic);
    hs_store_submit(s, op, false);
}

void hs_store_list_topics(hs_store_t *s, const char *prefix, const char *after, unsigned limit,
                          hs_store_topics_cb cb, void *data)
{
    hs_store_op_t *op = hs_store_op_new(HS_OP_LIST_TOPICS, data);
    op->cb.topics = cb;
    op->in.topics.prefix = dup_or_null(prefix);
    op->in.topics.after = dup_or_null(after);
    op->in.topics.limit = limit;
    hs_store_submit(s, op, false);
}

void hs_store_set_topic(hs_store_t *s, const char *topic, const hs_topic_settings_t *settings,
                        hs_store_done_cb cb, void *data)
{
    hs_store_op_t *op = hs_store_op_new(HS_OP_SET_TOPIC, data);
    op->cb.done = cb;
    op->in.topic.topic = hs_strdup(topic);
    op->in.topic.settings = *settings;
    hs_store_submit(s, op, true);
}

void hs_store_topics_op_free(hs_store_op_t *op)
{
    switch (op->kind) {
    case HS_OP_GET_TOPIC:
    case HS_OP_SET_TOPIC:
        hs_free(op->in.topic.topic);
        break;
    case HS_OP_LIST_TOPICS:
        hs_free(op->in.topics.prefix);
        hs_free(op->in.topics.after);
        break;
    case HS_OP_PRUNE:
        hs_free(op->in.prune.cursor);
        break;
    default:
        break;
    }
}

void hs_store_topics_callback(hs_store_op_t *op)
{
    switch (op->kind) {
    case HS_OP_LIST_MESSAGES:
        history_callback(op);
        break;
    case HS_OP_GET_TOPIC:
        if (op->status == 0 && op->out.count == 0)
            op->status = HS_ENOTFOUND;
        op->cb.topic(op->status, op->status == 0 ? &op->out.topics[0] : NULL, op->data);
        break;
    case HS_OP_LIST_TOPICS:
        op->cb.topics(op->status, op->out.topics, op->status == 0 ? op->out.count : 0, op->data);
        break;
    case HS_OP_SET_TOPIC:
        if (op->cb.done)
            op->cb.done(op->status, op->data);
        break;
    default:
        break;
    }
}
