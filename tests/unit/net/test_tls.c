/* TLS, server side (src/net/tls.c behind hs_net), on a real loop and real
 * loopback sockets, against a real OpenSSL client.
 *
 * The certificates are made here (EC P-256, self-signed, in a temporary
 * directory removed at the end). The client runs in a thread of its own with
 * a blocking socket and two memory BIOs, so the test decides what goes on
 * the wire and when: its Finished and its first data in one segment, half a
 * ClientHello, a reset at a chosen point, a KeyUpdate in the middle of a
 * transfer, a record that does not decrypt while the server writes. It
 * never asserts (cmocka's asserts belong to the main thread): it writes what
 * it saw into the fixture, which the main thread checks after joining it.
 * The loop thread checks what the server saw.
 *
 * Covered: handshake and echo both ways (TLS 1.3 and 1.2, data sent with the
 * client's Finished, ALPN); 8 MiB of flat buffers and vectors of odd sizes
 * through a small server send buffer to a client that starts reading late
 * and asks for a key update on the way (whole, in order, the queue empty at
 * on_drain); a bad record while ciphertext is in flight (that ciphertext,
 * then the alert, in order); thousands of small sends of one
 * iteration encrypted into a few records; plaintext queued before the
 * handshake, and data that comes with the peer's close_notify (delivered,
 * then EOF); close after flush (all the data, then close_notify) and before
 * the handshake; a plain HTTP client and a TLS 1.2 client on a 1.3-only
 * context (closed, nothing delivered); resets in the handshake and in a
 * transfer (closed once); a wave of TLS and plain connections with flush
 * helpers on; a certificate reload; the context's errors. Each scenario has
 * a deadline and the loop must close with no handle left (no leak). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "net/net_internal.h"

#define DEADLINE_MS    20000
#define BIG_BYTES      (8u * 1024 * 1024)
#define FLUSH_BYTES    (2u * 1024 * 1024)
#define SMALL_SENDS    3000
#define POOL_TLS       160
#define POOL_PLAIN     160
#define POOL_CONNS     (POOL_TLS + POOL_PLAIN)
#define POOL_BYTES     (80u * 1024) /* past HS_NET_FANOUT_BEHIND: one wave */
#define ECHO_BYTES     (200u * 1024)
#define SERVER_SNDBUF  (64 * 1024) /* the kernel doubles it */
#define RESET_AFTER    (256u * 1024)
#define KEY_UPDATE_AT  (1024u * 1024)
#define CLIENT_TIMEOUT 20 /* s: a blocking socket call gives up after this */

_Static_assert(POOL_BYTES >= HS_NET_FANOUT_BEHIND, "the pool scenario needs a wave behind");

enum {
    S_ECHO,
    S_BIG,
    S_SMALL,
    S_EARLY,
    S_EARLY_CLOSE,
    S_CLOSE_AFTER_FLUSH,
    S_PLAIN_HTTP,
    S_OLD_VERSION,
    S_RESET_HANDSHAKE,
    S_RESET_TRANSFER,
    S_BAD_RECORD,
    S_POOL,
    S_RELOAD,
};

/* How the client's reading ended. */
enum { END_NONE = 1, END_CLOSE_NOTIFY = 0, END_EOF = -1, END_ERROR = -2 };

static char cert_dir[64];
static char cert_file[2][128], key_file[2][128];

typedef struct fixture {
    int scenario;
    int variant; /* S_ECHO: the client's highest version; S_RESET_HANDSHAKE: where */
    uv_loop_t loop;
    hs_net_t *net;
    hs_tls_t *tls;
    hs_listener_t *listener, *plain_listener;
    uv_timer_t deadline, check;
    uv_async_t client_done;
    bool ended, timed_out, client_finished;
    int expected_conns;
    /* the server's side (loop thread) */
    hs_conn_t *conns[POOL_CONNS];
    bool alive[POOL_CONNS];
    int close_count[POOL_CONNS];
    int accepts, closes, eofs, eof_status, reads, readies, drains_after_burst;
    bool burst_sent, drained_clean;
    char *received; /* plaintext the server got on connection 0 */
    size_t received_len;
    size_t max_pending_seen;
    uint64_t write_calls_before, burst_write_calls;
    size_t pool_batch_cap;
    /* shared with the client thread */
    atomic_bool server_writing; /* connection 0 waited for a writable socket */
    atomic_bool server_failed;  /* connection 0's TLS session failed */
    atomic_bool accepted;
    int port, plain_port; /* set before the thread starts */
    pthread_t thread;
    /* the client's findings (read after the join) */
    char client_err[256];
    char *got; /* plaintext the client got on its (first) connection */
    size_t got_len;
    int end;
    size_t records_before, records_after; /* TLS records received */
    char version[16], alpn[16], peer_cn[2][64];
    char handshake_error[256];
    char read_error[256]; /* OpenSSL's reason when reading failed */
    int pool_ok;
} fixture_t;

static fixture_t *fx;

/* What the server sends on a burst: byte i of a stream is a hash of i, so a
 * lost, doubled or moved byte shows. */
static uint8_t pattern(size_t pos)
{
    uint32_t x = (uint32_t)pos * 2654435761u;
    return (uint8_t)(x >> 24);
}

static hs_buf_t *pattern_buf(size_t from, size_t len)
{
    hs_buf_t *buf = hs_buf_new(len);
    for (size_t i = 0; i < len; i++)
        buf->data[i] = (char)pattern(from + i);
    buf->len = len;
    return buf;
}

static bool is_pattern(const char *data, size_t from, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((uint8_t)data[i] != pattern(from + i))
            return false;
    return true;
}

/* ---- the certificates ------------------------------------------------------- */

static void write_cert(const char *cn, const char *cert_path, const char *key_path)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    assert_non_null(key);
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, name);
    assert_true(X509_sign(x, key, EVP_sha256()) > 0);
    FILE *f = fopen(cert_path, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_X509(f, x), 1);
    fclose(f);
    f = fopen(key_path, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);
    X509_free(x);
    EVP_PKEY_free(key);
}

