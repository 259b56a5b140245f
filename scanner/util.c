/* Small helpers shared by the stages. */
#include "stls/util.h"

#include <errno.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *stls_strdup(const char *s) {
  return s ? stls_strndup(s, strlen(s)) : NULL;
}

char *stls_strndup(const char *s, size_t n) {
  char *d;
  if (!s)
    return NULL;
  d = malloc(n + 1);
  if (!d)
    return NULL;
  memcpy(d, s, n);
  d[n] = '\0';
  return d;
}

void stls_time_rfc3339_fields(int year, int mon, int day, int hour, int min,
                              int sec, char *buf, size_t len) {
  snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02dZ", year, mon, day, hour,
           min, sec);
}

void stls_time_rfc3339(time_t t, char *buf, size_t len) {
  struct tm tm;
  gmtime_r(&t, &tm);
  stls_time_rfc3339_fields(tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                           tm.tm_hour, tm.tm_min, tm.tm_sec, buf, len);
}

int64_t stls_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void stls_hex(const unsigned char *in, size_t len, char *out) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < len; i++) {
    out[2 * i] = digits[in[i] >> 4];
    out[2 * i + 1] = digits[in[i] & 15];
  }
  out[2 * len] = '\0';
}

size_t stls_strlcpy(char *dst, const char *src, size_t len) {
  size_t n = strlen(src);
  if (len) {
    size_t c = n < len - 1 ? n : len - 1;
    memcpy(dst, src, c);
    dst[c] = '\0';
  }
  return n;
}

int64_t stls_parse_seconds_ms(const char *s) {
  char *end;
  double v;
  if (!s || !*s)
    return -1;
  errno = 0;
  v = strtod(s, &end);
  if (errno || *end || !isfinite(v) || v < 0 || v > 86400.0)
    return -1;
  return (int64_t)(v * 1000.0 + 0.5);
}

uint64_t stls_hash64(const char *s) {
  uint64_t h = 1469598103934665603ULL;
  for (; *s; s++) {
    h ^= (unsigned char)*s;
    h *= 1099511628211ULL;
  }
  return h;
}

typedef struct strmap_ent_s {
  struct strmap_ent_s *next;
  uint64_t hash;
  void *val;
  char key[];
} strmap_ent_t;

struct stls_strmap_s {
  strmap_ent_t **b;
  size_t nb, n;
};

stls_strmap_t *stls_strmap_new(void) {
  stls_strmap_t *m = calloc(1, sizeof(*m));
  if (!m)
    return NULL;
  m->nb = 64;
  m->b = calloc(m->nb, sizeof(*m->b));
  if (!m->b) {
    free(m);
    return NULL;
  }
  return m;
}

void stls_strmap_free(stls_strmap_t *m) {
  if (!m)
    return;
  for (size_t i = 0; i < m->nb; i++)
    for (strmap_ent_t *e = m->b[i], *nx; e; e = nx) {
      nx = e->next;
      free(e);
    }
  free(m->b);
  free(m);
}

static strmap_ent_t **strmap_find(const stls_strmap_t *m, const char *key,
                                  uint64_t h) {
  strmap_ent_t **pp = &m->b[h & (m->nb - 1)];
  for (; *pp; pp = &(*pp)->next)
    if ((*pp)->hash == h && strcmp((*pp)->key, key) == 0)
      return pp;
  return pp;
}

void *stls_strmap_get(const stls_strmap_t *m, const char *key) {
  strmap_ent_t **pp = strmap_find(m, key, stls_hash64(key));
  return *pp ? (*pp)->val : NULL;
}

static void strmap_grow(stls_strmap_t *m) {
  size_t nnb = m->nb * 2;
  strmap_ent_t **nb = calloc(nnb, sizeof(*nb));
  if (!nb)
    return; /* keep working with longer chains */
  for (size_t i = 0; i < m->nb; i++)
    for (strmap_ent_t *e = m->b[i], *nx; e; e = nx) {
      nx = e->next;
      e->next = nb[e->hash & (nnb - 1)];
      nb[e->hash & (nnb - 1)] = e;
    }
  free(m->b);
  m->b = nb;
  m->nb = nnb;
}

