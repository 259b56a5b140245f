/* Chain quality and trust against several stores, as pure functions.
 *
 * Input is the chain as the server sent it (stls_cert_t, leaf first, with
 * each certificate's DER kept by stls_cert_describe()); nothing here touches
 * the network or the clock except through the `now` argument.
 *
 * Trust is computed the way Postfix's SMTP client verifies a server when it
 * must authenticate it (levels verify, secure, dane):
 *  - the order of the certificates after the leaf does not matter: a path
 *    is built from the leaf upwards through whatever was sent, as OpenSSL
 *    does (mbedTLS alone looks for a parent only after the child, so it
 *    fails chains whose intermediates are sent in the wrong order);
 *  - no host name is checked (names are a separate fact, see cert.h);
 *  - the purpose is, as OpenSSL's TLS client checks it: an
 *    extendedKeyUsage on the leaf or a CA of the path that does not allow
 *    serverAuth fails (MBEDTLS_X509_BADCERT_EXT_KEY_USAGE);
 *  - OpenSSL security level 1, which Postfix sets for those levels: a
 *    SHA-1 or MD5 signature (MBEDTLS_X509_BADCERT_BAD_MD) or an RSA key
 *    below 1024 bits (MBEDTLS_X509_BADCERT_BAD_KEY) makes the chain
 *    untrusted; RSA 1024..2047 does not (see weak_rsa_key). Postfix's
 *    "may" and "encrypt" run at level 0 and check none of this, but they
 *    do not need trust either (posttls-finger -l encrypt prints "Trusted"
 *    for a SHA-1 chain that -l secure rejects).
 * mbedTLS must be initialised for parsing (psa_crypto_init(), which
 * stls_trust_stores_new() and stls_tls_ctx_init() call).
 */
#ifndef STLS_CHAIN_H
#define STLS_CHAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <mbedtls/x509_crt.h>

#include "stls/result.h"

/* The system trust store, used when neither a CA file nor a named store
 * is given (Debian's ca-certificates bundle). */
#define STLS_DEFAULT_CA_FILE "/etc/ssl/certs/ca-certificates.crt"

/* ------------------------------------------------------------------ stores */

/* A set of named trust stores plus a pool of known intermediates. The pool
 * holds every CA certificate that is not self-issued found in the store
 * files (some bundles carry intermediates) and every certificate of the
 * files given to stls_trust_stores_add_intermediates(). Opaque; read it
 * through the accessors below. Verification only reads the set; still,
 * give each worker thread its own set (like its stls_tls_ctx_t) unless
 * mbedTLS is built with MBEDTLS_THREADING_C. */
typedef struct stls_trust_stores_s stls_trust_stores_t;

/* Longest store name, without the NUL. Names are [A-Za-z0-9._-]+. */
#define STLS_TRUST_STORE_NAME_MAX 31
/* The most stores a set holds. */
#define STLS_TRUST_STORES_MAX 16

/* An empty set, or NULL on ENOMEM. */
stls_trust_stores_t *stls_trust_stores_new(void);
void stls_trust_stores_free(stls_trust_stores_t *s);

/* Add store NAME from a PEM/DER file. Fails (-1, reason in err) on a bad or
 * duplicate name, a full set, an unreadable file or a file without one
 * usable certificate; certificates mbedTLS cannot parse are skipped as long
 * as one is usable, as stls_tls_ctx_init() does. */
int stls_trust_stores_add(stls_trust_stores_t *s, const char *name,
                          const char *file, char *err, size_t errlen);
/* Add a store from a "NAME=FILE" command line spec. */
int stls_trust_stores_add_spec(stls_trust_stores_t *s, const char *spec,
                               char *err, size_t errlen);
/* Add every certificate of FILE to the known-intermediates pool. */
int stls_trust_stores_add_intermediates(stls_trust_stores_t *s,
                                        const char *file, char *err,
                                        size_t errlen);

/* The whole set from command line options: a store "default" from ca_file
 * when given, then one store per "NAME=FILE" spec; with neither, one store
 * "system" from STLS_DEFAULT_CA_FILE. intermediates_file (may
 * be NULL) feeds the pool. 0, or -1 with a one-line reason in err. */
