/* DNS stage: MX and address lookups with c-ares, driven by libuv.
 *
 * c-ares runs without an event thread of its own: it tells us through the
 * socket-state callback which sockets it wants watched, and we give each
 * one a uv_poll_t; one uv_timer_t follows ares_timeout() so retries and
 * timeouts happen without anything blocking the loop. Answers are parsed
 * by c-ares 1.34 (ares_dns_parse) into records we read through the
 * ares_dns_rr_* API; wire_check adds the few rules c-ares does not keep. */
#include "stls/dns.h"

#include <ares.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

/* ---- answers: c-ares parses, we select -------------------------------- */

/* c-ares 1.34 parses every answer (ares_dns_parse). What it accepts and
 * we must call malformed is checked first, on the wire bytes, by
 * wire_check below: the one thing a parsed record cannot show any more
 * is where a compressed name pointed. */

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
 * Sets *end to the offset after the name as written there. A pointer must
 * point back at a prior occurrence of a name, which is never inside the
 * 12-byte header. c-ares refuses forward pointers but follows a pointer
 * into the header and reads it as labels: with a zero high byte there (an
 * ID below 256, or the counts further on) that spells the root, and an MX
 * exchange pointing there looked like a null MX. Each pointer must land
 * before the labels read since the last jump, so every jump goes further
 * back and the walk ends even on a hostile answer. */
static bool name_ok(const unsigned char *abuf, size_t alen, size_t off,
                    size_t *end) {
  size_t start = off; /* where the labels read since the last jump begin */
  bool jumped = false;
  while (off < alen) {
    unsigned len = abuf[off];
    if ((len & 0xc0) == 0xc0) {
      size_t to;
      if (off + 1 >= alen)
        return false;
      to = (size_t)(len & 0x3f) << 8 | abuf[off + 1];
      if (to < HFIXEDSZ || to >= start)
        return false;
      if (!jumped)
        *end = off + 2;
      jumped = true;
      off = start = to;
    } else if (len & 0xc0) {
      return false; /* the reserved label types */
    } else if (len == 0) {
      if (!jumped)
        *end = off + 1;
      return true;
    } else {
      off += 1 + (size_t)len;
    }
  }
  return false;
}

/* Do the names in a record's RDATA keep to the compression rules? Only the
 * types of RFC 1035 may compress names there, and only those c-ares reads
 * with compression (RFC 3597 3; any other type's pointer it refuses). The
 * RDATA is the limit, so a name cannot run past it. An MX exchange must
 * also fill its RDATA (c-ares skips bytes left over in an RDATA). */
static bool rdata_ok(const unsigned char *abuf, unsigned type, size_t off,
                     size_t rdlen) {
  size_t lim = off + rdlen, end = 0;
  switch (type) {
  case T_NS:
  case T_CNAME:
  case T_PTR: return name_ok(abuf, lim, off, &end);
  case T_MX:
    return rdlen >= 3 && name_ok(abuf, lim, off + 2, &end) && end == lim;
  case T_SOA:
    return name_ok(abuf, lim, off, &end) && name_ok(abuf, lim, end, &end);
  default: return true;
  }
}

/* The pre-check c-ares' parser needs from us, on the wire bytes: every
 * name c-ares reads with compression (question names, owners, the names in
 * NS, CNAME, PTR, MX and SOA data, in every section) keeps to the
 * compression rules above; an MX exchange fills its RDATA exactly; and the
 * record counts can fit in the packet at all (c-ares allocates for the
 * counts before reading records: ANCOUNT 65535 in a 60-byte answer asked
 * for megabytes). Without the pointer rule in every section, whether
 * c-ares accepted an answer could depend on its ID. Everything else
 * (lengths, label syntax, each type's RDATA) is c-ares' to judge. 0 or
 * UV_EINVAL; *qend is where the question section ends when it is sound,
 * else 0. */
