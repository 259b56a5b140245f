/* Unit tests for the policy verdicts (scanner/policy.c).
 *
 * Each scenario is a recipient domain with hand-made probe results (no
 * network): MX hosts, their preferences and what each address did. The
 * expected verdicts are what Postfix 3.7's SMTP client does with its
 * default settings; where that is not obvious, the comment says which
 * Postfix source or postconf(5) text decides it. Several of these were
 * checked against real Postfix delivery in the lab
 * (tests/lab/test_policy_postfix.py).
 */
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
#include "stls/policy.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define MAX_HOSTS 10

/* What one address did, as the probe would have recorded it. */
typedef enum {
  H_NONE = 0,  /* end of the host list */
  H_GOOD,      /* STARTTLS, trusted chain */
  H_NOTLS,     /* EHLO without STARTTLS */
  H_REJECTED,  /* STARTTLS answered 454 */
  H_HANDSHAKE, /* STARTTLS accepted, handshake failed */
  H_UNTRUSTED, /* chain from an unknown issuer */
  H_EXPIRED,   /* leaf past notAfter */
  H_REFUSED,   /* connection refused: no session */
  H_TIMEOUT,   /* connect timeout: no session */
  H_GREETING,  /* 421 greeting: no session */
  H_SKIPPED,   /* not probed (no IPv6 route) */
  H_BIGCERT    /* handshake failed: certificate message too large for us */
} host_kind_t;

typedef struct {
  const char *mx;
  const char *ip;
  unsigned pref;
  host_kind_t kind;
  /* Leaf dNSName SANs, comma-separated; NULL means the MX name itself. */
  const char *san;
  stls_dane_state_t dane;
  bool dane_match;
  bool sts_mx_match;
} host_spec_t;

/* One expected verdict; unset entries are not checked. all_hosts is
 * checked for passing verdicts only: for a failing one it says nothing
 * about delivery. */
typedef struct {
  bool set;
  bool pass;
  int all_hosts;           /* 0, 1, or ANY */
  const char *result_type; /* NULL: must be NULL */
  const char *failing;     /* comma-joined "mx[ip]" list; NULL: not checked */
} want_t;

#define ANY 2
#define PASS_ALL                                                               \
  { true, true, 1, NULL, "" }
#define PASS_PART(rt, f)                                                       \
  { true, true, 0, rt, f }
#define FAIL(rt)                                                               \
  { true, false, ANY, rt, NULL }
#define FAIL_ON(rt, f)                                                         \
  { true, false, ANY, rt, f }
/* recommended: not checked */
#define NO_CHECK (-2)

typedef struct {
  const char *name;
  const char *domain;
  host_spec_t hosts[MAX_HOSTS];
  bool mx_secure;
  stls_policy_sts_t sts;
  stls_sts_mode_t sts_mode;
  const char *sts_result_type;
  const char *secure_match; /* NULL: Postfix's default */
  want_t want[STLS_LEVEL_COUNT];
  int recommended;    /* a level or -1 */
  size_t unreachable; /* entries in the unreachable list */
} scenario_t;

/* ---- building the inputs ----------------------------------------------- */

static void add_leaf(stls_host_result_t *r, const char *mx, const char *san) {
  stls_cert_t *leaf = calloc(1, sizeof(*leaf));
  char buf[256];
  assert_non_null(leaf);
  r->tls.chain = leaf;
  r->tls.n_chain = 1;
  snprintf(buf, sizeof(buf), "%s", san ? san : mx);
  for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ","))
    assert_int_equal(stls_strlist_push(&leaf->san_dns, tok), 0);
}

static void build_host(stls_host_result_t *r, const host_spec_t *h) {
  assert_int_equal(stls_host_result_init(r, h->mx, h->ip, 25), 0);
  switch (h->kind) {
  case H_SKIPPED: r->status = STLS_HOST_SKIPPED; return;
  case H_REFUSED: r->status = STLS_HOST_CONNECTION_REFUSED; return;
  case H_TIMEOUT: r->status = STLS_HOST_CONNECTION_TIMEOUT; return;
  case H_GREETING: r->status = STLS_HOST_GREETING_REJECTED; return;
  default: break;
  }
  r->ehlo_done = true;
  if (h->kind == H_NOTLS) {
    r->status = STLS_HOST_STARTTLS_NOT_SUPPORTED;
    return;
  }
  r->starttls_offered = true;
  if (h->kind == H_REJECTED) {
    r->status = STLS_HOST_STARTTLS_REJECTED;
    return;
  }
  if (h->kind == H_HANDSHAKE) {
    r->status = STLS_HOST_HANDSHAKE_ERROR;
    return;
  }
  if (h->kind == H_BIGCERT) {
    stls_host_result_fail_cause(r, STLS_HOST_HANDSHAKE_ERROR,
                                STLS_STAGE_HANDSHAKE,
                                STLS_CAUSE_CERT_MESSAGE_TOO_LARGE, 0,
                                "the server's Certificate message is %d "
                                "bytes",
                                20430);
    return;
  }
  r->status = STLS_HOST_SUCCESS;
  r->tls_done = true;
  add_leaf(r, h->mx, h->san);
  r->tls.trusted = h->kind == H_GOOD;
  if (h->kind == H_UNTRUSTED)
    r->tls.trust_reasons = STLS_TRUST_REASON(UNTRUSTED_ISSUER);
  if (h->kind == H_EXPIRED) {
    r->tls.trust_reasons = STLS_TRUST_REASON(EXPIRED);
    r->tls.expired = true;
  }
  /* The probe's RFC 6125 fact; MTA-STS uses it. */
  r->tls.name_mx = h->san == NULL;
}

typedef struct {
  stls_host_result_t res[MAX_HOSTS];
  stls_policy_host_t ph[MAX_HOSTS];
  stls_policy_input_t in;
  stls_policy_opts_t opts;
  stls_policy_t pol;
  size_t n;
} built_t;

