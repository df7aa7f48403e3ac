/* Routing: literal and parameter segments, trailing slash, 404 versus 405
 * with the Allow list, HEAD answered by GET routes, takeover routes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "core/error.h"
#include "http/http_internal.h"

static int calls;
static void handler_a(hs_http_request_t *req, void *ctx)
{
    (void)req;
    (void)ctx;
    calls++;
}
static void handler_b(hs_http_request_t *req, void *ctx)
{
    (void)req;
    (void)ctx;
}

static int match(hs_router_t *r, enum http_method m, const char *path, hs_http_handler_fn *fn,
                 char *allow)
{
    void *ctx;
    return hs_router_match(r, m, path, strlen(path), NULL, fn, &ctx, allow, 128);
}

static void test_routes(void **state)
{
    (void)state;
    hs_router_t *r = hs_router_new();
    int ctx_a = 1;
    hs_router_add(r, HTTP_POST, "/api/v1/messages", handler_a, &ctx_a);
    hs_router_add(r, HTTP_GET, "/api/v1/messages", handler_b, NULL);
    hs_router_add(r, HTTP_GET, "/api/v1/messages/{id}", handler_a, NULL);
    hs_router_add(r, HTTP_GET, "/api/v1/ws", handler_b, NULL);
    hs_http_handler_fn fn = NULL;
    char allow[128];
    assert_int_equal(match(r, HTTP_POST, "/api/v1/messages", &fn, allow), 0);
    assert_ptr_equal(fn, handler_a);
    assert_int_equal(match(r, HTTP_GET, "/api/v1/messages", &fn, allow), 0);
    assert_ptr_equal(fn, handler_b);
    assert_int_equal(match(r, HTTP_HEAD, "/api/v1/messages", &fn, allow), 0);
    assert_ptr_equal(fn, handler_b);
    assert_int_equal(match(r, HTTP_GET, "/api/v1/ws/", &fn, allow), 0);
    assert_int_equal(match(r, HTTP_GET, "/api/v1/ws//", &fn, allow), HS_ENOTFOUND);
    assert_int_equal(match(r, HTTP_GET, "/api/v1/wsx", &fn, allow), HS_ENOTFOUND);
    assert_int_equal(match(r, HTTP_GET, "/api/v1", &fn, allow), HS_ENOTFOUND);
    assert_int_equal(match(r, HTTP_GET, "/", &fn, allow), HS_ENOTFOUND);
    assert_int_equal(match(r, HTTP_GET, "/api/v1/messages/01X/extra", &fn, allow), HS_ENOTFOUND);
    assert_int_equal(match(r, HTTP_PUT, "/api/v1/messages", &fn, allow), HS_EMETHOD);
    assert_string_equal(allow, "POST, GET, HEAD");
    assert_int_equal(match(r, HTTP_DELETE, "/api/v1/messages/abc", &fn, allow), HS_EMETHOD);
    assert_string_equal(allow, "GET, HEAD");
    hs_router_free(r);
}

static void test_takeover_routes(void **state)
{
    (void)state;
    hs_router_t *r = hs_router_new();
    hs_router_add(r, HTTP_GET, "/api/v1/ws", handler_a, NULL);
    hs_router_add_takeover(r, HTTP_GET, "/api/v1/sse", handler_b, NULL);
    hs_router_add(r, HTTP_POST, "/api/v1/sse", handler_a, NULL);
    assert_true(hs_router_takes_over(r, HTTP_GET, "/api/v1/sse", 11));
    assert_true(hs_router_takes_over(r, HTTP_GET, "/api/v1/sse/", 12));
    assert_true(hs_router_takes_over(r, HTTP_HEAD, "/api/v1/sse", 11));
    assert_false(hs_router_takes_over(r, HTTP_POST, "/api/v1/sse", 11));
    assert_false(hs_router_takes_over(r, HTTP_GET, "/api/v1/ws", 10));
    assert_false(hs_router_takes_over(r, HTTP_GET, "/api/v1/sse2", 12));
    assert_false(hs_router_takes_over(r, HTTP_GET, "/nope", 5));
    /* Still an ordinary route for matching. */
    hs_http_handler_fn fn;
    char allow[128];
    assert_int_equal(match(r, HTTP_GET, "/api/v1/sse", &fn, allow), 0);
    assert_ptr_equal(fn, handler_b);
    hs_router_free(r);
}

