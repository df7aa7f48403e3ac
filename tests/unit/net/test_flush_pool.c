/* The flush pool: every item is handed to exactly one thread, in every one
 * of many back-to-back jobs of all sizes, and a pool of no helpers is none. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdatomic.h>

#include "net/flush_pool.h"

typedef struct item {
    atomic_uint hits;
    unsigned char pad[60]; /* one cache line each, so threads do not share */
} item_t;

static void hit(void *p)
{
    item_t *it = p;
    atomic_fetch_add(&it->hits, 1);
}

static void test_every_item_once_per_job(void **state)
{
    (void)state;
    enum { MAX = 5000, JOBS = 300 };
    static item_t items[MAX];
    static void *ptrs[MAX];
    for (size_t i = 0; i < MAX; i++)
        ptrs[i] = &items[i];
    hs_flush_pool_t *pool = hs_flush_pool_new(3);
    assert_non_null(pool);
    for (unsigned job = 0; job < JOBS; job++) {
        size_t count = (job * 7919u) % MAX; /* 0, small and large jobs */
        for (size_t i = 0; i < MAX; i++)
            atomic_store(&items[i].hits, 0);
        hs_flush_pool_run(pool, ptrs, count, hit);
        for (size_t i = 0; i < MAX; i++)
            assert_int_equal(atomic_load(&items[i].hits), i < count ? 1 : 0);
    }
    hs_flush_pool_free(pool);
}

static void test_no_helpers_is_no_pool(void **state)
{
    (void)state;
    assert_null(hs_flush_pool_new(0));
    hs_flush_pool_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_item_once_per_job),
        cmocka_unit_test(test_no_helpers_is_no_pool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