static void build(built_t *b, const scenario_t *s) {
  memset(b, 0, sizeof(*b));
  for (size_t i = 0; i < MAX_HOSTS && s->hosts[i].kind != H_NONE; i++) {
    const host_spec_t *h = &s->hosts[i];
    build_host(&b->res[i], h);
    b->ph[i].res = &b->res[i];
    b->ph[i].preference = h->pref;
    b->ph[i].dane = h->dane;
    b->ph[i].dane_match = h->dane_match;
    b->ph[i].dane_result_type =
        h->dane == STLS_DANE_USABLE && !h->dane_match ? "tlsa-invalid" : NULL;
    b->ph[i].sts_mx_match = h->sts_mx_match;
    b->n++;
  }
  b->in.domain = s->domain;
  b->in.mx_secure = s->mx_secure;
  b->in.hosts = b->ph;
  b->in.n_hosts = b->n;
  b->in.sts = s->sts;
  b->in.sts_mode = s->sts_mode;
  b->in.sts_result_type = s->sts_result_type;
  stls_policy_opts_defaults(&b->opts);
  if (s->secure_match)
    b->opts.secure_match = s->secure_match;
  assert_int_equal(stls_policy_evaluate(&b->in, &b->opts, &b->pol), 0);
}

static void unbuild(built_t *b) {
  stls_policy_free(&b->pol);
  for (size_t i = 0; i < b->n; i++)
    stls_host_result_free(&b->res[i]);
}

static void join(const stls_strlist_t *l, char *buf, size_t len) {
  size_t off = 0;
  buf[0] = '\0';
  for (size_t i = 0; i < l->n && off < len; i++)
    off +=
        (size_t)snprintf(buf + off, len - off, "%s%s", i ? "," : "", l->v[i]);
}

/* Check every expectation of one scenario and print each mismatch;
 * returns their number, so one run shows the whole picture. */
static int check(const scenario_t *s) {
  built_t b;
  int bad = 0;
  build(&b, s);
  for (int l = 0; l < STLS_LEVEL_COUNT; l++) {
    const want_t *w = &s->want[l];
    const stls_verdict_t *v = &b.pol.v[l];
    const char *lv = stls_level_name((stls_level_t)l);
    char failing[512];
    if (!w->set)
      continue;
    if (v->pass != w->pass) {
      print_error("%s: %s: pass is %d, want %d (%s)\n", s->name, lv, v->pass,
                  w->pass, v->note);
      bad++;
    }
    if (w->all_hosts != ANY && v->all_hosts != (w->all_hosts == 1)) {
      print_error("%s: %s: all_hosts is %d, want %d\n", s->name, lv,
                  v->all_hosts, w->all_hosts == 1);
      bad++;
    }
    if ((v->result_type == NULL) != (w->result_type == NULL) ||
        (v->result_type && strcmp(v->result_type, w->result_type) != 0)) {
      print_error("%s: %s: result_type is %s, want %s\n", s->name, lv,
                  v->result_type ? v->result_type : "NULL",
                  w->result_type ? w->result_type : "NULL");
      bad++;
    }
    join(&v->failing, failing, sizeof(failing));
    if (w->failing && strcmp(failing, w->failing) != 0) {
      print_error("%s: %s: failing is [%s], want [%s]\n", s->name, lv, failing,
                  w->failing);
      bad++;
    }
  }
  if (s->recommended != NO_CHECK && b.pol.recommended != s->recommended) {
    print_error("%s: recommended is %s, want %s\n", s->name,
                b.pol.recommended >= 0
                    ? stls_level_name((stls_level_t)b.pol.recommended)
                    : "none",
                s->recommended >= 0
                    ? stls_level_name((stls_level_t)s->recommended)
                    : "none");
    bad++;
  }
  if (b.pol.unreachable.n != s->unreachable) {
    print_error("%s: %zu unreachable addresses, want %zu\n", s->name,
                b.pol.unreachable.n, s->unreachable);
    bad++;
  }
  unbuild(&b);
  return bad;
}

static void check_all(const scenario_t *s, size_t n) {
  int bad = 0;
  for (size_t i = 0; i < n; i++)
    bad += check(&s[i]);
  if (bad)
    fail_msg("%d mismatch(es), listed above", bad);
}

#define L(x) [STLS_LEVEL_##x]

/* ---- scenarios: delivery paths ------------------------------------------ */

