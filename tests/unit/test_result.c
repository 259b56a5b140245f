/* Unit tests for the result model (scanner/result.c): construction, deep
 * copy, cleanup of half-built results, the growable string list, the fixed
 * findings capacity and the name tables.
 *
 * The binary is linked with --wrap=malloc,calloc,realloc
 * (tests/unit/CMakeLists.txt) so a test can make the N-th allocation fail and
 * check that every failure path reports the error and leaks nothing (valgrind
 * and ASan run it too). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "stls/result.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Allocation failure injection: -1 never fails; N >= 0 lets N allocations
 * succeed and fails every one after them. */
static long alloc_budget = -1;

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);

static bool alloc_allowed(void) {
  if (alloc_budget < 0)
    return true;
  if (alloc_budget == 0)
    return false;
  alloc_budget--;
  return true;
}
void *__wrap_malloc(size_t n) {
  return alloc_allowed() ? __real_malloc(n) : NULL;
}
void *__wrap_calloc(size_t n, size_t size) {
  return alloc_allowed() ? __real_calloc(n, size) : NULL;
}
void *__wrap_realloc(void *p, size_t n) {
  return alloc_allowed() ? __real_realloc(p, n) : NULL;
}

/* Each test starts with allocations working, even after a failed one. */
static int alloc_reset(void **state) {
  (void)state;
  alloc_budget = -1;
  return 0;
}

/* A certificate description with every owned field set. */
static void fill_cert(stls_cert_t *c, const char *cn, const char *issuer,
                      int n_san) {
  char buf[64];
  memset(c, 0, sizeof(*c));
  snprintf(buf, sizeof(buf), "CN=%s", cn);
  c->subject = strdup(buf);
  c->issuer = strdup(issuer);
  c->subject_cn = strdup(cn);
  for (int i = 0; i < n_san; i++) {
    snprintf(buf, sizeof(buf), "san%d.%s", i, cn);
    assert_int_equal(stls_strlist_push(&c->san_dns, buf), 0);
  }
  strcpy(c->not_before, "2024-01-01T00:00:00Z");
  strcpy(c->not_after, "2124-01-01T00:00:00Z");
  strcpy(c->key_type, "EC");
  c->key_bits = 256;
  strcpy(c->sig_alg, "ecdsa-with-SHA256");
  strcpy(c->serial, "0b");
  memset(c->sha256, 'a', 64);
  memset(c->spki_sha256, 'b', 64);
}

/* A result with every owned pointer and list populated. */
static void fill_result(stls_host_result_t *r) {
  assert_int_equal(stls_host_result_init(r, "mx.example.com", "192.0.2.1", 25),
                   0);
  r->status = STLS_HOST_SUCCESS;
  r->banner = strdup("220 mx.example.com ESMTP");
  r->ehlo_done = true;
  r->ehlo_reply = strdup("250-mx.example.com\r\n250-STARTTLS\r\n250 8BITMIME");
  assert_int_equal(stls_strlist_push(&r->ehlo_ext, "STARTTLS"), 0);
  assert_int_equal(stls_strlist_push(&r->ehlo_ext, "8BITMIME"), 0);
  r->starttls_offered = true;
  r->starttls_reply = strdup("220 2.0.0 Ready to start TLS");
  r->tls_done = true;
  strcpy(r->tls.version, "TLSv1.3");
  strcpy(r->tls.cipher_name, "TLS_AES_128_GCM_SHA256");
  r->tls.cipher_id = 0x1301;
  r->tls.chain = calloc(2, sizeof(*r->tls.chain));
  assert_non_null(r->tls.chain);
  fill_cert(&r->tls.chain[0], "mx.example.com", "CN=Issuing CA", 3);
  fill_cert(&r->tls.chain[1], "Issuing CA", "CN=Root", 0);
  r->tls.n_chain = 2;
  r->tls.trusted = true;
  r->tls.name_mx = true;
  r->ehlo_tls_reply = strdup("250-mx.example.com\r\n250 8BITMIME");
  assert_int_equal(stls_strlist_push(&r->ehlo_tls_ext, "8BITMIME"), 0);
  stls_host_result_add_finding(r, "starttls-injection", "%d bytes after 220",
                               12);
  r->timing.connect = 1;
  r->timing.total = 9;
  assert_non_null(r->banner);
  assert_non_null(r->ehlo_reply);
  assert_non_null(r->starttls_reply);
  assert_non_null(r->ehlo_tls_reply);
}

