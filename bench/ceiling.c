/* ceiling: the least a WebSocket fan-out server can do, as a yardstick for
 * houston (docs/performance.md). One epoll loop per thread (default: one per
 * core), each with its own SO_REUSEPORT listeners, so connections are
 * sharded by the kernel. A published body becomes one pre-encoded frame,
 * shared by reference by every loop; each loop drains its queue once per
 * iteration and sends every frame of that iteration for a topic with one
 * writev per subscribed socket. Nothing is stored, nothing is checked.
 *
 * Speaks enough of houston's surface for wsload --target houston:
 *   GET  /api/v1/ws          upgrade; {"type":"connected","connectionID":…}
 *   POST /api/v1/subscribes  {"topic":T,"connectionID":ID} -> 201
 *   POST /api/v1/messages    {"topic":T,"content":C} -> 201; subscribers get
 *                            {"type":"message","message":{…,"content":C,…}}
 * and of nchan's for --target ceiling:
 *   GET  /sub/T              upgrade, subscribed to T
 *   POST /pub/T              the raw body goes to T's subscribers
 * Both ports (--ws-port, --api-port) serve all of it. */
#include "wsproto.h"

#include "core/error.h"
#include "ws/codec.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define MAX_LOOPS   64
#define MAX_TOPIC   128
#define MAX_REQUEST (1u << 20)
#define MAX_PENDING (8u << 20)
#define IOV_BATCH   512

/* --answer fanout: a publish is answered once every loop has handed its
 * frame to the subscribers' sockets (writev, or their bounded out buffers);
 * the last loop to do so posts CMD_ANSWER to the publisher's loop. */
typedef struct {
    atomic_int pending; /* loops that have not sent the frame yet */
    int loop;           /* the publisher's loop, its connection and generation */
    int fd;
    uint32_t gen;
} answer_t;

typedef struct {
    atomic_int refs;
    answer_t *answer; /* NULL: answered when published (--answer now) */
    size_t len;
    uint8_t data[]; /* header + payload, ready to send */
} frame_t;

typedef struct topic topic_t;
typedef struct loop loop_t;

typedef struct conn {
    int fd;
    uint32_t gen;
    int is_ws;
    int closing;
    loop_t *loop;
    topic_t *topic;
    size_t member_index;
    char *in;
    size_t in_len, in_cap;
    char *out; /* bytes not yet accepted by the kernel */
    size_t out_len, out_off, out_cap;
} conn_t;

struct topic {
    char name[MAX_TOPIC + 1];
    conn_t **members;
    size_t count, cap;
    frame_t **batch; /* frames of this iteration */
    size_t batch_len, batch_cap;
    int touched;
};

enum cmd_kind { CMD_PUBLISH, CMD_SUBSCRIBE, CMD_ANSWER };

typedef struct cmd {
    struct cmd *next;
    enum cmd_kind kind;
    frame_t *frame;
    int fd;
    uint32_t gen;
    char topic[MAX_TOPIC + 1];
} cmd_t;

struct loop {
    int index;
    int epfd;
    int wake_fd;
    pthread_mutex_t lock;
    cmd_t *head, *tail; /* posted by any thread, drained by this one */
    conn_t **by_fd;
    uint32_t next_gen;
    topic_t **topics; /* open addressing */
    size_t topics_cap, topics_count;
    topic_t **touched;
    size_t touched_len, touched_cap;
    conn_t **to_close;
    size_t to_close_len, to_close_cap;
    answer_t **answers; /* publishes drained in this iteration (--answer fanout) */
    size_t answers_len, answers_cap;
    pthread_t thread;
};

/* The server singleton: set up in main() before the loop threads start;
 * afterwards only message_ids changes (atomically). Each loop_t is touched by
 * its own thread, except its queue, which is under its lock. */
static struct {
    int nloops;
    int ws_port, api_port;
    int max_fd;
    int answer_after_fanout;
    loop_t loops[MAX_LOOPS];
    atomic_ulong message_ids;
} ceiling;

static void *xcalloc(size_t n)
{
    void *p = calloc(1, n ? n : 1);
    if (!p) {
        fprintf(stderr, "ceiling: out of memory\n");
        abort();
    }
    return p;
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n);
    if (!p) {
        fprintf(stderr, "ceiling: out of memory\n");
        abort();
    }
    return p;
}

