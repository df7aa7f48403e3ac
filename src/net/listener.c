/* listener.c - listening sockets: address parsing, dual-stack binding, and
 * accepting (a socket polled by libuv, accept4 here: a connection is a
 * descriptor, not a libuv stream, conn.c) with a back-off when the process
 * runs out of descriptors.
 *
 * Addresses: "host:port", "[v6]:port", ":port" or "*:port" (all interfaces:
 * "::" with IPV6_V6ONLY off so IPv4 clients are accepted too, or 0.0.0.0
 * when the host has no IPv6), and "localhost:port", which means 127.0.0.1
 * (no resolver is involved; clients resolving localhost to ::1 need ":port"
 * or "[::1]:port"). */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/log.h"
#include "net/net_internal.h"

#define BACKLOG           1024
#define EMFILE_BACKOFF_MS 100
#define WARN_INTERVAL_MS  5000
/* Connections accepted per readiness: the loop gets on with the others, and
 * the socket stays readable while more wait. */
#define ACCEPTS_PER_EVENT 128

struct hs_listener {
    uv_poll_t poll;     /* on fd */
    int fd;             /* the listening socket; -1 while not listening */
    uv_timer_t backoff; /* re-listens after running out of descriptors */
    hs_net_t *net;
    hs_tls_t *tls; /* the net's when this listener started: TLS only */
    hs_accept_cb cb;
    void *data;
    struct sockaddr_storage addr; /* bound address, with the actual port */
    int port;
    bool listening;   /* fd is open (not closed for a back-off) */
    bool closing;     /* hs_listener_close was called */
    bool backing_off; /* closed for a back-off; re-listen later */
    unsigned handles_open;
    uint64_t fd_limit; /* RLIMIT_NOFILE at start, 0 if unlimited */
    uint64_t last_warning_ms;
};

/* Splits "host:port", "[v6]:port" or ":port"; host is "" for all interfaces. */
static int parse_addr(const char *addr, char *host, size_t host_len, int *port)
{
    const char *colon;
    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');
        if (close == NULL || close[1] != ':')
            return HS_EINVAL;
        size_t len = (size_t)(close - addr - 1);
        if (len >= host_len)
            return HS_EINVAL;
        memcpy(host, addr + 1, len);
        host[len] = '\0';
        colon = close + 1;
    } else {
        colon = strrchr(addr, ':');
        if (colon == NULL)
            return HS_EINVAL;
        size_t len = (size_t)(colon - addr);
        if (len >= host_len)
            return HS_EINVAL;
        memcpy(host, addr, len);
        host[len] = '\0';
    }
    char *end;
    long value = strtol(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || value < 0 || value > 65535)
        return HS_EINVAL;
    *port = (int)value;
    return 0;
}

/* True at most once per WARN_INTERVAL_MS, so a storm logs a few lines. */
static bool warn_allowed(hs_listener_t *l)
{
    uint64_t now = uv_now(l->net->loop);
    if (l->last_warning_ms != 0 && now - l->last_warning_ms < WARN_INTERVAL_MS)
        return false;
    l->last_warning_ms = now;
    return true;
}

/* Connections past the descriptor limit are dropped; say so before. */
static void warn_near_fd_limit(hs_listener_t *l)
{
    size_t count = hs_net_conn_count(l->net);
    if (l->fd_limit == 0 || count + 32 < l->fd_limit || !warn_allowed(l))
        return;
    hs_log_warn("net: %zu connections, close to the limit of %llu open file descriptors", count,
                (unsigned long long)l->fd_limit);
}

static void listener_handle_closed_cb(uv_handle_t *handle);
static int start_listening(hs_listener_t *l);

static void backoff_cb(uv_timer_t *timer)
{
    hs_listener_t *l = timer->data;
    int rc = start_listening(l);
    if (rc == 0) {
        hs_log_info("net: accepting again on port %d", l->port);
        return;
    }
    if (warn_allowed(l))
        hs_log_warn("net: cannot listen again on port %d: %s; retrying", l->port, uv_strerror(rc));
    uv_timer_start(&l->backoff, backoff_cb, EMFILE_BACKOFF_MS, 0);
}

