/* The order of one topic's live messages (live_order.c): a repeat is
 * dropped, a message whose predecessor was delivered goes at once, one that
 * comes early is held and goes after its predecessor, a gap is filled from
 * the store's messages, the hold has a limit, and nothing moves before the
 * baseline is known. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "roles/live_order.h"

/* What was delivered, in order. */
typedef struct sink {
    char ids[64][HS_ULID_LEN + 1];
    size_t count;
} sink_t;

static void deliver_cb(const char *id, const char *json, size_t len, void *data)
{
    sink_t *s = data;
    assert_true(s->count < 64);
    assert_int_equal(strlen(json), len);
    assert_non_null(strstr(json, id)); /* the message that goes with the id */
    snprintf(s->ids[s->count++], HS_ULID_LEN + 1, "%s", id);
}

static char ids[16][HS_ULID_LEN + 1];

static const char *id(int n)
{
    snprintf(ids[n], sizeof(ids[n]), "01M8KY%020d", n);
    return ids[n];
}

static char json_text[128];

static const char *json(int n)
{
    snprintf(json_text, sizeof(json_text), "{\"id\":\"%s\"}", id(n));
    return json_text;
}

/* Offers message n (predecessor p; -1: the topic's first) at time now. */
static hs_live_result_t offer(hs_live_order_t *o, int n, int p, uint64_t now, sink_t *s)
{
    char prev[HS_ULID_LEN + 1] = "";
    if (p >= 0)
        snprintf(prev, sizeof(prev), "%s", id(p));
    const char *text = json(n);
    return hs_live_order_offer(o, id(n), prev, text, strlen(text), now, deliver_cb, s);
}

static void assert_delivered(const sink_t *s, const int *want, size_t count)
{
    assert_int_equal(s->count, count);
    for (size_t i = 0; i < count; i++)
        assert_string_equal(s->ids[i], id(want[i]));
}

static hs_live_budget_t budget(void)
{
    return (hs_live_budget_t){.max_held = 4, .max_held_bytes = 1 << 20};
}

static void test_in_order_and_repeat(void **state)
{
    (void)state;
    hs_live_budget_t b = budget();
    hs_live_order_t o;
    hs_live_order_init(&o, &b);
    sink_t s = {0};
    hs_live_order_set_baseline(&o, "", 1, deliver_cb, &s);
    assert_int_equal(offer(&o, 1, -1, 1, &s), HS_LIVE_DELIVERED);
    assert_int_equal(offer(&o, 2, 1, 1, &s), HS_LIVE_DELIVERED);
    assert_int_equal(offer(&o, 2, 1, 1, &s), HS_LIVE_REPEAT); /* redelivered */
    assert_int_equal(offer(&o, 1, -1, 1, &s), HS_LIVE_REPEAT);
    assert_int_equal(offer(&o, 3, 2, 1, &s), HS_LIVE_DELIVERED);
    assert_delivered(&s, (int[]){1, 2, 3}, 3);
    assert_false(hs_live_order_holding(&o));
    assert_string_equal(o.last, id(3));
    hs_live_order_dispose(&o);
}

/* 3 and 4 come before 2: held, and delivered after it, in id order. */
static void test_gap_held_then_closed_by_the_predecessor(void **state)
{
    (void)state;
    hs_live_budget_t b = budget();
    hs_live_order_t o;
    hs_live_order_init(&o, &b);
    sink_t s = {0};
    hs_live_order_set_baseline(&o, id(1), 1, deliver_cb, &s);
    assert_int_equal(offer(&o, 4, 3, 10, &s), HS_LIVE_HELD);
    assert_int_equal(offer(&o, 3, 2, 11, &s), HS_LIVE_HELD);
    assert_int_equal(offer(&o, 4, 3, 12, &s), HS_LIVE_HELD); /* held already */
    assert_int_equal(s.count, 0);
    assert_true(hs_live_order_holding(&o));
    assert_int_equal(o.held_count, 2);
    assert_int_equal(o.gap_since_ms, 10);
    assert_true(b.held_bytes > 0);
    assert_int_equal(offer(&o, 2, 1, 20, &s), HS_LIVE_DELIVERED);
    assert_delivered(&s, (int[]){2, 3, 4}, 3);
    assert_false(hs_live_order_holding(&o));
    assert_int_equal(o.gap_since_ms, 0);
    assert_int_equal(b.held_bytes, 0);
    hs_live_order_dispose(&o);
}

