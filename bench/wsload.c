/* wsload: WebSocket fan-out load generator for houston, nchan and the bench's
 * ceiling server. Opens N subscribers, subscribes them, publishes M messages
 * over HTTP and measures deliveries/s, latency, losses, duplicates and the
 * server's memory per connection. See docs/performance.md.
 *
 * Processes: the parent publishes and aggregates; subscribers live in one or
 * more forked workers, so that N is not bounded by one process's
 * RLIMIT_NOFILE. A worker reports READY once its share is subscribed, then
 * RESULT (counters and a latency histogram, one fixed struct) after the
 * parent's END. Every phase has a deadline derived from --timeout.
 *
 * Payload: "wl:<seq, 16 hex>:<CLOCK_MONOTONIC ns, 16 hex>:" padded with 'x';
 * it is found in a delivered frame where it was in the subscriber's last
 * frame (else by scanning), not by a JSON parse. Message
 * seq goes to topic seq % T, subscriber i listens on topic i % T, so every
 * (subscriber, seq) pair has one bit in that subscriber's bitmap. */
#include "hist.h"
#include "wsproto.h"

#include "core/error.h"
#include "ws/codec.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define MARKER      "wl:"
#define MARKER_LEN  3
#define PAYLOAD_MIN (MARKER_LEN + 16 + 1 + 16 + 1)
#define RBUF_SIZE   (1u << 20)
#define FD_SLACK    128
#define MAX_WORKERS 64
#define MAX_PORTS   16
/* publisher connections of the fixed-rate mode, opened as needed */
#define RATE_MAX_CONNS 256

enum target { TARGET_HOUSTON, TARGET_NCHAN, TARGET_CEILING };

typedef struct {
    enum target target;
    const char *target_name;
    const char *host;
    int ws_port;
    int api_port;
    /* --ws-port/--api-port take a comma list (scale-out: several notifiers
     * and publishers); subscriber i uses ws_ports[i % n], publisher and
     * subscribe connection j uses api_ports[j % n]. */
    int ws_ports[MAX_PORTS];
    int api_ports[MAX_PORTS];
    int n_ws_ports;
    int n_api_ports;
    long subs;
    long topics;
    long messages;
    long publishers;
    long window;
    double rate;
    double duration;
    double timeout;
    double grace;
    double settle;
    long payload;
    int server_pid;
    int json;
    int strict;
    long workers;
    long batch;
    long sub_conns;
    const char *label;
} opts_t;

/* The process's settings: written by parse_args() only, read-only after. */
static opts_t opt = {
    .target = TARGET_HOUSTON,
    .target_name = "houston",
    .host = "127.0.0.1",
    .ws_port = 9001,
    .api_port = 0,
    .subs = 100,
    .topics = 1,
    .messages = 100,
    .publishers = 4,
    .window = 64,
    .rate = 0,
    .duration = 0,
    .timeout = 60,
    .grace = 3,
    .settle = 0.3,
    .payload = 64,
    .server_pid = 0,
    .workers = 0,
    .batch = 500,
    .sub_conns = 4,
    .label = "",
};

/* Worker processes of the parent, stopped by die() so none outlives it. */
static pid_t worker_pids[MAX_WORKERS];
static long worker_count;
static pid_t parent_pid;

static void die(const char *fmt, ...)
{
    if (getpid() == parent_pid) {
        for (long i = 0; i < worker_count; i++) {
            kill(worker_pids[i], SIGKILL);
            waitpid(worker_pids[i], NULL, 0);
        }
    }
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "wsload: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

static void *xmalloc(size_t n)
{
    void *p = calloc(1, n ? n : 1);
    if (!p)
        die("out of memory (%zu bytes)", n);
    return p;
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n);
    if (!p)
        die("out of memory (%zu bytes)", n);
    return p;
}

/* ---- what a worker sends back ------------------------------------------ */

typedef struct {
    uint64_t ready;          /* subscribers connected and subscribed */
    uint64_t connect_failed; /* connect, handshake or subscribe failed */
} ready_msg_t;

typedef struct {
    uint64_t ready;
    uint64_t expected;
    uint64_t unique;
    uint64_t duplicated;
    uint64_t misrouted; /* a seq of another topic, or out of range */
    uint64_t frames;
    uint64_t pings;
    uint64_t server_closes; /* close frames received */
    uint64_t dropped;       /* EOF or error after being ready */
    uint64_t first_delivery_ns;
    uint64_t last_delivery_ns;
    uint64_t cpu_ns; /* this worker's CPU time after READY */
    hist_t latency;
} result_msg_t;

typedef struct {
    uint64_t grace_deadline_ns;
    uint64_t ntopics; /* followed by ntopics uint64 counts of 2xx publishes */
} end_msg_t;

/* ---- epoll-registered objects -------------------------------------------- */

enum kind { KIND_SUB, KIND_HTTP, KIND_PIPE };

/* A keep-alive HTTP client connection with pipelined requests. Each request
 * has an id and a send time in a FIFO; on_response gets them back. */
typedef struct httpc httpc_t;
typedef void (*response_cb)(httpc_t *c, int status, long id, uint64_t sent_ns);

struct httpc {
    enum kind kind;
    int fd;
    int dead;
    char *out;
    size_t out_len, out_off, out_cap;
    char *in;
    size_t in_len, in_cap;
    long *fifo_id;
    uint64_t *fifo_ns;
    size_t fifo_cap, fifo_head, fifo_count;
    size_t body_left; /* bytes of the current response body still to skip */
    int in_body;
    int status;
    response_cb on_response;
};

enum sub_state {
    SUB_IDLE,
    SUB_CONNECTING,
    SUB_HANDSHAKE,
    SUB_WAIT_ID,
    SUB_SUBSCRIBING,
    SUB_READY,
    SUB_DEAD
};

typedef struct {
    enum kind kind;
    int fd;
    enum sub_state state;
    uint32_t topic;
    long global_index;
    uint8_t *carry;
    uint32_t carry_len, carry_cap;
    uint64_t *bits;
    uint32_t nbits;
    uint32_t marker_at; /* where the payload marker was in the last frame */
    uint8_t was_ready;  /* counted in READY: its losses count even if it drops */
    char id[48];
} sub_t;

typedef struct {
    enum kind kind;
    int fd;
} pipe_ref_t;

