/* Chain quality and trust against several stores. See chain.h. */

/* Checking "X issued Y" needs Y's signature fields (and comparing names a
 * name's "merged" flag), which mbedTLS 3 keeps private; mbedTLS itself
 * offers this switch to code that must reach them. It is confined to this
 * file, and to signature_ok() and name_attr_equal(). */
#define MBEDTLS_ALLOW_PRIVATE_ACCESS

#include "stls/chain.h"
#include "stls/cert.h"
#include "stls/names.h"
#include "stls/util.h"

#include <mbedtls/error.h>
#include <mbedtls/md.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/sha256.h>
#include <psa/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* CA/B Forum Baseline Requirements 6.3.2: 398 days at most. */
#define LEAF_MAX_VALIDITY_SECONDS (398L * 86400L)
/* A path longer than this is a loop or an attack, not a server; paths
 * longer than VERIFY_MAX_INTERMEDIATES (below) are already not trusted. */
#define PATH_MAX_DEPTH 16

/* Extension OIDs mbedTLS does not parse, as DER bytes. */
#define OID_CT_PRECERT_SCTS "\x2b\x06\x01\x04\x01\xd6\x79\x02\x04\x02"
#define OID_TLS_FEATURE "\x2b\x06\x01\x05\x05\x07\x01\x18"

/* What Postfix's SMTP client accepts when it authenticates a server
 * (levels verify, secure, dane): it then runs OpenSSL at security level 1
 * (tls_client.c: SSL_set_security_level(con, 1) when TLS_MUST_MATCH), so
 * signatures need 80 bits of security, which SHA-1 (63 in OpenSSL 3) and
 * MD5 lack, and RSA keys need 1024 bits. The self-signature of a trust
 * anchor is not checked by either library. Below "verify" Postfix uses
 * level 0 and checks nothing of this, but then it does not need trust. */
static const mbedtls_x509_crt_profile postfix_profile = {
    MBEDTLS_X509_ID_FLAG(MBEDTLS_MD_SHA224) |
        MBEDTLS_X509_ID_FLAG(MBEDTLS_MD_SHA256) |
        MBEDTLS_X509_ID_FLAG(MBEDTLS_MD_SHA384) |
        MBEDTLS_X509_ID_FLAG(MBEDTLS_MD_SHA512) |
        MBEDTLS_X509_ID_FLAG(MBEDTLS_MD_SHA3_224) |
        MBEDTLS_X509_ID_FLAG(MBEDTLS_MD_SHA3_256) |
        MBEDTLS_X509_ID_FLAG(MBEDTLS_MD_SHA3_384) |
        MBEDTLS_X509_ID_FLAG(MBEDTLS_MD_SHA3_512),
    0x0FFFFFFF, /* any public key algorithm */
    0x0FFFFFFF, /* any curve (all are >= 160 bits) */
    1024,
};

typedef struct store_s {
  char name[STLS_TRUST_STORE_NAME_MAX + 1];
  mbedtls_x509_crt crt;
} store_t;

struct stls_trust_stores_s {
  size_t n;
  store_t store[STLS_TRUST_STORES_MAX];
  mbedtls_x509_crt pool;
  size_t pool_n;
};

/* ---------------------------------------------------------------- helpers */

static bool buf_equal(const mbedtls_x509_buf *a, const mbedtls_x509_buf *b) {
  return a->len == b->len && (a->len == 0 || memcmp(a->p, b->p, a->len) == 0);
}

/* One attribute of a name: the same type, and the same value, byte for byte
 * when both use one string type, else up to ASCII case (a CA may re-encode
 * a PrintableString as UTF8String, which RFC 5280 7.1 still counts as the
 * same name; mbedTLS compares the same way). */
static bool name_attr_equal(const mbedtls_x509_name *a,
                            const mbedtls_x509_name *b) {
  if (!buf_equal(&a->oid, &b->oid) || a->val.len != b->val.len ||
      a->next_merged != b->next_merged)
    return false;
  if (a->val.tag == b->val.tag)
    return buf_equal(&a->val, &b->val);
  for (size_t i = 0; i < a->val.len; i++) {
    unsigned char x = a->val.p[i], y = b->val.p[i];
    if (x >= 'A' && x <= 'Z')
      x = (unsigned char)(x + 32);
    if (y >= 'A' && y <= 'Z')
      y = (unsigned char)(y + 32);
    if (x != y)
      return false;
  }
  return true;
}

/* Two names are the same when their DER is, or when every attribute is. */
static bool names_equal(const mbedtls_x509_buf *a_raw,
                        const mbedtls_x509_name *a,
                        const mbedtls_x509_buf *b_raw,
                        const mbedtls_x509_name *b) {
  if (buf_equal(a_raw, b_raw))
    return true;
  for (; a && b; a = a->next, b = b->next)
    if (!name_attr_equal(a, b))
      return false;
  return a == NULL && b == NULL;
}