static void assert_strlist_equal_not_shared(const stls_strlist_t *a,
                                            const stls_strlist_t *b) {
  assert_int_equal(a->n, b->n);
  if (a->n)
    assert_ptr_not_equal(a->v, b->v);
  for (size_t i = 0; i < a->n; i++) {
    assert_string_equal(a->v[i], b->v[i]);
    assert_ptr_not_equal(a->v[i], b->v[i]);
  }
}

/* Equal content, no pointer shared (unless both NULL). */
static void assert_str_copy(const char *a, const char *b) {
  if (!a) {
    assert_null(b);
    return;
  }
  assert_non_null(b);
  assert_string_equal(a, b);
  assert_ptr_not_equal(a, b);
}

static void test_init_defaults(void **state) {
  stls_host_result_t r;
  (void)state;
  assert_int_equal(
      stls_host_result_init(&r, "mx.example.com", "2001:db8::1", 25), 0);
  assert_string_equal(r.mx, "mx.example.com");
  assert_string_equal(r.ip, "2001:db8::1");
  assert_int_equal(r.port, 25);
  assert_int_equal(r.family, 6);
  assert_int_equal(r.status, STLS_HOST_SKIPPED);
  assert_false(r.error.set);
  assert_true(r.timing.connect == -1 && r.timing.greeting == -1 &&
              r.timing.ehlo == -1 && r.timing.starttls == -1 &&
              r.timing.handshake == -1 && r.timing.total == -1);
  stls_host_result_free(&r);

  /* An address literal probe: mx falls back to the address. */
  assert_int_equal(stls_host_result_init(&r, NULL, "192.0.2.7", 587), 0);
  assert_string_equal(r.mx, "192.0.2.7");
  assert_int_equal(r.family, 4);
  stls_host_result_free(&r);
}

static void test_copy_is_deep(void **state) {
  stls_host_result_t a, b;
  (void)state;
  fill_result(&a);
  assert_int_equal(stls_host_result_copy(&b, &a), 0);

  assert_str_copy(a.mx, b.mx);
  assert_string_equal(a.ip, b.ip);
  assert_int_equal(a.port, b.port);
  assert_int_equal(a.status, b.status);
  assert_str_copy(a.banner, b.banner);
  assert_str_copy(a.ehlo_reply, b.ehlo_reply);
  assert_strlist_equal_not_shared(&a.ehlo_ext, &b.ehlo_ext);
  assert_str_copy(a.starttls_reply, b.starttls_reply);
  assert_str_copy(a.ehlo_tls_reply, b.ehlo_tls_reply);
  assert_strlist_equal_not_shared(&a.ehlo_tls_ext, &b.ehlo_tls_ext);
  assert_int_equal(b.tls.n_chain, 2);
  assert_ptr_not_equal(a.tls.chain, b.tls.chain);
  for (size_t i = 0; i < 2; i++) {
    assert_str_copy(a.tls.chain[i].subject, b.tls.chain[i].subject);
    assert_str_copy(a.tls.chain[i].issuer, b.tls.chain[i].issuer);
    assert_str_copy(a.tls.chain[i].subject_cn, b.tls.chain[i].subject_cn);
    assert_strlist_equal_not_shared(&a.tls.chain[i].san_dns,
                                    &b.tls.chain[i].san_dns);
    assert_string_equal(a.tls.chain[i].sha256, b.tls.chain[i].sha256);
  }
  assert_int_equal(b.n_findings, 1);
  assert_string_equal(b.findings[0].message, "12 bytes after 220");

  /* Mutate and shrink the copy everywhere; the original must not notice. */
  b.mx[0] = 'X';
  b.banner[0] = 'X';
  b.ehlo_reply[0] = 'X';
  b.ehlo_ext.v[0][0] = 'X';
  b.starttls_reply[0] = 'X';
  b.ehlo_tls_ext.v[0][0] = 'X';
  b.tls.chain[0].subject[0] = 'X';
  b.tls.chain[0].san_dns.v[2][0] = 'X';
  stls_strlist_free(&b.tls.chain[0].san_dns);
  strcpy(b.tls.chain[1].sha256, "changed");
  strcpy(b.findings[0].id, "changed");
  stls_host_result_add_finding(&b, "second", "only in the copy");

  assert_string_equal(a.mx, "mx.example.com");
  assert_string_equal(a.banner, "220 mx.example.com ESMTP");
  assert_string_equal(a.ehlo_reply,
                      "250-mx.example.com\r\n250-STARTTLS\r\n250 8BITMIME");
  assert_string_equal(a.ehlo_ext.v[0], "STARTTLS");
  assert_string_equal(a.starttls_reply, "220 2.0.0 Ready to start TLS");
  assert_string_equal(a.ehlo_tls_ext.v[0], "8BITMIME");
  assert_string_equal(a.tls.chain[0].subject, "CN=mx.example.com");
  assert_int_equal(a.tls.chain[0].san_dns.n, 3);
  assert_string_equal(a.tls.chain[0].san_dns.v[2], "san2.mx.example.com");
  assert_int_equal(strlen(a.tls.chain[1].sha256), 64);
  assert_string_equal(a.findings[0].id, "starttls-injection");
  assert_int_equal(a.n_findings, 1);

  /* Freeing the copy first must leave the original whole (and vice versa:
   * valgrind/ASan catch a double free here). */
  stls_host_result_free(&b);
  assert_string_equal(a.tls.chain[0].san_dns.v[0], "san0.mx.example.com");
  stls_host_result_free(&a);
}

