/* tls.c - the TLS context, the memory BIO that connects OpenSSL to a
 * connection's buffers, and the read side: decrypt, then hand the plaintext
 * to the protocol through the same on_read a plain connection uses.
 *
 * Why a BIO of our own rather than two BIO_s_mem: a BIO_s_mem keeps the
 * largest buffer it ever held for the life of the connection (reading only
 * moves a pointer), so every connection that once received or sent a burst
 * would keep tens of KiB. Ours keeps nothing: input is read straight from
 * the loop's shared read buffer while the read callback runs, and output goes
 * into a buffer that conn.c frees as soon as it is written. */
#include "net/tls.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/log.h"
#include "net/net_internal.h"

struct hs_tls {
    SSL_CTX *ctx;
    BIO_METHOD *bio_method;
    char subject[256];
    char not_after[64];
};

/* ---- the context ---------------------------------------------------------- */

/* The key must not be encrypted: without this callback OpenSSL would ask for
 * a pass phrase on the terminal. */
static int no_password_cb(char *buf, int size, int rwflag, void *data)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)data;
    return 0;
}

/* Only HTTP/1.1 is spoken; a client offering h2 and http/1.1 gets http/1.1,
 * one offering only others gets no ALPN answer (and finds out at once). */
static int alpn_select_cb(SSL *ssl, const unsigned char **out, unsigned char *out_len,
                          const unsigned char *in, unsigned int in_len, void *data)
{
    static const unsigned char http11[] = "\x08http/1.1";
    (void)ssl;
    (void)data;
    unsigned char *selected = NULL;
    if (SSL_select_next_proto(&selected, out_len, http11, sizeof(http11) - 1, in, in_len) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = selected;
    return SSL_TLSEXT_ERR_OK;
}

/* OpenSSL's reason for the last failure, e.g. "no such file" or "key values
 * mismatch"; empties the thread's error queue. */
static const char *ssl_reason(char *buf, size_t len)
{
    unsigned long code = ERR_peek_last_error();
    if (code == 0)
        snprintf(buf, len, "unknown error");
    else
        ERR_error_string_n(code, buf, len);
    ERR_clear_error();
    return buf;
}

static int bio_write(BIO *bio, const char *data, int len);
static int bio_read(BIO *bio, char *out, int len);
static long bio_ctrl(BIO *bio, int cmd, long num, void *ptr);
static int bio_create(BIO *bio);

static void describe_cert(hs_tls_t *tls)
{
    X509 *cert = SSL_CTX_get0_certificate(tls->ctx);
    if (cert == NULL)
        return;
    X509_NAME_oneline(X509_get_subject_name(cert), tls->subject, sizeof(tls->subject));
    BIO *mem = BIO_new(BIO_s_mem());
    if (mem && ASN1_TIME_print(mem, X509_get0_notAfter(cert)) == 1) {
        int n = BIO_read(mem, tls->not_after, sizeof(tls->not_after) - 1);
        tls->not_after[n > 0 ? n : 0] = '\0';
    }
    BIO_free(mem);
}

/* A server context from the two files, or NULL with the reason in err. */
static SSL_CTX *make_ctx(const char *cert_file, const char *key_file, int version, char *err,
                         size_t err_len)
{
    char reason[256];
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        snprintf(err, err_len, "TLS: cannot create a context: %s",
                 ssl_reason(reason, sizeof(reason)));
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, version);
    /* No renegotiation (a client could make us redo the costly part at
     * will); our cipher order, not the client's. Ciphers and curves are
     * OpenSSL's defaults at the system's security level (2 on Debian). */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* Free OpenSSL's read and write buffers (about 34 KiB) whenever they are
     * empty, so an idle connection does not hold them. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    /* Resumption uses tickets (stateless); a server-side session cache would
     * grow with the number of clients. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_default_passwd_cb(ctx, no_password_cb);
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select_cb, NULL);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        snprintf(err, err_len, "--tls-cert %s: cannot load a PEM certificate chain: %s", cert_file,
                 ssl_reason(reason, sizeof(reason)));
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        /* Loading the key already compares it with the certificate. */
        if (ERR_GET_REASON(ERR_peek_last_error()) != X509_R_KEY_VALUES_MISMATCH)
            snprintf(err, err_len, "--tls-key %s: cannot load a PEM private key: %s", key_file,
                     ssl_reason(reason, sizeof(reason)));
        else
            snprintf(err, err_len,
                     "--tls-key %s does not match the certificate of --tls-cert %s: %s", key_file,
                     cert_file, ssl_reason(reason, sizeof(reason)));
        goto fail;
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

static int parse_version(const char *min_version, int *version, char *err, size_t err_len)
{
    *version = TLS1_2_VERSION;
    if (min_version == NULL || min_version[0] == '\0' || strcmp(min_version, "1.2") == 0)
        return 0;
    if (strcmp(min_version, "1.3") == 0) {
        *version = TLS1_3_VERSION;
        return 0;
    }
    snprintf(err, err_len, "--tls-min-version: '%s' is not 1.2 or 1.3", min_version);
    return HS_EINVAL;
}

/* The context for the settings: at start-up and on every reload. */
static SSL_CTX *ctx_for(const char *cert_file, const char *key_file, const char *min_version,
                        char *err, size_t err_len)
{
    int version;
    if (parse_version(min_version, &version, err, err_len) != 0)
        return NULL;
    return make_ctx(cert_file, key_file, version, err, err_len);
}

int hs_tls_new(const char *cert_file, const char *key_file, const char *min_version, hs_tls_t **out,
               char *err, size_t err_len)
{
    SSL_CTX *ctx = ctx_for(cert_file, key_file, min_version, err, err_len);
    if (ctx == NULL)
        return HS_EINVAL;
    hs_tls_t *tls = hs_calloc(1, sizeof(*tls));
    tls->ctx = ctx;
    tls->bio_method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "houston");
    if (tls->bio_method == NULL) {
        snprintf(err, err_len, "TLS: cannot create a BIO method");
        hs_tls_free(tls);
        return HS_EINVAL;
    }
    BIO_meth_set_write(tls->bio_method, bio_write);
    BIO_meth_set_read(tls->bio_method, bio_read);
    BIO_meth_set_ctrl(tls->bio_method, bio_ctrl);
    BIO_meth_set_create(tls->bio_method, bio_create);
    describe_cert(tls);
    *out = tls;
    return 0;
}

