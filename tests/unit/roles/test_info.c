/* GET /api/v1/info's WebSocket base URL, derived without a request:
 * --public-ws-url first, null without a notifier in the process, the
 * proxy's origin for relayed requests, else the Host's host on the
 * WebSocket port; and the checks on --public-ws-url and on Host. Cases are
 * data. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "core/error.h"
#include "roles/info.h"

typedef struct base_case {
    const char *public_url; /* --public-ws-url */
    int ws_port;            /* 0: no notifier here (scale-out publisher) */
    bool tls;
    const char *host; /* Host header, NULL: none */
    bool proxied;
    const char *proto; /* trusted X-Forwarded-Proto */
    int rc;
    const char *base;
} base_case_t;

static const base_case_t cases[] = {
    /* derived from Host and the listener */
    {"", 19001, false, "127.0.0.1:19002", false, NULL, 0, "ws://127.0.0.1:19001"},
    {"", 19001, false, "localhost", false, NULL, 0, "ws://localhost:19001"},
    {"", 19001, true, "localhost:19002", false, NULL, 0, "wss://localhost:19001"},
    {"", 9001, false, "[::1]:9002", false, NULL, 0, "ws://[::1]:9001"},
    {"", 9001, false, NULL, false, NULL, 0, "ws://localhost:9001"},
    /* an X-Forwarded-Proto that no trusted proxy sent is not looked at */
    {"", 9001, false, "h.example:80", false, "https", 0, "ws://h.example:9001"},
    /* relayed: the proxy's origin */
    {"", 9001, false, "houston.example", true, "https", 0, "wss://houston.example"},
    {"", 9001, false, "houston.example:8080", true, "http", 0, "ws://houston.example:8080"},
    {"", 9001, true, "houston.example", true, NULL, 0, "wss://houston.example"},
    {"", 9001, false, "houston.example", true, NULL, 0, "ws://houston.example"},
    /* the configured URL wins, with or without the endpoint's path */
    {"wss://push.example", 9001, false, "x", false, NULL, 0, "wss://push.example"},
    {"wss://push.example/h/", 0, false, NULL, false, NULL, 0, "wss://push.example/h"},
    {"ws://n:7/api/v1/ws", 0, false, NULL, true, "https", 0, "ws://n:7"},
    /* a scale-out publisher without it: none */
    {"", 0, false, "localhost:9002", false, NULL, HS_ENOTFOUND, NULL},
    /* a Host that would change the URL's meaning */
    {"", 9001, false, "evil/path", false, NULL, HS_EINVAL, NULL},
    {"", 9001, false, "a@b", false, NULL, HS_EINVAL, NULL},
    {"", 9001, false, "h:99999999", false, NULL, HS_EINVAL, NULL},
    {"", 9001, false, "h:", false, NULL, HS_EINVAL, NULL},
    {"", 9001, false, "[::1", false, NULL, HS_EINVAL, NULL},
    {"", 9001, false, ":9002", false, NULL, HS_EINVAL, NULL},
};

static void test_ws_base(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const base_case_t *c = &cases[i];
        hs_info_site_t site = {.ws_port = c->ws_port, .tls = c->tls};
        char out[256] = "";
        print_message("case %zu\n", i);
        int rc = hs_info_ws_base(c->public_url, &site, c->host, c->host ? strlen(c->host) : 0,
                                 c->proxied, c->proto, out, sizeof(out));
        assert_int_equal(rc, c->rc);
        if (rc == 0)
            assert_string_equal(out, c->base);
    }
    /* Before start-up filled in the site: nothing to derive from. */
    char out[64];
    assert_int_equal(hs_info_ws_base("", NULL, "h", 1, false, NULL, out, sizeof(out)),
                     HS_ENOTFOUND);
}

static void test_public_url_check(void **state)
{
    (void)state;
    static const char *const good[] = {"", "ws://h", "wss://h.example:8443", "wss://h/prefix/x",
                                       "WSS://[::1]:9001/api/v1/ws"};
    static const char *const bad[] = {"http://h",  "h:9001",   "wss://",        "wss://h/?t=1",
                                      "ws://h/#f", "ws://h p", "ws://user@h/x", "ws://h:port"};
    char err[256];
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_int_equal(hs_info_check_public_url(good[i], err, sizeof(err)), 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        print_message("bad %s\n", bad[i]);
        assert_int_equal(hs_info_check_public_url(bad[i], err, sizeof(err)), HS_EINVAL);
        assert_non_null(strstr(err, "--public-ws-url"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_ws_base),
                                       cmocka_unit_test(test_public_url_check)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
