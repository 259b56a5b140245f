/* Fuzz target for the MTA-STS parsers (sts.c): the TXT record choice and
 * grammar, the policy body, the Content-Type check and MX pattern match.
 *
 * Input: one mode byte, then the text.
 *  mode 0: TXT records separated by '\n' (NUL bytes stay inside records,
 *          as DNS allows): OK means exactly one record starts "v=STSv1;",
 *          which is *which, with an id of 1-32 letters and digits; NONE
 *          means none starts with it; INVALID carries a reason.
 *  mode 1: a policy body: a parsed policy has a known mode, max_age within
 *          RFC 8461's limit, lower-case patterns without a trailing dot,
 *          each matching its own host; written back in canonical form it
 *          parses to the same policy; a failure carries a reason.
 *  mode 2: a Content-Type value: ASCII case never changes the answer.
 *  mode 3: "PATTERN\0HOST" for the MX pattern match: ASCII case and a
 *          trailing dot on the host never change the answer, and a
 *          pattern without '*' matches only its own name.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "stls/sts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      abort();                                                                 \
    }                                                                          \
  } while (0)

static const char prefix[] = "v=STSv1;";

static void fuzz_txt(const char *s, size_t n) {
  size_t count = 1, k = 0, start = 0, which = (size_t)-1, cands = 0;
  char **txt, id[33], err[256];
  size_t *len;
  stls_sts_status_t st;

  for (size_t i = 0; i < n; i++)
    count += s[i] == '\n';
  txt = calloc(count, sizeof *txt);
  len = calloc(count, sizeof *len);
  CHECK(txt && len);
  for (size_t i = 0; i <= n; i++) {
    if (i == n || s[i] == '\n') {
      txt[k] = (char *)s + start;
      len[k] = i - start;
      cands += len[k] >= 8 && memcmp(txt[k], prefix, 8) == 0;
      k++;
      start = i + 1;
    }
  }
  CHECK(k == count);
  st = stls_sts_txt_parse(txt, len, count, id, &which, err, sizeof err);
  if (st == STLS_STS_OK) {
    size_t idn = strlen(id);
    CHECK(cands == 1 && which < count);
    CHECK(len[which] >= 8 && memcmp(txt[which], prefix, 8) == 0);
    CHECK(idn >= 1 && idn <= 32);
    for (size_t i = 0; i < idn; i++)
      CHECK((id[i] >= 'a' && id[i] <= 'z') || (id[i] >= 'A' && id[i] <= 'Z') ||
            (id[i] >= '0' && id[i] <= '9'));
  } else if (st == STLS_STS_NONE) {
    CHECK(cands == 0);
  } else {
    CHECK(st == STLS_STS_TXT_INVALID);
    CHECK(err[0] != '\0');
    CHECK(id[0] == '\0');
  }
  free(txt);
  free(len);
}

/* A policy written back in canonical form. */
static char *policy_text(const stls_sts_policy_t *p, size_t *n) {
  size_t cap = 128;
  char *t;
  int w;
  for (size_t i = 0; i < p->nmx; i++)
    cap += strlen(p->mx[i]) + 8;
  t = malloc(cap);
  CHECK(t != NULL);
  w = snprintf(t, cap, "version: STSv1\nmode: %s\nmax_age: %u\n",
               stls_sts_mode_name(p->mode), (unsigned)p->max_age);
  CHECK(w > 0 && (size_t)w < cap);
  *n = (size_t)w;
  for (size_t i = 0; i < p->nmx; i++)
    *n += (size_t)snprintf(t + *n, cap - *n, "mx: %s\n", p->mx[i]);
  return t;
}

static void fuzz_policy(const char *s, size_t n) {
  stls_sts_policy_t p, q;
  char err[256];
  int rc = stls_sts_policy_parse(s, n, &p, err, sizeof err);

  CHECK(rc == 0 || rc == -1 || rc == UV_ENOMEM);
  if (rc == -1) {
    CHECK(err[0] != '\0');
    CHECK(p.nmx == 0 && p.mx == NULL);
    return;
  }
  if (rc != 0)
    return;
  CHECK(p.mode == STLS_STS_MODE_ENFORCE || p.mode == STLS_STS_MODE_TESTING ||
        p.mode == STLS_STS_MODE_NONE);
  CHECK(p.max_age <= 31557600u);
  for (size_t i = 0; i < p.nmx; i++) {
    const char *m = p.mx[i];
    size_t ml = strlen(m);
    CHECK(ml > 0 && m[ml - 1] != '.');
    for (size_t k = 0; k < ml; k++)
      CHECK(!(m[k] >= 'A' && m[k] <= 'Z'));
    if (m[0] != '*')
      CHECK(stls_sts_policy_mx_match(&p, m));
  }
  {
    size_t tn;
    char *t = policy_text(&p, &tn);
    CHECK(stls_sts_policy_parse(t, tn, &q, err, sizeof err) == 0);
    CHECK(q.mode == p.mode && q.max_age == p.max_age && q.nmx == p.nmx);
    for (size_t i = 0; i < p.nmx; i++)
      CHECK(strcmp(p.mx[i], q.mx[i]) == 0);
    stls_sts_policy_free(&q);
    free(t);
  }
  stls_sts_policy_free(&p);
}

static void recase(char *s, bool upper) {
  for (; *s; s++) {
    if (upper && *s >= 'a' && *s <= 'z')
      *s = (char)(*s - 'a' + 'A');
    else if (!upper && *s >= 'A' && *s <= 'Z')
      *s = (char)(*s - 'A' + 'a');
  }
}

static void fuzz_content_type(char *s) {
  bool ok = stls_sts_content_type_ok(s);
  recase(s, true);
  CHECK(stls_sts_content_type_ok(s) == ok);
  recase(s, false);
  CHECK(stls_sts_content_type_ok(s) == ok);
}

static void fuzz_match(char *s, size_t n) {
  char *pat = s, *host, *h2;
  size_t hl;
  bool m;

  host = memchr(s, '\0', n) ? s + strlen(s) + 1 : s + n;
  if (host > s + n)
    host = s + n;
  hl = strlen(host);
  m = stls_sts_mx_match(pat, host);
  h2 = malloc(hl + 2);
  CHECK(h2 != NULL);
  memcpy(h2, host, hl + 1);
  recase(h2, true);
  CHECK(stls_sts_mx_match(pat, h2) == m);
  if (hl > 0 && host[hl - 1] != '.') {
    memcpy(h2, host, hl);
    memcpy(h2 + hl, ".", 2);
    CHECK(stls_sts_mx_match(pat, h2) == m);
  }
  if (m && !strchr(pat, '*')) {
    size_t pl = strlen(pat), l = hl;
    if (pl > 0 && pat[pl - 1] == '.')
      pl--;
    if (l > 0 && host[l - 1] == '.')
      l--;
    CHECK(pl == l && strncasecmp(pat, host, l) == 0);
  }
  free(h2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *s;
  size_t n;

  if (size < 1)
    return 0;
  n = size - 1;
  s = malloc(n + 1);
  CHECK(s != NULL);
  memcpy(s, data + 1, n);
  s[n] = '\0';
  switch (data[0] % 4) {
  case 0: fuzz_txt(s, n); break;
  case 1: fuzz_policy(s, n); break;
  case 2: fuzz_content_type(s); break;
  default: fuzz_match(s, n); break;
  }
  free(s);
  return 0;
}