int hs_tls_reload(hs_tls_t *tls, const char *cert_file, const char *key_file,
                  const char *min_version, char *err, size_t err_len)
{
    SSL_CTX *ctx = ctx_for(cert_file, key_file, min_version, err, err_len);
    if (ctx == NULL)
        return HS_EINVAL;
    /* Connections alive keep their reference to the old context. */
    SSL_CTX_free(tls->ctx);
    tls->ctx = ctx;
    describe_cert(tls);
    return 0;
}

void hs_tls_free(hs_tls_t *tls)
{
    if (tls == NULL)
        return;
    SSL_CTX_free(tls->ctx);
    BIO_meth_free(tls->bio_method);
    hs_free(tls);
}

void hs_tls_describe(const hs_tls_t *tls, char *out, size_t out_len)
{
    SSL_CTX *ctx = tls->ctx;
    snprintf(out, out_len, "minimum TLS %s, certificate %s, valid until %s",
             SSL_CTX_get_min_proto_version(ctx) == TLS1_3_VERSION ? "1.3" : "1.2",
             tls->subject[0] ? tls->subject : "?", tls->not_after[0] ? tls->not_after : "?");
}

#define PLAIN_BUF_SIZE (64 * 1024)

void hs_net_set_tls(hs_net_t *net, hs_tls_t *tls)
{
    net->tls = tls;
    if (tls && net->tls_plain == NULL)
        net->tls_plain = hs_malloc(PLAIN_BUF_SIZE);
}

/* ---- one connection ------------------------------------------------------- */

struct hs_tls_conn {
    SSL *ssl;
    hs_conn_t *conn;
    const char *in; /* ciphertext not yet taken by OpenSSL (read callback only) */
    size_t in_len;
    hs_tls_out_t out;  /* being written: never touched while a write is in flight */
    hs_tls_out_t next; /* OpenSSL's output since then */
    bool ready;        /* handshake done */
    bool failed;       /* fatal error: no more SSL_read / SSL_write */
    bool close_notify_sent;
};

