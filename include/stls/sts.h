/* MTA-STS (RFC 8461): discovery of a recipient domain's policy, the HTTPS
 * fetch of the policy with WebPKI validation, the policy parser and MX
 * pattern matching.
 *
 * A stls_sts_t is made once per worker loop, next to that loop's resolver
 * (dns.h) and TLS context (tls.h). stls_sts_fetch() runs the whole
 * discovery for one domain without blocking the loop:
 *
 *   1. TXT _mta-sts.<domain> (RFC 8461 3.1) through the loop's resolver;
 *   2. the addresses of mta-sts.<domain>, through the same resolver (so
 *      --resolver and the address families apply);
 *   3. TCP to port 443 (conn.h: the private-address guard, when on, is
 *      checked just before each connect), TLS 1.2+ with SNI mta-sts.<domain>,
 * and the WebPKI check: the chain must verify against the TLS context's trust
 * store and the leaf must name mta-sts.<domain> (RFC 8461 3.3);
 *   4. GET /.well-known/mta-sts.txt, parsed with llhttp: only a 200 answer
 *      counts, redirects are not followed, the body is size-capped;
 *   5. the policy body (RFC 8461 3.2).
 *
 * The result is data (statuses, facts, the policy); turning it into
 * verdicts and JSON is for policy.c and writer.c.
 */
#ifndef STLS_STS_H
#define STLS_STS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "stls/dns.h"
#include "stls/sts_mode.h"
#include "stls/tls.h"

/* Outcome of a discovery. XX(NAME, json_name, rfc8460_result_type,
 * message); the result type is NULL where RFC 8460 has none.
 *
 * NONE, TXT_INVALID and DNS_ERROR all mean "no policy known": a sender
 * treats the domain as not implementing MTA-STS (RFC 8461 3.1 for the
 * first two; for DNS_ERROR a sender without a cached policy can do
 * nothing else either). FETCH_ERROR, INVALID and WEBPKI_INVALID mean the
 * domain announced a policy (valid TXT record) that a sender cannot use;
 * RFC 8461 5 then says to deliver as if there were no policy, and RFC 8460
 * reports it with the result type given here. */
#define STLS_STS_STATUS_MAP(XX)                                                \
  XX(NONE, "none", NULL, "no MTA-STS TXT record: MTA-STS does not apply")      \
  XX(TXT_INVALID, "txt-invalid", NULL,                                         \
     "MTA-STS TXT record unusable, treated as no policy (RFC 8461 3.1)")       \
  XX(DNS_ERROR, "dns-error", NULL, "the MTA-STS TXT lookup failed")            \
  XX(OK, "ok", NULL, "policy fetched and valid")                               \
  XX(FETCH_ERROR, "fetch-error", "sts-policy-fetch-error",                     \
     "policy could not be fetched")                                            \
  XX(INVALID, "invalid", "sts-policy-invalid", "policy is not valid")          \
  XX(WEBPKI_INVALID, "webpki-invalid", "sts-webpki-invalid",                   \
     "policy host certificate is not valid for it")

typedef enum {
#define XX(name, json, rt, msg) STLS_STS_##name,
  STLS_STS_STATUS_MAP(XX)
#undef XX
      STLS_STS_STATUS_COUNT
} stls_sts_status_t;

/* JSON name, RFC 8460 result type (or NULL), message. "unknown" (resp.
 * NULL) for an out-of-range value. */
const char *stls_sts_status_name(stls_sts_status_t s);
const char *stls_sts_status_result_type(stls_sts_status_t s);
const char *stls_sts_status_message(stls_sts_status_t s);

/* Where a discovery stopped; every error is tagged with one. */
#define STLS_STS_STAGE_MAP(XX)                                                 \
  XX(NONE, "none")                                                             \
  XX(TXT, "txt")                                                               \
  XX(RESOLVE, "resolve")                                                       \
  XX(CONNECT, "connect")                                                       \
  XX(TLS, "tls")                                                               \
  XX(HTTP, "http")                                                             \
  XX(POLICY, "policy")

typedef enum {
#define XX(name, json) STLS_STS_STAGE_##name,
  STLS_STS_STAGE_MAP(XX)
#undef XX
      STLS_STS_STAGE_COUNT
} stls_sts_stage_t;

const char *stls_sts_stage_name(stls_sts_stage_t s);

/* A parsed policy (RFC 8461 3.2). mx holds the patterns in the order
 * published, lower case, without a trailing dot; "*.example.com" for a
 * wildcard. */
typedef struct {
  stls_sts_mode_t mode;
  char **mx;
  size_t nmx;
  uint32_t max_age; /* seconds, 0 .. 31557600 */
} stls_sts_policy_t;

void stls_sts_policy_free(stls_sts_policy_t *p);

/* Per-step timing in milliseconds; -1 when the step was not reached. */
typedef struct {
  int64_t txt, resolve, connect, tls, http, total;
} stls_sts_timing_t;

typedef struct {
  char *domain; /* as asked */
  stls_sts_status_t status;
  struct {
    stls_sts_stage_t stage; /* NONE when there is no error */
    char code[48];          /* NXDOMAIN, ECONNREFUSED, TLS_ALERT_..., HTTP_404,
                               BODY_TOO_LARGE, CERT_UNTRUSTED, ... ("" none) */
    char message[256];
  } error;
  char *txt;       /* the "v=STSv1;" record used, or NULL */
  char id[33];     /* its id= value, "" when none */
  bool txt_secure; /* the TXT answer had the AD bit */
  /* The HTTPS fetch; zero / "" when not reached. */
  char ip[46];                /* address the policy was fetched from */
  char tls_version[16];       /* "TLSv1.3" */
  char tls_cipher[64];        /* IANA name */
  bool tls_trusted;           /* chain verifies against the trust store */
  unsigned tls_trust_reasons; /* STLS_TRUST_REASON() bits when not trusted */
  bool tls_name_ok;           /* leaf names mta-sts.<domain> */
  int http_status;            /* 0 when no response head was read */
  char content_type[128];     /* as sent, "" when absent */
  char location[256];         /* Location of a (refused) redirect, or "" */
  size_t body_len;            /* bytes of body read */
  stls_sts_policy_t policy;   /* filled when status is OK */
  stls_sts_timing_t timing;
} stls_sts_result_t;