static const scenario_t basic[] = {
    {.name = "single MX, all good; the MX is below the domain",
     .domain = "example.com",
     .hosts = {{"mx.example.com", "192.0.2.1", 10, H_GOOD}},
     /* secure: "mx.example.com" matches dot-nexthop ".example.com". */
     .want = {L(MAY) = PASS_ALL, L(ENCRYPT) = PASS_ALL, L(VERIFY) = PASS_ALL,
              L(SECURE) = PASS_ALL, L(DANE) = PASS_ALL, L(MTA_STS) = PASS_ALL},
     .recommended = STLS_LEVEL_SECURE},
    {.name = "single MX at a provider: verify yes, secure no",
     .domain = "example.com",
     .hosts = {{"mx.provider.net", "192.0.2.1", 10, H_GOOD}},
     .want = {L(VERIFY) = PASS_ALL,
              L(SECURE) = FAIL_ON("certificate-host-mismatch",
                                  "mx.provider.net[192.0.2.1]")},
     .recommended = STLS_LEVEL_VERIFY},
    {.name = "one MX without STARTTLS among good ones",
     .domain = "example.com",
     .hosts = {{"a.example.com", "192.0.2.1", 10, H_GOOD},
               {"b.example.com", "192.0.2.2", 10, H_NOTLS},
               {"c.example.com", "192.0.2.3", 20, H_GOOD}},
     .want = {L(MAY) = PASS_ALL,
              L(ENCRYPT) = PASS_PART("starttls-not-supported",
                                     "b.example.com[192.0.2.2]"),
              L(VERIFY) = PASS_PART("starttls-not-supported",
                                    "b.example.com[192.0.2.2]")},
     .recommended = STLS_LEVEL_MAY},
    {.name = "STARTTLS rejected with 454: may continues in clear text",
     .domain = "example.com",
     .hosts = {{"mx.example.com", "192.0.2.1", 10, H_REJECTED}},
     .want = {L(MAY) = PASS_ALL, L(ENCRYPT) = FAIL("starttls-not-supported")},
     .recommended = STLS_LEVEL_MAY},
    {.name = "handshake failure: encrypt and up fail",
     .domain = "example.com",
     /* may is not checked here: on the first attempt Postfix gives up on
      * such an address, and retries it in clear text only once the
      * message has waited min_backoff_time (smtp.h,
      * PLAINTEXT_FALLBACK_OK_AFTER_STARTTLS_FAILURE). Whether a delayed
      * delivery is a pass is the verdict's definition to make. */
     .hosts = {{"mx.example.com", "192.0.2.1", 10, H_HANDSHAKE}},
     .want = {L(ENCRYPT) = FAIL("validation-failure"),
              L(VERIFY) = FAIL("validation-failure")},
     .recommended = NO_CHECK},
    {.name = "verify: name mismatch",
     .domain = "example.com",
     .hosts = {{"mx.example.com", "192.0.2.1", 10, H_GOOD,
                "other.example.net"}},
     .want = {L(ENCRYPT) = PASS_ALL,
              L(VERIFY) = FAIL_ON("certificate-host-mismatch",
                                  "mx.example.com[192.0.2.1]"),
              L(SECURE) = FAIL("certificate-host-mismatch")},
     .recommended = STLS_LEVEL_ENCRYPT},
    {.name = "verify: expired leaf",
     .domain = "example.com",
     .hosts = {{"mx.example.com", "192.0.2.1", 10, H_EXPIRED}},
     .want = {L(ENCRYPT) = PASS_ALL, L(VERIFY) = FAIL("certificate-expired"),
              L(SECURE) = FAIL("certificate-expired")},
     .recommended = STLS_LEVEL_ENCRYPT},
    {.name = "verify: unknown issuer",
     .domain = "example.com",
     .hosts = {{"mx.example.com", "192.0.2.1", 10, H_UNTRUSTED}},
     .want = {L(VERIFY) = FAIL("certificate-not-trusted")},
     .recommended = STLS_LEVEL_ENCRYPT},
    {.name = "all addresses unreachable",
     .domain = "example.com",
     .hosts = {{"a.example.com", "192.0.2.1", 10, H_REFUSED},
               {"b.example.com", "192.0.2.2", 20, H_TIMEOUT},
               {"c.example.com", "192.0.2.3", 30, H_GREETING}},
     .want = {L(MAY) = FAIL_ON(NULL, ""), L(ENCRYPT) = FAIL(NULL),
              L(VERIFY) = FAIL(NULL), L(SECURE) = FAIL(NULL)},
     .recommended = -1,
     .unreachable = 3},
    {.name = "an unreachable primary does not spoil the verdict",
     .domain = "example.com",
     .hosts = {{"a.example.com", "192.0.2.1", 10, H_REFUSED},
               {"b.example.com", "192.0.2.2", 20, H_GOOD}},
     .want = {L(MAY) = PASS_ALL, L(VERIFY) = PASS_ALL},
     .recommended = STLS_LEVEL_SECURE,
     .unreachable = 1},
    {.name = "skipped IPv6 addresses are not tried and not counted",
     .domain = "example.com",
     .hosts = {{"mx.example.com", "2001:db8::1", 10, H_SKIPPED},
               {"mx.example.com", "2001:db8::2", 10, H_SKIPPED},
               {"mx.example.com", "2001:db8::3", 10, H_SKIPPED},
               {"mx.example.com", "2001:db8::4", 10, H_SKIPPED},
               {"mx.example.com", "2001:db8::5", 10, H_SKIPPED},
               {"mx.example.com", "192.0.2.1", 10, H_GOOD}},
     .want = {L(MAY) = PASS_ALL, L(VERIFY) = PASS_ALL},
     .recommended = STLS_LEVEL_SECURE},
};

static void test_basic(void **state) {
  (void)state;
  check_all(basic, ARRAY_LEN(basic));
}

/* smtp_mx_address_limit (5): every address tried counts, refused ones
 * included (smtp_connect.c: ++addr_count before connecting). */
static const scenario_t address_limit[] = {
    {.name = "address limit: only the 6th of 6 addresses passes verify",
     .domain = "example.com",
     .hosts = {{"m1.example.com", "192.0.2.1", 10, H_UNTRUSTED},
               {"m2.example.com", "192.0.2.2", 20, H_EXPIRED},
               {"m3.example.com", "192.0.2.3", 30, H_GOOD, "x.example.net"},
               {"m4.example.com", "192.0.2.4", 40, H_NOTLS},
               {"m5.example.com", "192.0.2.5", 50, H_UNTRUSTED},
               {"m6.example.com", "192.0.2.6", 60, H_GOOD}},
     .want = {L(MAY) = PASS_ALL, L(VERIFY) = FAIL("certificate-not-trusted")},
     .recommended = STLS_LEVEL_MAY},
    {.name = "address limit: 5 refused, the 6th would work",
     .domain = "example.com",
     .hosts = {{"m1.example.com", "192.0.2.1", 10, H_REFUSED},
               {"m2.example.com", "192.0.2.2", 20, H_REFUSED},
               {"m3.example.com", "192.0.2.3", 30, H_REFUSED},
               {"m4.example.com", "192.0.2.4", 40, H_REFUSED},
               {"m5.example.com", "192.0.2.5", 50, H_REFUSED},
               {"m6.example.com", "192.0.2.6", 60, H_GOOD}},
     .want = {L(MAY) = FAIL(NULL), L(ENCRYPT) = FAIL(NULL)},
     .recommended = -1,
     .unreachable = 5},
    {.name = "address limit: 4 refused, the 5th works",
     .domain = "example.com",
     .hosts = {{"m1.example.com", "192.0.2.1", 10, H_REFUSED},
               {"m2.example.com", "192.0.2.2", 20, H_REFUSED},
               {"m3.example.com", "192.0.2.3", 30, H_REFUSED},
               {"m4.example.com", "192.0.2.4", 40, H_REFUSED},
               {"m5.example.com", "192.0.2.5", 50, H_GOOD}},
     .want = {L(MAY) = PASS_ALL, L(VERIFY) = PASS_ALL},
     .recommended = STLS_LEVEL_SECURE,
     .unreachable = 4},
    {.name = "equal preference: the worst order puts failures first",
     .domain = "example.com",
     /* Listed good-first, but Postfix shuffles equal preferences: in the
      * worst order the five refused addresses use up the limit. */
     .hosts = {{"m0.example.com", "192.0.2.9", 10, H_GOOD},
               {"m1.example.com", "192.0.2.1", 10, H_REFUSED},
               {"m2.example.com", "192.0.2.2", 10, H_REFUSED},
               {"m3.example.com", "192.0.2.3", 10, H_REFUSED},
               {"m4.example.com", "192.0.2.4", 10, H_REFUSED},
               {"m5.example.com", "192.0.2.5", 10, H_REFUSED}},
     .want = {L(MAY) = FAIL(NULL)},
     .recommended = -1,
     .unreachable = 5},
    {.name = "equal preference: a better preference is always tried first",
     .domain = "example.com",
     .hosts = {{"m0.example.com", "192.0.2.9", 5, H_GOOD},
               {"m1.example.com", "192.0.2.1", 10, H_REFUSED},
               {"m2.example.com", "192.0.2.2", 10, H_REFUSED},
               {"m3.example.com", "192.0.2.3", 10, H_REFUSED},
               {"m4.example.com", "192.0.2.4", 10, H_REFUSED},
               {"m5.example.com", "192.0.2.5", 10, H_REFUSED}},
     .want = {L(MAY) = PASS_ALL},
     .recommended = STLS_LEVEL_SECURE,
     .unreachable = 5},
};

