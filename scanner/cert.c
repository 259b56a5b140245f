/* Certificate evaluation: facts about a chain as the server sent it. */
#include "stls/cert.h"
#include "stls/util.h"

#include <mbedtls/oid.h>
#include <mbedtls/sha256.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* OpenSSL's short names for the signature algorithms, so output compares
 * with what openssl x509 -text and posttls-finger -C print. */
static void sig_alg_name(const mbedtls_x509_crt *crt, char *out, size_t len) {
  mbedtls_md_type_t md;
  mbedtls_pk_type_t pk;
  const char *mdname = NULL;

  if (mbedtls_oid_get_sig_alg(&crt->sig_oid, &md, &pk) != 0) {
    /* Unknown to mbedTLS (for example Ed25519): the dotted OID. */
    if (mbedtls_oid_get_numeric_string(out, len, &crt->sig_oid) < 0)
      stls_strlcpy(out, "unknown", len);
    return;
  }
  switch (md) {
  case MBEDTLS_MD_MD5: mdname = "MD5"; break;
  case MBEDTLS_MD_SHA1: mdname = "SHA1"; break;
  case MBEDTLS_MD_SHA224: mdname = "SHA224"; break;
  case MBEDTLS_MD_SHA256: mdname = "SHA256"; break;
  case MBEDTLS_MD_SHA384: mdname = "SHA384"; break;
  case MBEDTLS_MD_SHA512: mdname = "SHA512"; break;
  default: mdname = NULL; break;
  }
  if (pk == MBEDTLS_PK_RSASSA_PSS) {
    stls_strlcpy(out, "rsassaPss", len);
  } else if (pk == MBEDTLS_PK_ECDSA && mdname) {
    snprintf(out, len, "ecdsa-with-%s", mdname);
  } else if (pk == MBEDTLS_PK_RSA && mdname) {
    char lower[8];
    size_t i;
    for (i = 0; mdname[i] && i < sizeof(lower) - 1; i++)
      lower[i] = (char)(mdname[i] >= 'A' && mdname[i] <= 'Z' ? mdname[i] + 32
                                                             : mdname[i]);
    lower[i] = '\0';
    snprintf(out, len, "%sWithRSAEncryption", lower);
  } else {
    const char *desc = NULL;
    if (mbedtls_oid_get_sig_alg_desc(&crt->sig_oid, &desc) == 0 && desc)
      stls_strlcpy(out, desc, len);
    else
      stls_strlcpy(out, "unknown", len);
  }
}

/* A name value as a C string with every NUL byte shown as U+2400 (the
 * symbol for NUL): the name stays visible and, not being ASCII, can never
 * match a host (names.h). NULL on ENOMEM. */
static char *value_string(const unsigned char *p, size_t n) {
  static const char nul_sym[] = "\xe2\x90\x80";
  size_t nuls = 0, o = 0;
  char *s;

  for (size_t i = 0; i < n; i++)
    nuls += p[i] == 0;
  if (nuls == 0)
    return stls_strndup((const char *)p, n);
  s = malloc(n + nuls * (sizeof(nul_sym) - 2) + 1);
  if (!s)
    return NULL;
  for (size_t i = 0; i < n; i++) {
    if (p[i] == 0) {
      memcpy(s + o, nul_sym, sizeof(nul_sym) - 1);
      o += sizeof(nul_sym) - 1;
    } else {
      s[o++] = (char)p[i];
    }
  }
  s[o] = '\0';
  return s;
}

static bool is_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

/* The DN string of a name with NUL bytes in its values, which
 * mbedtls_x509_dn_gets() refuses: the values are copied with each NUL
 * replaced by a control byte that occurs nowhere in the name, mbedTLS
 * escapes that byte as "\XX" (RFC 4514, as it does every non-printable
 * byte), and that escape becomes "\00". NULL on ENOMEM. */
