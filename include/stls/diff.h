/* Change events: what differs between a domain's previous record and its
 * new one, whatever produced them (a scan, a schedule, an ingest). A pure
 * function over two records in their JSON form (schema starttls-scan/1). */
#ifndef STLS_DIFF_H
#define STLS_DIFF_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <time.h>

/* One list of event types: enum and the name on the feed. */
#define STLS_CHANGE_MAP(XX)                                                    \
  XX(FIRST_SEEN, "first-seen")                                                 \
  XX(STARTTLS_LOST, "starttls-lost")                                           \
  XX(STARTTLS_GAINED, "starttls-gained")                                       \
  XX(TLS_VERSION_CHANGED, "tls-version-changed")                               \
  XX(CERTIFICATE_CHANGED, "certificate-changed")                               \
  XX(TRUST_CHANGED, "trust-changed")                                           \
  XX(RECOMMENDED_CHANGED, "recommended-changed")                               \
  XX(CERTIFICATE_EXPIRING, "certificate-expiring")

typedef enum {
#define XX(name, json) STLS_CHANGE_##name,
  STLS_CHANGE_MAP(XX)
#undef XX
      STLS_CHANGE_COUNT
} stls_change_type_t;

/* A certificate is "expiring" when its leaf ends within this window of the
 * new record's scanned_at (or has ended already). */
#define STLS_EXPIRING_WINDOW_S (14 * 86400)

typedef struct stls_change_s {
  stls_change_type_t type;
  char *mx, *ip;         /* the host, for per-host changes; else NULL */
  cJSON *before, *after; /* the compared values; NULL stands for null */
} stls_change_t;

typedef struct stls_changes_s {
  stls_change_t *v;
  size_t n, cap;
} stls_changes_t;

const char *stls_change_type_name(stls_change_type_t t);
/* The type for a feed name, or -1. */
int stls_change_type_parse(const char *name);

/* Append to out the changes from prev (NULL: never seen) to next, in a
 * fixed order: domain-level first, then per host in next's order.
 * Returns 0, or -1 on ENOMEM (out then holds what was appended so far). */
int stls_diff_records(const cJSON *prev, const cJSON *next,
                      stls_changes_t *out);

void stls_changes_free(stls_changes_t *c);

/* Parse RFC 3339 UTC ("2026-11-30T04:23:02Z") into *t; 0 or -1. */
int stls_time_parse_rfc3339(const char *s, time_t *t);

#endif
