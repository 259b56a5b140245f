/* Unit tests for the private-address guard (scanner/addrguard.c): every
 * refused range at its first and last address, and the neighbours just
 * outside it, which must be allowed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "stls/addrguard.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

typedef struct {
  const char *ip;
  bool allowed;
  const char *why; /* a word the reason must contain when refused */
} guard_case_t;

static const guard_case_t cases[] = {
    /* 0.0.0.0/8 and the unspecified address */
    {"0.0.0.0", false, "unspecified"},
    {"0.0.0.1", false, "this network"},
    {"0.255.255.255", false, "this network"},
    {"1.0.0.0", true, NULL},
    /* 10/8 */
    {"9.255.255.255", true, NULL},
    {"10.0.0.0", false, "private"},
    {"10.255.255.255", false, "private"},
    {"11.0.0.0", true, NULL},
    /* 100.64/10 */
    {"100.63.255.255", true, NULL},
    {"100.64.0.0", false, "CGNAT"},
    {"100.127.255.255", false, "CGNAT"},
    {"100.128.0.0", true, NULL},
    /* 127/8 */
    {"126.255.255.255", true, NULL},
    {"127.0.0.0", false, "loopback"},
    {"127.0.0.1", false, "loopback"},
    {"127.255.255.255", false, "loopback"},
    {"128.0.0.0", true, NULL},
    /* 169.254/16 */
    {"169.253.255.255", true, NULL},
    {"169.254.0.0", false, "link-local"},
    {"169.254.255.255", false, "link-local"},
    {"169.255.0.0", true, NULL},
    /* 172.16/12 */
    {"172.15.255.255", true, NULL},
    {"172.16.0.0", false, "private"},
    {"172.31.255.255", false, "private"},
    {"172.32.0.0", true, NULL},
    /* 192.0.0/24 */
    {"191.255.255.255", true, NULL},
    {"192.0.0.0", false, "IETF protocol"},
    {"192.0.0.255", false, "IETF protocol"},
    {"192.0.1.0", true, NULL},
    /* 192.0.2/24 */
    {"192.0.1.255", true, NULL},
    {"192.0.2.0", false, "documentation"},
    {"192.0.2.255", false, "documentation"},
    {"192.0.3.0", true, NULL},
    /* 192.168/16 */
    {"192.167.255.255", true, NULL},
    {"192.168.0.0", false, "private"},
    {"192.168.255.255", false, "private"},
    {"192.169.0.0", true, NULL},
    /* 198.18/15 */
    {"198.17.255.255", true, NULL},
    {"198.18.0.0", false, "benchmarking"},
    {"198.19.255.255", false, "benchmarking"},
    {"198.20.0.0", true, NULL},
    /* 198.51.100/24 */
    {"198.51.99.255", true, NULL},
    {"198.51.100.0", false, "documentation"},
    {"198.51.100.255", false, "documentation"},
    {"198.51.101.0", true, NULL},
    /* 203.0.113/24 */
    {"203.0.112.255", true, NULL},
    {"203.0.113.0", false, "documentation"},
    {"203.0.113.255", false, "documentation"},
    {"203.0.114.0", true, NULL},
    /* 224/4 */
    {"223.255.255.255", true, NULL},
    {"224.0.0.0", false, "multicast"},
    {"239.255.255.255", false, "multicast"},
    /* 240/4 and broadcast */
    {"240.0.0.0", false, "reserved"},
    {"255.255.255.254", false, "reserved"},
    {"255.255.255.255", false, "broadcast"},
    /* ordinary public addresses */
    {"8.8.8.8", true, NULL},
    {"192.88.98.1", true, NULL},

    /* IPv6 unspecified, loopback and their neighbours */
    {"::", false, "unspecified"},
    {"::1", false, "loopback"},
    {"::2", false, "reserved"},
    {"::8.8.8.8", false, "reserved"}, /* deprecated IPv4-compatible */
    /* IPv4-mapped ::ffff:0:0/96, judged by the IPv4 address */
    {"::ffff:127.0.0.1", false, "IPv4-mapped"},
    {"::ffff:10.1.2.3", false, "IPv4-mapped"},
    {"::ffff:0.0.0.0", false, "IPv4-mapped"},
    {"::ffff:255.255.255.255", false, "IPv4-mapped"},
    {"::ffff:8.8.8.8", true, NULL},
    {"::fffe:8.8.8.8", false, "reserved"},
    /* NAT64 64:ff9b::/96 */
    {"64:ff9b::", false, "NAT64"},
    {"64:ff9b::7f00:1", false, "NAT64"},
    {"64:ff9b::c0a8:101", false, "NAT64"},
    {"64:ff9b::808:808", true, NULL},
    {"64:ff9b::1:808:808", false, "reserved"}, /* outside the /96 */
    /* local-use NAT64 64:ff9b:1::/48 */
    {"64:ff9b:1::a00:1", false, "local-use NAT64"},
    {"64:ff9b:1::808:808", true, NULL},
    {"64:ff9b:1:ffff:ffff:ffff:ffff:ffff", false, "local-use NAT64"},
    {"64:ff9b:2::808:808", false, "reserved"},
    /* 6to4 2002::/16, IPv4 in bits 16-47 */
    {"2002:7f00:1::1", false, "6to4"},
    {"2002:c0a8:101::", false, "6to4"},
    {"2002:ac10::1", false, "6to4"},
    {"2002:808:808::1", true, NULL},
    {"2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false, "6to4"},
    {"2001:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true, NULL},
    {"2003::", true, NULL},
    /* Teredo 2001::/32: server bits 32-63, client inverted in 96-127 */
    {"2001:0:808:808::f7f7:f7f7", true, NULL},      /* both 8.8.8.8 */
    {"2001:0:808:808::80ff:fffe", false, "Teredo"}, /* client 127.0.0.1 */
    {"2001:0:a00:1::f7f7:f7f7", false, "Teredo"},   /* server 10.0.0.1 */
    {"2001:0:808:808::3f57:fefe", false, "Teredo"}, /* client 192.168.1.1 */
    {"2001:1::1", true, NULL},
    /* benchmarking 2001:2::/48 */
    {"2001:1:ffff:ffff:ffff:ffff:ffff:ffff", true, NULL},
    {"2001:2::", false, "benchmarking"},
    {"2001:2:0:ffff:ffff:ffff:ffff:ffff", false, "benchmarking"},
    {"2001:2:1::", true, NULL},
    /* documentation 2001:db8::/32 and 3fff::/20 */
    {"2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", true, NULL},
    {"2001:db8::", false, "documentation"},
    {"2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", false, "documentation"},
    {"2001:db9::", true, NULL},
    {"3ffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true, NULL},
    {"3fff::", false, "documentation"},
    {"3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff", false, "documentation"},
    {"3fff:1000::", true, NULL},
    /* ULA fc00::/7 */
    {"fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false, "reserved"},
    {"fc00::", false, "unique local"},
    {"fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false, "unique local"},
    /* link-local fe80::/10 */
    {"fe80::", false, "link-local"},
    {"febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false, "link-local"},
    {"fec0::", false, "reserved"},
    /* multicast ff00::/8 */
    {"ff00::", false, "multicast"},
    {"ff02::1", false, "multicast"},
    {"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false, "multicast"},
    /* global unicast 2000::/3 edges */
    {"1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false, "reserved"},
    {"2000::", true, NULL},
    {"2a00:1450:4001:80b::200e", true, NULL},
    {"3fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true, NULL},
    {"4000::", false, "reserved"},
};

static void test_table(void **state) {
  (void)state;
  int bad = 0;
  for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
    const guard_case_t *c = &cases[i];
    const char *why = "unset";
    bool got = stls_addr_text_allowed(c->ip, &why);
    if (got != c->allowed) {
      fprintf(stderr, "%s: want %s, got %s (%s)\n", c->ip,
              c->allowed ? "allowed" : "refused", got ? "allowed" : "refused",
              why ? why : "-");
      bad++;
      continue;
    }
    if (got && why != NULL) {
      fprintf(stderr, "%s: allowed but why is \"%s\"\n", c->ip, why);
      bad++;
    }
    if (!got && (!why || !strstr(why, c->why))) {
      fprintf(stderr, "%s: reason \"%s\" lacks \"%s\"\n", c->ip,
              why ? why : "(null)", c->why);
      bad++;
    }
  }
  assert_int_equal(bad, 0);
}

/* The sockaddr entry point: ports and IPv6 scope ids do not matter; other
 * families and NULL are refused; why may be NULL. */
static void test_sockaddr(void **state) {
  (void)state;
  struct sockaddr_in in;
  struct sockaddr_in6 in6;
  struct sockaddr un;
  const char *why = NULL;

  assert_int_equal(uv_ip4_addr("127.0.0.1", 25, &in), 0);
  assert_false(stls_addr_allowed((struct sockaddr *)&in, &why));
  assert_non_null(why);
  assert_false(stls_addr_allowed((struct sockaddr *)&in, NULL));
  assert_int_equal(uv_ip4_addr("8.8.4.4", 443, &in), 0);
  assert_true(stls_addr_allowed((struct sockaddr *)&in, &why));
  assert_null(why);

  assert_int_equal(uv_ip6_addr("fe80::1%1", 25, &in6), 0);
  assert_false(stls_addr_allowed((struct sockaddr *)&in6, &why));
  assert_int_equal(uv_ip6_addr("2a00:1450::1", 25, &in6), 0);
  assert_true(stls_addr_allowed((struct sockaddr *)&in6, NULL));

  memset(&un, 0, sizeof(un));
  un.sa_family = AF_UNIX;
  assert_false(stls_addr_allowed(&un, &why));
  assert_non_null(why);
  assert_false(stls_addr_allowed(NULL, &why));
  assert_false(stls_addr_text_allowed("mx.example.com", &why));
  assert_false(stls_addr_text_allowed(NULL, NULL));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_table),
      cmocka_unit_test(test_sockaddr),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
