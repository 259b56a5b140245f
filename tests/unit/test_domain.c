/* Table-driven tests for domain normalisation and target-file lines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "stls/domain.h"

/* expect: the normalised name, or NULL when the input must be rejected;
 * why: for rejections, a prefix the reason must start with. */
typedef struct {
  const char *in;
  const char *expect;
  const char *why;
} norm_case_t;

#define L63 "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij123"
#define L64 L63 "4"

static const norm_case_t norm_cases[] = {
    /* Plain names and the cosmetic differences that must vanish. */
    {"example.com", "example.com", NULL},
    {"Example.COM", "example.com", NULL},
    {"example.com.", "example.com", NULL},
    {"  example.com \t\r\n", "example.com", NULL},
    {"MAIL.Example.Co.UK.", "mail.example.co.uk", NULL},
    {"a-b.example", "a-b.example", NULL},
    {"1password.com", "1password.com", NULL},
    {"123.example", "123.example", NULL},
    {"a.b", "a.b", NULL},
    {"r3--sn-abc.example", "r3--sn-abc.example", NULL},
    {L63 ".example", L63 ".example", NULL},

    /* Internationalised names become A-labels. */
    {"bücher.example", "xn--bcher-kva.example", NULL},
    {"BÜCHER.Example.", "xn--bcher-kva.example", NULL},
    {"xn--bcher-kva.example", "xn--bcher-kva.example", NULL},
    {"XN--BCHER-KVA.EXAMPLE", "xn--bcher-kva.example", NULL},
    {"faß.de", "xn--fa-hia.de", NULL}, /* non-transitional: ß stays */
    {"例え.テスト", "xn--r8jz45g.xn--zckzah", NULL},
    {"ｅｘａｍｐｌｅ.com", "example.com", NULL}, /* UTS#46 width mapping */
    {"straße。de", "xn--strae-oqa.de", NULL},    /* ideographic full stop */
    {"bücher.example.", "xn--bcher-kva.example", NULL},

    /* Rejections. */
    {"", NULL, "empty"},
    {"   ", NULL, "empty"},
    {".", NULL, "empty"},
    {"example.com..", NULL, "empty label"},
    {"a..b", NULL, "empty label"},
    {".example.com", NULL, "empty label"},
    {L64 ".example", NULL, "label too long"},
    {"localhost", NULL, "single label"},
    {"com.", NULL, "single label"},
    {"exa mple.com", NULL, "whitespace inside name"},
    {"example.com extra", NULL, "whitespace inside name"},
    {"exa\tmple.com", NULL, "whitespace inside name"},
    {"exa\x01mple.com", NULL, "bad character"},
    {"exa\x7fmple.com", NULL, "bad character"},
    {"_dmarc.example.com", NULL, "bad character"},
    {"my_host.example", NULL, "bad character"},
    {"user@example.com", NULL, "bad character"},
    {"[192.0.2.1]", NULL, "bad character"},
    {"-example.com", NULL, "leading or trailing hyphen"},
    {"example-.com", NULL, "leading or trailing hyphen"},
    {"192.0.2.1", NULL, "IP address"},
    {"::1", NULL, "IP address"},
    {"example.123", NULL, "numeric top-level label"},
    {"😀.example", NULL, "bad IDN"},
    {"bücher\xff.example", NULL, "bad IDN"},
    {"b\xfc"
     "cher.example",
     NULL, "bad IDN"}, /* Latin-1, not UTF-8 */
    {"-bücher.example", NULL, "leading or trailing hyphen"},
    {"bücher.exa_mple", NULL, "bad character"},
};

/* A name of exactly n characters made of 50-character labels. */
static void make_long_name(char *buf, size_t n) {
  for (size_t i = 0; i < n; i++)
    buf[i] = (i % 51 == 50) ? '.' : 'a';
  buf[n] = '\0';
  if (buf[n - 1] == '.')
    buf[n - 1] = 'b';
}

static void test_normalize_table(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof norm_cases / sizeof norm_cases[0]; i++) {
    const norm_case_t *c = &norm_cases[i];
    char out[STLS_DOMAIN_MAX + 1];
    const char *why = NULL;
    int rc = stls_domain_normalize(c->in, out, sizeof out, &why);
    if (c->expect) {
      if (rc != 0 || strcmp(out, c->expect) != 0)
        fail_msg("case %zu \"%s\": want \"%s\", got rc=%d out=\"%s\" why=%s", i,
                 c->in, c->expect, rc, out, why ? why : "-");
    } else {
      if (rc != -1 || !why || strncmp(why, c->why, strlen(c->why)) != 0)
        fail_msg("case %zu \"%s\": want rejection \"%s\", got rc=%d out=\"%s\" "
                 "why=%s",
                 i, c->in, c->why, rc, out, why ? why : "-");
      assert_string_equal(out, "");
    }
  }
}

