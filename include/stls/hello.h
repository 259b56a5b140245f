/* TLS handshake messages without a TLS library: a ClientHello builder for
 * any protocol version from SSLv3 to TLS 1.2, and a strict, bounded,
 * incremental parser of what a server sends back.
 *
 * mbedTLS 3.6 speaks only TLS 1.2 and 1.3, so whether a server still accepts
 * TLS 1.0 or 1.1 (or SSLv3) is learnt by sending a hand-built ClientHello and
 * reading the ServerHello version or the alert. The same parser, fed the
 * bytes a server sends during a normal mbedTLS handshake, also reports what
 * mbedTLS keeps to itself: the key exchange group, the TLS 1.2 server
 * signature algorithm, OCSP stapling, secure renegotiation and extended
 * master secret.
 *
 * Everything here is pure: no I/O, no allocation, no global state.
 *
 * As a version probe: after the 220 reply to STARTTLS, send the record from
 * stls_hello_build(STLS_TLS_1_0, ...), feed every byte read back to
 * stls_hello_parser_feed() until it returns DONE or ERROR, the peer closes
 * or a timeout fires, then close without finishing the handshake.
 * stls_hello_accepted() gives the verdict; kind and alert_desc say how the
 * server refused (protocol_version, handshake_failure and internal_error
 * are all seen in practice). A TLS 1.2 probe with STLS_HELLO_OCSP also
 * shows OCSP stapling, which mbedTLS never asks for.
 *
 * As a sniffer: feed a second parser every byte the server sends after the
 * 220 reply, exactly as they go to mbedTLS, and read the result once the
 * handshake is over. It stops by itself at the end of the plaintext part
 * of the handshake: after a TLS 1.3 ServerHello (the certificate and its
 * signature are encrypted, so sigalg and the OCSP facts stay unknown
 * there) or at a TLS 1.2 ServerHelloDone.
 */
#ifndef STLS_HELLO_H
#define STLS_HELLO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Protocol versions as they appear on the wire. */
#define STLS_TLS_SSL3 0x0300
#define STLS_TLS_1_0 0x0301
#define STLS_TLS_1_1 0x0302
#define STLS_TLS_1_2 0x0303
#define STLS_TLS_1_3 0x0304

/* Flags for stls_hello_build(). */
#define STLS_HELLO_OCSP 0x1u /* offer status_request (OCSP stapling) */

/* An output buffer of this size always holds a ClientHello. */
#define STLS_HELLO_BUILD_MAX 1024

/* Build one TLS record (content type 22) holding a ClientHello whose
 * legacy_version is `version` (STLS_TLS_SSL3 .. STLS_TLS_1_2), so the server
 * picks at most that version. The record version is 0x0301 (0x0300 for
 * SSLv3), as deployed clients send it.
 *
 * Cipher suites: ECDHE and DHE (RSA/ECDSA) and RSA key exchange with AES-CBC
 * and 3DES; TLS 1.2 adds AES-GCM, ChaCha20-Poly1305 and the SHA-256/384 CBC
 * suites; SSLv3 gets no ECDHE (it has no extensions to negotiate a curve)
 * but RC4, because servers that still speak SSLv3 often have nothing else.
 * TLS_EMPTY_RENEGOTIATION_INFO_SCSV is always listed; TLS_FALLBACK_SCSV is
 * never listed, since it would make a server that supports a higher version
 * refuse the probe with inappropriate_fallback.
 *
 * Extensions (none for SSLv3): server_name when sni is a host name (not
 * NULL, empty, an IP literal, over 253 bytes or holding bytes outside
 * printable ASCII; one trailing dot is dropped), supported_groups (x25519,
 * secp256r1, secp384r1, secp521r1, x448, ffdhe2048..8192), ec_point_formats,
 * signature_algorithms (TLS 1.2 only), status_request (with
 * STLS_HELLO_OCSP), extended_master_secret, and padding when the message
 * would otherwise be 256..511 bytes long (RFC 7685; some middleboxes hang on
 * that size). No session ticket, no session id, no TLS 1.3.
 *
 * random must point to 32 bytes (use a CSPRNG: a predictable random does not
 * break the probe, but it is what every ClientHello deserves). Returns the
 * bytes written to out, or 0 if outlen is too small or an argument is
 * invalid. */
size_t stls_hello_build(uint16_t version, const char *sni, unsigned flags,
                        const uint8_t random[32], uint8_t *out, size_t outlen);

/* Limits that keep a hostile server from making us use unbounded memory or
 * time. Only the messages read field by field (ServerHello,
 * ServerKeyExchange, CertificateStatus) are buffered, each up to
 * STLS_HELLO_MAX_MESSAGE bytes; a Certificate is walked and the rest is
 * skipped by length as they stream past, so long chains cost nothing. */
