/* TLS handshake messages without a TLS library (RFC 5246, RFC 8446): a
 * ClientHello builder for SSLv3 .. TLS 1.2 probes and a strict, bounded,
 * incremental parser of the server's reply.
 *
 * The parser has two layers. The record layer reads 5-byte headers and hands
 * record bodies on; the handshake layer reassembles messages that span
 * records (or share one) and acts on each complete message. Only messages we
 * read field by field (ServerHello, ServerKeyExchange, CertificateStatus)
 * are buffered, up to STLS_HELLO_MAX_MESSAGE; a Certificate is walked as it
 * streams past (so long chains cost no memory) and the rest is skipped by
 * length. Every length is checked against the one that encloses it before a
 * byte under it is read, and any inconsistency ends the parse with a reason.
 */
#include "stls/hello.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

/* Record content types. */
enum { REC_CCS = 20, REC_ALERT = 21, REC_HANDSHAKE = 22, REC_APPDATA = 23 };

/* Handshake message types a server sends in its first flight. */
enum {
  HS_HELLO_REQUEST = 0,
  HS_CLIENT_HELLO = 1,
  HS_SERVER_HELLO = 2,
  HS_NEW_SESSION_TICKET = 4,
  HS_CERTIFICATE = 11,
  HS_SERVER_KEY_EXCHANGE = 12,
  HS_CERTIFICATE_REQUEST = 13,
  HS_SERVER_HELLO_DONE = 14,
  HS_CERTIFICATE_STATUS = 22
};

/* Extension types we send or read. */
enum {
  EXT_SERVER_NAME = 0,
  EXT_STATUS_REQUEST = 5,
  EXT_SUPPORTED_GROUPS = 10,
  EXT_EC_POINT_FORMATS = 11,
  EXT_SIGNATURE_ALGORITHMS = 13,
  EXT_PADDING = 21,
  EXT_ENCRYPT_THEN_MAC = 22,
  EXT_EXTENDED_MASTER_SECRET = 23,
  EXT_SUPPORTED_VERSIONS = 43,
  EXT_KEY_SHARE = 51,
  EXT_RENEGOTIATION_INFO = 0xff01
};

/* ------------------------------------------------------------------------ */
/* Name tables */

typedef struct {
  uint16_t id;
  const char *name;
} named_t;

typedef struct {
  uint16_t id;
  stls_hello_kx_t kx;
  const char *name;
} suite_t;

/* One table of cipher suites: IANA name and key exchange. The lists we
 * offer below are drawn from it, so an offered suite always has a name. */
