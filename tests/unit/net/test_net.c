/* Connections on a real loop and real loopback sockets: echo and EOF,
 * several sends flushed by one write, 8 MiB queued to a client that starts
 * reading late (arrives whole, in order, then on_drain), the same as vectors
 * of up to 106 blocks, the pending bound
 * refuses without queuing, close-after-flush delivers everything before
 * EOF, closing inside on_read is safe, the timer fires once and never after
 * close, on_close runs exactly once, the EMFILE back-off pauses accepting,
 * listener addresses, and the loop closes with no handle left. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/error.h"
#include "net/net_internal.h"

#define BIG_BLOCKS  8192 /* of 1 KiB: 8 MiB */
#define BATCH_SMALL 500  /* one-byte sends after the first three of S_BATCH */

enum {
    S_ECHO,
    S_BATCH,
    S_BIG,
    S_VECTOR,
    S_BOUND,
    S_CLOSE_IN_READ,
    S_TIMER,
    S_TIMER_CLOSE,
    S_BACKOFF,
    S_RESET
};

typedef struct fixture {
    uv_loop_t loop;
    hs_net_t *net;
    hs_listener_t *listener;
    hs_conn_t *server_conn;
    int scenario;
    int accepts, server_closes, timer_fires, eofs, eof_status, drains;
    size_t max_pending_seen;
    uint64_t write_calls; /* the net's count, read before it is freed */
    /* the client side */
    uv_tcp_t client;
    uv_connect_t connect_req;
    uv_write_t write_req;
    uv_shutdown_t shutdown_req;
    uv_timer_t client_timer;
    int connect_attempts, refused;
    char *received;
    size_t received_len;
    bool client_eof;
} fixture_t;

static fixture_t *fx;

static void connect_client(void);

/* ---- server side ------------------------------------------------------------ */

static void send_str(hs_conn_t *conn, const char *s)
{
    hs_buf_t *buf = hs_buf_from(s, strlen(s));
    assert_int_equal(hs_conn_send(conn, buf), 0);
    hs_buf_unref(buf);
}

static void server_read(hs_conn_t *conn, const char *data, size_t len)
{
    if (fx->scenario == S_CLOSE_IN_READ) {
        hs_conn_close(conn); /* inside our own read callback */
        hs_conn_close(conn);
        return;
    }
    hs_buf_t *buf = hs_buf_from(data, len); /* echo */
    hs_conn_send(conn, buf);
    hs_buf_unref(buf);
}

static void server_eof(hs_conn_t *conn, int status)
{
    fx->eofs++;
    fx->eof_status = status;
    hs_conn_close_after_flush(conn);
}

static void server_drain(hs_conn_t *conn)
{
    fx->drains++;
    if (fx->scenario == S_BIG || fx->scenario == S_VECTOR)
        hs_conn_close_after_flush(conn);
}

static hs_buf_t *block(uint32_t i)
{
    hs_buf_t *buf = hs_buf_new(1024);
    memset(buf->data, 'a' + i % 26, 1024);
    memcpy(buf->data, &i, sizeof(i));
    buf->len = 1024;
    return buf;
}

static void server_closed(hs_conn_t *conn)
{
    assert_ptr_equal(conn, fx->server_conn);
    fx->server_closes++;
}

static const hs_conn_handler_t handler = {.on_read = server_read,
                                          .on_eof = server_eof,
                                          .on_drain = server_drain,
                                          .on_close = server_closed};

static void timer_cb(hs_conn_t *conn)
{
    fx->timer_fires++;
    hs_conn_close_after_flush(conn);
}