int stls_trust_stores_load(stls_trust_stores_t **out, const char *ca_file,
                           const char *const *specs, size_t n_specs,
                           const char *intermediates_file, char *err,
                           size_t errlen);

size_t stls_trust_stores_count(const stls_trust_stores_t *s);
/* Name and parsed certificates of store i (i < count). */
const char *stls_trust_stores_name(const stls_trust_stores_t *s, size_t i);
const mbedtls_x509_crt *stls_trust_stores_crt(const stls_trust_stores_t *s,
                                              size_t i);
/* The known-intermediates pool, or NULL when it is empty. */
const mbedtls_x509_crt *stls_trust_stores_pool(const stls_trust_stores_t *s);

/* ------------------------------------------------------------------ verify */

/* Verify the chain (leaf first, as sent) against store, without any name
 * check. Certificates of extra_intermediates (may be NULL) may complete the
 * path. *flags gets mbedTLS's MBEDTLS_X509_BADCERT_* bits (feed them to
 * stls_cert_trust_reasons()). Returns 0 trusted, 1 not trusted (flags != 0;
 * an empty chain gives MBEDTLS_X509_BADCERT_MISSING), -1 on ENOMEM or a
 * certificate whose DER no longer parses (flags = BADCERT_OTHER). */
int stls_chain_verify(const stls_cert_t *chain, size_t n,
                      const mbedtls_x509_crt *store,
                      const mbedtls_x509_crt *extra_intermediates,
                      uint32_t *flags);

/* Trust of one chain in one named store. */
typedef struct stls_store_verdict_s {
  const char *store;      /* the set's name for it (owned by the set) */
  bool trusted;           /* verifies with the certificates as sent */
  uint32_t flags;         /* mbedTLS flags of that verification */
  bool trusted_with_pool; /* verifies once the pool may fill gaps */
} stls_store_verdict_t;

/* Verify against every store of the set (out has stls_trust_stores_count()
 * entries). The chain is parsed once. 0, or -1 on ENOMEM / bad DER. */
int stls_chain_verify_stores(const stls_cert_t *chain, size_t n,
                             const stls_trust_stores_t *s,
                             stls_store_verdict_t *out);

/* ------------------------------------------------------------------- facts */

/* Chain-quality facts, each one explicit. "Sent" means the certificates as
 * the server sent them (the first 32 of them; no client walks more). "X
 * issued Y" means X's subject equals Y's issuer (same DER, or attribute by
 * attribute with string types ignored, as RFC 5280 7.1 and mbedTLS compare
 * names) and Y's signature verifies with X's public key. "Self-signed" means a
 * certificate issued itself in that sense. "The path" is built from the leaf
 * upwards: at each step the first sent certificate that issued the current one
 * and is not yet on the path; failing that, the first pool certificate that
 * did, but only when the store holds no issuer of the current one (the pool
 * fills gaps, it never lengthens a path that already reaches the store). It
 * stops at a self-signed certificate or when no issuer is found. It is the
 * path a client would verify. Facts about time use `now`. */