static int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static uint64_t cpu_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int write_full(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Reads exactly len bytes, waiting at most until deadline_ns. */
static int read_full(int fd, void *buf, size_t len, uint64_t deadline_ns)
{
    char *p = buf;
    while (len) {
        uint64_t now = wsp_now_ns();
        if (now >= deadline_ns)
            return -1;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int r = poll(&pfd, 1, (int)((deadline_ns - now) / 1000000 + 1));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            continue;
        ssize_t n = read(fd, p, len);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int tcp_connect(const char *host, int port, long source_index, int nonblock)
{
    int fd = socket(AF_INET, SOCK_STREAM | (nonblock ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (source_index >= 0) {
        /* Spread source addresses over 127.0.0.2-254; the port is chosen at
         * connect time, per destination, so the ephemeral range lasts. */
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        struct sockaddr_in src = {.sin_family = AF_INET};
        src.sin_addr.s_addr = htonl(0x7f000000u | (uint32_t)(2 + source_index % 253));
        if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0) {
            close(fd);
            return -1;
        }
    }
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &dst.sin_addr) != 1) {
        close(fd);
        errno = EINVAL;
        return -1;
    }
    if (connect(fd, (struct sockaddr *)&dst, sizeof dst) < 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

/* ---- HTTP client --------------------------------------------------------- */

static httpc_t *httpc_open(int epfd, int port, size_t window, response_cb cb)
{
    httpc_t *c = xmalloc(sizeof *c);
    c->kind = KIND_HTTP;
    c->fd = tcp_connect(opt.host, port, -1, 0);
    if (c->fd < 0)
        die("cannot connect to the API port %s:%d: %s", opt.host, port, strerror(errno));
    set_nonblock(c->fd);
    c->fifo_cap = window;
    c->fifo_id = xmalloc(window * sizeof *c->fifo_id);
    c->fifo_ns = xmalloc(window * sizeof *c->fifo_ns);
    c->in_cap = 64 * 1024;
    c->in = xmalloc(c->in_cap);
    c->on_response = cb;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev);
    return c;
}

/* Queues one request (head + body) as request `id`. */
static void httpc_request(httpc_t *c, const char *path, const char *ctype, const char *body,
                          size_t body_len, long id, uint64_t now)
{
    size_t need = c->out_len + body_len + 256 + strlen(path);
    if (need > c->out_cap) {
        c->out_cap = need * 2;
        c->out = xrealloc(c->out, c->out_cap);
    }
    int n =
        snprintf(c->out + c->out_len, c->out_cap - c->out_len,
                 "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n\r\n",
                 path, opt.host, ctype, body_len);
    c->out_len += (size_t)n;
    memcpy(c->out + c->out_len, body, body_len);
    c->out_len += body_len;
    size_t slot = (c->fifo_head + c->fifo_count) % c->fifo_cap;
    c->fifo_id[slot] = id;
    c->fifo_ns[slot] = now;
    c->fifo_count++;
}

static void httpc_flush(httpc_t *c)
{
    while (!c->dead && c->out_off < c->out_len) {
        ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0) {
            c->dead = 1;
            return;
        }
        c->out_off += (size_t)n;
    }
    c->out_off = c->out_len = 0;
}

static int httpc_full(const httpc_t *c)
{
    return c->dead || c->fifo_count >= c->fifo_cap;
}

static void httpc_complete(httpc_t *c, int status)
{
    if (c->fifo_count == 0)
        return; /* an answer to nothing: ignore */
    long id = c->fifo_id[c->fifo_head];
    uint64_t ns = c->fifo_ns[c->fifo_head];
    c->fifo_head = (c->fifo_head + 1) % c->fifo_cap;
    c->fifo_count--;
    c->on_response(c, status, id, ns);
}

/* Reads every answer available. Bodies are skipped (Content-Length, or a
 * chunked body, which is consumed chunk by chunk). On EOF the requests still
 * waiting are answered with status 0. */
static void httpc_read(httpc_t *c)
{
    for (;;) {
        if (c->in_len == c->in_cap) {
            c->in_cap *= 2;
            c->in = xrealloc(c->in, c->in_cap);
        }
        ssize_t n = read(c->fd, c->in + c->in_len, c->in_cap - c->in_len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            break;
        if (n <= 0) {
            c->dead = 1;
            break;
        }
        c->in_len += (size_t)n;
        size_t pos = 0;
        for (;;) {
            if (c->in_body) {
                size_t take = c->in_len - pos < c->body_left ? c->in_len - pos : c->body_left;
                pos += take;
                c->body_left -= take;
                if (c->body_left)
                    break;
                c->in_body = 0;
                httpc_complete(c, c->status);
                continue;
            }
            size_t head = wsp_http_head_end(c->in + pos, c->in_len - pos);
            if (!head)
                break;
            const char *h = c->in + pos;
            int status = wsp_http_status(h, head);
            const char *v;
            size_t vl;
            size_t body = 0;
            if (wsp_http_header(h, head, "Transfer-Encoding", &v, &vl)) {
                /* chunked: need the whole body in the buffer to skip it */
                const char *b = h + head;
                const char *end = c->in + c->in_len;
                size_t total = 0;
                int complete = 0;
                for (;;) {
                    const char *crlf = memmem(b, (size_t)(end - b), "\r\n", 2);
                    if (!crlf)
                        break;
                    size_t sz = strtoul(b, NULL, 16);
                    if ((size_t)(end - crlf) < 2 + sz + 2)
                        break;
                    total += (size_t)(crlf - b) + 2 + sz + 2;
                    b = crlf + 2 + sz + 2;
                    if (sz == 0) {
                        complete = 1;
                        break;
                    }
                }
                if (!complete)
                    break;
                pos += head + total;
                httpc_complete(c, status);
                continue;
            }
            if (wsp_http_header(h, head, "Content-Length", &v, &vl))
                body = strtoul(v, NULL, 10);
            pos += head;
            c->status = status;
            c->body_left = body;
            c->in_body = 1;
        }
        memmove(c->in, c->in + pos, c->in_len - pos);
        c->in_len -= pos;
    }
    if (c->dead) {
        while (c->fifo_count)
            httpc_complete(c, 0);
    }
}

/* ---- worker: the subscribers -------------------------------------------- */

typedef struct {
    int epfd;
    long first, count; /* global indexes [first, first + count) */
    sub_t *subs;
    httpc_t **api;
    long next_connect;
    long in_flight;
    long resolved;
    long ready;
    long failed;
    uint8_t *rbuf;
    result_msg_t res;
    uint64_t *ok_counts;
    int ended;
    uint64_t grace_deadline;
} worker_t;

/* The worker singleton: set once in a forked worker, unused in the parent. */
static worker_t *W;

/* The notifier of subscriber s: topic t's subscribers are t, t+T, t+2T...,
 * so (i / T) % n spreads every topic over the ports, as clients of one
 * topic spread over the notifiers of a deployment (i % n would put all of a
 * topic's subscribers on one notifier whenever n divides T). */
static int ws_port_index(const sub_t *s)
{
    return (int)((s->global_index / opt.topics) % opt.n_ws_ports);
}

/* The upgrade request of subscriber s: houston's fixed path, or the topic in
 * the URL for nchan and the ceiling. The key is constant: no server here
 * needs it to vary, and wsload does not check the accept value. */
static size_t build_handshake(const sub_t *s, char *buf, size_t cap)
{
    char path[64];
    if (opt.target == TARGET_HOUSTON)
        snprintf(path, sizeof path, "/api/v1/ws");
    else
        snprintf(path, sizeof path, "/sub/t%u", s->topic);
    int n =
        snprintf(buf, cap,
                 "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                 path, opt.host, opt.ws_ports[ws_port_index(s)]);
    return (size_t)n;
}

static void sub_resolve(sub_t *s, int ok)
{
    if (s->state == SUB_READY || s->state == SUB_DEAD)
        return;
    W->resolved++;
    W->in_flight--;
    if (ok) {
        s->state = SUB_READY;
        s->was_ready = 1;
        W->ready++;
    } else {
        W->failed++;
        if (s->fd >= 0)
            close(s->fd);
        s->fd = -1;
        s->state = SUB_DEAD;
    }
}

static void subscribe_answered(httpc_t *c, int status, long id, uint64_t sent_ns)
{
    sub_t *s = &W->subs[id];
    if (s->state != SUB_SUBSCRIBING)
        return;
    if (status != 200 && status != 201 && W->failed < 3)
        fprintf(stderr, "wsload: subscribe answered %d\n", status);
    sub_resolve(s, status == 200 || status == 201);
}

static void sub_start(long local)
{
    sub_t *s = &W->subs[local];
    s->fd = tcp_connect(opt.host, opt.ws_ports[ws_port_index(s)], s->global_index, 1);
    W->in_flight++;
    if (s->fd < 0) {
        if (W->failed < 3)
            fprintf(stderr, "wsload: connect: %s\n", strerror(errno));
        s->state = SUB_CONNECTING;
        sub_resolve(s, 0);
        return;
    }
    s->state = SUB_CONNECTING;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET | EPOLLRDHUP, .data.ptr = s};
    epoll_ctl(W->epfd, EPOLL_CTL_ADD, s->fd, &ev);
}

static void sub_send_control(sub_t *s, int opcode, const uint8_t *payload, size_t len)
{
    static const uint8_t mask[4] = {0x12, 0x34, 0x56, 0x78};
    uint8_t frame[14 + 125];
    if (len > 125)
        len = 125;
    size_t h = wsp_frame_header(frame, opcode, len, mask);
    memcpy(frame + h, payload, len);
    wsp_mask(frame + h, len, mask);
    (void)!write(s->fd, frame, h + len); /* best effort: a control frame is tiny */
}

/* 16 hex digits (the payload's own, always lower case); false on any other. */
static bool hex16(const uint8_t *h, uint64_t *out)
{
    uint64_t v = 0;
    for (int i = 0; i < 16; i++) {
        unsigned c = h[i], d;
        if (c - '0' < 10)
            d = c - '0';
        else if (c - 'a' < 6)
            d = c - 'a' + 10;
        else
            return false;
        v = v << 4 | d;
    }
    *out = v;
    return true;
}

/* The payload marker: where it was in this subscriber's last frame (frames
 * of one server and topic have the same shape), else the first "wl:". This
 * is the load generator's hottest code: it runs for every delivery. */
static const uint8_t *find_marker(sub_t *s, const uint8_t *p, size_t len)
{
    if (s->marker_at + MARKER_LEN <= len && memcmp(p + s->marker_at, MARKER, MARKER_LEN) == 0)
        return p + s->marker_at;
    for (const uint8_t *q = p, *end = p + len; (q = memchr(q, 'w', (size_t)(end - q)));) {
        if ((size_t)(end - q) >= MARKER_LEN && memcmp(q, MARKER, MARKER_LEN) == 0) {
            s->marker_at = (unsigned)(q - p);
            return q;
        }
        q++;
    }
    return NULL;
}

static void record_delivery(sub_t *s, const uint8_t *p, size_t len, uint64_t now)
{
    const uint8_t *m = find_marker(s, p, len);
    if (!m || (size_t)(p + len - m) < PAYLOAD_MIN - 1)
        return;
    uint64_t seq, sent;
    if (!hex16(m + MARKER_LEN, &seq) || !hex16(m + MARKER_LEN + 17, &sent))
        return;
    result_msg_t *r = &W->res;
    if (seq % (uint64_t)opt.topics != s->topic || seq / (uint64_t)opt.topics >= s->nbits) {
        r->misrouted++;
        return;
    }
    uint64_t bit = seq / (uint64_t)opt.topics;
    uint64_t word = s->bits[bit >> 6], flag = 1ull << (bit & 63);
    if (word & flag) {
        r->duplicated++;
        return;
    }
    s->bits[bit >> 6] = word | flag;
    r->unique++;
    if (!r->first_delivery_ns)
        r->first_delivery_ns = now;
    r->last_delivery_ns = now;
    hist_record(&r->latency, now > sent ? now - sent : 0);
}

/* A complete data frame of subscriber s. */
static void on_data(sub_t *s, const uint8_t *p, size_t len, uint64_t now)
{
    W->res.frames++;
    if (s->state == SUB_WAIT_ID) {
        static const char key[] = "\"connectionID\":\"";
        const uint8_t *k = memmem(p, len, key, sizeof key - 1);
        if (!k)
            return;
        k += sizeof key - 1;
        const uint8_t *q = memchr(k, '"', (size_t)(p + len - k));
        if (!q || q - k >= (long)sizeof s->id) {
            sub_resolve(s, 0);
            return;
        }
        memcpy(s->id, k, (size_t)(q - k));
        s->id[q - k] = 0;
        char body[160];
        int n = snprintf(body, sizeof body, "{\"topic\":\"t%u\",\"connectionID\":\"%s\"}", s->topic,
                         s->id);
        httpc_t *c = W->api[(s - W->subs) % opt.sub_conns];
        s->state = SUB_SUBSCRIBING;
        httpc_request(c, "/api/v1/subscribes", "application/json", body, (size_t)n,
                      (long)(s - W->subs), now);
        httpc_flush(c);
        return;
    }
    record_delivery(s, p, len, now);
}

static void sub_drop(sub_t *s)
{
    if (s->state == SUB_READY) {
        W->res.dropped++;
        close(s->fd);
        s->fd = -1;
        s->state = SUB_DEAD;
    } else {
        sub_resolve(s, 0);
    }
}

/* Parses every complete frame in buf[0..len); returns bytes consumed, or -1
 * when the connection must go. */
static long parse_frames(sub_t *s, uint8_t *buf, size_t len, uint64_t now)
{
    size_t pos = 0;
    while (pos < len) {
        hs_ws_frame_header_t f;
        int r = hs_ws_parse_header(buf + pos, len - pos, HS_WS_UNMASKED, &f);
        if (r == HS_EAGAIN)
            break;
        if (r != 0)
            return -1; /* not a server frame: masked, reserved bits, bad length */
        if (f.payload_len > len - pos - f.header_len) {
            if (f.payload_len > RBUF_SIZE / 2)
                return -1; /* larger than any frame this bench sends */
            break;
        }
        uint8_t *payload = buf + pos + f.header_len;
        size_t plen = (size_t)f.payload_len;
        switch (f.opcode) {
        case 0x0:
        case 0x1:
        case 0x2:
            on_data(s, payload, plen, now);
            break;
        case 0x8:
            W->res.server_closes++;
            sub_send_control(s, 0x8, payload, plen < 2 ? plen : 2);
            return -1;
        case 0x9:
            W->res.pings++;
            sub_send_control(s, 0xA, payload, plen);
            break;
        default:
            break;
        }
        if (s->state == SUB_DEAD)
            return -1;
        pos += f.header_len + plen;
    }
    return (long)pos;
}

static void sub_readable(sub_t *s)
{
    for (;;) {
        uint8_t *buf = W->rbuf;
        size_t have = s->carry_len;
        if (have)
            memcpy(buf, s->carry, have);
        ssize_t n = read(s->fd, buf + have, RBUF_SIZE - have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0) {
            sub_drop(s);
            return;
        }
        uint64_t now = wsp_now_ns();
        size_t len = have + (size_t)n;
        size_t pos = 0;
        if (s->state == SUB_HANDSHAKE) {
            size_t head = wsp_http_head_end((char *)buf, len);
            if (!head) {
                if (len > 8192) {
                    sub_drop(s);
                    return;
                }
                goto keep;
            }
            if (wsp_http_status((char *)buf, head) != 101) {
                if (W->failed < 3)
                    fprintf(stderr, "wsload: handshake answered: %.*s\n",
                            (int)(memchr(buf, '\r', head)
                                      ? (char *)memchr(buf, '\r', head) - (char *)buf
                                      : 0),
                            (char *)buf);
                sub_drop(s);
                return;
            }
            pos = head;
            if (opt.target == TARGET_HOUSTON)
                s->state = SUB_WAIT_ID;
            else
                sub_resolve(s, 1);
        }
        long used = parse_frames(s, buf + pos, len - pos, now);
        if (used < 0) {
            sub_drop(s);
            return;
        }
        pos += (size_t)used;
    keep:
        s->carry_len = 0;
        if (pos < len) {
            size_t rest = len - pos;
            if (rest > s->carry_cap) {
                s->carry_cap = (uint32_t)rest;
                s->carry = xrealloc(s->carry, rest);
            }
            memcpy(s->carry, buf + pos, rest);
            s->carry_len = (uint32_t)rest;
        }
    }
}

static void sub_event(sub_t *s, uint32_t events)
{
    if (s->state == SUB_DEAD)
        return;
    if (s->state == SUB_CONNECTING) {
        if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
            return;
        int err = 0;
        socklen_t el = sizeof err;
        getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        char req[512];
        size_t req_len = build_handshake(s, req, sizeof req);
        if (err || write(s->fd, req, req_len) != (ssize_t)req_len) {
            if (W->failed < 3)
                fprintf(stderr, "wsload: connect: %s\n", strerror(err ? err : errno));
            sub_resolve(s, 0);
            return;
        }
        s->state = SUB_HANDSHAKE;
    }
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP))
        sub_readable(s);
}

static void worker_read_end(int fd)
{
    end_msg_t end;
    uint64_t far = wsp_now_ns() + 5000000000ull;
    if (read_full(fd, &end, sizeof end, far) < 0) {
        W->ended = 1;
        W->grace_deadline = 0; /* the parent is gone: stop now */
        return;
    }
    W->ok_counts = xmalloc(end.ntopics * sizeof *W->ok_counts);
    if (read_full(fd, W->ok_counts, end.ntopics * sizeof *W->ok_counts, far) < 0)
        memset(W->ok_counts, 0, end.ntopics * sizeof *W->ok_counts);
    W->ended = 1;
    W->grace_deadline = end.grace_deadline_ns;
    uint64_t expected = 0;
    for (long i = 0; i < W->count; i++)
        if (W->subs[i].was_ready && W->subs[i].topic < end.ntopics)
            expected += W->ok_counts[W->subs[i].topic];
    W->res.expected = expected;
}

static void worker_poll(int timeout_ms)
{
    struct epoll_event evs[256];
    int n = epoll_wait(W->epfd, evs, 256, timeout_ms);
    for (int i = 0; i < n; i++) {
        enum kind *k = evs[i].data.ptr;
        if (*k == KIND_SUB) {
            sub_event((sub_t *)k, evs[i].events);
        } else if (*k == KIND_HTTP) {
            httpc_t *c = (httpc_t *)k;
            if (evs[i].events & EPOLLOUT)
                httpc_flush(c);
            if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                httpc_read(c);
        } else {
            worker_read_end(((pipe_ref_t *)k)->fd);
        }
    }
}

static int run_worker(long first, long count, int cmd_fd, int res_fd, uint64_t connect_deadline,
                      uint64_t deadline)
{
    W = xmalloc(sizeof *W);
    W->first = first;
    W->count = count;
    W->epfd = epoll_create1(0);
    W->rbuf = xmalloc(RBUF_SIZE);
    W->subs = xmalloc((size_t)count * sizeof *W->subs);
    hist_init(&W->res.latency);
    for (long i = 0; i < count; i++) {
        sub_t *s = &W->subs[i];
        s->kind = KIND_SUB;
        s->fd = -1;
        s->global_index = first + i;
        s->topic = (uint32_t)((first + i) % opt.topics);
        /* messages of this topic: seq = topic + k*T for k < nbits */
        long nb = opt.messages > (long)s->topic
                      ? (opt.messages - (long)s->topic + opt.topics - 1) / opt.topics
                      : 0;
        s->nbits = (uint32_t)nb;
        s->bits = xmalloc(((size_t)nb + 63) / 64 * 8);
    }
    if (opt.target == TARGET_HOUSTON) {
        W->api = xmalloc((size_t)opt.sub_conns * sizeof *W->api);
        for (long i = 0; i < opt.sub_conns; i++)
            W->api[i] = httpc_open(W->epfd, opt.api_ports[i % opt.n_api_ports], (size_t)count + 1,
                                   subscribe_answered);
    }
    pipe_ref_t cmd = {.kind = KIND_PIPE, .fd = cmd_fd};
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &cmd};
    epoll_ctl(W->epfd, EPOLL_CTL_ADD, cmd_fd, &ev);

    /* connect and subscribe, at most opt.batch in flight */
    while (W->resolved < count && !W->ended) {
        while (W->next_connect < count && W->in_flight < opt.batch)
            sub_start(W->next_connect++);
        if (wsp_now_ns() >= connect_deadline)
            break;
        worker_poll(50);
    }
    ready_msg_t rm = {.ready = (uint64_t)W->ready, .connect_failed = (uint64_t)(count - W->ready)};
    if (write_full(res_fd, &rm, sizeof rm) < 0)
        return 1;
    uint64_t cpu_start = cpu_now_ns();
    /* deliveries until END, then until all expected arrived or grace ends */
    for (;;) {
        uint64_t now = wsp_now_ns();
        if (now >= deadline)
            break;
        if (W->ended && (W->res.unique >= W->res.expected || now >= W->grace_deadline))
            break;
        worker_poll(20);
    }
    W->res.ready = (uint64_t)W->ready;
    W->res.cpu_ns = cpu_now_ns() - cpu_start;
    return write_full(res_fd, &W->res, sizeof W->res) < 0;
}

