/* batch.c - a batch publish in the store (POST /api/v1/messages/batch):
 * several messages in one op, so that the writer mints their ids and
 * stores them in one savepoint of one transaction, all or none (engine.h,
 * HS_OP_PUT_BATCH; the back-ends' SQL is beside their single publish).
 * Apart from engine.c because it is one operation with inputs, outputs and
 * a callback of its own, while engine.c is threads and queues. */
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "store/engine.h"

void hs_store_put_messages(hs_store_t *store, const hs_message_t *msgs, size_t count,
                           const hs_idempotency_t *idem, hs_store_messages_cb cb, void *data)
{
    hs_store_op_t *op = hs_store_op_new(HS_OP_PUT_BATCH, data);
    op->cb.messages = cb;
    struct hs_store_batch_input *in = &op->in.batch;
    in->puts = hs_calloc(count ? count : 1, sizeof(*in->puts));
    in->count = count;
    for (size_t i = 0; i < count; i++)
        hs_store_put_input_copy(&in->puts[i], &msgs[i]);
    if (idem) {
        in->key = hs_strdup(idem->key);
        snprintf(in->key_hash, sizeof(in->key_hash), "%s", idem->body_hash);
        in->not_before_ms = idem->not_before_ms;
    }
    hs_store_submit(store, op, true);
}

void hs_store_batch_op_free(hs_store_op_t *op)
{
    struct hs_store_batch_input *in = &op->in.batch;
    for (size_t i = 0; i < in->count; i++) {
        hs_free(in->puts[i].id);
        hs_free(in->puts[i].topic);
        hs_free(in->puts[i].content); /* the author too */
    }
    hs_free(in->puts);
    hs_free(in->key);
}

/* Stored: the messages as minted, each with its prev (the topic's id before
 * it, which is the batch's previous message of that topic when there is
 * one). A repeat: what remains of the original batch, in its order. */
void hs_store_batch_callback(hs_store_op_t *op)
{
    if (op->cb.messages == NULL)
        return;
    if (op->status == HS_EEXIST) {
        op->cb.messages(op->status, op->out.msgs, op->out.count, op->data);
        return;
    }
    if (op->status != 0) {
        op->cb.messages(op->status, NULL, 0, op->data);
        return;
    }
    const struct hs_store_batch_input *in = &op->in.batch;
    hs_message_t *msgs = hs_calloc(in->count ? in->count : 1, sizeof(*msgs));
    for (size_t i = 0; i < in->count; i++) {
        const struct hs_store_put_input *put = &in->puts[i];
        hs_message_t *m = &msgs[i];
        snprintf(m->id, sizeof(m->id), "%s", put->id);
        m->topic = put->topic;
        m->content = put->content;
        m->content_len = put->content_len;
        m->author = put->author;
        m->created_ms = put->created_ms;
        memcpy(m->prev, put->prev, sizeof(m->prev));
    }
    op->cb.messages(0, msgs, in->count, op->data);
    hs_free(msgs);
}
