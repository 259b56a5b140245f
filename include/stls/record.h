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
  const char *run_id;          /* the run that wrote it, or NULL */
} stls_domain_record_t;

/* The facts the policy verdicts are decided from, besides the hosts. */
typedef struct stls_record_facts_s {
  const char *domain;
  const stls_dns_result_t *dns;        /* status OK */
  stls_dns_tlsa_result_t *const *tlsa; /* per dns->mx entry, or NULL */
  const stls_sts_result_t *sts;        /* or NULL */
  bool sts_checked;                    /* MTA-STS was looked for */
  bool dane_checked;                   /* TLSA was looked up (--dane) */
} stls_record_facts_t;

/* Gather the policy inputs of a domain (DANE state and match per host,
 * which are also written into hosts; MTA-STS pattern matches) and decide
 * every level into out. Returns 0, or -1 on ENOMEM. (policy.c) */
int stls_record_decide_policy(const stls_record_facts_t *f,
                              stls_domain_host_t *hosts, size_t n_hosts,
                              const stls_policy_opts_t *o, stls_policy_t *out);

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

/* The options that shape results, as the summary records them. */
typedef struct stls_run_opts_s {
  unsigned workers, concurrency, per_ip;
  double rate;
  int64_t retry_delay_ms;
  bool dedupe, want_ipv4, want_ipv6, dane, mta_sts, versions;
  const char *ipv6_mode; /* auto | on | off */
  int port;
  unsigned max_mx, max_addrs, dns_timeout_ms, dns_tries;
  int64_t connect_timeout_ms, greeting_timeout_ms, command_timeout_ms,
      tls_timeout_ms;
  const char *resolvers, *ca_file, *secure_match;
  unsigned shard_k, shard_n;
} stls_run_opts_t;

typedef struct stls_summary_s {
  const char *run_id;
  const stls_run_opts_t *opts; /* or NULL */
  bool interrupted;            /* stopped by a signal before the end */
  int64_t rate_wait_ms;        /* time probes waited for --rate */
  uint64_t local_retries;      /* probes put back for lack of descriptors */
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

/* Count one domain record into the summary. */
void stls_summary_add_record(stls_summary_t *s, const stls_domain_record_t *d);

/* Did the connection rate, rather than the network, bound the run? True
 * when probes spent a noticeable share of the run waiting for tokens. */
bool stls_summary_rate_bound(const stls_summary_t *s);

#endif