static void test_address_limit(void **state) {
  (void)state;
  check_all(address_limit, ARRAY_LEN(address_limit));
}

/* smtp_mx_session_limit (2) "ignores sessions that fail to complete the
 * SMTP initial handshake (Postfix version 2.2 and earlier) or that fail to
 * complete the EHLO and TLS handshake (Postfix version 2.3 and later)"
 * (postconf(5)); smtp_connect.c counts a session only after smtp_helo(),
 * which includes STARTTLS and the certificate checks, succeeded. A TLS
 * failure therefore never uses up a session: only the address limit
 * stops the walk. Checked in the lab: MX 10 mx-self, 20 mx-expired,
 * 30 mx-good delivers at verify. */
static const scenario_t session_limit[] = {
    {.name = "session limit: two failing TLS sessions before a passing third",
     .domain = "example.com",
     .hosts = {{"m1.example.com", "192.0.2.1", 10, H_UNTRUSTED},
               {"m2.example.com", "192.0.2.2", 20, H_EXPIRED},
               {"m3.example.com", "192.0.2.3", 30, H_GOOD}},
     .want = {L(ENCRYPT) = PASS_ALL,
              L(VERIFY) = PASS_PART("certificate-not-trusted",
                                    "m1.example.com[192.0.2.1],"
                                    "m2.example.com[192.0.2.2]")},
     .recommended = STLS_LEVEL_ENCRYPT},
    {.name = "session limit: refused connections and TLS failures mixed",
     .domain = "example.com",
     .hosts = {{"m1.example.com", "192.0.2.1", 10, H_REFUSED},
               {"m2.example.com", "192.0.2.2", 20, H_REFUSED},
               {"m3.example.com", "192.0.2.3", 30, H_UNTRUSTED},
               {"m4.example.com", "192.0.2.4", 40, H_NOTLS},
               {"m5.example.com", "192.0.2.5", 50, H_GOOD}},
     .want = {L(MAY) = PASS_ALL,
              L(ENCRYPT) = PASS_PART("starttls-not-supported", NULL),
              L(VERIFY) = PASS_PART("certificate-not-trusted", NULL)},
     .recommended = STLS_LEVEL_MAY,
     .unreachable = 2},
};

static void test_session_limit(void **state) {
  (void)state;
  check_all(session_limit, ARRAY_LEN(session_limit));
}

/* smtp_balance_inet_protocols (yes since Postfix 3.3): when a destination
 * has IPv4 and IPv6 addresses and more than smtp_mx_address_limit of
 * them, the list is cut per family so that both fit (smtp_addr.c,
 * smtp_balance_inet_proto). Checked in the lab: MX 10..50 five refused
 * IPv4 hosts, MX 60 mx-good (IPv4 + IPv6) delivers over IPv6. */
static const scenario_t balance[] = {
    {.name = "address limit with both families: the IPv6 address is kept",
     .domain = "example.com",
     .hosts = {{"r1.example.com", "192.0.2.1", 10, H_REFUSED},
               {"r2.example.com", "192.0.2.2", 20, H_REFUSED},
               {"r3.example.com", "192.0.2.3", 30, H_REFUSED},
               {"r4.example.com", "192.0.2.4", 40, H_REFUSED},
               {"r5.example.com", "192.0.2.5", 50, H_REFUSED},
               {"mx.example.com", "192.0.2.6", 60, H_GOOD},
               {"mx.example.com", "2001:db8::6", 60, H_GOOD}},
     .want = {L(MAY) = PASS_ALL, L(VERIFY) = PASS_ALL},
     .recommended = STLS_LEVEL_SECURE,
     .unreachable = 5},
};

static void test_balance_inet_protocols(void **state) {
  (void)state;
  check_all(balance, ARRAY_LEN(balance));
}

/* ---- secure and its match lists ----------------------------------------- */

static const scenario_t secure[] = {
    {.name = "secure: nexthop matches the domain itself",
     .domain = "example.com",
     .hosts = {{"mx.provider.net", "192.0.2.1", 10, H_GOOD,
                "mx.provider.net,example.com"}},
     .want = {L(SECURE) = PASS_ALL},
     .recommended = STLS_LEVEL_SECURE},
    {.name = "secure: *.example.com covers the domain's subdomain MX",
     .domain = "example.com",
     .hosts = {{"mx.example.com", "192.0.2.1", 10, H_GOOD, "*.example.com"}},
     .want = {L(VERIFY) = PASS_ALL, L(SECURE) = PASS_ALL},
     .recommended = STLS_LEVEL_SECURE},
    {.name = "secure: a name that only ends like the domain",
     .domain = "good.example",
     .hosts = {{"mx-good.example", "192.0.2.1", 10, H_GOOD}},
     .want = {L(VERIFY) = PASS_ALL,
              L(SECURE) = FAIL("certificate-host-mismatch")},
     .recommended = STLS_LEVEL_VERIFY},
    {.name = "secure: match=hostname acts as verify",
     .domain = "example.com",
     .secure_match = "hostname",
     .hosts = {{"mx.provider.net", "192.0.2.1", 10, H_GOOD}},
     .want = {L(SECURE) = PASS_ALL},
     .recommended = STLS_LEVEL_SECURE},
    {.name = "secure: a literal parent domain in the match list",
     .domain = "example.com",
     .secure_match = "nexthop:dot-nexthop:.provider.net",
     .hosts = {{"mx.provider.net", "192.0.2.1", 10, H_GOOD}},
     .want = {L(SECURE) = PASS_ALL},
     .recommended = STLS_LEVEL_SECURE},
};

