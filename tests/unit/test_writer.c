/* Unit tests for the JSON writer (scanner/writer.c).
 *
 * Each test builds a stls_host_result_t by hand, renders it, and reads the
 * JSON text back with cJSON to check it field by field: what is null, what
 * is present, formats (cipher id, times, integers), escaping. Every probe
 * record made here is also appended to the file named by STLS_RECORDS_OUT
 * (when set), one per line; the CTest test writer_records_schema validates
 * that file against the published JSON Schema.
 *
 * Tests marked "BUG:" fail on purpose until scanner/writer.c is fixed; they
 * document a defect that was reported, and stay in as regression tests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "stls/writer.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
/* 2026-11-30T04:23:02Z */
#define SCANNED_AT ((time_t)1796012582)
#define SHA_A "9f91161f43433e49a6de6db680d79f60159f2e4ac9172621a12846428158440b"
#define SHA_B "0d88f7c5a7d58689459c4d6e9e1a2d24e5f9524f266dd7ee9472696fef4e3ba3"

static FILE *records; /* STLS_RECORDS_OUT, or NULL */

/* Members every HOST object has (docs/output.md), in writer order. */
static const char *const host_keys[] = {
    "mx",   "ip",       "port", "family",   "status",   "error",    "banner",
    "ehlo", "starttls", "tls",  "ehlo_tls", "findings", "timing_ms"};

/* ---- strict UTF-8 check (RFC 3629: no overlongs, surrogates, > U+10FFFF) */

