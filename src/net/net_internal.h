/* net_internal.h - what the files of src/net share privately. */
#ifndef HS_NET_INTERNAL_H
#define HS_NET_INTERNAL_H

#include <stdbool.h>

#include "net/net.h"
#include "net/tls.h"

#define HS_NET_READ_BUF (64 * 1024)
/* Fan-out connections flushed per iteration when no helper shares the wave
 * (hs_conn_set_fanout). */
#define HS_NET_FANOUT_PER_ITERATION 32
/* A fan-out connection with this much queued (or a quarter of its bound,
 * when lower) has fallen behind: the whole wave goes at once (net.c). */
#define HS_NET_FANOUT_BEHIND (64 * 1024)
/* Buffers one writev takes: Linux's IOV_MAX. A subscriber's queue after a
 * burst is one frame per message; at 64 a burst of 256 messages took 4
 * calls per subscriber, and the kernel's cost per call is most of a
 * fan-out's (docs/performance.md). */
#define HS_NET_MAX_IOVS 1024

typedef struct out_slot {
    hs_buf_t *buf;
    size_t offset; /* bytes of buf already written */
} out_slot_t;

enum {
    CONN_CLOSING = 1u << 0,     /* hs_conn_close started; handle closing, socket closed */
    CONN_FLUSH_CLOSE = 1u << 1, /* close once the queue is empty */
    CONN_WAIT_WRITE = 1u << 2,  /* the socket was full: waiting until it is writable */
    CONN_PENDING = 1u << 3,     /* on the net's pending-flush list */
    CONN_PAUSED = 1u << 4,      /* reading stopped by the protocol */
    CONN_SHUTDOWN = 1u << 5,    /* our side of the socket is shut down */
    CONN_FANOUT = 1u << 6,      /* its flushes may be spread over iterations */
    CONN_READING = 1u << 7,     /* the socket is read when it is readable */
    CONN_POLLING_R = 1u << 8,   /* the poll watches for readable (conn.c) */
    CONN_POLLING_W = 1u << 9,   /* the poll watches for writable (conn.c) */
};

/* Ciphertext of a TLS connection, waiting to be written (tls.c). */
typedef struct hs_tls_out {
    char *data;
    size_t len, off, cap; /* off: bytes already written */
} hs_tls_out_t;

typedef struct hs_tls_conn hs_tls_conn_t;

/* Queue entries kept inside the connection: an idle connection, or one that
 * never has more than this many buffers queued at once, allocates no ring. */
#define HS_CONN_INLINE_SLOTS 2

/* What an idle connection costs is this struct (and libuv's uv_poll_t in it
 * is half of it): the socket is a descriptor libuv polls, read, written and
 * shut down here (conn.c, flush.c) - libuv's stream layer (a uv_tcp_t, 88 B
 * more, and a request per write it could not take at once) is not used; the
 * timer is an entry of the net's heap (timers.c), a short queue lives in
 * inline_out and the peer's address is kept in binary. tests/unit/net
 * (test_net.c) checks the size. */
struct hs_conn {
    /* First, so that a handle is its connection (hs_conn__of); its data
     * field is the handler's data (hs_conn_set_handler), its descriptor the
     * socket (hs_conn__fd). */
    uv_poll_t poll;
    hs_net_t *net;
    const hs_conn_handler_t *handler;
    hs_conn_timer_cb timer_cb;
    uint64_t timer_due;  /* loop time (ms) the timer fires at */
    uint32_t timer_seq;  /* start order (wraps): equal deadlines fire in it */
    unsigned timer_slot; /* 1 + its index in the net's heap; 0: not armed */
    /* the queue: a ring of out_cap slots, inline_out while out_cap is
     * HS_CONN_INLINE_SLOTS, else the allocated ring (hs_conn__slots) */
    unsigned out_head, out_count, out_cap;
    uint32_t max_pending;                        /* hs_conn_set_max_pending's, at most UINT32_MAX */
    size_t pending;                              /* queued bytes not yet written */
    struct hs_conn *next_pending, *prev_pending; /* the net's flush list */
    hs_tls_conn_t *tls;                          /* NULL on a plain connection */
    /* the write phase of a flush (flush.c), perhaps on a helper thread:
     * its outcome, for the loop thread to act on */
    size_t flush_written; /* bytes written */
    int16_t flush_status; /* 0: all written; HS_FLUSH_PARTIAL: the socket
                           * filled up first; < 0: a failed writev, as -errno */
    uint16_t flush_calls; /* writev calls made (saturates: a statistic) */
    uint16_t flags;
    /* the peer: port (0: unknown) and address, IPv4 as an IPv4-mapped IPv6 one */
    uint16_t peer_port;
    uint8_t peer_addr[16];
    union {
        out_slot_t inline_out[HS_CONN_INLINE_SLOTS];
        out_slot_t *ring; /* its slots moved there when it grew */
    };
};

#define HS_FLUSH_PARTIAL 1

/* The connection whose uv_poll_t handle is h. */
static inline hs_conn_t *hs_conn__of(void *h)
{
    return (hs_conn_t *)h;
}

/* Its socket (-1 once it is closing). */
static inline int hs_conn__fd(const hs_conn_t *conn)
{
    uv_os_fd_t fd = -1;
    if (uv_fileno((const uv_handle_t *)&conn->poll, &fd) != 0)
        return -1;
    return fd;
}

/* The queue's slots: inline or the allocated ring. */
static inline out_slot_t *hs_conn__slots(hs_conn_t *conn)
{
    return conn->out_cap > HS_CONN_INLINE_SLOTS ? conn->ring : conn->inline_out;
}

