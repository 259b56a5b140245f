/* Unit tests for chain quality and multi-store trust (scanner/chain.c).
 *
 * Fixtures are made by tests/unit/certs/make-chain.sh (see the list there);
 * STLS_TEST_CHAIN_DIR comes from tests/unit/CMakeLists.txt. Trust verdicts use
 * the real clock (mbedTLS offers no other), so every fixture a trust assertion
 * relies on is valid from 2024 to 2124; facts about time take an explicit
 * `now`. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/x509_crt.h>
#include <psa/crypto.h>

#include "stls/cert.h"
#include "stls/chain.h"
#include "stls/result.h"

#ifndef STLS_TEST_CHAIN_DIR
#error "STLS_TEST_CHAIN_DIR: the fixture directory (tests/unit/CMakeLists.txt)"
#endif

/* 2025-06-01T00:00:00Z: inside the validity of the century-long fixtures. */
#define NOW_2025 ((time_t)1748736000)
/* 2101-01-01T00:00:00Z: inside leaf-825 and leaf-398 (from 2100-01-01). */
#define NOW_2101 ((time_t)4133980800)

static void path_of(char *buf, size_t len, const char *name) {
  int n = snprintf(buf, len, "%s/%s.pem", STLS_TEST_CHAIN_DIR, name);
  assert_true(n > 0 && (size_t)n < len);
}

/* A described chain made of the named fixtures, in the order given. */
typedef struct {
  stls_cert_t certs[16];
  size_t n;
} chain_t;

static void chain_load(chain_t *ch, const char *const *names) {
  memset(ch, 0, sizeof(*ch));
  for (; *names; names++) {
    char path[4096];
    mbedtls_x509_crt crt;
    assert_true(ch->n < 16);
    path_of(path, sizeof(path), *names);
    mbedtls_x509_crt_init(&crt);
    if (mbedtls_x509_crt_parse_file(&crt, path) != 0)
      fail_msg("cannot parse fixture %s", path);
    assert_int_equal(stls_cert_describe(&crt, &ch->certs[ch->n]), 0);
    ch->n++;
    mbedtls_x509_crt_free(&crt);
  }
}

static void chain_free(chain_t *ch) {
  for (size_t i = 0; i < ch->n; i++)
    stls_cert_free(&ch->certs[i]);
}

static void store_load(mbedtls_x509_crt *crt, const char *name) {
  char path[4096];
  path_of(path, sizeof(path), name);
  mbedtls_x509_crt_init(crt);
  if (mbedtls_x509_crt_parse_file(crt, path) != 0)
    fail_msg("cannot parse store %s", path);
}

/* Facts of the named chain against the named store and pool (NULL: none). */
static void facts_of(const char *const *names, const char *store_name,
                     const char *pool_name, time_t now, stls_chain_facts_t *f) {
  chain_t ch;
  mbedtls_x509_crt store, pool;
  chain_load(&ch, names);
  store_load(&store, store_name);
  if (pool_name)
    store_load(&pool, pool_name);
  assert_int_equal(stls_chain_facts(ch.certs, ch.n, &store,
                                    pool_name ? &pool : NULL, now, f),
                   0);
  if (pool_name)
    mbedtls_x509_crt_free(&pool);
  mbedtls_x509_crt_free(&store);
  chain_free(&ch);
}

/* stls_chain_verify() of the named chain; returns its result. */
static int verify_of(const char *const *names, const char *store_name,
                     const char *pool_name, uint32_t *flags) {
  chain_t ch;
  mbedtls_x509_crt store, pool;
  int rc;
  chain_load(&ch, names);
  store_load(&store, store_name);
  if (pool_name)
    store_load(&pool, pool_name);
  rc = stls_chain_verify(ch.certs, ch.n, &store, pool_name ? &pool : NULL,
                         flags);
  if (pool_name)
    mbedtls_x509_crt_free(&pool);
  mbedtls_x509_crt_free(&store);
  chain_free(&ch);
  return rc;
}

#define CHAIN(...) ((const char *const[]){__VA_ARGS__, NULL})

/* ------------------------------------------------------------------ tests */

