/* flush.c - writing a connection's queue to its socket: the flush of a plain
 * connection in two phases and the TLS flush. What the socket did not take
 * at once stays queued while the poll waits for it to be writable (conn.c),
 * and the next flush starts from there.
 *
 * Threads. Everything here runs on the loop thread except
 * hs_net__flush_writes, which the flush pool (flush_pool.c, driven by
 * net.c's flush_parallel) may run on a helper thread, for many connections
 * at once, while the loop thread waits in hs_flush_pool_run:
 *   - the write phase (hs_net__flush_writes, any thread) touches its own
 *     connection and nothing else: the queue ring (its slots, out_head,
 *     out_count, out_cap, pending; hs_conn__consume may give the ring
 *     back), the buffers' data (read only) and references (hs_buf_unref is
 *     atomic: a buffer is shared by every connection of a fan-out, and the
 *     helper that drops the last reference frees it), the socket's
 *     descriptor, and the flush_* outcome fields. It never calls libuv (but
 *     uv_fileno, which reads the handle), the handler, the logger, the
 *     metrics or the net.
 *   - the finish phase (hs_net__flush_finish, loop thread, after the pool
 *     returned) acts on the outcome: counters, metrics, the log line, the
 *     wait for a writable socket, a close, the handler's on_drain.
 * hs_net__can_flush_apart says which connections may take the two-phase
 * path (plain, neither closing nor waiting for a writable socket); TLS
 * connections encrypt with the net's staging buffer and are flushed on the
 * loop thread only (hs_net__flush_conn). make tsan checks these rules.
 */
#include <errno.h>
#include <string.h>
#include <sys/uio.h>

#include "core/alloc.h"
#include "core/log.h"
#include "core/metrics.h"
#include "net/net_internal.h"

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

/* The iovecs of the queue's first unwritten bytes, at most max; *bytes:
 * their length. */
static unsigned fill_iovs(hs_conn_t *conn, uv_buf_t *iovs, unsigned max, size_t *bytes)
{
    unsigned n = 0;
    const out_slot_t *ring = hs_conn__slots(conn);
    *bytes = 0;
    for (unsigned s = 0; s < conn->out_count && n < max; s++)
        n = slot_iovs(&ring[(conn->out_head + s) % conn->out_cap], iovs, n, max, bytes);
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
        out_slot_t *slot = &hs_conn__slots(conn)[conn->out_head];
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
        size_t len = out->len - out->off;
        ssize_t rc;
        do
            rc = write(hs_conn__fd(conn), out->data + out->off, len);
        while (rc < 0 && errno == EINTR);
        conn->net->write_calls++;
        if (rc < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            hs_log_debug("net: write to %s failed: %s", hs_conn_peer(conn), strerror(errno));
            hs_conn_close(conn);
            return;
        }
        if (rc > 0) {
            hs_metrics_singleton.bytes_sent += (size_t)rc;
            hs_tls__out_consume(tc, (size_t)rc);
        }
        if (rc < 0 || (size_t)rc < len) {
            /* The socket is full: the rest of this buffer stays (OpenSSL's
             * further output goes to the next one) until it is writable. */
            hs_conn__wait_writable(conn);
            return;
        }
    }
    if (conn->flags & CONN_CLOSING)
        return;
    if (conn->out_count == 0)
        hs_conn__queue_drained(conn);
}

bool hs_net__can_flush_apart(const hs_conn_t *conn)
{
    return conn->tls == NULL && !(conn->flags & (CONN_CLOSING | CONN_WAIT_WRITE)) &&
           conn->out_count > 0;
}

void hs_net__flush_writes(hs_conn_t *conn)
{
    conn->flush_status = 0;
    conn->flush_written = 0;
    conn->flush_calls = 0;
    int fd = hs_conn__fd(conn);
    if (fd < 0) {
        conn->flush_status = UV_EBADF;
        return;
    }
    uv_buf_t iovs[HS_NET_MAX_IOVS];
    while (conn->out_count > 0) {
        size_t total;
        unsigned n = fill_iovs(conn, iovs, HS_NET_MAX_IOVS, &total);
        /* uv_buf_t has the layout of struct iovec on Unix. */
        ssize_t rc;
        do
            rc = writev(fd, (const struct iovec *)iovs, (int)n);
        while (rc < 0 && errno == EINTR);
        if (conn->flush_calls < UINT16_MAX)
            conn->flush_calls++;
        if (rc < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                conn->flush_status = (int16_t)-errno;
            else
                conn->flush_status = HS_FLUSH_PARTIAL;
            return;
        }
        conn->flush_written += (size_t)rc;
        hs_conn__consume(conn, (size_t)rc);
        if ((size_t)rc < total) {
            conn->flush_status = HS_FLUSH_PARTIAL;
            return;
        }
    }
}

void hs_net__flush_finish(hs_conn_t *conn)
{
    conn->net->write_calls += conn->flush_calls;
    hs_metrics_singleton.bytes_sent += conn->flush_written;
    if (conn->flush_status < 0) {
        hs_log_debug("net: write to %s failed: %s", hs_conn_peer(conn),
                     uv_strerror(conn->flush_status));
        hs_conn_close(conn);
    } else if (conn->flush_status == HS_FLUSH_PARTIAL && conn->out_count > 0) {
        /* The socket is full: the rest waits until it is writable. */
        hs_conn__wait_writable(conn);
    } else if (conn->out_count == 0) {
        hs_conn__queue_drained(conn);
    }
}

/* A plain connection's flush is its two phases back to back, on the loop
 * thread; a TLS one encrypts first (tls_flush_conn). */
void hs_net__flush_conn(hs_conn_t *conn)
{
    if (conn->flags & (CONN_CLOSING | CONN_WAIT_WRITE))
        return;
    if (conn->tls) {
        tls_flush_conn(conn);
        return;
    }
    if (conn->out_count == 0) {
        hs_conn__queue_drained(conn);
        return;
    }
    hs_net__flush_writes(conn);
    hs_net__flush_finish(conn);
}