/* Does child's signature verify with parent's public key? */
static bool signature_ok(const mbedtls_x509_crt *child,
                         const mbedtls_x509_crt *parent) {
  unsigned char hash[MBEDTLS_MD_MAX_SIZE];
  const mbedtls_md_info_t *md = mbedtls_md_info_from_type(child->sig_md);

  if (!md || mbedtls_md(md, child->tbs.p, child->tbs.len, hash) != 0)
    return false;
  if (!mbedtls_pk_can_do(&parent->pk, child->sig_pk))
    return false;
  return mbedtls_pk_verify_ext(child->sig_pk, child->sig_opts,
                               (mbedtls_pk_context *)&parent->pk, child->sig_md,
                               hash, mbedtls_md_get_size(md), child->sig.p,
                               child->sig.len) == 0;
}

/* Did parent issue child: does its subject name child's issuer, and does
 * child's signature verify with its key? (A certificate with the right name
 * and another key is not the issuer; mbedTLS would try it as a fallback.) */
static bool issued(const mbedtls_x509_crt *parent,
                   const mbedtls_x509_crt *child) {
  return names_equal(&parent->subject_raw, &parent->subject, &child->issuer_raw,
                     &child->issuer) &&
         signature_ok(child, parent);
}

static bool self_signed(const mbedtls_x509_crt *c) { return issued(c, c); }

/* Does the list hold a certificate that issued c? */
static bool list_issued(const mbedtls_x509_crt *list,
                        const mbedtls_x509_crt *c) {
  for (; list && list->raw.p; list = list->next)
    if (issued(list, c))
      return true;
  return false;
}

/* Does the store hold c itself, or the same subject with the same key
 * (a root re-issued with new dates)? */
static bool store_holds(const mbedtls_x509_crt *store,
                        const mbedtls_x509_crt *c) {
  for (; store && store->raw.p; store = store->next)
    if (buf_equal(&store->pk_raw, &c->pk_raw) &&
        names_equal(&store->subject_raw, &store->subject, &c->subject_raw,
                    &c->subject))
      return true;
  return false;
}

/* Does c's extendedKeyUsage (if any) allow TLS server authentication? */
static bool server_auth_ok(const mbedtls_x509_crt *c) {
  return mbedtls_x509_crt_check_extended_key_usage(
             c, MBEDTLS_OID_SERVER_AUTH,
             MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH)) == 0;
}

/* Seconds since the epoch of an X.509 time (UTC), by days from the civil
 * date (H. Hinnant's algorithm), so no timegm() is needed. */
static int64_t x509_time_seconds(const mbedtls_x509_time *t) {
  int64_t y = t->year - (t->mon <= 2);
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t mp = (t->mon + 9) % 12;
  int64_t doy = (153 * mp + 2) / 5 + t->day - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  int64_t days = era * 146097 + doe - 719468;
  return days * 86400 + t->hour * 3600 + t->min * 60 + t->sec;
}

/* ---------------------------------------------------------------- chains */

/* What the leaf's extensions unknown to mbedTLS told us. */
typedef struct leaf_ext_s {
  bool sct;
  bool must_staple;
} leaf_ext_t;

static int leaf_ext_cb(void *arg, const mbedtls_x509_crt *crt,
                       const mbedtls_x509_buf *oid, int critical,
                       const unsigned char *p, const unsigned char *end) {
  leaf_ext_t *x = arg;
  (void)crt;
  (void)critical;
  (void)p;
  (void)end;
  if (oid->len == sizeof(OID_CT_PRECERT_SCTS) - 1 &&
      memcmp(oid->p, OID_CT_PRECERT_SCTS, oid->len) == 0)
    x->sct = true;
  if (oid->len == sizeof(OID_TLS_FEATURE) - 1 &&
      memcmp(oid->p, OID_TLS_FEATURE, oid->len) == 0)
    x->must_staple = true;
  /* Accept every extension: this parse only looks, and the TLS layer
   * already accepted the certificate. */
  return 0;
}

/* The sent chain parsed once, without copying the DER. */
typedef struct chain_s {
  mbedtls_x509_crt list;
  const mbedtls_x509_crt *v[PATH_MAX_DEPTH * 2];
  size_t n;
  leaf_ext_t leaf_ext;
} chain_t;

/* Parse at most the first PATH_MAX_DEPTH*2 certificates (a longer chain is
 * not one a client would walk). -1 on ENOMEM or bad DER. */
static int chain_parse(chain_t *c, const stls_cert_t *certs, size_t n) {
  const mbedtls_x509_crt *p;
  size_t i;

  mbedtls_x509_crt_init(&c->list);
  memset(&c->leaf_ext, 0, sizeof(c->leaf_ext));
  c->n = 0;
  if (n > sizeof(c->v) / sizeof(c->v[0]))
    n = sizeof(c->v) / sizeof(c->v[0]);
  for (i = 0; i < n; i++) {
    if (!certs[i].der ||
        mbedtls_x509_crt_parse_der_with_ext_cb(
            &c->list, certs[i].der, certs[i].der_len, 0,
            i == 0 ? leaf_ext_cb : NULL, i == 0 ? &c->leaf_ext : NULL) != 0)
      return -1;
  }
  for (p = &c->list; p && p->raw.p; p = p->next)
    c->v[c->n++] = p;
  return 0;
}

/* The path from the leaf upwards (see stls_chain_facts_t), leaf excluded.
 * Pool certificates are taken only when no sent certificate issued the
 * current one and the store holds no issuer of it either, so the pool fills
 * gaps but never lengthens a path that already reaches the store. Without
 * a pool the store plays no part. */