#define STLS_HELLO_MAX_MESSAGE 16384
#define STLS_HELLO_MAX_FLIGHT 1048576 /* bytes read without a conclusion */
#define STLS_HELLO_MAX_MESSAGES 32    /* handshake messages in the flight */
#define STLS_HELLO_MAX_EXT 32         /* extensions in one ServerHello */
#define STLS_HELLO_MAX_RECORD 16384   /* plaintext record body (RFC 5246) */

typedef enum {
  STLS_HELLO_NEED_MORE = 0, /* all input consumed, no conclusion yet */
  STLS_HELLO_DONE = 1,      /* concluded; see the result (sticky) */
  STLS_HELLO_ERROR = -1     /* malformed TLS; see result.error (sticky) */
} stls_hello_rc_t;

/* What the server answered with: the first thing that decides the probe.
 * XX(enum suffix, name). */
#define STLS_HELLO_KIND_MAP(XX)                                                \
  XX(NONE, "none")                 /* nothing conclusive yet */                \
  XX(SERVER_HELLO, "server-hello") /* a ServerHello (maybe after a warning) */ \
  XX(ALERT, "alert")               /* an alert and no ServerHello */           \
  XX(SSL2, "ssl2")                 /* an SSLv2 SERVER-HELLO or ERROR */        \
  XX(GARBAGE, "garbage")           /* bytes that are not TLS at all */

typedef enum {
#define STLS_HELLO_KIND_ENUM(id, name) STLS_HELLO_KIND_##id,
  STLS_HELLO_KIND_MAP(STLS_HELLO_KIND_ENUM)
#undef STLS_HELLO_KIND_ENUM
} stls_hello_kind_t;

/* Key exchange of the selected cipher suite. XX(enum suffix, name). */
#define STLS_HELLO_KX_MAP(XX)                                                  \
  XX(UNKNOWN, "unknown") /* suite not in our table */                          \
  XX(NONE, "none")       /* a signalling value, not a real suite */            \
  XX(RSA, "RSA")         /* static RSA: no forward secrecy */                  \
  XX(DHE, "DHE")                                                               \
  XX(ECDHE, "ECDHE")                                                           \
  XX(DH_ANON, "DH_anon")                                                       \
  XX(ECDH_ANON, "ECDH_anon")                                                   \
  XX(TLS13, "TLS1.3") /* ECDHE or DHE chosen by key_share */

typedef enum {
#define STLS_HELLO_KX_ENUM(id, name) STLS_HELLO_KX_##id,
  STLS_HELLO_KX_MAP(STLS_HELLO_KX_ENUM)
#undef STLS_HELLO_KX_ENUM
} stls_hello_kx_t;

/* Everything learnt from the server's bytes. Fields are filled as the
 * messages arrive and stay valid after DONE or ERROR (an ERROR in the
 * Certificate keeps what the ServerHello said). Zero means "not seen". */
typedef struct stls_hello_result_s {
  stls_hello_kind_t kind;
  size_t consumed; /* bytes used up to the conclusion (or so far) */
  char error[128]; /* why the parse failed, "" unless ERROR */

  /* Alerts. A fatal alert (or close_notify) ends the parse; a warning one
   * (say unrecognized_name before the ServerHello) is noted and passed. */
  bool alert;
  uint8_t alert_level; /* 1 warning, 2 fatal */
  uint8_t alert_desc;  /* 70 protocol_version, 40 handshake_failure, ... */

  uint8_t ssl2_msg_type; /* kind SSL2: 4 SERVER-HELLO, 0 ERROR */

  /* ServerHello. A HelloRetryRequest sets only hello_retry and
   * hello_retry_group (kind stays what it was); these fields describe the
   * real ServerHello that must follow it. */
  uint16_t record_version; /* of the record that carried it */
  uint16_t legacy_version;
  uint16_t version; /* negotiated: supported_versions or legacy */
  uint16_t cipher;
  stls_hello_kx_t kx;
  uint8_t compression; /* 0 null; anything else is a finding */
  uint8_t session_id_len;
  bool hello_retry; /* a HelloRetryRequest came (TLS 1.3) */
  uint16_t hello_retry_group;
  /* RFC 8446 4.1.3 downgrade sentinel in the server random: 12 when the
   * server could do TLS 1.3 but chose 1.2, 11 when it could do TLS 1.2 or
   * 1.3 but chose 1.1 or lower, else 0. */
  uint8_t downgrade;
  size_t n_ext;
  uint16_t ext[STLS_HELLO_MAX_EXT]; /* extension types, in order */
  bool status_request;              /* 5 echoed: a staple will follow */
  bool secure_renegotiation;        /* renegotiation_info (0xff01) */
  bool extended_master_secret;      /* 23 */
  bool encrypt_then_mac;            /* 22 */

  /* Key exchange: the TLS 1.3 key_share group, or the TLS 1.2 ECDHE
   * named curve from the ServerKeyExchange; 0 when unknown (RSA key
   * exchange, DHE, explicit curves). */
  uint16_t group;
  unsigned dh_bits; /* DHE: bits of the prime p */
  uint16_t sigalg;  /* TLS 1.2 ServerKeyExchange signature scheme */
  bool server_key_exchange;

  /* The rest of a TLS <= 1.2 flight. */
  bool certificate;
  size_t certificate_len; /* bytes of the Certificate message body */
  unsigned cert_count;
  bool ocsp_staple; /* CertificateStatus with an OCSP response */
  size_t ocsp_len;
  bool cert_request; /* the server asks for a client certificate */
  bool server_hello_done;
  bool change_cipher_spec; /* TLS <= 1.2 resumption: CCS ended the flight */
} stls_hello_result_t;

