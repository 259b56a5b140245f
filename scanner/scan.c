/* The batch scanner. See scan.h for the architecture. */
#include "stls/scan.h"
#include "stls/sts.h"
#include "stls/dane.h"
#include "stls/dns.h"
#include "stls/domain.h"
#include "stls/record.h"
#include "stls/tls.h"
#include "stls/util.h"
#include "stls/writer.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#define INPUT_QUEUE_CAP 1024

typedef struct scan_s scan_t;
typedef struct worker_s worker_t;
typedef struct job_s job_t;

/* ---- messages between workers ---------------------------------------- */

enum { MSG_PROBE_REQ, MSG_PROBE_RES };

typedef struct msg_s {
  struct msg_s *next;
  int type;
  worker_t *from; /* requester */
  job_t *job;
  size_t slot;
  /* request */
  char ip[64];
  char *sni;
  /* response */
  stls_host_result_t res;
  bool shared;
} msg_t;

/* ---- owner side: endpoints ------------------------------------------- */

typedef struct waiter_s {
  struct waiter_s *next;
  worker_t *w;
  job_t *job;
  size_t slot;
} waiter_t;

typedef struct ipstate_s {
  char ip[64];
  unsigned active;
  unsigned refs; /* endpoints queued, parked or running on this address */
  struct endpoint_s *blocked_head, *blocked_tail;
} ipstate_t;

typedef struct endpoint_s {
  char *key; /* "ip|port|sni"; NULL when not in the table (no dedupe) */
  char ip[64];
  char *sni;
  int done;
  int retried;
  stls_host_result_t res;
  waiter_t *waiters;
  ipstate_t *ips;
  struct endpoint_s *qnext;     /* ready or blocked queue */
  struct endpoint_s *done_next; /* eviction FIFO */
  worker_t *w;
} endpoint_t;

/* ---- requester side: domains ----------------------------------------- */

typedef struct tlsa_ctx_s {
  job_t *job;
  size_t mx;
} tlsa_ctx_t;

struct job_s {
  worker_t *w;
  int waiting; /* parts still running: DNS and probes; MTA-STS */
  stls_sts_result_t *sts;
  stls_dns_tlsa_result_t **tlsa; /* per MX host, when --dane */
  tlsa_ctx_t *tlsa_ctx;
  char *domain;
  time_t scanned_at;
  int64_t t0;
  stls_dns_result_t *dns;
  stls_domain_host_t *hosts;
  size_t n_hosts, pending;
};

struct worker_s {
  scan_t *scan;
  unsigned id;
  uv_thread_t thread;
  uv_loop_t loop;
  uv_async_t async;
  uv_timer_t rate_timer;
  uv_mutex_t mu; /* guards inbox and stop */
  msg_t *inbox_head, *inbox_tail;
  int stop;
  stls_dns_t *dns;
  stls_tls_ctx_t *tls;
  stls_sts_t *sts; /* --mta-sts */
  stls_probe_cfg_t cfg;
  /* requester */
  unsigned jobs_inflight, jobs_max;
  /* owner */
  stls_strmap_t *endpoints;
  stls_strmap_t *ipstates;
  stls_strmap_t *tls12_addrs; /* "ip|port" known to need the TLS 1.2 hello */
  endpoint_t *ready_head, *ready_tail;
  endpoint_t *done_head, *done_tail;
  size_t done_count;
  unsigned active, active_max;
  double tokens, rate, burst;
  int64_t tokens_at;
  int rate_timer_armed;
  char init_error[300];
};

struct scan_s {
  const stls_scan_opts_t *o;
  worker_t *workers;
  unsigned nw;
  bool ipv6_ok;
  /* input queue: main thread produces, workers consume */
  uv_mutex_t in_mu;
  uv_cond_t in_not_full;
  char **in_items;
  size_t in_head, in_count;
  /* output: one lock for the file, counters and progress */
  uv_mutex_t out_mu;
  uv_cond_t out_cond;
  FILE *out;
  FILE *policy_out;
  uint64_t submitted, written;
  int write_error;
  stls_summary_t sum;
  bool progress;
  uint64_t total_hint;
  int64_t t0, last_progress;
};

void stls_scan_opts_defaults(stls_scan_opts_t *o) {
  memset(o, 0, sizeof(*o));
  stls_probe_cfg_defaults(&o->probe);
  o->concurrency = STLS_DEFAULT_CONCURRENCY;
  o->per_ip = STLS_DEFAULT_PER_IP;
  o->rate = STLS_DEFAULT_RATE;
  o->retry_delay_ms = STLS_DEFAULT_RETRY_DELAY_MS;
  o->dedupe = true;
  o->want_ipv4 = o->want_ipv6 = true;
  o->ipv6_mode = STLS_IPV6_AUTO;
  o->cache_max = STLS_DEFAULT_CACHE_MAX;
  o->dns_timeout_ms = STLS_DEFAULT_DNS_TIMEOUT_MS;
  o->dns_tries = STLS_DEFAULT_DNS_TRIES;
  o->min_level = STLS_LEVEL_ENCRYPT;
  stls_policy_opts_defaults(&o->policy);
}

bool stls_shard_keep(const char *domain, unsigned k, unsigned n) {
  if (n <= 1)
    return true;
  return stls_hash64(domain) % n == (uint64_t)(k - 1);
}

bool stls_ipv6_route_available(void) {
  /* /proc/net/ipv6_route: dest, plen, src, splen, gw, metric, refcnt, use,
   * flags, dev. A usable route is up, not a reject route, not a local
   * address, and leads to global unicast space (2000::/3) or is default. */
  FILE *f = fopen("/proc/net/ipv6_route", "r");
  char dest[40], dev[32];
  unsigned plen, flags;
  bool ok = false;
  if (!f)
    return false;
  while (!ok && fscanf(f, "%32s %x %*s %*x %*s %*x %*x %*x %x %31s", dest,
                       &plen, &flags, dev) == 4) {
    unsigned first = 0;
    sscanf(dest, "%1x", &first);
    if (!(flags & 0x1) || (flags & 0x200) || (flags & 0x80000000u))
      continue;
    if (plen == 0 || (first & 0xe) == 0x2)
      ok = true;
  }
  fclose(f);
  return ok;
}

/* ---- messaging -------------------------------------------------------- */

static void post(worker_t *to, msg_t *m) {
  m->next = NULL;
  uv_mutex_lock(&to->mu);
  if (to->inbox_tail)
    to->inbox_tail->next = m;
  else
    to->inbox_head = m;
  to->inbox_tail = m;
  uv_mutex_unlock(&to->mu);
  uv_async_send(&to->async);
}

static worker_t *owner_of(scan_t *sc, const char *ip) {
  return &sc->workers[stls_hash64(ip) % sc->nw];
}

/* ---- output ----------------------------------------------------------- */