#define PUSH(arr, len, cap, item)                                                                  \
    do {                                                                                           \
        if ((len) == (cap)) {                                                                      \
            (cap) = (cap) ? (cap)*2 : 16;                                                          \
            (arr) = xrealloc((arr), (cap) * sizeof *(arr));                                        \
        }                                                                                          \
        (arr)[(len)++] = (item);                                                                   \
    } while (0)

static frame_t *frame_new(const void *payload, size_t len, int refs)
{
    frame_t *f = xcalloc(sizeof *f + 14 + len);
    size_t h = wsp_frame_header(f->data, 0x1, len, NULL);
    memcpy(f->data + h, payload, len);
    f->len = h + len;
    atomic_init(&f->refs, refs);
    return f;
}

static void frame_release(frame_t *f)
{
    if (atomic_fetch_sub(&f->refs, 1) == 1)
        free(f);
}

/* ---- topics (per loop, touched by the owning thread only) ----------------- */

static size_t hash(const char *s)
{
    size_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static topic_t *topic_find(loop_t *l, const char *name, int create)
{
    if (create && (l->topics_count + 1) * 2 > l->topics_cap) {
        size_t old_cap = l->topics_cap;
        topic_t **old = l->topics;
        l->topics_cap = old_cap ? old_cap * 2 : 64;
        l->topics = xcalloc(l->topics_cap * sizeof *l->topics);
        for (size_t i = 0; i < old_cap; i++) {
            if (!old[i])
                continue;
            size_t j = hash(old[i]->name) & (l->topics_cap - 1);
            while (l->topics[j])
                j = (j + 1) & (l->topics_cap - 1);
            l->topics[j] = old[i];
        }
        free(old);
    }
    if (!l->topics_cap)
        return NULL;
    size_t j = hash(name) & (l->topics_cap - 1);
    while (l->topics[j]) {
        if (strcmp(l->topics[j]->name, name) == 0)
            return l->topics[j];
        j = (j + 1) & (l->topics_cap - 1);
    }
    if (!create)
        return NULL;
    topic_t *t = xcalloc(sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    l->topics[j] = t;
    l->topics_count++;
    return t;
}

static void topic_add(loop_t *l, conn_t *c, const char *name);

/* ---- connections ---------------------------------------------------------- */

static void conn_close_later(conn_t *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    PUSH(c->loop->to_close, c->loop->to_close_len, c->loop->to_close_cap, c);
}

static void conn_free(conn_t *c)
{
    if (c->topic) {
        topic_t *t = c->topic;
        conn_t *last = t->members[--t->count];
        t->members[c->member_index] = last;
        last->member_index = c->member_index;
    }
    c->loop->by_fd[c->fd] = NULL;
    close(c->fd);
    free(c->in);
    free(c->out);
    free(c);
}

/* Sends iov[0..n) now, keeping what the kernel does not take. */
static void conn_send(conn_t *c, struct iovec *iov, int n)
{
    if (c->closing)
        return;
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += iov[i].iov_len;
    size_t sent = 0;
    if (c->out_len == c->out_off) {
        ssize_t w = writev(c->fd, iov, n);
        if (w < 0 && errno != EAGAIN && errno != EINTR) {
            conn_close_later(c);
            return;
        }
        sent = w > 0 ? (size_t)w : 0;
        if (sent == total)
            return;
    }
    if (c->out_len - c->out_off + total - sent > MAX_PENDING) {
        conn_close_later(c); /* slow consumer */
        return;
    }
    if (c->out_off && c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    if (c->out_len + total - sent > c->out_cap) {
        c->out_cap = (c->out_len + total - sent) * 2;
        c->out = xrealloc(c->out, c->out_cap);
    }
    for (int i = 0; i < n; i++) {
        size_t len = iov[i].iov_len;
        const char *p = iov[i].iov_base;
        if (sent >= len) {
            sent -= len;
            continue;
        }
        memcpy(c->out + c->out_len, p + sent, len - sent);
        c->out_len += len - sent;
        sent = 0;
    }
}

static void conn_send_bytes(conn_t *c, const void *p, size_t len)
{
    struct iovec iov = {.iov_base = (void *)p, .iov_len = len};
    conn_send(c, &iov, 1);
}

static void conn_flush(conn_t *c)
{
    while (c->out_off < c->out_len) {
        ssize_t w = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN)
            return;
        if (w <= 0) {
            conn_close_later(c);
            return;
        }
        c->out_off += (size_t)w;
    }
    c->out_off = c->out_len = 0;
}

static void post(loop_t *l, cmd_t *cmd)
{
    pthread_mutex_lock(&l->lock);
    int was_empty = l->head == NULL;
    if (l->tail)
        l->tail->next = cmd;
    else
        l->head = cmd;
    l->tail = cmd;
    pthread_mutex_unlock(&l->lock);
    if (was_empty) {
        uint64_t one = 1;
        (void)!write(l->wake_fd, &one, sizeof one);
    }
}

/* The pending answer of a publish on c, or NULL with --answer now. Every
 * answer is the same 201, so two answers that come back out of order (two
 * loops finishing two publishes) still read right on a pipelined
 * connection; a 400/404 in between would not (the bench sends none). */
static answer_t *answer_new(conn_t *c)
{
    if (!ceiling.answer_after_fanout)
        return NULL;
    answer_t *answer = xcalloc(sizeof *answer);
    atomic_init(&answer->pending, ceiling.nloops);
    answer->loop = c->loop->index;
    answer->fd = c->fd;
    answer->gen = c->gen;
    return answer;
}

static void publish(const char *topic, const void *payload, size_t len, answer_t *answer)
{
    frame_t *f = frame_new(payload, len, ceiling.nloops);
    f->answer = answer;
    for (int i = 0; i < ceiling.nloops; i++) {
        cmd_t *cmd = xcalloc(sizeof *cmd);
        cmd->kind = CMD_PUBLISH;
        cmd->frame = f;
        snprintf(cmd->topic, sizeof cmd->topic, "%s", topic);
        post(&ceiling.loops[i], cmd);
    }
}

/* Finds string field `name` of a flat JSON object by scanning; the value is
 * returned still escaped, as it appeared. */
static int json_field(const char *body, size_t len, const char *name, const char **val,
                      size_t *val_len)
{
    char key[64];
    int kl = snprintf(key, sizeof key, "\"%s\"", name);
    const char *end = body + len;
    const char *p = memmem(body, len, key, (size_t)kl);
    if (!p)
        return 0;
    p += kl;
    while (p < end && (*p == ' ' || *p == ':' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    if (p >= end || *p != '"')
        return 0;
    const char *s = ++p;
    while (p < end && *p != '"')
        p += *p == '\\' ? 2 : 1;
    if (p >= end)
        return 0;
    *val = s;
    *val_len = (size_t)(p - s);
    return 1;
}

static void respond(conn_t *c, const char *status, const char *body)
{
    char buf[512];
    int n =
        snprintf(buf, sizeof buf,
                 "HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                 status, strlen(body), body);
    conn_send_bytes(c, buf, (size_t)n);
}

static int valid_topic(const char *p, size_t len)
{
    if (len < 1 || len > MAX_TOPIC)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!(p[i] == '.' || p[i] == '_' || p[i] == ':' || p[i] == '-' ||
              (p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'z') ||
              (p[i] >= 'A' && p[i] <= 'Z')))
            return 0;
    return 1;
}

static void handle_upgrade(conn_t *c, const char *path, size_t path_len, const char *head,
                           size_t head_len)
{
    const char *key;
    size_t key_len;
    if (!wsp_http_header(head, head_len, "Sec-WebSocket-Key", &key, &key_len) || key_len > 64) {
        respond(c, "400 Bad Request", "{}");
        return;
    }
    int houston = path_len >= 10 && memcmp(path, "/api/v1/ws", 10) == 0;
    int sub = path_len > 5 && memcmp(path, "/sub/", 5) == 0 && valid_topic(path + 5, path_len - 5);
    if (!houston && !sub) {
        respond(c, "404 Not Found", "{}");
        return;
    }
    char concat[128];
    memcpy(concat, key, key_len);
    memcpy(concat + key_len, "258EAFA5-E914-47DA-95CA-C5AB0DC85B11", 36);
    unsigned char digest[SHA_DIGEST_LENGTH];
    SHA1((unsigned char *)concat, key_len + 36, digest);
    char accept[64];
    EVP_EncodeBlock((unsigned char *)accept, digest, SHA_DIGEST_LENGTH);
    char buf[512];
    int n =
        snprintf(buf, sizeof buf,
                 "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Accept: %s\r\n\r\n",
                 accept);
    if (houston) {
        char hello[128];
        int hl =
            snprintf(hello, sizeof hello, "{\"type\":\"connected\",\"connectionID\":\"%d.%d.%u\"}",
                     c->loop->index, c->fd, c->gen);
        n += (int)wsp_frame_header((uint8_t *)buf + n, 0x1, (uint64_t)hl, NULL);
        memcpy(buf + n, hello, (size_t)hl);
        n += hl;
    }
    conn_send_bytes(c, buf, (size_t)n);
    c->is_ws = 1;
    if (sub) {
        char topic[MAX_TOPIC + 1];
        memcpy(topic, path + 5, path_len - 5);
        topic[path_len - 5] = 0;
        topic_add(c->loop, c, topic);
    }
}

static void handle_subscribe(conn_t *c, const char *body, size_t len)
{
    const char *topic, *id;
    size_t topic_len, id_len;
    int loop_index, fd;
    unsigned gen;
    char idbuf[64];
    if (!json_field(body, len, "topic", &topic, &topic_len) || !valid_topic(topic, topic_len) ||
        !json_field(body, len, "connectionID", &id, &id_len) || id_len >= sizeof idbuf) {
        respond(c, "400 Bad Request", "{}");
        return;
    }
    memcpy(idbuf, id, id_len);
    idbuf[id_len] = 0;
    if (sscanf(idbuf, "%d.%d.%u", &loop_index, &fd, &gen) != 3 || loop_index < 0 ||
        loop_index >= ceiling.nloops || fd < 0 || fd >= ceiling.max_fd) {
        respond(c, "404 Not Found", "{}");
        return;
    }
    /* Queued before the answer: any publish after the answer is queued
     * behind it on the same loop, so it reaches the subscriber. */
    cmd_t *cmd = xcalloc(sizeof *cmd);
    cmd->kind = CMD_SUBSCRIBE;
    cmd->fd = fd;
    cmd->gen = gen;
    memcpy(cmd->topic, topic, topic_len);
    post(&ceiling.loops[loop_index], cmd);
    respond(c, "201 Created", "{}");
}

static void handle_message(conn_t *c, const char *body, size_t len)
{
    const char *topic, *content;
    size_t topic_len, content_len;
    if (!json_field(body, len, "topic", &topic, &topic_len) || !valid_topic(topic, topic_len) ||
        !json_field(body, len, "content", &content, &content_len)) {
        respond(c, "400 Bad Request", "{}");
        return;
    }
    /* the same envelope as houston's, so the frames are as long */
    char *payload = xcalloc(content_len + topic_len + 256);
    unsigned long id = atomic_fetch_add(&ceiling.message_ids, 1);
    int n = snprintf(
        payload, 256 + topic_len,
        "{\"type\":\"message\",\"message\":{\"id\":\"01CE1L1NG0%016lu\",\"topic\":\"%.*s\","
        "\"content\":\"",
        id, (int)topic_len, topic);
    memcpy(payload + n, content, content_len);
    n += (int)content_len;
    n += snprintf(payload + n, 128,
                  "\",\"author\":\"\",\"createdAt\":\"2026-01-01T00:00:00.000Z\"}}");
    char name[MAX_TOPIC + 1];
    memcpy(name, topic, topic_len);
    name[topic_len] = 0;
    answer_t *answer = answer_new(c);
    publish(name, payload, (size_t)n, answer);
    free(payload);
    if (!answer)
        respond(c, "201 Created", "{}");
}

/* Handles complete HTTP requests in c->in; returns bytes consumed. */
static size_t http_parse(conn_t *c)
{
    size_t pos = 0;
    while (!c->is_ws && !c->closing) {
        char *buf = c->in + pos;
        size_t len = c->in_len - pos;
        size_t head = wsp_http_head_end(buf, len);
        if (!head) {
            if (len > 65536)
                conn_close_later(c);
            break;
        }
        const char *v;
        size_t vl;
        size_t body_len = 0;
        if (wsp_http_header(buf, head, "Content-Length", &v, &vl))
            body_len = strtoul(v, NULL, 10);
        if (body_len > MAX_REQUEST) {
            conn_close_later(c);
            break;
        }
        if (len < head + body_len)
            break;
        const char *sp1 = memchr(buf, ' ', head);
        const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', head - (size_t)(sp1 + 1 - buf)) : NULL;
        if (!sp2) {
            conn_close_later(c);
            break;
        }
        const char *path = sp1 + 1;
        size_t path_len = (size_t)(sp2 - path);
        const char *body = buf + head;
        int is_get = sp1 - buf == 3 && memcmp(buf, "GET", 3) == 0;
        int is_post = sp1 - buf == 4 && memcmp(buf, "POST", 4) == 0;
        if (is_get && wsp_http_header(buf, head, "Upgrade", &v, &vl))
            handle_upgrade(c, path, path_len, buf, head);
        else if (is_get && path_len == 8 && memcmp(path, "/healthz", 8) == 0)
            respond(c, "200 OK", "{\"status\":\"ok\"}");
        else if (is_post && path_len == 18 && memcmp(path, "/api/v1/subscribes", 18) == 0)
            handle_subscribe(c, body, body_len);
        else if (is_post && path_len == 16 && memcmp(path, "/api/v1/messages", 16) == 0)
            handle_message(c, body, body_len);
        else if (is_post && path_len > 5 && memcmp(path, "/pub/", 5) == 0 &&
                 valid_topic(path + 5, path_len - 5)) {
            char name[MAX_TOPIC + 1];
            memcpy(name, path + 5, path_len - 5);
            name[path_len - 5] = 0;
            answer_t *answer = answer_new(c);
            publish(name, body, body_len, answer);
            if (!answer)
                respond(c, "201 Created", "{}");
        } else
            respond(c, "404 Not Found", "{}");
        pos += head + body_len;
    }
    return pos;
}

/* Client frames: close and ping are answered, the rest is ignored. */
static size_t ws_parse(conn_t *c)
{
    size_t pos = 0;
    while (!c->closing) {
        hs_ws_frame_header_t f;
        uint8_t *buf = (uint8_t *)c->in + pos;
        size_t len = c->in_len - pos;
        int r = hs_ws_parse_header(buf, len, HS_WS_MASKED, &f);
        if (r == HS_EAGAIN)
            break;
        if (r != 0 || f.payload_len > 65536) {
            conn_close_later(c);
            break;
        }
        if (len - f.header_len < f.payload_len)
            break;
        uint8_t *payload = buf + f.header_len;
        size_t plen = (size_t)f.payload_len;
        hs_ws_unmask(payload, plen, f.mask, 0);
        if (f.opcode == 0x8 || f.opcode == 0x9) {
            uint8_t out[14 + 125];
            size_t n = plen > 125 ? 125 : plen;
            size_t h = wsp_frame_header(out, f.opcode == 0x8 ? 0x8 : 0xA, n, NULL);
            memcpy(out + h, payload, n);
            conn_send_bytes(c, out, h + n);
            if (f.opcode == 0x8)
                conn_close_later(c);
        }
        pos += f.header_len + plen;
    }
    return pos;
}

static void conn_readable(conn_t *c)
{
    while (!c->closing) {
        if (c->in_cap - c->in_len < 4096) {
            c->in_cap = c->in_cap ? c->in_cap * 2 : 8192;
            if (c->in_cap > 2 * MAX_REQUEST + 65536) {
                conn_close_later(c);
                return;
            }
            c->in = xrealloc(c->in, c->in_cap);
        }
        ssize_t n = read(c->fd, c->in + c->in_len, c->in_cap - c->in_len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            break;
        if (n <= 0) {
            conn_close_later(c);
            return;
        }
        c->in_len += (size_t)n;
        int was_ws = c->is_ws;
        size_t used = was_ws ? ws_parse(c) : http_parse(c);
        memmove(c->in, c->in + used, c->in_len - used);
        c->in_len -= used;
        if (!was_ws && c->is_ws && c->in_len) {
            used = ws_parse(c); /* frames right behind the upgrade */
            memmove(c->in, c->in + used, c->in_len - used);
            c->in_len -= used;
        }
    }
    if (c->is_ws && c->in_len == 0) {
        free(c->in); /* an idle WebSocket keeps no buffer */
        c->in = NULL;
        c->in_cap = 0;
    }
}

/* ---- the loop ------------------------------------------------------------- */

static void topic_add(loop_t *l, conn_t *c, const char *name)
{
    if (c->topic)
        return; /* one topic per connection: all this bench needs */
    topic_t *t = topic_find(l, name, 1);
    c->topic = t;
    c->member_index = t->count;
    PUSH(t->members, t->count, t->cap, c);
}

/* Sends the frames gathered for t in this iteration: one writev per member. */
static void topic_flush(topic_t *t)
{
    struct iovec iov[IOV_BATCH];
    for (size_t start = 0; start < t->batch_len; start += IOV_BATCH) {
        int n = 0;
        for (size_t i = start; i < t->batch_len && n < IOV_BATCH; i++, n++) {
            iov[n].iov_base = t->batch[i]->data;
            iov[n].iov_len = t->batch[i]->len;
        }
        for (size_t m = 0; m < t->count; m++)
            conn_send(t->members[m], iov, n);
    }
    for (size_t i = 0; i < t->batch_len; i++)
        frame_release(t->batch[i]);
    t->batch_len = 0;
    t->touched = 0;
}

static void drain(loop_t *l)
{
    pthread_mutex_lock(&l->lock);
    cmd_t *cmd = l->head;
    l->head = l->tail = NULL;
    pthread_mutex_unlock(&l->lock);
    while (cmd) {
        cmd_t *next = cmd->next;
        if (cmd->kind == CMD_PUBLISH) {
            if (cmd->frame->answer)
                PUSH(l->answers, l->answers_len, l->answers_cap, cmd->frame->answer);
            topic_t *t = topic_find(l, cmd->topic, 0);
            if (t && t->count) {
                PUSH(t->batch, t->batch_len, t->batch_cap, cmd->frame);
                if (!t->touched) {
                    t->touched = 1;
                    PUSH(l->touched, l->touched_len, l->touched_cap, t);
                }
            } else {
                frame_release(cmd->frame);
            }
        } else if (cmd->kind == CMD_ANSWER) {
            conn_t *c = l->by_fd[cmd->fd];
            if (c && c->gen == cmd->gen && !c->closing)
                respond(c, "201 Created", "{}");
        } else {
            conn_t *c = l->by_fd[cmd->fd];
            if (c && c->gen == cmd->gen && c->is_ws && !c->closing) {
                topic_t *t = topic_find(l, cmd->topic, 1);
                if (t->touched)
                    topic_flush(t); /* earlier frames are not for the newcomer */
                topic_add(l, c, cmd->topic);
            }
        }
        free(cmd);
        cmd = next;
    }
    for (size_t i = 0; i < l->touched_len; i++)
        if (l->touched[i]->touched)
            topic_flush(l->touched[i]);
    l->touched_len = 0;
    /* the frames are out: the last loop of each publish has it answered */
    for (size_t i = 0; i < l->answers_len; i++) {
        answer_t *a = l->answers[i];
        if (atomic_fetch_sub(&a->pending, 1) != 1)
            continue;
        cmd_t *ans = xcalloc(sizeof *ans);
        ans->kind = CMD_ANSWER;
        ans->fd = a->fd;
        ans->gen = a->gen;
        post(&ceiling.loops[a->loop], ans);
        free(a);
    }
    l->answers_len = 0;
}

static int listen_on(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 4096) < 0) {
        fprintf(stderr, "ceiling: cannot listen on 127.0.0.1:%d: %s\n", port, strerror(errno));
        exit(1);
    }
    return fd;
}

static int listener_tag[2]; /* epoll data for the two listeners: their address */

static void accept_all(loop_t *l, int lfd)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE)
                fprintf(stderr, "ceiling: out of descriptors\n");
            return;
        }
        if (fd >= ceiling.max_fd) {
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        conn_t *c = xcalloc(sizeof *c);
        c->fd = fd;
        c->gen = ++l->next_gen;
        c->loop = l;
        l->by_fd[fd] = c;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET | EPOLLRDHUP,
                                 .data.ptr = c};
        epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev);
    }
}