typedef struct path_s {
  const mbedtls_x509_crt *v[PATH_MAX_DEPTH];
  bool from_pool[PATH_MAX_DEPTH];
  size_t n;
  bool sent_used[PATH_MAX_DEPTH * 2];
} path_t;

static bool path_has(const path_t *path, const mbedtls_x509_crt *c) {
  for (size_t i = 0; i < path->n; i++)
    if (path->v[i] == c)
      return true;
  return false;
}

static void path_build(const chain_t *c, const mbedtls_x509_crt *store,
                       const mbedtls_x509_crt *pool, path_t *path) {
  const mbedtls_x509_crt *cur = c->v[0];
  memset(path, 0, sizeof(*path));

  while (path->n < PATH_MAX_DEPTH && !self_signed(cur)) {
    const mbedtls_x509_crt *best = NULL, *p;
    size_t best_i = 0;
    bool best_pool = false;

    for (size_t i = 1; i < c->n && !best; i++) {
      if (!path->sent_used[i] && c->v[i] != cur && issued(c->v[i], cur)) {
        best = c->v[i];
        best_i = i;
      }
    }
    if (!best && pool && !list_issued(store, cur)) {
      for (p = pool; p && p->raw.p && !best; p = p->next) {
        if (p != cur && !path_has(path, p) && issued(p, cur)) {
          best = p;
          best_pool = true;
        }
      }
    }
    if (!best)
      break;
    if (!best_pool)
      path->sent_used[best_i] = true;
    path->from_pool[path->n] = best_pool;
    path->v[path->n++] = best;
    cur = best;
  }
}

/* Postfix's smtp_tls_scert_verifydepth default: at most this many
 * intermediates between the leaf and the trust anchor (OpenSSL's meaning of
 * a verify depth, and mbedTLS's of MBEDTLS_X509_MAX_INTERMEDIATE_CA). */
#define POSTFIX_VERIFY_DEPTH 9
/* The longest path we can call trusted: Postfix's depth, or less when
 * mbedTLS is built for less (8 by default). */
#define VERIFY_MAX_INTERMEDIATES                                               \
  (MBEDTLS_X509_MAX_INTERMEDIATE_CA < POSTFIX_VERIFY_DEPTH                     \
       ? MBEDTLS_X509_MAX_INTERMEDIATE_CA                                      \
       : POSTFIX_VERIFY_DEPTH)

/* Intermediates on the path below the trust anchor: up to the first
 * certificate the store holds an issuer of, or a self-signed one. */
static size_t path_depth(const chain_t *c, const path_t *path,
                         const mbedtls_x509_crt *store) {
  const mbedtls_x509_crt *cur = c->v[0];
  size_t n = 0;

  for (size_t i = 0; i < path->n && !list_issued(store, cur); i++) {
    cur = path->v[i];
    if (self_signed(cur))
      break;
    n++;
  }
  return n;
}

/* mbedTLS's verification of v[0] (the leaf) with v[1..n) as candidate
 * parents, against store and our profile, no name. */
static int mbed_verify(const mbedtls_x509_crt *const *v, size_t n,
                       const mbedtls_x509_crt *store, uint32_t *flags) {
  mbedtls_x509_crt list;
  int rc = 0;

  *flags = 0;
  mbedtls_x509_crt_init(&list);
  for (size_t i = 0; rc == 0 && i < n; i++)
    if (mbedtls_x509_crt_parse_der_nocopy(&list, v[i]->raw.p, v[i]->raw.len) !=
        0)
      rc = -1;
  if (rc == 0 &&
      mbedtls_x509_crt_verify_with_profile(&list, (mbedtls_x509_crt *)store,
                                           NULL, &postfix_profile, NULL, flags,
                                           NULL, NULL) != 0 &&
      *flags == 0)
    *flags = MBEDTLS_X509_BADCERT_OTHER;
  if (rc != 0)
    *flags = MBEDTLS_X509_BADCERT_OTHER;
  mbedtls_x509_crt_free(&list);
  return rc;
}

/* What mbedTLS would have said about one certificate below the part of a
 * too-long path it can verify: its dates, its signature hash and key size
 * under our profile (its signature itself was checked when the path was
 * built). */
static uint32_t cert_flags(const mbedtls_x509_crt *crt) {
  uint32_t f = 0;

  if (mbedtls_x509_time_is_past(&crt->valid_to))
    f |= MBEDTLS_X509_BADCERT_EXPIRED;
  if (mbedtls_x509_time_is_future(&crt->valid_from))
    f |= MBEDTLS_X509_BADCERT_FUTURE;
  if (!(postfix_profile.allowed_mds & MBEDTLS_X509_ID_FLAG(crt->sig_md)))
    f |= MBEDTLS_X509_BADCERT_BAD_MD;
  if (mbedtls_pk_get_type(&crt->pk) == MBEDTLS_PK_RSA &&
      mbedtls_pk_get_bitlen(&crt->pk) < postfix_profile.rsa_min_bitlen)
    f |= MBEDTLS_X509_BADCERT_BAD_KEY;
  return f;
}