/* ---- parent: publishers and the report ----------------------------------- */

typedef struct {
    httpc_t **conns;
    long nconns;   /* open publisher connections (grows in the fixed-rate mode) */
    long next_seq; /* next message to send */
    long limit;    /* messages to send (may shrink with --duration) */
    long answered;
    long ok;
    long errors;
    uint64_t *ok_counts; /* per topic */
    uint64_t first_ns, last_answer_ns;
    hist_t latency;
    char *body;
    size_t body_len;
    char path[64];
} publisher_t;

/* The publisher singleton of the parent process. */
static publisher_t P;

static void publish_answered(httpc_t *c, int status, long id, uint64_t sent_ns)
{
    uint64_t now = wsp_now_ns();
    P.answered++;
    P.last_answer_ns = now;
    if (status >= 200 && status < 300) {
        P.ok++;
        P.ok_counts[id % opt.topics]++;
        hist_record(&P.latency, now - sent_ns);
    } else {
        if (P.errors < 3)
            fprintf(stderr, "wsload: publish answered %d\n", status);
        P.errors++;
    }
}

/* Builds the payload of message seq in P.body (fixed length) and queues it. */
static void publish_one(httpc_t *c, long seq, uint64_t now)
{
    char payload[PAYLOAD_MIN + 1];
    snprintf(payload, sizeof payload, MARKER "%016lx:%016lx:", (unsigned long)seq,
             (unsigned long)now);
    long topic = seq % opt.topics;
    const char *ctype = "application/json";
    const char *path = "/api/v1/messages";
    if (opt.target == TARGET_HOUSTON) {
        /* {"topic":"tNNN","content":"<payload>"}: the content starts at a fixed offset */
        int n = snprintf(P.body, 64, "{\"topic\":\"t%ld\",\"content\":\"", topic);
        memcpy(P.body + n, payload, PAYLOAD_MIN);
        size_t plen = (size_t)(opt.payload > PAYLOAD_MIN ? opt.payload : PAYLOAD_MIN);
        memset(P.body + n + PAYLOAD_MIN, 'x', plen - PAYLOAD_MIN);
        memcpy(P.body + n + plen, "\"}", 2);
        P.body_len = (size_t)n + plen + 2;
    } else {
        snprintf(P.path, sizeof P.path, "/pub/t%ld", topic);
        path = P.path;
        ctype = "text/plain";
        size_t plen = (size_t)(opt.payload > PAYLOAD_MIN ? opt.payload : PAYLOAD_MIN);
        memcpy(P.body, payload, PAYLOAD_MIN);
        memset(P.body + PAYLOAD_MIN, 'x', plen - PAYLOAD_MIN);
        P.body_len = plen;
    }
    httpc_request(c, path, ctype, P.body, P.body_len, seq, now);
}