static void test_copy_of_empty_result(void **state) {
  stls_host_result_t a, b;
  (void)state;
  assert_int_equal(stls_host_result_init(&a, "mx.example.com", "192.0.2.1", 25),
                   0);
  assert_int_equal(stls_host_result_copy(&b, &a), 0);
  assert_null(b.banner);
  assert_null(b.tls.chain);
  assert_int_equal(b.tls.n_chain, 0);
  assert_int_equal(b.ehlo_ext.n, 0);
  stls_host_result_free(&b);
  stls_host_result_free(&a);
}

/* Every allocation of the copy fails in turn: the copy must report -1 and
 * leave the destination empty, never a half-owned struct (valgrind and ASan
 * check that nothing leaks and nothing is freed twice). */
static void test_copy_enomem(void **state) {
  stls_host_result_t a, b;
  int failures = 0;
  (void)state;
  fill_result(&a);
  for (long budget = 0;; budget++) {
    int rc;
    memset(&b, 0x5a, sizeof(b)); /* garbage, as on a caller's stack */
    alloc_budget = budget;
    rc = stls_host_result_copy(&b, &a);
    alloc_budget = -1;
    if (rc == 0)
      break;
    assert_int_equal(rc, -1);
    assert_null(b.mx);
    assert_null(b.banner);
    assert_null(b.tls.chain);
    assert_int_equal(b.tls.n_chain, 0);
    stls_host_result_free(&b); /* must be harmless after a failed copy */
    failures++;
    assert_true(budget < 1000);
  }
  /* mx, 4 replies, 2 lists, chain array, 2 certs: many allocations. */
  assert_true(failures >= 10);
  stls_host_result_free(&b);
  stls_host_result_free(&a);
}

static void test_init_enomem(void **state) {
  stls_host_result_t r;
  (void)state;
  alloc_budget = 0;
  assert_int_equal(stls_host_result_init(&r, "mx.example.com", "192.0.2.1", 25),
                   -1);
  alloc_budget = -1;
  stls_host_result_free(&r);
}