/* Verify with mbedTLS over [leaf, path..., remaining sent], the order in
 * which its parent search (trust store first, then the certificates after
 * the child) finds every parent wherever the server put it.
 *
 * A path with more intermediates than VERIFY_MAX_INTERMEDIATES is not
 * trusted, with the reason STLS_X509_BADCERT_CHAIN_TOO_LONG. mbedTLS gives
 * up on a path longer than it allows with every flag bit set (untrusted,
 * expired, revoked, ...), which would be false reasons: then the top of
 * the path, as long as mbedTLS allows, is verified against the store, and
 * the certificates below it are checked one by one (cert_flags), so every
 * other reason reported is true. */
static int path_verify(const chain_t *c, const path_t *path,
                       const mbedtls_x509_crt *store, uint32_t *flags) {
  const mbedtls_x509_crt *v[PATH_MAX_DEPTH * 3 + 1];
  size_t n = 0, i, depth = path_depth(c, path, store), from = 0;
  uint32_t low = 0;

  *flags = 0;
  if (depth > MBEDTLS_X509_MAX_INTERMEDIATE_CA) {
    /* Hand mbedTLS the path from intermediate `from` up. */
    from = depth - MBEDTLS_X509_MAX_INTERMEDIATE_CA;
    low = cert_flags(c->v[0]);
    for (i = 0; i < from; i++)
      low |= cert_flags(path->v[i]);
    for (i = from; i < path->n; i++)
      v[n++] = path->v[i];
  } else {
    v[n++] = c->v[0];
    for (i = 0; i < path->n; i++)
      v[n++] = path->v[i];
    for (i = 1; i < c->n; i++)
      if (!path->sent_used[i])
        v[n++] = c->v[i];
  }
  if (mbed_verify(v, n, store, flags) != 0)
    return -1;
  *flags |= low;
  if (depth > VERIFY_MAX_INTERMEDIATES)
    *flags |= STLS_X509_BADCERT_CHAIN_TOO_LONG;
  /* OpenSSL's TLS client checks the purpose "ssl_server" too, which mbedTLS
   * leaves to the caller: an extendedKeyUsage on the leaf or on a CA of
   * the path must allow serverAuth (X509_V_ERR_INVALID_PURPOSE). */
  if (!server_auth_ok(c->v[0]))
    *flags |= MBEDTLS_X509_BADCERT_EXT_KEY_USAGE;
  for (i = 0; i < path->n; i++)
    if (!server_auth_ok(path->v[i]))
      *flags |= MBEDTLS_X509_BADCERT_EXT_KEY_USAGE;
  return *flags ? 1 : 0;
}

/* path_verify(), except that an empty store trusts nothing. */
static int path_check(const chain_t *c, const path_t *path,
                      const mbedtls_x509_crt *store, uint32_t *flags) {
  if (!store || !store->raw.p) {
    *flags = MBEDTLS_X509_BADCERT_NOT_TRUSTED;
    return 1;
  }
  return path_verify(c, path, store, flags);
}

static int chain_verify(const chain_t *c, const mbedtls_x509_crt *store,
                        const mbedtls_x509_crt *pool, uint32_t *flags) {
  path_t path;
  path_build(c, store, pool, &path);
  return path_check(c, &path, store, flags);
}

int stls_chain_verify(const stls_cert_t *chain, size_t n,
                      const mbedtls_x509_crt *store,
                      const mbedtls_x509_crt *extra_intermediates,
                      uint32_t *flags) {
  chain_t c;
  int rc;

  if (n == 0 || !chain) {
    *flags = MBEDTLS_X509_BADCERT_MISSING;
    return 1;
  }
  if (chain_parse(&c, chain, n) != 0) {
    mbedtls_x509_crt_free(&c.list);
    *flags = MBEDTLS_X509_BADCERT_OTHER;
    return -1;
  }
  rc = chain_verify(&c, store, extra_intermediates, flags);
  mbedtls_x509_crt_free(&c.list);
  return rc;
}

/* stls_chain_verify_stores() for the stores from `first` on. */
static int verify_stores_from(const stls_cert_t *chain, size_t n,
                              const stls_trust_stores_t *s, size_t first,
                              stls_store_verdict_t *out) {
  const mbedtls_x509_crt *pool = stls_trust_stores_pool(s);
  chain_t c;
  path_t sent_path;
  size_t i;
  int rc = 0;

  if (first >= s->n)
    return 0;
  for (i = first; i < s->n; i++) {
    out[i].store = s->store[i].name;
    out[i].trusted = out[i].trusted_with_pool = false;
    out[i].flags = MBEDTLS_X509_BADCERT_MISSING;
  }
  if (n == 0 || !chain)
    return 0;
  if (chain_parse(&c, chain, n) != 0) {
    mbedtls_x509_crt_free(&c.list);
    return -1;
  }
  /* Without the pool the path does not depend on the store: build it
   * once. */
  path_build(&c, NULL, NULL, &sent_path);
  for (i = first; i < s->n && rc == 0; i++) {
    uint32_t pool_flags;
    const mbedtls_x509_crt *store = &s->store[i].crt;
    int r = path_check(&c, &sent_path, store, &out[i].flags);
    out[i].trusted = r == 0;
    if (r >= 0 && !out[i].trusted && pool)
      r = chain_verify(&c, store, pool, &pool_flags);
    if (r < 0)
      rc = -1;
    out[i].trusted_with_pool = r == 0;
  }
  mbedtls_x509_crt_free(&c.list);
  return rc;
}

