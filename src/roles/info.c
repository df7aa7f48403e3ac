/* info.c - GET /api/v1/info: the server describing itself to its clients
 * (the CLI asks it where the WebSocket is), and the URL derivation behind
 * it. */
#include "roles/info.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/alloc.h"
#include "core/error.h"
#include "roles/decode.h"

#define WS_PATH  "/api/v1/ws"
#define SSE_PATH "/api/v1/sse"

struct hs_info {
    const hs_config_t *cfg;
    hs_info_site_t site;
    bool site_known;
};

/* ---- the derivation (pure) ------------------------------------------------ */

/* A Host value is host[:port] with host a name, an IPv4 address or an IPv6
 * one in brackets: nothing that could turn the URL into something else. */
static bool host_valid(const char *host, size_t len)
{
    if (len == 0 || len > 255)
        return false;
    size_t i = 0;
    if (host[0] == '[') {
        for (i = 1; i < len && host[i] != ']'; i++)
            if (!isxdigit((unsigned char)host[i]) && host[i] != ':' && host[i] != '.')
                return false;
        if (i == len || i == 1)
            return false;
        i++;
    } else {
        for (; i < len && host[i] != ':'; i++)
            if (!isalnum((unsigned char)host[i]) && host[i] != '.' && host[i] != '-')
                return false;
        if (i == 0)
            return false;
    }
    if (i == len)
        return true;
    if (host[i] != ':' || i + 1 == len || len - i - 1 > 5)
        return false;
    for (i++; i < len; i++)
        if (!isdigit((unsigned char)host[i]))
            return false;
    return true;
}

/* The host part of a valid Host value (brackets kept). */
static size_t host_name_len(const char *host, size_t len)
{
    if (host[0] == '[')
        return (size_t)((const char *)memchr(host, ']', len) - host) + 1;
    const char *colon = memchr(host, ':', len);
    return colon ? (size_t)(colon - host) : len;
}

int hs_info_check_public_url(const char *url, char *err, size_t err_len)
{
    if (url == NULL || url[0] == '\0')
        return 0;
    const char *rest = NULL;
    if (strncasecmp(url, "ws://", 5) == 0)
        rest = url + 5;
    else if (strncasecmp(url, "wss://", 6) == 0)
        rest = url + 6;
    size_t authority = rest ? strcspn(rest, "/") : 0;
    bool ok = rest && host_valid(rest, authority) && strlen(url) < 1024;
    for (const char *p = url; ok && *p; p++)
        if (!isgraph((unsigned char)*p) || *p == '?' || *p == '#')
            ok = false;
    if (!ok) {
        snprintf(err, err_len,
                 "--public-ws-url: \"%.200s\" is not ws://HOST[:PORT][/PATH] or "
                 "wss://HOST[:PORT][/PATH] (no query, no fragment)",
                 url);
        return HS_EINVAL;
    }
    return 0;
}

int hs_info_ws_base(const char *public_ws_url, const hs_info_site_t *site, const char *host,
                    size_t host_len, bool proxied, const char *forwarded_proto, char *out,
                    size_t cap)
{
    if (public_ws_url && public_ws_url[0]) {
        size_t len = strlen(public_ws_url);
        /* The flag may name the endpoint itself: keep its base. */
        if (len >= strlen(WS_PATH) && strcmp(public_ws_url + len - strlen(WS_PATH), WS_PATH) == 0)
            len -= strlen(WS_PATH);
        while (len > 0 && public_ws_url[len - 1] == '/')
            len--;
        return snprintf(out, cap, "%.*s", (int)len, public_ws_url) < (int)cap ? 0 : HS_ETOOBIG;
    }
    if (site == NULL || site->ws_port == 0)
        return HS_ENOTFOUND;
    if (host == NULL || host_len == 0) {
        host = "localhost";
        host_len = strlen(host);
    } else if (!host_valid(host, host_len)) {
        return HS_EINVAL;
    }
    int n;
    if (proxied) {
        /* The proxy's origin serves both ports (the recipe's one server
         * block): the same host and port, its scheme. */
        bool secure = forwarded_proto ? strcasecmp(forwarded_proto, "https") == 0 ||
                                            strcasecmp(forwarded_proto, "wss") == 0
                                      : site->tls;
        n = snprintf(out, cap, "%s://%.*s", secure ? "wss" : "ws", (int)host_len, host);
    } else {
        n = snprintf(out, cap, "%s://%.*s:%d", site->tls ? "wss" : "ws",
                     (int)host_name_len(host, host_len), host, site->ws_port);
    }
    return n > 0 && n < (int)cap ? 0 : HS_ETOOBIG;
}

