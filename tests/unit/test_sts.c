/* Unit tests for the MTA-STS parsers and MX matching (scanner/sts.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stls/sts.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- policy bodies (RFC 8461 3.2) ---------------------------------------- */

typedef struct {
  const char *name;
  const char *text;
  int rc;               /* 0 valid, -1 invalid */
  stls_sts_mode_t mode; /* when valid */
  uint32_t max_age;
  const char *mx;  /* the patterns, comma-separated, when valid */
  const char *err; /* substring of the error when invalid */
} policy_case_t;

static const policy_case_t policy_cases[] = {
    /* Valid. */
    {"rfc example",
     "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\n"
     "mx: *.example.net\r\nmx: backupmx.example.com\r\nmax_age: 604800\r\n",
     0, STLS_STS_MODE_ENFORCE, 604800,
     "mail.example.com,*.example.net,backupmx.example.com", NULL},
    {"LF only",
     "version: STSv1\nmode: testing\nmx: mx.example.com\nmax_age: 86400\n", 0,
     STLS_STS_MODE_TESTING, 86400, "mx.example.com", NULL},
    {"mixed CRLF/LF, no final newline",
     "version: STSv1\r\nmode: enforce\nmx: mx.example.com\r\nmax_age: 1", 0,
     STLS_STS_MODE_ENFORCE, 1, "mx.example.com", NULL},
    {"order free",
     "max_age: 0\nmx: mx.example.com\nmode: enforce\nversion: STSv1\n", 0,
     STLS_STS_MODE_ENFORCE, 0, "mx.example.com", NULL},
    {"mode none without mx", "version: STSv1\nmode: none\nmax_age: 86400\n", 0,
     STLS_STS_MODE_NONE, 86400, "", NULL},
    {"no space after colon, trailing blanks",
     "version:STSv1\nmode:enforce  \nmx:\tmx.example.com "
     "\t\nmax_age:31557600\n",
     0, STLS_STS_MODE_ENFORCE, 31557600, "mx.example.com", NULL},
    {"unknown keys ignored",
     "version: STSv1\nmode: enforce\nfoo_bar-1.x: anything goes, even : "
     "colons\n"
     "mx: mx.example.com\nmax_age: 5\nMode: junk\n",
     0, STLS_STS_MODE_ENFORCE, 5, "mx.example.com", NULL},
    {"utf-8 in an extension value",
     "version: STSv1\nmode: enforce\nnote: caf\xc3\xa9\n"
     "mx: mx.example.com\nmax_age: 5\n",
     0, STLS_STS_MODE_ENFORCE, 5, "mx.example.com", NULL},
    {"blank lines tolerated",
     "\nversion: STSv1\n\r\n  \nmode: enforce\nmx: mx.example.com\n"
     "max_age: 5\n\n\n",
     0, STLS_STS_MODE_ENFORCE, 5, "mx.example.com", NULL},
    {"mx lower-cased, trailing dot dropped",
     "version: STSv1\nmode: enforce\nmx: MX.Example.COM.\nmx: "
     "*.Example.NET\nmax_age: 5\n",
     0, STLS_STS_MODE_ENFORCE, 5, "mx.example.com,*.example.net", NULL},
    {"leading zeros in max_age",
     "version: STSv1\nmode: enforce\nmx: a.b\nmax_age: 0000000042\n", 0,
     STLS_STS_MODE_ENFORCE, 42, "a.b", NULL},

    /* Invalid. */
    {"empty body", "", -1, 0, 0, NULL, "no version"},
    {"missing version", "mode: enforce\nmx: mx.example.com\nmax_age: 5\n", -1,
     0, 0, NULL, "no version"},
    {"wrong version",
     "version: STSv2\nmode: enforce\nmx: mx.example.com\nmax_age: 5\n", -1, 0,
     0, NULL, "not STSv1"},
    {"version is case-sensitive",
     "version: stsv1\nmode: enforce\nmx: a.b\nmax_age: 5\n", -1, 0, 0, NULL,
     "not STSv1"},
    {"version twice",
     "version: STSv1\nversion: STSv1\nmode: enforce\nmx: a.b\nmax_age: 5\n", -1,
     0, 0, NULL, "version given twice"},
    {"bad mode",
     "version: STSv1\nmode: strict\nmx: mx.example.com\nmax_age: 5\n", -1, 0, 0,
     NULL, "mode \"strict\""},
    {"mode is case-sensitive",
     "version: STSv1\nmode: Enforce\nmx: a.b\nmax_age: 5\n", -1, 0, 0, NULL,
     "mode \"Enforce\""},
    {"mode twice",
     "version: STSv1\nmode: testing\nmode: enforce\nmx: a.b\nmax_age: 5\n", -1,
     0, 0, NULL, "mode given twice"},
    {"missing mode", "version: STSv1\nmx: mx.example.com\nmax_age: 5\n", -1, 0,
     0, NULL, "no mode"},
    {"enforce without mx", "version: STSv1\nmode: enforce\nmax_age: 5\n", -1, 0,
     0, NULL, "no mx"},
    {"testing without mx", "version: STSv1\nmode: testing\nmax_age: 5\n", -1, 0,
     0, NULL, "no mx"},
    {"missing max_age", "version: STSv1\nmode: enforce\nmx: a.b\n", -1, 0, 0,
     NULL, "no max_age"},
    {"max_age out of range",
     "version: STSv1\nmode: enforce\nmx: a.b\nmax_age: 31557601\n", -1, 0, 0,
     NULL, "exceeds"},
    {"max_age 11 digits",
     "version: STSv1\nmode: enforce\nmx: a.b\nmax_age: 00000000001\n", -1, 0, 0,
     NULL, "not a number"},
    {"max_age negative",
     "version: STSv1\nmode: enforce\nmx: a.b\nmax_age: -1\n", -1, 0, 0, NULL,
     "not a number"},
    {"max_age not a number",
     "version: STSv1\nmode: enforce\nmx: a.b\nmax_age: 1w\n", -1, 0, 0, NULL,
     "not a number"},
    {"max_age twice",
     "version: STSv1\nmode: enforce\nmx: a.b\nmax_age: 1\nmax_age: 2\n", -1, 0,
     0, NULL, "max_age given twice"},
    {"junk line",
     "version: STSv1\nmode: enforce\nthis is not a field\nmx: a.b\nmax_age: "
     "5\n",
     -1, 0, 0, NULL, "line 3: not a \"key: value\""},
    {"html", "<html><body>Not found</body></html>\n", -1, 0, 0, NULL, "line 1"},
    {"space in key", "version: STSv1\nmode : enforce\nmx: a.b\nmax_age: 5\n",
     -1, 0, 0, NULL, "malformed key"},
    {"leading blank before key",
     "version: STSv1\n mode: enforce\nmx: a.b\nmax_age: 5\n", -1, 0, 0, NULL,
     "malformed key"},
    {"empty value", "version: STSv1\nmode: enforce\nmx:\nmax_age: 5\n", -1, 0,
     0, NULL, "empty value"},
    {"control byte in a value",
     "version: STSv1\nmode: enforce\nx: a\001b\nmx: a.b\nmax_age: 5\n", -1, 0,
     0, NULL, "malformed value"},
    {"bad mx",
     "version: STSv1\nmode: enforce\nmx: mx_1.example.com\nmax_age: 5\n", -1, 0,
     0, NULL, "mx \"mx_1.example.com\""},
    {"mx with inner wildcard",
     "version: STSv1\nmode: enforce\nmx: mx.*.example.com\nmax_age: 5\n", -1, 0,
     0, NULL, "is not a host name"},
    {"mx only *.", "version: STSv1\nmode: enforce\nmx: *.\nmax_age: 5\n", -1, 0,
     0, NULL, "is not a host name"},
    {"mx with two values",
     "version: STSv1\nmode: enforce\nmx: a.b c.d\nmax_age: 5\n", -1, 0, 0, NULL,
     "is not a host name"},
    {"CR alone inside a line",
     "version: STSv1\rmode: enforce\nmx: a.b\nmax_age: 5\n", -1, 0, 0, NULL,
     "malformed value"},
};

