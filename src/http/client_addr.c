/* client_addr.c - trusted proxies and the client address behind them.
 *
 * Addresses are compared as 16 bytes: an IPv4 address is held as its
 * IPv4-mapped IPv6 form and an IPv4 block's prefix grows by 96 bits, so one
 * compare serves both families and "::ffff:10.0.0.1" is 10.0.0.1. */
#include "http/client_addr.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/alloc.h"
#include "core/error.h"

/* Hops read from the forwarding headers, the rightmost ones: a longer chain
 * is cut on the left, which the walk from the right never gets to anyway
 * unless every one of these is a trusted proxy. */
#define MAX_HOPS 32
/* One hop's text ("[v6]:port" at most, quoted or not). */
#define MAX_HOP_TEXT 64

typedef struct block {
    unsigned char addr[16];
    unsigned prefix; /* bits, 0..128 */
} block_t;

struct hs_addr_list {
    block_t *blocks;
    size_t count;
};

/* Parses an address without port or brackets into 16 bytes. */
static bool parse_ip(const char *text, unsigned char out[16], bool *v4)
{
    struct in_addr a4;
    if (inet_pton(AF_INET, text, &a4) == 1) {
        memset(out, 0, 10);
        out[10] = out[11] = 0xff;
        memcpy(out + 12, &a4, 4);
        *v4 = true;
        return true;
    }
    *v4 = false;
    return inet_pton(AF_INET6, text, out) == 1;
}

static bool in_block(const block_t *b, const unsigned char addr[16])
{
    unsigned bits = b->prefix, i = 0;
    for (; bits >= 8; bits -= 8, i++)
        if (addr[i] != b->addr[i])
            return false;
    if (bits == 0)
        return true;
    unsigned char mask = (unsigned char)(0xff << (8 - bits));
    return (addr[i] & mask) == (b->addr[i] & mask);
}

static void trim(const char **text, size_t *len)
{
    while (*len > 0 && isspace((unsigned char)**text)) {
        (*text)++;
        (*len)--;
    }
    while (*len > 0 && isspace((unsigned char)(*text)[*len - 1]))
        (*len)--;
}

int hs_addr_list_parse(const char *text, hs_addr_list_t **out, char *err, size_t err_len)
{
    hs_addr_list_t *list = hs_calloc(1, sizeof(*list));
    const char *p = text ? text : "";
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        const char *entry = p;
        trim(&entry, &len);
        if (len > 0) {
            char buf[MAX_HOP_TEXT];
            if (len >= sizeof(buf))
                goto bad;
            memcpy(buf, entry, len);
            buf[len] = '\0';
            char *slash = strchr(buf, '/');
            long prefix = -1;
            if (slash) {
                char *end;
                *slash = '\0';
                prefix = strtol(slash + 1, &end, 10);
                if (slash[1] == '\0' || *end != '\0' || prefix < 0)
                    goto bad;
            }
            block_t b;
            bool v4;
            if (!parse_ip(buf, b.addr, &v4) || prefix > (v4 ? 32 : 128))
                goto bad;
            b.prefix = prefix < 0 ? 128 : (unsigned)prefix + (v4 ? 96 : 0);
            list->blocks = hs_realloc(list->blocks, (list->count + 1) * sizeof(block_t));
            list->blocks[list->count++] = b;
        }
        if (comma == NULL)
            break;
        p = comma + 1;
        continue;
    bad:
        snprintf(err, err_len,
                 "--trusted-proxies: \"%.*s\" is not an address or CIDR block (e.g. 10.0.0.0/8)",
                 (int)(len > 64 ? 64 : len), entry);
        hs_addr_list_free(list);
        *out = NULL;
        return HS_EINVAL;
    }
    *out = list;
    return 0;
}

void hs_addr_list_free(hs_addr_list_t *list)
{
    if (list == NULL)
        return;
    hs_free(list->blocks);
    hs_free(list);
}

size_t hs_addr_list_count(const hs_addr_list_t *list)
{
    return list ? list->count : 0;
}

bool hs_addr_list_contains(const hs_addr_list_t *list, const char *ip)
{
    if (list == NULL || list->count == 0 || ip == NULL)
        return false;
    unsigned char addr[16];
    bool v4;
    if (!parse_ip(ip, addr, &v4))
        return false;
    for (size_t i = 0; i < list->count; i++)
        if (in_block(&list->blocks[i], addr))
            return true;
    return false;
}

