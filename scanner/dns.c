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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* TLSA (RFC 6698); arpa/nameser.h has no name for it on every libc. */
#define T_TLSA_TYPE 52

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

const char *stls_dns_status_name(stls_dns_status_t s) {
  return (size_t)s < NSTATUS ? status_names[s] : "unknown";
}

const char *stls_dns_status_domain_name(stls_dns_status_t s) {
  return (size_t)s < NSTATUS ? status_domain_names[s] : "unknown";
}

const char *stls_dns_status_message(stls_dns_status_t s) {
  return (size_t)s < NSTATUS ? status_messages[s] : "unknown";
}

static const stls_dns_error_t no_error = {NULL, NULL};

stls_dns_status_t stls__dns_status_from_ares(int ares_status,
                                             stls_dns_error_t *err) {
  stls_dns_status_t s;
  const char *code;

  switch (ares_status) {
  case ARES_SUCCESS:
    if (err)
      *err = no_error;
    return STLS_DNS_OK;
  case ARES_ENOTFOUND: s = STLS_DNS_NXDOMAIN, code = "NXDOMAIN"; break;
  case ARES_ENODATA: s = STLS_DNS_NO_ADDRESS, code = "NODATA"; break;
  case ARES_ESERVFAIL: s = STLS_DNS_SERVFAIL, code = "SERVFAIL"; break;
  case ARES_EREFUSED: s = STLS_DNS_REFUSED, code = "REFUSED"; break;
  case ARES_ETIMEOUT: s = STLS_DNS_TIMEOUT, code = "ETIMEDOUT"; break;
  case ARES_EFORMERR: s = STLS_DNS_BAD_RESPONSE, code = "FORMERR"; break;
  case ARES_EBADRESP: s = STLS_DNS_BAD_RESPONSE, code = "BADRESP"; break;
  case ARES_ENOTIMP: s = STLS_DNS_ERROR, code = "NOTIMP"; break;
  case ARES_ECONNREFUSED: s = STLS_DNS_ERROR, code = "ECONNREFUSED"; break;
  case ARES_ENOMEM: s = STLS_DNS_ERROR, code = "ENOMEM"; break;
  case ARES_EBADNAME: s = STLS_DNS_ERROR, code = "EBADNAME"; break;
  case ARES_EDESTRUCTION:
  case ARES_ECANCELLED: s = STLS_DNS_CANCELLED, code = "ECANCELED"; break;
  default: s = STLS_DNS_ERROR, code = "EDNS"; break;
  }
  if (err) {
    err->code = code;
    err->message = ares_strerror(ares_status);
  }
  return s;
}

/* ---- results ---------------------------------------------------------- */

/* Free what one MX entry owns (the entry itself lives in an array). */
static void mx_free_fields(stls_dns_mx_t *m) {
  free(m->host);
  free(m->addrs);
  m->host = NULL;
  m->addrs = NULL;
  m->naddrs = 0;
}

