/* The in-process bus: callbacks never run inside the call, operations run in
 * the order they were issued, the directory answers from what notifiers
 * registered, and close drains what is queued. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/bus.h"
#include "core/error.h"

typedef struct fixture {
    uv_loop_t loop;
    hs_bus_t *bus;
    char log[64][32]; /* what happened, in order */
    int entries;
    int closed;
} fixture_t;

static void record(fixture_t *f, const char *what)
{
    assert_true(f->entries < 64);
    snprintf(f->log[f->entries++], sizeof(f->log[0]), "%s", what);
}

static int node_handler(const hs_node_cmd_t *cmd, void *data)
{
    fixture_t *f = data;
    char line[32];
    switch (cmd->kind) {
    case HS_NODE_DELIVER:
        snprintf(line, sizeof(line), "deliver %s %.*s", cmd->topic, (int)cmd->message_json_len,
                 cmd->message_json);
        break;
    case HS_NODE_SUBSCRIBE:
        snprintf(line, sizeof(line), "subscribe %s", cmd->topic);
        break;
    case HS_NODE_BATCH_END:
        snprintf(line, sizeof(line), "end of pass");
        break;
    default:
        snprintf(line, sizeof(line), "cmd %d", cmd->kind);
        break;
    }
    record(f, line);
    return cmd->connection_id && strcmp(cmd->connection_id, "gone") == 0 ? HS_ENOTFOUND : 0;
}

static void event_handler(const hs_event_t *event, void *token, void *data)
{
    fixture_t *f = data;
    char line[32];
    snprintf(line, sizeof(line), "event %s %s", event->topic, event->message_id);
    record(f, line);
    hs_bus_ack(f->bus, token);
}

static void done_cb(int status, void *data)
{
    fixture_t *f = data;
    char line[32];
    snprintf(line, sizeof(line), "done %d", status == HS_ENOTFOUND ? 404 : status);
    record(f, line);
}

static void locate_cb(int status, const char *node, void *data)
{
    fixture_t *f = data;
    char line[32];
    snprintf(line, sizeof(line), "located %s", status == 0 ? node : "none");
    record(f, line);
}

static void nodes_cb(int status, const char *const *nodes, size_t count, void *data)
{
    fixture_t *f = data;
    char line[32];
    assert_int_equal(status, 0);
    snprintf(line, sizeof(line), "nodes %zu %s", count, count ? nodes[0] : "-");
    record(f, line);
}

