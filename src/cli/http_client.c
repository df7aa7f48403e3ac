/* http_client.c - a request, then http-parser over the answer until it is
 * complete or the server closes. */
#include "cli/http_client.h"

#include <http_parser.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/stream.h"
#include "core/alloc.h"
#include "core/error.h"

typedef struct reader {
    hs_cli_response_t *out;
    size_t cap;
    int too_big;
    int complete;
} reader_t;

static int on_body_cb(http_parser *parser, const char *at, size_t len)
{
    reader_t *r = parser->data;
    hs_cli_response_t *out = r->out;
    if (out->body_len + len > HS_CLI_HTTP_MAX_BODY) {
        r->too_big = 1;
        return 1;
    }
    if (out->body_len + len + 1 > r->cap) {
        while (out->body_len + len + 1 > r->cap)
            r->cap = r->cap ? r->cap * 2 : 4096;
        out->body = hs_realloc(out->body, r->cap);
    }
    memcpy(out->body + out->body_len, at, len);
    out->body_len += len;
    out->body[out->body_len] = '\0';
    return 0;
}

static int on_complete_cb(http_parser *parser)
{
    reader_t *r = parser->data;
    r->complete = 1;
    http_parser_pause(parser, 1);
    return 0;
}

static char *build_request(const hs_cli_url_t *server, const char *method, const char *target,
                           const char *api_key, const char *json_body, size_t *len)
{
    size_t body_len = json_body ? strlen(json_body) : 0;
    size_t cap = strlen(method) + strlen(server->path) + strlen(target) +
                 strlen(server->authority) + (api_key ? strlen(api_key) : 0) + body_len + 512;
    char *req = hs_malloc(cap);
    int n = snprintf(req, cap,
                     "%s %s%s HTTP/1.1\r\nHost: %s\r\nUser-Agent: houston-cli/%s\r\n"
                     "Accept: application/json\r\nConnection: close\r\n",
                     method, server->path, target, server->authority, HOUSTON_VERSION);
    if (api_key)
        n += snprintf(req + n, cap - (size_t)n, "Authorization: Bearer %s\r\n", api_key);
    if (json_body)
        n += snprintf(req + n, cap - (size_t)n,
                      "Content-Type: application/json\r\nContent-Length: %zu\r\n", body_len);
    n += snprintf(req + n, cap - (size_t)n, "\r\n");
    if (json_body) {
        memcpy(req + n, json_body, body_len);
        n += (int)body_len;
    }
    *len = (size_t)n;
    return req;
}

int hs_cli_http_request(const hs_cli_url_t *server, const hs_cli_tls_options_t *tls,
                        const char *method, const char *target, const char *api_key,
                        const char *json_body, hs_cli_response_t *out, char *err, size_t err_len)
{
    memset(out, 0, sizeof(*out));
    int rc = 0;
    char *req = NULL;
    hs_cli_stream_t *stream;
    rc = hs_cli_stream_open(server, tls, HS_CLI_HTTP_TIMEOUT_MS, &stream, err, err_len);
    if (rc != 0)
        return rc;
    size_t req_len;
    req = build_request(server, method, target, api_key, json_body, &req_len);
    if (hs_cli_stream_send_all(stream, req, req_len) != 0) {
        snprintf(err, err_len, "%s:%s closed the connection while the request was sent",
                 server->host, server->port);
        rc = HS_EIO;
        goto out;
    }
    static const http_parser_settings settings = {.on_body = on_body_cb,
                                                  .on_message_complete = on_complete_cb};
    http_parser parser;
    http_parser_init(&parser, HTTP_RESPONSE);
    reader_t reader = {.out = out};
    parser.data = &reader;
    char chunk[65536];
    while (!reader.complete) {
        ssize_t n = hs_cli_stream_recv(stream, chunk, sizeof(chunk), HS_CLI_HTTP_TIMEOUT_MS);
        if (n == HS_EAGAIN) {
            snprintf(err, err_len, "no answer from %s:%s within %d s", server->host, server->port,
                     HS_CLI_HTTP_TIMEOUT_MS / 1000);
            rc = HS_EIO;
            goto out;
        }
        if (n < 0) {
            snprintf(err, err_len, "reading from %s:%s failed", server->host, server->port);
            rc = HS_EIO;
            goto out;
        }
        /* n == 0: end of stream, which completes a body without a length. */
        http_parser_execute(&parser, &settings, chunk, (size_t)n);
        if (reader.too_big) {
            snprintf(err, err_len, "the answer is larger than %u bytes", HS_CLI_HTTP_MAX_BODY);
            rc = HS_ETOOBIG;
            goto out;
        }
        if (!reader.complete && (HTTP_PARSER_ERRNO(&parser) != HPE_OK || n == 0)) {
            snprintf(err, err_len, "%s:%s sent an incomplete or malformed HTTP answer",
                     server->host, server->port);
            rc = HS_EPROTO;
            goto out;
        }
    }
    out->status = (int)parser.status_code;
    if (out->body == NULL)
        out->body = hs_strdup("");
out:
    if (rc != 0)
        hs_cli_response_dispose(out);
    hs_free(req);
    hs_cli_stream_free(stream);
    return rc;
}

void hs_cli_response_dispose(hs_cli_response_t *response)
{
    hs_free(response->body);
    memset(response, 0, sizeof(*response));
}
