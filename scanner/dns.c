/* DNS stage: MX and address lookups with c-ares, driven by libuv.
 *
 * c-ares 1.18 has no event thread of its own: it tells us through the
 * socket-state callback which sockets it wants watched, and we give each
 * one a uv_poll_t; one uv_timer_t follows ares_timeout() so retries and
 * timeouts happen without anything blocking the loop. */
#include "stls/dns.h"

#include <ares.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>

/* ---- status tables ---------------------------------------------------- */

static const char *const status_names[] = {
#define XX(name, dns_name, domain_status, message) dns_name,
  STLS_DNS_STATUS_MAP(XX)
#undef XX
};
static const char *const status_domain_names[] = {
#define XX(name, dns_name, domain_status, message) domain_status,
  STLS_DNS_STATUS_MAP(XX)
#undef XX
};
static const char *const status_messages[] = {
#define XX(name, dns_name, domain_status, message) message,
  STLS_DNS_STATUS_MAP(XX)
#undef XX
};
#define NSTATUS (sizeof status_names / sizeof status_names[0])

const char *stls_dns_status_name(stls_dns_status_t s)
{
  return (size_t)s < NSTATUS ? status_names[s] : "unknown";
}

const char *stls_dns_status_domain_name(stls_dns_status_t s)
{
  return (size_t)s < NSTATUS ? status_domain_names[s] : "unknown";
}

const char *stls_dns_status_message(stls_dns_status_t s)
{
  return (size_t)s < NSTATUS ? status_messages[s] : "unknown";
}

static const stls_dns_error_t no_error = {NULL, NULL};

stls_dns_status_t stls__dns_status_from_ares(int ares_status, stls_dns_error_t *err)
{
  stls_dns_status_t s;
  const char *code;

  switch (ares_status) {
  case ARES_SUCCESS:
    if (err)
      *err = no_error;
    return STLS_DNS_OK;
  case ARES_ENOTFOUND:
    s = STLS_DNS_NXDOMAIN, code = "NXDOMAIN";
    break;
  case ARES_ENODATA:
    s = STLS_DNS_NO_ADDRESS, code = "NODATA";
    break;
  case ARES_ESERVFAIL:
    s = STLS_DNS_SERVFAIL, code = "SERVFAIL";
    break;
  case ARES_EREFUSED:
    s = STLS_DNS_REFUSED, code = "REFUSED";
    break;
  case ARES_ETIMEOUT:
    s = STLS_DNS_TIMEOUT, code = "ETIMEDOUT";
    break;
  case ARES_EFORMERR:
    s = STLS_DNS_BAD_RESPONSE, code = "FORMERR";
    break;
  case ARES_EBADRESP:
    s = STLS_DNS_BAD_RESPONSE, code = "BADRESP";
    break;
  case ARES_ENOTIMP:
    s = STLS_DNS_ERROR, code = "NOTIMP";
    break;
  case ARES_ECONNREFUSED:
    s = STLS_DNS_ERROR, code = "ECONNREFUSED";
    break;
  case ARES_ENOMEM:
    s = STLS_DNS_ERROR, code = "ENOMEM";
    break;
  case ARES_EBADNAME:
    s = STLS_DNS_ERROR, code = "EBADNAME";
    break;
  case ARES_EDESTRUCTION:
  case ARES_ECANCELLED:
    s = STLS_DNS_CANCELLED, code = "ECANCELED";
    break;
  default:
    s = STLS_DNS_ERROR, code = "EDNS";
    break;
  }
  if (err) {
    err->code = code;
    err->message = ares_strerror(ares_status);
  }
  return s;
}

/* ---- results ---------------------------------------------------------- */

/* Free what one MX entry owns (the entry itself lives in an array). */
static void mx_free_fields(stls_dns_mx_t *m)
{
  free(m->host);
  free(m->addrs);
  m->host = NULL;
  m->addrs = NULL;
  m->naddrs = 0;
}

void stls_dns_result_free(stls_dns_result_t *r)
{
  if (!r)
    return;
  for (size_t i = 0; i < r->nmx; i++)
    mx_free_fields(&r->mx[i]);
  free(r->mx);
  free(r->domain);
  free(r);
}

/* ---- pure MX rules ---------------------------------------------------- */

/* Delivery order: preference, then host name in byte order. */
static int mx_cmp(const void *a, const void *b)
{
  const stls_dns_mx_t *x = a, *y = b;
  if (x->preference != y->preference)
    return x->preference < y->preference ? -1 : 1;
  return strcmp(x->host, y->host);
}

void stls__dns_mx_sort(stls_dns_mx_t *mx, size_t n)
{
  if (n > 1)
    qsort(mx, n, sizeof *mx, mx_cmp);
}

/* Copy a name from DNS into our form: lower case, no trailing dot. */
static char *host_dup(const char *s)
{
  size_t len = strlen(s);
  char *h;
  if (len > 0 && s[len - 1] == '.')
    len--;
  h = malloc(len + 1);
  if (!h)
    return NULL;
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    h[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
  }
  h[len] = '\0';
  return h;
}

