/* api.c - requests, JSON answers and the one error format. */
#include "cli/api.h"

#include <stdio.h>
#include <string.h>

#include "cli/http_client.h"
#include "cli/output.h"
#include "core/alloc.h"
#include "core/error.h"

/* The server's error body is {"error":{"code","message"}}; anything else is
 * shown as it came, cut short. */
void hs_cli_api_print_error(int status, const char *body)
{
    json_t *root = json_loads(body, 0, NULL);
    json_t *error = json_object_get(root, "error");
    const char *code = json_string_value(json_object_get(error, "code"));
    const char *message = json_string_value(json_object_get(error, "message"));
    if (message)
        hs_cli_error("HTTP %d %s: %s", status, code ? code : "error", message);
    else
        hs_cli_error("HTTP %d: %.200s", status, body);
    json_decref(root);
}

void hs_cli_api_print_failure(const hs_cli_options_t *opt, int rc, const char *err)
{
    /* The hint fits a server that could not be reached, not a certificate
     * that was refused or a --ca-file that cannot be read. */
    if (rc != HS_EIO) {
        hs_cli_error("%s", err);
        return;
    }
    char shown[1400];
    hs_cli_url_show(&opt->api, shown, sizeof(shown));
    hs_cli_error("%s (is houston running at %s ?)", err, shown);
}

int hs_cli_api_call(const hs_cli_options_t *opt, const char *method, const char *target,
                    json_t *body, int *status, json_t **answer)
{
    *status = 0;
    *answer = NULL;
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    hs_cli_response_t response;
    char err[512];
    int rc = hs_cli_http_request(&opt->api, &opt->tls, method, target, opt->api_key, text,
                                 &response, err, sizeof(err));
    free(text);
    if (rc != 0) {
        hs_cli_api_print_failure(opt, rc, err);
        return rc;
    }
    *status = response.status;
    if (response.status < 200 || response.status > 299) {
        hs_cli_api_print_error(response.status, response.body);
        hs_cli_response_dispose(&response);
        return HS_EIO;
    }
    if (response.body_len > 0) {
        json_error_t jerr;
        *answer = json_loadb(response.body, response.body_len, JSON_ALLOW_NUL, &jerr);
        if (*answer == NULL) {
            hs_cli_error("the answer to %s %s is not JSON: %s", method, target, jerr.text);
            rc = HS_EPROTO;
        }
    }
    hs_cli_response_dispose(&response);
    return rc;
}

void hs_cli_url_encode(const char *text, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)text; *p && n + 4 < cap; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
            strchr("-._~:", *p)) {
            out[n++] = (char)*p;
        } else {
            out[n++] = '%';
            out[n++] = hex[*p >> 4];
            out[n++] = hex[*p & 15];
        }
    }
    out[n] = '\0';
}

int hs_cli_api_history_page(const hs_cli_options_t *opt, const char *topic, const char *cursor,
                            unsigned limit, bool forward, json_t **page)
{
    char topic_q[1024], cursor_q[256] = "", target[1400];
    hs_cli_url_encode(topic, topic_q, sizeof(topic_q));
    if (cursor)
        hs_cli_url_encode(cursor, cursor_q, sizeof(cursor_q));
    snprintf(target, sizeof(target), "/api/v1/messages?topic=%s%s%s&limit=%u&forward=%s", topic_q,
             cursor ? "&lastID=" : "", cursor_q, limit, forward ? "true" : "false");
    int status;
    int rc = hs_cli_api_call(opt, "GET", target, NULL, &status, page);
    if (rc != 0)
        return rc;
    if (!json_is_array(json_object_get(*page, "messages"))) {
        hs_cli_error("the history answer has no \"messages\" array");
        json_decref(*page);
        *page = NULL;
        return HS_EPROTO;
    }
    return 0;
}
