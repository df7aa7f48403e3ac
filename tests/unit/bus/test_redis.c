/* The Redis bus against a real redis-server, started by this test (a
 * throwaway one: temporary directory, free loopback port, no persistence)
 * and killed after: events published, consumed and acknowledged; a
 * consumer that stops leaves its events to another; node commands in
 * order, numbered; a gap in a node's stream reported as HS_NODE_GAP; a
 * Redis that forgot its scripts (SCRIPT FLUSH); a restarted Redis; the
 * directory, and the node's entries across a reconnect.
 *
 * Without redis-server the test fails (scripts/install-deps.sh test
 * installs it): it does not skip, so a CI without it cannot pass. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bus/bus.h"
#include "bus/partition.h"
#include "bus/redis_internal.h"
#include "core/error.h"

/* ---- the throwaway redis-server -------------------------------------------------- */

static struct {
    char dir[64];
    int port;
    pid_t pid;
    char url[64];
    redisContext *c; /* a plain client for setting up and checking */
} srv;

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        return -1;
    close(fd);
    return ntohs(a.sin_port);
}

static void client_close(void)
{
    if (srv.c)
        redisFree(srv.c);
    srv.c = NULL;
}

static bool client_connect(void)
{
    client_close();
    struct timeval tv = {.tv_sec = 2};
    srv.c = redisConnectWithTimeout("127.0.0.1", srv.port, tv);
    if (srv.c == NULL || srv.c->err) {
        client_close();
        return false;
    }
    redisSetTimeout(srv.c, tv);
    redisReply *r = redisCommand(srv.c, "PING");
    bool ok = r && r->type == REDIS_REPLY_STATUS;
    if (r)
        freeReplyObject(r);
    if (!ok)
        client_close();
    return ok;
}

static int server_start(void)
{
    char port[16], log[128];
    snprintf(port, sizeof(port), "%d", srv.port);
    snprintf(log, sizeof(log), "%s/redis.log", srv.dir);
    srv.pid = fork();
    if (srv.pid == 0) {
        execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", srv.dir, "--logfile", log, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 500; i++) { /* 5 s */
        int status;
        if (waitpid(srv.pid, &status, WNOHANG) == srv.pid) {
            fprintf(stderr,
                    "test_redis: redis-server %s (exit %d); it is needed here - install it "
                    "(scripts/install-deps.sh test)\n",
                    WIFEXITED(status) && WEXITSTATUS(status) == 127 ? "is not installed"
                                                                    : "did not start",
                    WIFEXITED(status) ? WEXITSTATUS(status) : -1);
            srv.pid = 0;
            return -1;
        }
        if (client_connect())
            return 0;
        usleep(10000);
    }
    fprintf(stderr, "test_redis: redis-server did not answer on port %d\n", srv.port);
    return -1;
}

/* kill -9: what the scale-out checker does to Redis. */
static void server_kill(void)
{
    client_close();
    if (srv.pid > 0) {
        kill(srv.pid, SIGKILL);
        waitpid(srv.pid, NULL, 0);
    }
    srv.pid = 0;
}

static int group_setup(void **state)
{
    (void)state;
    snprintf(srv.dir, sizeof(srv.dir), "/tmp/houston-test-redis-XXXXXX");
    if (mkdtemp(srv.dir) == NULL)
        return -1;
    srv.port = free_port();
    snprintf(srv.url, sizeof(srv.url), "redis://127.0.0.1:%d", srv.port);
    return srv.port > 0 ? server_start() : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    server_kill();
    char path[128];
    snprintf(path, sizeof(path), "%s/redis.log", srv.dir);
    unlink(path);
    rmdir(srv.dir);
    return 0;
}

