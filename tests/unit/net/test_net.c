/* Connections on a real loop and real loopback sockets: queued sends arrive
 * whole and in order (also past the socket buffer), the pending bound
 * refuses without queuing, close-after-flush delivers everything before EOF,
 * closing inside on_read is safe, the timer fires once, on_close runs
 * exactly once, and the loop closes with no handle left. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "net/net.h"

typedef struct fixture {
    uv_loop_t loop;
    hs_net_t *net;
    hs_listener_t *listener;
    hs_conn_t *server_conn;
    int server_closes;
    int timer_fires;
    /* the client side */
    uv_tcp_t client;
    uv_connect_t connect_req;
    char *received;
    size_t received_len;
    bool client_eof;
    int scenario;
} fixture_t;

enum { SEND_MANY, BOUND, CLOSE_IN_READ, TIMER };

static fixture_t *fx;

static void server_read(hs_conn_t *conn, const char *data, size_t len)
{
    (void)data;
    (void)len;
    if (fx->scenario == CLOSE_IN_READ)
        hs_conn_close(conn); /* inside our own read callback */
}

static void server_closed(hs_conn_t *conn)
{
    (void)conn;
    fx->server_closes++;
}

static const hs_conn_handler_t handler = {.on_read = server_read, .on_close = server_closed};

static void timer_cb(hs_conn_t *conn)
{
    fx->timer_fires++;
    hs_conn_close_after_flush(conn);
}

static void accept_cb(hs_listener_t *listener, hs_conn_t *conn)
{
    (void)listener;
    fx->server_conn = conn;
    hs_conn_set_handler(conn, &handler, NULL);
    if (fx->scenario == SEND_MANY) {
        /* 4 MiB in 4096 sends of 1 KiB: more than a socket buffer holds. */
        for (int i = 0; i < 4096; i++) {
            hs_buf_t *buf = hs_buf_new(1024);
            memset(buf->data, 'a' + i % 26, 1024);
            buf->len = 1024;
            assert_int_equal(hs_conn_send(conn, buf), 0);
            hs_buf_unref(buf);
        }
        hs_conn_close_after_flush(conn);
    } else if (fx->scenario == BOUND) {
        hs_conn_set_max_pending(conn, 100);
        hs_buf_t *buf = hs_buf_from("0123456789", 10);
        for (int i = 0; i < 10; i++)
            assert_int_equal(hs_conn_send(conn, buf), 0);
        assert_int_equal(hs_conn_send(conn, buf), HS_ETOOBIG);
        assert_int_equal(hs_conn_pending(conn), 100);
        assert_int_equal(hs_conn_send_always(conn, buf), 0);
        hs_buf_unref(buf);
        hs_conn_close_after_flush(conn);
        hs_buf_t *late = hs_buf_from("x", 1);
        hs_conn_close(conn);
        assert_int_equal(hs_conn_send(conn, late), HS_ECLOSED);
        hs_conn_close(conn); /* idempotent */
        hs_buf_unref(late);
    } else if (fx->scenario == TIMER) {
        hs_conn_timer_start(conn, 10, timer_cb);
    }
    hs_listener_close(fx->listener);
}

static void client_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    (void)h;
    buf->base = malloc(size);
    buf->len = size;
}

static void client_closed(uv_handle_t *h)
{
    (void)h;
}

static void client_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    if (n > 0) {
        fx->received = realloc(fx->received, fx->received_len + (size_t)n);
        memcpy(fx->received + fx->received_len, buf->base, (size_t)n);
        fx->received_len += (size_t)n;
    } else if (n < 0) {
        fx->client_eof = true;
        uv_close((uv_handle_t *)s, client_closed);
    }
    free(buf->base);
}

static uv_write_t client_write_req;
static void client_written(uv_write_t *req, int status)
{
    (void)req;
    (void)status;
}

static void client_connected(uv_connect_t *req, int status)
{
    assert_int_equal(status, 0);
    uv_read_start(req->handle, client_alloc, client_read);
    if (fx->scenario == CLOSE_IN_READ) {
        static char hello[] = "hello";
        uv_buf_t b = uv_buf_init(hello, 5);
        uv_write(&client_write_req, req->handle, &b, 1, client_written);
    }
}

static void run_scenario(int scenario)
{
    fx = calloc(1, sizeof(*fx));
    fx->scenario = scenario;
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    fx->net = hs_net_new(&fx->loop);
    assert_int_equal(hs_listener_start(fx->net, "127.0.0.1:0", accept_cb, NULL, &fx->listener), 0);
    int port = hs_listener_port(fx->listener);
    assert_true(port > 0);
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", port, &addr);
    uv_tcp_init(&fx->loop, &fx->client);
    uv_tcp_connect(&fx->connect_req, &fx->client, (const struct sockaddr *)&addr, client_connected);
    uv_run(&fx->loop, UV_RUN_DEFAULT); /* ends when the client saw EOF and all closed */
    assert_int_equal(fx->server_closes, 1);
    assert_true(fx->client_eof);
    assert_int_equal(hs_net_conn_count(fx->net), 0);
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

static void test_many_sends_arrive_in_order(void **state)
{
    (void)state;
    run_scenario(SEND_MANY);
    assert_int_equal(fx->received_len, 4096 * 1024);
    for (size_t i = 0; i < fx->received_len; i += 1024)
        assert_int_equal(fx->received[i], 'a' + (int)(i / 1024) % 26);
    finish();
}

static void test_pending_bound(void **state)
{
    (void)state;
    run_scenario(BOUND);
    /* hs_conn_close dropped what was queued: nothing or a prefix arrived. */
    assert_true(fx->received_len <= 110);
    finish();
}

static void test_close_inside_read(void **state)
{
    (void)state;
    run_scenario(CLOSE_IN_READ);
    assert_int_equal(fx->received_len, 0);
    finish();
}

static void test_timer_fires_once(void **state)
{
    (void)state;
    run_scenario(TIMER);
    assert_int_equal(fx->timer_fires, 1);
    finish();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_many_sends_arrive_in_order),
        cmocka_unit_test(test_pending_bound),
        cmocka_unit_test(test_close_inside_read),
        cmocka_unit_test(test_timer_fires_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
