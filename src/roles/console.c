/* console.c - serves the embedded web console (console.h). */
#include "roles/console.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "roles/console_assets.h"

/* The page talks to an API whose base URL the user may edit, so connect-src
 * is open; everything else comes from this origin and nothing runs inline. */
#define PAGE_POLICY                                                                                \
    "Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self'; "           \
    "img-src 'self' data:; connect-src 'self' http: https: ws: wss:; base-uri 'none'; "            \
    "form-action 'none'; frame-ancestors 'none'\r\n"                                               \
    "Referrer-Policy: no-referrer\r\n"

static const hs_console_asset_t *find_asset(const char *name)
{
    for (size_t i = 0; i < hs_console_asset_count; i++)
        if (strcmp(hs_console_assets[i].name, name) == 0)
            return &hs_console_assets[i];
    return NULL;
}

/* Whether If-None-Match names etag (or is "*"); weak tags compare equal too. */
static bool etag_matches(hs_http_request_t *req, const char *etag)
{
    size_t len;
    const char *value = hs_http_header(req, "if-none-match", &len);
    if (value == NULL)
        return false;
    size_t etag_len = strlen(etag);
    if (len == 1 && value[0] == '*')
        return true;
    return memmem(value, len, etag, etag_len) != NULL;
}

static void serve_asset(hs_http_request_t *req, const hs_console_asset_t *asset)
{
    bool page = strncmp(asset->content_type, "text/html", 9) == 0;
    char headers[640];
    snprintf(headers, sizeof(headers),
             "ETag: %s\r\n"
             "Cache-Control: no-cache\r\n"
             "X-Content-Type-Options: nosniff\r\n"
             "%s",
             asset->etag, page ? PAGE_POLICY : "");
    if (etag_matches(req, asset->etag)) {
        hs_http_respond(req, 304, NULL, headers, NULL, 0);
        return;
    }
    hs_http_respond(req, 200, asset->content_type, headers, asset->data, asset->len);
}

static void page_route(hs_http_request_t *req, void *ctx)
{
    (void)ctx;
    const hs_console_asset_t *asset = find_asset("index.html");
    if (asset == NULL) { /* a build without web/index.html */
        hs_http_respond_error(req, 404, "not_found", "this build has no console");
        return;
    }
    serve_asset(req, asset);
}

static void file_route(hs_http_request_t *req, void *ctx)
{
    (void)ctx;
    const char *name = hs_http_param(req, "file");
    const hs_console_asset_t *asset = name ? find_asset(name) : NULL;
    if (asset == NULL) {
        hs_http_respond_error(req, 404, "not_found", "no such console file: %s", name ? name : "");
        return;
    }
    serve_asset(req, asset);
}

void hs_console_add_routes(hs_router_t *router)
{
    hs_router_add(router, HTTP_GET, "/", page_route, NULL);
    hs_router_add(router, HTTP_GET, "/console/{file}", file_route, NULL);
}
