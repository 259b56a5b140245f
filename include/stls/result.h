/* The result model: what a probe found, before anyone turns it into JSON.
 *
 * Protocol code fills these structs; only the writer (writer.h) renders
 * them. Facts are kept apart (trusted, name matched, expired) so policy can
 * be computed on top of them.
 */
#ifndef STLS_RESULT_H
#define STLS_RESULT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One list of host statuses: enum, JSON name, human message. */
#define STLS_HOST_STATUS_MAP(XX)                                               \
  XX(SUCCESS, "success", "STARTTLS and TLS handshake completed")               \
  XX(SKIPPED, "skipped", "probe not attempted")                                \
  XX(NETWORK_UNREACHABLE, "network-unreachable", "network is unreachable")     \
  XX(CONNECTION_REFUSED, "connection-refused", "connection refused")           \
  XX(CONNECTION_TIMEOUT, "connection-timeout", "connection timed out")         \
  XX(CONNECTION_ERROR, "connection-error", "connection failed")                \
  XX(GREETING_REJECTED, "greeting-rejected", "server rejected the session")    \
  XX(IO_TIMEOUT, "io-timeout", "server stopped answering")                     \
  XX(PROTOCOL_ERROR, "protocol-error", "SMTP protocol error")                  \
  XX(STARTTLS_NOT_SUPPORTED, "starttls-not-supported", "STARTTLS not offered") \
  XX(STARTTLS_REJECTED, "starttls-rejected", "STARTTLS command rejected")      \
  XX(HANDSHAKE_ERROR, "handshake-error", "TLS handshake failed")               \
  XX(BLOCKED, "blocked", "address not allowed (private or special-purpose)")

typedef enum {
#define XX(name, json, msg) STLS_HOST_##name,
  STLS_HOST_STATUS_MAP(XX)
#undef XX
      STLS_HOST_STATUS_COUNT
} stls_host_status_t;

/* Session stages; every error and timeout is tagged with one. */
#define STLS_STAGE_MAP(XX)                                                     \
  XX(NONE, "none")                                                             \
  XX(CONNECT, "connect")                                                       \
  XX(GREETING, "greeting")                                                     \
  XX(EHLO, "ehlo")                                                             \
  XX(HELO, "helo")                                                             \
  XX(STARTTLS, "starttls")                                                     \
  XX(HANDSHAKE, "handshake")                                                   \
  XX(EHLO_TLS, "ehlo_tls")                                                     \
  XX(QUIT, "quit")                                                             \
  XX(DONE, "done")

typedef enum {
#define XX(name, json) STLS_STAGE_##name,
  STLS_STAGE_MAP(XX)
#undef XX
      STLS_STAGE_COUNT
} stls_stage_t;

const char *stls_host_status_name(stls_host_status_t s);
const char *stls_host_status_message(stls_host_status_t s);
const char *stls_stage_name(stls_stage_t s);

/* Why a probe failed, as data: decisions (retry, legacy detection) compare
 * these, and only the writer turns them into the JSON code. XX(NAME, code,
 * message): code is the JSON "code" string, or NULL for the four causes
 * whose code is made from the error's detail:
 *   ERRNO       detail is a libuv error number; code is its name (EPIPE)
 *   SMTP_REPLY  detail is the reply code; code "SMTP_<code>"
 *   TLS_ALERT   detail is the alert description; "TLS_ALERT_<NAME>"
 *   OTHER       a code given as text (stls_host_result_fail), kept as is */