/* The null MX target: c-ares spells the root "" (and "." is accepted). */
static bool is_root(const char *host)
{
  return host[0] == '\0' || strcmp(host, ".") == 0;
}

/* Parse an MX target that is an address: "192.0.2.1", "2001:db8::1" or
 * either in brackets. Returns the family or 0. */
static int ip_literal(const char *host, unsigned char bin[16])
{
  char buf[STLS_DNS_ADDRSTRLEN + 2];
  size_t len = strlen(host);
  if (len >= 2 && host[0] == '[' && host[len - 1] == ']') {
    host++;
    len -= 2;
  }
  if (len == 0 || len >= sizeof buf)
    return 0;
  memcpy(buf, host, len);
  buf[len] = '\0';
  if (inet_pton(AF_INET, buf, bin) == 1)
    return AF_INET;
  if (inet_pton(AF_INET6, buf, bin) == 1)
    return AF_INET6;
  return 0;
}

/* A fresh MX entry that owns host; nothing is looked up yet. */
static void mx_init(stls_dns_mx_t *m, unsigned preference, char *host)
{
  unsigned char bin[16];
  memset(m, 0, sizeof *m);
  m->preference = preference;
  m->host = host;
  m->status = STLS_DNS_NOT_QUERIED;
  m->a_status = STLS_DNS_NOT_QUERIED;
  m->aaaa_status = STLS_DNS_NOT_QUERIED;
  m->is_ip_literal = ip_literal(host, bin) != 0;
}

int stls__dns_classify_mx(stls_dns_result_t *r, const char *domain, stls_dns_status_t mx_status,
                          stls_dns_error_t mx_error, const stls__dns_mx_rr_t *rr, size_t nrr,
                          unsigned max_mx)
{
  size_t roots = 0, kept = 0;
  stls_dns_mx_t *mx;

  r->status = mx_status;
  r->error = mx_status == STLS_DNS_OK ? no_error : mx_error;
  if (mx_status != STLS_DNS_OK)
    return 0;
  if (max_mx == 0)
    max_mx = STLS_DNS_DEFAULT_MAX_MX;

  if (nrr == 0) {
    /* RFC 5321 5.1: no MX records at all means the domain itself is the
     * mail exchanger, with preference 0. */
    char *h = host_dup(domain);
    r->mx = calloc(1, sizeof *r->mx);
    if (!h || !r->mx) {
      free(h);
      free(r->mx);
      r->mx = NULL;
      return UV_ENOMEM;
    }
    mx_init(&r->mx[0], 0, h);
    r->nmx = 1;
    r->implicit_mx = true;
    return 0;
  }

  for (size_t i = 0; i < nrr; i++)
    roots += is_root(rr[i].host);
  if (roots == nrr) {
    /* RFC 7505: a lone "." target says the domain accepts no mail; do not
     * fall back to its address records. */
    r->status = STLS_DNS_NULL_MX;
    r->null_mx = true;
    return 0;
  }
  r->null_mx_mixed = roots > 0;

  mx = calloc(nrr - roots, sizeof *mx);
  if (!mx)
    return UV_ENOMEM;
  for (size_t i = 0, j = 0; i < nrr; i++) {
    char *h;
    if (is_root(rr[i].host))
      continue;
    h = host_dup(rr[i].host);
    if (!h) {
      for (size_t k = 0; k < j; k++)
        free(mx[k].host);
      free(mx);
      return UV_ENOMEM;
    }
    mx_init(&mx[j++], rr[i].preference, h);
  }
  stls__dns_mx_sort(mx, nrr - roots);

  /* Keep the first occurrence of each host (its best preference) up to
   * the cap; the scan is O(n * max_mx), bounded even for hostile answers. */
  for (size_t i = 0; i < nrr - roots; i++) {
    bool dup = false;
    for (size_t k = 0; k < kept && !dup; k++)
      dup = strcmp(mx[k].host, mx[i].host) == 0;
    if (dup || kept == max_mx) {
      r->mx_truncated = r->mx_truncated || !dup;
      free(mx[i].host);
      continue;
    }
    mx[kept++] = mx[i];
  }
  r->mx = mx;
  r->nmx = kept;
  return 0;
}

/* How much a failure says about a host, for choosing the one to report:
 * a transient failure hides what the name really holds, so it wins over
 * the definitive answers. */
static int failure_rank(stls_dns_status_t s)
{
  switch (s) {
  case STLS_DNS_OK:
  case STLS_DNS_NOT_QUERIED:
    return 0;
  case STLS_DNS_NO_ADDRESS:
    return 1;
  case STLS_DNS_NXDOMAIN:
    return 2;
  default:
    return 3;
  }
}

static bool is_transient(stls_dns_status_t s)
{
  return failure_rank(s) == 3;
}

