/* MTA-STS discovery against the HTTPS lab (tests/lab/sts: nginx policy
 * hosts) and the lab DNS (tests/lab/dns), inside the lab namespace. Every
 * sts-* case of the zone is fetched through stls_sts_fetch on a libuv loop
 * with the lab's CA bundle as the trust store. See tests/lab/CMakeLists.txt. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "stls/sts.h"
#include "stls/util.h"

#define LAB_DNS "127.0.53.53"
/* A socket here accepts TCP connections (backlog) but never answers. */
#define SILENT_IP "127.0.44.3"

static char ca_file[512];
static char lab_dir[400];
/* Under valgrind everything is ~50x slower: give the whole fetch longer. */
static unsigned slow = 1;

typedef struct {
  uv_loop_t loop;
  stls_dns_t *dns;
  stls_tls_ctx_t *tls;
  stls_sts_t *sts;
} fixture_t;

typedef struct {
  stls_sts_result_t *res;
  int calls;
  bool returned; /* stls_sts_fetch had returned when cb ran */
  bool *returned_flag;
  fixture_t *close_fx; /* close the STS object from inside the callback */
} slot_t;

static void done_cb(stls_sts_result_t *res, void *arg) {
  slot_t *s = arg;
  s->calls++;
  if (s->returned_flag)
    s->returned = *s->returned_flag;
  if (s->res)
    stls_sts_result_free(s->res); /* a second call is a bug the count shows */
  s->res = res;
  if (s->close_fx && s->close_fx->sts) {
    stls_sts_close(s->close_fx->sts);
    s->close_fx->sts = NULL;
  }
}

static void fixture_open(fixture_t *f, const char *trust,
                         const stls_sts_limits_t *lim) {
  stls_dns_opts_t o = {LAB_DNS, 1000, 2, 0};
  char err[256];
  memset(f, 0, sizeof(*f));
  assert_int_equal(uv_loop_init(&f->loop), 0);
  assert_int_equal(stls_dns_init(&f->dns, &f->loop, &o), 0);
  if (stls_tls_ctx_init(&f->tls, trust, err, sizeof(err)) != 0)
    fail_msg("TLS context: %s", err);
  assert_int_equal(stls_sts_init(&f->sts, &f->loop, f->dns, f->tls, lim), 0);
}

static void fixture_close(fixture_t *f) {
  if (f->sts)
    stls_sts_close(f->sts);
  f->sts = NULL;
  stls_dns_close(f->dns);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&f->loop), 0);
  stls_tls_ctx_free(f->tls);
}

static stls_sts_limits_t limits(unsigned timeout_ms, unsigned connect_ms) {
  stls_sts_limits_t l;
  memset(&l, 0, sizeof(l));
  l.timeout_ms = timeout_ms * slow;
  l.connect_timeout_ms = connect_ms * slow;
  return l;
}

/* Fetch one domain and run the loop until it is done. */
static stls_sts_result_t *fetch_one(fixture_t *f, const char *domain) {
  slot_t s;
  bool returned = false;
  memset(&s, 0, sizeof(s));
  s.returned_flag = &returned;
  assert_int_equal(stls_sts_fetch(f->sts, domain, done_cb, &s), 0);
  returned = true;
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(s.calls, 1);
  assert_true(s.returned);
  return s.res;
}

/* ---- the zone's cases, all at once on one loop --------------------------- */

typedef struct {
  const char *domain;
  stls_sts_status_t status;
  const char *result_type; /* RFC 8460, NULL for none */
  const char *code;        /* error code, "" for none */
  stls_sts_stage_t stage;
  int http_status;         /* -1: not checked */
  stls_sts_mode_t mode;    /* when OK */
  const char *id;          /* NULL: not checked */
  bool mx_good_matches;    /* the policy covers mx-good.lab.test (when OK) */
  const char *tls_version; /* NULL: not checked */
} lab_case_t;

