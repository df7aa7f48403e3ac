/* net.c - per-loop networking state: the shared read buffer and the flush of
 * every connection's queued writes once per loop iteration. */
#include "net/net_internal.h"

#include "core/alloc.h"
#include "net/flush_pool.h"

/* Below this many connections one thread does it: waking helpers costs more
 * than it saves. */
#define PARALLEL_FLUSH_MIN 256

static void flush_writes_item(void *conn)
{
    hs_net__flush_writes(conn);
}

/* The write phase of every plain connection of the list on the pool, then the
 * rest on the loop thread, in list order. */
static void flush_parallel(hs_net_t *net, hs_conn_t *list)
{
    size_t count = 0;
    for (hs_conn_t *c = list; c; c = c->next_pending) {
        if (count == net->flush_batch_cap) {
            net->flush_batch_cap = net->flush_batch_cap ? net->flush_batch_cap * 2 : 1024;
            net->flush_batch =
                hs_realloc(net->flush_batch, net->flush_batch_cap * sizeof(*net->flush_batch));
        }
        net->flush_batch[count++] = c;
    }
    for (size_t i = 0; i < count; i++) {
        hs_conn_t *c = net->flush_batch[i];
        c->next_pending = c->prev_pending = NULL;
        c->flags &= ~(unsigned)CONN_PENDING;
    }
    /* Plain connections first, moved to the front; the others (TLS, closing,
     * writing) are flushed the usual way afterwards. */
    size_t apart = 0;
    for (size_t i = 0; i < count; i++) {
        if (hs_net__can_flush_apart(net->flush_batch[i])) {
            hs_conn_t *tmp = net->flush_batch[apart];
            net->flush_batch[apart++] = net->flush_batch[i];
            net->flush_batch[i] = tmp;
        }
    }
    hs_flush_pool_run(net->flush_pool, (void **)net->flush_batch, apart, flush_writes_item);
    /* Acting on the outcomes may close connections or queue more (on the new
     * list); nothing is freed before libuv's close callbacks. */
    for (size_t i = 0; i < apart; i++)
        hs_net__flush_finish(net->flush_batch[i]);
    for (size_t i = apart; i < count; i++)
        hs_net__flush_conn(net->flush_batch[i]);
}

static void prepare_cb(uv_prepare_t *prepare)
{
    hs_net_t *net = prepare->data;
    if (net->flush_pool && net->pending_count >= PARALLEL_FLUSH_MIN) {
        hs_conn_t *list = net->pending_head;
        net->pending_head = NULL;
        net->pending_count = 0;
        flush_parallel(net, list);
        if (net->pending_head == NULL)
            uv_prepare_stop(&net->prepare);
        return;
    }
    /* Flush every connection that queued bytes during this iteration. A
     * flush may queue nothing new, so one pass empties the list. */
    hs_conn_t *conn = net->pending_head;
    net->pending_head = NULL;
    net->pending_count = 0;
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
    net->pending_count++;
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
    if (net->pending_count > 0) /* a size hint: a flush in progress resets it */
        net->pending_count--;
}

void hs_net_set_flush_threads(hs_net_t *net, unsigned helpers)
{
    hs_flush_pool_free(net->flush_pool);
    net->flush_pool = hs_flush_pool_new(helpers);
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
    hs_flush_pool_free(net->flush_pool);
    hs_free(net->flush_batch);
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