/* The error object for a status when no more specific one was recorded. */
static stls_dns_error_t default_error(stls_dns_status_t s)
{
  stls_dns_error_t e = {NULL, stls_dns_status_message(s)};
  switch (s) {
  case STLS_DNS_OK:
  case STLS_DNS_NULL_MX:
  case STLS_DNS_NOT_QUERIED:
    return no_error;
  case STLS_DNS_NXDOMAIN:
    e.code = "NXDOMAIN";
    break;
  case STLS_DNS_NO_ADDRESS:
    e.code = "NODATA";
    break;
  case STLS_DNS_SERVFAIL:
    e.code = "SERVFAIL";
    break;
  case STLS_DNS_REFUSED:
    e.code = "REFUSED";
    break;
  case STLS_DNS_TIMEOUT:
    e.code = "ETIMEDOUT";
    break;
  case STLS_DNS_BAD_RESPONSE:
    e.code = "BADRESP";
    break;
  case STLS_DNS_CANCELLED:
    e.code = "ECANCELED";
    break;
  default:
    e.code = "EDNS";
    break;
  }
  return e;
}

void stls__dns_settle(stls_dns_result_t *r)
{
  size_t with_addr = 0, queried = 0;
  const stls_dns_mx_t *transient = NULL;

  for (size_t i = 0; i < r->nmx; i++) {
    stls_dns_mx_t *m = &r->mx[i];
    stls_dns_status_t prev = m->status; /* what m->error describes */
    stls_dns_status_t worst = m->a_status;
    if (failure_rank(m->aaaa_status) > failure_rank(worst))
      worst = m->aaaa_status;
    if (m->naddrs > 0)
      m->status = STLS_DNS_OK;
    else if (m->a_status == STLS_DNS_NOT_QUERIED && m->aaaa_status == STLS_DNS_NOT_QUERIED)
      /* An IP literal of a family we were told to skip has no address
       * for us; nothing was asked, so say "no address" rather than a
       * DNS failure. */
      m->status = m->is_ip_literal ? STLS_DNS_NO_ADDRESS : STLS_DNS_NOT_QUERIED;
    else if (worst == STLS_DNS_OK)
      m->status = STLS_DNS_NO_ADDRESS; /* only skipped/empty families */
    else
      m->status = worst;

    if (m->status == STLS_DNS_OK || m->status == STLS_DNS_NOT_QUERIED)
      m->error = no_error;
    else if (!m->error.code || m->status != prev)
      m->error = default_error(m->status);

    if (m->status != STLS_DNS_NOT_QUERIED)
      queried++;
    if (m->status == STLS_DNS_OK)
      with_addr++;
    else if (!transient && is_transient(m->status))
      transient = m;
  }

  if (r->status != STLS_DNS_OK)
    return; /* the MX step already decided */
  if (with_addr > 0 || queried == 0) {
    r->error = no_error;
  } else if (transient) {
    r->status = transient->status;
    r->error = transient->error;
  } else {
    r->status = STLS_DNS_NO_ADDRESS;
    r->error.code = "NO_ADDRESS";
    r->error.message = r->implicit_mx ? "no MX records and no address records"
                                      : "no MX host has an address";
  }
}

/* ---- the resolver ----------------------------------------------------- */

typedef struct dns_sock_s {
  uv_poll_t poll;
  stls_dns_t *d;
  ares_socket_t fd;
  struct dns_sock_s *next;
} dns_sock_t;

typedef struct dns_req_s dns_req_t;

/* One A or AAAA lookup of one MX host. */
typedef struct {
  dns_req_t *req;
  size_t idx;
  int family;
  unsigned char (*bin)[16]; /* sorted, unique addresses */
  size_t n;
} dns_lookup_t;

struct dns_req_s {
  stls_dns_t *d;
  stls_dns_result_t *res;
  stls_dns_done_cb cb;
  void *arg;
  stls_dns_query_opts_t q;
  uint64_t start_ns;
  unsigned pending;   /* c-ares queries whose callback has not run */
  bool in_submit;     /* inside stls_dns_resolve_domain: hold delivery */
  bool complete;
  bool cancelled;     /* a lookup was cut short by stls_dns_close */
  dns_lookup_t *lookups; /* 2 per MX host: [2i] A, [2i+1] AAAA */
  dns_req_t *next;       /* in the deferred-delivery queue */
};

/* A query waiting for a slot (see max_inflight). name points into the
 * request's result, which outlives the query. */
typedef struct dns_q_s {
  stls_dns_t *d;
  const char *name;
  int type;
  ares_callback cb;
  void *arg;
  struct dns_q_s *next;
} dns_q_t;

