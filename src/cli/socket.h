/* socket.h - blocking TCP for the command line client.
 *
 * The client is a short-lived program with one or two connections, so it
 * uses plain blocking sockets with deadlines instead of an event loop.
 * EINTR is not retried by hs_cli_socket_wait: a signal handler that sets a
 * flag gets control back promptly.
 */
#ifndef HS_CLI_SOCKET_H
#define HS_CLI_SOCKET_H

#include <stddef.h>
#include <sys/types.h>

/* Connects to host:port (every address getaddrinfo returns, in order),
 * waiting at most timeout_ms per address. Returns a connected descriptor, or
 * a negative HS_E* code with the reason in err. */
int hs_cli_socket_connect(const char *host, const char *port, int timeout_ms, char *err,
                          size_t err_len);
/* Writes all len bytes; retries partial writes and EINTR. 0 or HS_EIO. */
int hs_cli_socket_send_all(int fd, const void *data, size_t len);
/* Waits up to timeout_ms (-1: forever) for fd to be readable. Returns 1 when
 * readable, 0 on timeout or when a signal interrupted the wait, HS_EIO on
 * error. */
int hs_cli_socket_wait(int fd, int timeout_ms);
/* One recv with a deadline: > 0 bytes read, 0 at end of stream, HS_EAGAIN
 * when nothing arrived within timeout_ms (or a signal came), HS_EIO on
 * error. */
ssize_t hs_cli_socket_recv(int fd, void *buf, size_t cap, int timeout_ms);

#endif
