/* The topic -> partition function: FNV-1a 32-bit, checked against the
 * published FNV test vectors, and its value mod the partition count (the
 * on-Redis format: every process must compute the same). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "bus/partition.h"

static unsigned of(const char *topic, unsigned count)
{
    return hs_partition_of(topic, strlen(topic), count);
}

static void test_fnv1a_vectors(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        uint32_t hash;
    } vectors[] = {
        {"", 0x811c9dc5u},       {"a", 0xe40c292cu},      {"b", 0xe70c2de5u},
        {"foobar", 0xbf9cf968u}, {"orders", 0x325e96ecu}, {"chat/room-1", 0x72e7f22du},
    };
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++)
        assert_int_equal(hs_partition_hash(vectors[i].text, strlen(vectors[i].text)),
                         vectors[i].hash);
    /* Bytes, not characters: a topic with a NUL or high bytes hashes all of them. */
    assert_int_not_equal(hs_partition_hash("a\0b", 3), hs_partition_hash("a", 1));
    assert_int_equal(hs_partition_hash("\xc3\xa9", 2), 0x1e9de8c1u);
}

static void test_partition_of(void **state)
{
    (void)state;
    assert_int_equal(of("", 16), 0x811c9dc5u % 16);
    assert_int_equal(of("t", 16), 3);
    assert_int_equal(of("u", 16), 0);
    assert_int_equal(of("orders", 16), 12);
    assert_int_equal(of("chat/room-1", 16), 13);
    assert_int_equal(of("orders", 1024), 0x325e96ecu % 1024);
    assert_int_equal(of("orders", 1), 0);
    assert_int_equal(of("anything", 0), 0); /* no partitions: one stream */
    for (unsigned n = 1; n <= HS_PARTITIONS_MAX; n *= 2)
        assert_true(of("chat/room-1", n) < n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fnv1a_vectors),
        cmocka_unit_test(test_partition_of),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