struct stls_dns_s {
  uv_loop_t *loop;
  ares_channel channel;
  bool channel_ok;
  uv_timer_t timer; /* c-ares retries and timeouts */
  uv_timer_t defer; /* delivers completions that happened during a call */
  dns_sock_t *socks;
  dns_req_t *deferred_head, *deferred_tail;
  dns_q_t *queue_head, *queue_tail; /* queries beyond max_inflight */
  unsigned inflight;
  unsigned max_inflight;
  bool pumping;
  unsigned busy;    /* depth of our calls into c-ares */
  bool closing;     /* stls_dns_close called */
  bool torn_down;   /* channel destroyed, handles closing */
  unsigned open_handles;
};

static uv_once_t ares_once = UV_ONCE_INIT;
static int ares_once_status;

/* ares_library_init is not thread-safe and workers start in parallel. */
static void ares_once_init(void)
{
  ares_once_status = ares_library_init(ARES_LIB_INIT_ALL);
}

static void teardown(stls_dns_t *d);
static void timer_cb(uv_timer_t *t);

/* The resolver is freed when its last handle has closed. */
static void handle_closed_cb(uv_handle_t *h)
{
  stls_dns_t *d = h->data;
  if (--d->open_handles == 0)
    free(d);
}

/* A socket watcher is gone; it may have been the last handle. */
static void sock_closed_cb(uv_handle_t *h)
{
  dns_sock_t *s = h->data;
  stls_dns_t *d = s->d;
  free(s);
  if (--d->open_handles == 0)
    free(d);
}

/* Re-arm the timer for c-ares' next deadline. */
static void timer_update(stls_dns_t *d)
{
  struct timeval tv, *tvp;
  uint64_t ms;
  if (d->torn_down)
    return;
  tvp = ares_timeout(d->channel, NULL, &tv);
  if (!tvp) {
    uv_timer_stop(&d->timer);
    return;
  }
  /* Round up: waking early would only find nothing to do and re-arm. */
  ms = (uint64_t)tvp->tv_sec * 1000 + ((uint64_t)tvp->tv_usec + 999) / 1000;
  uv_timer_start(&d->timer, timer_cb, ms, 0);
}

/* Leave a call into c-ares: re-arm the timer, and finish a close that was
 * asked for from inside a callback (destroying the channel from within
 * ares_process_fd would pull it out from under c-ares). */
static void ares_leave(stls_dns_t *d)
{
  if (--d->busy > 0)
    return;
  if (d->closing && !d->torn_down)
    teardown(d);
  else
    timer_update(d);
}

/* A c-ares socket is ready: let c-ares read or write it. */
static void poll_cb(uv_poll_t *h, int status, int events)
{
  dns_sock_t *s = h->data;
  stls_dns_t *d = s->d;
  ares_socket_t fd = s->fd; /* s may be closed by the socket-state callback */
  ares_socket_t rfd = ARES_SOCKET_BAD, wfd = ARES_SOCKET_BAD;

  if (d->torn_down)
    return;
  if (status < 0) {
    /* Let c-ares meet the error on its own read or write. */
    rfd = wfd = fd;
  } else {
    if (events & UV_READABLE)
      rfd = fd;
    if (events & UV_WRITABLE)
      wfd = fd;
  }
  d->busy++;
  ares_process_fd(d->channel, rfd, wfd);
  ares_leave(d);
}

/* A c-ares deadline passed: retries and timeouts happen in here. */
static void timer_cb(uv_timer_t *t)
{
  stls_dns_t *d = t->data;
  if (d->torn_down)
    return;
  d->busy++;
  ares_process_fd(d->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
  ares_leave(d);
}

static void sock_close(stls_dns_t *d, dns_sock_t *s)
{
  dns_sock_t **pp = &d->socks;
  while (*pp && *pp != s)
    pp = &(*pp)->next;
  if (*pp)
    *pp = s->next;
  /* Unlink now, free later: c-ares may reuse the descriptor number for a
   * new socket before this handle's close callback has run. */
  uv_close((uv_handle_t *)&s->poll, sock_closed_cb);
}

/* c-ares says which events it wants on a socket; none means it is about
 * to close the socket, so the watcher must go first. */
static void sock_state_cb(void *data, ares_socket_t fd, int readable, int writable)
{
  stls_dns_t *d = data;
  dns_sock_t *s;
  int events = (readable ? UV_READABLE : 0) | (writable ? UV_WRITABLE : 0);

  for (s = d->socks; s; s = s->next)
    if (s->fd == fd)
      break;
  if (!events) {
    if (s)
      sock_close(d, s);
    return;
  }
  if (!s) {
    s = calloc(1, sizeof *s);
    if (!s)
      return; /* c-ares will time the query out: slower, never wrong */
    if (uv_poll_init_socket(d->loop, &s->poll, fd) != 0) {
      free(s);
      return;
    }
    s->poll.data = s;
    s->d = d;
    s->fd = fd;
    s->next = d->socks;
    d->socks = s;
    d->open_handles++;
  }
  uv_poll_start(&s->poll, events, poll_cb);
}

/* ---- the query queue -------------------------------------------------- */

/* c-ares sends every query at once; thousands of them in one burst
 * overflow the socket buffers on both ends and come back as timeouts.
 * So at most max_inflight queries are on the wire, the rest wait here. */

static void queue_pump(stls_dns_t *d);

static void query_done_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
  dns_q_t *q = arg;
  stls_dns_t *d = q->d;
  d->inflight--;
  q->cb(q->arg, status, timeouts, abuf, alen);
  free(q);
  queue_pump(d);
}

