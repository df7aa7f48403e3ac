/* client_addr.h - who a request comes from: the peer, or, behind a trusted
 * reverse proxy, the first hop the proxies did not add themselves.
 *
 * --trusted-proxies is a list of addresses and CIDR blocks
 * ("127.0.0.1, 10.0.0.0/8, ::1, fd00::/8"). Only a peer in that list may
 * say, with X-Forwarded-For or Forwarded, whom it relays for; anyone else's
 * such headers are ignored. The chain "hop1, hop2, ..., peer" is walked from
 * the right, past every trusted address; the first untrusted one is the
 * client. Every proxy appends the address it saw, so what a client wrote
 * into the header itself sits to the left of that and is never reached.
 *
 * X-Forwarded-For wins when both headers are present: it is the one common
 * proxies append to (nginx, HAProxy); a proxy that sets Forwarded only must
 * drop X-Forwarded-For, and one that sets X-Forwarded-For should drop
 * Forwarded (docs/security.md has the nginx lines).
 *
 * IPv4 addresses also match as IPv4-mapped IPv6 ("::ffff:127.0.0.1") and
 * the other way round. Lists are immutable once parsed and may be read
 * from any thread.
 */
#ifndef HS_HTTP_CLIENT_ADDR_H
#define HS_HTTP_CLIENT_ADDR_H

#include <stdbool.h>
#include <stddef.h>

/* Room for any address text this module writes (INET6_ADDRSTRLEN). */
#define HS_CLIENT_ADDR_MAX 46

typedef struct hs_addr_list hs_addr_list_t;

/* Parses a comma-separated list of addresses and CIDR blocks. An empty or
 * blank text gives an empty list. Returns 0, or HS_EINVAL with a reason in
 * err (an entry that is neither, a prefix length out of range). */
int hs_addr_list_parse(const char *text, hs_addr_list_t **out, char *err, size_t err_len);
void hs_addr_list_free(hs_addr_list_t *list);
size_t hs_addr_list_count(const hs_addr_list_t *list);
/* Whether the address text ip (IPv4, IPv6, no port, no brackets) is in the
 * list. False for NULL lists and text that is not an address. */
bool hs_addr_list_contains(const hs_addr_list_t *list, const char *ip);

/* Whether ip is a loopback address: 127.0.0.0/8, ::1, ::ffff:127.0.0.0/104. */
bool hs_addr_is_loopback(const char *ip);

/* The address of a peer written "ip:port" or "[v6]:port", without the port
 * and the brackets, into out. */
void hs_addr_from_peer(const char *peer, char *out, size_t out_len);

/* Resolves the client address of a request whose TCP peer is peer_ip.
 * xff is the X-Forwarded-For value (several header lines joined with ","),
 * forwarded the Forwarded value likewise; either may be NULL. Writes the
 * client address into out (HS_CLIENT_ADDR_MAX bytes) and returns true when
 * the peer is a trusted proxy: the request was relayed, and is never taken
 * as coming from this machine. When a trusted proxy sends no usable header
 * the client is the proxy itself. */
bool hs_client_addr_resolve(const hs_addr_list_t *trusted, const char *peer_ip, const char *xff,
                            const char *forwarded, char *out, size_t out_len);

#endif