/* ---- the route ------------------------------------------------------------- */

/* ws[s]://... -> http[s]://... for the event stream. */
static json_t *sse_url(const char *base)
{
    char url[1200];
    bool secure = strncasecmp(base, "wss://", 6) == 0;
    snprintf(url, sizeof(url), "%s://%s%s", secure ? "https" : "http", strstr(base, "://") + 3,
             SSE_PATH);
    return json_string(url);
}

static void get_info(hs_http_request_t *req, void *ctx)
{
    hs_info_t *info = ctx;
    const hs_config_t *cfg = info->cfg;
    const hs_info_site_t *site = info->site_known ? &info->site : NULL;
    size_t host_len = 0, proto_len = 0;
    const char *host = hs_http_header(req, "host", &host_len);
    bool proxied = hs_http_request_proxied(req);
    char proto[16] = "";
    const char *forwarded = proxied ? hs_http_header(req, "x-forwarded-proto", &proto_len) : NULL;
    if (forwarded) {
        /* "https" or, after several proxies, "https, http": the first. */
        size_t first = strcspn(forwarded, ", ");
        snprintf(proto, sizeof(proto), "%.*s", (int)(first < proto_len ? first : proto_len),
                 forwarded);
    }
    char base[1100];
    int rc = hs_info_ws_base(cfg->public_ws_url, site, host, host_len, proxied,
                             forwarded ? proto : NULL, base, sizeof(base));
    if (rc == HS_EINVAL) {
        hs_http_respond_error(req, 400, "bad_request",
                              "the Host header is not host[:port]; the WebSocket URL cannot be "
                              "derived from it");
        return;
    }
    json_t *ws = json_null(), *sse = json_null();
    if (rc == 0) {
        char url[1200];
        snprintf(url, sizeof(url), "%s%s", base, WS_PATH);
        ws = json_string(url);
        sse = sse_url(base);
    }
    bool scale_out = site ? site->scale_out : cfg->redis[0] != '\0';
    /* A scale-out publisher's notifiers decide about tokens; it knows only
     * its own settings. */
    json_t *tokens = site && (site->ws_port != 0 || site->client_tokens)
                         ? json_boolean(site->client_tokens)
                         : json_null();
    json_t *roles = json_pack("[s]", "publisher");
    if (site && site->ws_port != 0)
        json_array_append_new(roles, json_string("notifier"));
    if (site && site->consumer)
        json_array_append_new(roles, json_string("consumer"));
    json_t *body = json_pack(
        "{s:s, s:s, s:o, s:o, s:o, s:b, s:{s:b, s:o}, s:{s:I, s:I, s:I, s:I, s:i, s:i}}", "version",
        HOUSTON_VERSION, "mode", scale_out ? "scale-out" : "embedded", "roles", roles, "wsURL", ws,
        "sseURL", sse, "tls", site ? site->tls : cfg->tls_cert[0] != '\0', "auth", "apiKey",
        site ? site->api_keys : false, "clientToken", tokens, "limits", "maxBody",
        (json_int_t)cfg->max_body, "maxContent", (json_int_t)cfg->max_content, "maxSubscriptions",
        (json_int_t)cfg->max_subscriptions, "maxWsMessage", (json_int_t)cfg->max_ws_message,
        "historyPageMax", HS_HISTORY_LIMIT_MAX, "topicMax", HS_TOPIC_MAX);
    json_object_set_new(json_object_get(body, "limits"), "maxBatch",
                        json_integer((json_int_t)cfg->max_batch));
    /* The URLs follow the request's Host: no shared cache may keep them. */
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    hs_http_respond(req, 200, "application/json", "Cache-Control: no-store\r\n", text,
                    strlen(text));
    free(text);
}

hs_info_t *hs_info_add_route(hs_router_t *router, const hs_config_t *cfg)
{
    hs_info_t *info = hs_calloc(1, sizeof(*info));
    info->cfg = cfg;
    hs_router_add(router, HTTP_GET, "/api/v1/info", get_info, info);
    return info;
}

void hs_info_set_site(hs_info_t *info, const hs_info_site_t *site)
{
    info->site = *site;
    info->site_known = true;
}

void hs_info_free(hs_info_t *info)
{
    hs_free(info);
}