static char *join(const stls_sts_policy_t *p) {
  static char buf[512];
  buf[0] = '\0';
  for (size_t i = 0; i < p->nmx; i++) {
    if (i)
      strcat(buf, ",");
    strcat(buf, p->mx[i]);
  }
  return buf;
}

static void test_policy_table(void **state) {
  (void)state;
  for (size_t i = 0; i < ARRAY_LEN(policy_cases); i++) {
    const policy_case_t *c = &policy_cases[i];
    stls_sts_policy_t p;
    char err[200];
    int rc =
        stls_sts_policy_parse(c->text, strlen(c->text), &p, err, sizeof(err));
    if (rc != c->rc) {
      print_error("case \"%s\": rc %d, want %d (err: %s)\n", c->name, rc, c->rc,
                  err);
      fail();
    }
    if (rc == 0) {
      if (p.mode != c->mode || p.max_age != c->max_age ||
          strcmp(join(&p), c->mx) != 0) {
        print_error("case \"%s\": mode %s max_age %u mx \"%s\"\n", c->name,
                    stls_sts_mode_name(p.mode), p.max_age, join(&p));
        fail();
      }
      assert_string_equal(err, "");
      stls_sts_policy_free(&p);
    } else {
      if (!strstr(err, c->err)) {
        print_error("case \"%s\": error \"%s\" lacks \"%s\"\n", c->name, err,
                    c->err);
        fail();
      }
      /* A failed parse leaves nothing to free. */
      assert_null(p.mx);
      assert_int_equal(p.nmx, 0);
    }
  }
}

