/* conn.c - one TCP connection: reading into the loop's shared buffer, a
 * bounded ring of queued buffer references, one timer (an entry of the net's
 * heap, timers.c), and an asynchronous
 * close that ends with the handler's on_close. Writing the queue to the
 * socket (batched writes, TLS, the helpers' write phase) is flush.c. */
#include <arpa/inet.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/log.h"
#include "core/metrics.h"
#include "net/net_internal.h"

#define FLUSH_CLOSE_DEADLINE_MS 5000

/* Only with the queue empty: the inline slots are the ring's pointer. */
static void free_ring(hs_conn_t *conn)
{
    if (conn->out_cap > HS_CONN_INLINE_SLOTS)
        hs_free(conn->ring);
    conn->out_cap = HS_CONN_INLINE_SLOTS;
}

static void handle_closed_cb(uv_handle_t *handle)
{
    hs_conn_t *conn = hs_conn__of(handle);
    /* The socket is closed (libuv ran every write and shutdown callback
     * before this): the protocol frees its state, then we go. */
    if (conn->handler && conn->handler->on_close)
        conn->handler->on_close(conn);
    hs_net__unschedule_flush(conn->net, conn);
    hs_net__timer_stop(conn);
    out_slot_t *slots = hs_conn__slots(conn);
    for (unsigned i = 0; i < conn->out_count; i++)
        hs_buf_unref(slots[(conn->out_head + i) % conn->out_cap].buf);
    conn->out_count = 0;
    conn->net->conn_count--;
    hs_tls__conn_free(conn->tls);
    free_ring(conn);
    hs_free(conn);
}

hs_conn_t *hs_conn__new(hs_net_t *net)
{
    hs_conn_t *conn = hs_calloc(1, sizeof(*conn));
    conn->net = net;
    uv_tcp_init(net->loop, &conn->tcp);
    conn->out_cap = HS_CONN_INLINE_SLOTS;
    net->conn_count++;
    return conn;
}

/* ---- reading ------------------------------------------------------------ */

static void alloc_cb(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    hs_conn_t *conn = hs_conn__of(handle);
    hs_net_t *net = conn->net;
    /* One read callback runs at a time on a loop, so one buffer serves all
     * connections; on_read must not keep pointers into it. */
    if (net->read_buf_busy) {
        buf->base = NULL;
        buf->len = 0;
        return;
    }
    net->read_buf_busy = 1;
    buf->base = net->read_buf;
    buf->len = sizeof(net->read_buf);
}

void hs_conn__read_ended(hs_conn_t *conn, int status)
{
    if (conn->flags & (CONN_CLOSING | CONN_FLUSH_CLOSE | CONN_SHUTDOWN)) {
        hs_conn_close(conn); /* the lingering close is over */
        return;
    }
    uv_read_stop((uv_stream_t *)&conn->tcp);
    conn->flags |= CONN_PAUSED;
    if (conn->handler && conn->handler->on_eof)
        conn->handler->on_eof(conn, status);
    if (status != UV_EOF)
        hs_conn_close(conn);
    else if (!conn->handler || !conn->handler->on_eof)
        hs_conn_close_after_flush(conn);
}

static void read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    hs_conn_t *conn = hs_conn__of(stream);
    if (buf->base == conn->net->read_buf)
        conn->net->read_buf_busy = 0;
    if (nread == 0)
        return;
    if (nread < 0) {
        hs_conn__read_ended(conn, (int)nread);
        return;
    }
    if (conn->flags & (CONN_CLOSING | CONN_FLUSH_CLOSE))
        return; /* closing: what the peer still sends is discarded */
    if (conn->tls)
        hs_tls__read(conn, buf->base, (size_t)nread);
    else
        conn->handler->on_read(conn, buf->base, (size_t)nread);
}