static int make_certs(void **state)
{
    (void)state;
    snprintf(cert_dir, sizeof(cert_dir), "/tmp/hs-test-tls-XXXXXX");
    assert_non_null(mkdtemp(cert_dir));
    const char *names[2] = {"houston-test-one", "houston-test-two"};
    for (int i = 0; i < 2; i++) {
        snprintf(cert_file[i], sizeof(cert_file[i]), "%s/cert%d.pem", cert_dir, i);
        snprintf(key_file[i], sizeof(key_file[i]), "%s/key%d.pem", cert_dir, i);
        write_cert(names[i], cert_file[i], key_file[i]);
    }
    return 0;
}

static int remove_certs(void **state)
{
    (void)state;
    for (int i = 0; i < 2; i++) {
        unlink(cert_file[i]);
        unlink(key_file[i]);
    }
    rmdir(cert_dir);
    return 0;
}

/* ---- the client (its own thread) ---------------------------------------------- */

typedef struct tclient {
    int fd;
    SSL *ssl;
    BIO *rbio, *wbio;
    /* the records seen in what was received */
    size_t records;
    unsigned char hdr[5];
    size_t hdr_have, body_left;
} tclient_t;

static void client_fail(const char *what)
{
    if (fx->client_err[0] == '\0') {
        char reason[128] = "";
        unsigned long e = ERR_peek_last_error();
        if (e)
            ERR_error_string_n(e, reason, sizeof(reason));
        snprintf(fx->client_err, sizeof(fx->client_err), "%s (errno %d, %s)", what, errno, reason);
    }
}

static bool wait_flag(atomic_bool *flag)
{
    struct timespec start, now, nap = {.tv_nsec = 1000000};
    clock_gettime(CLOCK_MONOTONIC, &start);
    while (!atomic_load(flag)) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        if ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000 >
            DEADLINE_MS)
            return false;
        nanosleep(&nap, NULL);
    }
    return true;
}

static SSL_CTX *client_ctx(int max_version)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (max_version)
        SSL_CTX_set_max_proto_version(ctx, max_version);
    /* h2 first: the server must pick http/1.1 all the same. */
    SSL_CTX_set_alpn_protos(ctx, (const unsigned char *)"\x02h2\x08http/1.1", 12);
    return ctx;
}

static int tcp_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = {.tv_sec = CLIENT_TIMEOUT};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* ctx NULL: a plain TCP client. */
static bool tc_open(tclient_t *c, SSL_CTX *ctx, int port)
{
    memset(c, 0, sizeof(*c));
    c->fd = tcp_connect(port);
    if (c->fd < 0) {
        client_fail("connect");
        return false;
    }
    if (ctx) {
        c->ssl = SSL_new(ctx);
        c->rbio = BIO_new(BIO_s_mem());
        c->wbio = BIO_new(BIO_s_mem());
        SSL_set_bio(c->ssl, c->rbio, c->wbio);
        SSL_set_connect_state(c->ssl);
        SSL_set_tlsext_host_name(c->ssl, "localhost");
    }
    return true;
}

static void tc_close(tclient_t *c)
{
    SSL_free(c->ssl);
    c->ssl = NULL;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

/* Closes with a reset (RST) instead of a FIN. */
static void tc_reset(tclient_t *c)
{
    struct linger linger = {.l_onoff = 1, .l_linger = 0};
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &linger, sizeof(linger));
    tc_close(c);
}

static bool send_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

/* Sends what OpenSSL wrote, in one send() when it fits. */
static bool tc_flush(tclient_t *c)
{
    char buf[64 * 1024];
    int n;
    while ((n = BIO_read(c->wbio, buf, sizeof(buf))) > 0)
        if (!send_all(c->fd, buf, (size_t)n))
            return false;
    return true;
}

static void count_records(tclient_t *c, const unsigned char *p, size_t n)
{
    while (n > 0) {
        if (c->body_left > 0) {
            size_t take = n < c->body_left ? n : c->body_left;
            c->body_left -= take;
            p += take;
            n -= take;
            continue;
        }
        c->hdr[c->hdr_have++] = *p++;
        n--;
        if (c->hdr_have == 5) {
            c->records++;
            c->body_left = (size_t)c->hdr[3] << 8 | c->hdr[4];
            c->hdr_have = 0;
        }
    }
}

/* One recv of at most max bytes into the read BIO: >0, 0 at EOF, -1. */
static int tc_fill(tclient_t *c, size_t max)
{
    unsigned char buf[16 * 1024];
    if (max > sizeof(buf))
        max = sizeof(buf);
    ssize_t n;
    do
        n = recv(c->fd, buf, max, 0);
    while (n < 0 && errno == EINTR);
    if (n <= 0)
        return n == 0 ? 0 : -1;
    count_records(c, buf, (size_t)n);
    BIO_write(c->rbio, buf, (int)n);
    return (int)n;
}

/* The handshake; with flush_last false the client's last flight (its
 * Finished, in TLS 1.3) stays in the BIO to go out with what follows. */
static bool tc_handshake(tclient_t *c, bool flush_last)
{
    for (;;) {
        ERR_clear_error();
        int rc = SSL_do_handshake(c->ssl);
        if (rc == 1)
            return !flush_last || tc_flush(c);
        int e = SSL_get_error(c->ssl, rc);
        int filled = 1;
        if (!tc_flush(c) || e != SSL_ERROR_WANT_READ || (filled = tc_fill(c, SIZE_MAX)) <= 0) {
            unsigned long code = ERR_peek_last_error();
            if (code)
                ERR_error_string_n(code, fx->handshake_error, sizeof(fx->handshake_error));
            else
                snprintf(fx->handshake_error, sizeof(fx->handshake_error), "%s",
                         filled == 0 ? "EOF" : "socket error");
            return false;
        }
    }
}

static bool tc_write(tclient_t *c, const void *data, size_t len)
{
    return SSL_write(c->ssl, data, (int)len) == (int)len && tc_flush(c);
}