static void closed_cb(int status, void *data)
{
    fixture_t *f = data;
    assert_int_equal(status, 0);
    f->closed++;
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    uv_loop_init(&f->loop);
    f->bus = hs_bus_inproc_new(&f->loop);
    assert_int_equal(hs_bus_serve_node(f->bus, "n1", node_handler, f), 0);
    assert_int_equal(hs_bus_serve_node(f->bus, "n1", node_handler, f), HS_EEXIST);
    assert_int_equal(hs_bus_consume_events(f->bus, event_handler, f), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    hs_bus_close(f->bus, closed_cb, f);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(f->closed, 1);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
    return 0;
}

static void test_fifo_and_never_inline(void **state)
{
    fixture_t *f = *state;
    hs_event_t event = {
        .topic = "t", .message_id = "m1", .message_json = "{}", .message_json_len = 2};
    hs_bus_publish_event(f->bus, &event, done_cb, f);
    hs_node_cmd_t sub = {.kind = HS_NODE_SUBSCRIBE, .topic = "t", .connection_id = "c1"};
    hs_bus_send_to_node(f->bus, "n1", &sub, done_cb, f);
    hs_node_cmd_t del = {
        .kind = HS_NODE_DELIVER, .topic = "t", .message_json = "hello", .message_json_len = 5};
    hs_bus_send_to_node(f->bus, "n1", &del, done_cb, f);
    hs_bus_send_to_node(f->bus, "nobody", &del, done_cb, f);
    assert_int_equal(f->entries, 0); /* nothing ran inside the calls */
    uv_run(&f->loop, UV_RUN_NOWAIT);
    /* After the pass, each node hears that its commands are all there. */
    const char *expected[] = {"event t m1",      "done 0", "subscribe t", "done 0",
                              "deliver t hello", "done 0", "done 404",    "end of pass"};
    assert_int_equal(f->entries, 8);
    for (int i = 0; i < 8; i++)
        assert_string_equal(f->log[i], expected[i]);
    /* A pass without commands ends without it. */
    hs_bus_publish_event(f->bus, &event, NULL, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(f->entries, 9);
    assert_string_equal(f->log[8], "event t m1");
}

static void test_directory(void **state)
{
    fixture_t *f = *state;
    hs_bus_register_connection(f->bus, "n1", "c1", NULL, NULL);
    hs_bus_locate_connection(f->bus, "c1", locate_cb, f);
    hs_bus_locate_connection(f->bus, "c2", locate_cb, f);
    hs_bus_topic_nodes(f->bus, "t", nodes_cb, f);
    hs_bus_add_topic_node(f->bus, "t", "n1");
    hs_bus_add_topic_node(f->bus, "t", "n1"); /* idempotent */
    hs_bus_topic_nodes(f->bus, "t", nodes_cb, f);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    hs_bus_unregister_connection(f->bus, "n2", "c1"); /* wrong node: ignored */
    hs_bus_locate_connection(f->bus, "c1", locate_cb, f);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    hs_bus_unregister_connection(f->bus, "n1", "c1");
    hs_bus_remove_topic_node(f->bus, "t", "n1");
    hs_bus_locate_connection(f->bus, "c1", locate_cb, f);
    hs_bus_topic_nodes(f->bus, "t", nodes_cb, f);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    const char *expected[] = {"located n1", "located none", "nodes 0 -", "nodes 1 n1",
                              "located n1", "located none", "nodes 0 -"};
    assert_int_equal(f->entries, 7);
    for (int i = 0; i < 7; i++)
        assert_string_equal(f->log[i], expected[i]);
}

/* Canonical ULIDs are held in binary (core/idmap.h); every other spelling
 * must still be its own key, as in a string map: a lower-case spelling of a
 * registered id is not found, and one registered lower-case is found only so.
 * The entries still registered at the close are freed there (ASan). */
static void test_directory_ids(void **state)
{
    fixture_t *f = *state;
    const char *a = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
    const char *b = "01ARZ3NDEKTSV4RRFFQ69G5FAW";
    const char *lower_a = "01arz3ndektsv4rrffq69g5fav";
    hs_bus_register_connection(f->bus, "n1", a, NULL, NULL);
    hs_bus_register_connection(f->bus, "n2", b, NULL, NULL);
    hs_bus_locate_connection(f->bus, a, locate_cb, f);
    hs_bus_locate_connection(f->bus, b, locate_cb, f);
    hs_bus_locate_connection(f->bus, lower_a, locate_cb, f);
    hs_bus_locate_connection(f->bus, "01ARZ3NDEKTSV4RRFFQ69G5FA", locate_cb, f);
    hs_bus_locate_connection(f->bus, "not a ulid at all", locate_cb, f);
    hs_bus_register_connection(f->bus, "n3", lower_a, NULL, NULL);
    hs_bus_locate_connection(f->bus, lower_a, locate_cb, f);
    hs_bus_locate_connection(f->bus, a, locate_cb, f);
    /* The id's first 26 characters are its key, as they always were. */
    hs_bus_register_connection(f->bus, "n3", "01ARZ3NDEKTSV4RRFFQ69G5FAXtail", NULL, NULL);
    hs_bus_locate_connection(f->bus, "01ARZ3NDEKTSV4RRFFQ69G5FAX", locate_cb, f);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    /* Re-registering moves; a wrong node's unregister is ignored, as is an
     * unregister of a spelling that was never registered. */
    hs_bus_register_connection(f->bus, "n2", a, NULL, NULL);
    hs_bus_unregister_connection(f->bus, "n1", a);
    hs_bus_unregister_connection(f->bus, "n1", "01arz3ndektsv4rrffq69g5faw");
    hs_bus_locate_connection(f->bus, a, locate_cb, f);
    hs_bus_locate_connection(f->bus, b, locate_cb, f);
    hs_bus_unregister_connection(f->bus, "n2", b);
    hs_bus_unregister_connection(f->bus, "n3", lower_a);
    hs_bus_locate_connection(f->bus, b, locate_cb, f);
    hs_bus_locate_connection(f->bus, lower_a, locate_cb, f);
    hs_bus_locate_connection(f->bus, a, locate_cb, f);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    const char *expected[] = {"located n1",   "located n2", "located none", "located none",
                              "located none", "located n3", "located n1",   "located n3",
                              "located n2",   "located n2", "located none", "located none",
                              "located n2"};
    assert_int_equal(f->entries, 13);
    for (int i = 0; i < 13; i++)
        assert_string_equal(f->log[i], expected[i]);
}

static void test_close_drains_queue(void **state)
{
    fixture_t *f = *state;
    hs_node_cmd_t cmd = {
        .kind = HS_NODE_NOTIFY, .connection_id = "gone", .frame_text = "x", .frame_text_len = 1};
    hs_bus_send_to_node(f->bus, "n1", &cmd, done_cb, f);
    hs_bus_close(f->bus, closed_cb, f);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(f->closed, 1);
    assert_int_equal(f->entries, 3);
    assert_string_equal(f->log[1], "done 404");
    assert_string_equal(f->log[2], "end of pass");
    /* Reopen for the teardown. */
    f->closed = 0;
    f->bus = hs_bus_inproc_new(&f->loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fifo_and_never_inline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_directory_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_drains_queue, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
