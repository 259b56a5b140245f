/* The DNS stage's rules without a network: MX classification, ordering,
 * status settling, error mapping, and the resolver's life cycle on paths
 * that never send a packet. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ares.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stls/dns.h"

static const stls_dns_error_t no_err = {NULL, NULL};

static stls_dns_result_t *new_result(void) {
  stls_dns_result_t *r = calloc(1, sizeof *r);
  assert_non_null(r);
  return r;
}

static void assert_mx(const stls_dns_mx_t *m, unsigned pref, const char *host) {
  if (m->preference != pref || strcmp(m->host, host) != 0)
    fail_msg("want MX %u %s, got %u %s", pref, host, m->preference, m->host);
}

/* ---- status tables ---- */

static void test_status_names(void **state) {
  static const char *const domain_values[] = {"ok", "null-mx", "nxdomain",
                                              "dns-error", "no-address"};
  (void)state;
  for (int s = STLS_DNS_OK; s <= STLS_DNS_NOT_QUERIED; s++) {
    const char *dn = stls_dns_status_domain_name((stls_dns_status_t)s);
    bool known = false;
    assert_string_not_equal(stls_dns_status_name((stls_dns_status_t)s),
                            "unknown");
    assert_string_not_equal(stls_dns_status_message((stls_dns_status_t)s),
                            "unknown");
    /* The domain-level value must be one SCHEMA.md allows. */
    for (size_t i = 0; i < sizeof domain_values / sizeof domain_values[0]; i++)
      known = known || strcmp(dn, domain_values[i]) == 0;
    if (!known)
      fail_msg("status %d maps to domain status \"%s\"", s, dn);
  }
  assert_string_equal(stls_dns_status_name(STLS_DNS_NULL_MX), "null-mx");
  assert_string_equal(stls_dns_status_name(STLS_DNS_NO_ADDRESS), "no-address");
  /* TLSA and TXT lookups say NODATA for "no records of the type". */
  assert_string_equal(stls_dns_status_name(STLS_DNS_NODATA), "nodata");
  assert_string_equal(stls_dns_status_domain_name(STLS_DNS_TIMEOUT),
                      "dns-error");
  assert_string_equal(stls_dns_status_domain_name(STLS_DNS_SERVFAIL),
                      "dns-error");
  assert_string_equal(stls_dns_status_name((stls_dns_status_t)999), "unknown");
}

static void test_status_from_ares(void **state) {
  static const struct {
    int ares;
    stls_dns_status_t status;
    const char *code;
  } cases[] = {
      {ARES_SUCCESS, STLS_DNS_OK, NULL},
      {ARES_ENOTFOUND, STLS_DNS_NXDOMAIN, "NXDOMAIN"},
      {ARES_ENODATA, STLS_DNS_NO_ADDRESS, "NODATA"},
      {ARES_ESERVFAIL, STLS_DNS_SERVFAIL, "SERVFAIL"},
      {ARES_EREFUSED, STLS_DNS_REFUSED, "REFUSED"},
      {ARES_ETIMEOUT, STLS_DNS_TIMEOUT, "ETIMEDOUT"},
      {ARES_EFORMERR, STLS_DNS_BAD_RESPONSE, "FORMERR"},
      {ARES_EBADRESP, STLS_DNS_BAD_RESPONSE, "BADRESP"},
      {ARES_ECONNREFUSED, STLS_DNS_ERROR, "ECONNREFUSED"},
      {ARES_ENOMEM, STLS_DNS_ERROR, "ENOMEM"},
      {ARES_EDESTRUCTION, STLS_DNS_CANCELLED, "ECANCELED"},
      {ARES_ECANCELLED, STLS_DNS_CANCELLED, "ECANCELED"},
      {ARES_EBADNAME, STLS_DNS_ERROR, "EBADNAME"},
  };
  (void)state;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    stls_dns_error_t e = {"junk", "junk"};
    assert_int_equal(stls__dns_status_from_ares(cases[i].ares, &e),
                     cases[i].status);
    if (cases[i].code) {
      assert_string_equal(e.code, cases[i].code);
      assert_non_null(e.message);
    } else {
      assert_null(e.code);
    }
  }
  assert_int_equal(stls__dns_status_from_ares(ARES_ETIMEOUT, NULL),
                   STLS_DNS_TIMEOUT);
}

/* ---- MX classification ---- */

static void test_classify_errors_pass_through(void **state) {
  static const stls_dns_status_t failures[] = {
      STLS_DNS_NXDOMAIN, STLS_DNS_SERVFAIL, STLS_DNS_REFUSED, STLS_DNS_TIMEOUT};
  (void)state;
  for (size_t i = 0; i < sizeof failures / sizeof failures[0]; i++) {
    stls_dns_result_t *r = new_result();
    stls_dns_error_t e = {"CODE", "message"};
    assert_int_equal(
        stls__dns_classify_mx(r, "example.com", failures[i], e, NULL, 0, 0), 0);
    assert_int_equal(r->status, failures[i]);
    assert_string_equal(r->error.code, "CODE");
    assert_int_equal(r->nmx, 0);
    assert_false(r->implicit_mx);
    assert_false(r->null_mx);
    stls_dns_result_free(r);
  }
}

static void test_classify_implicit(void **state) {
  stls_dns_result_t *r = new_result();
  (void)state;
  assert_int_equal(
      stls__dns_classify_mx(r, "Example.COM.", STLS_DNS_OK, no_err, NULL, 0, 0),
      0);
  assert_int_equal(r->status, STLS_DNS_OK);
  assert_true(r->implicit_mx);
  assert_false(r->null_mx);
  assert_int_equal(r->nmx, 1);
  assert_mx(&r->mx[0], 0, "example.com");
  assert_int_equal(r->mx[0].status, STLS_DNS_NOT_QUERIED);
  assert_int_equal(r->mx[0].a_status, STLS_DNS_NOT_QUERIED);
  assert_int_equal(r->mx[0].aaaa_status, STLS_DNS_NOT_QUERIED);
  stls_dns_result_free(r);
}