/* Stops polling and closes the listening socket (l->listening is false). */
static void stop_listening(hs_listener_t *l)
{
    uv_close((uv_handle_t *)&l->poll, listener_handle_closed_cb);
    close(l->fd);
    l->fd = -1;
}

/* Out of descriptors: the waiting connection cannot be accepted, and the
 * socket would stay readable, in a loop. So the listening socket is closed
 * and bound again (same address, same port) after a pause; meanwhile
 * connections are refused, and those waiting in the backlog are reset. */
static void back_off(hs_listener_t *l, int status)
{
    if (warn_allowed(l))
        hs_log_warn("net: accept on port %d failed: %s; pausing for %d ms", l->port,
                    uv_strerror(status), EMFILE_BACKOFF_MS);
    l->listening = false;
    l->backing_off = true;
    stop_listening(l);
}

void hs_listener__simulate_emfile(hs_listener_t *l)
{
    if (l->listening)
        back_off(l, UV_EMFILE);
}

static void new_connection(hs_listener_t *l, int fd, const struct sockaddr *peer)
{
    hs_conn_t *conn = hs_conn__new(l->net, fd);
    if (conn == NULL) {
        close(fd);
        return;
    }
    /* The handshake starts with the first bytes read; the protocol above
     * sees only plaintext, from the same on_read. */
    if (l->tls && (conn->tls = hs_tls__conn_new(l->tls, conn)) == NULL) {
        hs_conn_close(conn);
        return;
    }
    hs_conn__start(conn, peer);
    warn_near_fd_limit(l);
    l->cb(l, conn);
}

static void accept_cb(uv_poll_t *handle, int status, int events)
{
    (void)events;
    hs_listener_t *l = handle->data;
    if (status < 0) {
        /* libuv stopped the poll (an error on the socket): open it again
         * after the pause. */
        if (l->listening)
            back_off(l, status);
        return;
    }
    /* The accepted callback may close the listener: l stays valid until
     * its close callbacks, and l->listening says to stop. */
    for (int i = 0; i < ACCEPTS_PER_EVENT && l->listening; i++) {
        struct sockaddr_storage peer;
        socklen_t len = sizeof(peer);
        int fd = accept4(l->fd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            new_connection(l, fd, (const struct sockaddr *)&peer);
            continue;
        }
        int err = errno;
        if (err == EINTR || err == ECONNABORTED)
            continue; /* a client that reset while it waited */
        if (err == EAGAIN || err == EWOULDBLOCK)
            return;
        if (err == EMFILE || err == ENFILE)
            back_off(l, -err);
        else if (warn_allowed(l))
            hs_log_warn("net: accept on port %d failed: %s", l->port, strerror(err));
        return;
    }
}

static void listener_handle_closed_cb(uv_handle_t *handle)
{
    hs_listener_t *l = handle->data;
    if (--l->handles_open == 0) {
        hs_free(l);
        return;
    }
    /* The poll was closed for a back-off; the timer re-opens it. */
    if (handle == (uv_handle_t *)&l->poll && l->backing_off && !l->closing) {
        l->backing_off = false;
        uv_timer_start(&l->backoff, backoff_cb, EMFILE_BACKOFF_MS, 0);
    }
}

static socklen_t addr_len(const struct sockaddr_storage *ss)
{
    return ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

/* A socket bound to l->addr and listening, or -errno (libuv's codes). As
 * libuv binds: SO_REUSEADDR (a restart does not wait for TIME_WAIT), and
 * IPv6 sockets accept IPv4 too. */
static int open_socket(hs_listener_t *l)
{
    int fd = socket(l->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int on = 1, off = 0;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
        (l->addr.ss_family == AF_INET6 &&
         setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off)) != 0) ||
        bind(fd, (const struct sockaddr *)&l->addr, addr_len(&l->addr)) != 0 ||
        listen(fd, BACKLOG) != 0) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    return fd;
}

