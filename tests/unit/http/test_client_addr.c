/* Trusted proxies: the CIDR list, IPv4-mapped addresses, and the walk from
 * the right through X-Forwarded-For and Forwarded to the first hop that is
 * not a trusted proxy. End to end with real nginx: tests/e2e/test_nginx.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "core/error.h"
#include "http/client_addr.h"

static hs_addr_list_t *parse(const char *text)
{
    hs_addr_list_t *list = NULL;
    char err[200];
    assert_int_equal(hs_addr_list_parse(text, &list, err, sizeof(err)), 0);
    return list;
}

static void test_list(void **state)
{
    (void)state;
    hs_addr_list_t *l = parse(" 127.0.0.1, 10.0.0.0/8 ,fd00::/8,, 192.168.1.0/24");
    assert_int_equal(hs_addr_list_count(l), 4);
    assert_true(hs_addr_list_contains(l, "127.0.0.1"));
    assert_true(hs_addr_list_contains(l, "::ffff:127.0.0.1")); /* the same address */
    assert_false(hs_addr_list_contains(l, "127.0.0.2"));
    assert_true(hs_addr_list_contains(l, "10.255.1.2"));
    assert_false(hs_addr_list_contains(l, "11.0.0.1"));
    assert_true(hs_addr_list_contains(l, "fd12:3456::1"));
    assert_false(hs_addr_list_contains(l, "fe80::1"));
    assert_true(hs_addr_list_contains(l, "192.168.1.255"));
    assert_false(hs_addr_list_contains(l, "192.168.2.1"));
    assert_false(hs_addr_list_contains(l, "unknown"));
    assert_false(hs_addr_list_contains(l, ""));
    hs_addr_list_free(l);

    l = parse("");
    assert_int_equal(hs_addr_list_count(l), 0);
    assert_false(hs_addr_list_contains(l, "127.0.0.1"));
    hs_addr_list_free(l);
    l = parse("0.0.0.0/0");
    assert_true(hs_addr_list_contains(l, "8.8.8.8"));
    assert_false(hs_addr_list_contains(l, "2001:db8::1"));
    hs_addr_list_free(l);

    char err[200];
    const char *bad[] = {"localhost",  "10.0.0.0/33", "::1/129", "10.0.0.0/",
                         "1.2.3.4/-1", "10.0.0.0/8x", "1.2.3"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        l = (hs_addr_list_t *)1;
        assert_int_equal(hs_addr_list_parse(bad[i], &l, err, sizeof(err)), HS_EINVAL);
        assert_null(l);
        assert_non_null(strstr(err, "--trusted-proxies"));
    }
}

static void test_loopback_and_peer(void **state)
{
    (void)state;
    assert_true(hs_addr_is_loopback("127.0.0.1"));
    assert_true(hs_addr_is_loopback("127.255.0.9"));
    assert_true(hs_addr_is_loopback("::1"));
    assert_true(hs_addr_is_loopback("::ffff:127.0.0.1"));
    assert_false(hs_addr_is_loopback("128.0.0.1"));
    assert_false(hs_addr_is_loopback("::2"));
    assert_false(hs_addr_is_loopback("localhost"));
    char ip[64];
    hs_addr_from_peer("127.0.0.1:5000", ip, sizeof(ip));
    assert_string_equal(ip, "127.0.0.1");
    hs_addr_from_peer("[::1]:5000", ip, sizeof(ip));
    assert_string_equal(ip, "::1");
    hs_addr_from_peer("[::ffff:10.0.0.1]:80", ip, sizeof(ip));
    assert_string_equal(ip, "::ffff:10.0.0.1");
}

static const char *resolve(const hs_addr_list_t *trusted, const char *peer, const char *xff,
                           const char *forwarded, bool *proxied)
{
    static char out[HS_CLIENT_ADDR_MAX];
    *proxied = hs_client_addr_resolve(trusted, peer, xff, forwarded, out, sizeof(out));
    return out;
}