/* A body is a byte string: a NUL byte is a control character, not an end. */
static void test_policy_nul(void **state) {
  static const char text[] =
      "version: STSv1\nmode: enforce\nmx: a.b\nmax_age: 5\nx: a\0b\n";
  stls_sts_policy_t p;
  char err[200];
  (void)state;
  assert_int_equal(
      stls_sts_policy_parse(text, sizeof(text) - 1, &p, err, sizeof(err)), -1);
  assert_non_null(strstr(err, "line 5"));
  /* Without the bad line the same bytes are a valid policy. */
  assert_int_equal(stls_sts_policy_parse(text, 48, &p, err, sizeof(err)), 0);
  stls_sts_policy_free(&p);
}

/* Many mx lines (a large but legal policy) and a long line. */
static void test_policy_large(void **state) {
  size_t cap = 64 * 1024, n = 0;
  char *text = malloc(cap);
  stls_sts_policy_t p;
  char err[200];
  (void)state;
  assert_non_null(text);
  n += (size_t)snprintf(text + n, cap - n,
                        "version: STSv1\nmode: enforce\nmax_age: 86400\n");
  for (int i = 0; i < 2000; i++)
    n += (size_t)snprintf(text + n, cap - n, "mx: mx%d.example.com\n", i);
  assert_int_equal(stls_sts_policy_parse(text, n, &p, err, sizeof(err)), 0);
  assert_int_equal(p.nmx, 2000);
  assert_string_equal(p.mx[1999], "mx1999.example.com");
  assert_true(stls_sts_policy_mx_match(&p, "mx1234.example.com"));
  assert_false(stls_sts_policy_mx_match(&p, "mx2000.example.com"));
  stls_sts_policy_free(&p);

  /* One 60 000-byte extension line: fine, it is ignored. */
  n = (size_t)snprintf(text, cap,
                       "version: STSv1\nmode: none\nmax_age: 1\nx: ");
  memset(text + n, 'a', 60000);
  n += 60000;
  assert_int_equal(stls_sts_policy_parse(text, n, &p, err, sizeof(err)), 0);
  stls_sts_policy_free(&p);
  /* A 300-byte mx: not a host name. */
  n = (size_t)snprintf(text, cap,
                       "version: STSv1\nmode: enforce\nmax_age: 1\nmx: ");
  memset(text + n, 'a', 300);
  n += 300;
  assert_int_equal(stls_sts_policy_parse(text, n, &p, err, sizeof(err)), -1);
  free(text);
}

/* ---- TXT records (RFC 8461 3.1) ------------------------------------------ */

typedef struct {
  const char *name;
  const char *rec[4]; /* NULL-terminated */
  stls_sts_status_t want;
  const char *id;  /* when OK */
  size_t which;    /* when OK */
  const char *err; /* substring when TXT_INVALID */
} txt_case_t;

