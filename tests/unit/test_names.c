/* Unit tests for certificate name checks (scanner/names.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stls/names.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

typedef struct {
  const char *a; /* pattern, host or name (see each table) */
  const char *b; /* host or domain; unused for is_hostname */
  bool want;
} name_case_t;

/* stls_name_match(a = certificate identifier, b = reference host). */
static const name_case_t match_cases[] = {
    /* Exact, case-insensitive, trailing dots. */
    {"mx.example.com", "mx.example.com", true},
    {"MX.Example.COM", "mx.example.com", true},
    {"mx.example.com", "MX.EXAMPLE.COM", true},
    {"mx.example.com.", "mx.example.com", true},
    {"mx.example.com", "mx.example.com.", true},
    {"mx.example.com.", "mx.example.com.", true},
    {"mx.example.com..", "mx.example.com", false},
    {"mx.example.com", "mx.example.com..", false},
    {"mx.example.com", "mx2.example.com", false},
    {"mx.example.com", "mx.example.co", false},
    {"mx.example.co", "mx.example.com", false},
    {"example.com", "mx.example.com", false},
    {"mx.example.com", "example.com", false},
    {"localhost", "localhost", true},
    {"xn--bcher-kva.example", "XN--BCHER-KVA.example", true},
    /* Wildcard as the whole leftmost label: exactly one label. */
    {"*.example.com", "mx.example.com", true},
    {"*.example.com", "MX.EXAMPLE.COM", true},
    {"*.EXAMPLE.com", "mx.example.com", true},
    {"*.example.com.", "mx.example.com", true},
    {"*.example.com", "mx.example.com.", true},
    {"*.example.com", "xn--bcher-kva.example.com", true},
    {"*.example.com", "example.com", false},
    {"*.example.com", "a.b.example.com", false},
    {"*.example.com", ".example.com", false},
    {"*.example.com", "mx.example.org", false},
    {"*.example.com", "mx.notexample.com", false},
    {"*.a.example.com", "mx.a.example.com", true},
    {"*.a.example.com", "mx.b.example.com", false},
    /* Wildcards that never match. */
    {"*.com", "example.com", false},
    {"*.com.", "example.com", false},
    {"*", "com", false},
    {"*", "example.com", false},
    {"*.", "example.com", false},
    {"*.*.example.com", "a.b.example.com", false},
    {"f*.example.com", "foo.example.com", false},
    {"*o.example.com", "foo.example.com", false},
    {"f*o.example.com", "foo.example.com", false},
    {"**.example.com", "mx.example.com", false},
    {"mx.*.example.com", "mx.a.example.com", false},
    {"mx.example.*", "mx.example.com", false},
    {"*example.com", "mx.example.com", false},
    {"*.example..com", "mx.example..com", false},
    {"*.-bad.example", "mx.-bad.example", false},
    /* A host that is itself a pattern is not a host name. */
    {"*.example.com", "*.example.com", false},
    /* IP-address hosts never match a dNSName, even a textually equal one. */
    {"192.0.2.1", "192.0.2.1", false},
    {"*.0.2.1", "192.0.2.1", false},
    {"127.1", "127.1", false},
    {"::1", "::1", false},
    {"2001:db8:25::1", "2001:db8:25::1", false},
    {"[::1]", "[::1]", false},
    /* Empty and degenerate strings. */
    {"", "", false},
    {"", "example.com", false},
    {"example.com", "", false},
    {".", ".", false},
    {"..", "..", false},
    {".example.com", ".example.com", false},
    {"mx..example.com", "mx..example.com", false},
    /* Non-LDH bytes: no locale may fold these into a match. */
    {"mx_1.example.com", "mx_1.example.com", false},
    {"mx\xc3\xa9.example", "mx\xc3\xa9.example", false},
    {"MX\xc3\x89.example", "mx\xc3\xa9.example", false},
    {"mx .example.com", "mx .example.com", false},
};

