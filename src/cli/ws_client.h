/* ws_client.h - the client side of RFC 6455, blocking.
 *
 * Enough for `houston sub`: the opening handshake (checks
 * Sec-WebSocket-Accept), reading text messages (fragmented or not), answering
 * pings with pongs by itself, and the closing handshake. Frames the client
 * sends are masked, as the RFC requires. A message larger than
 * HS_CLI_WS_MAX_MESSAGE is a protocol error (the server's own limit on what
 * it sends is --max-content plus the frame's JSON around it).
 */
#ifndef HS_CLI_WS_CLIENT_H
#define HS_CLI_WS_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "cli/stream.h"
#include "cli/url.h"

#define HS_CLI_WS_MAX_MESSAGE (32u * 1024u * 1024u)

typedef struct hs_cli_ws hs_cli_ws_t;

/* Connects to url (ws:// or wss://host:port/path; tls as stream.h, NULL
 * for the defaults) and completes the opening handshake within timeout_ms.
 * token, when not NULL, is the client token (JWT), sent as
 * "Authorization: Bearer" (never in the URL, so no log line of a proxy
 * holds it). On 0 *out is an open connection owned by the caller
 * (hs_cli_ws_free); otherwise a negative HS_E* code and a one-line reason in
 * err, which never contains the token. */
int hs_cli_ws_connect(const hs_cli_url_t *url, const hs_cli_tls_options_t *tls, const char *token,
                      int timeout_ms, hs_cli_ws_t **out, char *err, size_t err_len);

/* Waits up to timeout_ms (0: only what is already there; -1: forever) for
 * the next text or binary message, answering pings meanwhile. Returns 1 with
 * *msg (NUL-terminated, owned by the caller, free with hs_free) and *len;
 * 0 when nothing complete arrived in time or a signal interrupted the wait;
 * HS_ECLOSED when the server closed (its close code in
 * hs_cli_ws_close_code; 1006 when the connection just ended); another
 * negative HS_E* code on a protocol or network error. */
int hs_cli_ws_read(hs_cli_ws_t *ws, int timeout_ms, char **msg, size_t *len);

/* Sends a close frame with code and waits up to timeout_ms for the
 * server's close frame, then shuts the socket. 0 when the server answered. */
int hs_cli_ws_close(hs_cli_ws_t *ws, uint16_t code, int timeout_ms);

/* The code of the server's close frame (1005 without one, 1006 when the
 * connection ended without a close frame), 0 while open. */
uint16_t hs_cli_ws_close_code(const hs_cli_ws_t *ws);

void hs_cli_ws_free(hs_cli_ws_t *ws);

#endif
