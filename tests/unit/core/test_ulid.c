/* ULIDs: format/parse round trip, canonical spelling, rejection of bad
 * input, monotonic order within a millisecond and when the clock steps
 * back, and time extraction. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "core/error.h"
#include "core/ulid.h"

static void test_known_value(void **state)
{
    (void)state;
    hs_ulid_t id;
    assert_int_equal(hs_ulid_parse("01ARZ3NDEKTSV4RRFFQ69G5FAV", 26, &id), 0);
    assert_int_equal(hs_ulid_time_ms(&id), 1469922850259ull);
    char out[HS_ULID_LEN + 1];
    hs_ulid_format(&id, out);
    assert_string_equal(out, "01ARZ3NDEKTSV4RRFFQ69G5FAV");
    /* The largest ULID. */
    assert_int_equal(hs_ulid_parse("7ZZZZZZZZZZZZZZZZZZZZZZZZZ", 26, &id), 0);
    for (int i = 0; i < 16; i++)
        assert_int_equal(id.bytes[i], 0xff);
}

/* The plain definition, bit by bit, against which the fast one is checked:
 * digit i is bits 5i-2 .. 5i+2 of the 128, counted from the top. */
static void reference_format(const uint8_t b[16], char out[HS_ULID_LEN + 1])
{
    static const char alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    for (int i = 0; i < HS_ULID_LEN; i++) {
        unsigned value = 0;
        for (int k = 0; k < 5; k++) {
            int pos = 5 * i - 2 + k;
            value = value << 1 | (pos >= 0 ? (unsigned)(b[pos / 8] >> (7 - pos % 8)) & 1u : 0u);
        }
        out[i] = alphabet[value];
    }
    out[HS_ULID_LEN] = '\0';
}

static void test_random_round_trips(void **state)
{
    (void)state;
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (int round = 0; round < 20000; round++) {
        hs_ulid_t id, back;
        for (int i = 0; i < 16; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            id.bytes[i] = (uint8_t)x;
        }
        if (round % 3 == 0) /* runs of zeros and ones at either end */
            memset(id.bytes + (round % 16), round % 2 ? 0xff : 0, (size_t)(16 - round % 16));
        char want[HS_ULID_LEN + 1], got[HS_ULID_LEN + 1];
        reference_format(id.bytes, want);
        hs_ulid_format(&id, got);
        assert_string_equal(got, want);
        assert_int_equal(hs_ulid_parse(got, HS_ULID_LEN, &back), 0);
        assert_memory_equal(back.bytes, id.bytes, 16);
    }
}

/* What hs_ulid_parse rejects, and so hs_ulid_parse_strict too. */
static const char *const not_ulids[] = {
    "01ARZ3NDEKTSV4RRFFQ69G5FA",   /* 25 */
    "01ARZ3NDEKTSV4RRFFQ69G5FAVV", /* 27 */
    "01ARZ3NDEKTSV4RRFFQ69G5FAU",  /* U is excluded */
    "01ARZ3NDEKTSV4RRFFQ69G5FAI",  /* I is excluded */
    "01ARZ3NDEKTSV4RRFFQ69G5FAL",  /* L is excluded */
    "01ARZ3NDEKTSV4RRFFQ69G5FAO",  /* O is excluded */
    "81ARZ3NDEKTSV4RRFFQ69G5FAV",  /* overflows 128 bits */
    "Z1ARZ3NDEKTSV4RRFFQ69G5FAV",  /* overflows 128 bits */
    "01ARZ3NDEKTSV4RRFFQ69G5FA-",  "",
};
/* 26 characters asked for, fewer there: the NUL is a bad character. */
static const char short_ulid[] = "01ARZ3NDEKTSV4RRFFQ69G5F\0V";

static void test_canonical_and_invalid(void **state)
{
    (void)state;
    char out[HS_ULID_LEN + 1];
    assert_int_equal(hs_ulid_canonical("01arz3ndektsv4rrffq69g5fav", 26, out), 0);
    assert_string_equal(out, "01ARZ3NDEKTSV4RRFFQ69G5FAV");
    hs_ulid_t id;
    for (size_t i = 0; i < sizeof(not_ulids) / sizeof(not_ulids[0]); i++)
        assert_int_equal(hs_ulid_parse(not_ulids[i], strlen(not_ulids[i]), &id), HS_EINVAL);
    assert_int_equal(hs_ulid_parse(short_ulid, 26, &id), HS_EINVAL);
}

/* hs_ulid_parse_strict rejects s, leaving out as it was. */
static void expect_not_strict(const char *s, size_t len)
{
    hs_ulid_t id, untouched;
    memset(&id, 0xaa, sizeof(id));
    untouched = id;
    assert_int_equal(hs_ulid_parse_strict(s, len, &id), HS_EINVAL);
    assert_memory_equal(id.bytes, untouched.bytes, 16);
}

