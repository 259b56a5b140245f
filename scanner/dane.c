/* DANE for SMTP: TLSA usability and chain matching (RFC 7672, RFC 7671),
 * following what OpenSSL's DANE code does for Postfix. */
#include "stls/dane.h"
#include "stls/cert.h"
#include "stls/names.h"

#include <mbedtls/md.h>
#include <mbedtls/pk.h>
#include <mbedtls/sha256.h>
#include <mbedtls/sha512.h>
#include <mbedtls/x509_crt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- names ------------------------------------------------------------- */

static const char *const rr_names[] = {
#define XX(name, json, message) json,
    STLS_DANE_RR_MAP(XX)
#undef XX
};
static const char *const state_names[] = {
#define XX(name, json, message) json,
    STLS_TLSA_STATE_MAP(XX)
#undef XX
};
static const char *const fail_names[] = {
#define XX(name, json, type, message) json,
    STLS_DANE_FAIL_MAP(XX)
#undef XX
};
static const char *const fail_types[] = {
#define XX(name, json, type, message) type,
    STLS_DANE_FAIL_MAP(XX)
#undef XX
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))
#define LOOKUP(table, i, dflt)                                                 \
  ((size_t)(i) < COUNT(table) ? (table)[i] : (dflt))

const char *stls_dane_rr_check_name(stls_dane_rr_check_t c) {
  return LOOKUP(rr_names, c, "unknown");
}

const char *stls_tlsa_state_name(stls_tlsa_state_t s) {
  return LOOKUP(state_names, s, "unknown");
}

const char *stls_dane_fail_name(stls_dane_fail_t f) {
  return LOOKUP(fail_names, f, "unknown");
}

const char *stls_dane_fail_result_type(stls_dane_fail_t f) {
  return LOOKUP(fail_types, f, "validation-failure");
}

/* ---- records ----------------------------------------------------------- */

/* Does full (matching type 0) data parse as what the selector says? */
static bool full_data_parses(const stls_dns_tlsa_rr_t *rr) {
  bool ok;
  if (rr->len == 0)
    return false;
  if (rr->selector == STLS_DANE_SEL_CERT) {
    mbedtls_x509_crt c;
    mbedtls_x509_crt_init(&c);
    ok = mbedtls_x509_crt_parse_der(&c, rr->data, rr->len) == 0;
    mbedtls_x509_crt_free(&c);
  } else {
    mbedtls_pk_context pk;
    mbedtls_pk_init(&pk);
    ok = mbedtls_pk_parse_public_key(&pk, rr->data, rr->len) == 0;
    mbedtls_pk_free(&pk);
  }
  return ok;
}

stls_dane_rr_check_t stls_dane_rr_check(const stls_dns_tlsa_rr_t *rr) {
  if (rr->usage == STLS_DANE_PKIX_TA || rr->usage == STLS_DANE_PKIX_EE)
    return STLS_DANE_RR_PKIX_USAGE;
  if (rr->usage != STLS_DANE_DANE_TA && rr->usage != STLS_DANE_DANE_EE)
    return STLS_DANE_RR_BAD_USAGE;
  if (rr->selector != STLS_DANE_SEL_CERT && rr->selector != STLS_DANE_SEL_SPKI)
    return STLS_DANE_RR_BAD_SELECTOR;
  switch (rr->mtype) {
  case STLS_DANE_MT_FULL:
    return full_data_parses(rr) ? STLS_DANE_RR_USABLE : STLS_DANE_RR_BAD_DATA;
  case STLS_DANE_MT_SHA256:
    return rr->len == 32 ? STLS_DANE_RR_USABLE : STLS_DANE_RR_BAD_LENGTH;
  case STLS_DANE_MT_SHA512:
    return rr->len == 64 ? STLS_DANE_RR_USABLE : STLS_DANE_RR_BAD_LENGTH;
  default: return STLS_DANE_RR_BAD_MTYPE;
  }
}