/* The hold expired: the store's messages after last fill the gap, then the
 * held ones follow; a held message the fill delivered is not sent twice. */
static void test_gap_filled_from_the_store(void **state)
{
    (void)state;
    hs_live_budget_t b = budget();
    hs_live_order_t o;
    hs_live_order_init(&o, &b);
    sink_t s = {0};
    hs_live_order_set_baseline(&o, id(1), 1, deliver_cb, &s);
    assert_int_equal(offer(&o, 4, 3, 10, &s), HS_LIVE_HELD);
    assert_int_equal(offer(&o, 6, 5, 10, &s), HS_LIVE_HELD);
    /* The store has 2..4 (read after 4 was committed; 5 and 6 after it). */
    for (int n = 2; n <= 4; n++)
        hs_live_order_fill(&o, id(n), json(n), strlen(json(n)), deliver_cb, &s);
    assert_false(hs_live_order_fill_done(&o, 300, deliver_cb, &s)); /* 6 still waits for 5 */
    assert_delivered(&s, (int[]){2, 3, 4}, 3);
    assert_int_equal(o.gap_since_ms, 300);                      /* a new gap, a new hold */
    assert_int_equal(offer(&o, 3, 2, 301, &s), HS_LIVE_REPEAT); /* its event, late */
    assert_int_equal(offer(&o, 5, 4, 302, &s), HS_LIVE_DELIVERED);
    assert_delivered(&s, (int[]){2, 3, 4, 5, 6}, 5);
    assert_false(hs_live_order_holding(&o));
    hs_live_order_dispose(&o);
}

/* A fill that reads past the held messages delivers those too. */
static void test_fill_covers_the_held(void **state)
{
    (void)state;
    hs_live_budget_t b = budget();
    hs_live_order_t o;
    hs_live_order_init(&o, &b);
    sink_t s = {0};
    hs_live_order_set_baseline(&o, "", 1, deliver_cb, &s);
    assert_int_equal(offer(&o, 3, 2, 10, &s), HS_LIVE_HELD);
    for (int n = 1; n <= 4; n++)
        hs_live_order_fill(&o, id(n), json(n), strlen(json(n)), deliver_cb, &s);
    assert_true(hs_live_order_fill_done(&o, 300, deliver_cb, &s));
    assert_delivered(&s, (int[]){1, 2, 3, 4}, 4);
    assert_int_equal(offer(&o, 4, 3, 301, &s), HS_LIVE_REPEAT);
    assert_int_equal(offer(&o, 5, 4, 301, &s), HS_LIVE_DELIVERED);
    assert_int_equal(b.held_bytes, 0);
    hs_live_order_dispose(&o);
}

/* More than max_held early messages: the next one overflows; a reset makes
 * the highest id seen the last one, so the gap's messages are repeats. */
static void test_hold_limit_and_reset(void **state)
{
    (void)state;
    hs_live_budget_t b = budget();
    hs_live_order_t o;
    hs_live_order_init(&o, &b);
    sink_t s = {0};
    hs_live_order_set_baseline(&o, id(1), 1, deliver_cb, &s);
    for (int n = 3; n <= 6; n++)
        assert_int_equal(offer(&o, n, n - 1, 10, &s), HS_LIVE_HELD);
    assert_int_equal(offer(&o, 7, 6, 10, &s), HS_LIVE_OVERFLOW);
    assert_int_equal(o.held_count, 4);
    hs_live_order_reset(&o, id(7));
    assert_false(hs_live_order_holding(&o));
    assert_int_equal(b.held_bytes, 0);
    assert_string_equal(o.last, id(7));
    assert_int_equal(offer(&o, 2, 1, 20, &s), HS_LIVE_REPEAT);
    assert_int_equal(offer(&o, 8, 7, 20, &s), HS_LIVE_DELIVERED);
    assert_delivered(&s, (int[]){8}, 1);
    hs_live_order_dispose(&o);
}

