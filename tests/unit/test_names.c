/* Unit tests for certificate name checks (scanner/names.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
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
      cmocka_unit_test(test_null),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
