/* stream.c - the client's connections: a plain socket, or OpenSSL over a
 * non-blocking one so that every wait keeps its deadline. */
#include "cli/stream.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli/output.h"
#include "cli/socket.h"
#include "core/alloc.h"
#include "core/error.h"

/* A handshake or a write that makes no progress for this long fails. */
#define TLS_STEP_TIMEOUT_MS 30000

struct hs_cli_stream {
    int fd;
    SSL *ssl; /* NULL on a plain connection */
};

/* Waits for events on fd. 1 ready, 0 timeout or signal, HS_EIO. */
static int wait_fd(int fd, short events, int timeout_ms)
{
    struct pollfd pfd = {.fd = fd, .events = events};
    int rc = poll(&pfd, 1, timeout_ms);
    if (rc < 0)
        return errno == EINTR ? 0 : HS_EIO;
    return rc > 0 ? 1 : 0;
}

/* After an SSL call returned n <= 0: waits for what OpenSSL needs. 1 to
 * retry, 0 on timeout or signal, a negative code when the call failed. */
static int tls_wait(hs_cli_stream_t *s, int n, int timeout_ms)
{
    switch (SSL_get_error(s->ssl, n)) {
    case SSL_ERROR_WANT_READ:
        return wait_fd(s->fd, POLLIN, timeout_ms);
    case SSL_ERROR_WANT_WRITE:
        return wait_fd(s->fd, POLLOUT, timeout_ms);
    case SSL_ERROR_ZERO_RETURN:
        return HS_ECLOSED;
    default:
        return HS_EIO;
    }
}

static void openssl_reason(char *out, size_t cap)
{
    unsigned long code = ERR_peek_last_error();
    if (code == 0) {
        snprintf(out, cap, "the connection ended during the handshake");
        return;
    }
    const char *reason = ERR_reason_error_string(code);
    snprintf(out, cap, "%s", reason ? reason : "unknown error");
    ERR_clear_error();
}

/* One context per process: loading the system's trust store costs about
 * 35 ms of CPU, and `sub` opens three connections or more. The options are
 * the command line's, the same for every connection of the process. */
static SSL_CTX *shared_ctx;

static void free_shared_ctx(void)
{
    SSL_CTX_free(shared_ctx);
    shared_ctx = NULL;
}

static int shared_context(const hs_cli_url_t *url, const hs_cli_tls_options_t *tls, char *err,
                          size_t err_len)
{
    if (shared_ctx)
        return 0;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* A server that closes without close_notify still ended the stream. */
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    if (tls->insecure) {
        hs_cli_error("warning: --insecure: the server's certificate is not verified; anyone "
                     "on the way to %s can read and change this connection",
                     url->authority);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        if (tls->ca_file) {
            if (access(tls->ca_file, R_OK) != 0 ||
                SSL_CTX_load_verify_locations(ctx, tls->ca_file, NULL) != 1) {
                char reason[200];
                if (access(tls->ca_file, R_OK) != 0)
                    snprintf(reason, sizeof(reason), "%s", strerror(errno));
                else
                    openssl_reason(reason, sizeof(reason));
                snprintf(err, err_len, "--ca-file: cannot use \"%s\": %s", tls->ca_file, reason);
                SSL_CTX_free(ctx);
                return HS_EINVAL;
            }
        } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
            snprintf(err, err_len, "cannot load the system's trusted certificates");
            SSL_CTX_free(ctx);
            return HS_EIO;
        }
    }
    const unsigned char alpn[] = "\x08http/1.1";
    SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn) - 1);
    shared_ctx = ctx;
    atexit(free_shared_ctx);
    return 0;
}

static int tls_setup(hs_cli_stream_t *s, const hs_cli_url_t *url, const hs_cli_tls_options_t *tls,
                     char *err, size_t err_len)
{
    int rc = shared_context(url, tls, err, err_len);
    if (rc != 0)
        return rc;
    s->ssl = SSL_new(shared_ctx);
    SSL_set_fd(s->ssl, s->fd);
    unsigned char ip[16];
    bool is_ip = inet_pton(AF_INET, url->host, ip) == 1 || inet_pton(AF_INET6, url->host, ip) == 1;
    if (is_ip) {
        /* An address is checked against the certificate's IP entries. */
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s->ssl), url->host);
    } else {
        SSL_set_tlsext_host_name(s->ssl, url->host);
        SSL_set1_host(s->ssl, url->host);
    }
    return 0;
}