hs_tls_conn_t *hs_tls__conn_new(hs_tls_t *tls, hs_conn_t *conn)
{
    hs_tls_conn_t *tc = hs_calloc(1, sizeof(*tc));
    tc->conn = conn;
    tc->ssl = SSL_new(tls->ctx);
    BIO *bio = tc->ssl ? BIO_new(tls->bio_method) : NULL;
    if (bio == NULL) {
        char reason[256];
        hs_log_warn("tls: %s: cannot create a TLS session: %s", hs_conn_peer(conn),
                    ssl_reason(reason, sizeof(reason)));
        SSL_free(tc->ssl);
        hs_free(tc);
        return NULL;
    }
    BIO_set_data(bio, tc);
    SSL_set_bio(tc->ssl, bio, bio); /* one BIO for both ways: one reference */
    SSL_set_accept_state(tc->ssl);
    return tc;
}

void hs_tls__conn_free(hs_tls_conn_t *tc)
{
    if (tc == NULL)
        return;
    SSL_free(tc->ssl);
    hs_free(tc->out.data);
    hs_free(tc->next.data);
    hs_free(tc);
}

bool hs_tls__ready(const hs_tls_conn_t *tc)
{
    return tc->ready && !tc->failed;
}

bool hs_tls__failed(const hs_tls_conn_t *tc)
{
    return tc->failed;
}

hs_tls_out_t *hs_tls__out(hs_tls_conn_t *tc)
{
    /* Output is written in order: what OpenSSL produced while "out" was
     * being written becomes the next "out" once that is done. */
    if (tc->out.off == tc->out.len && tc->next.len > 0) {
        hs_free(tc->out.data);
        tc->out = tc->next;
        tc->next = (hs_tls_out_t){0};
    }
    return &tc->out;
}

void hs_tls__out_consume(hs_tls_conn_t *tc, size_t n)
{
    tc->out.off += n;
    if (tc->out.off == tc->out.len) {
        /* Written: free it, an idle connection keeps no buffer. */
        hs_free(tc->out.data);
        tc->out = (hs_tls_out_t){0};
    }
}

bool hs_tls__has_output(const hs_tls_conn_t *tc)
{
    return tc->out.off < tc->out.len || tc->next.len > 0;
}

static void log_failure(hs_tls_conn_t *tc, const char *what)
{
    char reason[256];
    hs_log_debug("tls: %s: %s failed: %s", hs_conn_peer(tc->conn), what,
                 ssl_reason(reason, sizeof(reason)));
}

int hs_tls__encrypt(hs_tls_conn_t *tc, const char *data, size_t len)
{
    if (!hs_tls__ready(tc))
        return HS_ECLOSED;
    ERR_clear_error();
    int rc = SSL_write(tc->ssl, data, (int)len);
    if (rc <= 0) {
        /* With a memory BIO writing never blocks: any failure is fatal. */
        tc->failed = true;
        log_failure(tc, "encrypting");
        return HS_EIO;
    }
    return 0;
}

bool hs_tls__close_notify(hs_tls_conn_t *tc)
{
    if (!hs_tls__ready(tc) || tc->close_notify_sent)
        return false;
    tc->close_notify_sent = true;
    ERR_clear_error();
    /* Sends our close_notify; we do not wait for the peer's (the lingering
     * close reads and drops whatever comes). */
    SSL_shutdown(tc->ssl);
    ERR_clear_error();
    return hs_tls__has_output(tc);
}

/* Hands plaintext to the protocol, unless it started closing meanwhile. */
static void deliver(hs_conn_t *conn, const char *data, size_t len)
{
    if (len > 0 && !(conn->flags & (CONN_CLOSING | CONN_FLUSH_CLOSE)))
        conn->handler->on_read(conn, data, len);
}

