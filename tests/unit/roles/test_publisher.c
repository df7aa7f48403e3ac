/* The publisher's request decoding, through its real routes: a publisher on
 * a loopback port with a temporary SQLite store and the in-process bus, and
 * a client thread sending raw HTTP requests. Covered here and not in
 * test_decode.c (which checks the decoders alone): where each route takes
 * its fields from (JSON body, query string, path), the Content-Type rule,
 * the configured content limit, the Idempotency-Key header, and that every
 * refusal is answered with its status and a JSON error body. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bus/bus.h"
#include "core/config.h"
#include "net/net.h"
#include "roles/publisher.h"
#include "store/store.h"

#define MAX_CONTENT 16

typedef struct exchange {
    const char *method, *path, *headers, *body;
    int status;          /* expected */
    const char *code;    /* expected error code, or NULL */
    const char *in_body; /* expected in the body, or NULL */
} exchange_t;

typedef struct fixture {
    uv_loop_t loop;
    uv_async_t done;
    hs_config_t cfg;
    hs_net_t *net;
    hs_store_t *store;
    hs_bus_t *bus;
    hs_publisher_t *publisher;
    char dir[64];
    int port;
    const exchange_t *exchanges;
    size_t count;
    /* written by the client thread, read after it ended */
    int statuses[64];
    char bodies[64][512];
    int stopped;
} fixture_t;

/* ---- the client thread ------------------------------------------------- */

static int request(int port, const exchange_t *x, char *body_out, size_t body_cap)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
        close(fd);
        return -1;
    }
    char req[2048];
    size_t body_len = x->body ? strlen(x->body) : 0;
    int n = snprintf(req, sizeof(req),
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s"
                     "Content-Length: %zu\r\n\r\n%s",
                     x->method, x->path, x->headers ? x->headers : "", body_len,
                     x->body ? x->body : "");
    if (write(fd, req, (size_t)n) != n) {
        close(fd);
        return -1;
    }
    char resp[4096];
    size_t len = 0;
    ssize_t got;
    while (len < sizeof(resp) - 1 && (got = read(fd, resp + len, sizeof(resp) - 1 - len)) > 0)
        len += (size_t)got;
    resp[len] = '\0';
    close(fd);
    int status = 0;
    if (sscanf(resp, "HTTP/1.1 %d", &status) != 1)
        return -1;
    const char *body = strstr(resp, "\r\n\r\n");
    snprintf(body_out, body_cap, "%s", body ? body + 4 : "");
    return status;
}

static void client_main(void *arg)
{
    fixture_t *f = arg;
    for (size_t i = 0; i < f->count; i++)
        f->statuses[i] = request(f->port, &f->exchanges[i], f->bodies[i], sizeof(f->bodies[i]));
    uv_async_send(&f->done);
}

/* ---- the server side ----------------------------------------------------- */

static void store_closed_cb(int status, void *data)
{
    fixture_t *f = data;
    assert_int_equal(status, 0);
    f->store = NULL;
}

static void bus_closed_cb(int status, void *data)
{
    fixture_t *f = data;
    (void)status;
    f->bus = NULL;
    hs_store_close(f->store, store_closed_cb, f);
}

static void publisher_stopped_cb(void *data)
{
    fixture_t *f = data;
    hs_publisher_free(f->publisher);
    f->publisher = NULL;
    hs_net_close(f->net);
    hs_bus_close(f->bus, bus_closed_cb, f);
}

