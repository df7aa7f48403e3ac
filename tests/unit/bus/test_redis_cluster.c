/* The Redis Cluster helpers of the bus without a server (redis_cluster.c):
 * a key's hash slot (the cluster spec's vectors, hash tags), the seeds of a
 * URL, MOVED / ASK answers and a CLUSTER SLOTS map. The bus on a real
 * cluster is tested end to end (tests/e2e/test_redis_cluster.py). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "bus/redis_internal.h"

static unsigned slot(const char *key)
{
    return hs_redis_key_slot(key, strlen(key));
}

static void test_key_slot(void **state)
{
    (void)state;
    /* The spec: CRC16("123456789") = 0x31C3; 0x31C3 mod 16384 = 12739. */
    assert_int_equal(slot("123456789"), 0x31C3 & 16383);
    assert_int_equal(slot("123456789"), 12739);
    assert_int_equal(slot("foo"), 12182);
    assert_int_equal(slot("bar"), 5061);
    assert_int_equal(slot("hello"), 866);
    assert_int_equal(slot(""), 0);
    /* Hash tags: the text between the first '{' and the next '}'. */
    assert_int_equal(slot("{user1000}.following"), slot("user1000"));
    assert_int_equal(slot("{user1000}.followers"), slot("user1000"));
    assert_int_equal(slot("foo{}{bar}"), hs_redis_key_slot("foo{}{bar}", 10)); /* empty: all */
    assert_int_not_equal(slot("foo{}{bar}"), slot("bar"));
    assert_int_equal(slot("foo{{bar}}zap"), slot("{bar"));
    assert_int_equal(slot("foo{bar}{zap}"), slot("bar"));
    assert_int_equal(slot("no{close"), hs_redis_key_slot("no{close", 8));
    /* houston's keys: a node's keys share a slot, a topic's too - even
     * when the name has braces of its own. */
    assert_int_equal(slot("houston:{n:a}:stream"), slot("houston:{n:a}:seq"));
    assert_int_equal(slot("houston:{n:a}:stream"), slot("n:a"));
    assert_int_equal(slot("houston:{t:x}y}:nodes"), slot("houston:{t:x}y}:pend:node-1"));
    /* Binary keys: the length counts, not a NUL. */
    assert_int_not_equal(hs_redis_key_slot("a\0b", 3), slot("a"));
}