static int wire_check(const unsigned char *abuf, size_t alen, size_t *qend) {
  size_t qd, nrr, off = HFIXEDSZ, end = 0;

  *qend = 0;
  if (!abuf || alen < HFIXEDSZ || alen > 65535)
    return UV_EINVAL;
  qd = get16(abuf + 4);
  nrr = (size_t)get16(abuf + 6) + get16(abuf + 8) + get16(abuf + 10);
  for (size_t i = 0; i < qd; i++) {
    if (!name_ok(abuf, alen, off, &end))
      return UV_EINVAL;
    off = end + QFIXEDSZ;
    if (off > alen)
      return UV_EINVAL;
  }
  *qend = off;
  /* A record takes at least 11 bytes (a root owner and the fixed part). */
  if (nrr > (alen - off) / (1 + RRFIXEDSZ))
    return UV_EINVAL;
  for (size_t i = 0; i < nrr; i++) {
    unsigned type;
    size_t rdlen;
    if (!name_ok(abuf, alen, off, &end))
      return UV_EINVAL;
    off = end;
    if (off + RRFIXEDSZ > alen)
      return UV_EINVAL;
    type = get16(abuf + off);
    rdlen = get16(abuf + off + 8);
    off += RRFIXEDSZ;
    if (off + rdlen > alen || !rdata_ok(abuf, type, off, rdlen))
      return UV_EINVAL;
    off += rdlen;
  }
  return 0;
}

/* A response as c-ares' record: the pre-check, then ares_dns_parse.
 * 0, UV_ENOMEM or UV_EINVAL; *rec is the caller's to destroy. */
static int answer_parse(const unsigned char *abuf, size_t alen,
                        ares_dns_record_t **rec) {
  ares_status_t st;
  size_t qend;
  int rc = wire_check(abuf, alen, &qend);
  *rec = NULL;
  if (rc != 0)
    return rc;
  st = ares_dns_parse(abuf, alen, 0, rec);
  if (st == ARES_SUCCESS)
    return 0;
  *rec = NULL;
  return st == ARES_ENOMEM ? UV_ENOMEM : UV_EINVAL;
}

int stls__dns_answer_check(const unsigned char *abuf, size_t alen) {
  ares_dns_record_t *rec;
  int rc = answer_parse(abuf, alen, &rec);
  ares_dns_record_destroy(rec);
  return rc;
}

/* Is a parsed response validated? The AD flag of its header. */
static bool record_ad(const ares_dns_record_t *rec) {
  return rec && (ares_dns_record_get_flags(rec) & ARES_FLAG_AD) != 0;
}

bool stls__dns_answer_ad(const unsigned char *abuf, size_t alen) {
  ares_dns_record_t *rec;
  bool ad = false;
  if (answer_parse(abuf, alen, &rec) == 0)
    ad = record_ad(rec);
  ares_dns_record_destroy(rec);
  return ad;
}

/* Is a query's outcome a validated answer? Records, NODATA and NXDOMAIN
 * all carry the resolver's verdict in AD; errors carry none. */
static bool answer_secure(int status, const ares_dns_record_t *rec) {
  if (status != ARES_SUCCESS && status != ARES_ENODATA &&
      status != ARES_ENOTFOUND)
    return false;
  return record_ad(rec);
}

/* The answer records we read: class IN only. */
static const ares_dns_rr_t *answer_rr(const ares_dns_record_t *rec, size_t i) {
  const ares_dns_rr_t *rr =
      ares_dns_record_rr_get_const(rec, ARES_SECTION_ANSWER, i);
  return rr && ares_dns_rr_get_class(rr) == ARES_CLASS_IN ? rr : NULL;
}

/* The name whose records answer qname: follow the CNAME records of the
 * answer from qname (a resolver puts the chain there). Sets *cname when
 * an alias was followed. The result points into rec or is qname. The
 * chain is bounded by the number of records, so a loop ends. */
static const char *answer_target(const ares_dns_record_t *rec,
                                 const char *qname, bool *cname) {
  size_t n = ares_dns_record_rr_cnt(rec, ARES_SECTION_ANSWER);
  const char *cur = qname;
  *cname = false;
  for (size_t hops = 0; hops < n; hops++) {
    const char *next = NULL;
    for (size_t i = 0; i < n && !next; i++) {
      const ares_dns_rr_t *rr = answer_rr(rec, i);
      if (rr && ares_dns_rr_get_type(rr) == ARES_REC_TYPE_CNAME &&
          name_eq(ares_dns_rr_get_name(rr), cur))
        next = ares_dns_rr_get_str(rr, ARES_RR_CNAME_CNAME);
    }
    if (!next)
      break;
    cur = next;
    *cname = true;
  }
  return cur;
}

/* The records of `type` that answer qname, in answer order: *want gets
 * them (NULL when there are none), the caller frees the array. 0 or
 * UV_ENOMEM. */