/* Offset of the first byte that is not well-formed UTF-8, or -1. */
static long utf8_invalid_at(const unsigned char *s, size_t len) {
  size_t i = 0;
  while (i < len) {
    unsigned c = s[i];
    size_t n;
    unsigned cp, min;
    if (c < 0x80) {
      i++;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      n = 1, cp = c & 0x1f, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
      n = 2, cp = c & 0x0f, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
      n = 3, cp = c & 0x07, min = 0x10000;
    } else {
      return (long)i;
    }
    for (size_t k = 1; k <= n; k++) {
      if (i + k >= len || (s[i + k] & 0xc0) != 0x80)
        return (long)i;
      cp = (cp << 6) | (s[i + k] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
      return (long)i;
    i += n + 1;
  }
  return -1;
}

static void assert_valid_utf8(const char *text) {
  long at = utf8_invalid_at((const unsigned char *)text, strlen(text));
  if (at >= 0) {
    /* Show the surroundings with bytes >= 0x80 as \xNN, so the log stays
     * readable text. */
    char ctx[200];
    size_t o = 0;
    for (long i = at > 20 ? at - 20 : 0; text[i] && i < at + 20; i++) {
      unsigned char c = (unsigned char)text[i];
      o += (size_t)snprintf(ctx + o, sizeof(ctx) - o,
                            c < 0x80 ? "%c" : "\\x%02x", c);
    }
    fail_msg("JSON output is not valid UTF-8 at byte %ld: ...%s...", at, ctx);
  }
}

/* ---- rendering and access helpers */

/* The last rendered text and the result under test live here, not on the
 * stack, so the teardown frees them when an assertion jumps out of a test
 * (a failing test then does not also report leaks under valgrind). */
static char *last_text;
static stls_host_result_t cur;
static cJSON *cur_json;

/* Render r as a probe record, check the text is one line of valid JSON and
 * valid UTF-8, record it for the schema check, and parse it back. */
static cJSON *render(const stls_host_result_t *r, const char *domain) {
  cJSON *rec = stls_json_probe_record(r, domain, SCANNED_AT), *back;
  assert_non_null(rec);
  if (records)
    assert_int_equal(stls_json_write_line(records, rec), 0);
  cJSON_free(last_text);
  last_text = cJSON_PrintUnformatted(rec);
  cJSON_Delete(rec);
  assert_non_null(last_text);
  assert_null(strchr(last_text, '\n'));
  for (const char *p = last_text; *p; p++)
    if ((unsigned char)*p < 0x20)
      fail_msg("raw control byte 0x%02x in JSON text", (unsigned char)*p);
  assert_valid_utf8(last_text);
  back = cJSON_Parse(last_text);
  if (!back)
    fail_msg("writer output does not parse: %s", last_text);
  return back;
}

/* The member at a dotted path ("tls.cipher.id"); fails when absent. */
static const cJSON *get(const cJSON *o, const char *path) {
  char buf[128], *save = NULL, *part;
  const cJSON *node = o;
  assert_true(strlen(path) < sizeof(buf));
  strcpy(buf, path);
  for (part = strtok_r(buf, ".", &save); part;
       part = strtok_r(NULL, ".", &save)) {
    if (!cJSON_IsObject(node))
      fail_msg("%s: \"%s\" is not inside an object", path, part);
    node = cJSON_GetObjectItemCaseSensitive(node, part);
    if (!node)
      fail_msg("%s: member \"%s\" missing", path, part);
  }
  return node;
}

static void expect_str(const cJSON *o, const char *path, const char *want) {
  const cJSON *v = get(o, path);
  if (!cJSON_IsString(v))
    fail_msg("%s: want string \"%s\", got another type", path, want);
  if (strcmp(v->valuestring, want) != 0)
    fail_msg("%s: want \"%s\", got \"%s\"", path, want, v->valuestring);
}

static void expect_null(const cJSON *o, const char *path) {
  if (!cJSON_IsNull(get(o, path)))
    fail_msg("%s: want null", path);
}

static void expect_present(const cJSON *o, const char *path) {
  if (cJSON_IsNull(get(o, path)))
    fail_msg("%s: want a value, got null", path);
}

static void expect_bool(const cJSON *o, const char *path, bool want) {
  const cJSON *v = get(o, path);
  if (!cJSON_IsBool(v) || cJSON_IsTrue(v) != want)
    fail_msg("%s: want %s", path, want ? "true" : "false");
}

static void expect_int(const cJSON *o, const char *path, double want) {
  const cJSON *v = get(o, path);
  if (!cJSON_IsNumber(v) || v->valuedouble != want)
    fail_msg("%s: want %.0f", path, want);
}

/* An array of strings equal to want (NULL-terminated). */
static void expect_strs(const cJSON *o, const char *path,
                        const char *const *want) {
  const cJSON *a = get(o, path), *e;
  size_t n = 0;
  if (!cJSON_IsArray(a))
    fail_msg("%s: want an array", path);
  cJSON_ArrayForEach(e, a) {
    if (!want[n])
      fail_msg("%s: more than %zu items", path, n);
    if (!cJSON_IsString(e) || strcmp(e->valuestring, want[n]) != 0)
      fail_msg("%s[%zu]: want \"%s\"", path, n, want[n]);
    n++;
  }
  if (want[n])
    fail_msg("%s: only %zu items, want \"%s\" next", path, n, want[n]);
}

static const char *const none[] = {NULL};

/* Every HOST member is there, and schema/scanned_at lead the record. */
static void expect_record_shape(const cJSON *rec) {
  const cJSON *c = rec->child;
  assert_non_null(c);
  assert_string_equal(c->string, "schema");
  assert_non_null(c->next);
  assert_string_equal(c->next->string, "scanned_at");
  expect_str(rec, "schema", "starttls-scan/1");
  expect_str(rec, "scanned_at", "2026-11-30T04:23:02Z");
  for (size_t i = 0; i < ARRAY_LEN(host_keys); i++)
    get(rec, host_keys[i]);
  for (size_t i = 0; i < 6; i++) {
    static const char *const t[] = {"connect",  "greeting",  "ehlo",
                                    "starttls", "handshake", "total"};
    char path[40];
    snprintf(path, sizeof(path), "timing_ms.%s", t[i]);
    get(rec, path);
  }
}

/* ---- building results */

static char *xstrdup(const char *s) {
  char *d = strdup(s);
  assert_non_null(d);
  return d;
}

static void push(stls_strlist_t *l, const char *const *v) {
  for (; *v; v++)
    assert_int_equal(stls_strlist_push(l, *v), 0);
}

static void base(stls_host_result_t *r, const char *mx, const char *ip) {
  assert_int_equal(stls_host_result_init(r, mx, ip, 25), 0);
}

static void set_cert(stls_cert_t *c, const char *subject, const char *issuer,
                     const char *cn, const char *const *sans, const char *key,
                     int bits, const char *sig, const char *serial,
                     const char *sha, const char *spki) {
  memset(c, 0, sizeof(*c));
  c->subject = xstrdup(subject);
  c->issuer = xstrdup(issuer);
  c->subject_cn = cn ? xstrdup(cn) : NULL;
  push(&c->san_dns, sans);
  strcpy(c->not_before, "2026-10-01T00:00:00Z");
  strcpy(c->not_after, "2026-12-30T23:59:59Z");
  strcpy(c->key_type, key);
  c->key_bits = bits;
  strcpy(c->sig_alg, sig);
  strcpy(c->serial, serial);
  strcpy(c->sha256, sha);
  strcpy(c->spki_sha256, spki);
  c->self_issued = strcmp(subject, issuer) == 0;
}

static const char *const ehlo_ext[] = {"PIPELINING", "SIZE 10240000",
                                       "STARTTLS", "8BITMIME", NULL};
static const char *const ehlo_tls_ext[] = {"PIPELINING", "SIZE 10240000",
                                           "8BITMIME", NULL};
static const char *const leaf_sans[] = {"mx1.example.com", "mx.example.com",
                                        NULL};

/* Greeting and EHLO done, STARTTLS offered (or not). */
static void through_ehlo(stls_host_result_t *r, bool starttls) {
  r->banner = xstrdup("220 mx1.example.com ESMTP Postfix");
  r->ehlo_done = true;
  r->ehlo_reply =
      xstrdup(starttls ? "250-mx1.example.com\r\n250-PIPELINING\r\n"
                         "250-SIZE 10240000\r\n250-STARTTLS\r\n250 8BITMIME"
                       : "250-mx1.example.com\r\n250-PIPELINING\r\n"
                         "250-SIZE 10240000\r\n250 8BITMIME");
  push(&r->ehlo_ext, starttls ? ehlo_ext : ehlo_tls_ext);
  r->starttls_offered = starttls;
  r->timing.connect = 1;
  r->timing.greeting = 2;
  r->timing.ehlo = 1;
}

/* A complete success with a leaf and an intermediate. */
static void make_success(stls_host_result_t *r) {
  base(r, "mx1.example.com", "192.0.2.1");
  through_ehlo(r, true);
  r->starttls_reply = xstrdup("220 2.0.0 Ready to start TLS");
  r->tls_done = true;
  strcpy(r->tls.version, "TLSv1.3");
  strcpy(r->tls.cipher_name, "TLS_AES_256_GCM_SHA384");
  r->tls.cipher_id = 0x1302;
  r->tls.chain = calloc(2, sizeof(*r->tls.chain));
  assert_non_null(r->tls.chain);
  r->tls.n_chain = 2;
  set_cert(&r->tls.chain[0], "CN=mx1.example.com",
           "C=US, O=Example Trust, CN=Example Issuing CA 1", "mx1.example.com",
           leaf_sans, "EC", 256, "ecdsa-with-SHA384", "4a1c0e7f2b9d3a55c1e8",
           SHA_A, SHA_B);
  set_cert(&r->tls.chain[1], "C=US, O=Example Trust, CN=Example Issuing CA 1",
           "C=US, O=Example Trust, CN=Example Root CA", "Example Issuing CA 1",
           none, "RSA", 2048, "sha256WithRSAEncryption", "0b", SHA_B, SHA_A);
  r->tls.trusted = true;
  r->tls.name_mx = true;
  r->ehlo_tls_reply = xstrdup("250-mx1.example.com\r\n250-PIPELINING\r\n"
                              "250-SIZE 10240000\r\n250 8BITMIME");
  push(&r->ehlo_tls_ext, ehlo_tls_ext);
  r->status = STLS_HOST_SUCCESS;
  r->timing.starttls = 1;
  r->timing.handshake = 5;
  r->timing.total = 12;
}

/* ---- tests */

static void test_success_two_cert_chain(void **state) {
  stls_host_result_t r;
  cJSON *j;
  (void)state;
  make_success(&r);
  j = render(&r, NULL);
  expect_record_shape(j);
  expect_str(j, "mx", "mx1.example.com");
  expect_str(j, "ip", "192.0.2.1");
  expect_int(j, "port", 25);
  expect_str(j, "family", "ipv4");
  expect_str(j, "status", "success");
  expect_null(j, "error");
  expect_str(j, "banner", "220 mx1.example.com ESMTP Postfix");
  expect_str(j, "ehlo.command", "EHLO");
  expect_str(j, "ehlo.reply", r.ehlo_reply);
  expect_strs(j, "ehlo.extensions", ehlo_ext);
  expect_bool(j, "starttls.offered", true);
  expect_str(j, "starttls.reply", "220 2.0.0 Ready to start TLS");
  expect_str(j, "tls.version", "TLSv1.3");
  expect_str(j, "tls.cipher.name", "TLS_AES_256_GCM_SHA384");
  expect_str(j, "tls.cipher.id", "0x1302");
  expect_bool(j, "tls.trust.trusted", true);
  expect_null(j, "tls.trust.result_type");
  expect_strs(j, "tls.trust.reasons", none);
  expect_bool(j, "tls.names.mx_hostname", true);
  expect_null(j, "tls.names.recipient_domain"); /* no domain given */
  expect_bool(j, "tls.expired", false);
  expect_str(j, "ehlo_tls.reply", r.ehlo_tls_reply);
  expect_strs(j, "ehlo_tls.extensions", ehlo_tls_ext);
  assert_int_equal(cJSON_GetArraySize(get(j, "findings")), 0);
  expect_int(j, "timing_ms.connect", 1);
  expect_int(j, "timing_ms.handshake", 5);
  expect_int(j, "timing_ms.total", 12);

  {
    const cJSON *chain = get(j, "tls.chain");
    const cJSON *leaf = cJSON_GetArrayItem(chain, 0);
    const cJSON *ca = cJSON_GetArrayItem(chain, 1);
    assert_int_equal(cJSON_GetArraySize(chain), 2);
    expect_str(leaf, "subject", "CN=mx1.example.com");
    expect_str(leaf, "issuer",
               "C=US, O=Example Trust, CN=Example Issuing CA 1");
    expect_strs(leaf, "san_dns", leaf_sans);
    expect_str(leaf, "not_before", "2026-10-01T00:00:00Z");
    expect_str(leaf, "not_after", "2026-12-30T23:59:59Z");
    expect_str(leaf, "key.type", "EC");
    expect_int(leaf, "key.bits", 256);
    expect_str(leaf, "signature_algorithm", "ecdsa-with-SHA384");
    expect_str(leaf, "serial", "4a1c0e7f2b9d3a55c1e8");
    expect_str(leaf, "sha256", SHA_A);
    expect_str(leaf, "spki_sha256", SHA_B);
    expect_str(ca, "subject", "C=US, O=Example Trust, CN=Example Issuing CA 1");
    expect_strs(ca, "san_dns", none); /* present and empty, not null */
    expect_str(ca, "key.type", "RSA");
    expect_int(ca, "key.bits", 2048);
    expect_str(ca, "serial", "0b");
  }
  cJSON_Delete(j);
  stls_host_result_free(&r);
}

static void test_recipient_domain(void **state) {
  stls_host_result_t r;
  cJSON *j;
  (void)state;
  make_success(&r);
  j = render(&r, "example.com"); /* mx1.example.com is below it */
  expect_bool(j, "tls.names.recipient_domain", true);
  cJSON_Delete(j);
  j = render(&r, "example.org");
  expect_bool(j, "tls.names.recipient_domain", false);
  cJSON_Delete(j);
  r.tls.name_mx = false;
  j = render(&r, NULL);
  expect_bool(j, "tls.names.mx_hostname", false);
  expect_null(j, "tls.names.recipient_domain");
  cJSON_Delete(j);
  stls_host_result_free(&r);
}

static void test_untrusted_reasons(void **state) {
  static const char *const two[] = {"untrusted-issuer", "expired", NULL};
  static const char *const all[] = {
      "untrusted-issuer", "expired", "not-yet-valid",
      "bad-signature",    "revoked", "bad-key",
      "chain-too-long",   "other",   NULL};
  stls_host_result_t r;
  cJSON *j;
  (void)state;
  make_success(&r);
  r.tls.trusted = false;
  r.tls.expired = true;
  r.tls.trust_reasons =
      STLS_TRUST_REASON(EXPIRED) | STLS_TRUST_REASON(UNTRUSTED_ISSUER);
  j = render(&r, NULL);
  expect_bool(j, "tls.trust.trusted", false);
  expect_str(j, "tls.trust.result_type", "certificate-not-trusted");
  expect_strs(j, "tls.trust.reasons", two); /* in enum order, once each */
  expect_bool(j, "tls.expired", true);
  cJSON_Delete(j);

  r.tls.trust_reasons = STLS_TRUST_REASON(EXPIRED);
  j = render(&r, NULL);
  expect_str(j, "tls.trust.result_type", "certificate-expired");
  cJSON_Delete(j);

  r.tls.trust_reasons = (1u << STLS_TRUST_REASON_COUNT) - 1;
  j = render(&r, NULL);
  expect_strs(j, "tls.trust.reasons", all);
  expect_present(j, "tls.trust.result_type");
  cJSON_Delete(j);
  stls_host_result_free(&r);
}

static void test_cipher_id_format(void **state) {
  static const struct {
    uint16_t id;
    const char *want;
  } cases[] = {{0x1302, "0x1302"}, {0x1301, "0x1301"}, {0x00ff, "0x00ff"},
               {0xc02f, "0xc02f"}, {0xCCA8, "0xcca8"}, {0x0000, "0x0000"},
               {0x000a, "0x000a"}, {0xffff, "0xffff"}};
  stls_host_result_t r;
  (void)state;
  make_success(&r);
  strcpy(r.tls.version, "TLSv1.2");
  strcpy(r.tls.cipher_name, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256");
  for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
    cJSON *j;
    r.tls.cipher_id = cases[i].id;
    j = render(&r, NULL);
    expect_str(j, "tls.cipher.id", cases[i].want);
    expect_str(j, "tls.version", "TLSv1.2");
    cJSON_Delete(j);
  }
  stls_host_result_free(&r);
}

static void test_starttls_not_supported(void **state) {
  stls_host_result_t r;
  cJSON *j;
  (void)state;
  base(&r, "mx2.example.com", "192.0.2.2");
  through_ehlo(&r, false);
  r.status = STLS_HOST_STARTTLS_NOT_SUPPORTED;
  r.timing.total = 5;
  j = render(&r, NULL);
  expect_record_shape(j);
  expect_str(j, "status", "starttls-not-supported");
  expect_null(j, "error"); /* not an error, a fact */
  expect_str(j, "ehlo.command", "EHLO");
  expect_strs(j, "ehlo.extensions", ehlo_tls_ext);
  expect_bool(j, "starttls.offered", false);
  expect_null(j, "starttls.reply");
  expect_null(j, "tls");
  expect_null(j, "ehlo_tls");
  expect_int(j, "timing_ms.ehlo", 1);
  expect_null(j, "timing_ms.starttls");
  expect_null(j, "timing_ms.handshake");
  expect_int(j, "timing_ms.total", 5);
  cJSON_Delete(j);
  stls_host_result_free(&r);
}

static void test_connection_refused(void **state) {
  stls_host_result_t r;
  cJSON *j;
  (void)state;
  base(&r, "mx3.example.com", "2001:db8:25::3");
  stls_host_result_fail(&r, STLS_HOST_CONNECTION_REFUSED, STLS_STAGE_CONNECT,
                        "ECONNREFUSED", "connect: %s", "Connection refused");
  r.timing.total = 0; /* 0 ms is a value, not "not reached" */
  j = render(&r, NULL);
  expect_record_shape(j);
  expect_str(j, "ip", "2001:db8:25::3");
  expect_str(j, "family", "ipv6");
  expect_str(j, "status", "connection-refused");
  expect_str(j, "error.stage", "connect");
  expect_str(j, "error.code", "ECONNREFUSED");
  expect_str(j, "error.message", "connect: Connection refused");
  expect_null(j, "banner");
  expect_null(j, "ehlo");
  expect_null(j, "starttls");
  expect_null(j, "tls");
  expect_null(j, "ehlo_tls");
  assert_int_equal(cJSON_GetArraySize(get(j, "findings")), 0);
  expect_null(j, "timing_ms.connect");
  expect_null(j, "timing_ms.greeting");
  expect_null(j, "timing_ms.ehlo");
  expect_null(j, "timing_ms.starttls");
  expect_null(j, "timing_ms.handshake");
  expect_int(j, "timing_ms.total", 0);
  cJSON_Delete(j);
  stls_host_result_free(&r);
}

static void test_greeting_rejected(void **state) {
  stls_host_result_t r;
  cJSON *j;
  (void)state;
  base(&r, "mx4.example.com", "192.0.2.4");
  r.banner = xstrdup("421-mx4.example.com busy\r\n421 try later");
  stls_host_result_fail(&r, STLS_HOST_GREETING_REJECTED, STLS_STAGE_GREETING,
                        "SMTP_421", NULL);
  r.timing.connect = 1;
  r.timing.greeting = 3;
  r.timing.total = 4;
  j = render(&r, NULL);
  expect_str(j, "status", "greeting-rejected");
  expect_str(j, "error.stage", "greeting");
  expect_str(j, "error.code", "SMTP_421");
  expect_str(j, "error.message",
             stls_host_status_message(STLS_HOST_GREETING_REJECTED));
  expect_str(j, "banner", "421-mx4.example.com busy\r\n421 try later");
  expect_null(j, "ehlo");
  expect_null(j, "starttls");
  expect_int(j, "timing_ms.greeting", 3);
  expect_null(j, "timing_ms.ehlo");
  cJSON_Delete(j);
  stls_host_result_free(&r);
}

static void test_helo_fallback(void **state) {
  stls_host_result_t r;
  cJSON *j;
  (void)state;
  base(&r, "mx5.example.com", "192.0.2.5");
  r.banner = xstrdup("220 mx5.example.com old SMTP");
  r.ehlo_done = true;
  r.used_helo = true;
  r.ehlo_reply = xstrdup("250 mx5.example.com");
  r.status = STLS_HOST_STARTTLS_NOT_SUPPORTED;
  j = render(&r, NULL);
  expect_str(j, "status", "starttls-not-supported");
  expect_null(j, "error");
  expect_str(j, "ehlo.command", "HELO");
  expect_str(j, "ehlo.reply", "250 mx5.example.com");
  expect_strs(j, "ehlo.extensions", none);
  expect_bool(j, "starttls.offered", false);
  expect_null(j, "starttls.reply");
  expect_null(j, "tls");
  cJSON_Delete(j);
  stls_host_result_free(&r);
}

static void test_starttls_rejected_and_handshake_error(void **state) {
  stls_host_result_t r;
  cJSON *j;
  (void)state;
  base(&r, "mx6.example.com", "192.0.2.6");
  through_ehlo(&r, true);
  r.starttls_reply =
      xstrdup("454 4.7.0 TLS not available due to local problem");
  stls_host_result_fail(&r, STLS_HOST_STARTTLS_REJECTED, STLS_STAGE_STARTTLS,
                        "SMTP_454", "STARTTLS rejected");
  j = render(&r, NULL);
  expect_str(j, "status", "starttls-rejected");
  expect_bool(j, "starttls.offered", true);
  expect_str(j, "starttls.reply",
             "454 4.7.0 TLS not available due to local problem");
  expect_str(j, "error.stage", "starttls");
  expect_str(j, "error.code", "SMTP_454");
  expect_null(j, "tls");
  cJSON_Delete(j);
  stls_host_result_free(&r);

  base(&r, "mx6.example.com", "192.0.2.6");
  through_ehlo(&r, true);
  r.starttls_reply = xstrdup("220 2.0.0 Ready to start TLS");
  stls_host_result_fail(&r, STLS_HOST_HANDSHAKE_ERROR, STLS_STAGE_HANDSHAKE,
                        "TLS_ALERT_HANDSHAKE_FAILURE",
                        "handshake failure alert");
  j = render(&r, NULL);
  expect_str(j, "status", "handshake-error");
  expect_str(j, "error.stage", "handshake");
  expect_str(j, "error.code", "TLS_ALERT_HANDSHAKE_FAILURE");
  expect_null(j, "tls");
  expect_null(j, "ehlo_tls");
  expect_null(j, "timing_ms.handshake");
  cJSON_Delete(j);
  stls_host_result_free(&r);
}

static void test_findings(void **state) {
  stls_host_result_t r;
  const cJSON *f;
  cJSON *j;
  (void)state;
  make_success(&r);
  stls_host_result_add_finding(&r, "starttls-injection",
                               "%d bytes after the 220 reply to STARTTLS", 17);
  stls_host_result_add_finding(&r, "other-finding", "second");
  j = render(&r, NULL);
  f = get(j, "findings");
  assert_int_equal(cJSON_GetArraySize(f), 2);
  expect_str(cJSON_GetArrayItem(f, 0), "id", "starttls-injection");
  expect_str(cJSON_GetArrayItem(f, 0), "message",
             "17 bytes after the 220 reply to STARTTLS");
  expect_str(cJSON_GetArrayItem(f, 1), "id", "other-finding");
  expect_str(cJSON_GetArrayItem(f, 1), "message", "second");
  cJSON_Delete(j);
  stls_host_result_free(&r);
}

/* Durations are JSON integers in the text: no fraction, no exponent. */
static void test_timing_integers(void **state) {
  stls_host_result_t r;
  cJSON *rec;
  char *text;
  (void)state;
  make_success(&r);
  r.timing.connect = 0;
  r.timing.greeting = -1;
  r.timing.total = 86400000; /* a day, the longest a timeout can be */
  r.timing.handshake = 123456789012LL;
  rec = stls_json_probe_record(&r, NULL, SCANNED_AT);
  assert_non_null(rec);
  text = cJSON_PrintUnformatted(rec);
  assert_non_null(text);
  assert_non_null(strstr(text, "\"connect\":0,"));
  assert_non_null(strstr(text, "\"greeting\":null,"));
  assert_non_null(strstr(text, "\"total\":86400000}"));
  assert_non_null(strstr(text, "\"handshake\":123456789012,"));
  assert_non_null(strstr(text, "\"port\":25,"));
  cJSON_free(text);
  cJSON_Delete(rec);
  stls_host_result_free(&r);
}

/* Hostile but valid text (control characters, quotes, backslashes, DEL,
 * non-ASCII UTF-8) must come back byte for byte. */
static void test_escaping_round_trip(void **state) {
  static const char banner[] =
      "220 \"quoted\" \\back\\slash\t\x01\x02\x1b[31m\x7f"
      " </script> \xc3\xbc\xe2\x9c\x89\xf0\x9f\x93\xa7";
  static const char *const ext[] = {"X-\"EXT\"\x1f", "AUTH PLAIN\\LOGIN", NULL};
  stls_host_result_t r;
  cJSON *j;
  (void)state;
  make_success(&r);
  free(r.banner);
  r.banner = xstrdup(banner);
  stls_strlist_free(&r.ehlo_ext);
  push(&r.ehlo_ext, ext);
  free(r.tls.chain[0].subject);
  r.tls.chain[0].subject = xstrdup("CN=\"evil\\, inc\"\n, O=\x7f");
  stls_host_result_add_finding(&r, "starttls-injection", "bytes: \"\r\n");
  j = render(&r, NULL);
  expect_str(j, "banner", banner);
  expect_strs(j, "ehlo.extensions", ext);
  expect_str(cJSON_GetArrayItem(get(j, "tls.chain"), 0), "subject",
             "CN=\"evil\\, inc\"\n, O=\x7f");
  expect_str(cJSON_GetArrayItem(get(j, "findings"), 0), "message",
             "bytes: \"\r\n");
  cJSON_Delete(j);
  stls_host_result_free(&r);
}

/* BUG: JSON must be UTF-8 (RFC 8259 section 8.1; docs/output.md), but cJSON
 * copies string bytes >= 0x80 unchecked, so whatever a server sends (the
 * reply parser admits any byte >= 0x80) or a certificate holds ends up
 * verbatim in the output: Python's json module, jq and jsonschema then
 * reject the whole line. The writer has to repair invalid sequences (for
 * example to U+FFFD, or \u00XX-escape the bytes) before handing strings to
 * cJSON. Valid UTF-8 must stay untouched (test_escaping_round_trip). */
static void test_invalid_utf8_is_repaired(void **state) {
  static const char *const bad[] = {
      "220 \xff\xfe mx.example.com",   /* bytes never valid in UTF-8 */
      "220 caf\xe9 latin-1",           /* ISO-8859-1 text */
      "220 \xc3\x28 broken pair",      /* lead byte, no continuation */
      "220 \xed\xa0\x80 surrogate",    /* UTF-16 surrogate */
      "220 \xc0\xaf overlong slash",   /* overlong encoding */
      "220 \xf4\x90\x80\x80 too big",  /* above U+10FFFF */
      "220 truncated at end \xe2\x9c", /* cut in the middle */
  };
  static const char *const bad_ext[] = {"X-\x80\x81", NULL};
  static const char *const bad_san[] = {"bad\xff.example", "mx1.example.com",
                                        NULL};
  (void)state;
  for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
    print_message("banner %zu\n", i);
    make_success(&cur);
    free(cur.banner);
    cur.banner = xstrdup(bad[i]);
    cur_json = render(&cur, NULL); /* checks validity */
    /* The readable start survives the repair. */
    assert_memory_equal(get(cur_json, "banner")->valuestring, "220 ", 4);
    cJSON_Delete(cur_json);
    cur_json = NULL;
    stls_host_result_free(&cur);
  }
  /* The same for every other string that comes from the peer. */
  make_success(&cur);
  stls_strlist_free(&cur.ehlo_ext);
  push(&cur.ehlo_ext, bad_ext);
  stls_strlist_free(&cur.tls.chain[0].san_dns);
  push(&cur.tls.chain[0].san_dns, bad_san);
  free(cur.tls.chain[0].subject_cn);
  cur.tls.chain[0].subject_cn = xstrdup("\xfe");
  cJSON_Delete(render(&cur, "example.com"));
  stls_host_result_fail(&cur, STLS_HOST_PROTOCOL_ERROR, STLS_STAGE_EHLO_TLS,
                        "BAD_REPLY", "bad reply: \"%s\"", "\x80");
  cur.tls_done = false;
  cJSON_Delete(render(&cur, NULL));
  stls_host_result_free(&cur);
}

/* stls_json_host is the probe record without schema and scanned_at. */
static void test_host_object_matches_probe_record(void **state) {
  stls_host_result_t r;
  cJSON *host, *rec;
  const cJSON *h, *p;
  (void)state;
  make_success(&r);
  host = stls_json_host(&r, "example.com");
  rec = stls_json_probe_record(&r, "example.com", SCANNED_AT);
  assert_non_null(host);
  assert_non_null(rec);
  assert_null(cJSON_GetObjectItemCaseSensitive(host, "schema"));
  assert_null(cJSON_GetObjectItemCaseSensitive(host, "scanned_at"));
  for (h = host->child, p = rec->child->next->next; h || p;
       h = h->next, p = p->next) {
    assert_non_null(h);
    assert_non_null(p);
    assert_string_equal(h->string, p->string);
    assert_true(cJSON_Compare(h, p, true));
  }
  /* Member order is stable: the HOST keys in documented order. */
  h = host->child;
  for (size_t i = 0; i < ARRAY_LEN(host_keys); i++, h = h->next) {
    assert_non_null(h);
    assert_string_equal(h->string, host_keys[i]);
  }
  cJSON_Delete(host);
  cJSON_Delete(rec);
  stls_host_result_free(&r);
}

static void test_scanned_at(void **state) {
  stls_host_result_t r;
  cJSON *rec;
  (void)state;
  base(&r, "mx.example.com", "192.0.2.1");
  rec = stls_json_probe_record(&r, NULL, (time_t)0);
  assert_non_null(rec);
  expect_str(rec, "scanned_at", "1970-01-01T00:00:00Z");
  expect_str(rec, "status", "skipped");
  cJSON_Delete(rec);
  rec = stls_json_probe_record(&r, NULL, (time_t)4102444799); /* 2099-12-31 */
  expect_str(rec, "scanned_at", "2099-12-31T23:59:59Z");
  cJSON_Delete(rec);
  stls_host_result_free(&r);
}

static void test_write_line(void **state) {
  stls_host_result_t r;
  cJSON *rec, *back;
  FILE *f;
  char buf[8192];
  size_t n;
  (void)state;
  make_success(&r);
  rec = stls_json_probe_record(&r, NULL, SCANNED_AT);
  assert_non_null(rec);

  f = tmpfile();
  assert_non_null(f);
  assert_int_equal(stls_json_write_line(f, rec), 0);
  assert_int_equal(stls_json_write_line(f, rec), 0);
  rewind(f);
  n = fread(buf, 1, sizeof(buf) - 1, f);
  fclose(f);
  buf[n] = '\0';
  /* Two records, each exactly one line. */
  assert_true(n > 2 && buf[n - 1] == '\n');
  {
    char *nl = strchr(buf, '\n');
    assert_non_null(nl);
    assert_ptr_equal(strchr(nl + 1, '\n'), buf + n - 1);
    *nl = '\0';
    assert_memory_equal(buf, nl + 1, strlen(buf));
  }
  back = cJSON_Parse(buf);
  assert_non_null(back);
  assert_true(cJSON_Compare(back, rec, true));
  cJSON_Delete(back);

  /* A full disk is reported, not ignored. */
  f = fopen("/dev/full", "w");
  if (f) {
    assert_int_equal(stls_json_write_line(f, rec), -1);
    fclose(f);
  }
  cJSON_Delete(rec);
  stls_host_result_free(&r);
}

/* cJSON allocation failure injection through its hooks. */
static long cjson_budget = -1;
static void *failing_malloc(size_t n) {
  if (cjson_budget == 0)
    return NULL;
  if (cjson_budget > 0)
    cjson_budget--;
  return malloc(n);
}

/* Every cJSON allocation fails in turn: the writer returns NULL (or -1),
 * leaks nothing and never crashes. valgrind/ASan check the leaks. */
static void test_enomem(void **state) {
  cJSON_Hooks hooks = {failing_malloc, free};
  stls_host_result_t r;
  cJSON *rec = NULL;
  int failures = 0;
  (void)state;
  make_success(&r);
  stls_host_result_add_finding(&r, "starttls-injection", "x");
  stls_host_result_fail(&r, STLS_HOST_PROTOCOL_ERROR, STLS_STAGE_EHLO_TLS,
                        "EOF", NULL);
  cJSON_InitHooks(&hooks);
  for (long budget = 0; budget < 100000; budget++) {
    cjson_budget = budget;
    rec = stls_json_probe_record(&r, "example.com", SCANNED_AT);
    cjson_budget = -1;
    if (rec)
      break;
    failures++;
  }
  assert_non_null(rec);
  assert_true(failures > 50);
  /* Printing fails too, and says so. */
  {
    FILE *f = tmpfile();
    assert_non_null(f);
    cjson_budget = 0;
    assert_int_equal(stls_json_write_line(f, rec), -1);
    cjson_budget = -1;
    fclose(f);
  }
  cJSON_Delete(rec);
  for (long budget = 0;; budget++) {
    cJSON *h;
    cjson_budget = budget;
    h = stls_json_host(&r, NULL);
    cjson_budget = -1;
    if (h) {
      cJSON_Delete(h);
      break;
    }
  }
  cJSON_InitHooks(NULL);
  stls_host_result_free(&r);
}

static int group_setup(void **state) {
  const char *path = getenv("STLS_RECORDS_OUT");
  (void)state;
  if (path && *path) {
    records = fopen(path, "w");
    if (!records) {
      fprintf(stderr, "cannot write %s\n", path);
      return -1;
    }
  }
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  if (records && fclose(records) != 0)
    return -1;
  records = NULL;
  return 0;
}

/* cJSON's hooks are global: a failed test must not leave them failing.
 * Also frees what a failed test left behind. */
static int reset_hooks(void **state) {
  (void)state;
  cjson_budget = -1;
  cJSON_InitHooks(NULL);
  cJSON_free(last_text);
  last_text = NULL;
  cJSON_Delete(cur_json);
  cur_json = NULL;
  stls_host_result_free(&cur);
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_success_two_cert_chain, reset_hooks),
      cmocka_unit_test_teardown(test_recipient_domain, reset_hooks),
      cmocka_unit_test_teardown(test_untrusted_reasons, reset_hooks),
      cmocka_unit_test_teardown(test_cipher_id_format, reset_hooks),
      cmocka_unit_test_teardown(test_starttls_not_supported, reset_hooks),
      cmocka_unit_test_teardown(test_connection_refused, reset_hooks),
      cmocka_unit_test_teardown(test_greeting_rejected, reset_hooks),
      cmocka_unit_test_teardown(test_helo_fallback, reset_hooks),
      cmocka_unit_test_teardown(test_starttls_rejected_and_handshake_error,
                                reset_hooks),
      cmocka_unit_test_teardown(test_findings, reset_hooks),
      cmocka_unit_test_teardown(test_timing_integers, reset_hooks),
      cmocka_unit_test_teardown(test_escaping_round_trip, reset_hooks),
      cmocka_unit_test_teardown(test_invalid_utf8_is_repaired, reset_hooks),
      cmocka_unit_test_teardown(test_host_object_matches_probe_record,
                                reset_hooks),
      cmocka_unit_test_teardown(test_scanned_at, reset_hooks),
      cmocka_unit_test_teardown(test_write_line, reset_hooks),
      cmocka_unit_test_teardown(test_enomem, reset_hooks),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