int hs_conn__start(hs_conn_t *conn)
{
    struct sockaddr_storage addr;
    int len = sizeof(addr);
    conn->peer_family = 0;
    if (uv_tcp_getpeername(&conn->tcp, (struct sockaddr *)&addr, &len) == 0) {
        if (addr.ss_family == AF_INET) {
            struct sockaddr_in *in = (struct sockaddr_in *)&addr;
            conn->peer_family = AF_INET;
            conn->peer_port = ntohs(in->sin_port);
            memcpy(conn->peer_addr, &in->sin_addr, 4);
        } else if (addr.ss_family == AF_INET6) {
            struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&addr;
            conn->peer_family = AF_INET6;
            conn->peer_port = ntohs(in6->sin6_port);
            memcpy(conn->peer_addr, &in6->sin6_addr, 16);
        }
    }
    uv_tcp_nodelay(&conn->tcp, 1);
    return uv_read_start((uv_stream_t *)&conn->tcp, alloc_cb, read_cb);
}

void hs_conn_inject(hs_conn_t *conn, const char *data, size_t len)
{
    if (!(conn->flags & (CONN_CLOSING | CONN_FLUSH_CLOSE)) && conn->handler->on_read)
        conn->handler->on_read(conn, data, len);
}

void hs_conn_pause_read(hs_conn_t *conn)
{
    if (conn->flags & (CONN_CLOSING | CONN_PAUSED))
        return;
    conn->flags |= CONN_PAUSED;
    uv_read_stop((uv_stream_t *)&conn->tcp);
}

void hs_conn_resume_read(hs_conn_t *conn)
{
    if (!(conn->flags & CONN_PAUSED) || (conn->flags & (CONN_CLOSING | CONN_FLUSH_CLOSE)))
        return;
    conn->flags &= ~(unsigned)CONN_PAUSED;
    uv_read_start((uv_stream_t *)&conn->tcp, alloc_cb, read_cb);
}

/* ---- writing ------------------------------------------------------------ */

#define RING_KEEP 64

/* Queues buf; the slot takes a reference of its own, or the caller's (take). */
static void ring_push(hs_conn_t *conn, hs_buf_t *buf, bool take)
{
    if (conn->out_count == conn->out_cap) {
        unsigned cap = conn->out_cap * 2;
        out_slot_t *slots = hs_malloc(cap * sizeof(*slots));
        out_slot_t *old = hs_conn__slots(conn);
        for (unsigned i = 0; i < conn->out_count; i++)
            slots[i] = old[(conn->out_head + i) % conn->out_cap];
        if (conn->out_cap > HS_CONN_INLINE_SLOTS)
            hs_free(old);
        conn->ring = slots; /* over the inline slots, copied above */
        conn->out_head = 0;
        conn->out_cap = cap;
    }
    hs_conn__slots(conn)[(conn->out_head + conn->out_count) % conn->out_cap] =
        (out_slot_t){.buf = take ? buf : hs_buf_ref(buf), .offset = 0};
    conn->out_count++;
}

/* Drops n bytes from the front of the queue (they were written). */
void hs_conn__consume(hs_conn_t *conn, size_t n)
{
    conn->pending -= n;
    while (n > 0 && conn->out_count > 0) {
        out_slot_t *slot = &hs_conn__slots(conn)[conn->out_head];
        size_t left = slot->buf->len - slot->offset;
        if (n < left) {
            slot->offset += n;
            return;
        }
        n -= left;
        hs_buf_unref(slot->buf);
        slot->buf = NULL;
        conn->out_head = (conn->out_head + 1) % conn->out_cap;
        conn->out_count--;
    }
    if (conn->out_count == 0) {
        conn->out_head = 0;
        /* A ring that grew for a large burst is given back when it drains,
         * so an idle connection does not keep it; up to RING_KEEP slots
         * (1 KiB) stay, so that a connection receiving a steady stream of
         * waves does not allocate and free its ring for each of them. */
        if (conn->out_cap > RING_KEEP)
            free_ring(conn);
    }
}

static void begin_shutdown(hs_conn_t *conn);

void hs_conn__queue_drained(hs_conn_t *conn)
{
    if (conn->flags & CONN_FLUSH_CLOSE) {
        begin_shutdown(conn);
        return;
    }
    if (conn->handler && conn->handler->on_drain)
        conn->handler->on_drain(conn);
}

