/* conn.c - one TCP connection: its socket polled by libuv (reading into the
 * loop's shared buffer, the wait for room to write), a bounded ring of
 * queued buffer references, one timer (an entry of the net's heap,
 * timers.c), the shutdown and an asynchronous close that ends with the
 * handler's on_close. Writing the queue to the socket (batched writes, TLS,
 * the helpers' write phase) is flush.c. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

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
    /* The socket is closed and the poll stopped: the protocol frees its
     * state, then we go. */
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

hs_conn_t *hs_conn__new(hs_net_t *net, int fd)
{
    hs_conn_t *conn = hs_calloc(1, sizeof(*conn));
    if (uv_poll_init_socket(net->loop, &conn->poll, fd) != 0) {
        hs_free(conn);
        return NULL;
    }
    conn->net = net;
    conn->out_cap = HS_CONN_INLINE_SLOTS;
    net->conn_count++;
    return conn;
}

/* ---- the poll ----------------------------------------------------------- */

static void poll_cb(uv_poll_t *handle, int status, int events);

/* Makes the poll watch what the state asks for: readable while the
 * connection reads, writable while a flush waits for room. Changed only
 * when it differs (libuv takes the descriptor out of epoll and puts it back
 * for every uv_poll_start). */
static void update_poll(hs_conn_t *conn)
{
    if (conn->flags & CONN_CLOSING)
        return;
    unsigned want = 0, events = 0;
    if (conn->flags & CONN_READING) {
        want |= CONN_POLLING_R;
        events |= UV_READABLE;
    }
    if (conn->flags & CONN_WAIT_WRITE) {
        want |= CONN_POLLING_W;
        events |= UV_WRITABLE;
    }
    if ((conn->flags & (CONN_POLLING_R | CONN_POLLING_W)) == want)
        return;
    conn->flags = (uint16_t)((conn->flags & ~(unsigned)(CONN_POLLING_R | CONN_POLLING_W)) | want);
    if (events)
        uv_poll_start(&conn->poll, (int)events, poll_cb);
    else
        uv_poll_stop(&conn->poll);
}

static void set_flag(hs_conn_t *conn, unsigned flag, bool on)
{
    if (on)
        conn->flags |= flag;
    else
        conn->flags &= (uint16_t)~flag;
    update_poll(conn);
}

void hs_conn__wait_writable(hs_conn_t *conn)
{
    set_flag(conn, CONN_WAIT_WRITE, true);
}

/* ---- reading ------------------------------------------------------------ */

/* A read that filled the whole buffer is followed by another, up to this
 * many per readiness (libuv's figure): a fast sender does not starve the
 * others, and what is left makes the socket readable again. */
#define READS_PER_EVENT 32

void hs_conn__read_ended(hs_conn_t *conn, int status)
{
    if (conn->flags & (CONN_CLOSING | CONN_FLUSH_CLOSE | CONN_SHUTDOWN)) {
        hs_conn_close(conn); /* the lingering close is over */
        return;
    }
    conn->flags |= CONN_PAUSED;
    set_flag(conn, CONN_READING, false);
    if (conn->handler && conn->handler->on_eof)
        conn->handler->on_eof(conn, status);
    if (status != UV_EOF)
        hs_conn_close(conn);
    else if (!conn->handler || !conn->handler->on_eof)
        hs_conn_close_after_flush(conn);
}

/* The socket is readable: into the loop's one buffer (one read callback
 * runs at a time on a loop, so it serves all connections; on_read must not
 * keep pointers into it). */
static void read_some(hs_conn_t *conn)
{
    hs_net_t *net = conn->net;
    int fd = hs_conn__fd(conn);
    for (int i = 0; i < READS_PER_EVENT; i++) {
        ssize_t n;
        do
            n = read(fd, net->read_buf, sizeof(net->read_buf));
        while (n < 0 && errno == EINTR);
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                hs_conn__read_ended(conn, -errno); /* libuv's codes are -errno */
            return;
        }
        if (n == 0) {
            hs_conn__read_ended(conn, UV_EOF);
            return;
        }
        /* closing: what the peer still sends is discarded */
        if (!(conn->flags & (CONN_CLOSING | CONN_FLUSH_CLOSE))) {
            if (conn->tls)
                hs_tls__read(conn, net->read_buf, (size_t)n);
            else
                conn->handler->on_read(conn, net->read_buf, (size_t)n);
        }
        if ((size_t)n < sizeof(net->read_buf) || (conn->flags & CONN_CLOSING) ||
            !(conn->flags & CONN_READING))
            return;
    }
}

/* The error a failed socket has; libuv reports every one as UV_EBADF. */
static int socket_error(hs_conn_t *conn)
{
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(hs_conn__fd(conn), SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err == 0)
        return UV_ECONNRESET;
    return -err;
}