static void test_good_chain(void **state) {
  stls_chain_facts_t f;
  uint32_t flags = 99;
  (void)state;
  assert_int_equal(verify_of(CHAIN("leaf", "inter"), "root", NULL, &flags), 0);
  assert_int_equal(flags, 0);

  facts_of(CHAIN("leaf", "inter"), "root", NULL, NOW_2025, &f);
  assert_int_equal(f.n_sent, 2);
  assert_true(f.order_ok);
  assert_false(f.root_included);
  assert_false(f.leaf_self_signed);
  assert_false(f.duplicate_certs);
  assert_false(f.unnecessary_certs);
  assert_true(f.trusted_as_sent);
  assert_int_equal(f.flags_as_sent, 0);
  assert_true(f.trusted_with_known_intermediates);
  assert_false(f.missing_intermediate);
  assert_false(f.sha1_signature);
  assert_false(f.weak_rsa_key);
  assert_int_equal(f.min_rsa_bits, 2048);
  /* 2024-01-01 .. 2124-01-01: 100 years with 24 leap days (2100 is not a
   * leap year). A century is far over the CA/B limit. */
  assert_int_equal(f.leaf_validity_days, 36524);
  assert_true(f.leaf_validity_too_long);
  assert_false(f.leaf_expired);
  assert_false(f.leaf_not_yet_valid);
  assert_false(f.intermediate_expired);
  assert_true(f.leaf_server_auth);
  assert_false(f.leaf_has_sct);
  assert_false(f.leaf_must_staple);
}

static void test_wrong_order(void **state) {
  stls_chain_facts_t f;
  uint32_t flags = 99;
  chain_t ch;
  mbedtls_x509_crt store, raw;
  (void)state;

  /* Lower and upper intermediate swapped: every client that builds paths
   * (OpenSSL, so Postfix) trusts this, and so do we. */
  assert_int_equal(verify_of(CHAIN("leaf-deep", "inter-top", "inter-low"),
                             "root", NULL, &flags),
                   0);
  assert_int_equal(flags, 0);
  facts_of(CHAIN("leaf-deep", "inter-top", "inter-low"), "root", NULL, NOW_2025,
           &f);
  assert_false(f.order_ok);
  assert_true(f.trusted_as_sent);
  assert_false(f.unnecessary_certs);
  assert_false(f.root_included);

  /* mbedTLS on the list as sent looks for a parent only after the child,
   * so it fails the same chain: the reason stls_chain_verify() reorders. */
  chain_load(&ch, CHAIN("leaf-deep", "inter-top", "inter-low"));
  store_load(&store, "root");
  mbedtls_x509_crt_init(&raw);
  for (size_t i = 0; i < ch.n; i++)
    assert_int_equal(
        mbedtls_x509_crt_parse_der(&raw, ch.certs[i].der, ch.certs[i].der_len),
        0);
  flags = 0;
  assert_int_not_equal(
      mbedtls_x509_crt_verify(&raw, &store, NULL, NULL, &flags, NULL, NULL), 0);
  assert_true(flags & MBEDTLS_X509_BADCERT_NOT_TRUSTED);
  mbedtls_x509_crt_free(&raw);
  mbedtls_x509_crt_free(&store);
  chain_free(&ch);

  /* The correct order is in order. */
  facts_of(CHAIN("leaf-deep", "inter-low", "inter-top"), "root", NULL, NOW_2025,
           &f);
  assert_true(f.order_ok);
  assert_true(f.trusted_as_sent);

  /* A stray certificate between leaf and intermediate. */
  facts_of(CHAIN("leaf", "unrelated", "inter"), "root", NULL, NOW_2025, &f);
  assert_false(f.order_ok);
  assert_true(f.unnecessary_certs);
  assert_true(f.trusted_as_sent);
  assert_false(f.duplicate_certs);
}