static void query_send(stls_dns_t *d, dns_q_t *q)
{
  d->inflight++;
  ares_query(d->channel, q->name, C_IN, q->type, query_done_cb, q);
}

/* Send queued queries while there is room. Not re-entered: a query that
 * fails synchronously calls back into here, and the outer loop goes on. */
static void queue_pump(stls_dns_t *d)
{
  if (d->pumping || d->closing)
    return; /* when closing, teardown cancels what is queued */
  d->pumping = true;
  while (d->queue_head && d->inflight < d->max_inflight) {
    dns_q_t *q = d->queue_head;
    d->queue_head = q->next;
    if (!d->queue_head)
      d->queue_tail = NULL;
    query_send(d, q);
  }
  d->pumping = false;
}

/* Start a query; cb runs exactly once, possibly before this returns. */
static void query_start(stls_dns_t *d, const char *name, int type, ares_callback cb, void *arg)
{
  dns_q_t *q = calloc(1, sizeof *q);
  if (!q) {
    cb(arg, ARES_ENOMEM, 0, NULL, 0);
    return;
  }
  q->d = d;
  q->name = name;
  q->type = type;
  q->cb = cb;
  q->arg = arg;
  if (!d->queue_head && d->inflight < d->max_inflight) {
    query_send(d, q);
    return;
  }
  if (d->queue_tail)
    d->queue_tail->next = q;
  else
    d->queue_head = q;
  d->queue_tail = q;
}

/* Complete queued queries as cancelled (the resolver is going away). */
static void queue_cancel(stls_dns_t *d)
{
  while (d->queue_head) {
    dns_q_t *q = d->queue_head;
    d->queue_head = q->next;
    if (!d->queue_head)
      d->queue_tail = NULL;
    q->cb(q->arg, ARES_EDESTRUCTION, 0, NULL, 0);
    free(q);
  }
}

/* ---- requests --------------------------------------------------------- */

/* Free the per-family lookup state once addresses are merged. */
static void lookups_free(dns_req_t *req)
{
  if (!req->lookups)
    return;
  for (size_t i = 0; i < 2 * req->res->nmx; i++)
    free(req->lookups[i].bin);
  free(req->lookups);
  req->lookups = NULL;
}

/* Address order for qsort: network byte order compares as numbers. */
static int bin_cmp4(const void *a, const void *b)
{
  return memcmp(a, b, 4);
}

static int bin_cmp16(const void *a, const void *b)
{
  return memcmp(a, b, 16);
}

/* Build a host's address list from its lookups: IPv4 then IPv6, each
 * sorted; when both families exceed the cap together, each keeps at least
 * half of it, so a host with many A records still shows its IPv6 side. */
static int addrs_merge(stls_dns_mx_t *m, const dns_lookup_t *l4, const dns_lookup_t *l6,
                       unsigned cap)
{
  size_t n4 = l4->n, n6 = l6->n, k4 = n4, k6 = n6, j = 0;

  if (n4 + n6 > cap) {
    size_t half = cap / 2;
    k6 = n6 < half ? n6 : (cap > n4 && cap - n4 > half ? cap - n4 : half);
    if (k6 > n6)
      k6 = n6;
    k4 = cap - k6 < n4 ? cap - k6 : n4;
    m->addrs_truncated = true;
  }
  if (k4 + k6 == 0)
    return 0;
  m->addrs = calloc(k4 + k6, sizeof *m->addrs);
  if (!m->addrs)
    return UV_ENOMEM;
  for (size_t i = 0; i < k4; i++, j++) {
    m->addrs[j].family = AF_INET;
    inet_ntop(AF_INET, l4->bin[i], m->addrs[j].text, sizeof m->addrs[j].text);
  }
  for (size_t i = 0; i < k6; i++, j++) {
    m->addrs[j].family = AF_INET6;
    inet_ntop(AF_INET6, l6->bin[i], m->addrs[j].text, sizeof m->addrs[j].text);
  }
  m->naddrs = j;
  return 0;
}

/* Milliseconds since a uv_hrtime() reading. */
static uint64_t elapsed_ms(uint64_t start_ns)
{
  return (uv_hrtime() - start_ns) / 1000000;
}

/* Finish the result and hand it to the caller; req is freed first so the
 * callback may start new lookups or close the resolver. */
