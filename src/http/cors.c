/* cors.c - the CORS policy and the headers the server adds because of it.
 *
 * The policy is a short list of origins (a handful at most), so a lookup is a
 * linear walk with a case-insensitive compare. The allowed origin is echoed
 * back only when it equals a configured entry, so the echoed bytes are ours;
 * with "*" the answer says "*" and echoes nothing. */
#include "http/cors.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/alloc.h"
#include "http/http_internal.h"

/* An Origin is "scheme://host[:port]"; anything longer is not one of ours. */
#define MAX_ORIGIN 256

struct hs_cors {
    bool any;
    size_t count;
    char **origins;
    char *description;
};

static void add_origin(hs_cors_t *cors, const char *text, size_t len)
{
    while (len > 0 && (*text == ' ' || *text == '\t')) {
        text++;
        len--;
    }
    while (len > 0 && (text[len - 1] == ' ' || text[len - 1] == '\t' || text[len - 1] == '/'))
        len--;
    if (len == 0 || len >= MAX_ORIGIN)
        return;
    if (len == 1 && text[0] == '*') {
        cors->any = true;
        return;
    }
    for (size_t i = 0; i < cors->count; i++)
        if (strlen(cors->origins[i]) == len && strncasecmp(cors->origins[i], text, len) == 0)
            return; /* listed twice */
    cors->origins = hs_realloc(cors->origins, (cors->count + 1) * sizeof(char *));
    cors->origins[cors->count++] = hs_strndup(text, len);
}

/* The console's origins: loopback on the console port, and the host it
 * listens on when that is a name or a specific address. */
static void add_defaults(hs_cors_t *cors, const char *addr)
{
    const char *colon = addr ? strrchr(addr, ':') : NULL;
    if (colon == NULL || colon[1] == '\0' || strspn(colon + 1, "0123456789") != strlen(colon + 1))
        return;
    const char *port = colon + 1;
    char origin[MAX_ORIGIN];
    static const char *const loopback[] = {"localhost", "127.0.0.1", "[::1]"};
    for (size_t i = 0; i < sizeof(loopback) / sizeof(loopback[0]); i++) {
        snprintf(origin, sizeof(origin), "http://%s:%s", loopback[i], port);
        add_origin(cors, origin, strlen(origin));
    }
    size_t host_len = (size_t)(colon - addr);
    bool wildcard = host_len == 0 || (host_len == 7 && memcmp(addr, "0.0.0.0", 7) == 0) ||
                    (host_len == 2 && memcmp(addr, "::", 2) == 0) ||
                    (host_len == 4 && memcmp(addr, "[::]", 4) == 0);
    if (!wildcard && host_len < MAX_ORIGIN - 16) {
        int n = snprintf(origin, sizeof(origin), "http://%.*s:%s", (int)host_len, addr, port);
        if (n > 0 && (size_t)n < sizeof(origin))
            add_origin(cors, origin, (size_t)n);
    }
}

hs_cors_t *hs_cors_new(const char *list, const char *console_addr)
{
    hs_cors_t *cors = hs_calloc(1, sizeof(*cors));
    if (list == NULL || list[strspn(list, " \t")] == '\0') {
        add_defaults(cors, console_addr);
    } else if (strcasecmp(list, "none") != 0) {
        const char *p = list;
        for (;;) {
            const char *comma = strchr(p, ',');
            size_t len = comma ? (size_t)(comma - p) : strlen(p);
            add_origin(cors, p, len);
            if (comma == NULL)
                break;
            p = comma + 1;
        }
    }
    /* The description, for the start-up log line. */
    size_t total = 8;
    for (size_t i = 0; i < cors->count; i++)
        total += strlen(cors->origins[i]) + 1;
    cors->description = hs_calloc(1, total);
    if (cors->any)
        strcat(cors->description, "*");
    for (size_t i = 0; i < cors->count && !cors->any; i++) {
        if (i > 0)
            strcat(cors->description, ",");
        strcat(cors->description, cors->origins[i]);
    }
    if (cors->description[0] == '\0')
        strcat(cors->description, "none");
    return cors;
}

void hs_cors_free(hs_cors_t *cors)
{
    if (cors == NULL)
        return;
    for (size_t i = 0; i < cors->count; i++)
        hs_free(cors->origins[i]);
    hs_free(cors->origins);
    hs_free(cors->description);
    hs_free(cors);
}

/* The configured spelling of origin, "*" when any is allowed, or NULL. */
static const char *match(const hs_cors_t *cors, const char *origin, size_t len)
{
    if (cors->any)
        return "*";
    while (len > 0 && origin[len - 1] == '/')
        len--;
    for (size_t i = 0; i < cors->count; i++)
        if (strlen(cors->origins[i]) == len && strncasecmp(cors->origins[i], origin, len) == 0)
            return cors->origins[i];
    return NULL;
}

bool hs_cors_allows(const hs_cors_t *cors, const char *origin, size_t len)
{
    return match(cors, origin, len) != NULL;
}

bool hs_cors_allows_any(const hs_cors_t *cors)
{
    return cors->any;
}

const char *hs_cors_describe(const hs_cors_t *cors)
{
    return cors->description;
}

/* ---- what the server adds -------------------------------------------- */

/* The configured spelling of the request's origin (never the client's
 * bytes), "*" for any, or NULL when the answer gets no CORS headers. */
static const char *allowed_origin(const hs_http_request_t *req)
{
    const hs_cors_t *cors = hs_http__server_cors(req->server);
    if (cors == NULL)
        return NULL;
    size_t len;
    const char *origin = hs_http_header(req, "origin", &len);
    if (origin == NULL)
        return NULL;
    return match(cors, origin, len);
}

size_t hs_http__cors_headers(const hs_http_request_t *req, char *out, size_t out_len)
{
    const char *origin = allowed_origin(req);
    if (origin == NULL || out_len == 0)
        return 0;
    /* A specific origin varies with the request's Origin: caches must key
     * on it. */
    int n = snprintf(out, out_len, "Access-Control-Allow-Origin: %s\r\n%s", origin,
                     strcmp(origin, "*") == 0 ? "" : "Vary: Origin\r\n");
    if (n < 0 || (size_t)n >= out_len) {
        out[0] = '\0';
        return 0;
    }
    return (size_t)n;
}

void hs_http__cors_options(hs_http_request_t *req, const char *allow)
{
    char extra[512];
    int n = snprintf(extra, sizeof(extra), "Allow: %s, OPTIONS\r\n", allow);
    bool preflight = hs_http_header(req, "access-control-request-method", NULL) != NULL;
    if (preflight && allowed_origin(req) != NULL && n > 0 && (size_t)n < sizeof(extra))
        snprintf(extra + n, sizeof(extra) - (size_t)n,
                 "Access-Control-Allow-Methods: %s, OPTIONS\r\n"
                 "Access-Control-Allow-Headers: " HS_CORS_ALLOW_HEADERS "\r\n"
                 "Access-Control-Max-Age: %d\r\n",
                 allow, HS_CORS_MAX_AGE);
    hs_http_respond(req, 204, NULL, extra, NULL, 0);
}
