/* The HTTP server on a real loop (in a thread) and real loopback sockets,
 * driven by a blocking client in the test thread: exact answers, keep-alive,
 * pipelining in order with a late first answer, chunked bodies,
 * 100-continue, every limit and the status it produces, HEAD, deadlines,
 * query decoding, the upgrade hand-off (held behind pipelined requests, as
 * a takeover route's request is) and a graceful shutdown. The loop must
 * close with no handle left. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/error.h"
#include "http/server.h"

/* ---- the server, in its own thread ------------------------------------------ */

typedef struct server {
    uv_loop_t loop;
    uv_async_t stop_async;
    uv_timer_t drain_timer; /* waits for upgraded connections to go */
    hs_net_t *net;
    hs_router_t *router;
    hs_http_server_t *http;
    hs_http_limits_t limits;
    int port;
    pthread_t thread;
    uv_sem_t ready;
    atomic_int shutdown_calls;
    atomic_int slow_started;
    atomic_int upgraded_closes;
    bool stopped;
    int loop_close_rc;
} server_t;

static server_t *srv;

static void hello_route(hs_http_request_t *req, void *ctx)
{
    hs_http_respond(req, 200, "text/plain", NULL, "hello", 5);
}

static void echo_route(hs_http_request_t *req, void *ctx)
{
    size_t len;
    const char *body = hs_http_body(req, &len);
    hs_http_respond(req, 201, "application/octet-stream", NULL, body, len);
}

static void slow_timer_closed(uv_handle_t *handle)
{
    hs_free(handle);
}

static void slow_timer_cb(uv_timer_t *timer)
{
    hs_http_respond(timer->data, 200, "text/plain", NULL, "slow", 4);
    uv_close((uv_handle_t *)timer, slow_timer_closed);
}

/* Answers 50 ms later, from another callback. */
static void slow_route(hs_http_request_t *req, void *ctx)
{
    server_t *s = ctx;
    uv_timer_t *timer = hs_malloc(sizeof(*timer));
    uv_timer_init(&s->loop, timer);
    timer->data = req;
    uv_timer_start(timer, slow_timer_cb, 50, 0);
    atomic_store(&s->slow_started, 1);
}

static void item_route(hs_http_request_t *req, void *ctx)
{
    hs_http_respond_json(req, 200, json_pack("{s:s}", "id", hs_http_param(req, "id")));
}

static void query_route(hs_http_request_t *req, void *ctx)
{
    char text[256];
    const char *names[] = {"a", "b", "c", "d"};
    size_t used = 0;
    for (int i = 0; i < 4; i++) {
        const char *v = hs_http_query(req, names[i]);
        used += (size_t)snprintf(text + used, sizeof(text) - used, "%s%s=%s", i ? "|" : "",
                                 names[i], v ? v : "(none)");
    }
    hs_http_respond(req, 200, "text/plain", NULL, text, used);
}

static void echo_read(hs_conn_t *conn, const char *data, size_t len)
{
    hs_buf_t *buf = hs_buf_from(data, len);
    hs_conn_send(conn, buf);
    hs_buf_unref(buf);
}

static void echo_closed(hs_conn_t *conn)
{
    server_t *s = hs_conn_data(conn);
    atomic_fetch_add(&s->upgraded_closes, 1);
}

static const hs_conn_handler_t echo_handler = {.on_read = echo_read, .on_close = echo_closed};

/* Switches to a trivial echo protocol. */
static void upgrade_route(hs_http_request_t *req, void *ctx)
{
    static const char switching[] = "HTTP/1.1 101 Switching Protocols\r\n\r\n";
    hs_buf_t *buf = hs_buf_from(switching, sizeof(switching) - 1);
    hs_conn_send_always(hs_http_request_conn(req), buf);
    hs_buf_unref(buf);
    hs_conn_t *conn = hs_http_upgrade(req);
    hs_conn_set_handler(conn, &echo_handler, ctx);
}