#define STLS_CAUSE_MAP(XX)                                                     \
  XX(NONE, "NONE", "no error")                                                 \
  XX(OTHER, NULL, "failure")                                                   \
  XX(ERRNO, NULL, "system error")                                              \
  XX(SMTP_REPLY, NULL, "the server rejected a command")                        \
  XX(TLS_ALERT, NULL, "the server sent a TLS alert")                           \
  XX(ECONNREFUSED, "ECONNREFUSED", "connection refused")                       \
  XX(ECONNRESET, "ECONNRESET", "connection reset by peer")                     \
  XX(ETIMEDOUT, "ETIMEDOUT", "timed out")                                      \
  XX(ENETUNREACH, "ENETUNREACH", "network is unreachable")                     \
  XX(EHOSTUNREACH, "EHOSTUNREACH", "no route to host")                         \
  XX(EADDRNOTAVAIL, "EADDRNOTAVAIL", "cannot assign requested address")        \
  XX(EIO, "EIO", "input/output error")                                         \
  XX(ENOMEM, "ENOMEM", "out of memory")                                        \
  XX(EINVAL, "EINVAL", "invalid argument")                                     \
  XX(EOF, "EOF", "server closed the connection")                               \
  XX(LINE_TOO_LONG, "LINE_TOO_LONG", "reply line too long")                    \
  XX(REPLY_TOO_LONG, "REPLY_TOO_LONG", "reply too long")                       \
  XX(BAD_REPLY, "BAD_REPLY", "malformed reply")                                \
  XX(TLS_ERROR, "TLS_ERROR", "TLS failure")                                    \
  XX(CERT_MESSAGE_TOO_LARGE, "CERTIFICATE_MESSAGE_TOO_LARGE",                  \
     "the server's certificate message is larger than this client receives")   \
  XX(TLS_LEGACY_ONLY, "TLS_LEGACY_ONLY",                                       \
     "the server speaks only a TLS version older than 1.2")                    \
  XX(ADDRESS_NOT_ALLOWED, "ADDRESS_NOT_ALLOWED",                               \
     "address not allowed (private or special-purpose)")                       \
  XX(NO_IPV6_ROUTE, "NO_IPV6_ROUTE", "no IPv6 route")                          \
  XX(IPV6_DISABLED, "IPV6_DISABLED", "IPv6 turned off (--ipv6 off)")

typedef enum {
#define XX(name, code, msg) STLS_CAUSE_##name,
  STLS_CAUSE_MAP(XX)
#undef XX
      STLS_CAUSE_COUNT
} stls_cause_t;

typedef struct stls_error_s {
  bool set;
  stls_stage_t stage;
  stls_cause_t cause;
  int detail; /* see STLS_CAUSE_MAP; 0 otherwise */
  /* The code as text, for OTHER and for callers that still print it; the
   * writer uses stls_error_code(). */
  char code[48];
  char message[256]; /* human text */
} stls_error_t;

/* The cause for a libuv error (UV_EOF, UV_ECONNRESET, ...): one of the
 * named causes, else ERRNO with *detail set to err. */
stls_cause_t stls_cause_from_uv(int err, int *detail);
/* The JSON code of an error ("ECONNREFUSED", "SMTP_421", ...) into buf;
 * returns buf. */
const char *stls_error_code(const stls_error_t *e, char *buf, size_t len);
/* The cause's default message. */
const char *stls_cause_message(stls_cause_t c);

/* A growable list of owned strings. */
typedef struct stls_strlist_s {
  char **v;
  size_t n, cap;
} stls_strlist_t;

int stls_strlist_push(stls_strlist_t *l, const char *s);
int stls_strlist_pushn(stls_strlist_t *l, const char *s, size_t len);
void stls_strlist_free(stls_strlist_t *l);
/* Deep copy into an empty dst; on failure dst holds a partial copy. */
int stls_strlist_copy(stls_strlist_t *dst, const stls_strlist_t *src);

