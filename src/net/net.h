/* net.h - TCP listeners and connections on one libuv loop.
 *
 * A connection (hs_conn_t) owns its socket (polled by a uv_poll_t), a
 * bounded queue of outgoing reference-counted buffers, and one timer. A
 * protocol layer (HTTP, then WebSocket after an upgrade) is plugged in as an
 * hs_conn_handler_t and may be swapped while the connection lives.
 *
 * Reading: all connections of a loop read into one shared buffer owned by the
 * hs_net_t, so an idle connection costs no read buffer. on_read() sees the
 * bytes only for the duration of the call; a protocol that needs to keep a
 * partial frame or request copies it.
 *
 * Writing: hs_conn_send() only queues a reference. Queued data of every
 * connection is flushed once per loop iteration, before the loop polls
 * (uv_prepare; the Redis "beforeSleep" pattern), with one writev per
 * connection, so several frames for one peer in one iteration share a system
 * call and a completion never runs inside the call that queued it. No
 * per-send allocation happens in the steady state: the queue is a ring (two
 * slots inside the connection, then allocated) that grows only when it is
 * full. What the socket did not take at once stays queued, and the poll
 * watches for the socket to become writable again; nothing is allocated for
 * that wait.
 *
 * Closing: hs_conn_close() may be called from anywhere, including inside
 * on_read(); the connection is freed later, after libuv's close callbacks,
 * and the handler's on_close() runs exactly once, last.
 *
 * Thread affinity: every function here must be called on the loop's thread.
 */
#ifndef HS_NET_NET_H
#define HS_NET_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/buf.h"

typedef struct hs_net hs_net_t;
typedef struct hs_conn hs_conn_t;
typedef struct hs_listener hs_listener_t;

/* Per-loop networking state: shared read buffer, the list of connections
 * with pending writes, the prepare handle that flushes them. */
hs_net_t *hs_net_new(uv_loop_t *loop);
uv_loop_t *hs_net_loop(hs_net_t *net);
/* Spreads the writes of an iteration with many connections to flush over
 * this many helper threads besides the loop's (flush_pool.c); 0: none. */
void hs_net_set_flush_threads(hs_net_t *net, unsigned helpers);
/* Closes the prepare handle; call when every listener and connection is
 * closed, then run the loop once more before freeing. Frees net in the
 * close callback. */
void hs_net_close(hs_net_t *net);

/* A protocol layer. All callbacks run on the loop thread. */
typedef struct hs_conn_handler {
    /* Bytes arrived. They live only during the call. */
    void (*on_read)(hs_conn_t *conn, const char *data, size_t len);
    /* The peer closed its side (status UV_EOF) or reading failed (another
     * negative status). Reading has stopped. After a failure the net layer
     * closes the connection when this returns; after EOF the handler decides
     * and must close it, now or after its last answer. When on_eof is NULL,
     * EOF closes the connection after flushing what is queued. */
    void (*on_eof)(hs_conn_t *conn, int status);
    /* The outgoing queue became empty after a flush. Optional. */
    void (*on_drain)(hs_conn_t *conn);
    /* Last call: the socket is closed and conn is freed after this returns.
     * The protocol frees its own state here. */
    void (*on_close)(hs_conn_t *conn);
} hs_conn_handler_t;

typedef void (*hs_accept_cb)(hs_listener_t *listener, hs_conn_t *conn);

/* Listens on addr: "host:port", "[v6]:port" or ":port" (all interfaces,
 * IPv6 dual-stack when available so "localhost" works whichever family a
 * client picks, else IPv4). host is a numeric address; "localhost" is taken
 * as 127.0.0.1 (no resolver). Each accepted connection is handed to cb with no
 * handler set; cb must call hs_conn_set_handler() before returning.
 * Returns 0 or a negative error (UV_EADDRINUSE, HS_EINVAL, ...). When accept
 * fails for lack of file descriptors the listener pauses for a moment
 * instead of spinning. */
int hs_listener_start(hs_net_t *net, const char *addr, hs_accept_cb cb, void *data,
                      hs_listener_t **out);
void *hs_listener_data(hs_listener_t *listener);
/* The bound port (useful with port 0). */
int hs_listener_port(hs_listener_t *listener);
/* Stops accepting and frees the listener (asynchronously). */
void hs_listener_close(hs_listener_t *listener);