static void test_missing_intermediate(void **state) {
  stls_chain_facts_t f;
  uint32_t flags = 0;
  (void)state;

  assert_int_equal(verify_of(CHAIN("leaf"), "root", NULL, &flags), 1);
  assert_true(flags & MBEDTLS_X509_BADCERT_NOT_TRUSTED);
  assert_int_equal(verify_of(CHAIN("leaf"), "root", "pool", &flags), 0);
  assert_int_equal(flags, 0);

  facts_of(CHAIN("leaf"), "root", "pool", NOW_2025, &f);
  assert_false(f.trusted_as_sent);
  assert_true(f.flags_as_sent & MBEDTLS_X509_BADCERT_NOT_TRUSTED);
  assert_true(f.trusted_with_known_intermediates);
  assert_int_equal(f.flags_with_known_intermediates, 0);
  assert_true(f.missing_intermediate);
  assert_true(f.order_ok);
  assert_false(f.unnecessary_certs);
  /* The pool intermediate (RSA-2048, SHA-256) joins the key facts. */
  assert_int_equal(f.min_rsa_bits, 2048);

  /* Without a pool nothing is known: untrusted, but not "missing". */
  facts_of(CHAIN("leaf"), "root", NULL, NOW_2025, &f);
  assert_false(f.trusted_as_sent);
  assert_false(f.trusted_with_known_intermediates);
  assert_false(f.missing_intermediate);

  /* A pool of the wrong intermediates does not help either. */
  facts_of(CHAIN("leaf"), "root", "other-root", NOW_2025, &f);
  assert_false(f.missing_intermediate);

  /* An untrusted root is not a missing intermediate. */
  facts_of(CHAIN("leaf", "inter"), "other-root", "pool", NOW_2025, &f);
  assert_false(f.trusted_as_sent);
  assert_false(f.trusted_with_known_intermediates);
  assert_false(f.missing_intermediate);
}

static void test_root_included(void **state) {
  stls_chain_facts_t f;
  (void)state;
  facts_of(CHAIN("leaf", "inter", "root"), "root", NULL, NOW_2025, &f);
  assert_true(f.root_included);
  assert_true(f.order_ok);
  assert_false(f.unnecessary_certs);
  assert_true(f.trusted_as_sent);
  assert_false(f.leaf_self_signed);

  /* A root the store lacks, sent along: still untrusted. */
  facts_of(CHAIN("leaf", "inter", "root"), "other-root", NULL, NOW_2025, &f);
  assert_true(f.root_included);
  assert_false(f.trusted_as_sent);

  /* A self-signed leaf alone is not "root included". */
  facts_of(CHAIN("root"), "other-root", NULL, NOW_2025, &f);
  assert_true(f.leaf_self_signed);
  assert_false(f.root_included);
  assert_true(f.order_ok);
  assert_false(f.trusted_as_sent);
}

static void test_sha1(void **state) {
  stls_chain_facts_t f;
  uint32_t flags = 0;
  (void)state;

  /* SHA-1 leaf: a fact, and untrusted as Postfix's verify/secure levels
   * (OpenSSL security level 1) see it. */
  facts_of(CHAIN("leaf-sha1", "inter"), "root", NULL, NOW_2025, &f);
  assert_true(f.sha1_signature);
  assert_false(f.trusted_as_sent);
  assert_true(f.flags_as_sent & MBEDTLS_X509_BADCERT_BAD_MD);
  assert_false(f.flags_as_sent & MBEDTLS_X509_BADCERT_NOT_TRUSTED);
  assert_true(f.order_ok);
  assert_false(f.missing_intermediate);
  assert_int_equal(verify_of(CHAIN("leaf-sha1", "inter"), "root", NULL, &flags),
                   1);
  assert_true(flags & MBEDTLS_X509_BADCERT_BAD_MD);

  /* SHA-1 intermediate (the same name and key, signed again). */
  facts_of(CHAIN("leaf", "inter-sha1"), "root", NULL, NOW_2025, &f);
  assert_true(f.sha1_signature);
  assert_true(f.order_ok);
  assert_false(f.trusted_as_sent);
  assert_true(f.flags_as_sent & MBEDTLS_X509_BADCERT_BAD_MD);

  /* A SHA-1 intermediate from the pool counts as well. */
  facts_of(CHAIN("leaf"), "root", "inter-sha1", NOW_2025, &f);
  assert_true(f.sha1_signature);
  assert_true(f.missing_intermediate);
}