int stls_chain_verify_stores(const stls_cert_t *chain, size_t n,
                             const stls_trust_stores_t *s,
                             stls_store_verdict_t *out) {
  return verify_stores_from(chain, n, s, 0, out);
}

/* ----------------------------------------------------------------- facts */

/* Signature and key facts over one certificate that is sent or on the
 * path. */
static void key_facts(const mbedtls_x509_crt *crt,
                      const mbedtls_x509_crt *store, stls_chain_facts_t *f) {
  bool root = self_signed(crt);
  mbedtls_md_type_t md;
  mbedtls_pk_type_t pk;

  if (!root && mbedtls_oid_get_sig_alg(&crt->sig_oid, &md, &pk) == 0 &&
      (md == MBEDTLS_MD_SHA1 || md == MBEDTLS_MD_MD5))
    f->sha1_signature = true;
  if (mbedtls_pk_get_type(&crt->pk) == MBEDTLS_PK_RSA &&
      !(root && store_holds(store, crt))) {
    int bits = (int)mbedtls_pk_get_bitlen(&crt->pk);
    if (f->min_rsa_bits == 0 || bits < f->min_rsa_bits)
      f->min_rsa_bits = bits;
    if (bits < 2048)
      f->weak_rsa_key = true;
  }
}

int stls_chain_facts(const stls_cert_t *chain, size_t n,
                     const mbedtls_x509_crt *store,
                     const mbedtls_x509_crt *pool, time_t now,
                     stls_chain_facts_t *out) {
  chain_t c;
  path_t sent_path, pool_path;
  const mbedtls_x509_crt *leaf;
  int64_t from, to, t = (int64_t)now;
  size_t i, j;

  memset(out, 0, sizeof(*out));
  if (n == 0 || !chain)
    return -1;
  if (chain_parse(&c, chain, n) != 0) {
    mbedtls_x509_crt_free(&c.list);
    return -1;
  }
  leaf = c.v[0];
  out->n_sent = n;

  /* Order, roots, duplicates. */
  out->order_ok = true;
  for (i = 0; i + 1 < c.n; i++)
    if (!issued(c.v[i + 1], c.v[i]))
      out->order_ok = false;
  out->leaf_self_signed = self_signed(leaf);
  for (i = 1; i < c.n; i++)
    if (self_signed(c.v[i]))
      out->root_included = true;
  for (i = 0; i < c.n; i++)
    for (j = i + 1; j < c.n; j++)
      if (buf_equal(&c.v[i]->raw, &c.v[j]->raw))
        out->duplicate_certs = true;

  /* The path from the sent certificates alone; every other sent one is
   * unnecessary. A duplicate is one too: only one copy can be on the
   * path. */
  path_build(&c, store, NULL, &sent_path);
  for (i = 1; i < c.n; i++)
    if (!sent_path.sent_used[i])
      out->unnecessary_certs = true;

  /* Trust as sent and with the pool. */
  path_build(&c, store, pool, &pool_path);
  if (path_check(&c, &sent_path, store, &out->flags_as_sent) < 0)
    goto nomem;
  /* Mostly the pool adds nothing: the same path needs no second check. */
  if (pool_path.n == sent_path.n &&
      memcmp(pool_path.v, sent_path.v, sent_path.n * sizeof(sent_path.v[0])) ==
          0)
    out->flags_with_known_intermediates = out->flags_as_sent;
  else if (path_check(&c, &pool_path, store,
                      &out->flags_with_known_intermediates) < 0)
    goto nomem;
  out->trusted_as_sent = out->flags_as_sent == 0;
  out->trusted_with_known_intermediates =
      out->flags_with_known_intermediates == 0;
  out->missing_intermediate =
      (out->flags_as_sent & MBEDTLS_X509_BADCERT_NOT_TRUSTED) &&
      !(out->flags_with_known_intermediates & MBEDTLS_X509_BADCERT_NOT_TRUSTED);

  /* Signatures and keys: everything sent, plus pool certificates the path
   * needed. */
  for (i = 0; i < c.n; i++)
    key_facts(c.v[i], store, out);
  for (i = 0; i < pool_path.n; i++)
    if (pool_path.from_pool[i])
      key_facts(pool_path.v[i], store, out);

  /* Time. */
  from = x509_time_seconds(&leaf->valid_from);
  to = x509_time_seconds(&leaf->valid_to);
  out->leaf_validity_days = (long)((to - from) / 86400);
  out->leaf_validity_too_long = to - from > LEAF_MAX_VALIDITY_SECONDS;
  out->leaf_expired = t > to;
  out->leaf_not_yet_valid = t < from;
  for (i = 1; i < c.n; i++)
    if (t > x509_time_seconds(&c.v[i]->valid_to))
      out->intermediate_expired = true;

  /* Leaf extensions. */
  out->leaf_server_auth = server_auth_ok(leaf);
  out->leaf_has_sct = c.leaf_ext.sct;
  out->leaf_must_staple = c.leaf_ext.must_staple;

  mbedtls_x509_crt_free(&c.list);
  return 0;

nomem:
  mbedtls_x509_crt_free(&c.list);
  return -1;
}

/* ---------------------------------------------------------------- stores */

