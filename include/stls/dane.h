/* DANE for SMTP (RFC 7672, with the RFC 7671 updates) as Postfix applies
 * it: what an MX host's TLSA RRset means before connecting, and whether
 * the certificate chain a server sent matches it. Pure functions: the
 * lookups are stls_dns_lookup_tlsa() and the chain comes from a probe. */
#ifndef STLS_DANE_H
#define STLS_DANE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stls/dns.h"
#include "stls/result.h"

/* TLSA certificate usages, selectors and matching types (RFC 6698, RFC
 * 7218 acronyms). */
enum {
  STLS_DANE_PKIX_TA = 0,
  STLS_DANE_PKIX_EE = 1,
  STLS_DANE_DANE_TA = 2,
  STLS_DANE_DANE_EE = 3,
  STLS_DANE_SEL_CERT = 0,
  STLS_DANE_SEL_SPKI = 1,
  STLS_DANE_MT_FULL = 0,
  STLS_DANE_MT_SHA256 = 1,
  STLS_DANE_MT_SHA512 = 2
};

/* Whether one TLSA record can be used for SMTP, and why not.
 * XX(NAME, json_name, message) */
#define STLS_DANE_RR_MAP(XX)                                                   \
  XX(USABLE, "usable", "usable")                                               \
  XX(PKIX_USAGE, "pkix-usage",                                                 \
     "PKIX-TA(0) and PKIX-EE(1) are unusable for SMTP (RFC 7672 3.1.3)")       \
  XX(BAD_USAGE, "unknown-usage", "unknown certificate usage")                  \
  XX(BAD_SELECTOR, "unknown-selector", "unknown selector")                     \
  XX(BAD_MTYPE, "unknown-matching-type", "unknown matching type")              \
  XX(BAD_LENGTH, "bad-digest-length",                                          \
     "digest length does not fit the matching type")                           \
  XX(BAD_DATA, "bad-data", "full data is not a certificate or public key")

typedef enum {
#define XX(name, json, message) STLS_DANE_RR_##name,
  STLS_DANE_RR_MAP(XX)
#undef XX
} stls_dane_rr_check_t;

const char *stls_dane_rr_check_name(stls_dane_rr_check_t c);

/* Classify one record. Usable are DANE-TA(2) and DANE-EE(3) with selector
 * Cert(0) or SPKI(1) and matching type Full(0) (data that parses as a
 * certificate, resp. a SubjectPublicKeyInfo), SHA2-256(1) (32 bytes) or
 * SHA2-512(2) (64 bytes); everything else is unusable, as OpenSSL's DANE
 * code (which Postfix uses) refuses to load it. */
stls_dane_rr_check_t stls_dane_rr_check(const stls_dns_tlsa_rr_t *rr);

/* The record in presentation form, "3 1 1 <hex>" (lower case), malloc'd;
 * NULL on ENOMEM. */
char *stls_dane_rr_format(const stls_dns_tlsa_rr_t *rr);

/* What an MX host's TLSA lookup means for the dane level, before any
 * connection (RFC 7672 2.2). XX(NAME, json_name, message) */
#define STLS_TLSA_STATE_MAP(XX)                                                \
  XX(INSECURE, "insecure",                                                     \
     "no DNSSEC-validated TLSA answer: DANE does not apply (as may)")          \
  XX(NO_TLSA, "no-tlsa",                                                       \
     "validated: no TLSA records; DANE does not apply (as may)")               \
  XX(FAILED, "failed",                                                         \
     "TLSA lookup failed (bogus or unanswered): delivery to the host defers")  \
  XX(UNUSABLE, "unusable",                                                     \
     "TLSA records, none usable: mandatory unauthenticated TLS (as encrypt)")  \
  XX(USABLE, "usable", "usable TLSA records: the server must match one")

typedef enum {
#define XX(name, json, message) STLS_TLSA_STATE_##name,
  STLS_TLSA_STATE_MAP(XX)
#undef XX
} stls_tlsa_state_t;

const char *stls_tlsa_state_name(stls_tlsa_state_t s);

/* The state of a TLSA lookup, and (when usable is not NULL) the number of
 * usable records. Only meaningful for a host whose MX and address answers
 * were secure (stls_dns_result_t.mx_secure, stls_dns_mx_t.addr_secure):
 * otherwise Postfix does not look TLSA up and the host is INSECURE.
 *   - OK and secure: USABLE or UNUSABLE (by stls_dane_rr_check);
 *   - NODATA/NXDOMAIN and secure: NO_TLSA;
 *   - OK/NODATA/NXDOMAIN not secure: INSECURE;
 *   - anything else (SERVFAIL - what a validating resolver answers for
 *     bogus data -, TIMEOUT, ...): FAILED, RFC 8460 "dnssec-invalid". */
stls_tlsa_state_t stls_tlsa_state(const stls_dns_tlsa_result_t *t,
                                  size_t *usable);