/* Only the spelling hs_ulid_format writes: what hs_ulid_parse rejects and
 * lower case, which it accepts. */
static void test_parse_strict(void **state)
{
    (void)state;
    hs_ulid_t id, want;
    const char *canonical[] = {"01ARZ3NDEKTSV4RRFFQ69G5FAV", "7ZZZZZZZZZZZZZZZZZZZZZZZZZ",
                               "00000000000000000000000000"};
    for (size_t i = 0; i < sizeof(canonical) / sizeof(canonical[0]); i++) {
        memset(&id, 0xaa, sizeof(id));
        assert_int_equal(hs_ulid_parse_strict(canonical[i], HS_ULID_LEN, &id), 0);
        assert_int_equal(hs_ulid_parse(canonical[i], HS_ULID_LEN, &want), 0);
        assert_memory_equal(id.bytes, want.bytes, 16);
    }
    expect_not_strict("01arz3ndektsv4rrffq69g5fav", 26); /* lower case */
    expect_not_strict("01ARZ3NDEKTSV4RRFFQ69G5FaV", 26); /* one lower-case letter */
    for (size_t i = 0; i < sizeof(not_ulids) / sizeof(not_ulids[0]); i++)
        expect_not_strict(not_ulids[i], strlen(not_ulids[i]));
    expect_not_strict(short_ulid, 26);
    expect_not_strict(NULL, 26);
}

static void test_monotonic_same_ms_and_clock_back(void **state)
{
    (void)state;
    hs_ulid_gen_t gen;
    hs_ulid_gen_init(&gen);
    hs_ulid_t prev, next;
    char a[HS_ULID_LEN + 1], b[HS_ULID_LEN + 1];
    assert_int_equal(hs_ulid_gen_next(&gen, 1000, &prev), 0);
    for (int i = 0; i < 100000; i++) {
        uint64_t now = i < 50000 ? 1000 : 900; /* then the clock steps back */
        assert_int_equal(hs_ulid_gen_next(&gen, now, &next), 0);
        assert_true(hs_ulid_cmp(&prev, &next) < 0);
        hs_ulid_format(&prev, a);
        hs_ulid_format(&next, b);
        assert_true(strcmp(a, b) < 0); /* string order is id order */
        assert_int_equal(hs_ulid_time_ms(&next), 1000);
        prev = next;
    }
    assert_int_equal(hs_ulid_gen_next(&gen, 2000, &next), 0);
    assert_int_equal(hs_ulid_time_ms(&next), 2000);
    assert_true(hs_ulid_cmp(&prev, &next) < 0);
}

static void test_process_generator(void **state)
{
    (void)state;
    hs_ulid_t prev, next;
    hs_ulid_new(&prev);
    for (int i = 0; i < 10000; i++) {
        hs_ulid_new(&next);
        assert_true(hs_ulid_cmp(&prev, &next) < 0);
        prev = next;
    }
}

/* The store mints "last id + 1" (issue 16): the carry runs through the
 * random part into the time, and the largest id has no successor. */
static void test_increment(void **state)
{
    (void)state;
    hs_ulid_t id;
    char out[HS_ULID_LEN + 1];
    assert_int_equal(hs_ulid_parse("01ARZ3NDEKTSV4RRFFQ69G5FAV", 26, &id), 0);
    assert_true(hs_ulid_increment(&id));
    hs_ulid_format(&id, out);
    assert_string_equal(out, "01ARZ3NDEKTSV4RRFFQ69G5FAW");
    assert_int_equal(hs_ulid_parse("01ARZ3NDEKZZZZZZZZZZZZZZZZ", 26, &id), 0);
    uint64_t ms = hs_ulid_time_ms(&id);
    assert_true(hs_ulid_increment(&id));
    hs_ulid_format(&id, out);
    assert_string_equal(out, "01ARZ3NDEM0000000000000000");
    assert_int_equal(hs_ulid_time_ms(&id), ms + 1);
    assert_int_equal(hs_ulid_parse("7ZZZZZZZZZZZZZZZZZZZZZZZZZ", 26, &id), 0);
    assert_false(hs_ulid_increment(&id));
    hs_ulid_format(&id, out);
    assert_string_equal(out, "7ZZZZZZZZZZZZZZZZZZZZZZZZZ");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_increment),
        cmocka_unit_test(test_known_value),
        cmocka_unit_test(test_canonical_and_invalid),
        cmocka_unit_test(test_parse_strict),
        cmocka_unit_test(test_random_round_trips),
        cmocka_unit_test(test_monotonic_same_ms_and_clock_back),
        cmocka_unit_test(test_process_generator),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