/* The bytes budget is shared by every topic. */
static void test_bytes_budget_shared(void **state)
{
    (void)state;
    hs_live_budget_t b = {.max_held = 100, .max_held_bytes = 2 * strlen(json(0))};
    hs_live_order_t x, y;
    hs_live_order_init(&x, &b);
    hs_live_order_init(&y, &b);
    sink_t s = {0};
    hs_live_order_set_baseline(&x, id(1), 1, deliver_cb, &s);
    hs_live_order_set_baseline(&y, id(1), 1, deliver_cb, &s);
    assert_int_equal(offer(&x, 3, 2, 1, &s), HS_LIVE_HELD);
    assert_int_equal(offer(&y, 3, 2, 1, &s), HS_LIVE_HELD);
    assert_int_equal(offer(&y, 4, 3, 1, &s), HS_LIVE_OVERFLOW);
    hs_live_order_dispose(&x);
    assert_int_equal(offer(&y, 4, 3, 1, &s), HS_LIVE_HELD);
    hs_live_order_dispose(&y);
    assert_int_equal(b.held_bytes, 0);
}

/* Before the baseline everything is held (it may be a repeat or a gap);
 * the baseline drops what is at or below it and delivers the chain after
 * it. */
static void test_nothing_moves_before_the_baseline(void **state)
{
    (void)state;
    hs_live_budget_t b = budget();
    hs_live_order_t o;
    hs_live_order_init(&o, &b);
    sink_t s = {0};
    assert_int_equal(offer(&o, 3, 2, 1, &s), HS_LIVE_HELD);
    assert_int_equal(offer(&o, 2, 1, 1, &s), HS_LIVE_HELD);
    assert_int_equal(offer(&o, 4, 3, 1, &s), HS_LIVE_HELD);
    assert_int_equal(s.count, 0);
    hs_live_order_set_baseline(&o, id(2), 2, deliver_cb, &s); /* 2 was committed before */
    assert_delivered(&s, (int[]){3, 4}, 2);
    assert_false(hs_live_order_holding(&o));
    hs_live_order_set_baseline(&o, id(9), 3, deliver_cb, &s); /* known: ignored */
    assert_string_equal(o.last, id(4));
    hs_live_order_dispose(&o);
}

/* An event without prev (an older publisher) goes when above last. */
static void test_no_prev(void **state)
{
    (void)state;
    hs_live_budget_t b = budget();
    hs_live_order_t o;
    hs_live_order_init(&o, &b);
    sink_t s = {0};
    hs_live_order_set_baseline(&o, id(1), 1, deliver_cb, &s);
    assert_int_equal(
        hs_live_order_offer(&o, id(5), NULL, json(5), strlen(json(5)), 1, deliver_cb, &s),
        HS_LIVE_DELIVERED);
    assert_int_equal(
        hs_live_order_offer(&o, id(3), NULL, json(3), strlen(json(3)), 1, deliver_cb, &s),
        HS_LIVE_REPEAT);
    assert_delivered(&s, (int[]){5}, 1);
    hs_live_order_dispose(&o);
}

/* A message deleted while held for its order keeps its place in the chain
 * (its successors follow it) but is never delivered; one not held is not
 * found. */
static void test_forget_a_held_message(void **state)
{
    (void)state;
    hs_live_budget_t b = budget();
    hs_live_order_t o;
    hs_live_order_init(&o, &b);
    sink_t s = {0};
    hs_live_order_set_baseline(&o, "", 1, deliver_cb, &s);
    assert_int_equal(offer(&o, 1, -1, 1, &s), HS_LIVE_DELIVERED);
    assert_int_equal(offer(&o, 3, 2, 1, &s), HS_LIVE_HELD); /* 2 is late */
    assert_int_equal(offer(&o, 4, 3, 1, &s), HS_LIVE_HELD);
    assert_true(hs_live_order_forget(&o, id(3)));
    assert_false(hs_live_order_forget(&o, id(9)));
    assert_int_equal(offer(&o, 2, 1, 1, &s), HS_LIVE_DELIVERED);
    assert_delivered(&s, (int[]){1, 2, 4}, 3);
    assert_false(hs_live_order_holding(&o));
    assert_int_equal(b.held_bytes, 0);
    assert_int_equal(offer(&o, 3, 2, 1, &s), HS_LIVE_REPEAT); /* passed: not again */
    hs_live_order_dispose(&o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_in_order_and_repeat),
        cmocka_unit_test(test_gap_held_then_closed_by_the_predecessor),
        cmocka_unit_test(test_gap_filled_from_the_store),
        cmocka_unit_test(test_fill_covers_the_held),
        cmocka_unit_test(test_hold_limit_and_reset),
        cmocka_unit_test(test_bytes_budget_shared),
        cmocka_unit_test(test_nothing_moves_before_the_baseline),
        cmocka_unit_test(test_no_prev),
        cmocka_unit_test(test_forget_a_held_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
