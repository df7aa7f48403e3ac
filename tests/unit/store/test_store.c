/* The storage suite, written against store.h only so that every back-end
 * runs it: HOUSTON_TEST_STORE_URL picks one (default: SQLite in a temporary
 * directory). Each test runs a real loop and checks it closes clean. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "core/ulid.h"
#include "store/store.h"

typedef struct fixture {
    uv_loop_t loop;
    hs_store_t *store;
    char dir[64];
    char url[128];
    /* results of the last callback */
    int status;
    int calls;
    size_t count;
    uint64_t created_ms;
    char ids[64][HS_ULID_LEN + 1];
    char contents[64][32];
    size_t content_len;
    int order[1100];
} fixture_t;

static void open_store(fixture_t *f)
{
    char err[256] = "";
    int rc = hs_store_open(&f->loop, f->url, NULL, &f->store, err, sizeof(err));
    if (rc != 0)
        fail_msg("open failed: %s", err);
}

static void closed_cb(int status, void *data)
{
    fixture_t *f = data;
    assert_int_equal(status, 0);
    f->store = NULL;
}

static void close_store(fixture_t *f)
{
    hs_store_close(f->store, closed_cb, f);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_null(f->store);
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    uv_loop_init(&f->loop);
    const char *url = getenv("HOUSTON_TEST_STORE_URL");
    if (url) {
        snprintf(f->url, sizeof(f->url), "%s", url);
    } else {
        snprintf(f->dir, sizeof(f->dir), "/tmp/houston-store-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        snprintf(f->url, sizeof(f->url), "sqlite:%s/test.db", f->dir);
    }
    open_store(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    if (f->store)
        close_store(f);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    if (f->dir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
        assert_int_equal(system(cmd), 0);
    }
    free(f);
    return 0;
}

static void done_cb(int status, void *data)
{
    fixture_t *f = data;
    f->status = status;
    f->calls++;
}

static void message_cb(int status, const hs_message_t *msg, void *data)
{
    fixture_t *f = data;
    f->status = status;
    f->calls++;
    f->count = msg ? 1 : 0;
    if (msg) {
        memcpy(f->ids[0], msg->id, sizeof(f->ids[0]));
        f->content_len = msg->content_len;
        memcpy(f->contents[0], msg->content, msg->content_len < 32 ? msg->content_len : 31);
    }
}

static void messages_cb(int status, const hs_message_t *msgs, size_t count, void *data)
{
    fixture_t *f = data;
    f->status = status;
    f->calls++;
    f->count = count;
    for (size_t i = 0; i < count && i < 64; i++) {
        memcpy(f->ids[i], msgs[i].id, sizeof(f->ids[i]));
        snprintf(f->contents[i], sizeof(f->contents[i]), "%s", msgs[i].content);
    }
}

static void subscribe_cb(int status, uint64_t created_ms, void *data)
{
    fixture_t *f = data;
    f->status = status;
    f->calls++;
    f->created_ms = created_ms;
}

static void count_cb(int status, size_t count, void *data)
{
    fixture_t *f = data;
    f->status = status;
    f->calls++;
    f->count = count;
}

static void subs_cb(int status, const hs_subscription_t *subs, size_t count, void *data)
{
    fixture_t *f = data;
    f->status = status;
    f->calls++;
    f->count = count;
    for (size_t i = 0; i < count && i < 64; i++) {
        snprintf(f->contents[i], sizeof(f->contents[i]), "%s", subs[i].topic);
        memcpy(f->ids[i], subs[i].connection_id, sizeof(f->ids[i]));
    }
}

static void put(fixture_t *f, const char *topic, const char *content, char id_out[27])
{
    hs_ulid_t id;
    hs_ulid_new(&id);
    hs_message_t msg = {.topic = topic,
                        .content = content,
                        .content_len = strlen(content),
                        .author = "a",
                        .created_ms = hs_ulid_time_ms(&id)};
    hs_ulid_format(&id, msg.id);
    if (id_out)
        memcpy(id_out, msg.id, sizeof(msg.id));
    f->calls = 0;
    hs_store_put_message(f->store, &msg, done_cb, f);
    assert_int_equal(f->calls, 0); /* never inside the call */
    while (f->calls == 0)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(f->status, 0);
}

static void wait_call(fixture_t *f)
{
    while (f->calls == 0)
        uv_run(&f->loop, UV_RUN_ONCE);
}

static void list(fixture_t *f, const char *topic, const char *cursor, bool forward, unsigned limit)
{
    hs_history_query_t q = {.topic = topic, .forward = forward, .limit = limit};
    if (cursor) {
        q.has_cursor = true;
        assert_int_equal(hs_ulid_parse(cursor, strlen(cursor), &q.cursor), 0);
    }
    f->calls = 0;
    hs_store_list_messages(f->store, &q, messages_cb, f);
    wait_call(f);
    assert_int_equal(f->status, 0);
}

static void test_put_get(void **state)
{
    fixture_t *f = *state;
    char id[27];
    put(f, "t", "hello", id);
    f->calls = 0;
    hs_store_get_message(f->store, id, message_cb, f);
    wait_call(f);
    assert_int_equal(f->status, 0);
    assert_string_equal(f->ids[0], id);
    assert_memory_equal(f->contents[0], "hello", 5);
    f->calls = 0;
    hs_store_get_message(f->store, "01ARZ3NDEKTSV4RRFFQ69G5FAV", message_cb, f);
    wait_call(f);
    assert_int_equal(f->status, HS_ENOTFOUND);
}

static void test_content_bytes_survive(void **state)
{
    fixture_t *f = *state;
    hs_ulid_t uid;
    hs_ulid_new(&uid);
    hs_message_t msg = {.topic = "t",
                        .content = "a\0b\xc3\xa9",
                        .content_len = 5,
                        .author = "",
                        .created_ms = hs_ulid_time_ms(&uid)};
    hs_ulid_format(&uid, msg.id);
    f->calls = 0;
    hs_store_put_message(f->store, &msg, done_cb, f);
    wait_call(f);
    f->calls = 0;
    hs_store_get_message(f->store, msg.id, message_cb, f);
    wait_call(f);
    assert_int_equal(f->content_len, 5);
    assert_memory_equal(f->contents[0], "a\0b\xc3\xa9", 5);
}

static void test_history_walks(void **state)
{
    fixture_t *f = *state;
    char ids[7][27];
    for (int i = 0; i < 7; i++) {
        char content[8];
        snprintf(content, sizeof(content), "m%d", i);
        put(f, "walk", content, ids[i]);
    }
    put(f, "elsewhere", "x", NULL);
    list(f, "walk", NULL, true, 3);
    assert_int_equal(f->count, 3);
    assert_string_equal(f->ids[0], ids[0]);
    assert_string_equal(f->ids[2], ids[2]);
    list(f, "walk", ids[2], true, 10);
    assert_int_equal(f->count, 4);
    assert_string_equal(f->ids[0], ids[3]);
    list(f, "walk", NULL, false, 2);
    assert_int_equal(f->count, 2);
    assert_string_equal(f->ids[0], ids[6]);
    assert_string_equal(f->ids[1], ids[5]);
    list(f, "walk", ids[5], false, 10);
    assert_int_equal(f->count, 5);
    assert_string_equal(f->ids[0], ids[4]);
    assert_string_equal(f->ids[4], ids[0]);
    list(f, "walk", ids[6], true, 10);
    assert_int_equal(f->count, 0);
    list(f, "walk", ids[0], false, 10);
    assert_int_equal(f->count, 0);
    list(f, "empty", NULL, true, 10);
    assert_int_equal(f->count, 0);
}

static int order_pos;
static fixture_t *order_fixture;
/* data is the issue index: callbacks must come back in issue order. */
static void ordered_cb(int status, void *data)
{
    assert_int_equal(status, 0);
    assert_int_equal((int)(intptr_t)data, order_pos);
    order_fixture->order[order_pos++] = (int)(intptr_t)data;
    order_fixture->calls++;
}

static void test_many_writes_commit_in_order(void **state)
{
    fixture_t *f = *state;
    enum { N = 1000 };
    static hs_message_t msgs[N];
    static char ids[N][27];
    f->calls = 0;
    order_pos = 0;
    order_fixture = f;
    for (int i = 0; i < N; i++) {
        hs_ulid_t id;
        hs_ulid_new(&id);
        hs_ulid_format(&id, ids[i]);
        msgs[i] = (hs_message_t){.topic = "bulk",
                                 .content = "x",
                                 .content_len = 1,
                                 .author = "a",
                                 .created_ms = hs_ulid_time_ms(&id)};
        memcpy(msgs[i].id, ids[i], 27);
        hs_store_put_message(f->store, &msgs[i], ordered_cb, (void *)(intptr_t)i);
    }
    while (f->calls < N)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(order_pos, N);
    list(f, "bulk", NULL, true, 64);
    assert_int_equal(f->count, 64);
    for (int i = 0; i < 64; i++)
        assert_string_equal(f->ids[i], ids[i]);
}

static void subscribe(fixture_t *f, const char *conn, const char *topic, uint64_t now)
{
    f->calls = 0;
    hs_store_add_subscription(f->store, conn, topic, now, subscribe_cb, f);
    wait_call(f);
}

static void list_subs(fixture_t *f, const char *conn, const char *topic)
{
    f->calls = 0;
    hs_store_list_subscriptions(f->store, conn, topic, subs_cb, f);
    wait_call(f);
    assert_int_equal(f->status, 0);
}

static const char *C1 = "01ARZ3NDEKTSV4RRFFQ69G5FA1";
static const char *C2 = "01ARZ3NDEKTSV4RRFFQ69G5FA2";

static void test_subscriptions(void **state)
{
    fixture_t *f = *state;
    subscribe(f, C1, "a", 100);
    assert_int_equal(f->status, 0);
    assert_int_equal(f->created_ms, 100);
    subscribe(f, C1, "a", 200);
    assert_int_equal(f->status, HS_EEXIST);
    assert_int_equal(f->created_ms, 100); /* the stored time */
    subscribe(f, C1, "b", 300);
    subscribe(f, C2, "a", 400);
    list_subs(f, C1, NULL);
    assert_int_equal(f->count, 2);
    assert_string_equal(f->contents[0], "a");
    assert_string_equal(f->contents[1], "b");
    list_subs(f, NULL, "a");
    assert_int_equal(f->count, 2);
    assert_string_equal(f->ids[0], C1);
    assert_string_equal(f->ids[1], C2);
    list_subs(f, C2, "b");
    assert_int_equal(f->count, 0);

    f->calls = 0;
    hs_store_remove_subscription(f->store, C1, "a", count_cb, f);
    wait_call(f);
    assert_int_equal(f->count, 1);
    f->calls = 0;
    hs_store_remove_subscription(f->store, C1, NULL, count_cb, f);
    wait_call(f);
    assert_int_equal(f->count, 1);
    list_subs(f, C1, NULL);
    assert_int_equal(f->count, 0);
}

static void test_connections_take_their_subscriptions(void **state)
{
    fixture_t *f = *state;
    f->calls = 0;
    hs_store_add_connection(f->store, C1, "n1", 1, done_cb, f);
    hs_store_add_connection(f->store, C2, "n2", 1, done_cb, f);
    while (f->calls < 2)
        uv_run(&f->loop, UV_RUN_ONCE);
    subscribe(f, C1, "a", 1);
    subscribe(f, C2, "a", 1);
    f->calls = 0;
    hs_store_remove_connection(f->store, C1, done_cb, f);
    wait_call(f);
    assert_int_equal(f->status, 0);
    list_subs(f, NULL, "a");
    assert_int_equal(f->count, 1);
    assert_string_equal(f->ids[0], C2);
    f->calls = 0;
    hs_store_remove_node(f->store, "n2", count_cb, f);
    wait_call(f);
    assert_int_equal(f->count, 1);
    list_subs(f, NULL, "a");
    assert_int_equal(f->count, 0);
}

static void test_persistence_and_idempotent_migration(void **state)
{
    fixture_t *f = *state;
    char id[27];
    put(f, "keep", "kept", id);
    close_store(f);
    open_store(f);
    close_store(f);
    open_store(f); /* migrations ran once; reopening twice changes nothing */
    list(f, "keep", NULL, true, 10);
    assert_int_equal(f->count, 1);
    assert_string_equal(f->ids[0], id);
}

static void test_closed_store_answers_later(void **state)
{
    fixture_t *f = *state;
    hs_store_close(f->store, closed_cb, f);
    /* An operation after close still gets its callback, asynchronously. */
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_null(f->store);
}

static void test_bad_urls(void **state)
{
    fixture_t *f = *state;
    hs_store_t *s = NULL;
    char err[256];
    assert_int_equal(hs_store_open(&f->loop, "postgres://x", NULL, &s, err, sizeof(err)),
                     HS_EINVAL);
    assert_non_null(strstr(err, "sqlite:"));
    assert_int_not_equal(
        hs_store_open(&f->loop, "sqlite:/nonexistent-dir/x/y.db", NULL, &s, err, sizeof(err)), 0);
    assert_non_null(strstr(err, "cannot open"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_put_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_content_bytes_survive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_history_walks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_writes_commit_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_subscriptions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connections_take_their_subscriptions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_persistence_and_idempotent_migration, setup, teardown),
        cmocka_unit_test_setup_teardown(test_closed_store_answers_later, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_urls, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
