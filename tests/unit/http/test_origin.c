/* Host and Origin: the Host check of DNS rebinding, --allowed-hosts, and
 * the same-origin rule of WebSocket and SSE handshakes. End to end:
 * tests/e2e/test_safe_defaults.py and tests/browser/hostile.spec.mjs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "http/origin.h"

static bool host_ok(const hs_host_list_t *list, const char *host)
{
    return hs_http_host_allowed(list, host, strlen(host));
}

static void test_split_host(void **state)
{
    (void)state;
    char host[HS_HOST_MAX];
    unsigned port;
    assert_true(hs_http_split_host("Example.COM:8080", 16, host, sizeof(host), &port));
    assert_string_equal(host, "example.com");
    assert_int_equal(port, 8080);
    assert_true(hs_http_split_host("[::1]:9001", 10, host, sizeof(host), &port));
    assert_string_equal(host, "::1");
    assert_int_equal(port, 9001);
    assert_true(hs_http_split_host("localhost.", 10, host, sizeof(host), &port));
    assert_string_equal(host, "localhost");
    assert_int_equal(port, 0);
    const char *bad[] = {"",    ":80",  "a:",  "a:0", "a:65536", "a:8x",
                         "::1", "[::1", "a b", "a/b", "a@b",     "[::1]x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(hs_http_split_host(bad[i], strlen(bad[i]), host, sizeof(host), &port));
}

static void test_host_check(void **state)
{
    (void)state;
    hs_host_list_t *none = hs_host_list_new("");
    const char *good[] = {"localhost",      "localhost:9002", "LocalHost", "127.0.0.1",
                          "127.0.0.1:9002", "127.8.9.10",     "[::1]",     "[::1]:9001"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_true(host_ok(none, good[i]));
    const char *evil[] = {"evil.example",
                          "evil.example:9002",
                          "127.0.0.1.evil.example",
                          "localhost.evil.example",
                          "10.0.0.1",
                          "[::2]",
                          "127.1",
                          "0x7f.0.0.1",
                          "2130706433",
                          "",
                          "[::ffff:7f00:1]x"};
    for (size_t i = 0; i < sizeof(evil) / sizeof(evil[0]); i++)
        assert_false(host_ok(none, evil[i]));
    hs_host_list_free(none);

    hs_host_list_t *list = hs_host_list_new(" Houston.Example , other.test:8080,");
    assert_true(host_ok(list, "houston.example"));
    assert_true(host_ok(list, "HOUSTON.example:443"));
    assert_true(host_ok(list, "other.test:1"));
    assert_true(host_ok(list, "localhost"));
    assert_false(host_ok(list, "evil.example"));
    assert_false(host_ok(list, "sub.houston.example"));
    hs_host_list_free(list);
    hs_host_list_t *any = hs_host_list_new("*");
    assert_true(host_ok(any, "whatever.example"));
    hs_host_list_free(any);
}

static bool same(const char *origin, const char *host)
{
    return hs_http_same_origin(origin, strlen(origin), host, strlen(host));
}

static void test_same_origin(void **state)
{
    (void)state;
    assert_true(same("http://127.0.0.1:9001", "127.0.0.1:9001"));
    assert_true(same("HTTP://LOCALHOST:9001", "localhost:9001"));
    assert_true(same("http://[::1]:9001", "[::1]:9001"));
    assert_true(same("https://houston.example", "houston.example"));
    assert_true(same("https://houston.example", "houston.example:443"));
    assert_true(same("http://houston.example", "houston.example"));
    assert_false(same("https://houston.example", "houston.example:80"));
    assert_false(same("http://localhost:9001", "127.0.0.1:9001"));
    assert_false(same("http://127.0.0.1:9002", "127.0.0.1:9001"));
    assert_false(same("https://evil.example", "127.0.0.1:9001"));
    assert_false(same("null", "127.0.0.1:9001"));
    assert_false(same("http://127.0.0.1:9001/", "127.0.0.1:9001"));
    assert_false(same("http://user@127.0.0.1:9001", "127.0.0.1:9001"));
    assert_false(same("file://", "127.0.0.1:9001"));
    assert_false(same("chrome-extension://abc", "abc"));
    assert_false(hs_http_same_origin(NULL, 0, "a", 1));
    char scheme[16], host[HS_HOST_MAX];
    unsigned port;
    assert_true(hs_http_split_origin("https://a.example", 17, scheme, sizeof(scheme), host,
                                     sizeof(host), &port));
    assert_string_equal(scheme, "https");
    assert_int_equal(port, 443);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_host),
        cmocka_unit_test(test_host_check),
        cmocka_unit_test(test_same_origin),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