typedef struct stls_cert_s {
  char *subject;
  char *issuer;
  char *subject_cn; /* last CN of the subject, or NULL */
  stls_strlist_t san_dns;
  char not_before[24]; /* RFC 3339 */
  char not_after[24];
  char key_type[16]; /* "RSA", "EC", ... */
  int key_bits;
  char sig_alg[48]; /* OpenSSL-style name */
  char serial[132]; /* hex */
  char sha256[65];  /* of the DER certificate */
  char spki_sha256[65];
  bool self_issued; /* subject == issuer */
  /* The certificate as sent (DER), for DANE matching; the SPKI is
   * der[spki_off .. spki_off + spki_len). Not written to JSON. */
  unsigned char *der;
  size_t der_len, spki_off, spki_len;
} stls_cert_t;

/* Trust failure reasons, as flags and JSON names. */
#define STLS_TRUST_REASON_MAP(XX)                                              \
  XX(UNTRUSTED_ISSUER, "untrusted-issuer")                                     \
  XX(EXPIRED, "expired")                                                       \
  XX(NOT_YET_VALID, "not-yet-valid")                                           \
  XX(BAD_SIGNATURE, "bad-signature")                                           \
  XX(REVOKED, "revoked")                                                       \
  XX(BAD_KEY, "bad-key")                                                       \
  XX(CHAIN_TOO_LONG, "chain-too-long")                                         \
  XX(OTHER, "other")

enum {
#define XX(name, json) STLS_TRUST_BIT_##name,
  STLS_TRUST_REASON_MAP(XX)
#undef XX
      STLS_TRUST_REASON_COUNT
};
#define STLS_TRUST_REASON(name) (1u << STLS_TRUST_BIT_##name)
const char *stls_trust_reason_name(unsigned bit);

/* Trust in one named store (--trust-store NAME=FILE). */
typedef struct stls_store_trust_s {
  char name[32];
  bool trusted;           /* verifies with the certificates as sent */
  unsigned reasons;       /* STLS_TRUST_REASON() bits when not */
  bool trusted_with_pool; /* ... once known intermediates may fill gaps */
} stls_store_trust_t;

struct stls_chain_facts_s; /* chain.h */

typedef struct stls_tls_result_s {
  char version[16];     /* "TLSv1.3" */
  char cipher_name[64]; /* IANA name */
  uint16_t cipher_id;   /* IANA two-byte id */
  stls_cert_t *chain;   /* as sent by the server, leaf first */
  size_t n_chain;
  bool trusted;           /* chain verifies against the trust store(s) */
  unsigned trust_reasons; /* STLS_TRUST_REASON() bits when not trusted */
  /* Leaf names the MX host (RFC 6125, names.h). Whether it names the
   * recipient domain is not kept here: one probe serves every domain
   * whose MX it is, so the writer asks names.h per domain. */
  bool name_mx;
  bool expired; /* leaf is past notAfter */
  /* The server only speaks this older version ("TLSv1.0"); the facts
   * above then come from a hand-built handshake read off the wire. */
  char legacy_only[16];
  /* Handshake facts mbedTLS keeps to itself, read off the wire: key
   * exchange group (TLS 1.3 key_share, TLS 1.2 ECDHE curve), server
   * signature scheme, and TLS 1.2 extensions. 0 / false when unknown. */
  uint16_t group;
  uint16_t sigalg;
  bool handshake_seen; /* the fields below were observed */
  /* TLS 1.3: the server answered the first ClientHello with a
   * HelloRetryRequest (it wanted a key share for another group). */
  bool hello_retry;
  bool ocsp_stapled; /* TLS 1.2: CertificateStatus with a response */
  bool secure_renegotiation;
  bool extended_master_secret;
  stls_store_trust_t *stores; /* every trust store, [0] is `trusted` */
  size_t n_stores;
  struct stls_chain_facts_s *facts; /* chain quality, or NULL */
} stls_tls_result_t;

#define STLS_MAX_FINDINGS 8

typedef struct stls_finding_s {
  char id[40];
  char message[200];
} stls_finding_t;

/* Per-step timing in milliseconds; -1 when the step was not reached. */
typedef struct stls_timing_s {
  int64_t connect, greeting, ehlo, starttls, handshake, ehlo_tls, total;
} stls_timing_t;

