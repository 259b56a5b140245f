/* The per-domain record and the run summary: what `scan` writes. */
#ifndef STLS_RECORD_H
#define STLS_RECORD_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "stls/dns.h"
#include "stls/policy.h"
#include "stls/result.h"
#include "stls/sts.h"

typedef struct stls_domain_host_s {
  stls_host_result_t res;
  bool shared;     /* result came from a probe made for another domain */
  size_t mx_index; /* into dns->mx */
  /* DANE (--dane): the TLSA state of the MX and, when it has usable
   * records and TLS worked, whether the chain matched one. */
  const char *dane_state; /* NULL when not checked */
  bool dane_checked;
  bool dane_matched;
  char dane_rr[12];             /* "3 1 1" of the matching record */
  const char *dane_result_type; /* RFC 8460, when not matched */
} stls_domain_host_t;

typedef struct stls_domain_record_s {
  const char *domain; /* normalised; the raw input for invalid-domain */
  const char *status; /* ok | null-mx | nxdomain | dns-error | ... */
  time_t scanned_at;
  int64_t duration_ms;
  const stls_dns_result_t *dns; /* NULL when never looked up */
  /* Per dns->mx entry, or NULL: the TLSA answers (--dane). */
  stls_dns_tlsa_result_t *const *tlsa;
  const stls_sts_result_t *sts; /* MTA-STS (--mta-sts), or NULL */
  const char *input_error;      /* invalid-domain: why */
  stls_domain_host_t *hosts;
  size_t n_hosts;
  const stls_policy_t *policy; /* NULL when there is nothing to decide */
} stls_domain_record_t;

/* Run counters, filled by the writer side of `scan` under its lock. */
#define STLS_SUMMARY_MAX_KEYS 24
typedef struct stls_counter_s {
  const char *key;
  uint64_t n;
} stls_counter_t;

typedef struct stls_counts_s {
  stls_counter_t v[STLS_SUMMARY_MAX_KEYS];
  size_t n;
} stls_counts_t;

typedef struct stls_summary_s {
  time_t started_at, finished_at;
  int64_t duration_ms;
  uint64_t domains;
  stls_counts_t domain_status;
  uint64_t mx_hosts, addresses;
  uint64_t probes_made, probes_shared, probes_skipped;
  uint64_t starttls_offered, tls_ok, trusted, mx_hostname_match;
  stls_counts_t host_status;
  stls_counts_t tls_versions;
  stls_counts_t recommended; /* domains by recommended policy level */
  uint64_t input_lines, input_invalid, resumed_skipped, shard_skipped;
  const char *ehlo_name; /* what we said in EHLO */
} stls_summary_t;

/* Count key in c (keys are static strings or strings that outlive c). */
void stls_counts_add(stls_counts_t *c, const char *key, uint64_t n);

#endif