/* Takes over a plain request's connection, as an event stream does (a 200
 * head, then the echo protocol); registered with hs_router_add_takeover, so
 * the server holds the request until it may. */
static void stream_route(hs_http_request_t *req, void *ctx)
{
    if (!hs_http_can_take_over(req)) {
        hs_http_respond(req, 400, "text/plain", NULL, "too early", 9);
        return;
    }
    static const char ok[] = "HTTP/1.1 200 OK\r\n\r\n";
    hs_buf_t *buf = hs_buf_from(ok, sizeof(ok) - 1);
    hs_conn_send_always(hs_http_request_conn(req), buf);
    hs_buf_unref(buf);
    hs_conn_t *conn = hs_http_upgrade(req);
    hs_conn_set_handler(conn, &echo_handler, ctx);
}

static void drain_timer_closed(uv_handle_t *handle)
{
    server_t *s = handle->data;
    hs_net_close(s->net);
}

static void drain_cb(uv_timer_t *timer)
{
    server_t *s = timer->data;
    if (hs_net_conn_count(s->net) == 0) {
        uv_timer_stop(timer);
        uv_close((uv_handle_t *)timer, drain_timer_closed);
    }
}

static void shutdown_done(hs_http_server_t *http, void *data)
{
    server_t *s = data;
    atomic_fetch_add(&s->shutdown_calls, 1);
    uv_timer_start(&s->drain_timer, drain_cb, 0, 5);
}

static void stop_cb(uv_async_t *async)
{
    server_t *s = async->data;
    uv_close((uv_handle_t *)async, NULL);
    hs_http_server_shutdown(s->http, shutdown_done, s);
}

static void *server_main(void *arg)
{
    server_t *s = arg;
    uv_loop_init(&s->loop);
    s->net = hs_net_new(&s->loop);
    s->router = hs_router_new();
    hs_router_add(s->router, HTTP_GET, "/hello", hello_route, s);
    hs_router_add(s->router, HTTP_POST, "/echo", echo_route, s);
    hs_router_add(s->router, HTTP_GET, "/slow", slow_route, s);
    hs_router_add(s->router, HTTP_GET, "/items/{id}", item_route, s);
    hs_router_add(s->router, HTTP_GET, "/query", query_route, s);
    hs_router_add(s->router, HTTP_GET, "/up", upgrade_route, s);
    hs_router_add_takeover(s->router, HTTP_GET, "/stream", stream_route, s);
    s->http = hs_http_server_new(s->net, s->router, &s->limits, "test");
    if (hs_http_server_listen(s->http, "127.0.0.1:0") == 0)
        s->port = hs_http_server_port(s->http);
    uv_async_init(&s->loop, &s->stop_async, stop_cb);
    s->stop_async.data = s;
    uv_timer_init(&s->loop, &s->drain_timer);
    s->drain_timer.data = s;
    uv_sem_post(&s->ready);
    uv_run(&s->loop, UV_RUN_DEFAULT);
    hs_http_server_free(s->http);
    hs_router_free(s->router);
    s->loop_close_rc = uv_loop_close(&s->loop);
    return NULL;
}

static void test_limits(hs_http_limits_t *l)
{
    hs_http_limits_default(l);
    l->max_url = 1024;
    l->max_header_bytes = 4096;
    l->max_headers = 16;
    l->max_body = 1024;
    l->header_timeout_ms = 3000;
    l->body_timeout_ms = 3000;
    l->idle_timeout_ms = 5000;
}

static void start_with(const hs_http_limits_t *limits)
{
    srv = calloc(1, sizeof(*srv));
    srv->limits = *limits;
    uv_sem_init(&srv->ready, 0);
    assert_int_equal(pthread_create(&srv->thread, NULL, server_main, srv), 0);
    uv_sem_wait(&srv->ready);
    assert_true(srv->port > 0);
}

static void start(void)
{
    hs_http_limits_t limits;
    test_limits(&limits);
    start_with(&limits);
}

