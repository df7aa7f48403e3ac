/* The storage suite, written against store.h only so that every back-end
 * runs it: HOUSTON_TEST_STORE_URL picks one (default: SQLite in a temporary
 * directory). Each test runs a real loop and checks it closes clean. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <mysql.h>

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
    size_t lens[64];
    uint64_t times[64];
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

/* A put's callback: the stored message's id into f->ids[63] (the store
 * mints it; the caller's id is a candidate). */
static void put_cb(int status, const hs_message_t *msg, void *data)
{
    fixture_t *f = data;
    if (msg)
        memcpy(f->ids[63], msg->id, sizeof(f->ids[63]));
    done_cb(status, data);
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
        /* bytes, not a C string: content may hold NULs */
        size_t n = msgs[i].content_len < 31 ? msgs[i].content_len : 31;
        memset(f->contents[i], 0, sizeof(f->contents[i]));
        memcpy(f->contents[i], msgs[i].content, n);
        f->lens[i] = msgs[i].content_len;
        f->times[i] = msgs[i].created_ms;
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
        f->times[i] = subs[i].created_ms;
    }
}

/* Stores a message; id_out gets the id the store minted (on MariaDB from
 * the database's clock, not the candidate's). */
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
    f->calls = 0;
    f->ids[63][0] = '\0';
    hs_store_put_message(f->store, &msg, put_cb, f);
    assert_int_equal(f->calls, 0); /* never inside the call */
    while (f->calls == 0)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(f->status, 0);
    assert_int_equal(strlen(f->ids[63]), HS_ULID_LEN);
    if (id_out)
        memcpy(id_out, f->ids[63], HS_ULID_LEN + 1);
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

/* Names unique to one test: the MariaDB run shares one database between
 * tests, so a test must not see another's rows. */
static void unique(char out[40], const char *prefix)
{
    hs_ulid_t id;
    hs_ulid_new(&id);
    char s[HS_ULID_LEN + 1];
    hs_ulid_format(&id, s);
    snprintf(out, 40, "%.12s-%s", prefix, s);
}

static void unique_id(char out[HS_ULID_LEN + 1])
{
    hs_ulid_t id;
    hs_ulid_new(&id);
    hs_ulid_format(&id, out);
}

