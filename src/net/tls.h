/* tls.h - TLS (server side) for hs_net connections, on OpenSSL.
 *
 * One hs_tls_t holds the process's one SSL_CTX: the certificate chain and
 * key, the minimum protocol version, the options. hs_net_set_tls() makes
 * every listener of a net started afterwards accept TLS only; the protocol
 * layers above (HTTP, WebSocket) do not change: they still read plaintext
 * through on_read and queue plaintext with hs_conn_send.
 *
 * How the bytes move (src/net/tls.c): OpenSSL never touches the socket. Its
 * BIO is a memory BIO of ours: reading, it takes ciphertext from the loop's
 * shared read buffer for the duration of the read callback; writing, it
 * appends ciphertext to the connection's one output buffer, which is written
 * with the connection's usual writes (waiting for a writable socket when it
 * is full) and freed once it is written. Plaintext queued by reference is
 * encrypted just before the write, in the prepare pass that flushes the
 * connection, so a frame shared by many connections is still encoded once,
 * but each TLS connection encrypts its own copy of it. An idle TLS
 * connection keeps no buffer: OpenSSL's are released
 * (SSL_MODE_RELEASE_BUFFERS) and the output buffer is freed when written;
 * what remains is the SSL object itself.
 *
 * Thread affinity: created and freed on the main thread, used on the loop.
 */
#ifndef HS_NET_TLS_H
#define HS_NET_TLS_H

#include <stddef.h>

#include "net/net.h"

typedef struct hs_tls hs_tls_t;

/* Loads the PEM certificate chain (leaf first, then intermediates) and the
 * PEM private key (not encrypted), and checks that they match. min_version is
 * "1.2" or "1.3" (NULL or "" means 1.2). Returns 0 and *out, or HS_EINVAL
 * with a one-line reason in err (which file, and OpenSSL's words). */
int hs_tls_new(const char *cert_file, const char *key_file, const char *min_version, hs_tls_t **out,
               char *err, size_t err_len);
/* Loads the files again (a renewed certificate) into a new SSL_CTX that
 * connections accepted from now on use; connections already open keep the
 * old one until they end. On failure (same errors as hs_tls_new) nothing
 * changes. */
int hs_tls_reload(hs_tls_t *tls, const char *cert_file, const char *key_file,
                  const char *min_version, char *err, size_t err_len);
/* Frees the context. SSL objects still alive keep their own reference to the
 * SSL_CTX, so this may run before the last TLS connection is freed. */
void hs_tls_free(hs_tls_t *tls);
/* One line for the start-up log: the certificate's subject and expiry. */
void hs_tls_describe(const hs_tls_t *tls, char *out, size_t out_len);

/* Every listener of net started after this call speaks TLS only. The net
 * borrows tls: keep it alive until the net is closed. */
void hs_net_set_tls(hs_net_t *net, hs_tls_t *tls);

#endif
