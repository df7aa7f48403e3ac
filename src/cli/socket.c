/* socket.c - blocking TCP with deadlines. */
#include "cli/socket.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/error.h"

/* Non-blocking connect, then poll for the deadline; the descriptor goes
 * back to blocking mode once connected. */
static int connect_one(const struct addrinfo *ai, int timeout_ms, int *error)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
        *error = errno;
        return -1;
    }
    int flags = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    int rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        do
            rc = poll(&pfd, 1, timeout_ms);
        while (rc < 0 && errno == EINTR);
        if (rc == 0) {
            *error = ETIMEDOUT;
            goto fail;
        }
        socklen_t len = sizeof(*error);
        *error = 0;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, error, &len);
        if (*error != 0)
            goto fail;
    } else if (rc != 0) {
        *error = errno;
        goto fail;
    }
    fcntl(fd, F_SETFL, flags);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
fail:
    close(fd);
    return -1;
}

int hs_cli_socket_connect(const char *host, const char *port, int timeout_ms, char *err,
                          size_t err_len)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *list = NULL;
    int rc = getaddrinfo(host, port, &hints, &list);
    if (rc != 0) {
        snprintf(err, err_len, "cannot resolve %s: %s", host, gai_strerror(rc));
        return HS_EIO;
    }
    int error = 0, fd = -1;
    for (const struct addrinfo *ai = list; ai && fd < 0; ai = ai->ai_next)
        fd = connect_one(ai, timeout_ms, &error);
    freeaddrinfo(list);
    if (fd < 0) {
        snprintf(err, err_len, "cannot connect to %s port %s: %s", host, port, strerror(error));
        return HS_EIO;
    }
    return fd;
}

int hs_cli_socket_send_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return HS_EIO;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int hs_cli_socket_wait(int fd, int timeout_ms)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int rc = poll(&pfd, 1, timeout_ms);
    if (rc < 0)
        return errno == EINTR ? 0 : HS_EIO;
    return rc > 0 ? 1 : 0;
}

ssize_t hs_cli_socket_recv(int fd, void *buf, size_t cap, int timeout_ms)
{
    int ready = hs_cli_socket_wait(fd, timeout_ms);
    if (ready < 0)
        return HS_EIO;
    if (ready == 0)
        return HS_EAGAIN;
    ssize_t n;
    do
        n = recv(fd, buf, cap, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == ECONNRESET ? 0 : HS_EIO;
    return n;
}