void hs_conn_set_handler(hs_conn_t *conn, const hs_conn_handler_t *handler, void *data);
void *hs_conn_data(hs_conn_t *conn);
hs_net_t *hs_conn_net(hs_conn_t *conn);
/* "ip:port" of the peer ("[v6]:port"), NUL-terminated, "" when unknown.
 * Written on each call into one of a few buffers of the calling thread:
 * valid for the next three calls of that thread (enough for one log line
 * naming up to four peers); copy it to keep it. */
#define HS_CONN_PEER_LEN 64
const char *hs_conn_peer(hs_conn_t *conn);

/* Queues buf for sending, taking a new reference (the caller keeps its own).
 * Returns 0, HS_ECLOSED if the connection is closing, or HS_ETOOBIG if the
 * queued bytes would pass the connection's bound (hs_conn_set_max_pending);
 * nothing is queued then and the caller decides what to do (close, etc.). */
int hs_conn_send(hs_conn_t *conn, hs_buf_t *buf);
/* Like hs_conn_send but ignores the bound (for small control frames and
 * responses that must go out). */
int hs_conn_send_always(hs_conn_t *conn, hs_buf_t *buf);
/* hs_conn_send (bounded) or hs_conn_send_always, except that on success the
 * queue takes over one of the caller's references instead of taking one of
 * its own: a fan-out takes all its references at once (hs_buf_ref_n). On
 * failure the caller keeps the reference. */
int hs_conn_send_taking(hs_conn_t *conn, hs_buf_t *buf, bool bounded);
/* Drops the queued buffers that no write has started on (a buffer partly
 * written, or handed to the kernel, stays so the stream is not cut inside
 * a frame). For a peer that does not read: what follows goes out next. */
void hs_conn_discard_unsent(hs_conn_t *conn);
/* Bytes queued and not yet written. */
size_t hs_conn_pending(hs_conn_t *conn);
/* The bound used by hs_conn_send; 0 means no bound. Default 0. */
void hs_conn_set_max_pending(hs_conn_t *conn, size_t bytes);
/* Marks a connection that receives fan-out (a subscriber): such connections
 * are flushed after every other connection (answers, handshakes), at most
 * HS_NET_FANOUT_PER_ITERATION per iteration, oldest first, so the loop reads
 * the next requests between the parts of a wave; when the oldest has fallen
 * behind (HS_NET_FANOUT_BEHIND queued), the whole wave goes at once, shared
 * with the helper threads if any (net.c). */
void hs_conn_set_fanout(hs_conn_t *conn);

/* Passes bytes to the handler's on_read as if they had just been read; for
 * a protocol switch, where bytes read by the old protocol belong to the new. */
void hs_conn_inject(hs_conn_t *conn, const char *data, size_t len);

/* Stops/resumes reading from the socket (back-pressure, pipelining). A
 * pause stops the next socket read, not the bytes already read: on a TLS
 * connection one socket read can carry several records, and the plaintext
 * of the rest may still arrive in a further on_read after the pause, so a
 * protocol that pauses keeps what it is handed (as http/server.c does). */
void hs_conn_pause_read(hs_conn_t *conn);
void hs_conn_resume_read(hs_conn_t *conn);

/* Flushes what is queued, then shuts down the write side and closes.
 * Reading stops at once. Idempotent. */
void hs_conn_close_after_flush(hs_conn_t *conn);
/* Closes now; queued data is dropped. Idempotent. */
void hs_conn_close(hs_conn_t *conn);
bool hs_conn_closing(hs_conn_t *conn);

/* The connection's one timer: cb runs once after timeout_ms unless restarted
 * or stopped. Restarting replaces the previous deadline. Never fires after
 * the connection started closing. */
typedef void (*hs_conn_timer_cb)(hs_conn_t *conn);
void hs_conn_timer_start(hs_conn_t *conn, uint64_t timeout_ms, hs_conn_timer_cb cb);
void hs_conn_timer_stop(hs_conn_t *conn);

/* Number of live connections of this net (for limits and metrics). */
size_t hs_net_conn_count(hs_net_t *net);

#endif