#define NOERR "", STLS_STS_STAGE_NONE
static const lab_case_t lab_cases[] = {
    /* Valid policies. */
    {"sts-enforce.lab.test", STLS_STS_OK, NULL, NOERR, 200,
     STLS_STS_MODE_ENFORCE, "20240101T000000Z", true, "TLSv1.3"},
    {"sts-nomatch.lab.test", STLS_STS_OK, NULL, NOERR, 200,
     STLS_STS_MODE_ENFORCE, "nomatch1", false, NULL},
    {"sts-testing.lab.test", STLS_STS_OK, NULL, NOERR, 200,
     STLS_STS_MODE_TESTING, "testing1", true, NULL},
    {"sts-modenone.lab.test", STLS_STS_OK, NULL, NOERR, 200, STLS_STS_MODE_NONE,
     "none1", false, NULL},
    {"sts-split.lab.test", STLS_STS_OK, NULL, NOERR, 200, STLS_STS_MODE_ENFORCE,
     "split1", true, NULL},
    {"sts-chunked.lab.test", STLS_STS_OK, NULL, NOERR, 200,
     STLS_STS_MODE_ENFORCE, "chunked1", true, NULL},
    {"sts-tls12.lab.test", STLS_STS_OK, NULL, NOERR, 200, STLS_STS_MODE_ENFORCE,
     "tls12", true, "TLSv1.2"},
    {"sts-v6.lab.test", STLS_STS_OK, NULL, NOERR, 200, STLS_STS_MODE_ENFORCE,
     "v6", true, NULL},
    {"sts-multi.lab.test", STLS_STS_OK, NULL, NOERR, 200, STLS_STS_MODE_ENFORCE,
     "multi", true, NULL},
    /* Fetch errors. */
    {"sts-refused.lab.test", STLS_STS_FETCH_ERROR, "sts-policy-fetch-error",
     "ECONNREFUSED", STLS_STS_STAGE_CONNECT, 0, 0, "refused", false, NULL},
    {"sts-timeout.lab.test", STLS_STS_FETCH_ERROR, "sts-policy-fetch-error",
     "ETIMEDOUT", STLS_STS_STAGE_CONNECT, 0, 0, "timeout", false, NULL},
    {"sts-noaddr.lab.test", STLS_STS_FETCH_ERROR, "sts-policy-fetch-error",
     "EAI_NONAME", STLS_STS_STAGE_RESOLVE, 0, 0, "noaddr", false, NULL},
    {"sts-404.lab.test", STLS_STS_FETCH_ERROR, "sts-policy-fetch-error",
     "HTTP_404", STLS_STS_STAGE_HTTP, 404, 0, "notfound", false, NULL},
    {"sts-redirect.lab.test", STLS_STS_FETCH_ERROR, "sts-policy-fetch-error",
     "HTTP_301", STLS_STS_STAGE_HTTP, 301, 0, "redirect", false, NULL},
    {"sts-oversize.lab.test", STLS_STS_FETCH_ERROR, "sts-policy-fetch-error",
     "BODY_TOO_LARGE", STLS_STS_STAGE_HTTP, 200, 0, "oversize", false, NULL},
    {"sts-bigchunked.lab.test", STLS_STS_FETCH_ERROR, "sts-policy-fetch-error",
     "BODY_TOO_LARGE", STLS_STS_STAGE_HTTP, 200, 0, "bigchunked", false, NULL},
    /* Invalid policies. */
    {"sts-badsyntax.lab.test", STLS_STS_INVALID, "sts-policy-invalid",
     "POLICY_SYNTAX", STLS_STS_STAGE_POLICY, 200, 0, "badsyntax", false, NULL},
    {"sts-html.lab.test", STLS_STS_INVALID, "sts-policy-invalid",
     "BAD_CONTENT_TYPE", STLS_STS_STAGE_HTTP, 200, 0, "html", false, NULL},
    /* Certificates not valid for the policy host. */
    {"sts-untrusted.lab.test", STLS_STS_WEBPKI_INVALID, "sts-webpki-invalid",
     "CERT_UNTRUSTED", STLS_STS_STAGE_TLS, 0, 0, "untrusted", false, NULL},
    {"sts-wrongname.lab.test", STLS_STS_WEBPKI_INVALID, "sts-webpki-invalid",
     "CERT_NAME_MISMATCH", STLS_STS_STAGE_TLS, 0, 0, "wrongname", false, NULL},
    {"sts-expired.lab.test", STLS_STS_WEBPKI_INVALID, "sts-webpki-invalid",
     "CERT_EXPIRED", STLS_STS_STAGE_TLS, 0, 0, "expired", false, NULL},
    /* No usable TXT record: MTA-STS does not apply. */
    {"sts-none.lab.test", STLS_STS_NONE, NULL, NOERR, 0, 0, "", false, NULL},
    {"good.lab.test", STLS_STS_NONE, NULL, NOERR, 0, 0, "", false, NULL},
    {"nonexistent.lab.test", STLS_STS_NONE, NULL, NOERR, 0, 0, "", false, NULL},
    {"sts-twotxt.lab.test", STLS_STS_TXT_INVALID, NULL, "TXT_INVALID",
     STLS_STS_STAGE_TXT, 0, 0, "", false, NULL},
    {"sts-badtxt.lab.test", STLS_STS_TXT_INVALID, NULL, "TXT_INVALID",
     STLS_STS_STAGE_TXT, 0, 0, "", false, NULL},
    {"x.servfail.test", STLS_STS_DNS_ERROR, NULL, "SERVFAIL",
     STLS_STS_STAGE_TXT, 0, 0, "", false, NULL},
};
#define NCASES (sizeof(lab_cases) / sizeof(lab_cases[0]))