static void accept_cb(hs_listener_t *listener, hs_conn_t *conn)
{
    fx->accepts++;
    fx->server_conn = conn;
    hs_conn_set_handler(conn, &handler, NULL);
    assert_true(strncmp(hs_conn_peer(conn), "127.0.0.1:", 10) == 0);
    assert_int_equal(hs_net_conn_count(fx->net), 1);
    switch (fx->scenario) {
    case S_BATCH:
        /* Sends in one iteration: one write call, however many buffers
         * (a subscriber's frames of a burst are one writev each). */
        send_str(conn, "a");
        send_str(conn, "bb");
        send_str(conn, "ccc");
        for (int i = 0; i < BATCH_SMALL; i++)
            send_str(conn, "d");
        assert_int_equal(hs_conn_pending(conn), 6 + BATCH_SMALL);
        assert_int_equal(fx->net->write_calls, 0); /* only queued so far */
        hs_conn_close_after_flush(conn);
        break;
    case S_BIG:
    case S_RESET:
        for (uint32_t i = 0; i < BIG_BLOCKS; i++) {
            hs_buf_t *buf = block(i);
            assert_int_equal(hs_conn_send(conn, buf), 0);
            hs_buf_unref(buf);
        }
        break;
    case S_VECTOR: {
        /* The same 8 MiB as vectors of 1 to 100 blocks, flat blocks
         * between them, some queued with the caller's reference taken
         * over: written in part, over many waits for a writable socket,
         * the reader late. */
        hs_buf_t *parts[110]; /* sizes 1, 8, … 106 */
        uint32_t i = 0;
        for (unsigned size = 1; i < BIG_BLOCKS; size = size % 100 + 7) {
            unsigned n = 0;
            while (n < size && i < BIG_BLOCKS)
                parts[n++] = block(i++);
            hs_buf_t *vec = hs_buf_vector(parts, n);
            assert_int_equal(vec->nparts, n);
            assert_int_equal(vec->len, (size_t)n * 1024);
            for (unsigned k = 0; k < n; k++)
                hs_buf_unref(parts[k]); /* the vector holds them */
            assert_int_equal(n % 2 ? hs_conn_send(conn, vec) : hs_conn_send_taking(conn, vec, true),
                             0);
            if (n % 2)
                hs_buf_unref(vec);
            if (i < BIG_BLOCKS) {
                hs_buf_t *flat = block(i++);
                assert_int_equal(hs_conn_send(conn, flat), 0);
                hs_buf_unref(flat);
            }
        }
        break;
    }
    case S_BOUND: {
        hs_conn_set_max_pending(conn, 100);
        hs_buf_t *buf = hs_buf_from("0123456789", 10);
        for (int i = 0; i < 10; i++)
            assert_int_equal(hs_conn_send(conn, buf), 0);
        assert_int_equal(hs_conn_send(conn, buf), HS_ETOOBIG);
        assert_int_equal(hs_conn_pending(conn), 100);
        assert_int_equal(hs_conn_send_always(conn, buf), 0);
        assert_int_equal(hs_conn_pending(conn), 110);
        hs_buf_unref(buf);
        hs_buf_t *late = hs_buf_from("x", 1);
        hs_conn_close(conn);
        assert_true(hs_conn_closing(conn));
        assert_int_equal(hs_conn_send(conn, late), HS_ECLOSED);
        assert_int_equal(hs_conn_send_always(conn, late), HS_ECLOSED);
        hs_conn_close(conn); /* idempotent, and safe with the rest */
        hs_conn_close_after_flush(conn);
        hs_conn_pause_read(conn);
        hs_conn_resume_read(conn);
        hs_conn_timer_start(conn, 1, timer_cb);
        hs_buf_unref(late);
        break;
    }
    case S_TIMER:
        hs_conn_timer_start(conn, 1000, timer_cb);
        hs_conn_timer_start(conn, 10, timer_cb); /* replaces the first */
        break;
    case S_TIMER_CLOSE:
        hs_conn_timer_start(conn, 5, timer_cb);
        hs_conn_close(conn);
        hs_conn_timer_start(conn, 5, timer_cb); /* ignored: closing */
        break;
    default:
        break;
    }
    hs_listener_close(fx->listener);
}

