/* DNS stage: a recipient domain's MX hosts and their addresses, resolved
 * with c-ares on the worker's libuv loop. */
#ifndef STLS_DNS_H
#define STLS_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

/* Statuses of a domain, an MX host, or one address lookup.
 * XX(NAME, dns_name, domain_status, message): dns_name is the value in the
 * "dns" part of a record; domain_status is what the domain record's
 * "status" becomes (SCHEMA.md: ok | null-mx | nxdomain | dns-error |
 * no-address), so transient failures stay apart here but share one
 * domain-level value. */
#define STLS_DNS_STATUS_MAP(XX)                                                \
  XX(OK, "ok", "ok", "resolved")                                               \
  XX(NULL_MX, "null-mx", "null-mx",                                            \
     "domain accepts no mail (null MX, RFC 7505)")                             \
  XX(NXDOMAIN, "nxdomain", "nxdomain", "name does not exist")                  \
  XX(NO_ADDRESS, "no-address", "no-address", "no address records")             \
  XX(SERVFAIL, "servfail", "dns-error", "DNS server failure")                  \
  XX(REFUSED, "refused", "dns-error", "DNS query refused")                     \
  XX(TIMEOUT, "timeout", "dns-error", "DNS query timed out")                   \
  XX(BAD_RESPONSE, "bad-response", "dns-error",                                \
     "malformed or unusable DNS response")                                     \
  XX(ERROR, "error", "dns-error", "DNS resolution failed")                     \
  XX(CANCELLED, "cancelled", "dns-error", "DNS lookup cancelled")              \
  XX(NOT_QUERIED, "not-queried", "dns-error", "not queried")                   \
  XX(NODATA, "nodata", "no-address", "no records of the type asked for")

typedef enum {
#define XX(name, dns_name, domain_status, message) STLS_DNS_##name,
  STLS_DNS_STATUS_MAP(XX)
#undef XX
} stls_dns_status_t;

/* Names and messages from the map; "unknown" for an out-of-range value. */
const char *stls_dns_status_name(stls_dns_status_t s);
const char *stls_dns_status_domain_name(stls_dns_status_t s);
const char *stls_dns_status_message(stls_dns_status_t s);

/* An error as the schema shows it, minus the stage (always "dns"). code is
 * NULL when there is no error; otherwise code ("NXDOMAIN", "NODATA",
 * "SERVFAIL", "REFUSED", "ETIMEDOUT", "ECONNREFUSED", "FORMERR", "BADRESP",
 * "ECANCELED", "ENOMEM", ...) and message are static strings. */
typedef struct {
  const char *code;
  const char *message;
} stls_dns_error_t;

#define STLS_DNS_ADDRSTRLEN 46 /* INET6_ADDRSTRLEN */

typedef struct {
  int family;                     /* AF_INET or AF_INET6 */
  char text[STLS_DNS_ADDRSTRLEN]; /* canonical text (inet_ntop) */
} stls_dns_addr_t;

/* One MX host. addrs holds IPv4 addresses in ascending order, then IPv6
 * addresses in ascending order, without duplicates. */
typedef struct {
  unsigned preference;
  char *host; /* lower case, no trailing dot; "" never */
  stls_dns_addr_t *addrs;
  size_t naddrs;
  stls_dns_status_t status;      /* OK when naddrs > 0, else why not */
  stls_dns_error_t error;        /* why status is not OK (code NULL if OK) */
  stls_dns_status_t a_status;    /* the A lookup; NOT_QUERIED if not asked */
  stls_dns_status_t aaaa_status; /* the AAAA lookup */
  bool is_cname;                 /* an address answer came through a CNAME
                                    (RFC 2181 10.3: an MX must not name an alias) */
  bool is_ip_literal;            /* the MX target is an IP address written as a
                                    name (RFC violation); used as the address */
  bool addrs_truncated; /* more addresses existed than max_addrs_per_host */
  bool addr_secure;     /* every address lookup made for this host got
                           an answer (records or a NODATA/NXDOMAIN
                           proof) with the AD bit: the resolver
                           validated it with DNSSEC. false for IP
                           literals and when nothing was queried */
} stls_dns_mx_t;