static void req_deliver(dns_req_t *req)
{
  stls_dns_result_t *res = req->res;
  stls_dns_done_cb cb = req->cb;
  void *arg = req->arg;
  unsigned cap = req->q.max_addrs_per_host;

  if (req->lookups) {
    for (size_t i = 0; i < res->nmx; i++) {
      if (addrs_merge(&res->mx[i], &req->lookups[2 * i], &req->lookups[2 * i + 1], cap) != 0) {
        res->mx[i].a_status = res->mx[i].aaaa_status = STLS_DNS_ERROR;
        res->mx[i].error.code = "ENOMEM";
        res->mx[i].error.message = "out of memory";
      }
    }
  }
  lookups_free(req);
  stls__dns_settle(res);
  if (req->cancelled) {
    /* A partial answer would read as the domain's real state. */
    res->status = STLS_DNS_CANCELLED;
    res->error = default_error(STLS_DNS_CANCELLED);
  }
  res->duration_ms = elapsed_ms(req->start_ns);
  free(req);
  cb(res, arg);
}

/* Deliver results that were complete before their call returned. */
static void defer_cb(uv_timer_t *t)
{
  stls_dns_t *d = t->data;
  /* Take the whole queue first: a callback may start new lookups that
   * complete synchronously and queue themselves again. */
  dns_req_t *req = d->deferred_head;
  d->deferred_head = d->deferred_tail = NULL;
  while (req) {
    dns_req_t *next = req->next;
    req_deliver(req);
    req = next;
  }
}

static void req_finish(dns_req_t *req)
{
  stls_dns_t *d = req->d;
  if (req->in_submit) {
    /* Completed before stls_dns_resolve_domain returned: the caller is
     * promised the callback only afterwards. */
    req->complete = true;
    return;
  }
  if (req->complete && !d->torn_down) {
    req->next = NULL;
    if (d->deferred_tail)
      d->deferred_tail->next = req;
    else
      d->deferred_head = req;
    d->deferred_tail = req;
    uv_timer_start(&d->defer, defer_cb, 0, 0);
    return;
  }
  req_deliver(req);
}

/* One of the request's queries has called back. */
static void req_release(dns_req_t *req)
{
  if (--req->pending == 0)
    req_finish(req);
}

/* Keep a lookup's addresses: copied, sorted and de-duplicated so results
 * do not depend on the server's round-robin order. */
static int lookup_store(dns_lookup_t *lk, const struct hostent *he)
{
  size_t alen = lk->family == AF_INET ? 4 : 16, n = 0, u = 0;
  while (he->h_addr_list && he->h_addr_list[n])
    n++;
  if (n == 0)
    return 0;
  lk->bin = calloc(n, sizeof *lk->bin);
  if (!lk->bin)
    return UV_ENOMEM;
  for (size_t i = 0; i < n; i++)
    memcpy(lk->bin[i], he->h_addr_list[i], alen);
  qsort(lk->bin, n, sizeof *lk->bin, alen == 4 ? bin_cmp4 : bin_cmp16);
  for (size_t i = 0; i < n; i++)
    if (u == 0 || memcmp(lk->bin[u - 1], lk->bin[i], alen) != 0)
      memmove(lk->bin[u++], lk->bin[i], alen);
  lk->n = u;
  return 0;
}

/* Did the answer reach the address through an alias? c-ares reports the
 * end of a CNAME chain as h_name and the names on the way as aliases. */
static bool went_through_cname(const struct hostent *he, const char *host)
{
  char *canon;
  bool differs;
  if (he->h_aliases && he->h_aliases[0])
    return true;
  if (!he->h_name)
    return false;
  canon = host_dup(he->h_name);
  if (!canon)
    return false;
  differs = strcmp(canon, host) != 0;
  free(canon);
  return differs;
}

/* An A or AAAA answer for one MX host. */
static void addr_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
  dns_lookup_t *lk = arg;
  dns_req_t *req = lk->req;
  stls_dns_mx_t *m = &req->res->mx[lk->idx];
  stls_dns_error_t err = no_error;
  stls_dns_status_t s;

  (void)timeouts;
  if (status == ARES_EDESTRUCTION)
    req->cancelled = true;
  if (status == ARES_SUCCESS) {
    struct hostent *he = NULL;
    int prc = lk->family == AF_INET ? ares_parse_a_reply(abuf, alen, &he, NULL, NULL)
                                    : ares_parse_aaaa_reply(abuf, alen, &he, NULL, NULL);
    if (prc == ARES_SUCCESS) {
      if (went_through_cname(he, m->host))
        m->is_cname = true;
      if (lookup_store(lk, he) != 0)
        prc = ARES_ENOMEM;
      ares_free_hostent(he);
    }
    status = prc;
  }
  s = stls__dns_status_from_ares(status, &err);
  if (lk->family == AF_INET)
    m->a_status = s;
  else
    m->aaaa_status = s;
  if (failure_rank(s) > failure_rank(m->status) || (!m->error.code && s != STLS_DNS_OK)) {
    /* m->status holds the worst family status so far until settle. */
    m->status = s;
    m->error = err;
  }
  req_release(req);
}