static void test_secure(void **state) {
  (void)state;
  check_all(secure, ARRAY_LEN(secure));
}

typedef struct {
  const char *san; /* comma-separated; "" = no SAN */
  const char *cn;
  const char *match;
  const char *nexthop, *host;
  bool want;
} match_case_t;

/* Postfix tls_client.c match_servername() and verify_extract_name(). */
static const match_case_t match_cases[] = {
    /* nexthop: the domain exactly, any case, trailing dots ignored. */
    {"example.com", NULL, "nexthop", "example.com", "mx.example.net", true},
    {"EXAMPLE.com", NULL, "nexthop", "example.COM", "mx.example.net", true},
    {"example.com.", NULL, "nexthop", "example.com", "mx.example.net", true},
    {"mx.example.com", NULL, "nexthop", "example.com", "mx.example.com", false},
    /* dot-nexthop: any name below the domain, not the domain itself, and
     * only at a label boundary. */
    {"mx.example.com", NULL, "dot-nexthop", "example.com", "x", true},
    {"a.b.example.com", NULL, "dot-nexthop", "example.com", "x", true},
    {"example.com", NULL, "dot-nexthop", "example.com", "x", false},
    {"mxexample.com", NULL, "dot-nexthop", "example.com", "x", false},
    {".example.com", NULL, "dot-nexthop", "example.com", "x", false},
    /* A wildcard certificate is a literal string for dot-nexthop: it ends
     * with ".example.com", so it matches. */
    {"*.example.com", NULL, "dot-nexthop", "example.com", "x", true},
    /* hostname: the MX name from DNS. */
    {"mx.example.net", NULL, "hostname", "example.com", "mx.example.net", true},
    {"mx.example.net", NULL, "hostname", "example.com", "mx2.example.net",
     false},
    /* Wildcards: "*." plus the rest, one or more leading labels
     * (tls_wildcard_matches_multiple_labels = yes), never the parent. */
    {"*.example.com", NULL, "hostname", "d", "mx.example.com", true},
    {"*.example.com", NULL, "hostname", "d", "a.b.example.com", true},
    {"*.example.com", NULL, "hostname", "d", "example.com", false},
    {"*.example.com", NULL, "hostname", "d", "mx.example.net", false},
    {"*.example.com", NULL, "nexthop", "sub.example.com", "x", true},
    {"mx*.example.com", NULL, "hostname", "d", "mx1.example.com", false},
    {"a.*.example.com", NULL, "hostname", "d", "a.b.example.com", false},
    {"*.", NULL, "hostname", "d", "example.", false},
    /* Literal names and parent domains in the list. */
    {"mx.provider.net", NULL, "mx.provider.net", "d", "x", true},
    {"mx.provider.net", NULL, ".provider.net", "d", "x", true},
    {"provider.net", NULL, ".provider.net", "d", "x", false},
    /* Separators: colon, comma, space, as in main.cf and policy maps. */
    {"mx.example.com", NULL, "nexthop, dot-nexthop", "example.com", "x", true},
    {"mx.example.com", NULL, "nexthop:dot-nexthop", "example.com", "x", true},
    {"mx.example.com", NULL, "nexthop", "example.com", "x", false},
    {"mx.example.com", NULL, "", "example.com", "mx.example.com", false},
    /* The CN counts only when the leaf has no dNSName SAN. */
    {"", "mx.example.com", "hostname", "d", "mx.example.com", true},
    {"other.example.com", "mx.example.com", "hostname", "d", "mx.example.com",
     false},
    /* Any one SAN may match. */
    {"a.example.net,mx.example.com", NULL, "hostname", "d", "mx.example.com",
     true},
};

static void test_cert_match(void **state) {
  int bad = 0;
  (void)state;
  for (size_t i = 0; i < ARRAY_LEN(match_cases); i++) {
    const match_case_t *c = &match_cases[i];
    stls_cert_t leaf;
    char buf[256];
    memset(&leaf, 0, sizeof(leaf));
    snprintf(buf, sizeof(buf), "%s", c->san);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ","))
      assert_int_equal(stls_strlist_push(&leaf.san_dns, tok), 0);
    if (c->cn) {
      leaf.subject_cn = malloc(strlen(c->cn) + 1);
      assert_non_null(leaf.subject_cn);
      memcpy(leaf.subject_cn, c->cn, strlen(c->cn) + 1);
    }
    bool got =
        stls_name_cert_matches_list(&leaf, c->match, c->nexthop, c->host);
    if (got != c->want) {
      print_error("cert_match(san=%s cn=%s, match=\"%s\", nexthop=%s, "
                  "host=%s) = %d, want %d\n",
                  c->san, c->cn ? c->cn : "-", c->match, c->nexthop, c->host,
                  got, c->want);
      bad++;
    }
    stls_cert_free(&leaf);
  }
  assert_false(stls_name_cert_matches_list(NULL, "hostname", "d", "h"));
  assert_int_equal(bad, 0);
}

/* ---- DANE ---------------------------------------------------------------- */

