/* Change events from (previous record, new record). Pure: no clock, no
 * store; "once per certificate" for certificate-expiring is decided from
 * the previous record alone (it was announced then if the same leaf was
 * already inside the window at the previous scan). */
#include "stls/diff.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stls/util.h"

static const char *const change_names[] = {
#define XX(name, json) json,
    STLS_CHANGE_MAP(XX)
#undef XX
};

const char *stls_change_type_name(stls_change_type_t t) {
  return (unsigned)t < STLS_CHANGE_COUNT ? change_names[t] : "unknown";
}

int stls_change_type_parse(const char *name) {
  for (int i = 0; i < STLS_CHANGE_COUNT; i++)
    if (name && !strcmp(name, change_names[i]))
      return i;
  return -1;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (no timegm: it is
 * not in POSIX and this must not depend on TZ). */
static long days_from_civil(long y, unsigned m, unsigned d) {
  y -= m <= 2;
  long era = (y >= 0 ? y : y - 399) / 400;
  unsigned yoe = (unsigned)(y - era * 400);
  unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + (long)doe - 719468;
}

/* n digits at s as a number, or -1. */
static int digits(const char *s, int n) {
  int v = 0;
  for (int i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return -1;
    v = v * 10 + (s[i] - '0');
  }
  return v;
}

/* "YYYY-MM-DDTHH:MM:SSZ" exactly (what the writer prints). By hand, not
 * sscanf: the service parses several per record it ingests. */
int stls_time_parse_rfc3339(const char *s, time_t *t) {
  int y, mo, d, h, mi, se;
  if (!s || strlen(s) != 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' ||
      s[13] != ':' || s[16] != ':' || s[19] != 'Z')
    return -1;
  y = digits(s, 4);
  mo = digits(s + 5, 2);
  d = digits(s + 8, 2);
  h = digits(s + 11, 2);
  mi = digits(s + 14, 2);
  se = digits(s + 17, 2);
  if (y < 0 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 ||
      mi < 0 || mi > 59 || se < 0 || se > 60)
    return -1;
  *t = (time_t)days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 +
       h * 3600 + mi * 60 + se;
  return 0;
}

static const cJSON *jget(const cJSON *o, const char *k) {
  return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, k) : NULL;
}

