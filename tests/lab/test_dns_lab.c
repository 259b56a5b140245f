/* The resolver against the lab DNS server (tests/lab/dns): every zone case
 * resolved through stls_dns on a libuv loop. Runs inside the lab namespace
 * (see tests/lab/CMakeLists.txt); it refuses to run anywhere else. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "stls/dns.h"
#include "stls/domain.h"

#define LAB_DNS "127.0.53.53"
/* 192.0.2.0/24 is routed to lo in the namespace: packets there vanish. */
#define BLACK_HOLE "192.0.2.53"
/* Nothing listens here (nsd, the DNSSEC lab server, is on .54): queries
 * meet "port unreachable". */
#define NO_LISTENER "127.0.53.99"

typedef struct {
  uv_loop_t loop;
  stls_dns_t *dns;
} fixture_t;

typedef struct {
  stls_dns_result_t *res;
  int calls;
  bool returned; /* stls_dns_resolve_domain had returned when cb ran */
  bool *returned_flag;
} slot_t;

static void done_cb(stls_dns_result_t *res, void *arg) {
  slot_t *s = arg;
  s->calls++;
  if (s->returned_flag)
    s->returned = *s->returned_flag;
  if (s->res)
    stls_dns_result_free(s->res); /* a second call is a bug the count shows */
  s->res = res;
}

static int fixture_open(fixture_t *f, const char *servers, unsigned timeout_ms,
                        unsigned tries) {
  stls_dns_opts_t o = {servers, timeout_ms, tries, 0};
  if (uv_loop_init(&f->loop) != 0)
    return -1;
  return stls_dns_init(&f->dns, &f->loop, &o);
}

static void fixture_close(fixture_t *f) {
  if (f->dns)
    stls_dns_close(f->dns);
  f->dns = NULL;
  uv_run(&f->loop, UV_RUN_DEFAULT); /* close callbacks free the resolver */
  assert_int_equal(uv_loop_close(&f->loop), 0);
}

static int setup(void **state) {
  fixture_t *f = calloc(1, sizeof *f);
  if (!f || fixture_open(f, LAB_DNS, 1000, 2) != 0) {
    free(f);
    return -1;
  }
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture_t *f = *state;
  fixture_close(f);
  free(f);
  return 0;
}

/* Resolve one domain and run the loop until its callback. */
static stls_dns_result_t *resolve_q(fixture_t *f, const char *domain,
                                    const stls_dns_query_opts_t *q) {
  slot_t s = {0};
  assert_int_equal(stls_dns_resolve_domain(f->dns, domain, q, done_cb, &s), 0);
  while (s.calls == 0)
    assert_true(uv_run(&f->loop, UV_RUN_ONCE) >= 0);
  assert_int_equal(s.calls, 1);
  assert_non_null(s.res);
  assert_string_equal(s.res->domain, domain);
  return s.res;
}

static stls_dns_result_t *resolve(fixture_t *f, const char *domain) {
  return resolve_q(f, domain, NULL);
}

static bool has_addr(const stls_dns_mx_t *m, int family, const char *text) {
  for (size_t i = 0; i < m->naddrs; i++)
    if (m->addrs[i].family == family && strcmp(m->addrs[i].text, text) == 0)
      return true;
  return false;
}

static void assert_mx(const stls_dns_mx_t *m, unsigned pref, const char *host) {
  if (m->preference != pref || strcmp(m->host, host) != 0)
    fail_msg("want MX %u %s, got %u %s", pref, host, m->preference, m->host);
}

/* mx-good: 127.0.25.2 and 2001:db8:25::2, in that order. */
static void assert_mx_good_addrs(const stls_dns_mx_t *m) {
  assert_int_equal(m->status, STLS_DNS_OK);
  assert_null(m->error.code);
  assert_int_equal(m->naddrs, 2);
  assert_int_equal(m->addrs[0].family, AF_INET);
  assert_string_equal(m->addrs[0].text, "127.0.25.2");
  assert_int_equal(m->addrs[1].family, AF_INET6);
  assert_string_equal(m->addrs[1].text, "2001:db8:25::2");
  assert_int_equal(m->a_status, STLS_DNS_OK);
  assert_int_equal(m->aaaa_status, STLS_DNS_OK);
}