typedef struct hs_flush_pool hs_flush_pool_t;

struct hs_net {
    uv_loop_t *loop;
    hs_flush_pool_t *flush_pool; /* NULL: every flush on the loop thread */
    hs_conn_t **flush_batch;     /* the connections of one flush */
    size_t flush_batch_cap;
    uv_prepare_t prepare;
    uv_idle_t idle;     /* keeps the poll from blocking while fan-out waits */
    uv_timer_t timer;   /* the connections' timers (timers.c) */
    hs_conn_t **timers; /* their min-heap, by (timer_due, timer_seq) */
    size_t timer_count, timer_cap;
    uint32_t timer_seq;      /* the next start's */
    uint64_t timer_armed;    /* the due time net->timer is set for; UINT64_MAX: none */
    int handles_open;        /* prepare + idle + timer; freed when all closed */
    hs_conn_t *pending_head; /* connections with bytes to flush, newest first */
    size_t pending_count;
    /* fan-out connections with bytes to flush, oldest first */
    hs_conn_t *fanout_head, *fanout_tail;
    size_t fanout_count;
    size_t conn_count;
    uint64_t write_calls; /* write system calls; lets tests see the batching */
    hs_tls_t *tls;        /* borrowed; listeners started while set accept TLS */
    char *tls_plain;      /* decrypted bytes during one read callback (TLS only) */
    char read_buf[HS_NET_READ_BUF];
};

void hs_net__schedule_flush(hs_net_t *net, hs_conn_t *conn);
/* Takes conn off the flush list (before it is freed). */
void hs_net__unschedule_flush(hs_net_t *net, hs_conn_t *conn);
/* A connection on the connected socket fd (non-blocking from here on), or
 * NULL (fd is still the caller's). */
hs_conn_t *hs_conn__new(hs_net_t *net, int fd);
/* The connection's timer came due (timers.c): runs its timer_cb. */
void hs_conn__timer_fired(hs_conn_t *conn);
/* Starts reading; peer: the address accept gave, or NULL to ask the socket. */
void hs_conn__start(hs_conn_t *conn, const struct sockaddr *peer);
/* Waits until the socket is writable, then flushes again (flush.c). */
void hs_conn__wait_writable(hs_conn_t *conn);
/* Reading stopped: the peer closed (UV_EOF, or its TLS close_notify) or
 * reading failed; tells the handler and closes as net.h describes. */
void hs_conn__read_ended(hs_conn_t *conn, int status);
/* Drops n plaintext bytes from the front of the queue (written or encrypted). */
void hs_conn__consume(hs_conn_t *conn, size_t n);
/* The queue is empty and nothing is in flight (flush.c): the close that
 * waited for it goes on, or the handler's on_drain runs. */
void hs_conn__queue_drained(hs_conn_t *conn);

/* ---- flushing one connection (flush.c) ---- */
/* Writes what conn has queued (loop thread): plain or TLS. */
void hs_net__flush_conn(hs_conn_t *conn);
/* A flush in two phases, for the pool: the writes alone (any thread; touches
 * conn and nothing else), then what the outcome asks for (loop thread). Only
 * for plain connections that are not closing nor waiting for the socket. */
bool hs_net__can_flush_apart(const hs_conn_t *conn);
void hs_net__flush_writes(hs_conn_t *conn);
void hs_net__flush_finish(hs_conn_t *conn);

/* ---- the connections' timers (timers.c) ---- */
void hs_net__timers_init(hs_net_t *net);
/* (Re)arms conn's timer timeout_ms from the loop's time; replaces a deadline
 * it had. The callback is conn->timer_cb, run from hs_conn__timer_fired. */
void hs_net__timer_start(hs_conn_t *conn, uint64_t timeout_ms);
void hs_net__timer_stop(hs_conn_t *conn);
/* Closes the net's timer handle (hs_net_close); cb as uv_close's. */
void hs_net__timers_close(hs_net_t *net, uv_close_cb cb);

/* ---- TLS on one connection (tls.c) ----
 * conn.c and flush.c call these; they never write to the socket themselves. */
hs_tls_conn_t *hs_tls__conn_new(hs_tls_t *tls, hs_conn_t *conn);
void hs_tls__conn_free(hs_tls_conn_t *tc);
/* Decrypts ciphertext just read and passes the plaintext to the handler's
 * on_read; handles the handshake, the peer's close_notify and errors. */
void hs_tls__read(hs_conn_t *conn, const char *data, size_t len);
/* Handshake done and no fatal error: plaintext can be encrypted. */
bool hs_tls__ready(const hs_tls_conn_t *tc);
bool hs_tls__failed(const hs_tls_conn_t *tc);
/* Encrypts len bytes into the pending output. 0, or an error (then failed). */
int hs_tls__encrypt(hs_tls_conn_t *tc, const char *data, size_t len);
/* The ciphertext to write next (len == off: nothing). Stays put until it is
 * consumed. */
hs_tls_out_t *hs_tls__out(hs_tls_conn_t *tc);
void hs_tls__out_consume(hs_tls_conn_t *tc, size_t n);
bool hs_tls__has_output(const hs_tls_conn_t *tc);
/* Queues our close_notify once (after the handshake); true if there is
 * output to write before the TCP shutdown. */
bool hs_tls__close_notify(hs_tls_conn_t *tc);

/* Test hook: behaves as if accept had failed with UV_EMFILE. */
void hs_listener__simulate_emfile(hs_listener_t *listener);

#endif
