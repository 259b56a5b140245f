/* Unit tests for change events (scanner/diff.c): one row per event type,
 * plus the cases that must stay silent. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "stls/diff.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* A host as the test tables describe it. */
typedef struct {
  int starttls;        /* 1 offered, 0 not, -1 never got that far */
  const char *version; /* NULL: no TLS */
  const char *sha;
  int trusted;
  const char *not_after;
} thost_t;

typedef struct {
  const char *scanned_at;
  const char *recommended; /* NULL: null */
  thost_t h;
} trec_t;

typedef struct {
  const char *name;
  int has_prev;
  trec_t prev, next;
  const char *want;           /* event types, space separated, in order */
  const char *before, *after; /* JSON of the first event's values */
} diff_case_t;

#define FAR "2030-01-01T00:00:00Z"
#define T0 "2026-12-01T00:00:00Z"
#define T1 "2026-12-05T00:00:00Z"
#define H(st, v, sha, tr, na)                                                  \
  { st, v, sha, tr, na }
#define OK13 H(1, "TLSv1.3", "aa", 1, FAR)

static const diff_case_t cases[] = {
    {"first-seen",
     0,
     {0},
     {T1, "verify", OK13},
     "first-seen",
     "null",
     "{\"status\":\"ok\",\"recommended\":\"verify\"}"},
    {"first-seen with no level",
     0,
     {0},
     {T1, NULL, H(0, NULL, NULL, -1, NULL)},
     "first-seen",
     "null",
     "{\"status\":\"ok\",\"recommended\":null}"},
    {"no change",
     1,
     {T0, "verify", OK13},
     {T1, "verify", OK13},
     "",
     NULL,
     NULL},
    {"starttls-lost",
     1,
     {T0, "may", H(1, NULL, NULL, -1, NULL)},
     {T1, "may", H(0, NULL, NULL, -1, NULL)},
     "starttls-lost",
     "true",
     "false"},
    {"starttls-gained",
     1,
     {T0, "may", H(0, NULL, NULL, -1, NULL)},
     {T1, "may", H(1, NULL, NULL, -1, NULL)},
     "starttls-gained",
     "false",
     "true"},
    {"unreachable host says nothing about STARTTLS",
     1,
     {T0, "may", H(1, NULL, NULL, -1, NULL)},
     {T1, "may", H(-1, NULL, NULL, -1, NULL)},
     "",
     NULL,
     NULL},
    {"tls-version-changed",
     1,
     {T0, "verify", OK13},
     {T1, "verify", H(1, "TLSv1.2", "aa", 1, FAR)},
     "tls-version-changed",
     "[\"TLSv1.3\"]",
     "[\"TLSv1.2\"]"},
    {"certificate-changed",
     1,
     {T0, "verify", OK13},
     {T1, "verify", H(1, "TLSv1.3", "bb", 1, FAR)},
     "certificate-changed",
     "\"aa\"",
     "\"bb\""},
    {"trust-changed",
     1,
     {T0, "verify", OK13},
     {T1, "verify", H(1, "TLSv1.3", "aa", 0, FAR)},
     "trust-changed",
     "true",
     "false"},
    {"recommended-changed",
     1,
     {T0, "verify", OK13},
     {T1, "may", OK13},
     "recommended-changed",
     "\"verify\"",
     "\"may\""},
    {"recommended-changed to none",
     1,
     {T0, "verify", OK13},
     {T1, NULL, OK13},
     "recommended-changed",
     "\"verify\"",
     "null"},
    {"certificate-expiring",
     1,
     {"2026-11-01T00:00:00Z", "verify",
      H(1, "TLSv1.3", "cc", 1, "2026-12-10T00:00:00Z")},
     {T1, "verify", H(1, "TLSv1.3", "cc", 1, "2026-12-10T00:00:00Z")},
     "certificate-expiring",
     "null",
     "{\"sha256\":\"cc\",\"not_after\":\"2026-12-10T00:00:00Z\"}"},
    {"certificate-expiring only once",
     1,
     {T0, "verify", H(1, "TLSv1.3", "cc", 1, "2026-12-10T00:00:00Z")},
     {T1, "verify", H(1, "TLSv1.3", "cc", 1, "2026-12-10T00:00:00Z")},
     "",
     NULL,
     NULL},
    {"new certificate already expiring",
     1,
     {T0, "verify", OK13},
     {T1, "verify", H(1, "TLSv1.3", "dd", 1, "2026-12-06T00:00:00Z")},
     "certificate-changed certificate-expiring",
     "\"aa\"",
     "\"dd\""},
    {"first-seen and expiring",
     0,
     {0},
     {T1, "verify", H(1, "TLSv1.3", "ee", 1, "2026-12-01T00:00:00Z")},
     "first-seen certificate-expiring",
     NULL,
     NULL},
};