stls_trust_stores_t *stls_trust_stores_new(void) {
  stls_trust_stores_t *s;
  /* Parsing keys may go through PSA when mbedTLS is built with
   * MBEDTLS_USE_PSA_CRYPTO; initialising twice is harmless. */
  if (psa_crypto_init() != PSA_SUCCESS)
    return NULL;
  s = calloc(1, sizeof(*s));
  if (!s)
    return NULL;
  for (size_t i = 0; i < STLS_TRUST_STORES_MAX; i++)
    mbedtls_x509_crt_init(&s->store[i].crt);
  mbedtls_x509_crt_init(&s->pool);
  return s;
}

void stls_trust_stores_free(stls_trust_stores_t *s) {
  if (!s)
    return;
  for (size_t i = 0; i < STLS_TRUST_STORES_MAX; i++)
    mbedtls_x509_crt_free(&s->store[i].crt);
  mbedtls_x509_crt_free(&s->pool);
  free(s);
}

static bool name_valid(const char *name, size_t len) {
  if (len == 0 || len > STLS_TRUST_STORE_NAME_MAX)
    return false;
  for (size_t i = 0; i < len; i++) {
    char ch = name[i];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
          (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-'))
      return false;
  }
  return true;
}

/* Parse file into crt; at least one certificate must be usable. */
static int load_file(mbedtls_x509_crt *crt, const char *what, const char *file,
                     char *err, size_t errlen) {
  int rc = mbedtls_x509_crt_parse_file(crt, file);
  if (rc < 0) {
    char buf[128];
    mbedtls_strerror(rc, buf, sizeof(buf));
    snprintf(err, errlen, "cannot load %s %s: %s", what, file, buf);
    return -1;
  }
  if (!crt->raw.p) {
    snprintf(err, errlen, "%s %s holds no usable certificate", what, file);
    return -1;
  }
  return 0;
}

static int pool_add(stls_trust_stores_t *s, const mbedtls_x509_crt *c) {
  const mbedtls_x509_crt *p;
  for (p = &s->pool; p && p->raw.p; p = p->next)
    if (buf_equal(&p->raw, &c->raw))
      return 0; /* already known */
  if (mbedtls_x509_crt_parse_der(&s->pool, c->raw.p, c->raw.len) != 0)
    return -1;
  s->pool_n++;
  return 0;
}

int stls_trust_stores_add(stls_trust_stores_t *s, const char *name,
                          const char *file, char *err, size_t errlen) {
  store_t *st;
  const mbedtls_x509_crt *c;
  size_t len = name ? strlen(name) : 0;

  if (!name_valid(name ? name : "", len)) {
    snprintf(err, errlen,
             "bad trust store name \"%s\" (1-%d of A-Z a-z 0-9 . _ -)",
             name ? name : "", STLS_TRUST_STORE_NAME_MAX);
    return -1;
  }
  for (size_t i = 0; i < s->n; i++)
    if (strcmp(s->store[i].name, name) == 0) {
      snprintf(err, errlen, "trust store \"%s\" given twice", name);
      return -1;
    }
  if (s->n >= STLS_TRUST_STORES_MAX) {
    snprintf(err, errlen, "too many trust stores (at most %d)",
             STLS_TRUST_STORES_MAX);
    return -1;
  }
  st = &s->store[s->n];
  if (load_file(&st->crt, "trust store", file, err, errlen) != 0) {
    mbedtls_x509_crt_free(&st->crt);
    mbedtls_x509_crt_init(&st->crt);
    return -1;
  }
  memcpy(st->name, name, len + 1);
  s->n++;
  /* Intermediates that ride along in a store file are known ones. */
  for (c = &st->crt; c && c->raw.p; c = c->next)
    if (mbedtls_x509_crt_get_ca_istrue(c) == 1 &&
        !buf_equal(&c->subject_raw, &c->issuer_raw) && pool_add(s, c) != 0) {
      snprintf(err, errlen, "out of memory");
      return -1;
    }
  return 0;
}

int stls_trust_stores_add_spec(stls_trust_stores_t *s, const char *spec,
                               char *err, size_t errlen) {
  const char *eq = spec ? strchr(spec, '=') : NULL;
  char name[STLS_TRUST_STORE_NAME_MAX + 1];

  if (!eq || eq[1] == '\0') {
    snprintf(err, errlen, "trust store \"%s\" is not NAME=FILE",
             spec ? spec : "");
    return -1;
  }
  if ((size_t)(eq - spec) > STLS_TRUST_STORE_NAME_MAX || eq == spec) {
    snprintf(err, errlen, "bad trust store name in \"%s\"", spec);
    return -1;
  }
  memcpy(name, spec, (size_t)(eq - spec));
  name[eq - spec] = '\0';
  return stls_trust_stores_add(s, name, eq + 1, err, errlen);
}

int stls_trust_stores_add_intermediates(stls_trust_stores_t *s,
                                        const char *file, char *err,
                                        size_t errlen) {
  mbedtls_x509_crt tmp;
  const mbedtls_x509_crt *c;
  int rc = 0;

  mbedtls_x509_crt_init(&tmp);
  if (load_file(&tmp, "intermediates file", file, err, errlen) != 0)
    rc = -1;
  for (c = &tmp; rc == 0 && c && c->raw.p; c = c->next)
    if (pool_add(s, c) != 0) {
      snprintf(err, errlen, "out of memory");
      rc = -1;
    }
  mbedtls_x509_crt_free(&tmp);
  return rc;
}

int stls_trust_stores_load(stls_trust_stores_t **out, const char *ca_file,
                           const char *const *specs, size_t n_specs,
                           const char *intermediates_file, char *err,
                           size_t errlen) {
  stls_trust_stores_t *s = stls_trust_stores_new();
  size_t i;

  *out = NULL;
  if (!s) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  if (ca_file && stls_trust_stores_add(s, "default", ca_file, err, errlen))
    goto fail;
  for (i = 0; i < n_specs; i++)
    if (stls_trust_stores_add_spec(s, specs[i], err, errlen) != 0)
      goto fail;
  if (s->n == 0 && stls_trust_stores_add(s, "system", STLS_DEFAULT_CA_FILE, err,
                                         errlen) != 0)
    goto fail;
  if (intermediates_file && stls_trust_stores_add_intermediates(
                                s, intermediates_file, err, errlen) != 0)
    goto fail;
  *out = s;
  return 0;
fail:
  stls_trust_stores_free(s);
  return -1;
}

size_t stls_trust_stores_count(const stls_trust_stores_t *s) {
  return s ? s->n : 0;
}

const char *stls_trust_stores_name(const stls_trust_stores_t *s, size_t i) {
  return s && i < s->n ? s->store[i].name : NULL;
}

const mbedtls_x509_crt *stls_trust_stores_crt(const stls_trust_stores_t *s,
                                              size_t i) {
  return s && i < s->n ? &s->store[i].crt : NULL;
}

const mbedtls_x509_crt *stls_trust_stores_pool(const stls_trust_stores_t *s) {
  return s && s->pool_n > 0 ? &s->pool : NULL;
}

/* ----------------------------------------------------------------- judge */

/* Verdicts remembered per judge; the table is simply emptied when half
 * full. */
#define JUDGE_CACHE_SLOTS 4096
/* A verdict is reused for at most this long, and never past the first
 * notBefore or notAfter of a sent certificate that lies ahead: the
 * validity window in which it was reached. The bound also lets a change
 * of a store certificate's validity show within the hour. */
#define JUDGE_TTL_SECONDS 3600

/* What one chain (by SHA-256 of its certificates as sent) got: trust in
 * every store and its quality facts. */
typedef struct judge_entry_s {
  unsigned char key[32];
  size_t n;
  stls_store_verdict_t v[STLS_TRUST_STORES_MAX];
  stls_chain_facts_t facts;
  bool have_facts;
  int64_t until; /* reuse while the clock is before this */
} judge_entry_t;

struct stls_chain_judge_s {
  stls_trust_stores_t *stores;
  judge_entry_t **cache;
  size_t cache_used;
  time_t (*clock)(time_t *);
  uint64_t hits, misses;
};

int stls_chain_judge_new(stls_chain_judge_t **out, const char *ca_file,
                         const char *const *specs, size_t n_specs,
                         const char *intermediates_file, char *err,
                         size_t errlen) {
  stls_chain_judge_t *j = calloc(1, sizeof(*j));

  *out = NULL;
  if (j)
    j->clock = time;
  if (!j || !(j->cache = calloc(JUDGE_CACHE_SLOTS, sizeof(*j->cache)))) {
    snprintf(err, errlen, "out of memory");
    stls_chain_judge_free(j);
    return -1;
  }
  if (stls_trust_stores_load(&j->stores, ca_file, specs, n_specs,
                             intermediates_file, err, errlen) != 0) {
    stls_chain_judge_free(j);
    return -1;
  }
  *out = j;
  return 0;
}

static void judge_cache_clear(stls_chain_judge_t *j) {
  for (size_t i = 0; i < JUDGE_CACHE_SLOTS; i++) {
    free(j->cache[i]);
    j->cache[i] = NULL;
  }
  j->cache_used = 0;
}

void stls_chain_judge_free(stls_chain_judge_t *j) {
  if (!j)
    return;
  if (j->cache)
    judge_cache_clear(j);
  free(j->cache);
  stls_trust_stores_free(j->stores);
  free(j);
}

const stls_trust_stores_t *
stls_chain_judge_stores(const stls_chain_judge_t *j) {
  return j->stores;
}

void stls__chain_judge_set_clock(stls_chain_judge_t *j,
                                 time_t (*clock)(time_t *)) {
  j->clock = clock ? clock : time;
}

void stls_chain_judge_stats(const stls_chain_judge_t *j, uint64_t *hits,
                            uint64_t *misses) {
  *hits = j->hits;
  *misses = j->misses;
}

/* Seconds since the epoch of an RFC 3339 time as cert.c writes it
 * ("2024-01-01T00:00:00Z"), or -1. */
static int64_t rfc3339_seconds(const char *s) {
  mbedtls_x509_time t;
  memset(&t, 0, sizeof(t));
  if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2dZ", &t.year, &t.mon, &t.day, &t.hour,
             &t.min, &t.sec) != 6)
    return -1;
  return x509_time_seconds(&t);
}

