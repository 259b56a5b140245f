/* Fuzz target for certificate name checks (scanner/names.c).
 *
 * The input is "A\0B": A is used as certificate identifier / host, B as
 * host / domain (B is empty when there is no NUL). There is no second
 * implementation to compare with, so the target checks properties the rules
 * in names.h imply: only valid host names match, a name matches itself,
 * ASCII case and one trailing dot never change an answer, and a match
 * implies the corresponding domain relation.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stls/names.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      abort();                                                                 \
    }                                                                          \
  } while (0)

/* Names longer than this cannot be valid; longer inputs are cut, which
 * keeps the copies on the stack. */
#define NAME_BUF 320

/* Copy at most NAME_BUF - 2 bytes up to a NUL; returns bytes used. */
static size_t take(char *dst, const uint8_t *src, size_t n) {
  size_t i;

  for (i = 0; i < n && i < NAME_BUF - 2 && src[i] != 0; i++)
    dst[i] = (char)src[i];
  dst[i] = '\0';
  return i;
}

/* ASCII case change only, as the matcher is specified. */
static void recase(char *dst, const char *src, bool upper) {
  for (; *src; src++, dst++) {
    char c = *src;

    if (upper && c >= 'a' && c <= 'z')
      c = (char)(c - 'a' + 'A');
    else if (!upper && c >= 'A' && c <= 'Z')
      c = (char)(c - 'A' + 'a');
    *dst = c;
  }
  *dst = '\0';
}

/* s with one trailing dot added, if it has none. */
static bool add_dot(char *dst, const char *src) {
  size_t n = strlen(src);

  if (n == 0 || src[n - 1] == '.')
    return false;
  memcpy(dst, src, n);
  memcpy(dst + n, ".", 2);
  return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char a[NAME_BUF], b[NAME_BUF], t[NAME_BUF], u[NAME_BUF];
  size_t n = take(a, data, size);
  bool match, in_domain;

  /* Skip the NUL separator, and anything cut off after NAME_BUF - 2. */
  while (n < size && data[n] != 0)
    n++;
  if (n < size)
    n++;
  take(b, data + n, size - n);

  match = stls_name_match(a, b);
  in_domain = stls_name_in_domain(a, b);

  /* Only host names match, and a host name matches itself. */
  if (match)
    CHECK(stls_name_is_hostname(b));
  if (in_domain)
    CHECK(stls_name_is_hostname(b));
  if (stls_name_is_hostname(b)) {
    CHECK(strlen(b) <= 254);
    CHECK(strchr(b, '*') == NULL);
    CHECK(stls_name_match(b, b));
    CHECK(stls_name_in_domain(b, b));
  }

  /* ASCII case never matters. */
  recase(t, a, true);
  recase(u, b, false);
  CHECK(stls_name_match(t, u) == match);
  CHECK(stls_name_in_domain(t, u) == in_domain);
  recase(t, a, false);
  recase(u, b, true);
  CHECK(stls_name_match(t, u) == match);
  CHECK(stls_name_in_domain(t, u) == in_domain);
  CHECK(stls_name_is_hostname(t) == stls_name_is_hostname(a));

  /* Nor does one trailing dot. */
  if (add_dot(t, a)) {
    CHECK(stls_name_match(t, b) == match);
    CHECK(stls_name_in_domain(t, b) == in_domain);
    CHECK(stls_name_is_hostname(t) == stls_name_is_hostname(a));
  }
  if (add_dot(t, b)) {
    CHECK(stls_name_match(a, t) == match);
    CHECK(stls_name_in_domain(a, t) == in_domain);
  }

  /* A match means the host is the identifier, or lies directly below the
   * wildcard's parent. */
  if (match) {
    if (a[0] == '*') {
      CHECK(a[1] == '.' && stls_name_in_domain(b, a + 2));
      CHECK(!stls_name_match(a, a + 2)); /* never the bare parent */
    } else {
      CHECK(strchr(a, '*') == NULL && stls_name_in_domain(b, a));
      CHECK(stls_name_in_domain(a, b));
    }
  }
  return 0;
}