static const suite_t suites[] = {
    /* TLS 1.3 */
    {0x1301, STLS_HELLO_KX_TLS13, "TLS_AES_128_GCM_SHA256"},
    {0x1302, STLS_HELLO_KX_TLS13, "TLS_AES_256_GCM_SHA384"},
    {0x1303, STLS_HELLO_KX_TLS13, "TLS_CHACHA20_POLY1305_SHA256"},
    {0x1304, STLS_HELLO_KX_TLS13, "TLS_AES_128_CCM_SHA256"},
    {0x1305, STLS_HELLO_KX_TLS13, "TLS_AES_128_CCM_8_SHA256"},
    /* ECDHE */
    {0xc007, STLS_HELLO_KX_ECDHE, "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA"},
    {0xc008, STLS_HELLO_KX_ECDHE, "TLS_ECDHE_ECDSA_WITH_3DES_EDE_CBC_SHA"},
    {0xc009, STLS_HELLO_KX_ECDHE, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA"},
    {0xc00a, STLS_HELLO_KX_ECDHE, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA"},
    {0xc011, STLS_HELLO_KX_ECDHE, "TLS_ECDHE_RSA_WITH_RC4_128_SHA"},
    {0xc012, STLS_HELLO_KX_ECDHE, "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA"},
    {0xc013, STLS_HELLO_KX_ECDHE, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"},
    {0xc014, STLS_HELLO_KX_ECDHE, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA"},
    {0xc023, STLS_HELLO_KX_ECDHE, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256"},
    {0xc024, STLS_HELLO_KX_ECDHE, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384"},
    {0xc027, STLS_HELLO_KX_ECDHE, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256"},
    {0xc028, STLS_HELLO_KX_ECDHE, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384"},
    {0xc02b, STLS_HELLO_KX_ECDHE, "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"},
    {0xc02c, STLS_HELLO_KX_ECDHE, "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"},
    {0xc02f, STLS_HELLO_KX_ECDHE, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"},
    {0xc030, STLS_HELLO_KX_ECDHE, "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"},
    {0xc05c, STLS_HELLO_KX_ECDHE, "TLS_ECDHE_ECDSA_WITH_ARIA_128_GCM_SHA256"},
    {0xc05d, STLS_HELLO_KX_ECDHE, "TLS_ECDHE_ECDSA_WITH_ARIA_256_GCM_SHA384"},
    {0xc060, STLS_HELLO_KX_ECDHE, "TLS_ECDHE_RSA_WITH_ARIA_128_GCM_SHA256"},
    {0xc061, STLS_HELLO_KX_ECDHE, "TLS_ECDHE_RSA_WITH_ARIA_256_GCM_SHA384"},
    {0xc072, STLS_HELLO_KX_ECDHE,
     "TLS_ECDHE_ECDSA_WITH_CAMELLIA_128_CBC_SHA256"},
    {0xc073, STLS_HELLO_KX_ECDHE,
     "TLS_ECDHE_ECDSA_WITH_CAMELLIA_256_CBC_SHA384"},
    {0xc076, STLS_HELLO_KX_ECDHE, "TLS_ECDHE_RSA_WITH_CAMELLIA_128_CBC_SHA256"},
    {0xc077, STLS_HELLO_KX_ECDHE, "TLS_ECDHE_RSA_WITH_CAMELLIA_256_CBC_SHA384"},
    {0xc086, STLS_HELLO_KX_ECDHE,
     "TLS_ECDHE_ECDSA_WITH_CAMELLIA_128_GCM_SHA256"},
    {0xc087, STLS_HELLO_KX_ECDHE,
     "TLS_ECDHE_ECDSA_WITH_CAMELLIA_256_GCM_SHA384"},
    {0xc08a, STLS_HELLO_KX_ECDHE, "TLS_ECDHE_RSA_WITH_CAMELLIA_128_GCM_SHA256"},
    {0xc08b, STLS_HELLO_KX_ECDHE, "TLS_ECDHE_RSA_WITH_CAMELLIA_256_GCM_SHA384"},
    {0xc0ac, STLS_HELLO_KX_ECDHE, "TLS_ECDHE_ECDSA_WITH_AES_128_CCM"},
    {0xc0ad, STLS_HELLO_KX_ECDHE, "TLS_ECDHE_ECDSA_WITH_AES_256_CCM"},
    {0xc0ae, STLS_HELLO_KX_ECDHE, "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8"},
    {0xc0af, STLS_HELLO_KX_ECDHE, "TLS_ECDHE_ECDSA_WITH_AES_256_CCM_8"},
    {0xcca8, STLS_HELLO_KX_ECDHE,
     "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"},
    {0xcca9, STLS_HELLO_KX_ECDHE,
     "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"},
    /* DHE */
    {0x0013, STLS_HELLO_KX_DHE, "TLS_DHE_DSS_WITH_3DES_EDE_CBC_SHA"},
    {0x0016, STLS_HELLO_KX_DHE, "TLS_DHE_RSA_WITH_3DES_EDE_CBC_SHA"},
    {0x0032, STLS_HELLO_KX_DHE, "TLS_DHE_DSS_WITH_AES_128_CBC_SHA"},
    {0x0033, STLS_HELLO_KX_DHE, "TLS_DHE_RSA_WITH_AES_128_CBC_SHA"},
    {0x0038, STLS_HELLO_KX_DHE, "TLS_DHE_DSS_WITH_AES_256_CBC_SHA"},
    {0x0039, STLS_HELLO_KX_DHE, "TLS_DHE_RSA_WITH_AES_256_CBC_SHA"},
    {0x0040, STLS_HELLO_KX_DHE, "TLS_DHE_DSS_WITH_AES_128_CBC_SHA256"},
    {0x0045, STLS_HELLO_KX_DHE, "TLS_DHE_RSA_WITH_CAMELLIA_128_CBC_SHA"},
    {0x0067, STLS_HELLO_KX_DHE, "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256"},
    {0x006a, STLS_HELLO_KX_DHE, "TLS_DHE_DSS_WITH_AES_256_CBC_SHA256"},
    {0x006b, STLS_HELLO_KX_DHE, "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256"},
    {0x0088, STLS_HELLO_KX_DHE, "TLS_DHE_RSA_WITH_CAMELLIA_256_CBC_SHA"},
    {0x009e, STLS_HELLO_KX_DHE, "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256"},
    {0x009f, STLS_HELLO_KX_DHE, "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384"},
    {0x00a2, STLS_HELLO_KX_DHE, "TLS_DHE_DSS_WITH_AES_128_GCM_SHA256"},
    {0x00a3, STLS_HELLO_KX_DHE, "TLS_DHE_DSS_WITH_AES_256_GCM_SHA384"},
    {0x00be, STLS_HELLO_KX_DHE, "TLS_DHE_RSA_WITH_CAMELLIA_128_CBC_SHA256"},
    {0x00c4, STLS_HELLO_KX_DHE, "TLS_DHE_RSA_WITH_CAMELLIA_256_CBC_SHA256"},
    {0xc052, STLS_HELLO_KX_DHE, "TLS_DHE_RSA_WITH_ARIA_128_GCM_SHA256"},
    {0xc053, STLS_HELLO_KX_DHE, "TLS_DHE_RSA_WITH_ARIA_256_GCM_SHA384"},
    {0xc07c, STLS_HELLO_KX_DHE, "TLS_DHE_RSA_WITH_CAMELLIA_128_GCM_SHA256"},
    {0xc07d, STLS_HELLO_KX_DHE, "TLS_DHE_RSA_WITH_CAMELLIA_256_GCM_SHA384"},
    {0xc09e, STLS_HELLO_KX_DHE, "TLS_DHE_RSA_WITH_AES_128_CCM"},
    {0xc09f, STLS_HELLO_KX_DHE, "TLS_DHE_RSA_WITH_AES_256_CCM"},
    {0xccaa, STLS_HELLO_KX_DHE, "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256"},
    /* static RSA */
    {0x0004, STLS_HELLO_KX_RSA, "TLS_RSA_WITH_RC4_128_MD5"},
    {0x0005, STLS_HELLO_KX_RSA, "TLS_RSA_WITH_RC4_128_SHA"},
    {0x000a, STLS_HELLO_KX_RSA, "TLS_RSA_WITH_3DES_EDE_CBC_SHA"},
    {0x002f, STLS_HELLO_KX_RSA, "TLS_RSA_WITH_AES_128_CBC_SHA"},
    {0x0035, STLS_HELLO_KX_RSA, "TLS_RSA_WITH_AES_256_CBC_SHA"},
    {0x003c, STLS_HELLO_KX_RSA, "TLS_RSA_WITH_AES_128_CBC_SHA256"},
    {0x003d, STLS_HELLO_KX_RSA, "TLS_RSA_WITH_AES_256_CBC_SHA256"},
    {0x0041, STLS_HELLO_KX_RSA, "TLS_RSA_WITH_CAMELLIA_128_CBC_SHA"},
    {0x0084, STLS_HELLO_KX_RSA, "TLS_RSA_WITH_CAMELLIA_256_CBC_SHA"},
    {0x009c, STLS_HELLO_KX_RSA, "TLS_RSA_WITH_AES_128_GCM_SHA256"},
    {0x009d, STLS_HELLO_KX_RSA, "TLS_RSA_WITH_AES_256_GCM_SHA384"},
    {0x00ba, STLS_HELLO_KX_RSA, "TLS_RSA_WITH_CAMELLIA_128_CBC_SHA256"},
    {0x00c0, STLS_HELLO_KX_RSA, "TLS_RSA_WITH_CAMELLIA_256_CBC_SHA256"},
    {0xc050, STLS_HELLO_KX_RSA, "TLS_RSA_WITH_ARIA_128_GCM_SHA256"},
    {0xc051, STLS_HELLO_KX_RSA, "TLS_RSA_WITH_ARIA_256_GCM_SHA384"},
    {0xc07a, STLS_HELLO_KX_RSA, "TLS_RSA_WITH_CAMELLIA_128_GCM_SHA256"},
    {0xc07b, STLS_HELLO_KX_RSA, "TLS_RSA_WITH_CAMELLIA_256_GCM_SHA384"},
    {0xc09c, STLS_HELLO_KX_RSA, "TLS_RSA_WITH_AES_128_CCM"},
    {0xc09d, STLS_HELLO_KX_RSA, "TLS_RSA_WITH_AES_256_CCM"},
    /* anonymous (Postfix servers at "may" accept them) */
    {0x001b, STLS_HELLO_KX_DH_ANON, "TLS_DH_anon_WITH_3DES_EDE_CBC_SHA"},
    {0x0034, STLS_HELLO_KX_DH_ANON, "TLS_DH_anon_WITH_AES_128_CBC_SHA"},
    {0x003a, STLS_HELLO_KX_DH_ANON, "TLS_DH_anon_WITH_AES_256_CBC_SHA"},
    {0x006c, STLS_HELLO_KX_DH_ANON, "TLS_DH_anon_WITH_AES_128_CBC_SHA256"},
    {0x006d, STLS_HELLO_KX_DH_ANON, "TLS_DH_anon_WITH_AES_256_CBC_SHA256"},
    {0x00a6, STLS_HELLO_KX_DH_ANON, "TLS_DH_anon_WITH_AES_128_GCM_SHA256"},
    {0x00a7, STLS_HELLO_KX_DH_ANON, "TLS_DH_anon_WITH_AES_256_GCM_SHA384"},
    {0xc017, STLS_HELLO_KX_ECDH_ANON, "TLS_ECDH_anon_WITH_3DES_EDE_CBC_SHA"},
    {0xc018, STLS_HELLO_KX_ECDH_ANON, "TLS_ECDH_anon_WITH_AES_128_CBC_SHA"},
    {0xc019, STLS_HELLO_KX_ECDH_ANON, "TLS_ECDH_anon_WITH_AES_256_CBC_SHA"},
    /* signalling values */
    {0x00ff, STLS_HELLO_KX_NONE, "TLS_EMPTY_RENEGOTIATION_INFO_SCSV"},
    {0x5600, STLS_HELLO_KX_NONE, "TLS_FALLBACK_SCSV"},
};

static const named_t groups[] = {
    {0x0016, "secp256k1"},
    {0x0017, "secp256r1"},
    {0x0018, "secp384r1"},
    {0x0019, "secp521r1"},
    {0x001a, "brainpoolP256r1"},
    {0x001b, "brainpoolP384r1"},
    {0x001c, "brainpoolP512r1"},
    {0x001d, "x25519"},
    {0x001e, "x448"},
    {0x001f, "brainpoolP256r1tls13"},
    {0x0020, "brainpoolP384r1tls13"},
    {0x0021, "brainpoolP512r1tls13"},
    {0x0100, "ffdhe2048"},
    {0x0101, "ffdhe3072"},
    {0x0102, "ffdhe4096"},
    {0x0103, "ffdhe6144"},
    {0x0104, "ffdhe8192"},
    {0x11eb, "SecP256r1MLKEM768"},
    {0x11ec, "X25519MLKEM768"},
    {0x11ed, "SecP384r1MLKEM1024"},
    {0x6399, "X25519Kyber768Draft00"},
};

/* TLS 1.3 SignatureScheme names; the TLS 1.2 hash/signature pairs that
 * have no scheme name get the usual OpenSSL-style ones. */
static const named_t sigalgs[] = {
    {0x0101, "rsa_pkcs1_md5"},
    {0x0201, "rsa_pkcs1_sha1"},
    {0x0202, "dsa_sha1"},
    {0x0203, "ecdsa_sha1"},
    {0x0301, "rsa_pkcs1_sha224"},
    {0x0302, "dsa_sha224"},
    {0x0303, "ecdsa_sha224"},
    {0x0401, "rsa_pkcs1_sha256"},
    {0x0402, "dsa_sha256"},
    {0x0403, "ecdsa_secp256r1_sha256"},
    {0x0501, "rsa_pkcs1_sha384"},
    {0x0502, "dsa_sha384"},
    {0x0503, "ecdsa_secp384r1_sha384"},
    {0x0601, "rsa_pkcs1_sha512"},
    {0x0602, "dsa_sha512"},
    {0x0603, "ecdsa_secp521r1_sha512"},
    {0x0804, "rsa_pss_rsae_sha256"},
    {0x0805, "rsa_pss_rsae_sha384"},
    {0x0806, "rsa_pss_rsae_sha512"},
    {0x0807, "ed25519"},
    {0x0808, "ed448"},
    {0x0809, "rsa_pss_pss_sha256"},
    {0x080a, "rsa_pss_pss_sha384"},
    {0x080b, "rsa_pss_pss_sha512"},
    {0x081a, "ecdsa_brainpoolP256r1tls13_sha256"},
    {0x081b, "ecdsa_brainpoolP384r1tls13_sha384"},
    {0x081c, "ecdsa_brainpoolP512r1tls13_sha512"},
};

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static const char *named_find(const named_t *t, size_t n, uint16_t id) {
  size_t i;

  for (i = 0; i < n; i++)
    if (t[i].id == id)
      return t[i].name;
  return NULL;
}

static const suite_t *suite_find(uint16_t id) {
  size_t i;

  for (i = 0; i < ARRAY_LEN(suites); i++)
    if (suites[i].id == id)
      return &suites[i];
  return NULL;
}

/* Name of a reply kind. */
const char *stls_hello_kind_name(stls_hello_kind_t kind) {
  switch (kind) {
#define STLS_HELLO_KIND_NAME(id, name)                                         \
  case STLS_HELLO_KIND_##id: return name;
    STLS_HELLO_KIND_MAP(STLS_HELLO_KIND_NAME)
#undef STLS_HELLO_KIND_NAME
  }
  return NULL;
}

/* Name of a key exchange. */
const char *stls_hello_kx_name(stls_hello_kx_t kx) {
  switch (kx) {
#define STLS_HELLO_KX_NAME(id, name)                                           \
  case STLS_HELLO_KX_##id: return name;
    STLS_HELLO_KX_MAP(STLS_HELLO_KX_NAME)
#undef STLS_HELLO_KX_NAME
  }
  return NULL;
}

/* Name of a protocol version as the JSON output spells it. */
const char *stls_tls_version_name(uint16_t version) {
  switch (version) {
  case 0x0002: return "SSLv2";
  case STLS_TLS_SSL3: return "SSLv3";
  case STLS_TLS_1_0: return "TLSv1.0";
  case STLS_TLS_1_1: return "TLSv1.1";
  case STLS_TLS_1_2: return "TLSv1.2";
  case STLS_TLS_1_3: return "TLSv1.3";
  default: return NULL;
  }
}

/* IANA name of a named group. */
const char *stls_tls_group_name(uint16_t group) {
  return named_find(groups, ARRAY_LEN(groups), group);
}

/* IANA name of a signature scheme. */
const char *stls_tls_sigalg_name(uint16_t sigalg) {
  return named_find(sigalgs, ARRAY_LEN(sigalgs), sigalg);
}

/* IANA name of a cipher suite. */
const char *stls_tls_cipher_iana_name(uint16_t suite) {
  const suite_t *s = suite_find(suite);

  return s ? s->name : NULL;
}

/* Key exchange of a cipher suite. */
stls_hello_kx_t stls_tls_cipher_kx(uint16_t suite) {
  const suite_t *s = suite_find(suite);

  return s ? s->kx : STLS_HELLO_KX_UNKNOWN;
}

/* ------------------------------------------------------------------------ */
/* ClientHello builder */

/* What we offer. Forward secrecy first, then static RSA, then 3DES, as a
 * modern client orders them; a server that honours its own order is not
 * affected, and one that honours ours picks the best it has. */
static const uint16_t suites_tls12_only[] = {
    0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc02b, 0xc02f, 0xc024, 0xc028,
    0xc023, 0xc027, 0x009f, 0xccaa, 0x009e, 0x006b, 0x0067,
};
static const uint16_t suites_legacy_ecdhe[] = {
    0xc00a,
    0xc014,
    0xc009,
    0xc013,
};
static const uint16_t suites_legacy_dhe_rsa[] = {
    0x0039,
    0x0033,
};
static const uint16_t suites_tls12_rsa[] = {
    0x009d,
    0x009c,
    0x003d,
    0x003c,
};
static const uint16_t suites_legacy_rsa[] = {
    0x0035,
    0x002f,
};
static const uint16_t suites_legacy_3des_ecdhe[] = {
    0xc008,
    0xc012,
};
static const uint16_t suites_legacy_3des[] = {
    0x0016,
    0x000a,
};
/* SSLv3 servers often offer nothing but RC4. */
static const uint16_t suites_ssl3_rc4[] = {
    0x0005,
    0x0004,
};
static const uint16_t suites_scsv[] = {
    0x00ff,
};

static const uint16_t offered_groups[] = {
    0x001d, 0x0017, 0x0018, 0x0019, 0x001e,
    0x0100, 0x0101, 0x0102, 0x0103, 0x0104,
};

/* Schemes we accept in a TLS 1.2 ServerKeyExchange: everything in use,
 * SHA-1 included, because the probe wants an answer rather than a verdict
 * on the signature. */
static const uint16_t offered_sigalgs[] = {
    0x0403, 0x0503, 0x0603, 0x0807, 0x0808, 0x0804, 0x0805, 0x0806,
    0x0809, 0x080a, 0x080b, 0x0401, 0x0501, 0x0601, 0x0203, 0x0201,
};

/* An output buffer that remembers overflow, so the builder can write
 * without checking every step and fail once at the end. */
typedef struct {
  uint8_t *p;
  size_t len;
  size_t cap;
  bool overflow;
} wbuf_t;

static void put8(wbuf_t *w, unsigned v) {
  if (w->len >= w->cap) {
    w->overflow = true;
    return;
  }
  w->p[w->len++] = (uint8_t)v;
}

static void put16(wbuf_t *w, unsigned v) {
  put8(w, v >> 8);
  put8(w, v);
}

static void putn(wbuf_t *w, const void *data, size_t n) {
  if (n == 0)
    return; /* data may be NULL then, which memcpy does not allow */
  if (n > w->cap - w->len) {
    w->overflow = true;
    return;
  }
  memcpy(w->p + w->len, data, n);
  w->len += n;
}

/* Reserve an n-byte length field; returns its offset for len_end(). */
static size_t len_begin(wbuf_t *w, size_t n) {
  size_t at = w->len;

  while (n-- > 0)
    put8(w, 0);
  return at;
}

/* Fill the n-byte length field at `at` with the bytes written after it. */
static void len_end(wbuf_t *w, size_t at, size_t n) {
  size_t v, i;

  if (w->overflow)
    return;
  v = w->len - at - n;
  for (i = 0; i < n; i++)
    w->p[at + i] = (uint8_t)(v >> (8 * (n - 1 - i)));
}

static void put_list16(wbuf_t *w, const uint16_t *v, size_t n) {
  size_t i;

  for (i = 0; i < n; i++)
    put16(w, v[i]);
}

/* The SNI value for sni, or 0 if none should be sent: RFC 6066 allows only
 * host names (no IP literals, no trailing dot). *len gets its length. */
static bool sni_value(const char *sni, size_t *len) {
  unsigned char addr[16];
  size_t n, i;

  if (sni == NULL)
    return false;
  n = strlen(sni);
  if (n > 0 && sni[n - 1] == '.')
    n--;
  if (n == 0 || n > 253)
    return false;
  for (i = 0; i < n; i++) {
    unsigned char c = (unsigned char)sni[i];

    if (c <= ' ' || c >= 0x7f || c == '[' || c == ':')
      return false;
  }
  if (inet_pton(AF_INET, sni, addr) == 1)
    return false;
  *len = n;
  return true;
}

/* Append one extension with an opaque body. */
static void put_ext(wbuf_t *w, unsigned type, const void *body, size_t n) {
  put16(w, type);
  put16(w, (unsigned)n);
  putn(w, body, n);
}

/* Append an extension whose body is a 16-bit-length list of 16-bit values
 * (supported_groups, signature_algorithms). */
static void put_ext_list16(wbuf_t *w, unsigned type, const uint16_t *v,
                           size_t n) {
  size_t ext, list;

  put16(w, type);
  ext = len_begin(w, 2);
  list = len_begin(w, 2);
  put_list16(w, v, n);
  len_end(w, list, 2);
  len_end(w, ext, 2);
}

static void put_extensions(wbuf_t *w, uint16_t version, const char *sni,
                           unsigned flags, size_t msg_start) {
  static const uint8_t point_formats[] = {1, 0}; /* uncompressed */
  /* status_type ocsp, no responder ids, no request extensions */
  static const uint8_t status_request[] = {1, 0, 0, 0, 0};
  static const uint8_t zeros[512];
  size_t exts = len_begin(w, 2), n, msg_len;

  if (sni_value(sni, &n)) {
    size_t ext, list, name;

    put16(w, EXT_SERVER_NAME);
    ext = len_begin(w, 2);
    list = len_begin(w, 2);
    put8(w, 0); /* host_name */
    name = len_begin(w, 2);
    putn(w, sni, n);
    len_end(w, name, 2);
    len_end(w, list, 2);
    len_end(w, ext, 2);
  }
  put_ext_list16(w, EXT_SUPPORTED_GROUPS, offered_groups,
                 ARRAY_LEN(offered_groups));
  put16(w, EXT_EC_POINT_FORMATS);
  put16(w, sizeof(point_formats));
  putn(w, point_formats, sizeof(point_formats));
  if (version >= STLS_TLS_1_2)
    put_ext_list16(w, EXT_SIGNATURE_ALGORITHMS, offered_sigalgs,
                   ARRAY_LEN(offered_sigalgs));
  if (flags & STLS_HELLO_OCSP)
    put_ext(w, EXT_STATUS_REQUEST, status_request, sizeof(status_request));
  put_ext(w, EXT_EXTENDED_MASTER_SECRET, NULL, 0);

  /* RFC 7685: pad a handshake message of 256..511 bytes to 512, the way
   * OpenSSL and browsers do, because some TLS terminators hang on that
   * size. The padding extension costs 4 bytes of header at least. */
  msg_len = w->len - msg_start;
  if (!w->overflow && msg_len >= 256 && msg_len < 512) {
    size_t pad = 512 - msg_len;

    put_ext(w, EXT_PADDING, zeros, pad >= 4 ? pad - 4 : 1);
  }
  len_end(w, exts, 2);
}

/* Build a ClientHello record; see hello.h. */
size_t stls_hello_build(uint16_t version, const char *sni, unsigned flags,
                        const uint8_t random[32], uint8_t *out, size_t outlen) {
  wbuf_t w = {out, 0, outlen, false};
  size_t rec, msg, body, list;
  bool ssl3 = version == STLS_TLS_SSL3;

  if (version < STLS_TLS_SSL3 || version > STLS_TLS_1_2 || random == NULL ||
      out == NULL)
    return 0;

  put8(&w, REC_HANDSHAKE);
  put16(&w, ssl3 ? STLS_TLS_SSL3 : STLS_TLS_1_0);
  rec = len_begin(&w, 2);
  msg = w.len;
  put8(&w, HS_CLIENT_HELLO);
  body = len_begin(&w, 3);
  put16(&w, version);
  putn(&w, random, 32);
  put8(&w, 0); /* no session id */

  list = len_begin(&w, 2);
  if (version == STLS_TLS_1_2)
    put_list16(&w, suites_tls12_only, ARRAY_LEN(suites_tls12_only));
  if (!ssl3)
    put_list16(&w, suites_legacy_ecdhe, ARRAY_LEN(suites_legacy_ecdhe));
  put_list16(&w, suites_legacy_dhe_rsa, ARRAY_LEN(suites_legacy_dhe_rsa));
  if (version == STLS_TLS_1_2)
    put_list16(&w, suites_tls12_rsa, ARRAY_LEN(suites_tls12_rsa));
  put_list16(&w, suites_legacy_rsa, ARRAY_LEN(suites_legacy_rsa));
  if (!ssl3)
    put_list16(&w, suites_legacy_3des_ecdhe,
               ARRAY_LEN(suites_legacy_3des_ecdhe));
  put_list16(&w, suites_legacy_3des, ARRAY_LEN(suites_legacy_3des));
  if (ssl3)
    put_list16(&w, suites_ssl3_rc4, ARRAY_LEN(suites_ssl3_rc4));
  put_list16(&w, suites_scsv, ARRAY_LEN(suites_scsv));
  len_end(&w, list, 2);

  put8(&w, 1); /* one compression method: null */
  put8(&w, 0);

  /* SSLv3 predates extensions; some SSLv3-only stacks choke on them. */
  if (!ssl3)
    put_extensions(&w, version, sni, flags, msg);

  len_end(&w, body, 3);
  len_end(&w, rec, 2);
  return w.overflow ? 0 : w.len;
}

/* ------------------------------------------------------------------------ */
/* Parser */

/* Where a message stands in a TLS <= 1.2 server flight: each must come
 * after the one before (RFC 5246 7.3). */
enum {
  STAGE_START = 0, /* nothing yet, or a HelloRetryRequest */
  STAGE_SERVER_HELLO,
  STAGE_CERTIFICATE,
  STAGE_CERTIFICATE_STATUS,
  STAGE_SERVER_KEY_EXCHANGE,
  STAGE_CERTIFICATE_REQUEST,
  STAGE_SERVER_HELLO_DONE,
  /* Only in an abbreviated (resumed) handshake, right after the
   * ServerHello; a full handshake sends it after the client's Finished. */
  STAGE_NEW_SESSION_TICKET
};

/* How a Certificate message is being walked. */
enum { CERT_LIST_LEN = 0, CERT_ENTRY_LEN, CERT_ENTRY_BODY };

/* RFC 8446 4.1.3: the random of a HelloRetryRequest, and the downgrade
 * sentinels in the last 8 bytes of a ServerHello random. */
static const uint8_t hrr_random[32] = {
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c,
    0x02, 0x1e, 0x65, 0xb8, 0x91, 0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb,
    0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c};
static const uint8_t downgrade_tls12[8] = {0x44, 0x4f, 0x57, 0x4e,
                                           0x47, 0x52, 0x44, 0x01};
static const uint8_t downgrade_tls11[8] = {0x44, 0x4f, 0x57, 0x4e,
                                           0x47, 0x52, 0x44, 0x00};

static const char *hs_name(unsigned type) {
  switch (type) {
  case HS_HELLO_REQUEST: return "HelloRequest";
  case HS_CLIENT_HELLO: return "ClientHello";
  case HS_SERVER_HELLO: return "ServerHello";
  case HS_NEW_SESSION_TICKET: return "NewSessionTicket";
  case HS_CERTIFICATE: return "Certificate";
  case HS_SERVER_KEY_EXCHANGE: return "ServerKeyExchange";
  case HS_CERTIFICATE_REQUEST: return "CertificateRequest";
  case HS_SERVER_HELLO_DONE: return "ServerHelloDone";
  case HS_CERTIFICATE_STATUS: return "CertificateStatus";
  default: return "unknown";
  }
}

/* Stage a TLS <= 1.2 flight message belongs to, or -1 if none. */
static int hs_stage(unsigned type) {
  switch (type) {
  case HS_SERVER_HELLO: return STAGE_SERVER_HELLO;
  case HS_CERTIFICATE: return STAGE_CERTIFICATE;
  case HS_CERTIFICATE_STATUS: return STAGE_CERTIFICATE_STATUS;
  case HS_SERVER_KEY_EXCHANGE: return STAGE_SERVER_KEY_EXCHANGE;
  case HS_CERTIFICATE_REQUEST: return STAGE_CERTIFICATE_REQUEST;
  case HS_SERVER_HELLO_DONE: return STAGE_SERVER_HELLO_DONE;
  case HS_NEW_SESSION_TICKET: return STAGE_NEW_SESSION_TICKET;
  default: return -1;
  }
}

/* Name of the message that put the flight at `stage`. */
static const char *stage_name(int stage) {
  static const unsigned types[] = {0,
                                   HS_SERVER_HELLO,
                                   HS_CERTIFICATE,
                                   HS_CERTIFICATE_STATUS,
                                   HS_SERVER_KEY_EXCHANGE,
                                   HS_CERTIFICATE_REQUEST,
                                   HS_SERVER_HELLO_DONE,
                                   HS_NEW_SESSION_TICKET};

  if (stage <= STAGE_START || stage > STAGE_NEW_SESSION_TICKET)
    return "nothing";
  return hs_name(types[stage]);
}

/* Conclude: the result is complete. */
static stls_hello_rc_t parse_done(stls_hello_parser_t *p) {
  p->rc = STLS_HELLO_DONE;
  return p->rc;
}

/* Fail with a reason; the result keeps what was learnt before. */
static stls_hello_rc_t parse_fail(stls_hello_parser_t *p, const char *fmt,
                                  ...) {
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(p->res.error, sizeof(p->res.error), fmt, ap);
  va_end(ap);
  p->rc = STLS_HELLO_ERROR;
  return p->rc;
}

/* A bounded reader over one buffered message: every read checks what is
 * left first, so nothing is read past a length. */
typedef struct {
  const uint8_t *p;
  size_t left;
} rd_t;

static bool rd_u8(rd_t *r, unsigned *v) {
  if (r->left < 1)
    return false;
  *v = r->p[0];
  r->p++;
  r->left--;
  return true;
}

static bool rd_u16(rd_t *r, unsigned *v) {
  if (r->left < 2)
    return false;
  *v = (unsigned)r->p[0] << 8 | r->p[1];
  r->p += 2;
  r->left -= 2;
  return true;
}

static bool rd_u24(rd_t *r, size_t *v) {
  if (r->left < 3)
    return false;
  *v = (size_t)r->p[0] << 16 | (size_t)r->p[1] << 8 | r->p[2];
  r->p += 3;
  r->left -= 3;
  return true;
}

/* Split off the next n bytes as their own reader. */
static bool rd_sub(rd_t *r, size_t n, rd_t *sub) {
  if (r->left < n)
    return false;
  sub->p = r->p;
  sub->left = n;
  r->p += n;
  r->left -= n;
  return true;
}

/* A vector with an 8- or 16-bit length that must fit what is left and hold
 * at least `min` bytes. */
static bool rd_vec(rd_t *r, int len_bytes, size_t min, rd_t *sub) {
  unsigned n;

  if (!(len_bytes == 1 ? rd_u8(r, &n) : rd_u16(r, &n)))
    return false;
  return n >= min && rd_sub(r, n, sub);
}

/* Clear the fields a ServerHello sets. */
static void server_hello_clear(stls_hello_result_t *res) {
  res->record_version = 0;
  res->legacy_version = 0;
  res->version = 0;
  res->cipher = 0;
  res->kx = STLS_HELLO_KX_UNKNOWN;
  res->compression = 0;
  res->session_id_len = 0;
  res->n_ext = 0;
  res->status_request = false;
  res->secure_renegotiation = false;
  res->extended_master_secret = false;
  res->encrypt_then_mac = false;
  res->group = 0;
  res->downgrade = 0;
}

/* Read one ServerHello extension into res. */
static stls_hello_rc_t server_hello_ext(stls_hello_parser_t *p,
                                        stls_hello_result_t *res, unsigned type,
                                        rd_t *body, bool hrr) {
  unsigned v;
  rd_t sub;

  switch (type) {
  case EXT_SUPPORTED_VERSIONS:
    if (!rd_u16(body, &v) || body->left != 0)
      return parse_fail(p, "ServerHello supported_versions is not 2 bytes");
    res->version = (uint16_t)v;
    break;
  case EXT_KEY_SHARE:
    /* A HelloRetryRequest names only the group it wants. */
    if (!rd_u16(body, &v) ||
        (!hrr && (!rd_vec(body, 2, 1, &sub) || body->left != 0)) ||
        (hrr && body->left != 0))
      return parse_fail(p, "ServerHello key_share has bad lengths");
    if (hrr)
      res->hello_retry_group = (uint16_t)v;
    else
      res->group = (uint16_t)v;
    break;
  case EXT_STATUS_REQUEST:
    if (body->left != 0)
      return parse_fail(p, "ServerHello status_request is not empty");
    res->status_request = true;
    break;
  case EXT_EXTENDED_MASTER_SECRET:
    if (body->left != 0)
      return parse_fail(p, "ServerHello extended_master_secret is not empty");
    res->extended_master_secret = true;
    break;
  case EXT_ENCRYPT_THEN_MAC:
    if (body->left != 0)
      return parse_fail(p, "ServerHello encrypt_then_mac is not empty");
    res->encrypt_then_mac = true;
    break;
  case EXT_RENEGOTIATION_INFO:
    /* On a first handshake the server's renegotiated_connection is empty;
     * a non-empty one is odd but still says it knows RFC 5746. */
    if (!rd_vec(body, 1, 0, &sub) || body->left != 0)
      return parse_fail(p, "ServerHello renegotiation_info has bad lengths");
    res->secure_renegotiation = true;
    break;
  default: break;
  }
  return STLS_HELLO_NEED_MORE;
}

/* Parse a complete ServerHello (or HelloRetryRequest) body. A
 * HelloRetryRequest is checked just as strictly, but only the group it asks
 * for is kept: the result's ServerHello fields describe the real
 * ServerHello, which must follow it. */
static stls_hello_rc_t server_hello_parse(stls_hello_parser_t *p,
                                          const uint8_t *msg, size_t len) {
  stls_hello_result_t *res = &p->res, hrr_scratch;
  rd_t r = {msg, len}, sid, exts;
  unsigned legacy, cipher, compression, sid_len;
  const uint8_t *random;
  bool hrr;

  if (!rd_u16(&r, &legacy) || r.left < 32)
    return parse_fail(p, "ServerHello truncated before the random");
  random = r.p;
  r.p += 32;
  r.left -= 32;
  if (!rd_vec(&r, 1, 0, &sid))
    return parse_fail(p, "ServerHello session id overruns the message");
  sid_len = (unsigned)sid.left;
  if (sid_len > 32)
    return parse_fail(p, "ServerHello session id of %u bytes", sid_len);
  if (!rd_u16(&r, &cipher) || !rd_u8(&r, &compression))
    return parse_fail(p, "ServerHello truncated before the compression");

  hrr = memcmp(random, hrr_random, 32) == 0;
  if (hrr) {
    /* A second HelloRetryRequest is forbidden (RFC 8446 4.1.4). */
    if (res->hello_retry)
      return parse_fail(p, "second HelloRetryRequest");
    hrr_scratch = *res;
    res = &hrr_scratch;
  }
  server_hello_clear(res);
  res->kind = STLS_HELLO_KIND_SERVER_HELLO;
  res->record_version = (uint16_t)(p->rec_hdr[1] << 8 | p->rec_hdr[2]);
  res->legacy_version = (uint16_t)legacy;
  res->version = (uint16_t)legacy;
  res->cipher = (uint16_t)cipher;
  res->compression = (uint8_t)compression;
  res->session_id_len = (uint8_t)sid_len;
  if (memcmp(random + 24, downgrade_tls12, 8) == 0)
    res->downgrade = 12;
  else if (memcmp(random + 24, downgrade_tls11, 8) == 0)
    res->downgrade = 11;

  /* The extensions block is optional (SSLv3, old TLS servers); when it is
   * there it must fill the rest of the message exactly. */
  if (r.left > 0) {
    if (!rd_vec(&r, 2, 0, &exts) || r.left != 0)
      return parse_fail(p, "ServerHello extensions length does not match "
                           "the message");
    while (exts.left > 0) {
      unsigned type;
      rd_t body;
      size_t i;

      if (!rd_u16(&exts, &type) || !rd_vec(&exts, 2, 0, &body))
        return parse_fail(p, "ServerHello extension overruns the block");
      for (i = 0; i < res->n_ext; i++)
        if (res->ext[i] == type)
          return parse_fail(p, "ServerHello repeats extension %u", type);
      if (res->n_ext == STLS_HELLO_MAX_EXT)
        return parse_fail(p, "ServerHello has more than %d extensions",
                          STLS_HELLO_MAX_EXT);
      res->ext[res->n_ext++] = (uint16_t)type;
      if (server_hello_ext(p, res, type, &body, hrr) != STLS_HELLO_NEED_MORE)
        return p->rc;
    }
  }

  if (res->version == STLS_TLS_1_3)
    res->kx = STLS_HELLO_KX_TLS13;
  else
    res->kx = stls_tls_cipher_kx(res->cipher);

  if (hrr) {
    p->res.hello_retry = true;
    p->res.hello_retry_group = res->hello_retry_group;
    return STLS_HELLO_NEED_MORE; /* a real ServerHello must follow */
  }
  p->stage = STAGE_SERVER_HELLO;
  /* Everything after a TLS 1.3 ServerHello is encrypted. */
  if (res->version == STLS_TLS_1_3)
    return parse_done(p);
  return STLS_HELLO_NEED_MORE;
}

/* Number of significant bits in a big-endian unsigned integer. */
static unsigned bignum_bits(const uint8_t *v, size_t n) {
  size_t i;

  for (i = 0; i < n; i++) {
    if (v[i] != 0) {
      unsigned bits = (unsigned)(n - i - 1) * 8, b = v[i];

      while (b != 0) {
        bits++;
        b >>= 1;
      }
      return bits;
    }
  }
  return 0;
}

/* Parse a ServerKeyExchange for the key exchange the ServerHello chose
 * (RFC 5246 7.4.3, RFC 8422 5.4). */
static stls_hello_rc_t ske_parse(stls_hello_parser_t *p, const uint8_t *msg,
                                 size_t len) {
  stls_hello_result_t *res = &p->res;
  rd_t r = {msg, len}, v, sig;
  unsigned curve_type, group, sigalg;
  bool anon = false;

  res->server_key_exchange = true;
  switch (res->kx) {
  case STLS_HELLO_KX_ECDH_ANON:
    anon = true;
    /* fall through */
  case STLS_HELLO_KX_ECDHE:
    if (!rd_u8(&r, &curve_type))
      return parse_fail(p, "ServerKeyExchange is empty");
    /* Explicit curves (types 1 and 2) are extinct (RFC 8422 drops them);
     * their layout is not worth parsing, the facts just stay unknown. */
    if (curve_type != 3)
      return STLS_HELLO_NEED_MORE;
    if (!rd_u16(&r, &group) || !rd_vec(&r, 1, 1, &v))
      return parse_fail(p, "ServerKeyExchange ECDH parameters overrun the "
                           "message");
    res->group = (uint16_t)group;
    break;
  case STLS_HELLO_KX_DH_ANON:
    anon = true;
    /* fall through */
  case STLS_HELLO_KX_DHE:
    if (!rd_vec(&r, 2, 1, &v))
      return parse_fail(p, "ServerKeyExchange DH prime overruns the message");
    res->dh_bits = bignum_bits(v.p, v.left);
    if (!rd_vec(&r, 2, 1, &v) || !rd_vec(&r, 2, 1, &v))
      return parse_fail(p, "ServerKeyExchange DH parameters overrun the "
                           "message");
    break;
  default:
    /* RSA (export) or a suite we do not know: nothing to learn. */
    return STLS_HELLO_NEED_MORE;
  }

  if (anon) {
    if (r.left != 0)
      return parse_fail(p,
                        "ServerKeyExchange has %zu bytes after the "
                        "anonymous parameters",
                        r.left);
    return STLS_HELLO_NEED_MORE;
  }
  /* TLS 1.2 names the signature scheme; earlier versions imply it. */
  if (res->version >= STLS_TLS_1_2) {
    if (!rd_u16(&r, &sigalg))
      return parse_fail(p, "ServerKeyExchange truncated before the "
                           "signature algorithm");
    res->sigalg = (uint16_t)sigalg;
  }
  if (!rd_vec(&r, 2, 1, &sig) || r.left != 0)
    return parse_fail(p, "ServerKeyExchange signature length does not match "
                         "the message");
  return STLS_HELLO_NEED_MORE;
}

/* Parse a CertificateStatus (RFC 6066 8): an OCSP staple. */
static stls_hello_rc_t cert_status_parse(stls_hello_parser_t *p,
                                         const uint8_t *msg, size_t len) {
  rd_t r = {msg, len};
  unsigned type;
  size_t n;

  if (!rd_u8(&r, &type) || type != 1)
    return parse_fail(p, "CertificateStatus is not of type ocsp");
  if (!rd_u24(&r, &n) || n == 0 || n != r.left)
    return parse_fail(p, "CertificateStatus length does not match the "
                         "message");
  p->res.ocsp_staple = true;
  p->res.ocsp_len = n;
  return STLS_HELLO_NEED_MORE;
}

/* Walk part of a Certificate body: certificate_list<0..2^24-1> of
 * ASN.1Cert<1..2^24-1>. Only the lengths are read; the DER streams by.
 * Returns the bytes used, which is fewer than n only after a failure, so
 * result.consumed points at the offending byte whatever the split. */
static size_t cert_walk(stls_hello_parser_t *p, const uint8_t *data, size_t n) {
  size_t used = 0;

  while (used < n) {
    size_t v;

    if (p->cert_state == CERT_ENTRY_BODY) {
      size_t k = n - used < p->cert_skip ? n - used : p->cert_skip;

      p->cert_skip -= k;
      used += k;
      if (p->cert_skip == 0)
        p->cert_state = CERT_ENTRY_LEN;
      continue;
    }
    p->cert_num[p->cert_num_len++] = data[used++];
    if (p->cert_num_len < 3)
      continue;
    p->cert_num_len = 0;
    v = (size_t)p->cert_num[0] << 16 | (size_t)p->cert_num[1] << 8 |
        p->cert_num[2];
    if (p->cert_state == CERT_LIST_LEN) {
      if (v != p->hs_len - 3) {
        parse_fail(p, "Certificate list length %zu in a message of %zu bytes",
                   v, p->hs_len);
        return used;
      }
      p->cert_list_left = v;
      p->cert_state = CERT_ENTRY_LEN;
      continue;
    }
    if (v == 0 || p->cert_list_left < 3 || v > p->cert_list_left - 3) {
      parse_fail(p, "certificate %u of %zu bytes does not fit the list",
                 p->res.cert_count + 1, v);
      return used;
    }
    p->cert_list_left -= 3 + v;
    p->cert_skip = v;
    p->cert_state = CERT_ENTRY_BODY;
    p->res.cert_count++;
  }
  return used;
}

/* A handshake header is complete: check the message may come now and
 * decide how its body is handled. */
static stls_hello_rc_t hs_begin(stls_hello_parser_t *p) {
  unsigned type = p->hs_hdr[0];
  size_t len =
      (size_t)p->hs_hdr[1] << 16 | (size_t)p->hs_hdr[2] << 8 | p->hs_hdr[3];
  int stage = hs_stage(type);

  p->hs_type = (uint8_t)type;
  p->hs_len = len;
  p->hs_left = len;
  p->buf_len = 0;
  if (++p->hs_count > STLS_HELLO_MAX_MESSAGES)
    return parse_fail(p, "more than %d handshake messages",
                      STLS_HELLO_MAX_MESSAGES);
  /* A HelloRequest means nothing during a handshake (RFC 5246 7.4.1.1). */
  if (type == HS_HELLO_REQUEST && len == 0)
    return STLS_HELLO_NEED_MORE;
  if (p->stage == STAGE_START && type != HS_SERVER_HELLO)
    return parse_fail(p, "%s (%u) where a ServerHello was expected",
                      hs_name(type), type);
  if (stage < 0 || stage <= p->stage ||
      (type == HS_NEW_SESSION_TICKET && p->stage != STAGE_SERVER_HELLO))
    return parse_fail(p, "%s (%u) after %s", hs_name(type), type,
                      stage_name(p->stage));

  switch (type) {
  case HS_SERVER_HELLO:
  case HS_SERVER_KEY_EXCHANGE:
  case HS_CERTIFICATE_STATUS:
    if (len > STLS_HELLO_MAX_MESSAGE)
      return parse_fail(p, "%s of %zu bytes is over the %d-byte limit",
                        hs_name(type), len, STLS_HELLO_MAX_MESSAGE);
    break;
  case HS_CERTIFICATE:
    if (len < 3)
      return parse_fail(p, "Certificate of %zu bytes", len);
    p->cert_state = CERT_LIST_LEN;
    p->cert_num_len = 0;
    p->res.certificate = true;
    p->res.certificate_len = len;
    p->res.cert_count = 0;
    break;
  case HS_SERVER_HELLO_DONE:
    if (len != 0)
      return parse_fail(p, "ServerHelloDone of %zu bytes", len);
    break;
  default: break;
  }
  return STLS_HELLO_NEED_MORE;
}

/* A handshake message is complete: act on it. */
static stls_hello_rc_t hs_end(stls_hello_parser_t *p) {
  stls_hello_rc_t rc = STLS_HELLO_NEED_MORE;

  switch (p->hs_type) {
  case HS_HELLO_REQUEST: return STLS_HELLO_NEED_MORE;
  case HS_SERVER_HELLO:
    /* It sets the stage itself: a HelloRetryRequest leaves it at START. */
    return server_hello_parse(p, p->buf, p->buf_len);
  case HS_CERTIFICATE:
    /* The walk consumed exactly hs_len bytes; it must end between
     * entries with the list used up. */
    if (p->cert_state == CERT_ENTRY_BODY ? p->cert_skip != 0
                                         : p->cert_num_len != 0)
      return parse_fail(p, "Certificate ends inside an entry");
    break;
  case HS_CERTIFICATE_STATUS:
    rc = cert_status_parse(p, p->buf, p->buf_len);
    break;
  case HS_SERVER_KEY_EXCHANGE: rc = ske_parse(p, p->buf, p->buf_len); break;
  case HS_CERTIFICATE_REQUEST: p->res.cert_request = true; break;
  case HS_SERVER_HELLO_DONE:
    p->res.server_hello_done = true;
    p->stage = STAGE_SERVER_HELLO_DONE;
    return parse_done(p);
  default: break;
  }
  if (rc == STLS_HELLO_NEED_MORE)
    p->stage = hs_stage(p->hs_type);
  return rc;
}

/* Feed part of a handshake record body to the message layer. */
static stls_hello_rc_t hs_feed(stls_hello_parser_t *p, const uint8_t *data,
                               size_t n) {
  while (n > 0 && p->rc == STLS_HELLO_NEED_MORE) {
    size_t k;

    if (p->hs_hdr_len < 4) {
      p->hs_hdr[p->hs_hdr_len++] = *data++;
      n--;
      p->total++;
      if (p->hs_hdr_len == 4 && hs_begin(p) == STLS_HELLO_NEED_MORE &&
          p->hs_left == 0) {
        p->hs_hdr_len = 0;
        hs_end(p);
      }
      continue;
    }
    k = n < p->hs_left ? n : p->hs_left;
    switch (p->hs_type) {
    case HS_SERVER_HELLO:
    case HS_SERVER_KEY_EXCHANGE:
    case HS_CERTIFICATE_STATUS:
      memcpy(p->buf + p->buf_len, data, k); /* hs_begin checked the size */
      p->buf_len += k;
      break;
    case HS_CERTIFICATE: k = cert_walk(p, data, k); break;
    default: break; /* skipped by length */
    }
    data += k;
    n -= k;
    p->total += k;
    p->hs_left -= k;
    if (p->rc == STLS_HELLO_NEED_MORE && p->hs_left == 0) {
      p->hs_hdr_len = 0;
      hs_end(p);
    }
  }
  return p->rc;
}

/* The first bytes of a stream that is not TLS: an SSLv2 reply, or
 * anything else. Returns NEED_MORE while it cannot tell. */
static stls_hello_rc_t classify_start(stls_hello_parser_t *p) {
  const uint8_t *h = p->rec_hdr;
  size_t n = p->rec_hdr_len;

  if (h[0] & 0x80) {
    /* SSLv2 two-byte header, then the message type: 4 SERVER-HELLO, or
     * 0 ERROR. Anything else with the high bit set is not SSL at all. */
    if (n < 3)
      return STLS_HELLO_NEED_MORE;
    if (((h[0] & 0x7f) << 8 | h[1]) >= 1 && (h[2] == 4 || h[2] == 0)) {
      p->res.kind = STLS_HELLO_KIND_SSL2;
      p->res.ssl2_msg_type = h[2];
      return parse_done(p);
    }
  } else if (h[0] >= REC_CCS && h[0] <= REC_APPDATA && (n < 2 || h[1] == 3) &&
             (n < 3 || h[2] <= 4)) {
    return STLS_HELLO_NEED_MORE; /* a TLS record header so far */
  }
  p->res.kind = STLS_HELLO_KIND_GARBAGE;
  return parse_done(p);
}

/* A record header is complete: check it and start the body. */
static stls_hello_rc_t record_begin(stls_hello_parser_t *p) {
  const uint8_t *h = p->rec_hdr;
  size_t len = (size_t)h[3] << 8 | h[4];
  bool hs_partial = p->hs_hdr_len > 0;

  if (h[0] < REC_CCS || h[0] > REC_APPDATA || h[1] != 3 || h[2] > 4)
    return parse_fail(p, "bad record header %02x %02x %02x", h[0], h[1], h[2]);
  p->seen_record = true;
  p->rec_type = h[0];
  p->rec_left = len;
  p->ctl_len = 0;
  if (h[0] == REC_APPDATA)
    return parse_fail(p, "application data before the end of the server's "
                         "flight");
  if (len == 0)
    return parse_fail(p, "empty record of type %u", h[0]);
  if (len > STLS_HELLO_MAX_RECORD)
    return parse_fail(p, "record of %zu bytes exceeds 2^14", len);
  switch (h[0]) {
  case REC_ALERT:
    if (len != 2)
      return parse_fail(p, "alert record of %zu bytes", len);
    break;
  case REC_CCS:
    if (len != 1)
      return parse_fail(p, "ChangeCipherSpec record of %zu bytes", len);
    /* RFC 5246 forbids other records inside a fragmented handshake
     * message (RFC 8446 5.1 says so explicitly). */
    if (hs_partial)
      return parse_fail(p, "ChangeCipherSpec inside a handshake message");
    if (p->res.kind != STLS_HELLO_KIND_SERVER_HELLO && !p->res.hello_retry)
      return parse_fail(p, "ChangeCipherSpec before the ServerHello");
    break;
  default: break;
  }
  p->in_record = true;
  return STLS_HELLO_NEED_MORE;
}

/* An alert or ChangeCipherSpec record is complete. */
static stls_hello_rc_t record_end(stls_hello_parser_t *p) {
  stls_hello_result_t *res = &p->res;

  p->in_record = false;
  p->rec_hdr_len = 0;
  if (p->rec_type == REC_ALERT) {
    if (p->ctl[0] != 1 && p->ctl[0] != 2)
      return parse_fail(p, "alert with level %u", p->ctl[0]);
    res->alert = true;
    res->alert_level = p->ctl[0];
    res->alert_desc = p->ctl[1];
    if (res->kind == STLS_HELLO_KIND_NONE)
      res->kind = STLS_HELLO_KIND_ALERT;
    /* A warning (unrecognized_name, no_renegotiation) does not end a
     * handshake; a fatal alert or close_notify does. */
    if (p->ctl[0] == 2 || p->ctl[1] == 0)
      return parse_done(p);
    return STLS_HELLO_NEED_MORE;
  }
  if (p->rec_type == REC_CCS) {
    if (p->ctl[0] != 1)
      return parse_fail(p, "ChangeCipherSpec value %u", p->ctl[0]);
    /* After a HelloRetryRequest it is only TLS 1.3 middlebox
     * compatibility; after a TLS <= 1.2 ServerHello it means the server
     * resumed a session and the flight is over. */
    if (p->stage == STAGE_START)
      return STLS_HELLO_NEED_MORE;
    res->change_cipher_spec = true;
    return parse_done(p);
  }
  return STLS_HELLO_NEED_MORE;
}

/* Pass up to n bytes of the current record's body on; returns how many
 * were used (fewer only at a conclusion or at the flight limit). */
static size_t record_body(stls_hello_parser_t *p, const uint8_t *data,
                          size_t n) {
  size_t k = n < p->rec_left ? n : p->rec_left;

  if (k > STLS_HELLO_MAX_FLIGHT - p->total)
    k = STLS_HELLO_MAX_FLIGHT - p->total;
  if (p->rec_type == REC_HANDSHAKE) {
    size_t before = p->total;

    hs_feed(p, data, k);
    k = p->total - before; /* it stops early at a conclusion */
  } else {
    memcpy(p->ctl + p->ctl_len, data, k); /* record_begin allowed <= 2 */
    p->ctl_len += k;
    p->total += k;
  }
  p->rec_left -= k;
  if (p->rc == STLS_HELLO_NEED_MORE && p->rec_left == 0) {
    if (p->rec_type == REC_HANDSHAKE) {
      p->in_record = false; /* messages may go on in the next record */
      p->rec_hdr_len = 0;
    } else {
      record_end(p);
    }
  }
  return k;
}

/* Start a parser. */
void stls_hello_parser_init(stls_hello_parser_t *p) {
  /* The message buffer needs no clearing: buf_len guards it. */
  memset(p, 0, offsetof(stls_hello_parser_t, buf));
  p->rc = STLS_HELLO_NEED_MORE;
  p->stage = STAGE_START;
}

/* Feed server bytes; see hello.h. */
stls_hello_rc_t stls_hello_parser_feed(stls_hello_parser_t *p,
                                       const uint8_t *data, size_t len) {
  size_t i = 0;

  while (i < len && p->rc == STLS_HELLO_NEED_MORE) {
    if (p->total >= STLS_HELLO_MAX_FLIGHT) {
      parse_fail(p, "no conclusion after %d bytes", STLS_HELLO_MAX_FLIGHT);
      break;
    }
    if (!p->in_record) {
      p->rec_hdr[p->rec_hdr_len++] = data[i++];
      p->total++;
      if (!p->seen_record && classify_start(p) != STLS_HELLO_NEED_MORE)
        break;
      if (p->rec_hdr_len == 5)
        record_begin(p);
      continue;
    }
    i += record_body(p, data + i, len - i);
  }
  p->res.consumed = p->total;
  return p->rc;
}

/* What the parser has learnt so far. */
const stls_hello_result_t *
stls_hello_parser_result(const stls_hello_parser_t *p) {
  return &p->res;
}

/* Did the server select exactly the offered version? */
bool stls_hello_accepted(const stls_hello_result_t *r, uint16_t offered) {
  return r->kind == STLS_HELLO_KIND_SERVER_HELLO && r->version == offered;
}