static void count_host(stls_summary_t *s, const stls_domain_host_t *h) {
  const stls_host_result_t *r = &h->res;
  stls_counts_add(&s->host_status, stls_host_status_name(r->status), 1);
  if (r->status == STLS_HOST_SKIPPED)
    s->probes_skipped++;
  else if (h->shared)
    s->probes_shared++;
  else
    s->probes_made++;
  if (r->starttls_offered)
    s->starttls_offered++;
  if (r->tls_done) {
    s->tls_ok++;
    /* version strings come from mbedTLS as static literals */
    stls_counts_add(&s->tls_versions,
                    strcmp(r->tls.version, "TLSv1.3") == 0 ? "TLSv1.3"
                    : strcmp(r->tls.version, "TLSv1.2") == 0 ? "TLSv1.2"
                                                             : "other",
                    1);
    if (r->tls.trusted)
      s->trusted++;
    if (r->tls.name_mx)
      s->mx_hostname_match++;
  }
}

static void progress_line(scan_t *sc, int final) {
  int64_t now = stls_now_ms();
  double secs = (double)(now - sc->t0) / 1000.0;
  double rate = secs > 0 ? (double)sc->written / secs : 0;
  uint64_t failed = 0;
  for (size_t i = 0; i < sc->sum.domain_status.n; i++)
    if (strcmp(sc->sum.domain_status.v[i].key, "ok") != 0)
      failed += sc->sum.domain_status.v[i].n;
  if (!final && now - sc->last_progress < 500)
    return;
  sc->last_progress = now;
  if (sc->total_hint > 0 && rate > 0) {
    double eta = (double)(sc->total_hint > sc->written
                              ? sc->total_hint - sc->written
                              : 0) /
                 rate;
    fprintf(stderr,
            "\r%llu/%llu domains  %.1f/s  ETA %.0fs  not-ok %llu   ",
            (unsigned long long)sc->written,
            (unsigned long long)sc->total_hint, rate, eta,
            (unsigned long long)failed);
  } else {
    fprintf(stderr, "\r%llu domains  %.1f/s  not-ok %llu   ",
            (unsigned long long)sc->written, rate,
            (unsigned long long)failed);
  }
  if (final)
    fputc('\n', stderr);
}

/* Write one domain record and count it. Called from any thread. */
static void emit(scan_t *sc, const stls_domain_record_t *d) {
  cJSON *rec = sc->out ? stls_json_domain(d) : NULL;
  uv_mutex_lock(&sc->out_mu);
  if (sc->out && (!rec || stls_json_write_line(sc->out, rec) != 0))
    sc->write_error = errno ? errno : ENOMEM;
  if (sc->o->on_record)
    sc->o->on_record(d, sc->o->on_record_arg);
  if (sc->policy_out) {
    char line[1200];
    if (d->policy)
      stls_policy_map_line(d->domain, d->policy, &sc->o->policy,
                           sc->o->min_level, line, sizeof(line));
    else
      snprintf(line, sizeof(line), "# %s: no verdict (%s)\n", d->domain,
               d->status);
    if (fputs(line, sc->policy_out) == EOF || fflush(sc->policy_out) == EOF)
      sc->write_error = errno ? errno : EIO;
  }
  sc->sum.domains++;
  stls_counts_add(&sc->sum.domain_status, d->status, 1);
  if (d->dns) {
    sc->sum.mx_hosts += d->dns->nmx;
    for (size_t i = 0; i < d->dns->nmx; i++)
      sc->sum.addresses += d->dns->mx[i].naddrs;
  }
  for (size_t i = 0; i < d->n_hosts; i++)
    count_host(&sc->sum, &d->hosts[i]);
  if (d->policy)
    stls_counts_add(&sc->sum.recommended,
                    d->policy->recommended >= 0
                        ? stls_level_name((stls_level_t)d->policy->recommended)
                        : "none",
                    1);
  sc->written++;
  if (sc->progress)
    progress_line(sc, 0);
  uv_cond_signal(&sc->out_cond);
  uv_mutex_unlock(&sc->out_mu);
  cJSON_Delete(rec);
}

/* ---- requester side --------------------------------------------------- */

static void pull_jobs(worker_t *w);

static void job_free(job_t *j) {
  stls_sts_result_free(j->sts);
  for (size_t i = 0; j->tlsa && i < j->dns->nmx; i++)
    stls_dns_tlsa_result_free(j->tlsa[i]);
  free(j->tlsa);
  free(j->tlsa_ctx);
  for (size_t i = 0; i < j->n_hosts; i++)
    stls_host_result_free(&j->hosts[i].res);
  free(j->hosts);
  stls_dns_result_free(j->dns);
  free(j->domain);
  free(j);
}

/* What DANE says for one host (RFC 7672 as Postfix applies it): the TLSA
 * state of its MX, and for usable records whether the chain matched. */
static void dane_host(job_t *j, stls_domain_host_t *h, stls_policy_host_t *ph) {
  const stls_dns_mx_t *mx = &j->dns->mx[h->mx_index];
  const stls_dns_tlsa_result_t *t = j->tlsa[h->mx_index];
  stls_tlsa_state_t st;
  size_t usable = 0;

  if (!j->dns->mx_secure || !mx->addr_secure || !t) {
    ph->dane = STLS_DANE_INSECURE;
    h->dane_state = "insecure";
    return;
  }
  st = stls_tlsa_state(t, &usable);
  h->dane_state = stls_tlsa_state_name(st);
  switch (st) {
  case STLS_TLSA_STATE_NO_TLSA: ph->dane = STLS_DANE_NO_TLSA; break;
  case STLS_TLSA_STATE_FAILED: ph->dane = STLS_DANE_LOOKUP_FAILED; break;
  case STLS_TLSA_STATE_UNUSABLE: ph->dane = STLS_DANE_UNUSABLE; break;
  case STLS_TLSA_STATE_USABLE: ph->dane = STLS_DANE_USABLE; break;
  default: ph->dane = STLS_DANE_INSECURE; break;
  }
  if (st == STLS_TLSA_STATE_USABLE && h->res.tls_done) {
    stls_dane_verdict_t v;
    stls_dane_opts_t o = {mx->host, j->domain};
    if (stls_dane_verify(t->rr, t->nrr, h->res.tls.chain, h->res.tls.n_chain,
                         &o, &v) == 0) {
      ph->dane_match = v.matched;
      ph->dane_result_type = v.result_type;
      h->dane_checked = true;
      h->dane_matched = v.matched;
      h->dane_result_type = v.result_type;
      stls_strlcpy(h->dane_rr, v.match_index >= 0 ? v.match_rr : "",
                   sizeof(h->dane_rr));
    }
  }
}

/* What MTA-STS says for the domain (RFC 8461): no policy (also for an
 * invalid TXT record: senders then have no policy), a usable policy, or a
 * published one that cannot be used (delivered as without it). */
