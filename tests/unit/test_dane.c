/* DANE: TLSA usability and chain matching (scanner/dane.c).
 *
 * The chains are real certificates (tests/unit/certs/dane-*.pem, made by
 * make-dane.sh), and the TLSA data comes from the fact files OpenSSL wrote
 * next to them, so matching is checked against an independent digest
 * implementation. The fixtures: dane-root -> dane-inter -> dane-leaf
 * (mx.dane.example) and dane-expired (2020 only); dane-rogue-inter has
 * dane-inter's name but another key; dane-self is self-signed. */
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

#ifndef STLS_TEST_CERTS_DIR
#error "STLS_TEST_CERTS_DIR must point at tests/unit/certs"
#endif

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

enum { ROOT, INTER, ROGUE, LEAF, EXPIRED, SELF, NFIX };
static const char *const fixture_names[NFIX] = {
    "dane-root", "dane-inter",   "dane-rogue-inter",
    "dane-leaf", "dane-expired", "dane-self"};

/* What OpenSSL computed for a fixture, as bytes. */
typedef struct {
  unsigned char cert_sha256[32], cert_sha512[64], spki_sha256[32],
      spki_sha512[64];
  unsigned char *cert_der, *spki_der;
  size_t cert_der_len, spki_der_len;
} facts_t;

static stls_cert_t certs[NFIX];
static facts_t facts[NFIX];

static size_t unhex(const char *hex, unsigned char *out, size_t cap) {
  size_t n = strlen(hex) / 2;
  if (n > cap)
    fail_msg("hex string longer than %zu bytes", cap);
  for (size_t i = 0; i < n; i++) {
    unsigned v;
    if (sscanf(hex + 2 * i, "%2x", &v) != 1)
      fail_msg("bad hex in fact file");
    out[i] = (unsigned char)v;
  }
  return n;
}

static void load_fixture(int i) {
  char path[4096], line[8192];
  mbedtls_x509_crt crt;
  FILE *fp;
  int seen = 0;

  snprintf(path, sizeof path, "%s/%s.pem", STLS_TEST_CERTS_DIR,
           fixture_names[i]);
  mbedtls_x509_crt_init(&crt);
  if (mbedtls_x509_crt_parse_file(&crt, path) != 0)
    fail_msg("cannot parse %s; regenerate with tests/unit/certs/make-dane.sh",
             path);
  if (stls_cert_describe(&crt, &certs[i]) != 0)
    fail_msg("stls_cert_describe failed for %s", path);
  mbedtls_x509_crt_free(&crt);

  snprintf(path, sizeof path, "%s/%s.txt", STLS_TEST_CERTS_DIR,
           fixture_names[i]);
  fp = fopen(path, "r");
  if (!fp)
    fail_msg("cannot open %s", path);
  while (fgets(line, sizeof line, fp)) {
    facts_t *f = &facts[i];
    char *eq = strchr(line, '=');
    line[strcspn(line, "\n")] = '\0';
    if (!eq)
      continue;
    *eq++ = '\0';
    seen++;
    if (strcmp(line, "cert_sha256") == 0)
      seen += unhex(eq, f->cert_sha256, 32) == 32 ? 0 : -100;
    else if (strcmp(line, "cert_sha512") == 0)
      seen += unhex(eq, f->cert_sha512, 64) == 64 ? 0 : -100;
    else if (strcmp(line, "spki_sha256") == 0)
      seen += unhex(eq, f->spki_sha256, 32) == 32 ? 0 : -100;
    else if (strcmp(line, "spki_sha512") == 0)
      seen += unhex(eq, f->spki_sha512, 64) == 64 ? 0 : -100;
    else if (strcmp(line, "cert_der") == 0) {
      f->cert_der = malloc(strlen(eq) / 2 + 1);
      f->cert_der_len = unhex(eq, f->cert_der, strlen(eq) / 2);
    } else if (strcmp(line, "spki_der") == 0) {
      f->spki_der = malloc(strlen(eq) / 2 + 1);
      f->spki_der_len = unhex(eq, f->spki_der, strlen(eq) / 2);
    } else
      seen--;
  }
  fclose(fp);
  if (seen != 6)
    fail_msg("%s is incomplete; regenerate with tests/unit/certs/make-dane.sh",
             path);
}