static void check_case(const lab_case_t *c, const stls_sts_result_t *r) {
  const char *rt = stls_sts_status_result_type(r->status);
  if (r->status != c->status || strcmp(r->error.code, c->code) != 0 ||
      r->error.stage != c->stage) {
    fail_msg("%s: %s %s at %s (%s), want %s %s at %s", c->domain,
             stls_sts_status_name(r->status), r->error.code,
             stls_sts_stage_name(r->error.stage), r->error.message,
             stls_sts_status_name(c->status), c->code,
             stls_sts_stage_name(c->stage));
  }
  if ((rt == NULL) != (c->result_type == NULL) ||
      (rt && strcmp(rt, c->result_type) != 0))
    fail_msg("%s: result type %s, want %s", c->domain, rt ? rt : "(none)",
             c->result_type ? c->result_type : "(none)");
  assert_string_equal(r->domain, c->domain);
  if (c->http_status >= 0 && r->http_status != c->http_status)
    fail_msg("%s: HTTP status %d, want %d", c->domain, r->http_status,
             c->http_status);
  if (c->id && strcmp(r->id, c->id) != 0)
    fail_msg("%s: id \"%s\", want \"%s\"", c->domain, r->id, c->id);
  /* The TXT record is kept whenever one record was chosen. */
  if (c->id && c->id[0])
    assert_non_null(r->txt);
  if (c->tls_version && strcmp(r->tls_version, c->tls_version) != 0)
    fail_msg("%s: %s, want %s", c->domain, r->tls_version, c->tls_version);
  if (c->code[0])
    assert_true(r->error.message[0] != '\0');
  else
    assert_string_equal(r->error.message, "");
  assert_true(r->timing.total >= 0);
  assert_true(r->timing.txt >= 0);

  if (r->status == STLS_STS_OK) {
    if (r->policy.mode != c->mode)
      fail_msg("%s: mode %s, want %s", c->domain,
               stls_sts_mode_name(r->policy.mode), stls_sts_mode_name(c->mode));
    if (stls_sts_policy_mx_match(&r->policy, "mx-good.lab.test") !=
        c->mx_good_matches)
      fail_msg("%s: mx-good.lab.test %s the policy", c->domain,
               c->mx_good_matches ? "does not match" : "matches");
    assert_true(r->tls_trusted);
    assert_true(r->tls_name_ok);
    assert_true(r->policy.max_age > 0);
    assert_true(r->body_len > 0);
    assert_true(r->timing.resolve >= 0 && r->timing.connect >= 0 &&
                r->timing.tls >= 0 && r->timing.http >= 0);
    assert_true(stls_sts_content_type_ok(r->content_type));
  } else {
    assert_null(r->policy.mx);
    assert_int_equal(r->policy.nmx, 0);
  }
  if (r->status == STLS_STS_NONE || r->status == STLS_STS_TXT_INVALID ||
      r->status == STLS_STS_DNS_ERROR) {
    /* The HTTPS part never started. */
    assert_int_equal(r->timing.resolve, -1);
    assert_string_equal(r->ip, "");
  }
}

