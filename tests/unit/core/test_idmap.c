/* The ULID-keyed hash map: insert, replace, lookup, removal with backward
 * shift (entries behind a hole must stay reachable), iteration, churn, and
 * ids that differ only in their time or only in their randomness. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "core/idmap.h"

#define N 5000

static hs_ulid_t ids[N];
static int values[N];

static void test_put_get_remove(void **state)
{
    (void)state;
    hs_idmap_t map;
    hs_idmap_init(&map);
    assert_null(hs_idmap_get(&map, &ids[0]));
    assert_null(hs_idmap_remove(&map, &ids[0]));
    for (int i = 0; i < N; i++)
        assert_null(hs_idmap_put(&map, &ids[i], &values[i]));
    assert_int_equal(hs_idmap_count(&map), N);
    for (int i = 0; i < N; i++)
        assert_ptr_equal(hs_idmap_get(&map, &ids[i]), &values[i]);
    /* An id never put is absent. */
    hs_ulid_t absent = ids[N - 1];
    assert_true(hs_ulid_increment(&absent));
    assert_null(hs_idmap_get(&map, &absent));
    /* Remove every other id; the rest must stay reachable. */
    for (int i = 0; i < N; i += 2)
        assert_ptr_equal(hs_idmap_remove(&map, &ids[i]), &values[i]);
    assert_null(hs_idmap_remove(&map, &ids[0]));
    assert_int_equal(hs_idmap_count(&map), N / 2);
    for (int i = 0; i < N; i++) {
        void *v = hs_idmap_get(&map, &ids[i]);
        if (i % 2 == 0)
            assert_null(v);
        else
            assert_ptr_equal(v, &values[i]);
    }
    /* Replace returns the old value and keeps the count. */
    static int other;
    assert_ptr_equal(hs_idmap_put(&map, &ids[1], &other), &values[1]);
    assert_ptr_equal(hs_idmap_get(&map, &ids[1]), &other);
    assert_int_equal(hs_idmap_count(&map), N / 2);
    /* Iteration visits each entry once, with its key. */
    size_t pos = 0, seen = 0;
    const hs_idmap_slot_t *slot;
    while ((slot = hs_idmap_next(&map, &pos)) != NULL) {
        assert_ptr_equal(hs_idmap_get(&map, &slot->key), slot->value);
        seen++;
    }
    assert_int_equal(seen, N / 2);
    hs_idmap_dispose(&map);
}

static void test_churn(void **state)
{
    (void)state;
    hs_idmap_t map;
    hs_idmap_init(&map);
    /* Many insert/remove rounds on few keys: no tombstones accumulate, so the
     * table does not grow past what the live count needs. */
    for (int round = 0; round < 200; round++) {
        for (int i = 0; i < 64; i++)
            hs_idmap_put(&map, &ids[i], &values[i]);
        for (int i = 0; i < 64; i++)
            assert_ptr_equal(hs_idmap_remove(&map, &ids[i]), &values[i]);
    }
    assert_int_equal(hs_idmap_count(&map), 0);
    assert_true(map.cap <= 128);
    hs_idmap_dispose(&map);
}

int main(void)
{
    /* Half the ids share their time and differ in the last random bytes (as
     * ids made in one millisecond do), half differ only in their time. */
    hs_ulid_t base;
    memset(base.bytes, 0x5a, sizeof(base.bytes)); /* no i below N spells 0x5a5a */
    for (int i = 0; i < N; i++) {
        ids[i] = base;
        if (i % 2 == 0) {
            ids[i].bytes[14] = (uint8_t)(i >> 8);
            ids[i].bytes[15] = (uint8_t)i;
        } else {
            ids[i].bytes[4] = (uint8_t)(i >> 8);
            ids[i].bytes[5] = (uint8_t)i;
        }
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_get_remove),
        cmocka_unit_test(test_churn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