static int setup(void **state) {
  (void)state;
  /* mbedTLS 3.6 routes some hashing through PSA. */
  if (psa_crypto_init() != PSA_SUCCESS)
    return -1;
  for (int i = 0; i < NFIX; i++)
    load_fixture(i);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  for (int i = 0; i < NFIX; i++) {
    stls_cert_free(&certs[i]);
    free(facts[i].cert_der);
    free(facts[i].spki_der);
  }
  mbedtls_psa_crypto_free();
  return 0;
}

/* A TLSA record for fixture f (or NULL data), as the DNS stage makes them. */
static stls_dns_tlsa_rr_t rr_of(unsigned usage, unsigned sel, unsigned mtype,
                                int f) {
  stls_dns_tlsa_rr_t r = {(uint8_t)usage, (uint8_t)sel, (uint8_t)mtype, NULL,
                          0};
  const facts_t *x = &facts[f];
  if (mtype == 0) {
    r.data = sel == 0 ? x->cert_der : x->spki_der;
    r.len = sel == 0 ? x->cert_der_len : x->spki_der_len;
  } else if (mtype == 1) {
    r.data = (unsigned char *)(sel == 0 ? x->cert_sha256 : x->spki_sha256);
    r.len = 32;
  } else {
    r.data = (unsigned char *)(sel == 0 ? x->cert_sha512 : x->spki_sha512);
    r.len = 64;
  }
  return r;
}

/* A chain of fixtures, leaf first, as a probe would hand it over. The
 * entries are shallow copies: the fixtures own the memory. */
static size_t chain_of(stls_cert_t *out, int a, int b, int c) {
  int ids[3] = {a, b, c};
  size_t n = 0;
  for (int i = 0; i < 3; i++)
    if (ids[i] >= 0)
      out[n++] = certs[ids[i]];
  return n;
}

static stls_dane_verdict_t verify(const stls_dns_tlsa_rr_t *rr, size_t nrr,
                                  int a, int b, int c, const char *base,
                                  const char *nexthop) {
  stls_cert_t chain[3];
  size_t n = chain_of(chain, a, b, c);
  stls_dane_opts_t o = {base, nexthop};
  stls_dane_verdict_t v;
  assert_int_equal(stls_dane_verify(rr, nrr, chain, n, &o, &v), 0);
  return v;
}

static void assert_matched(stls_dane_verdict_t v, int index, const char *rr,
                           int depth) {
  if (!v.matched)
    fail_msg("expected a match with %s, got %s", rr,
             stls_dane_fail_name(v.fail));
  assert_int_equal(v.fail, STLS_DANE_FAIL_NONE);
  assert_null(v.result_type);
  assert_int_equal(v.match_index, index);
  assert_string_equal(v.match_rr, rr);
  assert_int_equal(v.match_depth, depth);
}

static void assert_failed(stls_dane_verdict_t v, stls_dane_fail_t fail,
                          const char *type) {
  if (v.matched)
    fail_msg("expected %s, got a match with %s", stls_dane_fail_name(fail),
             v.match_rr);
  assert_int_equal(v.fail, fail);
  assert_string_equal(v.result_type, type);
}

/* ---- record usability -------------------------------------------------- */

