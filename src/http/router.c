/* router.c - method + path pattern -> handler, with 404/405 decided here.
 *
 * Routes are few (tens), so matching walks them in order; a pattern is split
 * into segments once, at registration. */
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "http/http_internal.h"

#define MAX_SEGMENTS 16

typedef struct route {
    enum http_method method;
    char *pattern;
    char *segments[MAX_SEGMENTS]; /* a "{name}" segment is stored as its name */
    bool is_param[MAX_SEGMENTS];
    unsigned segment_count;
    hs_http_handler_fn fn;
    void *ctx;
    bool takes_over; /* hs_router_add_takeover: the server holds its requests */
} route_t;

struct hs_router {
    route_t *routes;
    size_t count;
};

hs_router_t *hs_router_new(void)
{
    return hs_calloc(1, sizeof(hs_router_t));
}

void hs_router_free(hs_router_t *router)
{
    if (router == NULL)
        return;
    for (size_t i = 0; i < router->count; i++) {
        for (unsigned j = 0; j < router->routes[i].segment_count; j++)
            hs_free(router->routes[i].segments[j]);
        hs_free(router->routes[i].pattern);
    }
    hs_free(router->routes);
    hs_free(router);
}

void hs_router_add(hs_router_t *router, enum http_method method, const char *pattern,
                   hs_http_handler_fn fn, void *ctx)
{
    router->routes = hs_realloc(router->routes, (router->count + 1) * sizeof(route_t));
    route_t *r = &router->routes[router->count++];
    memset(r, 0, sizeof(*r));
    r->method = method;
    r->pattern = hs_strdup(pattern);
    r->fn = fn;
    r->ctx = ctx;
    const char *p = pattern;
    while (*p == '/')
        p++;
    while (*p && r->segment_count < MAX_SEGMENTS) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        bool param = len > 2 && p[0] == '{' && p[len - 1] == '}';
        r->is_param[r->segment_count] = param;
        r->segments[r->segment_count++] = param ? hs_strndup(p + 1, len - 2) : hs_strndup(p, len);
        p += len;
        while (*p == '/')
            p++;
    }
}

void hs_router_add_takeover(hs_router_t *router, enum http_method method, const char *pattern,
                            hs_http_handler_fn fn, void *ctx)
{
    hs_router_add(router, method, pattern, fn, ctx);
    router->routes[router->count - 1].takes_over = true;
}

/* Whether path matches r; captures parameters into req when given. */
static bool path_matches(const route_t *r, const char *path, size_t len, hs_http_request_t *req)
{
    const char *p = path;
    const char *end = path + len;
    /* One trailing slash is tolerated: "/api/v1/ws/" is "/api/v1/ws". */
    if (end - p > 1 && end[-1] == '/')
        end--;
    if (p < end && *p == '/')
        p++;
    for (unsigned i = 0; i < r->segment_count; i++) {
        if (p >= end)
            return false;
        const char *slash = memchr(p, '/', (size_t)(end - p));
        size_t seg_len = slash ? (size_t)(slash - p) : (size_t)(end - p);
        const char *pattern = r->segments[i];
        if (r->is_param[i]) {
            if (seg_len == 0)
                return false;
            if (req) /* the name is owned by the route, which outlives req */
                hs_http__request_set_param(req, pattern, p, seg_len);
        } else if (strlen(pattern) != seg_len || memcmp(pattern, p, seg_len) != 0) {
            return false;
        }
        p += seg_len;
        if (i + 1 < r->segment_count) {
            if (p >= end || *p != '/')
                return false;
            p++;
        }
    }
    return p == end;
}

int hs_router_match(hs_router_t *router, enum http_method method, const char *path, size_t len,
                    hs_http_request_t *req, hs_http_handler_fn *fn, void **ctx, char *allow,
                    size_t allow_len)
{
    enum http_method wanted = method == HTTP_HEAD ? HTTP_GET : method;
    bool path_known = false;
    for (size_t i = 0; i < router->count; i++) {
        route_t *r = &router->routes[i];
        if (!path_matches(r, path, len, NULL))
            continue;
        path_known = true;
        if (r->method == wanted) {
            if (req)
                path_matches(r, path, len, req);
            *fn = r->fn;
            *ctx = r->ctx;
            return 0;
        }
    }
    if (!path_known)
        return HS_ENOTFOUND;
    /* 405: list every method this path answers to. */
    size_t used = 0;
    if (allow_len > 0)
        allow[0] = '\0';
    for (size_t i = 0; i < router->count; i++) {
        route_t *r = &router->routes[i];
        if (!path_matches(r, path, len, NULL))
            continue;
        const char *name = http_method_str(r->method);
        int n = snprintf(allow + used, allow_len - used, "%s%s", used ? ", " : "", name);
        if (n > 0 && (size_t)n < allow_len - used)
            used += (size_t)n;
        if (r->method == HTTP_GET) {
            n = snprintf(allow + used, allow_len - used, ", HEAD");
            if (n > 0 && (size_t)n < allow_len - used)
                used += (size_t)n;
        }
    }
    return HS_EMETHOD;
}

bool hs_router_takes_over(const hs_router_t *router, enum http_method method, const char *path,
                          size_t len)
{
    enum http_method wanted = method == HTTP_HEAD ? HTTP_GET : method;
    for (size_t i = 0; i < router->count; i++) {
        const route_t *r = &router->routes[i];
        if (r->method == wanted && path_matches(r, path, len, NULL))
            return r->takes_over;
    }
    return false;
}

void hs_router_each(const hs_router_t *router,
                    void (*cb)(enum http_method method, const char *pattern, void *data),
                    void *data)
{
    for (size_t i = 0; i < router->count; i++)
        cb(router->routes[i].method, router->routes[i].pattern, data);
}
