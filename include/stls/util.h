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

/* Length of the longest valid UTF-8 sequence at s (1..4), or 0 when the
 * bytes at s are not valid UTF-8 (overlong, surrogate, > U+10FFFF, cut). */
size_t stls_utf8_seq_len(const unsigned char *s);
/* NULL when s is valid UTF-8; else a malloc'ed copy in which every invalid
 * byte is replaced by U+FFFD (or NULL on ENOMEM: check with the first). */
int stls_utf8_is_valid(const char *s);
char *stls_utf8_repair(const char *s);

/* A string-keyed hash map (chaining, grows). Keys are copied; values are
 * the caller's. Not thread-safe: one per owner. */
typedef struct stls_strmap_s stls_strmap_t;
stls_strmap_t *stls_strmap_new(void);
void stls_strmap_free(stls_strmap_t *m);
void *stls_strmap_get(const stls_strmap_t *m, const char *key);
/* Insert or replace; returns 0 or -1 on ENOMEM. */
int stls_strmap_put(stls_strmap_t *m, const char *key, void *val);
/* Remove key; returns its value or NULL. */
void *stls_strmap_del(stls_strmap_t *m, const char *key);

/* Debug log: one line on stderr per call, off unless the environment has
 * STLS_DEBUG=1 or stls_debug_enable(1) was called (--debug). Protocol code
 * logs its state changes here and prints nothing else. */
void stls_debug_enable(int on);
int stls_debug_on(void);
void stls_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* FNV-1a 64-bit hash: stable across runs and machines (used for shards). */
uint64_t stls_hash64(const char *s);

#endif