static void test_rr_check(void **state) {
  static unsigned char junk[40] = {1, 2, 3};
  struct {
    stls_dns_tlsa_rr_t rr;
    stls_dane_rr_check_t want;
  } cases[] = {
      {{3, 1, 1, junk, 32}, STLS_DANE_RR_USABLE},
      {{2, 0, 2, junk, 40}, STLS_DANE_RR_BAD_LENGTH},
      {{3, 1, 1, junk, 31}, STLS_DANE_RR_BAD_LENGTH},
      {{3, 1, 1, junk, 33}, STLS_DANE_RR_BAD_LENGTH},
      {{3, 1, 2, junk, 32}, STLS_DANE_RR_BAD_LENGTH}, /* SHA-512 needs 64 */
      {{3, 1, 1, junk, 0}, STLS_DANE_RR_BAD_LENGTH},
      {{0, 0, 1, junk, 32}, STLS_DANE_RR_PKIX_USAGE},
      {{1, 1, 1, junk, 32}, STLS_DANE_RR_PKIX_USAGE},
      {{4, 1, 1, junk, 32}, STLS_DANE_RR_BAD_USAGE},
      {{255, 1, 1, junk, 32}, STLS_DANE_RR_BAD_USAGE},
      {{3, 2, 1, junk, 32}, STLS_DANE_RR_BAD_SELECTOR},
      {{3, 1, 3, junk, 32}, STLS_DANE_RR_BAD_MTYPE},
      {{3, 1, 255, junk, 32}, STLS_DANE_RR_BAD_MTYPE},
      {{3, 0, 0, junk, 40}, STLS_DANE_RR_BAD_DATA}, /* not a certificate */
      {{2, 1, 0, junk, 40}, STLS_DANE_RR_BAD_DATA}, /* not a public key */
      {{3, 0, 0, junk, 0}, STLS_DANE_RR_BAD_DATA},
  };
  (void)state;
  for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
    stls_dane_rr_check_t got = stls_dane_rr_check(&cases[i].rr);
    if (got != cases[i].want)
      fail_msg("case %zu (%u %u %u, %zu bytes): got %s, want %s", i,
               cases[i].rr.usage, cases[i].rr.selector, cases[i].rr.mtype,
               cases[i].rr.len, stls_dane_rr_check_name(got),
               stls_dane_rr_check_name(cases[i].want));
  }
  /* Full data that parses. */
  {
    stls_dns_tlsa_rr_t c = rr_of(3, 0, 0, LEAF), k = rr_of(2, 1, 0, ROOT);
    assert_int_equal(stls_dane_rr_check(&c), STLS_DANE_RR_USABLE);
    assert_int_equal(stls_dane_rr_check(&k), STLS_DANE_RR_USABLE);
  }
  assert_string_equal(stls_dane_rr_check_name(STLS_DANE_RR_PKIX_USAGE),
                      "pkix-usage");
  assert_string_equal(stls_dane_rr_check_name((stls_dane_rr_check_t)99),
                      "unknown");
}

static void test_rr_format(void **state) {
  unsigned char d[3] = {0x0a, 0xff, 0x10};
  stls_dns_tlsa_rr_t rr = {3, 1, 1, d, 3}, empty = {2, 0, 0, d, 0};
  char *s;
  (void)state;
  s = stls_dane_rr_format(&rr);
  assert_string_equal(s, "3 1 1 0aff10");
  free(s);
  s = stls_dane_rr_format(&empty);
  assert_string_equal(s, "2 0 0 ");
  free(s);
}

/* ---- the state of a lookup --------------------------------------------- */

