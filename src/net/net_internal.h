/* net_internal.h - what the files of src/net share privately. */
#ifndef HS_NET_INTERNAL_H
#define HS_NET_INTERNAL_H

#include "net/net.h"

#define HS_NET_READ_BUF (64 * 1024)
#define HS_NET_MAX_IOVS 64

typedef struct out_slot {
    hs_buf_t *buf;
    size_t offset; /* bytes of buf already written */
} out_slot_t;

enum {
    CONN_CLOSING = 1u << 0,     /* hs_conn_close started; handles closing */
    CONN_FLUSH_CLOSE = 1u << 1, /* close once the queue is empty */
    CONN_WRITING = 1u << 2,     /* a uv_write is in flight */
    CONN_PENDING = 1u << 3,     /* on the net's pending-flush list */
    CONN_PAUSED = 1u << 4,      /* reading stopped by the protocol */
    CONN_SHUTDOWN = 1u << 5,    /* uv_shutdown issued */
};

struct hs_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t write_req;
    uv_shutdown_t shutdown_req;
    hs_net_t *net;
    const hs_conn_handler_t *handler;
    void *data;
    hs_conn_timer_cb timer_cb;
    out_slot_t *out; /* ring of queued buffers */
    unsigned out_head, out_count, out_cap;
    unsigned writing_count; /* slots handed to the in-flight uv_write */
    size_t pending;         /* queued bytes not yet written */
    size_t max_pending;
    unsigned flags;
    unsigned handles_open;                       /* tcp + timer; freed when it reaches 0 */
    struct hs_conn *next_pending, *prev_pending; /* the net's flush list */
    char peer[64];                               /* "[v6 address]:port" */
};

struct hs_net {
    uv_loop_t *loop;
    uv_prepare_t prepare;
    hs_conn_t *pending_head; /* connections with bytes to flush */
    size_t conn_count;
    int read_buf_busy;
    uint64_t write_calls; /* uv_try_write calls; lets tests see the batching */
    char read_buf[HS_NET_READ_BUF];
};

void hs_net__schedule_flush(hs_net_t *net, hs_conn_t *conn);
void hs_net__flush_conn(hs_conn_t *conn);
/* Takes conn off the flush list (before it is freed). */
void hs_net__unschedule_flush(hs_net_t *net, hs_conn_t *conn);
hs_conn_t *hs_conn__new(hs_net_t *net);
int hs_conn__start(hs_conn_t *conn);
/* Test hook: behaves as if accept had failed with UV_EMFILE. */
void hs_listener__simulate_emfile(hs_listener_t *listener);

#endif