static void *loop_run(void *arg)
{
    loop_t *l = arg;
    int lfds[2] = {listen_on(ceiling.ws_port),
                   ceiling.api_port != ceiling.ws_port ? listen_on(ceiling.api_port) : -1};
    for (int i = 0; i < 2; i++) {
        if (lfds[i] < 0)
            continue;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &listener_tag[i]};
        epoll_ctl(l->epfd, EPOLL_CTL_ADD, lfds[i], &ev);
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &l->wake_fd};
    epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->wake_fd, &ev);
    struct epoll_event evs[512];
    for (;;) {
        int n = epoll_wait(l->epfd, evs, 512, -1);
        for (int i = 0; i < n; i++) {
            void *p = evs[i].data.ptr;
            if (p == &listener_tag[0] || p == &listener_tag[1]) {
                accept_all(l, lfds[p == &listener_tag[0] ? 0 : 1]);
            } else if (p == &l->wake_fd) {
                uint64_t v;
                (void)!read(l->wake_fd, &v, sizeof v);
            } else {
                conn_t *c = p;
                if (evs[i].events & EPOLLOUT)
                    conn_flush(c);
                if (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP))
                    conn_readable(c);
            }
        }
        drain(l);
        for (size_t i = 0; i < l->to_close_len; i++)
            conn_free(l->to_close[i]);
        l->to_close_len = 0;
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    ceiling.ws_port = 9001;
    ceiling.api_port = 0;
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && strcmp(argv[i], "--ws-port") == 0)
            ceiling.ws_port = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--api-port") == 0)
            ceiling.api_port = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--threads") == 0)
            threads = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--answer") == 0 &&
                 (strcmp(argv[i + 1], "now") == 0 || strcmp(argv[i + 1], "fanout") == 0))
            ceiling.answer_after_fanout = strcmp(argv[++i], "fanout") == 0;
        else {
            fprintf(
                stderr,
                "usage: ceiling [--ws-port N] [--api-port N] [--threads N] [--answer now|fanout]\n"
                "  a minimal WebSocket fan-out server on 127.0.0.1 (see bench/ceiling.c);\n"
                "  --answer now: a publish is answered when read (default); fanout: once\n"
                "  every loop has sent its frame to the subscribers (push-back)\n");
            return 2;
        }
    }
    if (threads < 1 || threads > MAX_LOOPS)
        threads = threads < 1 ? 1 : MAX_LOOPS;
    if (!ceiling.api_port)
        ceiling.api_port = ceiling.ws_port;
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    ceiling.max_fd = (int)(rl.rlim_cur > 1u << 20 ? 1u << 20 : rl.rlim_cur);
    ceiling.nloops = threads;
    /* SO_REUSEPORT would let this process share a port with a stale one and
     * split the connections between them: make sure the ports are free. */
    for (int i = 0; i < 2; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_port =
                                    htons((uint16_t)(i ? ceiling.api_port : ceiling.ws_port))};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) {
            fprintf(stderr, "ceiling: port %d: %s\n", ntohs(a.sin_port), strerror(errno));
            return 1;
        }
        close(fd);
    }
    for (int i = 0; i < threads; i++) {
        loop_t *l = &ceiling.loops[i];
        l->index = i;
        l->epfd = epoll_create1(0);
        l->wake_fd = eventfd(0, EFD_NONBLOCK);
        pthread_mutex_init(&l->lock, NULL);
        l->by_fd = xcalloc((size_t)ceiling.max_fd * sizeof *l->by_fd);
    }
    for (int i = 1; i < threads; i++)
        pthread_create(&ceiling.loops[i].thread, NULL, loop_run, &ceiling.loops[i]);
    fprintf(stderr, "ceiling: %d loops on 127.0.0.1:%d and :%d\n", threads, ceiling.ws_port,
            ceiling.api_port);
    loop_run(&ceiling.loops[0]);
    return 0;
}