static void test_cases(void **state) {
  fixture_t f;
  stls_sts_limits_t lim = limits(10000, 700);
  slot_t slots[NCASES];
  bool returned = false;
  (void)state;

  fixture_open(&f, ca_file, &lim);
  memset(slots, 0, sizeof(slots));
  for (size_t i = 0; i < NCASES; i++) {
    slots[i].returned_flag = &returned;
    if (stls_sts_fetch(f.sts, lab_cases[i].domain, done_cb, &slots[i]) != 0)
      fail_msg("stls_sts_fetch(%s) failed", lab_cases[i].domain);
  }
  returned = true;
  uv_run(&f.loop, UV_RUN_DEFAULT);
  for (size_t i = 0; i < NCASES; i++) {
    assert_int_equal(slots[i].calls, 1);
    assert_true(slots[i].returned);
    check_case(&lab_cases[i], slots[i].res);
  }

  /* A few facts beyond the table. */
  for (size_t i = 0; i < NCASES; i++) {
    const char *d = lab_cases[i].domain;
    const stls_sts_result_t *r = slots[i].res;
    if (strcmp(d, "sts-enforce.lab.test") == 0) {
      assert_int_equal(r->policy.nmx, 2);
      assert_string_equal(r->policy.mx[0], "mx-good.lab.test");
      assert_string_equal(r->policy.mx[1], "*.mx.lab.test");
      assert_int_equal(r->policy.max_age, 86400);
      assert_string_equal(r->txt, "v=STSv1; id=20240101T000000Z;");
      assert_string_equal(r->ip, "127.0.44.1");
      assert_true(stls_sts_policy_mx_match(&r->policy, "a.mx.lab.test"));
      assert_false(stls_sts_policy_mx_match(&r->policy, "a.b.mx.lab.test"));
    } else if (strcmp(d, "sts-split.lab.test") == 0) {
      assert_string_equal(r->txt, "v=STSv1; id=split1");
    } else if (strcmp(d, "sts-v6.lab.test") == 0) {
      assert_string_equal(r->ip, "::1");
    } else if (strcmp(d, "sts-multi.lab.test") == 0) {
      assert_string_equal(r->ip, "127.0.44.1"); /* whichever came first */
    } else if (strcmp(d, "sts-testing.lab.test") == 0) {
      assert_int_equal(r->policy.max_age, 604800);
    } else if (strcmp(d, "sts-redirect.lab.test") == 0) {
      assert_string_equal(
          r->location,
          "https://mta-sts.sts-enforce.lab.test/.well-known/mta-sts.txt");
    } else if (strcmp(d, "sts-untrusted.lab.test") == 0) {
      assert_false(r->tls_trusted);
      assert_true(r->tls_trust_reasons & STLS_TRUST_REASON(UNTRUSTED_ISSUER));
      assert_true(r->tls_name_ok);
    } else if (strcmp(d, "sts-wrongname.lab.test") == 0) {
      assert_true(r->tls_trusted);
      assert_false(r->tls_name_ok);
    } else if (strcmp(d, "sts-expired.lab.test") == 0) {
      assert_true(r->tls_trust_reasons & STLS_TRUST_REASON(EXPIRED));
    } else if (strcmp(d, "sts-html.lab.test") == 0) {
      assert_string_equal(r->content_type, "text/html");
    } else if (strcmp(d, "sts-badsyntax.lab.test") == 0) {
      assert_non_null(strstr(r->error.message, "strict"));
    } else if (strcmp(d, "sts-twotxt.lab.test") == 0) {
      assert_null(r->txt);
      assert_non_null(strstr(r->error.message, "2 records"));
    } else if (strcmp(d, "sts-badtxt.lab.test") == 0) {
      assert_string_equal(r->txt, "v=STSv1; id=not-alnum!");
    }
  }
  for (size_t i = 0; i < NCASES; i++)
    stls_sts_result_free(slots[i].res);
  fixture_close(&f);
}