/* Plaintext: >0 bytes, or how the stream ended (END_*). chunk: the most
 * ciphertext taken from the socket at a time. */
static int tc_read(tclient_t *c, void *buf, size_t len, size_t chunk)
{
    for (;;) {
        int n = SSL_read(c->ssl, buf, (int)len);
        if (n > 0)
            return n;
        int e = SSL_get_error(c->ssl, n);
        if (e == SSL_ERROR_ZERO_RETURN)
            return END_CLOSE_NOTIFY;
        if (e != SSL_ERROR_WANT_READ) {
            unsigned long code = ERR_peek_last_error();
            if (code)
                ERR_error_string_n(code, fx->read_error, sizeof(fx->read_error));
            return END_ERROR;
        }
        /* an answer to a key update, for one */
        if (!tc_flush(c))
            return END_ERROR;
        int r = tc_fill(c, chunk);
        if (r <= 0)
            return r == 0 ? END_EOF : END_ERROR;
    }
}

static void got_append(const char *data, size_t len)
{
    fx->got = realloc(fx->got, fx->got_len + len);
    memcpy(fx->got + fx->got_len, data, len);
    fx->got_len += len;
}

/* Reads into fx->got until the stream ends; returns how (END_*). */
static int tc_read_all(tclient_t *c, size_t chunk, size_t key_update_at)
{
    char buf[16 * 1024];
    bool updated = false;
    for (;;) {
        int n = tc_read(c, buf, sizeof(buf), chunk);
        if (n <= 0)
            return n;
        got_append(buf, (size_t)n);
        if (!updated && key_update_at && fx->got_len >= key_update_at) {
            /* Both sides change keys while the server's socket is full:
             * its KeyUpdate is written behind the ciphertext in flight. */
            updated = true;
            if (SSL_key_update(c->ssl, SSL_KEY_UPDATE_REQUESTED) != 1 ||
                SSL_do_handshake(c->ssl) != 1 || !tc_flush(c))
                client_fail("key update");
        }
    }
}

static void note_session(tclient_t *c, int slot)
{
    snprintf(fx->version, sizeof(fx->version), "%s", SSL_get_version(c->ssl));
    const unsigned char *alpn;
    unsigned alpn_len;
    SSL_get0_alpn_selected(c->ssl, &alpn, &alpn_len);
    snprintf(fx->alpn, sizeof(fx->alpn), "%.*s", (int)alpn_len, (const char *)alpn);
    X509 *cert = SSL_get0_peer_certificate(c->ssl);
    if (cert)
        X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, fx->peer_cn[slot],
                                  sizeof(fx->peer_cn[slot]));
}

static void client_echo(SSL_CTX *ctx)
{
    tclient_t c;
    if (!tc_open(&c, ctx, fx->port))
        return;
    char buf[16 * 1024];
    char *big = malloc(ECHO_BYTES);
    for (size_t i = 0; i < ECHO_BYTES; i++)
        big[i] = (char)pattern(i + 7);
    /* "hello" rides with the Finished (TLS 1.3): one segment, one read. */
    if (!tc_handshake(&c, false) || !tc_write(&c, "hello", 5)) {
        client_fail("handshake or first write");
        goto out;
    }
    note_session(&c, 0);
    while (fx->got_len < 5) {
        int n = tc_read(&c, buf, sizeof(buf), SIZE_MAX);
        if (n <= 0) {
            client_fail("reading the echo");
            goto out;
        }
        got_append(buf, (size_t)n);
    }
    if (!tc_write(&c, big, ECHO_BYTES)) {
        client_fail("writing 200 KiB");
        goto out;
    }
    while (fx->got_len < 5 + ECHO_BYTES) {
        int n = tc_read(&c, buf, sizeof(buf), SIZE_MAX);
        if (n <= 0) {
            client_fail("reading the echo of 200 KiB");
            goto out;
        }
        got_append(buf, (size_t)n);
    }
    /* Our close_notify: the server sees EOF and answers with its own. */
    SSL_shutdown(c.ssl);
    if (!tc_flush(&c))
        client_fail("sending close_notify");
    fx->end = tc_read_all(&c, SIZE_MAX, 0);
out:
    free(big);
    tc_close(&c);
}

/* "go", then everything the server sends; with slow, only once the
 * server's socket is full (its send buffer is small, see burst()). */
static void client_go_and_read(SSL_CTX *ctx, bool slow, size_t key_update_at)
{
    tclient_t c;
    if (!tc_open(&c, ctx, fx->port))
        return;
    if (!tc_handshake(&c, true)) {
        client_fail("handshake");
        goto out;
    }
    note_session(&c, 0);
    fx->records_before = c.records;
    if (!tc_write(&c, "go", 2)) {
        client_fail("writing go");
        goto out;
    }
    if (slow && !wait_flag(&fx->server_writing)) {
        client_fail("the server's socket never filled up");
        goto out;
    }
    fx->end = tc_read_all(&c, SIZE_MAX, key_update_at);
    fx->records_after = c.records;
out:
    tc_close(&c);
}

static void client_reset_transfer(SSL_CTX *ctx)
{
    tclient_t c;
    if (!tc_open(&c, ctx, fx->port))
        return;
    char buf[16 * 1024];
    if (!tc_handshake(&c, true) || !tc_write(&c, "go", 2) || !wait_flag(&fx->server_writing)) {
        client_fail("handshake, go, or a full socket");
        goto out;
    }
    while (fx->got_len < RESET_AFTER) {
        int n = tc_read(&c, buf, sizeof(buf), SIZE_MAX);
        if (n <= 0) {
            client_fail("reading before the reset");
            goto out;
        }
        got_append(buf, (size_t)n);
    }
    tc_reset(&c);
out:
    tc_close(&c);
}

/* A record that does not decrypt, sent while the server's ciphertext is
 * in flight: the server's alert must come after that ciphertext, whole.
 * This is how the test reaches tls.c's second output buffer ("next"): with
 * OpenSSL 3.0 an alert is the one thing a read writes while ciphertext waits
 * for a writable socket (the answer to a KeyUpdate waits for the next
 * SSL_write). */