int stls_strmap_put(stls_strmap_t *m, const char *key, void *val) {
  uint64_t h = stls_hash64(key);
  strmap_ent_t **pp = strmap_find(m, key, h), *e;
  size_t kl;
  if (*pp) {
    (*pp)->val = val;
    return 0;
  }
  kl = strlen(key);
  e = malloc(sizeof(*e) + kl + 1);
  if (!e)
    return -1;
  memcpy(e->key, key, kl + 1);
  e->hash = h;
  e->val = val;
  e->next = NULL;
  *pp = e;
  if (++m->n > m->nb)
    strmap_grow(m);
  return 0;
}

void *stls_strmap_del(stls_strmap_t *m, const char *key) {
  strmap_ent_t **pp = strmap_find(m, key, stls_hash64(key)), *e = *pp;
  void *v;
  if (!e)
    return NULL;
  *pp = e->next;
  v = e->val;
  free(e);
  m->n--;
  return v;
}

size_t stls_utf8_seq_len(const unsigned char *s) {
  unsigned c = s[0];
  if (c < 0x80)
    return 1;
  if (c >= 0xc2 && c <= 0xdf)
    return (s[1] & 0xc0) == 0x80 ? 2 : 0;
  if (c >= 0xe0 && c <= 0xef) {
    /* E0 needs A0..BF (no overlong); ED needs 80..9F (no surrogates). */
    unsigned lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
    return s[1] >= lo && s[1] <= hi && (s[2] & 0xc0) == 0x80 ? 3 : 0;
  }
  if (c >= 0xf0 && c <= 0xf4) {
    /* F0 needs 90..BF (no overlong); F4 needs 80..8F (<= U+10FFFF). */
    unsigned lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
    return s[1] >= lo && s[1] <= hi && (s[2] & 0xc0) == 0x80 &&
                   (s[3] & 0xc0) == 0x80
               ? 4
               : 0;
  }
  return 0;
}

int stls_utf8_is_valid(const char *s) {
  const unsigned char *p = (const unsigned char *)s;
  while (*p) {
    size_t n = stls_utf8_seq_len(p);
    if (!n)
      return 0;
    p += n;
  }
  return 1;
}

char *stls_utf8_repair(const char *s) {
  const unsigned char *p = (const unsigned char *)s;
  size_t len = strlen(s), o = 0;
  /* Each bad byte becomes 3 bytes (EF BF BD). */
  char *out = malloc(len * 3 + 1);
  if (!out)
    return NULL;
  while (*p) {
    size_t n = stls_utf8_seq_len(p);
    if (n) {
      memcpy(out + o, p, n);
      o += n;
      p += n;
    } else {
      memcpy(out + o, "\xef\xbf\xbd", 3);
      o += 3;
      p++;
    }
  }
  out[o] = '\0';
  return out;
}

/* -1: not decided yet (read STLS_DEBUG on first use). Set once at start-up
 * (an option) or on first use; read by every thread. */
static _Atomic int debug_state = -1;

void stls_debug_enable(int on) { debug_state = on ? 1 : 0; }

int stls_debug_on(void) {
  int st = debug_state;
  if (st < 0) {
    const char *v = getenv("STLS_DEBUG");
    st = v && v[0] && strcmp(v, "0") != 0;
    debug_state = st;
  }
  return st;
}

void stls_debug(const char *fmt, ...) {
  char line[512];
  va_list ap;
  int n;
  if (!stls_debug_on())
    return;
  n = snprintf(line, sizeof(line), "starttls-scan: debug: ");
  va_start(ap, fmt);
  vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
  va_end(ap);
  /* One write per line, so lines from several threads do not mix. */
  n = (int)strlen(line);
  line[n++] = '\n';
  fwrite(line, 1, (size_t)n, stderr);
}