static const txt_case_t txt_cases[] = {
    {"rfc example",
     {"v=STSv1; id=20160831085700Z;", NULL},
     STLS_STS_OK,
     "20160831085700Z",
     0,
     NULL},
    {"no trailing separator",
     {"v=STSv1; id=abc", NULL},
     STLS_STS_OK,
     "abc",
     0,
     NULL},
    {"no spaces", {"v=STSv1;id=abc;", NULL}, STLS_STS_OK, "abc", 0, NULL},
    {"tabs and spaces around ;",
     {"v=STSv1;\t id=abc \t; ext=1 ;", NULL},
     STLS_STS_OK,
     "abc",
     0,
     NULL},
    {"extension fields",
     {"v=STSv1; foo=bar; id=X1; a.b_c-d=!\"#$%&'()*+,-./:<>?@[]^_`{|}~", NULL},
     STLS_STS_OK,
     "X1",
     0,
     NULL},
    {"32-character id",
     {"v=STSv1; id=0123456789abcdefABCDEF0123456789", NULL},
     STLS_STS_OK,
     "0123456789abcdefABCDEF0123456789",
     0,
     NULL},
    {"other records are discarded",
     {"v=spf1 -all", "v=STSv1; id=1", "hello", NULL},
     STLS_STS_OK,
     "1",
     1,
     NULL},

    {"no records", {NULL}, STLS_STS_NONE, NULL, 0, NULL},
    {"only other records",
     {"v=spf1 -all", "google-site-verification=x", NULL},
     STLS_STS_NONE,
     NULL,
     0,
     NULL},
    {"version is case-sensitive",
     {"v=stsv1; id=1", NULL},
     STLS_STS_NONE,
     NULL,
     0,
     NULL},
    {"leading space: discarded",
     {" v=STSv1; id=1", NULL},
     STLS_STS_NONE,
     NULL,
     0,
     NULL},

    {"two records",
     {"v=STSv1; id=1", "v=STSv1; id=2", NULL},
     STLS_STS_TXT_INVALID,
     NULL,
     0,
     "2 records"},
    {"two identical records",
     {"v=STSv1; id=1", "v=STSv1; id=1", NULL},
     STLS_STS_TXT_INVALID,
     NULL,
     0,
     "2 records"},
    {"v=STSv1 alone",
     {"v=STSv1", NULL},
     STLS_STS_TXT_INVALID,
     NULL,
     0,
     "not \"v=STSv1;\""},
    {"space before ;",
     {"v=STSv1 ; id=1", NULL},
     STLS_STS_TXT_INVALID,
     NULL,
     0,
     "not \"v=STSv1;\""},
    {"v=STSv10",
     {"v=STSv10; id=1", NULL},
     STLS_STS_TXT_INVALID,
     NULL,
     0,
     "not \"v=STSv1;\""},
    {"no id", {"v=STSv1;", NULL}, STLS_STS_TXT_INVALID, NULL, 0, "no field"},
    {"no id among extensions",
     {"v=STSv1; foo=bar", NULL},
     STLS_STS_TXT_INVALID,
     NULL,
     0,
     "no id= field"},
    {"empty id",
     {"v=STSv1; id=", NULL},
     STLS_STS_TXT_INVALID,
     NULL,
     0,
     "malformed value"},
    {"33-character id",
     {"v=STSv1; id=0123456789abcdefABCDEF0123456789x", NULL},
     STLS_STS_TXT_INVALID,
     NULL,
     0,
     "longer than 32"},
    {"id with a dash",
     {"v=STSv1; id=2024-01-01", NULL},
     STLS_STS_TXT_INVALID,
     NULL,
     0,
     "letters and digits"},
    {"two ids",
     {"v=STSv1; id=1; id=2", NULL},
     STLS_STS_TXT_INVALID,
     NULL,
     0,
     "more than one id"},
    {"trailing space",
     {"v=STSv1; id=1 ", NULL},
     STLS_STS_TXT_INVALID,
     NULL,
     0,
     "white space"},
    {"missing ; between fields",
     {"v=STSv1; id=1 foo=bar", NULL},
     STLS_STS_TXT_INVALID,
     NULL,
     0,
     "expected \";\""},
    {"double ;",
     {"v=STSv1;; id=1", NULL},
     STLS_STS_TXT_INVALID,
     NULL,
     0,
     "malformed field"},
    {"field without =",
     {"v=STSv1; id=1; foo", NULL},
     STLS_STS_TXT_INVALID,
     NULL,
     0,
     "malformed field"},
    {"= in a value",
     {"v=STSv1; id=1; a=b=c", NULL},
     STLS_STS_TXT_INVALID,
     NULL,
     0,
     "malformed value"},
    {"bad extension name",
     {"v=STSv1; id=1; _x=1", NULL},
     STLS_STS_TXT_INVALID,
     NULL,
     0,
     "malformed field"},
    {"valid record next to an invalid one",
     {"v=STSv1; id=1", "v=STSv1; bad", NULL},
     STLS_STS_TXT_INVALID,
     NULL,
     0,
     "2 records"},
};

