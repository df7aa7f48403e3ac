/* Resume tokens: a made token checks and gives its connection id back; a
 * changed byte, another secret, a wrong length and an expired token are
 * refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "core/error.h"
#include "roles/resume_token.h"

static const char secret[] = "a resume secret";
static const char conn[] = "01M8KY0000000000000000000A";

static void test_round_trip(void **state)
{
    (void)state;
    char token[HS_RESUME_TOKEN_LEN + 1], id[HS_ULID_LEN + 1];
    hs_resume_token_make(secret, strlen(secret), conn, 5000, token);
    assert_int_equal(strlen(token), HS_RESUME_TOKEN_LEN);
    assert_int_equal(hs_resume_token_check(secret, strlen(secret), token, strlen(token), 4999, id),
                     0);
    assert_string_equal(id, conn);
}

static void test_forged_or_foreign_tokens_are_refused(void **state)
{
    (void)state;
    char token[HS_RESUME_TOKEN_LEN + 1], id[HS_ULID_LEN + 1];
    hs_resume_token_make(secret, strlen(secret), conn, 5000, token);
    assert_int_equal(hs_resume_token_check("other", 5, token, strlen(token), 0, id), HS_EINVAL);
    for (size_t i = 0; i < HS_RESUME_TOKEN_LEN; i += 7) {
        char forged[HS_RESUME_TOKEN_LEN + 1];
        memcpy(forged, token, sizeof(forged));
        forged[i] = forged[i] == 'A' ? 'B' : 'A';
        assert_int_equal(
            hs_resume_token_check(secret, strlen(secret), forged, strlen(forged), 0, id),
            HS_EINVAL);
    }
    assert_int_equal(hs_resume_token_check(secret, strlen(secret), token, 87, 0, id), HS_EINVAL);
    assert_int_equal(hs_resume_token_check(secret, strlen(secret), "", 0, 0, id), HS_EINVAL);
}

static void test_expired_token_is_refused(void **state)
{
    (void)state;
    char token[HS_RESUME_TOKEN_LEN + 1], id[HS_ULID_LEN + 1];
    hs_resume_token_make(secret, strlen(secret), conn, 5000, token);
    assert_int_equal(hs_resume_token_check(secret, strlen(secret), token, strlen(token), 5001, id),
                     HS_ECLOSED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_forged_or_foreign_tokens_are_refused),
        cmocka_unit_test(test_expired_token_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
