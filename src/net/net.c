/* net.c - per-loop networking state: the shared read buffer and the flush of
 * every connection's queued writes once per loop iteration (the
 * connections' timers are timers.c). */
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

/* Detaches conn from the list it is on (the caller knows it is on one). */
static void unlink_pending(hs_net_t *net, hs_conn_t *conn)
{
    bool fanout = conn->flags & CONN_FANOUT;
    if (conn->prev_pending)
        conn->prev_pending->next_pending = conn->next_pending;
    else if (fanout)
        net->fanout_head = conn->next_pending;
    else
        net->pending_head = conn->next_pending;
    if (conn->next_pending)
        conn->next_pending->prev_pending = conn->prev_pending;
    else if (fanout)
        net->fanout_tail = conn->prev_pending;
    conn->next_pending = conn->prev_pending = NULL;
    conn->flags &= ~(unsigned)CONN_PENDING;
    if (fanout)
        net->fanout_count--;
    else if (net->pending_count > 0) /* a size hint: a flush in progress resets it */
        net->pending_count--;
}

/* Flushes the whole list, which is detached from the net. A flush may start
 * closing a connection, but nothing is freed before libuv's close callbacks,
 * which run after this walk: the detached rest of the list stays valid. A
 * connection that queues again is put on a new list and flushed in the next
 * iteration. */
static void flush_list(hs_conn_t *conn)
{
    while (conn) {
        hs_conn_t *next = conn->next_pending;
        if (next)
            next->prev_pending = NULL;
        conn->next_pending = conn->prev_pending = NULL;
        conn->flags &= ~(unsigned)CONN_PENDING;
        hs_net__flush_conn(conn);
        conn = next;
    }
}

static void idle_cb(uv_idle_t *idle)
{
    (void)idle; /* only there so that the poll does not block */
}

/* Takes up to n connections off the front of the fan-out list (the oldest)
 * and returns them as a detached list. */
static hs_conn_t *take_fanout(hs_net_t *net, size_t n)
{
    hs_conn_t *head = net->fanout_head, *last = head;
    size_t taken = 1;
    while (taken < n && last->next_pending) {
        last = last->next_pending;
        taken++;
    }
    net->fanout_head = last->next_pending;
    if (net->fanout_head)
        net->fanout_head->prev_pending = NULL;
    else
        net->fanout_tail = NULL;
    last->next_pending = NULL;
    net->fanout_count -= taken;
    return head;
}

/* A fan-out connection whose queue has grown past a quarter of its bound
 * (64 KiB at most): the loop has been taking in messages faster than the
 * parts of the waves leave. */
static bool fanout_behind(const hs_conn_t *conn)
{
    size_t limit = HS_NET_FANOUT_BEHIND;
    if (conn->max_pending && conn->max_pending / 4 < limit)
        limit = conn->max_pending / 4;
    return conn->pending >= limit;
}

/* Flushes the detached list: on the pool when there is one and count (the
 * list's size, or the size asked for) reaches PARALLEL_FLUSH_MIN, else one by
 * one on the loop thread. */
static void flush_some(hs_net_t *net, hs_conn_t *list, size_t count)
{
    if (net->flush_pool && count >= PARALLEL_FLUSH_MIN)
        flush_parallel(net, list);
    else
        flush_list(list);
}

static void prepare_cb(uv_prepare_t *prepare)
{
    hs_net_t *net = prepare->data;
    /* Every other connection first (answers, handshakes): an answer never
     * waits behind a wave, so the next publish is read and committed while
     * the wave goes out, and reaches the same sockets in fewer writes. */
    hs_conn_t *list = net->pending_head;
    size_t count = net->pending_count;
    net->pending_head = NULL;
    net->pending_count = 0;
    flush_some(net, list, count);
    /* Then the oldest fan-out connections, a few per iteration: the loop
     * reads between the parts, so the next publishes are committed while a
     * wave goes out and reach each socket with it, in one write. Once the
     * oldest has fallen behind (its queue past a share of the bound), the
     * whole wave goes at once, on every core: the loop reads no more until
     * it is out, which holds the publishers back, so a reader is never
     * closed for the server's own backlog. */
    if (net->fanout_head) {
        size_t n = HS_NET_FANOUT_PER_ITERATION;
        if (fanout_behind(net->fanout_head))
            n = net->fanout_count;
        flush_some(net, take_fanout(net, n), n);
    }
    if (net->pending_head == NULL && net->fanout_head == NULL)
        uv_prepare_stop(&net->prepare);
    if (net->fanout_head)
        uv_idle_start(&net->idle, idle_cb);
    else
        uv_idle_stop(&net->idle);
}

void hs_net__schedule_flush(hs_net_t *net, hs_conn_t *conn)
{
    if (conn->flags & CONN_PENDING)
        return;
    conn->flags |= CONN_PENDING;
    if (conn->flags & CONN_FANOUT) {
        conn->next_pending = NULL;
        conn->prev_pending = net->fanout_tail;
        if (net->fanout_tail)
            net->fanout_tail->next_pending = conn;
        else
            net->fanout_head = conn;
        net->fanout_tail = conn;
        net->fanout_count++;
    } else {
        conn->prev_pending = NULL;
        conn->next_pending = net->pending_head;
        if (net->pending_head)
            net->pending_head->prev_pending = conn;
        net->pending_head = conn;
        net->pending_count++;
    }
    uv_prepare_start(&net->prepare, prepare_cb);
}

void hs_net__unschedule_flush(hs_net_t *net, hs_conn_t *conn)
{
    if (conn->flags & CONN_PENDING)
        unlink_pending(net, conn);
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
    uv_idle_init(loop, &net->idle);
    net->idle.data = net;
    hs_net__timers_init(net);
    net->handles_open = 3;
    return net;
}

uv_loop_t *hs_net_loop(hs_net_t *net)
{
    return net->loop;
}

static void prepare_closed_cb(uv_handle_t *handle)
{
    hs_net_t *net = handle->data;
    if (--net->handles_open > 0)
        return;
    hs_flush_pool_free(net->flush_pool);
    hs_free(net->flush_batch);
    hs_free(net->tls_plain);
    hs_free(net);
}

void hs_net_close(hs_net_t *net)
{
    uv_close((uv_handle_t *)&net->prepare, prepare_closed_cb);
    uv_close((uv_handle_t *)&net->idle, prepare_closed_cb);
    hs_net__timers_close(net, prepare_closed_cb);
}

size_t hs_net_conn_count(hs_net_t *net)
{
    return net->conn_count;
}
