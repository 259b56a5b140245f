/* The scan engine: submit a domain, get its finished record by callback on
 * a loop the caller owns. `scan`, `check` and `serve` are front ends on it.
 *
 * Inside, worker threads each own a libuv loop, a c-ares resolver and an
 * mbedTLS context. A domain is resolved by whichever worker took it; each
 * of its (address, port, SNI) probes is sent, as a message, to the worker
 * that owns that address (hash of the address). The owner probes each
 * endpoint once per run and shares the result with every domain that asks,
 * and applies the per-address limit without a lock. The connection rate is
 * one token bucket for the whole engine.
 *
 * Finished records are handed back to the caller's loop (uv_async), so the
 * record callback runs on the caller's thread, one record at a time.
 */
#ifndef STLS_ENGINE_H
#define STLS_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "stls/policy.h"
#include "stls/record.h"
#include "stls/session.h"

/* Politeness defaults (documented in --help and the README). */
#define STLS_DEFAULT_CONCURRENCY 100 /* probes at once, whole engine */
#define STLS_DEFAULT_PER_IP 2        /* probes at once per address */
#define STLS_DEFAULT_RATE 100.0      /* new connections per second */
#define STLS_DEFAULT_RETRY_DELAY_MS 10000
#define STLS_DEFAULT_CACHE_MAX 100000 /* endpoint results kept for sharing */
#define STLS_DEFAULT_DNS_TIMEOUT_MS 2000
#define STLS_DEFAULT_DNS_TRIES 2
#define STLS_DEFAULT_QUEUE_CAP 1024 /* domains accepted but not started */

typedef enum { STLS_IPV6_AUTO, STLS_IPV6_ON, STLS_IPV6_OFF } stls_ipv6_mode_t;

/* Politeness and bounds as data, checked in one place (the scheduler);
 * as OpenSMTPD's mta_limits. Timeouts per SMTP step are in probe. */
typedef struct stls_scan_limits_s {
  unsigned workers;       /* threads, each with its own loop; 0 = 1 */
  unsigned concurrency;   /* probes at once, whole engine */
  unsigned per_ip;        /* probes at once per address */
  double rate;            /* new connections per second; 0 = unlimited */
  int64_t retry_delay_ms; /* a 421 or reset is retried once; < 0: never */
  unsigned max_mx;        /* MX hosts per domain; 0 = no cap */
  unsigned max_addrs;     /* addresses per MX host; 0 = no cap */
  unsigned dns_timeout_ms, dns_tries; /* per try; tries per server */
  size_t cache_max;                   /* endpoint results kept for sharing */
  size_t queue_cap;                   /* domains accepted but not yet started */
} stls_scan_limits_t;

/* Everything that shapes a record. Strings must outlive the engine. */
typedef struct stls_engine_cfg_s {
  stls_scan_limits_t limits;
  bool dedupe; /* probe each (address, port, SNI) once */
  bool want_ipv4, want_ipv6;
  stls_ipv6_mode_t ipv6_mode;
  const char *resolvers; /* "ADDR[:PORT],..." or NULL: resolv.conf */
  bool dane;             /* look TLSA records up (RFC 7672) */
  bool mta_sts;          /* discover and fetch MTA-STS policies */
  const char *ca_file;
  const char *trust_stores[16]; /* "NAME=FILE" (--trust-store) */
  size_t n_trust_stores;
  const char *intermediates; /* --intermediates FILE */
  stls_probe_cfg_t probe;    /* port, ehlo_name, timeouts, versions */
  stls_policy_opts_t policy;
  /* Refuse to connect to private and special-purpose addresses (the
   * service's guard; see addrguard.h). Such hosts get status "blocked". */
  bool guard_private;
} stls_engine_cfg_t;

typedef struct stls_engine_s stls_engine_t;

/* Called on the caller's loop thread for every submitted domain, exactly
 * once, with the tag given at submission. The record and everything it
 * points to are valid only during the call. */
typedef void (*stls_engine_record_cb)(stls_engine_t *e,
                                      const stls_domain_record_t *rec,
                                      void *tag, void *arg);

void stls_scan_limits_defaults(stls_scan_limits_t *l);
void stls_engine_cfg_defaults(stls_engine_cfg_t *cfg);

/* Start the workers. The engine posts records to loop (which the caller
 * runs). Returns 0, or -1 with a one-line reason in err. */
int stls_engine_new(stls_engine_t **out, uv_loop_t *loop,
                    const stls_engine_cfg_t *cfg, stls_engine_record_cb cb,
                    void *arg, char *err, size_t errlen);

/* Submit one domain name as given (it is normalised here; a bad name
 * becomes an invalid-domain record through the callback). Thread-safe and
 * never blocks: returns 0, UV_EAGAIN when queue_cap domains are waiting,
 * UV_ECANCELED after stls_engine_stop(), UV_ENOMEM. */
int stls_engine_submit(stls_engine_t *e, const char *domain, void *tag);

/* The same, but waits for room in the queue. For reader threads only:
 * never call it on the loop thread of the engine's caller. */
int stls_engine_submit_wait(stls_engine_t *e, const char *domain, void *tag);

/* Hand back an invalid-domain record for raw input that is not a domain
 * (why: the reason; both copied). Thread-safe; counts as a submission. */
int stls_engine_submit_invalid(stls_engine_t *e, const char *raw,
                               const char *why, void *tag);

/* Domains submitted whose record has not been delivered yet. */
uint64_t stls_engine_pending(stls_engine_t *e);
/* Domains waiting in the queue (not started). */
size_t stls_engine_queued(stls_engine_t *e);
/* What the engine is doing now (approximate: read without locks). */
typedef struct stls_engine_stats_s {
  unsigned probes_active;  /* SMTP sessions open */
  unsigned domains_active; /* domains started, record not yet finished */
  size_t queued;           /* domains waiting to start */
  int64_t rate_wait_ms;    /* time probes waited for the connection rate */
  uint64_t local_retries;  /* probes put back for lack of descriptors */
} stls_engine_stats_t;

void stls_engine_stats(stls_engine_t *e, stls_engine_stats_t *s);

/* Stop taking domains: submissions fail with UV_ECANCELED and the domains
 * still queued are dropped (their tags are returned through drop_cb, on
 * the calling thread, so the caller can free them). Domains already
 * started run to their end within the timeouts. */
void stls_engine_stop(stls_engine_t *e, void (*drop_cb)(void *tag, void *arg),
                      void *arg);

/* Join the workers and free the engine. Call it from the loop thread once
 * stls_engine_pending() is 0 (or after stop, when it has reached 0);
 * records not yet delivered are dropped. It may be called from the record
 * callback. The memory is released when the caller's loop has closed the
 * engine's async handle (run the loop once more). */
void stls_engine_free(stls_engine_t *e);

#endif