static void test_txt_table(void **state) {
  (void)state;
  for (size_t i = 0; i < ARRAY_LEN(txt_cases); i++) {
    const txt_case_t *c = &txt_cases[i];
    char *recs[4];
    size_t lens[4], n = 0, which = 99;
    char id[33], err[200];
    for (; c->rec[n]; n++) {
      recs[n] = (char *)c->rec[n];
      lens[n] = strlen(c->rec[n]);
    }
    stls_sts_status_t st =
        stls_sts_txt_parse(recs, lens, n, id, &which, err, sizeof(err));
    if (st != c->want) {
      print_error("case \"%s\": %s, want %s (%s)\n", c->name,
                  stls_sts_status_name(st), stls_sts_status_name(c->want), err);
      fail();
    }
    if (st == STLS_STS_OK) {
      assert_string_equal(id, c->id);
      assert_int_equal(which, c->which);
    } else {
      assert_string_equal(id, "");
    }
    if (st == STLS_STS_TXT_INVALID && !strstr(err, c->err)) {
      print_error("case \"%s\": error \"%s\" lacks \"%s\"\n", c->name, err,
                  c->err);
      fail();
    }
    if (st == STLS_STS_NONE)
      assert_string_equal(err, "");
  }
}

/* TXT data may hold NUL bytes: lengths, not terminators, count. */
static void test_txt_nul(void **state) {
  char rec[] = "v=STSv1; id=1\0; x=y";
  char *recs[1] = {rec};
  size_t lens[1] = {sizeof(rec) - 1};
  char id[33], err[200];
  (void)state;
  assert_int_equal(
      stls_sts_txt_parse(recs, lens, 1, id, NULL, err, sizeof(err)),
      STLS_STS_TXT_INVALID);
  lens[0] = 13; /* up to the NUL */
  assert_int_equal(
      stls_sts_txt_parse(recs, lens, 1, id, NULL, err, sizeof(err)),
      STLS_STS_OK);
  assert_string_equal(id, "1");
}

/* ---- MX patterns (RFC 8461 4.1) ------------------------------------------ */

typedef struct {
  const char *pattern;
  const char *host;
  bool want;
} mx_case_t;

static const mx_case_t mx_cases[] = {
    {"mail.example.com", "mail.example.com", true},
    {"mail.example.com", "MAIL.Example.Com", true},
    {"Mail.EXAMPLE.com", "mail.example.com", true},
    {"mail.example.com.", "mail.example.com", true},
    {"mail.example.com", "mail.example.com.", true},
    {"mail.example.com", "mail2.example.com", false},
    {"mail.example.com", "example.com", false},
    {"mail.example.com", "a.mail.example.com", false},
    {"*.example.net", "mx1.example.net", true},
    {"*.example.net", "MX1.EXAMPLE.NET.", true},
    {"*.example.net.", "mx1.example.net", true},
    {"*.example.net", "example.net", false},
    {"*.example.net", "a.mx1.example.net", false},
    {"*.example.net", ".example.net", false},
    {"*.example.net", "mx1.example.org", false},
    {"*.example.net", "mx1.notexample.net", false},
    {"*.example.net", "mx1example.net", false},
    {"*.b.example", "a.b.example", true},
    {"*.b.example", "a.c.example", false},
    {"*.", "example", false},
    {"*", "example", false},
    {"mx.*.example.com", "mx.a.example.com", false},
    {"", "mx.example.com", false},
    {"mx.example.com", "", false},
    {".", ".", false},
};

