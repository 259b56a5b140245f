/* Small helpers shared by the stages. */
#include "stls/util.h"

#include <errno.h>
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