/* ---- limits ---------------------------------------------------------------
 */

/* A server that completes the TCP handshake (the kernel does, from the
 * listen backlog) and then says nothing: only the overall deadline ends it. */
static void test_silent_server(void **state) {
  fixture_t f;
  stls_sts_limits_t lim = limits(800, 0);
  struct sockaddr_in sin;
  int fd, one = 1;
  (void)state;

  fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  memset(&sin, 0, sizeof(sin));
  sin.sin_family = AF_INET;
  sin.sin_port = htons(443);
  assert_int_equal(inet_pton(AF_INET, SILENT_IP, &sin.sin_addr), 1);
  assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
  assert_int_equal(listen(fd, 8), 0);

  fixture_open(&f, ca_file, &lim);
  int64_t t0 = stls_now_ms();
  stls_sts_result_t *r = fetch_one(&f, "sts-silent.lab.test");
  int64_t took = stls_now_ms() - t0;
  assert_int_equal(r->status, STLS_STS_FETCH_ERROR);
  assert_string_equal(r->error.code, "ETIMEDOUT");
  assert_int_equal(r->error.stage, STLS_STS_STAGE_TLS);
  assert_string_equal(r->ip, SILENT_IP);
  assert_true(r->timing.connect >= 0);
  assert_int_equal(r->timing.tls, -1);
  assert_true(took >= 700 && took < 5000 * (int64_t)slow);
  stls_sts_result_free(r);
  fixture_close(&f);
  close(fd);
}

/* The overall deadline also cuts a connect short. */
static void test_deadline_during_connect(void **state) {
  fixture_t f;
  stls_sts_limits_t lim = limits(300, 5000);
  (void)state;
  fixture_open(&f, ca_file, &lim);
  stls_sts_result_t *r = fetch_one(&f, "sts-timeout.lab.test");
  assert_int_equal(r->status, STLS_STS_FETCH_ERROR);
  assert_string_equal(r->error.code, "ETIMEDOUT");
  assert_int_equal(r->error.stage, STLS_STS_STAGE_CONNECT);
  assert_non_null(
      strstr(r->error.message, "no policy from mta-sts.sts-timeout.lab.test"));
  stls_sts_result_free(r);
  fixture_close(&f);
}

/* The deadline also covers the address lookup. The resolver here may have
 * one query on the wire at a time; a lookup that is never answered
 * (slow.test drops queries) is queued right behind the TXT lookup, so the
 * policy host's address lookup waits behind it, and the result must come
 * at the deadline, not when the resolver gives up. */
static void blocker_cb(stls_dns_txt_result_t *r, void *arg) {
  (*(int *)arg)++;
  stls_dns_txt_result_free(r);
}