static void test_state(void **state) {
  static unsigned char d[32];
  stls_dns_tlsa_rr_t usable = {3, 1, 1, d, 32}, pkix = {1, 1, 1, d, 32},
                     bad = {3, 1, 1, d, 20};
  stls_dns_tlsa_rr_t both[2] = {usable, pkix}, unusable[2] = {pkix, bad};
  struct {
    stls_dns_status_t status;
    bool secure;
    stls_dns_tlsa_rr_t *rr;
    size_t nrr;
    stls_tlsa_state_t want;
    size_t want_usable;
    const char *type, *required;
  } cases[] = {
      {STLS_DNS_OK, true, both, 2, STLS_TLSA_STATE_USABLE, 1, NULL, NULL},
      {STLS_DNS_OK, true, unusable, 2, STLS_TLSA_STATE_UNUSABLE, 0, NULL, NULL},
      {STLS_DNS_OK, false, both, 2, STLS_TLSA_STATE_INSECURE, 0, NULL,
       "dane-required"},
      {STLS_DNS_NODATA, true, NULL, 0, STLS_TLSA_STATE_NO_TLSA, 0, NULL,
       "dane-required"},
      {STLS_DNS_NXDOMAIN, true, NULL, 0, STLS_TLSA_STATE_NO_TLSA, 0, NULL,
       "dane-required"},
      {STLS_DNS_NXDOMAIN, false, NULL, 0, STLS_TLSA_STATE_INSECURE, 0, NULL,
       "dane-required"},
      {STLS_DNS_SERVFAIL, false, NULL, 0, STLS_TLSA_STATE_FAILED, 0,
       "dnssec-invalid", "dnssec-invalid"},
      {STLS_DNS_TIMEOUT, false, NULL, 0, STLS_TLSA_STATE_FAILED, 0,
       "dnssec-invalid", "dnssec-invalid"},
      {STLS_DNS_BAD_RESPONSE, false, NULL, 0, STLS_TLSA_STATE_FAILED, 0,
       "dnssec-invalid", "dnssec-invalid"},
  };
  (void)state;
  for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
    stls_dns_tlsa_result_t t = {0};
    size_t n = 99;
    stls_tlsa_state_t s;
    t.status = cases[i].status;
    t.secure = cases[i].secure;
    t.rr = cases[i].rr;
    t.nrr = cases[i].nrr;
    s = stls_tlsa_state(&t, &n);
    if (s != cases[i].want)
      fail_msg("case %zu: got %s, want %s", i, stls_tlsa_state_name(s),
               stls_tlsa_state_name(cases[i].want));
    assert_int_equal(n, cases[i].want_usable);
    if (cases[i].type)
      assert_string_equal(stls_tlsa_state_result_type(s), cases[i].type);
    else
      assert_null(stls_tlsa_state_result_type(s));
    if (cases[i].required)
      assert_string_equal(stls_dane_required_type(s), cases[i].required);
    else
      assert_null(stls_dane_required_type(s));
  }
  assert_string_equal(stls_tlsa_state_name(STLS_TLSA_STATE_UNUSABLE),
                      "unusable");
}

/* ---- DANE-EE(3) --------------------------------------------------------- */

/* Every selector and matching type finds the leaf; names, trust and expiry
 * play no part. */
static void test_ee_match(void **state) {
  static const char *const text[2][3] = {{"3 0 0", "3 0 1", "3 0 2"},
                                         {"3 1 0", "3 1 1", "3 1 2"}};
  (void)state;
  for (unsigned sel = 0; sel < 2; sel++) {
    for (unsigned mt = 0; mt < 3; mt++) {
      stls_dns_tlsa_rr_t rr = rr_of(3, sel, mt, LEAF);
      stls_dane_verdict_t v =
          verify(&rr, 1, LEAF, INTER, -1, "mx.dane.example", NULL);
      assert_matched(v, 0, text[sel][mt], 0);
      assert_false(v.name_checked);
      assert_int_equal(v.usable, 1);
      /* A name the certificate does not carry changes nothing. */
      v = verify(&rr, 1, LEAF, INTER, -1, "elsewhere.example", NULL);
      assert_matched(v, 0, text[sel][mt], 0);
      /* Nor does a chain that is the leaf alone. */
      v = verify(&rr, 1, LEAF, -1, -1, NULL, NULL);
      assert_matched(v, 0, text[sel][mt], 0);
    }
  }
}

static void test_ee_ignores_trust_and_expiry(void **state) {
  stls_dns_tlsa_rr_t self = rr_of(3, 1, 1, SELF),
                     expired = rr_of(3, 0, 1, EXPIRED);
  (void)state;
  assert_matched(verify(&self, 1, SELF, -1, -1, "mx.dane.example", NULL), 0,
                 "3 1 1", 0);
  assert_matched(
      verify(&expired, 1, EXPIRED, INTER, -1, "mx.dane.example", NULL), 0,
      "3 0 1", 0);
}

/* An EE record for a certificate other than the leaf does not match, nor
 * does a record for a different leaf. */