/* Cleanup must tolerate every partly built state the session can leave. */
static void test_free_half_built(void **state) {
  stls_host_result_t r;
  (void)state;

  /* All zero, never initialised through init. */
  memset(&r, 0, sizeof(r));
  stls_host_result_free(&r);
  stls_host_result_free(NULL);

  /* Died after the greeting. */
  assert_int_equal(stls_host_result_init(&r, "mx.example.com", "192.0.2.1", 25),
                   0);
  r.banner = strdup("220 hello");
  stls_host_result_fail(&r, STLS_HOST_IO_TIMEOUT, STLS_STAGE_EHLO, "ETIMEDOUT",
                        NULL);
  stls_host_result_free(&r);
  assert_null(r.mx);         /* free leaves the struct empty... */
  stls_host_result_free(&r); /* ...so a second free is harmless */

  /* A chain whose second certificate was only half described (the cert
   * stage failed on ENOMEM after counting it). */
  assert_int_equal(stls_host_result_init(&r, "mx.example.com", "192.0.2.1", 25),
                   0);
  r.tls.chain = calloc(2, sizeof(*r.tls.chain));
  assert_non_null(r.tls.chain);
  fill_cert(&r.tls.chain[0], "mx.example.com", "CN=CA", 2);
  r.tls.chain[1].subject = strdup("CN=CA");
  r.tls.n_chain = 2;
  /* An extension list that grew once and then stopped. */
  for (int i = 0; i < 9; i++)
    assert_int_equal(stls_strlist_push(&r.ehlo_ext, "X"), 0);
  stls_host_result_free(&r);
  assert_null(r.tls.chain);
  assert_int_equal(r.tls.n_chain, 0);
}

static void test_strlist_growth(void **state) {
  stls_strlist_t l = {0};
  char buf[32];
  (void)state;
  for (int i = 0; i < 1000; i++) {
    snprintf(buf, sizeof(buf), "item-%d", i);
    assert_int_equal(stls_strlist_push(&l, buf), 0);
    assert_int_equal(l.n, (size_t)i + 1);
    assert_true(l.cap >= l.n);
  }
  for (int i = 0; i < 1000; i++) {
    snprintf(buf, sizeof(buf), "item-%d", i);
    assert_string_equal(l.v[i], buf);
  }
  stls_strlist_free(&l);
  assert_null(l.v);
  assert_int_equal(l.n, 0);
  assert_int_equal(l.cap, 0);

  /* pushn copies exactly len bytes, from a buffer that is not terminated. */
  assert_int_equal(stls_strlist_pushn(&l, "SIZE 1000XXXX", 9), 0);
  assert_int_equal(stls_strlist_pushn(&l, "ignored", 0), 0);
  assert_string_equal(l.v[0], "SIZE 1000");
  assert_string_equal(l.v[1], "");
  /* A freed list can be reused. */
  stls_strlist_free(&l);
  assert_int_equal(stls_strlist_push(&l, "again"), 0);
  assert_string_equal(l.v[0], "again");
  stls_strlist_free(&l);
}

/* A failed push leaves the list as it was (still owned, still valid). */
static void test_strlist_enomem(void **state) {
  stls_strlist_t l = {0};
  char buf[32];
  int failed = 0;
  (void)state;
  for (int i = 0; i < 40; i++) {
    size_t before = l.n;
    snprintf(buf, sizeof(buf), "item-%d", i);
    /* Fail every other allocation: both the array growth and the copy. */
    alloc_budget = (i % 3 == 0) ? 0 : (i % 3 == 1 ? 1 : -1);
    int rc = stls_strlist_push(&l, buf);
    alloc_budget = -1;
    if (rc != 0) {
      assert_int_equal(rc, -1);
      assert_int_equal(l.n, before);
      failed++;
    } else {
      assert_int_equal(l.n, before + 1);
      assert_string_equal(l.v[l.n - 1], buf);
    }
  }
  assert_true(failed > 0);
  stls_strlist_free(&l);
}

