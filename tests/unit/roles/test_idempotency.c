/* The Idempotency-Key header check and the canonical body hash. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "core/error.h"
#include "roles/idempotency.h"

static int check(const char *key, size_t len)
{
    hs_api_error_t err;
    int rc = hs_idempotency_key_check(key, len, &err);
    if (rc != 0) {
        assert_int_equal(err.status, 400);
        assert_string_equal(err.code, "invalid_field");
        assert_non_null(strstr(err.message, "'Idempotency-Key'"));
    }
    return rc;
}

static void test_key_check(void **state)
{
    (void)state;
    char long_key[130];
    memset(long_key, 'k', sizeof(long_key));
    assert_int_equal(check("a", 1), 0);
    assert_int_equal(check(long_key, 128), 0);
    assert_int_equal(check(" ~!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}", 33), 0);
    assert_int_equal(check(long_key, 129), HS_EINVAL);
    assert_int_equal(check("", 0), HS_EINVAL);
    assert_int_equal(check(NULL, 0), HS_EINVAL);
    assert_int_equal(check("a\tb", 3), HS_EINVAL);
    assert_int_equal(check("a\x7f", 2), HS_EINVAL);
    assert_int_equal(check("caf\xc3\xa9", 5), HS_EINVAL);
    assert_int_equal(check("a\0b", 3), HS_EINVAL);
}

static void hash(const char *topic, const char *content, size_t content_len, const char *author,
                 char out[HS_IDEMPOTENCY_HASH_LEN + 1])
{
    hs_publish_input_t in = {
        .topic = topic, .content = content, .content_len = content_len, .author = author};
    hs_idempotency_body_hash(&in, out);
}

static void test_body_hash(void **state)
{
    (void)state;
    char a[65], b[65];
    /* SHA-256 of "3:abc1:x1:a" (length-prefixed fields) */
    hash("abc", "x", 1, "a", a);
    assert_string_equal(a, "9834558fe2d927ed1cf6715af904ff53d4618e5145f54c484da3312fb24c43c1");
    /* Field boundaries count: moving a byte from one field to the next differs. */
    hash("ab", "cx", 2, "a", b);
    assert_string_not_equal(a, b);
    hash("abc", "", 0, "xa", b);
    assert_string_not_equal(a, b);
    /* Content is bytes: a NUL and what follows it count. */
    hash("abc", "x\0y", 3, "a", b);
    assert_string_not_equal(a, b);
}

/* A batch's hash: order and count matter, and it never equals a single
 * publish's hash of the same fields. */
static void test_batch_hash(void **state)
{
    (void)state;
    hs_publish_input_t in[2] = {{.topic = "abc", .content = "x", .content_len = 1, .author = "a"},
                                {.topic = "t", .content = "y", .content_len = 1, .author = ""}};
    hs_publish_input_t swapped[2] = {in[1], in[0]};
    char one[65], two[65], other[65], single[65];
    hs_idempotency_batch_hash(in, 2, one);
    hs_idempotency_batch_hash(in, 2, two);
    assert_string_equal(one, two);
    assert_int_equal(strlen(one), 64);
    hs_idempotency_batch_hash(swapped, 2, other);
    assert_string_not_equal(one, other);
    hs_idempotency_batch_hash(in, 1, other);
    assert_string_not_equal(one, other);
    hs_idempotency_body_hash(&in[0], single);
    assert_string_not_equal(other, single);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_check),
        cmocka_unit_test(test_body_hash),
        cmocka_unit_test(test_batch_hash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
