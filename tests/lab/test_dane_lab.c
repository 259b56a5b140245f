/* DANE against the lab: DNSSEC-validated lookups through the lab resolver
 * (unbound on 127.0.53.53 validating the zones nsd signs and serves, see
 * tests/lab/dns/README.md), TLSA records computed from this run's lab PKI,
 * and matching against the certificate chains the lab's Postfix endpoints
 * send (the PEM files of that PKI: leaf, then intermediate).
 *
 * Runs inside the lab namespace with the DNS started and the PKI made:
 *   tests/lab/netns-run.sh bash tests/lab/dns/run-with-dns.sh --pki
 * test_dane_lab which exports STLS_LAB_PKI. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <mbedtls/x509_crt.h>
#include <psa/crypto.h>

#include "stls/cert.h"
#include "stls/dane.h"
#include "stls/dns.h"

#define LAB_DNS "127.0.53.53"
/* 192.0.2.0/24 is routed to lo in the namespace: packets there vanish. */
#define BLACK_HOLE "192.0.2.53"

typedef struct {
  uv_loop_t loop;
  stls_dns_t *dns;
} fixture_t;

static const char *pki_dir;

/* ---- lookups, run to completion --------------------------------------- */

typedef struct {
  int calls;
  bool returned; /* the starting call had returned when cb ran */
  bool *returned_flag;
  stls_dns_result_t *dom;
  stls_dns_tlsa_result_t *tlsa;
  stls_dns_txt_result_t *txt;
} slot_t;

static void note_call(slot_t *s) {
  s->calls++;
  if (s->returned_flag)
    s->returned = *s->returned_flag;
}

static void dom_cb(stls_dns_result_t *res, void *arg) {
  slot_t *s = arg;
  note_call(s);
  stls_dns_result_free(s->dom); /* a second call is a bug the count shows */
  s->dom = res;
}

static void tlsa_cb(stls_dns_tlsa_result_t *res, void *arg) {
  slot_t *s = arg;
  note_call(s);
  stls_dns_tlsa_result_free(s->tlsa);
  s->tlsa = res;
}

static void txt_cb(stls_dns_txt_result_t *res, void *arg) {
  slot_t *s = arg;
  note_call(s);
  stls_dns_txt_result_free(s->txt);
  s->txt = res;
}

static void run_until(fixture_t *f, const slot_t *s) {
  while (s->calls == 0)
    assert_true(uv_run(&f->loop, UV_RUN_ONCE) >= 0);
  assert_int_equal(s->calls, 1);
}

static stls_dns_result_t *resolve(fixture_t *f, const char *domain) {
  slot_t s = {0};
  assert_int_equal(stls_dns_resolve_domain(f->dns, domain, NULL, dom_cb, &s),
                   0);
  run_until(f, &s);
  return s.dom;
}

static stls_dns_tlsa_result_t *tlsa(fixture_t *f, const char *host) {
  slot_t s = {0};
  assert_int_equal(stls_dns_lookup_tlsa(f->dns, host, 25, tlsa_cb, &s), 0);
  run_until(f, &s);
  return s.tlsa;
}

static stls_dns_txt_result_t *txt(fixture_t *f, const char *name) {
  slot_t s = {0};
  assert_int_equal(stls_dns_lookup_txt(f->dns, name, txt_cb, &s), 0);
  run_until(f, &s);
  return s.txt;
}

static int fixture_open(fixture_t *f, const char *servers,
                        unsigned timeout_ms) {
  stls_dns_opts_t o = {servers, timeout_ms, 2, 0};
  if (uv_loop_init(&f->loop) != 0)
    return -1;
  return stls_dns_init(&f->dns, &f->loop, &o);
}

static void fixture_close(fixture_t *f) {
  if (f->dns)
    stls_dns_close(f->dns);
  f->dns = NULL;
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&f->loop), 0);
}