static void test_resolve(void **state)
{
    (void)state;
    hs_addr_list_t *t = parse("127.0.0.1, 10.0.0.0/8");
    bool proxied;
    /* Untrusted peers: their headers mean nothing. */
    assert_string_equal(resolve(t, "203.0.113.9", "1.2.3.4", "for=1.2.3.4", &proxied),
                        "203.0.113.9");
    assert_false(proxied);
    assert_string_equal(resolve(NULL, "127.0.0.1", "1.2.3.4", NULL, &proxied), "127.0.0.1");
    assert_false(proxied);
    /* A trusted proxy: the first untrusted hop from the right. */
    assert_string_equal(resolve(t, "127.0.0.1", "203.0.113.5", NULL, &proxied), "203.0.113.5");
    assert_true(proxied);
    assert_string_equal(resolve(t, "127.0.0.1", "6.6.6.6, 203.0.113.5", NULL, &proxied),
                        "203.0.113.5"); /* the client's own claim is on the left */
    assert_string_equal(resolve(t, "127.0.0.1", "6.6.6.6, 203.0.113.5, 10.1.1.1", NULL, &proxied),
                        "203.0.113.5");
    assert_string_equal(resolve(t, "::ffff:127.0.0.1", " 203.0.113.5:4711 ", NULL, &proxied),
                        "203.0.113.5");
    assert_string_equal(resolve(t, "127.0.0.1", "[2001:db8::1]:80", NULL, &proxied), "2001:db8::1");
    assert_string_equal(resolve(t, "127.0.0.1", "2001:db8::2", NULL, &proxied), "2001:db8::2");
    /* Every hop trusted: the leftmost. No header: the proxy itself. */
    assert_string_equal(resolve(t, "127.0.0.1", "10.0.0.1, 10.0.0.2", NULL, &proxied), "10.0.0.1");
    assert_string_equal(resolve(t, "127.0.0.1", NULL, NULL, &proxied), "127.0.0.1");
    assert_true(proxied);
    assert_string_equal(resolve(t, "127.0.0.1", "", NULL, &proxied), "127.0.0.1");
    /* A hop that is no address stops the walk at the proxy that wrote it. */
    assert_string_equal(resolve(t, "127.0.0.1", "203.0.113.5, unknown", NULL, &proxied),
                        "127.0.0.1");
    assert_string_equal(resolve(t, "127.0.0.1", "203.0.113.5, garbage, 10.0.0.3", NULL, &proxied),
                        "10.0.0.3");
    /* Forwarded (RFC 7239), when there is no X-Forwarded-For. */
    assert_string_equal(
        resolve(t, "127.0.0.1", NULL, "for=203.0.113.60;proto=http;by=10.0.0.1", &proxied),
        "203.0.113.60");
    assert_string_equal(resolve(t, "127.0.0.1", NULL,
                                "for=6.6.6.6, For=\"[2001:db8:cafe::17]:4711\", for=10.2.2.2",
                                &proxied),
                        "2001:db8:cafe::17");
    assert_string_equal(resolve(t, "127.0.0.1", NULL, "for=\"_hidden\", for=10.2.2.2", &proxied),
                        "10.2.2.2");
    assert_string_equal(resolve(t, "127.0.0.1", NULL, "proto=https", &proxied), "127.0.0.1");
    assert_string_equal(resolve(t, "127.0.0.1", "203.0.113.5", "for=6.6.6.6", &proxied),
                        "203.0.113.5"); /* X-Forwarded-For wins */
    /* A very long chain: the rightmost hops count. */
    char chain[4096] = "";
    for (int i = 0; i < 100; i++)
        strcat(chain, "10.0.0.9, ");
    strcat(chain, "203.0.113.77");
    assert_string_equal(resolve(t, "127.0.0.1", chain, NULL, &proxied), "203.0.113.77");
    hs_addr_list_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list),
        cmocka_unit_test(test_loopback_and_peer),
        cmocka_unit_test(test_resolve),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