static char *dn_string_nul(const mbedtls_x509_name *dn) {
  bool used[32] = {false};
  size_t n = 0, i;
  unsigned char mark = 0;
  mbedtls_x509_name *copy;
  unsigned char *vals;
  size_t total = 0, off = 0;
  char buf[1024], esc[4], *out = NULL;

  for (const mbedtls_x509_name *x = dn; x; x = x->next, n++) {
    total += x->val.len;
    for (i = 0; i < x->val.len; i++)
      if (x->val.p[i] < 32)
        used[x->val.p[i]] = true;
  }
  for (i = 1; i < 32 && !mark; i++)
    if (!used[i])
      mark = (unsigned char)i;
  if (!mark)
    return stls_strdup(""); /* every control byte in one name: give up */
  copy = calloc(n ? n : 1, sizeof(*copy));
  vals = malloc(total ? total : 1);
  if (!copy || !vals)
    goto done;
  i = 0;
  for (const mbedtls_x509_name *x = dn; x; x = x->next, i++) {
    copy[i] = *x; /* keeps the oid and how it joins the next */
    copy[i].next = i + 1 < n ? &copy[i + 1] : NULL;
    copy[i].val.p = vals + off;
    for (size_t k = 0; k < x->val.len; k++)
      vals[off + k] = x->val.p[k] ? x->val.p[k] : mark;
    off += x->val.len;
  }
  if (mbedtls_x509_dn_gets(buf, sizeof(buf), copy) < 0) {
    out = stls_strdup("");
    goto done;
  }
  snprintf(esc, sizeof(esc), "%02X", mark);
  /* Walk the escapes: "\\" is a backslash, "\" + two hex digits a byte;
   * no other escape is followed by a hex digit. */
  for (char *p = buf; *p; p++) {
    if (p[0] != '\\')
      continue;
    if (p[1] == '\\') {
      p++;
      continue;
    }
    if (is_hex(p[1]) && is_hex(p[2])) {
      if (p[1] == esc[0] && p[2] == esc[1])
        p[1] = p[2] = '0';
      p += 2;
    }
  }
  out = stls_strdup(buf);
done:
  free(copy);
  free(vals);
  return out;
}

static bool dn_has_nul(const mbedtls_x509_name *dn) {
  for (; dn; dn = dn->next)
    if (dn->val.p && memchr(dn->val.p, 0, dn->val.len))
      return true;
  return false;
}

/* The DN as mbedTLS prints it ("C=US, O=Example, CN=mx.example.com"),
 * with a NUL byte in a value shown as "\00". NULL on ENOMEM. */
static char *dn_string(const mbedtls_x509_name *dn) {
  char buf[1024];
  int n = mbedtls_x509_dn_gets(buf, sizeof(buf), dn);
  if (n < 0)
    return dn_has_nul(dn) ? dn_string_nul(dn) : stls_strdup("");
  return stls_strdup(buf);
}

/* The last CN of the subject, NUL bytes shown (value_string), or NULL. */
static char *subject_cn(const mbedtls_x509_name *dn, bool *nomem) {
  const mbedtls_x509_name *last = NULL;
  char *s;
  for (; dn; dn = dn->next)
    if (dn->oid.p && MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &dn->oid) == 0)
      last = dn;
  if (!last)
    return NULL;
  s = value_string(last->val.p, last->val.len);
  *nomem = s == NULL;
  return s;
}

static void time_str(const mbedtls_x509_time *t, char *out, size_t len) {
  stls_time_rfc3339_fields(t->year, t->mon, t->day, t->hour, t->min, t->sec,
                           out, len);
}

