/* The scan engine. See engine.h for the architecture. */
#include "stls/engine.h"
#include "stls/dane.h"
#include "stls/dns.h"
#include "stls/domain.h"
#include "stls/record.h"
#include "stls/sts.h"
#include "stls/tls.h"
#include "stls/util.h"

#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

/* An EMFILE/ENFILE at connect is this machine's shortage, not the host's:
 * the endpoint goes back to the queue after this pause. */
#define LOCAL_RETRY_MS 200
#define LOCAL_RETRY_MAX 50

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
  int local_retries; /* EMFILE/ENFILE: requeued, not the host's fault */
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
  job_t *next; /* in the input queue or the done queue */
  worker_t *w; /* NULL for an invalid-domain record */
  void *tag;
  int waiting; /* parts still running: DNS and probes; MTA-STS */
  stls_sts_result_t *sts;
  stls_dns_tlsa_result_t **tlsa; /* per MX host, when --dane */
  tlsa_ctx_t *tlsa_ctx;
  char *domain;
  char *input_error; /* invalid-domain: why */
  time_t scanned_at;
  int64_t t0, duration_ms;
  stls_dns_result_t *dns;
  stls_domain_host_t *hosts;
  size_t n_hosts, pending;
  stls_policy_t policy;
  bool has_policy;
};

struct worker_s {
  stls_engine_t *e;
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
  atomic_int starved; /* wants a slot of the shared budget (-c) */
  int rate_timer_armed;
  char init_error[300];
};

struct stls_engine_s {
  stls_engine_cfg_t cfg;
  uv_loop_t *loop; /* the caller's */
  uv_async_t done_async;
  stls_engine_record_cb cb;
  void *cb_arg;
  worker_t *workers;
  unsigned nw;
  /* input queue: any thread produces, workers consume */
  uv_mutex_t in_mu;
  uv_cond_t in_not_full;
  job_t *in_head, *in_tail;
  size_t in_count;
  bool stopped;
  /* done queue: workers produce, the caller's loop consumes */
  uv_mutex_t done_mu;
  job_t *done_head, *done_tail;
  uint64_t submitted, delivered; /* under done_mu */
  /* one connection rate for the whole engine */
  uv_mutex_t rate_mu;
  double tokens, burst;
  int64_t tokens_at;
  int64_t rate_wait_ms; /* time probes waited for a token */
  /* -c: one budget of probe slots for all workers, so that a worker
   * whose probes hang cannot idle slots another worker could use. */
  atomic_uint slots;
  /* load, for progress and /metrics */
  atomic_uint probes_active;
  atomic_uint domains_active;
  atomic_uint_fast64_t local_retries;
};

void stls_scan_limits_defaults(stls_scan_limits_t *l) {
  memset(l, 0, sizeof(*l));
  l->workers = 1;
  l->concurrency = STLS_DEFAULT_CONCURRENCY;
  l->per_ip = STLS_DEFAULT_PER_IP;
  l->rate = STLS_DEFAULT_RATE;
  l->retry_delay_ms = STLS_DEFAULT_RETRY_DELAY_MS;
  l->dns_timeout_ms = STLS_DEFAULT_DNS_TIMEOUT_MS;
  l->dns_tries = STLS_DEFAULT_DNS_TRIES;
  l->cache_max = STLS_DEFAULT_CACHE_MAX;
  l->queue_cap = STLS_DEFAULT_QUEUE_CAP;
}