static void test_mx_match(void **state) {
  (void)state;
  for (size_t i = 0; i < ARRAY_LEN(mx_cases); i++) {
    const mx_case_t *c = &mx_cases[i];
    if (stls_sts_mx_match(c->pattern, c->host) != c->want) {
      print_error("mx_match(\"%s\", \"%s\") != %d\n", c->pattern, c->host,
                  c->want);
      fail();
    }
  }
  assert_false(stls_sts_mx_match(NULL, "a.b"));
  assert_false(stls_sts_mx_match("a.b", NULL));
  assert_false(stls_sts_policy_mx_match(NULL, "a.b"));
}

/* Patterns as the parser stores them match the way the RFC example says. */
static void test_policy_mx_match(void **state) {
  static const char text[] =
      "version: STSv1\nmode: enforce\nmx: mail.example.com\n"
      "mx: *.example.net\nmx: backupmx.example.com\nmax_age: 604800\n";
  stls_sts_policy_t p;
  char err[200];
  (void)state;
  assert_int_equal(
      stls_sts_policy_parse(text, sizeof(text) - 1, &p, err, sizeof(err)), 0);
  assert_true(stls_sts_policy_mx_match(&p, "mail.example.com"));
  assert_true(stls_sts_policy_mx_match(&p, "mx1.example.net"));
  assert_true(stls_sts_policy_mx_match(&p, "backupmx.example.com"));
  assert_false(stls_sts_policy_mx_match(&p, "example.net"));
  assert_false(stls_sts_policy_mx_match(&p, "mx.mail.example.com"));
  stls_sts_policy_free(&p);
}

/* ---- media type and names ------------------------------------------------ */

static void test_content_type(void **state) {
  (void)state;
  assert_true(stls_sts_content_type_ok("text/plain"));
  assert_true(stls_sts_content_type_ok("Text/Plain"));
  assert_true(stls_sts_content_type_ok("text/plain; charset=utf-8"));
  assert_true(stls_sts_content_type_ok("  text/plain ;charset=us-ascii"));
  assert_true(stls_sts_content_type_ok("text/plain;format=flowed"));
  assert_false(stls_sts_content_type_ok("text/html"));
  assert_false(stls_sts_content_type_ok("text/plainx"));
  assert_false(stls_sts_content_type_ok("application/octet-stream"));
  assert_false(stls_sts_content_type_ok(""));
  assert_false(stls_sts_content_type_ok(NULL));
}

static void test_names(void **state) {
  (void)state;
  assert_string_equal(stls_sts_status_name(STLS_STS_OK), "ok");
  assert_string_equal(stls_sts_status_name(STLS_STS_WEBPKI_INVALID),
                      "webpki-invalid");
  assert_string_equal(stls_sts_status_name(STLS_STS_STATUS_COUNT), "unknown");
  assert_string_equal(stls_sts_status_result_type(STLS_STS_FETCH_ERROR),
                      "sts-policy-fetch-error");
  assert_string_equal(stls_sts_status_result_type(STLS_STS_INVALID),
                      "sts-policy-invalid");
  assert_string_equal(stls_sts_status_result_type(STLS_STS_WEBPKI_INVALID),
                      "sts-webpki-invalid");
  assert_null(stls_sts_status_result_type(STLS_STS_NONE));
  assert_null(stls_sts_status_result_type(STLS_STS_OK));
  assert_null(stls_sts_status_result_type(STLS_STS_STATUS_COUNT));
  assert_string_equal(stls_sts_mode_name(STLS_STS_MODE_ENFORCE), "enforce");
  assert_string_equal(stls_sts_stage_name(STLS_STS_STAGE_HTTP), "http");
  for (int s = 0; s < STLS_STS_STATUS_COUNT; s++)
    assert_string_not_equal(stls_sts_status_message((stls_sts_status_t)s),
                            "unknown");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_policy_table),
      cmocka_unit_test(test_policy_nul),
      cmocka_unit_test(test_policy_large),
      cmocka_unit_test(test_txt_table),
      cmocka_unit_test(test_txt_nul),
      cmocka_unit_test(test_mx_match),
      cmocka_unit_test(test_policy_mx_match),
      cmocka_unit_test(test_content_type),
      cmocka_unit_test(test_names),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