static void sts_input(const job_t *j, stls_policy_input_t *in) {
  const stls_sts_result_t *r = j->sts;
  if (!j->w->sts || !r) {
    in->sts = STLS_POLICY_STS_NOT_CHECKED;
    return;
  }
  switch (r->status) {
  case STLS_STS_OK:
    in->sts = STLS_POLICY_STS_OK;
    in->sts_mode = r->policy.mode;
    break;
  case STLS_STS_FETCH_ERROR:
  case STLS_STS_INVALID:
  case STLS_STS_WEBPKI_INVALID:
    in->sts = STLS_POLICY_STS_FAILED;
    in->sts_result_type = stls_sts_status_result_type(r->status);
    break;
  default:
    in->sts = STLS_POLICY_STS_NONE;
    break;
  }
}

/* Gather the facts the policy needs and decide every level. */
static int decide_policy(worker_t *w, job_t *j, stls_policy_t *out) {
  stls_policy_input_t in;
  stls_policy_host_t *ph = calloc(j->n_hosts ? j->n_hosts : 1, sizeof(*ph));
  int rc;
  if (!ph)
    return -1;
  memset(&in, 0, sizeof(in));
  in.domain = j->domain;
  in.hosts = ph;
  in.n_hosts = j->n_hosts;
  in.mx_secure = j->dns->mx_secure;
  in.dane_checked = w->scan->o->dane;
  sts_input(j, &in);
  for (size_t i = 0; i < j->n_hosts; i++) {
    stls_domain_host_t *h = &j->hosts[i];
    ph[i].res = &h->res;
    ph[i].preference = j->dns->mx[h->mx_index].preference;
    if (j->tlsa)
      dane_host(j, h, &ph[i]);
    if (j->sts && j->sts->status == STLS_STS_OK)
      ph[i].sts_mx_match = stls_sts_policy_mx_match(&j->sts->policy,
                                                    h->res.mx);
  }
  rc = stls_policy_evaluate(&in, &w->scan->o->policy, out);
  free(ph);
  return rc;
}

static void job_finish(job_t *j) {
  worker_t *w = j->w;
  stls_domain_record_t d;
  stls_policy_t policy;
  memset(&d, 0, sizeof(d));
  d.domain = j->domain;
  d.status = j->dns ? stls_dns_status_domain_name(j->dns->status) : "dns-error";
  d.scanned_at = j->scanned_at;
  d.duration_ms = stls_now_ms() - j->t0;
  d.dns = j->dns;
  d.tlsa = j->tlsa;
  d.sts = j->w->sts ? j->sts : NULL;
  d.hosts = j->hosts;
  d.n_hosts = j->n_hosts;
  for (size_t i = 0; i < j->n_hosts; i++) {
    const stls_dns_mx_t *m = &j->dns->mx[j->hosts[i].mx_index];
    if (m->is_cname)
      stls_host_result_add_finding(
          &j->hosts[i].res, "mx-cname",
          "MX target %s is an alias (CNAME); RFC 2181 10.3 forbids that",
          m->host);
    if (m->is_ip_literal)
      stls_host_result_add_finding(
          &j->hosts[i].res, "mx-ip-literal",
          "MX target %s is an address, not a host name (RFC 5321 5.1)",
          m->host);
  }
  if (j->dns && j->dns->status == STLS_DNS_OK &&
      decide_policy(w, j, &policy) == 0)
    d.policy = &policy;
  emit(w->scan, &d);
  if (d.policy)
    stls_policy_free(&policy);
  job_free(j);
  w->jobs_inflight--;
  pull_jobs(w);
}

/* The DNS-and-probes part or the MTA-STS part is over; the record is
 * written when both are. */
static void job_part_done(job_t *j) {
  if (--j->waiting == 0)
    job_finish(j);
}

static void sts_done_cb(stls_sts_result_t *res, void *arg) {
  job_t *j = arg;
  j->sts = res;
  job_part_done(j);
}

static void tlsa_done_cb(stls_dns_tlsa_result_t *res, void *arg) {
  tlsa_ctx_t *c = arg;
  job_t *j = c->job;
  j->tlsa[c->mx] = res;
  if (--j->pending == 0)
    job_part_done(j);
}

/* Start the TLSA lookups of a domain with DNSSEC-validated MX records;
 * returns how many are in flight (each counts in j->pending). */
static size_t start_tlsa(worker_t *w, job_t *j) {
  const stls_dns_result_t *d = j->dns;
  size_t n = 0;
  if (!w->scan->o->dane || !d->mx_secure || d->nmx == 0)
    return 0;
  j->tlsa = calloc(d->nmx, sizeof(*j->tlsa));
  j->tlsa_ctx = calloc(d->nmx, sizeof(*j->tlsa_ctx));
  if (!j->tlsa || !j->tlsa_ctx) {
    free(j->tlsa);
    free(j->tlsa_ctx);
    j->tlsa = NULL;
    j->tlsa_ctx = NULL;
    return 0; /* the policy then says DANE was not checked */
  }
  for (size_t i = 0; i < d->nmx; i++) {
    /* Postfix looks TLSA up only for hosts whose addresses validated. */
    if (!d->mx[i].addr_secure || d->mx[i].naddrs == 0)
      continue;
    j->tlsa_ctx[i].job = j;
    j->tlsa_ctx[i].mx = i;
    if (stls_dns_lookup_tlsa(w->dns, d->mx[i].host,
                             (unsigned)w->cfg.port, tlsa_done_cb,
                             &j->tlsa_ctx[i]) == 0)
      n++;
  }
  return n;
}

static void dns_done_cb(stls_dns_result_t *res, void *arg) {
  job_t *j = arg;
  worker_t *w = j->w;
  scan_t *sc = w->scan;
  size_t n = 0, k = 0;

  j->dns = res;
  if (!res || res->status != STLS_DNS_OK) {
    job_part_done(j);
    return;
  }
  for (size_t i = 0; i < res->nmx; i++)
    n += res->mx[i].naddrs;
  j->hosts = n ? calloc(n, sizeof(*j->hosts)) : NULL;
  if (n && !j->hosts) {
    job_part_done(j); /* out of memory: the record says ok with no hosts */
    return;
  }
  /* Create every slot before posting any request: a reply cannot arrive
   * before this callback returns (it comes through our own async), but
   * the count must be final first. */
  for (size_t i = 0; i < res->nmx; i++)
    for (size_t a = 0; a < res->mx[i].naddrs; a++, k++) {
      stls_domain_host_t *h = &j->hosts[k];
      const stls_dns_addr_t *ad = &res->mx[i].addrs[a];
      stls_host_result_init(&h->res, res->mx[i].host, ad->text,
                            w->cfg.port);
      h->mx_index = i;
      j->n_hosts++;
    }
  j->pending = 0;
  for (k = 0; k < j->n_hosts; k++) {
    stls_domain_host_t *h = &j->hosts[k];
    if (h->res.family == 6 && !sc->ipv6_ok) {
      stls_host_result_fail(&h->res, STLS_HOST_SKIPPED, STLS_STAGE_CONNECT,
                            "NO_IPV6_ROUTE",
                            "this machine has no IPv6 route; not probed");
      continue;
    }
    j->pending++;
  }
  /* TLSA answers never come before this callback returns, so counting
   * them in after the probes is safe. */
  j->pending += start_tlsa(w, j);
  if (j->pending == 0) {
    job_part_done(j);
    return;
  }
  for (k = 0; k < j->n_hosts; k++) {
    stls_domain_host_t *h = &j->hosts[k];
    msg_t *m;
    if (h->res.status == STLS_HOST_SKIPPED && h->res.error.set)
      continue;
    m = calloc(1, sizeof(*m));
    if (m)
      m->sni = stls_strdup(h->res.mx);
    if (!m || !m->sni) {
      free(m);
      stls_host_result_fail(&h->res, STLS_HOST_SKIPPED, STLS_STAGE_CONNECT,
                            "ENOMEM", "out of memory");
      if (--j->pending == 0) {
        job_part_done(j);
        return;
      }
      continue;
    }
    m->type = MSG_PROBE_REQ;
    m->from = w;
    m->job = j;
    m->slot = k;
    stls_strlcpy(m->ip, h->res.ip, sizeof(m->ip));
    post(owner_of(sc, m->ip), m);
  }
}

