/* The request target as logged: credentials in the query are masked
 * (token, resume, key, ...), names compared decoded, everything else kept. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "core/alloc.h"
#include "http/http_internal.h"

static void check(const char *url, const char *expected)
{
    hs_http_request_t *req = hs_http__request_new(NULL, NULL);
    req->url = hs_strdup(url);
    req->url_len = strlen(url);
    char out[256];
    hs_http_loggable_target(req, out, sizeof(out));
    assert_string_equal(out, expected);
    hs_http__request_free(req);
}

static void test_loggable_target(void **state)
{
    (void)state;
    check("/api/v1/ws", "/api/v1/ws");
    check("/api/v1/ws?token=eyJ.abc.def", "/api/v1/ws?token=***");
    check("/api/v1/ws?lastID=01H&token=a.b.c&resume=Zm9v",
          "/api/v1/ws?lastID=01H&token=***&resume=***");
    check("/api/v1/messages?topic=news&key=k1&api_key=k2&Access_Token=t",
          "/api/v1/messages?topic=news&key=***&api_key=***&Access_Token=***");
    check("/x?tok%65n=secret&topic=tokens", "/x?tok%65n=***&topic=tokens");
    check("/x?token&token=&a=b", "/x?token&token=***&a=b");
    check("/x?tokenx=visible", "/x?tokenx=visible");
    /* cut to the buffer, never past it */
    hs_http_request_t *req = hs_http__request_new(NULL, NULL);
    req->url = hs_strdup("/api/v1/ws?token=abcdefgh");
    char small[14];
    hs_http_loggable_target(req, small, sizeof(small));
    assert_string_equal(small, "/api/v1/ws?to");
    hs_http_loggable_target(req, small, 1);
    assert_string_equal(small, "");
    hs_http__request_free(req);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loggable_target),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
