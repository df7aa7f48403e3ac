/* listener.c - listening sockets: address parsing, dual-stack binding, and
 * accepting with a back-off when the process runs out of descriptors. */
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/log.h"
#include "net/net_internal.h"

#define BACKLOG           1024
#define EMFILE_BACKOFF_MS 100

struct hs_listener {
    uv_tcp_t tcp;
    hs_net_t *net;
    hs_accept_cb cb;
    void *data;
    int port;
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

/* libuv handles running out of descriptors by itself: it accepts the
 * waiting connections with a reserved descriptor and closes them at once, so
 * the loop does not spin, and our callback does not even hear of it. So we
 * warn when the connections come close to the limit, at most every 5 s. */
static void warn_near_fd_limit(hs_listener_t *l)
{
    size_t count = hs_net_conn_count(l->net);
    if (l->fd_limit == 0 || count + 32 < l->fd_limit)
        return;
    uint64_t now = uv_now(l->net->loop);
    if (l->last_warning_ms == 0 || now - l->last_warning_ms > 5000) {
        hs_log_warn("net: %zu connections, close to the limit of %llu open file descriptors; "
                    "connections beyond it are dropped",
                    count, (unsigned long long)l->fd_limit);
        l->last_warning_ms = now;
    }
}

static void connection_cb(uv_stream_t *server, int status)
{
    hs_listener_t *l = server->data;
    if (status < 0) {
        /* Out of descriptors: libuv's reserve-descriptor trick accepts and
         * closes the waiting connections, so the loop does not spin on a
         * listening socket that stays readable; we only warn, at most
         * every 5 s. */
        uint64_t now = uv_now(l->net->loop);
        if (l->last_warning_ms == 0 || now - l->last_warning_ms > 5000) {
            hs_log_warn("net: accept failed: %s", uv_strerror(status));
            l->last_warning_ms = now;
        }
        return;
    }
    hs_conn_t *conn = hs_conn__new(l->net);
    if (uv_accept(server, (uv_stream_t *)&conn->tcp) != 0 || hs_conn__start(conn) != 0) {
        hs_conn_close(conn);
        return;
    }
    warn_near_fd_limit(l);
    l->cb(l, conn);
}

static void listener_closed_cb(uv_handle_t *handle)
{
    hs_free(handle->data);
}

/* A listener bound to sa, or an error (the failed listener is released). */
static int listen_on(hs_net_t *net, const struct sockaddr *sa, hs_accept_cb cb, void *data,
                     hs_listener_t **out)
{
    hs_listener_t *l = hs_calloc(1, sizeof(*l));
    l->net = net;
    l->cb = cb;
    l->data = data;
    uv_tcp_init(net->loop, &l->tcp);
    l->tcp.data = l;
    struct rlimit lim;
    if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY)
        l->fd_limit = (uint64_t)lim.rlim_cur;
    int rc = uv_tcp_bind(&l->tcp, sa, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&l->tcp, BACKLOG, connection_cb);
    if (rc != 0) {
        uv_close((uv_handle_t *)&l->tcp, listener_closed_cb);
        return rc;
    }
    struct sockaddr_storage bound;
    int len = sizeof(bound);
    uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&bound, &len);
    l->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                : ((struct sockaddr_in *)&bound)->sin_port);
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
    if (host[0] == '\0' || strcmp(host, "*") == 0) {
        /* All interfaces: IPv6 with IPV6_V6ONLY off accepts IPv4 too, so
         * "localhost" works whichever family a client tries first. */
        struct sockaddr_in6 sa6;
        uv_ip6_addr("::", port, &sa6);
        int rc = listen_on(net, (const struct sockaddr *)&sa6, cb, data, out);
        if (rc != UV_EAFNOSUPPORT && rc != UV_EADDRNOTAVAIL)
            return rc;
        struct sockaddr_in sa4;
        uv_ip4_addr("0.0.0.0", port, &sa4);
        return listen_on(net, (const struct sockaddr *)&sa4, cb, data, out);
    }
    struct sockaddr_storage ss;
    const char *ip = strcmp(host, "localhost") == 0 ? "127.0.0.1" : host;
    if (uv_ip4_addr(ip, port, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(ip, port, (struct sockaddr_in6 *)&ss) != 0)
        return HS_EINVAL;
    return listen_on(net, (const struct sockaddr *)&ss, cb, data, out);
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
    uv_close((uv_handle_t *)&l->tcp, listener_closed_cb);
}