static void on_probe_result(worker_t *w, msg_t *m) {
  job_t *j = m->job;
  stls_domain_host_t *h = &j->hosts[m->slot];
  (void)w;
  stls_host_result_free(&h->res);
  h->res = m->res; /* move */
  h->shared = m->shared;
  free(m);
  if (--j->pending == 0)
    job_part_done(j);
}

static char *input_pop(scan_t *sc) {
  char *d = NULL;
  uv_mutex_lock(&sc->in_mu);
  if (sc->in_count) {
    d = sc->in_items[sc->in_head];
    sc->in_head = (sc->in_head + 1) % INPUT_QUEUE_CAP;
    sc->in_count--;
    uv_cond_signal(&sc->in_not_full);
  }
  uv_mutex_unlock(&sc->in_mu);
  return d;
}

static void pull_jobs(worker_t *w) {
  scan_t *sc = w->scan;
  while (w->jobs_inflight < w->jobs_max) {
    char *domain = input_pop(sc);
    job_t *j;
    stls_dns_query_opts_t q;
    if (!domain)
      return;
    j = calloc(1, sizeof(*j));
    if (!j) {
      free(domain);
      return;
    }
    j->w = w;
    j->domain = domain;
    j->scanned_at = time(NULL);
    j->t0 = stls_now_ms();
    memset(&q, 0, sizeof(q));
    q.want_ipv4 = sc->o->want_ipv4;
    q.want_ipv6 = sc->o->want_ipv6;
    q.max_mx = sc->o->max_mx;
    q.max_addrs_per_host = sc->o->max_addrs;
    w->jobs_inflight++;
    j->waiting = 1;
    /* MTA-STS discovery runs beside DNS and the probes. */
    if (w->sts) {
      j->waiting++;
      if (stls_sts_fetch(w->sts, domain, sts_done_cb, j) != 0)
        j->waiting--; /* not a host name for STS: reported as not checked */
    }
    if (stls_dns_resolve_domain(w->dns, domain, &q, dns_done_cb, j) != 0)
      job_part_done(j); /* recorded as dns-error without details */
  }
}

/* ---- owner side ------------------------------------------------------- */

static void schedule(worker_t *w);

static void reply_waiters(worker_t *w, endpoint_t *ep) {
  int first = 1;
  for (waiter_t *wt = ep->waiters, *nx; wt; wt = nx) {
    msg_t *m = calloc(1, sizeof(*m));
    nx = wt->next;
    if (m && stls_host_result_copy(&m->res, &ep->res) == 0) {
      m->type = MSG_PROBE_RES;
      m->job = wt->job;
      m->slot = wt->slot;
      m->shared = !first;
      post(wt->w, m);
    } else {
      /* Out of memory: answer with a bare failure so the domain ends. */
      if (!m)
        m = calloc(1, sizeof(*m));
      if (m) {
        stls_host_result_init(&m->res, ep->sni, ep->ip, w->cfg.port);
        stls_host_result_fail(&m->res, STLS_HOST_CONNECTION_ERROR,
                              STLS_STAGE_NONE, "ENOMEM", "out of memory");
        m->type = MSG_PROBE_RES;
        m->job = wt->job;
        m->slot = wt->slot;
        post(wt->w, m);
      }
    }
    first = 0;
    free(wt);
  }
  ep->waiters = NULL;
}

static void endpoint_free(endpoint_t *ep) {
  stls_host_result_free(&ep->res);
  free(ep->key);
  free(ep->sni);
  free(ep);
}

static void ipstate_release(worker_t *w, ipstate_t *ips) {
  if (--ips->refs == 0) {
    stls_strmap_del(w->ipstates, ips->ip);
    free(ips);
  }
}

static void remember_done(worker_t *w, endpoint_t *ep) {
  if (!ep->key) {
    endpoint_free(ep);
    return;
  }
  ep->done_next = NULL;
  if (w->done_tail)
    w->done_tail->done_next = ep;
  else
    w->done_head = ep;
  w->done_tail = ep;
  /* Keep memory bounded: forget the oldest shared results. */
  if (++w->done_count > w->scan->o->cache_max) {
    endpoint_t *old = w->done_head;
    w->done_head = old->done_next;
    if (!w->done_head)
      w->done_tail = NULL;
    w->done_count--;
    stls_strmap_del(w->endpoints, old->key);
    endpoint_free(old);
  }
}

static void ready_push(worker_t *w, endpoint_t *ep, int front) {
  ep->qnext = NULL;
  if (front) {
    ep->qnext = w->ready_head;
    w->ready_head = ep;
    if (!w->ready_tail)
      w->ready_tail = ep;
  } else {
    if (w->ready_tail)
      w->ready_tail->qnext = ep;
    else
      w->ready_head = ep;
    w->ready_tail = ep;
  }
}

static int retryable(const stls_host_result_t *r) {
  return r->error.set && (strcmp(r->error.code, "SMTP_421") == 0 ||
                          strcmp(r->error.code, "ECONNRESET") == 0);
}

static void retry_fire_cb(uv_timer_t *t) {
  endpoint_t *ep = t->data;
  worker_t *w = ep->w;
  uv_close((uv_handle_t *)t, (uv_close_cb)free);
  ready_push(w, ep, 0);
  schedule(w);
}

