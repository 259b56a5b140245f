/* Fuzz target for target-file lines (stls_target_line_parse, domain.c).
 *
 * Input: one line (cut at the first NUL, as the reader hands lines over).
 * Checks what a line parse promises: 1 with a normalised host name (lower
 * case ASCII letters, digits, hyphens and dots, 2+ labels of 1..63, at
 * most 253 bytes, not all-digit at the top, no leading or trailing
 * hyphen), 0 only for blank or comment lines, -1 with a reason; the
 * output is a fixed point of normalisation; surrounding blanks, a CR, a
 * trailing comment or a byte order mark never change the answer; a too
 * small output buffer fails cleanly.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stls/domain.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      abort();                                                                 \
    }                                                                          \
  } while (0)

#define OUT (STLS_DOMAIN_MAX + 1)

static bool is_hostname(const char *s) {
  size_t n = strlen(s), label = 0, labels = 1;
  bool top_digits = true;
  if (n == 0 || n > STLS_DOMAIN_MAX)
    return false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (c == '.') {
      if (label == 0 || s[i - 1] == '-')
        return false;
      label = 0;
      labels++;
      top_digits = true;
      continue;
    }
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
      return false;
    if (c == '-' && label == 0)
      return false;
    if (!(c >= '0' && c <= '9'))
      top_digits = false;
    if (++label > 63)
      return false;
  }
  return label > 0 && s[n - 1] != '-' && labels >= 2 && !top_digits;
}

/* Parse line with dressing around it; the answer must not change. */
static void same_answer(const char *fmt, const char *line, int rc,
                        const char *out) {
  size_t n = strlen(line) + strlen(fmt) + 1;
  char *l = malloc(n), o[OUT];
  const char *why = NULL;
  int rc2;
  CHECK(l != NULL);
  snprintf(l, n, fmt, line);
  rc2 = stls_target_line_parse(l, o, sizeof o, &why);
  CHECK(rc2 == rc);
  if (rc == 1)
    CHECK(strcmp(o, out) == 0);
  free(l);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *line = malloc(size + 1), out[OUT], again[OUT], tiny[4];
  const char *why = NULL;
  int rc;
  bool comment_free, has_bom;

  CHECK(line != NULL);
  memcpy(line, data, size);
  line[size] = '\0';
  /* The reader splits at newlines; a line never holds one. */
  for (size_t i = 0; i < size; i++)
    if (line[i] == '\n')
      line[i] = ' ';

  rc = stls_target_line_parse(line, out, sizeof out, &why);
  CHECK(rc == -1 || rc == 0 || rc == 1);
  if (rc == 1) {
    CHECK(is_hostname(out));
    /* Normalisation is a fixed point, also as a line. */
    CHECK(stls_domain_normalize(out, again, sizeof again, NULL) == 0);
    CHECK(strcmp(again, out) == 0);
    CHECK(stls_target_line_parse(out, again, sizeof again, NULL) == 1);
    CHECK(strcmp(again, out) == 0);
    /* Too small a buffer fails, and says so. */
    if (strlen(out) >= sizeof tiny) {
      why = NULL;
      CHECK(stls_target_line_parse(line, tiny, sizeof tiny, &why) == -1);
      CHECK(why != NULL);
    }
  } else if (rc == -1) {
    CHECK(why != NULL && why[0] != '\0');
  } else {
    /* Skipped: nothing but blanks before a comment (or a BOM). */
    const char *p = line;
    if (strncmp(p, "\xEF\xBB\xBF", 3) == 0)
      p += 3;
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\v' || *p == '\f')
      p++;
    CHECK(*p == '\0' || *p == '#');
  }

  /* Dressing that never changes the answer; a '#' already in the line
   * would swallow what follows it, so only where there is none. */
  comment_free = strchr(line, '#') == NULL;
  has_bom = strncmp(line, "\xEF\xBB\xBF", 3) == 0;
  if (!has_bom) /* a byte order mark counts only as the very first bytes */
    same_answer("  %s\t", line, rc, out);
  same_answer("%s\r", line, rc, out);
  if (comment_free)
    same_answer("%s # a comment", line, rc, out);
  if (!has_bom)
    same_answer("\xEF\xBB\xBF%s", line, rc, out);
  free(line);
  return 0;
}
