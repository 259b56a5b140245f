/* stls_cert_chain_from_flight(): the certificates a TLS <= 1.2 server sends
 * in clear, read from real server flights (tests/unit/hello, captured from
 * openssl s_server; their .expect files say how many certificates each
 * carries), whole and cut short at every length. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "stls/cert.h"
#include "stls/hello.h"

#ifndef STLS_TEST_HELLO_DIR
#error "STLS_TEST_HELLO_DIR must name tests/unit/hello"
#endif

static unsigned char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  unsigned char *buf = NULL;
  long n;
  assert_non_null(f);
  assert_int_equal(fseek(f, 0, SEEK_END), 0);
  n = ftell(f);
  assert_true(n >= 0);
  rewind(f);
  buf = malloc((size_t)n + 1);
  assert_non_null(buf);
  assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
  fclose(f);
  *len = (size_t)n;
  return buf;
}

/* The cert_count= line of a fixture's .expect file, or -1 when absent. */
static int expected_certs(const char *name) {
  char path[512], line[256];
  int n = -1;
  FILE *f;
  snprintf(path, sizeof(path), "%s/%s.expect", STLS_TEST_HELLO_DIR, name);
  f = fopen(path, "r");
  assert_non_null(f);
  while (fgets(line, sizeof(line), f))
    if (sscanf(line, "cert_count=%d", &n) == 1)
      break;
  fclose(f);
  return n;
}

/* What the handshake parser (hello.c, separate code) counts in the
 * Certificate message: the expectation where the .expect file has none. */
static unsigned parser_certs(const unsigned char *raw, size_t len) {
  stls_hello_parser_t *p = malloc(sizeof(*p));
  unsigned n;
  assert_non_null(p);
  stls_hello_parser_init(p);
  (void)stls_hello_parser_feed(p, raw, len);
  n = stls_hello_parser_result(p)->cert_count;
  free(p);
  return n;
}

static unsigned check_fixture(const char *name) {
  char path[512];
  size_t len;
  unsigned char *raw;
  int listed = expected_certs(name);
  unsigned want;
  stls_tls_result_t t;

  snprintf(path, sizeof(path), "%s/%s.bin", STLS_TEST_HELLO_DIR, name);
  raw = slurp(path, &len);
  want = listed >= 0 ? (unsigned)listed : parser_certs(raw, len);
  if (listed >= 0) /* both readings of the flight agree */
    assert_int_equal(parser_certs(raw, len), want);

  memset(&t, 0, sizeof(t));
  assert_int_equal(stls_cert_chain_from_flight(raw, len, &t), 0);
  assert_int_equal(t.n_chain, want);
  for (size_t i = 0; i < t.n_chain; i++) {
    assert_int_equal(strlen(t.chain[i].sha256), 64);
    assert_non_null(t.chain[i].subject);
    assert_true(t.chain[i].der_len > 0);
  }
  if (want >= 2) /* leaf first: the second certificate issued the first */
    assert_string_equal(t.chain[0].issuer, t.chain[1].subject);
  stls_tls_result_free(&t);

  /* Cut short anywhere: never more certificates, never a crash. */
  for (size_t cut = 0; cut < len; cut++) {
    memset(&t, 0, sizeof(t));
    assert_int_equal(stls_cert_chain_from_flight(raw, cut, &t), 0);
    assert_true(t.n_chain <= want);
    stls_tls_result_free(&t);
  }
  free(raw);
  return want;
}

static void test_tls12_two_certs(void **state) {
  (void)state;
  assert_int_equal(check_fixture("tls12_ecdhe_rsa_ocsp"), 2);
  assert_int_equal(check_fixture("tls12_rsa_kx"), 2);
  assert_int_equal(check_fixture("tls12_dhe_rsa_client_auth"), 2);
}

static void test_legacy_flights(void **state) {
  (void)state;
  /* These carry a certificate (their .expect says certificate=1). */
  assert_true(check_fixture("tls10_dhe_1024") >= 1);
  assert_true(check_fixture("tls10_rsa_kx") >= 1);
  assert_true(check_fixture("tls11_ecdhe_rsa") >= 1);
}

static void test_refusals_carry_none(void **state) {
  (void)state;
  assert_int_equal(check_fixture("tls10_refused"), 0);
  assert_int_equal(check_fixture("ssl3_refused"), 0);
  assert_int_equal(check_fixture("tls11_no_shared_cipher"), 0);
}

static void test_garbage(void **state) {
  static const unsigned char junk[] =
      "220 not TLS at all\r\n\x16\x03\x01\xff\xff";
  stls_tls_result_t t;
  (void)state;
  memset(&t, 0, sizeof(t));
  assert_int_equal(stls_cert_chain_from_flight(junk, sizeof(junk) - 1, &t), 0);
  assert_int_equal(t.n_chain, 0);
  stls_tls_result_free(&t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_tls12_two_certs),
      cmocka_unit_test(test_legacy_flights),
      cmocka_unit_test(test_refusals_carry_none),
      cmocka_unit_test(test_garbage),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