int stls_cert_describe(const mbedtls_x509_crt *crt, stls_cert_t *out) {
  unsigned char digest[32];
  const mbedtls_x509_sequence *san;
  size_t n;

  bool nomem = false;

  memset(out, 0, sizeof(*out));
  out->subject = dn_string(&crt->subject);
  out->issuer = dn_string(&crt->issuer);
  out->subject_cn = subject_cn(&crt->subject, &nomem);
  if (!out->subject || !out->issuer || nomem)
    return -1;
  out->self_issued =
      crt->subject_raw.len == crt->issuer_raw.len &&
      memcmp(crt->subject_raw.p, crt->issuer_raw.p, crt->subject_raw.len) == 0;

  /* Only dNSName entries: the tag is context-specific [2]. A NUL inside
   * a name would cut it short as a C string and let
   * "good.example\0.evil.example" pass for good.example (the
   * CVE-2009-2408 class): value_string() keeps it visible as U+2400, and
   * such a name never matches (names.h). */
  for (san = &crt->subject_alt_names; san && san->buf.p; san = san->next) {
    if (san->buf.tag ==
        (MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_X509_SAN_DNS_NAME)) {
      char *name = value_string(san->buf.p, san->buf.len);
      int rc = name ? stls_strlist_push(&out->san_dns, name) : -1;
      free(name);
      if (rc != 0)
        return -1;
    }
  }

  time_str(&crt->valid_from, out->not_before, sizeof(out->not_before));
  time_str(&crt->valid_to, out->not_after, sizeof(out->not_after));
  stls_strlcpy(out->key_type, mbedtls_pk_get_name(&crt->pk),
               sizeof(out->key_type));
  out->key_bits = (int)mbedtls_pk_get_bitlen(&crt->pk);
  sig_alg_name(crt, out->sig_alg, sizeof(out->sig_alg));

  {
    /* The DER integer may carry a leading 00 sign byte; print the number
     * as openssl does, without it. */
    const unsigned char *sp = crt->serial.p;
    n = crt->serial.len;
    while (n > 1 && sp[0] == 0) {
      sp++;
      n--;
    }
    if (n > (sizeof(out->serial) - 1) / 2)
      n = (sizeof(out->serial) - 1) / 2;
    stls_hex(sp, n, out->serial);
  }

  out->der = malloc(crt->raw.len);
  if (!out->der)
    return -1;
  memcpy(out->der, crt->raw.p, crt->raw.len);
  out->der_len = crt->raw.len;
  out->spki_off = (size_t)(crt->pk_raw.p - crt->raw.p);
  out->spki_len = crt->pk_raw.len;

  mbedtls_sha256(crt->raw.p, crt->raw.len, digest, 0);
  stls_hex(digest, sizeof(digest), out->sha256);
  mbedtls_sha256(crt->pk_raw.p, crt->pk_raw.len, digest, 0);
  stls_hex(digest, sizeof(digest), out->spki_sha256);
  return 0;
}

int stls_cert_describe_chain(const mbedtls_x509_crt *chain,
                             stls_tls_result_t *out) {
  size_t n = 0;
  const mbedtls_x509_crt *c;

  for (c = chain; c && c->raw.p; c = c->next)
    n++;
  if (n == 0)
    return 0;
  out->chain = calloc(n, sizeof(*out->chain));
  if (!out->chain)
    return -1;
  for (c = chain; c && c->raw.p; c = c->next) {
    if (stls_cert_describe(c, &out->chain[out->n_chain]) != 0) {
      out->n_chain++; /* so the caller frees the partial entry */
      return -1;
    }
    out->n_chain++;
  }
  return 0;
}

static size_t be24(const unsigned char *p) {
  return ((size_t)p[0] << 16) | ((size_t)p[1] << 8) | p[2];
}

