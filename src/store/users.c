/* users.c - the store's operation on users (store.h:
 * list_user_connections): its submission, inputs, outputs and callback.
 * Apart from engine.c, which is the threads and queues every operation
 * shares, as topics.c is for the topic operations. */
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "store/engine.h"

static char *dup_or_null(const char *s)
{
    return s ? hs_strdup(s) : NULL;
}

void hs_store_op_add_user_connection(hs_store_op_t *op, size_t cap,
                                     const hs_connection_info_t *info)
{
    if (op->out.conns == NULL)
        op->out.conns = hs_calloc(cap ? cap : 1, sizeof(hs_connection_info_t));
    hs_connection_info_t *c = &op->out.conns[op->out.conn_count++];
    *c = *info;
    c->id = hs_strdup(info->id);
    c->node = hs_strdup(info->node ? info->node : "");
    c->user = dup_or_null(info->user);
    c->last_ack = dup_or_null(info->last_ack);
    c->address = dup_or_null(info->address);
    c->subs = NULL;
    c->sub_count = 0;
}

void hs_store_users_reset_outputs(hs_store_op_t *op)
{
    for (size_t i = 0; op->out.conns && i < op->out.conn_count; i++) {
        hs_connection_info_t *c = &op->out.conns[i];
        hs_free((char *)c->id);
        hs_free((char *)c->node);
        hs_free((char *)c->user);
        hs_free((char *)c->last_ack);
        hs_free((char *)c->address);
    }
    hs_free(op->out.conns);
    op->out.conns = NULL;
    op->out.conn_count = 0;
}

void hs_store_users_op_free(hs_store_op_t *op)
{
    hs_free(op->in.user.user);
    hs_free(op->in.user.after);
}

/* Each row gets its run of the subscriptions, which the back-end read in
 * connection id order, as the rows. */
void hs_store_users_callback(hs_store_op_t *op)
{
    size_t count = op->status == 0 ? op->out.conn_count : 0;
    size_t sub_count = op->out.subs ? op->out.count : 0, next = 0;
    for (size_t i = 0; i < count; i++) {
        hs_connection_info_t *c = &op->out.conns[i];
        while (next < sub_count && strcmp(op->out.subs[next].connection_id, c->id) < 0)
            next++;
        c->subs = op->out.subs + next;
        while (next < sub_count && strcmp(op->out.subs[next].connection_id, c->id) == 0) {
            next++;
            c->sub_count++;
        }
        if (c->sub_count == 0)
            c->subs = NULL;
    }
    op->cb.connections(op->status, count ? op->out.conns : NULL, count, op->data);
}

void hs_store_list_user_connections(hs_store_t *s, const char *user, const char *after,
                                    unsigned limit, bool with_topics, hs_store_connections_cb cb,
                                    void *data)
{
    hs_store_op_t *op = hs_store_op_new(HS_OP_USER_CONNECTIONS, data);
    op->cb.connections = cb;
    op->in.user.user = hs_strdup(user);
    op->in.user.after = hs_strdup(after ? after : "");
    /* 1000 a page, and one more to tell whether another page follows */
    op->in.user.limit = limit == 0 ? 1 : limit > 1001 ? 1001 : limit;
    op->in.user.with_topics = with_topics;
    hs_store_submit(s, op, true);
}
