/* The consumer's routing, on the in-process bus: an event goes to the
 * topic's nodes, one DELIVER per node carrying the message object; the
 * event is acknowledged only once every node answered, released (to come
 * back) when a node or the directory failed, and acknowledged at once when
 * no node holds the topic. The bus's ack and release are watched through a
 * copy of its ops table (the in-process bus has nothing to do for either). */
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
#include "roles/consumer.h"

#define MESSAGE_ID "01GYZ8RAHSE45A2JCVNVA6BTJ2"

typedef struct fixture {
    uv_loop_t loop;
    hs_bus_t *bus;
    hs_bus_ops_t ops; /* the in-process bus's, with ack/release/topic_nodes watched */
    const hs_bus_ops_t *inproc;
    hs_consumer_t *consumer;
    int acks, releases;
    int published;
    int directory_status; /* what topic_nodes answers instead of 0, when set */
    /* per node: commands seen, what it answers, acks seen when it ran */
    struct node {
        const char *name;
        int delivers;
        int status;
        int acks_before;
        char topic[32];
        char message_id[32];
        char frame[256];
        /* HS_NODE_DELETED: how many, the frame, and delivers seen before it */
        int deleteds, delivers_before_deleted;
        char deleted_frame[256];
    } nodes[3];
} fixture_t;

static fixture_t *current; /* the ops wrappers' way back to the fixture */

static void watched_ack(hs_bus_t *bus, void *token)
{
    current->acks++;
    current->inproc->ack(bus, token);
}

static void watched_release(hs_bus_t *bus, void *token)
{
    current->releases++;
    current->inproc->release(bus, token);
}

typedef struct nodes_call {
    hs_bus_nodes_cb cb;
    void *data;
} nodes_call_t;

static void failing_nodes_cb(int status, const char *const *nodes, size_t count, void *data)
{
    nodes_call_t *call = data;
    (void)status;
    (void)nodes;
    (void)count;
    call->cb(current->directory_status, NULL, 0, call->data);
    free(call);
}

static void watched_topic_nodes(hs_bus_t *bus, const char *topic, hs_bus_nodes_cb cb, void *data)
{
    if (current->directory_status == 0) {
        current->inproc->topic_nodes(bus, topic, cb, data);
        return;
    }
    /* Through the bus all the same, so the answer comes later. */
    nodes_call_t *call = malloc(sizeof(*call));
    call->cb = cb;
    call->data = data;
    current->inproc->topic_nodes(bus, topic, failing_nodes_cb, call);
}

static int node_handler(const hs_node_cmd_t *cmd, void *data)
{
    struct node *node = data;
    if (cmd->kind == HS_NODE_DELETED) {
        node->deleteds++;
        node->delivers_before_deleted = node->delivers;
        snprintf(node->deleted_frame, sizeof(node->deleted_frame), "%.*s", (int)cmd->frame_text_len,
                 cmd->frame_text);
        return 0;
    }
    if (cmd->kind != HS_NODE_DELIVER)
        return 0;
    node->delivers++;
    node->acks_before = current->acks + current->releases;
    snprintf(node->topic, sizeof(node->topic), "%s", cmd->topic);
    snprintf(node->message_id, sizeof(node->message_id), "%s", cmd->message_id);
    snprintf(node->frame, sizeof(node->frame), "%.*s", (int)cmd->message_json_len,
             cmd->message_json);
    return node->status;
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    current = f;
    uv_loop_init(&f->loop);
    f->bus = hs_bus_inproc_new(&f->loop);
    f->inproc = f->bus->ops;
    f->ops = *f->bus->ops;
    f->ops.ack = watched_ack;
    f->ops.release = watched_release;
    f->ops.topic_nodes = watched_topic_nodes;
    f->bus->ops = &f->ops;
    static const char *const names[] = {"node-a", "node-b", "node-c"};
    for (int i = 0; i < 3; i++) {
        f->nodes[i].name = names[i];
        assert_int_equal(hs_bus_serve_node(f->bus, names[i], node_handler, &f->nodes[i]), 0);
    }
    int status = -1;
    f->consumer = hs_consumer_new(f->bus, &status);
    assert_int_equal(status, 0);
    *state = f;
    return 0;
}

static void bus_closed_cb(int status, void *data)
{
    (void)status;
    *(int *)data = 1;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    int closed = 0;
    f->bus->ops = f->inproc;
    hs_bus_close(f->bus, bus_closed_cb, &closed);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_true(closed);
    hs_consumer_free(f->consumer);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
    current = NULL;
    return 0;
}

static void published_cb(int status, void *data)
{
    fixture_t *f = data;
    assert_int_equal(status, 0);
    f->published++;
}

/* Publishes one event on topic and runs the loop until it is settled. */
static void publish(fixture_t *f, const char *topic)
{
    char json[160];
    snprintf(json, sizeof(json), "{\"id\":\"%s\",\"topic\":\"%s\",\"content\":\"hi\"}", MESSAGE_ID,
             topic);
    hs_event_t event = {.topic = topic,
                        .message_id = MESSAGE_ID,
                        .message_json = json,
                        .message_json_len = strlen(json)};
    hs_bus_publish_event(f->bus, &event, published_cb, f);
    while (f->published == 0 || hs_consumer_in_flight(f->consumer) > 0)
        uv_run(&f->loop, UV_RUN_ONCE);
}