static const char *jstr(const cJSON *o, const char *k) {
  const cJSON *v = jget(o, k);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool streq(const char *a, const char *b) {
  return a == b || (a && b && !strcmp(a, b));
}

/* The host in list with the same (mx, ip, port), or NULL. */
static const cJSON *host_find(const cJSON *hosts, const cJSON *h) {
  const cJSON *x;
  const cJSON *port = jget(h, "port");
  cJSON_ArrayForEach(x, hosts) {
    const cJSON *p = jget(x, "port");
    if (streq(jstr(x, "mx"), jstr(h, "mx")) &&
        streq(jstr(x, "ip"), jstr(h, "ip")) &&
        (!cJSON_IsNumber(port) || !cJSON_IsNumber(p) ||
         port->valuedouble == p->valuedouble))
      return x;
  }
  return NULL;
}

/* 1 offered, 0 not offered, -1 unknown (the session never got that far). */
static int host_starttls(const cJSON *h) {
  const cJSON *st = jget(h, "starttls");
  const cJSON *off = jget(st, "offered");
  if (cJSON_IsBool(off))
    return cJSON_IsTrue(off);
  if (streq(jstr(h, "status"), "starttls-not-supported"))
    return 0;
  return -1;
}

static const cJSON *host_leaf(const cJSON *h) {
  const cJSON *chain = jget(jget(h, "tls"), "chain");
  return cJSON_IsArray(chain) ? cJSON_GetArrayItem(chain, 0) : NULL;
}

/* -1 unknown (no TLS), else 0/1. */
static int host_trusted(const cJSON *h) {
  const cJSON *v = jget(jget(jget(h, "tls"), "trust"), "trusted");
  return cJSON_IsBool(v) ? cJSON_IsTrue(v) : -1;
}

/* Is leaf inside the expiry window at the record's time? */
static bool leaf_expiring(const cJSON *leaf, time_t at) {
  time_t na;
  if (stls_time_parse_rfc3339(jstr(leaf, "not_after"), &na) != 0)
    return false;
  return na - at <= STLS_EXPIRING_WINDOW_S;
}

static time_t record_time(const cJSON *rec) {
  time_t t = 0;
  stls_time_parse_rfc3339(jstr(rec, "scanned_at"), &t);
  return t;
}

/* Append one change; takes before/after (freed on failure). */
static int push(stls_changes_t *out, stls_change_type_t type, const cJSON *h,
                cJSON *before, cJSON *after) {
  stls_change_t *c;
  if (out->n == out->cap) {
    size_t cap = out->cap ? out->cap * 2 : 8;
    stls_change_t *v = realloc(out->v, cap * sizeof(*v));
    if (!v)
      goto fail;
    out->v = v;
    out->cap = cap;
  }
  c = &out->v[out->n];
  memset(c, 0, sizeof(*c));
  c->type = type;
  if (h) {
    c->mx = stls_strdup(jstr(h, "mx"));
    c->ip = stls_strdup(jstr(h, "ip"));
    if ((jstr(h, "mx") && !c->mx) || (jstr(h, "ip") && !c->ip)) {
      free(c->mx);
      free(c->ip);
      goto fail;
    }
  }
  c->before = before;
  c->after = after;
  out->n++;
  return 0;
fail:
  cJSON_Delete(before);
  cJSON_Delete(after);
  return -1;
}

/* A JSON string or NULL (null) for s; *oom set when allocation failed. */
static cJSON *str_or_null(const char *s, bool *oom) {
  cJSON *v;
  if (!s)
    return NULL;
  if (!(v = cJSON_CreateString(s)))
    *oom = true;
  return v;
}

static cJSON *versions_of(const cJSON *h, bool *oom) {
  const char *v = jstr(jget(h, "tls"), "version");
  cJSON *a;
  if (!v)
    return NULL;
  a = cJSON_CreateArray();
  if (!a || !cJSON_AddItemToArray(a, cJSON_CreateString(v)) ||
      !cJSON_GetArrayItem(a, 0)) {
    cJSON_Delete(a);
    *oom = true;
    return NULL;
  }
  return a;
}

/* Was this leaf already inside the window in the previous record? */
static bool announced_before(const cJSON *prev, const char *sha) {
  const cJSON *h;
  time_t at = record_time(prev);
  cJSON_ArrayForEach(h, jget(prev, "hosts")) {
    const cJSON *leaf = host_leaf(h);
    if (streq(jstr(leaf, "sha256"), sha) && leaf_expiring(leaf, at))
      return true;
  }
  return false;
}

static int diff_host(const cJSON *prev, const cJSON *ph, const cJSON *h,
                     time_t at, stls_changes_t *out) {
  bool oom = false;
  const cJSON *leaf = host_leaf(h);
  const char *sha = jstr(leaf, "sha256");
  if (ph) {
    int a = host_starttls(ph), b = host_starttls(h);
    const char *va = jstr(jget(ph, "tls"), "version");
    const char *vb = jstr(jget(h, "tls"), "version");
    const char *sa = jstr(host_leaf(ph), "sha256");
    int ta = host_trusted(ph), tb = host_trusted(h);
    if (a == 1 && b == 0 &&
        push(out, STLS_CHANGE_STARTTLS_LOST, h, cJSON_CreateTrue(),
             cJSON_CreateFalse()))
      return -1;
    if (a == 0 && b == 1 &&
        push(out, STLS_CHANGE_STARTTLS_GAINED, h, cJSON_CreateFalse(),
             cJSON_CreateTrue()))
      return -1;
    if (va && vb && strcmp(va, vb)) {
      cJSON *x = versions_of(ph, &oom), *y = versions_of(h, &oom);
      if (oom || push(out, STLS_CHANGE_TLS_VERSION_CHANGED, h, x, y)) {
        if (oom) {
          cJSON_Delete(x);
          cJSON_Delete(y);
        }
        return -1;
      }
    }
    if (sa && sha && strcmp(sa, sha)) {
      cJSON *x = str_or_null(sa, &oom), *y = str_or_null(sha, &oom);
      if (oom || push(out, STLS_CHANGE_CERTIFICATE_CHANGED, h, x, y)) {
        if (oom) {
          cJSON_Delete(x);
          cJSON_Delete(y);
        }
        return -1;
      }
    }
    if (ta >= 0 && tb >= 0 && ta != tb &&
        push(out, STLS_CHANGE_TRUST_CHANGED, h, cJSON_CreateBool(ta),
             cJSON_CreateBool(tb)))
      return -1;
  }
  if (sha && leaf_expiring(leaf, at) &&
      !(prev && announced_before(prev, sha))) {
    /* Another host of this domain with the same leaf said it already. */
    for (size_t i = 0; i < out->n; i++)
      if (out->v[i].type == STLS_CHANGE_CERTIFICATE_EXPIRING &&
          out->v[i].after && streq(jstr(out->v[i].after, "sha256"), sha))
        return 0;
    cJSON *y = cJSON_CreateObject();
    if (!y || !cJSON_AddStringToObject(y, "sha256", sha) ||
        !cJSON_AddStringToObject(y, "not_after", jstr(leaf, "not_after"))) {
      cJSON_Delete(y);
      return -1;
    }
    if (push(out, STLS_CHANGE_CERTIFICATE_EXPIRING, h, NULL, y))
      return -1;
  }
  return 0;
}

int stls_diff_records(const cJSON *prev, const cJSON *next,
                      stls_changes_t *out) {
  bool oom = false;
  const cJSON *h;
  const char *ra, *rb;
  time_t at = record_time(next);
  if (!prev) {
    cJSON *y = cJSON_CreateObject();
    const char *rec = jstr(jget(next, "policy"), "recommended");
    if (!y || !cJSON_AddStringToObject(y, "status", jstr(next, "status")) ||
        !(rec ? cJSON_AddStringToObject(y, "recommended", rec)
              : cJSON_AddNullToObject(y, "recommended"))) {
      cJSON_Delete(y);
      return -1;
    }
    if (push(out, STLS_CHANGE_FIRST_SEEN, NULL, NULL, y))
      return -1;
  } else {
    ra = jstr(jget(prev, "policy"), "recommended");
    rb = jstr(jget(next, "policy"), "recommended");
    if (!streq(ra, rb)) {
      cJSON *x = str_or_null(ra, &oom), *y = str_or_null(rb, &oom);
      if (oom || push(out, STLS_CHANGE_RECOMMENDED_CHANGED, NULL, x, y)) {
        if (oom) {
          cJSON_Delete(x);
          cJSON_Delete(y);
        }
        return -1;
      }
    }
  }
  cJSON_ArrayForEach(h, jget(next, "hosts")) {
    if (diff_host(prev, prev ? host_find(jget(prev, "hosts"), h) : NULL, h, at,
                  out))
      return -1;
  }
  return 0;
}

void stls_changes_free(stls_changes_t *c) {
  for (size_t i = 0; i < c->n; i++) {
    free(c->v[i].mx);
    free(c->v[i].ip);
    cJSON_Delete(c->v[i].before);
    cJSON_Delete(c->v[i].after);
  }
  free(c->v);
  memset(c, 0, sizeof(*c));
}