static void test_weak_rsa(void **state) {
  stls_chain_facts_t f;
  (void)state;

  /* RSA-1024 is weak, but OpenSSL's security level 1 (Postfix at verify
   * and secure) still accepts it: a fact, not a trust failure. */
  facts_of(CHAIN("leaf-rsa1024", "inter"), "root", NULL, NOW_2025, &f);
  assert_true(f.weak_rsa_key);
  assert_int_equal(f.min_rsa_bits, 1024);
  assert_true(f.trusted_as_sent);
  assert_int_equal(f.flags_as_sent, 0);

  /* A 1024-bit root the store holds is the store's business ... */
  facts_of(CHAIN("weak-leaf", "weak-root"), "weak-root", NULL, NOW_2025, &f);
  assert_false(f.weak_rsa_key);
  assert_int_equal(f.min_rsa_bits, 2048);
  assert_true(f.root_included);
  /* ... but the same root from a store that lacks it is the server's. */
  facts_of(CHAIN("weak-leaf", "weak-root"), "root", NULL, NOW_2025, &f);
  assert_true(f.weak_rsa_key);
  assert_int_equal(f.min_rsa_bits, 1024);

  /* An EC leaf: only the RSA intermediate counts. */
  facts_of(CHAIN("ec-leaf", "inter"), "root", NULL, NOW_2025, &f);
  assert_false(f.weak_rsa_key);
  assert_int_equal(f.min_rsa_bits, 2048);
  assert_true(f.trusted_as_sent);
}

static void test_validity(void **state) {
  stls_chain_facts_t f;
  (void)state;

  facts_of(CHAIN("leaf-825", "inter"), "root", NULL, NOW_2101, &f);
  assert_int_equal(f.leaf_validity_days, 825);
  assert_true(f.leaf_validity_too_long);
  assert_false(f.leaf_expired);
  assert_false(f.leaf_not_yet_valid);

  /* Exactly 398 days is the limit, still allowed. */
  facts_of(CHAIN("leaf-398", "inter"), "root", NULL, NOW_2101, &f);
  assert_int_equal(f.leaf_validity_days, 398);
  assert_false(f.leaf_validity_too_long);

  /* The same leaf judged in 2025 (not yet valid) and in 2200 (expired). */
  facts_of(CHAIN("leaf-398", "inter"), "root", NULL, NOW_2025, &f);
  assert_true(f.leaf_not_yet_valid);
  assert_false(f.leaf_expired);
  facts_of(CHAIN("leaf-398", "inter"), "root", NULL, (time_t)7258118400, &f);
  assert_true(f.leaf_expired);
  assert_false(f.leaf_not_yet_valid);
  /* In 2200 the intermediate (to 2124) has expired too. */
  assert_true(f.intermediate_expired);

  /* The expired fixture, with the real clock in the trust verdict. */
  facts_of(CHAIN("leaf-expired", "inter"), "root", NULL, NOW_2025, &f);
  assert_true(f.leaf_expired);
  assert_false(f.intermediate_expired);
  assert_int_equal(f.leaf_validity_days, 366); /* 2020 was a leap year */
  assert_false(f.trusted_as_sent);
  assert_true(f.flags_as_sent & MBEDTLS_X509_BADCERT_EXPIRED);
  assert_false(f.missing_intermediate);
}

static void test_same_name_other_key(void **state) {
  stls_chain_facts_t f;
  uint32_t flags = 0;
  (void)state;
  /* The name fits, the signature does not: not the issuer. */
  facts_of(CHAIN("leaf", "inter-rekeyed"), "root", NULL, NOW_2025, &f);
  assert_false(f.order_ok);
  assert_true(f.unnecessary_certs);
  assert_false(f.trusted_as_sent);
  assert_true(f.flags_as_sent & MBEDTLS_X509_BADCERT_NOT_TRUSTED);
  /* With the real issuer sent as well, the path takes the one whose
   * signature verifies, wherever it is. */
  assert_int_equal(
      verify_of(CHAIN("leaf", "inter-rekeyed", "inter"), "root", NULL, &flags),
      0);
  facts_of(CHAIN("leaf", "inter-rekeyed", "inter"), "root", NULL, NOW_2025, &f);
  assert_true(f.trusted_as_sent);
  assert_true(f.unnecessary_certs);
  assert_false(f.order_ok);
  /* The pool's genuine intermediate is found past the impostor. */
  facts_of(CHAIN("leaf", "inter-rekeyed"), "root", "pool", NOW_2025, &f);
  assert_true(f.trusted_with_known_intermediates);
  assert_true(f.missing_intermediate);
}

