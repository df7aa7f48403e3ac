/* conn.c - one TCP connection: reading into the loop's shared buffer, a
 * bounded ring of queued buffer references, batched writes, one timer, and
 * an asynchronous close that ends with the handler's on_close. */
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/log.h"
#include "core/metrics.h"
#include "net/net_internal.h"

#include <errno.h>
#include <sys/uio.h>

#define FLUSH_CLOSE_DEADLINE_MS 5000

static void conn_free_if_done(hs_conn_t *conn)
{
    if (--conn->handles_open > 0)
        return;
    /* Both handles are closed: the protocol frees its state, then we go. */
    if (conn->handler && conn->handler->on_close)
        conn->handler->on_close(conn);
    hs_net__unschedule_flush(conn->net, conn);
    for (unsigned i = 0; i < conn->out_count; i++)
        hs_buf_unref(conn->out[(conn->out_head + i) % conn->out_cap].buf);
    conn->net->conn_count--;
    hs_tls__conn_free(conn->tls);
    hs_free(conn->out);
    hs_free(conn);
}

static void handle_closed_cb(uv_handle_t *handle)
{
    conn_free_if_done(handle->data);
}

hs_conn_t *hs_conn__new(hs_net_t *net)
{
    hs_conn_t *conn = hs_calloc(1, sizeof(*conn));
    conn->net = net;
    uv_tcp_init(net->loop, &conn->tcp);
    uv_timer_init(net->loop, &conn->timer);
    conn->tcp.data = conn;
    conn->timer.data = conn;
    conn->handles_open = 2;
    net->conn_count++;
    return conn;
}

/* ---- reading ------------------------------------------------------------ */