/* stls_name_in_domain(a = host, b = domain). */
static const name_case_t in_domain_cases[] = {
    {"example.com", "example.com", true},
    {"EXAMPLE.com", "example.COM", true},
    {"example.com.", "example.com", true},
    {"example.com", "example.com.", true},
    {"mx.example.com", "example.com", true},
    {"mx.a.example", "example", true},
    {"mx.a.example.", "EXAMPLE.", true},
    {"a.b.c.example.com", "example.com", true},
    {"badexample", "example", false},
    {"mx.badexample.com", "example.com", false},
    {"example.com", "mx.example.com", false},
    {"example.org", "example.com", false},
    {"com", "example.com", false},
    /* Certificate identifiers are compared as strings, as Postfix's
     * dot-nexthop does: a wildcard name lies below its parent. */
    {"*.example.com", "example.com", true},
    {"*.example.com", "mx.example.com", false},
    /* Degenerate hosts and domains. */
    {".example.com", "example.com", false},
    {"a..example.com", "example.com", false},
    {"mx example.com", "example.com", false},
    {"mx\x01.example.com", "example.com", false},
    {"mx\xc3\xa9.example.com", "example.com", false},
    {"", "", false},
    {"", "example.com", false},
    {"example.com", "", false},
    {".", ".", false},
    {"example.com", ".", false},
    {"example.com", ".com", false},
    {"example.com..", "example.com", false},
    {"example.com", "example.com..", false},
    {"mx.example.com", "*.example.com", false},
    {"192.0.2.1", "192.0.2.1", false},
    {"1.192.0.2.1", "2.1", false},
};

/* stls_name_is_hostname(a). */
static const name_case_t hostname_cases[] = {
    {"example.com", NULL, true},
    {"example.com.", NULL, true},
    {"EXAMPLE.COM", NULL, true},
    {"localhost", NULL, true},
    {"a", NULL, true},
    {"a-b.c-d.example", NULL, true},
    {"xn--bcher-kva.example", NULL, true},
    {"123.example", NULL, true},
    {"mx1.example.com", NULL, true},
    {"a.b1", NULL, true},
    {"", NULL, false},
    {".", NULL, false},
    {"..", NULL, false},
    {"example.com..", NULL, false},
    {".example.com", NULL, false},
    {"a..b", NULL, false},
    {"-a.example", NULL, false},
    {"a-.example", NULL, false},
    {"a.example-", NULL, false},
    {"a_b.example", NULL, false},
    {"*.example.com", NULL, false},
    {"a b.example", NULL, false},
    {"caf\xc3\xa9.example", NULL, false},
    {"example.com/", NULL, false},
    {"192.0.2.1", NULL, false},
    {"192.0.2.1.", NULL, false},
    {"123", NULL, false},
    {"::1", NULL, false},
    {"[::1]", NULL, false},
};

/* stls_name_matches(rule, id, ref): every rule on the cases that tell the
 * rules apart. "com" as the reference stands for a recipient domain that
 * is a top-level domain: the case on which the MX-name check (RFC 6125)
 * and Postfix's secure level (dot-nexthop) used to disagree. The rule we
 * keep is each asker's own: RFC 6125 lets no wildcard name a TLD's hosts
 * ("*.com" is never valid) and ".example.com" is not a name at all, while
 * Postfix's dot-nexthop is a plain string test on the certificate's name
 * (tls_client.c match_servername: the name ends in "." + nexthop), so for
 * Postfix both "*.example.com" and ".example.com" lie below "com" - and
 * the secure verdict and names.recipient_domain say what Postfix does. */
typedef struct {
  stls_name_rule_t rule;
  const char *id, *ref;
  bool want;
} rule_case_t;