static void probe_done_cb(stls_host_result_t *res, void *arg) {
  endpoint_t *ep = arg;
  worker_t *w = ep->w;
  ipstate_t *ips = ep->ips;
  int64_t delay = w->scan->o->retry_delay_ms;

  w->active--;
  ips->active--;
  if (ips->blocked_head) {
    endpoint_t *b = ips->blocked_head;
    ips->blocked_head = b->qnext;
    if (!ips->blocked_head)
      ips->blocked_tail = NULL;
    ready_push(w, b, 1);
  }
  if (!ep->retried && delay >= 0 && retryable(res)) {
    /* A 421 or a reset under load: once more, later, not hammered. */
    uv_timer_t *t = malloc(sizeof(*t));
    if (t) {
      char why[120];
      snprintf(why, sizeof(why), "%.40s: %.70s", res->error.code,
               res->error.message);
      ep->retried = 1;
      stls_host_result_free(res);
      stls_host_result_init(res, ep->sni, ep->ip, w->cfg.port);
      stls_host_result_add_finding(res, "retried",
                                   "first attempt failed (%s); retried "
                                   "after %lld ms",
                                   why, (long long)delay);
      uv_timer_init(&w->loop, t);
      t->data = ep;
      uv_timer_start(t, retry_fire_cb, (uint64_t)delay, 0);
      schedule(w);
      return;
    }
  }
  for (size_t i = 0; i < res->n_findings; i++)
    if (strcmp(res->findings[i].id, "tls12-fallback") == 0) {
      char key[96];
      snprintf(key, sizeof(key), "%s|%d", ep->ip, w->cfg.port);
      /* Remembered so other names on this address skip the failing
       * first handshake; losing it to ENOMEM only costs a reconnect. */
      (void)stls_strmap_put(w->tls12_addrs, key, w);
      break;
    }
  ep->done = 1;
  reply_waiters(w, ep);
  remember_done(w, ep);
  ipstate_release(w, ips);
  schedule(w);
}

static int take_token(worker_t *w) {
  int64_t now;
  if (w->rate <= 0)
    return 1;
  now = stls_now_ms();
  w->tokens += (double)(now - w->tokens_at) * w->rate / 1000.0;
  w->tokens_at = now;
  if (w->tokens > w->burst)
    w->tokens = w->burst;
  if (w->tokens < 1.0)
    return 0;
  w->tokens -= 1.0;
  return 1;
}

/* The probes' extra connections (fallbacks, --versions) pay for their
 * tokens too: 0 to go now, else how long until the next token. */
static int64_t pace_cb(void *arg) {
  worker_t *w = arg;
  if (take_token(w))
    return 0;
  return (int64_t)((1.0 - w->tokens) * 1000.0 / w->rate) + 1;
}

static void rate_timer_cb(uv_timer_t *t) {
  worker_t *w = t->data;
  w->rate_timer_armed = 0;
  schedule(w);
}

static void schedule(worker_t *w) {
  while (w->active < w->active_max && w->ready_head) {
    endpoint_t *ep = w->ready_head;
    ipstate_t *ips = ep->ips;
    stls_probe_cfg_t cfg;
    if (ips->active >= w->scan->o->per_ip) {
      /* This address is busy: park the endpoint on it. */
      w->ready_head = ep->qnext;
      if (!w->ready_head)
        w->ready_tail = NULL;
      ep->qnext = NULL;
      if (ips->blocked_tail)
        ips->blocked_tail->qnext = ep;
      else
        ips->blocked_head = ep;
      ips->blocked_tail = ep;
      continue;
    }
    if (!take_token(w)) {
      if (!w->rate_timer_armed) {
        uint64_t wait = (uint64_t)((1.0 - w->tokens) * 1000.0 / w->rate) + 1;
        w->rate_timer_armed = 1;
        uv_timer_start(&w->rate_timer, rate_timer_cb, wait, 0);
      }
      return;
    }
    w->ready_head = ep->qnext;
    if (!w->ready_head)
      w->ready_tail = NULL;
    cfg = w->cfg;
    cfg.mx = ep->sni;
    cfg.ip = ep->ip;
    {
      char key[96];
      snprintf(key, sizeof(key), "%s|%d", ep->ip, w->cfg.port);
      cfg.tls12_only = stls_strmap_get(w->tls12_addrs, key) != NULL;
    }
    w->active++;
    ips->active++;
    if (stls_probe_start(&w->loop, &cfg, &ep->res, probe_done_cb, ep) != 0)
      probe_done_cb(&ep->res, ep);
  }
}

static void on_probe_request(worker_t *w, msg_t *m) {
  scan_t *sc = w->scan;
  char key[400];
  endpoint_t *ep = NULL;
  waiter_t *wt = calloc(1, sizeof(*wt));
  ipstate_t *ips;

  snprintf(key, sizeof(key), "%s|%d|%s", m->ip, w->cfg.port, m->sni);
  if (sc->o->dedupe)
    ep = stls_strmap_get(w->endpoints, key);
  if (ep && ep->done) {
    msg_t *r = calloc(1, sizeof(*r));
    free(wt);
    if (r && stls_host_result_copy(&r->res, &ep->res) == 0) {
      r->type = MSG_PROBE_RES;
      r->job = m->job;
      r->slot = m->slot;
      r->shared = true;
      post(m->from, r);
    } else {
      free(r);
      /* fall back to a fresh probe below */
      ep = NULL;
      wt = calloc(1, sizeof(*wt));
    }
    if (ep) {
      free(m->sni);
      free(m);
      return;
    }
  }
  if (!wt)
    goto nomem;
  wt->w = m->from;
  wt->job = m->job;
  wt->slot = m->slot;
  if (ep) { /* probe in progress: wait for it */
    wt->next = ep->waiters;
    ep->waiters = wt;
    free(m->sni);
    free(m);
    return;
  }
  ep = calloc(1, sizeof(*ep));
  if (!ep) {
    free(wt);
    goto nomem;
  }
  ep->w = w;
  stls_strlcpy(ep->ip, m->ip, sizeof(ep->ip));
  ep->sni = m->sni;
  m->sni = NULL;
  ep->waiters = wt;
  stls_host_result_init(&ep->res, ep->sni, ep->ip, w->cfg.port);
  if (sc->o->dedupe) {
    ep->key = stls_strdup(key);
    if (!ep->key || stls_strmap_put(w->endpoints, key, ep) != 0) {
      free(ep->key);
      ep->key = NULL; /* still probed, just not shared */
    }
  }
  ips = stls_strmap_get(w->ipstates, ep->ip);
  if (!ips) {
    ips = calloc(1, sizeof(*ips));
    if (ips) {
      stls_strlcpy(ips->ip, ep->ip, sizeof(ips->ip));
      if (stls_strmap_put(w->ipstates, ips->ip, ips) != 0) {
        free(ips);
        ips = NULL;
      }
    }
  }
  if (!ips) {
    ep->waiters = NULL;
    free(wt);
    if (ep->key)
      stls_strmap_del(w->endpoints, ep->key);
    endpoint_free(ep);
    goto nomem;
  }
  ep->ips = ips;
  ips->refs++;
  free(m);
  ready_push(w, ep, 0);
  schedule(w);
  return;

nomem : {
  msg_t *r = calloc(1, sizeof(*r));
  if (r) {
    stls_host_result_init(&r->res, m->sni, m->ip, w->cfg.port);
    stls_host_result_fail(&r->res, STLS_HOST_CONNECTION_ERROR,
                          STLS_STAGE_NONE, "ENOMEM", "out of memory");
    r->type = MSG_PROBE_RES;
    r->job = m->job;
    r->slot = m->slot;
    post(m->from, r);
  }
  free(m->sni);
  free(m);
}
}

