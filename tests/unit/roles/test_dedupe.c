/* The notifier's window of delivered ids: a repeat inside the window is
 * recognized, the oldest id leaves when the window is full, and a long run
 * of ids keeps the map and the ring in step. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "core/ulid.h"
#include "roles/dedupe.h"

static void make_id(unsigned n, char out[HS_ULID_LEN + 1])
{
    snprintf(out, HS_ULID_LEN + 1, "01M8KY%020u", n);
}

static void test_repeat_inside_the_window(void **state)
{
    (void)state;
    hs_dedupe_t *d = hs_dedupe_new(3);
    char a[27], b[27], c[27], e[27];
    make_id(1, a);
    make_id(2, b);
    make_id(3, c);
    make_id(4, e);
    assert_false(hs_dedupe_seen(d, a));
    assert_false(hs_dedupe_seen(d, b));
    assert_true(hs_dedupe_seen(d, a));
    assert_false(hs_dedupe_seen(d, c));
    assert_false(hs_dedupe_seen(d, e)); /* evicts a, the oldest */
    assert_true(hs_dedupe_seen(d, b));
    assert_true(hs_dedupe_seen(d, c));
    assert_true(hs_dedupe_seen(d, e));
    assert_false(hs_dedupe_seen(d, a)); /* forgotten, recorded again (evicts b) */
    assert_false(hs_dedupe_seen(d, b));
    hs_dedupe_free(d);
}

static void test_not_an_id_is_never_a_repeat(void **state)
{
    (void)state;
    hs_dedupe_t *d = hs_dedupe_new(4);
    assert_false(hs_dedupe_seen(d, "short"));
    assert_false(hs_dedupe_seen(d, "short"));
    assert_false(hs_dedupe_seen(d, ""));
    hs_dedupe_free(d);
}

static void test_long_run(void **state)
{
    (void)state;
    enum { WINDOW = 1000, RUN = 50000 };
    hs_dedupe_t *d = hs_dedupe_new(WINDOW);
    char id[27];
    for (unsigned i = 0; i < RUN; i++) {
        make_id(i, id);
        assert_false(hs_dedupe_seen(d, id));
        if (i >= WINDOW / 2) { /* an id from half a window back is still known */
            make_id(i - WINDOW / 2, id);
            assert_true(hs_dedupe_seen(d, id));
        }
    }
    make_id(RUN - WINDOW - 1, id); /* just outside */
    assert_false(hs_dedupe_seen(d, id));
    hs_dedupe_free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_repeat_inside_the_window),
        cmocka_unit_test(test_not_an_id_is_never_a_repeat),
        cmocka_unit_test(test_long_run),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