static void test_classify_null_mx(void **state) {
  static const stls__dns_mx_rr_t root[] = {{0, ""}};
  static const stls__dns_mx_rr_t dot[] = {{0, "."}};
  static const stls__dns_mx_rr_t nonzero[] = {{10, ""}};
  static const stls__dns_mx_rr_t two_roots[] = {{0, ""}, {0, "."}};
  static const stls__dns_mx_rr_t mixed[] = {{0, ""}, {10, "mx.example.com"}};
  const struct {
    const stls__dns_mx_rr_t *rr;
    size_t n;
  } nulls[] = {{root, 1}, {dot, 1}, {nonzero, 1}, {two_roots, 2}};
  stls_dns_result_t *r;
  (void)state;

  for (size_t i = 0; i < sizeof nulls / sizeof nulls[0]; i++) {
    r = new_result();
    assert_int_equal(stls__dns_classify_mx(r, "example.com", STLS_DNS_OK,
                                           no_err, nulls[i].rr, nulls[i].n, 0),
                     0);
    assert_int_equal(r->status, STLS_DNS_NULL_MX);
    assert_true(r->null_mx);
    assert_false(r->implicit_mx);
    assert_int_equal(r->nmx, 0);
    assert_null(r->error.code);
    /* Settling must not turn "accepts no mail" into "no address". */
    stls__dns_settle(r);
    assert_int_equal(r->status, STLS_DNS_NULL_MX);
    stls_dns_result_free(r);
  }

  r = new_result();
  assert_int_equal(
      stls__dns_classify_mx(r, "example.com", STLS_DNS_OK, no_err, mixed, 2, 0),
      0);
  /* A "." next to a real MX still means "no mail", as Postfix reads it. */
  assert_int_equal(r->status, STLS_DNS_NULL_MX);
  assert_true(r->null_mx);
  assert_true(r->null_mx_mixed);
  assert_int_equal(r->nmx, 0);
  stls_dns_result_free(r);
}

static void test_classify_order(void **state) {
  /* As a round-robin server might return them. */
  static const stls__dns_mx_rr_t rr[] = {
      {20, "mx-self.lab.test"},  {30, "z.example"},
      {10, "mx-good.lab.test."}, {20, "MX-Ecdsa.lab.test"},
      {20, "mx-b.lab.test"},     {5, "first.example"},
  };
  static const struct {
    unsigned pref;
    const char *host;
  } want[] = {{5, "first.example"},     {10, "mx-good.lab.test"},
              {20, "mx-b.lab.test"},    {20, "mx-ecdsa.lab.test"},
              {20, "mx-self.lab.test"}, {30, "z.example"}};
  stls_dns_result_t *r = new_result();
  (void)state;
  assert_int_equal(
      stls__dns_classify_mx(r, "lab.test", STLS_DNS_OK, no_err, rr, 6, 0), 0);
  assert_int_equal(r->nmx, 6);
  assert_false(r->mx_truncated);
  assert_false(r->implicit_mx);
  for (size_t i = 0; i < 6; i++) {
    assert_mx(&r->mx[i], want[i].pref, want[i].host);
    assert_int_equal(r->mx[i].status, STLS_DNS_NOT_QUERIED);
    assert_false(r->mx[i].is_ip_literal);
  }
  stls_dns_result_free(r);
}

static void test_classify_dedupe(void **state) {
  static const stls__dns_mx_rr_t rr[] = {
      {30, "mx.example.com"},
      {10, "MX.Example.Com."},
      {20, "other.example.com"},
      {10, "mx.example.com"},
  };
  stls_dns_result_t *r = new_result();
  (void)state;
  assert_int_equal(
      stls__dns_classify_mx(r, "example.com", STLS_DNS_OK, no_err, rr, 4, 0),
      0);
  assert_int_equal(r->nmx, 2);
  assert_mx(&r->mx[0], 10, "mx.example.com");
  assert_mx(&r->mx[1], 20, "other.example.com");
  assert_false(r->mx_truncated);
  stls_dns_result_free(r);
}

static void test_classify_cap(void **state) {
  stls__dns_mx_rr_t rr[40];
  char names[40][32];
  stls_dns_result_t *r;
  (void)state;
  for (int i = 0; i < 20; i++) {
    snprintf(names[i], sizeof names[i], "mx%02d.example", 19 - i);
    rr[i].preference = (unsigned)(19 - i);
    rr[i].host = names[i];
  }

  r = new_result();
  assert_int_equal(
      stls__dns_classify_mx(r, "example", STLS_DNS_OK, no_err, rr, 20, 0), 0);
  assert_int_equal(r->nmx, STLS_DNS_DEFAULT_MAX_MX);
  assert_true(r->mx_truncated);
  assert_mx(&r->mx[0], 0, "mx00.example");
  assert_mx(&r->mx[9], 9, "mx09.example");
  stls_dns_result_free(r);

  r = new_result();
  assert_int_equal(
      stls__dns_classify_mx(r, "example", STLS_DNS_OK, no_err, rr, 20, 3), 0);
  assert_int_equal(r->nmx, 3);
  assert_true(r->mx_truncated);
  stls_dns_result_free(r);

  r = new_result();
  assert_int_equal(
      stls__dns_classify_mx(r, "example", STLS_DNS_OK, no_err, rr, 20, 20), 0);
  assert_int_equal(r->nmx, 20);
  assert_false(r->mx_truncated);
  stls_dns_result_free(r);

  /* Duplicates past the cap are not "more hosts". */
  for (int i = 0; i < 20; i++) {
    rr[20 + i].preference = 50;
    rr[20 + i].host = names[i % 3 + 17]; /* mx00..mx02 again, worse */
  }
  r = new_result();
  assert_int_equal(
      stls__dns_classify_mx(r, "example", STLS_DNS_OK, no_err, rr + 17, 23, 3),
      0);
  assert_int_equal(r->nmx, 3);
  assert_false(r->mx_truncated);
  assert_mx(&r->mx[0], 0, "mx00.example");
  assert_mx(&r->mx[2], 2, "mx02.example");
  stls_dns_result_free(r);
}

