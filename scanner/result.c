/* The result model: construction, copying and cleanup. */
#include "stls/result.h"
#include "stls/chain.h"
#include "stls/tls.h"
#include "stls/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

static const char *const status_names[] = {
#define XX(name, json, msg) json,
    STLS_HOST_STATUS_MAP(XX)
#undef XX
};
static const char *const status_msgs[] = {
#define XX(name, json, msg) msg,
    STLS_HOST_STATUS_MAP(XX)
#undef XX
};
static const char *const stage_names[] = {
#define XX(name, json) json,
    STLS_STAGE_MAP(XX)
#undef XX
};
static const char *const trust_names[] = {
#define XX(name, json) json,
    STLS_TRUST_REASON_MAP(XX)
#undef XX
};

static const char *const version_labels[] = {
#define XX(name, json, wire) json,
    STLS_VERSION_MAP(XX)
#undef XX
};
static const uint16_t version_wire[] = {
#define XX(name, json, wire) wire,
    STLS_VERSION_MAP(XX)
#undef XX
};

const char *stls_version_label(unsigned v) {
  return v < STLS_VER_COUNT ? version_labels[v] : "unknown";
}
uint16_t stls_version_wire(unsigned v) {
  return v < STLS_VER_COUNT ? version_wire[v] : 0;
}

const char *stls_host_status_name(stls_host_status_t s) {
  return (unsigned)s < STLS_HOST_STATUS_COUNT ? status_names[s] : "unknown";
}
const char *stls_host_status_message(stls_host_status_t s) {
  return (unsigned)s < STLS_HOST_STATUS_COUNT ? status_msgs[s] : "unknown";
}
const char *stls_stage_name(stls_stage_t s) {
  return (unsigned)s < STLS_STAGE_COUNT ? stage_names[s] : "unknown";
}
const char *stls_trust_reason_name(unsigned bit) {
  return bit < STLS_TRUST_REASON_COUNT ? trust_names[bit] : "other";
}

int stls_strlist_pushn(stls_strlist_t *l, const char *s, size_t len) {
  char *c;
  if (l->n == l->cap) {
    size_t ncap = l->cap ? l->cap * 2 : 8;
    char **nv = realloc(l->v, ncap * sizeof(*nv));
    if (!nv)
      return -1;
    l->v = nv;
    l->cap = ncap;
  }
  c = stls_strndup(s, len);
  if (!c)
    return -1;
  l->v[l->n++] = c;
  return 0;
}

int stls_strlist_push(stls_strlist_t *l, const char *s) {
  return stls_strlist_pushn(l, s, strlen(s));
}

void stls_strlist_free(stls_strlist_t *l) {
  for (size_t i = 0; i < l->n; i++)
    free(l->v[i]);
  free(l->v);
  memset(l, 0, sizeof(*l));
}

int stls_strlist_copy(stls_strlist_t *dst, const stls_strlist_t *src) {
  memset(dst, 0, sizeof(*dst));
  for (size_t i = 0; i < src->n; i++)
    if (stls_strlist_push(dst, src->v[i]) != 0)
      return -1;
  return 0;
}

int stls_host_result_init(stls_host_result_t *r, const char *mx, const char *ip,
                          int port) {
  memset(r, 0, sizeof(*r));
  r->mx = stls_strdup(mx ? mx : ip);
  stls_strlcpy(r->ip, ip ? ip : "", sizeof(r->ip));
  r->port = port;
  r->family = (ip && strchr(ip, ':')) ? 6 : 4;
  r->status = STLS_HOST_SKIPPED;
  r->timing.connect = r->timing.greeting = r->timing.ehlo = -1;
  r->timing.starttls = r->timing.handshake = r->timing.total = -1;
  r->timing.ehlo_tls = -1;
  for (unsigned v = 0; v < STLS_VER_COUNT; v++)
    r->versions[v].accepted = -1;
  return r->mx ? 0 : -1;
}

void stls_cert_free(stls_cert_t *c) {
  free(c->subject);
  free(c->issuer);
  free(c->subject_cn);
  free(c->der);
  stls_strlist_free(&c->san_dns);
  memset(c, 0, sizeof(*c));
}

void stls_tls_result_free(stls_tls_result_t *t) {
  for (size_t i = 0; i < t->n_chain; i++)
    stls_cert_free(&t->chain[i]);
  free(t->chain);
  t->chain = NULL;
  t->n_chain = 0;
  free(t->stores);
  t->stores = NULL;
  t->n_stores = 0;
  free(t->facts);
  t->facts = NULL;
}

void stls_host_result_free(stls_host_result_t *r) {
  if (!r)
    return;
  free(r->mx);
  free(r->banner);
  free(r->ehlo_reply);
  stls_strlist_free(&r->ehlo_ext);
  free(r->starttls_reply);
  stls_tls_result_free(&r->tls);
  free(r->ehlo_tls_reply);
  stls_strlist_free(&r->ehlo_tls_ext);
  free(r->findings);
  memset(r, 0, sizeof(*r));
}