/* Opens, binds and listens on l->addr, and polls the socket. On failure
 * nothing stays open (and handles_open stays right). */
static int start_listening(hs_listener_t *l)
{
    int fd = open_socket(l);
    if (fd < 0)
        return fd;
    int rc = uv_poll_init_socket(l->net->loop, &l->poll, fd);
    if (rc != 0) {
        close(fd);
        return rc;
    }
    l->poll.data = l;
    l->handles_open++;
    l->fd = fd;
    rc = uv_poll_start(&l->poll, UV_READABLE, accept_cb);
    if (rc != 0) {
        /* Closed without a restart (backing_off is false): the caller
         * decides what follows. */
        l->listening = false;
        stop_listening(l);
        return rc;
    }
    l->listening = true;
    return 0;
}

/* A listener bound to sa, or an error (the failed listener is released). */
static int listen_on(hs_net_t *net, const struct sockaddr_storage *sa, hs_accept_cb cb, void *data,
                     hs_listener_t **out)
{
    hs_listener_t *l = hs_calloc(1, sizeof(*l));
    l->net = net;
    l->tls = net->tls;
    l->cb = cb;
    l->data = data;
    l->fd = -1;
    memcpy(&l->addr, sa, addr_len(sa));
    uv_timer_init(net->loop, &l->backoff);
    l->backoff.data = l;
    l->handles_open = 1;
    struct rlimit lim;
    if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY)
        l->fd_limit = (uint64_t)lim.rlim_cur;
    int rc = start_listening(l);
    if (rc != 0) {
        l->closing = true;
        uv_close((uv_handle_t *)&l->backoff, listener_handle_closed_cb);
        return rc;
    }
    /* Keep the actual port (port 0 asks the kernel for one) so a back-off
     * binds the same port again. */
    socklen_t len = sizeof(l->addr);
    getsockname(l->fd, (struct sockaddr *)&l->addr, &len);
    l->port = ntohs(l->addr.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&l->addr)->sin6_port
                                                  : ((struct sockaddr_in *)&l->addr)->sin_port);
    *out = l;
    return 0;
}

int hs_listener_start(hs_net_t *net, const char *addr, hs_accept_cb cb, void *data,
                      hs_listener_t **out)
{
    char host[256];
    int port;
    if (parse_addr(addr, host, sizeof(host), &port) != 0)
        return HS_EINVAL;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (host[0] == '\0' || strcmp(host, "*") == 0) {
        /* All interfaces: IPv6 with IPV6_V6ONLY off (open_socket clears it) accepts IPv4 too, so
         * "localhost" works whichever family a client tries first. */
        uv_ip6_addr("::", port, (struct sockaddr_in6 *)&ss);
        int rc = listen_on(net, &ss, cb, data, out);
        if (rc != UV_EAFNOSUPPORT && rc != UV_EADDRNOTAVAIL)
            return rc;
        memset(&ss, 0, sizeof(ss));
        uv_ip4_addr("0.0.0.0", port, (struct sockaddr_in *)&ss);
        return listen_on(net, &ss, cb, data, out);
    }
    const char *ip = strcmp(host, "localhost") == 0 ? "127.0.0.1" : host;
    if (uv_ip4_addr(ip, port, (struct sockaddr_in *)&ss) != 0) {
        memset(&ss, 0, sizeof(ss));
        if (uv_ip6_addr(ip, port, (struct sockaddr_in6 *)&ss) != 0)
            return HS_EINVAL;
    }
    return listen_on(net, &ss, cb, data, out);
}

void *hs_listener_data(hs_listener_t *l)
{
    return l->data;
}

int hs_listener_port(hs_listener_t *l)
{
    return l->port;
}

void hs_listener_close(hs_listener_t *l)
{
    if (l->closing)
        return;
    l->closing = true;
    uv_timer_stop(&l->backoff);
    uv_close((uv_handle_t *)&l->backoff, listener_handle_closed_cb);
    if (l->listening) {
        l->listening = false;
        stop_listening(l);
    }
}