/* A connection of the fixed-rate mode with no request in flight, or a new
 * one when every open connection waits for an answer (at most
 * RATE_MAX_CONNS): one request in flight per connection, so a slow answer
 * never holds the publishes scheduled after it. NULL when the cap is hit. */
static httpc_t *rate_idle_conn(int epfd)
{
    for (long i = 0; i < P.nconns; i++)
        if (!P.conns[i]->dead && P.conns[i]->fifo_count == 0)
            return P.conns[i];
    if (P.nconns == RATE_MAX_CONNS)
        return NULL;
    httpc_t *c = httpc_open(epfd, opt.api_ports[P.nconns % opt.n_api_ports], 1, publish_answered);
    P.conns[P.nconns++] = c;
    return c;
}

static void run_publishers(uint64_t deadline)
{
    if (opt.messages <= 0 || opt.publishers <= 0)
        return;
    int epfd = epoll_create1(0);
    long cap = opt.rate > 0 ? RATE_MAX_CONNS : opt.publishers;
    P.conns = xmalloc((size_t)cap * sizeof *P.conns);
    P.nconns = opt.publishers < cap ? opt.publishers : cap;
    for (long i = 0; i < P.nconns; i++)
        P.conns[i] = httpc_open(epfd, opt.api_ports[i % opt.n_api_ports],
                                opt.rate > 0 ? 1 : (size_t)opt.window, publish_answered);
    P.body = xmalloc((size_t)opt.payload + 256);
    P.limit = opt.messages;
    P.first_ns = wsp_now_ns();
    long rr = 0;
    while (P.answered < P.next_seq || P.next_seq < P.limit) {
        uint64_t now = wsp_now_ns();
        if (now >= deadline)
            break;
        if (opt.duration > 0 && now - P.first_ns >= (uint64_t)(opt.duration * 1e9) &&
            P.limit > P.next_seq)
            P.limit = P.next_seq;
        long target = P.limit;
        if (opt.rate > 0) {
            long due = (long)((double)(now - P.first_ns) * opt.rate / 1e9) + 1;
            target = due < P.limit ? due : P.limit;
            /* Stamped with its scheduled send time, not the time it left:
             * a publish sent late (no idle connection, a slow loop here)
             * counts its wait as latency instead of hiding it. */
            while (P.next_seq < target) {
                httpc_t *c = rate_idle_conn(epfd);
                if (!c)
                    break;
                uint64_t due_ns = P.first_ns + (uint64_t)((double)P.next_seq * 1e9 / opt.rate);
                publish_one(c, P.next_seq++, due_ns);
                httpc_flush(c);
            }
        }
        long alive = 0;
        for (long tries = 0; P.next_seq < target && tries < P.nconns; tries++) {
            httpc_t *c = P.conns[rr++ % P.nconns];
            while (!httpc_full(c) && P.next_seq < target)
                publish_one(c, P.next_seq++, now);
            httpc_flush(c);
        }
        for (long i = 0; i < P.nconns; i++)
            alive += !P.conns[i]->dead;
        if (!alive) {
            fprintf(stderr, "wsload: every publisher connection was closed\n");
            break;
        }
        struct epoll_event evs[64];
        int n = epoll_wait(epfd, evs, 64, opt.rate > 0 ? 1 : 50);
        for (int i = 0; i < n; i++) {
            httpc_t *c = evs[i].data.ptr;
            if (evs[i].events & EPOLLOUT)
                httpc_flush(c);
            if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                httpc_read(c);
        }
    }
    for (long i = 0; i < P.nconns; i++)
        close(P.conns[i]->fd);
    close(epfd);
}