static void done_cb(uv_async_t *async)
{
    fixture_t *f = async->data;
    uv_close((uv_handle_t *)async, NULL);
    hs_publisher_shutdown(f->publisher, publisher_stopped_cb, f);
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    uv_loop_init(&f->loop);
    hs_config_defaults(&f->cfg);
    f->cfg.max_content = MAX_CONTENT;
    snprintf(f->dir, sizeof(f->dir), "/tmp/houston-publisher-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    char url[128], err[256] = "";
    snprintf(url, sizeof(url), "sqlite:%s/test.db", f->dir);
    if (hs_store_open(&f->loop, url, NULL, &f->store, err, sizeof(err)) != 0)
        fail_msg("store: %s", err);
    f->bus = hs_bus_inproc_new(&f->loop);
    f->net = hs_net_new(&f->loop);
    f->publisher = hs_publisher_new(f->net, f->store, f->bus, &f->cfg);
    assert_int_equal(hs_publisher_start(f->publisher, "127.0.0.1:0"), 0);
    f->port = hs_publisher_port(f->publisher);
    assert_true(f->port > 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    assert_null(f->store);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    hs_config_dispose(&f->cfg);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

/* Runs the exchanges in order on the client thread, then checks each. */
static void run_exchanges(fixture_t *f, const exchange_t *x, size_t count)
{
    assert_true(count <= 64);
    f->exchanges = x;
    f->count = count;
    uv_async_init(&f->loop, &f->done, done_cb);
    f->done.data = f;
    uv_thread_t client;
    uv_thread_create(&client, client_main, f);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    uv_thread_join(&client);
    for (size_t i = 0; i < count; i++) {
        if (f->statuses[i] != x[i].status)
            fail_msg("%s %s: status %d, expected %d; body %s", x[i].method, x[i].path,
                     f->statuses[i], x[i].status, f->bodies[i]);
        if (x[i].code) {
            char want[96];
            snprintf(want, sizeof(want), "{\"error\":{\"code\":\"%s\"", x[i].code);
            if (strstr(f->bodies[i], want) == NULL)
                fail_msg("%s %s: body %s lacks %s", x[i].method, x[i].path, f->bodies[i], want);
        }
        if (x[i].in_body && strstr(f->bodies[i], x[i].in_body) == NULL)
            fail_msg("%s %s: body %s lacks %s", x[i].method, x[i].path, f->bodies[i], x[i].in_body);
    }
}

#define JSON "Content-Type: application/json\r\n"
#define ID   "01GYZ8RAHSE45A2JCVNVA6BTJ2"

/* POST /api/v1/messages and /api/v1/publish: the body, its type and the
 * content limit of the configuration. */
static void test_publish_body(void **state)
{
    static const exchange_t x[] = {
        {"POST", "/api/v1/messages", NULL, "{\"topic\":\"t\",\"content\":\"x\"}", 415,
         "unsupported_media_type", NULL},
        {"POST", "/api/v1/messages", "Content-Type: text/plain\r\n",
         "{\"topic\":\"t\",\"content\":\"x\"}", 415, "unsupported_media_type", NULL},
        {"POST", "/api/v1/messages", JSON, "{\"topic\":", 400, "invalid_json", NULL},
        {"POST", "/api/v1/messages", JSON, "[1]", 400, NULL, NULL},
        {"POST", "/api/v1/messages", JSON, "{\"topic\":\"t\",\"content\":\"x\",\"topic\":\"u\"}",
         400, NULL, NULL},
        {"POST", "/api/v1/messages", JSON, "{\"content\":\"x\"}", 400, "missing_field", "topic"},
        /* the limit is the configuration's (16 bytes here), not the default */
        {"POST", "/api/v1/messages", JSON, "{\"topic\":\"t\",\"content\":\"12345678901234567\"}",
         413, "payload_too_large", NULL},
        {"POST", "/api/v1/messages", JSON, "{\"topic\":\"t\",\"content\":\"1234567890123456\"}",
         201, NULL, "\"content\":\"1234567890123456\""},
        /* /publish names its author "sender"; "author" there is ignored */
        {"POST", "/api/v1/publish", "Content-Type: Application/JSON; charset=utf-8\r\n",
         "{\"topic\":\"t\",\"content\":\"x\",\"sender\":\"bob\"}", 201, NULL, "bob"},
        {"POST", "/api/v1/publish", JSON, "{\"topic\":\"t\",\"content\":\"x\",\"sender\":5}", 400,
         "invalid_field", "sender"},
    };
    run_exchanges(*state, x, sizeof(x) / sizeof(x[0]));
}

/* The Idempotency-Key header: checked before anything is stored; a repeat
 * answers the original (200), another body under the key is refused (422). */
static void test_idempotency_key(void **state)
{
    static const exchange_t x[] = {
        {"POST", "/api/v1/messages", JSON "Idempotency-Key: \r\n",
         "{\"topic\":\"t\",\"content\":\"x\"}", 400, "invalid_field", "Idempotency-Key"},
        {"POST", "/api/v1/messages",
         JSON "Idempotency-Key: "
              "12345678901234567890123456789012345678901234567890123456789012345678901234567890"
              "1234567890123456789012345678901234567890123456789\r\n",
         "{\"topic\":\"t\",\"content\":\"x\"}", 400, "invalid_field", "Idempotency-Key"},
        {"POST", "/api/v1/messages", JSON "Idempotency-Key: k-1\r\n",
         "{\"topic\":\"t\",\"content\":\"once\"}", 201, NULL, "once"},
        {"POST", "/api/v1/messages", JSON "Idempotency-Key: k-1\r\n",
         "{\"topic\":\"t\",\"content\":\"once\"}", 200, NULL, "once"},
        {"POST", "/api/v1/messages", JSON "Idempotency-Key: k-1\r\n",
         "{\"topic\":\"t\",\"content\":\"other\"}", 422, "idempotency_key_reused", "k-1"},
    };
    run_exchanges(*state, x, sizeof(x) / sizeof(x[0]));
}

/* GET /api/v1/messages: the query string; GET /api/v1/messages/{id}: the
 * path. */
static void test_history_query_and_path(void **state)
{
    static const exchange_t x[] = {
        {"GET", "/api/v1/messages", NULL, NULL, 400, "missing_field", "topic"},
        {"GET", "/api/v1/messages?topic=a%20b", NULL, NULL, 400, "invalid_field", "topic"},
        {"GET", "/api/v1/messages?topic=t&limit=0", NULL, NULL, 400, "invalid_field", "limit"},
        {"GET", "/api/v1/messages?topic=t&limit=1001", NULL, NULL, 400, "invalid_field", "limit"},
        {"GET", "/api/v1/messages?topic=t&lastID=nope", NULL, NULL, 400, "invalid_field", "lastID"},
        {"GET", "/api/v1/messages?topic=t&forward=maybe", NULL, NULL, 400, "invalid_field",
         "forward"},
        {"GET", "/api/v1/messages?topic=t&limit=1000&forward=true&lastID=" ID, NULL, NULL, 200,
         NULL, NULL},
        {"GET", "/api/v1/messages/not-a-ulid", NULL, NULL, 400, "invalid_field", "'id'"},
        {"GET", "/api/v1/messages/" ID, NULL, NULL, 404, NULL, NULL},
    };
    run_exchanges(*state, x, sizeof(x) / sizeof(x[0]));
}

/* Subscriptions: POST takes a body only; DELETE a body or, without one, the
 * query string; GET the query string. Connections: the path's {id}. */
static void test_subscriptions_and_connections(void **state)
{
    static const exchange_t x[] = {
        {"POST", "/api/v1/subscribes", JSON, "{\"connectionID\":\"" ID "\"}", 400, "missing_field",
         "topic"},
        {"POST", "/api/v1/subscribes", JSON, "{\"topic\":\"t\",\"connectionID\":\"bad\"}", 400,
         "invalid_field", "connectionID"},
        {"POST", "/api/v1/subscribes?topic=t&connectionID=" ID, NULL, NULL, 415,
         "unsupported_media_type", NULL},
        {"DELETE", "/api/v1/subscribes?topic=t&connectionID=bad", NULL, NULL, 400, "invalid_field",
         "connectionID"},
        {"DELETE", "/api/v1/subscribes?topic=t", NULL, NULL, 400, "missing_field", "connectionID"},
        {"DELETE", "/api/v1/subscribes", JSON, "{\"topic\":\"a b\",\"connectionID\":\"" ID "\"}",
         400, "invalid_field", "topic"},
        {"GET", "/api/v1/subscribes", NULL, NULL, 400, "missing_field", NULL},
        {"GET", "/api/v1/subscribes?topic=a%20b", NULL, NULL, 400, "invalid_field", "topic"},
        {"GET", "/api/v1/subscribes?connectionID=bad", NULL, NULL, 400, "invalid_field",
         "connectionID"},
        {"GET", "/api/v1/subscribes?connectionID=" ID, NULL, NULL, 200, NULL, "[]"},
        {"GET", "/api/v1/connections/bad", NULL, NULL, 400, "invalid_field", "'id'"},
        {"DELETE", "/api/v1/connections/bad", NULL, NULL, 400, "invalid_field", "'id'"},
        {"GET", "/api/v1/connections/" ID, NULL, NULL, 404, NULL, NULL},
        {"POST", "/api/v1/notification", JSON,
         "{\"connectionID\":\"" ID "\",\"payload\":\"12345678901234567\"}", 413,
         "payload_too_large", "payload"},
        {"POST", "/api/v1/notification", JSON, "{\"connectionID\":\"" ID "\"}", 400,
         "missing_field", "payload"},
    };
    run_exchanges(*state, x, sizeof(x) / sizeof(x[0]));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_publish_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idempotency_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_history_query_and_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_subscriptions_and_connections, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
