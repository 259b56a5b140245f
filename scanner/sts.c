/* MTA-STS (RFC 8461) discovery and policy fetch. See sts.h.
 *
 * Strictness choices, where the RFC leaves room or where real senders
 * differ (each is a line a test pins down):
 * - TXT (3.1): records not beginning with "v=STSv1;" are discarded (the
 *   RFC's words, case-sensitive); exactly one must remain. Its syntax is
 *   the RFC's ABNF with no slack: no trailing white space, an id of 1-32
 *   letters and digits, exactly one id, extension values without ";", "="
 *   or spaces. A record that begins with "v=STSv1" but not "v=STSv1;" is
 *   discarded too, but reported as txt-invalid rather than none, because
 *   it is almost certainly a typo the domain's owner wants to hear about.
 * - HTTP (3.3): only status 200; a redirect is never followed (it is a
 *   fetch error that names the Location); the media type must be
 *   text/plain (a SHOULD for senders; stls_sts_limits_t.lax_content_type
 *   turns it off) with any parameters; the body is capped (64 KiB by
 *   default) and a larger body is a fetch error, never a truncated policy.
 * - Policy (3.2): keys are case-sensitive; version, mode and max_age must
 *   appear exactly once; mx at least once unless mode is none; unknown keys
 *   are ignored but must still be well-formed "key: value" lines. Lines end
 *   in LF or CRLF. Two departures from the ABNF, both about white space
 *   that senders in the field ignore: empty (or blank) lines are skipped,
 *   and an mx pattern may carry a trailing dot.
 */
#include "stls/sts.h"
#include "stls/conn.h"
#include "stls/names.h"
#include "stls/util.h"

#include <llhttp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STS_MAX_AGE_LIMIT 31557600u /* RFC 8461 3.2 */
#define STS_ID_MAX 32
#define STS_EXT_NAME_MAX 32 /* ALPHA/DIGIT then up to 31 more */

/* ---- names of the enums -------------------------------------------------- */

const char *stls_sts_status_name(stls_sts_status_t s) {
  switch (s) {
#define XX(name, json, rt, msg)                                                \
  case STLS_STS_##name: return json;
    STLS_STS_STATUS_MAP(XX)
#undef XX
  default: return "unknown";
  }
}

const char *stls_sts_status_result_type(stls_sts_status_t s) {
  switch (s) {
#define XX(name, json, rt, msg)                                                \
  case STLS_STS_##name: return rt;
    STLS_STS_STATUS_MAP(XX)
#undef XX
  default: return NULL;
  }
}

const char *stls_sts_status_message(stls_sts_status_t s) {
  switch (s) {
#define XX(name, json, rt, msg)                                                \
  case STLS_STS_##name: return msg;
    STLS_STS_STATUS_MAP(XX)
#undef XX
  default: return "unknown";
  }
}

const char *stls_sts_mode_name(stls_sts_mode_t m) {
  switch (m) {
#define XX(name, json)                                                         \
  case STLS_STS_MODE_##name: return json;
    STLS_STS_MODE_MAP(XX)
#undef XX
  default: return "unknown";
  }
}

const char *stls_sts_stage_name(stls_sts_stage_t s) {
  switch (s) {
#define XX(name, json)                                                         \
  case STLS_STS_STAGE_##name: return json;
    STLS_STS_STAGE_MAP(XX)
#undef XX
  default: return "unknown";
  }
}

/* ---- small character helpers (ASCII only, locale-independent) ----------- */

