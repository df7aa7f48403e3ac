/* Request decoding and validation: every field's missing, wrong-type and
 * out-of-range case gives the right status, code and a message naming it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "roles/decode.h"

static json_t *parse(const char *text)
{
    json_t *obj = NULL;
    hs_api_error_t err;
    assert_int_equal(hs_decode_body(text, strlen(text), &obj, &err), 0);
    return obj;
}

static void expect_error(int rc, const hs_api_error_t *err, int status, const char *code,
                         const char *mention)
{
    assert_int_equal(rc, HS_EINVAL);
    assert_int_equal(err->status, status);
    assert_string_equal(err->code, code);
    if (mention)
        assert_non_null(strstr(err->message, mention));
}

static void test_topic_rules(void **state)
{
    (void)state;
    assert_true(hs_topic_valid("a", 1));
    assert_true(hs_topic_valid("01GXZE2X4BMVE0G2H50KZ8REQD", 26));
    assert_true(hs_topic_valid("chat.room-1:en_US", 17));
    char long_topic[130];
    memset(long_topic, 'x', sizeof(long_topic));
    assert_true(hs_topic_valid(long_topic, 128));
    assert_false(hs_topic_valid(long_topic, 129));
    assert_false(hs_topic_valid("", 0));
    assert_false(hs_topic_valid("a b", 3));
    assert_false(hs_topic_valid("a/b", 3));
    assert_false(hs_topic_valid("caf\xc3\xa9", 5));
    assert_false(hs_topic_valid("a\0b", 3));
}

static void test_body_must_be_json_object(void **state)
{
    (void)state;
    json_t *obj = NULL;
    hs_api_error_t err;
    expect_error(hs_decode_body("", 0, &obj, &err), &err, 400, "invalid_json", NULL);
    expect_error(hs_decode_body("{", 1, &obj, &err), &err, 400, "invalid_json", NULL);
    expect_error(hs_decode_body("[1]", 3, &obj, &err), &err, 400, "invalid_json", "object");
    expect_error(hs_decode_body("{\"a\":1,\"a\":2}", 13, &obj, &err), &err, 400, "invalid_json",
                 NULL);
    assert_null(obj);
}

static void test_content_type(void **state)
{
    (void)state;
    assert_false(hs_content_type_is_json(NULL, 0)); /* none: what a Blob POST sends */
    assert_true(hs_content_type_is_json("application/json", 16));
    assert_true(hs_content_type_is_json("Application/JSON; charset=utf-8", 31));
    assert_true(hs_content_type_is_json(" application/json ;charset=utf-8", 33));
    assert_false(hs_content_type_is_json("application/merge-patch+json", 28));
    assert_false(hs_content_type_is_json("", 0));
    assert_false(hs_content_type_is_json("text/plain;charset=UTF-8", 24));
    assert_false(hs_content_type_is_json("multipart/form-data; boundary=x", 31));
    assert_false(hs_content_type_is_json("text/plain", 10));
    assert_false(hs_content_type_is_json("application/x-www-form-urlencoded", 33));
    assert_false(hs_content_type_is_json("application/jsonx", 17));
}

static void test_publish_ok(void **state)
{
    (void)state;
    json_t *obj = parse("{\"topic\":\"t1\",\"content\":\"Hello\\u0000!\",\"sender\":\"alice\"}");
    hs_publish_input_t in;
    hs_api_error_t err;
    assert_int_equal(hs_decode_publish(obj, "sender", 65536, &in, &err), 0);
    assert_string_equal(in.topic, "t1");
    assert_int_equal(in.content_len, 7); /* the NUL survives */
    assert_memory_equal(in.content, "Hello\0!", 7);
    assert_string_equal(in.author, "alice");
    json_decref(obj);

    obj = parse("{\"topic\":\"t1\",\"content\":\"\"}");
    assert_int_equal(hs_decode_publish(obj, "author", 65536, &in, &err), 0);
    assert_string_equal(in.author, "");
    json_decref(obj);
}

