/* http_client.h - one HTTP/1.1 request and its answer, blocking.
 *
 * Each request opens its own connection and sends "Connection: close": the
 * client makes a handful of requests, so keep-alive would buy little and
 * cost a retry path. Answers are parsed with http-parser (the server's
 * parser) and bounded by HS_CLI_HTTP_MAX_BODY.
 */
#ifndef HS_CLI_HTTP_CLIENT_H
#define HS_CLI_HTTP_CLIENT_H

#include <stddef.h>

#include "cli/stream.h"
#include "cli/url.h"

/* A history page of 1000 messages of 64 KiB each, with room to spare. */
#define HS_CLI_HTTP_MAX_BODY (128u * 1024u * 1024u)
/* Connect, send and each wait for bytes of the answer. */
#define HS_CLI_HTTP_TIMEOUT_MS 30000

typedef struct hs_cli_response {
    int status;
    char *body; /* NUL-terminated; owned, freed by hs_cli_response_dispose */
    size_t body_len;
} hs_cli_response_t;

/* Sends METHOD server->path + target with an optional JSON body and, when
 * api_key is not NULL, "Authorization: Bearer api_key"; over TLS (tls, NULL
 * for the defaults) when server is https://. On 0, out holds the answer (any
 * status); otherwise a negative HS_E* code and a one-line reason in err. */
int hs_cli_http_request(const hs_cli_url_t *server, const hs_cli_tls_options_t *tls,
                        const char *method, const char *target, const char *api_key,
                        const char *json_body, hs_cli_response_t *out, char *err, size_t err_len);
void hs_cli_response_dispose(hs_cli_response_t *response);

#endif