#define R6 STLS_NAME_RFC6125
#define PF STLS_NAME_POSTFIX
#define PB STLS_NAME_POSTFIX_BELOW
#define MX STLS_NAME_STS_MX
static const rule_case_t rule_cases[] = {
    /* Equality, case, trailing dot: the same under every rule but
     * POSTFIX_BELOW, which wants a name strictly below. */
    {R6, "mx.example.com", "MX.example.com.", true},
    {PF, "mx.example.com", "MX.example.com.", true},
    {PB, "mx.example.com", "mx.example.com", false},
    {MX, "mx.example.com", "MX.example.com.", true},
    /* One-label wildcard. */
    {R6, "*.example.com", "mx.example.com", true},
    {PF, "*.example.com", "mx.example.com", true},
    {PB, "*.example.com", "mx.example.com", false},
    {MX, "*.example.com", "mx.example.com", true},
    /* More labels: only Postfix (tls_wildcard_matches_multiple_labels). */
    {R6, "*.example.com", "a.b.example.com", false},
    {PF, "*.example.com", "a.b.example.com", true},
    {MX, "*.example.com", "a.b.example.com", false},
    /* The wildcard's parent itself: never by wildcard; below for PB. */
    {R6, "*.example.com", "example.com", false},
    {PF, "*.example.com", "example.com", false},
    {PB, "*.example.com", "example.com", true},
    {MX, "*.example.com", "example.com", false},
    /* The settled case: names against the domain "com". */
    {R6, "*.example.com", "com", false},
    {PF, "*.example.com", "com", false},
    {PB, "*.example.com", "com", true},
    {R6, ".example.com", "com", false},
    {PF, ".example.com", "com", false},
    {PB, ".example.com", "com", true},
    {PB, ".example.com", "example.com", false},
    {PB, "mx.example.com", "com", true},
    /* "*.com": nothing under RFC 6125, a host for Postfix. */
    {R6, "*.com", "example.com", false},
    {PF, "*.com", "example.com", true},
    {MX, "*.com", "example.com", false},
    /* Label boundaries. */
    {PF, "*.example.com", "mx.notexample.com", false},
    {PB, "mx.badexample.com", "example.com", false},
    {PB, "badexample.com", "example.com", false},
    /* Partial-label and inner wildcards match nothing, except that a
     * Postfix sub-domain test does not look at the labels in front. */
    {R6, "f*.example.com", "foo.example.com", false},
    {PF, "f*.example.com", "foo.example.com", false},
    {PB, "f*.example.com", "example.com", true},
    {R6, "mx.*.example.com", "mx.a.example.com", false},
    {PF, "mx.*.example.com", "mx.a.example.com", false},
    /* References that are not host names never match. */
    {R6, "192.0.2.1", "192.0.2.1", false},
    {PF, "192.0.2.1", "192.0.2.1", false},
    {PB, "1.192.0.2.1", "2.1", false},
    {PF, "*.example.com", "*.example.com", false},
    /* Identifiers that are not printable ASCII never match: a NUL (kept
     * by cert.c as U+2400), a control byte, a byte >= 0x80, a space. */
    {R6, "good.example\xe2\x90\x80.evil.example", "evil.example", false},
    {PF, "good.example\xe2\x90\x80.evil.example", "evil.example", false},
    {PB, "good.example\xe2\x90\x80.evil.example", "evil.example", false},
    {PB, "x\x01.example.com", "example.com", false},
    {PB, "x\xc3\xa9.example.com", "example.com", false},
    {PB, "a b.example.com", "example.com", false},
    {PF, "*.example.com\x7f", "mx.example.com", false},
    /* Empty and NULL. */
    {R6, "", "", false},
    {PF, "", "example.com", false},
    {PB, "", "com", false},
    {MX, "", "mx.example.com", false},
    {PF, NULL, "example.com", false},
    {PB, "example.com", NULL, false},
    {STLS_NAME_RULE_COUNT, "example.com", "example.com", false},
};
#undef R6
#undef PF
#undef PB
#undef MX

static void test_rules(void **state) {
  size_t failed = 0;
  (void)state;
  for (size_t i = 0; i < ARRAY_LEN(rule_cases); i++) {
    const rule_case_t *c = &rule_cases[i];
    bool got = stls_name_matches(c->rule, c->id, c->ref);
    if (got != c->want) {
      print_error("stls_name_matches(%d, \"%s\", \"%s\") = %d, want %d\n",
                  (int)c->rule, c->id ? c->id : "(null)",
                  c->ref ? c->ref : "(null)", got, c->want);
      failed++;
    }
  }
  if (failed)
    fail_msg("%zu of %zu rule cases failed", failed, ARRAY_LEN(rule_cases));
}

/* The certificate as a whole: dNSNames first, the CN only without any;
 * a NUL dNSName still hides the CN (Postfix sets its ALTNAME flag for any
 * dNSName, usable or not). */
static void test_cert_rules(void **state) {
  stls_cert_t c;
  (void)state;
  memset(&c, 0, sizeof(c));
  c.subject_cn = strdup("mx.example.com");
  assert_non_null(c.subject_cn);
  assert_true(stls_name_cert_matches(&c, STLS_NAME_RFC6125, "mx.example.com"));
  assert_true(stls_name_cert_matches_list(&c, "nexthop:dot-nexthop",
                                          "example.com", NULL));
  assert_int_equal(
      stls_strlist_push(&c.san_dns, "mx.example.com\xe2\x90\x80.evil"), 0);
  assert_false(stls_name_cert_matches(&c, STLS_NAME_RFC6125, "mx.example.com"));
  assert_false(stls_name_cert_matches_list(&c, "nexthop:dot-nexthop",
                                           "example.com", NULL));
  assert_false(stls_name_cert_matches_list(&c, "dot-nexthop", "evil", NULL));
  assert_int_equal(stls_strlist_push(&c.san_dns, "*.example.com"), 0);
  assert_true(
      stls_name_cert_matches_list(&c, "hostname", "x", "a.b.example.com"));
  assert_false(
      stls_name_cert_matches(&c, STLS_NAME_RFC6125, "a.b.example.com"));
  assert_true(stls_name_cert_matches_list(&c, ".com", "x", "y"));
  assert_false(stls_name_cert_matches_list(&c, ".", "x", "y"));
  assert_false(stls_name_cert_matches(NULL, STLS_NAME_RFC6125, "example.com"));
  assert_false(stls_name_cert_matches_list(&c, NULL, "example.com", NULL));
  free(c.subject_cn);
  stls_strlist_free(&c.san_dns);
}