void stls_engine_cfg_defaults(stls_engine_cfg_t *cfg) {
  memset(cfg, 0, sizeof(*cfg));
  stls_scan_limits_defaults(&cfg->limits);
  stls_probe_cfg_defaults(&cfg->probe);
  stls_policy_opts_defaults(&cfg->policy);
  cfg->dedupe = true;
  cfg->want_ipv4 = cfg->want_ipv6 = true;
  cfg->ipv6_mode = STLS_IPV6_AUTO;
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

static worker_t *owner_of(stls_engine_t *e, const char *ip) {
  return &e->workers[stls_hash64(ip) % e->nw];
}

/* ---- jobs ------------------------------------------------------------- */

static void pull_jobs(worker_t *w);

static void job_free(job_t *j) {
  if (j->has_policy)
    stls_policy_free(&j->policy);
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
  free(j->input_error);
  free(j);
}

/* Hand a finished job to the caller's loop. */
static void deliver(stls_engine_t *e, job_t *j) {
  j->next = NULL;
  uv_mutex_lock(&e->done_mu);
  if (e->done_tail)
    e->done_tail->next = j;
  else
    e->done_head = j;
  e->done_tail = j;
  uv_mutex_unlock(&e->done_mu);
  uv_async_send(&e->done_async);
}

static void fill_record(const job_t *j, stls_domain_record_t *d) {
  memset(d, 0, sizeof(*d));
  d->domain = j->domain;
  d->scanned_at = j->scanned_at;
  d->duration_ms = j->duration_ms;
  d->input_error = j->input_error;
  if (!j->w) {
    d->status = "invalid-domain";
    return;
  }
  d->status =
      j->dns ? stls_dns_status_domain_name(j->dns->status) : "dns-error";
  d->dns = j->dns;
  d->tlsa = j->tlsa;
  d->sts = j->sts;
  d->hosts = j->hosts;
  d->n_hosts = j->n_hosts;
  d->policy = j->has_policy ? &j->policy : NULL;
}

/* On the caller's loop: every finished record to the callback. */
static void done_async_cb(uv_async_t *a) {
  stls_engine_t *e = a->data;
  job_t *j;
  for (;;) {
    stls_domain_record_t d;
    uv_mutex_lock(&e->done_mu);
    j = e->done_head;
    if (j) {
      e->done_head = j->next;
      if (!e->done_head)
        e->done_tail = NULL;
    }
    uv_mutex_unlock(&e->done_mu);
    if (!j)
      return;
    fill_record(j, &d);
    /* Counted as delivered before the callback, so that the callback can
     * see pending() reach 0 and free the engine. */
    uv_mutex_lock(&e->done_mu);
    e->delivered++;
    uv_mutex_unlock(&e->done_mu);
    e->cb(e, &d, j->tag, e->cb_arg);
    job_free(j);
    if (!e->done_async.data)
      return; /* the callback freed the engine */
  }
}

static void job_finish(job_t *j) {
  worker_t *w = j->w;
  j->duration_ms = stls_now_ms() - j->t0;
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
  if (!w->sts) {
    stls_sts_result_free(j->sts);
    j->sts = NULL;
  }
  if (j->dns && j->dns->status == STLS_DNS_OK) {
    stls_record_facts_t f = {j->domain, j->dns,         j->tlsa,
                             j->sts,    w->sts != NULL, w->e->cfg.dane};
    j->has_policy =
        stls_record_decide_policy(&f, j->hosts, j->n_hosts, &w->e->cfg.policy,
                                  &j->policy) == 0;
  }
  w->jobs_inflight--;
  w->e->domains_active--;
  deliver(w->e, j);
  pull_jobs(w);
}

/* The DNS-and-probes part or the MTA-STS part is over; the record is
 * handed back when both are. */
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
  if (!w->e->cfg.dane || !d->mx_secure || d->nmx == 0)
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
    if (stls_dns_lookup_tlsa(w->dns, d->mx[i].host, (unsigned)w->cfg.port,
                             tlsa_done_cb, &j->tlsa_ctx[i]) == 0)
      n++;
  }
  return n;
}

/* Can this machine reach addr at all? A UDP connect() asks the kernel's
 * routing table and sends nothing; it fails with ENETUNREACH exactly when
 * a TCP connect (Postfix's) would. Returns 0 or a negative errno. */
static int route_check(const char *ip) {
  struct sockaddr_storage ss;
  socklen_t len;
  int fd, rc = 0;
  memset(&ss, 0, sizeof(ss));
  if (uv_ip6_addr(ip, 25, (struct sockaddr_in6 *)&ss) == 0)
    len = sizeof(struct sockaddr_in6);
  else if (uv_ip4_addr(ip, 25, (struct sockaddr_in *)&ss) == 0)
    len = sizeof(struct sockaddr_in);
  else
    return 0;
  fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return 0; /* cannot tell: let the probe find out */
  if (connect(fd, (struct sockaddr *)&ss, len) != 0 &&
      (errno == ENETUNREACH || errno == EHOSTUNREACH))
    rc = -errno;
  close(fd);
  return rc;
}