/* A message with a new id; content points at a literal. */
static hs_message_t message(const char *topic, const char *content, char id_out[27])
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
    return msg;
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
    hs_store_put_message(f->store, &msg, put_cb, f);
    wait_call(f);
    f->calls = 0;
    char stored[HS_ULID_LEN + 1];
    memcpy(stored, f->ids[63], sizeof(stored));
    hs_store_get_message(f->store, stored, message_cb, f);
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
static char ordered_ids[1000][HS_ULID_LEN + 1]; /* the stored ids, by issue index */
/* data is the issue index: callbacks must come back in issue order. */
static void ordered_cb(int status, const hs_message_t *msg, void *data)
{
    assert_int_equal(status, 0);
    assert_non_null(msg);
    memcpy(ordered_ids[(intptr_t)data], msg->id, HS_ULID_LEN + 1);
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
        assert_string_equal(f->ids[i], ordered_ids[i]);
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
    hs_store_add_connection(f->store, C1, "n1", NULL, NULL, 1, done_cb, f);
    hs_store_add_connection(f->store, C2, "n2", NULL, NULL, 1, done_cb, f);
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

static void connection_cb(int status, const hs_connection_info_t *info, void *data)
{
    fixture_t *f = data;
    f->status = status;
    f->calls++;
    f->count = 0;
    if (status != 0)
        return;
    snprintf(f->contents[0], sizeof(f->contents[0]), "%s", info->node);
    snprintf(f->contents[1], sizeof(f->contents[1]), "%s", info->user ? info->user : "(null)");
    f->created_ms = info->connected_ms;
    for (size_t i = 0; i < info->sub_count && i < 60; i++)
        snprintf(f->contents[2 + i], sizeof(f->contents[2 + i]), "%s", info->subs[i].topic);
    f->count = info->sub_count;
    snprintf(f->contents[63], sizeof(f->contents[63]), "%s",
             info->last_ack ? info->last_ack : "(null)");
    snprintf(f->contents[60], sizeof(f->contents[60]), "%llu",
             (unsigned long long)info->detached_ms);
    snprintf(f->contents[61], sizeof(f->contents[61]), "%s",
             info->address ? info->address : "(null)");
    snprintf(f->contents[62], sizeof(f->contents[62]), "epoch %llu %s",
             (unsigned long long)info->epoch, info->attached ? "attached" : "detached");
}

/* Resume support: the last ack is kept on the row; a connection is claimed
 * (moved to the resuming node, its epoch bumped) only while it is detached
 * at the epoch the claimer read - of two claims from one reading exactly one
 * wins; a release or an expiry of an older attach changes nothing. */
static void epoch_op(fixture_t *f, int kind, const char *conn, uint64_t epoch, int want)
{
    f->calls = 0;
    if (kind == 'c')
        hs_store_claim_connection(f->store, conn, "new", "192.0.2.7", epoch, done_cb, f);
    else if (kind == 'r')
        hs_store_release_connection(f->store, conn, epoch, 1234, done_cb, f);
    else
        hs_store_expire_connection(f->store, conn, epoch, done_cb, f);
    wait_call(f);
    assert_int_equal(f->status, want);
}

static void test_ack_claim_and_expire(void **state)
{
    fixture_t *f = *state;
    char conn[HS_ULID_LEN + 1], ack[HS_ULID_LEN + 1], missing[HS_ULID_LEN + 1];
    unique_id(conn);
    unique_id(ack);
    unique_id(missing);
    hs_store_add_connection(f->store, conn, "old", NULL, NULL, 1, NULL, NULL);
    hs_store_add_subscription(f->store, conn, "a", 2, NULL, NULL);
    f->calls = 0;
    hs_store_get_connection(f->store, conn, connection_cb, f);
    wait_call(f);
    assert_string_equal(f->contents[63], "(null)");
    assert_string_equal(f->contents[62], "epoch 0 attached");
    f->calls = 0;
    hs_store_set_last_ack(f->store, conn, ack, done_cb, f);
    wait_call(f);
    assert_int_equal(f->status, 0);
    epoch_op(f, 'c', conn, 0, HS_ENOTFOUND); /* attached: not claimable */
    epoch_op(f, 'e', conn, 0, HS_ENOTFOUND); /* attached: not expired */
    epoch_op(f, 'r', conn, 0, 0);            /* its transport dropped */
    f->calls = 0;
    hs_store_get_connection(f->store, conn, connection_cb, f);
    wait_call(f);
    assert_string_equal(f->contents[62], "epoch 0 detached");
    assert_string_equal(f->contents[60], "1234"); /* when */
    epoch_op(f, 'c', conn, 0, 0);                 /* a resume wins */
    epoch_op(f, 'c', conn, 0, HS_ENOTFOUND);      /* the other, from the same reading, loses */
    epoch_op(f, 'c', missing, 0, HS_ENOTFOUND);
    f->calls = 0;
    hs_store_get_connection(f->store, conn, connection_cb, f);
    wait_call(f);
    assert_string_equal(f->contents[0], "new");
    assert_string_equal(f->contents[63], ack);
    assert_string_equal(f->contents[62], "epoch 1 attached");
    assert_string_equal(f->contents[61], "192.0.2.7"); /* where it resumed from */
    assert_int_equal(f->count, 1);
    /* The old attach's window ends, or its late release arrives: the row is
     * not its own any more. */
    epoch_op(f, 'r', conn, 0, HS_ENOTFOUND);
    epoch_op(f, 'e', conn, 0, HS_ENOTFOUND);
    epoch_op(f, 'e', conn, 1, HS_ENOTFOUND); /* attached at 1 */
    f->calls = 0;
    hs_store_get_connection(f->store, conn, connection_cb, f);
    wait_call(f);
    assert_int_equal(f->status, 0);
    assert_int_equal(f->count, 1);
    epoch_op(f, 'r', conn, 1, 0);
    epoch_op(f, 'e', conn, 1, 0);
    f->calls = 0;
    hs_store_get_connection(f->store, conn, connection_cb, f);
    wait_call(f);
    assert_int_equal(f->status, HS_ENOTFOUND);
    list_subs(f, conn, NULL);
    assert_int_equal(f->count, 0);
    /* A subscription stored for a connection whose row is gone (it raced
     * the removal) goes with the expiry too. */
    hs_store_add_subscription(f->store, missing, "orphan", 3, NULL, NULL);
    epoch_op(f, 'e', missing, 0, HS_ENOTFOUND);
    list_subs(f, missing, NULL);
    assert_int_equal(f->count, 0);
}

/* The connection's row with its user and subscriptions; read in order with
 * the writes issued before it, without waiting for them. */
static void test_get_connection(void **state)
{
    fixture_t *f = *state;
    f->calls = 0;
    hs_store_add_connection(f->store, C1, "node-1", "alice", "203.0.113.9", 42, NULL, NULL);
    hs_store_add_subscription(f->store, C1, "b", 50, NULL, NULL);
    hs_store_add_subscription(f->store, C1, "a", 60, NULL, NULL);
    hs_store_add_connection(f->store, C2, "node-2", NULL, NULL, 43, NULL, NULL);
    hs_store_get_connection(f->store, C1, connection_cb, f);
    wait_call(f);
    assert_int_equal(f->status, 0);
    assert_string_equal(f->contents[0], "node-1");
    assert_string_equal(f->contents[1], "alice");
    assert_string_equal(f->contents[61], "203.0.113.9");
    assert_int_equal(f->created_ms, 42);
    assert_int_equal(f->count, 2);
    assert_string_equal(f->contents[2], "b");
    assert_string_equal(f->contents[3], "a");
    f->calls = 0;
    hs_store_get_connection(f->store, C2, connection_cb, f);
    wait_call(f);
    assert_int_equal(f->status, 0);
    assert_string_equal(f->contents[1], "(null)");
    assert_int_equal(f->count, 0);
    f->calls = 0;
    hs_store_remove_connection(f->store, C1, NULL, NULL);
    hs_store_get_connection(f->store, C1, connection_cb, f);
    wait_call(f);
    assert_int_equal(f->status, HS_ENOTFOUND);
}

/* A user's connections: in id order, after a cursor, at most limit, each
 * with its own subscriptions (or none), no other user's; read in order
 * with the writes issued before it. */
static void user_conns_cb(int status, const hs_connection_info_t *conns, size_t count, void *data)
{
    fixture_t *f = data;
    f->status = status;
    f->count = count;
    f->content_len = 0; /* subscriptions seen, in order, into contents[32..] */
    for (size_t i = 0; i < count && i < 16; i++) {
        snprintf(f->ids[i], sizeof(f->ids[i]), "%s", conns[i].id);
        snprintf(f->contents[i], sizeof(f->contents[i]), "%s %s %zu", conns[i].node,
                 conns[i].user ? conns[i].user : "(null)", conns[i].sub_count);
        f->times[i] = conns[i].connected_ms;
        for (size_t j = 0; j < conns[i].sub_count && f->content_len < 32; j++) {
            assert_string_equal(conns[i].subs[j].connection_id, conns[i].id);
            snprintf(f->contents[32 + f->content_len++], sizeof(f->contents[0]), "%s",
                     conns[i].subs[j].topic);
        }
    }
    f->calls++;
}

static void test_list_user_connections(void **state)
{
    fixture_t *f = *state;
    static const char *const ids[] = {"01HZ0000000000000000000003", "01HZ0000000000000000000001",
                                      "01HZ0000000000000000000002", "01HZ0000000000000000000004"};
    hs_store_add_connection(f->store, ids[0], "n1", "alice", NULL, 10, NULL, NULL);
    hs_store_add_connection(f->store, ids[1], "n2", "alice", "192.0.2.1", 11, NULL, NULL);
    hs_store_add_connection(f->store, ids[2], "n1", "bob", NULL, 12, NULL, NULL);
    hs_store_add_connection(f->store, ids[3], "n1", NULL, NULL, 13, NULL, NULL);
    hs_store_add_subscription(f->store, ids[0], "z", 20, NULL, NULL);
    hs_store_add_subscription(f->store, ids[0], "y", 21, NULL, NULL);
    hs_store_add_subscription(f->store, ids[2], "bobs", 22, NULL, NULL);
    f->calls = 0;
    hs_store_list_user_connections(f->store, "alice", NULL, 10, true, user_conns_cb, f);
    assert_int_equal(f->calls, 0); /* never inside the call */
    wait_call(f);
    assert_int_equal(f->status, 0);
    assert_int_equal(f->count, 2);
    assert_string_equal(f->ids[0], ids[1]); /* id order */
    assert_string_equal(f->ids[1], ids[0]);
    assert_string_equal(f->contents[0], "n2 alice 0");
    assert_string_equal(f->contents[1], "n1 alice 2");
    assert_int_equal(f->times[0], 11);
    assert_int_equal(f->content_len, 2);
    assert_string_equal(f->contents[32], "z"); /* creation order */
    assert_string_equal(f->contents[33], "y");
    /* a page after a cursor, and one of one */
    f->calls = 0;
    hs_store_list_user_connections(f->store, "alice", ids[1], 10, true, user_conns_cb, f);
    wait_call(f);
    assert_int_equal(f->count, 1);
    assert_string_equal(f->ids[0], ids[0]);
    assert_int_equal(f->content_len, 2);
    f->calls = 0;
    hs_store_list_user_connections(f->store, "alice", NULL, 1, false, user_conns_cb, f);
    wait_call(f);
    assert_int_equal(f->count, 1);
    assert_string_equal(f->ids[0], ids[1]);
    assert_int_equal(f->content_len, 0);
    /* without topics: no subscriptions read */
    f->calls = 0;
    hs_store_list_user_connections(f->store, "alice", ids[1], 10, false, user_conns_cb, f);
    wait_call(f);
    assert_string_equal(f->contents[0], "n1 alice 0");
    /* nobody, and a removal seen at once */
    f->calls = 0;
    hs_store_list_user_connections(f->store, "carol", NULL, 10, true, user_conns_cb, f);
    wait_call(f);
    assert_int_equal(f->status, 0);
    assert_int_equal(f->count, 0);
    hs_store_remove_connection(f->store, ids[0], NULL, NULL);
    f->calls = 0;
    hs_store_list_user_connections(f->store, "alice", NULL, 10, true, user_conns_cb, f);
    wait_call(f);
    assert_int_equal(f->count, 1);
    assert_int_equal(f->content_len, 0);
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

static int closed_calls;
static void closed_write_cb(int status, const hs_message_t *msg, void *data)
{
    (void)msg;
    (void)data;
    assert_int_equal(status, HS_ECLOSED);
    closed_calls++;
}

static void closed_read_cb(int status, const hs_message_t *msg, void *data)
{
    (void)data;
    assert_int_equal(status, HS_ECLOSED);
    assert_null(msg);
    closed_calls++;
}

static void test_close_finishes_queued_work(void **state)
{
    fixture_t *f = *state;
    char topic[40], id[27];
    unique(topic, "closing");
    hs_message_t msg = message(topic, "queued", id);
    f->calls = 0;
    closed_calls = 0;
    /* Queued before close: runs and is committed, its callback still runs. */
    hs_store_put_message(f->store, &msg, put_cb, f);
    hs_store_close(f->store, closed_cb, f);
    /* Issued after close: HS_ECLOSED, through the queue, never inside the call. */
    hs_message_t late = message(topic, "late", NULL);
    hs_store_put_message(f->store, &late, closed_write_cb, NULL);
    hs_store_get_message(f->store, id, closed_read_cb, NULL);
    assert_int_equal(closed_calls, 0);
    assert_int_equal(f->calls, 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_null(f->store); /* close's callback ran */
    assert_int_equal(closed_calls, 2);
    assert_int_equal(f->calls, 1);
    assert_int_equal(f->status, 0);
    memcpy(id, f->ids[63], sizeof(id)); /* the stored id */
    open_store(f);
    list(f, topic, NULL, true, 10);
    assert_int_equal(f->count, 1);
    assert_string_equal(f->ids[0], id);
}

static void test_history_edges(void **state)
{
    fixture_t *f = *state;
    char topic[40], other[40], ids[4][27];
    unique(topic, "edges");
    unique(other, "other");
    for (int i = 0; i < 4; i++)
        put(f, topic, "m", ids[i]);
    put(f, other, "x", NULL);
    /* topic isolation: everything of the topic, nothing else */
    list(f, topic, NULL, true, 100);
    assert_int_equal(f->count, 4);
    list(f, topic, NULL, false, 100);
    assert_int_equal(f->count, 4);
    assert_string_equal(f->ids[0], ids[3]);
    list(f, other, NULL, true, 100);
    assert_int_equal(f->count, 1);
    /* cursor at the first id forward / the last id backward: all the others */
    list(f, topic, ids[0], true, 100);
    assert_int_equal(f->count, 3);
    assert_string_equal(f->ids[0], ids[1]);
    assert_string_equal(f->ids[2], ids[3]);
    list(f, topic, ids[3], false, 100);
    assert_int_equal(f->count, 3);
    assert_string_equal(f->ids[0], ids[2]);
    assert_string_equal(f->ids[2], ids[0]);
    /* a cursor that is no stored id: compared by position in time */
    list(f, topic, "00000000000000000000000000", true, 2);
    assert_int_equal(f->count, 2);
    assert_string_equal(f->ids[0], ids[0]);
    list(f, topic, "7ZZZZZZZZZZZZZZZZZZZZZZZZZ", false, 1);
    assert_int_equal(f->count, 1);
    assert_string_equal(f->ids[0], ids[3]);
    list(f, topic, "00000000000000000000000000", false, 10);
    assert_int_equal(f->count, 0);
    /* limit exactly the rows left, and zero */
    list(f, topic, ids[1], true, 2);
    assert_int_equal(f->count, 2);
    list(f, topic, NULL, true, 0);
    assert_int_equal(f->count, 0);
}

static void test_list_returns_whole_messages(void **state)
{
    fixture_t *f = *state;
    char topic[40];
    unique(topic, "bytes");
    hs_ulid_t uid;
    hs_ulid_new(&uid);
    /* NUL, 2-, 3- and 4-byte UTF-8 */
    static const char content[] = "\0\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z";
    hs_message_t msg = {.topic = topic,
                        .content = content,
                        .content_len = sizeof(content) - 1,
                        .author = "\xc3\xa9t\xc3\xa9",
                        .created_ms = hs_ulid_time_ms(&uid)};
    hs_ulid_format(&uid, msg.id);
    f->calls = 0;
    hs_store_put_message(f->store, &msg, put_cb, f);
    wait_call(f);
    assert_int_equal(f->status, 0);
    char stored[HS_ULID_LEN + 1];
    memcpy(stored, f->ids[63], sizeof(stored));
    hs_ulid_t sid;
    assert_int_equal(hs_ulid_parse(stored, HS_ULID_LEN, &sid), 0);
    list(f, topic, NULL, false, 10);
    assert_int_equal(f->count, 1);
    assert_string_equal(f->ids[0], stored);
    assert_int_equal(f->lens[0], sizeof(content) - 1);
    assert_memory_equal(f->contents[0], content, sizeof(content) - 1);
    assert_int_equal(f->times[0], hs_ulid_time_ms(&sid)); /* the id's time */
}

static int dup_status[3];
static char dup_ids[3][HS_ULID_LEN + 1];
static int dup_calls;
static void dup_cb(int status, const hs_message_t *msg, void *data)
{
    dup_status[(intptr_t)data] = status;
    dup_ids[(intptr_t)data][0] = '\0';
    if (msg)
        memcpy(dup_ids[(intptr_t)data], msg->id, HS_ULID_LEN + 1);
    dup_calls++;
}

static bool is_mariadb(const fixture_t *f)
{
    return strncmp(f->url, "mysql://", 8) == 0;
}

/* The wall clock, ms (the test's, and on this machine the database's). */
static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void test_failed_write_fails_alone(void **state)
{
    fixture_t *f = *state;
    char topic[40];
    unique(topic, "dup");
    char other[40];
    unique(other, "dup2");
    hs_message_t a = message(topic, "first", NULL);
    /* A write the database refuses, between two that succeed. SQLite mints
     * from the caller's candidate: the same id in another topic (that
     * topic's sequence keeps it, above its last id) and the primary key
     * refuses it. MariaDB mints from its own clock, so no duplicate can be
     * made: there an author longer than its column (VARBINARY(1024), strict
     * mode). */
    hs_message_t again = a;
    again.topic = other;
    again.content = "second";
    again.content_len = 6;
    static char long_author[2048];
    memset(long_author, 'w', sizeof(long_author) - 1);
    if (is_mariadb(f))
        again.author = long_author;
    hs_message_t c = message(topic, "third", NULL);
    dup_calls = 0;
    /* Issued together, so (almost surely) one batch, one transaction. */
    hs_store_put_message(f->store, &a, dup_cb, (void *)0);
    hs_store_put_message(f->store, &again, dup_cb, (void *)1);
    hs_store_put_message(f->store, &c, dup_cb, (void *)2);
    while (dup_calls < 3)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(dup_status[0], 0);
    assert_int_equal(dup_status[1], HS_EIO);
    assert_int_equal(dup_status[2], 0);
    list(f, topic, NULL, true, 10);
    assert_int_equal(f->count, 2);
    assert_string_equal(f->ids[0], dup_ids[0]);
    assert_string_equal(f->contents[0], "first");
    assert_string_equal(f->ids[1], dup_ids[2]);
    list(f, other, NULL, true, 10);
    assert_int_equal(f->count, 0);
}

/* A message of topic whose candidate id is of time ms (a publisher whose
 * clock says ms). */
static hs_message_t message_at(const char *topic, const char *content, uint64_t ms)
{
    hs_ulid_gen_t gen;
    hs_ulid_gen_init(&gen);
    hs_ulid_t id;
    assert_int_equal(hs_ulid_gen_next(&gen, ms, &id), 0);
    hs_message_t msg = {.topic = topic,
                        .content = content,
                        .content_len = strlen(content),
                        .author = "a",
                        .created_ms = ms};
    hs_ulid_format(&id, msg.id);
    return msg;
}

static char minted[8][HS_ULID_LEN + 1];
static uint64_t minted_ms[8];
static int minted_calls;
static void minted_cb(int status, const hs_message_t *msg, void *data)
{
    assert_int_equal(status, 0);
    assert_non_null(msg);
    int i = (int)(intptr_t)data;
    memcpy(minted[i], msg->id, sizeof(minted[i]));
    minted_ms[i] = msg->created_ms;
    minted_calls++;
}

/* Issue 16: the store mints ids, so the ids of one topic increase in commit
 * order whatever the callers' clocks say. SQLite (one process) mints from
 * the caller's candidate: one older than the topic's last id (a publisher
 * whose clock is behind, or stepped back) gets the last id + 1, one ahead
 * keeps its own. MariaDB mints from the database's clock, whatever the
 * candidates say. The stored message, the callback's and the history
 * agree. */
static void test_ids_increase_in_commit_order_whatever_the_clock(void **state)
{
    fixture_t *f = *state;
    char topic[40];
    unique(topic, "order");
    uint64_t now = 1800000000000ull; /* a fixed "now" for the candidates (2027) */
    uint64_t before = wall_ms();
    /* one after another: now, 10 s behind, now again (same candidate time),
     * 5 s ahead, 1 s behind that */
    const int64_t skew[] = {0, -10000, 0, 5000, 4000};
    minted_calls = 0;
    for (int i = 0; i < 5; i++) {
        hs_message_t msg = message_at(topic, "m", now + (uint64_t)skew[i]);
        hs_store_put_message(f->store, &msg, minted_cb, (void *)(intptr_t)i);
        while (minted_calls == i)
            uv_run(&f->loop, UV_RUN_ONCE);
    }
    /* issued together, so (almost surely) one batch: each gets its own id */
    for (int i = 5; i < 8; i++) {
        hs_message_t msg = message_at(topic, "b", now - (uint64_t)(i * 1000));
        hs_store_put_message(f->store, &msg, minted_cb, (void *)(intptr_t)i);
    }
    while (minted_calls < 8)
        uv_run(&f->loop, UV_RUN_ONCE);
    uint64_t after = wall_ms();
    for (int i = 1; i < 8; i++) {
        if (strcmp(minted[i - 1], minted[i]) >= 0)
            fail_msg("id %d (%s) is not above id %d (%s)", i, minted[i], i - 1, minted[i - 1]);
        hs_ulid_t id;
        assert_int_equal(hs_ulid_parse(minted[i], HS_ULID_LEN, &id), 0);
        assert_int_equal(minted_ms[i], hs_ulid_time_ms(&id));
    }
    if (is_mariadb(f)) {
        /* the database's clock (on this machine: the test's), not the
         * candidates' */
        for (int i = 0; i < 8; i++)
            if (minted_ms[i] + 1000 < before || minted_ms[i] > after + 1000)
                fail_msg("id %d has time %llu, outside the clock's [%llu, %llu]", i,
                         (unsigned long long)minted_ms[i], (unsigned long long)before,
                         (unsigned long long)after);
    } else {
        assert_int_equal(minted_ms[0], now);
        assert_int_equal(minted_ms[1], now);        /* behind: last + 1, same millisecond */
        assert_int_equal(minted_ms[3], now + 5000); /* ahead: its own */
        assert_int_equal(minted_ms[4], now + 5000);
    }
    list(f, topic, NULL, true, 10);
    assert_int_equal(f->count, 8);
    for (int i = 0; i < 8; i++) {
        assert_string_equal(f->ids[i], minted[i]);
        assert_int_equal(f->times[i], minted_ms[i]);
    }
    /* another topic has its own sequence: a candidate behind this topic's
     * last id is kept there (SQLite); MariaDB's clock has moved on */
    char other[40];
    unique(other, "order2");
    hs_message_t msg = message_at(other, "o", now - 60000);
    char last[HS_ULID_LEN + 1];
    memcpy(last, minted[7], sizeof(last));
    hs_store_put_message(f->store, &msg, minted_cb, (void *)(intptr_t)0);
    while (minted_calls < 9)
        uv_run(&f->loop, UV_RUN_ONCE);
    if (is_mariadb(f))
        assert_true(strcmp(minted[0], last) > 0);
    else
        assert_string_equal(minted[0], msg.id);
}

/* Issue 16: a resume's lastID is one id across all of a connection's
 * topics, so a message published after another one was answered must get a
 * higher id even on another topic, whatever the publishers' clocks: two
 * stores on one MariaDB (two publishers), the first's clock 5 s ahead, the
 * second's 5 s behind. Ids minted from the publishers' clocks put the later
 * message 10 s below the earlier one (and a resume after the first skipped
 * the second); the database's clock orders them. SQLite is one process with
 * one clock: nothing to test. */
static void count_closed_cb(int status, void *data);

static void test_a_later_publish_on_another_topic_gets_a_higher_id(void **state)
{
    fixture_t *f = *state;
    if (!is_mariadb(f)) {
        skip();
        return;
    }
    hs_store_t *other = NULL;
    char err[256] = "";
    assert_int_equal(hs_store_open(&f->loop, f->url, NULL, &other, err, sizeof(err)), 0);
    char t1[40], t2[40], below[200] = "";
    minted_calls = 0;
    for (int round = 0; round < 5 && !below[0]; round++) {
        unique(t1, "ahead");
        unique(t2, "behind");
        hs_message_t a = message_at(t1, "a", wall_ms() + 5000);
        hs_store_put_message(f->store, &a, minted_cb, (void *)(intptr_t)0);
        while (minted_calls < 2 * round + 1)
            uv_run(&f->loop, UV_RUN_ONCE);
        hs_message_t b = message_at(t2, "b", wall_ms() - 5000);
        hs_store_put_message(other, &b, minted_cb, (void *)(intptr_t)1);
        while (minted_calls < 2 * round + 2)
            uv_run(&f->loop, UV_RUN_ONCE);
        if (strcmp(minted[1], minted[0]) <= 0)
            snprintf(below, sizeof(below), "round %d: %s (published later) is not above %s", round,
                     minted[1], minted[0]);
    }
    int closed = 0; /* before failing: an open store would keep the loop running */
    hs_store_close(other, count_closed_cb, &closed);
    while (!closed)
        uv_run(&f->loop, UV_RUN_ONCE);
    if (below[0])
        fail_msg("%s", below);
}

static void test_write_callbacks_may_be_null(void **state)
{
    fixture_t *f = *state;
    char topic[40], conn[27];
    unique(topic, "nullcb");
    unique_id(conn);
    hs_message_t msg = message(topic, "fire and forget", NULL);
    hs_store_put_message(f->store, &msg, NULL, NULL);
    hs_store_add_subscription(f->store, conn, topic, 5, NULL, NULL);
    /* Writes complete in order: once this one is back, both above are in. */
    put(f, topic, "acknowledged", NULL);
    list(f, topic, NULL, true, 10);
    assert_int_equal(f->count, 2);
    assert_string_equal(f->contents[0], "fire and forget");
    list_subs(f, conn, NULL);
    assert_int_equal(f->count, 1);
    hs_store_remove_subscription(f->store, conn, NULL, NULL, NULL);
    hs_store_add_connection(f->store, conn, "n", NULL, NULL, 1, NULL, NULL);
    hs_store_remove_connection(f->store, conn, NULL, NULL);
    hs_store_remove_node(f->store, "n", NULL, NULL);
    /* close (in teardown) waits for them */
}

static void test_subscription_queries(void **state)
{
    fixture_t *f = *state;
    char c1[27], c2[27], t1[40], t2[40];
    unique_id(c1);
    unique_id(c2);
    unique(t1, "t1");
    unique(t2, "t2");
    subscribe(f, c1, t1, 10);
    subscribe(f, c1, t2, 20);
    subscribe(f, c2, t1, 30);
    /* by both: one row, with its stored time */
    list_subs(f, c1, t2);
    assert_int_equal(f->count, 1);
    assert_string_equal(f->ids[0], c1);
    assert_string_equal(f->contents[0], t2);
    assert_int_equal(f->times[0], 20);
    /* by topic: in creation order */
    list_subs(f, NULL, t1);
    assert_int_equal(f->count, 2);
    assert_string_equal(f->ids[0], c1);
    assert_int_equal(f->times[0], 10);
    assert_string_equal(f->ids[1], c2);
    /* by connection: in creation order */
    list_subs(f, c1, NULL);
    assert_int_equal(f->count, 2);
    assert_string_equal(f->contents[0], t1);
    assert_string_equal(f->contents[1], t2);
    /* removing what is not there counts 0 and is no error */
    f->calls = 0;
    hs_store_remove_subscription(f->store, c2, t2, count_cb, f);
    wait_call(f);
    assert_int_equal(f->status, 0);
    assert_int_equal(f->count, 0);
    /* all of a connection: counts each */
    f->calls = 0;
    hs_store_remove_subscription(f->store, c1, NULL, count_cb, f);
    wait_call(f);
    assert_int_equal(f->status, 0);
    assert_int_equal(f->count, 2);
    list_subs(f, NULL, t1);
    assert_int_equal(f->count, 1);
    assert_string_equal(f->ids[0], c2);
    /* subscribing again after removal creates it anew */
    subscribe(f, c1, t1, 40);
    assert_int_equal(f->status, 0);
    assert_int_equal(f->created_ms, 40);
}

static void test_remove_node(void **state)
{
    fixture_t *f = *state;
    char a1[27], a2[27], b1[27], orphan[27], topic[40], node_a[40], node_b[40];
    unique_id(a1);
    unique_id(a2);
    unique_id(b1);
    unique_id(orphan);
    unique(topic, "node");
    unique(node_a, "na");
    unique(node_b, "nb");
    f->calls = 0;
    hs_store_add_connection(f->store, a1, node_a, NULL, NULL, 1, done_cb, f);
    hs_store_add_connection(f->store, a2, node_a, NULL, NULL, 1, done_cb, f);
    hs_store_add_connection(f->store, b1, node_b, NULL, NULL, 1, done_cb, f);
    while (f->calls < 3)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(f->status, 0);
    subscribe(f, a1, topic, 1);
    subscribe(f, a2, topic, 2);
    subscribe(f, b1, topic, 3);
    subscribe(f, orphan, topic, 4); /* no connection row (scale-out publisher) */
    f->calls = 0;
    hs_store_remove_node(f->store, node_a, count_cb, f);
    wait_call(f);
    assert_int_equal(f->status, 0);
    assert_int_equal(f->count, 2);
    list_subs(f, NULL, topic);
    assert_int_equal(f->count, 2);
    assert_string_equal(f->ids[0], b1);
    assert_string_equal(f->ids[1], orphan);
    f->calls = 0;
    hs_store_remove_node(f->store, node_a, count_cb, f);
    wait_call(f);
    assert_int_equal(f->count, 0);
    /* remove_connection without a connection row still takes the
     * subscriptions */
    f->calls = 0;
    hs_store_remove_connection(f->store, orphan, done_cb, f);
    wait_call(f);
    assert_int_equal(f->status, 0);
    list_subs(f, NULL, topic);
    assert_int_equal(f->count, 1);
    assert_string_equal(f->ids[0], b1);
}

static void test_small_batches(void **state)
{
    fixture_t *f = *state;
    close_store(f);
    hs_store_options_t options = {.batch_max = 1};
    char err[256] = "";
    assert_int_equal(hs_store_open(&f->loop, f->url, &options, &f->store, err, sizeof(err)), 0);
    enum { N = 50 };
    static hs_message_t msgs[N];
    char topic[40];
    unique(topic, "small");
    f->calls = 0;
    order_pos = 0;
    order_fixture = f;
    for (int i = 0; i < N; i++) {
        msgs[i] = message(topic, "x", NULL);
        hs_store_put_message(f->store, &msgs[i], ordered_cb, (void *)(intptr_t)i);
    }
    while (f->calls < N)
        uv_run(&f->loop, UV_RUN_ONCE);
    list(f, topic, NULL, false, 100);
    assert_int_equal(f->count, N);
    assert_string_equal(f->ids[0], ordered_ids[N - 1]);
}

static void expect_open_error(fixture_t *f, const char *url, const char *needle)
{
    hs_store_t *s = NULL;
    char err[512] = "";
    int rc = hs_store_open(&f->loop, url, NULL, &s, err, sizeof(err));
    if (rc == 0)
        fail_msg("opening %s succeeded", url);
    assert_null(s);
    if (strstr(err, needle) == NULL)
        fail_msg("opening %s: '%s' lacks '%s'", url, err, needle);
}

static void count_closed_cb(int status, void *data)
{
    assert_int_equal(status, 0);
    (*(int *)data)++;
}

static void test_open_errors(void **state)
{
    fixture_t *f = *state;
    expect_open_error(f, "postgres://x", "sqlite:");
    expect_open_error(f, "sqlite:", "no file path");
    expect_open_error(f, "sqlite:/nonexistent-dir/x/y.db",
                      "cannot open sqlite database '/nonexistent-dir/x/y.db'");
    char dir[64] = "/tmp/houston-store-bad-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128], url[160];
    /* a file that is not a database */
    snprintf(path, sizeof(path), "%s/text.db", dir);
    FILE *file = fopen(path, "w");
    assert_non_null(file);
    fputs("this is not an SQLite database, only some text that is long enough to hold a header\n",
          file);
    fclose(file);
    snprintf(url, sizeof(url), "sqlite:%s", path);
    expect_open_error(f, url, "not a database");
    /* a directory */
    snprintf(url, sizeof(url), "sqlite:%s", dir);
    expect_open_error(f, url, "cannot open sqlite database");
    /* a read-only file (root writes anyway: not testable then) */
    if (geteuid() != 0) {
        snprintf(path, sizeof(path), "%s/ro.db", dir);
        snprintf(url, sizeof(url), "sqlite:%s", path);
        hs_store_t *s = NULL;
        char err[256];
        assert_int_equal(hs_store_open(&f->loop, url, NULL, &s, err, sizeof(err)), 0);
        int closed = 0;
        hs_store_close(s, count_closed_cb, &closed);
        while (!closed) /* the fixture's store keeps the loop alive */
            uv_run(&f->loop, UV_RUN_ONCE);
        assert_int_equal(chmod(path, 0444), 0);
        expect_open_error(f, url, "read-only");
    }
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* ---- idempotency keys ---------------------------------------------------- */

typedef struct once_result {
    int status;
    int calls;
    char id[HS_ULID_LEN + 1];
    char content[32];
} once_result_t;

static void once_cb(int status, const hs_message_t *msg, void *data)
{
    once_result_t *r = data;
    r->status = status;
    r->calls++;
    r->id[0] = '\0';
    if (msg) {
        snprintf(r->id, sizeof(r->id), "%s", msg->id);
        snprintf(r->content, sizeof(r->content), "%.*s", (int)msg->content_len, msg->content);
    }
}

static void put_once(fixture_t *f, hs_store_t *store, const char *topic, const char *content,
                     const char *key, const char *hash, uint64_t not_before_ms, once_result_t *r)
{
    hs_message_t msg = message(topic, content, NULL);
    hs_idempotency_t idem = {.key = key, .body_hash = hash, .not_before_ms = not_before_ms};
    memset(r, 0, sizeof(*r));
    hs_store_put_message_once(store, &msg, &idem, once_cb, r);
    assert_int_equal(r->calls, 0); /* never inside the call */
    while (r->calls == 0)
        uv_run(&f->loop, UV_RUN_ONCE);
}

#define HASH_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HASH_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

static void test_idempotent_put(void **state)
{
    fixture_t *f = *state;
    char topic[40], key[40];
    unique(topic, "idem");
    unique(key, "key");
    once_result_t first, r;
    put_once(f, f->store, topic, "one", key, HASH_A, 0, &first);
    assert_int_equal(first.status, 0);
    assert_string_equal(first.content, "one");
    /* The same key and body: the original, nothing written. */
    put_once(f, f->store, topic, "one", key, HASH_A, 0, &r);
    assert_int_equal(r.status, HS_EEXIST);
    assert_string_equal(r.id, first.id);
    assert_string_equal(r.content, "one");
    /* The same key, another body: refused, nothing written. */
    put_once(f, f->store, topic, "two", key, HASH_B, 0, &r);
    assert_int_equal(r.status, HS_EINVAL);
    assert_int_equal(r.id[0], '\0');
    list(f, topic, NULL, true, 10);
    assert_int_equal(f->count, 1);
    assert_string_equal(f->ids[0], first.id);
    /* Another key: another message. */
    char key2[40];
    unique(key2, "key");
    put_once(f, f->store, topic, "one", key2, HASH_A, 0, &r);
    assert_int_equal(r.status, 0);
    assert_string_not_equal(r.id, first.id);
    list(f, topic, NULL, true, 10);
    assert_int_equal(f->count, 2);
}

static void test_idempotency_key_expires(void **state)
{
    fixture_t *f = *state;
    char topic[40], key[40];
    unique(topic, "idem");
    unique(key, "key");
    once_result_t first, r;
    put_once(f, f->store, topic, "one", key, HASH_A, 0, &first);
    assert_int_equal(first.status, 0);
    /* Past the window (the key is older than not_before): taken over, even
     * with another body, before any purge ran. */
    put_once(f, f->store, topic, "two", key, HASH_B, UINT64_MAX / 2, &r);
    assert_int_equal(r.status, 0);
    assert_string_not_equal(r.id, first.id);
    char second[HS_ULID_LEN + 1];
    memcpy(second, r.id, sizeof(second));
    put_once(f, f->store, topic, "two", key, HASH_B, 0, &r);
    assert_int_equal(r.status, HS_EEXIST);
    assert_string_equal(r.id, second);
    /* A purge removes the old keys; the messages stay. */
    f->calls = 0;
    hs_store_purge_idempotency_keys(f->store, UINT64_MAX / 2, count_cb, f);
    assert_int_equal(f->calls, 0);
    wait_call(f);
    assert_int_equal(f->status, 0);
    assert_true(f->count >= 1);
    put_once(f, f->store, topic, "one", key, HASH_A, 0, &r);
    assert_int_equal(r.status, 0);
    list(f, topic, NULL, true, 10);
    assert_int_equal(f->count, 3);
}

/* Two stores on one database (two publishers in the scale-out mode): of
 * publishes with one key issued at once, exactly one stores a message. */
static void test_idempotency_across_stores(void **state)
{
    fixture_t *f = *state;
    hs_store_t *other = NULL;
    char err[256] = "";
    assert_int_equal(hs_store_open(&f->loop, f->url, NULL, &other, err, sizeof(err)), 0);
    char topic[40];
    unique(topic, "idem");
    enum { ROUNDS = 20 };
    int created = 0;
    for (int round = 0; round < ROUNDS; round++) {
        char key[40];
        unique(key, "race");
        hs_message_t m1 = message(topic, "x", NULL), m2 = message(topic, "x", NULL);
        hs_idempotency_t idem = {.key = key, .body_hash = HASH_A};
        once_result_t r1 = {0}, r2 = {0};
        hs_store_put_message_once(f->store, &m1, &idem, once_cb, &r1);
        hs_store_put_message_once(other, &m2, &idem, once_cb, &r2);
        while (r1.calls == 0 || r2.calls == 0)
            uv_run(&f->loop, UV_RUN_ONCE);
        assert_true((r1.status == 0 && r2.status == HS_EEXIST) ||
                    (r1.status == HS_EEXIST && r2.status == 0));
        assert_string_equal(r1.id, r2.id);
        created++;
    }
    list(f, topic, NULL, true, 64);
    assert_int_equal(f->count, created);
    /* Many keys, queued in opposite orders on the two stores: their batches
     * lock the keys in opposite orders (a deadlock for MariaDB, which the
     * engine answers by running the batch again). Still one message per key. */
    enum { KEYS = 24 };
    char keys[KEYS][40];
    once_result_t r1[KEYS], r2[KEYS];
    char topic2[40];
    unique(topic2, "idem");
    for (int i = 0; i < KEYS; i++)
        unique(keys[i], "cross");
    memset(r1, 0, sizeof(r1));
    memset(r2, 0, sizeof(r2));
    for (int i = 0; i < KEYS; i++) {
        hs_message_t m1 = message(topic2, "y", NULL), m2 = message(topic2, "y", NULL);
        hs_idempotency_t i1 = {.key = keys[i], .body_hash = HASH_A};
        hs_idempotency_t i2 = {.key = keys[KEYS - 1 - i], .body_hash = HASH_A};
        hs_store_put_message_once(f->store, &m1, &i1, once_cb, &r1[i]);
        hs_store_put_message_once(other, &m2, &i2, once_cb, &r2[KEYS - 1 - i]);
    }
    for (int i = 0; i < KEYS; i++)
        while (r1[i].calls == 0 || r2[i].calls == 0)
            uv_run(&f->loop, UV_RUN_ONCE);
    for (int i = 0; i < KEYS; i++) {
        assert_true((r1[i].status == 0 && r2[i].status == HS_EEXIST) ||
                    (r1[i].status == HS_EEXIST && r2[i].status == 0));
        assert_string_equal(r1[i].id, r2[i].id);
    }
    list(f, topic2, NULL, true, 64);
    assert_int_equal(f->count, KEYS);
    int closed = 0;
    hs_store_close(other, count_closed_cb, &closed);
    while (!closed)
        uv_run(&f->loop, UV_RUN_ONCE);
}

/* Two stores on one database (two publishers) publishing at once to many
 * topics none has seen: each topic's first publish creates its sequence
 * row. Created inside the publish transactions, the rows' creation
 * deadlocked (gap locks of the locking reads of the missing rows against
 * the other transaction's inserts of neighbouring new rows, and the shared
 * locks of INSERT ... SELECT MAX(id) FROM messages against its message
 * inserts); every retry repeated the same topics and lost again, and after
 * five attempts the publishes failed (HS_EIO: 500s). Every publish must
 * succeed. */
typedef struct new_topics {
    int calls, failed, first_status;
} new_topics_t;

static void new_topic_cb(int status, const hs_message_t *msg, void *data)
{
    (void)msg;
    new_topics_t *r = data;
    r->calls++;
    if (status != 0 && r->failed++ == 0)
        r->first_status = status;
}

static void test_two_stores_create_many_topics_at_once(void **state)
{
    fixture_t *f = *state;
    if (!is_mariadb(f)) {
        /* Two writers on one SQLite file is no deployment (the embedded
         * mode is one process), and their candidates' + 1 collide. */
        skip();
        return;
    }
    /* Batches of 64: many transactions, each creating many rows (before
     * the fix, batches of 64 and 256 failed here; of 1-16 they deadlocked
     * and recovered). */
    close_store(f);
    hs_store_options_t options = {.batch_max = 64};
    hs_store_t *other = NULL;
    char err[256] = "";
    assert_int_equal(hs_store_open(&f->loop, f->url, &options, &f->store, err, sizeof(err)), 0);
    assert_int_equal(hs_store_open(&f->loop, f->url, &options, &other, err, sizeof(err)), 0);
    enum { TOPICS = 1500, ROUNDS = 2 };
    char prefix[40];
    unique(prefix, "new");
    new_topics_t r = {0};
    srand(16);
    for (int round = 0; round < ROUNDS; round++) {
        /* Both stores publish to every topic, each in its own order: new
         * rows in the same gaps of the sequence table's index, and the same
         * rows created by both. */
        for (int i = 0; i < TOPICS; i++) {
            char topic[64];
            snprintf(topic, sizeof(topic), "%s-%d-%05d", prefix, round, rand() % TOPICS);
            hs_message_t msg = message(topic, "x", NULL);
            hs_store_put_message(f->store, &msg, new_topic_cb, &r);
            snprintf(topic, sizeof(topic), "%s-%d-%05d", prefix, round, rand() % TOPICS);
            msg = message(topic, "x", NULL);
            hs_store_put_message(other, &msg, new_topic_cb, &r);
        }
    }
    while (r.calls < 2 * TOPICS * ROUNDS)
        uv_run(&f->loop, UV_RUN_ONCE);
    int closed = 0;
    hs_store_close(other, count_closed_cb, &closed);
    while (!closed)
        uv_run(&f->loop, UV_RUN_ONCE);
    if (r.failed)
        fail_msg("%d of %d publishes failed, the first with %s", r.failed, 2 * TOPICS * ROUNDS,
                 hs_strerror(r.first_status));
}

/* ---- rows longer than a read buffer ------------------------------------- */

/* Checks every message a read returns against the expected bytes, whole. */
typedef struct whole_check {
    int status, calls;
    size_t count;
    const char *const *contents; /* expected, in order */
    const size_t *lens;
    const char *author;
    int mismatches;
} whole_check_t;

/* Counts the rows that differ (asserted after the loop returns: a failed
 * assertion inside a store callback would leave the loop mid-iteration). */
static void check_whole(whole_check_t *w, const hs_message_t *msgs, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        if (msgs[i].content_len != w->lens[i] ||
            memcmp(msgs[i].content, w->contents[i], w->lens[i]) != 0 ||
            strcmp(msgs[i].author, w->author) != 0)
            w->mismatches++;
    }
}

static void whole_messages_cb(int status, const hs_message_t *msgs, size_t count, void *data)
{
    whole_check_t *w = data;
    w->status = status;
    w->calls++;
    w->count = count;
    check_whole(w, msgs, count);
}

static void whole_message_cb(int status, const hs_message_t *msg, void *data)
{
    whole_check_t *w = data;
    w->status = status;
    w->calls++;
    w->count = msg ? 1 : 0;
    if (msg)
        check_whole(w, msg, 1);
}

static void run_until(fixture_t *f, const int *calls)
{
    while (*calls == 0)
        uv_run(&f->loop, UV_RUN_ONCE);
}

/* Contents and authors of every size come back whole, whichever read
 * returns them: MariaDB reads rows into buffers that grow (a column longer
 * than its buffer is fetched again), SQLite copies from its own; short and
 * long rows alternate so that a grown buffer is used for the next row. */
static void test_long_rows_read_whole(void **state)
{
    fixture_t *f = *state;
    char topic[40];
    unique(topic, "long");
    enum { N = 4 };
    static const size_t sizes[N] = {10, 70000, 100, 200000};
    char *contents[N];
    char author[600];
    memset(author, 'w', sizeof(author) - 1);
    author[sizeof(author) - 1] = '\0';
    char ids[N][HS_ULID_LEN + 1];
    for (int i = 0; i < N; i++) {
        contents[i] = malloc(sizes[i]);
        for (size_t j = 0; j < sizes[i]; j++)
            contents[i][j] = (char)(j % 7 == 3 ? '\0' : 'a' + (j + (size_t)i) % 26);
        hs_message_t msg = message(topic, "", ids[i]);
        msg.content = contents[i];
        msg.content_len = sizes[i];
        msg.author = author;
        f->calls = 0;
        hs_store_put_message(f->store, &msg, put_cb, f);
        wait_call(f);
        assert_int_equal(f->status, 0);
        memcpy(ids[i], f->ids[63], sizeof(ids[i])); /* the stored id */
    }
    whole_check_t w = {.contents = (const char *const *)contents, .lens = sizes, .author = author};
    hs_history_query_t q = {.topic = topic, .forward = true, .limit = 10};
    hs_store_list_messages(f->store, &q, whole_messages_cb, &w);
    run_until(f, &w.calls);
    assert_int_equal(w.mismatches, 0);
    assert_int_equal(w.status, 0);
    assert_int_equal(w.count, N);
    /* The byte bound (a replay): rows are read until they hold max_bytes. */
    w.calls = 0;
    q.max_bytes = sizes[0] + 1;
    hs_store_list_messages(f->store, &q, whole_messages_cb, &w);
    run_until(f, &w.calls);
    assert_int_equal(w.mismatches, 0);
    assert_int_equal(w.status, 0);
    assert_int_equal(w.count, 2);
    /* The connection is still usable after a bounded read left rows. */
    w.calls = 0;
    w.contents = (const char *const *)&contents[3];
    w.lens = &sizes[3];
    hs_store_get_message(f->store, ids[3], whole_message_cb, &w);
    run_until(f, &w.calls);
    assert_int_equal(w.mismatches, 0);
    assert_int_equal(w.status, 0);
    assert_int_equal(w.count, 1);
    /* An idempotent publish answered with the original reads it on the
     * writer. */
    char key[40];
    unique(key, "long-key");
    hs_idempotency_t idem = {.key = key, .body_hash = HASH_A};
    for (int attempt = 0; attempt < 2; attempt++) {
        hs_message_t msg = message(topic, "", NULL);
        msg.content = contents[3];
        msg.content_len = sizes[3];
        msg.author = author;
        w.calls = 0;
        hs_store_put_message_once(f->store, &msg, &idem, whole_message_cb, &w);
        run_until(f, &w.calls);
        assert_int_equal(w.mismatches, 0);
        assert_int_equal(w.status, attempt == 0 ? 0 : HS_EEXIST);
        assert_int_equal(w.count, 1);
    }
    /* A connection row with a long user. */
    char conn[HS_ULID_LEN + 1];
    unique_id(conn);
    hs_store_add_connection(f->store, conn, "node-long", author, "2001:db8::1", 7, NULL, NULL);
    f->calls = 0;
    hs_store_get_connection(f->store, conn, connection_cb, f);
    wait_call(f);
    assert_int_equal(f->status, 0);
    assert_string_equal(f->contents[0], "node-long");
    assert_memory_equal(f->contents[1], author, sizeof(f->contents[1]) - 1);
    assert_string_equal(f->contents[61], "2001:db8::1");
    for (int i = 0; i < N; i++)
        free(contents[i]);
}

/* MariaDB only: the store's connections are killed from another one (a
 * server restart, a proxy dropping them); the next operations reconnect and
 * prepare their statements again on the new connections. A statement
 * prepared on the old connection would fail every later run. */
static void test_mariadb_reconnect_prepares_again(void **state)
{
    fixture_t *f = *state;
    if (strncmp(f->url, "mysql://", 8) != 0) {
        skip();
        return;
    }
    char topic[40], id[HS_ULID_LEN + 1];
    unique(topic, "reconnect");
    put(f, topic, "before", NULL);
    list(f, topic, NULL, true, 10); /* the reader prepares too */
    assert_int_equal(f->count, 1);
    /* mysql://root@127.0.0.1:PORT/DB (tests/support/with-mariadb.sh) */
    char host[64] = "127.0.0.1", db[64] = "houston";
    unsigned port = 3306;
    const char *at = strrchr(f->url, '@');
    assert_non_null(at);
    assert_true(sscanf(at + 1, "%63[^:]:%u/%63s", host, &port, db) >= 2);
    MYSQL *side = mysql_init(NULL);
    assert_non_null(mysql_real_connect(side, host, "root", NULL, db, port, NULL, 0));
    assert_int_equal(mysql_query(side, "SELECT id FROM information_schema.processlist "
                                       "WHERE id <> CONNECTION_ID() AND db = DATABASE()"),
                     0);
    MYSQL_RES *res = mysql_store_result(side);
    MYSQL_ROW row;
    int killed = 0;
    while ((row = mysql_fetch_row(res)) != NULL) {
        char sql[64];
        snprintf(sql, sizeof(sql), "KILL CONNECTION %s", row[0]);
        if (mysql_query(side, sql) == 0)
            killed++;
    }
    mysql_free_result(res);
    mysql_close(side);
    assert_true(killed >= 2); /* the writer's and the reader's */
    put(f, topic, "after", id);
    list(f, topic, NULL, true, 10);
    assert_int_equal(f->count, 2);
    assert_string_equal(f->contents[1], "after");
    f->calls = 0;
    hs_store_get_message(f->store, id, message_cb, f);
    wait_call(f);
    assert_int_equal(f->status, 0);
}

/* ---- topics and retention ------------------------------------------------ */

typedef struct topic_result {
    int status, calls;
    hs_topic_info_t info; /* strings not kept */
    char names[4][64];
    size_t count;
    bool pruned;
} topic_result_t;

static void topic_cb(int status, const hs_topic_info_t *t, void *data)
{
    topic_result_t *r = data;
    r->status = status;
    r->calls++;
    if (t)
        r->info = *t;
}

static void topics_cb(int status, const hs_topic_info_t *topics, size_t count, void *data)
{
    topic_result_t *r = data;
    r->status = status;
    r->calls++;
    r->count = count;
    for (size_t i = 0; i < count && i < 4; i++)
        snprintf(r->names[i], sizeof(r->names[i]), "%s", topics[i].topic);
}

static void history_cb(int status, const hs_message_t *msgs, size_t count, bool pruned, void *data)
{
    (void)msgs;
    topic_result_t *r = data;
    r->status = status;
    r->calls++;
    r->count = count;
    r->pruned = pruned;
}

static void get_topic(fixture_t *f, const char *topic, topic_result_t *r)
{
    memset(r, 0, sizeof(*r));
    hs_store_get_topic(f->store, topic, topic_cb, r);
    while (r->calls == 0)
        uv_run(&f->loop, UV_RUN_ONCE);
}

static void test_topics_and_retention(void **state)
{
    fixture_t *f = *state;
    close_store(f);
    hs_store_options_t options = {.batch_max = 64, .prune = true, .retention_count = 2};
    char err[256] = "";
    assert_int_equal(hs_store_open(&f->loop, f->url, &options, &f->store, err, sizeof(err)), 0);
    char pruned[40], kept[40], prefix[32];
    hs_ulid_t u;
    hs_ulid_new(&u);
    char uid[HS_ULID_LEN + 1];
    hs_ulid_format(&u, uid);
    snprintf(prefix, sizeof(prefix), "ret%s.", uid + 16);
    snprintf(pruned, sizeof(pruned), "%sa", prefix);
    snprintf(kept, sizeof(kept), "%sb", prefix);
    /* kept keeps everything: its own count 0 overrides the default 2. */
    hs_topic_settings_t own = {.count = HS_TOPIC_SET, .count_value = 0};
    f->calls = 0;
    hs_store_set_topic(f->store, kept, &own, done_cb, f);
    wait_call(f);
    assert_int_equal(f->status, 0);
    for (int i = 0; i < 4; i++) {
        put(f, pruned, "x", NULL);
        put(f, kept, "y", NULL);
    }
    topic_result_t r;
    for (int tries = 0;; tries++) {
        get_topic(f, pruned, &r);
        assert_int_equal(r.status, 0);
        if (r.info.messages == 2)
            break;
        assert_true(tries < 100); /* 5 s */
        uv_sleep(50);
    }
    assert_false(r.info.has_count);
    get_topic(f, kept, &r);
    assert_int_equal(r.status, 0);
    assert_true(r.info.messages == 4 && r.info.has_count && r.info.count == 0);
    /* From the start: the start was pruned. */
    memset(&r, 0, sizeof(r));
    hs_history_query_t q = {.topic = pruned, .forward = true, .limit = 10};
    hs_store_read_history(f->store, &q, history_cb, &r);
    while (r.calls == 0)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_true(r.status == 0 && r.count == 2 && r.pruned);
    memset(&r, 0, sizeof(r));
    q.topic = kept;
    hs_store_read_history(f->store, &q, history_cb, &r);
    while (r.calls == 0)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_true(r.status == 0 && r.count == 4 && !r.pruned);
    memset(&r, 0, sizeof(r));
    hs_store_list_topics(f->store, prefix, NULL, 3, topics_cb, &r);
    while (r.calls == 0)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(r.count, 2);
    assert_string_equal(r.names[0], pruned);
    assert_string_equal(r.names[1], kept);
    char none[48];
    snprintf(none, sizeof(none), "%snone", prefix);
    get_topic(f, none, &r);
    assert_int_equal(r.status, HS_ENOTFOUND);
}

/* ---- batch publish (hs_store_put_messages) ------------------------------ */

typedef struct batch_result {
    int status, calls;
    size_t count;
    char ids[8][HS_ULID_LEN + 1];
    char prevs[8][HS_ULID_LEN + 1];
    char contents[8][16];
} batch_result_t;

static void batch_cb(int status, const hs_message_t *msgs, size_t count, void *data)
{
    batch_result_t *r = data;
    r->status = status;
    r->count = count;
    for (size_t i = 0; i < count && i < 8; i++) {
        memcpy(r->ids[i], msgs[i].id, HS_ULID_LEN + 1);
        memcpy(r->prevs[i], msgs[i].prev, HS_ULID_LEN + 1);
        snprintf(r->contents[i], sizeof(r->contents[i]), "%.*s", (int)msgs[i].content_len,
                 msgs[i].content);
    }
    r->calls++;
}

static void put_batch(fixture_t *f, const hs_message_t *msgs, size_t count,
                      const hs_idempotency_t *idem, batch_result_t *r)
{
    memset(r, 0, sizeof(*r));
    hs_store_put_messages(f->store, msgs, count, idem, batch_cb, r);
    assert_int_equal(r->calls, 0); /* never inside the call */
    while (r->calls == 0)
        uv_run(&f->loop, UV_RUN_ONCE);
}

/* One element the database refuses: the whole batch fails, nothing of it
 * is stored, and the topic's sequence is where it was (the next message's
 * prev is the last one stored). A good batch: minted in order, each one's
 * prev the one before it in its topic. */
static void test_batch_is_all_or_nothing(void **state)
{
    fixture_t *f = *state;
    char topic[40], other[40], fresh[40];
    unique(topic, "batch");
    unique(other, "batch2");
    unique(fresh, "batch3");
    char first[HS_ULID_LEN + 1];
    put(f, topic, "first", first);
    /* As test_failed_write_fails_alone: on SQLite the candidate id of a
     * message already stored (in a topic without messages it is minted as
     * is, and the primary key refuses it); on MariaDB an author longer
     * than its column. */
    hs_message_t bad[3] = {message(topic, "b0", NULL), message(other, "b1", NULL),
                           message(topic, "b2", NULL)};
    memcpy(bad[1].id, first, sizeof(bad[1].id));
    static char long_author[2048];
    memset(long_author, 'w', sizeof(long_author) - 1);
    if (is_mariadb(f))
        bad[1].author = long_author;
    batch_result_t r;
    put_batch(f, bad, 3, NULL, &r);
    assert_int_equal(r.status, HS_EIO);
    assert_int_equal(r.count, 0);
    list(f, topic, NULL, true, 10);
    assert_int_equal(f->count, 1);
    list(f, other, NULL, true, 10);
    assert_int_equal(f->count, 0);
    hs_message_t good[4] = {message(topic, "g0", NULL), message(fresh, "g1", NULL),
                            message(topic, "g2", NULL), message(topic, "g3", NULL)};
    put_batch(f, good, 4, NULL, &r);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.count, 4);
    assert_string_equal(r.prevs[0], first); /* not an id of the failed batch */
    assert_string_equal(r.prevs[1], "");
    assert_string_equal(r.prevs[2], r.ids[0]);
    assert_string_equal(r.prevs[3], r.ids[2]);
    assert_true(strcmp(r.ids[0], first) > 0 && strcmp(r.ids[2], r.ids[0]) > 0 &&
                strcmp(r.ids[3], r.ids[2]) > 0);
    list(f, topic, NULL, true, 10);
    assert_int_equal(f->count, 4);
    assert_string_equal(f->ids[1], r.ids[0]);
    assert_string_equal(f->ids[2], r.ids[2]);
    assert_string_equal(f->ids[3], r.ids[3]);
    assert_string_equal(f->contents[3], "g3");
}

/* One key covers a batch: a repeat is the original, in order, nothing
 * written; another body, or a single publish with the key, is refused. */
static void test_batch_idempotency(void **state)
{
    fixture_t *f = *state;
    char topic[40], other[40], key[40];
    unique(topic, "bidem");
    unique(other, "bidem2");
    unique(key, "bkey");
    hs_message_t msgs[3] = {message(topic, "k0", NULL), message(other, "k1", NULL),
                            message(topic, "k2", NULL)};
    hs_idempotency_t idem = {.key = key, .body_hash = HASH_A, .not_before_ms = 0};
    batch_result_t first, r;
    put_batch(f, msgs, 3, &idem, &first);
    assert_int_equal(first.status, 0);
    put_batch(f, msgs, 3, &idem, &r);
    assert_int_equal(r.status, HS_EEXIST);
    assert_int_equal(r.count, 3);
    for (int i = 0; i < 3; i++) {
        assert_string_equal(r.ids[i], first.ids[i]);
        assert_string_equal(r.contents[i], first.contents[i]);
    }
    idem.body_hash = HASH_B;
    put_batch(f, msgs, 2, &idem, &r);
    assert_int_equal(r.status, HS_EINVAL);
    assert_int_equal(r.count, 0);
    once_result_t single;
    put_once(f, f->store, topic, "k0", key, HASH_B, 0, &single);
    assert_int_equal(single.status, HS_EINVAL);
    list(f, topic, NULL, true, 10);
    assert_int_equal(f->count, 2);
    list(f, other, NULL, true, 10);
    assert_int_equal(f->count, 1);
}

/* ---- deletion ------------------------------------------------------------ */

typedef struct deletion_result {
    int status, calls;
    hs_topic_deletion_t removed; /* last_id copied below */
    char last_id[HS_ULID_LEN + 1];
} deletion_result_t;

static void topic_deleted_cb(int status, const hs_topic_deletion_t *removed, void *data)
{
    deletion_result_t *r = data;
    r->status = status;
    r->calls++;
    if (removed) {
        r->removed = *removed;
        snprintf(r->last_id, sizeof(r->last_id), "%s", removed->last_id ? removed->last_id : "");
    }
}

static void delete_topic(fixture_t *f, const char *topic, deletion_result_t *r)
{
    memset(r, 0, sizeof(*r));
    hs_store_delete_topic(f->store, topic, topic_deleted_cb, r);
    assert_int_equal(r->calls, 0); /* never inside the call */
    while (r->calls == 0)
        uv_run(&f->loop, UV_RUN_ONCE);
}

static void delete_message(fixture_t *f, const char *topic, const char *id, int want)
{
    f->calls = 0;
    hs_store_delete_message(f->store, topic, id, done_cb, f);
    assert_int_equal(f->calls, 0);
    wait_call(f);
    assert_int_equal(f->status, want);
}

static void test_delete_message_and_topic(void **state)
{
    fixture_t *f = *state;
    char topic[40], other[40], conn[HS_ULID_LEN + 1], ids[3][HS_ULID_LEN + 1];
    unique(topic, "del");
    unique(other, "delother");
    unique_id(conn);
    for (int i = 0; i < 3; i++)
        put(f, topic, "m", ids[i]);
    delete_message(f, topic, ids[1], 0);
    delete_message(f, topic, ids[1], HS_ENOTFOUND); /* gone already */
    delete_message(f, other, ids[0], HS_ENOTFOUND); /* not in that topic */
    list(f, topic, NULL, true, 10);
    assert_int_equal(f->count, 2);
    assert_string_equal(f->ids[0], ids[0]);
    assert_string_equal(f->ids[1], ids[2]);
    /* A cursor at the deleted id: ids compare, the row need not exist. */
    list(f, topic, ids[1], true, 10);
    assert_int_equal(f->count, 1);
    assert_string_equal(f->ids[0], ids[2]);

    /* A topic of more rows than one step (500), with settings and a
     * subscription: all of it goes; another topic's subscription stays. */
    hs_topic_settings_t own = {.count = HS_TOPIC_SET, .count_value = 5000};
    f->calls = 0;
    hs_store_set_topic(f->store, topic, &own, done_cb, f);
    wait_call(f);
    assert_int_equal(f->status, 0);
    subscribe(f, conn, topic, 1000);
    subscribe(f, conn, other, 1000);
    for (int i = 0; i < 1100; i++) {
        hs_message_t msg = message(topic, "bulk", NULL);
        hs_store_put_message(f->store, &msg, NULL, NULL);
    }
    char last[HS_ULID_LEN + 1];
    put(f, topic, "last", last);
    deletion_result_t r;
    delete_topic(f, topic, &r);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.removed.messages, 2 + 1100 + 1);
    assert_int_equal(r.removed.subscriptions, 1);
    assert_true(r.removed.settings);
    assert_string_equal(r.last_id, last);
    topic_result_t t;
    get_topic(f, topic, &t);
    assert_int_equal(t.status, HS_ENOTFOUND);
    list_subs(f, conn, NULL);
    assert_int_equal(f->count, 1);
    assert_int_equal(strncmp(f->contents[0], other, 31), 0); /* contents hold 31 */
    /* A walk from before the deletion is told it reached deleted history. */
    memset(&t, 0, sizeof(t));
    hs_history_query_t q = {.topic = topic, .forward = true, .limit = 10};
    hs_store_read_history(f->store, &q, history_cb, &t);
    while (t.calls == 0)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_true(t.status == 0 && t.count == 0 && t.pruned);
    delete_topic(f, topic, &r);
    assert_int_equal(r.status, HS_ENOTFOUND);
    /* The sequence stays: a new message's id is above every deleted one. */
    char again[HS_ULID_LEN + 1];
    put(f, topic, "again", again);
    assert_true(strcmp(again, last) > 0);
    get_topic(f, topic, &t);
    assert_true(t.status == 0 && t.info.messages == 1 && !t.info.has_count);
    /* Only a subscription, or only settings, is a topic too. */
    char lone[40];
    unique(lone, "dellone");
    subscribe(f, conn, lone, 1000);
    delete_topic(f, lone, &r);
    assert_true(r.status == 0 && r.removed.messages == 0 && r.removed.subscriptions == 1);
    f->calls = 0;
    hs_store_set_topic(f->store, lone, &own, done_cb, f);
    wait_call(f);
    delete_topic(f, lone, &r);
    assert_true(r.status == 0 && r.removed.settings && r.removed.subscriptions == 0);
    delete_topic(f, lone, &r);
    assert_int_equal(r.status, HS_ENOTFOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_put_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_topics_and_retention, setup, teardown),
        cmocka_unit_test_setup_teardown(test_content_bytes_survive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_history_walks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_writes_commit_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_subscriptions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connections_take_their_subscriptions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_user_connections, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ack_claim_and_expire, setup, teardown),
        cmocka_unit_test_setup_teardown(test_persistence_and_idempotent_migration, setup, teardown),
        cmocka_unit_test_setup_teardown(test_history_edges, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_returns_whole_messages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_write_fails_alone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ids_increase_in_commit_order_whatever_the_clock, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_later_publish_on_another_topic_gets_a_higher_id,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_callbacks_may_be_null, setup, teardown),
        cmocka_unit_test_setup_teardown(test_subscription_queries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove_node, setup, teardown),
        cmocka_unit_test_setup_teardown(test_small_batches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_finishes_queued_work, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idempotent_put, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idempotency_key_expires, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idempotency_across_stores, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_stores_create_many_topics_at_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_long_rows_read_whole, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mariadb_reconnect_prepares_again, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_is_all_or_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_idempotency, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_message_and_topic, setup, teardown),
    };
    /* HOUSTON_TEST_FILTER=test_name runs one test (e.g. to watch it fail). */
    if (getenv("HOUSTON_TEST_FILTER"))
        cmocka_set_test_filter(getenv("HOUSTON_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