void stls_sts_result_free(stls_sts_result_t *r);

/* Politeness and safety limits; a 0 field takes the default. */
#define STLS_STS_DEFAULT_TIMEOUT_MS 10000
#define STLS_STS_DEFAULT_CONNECT_TIMEOUT_MS 5000
#define STLS_STS_DEFAULT_MAX_BODY (64 * 1024)
#define STLS_STS_DEFAULT_MAX_HEADER_BYTES (16 * 1024)
#define STLS_STS_DEFAULT_MAX_ADDRS 4
#define STLS_STS_DEFAULT_PORT 443

typedef struct {
  /* The HTTPS part as a whole (address lookup, connects, TLS, HTTP); the
   * TXT lookup is bounded by the resolver's own timeouts. RFC 8461 3.3
   * suggests a minute; a scanner that must not stall uses less. */
  unsigned timeout_ms;
  unsigned connect_timeout_ms; /* per address tried */
  size_t max_body;             /* RFC 8461 3.3 suggests 64 KiB */
  size_t max_header_bytes;     /* status line plus headers */
  unsigned max_addrs;          /* addresses of mta-sts.<domain> tried in turn */
  unsigned port;               /* 443; other values only for tests */
  /* RFC 8461 3.3: senders SHOULD check that the media type is text/plain.
   * We do by default (a body of another type is INVALID); set this to
   * accept any type, as some senders do. */
  bool lax_content_type;
  /* Refuse private and special-purpose addresses of the policy host
   * (addrguard.h): no connection, the fetch fails with the code
   * ADDRESS_NOT_ALLOWED when no address is left. */
  bool guard_private;
  /* Do not look up or connect to this family (-4 / -6, --ipv6 off). */
  bool skip_ipv4, skip_ipv6;
} stls_sts_limits_t;

/* One per loop; not thread-safe. */
typedef struct stls_sts_s stls_sts_t;

/* dns and tls must outlive the object (close it before them). lim may be
 * NULL (defaults). Returns 0, UV_EINVAL or UV_ENOMEM. */
int stls_sts_init(stls_sts_t **out, uv_loop_t *loop, stls_dns_t *dns,
                  stls_tls_ctx_t *tls, const stls_sts_limits_t *lim);

/* Close: fetches in flight are cancelled and complete from the loop with
 * status FETCH_ERROR (DNS_ERROR while in the TXT step) and code
 * ECANCELED; memory is released once they have, so run the loop after
 * this. Safe to call from a completion callback. */
void stls_sts_close(stls_sts_t *s);

/* Receives the result and owns it: free it with stls_sts_result_free(). */
typedef void (*stls_sts_done_cb)(stls_sts_result_t *res, void *arg);

/* Discover the MTA-STS policy of domain (normalised: A-label, lower case,
 * no trailing dot). Returns 0 and calls cb exactly once, always from the
 * loop and never before this function has returned; or returns a negative
 * UV error code (UV_EINVAL for a name that is not a host name, UV_ENOMEM,
 * UV_ECANCELED when closing) and never calls cb. */
int stls_sts_fetch(stls_sts_t *s, const char *domain, stls_sts_done_cb cb,
                   void *arg);

/* Does MX host name mxhost match one policy mx pattern (RFC 8461 4.1)?
 * Case-insensitive, a trailing dot on either side ignored; "*." as the
 * whole leftmost label matches exactly one non-empty leftmost label
 * ("*.example.com" matches "mx.example.com", not "example.com" nor
 * "a.b.example.com"). */
bool stls_sts_mx_match(const char *pattern, const char *mxhost);

/* Does mxhost match any of the policy's patterns? */
bool stls_sts_policy_mx_match(const stls_sts_policy_t *p, const char *mxhost);

/* ---- the parsers, pure functions (for unit tests and fuzzing) -------- */

/* Select and parse the MTA-STS TXT record among the n records of
 * _mta-sts.<domain> (RFC 8461 3.1): records not beginning with "v=STSv1;"
 * are discarded; exactly one must remain and follow the grammar, with an
 * id of 1-32 letters and digits. Returns OK (id filled, *which = index of
 * the record), NONE (no candidate), or TXT_INVALID (several candidates,
 * bad syntax, bad or missing id; err says why). */
stls_sts_status_t stls_sts_txt_parse(char *const *txt, const size_t *txt_len,
                                     size_t n, char id[33], size_t *which,
                                     char *err, size_t errlen);

/* Parse a policy body (RFC 8461 3.2). Returns 0 (out filled; free it with
 * stls_sts_policy_free), -1 when the policy is invalid (err says which
 * line and why), or UV_ENOMEM. See sts.c for the strictness choices. */
int stls_sts_policy_parse(const char *text, size_t len, stls_sts_policy_t *out,
                          char *err, size_t errlen);

/* Is a Content-Type header value the text/plain media type (parameters
 * ignored, RFC 8461 3.3)? */
bool stls_sts_content_type_ok(const char *value);

#endif