typedef struct stls_chain_facts_s {
  size_t n_sent; /* certificates sent */

  /* Every sent certificate i+1 issued certificate i. True for one
   * certificate. A chain with a stray extra certificate at the end is not
   * in order either (sslyze: received_chain_has_valid_order). */
  bool order_ok;
  /* A self-signed certificate other than the leaf was sent (the root).
   * Harmless but wasteful (sslyze: received_chain_contains_anchor). */
  bool root_included;
  /* The leaf itself is self-signed. */
  bool leaf_self_signed;
  /* Two sent certificates are byte-for-byte identical. */
  bool duplicate_certs;
  /* A sent certificate (other than the leaf) is not on the path built from
   * the sent certificates alone; a sent root that ends the path is on it
   * (that case is root_included). */
  bool unnecessary_certs;

  /* stls_chain_verify() against the store with the sent certificates. */
  bool trusted_as_sent;
  uint32_t flags_as_sent;
  /* The same with the known-intermediates pool added. */
  bool trusted_with_known_intermediates;
  uint32_t flags_with_known_intermediates;
  /* The issuer of some certificate is missing as sent: the verification as
   * sent fails with "not trusted" (MBEDTLS_X509_BADCERT_NOT_TRUSTED) and
   * with the pool that failure is gone. Trusted only if the intermediate is
   * known (browsers that fetch or cache intermediates cope; Postfix does
   * not). Independent of expiry or weak keys, which still show in the
   * flags. */
  bool missing_intermediate;

  /* A certificate that is sent or on the path, and is not self-signed, is
   * signed with SHA-1 or MD5 (sslyze: verified_chain_has_sha1_signature;
   * here the sent certificates count even when the chain is not trusted).
   * The self-signature of a root is never relied upon, so it is ignored. */
  bool sha1_signature;
  /* An RSA key below 2048 bits in a certificate that is sent or on the
   * path, except a self-signed root the store holds (same subject and same
   * public key): that key is the store's choice, not the server's. */
  bool weak_rsa_key;
  /* The smallest RSA modulus among those certificates (with the same
   * exception), in bits, or 0 when none has an RSA key. */
  int min_rsa_bits;

  /* Leaf validity period, notAfter - notBefore, in whole days (rounded
   * down). */
  long leaf_validity_days;
  /* notAfter - notBefore is longer than 398 days (CA/B Forum Baseline
   * Requirements 6.3.2 for certificates issued since 2020-09-01; that rule
   * counts both ends, so exactly 398 * 86400 s is still accepted here, as
   * testssl.sh and sslyze do). */
  bool leaf_validity_too_long;
  /* now > notAfter, now < notBefore of the leaf. */
  bool leaf_expired;
  bool leaf_not_yet_valid;
  /* A sent certificate other than the leaf is expired at now. */
  bool intermediate_expired;
  /* The leaf's extendedKeyUsage allows TLS server authentication (absent,
   * serverAuth or anyExtendedKeyUsage). */
  bool leaf_server_auth;
  /* The leaf carries embedded SCTs (1.3.6.1.4.1.11129.2.4.2, Certificate
   * Transparency) / the TLS feature extension asking for OCSP must-staple
   * (1.3.6.1.5.5.7.1.24). */
  bool leaf_has_sct;
  bool leaf_must_staple;
} stls_chain_facts_t;

/* The facts of a chain (n >= 1) against one store and the pool (may be
 * NULL); now is the time to judge expiry against (time(NULL) normally).
 * 0, or -1 on ENOMEM or a certificate whose DER does not parse. */
int stls_chain_facts(const stls_cert_t *chain, size_t n,
                     const mbedtls_x509_crt *store,
                     const mbedtls_x509_crt *pool, time_t now,
                     stls_chain_facts_t *out);

/* ------------------------------------------------------------------- judge */

/* A judge owns a set of trust stores and remembers its verdicts per
 * distinct chain (providers serve one chain from many addresses). One per
 * worker thread, like the TLS context that holds it. */
typedef struct stls_chain_judge_s stls_chain_judge_t;

/* Load the stores as stls_trust_stores_load() does. 0, or -1 with a
 * one-line reason in err. */
int stls_chain_judge_new(stls_chain_judge_t **out, const char *ca_file,
                         const char *const *specs, size_t n_specs,
                         const char *intermediates_file, char *err,
                         size_t errlen);
void stls_chain_judge_free(stls_chain_judge_t *j);

/* The judge's stores (read-only). */
const stls_trust_stores_t *stls_chain_judge_stores(const stls_chain_judge_t *j);

/* Fill in the trust facts of the chain described in out (out->chain,
 * leaf first as sent; from a handshake or read off the wire): trust in
 * every store with its reasons, chain quality, expiry and whether the leaf
 * names mx. An empty chain is untrusted ("other"). 0, or -1 on ENOMEM. */
int stls_chain_judge(stls_chain_judge_t *j, const char *mx,
                     stls_tls_result_t *out);

/* How many chains were answered from the cache (hits) and judged
 * (misses) so far. A verdict is reused for one distinct chain (the
 * SHA-256 of its certificates as sent) against this judge's stores, for at
 * most an hour and never past a notBefore or notAfter of a sent
 * certificate that lay ahead when it was reached. */
void stls_chain_judge_stats(const stls_chain_judge_t *j, uint64_t *hits,
                            uint64_t *misses);

/* Tests only: the clock the cache's validity windows are kept by (NULL:
 * time()). The verification itself always uses the real clock. */
void stls__chain_judge_set_clock(stls_chain_judge_t *j,
                                 time_t (*clock)(time_t *));

#endif