/* Memory of the server: the sum of Pss over the process and its children
 * (nginx's workers), from smaps_rollup; VmRSS when Pss cannot be read. */
static long read_kib(const char *path, const char *key)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char line[256];
    long v = -1;
    size_t kl = strlen(key);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, kl) == 0) {
            v = strtol(line + kl, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

/* One process's memory: Pss (shared pages divided among their users) when
 * pss is set and readable, else VmRSS. */
static long process_kib(int pid, int pss)
{
    char path[64];
    long v = -1;
    if (pss) {
        snprintf(path, sizeof path, "/proc/%d/smaps_rollup", pid);
        v = read_kib(path, "Pss:");
    }
    if (v < 0) {
        snprintf(path, sizeof path, "/proc/%d/status", pid);
        v = read_kib(path, "VmRSS:");
    }
    return v;
}

static long server_kib(int pid, int pss)
{
    if (pid <= 0)
        return -1;
    long total = process_kib(pid, pss);
    if (total < 0)
        return -1;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", pid, pid);
    FILE *f = fopen(path, "r");
    if (f) {
        int child;
        while (fscanf(f, "%d", &child) == 1) {
            long v = process_kib(child, pss);
            if (v > 0)
                total += v;
        }
        fclose(f);
    }
    return total;
}

/* CPU time (user + system) of the server and its children, in ms. */
static long process_cpu_ms(int pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    unsigned long utime, stime;
    if (!p ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) != 2)
        return -1;
    return (long)((utime + stime) * 1000 / (unsigned long)sysconf(_SC_CLK_TCK));
}

static long server_cpu_ms(int pid)
{
    if (pid <= 0)
        return -1;
    long total = process_cpu_ms(pid);
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", pid, pid);
    FILE *f = fopen(path, "r");
    if (f && total >= 0) {
        int child;
        while (fscanf(f, "%d", &child) == 1) {
            long v = process_cpu_ms(child);
            if (v > 0)
                total += v;
        }
    }
    if (f)
        fclose(f);
    return total;
}

static double ms(uint64_t ns)
{
    return (double)ns / 1e6;
}

/* A comma list of ports ("9001,9011"); at most MAX_PORTS. */
static int parse_ports(const char *arg, int *ports)
{
    int n = 0;
    for (const char *p = arg; *p;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v <= 0 || v > 65535 || n == MAX_PORTS || (*end && *end != ','))
            die("bad port list '%s' (at most %d ports, comma separated)", arg, MAX_PORTS);
        ports[n++] = (int)v;
        p = *end ? end + 1 : end;
    }
    if (!n)
        die("empty port list");
    return n;
}