/* ---- client side ------------------------------------------------------------- */

static void client_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    buf->base = malloc(size);
    buf->len = size;
}

static void client_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    if (n > 0) {
        fx->received = realloc(fx->received, fx->received_len + (size_t)n);
        memcpy(fx->received + fx->received_len, buf->base, (size_t)n);
        fx->received_len += (size_t)n;
        if (fx->scenario == S_ECHO && fx->received_len == 5)
            uv_shutdown(&fx->shutdown_req, s, NULL); /* the server sees EOF */
    } else if (n < 0) {
        fx->client_eof = true;
        uv_close((uv_handle_t *)s, NULL);
    }
    free(buf->base);
}

static void client_timer_cb(uv_timer_t *timer)
{
    if (fx->scenario == S_BIG || fx->scenario == S_VECTOR) {
        /* The socket buffers are full by now; the rest waits in the queue. */
        fx->max_pending_seen = hs_conn_pending(fx->server_conn);
        uv_read_start((uv_stream_t *)&fx->client, client_alloc, client_read);
    } else if (fx->scenario == S_RESET) {
        /* The server waits for room to write; the peer resets instead. */
        assert_true(fx->server_conn->flags & CONN_WAIT_WRITE);
        fx->client_eof = true;
        assert_int_equal(uv_tcp_close_reset(&fx->client, NULL), 0);
    } else if (fx->scenario == S_BACKOFF) {
        connect_client();
    }
    uv_close((uv_handle_t *)timer, NULL);
}

static void client_connected(uv_connect_t *req, int status)
{
    if (fx->scenario == S_BACKOFF && fx->connect_attempts == 1) {
        /* The listener is paused: refused; try again after the pause. */
        assert_int_equal(status, UV_ECONNREFUSED);
        fx->refused++;
        uv_close((uv_handle_t *)&fx->client, NULL);
        uv_timer_init(&fx->loop, &fx->client_timer);
        uv_timer_start(&fx->client_timer, client_timer_cb, 250, 0);
        return;
    }
    assert_int_equal(status, 0);
    if (fx->scenario == S_BIG || fx->scenario == S_VECTOR || fx->scenario == S_RESET) {
        uv_timer_init(&fx->loop, &fx->client_timer);
        uv_timer_start(&fx->client_timer, client_timer_cb, 200, 0);
    } else {
        uv_read_start(req->handle, client_alloc, client_read);
    }
    if (fx->scenario == S_CLOSE_IN_READ || fx->scenario == S_ECHO) {
        static char hello[] = "hello";
        uv_buf_t b = uv_buf_init(hello, 5);
        uv_write(&fx->write_req, req->handle, &b, 1, NULL);
    }
    if (fx->scenario == S_BACKOFF)
        uv_shutdown(&fx->shutdown_req, req->handle, NULL);
}

static void connect_client(void)
{
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", hs_listener_port(fx->listener), &addr);
    uv_tcp_init(&fx->loop, &fx->client);
    fx->connect_attempts++;
    uv_tcp_connect(&fx->connect_req, &fx->client, (const struct sockaddr *)&addr, client_connected);
}

static void run_scenario(int scenario)
{
    fx = calloc(1, sizeof(*fx));
    fx->scenario = scenario;
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    fx->net = hs_net_new(&fx->loop);
    assert_int_equal(hs_listener_start(fx->net, "127.0.0.1:0", accept_cb, NULL, &fx->listener), 0);
    assert_true(hs_listener_port(fx->listener) > 0);
    if (scenario == S_BACKOFF)
        hs_listener__simulate_emfile(fx->listener);
    connect_client();
    uv_run(&fx->loop, UV_RUN_DEFAULT); /* ends when everything is closed */
    assert_int_equal(fx->accepts, 1);
    assert_int_equal(fx->server_closes, 1);
    assert_true(fx->client_eof);
    assert_int_equal(hs_net_conn_count(fx->net), 0);
    fx->write_calls = fx->net->write_calls;
    hs_net_close(fx->net);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
}