static const scenario_t dane[] = {
    {.name = "dane: MX not DNSSEC-validated acts as may",
     .domain = "example.com",
     .mx_secure = false,
     .hosts = {{"mx.example.com", "192.0.2.1", 10, H_NOTLS, NULL,
                STLS_DANE_USABLE, true}},
     .want = {L(DANE) = PASS_ALL, L(ENCRYPT) = FAIL("starttls-not-supported")},
     .recommended = STLS_LEVEL_MAY},
    {.name = "dane: usable TLSA, chain matches",
     .domain = "example.com",
     .mx_secure = true,
     /* DANE-EE: no name or trust check, so an untrusted chain passes. */
     .hosts = {{"mx.example.com", "192.0.2.1", 10, H_UNTRUSTED, NULL,
                STLS_DANE_USABLE, true}},
     .want = {L(DANE) = PASS_ALL, L(VERIFY) = FAIL("certificate-not-trusted")},
     .recommended = STLS_LEVEL_DANE},
    {.name = "dane: usable TLSA, chain does not match",
     .domain = "example.com",
     .mx_secure = true,
     .hosts = {{"mx.example.com", "192.0.2.1", 10, H_GOOD, NULL,
                STLS_DANE_USABLE, false}},
     .want = {L(DANE) = FAIL_ON("tlsa-invalid", "mx.example.com[192.0.2.1]"),
              L(SECURE) = PASS_ALL},
     .recommended = STLS_LEVEL_SECURE},
    {.name = "dane: usable TLSA but no STARTTLS",
     .domain = "example.com",
     .mx_secure = true,
     .hosts = {{"mx.example.com", "192.0.2.1", 10, H_NOTLS, NULL,
                STLS_DANE_USABLE, false}},
     .want = {L(DANE) = FAIL("starttls-not-supported")},
     .recommended = STLS_LEVEL_MAY},
    {.name = "dane: only unusable TLSA records act as encrypt",
     .domain = "example.com",
     .mx_secure = true,
     .hosts = {{"a.example.com", "192.0.2.1", 10, H_NOTLS, NULL,
                STLS_DANE_UNUSABLE},
               {"b.example.com", "192.0.2.2", 20, H_UNTRUSTED, NULL,
                STLS_DANE_UNUSABLE}},
     .want = {L(DANE) = PASS_PART("starttls-not-supported",
                                  "a.example.com[192.0.2.1]")},
     .recommended = STLS_LEVEL_MAY},
    {.name = "dane: TLSA lookup failed defers that host",
     .domain = "example.com",
     .mx_secure = true,
     .hosts = {{"mx.example.com", "192.0.2.1", 10, H_GOOD, NULL,
                STLS_DANE_LOOKUP_FAILED}},
     .want = {L(DANE) = FAIL("dnssec-invalid"), L(VERIFY) = PASS_ALL},
     .recommended = STLS_LEVEL_SECURE},
    {.name = "dane: secure denial of TLSA acts as may",
     .domain = "example.com",
     .mx_secure = true,
     .hosts = {{"mx.example.com", "192.0.2.1", 10, H_NOTLS, NULL,
                STLS_DANE_NO_TLSA}},
     .want = {L(DANE) = PASS_ALL},
     .recommended = STLS_LEVEL_MAY},
    {.name = "recommended: dane beats secure",
     .domain = "example.com",
     .mx_secure = true,
     .hosts = {{"mx.example.com", "192.0.2.1", 10, H_GOOD, NULL,
                STLS_DANE_USABLE, true}},
     .want = {L(DANE) = PASS_ALL, L(SECURE) = PASS_ALL},
     .recommended = STLS_LEVEL_DANE},
    {.name = "recommended: dane partial falls back to secure",
     .domain = "example.com",
     .mx_secure = true,
     .hosts = {{"a.example.com", "192.0.2.1", 10, H_GOOD, NULL,
                STLS_DANE_USABLE, true},
               {"b.example.com", "192.0.2.2", 20, H_GOOD, NULL,
                STLS_DANE_USABLE, false}},
     .want = {L(DANE) = PASS_PART("tlsa-invalid", "b.example.com[192.0.2.2]"),
              L(SECURE) = PASS_ALL},
     .recommended = STLS_LEVEL_SECURE},
};

static void test_dane(void **state) {
  (void)state;
  check_all(dane, ARRAY_LEN(dane));
}

static void test_dane_applies(void **state) {
  built_t b;
  (void)state;
  build(&b, &dane[0]);
  assert_false(b.pol.v[STLS_LEVEL_DANE].applies);
  unbuild(&b);
  build(&b, &dane[1]);
  assert_true(b.pol.v[STLS_LEVEL_DANE].applies);
  unbuild(&b);
  build(&b, &dane[4]); /* all unusable */
  assert_false(b.pol.v[STLS_LEVEL_DANE].applies);
  unbuild(&b);
}

/* ---- MTA-STS --------------------------------------------------------------
 */

#define STS_HOSTS                                                              \
  {                                                                            \
    {"mx.example.com", "192.0.2.1", 10, H_GOOD, NULL, 0, false, true}, {       \
      "mx2.example.com", "192.0.2.2", 20, H_GOOD, NULL, 0, false, false        \
    }                                                                          \
  }