/* ---- worker loop ------------------------------------------------------ */

static void close_walk_cb(uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h))
    uv_close(h, NULL);
}

static void async_cb(uv_async_t *a) {
  worker_t *w = a->data;
  msg_t *m, *next;
  int stop;
  uv_mutex_lock(&w->mu);
  m = w->inbox_head;
  w->inbox_head = w->inbox_tail = NULL;
  stop = w->stop;
  uv_mutex_unlock(&w->mu);
  for (; m; m = next) {
    next = m->next;
    if (m->type == MSG_PROBE_REQ)
      on_probe_request(w, m);
    else
      on_probe_result(w, m);
  }
  if (stop) {
    /* MTA-STS first: it uses the resolver and owns handles of its own. */
    if (w->sts)
      stls_sts_close(w->sts);
    w->sts = NULL;
    stls_dns_close(w->dns);
    w->dns = NULL;
    uv_walk(&w->loop, close_walk_cb, NULL);
    return;
  }
  pull_jobs(w);
}

static void worker_main(void *arg) {
  worker_t *w = arg;
  uv_run(&w->loop, UV_RUN_DEFAULT);
}

static int worker_init(scan_t *sc, worker_t *w, unsigned id) {
  const stls_scan_opts_t *o = sc->o;
  stls_dns_opts_t dopts;
  int r;
  w->scan = sc;
  w->id = id;
  uv_mutex_init(&w->mu);
  uv_loop_init(&w->loop);
  uv_async_init(&w->loop, &w->async, async_cb);
  w->async.data = w;
  uv_timer_init(&w->loop, &w->rate_timer);
  w->rate_timer.data = w;
  w->endpoints = stls_strmap_new();
  w->ipstates = stls_strmap_new();
  w->tls12_addrs = stls_strmap_new();
  if (!w->endpoints || !w->ipstates || !w->tls12_addrs) {
    snprintf(w->init_error, sizeof(w->init_error), "out of memory");
    return -1;
  }
  memset(&dopts, 0, sizeof(dopts));
  dopts.servers = o->resolvers;
  /* Our own bounds, also with resolv.conf: its defaults (or c-ares's)
   * can keep one dead domain busy for over a minute. */
  dopts.timeout_ms = o->dns_timeout_ms;
  dopts.tries = o->dns_tries;
  r = stls_dns_init(&w->dns, &w->loop, &dopts);
  if (r != 0) {
    snprintf(w->init_error, sizeof(w->init_error),
             "cannot set up the resolver%s%s: %s",
             o->resolvers ? " " : "", o->resolvers ? o->resolvers : "",
             uv_strerror(r));
    return -1;
  }
  if (stls_tls_ctx_init_stores(&w->tls, o->ca_file, o->trust_stores,
                               o->n_trust_stores, o->intermediates,
                               w->init_error, sizeof(w->init_error)) != 0)
    return -1;
  if (o->mta_sts && (r = stls_sts_init(&w->sts, &w->loop, w->dns, w->tls,
                                        NULL)) != 0) {
    snprintf(w->init_error, sizeof(w->init_error),
             "cannot set up MTA-STS: %s", uv_strerror(r));
    return -1;
  }
  w->cfg = o->probe;
  w->cfg.tls = w->tls;
  w->cfg.pace = pace_cb;
  w->cfg.pace_arg = w;
  w->active_max = o->concurrency / sc->nw;
  if (w->active_max < 1)
    w->active_max = 1;
  /* Enough domains in flight to keep the probe slots busy while others
   * wait for DNS, few enough to keep memory flat. */
  w->jobs_max = w->active_max * 2 + 8;
  w->rate = o->rate > 0 ? o->rate / sc->nw : 0;
  w->burst = w->rate > 0 ? 1.0 + w->rate / 10.0 : 0;
  w->tokens = w->burst;
  w->tokens_at = stls_now_ms();
  return 0;
}

static void worker_destroy(worker_t *w) {
  if (w->sts) {
    stls_sts_close(w->sts);
    w->sts = NULL;
  }
  if (w->dns) {
    stls_dns_close(w->dns);
    w->dns = NULL;
  }
  uv_walk(&w->loop, close_walk_cb, NULL);
  uv_run(&w->loop, UV_RUN_DEFAULT);
  uv_loop_close(&w->loop);
  /* Endpoints still in the table are done ones kept for sharing. */
  for (endpoint_t *ep = w->done_head, *nx; ep; ep = nx) {
    nx = ep->done_next;
    endpoint_free(ep);
  }
  stls_strmap_free(w->endpoints);
  stls_strmap_free(w->ipstates);
  stls_strmap_free(w->tls12_addrs);
  stls_tls_ctx_free(w->tls);
  uv_mutex_destroy(&w->mu);
}

/* ---- input ------------------------------------------------------------ */

typedef struct input_s {
  scan_t *sc;
  stls_strmap_t *resume_set;
} input_t;

static void input_push(scan_t *sc, char *domain) {
  uv_mutex_lock(&sc->in_mu);
  while (sc->in_count == INPUT_QUEUE_CAP)
    uv_cond_wait(&sc->in_not_full, &sc->in_mu);
  sc->in_items[(sc->in_head + sc->in_count) % INPUT_QUEUE_CAP] = domain;
  sc->in_count++;
  uv_mutex_unlock(&sc->in_mu);
  uv_mutex_lock(&sc->out_mu);
  sc->submitted++;
  uv_mutex_unlock(&sc->out_mu);
  for (unsigned i = 0; i < sc->nw; i++)
    uv_async_send(&sc->workers[i].async);
}

static void emit_invalid(scan_t *sc, const char *raw, const char *why,
                         unsigned long lineno) {
  stls_domain_record_t d;
  char msg[300];
  memset(&d, 0, sizeof(d));
  d.domain = raw;
  d.status = "invalid-domain";
  d.scanned_at = time(NULL);
  if (lineno)
    snprintf(msg, sizeof(msg), "line %lu: %s", lineno, why);
  else
    snprintf(msg, sizeof(msg), "%s", why);
  d.input_error = msg;
  uv_mutex_lock(&sc->out_mu);
  sc->submitted++;
  sc->sum.input_invalid++;
  uv_mutex_unlock(&sc->out_mu);
  emit(sc, &d);
}