static void finish(void)
{
    free(fx->received);
    free(fx);
    fx = NULL;
}

/* ---- tests ---------------------------------------------------------------------- */

static void test_echo_and_eof(void **state)
{
    run_scenario(S_ECHO);
    assert_int_equal(fx->received_len, 5);
    assert_memory_equal(fx->received, "hello", 5);
    assert_int_equal(fx->eofs, 1);
    assert_int_equal(fx->eof_status, UV_EOF);
    finish();
}

static void test_sends_batched(void **state)
{
    run_scenario(S_BATCH);
    assert_int_equal(fx->received_len, 6 + BATCH_SMALL);
    assert_memory_equal(fx->received, "abbccc", 6);
    for (int i = 0; i < BATCH_SMALL; i++)
        assert_int_equal(fx->received[6 + i], 'd');
    assert_int_equal(fx->write_calls, 1);
    finish();
}

static void assert_blocks_in_order(void)
{
    assert_int_equal(fx->received_len, (size_t)BIG_BLOCKS * 1024);
    for (uint32_t i = 0; i < BIG_BLOCKS; i++) {
        const char *b = fx->received + (size_t)i * 1024;
        uint32_t seq;
        memcpy(&seq, b, sizeof(seq));
        assert_int_equal(seq, i);
        assert_int_equal(b[1023], 'a' + (int)(i % 26));
    }
}

static void test_vectors_slow_reader(void **state)
{
    run_scenario(S_VECTOR);
    assert_true(fx->max_pending_seen > 0);
    assert_int_equal(fx->drains, 1);
    assert_blocks_in_order();
    finish();
}

/* A vector holds its parts: they live until its last reference goes, taken
 * and dropped n at a time (ASan and LeakSanitizer check the frees). */
static void test_vector_holds_its_parts(void **state)
{
    (void)state;
    hs_buf_t *parts[3] = {hs_buf_from("ab", 2), hs_buf_from("cde", 3), hs_buf_from("f", 1)};
    hs_buf_t *vec = hs_buf_vector(parts, 3);
    for (int i = 0; i < 3; i++)
        hs_buf_unref(parts[i]);
    assert_int_equal(vec->len, 6);
    assert_memory_equal(hs_buf_parts(vec)[1]->data, "cde", 3);
    hs_buf_ref_n(vec, 2);
    hs_buf_unref_n(vec, 3); /* the last reference frees it and its parts */
}

static void test_big_queue_slow_reader(void **state)
{
    run_scenario(S_BIG);
    assert_true(fx->max_pending_seen > 0); /* the queue was really used */
    assert_int_equal(fx->drains, 1);
    assert_blocks_in_order();
    finish();
}

/* A peer that resets while the server waits for its socket to take more:
 * the connection ends as a failed read (on_eof with the reset, then
 * closed), once, its queue released. */
static void test_reset_while_waiting_to_write(void **state)
{
    run_scenario(S_RESET);
    assert_int_equal(fx->eofs, 1);
    assert_int_equal(fx->eof_status, UV_ECONNRESET);
    finish();
}

static void test_pending_bound(void **state)
{
    run_scenario(S_BOUND);
    /* hs_conn_close dropped what was queued: nothing or a prefix arrived. */
    assert_true(fx->received_len <= 110);
    assert_int_equal(fx->timer_fires, 0);
    finish();
}

static void test_close_inside_read(void **state)
{
    run_scenario(S_CLOSE_IN_READ);
    assert_int_equal(fx->received_len, 0);
    finish();
}

static void test_timer_fires_once(void **state)
{
    run_scenario(S_TIMER);
    assert_int_equal(fx->timer_fires, 1);
    finish();
}

static void test_timer_not_after_close(void **state)
{
    run_scenario(S_TIMER_CLOSE);
    assert_int_equal(fx->timer_fires, 0);
    finish();
}