static void test_classify_ip_literal(void **state) {
  static const struct {
    const char *host;
    bool literal;
  } cases[] = {
      {"192.0.2.1", true},     {"192.0.2.1.", true},
      {"[192.0.2.1]", true},   {"2001:db8::1", true},
      {"[2001:db8::1]", true}, {"192.0.2.1.example", false},
      {"mx.example", false},   {"1.2.3", false},
      {"[mx.example]", false},
  };
  (void)state;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    stls__dns_mx_rr_t rr = {10, cases[i].host};
    stls_dns_result_t *r = new_result();
    assert_int_equal(
        stls__dns_classify_mx(r, "example", STLS_DNS_OK, no_err, &rr, 1, 0), 0);
    assert_int_equal(r->nmx, 1);
    if (r->mx[0].is_ip_literal != cases[i].literal)
      fail_msg("%s: want is_ip_literal %d", cases[i].host, cases[i].literal);
    stls_dns_result_free(r);
  }
}

static void test_mx_sort(void **state) {
  char a[] = "b.example", b[] = "a.example", c[] = "c.example",
       d[] = "a.example";
  stls_dns_mx_t mx[4] = {{.preference = 10, .host = a},
                         {.preference = 10, .host = b},
                         {.preference = 5, .host = c},
                         {.preference = 65535, .host = d}};
  (void)state;
  stls__dns_mx_sort(mx, 4);
  assert_mx(&mx[0], 5, "c.example");
  assert_mx(&mx[1], 10, "a.example");
  assert_mx(&mx[2], 10, "b.example");
  assert_mx(&mx[3], 65535, "a.example");
  stls__dns_mx_sort(mx, 0);
  stls__dns_mx_sort(NULL, 0);
}

/* ---- settling ---- */

/* A result with n hosts whose per-family statuses are given. */
static stls_dns_result_t *
hosts_result(size_t n, const stls_dns_status_t (*fam)[2], bool implicit) {
  stls_dns_result_t *r = new_result();
  r->status = STLS_DNS_OK;
  r->implicit_mx = implicit;
  r->mx = calloc(n, sizeof *r->mx);
  assert_non_null(r->mx);
  r->nmx = n;
  for (size_t i = 0; i < n; i++) {
    stls_dns_mx_t *m = &r->mx[i];
    m->host = strdup("mx.example");
    assert_non_null(m->host);
    m->status = STLS_DNS_NOT_QUERIED;
    m->a_status = fam[i][0];
    m->aaaa_status = fam[i][1];
    if (fam[i][0] == STLS_DNS_OK || fam[i][1] == STLS_DNS_OK) {
      m->addrs = calloc(1, sizeof *m->addrs);
      assert_non_null(m->addrs);
      m->addrs[0].family = AF_INET;
      strcpy(m->addrs[0].text, "192.0.2.1");
      m->naddrs = 1;
    }
  }
  return r;
}

static void test_settle_hosts(void **state) {
  static const stls_dns_status_t fam[][2] = {
      {STLS_DNS_OK, STLS_DNS_NO_ADDRESS},          /* OK */
      {STLS_DNS_NO_ADDRESS, STLS_DNS_NO_ADDRESS},  /* no address */
      {STLS_DNS_NXDOMAIN, STLS_DNS_NXDOMAIN},      /* nxdomain */
      {STLS_DNS_SERVFAIL, STLS_DNS_NO_ADDRESS},    /* the transient one wins */
      {STLS_DNS_NO_ADDRESS, STLS_DNS_TIMEOUT},     /* likewise for AAAA */
      {STLS_DNS_NOT_QUERIED, STLS_DNS_NO_ADDRESS}, /* v6 only asked */
      {STLS_DNS_SERVFAIL, STLS_DNS_OK},            /* has an address: OK */
  };
  static const struct {
    stls_dns_status_t status;
    const char *code;
  } want[] = {
      {STLS_DNS_OK, NULL},
      {STLS_DNS_NO_ADDRESS, "NODATA"},
      {STLS_DNS_NXDOMAIN, "NXDOMAIN"},
      {STLS_DNS_SERVFAIL, "SERVFAIL"},
      {STLS_DNS_TIMEOUT, "ETIMEDOUT"},
      {STLS_DNS_NO_ADDRESS, "NODATA"},
      {STLS_DNS_OK, NULL},
  };
  stls_dns_result_t *r = hosts_result(7, fam, false);
  (void)state;
  stls__dns_settle(r);
  for (size_t i = 0; i < 7; i++) {
    if (r->mx[i].status != want[i].status)
      fail_msg("host %zu: want %s, got %s", i,
               stls_dns_status_name(want[i].status),
               stls_dns_status_name(r->mx[i].status));
    if (want[i].code)
      assert_string_equal(r->mx[i].error.code, want[i].code);
    else
      assert_null(r->mx[i].error.code);
  }
  /* Some host has an address: the domain is fine. */
  assert_int_equal(r->status, STLS_DNS_OK);
  assert_null(r->error.code);
  stls_dns_result_free(r);
}

static void test_settle_domain(void **state) {
  static const stls_dns_status_t definitive[][2] = {
      {STLS_DNS_NXDOMAIN, STLS_DNS_NXDOMAIN},
      {STLS_DNS_NO_ADDRESS, STLS_DNS_NO_ADDRESS},
  };
  static const stls_dns_status_t transient[][2] = {
      {STLS_DNS_NXDOMAIN, STLS_DNS_NXDOMAIN},
      {STLS_DNS_TIMEOUT, STLS_DNS_TIMEOUT},
      {STLS_DNS_SERVFAIL, STLS_DNS_SERVFAIL},
  };
  static const stls_dns_status_t unasked[][2] = {
      {STLS_DNS_NOT_QUERIED, STLS_DNS_NOT_QUERIED},
  };
  stls_dns_result_t *r;
  (void)state;

  r = hosts_result(2, definitive, false);
  stls__dns_settle(r);
  assert_int_equal(r->status, STLS_DNS_NO_ADDRESS);
  assert_string_equal(r->error.code, "NO_ADDRESS");
  assert_string_equal(r->error.message, "no MX host has an address");
  stls_dns_result_free(r);

  r = hosts_result(1, definitive + 1, true);
  stls__dns_settle(r);
  assert_int_equal(r->status, STLS_DNS_NO_ADDRESS);
  assert_string_equal(r->error.message, "no MX records and no address records");
  stls_dns_result_free(r);

  /* No address anywhere, but a lookup failed: a DNS error, with the
   * first failing host's error. */
  r = hosts_result(3, transient, false);
  stls__dns_settle(r);
  assert_int_equal(r->status, STLS_DNS_TIMEOUT);
  assert_string_equal(r->error.code, "ETIMEDOUT");
  stls_dns_result_free(r);

  /* MX only: nothing was asked, nothing failed. */
  r = hosts_result(1, unasked, false);
  stls__dns_settle(r);
  assert_int_equal(r->status, STLS_DNS_OK);
  assert_int_equal(r->mx[0].status, STLS_DNS_NOT_QUERIED);
  assert_null(r->mx[0].error.code);
  stls_dns_result_free(r);

  /* The MX step's verdict stands. */
  r = hosts_result(1, unasked, false);
  r->status = STLS_DNS_SERVFAIL;
  r->error.code = "SERVFAIL";
  stls__dns_settle(r);
  assert_int_equal(r->status, STLS_DNS_SERVFAIL);
  assert_string_equal(r->error.code, "SERVFAIL");
  stls_dns_result_free(r);
}

