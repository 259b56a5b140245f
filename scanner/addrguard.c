/* The private-address guard. See addrguard.h.
 *
 * Two tables of refused prefixes, most specific first, with the phrase a
 * record shows. Sources: the IANA IPv4 and IPv6 Special-Purpose Address
 * Registries (RFC 6890) and the RFCs cited beside each row. IPv6 that
 * embeds an IPv4 address is judged by that address.
 */
#include "stls/addrguard.h"

#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <uv.h>

typedef struct {
  uint32_t net; /* host byte order */
  unsigned bits;
  const char *why;
} v4_range_t;

static const v4_range_t v4_refused[] = {
    {0x00000000u, 32, "unspecified (0.0.0.0)"},
    {0x00000000u, 8, "reserved, \"this network\" (0.0.0.0/8)"},
    {0x0a000000u, 8, "private (10.0.0.0/8, RFC 1918)"},
    {0x64400000u, 10, "shared CGNAT space (100.64.0.0/10, RFC 6598)"},
    {0x7f000000u, 8, "loopback (127.0.0.0/8)"},
    {0xa9fe0000u, 16, "link-local (169.254.0.0/16)"},
    {0xac100000u, 12, "private (172.16.0.0/12, RFC 1918)"},
    {0xc0000000u, 24, "IETF protocol assignments (192.0.0.0/24)"},
    {0xc0000200u, 24, "documentation (192.0.2.0/24)"},
    {0xc0a80000u, 16, "private (192.168.0.0/16, RFC 1918)"},
    {0xc6120000u, 15, "benchmarking (198.18.0.0/15)"},
    {0xc6336400u, 24, "documentation (198.51.100.0/24)"},
    {0xcb007100u, 24, "documentation (203.0.113.0/24)"},
    {0xe0000000u, 4, "multicast (224.0.0.0/4)"},
    {0xffffffffu, 32, "broadcast (255.255.255.255)"},
    {0xf0000000u, 4, "reserved (240.0.0.0/4)"},
};

/* How an IPv6 prefix is judged: refused outright, or by the IPv4 address
 * it carries (at a byte offset; Teredo's client address is inverted). */
enum { V6_REFUSE, V6_EMBED, V6_TEREDO };

typedef struct {
  uint8_t net[16];
  unsigned bits;
  int kind;
  unsigned v4_off; /* V6_EMBED: where the IPv4 address sits */
  const char *why;
} v6_range_t;

static const v6_range_t v6_refused[] = {
    {{0}, 128, V6_REFUSE, 0, "unspecified (::)"},
    {{[15] = 1}, 128, V6_REFUSE, 0, "loopback (::1)"},
    {{[10] = 0xff, [11] = 0xff},
     96,
     V6_EMBED,
     12,
     "IPv4-mapped (::ffff:0:0/96)"},
    {{0x00, 0x64, 0xff, 0x9b}, 96, V6_EMBED, 12, "NAT64 (64:ff9b::/96)"},
    /* RFC 8215 local-use NAT64: sites put a /96 inside it, so the IPv4
     * address is read from the last 32 bits as in 64:ff9b::/96. */
    {{0x00, 0x64, 0xff, 0x9b, 0x00, 0x01},
     48,
     V6_EMBED,
     12,
     "local-use NAT64 (64:ff9b:1::/48)"},
    {{0x20, 0x01, 0x0d, 0xb8},
     32,
     V6_REFUSE,
     0,
     "documentation (2001:db8::/32)"},
    {{0x3f, 0xff}, 20, V6_REFUSE, 0, "documentation (3fff::/20, RFC 9637)"},
    {{0x20, 0x01, 0x00, 0x02}, 48, V6_REFUSE, 0, "benchmarking (2001:2::/48)"},
    {{0x20, 0x01, 0x00, 0x00}, 32, V6_TEREDO, 0, "Teredo (2001::/32)"},
    {{0x20, 0x02}, 16, V6_EMBED, 2, "6to4 (2002::/16)"},
    {{0xfc}, 7, V6_REFUSE, 0, "unique local (fc00::/7)"},
    {{0xfe, 0x80}, 10, V6_REFUSE, 0, "link-local (fe80::/10)"},
    {{0xff}, 8, V6_REFUSE, 0, "multicast (ff00::/8)"},
};

static bool v6_in(const uint8_t *a, const uint8_t *net, unsigned bits) {
  unsigned full = bits / 8, rest = bits % 8;
  if (memcmp(a, net, full) != 0)
    return false;
  if (rest == 0)
    return true;
  uint8_t mask = (uint8_t)(0xffu << (8 - rest));
  return (a[full] & mask) == (net[full] & mask);
}

static bool v4_allowed(uint32_t a, const char **why) {
  for (size_t i = 0; i < sizeof(v4_refused) / sizeof(v4_refused[0]); i++) {
    const v4_range_t *r = &v4_refused[i];
    uint32_t mask = r->bits ? 0xffffffffu << (32 - r->bits) : 0;
    if ((a & mask) == (r->net & mask)) {
      *why = r->why;
      return false;
    }
  }
  return true;
}

static uint32_t v4_at(const uint8_t *p, uint8_t x) {
  return (uint32_t)(p[0] ^ x) << 24 | (uint32_t)(p[1] ^ x) << 16 |
         (uint32_t)(p[2] ^ x) << 8 | (uint32_t)(p[3] ^ x);
}

static bool v6_allowed(const uint8_t *a, const char **why) {
  const char *inner;
  for (size_t i = 0; i < sizeof(v6_refused) / sizeof(v6_refused[0]); i++) {
    const v6_range_t *r = &v6_refused[i];
    if (!v6_in(a, r->net, r->bits))
      continue;
    switch (r->kind) {
    case V6_EMBED:
      if (v4_allowed(v4_at(a + r->v4_off, 0), &inner))
        return true;
      *why = r->why;
      return false;
    case V6_TEREDO:
      /* Server address in bits 32-63, the client's (where the packets
       * end up) inverted in the last 32 bits: both must be allowed. */
      if (v4_allowed(v4_at(a + 4, 0), &inner) &&
          v4_allowed(v4_at(a + 12, 0xff), &inner))
        return true;
      *why = r->why;
      return false;
    default: *why = r->why; return false;
    }
  }
  /* Only 2000::/3 is global unicast; everything else is reserved. */
  if ((a[0] & 0xe0) != 0x20) {
    *why = "reserved (outside 2000::/3)";
    return false;
  }
  return true;
}

bool stls_addr_allowed(const struct sockaddr *sa, const char **why) {
  const char *dummy;
  if (!why)
    why = &dummy;
  *why = NULL;
  if (sa && sa->sa_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
    return v4_allowed(ntohl(in->sin_addr.s_addr), why);
  }
  if (sa && sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
    return v6_allowed(in6->sin6_addr.s6_addr, why);
  }
  *why = "not an IPv4 or IPv6 address";
  return false;
}

bool stls_addr_text_allowed(const char *ip, const char **why) {
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof(ss));
  if (ip && (uv_ip4_addr(ip, 0, (struct sockaddr_in *)&ss) == 0 ||
             uv_ip6_addr(ip, 0, (struct sockaddr_in6 *)&ss) == 0))
    return stls_addr_allowed((const struct sockaddr *)&ss, why);
  if (why)
    *why = "not an IPv4 or IPv6 address";
  return false;
}