static const scenario_t sts[] = {
    {.name = "mta-sts: not checked delivers as may",
     .domain = "example.com",
     .hosts = STS_HOSTS,
     .sts = STLS_POLICY_STS_NOT_CHECKED,
     .want = {L(MTA_STS) = PASS_ALL},
     .recommended = STLS_LEVEL_SECURE},
    {.name = "mta-sts: no policy",
     .domain = "example.com",
     .hosts = STS_HOSTS,
     .sts = STLS_POLICY_STS_NONE,
     .want = {L(MTA_STS) = PASS_ALL},
     .recommended = STLS_LEVEL_SECURE},
    {.name = "mta-sts: unusable policy counts as none, with its result type",
     .domain = "example.com",
     .hosts = STS_HOSTS,
     .sts = STLS_POLICY_STS_FAILED,
     .sts_result_type = "sts-policy-fetch-error",
     .want = {L(MTA_STS) = {true, true, 1, "sts-policy-fetch-error", ""}},
     .recommended = STLS_LEVEL_SECURE},
    {.name = "mta-sts: testing mode delivers",
     .domain = "example.com",
     .hosts = STS_HOSTS,
     .sts = STLS_POLICY_STS_OK,
     .sts_mode = STLS_STS_MODE_TESTING,
     .want = {L(MTA_STS) = {true, true, 0, "validation-failure",
                            "mx2.example.com[192.0.2.2]"}},
     .recommended = STLS_LEVEL_SECURE},
    {.name = "mta-sts: enforce, primary matches the policy",
     .domain = "example.com",
     .hosts = STS_HOSTS,
     .sts = STLS_POLICY_STS_OK,
     .sts_mode = STLS_STS_MODE_ENFORCE,
     .want = {L(MTA_STS) = PASS_PART("validation-failure",
                                     "mx2.example.com[192.0.2.2]")},
     .recommended = STLS_LEVEL_SECURE},
    {.name = "mta-sts: enforce, no MX matches the policy",
     .domain = "example.com",
     .hosts = {{"mx.example.com", "192.0.2.1", 10, H_GOOD, NULL, 0, false,
                false}},
     .sts = STLS_POLICY_STS_OK,
     .sts_mode = STLS_STS_MODE_ENFORCE,
     .want = {L(MTA_STS) = FAIL("validation-failure"), L(SECURE) = PASS_ALL},
     .recommended = STLS_LEVEL_SECURE},
    {.name = "mta-sts: enforce, matching MX with an untrusted chain",
     .domain = "example.com",
     .hosts = {{"mx.example.com", "192.0.2.1", 10, H_UNTRUSTED, NULL, 0, false,
                true}},
     .sts = STLS_POLICY_STS_OK,
     .sts_mode = STLS_STS_MODE_ENFORCE,
     .want = {L(MTA_STS) = FAIL("certificate-not-trusted")},
     .recommended = STLS_LEVEL_ENCRYPT},
};

static void test_mta_sts(void **state) {
  built_t b;
  (void)state;
  check_all(sts, ARRAY_LEN(sts));
  build(&b, &sts[0]);
  assert_false(b.pol.v[STLS_LEVEL_MTA_STS].applies);
  unbuild(&b);
  build(&b, &sts[3]);
  assert_true(b.pol.v[STLS_LEVEL_MTA_STS].applies);
  unbuild(&b);
  build(&b, &sts[4]);
  assert_true(b.pol.v[STLS_LEVEL_MTA_STS].applies);
  unbuild(&b);
}

/* ---- smtp_tls_policy_maps lines -------------------------------------------
 */

typedef struct {
  const scenario_t *s;
  int min_level;
  const char *line;   /* the exact map line, or NULL: comment only */
  const char *why[3]; /* text the comment must contain */
} map_case_t;

static const scenario_t map_may = {
    .domain = "plain.example",
    .hosts = {{"mx.plain.example", "192.0.2.1", 10, H_NOTLS}}};
static const scenario_t map_encrypt = {
    .domain = "self.example",
    .hosts = {{"mx.self.example", "192.0.2.1", 10, H_UNTRUSTED}}};
static const scenario_t map_verify = {
    .domain = "example.com",
    .hosts = {{"mx.provider.net", "192.0.2.1", 10, H_GOOD},
              {"mx2.provider.net", "192.0.2.2", 20, H_REFUSED}}};
static const scenario_t map_secure = {
    .domain = "example.com",
    .hosts = {{"mx.example.com", "192.0.2.1", 10, H_GOOD}}};
static const scenario_t map_dane = {
    .domain = "example.com",
    .mx_secure = true,
    .hosts = {{"mx.example.com", "192.0.2.1", 10, H_GOOD, NULL,
               STLS_DANE_USABLE, true}}};
static const scenario_t map_custom = {
    .domain = "example.com",
    .secure_match = "nexthop:.provider.net",
    .hosts = {{"mx.provider.net", "192.0.2.1", 10, H_GOOD}}};
/* main.cf spells the list with commas (postconf -d: "nexthop,
 * dot-nexthop"); a policy map needs colons, since white space separates
 * its attributes. Postfix 3.7 defers every message for a domain whose
 * line reads "secure match=nexthop, dot-nexthop" ("malformed
 * attribute/value pair", "client TLS configuration problem"). */
static const scenario_t map_commas = {
    .domain = "example.com",
    .secure_match = "nexthop, dot-nexthop, .provider.net",
    .hosts = {{"mx.provider.net", "192.0.2.1", 10, H_GOOD}}};
static const scenario_t map_none = {
    .domain = "down.example",
    .hosts = {{"mx.down.example", "192.0.2.1", 10, H_REFUSED}}};

/* The policy line is exact (Postfix reads it); the comment is for people,
 * so only its facts are checked: level, reason, failing address. */
static const map_case_t map_cases[] = {
    {&map_may,
     STLS_LEVEL_MAY,
     "plain.example may",
     {"# plain.example:", "passes may"}},
    {&map_may,
     STLS_LEVEL_ENCRYPT,
     NULL,
     {"# plain.example:", "encrypt",
      "starttls-not-supported on mx.plain.example[192.0.2.1]"}},
    {&map_encrypt,
     STLS_LEVEL_ENCRYPT,
     "self.example encrypt",
     {"# self.example:", "passes encrypt"}},
    {&map_encrypt,
     STLS_LEVEL_VERIFY,
     NULL,
     {"# self.example:", "verify",
      "certificate-not-trusted on mx.self.example[192.0.2.1]"}},
    {&map_verify,
     STLS_LEVEL_ENCRYPT,
     "example.com verify",
     {"# example.com:", "passes verify", "unreachable"}},
    {&map_secure,
     STLS_LEVEL_ENCRYPT,
     "example.com secure match=nexthop:dot-nexthop",
     {"# example.com:", "passes secure"}},
    {&map_dane,
     STLS_LEVEL_ENCRYPT,
     "example.com dane",
     {"# example.com:", "passes dane"}},
    {&map_custom,
     STLS_LEVEL_MAY,
     "example.com secure match=nexthop:.provider.net",
     {"# example.com:", "passes secure"}},
    {&map_commas,
     STLS_LEVEL_MAY,
     "example.com secure match=nexthop:dot-nexthop:.provider.net",
     {"# example.com:", "passes secure"}},
    {&map_none,
     STLS_LEVEL_MAY,
     NULL,
     {"# down.example:", "may", "no SMTP session"}},
};