/* One command on the plain client; the reply is freed by the caller. */
static redisReply *sync_cmd(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(srv.c, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    return r;
}

static void sync_do(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(srv.c, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    if (r->type == REDIS_REPLY_ERROR)
        fail_msg("Redis: %s", r->str);
    freeReplyObject(r);
}

static long long sync_int(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(srv.c, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

/* ---- the loop, and what the buses tell ---------------------------------------------- */

#define LOG_MAX 128

typedef struct fixture {
    uv_loop_t loop;
    uv_timer_t tick; /* so that a run of the loop returns often */
    hs_bus_t *bus[3];
    unsigned partitions; /* of the buses opened (setup: 1, the tests before partitions) */
    int closed;
    char log[LOG_MAX][96];
    int entries;
    int done, done_status;
    int reconnects;
    void *tokens[16];
    int token_count;
    bool ack_events; /* the event handler acknowledges (or keeps the token) */
    bool b_keeps;    /* consumer B keeps its tokens (b_tokens) rather than acknowledging */
    void *b_tokens[16];
    int b_token_count;
} fixture_t;

static void record(fixture_t *f, const char *fmt, ...)
{
    assert_true(f->entries < LOG_MAX);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->log[f->entries++], sizeof(f->log[0]), fmt, ap);
    va_end(ap);
}

static int count_log(fixture_t *f, const char *prefix)
{
    int n = 0;
    for (int i = 0; i < f->entries; i++)
        n += strncmp(f->log[i], prefix, strlen(prefix)) == 0;
    return n;
}

static void tick_cb(uv_timer_t *t)
{
    (void)t;
}

/* Runs the loop until cond holds or ms pass; returns cond. */
static bool run_until(fixture_t *f, uint64_t ms, bool (*cond)(fixture_t *f))
{
    uv_update_time(&f->loop);
    uint64_t end = uv_now(&f->loop) + ms;
    while (!cond(f) && uv_now(&f->loop) < end)
        uv_run(&f->loop, UV_RUN_ONCE);
    return cond(f);
}

static void run_for(fixture_t *f, uint64_t ms)
{
    uv_update_time(&f->loop);
    uint64_t end = uv_now(&f->loop) + ms;
    while (uv_now(&f->loop) < end)
        uv_run(&f->loop, UV_RUN_ONCE);
}

static hs_bus_t *open_bus(fixture_t *f, int i, uint64_t claim_idle_ms)
{
    hs_bus_redis_options_t options = {
        .claim_idle_ms = claim_idle_ms, .partitions = f->partitions, .heartbeat_ms = 200};
    char err[256];
    assert_int_equal(hs_bus_redis_open(&f->loop, srv.url, &options, &f->bus[i], err, sizeof(err)),
                     0);
    return f->bus[i];
}

static bool bus0_ready(fixture_t *f)
{
    return hs_bus_ready(f->bus[0]);
}

static int setup(void **state)
{
    if (srv.c == NULL && !client_connect())
        return -1;
    redisReply *r = redisCommand(srv.c, "FLUSHALL");
    if (r)
        freeReplyObject(r);
    fixture_t *f = calloc(1, sizeof(*f));
    uv_loop_init(&f->loop);
    uv_timer_init(&f->loop, &f->tick);
    uv_timer_start(&f->tick, tick_cb, 5, 5);
    f->ack_events = true;
    f->partitions = 1;
    *state = f;
    return 0;
}

static void closed_cb(int status, void *data)
{
    fixture_t *f = data;
    assert_int_equal(status, 0);
    f->closed++;
}

static bool all_closed(fixture_t *f)
{
    int open = 0;
    for (int i = 0; i < 3; i++)
        open += f->bus[i] != NULL;
    return f->closed == open;
}

static void close_bus(fixture_t *f, int i)
{
    int before = f->closed;
    hs_bus_close(f->bus[i], closed_cb, f);
    uv_update_time(&f->loop);
    uint64_t end = uv_now(&f->loop) + 5000;
    while (f->closed == before && uv_now(&f->loop) < end)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(f->closed, before + 1);
    f->bus[i] = NULL;
    f->closed--;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    for (int i = 0; i < 3; i++)
        if (f->bus[i])
            hs_bus_close(f->bus[i], closed_cb, f);
    assert_true(run_until(f, 5000, all_closed));
    uv_close((uv_handle_t *)&f->tick, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0); /* no handle left behind */
    free(f);
    return 0;
}

static void event_cb(const hs_event_t *event, void *token, void *data)
{
    fixture_t *f = data;
    record(f, "event %s %s %.*s%s", event->topic, event->message_id, (int)event->message_json_len,
           event->message_json, event->kind == HS_EVENT_DELETED ? " (deleted)" : "");
    if (f->ack_events) {
        hs_bus_ack(f->bus[0], token);
    } else {
        assert_true(f->token_count < 16);
        f->tokens[f->token_count++] = token;
    }
}

static void event_b_cb(const hs_event_t *event, void *token, void *data)
{
    fixture_t *f = data;
    record(f, "B event %s", event->message_id);
    if (f->b_keeps && f->b_token_count < 16)
        f->b_tokens[f->b_token_count++] = token;
    else
        hs_bus_ack(f->bus[1], token);
}

static void done_cb(int status, void *data)
{
    fixture_t *f = data;
    f->done++;
    if (status != 0)
        f->done_status = status;
}

static int node_cb(const hs_node_cmd_t *cmd, void *data)
{
    fixture_t *f = data;
    switch (cmd->kind) {
    case HS_NODE_DELIVER:
        record(f, "deliver %s %.*s", cmd->topic, (int)cmd->message_json_len, cmd->message_json);
        break;
    case HS_NODE_SUBSCRIBE:
        record(f, "subscribe %s %s", cmd->topic, cmd->connection_id);
        break;
    case HS_NODE_GAP:
        record(f, "gap %.*s", (int)cmd->frame_text_len, cmd->frame_text);
        break;
    case HS_NODE_DELETED:
        record(f, "deleted %s %s %.*s", cmd->topic, cmd->message_id ? cmd->message_id : "-",
               (int)cmd->frame_text_len, cmd->frame_text);
        break;
    case HS_NODE_BATCH_END:
        break;
    default:
        record(f, "cmd %d", cmd->kind);
        break;
    }
    return 0;
}

static void publish(fixture_t *f, hs_bus_t *bus, const char *topic, const char *id)
{
    char json[64];
    snprintf(json, sizeof(json), "{\"id\":\"%s\"}", id);
    hs_event_t ev = {
        .topic = topic, .message_id = id, .message_json = json, .message_json_len = strlen(json)};
    hs_bus_publish_event(bus, &ev, done_cb, f);
}

static void deliver(fixture_t *f, hs_bus_t *bus, const char *node, const char *topic,
                    const char *text)
{
    hs_node_cmd_t cmd = {.kind = HS_NODE_DELIVER,
                         .topic = topic,
                         .message_json = text,
                         .message_json_len = strlen(text)};
    hs_bus_send_to_node(bus, node, &cmd, done_cb, f);
}

/* A node reads once it knows where its stream starts: commands appended
 * before that are for an earlier life of the node id. */
static bool node_started(fixture_t *f)
{
    return ((redis_bus_t *)f->bus[0])->node_started;
}

/* Entries pending in the group once the acks sent so far went through
 * (waits up to 3 s for it to reach 0). */
static long long pending_after_acks(fixture_t *f)
{
    long long pending = -1;
    for (int i = 0; i < 150 && pending != 0; i++) {
        run_for(f, 20);
        redisReply *r = sync_cmd("XPENDING houston:{p0}:events houston:consumers");
        assert_int_equal(r->type, REDIS_REPLY_ARRAY);
        pending = r->element[0]->integer;
        freeReplyObject(r);
    }
    return pending;
}

/* The consumer holds the lease and has read the (empty) stream once through
 * its group. */
static bool consumer_reading(fixture_t *f)
{
    redis_bus_t *bus = (redis_bus_t *)f->bus[0];
    if (!bus->groups_ready)
        return false;
    for (unsigned i = 0; i < bus->partitions; i++)
        if (!bus->parts[i].held || bus->parts[i].taking_over || bus->parts[i].last[0] == '\0')
            return false;
    return true;
}

/* ---- events ------------------------------------------------------------------------ */

static bool three_events(fixture_t *f)
{
    return count_log(f, "event ") == 3 && f->done == 3;
}

static void test_events_publish_consume_ack(void **state)
{
    fixture_t *f = *state;
    open_bus(f, 0, 600);
    assert_true(run_until(f, 3000, bus0_ready));
    assert_int_equal(hs_bus_consume_events(f->bus[0], event_cb, f), 0);
    assert_int_equal(hs_bus_consume_events(f->bus[0], event_cb, f), HS_EEXIST);
    /* The consumer has the lease and its group before the first publish
     * (a group is created at the end of the stream). */
    assert_true(run_until(f, 5000, consumer_reading));
    publish(f, f->bus[0], "t", "m1");
    publish(f, f->bus[0], "t", "m2");
    publish(f, f->bus[0], "u", "m3");
    assert_true(run_until(f, 5000, three_events));
    assert_int_equal(f->done_status, 0);
    assert_string_equal(f->log[0], "event t m1 {\"id\":\"m1\"}");
    assert_string_equal(f->log[1], "event t m2 {\"id\":\"m2\"}");
    assert_string_equal(f->log[2], "event u m3 {\"id\":\"m3\"}");
    assert_int_equal(pending_after_acks(f), 0); /* all acknowledged */
    assert_int_equal(sync_int("XLEN houston:{p0}:events"), 3);
}

static bool both_ready(fixture_t *f);

static bool two_events(fixture_t *f)
{
    return count_log(f, "event ") == 2 && f->done == 2;
}

static bool two_deleted(fixture_t *f)
{
    return count_log(f, "deleted ") == 2;
}

/* A deletion is an event of the topic's partition with kind "deleted" (a
 * message event has none), after the topic's message; the node command
 * carries the frame, the id, or an empty id for a whole topic. */
static void test_deleted_event_and_command(void **state)
{
    fixture_t *f = *state;
    open_bus(f, 0, 600);
    open_bus(f, 1, 0);
    assert_true(run_until(f, 3000, both_ready));
    assert_int_equal(hs_bus_consume_events(f->bus[0], event_cb, f), 0);
    assert_true(run_until(f, 5000, consumer_reading));
    publish(f, f->bus[1], "t", "m1");
    const char *frame = "{\"type\":\"deleted\",\"topic\":\"t\",\"id\":\"m1\"}";
    hs_event_t deletion = {.topic = "t",
                           .message_id = "m1",
                           .message_json = frame,
                           .message_json_len = strlen(frame),
                           .kind = HS_EVENT_DELETED};
    hs_bus_publish_event(f->bus[1], &deletion, done_cb, f);
    assert_true(run_until(f, 5000, two_events));
    assert_int_equal(f->done_status, 0);
    assert_string_equal(f->log[0], "event t m1 {\"id\":\"m1\"}");
    assert_string_equal(
        f->log[1], "event t m1 {\"type\":\"deleted\",\"topic\":\"t\",\"id\":\"m1\"} (deleted)");
    assert_int_equal(hs_bus_serve_node(f->bus[0], "n1", node_cb, f), 0);
    assert_true(run_until(f, 3000, node_started));
    hs_node_cmd_t cmd = {.kind = HS_NODE_DELETED,
                         .topic = "t",
                         .message_id = "m1",
                         .frame_text = frame,
                         .frame_text_len = strlen(frame)};
    hs_bus_send_to_node(f->bus[1], "n1", &cmd, done_cb, f);
    const char *whole = "{\"type\":\"deleted\",\"topic\":\"t\"}";
    cmd = (hs_node_cmd_t){.kind = HS_NODE_DELETED,
                          .topic = "t",
                          .message_id = "",
                          .frame_text = whole,
                          .frame_text_len = strlen(whole)};
    hs_bus_send_to_node(f->bus[1], "n1", &cmd, done_cb, f);
    assert_true(run_until(f, 5000, two_deleted));
    assert_string_equal(f->log[2],
                        "deleted t m1 {\"type\":\"deleted\",\"topic\":\"t\",\"id\":\"m1\"}");
    assert_string_equal(f->log[3], "deleted t  {\"type\":\"deleted\",\"topic\":\"t\"}");
}

static bool two_kept(fixture_t *f)
{
    return f->token_count == 2;
}

static bool b_took_over(fixture_t *f)
{
    return count_log(f, "B event ") == 2;
}

/* A consumer that read events and stopped before it acknowledged them
 * leaves them pending; the next consumer takes the lease and hands them on
 * before anything new. */
static void test_stopped_consumer_events_claimed(void **state)
{
    fixture_t *f = *state;
    f->ack_events = false;
    open_bus(f, 0, 600);
    assert_true(run_until(f, 3000, bus0_ready));
    assert_int_equal(hs_bus_consume_events(f->bus[0], event_cb, f), 0);
    assert_true(run_until(f, 5000, consumer_reading));
    publish(f, f->bus[0], "t", "m1");
    publish(f, f->bus[0], "t", "m2");
    assert_true(run_until(f, 5000, two_kept));
    for (int i = 0; i < f->token_count; i++)
        hs_bus_release(f->bus[0], f->tokens[i]); /* never acknowledged */
    close_bus(f, 0);
    redisReply *r = sync_cmd("XPENDING houston:{p0}:events houston:consumers");
    assert_int_equal(r->element[0]->integer, 2);
    freeReplyObject(r);

    open_bus(f, 1, 600);
    assert_int_equal(hs_bus_consume_events(f->bus[1], event_b_cb, f), 0);
    assert_true(run_until(f, 5000, b_took_over));
    assert_string_equal(f->log[2], "B event m1");
    assert_string_equal(f->log[3], "B event m2");
    assert_int_equal(pending_after_acks(f), 0);
}

/* ---- partitions: leases and fencing ------------------------------------------------ */

static const char *lease_of(int p, char *out, size_t len)
{
    char cmd[64];
    snprintf(cmd, sizeof(cmd), "GET houston:{p%d}:lease", p);
    redisReply *r = sync_cmd(cmd);
    snprintf(out, len, "%s", r->type == REDIS_REPLY_STRING ? r->str : "");
    freeReplyObject(r);
    return out;
}

static bool holds(hs_bus_t *b, unsigned p)
{
    redis_bus_t *bus = (redis_bus_t *)b;
    return bus->parts[p].held && !bus->parts[p].taking_over && !bus->parts[p].releasing;
}

static bool one_token(fixture_t *f)
{
    return f->token_count == 1;
}

static bool b_holds_2_only(fixture_t *f)
{
    return holds(f->bus[1], 2) && !holds(f->bus[1], 3) && !holds(f->bus[0], 2);
}

/* The first finds its lease gone at its next renewal (until then both
 * think they hold it: the lease in Redis is the second's, which is what
 * the fenced scripts go by). */
static bool b_holds_3_and_got_it(fixture_t *f)
{
    return holds(f->bus[1], 3) && f->b_token_count == 1 &&
           !((redis_bus_t *)f->bus[0])->parts[3].held;
}

static long long pending_of(int p)
{
    char cmd[96];
    snprintf(cmd, sizeof(cmd), "XPENDING houston:{p%d}:events houston:consumers", p);
    redisReply *r = sync_cmd(cmd);
    long long n = r->element[0]->integer;
    freeReplyObject(r);
    return n;
}

/* Two consumers, 4 partitions. The first holds all; the second arrives and
 * gets the 2 the first hands back - but not partition 3 while the first
 * still has an event of it in flight (a clean hand-over finishes first).
 * Then partition 3's lease goes (as when the first stalled past it): the
 * second takes it with a higher fencing token, claims the pending event at
 * once, the first's (stale) ack is refused, and the first leaves the group
 * of partition 3. */
static void test_partition_leases_and_fences(void **state)
{
    fixture_t *f = *state;
    f->partitions = 4;
    f->ack_events = false;
    f->b_keeps = true;
    const char *topic = NULL;
    static const char *const topics[] = {"t", "u", "v", "w", "x", "y", "z"};
    for (size_t i = 0; i < sizeof(topics) / sizeof(topics[0]) && topic == NULL; i++)
        if (hs_partition_of(topics[i], 1, 4) == 3)
            topic = topics[i];
    assert_non_null(topic);
    open_bus(f, 0, 60000); /* no claims of its own for the test's length */
    assert_true(run_until(f, 3000, bus0_ready));
    assert_int_equal(hs_bus_consume_events(f->bus[0], event_cb, f), 0);
    assert_true(run_until(f, 5000, consumer_reading)); /* alone: all 4 */
    redis_bus_t *a = (redis_bus_t *)f->bus[0];
    uint64_t first_fence = a->parts[3].fence;
    assert_true(first_fence > 0);
    publish(f, f->bus[0], topic, "m1");
    assert_true(run_until(f, 5000, one_token)); /* in flight on partition 3 */

    open_bus(f, 1, 60000);
    assert_int_equal(hs_bus_consume_events(f->bus[1], event_b_cb, f), 0);
    assert_true(run_until(f, 5000, b_holds_2_only));
    run_for(f, 1000); /* 5 beats: partition 3 stays the first's */
    char lease[128];
    assert_false(holds(f->bus[1], 3));
    assert_string_equal(lease_of(3, lease, sizeof(lease)),
                        (snprintf(lease, sizeof(lease), "%s", a->parts[3].holder), lease));
    assert_int_equal(pending_of(3), 1);

    sync_do("DEL houston:{p3}:lease"); /* the first's lease is gone */
    assert_true(run_until(f, 5000, b_holds_3_and_got_it));
    redis_bus_t *b = (redis_bus_t *)f->bus[1];
    assert_true(b->parts[3].fence > first_fence); /* tokens only grow */
    assert_false(a->parts[3].held);
    assert_string_equal(f->log[f->entries - 1], "B event m1"); /* claimed at once */
    /* The stale holder's ack is refused: the event stays pending, the new
     * holder's. */
    hs_bus_ack(f->bus[0], f->tokens[0]);
    f->token_count = 0;
    run_for(f, 300);
    assert_int_equal(pending_of(3), 1);
    redisReply *r = sync_cmd("XINFO CONSUMERS houston:{p3}:events houston:consumers");
    assert_int_equal(r->elements, 1); /* the first left the group after the claim */
    freeReplyObject(r);
    hs_bus_ack(f->bus[1], f->b_tokens[0]);
    f->b_token_count = 0;
    run_for(f, 300);
    assert_int_equal(pending_of(3), 0);
}

static bool mismatch_seen(fixture_t *f)
{
    return f->done > 0;
}

static void mismatch_cb(const char *why, void *data)
{
    fixture_t *f = data;
    record(f, "mismatch %s", why);
    f->done++;
}

/* The first process sets houston:partitions; one with another count hears
 * of it (and must stop: main.c exits non-zero). */
static void test_partition_count_mismatch(void **state)
{
    fixture_t *f = *state;
    sync_do("SET houston:partitions 8");
    hs_bus_redis_options_t options = {
        .partitions = 16, .mismatch_cb = mismatch_cb, .mismatch_data = f};
    char err[256];
    assert_int_equal(hs_bus_redis_open(&f->loop, srv.url, &options, &f->bus[0], err, sizeof(err)),
                     0);
    assert_true(run_until(f, 3000, mismatch_seen));
    assert_non_null(strstr(f->log[0], "uses --partitions 8, this process 16"));
    options.partitions = 8;
    f->done = 0;
    assert_int_equal(hs_bus_redis_open(&f->loop, srv.url, &options, &f->bus[1], err, sizeof(err)),
                     0);
    run_for(f, 500);
    assert_int_equal(f->done, 0); /* agrees: not a word */
}

/* ---- node commands ---------------------------------------------------------------- */

static bool five_delivered(fixture_t *f)
{
    return count_log(f, "deliver ") == 5 && f->done == 5;
}

static bool both_ready(fixture_t *f)
{
    return hs_bus_ready(f->bus[0]) && hs_bus_ready(f->bus[1]);
}

static void test_node_commands_in_order_with_seq(void **state)
{
    fixture_t *f = *state;
    open_bus(f, 0, 0);
    open_bus(f, 1, 0);
    assert_int_equal(hs_bus_serve_node(f->bus[0], "n1", node_cb, f), 0);
    assert_true(run_until(f, 3000, node_started));
    assert_true(run_until(f, 3000, both_ready));
    char text[8];
    for (int i = 1; i <= 5; i++) {
        snprintf(text, sizeof(text), "m%d", i);
        deliver(f, f->bus[1], "n1", i % 2 ? "a" : "b", text);
    }
    assert_true(run_until(f, 5000, five_delivered));
    assert_int_equal(f->done, 5);
    assert_int_equal(f->done_status, 0);
    const char *want[] = {"deliver a m1", "deliver b m2", "deliver a m3", "deliver b m4",
                          "deliver a m5"};
    for (int i = 0; i < 5; i++)
        assert_string_equal(f->log[i], want[i]);
    /* Numbered 1..5 in the stream, the counter at 5. */
    redisReply *r = sync_cmd("XRANGE houston:{n:n1}:stream - +");
    assert_int_equal(r->elements, 5);
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *fields = r->element[i]->element[1];
        assert_string_equal(fields->element[0]->str, "seq");
        assert_int_equal(atoi(fields->element[1]->str), (int)i + 1);
    }
    freeReplyObject(r);
    r = sync_cmd("GET houston:{n:n1}:seq");
    assert_string_equal(r->str, "5");
    freeReplyObject(r);
}

static bool one_delivered(fixture_t *f)
{
    return count_log(f, "deliver ") == 1;
}

static bool gap_then_deliver(fixture_t *f)
{
    return count_log(f, "deliver ") == 2;
}

/* Commands that were appended and trimmed before the node read them show
 * as a jump in seq: the node hears HS_NODE_GAP before the next command. */
static void test_node_gap_reported(void **state)
{
    fixture_t *f = *state;
    open_bus(f, 0, 0);
    open_bus(f, 1, 0);
    assert_int_equal(hs_bus_serve_node(f->bus[0], "n1", node_cb, f), 0);
    assert_true(run_until(f, 3000, node_started));
    assert_true(run_until(f, 3000, both_ready));
    deliver(f, f->bus[1], "n1", "a", "m1");
    assert_true(run_until(f, 3000, one_delivered));
    /* Three commands appended and trimmed unread (as MAXLEN ~ does to a
     * stalled node): the counter moved on, the entries are gone. */
    sync_do("INCRBY houston:{n:n1}:seq 3");
    deliver(f, f->bus[1], "n1", "a", "m5");
    assert_true(run_until(f, 3000, gap_then_deliver));
    assert_string_equal(f->log[0], "deliver a m1");
    assert_string_equal(f->log[1],
                        "gap commands 2 to 4 were trimmed (--node-stream-max) before this node "
                        "read them");
    assert_string_equal(f->log[2], "deliver a m5");
}

/* ---- scripts ---------------------------------------------------------------------- */

static bool sent_and_seen(fixture_t *f)
{
    return f->done == 1 && count_log(f, "deliver ") == 1;
}

/* A Redis that forgot its scripts (SCRIPT FLUSH, or a restart the link did
 * not notice) answers NOSCRIPT: the bus loads the script again and the
 * operation goes through. */
static void test_noscript_recovered(void **state)
{
    fixture_t *f = *state;
    open_bus(f, 0, 0);
    assert_int_equal(hs_bus_serve_node(f->bus[0], "n1", node_cb, f), 0);
    assert_true(run_until(f, 3000, node_started));
    assert_true(run_until(f, 3000, bus0_ready));
    sync_do("SCRIPT FLUSH");
    deliver(f, f->bus[0], "n1", "a", "after-flush");
    assert_true(run_until(f, 3000, sent_and_seen));
    assert_int_equal(f->done_status, 0);
    assert_string_equal(f->log[0], "deliver a after-flush");
    /* The scripts are called by SHA: loaded once, not sent with each call. */
    redisReply *r = sync_cmd("INFO commandstats");
    assert_null(strstr(r->str, "cmdstat_eval:"));
    assert_non_null(strstr(r->str, "cmdstat_evalsha:"));
    freeReplyObject(r);
}

/* ---- reconnects ------------------------------------------------------------------- */

static void reconnected_cb(void *data)
{
    fixture_t *f = data;
    f->reconnects++;
    hs_bus_register_connection(f->bus[0], "n1", "c1", NULL, NULL);
    hs_bus_add_topic_node(f->bus[0], "live", "n1");
}

static bool reconnected(fixture_t *f)
{
    return f->reconnects == 1 && hs_bus_ready(f->bus[0]);
}

static bool bus0_down(fixture_t *f)
{
    return !hs_bus_ready(f->bus[0]);
}

static bool got_gap_and_deliver(fixture_t *f)
{
    return count_log(f, "gap ") == 1 && count_log(f, "deliver ") == 1 && f->done == 1;
}

/* kill -9 of Redis (no persistence) and a new one on the same port: the
 * links come back, the node's directory entries are put back, the node
 * hears that its stream was lost, and commands flow again (the scripts
 * are loaded into the new Redis). */
static void test_reconnect_after_redis_restart(void **state)
{
    fixture_t *f = *state;
    open_bus(f, 0, 0);
    hs_bus_on_reconnect(f->bus[0], reconnected_cb, f);
    assert_int_equal(hs_bus_serve_node(f->bus[0], "n1", node_cb, f), 0);
    assert_true(run_until(f, 3000, node_started));
    assert_true(run_until(f, 3000, bus0_ready));
    hs_bus_register_connection(f->bus[0], "n1", "c1", NULL, NULL);
    hs_bus_add_topic_node(f->bus[0], "live", "n1");
    run_for(f, 100);
    server_kill();
    assert_true(run_until(f, 3000, bus0_down));
    assert_int_equal(server_start(), 0);
    assert_true(run_until(f, 5000, reconnected));
    run_for(f, 300);
    assert_int_equal(sync_int("SISMEMBER houston:{t:live}:nodes n1"), 1);
    redisReply *r = sync_cmd("HGET houston:conns c1");
    assert_string_equal(r->str, "n1");
    freeReplyObject(r);
    deliver(f, f->bus[0], "n1", "live", "again");
    assert_true(run_until(f, 5000, got_gap_and_deliver));
    assert_int_equal(f->done_status, 0);
    assert_non_null(strstr(f->log[0], "gap its command counter is gone"));
    assert_string_equal(f->log[1], "deliver live again");
}

/* What the keyspace notifications of houston:{t:live}:nodes said, on a
 * subscribed plain connection. */
static int topic_removals(redisContext *sub)
{
    int removals = 0;
    redisReply *r;
    struct timeval tv = {.tv_usec = 200000};
    redisSetTimeout(sub, tv);
    while (redisGetReply(sub, (void **)&r) == REDIS_OK && r) {
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
            r->element[2]->type == REDIS_REPLY_STRING &&
            (strcmp(r->element[2]->str, "srem") == 0 || strcmp(r->element[2]->str, "del") == 0))
            removals++;
        freeReplyObject(r);
    }
    return removals;
}

/* The known loss at a Redis reconnect: the node's live topics must never
 * leave the topic's node set, not even for an instant - a consumer routing
 * in that instant finds no node and acknowledges the event (one message
 * lost, seen by the checker at kill -9 of Redis). Stale entries (a
 * connection or topic that left while Redis was away) go. */
static void test_reconnect_keeps_live_entries(void **state)
{
    fixture_t *f = *state;
    open_bus(f, 0, 0);
    hs_bus_on_reconnect(f->bus[0], reconnected_cb, f);
    assert_int_equal(hs_bus_serve_node(f->bus[0], "n1", node_cb, f), 0);
    assert_true(run_until(f, 3000, node_started));
    assert_true(run_until(f, 3000, bus0_ready));
    hs_bus_register_connection(f->bus[0], "n1", "c1", NULL, NULL);
    hs_bus_register_connection(f->bus[0], "n1", "c2", NULL, NULL); /* leaves while away */
    hs_bus_add_topic_node(f->bus[0], "live", "n1");
    hs_bus_add_topic_node(f->bus[0], "stale", "n1");
    run_for(f, 200);
    assert_int_equal(sync_int("SISMEMBER houston:{t:stale}:nodes n1"), 1);

    sync_do("CONFIG SET notify-keyspace-events Kgs");
    struct timeval tv = {.tv_sec = 2};
    redisContext *sub = redisConnectWithTimeout("127.0.0.1", srv.port, tv);
    assert_true(sub && !sub->err);
    redisReply *r = redisCommand(sub, "SUBSCRIBE __keyspace@0__:houston:{t:live}:nodes");
    assert_non_null(r);
    freeReplyObject(r);

    /* Every link of the bus drops (Redis keeps its data). */
    sync_do("CLIENT KILL TYPE normal SKIPME yes");
    assert_true(run_until(f, 5000, reconnected));
    run_for(f, 300);

    assert_int_equal(topic_removals(sub), 0);
    redisFree(sub);
    sync_do("CONFIG SET notify-keyspace-events %s", "");
    assert_int_equal(sync_int("SISMEMBER houston:{t:live}:nodes n1"), 1);
    assert_int_equal(sync_int("SISMEMBER houston:{t:stale}:nodes n1"), 0);
    assert_int_equal(sync_int("SISMEMBER houston:{n:n1}:topics stale"), 0);
    assert_int_equal(sync_int("HEXISTS houston:conns c2"), 0);
    assert_int_equal(sync_int("SISMEMBER houston:{n:n1}:conns c2"), 0);
    r = sync_cmd("HGET houston:conns c1");
    assert_string_equal(r->str, "n1");
    freeReplyObject(r);
}

/* A topic whose last subscriber left while Redis was away is stale at the
 * reconnect; a subscriber that takes it up again just after the node
 * listed its live topics (a subscribe applied, in the next loop turn) must
 * keep the node in the topic's set. The resync answers "stale" for it: the
 * removal that follows must not undo the later add (seen by the checker at
 * kill -9 of Redis once the resync was split in steps: a live subscriber
 * no longer routed, its messages missing). */
static uv_timer_t late_timer;

static void late_subscriber_cb(uv_timer_t *t)
{
    fixture_t *f = t->data;
    hs_bus_add_topic_node(f->bus[0], "late", "n1");
    uv_close((uv_handle_t *)t, NULL);
}

static void reconnected_late_cb(void *data)
{
    fixture_t *f = data;
    f->reconnects++; /* nothing live: "late" left while Redis was away */
    uv_timer_init(&f->loop, &late_timer);
    late_timer.data = f;
    uv_timer_start(&late_timer, late_subscriber_cb, 0, 0);
}

static void test_reconnect_keeps_a_topic_taken_up_meanwhile(void **state)
{
    fixture_t *f = *state;
    open_bus(f, 0, 0);
    hs_bus_on_reconnect(f->bus[0], reconnected_late_cb, f);
    assert_int_equal(hs_bus_serve_node(f->bus[0], "n1", node_cb, f), 0);
    assert_true(run_until(f, 3000, node_started));
    assert_true(run_until(f, 3000, bus0_ready));
    hs_bus_add_topic_node(f->bus[0], "late", "n1");
    run_for(f, 200);
    sync_do("CLIENT KILL TYPE normal SKIPME yes");
    assert_true(run_until(f, 5000, reconnected));
    run_for(f, 300);
    assert_int_equal(sync_int("SISMEMBER houston:{t:late}:nodes n1"), 1);
}

/* ---- directory --------------------------------------------------------------------- */

static void locate_cb(int status, const char *node, void *data)
{
    fixture_t *f = data;
    record(f, "located %s", status == 0 ? node : status == HS_ENOTFOUND ? "none" : "error");
}

static void nodes_cb(int status, const char *const *nodes, size_t count, void *data)
{
    fixture_t *f = data;
    char line[64] = "nodes";
    for (size_t i = 0; i < count; i++) {
        strncat(line, " ", sizeof(line) - strlen(line) - 1);
        strncat(line, nodes[i], sizeof(line) - strlen(line) - 1);
    }
    record(f, "%s%s", line, status == 0 ? "" : " error");
}

static bool answered(fixture_t *f)
{
    return f->entries == 1;
}

static const char *ask_locate(fixture_t *f, const char *conn)
{
    f->entries = 0;
    hs_bus_locate_connection(f->bus[0], conn, locate_cb, f);
    assert_true(run_until(f, 3000, answered));
    return f->log[0];
}

static const char *ask_nodes(fixture_t *f, const char *topic)
{
    f->entries = 0;
    hs_bus_topic_nodes(f->bus[0], topic, nodes_cb, f);
    assert_true(run_until(f, 3000, answered));
    return f->log[0];
}

static bool registered(fixture_t *f)
{
    return f->done == 1;
}

static void test_directory(void **state)
{
    fixture_t *f = *state;
    open_bus(f, 0, 0);
    assert_true(run_until(f, 3000, bus0_ready));
    hs_bus_register_connection(f->bus[0], "n1", "c1", done_cb, f);
    assert_true(run_until(f, 3000, registered));
    assert_int_equal(f->done_status, 0);
    assert_string_equal(ask_locate(f, "c1"), "located n1");
    assert_string_equal(ask_locate(f, "c9"), "located none");

    hs_bus_add_topic_node(f->bus[0], "t", "n1");
    hs_bus_add_topic_node(f->bus[0], "t", "n2");
    const char *nodes = ask_nodes(f, "t");
    assert_true(strcmp(nodes, "nodes n1 n2") == 0 || strcmp(nodes, "nodes n2 n1") == 0);
    hs_bus_remove_topic_node(f->bus[0], "t", "n2");
    assert_string_equal(ask_nodes(f, "t"), "nodes n1");
    assert_string_equal(ask_nodes(f, "nobody"), "nodes");

    /* A subscribe on its way to n1 keeps the topic routed there even if n1
     * drops it meanwhile (its last local subscriber left). */
    hs_node_cmd_t sub = {.kind = HS_NODE_SUBSCRIBE, .topic = "p", .connection_id = "c1"};
    f->done = 0;
    hs_bus_send_to_node(f->bus[0], "n1", &sub, done_cb, f);
    assert_true(run_until(f, 3000, registered));
    hs_bus_remove_topic_node(f->bus[0], "p", "n1");
    assert_string_equal(ask_nodes(f, "p"), "nodes n1");

    hs_bus_unregister_connection(f->bus[0], "n1", "c1");
    assert_string_equal(ask_locate(f, "c1"), "located none");
}

static bool two_done(fixture_t *f)
{
    return f->done == 2;
}

/* While the command link is down, operations fail later (never inside the
 * call) with HS_EUNAVAIL. */
static void barrier_cb(int status, void *data)
{
    record(data, "barrier %d", status);
}

static void closed_logged_cb(int status, void *data)
{
    fixture_t *f = data;
    record(f, "closed %d", status);
    f->closed++;
}

static bool one_barrier(fixture_t *f)
{
    return count_log(f, "barrier ") == 1;
}

/* A barrier is answered whenever it is asked: passed on a running node, and
 * failed with HS_ECLOSED, before the close's own callback, when asked while
 * the bus closes (it was never answered, and leaked). */
static void test_barrier_answered_while_closing(void **state)
{
    fixture_t *f = *state;
    open_bus(f, 0, 0);
    assert_int_equal(hs_bus_serve_node(f->bus[0], "n1", node_cb, f), 0);
    assert_true(run_until(f, 3000, node_started));
    assert_true(run_until(f, 3000, bus0_ready));
    assert_true(hs_bus_node_barrier(f->bus[0], barrier_cb, f));
    assert_int_equal(f->entries, 0); /* not inline */
    assert_true(run_until(f, 3000, one_barrier));
    assert_string_equal(f->log[0], "barrier 0");

    int before = f->closed;
    hs_bus_close(f->bus[0], closed_logged_cb, f);
    assert_true(hs_bus_node_barrier(f->bus[0], barrier_cb, f));
    assert_int_equal(f->entries, 1); /* not inline */
    uv_update_time(&f->loop);
    uint64_t end = uv_now(&f->loop) + 5000;
    while (f->closed == before && uv_now(&f->loop) < end)
        uv_run(&f->loop, UV_RUN_ONCE);
    f->bus[0] = NULL;
    f->closed--;
    assert_int_equal(f->entries, 3);
    char want[32];
    snprintf(want, sizeof(want), "barrier %d", HS_ECLOSED);
    assert_string_equal(f->log[1], want);
    assert_string_equal(f->log[2], "closed 0");
}

static void test_unavailable_fails_later(void **state)
{
    fixture_t *f = *state;
    hs_bus_redis_options_t options = {0};
    char err[256], url[64];
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", free_port()); /* nobody there */
    assert_int_equal(hs_bus_redis_open(&f->loop, url, &options, &f->bus[0], err, sizeof(err)), 0);
    assert_false(hs_bus_ready(f->bus[0]));
    hs_bus_register_connection(f->bus[0], "n1", "c1", done_cb, f);
    deliver(f, f->bus[0], "n1", "t", "x");
    assert_int_equal(f->done, 0); /* not inline */
    assert_true(run_until(f, 1000, two_done));
    assert_int_equal(f->done_status, HS_EUNAVAIL);
    assert_int_equal(
        hs_bus_redis_open(&f->loop, "http://x", &options, &f->bus[1], err, sizeof(err)), HS_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_events_publish_consume_ack, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deleted_event_and_command, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stopped_consumer_events_claimed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partition_leases_and_fences, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partition_count_mismatch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_node_commands_in_order_with_seq, setup, teardown),
        cmocka_unit_test_setup_teardown(test_node_gap_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(test_noscript_recovered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unavailable_fails_later, setup, teardown),
        cmocka_unit_test_setup_teardown(test_barrier_answered_while_closing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reconnect_keeps_live_entries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reconnect_keeps_a_topic_taken_up_meanwhile, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_reconnect_after_redis_restart, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