static void usage(void)
{
    fprintf(
        stderr,
        "usage: wsload [options]\n"
        "  --target houston|nchan|ceiling   server kind (default houston)\n"
        "  --host ADDR          server address (127.0.0.1)\n"
        "  --ws-port N[,N...]   WebSocket port(s) (9001); subscriber i on the\n"
        "                       ((i / topics) %% n)th: each topic on every port\n"
        "  --api-port N[,N...]  publish/subscribe API port(s) (default: the ws port);\n"
        "                       publisher connection j on the (j %% n)th\n"
        "  --subs N             subscribers (100)\n"
        "  --topics N           topics; subscriber i on topic i%%N, message j on j%%N (1)\n"
        "  --messages N         messages to publish (100)\n"
        "  --publishers N       publisher keep-alive connections (4)\n"
        "  --window N           requests in flight per publisher connection (64; 1 with --rate)\n"
        "  --rate R             publish R messages/s instead of as fast as possible: one\n"
        "                       request in flight per connection, a new connection\n"
        "                       when all wait (at most %d), each message stamped\n"
        "                       with its scheduled send time\n"
        "  --duration S         stop publishing after S seconds\n"
        "  --payload N          payload bytes (64, at least %d, at most 200000)\n"
        "  --timeout S          bound of the whole run (60)\n"
        "  --grace S            wait for stragglers after the last publish (3)\n"
        "  --settle S           pause before reading the server's memory (0.3)\n"
        "  --server-pid PID     read the server's memory before and after connecting\n"
        "  --workers N          at least N subscriber processes (auto from RLIMIT_NOFILE)\n"
        "  --batch N            connections in flight while connecting (500)\n"
        "  --label TEXT         a name for the run, echoed in the report\n"
        "  --json               one JSON line on stdout (the table goes to stderr)\n"
        "  --strict             exit 3 when anything was lost, duplicated or refused\n",
        RATE_MAX_CONNS, PAYLOAD_MIN);
    exit(2);
}