static void test_ee_mismatch(void **state) {
  stls_dns_tlsa_rr_t inter = rr_of(3, 1, 1, INTER),
                     other = rr_of(3, 0, 2, SELF);
  stls_dns_tlsa_rr_t two[2];
  stls_dane_verdict_t v;
  (void)state;
  v = verify(&inter, 1, LEAF, INTER, -1, "mx.dane.example", NULL);
  assert_failed(v, STLS_DANE_FAIL_NO_MATCH, "tlsa-invalid");
  assert_int_equal(v.match_index, -1);
  assert_string_equal(v.match_rr, "");
  two[0] = inter;
  two[1] = other;
  v = verify(two, 2, LEAF, INTER, -1, "mx.dane.example", NULL);
  assert_failed(v, STLS_DANE_FAIL_NO_MATCH, "tlsa-invalid");
  assert_int_equal(v.usable, 2);
  /* One changed byte of the digest. */
  {
    unsigned char d[32];
    stls_dns_tlsa_rr_t rr = rr_of(3, 1, 1, LEAF);
    memcpy(d, rr.data, 32);
    d[31] ^= 1;
    rr.data = d;
    assert_failed(verify(&rr, 1, LEAF, INTER, -1, NULL, NULL),
                  STLS_DANE_FAIL_NO_MATCH, "tlsa-invalid");
  }
}

/* ---- DANE-TA(2) --------------------------------------------------------- */

static void test_ta_intermediate(void **state) {
  static const char *const text[2][3] = {{"2 0 0", "2 0 1", "2 0 2"},
                                         {"2 1 0", "2 1 1", "2 1 2"}};
  (void)state;
  for (unsigned sel = 0; sel < 2; sel++) {
    for (unsigned mt = 0; mt < 3; mt++) {
      stls_dns_tlsa_rr_t rr = rr_of(2, sel, mt, INTER);
      stls_dane_verdict_t v =
          verify(&rr, 1, LEAF, INTER, -1, "mx.dane.example", NULL);
      assert_matched(v, 0, text[sel][mt], 1);
      assert_true(v.name_checked);
      /* The root sent too changes nothing. */
      v = verify(&rr, 1, LEAF, INTER, ROOT, "mx.dane.example", NULL);
      assert_matched(v, 0, text[sel][mt], 1);
    }
  }
}

static void test_ta_root_in_chain(void **state) {
  stls_dns_tlsa_rr_t c = rr_of(2, 0, 1, ROOT), k = rr_of(2, 1, 2, ROOT);
  (void)state;
  assert_matched(verify(&c, 1, LEAF, INTER, ROOT, "mx.dane.example", NULL), 0,
                 "2 0 1", 2);
  assert_matched(verify(&k, 1, LEAF, INTER, ROOT, "mx.dane.example", NULL), 0,
                 "2 1 2", 2);
}

/* A root the server did not send: a digest cannot stand in for it, full
 * data can (RFC 7671 5.2). */
static void test_ta_root_not_sent(void **state) {
  stls_dns_tlsa_rr_t digest = rr_of(2, 0, 1, ROOT),
                     spki_digest = rr_of(2, 1, 1, ROOT);
  stls_dns_tlsa_rr_t full_cert = rr_of(2, 0, 0, ROOT),
                     full_key = rr_of(2, 1, 0, ROOT);
  (void)state;
  assert_failed(verify(&digest, 1, LEAF, INTER, -1, "mx.dane.example", NULL),
                STLS_DANE_FAIL_NO_MATCH, "tlsa-invalid");
  assert_failed(
      verify(&spki_digest, 1, LEAF, INTER, -1, "mx.dane.example", NULL),
      STLS_DANE_FAIL_NO_MATCH, "tlsa-invalid");
  assert_matched(
      verify(&full_cert, 1, LEAF, INTER, -1, "mx.dane.example", NULL), 0,
      "2 0 0", -1);
  assert_matched(verify(&full_key, 1, LEAF, INTER, -1, "mx.dane.example", NULL),
                 0, "2 1 0", -1);
  /* The intermediate's bare key signed the leaf directly. */
  {
    stls_dns_tlsa_rr_t inter_key = rr_of(2, 1, 0, INTER);
    assert_matched(verify(&inter_key, 1, LEAF, -1, -1, "mx.dane.example", NULL),
                   0, "2 1 0", -1);
    assert_failed(verify(&inter_key, 1, LEAF, -1, -1, "other.example", NULL),
                  STLS_DANE_FAIL_TA_NAME, "certificate-host-mismatch");
  }
  /* An unrelated full certificate or key anchors nothing. */
  {
    stls_dns_tlsa_rr_t self_cert = rr_of(2, 0, 0, SELF),
                       self_key = rr_of(2, 1, 0, SELF);
    assert_failed(
        verify(&self_cert, 1, LEAF, INTER, -1, "mx.dane.example", NULL),
        STLS_DANE_FAIL_NO_MATCH, "tlsa-invalid");
    assert_failed(
        verify(&self_key, 1, LEAF, INTER, -1, "mx.dane.example", NULL),
        STLS_DANE_FAIL_NO_MATCH, "tlsa-invalid");
  }
}