static void test_deadline_during_resolve(void **state) {
  fixture_t f;
  stls_sts_limits_t lim = limits(300, 0);
  stls_dns_opts_t o = {LAB_DNS, 1000 * slow, 2, 1};
  char err[256];
  int blocker_calls = 0;
  slot_t s;
  (void)state;
  memset(&s, 0, sizeof(s));
  memset(&f, 0, sizeof(f));
  assert_int_equal(uv_loop_init(&f.loop), 0);
  assert_int_equal(stls_dns_init(&f.dns, &f.loop, &o), 0);
  if (stls_tls_ctx_init(&f.tls, ca_file, err, sizeof(err)) != 0)
    fail_msg("TLS context: %s", err);
  assert_int_equal(stls_sts_init(&f.sts, &f.loop, f.dns, f.tls, &lim), 0);
  assert_int_equal(stls_sts_fetch(f.sts, "sts-enforce.lab.test", done_cb, &s),
                   0);
  assert_int_equal(
      stls_dns_lookup_txt(f.dns, "x.slow.test", blocker_cb, &blocker_calls), 0);
  while (s.calls == 0 && uv_run(&f.loop, UV_RUN_ONCE) != 0)
    ;
  assert_int_equal(s.calls, 1);
  assert_int_equal(blocker_calls,
                   0); /* the lookup it waited behind still runs */
  assert_int_equal(s.res->status, STLS_STS_FETCH_ERROR);
  assert_string_equal(s.res->error.code, "ETIMEDOUT");
  assert_int_equal(s.res->error.stage, STLS_STS_STAGE_RESOLVE);
  assert_true(s.res->timing.total < 1400 * (int64_t)slow);
  stls_sts_result_free(s.res);
  fixture_close(&f); /* the blocker completes (cancelled) in the close */
  assert_int_equal(blocker_calls, 1);
}

/* The private-address guard: a policy host on 127.0.0.0/8 is never
 * connected to (the listener here sees nothing), and the fetch fails with
 * ADDRESS_NOT_ALLOWED; without the guard the same host is connected to. */
static void test_guard(void **state) {
  stls_sts_limits_t lim = limits(800, 0);
  struct sockaddr_in sin;
  int fd, one = 1;
  (void)state;

  fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  assert_true(fd >= 0);
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  memset(&sin, 0, sizeof(sin));
  sin.sin_family = AF_INET;
  sin.sin_port = htons(443);
  assert_int_equal(inet_pton(AF_INET, SILENT_IP, &sin.sin_addr), 1);
  assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
  assert_int_equal(listen(fd, 8), 0);

  for (int guard = 1; guard >= 0; guard--) {
    fixture_t f;
    int c;
    lim.guard_private = guard;
    fixture_open(&f, ca_file, &lim);
    stls_sts_result_t *r = fetch_one(&f, "sts-silent.lab.test");
    assert_int_equal(r->status, STLS_STS_FETCH_ERROR);
    assert_string_equal(r->ip, SILENT_IP);
    c = accept(fd, NULL, NULL);
    if (guard) {
      assert_string_equal(r->error.code, "ADDRESS_NOT_ALLOWED");
      assert_int_equal(r->error.stage, STLS_STS_STAGE_CONNECT);
      assert_non_null(strstr(r->error.message, "loopback"));
      assert_int_equal(r->timing.connect, -1);
      assert_true(c < 0); /* nothing knocked */
    } else {
      assert_string_equal(r->error.code, "ETIMEDOUT");
      assert_true(c >= 0);
      close(c);
    }
    stls_sts_result_free(r);
    fixture_close(&f);
  }
  close(fd);
}

static void test_body_limit(void **state) {
  fixture_t f;
  stls_sts_limits_t lim = limits(10000, 0);
  (void)state;
  lim.max_body = 40; /* smaller than the 88-byte enforce policy */
  fixture_open(&f, ca_file, &lim);
  stls_sts_result_t *r = fetch_one(&f, "sts-enforce.lab.test");
  assert_int_equal(r->status, STLS_STS_FETCH_ERROR);
  assert_string_equal(r->error.code, "BODY_TOO_LARGE");
  stls_sts_result_free(r);
  /* Without a Content-Length the cap applies while the body streams in. */
  r = fetch_one(&f, "sts-chunked.lab.test");
  assert_int_equal(r->status, STLS_STS_FETCH_ERROR);
  assert_string_equal(r->error.code, "BODY_TOO_LARGE");
  assert_true(r->body_len <= 40);
  stls_sts_result_free(r);
  fixture_close(&f);
}

static void test_lax_content_type(void **state) {
  fixture_t f;
  stls_sts_limits_t lim = limits(10000, 0);
  (void)state;
  lim.lax_content_type = true;
  fixture_open(&f, ca_file, &lim);
  stls_sts_result_t *r = fetch_one(&f, "sts-html.lab.test");
  assert_int_equal(r->status, STLS_STS_OK);
  assert_int_equal(r->policy.mode, STLS_STS_MODE_ENFORCE);
  assert_string_equal(r->content_type, "text/html");
  stls_sts_result_free(r);
  fixture_close(&f);
}