static void test_publish_errors(void **state)
{
    (void)state;
    struct {
        const char *body;
        int status;
        const char *code;
        const char *field;
    } cases[] = {
        {"{\"content\":\"x\"}", 400, "missing_field", "topic"},
        {"{\"topic\":\"t\"}", 400, "missing_field", "content"},
        {"{\"topic\":5,\"content\":\"x\"}", 400, "invalid_field", "topic"},
        {"{\"topic\":\"a b\",\"content\":\"x\"}", 400, "invalid_field", "topic"},
        {"{\"topic\":\"\",\"content\":\"x\"}", 400, "invalid_field", "topic"},
        {"{\"topic\":\"t\",\"content\":{}}", 400, "invalid_field", "content"},
        {"{\"topic\":\"t\",\"content\":\"x\",\"author\":[]}", 400, "invalid_field", "author"},
        {"{\"topic\":\"t\",\"content\":\"x\",\"author\":\"a\\u0000b\"}", 400, "invalid_field",
         "author"},
        {"{\"topic\":\"t\",\"content\":\"123456789\"}", 413, "payload_too_large", "content"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *obj = parse(cases[i].body);
        hs_publish_input_t in;
        hs_api_error_t err;
        expect_error(hs_decode_publish(obj, "author", 8, &in, &err), &err, cases[i].status,
                     cases[i].code, cases[i].field);
        json_decref(obj);
    }
}

static void test_subscription(void **state)
{
    (void)state;
    hs_subscription_input_t in;
    hs_api_error_t err;
    json_t *obj = parse("{\"topic\":\"t\",\"connectionID\":\"01gyz8rahse45a2jcvnva6btj2\"}");
    assert_int_equal(hs_decode_subscription(obj, true, &in, &err), 0);
    assert_string_equal(in.connection_id, "01GYZ8RAHSE45A2JCVNVA6BTJ2"); /* canonical */
    json_decref(obj);

    obj = parse("{\"connectionID\":\"01GYZ8RAHSE45A2JCVNVA6BTJ2\"}");
    expect_error(hs_decode_subscription(obj, true, &in, &err), &err, 400, "missing_field", "topic");
    assert_int_equal(hs_decode_subscription(obj, false, &in, &err), 0);
    assert_null(in.topic);
    json_decref(obj);

    obj = parse("{\"topic\":\"t\",\"connectionID\":12}");
    expect_error(hs_decode_subscription(obj, true, &in, &err), &err, 400, "invalid_field",
                 "connectionID");
    json_decref(obj);
    obj = parse("{\"topic\":\"t\",\"connectionID\":\"not-a-ulid\"}");
    expect_error(hs_decode_subscription(obj, true, &in, &err), &err, 400, "invalid_field",
                 "connectionID");
    json_decref(obj);
    obj = parse("{\"topic\":\"t\"}");
    expect_error(hs_decode_subscription(obj, true, &in, &err), &err, 400, "missing_field",
                 "connectionID");
    json_decref(obj);
}

static void test_notification(void **state)
{
    (void)state;
    hs_notification_input_t in;
    hs_api_error_t err;
    json_t *obj = parse("{\"connectionID\":\"01GYZ8RAHSE45A2JCVNVA6BTJ2\",\"payload\":\"hi\"}");
    assert_int_equal(hs_decode_notification(obj, 100, &in, &err), 0);
    assert_int_equal(in.payload_len, 2);
    json_decref(obj);
    obj = parse("{\"connectionID\":\"01GYZ8RAHSE45A2JCVNVA6BTJ2\",\"payload\":true}");
    expect_error(hs_decode_notification(obj, 100, &in, &err), &err, 400, "invalid_field",
                 "payload");
    json_decref(obj);
    /* to a user: exactly one of connectionID and userID */
    obj = parse("{\"userID\":\"alice\",\"payload\":\"hi\"}");
    assert_int_equal(hs_decode_notification(obj, 100, &in, &err), 0);
    assert_string_equal(in.user_id, "alice");
    assert_string_equal(in.connection_id, "");
    json_decref(obj);
    obj = parse("{\"userID\":\"alice\",\"connectionID\":\"01GYZ8RAHSE45A2JCVNVA6BTJ2\","
                "\"payload\":\"hi\"}");
    expect_error(hs_decode_notification(obj, 100, &in, &err), &err, 400, "invalid_field", "userID");
    json_decref(obj);
    obj = parse("{\"payload\":\"hi\"}");
    expect_error(hs_decode_notification(obj, 100, &in, &err), &err, 400, "missing_field", "userID");
    json_decref(obj);
    obj = parse("{\"userID\":\"\",\"payload\":\"hi\"}");
    expect_error(hs_decode_notification(obj, 100, &in, &err), &err, 400, "invalid_field", "userID");
    json_decref(obj);
    obj = parse("{\"userID\":\"a\\u0000b\",\"payload\":\"hi\"}");
    expect_error(hs_decode_notification(obj, 100, &in, &err), &err, 400, "invalid_field", "userID");
    json_decref(obj);
}

static void test_user_path(void **state)
{
    (void)state;
    char user[HS_USER_ID_CAP];
    hs_api_error_t err;
    assert_int_equal(hs_decode_user_path("alice", user, &err), 0);
    assert_string_equal(user, "alice");
    assert_int_equal(hs_decode_user_path("a%20b%2Fc+d%C3%A9", user, &err), 0);
    assert_string_equal(user, "a b/c+d\xc3\xa9"); /* '+' is a plus in a path */
    static const char *const bad[] = {"", "%", "%4", "%zz", "a%00b", "%g1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_error(hs_decode_user_path(bad[i], user, &err), &err, 400, "invalid_field", "user");
    char longest[3 * 257 + 1] = "";
    for (int i = 0; i < 256; i++)
        strcat(longest, "%41");
    assert_int_equal(hs_decode_user_path(longest, user, &err), 0);
    assert_int_equal(strlen(user), 256);
    strcat(longest, "A");
    expect_error(hs_decode_user_path(longest, user, &err), &err, 400, "invalid_field", "user");
}

static void test_user_connections_query(void **state)
{
    (void)state;
    hs_user_connections_query_t q;
    hs_api_error_t err;
    assert_int_equal(hs_decode_user_connections_query(NULL, NULL, &q, &err), 0);
    assert_int_equal(q.limit, HS_USER_CONNECTIONS_DEFAULT);
    assert_string_equal(q.after, "");
    assert_int_equal(
        hs_decode_user_connections_query("01gyz8rahse45a2jcvnva6btj2", "1000", &q, &err), 0);
    assert_string_equal(q.after, "01GYZ8RAHSE45A2JCVNVA6BTJ2");
    assert_int_equal(q.limit, 1000);
    expect_error(hs_decode_user_connections_query("x", NULL, &q, &err), &err, 400, "invalid_field",
                 "after");
    expect_error(hs_decode_user_connections_query(NULL, "0", &q, &err), &err, 400, "invalid_field",
                 "limit");
    expect_error(hs_decode_user_connections_query(NULL, "1001", &q, &err), &err, 400,
                 "invalid_field", "limit");
}

static void test_history(void **state)
{
    (void)state;
    hs_history_query_t q;
    hs_api_error_t err;
    assert_int_equal(hs_decode_history("t", NULL, NULL, NULL, &q, &err), 0);
    assert_int_equal(q.limit, 10);
    assert_false(q.forward);
    assert_false(q.has_cursor);
    assert_int_equal(hs_decode_history("t", "01GY1AZN62M9PDQDWGYG3VW6DJ", "1000", "true", &q, &err),
                     0);
    assert_true(q.has_cursor);
    assert_true(q.forward);
    assert_int_equal(q.limit, 1000);
    expect_error(hs_decode_history(NULL, NULL, NULL, NULL, &q, &err), &err, 400, "missing_field",
                 "topic");
    expect_error(hs_decode_history("t t", NULL, NULL, NULL, &q, &err), &err, 400, "invalid_field",
                 "topic");
    expect_error(hs_decode_history("t", "xyz", NULL, NULL, &q, &err), &err, 400, "invalid_field",
                 "lastID");
    const char *bad_limits[] = {"0", "1001", "-1", "abc", "", "10x", "99999999999999999999"};
    for (size_t i = 0; i < sizeof(bad_limits) / sizeof(bad_limits[0]); i++)
        expect_error(hs_decode_history("t", NULL, bad_limits[i], NULL, &q, &err), &err, 400,
                     "invalid_field", "limit");
    expect_error(hs_decode_history("t", NULL, NULL, "maybe", &q, &err), &err, 400, "invalid_field",
                 "forward");
}

static void test_topic_settings(void **state)
{
    (void)state;
    hs_topic_settings_t set;
    hs_api_error_t err;
    json_t *obj = parse("{\"retentionAge\":\"7d\",\"retentionCount\":1000}");
    assert_int_equal(hs_decode_topic_settings(obj, &set, &err), 0);
    assert_int_equal(set.age, HS_TOPIC_SET);
    assert_true(set.age_ms == 7ull * 24 * 3600 * 1000);
    assert_int_equal(set.count, HS_TOPIC_SET);
    assert_int_equal(set.count_value, 1000);
    json_decref(obj);
    obj = parse("{\"retentionCount\":null}");
    assert_int_equal(hs_decode_topic_settings(obj, &set, &err), 0);
    assert_int_equal(set.age, HS_TOPIC_KEEP);
    assert_int_equal(set.count, HS_TOPIC_DEFAULT);
    json_decref(obj);
    const char *bad[][2] = {
        {"{}", "retentionAge"},
        {"{\"retentionAge\":\"1y\"}", "retentionAge"},
        {"{\"retentionAge\":3600}", "retentionAge"},
        {"{\"retentionAge\":\"36501d\"}", "retentionAge"},
        {"{\"retentionCount\":-1}", "retentionCount"},
        {"{\"retentionCount\":\"5\"}", "retentionCount"},
        {"{\"retentionCount\":1000000001}", "retentionCount"},
        {"{\"retentionCount\":1,\"ttl\":1}", "ttl"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        obj = parse(bad[i][0]);
        assert_int_equal(hs_decode_topic_settings(obj, &set, &err), HS_EINVAL);
        assert_int_equal(err.status, 400);
        assert_non_null(strstr(err.message, bad[i][1]));
        json_decref(obj);
    }
}

static void test_topics_query(void **state)
{
    (void)state;
    hs_topics_query_t q;
    hs_api_error_t err;
    assert_int_equal(hs_decode_topics_query(NULL, NULL, NULL, &q, &err), 0);
    assert_null(q.prefix);
    assert_int_equal(q.limit, 10);
    assert_int_equal(hs_decode_topics_query("chat.", "chat.a", "1000", &q, &err), 0);
    assert_string_equal(q.prefix, "chat.");
    assert_string_equal(q.after, "chat.a");
    expect_error(hs_decode_topics_query("a b", NULL, NULL, &q, &err), &err, 400, "invalid_field",
                 "prefix");
    expect_error(hs_decode_topics_query(NULL, "a/b", NULL, &q, &err), &err, 400, "invalid_field",
                 "after");
    expect_error(hs_decode_topics_query(NULL, NULL, "0", &q, &err), &err, 400, "invalid_field",
                 "limit");
}

/* A batch: 1..max elements, each decoded as a single publish; a bad one is
 * named by its index, and the error is the one a single publish gets. */
static void test_batch(void **state)
{
    (void)state;
    hs_publish_input_t *in = NULL;
    size_t count = 0;
    long index = 0;
    hs_api_error_t err;
    json_t *obj = parse("{\"messages\":[{\"topic\":\"a\",\"content\":\"1\"},"
                        "{\"topic\":\"b\",\"content\":\"22\",\"author\":\"w\"}]}");
    assert_int_equal(hs_decode_batch(obj, 2, 100, &in, &count, &index, &err), 0);
    assert_int_equal(count, 2);
    assert_int_equal(index, -1);
    assert_string_equal(in[0].topic, "a");
    assert_string_equal(in[0].author, "");
    assert_int_equal(in[1].content_len, 2);
    assert_string_equal(in[1].author, "w");
    hs_free(in);
    /* more than max: 413, no index */
    expect_error(hs_decode_batch(obj, 1, 100, &in, &count, &index, &err), &err, 413,
                 "payload_too_large", "--max-batch");
    assert_int_equal(index, -1);
    assert_null(in);
    /* content over max in element 1: the single publish's 413, with its index */
    expect_error(hs_decode_batch(obj, 2, 1, &in, &count, &index, &err), &err, 413,
                 "payload_too_large", "messages[1]: field 'content'");
    assert_int_equal(index, 1);
    json_decref(obj);
    static const struct {
        const char *body, *code, *mention;
        long index;
    } cases[] = {
        {"{}", "missing_field", "'messages'", -1},
        {"{\"messages\":null}", "missing_field", "'messages'", -1},
        {"{\"messages\":{}}", "invalid_field", "array", -1},
        {"{\"messages\":[]}", "invalid_field", "empty", -1},
        {"{\"messages\":[1]}", "invalid_field", "messages[0]: each message must be", 0},
        {"{\"messages\":[{\"topic\":\"a\",\"content\":\"x\"},{\"content\":\"x\"}]}",
         "missing_field", "messages[1]: field 'topic'", 1},
        {"{\"messages\":[{\"topic\":\"a\",\"content\":\"x\"},{\"topic\":\"a b\",\"content\":"
         "\"x\"}]}",
         "invalid_field", "messages[1]: field 'topic'", 1},
        {"{\"messages\":[{\"topic\":\"a\",\"content\":\"x\",\"author\":7}]}", "invalid_field",
         "messages[0]: field 'author'", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        obj = parse(cases[i].body);
        expect_error(hs_decode_batch(obj, 10, 100, &in, &count, &index, &err), &err, 400,
                     cases[i].code, cases[i].mention);
        assert_int_equal(index, cases[i].index);
        assert_null(in);
        json_decref(obj);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_topic_rules),
        cmocka_unit_test(test_body_must_be_json_object),
        cmocka_unit_test(test_content_type),
        cmocka_unit_test(test_publish_ok),
        cmocka_unit_test(test_publish_errors),
        cmocka_unit_test(test_subscription),
        cmocka_unit_test(test_notification),
        cmocka_unit_test(test_user_path),
        cmocka_unit_test(test_user_connections_query),
        cmocka_unit_test(test_history),
        cmocka_unit_test(test_topic_settings),
        cmocka_unit_test(test_topics_query),
        cmocka_unit_test(test_batch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