/* Start the address lookups for every MX host (called from the MX
 * callback, whose own pending count keeps req alive meanwhile). */
static void lookups_start(dns_req_t *req)
{
  stls_dns_result_t *res = req->res;
  stls_dns_t *d = req->d;

  req->lookups = calloc(2 * res->nmx, sizeof *req->lookups);
  if (!req->lookups) {
    res->status = STLS_DNS_ERROR;
    res->error.code = "ENOMEM";
    res->error.message = "out of memory";
    return;
  }
  for (size_t i = 0; i < res->nmx; i++) {
    stls_dns_mx_t *m = &res->mx[i];
    for (int f = 0; f < 2; f++) {
      dns_lookup_t *lk = &req->lookups[2 * i + f];
      lk->req = req;
      lk->idx = i;
      lk->family = f == 0 ? AF_INET : AF_INET6;
    }
    /* m->status is the running worst-family status until settle. */
    m->status = STLS_DNS_OK;
    if (m->is_ip_literal) {
      /* Postfix treats a numeric MX target as the address itself; do the
       * same and let the flag carry the finding. */
      unsigned char bin[16] = {0};
      int fam = ip_literal(m->host, bin);
      bool want = fam == AF_INET ? req->q.want_ipv4 : req->q.want_ipv6;
      dns_lookup_t *lk = &req->lookups[2 * i + (fam == AF_INET6)];
      if (want && (lk->bin = calloc(1, sizeof *lk->bin)) != NULL) {
        memcpy(lk->bin[0], bin, 16);
        lk->n = 1;
        if (fam == AF_INET)
          m->a_status = STLS_DNS_OK;
        else
          m->aaaa_status = STLS_DNS_OK;
      }
      continue;
    }
    if (req->q.want_ipv4) {
      req->pending++;
      query_start(d, m->host, T_A, addr_cb, &req->lookups[2 * i]);
    }
    if (req->q.want_ipv6) {
      req->pending++;
      query_start(d, m->host, T_AAAA, addr_cb, &req->lookups[2 * i + 1]);
    }
  }
}

/* The MX answer: apply the MX rules, then look up every host. */
static void mx_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
  dns_req_t *req = arg;
  stls_dns_result_t *res = req->res;
  struct ares_mx_reply *list = NULL;
  stls__dns_mx_rr_t *rr = NULL;
  size_t nrr = 0;
  stls_dns_error_t err = no_error;
  stls_dns_status_t s;

  (void)timeouts;
  if (status == ARES_EDESTRUCTION)
    req->cancelled = true;
  if (status == ARES_SUCCESS) {
    status = ares_parse_mx_reply(abuf, alen, &list);
    /* An answer with only a CNAME to a name without MX is NODATA too. */
    if (status == ARES_ENODATA)
      list = NULL;
  }
  if (status == ARES_ENODATA) {
    s = STLS_DNS_OK; /* no MX records: the implicit-MX rule applies */
  } else {
    s = stls__dns_status_from_ares(status, &err);
  }
  if (s == STLS_DNS_OK && status == ARES_SUCCESS) {
    for (struct ares_mx_reply *p = list; p; p = p->next)
      nrr++;
    rr = calloc(nrr ? nrr : 1, sizeof *rr);
    if (!rr) {
      s = stls__dns_status_from_ares(ARES_ENOMEM, &err);
      nrr = 0;
    } else {
      size_t i = 0;
      for (struct ares_mx_reply *p = list; p; p = p->next, i++) {
        rr[i].preference = p->priority;
        rr[i].host = p->host;
      }
    }
  }
  if (stls__dns_classify_mx(res, res->domain, s, err, rr, nrr, req->q.max_mx) != 0)
    res->status = stls__dns_status_from_ares(ARES_ENOMEM, &res->error);
  free(rr);
  if (list)
    ares_free_data(list);

  if (res->status == STLS_DNS_OK && (req->q.want_ipv4 || req->q.want_ipv6)) {
    if (req->d->closing)
      req->cancelled = true;
    else
      lookups_start(req);
  }
  req_release(req);
}

int stls_dns_resolve_domain(stls_dns_t *d, const char *domain, const stls_dns_query_opts_t *q,
                            stls_dns_done_cb cb, void *arg)
{
  dns_req_t *req;

  if (!d || !domain || !domain[0] || !cb)
    return UV_EINVAL;
  if (d->closing)
    return UV_ECANCELED;
  req = calloc(1, sizeof *req);
  if (!req)
    return UV_ENOMEM;
  req->res = calloc(1, sizeof *req->res);
  if (!req->res || !(req->res->domain = host_dup(domain))) {
    free(req->res);
    free(req);
    return UV_ENOMEM;
  }
  req->d = d;
  req->cb = cb;
  req->arg = arg;
  if (q) {
    req->q = *q;
  } else {
    req->q.want_ipv4 = req->q.want_ipv6 = true;
  }
  if (req->q.max_mx == 0)
    req->q.max_mx = STLS_DNS_DEFAULT_MAX_MX;
  if (req->q.max_addrs_per_host == 0)
    req->q.max_addrs_per_host = STLS_DNS_DEFAULT_MAX_ADDRS;
  req->start_ns = uv_hrtime();
  req->pending = 1;
  req->in_submit = true;

  d->busy++;
  query_start(d, req->res->domain, T_MX, mx_cb, req);
  /* req is still ours: delivery is held while in_submit is set. */
  req->in_submit = false;
  if (req->complete)
    req_finish(req);
  ares_leave(d);
  return 0;
}