char *stls_dane_rr_format(const stls_dns_tlsa_rr_t *rr) {
  static const char hex[] = "0123456789abcdef";
  size_t head = sizeof "255 255 255 ";
  char *s = malloc(head + 2 * rr->len + 1);
  int n;
  if (!s)
    return NULL;
  n = snprintf(s, head, "%u %u %u ", rr->usage, rr->selector, rr->mtype);
  for (size_t i = 0; i < rr->len; i++) {
    s[n + 2 * i] = hex[rr->data[i] >> 4];
    s[n + 2 * i + 1] = hex[rr->data[i] & 15];
  }
  s[n + 2 * rr->len] = '\0';
  return s;
}

/* ---- the state of a lookup -------------------------------------------- */

stls_tlsa_state_t stls_tlsa_state(const stls_dns_tlsa_result_t *t,
                                  size_t *usable) {
  size_t n = 0;
  if (usable)
    *usable = 0;
  switch (t->status) {
  case STLS_DNS_OK: break;
  case STLS_DNS_NODATA:
  case STLS_DNS_NXDOMAIN:
    return t->secure ? STLS_TLSA_STATE_NO_TLSA : STLS_TLSA_STATE_INSECURE;
  default:
    /* A validating resolver answers SERVFAIL for bogus data; Postfix
     * cannot tell that from an outage and defers either way. */
    return STLS_TLSA_STATE_FAILED;
  }
  if (!t->secure)
    return STLS_TLSA_STATE_INSECURE;
  for (size_t i = 0; i < t->nrr; i++)
    n += stls_dane_rr_check(&t->rr[i]) == STLS_DANE_RR_USABLE;
  if (usable)
    *usable = n;
  return n > 0 ? STLS_TLSA_STATE_USABLE : STLS_TLSA_STATE_UNUSABLE;
}

const char *stls_tlsa_state_result_type(stls_tlsa_state_t s) {
  return s == STLS_TLSA_STATE_FAILED ? "dnssec-invalid" : NULL;
}

const char *stls_dane_required_type(stls_tlsa_state_t s) {
  if (s == STLS_TLSA_STATE_INSECURE || s == STLS_TLSA_STATE_NO_TLSA)
    return "dane-required";
  return stls_tlsa_state_result_type(s);
}

/* ---- matching ---------------------------------------------------------- */

/* Digests of one chain certificate, computed when first needed. */
typedef struct {
  bool have256, have512;
  unsigned char cert256[32], spki256[32];
  unsigned char cert512[64], spki512[64];
} digests_t;

/* The state of one stls_dane_verify call. */
typedef struct {
  const stls_cert_t *chain;
  size_t nchain;
  digests_t *dg;
  mbedtls_x509_crt parsed; /* the chain as mbedTLS certificates */
  bool parsed_ok;
  bool parse_tried;
  const stls_dane_opts_t *o;
} verify_ctx_t;

/* Does a record match chain certificate i by its data (no chain check)? */
static bool rr_matches_cert(verify_ctx_t *v, const stls_dns_tlsa_rr_t *rr,
                            size_t i) {
  const stls_cert_t *c = &v->chain[i];
  digests_t *d = &v->dg[i];
  const unsigned char *data =
      rr->selector == STLS_DANE_SEL_CERT ? c->der : c->der + c->spki_off;
  size_t len = rr->selector == STLS_DANE_SEL_CERT ? c->der_len : c->spki_len;

  if (!c->der || len == 0)
    return false;
  switch (rr->mtype) {
  case STLS_DANE_MT_FULL:
    return rr->len == len && memcmp(rr->data, data, len) == 0;
  case STLS_DANE_MT_SHA256:
    if (!d->have256) {
      mbedtls_sha256(c->der, c->der_len, d->cert256, 0);
      mbedtls_sha256(c->der + c->spki_off, c->spki_len, d->spki256, 0);
      d->have256 = true;
    }
    return rr->len == 32 &&
           memcmp(rr->data,
                  rr->selector == STLS_DANE_SEL_CERT ? d->cert256 : d->spki256,
                  32) == 0;
  case STLS_DANE_MT_SHA512:
    if (!d->have512) {
      mbedtls_sha512(c->der, c->der_len, d->cert512, 0);
      mbedtls_sha512(c->der + c->spki_off, c->spki_len, d->spki512, 0);
      d->have512 = true;
    }
    return rr->len == 64 &&
           memcmp(rr->data,
                  rr->selector == STLS_DANE_SEL_CERT ? d->cert512 : d->spki512,
                  64) == 0;
  default: return false;
  }
}