/* RFC 8460 result type for a state: "dnssec-invalid" for FAILED, NULL for
 * the others (INSECURE/NO_TLSA mean "dane-required" only for a sender
 * that insists on DANE, Postfix's dane-only; see stls_dane_required_type). */
const char *stls_tlsa_state_result_type(stls_tlsa_state_t s);

/* "dane-required" for INSECURE and NO_TLSA (a DANE-only sender finds no
 * validated TLSA records), else what stls_tlsa_state_result_type says. */
const char *stls_dane_required_type(stls_tlsa_state_t s);

/* Why a chain does not match a usable RRset.
 * XX(NAME, json_name, rfc8460_result_type, message). NO_MATCH, TA_CHAIN,
 * TA_EXPIRED and TA_NAME are in the order the checks run: a later one
 * means a record got further. */
#define STLS_DANE_FAIL_MAP(XX)                                                 \
  XX(NONE, "none", NULL, "matched")                                            \
  XX(NO_USABLE, "no-usable-tlsa", "tlsa-invalid", "no usable TLSA records")    \
  XX(NO_CHAIN, "no-certificate", "validation-failure",                         \
     "the server sent no certificate")                                         \
  XX(NO_MATCH, "no-match", "tlsa-invalid",                                     \
     "no TLSA record matches the certificate chain")                           \
  XX(TA_CHAIN, "ta-chain-invalid", "validation-failure",                       \
     "the chain does not verify up to the DANE-TA trust anchor")               \
  XX(TA_EXPIRED, "ta-chain-expired", "certificate-expired",                    \
     "a certificate between the leaf and the DANE-TA trust anchor is expired " \
     "or not yet valid")                                                       \
  XX(TA_NAME, "ta-name-mismatch", "certificate-host-mismatch",                 \
     "DANE-TA matched, but the certificate names neither the MX host nor the " \
     "domain")                                                                 \
  XX(NOMEM, "error", "validation-failure", "out of memory")

typedef enum {
#define XX(name, json, type, message) STLS_DANE_FAIL_##name,
  STLS_DANE_FAIL_MAP(XX)
#undef XX
} stls_dane_fail_t;

const char *stls_dane_fail_name(stls_dane_fail_t f);
const char *stls_dane_fail_result_type(stls_dane_fail_t f); /* NULL for NONE */

/* The names a DANE-TA(2) match must find in the leaf (RFC 7672 3.2.2). */
typedef struct {
  const char *base_domain; /* TLSA base domain: the MX host name (the name
                              _25._tcp. was prefixed to) */
  const char *nexthop;     /* the recipient domain, or NULL: Postfix also
                              accepts it at level dane */
} stls_dane_opts_t;

typedef struct {
  bool matched;            /* DANE authentication succeeded */
  stls_dane_fail_t fail;   /* NONE when matched */
  const char *result_type; /* RFC 8460 result type; NULL when matched */
  size_t usable;           /* usable records in the RRset */
  int match_index;         /* index into the RRset of the record that
                              matched (or, on a TA failure, that was
                              tried furthest); -1 if none */
  char match_rr[12];       /* its "usage selector mtype", e.g. "3 1 1" */
  int match_depth;         /* chain position of the matching certificate
                              (0 = leaf); -1 for a DANE-TA anchor the
                              server did not send (2 0 0 / 2 1 0 data) */
  bool name_checked;       /* DANE-TA: names were checked (never for EE) */
} stls_dane_verdict_t;

/* Match the chain as sent (leaf first) against the RRset (RFC 7672 3.1,
 * as OpenSSL's DANE code does for Postfix):
 *   - DANE-EE(3): the leaf's certificate (selector 0) or public key (1)
 *     matches; no name, expiry or trust checks.
 *   - DANE-TA(2): a certificate at depth >= 1 of the chain matches (a
 *     record never matches the leaf as a TA), or the record's full data
 *     is the trust anchor itself - a certificate (2 0 0) or a public key
 *     that signed a certificate of the chain (2 1 0) - which the server
 *     may then omit (RFC 7671 5.2). The chain must verify from the leaf
 *     up to that anchor with it as the only trust anchor (the certificates
 *     sent serve as intermediates), every certificate on that path,
 *     including an anchor certificate, must be within its validity period
 *     (as OpenSSL checks; a bare 2 1 0 key has none), and the leaf must
 *     name base_domain or nexthop (SAN dNSNames, the CN only without
 *     them; RFC 6125 wildcards).
 * EE records are tried first; a failure reports the furthest a TA record
 * got (name > expiry > chain > no match). Returns 0, or -1 on ENOMEM
 * (out->fail NOMEM). */
int stls_dane_verify(const stls_dns_tlsa_rr_t *rr, size_t nrr,
                     const stls_cert_t *chain, size_t nchain,
                     const stls_dane_opts_t *o, stls_dane_verdict_t *out);

#endif