/* The WebPKI check uses the context's trust store: with a store that
 * lacks the lab root, a good policy host is untrusted. */
static void test_other_trust_store(void **state) {
  fixture_t f;
  stls_sts_limits_t lim = limits(10000, 0);
  char other[512];
  (void)state;
  snprintf(other, sizeof(other), "%s/pki/wrong.pem", lab_dir);
  fixture_open(&f, other, &lim);
  stls_sts_result_t *r = fetch_one(&f, "sts-enforce.lab.test");
  assert_int_equal(r->status, STLS_STS_WEBPKI_INVALID);
  assert_string_equal(r->error.code, "CERT_UNTRUSTED");
  assert_true(r->tls_name_ok);
  assert_int_equal(r->http_status, 0); /* no request was sent */
  stls_sts_result_free(r);
  fixture_close(&f);
}

/* ---- lifecycle ------------------------------------------------------------
 */

static void test_bad_args(void **state) {
  fixture_t f;
  slot_t s, inflight;
  stls_sts_t *other = (stls_sts_t *)&other;
  char longname[260];
  (void)state;
  memset(&s, 0, sizeof(s));
  memset(&inflight, 0, sizeof(inflight));
  fixture_open(&f, ca_file, NULL);
  assert_int_equal(stls_sts_fetch(f.sts, "", done_cb, &s), UV_EINVAL);
  assert_int_equal(stls_sts_fetch(f.sts, "bad domain.test", done_cb, &s),
                   UV_EINVAL);
  assert_int_equal(stls_sts_fetch(f.sts, "a..b", done_cb, &s), UV_EINVAL);
  assert_int_equal(stls_sts_fetch(f.sts, "192.0.2.1", done_cb, &s), UV_EINVAL);
  assert_int_equal(stls_sts_fetch(f.sts, NULL, done_cb, &s), UV_EINVAL);
  assert_int_equal(stls_sts_fetch(f.sts, "x.test", NULL, &s), UV_EINVAL);
  /* A valid 248-byte name, too long once "_mta-sts." is put in front. */
  memset(longname, 'a', sizeof(longname));
  for (size_t i = 60; i < 248; i += 61)
    longname[i] = '.';
  longname[248] = '\0';
  assert_int_equal(stls_sts_fetch(f.sts, longname, done_cb, &s), UV_EINVAL);
  assert_int_equal(stls_sts_init(&other, NULL, f.dns, f.tls, NULL), UV_EINVAL);
  assert_null(other);
  /* Once closed (the object lives on while a fetch is in flight), new
   * fetches are refused. */
  assert_int_equal(
      stls_sts_fetch(f.sts, "sts-none.lab.test", done_cb, &inflight), 0);
  stls_sts_close(f.sts);
  assert_int_equal(stls_sts_fetch(f.sts, "x.test", done_cb, &s), UV_ECANCELED);
  f.sts = NULL;
  fixture_close(&f);
  assert_int_equal(s.calls, 0);
  assert_int_equal(inflight.calls, 1);
  stls_sts_result_free(inflight.res);
}

/* Closing with fetches in flight: each completes once, cancelled. */
static void stop_timer_cb(uv_timer_t *t) {
  fixture_t *f = t->data;
  stls_sts_close(f->sts);
  f->sts = NULL;
  uv_close((uv_handle_t *)t, NULL);
}