static int setup(void **state) {
  fixture_t *f = calloc(1, sizeof *f);
  if (!f || fixture_open(f, LAB_DNS, 2000) != 0) {
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

/* ---- the chains the lab endpoints send --------------------------------- */

typedef struct {
  stls_cert_t c[4];
  size_t n;
} chain_t;

/* The certificates of PKI/NAME.chain.pem (the private key block in front
 * is skipped): what Postfix sends for that endpoint, leaf first. */
static void chain_load(chain_t *ch, const char *name) {
  char path[4096];
  mbedtls_x509_crt crt;
  memset(ch, 0, sizeof *ch);
  snprintf(path, sizeof path, "%s/%s.chain.pem", pki_dir, name);
  mbedtls_x509_crt_init(&crt);
  if (mbedtls_x509_crt_parse_file(&crt, path) != 0)
    fail_msg("cannot read the certificates of %s", path);
  for (mbedtls_x509_crt *c = &crt; c && c->raw.p && ch->n < 4; c = c->next)
    if (stls_cert_describe(c, &ch->c[ch->n++]) != 0)
      fail_msg("stls_cert_describe failed for %s", path);
  mbedtls_x509_crt_free(&crt);
}

static void chain_free(chain_t *ch) {
  for (size_t i = 0; i < ch->n; i++)
    stls_cert_free(&ch->c[i]);
  ch->n = 0;
}

/* ---- the DANE path for one domain, as the scanner runs it --------------- */

typedef struct {
  stls_dns_result_t *dom;
  stls_dns_tlsa_result_t *tlsa;
  stls_tlsa_state_t state;
  size_t usable;
  stls_dane_verdict_t verdict;
} dane_case_t;

/* Resolve domain, expect one MX host (mx_host) with secure MX and address
 * answers, look its TLSA records up and, when usable, match the chain of
 * the lab endpoint `endpoint`. */
static void dane_case(fixture_t *f, dane_case_t *dc, const char *domain,
                      const char *mx_host, const char *endpoint) {
  chain_t ch;
  memset(dc, 0, sizeof *dc);
  dc->dom = resolve(f, domain);
  if (dc->dom->status != STLS_DNS_OK)
    fail_msg("%s: %s", domain, stls_dns_status_name(dc->dom->status));
  if (!dc->dom->mx_secure)
    fail_msg("%s: the MX answer is not secure (no AD bit)", domain);
  assert_int_equal(dc->dom->nmx, 1);
  assert_string_equal(dc->dom->mx[0].host, mx_host);
  if (!dc->dom->mx[0].addr_secure)
    fail_msg("%s: the address answers of %s are not secure", domain, mx_host);
  dc->tlsa = tlsa(f, mx_host);
  dc->state = stls_tlsa_state(dc->tlsa, &dc->usable);
  if (dc->state != STLS_TLSA_STATE_USABLE)
    return;
  chain_load(&ch, endpoint);
  stls_dane_opts_t o = {mx_host, domain};
  assert_int_equal(stls_dane_verify(dc->tlsa->rr, dc->tlsa->nrr, ch.c, ch.n, &o,
                                    &dc->verdict),
                   0);
  chain_free(&ch);
}

static void dane_case_free(dane_case_t *dc) {
  stls_dns_result_free(dc->dom);
  stls_dns_tlsa_result_free(dc->tlsa);
}

static void assert_state(const dane_case_t *dc, stls_tlsa_state_t want) {
  if (dc->state != want)
    fail_msg("%s: TLSA state %s (lookup %s, secure %d), want %s",
             dc->dom->domain, stls_tlsa_state_name(dc->state),
             stls_dns_status_name(dc->tlsa->status), dc->tlsa->secure,
             stls_tlsa_state_name(want));
}

static void assert_match(const dane_case_t *dc, const char *rr, int depth) {
  assert_state(dc, STLS_TLSA_STATE_USABLE);
  if (!dc->verdict.matched)
    fail_msg("%s: no DANE match: %s", dc->dom->domain,
             stls_dane_fail_name(dc->verdict.fail));
  assert_string_equal(dc->verdict.match_rr, rr);
  assert_int_equal(dc->verdict.match_depth, depth);
  assert_null(dc->verdict.result_type);
}

static void assert_no_match(const dane_case_t *dc, stls_dane_fail_t fail,
                            const char *type) {
  assert_state(dc, STLS_TLSA_STATE_USABLE);
  if (dc->verdict.matched)
    fail_msg("%s: unexpected DANE match with %s", dc->dom->domain,
             dc->verdict.match_rr);
  assert_int_equal(dc->verdict.fail, fail);
  assert_string_equal(dc->verdict.result_type, type);
}

/* ---- cases ----------------------------------------------------------------
 */

static void test_ee(void **state) {
  dane_case_t dc;
  dane_case(*state, &dc, "ee.dane.test", "mx-ee.dane.test", "mx-good");
  assert_true(dc.tlsa->secure);
  assert_string_equal(dc.tlsa->qname, "_25._tcp.mx-ee.dane.test");
  assert_match(&dc, "3 1 1", 0);
  assert_false(dc.verdict.name_checked);
  /* No AAAA record: a validated NODATA, so the host stays secure. */
  assert_int_equal(dc.dom->mx[0].aaaa_status, STLS_DNS_NO_ADDRESS);
  dane_case_free(&dc);
}

/* DANE-EE ignores trust (self-signed) and expiry. */
static void test_ee_self_and_expired(void **state) {
  dane_case_t dc;
  dane_case(*state, &dc, "self.dane.test", "mx-self.dane.test", "mx-self");
  assert_match(&dc, "3 0 1", 0);
  dane_case_free(&dc);
  dane_case(*state, &dc, "expired.dane.test", "mx-expired.dane.test",
            "mx-expired");
  assert_match(&dc, "3 1 2", 0);
  dane_case_free(&dc);
}

/* DANE-TA(2) of intermediate A, and the MX host name is in the leaf. */
static void test_ta(void **state) {
  dane_case_t dc;
  dane_case(*state, &dc, "ta.dane.test", "wrong.example.net", "mx-wrong");
  assert_match(&dc, "2 0 1", 1);
  assert_true(dc.verdict.name_checked);
  dane_case_free(&dc);
}

/* The same anchor, but the MX host is not a name of the leaf. */
static void test_ta_name_mismatch(void **state) {
  dane_case_t dc;
  dane_case(*state, &dc, "taname.dane.test", "mx-taname.dane.test", "mx-good");
  assert_no_match(&dc, STLS_DANE_FAIL_TA_NAME, "certificate-host-mismatch");
  dane_case_free(&dc);
}

static void test_mismatch(void **state) {
  dane_case_t dc;
  dane_case(*state, &dc, "mismatch.dane.test", "mx-mismatch.dane.test",
            "mx-good");
  assert_int_equal(dc.usable, 2);
  assert_no_match(&dc, STLS_DANE_FAIL_NO_MATCH, "tlsa-invalid");
  dane_case_free(&dc);
}

/* Only unusable records: the level acts as "encrypt". */
static void test_unusable(void **state) {
  dane_case_t dc;
  dane_case(*state, &dc, "unusable.dane.test", "mx-unusable.dane.test",
            "mx-good");
  assert_state(&dc, STLS_TLSA_STATE_UNUSABLE);
  assert_int_equal(dc.tlsa->nrr, 3);
  assert_int_equal(dc.usable, 0);
  /* Sorted: 0 0 1, 1 1 1, 3 1 1 (the short digest). */
  assert_int_equal(stls_dane_rr_check(&dc.tlsa->rr[0]),
                   STLS_DANE_RR_PKIX_USAGE);
  assert_int_equal(stls_dane_rr_check(&dc.tlsa->rr[1]),
                   STLS_DANE_RR_PKIX_USAGE);
  assert_int_equal(stls_dane_rr_check(&dc.tlsa->rr[2]),
                   STLS_DANE_RR_BAD_LENGTH);
  dane_case_free(&dc);
}

static void test_no_tlsa(void **state) {
  dane_case_t dc;
  dane_case(*state, &dc, "notlsa.dane.test", "mx-notlsa.dane.test", "mx-good");
  assert_int_equal(dc.tlsa->status, STLS_DNS_NXDOMAIN);
  assert_true(dc.tlsa->secure);
  assert_state(&dc, STLS_TLSA_STATE_NO_TLSA);
  assert_string_equal(stls_dane_required_type(dc.state), "dane-required");
  dane_case_free(&dc);
}

/* The TLSA name is an alias the resolver follows. */
static void test_tlsa_cname(void **state) {
  dane_case_t dc;
  dane_case(*state, &dc, "cname.dane.test", "mx-cname.dane.test", "mx-good");
  assert_true(dc.tlsa->is_cname);
  assert_true(dc.tlsa->secure);
  assert_match(&dc, "3 1 1", 0);
  dane_case_free(&dc);
}

/* A secure host whose TLSA lookup runs into bogus data. */
static void test_tlsa_bogus(void **state) {
  dane_case_t dc;
  dane_case(*state, &dc, "tlsabogus.dane.test", "mx-tlsabogus.dane.test",
            "mx-good");
  assert_int_equal(dc.tlsa->status, STLS_DNS_SERVFAIL);
  assert_false(dc.tlsa->secure);
  assert_state(&dc, STLS_TLSA_STATE_FAILED);
  assert_string_equal(stls_tlsa_state_result_type(dc.state), "dnssec-invalid");
  dane_case_free(&dc);
}

/* A zone with expired signatures: the validator answers SERVFAIL. */
static void test_bogus_domain(void **state) {
  fixture_t *f = *state;
  stls_dns_result_t *r = resolve(f, "bogus.test");
  stls_dns_tlsa_result_t *t;
  assert_int_equal(r->status, STLS_DNS_SERVFAIL);
  assert_string_equal(r->error.code, "SERVFAIL");
  assert_false(r->mx_secure);
  assert_int_equal(r->nmx, 0);
  stls_dns_result_free(r);
  t = tlsa(f, "mx.bogus.test");
  assert_int_equal(t->status, STLS_DNS_SERVFAIL);
  assert_false(t->secure);
  assert_int_equal(stls_tlsa_state(t, NULL), STLS_TLSA_STATE_FAILED);
  stls_dns_tlsa_result_free(t);
}

/* The unsigned lab.test: answers come, without AD. */
static void test_insecure(void **state) {
  fixture_t *f = *state;
  stls_dns_result_t *r = resolve(f, "good.lab.test");
  stls_dns_tlsa_result_t *t;
  assert_int_equal(r->status, STLS_DNS_OK);
  assert_false(r->mx_secure);
  assert_int_equal(r->nmx, 1);
  assert_false(r->mx[0].addr_secure);
  stls_dns_result_free(r);
  t = tlsa(f, "mx-good.lab.test");
  assert_int_equal(t->status, STLS_DNS_NXDOMAIN);
  assert_false(t->secure);
  assert_int_equal(stls_tlsa_state(t, NULL), STLS_TLSA_STATE_INSECURE);
  stls_dns_tlsa_result_free(t);
  /* A secure MX record naming a host in lab.test: the host is insecure. */
  r = resolve(f, "insecurehost.dane.test");
  assert_int_equal(r->status, STLS_DNS_OK);
  assert_true(r->mx_secure);
  assert_string_equal(r->mx[0].host, "mx-good.lab.test");
  assert_int_equal(r->mx[0].naddrs, 2);
  assert_false(r->mx[0].addr_secure);
  stls_dns_result_free(r);
  /* A validated NXDOMAIN is secure too. */
  r = resolve(f, "nonexistent.dane.test");
  assert_int_equal(r->status, STLS_DNS_NXDOMAIN);
  assert_true(r->mx_secure);
  stls_dns_result_free(r);
}

static void test_txt(void **state) {
  fixture_t *f = *state;
  stls_dns_txt_result_t *t = txt(f, "txt.dane.test");
  assert_int_equal(t->status, STLS_DNS_OK);
  assert_null(t->error.code);
  assert_true(t->secure);
  assert_int_equal(t->ntxt, 1);
  assert_int_equal(t->txt_len[0], strlen("v=STSv1; id=danelab"));
  assert_string_equal(t->txt[0], "v=STSv1; id=danelab");
  stls_dns_txt_result_free(t);

  t = txt(f, "empty.lab.test");
  assert_int_equal(t->status, STLS_DNS_OK);
  assert_false(t->secure);
  assert_string_equal(t->txt[0], "no MX, no address");
  stls_dns_txt_result_free(t);

  t = txt(f, "ee.dane.test");
  assert_int_equal(t->status, STLS_DNS_NODATA);
  assert_string_equal(t->error.code, "NODATA");
  assert_true(t->secure);
  assert_int_equal(t->ntxt, 0);
  stls_dns_txt_result_free(t);

  t = txt(f, "bogus.test");
  assert_int_equal(t->status, STLS_DNS_SERVFAIL);
  assert_false(t->secure);
  stls_dns_txt_result_free(t);
}

/* The callbacks never run before the starting call has returned. */
static void test_callback_after_return(void **state) {
  fixture_t *f = *state;
  bool returned = false;
  slot_t a = {0}, b = {0};
  a.returned_flag = b.returned_flag = &returned;
  assert_int_equal(
      stls_dns_lookup_tlsa(f->dns, "mx-ee.dane.test", 25, tlsa_cb, &a), 0);
  assert_int_equal(stls_dns_lookup_txt(f->dns, "txt.dane.test", txt_cb, &b), 0);
  returned = true;
  run_until(f, &a);
  run_until(f, &b);
  assert_true(a.returned);
  assert_true(b.returned);
  assert_int_equal(a.tlsa->status, STLS_DNS_OK);
  assert_int_equal(b.txt->status, STLS_DNS_OK);
  stls_dns_tlsa_result_free(a.tlsa);
  stls_dns_txt_result_free(b.txt);
}

/* Timeouts, and closing with lookups in flight. */
static void test_timeout_and_close(void **state) {
  fixture_t f = {0};
  slot_t a = {0}, b = {0};
  stls_dns_tlsa_result_t *t;
  (void)state;
  assert_int_equal(fixture_open(&f, LAB_DNS, 200), 0);
  t = tlsa(&f, "mx.slow.test");
  assert_int_equal(t->status, STLS_DNS_TIMEOUT);
  assert_string_equal(t->error.code, "ETIMEDOUT");
  assert_false(t->secure);
  assert_int_equal(stls_tlsa_state(t, NULL), STLS_TLSA_STATE_FAILED);
  stls_dns_tlsa_result_free(t);
  fixture_close(&f);

  assert_int_equal(fixture_open(&f, BLACK_HOLE, 5000), 0);
  assert_int_equal(
      stls_dns_lookup_tlsa(f.dns, "mx-ee.dane.test", 25, tlsa_cb, &a), 0);
  assert_int_equal(stls_dns_lookup_txt(f.dns, "txt.dane.test", txt_cb, &b), 0);
  uv_run(&f.loop, UV_RUN_NOWAIT);
  stls_dns_close(f.dns);
  f.dns = NULL;
  assert_int_equal(a.calls, 1);
  assert_int_equal(b.calls, 1);
  assert_int_equal(a.tlsa->status, STLS_DNS_CANCELLED);
  assert_int_equal(b.txt->status, STLS_DNS_CANCELLED);
  assert_string_equal(a.tlsa->error.code, "ECANCELED");
  stls_dns_tlsa_result_free(a.tlsa);
  stls_dns_txt_result_free(b.txt);
  fixture_close(&f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_ee),
      cmocka_unit_test(test_ee_self_and_expired),
      cmocka_unit_test(test_ta),
      cmocka_unit_test(test_ta_name_mismatch),
      cmocka_unit_test(test_mismatch),
      cmocka_unit_test(test_unusable),
      cmocka_unit_test(test_no_tlsa),
      cmocka_unit_test(test_tlsa_cname),
      cmocka_unit_test(test_tlsa_bogus),
      cmocka_unit_test(test_bogus_domain),
      cmocka_unit_test(test_insecure),
      cmocka_unit_test(test_txt),
      cmocka_unit_test(test_callback_after_return),
      cmocka_unit_test(test_timeout_and_close),
  };
  int rc;
  char probe[4096];
  FILE *fp;

  pki_dir = getenv("STLS_LAB_PKI");
  if (!pki_dir || !pki_dir[0]) {
    fprintf(stderr, "test_dane_lab: STLS_LAB_PKI is not set; run me through "
                    "tests/lab/dns/run-with-dns.sh --pki\n");
    return 1;
  }
  snprintf(probe, sizeof probe, "%s/mx-good.chain.pem", pki_dir);
  if (!(fp = fopen(probe, "r"))) {
    fprintf(stderr, "test_dane_lab: no lab PKI in %s\n", pki_dir);
    return 1;
  }
  fclose(fp);
  if (psa_crypto_init() != PSA_SUCCESS)
    return 1;
  rc = cmocka_run_group_tests(tests, setup, teardown);
  mbedtls_psa_crypto_free();
  return rc;
}