static void test_settle_keeps_specific_error(void **state) {
  static const stls_dns_status_t fam[][2] = {
      {STLS_DNS_ERROR, STLS_DNS_NO_ADDRESS}};
  stls_dns_result_t *r = hosts_result(1, fam, false);
  (void)state;
  /* What the lookup callback leaves: the running status and its error. */
  r->mx[0].status = STLS_DNS_ERROR;
  r->mx[0].error.code = "ECONNREFUSED";
  r->mx[0].error.message = "Could not contact DNS servers";
  stls__dns_settle(r);
  assert_int_equal(r->mx[0].status, STLS_DNS_ERROR);
  assert_string_equal(r->mx[0].error.code, "ECONNREFUSED");
  assert_int_equal(r->status, STLS_DNS_ERROR);
  assert_string_equal(r->error.code, "ECONNREFUSED");
  stls_dns_result_free(r);
}

/* ---- resolver life cycle (no packets sent) ---- */

typedef struct {
  int calls;
  bool *returned;
  bool returned_then;
  stls_dns_status_t status;
  const char *code;
} cb_state_t;

static void record_cb(stls_dns_result_t *res, void *arg) {
  cb_state_t *s = arg;
  s->calls++;
  s->returned_then = s->returned ? *s->returned : false;
  s->status = res->status;
  s->code = res->error.code;
  stls_dns_result_free(res);
}

static void test_init_close(void **state) {
  uv_loop_t loop;
  stls_dns_t *d = NULL;
  stls_dns_opts_t o = {"127.0.0.1:5353,[::1]:53", 100, 1, 0};
  stls_dns_opts_t bad = {"300.1.2.3", 0, 0, 0};
  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(stls_dns_init(&d, &loop, &o), 0);
  assert_non_null(d);
  stls_dns_close(d);
  stls_dns_close(NULL);
  assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);

  assert_int_equal(stls_dns_init(&d, &loop, &bad), UV_EINVAL);
  assert_null(d);
  assert_int_equal(stls_dns_init(NULL, &loop, &o), UV_EINVAL);
  assert_int_equal(uv_loop_close(&loop), 0);
}

/* c-ares rejects a name with a 64-byte label before sending anything;
 * the callback still comes from the loop, after the call returned. */
static void test_sync_failure(void **state) {
  uv_loop_t loop;
  stls_dns_t *d = NULL;
  stls_dns_opts_t o = {"127.0.0.1:5353", 100, 1, 0};
  char name[100];
  bool returned = false;
  cb_state_t s = {0};
  (void)state;
  memset(name, 'a', 64);
  strcpy(name + 64, ".example");
  s.returned = &returned;
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(stls_dns_init(&d, &loop, &o), 0);
  assert_int_equal(stls_dns_resolve_domain(d, name, NULL, record_cb, &s), 0);
  returned = true;
  assert_int_equal(s.calls, 0);
  uv_run(&loop, UV_RUN_NOWAIT);
  assert_int_equal(s.calls, 1);
  assert_true(s.returned_then);
  assert_int_equal(s.status, STLS_DNS_ERROR);
  assert_string_equal(s.code, "EBADNAME");
  stls_dns_close(d);
  assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(uv_loop_close(&loop), 0);
}

/* Closing with a completed but undelivered result hands it over before
 * close returns; afterwards new lookups are refused. */
static void test_close_delivers_pending(void **state) {
  uv_loop_t loop;
  stls_dns_t *d = NULL;
  stls_dns_opts_t o = {"127.0.0.1:5353", 100, 1, 0};
  char name[100];
  cb_state_t s = {0}, refused = {0};
  (void)state;
  memset(name, 'b', 64);
  strcpy(name + 64, ".example");
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(stls_dns_init(&d, &loop, &o), 0);
  assert_int_equal(stls_dns_resolve_domain(d, name, NULL, record_cb, &s), 0);
  stls_dns_close(d);
  assert_int_equal(s.calls, 1);
  assert_string_equal(s.code, "EBADNAME");
  assert_int_equal(
      stls_dns_resolve_domain(d, "example.com", NULL, record_cb, &refused),
      UV_ECANCELED);
  assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(refused.calls, 0);
  assert_int_equal(uv_loop_close(&loop), 0);
}

/* ---- answers parsed by hand: TLSA, TXT, AD ---- */

/* A DNS response built byte by byte. */
typedef struct {
  unsigned char b[2048];
  size_t n;
  size_t ancount_at;
} pkt_t;

static void put8(pkt_t *p, unsigned v) {
  assert_true(p->n < sizeof p->b);
  p->b[p->n++] = (unsigned char)v;
}

static void put16(pkt_t *p, unsigned v) {
  put8(p, v >> 8);
  put8(p, v & 0xff);
}

static void put_bytes(pkt_t *p, const void *d, size_t len) {
  assert_true(p->n + len <= sizeof p->b);
  memcpy(p->b + p->n, d, len);
  p->n += len;
}