static void test_findings_capacity(void **state) {
  stls_host_result_t r;
  const size_t cap = STLS_MAX_FINDINGS;
  char longmsg[400];
  (void)state;
  assert_int_equal(stls_host_result_init(&r, "mx.example.com", "192.0.2.1", 25),
                   0);
  for (size_t i = 0; i < cap + 5; i++)
    stls_host_result_add_finding(&r, "finding", "number %zu", i);
  assert_int_equal(r.n_findings, cap);
  for (size_t i = 0; i < cap; i++) {
    char want[32];
    snprintf(want, sizeof(want), "number %zu", i);
    assert_string_equal(r.findings[i].message, want); /* first ones kept */
  }
  stls_host_result_free(&r);

  /* Over-long id and message are cut and stay terminated. */
  assert_int_equal(stls_host_result_init(&r, "mx.example.com", "192.0.2.1", 25),
                   0);
  memset(longmsg, 'm', sizeof(longmsg) - 1);
  longmsg[sizeof(longmsg) - 1] = '\0';
  stls_host_result_add_finding(&r, longmsg, "%s", longmsg);
  assert_int_equal(r.n_findings, 1);
  assert_int_equal(strlen(r.findings[0].id), sizeof(r.findings[0].id) - 1);
  assert_int_equal(strlen(r.findings[0].message),
                   sizeof(r.findings[0].message) - 1);
  stls_host_result_free(&r);
}

static void test_fail_sets_error(void **state) {
  stls_host_result_t r;
  char longcode[100];
  (void)state;
  assert_int_equal(stls_host_result_init(&r, "mx.example.com", "192.0.2.1", 25),
                   0);
  stls_host_result_fail(&r, STLS_HOST_CONNECTION_REFUSED, STLS_STAGE_CONNECT,
                        "ECONNREFUSED", "connect to %s: %s", "192.0.2.1",
                        "refused");
  assert_int_equal(r.status, STLS_HOST_CONNECTION_REFUSED);
  assert_true(r.error.set);
  assert_int_equal(r.error.stage, STLS_STAGE_CONNECT);
  assert_string_equal(r.error.code, "ECONNREFUSED");
  assert_string_equal(r.error.message, "connect to 192.0.2.1: refused");

  /* No format: the status message; no code: a placeholder code. */
  stls_host_result_fail(&r, STLS_HOST_HANDSHAKE_ERROR, STLS_STAGE_HANDSHAKE,
                        NULL, NULL);
  assert_string_equal(r.error.code, "ERROR");
  assert_string_equal(r.error.message,
                      stls_host_status_message(STLS_HOST_HANDSHAKE_ERROR));

  memset(longcode, 'E', sizeof(longcode) - 1);
  longcode[sizeof(longcode) - 1] = '\0';
  stls_host_result_fail(&r, STLS_HOST_PROTOCOL_ERROR, STLS_STAGE_EHLO, longcode,
                        NULL);
  assert_int_equal(strlen(r.error.code), sizeof(r.error.code) - 1);
  stls_host_result_free(&r);
}

/* Causes: every fixed cause has a code of the schema's shape and a
 * message; the codes made from a detail are spelled as before; text
 * codes from callers are parsed into causes; retry is decided on them. */