/* Parse the chain for path verification, once. A certificate that does
 * not parse ends the list there (the handshake parsed them all, so this
 * is only for hand-made inputs). */
static bool chain_parse(verify_ctx_t *v) {
  if (v->parse_tried)
    return v->parsed_ok;
  v->parse_tried = true;
  for (size_t i = 0; i < v->nchain; i++) {
    if (!v->chain[i].der ||
        mbedtls_x509_crt_parse_der(&v->parsed, v->chain[i].der,
                                   v->chain[i].der_len) != 0)
      break;
    v->parsed_ok = true;
  }
  return v->parsed_ok;
}

/* Does the leaf name a reference identifier of DANE-TA (RFC 7672 3.2.2)? */
static bool names_ok(const verify_ctx_t *v) {
  const stls_cert_t *leaf = &v->chain[0];
  if (!v->o)
    return false;
  /* Postfix hands these names to OpenSSL's DANE code, which matches as
   * RFC 6125 does (one-label wildcards). */
  return stls_name_cert_matches(leaf, STLS_NAME_RFC6125, v->o->base_domain) ||
         stls_name_cert_matches(leaf, STLS_NAME_RFC6125, v->o->nexthop);
}

/* Verify the path from the leaf to the anchor `ta` (the only trust
 * anchor; the certificates sent serve as intermediates), then validity
 * periods, then the leaf's names. */
static stls_dane_fail_t ta_check(verify_ctx_t *v, mbedtls_x509_crt *ta) {
  const uint32_t time_flags =
      MBEDTLS_X509_BADCERT_EXPIRED | MBEDTLS_X509_BADCERT_FUTURE;
  uint32_t flags = 0;

  if (!chain_parse(v))
    return STLS_DANE_FAIL_TA_CHAIN;
  /* No expected name here: the names are checked below, against more
   * than one reference identifier. */
  if (mbedtls_x509_crt_verify(&v->parsed, ta, NULL, NULL, &flags, NULL, NULL) !=
          0 &&
      (flags == 0 || (flags & ~time_flags) != 0))
    return STLS_DANE_FAIL_TA_CHAIN;
  if (flags & time_flags)
    return STLS_DANE_FAIL_TA_EXPIRED;
  return names_ok(v) ? STLS_DANE_FAIL_NONE : STLS_DANE_FAIL_TA_NAME;
}

/* Is `crt` signed by the key `pk`? */
static bool signed_by(const mbedtls_x509_crt *crt, mbedtls_pk_context *pk) {
  unsigned char hash[MBEDTLS_MD_MAX_SIZE];
  mbedtls_md_type_t md = crt->MBEDTLS_PRIVATE(sig_md);
  const mbedtls_md_info_t *info = mbedtls_md_info_from_type(md);
  mbedtls_pk_type_t type = crt->MBEDTLS_PRIVATE(sig_pk);

  if (!info || !mbedtls_pk_can_do(
                   pk, type == MBEDTLS_PK_RSASSA_PSS ? MBEDTLS_PK_RSA : type))
    return false;
  if (mbedtls_md(info, crt->tbs.p, crt->tbs.len, hash) != 0)
    return false;
  return mbedtls_pk_verify_ext(type, crt->MBEDTLS_PRIVATE(sig_opts), pk, md,
                               hash, mbedtls_md_get_size(info),
                               crt->MBEDTLS_PRIVATE(sig).p,
                               crt->MBEDTLS_PRIVATE(sig).len) == 0;
}