/* Protocol versions (--versions): accepted or not, and how we know. */
#define STLS_VERSION_MAP(XX)                                                   \
  XX(SSL3, "SSLv3", 0x0300)                                                    \
  XX(TLS10, "TLSv1.0", 0x0301)                                                 \
  XX(TLS11, "TLSv1.1", 0x0302)                                                 \
  XX(TLS12, "TLSv1.2", 0x0303)                                                 \
  XX(TLS13, "TLSv1.3", 0x0304)

enum {
#define XX(name, json, wire) STLS_VER_##name,
  STLS_VERSION_MAP(XX)
#undef XX
      STLS_VER_COUNT
};
const char *stls_version_label(unsigned v); /* "TLSv1.0" */
uint16_t stls_version_wire(unsigned v);     /* 0x0301 */

typedef struct stls_version_probe_s {
  signed char accepted; /* -1 unknown, 0 no, 1 yes */
  char how[72];         /* "handshake", "server-hello", "alert ...", ... */
} stls_version_probe_t;

typedef struct stls_host_result_s {
  char *mx;    /* the MX host name (or the address for literals) */
  char ip[64]; /* canonical text form */
  int port;
  int family; /* 4 or 6 */
  stls_host_status_t status;
  stls_error_t error;
  char *banner; /* greeting reply text, or NULL */
  bool ehlo_done;
  bool used_helo;
  char *ehlo_reply;
  stls_strlist_t ehlo_ext;
  bool starttls_offered;
  char *starttls_reply;
  bool tls_done;
  bool tls_legacy; /* no session of ours, but tls holds what a hand-built
                      handshake showed (tls.legacy_only) */
  stls_tls_result_t tls;
  char *ehlo_tls_reply;
  stls_strlist_t ehlo_tls_ext;
  /* Allocated on the first finding (most hosts have none), at most
   * STLS_MAX_FINDINGS. */
  stls_finding_t *findings;
  size_t n_findings;
  stls_timing_t timing;
  bool versions_probed;
  stls_version_probe_t versions[STLS_VER_COUNT];
} stls_host_result_t;

/* Initialise an empty result for mx/ip/port. Returns 0 or -1 (ENOMEM). */
int stls_host_result_init(stls_host_result_t *r, const char *mx, const char *ip,
                          int port);
void stls_host_result_free(stls_host_result_t *r);
/* Record a finding (silently dropped past the fixed capacity). */
void stls_host_result_add_finding(stls_host_result_t *r, const char *id,
                                  const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Set status plus error in one step; fmt may be NULL (the cause's
 * message). detail as in STLS_CAUSE_MAP. */
void stls_host_result_fail_cause(stls_host_result_t *r, stls_host_status_t st,
                                 stls_stage_t stage, stls_cause_t cause,
                                 int detail, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
/* The same with the code as text: a code of the cause table becomes that
 * cause, anything else is kept as OTHER. */
void stls_host_result_fail(stls_host_result_t *r, stls_host_status_t st,
                           stls_stage_t stage, const char *code,
                           const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Is this failure worth one more try later: a 421 reply (the server is
 * busy or shutting down) or a connection reset (often load shedding)? */
bool stls_host_result_retryable(const stls_host_result_t *r);
/* Is there a finding with this id? */
bool stls_host_result_has_finding(const stls_host_result_t *r, const char *id);
/* Failed for a shortage on this machine (out of descriptors), not because
 * of the host: never a host's status. */
bool stls_host_result_local_error(const stls_host_result_t *r);
/* Deep copy (for results shared between domains). */
int stls_host_result_copy(stls_host_result_t *dst,
                          const stls_host_result_t *src);

void stls_cert_free(stls_cert_t *c);
/* Free what a TLS result owns (chain, stores, facts); leaves it empty. */
void stls_tls_result_free(stls_tls_result_t *t);

#endif