static void client_bad_record(SSL_CTX *ctx)
{
    tclient_t c;
    if (!tc_open(&c, ctx, fx->port))
        return;
    unsigned char bad[5 + 32] = {0x17, 0x03, 0x03, 0x00, 0x20};
    for (size_t i = 5; i < sizeof(bad); i++)
        bad[i] = (unsigned char)(i * 37);
    if (!tc_handshake(&c, true) || !tc_write(&c, "go", 2) || !wait_flag(&fx->server_writing) ||
        !send_all(c.fd, bad, sizeof(bad)) || !wait_flag(&fx->server_failed)) {
        client_fail("handshake, go, a full socket, the bad record");
        goto out;
    }
    fx->end = tc_read_all(&c, SIZE_MAX, 0);
out:
    tc_close(&c);
}

static void client_reset_handshake(SSL_CTX *ctx)
{
    tclient_t c;
    if (!tc_open(&c, ctx, fx->port))
        return;
    SSL_do_handshake(c.ssl); /* the ClientHello, into the BIO */
    char hello[4096];
    int n = BIO_read(c.wbio, hello, sizeof(hello));
    if (n <= 10) {
        client_fail("no ClientHello");
        goto out;
    }
    if (fx->variant == 0) {
        /* Half a ClientHello: the server holds a partial record. */
        if (!send_all(c.fd, hello, (size_t)n / 2) || !wait_flag(&fx->accepted))
            client_fail("sending half a ClientHello");
    } else {
        /* The whole of it, then the server's first flight, then go. */
        if (!send_all(c.fd, hello, (size_t)n) || tc_fill(&c, SIZE_MAX) <= 0)
            client_fail("ClientHello and the server's answer");
    }
    tc_reset(&c);
out:
    tc_close(&c);
}

