/* The CLI's WebSocket client against a scripted server on loopback (a
 * thread): after the 101 the server writes exact frame bytes, then records
 * what the client sends. Server frames are read with ws/codec's parser told
 * that they are unmasked: a fragmented message with a ping between its
 * fragments (answered with a masked pong), a masked server frame and a
 * reserved bit (protocol errors), a header announcing more than 32 MiB
 * (refused on the header alone), a close (the code echoed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "cli/url.h"
#include "cli/ws_client.h"
#include "core/alloc.h"
#include "core/error.h"
#include "ws/codec.h"
#include "ws/handshake.h"

typedef struct script {
    const uint8_t *frames; /* written right after the 101, in the same write */
    size_t frames_len;
    int listen_fd;
    int port;
    uint8_t got[4096]; /* what the client sent after its request */
    size_t got_len;
    pthread_t thread;
} script_t;

/* cmocka's asserts jump back into the test thread; the server's thread
 * aborts instead. */
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: server: %s\n", __FILE__, __LINE__, #cond);                     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void *server_main(void *arg)
{
    script_t *s = arg;
    int fd = accept(s->listen_fd, NULL, NULL);
    CHECK(fd >= 0);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char head[4096];
    size_t len = 0;
    char *end = NULL;
    while (end == NULL) {
        ssize_t n = recv(fd, head + len, sizeof(head) - 1 - len, 0);
        CHECK(n > 0);
        len += (size_t)n;
        head[len] = '\0';
        end = strstr(head, "\r\n\r\n");
    }
    const char *key = strstr(head, "Sec-WebSocket-Key: ");
    CHECK(key != NULL);
    key += strlen("Sec-WebSocket-Key: ");
    char accept_key[HS_WS_ACCEPT_LEN + 1];
    hs_ws_accept_key(key, (size_t)(strchr(key, '\r') - key), accept_key);
    uint8_t answer[1024];
    int n = snprintf((char *)answer, sizeof(answer),
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                     accept_key);
    CHECK(n > 0 && (size_t)n + s->frames_len <= sizeof(answer));
    memcpy(answer + n, s->frames, s->frames_len);
    CHECK(send(fd, answer, (size_t)n + s->frames_len, MSG_NOSIGNAL) ==
          (ssize_t)((size_t)n + s->frames_len));
    size_t after_head = len - (size_t)(end + 4 - head);
    memcpy(s->got, end + 4, after_head);
    s->got_len = after_head;
    for (;;) { /* until the client closes its socket */
        ssize_t got = recv(fd, s->got + s->got_len, sizeof(s->got) - s->got_len, 0);
        if (got <= 0)
            break;
        s->got_len += (size_t)got;
    }
    close(fd);
    return NULL;
}