/* A name in wire form; "@12" writes a compression pointer to offset 12. */
static void put_name(pkt_t *p, const char *name) {
  if (name[0] == '@') {
    unsigned off = (unsigned)atoi(name + 1);
    put16(p, 0xc000 | off);
    return;
  }
  while (*name) {
    const char *dot = strchr(name, '.');
    size_t len = dot ? (size_t)(dot - name) : strlen(name);
    put8(p, (unsigned)len);
    put_bytes(p, name, len);
    name += len + (dot ? 1 : 0);
  }
  put8(p, 0);
}

/* Header (NOERROR, one question, ancount filled in by pkt_rr) and the
 * question; the question name starts at offset 12. */
static void pkt_start(pkt_t *p, const char *qname, unsigned qtype, bool ad) {
  memset(p, 0, sizeof *p);
  put16(p, 0x1234);
  put8(p, 0x81);
  put8(p, ad ? 0xa0 : 0x80);
  put16(p, 1);
  p->ancount_at = p->n;
  put16(p, 0);
  put16(p, 0);
  put16(p, 0);
  put_name(p, qname);
  put16(p, qtype);
  put16(p, 1);
}

static void pkt_rr(pkt_t *p, const char *owner, unsigned type,
                   const void *rdata, size_t rdlen) {
  unsigned an =
      (unsigned)(p->b[p->ancount_at] << 8 | p->b[p->ancount_at + 1]) + 1;
  p->b[p->ancount_at] = (unsigned char)(an >> 8);
  p->b[p->ancount_at + 1] = (unsigned char)an;
  put_name(p, owner);
  put16(p, type);
  put16(p, 1);
  put16(p, 0);
  put16(p, 300);
  put16(p, (unsigned)rdlen);
  put_bytes(p, rdata, rdlen);
}

/* A CNAME's target, in wire form, as RDATA. */
static void pkt_cname(pkt_t *p, const char *owner, const char *target) {
  pkt_t t = {{0}, 0, 0};
  put_name(&t, target);
  pkt_rr(p, owner, 5, t.b, t.n);
}

static void pkt_tlsa(pkt_t *p, const char *owner, unsigned u, unsigned s,
                     unsigned m, const char *data) {
  unsigned char rd[64];
  size_t len = strlen(data);
  rd[0] = (unsigned char)u;
  rd[1] = (unsigned char)s;
  rd[2] = (unsigned char)m;
  memcpy(rd + 3, data, len);
  pkt_rr(p, owner, 52, rd, 3 + len);
}

static void assert_tlsa(const stls_dns_tlsa_rr_t *rr, unsigned u, unsigned s,
                        unsigned m, const char *data) {
  if (rr->usage != u || rr->selector != s || rr->mtype != m ||
      rr->len != strlen(data) || memcmp(rr->data, data, rr->len) != 0)
    fail_msg("want TLSA %u %u %u %s, got %u %u %u (%zu bytes)", u, s, m, data,
             rr->usage, rr->selector, rr->mtype, rr->len);
}

static void tlsa_clear(stls_dns_tlsa_result_t *r) {
  for (size_t i = 0; i < r->nrr; i++)
    free(r->rr[i].data);
  free(r->rr);
  memset(r, 0, sizeof *r);
}

/* Records come out sorted and unique, whatever the answer order. */
static void test_parse_tlsa(void **state) {
  pkt_t p;
  stls_dns_tlsa_result_t r = {0};
  (void)state;
  pkt_start(&p, "_25._tcp.mx.example.com", 52, true);
  pkt_tlsa(&p, "@12", 3, 1, 1, "bbbb");
  pkt_tlsa(&p, "_25._tcp.MX.Example.COM", 2, 0, 1, "aaaa");
  pkt_tlsa(&p, "@12", 3, 1, 1, "bbbb");
  pkt_tlsa(&p, "@12", 3, 1, 1, "bbb");
  pkt_tlsa(&p, "@12", 3, 0, 0, "c");
  assert_true(stls__dns_answer_ad(p.b, p.n));
  assert_int_equal(
      stls__dns_parse_tlsa(p.b, p.n, "_25._tcp.mx.example.com.", &r), 0);
  assert_int_equal(r.nrr, 4);
  assert_false(r.is_cname);
  assert_tlsa(&r.rr[0], 2, 0, 1, "aaaa");
  assert_tlsa(&r.rr[1], 3, 0, 0, "c");
  assert_tlsa(&r.rr[2], 3, 1, 1, "bbb");
  assert_tlsa(&r.rr[3], 3, 1, 1, "bbbb");
  tlsa_clear(&r);

  /* A record without certificate data is malformed to c-ares (RFC 6698
   * 2.1.4 has no empty association data), and with it the answer. */
  pkt_tlsa(&p, "@12", 3, 0, 0, "");
  assert_false(stls__dns_answer_ad(p.b, p.n));
  assert_int_equal(
      stls__dns_parse_tlsa(p.b, p.n, "_25._tcp.mx.example.com", &r), UV_EINVAL);
  assert_int_equal(r.nrr, 0);
  assert_null(r.rr);
}

/* Only the records at the end of the CNAME chain from the name asked for
 * count; records of other owners are ignored. */
static void test_parse_tlsa_cname(void **state) {
  pkt_t p;
  stls_dns_tlsa_result_t r = {0};
  (void)state;
  pkt_start(&p, "_25._tcp.mx.example.com", 52, false);
  pkt_tlsa(&p, "_25._tcp.other.example", 3, 1, 1, "xx");
  pkt_cname(&p, "t1.example.net", "t2.example.net");
  pkt_cname(&p, "@12", "t1.example.net");
  pkt_tlsa(&p, "t2.example.net", 3, 1, 2, "yy");
  pkt_tlsa(&p, "t1.example.net", 3, 1, 1,
           "zz"); /* beside a CNAME: not the target */
  assert_false(stls__dns_answer_ad(p.b, p.n));
  assert_int_equal(
      stls__dns_parse_tlsa(p.b, p.n, "_25._tcp.mx.example.com", &r), 0);
  assert_int_equal(r.nrr, 1);
  assert_true(r.is_cname);
  assert_tlsa(&r.rr[0], 3, 1, 2, "yy");
  tlsa_clear(&r);

  /* A CNAME loop ends, with nothing found. */
  pkt_start(&p, "a.example", 52, false);
  pkt_cname(&p, "a.example", "b.example");
  pkt_cname(&p, "b.example", "a.example");
  assert_int_equal(stls__dns_parse_tlsa(p.b, p.n, "a.example", &r), 0);
  assert_int_equal(r.nrr, 0);
  tlsa_clear(&r);

  /* Only records of another owner: nothing. */
  pkt_start(&p, "_25._tcp.mx.example.com", 52, false);
  pkt_tlsa(&p, "_25._tcp.mx.example.org", 3, 1, 1, "xx");
  assert_int_equal(
      stls__dns_parse_tlsa(p.b, p.n, "_25._tcp.mx.example.com", &r), 0);
  assert_int_equal(r.nrr, 0);
  tlsa_clear(&r);
}

