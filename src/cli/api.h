/* api.h - the houston HTTP API as the client commands use it.
 *
 * Every function prints what went wrong to stderr ("houston: ..."), with the
 * server's own error message when it sent one, so a command only decides
 * its exit status.
 */
#ifndef HS_CLI_API_H
#define HS_CLI_API_H

#include <jansson.h>
#include <stdbool.h>

#include "cli/options.h"

/* The largest page GET /api/v1/messages serves. */
#define HS_CLI_PAGE_MAX 1000

/* METHOD target with an optional JSON body. On a 2xx answer returns 0 with
 * *status and *answer (the decoded body, NULL when empty; the caller owns
 * it). Otherwise prints the error and returns a negative HS_E* code
 * (*status is the HTTP status, or 0 when there was no answer). */
int hs_cli_api_call(const hs_cli_options_t *opt, const char *method, const char *target,
                    json_t *body, int *status, json_t **answer);

/* One page of GET /api/v1/messages: topic, exclusive cursor (NULL: from the
 * start in that direction), limit 1..1000, direction. On 0 *page is the
 * answer object ({"messages":[...],"next":...}), owned by the caller. */
int hs_cli_api_history_page(const hs_cli_options_t *opt, const char *topic, const char *cursor,
                            unsigned limit, bool forward, json_t **page);

/* Prints why a request got no answer (err, from hs_cli_http_request's rc),
 * with a hint at the address when the server could not be reached. */
void hs_cli_api_print_failure(const hs_cli_options_t *opt, int rc, const char *err);
/* Prints an HTTP error answer: the server's {"error":{"code","message"}},
 * or the start of whatever else came. */
void hs_cli_api_print_error(int status, const char *body);

/* Percent-encodes text for a query string into out (cap bytes). */
void hs_cli_url_encode(const char *text, char *out, size_t cap);

#endif