/* Before any probe is asked for: addresses the engine will not try. */
static void triage_host(stls_engine_t *e, stls_domain_host_t *h) {
  int rc;
  if (h->res.family != 6)
    return;
  if (e->cfg.ipv6_mode == STLS_IPV6_OFF) {
    stls_host_result_fail_cause(&h->res, STLS_HOST_SKIPPED, STLS_STAGE_CONNECT,
                                STLS_CAUSE_IPV6_DISABLED, 0, NULL);
    return;
  }
  if (e->cfg.ipv6_mode == STLS_IPV6_ON)
    return;
  /* auto: ask the kernel about this one address. */
  rc = route_check(h->res.ip);
  if (rc != 0)
    stls_host_result_fail_cause(
        &h->res, STLS_HOST_NETWORK_UNREACHABLE, STLS_STAGE_CONNECT,
        rc == -EHOSTUNREACH ? STLS_CAUSE_EHOSTUNREACH : STLS_CAUSE_ENETUNREACH,
        0, "%s", strerror(-rc));
}

static void dns_done_cb(stls_dns_result_t *res, void *arg) {
  job_t *j = arg;
  worker_t *w = j->w;
  stls_engine_t *e = w->e;
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
      stls_host_result_init(&h->res, res->mx[i].host, ad->text, w->cfg.port);
      h->mx_index = i;
      j->n_hosts++;
    }
  j->pending = 0;
  for (k = 0; k < j->n_hosts; k++) {
    triage_host(e, &j->hosts[k]);
    if (!j->hosts[k].res.error.set)
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
    if (h->res.error.set)
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
    post(owner_of(e, m->ip), m);
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

static job_t *input_pop(stls_engine_t *e) {
  job_t *j;
  uv_mutex_lock(&e->in_mu);
  j = e->in_head;
  if (j) {
    e->in_head = j->next;
    if (!e->in_head)
      e->in_tail = NULL;
    e->in_count--;
    uv_cond_signal(&e->in_not_full);
  }
  uv_mutex_unlock(&e->in_mu);
  return j;
}

static void pull_jobs(worker_t *w) {
  stls_engine_t *e = w->e;
  while (w->jobs_inflight < w->jobs_max) {
    job_t *j = input_pop(e);
    stls_dns_query_opts_t q;
    if (!j)
      return;
    j->w = w;
    j->scanned_at = time(NULL);
    j->t0 = stls_now_ms();
    memset(&q, 0, sizeof(q));
    q.want_ipv4 = e->cfg.want_ipv4;
    q.want_ipv6 = e->cfg.want_ipv6;
    q.max_mx = e->cfg.limits.max_mx;
    q.max_addrs_per_host = e->cfg.limits.max_addrs;
    w->jobs_inflight++;
    e->domains_active++;
    j->waiting = 1;
    /* MTA-STS discovery runs beside DNS and the probes. */
    if (w->sts) {
      j->waiting++;
      if (stls_sts_fetch(w->sts, j->domain, sts_done_cb, j) != 0)
        j->waiting--; /* not a host name for STS: reported as not checked */
    }
    if (stls_dns_resolve_domain(w->dns, j->domain, &q, dns_done_cb, j) != 0)
      job_part_done(j); /* recorded as dns-error without details */
  }
}

/* ---- owner side ------------------------------------------------------- */

static void schedule(worker_t *w);
static void slot_give(worker_t *self);

static void reply_waiters(worker_t *w, endpoint_t *ep) {
  int first = 1;
  for (waiter_t *wt = ep->waiters, *nx; wt; wt = nx) {
    msg_t *m = calloc(1, sizeof(*m));
    nx = wt->next;
    if (m && stls_host_result_copy(&m->res, &ep->res) == 0) {
      m->shared = !first;
    } else {
      /* Out of memory: answer with a bare failure so the domain ends. */
      if (!m)
        m = calloc(1, sizeof(*m));
      if (m) {
        stls_host_result_init(&m->res, ep->sni, ep->ip, w->cfg.port);
        stls_host_result_fail(&m->res, STLS_HOST_CONNECTION_ERROR,
                              STLS_STAGE_NONE, "ENOMEM", "out of memory");
      }
    }
    if (m) {
      m->type = MSG_PROBE_RES;
      m->job = wt->job;
      m->slot = wt->slot;
      post(wt->w, m);
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
  if (++w->done_count > w->e->cfg.limits.cache_max) {
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

static void retry_fire_cb(uv_timer_t *t) {
  endpoint_t *ep = t->data;
  worker_t *w = ep->w;
  uv_close((uv_handle_t *)t, (uv_close_cb)free);
  ready_push(w, ep, 0);
  schedule(w);
}

static int requeue_later(worker_t *w, endpoint_t *ep, int64_t delay) {
  uv_timer_t *t = malloc(sizeof(*t));
  if (!t)
    return -1;
  uv_timer_init(&w->loop, t);
  t->data = ep;
  uv_timer_start(t, retry_fire_cb, (uint64_t)delay, 0);
  return 0;
}

static void probe_done_cb(stls_host_result_t *res, void *arg) {
  endpoint_t *ep = arg;
  worker_t *w = ep->w;
  stls_engine_t *e = w->e;
  ipstate_t *ips = ep->ips;
  int64_t delay = e->cfg.limits.retry_delay_ms;

  e->probes_active--;
  slot_give(w);
  ips->active--;
  if (ips->blocked_head) {
    endpoint_t *b = ips->blocked_head;
    ips->blocked_head = b->qnext;
    if (!ips->blocked_head)
      ips->blocked_tail = NULL;
    ready_push(w, b, 1);
  }
  if (stls_host_result_local_error(res) &&
      ep->local_retries < LOCAL_RETRY_MAX &&
      requeue_later(w, ep, LOCAL_RETRY_MS) == 0) {
    /* Out of descriptors here: not the host's status. Try again later. */
    ep->local_retries++;
    e->local_retries++;
    stls_host_result_free(res);
    stls_host_result_init(res, ep->sni, ep->ip, w->cfg.port);
    schedule(w);
    return;
  }
  if (!ep->retried && delay >= 0 && stls_host_result_retryable(res)) {
    /* A 421 or a reset under load: once more, later, not hammered. */
    char why[120], code[48];
    snprintf(why, sizeof(why), "%.40s: %.70s",
             stls_error_code(&res->error, code, sizeof(code)),
             res->error.message);
    if (requeue_later(w, ep, delay) == 0) {
      ep->retried = 1;
      stls_host_result_free(res);
      stls_host_result_init(res, ep->sni, ep->ip, w->cfg.port);
      stls_host_result_add_finding(res, "retried",
                                   "first attempt failed (%s); retried "
                                   "after %lld ms",
                                   why, (long long)delay);
      schedule(w);
      return;
    }
  }
  if (stls_host_result_has_finding(res, "tls12-fallback")) {
    char key[96];
    snprintf(key, sizeof(key), "%s|%d", ep->ip, w->cfg.port);
    /* Remembered so other names on this address skip the failing first
     * handshake; losing it to ENOMEM only costs a reconnect. */
    (void)stls_strmap_put(w->tls12_addrs, key, w);
  }
  ep->done = 1;
  reply_waiters(w, ep);
  remember_done(w, ep);
  ipstate_release(w, ips);
  schedule(w);
}

/* The engine's one token bucket. Returns 0 when a token was taken, else
 * the milliseconds until the next one. */
static int64_t take_token(stls_engine_t *e) {
  double rate = e->cfg.limits.rate;
  int64_t now, wait = 0;
  if (rate <= 0)
    return 0;
  uv_mutex_lock(&e->rate_mu);
  now = stls_now_ms();
  e->tokens += (double)(now - e->tokens_at) * rate / 1000.0;
  e->tokens_at = now;
  if (e->tokens > e->burst)
    e->tokens = e->burst;
  if (e->tokens >= 1.0)
    e->tokens -= 1.0;
  else
    wait = (int64_t)((1.0 - e->tokens) * 1000.0 / rate) + 1;
  uv_mutex_unlock(&e->rate_mu);
  return wait;
}

/* The probes' extra connections (fallbacks, --versions) pay for their
 * tokens too: 0 to go now, else how long until the next token. */
static int64_t pace_cb(void *arg) {
  worker_t *w = arg;
  return take_token(w->e);
}

static void rate_timer_cb(uv_timer_t *t) {
  worker_t *w = t->data;
  w->rate_timer_armed = 0;
  schedule(w);
}

/* Take a slot of the shared budget if one is free. */
static int slot_take(stls_engine_t *e) {
  unsigned n = atomic_load(&e->slots);
  while (n > 0)
    if (atomic_compare_exchange_weak(&e->slots, &n, n - 1))
      return 1;
  return 0;
}

/* Take a slot, or mark the worker as waiting for one. The mark is set
 * before the attempt, so a slot given back in between always finds it. */
static int slot_take_or_wait(worker_t *w) {
  atomic_store(&w->starved, 1);
  if (!slot_take(w->e))
    return 0;
  atomic_store(&w->starved, 0);
  return 1;
}

/* Give a slot back and wake the other workers that wait for one (this
 * worker schedules itself after a probe anyway). All of them: one that
 * has nothing left to start must not sit on the wake-up of another. */
static void slot_give(worker_t *self) {
  stls_engine_t *e = self->e;
  atomic_fetch_add(&e->slots, 1);
  for (unsigned k = 1; k < e->nw; k++) {
    worker_t *o = &e->workers[(self->id + k) % e->nw];
    if (!atomic_exchange(&o->starved, 0))
      continue;
    /* Under its lock: a stopping worker closes its handle only after it
     * has seen stop, which is set under the same lock. */
    uv_mutex_lock(&o->mu);
    if (!o->stop)
      uv_async_send(&o->async);
    uv_mutex_unlock(&o->mu);
  }
}

static void schedule(worker_t *w) {
  stls_engine_t *e = w->e;
  while (w->ready_head) {
    endpoint_t *ep = w->ready_head;
    ipstate_t *ips = ep->ips;
    stls_probe_cfg_t cfg;
    char key[96];
    int64_t wait;
    if (ips->active >= e->cfg.limits.per_ip) {
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
    if (!slot_take_or_wait(w))
      return; /* the budget is spent: a slot given back wakes us */
    if ((wait = take_token(e)) > 0) {
      slot_give(w); /* not used after all */
      if (!w->rate_timer_armed) {
        w->rate_timer_armed = 1;
        uv_mutex_lock(&e->rate_mu);
        e->rate_wait_ms += wait;
        uv_mutex_unlock(&e->rate_mu);
        uv_timer_start(&w->rate_timer, rate_timer_cb, (uint64_t)wait, 0);
      }
      return;
    }
    w->ready_head = ep->qnext;
    if (!w->ready_head)
      w->ready_tail = NULL;
    cfg = w->cfg;
    cfg.mx = ep->sni;
    cfg.ip = ep->ip;
    snprintf(key, sizeof(key), "%s|%d", ep->ip, w->cfg.port);
    cfg.tls12_only = stls_strmap_get(w->tls12_addrs, key) != NULL;
    e->probes_active++;
    ips->active++;
    if (stls_probe_start(&w->loop, &cfg, &ep->res, probe_done_cb, ep) != 0)
      probe_done_cb(&ep->res, ep);
  }
}

/* Answer a request at once (a shared result, or a failure). */
static void answer_now(worker_t *w, msg_t *m, const stls_host_result_t *src) {
  msg_t *r = calloc(1, sizeof(*r));
  if (!r)
    return; /* the domain then never ends: only under memory exhaustion */
  if (src && stls_host_result_copy(&r->res, src) == 0) {
    r->shared = true;
  } else {
    stls_host_result_init(&r->res, m->sni, m->ip, w->cfg.port);
    stls_host_result_fail(&r->res, STLS_HOST_CONNECTION_ERROR, STLS_STAGE_NONE,
                          "ENOMEM", "out of memory");
  }
  r->type = MSG_PROBE_RES;
  r->job = m->job;
  r->slot = m->slot;
  post(m->from, r);
}

static ipstate_t *ipstate_get(worker_t *w, const char *ip) {
  ipstate_t *ips = stls_strmap_get(w->ipstates, ip);
  if (ips)
    return ips;
  ips = calloc(1, sizeof(*ips));
  if (!ips)
    return NULL;
  stls_strlcpy(ips->ip, ip, sizeof(ips->ip));
  if (stls_strmap_put(w->ipstates, ips->ip, ips) != 0) {
    free(ips);
    return NULL;
  }
  return ips;
}

static void on_probe_request(worker_t *w, msg_t *m) {
  stls_engine_t *e = w->e;
  char key[400];
  endpoint_t *ep = NULL;
  waiter_t *wt;
  ipstate_t *ips;

  snprintf(key, sizeof(key), "%s|%d|%s", m->ip, w->cfg.port, m->sni);
  if (e->cfg.dedupe)
    ep = stls_strmap_get(w->endpoints, key);
  if (ep && ep->done) {
    answer_now(w, m, &ep->res);
    goto out;
  }
  wt = calloc(1, sizeof(*wt));
  if (!wt)
    goto nomem;
  wt->w = m->from;
  wt->job = m->job;
  wt->slot = m->slot;
  if (ep) { /* probe in progress: wait for it */
    wt->next = ep->waiters;
    ep->waiters = wt;
    goto out;
  }
  ep = calloc(1, sizeof(*ep));
  ips = ipstate_get(w, m->ip);
  if (!ep || !ips) {
    free(ep);
    free(wt);
    goto nomem;
  }
  ep->w = w;
  stls_strlcpy(ep->ip, m->ip, sizeof(ep->ip));
  ep->sni = m->sni;
  m->sni = NULL;
  ep->waiters = wt;
  stls_host_result_init(&ep->res, ep->sni, ep->ip, w->cfg.port);
  if (e->cfg.dedupe) {
    ep->key = stls_strdup(key);
    if (!ep->key || stls_strmap_put(w->endpoints, key, ep) != 0) {
      free(ep->key);
      ep->key = NULL; /* still probed, just not shared */
    }
  }
  ep->ips = ips;
  ips->refs++;
  ready_push(w, ep, 0);
  schedule(w);
  goto out;

nomem:
  answer_now(w, m, NULL);
out:
  free(m->sni);
  free(m);
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
  schedule(w); /* woken because a slot of the shared budget is free */
}

static void worker_main(void *arg) {
  worker_t *w = arg;
  uv_run(&w->loop, UV_RUN_DEFAULT);
}

static int worker_init(stls_engine_t *e, worker_t *w, unsigned id) {
  const stls_engine_cfg_t *o = &e->cfg;
  stls_dns_opts_t dopts;
  stls_sts_limits_t slim;
  int r;
  w->e = e;
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
  dopts.timeout_ms = o->limits.dns_timeout_ms;
  dopts.tries = o->limits.dns_tries;
  r = stls_dns_init(&w->dns, &w->loop, &dopts);
  if (r != 0) {
    snprintf(w->init_error, sizeof(w->init_error),
             "cannot set up the resolver%s%s: %s", o->resolvers ? " " : "",
             o->resolvers ? o->resolvers : "", uv_strerror(r));
    return -1;
  }
  if (stls_tls_ctx_init_stores(&w->tls, o->ca_file, o->trust_stores,
                               o->n_trust_stores, o->intermediates,
                               w->init_error, sizeof(w->init_error)) != 0)
    return -1;
  memset(&slim, 0, sizeof(slim)); /* zero: the defaults */
  slim.guard_private = o->guard_private;
  slim.skip_ipv4 = !o->want_ipv4;
  slim.skip_ipv6 = !o->want_ipv6 || o->ipv6_mode == STLS_IPV6_OFF;
  if (o->mta_sts &&
      (r = stls_sts_init(&w->sts, &w->loop, w->dns, w->tls, &slim)) != 0) {
    snprintf(w->init_error, sizeof(w->init_error), "cannot set up MTA-STS: %s",
             uv_strerror(r));
    return -1;
  }
  w->cfg = o->probe;
  w->cfg.tls = w->tls;
  w->cfg.pace = pace_cb;
  w->cfg.pace_arg = w;
  /* Enough domains in flight to keep this worker's share of the probe
   * slots busy while others wait for DNS, few enough to keep memory flat. */
  w->jobs_max = o->limits.concurrency / e->nw * 2 + 8;
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

/* ---- the API ---------------------------------------------------------- */

int stls_engine_new(stls_engine_t **out, uv_loop_t *loop,
                    const stls_engine_cfg_t *cfg, stls_engine_record_cb cb,
                    void *arg, char *err, size_t errlen) {
  stls_engine_t *e = calloc(1, sizeof(*e));
  unsigned started = 0, inited = 0;
  *out = NULL;
  if (!e) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  e->cfg = *cfg;
  e->loop = loop;
  e->cb = cb;
  e->cb_arg = arg;
  e->nw = cfg->limits.workers ? cfg->limits.workers : 1;
  if (e->cfg.limits.queue_cap == 0)
    e->cfg.limits.queue_cap = STLS_DEFAULT_QUEUE_CAP;
  if (e->cfg.limits.cache_max == 0)
    e->cfg.limits.cache_max = STLS_DEFAULT_CACHE_MAX;
  e->burst = cfg->limits.rate > 0 ? 1.0 + cfg->limits.rate / 10.0 : 0;
  e->tokens = e->burst;
  e->tokens_at = stls_now_ms();
  atomic_init(&e->slots, cfg->limits.concurrency ? cfg->limits.concurrency : 1);
  /* One guard for SMTP and MTA-STS connections (service, --refuse-private). */
  e->cfg.guard_private = cfg->guard_private || cfg->probe.guard_private;
  e->cfg.probe.guard_private = e->cfg.guard_private;
  e->workers = calloc(e->nw, sizeof(*e->workers));
  if (!e->workers) {
    free(e);
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  uv_mutex_init(&e->in_mu);
  uv_cond_init(&e->in_not_full);
  uv_mutex_init(&e->done_mu);
  uv_mutex_init(&e->rate_mu);
  uv_async_init(loop, &e->done_async, done_async_cb);
  e->done_async.data = e;
  for (; inited < e->nw; inited++)
    if (worker_init(e, &e->workers[inited], inited) != 0) {
      snprintf(err, errlen, "%s", e->workers[inited].init_error);
      inited++;
      goto fail;
    }
  for (; started < e->nw; started++)
    if (uv_thread_create(&e->workers[started].thread, worker_main,
                         &e->workers[started]) != 0) {
      snprintf(err, errlen, "cannot start worker threads");
      goto fail;
    }
  *out = e;
  return 0;

fail:
  for (unsigned i = 0; i < started; i++) {
    worker_t *w = &e->workers[i];
    uv_mutex_lock(&w->mu);
    w->stop = 1;
    uv_mutex_unlock(&w->mu);
    uv_async_send(&w->async);
    uv_thread_join(&w->thread);
  }
  for (unsigned i = 0; i < inited; i++)
    worker_destroy(&e->workers[i]);
  e->nw = 0;
  stls_engine_free(e);
  return -1;
}

static void wake_workers(stls_engine_t *e) {
  for (unsigned i = 0; i < e->nw; i++)
    uv_async_send(&e->workers[i].async);
}

static job_t *job_new(const char *domain, const char *why, void *tag) {
  job_t *j = calloc(1, sizeof(*j));
  if (!j)
    return NULL;
  j->tag = tag;
  j->domain = stls_strdup(domain);
  j->input_error = why ? stls_strdup(why) : NULL;
  if (!j->domain || (why && !j->input_error)) {
    job_free(j);
    return NULL;
  }
  j->scanned_at = time(NULL);
  return j;
}

static int submit(stls_engine_t *e, const char *domain, void *tag, int wait) {
  char name[STLS_DOMAIN_MAX + 2];
  const char *why = NULL;
  job_t *j;
  if (stls_domain_normalize(domain, name, sizeof(name), &why) != 0)
    return stls_engine_submit_invalid(e, domain, why ? why : "not a domain",
                                      tag);
  if (!(j = job_new(name, NULL, tag)))
    return UV_ENOMEM;
  uv_mutex_lock(&e->in_mu);
  while (!e->stopped && e->in_count >= e->cfg.limits.queue_cap && wait)
    uv_cond_wait(&e->in_not_full, &e->in_mu);
  if (e->stopped || e->in_count >= e->cfg.limits.queue_cap) {
    int rc = e->stopped ? UV_ECANCELED : UV_EAGAIN;
    uv_mutex_unlock(&e->in_mu);
    job_free(j);
    return rc;
  }
  if (e->in_tail)
    e->in_tail->next = j;
  else
    e->in_head = j;
  e->in_tail = j;
  e->in_count++;
  uv_mutex_lock(&e->done_mu);
  e->submitted++;
  uv_mutex_unlock(&e->done_mu);
  uv_mutex_unlock(&e->in_mu);
  wake_workers(e);
  return 0;
}

int stls_engine_submit(stls_engine_t *e, const char *domain, void *tag) {
  return submit(e, domain, tag, 0);
}

int stls_engine_submit_wait(stls_engine_t *e, const char *domain, void *tag) {
  return submit(e, domain, tag, 1);
}

int stls_engine_submit_invalid(stls_engine_t *e, const char *raw,
                               const char *why, void *tag) {
  job_t *j;
  uv_mutex_lock(&e->in_mu);
  if (e->stopped) {
    uv_mutex_unlock(&e->in_mu);
    return UV_ECANCELED;
  }
  uv_mutex_unlock(&e->in_mu);
  if (!(j = job_new(raw, why, tag)))
    return UV_ENOMEM;
  uv_mutex_lock(&e->done_mu);
  e->submitted++;
  uv_mutex_unlock(&e->done_mu);
  deliver(e, j);
  return 0;
}

uint64_t stls_engine_pending(stls_engine_t *e) {
  uint64_t n;
  uv_mutex_lock(&e->done_mu);
  n = e->submitted - e->delivered;
  uv_mutex_unlock(&e->done_mu);
  return n;
}

size_t stls_engine_queued(stls_engine_t *e) {
  size_t n;
  uv_mutex_lock(&e->in_mu);
  n = e->in_count;
  uv_mutex_unlock(&e->in_mu);
  return n;
}

void stls_engine_stats(stls_engine_t *e, stls_engine_stats_t *s) {
  memset(s, 0, sizeof(*s));
  s->probes_active = e->probes_active;
  s->domains_active = e->domains_active;
  s->queued = stls_engine_queued(e);
  uv_mutex_lock(&e->rate_mu);
  s->rate_wait_ms = e->rate_wait_ms;
  uv_mutex_unlock(&e->rate_mu);
  s->local_retries = e->local_retries;
}

void stls_engine_stop(stls_engine_t *e, void (*drop_cb)(void *tag, void *arg),
                      void *arg) {
  job_t *j;
  uint64_t dropped = 0;
  uv_mutex_lock(&e->in_mu);
  e->stopped = true;
  j = e->in_head;
  e->in_head = e->in_tail = NULL;
  e->in_count = 0;
  uv_cond_broadcast(&e->in_not_full);
  uv_mutex_unlock(&e->in_mu);
  while (j) {
    job_t *next = j->next;
    if (drop_cb)
      drop_cb(j->tag, arg);
    job_free(j);
    dropped++;
    j = next;
  }
  uv_mutex_lock(&e->done_mu);
  e->submitted -= dropped;
  uv_mutex_unlock(&e->done_mu);
}

static void engine_closed_cb(uv_handle_t *h) {
  free((char *)h - offsetof(stls_engine_t, done_async));
}

void stls_engine_free(stls_engine_t *e) {
  job_t *j;
  if (!e)
    return;
  for (unsigned i = 0; i < e->nw; i++) {
    worker_t *w = &e->workers[i];
    uv_mutex_lock(&w->mu);
    w->stop = 1;
    uv_mutex_unlock(&w->mu);
    uv_async_send(&w->async);
  }
  for (unsigned i = 0; i < e->nw; i++)
    uv_thread_join(&e->workers[i].thread);
  for (unsigned i = 0; i < e->nw; i++)
    worker_destroy(&e->workers[i]);
  for (j = e->in_head; j;) {
    job_t *next = j->next;
    job_free(j);
    j = next;
  }
  for (j = e->done_head; j;) {
    job_t *next = j->next;
    job_free(j);
    j = next;
  }
  free(e->workers);
  uv_mutex_destroy(&e->in_mu);
  uv_cond_destroy(&e->in_not_full);
  uv_mutex_destroy(&e->done_mu);
  uv_mutex_destroy(&e->rate_mu);
  /* The async handle belongs to the caller's loop: free the engine once
   * that loop has closed it. */
  e->done_async.data = NULL;
  uv_close((uv_handle_t *)&e->done_async, engine_closed_cb);
}