static void test_parse_malformed(void **state) {
  pkt_t p;
  stls_dns_tlsa_result_t r = {0};
  stls_dns_txt_result_t t = {0};
  unsigned char short_rdata[2] = {3, 1};
  unsigned char bad_txt[4] = {5, 'a', 'b', 'c'};
  (void)state;
  /* RDATA too short for usage, selector and matching type. */
  pkt_start(&p, "q.example", 52, false);
  pkt_rr(&p, "@12", 52, short_rdata, sizeof short_rdata);
  assert_int_equal(stls__dns_parse_tlsa(p.b, p.n, "q.example", &r), UV_EINVAL);
  assert_int_equal(r.nrr, 0);
  assert_null(r.rr);
  /* RDLENGTH beyond the end of the packet. */
  pkt_start(&p, "q.example", 52, false);
  pkt_tlsa(&p, "@12", 3, 1, 1, "abcd");
  assert_int_equal(stls__dns_parse_tlsa(p.b, p.n - 2, "q.example", &r),
                   UV_EINVAL);
  /* Truncated header, and a compression pointer out of the packet. */
  assert_int_equal(stls__dns_parse_tlsa(p.b, 11, "q.example", &r), UV_EINVAL);
  pkt_start(&p, "q.example", 52, false);
  pkt_tlsa(&p, "@1000", 3, 1, 1, "abcd");
  assert_int_equal(stls__dns_parse_tlsa(p.b, p.n, "q.example", &r), UV_EINVAL);
  /* More answers counted than the packet can hold. */
  pkt_start(&p, "q.example", 52, false);
  pkt_tlsa(&p, "@12", 3, 1, 1, "abcd");
  p.b[p.ancount_at] = 0xf8;
  assert_int_equal(stls__dns_parse_tlsa(p.b, p.n, "q.example", &r), UV_EINVAL);
  assert_int_equal(stls__dns_answer_check(p.b, p.n), UV_EINVAL);
  /* A character-string longer than its RDATA. */
  pkt_start(&p, "q.example", 16, false);
  pkt_rr(&p, "@12", 16, bad_txt, sizeof bad_txt);
  assert_int_equal(stls__dns_parse_txt(p.b, p.n, "q.example", &t), UV_EINVAL);
  assert_int_equal(t.ntxt, 0);
  assert_null(t.txt);
}

/* Each TXT record's strings joined into one, NUL bytes kept. */
static void test_parse_txt(void **state) {
  pkt_t p;
  stls_dns_txt_result_t t = {0};
  static const unsigned char sts[] = "\x09v=STSv1; \x06id=123";
  static const unsigned char nul[] = "\x03"
                                     "a\0b";
  (void)state;
  pkt_start(&p, "_mta-sts.example.com", 16, true);
  pkt_rr(&p, "@12", 16, sts, sizeof sts - 1);
  pkt_rr(&p, "@12", 16, nul, sizeof nul - 1);
  pkt_rr(&p, "@12", 16, "\0", 1); /* one empty string */
  pkt_rr(&p, "other.example.com", 16, sts, sizeof sts - 1);
  assert_int_equal(stls__dns_parse_txt(p.b, p.n, "_mta-sts.example.com", &t),
                   0);
  assert_int_equal(t.ntxt, 3);
  assert_int_equal(t.txt_len[0], 15);
  assert_string_equal(t.txt[0], "v=STSv1; id=123");
  assert_int_equal(t.txt_len[1], 3);
  assert_memory_equal(t.txt[1], "a\0b", 4);
  assert_int_equal(t.txt_len[2], 0);
  assert_string_equal(t.txt[2], "");
  for (size_t i = 0; i < t.ntxt; i++)
    free(t.txt[i]);
  free(t.txt);
  free(t.txt_len);
  memset(&t, 0, sizeof t);

  /* RDATA without a single string is malformed (RFC 1035 3.3.14: one or
   * more character-strings); c-ares refuses the answer. */
  pkt_rr(&p, "@12", 16, "", 0);
  assert_int_equal(stls__dns_parse_txt(p.b, p.n, "_mta-sts.example.com", &t),
                   UV_EINVAL);
  assert_int_equal(t.ntxt, 0);
  assert_null(t.txt);
}

/* An MX record: preference, then the exchange in wire form. */
static void pkt_mx(pkt_t *p, const char *owner, unsigned pref,
                   const char *exchange) {
  pkt_t t = {{0}, 0, 0};
  put16(&t, pref);
  put_name(&t, exchange);
  pkt_rr(p, owner, 15, t.b, t.n);
}

/* MX records in answer order; the root is ""; records of other owners
 * are ignored and a CNAME is followed. */
