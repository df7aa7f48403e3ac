/* origin.c - Host and Origin header parsing and the two lists. */
#include "http/origin.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/alloc.h"
#include "http/client_addr.h"

struct hs_host_list {
    bool any;
    size_t count;
    char **names;
};

bool hs_http_split_host(const char *value, size_t len, char *host, size_t host_len, unsigned *port)
{
    *port = 0;
    while (len > 0 && (value[len - 1] == ' ' || value[len - 1] == '\t'))
        len--;
    while (len > 0 && (*value == ' ' || *value == '\t')) {
        value++;
        len--;
    }
    if (len == 0)
        return false;
    const char *name = value, *rest;
    size_t name_len;
    if (value[0] == '[') {
        const char *close = memchr(value, ']', len);
        if (close == NULL)
            return false;
        name = value + 1;
        name_len = (size_t)(close - name);
        rest = close + 1;
    } else {
        const char *colon = memchr(value, ':', len);
        name_len = colon ? (size_t)(colon - value) : len;
        rest = value + name_len;
    }
    size_t rest_len = len - (size_t)(rest - value);
    if (rest_len > 0) {
        if (rest[0] != ':' || rest_len < 2 || rest_len > 6)
            return false;
        unsigned p = 0;
        for (size_t i = 1; i < rest_len; i++) {
            if (!isdigit((unsigned char)rest[i]))
                return false;
            p = p * 10 + (unsigned)(rest[i] - '0');
        }
        if (p == 0 || p > 65535)
            return false;
        *port = p;
    }
    if (name_len > 0 && name[name_len - 1] == '.')
        name_len--; /* "localhost." is localhost */
    if (name_len == 0 || name_len >= host_len)
        return false;
    for (size_t i = 0; i < name_len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!(isalnum(c) || c == '-' || c == '.' || c == '_' || c == ':'))
            return false;
        host[i] = (char)tolower(c);
    }
    host[name_len] = '\0';
    /* A colon belongs only inside brackets. */
    if (value[0] != '[' && memchr(host, ':', name_len))
        return false;
    return true;
}

bool hs_http_host_is_loopback(const char *host)
{
    if (strcmp(host, "localhost") == 0)
        return true;
    /* Only an address written out in full: "127.1" is not one to a browser
     * either, and a name such as "127.0.0.1.evil.example" is a name. */
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, host, &a4) != 1 && inet_pton(AF_INET6, host, &a6) != 1)
        return false;
    return hs_addr_is_loopback(host);
}

hs_host_list_t *hs_host_list_new(const char *list)
{
    hs_host_list_t *l = hs_calloc(1, sizeof(*l));
    const char *p = list ? list : "";
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        while (len > 0 && isspace((unsigned char)*p)) {
            p++;
            len--;
        }
        while (len > 0 && isspace((unsigned char)p[len - 1]))
            len--;
        char host[HS_HOST_MAX];
        unsigned port;
        if (len == 1 && p[0] == '*')
            l->any = true;
        else if (len > 0 && hs_http_split_host(p, len, host, sizeof(host), &port)) {
            l->names = hs_realloc(l->names, (l->count + 1) * sizeof(char *));
            l->names[l->count++] = hs_strdup(host);
        }
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    return l;
}

void hs_host_list_free(hs_host_list_t *list)
{
    if (list == NULL)
        return;
    for (size_t i = 0; i < list->count; i++)
        hs_free(list->names[i]);
    hs_free(list->names);
    hs_free(list);
}

bool hs_host_list_allows(const hs_host_list_t *list, const char *host)
{
    if (list == NULL)
        return false;
    if (list->any)
        return true;
    for (size_t i = 0; i < list->count; i++)
        if (strcmp(list->names[i], host) == 0)
            return true;
    return false;
}

bool hs_http_host_allowed(const hs_host_list_t *list, const char *value, size_t len)
{
    char host[HS_HOST_MAX];
    unsigned port;
    if (!hs_http_split_host(value, len, host, sizeof(host), &port))
        return list != NULL && list->any;
    return hs_http_host_is_loopback(host) || hs_host_list_allows(list, host);
}

bool hs_http_split_origin(const char *value, size_t len, char *scheme, size_t scheme_len,
                          char *host, size_t host_len, unsigned *port)
{
    const char *sep = NULL;
    for (size_t i = 0; i + 3 <= len && sep == NULL; i++)
        if (memcmp(value + i, "://", 3) == 0)
            sep = value + i;
    if (sep == NULL || (size_t)(sep - value) + 3 >= len)
        return false;
    size_t s_len = (size_t)(sep - value);
    if (s_len == 0 || s_len >= scheme_len)
        return false;
    for (size_t i = 0; i < s_len; i++)
        scheme[i] = (char)tolower((unsigned char)value[i]);
    scheme[s_len] = '\0';
    const char *authority = sep + 3;
    size_t a_len = len - (size_t)(authority - value);
    /* A serialised origin has no path, user or query. */
    if (memchr(authority, '/', a_len) || memchr(authority, '@', a_len) ||
        memchr(authority, '?', a_len))
        return false;
    if (!hs_http_split_host(authority, a_len, host, host_len, port))
        return false;
    if (*port == 0) {
        if (strcmp(scheme, "http") == 0 || strcmp(scheme, "ws") == 0)
            *port = 80;
        else if (strcmp(scheme, "https") == 0 || strcmp(scheme, "wss") == 0)
            *port = 443;
        else
            return false;
    }
    return true;
}

bool hs_http_same_origin(const char *origin, size_t origin_len, const char *host, size_t host_len)
{
    char scheme[16], o_host[HS_HOST_MAX], h_host[HS_HOST_MAX];
    unsigned o_port, h_port;
    if (origin == NULL || host == NULL ||
        !hs_http_split_origin(origin, origin_len, scheme, sizeof(scheme), o_host, sizeof(o_host),
                              &o_port) ||
        !hs_http_split_host(host, host_len, h_host, sizeof(h_host), &h_port))
        return false;
    if (h_port == 0)
        h_port = strcmp(scheme, "https") == 0 ? 443 : 80;
    return o_port == h_port && strcmp(o_host, h_host) == 0;
}