void stls_host_result_add_finding(stls_host_result_t *r, const char *id,
                                  const char *fmt, ...) {
  va_list ap;
  stls_finding_t *f;
  if (r->n_findings >= STLS_MAX_FINDINGS)
    return;
  if (!r->findings) {
    r->findings = calloc(STLS_MAX_FINDINGS, sizeof(*r->findings));
    if (!r->findings)
      return; /* a finding is worth less than the rest of the result */
  }
  f = &r->findings[r->n_findings++];
  stls_strlcpy(f->id, id, sizeof(f->id));
  va_start(ap, fmt);
  vsnprintf(f->message, sizeof(f->message), fmt, ap);
  va_end(ap);
}

static const char *const cause_codes[] = {
#define XX(name, code, msg) code,
    STLS_CAUSE_MAP(XX)
#undef XX
};
static const char *const cause_messages[] = {
#define XX(name, code, msg) msg,
    STLS_CAUSE_MAP(XX)
#undef XX
};

const char *stls_cause_message(stls_cause_t c) {
  return (unsigned)c < STLS_CAUSE_COUNT ? cause_messages[c] : "failure";
}

stls_cause_t stls_cause_from_uv(int err, int *detail) {
  *detail = 0;
  switch (err) {
  case UV_EOF: return STLS_CAUSE_EOF;
  case UV_ECONNREFUSED: return STLS_CAUSE_ECONNREFUSED;
  case UV_ECONNRESET: return STLS_CAUSE_ECONNRESET;
  case UV_ETIMEDOUT: return STLS_CAUSE_ETIMEDOUT;
  case UV_ENETUNREACH: return STLS_CAUSE_ENETUNREACH;
  case UV_EHOSTUNREACH: return STLS_CAUSE_EHOSTUNREACH;
  case UV_EADDRNOTAVAIL: return STLS_CAUSE_EADDRNOTAVAIL;
  case UV_EIO: return STLS_CAUSE_EIO;
  case UV_ENOMEM: return STLS_CAUSE_ENOMEM;
  case UV_EINVAL: return STLS_CAUSE_EINVAL;
  default: *detail = err; return STLS_CAUSE_ERRNO;
  }
}