/* Until when a verdict reached at `now` holds (see JUDGE_TTL_SECONDS). */
static int64_t verdict_until(const stls_tls_result_t *t, int64_t now) {
  int64_t until = now + JUDGE_TTL_SECONDS;
  for (size_t i = 0; i < t->n_chain; i++) {
    int64_t from = rfc3339_seconds(t->chain[i].not_before);
    int64_t to = rfc3339_seconds(t->chain[i].not_after);
    if (from > now && from < until)
      until = from;
    if (to >= now && to + 1 < until)
      until = to + 1;
  }
  return until;
}

/* The verdict for a chain, judged once per distinct chain and validity
 * window. */
static const judge_entry_t *judge_cached(stls_chain_judge_t *j,
                                         const stls_tls_result_t *t) {
  unsigned char key[32];
  mbedtls_sha256_context sha;
  judge_entry_t *e, **stale = NULL;
  size_t slot, probes;
  int64_t now = (int64_t)j->clock(NULL);

  mbedtls_sha256_init(&sha);
  mbedtls_sha256_starts(&sha, 0);
  for (size_t i = 0; i < t->n_chain; i++)
    mbedtls_sha256_update(&sha, t->chain[i].der, t->chain[i].der_len);
  mbedtls_sha256_finish(&sha, key);
  mbedtls_sha256_free(&sha);

  memcpy(&slot, key, sizeof(slot));
  for (probes = 0; probes < 8; probes++) {
    judge_entry_t **p = &j->cache[(slot + probes) % JUDGE_CACHE_SLOTS];
    if (!*p)
      break;
    if (memcmp((*p)->key, key, sizeof(key)) == 0) {
      if (now < (*p)->until) {
        j->hits++;
        return *p;
      }
      stale = p; /* judged in another validity window: judge again */
      break;
    }
  }
  j->misses++;
  e = calloc(1, sizeof(*e));
  if (!e)
    return NULL;
  memcpy(e->key, key, sizeof(key));
  e->until = verdict_until(t, now);
  e->n = stls_trust_stores_count(j->stores);
  /* No name is passed anywhere: trust and names are separate facts. The
   * facts verify the chain against the first store, with and without the
   * pool, exactly as stls_chain_verify_stores() would: its verdict for
   * that store is taken from them, the other stores are verified apart. */
  e->have_facts = stls_chain_facts(t->chain, t->n_chain,
                                   stls_trust_stores_crt(j->stores, 0),
                                   stls_trust_stores_pool(j->stores),
                                   (time_t)now, &e->facts) == 0;
  if (e->have_facts && e->n > 0) {
    e->v[0].store = stls_trust_stores_name(j->stores, 0);
    e->v[0].flags = e->facts.flags_as_sent;
    e->v[0].trusted = e->facts.trusted_as_sent;
    e->v[0].trusted_with_pool =
        e->facts.trusted_as_sent || e->facts.trusted_with_known_intermediates;
  }
  if (verify_stores_from(t->chain, t->n_chain, j->stores, e->have_facts ? 1 : 0,
                         e->v) != 0) {
    free(e);
    return NULL;
  }

  if (stale) {
    free(*stale);
    *stale = e;
    return e;
  }
  if (j->cache_used >= JUDGE_CACHE_SLOTS / 2)
    judge_cache_clear(j);
  for (probes = 0; probes < 8; probes++) {
    judge_entry_t **p = &j->cache[(slot + probes) % JUDGE_CACHE_SLOTS];
    if (!*p) {
      *p = e;
      j->cache_used++;
      return e;
    }
  }
  /* No free slot nearby: evict the first so the entry stays owned. */
  free(j->cache[slot % JUDGE_CACHE_SLOTS]);
  j->cache[slot % JUDGE_CACHE_SLOTS] = e;
  return e;
}

