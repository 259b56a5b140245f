/* Policy verdicts: would mail to this domain be delivered if the sending
 * MTA enforced a given TLS level? Facts come from the probes (trusted,
 * names, expired are separate facts); this module only decides, the way
 * Postfix's SMTP client would (TLS_README, postconf(5)).
 */
#ifndef STLS_POLICY_H
#define STLS_POLICY_H

#include <stdbool.h>
#include <stddef.h>

#include "stls/result.h"
#include "stls/sts_mode.h"

/* Ordered from the weakest; the JSON key, and the Postfix level name. */
#define STLS_LEVEL_MAP(XX)                                                     \
  XX(MAY, "may")                                                               \
  XX(ENCRYPT, "encrypt")                                                       \
  XX(DANE, "dane")                                                             \
  XX(VERIFY, "verify")                                                         \
  XX(SECURE, "secure")                                                         \
  XX(MTA_STS, "mta_sts")

typedef enum {
#define XX(name, json) STLS_LEVEL_##name,
  STLS_LEVEL_MAP(XX)
#undef XX
      STLS_LEVEL_COUNT
} stls_level_t;

const char *stls_level_name(stls_level_t l);
/* Parse "may", "encrypt", ...; -1 if unknown. */
int stls_level_parse(const char *s);

/* What DNSSEC/DANE says about one MX host (RFC 7672, as Postfix acts). */
typedef enum {
  STLS_DANE_NOT_CHECKED = 0, /* no TLSA lookup was made */
  STLS_DANE_INSECURE,        /* MX or address lookup not DNSSEC-validated */
  STLS_DANE_NO_TLSA,         /* secure denial: no TLSA records */
  STLS_DANE_USABLE,          /* secure TLSA with usable DANE-TA/DANE-EE */
  STLS_DANE_UNUSABLE,        /* secure TLSA, none usable: acts as encrypt */
  STLS_DANE_LOOKUP_FAILED    /* TLSA lookup failed (bogus, SERVFAIL) */
} stls_dane_state_t;

/* MTA-STS for the domain (RFC 8461). */
typedef enum {
  STLS_POLICY_STS_NOT_CHECKED = 0,
  STLS_POLICY_STS_NONE,  /* no usable _mta-sts TXT record: no policy */
  STLS_POLICY_STS_OK,    /* policy fetched and valid */
  STLS_POLICY_STS_FAILED /* TXT present, policy unusable (see result_type) */
} stls_policy_sts_t;

typedef struct stls_policy_host_s {
  const stls_host_result_t *res;
  unsigned preference;          /* of its MX host */
  stls_dane_state_t dane;       /* for its MX host */
  bool dane_match;              /* USABLE: the chain matched a record */
  const char *dane_result_type; /* why not, RFC 8460 */
  bool sts_mx_match;            /* its MX host matches the STS policy */
} stls_policy_host_t;

typedef struct stls_policy_input_s {
  const char *domain;
  bool mx_secure;    /* the MX lookup was DNSSEC-validated */
  bool dane_checked; /* TLSA records were looked up where DNSSEC allowed */
  const stls_policy_host_t *hosts;
  size_t n_hosts;
  stls_policy_sts_t sts;
  stls_sts_mode_t sts_mode;
  const char *sts_result_type; /* when STLS_POLICY_STS_FAILED */
} stls_policy_input_t;

/* Postfix's default smtp_tls_secure_cert_match; names.recipient_domain
 * is this match for the recipient domain (see names.h). */
#define STLS_SECURE_CERT_MATCH "nexthop:dot-nexthop"

/* The Postfix client settings the verdicts assume (postconf defaults). */
typedef struct stls_policy_opts_s {
  unsigned mx_address_limit; /* smtp_mx_address_limit, 5 */
  const char *secure_match;  /* smtp_tls_secure_cert_match,
                                "nexthop:dot-nexthop" */
} stls_policy_opts_t;

void stls_policy_opts_defaults(stls_policy_opts_t *o);

typedef struct stls_verdict_s {
  bool pass;      /* Postfix would deliver, whatever order it picks */
  bool all_hosts; /* every reachable address passes */
  bool applies;   /* dane: usable TLSA exist; mta_sts: a policy exists */
  bool tested;    /* at least one address was tried; false: every address
                     was skipped (e.g. --ipv6 off), so pass=false is no
                     failure, only "not tested" (RFC 8460 reports none) */
  const char *result_type; /* first failure's RFC 8460 type, or NULL */
  char note[200];          /* one sentence on how it was decided */
  stls_strlist_t failing;  /* "mx[ip]" of the reachable addresses failing */
  /* "mx[ip]" of addresses this level could not be judged on because of a
   * limit of this client (a certificate message larger than mbedTLS
   * receives): neither passing nor failing, and all_hosts is then false. */
  stls_strlist_t untested;
} stls_verdict_t;

typedef struct stls_policy_s {
  stls_verdict_t v[STLS_LEVEL_COUNT];
  stls_strlist_t unreachable; /* "mx[ip]": no SMTP session at all */
  int recommended;            /* a level, or -1 */
} stls_policy_t;

/* Decide every level. Returns 0, or -1 on ENOMEM (out is then freed). */
int stls_policy_evaluate(const stls_policy_input_t *in,
                         const stls_policy_opts_t *o, stls_policy_t *out);
void stls_policy_free(stls_policy_t *p);

/* One smtp_tls_policy_maps line for the domain's recommended level when
 * it is at least min_level, else a comment saying why not; into buf.
 * Returns the length written. */
size_t stls_policy_map_line(const char *domain, const stls_policy_t *p,
                            const stls_policy_opts_t *o, int min_level,
                            char *buf, size_t len);

#endif