int stls_cert_chain_from_flight(const unsigned char *raw, size_t len,
                                stls_tls_result_t *out) {
  unsigned char *hs = malloc(len ? len : 1);
  size_t hl = 0, off = 0, q = 0;
  int rc = 0;
  if (!hs)
    return -1;
  /* Handshake records until anything else (ChangeCipherSpec, alert). */
  while (off + 5 <= len) {
    size_t rlen = ((size_t)raw[off + 3] << 8) | raw[off + 4];
    if (raw[off] != 22)
      break;
    if (off + 5 + rlen > len)
      rlen = len - off - 5; /* cut short: use what arrived */
    memcpy(hs + hl, raw + off + 5, rlen);
    hl += rlen;
    off += 5 + rlen;
  }
  while (q + 4 <= hl) {
    size_t mlen = be24(hs + q + 1);
    if (q + 4 + mlen > hl)
      break;
    if (hs[q] == 11 && mlen >= 3) { /* Certificate */
      const unsigned char *b = hs + q + 4;
      size_t total = be24(b), pos = 3, n = 0;
      if (total + 3 < mlen)
        mlen = total + 3;
      out->chain = calloc(32, sizeof(*out->chain));
      if (!out->chain) {
        rc = -1;
        break;
      }
      while (pos + 3 <= mlen && n < 32) {
        size_t clen = be24(b + pos);
        mbedtls_x509_crt crt;
        pos += 3;
        if (pos + clen > mlen)
          break;
        mbedtls_x509_crt_init(&crt);
        if (mbedtls_x509_crt_parse_der(&crt, b + pos, clen) == 0) {
          if (stls_cert_describe(&crt, &out->chain[n]) != 0)
            rc = -1;
          n++;
        }
        mbedtls_x509_crt_free(&crt);
        pos += clen;
        if (rc)
          break;
      }
      out->n_chain = n;
      break;
    }
    q += 4 + mlen;
  }
  free(hs);
  return rc;
}

unsigned stls_cert_trust_reasons(uint32_t flags) {
  unsigned r = 0;
  if (flags & MBEDTLS_X509_BADCERT_NOT_TRUSTED)
    r |= STLS_TRUST_REASON(UNTRUSTED_ISSUER);
  if (flags & MBEDTLS_X509_BADCERT_EXPIRED)
    r |= STLS_TRUST_REASON(EXPIRED);
  if (flags & MBEDTLS_X509_BADCERT_FUTURE)
    r |= STLS_TRUST_REASON(NOT_YET_VALID);
  if (flags & (MBEDTLS_X509_BADCERT_REVOKED | MBEDTLS_X509_BADCRL_NOT_TRUSTED))
    r |= STLS_TRUST_REASON(REVOKED);
  if (flags & (MBEDTLS_X509_BADCERT_BAD_MD | MBEDTLS_X509_BADCERT_BAD_PK |
               MBEDTLS_X509_BADCERT_BAD_KEY))
    r |= STLS_TRUST_REASON(BAD_KEY);
  if (flags & STLS_X509_BADCERT_CHAIN_TOO_LONG)
    r |= STLS_TRUST_REASON(CHAIN_TOO_LONG);
  /* Name mismatch is not a trust failure: names are a separate fact. */
  flags &= ~(
      uint32_t)(MBEDTLS_X509_BADCERT_CN_MISMATCH |
                MBEDTLS_X509_BADCERT_NOT_TRUSTED |
                MBEDTLS_X509_BADCERT_EXPIRED | MBEDTLS_X509_BADCERT_FUTURE |
                MBEDTLS_X509_BADCERT_REVOKED | MBEDTLS_X509_BADCRL_NOT_TRUSTED |
                MBEDTLS_X509_BADCERT_BAD_MD | MBEDTLS_X509_BADCERT_BAD_PK |
                MBEDTLS_X509_BADCERT_BAD_KEY |
                STLS_X509_BADCERT_CHAIN_TOO_LONG);
  if (flags)
    r |= STLS_TRUST_REASON(OTHER);
  return r;
}

const char *stls_cert_trust_result_type(const stls_tls_result_t *t) {
  if (t->trusted)
    return NULL;
  if (t->trust_reasons & STLS_TRUST_REASON(UNTRUSTED_ISSUER))
    return "certificate-not-trusted";
  if (t->trust_reasons & STLS_TRUST_REASON(EXPIRED))
    return "certificate-expired";
  return "validation-failure";
}