/* Parser state. A plain struct so it can live inside a session without an
 * extra allocation (about 17 KB: keep it off small stacks). Read what it
 * learnt through stls_hello_parser_result(); the fields are private. */
typedef struct stls_hello_parser_s {
  stls_hello_result_t res;
  stls_hello_rc_t rc;
  size_t total;     /* bytes consumed */
  bool seen_record; /* a valid record header was read */
  bool in_record;
  uint8_t rec_hdr[5];
  size_t rec_hdr_len;
  uint8_t rec_type;
  size_t rec_left; /* body bytes of the current record to come */
  uint8_t ctl[2];  /* alert or ChangeCipherSpec body */
  size_t ctl_len;
  uint8_t hs_hdr[4]; /* handshake message header */
  size_t hs_hdr_len;
  uint8_t hs_type;
  size_t hs_len;
  size_t hs_left;
  unsigned hs_count;
  int stage;      /* rank of the last handshake message */
  int cert_state; /* walking a Certificate message */
  uint8_t cert_num[3];
  size_t cert_num_len;
  size_t cert_list_left;
  size_t cert_skip;
  size_t buf_len;
  uint8_t buf[STLS_HELLO_MAX_MESSAGE];
} stls_hello_parser_t;

/* Start (or restart) a parser. */
void stls_hello_parser_init(stls_hello_parser_t *p);

/* Feed the next len bytes the server sent, in any split. Returns
 * STLS_HELLO_DONE once it can say what happened: a fatal alert, SSLv2 or
 * garbage; a TLS 1.3 ServerHello (the rest is encrypted); a TLS <= 1.2
 * flight up to ServerHelloDone, or up to ChangeCipherSpec when the server
 * resumed a session. Bytes after the conclusion are ignored; result.consumed
 * says where it was. STLS_HELLO_ERROR when the bytes look like TLS but
 * break its rules (inconsistent lengths, messages out of order, a message
 * or flight over the limits above). NEED_MORE otherwise: if the peer then
 * closes or times out, the result still holds what arrived (result.kind
 * SERVER_HELLO is enough to answer a version probe). */
stls_hello_rc_t stls_hello_parser_feed(stls_hello_parser_t *p,
                                       const uint8_t *data, size_t len);

/* What has been learnt so far (valid in any state). */
const stls_hello_result_t *
stls_hello_parser_result(const stls_hello_parser_t *p);

/* Did the server accept `offered` (the legacy_version of a probe built by
 * stls_hello_build) as the protocol version? True only for a ServerHello
 * that selected exactly that version: a server that answers with a lower
 * one lacks the offered version, and one that answers with a higher one
 * broke the protocol. */
bool stls_hello_accepted(const stls_hello_result_t *r, uint16_t offered);

/* Names, or NULL for a value not in the table. */
const char *stls_hello_kind_name(stls_hello_kind_t kind); /* "server-hello" */
const char *stls_hello_kx_name(stls_hello_kx_t kx);       /* "ECDHE" */
/* "SSLv3", "TLSv1.0" .. "TLSv1.3" (also "SSLv2" for 0x0002). */
const char *stls_tls_version_name(uint16_t version);
/* IANA names of the groups: "x25519", "secp256r1", "ffdhe2048",
 * "X25519MLKEM768", ... */
const char *stls_tls_group_name(uint16_t group);
/* IANA names of the signature schemes: "rsa_pss_rsae_sha256",
 * "ecdsa_secp256r1_sha256", "rsa_pkcs1_sha256", "ed25519", ... */
const char *stls_tls_sigalg_name(uint16_t sigalg);
/* IANA names of the cipher suites we offer and the common TLS 1.2/1.3
 * ones: "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "TLS_AES_128_GCM_SHA256". */
const char *stls_tls_cipher_iana_name(uint16_t suite);
/* Key exchange of a cipher suite (STLS_HELLO_KX_UNKNOWN if not in the
 * table). */
stls_hello_kx_t stls_tls_cipher_kx(uint16_t suite);

#endif