typedef struct {
  char *domain; /* as asked, lower case, no trailing dot */
  stls_dns_status_t status;
  stls_dns_error_t error; /* code NULL for OK and NULL_MX */
  bool implicit_mx;       /* no MX records: the domain is its own MX
                             (RFC 5321 5.1), mx[0].preference 0 */
  bool null_mx;           /* RFC 7505 null MX; nmx is 0 */
  bool null_mx_mixed;     /* a "." MX next to real ones: RFC 7505 says it
                             must stand alone; MTAs honour it anyway, so
                             the domain is NULL_MX and the others unused */
  bool mx_truncated;      /* more MX hosts existed than max_mx */
  bool mx_secure;         /* the MX answer (or the NODATA/NXDOMAIN proof)
                             had the AD bit: DNSSEC-validated by the
                             resolver, which is trusted as Postfix trusts
                             it (RFC 7672 2.1.1) */
  stls_dns_mx_t *mx;      /* in delivery order, see stls__dns_mx_sort */
  size_t nmx;
  uint64_t duration_ms; /* from the call to the callback */
} stls_dns_result_t;

void stls_dns_result_free(stls_dns_result_t *r);

/* One resolver per loop (per worker thread); not thread-safe. */
typedef struct stls_dns_s stls_dns_t;

/* Defaults used when a field is 0. */
#define STLS_DNS_DEFAULT_TIMEOUT_MS 2000
#define STLS_DNS_DEFAULT_TRIES 2
#define STLS_DNS_DEFAULT_MAX_MX 10
#define STLS_DNS_DEFAULT_MAX_ADDRS 10
#define STLS_DNS_DEFAULT_MAX_INFLIGHT 200

typedef struct {
  /* Comma-separated "ADDR[:PORT]" list, IPv6 as "[ADDR]:PORT", e.g.
   * "127.0.53.53,[::1]:5353"; NULL or "" uses /etc/resolv.conf. The next
   * server is tried when one does not answer; a SERVFAIL or REFUSED
   * answer is final (it is what we report). */
  const char *servers;
  unsigned timeout_ms;   /* per try and server; 0 = default; with NULL
                            servers, 0 keeps resolv.conf's value */
  unsigned tries;        /* 0 = default (resolv.conf's with NULL servers) */
  unsigned max_inflight; /* queries on the wire at once, more wait in a
                            queue (a burst of thousands overflows socket
                            buffers and turns into timeouts); 0 = default */
} stls_dns_opts_t;

/* Check a servers list as stls_dns_opts_t.servers takes it: one or more
 * comma-separated entries, each an IPv4 address with an optional ":PORT",
 * a bare IPv6 address, or "[IPv6]" with an optional ":PORT"; ports
 * 1..65535; no names, no empty entries. Returns 0, or -1 with a short
 * reason naming the bad entry in err (when err is not NULL), e.g.
 * "'127.0.0.1:0': port must be 1..65535". stls_dns_init refuses what this
 * refuses; the command line checks --resolver with it. */
int stls_dns_servers_check(const char *servers, char *err, size_t errlen);

/* Create a resolver on loop. o may be NULL (resolv.conf). Reads
 * resolv.conf synchronously: call it while setting a worker up, not per
 * query. Returns 0 or a negative UV error code (UV_EINVAL for a bad
 * servers list, UV_ENOMEM). */
int stls_dns_init(stls_dns_t **out, uv_loop_t *loop, const stls_dns_opts_t *o);

/* Close the resolver. Queries still in flight complete, before this
 * returns, with status CANCELLED (or their result, when it was already
 * known). Memory is released in libuv close callbacks, so run the loop
 * afterwards. Safe to call from a completion callback. */
void stls_dns_close(stls_dns_t *d);

typedef struct {
  bool want_ipv4;
  bool want_ipv6;
  unsigned max_mx;             /* 0 = STLS_DNS_DEFAULT_MAX_MX */
  unsigned max_addrs_per_host; /* 0 = STLS_DNS_DEFAULT_MAX_ADDRS; split
                                  between the families so that neither
                                  crowds the other out */
} stls_dns_query_opts_t;