static void client_plain_http(void)
{
    tclient_t c;
    if (!tc_open(&c, NULL, fx->port))
        return;
    static const char req[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
    if (!send_all(c.fd, req, sizeof(req) - 1)) {
        client_fail("sending a plain request");
        goto out;
    }
    char buf[4096];
    ssize_t n;
    while ((n = recv(c.fd, buf, sizeof(buf), 0)) > 0)
        got_append(buf, (size_t)n);
    fx->end = n == 0 ? END_EOF : END_ERROR;
out:
    tc_close(&c);
}

static void client_old_version(SSL_CTX *ctx)
{
    tclient_t c;
    if (!tc_open(&c, ctx, fx->port))
        return;
    if (tc_handshake(&c, true))
        client_fail("a TLS 1.2 handshake passed a 1.3-only server");
    char buf[256];
    ssize_t n;
    while ((n = recv(c.fd, buf, sizeof(buf), 0)) > 0)
        ;
    tc_close(&c);
}

/* Some TLS connections (fan-out ones, for the server) and some plain ones,
 * all ready before the server sends to every one of them at once. */
static void client_pool(SSL_CTX *ctx)
{
    static tclient_t cs[POOL_CONNS];
    int opened = 0;
    char buf[16 * 1024];
    for (; opened < POOL_CONNS; opened++) {
        tclient_t *c = &cs[opened];
        bool tls = opened < POOL_TLS;
        if (!tc_open(c, tls ? ctx : NULL, tls ? fx->port : fx->plain_port))
            goto out;
        if (tls ? !tc_handshake(c, true) || !tc_write(c, "r", 1) : !send_all(c->fd, "r", 1)) {
            client_fail("a pool connection");
            opened++;
            goto out;
        }
    }
    for (int i = 0; i < POOL_CONNS; i++) {
        tclient_t *c = &cs[i];
        char *data = malloc(POOL_BYTES + 1);
        size_t len = 0;
        int end;
        for (;;) {
            int n;
            if (c->ssl) {
                n = tc_read(c, buf, sizeof(buf), SIZE_MAX);
            } else {
                ssize_t r = recv(c->fd, buf, sizeof(buf), 0);
                n = r > 0 ? (int)r : r == 0 ? END_EOF : END_ERROR;
            }
            if (n <= 0 || len + (size_t)n > POOL_BYTES) {
                end = n;
                break;
            }
            memcpy(data + len, buf, (size_t)n);
            len += (size_t)n;
        }
        if (len == POOL_BYTES && is_pattern(data, (size_t)i * 977, len) &&
            end == (c->ssl ? END_CLOSE_NOTIFY : END_EOF))
            fx->pool_ok++;
        free(data);
    }
out:
    for (int i = 0; i < opened; i++)
        tc_close(&cs[i]);
}

static void client_reload(SSL_CTX *ctx)
{
    tclient_t a, b;
    char buf[64];
    if (!tc_open(&a, ctx, fx->port))
        return;
    if (!tc_handshake(&a, true) || !tc_write(&a, "reload", 6) ||
        tc_read(&a, buf, sizeof(buf), SIZE_MAX) != 2) {
        client_fail("first connection");
        tc_close(&a);
        return;
    }
    note_session(&a, 0);
    if (!tc_open(&b, ctx, fx->port)) {
        tc_close(&a);
        return;
    }
    /* The new certificate for the new connection; the old one goes on. */
    if (!tc_handshake(&b, true) || !tc_write(&b, "b", 1) ||
        tc_read(&b, buf, sizeof(buf), SIZE_MAX) != 1 || buf[0] != 'b' || !tc_write(&a, "a", 1) ||
        tc_read(&a, buf, sizeof(buf), SIZE_MAX) != 1 || buf[0] != 'a')
        client_fail("echo after the reload");
    note_session(&b, 1);
    tc_close(&a);
    tc_close(&b);
}

static void client_early(SSL_CTX *ctx, bool expect_data)
{
    tclient_t c;
    if (!tc_open(&c, ctx, fx->port))
        return;
    if (!tc_handshake(&c, true)) {
        if (expect_data)
            client_fail("handshake");
        goto out;
    }
    if (!expect_data) {
        fx->end = tc_read_all(&c, SIZE_MAX, 0);
        goto out;
    }
    char buf[64];
    while (fx->got_len < 8) {
        int n = tc_read(&c, buf, sizeof(buf), SIZE_MAX);
        if (n <= 0) {
            client_fail("reading what was queued before the handshake");
            goto out;
        }
        got_append(buf, (size_t)n);
    }
    /* "bye" and our close_notify in one segment: the server reads "bye",
     * then EOF, and answers "bye" and its close_notify. */
    if (SSL_write(c.ssl, "bye", 3) != 3 || SSL_shutdown(c.ssl) < 0 || !tc_flush(&c))
        client_fail("bye and close_notify");
    fx->end = tc_read_all(&c, SIZE_MAX, 0);
out:
    tc_close(&c);
}

static void *client_main(void *arg)
{
    (void)arg;
    fx->end = END_NONE;
    SSL_CTX *ctx = client_ctx(fx->scenario == S_OLD_VERSION ? TLS1_2_VERSION : fx->variant);
    switch (fx->scenario) {
    case S_ECHO:
        client_echo(ctx);
        break;
    case S_BIG:
        client_go_and_read(ctx, true, KEY_UPDATE_AT);
        break;
    case S_SMALL:
        client_go_and_read(ctx, false, 0);
        break;
    case S_CLOSE_AFTER_FLUSH:
        client_go_and_read(ctx, true, 0);
        break;
    case S_BAD_RECORD:
        client_bad_record(ctx);
        break;
    case S_EARLY:
        client_early(ctx, true);
        break;
    case S_EARLY_CLOSE:
        client_early(ctx, false);
        break;
    case S_PLAIN_HTTP:
        client_plain_http();
        break;
    case S_OLD_VERSION:
        client_old_version(ctx);
        break;
    case S_RESET_HANDSHAKE:
        client_reset_handshake(ctx);
        break;
    case S_RESET_TRANSFER:
        client_reset_transfer(ctx);
        break;
    case S_POOL:
        client_pool(ctx);
        break;
    case S_RELOAD:
        client_reload(ctx);
        break;
    default:
        break;
    }
    SSL_CTX_free(ctx);
    OPENSSL_thread_stop();
    uv_async_send(&fx->client_done);
    return NULL;
}

/* ---- the server (the loop thread) ------------------------------------------ */

static void end_scenario(void)
{
    fx->ended = true;
    uv_close((uv_handle_t *)&fx->deadline, NULL);
    uv_close((uv_handle_t *)&fx->check, NULL);
    uv_close((uv_handle_t *)&fx->client_done, NULL);
    if (fx->listener)
        hs_listener_close(fx->listener);
    if (fx->plain_listener)
        hs_listener_close(fx->plain_listener);
}

/* Over when the client is done and every connection accepted has closed. */
static void maybe_end(void)
{
    if (!fx->ended && fx->client_finished && fx->closes == fx->accepts &&
        (fx->accepts >= fx->expected_conns || fx->timed_out))
        end_scenario();
}

static void client_done_cb(uv_async_t *async)
{
    (void)async;
    fx->client_finished = true;
    maybe_end();
}

static void deadline_cb(uv_timer_t *timer)
{
    (void)timer;
    fx->timed_out = true;
    for (int i = 0; i < fx->accepts; i++)
        if (fx->alive[i])
            hs_conn_close(fx->conns[i]);
    maybe_end();
}

static void check_cb(uv_timer_t *timer)
{
    (void)timer;
    if (fx->accepts == 0 || !fx->alive[0])
        return;
    hs_conn_t *conn = fx->conns[0];
    if (conn->pending > fx->max_pending_seen)
        fx->max_pending_seen = conn->pending;
    if (conn->flags & CONN_WAIT_WRITE)
        atomic_store(&fx->server_writing, true);
    if (hs_tls__failed(conn->tls))
        atomic_store(&fx->server_failed, true);
}

static void send_taking(hs_conn_t *conn, hs_buf_t *buf)
{
    assert_int_equal(hs_conn_send_taking(conn, buf, true), 0);
}

/* len bytes of the pattern from 0, as flat buffers and vectors of odd sizes
 * that cross the 16 KiB records and the 64 KiB rounds of the TLS flush. */
static void send_pattern(hs_conn_t *conn, size_t total)
{
    static const size_t sizes[] = {1021, 1, 16384, 4093, 65537, 17, 16385, 300000, 2};
    size_t off = 0;
    for (unsigned k = 0; off < total; k++) {
        size_t len = sizes[k % (sizeof(sizes) / sizeof(sizes[0]))];
        if (len > total - off)
            len = total - off;
        if (k % 3 == 2 && len >= 3) {
            /* a vector of three parts */
            size_t a = len / 3, b = (len - a) / 2, c = len - a - b;
            hs_buf_t *parts[3] = {pattern_buf(off, a), pattern_buf(off + a, b),
                                  pattern_buf(off + a + b, c)};
            hs_buf_t *vec = hs_buf_vector(parts, 3);
            for (int i = 0; i < 3; i++)
                hs_buf_unref(parts[i]);
            send_taking(conn, vec);
        } else {
            send_taking(conn, pattern_buf(off, len));
        }
        off += len;
    }
}

static void burst(hs_conn_t *conn)
{
    fx->burst_sent = true;
    if (fx->scenario != S_SMALL) {
        /* A small send buffer (no autotuning): the socket fills at once and
         * stays full until the client reads, whatever the machine's TCP
         * settings, and the flush goes through many waits for a writable socket. */
        int size = SERVER_SNDBUF;
        assert_int_equal(setsockopt(hs_conn__fd(conn), SOL_SOCKET, SO_SNDBUF, &size, sizeof(size)),
                         0);
    }
    switch (fx->scenario) {
    case S_BIG:
    case S_RESET_TRANSFER:
    case S_BAD_RECORD:
        fx->write_calls_before = fx->net->write_calls;
        send_pattern(conn, BIG_BYTES);
        assert_int_equal(hs_conn_pending(conn), BIG_BYTES);
        break;
    case S_CLOSE_AFTER_FLUSH:
        send_pattern(conn, FLUSH_BYTES);
        for (unsigned i = 0; i < 100; i++) {
            char msg[16];
            int n = snprintf(msg, sizeof(msg), "<%03u>", i);
            send_taking(conn, hs_buf_from(msg, (size_t)n));
        }
        hs_conn_close_after_flush(conn);
        break;
    case S_SMALL:
        fx->write_calls_before = fx->net->write_calls;
        for (unsigned i = 0; i < SMALL_SENDS; i++) {
            char msg[16];
            int n = snprintf(msg, sizeof(msg), "<%05u>", i);
            if (i % 10 == 9) {
                /* now and then a vector: the staging copies across parts */
                hs_buf_t *parts[2] = {hs_buf_from(msg, 3), hs_buf_from(msg + 3, (size_t)n - 3)};
                hs_buf_t *vec = hs_buf_vector(parts, 2);
                hs_buf_unref(parts[0]);
                hs_buf_unref(parts[1]);
                send_taking(conn, vec);
            } else {
                send_taking(conn, hs_buf_from(msg, (size_t)n));
            }
        }
        assert_int_equal(fx->net->write_calls, fx->write_calls_before); /* only queued */
        hs_conn_close_after_flush(conn);
        break;
    default:
        break;
    }
}

static void pool_send_all(void)
{
    for (int i = 0; i < fx->accepts; i++) {
        hs_buf_t *buf = pattern_buf((size_t)i * 977, POOL_BYTES);
        send_taking(fx->conns[i], buf);
        hs_conn_close_after_flush(fx->conns[i]);
    }
}

static void server_read(hs_conn_t *conn, const char *data, size_t len)
{
    int idx = (int)(intptr_t)hs_conn_data(conn);
    fx->reads++;
    if (fx->scenario == S_POOL) {
        if (++fx->readies == POOL_CONNS)
            pool_send_all();
        return;
    }
    if (fx->scenario == S_RELOAD) {
        if (len == 6 && memcmp(data, "reload", 6) == 0) {
            char err[256] = "";
            assert_int_equal(
                hs_tls_reload(fx->tls, cert_file[1], key_file[1], NULL, err, sizeof(err)), 0);
            send_taking(conn, hs_buf_from("ok", 2));
        } else {
            send_taking(conn, hs_buf_from(data, len)); /* echo */
        }
        return;
    }
    if (idx == 0) {
        fx->received = realloc(fx->received, fx->received_len + len);
        memcpy(fx->received + fx->received_len, data, len);
        fx->received_len += len;
    }
    if (fx->scenario == S_ECHO || fx->scenario == S_EARLY) {
        send_taking(conn, hs_buf_from(data, len));
    } else if (!fx->burst_sent && fx->received_len == 2 && memcmp(fx->received, "go", 2) == 0) {
        burst(conn);
    }
}

static void server_eof(hs_conn_t *conn, int status)
{
    fx->eofs++;
    fx->eof_status = status;
    hs_conn_close_after_flush(conn);
}

static void server_drain(hs_conn_t *conn)
{
    if (!fx->burst_sent || fx->scenario != S_BIG)
        return;
    /* Everything went out: nothing queued, no ciphertext left. */
    fx->drains_after_burst++;
    fx->drained_clean = hs_conn_pending(conn) == 0 && conn->out_count == 0 &&
                        !hs_tls__has_output(conn->tls) && !(conn->flags & CONN_WAIT_WRITE);
    hs_conn_close_after_flush(conn);
}

static void server_closed(hs_conn_t *conn)
{
    int idx = (int)(intptr_t)hs_conn_data(conn);
    assert_ptr_equal(conn, fx->conns[idx]);
    fx->alive[idx] = false;
    fx->close_count[idx]++;
    fx->closes++;
    if ((fx->scenario == S_SMALL || fx->scenario == S_BIG) && idx == 0)
        fx->burst_write_calls = fx->net->write_calls - fx->write_calls_before;
    if (fx->scenario == S_POOL)
        fx->pool_batch_cap = fx->net->flush_batch_cap;
    maybe_end();
}

static const hs_conn_handler_t handler = {.on_read = server_read,
                                          .on_eof = server_eof,
                                          .on_drain = server_drain,
                                          .on_close = server_closed};

static void accept_cb(hs_listener_t *listener, hs_conn_t *conn)
{
    (void)listener;
    assert_true(fx->accepts < POOL_CONNS);
    int idx = fx->accepts++;
    fx->conns[idx] = conn;
    fx->alive[idx] = true;
    atomic_store(&fx->accepted, true);
    hs_conn_set_handler(conn, &handler, (void *)(intptr_t)idx);
    if (fx->scenario == S_POOL)
        hs_conn_set_fanout(conn); /* the WebSocket sessions' list */
    if (fx->scenario == S_EARLY || fx->scenario == S_EARLY_CLOSE) {
        /* Queued before the handshake: waits for it. */
        send_taking(conn, hs_buf_from("welcome\n", 8));
        if (fx->scenario == S_EARLY_CLOSE)
            hs_conn_close_after_flush(conn);
    }
}

static void run_scenario(int scenario, int variant)
{
    fx = calloc(1, sizeof(*fx));
    fx->scenario = scenario;
    fx->variant = variant;
    fx->expected_conns = scenario == S_POOL ? POOL_CONNS : scenario == S_RELOAD ? 2 : 1;
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    fx->net = hs_net_new(&fx->loop);
    char err[256] = "";
    assert_int_equal(hs_tls_new(cert_file[0], key_file[0], scenario == S_OLD_VERSION ? "1.3" : NULL,
                                &fx->tls, err, sizeof(err)),
                     0);
    if (scenario == S_POOL) {
        hs_net_set_flush_threads(fx->net, 2);
        /* started before hs_net_set_tls: plain */
        assert_int_equal(
            hs_listener_start(fx->net, "127.0.0.1:0", accept_cb, NULL, &fx->plain_listener), 0);
        fx->plain_port = hs_listener_port(fx->plain_listener);
    }
    hs_net_set_tls(fx->net, fx->tls);
    assert_int_equal(hs_listener_start(fx->net, "127.0.0.1:0", accept_cb, NULL, &fx->listener), 0);
    fx->port = hs_listener_port(fx->listener);
    uv_timer_init(&fx->loop, &fx->deadline);
    uv_timer_start(&fx->deadline, deadline_cb, DEADLINE_MS, 0);
    uv_timer_init(&fx->loop, &fx->check);
    uv_timer_start(&fx->check, check_cb, 2, 2);
    uv_async_init(&fx->loop, &fx->client_done, client_done_cb);
    assert_int_equal(pthread_create(&fx->thread, NULL, client_main, NULL), 0);
    uv_run(&fx->loop, UV_RUN_DEFAULT); /* ends when everything is closed */
    assert_int_equal(pthread_join(fx->thread, NULL), 0);
    if (fx->client_err[0])
        fail_msg("client: %s", fx->client_err);
    assert_false(fx->timed_out);
    assert_int_equal(fx->accepts, fx->expected_conns);
    assert_int_equal(fx->closes, fx->accepts);
    for (int i = 0; i < fx->accepts; i++)
        assert_int_equal(fx->close_count[i], 1); /* on_close once each */
    assert_int_equal(hs_net_conn_count(fx->net), 0);
    hs_net_close(fx->net);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&fx->loop), 0); /* no handle left */
    hs_tls_free(fx->tls);
}