static void test_name_reencoded(void **state) {
  stls_chain_facts_t f;
  (void)state;
  /* The intermediate's name as PrintableString, the leaf's issuer field as
   * UTF8String: the same name, so still its issuer. */
  facts_of(CHAIN("leaf", "inter-printable"), "root", NULL, NOW_2025, &f);
  assert_true(f.order_ok);
  assert_false(f.unnecessary_certs);
  assert_true(f.trusted_as_sent);
}

static void test_leaf_extensions(void **state) {
  stls_chain_facts_t f;
  (void)state;
  facts_of(CHAIN("leaf-staple", "inter"), "root", NULL, NOW_2025, &f);
  assert_true(f.leaf_must_staple);
  assert_true(f.leaf_has_sct);
  assert_false(f.leaf_server_auth); /* clientAuth only */
  assert_true(f.order_ok);
  /* OpenSSL (so Postfix) checks the purpose "ssl_server": untrusted. */
  assert_false(f.trusted_as_sent);
  assert_int_equal(f.flags_as_sent, MBEDTLS_X509_BADCERT_EXT_KEY_USAGE);
}

static void test_duplicates(void **state) {
  stls_chain_facts_t f;
  (void)state;
  facts_of(CHAIN("leaf", "inter", "inter"), "root", NULL, NOW_2025, &f);
  assert_true(f.duplicate_certs);
  assert_true(f.unnecessary_certs);
  assert_false(f.order_ok);
  assert_true(f.trusted_as_sent);
}

static void test_two_stores(void **state) {
  stls_trust_stores_t *s = NULL;
  stls_store_verdict_t v[STLS_TRUST_STORES_MAX];
  const char *specs[] = {"a=" STLS_TEST_CHAIN_DIR "/root.pem",
                         "b=" STLS_TEST_CHAIN_DIR "/other-root.pem"};
  char err[256];
  chain_t ch;
  (void)state;

  assert_int_equal(
      stls_trust_stores_load(&s, NULL, specs, 2, NULL, err, sizeof(err)), 0);
  assert_int_equal(stls_trust_stores_count(s), 2);
  assert_string_equal(stls_trust_stores_name(s, 0), "a");
  assert_string_equal(stls_trust_stores_name(s, 1), "b");
  assert_non_null(stls_trust_stores_crt(s, 1));
  assert_null(stls_trust_stores_crt(s, 2));
  assert_null(stls_trust_stores_pool(s)); /* root files carry no CA below */

  chain_load(&ch, CHAIN("leaf", "inter"));
  assert_int_equal(stls_chain_verify_stores(ch.certs, ch.n, s, v), 0);
  assert_string_equal(v[0].store, "a");
  assert_true(v[0].trusted);
  assert_int_equal(v[0].flags, 0);
  assert_true(v[0].trusted_with_pool);
  assert_string_equal(v[1].store, "b");
  assert_false(v[1].trusted);
  assert_true(v[1].flags & MBEDTLS_X509_BADCERT_NOT_TRUSTED);
  assert_false(v[1].trusted_with_pool);
  chain_free(&ch);

  /* The leaf alone: no store trusts it as sent; with the intermediates
   * file as the pool, store a does. */
  assert_int_equal(stls_trust_stores_add_intermediates(
                       s, STLS_TEST_CHAIN_DIR "/pool.pem", err, sizeof(err)),
                   0);
  assert_non_null(stls_trust_stores_pool(s));
  chain_load(&ch, CHAIN("leaf"));
  assert_int_equal(stls_chain_verify_stores(ch.certs, ch.n, s, v), 0);
  assert_false(v[0].trusted);
  assert_true(v[0].trusted_with_pool);
  assert_false(v[1].trusted);
  assert_false(v[1].trusted_with_pool);
  chain_free(&ch);
  stls_trust_stores_free(s);
}

static void test_store_file_intermediates(void **state) {
  stls_trust_stores_t *s = NULL;
  stls_store_verdict_t v[1];
  char err[256];
  chain_t ch;
  (void)state;

  /* --ca-file becomes the store "default"; the intermediate riding in it
   * goes to the pool, and also serves as a trust anchor of that store (as
   * in OpenSSL's CAfile), so the bare leaf verifies there. */
  assert_int_equal(stls_trust_stores_load(&s,
                                          STLS_TEST_CHAIN_DIR "/store-both.pem",
                                          NULL, 0, NULL, err, sizeof(err)),
                   0);
  assert_int_equal(stls_trust_stores_count(s), 1);
  assert_string_equal(stls_trust_stores_name(s, 0), "default");
  assert_non_null(stls_trust_stores_pool(s));
  chain_load(&ch, CHAIN("leaf"));
  assert_int_equal(stls_chain_verify_stores(ch.certs, ch.n, s, v), 0);
  assert_true(v[0].trusted);
  chain_free(&ch);
  stls_trust_stores_free(s);
}