static void test_causes(void **state) {
  stls_host_result_t r;
  char buf[48];
  (void)state;
  for (int c = 0; c < STLS_CAUSE_COUNT; c++) {
    stls_error_t e;
    memset(&e, 0, sizeof(e));
    e.cause = (stls_cause_t)c;
    stls_error_code(&e, buf, sizeof(buf));
    assert_true(buf[0] >= 'A' && buf[0] <= 'Z');
    for (const char *p = buf; *p; p++)
      assert_true((*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                  *p == '_');
    assert_non_null(stls_cause_message((stls_cause_t)c));
  }
  assert_int_equal(stls_host_result_init(&r, "mx.example.com", "192.0.2.1", 25),
                   0);
  stls_host_result_fail_cause(&r, STLS_HOST_GREETING_REJECTED,
                              STLS_STAGE_GREETING, STLS_CAUSE_SMTP_REPLY, 421,
                              "busy");
  assert_string_equal(stls_error_code(&r.error, buf, sizeof(buf)), "SMTP_421");
  assert_string_equal(r.error.code, "SMTP_421");
  assert_true(stls_host_result_retryable(&r));
  stls_host_result_fail_cause(&r, STLS_HOST_GREETING_REJECTED,
                              STLS_STAGE_GREETING, STLS_CAUSE_SMTP_REPLY, 554,
                              "no");
  assert_string_equal(stls_error_code(&r.error, buf, sizeof(buf)), "SMTP_554");
  assert_false(stls_host_result_retryable(&r));
  stls_host_result_fail_cause(&r, STLS_HOST_HANDSHAKE_ERROR,
                              STLS_STAGE_HANDSHAKE, STLS_CAUSE_TLS_ALERT, 40,
                              NULL);
  assert_string_equal(stls_error_code(&r.error, buf, sizeof(buf)),
                      "TLS_ALERT_HANDSHAKE_FAILURE");
  stls_host_result_fail_cause(&r, STLS_HOST_HANDSHAKE_ERROR,
                              STLS_STAGE_HANDSHAKE, STLS_CAUSE_TLS_ALERT, 201,
                              NULL);
  assert_string_equal(stls_error_code(&r.error, buf, sizeof(buf)),
                      "TLS_ALERT_201");
  /* libuv errors: the named ones and the rest by name. */
  {
    int detail = -1;
    stls_cause_t c = stls_cause_from_uv(UV_ECONNRESET, &detail);
    assert_int_equal(c, STLS_CAUSE_ECONNRESET);
    assert_int_equal(detail, 0);
    stls_host_result_fail_cause(&r, STLS_HOST_CONNECTION_ERROR, STLS_STAGE_EHLO,
                                c, detail, "reset");
    assert_true(stls_host_result_retryable(&r));
    c = stls_cause_from_uv(UV_EOF, &detail);
    assert_int_equal(c, STLS_CAUSE_EOF);
    c = stls_cause_from_uv(UV_EPIPE, &detail);
    assert_int_equal(c, STLS_CAUSE_ERRNO);
    stls_host_result_fail_cause(&r, STLS_HOST_CONNECTION_ERROR, STLS_STAGE_EHLO,
                                c, detail, "pipe");
    assert_string_equal(stls_error_code(&r.error, buf, sizeof(buf)), "EPIPE");
    assert_false(stls_host_result_retryable(&r));
  }
  /* Text codes: known ones become causes, others stay text. */
  stls_host_result_fail(&r, STLS_HOST_CONNECTION_ERROR, STLS_STAGE_EHLO,
                        "ECONNRESET", NULL);
  assert_int_equal(r.error.cause, STLS_CAUSE_ECONNRESET);
  assert_true(stls_host_result_retryable(&r));
  stls_host_result_fail(&r, STLS_HOST_SKIPPED, STLS_STAGE_CONNECT,
                        "SOMETHING_NEW", NULL);
  assert_int_equal(r.error.cause, STLS_CAUSE_OTHER);
  assert_string_equal(stls_error_code(&r.error, buf, sizeof(buf)),
                      "SOMETHING_NEW");
  assert_false(stls_host_result_retryable(&r));
  stls_host_result_fail_cause(&r, STLS_HOST_BLOCKED, STLS_STAGE_CONNECT,
                              STLS_CAUSE_ADDRESS_NOT_ALLOWED, 0, NULL);
  assert_string_equal(stls_error_code(&r.error, buf, sizeof(buf)),
                      "ADDRESS_NOT_ALLOWED");
  assert_false(stls_host_result_retryable(&r));
  stls_host_result_free(&r);
}

/* Every name of a table is set, not the fallback, and unique. */
static void assert_names_complete(const char *(*name)(int), int count,
                                  const char *fallback) {
  for (int i = 0; i < count; i++) {
    const char *a = name(i);
    assert_non_null(a);
    assert_true(a[0] != '\0');
    assert_string_not_equal(a, fallback);
    for (int j = 0; j < i; j++)
      assert_string_not_equal(a, name(j));
  }
  assert_string_equal(name(count), fallback);
  assert_string_equal(name(-1), fallback);
}

static const char *status_name(int i) {
  return stls_host_status_name((stls_host_status_t)i);
}
static const char *status_msg(int i) {
  return stls_host_status_message((stls_host_status_t)i);
}
static const char *stage_name(int i) {
  return stls_stage_name((stls_stage_t)i);
}
static const char *reason_name(int i) {
  return stls_trust_reason_name((unsigned)i);
}

static bool in_list(const char *s, const char *const *list, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(s, list[i]) == 0)
      return true;
  return false;
}