int stls_chain_judge(stls_chain_judge_t *j, const char *mx,
                     stls_tls_result_t *out) {
  const judge_entry_t *e;

  out->trusted = false;
  out->trust_reasons = STLS_TRUST_REASON(OTHER);
  if (out->n_chain == 0)
    return 0;
  e = judge_cached(j, out);
  if (!e)
    return -1;
  out->stores = calloc(e->n, sizeof(*out->stores));
  if (!out->stores)
    return -1;
  out->n_stores = e->n;
  for (size_t i = 0; i < e->n; i++) {
    stls_store_trust_t *st = &out->stores[i];
    stls_strlcpy(st->name, e->v[i].store, sizeof(st->name));
    st->trusted = e->v[i].trusted;
    st->reasons = st->trusted ? 0 : stls_cert_trust_reasons(e->v[i].flags);
    if (!st->trusted && st->reasons == 0)
      st->reasons = STLS_TRUST_REASON(OTHER);
    st->trusted_with_pool = e->v[i].trusted_with_pool;
  }
  out->trusted = out->stores[0].trusted;
  out->trust_reasons = out->stores[0].reasons;
  if (e->have_facts) {
    out->facts = malloc(sizeof(*out->facts));
    if (!out->facts)
      return -1;
    memcpy(out->facts, &e->facts, sizeof(*out->facts));
    out->expired = e->facts.leaf_expired;
  }
  out->name_mx = stls_name_cert_matches(&out->chain[0], STLS_NAME_RFC6125, mx);
  return 0;
}