/* ---- life cycle ------------------------------------------------------- */

int stls_dns_init(stls_dns_t **out, uv_loop_t *loop, const stls_dns_opts_t *o)
{
  struct ares_options opts;
  int optmask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_FLAGS | ARES_OPT_EDNSPSZ;
  bool explicit_servers = o && o->servers && o->servers[0];
  stls_dns_t *d;
  int rc;

  if (!out || !loop)
    return UV_EINVAL;
  *out = NULL;
  uv_once(&ares_once, ares_once_init);
  if (ares_once_status != ARES_SUCCESS)
    return UV_ENOMEM;

  d = calloc(1, sizeof *d);
  if (!d)
    return UV_ENOMEM;
  d->loop = loop;
  d->max_inflight = o && o->max_inflight ? o->max_inflight : STLS_DNS_DEFAULT_MAX_INFLIGHT;

  memset(&opts, 0, sizeof opts);
  opts.sock_state_cb = sock_state_cb;
  opts.sock_state_cb_data = d;
  /* EDNS lets big MX and address sets come back over UDP; 1232 is the
   * size that avoids IP fragmentation (DNS flag day 2020). c-ares falls
   * back to TCP for a truncated answer and to plain DNS on FORMERR.
   * NOCHECKRESP: c-ares 1.18 turns SERVFAIL and REFUSED answers into
   * "could not contact DNS servers" (ECONNREFUSED) after retrying; we
   * need them told apart, and a resolver's SERVFAIL is final anyway. */
  opts.flags = ARES_FLAG_EDNS | ARES_FLAG_NOCHECKRESP;
  opts.ednspsz = 1232;
  if (explicit_servers || (o && o->timeout_ms)) {
    opts.timeout = (int)(o && o->timeout_ms ? o->timeout_ms : STLS_DNS_DEFAULT_TIMEOUT_MS);
    optmask |= ARES_OPT_TIMEOUTMS;
  }
  if (explicit_servers || (o && o->tries)) {
    opts.tries = (int)(o && o->tries ? o->tries : STLS_DNS_DEFAULT_TRIES);
    optmask |= ARES_OPT_TRIES;
  }
  rc = ares_init_options(&d->channel, &opts, optmask);
  if (rc != ARES_SUCCESS) {
    free(d);
    return rc == ARES_ENOMEM ? UV_ENOMEM : UV_EINVAL;
  }
  if (explicit_servers) {
    rc = ares_set_servers_ports_csv(d->channel, o->servers);
    if (rc != ARES_SUCCESS) {
      ares_destroy(d->channel);
      free(d);
      return rc == ARES_ENOMEM ? UV_ENOMEM : UV_EINVAL;
    }
  }
  d->channel_ok = true;

  /* Timer initialisation cannot fail for a valid loop; from here on the
   * object is freed through the handles' close callbacks. */
  uv_timer_init(loop, &d->timer);
  uv_timer_init(loop, &d->defer);
  d->timer.data = d;
  d->defer.data = d;
  d->open_handles = 2;
  *out = d;
  return 0;
}

/* Cancel everything and close the handles; runs once, outside c-ares. */
static void teardown(stls_dns_t *d)
{
  dns_req_t *req;

  d->torn_down = true;
  uv_timer_stop(&d->timer);
  uv_timer_stop(&d->defer);
  /* Results already known go out as they are. */
  req = d->deferred_head;
  d->deferred_head = d->deferred_tail = NULL;
  while (req) {
    dns_req_t *next = req->next;
    req_deliver(req);
    req = next;
  }
  /* Every query still in flight completes here with ARES_EDESTRUCTION,
   * which its request reports as CANCELLED. */
  if (d->channel_ok) {
    d->busy++;
    ares_destroy(d->channel);
    d->channel_ok = false;
    queue_cancel(d);
    d->busy--;
  }
  /* c-ares tells the socket-state callback about each socket it closes;
   * anything left is closed here so no handle outlives the object. */
  while (d->socks)
    sock_close(d, d->socks);
  uv_close((uv_handle_t *)&d->timer, handle_closed_cb);
  uv_close((uv_handle_t *)&d->defer, handle_closed_cb);
}

void stls_dns_close(stls_dns_t *d)
{
  if (!d || d->closing)
    return;
  d->closing = true;
  if (d->busy == 0)
    teardown(d);
}
