/* Where `houston sub` opens its WebSocket, decided from the answer of
 * GET /api/v1/info: the server's wsURL, or the fallback with a note when the
 * server is older (404) or does not know (null), or an error for a wsURL
 * the client cannot use. Cases are data. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "cli/discover.h"
#include "core/error.h"

typedef struct decide_case {
    int status;
    const char *body;
    int rc;             /* 0 server's URL, 1 fallback, < 0 error */
    const char *scheme; /* of the result (rc >= 0) */
    const char *authority;
    const char *path;
    const char *said; /* in the note (rc 1) or the error (rc < 0) */
} decide_case_t;

static const decide_case_t cases[] = {
    {200, "{\"wsURL\":\"ws://127.0.0.1:19001/api/v1/ws\"}", 0, "ws", "127.0.0.1:19001",
     "/api/v1/ws", NULL},
    {200, "{\"wsURL\":\"wss://push.example/h/api/v1/ws\",\"sseURL\":null}", 0, "wss",
     "push.example:443", "/h/api/v1/ws", NULL},
    {200, "{\"wsURL\":\"wss://[::1]:8443/api/v1/ws\"}", 0, "wss", "[::1]:8443", "/api/v1/ws", NULL},
    {200, "{\"wsURL\":null}", 1, "ws", "api-host:9001", "/api/v1/ws", "scale-out"},
    {404, "{\"error\":{\"code\":\"not_found\",\"message\":\"no such path\"}}", 1, "ws",
     "api-host:9001", "/api/v1/ws", "no GET /api/v1/info"},
    {404, "", 1, "ws", "api-host:9001", "/api/v1/ws", "--ws-server"},
    {200, "not json", 1, "ws", "api-host:9001", "/api/v1/ws", "no wsURL"},
    {200, "{\"wsURL\":\"http://x/api/v1/ws\"}", HS_EPROTO, NULL, NULL, NULL, "unusable wsURL"},
    {200, "{\"wsURL\":\"ws://x:port/\"}", HS_EPROTO, NULL, NULL, NULL, "unusable wsURL"},
};

static void test_decide(void **state)
{
    (void)state;
    hs_cli_url_t fallback;
    char err[512];
    assert_int_equal(
        hs_cli_url_parse("ws://api-host:9001/api/v1/ws", "ws", "80", &fallback, err, sizeof(err)),
        0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const decide_case_t *c = &cases[i];
        hs_cli_url_t out;
        char note[1800] = "";
        err[0] = '\0';
        int rc = hs_cli_discover_decide(c->status, c->body, strlen(c->body), &fallback, &out, note,
                                        sizeof(note), err, sizeof(err));
        print_message("case %zu: %s\n", i, c->body);
        assert_int_equal(rc, c->rc);
        if (rc >= 0) {
            assert_string_equal(out.scheme, c->scheme);
            assert_string_equal(out.authority, c->authority);
            assert_string_equal(out.path, c->path);
        }
        if (c->said)
            assert_non_null(strstr(rc == 1 ? note : err, c->said));
        if (rc == 1) /* the note names where it goes instead */
            assert_non_null(strstr(note, "ws://api-host:9001/api/v1/ws"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_decide)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
