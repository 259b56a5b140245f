/* The batch scanner: domains in, one NDJSON record per domain out.
 *
 * Worker threads each own a libuv loop, a c-ares resolver and an mbedTLS
 * context. A domain is resolved by whichever worker took it; each of its
 * (address, port, SNI) probes is sent, as a message, to the worker that
 * owns that address (hash of the address). The owner probes each endpoint
 * once per run and shares the result with every domain that asks, and
 * applies the politeness limits for its addresses without any lock.
 */
#ifndef STLS_SCAN_H
#define STLS_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stls/policy.h"
#include "stls/record.h"
#include "stls/session.h"

/* Politeness defaults (documented in --help and the README). */
#define STLS_DEFAULT_CONCURRENCY 100   /* probes at once, whole run */
#define STLS_DEFAULT_PER_IP 2          /* probes at once per address */
#define STLS_DEFAULT_RATE 100.0        /* new connections per second */
#define STLS_DEFAULT_RETRY_DELAY_MS 10000
#define STLS_DEFAULT_CACHE_MAX 100000  /* endpoint results kept for sharing */
#define STLS_DEFAULT_DNS_TIMEOUT_MS 2000
#define STLS_DEFAULT_DNS_TRIES 2

typedef enum { STLS_IPV6_AUTO, STLS_IPV6_ON, STLS_IPV6_OFF } stls_ipv6_mode_t;

typedef struct stls_scan_opts_s {
  char **domains; /* from the command line */
  size_t n_domains;
  const char *input;  /* -i FILE, "-" = stdin; NULL when domains given */
  const char *output; /* -o FILE; NULL = stdout */
  const char *summary_file;
  bool resume;
  bool quiet;
  unsigned shard_k, shard_n; /* keep shard k of n (1-based); n 0 = all */
  unsigned workers;
  unsigned concurrency;
  unsigned per_ip;
  double rate; /* 0 = unlimited */
  int64_t retry_delay_ms; /* < 0: never retry */
  bool dedupe;
  bool want_ipv4, want_ipv6;
  stls_ipv6_mode_t ipv6_mode;
  const char *resolvers; /* "ADDR[:PORT],..." or NULL */
  bool dane;             /* look TLSA records up (RFC 7672) */
  bool mta_sts;          /* discover and fetch MTA-STS policies */
  unsigned dns_timeout_ms, dns_tries; /* per try; tries per server */
  unsigned max_mx, max_addrs;
  const char *ca_file;
  const char *trust_stores[16]; /* "NAME=FILE" (--trust-store) */
  size_t n_trust_stores;
  const char *intermediates;     /* --intermediates FILE */
  stls_probe_cfg_t probe; /* port, ehlo_name and timeouts */
  size_t cache_max;
  /* Policy verdicts */
  const char *postfix_policy; /* write smtp_tls_policy_maps lines here */
  int min_level;              /* lowest level worth a policy line */
  stls_policy_opts_t policy;
  /* Called (under the output lock, from any thread) for every record;
   * when set, records are not written as JSON unless output is set. */
  void (*on_record)(const stls_domain_record_t *d, void *arg);
  void *on_record_arg;
} stls_scan_opts_t;

void stls_scan_opts_defaults(stls_scan_opts_t *o);

/* Run the scan. Returns the process exit status: 0 when every domain got
 * its record, 1 on a fatal error (message on stderr). */
int stls_scan_run(const stls_scan_opts_t *o);

/* Does this machine have an IPv6 route to anything but itself? Reads the
 * kernel routing table; sends nothing. */
bool stls_ipv6_route_available(void);

/* Is domain in shard k of n (k 1-based)? Stable across runs and machines. */
bool stls_shard_keep(const char *domain, unsigned k, unsigned n);

#endif