bool hs_addr_is_loopback(const char *ip)
{
    static const block_t loopback[] = {
        {{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 0}, 104},
        {{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 128},
    };
    unsigned char addr[16];
    bool v4;
    if (ip == NULL || !parse_ip(ip, addr, &v4))
        return false;
    return in_block(&loopback[0], addr) || in_block(&loopback[1], addr);
}

void hs_addr_from_peer(const char *peer, char *out, size_t out_len)
{
    const char *start = peer, *end = strrchr(peer, ':');
    if (peer[0] == '[') {
        start = peer + 1;
        end = strchr(peer, ']');
    } else if (end && strchr(peer, ':') != end) {
        end = NULL; /* a bare IPv6 address */
    }
    size_t len = end ? (size_t)(end - start) : strlen(start);
    if (len >= out_len)
        len = out_len - 1;
    memcpy(out, start, len);
    out[len] = '\0';
}

/* One hop as written in a header ("1.2.3.4", "1.2.3.4:80", "[::1]:80",
 * "::1", quoted or not) to its address text in out; false when it is none
 * ("unknown", an obfuscated "_name", garbage). */
static bool hop_address(const char *text, size_t len, char *out, size_t out_len)
{
    trim(&text, &len);
    if (len >= 2 && text[0] == '"' && text[len - 1] == '"') {
        text++;
        len -= 2;
    }
    if (len == 0 || len >= MAX_HOP_TEXT || len >= out_len)
        return false;
    char buf[MAX_HOP_TEXT];
    memcpy(buf, text, len);
    buf[len] = '\0';
    char *addr = buf;
    if (buf[0] == '[') {
        char *close = strchr(buf, ']');
        if (close == NULL || (close[1] != '\0' && close[1] != ':'))
            return false;
        *close = '\0';
        addr = buf + 1;
    } else {
        char *colon = strchr(buf, ':');
        if (colon && strchr(colon + 1, ':') == NULL)
            *colon = '\0'; /* IPv4 with a port */
    }
    unsigned char bytes[16];
    bool v4;
    if (!parse_ip(addr, bytes, &v4))
        return false;
    size_t addr_len = strlen(addr);
    if (addr_len >= out_len)
        return false;
    memcpy(out, addr, addr_len + 1);
    return true;
}

typedef struct hops {
    char addr[MAX_HOPS][HS_CLIENT_ADDR_MAX];
    bool valid[MAX_HOPS];
    size_t count;
} hops_t;

static void add_hop(hops_t *h, const char *text, size_t len)
{
    if (h->count == MAX_HOPS) { /* keep the rightmost */
        memmove(h->addr, h->addr + 1, sizeof(h->addr) - sizeof(h->addr[0]));
        memmove(h->valid, h->valid + 1, sizeof(h->valid) - sizeof(h->valid[0]));
        h->count--;
    }
    h->valid[h->count] = hop_address(text, len, h->addr[h->count], HS_CLIENT_ADDR_MAX);
    h->count++;
}

static void read_xff(hops_t *h, const char *value)
{
    const char *p = value;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        const char *t = p;
        size_t tl = len;
        trim(&t, &tl);
        if (tl > 0) /* empty list elements are allowed and skipped */
            add_hop(h, t, tl);
        if (comma == NULL)
            break;
        p = comma + 1;
    }
}

/* Forwarded (RFC 7239): elements separated by ",", pairs by ";"; each
 * element's "for" is a hop (an element without one is an unknown hop). */
static void read_forwarded(hops_t *h, const char *value)
{
    const char *p = value;
    for (;;) {
        const char *comma = strchr(p, ',');
        const char *end = comma ? comma : p + strlen(p);
        const char *found = NULL;
        size_t found_len = 0;
        const char *q = p;
        while (q < end) {
            const char *semi = memchr(q, ';', (size_t)(end - q));
            const char *pair_end = semi ? semi : end;
            const char *k = q;
            size_t kl = (size_t)(pair_end - q);
            trim(&k, &kl);
            if (kl > 4 && strncasecmp(k, "for=", 4) == 0) {
                found = k + 4;
                found_len = kl - 4;
            }
            q = semi ? semi + 1 : end;
        }
        const char *t = p;
        size_t tl = (size_t)(end - p);
        trim(&t, &tl);
        if (tl > 0)
            add_hop(h, found ? found : "", found ? found_len : 0);
        if (comma == NULL)
            break;
        p = comma + 1;
    }
}

bool hs_client_addr_resolve(const hs_addr_list_t *trusted, const char *peer_ip, const char *xff,
                            const char *forwarded, char *out, size_t out_len)
{
    snprintf(out, out_len, "%s", peer_ip);
    if (!hs_addr_list_contains(trusted, peer_ip))
        return false;
    hops_t *h = hs_calloc(1, sizeof(*h));
    if (xff && xff[0])
        read_xff(h, xff);
    else if (forwarded && forwarded[0])
        read_forwarded(h, forwarded);
    /* From the right: past every trusted proxy, to the first hop that is
     * not one. A hop that names no address ends the walk at the proxy that
     * wrote it. */
    for (size_t i = h->count; i-- > 0;) {
        if (!h->valid[i])
            break;
        snprintf(out, out_len, "%s", h->addr[i]);
        if (!hs_addr_list_contains(trusted, h->addr[i]))
            break;
    }
    hs_free(h);
    return true;
}