const char *stls_error_code(const stls_error_t *e, char *buf, size_t len) {
  switch (e->cause) {
  case STLS_CAUSE_ERRNO: {
    /* uv_err_name() spells an unknown number as prose: keep the code's
     * shape (^[A-Z][A-Z0-9_]*$) then. */
    const char *name = e->detail < 0 ? uv_err_name(e->detail) : "";
    bool ok = name[0] >= 'A' && name[0] <= 'Z';
    for (const char *p = name; ok && *p; p++)
      ok = (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_';
    if (ok)
      stls_strlcpy(buf, name, len);
    else
      snprintf(buf, len, "ERRNO_%d", e->detail < 0 ? -e->detail : e->detail);
    break;
  }
  case STLS_CAUSE_SMTP_REPLY: snprintf(buf, len, "SMTP_%d", e->detail); break;
  case STLS_CAUSE_TLS_ALERT: {
    const char *name = stls_tls_alert_name(e->detail);
    size_t o = (size_t)snprintf(buf, len, "TLS_ALERT_");
    if (!name) {
      snprintf(buf + (o < len ? o : len - 1), len - (o < len ? o : len - 1),
               "%d", e->detail);
      break;
    }
    for (size_t i = 0; name[i] && o + 1 < len; i++)
      buf[o++] =
          (char)(name[i] >= 'a' && name[i] <= 'z' ? name[i] - 32 : name[i]);
    buf[o < len ? o : len - 1] = '\0';
    break;
  }
  case STLS_CAUSE_OTHER:
    stls_strlcpy(buf, e->code[0] ? e->code : "ERROR", len);
    break;
  default:
    stls_strlcpy(buf,
                 (unsigned)e->cause < STLS_CAUSE_COUNT && cause_codes[e->cause]
                     ? cause_codes[e->cause]
                     : "ERROR",
                 len);
    break;
  }
  return buf;
}

static void fail_v(stls_host_result_t *r, stls_host_status_t st,
                   stls_stage_t stage, stls_cause_t cause, int detail,
                   const char *fmt, va_list ap) {
  r->status = st;
  r->error.set = true;
  r->error.stage = stage;
  r->error.cause = cause;
  r->error.detail = detail;
  if (cause != STLS_CAUSE_OTHER)
    stls_error_code(&r->error, r->error.code, sizeof(r->error.code));
  if (fmt)
    vsnprintf(r->error.message, sizeof(r->error.message), fmt, ap);
  else
    stls_strlcpy(r->error.message, stls_host_status_message(st),
                 sizeof(r->error.message));
}

void stls_host_result_fail_cause(stls_host_result_t *r, stls_host_status_t st,
                                 stls_stage_t stage, stls_cause_t cause,
                                 int detail, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fail_v(r, st, stage, cause, detail, fmt, ap);
  va_end(ap);
}

void stls_host_result_fail(stls_host_result_t *r, stls_host_status_t st,
                           stls_stage_t stage, const char *code,
                           const char *fmt, ...) {
  stls_cause_t cause = STLS_CAUSE_OTHER;
  va_list ap;
  /* Text from a caller is parsed once here; decisions use the cause. */
  for (unsigned c = 0; code && c < STLS_CAUSE_COUNT; c++)
    if (cause_codes[c] && strcmp(cause_codes[c], code) == 0)
      cause = (stls_cause_t)c;
  if (cause == STLS_CAUSE_OTHER)
    stls_strlcpy(r->error.code, code ? code : "ERROR", sizeof(r->error.code));
  va_start(ap, fmt);
  fail_v(r, st, stage, cause, 0, fmt, ap);
  va_end(ap);
}

bool stls_host_result_retryable(const stls_host_result_t *r) {
  return r->error.set &&
         ((r->error.cause == STLS_CAUSE_SMTP_REPLY && r->error.detail == 421) ||
          r->error.cause == STLS_CAUSE_ECONNRESET);
}

static int cert_copy(stls_cert_t *d, const stls_cert_t *s) {
  *d = *s;
  /* Owned members first reset, so a failure leaves d safe to free. */
  d->subject = d->issuer = d->subject_cn = NULL;
  d->der = NULL;
  memset(&d->san_dns, 0, sizeof(d->san_dns));
  d->subject = stls_strdup(s->subject);
  d->issuer = stls_strdup(s->issuer);
  d->subject_cn = stls_strdup(s->subject_cn);
  if ((s->subject && !d->subject) || (s->issuer && !d->issuer) ||
      (s->subject_cn && !d->subject_cn))
    return -1;
  if (stls_strlist_copy(&d->san_dns, &s->san_dns) != 0)
    return -1;
  if (s->der) {
    d->der = malloc(s->der_len);
    if (!d->der)
      return -1;
    memcpy(d->der, s->der, s->der_len);
  }
  return 0;
}

int stls_host_result_copy(stls_host_result_t *d, const stls_host_result_t *s) {
  int bad = 0;
  *d = *s;
  /* Reset owned pointers first so a failure leaves d safe to free. */
  d->mx = d->banner = d->ehlo_reply = d->starttls_reply = NULL;
  d->ehlo_tls_reply = NULL;
  memset(&d->ehlo_ext, 0, sizeof(d->ehlo_ext));
  memset(&d->ehlo_tls_ext, 0, sizeof(d->ehlo_tls_ext));
  d->tls.chain = NULL;
  d->tls.n_chain = 0;
  d->tls.stores = NULL;
  d->tls.n_stores = 0;
  d->tls.facts = NULL;
  if (s->tls.n_stores) {
    d->tls.stores = malloc(s->tls.n_stores * sizeof(*d->tls.stores));
    if (d->tls.stores) {
      memcpy(d->tls.stores, s->tls.stores,
             s->tls.n_stores * sizeof(*d->tls.stores));
      d->tls.n_stores = s->tls.n_stores;
    } else {
      bad = 1;
    }
  }
  if (s->tls.facts) {
    d->tls.facts = malloc(sizeof(*d->tls.facts));
    if (d->tls.facts)
      memcpy(d->tls.facts, s->tls.facts, sizeof(*d->tls.facts));
    else
      bad = 1;
  }
  d->findings = NULL;
  if (s->findings) {
    d->findings = malloc(STLS_MAX_FINDINGS * sizeof(*d->findings));
    if (d->findings)
      memcpy(d->findings, s->findings,
             STLS_MAX_FINDINGS * sizeof(*d->findings));
    else
      bad = 1;
  }

#define DUP(f)                                                                 \
  do {                                                                         \
    d->f = stls_strdup(s->f);                                                  \
    if (s->f && !d->f)                                                         \
      bad = 1;                                                                 \
  } while (0)
  DUP(mx);
  DUP(banner);
  DUP(ehlo_reply);
  DUP(starttls_reply);
  DUP(ehlo_tls_reply);
#undef DUP
  bad |= stls_strlist_copy(&d->ehlo_ext, &s->ehlo_ext) != 0;
  bad |= stls_strlist_copy(&d->ehlo_tls_ext, &s->ehlo_tls_ext) != 0;
  if (s->tls.n_chain) {
    d->tls.chain = calloc(s->tls.n_chain, sizeof(*d->tls.chain));
    if (!d->tls.chain)
      bad = 1;
    else
      for (size_t i = 0; i < s->tls.n_chain; i++, d->tls.n_chain++)
        bad |= cert_copy(&d->tls.chain[i], &s->tls.chain[i]) != 0;
  }
  if (bad) {
    stls_host_result_free(d);
    return -1;
  }
  return 0;
}

bool stls_host_result_has_finding(const stls_host_result_t *r, const char *id) {
  for (size_t i = 0; i < r->n_findings; i++)
    if (strcmp(r->findings[i].id, id) == 0)
      return true;
  return false;
}

bool stls_host_result_local_error(const stls_host_result_t *r) {
  return r->error.set && r->error.stage <= STLS_STAGE_CONNECT &&
         r->error.cause == STLS_CAUSE_ERRNO &&
         (r->error.detail == UV_EMFILE || r->error.detail == UV_ENFILE ||
          r->error.detail == UV_ENOBUFS);
}