static void test_store_errors(void **state) {
  stls_trust_stores_t *s = stls_trust_stores_new();
  stls_trust_stores_t *loaded = (stls_trust_stores_t *)&loaded;
  char err[256];
  const char *dup[] = {"x=" STLS_TEST_CHAIN_DIR "/root.pem",
                       "x=" STLS_TEST_CHAIN_DIR "/other-root.pem"};
  (void)state;
  assert_non_null(s);

  err[0] = '\0';
  assert_int_equal(stls_trust_stores_add_spec(s, "nofile", err, sizeof(err)),
                   -1);
  assert_non_null(strstr(err, "NAME=FILE"));
  assert_int_equal(stls_trust_stores_add_spec(s, "a=", err, sizeof(err)), -1);
  assert_int_equal(
      stls_trust_stores_add_spec(s, "=" STLS_TEST_CHAIN_DIR "/root.pem", err,
                                 sizeof(err)),
      -1);
  assert_int_equal(stls_trust_stores_add(s, "bad name",
                                         STLS_TEST_CHAIN_DIR "/root.pem", err,
                                         sizeof(err)),
                   -1);
  assert_non_null(strstr(err, "bad trust store name"));
  assert_int_equal(stls_trust_stores_add(s, "gone",
                                         STLS_TEST_CHAIN_DIR "/no-such.pem",
                                         err, sizeof(err)),
                   -1);
  assert_non_null(strstr(err, "no-such.pem"));
  /* A file that exists but holds no certificate: this source file. */
  assert_int_equal(stls_trust_stores_add(s, "junk", __FILE__, err, sizeof(err)),
                   -1);
  assert_int_equal(stls_trust_stores_count(s), 0);
  assert_int_equal(stls_trust_stores_add_intermediates(
                       s, STLS_TEST_CHAIN_DIR "/no-such.pem", err, sizeof(err)),
                   -1);
  stls_trust_stores_free(s);

  assert_int_equal(
      stls_trust_stores_load(&loaded, NULL, dup, 2, NULL, err, sizeof(err)),
      -1);
  assert_null(loaded);
  assert_non_null(strstr(err, "twice"));
}

static void test_empty_chain(void **state) {
  mbedtls_x509_crt store;
  uint32_t flags = 0;
  stls_chain_facts_t f;
  (void)state;
  store_load(&store, "root");
  assert_int_equal(stls_chain_verify(NULL, 0, &store, NULL, &flags), 1);
  assert_int_equal(flags, MBEDTLS_X509_BADCERT_MISSING);
  assert_int_equal(stls_chain_facts(NULL, 0, &store, NULL, NOW_2025, &f), -1);
  mbedtls_x509_crt_free(&store);
}

static void test_bad_der(void **state) {
  mbedtls_x509_crt store;
  uint32_t flags = 0;
  stls_chain_facts_t f;
  unsigned char junk[] = {0x30, 0x03, 0x02, 0x01, 0x00};
  stls_cert_t c;
  (void)state;
  memset(&c, 0, sizeof(c));
  c.der = junk;
  c.der_len = sizeof(junk);
  store_load(&store, "root");
  assert_int_equal(stls_chain_verify(&c, 1, &store, NULL, &flags), -1);
  assert_int_equal(flags, MBEDTLS_X509_BADCERT_OTHER);
  assert_int_equal(stls_chain_facts(&c, 1, &store, NULL, NOW_2025, &f), -1);
  mbedtls_x509_crt_free(&store);
}

/* Chains longer than the verifier allows (make-long.sh). mbedTLS walks at
 * most MBEDTLS_X509_MAX_INTERMEDIATE_CA intermediates (8 unless built
 * otherwise) and, past that, gives up with every flag bit set; Postfix's
 * verify depth is 9. Only true reasons may come out: chain-too-long, plus
 * what is really wrong with the chain. */
