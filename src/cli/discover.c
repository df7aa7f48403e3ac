/* discover.c - the WebSocket URL of `houston sub`, from --ws-server or the
 * server's GET /api/v1/info. */
#include "cli/discover.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "cli/api.h"
#include "cli/http_client.h"
#include "cli/output.h"
#include "core/error.h"

int hs_cli_discover_decide(int status, const char *body, size_t body_len,
                           const hs_cli_url_t *fallback, hs_cli_url_t *out, char *note,
                           size_t note_len, char *err, size_t err_len)
{
    char shown[1400];
    hs_cli_url_show(fallback, shown, sizeof(shown));
    if (status == 404) {
        *out = *fallback;
        snprintf(note, note_len,
                 "the server has no GET /api/v1/info (an older houston); trying %s "
                 "(--ws-server says where the WebSocket is)",
                 shown);
        return 1;
    }
    json_t *root = json_loadb(body, body_len, 0, NULL);
    json_t *ws = json_object_get(root, "wsURL");
    int rc;
    if (json_is_string(ws)) {
        char reason[512];
        rc = hs_cli_url_parse(json_string_value(ws), "ws", "80", out, reason, sizeof(reason));
        if (rc != 0) {
            snprintf(err, err_len, "the server's GET /api/v1/info names an unusable wsURL: %s",
                     reason);
            rc = HS_EPROTO;
        }
    } else {
        *out = *fallback;
        snprintf(note, note_len, "%s; trying %s (--ws-server says where the WebSocket is)",
                 json_is_null(ws) ? "the API does not know where its WebSocket endpoint is (a "
                                    "scale-out publisher without --public-ws-url)"
                                  : "the answer of GET /api/v1/info has no wsURL",
                 shown);
        rc = 1;
    }
    json_decref(root);
    return rc;
}

int hs_cli_discover_ws(const hs_cli_options_t *opt, hs_cli_url_t *out)
{
    if (opt->ws_given) {
        *out = opt->ws;
        return 0;
    }
    hs_cli_response_t response;
    char err[512], note[1800];
    int rc = hs_cli_http_request(&opt->api, &opt->tls, "GET", "/api/v1/info", opt->api_key, NULL,
                                 &response, err, sizeof(err));
    if (rc != 0) {
        hs_cli_api_print_failure(opt, rc, err);
        return rc;
    }
    if (response.status != 200 && response.status != 404) {
        hs_cli_api_print_error(response.status, response.body);
        hs_cli_response_dispose(&response);
        return HS_EIO;
    }
    rc = hs_cli_discover_decide(response.status, response.body, response.body_len, &opt->ws, out,
                                note, sizeof(note), err, sizeof(err));
    hs_cli_response_dispose(&response);
    if (rc < 0) {
        hs_cli_error("%s", err);
        return rc;
    }
    if (rc == 1)
        hs_cli_error("%s", note);
    else if (opt->api.tls && !out->tls)
        hs_cli_error("warning: the API is https:// but its WebSocket is %s (not encrypted)",
                     out->scheme);
    return 0;
}