static bool is_alpha(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
static bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
static bool is_alnum(unsigned char c) { return is_alpha(c) || is_digit(c); }
static bool is_wsp(unsigned char c) { return c == ' ' || c == '\t'; }
static unsigned char fold(unsigned char c) {
  return c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;
}

static bool eq_nocase(const char *a, const char *b, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (fold((unsigned char)a[i]) != fold((unsigned char)b[i]))
      return false;
  return true;
}

/* Length without one trailing dot. */
static size_t len_nodot(const char *s) {
  size_t n = strlen(s);
  return n > 0 && s[n - 1] == '.' ? n - 1 : n;
}

/* The extension-name production of both grammars:
 * (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / "."). */
static bool ext_name_ok(const char *s, size_t n) {
  if (n == 0 || n > STS_EXT_NAME_MAX || !is_alnum((unsigned char)s[0]))
    return false;
  for (size_t i = 1; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (!is_alnum(c) && c != '_' && c != '-' && c != '.')
      return false;
  }
  return true;
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;
  if (!err || errlen == 0)
    return;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

/* ---- MX matching (RFC 8461 4.1) ------------------------------------------ */

bool stls_sts_mx_match(const char *pattern, const char *mxhost) {
  return stls_name_matches(STLS_NAME_STS_MX, pattern, mxhost);
}

bool stls_sts_policy_mx_match(const stls_sts_policy_t *p, const char *mxhost) {
  if (!p)
    return false;
  for (size_t i = 0; i < p->nmx; i++)
    if (stls_sts_mx_match(p->mx[i], mxhost))
      return true;
  return false;
}

/* ---- TXT record (RFC 8461 3.1) ------------------------------------------- */

/* Parse the fields after "v=STSv1" per
 *   sts-text-record = sts-version 1*(sts-sep sts-field) [sts-sep]
 *   sts-sep = *WSP %x3B *WSP
 *   sts-field = sts-id / sts-extension
 *   sts-id = %s"id=" 1*32(ALPHA / DIGIT)
 *   sts-extension = sts-ext-name "=" sts-ext-value
 *   sts-ext-value = 1*(%x21-3A / %x3C / %x3E-7E)
 * Returns true and fills id, or false with err. */
static bool txt_fields(const char *s, size_t n, size_t p,
                       char id[STS_ID_MAX + 1], char *err, size_t errlen) {
  size_t nfields = 0;
  bool have_id = false;

  for (;;) {
    /* sts-sep, or the end of the record. */
    size_t q = p;
    while (q < n && is_wsp((unsigned char)s[q]))
      q++;
    if (q == n) {
      if (q != p) {
        set_err(err, errlen, "white space at the end of the record");
        return false;
      }
      break;
    }
    if (s[q] != ';') {
      set_err(err, errlen, "expected \";\" at offset %zu", q);
      return false;
    }
    q++;
    while (q < n && is_wsp((unsigned char)s[q]))
      q++;
    if (q == n && nfields > 0)
      break; /* the optional trailing separator */
    if (q == n) {
      set_err(err, errlen, "no field after \"v=STSv1\"");
      return false;
    }

    /* sts-field: NAME "=" VALUE. */
    size_t name = q;
    while (q < n && s[q] != '=' && s[q] != ';' && !is_wsp((unsigned char)s[q]))
      q++;
    if (q == n || s[q] != '=' || !ext_name_ok(s + name, q - name)) {
      set_err(err, errlen, "malformed field at offset %zu", name);
      return false;
    }
    size_t name_len = q - name, val = ++q;
    while (q < n && (unsigned char)s[q] >= 0x21 &&
           (unsigned char)s[q] <= 0x7e && s[q] != ';' && s[q] != '=')
      q++;
    size_t val_len = q - val;
    if (val_len == 0 ||
        (q < n && s[q] != ';' && !is_wsp((unsigned char)s[q]))) {
      set_err(err, errlen, "malformed value of field \"%.*s\"", (int)name_len,
              s + name);
      return false;
    }
    if (name_len == 2 && memcmp(s + name, "id", 2) == 0) {
      if (have_id) {
        set_err(err, errlen, "more than one id= field");
        return false;
      }
      if (val_len > STS_ID_MAX) {
        set_err(err, errlen, "id= is longer than 32 characters");
        return false;
      }
      for (size_t i = 0; i < val_len; i++)
        if (!is_alnum((unsigned char)s[val + i])) {
          set_err(err, errlen, "id= may hold only letters and digits");
          return false;
        }
      memcpy(id, s + val, val_len);
      id[val_len] = '\0';
      have_id = true;
    }
    nfields++;
    p = q;
  }
  if (!have_id) {
    set_err(err, errlen, "no id= field");
    return false;
  }
  return true;
}

stls_sts_status_t stls_sts_txt_parse(char *const *txt, const size_t *txt_len,
                                     size_t n, char id[33], size_t *which,
                                     char *err, size_t errlen) {
  static const char prefix[] = "v=STSv1;";
  const size_t plen = sizeof(prefix) - 1;
  size_t cand = 0, idx = 0;
  bool near = false;
  char why[160];

  id[0] = '\0';
  set_err(err, errlen, "%s", "");
  for (size_t i = 0; i < n; i++) {
    if (txt_len[i] >= plen && memcmp(txt[i], prefix, plen) == 0) {
      if (cand++ == 0)
        idx = i;
    } else if (txt_len[i] >= plen - 1 &&
               memcmp(txt[i], prefix, plen - 1) == 0) {
      near = true;
    }
  }
  if (cand == 0) {
    if (near) {
      set_err(err, errlen,
              "a record begins with \"v=STSv1\" but not \"v=STSv1;\", so it is "
              "discarded");
      return STLS_STS_TXT_INVALID;
    }
    return STLS_STS_NONE;
  }
  if (cand > 1) {
    set_err(err, errlen,
            "%zu records begin with \"v=STSv1;\"; exactly one is allowed",
            cand);
    return STLS_STS_TXT_INVALID;
  }
  if (which)
    *which = idx;
  /* Parse from the ";" that follows the version. */
  if (!txt_fields(txt[idx], txt_len[idx], plen - 1, id, why, sizeof(why))) {
    id[0] = '\0';
    set_err(err, errlen, "invalid MTA-STS TXT record: %s", why);
    return STLS_STS_TXT_INVALID;
  }
  return STLS_STS_OK;
}

/* ---- policy body (RFC 8461 3.2) ------------------------------------------ */

void stls_sts_policy_free(stls_sts_policy_t *p) {
  if (!p)
    return;
  for (size_t i = 0; i < p->nmx; i++)
    free(p->mx[i]);
  free(p->mx);
  p->mx = NULL;
  p->nmx = 0;
}

/* sts-policy-ext-value = sts-policy-vchar [*(%x20 / sts-policy-vchar)
 * sts-policy-vchar], vchar = %x21-7E / UTF-8 multi-byte. The value given
 * here has white space trimmed on both sides already. */
static bool policy_value_ok(const char *v, size_t n) {
  size_t i = 0;
  if (n == 0)
    return false;
  while (i < n) {
    unsigned char c = (unsigned char)v[i];
    if (c >= 0x20 && c <= 0x7e) {
      i++;
      continue;
    }
    if (c < 0x80)
      return false; /* controls, DEL, and TAB inside a value */
    /* stls_utf8_seq_len reads up to 4 bytes: only ask it when they lie
     * inside the value. */
    unsigned char tmp[5] = {0};
    size_t k = n - i < 4 ? n - i : 4;
    memcpy(tmp, v + i, k);
    size_t sl = stls_utf8_seq_len(tmp);
    if (sl < 2 || sl > k)
      return false;
    i += sl;
  }
  return true;
}

/* An mx value: ["*."] Domain, with the one trailing dot we tolerate. On
 * success *out is a lower-case copy without the trailing dot. */
static int policy_mx_value(const char *v, size_t n, char **out) {
  char tmp[260];
  size_t skip = n >= 2 && v[0] == '*' && v[1] == '.' ? 2 : 0;
  if (n >= sizeof(tmp) || n == skip)
    return -1;
  memcpy(tmp, v + skip, n - skip);
  tmp[n - skip] = '\0';
  if (!stls_name_is_hostname(tmp))
    return -1;
  if (n > 0 && v[n - 1] == '.')
    n--;
  char *s = malloc(n + 1);
  if (!s)
    return UV_ENOMEM;
  for (size_t i = 0; i < n; i++)
    s[i] = (char)fold((unsigned char)v[i]);
  s[n] = '\0';
  *out = s;
  return 0;
}

static int policy_push_mx(stls_sts_policy_t *p, char *mx) {
  char **nv = realloc(p->mx, (p->nmx + 1) * sizeof(*nv));
  if (!nv) {
    free(mx);
    return UV_ENOMEM;
  }
  p->mx = nv;
  p->mx[p->nmx++] = mx;
  return 0;
}

int stls_sts_policy_parse(const char *text, size_t len, stls_sts_policy_t *out,
                          char *err, size_t errlen) {
  bool have_version = false, have_mode = false, have_max_age = false;
  size_t pos = 0, lineno = 0;
  int rc;

  memset(out, 0, sizeof(*out));
  set_err(err, errlen, "%s", "");
  while (pos < len) {
    const char *line = text + pos;
    const char *nl = memchr(line, '\n', len - pos);
    size_t n = nl ? (size_t)(nl - line) : len - pos;
    pos += n + (nl ? 1 : 0);
    lineno++;
    if (n > 0 && line[n - 1] == '\r')
      n--;

    /* Blank lines are tolerated (see the top of this file). */
    size_t k = 0;
    while (k < n && is_wsp((unsigned char)line[k]))
      k++;
    if (k == n)
      continue;

    const char *colon = memchr(line, ':', n);
    if (!colon) {
      set_err(err, errlen, "line %zu: not a \"key: value\" field", lineno);
      goto invalid;
    }
    size_t klen = (size_t)(colon - line);
    if (!ext_name_ok(line, klen)) {
      set_err(err, errlen, "line %zu: malformed key \"%.*s\"", lineno,
              (int)(klen > 40 ? 40 : klen), line);
      goto invalid;
    }
    const char *v = colon + 1;
    size_t vlen = n - klen - 1;
    while (vlen > 0 && is_wsp((unsigned char)v[0]))
      v++, vlen--;
    while (vlen > 0 && is_wsp((unsigned char)v[vlen - 1]))
      vlen--;
    if (!policy_value_ok(v, vlen)) {
      set_err(err, errlen, "line %zu: %s value of \"%.*s\"", lineno,
              vlen ? "malformed" : "empty", (int)klen, line);
      goto invalid;
    }

#define KEY_IS(lit) (klen == sizeof(lit) - 1 && memcmp(line, lit, klen) == 0)
#define VAL_IS(lit) (vlen == sizeof(lit) - 1 && memcmp(v, lit, vlen) == 0)
    if (KEY_IS("version")) {
      if (have_version) {
        set_err(err, errlen, "line %zu: version given twice", lineno);
        goto invalid;
      }
      if (!VAL_IS("STSv1")) {
        set_err(err, errlen, "line %zu: version is \"%.*s\", not STSv1", lineno,
                (int)(vlen > 40 ? 40 : vlen), v);
        goto invalid;
      }
      have_version = true;
    } else if (KEY_IS("mode")) {
      if (have_mode) {
        set_err(err, errlen, "line %zu: mode given twice", lineno);
        goto invalid;
      }
      if (VAL_IS("enforce"))
        out->mode = STLS_STS_MODE_ENFORCE;
      else if (VAL_IS("testing"))
        out->mode = STLS_STS_MODE_TESTING;
      else if (VAL_IS("none"))
        out->mode = STLS_STS_MODE_NONE;
      else {
        set_err(err, errlen,
                "line %zu: mode \"%.*s\" is not enforce, testing or none",
                lineno, (int)(vlen > 40 ? 40 : vlen), v);
        goto invalid;
      }
      have_mode = true;
    } else if (KEY_IS("max_age")) {
      uint64_t age = 0;
      if (have_max_age) {
        set_err(err, errlen, "line %zu: max_age given twice", lineno);
        goto invalid;
      }
      /* 1*10DIGIT, at most 31557600. */
      bool digits = vlen >= 1 && vlen <= 10;
      for (size_t i = 0; digits && i < vlen; i++) {
        if (!is_digit((unsigned char)v[i]))
          digits = false;
        else
          age = age * 10 + (uint64_t)(v[i] - '0');
      }
      if (!digits) {
        set_err(err, errlen,
                "line %zu: max_age \"%.*s\" is not a number of seconds", lineno,
                (int)(vlen > 40 ? 40 : vlen), v);
        goto invalid;
      }
      if (age > STS_MAX_AGE_LIMIT) {
        set_err(err, errlen, "line %zu: max_age %llu exceeds %u", lineno,
                (unsigned long long)age, STS_MAX_AGE_LIMIT);
        goto invalid;
      }
      out->max_age = (uint32_t)age;
      have_max_age = true;
    } else if (KEY_IS("mx")) {
      char *mx = NULL;
      rc = policy_mx_value(v, vlen, &mx);
      if (rc == UV_ENOMEM)
        goto nomem;
      if (rc != 0) {
        set_err(err, errlen,
                "line %zu: mx \"%.*s\" is not a host name or \"*.\" pattern",
                lineno, (int)(vlen > 60 ? 60 : vlen), v);
        goto invalid;
      }
      if (policy_push_mx(out, mx) != 0)
        goto nomem;
    }
    /* Any other key is an extension: ignored (RFC 8461 3.2). */
#undef KEY_IS
#undef VAL_IS
  }

  if (!have_version) {
    set_err(err, errlen, "no version field");
    goto invalid;
  }
  if (!have_mode) {
    set_err(err, errlen, "no mode field");
    goto invalid;
  }
  if (!have_max_age) {
    set_err(err, errlen, "no max_age field");
    goto invalid;
  }
  if (out->nmx == 0 && out->mode != STLS_STS_MODE_NONE) {
    set_err(err, errlen, "no mx field (required unless mode is none)");
    goto invalid;
  }
  return 0;

invalid:
  stls_sts_policy_free(out);
  return -1;
nomem:
  stls_sts_policy_free(out);
  set_err(err, errlen, "out of memory");
  return UV_ENOMEM;
}

bool stls_sts_content_type_ok(const char *value) {
  static const char want[] = "text/plain";
  const size_t wlen = sizeof(want) - 1;
  size_t n;
  if (!value)
    return false;
  while (is_wsp((unsigned char)*value))
    value++;
  n = strcspn(value, ";");
  while (n > 0 && is_wsp((unsigned char)value[n - 1]))
    n--;
  return n == wlen && eq_nocase(value, want, wlen);
}

/* ---- results ------------------------------------------------------------- */

void stls_sts_result_free(stls_sts_result_t *r) {
  if (!r)
    return;
  stls_sts_policy_free(&r->policy);
  free(r->domain);
  free(r->txt);
  free(r);
}

/* ---- the fetch engine ---------------------------------------------------- */

typedef struct fetch_s fetch_t;

struct stls_sts_s {
  uv_loop_t *loop;
  stls_dns_t *dns;
  stls_tls_ctx_t *tls;
  stls_sts_limits_t lim;
  fetch_t *fetches; /* in flight, doubly linked */
  size_t nfetches;
  int in_cb; /* completion callbacks running (close from inside one) */
  int closing;
};

/* One discovery. It owns its timer and its connection (conn.h). The user's
 * callback runs once the result is settled, the timer and the connection
 * are closed and the TXT lookup has called back (`pending` counts those).
 * The address lookup of the policy host (c-ares, the same resolver as the
 * TXT lookup, so --resolver and the address families apply) may still be
 * running at the deadline: the result is delivered all the same, and the
 * struct is freed when that lookup calls back. */
struct fetch_s {
  stls_sts_t *sts;
  fetch_t *prev, *next;
  stls_sts_result_t *res;
  stls_sts_done_cb cb;
  void *arg;
  char host[256]; /* mta-sts.<domain> */
  stls_sts_stage_t stage;
  int64_t t0, stage_t0, deadline;
  int done;      /* the result is settled; waiting for handles to close */
  int delivered; /* the user's callback has run */
  int pending;
  int txt_pending, addr_pending;
  uv_timer_t timer;
  int timer_open;
  stls_conn_t *conn; /* the connection to addrs[addr_i], or NULL */
  struct sockaddr_storage *addrs;
  size_t naddrs, addr_i;
  int tls12_only;
  char last_code[48], last_msg[200]; /* last connect failure */
  llhttp_t http;
  int http_done;
  char *body;
  size_t body_len, body_cap;
  size_t head_bytes;
  char hname[32];
  size_t hname_len;
  int hname_long;
  char *hval; /* where the current header's value goes, or NULL */
  size_t hval_cap, hval_len;
  /* An error found inside an llhttp callback, applied after it returns. */
  stls_sts_status_t herr_status;
  char herr_code[48], herr_msg[200];
};

/* Read callbacks consume the buffer synchronously, so one per thread. */
static _Thread_local char sts_read_buf[16384];

static void fetch_finish(fetch_t *f);
static void connect_next(fetch_t *f);

static int64_t stage_elapsed(const fetch_t *f) {
  return stls_now_ms() - f->stage_t0;
}

static void enter(fetch_t *f, stls_sts_stage_t stage) {
  f->stage = stage;
  f->stage_t0 = stls_now_ms();
}

/* Settle the result as a failure (the first one wins) and wind down. */
static void fetch_fail(fetch_t *f, stls_sts_status_t st, const char *code,
                       const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void fetch_fail(fetch_t *f, stls_sts_status_t st, const char *code,
                       const char *fmt, ...) {
  va_list ap;
  if (f->done)
    return;
  f->res->status = st;
  f->res->error.stage = f->stage;
  stls_strlcpy(f->res->error.code, code, sizeof(f->res->error.code));
  va_start(ap, fmt);
  vsnprintf(f->res->error.message, sizeof(f->res->error.message), fmt, ap);
  va_end(ap);
  fetch_finish(f);
}

static void sts_maybe_free(stls_sts_t *s) {
  if (s->closing && s->nfetches == 0 && s->in_cb == 0)
    free(s);
}

/* Hand the result over once nothing of the fetch is left running. */
static void maybe_deliver(fetch_t *f) {
  stls_sts_t *s = f->sts;
  if (!f->done || f->pending > 0 || f->delivered)
    return;
  f->delivered = 1;
  if (f->prev)
    f->prev->next = f->next;
  else
    s->fetches = f->next;
  if (f->next)
    f->next->prev = f->prev;
  s->nfetches--;
  s->in_cb++;
  f->cb(f->res, f->arg);
  s->in_cb--;
  free(f->addrs);
  f->addrs = NULL;
  free(f->body);
  f->body = NULL;
  if (!f->addr_pending)
    free(f); /* else addr_cb frees it */
  sts_maybe_free(s);
}

static void timer_close_cb(uv_handle_t *h) {
  fetch_t *f = h->data;
  f->timer_open = 0;
  f->pending--;
  maybe_deliver(f);
}

static void conn_close_cb(stls_conn_t *c, void *arg) {
  fetch_t *f = arg;
  (void)c;
  f->conn = NULL;
  f->pending--;
  if (f->done) {
    maybe_deliver(f);
    return;
  }
  connect_next(f); /* the previous connection is gone: try again */
}

/* Close the current connection (its TLS state with it). */
static void conn_close(fetch_t *f) { stls_conn_close(f->conn); }

static stls_tls_conn_t *ftls(const fetch_t *f) {
  return stls_conn_tls(f->conn);
}

static void fetch_finish(fetch_t *f) {
  if (f->done)
    return;
  f->done = 1;
  f->res->timing.total = stls_now_ms() - f->t0;
  conn_close(f);
  if (f->timer_open && !uv_is_closing((uv_handle_t *)&f->timer))
    uv_close((uv_handle_t *)&f->timer, timer_close_cb);
  maybe_deliver(f);
}

/* ---- timer: the overall deadline of the HTTPS part ---- */

static void timer_cb(uv_timer_t *t) {
  fetch_t *f = t->data;
  if (f->done)
    return;
  fetch_fail(f, STLS_STS_FETCH_ERROR, "ETIMEDOUT",
             "no policy from %s within %u ms", f->host, f->sts->lim.timeout_ms);
}

/* ---- HTTP (llhttp callbacks) ---- */

static int http_error(fetch_t *f, stls_sts_status_t st, const char *code,
                      const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int http_error(fetch_t *f, stls_sts_status_t st, const char *code,
                      const char *fmt, ...) {
  va_list ap;
  f->herr_status = st;
  stls_strlcpy(f->herr_code, code, sizeof(f->herr_code));
  va_start(ap, fmt);
  vsnprintf(f->herr_msg, sizeof(f->herr_msg), fmt, ap);
  va_end(ap);
  return HPE_USER;
}

static int count_head(fetch_t *f, size_t n) {
  f->head_bytes += n;
  if (f->head_bytes > f->sts->lim.max_header_bytes)
    return http_error(f, STLS_STS_FETCH_ERROR, "HEADERS_TOO_LARGE",
                      "response head longer than %zu bytes",
                      f->sts->lim.max_header_bytes);
  return 0;
}

static int on_status(llhttp_t *p, const char *at, size_t n) {
  (void)at;
  return count_head(p->data, n);
}

static int on_header_field(llhttp_t *p, const char *at, size_t n) {
  fetch_t *f = p->data;
  if (f->hname_len + n >= sizeof(f->hname))
    f->hname_long = 1;
  else {
    memcpy(f->hname + f->hname_len, at, n);
    f->hname_len += n;
  }
  return count_head(f, n);
}

/* Pick where the value of the header just named goes: only Content-Type
 * and Location are kept (the last of each wins). */
static int on_header_field_complete(llhttp_t *p) {
  fetch_t *f = p->data;
  /* ": " and CRLF, once per header: a field name that arrives in several
   * reads must not cost more of the limit than one that arrives whole. */
  int rc = count_head(f, 4);
  if (rc != 0)
    return rc;
  f->hval = NULL;
  if (!f->hname_long && f->hname_len == 12 &&
      eq_nocase(f->hname, "content-type", 12)) {
    f->hval = f->res->content_type;
    f->hval_cap = sizeof(f->res->content_type);
  } else if (!f->hname_long && f->hname_len == 8 &&
             eq_nocase(f->hname, "location", 8)) {
    f->hval = f->res->location;
    f->hval_cap = sizeof(f->res->location);
  }
  if (f->hval)
    f->hval[0] = '\0';
  f->hval_len = 0;
  f->hname_len = 0;
  f->hname_long = 0;
  return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t n) {
  fetch_t *f = p->data;
  if (f->hval) {
    size_t room = f->hval_cap - 1 - f->hval_len;
    size_t k = n < room ? n : room;
    /* Keep it printable: these strings end up in reports. */
    for (size_t i = 0; i < k; i++)
      f->hval[f->hval_len++] =
          (unsigned char)at[i] >= 0x20 && (unsigned char)at[i] < 0x7f ? at[i]
                                                                      : '?';
    f->hval[f->hval_len] = '\0';
  }
  return count_head(f, n);
}

static int on_headers_complete(llhttp_t *p) {
  fetch_t *f = p->data;
  stls_sts_limits_t *lim = &f->sts->lim;
  int code = llhttp_get_status_code(p);
  char c[16];

  f->res->http_status = code;
  snprintf(c, sizeof(c), "HTTP_%d", code);
  if (code >= 300 && code < 400)
    return http_error(f, STLS_STS_FETCH_ERROR, c,
                      "HTTP %d redirect%s%s not followed (RFC 8461 3.3)", code,
                      f->res->location[0] ? " to " : "", f->res->location);
  if (code != 200)
    return http_error(f, STLS_STS_FETCH_ERROR, c, "HTTP status %d, not 200",
                      code);
  if ((p->flags & F_CONTENT_LENGTH) && p->content_length > lim->max_body)
    return http_error(f, STLS_STS_FETCH_ERROR, "BODY_TOO_LARGE",
                      "policy of %llu bytes is larger than the %zu-byte limit",
                      (unsigned long long)p->content_length, lim->max_body);
  if (!lim->lax_content_type && !stls_sts_content_type_ok(f->res->content_type))
    return http_error(f, STLS_STS_INVALID, "BAD_CONTENT_TYPE",
                      "media type is \"%s\", not text/plain (RFC 8461 3.3)",
                      f->res->content_type[0] ? f->res->content_type
                                              : "(none)");
  return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t n) {
  fetch_t *f = p->data;
  size_t max = f->sts->lim.max_body;
  if (f->body_len + n > max)
    return http_error(f, STLS_STS_FETCH_ERROR, "BODY_TOO_LARGE",
                      "policy body larger than the %zu-byte limit", max);
  if (f->body_len + n > f->body_cap) {
    size_t cap = f->body_cap ? f->body_cap : 1024;
    while (cap < f->body_len + n)
      cap *= 2;
    if (cap > max)
      cap = max;
    char *nb = realloc(f->body, cap);
    if (!nb)
      return http_error(f, STLS_STS_FETCH_ERROR, "ENOMEM", "out of memory");
    f->body = nb;
    f->body_cap = cap;
  }
  memcpy(f->body + f->body_len, at, n);
  f->body_len += n;
  return 0;
}

static int on_message_complete(llhttp_t *p) {
  fetch_t *f = p->data;
  f->http_done = 1;
  return HPE_PAUSED; /* anything after the response is not ours to read */
}

static const llhttp_settings_t http_settings = {
    .on_status = on_status,
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* The whole response is in: judge the policy and finish. */
static void http_complete(fetch_t *f) {
  char err[200];
  stls_sts_result_t *res = f->res;
  res->timing.http = stage_elapsed(f);
  res->body_len = f->body_len;
  enter(f, STLS_STS_STAGE_POLICY);
  int rc = stls_sts_policy_parse(f->body ? f->body : "", f->body_len,
                                 &res->policy, err, sizeof(err));
  if (rc == UV_ENOMEM) {
    fetch_fail(f, STLS_STS_FETCH_ERROR, "ENOMEM", "out of memory");
    return;
  }
  if (rc != 0) {
    fetch_fail(f, STLS_STS_INVALID, "POLICY_SYNTAX", "%s", err);
    return;
  }
  res->status = STLS_STS_OK;
  fetch_finish(f);
}

/* Apply the outcome of llhttp_execute() or llhttp_finish(). */
static void http_result(fetch_t *f, llhttp_errno_t e) {
  if (f->http_done) {
    http_complete(f);
  } else if (f->herr_code[0]) {
    /* One of our callbacks refused (llhttp reports that as HPE_USER from
     * data callbacks, HPE_CB_<NAME> from the others). */
    fetch_fail(f, f->herr_status, f->herr_code, "%s", f->herr_msg);
  } else if (e != HPE_OK) {
    const char *why = llhttp_get_error_reason(&f->http);
    fetch_fail(f, STLS_STS_FETCH_ERROR, "BAD_HTTP",
               "malformed HTTP response: %s (%s)", llhttp_errno_name(e),
               why ? why : "");
  }
}

/* The server closed (TCP EOF, or TLS close_notify): a response without a
 * length ends here; anything else was cut short. */
static void http_eof(fetch_t *f, const char *code, const char *msg) {
  llhttp_errno_t e = llhttp_finish(&f->http);
  if (f->http_done || f->herr_code[0]) {
    http_result(f, e);
    return;
  }
  fetch_fail(f, STLS_STS_FETCH_ERROR, code,
             "%s before the response was complete", msg);
}

/* Decrypt what has arrived and feed it to the HTTP parser. */
static void pump_http(fetch_t *f) {
  while (!f->done) {
    int n = stls_tls_conn_read(ftls(f), sts_read_buf, sizeof(sts_read_buf));
    if (n == 0)
      return;
    if (n < 0) {
      char code[48], msg[200];
      stls_tls_conn_error(ftls(f), code, sizeof(code), msg, sizeof(msg));
      http_eof(f, code, msg);
      return;
    }
    http_result(f, llhttp_execute(&f->http, sts_read_buf, (size_t)n));
  }
}

/* ---- TLS ---- */

/* The policy host's certificate must be valid for it in the WebPKI
 * (RFC 8461 3.3): chain trusted by the store, leaf names mta-sts.<domain>. */
static bool webpki_check(fetch_t *f) {
  stls_tls_result_t tr;
  stls_sts_result_t *res = f->res;
  char reasons[160] = "";

  memset(&tr, 0, sizeof(tr));
  if (stls_tls_conn_collect(ftls(f), f->host, &tr) != 0) {
    stls_tls_result_free(&tr);
    fetch_fail(f, STLS_STS_FETCH_ERROR, "ENOMEM", "out of memory");
    return false;
  }
  stls_strlcpy(res->tls_version, tr.version, sizeof(res->tls_version));
  stls_strlcpy(res->tls_cipher, tr.cipher_name, sizeof(res->tls_cipher));
  res->tls_trusted = tr.trusted;
  res->tls_trust_reasons = tr.trusted ? 0 : tr.trust_reasons;
  res->tls_name_ok = tr.name_mx;
  stls_tls_result_free(&tr);

  if (res->tls_trusted && res->tls_name_ok)
    return true;
  for (unsigned b = 0; b < STLS_TRUST_REASON_COUNT; b++)
    if (res->tls_trust_reasons & (1u << b)) {
      size_t l = strlen(reasons);
      snprintf(reasons + l, sizeof(reasons) - l, "%s%s", l ? ", " : "",
               stls_trust_reason_name(b));
    }
  if (!res->tls_trusted)
    fetch_fail(f, STLS_STS_WEBPKI_INVALID,
               res->tls_trust_reasons & STLS_TRUST_REASON(EXPIRED)
                   ? "CERT_EXPIRED"
                   : "CERT_UNTRUSTED",
               "certificate of %s is not trusted (%s)%s", f->host, reasons,
               res->tls_name_ok ? "" : " and does not name it");
  else
    fetch_fail(f, STLS_STS_WEBPKI_INVALID, "CERT_NAME_MISMATCH",
               "certificate of %s does not name it", f->host);
  return false;
}

static void send_request(fetch_t *f) {
  char req[512];
  int n = snprintf(req, sizeof(req),
                   "GET /.well-known/mta-sts.txt HTTP/1.1\r\n"
                   "Host: %s\r\n"
                   "User-Agent: starttls-scan/" STLS_VERSION "\r\n"
                   "Accept: text/plain\r\n"
                   "Connection: close\r\n\r\n",
                   f->host);
  enter(f, STLS_STS_STAGE_HTTP);
  llhttp_init(&f->http, HTTP_RESPONSE, &http_settings);
  f->http.data = f;
  if (n < 0 || (size_t)n >= sizeof(req) ||
      stls_conn_write(f->conn, req, (size_t)n) != 0) {
    fetch_fail(f, STLS_STS_FETCH_ERROR, "EIO", "cannot send the HTTP request");
    return;
  }
  pump_http(f); /* data may have come with the end of the handshake */
}

static void step_handshake(fetch_t *f) {
  int rc = stls_tls_conn_handshake(ftls(f));
  if (rc == 1)
    return;
  if (rc < 0) {
    char code[48], msg[200];
    if (stls_tls_conn_wants_tls12_retry(ftls(f))) {
      /* See tls.h: the same address again, offering TLS 1.2 alone. */
      f->tls12_only = 1;
      conn_close(f); /* addr_i unchanged: handle_close_cb reconnects */
      return;
    }
    stls_tls_conn_error(ftls(f), code, sizeof(code), msg, sizeof(msg));
    fetch_fail(f, STLS_STS_FETCH_ERROR, code,
               "TLS handshake with %s failed: %s", f->host, msg);
    return;
  }
  f->res->timing.tls = stage_elapsed(f);
  if (webpki_check(f))
    send_request(f);
}

/* ---- the connection ---- */

static void on_read(stls_conn_t *c, ssize_t nread, const char *buf, void *arg) {
  fetch_t *f = arg;
  (void)c;
  (void)buf; /* TLS is on from the connect: only ciphertext arrives */
  if (f->done || nread == 0)
    return;
  if (nread == STLS_CONN_ETLSFEED) {
    fetch_fail(f, STLS_STS_FETCH_ERROR, "TLS_ERROR",
               "peer sent more than a TLS record's worth");
    return;
  }
  if (nread < 0) {
    const char *code = nread == UV_EOF ? "EOF" : uv_err_name((int)nread);
    const char *msg = nread == UV_EOF ? "server closed the connection"
                                      : uv_strerror((int)nread);
    if (f->stage == STLS_STS_STAGE_HTTP)
      http_eof(f, code, msg);
    else
      fetch_fail(f, STLS_STS_FETCH_ERROR, code, "%s during the TLS handshake",
                 msg);
    return;
  }
  if (f->stage == STLS_STS_STAGE_TLS)
    step_handshake(f);
  else
    pump_http(f);
}

static void on_connect(stls_conn_t *c, int status, const char *why, void *arg) {
  fetch_t *f = arg;
  stls_sts_limits_t *lim = &f->sts->lim;
  if (f->done)
    return; /* settled meanwhile; the close is under way */
  if (status == STLS_CONN_EBLOCKED) {
    stls_strlcpy(f->last_code, "ADDRESS_NOT_ALLOWED", sizeof(f->last_code));
    snprintf(f->last_msg, sizeof(f->last_msg), "not connecting to %s: %s",
             f->res->ip, why ? why : "refused");
  } else if (status == UV_ETIMEDOUT) {
    stls_strlcpy(f->last_code, "ETIMEDOUT", sizeof(f->last_code));
    snprintf(f->last_msg, sizeof(f->last_msg),
             "no TCP connection to %s within %lld ms", f->res->ip,
             (long long)stage_elapsed(f));
  } else if (status < 0) {
    stls_strlcpy(f->last_code, uv_err_name(status), sizeof(f->last_code));
    snprintf(f->last_msg, sizeof(f->last_msg),
             "cannot connect to %s port %u: %s", f->res->ip, lim->port,
             uv_strerror(status));
  }
  if (status < 0) {
    f->addr_i++;
    stls_conn_close(c); /* conn_close_cb goes on with the next address */
    return;
  }
  f->res->timing.connect = stage_elapsed(f);
  enter(f, STLS_STS_STAGE_TLS);
  if (stls_conn_tls_start(c, f->sts->tls, f->host, f->tls12_only) != 0) {
    fetch_fail(f, STLS_STS_FETCH_ERROR, "ENOMEM", "out of memory");
    return;
  }
  step_handshake(f);
}

static const stls_conn_cbs_t fetch_conn_cbs = {
    .on_connect = on_connect,
    .on_read = on_read,
    .on_close = conn_close_cb,
};

/* Connect to address addr_i (the next one after a failure, the same one
 * again for the TLS 1.2 retry); called with no connection open. The
 * private-address guard, when on, is checked inside stls_conn_open(). */
static void connect_next(fetch_t *f) {
  stls_sts_limits_t *lim = &f->sts->lim;
  stls_conn_opts_t o = {lim->connect_timeout_ms, lim->guard_private};

  if (f->addr_i >= f->naddrs) {
    fetch_fail(f, STLS_STS_FETCH_ERROR,
               f->last_code[0] ? f->last_code : "ECONNREFUSED", "%s",
               f->last_msg[0] ? f->last_msg : "no address to connect to");
    return;
  }
  enter(f, STLS_STS_STAGE_CONNECT);
  struct sockaddr *sa = (struct sockaddr *)&f->addrs[f->addr_i];
  uv_ip_name(sa, f->res->ip, sizeof(f->res->ip));
  if (stls_conn_open(&f->conn, f->sts->loop, sa, &o, &fetch_conn_cbs, f) != 0) {
    fetch_fail(f, STLS_STS_FETCH_ERROR, "ENOMEM", "out of memory");
    return;
  }
  f->pending++;
}

/* ---- address lookup ---- */

/* The DNS outcome as the code a failed lookup has always had here (the
 * system resolver's names): no such host, or try again later. */
static const char *addr_error_code(stls_dns_status_t st) {
  switch (st) {
  case STLS_DNS_NXDOMAIN:
  case STLS_DNS_NO_ADDRESS:
  case STLS_DNS_NODATA:
  case STLS_DNS_OK: return "EAI_NONAME";
  case STLS_DNS_CANCELLED: return "ECANCELED";
  default: return "EAI_AGAIN";
  }
}

static void addr_cb(stls_dns_result_t *dr, void *arg) {
  fetch_t *f = arg;
  stls_sts_limits_t *lim;
  const stls_dns_mx_t *h = dr->nmx > 0 ? &dr->mx[0] : NULL;

  f->addr_pending = 0;
  if (f->done) {
    /* Settled meanwhile (deadline, close); maybe delivered already, and
     * then the object that made the fetch may be gone: touch only f. */
    stls_dns_result_free(dr);
    if (f->delivered)
      free(f);
    return;
  }
  lim = &f->sts->lim;
  if (!h || h->naddrs == 0) {
    stls_dns_status_t st = h ? h->status : dr->status;
    const char *msg = h && h->error.message ? h->error.message
                      : dr->error.message   ? dr->error.message
                                            : stls_dns_status_message(st);
    fetch_fail(f, STLS_STS_FETCH_ERROR, addr_error_code(st),
               "cannot resolve %s: %s", f->host,
               st == STLS_DNS_OK || st == STLS_DNS_NODATA
                   ? "no IPv4 or IPv6 address"
                   : msg);
    stls_dns_result_free(dr);
    return;
  }
  f->res->timing.resolve = stage_elapsed(f);
  f->addrs = calloc(lim->max_addrs, sizeof(*f->addrs));
  if (!f->addrs) {
    stls_dns_result_free(dr);
    fetch_fail(f, STLS_STS_FETCH_ERROR, "ENOMEM", "out of memory");
    return;
  }
  /* IPv4 first, then IPv6, each sorted and without duplicates (dns.h). */
  for (size_t i = 0; i < h->naddrs && f->naddrs < lim->max_addrs; i++) {
    struct sockaddr_storage *ss = &f->addrs[f->naddrs];
    if (h->addrs[i].family == AF_INET6
            ? uv_ip6_addr(h->addrs[i].text, (int)lim->port,
                          (struct sockaddr_in6 *)ss) == 0
            : uv_ip4_addr(h->addrs[i].text, (int)lim->port,
                          (struct sockaddr_in *)ss) == 0)
      f->naddrs++;
  }
  stls_dns_result_free(dr);
  if (f->naddrs == 0) {
    fetch_fail(f, STLS_STS_FETCH_ERROR, "EAI_NONAME",
               "%s has no IPv4 or IPv6 address", f->host);
    return;
  }
  connect_next(f);
}

/* The TXT record announced a policy: fetch it over HTTPS. */
static void start_https(fetch_t *f) {
  stls_sts_t *s = f->sts;
  stls_dns_query_opts_t q;
  int r;

  enter(f, STLS_STS_STAGE_RESOLVE);
  f->deadline = stls_now_ms() + s->lim.timeout_ms;
  uv_timer_init(s->loop, &f->timer);
  f->timer.data = f;
  f->timer_open = 1;
  f->pending++;
  uv_update_time(s->loop);
  uv_timer_start(&f->timer, timer_cb, s->lim.timeout_ms, 0);

  memset(&q, 0, sizeof(q));
  q.want_ipv4 = !s->lim.skip_ipv4;
  q.want_ipv6 = !s->lim.skip_ipv6;
  q.max_addrs_per_host = s->lim.max_addrs;
  f->addr_pending = 1;
  r = stls_dns_resolve_host(s->dns, f->host, &q, addr_cb, f);
  if (r < 0) {
    f->addr_pending = 0;
    fetch_fail(f, STLS_STS_FETCH_ERROR, uv_err_name(r), "cannot resolve %s: %s",
               f->host, uv_strerror(r));
  }
}

/* ---- TXT ---- */

static void txt_cb(stls_dns_txt_result_t *tr, void *arg) {
  fetch_t *f = arg;
  stls_sts_result_t *res = f->res;
  char err[200];
  size_t which = SIZE_MAX;

  f->txt_pending = 0;
  f->pending--;
  res->timing.txt = stls_now_ms() - f->t0;
  if (f->done) {
    stls_dns_txt_result_free(tr);
    maybe_deliver(f);
    return;
  }
  if (tr->status == STLS_DNS_NXDOMAIN || tr->status == STLS_DNS_NODATA) {
    res->txt_secure = tr->secure;
    res->status = STLS_STS_NONE;
    stls_dns_txt_result_free(tr);
    fetch_finish(f);
    return;
  }
  if (tr->status != STLS_DNS_OK) {
    const char *code =
        tr->error.code ? tr->error.code : stls_dns_status_name(tr->status);
    const char *msg = tr->error.message ? tr->error.message
                                        : stls_dns_status_message(tr->status);
    stls_dns_txt_result_free(tr);
    fetch_fail(f, STLS_STS_DNS_ERROR, code, "TXT _mta-sts.%s: %s", res->domain,
               msg);
    return;
  }
  res->txt_secure = tr->secure;
  stls_sts_status_t st = stls_sts_txt_parse(tr->txt, tr->txt_len, tr->ntxt,
                                            res->id, &which, err, sizeof(err));
  /* Keep the record when there was exactly one candidate (valid or not). */
  if (which < tr->ntxt)
    res->txt = stls_strndup(tr->txt[which], tr->txt_len[which]);
  stls_dns_txt_result_free(tr);
  if (st == STLS_STS_NONE) {
    res->status = STLS_STS_NONE;
    fetch_finish(f);
  } else if (st == STLS_STS_TXT_INVALID) {
    fetch_fail(f, STLS_STS_TXT_INVALID, "TXT_INVALID", "%s", err);
  } else {
    start_https(f);
  }
}

/* ---- the object ---- */

int stls_sts_init(stls_sts_t **out, uv_loop_t *loop, stls_dns_t *dns,
                  stls_tls_ctx_t *tls, const stls_sts_limits_t *lim) {
  stls_sts_t *s;
  *out = NULL;
  if (!loop || !dns || !tls)
    return UV_EINVAL;
  s = calloc(1, sizeof(*s));
  if (!s)
    return UV_ENOMEM;
  s->loop = loop;
  s->dns = dns;
  s->tls = tls;
  if (lim)
    s->lim = *lim;
  if (!s->lim.timeout_ms)
    s->lim.timeout_ms = STLS_STS_DEFAULT_TIMEOUT_MS;
  if (!s->lim.connect_timeout_ms)
    s->lim.connect_timeout_ms = STLS_STS_DEFAULT_CONNECT_TIMEOUT_MS;
  if (!s->lim.max_body)
    s->lim.max_body = STLS_STS_DEFAULT_MAX_BODY;
  if (!s->lim.max_header_bytes)
    s->lim.max_header_bytes = STLS_STS_DEFAULT_MAX_HEADER_BYTES;
  if (!s->lim.max_addrs)
    s->lim.max_addrs = STLS_STS_DEFAULT_MAX_ADDRS;
  if (!s->lim.port)
    s->lim.port = STLS_STS_DEFAULT_PORT;
  if (s->lim.port > 65535) {
    free(s);
    return UV_EINVAL;
  }
  *out = s;
  return 0;
}

void stls_sts_close(stls_sts_t *s) {
  fetch_t *f, *next;
  if (!s || s->closing)
    return;
  s->closing = 1;
  for (f = s->fetches; f; f = next) {
    next = f->next;
    if (f->done)
      continue;
    if (f->txt_pending)
      fetch_fail(f, STLS_STS_DNS_ERROR, "ECANCELED", "cancelled");
    else
      fetch_fail(f, STLS_STS_FETCH_ERROR, "ECANCELED", "cancelled");
  }
  sts_maybe_free(s);
}

int stls_sts_fetch(stls_sts_t *s, const char *domain, stls_sts_done_cb cb,
                   void *arg) {
  char qname[300];
  fetch_t *f;
  size_t dlen;
  int r;

  if (!s || !domain || !cb)
    return UV_EINVAL;
  if (s->closing)
    return UV_ECANCELED;
  dlen = len_nodot(domain);
  /* "_mta-sts." + domain must still be a name (253 characters at most). */
  if (!stls_name_is_hostname(domain) || dlen + 9 > 253)
    return UV_EINVAL;
  f = calloc(1, sizeof(*f));
  if (!f)
    return UV_ENOMEM;
  f->res = calloc(1, sizeof(*f->res));
  if (!f->res || !(f->res->domain = stls_strndup(domain, dlen))) {
    if (f->res)
      free(f->res);
    free(f);
    return UV_ENOMEM;
  }
  stls_sts_result_t *res = f->res;
  res->timing = (stls_sts_timing_t){-1, -1, -1, -1, -1, -1};
  res->status = STLS_STS_NONE;
  f->sts = s;
  f->cb = cb;
  f->arg = arg;
  f->t0 = stls_now_ms();
  snprintf(f->host, sizeof(f->host), "mta-sts.%s", res->domain);
  snprintf(qname, sizeof(qname), "_mta-sts.%s", res->domain);
  enter(f, STLS_STS_STAGE_TXT);

  r = stls_dns_lookup_txt(s->dns, qname, txt_cb, f);
  if (r < 0) {
    stls_sts_result_free(res);
    free(f);
    return r;
  }
  f->txt_pending = 1;
  f->pending = 1;
  f->next = s->fetches;
  if (s->fetches)
    s->fetches->prev = f;
  s->fetches = f;
  s->nfetches++;
  return 0;
}
