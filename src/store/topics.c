/* topics.c - the topic operations of the store (store.h: get_topic,
 * list_topics, set_topic): their submission, inputs and callbacks. Apart
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
