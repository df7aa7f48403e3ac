/* hs_redact_url, as data: URLs in, what may be shown out. The password must
 * never come out, whatever the shape of the text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "core/redact.h"

static void test_urls(void **state)
{
    (void)state;
    static const struct {
        const char *url;
        const char *shown;
    } cases[] = {
        {"mysql://houston:hunter2@db:3306/houston", "mysql://houston:***@db:3306/houston"},
        {"mariadb://u:hunter2@db/x", "mariadb://u:***@db/x"},
        {"mysql://u:hun@ter2@db/x", "mysql://u:***@db/x"}, /* '@' in the password */
        {"mysql://u:hun:ter2@db/x", "mysql://u:***@db/x"}, /* ':' in the password */
        {"mysql://u:hunter2@", "mysql://u:***@"},          /* malformed: no host */
        {"mysql://u:hunter2@db", "mysql://u:***@db"},      /* malformed: no database */
        {"mysql://:hunter2@db/x", "mysql://:***@db/x"},    /* no user */
        {"redis://:hunter2@cache:6379/0", "redis://:***@cache:6379/0"},
        {"redis://u:hunter2@cache", "redis://u:***@cache"},
        {"mysql://houston@db/x", "mysql://houston@db/x"}, /* no password */
        {"mysql://db:3306/x", "mysql://db:3306/x"},       /* no credentials */
        {"redis://cache:6379", "redis://cache:6379"},
        {"sqlite:/var/lib/houston/h.db", "sqlite:/var/lib/houston/h.db"},
        {"u:hunter2@db/x", "u:***@db/x"},            /* no scheme */
        {"mysql:/u:hunter2@db/x", "mysql:***@db/x"}, /* a malformed scheme */
        {"mysql:u:hunter2@db/x", "mysql:***@db/x"},
        {"hunter2@db", "***@db"}, /* cannot tell: hidden */
        {"mysql//hunter2@db/x", "***@db/x"},
        {"@@@", "***@"},
        {"::@", ":***@"},
        {"://hunter2@x", "://hunter2@x"}, /* an empty scheme, a user */
        {"", ""},
        {"garbage", "garbage"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[256];
        hs_redact_url(cases[i].url, out, sizeof(out));
        if (strcmp(out, cases[i].shown) != 0)
            fail_msg("%s: shown as \"%s\", expected \"%s\"", cases[i].url, out, cases[i].shown);
    }
}

/* A buffer too small cuts the text; it never lets the password through. */
static void test_short_buffers(void **state)
{
    (void)state;
    const char *url = "mysql://houston:hunter2@db:3306/houston";
    for (size_t len = 1; len < strlen(url) + 8; len++) {
        char out[64];
        memset(out, 'x', sizeof(out));
        hs_redact_url(url, out, len);
        assert_true(strlen(out) < len);
        assert_null(strstr(out, "hun"));
        assert_null(strstr(out, "ter2"));
    }
    char out[1] = {'x'};
    hs_redact_url(url, out, 0); /* nothing written */
    assert_int_equal(out[0], 'x');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_urls),
        cmocka_unit_test(test_short_buffers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
