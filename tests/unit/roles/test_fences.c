/* A notifier's fencing tokens: per partition the highest token seen; a
 * DELIVER with a lower one (a stale partition holder's) is dropped, an
 * equal or higher one goes on; no token, or a gap (reset), lets all in. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "roles/fences.h"

static void test_stale_holder_dropped(void **state)
{
    (void)state;
    hs_fences_t *f = hs_fences_new();
    assert_true(hs_fences_admit(f, 3, 7));
    assert_true(hs_fences_admit(f, 3, 7));  /* the same holder goes on */
    assert_true(hs_fences_admit(f, 3, 9));  /* a new holder took over */
    assert_false(hs_fences_admit(f, 3, 7)); /* the old one is stale now */
    assert_false(hs_fences_admit(f, 3, 8));
    assert_true(hs_fences_admit(f, 3, 9));
    assert_true(hs_fences_admit(f, 4, 1)); /* partitions are apart */
    assert_true(hs_fences_admit(f, 3, 0)); /* no token: not partitioned */
    assert_true(hs_fences_admit(f, -1, 1));
    assert_true(hs_fences_admit(f, 5000, 1)); /* out of range: let through */
    hs_fences_reset(f);
    assert_true(hs_fences_admit(f, 3, 1)); /* after a gap, tokens may start low */
    hs_fences_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stale_holder_dropped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