/* A "2 1 0" record whose key the server need not send: find the
 * certificate of the chain it signed; that certificate then anchors the
 * path (its own validity counts, the bare key has none). Returns the
 * outcome and sets *depth to the signed certificate's position. */
static stls_dane_fail_t ta_bare_key(verify_ctx_t *v,
                                    const stls_dns_tlsa_rr_t *rr, int *depth) {
  mbedtls_pk_context pk;
  stls_dane_fail_t best = STLS_DANE_FAIL_NO_MATCH;
  size_t i = 0;

  if (!chain_parse(v))
    return best;
  mbedtls_pk_init(&pk);
  if (mbedtls_pk_parse_public_key(&pk, rr->data, rr->len) != 0) {
    mbedtls_pk_free(&pk);
    return best;
  }
  for (mbedtls_x509_crt *c = &v->parsed; c && c->raw.p; c = c->next, i++) {
    stls_dane_fail_t f;
    if (!signed_by(c, &pk))
      continue;
    if (i == 0) {
      /* The key signed the leaf itself: nothing to build, but the leaf's
       * dates and names still count. */
      if (mbedtls_x509_time_is_past(&c->valid_to) ||
          mbedtls_x509_time_is_future(&c->valid_from))
        f = STLS_DANE_FAIL_TA_EXPIRED;
      else
        f = names_ok(v) ? STLS_DANE_FAIL_NONE : STLS_DANE_FAIL_TA_NAME;
    } else {
      mbedtls_x509_crt anchor;
      mbedtls_x509_crt_init(&anchor);
      if (mbedtls_x509_crt_parse_der(&anchor, c->raw.p, c->raw.len) != 0) {
        mbedtls_x509_crt_free(&anchor);
        continue;
      }
      f = ta_check(v, &anchor);
      mbedtls_x509_crt_free(&anchor);
    }
    if (f == STLS_DANE_FAIL_NONE || f > best) {
      best = f;
      *depth = (int)i;
    }
    if (f == STLS_DANE_FAIL_NONE)
      break;
  }
  mbedtls_pk_free(&pk);
  return best;
}

/* One DANE-TA record: every certificate above the leaf that matches it
 * is tried as the anchor; full certificate data is tried as an anchor
 * even when the server left it out. */
static stls_dane_fail_t ta_record(verify_ctx_t *v, const stls_dns_tlsa_rr_t *rr,
                                  int *depth) {
  stls_dane_fail_t best = STLS_DANE_FAIL_NO_MATCH;

  for (size_t i = 1; i < v->nchain; i++) {
    mbedtls_x509_crt anchor;
    stls_dane_fail_t f;
    if (!rr_matches_cert(v, rr, i))
      continue;
    mbedtls_x509_crt_init(&anchor);
    if (mbedtls_x509_crt_parse_der(&anchor, v->chain[i].der,
                                   v->chain[i].der_len) != 0) {
      mbedtls_x509_crt_free(&anchor);
      continue;
    }
    f = ta_check(v, &anchor);
    mbedtls_x509_crt_free(&anchor);
    if (f == STLS_DANE_FAIL_NONE || f > best) {
      best = f;
      *depth = (int)i;
    }
    if (f == STLS_DANE_FAIL_NONE)
      return f;
  }

  if (rr->mtype != STLS_DANE_MT_FULL)
    return best;
  if (rr->selector == STLS_DANE_SEL_CERT) {
    /* 2 0 0: the record is the anchor certificate, sent or not; it must
     * not be the leaf itself (a TA record never matches the leaf). */
    mbedtls_x509_crt anchor;
    stls_dane_fail_t f;
    if (v->nchain > 0 && v->chain[0].der && rr->len == v->chain[0].der_len &&
        memcmp(rr->data, v->chain[0].der, rr->len) == 0)
      return best;
    mbedtls_x509_crt_init(&anchor);
    if (mbedtls_x509_crt_parse_der(&anchor, rr->data, rr->len) == 0) {
      f = ta_check(v, &anchor);
      /* A certificate the chain does not lead to was never found: that
       * is no match, not a broken chain. */
      if (f == STLS_DANE_FAIL_TA_CHAIN)
        f = STLS_DANE_FAIL_NO_MATCH;
      if (f == STLS_DANE_FAIL_NONE || f > best) {
        best = f;
        *depth = -1;
      }
    }
    mbedtls_x509_crt_free(&anchor);
    return best;
  }
  {
    int d = -1;
    stls_dane_fail_t f = ta_bare_key(v, rr, &d);
    if (f == STLS_DANE_FAIL_NONE || f > best) {
      best = f;
      /* The key is the anchor; d is the certificate it signed. */
      *depth = -1;
    }
  }
  return best;
}