#define LONG8                                                                  \
  "long-8", "long-7", "long-6", "long-5", "long-4", "long-3", "long-2", "long-1"
static void test_chain_too_long(void **state) {
  const unsigned limit = MBEDTLS_X509_MAX_INTERMEDIATE_CA < 9
                             ? MBEDTLS_X509_MAX_INTERMEDIATE_CA
                             : 9;
  stls_chain_facts_t f;
  uint32_t flags = 0;
  (void)state;

  assert_true(limit >= 8);
  assert_int_equal(
      verify_of(CHAIN("leaf-long8", LONG8), "long-root", NULL, &flags), 0);
  assert_int_equal(flags, 0);

  /* Nine: what Postfix still accepts, when the library can. */
  flags = 0;
  if (limit >= 9) {
    assert_int_equal(verify_of(CHAIN("leaf-long9", "long-9", LONG8),
                               "long-root", NULL, &flags),
                     0);
    assert_int_equal(flags, 0);
  } else {
    assert_int_equal(verify_of(CHAIN("leaf-long9", "long-9", LONG8),
                               "long-root", NULL, &flags),
                     1);
    assert_int_equal(flags, STLS_X509_BADCERT_CHAIN_TOO_LONG);
  }

  /* Eleven, every certificate fine: the length is the only reason. */
  flags = 0;
  assert_int_equal(
      verify_of(CHAIN("leaf-long11", "long-11", "long-10", "long-9", LONG8),
                "long-root", NULL, &flags),
      1);
  assert_int_equal(flags, STLS_X509_BADCERT_CHAIN_TOO_LONG);
  assert_int_equal(stls_cert_trust_reasons(flags),
                   STLS_TRUST_REASON(CHAIN_TOO_LONG));

  /* The same order scrambled: the path is still found, still too long. */
  flags = 0;
  assert_int_equal(verify_of(CHAIN("leaf-long11", "long-1", "long-2", "long-3",
                                   "long-4", "long-5", "long-6", "long-7",
                                   "long-8", "long-9", "long-10", "long-11"),
                             "long-root", NULL, &flags),
                   1);
  assert_int_equal(flags, STLS_X509_BADCERT_CHAIN_TOO_LONG);

  /* An expired intermediate low in the path (beyond what mbedTLS would
   * look at) and an unknown root are true reasons too. */
  flags = 0;
  assert_int_equal(
      verify_of(CHAIN("leaf-long11", "long-11", "long-10", "long-9", "long-8",
                      "long-7", "long-6", "long-5", "long-4", "long-3-expired",
                      "long-2", "long-1"),
                "long-root", NULL, &flags),
      1);
  assert_int_equal(flags, STLS_X509_BADCERT_CHAIN_TOO_LONG |
                              MBEDTLS_X509_BADCERT_EXPIRED);
  assert_int_equal(stls_cert_trust_reasons(flags),
                   STLS_TRUST_REASON(CHAIN_TOO_LONG) |
                       STLS_TRUST_REASON(EXPIRED));
  flags = 0;
  assert_int_equal(
      verify_of(CHAIN("leaf-long11", "long-11", "long-10", "long-9", LONG8),
                "root", NULL, &flags),
      1);
  assert_int_equal(flags, STLS_X509_BADCERT_CHAIN_TOO_LONG |
                              MBEDTLS_X509_BADCERT_NOT_TRUSTED);

  /* Through the judge the TLS layer uses, with its cache: the record's
   * reasons, twice the same. */
  {
    stls_chain_judge_t *j = NULL;
    char err[256];
    chain_t ch;
    for (int round = 0; round < 2; round++) {
      stls_tls_result_t t;
      memset(&t, 0, sizeof(t));
      if (!j)
        assert_int_equal(
            stls_chain_judge_new(&j, STLS_TEST_CHAIN_DIR "/long-root.pem", NULL,
                                 0, NULL, err, sizeof(err)),
            0);
      chain_load(&ch,
                 CHAIN("leaf-long11", "long-11", "long-10", "long-9", LONG8));
      t.chain = ch.certs;
      t.n_chain = ch.n;
      assert_int_equal(stls_chain_judge(j, "mx.long.example", &t), 0);
      assert_false(t.trusted);
      assert_int_equal(t.trust_reasons, STLS_TRUST_REASON(CHAIN_TOO_LONG));
      assert_true(t.name_mx);
      assert_false(t.expired);
      free(t.stores);
      free(t.facts);
      chain_free(&ch);
    }
    stls_chain_judge_free(j);
  }

  /* Facts stay true as well: nothing expired, nothing missing. */
  facts_of(CHAIN("leaf-long11", "long-11", "long-10", "long-9", LONG8),
           "long-root", NULL, NOW_2025, &f);
  assert_true(f.order_ok);
  assert_false(f.trusted_as_sent);
  assert_int_equal(f.flags_as_sent, STLS_X509_BADCERT_CHAIN_TOO_LONG);
  assert_false(f.missing_intermediate);
  assert_false(f.leaf_expired);
  assert_false(f.intermediate_expired);
  assert_false(f.unnecessary_certs);
}