/* The record JSON for r (one MX host, one address). */
static cJSON *build(const trec_t *r) {
  char host[1024], tls[512] = "null", st[96] = "null", buf[2048];
  const thost_t *h = &r->h;
  const char *status = h->starttls == 1
                           ? (h->version ? "success" : "handshake-error")
                       : h->starttls == 0 ? "starttls-not-supported"
                                          : "connection-timeout";
  if (h->starttls >= 0)
    snprintf(st, sizeof(st), "{\"offered\":%s,\"reply\":\"220 go\"}",
             h->starttls ? "true" : "false");
  if (h->version)
    snprintf(tls, sizeof(tls),
             "{\"version\":\"%s\",\"chain\":[{\"sha256\":\"%s\","
             "\"not_after\":\"%s\"}],\"trust\":{\"trusted\":%s}}",
             h->version, h->sha, h->not_after, h->trusted ? "true" : "false");
  snprintf(host, sizeof(host),
           "{\"mx\":\"mx.example.net\",\"ip\":\"192.0.2.1\",\"port\":25,"
           "\"status\":\"%s\",\"starttls\":%s,\"tls\":%s}",
           status, st, tls);
  snprintf(buf, sizeof(buf),
           "{\"schema\":\"starttls-scan/1\",\"domain\":\"example.net\","
           "\"scanned_at\":\"%s\",\"status\":\"ok\",\"hosts\":[%s],"
           "\"policy\":{\"recommended\":%s%s%s}}",
           r->scanned_at, host, r->recommended ? "\"" : "",
           r->recommended ? r->recommended : "null",
           r->recommended ? "\"" : "");
  return cJSON_Parse(buf);
}

static void check_value(const char *name, const cJSON *v, const char *want) {
  char *got = v ? cJSON_PrintUnformatted(v) : NULL;
  if (strcmp(got ? got : "null", want) != 0)
    fail_msg("%s: got %s, want %s", name, got ? got : "null", want);
  cJSON_free(got);
}

static void test_table(void **state) {
  (void)state;
  for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
    const diff_case_t *c = &cases[i];
    cJSON *prev = c->has_prev ? build(&c->prev) : NULL;
    cJSON *next = build(&c->next);
    stls_changes_t out = {0};
    char got[256] = "";
    assert_non_null(next);
    assert_int_equal(stls_diff_records(prev, next, &out), 0);
    for (size_t k = 0; k < out.n; k++) {
      if (k)
        strcat(got, " ");
      strcat(got, stls_change_type_name(out.v[k].type));
    }
    if (strcmp(got, c->want) != 0)
      fail_msg("%s: events '%s', want '%s'", c->name, got, c->want);
    if (out.n && c->before)
      check_value(c->name, out.v[0].before, c->before);
    if (out.n && c->after)
      check_value(c->name, out.v[0].after, c->after);
    /* Per-host events name the host; domain-level ones do not. */
    for (size_t k = 0; k < out.n; k++) {
      int per_host = out.v[k].type != STLS_CHANGE_FIRST_SEEN &&
                     out.v[k].type != STLS_CHANGE_RECOMMENDED_CHANGED;
      if (per_host) {
        assert_non_null(out.v[k].ip);
        assert_string_equal(out.v[k].ip, "192.0.2.1");
        assert_string_equal(out.v[k].mx, "mx.example.net");
      } else {
        assert_null(out.v[k].ip);
      }
    }
    stls_changes_free(&out);
    cJSON_Delete(prev);
    cJSON_Delete(next);
  }
}

/* Every type has a distinct name that parses back. */
static void test_names(void **state) {
  (void)state;
  for (int t = 0; t < STLS_CHANGE_COUNT; t++)
    assert_int_equal(stls_change_type_parse(stls_change_type_name(t)), t);
  assert_int_equal(stls_change_type_parse("no-such-event"), -1);
  assert_int_equal(stls_change_type_parse(NULL), -1);
}

static void test_time(void **state) {
  time_t t;
  (void)state;
  assert_int_equal(stls_time_parse_rfc3339("1970-01-01T00:00:00Z", &t), 0);
  assert_int_equal(t, 0);
  assert_int_equal(stls_time_parse_rfc3339("2026-11-30T04:23:02Z", &t), 0);
  assert_int_equal(t, 1796012582);
  assert_int_equal(stls_time_parse_rfc3339("2024-02-29T23:59:59Z", &t), 0);
  assert_int_equal(t, 1709251199);
  assert_int_equal(stls_time_parse_rfc3339("2026-11-30 04:23:02Z", &t), -1);
  assert_int_equal(stls_time_parse_rfc3339("2026-13-30T04:23:02Z", &t), -1);
  assert_int_equal(stls_time_parse_rfc3339("2026-11-30T04:23:02Zx", &t), -1);
  assert_int_equal(stls_time_parse_rfc3339(NULL, &t), -1);
  /* Digits only: no sign, no blank, no short field. */
  assert_int_equal(stls_time_parse_rfc3339("+026-11-30T04:23:02Z", &t), -1);
  assert_int_equal(stls_time_parse_rfc3339(" 026-11-30T04:23:02Z", &t), -1);
  assert_int_equal(stls_time_parse_rfc3339("2026-1-030T04:23:02Z", &t), -1);
  assert_int_equal(stls_time_parse_rfc3339("2026-11-30T04:23:0Z", &t), -1);
  assert_int_equal(stls_time_parse_rfc3339("2026-11-30T24:00:00Z", &t), -1);
  assert_int_equal(stls_time_parse_rfc3339("2026-11-00T04:23:02Z", &t), -1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_table),
      cmocka_unit_test(test_names),
      cmocka_unit_test(test_time),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