static void verdict_set_record(stls_dane_verdict_t *out,
                               const stls_dns_tlsa_rr_t *rr, size_t i,
                               int depth) {
  out->match_index = (int)i;
  out->match_depth = depth;
  snprintf(out->match_rr, sizeof out->match_rr, "%u %u %u", rr->usage,
           rr->selector, rr->mtype);
}

int stls_dane_verify(const stls_dns_tlsa_rr_t *rr, size_t nrr,
                     const stls_cert_t *chain, size_t nchain,
                     const stls_dane_opts_t *o, stls_dane_verdict_t *out) {
  verify_ctx_t v;
  stls_dane_fail_t best = STLS_DANE_FAIL_NO_MATCH;

  memset(out, 0, sizeof *out);
  out->match_index = -1;
  out->match_depth = -1;
  for (size_t i = 0; i < nrr; i++)
    out->usable += stls_dane_rr_check(&rr[i]) == STLS_DANE_RR_USABLE;
  if (out->usable == 0 || nchain == 0 || !chain) {
    out->fail =
        out->usable == 0 ? STLS_DANE_FAIL_NO_USABLE : STLS_DANE_FAIL_NO_CHAIN;
    out->result_type = stls_dane_fail_result_type(out->fail);
    return 0;
  }

  memset(&v, 0, sizeof v);
  v.chain = chain;
  v.nchain = nchain;
  v.o = o;
  mbedtls_x509_crt_init(&v.parsed);
  v.dg = calloc(nchain, sizeof *v.dg);
  if (!v.dg) {
    out->fail = STLS_DANE_FAIL_NOMEM;
    out->result_type = stls_dane_fail_result_type(out->fail);
    return -1;
  }

  /* DANE-EE first: it needs nothing but the leaf. */
  for (size_t i = 0; i < nrr && !out->matched; i++) {
    if (rr[i].usage != STLS_DANE_DANE_EE ||
        stls_dane_rr_check(&rr[i]) != STLS_DANE_RR_USABLE)
      continue;
    if (rr_matches_cert(&v, &rr[i], 0)) {
      out->matched = true;
      verdict_set_record(out, &rr[i], i, 0);
    }
  }
  for (size_t i = 0; i < nrr && !out->matched; i++) {
    int depth = -1;
    stls_dane_fail_t f;
    if (rr[i].usage != STLS_DANE_DANE_TA ||
        stls_dane_rr_check(&rr[i]) != STLS_DANE_RR_USABLE)
      continue;
    f = ta_record(&v, &rr[i], &depth);
    if (f == STLS_DANE_FAIL_NONE) {
      out->matched = true;
      out->name_checked = true;
      verdict_set_record(out, &rr[i], i, depth);
    } else if (f > best) {
      /* Failures are ordered by how far the check got. */
      best = f;
      out->name_checked = f == STLS_DANE_FAIL_TA_NAME;
      verdict_set_record(out, &rr[i], i, depth);
    }
  }

  if (out->matched) {
    out->fail = STLS_DANE_FAIL_NONE;
    out->result_type = NULL;
  } else {
    out->fail = best;
    out->result_type = stls_dane_fail_result_type(best);
  }
  mbedtls_x509_crt_free(&v.parsed);
  free(v.dg);
  return 0;
}