void stls_dns_result_free(stls_dns_result_t *r) {
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
static int mx_cmp(const void *a, const void *b) {
  const stls_dns_mx_t *x = a, *y = b;
  if (x->preference != y->preference)
    return x->preference < y->preference ? -1 : 1;
  return strcmp(x->host, y->host);
}

void stls__dns_mx_sort(stls_dns_mx_t *mx, size_t n) {
  if (n > 1)
    qsort(mx, n, sizeof *mx, mx_cmp);
}

/* Copy a name from DNS into our form: lower case, no trailing dot. */
static char *host_dup(const char *s) {
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
static bool is_root(const char *host) {
  return host[0] == '\0' || strcmp(host, ".") == 0;
}

/* Parse an MX target that is an address: "192.0.2.1", "2001:db8::1" or
 * either in brackets. Returns the family or 0. */
static int ip_literal(const char *host, unsigned char bin[16]) {
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
static void mx_init(stls_dns_mx_t *m, unsigned preference, char *host) {
  unsigned char bin[16];
  memset(m, 0, sizeof *m);
  m->preference = preference;
  m->host = host;
  m->status = STLS_DNS_NOT_QUERIED;
  m->a_status = STLS_DNS_NOT_QUERIED;
  m->aaaa_status = STLS_DNS_NOT_QUERIED;
  m->is_ip_literal = ip_literal(host, bin) != 0;
}

int stls__dns_classify_mx(stls_dns_result_t *r, const char *domain,
                          stls_dns_status_t mx_status,
                          stls_dns_error_t mx_error,
                          const stls__dns_mx_rr_t *rr, size_t nrr,
                          unsigned max_mx) {
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
  if (roots > 0) {
    /* RFC 7505: a "." target says the domain accepts no mail; do not fall
     * back to its address records. RFC 7505 wants it alone, but MTAs
     * (Postfix: "Domain ... does not accept mail (nullMX)") honour it
     * next to real MX records too, so that is what we report. */
    r->status = STLS_DNS_NULL_MX;
    r->null_mx = true;
    r->null_mx_mixed = roots < nrr;
    return 0;
  }

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
static int failure_rank(stls_dns_status_t s) {
  switch (s) {
  case STLS_DNS_OK:
  case STLS_DNS_NOT_QUERIED: return 0;
  case STLS_DNS_NO_ADDRESS: return 1;
  case STLS_DNS_NXDOMAIN: return 2;
  default: return 3;
  }
}

static bool is_transient(stls_dns_status_t s) { return failure_rank(s) == 3; }

/* The error object for a status when no more specific one was recorded. */
static stls_dns_error_t default_error(stls_dns_status_t s) {
  stls_dns_error_t e = {NULL, stls_dns_status_message(s)};
  switch (s) {
  case STLS_DNS_OK:
  case STLS_DNS_NULL_MX:
  case STLS_DNS_NOT_QUERIED: return no_error;
  case STLS_DNS_NXDOMAIN: e.code = "NXDOMAIN"; break;
  case STLS_DNS_NO_ADDRESS: e.code = "NODATA"; break;
  case STLS_DNS_SERVFAIL: e.code = "SERVFAIL"; break;
  case STLS_DNS_REFUSED: e.code = "REFUSED"; break;
  case STLS_DNS_TIMEOUT: e.code = "ETIMEDOUT"; break;
  case STLS_DNS_BAD_RESPONSE: e.code = "BADRESP"; break;
  case STLS_DNS_CANCELLED: e.code = "ECANCELED"; break;
  default: e.code = "EDNS"; break;
  }
  return e;
}

void stls__dns_settle(stls_dns_result_t *r) {
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
    else if (m->a_status == STLS_DNS_NOT_QUERIED &&
             m->aaaa_status == STLS_DNS_NOT_QUERIED)
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

/* ---- answers parsed by hand: AD bit, TXT, TLSA ------------------------- */

bool stls__dns_answer_ad(const unsigned char *abuf, size_t alen) {
  return abuf && alen >= HFIXEDSZ && (abuf[3] & 0x20) != 0;
}

/* Is a query's outcome a validated answer? Records, NODATA and NXDOMAIN
 * all carry the resolver's verdict in AD; errors carry none. */
static bool answer_secure(int status, const unsigned char *abuf, int alen) {
  if (status != ARES_SUCCESS && status != ARES_ENODATA &&
      status != ARES_ENOTFOUND)
    return false;
  return alen > 0 && stls__dns_answer_ad(abuf, (size_t)alen);
}

/* One resource record of an answer section, located in the buffer. */
typedef struct {
  char *owner; /* as c-ares expands it: no trailing dot */
  unsigned type;
  size_t rdata; /* offset of RDATA in the response */
  size_t rdlen;
} answer_rr_t;

static unsigned get16(const unsigned char *p) {
  return (unsigned)p[0] << 8 | p[1];
}

/* Names compare without case and without a trailing dot. */
static bool name_eq(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  if (la > 0 && a[la - 1] == '.')
    la--;
  if (lb > 0 && b[lb - 1] == '.')
    lb--;
  return la == lb && strncasecmp(a, b, la) == 0;
}

/* Does the name at off keep to the rules of compression (RFC 1035 4.1.4)?
 * A pointer must point back at a prior occurrence of a name, which is
 * never inside the 12-byte header. c-ares follows a pointer to offset 0
 * and reads the header as labels: with a zero high byte there (an ID
 * below 256, or the counts further on) that spells the root, and an MX
 * exchange pointing there looked like a null MX. Such a name makes the
 * whole answer malformed. Each pointer must land before the labels read
 * since the last jump (a name cannot contain itself), so every jump goes
 * further back and the walk ends even on a hostile answer. */
static bool name_ok(const unsigned char *abuf, size_t alen, size_t off) {
  size_t start = off; /* where the labels read since the last jump begin */
  while (off < alen) {
    unsigned len = abuf[off];
    if ((len & 0xc0) == 0xc0) {
      size_t to;
      if (off + 1 >= alen)
        return false;
      to = (size_t)(len & 0x3f) << 8 | abuf[off + 1];
      if (to < HFIXEDSZ || to >= start)
        return false;
      off = start = to;
    } else if (len & 0xc0) {
      return false; /* the reserved label types */
    } else if (len == 0) {
      return true;
    } else {
      off += 1 + (size_t)len;
    }
  }
  return false;
}

/* ares_expand_name behind the check above: 0, UV_ENOMEM or UV_EINVAL. */
static int expand_name(const unsigned char *abuf, size_t alen, size_t off,
                       char **name, long *enclen) {
  int rc;
  *name = NULL;
  if (!name_ok(abuf, alen, off))
    return UV_EINVAL;
  rc = ares_expand_name(abuf + off, abuf, (int)alen, name, enclen);
  if (rc == ARES_SUCCESS)
    return 0;
  *name = NULL;
  return rc == ARES_ENOMEM ? UV_ENOMEM : UV_EINVAL;
}

static void answer_free(answer_rr_t *rr, size_t n) {
  for (size_t i = 0; i < n; i++)
    ares_free_string(rr[i].owner);
  free(rr);
}

/* Split a response's answer section into records (class IN only). Returns
 * 0, UV_ENOMEM, or UV_EINVAL for a malformed response. */
static int answer_split(const unsigned char *abuf, size_t alen,
                        answer_rr_t **out, size_t *nout) {
  size_t qd, an, off = HFIXEDSZ, n = 0;
  answer_rr_t *rr;

  *out = NULL;
  *nout = 0;
  if (!abuf || alen < HFIXEDSZ || alen > 65535)
    return UV_EINVAL;
  qd = get16(abuf + 4);
  an = get16(abuf + 6);
  for (size_t i = 0; i < qd; i++) {
    char *name = NULL;
    long enclen = 0;
    int rc = expand_name(abuf, alen, off, &name, &enclen);
    if (rc != 0)
      return rc;
    ares_free_string(name);
    off += (size_t)enclen + QFIXEDSZ;
    if (off > alen)
      return UV_EINVAL;
  }
  if (an == 0)
    return 0;
  /* A record takes at least 11 bytes (a root owner and the fixed part):
   * a count that cannot fit is malformed, and is not worth allocating
   * for (ANCOUNT 65535 in a 60-byte answer asked for 2 MB). */
  if (an > (alen - off) / (1 + RRFIXEDSZ))
    return UV_EINVAL;
  rr = calloc(an, sizeof *rr);
  if (!rr)
    return UV_ENOMEM;
  for (size_t i = 0; i < an; i++) {
    char *name = NULL;
    long enclen = 0;
    unsigned type, cls;
    size_t rdlen;
    int rc = expand_name(abuf, alen, off, &name, &enclen);
    if (rc != 0) {
      answer_free(rr, n);
      return rc;
    }
    off += (size_t)enclen;
    if (off + RRFIXEDSZ > alen) {
      ares_free_string(name);
      answer_free(rr, n);
      return UV_EINVAL;
    }
    type = get16(abuf + off);
    cls = get16(abuf + off + 2);
    rdlen = get16(abuf + off + 8);
    off += RRFIXEDSZ;
    if (off + rdlen > alen) {
      ares_free_string(name);
      answer_free(rr, n);
      return UV_EINVAL;
    }
    if (type == T_CNAME && !name_ok(abuf, off + rdlen, off)) {
      /* The alias target obeys the pointer rules too, followed or not. */
      ares_free_string(name);
      answer_free(rr, n);
      return UV_EINVAL;
    }
    if (cls != C_IN) {
      ares_free_string(name);
    } else {
      rr[n].owner = name;
      rr[n].type = type;
      rr[n].rdata = off;
      rr[n].rdlen = rdlen;
      n++;
    }
    off += rdlen;
  }
  *out = rr;
  *nout = n;
  return 0;
}

int stls__dns_answer_check(const unsigned char *abuf, size_t alen) {
  answer_rr_t *rr;
  size_t n;
  int rc = answer_split(abuf, alen, &rr, &n);
  if (rc == 0)
    answer_free(rr, n);
  return rc;
}

/* The name whose records answer qname: follow the CNAME records of the
 * answer from qname (a resolver puts the chain there). Sets *cname when
 * an alias was followed. Returns a pointer into rr or to qname, or NULL
 * for a malformed CNAME target. The chain is bounded by the number of
 * records, so a loop ends. */
static const char *answer_target(const unsigned char *abuf, size_t alen,
                                 answer_rr_t *rr, size_t n, const char *qname,
                                 char **target_buf, bool *cname) {
  const char *cur = qname;
  *target_buf = NULL;
  *cname = false;
  for (size_t hops = 0; hops < n; hops++) {
    size_t i;
    char *next = NULL;
    long enclen = 0;
    for (i = 0; i < n; i++)
      if (rr[i].type == T_CNAME && name_eq(rr[i].owner, cur))
        break;
    if (i == n)
      break;
    if (expand_name(abuf, alen, rr[i].rdata, &next, &enclen) != 0) {
      ares_free_string(*target_buf);
      *target_buf = NULL;
      return NULL;
    }
    ares_free_string(*target_buf);
    *target_buf = next;
    cur = next;
    *cname = true;
  }
  return cur;
}

/* The records of `type` that answer qname: rr and n get every answer
 * record, want and nwant the indexes of the wanted ones. The caller frees
 * both (also when nothing was wanted); on failure nothing is left. */
static int answer_select(const unsigned char *abuf, size_t alen,
                         const char *qname, unsigned type, answer_rr_t **rr,
                         size_t *n, size_t **want, size_t *nwant, bool *cname) {
  char *tbuf = NULL;
  const char *target;
  int rc = answer_split(abuf, alen, rr, n);

  *want = NULL;
  *nwant = 0;
  *cname = false;
  if (rc != 0)
    return rc;
  target = answer_target(abuf, alen, *rr, *n, qname, &tbuf, cname);
  if (!target) {
    rc = UV_EINVAL;
  } else if (*n > 0) {
    *want = calloc(*n, sizeof **want);
    if (!*want)
      rc = UV_ENOMEM;
    for (size_t i = 0; rc == 0 && i < *n; i++)
      if ((*rr)[i].type == type && name_eq((*rr)[i].owner, target))
        (*want)[(*nwant)++] = i;
  }
  ares_free_string(tbuf);
  if (rc != 0) {
    free(*want);
    *want = NULL;
    *nwant = 0;
    answer_free(*rr, *n);
    *rr = NULL;
    *n = 0;
  }
  return rc;
}

void stls_dns_txt_result_free(stls_dns_txt_result_t *r) {
  if (!r)
    return;
  for (size_t i = 0; i < r->ntxt; i++)
    free(r->txt[i]);
  free(r->txt);
  free(r->txt_len);
  free(r);
}

int stls__dns_parse_txt(const unsigned char *abuf, size_t alen,
                        const char *qname, stls_dns_txt_result_t *r) {
  answer_rr_t *rr;
  size_t n, *want, nwant;
  bool cname;
  int rc =
      answer_select(abuf, alen, qname, T_TXT, &rr, &n, &want, &nwant, &cname);

  if (rc != 0)
    return rc;
  if (nwant > 0) {
    r->txt = calloc(nwant, sizeof *r->txt);
    r->txt_len = calloc(nwant, sizeof *r->txt_len);
    if (!r->txt || !r->txt_len)
      rc = UV_ENOMEM;
  }
  for (size_t k = 0; rc == 0 && k < nwant; k++) {
    const answer_rr_t *x = &rr[want[k]];
    const unsigned char *p = abuf + x->rdata, *end = p + x->rdlen;
    size_t len = 0;
    char *t;
    /* First pass checks the character-strings fit the RDATA. */
    for (const unsigned char *q = p; q < end; q += 1 + *q) {
      if (q + 1 + *q > end) {
        rc = UV_EINVAL;
        break;
      }
      len += *q;
    }
    if (rc != 0)
      break;
    t = malloc(len + 1);
    if (!t) {
      rc = UV_ENOMEM;
      break;
    }
    len = 0;
    for (const unsigned char *q = p; q < end; q += 1 + *q) {
      memcpy(t + len, q + 1, *q);
      len += *q;
    }
    t[len] = '\0';
    r->txt[r->ntxt] = t;
    r->txt_len[r->ntxt] = len;
    r->ntxt++;
  }
  if (rc != 0) {
    for (size_t i = 0; i < r->ntxt; i++)
      free(r->txt[i]);
    free(r->txt);
    free(r->txt_len);
    r->txt = NULL;
    r->txt_len = NULL;
    r->ntxt = 0;
  }
  free(want);
  answer_free(rr, n);
  return rc;
}

void stls__dns_mx_rr_free(stls__dns_mx_rr_t *rr, size_t n) {
  if (!rr)
    return;
  for (size_t i = 0; i < n; i++)
    ares_free_string((char *)rr[i].host); /* ours: expand_name made it */
  free(rr);
}

int stls__dns_parse_mx(const unsigned char *abuf, size_t alen,
                       const char *qname, stls__dns_mx_rr_t **out,
                       size_t *nout) {
  answer_rr_t *rr;
  size_t n, *want, nwant, k = 0;
  bool cname;
  stls__dns_mx_rr_t *mx = NULL;
  int rc =
      answer_select(abuf, alen, qname, T_MX, &rr, &n, &want, &nwant, &cname);

  *out = NULL;
  *nout = 0;
  if (rc != 0)
    return rc;
  if (nwant > 0 && !(mx = calloc(nwant, sizeof *mx)))
    rc = UV_ENOMEM;
  for (; rc == 0 && k < nwant; k++) {
    const answer_rr_t *x = &rr[want[k]];
    char *host = NULL;
    long enclen = 0;
    /* Preference, then the exchange, which must fill the RDATA exactly. */
    if (x->rdlen < 3) {
      rc = UV_EINVAL;
      break;
    }
    rc = expand_name(abuf, x->rdata + x->rdlen, x->rdata + 2, &host, &enclen);
    if (rc == 0 && (size_t)enclen != x->rdlen - 2) {
      ares_free_string(host);
      rc = UV_EINVAL;
    }
    if (rc != 0)
      break;
    mx[k].preference = get16(abuf + x->rdata);
    mx[k].host = host;
  }
  if (rc != 0) {
    stls__dns_mx_rr_free(mx, k);
  } else {
    *out = mx;
    *nout = nwant;
  }
  free(want);
  answer_free(rr, n);
  return rc;
}

void stls_dns_tlsa_result_free(stls_dns_tlsa_result_t *r) {
  if (!r)
    return;
  for (size_t i = 0; i < r->nrr; i++)
    free(r->rr[i].data);
  free(r->rr);
  free(r->qname);
  free(r);
}

/* Record order: usage, selector, matching type, then the data. */
static int tlsa_cmp(const void *a, const void *b) {
  const stls_dns_tlsa_rr_t *x = a, *y = b;
  size_t m = x->len < y->len ? x->len : y->len;
  int c;
  if (x->usage != y->usage)
    return x->usage < y->usage ? -1 : 1;
  if (x->selector != y->selector)
    return x->selector < y->selector ? -1 : 1;
  if (x->mtype != y->mtype)
    return x->mtype < y->mtype ? -1 : 1;
  c = m ? memcmp(x->data, y->data, m) : 0;
  if (c != 0)
    return c;
  return x->len < y->len ? -1 : x->len > y->len;
}

int stls__dns_parse_tlsa(const unsigned char *abuf, size_t alen,
                         const char *qname, stls_dns_tlsa_result_t *r) {
  answer_rr_t *rr;
  size_t n, *want, nwant, u = 0;
  bool cname;
  int rc = answer_select(abuf, alen, qname, T_TLSA_TYPE, &rr, &n, &want, &nwant,
                         &cname);

  if (rc != 0)
    return rc;
  r->is_cname = cname;
  if (nwant > 0 && !(r->rr = calloc(nwant, sizeof *r->rr)))
    rc = UV_ENOMEM;
  for (size_t k = 0; rc == 0 && k < nwant; k++) {
    const answer_rr_t *x = &rr[want[k]];
    const unsigned char *p = abuf + x->rdata;
    stls_dns_tlsa_rr_t *t = &r->rr[r->nrr];
    if (x->rdlen < 3) {
      rc = UV_EINVAL;
      break;
    }
    t->usage = p[0];
    t->selector = p[1];
    t->mtype = p[2];
    t->len = x->rdlen - 3;
    /* One byte more, so even empty data is a real allocation. */
    t->data = malloc(t->len + 1);
    if (!t->data) {
      rc = UV_ENOMEM;
      break;
    }
    memcpy(t->data, p + 3, t->len);
    r->nrr++;
  }
  if (rc == 0 && r->nrr > 1) {
    /* Sorted and unique: a record's index means the same in every run. */
    qsort(r->rr, r->nrr, sizeof *r->rr, tlsa_cmp);
    for (size_t i = 0; i < r->nrr; i++) {
      if (u > 0 && tlsa_cmp(&r->rr[u - 1], &r->rr[i]) == 0)
        free(r->rr[i].data);
      else
        r->rr[u++] = r->rr[i];
    }
    r->nrr = u;
  }
  if (rc != 0) {
    for (size_t i = 0; i < r->nrr; i++)
      free(r->rr[i].data);
    free(r->rr);
    r->rr = NULL;
    r->nrr = 0;
  }
  free(want);
  answer_free(rr, n);
  return rc;
}

/* Parse failures are a bad response, or out of memory. */
static int parse_status(int rc) {
  return rc == 0 ? ARES_SUCCESS : rc == UV_ENOMEM ? ARES_ENOMEM : ARES_EBADRESP;
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
  bool queried; /* a query was sent for this family */
  bool secure;  /* its answer had the AD bit */
} dns_lookup_t;

struct dns_req_s {
  stls_dns_t *d;
  /* Finish the result, free req and call the caller back; one per kind of
   * request (domain, TXT, TLSA). */
  void (*deliver)(dns_req_t *req);
  stls_dns_result_t *res;
  stls_dns_done_cb cb;
  void *arg;
  /* Single-type lookups (TXT, TLSA): the name asked for, and the result. */
  char *qname;
  stls_dns_txt_result_t *txt;
  stls_dns_txt_cb txt_cb;
  stls_dns_tlsa_result_t *tlsa;
  stls_dns_tlsa_cb tlsa_cb;
  stls_dns_query_opts_t q;
  uint64_t start_ns;
  unsigned pending; /* c-ares queries whose callback has not run */
  bool in_submit;   /* inside the starting call: hold delivery */
  bool complete;
  bool cancelled;        /* a lookup was cut short by stls_dns_close */
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
  int ednspsz; /* EDNS UDP payload size we advertise */
  bool pumping;
  unsigned busy;  /* depth of our calls into c-ares */
  bool closing;   /* stls_dns_close called */
  bool torn_down; /* channel destroyed, handles closing */
  unsigned open_handles;
};

static uv_once_t ares_once = UV_ONCE_INIT;
static int ares_once_status;

/* ares_library_init is not thread-safe and workers start in parallel. */
static void ares_once_init(void) {
  ares_once_status = ares_library_init(ARES_LIB_INIT_ALL);
}

static void teardown(stls_dns_t *d);
static void timer_cb(uv_timer_t *t);

/* The resolver is freed when its last handle has closed. */
static void handle_closed_cb(uv_handle_t *h) {
  stls_dns_t *d = h->data;
  if (--d->open_handles == 0)
    free(d);
}

/* A socket watcher is gone; it may have been the last handle. */
static void sock_closed_cb(uv_handle_t *h) {
  dns_sock_t *s = h->data;
  stls_dns_t *d = s->d;
  free(s);
  if (--d->open_handles == 0)
    free(d);
}

/* Re-arm the timer for c-ares' next deadline. */
static void timer_update(stls_dns_t *d) {
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
static void ares_leave(stls_dns_t *d) {
  if (--d->busy > 0)
    return;
  if (d->closing && !d->torn_down)
    teardown(d);
  else
    timer_update(d);
}

/* A c-ares socket is ready: let c-ares read or write it. */
static void poll_cb(uv_poll_t *h, int status, int events) {
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
static void timer_cb(uv_timer_t *t) {
  stls_dns_t *d = t->data;
  if (d->torn_down)
    return;
  d->busy++;
  ares_process_fd(d->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
  ares_leave(d);
}

static void sock_close(stls_dns_t *d, dns_sock_t *s) {
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
static void sock_state_cb(void *data, ares_socket_t fd, int readable,
                          int writable) {
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

/* Turn a response's rcode into a c-ares status the way ares_query does
 * (which we cannot use: it hides the header, and with it the AD bit). The
 * response is passed on whatever the rcode, so the callbacks can read AD
 * from NXDOMAIN and NODATA answers too. */
static void query_done_cb(void *arg, int status, int timeouts,
                          unsigned char *abuf, int alen) {
  dns_q_t *q = arg;
  stls_dns_t *d = q->d;
  if (status == ARES_SUCCESS) {
    if (!abuf || alen < HFIXEDSZ) {
      status = ARES_EBADRESP;
    } else {
      switch (abuf[3] & 0x0f) {
      case 0: /* NOERROR */
        status = (abuf[6] << 8 | abuf[7]) > 0 ? ARES_SUCCESS : ARES_ENODATA;
        break;
      case 1: status = ARES_EFORMERR; break;
      case 2: status = ARES_ESERVFAIL; break;
      case 3: status = ARES_ENOTFOUND; break;
      case 4: status = ARES_ENOTIMP; break;
      case 5: status = ARES_EREFUSED; break;
      default: status = ARES_EBADRESP; break;
      }
    }
  }
  d->inflight--;
  q->cb(q->arg, status, timeouts, abuf, alen);
  free(q);
  queue_pump(d);
}

/* Build the query ourselves and set the AD bit in it: RFC 6840 5.7 says a
 * validating resolver then reports in AD whether it validated the answer,
 * without the DO bit's RRSIG records bloating every response. (EDNS is
 * added here as ares_query would, and c-ares still drops it on FORMERR.) */
static void query_send(stls_dns_t *d, dns_q_t *q) {
  unsigned char *qbuf = NULL;
  int qlen = 0, rc;

  d->inflight++;
  rc =
      ares_create_query(q->name, C_IN, q->type, 0, 1, &qbuf, &qlen, d->ednspsz);
  if (rc != ARES_SUCCESS) {
    query_done_cb(q, rc, 0, NULL, 0);
    return;
  }
  qbuf[3] |= 0x20; /* AD */
  ares_send(d->channel, qbuf, qlen, query_done_cb, q);
  ares_free_string(qbuf);
}

/* Send queued queries while there is room. Not re-entered: a query that
 * fails synchronously calls back into here, and the outer loop goes on. */
static void queue_pump(stls_dns_t *d) {
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
static void query_start(stls_dns_t *d, const char *name, int type,
                        ares_callback cb, void *arg) {
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
static void queue_cancel(stls_dns_t *d) {
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
static void lookups_free(dns_req_t *req) {
  if (!req->lookups)
    return;
  for (size_t i = 0; i < 2 * req->res->nmx; i++)
    free(req->lookups[i].bin);
  free(req->lookups);
  req->lookups = NULL;
}

/* Address order for qsort: network byte order compares as numbers. */
static int bin_cmp4(const void *a, const void *b) { return memcmp(a, b, 4); }

static int bin_cmp16(const void *a, const void *b) { return memcmp(a, b, 16); }

/* Build a host's address list from its lookups: IPv4 then IPv6, each
 * sorted; when both families exceed the cap together, each keeps at least
 * half of it, so a host with many A records still shows its IPv6 side. */
static int addrs_merge(stls_dns_mx_t *m, const dns_lookup_t *l4,
                       const dns_lookup_t *l6, unsigned cap) {
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
static uint64_t elapsed_ms(uint64_t start_ns) {
  return (uv_hrtime() - start_ns) / 1000000;
}

/* Finish the result and hand it to the caller; req is freed first so the
 * callback may start new lookups or close the resolver. */
static void domain_deliver(dns_req_t *req) {
  stls_dns_result_t *res = req->res;
  stls_dns_done_cb cb = req->cb;
  void *arg = req->arg;
  unsigned cap = req->q.max_addrs_per_host;

  if (req->lookups) {
    for (size_t i = 0; i < res->nmx; i++) {
      const dns_lookup_t *l4 = &req->lookups[2 * i],
                         *l6 = &req->lookups[2 * i + 1];
      /* Secure only if every family we asked about was validated: one
       * insecure A record is enough for an attacker to redirect. */
      res->mx[i].addr_secure = (l4->queried || l6->queried) &&
                               (!l4->queried || l4->secure) &&
                               (!l6->queried || l6->secure);
      if (addrs_merge(&res->mx[i], l4, l6, cap) != 0) {
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
static void defer_cb(uv_timer_t *t) {
  stls_dns_t *d = t->data;
  /* Take the whole queue first: a callback may start new lookups that
   * complete synchronously and queue themselves again. */
  dns_req_t *req = d->deferred_head;
  d->deferred_head = d->deferred_tail = NULL;
  while (req) {
    dns_req_t *next = req->next;
    req->deliver(req);
    req = next;
  }
}

static void req_finish(dns_req_t *req) {
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
  req->deliver(req);
}

/* One of the request's queries has called back. */
static void req_release(dns_req_t *req) {
  if (--req->pending == 0)
    req_finish(req);
}

/* Keep a lookup's addresses: copied, sorted and de-duplicated so results
 * do not depend on the server's round-robin order. */
static int lookup_store(dns_lookup_t *lk, const struct hostent *he) {
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
static bool went_through_cname(const struct hostent *he, const char *host) {
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
static void addr_cb(void *arg, int status, int timeouts, unsigned char *abuf,
                    int alen) {
  dns_lookup_t *lk = arg;
  dns_req_t *req = lk->req;
  stls_dns_mx_t *m = &req->res->mx[lk->idx];
  stls_dns_error_t err = no_error;
  stls_dns_status_t s;

  (void)timeouts;
  if (status == ARES_EDESTRUCTION)
    req->cancelled = true;
  lk->secure = answer_secure(status, abuf, alen);
  if (status == ARES_SUCCESS) {
    struct hostent *he = NULL;
    int prc = parse_status(stls__dns_answer_check(abuf, (size_t)alen));
    if (prc == ARES_SUCCESS)
      prc = lk->family == AF_INET
                ? ares_parse_a_reply(abuf, alen, &he, NULL, NULL)
                : ares_parse_aaaa_reply(abuf, alen, &he, NULL, NULL);
    if (prc == ARES_SUCCESS) {
      if (went_through_cname(he, m->host))
        m->is_cname = true;
      if (lookup_store(lk, he) != 0)
        prc = ARES_ENOMEM;
      ares_free_hostent(he);
    }
    if (prc != ARES_SUCCESS && prc != ARES_ENODATA)
      lk->secure = false;
    status = prc;
  }
  s = stls__dns_status_from_ares(status, &err);
  if (lk->family == AF_INET)
    m->a_status = s;
  else
    m->aaaa_status = s;
  if (failure_rank(s) > failure_rank(m->status) ||
      (!m->error.code && s != STLS_DNS_OK)) {
    /* m->status holds the worst family status so far until settle. */
    m->status = s;
    m->error = err;
  }
  req_release(req);
}

/* Start the address lookups for every MX host (called from the MX
 * callback, whose own pending count keeps req alive meanwhile). */
static void lookups_start(dns_req_t *req) {
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
      req->lookups[2 * i].queried = true;
      req->pending++;
      query_start(d, m->host, T_A, addr_cb, &req->lookups[2 * i]);
    }
    if (req->q.want_ipv6) {
      req->lookups[2 * i + 1].queried = true;
      req->pending++;
      query_start(d, m->host, T_AAAA, addr_cb, &req->lookups[2 * i + 1]);
    }
  }
}

/* The MX answer: apply the MX rules, then look up every host. */
static void mx_cb(void *arg, int status, int timeouts, unsigned char *abuf,
                  int alen) {
  dns_req_t *req = arg;
  stls_dns_result_t *res = req->res;
  stls__dns_mx_rr_t *rr = NULL;
  size_t nrr = 0;
  stls_dns_error_t err = no_error;
  stls_dns_status_t s;

  (void)timeouts;
  if (status == ARES_EDESTRUCTION)
    req->cancelled = true;
  res->mx_secure = answer_secure(status, abuf, alen);
  if (status == ARES_SUCCESS)
    status = parse_status(
        stls__dns_parse_mx(abuf, (size_t)alen, res->domain, &rr, &nrr));
  /* No MX records (also an answer with only a CNAME to a name without
   * MX): the implicit-MX rule applies. */
  if (status == ARES_ENODATA)
    s = STLS_DNS_OK;
  else
    s = stls__dns_status_from_ares(status, &err);
  if (status != ARES_SUCCESS && status != ARES_ENODATA &&
      status != ARES_ENOTFOUND)
    res->mx_secure = false; /* the answer was unusable after all */
  if (stls__dns_classify_mx(res, res->domain, s, err, rr, nrr, req->q.max_mx) !=
      0)
    res->status = stls__dns_status_from_ares(ARES_ENOMEM, &res->error);
  stls__dns_mx_rr_free(rr, nrr);

  if (res->status == STLS_DNS_OK && (req->q.want_ipv4 || req->q.want_ipv6)) {
    if (req->d->closing)
      req->cancelled = true;
    else
      lookups_start(req);
  }
  req_release(req);
}

int stls_dns_resolve_domain(stls_dns_t *d, const char *domain,
                            const stls_dns_query_opts_t *q, stls_dns_done_cb cb,
                            void *arg) {
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
  req->deliver = domain_deliver;
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

/* The addresses of one host, as for a domain whose only MX is that host
 * (the MX step skipped): used for hosts that are not mail domains. */
int stls_dns_resolve_host(stls_dns_t *d, const char *host,
                          const stls_dns_query_opts_t *q, stls_dns_done_cb cb,
                          void *arg) {
  dns_req_t *req;

  if (!d || !host || !host[0] || !cb)
    return UV_EINVAL;
  if (d->closing)
    return UV_ECANCELED;
  req = calloc(1, sizeof *req);
  if (!req)
    return UV_ENOMEM;
  req->res = calloc(1, sizeof *req->res);
  if (!req->res || !(req->res->domain = host_dup(host))) {
    free(req->res);
    free(req);
    return UV_ENOMEM;
  }
  req->d = d;
  req->deliver = domain_deliver;
  req->cb = cb;
  req->arg = arg;
  if (q) {
    req->q = *q;
  } else {
    req->q.want_ipv4 = req->q.want_ipv6 = true;
  }
  if (req->q.max_addrs_per_host == 0)
    req->q.max_addrs_per_host = STLS_DNS_DEFAULT_MAX_ADDRS;
  req->start_ns = uv_hrtime();
  req->pending = 1;
  req->in_submit = true;

  d->busy++;
  if (stls__dns_classify_mx(req->res, req->res->domain, STLS_DNS_OK, no_error,
                            NULL, 0, 1) != 0)
    req->res->status =
        stls__dns_status_from_ares(ARES_ENOMEM, &req->res->error);
  else if (req->q.want_ipv4 || req->q.want_ipv6)
    lookups_start(req);
  req_release(req);
  req->in_submit = false;
  if (req->complete)
    req_finish(req);
  ares_leave(d);
  return 0;
}

/* ---- single-type lookups: TXT and TLSA --------------------------------- */

/* The outcome of a single-type query: status, error and secure. NODATA
 * covers both an empty NOERROR answer and an answer without records of
 * the type (a CNAME to a name without them). */
static stls_dns_status_t single_status(int status, size_t nrecords,
                                       stls_dns_error_t *err) {
  stls_dns_status_t s;
  if (status == ARES_SUCCESS && nrecords == 0)
    status = ARES_ENODATA;
  s = stls__dns_status_from_ares(status, err);
  if (s == STLS_DNS_NO_ADDRESS) {
    s = STLS_DNS_NODATA;
    err->code = "NODATA";
    err->message = stls_dns_status_message(STLS_DNS_NODATA);
  }
  return s;
}

/* The common part of a single-name lookup's answer (TXT, TLSA): parse it,
 * settle status and error, and trust the AD bit only for an answer or a
 * validated denial. */
static void single_answer(dns_req_t *req, int status, unsigned char *abuf,
                          int alen, int parsed, bool *secure,
                          stls_dns_status_t *st, stls_dns_error_t *error,
                          size_t count) {
  if (status == ARES_EDESTRUCTION)
    req->cancelled = true;
  *secure = answer_secure(status, abuf, alen);
  if (status == ARES_SUCCESS)
    status = parse_status(parsed);
  *st = single_status(status, count, error);
  if (*st != STLS_DNS_OK && *st != STLS_DNS_NODATA && *st != STLS_DNS_NXDOMAIN)
    *secure = false;
  req_release(req);
}

static void txt_cb(void *arg, int status, int timeouts, unsigned char *abuf,
                   int alen) {
  dns_req_t *req = arg;
  stls_dns_txt_result_t *res = req->txt;
  int parsed = status == ARES_SUCCESS
                   ? stls__dns_parse_txt(abuf, (size_t)alen, req->qname, res)
                   : 0;
  (void)timeouts;
  single_answer(req, status, abuf, alen, parsed, &res->secure, &res->status,
                &res->error, res->ntxt);
}

static void tlsa_cb(void *arg, int status, int timeouts, unsigned char *abuf,
                    int alen) {
  dns_req_t *req = arg;
  stls_dns_tlsa_result_t *res = req->tlsa;
  int parsed = status == ARES_SUCCESS
                   ? stls__dns_parse_tlsa(abuf, (size_t)alen, req->qname, res)
                   : 0;
  (void)timeouts;
  single_answer(req, status, abuf, alen, parsed, &res->secure, &res->status,
                &res->error, res->nrr);
}

/* A cancelled lookup says nothing about the name. */
static void single_cancel(stls_dns_status_t *status, stls_dns_error_t *error,
                          bool *secure) {
  *status = STLS_DNS_CANCELLED;
  *error = default_error(STLS_DNS_CANCELLED);
  *secure = false;
}

static void txt_deliver(dns_req_t *req) {
  stls_dns_txt_result_t *res = req->txt;
  stls_dns_txt_cb cb = req->txt_cb;
  void *arg = req->arg;
  if (req->cancelled)
    single_cancel(&res->status, &res->error, &res->secure);
  free(req->qname);
  free(req);
  cb(res, arg);
}

static void tlsa_deliver(dns_req_t *req) {
  stls_dns_tlsa_result_t *res = req->tlsa;
  stls_dns_tlsa_cb cb = req->tlsa_cb;
  void *arg = req->arg;
  if (req->cancelled)
    single_cancel(&res->status, &res->error, &res->secure);
  res->duration_ms = elapsed_ms(req->start_ns);
  free(req->qname);
  free(req);
  cb(res, arg);
}

/* Start a request of one query; the caller has filled the kind-specific
 * fields. Same delivery rules as stls_dns_resolve_domain. */
static void single_submit(stls_dns_t *d, dns_req_t *req, int type,
                          ares_callback cb) {
  req->d = d;
  req->start_ns = uv_hrtime();
  req->pending = 1;
  req->in_submit = true;
  d->busy++;
  query_start(d, req->qname, type, cb, req);
  req->in_submit = false;
  if (req->complete)
    req_finish(req);
  ares_leave(d);
}

int stls_dns_lookup_txt(stls_dns_t *d, const char *name, stls_dns_txt_cb cb,
                        void *arg) {
  dns_req_t *req;

  if (!d || !name || !name[0] || !cb)
    return UV_EINVAL;
  if (d->closing)
    return UV_ECANCELED;
  req = calloc(1, sizeof *req);
  if (!req)
    return UV_ENOMEM;
  req->txt = calloc(1, sizeof *req->txt);
  req->qname = host_dup(name);
  if (!req->txt || !req->qname) {
    free(req->txt);
    free(req->qname);
    free(req);
    return UV_ENOMEM;
  }
  req->deliver = txt_deliver;
  req->txt_cb = cb;
  req->arg = arg;
  single_submit(d, req, T_TXT, txt_cb);
  return 0;
}

int stls_dns_lookup_tlsa(stls_dns_t *d, const char *mxhost, unsigned port,
                         stls_dns_tlsa_cb cb, void *arg) {
  dns_req_t *req;
  char *host;
  size_t len;

  if (!d || !mxhost || !mxhost[0] || !cb || port == 0 || port > 65535)
    return UV_EINVAL;
  if (d->closing)
    return UV_ECANCELED;
  host = host_dup(mxhost);
  req = calloc(1, sizeof *req);
  if (!host || !req) {
    free(host);
    free(req);
    return UV_ENOMEM;
  }
  len = strlen(host) + sizeof "_65535._tcp.";
  req->tlsa = calloc(1, sizeof *req->tlsa);
  req->qname = malloc(len);
  if (!req->tlsa || !req->qname || !(req->tlsa->qname = malloc(len))) {
    if (req->tlsa)
      free(req->tlsa->qname);
    free(req->tlsa);
    free(req->qname);
    free(req);
    free(host);
    return UV_ENOMEM;
  }
  snprintf(req->qname, len, "_%u._tcp.%s", port, host);
  memcpy(req->tlsa->qname, req->qname, strlen(req->qname) + 1);
  free(host);
  req->deliver = tlsa_deliver;
  req->tlsa_cb = cb;
  req->arg = arg;
  single_submit(d, req, T_TLSA_TYPE, tlsa_cb);
  return 0;
}

/* ---- the servers list ------------------------------------------------- */

/* A port as the servers list writes it: 1..65535 in plain decimal. */
static bool port_ok(const char *s, size_t len) {
  unsigned long v = 0;
  if (len == 0 || len > 5)
    return false;
  for (size_t i = 0; i < len; i++) {
    if (s[i] < '0' || s[i] > '9')
      return false;
    v = v * 10 + (unsigned long)(s[i] - '0');
  }
  return v >= 1 && v <= 65535;
}

/* Is s[0..len) an address of family af? */
static bool addr_ok(int af, const char *s, size_t len) {
  char buf[STLS_DNS_ADDRSTRLEN];
  unsigned char bin[16];
  if (len == 0 || len >= sizeof buf)
    return false;
  memcpy(buf, s, len);
  buf[len] = '\0';
  return inet_pton(af, buf, bin) == 1;
}

/* Check one "ADDR[:PORT]" entry; NULL or why not. */
static const char *server_check(const char *s, size_t len) {
  const char *colon;
  if (len == 0)
    return "empty server";
  if (s[0] == '[') {
    const char *close = memchr(s, ']', len);
    size_t rest;
    if (!close)
      return "'[' without ']'";
    if (!addr_ok(AF_INET6, s + 1, (size_t)(close - s - 1)))
      return "not an IPv6 address inside [ ]";
    rest = len - (size_t)(close - s) - 1;
    if (rest == 0)
      return NULL;
    if (close[1] != ':')
      return "text after ']' (want [ADDR]:PORT)";
    return port_ok(close + 2, rest - 1) ? NULL : "port must be 1..65535";
  }
  if (addr_ok(AF_INET6, s, len))
    return NULL; /* a bare IPv6 address, port 53 */
  colon = memchr(s, ':', len);
  if (!colon)
    return addr_ok(AF_INET, s, len) ? NULL : "not an IPv4 or IPv6 address";
  if (memchr(colon + 1, ':', len - (size_t)(colon - s) - 1))
    return "not an address (IPv6 with a port is written [ADDR]:PORT)";
  if (!addr_ok(AF_INET, s, (size_t)(colon - s)))
    return "not an IPv4 address before ':'";
  return port_ok(colon + 1, len - (size_t)(colon - s) - 1)
             ? NULL
             : "port must be 1..65535";
}

int stls_dns_servers_check(const char *servers, char *err, size_t errlen) {
  const char *p = servers, *why = NULL;
  size_t len = 0;

  if (!servers || !servers[0]) {
    why = "empty server list";
  } else {
    for (;;) {
      const char *comma = strchr(p, ',');
      len = comma ? (size_t)(comma - p) : strlen(p);
      if ((why = server_check(p, len)) != NULL || !comma)
        break;
      p = comma + 1;
    }
  }
  if (!why)
    return 0;
  if (err && errlen > 0) {
    if (servers && servers[0] && len > 0)
      snprintf(err, errlen, "'%.*s': %s", (int)(len > 64 ? 64 : len), p, why);
    else
      snprintf(err, errlen, "%s", why);
  }
  return -1;
}

/* ---- life cycle ------------------------------------------------------- */

int stls_dns_init(stls_dns_t **out, uv_loop_t *loop, const stls_dns_opts_t *o) {
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
  d->max_inflight =
      o && o->max_inflight ? o->max_inflight : STLS_DNS_DEFAULT_MAX_INFLIGHT;
  d->ednspsz = 1232;

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
  opts.ednspsz = d->ednspsz;
  if (explicit_servers || (o && o->timeout_ms)) {
    opts.timeout =
        (int)(o && o->timeout_ms ? o->timeout_ms : STLS_DNS_DEFAULT_TIMEOUT_MS);
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
    /* c-ares takes some lists we refuse (a port of 0, a missing ']'). */
    rc = stls_dns_servers_check(o->servers, NULL, 0) == 0
             ? ares_set_servers_ports_csv(d->channel, o->servers)
             : ARES_EBADSTR;
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
static void teardown(stls_dns_t *d) {
  dns_req_t *req;

  d->torn_down = true;
  uv_timer_stop(&d->timer);
  uv_timer_stop(&d->defer);
  /* Results already known go out as they are. */
  req = d->deferred_head;
  d->deferred_head = d->deferred_tail = NULL;
  while (req) {
    dns_req_t *next = req->next;
    req->deliver(req);
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

void stls_dns_close(stls_dns_t *d) {
  if (!d || d->closing)
    return;
  d->closing = true;
  if (d->busy == 0)
    teardown(d);
}