/* DANE-TA needs the name: the TLSA base domain or the next-hop domain. */
static void test_ta_names(void **state) {
  stls_dns_tlsa_rr_t rr = rr_of(2, 0, 1, INTER);
  stls_dane_verdict_t v;
  (void)state;
  v = verify(&rr, 1, LEAF, INTER, -1, "mx2.dane.example", NULL);
  assert_failed(v, STLS_DANE_FAIL_TA_NAME, "certificate-host-mismatch");
  assert_true(v.name_checked);
  assert_int_equal(v.match_index, 0);
  assert_string_equal(v.match_rr, "2 0 1");
  assert_int_equal(v.match_depth, 1);
  assert_failed(verify(&rr, 1, LEAF, INTER, -1, NULL, NULL),
                STLS_DANE_FAIL_TA_NAME, "certificate-host-mismatch");
  /* Case and a trailing dot do not matter. */
  assert_matched(verify(&rr, 1, LEAF, INTER, -1, "MX.Dane.Example.", NULL), 0,
                 "2 0 1", 1);
  /* The next-hop domain is a reference identifier too. */
  assert_matched(
      verify(&rr, 1, LEAF, INTER, -1, "mx2.dane.example", "mx.dane.example"), 0,
      "2 0 1", 1);
  assert_failed(
      verify(&rr, 1, LEAF, INTER, -1, "mx2.dane.example", "dane.example"),
      STLS_DANE_FAIL_TA_NAME, "certificate-host-mismatch");
}

/* The anchor matches, but the leaf was not issued under it. */
static void test_ta_chain_invalid(void **state) {
  stls_dns_tlsa_rr_t rogue = rr_of(2, 1, 1, ROGUE);
  stls_dane_verdict_t v;
  (void)state;
  v = verify(&rogue, 1, LEAF, ROGUE, -1, "mx.dane.example", NULL);
  assert_failed(v, STLS_DANE_FAIL_TA_CHAIN, "validation-failure");
  assert_int_equal(v.match_depth, 1);
  assert_false(v.name_checked);
  /* A self-signed leaf is no DANE-TA anchor for itself. */
  {
    stls_dns_tlsa_rr_t d = rr_of(2, 0, 1, SELF), full = rr_of(2, 0, 0, SELF);
    assert_failed(verify(&d, 1, SELF, -1, -1, "self.dane.example", NULL),
                  STLS_DANE_FAIL_NO_MATCH, "tlsa-invalid");
    assert_failed(verify(&full, 1, SELF, -1, -1, "self.dane.example", NULL),
                  STLS_DANE_FAIL_NO_MATCH, "tlsa-invalid");
  }
  /* A TA record for the leaf itself does not match either. */
  {
    stls_dns_tlsa_rr_t d = rr_of(2, 1, 1, LEAF);
    assert_failed(verify(&d, 1, LEAF, INTER, -1, "mx.dane.example", NULL),
                  STLS_DANE_FAIL_NO_MATCH, "tlsa-invalid");
  }
}

/* Unlike DANE-EE, a DANE-TA path is checked for validity periods. */
static void test_ta_expired(void **state) {
  stls_dns_tlsa_rr_t rr = rr_of(2, 0, 1, INTER);
  stls_dane_verdict_t v;
  (void)state;
  v = verify(&rr, 1, EXPIRED, INTER, -1, "mx.dane.example", NULL);
  assert_failed(v, STLS_DANE_FAIL_TA_EXPIRED, "certificate-expired");
  /* With an EE record for the same leaf next to it, the EE record wins. */
  {
    stls_dns_tlsa_rr_t two[2] = {rr, rr_of(3, 1, 1, EXPIRED)};
    assert_matched(verify(two, 2, EXPIRED, INTER, -1, "mx.dane.example", NULL),
                   1, "3 1 1", 0);
  }
}