static time_t fake_now;
static time_t fake_clock(time_t *t) {
  if (t)
    *t = fake_now;
  return fake_now;
}

/* One judged chain, by the judge's clock: hits and misses afterwards. */
static void judge_at(stls_chain_judge_t *j, time_t now, uint64_t want_hits,
                     uint64_t want_misses) {
  stls_tls_result_t t;
  chain_t ch;
  uint64_t hits, misses;
  fake_now = now;
  memset(&t, 0, sizeof(t));
  chain_load(&ch, CHAIN("leaf", "inter"));
  t.chain = ch.certs;
  t.n_chain = ch.n;
  assert_int_equal(stls_chain_judge(j, "mx.chain.example", &t), 0);
  assert_true(t.trusted);
  assert_true(t.name_mx);
  free(t.stores);
  free(t.facts);
  chain_free(&ch);
  stls_chain_judge_stats(j, &hits, &misses);
  assert_int_equal(hits, want_hits);
  assert_int_equal(misses, want_misses);
}

/* The judge verifies each distinct chain once per validity window: a hit
 * for the same chain within the hour, a new verdict after it, and never
 * past a notAfter that lay ahead (leaf.pem ends 2124-01-01T00:00:00Z). */
static void test_judge_cache_window(void **state) {
  const time_t end = (time_t)4859740800; /* 2124-01-01T00:00:00Z */
  stls_chain_judge_t *j = NULL;
  char err[256];
  (void)state;
  assert_int_equal(stls_chain_judge_new(&j, STLS_TEST_CHAIN_DIR "/root.pem",
                                        NULL, 0, NULL, err, sizeof(err)),
                   0);
  stls__chain_judge_set_clock(j, fake_clock);
  judge_at(j, NOW_2025, 0, 1);
  judge_at(j, NOW_2025, 1, 1);
  judge_at(j, NOW_2025 + 3599, 2, 1);
  judge_at(j, NOW_2025 + 3600, 2, 2); /* the hour is over */
  judge_at(j, NOW_2025 + 3601, 3, 2);
  judge_at(j, end - 1800, 3, 3); /* another window: judged again */
  judge_at(j, end, 4, 3);        /* still valid at notAfter itself */
  judge_at(j, end + 1, 4, 4);    /* past it: judged again */
  stls_chain_judge_free(j);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_good_chain),
      cmocka_unit_test(test_wrong_order),
      cmocka_unit_test(test_missing_intermediate),
      cmocka_unit_test(test_root_included),
      cmocka_unit_test(test_sha1),
      cmocka_unit_test(test_weak_rsa),
      cmocka_unit_test(test_validity),
      cmocka_unit_test(test_same_name_other_key),
      cmocka_unit_test(test_name_reencoded),
      cmocka_unit_test(test_leaf_extensions),
      cmocka_unit_test(test_duplicates),
      cmocka_unit_test(test_two_stores),
      cmocka_unit_test(test_store_file_intermediates),
      cmocka_unit_test(test_store_errors),
      cmocka_unit_test(test_empty_chain),
      cmocka_unit_test(test_bad_der),
      cmocka_unit_test(test_chain_too_long),
      cmocka_unit_test(test_judge_cache_window),
  };
  if (psa_crypto_init() != PSA_SUCCESS)
    return 1;
  return cmocka_run_group_tests(tests, NULL, NULL);
}