/* Receives the result and owns it: free it with stls_dns_result_free(). */
typedef void (*stls_dns_done_cb)(stls_dns_result_t *res, void *arg);

/* Resolve a (normalised) domain: MX, then A and/or AAAA of every MX host in
 * parallel. q may be NULL: both families, default caps; with both families
 * off only the MX step runs.
 *
 * Returns 0 and calls cb exactly once, always from the loop and never
 * before this function has returned; or returns a negative UV error code
 * (UV_EINVAL, UV_ENOMEM, UV_ECANCELED when the resolver is closing) and
 * never calls cb. */
int stls_dns_resolve_domain(stls_dns_t *d, const char *domain,
                            const stls_dns_query_opts_t *q, stls_dns_done_cb cb,
                            void *arg);

/* The A and/or AAAA addresses of one host name (not a mail domain: no MX
 * step). The result looks like a domain's whose implicit MX is the host:
 * mx[0] holds the addresses, status and error. Same contract as above. */
int stls_dns_resolve_host(stls_dns_t *d, const char *host,
                          const stls_dns_query_opts_t *q, stls_dns_done_cb cb,
                          void *arg);

/* ---- single-type lookups: TXT and TLSA ------------------------------- *
 *
 * Both follow CNAMEs as the resolver returns them in the answer (only
 * records owned by the name asked for or by an alias reached from it
 * count). status is OK (at least one record), NODATA (the name exists,
 * no records of the type), NXDOMAIN, SERVFAIL (a validating resolver's
 * answer to bogus DNSSEC data, or a server failure), REFUSED, TIMEOUT,
 * BAD_RESPONSE, ERROR or CANCELLED; error.code is NULL only for OK.
 * secure is the AD bit of the answer, also for NODATA/NXDOMAIN (a
 * validated denial); it is false for every other status.
 *
 * Same contract as stls_dns_resolve_domain: returns 0 and calls cb
 * exactly once, from the loop and never before the call returns; the
 * callback owns the result. Or returns a negative UV error code
 * (UV_EINVAL, UV_ENOMEM, UV_ECANCELED) and never calls cb. */

/* TXT records of a name. Each RR's character-strings are concatenated
 * into one string (as RFC 8461 3.1 and RFC 7208 3.3 read them); txt[i]
 * has txt_len[i] bytes plus a terminating NUL that is not counted (a TXT
 * may itself contain NUL bytes: use the length). Records are in the
 * order of the answer. */
typedef struct {
  stls_dns_status_t status;
  stls_dns_error_t error;
  bool secure;
  char **txt;
  size_t *txt_len;
  size_t ntxt;
} stls_dns_txt_result_t;

typedef void (*stls_dns_txt_cb)(stls_dns_txt_result_t *res, void *arg);

void stls_dns_txt_result_free(stls_dns_txt_result_t *r);

int stls_dns_lookup_txt(stls_dns_t *d, const char *name, stls_dns_txt_cb cb,
                        void *arg);

/* One TLSA record (RFC 6698 2.1): certificate usage, selector, matching
 * type and the certificate association data. */
typedef struct {
  uint8_t usage;
  uint8_t selector;
  uint8_t mtype;
  unsigned char *data;
  size_t len;
} stls_dns_tlsa_rr_t;

/* TLSA RRset of _PORT._tcp.MXHOST. Records are sorted (usage, selector,
 * mtype, data) and de-duplicated, so indexes are stable across runs
 * whatever order the server answers in. */
typedef struct {
  char *qname; /* "_25._tcp.mx.example.com", lower case */
  stls_dns_status_t status;
  stls_dns_error_t error;
  bool secure;
  bool is_cname; /* the records were reached through a CNAME */
  stls_dns_tlsa_rr_t *rr;
  size_t nrr;
  uint64_t duration_ms;
} stls_dns_tlsa_result_t;

typedef void (*stls_dns_tlsa_cb)(stls_dns_tlsa_result_t *res, void *arg);

