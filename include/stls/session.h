/* One SMTP probe session: connect, greeting, EHLO (HELO fallback),
 * STARTTLS, TLS handshake, EHLO inside TLS, QUIT. Never MAIL, RCPT or DATA.
 */
#ifndef STLS_SESSION_H
#define STLS_SESSION_H

#include <stdint.h>
#include <uv.h>

#include "stls/result.h"
#include "stls/tls.h"

/* Per-step timeouts in milliseconds; documented defaults. */
#define STLS_DEFAULT_CONNECT_TIMEOUT_MS 10000
#define STLS_DEFAULT_GREETING_TIMEOUT_MS 30000
#define STLS_DEFAULT_COMMAND_TIMEOUT_MS 15000
#define STLS_DEFAULT_TLS_TIMEOUT_MS 15000
/* After QUIT we wait this long for the server to close. */
#define STLS_QUIT_TIMEOUT_MS 2000

typedef struct stls_probe_cfg_s {
  const char *mx;        /* MX host name: SNI and name checks */
  const char *ip;        /* address to connect to (text form) */
  int port;              /* usually 25 */
  const char *ehlo_name; /* our EHLO/HELO argument */
  stls_tls_ctx_t *tls;   /* the worker's TLS context */
  int64_t connect_timeout_ms;
  int64_t greeting_timeout_ms;
  int64_t command_timeout_ms;
  int64_t tls_timeout_ms;
  /* Offer TLS 1.2 only from the start: the address is known (from an
   * earlier probe in this run) to need the tls12-fallback. */
  int tls12_only;
  /* Also find out which protocol versions the server accepts, TLS 1.3 to
   * SSLv3 (up to 4 more connections, one after the other). */
  int versions;
  /* Refuse private and special-purpose addresses (addrguard.h): no TCP
   * connection is attempted, the result is "blocked" with the code
   * ADDRESS_NOT_ALLOWED. Checked just before every connect. */
  int guard_private;
  /* Politeness for the connections a probe makes after its first (TLS 1.2
   * reconnect, legacy and version probes): returns 0 to connect now, or
   * the milliseconds to wait (the caller's connection rate). NULL: none. */
  int64_t (*pace)(void *arg);
  void *pace_arg;
} stls_probe_cfg_t;

/* Fill cfg with the default timeouts and port 25 (pointers left NULL). */
void stls_probe_cfg_defaults(stls_probe_cfg_t *cfg);

/* Called once when the session is over and all its handles are closed.
 * The result is the one passed to stls_probe_start(). */
typedef void (*stls_probe_done_cb)(stls_host_result_t *res, void *arg);

/* Start a probe on loop; res must stay valid until cb. The strings in cfg
 * are copied. Returns 0, or a negative libuv error (then cb is not called
 * and res holds the failure). */
int stls_probe_start(uv_loop_t *loop, const stls_probe_cfg_t *cfg,
                     stls_host_result_t *res, stls_probe_done_cb cb, void *arg);

#endif