static void run_table(const name_case_t *cases, size_t n, const char *what,
                      bool (*fn)(const char *, const char *)) {
  size_t i, failed = 0;

  for (i = 0; i < n; i++) {
    bool got = fn(cases[i].a, cases[i].b);

    if (got != cases[i].want) {
      print_error("%s(\"%s\", \"%s\") = %d, want %d\n", what, cases[i].a,
                  cases[i].b ? cases[i].b : "", got, cases[i].want);
      failed++;
    }
  }
  if (failed)
    fail_msg("%zu of %zu %s cases failed", failed, n, what);
}

static bool is_hostname2(const char *s, const char *unused) {
  (void)unused;
  return stls_name_is_hostname(s);
}

static void test_match(void **state) {
  (void)state;
  run_table(match_cases, ARRAY_LEN(match_cases), "stls_name_match",
            stls_name_match);
}

static void test_in_domain(void **state) {
  (void)state;
  run_table(in_domain_cases, ARRAY_LEN(in_domain_cases), "stls_name_in_domain",
            stls_name_in_domain);
}

static void test_is_hostname(void **state) {
  (void)state;
  run_table(hostname_cases, ARRAY_LEN(hostname_cases), "stls_name_is_hostname",
            is_hostname2);
}

/* Build "l.l.l...": `labels` labels of `label_len` bytes, then `tail`. */
static void make_name(char *buf, size_t labels, size_t label_len,
                      const char *tail) {
  size_t i;

  buf[0] = '\0';
  for (i = 0; i < labels; i++) {
    size_t off = strlen(buf);

    memset(buf + off, 'a' + (char)(i % 26), label_len);
    buf[off + label_len] = '.';
    buf[off + label_len + 1] = '\0';
  }
  strcat(buf, tail);
}

/* Label and total length limits: 63 and 253 bytes, trailing dot extra. */
static void test_length_limits(void **state) {
  char name[600], host[600];

  (void)state;
  make_name(name, 1, 63, "example");
  assert_true(stls_name_is_hostname(name));
  make_name(name, 1, 64, "example");
  assert_false(stls_name_is_hostname(name));

  /* 3 x (63 + 1) + 61 = 253 bytes. */
  make_name(name, 3, 63, "");
  strcat(name, "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij"
               "a");
  assert_int_equal(strlen(name), 253);
  assert_true(stls_name_is_hostname(name));
  strcat(name, ".");
  assert_true(stls_name_is_hostname(name));
  strcpy(name + 252, "ab");
  assert_int_equal(strlen(name), 254);
  assert_false(stls_name_is_hostname(name));

  /* Matching and the domain check reject overlong names too. */
  make_name(host, 1, 64, "example.com");
  assert_false(stls_name_match(host, host));
  assert_false(stls_name_match("*.example.com", host));
  assert_false(stls_name_in_domain("example.com", host));
  make_name(host, 1, 63, "example.com");
  assert_true(stls_name_match(host, host));
  assert_true(stls_name_match("*.example.com", host));
  assert_true(stls_name_in_domain(host, "example.com"));
}

/* NULL arguments are a "no", never a crash. */
static void test_null(void **state) {
  (void)state;
  assert_false(stls_name_match(NULL, "example.com"));
  assert_false(stls_name_match("example.com", NULL));
  assert_false(stls_name_in_domain(NULL, "example.com"));
  assert_false(stls_name_in_domain("example.com", NULL));
  assert_false(stls_name_is_hostname(NULL));
}

int main(void) {
  static const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_match),       cmocka_unit_test(test_in_domain),
      cmocka_unit_test(test_is_hostname), cmocka_unit_test(test_length_limits),
      cmocka_unit_test(test_null),        cmocka_unit_test(test_rules),
      cmocka_unit_test(test_cert_rules),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