static void test_emfile_backoff(void **state)
{
    run_scenario(S_BACKOFF);
    assert_int_equal(fx->refused, 1);
    assert_int_equal(fx->connect_attempts, 2);
    finish();
}

static void noop_accept(hs_listener_t *l, hs_conn_t *conn) {}

static void test_listener_addresses(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    hs_net_t *net = hs_net_new(&loop);
    hs_listener_t *l = NULL;
    const char *bad[] = {"",       "1234", "127.0.0.1", "127.0.0.1:",       "127.0.0.1:x",
                         ":70000", "[::1", "[::1]0",    "nohost.example:80"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(hs_listener_start(net, bad[i], noop_accept, NULL, &l), HS_EINVAL);
    const char *good[] = {":0", "*:0", "localhost:0", "127.0.0.1:0", "0.0.0.0:0"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        int x = 42;
        assert_int_equal(hs_listener_start(net, good[i], noop_accept, &x, &l), 0);
        assert_true(hs_listener_port(l) > 0);
        assert_ptr_equal(hs_listener_data(l), &x);
        hs_listener_close(l);
    }
    /* IPv6 loopback where the host has it. */
    if (hs_listener_start(net, "[::1]:0", noop_accept, NULL, &l) == 0)
        hs_listener_close(l);
    /* The port is taken. */
    assert_int_equal(hs_listener_start(net, "127.0.0.1:0", noop_accept, NULL, &l), 0);
    char addr[32];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", hs_listener_port(l));
    hs_listener_t *l2;
    assert_int_equal(hs_listener_start(net, addr, noop_accept, NULL, &l2), UV_EADDRINUSE);
    hs_listener_close(l);
    hs_net_close(net);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* ---- the cost of an idle connection ------------------------------------------ */

/* The budget of docs/performance.md ("Memory per connection"): libuv's
 * uv_poll_t (160 bytes here) and 152 of ours, a 320-byte malloc chunk. It
 * was 408 with libuv's uv_tcp_t (248 bytes) in place of the poll; 440 before
 * the parallel flush's outcome shared a word with the in-flight write's,
 * max_pending took 32 bits, the ring's pointer shared the inline slots' room
 * and the handler's data moved into the handle's own data field; 872 with a
 * uv_timer_t, a uv_write_t and a uv_shutdown_t embedded and the peer as
 * text. Raise it only with the reason written there. */
#define IDLE_CONN_BUDGET 312

static void test_idle_conn_size(void **state)
{
    assert_true(sizeof(struct hs_conn) <= IDLE_CONN_BUDGET);
}

/* Up to HS_CONN_INLINE_SLOTS queued buffers need no ring of their own. */
static void test_short_queue_inline(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    hs_net_t *net = hs_net_new(&loop);
    int fds[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    hs_conn_t *conn = hs_conn__new(net, fds[0]);
    hs_buf_t *buf = hs_buf_from("abc", 3);
    for (int i = 0; i < HS_CONN_INLINE_SLOTS; i++)
        assert_int_equal(hs_conn_send(conn, buf), 0);
    assert_ptr_equal(hs_conn__slots(conn), conn->inline_out);
    assert_int_equal(hs_conn_send(conn, buf), 0); /* one more: a ring */
    assert_ptr_not_equal(hs_conn__slots(conn), conn->inline_out);
    assert_int_equal(conn->out_count, HS_CONN_INLINE_SLOTS + 1);
    hs_conn__consume(conn, 3 * (HS_CONN_INLINE_SLOTS + 1));
    assert_int_equal(conn->out_count, 0);
    assert_int_equal(hs_conn_pending(conn), 0);
    hs_buf_unref(buf);
    hs_conn_close(conn);
    close(fds[1]);
    uv_run(&loop, UV_RUN_DEFAULT); /* the connection goes before the net */
    hs_net_close(net);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* ---- the order of a flush (net.c) ----------------------------------------------- */

#define WAVE 80

/* A connection on one end of a socket pair; the other end is never read. */
static hs_conn_t *paired_conn(hs_net_t *net, int *peer)
{
    int fds[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    hs_conn_t *conn = hs_conn__new(net, fds[0]);
    assert_non_null(conn);
    *peer = fds[1];
    return conn;
}

/* ---- the wait for a writable socket (conn.c) -------------------------------------- */

static hs_conn_t *wait_b;
static bool wait_sent; /* bytes queued to b since its last on_drain */
static int wait_drains, wait_spurious;

static void wait_a_read(hs_conn_t *conn, const char *data, size_t len)
{
    (void)conn, (void)data, (void)len;
    send_str(wait_b, "from a's read");
    wait_sent = true;
}

static void wait_b_drain(hs_conn_t *conn)
{
    (void)conn;
    wait_drains++;
    if (!wait_sent)
        wait_spurious++; /* drained twice with nothing sent between */
    wait_sent = false;
}

static const hs_conn_handler_t wait_a_handler = {.on_read = wait_a_read};
static const hs_conn_handler_t wait_b_handler = {.on_drain = wait_b_drain};

/* Reads what the peer end has, until it has nothing. */
static void drain_peer(int fd)
{
    char sink[65536];
    while (recv(fd, sink, sizeof(sink), MSG_DONTWAIT) > 0) {
    }
}

/* b waits for room to write; in one poll, a's read queues a frame to b
 * (which puts b on the net's flush list), then b's socket is writable and
 * b's flush writes everything. The flush list's pass after it must not
 * find b there with an empty queue and run on_drain a second time. */
static void test_writable_flush_leaves_the_list(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    hs_net_t *net = hs_net_new(&loop);
    int pa, pb;
    hs_conn_t *a = paired_conn(net, &pa);
    wait_b = paired_conn(net, &pb);
    hs_conn_set_handler(a, &wait_a_handler, NULL);
    hs_conn_set_handler(wait_b, &wait_b_handler, NULL);
    hs_conn__start(a, NULL);
    hs_buf_t *chunk = hs_buf_new(1024);
    memset(chunk->data, 'b', 1024);
    chunk->len = 1024;
    for (int i = 0; i < 2048 && !(wait_b->flags & CONN_WAIT_WRITE); i++) {
        for (int k = 0; k < 64; k++)
            assert_int_equal(hs_conn_send(wait_b, chunk), 0);
        uv_run(&loop, UV_RUN_NOWAIT);
    }
    hs_buf_unref(chunk);
    assert_true(wait_b->flags & CONN_WAIT_WRITE);
    /* What no write started on goes; at most one buffer written in part
     * stays, so the next flush empties the queue. */
    hs_conn_discard_unsent(wait_b);
    wait_sent = true;
    wait_drains = wait_spurious = 0; /* the fill drained b a few times */
    /* a readable first, then b writable: one poll sees both, in that order */
    assert_int_equal(write(pa, "x", 1), 1);
    drain_peer(pb);
    uv_run(&loop, UV_RUN_NOWAIT);
    uv_run(&loop, UV_RUN_NOWAIT);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_true(wait_drains >= 1);
    assert_int_equal(wait_spurious, 0);
    assert_int_equal(hs_conn_pending(wait_b), 0);
    hs_conn_close(a);
    hs_conn_close(wait_b);
    close(pa);
    close(pb);
    uv_run(&loop, UV_RUN_DEFAULT);
    hs_net_close(net);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* An answer is written before a wave, whatever their order; the wave goes
 * HS_NET_FANOUT_PER_ITERATION connections per iteration, oldest first, so
 * the loop reads between the parts; once the oldest has fallen behind, the
 * rest of the wave goes in one iteration. */
static void test_fanout_in_parts(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    hs_net_t *net = hs_net_new(&loop);
    hs_conn_t *wave[WAVE];
    int peers[WAVE + 1];
    hs_buf_t *frame = hs_buf_from("a frame of a message", 20);
    for (int i = 0; i < WAVE; i++) {
        wave[i] = paired_conn(net, &peers[i]);
        hs_conn_set_fanout(wave[i]);
        assert_int_equal(hs_conn_send(wave[i], frame), 0);
    }
    hs_conn_t *answer = paired_conn(net, &peers[WAVE]); /* queued last */
    assert_int_equal(hs_conn_send(answer, frame), 0);

    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(hs_conn_pending(answer), 0);
    for (int i = 0; i < WAVE; i++)
        assert_int_equal(hs_conn_pending(wave[i]), i < HS_NET_FANOUT_PER_ITERATION ? 0 : 20);

    /* The oldest left falls behind: all the rest goes at once. */
    hs_buf_t *big = hs_buf_new(HS_NET_FANOUT_BEHIND);
    big->len = HS_NET_FANOUT_BEHIND;
    memset(big->data, 'x', big->len);
    assert_int_equal(hs_conn_send(wave[HS_NET_FANOUT_PER_ITERATION], big), 0);
    uv_run(&loop, UV_RUN_NOWAIT);
    for (int i = HS_NET_FANOUT_PER_ITERATION + 1; i < WAVE; i++)
        assert_int_equal(hs_conn_pending(wave[i]), 0);
    assert_true(hs_conn_pending(wave[HS_NET_FANOUT_PER_ITERATION]) < HS_NET_FANOUT_BEHIND);

    hs_buf_unref(frame);
    hs_buf_unref(big);
    for (int i = 0; i < WAVE; i++)
        hs_conn_close(wave[i]);
    hs_conn_close(answer);
    uv_run(&loop, UV_RUN_DEFAULT);
    hs_net_close(net);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    for (int i = 0; i <= WAVE; i++)
        close(peers[i]);
}

/* ---- the connections' timers (timers.c) --------------------------------------- */

#define TIMED 6

typedef struct timers_fx {
    hs_conn_t *conns[TIMED];
    int order[16];
    int fired;
    uint64_t iteration, restart_iteration, refire_iteration;
    uv_check_t check;
} timers_fx_t;

static timers_fx_t *tfx;

static int conn_index(hs_conn_t *conn)
{
    for (int i = 0; i < TIMED; i++)
        if (tfx->conns[i] == conn)
            return i;
    fail();
    return -1;
}

static void check_cb(uv_check_t *check)
{
    (void)check;
    tfx->iteration++;
}

static void timed_cb(hs_conn_t *conn)
{
    int i = conn_index(conn);
    tfx->order[tfx->fired++] = i;
    if (i == 1 && tfx->restart_iteration == 0) {
        /* Restarted at once from its own callback: not in this run. */
        tfx->restart_iteration = tfx->iteration + 1;
        hs_conn_timer_start(conn, 0, timed_cb);
    } else if (i == 1) {
        tfx->refire_iteration = tfx->iteration + 1;
    }
}

static void test_timers_order(void **state)
{
    tfx = calloc(1, sizeof(*tfx));
    uv_loop_t loop;
    uv_loop_init(&loop);
    uv_check_init(&loop, &tfx->check);
    uv_check_start(&tfx->check, check_cb);
    uv_unref((uv_handle_t *)&tfx->check);
    hs_net_t *net = hs_net_new(&loop);
    int peers[TIMED];
    for (int i = 0; i < TIMED; i++)
        tfx->conns[i] = paired_conn(net, &peers[i]);
    hs_conn_timer_start(tfx->conns[0], 300, timed_cb);
    hs_conn_timer_start(tfx->conns[1], 40, timed_cb);
    hs_conn_timer_start(tfx->conns[2], 40, timed_cb); /* same deadline: after 1 */
    hs_conn_timer_start(tfx->conns[3], 80, timed_cb);
    hs_conn_timer_start(tfx->conns[4], 20, timed_cb);
    hs_conn_timer_stop(tfx->conns[4]);                 /* never fires */
    hs_conn_timer_start(tfx->conns[0], 120, timed_cb); /* replaces 300 */
    hs_conn_timer_start(tfx->conns[5], 10, timed_cb);
    hs_conn_close(tfx->conns[5]); /* closing: never fires */
    uv_run(&loop, UV_RUN_DEFAULT);
    const int expected[] = {1, 2, 1, 3, 0};
    assert_int_equal(tfx->fired, 5);
    /* 1's restart may fire before or after 2 and 3 depending on how late the
     * run is; it comes after 2 (same run) and never in the run that
     * restarted it. */
    assert_int_equal(tfx->order[0], 1);
    assert_int_equal(tfx->order[1], 2);
    assert_true(tfx->refire_iteration >= tfx->restart_iteration);
    int seen[TIMED] = {0};
    for (int i = 0; i < tfx->fired; i++)
        seen[tfx->order[i]]++;
    for (int i = 0; i < 5; i++)
        seen[expected[i]]--;
    for (int i = 0; i < TIMED; i++)
        assert_int_equal(seen[i], 0);
    int at[TIMED] = {0};
    for (int i = 0; i < tfx->fired; i++)
        at[tfx->order[i]] = i;
    assert_true(at[3] < at[0]); /* 80 ms before 120 ms */
    for (int i = 0; i < TIMED - 1; i++)
        hs_conn_close(tfx->conns[i]);
    uv_run(&loop, UV_RUN_DEFAULT); /* the connections go before the net */
    for (int i = 0; i < TIMED; i++)
        close(peers[i]);
    hs_net_close(net);
    uv_close((uv_handle_t *)&tfx->check, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    free(tfx);
}

/* Many timers: each fires once, at or after its deadline, in deadline order. */
#define MANY 500

static hs_conn_t *many[MANY];
static int many_peers[MANY];
static uint64_t many_due[MANY], many_last_due;
static int many_fired;

static void many_cb(hs_conn_t *conn)
{
    size_t i = 0;
    while (many[i] != conn)
        i++;
    assert_true(uv_now(conn->net->loop) >= many_due[i]);
    assert_true(many_due[i] >= many_last_due);
    many_last_due = many_due[i];
    many_fired++;
    hs_conn_close(conn);
}

static void test_timers_many(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    hs_net_t *net = hs_net_new(&loop);
    for (size_t i = 0; i < MANY; i++) {
        many[i] = paired_conn(net, &many_peers[i]);
        uint64_t ms = (i * 7919) % 97; /* shuffled deadlines, many equal */
        many_due[i] = uv_now(&loop) + ms;
        hs_conn_timer_start(many[i], ms, many_cb);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(many_fired, MANY);
    assert_int_equal(net->timer_count, 0);
    for (size_t i = 0; i < MANY; i++)
        close(many_peers[i]);
    hs_net_close(net);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_echo_and_eof),
        cmocka_unit_test(test_sends_batched),
        cmocka_unit_test(test_big_queue_slow_reader),
        cmocka_unit_test(test_pending_bound),
        cmocka_unit_test(test_close_inside_read),
        cmocka_unit_test(test_timer_fires_once),
        cmocka_unit_test(test_timer_not_after_close),
        cmocka_unit_test(test_emfile_backoff),
        cmocka_unit_test(test_listener_addresses),
        cmocka_unit_test(test_vectors_slow_reader),
        cmocka_unit_test(test_vector_holds_its_parts),
        cmocka_unit_test(test_idle_conn_size),
        cmocka_unit_test(test_short_queue_inline),
        cmocka_unit_test(test_fanout_in_parts),
        cmocka_unit_test(test_timers_order),
        cmocka_unit_test(test_timers_many),
        cmocka_unit_test(test_reset_while_waiting_to_write),
        cmocka_unit_test(test_writable_flush_leaves_the_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