static void test_params_are_captured(void **state)
{
    (void)state;
    hs_router_t *r = hs_router_new();
    hs_router_add(r, HTTP_GET, "/api/v1/messages/{id}", handler_a, NULL);
    hs_http_request_t *req = hs_http__request_new(NULL, NULL);
    hs_http_handler_fn fn;
    void *ctx;
    char allow[64];
    const char *path = "/api/v1/messages/01ARZ3NDEKTSV4RRFFQ69G5FAV";
    assert_int_equal(
        hs_router_match(r, HTTP_GET, path, strlen(path), req, &fn, &ctx, allow, sizeof(allow)), 0);
    assert_string_equal(hs_http_param(req, "id"), "01ARZ3NDEKTSV4RRFFQ69G5FAV");
    assert_null(hs_http_param(req, "other"));
    assert_int_equal(hs_router_match(r, HTTP_GET, "/api/v1/messages/", 17, NULL, &fn, &ctx, allow,
                                     sizeof(allow)),
                     HS_ENOTFOUND);
    hs_http__request_free(req);
    hs_router_free(r);
}

static void test_query_decoding(void **state)
{
    (void)state;
    hs_http_request_t *req = hs_http__request_new(NULL, NULL);
    const char *url = "/x?topic=a%20b&lastID=&flag&plus=c+d&topic=second";
    req->url = strdup(url);
    req->url_len = strlen(url);
    assert_int_equal(hs_http__request_parse_target(req), 0);
    assert_string_equal(hs_http_query(req, "topic"), "a b"); /* the first one wins */
    assert_string_equal(hs_http_query(req, "lastID"), "");
    assert_string_equal(hs_http_query(req, "flag"), "");
    assert_string_equal(hs_http_query(req, "plus"), "c d");
    assert_null(hs_http_query(req, "none"));
    hs_http__request_free(req);

    const char *bad[] = {"/x?a=%zz", "/x?a=%4", "/x?a=%"};
    for (size_t i = 0; i < 3; i++) {
        req = hs_http__request_new(NULL, NULL);
        req->url = strdup(bad[i]);
        req->url_len = strlen(bad[i]);
        assert_int_equal(hs_http__request_parse_target(req), HS_EINVAL);
        hs_http__request_free(req);
    }
}

static void test_headers(void **state)
{
    (void)state;
    hs_http_request_t *req = hs_http__request_new(NULL, NULL);
    /* Names and values may arrive in pieces. */
    assert_int_equal(hs_http__request_add_header_bytes(req, "Cont", 4, false, 1024, 8), 0);
    assert_int_equal(hs_http__request_add_header_bytes(req, "ent-Type", 8, false, 1024, 8), 0);
    assert_int_equal(hs_http__request_add_header_bytes(req, "application/", 12, true, 1024, 8), 0);
    assert_int_equal(hs_http__request_add_header_bytes(req, "json", 4, true, 1024, 8), 0);
    assert_int_equal(hs_http__request_add_header_bytes(req, "X-A", 3, false, 1024, 8), 0);
    assert_int_equal(hs_http__request_add_header_bytes(req, "1", 1, true, 1024, 8), 0);
    size_t len;
    const char *v = hs_http_header(req, "content-type", &len);
    assert_non_null(v);
    assert_int_equal(len, 16);
    assert_memory_equal(v, "application/json", 16);
    assert_string_equal(hs_http_header(req, "X-a", &len), "1");
    assert_null(hs_http_header(req, "missing", &len));
    /* Limits: bytes and count. */
    assert_int_equal(hs_http__request_add_header_bytes(req, "X-Big", 5, false, 40, 8), HS_ETOOBIG);
    hs_http__request_free(req);
    req = hs_http__request_new(NULL, NULL);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(hs_http__request_add_header_bytes(req, "A", 1, false, 1024, 2), 0);
        assert_int_equal(hs_http__request_add_header_bytes(req, "v", 1, true, 1024, 2), 0);
    }
    assert_int_equal(hs_http__request_add_header_bytes(req, "A", 1, false, 1024, 2), HS_ETOOBIG);
    hs_http__request_free(req);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_takeover_routes),
        cmocka_unit_test(test_params_are_captured),
        cmocka_unit_test(test_query_decoding),
        cmocka_unit_test(test_headers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
