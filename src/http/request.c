/* request.c - the request object: target, headers, body, path parameters
 * and the decoded query string. */
#include <string.h>
#include <strings.h>

#include "core/alloc.h"
#include "core/error.h"
#include "http/http_internal.h"

hs_http_request_t *hs_http__request_new(hs_http_server_t *server, hs_http_conn_t *hc)
{
    hs_http_request_t *req = hs_calloc(1, sizeof(*req));
    req->server = server;
    req->hc = hc;
    return req;
}

void hs_http__request_free(hs_http_request_t *req)
{
    if (req == NULL)
        return;
    for (unsigned i = 0; i < req->param_count; i++)
        hs_free(req->params[i].value);
    for (unsigned i = 0; i < req->query_count; i++) {
        hs_free(req->query[i].name);
        hs_free(req->query[i].value);
    }
    hs_free(req->query);
    hs_free(req->url);
    hs_free(req->path);
    hs_free(req->hbuf);
    hs_free(req->headers);
    hs_free(req->body);
    hs_free(req);
}

int hs_http__request_add_header_bytes(hs_http_request_t *req, const char *at, size_t len,
                                      bool is_value, size_t max_bytes, unsigned max_headers)
{
    if (req->hbuf_len + len + 2 > max_bytes)
        return HS_ETOOBIG;
    bool new_field = !is_value && (req->header_count == 0 || req->last_was_value);
    if (new_field) {
        if (req->header_count >= max_headers)
            return HS_ETOOBIG;
        if (req->header_count == req->header_cap) {
            req->header_cap = req->header_cap ? req->header_cap * 2 : 8;
            req->headers = hs_realloc(req->headers, req->header_cap * sizeof(*req->headers));
        }
        /* Terminate the previous value. */
        if (req->header_count > 0)
            req->hbuf[req->hbuf_len++] = '\0';
        header_ref_t *h = &req->headers[req->header_count++];
        memset(h, 0, sizeof(*h));
        h->name_off = (uint32_t)req->hbuf_len;
    } else if (is_value && !req->last_was_value) {
        /* Terminate the name; the value starts here. */
        req->hbuf[req->hbuf_len++] = '\0';
        req->headers[req->header_count - 1].value_off = (uint32_t)req->hbuf_len;
    }
    if (req->hbuf_len + len + 2 > req->hbuf_cap) {
        size_t cap = req->hbuf_cap ? req->hbuf_cap : 256;
        while (cap < req->hbuf_len + len + 2)
            cap *= 2;
        req->hbuf = hs_realloc(req->hbuf, cap);
        req->hbuf_cap = cap;
    }
    header_ref_t *h = &req->headers[req->header_count - 1];
    for (size_t i = 0; i < len; i++) {
        char c = at[i];
        if (!is_value && c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        req->hbuf[req->hbuf_len++] = c;
    }
    if (is_value)
        h->value_len += (uint32_t)len;
    else
        h->name_len += (uint32_t)len;
    req->hbuf[req->hbuf_len] = '\0';
    req->last_was_value = is_value;
    return 0;
}

enum http_method hs_http_method(const hs_http_request_t *req)
{
    return req->method;
}

const char *hs_http_path(const hs_http_request_t *req, size_t *len)
{
    if (len)
        *len = req->path_len;
    return req->path ? req->path : "";
}

const char *hs_http_header(const hs_http_request_t *req, const char *name, size_t *len)
{
    size_t name_len = strlen(name);
    for (unsigned i = 0; i < req->header_count; i++) {
        const header_ref_t *h = &req->headers[i];
        if (h->name_len == name_len && strncasecmp(req->hbuf + h->name_off, name, name_len) == 0) {
            if (len)
                *len = h->value_len;
            /* A header with no value has value_off 0; give an empty string. */
            return h->value_off ? req->hbuf + h->value_off : "";
        }
    }
    return NULL;
}

static int hex_value(char c);

char *hs_http__request_header_joined(const hs_http_request_t *req, const char *name)
{
    size_t name_len = strlen(name), total = 0;
    for (unsigned i = 0; i < req->header_count; i++) {
        const header_ref_t *h = &req->headers[i];
        if (h->name_len == name_len && strncasecmp(req->hbuf + h->name_off, name, name_len) == 0)
            total += h->value_len + 2;
    }
    if (total == 0)
        return NULL;
    char *out = hs_malloc(total + 1);
    size_t used = 0;
    for (unsigned i = 0; i < req->header_count; i++) {
        const header_ref_t *h = &req->headers[i];
        if (h->name_len != name_len || strncasecmp(req->hbuf + h->name_off, name, name_len) != 0)
            continue;
        if (used > 0)
            out[used++] = ',';
        if (h->value_off) {
            memcpy(out + used, req->hbuf + h->value_off, h->value_len);
            used += h->value_len;
        }
    }
    out[used] = '\0';
    return out;
}

/* Query parameters whose values are credentials: never in a log line. */
static bool secret_param(const char *name, size_t len)
{
    static const char *const names[] = {"token",  "resume", "key",      "api_key",
                                        "apikey", "secret", "password", "access_token"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strlen(names[i]) == len && strncasecmp(names[i], name, len) == 0)
            return true;
    return false;
}

void hs_http_loggable_target(const hs_http_request_t *req, char *out, size_t out_len)
{
    if (out_len == 0)
        return;
    const char *url = req->url ? req->url : (req->path ? req->path : "-");
    size_t used = 0;
    const char *p = url;
    bool in_query = false;
    while (*p && used + 1 < out_len) {
        /* A parameter starts after '?' or '&': copy its name, then its value
         * or "***". */
        if (!in_query && *p != '?') {
            out[used++] = *p++;
            continue;
        }
        out[used++] = *p++; /* '?' or '&' */
        in_query = true;
        size_t name_len = strcspn(p, "=&");
        for (size_t i = 0; i < name_len && used + 1 < out_len; i++)
            out[used++] = p[i];
        /* Compared decoded, as hs_http_query finds it ("tok%65n" is token). */
        char name[32];
        size_t nl = 0;
        for (size_t i = 0; i < name_len && nl < sizeof(name); i++) {
            int hi, lo;
            if (p[i] == '%' && i + 2 < name_len && (hi = hex_value(p[i + 1])) >= 0 &&
                (lo = hex_value(p[i + 2])) >= 0) {
                name[nl++] = (char)(hi * 16 + lo);
                i += 2;
            } else {
                name[nl++] = p[i] == '+' ? ' ' : p[i];
            }
        }
        bool secret = nl < sizeof(name) && secret_param(name, nl);
        p += name_len;
        if (*p != '=')
            continue;
        if (used + 1 < out_len)
            out[used++] = *p++;
        size_t value_len = strcspn(p, "&");
        if (secret) {
            for (const char *m = "***"; *m && used + 1 < out_len; m++)
                out[used++] = *m;
        } else {
            for (size_t i = 0; i < value_len && used + 1 < out_len; i++)
                out[used++] = p[i];
        }
        p += value_len;
    }
    out[used] = '\0';
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes s[0..len) ('+' is a space) into a new string. */
static char *url_decode(const char *s, size_t len)
{
    char *out = hs_malloc(len + 1);
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '+') {
            out[o++] = ' ';
        } else if (s[i] == '%') {
            int hi = i + 2 < len ? hex_value(s[i + 1]) : -1;
            int lo = i + 2 < len ? hex_value(s[i + 2]) : -1;
            if (hi < 0 || lo < 0) {
                hs_free(out);
                return NULL;
            }
            out[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return out;
}

int hs_http__request_parse_target(hs_http_request_t *req)
{
    const char *url = req->url ? req->url : "";
    const char *mark = memchr(url, '?', req->url_len);
    req->path_len = mark ? (size_t)(mark - url) : req->url_len;
    hs_free(req->path);
    req->path = hs_strndup(url, req->path_len);
    if (mark == NULL)
        return 0;
    const char *q = mark + 1;
    const char *end = req->url + req->url_len;
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *stop = amp ? amp : end;
        if (stop > q) {
            if (req->query_count >= HS_HTTP_MAX_QUERY)
                return HS_EINVAL;
            const char *eq = memchr(q, '=', (size_t)(stop - q));
            const char *name_end = eq ? eq : stop;
            char *name = url_decode(q, (size_t)(name_end - q));
            char *value = eq ? url_decode(eq + 1, (size_t)(stop - eq - 1)) : hs_strdup("");
            if (name == NULL || value == NULL) {
                hs_free(name);
                hs_free(value);
                return HS_EINVAL;
            }
            if (req->query == NULL)
                req->query = hs_calloc(HS_HTTP_MAX_QUERY, sizeof(*req->query));
            req->query[req->query_count++] = (kv_t){.name = name, .value = value};
        }
        q = stop + 1;
    }
    return 0;
}

const char *hs_http_query(hs_http_request_t *req, const char *name)
{
    for (unsigned i = 0; i < req->query_count; i++)
        if (strcmp(req->query[i].name, name) == 0)
            return req->query[i].value;
    return NULL;
}

void hs_http__request_set_param(hs_http_request_t *req, const char *name, const char *value,
                                size_t len)
{
    if (req->param_count >= HS_HTTP_MAX_PARAMS)
        return;
    req->params[req->param_count].name = (char *)name;
    req->params[req->param_count].value = hs_strndup(value, len);
    req->param_count++;
}

const char *hs_http_param(const hs_http_request_t *req, const char *name)
{
    for (unsigned i = 0; i < req->param_count; i++)
        if (strcmp(req->params[i].name, name) == 0)
            return req->params[i].value;
    return NULL;
}

const char *hs_http_body(const hs_http_request_t *req, size_t *len)
{
    *len = req->body_len;
    return req->body ? req->body : "";
}

const char *hs_http_request_id(const hs_http_request_t *req)
{
    return req->id;
}