void stls_dns_tlsa_result_free(stls_dns_tlsa_result_t *r);

/* mxhost as in stls_dns_mx_t.host (no trailing dot needed); port is the
 * SMTP port, 25 for MX delivery. */
int stls_dns_lookup_tlsa(stls_dns_t *d, const char *mxhost, unsigned port,
                         stls_dns_tlsa_cb cb, void *arg);

/* Internal: the answer parsers as pure functions, for unit tests and the
 * fuzz target: stls__dns_answer_check, then the records c-ares parsed,
 * read as the resolver reads them. abuf is a whole DNS response; qname the
 * name asked for. Return 0, UV_ENOMEM or
 * UV_EINVAL (malformed answer). They fill rr/nrr (resp. txt) and
 * is_cname, not status. */
int stls__dns_parse_tlsa(const unsigned char *abuf, size_t alen,
                         const char *qname, stls_dns_tlsa_result_t *r);
int stls__dns_parse_txt(const unsigned char *abuf, size_t alen,
                        const char *qname, stls_dns_txt_result_t *r);

/* Would the program accept this response? The check c-ares lacks (every
 * question and answer name, CNAME target and MX exchange keeping to the
 * compression rules: pointers go back, never into the header; an MX
 * exchange filling its RDATA; an ANCOUNT that fits), then c-ares 1.34's
 * ares_dns_parse. 0, UV_ENOMEM or UV_EINVAL. The resolver runs the same
 * check on every response it reads. */
int stls__dns_answer_check(const unsigned char *abuf, size_t alen);

/* The AD flag of a response (RFC 4035 3.2.3) as c-ares parses it (false
 * for a response it refuses), meaningful only when the rcode is NOERROR
 * or NXDOMAIN. */
bool stls__dns_answer_ad(const unsigned char *abuf, size_t alen);

/* Internal: the MX rules as pure functions, for unit tests. */

/* One MX record as it came from the answer. host "" is the root (".").*/
typedef struct {
  unsigned preference;
  const char *host;
} stls__dns_mx_rr_t;

/* The MX records of an answer (owned by qname or by an alias reached from
 * it), in answer order, hosts as c-ares parses them (no trailing dot, ""
 * for the root). Returns 0, UV_ENOMEM or UV_EINVAL (malformed answer,
 * among them a name with a compression pointer into the header). Free
 * the array with stls__dns_mx_rr_free. */
int stls__dns_parse_mx(const unsigned char *abuf, size_t alen,
                       const char *qname, stls__dns_mx_rr_t **rr, size_t *nrr);
void stls__dns_mx_rr_free(stls__dns_mx_rr_t *rr, size_t n);

/* Apply the MX rules to the MX lookup's outcome and fill r->status,
 * r->error, r->implicit_mx, r->null_mx, r->null_mx_mixed, r->mx_truncated
 * and r->mx (hosts only, status NOT_QUERIED): mx_status OK with records
 * -> sorted, de-duplicated hosts, capped at max_mx; OK with no records
 * (NODATA) -> the domain itself as implicit MX; a lone "." -> NULL_MX;
 * any other status -> that status and error. Returns 0 or UV_ENOMEM. */
int stls__dns_classify_mx(stls_dns_result_t *r, const char *domain,
                          stls_dns_status_t mx_status,
                          stls_dns_error_t mx_error,
                          const stls__dns_mx_rr_t *rr, size_t nrr,
                          unsigned max_mx);

/* Sort MX hosts into delivery order: preference ascending, ties by host
 * name in byte order (deterministic across runs, unlike the resolver's
 * round-robin answer order). */
void stls__dns_mx_sort(stls_dns_mx_t *mx, size_t n);

/* Status and error for a c-ares status code. */
stls_dns_status_t stls__dns_status_from_ares(int ares_status,
                                             stls_dns_error_t *err);

/* Settle a host's status from its per-family lookups, and the domain's
 * status from its hosts (OK if any host has an address; else a transient
 * host failure if there was one, since a retry may succeed; else
 * NO_ADDRESS). */
void stls__dns_settle(stls_dns_result_t *r);

#endif