static void parse_args(int argc, char **argv)
{
    enum {
        O_TARGET = 256,
        O_HOST,
        O_WS,
        O_API,
        O_SUBS,
        O_TOPICS,
        O_MSGS,
        O_PUBS,
        O_WINDOW,
        O_RATE,
        O_DURATION,
        O_PAYLOAD,
        O_TIMEOUT,
        O_GRACE,
        O_SETTLE,
        O_PID,
        O_WORKERS,
        O_BATCH,
        O_LABEL,
        O_JSON,
        O_STRICT,
        O_HELP
    };
    static const struct option longs[] = {
        {"target", 1, 0, O_TARGET},
        {"host", 1, 0, O_HOST},
        {"ws-port", 1, 0, O_WS},
        {"api-port", 1, 0, O_API},
        {"subs", 1, 0, O_SUBS},
        {"topics", 1, 0, O_TOPICS},
        {"messages", 1, 0, O_MSGS},
        {"publishers", 1, 0, O_PUBS},
        {"window", 1, 0, O_WINDOW},
        {"rate", 1, 0, O_RATE},
        {"duration", 1, 0, O_DURATION},
        {"payload", 1, 0, O_PAYLOAD},
        {"timeout", 1, 0, O_TIMEOUT},
        {"grace", 1, 0, O_GRACE},
        {"settle", 1, 0, O_SETTLE},
        {"server-pid", 1, 0, O_PID},
        {"workers", 1, 0, O_WORKERS},
        {"batch", 1, 0, O_BATCH},
        {"label", 1, 0, O_LABEL},
        {"json", 0, 0, O_JSON},
        {"strict", 0, 0, O_STRICT},
        {"help", 0, 0, O_HELP},
        {0, 0, 0, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (c) {
        case O_TARGET:
            opt.target_name = optarg;
            if (strcmp(optarg, "houston") == 0)
                opt.target = TARGET_HOUSTON;
            else if (strcmp(optarg, "nchan") == 0)
                opt.target = TARGET_NCHAN;
            else if (strcmp(optarg, "ceiling") == 0)
                opt.target = TARGET_CEILING;
            else
                usage();
            break;
        case O_HOST:
            opt.host = optarg;
            break;
        case O_WS:
            opt.n_ws_ports = parse_ports(optarg, opt.ws_ports);
            opt.ws_port = opt.ws_ports[0];
            break;
        case O_API:
            opt.n_api_ports = parse_ports(optarg, opt.api_ports);
            opt.api_port = opt.api_ports[0];
            break;
        case O_SUBS:
            opt.subs = atol(optarg);
            break;
        case O_TOPICS:
            opt.topics = atol(optarg);
            break;
        case O_MSGS:
            opt.messages = atol(optarg);
            break;
        case O_PUBS:
            opt.publishers = atol(optarg);
            break;
        case O_WINDOW:
            opt.window = atol(optarg);
            break;
        case O_RATE:
            opt.rate = atof(optarg);
            break;
        case O_DURATION:
            opt.duration = atof(optarg);
            break;
        case O_PAYLOAD:
            opt.payload = atol(optarg);
            break;
        case O_TIMEOUT:
            opt.timeout = atof(optarg);
            break;
        case O_GRACE:
            opt.grace = atof(optarg);
            break;
        case O_SETTLE:
            opt.settle = atof(optarg);
            break;
        case O_PID:
            opt.server_pid = atoi(optarg);
            break;
        case O_WORKERS:
            opt.workers = atol(optarg);
            break;
        case O_BATCH:
            opt.batch = atol(optarg);
            break;
        case O_LABEL:
            opt.label = optarg;
            break;
        case O_JSON:
            opt.json = 1;
            break;
        case O_STRICT:
            opt.strict = 1;
            break;
        default:
            usage();
        }
    }
    if (optind != argc || opt.subs < 0 || opt.topics < 1 || opt.messages < 0 || opt.window < 1 ||
        opt.batch < 1 || opt.timeout <= 0 || opt.payload > 200000)
        usage();
    if (opt.payload < PAYLOAD_MIN)
        opt.payload = PAYLOAD_MIN;
    if (!opt.n_ws_ports) {
        opt.ws_ports[0] = opt.ws_port;
        opt.n_ws_ports = 1;
    }
    if (!opt.n_api_ports) {
        opt.api_ports[0] = opt.ws_ports[0];
        opt.n_api_ports = 1;
        opt.api_port = opt.api_ports[0];
    }
    if ((double)opt.subs * (double)opt.messages / (double)opt.topics > 8e9)
        die("subs x messages / topics is too large for the delivery bitmaps");
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    parent_pid = getpid();
    signal(SIGPIPE, SIG_IGN);
    uint64_t start = wsp_now_ns();
    uint64_t deadline = start + (uint64_t)(opt.timeout * 1e9);
    uint64_t connect_deadline = start + (uint64_t)(opt.timeout * 0.5e9);

    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    long per_worker = (long)rl.rlim_cur - FD_SLACK - opt.sub_conns;
    if (per_worker < 16)
        die("RLIMIT_NOFILE %ld is too low", (long)rl.rlim_cur);
    if (opt.publishers + FD_SLACK > (long)rl.rlim_cur)
        die("too many publisher connections for RLIMIT_NOFILE %ld", (long)rl.rlim_cur);
    long nworkers = (opt.subs + per_worker - 1) / per_worker;
    if (nworkers < opt.workers)
        nworkers = opt.workers;
    if (nworkers < 1)
        nworkers = 1;
    if (nworkers > MAX_WORKERS)
        die("%ld subscribers need more than %d processes", opt.subs, MAX_WORKERS);
    if (nworkers > opt.subs && opt.subs > 0)
        nworkers = opt.subs;

    long kib_before = server_kib(opt.server_pid, 1);
    long vmrss_before = server_kib(opt.server_pid, 0);
    pid_t pids[MAX_WORKERS];
    int cmd_fds[MAX_WORKERS], res_fds[MAX_WORKERS];
    for (long w = 0; w < nworkers; w++) {
        long first = opt.subs * w / nworkers, last = opt.subs * (w + 1) / nworkers;
        int cmd[2], res[2];
        if (pipe(cmd) < 0 || pipe(res) < 0)
            die("pipe: %s", strerror(errno));
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0)
            die("fork: %s", strerror(errno));
        if (pid == 0) {
            close(cmd[1]);
            close(res[0]);
            for (long j = 0; j < w; j++) {
                close(cmd_fds[j]);
                close(res_fds[j]);
            }
            _exit(run_worker(first, last - first, cmd[0], res[1], connect_deadline, deadline));
        }
        close(cmd[0]);
        close(res[1]);
        worker_pids[worker_count++] = pid;
        pids[w] = pid;
        cmd_fds[w] = cmd[1];
        res_fds[w] = res[0];
    }

    uint64_t ready = 0, failed = 0;
    int worker_ok[MAX_WORKERS];
    for (long w = 0; w < nworkers; w++) {
        ready_msg_t rm;
        worker_ok[w] = read_full(res_fds[w], &rm, sizeof rm, connect_deadline + 5000000000ull) == 0;
        if (worker_ok[w]) {
            ready += rm.ready;
            failed += rm.connect_failed;
        } else {
            fprintf(stderr, "wsload: worker %ld did not report\n", w);
            failed += (uint64_t)(opt.subs * (w + 1) / nworkers - opt.subs * w / nworkers);
        }
    }
    uint64_t connected_ns = wsp_now_ns();
    if (!opt.json || isatty(2))
        fprintf(stderr, "wsload: %lu subscribers ready, %lu failed, in %.2f s (%ld processes)\n",
                (unsigned long)ready, (unsigned long)failed, (double)(connected_ns - start) / 1e9,
                nworkers);
    if (opt.settle > 0)
        usleep((useconds_t)(opt.settle * 1e6));
    long kib_after = server_kib(opt.server_pid, 1);
    long vmrss_after = server_kib(opt.server_pid, 0);

    P.ok_counts = xmalloc((size_t)opt.topics * sizeof *P.ok_counts);
    hist_init(&P.latency);
    uint64_t grace_ns = (uint64_t)(opt.grace * 1e9);
    long server_cpu_before = server_cpu_ms(opt.server_pid);
    uint64_t parent_cpu_before = cpu_now_ns();
    run_publishers(deadline > grace_ns ? deadline - grace_ns : deadline);
    uint64_t published_ns = wsp_now_ns();
    uint64_t loadgen_cpu_ns = cpu_now_ns() - parent_cpu_before;

    end_msg_t end = {.grace_deadline_ns = published_ns + grace_ns, .ntopics = (uint64_t)opt.topics};
    if (end.grace_deadline_ns > deadline)
        end.grace_deadline_ns = deadline;
    for (long w = 0; w < nworkers; w++) {
        if (write_full(cmd_fds[w], &end, sizeof end) < 0 ||
            write_full(cmd_fds[w], P.ok_counts, (size_t)opt.topics * sizeof *P.ok_counts) < 0)
            worker_ok[w] = 0;
    }
    result_msg_t total;
    memset(&total, 0, sizeof total);
    hist_init(&total.latency);
    result_msg_t *r = xmalloc(sizeof *r);
    int timed_out = 0;
    for (long w = 0; w < nworkers; w++) {
        if (!worker_ok[w] || read_full(res_fds[w], r, sizeof *r, deadline + 2000000000ull) < 0) {
            fprintf(stderr, "wsload: worker %ld gave no result\n", w);
            kill(pids[w], SIGKILL);
            timed_out = 1;
            continue;
        }
        total.ready += r->ready;
        total.expected += r->expected;
        total.unique += r->unique;
        total.duplicated += r->duplicated;
        total.misrouted += r->misrouted;
        total.frames += r->frames;
        total.pings += r->pings;
        total.server_closes += r->server_closes;
        total.dropped += r->dropped;
        if (r->first_delivery_ns &&
            (!total.first_delivery_ns || r->first_delivery_ns < total.first_delivery_ns))
            total.first_delivery_ns = r->first_delivery_ns;
        if (r->last_delivery_ns > total.last_delivery_ns)
            total.last_delivery_ns = r->last_delivery_ns;
        hist_merge(&total.latency, &r->latency);
        loadgen_cpu_ns += r->cpu_ns;
    }
    free(r);
    long server_cpu_after = server_cpu_ms(opt.server_pid);
    long server_cpu =
        server_cpu_before >= 0 && server_cpu_after >= 0 ? server_cpu_after - server_cpu_before : -1;
    for (long w = 0; w < nworkers; w++) {
        close(cmd_fds[w]);
        close(res_fds[w]);
        waitpid(pids[w], NULL, 0);
    }
    if (wsp_now_ns() >= deadline)
        timed_out = 1;

    uint64_t lost = total.expected > total.unique ? total.expected - total.unique : 0;
    double deliver_s = total.last_delivery_ns > P.first_ns
                           ? (double)(total.last_delivery_ns - P.first_ns) / 1e9
                           : 0;
    double publish_s =
        P.last_answer_ns > P.first_ns ? (double)(P.last_answer_ns - P.first_ns) / 1e9 : 0;
    double deliveries_per_s = deliver_s > 0 ? (double)total.unique / deliver_s : 0;
    double publishes_per_s = publish_s > 0 ? (double)P.ok / publish_s : 0;
    long vmrss_per_conn =
        (vmrss_before >= 0 && vmrss_after >= 0 && ready > 0)
            ? (long)((double)(vmrss_after - vmrss_before) * 1024.0 / (double)ready)
            : -1;
    long rss_per_conn = (kib_before >= 0 && kib_after >= 0 && ready > 0)
                            ? (long)((double)(kib_after - kib_before) * 1024.0 / (double)ready)
                            : -1;
    const hist_t *lat = &total.latency;

    FILE *out = opt.json ? stderr : stdout;
    fprintf(out, "wsload %s %s: %ld subs, %ld topics, %ld messages, %ld publishers x %ld%s\n",
            opt.target_name, opt.label, opt.subs, opt.topics, opt.messages, opt.publishers,
            opt.window, opt.rate > 0 ? " (fixed rate)" : "");
    fprintf(out,
            "  subscribers ready      %lu (failed %lu, dropped later %lu, server closes %lu)\n",
            (unsigned long)ready, (unsigned long)failed, (unsigned long)total.dropped,
            (unsigned long)total.server_closes);
    fprintf(out, "  published              %ld ok, %ld errors in %.3f s = %.0f/s\n", P.ok, P.errors,
            publish_s, publishes_per_s);
    fprintf(out, "  publish latency ms     p50 %.3f  p99 %.3f  max %.3f\n",
            ms(hist_quantile(&P.latency, 0.5)), ms(hist_quantile(&P.latency, 0.99)),
            ms(P.latency.max));
    fprintf(
        out,
        "  deliveries             %lu of %lu expected (lost %lu, duplicated %lu, misrouted %lu)\n",
        (unsigned long)total.unique, (unsigned long)total.expected, (unsigned long)lost,
        (unsigned long)total.duplicated, (unsigned long)total.misrouted);
    fprintf(out, "  deliveries/s           %.0f  (%.3f s from first publish to last delivery)\n",
            deliveries_per_s, deliver_s);
    fprintf(out, "  latency ms             p50 %.2f  p90 %.2f  p99 %.2f  p99.9 %.2f  max %.2f\n",
            ms(hist_quantile(lat, 0.5)), ms(hist_quantile(lat, 0.9)), ms(hist_quantile(lat, 0.99)),
            ms(hist_quantile(lat, 0.999)), ms(lat->max));
    if (opt.server_pid)
        fprintf(out, "  server memory KiB      %ld before, %ld after = %ld bytes per connection\n",
                kib_before, kib_after, rss_per_conn);
    /* the busy window: publishing, and delivering when there is any */
    double busy_s = deliver_s > publish_s ? deliver_s : publish_s;
    double server_cpu_pct = server_cpu >= 0 && busy_s > 0 ? (double)server_cpu / 10.0 / busy_s : -1;
    double loadgen_cpu_pct = busy_s > 0 ? ms(loadgen_cpu_ns) / 10.0 / busy_s : -1;
    fprintf(out, "  CPU while busy         server %.0f %%, wsload %.0f %% (100 %% = one core)\n",
            server_cpu_pct, loadgen_cpu_pct);
    if (timed_out)
        fprintf(out, "  TIMED OUT (--timeout %.0f s)\n", opt.timeout);
    if (opt.json) {
        printf(
            "{\"target\":\"%s\",\"label\":\"%s\",\"subs\":%ld,\"topics\":%ld,\"messages\":%ld,"
            "\"publishers\":%ld,\"publish_conns\":%ld,\"window\":%ld,\"rate\":%g,\"workers\":%ld,"
            "\"subscribed\":%lu,\"connect_failed\":%lu,\"dropped\":%lu,\"server_closes\":%lu,"
            "\"pings\":%lu,"
            "\"published\":%ld,\"publish_errors\":%ld,\"publish_s\":%.4f,\"publishes_per_s\":%.1f,"
            "\"pub_p50_ms\":%.3f,\"pub_p99_ms\":%.3f,\"pub_max_ms\":%.3f,"
            "\"expected\":%lu,\"received\":%lu,\"lost\":%lu,\"duplicated\":%lu,\"misrouted\":%lu,"
            "\"deliver_s\":%.4f,\"deliveries_per_s\":%.1f,"
            "\"lat_p50_ms\":%.3f,\"lat_p90_ms\":%.3f,\"lat_p99_ms\":%.3f,\"lat_p999_ms\":%.3f,"
            "\"lat_max_ms\":%.3f,\"rss_before_kib\":%ld,\"rss_after_kib\":%ld,\"rss_per_conn_"
            "bytes\":%ld,\"vmrss_before_kib\":%ld,\"vmrss_after_kib\":%ld,\"vmrss_per_conn_bytes\":"
            "%ld,"
            "\"server_cpu_ms\":%ld,\"server_cpu_pct\":%.1f,\"wsload_cpu_ms\":%.1f,\"wsload_cpu_"
            "pct\":%.1f,"
            "\"publish_start_ns\":%lu,\"timed_out\":%s}\n",
            opt.target_name, opt.label, opt.subs, opt.topics, opt.messages, opt.publishers,
            P.nconns, opt.rate > 0 ? 1 : opt.window, opt.rate, nworkers, (unsigned long)ready,
            (unsigned long)failed, (unsigned long)total.dropped, (unsigned long)total.server_closes,
            (unsigned long)total.pings, P.ok, P.errors, publish_s, publishes_per_s,
            ms(hist_quantile(&P.latency, 0.5)), ms(hist_quantile(&P.latency, 0.99)),
            ms(P.latency.max), (unsigned long)total.expected, (unsigned long)total.unique,
            (unsigned long)lost, (unsigned long)total.duplicated, (unsigned long)total.misrouted,
            deliver_s, deliveries_per_s, ms(hist_quantile(lat, 0.5)), ms(hist_quantile(lat, 0.9)),
            ms(hist_quantile(lat, 0.99)), ms(hist_quantile(lat, 0.999)), ms(lat->max), kib_before,
            kib_after, rss_per_conn, vmrss_before, vmrss_after, vmrss_per_conn, server_cpu,
            server_cpu_pct, ms(loadgen_cpu_ns), loadgen_cpu_pct, (unsigned long)P.first_ns,
            timed_out ? "true" : "false");
    }
    fflush(NULL);
    if (opt.strict && (lost || total.duplicated || total.misrouted || failed || total.dropped ||
                       P.errors || timed_out || (long)ready < opt.subs))
        return 3;
    return timed_out ? 4 : 0;
}