static int tls_handshake(hs_cli_stream_t *s, const hs_cli_url_t *url, int timeout_ms, char *err,
                         size_t err_len)
{
    for (;;) {
        ERR_clear_error();
        int n = SSL_connect(s->ssl);
        if (n == 1)
            return 0;
        int rc = tls_wait(s, n, timeout_ms);
        if (rc == 1)
            continue;
        long verify = SSL_get_verify_result(s->ssl);
        if (rc == 0) {
            snprintf(err, err_len, "the TLS handshake with %s did not finish within %d s",
                     url->authority, timeout_ms / 1000);
        } else if (verify != X509_V_OK) {
            snprintf(err, err_len,
                     "the certificate of %s was not accepted: %s (for a private CA give "
                     "--ca-file FILE; --insecure skips the check)",
                     url->authority, X509_verify_cert_error_string(verify));
        } else {
            char reason[200];
            openssl_reason(reason, sizeof(reason));
            snprintf(err, err_len, "the TLS handshake with %s failed: %s (does it speak %s://?)",
                     url->authority, reason, url->scheme);
        }
        return HS_EPROTO;
    }
}

int hs_cli_stream_open(const hs_cli_url_t *url, const hs_cli_tls_options_t *tls, int timeout_ms,
                       hs_cli_stream_t **out, char *err, size_t err_len)
{
    *out = NULL;
    static const hs_cli_tls_options_t defaults = {0};
    int fd = hs_cli_socket_connect(url->host, url->port, timeout_ms, err, err_len);
    if (fd < 0)
        return fd;
    hs_cli_stream_t *s = hs_calloc(1, sizeof(*s));
    s->fd = fd;
    if (!url->tls) {
        *out = s;
        return 0;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    int rc = tls_setup(s, url, tls ? tls : &defaults, err, err_len);
    if (rc == 0)
        rc = tls_handshake(s, url, timeout_ms, err, err_len);
    if (rc != 0) {
        hs_cli_stream_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

int hs_cli_stream_send_all(hs_cli_stream_t *s, const void *data, size_t len)
{
    if (s->ssl == NULL)
        return hs_cli_socket_send_all(s->fd, data, len);
    const char *p = data;
    while (len > 0) {
        ERR_clear_error();
        int n = SSL_write(s->ssl, p, len > 1u << 30 ? 1 << 30 : (int)len);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (tls_wait(s, n, TLS_STEP_TIMEOUT_MS) != 1)
            return HS_EIO;
    }
    return 0;
}

ssize_t hs_cli_stream_recv(hs_cli_stream_t *s, void *buf, size_t cap, int timeout_ms)
{
    if (s->ssl == NULL)
        return hs_cli_socket_recv(s->fd, buf, cap, timeout_ms);
    for (;;) {
        ERR_clear_error();
        int n = SSL_read(s->ssl, buf, cap > 1u << 30 ? 1 << 30 : (int)cap);
        if (n > 0)
            return n;
        int rc = tls_wait(s, n, timeout_ms);
        if (rc == 1)
            continue; /* a record not complete yet, or a session ticket */
        if (rc == 0)
            return HS_EAGAIN;
        return rc == HS_ECLOSED ? 0 : HS_EIO;
    }
}

void hs_cli_stream_shutdown(hs_cli_stream_t *s)
{
    if (s->ssl)
        SSL_shutdown(s->ssl); /* our close_notify; the peer's is not awaited */
    shutdown(s->fd, SHUT_RDWR);
}

void hs_cli_stream_free(hs_cli_stream_t *s)
{
    if (s == NULL)
        return;
    SSL_free(s->ssl);
    close(s->fd);
    hs_free(s);
}