/* ---- RRsets ------------------------------------------------------------- */

static void test_unusable_only(void **state) {
  stls_dns_tlsa_rr_t rr[3];
  stls_dane_verdict_t v;
  unsigned char short_digest[20] = {0};
  (void)state;
  /* Records that would match, were they usable. */
  rr[0] = rr_of(1, 1, 1, LEAF);
  rr[1] = rr_of(0, 0, 1, ROOT);
  rr[2] = rr_of(3, 1, 1, LEAF);
  rr[2].data = short_digest;
  rr[2].len = sizeof short_digest;
  v = verify(rr, 3, LEAF, INTER, ROOT, "mx.dane.example", NULL);
  assert_failed(v, STLS_DANE_FAIL_NO_USABLE, "tlsa-invalid");
  assert_int_equal(v.usable, 0);
  /* An unusable record that matches does not rescue a usable one that
   * does not. */
  rr[2] = rr_of(3, 1, 1, SELF);
  v = verify(rr, 3, LEAF, INTER, ROOT, "mx.dane.example", NULL);
  assert_failed(v, STLS_DANE_FAIL_NO_MATCH, "tlsa-invalid");
  assert_int_equal(v.usable, 1);
}

static void test_no_chain(void **state) {
  stls_dns_tlsa_rr_t rr = rr_of(3, 1, 1, LEAF);
  stls_dane_opts_t o = {"mx.dane.example", NULL};
  stls_dane_verdict_t v;
  (void)state;
  assert_int_equal(stls_dane_verify(&rr, 1, NULL, 0, &o, &v), 0);
  assert_failed(v, STLS_DANE_FAIL_NO_CHAIN, "validation-failure");
}

/* Among several records the first that matches is reported; failures
 * report the record that got furthest. */
static void test_rrset(void **state) {
  stls_dns_tlsa_rr_t rr[4];
  stls_dane_verdict_t v;
  (void)state;
  rr[0] = rr_of(2, 0, 1, ROGUE); /* anchors nothing the leaf chains to */
  rr[1] = rr_of(2, 1, 1, INTER); /* matches, but the name is wrong below */
  rr[2] = rr_of(3, 1, 1, SELF);  /* another host's key */
  rr[3] = rr_of(2, 0, 2, ROOT);  /* the root, not sent */
  v = verify(rr, 4, LEAF, INTER, ROGUE, "other.example", NULL);
  assert_failed(v, STLS_DANE_FAIL_TA_NAME, "certificate-host-mismatch");
  assert_int_equal(v.match_index, 1);
  assert_string_equal(v.match_rr, "2 1 1");
  v = verify(rr, 4, LEAF, INTER, ROGUE, "mx.dane.example", NULL);
  assert_matched(v, 1, "2 1 1", 1);
  rr[2] = rr_of(3, 1, 1, LEAF);
  v = verify(rr, 4, LEAF, INTER, ROGUE, "other.example", NULL);
  assert_matched(v, 2, "3 1 1", 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rr_check),
      cmocka_unit_test(test_rr_format),
      cmocka_unit_test(test_state),
      cmocka_unit_test(test_ee_match),
      cmocka_unit_test(test_ee_ignores_trust_and_expiry),
      cmocka_unit_test(test_ee_mismatch),
      cmocka_unit_test(test_ta_intermediate),
      cmocka_unit_test(test_ta_root_in_chain),
      cmocka_unit_test(test_ta_root_not_sent),
      cmocka_unit_test(test_ta_names),
      cmocka_unit_test(test_ta_chain_invalid),
      cmocka_unit_test(test_ta_expired),
      cmocka_unit_test(test_unusable_only),
      cmocka_unit_test(test_no_chain),
      cmocka_unit_test(test_rrset),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