static void alloc_cb(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    hs_conn_t *conn = handle->data;
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
    hs_conn_t *conn = stream->data;
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
    conn->peer[0] = '\0';
    if (uv_tcp_getpeername(&conn->tcp, (struct sockaddr *)&addr, &len) == 0) {
        char ip[INET6_ADDRSTRLEN] = "";
        int port = 0;
        if (addr.ss_family == AF_INET) {
            struct sockaddr_in *in = (struct sockaddr_in *)&addr;
            uv_ip4_name(in, ip, sizeof(ip));
            port = ntohs(in->sin_port);
            snprintf(conn->peer, sizeof(conn->peer), "%s:%d", ip, port);
        } else if (addr.ss_family == AF_INET6) {
            struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&addr;
            uv_ip6_name(in6, ip, sizeof(ip));
            port = ntohs(in6->sin6_port);
            const char *shown = strncmp(ip, "::ffff:", 7) == 0 ? ip + 7 : ip;
            snprintf(conn->peer, sizeof(conn->peer), shown == ip ? "[%s]:%d" : "%s:%d", shown,
                     port);
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
        unsigned cap = conn->out_cap ? conn->out_cap * 2 : 4;
        out_slot_t *slots = hs_malloc(cap * sizeof(*slots));
        for (unsigned i = 0; i < conn->out_count; i++)
            slots[i] = conn->out[(conn->out_head + i) % conn->out_cap];
        hs_free(conn->out);
        conn->out = slots;
        conn->out_head = 0;
        conn->out_cap = cap;
    }
    conn->out[(conn->out_head + conn->out_count) % conn->out_cap] =
        (out_slot_t){.buf = take ? buf : hs_buf_ref(buf), .offset = 0};
    conn->out_count++;
}

/* Drops n bytes from the front of the queue (they were written). */
void hs_conn__consume(hs_conn_t *conn, size_t n)
{
    conn->pending -= n;
    while (n > 0 && conn->out_count > 0) {
        out_slot_t *slot = &conn->out[conn->out_head];
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
        if (conn->out_cap > RING_KEEP) {
            hs_free(conn->out);
            conn->out = NULL;
            conn->out_cap = 0;
        }
    }
}

/* Appends to iovs[n..max) the unwritten bytes of a queued buffer: one entry
 * for a flat buffer, one per part left for a vector (whose offset counts
 * bytes across its parts). Returns the new n and adds the bytes to *bytes. */
static unsigned slot_iovs(const out_slot_t *slot, uv_buf_t *iovs, unsigned n, unsigned max,
                          size_t *bytes)
{
    const hs_buf_t *buf = slot->buf;
    if (buf->nparts == 0) {
        iovs[n++] =
            uv_buf_init((char *)buf->data + slot->offset, (unsigned)(buf->len - slot->offset));
        *bytes += buf->len - slot->offset;
        return n;
    }
    size_t skip = slot->offset;
    hs_buf_t *const *parts = hs_buf_parts(buf);
    for (unsigned i = 0; i < buf->nparts && n < max; i++) {
        size_t len = parts[i]->len;
        if (skip >= len) {
            skip -= len;
            continue;
        }
        iovs[n++] = uv_buf_init(parts[i]->data + skip, (unsigned)(len - skip));
        *bytes += len - skip;
        skip = 0;
    }
    return n;
}

/* The iovecs of the queue's first unwritten bytes, at most max; *slots (if
 * not NULL): the queue entries they come from (the last one perhaps in
 * part), *bytes: their length. */
static unsigned fill_iovs(hs_conn_t *conn, uv_buf_t *iovs, unsigned max, unsigned *slots,
                          size_t *bytes)
{
    unsigned n = 0, s = 0;
    *bytes = 0;
    for (; s < conn->out_count && n < max; s++)
        n = slot_iovs(&conn->out[(conn->out_head + s) % conn->out_cap], iovs, n, max, bytes);
    if (slots)
        *slots = s;
    return n;
}

/* Copies n unwritten bytes of a queued buffer, from its offset, to dst. */
static void slot_copy(const out_slot_t *slot, char *dst, size_t n)
{
    const hs_buf_t *buf = slot->buf;
    if (buf->nparts == 0) {
        memcpy(dst, buf->data + slot->offset, n);
        return;
    }
    size_t skip = slot->offset;
    hs_buf_t *const *parts = hs_buf_parts(buf);
    for (unsigned i = 0; i < buf->nparts && n > 0; i++) {
        size_t len = parts[i]->len;
        if (skip >= len) {
            skip -= len;
            continue;
        }
        size_t take = len - skip < n ? len - skip : n;
        memcpy(dst, parts[i]->data + skip, take);
        dst += take;
        n -= take;
        skip = 0;
    }
}

static void begin_shutdown(hs_conn_t *conn);

static void queue_drained(hs_conn_t *conn)
{
    if (conn->flags & CONN_FLUSH_CLOSE) {
        begin_shutdown(conn);
        return;
    }
    if (conn->handler && conn->handler->on_drain)
        conn->handler->on_drain(conn);
}

static void write_cb(uv_write_t *req, int status)
{
    hs_conn_t *conn = req->data;
    conn->flags &= ~(unsigned)CONN_WRITING;
    if (conn->flags & CONN_CLOSING)
        return;
    if (status < 0) {
        hs_log_debug("net: write to %s failed: %s", conn->peer, uv_strerror(status));
        hs_conn_close(conn);
        return;
    }
    /* uv_write wrote everything it was given. */
    size_t written = conn->writing_bytes;
    conn->writing_count = 0;
    conn->writing_bytes = 0;
    if (conn->tls) {
        /* uv_write had the rest of the TLS output buffer. */
        hs_tls_out_t *out = hs_tls__out(conn->tls);
        written = out->len - out->off;
        hs_tls__out_consume(conn->tls, written);
        hs_metrics_singleton.bytes_sent += written;
        if (conn->out_count > 0 || hs_tls__has_output(conn->tls))
            hs_net__schedule_flush(conn->net, conn);
        else
            queue_drained(conn);
        return;
    }
    hs_metrics_singleton.bytes_sent += written;
    hs_conn__consume(conn, written);
    if (conn->out_count > 0)
        hs_net__schedule_flush(conn->net, conn);
    else
        queue_drained(conn);
}

/* TLS: how much plaintext one flush encrypts before writing; what is left
 * stays queued as plaintext (and counts against max_pending) until the
 * socket took this much, so a client that does not read holds at most this
 * much ciphertext besides its bounded plaintext queue. */
#define TLS_FLUSH_BUDGET (64 * 1024)
/* Small frames are gathered into records of up to this size (one TLS
 * record each), instead of one record, with its overhead, per frame. */
#define TLS_RECORD_SIZE (16 * 1024)

/* Encrypts queued plaintext into the TLS output. Returns true if there is
 * output now. The staging area is the net's plaintext buffer, free during a
 * flush (it serves only inside read callbacks). */
static bool tls_encrypt_queued(hs_conn_t *conn)
{
    hs_tls_conn_t *tc = conn->tls;
    if (!hs_tls__ready(tc)) {
        /* Nothing can be encrypted for a failed session, nor for one that
         * is closing before its handshake finished: drop the queue. */
        if (hs_tls__failed(tc) || (conn->flags & CONN_FLUSH_CLOSE))
            hs_conn__consume(conn, conn->pending);
        return false;
    }
    char *stage = conn->net->tls_plain;
    size_t budget = TLS_FLUSH_BUDGET, staged = 0;
    while (conn->out_count > 0 && budget > 0) {
        out_slot_t *slot = &conn->out[conn->out_head];
        size_t left = slot->buf->len - slot->offset;
        size_t room = TLS_RECORD_SIZE - staged;
        size_t n = left < room ? left : room;
        if (n > budget)
            n = budget;
        slot_copy(slot, stage + staged, n);
        staged += n;
        budget -= n;
        hs_conn__consume(conn, n);
        if (staged == TLS_RECORD_SIZE || conn->out_count == 0 || budget == 0) {
            if (hs_tls__encrypt(tc, stage, staged) != 0) {
                hs_conn_close(conn);
                return false;
            }
            staged = 0;
        }
    }
    return hs_tls__has_output(tc);
}

static void tls_flush_conn(hs_conn_t *conn)
{
    hs_tls_conn_t *tc = conn->tls;
    for (;;) {
        hs_tls_out_t *out = hs_tls__out(tc);
        if (out->off == out->len) {
            if (tls_encrypt_queued(conn))
                continue;
            /* Closing and all sent: our close_notify goes out in this same
             * flush (a flush scheduled from here would wait for the next
             * loop event). */
            if (!(conn->flags & CONN_CLOSING) && (conn->flags & CONN_FLUSH_CLOSE) &&
                conn->out_count == 0 && hs_tls__close_notify(tc))
                continue;
            break;
        }
        uv_buf_t iov = uv_buf_init(out->data + out->off, (unsigned)(out->len - out->off));
        int rc = uv_try_write((uv_stream_t *)&conn->tcp, &iov, 1);
        conn->net->write_calls++;
        if (rc == UV_EAGAIN || rc == UV_ENOSYS)
            rc = 0;
        if (rc < 0) {
            hs_log_debug("net: write to %s failed: %s", conn->peer, uv_strerror(rc));
            hs_conn_close(conn);
            return;
        }
        hs_metrics_singleton.bytes_sent += (size_t)rc;
        if ((size_t)rc < iov.len) {
            /* The socket is full: libuv writes the rest of this buffer,
             * which stays untouched (OpenSSL's further output goes to the
             * next one) until write_cb. */
            hs_tls__out_consume(tc, (size_t)rc);
            out = hs_tls__out(tc);
            iov = uv_buf_init(out->data + out->off, (unsigned)(out->len - out->off));
            conn->writing_count = 0;
            conn->write_req.data = conn;
            conn->flags |= CONN_WRITING;
            rc = uv_write(&conn->write_req, (uv_stream_t *)&conn->tcp, &iov, 1, write_cb);
            if (rc < 0) {
                conn->flags &= ~(unsigned)CONN_WRITING;
                hs_conn_close(conn);
            }
            return;
        }
        hs_tls__out_consume(tc, (size_t)rc);
    }
    if (conn->flags & CONN_CLOSING)
        return;
    if (conn->out_count == 0)
        queue_drained(conn);
}

bool hs_net__can_flush_apart(const hs_conn_t *conn)
{
    return conn->tls == NULL && !(conn->flags & (CONN_CLOSING | CONN_WRITING)) &&
           conn->out_count > 0;
}

void hs_net__flush_writes(hs_conn_t *conn)
{
    conn->flush_error = 0;
    conn->flush_written = 0;
    conn->flush_calls = 0;
    conn->flush_partial = false;
    uv_os_fd_t fd;
    if (uv_fileno((const uv_handle_t *)&conn->tcp, &fd) != 0) {
        conn->flush_error = UV_EBADF;
        return;
    }
    uv_buf_t iovs[HS_NET_MAX_IOVS];
    while (conn->out_count > 0) {
        size_t total;
        unsigned n = fill_iovs(conn, iovs, HS_NET_MAX_IOVS, NULL, &total);
        /* uv_buf_t has the layout of struct iovec on Unix. */
        ssize_t rc;
        do
            rc = writev(fd, (const struct iovec *)iovs, (int)n);
        while (rc < 0 && errno == EINTR);
        conn->flush_calls++;
        if (rc < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                conn->flush_error = -errno;
            else
                conn->flush_partial = true;
            return;
        }
        conn->flush_written += (size_t)rc;
        hs_conn__consume(conn, (size_t)rc);
        if ((size_t)rc < total) {
            conn->flush_partial = true;
            return;
        }
    }
}

void hs_net__flush_finish(hs_conn_t *conn)
{
    conn->net->write_calls += conn->flush_calls;
    hs_metrics_singleton.bytes_sent += conn->flush_written;
    if (conn->flush_error) {
        hs_log_debug("net: write to %s failed: %s", conn->peer, uv_strerror(conn->flush_error));
        hs_conn_close(conn);
    } else if (conn->flush_partial && conn->out_count > 0) {
        /* The socket is full: hand the rest to libuv, which writes it when
         * the socket becomes writable, and stop until it is done. */
        uv_buf_t iovs[HS_NET_MAX_IOVS];
        unsigned n =
            fill_iovs(conn, iovs, HS_NET_MAX_IOVS, &conn->writing_count, &conn->writing_bytes);
        conn->write_req.data = conn;
        conn->flags |= CONN_WRITING;
        if (uv_write(&conn->write_req, (uv_stream_t *)&conn->tcp, iovs, n, write_cb) < 0) {
            conn->flags &= ~(unsigned)CONN_WRITING;
            conn->writing_count = 0;
            conn->writing_bytes = 0;
            hs_conn_close(conn);
        }
    } else if (conn->out_count == 0) {
        queue_drained(conn);
    }
}

/* A plain connection's flush is its two phases back to back, on the loop
 * thread; a TLS one encrypts first (tls_flush_conn). */
void hs_net__flush_conn(hs_conn_t *conn)
{
    if (conn->flags & (CONN_CLOSING | CONN_WRITING))
        return;
    if (conn->tls) {
        tls_flush_conn(conn);
        return;
    }
    if (conn->out_count == 0) {
        queue_drained(conn);
        return;
    }
    hs_net__flush_writes(conn);
    hs_net__flush_finish(conn);
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
    if (keep == 0 && conn->out_count > 0 && conn->out[conn->out_head].offset > 0)
        keep = 1;
    while (conn->out_count > keep) {
        unsigned last = (conn->out_head + conn->out_count - 1) % conn->out_cap;
        out_slot_t *slot = &conn->out[last];
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

void hs_conn_set_max_pending(hs_conn_t *conn, size_t bytes)
{
    conn->max_pending = bytes;
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

static void flush_deadline_cb(uv_timer_t *timer)
{
    hs_conn_close(timer->data);
}

#define LINGER_MS 2000

static void shutdown_cb(uv_shutdown_t *req, int status)
{
    hs_conn_t *conn = req->data;
    if (status < 0 || (conn->flags & CONN_CLOSING)) {
        hs_conn_close(conn);
        return;
    }
    /* Our side is finished. Closing now could make the kernel answer bytes
     * the peer is still sending with a reset that destroys our last
     * response in flight; so read and discard until the peer closes too,
     * for a short while (a "lingering close"). */
    uv_timer_start(&conn->timer, flush_deadline_cb, LINGER_MS, 0);
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
    conn->shutdown_req.data = conn;
    if (uv_shutdown(&conn->shutdown_req, (uv_stream_t *)&conn->tcp, shutdown_cb) != 0)
        hs_conn_close(conn);
}

void hs_conn_close_after_flush(hs_conn_t *conn)
{
    if (conn->flags & (CONN_CLOSING | CONN_FLUSH_CLOSE))
        return;
    conn->flags |= CONN_FLUSH_CLOSE;
    uv_read_stop((uv_stream_t *)&conn->tcp);
    /* A peer that never reads must not keep the connection forever. */
    conn->timer_cb = NULL;
    uv_timer_start(&conn->timer, flush_deadline_cb, FLUSH_CLOSE_DEADLINE_MS, 0);
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
    uv_timer_stop(&conn->timer);
    uv_close((uv_handle_t *)&conn->timer, handle_closed_cb);
    uv_close((uv_handle_t *)&conn->tcp, handle_closed_cb);
}

bool hs_conn_closing(hs_conn_t *conn)
{
    return (conn->flags & (CONN_CLOSING | CONN_FLUSH_CLOSE)) != 0;
}

/* ---- timer and accessors ------------------------------------------------ */

static void timer_cb(uv_timer_t *timer)
{
    hs_conn_t *conn = timer->data;
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
    uv_timer_start(&conn->timer, timer_cb, timeout_ms, 0);
}

void hs_conn_timer_stop(hs_conn_t *conn)
{
    if (conn->flags & (CONN_CLOSING | CONN_FLUSH_CLOSE))
        return;
    conn->timer_cb = NULL;
    uv_timer_stop(&conn->timer);
}

void hs_conn_set_handler(hs_conn_t *conn, const hs_conn_handler_t *handler, void *data)
{
    conn->handler = handler;
    conn->data = data;
}

void *hs_conn_data(hs_conn_t *conn)
{
    return conn->data;
}

hs_net_t *hs_conn_net(hs_conn_t *conn)
{
    return conn->net;
}

const char *hs_conn_peer(hs_conn_t *conn)
{
    return conn->peer;
}