static void test_seeds(void **state)
{
    (void)state;
    hs_redis_addr_t a[4];
    int db = -1;
    assert_int_equal(hs_redis_parse_seeds("redis://127.0.0.1:7000", a, 4, &db), 1);
    assert_string_equal(a[0].host, "127.0.0.1");
    assert_int_equal(a[0].port, 7000);
    assert_int_equal(db, 0);
    assert_int_equal(hs_redis_parse_seeds("redis://h1:7000,h2:7001,h3/2", a, 4, &db), 3);
    assert_string_equal(a[1].host, "h2");
    assert_int_equal(a[1].port, 7001);
    assert_string_equal(a[2].host, "h3");
    assert_int_equal(a[2].port, 6379);
    assert_int_equal(db, 2);
    const char *bad[] = {"redis://", "http://h:1", "redis://h:1,", "redis://,h:1", "redis://h:0",
                         "redis://h:70000", "redis://h:x", "redis://h:1/x", "redis://h:1/",
                         "redis://:1", "redis://a,b,c,d,e",
                         /* user info is refused, not taken for a host (and logged) */
                         "redis://:pw@cache:6379", "redis://u:pw@cache:6379", "redis://h?x=1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(hs_redis_parse_seeds(bad[i], a, 4, &db), -1);
}

static void test_redirect(void **state)
{
    (void)state;
    bool ask = true;
    int s = -1;
    hs_redis_addr_t to;
    assert_int_equal(hs_redis_parse_redirect("MOVED 3999 127.0.0.1:6381", "x", &ask, &s, &to), 0);
    assert_false(ask);
    assert_int_equal(s, 3999);
    assert_string_equal(to.host, "127.0.0.1");
    assert_int_equal(to.port, 6381);
    assert_int_equal(hs_redis_parse_redirect("ASK 12739 10.0.0.2:7002", "x", &ask, &s, &to), 0);
    assert_true(ask);
    assert_int_equal(s, 12739);
    assert_string_equal(to.host, "10.0.0.2");
    /* Redis 7 without a known endpoint: ":port" is on the node asked. */
    assert_int_equal(hs_redis_parse_redirect("MOVED 1 :7005", "127.0.0.9", &ask, &s, &to), 0);
    assert_string_equal(to.host, "127.0.0.9");
    assert_int_equal(to.port, 7005);
    assert_int_equal(hs_redis_parse_redirect("MOVED 1 ::1:7005", "x", &ask, &s, &to), 0);
    assert_string_equal(to.host, "::1");
    const char * not [] = {"ERR unknown command",
                           "MOVED",
                           "MOVED 1",
                           "MOVED x 1.2.3.4:5",
                           "MOVED 16384 h:1",
                           "MOVED -1 h:1",
                           "MOVED 1 h",
                           "MOVED 1 h:0",
                           "TRYAGAIN Multiple keys",
                           "CLUSTERDOWN The cluster is down"};
    for (size_t i = 0; i < sizeof(not ) / sizeof(not [0]); i++)
        assert_int_equal(hs_redis_parse_redirect(not [i], "x", &ask, &s, &to), -1);
}

/* ---- a CLUSTER SLOTS answer, built by hand ---------------------------------------- */

static redisReply *reply_new(int type)
{
    redisReply *r = calloc(1, sizeof(*r));
    r->type = type;
    return r;
}

static redisReply *integer(long long v)
{
    redisReply *r = reply_new(REDIS_REPLY_INTEGER);
    r->integer = v;
    return r;
}

static redisReply *string(const char *s)
{
    redisReply *r = reply_new(REDIS_REPLY_STRING);
    r->str = strdup(s);
    r->len = strlen(s);
    return r;
}

static redisReply *array(size_t n, ...)
{
    redisReply *r = reply_new(REDIS_REPLY_ARRAY);
    r->elements = n;
    r->element = calloc(n, sizeof(redisReply *));
    va_list ap;
    va_start(ap, n);
    for (size_t i = 0; i < n; i++)
        r->element[i] = va_arg(ap, redisReply *);
    va_end(ap);
    return r;
}

static redisReply *node(const char *host, int port)
{
    return array(3, string(host), integer(port), string("0123456789abcdef"));
}

static void test_slots(void **state)
{
    (void)state;
    static uint16_t map[CLUSTER_SLOTS];
    hs_redis_addr_t masters[4], known[8];
    int replicas[4];
    int known_count = 0;
    redisReply *r = array(
        4, array(4, integer(0), integer(5460), node("127.0.0.1", 7000), node("127.0.0.1", 7003)),
        array(4, integer(5461), integer(10922), node("", 7001), node("127.0.0.1", 7004)),
        array(3, integer(10923), integer(12000), node("127.0.0.1", 7002)),
        array(3, integer(12001), integer(16383), node("127.0.0.1", 7002)));
    assert_int_equal(
        hs_redis_parse_slots(r, "127.0.0.5", map, masters, replicas, 4, known, &known_count, 8), 3);
    assert_int_equal(masters[0].port, 7000);
    assert_string_equal(masters[1].host, "127.0.0.5"); /* "": the node asked */
    assert_int_equal(masters[2].port, 7002);
    assert_int_equal(replicas[0], 1);
    assert_int_equal(replicas[2], 0);
    assert_int_equal(map[0], 0);
    assert_int_equal(map[5460], 0);
    assert_int_equal(map[5461], 1);
    assert_int_equal(map[12739], 2);
    assert_int_equal(map[16383], 2);
    assert_int_equal(known_count, 5); /* masters and replicas, each once */
    /* A slot without a master: not a usable map. */
    r->element[3]->element[0]->integer = 12002;
    assert_int_equal(
        hs_redis_parse_slots(r, "h", map, masters, replicas, 4, known, &known_count, 8), -1);
    freeReplyObject(r);
    redisReply *err = reply_new(REDIS_REPLY_ERROR);
    assert_int_equal(
        hs_redis_parse_slots(err, "h", map, masters, replicas, 4, known, &known_count, 8), -1);
    freeReplyObject(err);
    /* More masters than room. */
    r = array(2, array(3, integer(0), integer(1), node("a", 1)),
              array(3, integer(2), integer(16383), node("b", 1)));
    assert_int_equal(
        hs_redis_parse_slots(r, "h", map, masters, replicas, 1, known, &known_count, 8), -1);
    freeReplyObject(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_slot),
        cmocka_unit_test(test_seeds),
        cmocka_unit_test(test_redirect),
        cmocka_unit_test(test_slots),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
