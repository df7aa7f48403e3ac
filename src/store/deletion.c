/* deletion.c - deleting a message and deleting a topic (store.h:
 * delete_message, delete_topic): their submission, inputs and callbacks,
 * and the steps of a topic's deletion, each its own write so that the
 * writer commits other writes between them (the pruner's approach,
 * retention.h). What a step removes is the back-ends' SQL
 * (sqlite_topics.c, mariadb_topics.c). */
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "store/engine.h"

/* Rows of history one step of a topic's deletion removes at most. */
#define HS_DELETE_BATCH 500

/* A topic's deletion across its steps (the op's data). */
typedef struct topic_deletion {
    hs_store_t *store;
    hs_store_deleted_cb cb;
    void *data;
    char *topic;
    hs_topic_deletion_t removed;
    char last_id[HS_ULID_LEN + 1];
} topic_deletion_t;

void hs_store_delete_message(hs_store_t *s, const char *topic, const char *id, hs_store_done_cb cb,
                             void *data)
{
    hs_store_op_t *op = hs_store_op_new(HS_OP_DELETE_MESSAGE, data);
    op->cb.done = cb;
    op->in.deletion.topic = hs_strdup(topic);
    op->in.deletion.id = hs_strdup(id);
    hs_store_submit(s, op, true);
}

static void submit_step(topic_deletion_t *d, bool first)
{
    hs_store_op_t *op = hs_store_op_new(HS_OP_DELETE_TOPIC, d);
    op->in.deletion.topic = hs_strdup(d->topic);
    op->in.deletion.first = first;
    op->in.deletion.max_rows = HS_DELETE_BATCH;
    memcpy(op->in.deletion.bound, d->last_id, sizeof(d->last_id));
    hs_store_submit(d->store, op, true);
}

void hs_store_delete_topic(hs_store_t *s, const char *topic, hs_store_deleted_cb cb, void *data)
{
    topic_deletion_t *d = hs_calloc(1, sizeof(*d));
    d->store = s;
    d->cb = cb;
    d->data = data;
    d->topic = hs_strdup(topic);
    submit_step(d, true);
}

void hs_store_deletion_op_free(hs_store_op_t *op)
{
    hs_free(op->in.deletion.topic);
    hs_free(op->in.deletion.id);
}

static void topic_deletion_end(topic_deletion_t *d, int status)
{
    d->removed.last_id = d->last_id[0] ? d->last_id : NULL;
    if (d->cb)
        d->cb(status, status == 0 ? &d->removed : NULL, d->data);
    hs_free(d->topic);
    hs_free(d);
}

/* A step committed (or failed): the next one, or the end. Runs on the
 * loop; the next step is a new write, queued behind whatever was issued
 * meanwhile. */
static void topic_step_done(hs_store_op_t *op)
{
    topic_deletion_t *d = op->data;
    if (op->status != 0) {
        topic_deletion_end(d, op->status);
        return;
    }
    if (op->in.deletion.first) {
        memcpy(d->last_id, op->out.bound, sizeof(d->last_id));
        d->removed.subscriptions = op->out.subs_removed;
        d->removed.settings = op->out.settings_removed;
        if (d->last_id[0] == '\0' && op->out.subs_removed == 0 && !op->out.settings_removed) {
            topic_deletion_end(d, HS_ENOTFOUND);
            return;
        }
    }
    d->removed.messages += op->out.count;
    if (op->out.count >= op->in.deletion.max_rows)
        submit_step(d, false);
    else
        topic_deletion_end(d, 0);
}

void hs_store_deletion_callback(hs_store_op_t *op)
{
    switch (op->kind) {
    case HS_OP_DELETE_MESSAGE:
        if (op->cb.done)
            op->cb.done(op->status, op->data);
        break;
    case HS_OP_DELETE_TOPIC:
        topic_step_done(op);
        break;
    default:
        break;
    }
}