static void test_normalize_lengths(void **state) {
  char in[400], out[STLS_DOMAIN_MAX + 1];
  const char *why = NULL;
  (void)state;

  make_long_name(in, 253);
  assert_int_equal(stls_domain_normalize(in, out, sizeof out, &why), 0);
  assert_int_equal(strlen(out), 253);

  /* 253 characters plus the trailing dot of the absolute form is fine. */
  strcat(in, ".");
  assert_int_equal(stls_domain_normalize(in, out, sizeof out, &why), 0);
  assert_int_equal(strlen(out), 253);

  make_long_name(in, 254);
  assert_int_equal(stls_domain_normalize(in, out, sizeof out, &why), -1);
  assert_string_equal(why, "too long");

  /* A valid name that does not fit the caller's buffer is the caller's
   * problem and says so. */
  assert_int_equal(stls_domain_normalize("example.com", out, 5, &why), -1);
  assert_string_equal(why, "output buffer too small");
  assert_int_equal(stls_domain_normalize("example.com", out, 12, &why), 0);
  assert_string_equal(out, "example.com");

  /* NULL input and NULL why are tolerated. */
  assert_int_equal(stls_domain_normalize(NULL, out, sizeof out, NULL), -1);
  assert_int_equal(stls_domain_normalize("", out, sizeof out, NULL), -1);
}

static void test_normalize_huge_input(void **state) {
  static char in[100000];
  char out[STLS_DOMAIN_MAX + 1];
  const char *why = NULL;
  (void)state;
  memset(in, 'a', sizeof in - 1);
  in[sizeof in - 1] = '\0';
  in[10] = '.';
  assert_int_equal(stls_domain_normalize(in, out, sizeof out, &why), -1);
  assert_string_equal(why, "too long");
}

typedef struct {
  const char *line;
  int rc;
  const char *expect; /* domain for rc 1, reason prefix for rc -1 */
} line_case_t;

static const line_case_t line_cases[] = {
    {"example.com\n", 1, "example.com"},
    {"example.com\r\n", 1, "example.com"},
    {"  Example.COM.  \n", 1, "example.com"},
    {"example.com # primary domain\n", 1, "example.com"},
    {"example.com#no-space-comment", 1, "example.com"},
    {"\xEF\xBB\xBF"
     "example.com\n",
     1, "example.com"},
    {"bücher.example\n", 1, "xn--bcher-kva.example"},
    {"", 0, NULL},
    {"\n", 0, NULL},
    {"   \t \r\n", 0, NULL},
    {"# a comment\n", 0, NULL},
    {"   # indented comment\n", 0, NULL},
    {"#example.com\n", 0, NULL},
    {"\xEF\xBB\xBF\n", 0, NULL},
    {"example.com other.com\n", -1, "whitespace inside name"},
    {"not a domain # comment\n", -1, "whitespace inside name"},
    {"localhost\n", -1, "single label"},
    {"user@example.com\n", -1, "bad character"},
    {"..\n", -1, "empty label"},
    {"😀.example\n", -1, "bad IDN"},
};

static void test_target_lines(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof line_cases / sizeof line_cases[0]; i++) {
    const line_case_t *c = &line_cases[i];
    char out[STLS_DOMAIN_MAX + 1];
    const char *why = NULL;
    int rc = stls_target_line_parse(c->line, out, sizeof out, &why);
    if (rc != c->rc)
      fail_msg("line %zu \"%s\": want rc %d, got %d (why=%s)", i, c->line,
               c->rc, rc, why ? why : "-");
    if (rc == 1)
      assert_string_equal(out, c->expect);
    else if (rc == -1) {
      assert_non_null(why);
      if (strncmp(why, c->expect, strlen(c->expect)) != 0)
        fail_msg("line %zu: want reason \"%s\", got \"%s\"", i, c->expect, why);
    } else
      assert_string_equal(out, "");
  }
}

static void test_target_line_too_long(void **state) {
  static char line[5000];
  char out[STLS_DOMAIN_MAX + 1];
  const char *why = NULL;
  (void)state;
  memset(line, 'a', sizeof line - 1);
  line[sizeof line - 1] = '\0';
  assert_int_equal(stls_target_line_parse(line, out, sizeof out, &why), -1);
  assert_string_equal(why, "too long");
  assert_int_equal(stls_target_line_parse(NULL, out, sizeof out, &why), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_normalize_table),
      cmocka_unit_test(test_normalize_lengths),
      cmocka_unit_test(test_normalize_huge_input),
      cmocka_unit_test(test_target_lines),
      cmocka_unit_test(test_target_line_too_long),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
