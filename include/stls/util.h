/* Small helpers shared by the stages. */
#ifndef STLS_UTIL_H
#define STLS_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* strdup that tolerates NULL (returns NULL). */
char *stls_strdup(const char *s);
char *stls_strndup(const char *s, size_t n);

/* Format t (UTC) as RFC 3339 "2026-11-30T04:23:02Z" into buf (>= 21). */
void stls_time_rfc3339(time_t t, char *buf, size_t len);
/* The same from broken-down UTC fields. */
void stls_time_rfc3339_fields(int year, int mon, int day, int hour, int min,
                              int sec, char *buf, size_t len);

/* Monotonic clock in milliseconds. */
int64_t stls_now_ms(void);

/* Lower-case hex of len bytes into out (>= 2*len+1). */
void stls_hex(const unsigned char *in, size_t len, char *out);

/* Copy at most len-1 bytes of src and terminate (like strlcpy). */
size_t stls_strlcpy(char *dst, const char *src, size_t len);

/* Parse seconds ("10", "0.5") into milliseconds; -1 on bad input. */
int64_t stls_parse_seconds_ms(const char *s);

#endif
