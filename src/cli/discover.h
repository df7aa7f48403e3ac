/* discover.h - where `houston sub` opens its WebSocket.
 *
 * --ws-server (HOUSTON_WS_URL) wins. Without it the client asks the API,
 * GET /api/v1/info, and uses its "wsURL". A server older than that route
 * (404), or one that does not know (a scale-out publisher without
 * --public-ws-url: "wsURL" null), leaves the old default, the --server host
 * on port 9001, with a note on stderr saying so and naming --ws-server.
 * Any other answer (401 without the API key, a server down) is an error.
 */
#ifndef HS_CLI_DISCOVER_H
#define HS_CLI_DISCOVER_H

#include <stddef.h>

#include "cli/options.h"

/* The decision on an answer of GET /api/v1/info (status, body), pure:
 * returns 0 with *out the server's wsURL; 1 with *out = *fallback and the
 * reason in note; or HS_EPROTO with the reason in err (a wsURL that is not
 * a ws:// or wss:// URL). Statuses other than 200 and 404 are the caller's
 * to report. */
int hs_cli_discover_decide(int status, const char *body, size_t body_len,
                           const hs_cli_url_t *fallback, hs_cli_url_t *out, char *note,
                           size_t note_len, char *err, size_t err_len);

/* The WebSocket URL for opt: --ws-server, else asked of the API. Prints
 * notes and errors on stderr. 0, or a negative HS_E* code (printed). */
int hs_cli_discover_ws(const hs_cli_options_t *opt, hs_cli_url_t *out);

#endif