static void test_parse_mx(void **state) {
  pkt_t p;
  stls__dns_mx_rr_t *rr;
  size_t n;
  (void)state;
  pkt_start(&p, "example.com", 15, false);
  pkt_mx(&p, "@12", 20, "mx2.example.com");
  pkt_mx(&p, "@12", 10, "@12");
  pkt_mx(&p, "other.example", 5, "mx.other.example");
  assert_int_equal(stls__dns_parse_mx(p.b, p.n, "example.com", &rr, &n), 0);
  assert_int_equal(n, 2);
  assert_int_equal(rr[0].preference, 20);
  assert_string_equal(rr[0].host, "mx2.example.com");
  assert_int_equal(rr[1].preference, 10);
  assert_string_equal(rr[1].host, "example.com");
  stls__dns_mx_rr_free(rr, n);

  /* A true null MX: the exchange is the root label itself. */
  pkt_start(&p, "example.com", 15, false);
  pkt_mx(&p, "@12", 0, "");
  assert_int_equal(stls__dns_parse_mx(p.b, p.n, "example.com", &rr, &n), 0);
  assert_int_equal(n, 1);
  assert_string_equal(rr[0].host, "");
  stls__dns_mx_rr_free(rr, n);

  /* Through a CNAME. */
  pkt_start(&p, "alias.example", 15, false);
  pkt_cname(&p, "@12", "real.example");
  pkt_mx(&p, "real.example", 10, "mx.real.example");
  assert_int_equal(stls__dns_parse_mx(p.b, p.n, "alias.example", &rr, &n), 0);
  assert_int_equal(n, 1);
  assert_string_equal(rr[0].host, "mx.real.example");
  stls__dns_mx_rr_free(rr, n);

  /* No MX at all. */
  pkt_start(&p, "example.com", 15, false);
  assert_int_equal(stls__dns_parse_mx(p.b, p.n, "example.com", &rr, &n), 0);
  assert_int_equal(n, 0);
  assert_null(rr);
}

/* A compression pointer into the 12-byte header is malformed, wherever
 * it is: read as labels, a zero byte there (the ID's high byte, a count's
 * high byte) spells the root, which made an MX look like a null MX. */
static void test_parse_mx_pointer_into_header(void **state) {
  static const char *const bad[] = {"@0", "@1", "@4", "@6", "@11"};
  pkt_t p;
  stls__dns_mx_rr_t *rr = NULL;
  size_t n = 0;
  unsigned char rd[3] = {0, 10, 0};
  (void)state;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    pkt_start(&p, "example.com", 15, false);
    p.b[0] = p.b[1] = 0; /* ID 0: offset 0 reads as the root */
    pkt_mx(&p, "@12", 0, bad[i]);
    if (stls__dns_parse_mx(p.b, p.n, "example.com", &rr, &n) != UV_EINVAL)
      fail_msg("exchange %s: want UV_EINVAL", bad[i]);
    assert_null(rr);
    assert_int_equal(n, 0);
  }
  /* The same in an owner name and in a CNAME target. */
  pkt_start(&p, "example.com", 15, false);
  pkt_mx(&p, "@4", 10, "mx.example.com");
  assert_int_equal(stls__dns_parse_mx(p.b, p.n, "example.com", &rr, &n),
                   UV_EINVAL);
  pkt_start(&p, "example.com", 15, false);
  pkt_cname(&p, "@12", "@0");
  assert_int_equal(stls__dns_parse_mx(p.b, p.n, "example.com", &rr, &n),
                   UV_EINVAL);
  /* And outside the answer section: c-ares reads the additional records
   * too, so whether it accepted one pointing into the header depended on
   * the ID (found by fuzz_dns: corpus/dns/ptr0-in-additional). Moved from
   * ANCOUNT to ARCOUNT, the record is an additional one. */
  for (unsigned id = 0; id < 0x10000; id += 0xffff) {
    pkt_start(&p, "example.com", 15, false);
    p.b[0] = p.b[1] = (unsigned char)(id & 0xff);
    pkt_mx(&p, "@12", 0, "@0");
    p.b[p.ancount_at + 1] = 0; /* ANCOUNT 0 */
    p.b[p.ancount_at + 5] = 1; /* ARCOUNT 1 */
    assert_int_equal(stls__dns_answer_check(p.b, p.n), UV_EINVAL);
    assert_int_equal(stls__dns_parse_mx(p.b, p.n, "example.com", &rr, &n),
                     UV_EINVAL);
  }
  /* A pointer back into the labels of its own name: "a" then a pointer
   * to that "a" would repeat for ever. */
  pkt_start(&p, "example.com", 15, false);
  {
    size_t at = p.n; /* the owner: label "a", then a pointer to itself */
    put_bytes(&p,
              "\x01"
              "a",
              2);
    put16(&p, 0xc000 | (unsigned)at);
    put16(&p, 15);
    put16(&p, 1);
    put16(&p, 0);
    put16(&p, 300);
    put16(&p, 3);
    put_bytes(&p, "\x00\x0a\x00", 3);
    p.b[p.ancount_at + 1] = 1;
  }
  assert_int_equal(stls__dns_parse_mx(p.b, p.n, "example.com", &rr, &n),
                   UV_EINVAL);
  /* A pointer forward, and an exchange that overruns its RDATA. */
  pkt_start(&p, "example.com", 15, false);
  pkt_mx(&p, "@12", 10, "@200");
  assert_int_equal(stls__dns_parse_mx(p.b, p.n, "example.com", &rr, &n),
                   UV_EINVAL);
  pkt_start(&p, "example.com", 15, false);
  rd[2] = 3; /* a label of 3 bytes that are not there */
  pkt_rr(&p, "@12", 15, rd, sizeof rd);
  put_bytes(&p,
            "\x03"
            "abc\0",
            5);
  assert_int_equal(stls__dns_parse_mx(p.b, p.n, "example.com", &rr, &n),
                   UV_EINVAL);
  /* An address answer is checked the same way before c-ares reads it:
   * its owner, or a CNAME target even when nothing follows it. */
  {
    static const unsigned char a4[4] = {192, 0, 2, 1};
    pkt_start(&p, "mx.example.com", 1, false);
    pkt_rr(&p, "@12", 1, a4, sizeof a4);
    assert_int_equal(stls__dns_answer_check(p.b, p.n), 0);
    pkt_start(&p, "mx.example.com", 1, false);
    pkt_rr(&p, "@4", 1, a4, sizeof a4);
    assert_int_equal(stls__dns_answer_check(p.b, p.n), UV_EINVAL);
    pkt_start(&p, "mx.example.com", 1, false);
    pkt_cname(&p, "other.example", "@0");
    pkt_rr(&p, "@12", 1, a4, sizeof a4);
    assert_int_equal(stls__dns_answer_check(p.b, p.n), UV_EINVAL);
    assert_int_equal(stls__dns_answer_check(p.b, 11), UV_EINVAL);
  }
  /* TLSA and TXT answers follow the same rule. */
  pkt_start(&p, "_25._tcp.mx.example", 52, false);
  pkt_tlsa(&p, "@0", 3, 1, 1, "ab");
  assert_int_equal(stls__dns_parse_tlsa(p.b, p.n, "_25._tcp.mx.example",
                                        &(stls_dns_tlsa_result_t){0}),
                   UV_EINVAL);
}