static void finish(void)
{
    free(fx->received);
    free(fx->got);
    free(fx);
    fx = NULL;
}

/* ---- tests ------------------------------------------------------------------ */

static void check_echo(int max_version, const char *version)
{
    run_scenario(S_ECHO, max_version);
    assert_string_equal(fx->version, version);
    assert_string_equal(fx->alpn, "http/1.1");
    assert_string_equal(fx->peer_cn[0], "houston-test-one");
    /* both ways, whole */
    assert_int_equal(fx->received_len, 5 + ECHO_BYTES);
    assert_memory_equal(fx->received, "hello", 5);
    assert_true(is_pattern(fx->received + 5, 7, ECHO_BYTES));
    assert_int_equal(fx->got_len, 5 + ECHO_BYTES);
    assert_memory_equal(fx->got, fx->received, fx->got_len);
    /* the client's close_notify is EOF; the server answers with its own */
    assert_int_equal(fx->eofs, 1);
    assert_int_equal(fx->eof_status, UV_EOF);
    assert_int_equal(fx->end, END_CLOSE_NOTIFY);
    finish();
}

static void test_echo_tls13(void **state)
{
    (void)state;
    check_echo(0, "TLSv1.3");
}

static void test_echo_tls12(void **state)
{
    (void)state;
    check_echo(TLS1_2_VERSION, "TLSv1.2");
}