/* Starts the scripted server and connects the client to it. */
static hs_cli_ws_t *open_with(script_t *s, const void *frames, size_t len)
{
    s->frames = frames;
    s->frames_len = len;
    s->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(s->listen_fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    assert_int_equal(listen(s->listen_fd, 1), 0);
    socklen_t alen = sizeof(addr);
    getsockname(s->listen_fd, (struct sockaddr *)&addr, &alen);
    s->port = ntohs(addr.sin_port);
    assert_int_equal(pthread_create(&s->thread, NULL, server_main, s), 0);
    char text[64], err[256];
    snprintf(text, sizeof(text), "ws://127.0.0.1:%d/ws", s->port);
    hs_cli_url_t url;
    assert_int_equal(hs_cli_url_parse(text, "ws", "8080", &url, err, sizeof(err)), 0);
    hs_cli_ws_t *ws = NULL;
    int rc = hs_cli_ws_connect(&url, NULL, NULL, 5000, &ws, err, sizeof(err));
    if (rc != 0)
        fail_msg("connect: %s", err);
    return ws;
}

/* Frees the client, waits for the server thread to see it go. */
static void finish(script_t *s, hs_cli_ws_t *ws)
{
    hs_cli_ws_free(ws);
    pthread_join(s->thread, NULL);
    close(s->listen_fd);
}

/* The first client frame the server received: masked, its payload unmasked
 * into payload; returns its opcode. */
static int client_frame_at(script_t *s, size_t *pos, uint8_t *payload, size_t *len)
{
    hs_ws_frame_header_t h;
    assert_int_equal(hs_ws_parse_header(s->got + *pos, s->got_len - *pos, HS_WS_MASKED, &h), 0);
    assert_true(*pos + h.header_len + h.payload_len <= s->got_len);
    memcpy(payload, s->got + *pos + h.header_len, (size_t)h.payload_len);
    hs_ws_unmask(payload, (size_t)h.payload_len, h.mask, 0);
    *len = (size_t)h.payload_len;
    *pos += h.header_len + (size_t)h.payload_len;
    return h.opcode;
}

static void test_fragments_and_a_ping_between(void **state)
{
    (void)state;
    static const uint8_t frames[] = "\x01\x03"
                                    "abc"
                                    "\x89\x02"
                                    "hi"
                                    "\x80\x03"
                                    "def";
    script_t s = {0};
    hs_cli_ws_t *ws = open_with(&s, frames, sizeof(frames) - 1);
    char *msg = NULL;
    size_t len = 0;
    assert_int_equal(hs_cli_ws_read(ws, 5000, &msg, &len), 1);
    assert_int_equal(len, 6);
    assert_string_equal(msg, "abcdef");
    hs_free(msg);
    finish(&s, ws);
    /* The ping was answered with a masked pong carrying its payload. */
    size_t pos = 0;
    uint8_t payload[256];
    assert_int_equal(client_frame_at(&s, &pos, payload, &len), HS_WS_OP_PONG);
    assert_int_equal(len, 2);
    assert_memory_equal(payload, "hi", 2);
}

/* A masked frame from a server, and a reserved bit: protocol errors. */
static void test_masked_or_reserved_server_frame_is_refused(void **state)
{
    (void)state;
    static const uint8_t masked[] = "\x81\x82\x01\x02\x03\x04"
                                    "xy";
    static const uint8_t reserved[] = "\xc1\x02"
                                      "xy";
    const struct {
        const uint8_t *bytes;
        size_t len;
    } cases[] = {{masked, sizeof(masked) - 1}, {reserved, sizeof(reserved) - 1}};
    for (size_t i = 0; i < 2; i++) {
        script_t s = {0};
        hs_cli_ws_t *ws = open_with(&s, cases[i].bytes, cases[i].len);
        char *msg = NULL;
        size_t len = 0;
        assert_int_equal(hs_cli_ws_read(ws, 5000, &msg, &len), HS_EPROTO);
        assert_null(msg);
        finish(&s, ws);
    }
}

/* A header announcing 64 MiB is refused on its own, before any payload. */
static void test_frame_over_the_message_bound_is_refused(void **state)
{
    (void)state;
    static const uint8_t frames[] = "\x82\x7f\x00\x00\x00\x00\x04\x00\x00\x00";
    script_t s = {0};
    hs_cli_ws_t *ws = open_with(&s, frames, sizeof(frames) - 1);
    char *msg = NULL;
    size_t len = 0;
    assert_int_equal(hs_cli_ws_read(ws, 5000, &msg, &len), HS_ETOOBIG);
    finish(&s, ws);
}

/* The server's close code is reported and echoed in a masked close. */
static void test_close_is_echoed(void **state)
{
    (void)state;
    static const uint8_t frames[] = "\x88\x05\x03\xe9"
                                    "bye";
    script_t s = {0};
    hs_cli_ws_t *ws = open_with(&s, frames, sizeof(frames) - 1);
    char *msg = NULL;
    size_t len = 0;
    assert_int_equal(hs_cli_ws_read(ws, 5000, &msg, &len), HS_ECLOSED);
    assert_int_equal(hs_cli_ws_close_code(ws), 1001);
    finish(&s, ws);
    size_t pos = 0;
    uint8_t payload[256];
    assert_int_equal(client_frame_at(&s, &pos, payload, &len), HS_WS_OP_CLOSE);
    assert_int_equal(len, 2);
    assert_memory_equal(payload, "\x03\xe9", 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fragments_and_a_ping_between),
        cmocka_unit_test(test_masked_or_reserved_server_frame_is_refused),
        cmocka_unit_test(test_frame_over_the_message_bound_is_refused),
        cmocka_unit_test(test_close_is_echoed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