static void test_good(void **state) {
  stls_dns_result_t *r = resolve(*state, "good.lab.test");
  assert_int_equal(r->status, STLS_DNS_OK);
  assert_null(r->error.code);
  assert_false(r->implicit_mx);
  assert_false(r->null_mx);
  assert_false(r->mx_truncated);
  assert_int_equal(r->nmx, 1);
  assert_mx(&r->mx[0], 10, "mx-good.lab.test");
  assert_mx_good_addrs(&r->mx[0]);
  assert_false(r->mx[0].is_cname);
  assert_false(r->mx[0].is_ip_literal);
  assert_false(r->mx[0].addrs_truncated);
  assert_true(r->duration_ms < 2000);
  stls_dns_result_free(r);
}

static void test_endpoint_domains(void **state) {
  static const struct {
    const char *domain, *host, *addr;
  } cases[] = {
      {"plain.lab.test", "mx-plain.lab.test", "127.0.25.1"},
      {"self.lab.test", "mx-self.lab.test", "127.0.25.3"},
      {"expired.lab.test", "mx-expired.lab.test", "127.0.25.4"},
      {"wrong.lab.test", "mx-wrong.lab.test", "127.0.25.5"},
      {"tls12.lab.test", "mx-tls12.lab.test", "127.0.25.6"},
      {"ecdsa.lab.test", "mx-ecdsa.lab.test", "127.0.25.7"},
      {"wild.lab.test", "mx-wild.lab.test", "127.0.25.8"},
      {"b.lab.test", "mx-b.lab.test", "127.0.25.9"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    stls_dns_result_t *r = resolve(*state, cases[i].domain);
    assert_int_equal(r->status, STLS_DNS_OK);
    assert_int_equal(r->nmx, 1);
    assert_mx(&r->mx[0], 10, cases[i].host);
    assert_int_equal(r->mx[0].naddrs, 1);
    assert_true(has_addr(&r->mx[0], AF_INET, cases[i].addr));
    /* Only mx-good has IPv6: the others answer AAAA with NODATA. */
    assert_int_equal(r->mx[0].aaaa_status, STLS_DNS_NO_ADDRESS);
    stls_dns_result_free(r);
  }
}

static void test_multi_order(void **state) {
  /* The server rotates the answer; the order must not change. */
  for (int round = 0; round < 4; round++) {
    stls_dns_result_t *r = resolve(*state, "multi.lab.test");
    assert_int_equal(r->status, STLS_DNS_OK);
    assert_int_equal(r->nmx, 3);
    assert_mx(&r->mx[0], 10, "mx-good.lab.test");
    assert_mx(&r->mx[1], 20, "mx-ecdsa.lab.test");
    assert_mx(&r->mx[2], 20, "mx-self.lab.test");
    assert_true(has_addr(&r->mx[1], AF_INET, "127.0.25.7"));
    assert_true(has_addr(&r->mx[2], AF_INET, "127.0.25.3"));
    stls_dns_result_free(r);
  }
}

static void test_shared_parallel(void **state) {
  fixture_t *f = *state;
  slot_t slots[50] = {{0}};
  char name[64];
  int done = 0;

  for (int i = 0; i < 50; i++) {
    snprintf(name, sizeof name, "shared%d.lab.test", i + 1);
    assert_int_equal(
        stls_dns_resolve_domain(f->dns, name, NULL, done_cb, &slots[i]), 0);
  }
  while (done < 50) {
    uv_run(&f->loop, UV_RUN_ONCE);
    done = 0;
    for (int i = 0; i < 50; i++)
      done += slots[i].calls;
  }
  for (int i = 0; i < 50; i++) {
    stls_dns_result_t *r = slots[i].res;
    snprintf(name, sizeof name, "shared%d.lab.test", i + 1);
    assert_int_equal(slots[i].calls, 1);
    assert_string_equal(r->domain, name);
    assert_int_equal(r->status, STLS_DNS_OK);
    assert_int_equal(r->nmx, 1);
    assert_mx(&r->mx[0], 10, "mx-good.lab.test");
    assert_mx_good_addrs(&r->mx[0]);
    stls_dns_result_free(r);
  }
}

static void test_implicit(void **state) {
  stls_dns_result_t *r = resolve(*state, "implicit.lab.test");
  assert_int_equal(r->status, STLS_DNS_OK);
  assert_true(r->implicit_mx);
  assert_int_equal(r->nmx, 1);
  assert_mx(&r->mx[0], 0, "implicit.lab.test");
  assert_int_equal(r->mx[0].naddrs, 1);
  assert_true(has_addr(&r->mx[0], AF_INET, "127.0.25.7"));
  stls_dns_result_free(r);

  r = resolve(*state, "empty.lab.test");
  assert_int_equal(r->status, STLS_DNS_NO_ADDRESS);
  assert_true(r->implicit_mx);
  assert_string_equal(r->error.code, "NO_ADDRESS");
  assert_int_equal(r->nmx, 1);
  assert_int_equal(r->mx[0].status, STLS_DNS_NO_ADDRESS);
  assert_string_equal(r->mx[0].error.code, "NODATA");
  stls_dns_result_free(r);
}

static void test_null_mx(void **state) {
  stls_dns_result_t *r = resolve(*state, "nullmx.lab.test");
  assert_int_equal(r->status, STLS_DNS_NULL_MX);
  assert_string_equal(stls_dns_status_domain_name(r->status), "null-mx");
  assert_true(r->null_mx);
  assert_false(r->implicit_mx);
  assert_int_equal(r->nmx, 0);
  assert_null(r->error.code);
  stls_dns_result_free(r);

  r = resolve(*state, "nullmixed.lab.test");
  assert_int_equal(r->status, STLS_DNS_NULL_MX);
  assert_true(r->null_mx);
  assert_true(r->null_mx_mixed);
  assert_int_equal(r->nmx, 0);
  stls_dns_result_free(r);
}

static void test_mx_forms(void **state) {
  stls_dns_result_t *r = resolve(*state, "dupmx.lab.test");
  assert_int_equal(r->status, STLS_DNS_OK);
  assert_int_equal(r->nmx, 1);
  assert_mx(&r->mx[0], 10, "mx-good.lab.test");
  stls_dns_result_free(r);

  r = resolve(*state, "upper.lab.test");
  assert_int_equal(r->nmx, 1);
  assert_mx(&r->mx[0], 10, "mx-good.lab.test");
  assert_mx_good_addrs(&r->mx[0]);
  stls_dns_result_free(r);

  /* The domain is a CNAME: the MX comes from the alias's target. */
  r = resolve(*state, "cnamedomain.lab.test");
  assert_int_equal(r->status, STLS_DNS_OK);
  assert_int_equal(r->nmx, 1);
  assert_mx(&r->mx[0], 10, "mx-good.lab.test");
  stls_dns_result_free(r);
}

static void test_idn(void **state) {
  char name[STLS_DOMAIN_MAX + 1];
  const char *why = NULL;
  stls_dns_result_t *r;
  assert_int_equal(
      stls_domain_normalize("Bücher.Lab.Test.", name, sizeof name, &why), 0);
  assert_string_equal(name, "xn--bcher-kva.lab.test");
  r = resolve(*state, name);
  assert_int_equal(r->status, STLS_DNS_OK);
  assert_int_equal(r->nmx, 1);
  assert_mx(&r->mx[0], 10, "mx-good.lab.test");
  stls_dns_result_free(r);
}

static void test_nxdomain(void **state) {
  stls_dns_result_t *r = resolve(*state, "nonexistent.lab.test");
  assert_int_equal(r->status, STLS_DNS_NXDOMAIN);
  assert_string_equal(stls_dns_status_domain_name(r->status), "nxdomain");
  assert_string_equal(r->error.code, "NXDOMAIN");
  assert_non_null(r->error.message);
  assert_int_equal(r->nmx, 0);
  assert_false(r->implicit_mx);
  stls_dns_result_free(r);
}

static void test_servfail_refused(void **state) {
  stls_dns_result_t *r = resolve(*state, "servfail.test");
  assert_int_equal(r->status, STLS_DNS_SERVFAIL);
  assert_string_equal(r->error.code, "SERVFAIL");
  assert_string_equal(stls_dns_status_domain_name(r->status), "dns-error");
  assert_int_equal(r->nmx, 0);
  stls_dns_result_free(r);

  /* Anything outside the lab's zones is refused by the server. */
  r = resolve(*state, "example.com");
  assert_int_equal(r->status, STLS_DNS_REFUSED);
  assert_string_equal(r->error.code, "REFUSED");
  stls_dns_result_free(r);
}

static void test_v6only(void **state) {
  stls_dns_query_opts_t v4only = {true, false, 0, 0};
  stls_dns_result_t *r = resolve(*state, "v6only.lab.test");
  assert_int_equal(r->status, STLS_DNS_OK);
  assert_int_equal(r->nmx, 1);
  assert_mx(&r->mx[0], 10, "mx-v6only.lab.test");
  assert_int_equal(r->mx[0].naddrs, 1);
  assert_true(has_addr(&r->mx[0], AF_INET6, "2001:db8:25::2"));
  assert_int_equal(r->mx[0].a_status, STLS_DNS_NO_ADDRESS);
  assert_int_equal(r->mx[0].aaaa_status, STLS_DNS_OK);
  assert_null(r->mx[0].error.code);
  stls_dns_result_free(r);

  /* Without IPv6 the same domain has nowhere to deliver. */
  r = resolve_q(*state, "v6only.lab.test", &v4only);
  assert_int_equal(r->status, STLS_DNS_NO_ADDRESS);
  assert_int_equal(r->mx[0].aaaa_status, STLS_DNS_NOT_QUERIED);
  assert_int_equal(r->mx[0].status, STLS_DNS_NO_ADDRESS);
  stls_dns_result_free(r);
}

/* The lab promises that 2001:db8:ffff::1 is unreachable in the namespace:
 * check it, since tests of the probe rely on it. */
static void test_unreach6(void **state) {
  struct sockaddr_in6 sa;
  int fd, rc, err;
  stls_dns_result_t *r = resolve(*state, "unreach6.lab.test");
  assert_int_equal(r->status, STLS_DNS_OK);
  assert_int_equal(r->nmx, 1);
  assert_mx(&r->mx[0], 10, "mx-unreach6.lab.test");
  assert_int_equal(r->mx[0].naddrs, 2);
  assert_true(has_addr(&r->mx[0], AF_INET, "127.0.25.2"));
  assert_true(has_addr(&r->mx[0], AF_INET6, "2001:db8:ffff::1"));
  stls_dns_result_free(r);

  memset(&sa, 0, sizeof sa);
  sa.sin6_family = AF_INET6;
  sa.sin6_port = htons(25);
  assert_int_equal(inet_pton(AF_INET6, "2001:db8:ffff::1", &sa.sin6_addr), 1);
  fd = socket(AF_INET6, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  assert_int_equal(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
  rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
  err = errno;
  close(fd);
  assert_int_equal(rc, -1);
  if (err != ENETUNREACH)
    fail_msg("connect to [2001:db8:ffff::1]:25: want ENETUNREACH, got %s",
             strerror(err));
}

static void test_cname_mx(void **state) {
  stls_dns_result_t *r = resolve(*state, "cname.lab.test");
  assert_int_equal(r->status, STLS_DNS_OK);
  assert_int_equal(r->nmx, 1);
  assert_mx(&r->mx[0], 10, "alias.lab.test");
  assert_true(r->mx[0].is_cname);
  assert_mx_good_addrs(&r->mx[0]);
  stls_dns_result_free(r);
}

static void test_many(void **state) {
  static const char *const first10[] = {"m01",  "m02", "m03", "m04", "m05a",
                                        "m05b", "m06", "m07", "m08", "m09"};
  static const unsigned prefs[] = {1, 2, 3, 4, 5, 5, 6, 7, 8, 9};
  stls_dns_query_opts_t all = {true, true, 30, 0};
  char host[64];
  stls_dns_result_t *r = resolve(*state, "many.lab.test");
  assert_int_equal(r->status, STLS_DNS_OK);
  assert_true(r->mx_truncated);
  assert_int_equal(r->nmx, STLS_DNS_DEFAULT_MAX_MX);
  for (size_t i = 0; i < 10; i++) {
    snprintf(host, sizeof host, "%s.many.lab.test", first10[i]);
    assert_mx(&r->mx[i], prefs[i], host);
    assert_true(has_addr(&r->mx[i], AF_INET, "127.0.25.2"));
  }
  stls_dns_result_free(r);

  r = resolve_q(*state, "many.lab.test", &all);
  assert_false(r->mx_truncated);
  assert_int_equal(r->nmx, 20);
  assert_mx(&r->mx[19], 20, "m20.many.lab.test");
  for (size_t i = 0; i < 20; i++)
    assert_int_equal(r->mx[i].status, STLS_DNS_OK);
  stls_dns_result_free(r);
}

static void test_ip_literal(void **state) {
  stls_dns_result_t *r = resolve(*state, "iplit.lab.test");
  assert_int_equal(r->status, STLS_DNS_OK);
  assert_int_equal(r->nmx, 1);
  assert_mx(&r->mx[0], 10, "127.0.25.2");
  assert_true(r->mx[0].is_ip_literal);
  assert_int_equal(r->mx[0].naddrs, 1);
  assert_true(has_addr(&r->mx[0], AF_INET, "127.0.25.2"));
  assert_int_equal(r->mx[0].a_status, STLS_DNS_OK);
  assert_int_equal(r->mx[0].aaaa_status, STLS_DNS_NOT_QUERIED);
  stls_dns_result_free(r);
}

static void test_host_failures(void **state) {
  stls_dns_result_t *r = resolve(*state, "nomxhost.lab.test");
  assert_int_equal(r->status, STLS_DNS_NO_ADDRESS);
  assert_string_equal(stls_dns_status_domain_name(r->status), "no-address");
  assert_string_equal(r->error.code, "NO_ADDRESS");
  assert_int_equal(r->nmx, 1);
  assert_mx(&r->mx[0], 10, "mx-missing.lab.test");
  assert_int_equal(r->mx[0].status, STLS_DNS_NXDOMAIN);
  assert_string_equal(r->mx[0].error.code, "NXDOMAIN");
  stls_dns_result_free(r);

  r = resolve(*state, "nodatahost.lab.test");
  assert_int_equal(r->status, STLS_DNS_NO_ADDRESS);
  assert_int_equal(r->mx[0].status, STLS_DNS_NO_ADDRESS);
  assert_string_equal(r->mx[0].error.code, "NODATA");
  stls_dns_result_free(r);

  /* A transient failure of the only host is the domain's DNS error, not
   * a verdict that it has no address. */
  r = resolve(*state, "mxservfail.lab.test");
  assert_int_equal(r->status, STLS_DNS_SERVFAIL);
  assert_string_equal(r->error.code, "SERVFAIL");
  assert_int_equal(r->nmx, 1);
  assert_mx(&r->mx[0], 10, "mx.servfail.test");
  assert_int_equal(r->mx[0].status, STLS_DNS_SERVFAIL);
  stls_dns_result_free(r);

  r = resolve(*state, "partial.lab.test");
  assert_int_equal(r->status, STLS_DNS_OK);
  assert_null(r->error.code);
  assert_int_equal(r->nmx, 3);
  assert_mx(&r->mx[0], 10, "mx.servfail.test");
  assert_int_equal(r->mx[0].status, STLS_DNS_SERVFAIL);
  assert_string_equal(r->mx[0].error.code, "SERVFAIL");
  assert_int_equal(r->mx[0].naddrs, 0);
  assert_mx(&r->mx[1], 20, "mx-missing.lab.test");
  assert_int_equal(r->mx[1].status, STLS_DNS_NXDOMAIN);
  assert_mx(&r->mx[2], 30, "mx-good.lab.test");
  assert_mx_good_addrs(&r->mx[2]);
  stls_dns_result_free(r);
}

static void test_bigaddr(void **state) {
  stls_dns_query_opts_t big = {true, true, 0, 500};
  stls_dns_result_t *r = resolve(*state, "bigaddr.lab.test");
  const stls_dns_mx_t *m;
  char text[32];
  assert_int_equal(r->status, STLS_DNS_OK);
  m = &r->mx[0];
  assert_true(m->addrs_truncated);
  /* Cap 10, 100 IPv4 and 4 IPv6: IPv6 keeps all 4, IPv4 the lowest 6. */
  assert_int_equal(m->naddrs, 10);
  for (int i = 0; i < 6; i++) {
    snprintf(text, sizeof text, "127.0.26.%d", i + 1);
    assert_int_equal(m->addrs[i].family, AF_INET);
    assert_string_equal(m->addrs[i].text, text);
  }
  for (int i = 0; i < 4; i++) {
    snprintf(text, sizeof text, "2001:db8:26::%d", i + 1);
    assert_int_equal(m->addrs[6 + i].family, AF_INET6);
    assert_string_equal(m->addrs[6 + i].text, text);
  }
  stls_dns_result_free(r);

  /* The whole set is larger than a UDP answer: it came over TCP. */
  r = resolve_q(*state, "bigaddr.lab.test", &big);
  m = &r->mx[0];
  assert_false(m->addrs_truncated);
  assert_int_equal(m->naddrs, 104);
  assert_string_equal(m->addrs[99].text, "127.0.26.100");
  assert_string_equal(m->addrs[103].text, "2001:db8:26::4");
  stls_dns_result_free(r);
}

static void test_mx_only(void **state) {
  stls_dns_query_opts_t none = {false, false, 0, 0};
  stls_dns_result_t *r = resolve_q(*state, "multi.lab.test", &none);
  assert_int_equal(r->status, STLS_DNS_OK);
  assert_int_equal(r->nmx, 3);
  for (size_t i = 0; i < r->nmx; i++) {
    assert_int_equal(r->mx[i].status, STLS_DNS_NOT_QUERIED);
    assert_int_equal(r->mx[i].naddrs, 0);
  }
  stls_dns_result_free(r);
}

static void test_bench_corpus(void **state) {
  enum { N = 2000 };
  static const char *const hosts[] = {"mx-good.lab.test", "mx-ecdsa.lab.test",
                                      "mx-tls12.lab.test"};
  fixture_t *f = *state;
  slot_t *slots = calloc(N, sizeof *slots);
  stls_dns_query_opts_t v4 = {true, false, 0, 0};
  char name[64];
  int done = 0;
  uint64_t start = uv_hrtime();

  assert_non_null(slots);
  for (int i = 0; i < N; i++) {
    snprintf(name, sizeof name, "bench%04d.lab.test", i);
    assert_int_equal(
        stls_dns_resolve_domain(f->dns, name, &v4, done_cb, &slots[i]), 0);
  }
  while (done < N) {
    uv_run(&f->loop, UV_RUN_ONCE);
    done = 0;
    for (int i = 0; i < N; i++)
      done += slots[i].calls;
  }
  print_message("resolved %d bench domains in %llu ms\n", N,
                (unsigned long long)((uv_hrtime() - start) / 1000000));
  for (int i = 0; i < N; i++) {
    stls_dns_result_t *r = slots[i].res;
    assert_int_equal(slots[i].calls, 1);
    if (r->status != STLS_DNS_OK)
      fail_msg("%s: %s (%s)", r->domain, stls_dns_status_name(r->status),
               r->error.code ? r->error.code : "-");
    assert_int_equal(r->nmx, 1);
    assert_string_equal(r->mx[0].host, hosts[i % 3]);
    assert_int_equal(r->mx[0].naddrs, 1);
    stls_dns_result_free(r);
  }
  free(slots);
}

/* The system configuration (resolv.conf in the namespace) reaches the lab
 * server too. */
static void test_resolv_conf(void **state) {
  fixture_t f = {0};
  stls_dns_result_t *r;
  (void)state;
  assert_int_equal(uv_loop_init(&f.loop), 0);
  assert_int_equal(stls_dns_init(&f.dns, &f.loop, NULL), 0);
  r = resolve(&f, "good.lab.test");
  assert_int_equal(r->status, STLS_DNS_OK);
  assert_mx(&r->mx[0], 10, "mx-good.lab.test");
  stls_dns_result_free(r);
  fixture_close(&f);
}

static void test_timeout(void **state) {
  fixture_t f = {0};
  stls_dns_result_t *r;
  (void)state;
  assert_int_equal(fixture_open(&f, BLACK_HOLE, 200, 2), 0);
  r = resolve(&f, "good.lab.test");
  assert_int_equal(r->status, STLS_DNS_TIMEOUT);
  assert_string_equal(r->error.code, "ETIMEDOUT");
  assert_string_equal(stls_dns_status_domain_name(r->status), "dns-error");
  /* Two tries of 200 ms each; c-ares may lengthen later tries. */
  assert_true(r->duration_ms >= 350);
  assert_true(r->duration_ms < 3000);
  stls_dns_result_free(r);
  fixture_close(&f);
}

static void test_server_unreachable(void **state) {
  fixture_t f = {0};
  stls_dns_result_t *r;
  (void)state;
  assert_int_equal(fixture_open(&f, NO_LISTENER ":53", 500, 1), 0);
  r = resolve(&f, "good.lab.test");
  assert_true(r->status == STLS_DNS_ERROR || r->status == STLS_DNS_TIMEOUT);
  assert_non_null(r->error.code);
  print_message("no listener: %s %s\n", stls_dns_status_name(r->status),
                r->error.code);
  stls_dns_result_free(r);
  fixture_close(&f);
}

/* A second server is tried when the first does not answer. */
static void test_server_fallback(void **state) {
  fixture_t f = {0};
  stls_dns_result_t *r;
  (void)state;
  assert_int_equal(fixture_open(&f, BLACK_HOLE "," LAB_DNS ":53", 200, 2), 0);
  r = resolve(&f, "good.lab.test");
  assert_int_equal(r->status, STLS_DNS_OK);
  stls_dns_result_free(r);
  fixture_close(&f);
}

/* Closing with lookups in flight completes each with CANCELLED, before
 * stls_dns_close returns, and leaks nothing (valgrind checks that). */
static void test_close_in_flight(void **state) {
  fixture_t f = {0};
  slot_t slots[5] = {{0}};
  (void)state;
  assert_int_equal(fixture_open(&f, BLACK_HOLE, 5000, 1), 0);
  for (int i = 0; i < 5; i++)
    assert_int_equal(stls_dns_resolve_domain(f.dns, "good.lab.test", NULL,
                                             done_cb, &slots[i]),
                     0);
  uv_run(&f.loop, UV_RUN_NOWAIT); /* queries are on the wire */
  stls_dns_close(f.dns);
  for (int i = 0; i < 5; i++) {
    assert_int_equal(slots[i].calls, 1);
    assert_int_equal(slots[i].res->status, STLS_DNS_CANCELLED);
    assert_string_equal(slots[i].res->error.code, "ECANCELED");
    stls_dns_result_free(slots[i].res);
  }
  f.dns = NULL;
  fixture_close(&f);
}

typedef struct {
  stls_dns_t *dns;
  slot_t *refused;
  int calls;
  int resolve_rc;
} closer_t;

/* Closes the resolver from inside a completion callback and tries to
 * start another lookup, which must be refused. */
static void close_from_cb(stls_dns_result_t *res, void *arg) {
  closer_t *c = arg;
  c->calls++;
  assert_int_equal(res->status, STLS_DNS_OK);
  stls_dns_result_free(res);
  stls_dns_close(c->dns);
  c->resolve_rc = stls_dns_resolve_domain(c->dns, "good.lab.test", NULL,
                                          done_cb, c->refused);
}

static void test_close_from_callback(void **state) {
  fixture_t f = {0};
  slot_t slow = {0}, refused = {0};
  closer_t c = {0};
  (void)state;
  assert_int_equal(fixture_open(&f, LAB_DNS, 5000, 1), 0);
  c.dns = f.dns;
  c.refused = &refused;
  /* slow.test never answers, so that lookup is in flight when the good
   * one's callback closes the resolver. */
  assert_int_equal(
      stls_dns_resolve_domain(f.dns, "hang.slow.test", NULL, done_cb, &slow),
      0);
  assert_int_equal(
      stls_dns_resolve_domain(f.dns, "good.lab.test", NULL, close_from_cb, &c),
      0);
  while (c.calls == 0)
    uv_run(&f.loop, UV_RUN_ONCE);
  assert_int_equal(c.calls, 1);
  assert_int_equal(c.resolve_rc, UV_ECANCELED);
  assert_int_equal(refused.calls, 0);
  assert_int_equal(slow.calls, 1);
  assert_int_equal(slow.res->status, STLS_DNS_CANCELLED);
  stls_dns_result_free(slow.res);
  f.dns = NULL;
  fixture_close(&f);
}

/* The lab server drops queries for slow.test: a timeout from a server
 * that is up, as an overloaded or filtering resolver produces. */
static void test_timeout_upstream(void **state) {
  fixture_t f = {0};
  stls_dns_result_t *r;
  (void)state;
  assert_int_equal(fixture_open(&f, LAB_DNS, 300, 1), 0);
  r = resolve(&f, "timeout.slow.test");
  assert_int_equal(r->status, STLS_DNS_TIMEOUT);
  assert_string_equal(r->error.code, "ETIMEDOUT");
  stls_dns_result_free(r);
  fixture_close(&f);
}

/* A lookup c-ares rejects synchronously (a label too long for DNS) still
 * reaches the callback only after stls_dns_resolve_domain returned. */
static void test_sync_failure_deferred(void **state) {
  fixture_t *f = *state;
  bool returned = false;
  slot_t s = {0};
  char name[128];
  memset(name, 'a', 70);
  strcpy(name + 70, ".lab.test");
  s.returned_flag = &returned;
  assert_int_equal(stls_dns_resolve_domain(f->dns, name, NULL, done_cb, &s), 0);
  returned = true;
  assert_int_equal(s.calls, 0);
  while (s.calls == 0)
    uv_run(&f->loop, UV_RUN_ONCE);
  assert_true(s.returned);
  assert_int_equal(s.res->status, STLS_DNS_ERROR);
  assert_string_equal(s.res->error.code, "EBADNAME");
  stls_dns_result_free(s.res);
}

static void test_bad_args(void **state) {
  fixture_t *f = *state;
  slot_t s = {0};
  uv_loop_t loop;
  stls_dns_t *d = NULL;
  stls_dns_opts_t bad = {"not an address", 0, 0, 0};
  assert_int_equal(stls_dns_resolve_domain(f->dns, "", NULL, done_cb, &s),
                   UV_EINVAL);
  assert_int_equal(stls_dns_resolve_domain(f->dns, NULL, NULL, done_cb, &s),
                   UV_EINVAL);
  assert_int_equal(
      stls_dns_resolve_domain(f->dns, "good.lab.test", NULL, NULL, &s),
      UV_EINVAL);
  assert_int_equal(s.calls, 0);
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(stls_dns_init(&d, &loop, &bad), UV_EINVAL);
  assert_null(d);
  assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_good, setup, teardown),
      cmocka_unit_test_setup_teardown(test_endpoint_domains, setup, teardown),
      cmocka_unit_test_setup_teardown(test_multi_order, setup, teardown),
      cmocka_unit_test_setup_teardown(test_shared_parallel, setup, teardown),
      cmocka_unit_test_setup_teardown(test_implicit, setup, teardown),
      cmocka_unit_test_setup_teardown(test_null_mx, setup, teardown),
      cmocka_unit_test_setup_teardown(test_mx_forms, setup, teardown),
      cmocka_unit_test_setup_teardown(test_idn, setup, teardown),
      cmocka_unit_test_setup_teardown(test_nxdomain, setup, teardown),
      cmocka_unit_test_setup_teardown(test_servfail_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_v6only, setup, teardown),
      cmocka_unit_test_setup_teardown(test_unreach6, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cname_mx, setup, teardown),
      cmocka_unit_test_setup_teardown(test_many, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ip_literal, setup, teardown),
      cmocka_unit_test_setup_teardown(test_host_failures, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bigaddr, setup, teardown),
      cmocka_unit_test_setup_teardown(test_mx_only, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bench_corpus, setup, teardown),
      cmocka_unit_test_setup_teardown(test_sync_failure_deferred, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_bad_args, setup, teardown),
      cmocka_unit_test(test_resolv_conf),
      cmocka_unit_test(test_timeout),
      cmocka_unit_test(test_timeout_upstream),
      cmocka_unit_test(test_server_unreachable),
      cmocka_unit_test(test_server_fallback),
      cmocka_unit_test(test_close_in_flight),
      cmocka_unit_test(test_close_from_callback),
  };
  /* Queries must only ever reach the lab: refuse to run outside it. */
  if (!getenv("STLS_IN_NETNS")) {
    fprintf(stderr, "test_dns_lab: run inside tests/lab/netns-run.sh with the "
                    "lab DNS server\n");
    return 1;
  }
  return cmocka_run_group_tests(tests, NULL, NULL);
}