/* One target (already split into a line). Returns -1 to stop on ENOMEM. */
static int take_target(input_t *in, const char *line, unsigned long lineno,
                       int from_file) {
  scan_t *sc = in->sc;
  char name[STLS_DOMAIN_MAX + 2], raw[300];
  const char *why = NULL;
  int r;
  if (from_file)
    r = stls_target_line_parse(line, name, sizeof(name), &why);
  else
    r = stls_domain_normalize(line, name, sizeof(name), &why) == 0 ? 1 : -1;
  if (r == 0)
    return 0;
  sc->sum.input_lines++;
  if (r < 0) {
    /* The raw text, trimmed and bounded, is the record's "domain". */
    size_t b = strspn(line, " \t"), e = strcspn(line, "#");
    while (e > b && strchr(" \t\r\n", line[e - 1]))
      e--;
    if (e - b >= sizeof(raw))
      e = b + sizeof(raw) - 1;
    memcpy(raw, line + b, e - b);
    raw[e - b] = '\0';
    if (!stls_shard_keep(raw, sc->o->shard_k, sc->o->shard_n)) {
      sc->sum.shard_skipped++;
      return 0;
    }
    if (in->resume_set && stls_strmap_get(in->resume_set, raw)) {
      sc->sum.resumed_skipped++;
      return 0;
    }
    emit_invalid(sc, raw, why ? why : "not a domain name", lineno);
    return 0;
  }
  if (!stls_shard_keep(name, sc->o->shard_k, sc->o->shard_n)) {
    sc->sum.shard_skipped++;
    return 0;
  }
  if (in->resume_set && stls_strmap_get(in->resume_set, name)) {
    sc->sum.resumed_skipped++;
    return 0;
  }
  char *d = stls_strdup(name);
  if (!d)
    return -1;
  input_push(sc, d);
  return 0;
}

static int read_targets(input_t *in, FILE *f) {
  char buf[4096];
  unsigned long lineno = 0;
  while (fgets(buf, sizeof(buf), f)) {
    size_t n = strlen(buf);
    lineno++;
    if (n == sizeof(buf) - 1 && buf[n - 1] != '\n') {
      int c;
      while ((c = fgetc(f)) != EOF && c != '\n')
        ;
      buf[40] = '\0';
      in->sc->sum.input_lines++;
      emit_invalid(in->sc, buf, "line too long", lineno);
      continue;
    }
    if (take_target(in, buf, lineno, 1) != 0)
      return -1;
  }
  return ferror(f) ? -1 : 0;
}

/* Count the targets of a regular file for the progress ETA. */
static uint64_t count_lines(const char *path) {
  FILE *f = fopen(path, "r");
  char buf[4096];
  uint64_t n = 0;
  if (!f)
    return 0;
  while (fgets(buf, sizeof(buf), f)) {
    const char *p = buf + strspn(buf, " \t");
    if (*p && *p != '#' && *p != '\n' && *p != '\r')
      n++;
  }
  fclose(f);
  return n;
}

/* Read the domains already written by an earlier run (--resume). A torn
 * last line (killed mid-write) is cut off so appending starts clean. */
static int load_resume(const char *path, stls_strmap_t *set, char *err,
                       size_t errlen) {
  FILE *f = fopen(path, "r+");
  char *line = NULL;
  size_t cap = 0;
  ssize_t n;
  long good_end = 0;
  if (!f) {
    if (errno == ENOENT)
      return 0; /* nothing to resume: a fresh run */
    snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
    return -1;
  }
  while ((n = getline(&line, &cap, f)) > 0) {
    cJSON *rec, *d;
    if (line[n - 1] != '\n')
      break; /* torn */
    rec = cJSON_Parse(line);
    d = rec ? cJSON_GetObjectItemCaseSensitive(rec, "domain") : NULL;
    if (cJSON_IsString(d) && stls_strmap_put(set, d->valuestring, set) != 0) {
      cJSON_Delete(rec);
      free(line);
      fclose(f);
      snprintf(err, errlen, "out of memory");
      return -1;
    }
    cJSON_Delete(rec);
    good_end = ftell(f);
  }
  free(line);
  if (ftruncate(fileno(f), good_end) != 0) {
    snprintf(err, errlen, "cannot truncate %s: %s", path, strerror(errno));
    fclose(f);
    return -1;
  }
  fclose(f);
  return 0;
}

static void print_summary(const stls_summary_t *s) {
  fprintf(stderr,
          "starttls-scan: %llu domains in %.1fs; %llu MX hosts, %llu "
          "addresses; probes %llu made, %llu shared, %llu skipped; "
          "STARTTLS offered %llu, TLS %llu, trusted %llu, MX name match "
          "%llu\n",
          (unsigned long long)s->domains, (double)s->duration_ms / 1000.0,
          (unsigned long long)s->mx_hosts, (unsigned long long)s->addresses,
          (unsigned long long)s->probes_made,
          (unsigned long long)s->probes_shared,
          (unsigned long long)s->probes_skipped,
          (unsigned long long)s->starttls_offered,
          (unsigned long long)s->tls_ok, (unsigned long long)s->trusted,
          (unsigned long long)s->mx_hostname_match);
  fprintf(stderr, "starttls-scan: domains by status:");
  for (size_t i = 0; i < s->domain_status.n; i++)
    fprintf(stderr, " %s=%llu", s->domain_status.v[i].key,
            (unsigned long long)s->domain_status.v[i].n);
  if (s->recommended.n) {
    fprintf(stderr, "\nstarttls-scan: domains by recommended level:");
    for (size_t i = 0; i < s->recommended.n; i++)
      fprintf(stderr, " %s=%llu", s->recommended.v[i].key,
              (unsigned long long)s->recommended.v[i].n);
  }
  fprintf(stderr, "\nstarttls-scan: hosts by status:");
  for (size_t i = 0; i < s->host_status.n; i++)
    fprintf(stderr, " %s=%llu", s->host_status.v[i].key,
            (unsigned long long)s->host_status.v[i].n);
  fputc('\n', stderr);
}

static int write_summary_file(const char *path, const stls_summary_t *s) {
  cJSON *j = stls_json_summary(s);
  FILE *f = fopen(path, "w");
  int rc = 0;
  if (!j || !f || stls_json_write_line(f, j) != 0)
    rc = -1;
  if (f && fclose(f) != 0)
    rc = -1;
  cJSON_Delete(j);
  return rc;
}