/* The --resolver grammar: what c-ares would half-accept is refused with
 * a reason that names the entry. */
static void test_servers_check(void **state) {
  static const char *const good[] = {
      "127.0.0.1",
      "127.0.0.1:53",
      "127.0.0.1:65535",
      "::1",
      "[::1]",
      "[::1]:5353",
      "2001:db8::1",
      "::ffff:192.0.2.1",
      "127.0.53.53,[::1]:5353,192.0.2.1:1",
  };
  static const struct {
    const char *in, *why;
  } bad[] = {
      {"", "empty server list"},
      {"[::1", "'[::1': '[' without ']'"},
      {"127.0.0.1:0", "'127.0.0.1:0': port must be 1..65535"},
      {"127.0.0.1:65536", "'127.0.0.1:65536': port must be 1..65535"},
      {"127.0.0.1:", "'127.0.0.1:': port must be 1..65535"},
      {"127.0.0.1:+53", "'127.0.0.1:+53': port must be 1..65535"},
      {"300.1.1.1", "'300.1.1.1': not an IPv4 or IPv6 address"},
      {"host:53:extra", "'host:53:extra': not an address (IPv6 with a port is "
                        "written [ADDR]:PORT)"},
      {"127.0.0.1:53:1", "'127.0.0.1:53:1': not an address (IPv6 with a port "
                         "is written [ADDR]:PORT)"},
      {"dns.example", "'dns.example': not an IPv4 or IPv6 address"},
      {"dns.example:53", "'dns.example:53': not an IPv4 address before ':'"},
      {"[127.0.0.1]:53", "'[127.0.0.1]:53': not an IPv6 address inside [ ]"},
      {"[::1]53", "'[::1]53': text after ']' (want [ADDR]:PORT)"},
      {"[::1]:0", "'[::1]:0': port must be 1..65535"},
      {"127.0.0.1,", "empty server"},
      {"127.0.0.1,,::1", "empty server"},
      {" 127.0.0.1", "' 127.0.0.1': not an IPv4 or IPv6 address"},
  };
  char why[160];
  (void)state;
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
    if (stls_dns_servers_check(good[i], why, sizeof why) != 0)
      fail_msg("'%s' refused: %s", good[i], why);
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    why[0] = '\0';
    if (stls_dns_servers_check(bad[i].in, why, sizeof why) != -1)
      fail_msg("'%s' accepted", bad[i].in);
    assert_string_equal(why, bad[i].why);
  }
  assert_int_equal(stls_dns_servers_check(NULL, NULL, 0), -1);
}

/* stls_dns_init refuses what the check refuses. */
static void test_init_bad_servers(void **state) {
  uv_loop_t loop;
  stls_dns_t *d = NULL;
  stls_dns_opts_t o = {"127.0.0.1:0", 100, 1, 0};
  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(stls_dns_init(&d, &loop, &o), UV_EINVAL);
  assert_null(d);
  o.servers = "[::1";
  assert_int_equal(stls_dns_init(&d, &loop, &o), UV_EINVAL);
  assert_int_equal(uv_loop_close(&loop), 0);
}

/* Argument checks of the single-type lookups: no callback is made. */
static void test_single_lookup_args(void **state) {
  uv_loop_t loop;
  stls_dns_t *d;
  stls_dns_opts_t o = {"127.0.0.1:1", 100, 1, 0};
  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(stls_dns_init(&d, &loop, &o), 0);
  assert_int_equal(stls_dns_lookup_txt(d, "", (stls_dns_txt_cb)abort, NULL),
                   UV_EINVAL);
  assert_int_equal(stls_dns_lookup_txt(d, "x.example", NULL, NULL), UV_EINVAL);
  assert_int_equal(
      stls_dns_lookup_tlsa(d, "mx.example", 0, (stls_dns_tlsa_cb)abort, NULL),
      UV_EINVAL);
  assert_int_equal(stls_dns_lookup_tlsa(d, "mx.example", 70000,
                                        (stls_dns_tlsa_cb)abort, NULL),
                   UV_EINVAL);
  assert_int_equal(stls_dns_lookup_tlsa(NULL, "mx.example", 25,
                                        (stls_dns_tlsa_cb)abort, NULL),
                   UV_EINVAL);
  stls_dns_close(d);
  assert_int_equal(
      stls_dns_lookup_tlsa(d, "mx.example", 25, (stls_dns_tlsa_cb)abort, NULL),
      UV_ECANCELED);
  assert_int_equal(
      stls_dns_lookup_txt(d, "x.example", (stls_dns_txt_cb)abort, NULL),
      UV_ECANCELED);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_status_names),
      cmocka_unit_test(test_status_from_ares),
      cmocka_unit_test(test_classify_errors_pass_through),
      cmocka_unit_test(test_classify_implicit),
      cmocka_unit_test(test_classify_null_mx),
      cmocka_unit_test(test_classify_order),
      cmocka_unit_test(test_classify_dedupe),
      cmocka_unit_test(test_classify_cap),
      cmocka_unit_test(test_classify_ip_literal),
      cmocka_unit_test(test_mx_sort),
      cmocka_unit_test(test_settle_hosts),
      cmocka_unit_test(test_settle_domain),
      cmocka_unit_test(test_settle_keeps_specific_error),
      cmocka_unit_test(test_init_close),
      cmocka_unit_test(test_sync_failure),
      cmocka_unit_test(test_close_delivers_pending),
      cmocka_unit_test(test_parse_tlsa),
      cmocka_unit_test(test_parse_tlsa_cname),
      cmocka_unit_test(test_parse_malformed),
      cmocka_unit_test(test_parse_txt),
      cmocka_unit_test(test_parse_mx),
      cmocka_unit_test(test_parse_mx_pointer_into_header),
      cmocka_unit_test(test_servers_check),
      cmocka_unit_test(test_init_bad_servers),
      cmocka_unit_test(test_single_lookup_args),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