static int check_map_text(const map_case_t *c, const char *buf) {
  const char *domain = c->s->domain;
  size_t dlen = strlen(domain);
  int bad = 0, policy_lines = 0;
  char comment[1200] = "";
  size_t clen = 0;
  for (const char *line = buf; *line;) {
    const char *nl = strchr(line, '\n');
    size_t n = nl ? (size_t)(nl - line) : strlen(line);
    if (!nl) {
      print_error("%s: output does not end with a newline: %s\n", domain, buf);
      return 1;
    }
    if (*line == '#') {
      int w = snprintf(comment + clen, sizeof(comment) - clen, "%.*s", (int)n,
                       line);
      clen += w > 0 && (size_t)w < sizeof(comment) - clen ? (size_t)w : 0;
    } else {
      /* "DOMAIN LEVEL [attr=value]", as smtp_tls_policy_maps reads it. */
      policy_lines++;
      if (!c->line || n != strlen(c->line) || memcmp(line, c->line, n) != 0 ||
          memcmp(line, domain, dlen) != 0 || line[dlen] != ' ') {
        print_error("%s: policy line \"%.*s\", want \"%s\"\n", domain, (int)n,
                    line, c->line ? c->line : "(none)");
        bad++;
      }
    }
    line = nl + 1;
  }
  if (c->line && policy_lines != 1) {
    print_error("%s: %d policy lines, want 1: %s\n", domain, policy_lines, buf);
    bad++;
  }
  for (size_t i = 0; i < ARRAY_LEN(c->why) && c->why[i]; i++)
    if (!strstr(comment, c->why[i])) {
      print_error("%s: comment \"%s\" does not say \"%s\"\n", domain, comment,
                  c->why[i]);
      bad++;
    }
  return bad;
}

static void test_map_line(void **state) {
  int bad = 0;
  (void)state;
  for (size_t i = 0; i < ARRAY_LEN(map_cases); i++) {
    const map_case_t *c = &map_cases[i];
    built_t b;
    char buf[1200];
    size_t n;
    build(&b, c->s);
    n = stls_policy_map_line(c->s->domain, &b.pol, &b.opts, c->min_level, buf,
                             sizeof(buf));
    assert_int_equal(n, strlen(buf));
    bad += check_map_text(c, buf);
    /* A short buffer truncates but stays a C string. */
    n = stls_policy_map_line(c->s->domain, &b.pol, &b.opts, c->min_level, buf,
                             16);
    assert_int_equal(n, strlen(buf));
    assert_true(n < 16);
    unbuild(&b);
  }
  assert_int_equal(bad, 0);
}

static void test_level_names(void **state) {
  (void)state;
  for (int l = 0; l < STLS_LEVEL_COUNT; l++)
    assert_int_equal(stls_level_parse(stls_level_name((stls_level_t)l)), l);
  assert_int_equal(stls_level_parse("mta-sts"), STLS_LEVEL_MTA_STS);
  assert_int_equal(stls_level_parse("none"), -1);
  assert_int_equal(stls_level_parse("Verify"), -1);
  assert_string_equal(stls_level_name(STLS_LEVEL_COUNT), "unknown");
}

/* A certificate message too large for mbedTLS is a limit of this client:
 * from encrypt up such an address is neither passing nor failing but
 * listed as untested, and no level claims every address. */
static void test_client_limit_untested(void **state) {
  static const scenario_t one = {
      .name = "one MX, certificate too large for us",
      .domain = "example.com",
      .hosts = {{"mx.example.com", "192.0.2.1", 10, H_BIGCERT, NULL,
                 STLS_DANE_NOT_CHECKED, false, false}}};
  static const scenario_t two = {
      .name = "two MX, one certificate too large for us",
      .domain = "example.com",
      .hosts = {{"mx1.example.com", "192.0.2.1", 10, H_GOOD, NULL,
                 STLS_DANE_NOT_CHECKED, false, false},
                {"mx2.example.com", "192.0.2.2", 20, H_BIGCERT, NULL,
                 STLS_DANE_NOT_CHECKED, false, false}}};
  static const stls_level_t tls_levels[] = {
      STLS_LEVEL_ENCRYPT, STLS_LEVEL_VERIFY, STLS_LEVEL_SECURE};
  built_t *b = malloc(sizeof(*b));
  char buf[256];
  (void)state;
  assert_non_null(b);

  build(b, &one);
  assert_true(b->pol.v[STLS_LEVEL_MAY].pass);
  assert_int_equal(b->pol.v[STLS_LEVEL_MAY].untested.n, 0);
  for (size_t i = 0; i < ARRAY_LEN(tls_levels); i++) {
    const stls_verdict_t *v = &b->pol.v[tls_levels[i]];
    assert_false(v->pass);
    assert_null(v->result_type);
    assert_int_equal(v->failing.n, 0);
    join(&v->untested, buf, sizeof(buf));
    assert_string_equal(buf, "mx.example.com[192.0.2.1]");
    assert_non_null(strstr(v->note, "1 address not tested"));
  }
  assert_int_equal(b->pol.recommended, STLS_LEVEL_MAY);
  unbuild(b);

  build(b, &two);
  for (size_t i = 0; i < ARRAY_LEN(tls_levels); i++) {
    const stls_verdict_t *v = &b->pol.v[tls_levels[i]];
    assert_true(v->pass);
    assert_false(v->all_hosts);
    assert_int_equal(v->failing.n, 0);
    join(&v->untested, buf, sizeof(buf));
    assert_string_equal(buf, "mx2.example.com[192.0.2.2]");
  }
  assert_int_equal(b->pol.recommended, STLS_LEVEL_MAY);
  unbuild(b);
  free(b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_basic),
      cmocka_unit_test(test_client_limit_untested),
      cmocka_unit_test(test_address_limit),
      cmocka_unit_test(test_session_limit),
      cmocka_unit_test(test_balance_inet_protocols),
      cmocka_unit_test(test_secure),
      cmocka_unit_test(test_cert_match),
      cmocka_unit_test(test_dane),
      cmocka_unit_test(test_dane_applies),
      cmocka_unit_test(test_mta_sts),
      cmocka_unit_test(test_map_line),
      cmocka_unit_test(test_level_names),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
