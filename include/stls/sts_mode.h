/* MTA-STS policy modes (RFC 8461 section 5), on their own so that the
 * verdicts (policy.h) can name a mode without pulling in the fetcher
 * (sts.h) and, through it, libuv and the TLS layer. */
#ifndef STLS_STS_MODE_H
#define STLS_STS_MODE_H

#define STLS_STS_MODE_MAP(XX)                                                  \
  XX(NONE, "none")                                                             \
  XX(TESTING, "testing")                                                       \
  XX(ENFORCE, "enforce")

typedef enum {
#define XX(name, json) STLS_STS_MODE_##name,
  STLS_STS_MODE_MAP(XX)
#undef XX
      STLS_STS_MODE_COUNT
} stls_sts_mode_t;

/* The JSON name ("enforce"), or "unknown" for an out-of-range value. */
const char *stls_sts_mode_name(stls_sts_mode_t m);

#endif