void hs_tls__read(hs_conn_t *conn, const char *data, size_t len)
{
    hs_tls_conn_t *tc = conn->tls;
    if (tc->failed)
        return;
    char *plain = conn->net->tls_plain;
    bool was_ready = tc->ready;
    int ended = 0; /* 1: the peer's close_notify; -1: a fatal error */
    tc->in = data;
    tc->in_len = len;
    ERR_clear_error();
    if (!tc->ready) {
        int rc = SSL_do_handshake(tc->ssl);
        if (rc == 1) {
            tc->ready = true;
            hs_log_debug("tls: %s: %s %s", hs_conn_peer(conn), SSL_get_version(tc->ssl),
                         SSL_get_cipher_name(tc->ssl));
        } else if (SSL_get_error(tc->ssl, rc) != SSL_ERROR_WANT_READ) {
            log_failure(tc, "handshake");
            ended = -1;
        }
    }
    /* Read everything this input holds (a client may send its first request
     * with its Finished message), in one delivery per 64 KiB of plaintext.
     * OpenSSL keeps a partial record in its own buffer until the rest comes,
     * so no ciphertext is left behind when the read callback returns.
     * SSL_read is not called once the input is used up and OpenSSL holds
     * nothing: it would only allocate its 16 KiB read buffer for the next
     * record and release it again. */
    size_t used = 0;
    while (tc->ready && ended == 0 && !(conn->flags & (CONN_CLOSING | CONN_FLUSH_CLOSE)) &&
           (tc->in_len > 0 || SSL_has_pending(tc->ssl))) {
        int n = SSL_read(tc->ssl, plain + used, (int)(PLAIN_BUF_SIZE - used));
        if (n > 0) {
            used += (size_t)n;
            if (PLAIN_BUF_SIZE - used < 16 * 1024 + 1) {
                deliver(conn, plain, used);
                used = 0;
            }
            continue;
        }
        int e = SSL_get_error(tc->ssl, n);
        if (e == SSL_ERROR_WANT_READ)
            break;
        if (e == SSL_ERROR_ZERO_RETURN) {
            ended = 1;
        } else {
            log_failure(tc, "reading");
            ended = -1;
        }
    }
    deliver(conn, plain, used);
    tc->in = NULL;
    tc->in_len = 0;
    if (ended < 0) {
        /* Send the alert OpenSSL wrote, if any, and go. A plain HTTP client
         * on a TLS port ends here. */
        tc->failed = true;
        hs_conn_close_after_flush(conn);
    } else if (ended > 0 && !(conn->flags & CONN_CLOSING)) {
        hs_conn__read_ended(conn, UV_EOF);
    }
    /* Handshake messages, an alert, a session ticket or a key update to
     * send; or plaintext that was queued before the handshake finished. */
    if (hs_tls__has_output(tc) || (tc->ready && !was_ready && conn->out_count > 0))
        hs_net__schedule_flush(conn->net, conn);
}

/* ---- the BIO ---------------------------------------------------------------- */

static int bio_create(BIO *bio)
{
    BIO_set_init(bio, 1);
    return 1;
}

static int bio_write(BIO *bio, const char *data, int len)
{
    hs_tls_conn_t *tc = BIO_get_data(bio);
    BIO_clear_retry_flags(bio);
    if (len <= 0)
        return 0;
    hs_tls_out_t *o = &tc->next;
    if (o->len + (size_t)len > o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 4096;
        while (cap < o->len + (size_t)len)
            cap *= 2;
        o->data = hs_realloc(o->data, cap);
        o->cap = cap;
    }
    memcpy(o->data + o->len, data, (size_t)len);
    o->len += (size_t)len;
    return len;
}

static int bio_read(BIO *bio, char *out, int len)
{
    hs_tls_conn_t *tc = BIO_get_data(bio);
    BIO_clear_retry_flags(bio);
    if (tc->in_len == 0) {
        /* "No more for now": OpenSSL returns SSL_ERROR_WANT_READ. */
        BIO_set_retry_read(bio);
        return -1;
    }
    size_t n = tc->in_len < (size_t)len ? tc->in_len : (size_t)len;
    memcpy(out, tc->in, n);
    tc->in += n;
    tc->in_len -= n;
    return (int)n;
}

static long bio_ctrl(BIO *bio, int cmd, long num, void *ptr)
{
    (void)bio;
    (void)num;
    (void)ptr;
    /* Our writes complete at once; nothing else is supported. */
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}
