/* net.c - per-loop networking state: the shared read buffer and the flush of
 * every connection's queued writes once per loop iteration. */
#include "net/net_internal.h"

#include "core/alloc.h"

static void prepare_cb(uv_prepare_t *prepare)
{
    hs_net_t *net = prepare->data;
    /* Flush every connection that queued bytes during this iteration. A
     * flush may queue nothing new, so one pass empties the list. */
    hs_conn_t *conn = net->pending_head;
    net->pending_head = NULL;
    while (conn) {
        hs_conn_t *next = conn->next_pending;
        if (next)
            next->prev_pending = NULL;
        conn->next_pending = conn->prev_pending = NULL;
        conn->flags &= ~(unsigned)CONN_PENDING;
        /* A flush may start closing this connection, but nothing is freed
         * before libuv's close callbacks, which run after this walk: the
         * detached rest of the list stays valid. A connection that queues
         * again is put on the new list and flushed in the next iteration. */
        hs_net__flush_conn(conn);
        conn = next;
    }
    if (net->pending_head == NULL)
        uv_prepare_stop(&net->prepare);
}

void hs_net__schedule_flush(hs_net_t *net, hs_conn_t *conn)
{
    if (conn->flags & CONN_PENDING)
        return;
    conn->flags |= CONN_PENDING;
    conn->prev_pending = NULL;
    conn->next_pending = net->pending_head;
    if (net->pending_head)
        net->pending_head->prev_pending = conn;
    net->pending_head = conn;
    uv_prepare_start(&net->prepare, prepare_cb);
}

void hs_net__unschedule_flush(hs_net_t *net, hs_conn_t *conn)
{
    if (!(conn->flags & CONN_PENDING))
        return;
    if (conn->prev_pending)
        conn->prev_pending->next_pending = conn->next_pending;
    else
        net->pending_head = conn->next_pending;
    if (conn->next_pending)
        conn->next_pending->prev_pending = conn->prev_pending;
    conn->next_pending = conn->prev_pending = NULL;
    conn->flags &= ~(unsigned)CONN_PENDING;
}

hs_net_t *hs_net_new(uv_loop_t *loop)
{
    hs_net_t *net = hs_calloc(1, sizeof(*net));
    net->loop = loop;
    uv_prepare_init(loop, &net->prepare);
    net->prepare.data = net;
    return net;
}

uv_loop_t *hs_net_loop(hs_net_t *net)
{
    return net->loop;
}

static void prepare_closed_cb(uv_handle_t *handle)
{
    hs_net_t *net = handle->data;
    hs_free(net->tls_plain);
    hs_free(net);
}

void hs_net_close(hs_net_t *net)
{
    uv_close((uv_handle_t *)&net->prepare, prepare_closed_cb);
}

size_t hs_net_conn_count(hs_net_t *net)
{
    return net->conn_count;
}