static int answer_select(const ares_dns_record_t *rec, const char *qname,
                         ares_dns_rec_type_t type, const ares_dns_rr_t ***want,
                         size_t *nwant, bool *cname) {
  size_t n = ares_dns_record_rr_cnt(rec, ARES_SECTION_ANSWER);
  const char *target = answer_target(rec, qname, cname);

  *want = NULL;
  *nwant = 0;
  if (n == 0)
    return 0;
  *want = calloc(n, sizeof **want);
  if (!*want)
    return UV_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    const ares_dns_rr_t *rr = answer_rr(rec, i);
    if (rr && ares_dns_rr_get_type(rr) == type &&
        name_eq(ares_dns_rr_get_name(rr), target))
      (*want)[(*nwant)++] = rr;
  }
  return 0;
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

/* The TXT records answering qname, each one's strings joined. */
static int txt_from_record(const ares_dns_record_t *rec, const char *qname,
                           stls_dns_txt_result_t *r) {
  const ares_dns_rr_t **want;
  size_t nwant;
  bool cname;
  int rc = answer_select(rec, qname, ARES_REC_TYPE_TXT, &want, &nwant, &cname);

  if (rc != 0)
    return rc;
  if (nwant > 0) {
    r->txt = calloc(nwant, sizeof *r->txt);
    r->txt_len = calloc(nwant, sizeof *r->txt_len);
    if (!r->txt || !r->txt_len)
      rc = UV_ENOMEM;
  }
  for (size_t k = 0; rc == 0 && k < nwant; k++) {
    size_t nstr = ares_dns_rr_get_abin_cnt(want[k], ARES_RR_TXT_DATA);
    size_t len = 0;
    char *t;
    for (size_t s = 0; s < nstr; s++) {
      size_t l = 0;
      (void)ares_dns_rr_get_abin(want[k], ARES_RR_TXT_DATA, s, &l);
      len += l;
    }
    t = malloc(len + 1);
    if (!t) {
      rc = UV_ENOMEM;
      break;
    }
    len = 0;
    for (size_t s = 0; s < nstr; s++) {
      size_t l = 0;
      const unsigned char *b =
          ares_dns_rr_get_abin(want[k], ARES_RR_TXT_DATA, s, &l);
      if (b && l > 0)
        memcpy(t + len, b, l);
      len += b ? l : 0;
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
  return rc;
}

int stls__dns_parse_txt(const unsigned char *abuf, size_t alen,
                        const char *qname, stls_dns_txt_result_t *r) {
  ares_dns_record_t *rec;
  int rc = answer_parse(abuf, alen, &rec);
  if (rc == 0)
    rc = txt_from_record(rec, qname, r);
  ares_dns_record_destroy(rec);
  return rc;
}

void stls__dns_mx_rr_free(stls__dns_mx_rr_t *rr, size_t n) {
  if (!rr)
    return;
  for (size_t i = 0; i < n; i++)
    free((char *)rr[i].host); /* ours: mx_from_record copied it */
  free(rr);
}

/* The MX records answering qname, hosts copied out of the record. */
static int mx_from_record(const ares_dns_record_t *rec, const char *qname,
                          stls__dns_mx_rr_t **out, size_t *nout) {
  const ares_dns_rr_t **want;
  size_t nwant, k = 0;
  bool cname;
  stls__dns_mx_rr_t *mx = NULL;
  int rc = answer_select(rec, qname, ARES_REC_TYPE_MX, &want, &nwant, &cname);

  *out = NULL;
  *nout = 0;
  if (rc != 0)
    return rc;
  if (nwant > 0 && !(mx = calloc(nwant, sizeof *mx)))
    rc = UV_ENOMEM;
  for (; rc == 0 && k < nwant; k++) {
    const char *ex = ares_dns_rr_get_str(want[k], ARES_RR_MX_EXCHANGE);
    char *host = strdup(ex ? ex : "");
    if (!host) {
      rc = UV_ENOMEM;
      break;
    }
    mx[k].preference = ares_dns_rr_get_u16(want[k], ARES_RR_MX_PREFERENCE);
    mx[k].host = host;
  }
  if (rc != 0) {
    stls__dns_mx_rr_free(mx, k);
  } else {
    *out = mx;
    *nout = nwant;
  }
  free(want);
  return rc;
}

int stls__dns_parse_mx(const unsigned char *abuf, size_t alen,
                       const char *qname, stls__dns_mx_rr_t **out,
                       size_t *nout) {
  ares_dns_record_t *rec;
  int rc = answer_parse(abuf, alen, &rec);
  *out = NULL;
  *nout = 0;
  if (rc == 0)
    rc = mx_from_record(rec, qname, out, nout);
  ares_dns_record_destroy(rec);
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

/* The TLSA records answering qname, sorted and unique. c-ares refuses a
 * TLSA record without certificate data, and with it the whole answer. */
static int tlsa_from_record(const ares_dns_record_t *rec, const char *qname,
                            stls_dns_tlsa_result_t *r) {
  const ares_dns_rr_t **want;
  size_t nwant, u = 0;
  bool cname;
  int rc = answer_select(rec, qname, ARES_REC_TYPE_TLSA, &want, &nwant, &cname);

  if (rc != 0)
    return rc;
  r->is_cname = cname;
  if (nwant > 0 && !(r->rr = calloc(nwant, sizeof *r->rr)))
    rc = UV_ENOMEM;
  for (size_t k = 0; rc == 0 && k < nwant; k++) {
    stls_dns_tlsa_rr_t *t = &r->rr[r->nrr];
    size_t len = 0;
    const unsigned char *data =
        ares_dns_rr_get_bin(want[k], ARES_RR_TLSA_DATA, &len);
    t->usage = ares_dns_rr_get_u8(want[k], ARES_RR_TLSA_CERT_USAGE);
    t->selector = ares_dns_rr_get_u8(want[k], ARES_RR_TLSA_SELECTOR);
    t->mtype = ares_dns_rr_get_u8(want[k], ARES_RR_TLSA_MATCH);
    t->len = data ? len : 0;
    /* One byte more, so even empty data is a real allocation. */
    t->data = malloc(t->len + 1);
    if (!t->data) {
      rc = UV_ENOMEM;
      break;
    }
    if (t->len > 0)
      memcpy(t->data, data, t->len);
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
  return rc;
}

int stls__dns_parse_tlsa(const unsigned char *abuf, size_t alen,
                         const char *qname, stls_dns_tlsa_result_t *r) {
  ares_dns_record_t *rec;
  int rc = answer_parse(abuf, alen, &rec);
  if (rc == 0)
    rc = tlsa_from_record(rec, qname, r);
  ares_dns_record_destroy(rec);
  return rc;
}

/* The addresses of `family` answering host, in answer order, into
 * lk->bin (unsorted); sets *cname when the answer went through an alias.
 * 0 or UV_ENOMEM. */
static int addrs_from_record(const ares_dns_record_t *rec, const char *host,
                             int family, unsigned char (**bin)[16], size_t *n,
                             bool *cname) {
  const ares_dns_rr_t **want;
  size_t nwant;
  int rc = answer_select(
      rec, host, family == AF_INET ? ARES_REC_TYPE_A : ARES_REC_TYPE_AAAA,
      &want, &nwant, cname);

  *bin = NULL;
  *n = 0;
  if (rc != 0)
    return rc;
  if (nwant > 0 && !(*bin = calloc(nwant, sizeof **bin)))
    rc = UV_ENOMEM;
  for (size_t k = 0; rc == 0 && k < nwant; k++) {
    if (family == AF_INET) {
      const struct in_addr *a = ares_dns_rr_get_addr(want[k], ARES_RR_A_ADDR);
      if (a)
        memcpy((*bin)[(*n)++], a, 4);
    } else {
      const struct ares_in6_addr *a =
          ares_dns_rr_get_addr6(want[k], ARES_RR_AAAA_ADDR);
      if (a)
        memcpy((*bin)[(*n)++], a, 16);
    }
  }
  free(want);
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
/* What a query hands back: a c-ares status with the rcode folded in (as
 * ares_query would), and the response when one came (NULL otherwise). */
typedef void (*query_cb)(void *arg, int status, const ares_dns_record_t *rec);

typedef struct dns_q_s {
  stls_dns_t *d;
  const char *name;
  ares_dns_rec_type_t type;
  query_cb cb;
  void *arg;
  struct dns_q_s *next;
} dns_q_t;

/* A socket c-ares opened through our socket functions (see wire_recv). */
typedef struct dns_fd_s {
  ares_socket_t fd;
  bool tcp;
  unsigned char *buf; /* TCP: bytes read and not yet handed to c-ares */
  size_t len, cap;
  size_t ready; /* TCP: buf[0..ready) holds whole, checked messages */
  struct dns_fd_s *next;
} dns_fd_t;

struct stls_dns_s {
  uv_loop_t *loop;
  ares_channel channel;
  bool channel_ok;
  uv_timer_t timer; /* c-ares retries and timeouts */
  uv_timer_t defer; /* delivers completions that happened during a call */
  dns_sock_t *socks;
  dns_fd_t *fds;
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

/* ---- the wire check on every answer c-ares reads ---------------------- */

/* c-ares 1.34 parses a response as it reads it and hands callbacks only
 * its parsed record, so the one check it lacks (wire_check: compression
 * pointers into the header, an MX exchange short of its RDATA, an
 * impossible ANCOUNT) runs here, in the socket functions c-ares reads
 * through, and a response that fails it is rewritten (poison) before
 * c-ares sees it. Everything else does what c-ares' own socket functions
 * do. */

static dns_fd_t *fd_find(stls_dns_t *d, ares_socket_t fd) {
  dns_fd_t *f = d->fds;
  while (f && f->fd != fd)
    f = f->next;
  return f;
}

/* Rewrite, in place, a response of len >= 12 bytes that failed wire_check
 * (qend as it set it); returns the new length. With a sound question, the
 * header and question stay and the records go, and the rcode becomes
 * NOTZONE, which no answer to a query carries: c-ares completes the query
 * with it, as it would a SERVFAIL, and query_done_cb reports it as
 * BADRESP, once, like the answer it replaces. (Refusing the message
 * outright would make c-ares drop the connection and retry every query
 * on it, sound ones included.) Otherwise a header announcing a question
 * it lacks: c-ares refuses that as malformed and retries the queries on
 * the connection; with no readable question there is no query to match. */
static size_t poison(unsigned char *msg, size_t len, size_t qend) {
  static const unsigned char none[6] = {0, 0, 0, 0, 0, 0};
  if (qend > HFIXEDSZ && qend <= len && get16(msg + 4) == 1) {
    memcpy(msg + 6, none, sizeof none); /* ANCOUNT, NSCOUNT, ARCOUNT */
    msg[2] &= (unsigned char)~0x02;     /* TC */
    msg[3] = (unsigned char)((msg[3] & 0x80) | ARES_RCODE_NOTZONE); /* RA */
    return qend;
  }
  msg[4] = 0;
  msg[5] = 1;
  memcpy(msg + 6, none, sizeof none);
  return HFIXEDSZ;
}

static ares_socket_t wire_socket(int domain, int type, int protocol,
                                 void *data) {
  stls_dns_t *d = data;
  dns_fd_t *f = calloc(1, sizeof *f);
  int fd, one = 1;

  if (!f) {
    errno = ENOMEM;
    return ARES_SOCKET_BAD;
  }
  fd = socket(domain, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
  if (fd < 0) {
    free(f);
    return ARES_SOCKET_BAD;
  }
  if (type == SOCK_STREAM)
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  f->fd = fd;
  f->tcp = type == SOCK_STREAM;
  f->next = d->fds;
  d->fds = f;
  return fd;
}

static int wire_close(ares_socket_t fd, void *data) {
  stls_dns_t *d = data;
  dns_fd_t **pp = &d->fds;
  while (*pp && (*pp)->fd != fd)
    pp = &(*pp)->next;
  if (*pp) {
    dns_fd_t *f = *pp;
    *pp = f->next;
    free(f->buf);
    free(f);
  }
  return close(fd);
}

static int wire_setsockopt(ares_socket_t fd, ares_socket_opt_t opt,
                           const void *val, ares_socklen_t len, void *data) {
  (void)data;
  switch (opt) {
  case ARES_SOCKET_OPT_SENDBUF_SIZE:
    return setsockopt(fd, SOL_SOCKET, SO_SNDBUF, val, len);
  case ARES_SOCKET_OPT_RECVBUF_SIZE:
    return setsockopt(fd, SOL_SOCKET, SO_RCVBUF, val, len);
  case ARES_SOCKET_OPT_BIND_DEVICE:
    return setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, val, len);
  default: /* TCP Fast Open: not worth it for a few TCP fallbacks */
    errno = ENOSYS;
    return -1;
  }
}

static int wire_connect(ares_socket_t fd, const struct sockaddr *addr,
                        ares_socklen_t len, unsigned flags, void *data) {
  (void)flags;
  (void)data;
  return connect(fd, addr, len);
}

static ares_ssize_t wire_sendto(ares_socket_t fd, const void *buf, size_t len,
                                int flags, const struct sockaddr *addr,
                                ares_socklen_t alen, void *data) {
  (void)data;
  flags |= MSG_NOSIGNAL;
  return addr ? sendto(fd, buf, len, flags, addr, alen)
              : send(fd, buf, len, flags);
}

static int wire_getsockname(ares_socket_t fd, struct sockaddr *addr,
                            ares_socklen_t *len, void *data) {
  (void)data;
  return getsockname(fd, addr, len);
}

/* TCP: read what the kernel has, then check each whole message (2-byte
 * length, then the message) before c-ares sees any of it. */
static ares_ssize_t tcp_recv(dns_fd_t *f, unsigned char *out, size_t outlen,
                             int flags) {
  size_t take;
  if (f->ready == 0) {
    ssize_t n;
    if (f->cap - f->len < 4096) {
      size_t cap = f->cap ? f->cap * 2 : 16384;
      unsigned char *nb;
      if (cap < f->len + 65538)
        cap = f->len + 65538;
      nb = realloc(f->buf, cap);
      if (!nb) {
        errno = ENOMEM;
        return -1;
      }
      f->buf = nb;
      f->cap = cap;
    }
    n = recv(f->fd, f->buf + f->len, f->cap - f->len, flags);
    if (n <= 0)
      return n; /* EOF or error: a partial message is lost with it */
    f->len += (size_t)n;
    while (f->len - f->ready >= 2) {
      unsigned char *m = f->buf + f->ready;
      size_t mlen = get16(m), qend;
      if (f->len - f->ready < 2 + mlen)
        break;
      if (mlen >= HFIXEDSZ && wire_check(m + 2, mlen, &qend) != 0) {
        /* Rewrite it and close the gap to the next message. */
        size_t plen = poison(m + 2, mlen, qend);
        memmove(m + 2 + plen, m + 2 + mlen, f->len - f->ready - 2 - mlen);
        f->len -= mlen - plen;
        mlen = plen;
        m[0] = (unsigned char)(plen >> 8);
        m[1] = (unsigned char)plen;
      }
      f->ready += 2 + mlen;
    }
    if (f->ready == 0) {
      errno = EAGAIN;
      return -1;
    }
  }
  /* c-ares reads again while it gets as much as it asked for. */
  take = f->ready < outlen ? f->ready : outlen;
  memcpy(out, f->buf, take);
  memmove(f->buf, f->buf + take, f->len - take);
  f->len -= take;
  f->ready -= take;
  return (ares_ssize_t)take;
}

static ares_ssize_t wire_recvfrom(ares_socket_t fd, void *buf, size_t len,
                                  int flags, struct sockaddr *from,
                                  ares_socklen_t *fromlen, void *data) {
  dns_fd_t *f = fd_find(data, fd);
  ssize_t n;
  size_t qend;
  if (f && f->tcp)
    return tcp_recv(f, buf, len, flags);
  n = recvfrom(fd, buf, len, flags, from, fromlen);
  /* One datagram, one message; shorter than a header c-ares refuses. A
   * truncated one (TC) is only a signal to ask again over TCP, where the
   * whole answer is checked. */
  if (n >= HFIXEDSZ && !(((unsigned char *)buf)[2] & 0x02) &&
      wire_check(buf, (size_t)n, &qend) != 0)
    n = (ssize_t)poison(buf, (size_t)n, qend);
  return n;
}

static const struct ares_socket_functions_ex wire_funcs = {
    .version = 1,
    .flags = ARES_SOCKFUNC_FLAG_NONBLOCKING,
    .asocket = wire_socket,
    .aclose = wire_close,
    .asetsockopt = wire_setsockopt,
    .aconnect = wire_connect,
    .arecvfrom = wire_recvfrom,
    .asendto = wire_sendto,
    .agetsockname = wire_getsockname,
};

/* ---- the query queue -------------------------------------------------- */

/* c-ares sends every query at once; thousands of them in one burst
 * overflow the socket buffers on both ends and come back as timeouts.
 * So at most max_inflight queries are on the wire, the rest wait here. */

static void queue_pump(stls_dns_t *d);

/* Turn a response's rcode into a c-ares status the way ares_query does
 * (ares_send_dnsrec leaves that to us). The response is passed on whatever
 * the rcode, so the callbacks can read AD from NXDOMAIN and NODATA answers
 * too. */
static void query_done_cb(void *arg, ares_status_t status, size_t timeouts,
                          const ares_dns_record_t *rec) {
  dns_q_t *q = arg;
  stls_dns_t *d = q->d;
  int st = (int)status;
  (void)timeouts;
  if (st == ARES_SUCCESS) {
    if (!rec) {
      st = ARES_EBADRESP;
    } else {
      switch (ares_dns_record_get_rcode(rec)) {
      case ARES_RCODE_NOERROR:
        st = ares_dns_record_rr_cnt(rec, ARES_SECTION_ANSWER) > 0
                 ? ARES_SUCCESS
                 : ARES_ENODATA;
        break;
      case ARES_RCODE_FORMERR: st = ARES_EFORMERR; break;
      case ARES_RCODE_SERVFAIL: st = ARES_ESERVFAIL; break;
      case ARES_RCODE_NXDOMAIN: st = ARES_ENOTFOUND; break;
      case ARES_RCODE_NOTIMP: st = ARES_ENOTIMP; break;
      case ARES_RCODE_REFUSED: st = ARES_EREFUSED; break;
      /* Rcodes no answer to a query carries, among them NOTZONE for an
       * answer wire_check refused (see poison). */
      default: st = ARES_EBADRESP; break;
      }
    }
  }
  d->inflight--;
  q->cb(q->arg, st,
        st == ARES_SUCCESS || st == ARES_ENODATA || st == ARES_ENOTFOUND
            ? rec
            : NULL);
  free(q);
  queue_pump(d);
}

/* Build the query ourselves with the AD bit set: RFC 6840 5.7 says a
 * validating resolver then reports in AD whether it validated the answer,
 * without the DO bit's RRSIG records bloating every response. EDNS is
 * added as ares_query would (c-ares still drops it on FORMERR). */
static void query_send(stls_dns_t *d, dns_q_t *q) {
  ares_dns_record_t *rec = NULL;
  ares_dns_rr_t *opt = NULL;
  ares_status_t st;

  d->inflight++;
  st = ares_dns_record_create(&rec, 0, ARES_FLAG_RD | ARES_FLAG_AD,
                              ARES_OPCODE_QUERY, ARES_RCODE_NOERROR);
  if (st == ARES_SUCCESS)
    st = ares_dns_record_query_add(rec, q->name, q->type, ARES_CLASS_IN);
  if (st == ARES_SUCCESS)
    st = ares_dns_record_rr_add(&opt, rec, ARES_SECTION_ADDITIONAL, "",
                                ARES_REC_TYPE_OPT, ARES_CLASS_IN, 0);
  if (st == ARES_SUCCESS)
    st = ares_dns_rr_set_u16(opt, ARES_RR_OPT_UDP_SIZE,
                             (unsigned short)d->ednspsz);
  if (st == ARES_SUCCESS)
    st = ares_dns_rr_set_u8(opt, ARES_RR_OPT_VERSION, 0);
  if (st == ARES_SUCCESS)
    st = ares_dns_rr_set_u16(opt, ARES_RR_OPT_FLAGS, 0);
  if (st != ARES_SUCCESS) {
    ares_dns_record_destroy(rec);
    query_done_cb(q, st, 0, NULL);
    return;
  }
  /* The callback runs exactly once, also when sending fails at once. */
  (void)ares_send_dnsrec(d->channel, rec, query_done_cb, q, NULL);
  ares_dns_record_destroy(rec);
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
static void query_start(stls_dns_t *d, const char *name,
                        ares_dns_rec_type_t type, query_cb cb, void *arg) {
  dns_q_t *q = calloc(1, sizeof *q);
  if (!q) {
    cb(arg, ARES_ENOMEM, NULL);
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
    q->cb(q->arg, ARES_EDESTRUCTION, NULL);
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

/* Keep a lookup's addresses: sorted and de-duplicated so results do not
 * depend on the server's round-robin order. */
static int lookup_store(dns_lookup_t *lk, const ares_dns_record_t *rec,
                        const char *host, bool *cname) {
  size_t alen = lk->family == AF_INET ? 4 : 16, n = 0, u = 0;
  int rc = addrs_from_record(rec, host, lk->family, &lk->bin, &n, cname);
  if (rc != 0 || n == 0)
    return rc;
  qsort(lk->bin, n, sizeof *lk->bin, alen == 4 ? bin_cmp4 : bin_cmp16);
  for (size_t i = 0; i < n; i++)
    if (u == 0 || memcmp(lk->bin[u - 1], lk->bin[i], alen) != 0)
      memmove(lk->bin[u++], lk->bin[i], alen);
  lk->n = u;
  return 0;
}

/* An A or AAAA answer for one MX host. */
static void addr_cb(void *arg, int status, const ares_dns_record_t *rec) {
  dns_lookup_t *lk = arg;
  dns_req_t *req = lk->req;
  stls_dns_mx_t *m = &req->res->mx[lk->idx];
  stls_dns_error_t err = no_error;
  stls_dns_status_t s;

  if (status == ARES_EDESTRUCTION)
    req->cancelled = true;
  lk->secure = answer_secure(status, rec);
  if (status == ARES_SUCCESS) {
    bool cname = false;
    int prc = parse_status(lookup_store(lk, rec, m->host, &cname));
    if (cname)
      m->is_cname = true;
    /* Records, but none of the family for this name: no address. */
    if (prc == ARES_SUCCESS && lk->n == 0)
      prc = ARES_ENODATA;
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
      query_start(d, m->host, ARES_REC_TYPE_A, addr_cb, &req->lookups[2 * i]);
    }
    if (req->q.want_ipv6) {
      req->lookups[2 * i + 1].queried = true;
      req->pending++;
      query_start(d, m->host, ARES_REC_TYPE_AAAA, addr_cb,
                  &req->lookups[2 * i + 1]);
    }
  }
}

/* The MX answer: apply the MX rules, then look up every host. */
static void mx_cb(void *arg, int status, const ares_dns_record_t *rec) {
  dns_req_t *req = arg;
  stls_dns_result_t *res = req->res;
  stls__dns_mx_rr_t *rr = NULL;
  size_t nrr = 0;
  stls_dns_error_t err = no_error;
  stls_dns_status_t s;

  if (status == ARES_EDESTRUCTION)
    req->cancelled = true;
  res->mx_secure = answer_secure(status, rec);
  if (status == ARES_SUCCESS)
    status = parse_status(mx_from_record(rec, res->domain, &rr, &nrr));
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
  query_start(d, req->res->domain, ARES_REC_TYPE_MX, mx_cb, req);
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
static void single_answer(dns_req_t *req, int status,
                          const ares_dns_record_t *rec, int parsed,
                          bool *secure, stls_dns_status_t *st,
                          stls_dns_error_t *error, size_t count) {
  if (status == ARES_EDESTRUCTION)
    req->cancelled = true;
  *secure = answer_secure(status, rec);
  if (status == ARES_SUCCESS)
    status = parse_status(parsed);
  *st = single_status(status, count, error);
  if (*st != STLS_DNS_OK && *st != STLS_DNS_NODATA && *st != STLS_DNS_NXDOMAIN)
    *secure = false;
  req_release(req);
}

static void txt_cb(void *arg, int status, const ares_dns_record_t *rec) {
  dns_req_t *req = arg;
  stls_dns_txt_result_t *res = req->txt;
  int parsed =
      status == ARES_SUCCESS ? txt_from_record(rec, req->qname, res) : 0;
  single_answer(req, status, rec, parsed, &res->secure, &res->status,
                &res->error, res->ntxt);
}

static void tlsa_cb(void *arg, int status, const ares_dns_record_t *rec) {
  dns_req_t *req = arg;
  stls_dns_tlsa_result_t *res = req->tlsa;
  int parsed =
      status == ARES_SUCCESS ? tlsa_from_record(rec, req->qname, res) : 0;
  single_answer(req, status, rec, parsed, &res->secure, &res->status,
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
static void single_submit(stls_dns_t *d, dns_req_t *req,
                          ares_dns_rec_type_t type, query_cb cb) {
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
  single_submit(d, req, ARES_REC_TYPE_TXT, txt_cb);
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
  single_submit(d, req, ARES_REC_TYPE_TLSA, tlsa_cb);
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
  int optmask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_FLAGS | ARES_OPT_EDNSPSZ |
                ARES_OPT_QUERY_CACHE;
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
   * NOCHECKRESP: without it c-ares retries SERVFAIL and REFUSED answers
   * and then reports its own error, not the answer; we need them told
   * apart, and a resolver's SERVFAIL is final anyway. */
  opts.flags = ARES_FLAG_EDNS | ARES_FLAG_NOCHECKRESP;
  opts.ednspsz = d->ednspsz;
  /* No answer cache (c-ares 1.34 has one by default): every lookup asks
   * the resolver, as before, and the resolver does the caching. */
  opts.qcache_max_ttl = 0;
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
  if (ares_set_socket_functions_ex(d->channel, &wire_funcs, d) !=
      ARES_SUCCESS) {
    ares_destroy(d->channel);
    free(d);
    return UV_EINVAL;
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
  /* ares_destroy closed every socket through wire_close. */
  while (d->fds) {
    dns_fd_t *f = d->fds;
    d->fds = f->next;
    free(f->buf);
    free(f);
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