static void test_status_names(void **state) {
  /* The closed enumeration of the published schema (docs/output.md). */
  static const char *const schema_status[] = {"success",
                                              "skipped",
                                              "network-unreachable",
                                              "connection-refused",
                                              "connection-timeout",
                                              "connection-error",
                                              "greeting-rejected",
                                              "io-timeout",
                                              "protocol-error",
                                              "starttls-not-supported",
                                              "starttls-rejected",
                                              "handshake-error",
                                              "blocked"};
  (void)state;
  assert_names_complete(status_name, STLS_HOST_STATUS_COUNT, "unknown");
  assert_names_complete(status_msg, STLS_HOST_STATUS_COUNT, "unknown");
  assert_int_equal(STLS_HOST_STATUS_COUNT, ARRAY_LEN(schema_status));
  for (int i = 0; i < STLS_HOST_STATUS_COUNT; i++)
    assert_true(in_list(stls_host_status_name((stls_host_status_t)i),
                        schema_status, ARRAY_LEN(schema_status)));
  assert_string_equal(stls_host_status_name(STLS_HOST_SUCCESS), "success");
  assert_string_equal(stls_host_status_name(STLS_HOST_STARTTLS_NOT_SUPPORTED),
                      "starttls-not-supported");
}

static void test_stage_names(void **state) {
  /* error.stage values of the schema; NONE and DONE are internal states
   * that never appear in an error. */
  static const char *const schema_stage[] = {
      "connect",  "greeting",  "ehlo",     "helo",
      "starttls", "handshake", "ehlo_tls", "quit"};
  (void)state;
  assert_names_complete(stage_name, STLS_STAGE_COUNT, "unknown");
  for (size_t i = 0; i < ARRAY_LEN(schema_stage); i++) {
    bool found = false;
    for (int s = 0; s < STLS_STAGE_COUNT; s++)
      found |= strcmp(stls_stage_name((stls_stage_t)s), schema_stage[i]) == 0;
    assert_true(found);
  }
  assert_string_equal(stls_stage_name(STLS_STAGE_EHLO_TLS), "ehlo_tls");
}

static void test_trust_reason_names(void **state) {
  static const char *const schema_reasons[] = {
      "untrusted-issuer", "expired", "not-yet-valid",  "bad-signature",
      "revoked",          "bad-key", "chain-too-long", "other"};
  (void)state;
  /* "other" is both a reason and the fallback, so check uniqueness here. */
  for (int i = 0; i < STLS_TRUST_REASON_COUNT; i++) {
    const char *a = stls_trust_reason_name((unsigned)i);
    assert_true(in_list(a, schema_reasons, ARRAY_LEN(schema_reasons)));
    for (int j = 0; j < i; j++)
      assert_string_not_equal(a, reason_name(j));
  }
  assert_int_equal(STLS_TRUST_REASON_COUNT, ARRAY_LEN(schema_reasons));
  assert_string_equal(stls_trust_reason_name(STLS_TRUST_BIT_UNTRUSTED_ISSUER),
                      "untrusted-issuer");
  assert_string_equal(stls_trust_reason_name(STLS_TRUST_REASON_COUNT), "other");
  /* Every bit fits the unsigned mask. */
  assert_true(STLS_TRUST_REASON_COUNT <= 32);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(test_init_defaults, alloc_reset),
      cmocka_unit_test_setup(test_init_enomem, alloc_reset),
      cmocka_unit_test_setup(test_copy_is_deep, alloc_reset),
      cmocka_unit_test_setup(test_copy_of_empty_result, alloc_reset),
      cmocka_unit_test_setup(test_copy_enomem, alloc_reset),
      cmocka_unit_test_setup(test_free_half_built, alloc_reset),
      cmocka_unit_test_setup(test_strlist_growth, alloc_reset),
      cmocka_unit_test_setup(test_strlist_enomem, alloc_reset),
      cmocka_unit_test_setup(test_findings_capacity, alloc_reset),
      cmocka_unit_test_setup(test_fail_sets_error, alloc_reset),
      cmocka_unit_test_setup(test_status_names, alloc_reset),
      cmocka_unit_test_setup(test_causes, alloc_reset),
      cmocka_unit_test_setup(test_stage_names, alloc_reset),
      cmocka_unit_test_setup(test_trust_reason_names, alloc_reset),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