int stls_scan_run(const stls_scan_opts_t *o) {
  scan_t sc;
  input_t in;
  char err[300];
  int rc = 0;
  unsigned started = 0;

  memset(&sc, 0, sizeof(sc));
  memset(&in, 0, sizeof(in));
  sc.o = o;
  sc.nw = o->workers ? o->workers : 1;
  sc.ipv6_ok = o->ipv6_mode == STLS_IPV6_ON ||
               (o->ipv6_mode == STLS_IPV6_AUTO && stls_ipv6_route_available());
  sc.t0 = stls_now_ms();
  sc.sum.started_at = time(NULL);
  sc.sum.ehlo_name = o->probe.ehlo_name;
  in.sc = &sc;

  if (o->resume) {
    in.resume_set = stls_strmap_new();
    if (!in.resume_set ||
        load_resume(o->output, in.resume_set, err, sizeof(err)) != 0) {
      fprintf(stderr, "starttls-scan scan: --resume: %s\n",
              in.resume_set ? err : "out of memory");
      stls_strmap_free(in.resume_set);
      return 1;
    }
  }
  if (o->output) {
    sc.out = fopen(o->output, o->resume ? "a" : "w");
    if (!sc.out) {
      fprintf(stderr, "starttls-scan scan: cannot write %s: %s\n", o->output,
              strerror(errno));
      stls_strmap_free(in.resume_set);
      return 1;
    }
  } else if (!o->on_record) {
    sc.out = stdout;
  }
  if (o->postfix_policy) {
    sc.policy_out = fopen(o->postfix_policy, o->resume ? "a" : "w");
    if (!sc.policy_out) {
      fprintf(stderr, "starttls-scan scan: cannot write %s: %s\n",
              o->postfix_policy, strerror(errno));
      if (sc.out && sc.out != stdout)
        fclose(sc.out);
      stls_strmap_free(in.resume_set);
      return 1;
    }
    if (!o->resume)
      fprintf(sc.policy_out,
              "# smtp_tls_policy_maps generated by starttls-scan %s\n"
              "# Verdicts assume Postfix defaults: smtp_mx_address_limit=%u,\n"
              "# smtp_balance_inet_protocols=yes, secure match=%s.\n"
              "# Levels below %s stay at the default and are listed as "
              "comments.\n",
              STLS_VERSION, o->policy.mx_address_limit,
              o->policy.secure_match,
              stls_level_name((stls_level_t)o->min_level));
  }
  sc.progress = !o->quiet && isatty(STDERR_FILENO);
  if (sc.progress && o->input && strcmp(o->input, "-") != 0) {
    struct stat st;
    if (stat(o->input, &st) == 0 && S_ISREG(st.st_mode))
      sc.total_hint = count_lines(o->input);
  } else if (sc.progress) {
    sc.total_hint = o->n_domains;
  }
  sc.in_items = calloc(INPUT_QUEUE_CAP, sizeof(*sc.in_items));
  sc.workers = calloc(sc.nw, sizeof(*sc.workers));
  if (!sc.in_items || !sc.workers) {
    fprintf(stderr, "starttls-scan scan: out of memory\n");
    rc = 1;
    goto out;
  }
  uv_mutex_init(&sc.in_mu);
  uv_cond_init(&sc.in_not_full);
  uv_mutex_init(&sc.out_mu);
  uv_cond_init(&sc.out_cond);

  for (unsigned i = 0; i < sc.nw; i++) {
    if (worker_init(&sc, &sc.workers[i], i) != 0) {
      fprintf(stderr, "starttls-scan scan: %s\n", sc.workers[i].init_error);
      rc = 1;
      for (unsigned k = 0; k <= i; k++)
        worker_destroy(&sc.workers[k]);
      goto out_sync;
    }
  }
  for (; started < sc.nw; started++)
    if (uv_thread_create(&sc.workers[started].thread, worker_main,
                         &sc.workers[started]) != 0)
      break;
  if (started < sc.nw) {
    fprintf(stderr, "starttls-scan scan: cannot start worker threads\n");
    rc = 1;
  }

  if (rc == 0) {
    /* The main thread is the reader: blocking reads are fine here, the
     * loops run on the workers. The bounded queue is the back-pressure. */
    if (o->input) {
      FILE *f = strcmp(o->input, "-") == 0 ? stdin : fopen(o->input, "r");
      struct stat st;
      if (f && fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(f);
        f = NULL;
        errno = EISDIR;
      }
      if (!f) {
        fprintf(stderr, "starttls-scan scan: cannot read %s: %s\n", o->input,
                strerror(errno));
        rc = 1;
      } else {
        if (read_targets(&in, f) != 0) {
          fprintf(stderr, "starttls-scan scan: error reading %s: %s\n",
                  o->input, strerror(errno));
          rc = 1;
        }
        if (f != stdin)
          fclose(f);
      }
    }
    for (size_t i = 0; i < o->n_domains && rc == 0; i++)
      if (take_target(&in, o->domains[i], 0, 0) != 0)
        rc = 1;
  }

  /* Wait until every submitted domain has been written. */
  uv_mutex_lock(&sc.out_mu);
  while (sc.written < sc.submitted && started == sc.nw)
    uv_cond_wait(&sc.out_cond, &sc.out_mu);
  uv_mutex_unlock(&sc.out_mu);

  for (unsigned i = 0; i < started; i++) {
    worker_t *w = &sc.workers[i];
    uv_mutex_lock(&w->mu);
    w->stop = 1;
    uv_mutex_unlock(&w->mu);
    uv_async_send(&w->async);
  }
  for (unsigned i = 0; i < started; i++)
    uv_thread_join(&sc.workers[i].thread);
  for (unsigned i = 0; i < sc.nw; i++)
    worker_destroy(&sc.workers[i]);

out_sync:
  sc.sum.finished_at = time(NULL);
  sc.sum.duration_ms = stls_now_ms() - sc.t0;
  if (sc.progress && sc.written)
    progress_line(&sc, 1);
  if (sc.write_error) {
    fprintf(stderr, "starttls-scan scan: writing results failed: %s\n",
            strerror(sc.write_error));
    rc = 1;
  }
  /* A run that failed before it wrote anything has nothing to sum up:
   * the one-line error says it all. */
  if (!o->quiet && (rc == 0 || sc.written > 0))
    print_summary(&sc.sum);
  if (o->summary_file && write_summary_file(o->summary_file, &sc.sum) != 0) {
    fprintf(stderr, "starttls-scan scan: cannot write summary %s\n",
            o->summary_file);
    rc = 1;
  }
  uv_mutex_destroy(&sc.in_mu);
  uv_cond_destroy(&sc.in_not_full);
  uv_mutex_destroy(&sc.out_mu);
  uv_cond_destroy(&sc.out_cond);
out:
  for (size_t i = 0; i < sc.in_count; i++)
    free(sc.in_items[(sc.in_head + i) % INPUT_QUEUE_CAP]);
  free(sc.in_items);
  free(sc.workers);
  stls_strmap_free(in.resume_set);
  if (sc.policy_out && fclose(sc.policy_out) != 0 && rc == 0) {
    fprintf(stderr, "starttls-scan scan: closing %s failed\n",
            o->postfix_policy);
    rc = 1;
  }
  if (sc.out && sc.out != stdout && fclose(sc.out) != 0 && rc == 0) {
    fprintf(stderr, "starttls-scan scan: closing %s failed\n", o->output);
    rc = 1;
  }
  return rc;
}