static void test_big_write_slow_reader(void **state)
{
    (void)state;
    run_scenario(S_BIG, 0);
    print_message("big write: %zu bytes of plaintext queued at most, %llu write calls\n",
                  fx->max_pending_seen, (unsigned long long)fx->burst_write_calls);
    assert_true(fx->max_pending_seen > 0);  /* the plaintext queue was used */
    assert_true(fx->burst_write_calls > 8); /* many waits for a writable socket */
    assert_int_equal(fx->drains_after_burst, 1);
    assert_true(fx->drained_clean);
    assert_int_equal(fx->got_len, BIG_BYTES);
    assert_true(is_pattern(fx->got, 0, BIG_BYTES));
    assert_int_equal(fx->end, END_CLOSE_NOTIFY);
    finish();
}

static void test_small_sends_one_flush(void **state)
{
    (void)state;
    run_scenario(S_SMALL, 0);
    char expected[8];
    assert_int_equal(fx->got_len, (size_t)SMALL_SENDS * 7);
    for (unsigned i = 0; i < SMALL_SENDS; i++) {
        snprintf(expected, sizeof(expected), "<%05u>", i);
        assert_memory_equal(fx->got + (size_t)i * 7, expected, 7);
    }
    assert_int_equal(fx->end, END_CLOSE_NOTIFY);
    /* 21,000 bytes: two 16 KiB records, besides the two session tickets and
     * the close_notify (one record per send would be 3,000), written in a
     * couple of calls */
    size_t records = fx->records_after - fx->records_before;
    print_message("small sends: %zu records, %llu write calls\n", records,
                  (unsigned long long)fx->burst_write_calls);
    assert_true(records <= 6);
    assert_true(fx->burst_write_calls <= 3);
    finish();
}

static void test_queued_before_handshake(void **state)
{
    (void)state;
    run_scenario(S_EARLY, 0);
    assert_int_equal(fx->got_len, 11);
    assert_memory_equal(fx->got, "welcome\nbye", 11);
    /* the data read with the close_notify came first, then EOF */
    assert_int_equal(fx->received_len, 3);
    assert_memory_equal(fx->received, "bye", 3);
    assert_int_equal(fx->eofs, 1);
    assert_int_equal(fx->end, END_CLOSE_NOTIFY);
    finish();
}

static void test_close_before_handshake_drops(void **state)
{
    (void)state;
    /* Nothing can be encrypted yet: the queue is dropped, the socket shut
     * down; the client's handshake ends on EOF and nothing crashes. */
    run_scenario(S_EARLY_CLOSE, 0);
    /* a FIN at once, not a reset when the flush deadline closes the socket
     * with the ClientHello unread */
    assert_string_equal(fx->handshake_error, "EOF");
    assert_int_equal(fx->got_len, 0);
    assert_int_equal(fx->reads, 0);
    finish();
}