static void subscribe_nodes(fixture_t *f, const char *topic, int count)
{
    for (int i = 0; i < count; i++)
        hs_bus_add_topic_node(f->bus, topic, f->nodes[i].name);
}

static void test_no_node_acks_at_once(void **state)
{
    fixture_t *f = *state;
    subscribe_nodes(f, "other", 2);
    publish(f, "lonely");
    assert_int_equal(f->acks, 1);
    assert_int_equal(f->releases, 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(f->nodes[i].delivers, 0);
}

static void test_one_deliver_per_node_then_ack(void **state)
{
    fixture_t *f = *state;
    subscribe_nodes(f, "news", 2);
    publish(f, "news");
    for (int i = 0; i < 2; i++) {
        assert_int_equal(f->nodes[i].delivers, 1);
        assert_int_equal(f->nodes[i].acks_before, 0); /* not acked before every node had it */
        assert_string_equal(f->nodes[i].topic, "news");
        assert_string_equal(f->nodes[i].message_id, MESSAGE_ID);
        /* the event's message object, as it is (each node frames it) */
        char json[160];
        snprintf(json, sizeof(json), "{\"id\":\"%s\",\"topic\":\"news\",\"content\":\"hi\"}",
                 MESSAGE_ID);
        assert_string_equal(f->nodes[i].frame, json);
    }
    assert_int_equal(f->nodes[2].delivers, 0); /* holds no subscriber of it */
    assert_int_equal(f->acks, 1);
    assert_int_equal(f->releases, 0);
}

static void test_failing_node_releases(void **state)
{
    fixture_t *f = *state;
    subscribe_nodes(f, "news", 3);
    f->nodes[1].status = HS_EIO;
    publish(f, "news");
    for (int i = 0; i < 3; i++)
        assert_int_equal(f->nodes[i].delivers, 1); /* the others still get it */
    assert_int_equal(f->acks, 0);
    assert_int_equal(f->releases, 1); /* it comes back; nodes that had it drop the repeat */
}

/* A node the directory names but that is gone answers HS_ENOTFOUND: it has
 * no subscriber to owe the message to, so the event is done. */
static void test_gone_node_counts_as_delivered(void **state)
{
    fixture_t *f = *state;
    subscribe_nodes(f, "news", 1);
    hs_bus_add_topic_node(f->bus, "news", "node-gone");
    publish(f, "news");
    assert_int_equal(f->nodes[0].delivers, 1);
    assert_int_equal(f->acks, 1);
    assert_int_equal(f->releases, 0);
}

static void test_directory_failure_releases(void **state)
{
    fixture_t *f = *state;
    subscribe_nodes(f, "news", 2);
    f->directory_status = HS_EUNAVAIL;
    publish(f, "news");
    assert_int_equal(f->nodes[0].delivers, 0);
    assert_int_equal(f->acks, 0);
    assert_int_equal(f->releases, 1);
}

static void test_events_settle_one_by_one(void **state)
{
    fixture_t *f = *state;
    subscribe_nodes(f, "a", 1);
    publish(f, "a");
    f->published = 0;
    publish(f, "b");
    f->published = 0;
    f->nodes[0].status = HS_EIO;
    publish(f, "a");
    assert_int_equal(f->nodes[0].delivers, 2);
    assert_int_equal(f->acks, 2);
    assert_int_equal(f->releases, 1);
    assert_int_equal(hs_consumer_in_flight(f->consumer), 0);
}

/* A deletion's event takes the message's route, behind it: each node of
 * the topic gets a DELETED carrying the frame, after the DELIVER. */
static void test_deleted_event_follows_the_message(void **state)
{
    fixture_t *f = *state;
    subscribe_nodes(f, "news", 2);
    char json[160];
    snprintf(json, sizeof(json), "{\"id\":\"%s\",\"topic\":\"news\",\"content\":\"hi\"}",
             MESSAGE_ID);
    hs_event_t event = {.topic = "news",
                        .message_id = MESSAGE_ID,
                        .message_json = json,
                        .message_json_len = strlen(json)};
    hs_bus_publish_event(f->bus, &event, published_cb, f);
    char frame[160];
    snprintf(frame, sizeof(frame), "{\"type\":\"deleted\",\"topic\":\"news\",\"id\":\"%s\"}",
             MESSAGE_ID);
    hs_event_t deletion = {.topic = "news",
                           .message_id = MESSAGE_ID,
                           .message_json = frame,
                           .message_json_len = strlen(frame),
                           .kind = HS_EVENT_DELETED};
    hs_bus_publish_event(f->bus, &deletion, published_cb, f);
    while (f->published < 2 || hs_consumer_in_flight(f->consumer) > 0)
        uv_run(&f->loop, UV_RUN_ONCE);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(f->nodes[i].delivers, 1);
        assert_int_equal(f->nodes[i].deleteds, 1);
        assert_int_equal(f->nodes[i].delivers_before_deleted, 1);
        assert_string_equal(f->nodes[i].deleted_frame, frame);
    }
    assert_int_equal(f->nodes[2].deleteds, 0);
    assert_int_equal(f->acks, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_no_node_acks_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_deliver_per_node_then_ack, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failing_node_releases, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gone_node_counts_as_delivered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_directory_failure_releases, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events_settle_one_by_one, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deleted_event_follows_the_message, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
