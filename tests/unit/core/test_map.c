/* The string-keyed hash map: insert, replace, lookup, removal with
 * backward shift (entries behind a hole must stay reachable), iteration. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "core/map.h"

#define N 5000

static char keys[N][16];

static void test_put_get_remove(void **state)
{
    (void)state;
    hs_map_t map;
    hs_map_init(&map);
    assert_null(hs_map_get(&map, "x", 1));
    assert_null(hs_map_remove(&map, "x", 1));
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof(keys[i]), "key-%d", i);
        assert_null(hs_map_put(&map, keys[i], strlen(keys[i]), keys[i]));
    }
    assert_int_equal(hs_map_count(&map), N);
    for (int i = 0; i < N; i++)
        assert_ptr_equal(hs_map_get(&map, keys[i], strlen(keys[i])), keys[i]);
    /* A prefix of a key is another key. */
    assert_null(hs_map_get(&map, "key-1", 4));
    /* Remove every other key; the rest must stay reachable. */
    for (int i = 0; i < N; i += 2)
        assert_ptr_equal(hs_map_remove(&map, keys[i], strlen(keys[i])), keys[i]);
    assert_int_equal(hs_map_count(&map), N / 2);
    for (int i = 0; i < N; i++) {
        void *v = hs_map_get(&map, keys[i], strlen(keys[i]));
        if (i % 2 == 0)
            assert_null(v);
        else
            assert_ptr_equal(v, keys[i]);
    }
    /* Replace returns the old value. */
    static char other[] = "key-1";
    assert_ptr_equal(hs_map_put(&map, other, 5, other), keys[1]);
    assert_ptr_equal(hs_map_get(&map, "key-1", 5), other);
    /* Iteration visits each value once. */
    size_t pos = 0, seen = 0;
    while (hs_map_next(&map, &pos))
        seen++;
    assert_int_equal(seen, N / 2);
    hs_map_dispose(&map);
}

static void test_churn(void **state)
{
    (void)state;
    hs_map_t map;
    hs_map_init(&map);
    /* Many insert/remove rounds on few keys: no tombstones accumulate, so the
     * table does not grow past what the live count needs. */
    for (int round = 0; round < 200; round++) {
        for (int i = 0; i < 64; i++)
            hs_map_put(&map, keys[i], strlen(keys[i]), keys[i]);
        for (int i = 0; i < 64; i++)
            assert_ptr_equal(hs_map_remove(&map, keys[i], strlen(keys[i])), keys[i]);
    }
    assert_int_equal(hs_map_count(&map), 0);
    assert_true(map.cap <= 128);
    hs_map_dispose(&map);
}

int main(void)
{
    for (int i = 0; i < N; i++)
        snprintf(keys[i], sizeof(keys[i]), "key-%d", i);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_get_remove),
        cmocka_unit_test(test_churn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
