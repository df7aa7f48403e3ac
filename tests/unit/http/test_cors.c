/* CORS policy: the list setting, "*" and "none", the console's default
 * origins derived from a listen address, and how origins compare. The
 * headers on real answers are checked end to end (tests/e2e/test_console.py). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "http/cors.h"

static bool allows(const hs_cors_t *cors, const char *origin)
{
    return hs_cors_allows(cors, origin, strlen(origin));
}

static void test_list(void **state)
{
    (void)state;
    hs_cors_t *cors = hs_cors_new(" https://app.example ,http://b.example:8080/,,", ":9001");
    assert_true(allows(cors, "https://app.example"));
    assert_true(allows(cors, "HTTPS://APP.example"));
    assert_true(allows(cors, "http://b.example:8080"));
    assert_true(allows(cors, "http://b.example:8080/"));
    assert_false(allows(cors, "http://app.example"));
    assert_false(allows(cors, "https://app.example:443"));
    assert_false(allows(cors, "https://app.example.evil"));
    assert_false(allows(cors, "https://app.exampl"));
    assert_false(allows(cors, ""));
    assert_false(allows(cors, "null"));
    /* A list replaces the defaults. */
    assert_false(allows(cors, "http://localhost:9001"));
    assert_false(hs_cors_allows_any(cors));
    assert_string_equal(hs_cors_describe(cors), "https://app.example,http://b.example:8080");
    hs_cors_free(cors);
}

static void test_any_and_none(void **state)
{
    (void)state;
    hs_cors_t *any = hs_cors_new("https://a.example, *", ":9001");
    assert_true(hs_cors_allows_any(any));
    assert_true(allows(any, "http://whatever.example:1"));
    assert_string_equal(hs_cors_describe(any), "*");
    hs_cors_free(any);
    hs_cors_t *none = hs_cors_new("none", ":9001");
    assert_false(allows(none, "http://localhost:9001"));
    assert_string_equal(hs_cors_describe(none), "none");
    hs_cors_free(none);
}

static void test_defaults_follow_the_console_address(void **state)
{
    (void)state;
    hs_cors_t *cors = hs_cors_new("", ":9001");
    assert_true(allows(cors, "http://localhost:9001"));
    assert_true(allows(cors, "http://127.0.0.1:9001"));
    assert_true(allows(cors, "http://[::1]:9001"));
    assert_false(allows(cors, "http://localhost:9002"));
    assert_false(allows(cors, "https://localhost:9001"));
    assert_false(allows(cors, "http://0.0.0.0:9001"));
    assert_string_equal(hs_cors_describe(cors),
                        "http://localhost:9001,http://127.0.0.1:9001,http://[::1]:9001");
    hs_cors_free(cors);

    /* A named host is added; loopback is not listed twice. */
    cors = hs_cors_new(NULL, "console.example:8001");
    assert_true(allows(cors, "http://console.example:8001"));
    assert_true(allows(cors, "http://localhost:8001"));
    hs_cors_free(cors);
    cors = hs_cors_new("  ", "127.0.0.1:8001");
    assert_string_equal(hs_cors_describe(cors),
                        "http://localhost:8001,http://127.0.0.1:8001,http://[::1]:8001");
    hs_cors_free(cors);
    cors = hs_cors_new("", "[::]:8001");
    assert_false(allows(cors, "http://[::]:8001"));
    assert_true(allows(cors, "http://[::1]:8001"));
    hs_cors_free(cors);

    /* No port, no defaults. */
    cors = hs_cors_new("", "localhost");
    assert_false(allows(cors, "http://localhost"));
    assert_string_equal(hs_cors_describe(cors), "none");
    hs_cors_free(cors);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list),
        cmocka_unit_test(test_any_and_none),
        cmocka_unit_test(test_defaults_follow_the_console_address),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