static int send_buf(hs_conn_t *conn, hs_buf_t *buf, bool bounded, bool take)
{
    if (conn->flags & (CONN_CLOSING | CONN_SHUTDOWN))
        return HS_ECLOSED;
    if (bounded && conn->max_pending > 0 && conn->pending + buf->len > conn->max_pending)
        return HS_ETOOBIG;
    if (buf->len == 0) {
        if (take)
            hs_buf_unref(buf);
        return 0;
    }
    ring_push(conn, buf, take);
    conn->pending += buf->len;
    hs_net__schedule_flush(conn->net, conn);
    return 0;
}

int hs_conn_send(hs_conn_t *conn, hs_buf_t *buf)
{
    return send_buf(conn, buf, true, false);
}

int hs_conn_send_always(hs_conn_t *conn, hs_buf_t *buf)
{
    return send_buf(conn, buf, false, false);
}

int hs_conn_send_taking(hs_conn_t *conn, hs_buf_t *buf, bool bounded)
{
    return send_buf(conn, buf, bounded, true);
}

void hs_conn_discard_unsent(hs_conn_t *conn)
{
    unsigned keep = conn->writing_count;
    out_slot_t *slots = hs_conn__slots(conn);
    if (keep == 0 && conn->out_count > 0 && slots[conn->out_head].offset > 0)
        keep = 1;
    while (conn->out_count > keep) {
        unsigned last = (conn->out_head + conn->out_count - 1) % conn->out_cap;
        out_slot_t *slot = &slots[last];
        conn->pending -= slot->buf->len - slot->offset;
        hs_buf_unref(slot->buf);
        slot->buf = NULL;
        conn->out_count--;
    }
}

size_t hs_conn_pending(hs_conn_t *conn)
{
    return conn->pending;
}

/* Kept in 32 bits (--max-pending stops at 1 GiB); a larger bound is 4 GiB. */
void hs_conn_set_max_pending(hs_conn_t *conn, size_t bytes)
{
    conn->max_pending = bytes > UINT32_MAX ? UINT32_MAX : (uint32_t)bytes;
}

void hs_conn_set_fanout(hs_conn_t *conn)
{
    if (conn->flags & CONN_FANOUT)
        return;
    /* Moves to the other flush list if it is waiting on one. */
    bool pending = conn->flags & CONN_PENDING;
    hs_net__unschedule_flush(conn->net, conn);
    conn->flags |= CONN_FANOUT;
    if (pending)
        hs_net__schedule_flush(conn->net, conn);
}

/* ---- closing ------------------------------------------------------------ */

static void flush_deadline_cb(hs_conn_t *conn)
{
    hs_conn_close(conn);
}

#define LINGER_MS 2000

/* The request was allocated for this shutdown alone (begin_shutdown);
 * libuv calls back with UV_ECANCELED when the handle closes first. */
static void shutdown_cb(uv_shutdown_t *req, int status)
{
    hs_conn_t *conn = req->data;
    hs_free(req);
    if (status < 0 || (conn->flags & CONN_CLOSING)) {
        hs_conn_close(conn);
        return;
    }
    /* Our side is finished. Closing now could make the kernel answer bytes
     * the peer is still sending with a reset that destroys our last
     * response in flight; so read and discard until the peer closes too,
     * for a short while (a "lingering close"). */
    conn->timer_cb = flush_deadline_cb;
    hs_net__timer_start(conn, LINGER_MS);
    uv_read_start((uv_stream_t *)&conn->tcp, alloc_cb, read_cb);
}

/* Nothing queued, nothing being written. With TLS the plaintext queue may be
 * empty while ciphertext is still waiting or in flight. */
static bool queue_empty(hs_conn_t *conn)
{
    if (conn->out_count > 0)
        return false;
    return !conn->tls || (!hs_tls__has_output(conn->tls) && !(conn->flags & CONN_WRITING));
}

