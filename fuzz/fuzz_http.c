/* libFuzzer: the HTTP request parser and router, through the real server.
 *
 * The server runs on its own loop in a background thread, on loopback;
 * each input is sent as the bytes of one client connection (then the
 * client's write side closes) and the answer is read until the server
 * closes. Routes with parameters, query lookups and a handler that answers
 * later exercise routing and in-order pipelining. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/log.h"
#include "http/cors.h"
#include "http/server.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uv_loop_t loop;
static int port;

static void echo_route(hs_http_request_t *req, void *ctx)
{
    (void)ctx;
    size_t body_len = 0, header_len = 0;
    hs_http_body(req, &body_len);
    hs_http_header(req, "content-type", &header_len);
    const char *q = hs_http_query(req, "topic");
    const char *id = hs_http_param(req, "id");
    json_t *answer = json_pack("{s:I, s:I, s:s?, s:s?}", "body", (json_int_t)body_len, "ct",
                               (json_int_t)header_len, "topic", q, "id", id);
    hs_http_respond_json(req, 200, answer ? answer : json_null());
}

static void later_cb(uv_timer_t *timer)
{
    hs_http_request_t *req = timer->data;
    hs_http_respond_empty(req, 204);
    uv_close((uv_handle_t *)timer, (uv_close_cb)hs_free);
}

static void later_route(hs_http_request_t *req, void *ctx)
{
    (void)ctx;
    uv_timer_t *timer = hs_malloc(sizeof(*timer));
    uv_timer_init(&loop, timer);
    timer->data = req;
    uv_timer_start(timer, later_cb, 0, 0);
}

static void *loop_main(void *arg)
{
    (void)arg;
    uv_run(&loop, UV_RUN_DEFAULT);
    return NULL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    hs_log_set_level(HS_LOG_OFF);
    signal(SIGPIPE, SIG_IGN); /* the server writes to clients that left, as houston does */
    uv_loop_init(&loop);
    hs_net_t *net = hs_net_new(&loop);
    hs_router_t *router = hs_router_new();
    hs_router_add(router, HTTP_GET, "/api/v1/messages", echo_route, NULL);
    hs_router_add(router, HTTP_POST, "/api/v1/messages", echo_route, NULL);
    hs_router_add(router, HTTP_GET, "/api/v1/messages/{id}", echo_route, NULL);
    hs_router_add(router, HTTP_DELETE, "/api/v1/subscribes", later_route, NULL);
    hs_http_limits_t limits;
    hs_http_limits_default(&limits);
    limits.max_body = 64 * 1024;
    limits.header_timeout_ms = 500;
    limits.body_timeout_ms = 500;
    limits.max_requests_per_conn = 50;
    hs_http_server_t *server = hs_http_server_new(net, router, &limits, "fuzz");
    /* CORS on, so Origin headers and OPTIONS preflights take their paths. */
    hs_http_server_set_cors(server, hs_cors_new("http://localhost:9001, https://a.example", NULL));
    if (hs_http_server_listen(server, "127.0.0.1:0") != 0)
        abort();
    port = hs_http_server_port(server);
    pthread_t thread;
    pthread_create(&thread, NULL, loop_main, NULL);
    pthread_detach(thread);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    /* The listener may be pausing after running out of descriptors, or the
     * loopback ports may be busy for a moment: retry for up to 2 s, then the
     * server has stopped accepting for good, which is a bug. */
    int fd = -1;
    for (int attempt = 0; fd < 0; attempt++) {
        fd = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0)
            break;
        fprintf(stderr, "fuzz_http: connect: %s\n", strerror(errno));
        close(fd);
        fd = -1;
        if (attempt == 200)
            abort();
        usleep(10000);
    }
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    size_t sent = 0;
    while (sent < size) {
        ssize_t n = send(fd, data + sent, size - sent, MSG_NOSIGNAL);
        if (n <= 0)
            break;
        sent += (size_t)n;
    }
    shutdown(fd, SHUT_WR);
    char buf[65536];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n == 0 || (n < 0 && errno != EINTR))
            break;
    }
    close(fd);
    return 0;
}