static void test_close_after_flush(void **state)
{
    (void)state;
    run_scenario(S_CLOSE_AFTER_FLUSH, 0);
    assert_int_equal(fx->got_len, FLUSH_BYTES + 500);
    assert_true(is_pattern(fx->got, 0, FLUSH_BYTES));
    assert_memory_equal(fx->got + FLUSH_BYTES, "<000><001>", 10);
    assert_memory_equal(fx->got + FLUSH_BYTES + 495, "<099>", 5);
    assert_int_equal(fx->end, END_CLOSE_NOTIFY); /* after the last byte */
    assert_int_equal(fx->eofs, 0);
    finish();
}

static void test_plain_http_client(void **state)
{
    (void)state;
    run_scenario(S_PLAIN_HTTP, 0);
    assert_int_equal(fx->reads, 0); /* nothing reached the protocol */
    assert_int_equal(fx->eofs, 0);  /* closed after the alert, not an EOF */
    /* no HTTP answer: at most a TLS alert record, then the end */
    assert_true(fx->got_len == 0 || (unsigned char)fx->got[0] == 0x15);
    assert_true(fx->end == END_EOF || fx->end == END_ERROR);
    finish();
}

static void test_old_version_refused(void **state)
{
    (void)state;
    run_scenario(S_OLD_VERSION, 0);
    assert_int_equal(fx->reads, 0);
    assert_non_null(strstr(fx->handshake_error, "protocol version"));
    finish();
}

static void test_reset_in_handshake(void **state)
{
    (void)state;
    for (int variant = 0; variant < 2; variant++) {
        run_scenario(S_RESET_HANDSHAKE, variant);
        assert_int_equal(fx->reads, 0);
        assert_true(fx->eofs <= 1);
        finish();
    }
}

static void test_reset_in_transfer(void **state)
{
    (void)state;
    run_scenario(S_RESET_TRANSFER, 0);
    assert_true(fx->got_len >= RESET_AFTER);
    assert_true(is_pattern(fx->got, 0, fx->got_len));
    assert_true(fx->eofs <= 1);
    finish();
}

static void test_bad_record_during_write(void **state)
{
    (void)state;
    run_scenario(S_BAD_RECORD, 0);
    /* what was in flight, whole and in order, then the server's alert */
    assert_true(fx->got_len > 0 && fx->got_len < BIG_BYTES);
    assert_true(is_pattern(fx->got, 0, fx->got_len));
    assert_int_equal(fx->end, END_ERROR);
    assert_non_null(strstr(fx->read_error, "alert bad record mac"));
    assert_int_equal(fx->reads, 1); /* "go" */
    assert_int_equal(fx->eofs, 0);
    finish();
}

static void test_flush_helpers(void **state)
{
    (void)state;
    run_scenario(S_POOL, 0);
    assert_true(fx->pool_batch_cap > 0); /* the wave went through the pool */
    assert_int_equal(fx->pool_ok, POOL_CONNS);
    finish();
}

static void test_reload(void **state)
{
    (void)state;
    run_scenario(S_RELOAD, 0);
    assert_string_equal(fx->peer_cn[0], "houston-test-one");
    assert_string_equal(fx->peer_cn[1], "houston-test-two");
    finish();
}

static void test_context(void **state)
{
    (void)state;
    hs_tls_t *tls = NULL;
    char err[512], line[512];
    assert_int_equal(hs_tls_new(cert_file[0], key_file[0], "1.3", &tls, err, sizeof(err)), 0);
    hs_tls_describe(tls, line, sizeof(line));
    assert_non_null(strstr(line, "minimum TLS 1.3"));
    assert_non_null(strstr(line, "houston-test-one"));
    /* A failed reload changes nothing. */
    assert_int_equal(hs_tls_reload(tls, cert_file[1], key_file[0], NULL, err, sizeof(err)),
                     HS_EINVAL);
    assert_non_null(strstr(err, "does not match"));
    hs_tls_describe(tls, line, sizeof(line));
    assert_non_null(strstr(line, "houston-test-one"));
    assert_int_equal(hs_tls_reload(tls, cert_file[1], key_file[1], "1.2", err, sizeof(err)), 0);
    hs_tls_describe(tls, line, sizeof(line));
    assert_non_null(strstr(line, "minimum TLS 1.2"));
    assert_non_null(strstr(line, "houston-test-two"));
    hs_tls_free(tls);

    tls = NULL;
    assert_int_equal(hs_tls_new("/nonexistent.pem", key_file[0], NULL, &tls, err, sizeof(err)),
                     HS_EINVAL);
    assert_null(tls);
    assert_non_null(strstr(err, "--tls-cert /nonexistent.pem"));
    assert_int_equal(hs_tls_new(cert_file[0], "/nonexistent.pem", NULL, &tls, err, sizeof(err)),
                     HS_EINVAL);
    assert_non_null(strstr(err, "--tls-key /nonexistent.pem"));
    assert_int_equal(hs_tls_new(cert_file[0], key_file[1], NULL, &tls, err, sizeof(err)),
                     HS_EINVAL);
    assert_non_null(strstr(err, "does not match"));
    assert_int_equal(hs_tls_new(cert_file[0], key_file[0], "1.1", &tls, err, sizeof(err)),
                     HS_EINVAL);
    assert_non_null(strstr(err, "--tls-min-version"));
    assert_null(tls);
    hs_tls_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_context),
        cmocka_unit_test(test_echo_tls13),
        cmocka_unit_test(test_echo_tls12),
        cmocka_unit_test(test_big_write_slow_reader),
        cmocka_unit_test(test_small_sends_one_flush),
        cmocka_unit_test(test_queued_before_handshake),
        cmocka_unit_test(test_close_before_handshake_drops),
        cmocka_unit_test(test_close_after_flush),
        cmocka_unit_test(test_plain_http_client),
        cmocka_unit_test(test_old_version_refused),
        cmocka_unit_test(test_reset_in_handshake),
        cmocka_unit_test(test_reset_in_transfer),
        cmocka_unit_test(test_bad_record_during_write),
        cmocka_unit_test(test_flush_helpers),
        cmocka_unit_test(test_reload),
    };
    return cmocka_run_group_tests(tests, make_certs, remove_certs);
}
