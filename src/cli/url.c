/* url.c - parsing --server and --ws-server values. */
#include "cli/url.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/error.h"

static int copy(char *dst, size_t cap, const char *src, size_t len)
{
    if (len >= cap)
        return HS_ETOOBIG;
    memcpy(dst, src, len);
    dst[len] = '\0';
    return 0;
}

int hs_cli_url_parse(const char *text, const char *want_scheme, const char *default_port,
                     hs_cli_url_t *out, char *err, size_t err_len)
{
    memset(out, 0, sizeof(*out));
    const char *p = text;
    const char *sep = strstr(text, "://");
    size_t want = strlen(want_scheme);
    if (sep) {
        size_t len = (size_t)(sep - text);
        bool plain = len == want && strncasecmp(text, want_scheme, len) == 0;
        bool secure = len == want + 1 && strncasecmp(text, want_scheme, want) == 0 &&
                      (text[want] == 's' || text[want] == 'S');
        if (!plain && !secure) {
            snprintf(err, err_len, "\"%s\": only %s:// and %ss:// URLs are supported here", text,
                     want_scheme, want_scheme);
            return HS_EINVAL;
        }
        out->tls = secure;
        p = sep + 3;
    }
    snprintf(out->scheme, sizeof(out->scheme), "%s%s", want_scheme, out->tls ? "s" : "");
    if (out->tls)
        default_port = "443";
    const char *slash = strchr(p, '/');
    const char *end = slash ? slash : p + strlen(p);
    const char *host = p, *host_end, *port = NULL;
    if (*p == '[') {
        host = p + 1;
        host_end = memchr(host, ']', (size_t)(end - host));
        if (host_end == NULL)
            goto bad;
        if (host_end + 1 < end) {
            if (host_end[1] != ':')
                goto bad;
            port = host_end + 2;
        }
    } else {
        host_end = memchr(p, ':', (size_t)(end - p));
        if (host_end)
            port = host_end + 1;
        else
            host_end = end;
    }
    if (host_end == host) {
        snprintf(out->host, sizeof(out->host), "localhost");
    } else if (copy(out->host, sizeof(out->host), host, (size_t)(host_end - host)) != 0) {
        goto bad;
    }
    if (port && port < end) {
        for (const char *c = port; c < end; c++)
            if (!isdigit((unsigned char)*c))
                goto bad;
        if (copy(out->port, sizeof(out->port), port, (size_t)(end - port)) != 0)
            goto bad;
    } else {
        snprintf(out->port, sizeof(out->port), "%s", default_port);
    }
    if (strchr(out->host, ':'))
        snprintf(out->authority, sizeof(out->authority), "[%s]:%s", out->host, out->port);
    else
        snprintf(out->authority, sizeof(out->authority), "%s:%s", out->host, out->port);
    if (slash) {
        size_t len = strlen(slash);
        while (len > 0 && slash[len - 1] == '/')
            len--;
        if (copy(out->path, sizeof(out->path), slash, len) != 0)
            goto bad;
    }
    return 0;
bad:
    snprintf(err, err_len, "\"%s\" is not a %s://host:port URL", text, want_scheme);
    return HS_EINVAL;
}

void hs_cli_url_show(const hs_cli_url_t *url, char *out, size_t cap)
{
    /* The query may carry a token (?token=...): its values are not shown. */
    const char *query = strchr(url->path, '?');
    int n = snprintf(out, cap, "%s://%s%.*s", url->scheme, url->authority,
                     (int)(query ? (size_t)(query - url->path) : strlen(url->path)), url->path);
    if (query && n > 0 && (size_t)n + 5 < cap)
        snprintf(out + n, cap - (size_t)n, "?***");
}