static void poll_cb(uv_poll_t *handle, int status, int events)
{
    hs_conn_t *conn = hs_conn__of(handle);
    if (status < 0) {
        /* libuv stopped the poll (an error on the socket, POLLERR): the
         * connection ends as a failed read would end it. */
        conn->flags &= (uint16_t) ~(CONN_POLLING_R | CONN_POLLING_W);
        if (conn->flags & CONN_READING)
            hs_conn__read_ended(conn, socket_error(conn));
        else
            hs_conn_close(conn);
        return;
    }
    if (events & UV_WRITABLE) {
        /* Flushed now, with what was queued meanwhile: off the net's list
         * it went on by those sends, as the prepare pass takes a connection
         * off before its flush (else that pass would find the queue empty
         * and run on_drain a second time). The poll is changed once the
         * flush is done: a socket that fills up again keeps it as it is. */
        conn->flags &= (uint16_t)~CONN_WAIT_WRITE;
        hs_net__unschedule_flush(conn->net, conn);
        hs_net__flush_conn(conn); /* may wait again, or close */
        update_poll(conn);
    }
    if ((events & UV_READABLE) && (conn->flags & CONN_READING) && !(conn->flags & CONN_CLOSING))
        read_some(conn);
}

/* Kept as an IPv6 address (an IPv4 one mapped); port 0: not known. */
static void set_peer(hs_conn_t *conn, const struct sockaddr *sa)
{
    conn->peer_port = 0;
    if (sa == NULL)
        return;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        memcpy(conn->peer_addr, mapped, sizeof(mapped));
        memcpy(conn->peer_addr + 12, &in->sin_addr, 4);
        conn->peer_port = ntohs(in->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        memcpy(conn->peer_addr, &in6->sin6_addr, 16);
        conn->peer_port = ntohs(in6->sin6_port);
    }
}

void hs_conn__start(hs_conn_t *conn, const struct sockaddr *peer)
{
    int fd = hs_conn__fd(conn);
    struct sockaddr_storage addr;
    if (peer == NULL) {
        socklen_t len = sizeof(addr);
        if (getpeername(fd, (struct sockaddr *)&addr, &len) == 0)
            peer = (const struct sockaddr *)&addr;
    }
    set_peer(conn, peer);
    int one = 1; /* fails on a socket that is not TCP (tests): harmless */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    set_flag(conn, CONN_READING, true);
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
    set_flag(conn, CONN_READING, false);
}

void hs_conn_resume_read(hs_conn_t *conn)
{
    if (!(conn->flags & CONN_PAUSED) || (conn->flags & (CONN_CLOSING | CONN_FLUSH_CLOSE)))
        return;
    conn->flags &= (uint16_t)~CONN_PAUSED;
    set_flag(conn, CONN_READING, true);
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
    /* A buffer written in part stays: the peer has its first bytes. */
    out_slot_t *slots = hs_conn__slots(conn);
    unsigned keep = conn->out_count > 0 && slots[conn->out_head].offset > 0 ? 1 : 0;
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

/* Nothing queued. With TLS the plaintext queue may be empty while
 * ciphertext is still waiting. */
static bool queue_empty(hs_conn_t *conn)
{
    if (conn->out_count > 0)
        return false;
    return !conn->tls || !hs_tls__has_output(conn->tls);
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
    if (shutdown(hs_conn__fd(conn), SHUT_WR) != 0) {
        hs_conn_close(conn); /* the peer is gone already */
        return;
    }
    /* Our side is finished. Closing now could make the kernel answer bytes
     * the peer is still sending with a reset that destroys our last
     * response in flight; so read and discard until the peer closes too,
     * for a short while (a "lingering close"). */
    conn->timer_cb = flush_deadline_cb;
    hs_net__timer_start(conn, LINGER_MS);
    set_flag(conn, CONN_READING, true);
}

void hs_conn_close_after_flush(hs_conn_t *conn)
{
    if (conn->flags & (CONN_CLOSING | CONN_FLUSH_CLOSE))
        return;
    conn->flags |= CONN_FLUSH_CLOSE;
    set_flag(conn, CONN_READING, false);
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
    int fd = hs_conn__fd(conn);
    conn->flags |= CONN_CLOSING;
    conn->timer_cb = NULL;
    hs_net__timer_stop(conn);
    /* uv_close stops the poll and takes the descriptor out of epoll at
     * once; the socket goes with it, as libuv closes its own. */
    uv_close((uv_handle_t *)&conn->poll, handle_closed_cb);
    if (fd >= 0)
        close(fd);
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
    conn->poll.data = data;
}

void *hs_conn_data(hs_conn_t *conn)
{
    return conn->poll.data;
}

hs_net_t *hs_conn_net(hs_conn_t *conn)
{
    return conn->net;
}

/* Kept in binary (18 bytes, not 64 of text in every connection) and
 * written out when asked, into one of a few buffers per thread. */
#define PEER_BUFS 4

const char *hs_conn_peer(hs_conn_t *conn)
{
    static _Thread_local char bufs[PEER_BUFS][HS_CONN_PEER_LEN];
    static _Thread_local unsigned next;
    char *out = bufs[next++ % PEER_BUFS];
    char ip[INET6_ADDRSTRLEN] = "";
    out[0] = '\0';
    if (conn->peer_port == 0)
        return out;
    /* an IPv4 peer, or one mapped by a dual-stack listener, as IPv4 */
    if (IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)conn->peer_addr)) {
        inet_ntop(AF_INET, conn->peer_addr + 12, ip, sizeof(ip));
        snprintf(out, HS_CONN_PEER_LEN, "%s:%u", ip, conn->peer_port);
    } else {
        inet_ntop(AF_INET6, conn->peer_addr, ip, sizeof(ip));
        snprintf(out, HS_CONN_PEER_LEN, "[%s]:%u", ip, conn->peer_port);
    }
    return out;
}