static void begin_shutdown(hs_conn_t *conn)
{
    if (conn->flags & (CONN_SHUTDOWN | CONN_CLOSING))
        return;
    /* TLS: what is still waiting goes out first, then our close_notify; the
     * flush that writes them comes back here when the queue is empty. */
    if (conn->tls && (!queue_empty(conn) || hs_tls__close_notify(conn->tls))) {
        hs_net__schedule_flush(conn->net, conn);
        return;
    }
    conn->flags |= CONN_SHUTDOWN;
    uv_shutdown_t *req = hs_malloc(sizeof(*req));
    req->data = conn;
    if (uv_shutdown(req, (uv_stream_t *)&conn->tcp, shutdown_cb) != 0) {
        hs_free(req);
        hs_conn_close(conn);
    }
}

void hs_conn_close_after_flush(hs_conn_t *conn)
{
    if (conn->flags & (CONN_CLOSING | CONN_FLUSH_CLOSE))
        return;
    conn->flags |= CONN_FLUSH_CLOSE;
    uv_read_stop((uv_stream_t *)&conn->tcp);
    /* A peer that never reads must not keep the connection forever. */
    conn->timer_cb = flush_deadline_cb;
    hs_net__timer_start(conn, FLUSH_CLOSE_DEADLINE_MS);
    if (conn->out_count == 0)
        begin_shutdown(conn);
    else if (conn->tls)
        hs_net__schedule_flush(conn->net, conn); /* may drop it if it cannot encrypt */
}

void hs_conn_close(hs_conn_t *conn)
{
    if (conn->flags & CONN_CLOSING)
        return;
    conn->flags |= CONN_CLOSING;
    uv_read_stop((uv_stream_t *)&conn->tcp);
    conn->timer_cb = NULL;
    hs_net__timer_stop(conn);
    uv_close((uv_handle_t *)&conn->tcp, handle_closed_cb);
}

bool hs_conn_closing(hs_conn_t *conn)
{
    return (conn->flags & (CONN_CLOSING | CONN_FLUSH_CLOSE)) != 0;
}

/* ---- timer and accessors ------------------------------------------------ */

void hs_conn__timer_fired(hs_conn_t *conn)
{
    hs_conn_timer_cb cb = conn->timer_cb;
    conn->timer_cb = NULL;
    if (cb && !(conn->flags & CONN_CLOSING))
        cb(conn);
}

void hs_conn_timer_start(hs_conn_t *conn, uint64_t timeout_ms, hs_conn_timer_cb cb)
{
    if (conn->flags & (CONN_CLOSING | CONN_FLUSH_CLOSE))
        return;
    conn->timer_cb = cb;
    hs_net__timer_start(conn, timeout_ms);
}

void hs_conn_timer_stop(hs_conn_t *conn)
{
    if (conn->flags & (CONN_CLOSING | CONN_FLUSH_CLOSE))
        return;
    conn->timer_cb = NULL;
    hs_net__timer_stop(conn);
}

void hs_conn_set_handler(hs_conn_t *conn, const hs_conn_handler_t *handler, void *data)
{
    conn->handler = handler;
    conn->tcp.data = data;
}

void *hs_conn_data(hs_conn_t *conn)
{
    return conn->tcp.data;
}

hs_net_t *hs_conn_net(hs_conn_t *conn)
{
    return conn->net;
}

/* Kept in binary (20 bytes, not 64 of text in every connection) and
 * written out when asked, into one of a few buffers per thread. */
#define PEER_BUFS 4

const char *hs_conn_peer(hs_conn_t *conn)
{
    static _Thread_local char bufs[PEER_BUFS][HS_CONN_PEER_LEN];
    static _Thread_local unsigned next;
    char *out = bufs[next++ % PEER_BUFS];
    char ip[INET6_ADDRSTRLEN] = "";
    out[0] = '\0';
    if (conn->peer_family == AF_INET) {
        inet_ntop(AF_INET, conn->peer_addr, ip, sizeof(ip));
        snprintf(out, HS_CONN_PEER_LEN, "%s:%u", ip, conn->peer_port);
    } else if (conn->peer_family == AF_INET6) {
        inet_ntop(AF_INET6, conn->peer_addr, ip, sizeof(ip));
        const char *shown = strncmp(ip, "::ffff:", 7) == 0 ? ip + 7 : ip;
        snprintf(out, HS_CONN_PEER_LEN, shown == ip ? "[%s]:%u" : "%s:%u", shown, conn->peer_port);
    }
    return out;
}
