/* stream.h - one connection of the command line client, plain TCP or TLS
 * (https://, wss://), blocking with deadlines.
 *
 * TLS is OpenSSL's, version 1.2 or later. The server's certificate is
 * verified against the system's trust store (or --ca-file, which then
 * replaces it) and must name the host of the URL (a DNS name, or an IP
 * address in its subjectAltName). --insecure skips both checks, and says so
 * on stderr once per process. A failed verification is an error naming the
 * reason and the two flags.
 *
 * The TLS context (trust store loaded, verification mode) is built at the
 * first TLS connection and shared by the later ones of the process: the
 * tls options must be the same for every call (they are the command
 * line's). Not thread-safe; the CLI has one thread.
 */
#ifndef HS_CLI_STREAM_H
#define HS_CLI_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "cli/url.h"

typedef struct hs_cli_tls_options {
    const char *ca_file; /* PEM CA certificates; NULL: the system store */
    bool insecure;       /* no certificate or host name check */
} hs_cli_tls_options_t;

typedef struct hs_cli_stream hs_cli_stream_t;

/* Connects to url's host and port and, when url->tls, completes the TLS
 * handshake; all within timeout_ms per step. tls may be NULL (defaults).
 * On 0 *out is owned by the caller (hs_cli_stream_free); otherwise a
 * negative HS_E* code and a one-line reason in err. */
int hs_cli_stream_open(const hs_cli_url_t *url, const hs_cli_tls_options_t *tls, int timeout_ms,
                       hs_cli_stream_t **out, char *err, size_t err_len);
/* Writes all len bytes. 0 or HS_EIO. */
int hs_cli_stream_send_all(hs_cli_stream_t *stream, const void *data, size_t len);
/* One read with a deadline, as hs_cli_socket_recv: > 0 bytes, 0 at the end
 * of the stream, HS_EAGAIN on timeout or when a signal came, HS_EIO. */
ssize_t hs_cli_stream_recv(hs_cli_stream_t *stream, void *buf, size_t cap, int timeout_ms);
/* Ends the sending side: TLS close_notify, then shutdown(2). */
void hs_cli_stream_shutdown(hs_cli_stream_t *stream);
void hs_cli_stream_free(hs_cli_stream_t *stream);

#endif