/* Graceful shutdown from the test thread; the loop must end clean. */
static void begin_stop(void)
{
    if (!srv->stopped)
        uv_async_send(&srv->stop_async);
    srv->stopped = true;
}

static void stop(void)
{
    begin_stop();
    pthread_join(srv->thread, NULL);
    assert_int_equal(atomic_load(&srv->shutdown_calls), 1);
    assert_int_equal(srv->loop_close_rc, 0);
    uv_sem_destroy(&srv->ready);
    free(srv);
    srv = NULL;
}

/* ---- the client --------------------------------------------------------------- */

typedef struct client {
    int fd;
    char buf[256 * 1024];
    size_t len;
} client_t;

typedef struct response {
    int status;
    char head[8192]; /* status line and headers, NUL-terminated */
    char body[65536];
    size_t body_len;
    char raw[80000]; /* the whole response as received */
    size_t raw_len;
} response_t;

static client_t *client_open(void)
{
    client_t *c = calloc(1, sizeof(*c));
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(c->fd >= 0);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)srv->port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(c->fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    return c;
}

static void client_close(client_t *c)
{
    close(c->fd);
    free(c);
}

static bool client_send(client_t *c, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

static void client_send_str(client_t *c, const char *s)
{
    assert_true(client_send(c, s, strlen(s)));
}

/* Reads more bytes; 0 at EOF (or reset), -1 on timeout. */
static ssize_t client_fill(client_t *c)
{
    assert_true(c->len < sizeof(c->buf));
    ssize_t n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK ? -1 : 0;
    c->len += (size_t)n;
    return n;
}

static void client_consume(client_t *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

/* Reads one response (a HEAD answer has no body whatever it announces). */
static void read_response(client_t *c, response_t *r, bool head)
{
    memset(r, 0, sizeof(*r));
    char *end;
    while ((end = memmem(c->buf, c->len, "\r\n\r\n", 4)) == NULL)
        assert_true(client_fill(c) > 0);
    size_t head_len = (size_t)(end - c->buf) + 4;
    assert_true(head_len < sizeof(r->head));
    memcpy(r->head, c->buf, head_len);
    assert_int_equal(sscanf(r->head, "HTTP/1.1 %d ", &r->status), 1);
    const char *cl = strcasestr(r->head, "\r\nContent-Length: ");
    if (cl && !head)
        r->body_len = strtoul(cl + 18, NULL, 10);
    assert_true(r->body_len < sizeof(r->body));
    while (c->len < head_len + r->body_len)
        assert_true(client_fill(c) > 0);
    memcpy(r->body, c->buf + head_len, r->body_len);
    r->raw_len = head_len + r->body_len;
    memcpy(r->raw, c->buf, r->raw_len);
    client_consume(c, r->raw_len);
}

/* The server closed the connection and sent nothing more. */
static void expect_eof(client_t *c)
{
    assert_int_equal(c->len, 0);
    assert_int_equal(client_fill(c), 0);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(unsigned ms)
{
    usleep(ms * 1000);
}

/* A one-request exchange on a new connection. */
static void exchange(const char *request, response_t *r)
{
    client_t *c = client_open();
    client_send_str(c, request);
    read_response(c, r, false);
    client_close(c);
}

static void assert_error_body(const response_t *r, const char *code)
{
    assert_non_null(strstr(r->head, "Content-Type: application/json\r\n"));
    char expected[128];
    snprintf(expected, sizeof(expected), "{\"error\":{\"code\":\"%s\",\"message\":\"", code);
    assert_int_equal(strncmp(r->body, expected, strlen(expected)), 0);
    assert_string_equal(r->body + r->body_len - 3, "\"}}");
}

static response_t *resp(void)
{
    static response_t r;
    return &r;
}

/* ---- tests ------------------------------------------------------------------------ */

static void test_get_exact_bytes(void **state)
{
    start();
    response_t *r = resp();
    exchange("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", r);
    static const char expected[] =
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello";
    assert_int_equal(r->raw_len, sizeof(expected) - 1);
    assert_memory_equal(r->raw, expected, r->raw_len);
    stop();
}

static void test_post_body_and_keep_alive(void **state)
{
    start();
    client_t *c = client_open();
    response_t *r = resp();
    client_send_str(c, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world");
    read_response(c, r, false);
    assert_int_equal(r->status, 201);
    assert_int_equal(r->body_len, 11);
    assert_memory_equal(r->body, "hello world", 11);
    assert_null(strstr(r->head, "Connection:"));
    /* The same connection serves a second request, sent in two pieces. */
    client_send_str(c, "GET /items/abc HTTP/1.1\r\nHo");
    sleep_ms(20);
    client_send_str(c, "st: x\r\n\r\n");
    read_response(c, r, false);
    assert_int_equal(r->status, 200);
    assert_string_equal(r->body, "{\"id\":\"abc\"}");
    client_close(c);
    stop();
}

static void test_pipelined_in_order(void **state)
{
    start();
    client_t *c = client_open();
    response_t *r = resp();
    /* The first answer comes 50 ms late, from a timer; the others at once. */
    client_send_str(c, "GET /slow HTTP/1.1\r\n\r\n"
                       "GET /nope HTTP/1.1\r\n\r\n"
                       "POST /echo HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
                       "GET /items/7 HTTP/1.1\r\n\r\n");
    read_response(c, r, false);
    assert_int_equal(r->status, 200);
    assert_string_equal(r->body, "slow");
    read_response(c, r, false);
    assert_int_equal(r->status, 404);
    read_response(c, r, false);
    assert_int_equal(r->status, 201);
    assert_string_equal(r->body, "abc");
    read_response(c, r, false);
    assert_int_equal(r->status, 200);
    assert_string_equal(r->body, "{\"id\":\"7\"}");
    /* And the connection is still usable. */
    client_send_str(c, "GET /hello HTTP/1.1\r\n\r\n");
    read_response(c, r, false);
    assert_string_equal(r->body, "hello");
    client_close(c);
    stop();
}

static void test_chunked_body(void **state)
{
    start();
    response_t *r = resp();
    exchange("POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
             "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
             r);
    assert_int_equal(r->status, 201);
    assert_string_equal(r->body, "hello world");
    stop();
}

static void test_expect_continue(void **state)
{
    start();
    client_t *c = client_open();
    response_t *r = resp();
    client_send_str(c, "POST /echo HTTP/1.1\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
    read_response(c, r, false);
    assert_int_equal(r->raw_len, 25);
    assert_memory_equal(r->raw, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    client_send_str(c, "hello");
    read_response(c, r, false);
    assert_int_equal(r->status, 201);
    assert_string_equal(r->body, "hello");
    client_close(c);

    /* Too large: 413 at once, no 100, and the connection closes. */
    c = client_open();
    client_send_str(c,
                    "POST /echo HTTP/1.1\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n");
    read_response(c, r, false);
    assert_int_equal(r->status, 413);
    assert_error_body(r, "payload_too_large");
    assert_non_null(strstr(r->head, "Connection: close\r\n"));
    expect_eof(c);
    client_close(c);
    stop();
}

static void test_body_limits(void **state)
{
    start();
    client_t *c = client_open();
    response_t *r = resp();
    client_send_str(c, "POST /echo HTTP/1.1\r\nContent-Length: 100000\r\n\r\n");
    read_response(c, r, false);
    assert_int_equal(r->status, 413);
    assert_error_body(r, "payload_too_large");
    expect_eof(c);
    client_close(c);

    /* A chunked body is counted while it is de-chunked. */
    c = client_open();
    client_send_str(c, "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
    char chunk[600];
    memset(chunk, 'x', sizeof(chunk));
    for (int i = 0; i < 2; i++) {
        client_send_str(c, "258\r\n"); /* 600 */
        client_send(c, chunk, sizeof(chunk));
        client_send_str(c, "\r\n");
    }
    read_response(c, r, false);
    assert_int_equal(r->status, 413);
    expect_eof(c);
    client_close(c);
    stop();
}

static void test_header_limits(void **state)
{
    start();
    response_t *r = resp();
    char request[8192];
    size_t n = (size_t)snprintf(request, sizeof(request), "GET /hello HTTP/1.1\r\n");
    for (int i = 0; i < 20; i++)
        n += (size_t)snprintf(request + n, sizeof(request) - n, "X-H%d: v\r\n", i);
    snprintf(request + n, sizeof(request) - n, "\r\n");
    exchange(request, r);
    assert_int_equal(r->status, 431);
    assert_error_body(r, "header_fields_too_large");

    /* One header larger than all headers may be. */
    n = (size_t)snprintf(request, sizeof(request), "GET /hello HTTP/1.1\r\nX-Big: ");
    memset(request + n, 'a', 5000);
    n += 5000;
    snprintf(request + n, sizeof(request) - n, "\r\n\r\n");
    exchange(request, r);
    assert_int_equal(r->status, 431);

    /* 16 headers are fine. */
    n = (size_t)snprintf(request, sizeof(request), "GET /hello HTTP/1.1\r\n");
    for (int i = 0; i < 16; i++)
        n += (size_t)snprintf(request + n, sizeof(request) - n, "X-H%d: v\r\n", i);
    snprintf(request + n, sizeof(request) - n, "\r\n");
    exchange(request, r);
    assert_int_equal(r->status, 200);
    stop();
}

static void test_long_target_is_431(void **state)
{
    start();
    response_t *r = resp();
    char request[4096];
    size_t n = (size_t)snprintf(request, sizeof(request), "GET /hello?q=");
    memset(request + n, 'a', 2000);
    n += 2000;
    snprintf(request + n, sizeof(request) - n, " HTTP/1.1\r\n\r\n");
    client_t *c = client_open();
    client_send_str(c, request);
    read_response(c, r, false);
    /* 431 with its own code, as docs/api.md says (not 414). */
    assert_int_equal(r->status, 431);
    assert_error_body(r, "request_line_too_large");
    expect_eof(c);
    client_close(c);
    stop();
}

static void test_garbage_is_400(void **state)
{
    start();
    client_t *c = client_open();
    response_t *r = resp();
    client_send_str(c, "BLAH\x01 / HTTP/1.1\r\n\r\n");
    read_response(c, r, false);
    assert_int_equal(r->status, 400);
    assert_error_body(r, "bad_request");
    assert_non_null(strstr(r->head, "Connection: close\r\n"));
    expect_eof(c);
    client_close(c);
    stop();
}

static void test_404_and_405(void **state)
{
    start();
    client_t *c = client_open();
    response_t *r = resp();
    client_send_str(c, "GET /nope HTTP/1.1\r\n\r\n");
    read_response(c, r, false);
    static const char not_found[] = "{\"error\":{\"code\":\"not_found\","
                                    "\"message\":\"no such path: /nope\"}}";
    assert_int_equal(r->status, 404);
    assert_string_equal(r->body, not_found);
    assert_non_null(strstr(r->head, "Content-Type: application/json\r\n"));

    /* 405 lists what the path takes; the connection stays open. */
    client_send_str(c, "PUT /hello/ HTTP/1.1\r\nContent-Length: 2\r\n\r\nxx");
    read_response(c, r, false);
    assert_int_equal(r->status, 405);
    assert_non_null(strstr(r->head, "\r\nAllow: GET, HEAD\r\n"));
    assert_error_body(r, "method_not_allowed");

    /* A path with bytes that are not UTF-8 still gets a valid JSON body. */
    client_send_str(c, "GET /\xc3\x28 HTTP/1.1\r\n\r\n");
    read_response(c, r, false);
    assert_int_equal(r->status, 404);
    assert_string_equal(r->body,
                        "{\"error\":{\"code\":\"not_found\",\"message\":\"no such path: /?(\"}}");
    client_close(c);
    stop();
}

static void test_head_has_no_body(void **state)
{
    start();
    client_t *c = client_open();
    response_t *r = resp();
    client_send_str(c, "HEAD /hello HTTP/1.1\r\n\r\nGET /hello HTTP/1.1\r\n\r\n");
    read_response(c, r, true);
    assert_int_equal(r->status, 200);
    assert_string_equal(r->head,
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n");
    /* The next bytes are the GET answer: the HEAD one had no body. */
    read_response(c, r, false);
    assert_string_equal(r->body, "hello");
    client_close(c);
    stop();
}

static void test_slowloris_dropped(void **state)
{
    hs_http_limits_t limits;
    test_limits(&limits);
    limits.header_timeout_ms = 200;
    start_with(&limits);
    client_t *c = client_open();
    static const char request[] =
        "GET /hello HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    uint64_t t0 = now_ms();
    for (size_t i = 0; i < sizeof(request) - 1; i++) {
        if (!client_send(c, request + i, 1))
            break;
        /* Stop once the server answered. */
        struct timeval tv = {.tv_usec = 40000};
        setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        if (client_fill(c) >= 0)
            break;
    }
    uint64_t elapsed = now_ms() - t0;
    struct timeval tv = {.tv_sec = 5};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    response_t *r = resp();
    read_response(c, r, false);
    assert_int_equal(r->status, 408);
    assert_error_body(r, "request_timeout");
    expect_eof(c);
    assert_true(elapsed >= 150);
    assert_true(elapsed < 1500);
    client_close(c);
    stop();
}

static void test_idle_timeout(void **state)
{
    hs_http_limits_t limits;
    test_limits(&limits);
    limits.idle_timeout_ms = 100;
    start_with(&limits);
    client_t *c = client_open();
    response_t *r = resp();
    client_send_str(c, "GET /hello HTTP/1.1\r\n\r\n");
    read_response(c, r, false);
    uint64_t t0 = now_ms();
    expect_eof(c); /* closed without a word */
    assert_true(now_ms() - t0 < 1500);
    client_close(c);
    stop();
}

static void test_connection_close_and_http10(void **state)
{
    start();
    client_t *c = client_open();
    response_t *r = resp();
    client_send_str(c, "GET /hello HTTP/1.1\r\nConnection: close\r\n\r\n");
    read_response(c, r, false);
    assert_int_equal(r->status, 200);
    assert_non_null(strstr(r->head, "\r\nConnection: close\r\n"));
    expect_eof(c);
    client_close(c);

    c = client_open();
    client_send_str(c, "GET /hello HTTP/1.0\r\n\r\n");
    read_response(c, r, false);
    assert_non_null(strstr(r->head, "\r\nConnection: close\r\n"));
    expect_eof(c);
    client_close(c);

    /* HTTP/1.0 with keep-alive: said so in the answer, and kept. */
    c = client_open();
    client_send_str(c, "GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    read_response(c, r, false);
    assert_non_null(strstr(r->head, "\r\nConnection: keep-alive\r\n"));
    client_send_str(c, "GET /hello HTTP/1.0\r\n\r\n");
    read_response(c, r, false);
    assert_string_equal(r->body, "hello");
    expect_eof(c);
    client_close(c);
    stop();
}

static void test_max_requests_per_conn(void **state)
{
    hs_http_limits_t limits;
    test_limits(&limits);
    limits.max_requests_per_conn = 2;
    start_with(&limits);
    client_t *c = client_open();
    response_t *r = resp();
    client_send_str(c, "GET /hello HTTP/1.1\r\n\r\nGET /hello HTTP/1.1\r\n\r\n"
                       "GET /hello HTTP/1.1\r\n\r\n");
    read_response(c, r, false);
    assert_null(strstr(r->head, "Connection:"));
    read_response(c, r, false);
    assert_non_null(strstr(r->head, "\r\nConnection: close\r\n"));
    expect_eof(c); /* the third request is not answered */
    client_close(c);
    stop();
}

static void test_query_decoding(void **state)
{
    start();
    response_t *r = resp();
    exchange("GET /query?a=x%20y&b=c+d&c HTTP/1.1\r\n\r\n", r);
    assert_int_equal(r->status, 200);
    assert_string_equal(r->body, "a=x y|b=c d|c=|d=(none)");
    exchange("GET /query?a=%2Fp%3d&d=%e2%82%ac HTTP/1.1\r\n\r\n", r);
    assert_string_equal(r->body, "a=/p=|b=(none)|c=(none)|d=\xe2\x82\xac");
    exchange("GET /query?a=%zz HTTP/1.1\r\n\r\n", r);
    assert_int_equal(r->status, 400);
    assert_string_equal(
        r->body, "{\"error\":{\"code\":\"bad_request\",\"message\":\"invalid query string\"}}");
    stop();
}

static void test_upgrade_passes_leftover_bytes(void **state)
{
    start();
    client_t *c = client_open();
    response_t *r = resp();
    client_send_str(c, "GET /up HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nping");
    read_response(c, r, false);
    assert_int_equal(r->status, 101);
    while (c->len < 4)
        assert_true(client_fill(c) > 0);
    assert_int_equal(c->len, 4);
    assert_memory_equal(c->buf, "ping", 4);
    client_consume(c, 4);
    client_send_str(c, "GET /hello HTTP/1.1\r\n\r\n"); /* not HTTP any more */
    while (c->len < 23)
        assert_true(client_fill(c) > 0);
    assert_memory_equal(c->buf, "GET /hello HTTP/1.1\r\n\r\n", 23);
    client_close(c);

    /* An Upgrade header on a plain route: answered, and HTTP goes on. */
    c = client_open();
    client_send_str(c, "GET /hello HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n"
                       "GET /items/2 HTTP/1.1\r\n\r\n");
    read_response(c, r, false);
    assert_string_equal(r->body, "hello");
    read_response(c, r, false);
    assert_string_equal(r->body, "{\"id\":\"2\"}");
    client_close(c);
    stop();
    /* stop() waited for every connection, the upgraded one included */
}

/* Echoed bytes: the connection belongs to the echo protocol. */
static void expect_echo(client_t *c, const char *text)
{
    size_t len = strlen(text);
    client_send_str(c, text);
    while (c->len < len)
        assert_true(client_fill(c) > 0);
    assert_memory_equal(c->buf, text, len);
    client_consume(c, len);
}

static void test_takeover_waits_for_pipelined_answers(void **state)
{
    start();
    response_t *r = resp();
    /* A takeover route behind a late answer (and bytes behind it): held
     * until /slow is answered, then it has the connection and the bytes. */
    client_t *c = client_open();
    client_send_str(c, "GET /slow HTTP/1.1\r\n\r\nGET /stream?x=1 HTTP/1.1\r\n\r\nping");
    read_response(c, r, false);
    assert_int_equal(r->status, 200);
    assert_string_equal(r->body, "slow");
    read_response(c, r, false);
    assert_int_equal(r->status, 200);
    assert_int_equal(r->body_len, 0);
    while (c->len < 4)
        assert_true(client_fill(c) > 0);
    assert_memory_equal(c->buf, "ping", 4);
    client_consume(c, 4);
    expect_echo(c, "pong");
    client_close(c);

    /* An upgrade written last behind a late answer, nothing after it: it
     * goes once /slow is answered, not when more bytes come. */
    c = client_open();
    client_send_str(c, "GET /slow HTTP/1.1\r\n\r\n"
                       "GET /up HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n");
    read_response(c, r, false);
    assert_string_equal(r->body, "slow");
    read_response(c, r, false);
    assert_int_equal(r->status, 101);
    expect_echo(c, "ping");
    client_close(c);
    stop();
}

static void test_shutdown_answers_in_flight(void **state)
{
    start();
    client_t *idle = client_open();
    client_t *c = client_open();
    response_t *r = resp();
    client_send_str(c, "GET /slow HTTP/1.1\r\n\r\n");
    while (!atomic_load(&srv->slow_started))
        sleep_ms(1);
    begin_stop();
    /* The idle connection is closed at once; the busy one gets its answer,
     * marked as the last. */
    expect_eof(idle);
    read_response(c, r, false);
    assert_string_equal(r->body, "slow");
    assert_non_null(strstr(r->head, "\r\nConnection: close\r\n"));
    expect_eof(c);
    client_close(idle);
    client_close(c);
    stop();
}

/* Every listener's limits come from the settings: the defaults of the
 * settings table (not hs_http_limits_default's), and what flags say. */
static void test_limits_from_config(void **state)
{
    (void)state;
    hs_config_t cfg;
    hs_config_defaults(&cfg);
    hs_http_limits_t limits, builtin;
    hs_http_limits_from_config(&limits, &cfg);
    hs_http_limits_default(&builtin);
    assert_int_equal(limits.max_body, cfg.max_body);
    assert_int_equal(limits.body_timeout_ms, 10000); /* --body-timeout's default */
    assert_int_equal(limits.max_requests_per_conn, 10000);
    assert_int_equal(limits.max_url, builtin.max_url); /* no setting: the built-in bound */
    assert_int_equal(limits.max_headers, builtin.max_headers);
    assert_int_equal(limits.max_header_bytes, builtin.max_header_bytes);
    /* A listener given no configuration runs with the flags' defaults. */
    assert_int_equal(builtin.max_body, limits.max_body);
    assert_int_equal(builtin.header_timeout_ms, limits.header_timeout_ms);
    assert_int_equal(builtin.body_timeout_ms, limits.body_timeout_ms);
    assert_int_equal(builtin.idle_timeout_ms, limits.idle_timeout_ms);
    assert_int_equal(builtin.max_requests_per_conn, limits.max_requests_per_conn);
    hs_config_dispose(&cfg);

    char *argv[] = {"--max-body",     "2k", "--header-timeout",     "300ms", "--body-timeout", "2s",
                    "--idle-timeout", "5s", "--keepalive-requests", "7"};
    char err[256];
    hs_config_defaults(&cfg);
    assert_int_equal(hs_config_load(&cfg, 10, argv, err, sizeof(err)), 0);
    hs_http_limits_from_config(&limits, &cfg);
    assert_int_equal(limits.max_body, 2048);
    assert_int_equal(limits.header_timeout_ms, 300);
    assert_int_equal(limits.body_timeout_ms, 2000);
    assert_int_equal(limits.idle_timeout_ms, 5000);
    assert_int_equal(limits.max_requests_per_conn, 7);
    hs_config_dispose(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_exact_bytes),
        cmocka_unit_test(test_post_body_and_keep_alive),
        cmocka_unit_test(test_pipelined_in_order),
        cmocka_unit_test(test_chunked_body),
        cmocka_unit_test(test_expect_continue),
        cmocka_unit_test(test_body_limits),
        cmocka_unit_test(test_header_limits),
        cmocka_unit_test(test_long_target_is_431),
        cmocka_unit_test(test_garbage_is_400),
        cmocka_unit_test(test_404_and_405),
        cmocka_unit_test(test_head_has_no_body),
        cmocka_unit_test(test_slowloris_dropped),
        cmocka_unit_test(test_idle_timeout),
        cmocka_unit_test(test_connection_close_and_http10),
        cmocka_unit_test(test_max_requests_per_conn),
        cmocka_unit_test(test_query_decoding),
        cmocka_unit_test(test_upgrade_passes_leftover_bytes),
        cmocka_unit_test(test_takeover_waits_for_pipelined_answers),
        cmocka_unit_test(test_shutdown_answers_in_flight),
        cmocka_unit_test(test_limits_from_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