static void test_close_in_flight(void **state) {
  fixture_t f;
  stls_sts_limits_t lim = limits(10000, 5000);
  slot_t a, b, c;
  uv_timer_t t;
  (void)state;
  memset(&a, 0, sizeof(a));
  memset(&b, 0, sizeof(b));
  memset(&c, 0, sizeof(c));
  fixture_open(&f, ca_file, &lim);
  /* Closed before the loop runs: still in the TXT step. */
  assert_int_equal(stls_sts_fetch(f.sts, "sts-enforce.lab.test", done_cb, &a),
                   0);
  stls_sts_close(f.sts);
  f.sts = NULL;
  uv_run(&f.loop, UV_RUN_DEFAULT);
  assert_int_equal(a.calls, 1);
  assert_int_equal(a.res->status, STLS_STS_DNS_ERROR);
  assert_string_equal(a.res->error.code, "ECANCELED");
  stls_sts_result_free(a.res);

  /* Closed while connecting to a black hole, and while done fetches are
   * already delivered. */
  assert_int_equal(stls_sts_init(&f.sts, &f.loop, f.dns, f.tls, &lim), 0);
  assert_int_equal(stls_sts_fetch(f.sts, "sts-timeout.lab.test", done_cb, &b),
                   0);
  assert_int_equal(stls_sts_fetch(f.sts, "sts-none.lab.test", done_cb, &c), 0);
  uv_timer_init(&f.loop, &t);
  t.data = &f;
  uv_timer_start(&t, stop_timer_cb, 300 * slow, 0);
  uv_run(&f.loop, UV_RUN_DEFAULT);
  assert_int_equal(b.calls, 1);
  assert_int_equal(b.res->status, STLS_STS_FETCH_ERROR);
  assert_string_equal(b.res->error.code, "ECANCELED");
  assert_int_equal(b.res->error.stage, STLS_STS_STAGE_CONNECT);
  assert_int_equal(c.calls, 1);
  assert_int_equal(c.res->status, STLS_STS_NONE);
  stls_sts_result_free(b.res);
  stls_sts_result_free(c.res);
  fixture_close(&f);
}

/* Closing the object from inside a completion callback. */
static void test_close_from_callback(void **state) {
  fixture_t f;
  stls_sts_limits_t lim = limits(10000, 5000);
  slot_t a, b;
  (void)state;
  memset(&a, 0, sizeof(a));
  memset(&b, 0, sizeof(b));
  fixture_open(&f, ca_file, &lim);
  a.close_fx = &f;
  assert_int_equal(stls_sts_fetch(f.sts, "sts-none.lab.test", done_cb, &a), 0);
  assert_int_equal(stls_sts_fetch(f.sts, "sts-timeout.lab.test", done_cb, &b),
                   0);
  uv_run(&f.loop, UV_RUN_DEFAULT);
  assert_int_equal(a.calls, 1);
  assert_int_equal(a.res->status, STLS_STS_NONE);
  assert_int_equal(b.calls, 1);
  assert_string_equal(b.res->error.code, "ECANCELED");
  assert_null(f.sts);
  stls_sts_result_free(a.res);
  stls_sts_result_free(b.res);
  fixture_close(&f);
}

int main(void) {
  const char *dir = getenv("STLS_STS_LAB");
  if (getenv("STLS_IN_NETNS") == NULL || dir == NULL) {
    fprintf(stderr,
            "test_sts_lab: run me through tests/lab/netns-run.sh and "
            "tests/lab/sts/run-with-sts.sh (see tests/lab/CMakeLists.txt)\n");
    return 1;
  }
  snprintf(lab_dir, sizeof(lab_dir), "%s", dir);
  snprintf(ca_file, sizeof(ca_file), "%s/ca-bundle.pem", dir);
  if (getenv("STLS_STS_LAB_SLOW"))
    slow = 10;

  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_cases),
      cmocka_unit_test(test_silent_server),
      cmocka_unit_test(test_deadline_during_connect),
      cmocka_unit_test(test_deadline_during_resolve),
      cmocka_unit_test(test_guard),
      cmocka_unit_test(test_body_limit),
      cmocka_unit_test(test_lax_content_type),
      cmocka_unit_test(test_other_trust_store),
      cmocka_unit_test(test_bad_args),
      cmocka_unit_test(test_close_in_flight),
      cmocka_unit_test(test_close_from_callback),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  uv_library_shutdown(); /* join libuv's thread pool, if any, for valgrind */
  return rc;
}
